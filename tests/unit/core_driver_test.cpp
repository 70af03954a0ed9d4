// Another driver's pages (KEX_EV_DRIVER_VMA / KEX_EV_DRIVER_PAGE): the
// correlator's lives and mappings, and the leak verdicts, on synthetic
// streams shaped as the guest's AF_PACKET ring runs them.
#include <kextrace/core.h>
#include <kextrace/leaks.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include <algorithm>

using namespace kextrace;

namespace {

constexpr uint64_t kStart = 0x7f1000000000;
constexpr uint64_t kPfn0 = 0x2000;

VmaInfo packet_socket() {
    VmaInfo v;
    v.vma = 0xffff888003a1b000;
    v.f_op = 0xffffffff82a00100;
    v.mmap = 0xffffffff81c00200;
    v.ino = 777;
    v.magic = kSockfsMagic;
    v.flags = KEX_VMA_NAME_ROOT;
    v.name = {"socket:[777]"};
    return v;
}

Report run(const StreamBuilder& b) {
    return correlate(b);
}

std::string anomalies(const Report& r) {
    return anomaly_text(r);
}

} // namespace

TEST(CoreDriver, RingPagesLiveFromInsertToFree) {
    StreamBuilder b;
    b.driver_ring(kStart, 8, kPfn0, packet_socket());
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 8u);
    ASSERT_EQ(r.mappings.size(), 1u);
    const Mapping& m = r.mappings[0];
    EXPECT_TRUE(m.driver);
    EXPECT_EQ(m.mode, MapMode::driver);
    EXPECT_EQ(m.lives, 8u);
    EXPECT_EQ(m.pages, 8u);
    ASSERT_TRUE(m.vma);
    EXPECT_EQ(vma_file_name(*m.vma), "socket:[777]");
    EXPECT_NE(m.stack_id, 0u);
    for (uint32_t i = 0; i < 8; ++i) {
        const PageLife& p = r.pages[i];
        EXPECT_EQ(p.pfn, kPfn0 + i);
        EXPECT_EQ(p.index, i);
        EXPECT_EQ(p.uaddr, kStart + i * kPageSize);
        EXPECT_EQ(p.mode, MapMode::driver);
        EXPECT_TRUE(p.alloc_before_trace);
        EXPECT_EQ(p.mapping, 0);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
        EXPECT_EQ(p.zap_context, ZapContext::munmap);
        EXPECT_NE(p.free_ts, 0u);
        EXPECT_EQ(p.pte, StreamBuilder::pte_for(kPfn0 + i));
        EXPECT_EQ(refcount_trail(p), (std::vector<int32_t>{1, 2, 0}));
    }
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(r.orphans, 0u);

    const LeakReport leaks = assess_leaks(r);
    EXPECT_EQ(leaks.count(Verdict::freed), 8u);
    EXPECT_EQ(leaks.bugs(), 0u);
}

// The ring's allocation seen (KEX_EV_DRIVER_ALLOC after each adoption):
// every life starts at it, with its call chain, and the trace's start moves
// back to it; the rest of the story is unchanged.
TEST(CoreDriver, AllocationLinkedWhenSeen) {
    StreamBuilder b;
    const uint64_t alloc_ts = b.ts() - 5'000;
    b.driver_ring(kStart, 8, kPfn0, packet_socket(), true, alloc_ts);
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 8u);
    EXPECT_EQ(r.first_ts, alloc_ts);
    for (const PageLife& p : r.pages) {
        EXPECT_FALSE(p.alloc_before_trace);
        EXPECT_EQ(p.alloc_ts, alloc_ts);
        ASSERT_FALSE(p.steps.empty());
        const Step& s = p.steps.front();
        EXPECT_EQ(s.kind, StepKind::kmem_alloc);
        EXPECT_EQ(s.ts, alloc_ts);
        EXPECT_EQ(s.value, 3u); // the block's order
        EXPECT_EQ(s.refcount, KEX_NO_COUNT);
        ASSERT_NE(s.stack_id, 0u);
        EXPECT_EQ(r.stack(s.stack_id).front(), 0xffffffff81200000u);
        EXPECT_TRUE(p.seen & kMsKmemAlloc);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
        EXPECT_EQ(refcount_trail(p), (std::vector<int32_t>{1, 2, 0}));
    }
    ASSERT_EQ(r.mappings.size(), 1u);
    EXPECT_EQ(r.mappings[0].allocs_seen, 8u);
    EXPECT_EQ(r.mappings[0].alloc_stack_id, r.pages[0].steps.front().stack_id);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(assess_leaks(r).count(Verdict::freed), 8u);
}

