// write_trace_events / validate_trace_events: the export satisfies the Trace
// Event Format rules viewers depend on, on synthetic reports; and the
// validator catches each rule broken.
#include <kextrace/stream_builder.h>

#include "report_of.h"
#include <kextrace/timeline.h>

#include <gtest/gtest.h>

#include <sstream>

using namespace kextrace;
using kextrace::test::report_of;
using nlohmann::json;

namespace {

RunInfo run_info() {
    RunInfo run;
    run.kernel_release = "6.1.0-56-amd64";
    run.command_line = "mmap_test /dev/kex 8 --no-wait";
    run.set_pte_observed = "PTE read back at the return of "
                           "insert_page_into_pte_locked.constprop.0";
    run.probes = {{"insert", "insert_page_into_pte_locked",
                   "insert_page_into_pte_locked.constprop.0", true, "clone without addr", 0,
                   "kprobe + kretprobe"},
                  {"rmap add", "page_add_file_rmap", "page_add_file_rmap", true, "", 0, "kprobe"}};
    return run;
}

Symbolizer symbols() {
    return [](uint64_t a) {
        return a == 0xffffffffc0001000 ? std::string("kex_mmap+0x1a5 [kex]") : std::string();
    };
}

std::string problems(const TraceCheck& c) {
    std::string s;
    for (const auto& p : c.problems)
        s += p + "\n";
    return s;
}

// The events of one thread track, in file order (M excluded).
std::vector<json> track(const json& doc, uint32_t pid, uint32_t tid) {
    std::vector<json> out;
    for (const json& e : doc["traceEvents"])
        if (e["ph"] != "M" && e["ph"] != "C" && e["pid"] == pid && e["tid"] == tid)
            out.push_back(e);
    return out;
}

} // namespace

TEST(TimelineExport, AnEightPageStoryIsAValidTimeline) {
    StreamBuilder b;
    b.story({.pages = 8});
    const Report r = report_of(b);
    const json doc = to_trace_events(r, run_info(), symbols());

    const TraceCheck c = validate_trace_events(doc);
    EXPECT_TRUE(c.ok()) << problems(c);
    EXPECT_EQ(doc["displayTimeUnit"], "ns");
    EXPECT_EQ(doc["metadata"]["schema"], kTimelineSchema);
    EXPECT_EQ(doc["metadata"]["kernel_release"], "6.1.0-56-amd64");
    EXPECT_EQ(doc["metadata"]["command_line"], "mmap_test /dev/kex 8 --no-wait");
    EXPECT_EQ(doc["metadata"]["probes"].size(), 2u);
    EXPECT_EQ(doc["metadata"]["losses"]["total"], 0);
    // 8 page tracks + the rig's
    EXPECT_EQ(c.tracks, 9u);
    for (uint32_t i = 0; i < 8; ++i) {
        const std::string key = "100/" + std::to_string(kPageTidBase + i);
        ASSERT_TRUE(c.thread_names.count(key)) << key;
        std::ostringstream want;
        want << "page " << i << " pfn 0x" << std::hex << 0x1000 + i;
        EXPECT_EQ(c.thread_names.at(key), want.str());
    }
    EXPECT_EQ(c.thread_names.at("100/100"), "rig 100 (phases, kex mmap)");
}

