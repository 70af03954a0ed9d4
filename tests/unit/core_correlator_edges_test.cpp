// The correlator at the edges, on synthetic streams: reallocations, several
// mappings and processes, malformed PTEs, faults and zaps outside the
// windows, error paths, lost or orphan events, unbalanced phases, caps,
// reuse of one Correlator, size and random input.
#include <kextrace/core.h>
#include <kextrace/stream_builder.h>

#include "correlate_all.h"

#include <gtest/gtest.h>

#include <random>

using namespace kextrace;
using namespace kextrace::test;
using Story = StreamBuilder::Story;

TEST(CoreCorrelator, ReallocationWithoutFreeIsFlagged) {
    StreamBuilder b;
    b.map({.pages = 1});
    b.kex_alloc(0x1000, 0); // the free of the first life was never seen
    b.page_free(0x1000, 0);
    const Report r = run(b.events);
    ASSERT_EQ(r.pages.size(), 2u);
    EXPECT_TRUE(has_anomaly(r, "allocated again by kex before its free was seen"));
    EXPECT_TRUE(r.pages[0].missing & kMsPageFree);
    EXPECT_FALSE(r.pages[0].open_at_end);
}

TEST(CoreCorrelator, TwoMappingsAtOnce) {
    StreamBuilder b;
    const Story a{.pages = 3, .vm_start = 0x7f0000000000, .pfn0 = 0x1000};
    const Story k{.pages = 2, .vm_start = 0x7f0000200000, .pfn0 = 0x2000, .policy = Policy::keep};
    b.map(a);
    b.tid(101).map(k);
    b.tid(100).write(a);
    b.tid(101).unmap(k);
    b.tid(100).unmap(a);
    const Report r = run(b.events);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    ASSERT_EQ(r.mappings.size(), 2u);
    EXPECT_EQ(r.mappings[0].lives, 3u);
    EXPECT_EQ(r.mappings[1].lives, 2u);
    EXPECT_EQ(r.mappings[1].policy, Policy::keep);
    EXPECT_EQ(r.mappings[1].tid, 101u);
    ASSERT_EQ(r.pages.size(), 5u);
    for (const PageLife& p : r.pages) {
        EXPECT_TRUE(p.complete());
        const Mapping& m = r.mappings[static_cast<std::size_t>(p.mapping)];
        EXPECT_GE(p.uaddr, m.vm_start);
        EXPECT_LT(p.uaddr, m.vm_end);
        EXPECT_EQ(p.policy, m.policy);
    }
    EXPECT_EQ(r.pages[3].pfn, 0x2000u);
    EXPECT_EQ(r.pages[3].mapping, 1);
}

TEST(CoreCorrelator, FollowsForkedChildAndIgnoresStrangers) {
    StreamBuilder b(100);
    b.fork(200);
    b.pid(300).story({.pages = 2, .vm_start = 0x7e0000000000, .pfn0 = 0x3000}); // unrelated
    b.pid(200).story({.pages = 2});
    const Report r = run(b.events, {.roots = {100}});
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(r.tgids, (std::vector<uint32_t>{100, 200}));
    ASSERT_EQ(r.pages.size(), 2u);
    for (const PageLife& p : r.pages) {
        EXPECT_EQ(p.owner, 200u);
        EXPECT_TRUE(p.complete());
    }
    ASSERT_EQ(r.mappings.size(), 1u);
    EXPECT_EQ(r.mappings[0].tgid, 200u);
    ASSERT_EQ(r.phases.size(), 3u);
    EXPECT_EQ(r.phases[0].tgid, 200u);
    EXPECT_GT(r.filtered, 0u);
    EXPECT_EQ(r.orphans, 0u); // the stranger's page events are filtered, not orphans
    EXPECT_EQ(r.counts[KEX_EV_PROC_FORK], 1u);

    // Added after construction.
    Correlator c({.roots = {1}});
    c.trace_tgid(300);
    for (const Event& e : b.events)
        c.feed(e);
    const Report r2 = c.finish();
    ASSERT_EQ(r2.pages.size(), 2u);
    EXPECT_EQ(r2.pages[0].owner, 300u);
}

