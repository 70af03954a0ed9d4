// The correlator's per-mode stories: which milestones a page of each kex
// mapping mode has, the fault mode's user fault that comes before its page,
// the pfn mode's missing rmap/insert/zap that are not errors, and the mode
// inferred when kex has no kex_mmap_mode tracepoint.
#include <kextrace/core.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

using namespace kextrace;

namespace {

constexpr uint64_t kStart = 0x7f0000000000;
constexpr uint64_t kPfn0 = 0x1000;

Event& mode_event(StreamBuilder& b, MapMode m) {
    Event& e = b.add(KEX_EV_KEX_MMAP_MODE);
    e.addr = kStart;
    e.arg0 = static_cast<uint64_t>(m);
    return e;
}

Report run(const StreamBuilder& b, uint16_t expected = kMsDefaultExpected) {
    return correlate(b, {.roots = {100}, .expected = expected});
}

std::string anomalies(const Report& r) {
    return anomaly_text(r);
}

// Mode fault, pages touched in the write phase (write faults) or read first.
StreamBuilder fault_story(uint32_t pages, bool read_first, bool with_mode_event = true) {
    StreamBuilder b;
    b.phase(KEX_PHASE_MMAP_BEGIN, 0, pages);
    b.kex_mmap(kStart, pages, Policy::keep);
    if (with_mode_event)
        mode_event(b, MapMode::fault);
    b.kex_mmap_done(kStart, 0);
    b.phase(KEX_PHASE_MMAP_END, kStart, pages);
    auto touch = [&](uint32_t i, bool write) {
        const uint64_t addr = kStart + i * kPageSize, pfn = kPfn0 + i;
        b.user_fault(addr, write ? 0x6 : 0x4); // user, (write), not present
        b.kex_alloc(pfn, i);
        Event& f = b.page(KEX_EV_KEX_FAULT, pfn, i, 2, 0);
        f.addr = addr;
        f.arg1 = (write ? 1 : 0) | 2; // KEX_FAULT_WRITE | KEX_FAULT_ALLOC
        Event& s = b.page(KEX_EV_DO_SET_PTE, pfn, 0, 2, 0);
        s.addr = addr;
        b.rmap_add(pfn, i);
        Event& r = b.page(KEX_EV_DO_SET_PTE_RET, pfn, 0, 2, 1);
        r.addr = addr;
        r.arg0 = StreamBuilder::pte_for(pfn, write);
    };
    if (read_first)
        for (uint32_t i = 0; i < pages; ++i)
            touch(i, false);
    b.phase(KEX_PHASE_WRITE_BEGIN, kStart, pages);
    if (!read_first)
        for (uint32_t i = 0; i < pages; ++i)
            touch(i, true);
    b.phase(KEX_PHASE_WRITE_END, kStart, pages);
    b.phase(KEX_PHASE_MUNMAP_BEGIN, kStart, pages);
    b.window(KEX_EV_UNMAP_REGION, kStart, kStart + pages * kPageSize);
    for (uint32_t i = 0; i < pages; ++i) {
        b.set_dirty(kPfn0 + i, i, 2);
        b.rmap_remove(kPfn0 + i, i, 2);
    }
    b.window(KEX_EV_UNMAP_REGION_RET);
    b.window(KEX_EV_KEX_VMA_CLOSE, kStart, kStart + pages * kPageSize);
    for (uint32_t i = 0; i < pages; ++i) {
        b.kex_free(kPfn0 + i, i, KEX_FREE_AT_CLOSE, 1, 0);
        b.page_free(kPfn0 + i, i);
    }
    b.phase(KEX_PHASE_MUNMAP_END, kStart, pages);
    return b;
}

constexpr uint64_t kSpecialBit = 1ULL << 9; // _PAGE_SPECIAL

// Mode pfn: alloc + remap_pfn_range + kex_page_insert; at the zap only
// vm_normal_page, given the special PTE.
StreamBuilder pfn_story(uint32_t pages, bool free_before_close = false) {
    StreamBuilder b;
    b.phase(KEX_PHASE_MMAP_BEGIN, 0, pages);
    b.kex_mmap(kStart, pages, Policy::keep);
    mode_event(b, MapMode::pfn);
    for (uint32_t i = 0; i < pages; ++i) {
        const uint64_t addr = kStart + i * kPageSize, pfn = kPfn0 + i;
        b.kex_alloc(pfn, i);
        Event& e = b.page(KEX_EV_REMAP_PFN, pfn, 0, 1, 0);
        e.addr = addr;
        e.arg0 = kPageSize;
        Event& r = b.page(KEX_EV_REMAP_PFN_RET, pfn, 0, 1, 0);
        r.addr = addr;
        Event& k = b.kex_insert(pfn, addr, i);
        k.refcount = 1;
        k.mapcount = 0;
    }
    b.kex_mmap_done(kStart, pages);
    b.phase(KEX_PHASE_MMAP_END, kStart, pages);
    b.phase(KEX_PHASE_WRITE_BEGIN, kStart, pages);
    b.phase(KEX_PHASE_WRITE_END, kStart, pages);
    b.phase(KEX_PHASE_MUNMAP_BEGIN, kStart, pages);
    b.window(KEX_EV_UNMAP_REGION, kStart, kStart + pages * kPageSize);
    for (uint32_t i = 0; i < pages; ++i) { // the zap asks vm_normal_page: special, dirty
        Event& l = b.page(KEX_EV_PTE_LOOKUP, kPfn0 + i, i, 1, 0);
        l.addr = kStart + i * kPageSize;
        l.arg0 = StreamBuilder::pte_for(kPfn0 + i, true) | kSpecialBit;
    }
    if (free_before_close)
        for (uint32_t i = 0; i < pages; ++i) {
            b.kex_free(kPfn0 + i, i, KEX_FREE_AT_CLOSE, 1, 0);
            b.page_free(kPfn0 + i, i);
        }
    b.window(KEX_EV_UNMAP_REGION_RET);
    b.window(KEX_EV_KEX_VMA_CLOSE, kStart, kStart + pages * kPageSize);
    if (!free_before_close)
        for (uint32_t i = 0; i < pages; ++i) {
            b.kex_free(kPfn0 + i, i, KEX_FREE_AT_CLOSE, 1, 0);
            b.page_free(kPfn0 + i, i);
        }
    b.phase(KEX_PHASE_MUNMAP_END, kStart, pages);
    return b;
}

} // namespace

