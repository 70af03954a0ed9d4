// kextrace/timeline.h - the Report as a Trace Event Format timeline (the JSON
// that ui.perfetto.dev and chrome://tracing load), and a validator for the
// rules those viewers depend on.
//
// Layout of the export (docs/timeline.md):
//   pid = the traced process (the page owner), one track (tid) per thread:
//     tid = the rig's own tid       "rig <tgid>": its phases (mmap, write, munmap) and kex's
//                                    mmap as duration slices, kex_vma_close as an instant
//     tid = kPageTidBase + life     "page <index> pfn 0x<pfn>": every kernel step of the page's
//                                    life, linked in time order by flow arrows
//   counters "kex pages allocated" / "kex pages mapped" on the process
//   a top-level "metadata" object: kernel release, command line, probe report, losses.
// Timestamps are CLOCK_MONOTONIC microseconds with three decimals (exact ns).
//
// A one-point step is a zero-duration complete event (ph "X", dur 0): viewers
// draw it as an instant, and unlike ph "i" it can carry flow arrows (v2:
// bind_id + flow_in / flow_out), which bind only to slices. The insert
// (insert_page_into_pte_locked entry .. return) is a real slice; the steps
// in between (the rmap add) nest inside it. Anomalies are ph "i" instants.
//
//   {"ph":"X","name":"page_add_file_rmap","cat":"insert","pid":133,"tid":1073741824,
//    "ts":13169315.290,"dur":0,"bind_id":1,"flow_in":true,"flow_out":true,
//    "args":{"step":"rmap_add","refcount":2,"mapcount":0}}
#pragma once

#include <kextrace/output.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace {

inline constexpr const char* kTimelineSchema = "kextrace.timeline/1";
// Synthetic tids of page tracks: above any real tid (pid_max <= 2^22).
inline constexpr uint32_t kPageTidBase = 1u << 30;

struct TimelineOptions {
    bool flows = true;    // flow arrows along each page's steps
    bool counters = true; // "kex pages allocated" / "kex pages mapped"
    bool stacks = true;   // symbolized stacks in the args of steps that have one
};

// What write_trace_events wrote.
struct TimelineStats {
    uint64_t events = 0;      // entries of traceEvents
    uint64_t tracks = 0;      // thread tracks (rig threads + pages)
    uint64_t page_tracks = 0; // of which pages
    uint64_t flow_arrows = 0; // links between consecutive steps
    uint64_t bytes = 0;       // characters written
};

// Streams the timeline as one JSON object to out (no DOM is built). The
// caller owns the stream (and atomicity: see tracer/src/atomic_file.h).
TimelineStats write_trace_events(const Report& report, const RunInfo& run,
                                 const Symbolizer& symbolize, std::ostream& out,
                                 const TimelineOptions& opts = {});

// The same, parsed back into a DOM (for tests and small reports).
nlohmann::json to_trace_events(const Report& report, const RunInfo& run,
                               const Symbolizer& symbolize, const TimelineOptions& opts = {});

// The same timeline in Perfetto's own protobuf trace format (TrackEvent,
// docs/timeline.md): a process track per pid, the rig's threads as thread
// tracks, each page a named child track of its owner's process track, the
// counters as counter tracks; the same slices, instants, flows (flow_ids)
// and args (debug annotations), timestamps in ns. For runs too big for the
// JSON viewers. TimelineStats counts as for the JSON (events: the JSON's
// traceEvents entries); bytes are the protobuf's.
TimelineStats write_perfetto_trace(const Report& report, const RunInfo& run,
                                   const Symbolizer& symbolize, std::ostream& out,
                                   const TimelineOptions& opts = {});

enum class TimelineFormat { json, perfetto };
// By the file name: ".pftrace" and ".perfetto-trace" are Perfetto protobuf,
// anything else Trace Event Format JSON.
TimelineFormat timeline_format_of(std::string_view path);
// "json" or "perfetto"; nullopt for anything else.
std::optional<TimelineFormat> parse_timeline_format(std::string_view name);
// write_trace_events or write_perfetto_trace.
TimelineStats write_timeline_as(TimelineFormat format, const Report& report, const RunInfo& run,
                                const Symbolizer& symbolize, std::ostream& out,
                                const TimelineOptions& opts = {});

// ---------------------------------------------------------------------------
// Validation: the Trace Event Format rules the viewers depend on.
//
// Checked: the top level ({"traceEvents": [...]} or a bare array;
// displayTimeUnit "ms" or "ns"); every event an object with a string "ph" in
// {X, B, E, i, I, C, M, s, t, f} and a non-empty string "name"; integer pid
// and tid; a finite number ts >= 0 (except M); X: dur >= 0; i/I: scope s in
// {t, p, g}; C: args an object of numbers; M: a known metadata name with
// args.name (a string) or args.sort_index (an integer); args an object when
// present; B/E balanced per track (E closes the last open B of its track, no
// B left open); slices on one track nested (no partial overlap); ts
// non-decreasing per track in file order (per counter for C); flows v1
// (s/t/f): an id, s first, each bound to a slice of the same track that
// encloses its ts; flows v2 (bind_id on X/B): flow_in only after a flow_out
// of the same id, every flow_out consumed by a flow_in, no id started twice.
struct TraceCheck {
    std::vector<std::string> problems; // "traceEvents[12] (X \"insert\"): dur < 0"
    std::size_t problems_dropped = 0;  // beyond max_problems
    std::size_t events = 0;
    std::map<std::string, std::size_t> phases;       // events per ph
    std::size_t tracks = 0;                          // distinct (pid, tid) with events
    std::size_t flow_arrows = 0;                     // bound links (v1 and v2)
    std::map<std::string, std::string> thread_names; // "pid/tid" -> thread_name
    bool ok() const { return problems.empty() && problems_dropped == 0; }
};

TraceCheck validate_trace_events(const nlohmann::json& doc, std::size_t max_problems = 50);

} // namespace kextrace
