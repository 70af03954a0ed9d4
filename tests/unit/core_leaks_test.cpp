// Leak hunting on synthetic streams: the verdict of every page life, the
// reference ledger rebuilt from the refcounts, and the stack of the reference
// a driver forgot. The buggy drivers are written as edits of a clean story:
// drop the events of the put kex forgot, raise the counts it left behind.
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

TEST(CoreLeaks, VerdictNames) {
    EXPECT_EQ(verdict_name(Verdict::freed_while_mapped), "freed while mapped");
    EXPECT_EQ(verdict_key(Verdict::freed_while_mapped), "freed_while_mapped");
    EXPECT_EQ(verdict_key(Verdict::still_mapped), "still_mapped");
    EXPECT_EQ(verdict_key(Verdict::leaked), "leaked");
    EXPECT_EQ(ref_site_name(RefSite::insert), "vm_insert_page");
    EXPECT_EQ(ref_site_key(RefSite::kex_put), "kex_put");
}

TEST(CoreLeaks, CleanDropRunFreesEveryPage) {
    StreamBuilder b;
    b.story({.pages = 8});
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    ASSERT_EQ(l.pages.size(), 8u);
    EXPECT_EQ(l.count(Verdict::freed), 8u) << describe(r, l);
    EXPECT_EQ(l.bugs(), 0u);
    for (const PageVerdict& v : l.pages) {
        EXPECT_TRUE(v.balanced) << describe(r, l);
        EXPECT_TRUE(v.never_dropped.empty());
        EXPECT_EQ(v.refcount, 0);
        // alloc at kex_page_alloc, the mapping's at the insert, kex's put, the zap's.
        EXPECT_EQ(sites(v), (std::vector<RefSite>{RefSite::alloc, RefSite::insert, RefSite::kex_put,
                                                  RefSite::zap}))
            << describe(r, l);
        EXPECT_EQ(deltas(v), (std::vector<int32_t>{1, 1, -1, -1}));
        EXPECT_EQ(v.changes[0].kind, StepKind::kex_alloc);
        EXPECT_EQ(r.stack(v.changes[0].stack_id)[0], 0xffffffffc0001000u); // kex's mmap
        EXPECT_EQ(v.changes[1].kind, StepKind::insert);
        EXPECT_EQ(v.changes[3].kind, StepKind::rmap_remove);
        // The zap's put is done by the release that frees: that free's stack.
        EXPECT_EQ(r.stack(v.changes[3].stack_id)[0], 0xffffffff81300000u);
        EXPECT_EQ(v.ledger.size(), 4u);
    }
}

TEST(CoreLeaks, CleanKeepRunFreesEveryPage) {
    StreamBuilder b;
    b.story({.pages = 4, .policy = Policy::keep});
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(l.count(Verdict::freed), 4u) << describe(r, l);
    for (const PageVerdict& v : l.pages) {
        EXPECT_TRUE(v.balanced);
        // keep: the zap drops the mapping's reference, kex's put frees.
        EXPECT_EQ(sites(v), (std::vector<RefSite>{RefSite::alloc, RefSite::insert, RefSite::zap,
                                                  RefSite::kex_put}))
            << describe(r, l);
    }
}

