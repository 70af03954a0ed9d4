// Where the steps live: StepList's own or borrowed room, the Report's step
// arena, and the correlator's chunked storage (reorder buffer, step slab).
#include <kextrace/core.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include "../../tracer/core/src/chunked.h"

#include <algorithm>
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
        l.push_back(step(i));
    ASSERT_EQ(l.size(), 1000u);
    EXPECT_FALSE(l.borrowed());
    for (uint64_t i = 0; i < 1000; ++i)
        EXPECT_EQ(l[i].ts, i);
    l.push_back(l.front()); // an element of its own, across a growth
    EXPECT_EQ(l.back().ts, 0u);
    l.insert(l.begin(), step(7));
    EXPECT_EQ(l.front().ts, 7u);
    EXPECT_EQ(l[1].ts, 0u);
    EXPECT_EQ(l.size(), 1002u);
}

TEST(StepList, OutgrowsBorrowedRoomWithoutTouchingIt) {
    std::vector<Step> arena(4);
    StepList l;
    l.borrow(arena.data(), 0, 3);
    l.push_back(step(1));
    l.push_back(step(2));
    l.push_back(step(3));
    EXPECT_TRUE(l.borrowed());
    EXPECT_EQ(l.data(), arena.data());
    EXPECT_EQ(arena[2].ts, 3u);
    l.push_back(step(4)); // full: moves out
    EXPECT_FALSE(l.borrowed());
    EXPECT_NE(l.data(), arena.data());
    EXPECT_EQ(times(l), (std::vector<uint64_t>{1, 2, 3, 4}));
    EXPECT_EQ(arena[3].ts, 0u); // the slot after its room untouched
}

TEST(StepList, InsertIntoAFullViewMovesOut) {
    std::vector<Step> arena = {step(2), step(3)};
    StepList l;
    l.borrow(arena.data(), 2, 2);
    l.insert(l.begin(), step(1));
    EXPECT_EQ(times(l), (std::vector<uint64_t>{1, 2, 3}));
    EXPECT_EQ(arena[0].ts, 2u);
    EXPECT_EQ(arena[1].ts, 3u);
}

TEST(StepList, CopiesOwnMovesKeepTheView) {
    std::vector<Step> arena = {step(1), step(2)};
    StepList view;
    view.borrow(arena.data(), 2, 2);
    StepList copy = view;
    EXPECT_FALSE(copy.borrowed());
    copy[0].ts = 9;
    EXPECT_EQ(arena[0].ts, 1u);
    StepList moved = std::move(view);
    EXPECT_TRUE(moved.borrowed());
    EXPECT_EQ(moved.data(), arena.data());
    EXPECT_TRUE(view.empty()); // NOLINT(bugprone-use-after-move): moved-from is empty
    copy = moved;
    EXPECT_EQ(times(copy), (std::vector<uint64_t>{1, 2}));
    copy = StepList();
    EXPECT_TRUE(copy.empty());
    moved.clear();
    EXPECT_TRUE(moved.empty());
    EXPECT_EQ(arena[1].ts, 2u);
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
    std::set<const Step*> rooms;
    for (const PageLife& p : r.pages) {
        EXPECT_TRUE(p.steps.borrowed());
        EXPECT_EQ(p.steps.size(), r.pages[0].steps.size());
        for (const Step& s : p.steps)
            EXPECT_TRUE(rooms.insert(&s).second); // no two lives share a slot
    }

    // Moving the report keeps the views valid; a copy owns its steps.
    const std::vector<uint64_t> first = times(r.pages[0].steps);
    Report moved = std::move(r);
    EXPECT_EQ(times(moved.pages[0].steps), first);
    Report copy = moved;
    EXPECT_FALSE(copy.pages[0].steps.borrowed());
    copy.pages[0].steps[0].ts += 1;
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
