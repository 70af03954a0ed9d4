// How the steps are kept: StepList's encoding, its own or borrowed room, the Report's step
// arena, and the correlator's chunked storage (reorder buffer, step slab).
#include <kextrace/core.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include "../../tracer/core/src/chunked.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

using namespace kextrace;

namespace {

Step step(uint64_t ts, StepKind k = StepKind::insert) {
    Step s;
    s.ts = ts;
    s.kind = k;
    return s;
}

std::vector<uint64_t> times(const StepList& l) {
    std::vector<uint64_t> v;
    for (const Step& s : l)
        v.push_back(s.ts);
    return v;
}

} // namespace

TEST(StepList, GrowsInItsOwnBlock) {
    StepList l;
    EXPECT_TRUE(l.empty());
    for (uint64_t i = 0; i < 1000; ++i)
        l.push_back(step(1'000'000 + i));
    ASSERT_EQ(l.size(), 1000u);
    EXPECT_FALSE(l.borrowed());
    EXPECT_GE(l.capacity(), l.bytes());
    for (uint64_t i = 0; i < 1000; i += 37)
        EXPECT_EQ(l[i].ts, 1'000'000 + i);
    uint64_t want = 1'000'000;
    for (const Step& s : l)
        EXPECT_EQ(s.ts, want++);
    l.push_back(l.front()); // an element of its own, across a growth
    EXPECT_EQ(l.back().ts, 1'000'000u);
    l.insert(l.begin(), step(7)); // before the first: every time re-based
    EXPECT_EQ(l.front().ts, 7u);
    EXPECT_EQ(l[1].ts, 1'000'000u);
    EXPECT_EQ(l.back().ts, 1'000'000u);
    EXPECT_EQ(l.size(), 1002u);
}

// Any value of every field comes back as it went in, whatever the order of
// the times (before the first step's, equal, far after).
TEST(StepList, RoundTripsAnyStep) {
    std::mt19937_64 rng(16);
    const std::vector<int32_t> counts = {KEX_NO_COUNT, -2, -1, 0, 1, 13, 14, INT32_MAX, -77};
    const std::vector<uint64_t> values = {
        0, 1, 127, 128, 0x7f1234567000, 0x8000000123456867, static_cast<uint64_t>(-16), UINT64_MAX};
    std::vector<Step> want;
    for (int i = 0; i < 2000; ++i) {
        Step s;
        s.ts = i % 97 == 0 ? rng() : 5'000'000'000 + rng() % 10'000'000'000;
        s.kind = static_cast<StepKind>(i % 53 == 0 ? 200 : rng() % kStepKinds);
        s.flags = static_cast<uint8_t>(i % 3 ? 0 : rng());
        s.refcount = counts[rng() % counts.size()];
        s.mapcount = counts[rng() % counts.size()];
        s.stack_id = i % 5 ? 0 : static_cast<uint32_t>(rng() >> (rng() % 33));
        s.value = i % 4 ? values[rng() % values.size()] : rng();
        want.push_back(s);
    }
    StepList l;
    for (const Step& s : want)
        l.push_back(s);
    EXPECT_EQ(l.to_vector(), want);
    StepList a;
    a.assign(want);
    EXPECT_EQ(a.to_vector(), want);
    EXPECT_EQ(a.bytes(), l.bytes());
    a.assign({});
    EXPECT_TRUE(a.empty());
}

TEST(StepList, OutgrowsBorrowedRoomWithoutTouchingIt) {
    std::vector<std::byte> arena(64, std::byte{0xaa});
    StepList l;
    l.borrow(arena.data(), 40);
    EXPECT_TRUE(l.borrowed());
    EXPECT_EQ(l.capacity(), 40 - StepList::kRoomHeader);
    std::vector<uint64_t> want;
    while (l.borrowed()) {
        want.push_back(1'000'000 + 100 * want.size());
        l.push_back(step(want.back()));
        if (l.borrowed()) {
            EXPECT_EQ(l.data(), arena.data() + StepList::kRoomHeader);
        }
    }
    EXPECT_GT(want.size(), 3u);
    EXPECT_NE(l.data(), arena.data() + StepList::kRoomHeader); // full: moved out
    EXPECT_EQ(times(l), want);
    for (std::size_t i = 40; i < arena.size(); ++i)
        EXPECT_EQ(arena[i], std::byte{0xaa}); // the bytes after its room untouched
}