TEST(CoreLeaks, NoputLeaksExactlyThosePagesWithTheAllocStack) {
    StreamBuilder b;
    b.story({.pages = 8});
    noput(b, kPfn0 + 1);
    noput(b, kPfn0 + 5);
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(indexes_with(r, l, Verdict::leaked), (std::set<uint32_t>{1, 5})) << describe(r, l);
    EXPECT_EQ(l.count(Verdict::freed), 6u);
    EXPECT_EQ(l.bugs(), 2u);
    for (uint32_t idx : {1u, 5u}) {
        const PageVerdict& v = page_at(r, l, idx);
        EXPECT_EQ(r.pages[v.life].pfn, kPfn0 + idx);
        // After the zap's put: one reference left, no mapping.
        EXPECT_EQ(v.refcount, 1);
        EXPECT_EQ(v.mapcount, 0);
        EXPECT_EQ(v.last_refcount, 2); // read at the zap, before its put
        EXPECT_EQ(r.pages[v.life].steps[v.last_step].kind, StepKind::rmap_remove);
        ASSERT_EQ(v.never_dropped.size(), 1u) << describe(r, l);
        const RefChange& open = v.changes[v.never_dropped[0]];
        EXPECT_EQ(open.site, RefSite::alloc);
        EXPECT_EQ(open.kind, StepKind::kex_alloc);
        EXPECT_EQ(open.open, 1);
        ASSERT_NE(v.leak_stack, 0u);
        EXPECT_EQ(r.stack(v.leak_stack)[0], 0xffffffffc0001000u); // kex_mmap+0x...
        EXPECT_TRUE(v.balanced);
        // The zap's put after the last event is inferred.
        EXPECT_TRUE(v.changes.back().inferred);
        EXPECT_EQ(v.changes.back().site, RefSite::zap);
        EXPECT_NE(v.reason.find("alloc at kex_alloc"), std::string::npos) << v.reason;
    }
}

TEST(CoreLeaks, ExtraGetIsBookedAtTheLaterEventsSite) {
    StreamBuilder b;
    b.story({.pages = 8});
    extra_get(b, kPfn0 + 3);
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(indexes_with(r, l, Verdict::leaked), (std::set<uint32_t>{3})) << describe(r, l);
    const PageVerdict& v = page_at(r, l, 3);
    EXPECT_EQ(v.refcount, 1);
    EXPECT_EQ(v.mapcount, 0);
    EXPECT_FALSE(v.balanced); // an unexplained take
    ASSERT_EQ(v.never_dropped.size(), 1u) << describe(r, l);
    const RefChange& open = v.changes[v.never_dropped[0]];
    EXPECT_EQ(open.site, RefSite::unexplained);
    // Seen at kex's put (reading 3), taken after kex_page_insert (reading 2).
    EXPECT_EQ(open.kind, StepKind::kex_free);
    EXPECT_EQ(change_where(r.pages[v.life], open), "between kex_insert and kex_free");
    ASSERT_NE(v.leak_stack, 0u);
    EXPECT_EQ(std::vector<uint64_t>(r.stack(v.leak_stack).begin(), r.stack(v.leak_stack).end()),
              kKexFreeStack);
    EXPECT_NE(v.reason.find("unexplained between kex_insert and kex_free"), std::string::npos)
        << v.reason;
    // refcount 3 after the insert: alloc, vm_insert_page, and the extra one.
    int32_t taken = 0;
    for (const RefChange& c : v.changes)
        if (c.delta > 0)
            taken += c.delta;
    EXPECT_EQ(taken, 3);
    // Ledger: kex's put cancels the allocation's, the zap the insert's.
    for (const RefChange& c : v.changes)
        if (c.site == RefSite::alloc || c.site == RefSite::insert) {
            EXPECT_EQ(c.open, 0);
        }
}

TEST(CoreLeaks, ExtraGetUnderKeepFallsBackToTheEarlierStack) {
    // keep: no event between kex_page_insert and the zap's set_dirty, which
    // has no stack: the insert's stack says where.
    StreamBuilder b;
    b.story({.pages = 4, .policy = Policy::keep});
    extra_get(b, kPfn0 + 3);
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(indexes_with(r, l, Verdict::leaked), (std::set<uint32_t>{3})) << describe(r, l);
    const PageVerdict& v = page_at(r, l, 3);
    EXPECT_EQ(v.refcount, 1);
    ASSERT_EQ(v.never_dropped.size(), 1u) << describe(r, l);
    const RefChange& open = v.changes[v.never_dropped[0]];
    EXPECT_EQ(change_where(r.pages[v.life], open), "between kex_insert and set_dirty");
    EXPECT_EQ(std::vector<uint64_t>(r.stack(v.leak_stack).begin(), r.stack(v.leak_stack).end()),
              kInsertSiteStack);
}