TEST(CoreCorrelator, PtePfnMismatchIsFlagged) {
    StreamBuilder b;
    b.story({.pages = 2});
    for (Event& e : b.events)
        if (e.type == KEX_EV_INSERT_RET && e.pfn == 0x1001)
            e.arg0 = StreamBuilder::pte_for(0x1234);
    const Report r = run(b.events);
    EXPECT_TRUE(has_anomaly(r, "page 1 (pfn 0x1001): PTE 0x8000000001234027 maps pfn 0x1234"))
        << anomalies(r);
    EXPECT_EQ(r.pages[1].anomalies, 1u);
    EXPECT_EQ(r.pages[0].anomalies, 0u);
}

TEST(CoreCorrelator, NotPresentPteIsFlagged) {
    StreamBuilder b;
    b.story({.pages = 1});
    for (Event& e : b.events)
        if (e.type == KEX_EV_INSERT_RET)
            e.arg0 &= ~1ULL;
    const Report r = run(b.events);
    EXPECT_TRUE(has_anomaly(r, "read back not present")) << anomalies(r);
}

TEST(CoreCorrelator, PageTableAllocationInTheWindowIsOther) {
    StreamBuilder b;
    b.story({.pages = 4, .page_table_alloc = true});
    // free_pgtables at munmap frees the page-table page
    b.page_free(0x9999, 0);
    const Report r = run(b.events);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(r.other_allocations, 1u);
    EXPECT_EQ(r.mappings[0].other_allocations, 1u);
    EXPECT_EQ(r.other_frees, 1u);
    EXPECT_EQ(r.orphans, 0u);
    ASSERT_EQ(r.pages.size(), 4u);
    for (const PageLife& p : r.pages)
        EXPECT_TRUE(p.seen & kMsKmemAlloc);
}

TEST(CoreCorrelator, UserFaultInTheWritePhase) {
    StreamBuilder b;
    const Story s{.pages = 4};
    b.map(s);
    b.phase(KEX_PHASE_WRITE_BEGIN, s.vm_start, 4);
    b.user_fault(s.vm_start + 2 * kPageSize + 0x10, 0x7);
    b.phase(KEX_PHASE_WRITE_END, s.vm_start, 4);
    b.user_fault(s.vm_start + 3 * kPageSize, 0x6); // after the write phase
    b.unmap(s);
    const Report r = run(b.events);
    EXPECT_EQ(r.pages[0].first_write, FirstWrite::no_fault);
    EXPECT_EQ(r.pages[2].first_write, FirstWrite::fault);
    EXPECT_EQ(r.pages[2].fault_error_code, 0x7u);
    EXPECT_NE(r.pages[2].first_write_ts, 0u);
    EXPECT_EQ(r.pages[3].first_write, FirstWrite::no_fault);
    const auto& steps3 = r.pages[3].steps;
    EXPECT_TRUE(std::any_of(steps3.begin(), steps3.end(), [](const Step& s) {
        return s.kind == StepKind::user_fault && !(s.flags & kStepInWritePhase);
    }));
    EXPECT_EQ(r.phases[1].user_faults, 1u);
    EXPECT_EQ(r.phases[1].kernel_events, 0u);
}

TEST(CoreCorrelator, NoWritePhaseMeansFirstWriteUnknown) {
    StreamBuilder b;
    b.story({.pages = 2, .write = false});
    const Report r = run(b.events);
    for (const PageLife& p : r.pages) {
        EXPECT_EQ(p.first_write, FirstWrite::unknown);
        EXPECT_FALSE(p.zap_dirty);
        EXPECT_TRUE(p.complete());
    }
}

