// The correlator on synthetic streams (Perfetto tracker style): build a
// sequence with StreamBuilder, feed it, check the report's rows, and check
// that nothing was left pending once every event was processed.
#include <kextrace/core.h>
#include <kextrace/stream_builder.h>

#include "correlate_all.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

using namespace kextrace;
using Story = StreamBuilder::Story;
using namespace kextrace::test;

namespace {

const std::vector<int32_t> kTrail = {1, 2, 1, 0};

std::vector<StepKind> kinds(const PageLife& p) {
    std::vector<StepKind> k;
    for (const Step& s : p.steps)
        k.push_back(s.kind);
    return k;
}

// The per-page facts two reports must agree on.
void expect_same_pages(const Report& a, const Report& b) {
    ASSERT_EQ(a.pages.size(), b.pages.size());
    for (std::size_t i = 0; i < a.pages.size(); ++i) {
        const PageLife &p = a.pages[i], &q = b.pages[i];
        EXPECT_EQ(p.pfn, q.pfn) << i;
        EXPECT_EQ(p.index, q.index) << i;
        EXPECT_EQ(p.uaddr, q.uaddr) << i;
        EXPECT_EQ(kinds(p), kinds(q)) << i;
        EXPECT_EQ(p.missing, q.missing) << i;
        EXPECT_EQ(p.pte, q.pte) << i;
        EXPECT_EQ(p.first_write, q.first_write) << i;
        EXPECT_EQ(p.zap_context, q.zap_context) << i;
        EXPECT_EQ(p.zap_dirty, q.zap_dirty) << i;
        EXPECT_EQ(refcount_trail(p), refcount_trail(q)) << i;
    }
    EXPECT_EQ(a.anomalies.size(), b.anomalies.size()) << anomalies(a) << "--\n" << anomalies(b);
    EXPECT_EQ(a.counts, b.counts);
}

// The events fully shuffled give the report of their sorted order, clean.
void expect_same_shuffled(const std::vector<Event>& events, const Report& sorted, unsigned seed) {
    std::vector<Event> shuffled = events;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(seed));
    const Report r = run(shuffled);
    expect_same_pages(sorted, r);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
}

} // namespace

TEST(CoreCorrelator, CleanDropStoryOfEightPages) {
    StreamBuilder b;
    b.story({.pages = 8});
    const Report r = run(b.events, {.roots = {100}});

    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    EXPECT_EQ(r.orphans, 0u);
    EXPECT_EQ(r.filtered, 0u);
    EXPECT_EQ(r.other_allocations, 0u);
    EXPECT_EQ(r.events, b.events.size());
    EXPECT_EQ(r.tgids, std::vector<uint32_t>{100});
    ASSERT_EQ(r.pages.size(), 8u);
    for (uint32_t i = 0; i < 8; ++i) {
        const PageLife& p = r.pages[i];
        SCOPED_TRACE(i);
        EXPECT_EQ(p.index, i);
        EXPECT_EQ(p.pfn, 0x1000u + i);
        EXPECT_EQ(p.uaddr, 0x7f0000000000u + i * kPageSize);
        EXPECT_EQ(p.owner, 100u);
        EXPECT_EQ(p.mapping, 0);
        EXPECT_EQ(p.policy, Policy::drop);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
        EXPECT_EQ(p.seen, kMsAll);
        EXPECT_EQ(refcount_trail(p), kTrail);
        EXPECT_EQ(mapcount_trail(p), (std::vector<int32_t>{0, 1, 0}));
        EXPECT_EQ(p.pte, StreamBuilder::pte_for(p.pfn));
        EXPECT_EQ(p.pte_source, PteSource::insert_ret);
        EXPECT_EQ(decode_pte(p.pte).pfn, p.pfn);
        EXPECT_EQ(p.insert_ret, 0);
        EXPECT_EQ(p.first_write, FirstWrite::no_fault);
        EXPECT_EQ(p.zap_context, ZapContext::munmap);
        EXPECT_TRUE(p.zap_dirty);
        EXPECT_EQ(p.kex_free_reason, static_cast<uint32_t>(KEX_FREE_AFTER_INSERT));
        EXPECT_TRUE(p.free_batched);
        EXPECT_FALSE(p.open_at_end);
        EXPECT_EQ(kinds(p),
                  (std::vector<StepKind>{
                      StepKind::kmem_alloc, StepKind::kex_alloc, StepKind::insert,
                      StepKind::rmap_add, StepKind::insert_ret, StepKind::pte_set,
                      StepKind::kex_insert, StepKind::kex_free, StepKind::set_dirty,
                      StepKind::rmap_remove, StepKind::page_free, StepKind::page_free_batched}));
        // Stacks are interned: every page shares the same alloc stack.
        EXPECT_EQ(p.steps[1].stack_id, r.pages[0].steps[1].stack_id);
        EXPECT_NE(p.steps[1].stack_id, 0u);
    }
    EXPECT_EQ(r.stacks.size(), 4u); // empty + kex alloc + kex free + page free

    ASSERT_EQ(r.mappings.size(), 1u);
    const Mapping& m = r.mappings[0];
    EXPECT_EQ(m.vm_start, 0x7f0000000000u);
    EXPECT_EQ(m.vm_end, 0x7f0000008000u);
    EXPECT_EQ(m.pages, 8u);
    EXPECT_EQ(m.policy, Policy::drop);
    EXPECT_EQ(m.ret, 0);
    EXPECT_EQ(m.mapped, 8u);
    EXPECT_EQ(m.lives, 8u);
    EXPECT_NE(m.close_ts, 0u);

    ASSERT_EQ(r.phases.size(), 3u);
    EXPECT_EQ(r.phases[0].name, "mmap");
    EXPECT_EQ(r.phases[1].name, "write");
    EXPECT_EQ(r.phases[2].name, "munmap");
    for (const Phase& ph : r.phases) {
        EXPECT_TRUE(ph.closed);
        EXPECT_LT(ph.start, ph.end);
        EXPECT_EQ(ph.user_faults, 0u);
    }
    EXPECT_EQ(r.phases[0].counts[KEX_EV_KEX_PAGE_ALLOC], 8u);
    EXPECT_EQ(r.phases[0].counts[KEX_EV_INSERT_RET], 8u);
    EXPECT_EQ(r.phases[0].counts[KEX_EV_RMAP_REMOVE], 0u);
    EXPECT_EQ(r.phases[1].kernel_events, 0u); // the MMU writes, the kernel is silent
    EXPECT_EQ(r.phases[2].counts[KEX_EV_RMAP_REMOVE], 8u);
    EXPECT_EQ(r.phases[2].counts[KEX_EV_PAGE_FREE], 8u);
    EXPECT_EQ(r.counts[KEX_EV_RIG_PHASE], 6u);
    EXPECT_EQ(r.counts[KEX_EV_PAGE_FREE_BATCHED], 8u);
    EXPECT_EQ(r.incomplete_pages(), 0u);
}

