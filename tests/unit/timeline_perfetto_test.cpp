// write_perfetto_trace: the Perfetto protobuf export, decoded by the
// test-side reader (perfetto_decode.h), holds the same tracks, slices,
// instants, flows, counters and args as the JSON export of the same report.
#include <kextrace/stream_builder.h>

#include "perfetto_decode.h"
#include "report_of.h"
#include <kextrace/timeline.h>

#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>
#include <tuple>

using namespace kextrace;
using kextrace::test::report_of;
using kextrace::test::run_info;
using nlohmann::json;
namespace pf = kextrace::test::pf;

namespace {

Symbolizer symbols() {
    return [](uint64_t a) {
        return a == 0xffffffffc0001000 ? std::string("kex_mmap+0x1a5 [kex]") : std::string();
    };
}

struct Both {
    json doc;          // the JSON export
    std::string bytes; // the protobuf export
    pf::Trace trace;   // decoded
    TimelineStats json_stats, pf_stats;
};

Both export_both(const Report& r, const TimelineOptions& opts = {}) {
    Both b;
    std::ostringstream js, ps;
    b.json_stats = write_trace_events(r, run_info(), symbols(), js, opts);
    b.pf_stats = write_perfetto_trace(r, run_info(), symbols(), ps, opts);
    b.doc = json::parse(js.str());
    b.bytes = ps.str();
    b.trace = pf::decode(b.bytes);
    return b;
}

Report story(StreamBuilder::Story s) {
    StreamBuilder b;
    b.story(s);
    return report_of(b);
}

uint64_t ns(const json& us) {
    return static_cast<uint64_t>(std::llround(us.get<double>() * 1000));
}

// (track name, event name, category, ts, dur) of every slice and instant
// (dur ~0 for instants): from the JSON, tracks named by their thread_name.
using Slice = std::tuple<std::string, std::string, std::string, uint64_t, uint64_t>;

std::multiset<Slice> json_slices(const json& doc) {
    std::map<std::pair<uint32_t, uint32_t>, std::string> names;
    for (const json& e : doc["traceEvents"])
        if (e["ph"] == "M" && e["name"] == "thread_name")
            names[{e["pid"], e["tid"]}] = e["args"]["name"];
    std::multiset<Slice> out;
    for (const json& e : doc["traceEvents"])
        if (e["ph"] == "X" || e["ph"] == "i")
            out.insert({names.at({e["pid"], e["tid"]}), e["name"], e["cat"], ns(e["ts"]),
                        e["ph"] == "X" ? ns(e["dur"]) : ~0ull});
    return out;
}

// The same from the protobuf: begins paired with their ends per track.
std::multiset<Slice> pf_slices(const pf::Trace& t) {
    std::map<uint64_t, std::vector<const pf::TrackEv*>> open;
    std::multiset<Slice> out;
    for (const pf::TrackEv& e : t.events) {
        const std::string& track = t.tracks.at(t.track_index.at(e.track)).name;
        if (e.type == 1)
            open[e.track].push_back(&e);
        else if (e.type == 3)
            out.insert({track, e.name, e.category, e.ts, ~0ull});
        else if (e.type == 2) {
            auto& o = open[e.track];
            EXPECT_FALSE(o.empty()) << "an end without a begin on " << track;
            if (o.empty())
                continue;
            EXPECT_GE(e.ts, o.back()->ts);
            out.insert(
                {track, o.back()->name, o.back()->category, o.back()->ts, e.ts - o.back()->ts});
            o.pop_back();
        }
    }
    for (const auto& [track, o] : open)
        EXPECT_TRUE(o.empty()) << o.size() << " slices left open on track " << track;
    return out;
}

} // namespace