// A link for a page that is not a just-adopted driver page is an anomaly,
// never a step; one whose page was left out is dropped quietly.
TEST(CoreDriver, AllocationLinkWithoutItsAdoption) {
    StreamBuilder b;
    b.driver_ring(kStart, 1, kPfn0, packet_socket(), true, b.ts());
    b.driver_alloc(kPfn0 + 100, b.ts(), kPfn0 + 100, 0); // no life
    b.driver_ring(kStart + 0x10000, 1, kPfn0 + 1, packet_socket(), false);
    b.driver_alloc(kPfn0 + 1, b.ts(), kPfn0 + 1, 0);
    b.driver_alloc(kPfn0 + 1, b.ts(), kPfn0 + 1, 0); // linked already
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 2u);
    EXPECT_FALSE(r.pages[1].alloc_before_trace);
    EXPECT_EQ(r.anomalies.size(), 1u) << anomalies(r);
    EXPECT_EQ(std::count_if(r.pages[1].steps.begin(), r.pages[1].steps.end(),
                            [](const Step& s) { return s.kind == StepKind::kmem_alloc; }),
              1);
}

// A perf ring buffer's pages come from its vm_ops->fault (perf_mmap_fault)
// at each first touch: adopted at the fault install, never inserted, and
// a complete life (do_set_pte is its install), the PTE read at the return.
TEST(CoreDriver, PagesFromTheFaultHandlerLiveFromTheirFault) {
    const VmaInfo perf = perf_ring_vma();
    StreamBuilder b;
    b.driver_fault_ring(kStart, 4, kPfn0, perf);
    const Report r = run(b);
    ASSERT_EQ(r.mappings.size(), 1u);
    EXPECT_TRUE(r.mappings[0].by_fault);
    EXPECT_EQ(r.mappings[0].lives, 4u);
    ASSERT_EQ(r.pages.size(), 4u);
    for (uint32_t i = 0; i < 4; ++i) {
        const PageLife& p = r.pages[i];
        EXPECT_TRUE(p.by_fault);
        EXPECT_TRUE(p.alloc_before_trace);
        EXPECT_EQ(p.index, i);
        EXPECT_EQ(p.uaddr, kStart + i * kPageSize);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
        EXPECT_EQ(p.pte, StreamBuilder::pte_for(kPfn0 + i, true));
        EXPECT_EQ(p.pte_source, PteSource::do_set_pte_ret);
        EXPECT_EQ(p.zap_context, ZapContext::munmap);
        EXPECT_EQ(refcount_trail(p), (std::vector<int32_t>{2, 0}));
    }
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    const LeakReport leaks = assess_leaks(r);
    EXPECT_EQ(leaks.count(Verdict::freed), 4u);
    EXPECT_EQ(leaks.bugs(), 0u);
}