TEST(CoreLeaks, ErrorPathPageNeverMappedNeverFreed) {
    // fail at page 3 under drop: kex returns without putting page 3; pages
    // 0..2, unmapped by the kernel's error path, are freed.
    StreamBuilder b;
    b.story({.pages = 8, .fail_at = 3});
    fail_leak(b, kPfn0 + 3);
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(indexes_with(r, l, Verdict::leaked), (std::set<uint32_t>{3})) << describe(r, l);
    EXPECT_EQ(indexes_with(r, l, Verdict::freed), (std::set<uint32_t>{0, 1, 2}));
    const PageVerdict& v = page_at(r, l, 3);
    EXPECT_EQ(v.refcount, 1);
    EXPECT_EQ(v.mapcount, 0);
    ASSERT_EQ(v.never_dropped.size(), 1u);
    EXPECT_EQ(v.changes[v.never_dropped[0]].site, RefSite::alloc);
    EXPECT_EQ(r.stack(v.leak_stack)[0], 0xffffffffc0001000u);
}

TEST(CoreLeaks, ErrorPathUnderKeepLeaksTheMappedPagesToo) {
    // keep: kex holds pages 0..k-1 too and returns without putting any; the
    // kernel zaps 0..k-1 (the mapping's reference), nobody puts kex's.
    StreamBuilder b;
    b.story({.pages = 8, .policy = Policy::keep, .fail_at = 3});
    for (uint64_t i = 0; i <= 3; ++i)
        fail_leak(b, kPfn0 + i);
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(indexes_with(r, l, Verdict::leaked), (std::set<uint32_t>{0, 1, 2, 3}))
        << describe(r, l);
    for (uint32_t i = 0; i < 3; ++i) {
        const PageVerdict& v = page_at(r, l, i);
        EXPECT_EQ(v.refcount, 1) << describe(r, l);
        EXPECT_EQ(v.mapcount, 0);
        ASSERT_EQ(v.never_dropped.size(), 1u);
        EXPECT_EQ(v.changes[v.never_dropped[0]].site, RefSite::alloc);
    }
}

TEST(CoreLeaks, LiveMappingIsStillMapped) {
    for (Policy pol : {Policy::drop, Policy::keep}) {
        StreamBuilder b;
        b.map({.pages = 4, .policy = pol});
        const Report r = correlate(b.events);
        const LeakReport l = assess_leaks(r);
        EXPECT_EQ(l.count(Verdict::still_mapped), 4u) << describe(r, l);
        EXPECT_EQ(l.bugs(), 0u);
        for (const PageVerdict& v : l.pages) {
            EXPECT_EQ(v.mapcount, 1);
            EXPECT_EQ(v.refcount, pol == Policy::drop ? 1 : 2) << describe(r, l);
        }
    }
}

TEST(CoreLeaks, FreeWithoutZapIsFreedWhileMapped) {
    StreamBuilder b;
    b.story({.pages = 4});
    b.drop_if([](const Event& e) {
        return of(e, kPfn0 + 2, {KEX_EV_SET_DIRTY, KEX_EV_RMAP_REMOVE});
    });
    {
        const Report r = correlate(b.events);
        const LeakReport l = assess_leaks(r);
        EXPECT_EQ(indexes_with(r, l, Verdict::freed_while_mapped), (std::set<uint32_t>{2}))
            << describe(r, l);
        EXPECT_EQ(l.bugs(), 1u);
        EXPECT_NE(page_at(r, l, 2).reason.find("mapcount was 1"), std::string::npos);
    }
    // The same hole with rmap removals lost: the zap may have happened.
    Losses losses;
    losses.per_type[KEX_EV_RMAP_REMOVE] = 1;
    const Report r = correlate(b.events, &losses);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(indexes_with(r, l, Verdict::inconclusive), (std::set<uint32_t>{2})) << describe(r, l);
    EXPECT_EQ(l.bugs(), 0u);
}

