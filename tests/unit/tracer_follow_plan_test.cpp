// --follow's own parts of the report (tracer/src/follow_plan): the --plan
// listing by argument kind, and the text and JSON sections that say how the
// functions were attached and detached and what the BPF side counted.
#include "follow_plan.h"

#include "follow_streams.h"

#include <gtest/gtest.h>

#include <sstream>

using namespace kextrace;
using namespace kextrace::follow_test;

namespace {

FollowSet follow_set() {
    FollowSet s;
    s.candidates = 6;
    s.not_matched = 1;
    s.chosen = {{"__folio_put", {{1, FollowArgKind::folio}}},
                {"folio_add_file_rmap_ptes", {{1, FollowArgKind::folio}, {2, FollowArgKind::page}}},
                {"free_unref_folios", {{1, FollowArgKind::batch}}},
                {"release_pages", {{1, FollowArgKind::array}}}};
    s.left_out = {{"__free_one_page", "kprobe blacklist"}};
    return s;
}

FollowAttach attach_of(const FollowSet& s) {
    FollowAttach a;
    a.mechanism = "kprobe";
    a.why_not_multi = "kprobe.multi refused: Operation not supported";
    for (const auto& f : s.chosen)
        a.functions.push_back(f.name);
    a.attached = {true, true, true, false};
    a.attached_count = 3;
    a.links = 3;
    a.took = std::chrono::microseconds(9021000);
    a.failed = {{"release_pages", "No such file or directory"}};
    return a;
}

} // namespace

TEST(FollowPlan, ListingCountsFunctionsByHowTheyHoldPages) {
    std::ostringstream out;
    FollowOptions fo;
    fo.globs = {"*fol*"};
    print_follow_plan(out, fo, follow_set());
    const std::string s = out.str();
    EXPECT_NE(s.find("  1 not matching *fol*\n"), std::string::npos) << s;
    // a function holding a folio and a page counts under both
    EXPECT_NE(s.find("chosen 4 (with a page 1, a folio 2, a folio_batch 1, a page array 1)"),
              std::string::npos)
        << s;
    EXPECT_NE(s.find("release_pages"), std::string::npos);
    EXPECT_NE(s.find("arg1 page array"), std::string::npos);
    EXPECT_NE(s.find("arg1 folio_batch"), std::string::npos);
    EXPECT_NE(s.find("arg1 folio, arg2 page"), std::string::npos);
    EXPECT_NE(s.find("kprobe blacklist (1): __free_one_page"), std::string::npos) << s;
}

TEST(FollowPlan, ReportSaysAttachDetachRunsAndWhatWasLeftOut) {
    const Report r = followed_report();
    const FollowSet set = follow_set();
    const FollowAttach a = attach_of(set);
    FollowCounts c;
    c.nested = 2;
    c.folio_partial = 1;
    c.array_partial = 3;
    c.missed = 4;
    c.detach = std::chrono::microseconds(43848000);
    c.runs = 215231;
    c.matched = 24576;

    std::ostringstream out;
    const FollowSummary summary = follow_summary(r, curated_functions(ProbePlan{}));
    print_follow_report(out, r, summary, a, c, false);
    const std::string s = out.str();
    EXPECT_NE(s.find("follow: 3 functions via kprobe (attached in 9021 ms, detached in 43848 ms), "
                     "215231 program runs, 24576 on tracked pages"),
              std::string::npos)
        << s;
    EXPECT_NE(s.find("2 calls of tracked pages not recorded"), std::string::npos) << s;
    EXPECT_NE(s.find("1 folios and 3 page arrays or batches only partly looked up"),
              std::string::npos)
        << s;
    EXPECT_NE(s.find("4 runs skipped by the kernel"), std::string::npos) << s;

    const nlohmann::json j = follow_report_json(r, summary, set, a, c);
    EXPECT_EQ(j["attach"]["mechanism"], "kprobe");
    EXPECT_EQ(j["attach"]["why_not_multi"], a.why_not_multi);
    EXPECT_EQ(j["attach"]["attached"], 3);
    EXPECT_EQ(j["attach"]["us"], 9021000);
    EXPECT_EQ(j["attach"]["detach_us"], 43848000);
    EXPECT_EQ(j["runs"], 215231);
    EXPECT_EQ(j["matched"], 24576);
    EXPECT_EQ(j["nested_dropped"], 2);
    EXPECT_EQ(j["folios_partly_scanned"], 1);
    EXPECT_EQ(j["arrays_partly_scanned"], 3);
    EXPECT_EQ(j["missed"], 4);
    EXPECT_EQ(j["not_matched"], 1);
    // the filter's and the attach's leftovers, each with its reason
    ASSERT_EQ(j["left_out"].size(), 2u);
    EXPECT_EQ(j["left_out"][0]["reason"], "kprobe blacklist");
    EXPECT_EQ(j["left_out"][1]["function"], "release_pages");
    EXPECT_EQ(j["left_out"][1]["reason"], "attach failed: No such file or directory");
    EXPECT_EQ(j["functions"].size(), kNames.size());
}
