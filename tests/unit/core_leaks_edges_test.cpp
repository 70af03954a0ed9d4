// Leak hunting at the edges, on synthetic streams: frees after the process
// exited, a forked child holding the mapping, kex puts that drop nothing,
// reallocation, the last reference dropped before the cut, size and random
// input.
#include <kextrace/core.h>
#include <kextrace/leaks.h>
#include <kextrace/stream_builder.h>

#include "leak_streams.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

using namespace kextrace;
using Story = StreamBuilder::Story;
using namespace kextrace::test;

TEST(CoreLeaks, FreesAfterTheProcessExited) {
    // The rig is killed: exit_mmap zaps, the frees come later (TLB batching,
    // RCU), after the exit, the VMA close and the file's release.
    StreamBuilder b;
    const Story s{.pages = 4};
    b.map(s);
    b.write(s);
    b.add(KEX_EV_PROC_EXIT);
    b.window(KEX_EV_EXIT_MMAP);
    for (uint32_t i = 0; i < 4; ++i) {
        b.set_dirty(kPfn0 + i, i, 1);
        b.rmap_remove(kPfn0 + i, i, 1);
    }
    b.window(KEX_EV_EXIT_MMAP_RET);
    b.window(KEX_EV_KEX_VMA_CLOSE, s.vm_start, s.vm_start + 4 * kPageSize);
    b.add(KEX_EV_KEX_RELEASE);
    const std::size_t before_frees = b.events.size();
    b.advance(20'000'000);
    for (uint32_t i = 0; i < 4; ++i) {
        b.page_free(kPfn0 + i, i);
        b.page_free_batched(kPfn0 + i, i);
    }
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(l.count(Verdict::freed), 4u) << describe(r, l);
    for (const PageVerdict& v : l.pages)
        EXPECT_TRUE(v.balanced);

    // Cut before the frees (no settle): unmapped, unfreed, but each zap read
    // refcount 1, so its put dropped the last reference and freed the page,
    // unseen. Whoever still runs and whatever is still open, that is no
    // leak; nor is it held (nobody holds a reference).
    std::vector<Event> cut(b.events.begin(), b.events.begin() + static_cast<long>(before_frees));
    const Report rc = correlate(cut);
    for (const LeakOptions& o : {LeakOptions{}, LeakOptions{.device_closed = false, .alive = {100}},
                                 LeakOptions{.device_closed = false, .alive = {999}}}) {
        const LeakReport lc = assess_leaks(rc, o);
        EXPECT_EQ(lc.count(Verdict::inconclusive), 4u) << describe(rc, lc);
        EXPECT_EQ(lc.bugs(), 0u);
    }

    // keep, cut between the zap and kex's put at close: kex's reference is
    // still there. Held while its owner runs with the device open; with the
    // owner gone and the device closed nothing could put it any more: leaked.
    StreamBuilder k;
    k.story({.pages = 4, .policy = Policy::keep});
    for (uint32_t i = 0; i < 4; ++i) {
        never_freed(k, kPfn0 + i);
        k.events.erase(std::remove_if(k.events.begin(), k.events.end(),
                                      [&](const Event& e) {
                                          return of(e, kPfn0 + i, {KEX_EV_KEX_PAGE_FREE});
                                      }),
                       k.events.end());
    }
    const Report rk = correlate(k.events);
    EXPECT_EQ(assess_leaks(rk).count(Verdict::leaked), 4u);
    const LeakReport held = assess_leaks(rk, {.device_closed = false, .alive = {100}});
    EXPECT_EQ(held.count(Verdict::held), 4u) << describe(rk, held);
    EXPECT_EQ(held.bugs(), 0u);
    const LeakReport other =
        assess_leaks(rk, {.device_closed = false, .alive = {999}}); // owner gone
    EXPECT_EQ(other.count(Verdict::leaked), 4u);
}