TEST(CoreLeaks, ExtraPutIsAnUnexplainedDropAtTheFree) {
    // Some path puts the page once more with no event of its own: it is
    // freed with the PTE still set; the put is booked at the free (its stack).
    StreamBuilder b;
    b.map({.pages = 1});
    b.page_free(kPfn0, 0);
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    ASSERT_EQ(l.pages.size(), 1u);
    const PageVerdict& v = l.pages[0];
    EXPECT_EQ(v.verdict, Verdict::freed_while_mapped) << describe(r, l);
    EXPECT_FALSE(v.balanced);
    EXPECT_EQ(sites(v), (std::vector<RefSite>{RefSite::alloc, RefSite::insert, RefSite::kex_put,
                                              RefSite::unexplained}))
        << describe(r, l);
    EXPECT_EQ(v.changes.back().kind, StepKind::page_free);
    EXPECT_EQ(r.stack(v.changes.back().stack_id)[0], 0xffffffff81300000u);

    // Two traced puts instead: explained, still freed while mapped.
    StreamBuilder b2;
    b2.map({.pages = 1});
    b2.kex_free(kPfn0, 0, KEX_FREE_AFTER_INSERT, 1, 1);
    b2.page_free(kPfn0, 0);
    const Report r2 = correlate(b2.events);
    const LeakReport l2 = assess_leaks(r2);
    EXPECT_EQ(l2.pages[0].verdict, Verdict::freed_while_mapped);
    EXPECT_EQ(sites(l2.pages[0]), (std::vector<RefSite>{RefSite::alloc, RefSite::insert,
                                                        RefSite::kex_put, RefSite::kex_put}));
}

TEST(CoreLeaks, LossesMakeUnfreedPagesInconclusive) {
    StreamBuilder b;
    b.story({.pages = 8});
    noput(b, kPfn0 + 1);
    noput(b, kPfn0 + 5);
    Losses losses;
    losses.per_type[KEX_EV_PAGE_FREE] = 2;
    const Report r = correlate(b.events, &losses);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(l.count(Verdict::leaked), 0u) << describe(r, l);
    EXPECT_EQ(indexes_with(r, l, Verdict::inconclusive), (std::set<uint32_t>{1, 5}));
    EXPECT_EQ(l.count(Verdict::freed), 6u); // a free seen is a free
    EXPECT_EQ(l.events_lost, 2u);

    // Records lost without a type: nothing unfreed is called leaked either.
    Losses ring;
    ring.ring = 1;
    const Report r2 = correlate(b.events, &ring);
    const LeakReport l2 = assess_leaks(r2);
    EXPECT_EQ(l2.count(Verdict::leaked), 0u);
    EXPECT_EQ(l2.count(Verdict::inconclusive), 2u);
}

TEST(CoreLeaks, FreeNotObservableIsInconclusive) {
    StreamBuilder b;
    b.story({.pages = 2});
    never_freed(b, kPfn0);
    never_freed(b, kPfn0 + 1);
    CorrelatorOptions o;
    o.expected = static_cast<uint16_t>(kMsDefaultExpected & ~kMsPageFree);
    Correlator c(o);
    for (const Event& e : b.events)
        c.feed(e);
    const Report r = c.finish();
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(l.count(Verdict::inconclusive), 2u) << describe(r, l);
}

TEST(CoreLeaks, PfnReusedAfterFree) {
    // Same pfns twice: the first lives are freed, the second ones leak.
    StreamBuilder b;
    b.story({.pages = 2});
    const std::size_t second = b.events.size();
    b.story({.pages = 2, .vm_start = 0x7f0000100000});
    noput(b, kPfn0, second);
    noput(b, kPfn0 + 1, second);
    const Report r = correlate(b.events);
    ASSERT_EQ(r.pages.size(), 4u);
    const LeakReport l = assess_leaks(r);
    EXPECT_EQ(verdicts(l), (std::vector<Verdict>{Verdict::freed, Verdict::freed, Verdict::leaked,
                                                 Verdict::leaked}))
        << describe(r, l);
    EXPECT_EQ(r.pages[0].pfn, r.pages[2].pfn);
    EXPECT_EQ(l.pages[2].refcount, 1);
}