TEST(StepList, InsertIntoAFullViewMovesOut) {
    std::vector<std::byte> arena(16);
    StepList l;
    l.borrow(arena.data(), arena.size());
    l.push_back(step(2));
    l.push_back(step(3));
    ASSERT_TRUE(l.borrowed());
    l.insert(l.begin(), step(1'000'000'000'000)); // re-based: more bytes than the room
    EXPECT_FALSE(l.borrowed());
    EXPECT_EQ(times(l), (std::vector<uint64_t>{1'000'000'000'000, 2, 3}));
    l.insert(l.end(), step(4));
    EXPECT_EQ(times(l), (std::vector<uint64_t>{1'000'000'000'000, 2, 3, 4}));
    auto third = l.begin();
    ++third;
    ++third;
    l.insert(third, step(5));
    EXPECT_EQ(times(l), (std::vector<uint64_t>{1'000'000'000'000, 2, 5, 3, 4}));
}

TEST(StepList, CopiesOwnMovesKeepTheView) {
    std::vector<std::byte> arena(64);
    StepList view;
    view.borrow(arena.data(), arena.size());
    view.push_back(step(1));
    view.push_back(step(2));
    StepList copy = view;
    EXPECT_FALSE(copy.borrowed());
    copy.assign(std::vector<Step>{step(9), step(2)});
    EXPECT_EQ(times(view), (std::vector<uint64_t>{1, 2}));
    StepList moved = std::move(view);
    EXPECT_TRUE(moved.borrowed());
    EXPECT_EQ(moved.data(), arena.data() + StepList::kRoomHeader);
    EXPECT_TRUE(view.empty()); // NOLINT(bugprone-use-after-move): moved-from is empty
    copy = moved;
    EXPECT_EQ(times(copy), (std::vector<uint64_t>{1, 2}));
    copy = StepList();
    EXPECT_TRUE(copy.empty());
    moved.clear();
    EXPECT_TRUE(moved.empty());
    StepList again;
    again.borrow(arena.data(), arena.size());
    EXPECT_TRUE(again.empty());
}

TEST(StepArena, AFinishedReportsLivesBorrowItsArena) {
    StreamBuilder b;
    b.story({.pages = 50});
    Correlator c;
    for (const Event& e : b.events)
        c.feed(e);
    Report r = c.finish();
    ASSERT_EQ(r.pages.size(), 50u);
    EXPECT_TRUE(r.step_arena);
    std::map<const std::byte*, const std::byte*> rooms; // start -> end
    for (const PageLife& p : r.pages) {
        EXPECT_TRUE(p.steps.borrowed()); // a whole life fits in the room it was lent
        EXPECT_EQ(p.steps.size(), r.pages[0].steps.size());
        rooms[p.steps.data()] = p.steps.data() + p.steps.capacity();
    }
    ASSERT_EQ(rooms.size(), r.pages.size());
    for (auto it = rooms.begin(); std::next(it) != rooms.end(); ++it)
        EXPECT_LE(it->second, std::next(it)->first); // no two lives share a byte

    // Moving the report keeps the views valid; a copy owns its steps.
    const std::vector<uint64_t> first = times(r.pages[0].steps);
    Report moved = std::move(r);
    EXPECT_EQ(times(moved.pages[0].steps), first);
    Report copy = moved;
    EXPECT_FALSE(copy.pages[0].steps.borrowed());
    std::vector<Step> steps = copy.pages[0].steps.to_vector();
    steps[0].ts += 1;
    copy.pages[0].steps.assign(steps);
    EXPECT_EQ(times(moved.pages[0].steps), first);
    // ... and outlives the original
    moved = Report();
    EXPECT_EQ(copy.pages[0].steps[0].ts, first[0] + 1);
    EXPECT_EQ(copy.pages[0].steps.size(), first.size());
}