TEST(CoreCorrelator, ZapAtProcessExit) {
    StreamBuilder b;
    b.story({.pages = 2, .exit_instead_of_munmap = true});
    const Report r = run(b.events);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    for (const PageLife& p : r.pages)
        EXPECT_EQ(p.zap_context, ZapContext::exit);
}

TEST(CoreCorrelator, ZapOutsideAnyWindowIsOther) {
    StreamBuilder b;
    b.story({.pages = 2});
    b.drop_if([](const Event& e) {
        return e.type == KEX_EV_UNMAP_REGION || e.type == KEX_EV_UNMAP_REGION_RET;
    });
    const Report r = run(b.events);
    for (const PageLife& p : r.pages)
        EXPECT_EQ(p.zap_context, ZapContext::other);
}

TEST(CoreCorrelator, InsertFailureOnTheErrorPath) {
    StreamBuilder b;
    b.story({.pages = 4, .fail_at = 2});
    const Report r = run(b.events);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    ASSERT_EQ(r.pages.size(), 3u);
    EXPECT_EQ(r.mappings[0].ret, -12);
    EXPECT_EQ(r.mappings[0].mapped, 2u);
    const PageLife& p = r.pages[2];
    EXPECT_EQ(p.insert_ret, -12);
    EXPECT_EQ(p.kex_free_reason, static_cast<uint32_t>(KEX_FREE_ERROR));
    EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
    EXPECT_EQ(p.expected & (kMsPteSet | kMsZap | kMsRmapAdd), 0);
    EXPECT_TRUE(r.pages[0].complete());
}

TEST(CoreCorrelator, KexAllocLostButKmemAllocSeen) {
    StreamBuilder b;
    b.story({.pages = 2});
    b.drop_if([](const Event& e) { return e.type == KEX_EV_KEX_PAGE_ALLOC && e.pfn == 0x1001; });
    const Report r = run(b.events);
    ASSERT_EQ(r.pages.size(), 2u);
    const PageLife& p = r.pages[1];
    EXPECT_EQ(p.missing, kMsKexAlloc);
    EXPECT_EQ(p.index, 1u); // from kex_page_insert
    EXPECT_TRUE(has_anomaly(r, "without kex_page_alloc")) << anomalies(r);
    EXPECT_EQ(r.other_allocations, 0u);
}

TEST(CoreCorrelator, OrphanPageEventsAreCountedNotFatal) {
    StreamBuilder b;
    b.page_free(0xdead, 0);
    b.rmap_remove(0xbeef, 0, 1);
    b.page_free_batched(0xdead, 0);
    const Report r = run(b.events);
    EXPECT_EQ(r.orphans, 3u);
    EXPECT_TRUE(r.pages.empty());
    EXPECT_TRUE(has_anomaly(r, "orphan"));
}

TEST(CoreCorrelator, DoubleKexFreeIsFlagged) {
    StreamBuilder b;
    b.story({.pages = 1});
    // kex drops its reference a second time while the page is mapped
    auto it = std::find_if(b.events.begin(), b.events.end(),
                           [](const Event& e) { return e.type == KEX_EV_KEX_PAGE_FREE; });
    Event again = *it;
    again.ts += 1;
    again.refcount = 1;
    b.events.insert(it + 1, again);
    const Report r = run(b.events);
    EXPECT_TRUE(has_anomaly(r, "kex freed its reference twice")) << anomalies(r);
}