TEST(CoreCorrelator, KeepPolicyDropsKexReferenceAtClose) {
    StreamBuilder b;
    b.story({.pages = 4, .policy = Policy::keep});
    const Report r = run(b.events);

    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    ASSERT_EQ(r.pages.size(), 4u);
    for (const PageLife& p : r.pages) {
        EXPECT_EQ(p.policy, Policy::keep);
        EXPECT_TRUE(p.complete()) << milestone_names(p.missing);
        EXPECT_EQ(refcount_trail(p), kTrail);
        EXPECT_EQ(p.kex_free_reason, static_cast<uint32_t>(KEX_FREE_AT_CLOSE));
        EXPECT_FALSE(p.free_batched); // __free_page at close, not release_pages
        // kex's free comes after the zap
        const auto k = kinds(p);
        EXPECT_LT(std::find(k.begin(), k.end(), StepKind::rmap_remove),
                  std::find(k.begin(), k.end(), StepKind::kex_free));
    }
    EXPECT_TRUE(r.tgids.empty()); // all processes
}

TEST(CoreCorrelator, KeepOrderingViolationIsFlagged) {
    // A keep mapping whose pages kex frees (reason at-close) before the zap.
    StreamBuilder b;
    b.map({.pages = 1, .policy = Policy::keep});
    b.kex_free(0x1000, 0, KEX_FREE_AT_CLOSE, 2, 1);
    b.window(KEX_EV_UNMAP_REGION, 0x7f0000000000, 0x7f0000001000);
    b.rmap_remove(0x1000, 0, 1);
    b.page_free(0x1000, 0);
    b.window(KEX_EV_UNMAP_REGION_RET);
    const Report r = run(b.events);
    EXPECT_TRUE(has_anomaly(r, "policy keep, but kex freed its reference while still mapped"))
        << anomalies(r);
}

TEST(CoreCorrelator, OutOfOrderCpusGiveTheSameReport) {
    StreamBuilder b;
    b.story({.pages = 8});
    const Report sorted = run(b.events);

    // Two CPUs: every other event on CPU 1, each CPU's buffer drained in turn.
    std::vector<Event> cpu0, cpu1;
    for (std::size_t i = 0; i < b.events.size(); ++i) {
        Event e = b.events[i];
        e.cpu = i % 2;
        (i % 2 ? cpu1 : cpu0).push_back(std::move(e));
    }
    std::vector<Event> interleaved = cpu1;
    interleaved.insert(interleaved.end(), cpu0.begin(), cpu0.end());
    expect_same_pages(sorted, run(interleaved));

    expect_same_shuffled(b.events, sorted, 7);
}

