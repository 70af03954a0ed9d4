// --follow in the outputs: the text section (common path, --full paths),
// the JSON "follow" section, the timeline (a followed call named after its
// function on its page's track, valid for the viewers) and the JSONL header
// (the functions' names survive a replay).
#include <kextrace/follow_output.h>
#include <kextrace/jsonl.h>
#include <kextrace/timeline.h>

#include "follow_streams.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

using namespace kextrace;
using namespace kextrace::follow_test;

namespace {

std::string text_of(const Report& r, bool full) {
    std::ostringstream out;
    render_follow_text(r, follow_summary(r, {"folio_add_file_rmap_ptes"}), out, full);
    return out.str();
}

bool has(const std::string& s, const std::string& what) {
    return s.find(what) != std::string::npos;
}

} // namespace

TEST(OutputFollow, TextGivesTheCommonPathAndWithFullEachPath) {
    const Report r = followed_report();
    const std::string brief = text_of(r, false);
    for (const char* want :
         {"followed: 7 calls on 2 of 2 pages (1 outside any page life)", "2/2    vm_insert_page\n",
          "2/2    folio_add_file_rmap_ptes  (the plan watches it)", "1/2    only_page0",
          "every page passed, not watched by the plan: vm_insert_page, __folio_put\n",
          "2/2    [rmap_remove]  (curated step)\n"})
        EXPECT_TRUE(has(brief, want)) << want << "\n" << brief;
    EXPECT_FALSE(has(brief, "followed paths:"));

    const std::string full = text_of(r, true);
    EXPECT_TRUE(has(full, "followed paths:\n  page 0 pfn 0x1000:\n"));
    EXPECT_TRUE(has(full, "vm_insert_page"));
    EXPECT_TRUE(has(full, "arg3 page"));
    EXPECT_TRUE(has(full, "arg1 folio"));
    // the curated steps are in the path too, in time order
    EXPECT_LT(full.find("vm_insert_page", full.find("page 0 pfn")),
              full.find("insert ", full.find("vm_insert_page", full.find("page 0 pfn"))));
}

TEST(OutputFollow, JsonSection) {
    const Report r = followed_report();
    const nlohmann::json j = follow_json(r, follow_summary(r, {"folio_add_file_rmap_ptes"}));
    EXPECT_EQ(j["functions"], nlohmann::json(kNames));
    EXPECT_EQ(j["calls"], 7);
    EXPECT_EQ(j["unmatched"], 1);
    std::map<std::string, nlohmann::json> by_name;
    for (const auto& f : j["common_path"])
        by_name[f["function"].is_null() ? "[" + f["step"].get<std::string>() + "]"
                                        : f["function"].get<std::string>()] = f;
    EXPECT_EQ(by_name["vm_insert_page"]["pages"], 2);
    EXPECT_EQ(by_name["vm_insert_page"]["id"], vm_insert_page);
    EXPECT_EQ(by_name["folio_add_file_rmap_ptes"]["curated"], true);
    EXPECT_EQ(by_name["[insert]"]["id"], nullptr);
    EXPECT_EQ(by_name["[insert]"]["pages"], 2);
    EXPECT_EQ(j["every_page_unwatched"],
              nlohmann::json(std::vector<std::string>{"vm_insert_page", "__folio_put"}));
    // a followed step's value is its function's id in "functions"
    const nlohmann::json doc = to_json(r, RunInfo{}, {});
    bool found = false;
    for (const auto& s : doc["pages"][0]["steps"])
        if (s["kind"] == "followed" && s["value"] == only_page0)
            found = true;
    EXPECT_TRUE(found);
}

TEST(OutputFollow, TimelineNamesTheFunctionOnThePageTrack) {
    const Report r = followed_report();
    std::ostringstream s;
    write_trace_events(r, RunInfo{}, {}, s);
    const nlohmann::json doc = nlohmann::json::parse(s.str());
    EXPECT_TRUE(validate_trace_events(doc).ok());
    int named = 0;
    for (const auto& e : doc["traceEvents"])
        if (e.value("name", "") == "__folio_put" && e.value("cat", "") == "follow")
            named++;
    EXPECT_EQ(named, 2);
}

TEST(OutputFollow, JsonlHeaderKeepsTheFunctions) {
    JsonlHeader h;
    h.correlator.roots = {100};
    h.correlator.follow_functions = kNames;
    std::string why;
    auto back = parse_jsonl_header(jsonl_header_line(h), &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back->correlator.follow_functions, kNames);
    // a run without --follow writes no such key
    h.correlator.follow_functions.clear();
    EXPECT_FALSE(has(jsonl_header_line(h), "follow_functions"));
}

TEST(OutputFollow, CuratedFunctionsOfARun) {
    RunInfo run;
    run.probes = {{"rmap add", "", "folio_add_file_rmap_ptes", true, "", 0, "kprobe"},
                  {"syscalls", "", "syscalls:* (4 tracepoints)", true, "", 0, "tracepoint"},
                  {"insert", "", "insert_page_into_pte_locked", false, "", 0, ""}};
    auto c = curated_functions_of(run);
    EXPECT_TRUE(c.contains("folio_add_file_rmap_ptes"));
    EXPECT_FALSE(c.contains("insert_page_into_pte_locked")); // not attached
}
