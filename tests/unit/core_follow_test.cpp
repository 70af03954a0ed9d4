// --follow in the correlator: followed calls join their page's life in time
// order among the curated steps; calls outside any life are counted; the
// common path says how many pages took each function and which ones every
// page passed that the curated plan does not watch.
#include <kextrace/core.h>
#include <kextrace/follow.h>
#include <kextrace/stream_builder.h>

#include "follow_streams.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace kextrace;
using namespace kextrace::follow_test;

namespace {

// The kinds of a life's steps, followed ones by their function's name.
std::vector<std::string> path_of(const Report& r, const PageLife& p) {
    std::vector<std::string> out;
    for (const Step& s : p.steps)
        out.push_back(s.kind == StepKind::followed ? followed_name(r, followed_call(s).func)
                                                   : std::string(step_kind_name(s.kind)));
    return out;
}

std::size_t pos(const std::vector<std::string>& v, const std::string& what) {
    return static_cast<std::size_t>(std::find(v.begin(), v.end(), what) - v.begin());
}

} // namespace

TEST(CoreFollow, FollowedCallsJoinTheLifeInTimeOrder) {
    Report r = followed_report();
    ASSERT_EQ(r.pages.size(), 2u);
    for (const PageLife& p : r.pages) {
        auto path = path_of(r, p);
        ASSERT_LT(pos(path, "vm_insert_page"), path.size());
        EXPECT_LT(pos(path, "vm_insert_page"), pos(path, "insert"));
        EXPECT_EQ(pos(path, "folio_add_file_rmap_ptes"), pos(path, "rmap_add") + 1);
        EXPECT_EQ(pos(path, "__folio_put") + 1, pos(path, "page_free"));
    }
    EXPECT_EQ(r.follow_unmatched, 1u);
    EXPECT_TRUE(r.anomalies.empty()) << r.anomalies.front().message;
    EXPECT_EQ(r.counts[KEX_EV_FOLLOW], 7u);
}

TEST(CoreFollow, FollowedStepKeepsItsArgumentAndCounts) {
    Report r = followed_report();
    const PageLife& p = r.pages[0];
    auto it = std::find_if(p.steps.begin(), p.steps.end(),
                           [](const Step& s) { return s.kind == StepKind::followed; });
    ASSERT_NE(it, p.steps.end());
    FollowedCall c = followed_call(*it);
    EXPECT_EQ(c.func, vm_insert_page);
    EXPECT_EQ(c.reg, 3u);
    EXPECT_EQ(c.kind, static_cast<uint32_t>(KEX_FOLLOW_K_PAGE));
    EXPECT_EQ(followed_kind_name(c.kind), "page");
    EXPECT_EQ(followed_kind_name(KEX_FOLLOW_K_BATCH), "folio_batch");
    EXPECT_EQ(it->refcount, 2);
    EXPECT_EQ(followed_name(r, 9), "#9");
}

TEST(CoreFollow, CommonPathCountsPagesAndNamesTheUnwatched) {
    Report r = followed_report();
    FollowSummary s = follow_summary(r, {"folio_add_file_rmap_ptes"});
    EXPECT_EQ((std::vector<uint64_t>{s.lives, s.followed_lives, s.calls, s.unmatched}),
              (std::vector<uint64_t>{2, 2, 7, 1}));
    // every page's functions first, in path order; then page 0's own
    std::vector<std::string> names, steps;
    std::vector<uint64_t> pages;
    for (const auto& f : s.path) {
        if (f.step) { // the curated steps are on the path too, in order
            EXPECT_TRUE(f.curated && f.pages == 2) << f.name;
            steps.push_back(f.name);
            continue;
        }
        names.push_back(f.name + (f.curated ? " (curated)" : ""));
        pages.push_back(f.pages);
    }
    auto at = [&](const std::string& n) {
        for (std::size_t i = 0; i < s.path.size(); i++)
            if (s.path[i].name == n)
                return i;
        return s.path.size();
    };
    EXPECT_LT(at("kex_alloc"), at("vm_insert_page"));
    EXPECT_LT(at("vm_insert_page"), at("insert"));
    EXPECT_LT(at("rmap_remove"), at("__folio_put"));
    EXPECT_LT(at("__folio_put"), at("page_free"));
    EXPECT_EQ(steps.size(), 12u);
    EXPECT_EQ(names,
              (std::vector<std::string>{"vm_insert_page", "folio_add_file_rmap_ptes (curated)",
                                        "__folio_put", "only_page0"}));
    EXPECT_EQ(pages, (std::vector<uint64_t>{2, 2, 2, 1}));
    EXPECT_EQ(s.every_page_unwatched, (std::vector<std::string>{"vm_insert_page", "__folio_put"}));
}

TEST(CoreFollow, NoFollowNoSummary) {
    StreamBuilder b;
    b.story({.pages = 2});
    FollowSummary s = follow_summary(correlate(b), {});
    EXPECT_EQ(s.lives, 2u);
    EXPECT_EQ(s.followed_lives, 0u);
    EXPECT_TRUE(s.path.empty());
    EXPECT_TRUE(s.every_page_unwatched.empty());
}