TEST(TimelineExport, PageTrackHasEveryStepChainedByFlows) {
    StreamBuilder b;
    b.story({.pages = 2});
    const Report r = report_of(b);
    const json doc = to_trace_events(r, run_info(), symbols());
    const auto ev = track(doc, 100, kPageTidBase);
    std::vector<std::string> names;
    for (const json& e : ev)
        names.push_back(e["name"]);
    // the insert is one slice (entry .. return) named after the real clone
    const std::vector<std::string> want = {
        "kmem:mm_page_alloc", "kex:kex_page_alloc",       "insert_page_into_pte_locked.constprop.0",
        "page_add_file_rmap", "set_pte_at (PTE written)", "kex:kex_page_insert",
        "kex:kex_page_free",  "set_page_dirty",           "page_remove_rmap",
        "kmem:mm_page_free",  "kmem:mm_page_free_batched"};
    EXPECT_EQ(names, want);
    // flows: first out, middle in+out, last in, one bind_id per page
    for (std::size_t i = 0; i < ev.size(); ++i) {
        EXPECT_EQ(ev[i]["ph"], "X");
        EXPECT_EQ(ev[i]["bind_id"], 1);
        EXPECT_EQ(ev[i].value("flow_in", false), i > 0) << i;
        EXPECT_EQ(ev[i].value("flow_out", false), i + 1 < ev.size()) << i;
    }
    const TraceCheck c = validate_trace_events(doc);
    EXPECT_EQ(c.flow_arrows, 2 * (want.size() - 1));

    // the insert slice spans entry .. return and holds the rmap add
    const json& ins = ev[2];
    const json& rmap = ev[3];
    EXPECT_GT(ins["dur"].get<double>(), 0);
    EXPECT_GE(rmap["ts"].get<double>(), ins["ts"].get<double>());
    EXPECT_LE(rmap["ts"].get<double>(), ins["ts"].get<double>() + ins["dur"].get<double>());
    EXPECT_EQ(ins["args"]["addr"], nullptr); // 6.1's clone has no addr
    EXPECT_EQ(ins["args"]["refcount"], 1);
    EXPECT_EQ(ins["args"]["refcount_at_return"], 2);
    EXPECT_EQ(ins["args"]["ret"], 0);
    EXPECT_EQ(rmap["args"]["refcount"], 2);

    // the PTE: value and decoded bits
    const json& pte = ev[4]["args"];
    EXPECT_EQ(pte["pte"], "0x8000000001000027");
    EXPECT_EQ(pte["bits"], "P RW U A - NX");
    EXPECT_EQ(pte["pfn"], 0x1000);
    EXPECT_EQ(pte["dirty"], false);
    EXPECT_EQ(pte["present"], true);

    // the alloc stack, symbolized where the symbolizer knows the address
    EXPECT_EQ(ev[1]["args"]["stack"], json({"kex_mmap+0x1a5 [kex]", "0xffffffff81200000"}));
    EXPECT_EQ(ev[8]["args"]["zap_context"], "munmap");
    EXPECT_EQ(ev[6]["args"]["reason"], "after-insert");
}