TEST(CoreModes, ExpectedMilestonesPerMode) {
    EXPECT_EQ(mode_expected(MapMode::insert), kMsDefaultExpected);
    EXPECT_EQ(mode_expected(MapMode::batch), kMsDefaultExpected);
    EXPECT_EQ(mode_expected(MapMode::fault), kMsDefaultExpected & ~kMsKexInsert);
    EXPECT_EQ(mode_expected(MapMode::pfn), kMsKexAlloc | kMsKexInsert | kMsKexFree | kMsPageFree);
    EXPECT_EQ(map_mode_name(MapMode::pfn), "pfn");
    EXPECT_EQ(expected_refcount_trail(Policy::keep, MapMode::pfn), (std::vector<int32_t>{1, 0}));
}

TEST(CoreModes, InsertStoryKeepsItsMode) {
    StreamBuilder b;
    b.story({.pages = 4});
    // kex_mmap_mode right after kex_mmap
    Event m;
    for (std::size_t i = 0; i < b.events.size(); ++i)
        if (b.events[i].type == KEX_EV_KEX_MMAP) {
            m = b.events[i];
            m.type = KEX_EV_KEX_MMAP_MODE;
            m.arg0 = 0;
            b.events.insert(b.events.begin() + static_cast<long>(i) + 1, m);
            break;
        }
    Report r = run(b);
    ASSERT_EQ(r.mappings.size(), 1u);
    EXPECT_EQ(r.mappings[0].mode, MapMode::insert);
    EXPECT_FALSE(r.mappings[0].mode_inferred);
    for (const PageLife& p : r.pages) {
        EXPECT_EQ(p.mode, MapMode::insert);
        EXPECT_TRUE(p.complete());
    }
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
}

TEST(CoreModes, FaultModeWriteFaultsAreTheStory) {
    Report r = run(fault_story(3, false));
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    ASSERT_EQ(r.pages.size(), 3u);
    EXPECT_EQ(r.mappings[0].mode, MapMode::fault);
    EXPECT_EQ(r.mappings[0].faults, 3u);
    EXPECT_EQ(r.mappings[0].lives, 3u);
    for (const PageLife& p : r.pages) {
        EXPECT_EQ(p.mode, MapMode::fault);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
        EXPECT_FALSE(p.expected & kMsKexInsert);
        EXPECT_EQ(p.kex_faults, 1u);
        EXPECT_EQ(p.pte_source, PteSource::do_set_pte_ret);
        EXPECT_TRUE(decode_pte(p.pte).dirty); // a write fault installs a dirty PTE
        EXPECT_EQ(p.first_write, FirstWrite::fault);
        EXPECT_EQ(p.fault_error_code, 0x6u);
        EXPECT_EQ(p.steps.front().kind, StepKind::user_fault); // the fault came first
        EXPECT_EQ(refcount_trail(p), (std::vector<int32_t>{1, 2, 1, 0}));
    }
}