// What a counts plot draws: each step's effect at the step, the ledger's
// bookings summed in step order (kex's put drops the refcount at the put,
// not at the next reading).
static void expect_counts_follow_the_ledger(const Report& r, const LeakReport& l) {
    for (const PageVerdict& v : l.pages) {
        const PageLife& p = r.pages[v.life];
        const std::vector<CountsAfter> after = counts_after_steps(p);
        ASSERT_EQ(after.size(), p.steps.size());
        for (const RefChange& c : v.changes) {
            if (c.site == RefSite::alloc)
                continue; // booked at kex_alloc, drawn from the first reading
            int64_t sum = 0;
            for (const RefChange& d : v.changes)
                if (d.site == RefSite::alloc || d.step <= c.step)
                    sum += d.delta;
            EXPECT_EQ(after[c.step].refcount, sum)
                << "life " << v.life << " at " << step_kind_name(c.kind);
        }
        EXPECT_EQ(after.back().refcount, v.refcount) << "life " << v.life;
    }
}

TEST(CoreLeaks, CountsAfterStepDownAtKexsPutUnderDrop) {
    StreamBuilder b;
    b.story({.pages = 4});
    const Report r = correlate(b.events);
    const LeakReport l = assess_leaks(r);
    expect_counts_follow_the_ledger(r, l);
    for (const PageLife& p : r.pages) {
        const std::vector<CountsAfter> after = counts_after_steps(p);
        std::vector<int32_t> ref_at, map_at;
        for (std::size_t i = 0; i < p.steps.size(); ++i) {
            const StepKind k = p.steps[i].kind;
            if (k == StepKind::insert || k == StepKind::rmap_add || k == StepKind::kex_free ||
                k == StepKind::rmap_remove || k == StepKind::page_free) {
                ref_at.push_back(after[i].refcount);
                map_at.push_back(after[i].mapcount);
            }
            if (k == StepKind::kex_free) {
                EXPECT_EQ(p.steps[i].refcount, 2); // read before kex's put
                EXPECT_EQ(after[i].refcount, 1);   // and drawn after it
            }
        }
        // insert, rmap_add, kex_free, rmap_remove, page_free
        EXPECT_EQ(ref_at, (std::vector<int32_t>{2, 2, 1, 0, 0}));
        EXPECT_EQ(map_at, (std::vector<int32_t>{0, 1, 1, 0, 0}));
    }
}

TEST(CoreLeaks, CountsAfterFollowTheLedgerUnderKeepAndBugs) {
    StreamBuilder b;
    b.story({.pages = 4, .policy = Policy::keep});
    const Report keep = correlate(b.events);
    expect_counts_follow_the_ledger(keep, assess_leaks(keep));

    StreamBuilder bug;
    bug.story({.pages = 4});
    noput(bug, kPfn0 + 1);
    raise_refcount(bug, kPfn0 + 2, {KEX_EV_KEX_PAGE_INSERT, KEX_EV_KEX_PAGE_FREE}, 1);
    const Report r = correlate(bug.events);
    const LeakReport l = assess_leaks(r);
    expect_counts_follow_the_ledger(r, l);
    // The page kex never put keeps its allocation's reference to the end.
    for (const PageVerdict& v : l.pages) {
        if (r.pages[v.life].pfn == kPfn0 + 1) {
            EXPECT_EQ(counts_after_steps(r.pages[v.life]).back().refcount, 1);
        }
    }
}

TEST(CoreLeaks, CountsAfterAreUnknownBeforeTheFirstReading) {
    PageLife p;
    Step insert, rmap;
    insert.kind = StepKind::insert;
    rmap.kind = StepKind::rmap_add;
    rmap.refcount = 2;
    rmap.mapcount = 0;
    p.steps.push_back(insert);
    p.steps.push_back(rmap);
    const std::vector<CountsAfter> after = counts_after_steps(p);
    EXPECT_EQ(after[0].refcount, kNoCount);
    EXPECT_EQ(after[0].mapcount, kNoCount);
    EXPECT_EQ(after[1].mapcount, 1);
    EXPECT_NE(after[1].refcount, kNoCount);
}
