// kextrace/jsonl.h - every raw event as one JSON line (schema
// "kextrace.events/1"), and back, so a trace can be correlated again offline
// (`kextrace report FILE.jsonl`). Serialization only: the caller opens files
// (tracer/src/trace_files.h).
//
// A file is a header line, then one line per event in the order the
// correlator was fed (that order breaks timestamp ties, so replaying it
// reproduces the report exactly):
//
//   {"schema":"kextrace.events/1","kernel_release":"6.1.0-56-amd64",
//    "command_line":"mmap_test /dev/kex 8",
//    "correlator":{"roots":[133],"expected":["kex_alloc",...],"reorder_window_ns":0,
//                  "alloc_attach_ns":10000000000,"max_anomalies":1000},
//    "probes":[{"step":"insert",...}],"probe_names":["rig_phase",...],
//    "losses":{"per_type":{},"ring":0,"decode_errors":0},"events":298,
//    "symbols":{"0xffffffffc0411696":"kex_mmap+0x2a6 [kex]"},"set_pte_observed":"..."}
//   {"type":"kex_page_alloc","ts":13167569500,"pid":133,"tid":133,"cpu":1,"pfn":147356,
//    "addr":"0x0","arg0":"0x0","arg1":"0x0","ret":0,"refcount":1,"mapcount":0,"probe":3,
//    "stack":["0xffffffffc0411696","0xffffffffbaaadc73"]}
//
// ts, pid, tid, cpu, ret, probe: integers; pfn: integer or null (no pfn);
// refcount, mapcount: integers or null (not read); addr, arg0, arg1 and stack
// frames: hex strings (64-bit values do not fit a double).
#pragma once

#include <kextrace/core.h>
#include <kextrace/output.h>

#include <cstdint>
#include <functional>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace {

inline constexpr const char* kJsonlSchema = "kextrace.events/1";

// The first line: what the events need to be correlated and reported again.
struct JsonlHeader {
    RunInfo run;
    Losses losses;
    // How the live trace's correlator was configured (roots, expected
    // milestones, windows, caps): a replay uses the same.
    CorrelatorOptions correlator;
    std::vector<std::string> probe_names;    // Event::probe -> name
    std::map<uint64_t, std::string> symbols; // every stack address seen -> "sym+0xoff"
    uint64_t events = 0;                     // event lines that follow
};

std::string jsonl_header_line(const JsonlHeader& h); // no newline
std::string jsonl_event_line(const Event& ev);       // no newline
// Appends the event line (no newline) to out: the fast path for writers.
void append_jsonl_event(std::string& out, const Event& ev);

// Parsing one line; nullopt and *why = the reason on failure.
std::optional<JsonlHeader> parse_jsonl_header(std::string_view line, std::string* why = nullptr);
std::optional<Event> parse_jsonl_event(std::string_view line, std::string* why = nullptr);

// A whole stream: the header, then on_event for every event line in order.
// Blank lines are skipped. An error names the 1-based line it is about.
struct JsonlError {
    std::size_t line = 0;
    std::string message;
};
struct JsonlRead {
    std::optional<JsonlHeader> header; // set when the whole stream was read
    std::optional<JsonlError> error;
    uint64_t events = 0;
};
JsonlRead read_jsonl(std::istream& in, const std::function<void(Event&&)>& on_event);

// A Symbolizer that answers from the header's symbol table.
Symbolizer symbolizer_of(const JsonlHeader& h);

} // namespace kextrace
