// Leak hunting on synthetic streams: the verdict of every page life, the
// reference ledger rebuilt from the refcounts, and the stack of the reference
// a driver forgot. The buggy drivers are written as edits of a clean story:
// drop the events of the put kex forgot, raise the counts it left behind.
#include <kextrace/core.h>
#include <kextrace/leaks.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

using namespace kextrace;
using Story = StreamBuilder::Story;

namespace {

constexpr uint64_t kPfn0 = 0x1000;

Report correlate(const std::vector<Event>& events, const Losses* losses = nullptr) {
    Correlator c;
    for (const Event& e : events)
        c.feed(e);
    if (losses)
        c.set_losses(*losses);
    return c.finish();
}

bool of(const Event& e, uint64_t pfn, std::initializer_list<uint32_t> types) {
    return e.pfn == pfn && std::find(types.begin(), types.end(), e.type) != types.end();
}

// Removes the final free of pfn (the kernel never freed it).
void never_freed(StreamBuilder& b, uint64_t pfn, std::size_t from = 0) {
    auto first = b.events.begin() + static_cast<std::ptrdiff_t>(from);
    b.events.erase(
        std::remove_if(first, b.events.end(),
                       [&](const Event& e) {
                           return of(e, pfn, {KEX_EV_PAGE_FREE, KEX_EV_PAGE_FREE_BATCHED});
                       }),
        b.events.end());
}

// Adds n to the refcount read by pfn's events of the given types.
void raise_refcount(StreamBuilder& b, uint64_t pfn, std::initializer_list<uint32_t> types,
                    int32_t n = 1, std::size_t from = 0) {
    for (std::size_t i = from; i < b.events.size(); ++i)
        if (of(b.events[i], pfn, types) && b.events[i].refcount != kNoCount)
            b.events[i].refcount += n;
}

// inject_noput: drop policy, but kex never puts its own reference.
void noput(StreamBuilder& b, uint64_t pfn, std::size_t from = 0) {
    auto first = b.events.begin() + static_cast<std::ptrdiff_t>(from);
    b.events.erase(
        std::remove_if(first, b.events.end(),
                       [&](const Event& e) { return of(e, pfn, {KEX_EV_KEX_PAGE_FREE}); }),
        b.events.end());
    never_freed(b, pfn, from);
    raise_refcount(b, pfn, {KEX_EV_SET_DIRTY, KEX_EV_RMAP_REMOVE}, 1, from);
}

const std::vector<uint64_t> kInsertSiteStack = {0xffffffffc0001234, 0xffffffff81200000};
const std::vector<uint64_t> kKexFreeStack = {0xffffffffc0001100, 0xffffffff81200100};

// inject_extra_get as kex does it: one more get_page once the page is
// mapped, after kex:kex_page_insert, before (drop) kex's put.
void extra_get(StreamBuilder& b, uint64_t pfn) {
    never_freed(b, pfn);
    raise_refcount(b, pfn, {KEX_EV_KEX_PAGE_FREE, KEX_EV_SET_DIRTY, KEX_EV_RMAP_REMOVE});
    for (Event& e : b.events)
        if (of(e, pfn, {KEX_EV_KEX_PAGE_INSERT}))
            e.stack = kInsertSiteStack;
}

// inject_fail_leak: the failing page (and, under keep, those before it) is
// never put by kex.
void fail_leak(StreamBuilder& b, uint64_t pfn) {
    b.events.erase(
        std::remove_if(b.events.begin(), b.events.end(),
                       [&](const Event& e) { return of(e, pfn, {KEX_EV_KEX_PAGE_FREE}); }),
        b.events.end());
    never_freed(b, pfn);
}

std::vector<Verdict> verdicts(const LeakReport& l) {
    std::vector<Verdict> v;
    for (const PageVerdict& p : l.pages)
        v.push_back(p.verdict);
    return v;
}

std::set<uint32_t> indexes_with(const Report& r, const LeakReport& l, Verdict v) {
    std::set<uint32_t> s;
    for (const PageVerdict& p : l.pages)
        if (p.verdict == v)
            s.insert(r.pages[p.life].index);
    return s;
}

const PageVerdict& page_at(const Report& r, const LeakReport& l, uint32_t index) {
    for (const PageVerdict& p : l.pages)
        if (r.pages[p.life].index == index)
            return p;
    static PageVerdict none;
    ADD_FAILURE() << "no page with index " << index;
    return none;
}

std::vector<RefSite> sites(const PageVerdict& v, bool with_zero = false) {
    std::vector<RefSite> s;
    for (const RefChange& c : v.changes)
        if (c.delta || with_zero)
            s.push_back(c.site);
    return s;
}

std::vector<int32_t> deltas(const PageVerdict& v) {
    std::vector<int32_t> d;
    for (const RefChange& c : v.changes)
        if (c.delta)
            d.push_back(c.delta);
    return d;
}

std::string describe(const Report& r, const LeakReport& l) {
    std::string s;
    for (const PageVerdict& p : l.pages) {
        s += "page " + std::to_string(r.pages[p.life].index) + ": " +
             std::string(verdict_name(p.verdict)) + " (" + p.reason + ");";
        for (const RefChange& c : p.changes)
            s += " " + std::string(ref_site_key(c.site)) + (c.delta >= 0 ? "+" : "") +
                 std::to_string(c.delta) + "@" + std::string(step_kind_name(c.kind)) +
                 (c.inferred ? "?" : "");
        s += "\n";
    }
    return s;
}

} // namespace

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
