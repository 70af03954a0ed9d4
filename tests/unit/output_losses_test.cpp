// Failed BPF map updates (the "tracking" counters) are losses: the text
// report, both JSON writers and the JSONL header carry them, the total and
// the per-page verdicts count them; pfns that could not be computed are
// reported beside them, not as a loss.
#include <kextrace/jsonl.h>
#include <kextrace/output.h>
#include <kextrace/stream_builder.h>

#include "report_of.h"

#include <gtest/gtest.h>

#include <sstream>

using namespace kextrace;
using kextrace::test::report_of;
using nlohmann::json;

namespace {

// 3 children not traced (a full "traced" map), 1 kex page not remembered,
// 5 non-kex pages without a pfn.
Losses tracking_losses() {
    Losses l;
    l.map_full[KEX_TRACK_TRACED] = 3;
    l.map_full[KEX_TRACK_PAGES] = 1;
    l.map_full[KEX_TRACK_PFN_UNKNOWN] = 5;
    return l;
}

RunInfo run_info() {
    RunInfo run;
    run.kernel_release = "6.1.0-57-amd64";
    run.command_line = "sh -c 'many children'";
    return run;
}

} // namespace

TEST(OutputLosses, MapFailuresAreLossesPfnUnknownIsNot) {
    Losses l = tracking_losses();
    EXPECT_EQ(l.map_failures(), 4u);
    EXPECT_EQ(l.pfn_unknown(), 5u);
    EXPECT_EQ(l.total(), 4u);
    l.ring = 2;
    EXPECT_EQ(l.total(), 6u);
}

TEST(OutputLosses, TextReportNamesTheMaps) {
    StreamBuilder b;
    b.story({.pages = 2});
    std::ostringstream out;
    render_text(report_of(b, tracking_losses()), run_info(), out, {}, {});
    const std::string t = out.str();
    EXPECT_NE(t.find("losses: 4 (traced map full 3, pages map full 1)"), std::string::npos) << t;
    EXPECT_NE(t.find("pfn unknown: 5 non-kex pages"), std::string::npos) << t;
}

TEST(OutputLosses, BothJsonWritersCarryThem) {
    StreamBuilder b;
    b.story({.pages = 2});
    const Report r = report_of(b, tracking_losses());
    const json j = to_json(r, run_info(), {});
    EXPECT_EQ(j["losses"]["map_full"], json({{"pages", 1}, {"traced", 3}}));
    EXPECT_EQ(j["losses"]["pfn_unknown"], 5);
    EXPECT_EQ(j["losses"]["total"], 4);
    EXPECT_EQ(j["summary"]["events_lost"], 4);
    std::ostringstream streamed;
    write_report_json(streamed, r, run_info(), {});
    const json s = json::parse(streamed.str());
    EXPECT_EQ(s["losses"], j["losses"]);
}

TEST(OutputLosses, MapFailuresMakeMissingStepsLost) {
    // a page whose kex_page_free never arrived: with a map failure anywhere,
    // it is "lost", not merely unobserved (any page's entry may be the one)
    StreamBuilder b;
    b.story({.pages = 2});
    b.drop_if([](const Event& e) { return e.type == KEX_EV_KEX_PAGE_FREE && e.pfn == 0x1001; });
    Losses none;
    const Report clean = report_of(b, none);
    const Report lossy = report_of(b, tracking_losses());
    ASSERT_EQ(clean.pages.size(), 2u);
    ASSERT_EQ(lossy.pages.size(), 2u);
    EXPECT_EQ(clean.pages[1].missing_lost, 0);
    EXPECT_EQ(lossy.pages[1].missing_lost, lossy.pages[1].missing);
    EXPECT_NE(lossy.pages[1].missing, 0);
}

TEST(OutputLosses, JsonlHeaderRoundTrips) {
    JsonlHeader h;
    h.run = run_info();
    h.losses = tracking_losses();
    std::string why;
    auto back = parse_jsonl_header(jsonl_header_line(h), &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back->losses.map_full, h.losses.map_full);
    EXPECT_EQ(back->losses.total(), 4u);
    // an unknown map name is an error, not silently dropped
    std::string line = jsonl_header_line(h);
    auto pos = line.find("\"traced\"");
    ASSERT_NE(pos, std::string::npos);
    line.replace(pos, 8, "\"nosuch\"");
    EXPECT_FALSE(parse_jsonl_header(line, &why));
    EXPECT_NE(why.find("nosuch"), std::string::npos) << why;
}