TEST(CoreCorrelator, FaultPathThroughDoSetPte) {
    StreamBuilder b;
    b.kex_mmap(0x7f0000000000, 1, Policy::drop);
    b.kex_alloc(0x1000, 0);
    b.kex_mmap_done(0x7f0000000000, 1);
    Event& e = b.page(KEX_EV_DO_SET_PTE, 0x1000, 0, 2, 0);
    e.addr = 0x7f0000000000;
    Event& ret = b.add(KEX_EV_DO_SET_PTE_RET); // no pfn: matched by tid
    ret.arg0 = StreamBuilder::pte_for(0x1000, true);
    ret.arg1 = 0xffff888000100000;
    b.page_free(0x1000, 0);
    CorrelatorOptions o;
    o.expected = kMsKexAlloc | kMsInsert | kMsPteSet | kMsPageFree;
    const Report r = run(b.events, o);
    ASSERT_EQ(r.pages.size(), 1u);
    const PageLife& p = r.pages[0];
    EXPECT_EQ(p.pte_source, PteSource::do_set_pte_ret);
    EXPECT_TRUE(decode_pte(p.pte).dirty);
    EXPECT_EQ(p.uaddr, 0x7f0000000000u);
    EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
}

TEST(CoreCorrelator, UnbalancedPhasesAreReported) {
    StreamBuilder b;
    b.phase(KEX_PHASE_WRITE_END);
    b.phase(KEX_PHASE_MMAP_BEGIN);
    b.phase(99);
    Correlator c;
    for (const Event& e : b.events)
        c.feed(e);
    c.flush();
    EXPECT_EQ(c.pending().windows, 1u); // the open mmap phase
    const Report r = c.finish();
    EXPECT_TRUE(has_anomaly(r, "ended without a begin"));
    EXPECT_TRUE(has_anomaly(r, "never ended"));
    EXPECT_TRUE(has_anomaly(r, "unknown phase 99"));
    ASSERT_EQ(r.phases.size(), 1u);
    EXPECT_FALSE(r.phases[0].closed);
}

TEST(CoreCorrelator, AnomaliesAreCapped) {
    StreamBuilder b;
    for (int i = 0; i < 50; ++i)
        b.phase(KEX_PHASE_WRITE_END);
    const Report r = run(b.events, {.roots = {}, .max_anomalies = 10});
    EXPECT_EQ(r.anomalies.size(), 10u);
    EXPECT_EQ(r.anomalies_dropped, 40u);
}

TEST(CoreCorrelator, FinishResetsForANewReport) {
    StreamBuilder b;
    b.story({.pages = 2});
    Correlator c({.roots = {100}});
    for (const Event& e : b.events)
        c.feed(e);
    const Report first = c.finish();
    EXPECT_EQ(first.pages.size(), 2u);
    const Report second = c.finish();
    EXPECT_TRUE(second.pages.empty());
    EXPECT_EQ(second.events, 0u);
    EXPECT_TRUE(c.pending().empty());
}

TEST(CoreCorrelator, ManyPagesStayCompact) {
    StreamBuilder b;
    b.story({.pages = 1024});
    const Report r = run(b.events, {.roots = {}, .reserve_pages = 1024});
    EXPECT_EQ(r.pages.size(), 1024u);
    EXPECT_EQ(r.incomplete_pages(), 0u);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    static_assert(sizeof(Step) == 32);
    EXPECT_EQ(r.stacks.size(), 4u); // interned, not one per page
}

TEST(CoreCorrelator, SurvivesRandomEvents) {
    // Decoded but meaningless events: every known type, fields from a small
    // range so that pfns, tids and addresses collide.
    const std::vector<uint32_t> types = known_event_types();
    std::mt19937_64 rng(1234);
    for (int round = 0; round < 20; ++round) {
        Correlator c({.roots = round % 2 ? std::vector<uint32_t>{} : std::vector<uint32_t>{1, 2},
                      .reorder_window_ns = round % 3 ? 0u : 50u});
        for (int i = 0; i < 5000; ++i) {
            c.feed(random_event(rng, types, false));
        }
        const Report r = c.finish();
        EXPECT_TRUE(c.pending().empty());
        for (const PageLife& p : r.pages)
            for (const Step& s : p.steps)
                EXPECT_LT(s.stack_id, r.stacks.size());
        for (const Anomaly& a : r.anomalies)
            EXPECT_LT(a.life, static_cast<int32_t>(r.pages.size()));
    }
}