TEST(CoreCorrelator, ReorderWindowProcessesIncrementally) {
    StreamBuilder b(100, 1'000'000'000, 100);
    b.story({.pages = 200}); // > 2000 events
    const Report sorted = run(b.events);

    // Disorder within 1 us, window 5 us: nothing late.
    std::vector<Event> jittered = b.events;
    std::mt19937 rng(3);
    for (std::size_t i = 0; i + 8 <= jittered.size(); i += 8)
        std::shuffle(jittered.begin() + i, jittered.begin() + i + 8, rng);
    Correlator c({.roots = {}, .reorder_window_ns = 5000});
    for (const Event& e : jittered)
        c.feed(e);
    EXPECT_LT(c.pending().buffered, jittered.size()); // processed as it went
    c.flush();
    EXPECT_TRUE(c.pending().empty());
    const Report r = c.finish();
    EXPECT_EQ(r.late, 0u);
    expect_same_pages(sorted, r);
}

TEST(CoreCorrelator, EventOlderThanTheWindowIsLate) {
    StreamBuilder b;
    b.story({.pages = 200});
    // Hold back page 7's rmap_add and deliver it at the very end.
    auto it = std::find_if(b.events.begin(), b.events.end(), [](const Event& e) {
        return e.type == KEX_EV_RMAP_ADD && e.pfn == 0x1007;
    });
    ASSERT_NE(it, b.events.end());
    Event held = *it;
    b.events.erase(it);
    Correlator c({.roots = {}, .reorder_window_ns = 1000});
    for (const Event& e : b.events)
        c.feed(e);
    c.feed(held);
    const Report r = c.finish();
    EXPECT_EQ(r.late, 1u);
    const PageLife& p = r.pages[7];
    EXPECT_TRUE(p.complete());
    const auto s = std::find_if(p.steps.begin(), p.steps.end(),
                                [](const Step& s) { return s.kind == StepKind::rmap_add; });
    ASSERT_NE(s, p.steps.end());
    EXPECT_TRUE(s->flags & kStepLate);
    EXPECT_TRUE(std::is_sorted(p.steps.begin(), p.steps.end(),
                               [](const Step& a, const Step& b) { return a.ts < b.ts; }));
}

TEST(CoreCorrelator, MissingZapNamesTheStep) {
    StreamBuilder b;
    b.story({.pages = 8});
    b.drop_if([](const Event& e) { return e.type == KEX_EV_RMAP_REMOVE && e.pfn == 0x1003; });
    const Report r = run(b.events);
    ASSERT_EQ(r.pages.size(), 8u);
    EXPECT_EQ(r.incomplete_pages(), 1u);
    const PageLife& p = r.pages[3];
    EXPECT_FALSE(p.complete());
    EXPECT_EQ(p.missing, kMsZap);
    EXPECT_EQ(p.missing_lost, 0); // no losses reported: not observed
    EXPECT_EQ(milestone_names(p.missing), "zap");
    EXPECT_EQ(p.zap_context, ZapContext::none);
    // With the zap gone, mm_page_free looks like a free under a live mapping.
    EXPECT_TRUE(has_anomaly(r, "page 3 (pfn 0x1003): freed while still mapped")) << anomalies(r);
    EXPECT_EQ(p.anomalies, 1u);
}

TEST(CoreCorrelator, MissingInsertSideSteps) {
    StreamBuilder b;
    b.story({.pages = 2});
    b.drop_if([](const Event& e) {
        return e.pfn == 0x1001 && (e.type == KEX_EV_INSERT_RET || e.type == KEX_EV_RMAP_ADD);
    });
    const Report r = run(b.events, {}, nullptr, 1); // the insert entry without its return
    const PageLife& p = r.pages[1];
    EXPECT_EQ(p.missing, kMsRmapAdd | kMsPteSet);
    EXPECT_EQ(milestone_names(p.missing), "rmap add, pte");
    EXPECT_EQ(p.pte, 0u);
    EXPECT_TRUE(r.pages[0].complete());
    // the insert entry never got its return
    EXPECT_TRUE(has_anomaly(r, "insert of pfn 0x1001")) << anomalies(r);
}

TEST(CoreCorrelator, LossesMarkTheHoleAsLost) {
    StreamBuilder b;
    b.story({.pages = 4});
    b.drop_if([](const Event& e) { return e.type == KEX_EV_KEX_PAGE_FREE && e.pfn == 0x1002; });
    Losses l;
    l.per_type[KEX_EV_KEX_PAGE_FREE] = 1;
    const Report r = run(b.events, {}, &l);
    const PageLife& p = r.pages[2];
    EXPECT_FALSE(p.complete());
    EXPECT_EQ(p.missing, kMsKexFree);
    EXPECT_EQ(p.missing_lost, kMsKexFree);
    EXPECT_EQ(r.losses.total(), 1u);
    EXPECT_EQ(r.losses.per_type[KEX_EV_KEX_PAGE_FREE], 1u);
    EXPECT_EQ(r.incomplete_pages(), 1u);

    // A ring-buffer loss (no type) makes every hole possibly lost.
    Losses ring;
    ring.ring = 3;
    const Report r2 = run(b.events, {}, &ring);
    EXPECT_EQ(r2.pages[2].missing_lost, kMsKexFree);
}

TEST(CoreCorrelator, TraceEndingBeforeTheFreeLeavesLivePages) {
    StreamBuilder b;
    b.map({.pages = 2, .policy = Policy::keep});
    Correlator c;
    for (const Event& e : b.events)
        c.feed(e);
    c.flush();
    EXPECT_EQ(c.pending().open_lives, 2u);
    const Report r = c.finish();
    EXPECT_TRUE(c.pending().empty());
    for (const PageLife& p : r.pages) {
        EXPECT_TRUE(p.open_at_end);
        EXPECT_EQ(p.missing, kMsKexFree | kMsZap | kMsPageFree);
    }
}

TEST(CoreCorrelator, PfnReusedAfterFreeStartsANewLife) {
    StreamBuilder b;
    b.story({.pages = 2, .pfn0 = 0x5000});
    b.story({.pages = 2, .vm_start = 0x7f0000100000, .pfn0 = 0x5000});
    const Report r = run(b.events);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
    ASSERT_EQ(r.pages.size(), 4u);
    EXPECT_EQ(r.pages[0].pfn, r.pages[2].pfn);
    EXPECT_EQ(r.pages[1].pfn, r.pages[3].pfn);
    EXPECT_EQ(r.pages[0].mapping, 0);
    EXPECT_EQ(r.pages[2].mapping, 1);
    EXPECT_EQ(r.pages[2].uaddr, 0x7f0000100000u);
    for (const PageLife& p : r.pages) {
        EXPECT_TRUE(p.complete());
        EXPECT_EQ(refcount_trail(p), kTrail);
        EXPECT_TRUE(p.free_batched);
    }
    EXPECT_EQ(r.orphans, 0u);
}

// One pfn, several lives: closed, opened again, allocated again before its
// free: the open lives counted stay those not closed.
TEST(CoreCorrelator, OpenLivesFollowAPfnsLives) {
    StreamBuilder b;
    Correlator c;
    auto feed_and_flush = [&] {
        for (const Event& e : b.events)
            c.feed(e);
        c.flush();
        b.events.clear();
    };
    b.story({.pages = 2});
    feed_and_flush();
    EXPECT_EQ(c.pending().open_lives, 0u);
    b.map({.pages = 2});    // the same pfns again
    b.kex_alloc(0x1000, 0); // pfn 0x1000 allocated again before its free was seen
    b.page_free(0x1001, 1); // pfn 0x1001's second life closes
    feed_and_flush();
    EXPECT_EQ(c.pending().open_lives, 1u);
    const Report r = c.finish();
    ASSERT_EQ(r.pages.size(), 5u);
    EXPECT_FALSE(r.pages[2].open_at_end); // closed by the second allocation
    EXPECT_FALSE(r.pages[3].open_at_end);
    EXPECT_TRUE(r.pages[4].open_at_end);
}

// Enough events for the radix sort of the sort keys (kRadixMin), shuffled.
TEST(CoreCorrelator, ShuffledLargeStreamGivesTheSameReport) {
    StreamBuilder b;
    b.story({.pages = 7000}); // ~77,000 events
    ASSERT_GT(b.events.size(), std::size_t{1} << 16);
    expect_same_shuffled(b.events, run(b.events), 11);
}

// A span of time too wide for a sort key of ts and index in one word (2^62
// ns between two stories): the keys are plain indices sorted by ts.
TEST(CoreCorrelator, WideTimeSpanSortsByTs) {
    StreamBuilder b;
    b.story({.pages = 8});
    b.advance(uint64_t{1} << 62);
    b.story({.pages = 8, .vm_start = 0x7f0000100000, .pfn0 = 0x2000});
    const Report sorted = run(b.events);
    ASSERT_EQ(sorted.pages.size(), 16u);
    std::vector<Event> reversed(b.events.rbegin(), b.events.rend());
    const Report r = run(reversed);
    expect_same_pages(sorted, r);
    EXPECT_EQ(r.first_ts, b.events.front().ts);
    EXPECT_EQ(r.last_ts, b.events.back().ts);
    EXPECT_TRUE(r.anomalies.empty()) << anomalies(r);
}