TEST(TimelineExport, TimestampsAreMicrosecondsWithNanosecondDecimals) {
    StreamBuilder b(100, 1'000'000'123, 100);
    b.story({.pages = 1});
    const Report r = report_of(b);
    std::ostringstream s;
    write_trace_events(r, run_info(), symbols(), s);
    const json doc = json::parse(s.str());
    const PageLife& p = r.pages.at(0);
    const auto ev = track(doc, 100, kPageTidBase);
    ASSERT_EQ(ev.size(), 11u);
    EXPECT_DOUBLE_EQ(ev[0]["ts"].get<double>(), static_cast<double>(p.steps[0].ts) / 1000.0);
    // written as exact decimals: "1000000.223", not a rounded double
    EXPECT_NE(s.str().find("\"ts\":1000000.223"), std::string::npos);
}

TEST(TimelineExport, RigPhasesAreSlicesAndKexMmapNestsInside) {
    StreamBuilder b;
    b.story({.pages = 4});
    const Report r = report_of(b);
    const json doc = to_trace_events(r, run_info(), symbols());
    const auto rig = track(doc, 100, 100);
    std::vector<std::string> names;
    for (const json& e : rig)
        names.push_back(e["name"]);
    EXPECT_EQ(names,
              (std::vector<std::string>{"mmap", "kex_mmap", "write", "munmap", "kex_vma_close"}));
    EXPECT_EQ(rig[0]["ph"], "X");
    EXPECT_EQ(rig[0]["cat"], "rig");
    EXPECT_GE(rig[1]["ts"].get<double>(), rig[0]["ts"].get<double>());
    EXPECT_LE(rig[1]["ts"].get<double>() + rig[1]["dur"].get<double>(),
              rig[0]["ts"].get<double>() + rig[0]["dur"].get<double>());
    EXPECT_EQ(rig[1]["args"]["pages"], 4);
    EXPECT_EQ(rig[1]["args"]["policy"], "drop");
    EXPECT_EQ(rig[4]["ph"], "i");
    EXPECT_EQ(rig[4]["s"], "t");
}

TEST(TimelineExport, CountersRiseToThePagesAndFallToZero) {
    StreamBuilder b;
    b.story({.pages = 8});
    const Report r = report_of(b);
    const json doc = to_trace_events(r, run_info(), symbols());
    std::map<std::string, std::vector<int64_t>> series;
    for (const json& e : doc["traceEvents"])
        if (e["ph"] == "C")
            series[e["name"]].push_back(e["args"]["pages"]);
    ASSERT_EQ(series.size(), 2u);
    for (const auto& [name, v] : series) {
        EXPECT_EQ(v.front(), 0) << name;
        EXPECT_EQ(*std::max_element(v.begin(), v.end()), 8) << name;
        EXPECT_EQ(v.back(), 0) << name;
    }
}

TEST(TimelineExport, OtherStoriesStayValid) {
    std::vector<StreamBuilder::Story> stories = {
        {.pages = 3, .policy = Policy::keep},   {.pages = 3, .exit_instead_of_munmap = true},
        {.pages = 3, .page_table_alloc = true}, {.pages = 4, .fail_at = 2},
        {.pages = 2, .write = false},
    };
    for (const auto& s : stories) {
        StreamBuilder b;
        b.story(s);
        const Report r = report_of(b);
        const TraceCheck c = validate_trace_events(to_trace_events(r, run_info(), symbols()));
        EXPECT_TRUE(c.ok()) << problems(c);
        EXPECT_EQ(c.tracks, r.pages.size() + 1);
    }
}

TEST(TimelineExport, LostEventsAndAnomaliesStayValid) {
    StreamBuilder b;
    b.story({.pages = 4});
    // the insert return of page 1 and the phase end markers never arrive
    b.drop_if([](const Event& e) {
        return (e.type == KEX_EV_INSERT_RET && e.pfn == 0x1001) ||
               (e.type == KEX_EV_RIG_PHASE && e.arg0 == KEX_PHASE_MUNMAP_END);
    });
    Correlator corr({.roots = {100}});
    for (const Event& e : b.events)
        corr.feed(e);
    Losses l;
    l.per_type[KEX_EV_INSERT_RET] = 1;
    corr.set_losses(l);
    const Report r = corr.finish();
    const json doc = to_trace_events(r, run_info(), symbols());
    const TraceCheck c = validate_trace_events(doc);
    EXPECT_TRUE(c.ok()) << problems(c);
    EXPECT_EQ(doc["metadata"]["losses"]["per_type"]["insert_ret"], 1);
    // the entry without its return is a point step, still on the chain
    const auto ev = track(doc, 100, kPageTidBase + 1);
    bool found = false;
    for (const json& e : ev)
        if (e["name"] == "insert_page_into_pte_locked.constprop.0") {
            EXPECT_EQ(e["dur"], 0);
            found = true;
        }
    EXPECT_TRUE(found);
}

TEST(TimelineExport, AwkwardStringsAreEscaped) {
    StreamBuilder b;
    b.story({.pages = 1});
    const Report r = report_of(b);
    RunInfo run = run_info();
    run.command_line = "mmap_test \"quoted\" back\\slash \x01 bad utf8 \xff";
    const Symbolizer sym = [](uint64_t) { return std::string("sym\"with\\quotes\n"); };
    std::ostringstream s;
    write_trace_events(r, run, sym, s);
    json doc;
    ASSERT_NO_THROW(doc = json::parse(s.str()));
    EXPECT_TRUE(validate_trace_events(doc).ok());
}

TEST(TimelineExport, StatsMatchTheStream) {
    StreamBuilder b;
    b.story({.pages = 8});
    const Report r = report_of(b);
    std::ostringstream s;
    const TimelineStats st = write_trace_events(r, run_info(), symbols(), s);
    const json doc = json::parse(s.str());
    const TraceCheck c = validate_trace_events(doc);
    EXPECT_EQ(st.bytes, s.str().size());
    EXPECT_EQ(st.events, doc["traceEvents"].size());
    EXPECT_EQ(st.tracks, c.tracks);
    EXPECT_EQ(st.page_tracks, 8u);
    EXPECT_EQ(st.flow_arrows, c.flow_arrows);
}

TEST(TimelineExport, OptionsTurnPartsOff) {
    StreamBuilder b;
    b.story({.pages = 2});
    const Report r = report_of(b);
    const json doc = to_trace_events(r, run_info(), symbols(),
                                     {.flows = false, .counters = false, .stacks = false});
    for (const json& e : doc["traceEvents"]) {
        EXPECT_NE(e["ph"], "C");
        EXPECT_FALSE(e.contains("bind_id"));
        if (e.contains("args")) {
            EXPECT_FALSE(e["args"].contains("stack"));
        }
    }
    EXPECT_TRUE(validate_trace_events(doc).ok());
}

TEST(TimelineExport, ThousandsOfPagesStreamQuickly) {
    StreamBuilder b;
    b.story({.pages = 4096});
    const Report r = report_of(b);
    std::ostringstream s;
    const TimelineStats st = write_trace_events(r, run_info(), symbols(), s);
    EXPECT_EQ(st.page_tracks, 4096u);
    EXPECT_GT(st.bytes, 4096u * 10 * 100);
    EXPECT_TRUE(validate_trace_events(json::parse(s.str())).ok());
}

// ---------------------------------------------------------------------------
// The validator catches each broken rule.

namespace {

json doc_of(std::vector<json> events) {
    return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ns"}};
}

json x(double ts, double dur, uint32_t tid = 1, const char* name = "s") {
    return {{"ph", "X"}, {"name", name}, {"pid", 1}, {"tid", tid}, {"ts", ts}, {"dur", dur}};
}

bool has_problem(const json& doc, const std::string& needle) {
    const TraceCheck c = validate_trace_events(doc);
    for (const auto& p : c.problems)
        if (p.find(needle) != std::string::npos)
            return true;
    ADD_FAILURE() << "no problem containing \"" << needle << "\" in:\n" << problems(c);
    return false;
}

} // namespace

TEST(TimelineValidate, AcceptsAWellFormedDocument) {
    json out = x(1, 5);
    out["bind_id"] = 7;
    out["flow_out"] = true;
    json in = x(2, 0);
    in["bind_id"] = 7;
    in["flow_in"] = true;
    const json doc = doc_of({
        {{"ph", "M"}, {"name", "process_name"}, {"pid", 1}, {"args", {{"name", "p"}}}},
        {{"ph", "M"}, {"name", "thread_name"}, {"pid", 1}, {"tid", 1}, {"args", {{"name", "t"}}}},
        out,
        in,
        {{"ph", "i"}, {"name", "i"}, {"pid", 1}, {"tid", 1}, {"ts", 3}, {"s", "t"}},
        {{"ph", "B"}, {"name", "b"}, {"pid", 1}, {"tid", 2}, {"ts", 1}},
        {{"ph", "s"}, {"name", "f"}, {"id", 1}, {"pid", 1}, {"tid", 2}, {"ts", 1.5}},
        {{"ph", "E"}, {"pid", 1}, {"tid", 2}, {"ts", 2}},
        {{"ph", "C"}, {"name", "c"}, {"pid", 1}, {"ts", 1}, {"args", {{"v", 1}}}},
        x(3, 1),
        {{"ph", "f"}, {"name", "f"}, {"id", 1}, {"pid", 1}, {"tid", 1}, {"ts", 3.5}, {"bp", "e"}},
    });
    const TraceCheck c = validate_trace_events(doc);
    EXPECT_TRUE(c.ok()) << problems(c);
    EXPECT_EQ(c.flow_arrows, 2u);
    EXPECT_EQ(c.tracks, 2u);
}

TEST(TimelineValidate, CatchesEachBrokenRule) {
    EXPECT_TRUE(has_problem(json::object(), "no traceEvents"));
    EXPECT_TRUE(
        has_problem({{"traceEvents", json::array()}, {"displayTimeUnit", "s"}}, "displayTimeUnit"));
    EXPECT_TRUE(has_problem(doc_of({{{"name", "a"}, {"pid", 1}, {"tid", 1}, {"ts", 1}}}), "ph"));
    EXPECT_TRUE(has_problem(doc_of({x(1, 1, 1, "")}), "no name"));
    EXPECT_TRUE(has_problem(doc_of({{{"ph", "Q"}, {"name", "a"}}}), "ph not one of"));
    EXPECT_TRUE(has_problem(
        doc_of({{{"ph", "X"}, {"name", "a"}, {"pid", 1}, {"tid", 1}, {"ts", 1}}}), "dur"));
    EXPECT_TRUE(has_problem(
        doc_of({{{"ph", "X"}, {"name", "a"}, {"pid", "p"}, {"tid", 1}, {"ts", 1}, {"dur", 0}}}),
        "pid"));
    EXPECT_TRUE(has_problem(
        doc_of({{{"ph", "X"}, {"name", "a"}, {"pid", 1}, {"ts", 1}, {"dur", 0}}}), "tid"));
    EXPECT_TRUE(has_problem(doc_of({x(-1, 1)}), "ts missing"));
    EXPECT_TRUE(has_problem(doc_of({x(5, 1), x(4, 0)}), "goes back"));
    EXPECT_TRUE(has_problem(doc_of({x(1, 5), x(3, 5)}), "partially"));
    EXPECT_TRUE(has_problem(
        doc_of({{{"ph", "B"}, {"name", "a"}, {"pid", 1}, {"tid", 1}, {"ts", 1}}}), "never closed"));
    EXPECT_TRUE(has_problem(doc_of({{{"ph", "E"}, {"pid", 1}, {"tid", 1}, {"ts", 1}}}),
                            "without an open B"));
    EXPECT_TRUE(has_problem(
        doc_of({{{"ph", "i"}, {"name", "a"}, {"pid", 1}, {"tid", 1}, {"ts", 1}, {"s", "x"}}}),
        "scope"));
    EXPECT_TRUE(has_problem(
        doc_of({{{"ph", "C"}, {"name", "c"}, {"pid", 1}, {"ts", 1}, {"args", {{"v", "high"}}}}}),
        "not a number"));
    EXPECT_TRUE(has_problem(doc_of({{{"ph", "C"}, {"name", "c"}, {"pid", 1}, {"ts", 1}}}),
                            "counter without args"));
    EXPECT_TRUE(has_problem(doc_of({{{"ph", "M"},
                                     {"name", "thread_name"},
                                     {"pid", 1},
                                     {"tid", 1},
                                     {"args", {{"name", 3}}}}}),
                            "args.name"));
    EXPECT_TRUE(has_problem(doc_of({{{"ph", "M"}, {"name", "colour"}, {"pid", 1}, {"tid", 1}}}),
                            "unknown metadata"));
    json orphan_in = x(1, 0);
    orphan_in["bind_id"] = 3;
    orphan_in["flow_in"] = true;
    EXPECT_TRUE(has_problem(doc_of({orphan_in}), "no earlier flow_out"));
    json dangling = x(1, 0);
    dangling["bind_id"] = 3;
    dangling["flow_out"] = true;
    EXPECT_TRUE(has_problem(doc_of({dangling}), "never consumed"));
    EXPECT_TRUE(has_problem(doc_of({dangling, x(2, 0), dangling}), "goes back"));
    json started_twice = x(2, 0);
    started_twice["bind_id"] = 3;
    started_twice["flow_out"] = true;
    EXPECT_TRUE(has_problem(doc_of({dangling, started_twice}), "already open"));
    json undirected = x(1, 0);
    undirected["bind_id"] = 3;
    EXPECT_TRUE(has_problem(doc_of({undirected}), "without flow_in or flow_out"));
    // a v1 flow with no slice of its track around its ts
    EXPECT_TRUE(has_problem(
        doc_of(
            {x(1, 1), {{"ph", "s"}, {"name", "f"}, {"id", 1}, {"pid", 1}, {"tid", 1}, {"ts", 5}}}),
        "not bound"));
    EXPECT_TRUE(has_problem(
        doc_of(
            {x(1, 1), {{"ph", "f"}, {"name", "f"}, {"id", 1}, {"pid", 1}, {"tid", 1}, {"ts", 1}}}),
        "no earlier s"));
}