// /dev/mem's mmap (remap_pfn_range of 16 pfns): the range goes on the
// driver's mapping with its return; no page life (pfns, no references).
TEST(CoreDriver, PfnMapIsARangeNotPageLives) {
    VmaInfo mem;
    mem.f_op = 0xffffffff82c00000;
    mem.flags = KEX_VMA_NAME_ROOT | KEX_VMA_PFNMAP;
    mem.name = {"mem", "dev"};
    StreamBuilder b;
    b.driver_vma(kStart, 16, mem);
    Event& e = b.add(KEX_EV_DRIVER_PFNMAP);
    e.pfn = 0xf0;
    e.addr = kStart;
    e.arg0 = 16 * kPageSize;
    e.arg1 = kStart;
    b.add(KEX_EV_DRIVER_PFNMAP_RET).pfn = 0xf0;
    b.add(KEX_EV_DRIVER_PFNMAP_RET); // a return without its call: not ours
    const Report r = run(b);
    EXPECT_TRUE(r.pages.empty());
    ASSERT_EQ(r.mappings.size(), 1u);
    const Mapping& m = r.mappings[0];
    ASSERT_EQ(m.pfnmaps.size(), 1u);
    EXPECT_EQ(m.pfnmaps[0].pfn, 0xf0u);
    EXPECT_EQ(m.pfnmaps[0].bytes, 16 * kPageSize);
    EXPECT_EQ(m.pfnmaps[0].addr, kStart);
    EXPECT_EQ(m.pfnmaps[0].ret, std::optional<int64_t>(0));
    EXPECT_FALSE(m.by_fault);
    EXPECT_EQ(m.lives, 0u);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(r.orphans, 0u);
}

// vgem's dumb buffer (drm_gem_shmem_fault: vmf_insert_pfn at each first
// touch): one pfn per fault, each with its vm_fault_t; still no page life.
TEST(CoreDriver, PfnAtFaultIsOnePfnPerFault) {
    VmaInfo card;
    card.f_op = 0xffffffffc0400000;
    card.flags = KEX_VMA_PFNMAP;
    card.name = {"card0", "dri", "dev"};
    StreamBuilder b;
    b.driver_vma(kStart, 3, card);
    const uint64_t pfns[] = {0xa864, 0xa860, 0xa86e};
    for (int i = 0; i < 3; ++i) {
        Event& e = b.add(KEX_EV_DRIVER_PFNMAP);
        e.pfn = pfns[i];
        e.addr = kStart + uint64_t(i) * kPageSize;
        e.arg0 = kPageSize;
        e.arg1 = kStart;
        e.ret = 1; // at a fault
        Event& ret = b.add(KEX_EV_DRIVER_PFNMAP_RET);
        ret.pfn = pfns[i];
        ret.ret = i == 2 ? 0x1 /* VM_FAULT_OOM */ : 0x100 /* VM_FAULT_NOPAGE */;
    }
    const Report r = run(b);
    EXPECT_TRUE(r.pages.empty());
    ASSERT_EQ(r.mappings.size(), 1u);
    const Mapping& m = r.mappings[0];
    ASSERT_EQ(m.pfnmaps.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(m.pfnmaps[i].pfn, pfns[i]);
        EXPECT_EQ(m.pfnmaps[i].addr, kStart + uint64_t(i) * kPageSize);
        EXPECT_EQ(m.pfnmaps[i].bytes, kPageSize);
        EXPECT_TRUE(m.pfnmaps[i].at_fault);
    }
    EXPECT_EQ(m.pfnmaps[0].ret, std::optional<int64_t>(0x100));
    EXPECT_EQ(m.pfnmaps[2].ret, std::optional<int64_t>(0x1));
    EXPECT_EQ(m.lives, 0u);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
}

