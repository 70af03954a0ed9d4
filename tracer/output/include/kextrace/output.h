// kextrace/output.h - renderers for a kextrace::Report: text and JSON.
//
// Pure functions of (Report, RunInfo): no libbpf, no files. The session fills
// RunInfo from what it probed and attached; symbolization is the caller's
// (kallsyms), passed in as a Symbolizer.
#pragma once

#include <kextrace/core.h>
#include <kextrace/leaks.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace kextrace {

// Kernel address -> "symbol+0xoff" (or "" when unknown). May be empty: then
// addresses print as hex.
using Symbolizer = std::function<std::string(uint64_t)>;

// One step of the trace and how (whether) it was observed on this kernel.
//   insert   insert_page_into_pte_locked  insert_page_into_pte_locked.constprop.0  yes  0
struct ProbeStatus {
    std::string step;     // what it observes: "insert", "rmap add", "zap", ...
    std::string wanted;   // symbol or tracepoint asked for
    std::string resolved; // what it attached to ("" = nothing)
    bool attached = false;
    std::string reason;    // why not attached / why this fallback / why off
    uint64_t nmissed = 0;  // kprobe misses (bpf_link info / kprobe_profile)
    std::string mechanism; // "fentry + fexit", "tracefs kprobe + kretprobe", "tracepoint", ...
    bool off = false;      // not armed: the run's options need nothing of it (reason says why)
};

struct RunInfo {
    std::string kernel_release; // uname -r
    std::string command_line;   // the traced command
    std::vector<ProbeStatus> probes;
    // How set_pte_at (an x86 inline) is observed, e.g. "PTE read back at the
    // return of insert_page_into_pte_locked". Empty = the default wording.
    std::string set_pte_observed;
    // Loss counters are in Report::losses (Correlator::set_losses).
};

struct TextOptions {
    bool full = false;                  // every page row, even for many pages
    std::size_t compact_threshold = 32; // more pages than this: head + tail only
    std::size_t head = 5;               // rows shown at the start when compact
    std::size_t tail = 3;               // rows shown at the end when compact
    bool stacks = false;                // print the alloc/free stacks of the first page shown
};

// The human report: probes, phases, the per-page lifecycle table, anomalies,
// a summary line. Fits 100 columns for 8 pages.
void render_text(const Report& report, const RunInfo& run, std::ostream& out,
                 const Symbolizer& symbolize, const TextOptions& opts = {});

// Versioned JSON ("schema": "kextrace.report/1"); see docs/json-schema.md.
inline constexpr const char* kJsonSchema = "kextrace.report/1";
nlohmann::json to_json(const Report& report, const RunInfo& run, const Symbolizer& symbolize);
// The same document streamed, for files: the bytes of
//   j = to_json(report, run, symbolize); j[k] = v for each member of extra;
//   j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
// (no trailing newline) without building the tree of the pages and steps.
// extra (an object, or null) holds further top-level sections ("leaks",
// "probe_counters", ...), placed at their sorted positions; a name of the
// report's replaces that section. leaks, when given, is the "leaks" section,
// streamed: the bytes of extra["leaks"] = leaks_json(*leaks, report,
// symbolize) without the tree of every page's verdict (a "leaks" in extra
// replaces it). Returns the bytes written; stream errors are left in out's
// state. to_json stays the reference (the unit tests compare the two).
uint64_t write_report_json(std::ostream& out, const Report& report, const RunInfo& run,
                           const Symbolizer& symbolize,
                           const nlohmann::json& extra = nlohmann::json::object(),
                           const LeakReport* leaks = nullptr);

// kextrace --leaks: the verdict table (every page when few or opts.full,
// else those not freed), then each leaked / freed-while-mapped finding
// (pages with the same ledger grouped) with its reference ledger and the
// stack of the reference never dropped.
void render_leaks_text(const LeakReport& leaks, const Report& report, std::ostream& out,
                       const Symbolizer& symbolize, const TextOptions& opts = {});
// The "leaks" section of the JSON report (see docs/json-schema.md).
nlohmann::json leaks_json(const LeakReport& leaks, const Report& report,
                          const Symbolizer& symbolize);

} // namespace kextrace