TEST(StepArena, LivesWithMoreStepsThanTheirRoom) {
    StreamBuilder b;
    b.story({.pages = 3});
    // many more steps for one page than the room a life is lent
    std::vector<Event> extra;
    for (const Event& e : b.events)
        if (e.pfn == 0x1001 && e.type == KEX_EV_SET_DIRTY)
            for (int i = 0; i < 40; ++i) {
                Event d = e;
                d.ts = e.ts + 1 + static_cast<uint64_t>(i);
                extra.push_back(d);
            }
    ASSERT_FALSE(extra.empty());
    Correlator c;
    for (const Event& e : b.events)
        c.feed(e);
    for (const Event& e : extra)
        c.feed(e);
    const Report r = c.finish();
    ASSERT_EQ(r.pages.size(), 3u);
    EXPECT_GT(r.pages[1].steps.size(), 40u);
    EXPECT_TRUE(std::is_sorted(r.pages[1].steps.begin(), r.pages[1].steps.end(),
                               [](const Step& x, const Step& y) { return x.ts < y.ts; }));
    EXPECT_EQ(r.pages[0].steps.size(), r.pages[2].steps.size());
}

TEST(ChunkedStorage, BufferKeepsOrderAcrossChunksAndReuse) {
    corr::ChunkedBuffer<uint64_t, 3> buf; // 8 a chunk
    for (uint64_t i = 0; i < 100; ++i)
        buf.push_back(i * 3);
    ASSERT_EQ(buf.size(), 100u);
    for (uint64_t i = 0; i < 100; ++i)
        EXPECT_EQ(buf[i], i * 3);
    uint64_t sum = 0, n = 0;
    buf.for_each([&](uint64_t v) {
        EXPECT_EQ(v, n * 3);
        sum += v;
        ++n;
    });
    EXPECT_EQ(n, 100u);
    EXPECT_EQ(sum, 3u * 99 * 100 / 2);
    buf.clear();
    EXPECT_TRUE(buf.empty());
    buf.push_back(5);
    EXPECT_EQ(buf[0], 5u);
    corr::ChunkedBuffer<uint64_t, 3> other;
    other.swap(buf);
    EXPECT_EQ(other.size(), 1u);
    EXPECT_TRUE(buf.empty());
}

TEST(ChunkedStorage, BufferGrowsItsChunksUpToTheCap) {
    corr::ChunkedBuffer<uint32_t, 2, 2> buf; // chunks of 4, 4, 8, then 16
    for (int fill : {1000, 3, 37}) {
        buf.clear();
        for (uint32_t i = 0; i < static_cast<uint32_t>(fill); ++i)
            buf.push_back(i * 7);
        ASSERT_EQ(buf.size(), static_cast<std::size_t>(fill));
        for (uint32_t i = 0; i < static_cast<uint32_t>(fill); ++i)
            ASSERT_EQ(buf[i], i * 7) << i;
        uint32_t n = 0;
        buf.for_each([&](uint32_t v) { EXPECT_EQ(v, 7 * n++); });
        EXPECT_EQ(n, static_cast<uint32_t>(fill));
    }
}

TEST(ChunkedStorage, SlabRunsDoNotOverlap) {
    corr::Slab<uint32_t, 16> slab;
    std::set<uint32_t*> seen;
    std::vector<std::pair<uint32_t*, std::size_t>> runs;
    for (std::size_t i = 0; i < 200; ++i) {
        const std::size_t n = 1 + i % 7;
        uint32_t* p = slab.take(n);
        for (std::size_t k = 0; k < n; ++k) {
            EXPECT_TRUE(seen.insert(p + k).second);
            p[k] = static_cast<uint32_t>(i);
        }
        runs.emplace_back(p, n);
    }
    for (std::size_t i = 0; i < runs.size(); ++i)
        for (std::size_t k = 0; k < runs[i].second; ++k)
            EXPECT_EQ(runs[i].first[k], i);
}