// A BPF ring buffer's data page is inserted at two addresses of one VMA:
// one life, both inserts on it, mapcount 2 while both PTEs live, no anomaly.
TEST(CoreDriver, DataPageMappedTwiceIsOneLife) {
    VmaInfo rb;
    rb.f_op = 0x1000;
    rb.magic = kAnonInodeFsMagic;
    rb.flags = KEX_VMA_NAME_ROOT;
    rb.name = {"bpf-map"};
    StreamBuilder b;
    b.driver_vma(kStart, 3, rb);
    b.driver_page(kPfn0, kStart, kStart + kPageSize, 1);
    b.insert(kPfn0, 1);
    b.rmap_add(kPfn0, 1);
    b.insert_ret(kPfn0, 1, StreamBuilder::pte_for(kPfn0));
    b.page(KEX_EV_INSERT, kPfn0, 1, 2, 1);
    b.page(KEX_EV_RMAP_ADD, kPfn0, 1, 3, 1);
    b.page(KEX_EV_INSERT_RET, kPfn0, 1, 3, 2).arg0 = StreamBuilder::pte_for(kPfn0);
    b.window(KEX_EV_UNMAP_REGION, kStart, kStart + 3 * kPageSize);
    b.page(KEX_EV_RMAP_REMOVE, kPfn0, 1, 3, 2);
    b.page(KEX_EV_RMAP_REMOVE, kPfn0, 1, 2, 1);
    b.window(KEX_EV_UNMAP_REGION_RET);
    b.page_free(kPfn0, 1);
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 1u);
    const PageLife& p = r.pages[0];
    EXPECT_EQ(max_mapcount(p), 2);
    EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(p.index, 1u);
    const LeakReport leaks = assess_leaks(r);
    EXPECT_EQ(leaks.count(Verdict::freed), 1u);
}

TEST(CoreDriver, PageTheDriverStillHoldsIsNotIncomplete) {
    StreamBuilder b;
    b.driver_ring(kStart, 2, kPfn0, packet_socket(), /*close=*/false);
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 2u);
    for (const PageLife& p : r.pages) {
        EXPECT_TRUE(p.open_at_end);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
    }
}

// Unmapped, never freed: held while the driver's file (or its module) may
// still free it, named; leaked when nothing is left that could.
TEST(CoreDriver, UnfreedPageIsHeldByItsDriverWhileItsFileIsOpen) {
    StreamBuilder b;
    b.driver_ring(kStart, 2, kPfn0, packet_socket(), /*close=*/false);
    const Report r = run(b);
    ASSERT_EQ(r.mappings.size(), 1u);
    LeakOptions o;
    o.driver_holders = {"af_packet: socket:[777] open"};
    const LeakReport held = assess_leaks(r, o);
    EXPECT_EQ(held.count(Verdict::held), 2u);
    EXPECT_EQ(held.bugs(), 0u);
    EXPECT_EQ(held.pages[0].holder, "af_packet: socket:[777] open");
    EXPECT_NE(held.pages[0].reason.find("held by af_packet: socket:[777] open"), std::string::npos)
        << held.pages[0].reason;

    o.driver_holders = {""};
    const LeakReport gone = assess_leaks(r, o);
    EXPECT_EQ(gone.count(Verdict::leaked), 2u);
    EXPECT_TRUE(gone.pages[0].holder.empty());
    // kex's "device open, owner alive" rule is kex's: not a driver's holder
    o.driver_holders.clear();
    o.device_closed = false;
    o.alive = {r.pages[0].owner};
    EXPECT_EQ(assess_leaks(r, o).count(Verdict::leaked), 2u);
}

TEST(CoreDriver, FreedWhileMappedIsTheBugItIsForKex) {
    StreamBuilder b;
    b.driver_vma(kStart, 1, packet_socket());
    b.driver_page(kPfn0, kStart, kStart, 1);
    b.insert(kPfn0, 0);
    b.rmap_add(kPfn0, 0);
    b.insert_ret(kPfn0, 0, StreamBuilder::pte_for(kPfn0));
    b.page_free(kPfn0, 0);
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 1u);
    EXPECT_NE(anomalies(r).find("freed while still mapped"), std::string::npos) << anomalies(r);
    EXPECT_EQ(assess_leaks(r).count(Verdict::freed_while_mapped), 1u);
}

TEST(CoreDriver, LostVmaRecordStillFollowsThePage) {
    StreamBuilder b;
    b.driver_ring(kStart, 2, kPfn0, packet_socket());
    b.drop_if([](const Event& e) { return e.type == KEX_EV_DRIVER_VMA; });
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 2u);
    EXPECT_TRUE(r.mappings.empty());
    EXPECT_EQ(r.pages[0].mapping, -1);
    EXPECT_EQ(r.pages[0].mode, MapMode::driver);
    EXPECT_TRUE(r.pages[0].complete());
}