TEST(CoreLeaks, ForkedChildHoldsTheMapping) {
    // drop, one page; fork copies the PTE (refcount and mapcount +1, no
    // event); the parent unmaps; the child still maps it.
    StreamBuilder b(100);
    const Story s{.pages = 1};
    b.map(s);
    b.fork(200);
    b.window(KEX_EV_UNMAP_REGION, s.vm_start, s.vm_start + kPageSize);
    b.page(KEX_EV_SET_DIRTY, kPfn0, 0, 2, 2);
    b.page(KEX_EV_RMAP_REMOVE, kPfn0, 0, 2, 2);
    b.window(KEX_EV_UNMAP_REGION_RET);
    const std::size_t child_alive = b.events.size();
    b.pid(200).window(KEX_EV_EXIT_MMAP);
    b.page(KEX_EV_SET_DIRTY, kPfn0, 0, 1, 1);
    b.page(KEX_EV_RMAP_REMOVE, kPfn0, 0, 1, 1);
    b.page_free(kPfn0, 0);
    b.page_free_batched(kPfn0, 0);
    b.window(KEX_EV_EXIT_MMAP_RET);

    std::vector<Event> cut(b.events.begin(), b.events.begin() + static_cast<long>(child_alive));
    const Report rc = correlate(cut);
    const LeakReport lc = assess_leaks(rc, {.device_closed = false, .alive = {200}});
    ASSERT_EQ(lc.pages.size(), 1u);
    EXPECT_EQ(lc.pages[0].verdict, Verdict::still_mapped) << describe(rc, lc);
    EXPECT_EQ(lc.pages[0].mapcount, 1);
    EXPECT_EQ(lc.pages[0].refcount, 1);
    // Even "device closed" cannot make a mapped page a leak.
    EXPECT_EQ(assess_leaks(rc).pages[0].verdict, Verdict::still_mapped);

    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    ASSERT_EQ(l.pages.size(), 1u);
    const PageVerdict& v = l.pages[0];
    EXPECT_EQ(v.verdict, Verdict::freed) << describe(r, l);
    EXPECT_TRUE(v.balanced) << describe(r, l);
    EXPECT_EQ(sites(v), (std::vector<RefSite>{RefSite::alloc, RefSite::insert, RefSite::pte_copy,
                                              RefSite::kex_put, RefSite::zap, RefSite::zap}))
        << describe(r, l);
}

TEST(CoreLeaks, KexPutThatDropsNothingIsNoted) {
    // kex traces its put but never calls __free_page: the ledger says so.
    StreamBuilder b;
    b.story({.pages = 1});
    never_freed(b, kPfn0);
    raise_refcount(b, kPfn0, {KEX_EV_SET_DIRTY, KEX_EV_RMAP_REMOVE});
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    ASSERT_EQ(l.pages.size(), 1u);
    const PageVerdict& v = l.pages[0];
    EXPECT_EQ(v.verdict, Verdict::leaked) << describe(r, l);
    const auto it = std::find_if(v.changes.begin(), v.changes.end(),
                                 [](const RefChange& c) { return c.site == RefSite::kex_put; });
    ASSERT_NE(it, v.changes.end());
    EXPECT_EQ(it->delta, 0);
    EXPECT_TRUE(it->inferred);
    EXPECT_EQ(v.changes[v.never_dropped.at(0)].site, RefSite::alloc);
}

TEST(CoreLeaks, ReallocatedWithoutFreeIsInconclusive) {
    StreamBuilder b;
    b.map({.pages = 1});
    b.kex_alloc(kPfn0, 0); // allocated again: the free in between was not seen
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    ASSERT_EQ(l.pages.size(), 2u);
    EXPECT_EQ(l.pages[0].verdict, Verdict::inconclusive) << describe(r, l);
}