TEST(TimelinePerfetto, TracksArePagesUnderTheirProcessAndTheRigThreads) {
    const Report r = story({.pages = 8});
    const Both b = export_both(r);
    const pf::Trace& t = b.trace;
    EXPECT_TRUE(t.sequences_ok);
    // 8 pages + the groups: process 100, its rig thread, its two counters
    ASSERT_EQ(t.tracks.size(), 8u + 4u);
    EXPECT_EQ(t.track_index.size(), t.tracks.size()) << "uuids are unique";
    std::size_t pages = 0, processes = 0, threads = 0, counters = 0;
    for (const pf::TrackDesc& d : t.tracks) {
        EXPECT_NE(d.uuid, 0u);
        processes += d.process;
        threads += d.thread;
        counters += d.counter;
        if (d.process) {
            EXPECT_EQ(d.pid, 100);
            EXPECT_EQ(d.name, "mmap_test /dev/kex 8 (pid 100)");
        }
        if (d.thread) {
            EXPECT_EQ(d.pid, 100);
            EXPECT_EQ(d.tid, 100);
            EXPECT_EQ(d.name, "rig 100 (phases, kex mmap)");
        }
        if (d.name.starts_with("page ")) {
            ++pages;
            ASSERT_TRUE(t.track_index.count(d.parent));
            EXPECT_TRUE(t.tracks[t.track_index.at(d.parent)].process);
        }
    }
    EXPECT_EQ(pages, 8u);
    EXPECT_EQ(processes, 1u);
    EXPECT_EQ(threads, 1u);
    EXPECT_EQ(counters, 2u);
    EXPECT_EQ(t.tracks[t.track_index.at(3)].name, "page 0 pfn 0x1000");
}

TEST(TimelinePerfetto, EveryEventIsOnATrackDeclaredBeforeIt) {
    const Both b = export_both(story({.pages = 8}));
    ASSERT_FALSE(b.trace.events.empty());
    for (std::size_t i = 0; i < b.trace.events.size(); ++i) {
        const pf::TrackEv& e = b.trace.events[i];
        ASSERT_TRUE(e.declared_before) << "event " << i << " on track " << e.track;
        EXPECT_EQ(e.flags & 2, 2u) << "interned names need the incremental state";
        EXPECT_NE(e.ts, 0u);
        EXPECT_EQ(b.trace.tracks[b.trace.track_index.at(e.track)].counter, e.type == 4) << i;
    }
}

TEST(TimelinePerfetto, SlicesAndInstantsMatchTheJson) {
    for (const StreamBuilder::Story& s :
         std::vector<StreamBuilder::Story>{{.pages = 8},
                                           {.pages = 3, .policy = Policy::keep},
                                           {.pages = 3, .exit_instead_of_munmap = true},
                                           {.pages = 4, .fail_at = 2},
                                           {.pages = 2, .write = false}}) {
        const Both b = export_both(story(s));
        const auto want = json_slices(b.doc);
        EXPECT_FALSE(want.empty());
        EXPECT_EQ(pf_slices(b.trace), want) << s.pages << " pages";
    }
}

TEST(TimelinePerfetto, CountersMatchTheJson) {
    const Both b = export_both(story({.pages = 8}));
    std::vector<std::tuple<std::string, uint64_t, int64_t>> want, got;
    for (const json& e : b.doc["traceEvents"])
        if (e["ph"] == "C")
            want.emplace_back(e["name"], ns(e["ts"]), e["args"]["pages"]);
    for (const pf::TrackEv& e : b.trace.events)
        if (e.type == 4)
            got.emplace_back(b.trace.tracks[b.trace.track_index.at(e.track)].name, e.ts, e.counter);
    EXPECT_EQ(got, want);
    EXPECT_FALSE(want.empty());
}

TEST(TimelinePerfetto, FlowsChainEachPagesStepsAsInTheJson) {
    const Both b = export_both(story({.pages = 4}));
    // per id: the JSON's bound events and the protobuf's flow-carrying ones
    std::map<uint64_t, std::size_t> json_n, pf_n, terminated;
    for (const json& e : b.doc["traceEvents"])
        if (e.contains("bind_id"))
            ++json_n[e["bind_id"]];
    for (const pf::TrackEv& e : b.trace.events) {
        for (uint64_t id : e.flow_ids)
            ++pf_n[id];
        for (uint64_t id : e.terminating_flow_ids)
            ++pf_n[id], ++terminated[id];
    }
    EXPECT_EQ(pf_n, json_n);
    for (const auto& [id, n] : json_n)
        EXPECT_EQ(terminated[id], 1u) << "flow " << id << " ends once";
    EXPECT_EQ(json_n.size(), 4u);
}

