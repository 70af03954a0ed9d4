// LifeTrack (tracer/core/src/correlator_state.h): what push_step keeps of a
// life's steps must be what finalize() would read from them decoded, or say
// that they must be decoded.
#include <kextrace/core.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include "../../tracer/core/src/correlator_state.h"

#include <algorithm>
#include <random>
#include <vector>

using namespace kextrace;

namespace {

// settle_life's loop and refcount_trail over steps already in time order.
struct Reference {
    uint64_t map_ts = 0, kex_free_ts = 0, page_free_ts = 0;
    bool zap_before_free = false;
    std::vector<int32_t> trail;
};

Reference reference(const std::vector<Step>& steps) {
    Reference r;
    for (const Step& s : steps) {
        const bool maps = s.kind == StepKind::pte_set ||
                          (s.kind == StepKind::insert_ret && s.ret() == 0) ||
                          (s.kind == StepKind::kex_insert && s.ret() == 0);
        if (maps && !r.map_ts)
            r.map_ts = s.ts;
        if (s.kind == StepKind::kex_free && !r.kex_free_ts)
            r.kex_free_ts = s.ts;
        if (s.kind == StepKind::page_free && !r.page_free_ts)
            r.page_free_ts = s.ts;
        if (s.kind == StepKind::rmap_remove && !r.page_free_ts)
            r.zap_before_free = true;
    }
    r.trail = refcount_trail(std::span<const Step>(steps));
    return r;
}

LifeTrack track(const std::vector<Step>& steps) {
    LifeTrack k;
    for (std::size_t i = 0; i < steps.size(); ++i)
        k.add(steps[i], i == 0);
    return k;
}

} // namespace

// Random lives, in time order or not: a track in order matches the
// reference (its trail whenever it kept it whole); one out of order says so.
TEST(LifeTrack, MatchesTheDecodedStepsOrAsksForThem) {
    std::mt19937_64 rng(7);
    const std::vector<int32_t> counts = {KEX_NO_COUNT, -129, -128, -1, 0, 1, 2, 3, 127, 128};
    const std::vector<uint64_t> values = {0, 1, static_cast<uint64_t>(-16), UINT64_MAX};
    int in_order = 0, kept_trails = 0, long_trails = 0;
    for (int life = 0; life < 5000; ++life) {
        std::vector<Step> steps(rng() % 14);
        uint64_t ts = life % 50 == 0 ? 0 : rng() % 1000;
        const bool sorted = life % 4 != 0;
        for (Step& s : steps) {
            ts += rng() % 3 == 0 ? 0 : rng() % 500; // ties too
            s.ts = sorted ? ts : rng() % 5000;
            s.kind = static_cast<StepKind>(rng() % kStepKinds);
            s.value = values[rng() % values.size()];
            s.refcount = life % 3 ? counts[rng() % 4 + 3] : counts[rng() % counts.size()];
        }
        const LifeTrack k = track(steps);
        const bool ordered = std::is_sorted(
            steps.begin(), steps.end(), [](const Step& a, const Step& b) { return a.ts < b.ts; });
        ASSERT_EQ(!(k.flags & LifeTrack::kDecode), ordered) << life;
        if (!steps.empty()) {
            EXPECT_EQ(k.first_ts, steps.front().ts);
        }
        if (!ordered)
            continue;
        ++in_order;
        const Reference r = reference(steps);
        EXPECT_EQ(k.map_ts, r.map_ts) << life;
        EXPECT_EQ(k.kex_free_ts, r.kex_free_ts) << life;
        EXPECT_EQ(k.page_free_ts, r.page_free_ts) << life;
        EXPECT_EQ(bool(k.flags & LifeTrack::kZapBeforeFree), r.zap_before_free) << life;
        if (k.flags & LifeTrack::kLongTrail) {
            ++long_trails;
            const bool fits = r.trail.size() <= LifeTrack::kTrail &&
                              std::all_of(r.trail.begin(), r.trail.end(),
                                          [](int32_t v) { return v >= -128 && v <= 127; });
            EXPECT_FALSE(fits) << life;
            continue;
        }
        ++kept_trails;
        EXPECT_EQ(std::vector<int32_t>(k.trail, k.trail + k.trail_n), r.trail) << life;
    }
    EXPECT_GT(in_order, 3000);
    EXPECT_GT(kept_trails, 1000);
    EXPECT_GT(long_trails, 100);
}

// Edge values: int8's ends in the trail, one past them, a seventh change.
TEST(LifeTrack, TrailEdges) {
    auto with_counts = [](std::vector<int32_t> c) {
        std::vector<Step> steps;
        for (std::size_t i = 0; i < c.size(); ++i) {
            Step s;
            s.ts = 100 + i;
            s.kind = StepKind::insert;
            s.refcount = c[i];
            steps.push_back(s);
        }
        return track(steps);
    };
    LifeTrack k = with_counts({-128, 127, 127, KEX_NO_COUNT, -128});
    EXPECT_FALSE(k.flags & LifeTrack::kLongTrail);
    EXPECT_EQ(std::vector<int32_t>(k.trail, k.trail + k.trail_n),
              (std::vector<int32_t>{-128, 127, -128}));
    EXPECT_TRUE(with_counts({1, 128}).flags & LifeTrack::kLongTrail);
    EXPECT_TRUE(with_counts({-129}).flags & LifeTrack::kLongTrail);
    EXPECT_FALSE(with_counts({1, 2, 1, 2, 1, 2}).flags & LifeTrack::kLongTrail);
    EXPECT_TRUE(with_counts({1, 2, 1, 2, 1, 2, 1}).flags & LifeTrack::kLongTrail);
    EXPECT_FALSE(with_counts({1, 2, 1, 2, 1, 2, 2, KEX_NO_COUNT}).flags & LifeTrack::kLongTrail);
}

// A refcount anomaly whose trail LifeTrack could not keep (a count over
// int8's range) reads as the decoded one.
TEST(LifeTrack, LongTrailStillReported) {
    StreamBuilder b;
    b.story({.pages = 2});
    for (Event& e : b.events)
        if (e.type == KEX_EV_KEX_PAGE_INSERT && e.pfn == 0x1000)
            e.refcount = 300;
    Correlator c;
    for (auto& e : b.events)
        c.feed(e);
    const Report r = c.finish();
    bool seen = false;
    for (const Anomaly& a : r.anomalies)
        seen |= a.message.find("refcount 1->2->300->2->1->0") != std::string::npos;
    EXPECT_TRUE(seen);
}