TEST(CoreModes, FaultModeReadFirstGivesACleanPteThenDirtyAtZap) {
    Report r = run(fault_story(2, true));
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    for (const PageLife& p : r.pages) {
        EXPECT_FALSE(decode_pte(p.pte).dirty);
        EXPECT_EQ(p.first_write, FirstWrite::no_fault); // the MMU set D
        EXPECT_TRUE(p.zap_dirty);
        EXPECT_EQ(p.steps.front().kind, StepKind::user_fault);
        EXPECT_FALSE(p.steps.front().flags & kStepInWritePhase);
    }
}

TEST(CoreModes, FaultModeInferredWithoutTheModeTracepoint) {
    Report r = run(fault_story(2, false, false));
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(r.mappings[0].mode, MapMode::fault);
    EXPECT_TRUE(r.mappings[0].mode_inferred);
    EXPECT_EQ(r.pages[0].mode, MapMode::fault);
}

TEST(CoreModes, PfnModeHasNoRmapInsertNorZapAndThatIsFine) {
    Report r = run(pfn_story(3));
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(r.mappings[0].mode, MapMode::pfn);
    EXPECT_EQ(r.mappings[0].remap_pfn_calls, 3u);
    for (const PageLife& p : r.pages) {
        EXPECT_EQ(p.mode, MapMode::pfn);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
        EXPECT_FALSE(p.seen & (kMsInsert | kMsRmapAdd | kMsZap));
        EXPECT_NE(p.remap_ts, 0u);
        EXPECT_EQ(p.zap_context, ZapContext::none);
        EXPECT_EQ(refcount_trail(p), (std::vector<int32_t>{1, 0}));
        // the PTE is the one the zap gave vm_normal_page
        EXPECT_EQ(p.pte_source, PteSource::pte_lookup);
        EXPECT_EQ(p.pte_addr, 0u);
        EXPECT_TRUE(decode_pte(p.pte).special);
        EXPECT_TRUE(decode_pte(p.pte).dirty);
        EXPECT_EQ(decode_pte(p.pte).pfn, p.pfn);
        EXPECT_EQ(pte_flags(p.pte), "P RW U A D NX S");
    }
    EXPECT_EQ(r.incomplete_pages(), 0u);
}

TEST(CoreModes, PfnModeWithANormalPteIsAnAnomaly) {
    StreamBuilder b = pfn_story(1);
    for (Event& e : b.events)
        if (e.type == KEX_EV_PTE_LOOKUP)
            e.arg0 &= ~kSpecialBit;
    Report r = run(b);
    EXPECT_NE(anomalies(r).find("mode pfn, but its PTE 0x80000000"), std::string::npos)
        << anomalies(r);
    EXPECT_NE(anomalies(r).find(" is not special"), std::string::npos) << anomalies(r);
}

TEST(CoreModes, PfnModeFreedBeforeCloseIsFreedWhileMapped) {
    Report r = run(pfn_story(1, true));
    EXPECT_NE(anomalies(r).find("mode pfn, freed before its mapping closed"), std::string::npos)
        << anomalies(r);
}

TEST(CoreModes, PfnModeWithAnRmapIsAnAnomaly) {
    StreamBuilder b = pfn_story(1);
    // an rmap add on the page right after its kex_page_insert
    for (std::size_t i = 0; i < b.events.size(); ++i)
        if (b.events[i].type == KEX_EV_KEX_PAGE_INSERT) {
            Event e = b.events[i];
            e.type = KEX_EV_RMAP_ADD;
            e.ts += 1;
            b.events.insert(b.events.begin() + static_cast<long>(i) + 1, e);
            break;
        }
    Report r = run(b);
    EXPECT_NE(anomalies(r).find("mode pfn, but rmap_add saw the page"), std::string::npos)
        << anomalies(r);
}

TEST(CoreModes, BatchCallsCountOnTheMapping) {
    StreamBuilder b;
    b.kex_mmap(kStart, 4, Policy::drop);
    mode_event(b, MapMode::batch);
    for (uint32_t i = 0; i < 4; ++i)
        b.kex_alloc(kPfn0 + i, i);
    for (uint32_t call = 0; call < 2; ++call) {
        Event& v = b.add(KEX_EV_VM_INSERT_PAGES);
        v.addr = kStart + call * 2 * kPageSize;
        v.arg0 = 2;
        Event& k = b.add(KEX_EV_KEX_BATCH);
        k.addr = v.addr;
        k.arg0 = (call * 2) | (2ull << 32);
        k.arg1 = 2;
    }
    b.kex_mmap_done(kStart, 4);
    Report r = run(b);
    EXPECT_EQ(r.mappings[0].mode, MapMode::batch);
    EXPECT_EQ(r.mappings[0].batch_calls, 2u);
    EXPECT_EQ(r.mappings[0].vm_insert_pages, 2u);
}