TEST(TimelinePerfetto, ArgsAreDebugAnnotationsWithTheJsonsValues) {
    const Both b = export_both(story({.pages = 2}));
    const std::string page0 = "page 0 pfn 0x1000";
    const pf::TrackEv* pte = nullptr;
    std::size_t with_args = 0;
    for (const pf::TrackEv& e : b.trace.events) {
        if (e.type != 1 && e.type != 3)
            continue;
        with_args += !e.args.empty();
        if (e.name == "set_pte_at (PTE written)" &&
            b.trace.tracks[b.trace.track_index.at(e.track)].name == page0)
            pte = &e;
    }
    EXPECT_GT(with_args, 0u);
    ASSERT_NE(pte, nullptr);
    std::map<std::string, pf::Annotation> a;
    for (const pf::Annotation& x : pte->args)
        a[x.name] = x;
    EXPECT_EQ(a.at("step").s, "pte_set");
    EXPECT_EQ(a.at("pte").kind, 'p'); // shown in hex, as the JSON's "0x..." string
    EXPECT_EQ(a.at("pte").v, 0x8000000001000027u);
    EXPECT_EQ(a.at("bits").s, "P RW U A - NX");
    EXPECT_EQ(a.at("pfn").kind, 'u');
    EXPECT_EQ(a.at("pfn").v, 0x1000u);
    EXPECT_EQ(a.at("present").kind, 'b');
    EXPECT_EQ(a.at("present").v, 1u);
    EXPECT_EQ(a.at("dirty").v, 0u);
    // the same keys as the JSON's args
    json want;
    for (const json& e : b.doc["traceEvents"])
        if (e["name"] == "set_pte_at (PTE written)" && e["tid"] == kPageTidBase)
            want = e["args"];
    std::vector<std::string> keys;
    for (const pf::Annotation& x : pte->args)
        keys.push_back(x.name);
    std::vector<std::string> want_keys;
    for (const auto& [k, v] : want.items())
        want_keys.push_back(k);
    std::sort(keys.begin(), keys.end());
    EXPECT_EQ(keys, want_keys);
}

TEST(TimelinePerfetto, StacksAreInternedStringsAndNullsJson) {
    const Both b = export_both(story({.pages = 1}));
    bool stack = false, null = false;
    for (const pf::TrackEv& e : b.trace.events)
        for (const pf::Annotation& a : e.args) {
            if (a.name == "stack" && a.s == R"(["kex_mmap+0x1a5 [kex]","0xffffffff81200000"])")
                stack = a.kind == 's';
            if (a.name == "addr" && a.kind == 'j')
                null = a.s == "null";
        }
    EXPECT_TRUE(stack);
    EXPECT_TRUE(null);
}

TEST(TimelinePerfetto, StatsAreTheJsonsButTheBytes) {
    const Both b = export_both(story({.pages = 8}));
    EXPECT_EQ(b.pf_stats.bytes, b.bytes.size());
    EXPECT_EQ(b.pf_stats.events, b.json_stats.events);
    EXPECT_EQ(b.pf_stats.tracks, b.json_stats.tracks);
    EXPECT_EQ(b.pf_stats.page_tracks, 8u);
    EXPECT_EQ(b.pf_stats.flow_arrows, b.json_stats.flow_arrows);
}

TEST(TimelinePerfetto, OptionsTurnPartsOff) {
    const Both b =
        export_both(story({.pages = 2}), {.flows = false, .counters = false, .stacks = false});
    for (const pf::TrackEv& e : b.trace.events) {
        EXPECT_NE(e.type, 4u);
        EXPECT_TRUE(e.flow_ids.empty() && e.terminating_flow_ids.empty());
        for (const pf::Annotation& a : e.args)
            EXPECT_NE(a.name, "stack");
    }
    EXPECT_EQ(b.trace.tracks.size(), 2u + 2u); // no counter tracks
}

TEST(TimelinePerfetto, ThousandsOfPagesTakeAFractionOfTheJson) {
    const Both b = export_both(story({.pages = 4096}));
    EXPECT_EQ(b.trace.tracks.size(), 4096u + 4u);
    EXPECT_EQ(pf_slices(b.trace), json_slices(b.doc));
    // interned names and keys, varints: well under half the JSON
    EXPECT_LT(b.pf_stats.bytes * 2, b.json_stats.bytes);
}

TEST(TimelinePerfetto, FormatByNameOrOption) {
    EXPECT_EQ(timeline_format_of("run.pftrace"), TimelineFormat::perfetto);
    EXPECT_EQ(timeline_format_of("out/run.perfetto-trace"), TimelineFormat::perfetto);
    EXPECT_EQ(timeline_format_of("run.json"), TimelineFormat::json);
    EXPECT_EQ(timeline_format_of(".pftrace"), TimelineFormat::json);
    EXPECT_EQ(timeline_format_of("run.pftrace.json"), TimelineFormat::json);
    EXPECT_EQ(parse_timeline_format("perfetto"), TimelineFormat::perfetto);
    EXPECT_EQ(parse_timeline_format("json"), TimelineFormat::json);
    EXPECT_FALSE(parse_timeline_format("protobuf"));
}