TEST(CoreDriver, SameRangeMappedAgainIsANewMapping) {
    StreamBuilder b;
    b.driver_ring(kStart, 2, kPfn0, packet_socket());
    b.driver_ring(kStart, 2, kPfn0 + 16, packet_socket());
    const Report r = run(b);
    ASSERT_EQ(r.mappings.size(), 2u);
    EXPECT_NE(r.mappings[0].close_ts, 0u);
    EXPECT_EQ(r.mappings[0].lives, 2u);
    EXPECT_EQ(r.mappings[1].lives, 2u);
    EXPECT_EQ(r.pages[3].mapping, 1);
}

TEST(CoreDriver, NotTracedProcessIsFiltered) {
    StreamBuilder b(200);
    b.driver_ring(kStart, 2, kPfn0, packet_socket());
    const Report r = run(b);
    EXPECT_TRUE(r.pages.empty());
    EXPECT_TRUE(r.mappings.empty());
}

// kextrace --driver / --file: a VMA the filter leaves out is not reported,
// nor are its pages, and none of their events is an orphan or an anomaly;
// the same range mapped again by a followed driver is followed.
TEST(CoreDriver, FilterLeavesOutOtherOwnersVmasAndTheirPages) {
    VmaInfo other = packet_socket();
    other.ino = 778;
    other.name = {"socket:[778]"};
    StreamBuilder b;
    b.driver_ring(kStart, 4, kPfn0, other);                           // left out
    b.driver_ring(kStart + 0x100000, 2, kPfn0 + 16, packet_socket()); // followed
    b.driver_ring(kStart, 2, kPfn0 + 32, packet_socket());            // the first range again
    CorrelatorOptions o{.roots = {100}};
    o.follow_driver_vma = [](const VmaInfo& v) { return v.ino == 777; };
    const Report r = correlate(b, std::move(o));
    ASSERT_EQ(r.mappings.size(), 2u);
    for (const Mapping& m : r.mappings) {
        ASSERT_TRUE(m.vma);
        EXPECT_EQ(m.vma->ino, 777u);
        EXPECT_EQ(m.lives, 2u);
    }
    ASSERT_EQ(r.pages.size(), 4u);
    for (const PageLife& p : r.pages) {
        EXPECT_GE(p.pfn, kPfn0 + 16);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
    }
    EXPECT_EQ(r.unfollowed_driver_pages, 4u);
    EXPECT_EQ(r.orphans, 0u);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_GT(r.filtered, 4u); // the left-out pages' events
}

// A page's free unseen (the trace missed it), then its pfn inserted again: the
// first life is inconclusive, saying its pfn began a new life: never leaked.
TEST(CoreDriver, PfnInsertedAgainWithoutAFreeIsInconclusive) {
    StreamBuilder b;
    b.driver_ring(kStart, 1, kPfn0, packet_socket(), /*close=*/false);
    b.driver_ring(kStart + 0x100000, 1, kPfn0, packet_socket());
    const Report r = run(b);
    ASSERT_EQ(r.pages.size(), 2u);
    EXPECT_FALSE(r.pages[0].open_at_end);
    EXPECT_NE(anomalies(r).find("inserted by a driver again before its free was seen"),
              std::string::npos)
        << anomalies(r);
    LeakOptions o;
    o.driver_holders = {"", ""};
    const LeakReport l = assess_leaks(r, o);
    EXPECT_EQ(l.pages[0].verdict, Verdict::inconclusive);
    EXPECT_NE(l.pages[0].reason.find("its pfn began a new life"), std::string::npos)
        << l.pages[0].reason;
    EXPECT_EQ(l.pages[1].verdict, Verdict::freed);
    EXPECT_EQ(l.bugs(), 0u);
}