// The trace ends between a put that dropped a page's last reference and
// the page's mm_page_free (kextrace --all stopped while other processes kept
// closing their mappings): the put freed the page, the trace did not see it.
// Refcount 0 after the last event is no leak, even with the device closed;
// a page a driver really forgot under the same cut still is one.
TEST(CoreLeaks, LastReferenceDroppedBeforeTheCutIsNoLeak) {
    StreamBuilder b;
    b.story({.pages = 4, .policy = Policy::keep}); // kex's put at close frees: read 1/0
    const std::size_t second = b.events.size();
    b.story({.pages = 2, .vm_start = 0x7f0000100000, .pfn0 = 0x2000}); // drop: the zap's put frees
    const std::size_t third = b.events.size();
    b.story({.pages = 1, .vm_start = 0x7f0000200000, .pfn0 = 0x3000, .policy = Policy::keep});
    for (uint64_t pfn :
         {kPfn0, kPfn0 + 1, kPfn0 + 2, kPfn0 + 3, uint64_t{0x2000}, uint64_t{0x2001}})
        never_freed(b, pfn, pfn < 0x2000 ? 0 : second);
    // inject_noput at close (keep): kex forgets its reference, no kex_page_free, no free.
    b.events.erase(
        std::remove_if(b.events.begin() + static_cast<std::ptrdiff_t>(third), b.events.end(),
                       [](const Event& e) { return of(e, 0x3000, {KEX_EV_KEX_PAGE_FREE}); }),
        b.events.end());
    never_freed(b, 0x3000, third);

    const Report r = correlate(b.events);
    ASSERT_EQ(r.pages.size(), 7u);
    LeakOptions closed;
    closed.device_closed = true; // nothing open could free them any more
    const LeakReport l = assess_leaks(r, closed);
    EXPECT_EQ(l.count(Verdict::leaked), 1u) << describe(r, l);
    EXPECT_EQ(l.count(Verdict::inconclusive), 6u) << describe(r, l);
    for (const PageVerdict& v : l.pages) {
        const PageLife& p = r.pages[v.life];
        if (p.pfn == 0x3000) {
            EXPECT_EQ(v.verdict, Verdict::leaked) << describe(r, l);
            EXPECT_EQ(v.refcount, 1);
            continue;
        }
        EXPECT_EQ(v.verdict, Verdict::inconclusive) << describe(r, l);
        EXPECT_EQ(v.refcount, 0);
        EXPECT_EQ(v.last_refcount, 1);
        const StepKind last = p.policy == Policy::keep ? StepKind::kex_free : StepKind::rmap_remove;
        EXPECT_EQ(p.steps[v.last_step].kind, last);
        EXPECT_NE(v.reason.find(p.policy == Policy::keep ? "kex_free" : "rmap_remove"),
                  std::string::npos)
            << v.reason;
        EXPECT_NE(v.reason.find("no mm_page_free"), std::string::npos) << v.reason;
    }
}

TEST(CoreLeaks, ManyPagesAreCheap) {
    StreamBuilder b;
    b.story({.pages = 4096});
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(l.count(Verdict::freed), 4096u);
}

TEST(CoreLeaks, SurvivesRandomEvents) {
    const std::vector<uint32_t> types = known_event_types();
    std::mt19937_64 rng(4321);
    for (int round = 0; round < 20; ++round) {
        Correlator c;
        for (int i = 0; i < 5000; ++i) {
            c.feed(random_event(rng, types, true));
        }
        const Report r = c.finish();
        const LeakReport l = assess_leaks(r, {.device_closed = round % 2 == 0, .alive = {1, 2}});
        ASSERT_EQ(l.pages.size(), r.pages.size());
        std::size_t total = 0;
        for (std::size_t n : l.counts)
            total += n;
        EXPECT_EQ(total, r.pages.size());
        for (const PageVerdict& v : l.pages) {
            EXPECT_LT(v.leak_stack, r.stacks.size());
            for (const RefChange& ch : v.changes) {
                EXPECT_LT(ch.step, r.pages[v.life].steps.size());
                EXPECT_LT(ch.stack_id, r.stacks.size());
                EXPECT_GE(ch.open, 0);
            }
            for (uint32_t i : v.never_dropped)
                EXPECT_LT(i, v.changes.size());
        }
    }
}
