// options.h - the command line, as a passive struct (CLI11 in options.cpp).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern "C" {
#include <linux/types.h>
}
#include "kextrace.h"

namespace kextrace {

struct Options {
    std::vector<std::string> command; // after "--"
    std::optional<int> pid;           // -p: attach to a running process
    std::optional<double> duration_s; // --duration
    std::string json_path;            // --json FILE
    std::string stats_path;           // --stats FILE
    std::string events_path;          // --events FILE: every decoded record, JSON lines
    std::string jsonl_path;           // --jsonl FILE: raw events + header, for `kextrace report`
    std::string export_path;          // --export FILE: the timeline
    std::string export_format;        // --export-format: json | perfetto ("": by FILE's name)
    bool verbose = false;             // -v
    bool accept_loss = false;
    bool fault_all_pages = false;     // --fault-probe-all-pages
    bool kex_only = false;            // --kex-only: no other driver's pages
    std::vector<std::string> drivers; // --driver NAME: only these drivers' mappings
    std::vector<std::string> files;   // --file PATH: only mappings of these files
    // --stacks MODE: every stack-carrying record walks its stack (all), a call
    // site's first record walks it and the rest name it (sites), or none
    // (--no-stacks)
    enum class StackMode { all, sites, none };
    StackMode stack_mode = StackMode::sites;
    bool full = false;                       // --full: every page row
    bool show_stacks = false;                // --show-stacks: print the first page's stacks
    bool plan_only = false;                  // --plan: print the probe plan and exit
    bool follow = false;                     // --follow [GLOB]: every function a page passes
    std::vector<std::string> follow_globs;   // its GLOBs (none: every function)
    std::vector<std::string> follow_exclude; // --follow-exclude GLOB...
    bool leaks = false;                      // --leaks: per-page leak verdicts, exit 4 on a leak
    bool all = false;                        // --all (with --leaks): every process, until stopped
    bool watch = false; // --watch: a page's records kept in BPF, sent once at its free
    std::chrono::milliseconds settle{150};
    std::string kallsyms = "/proc/kallsyms";
    std::string kprobe_mode = "auto"; // auto | tracefs | perf
    std::string usdt_binary;          // --usdt
    std::optional<std::pair<int, int>> insert_args;
    unsigned ringbuf_mb = 16;
    unsigned max_pages = KEX_MAX_PAGES_DEFAULT;
    unsigned max_allocs = KEX_MAX_DRIVER_ALLOCS; // allocations remembered until a driver maps them
    unsigned debug_max_traced = KEX_MAX_TRACED;  // hidden: the BPF traced map's size
    unsigned debug_queue_limit_kb = 0; // hidden: the drain thread waits past this (0: unbounded)
    bool debug_stack_check = false;    // hidden: sites' reused stacks walked too, compared
};

// Parses argv. Returns nullopt after printing help / a usage error; *exit_code
// is then what main should return.
std::optional<Options> parse_options(int argc, char** argv, int* exit_code);
// "kextrace 0.1 (built with libbpf 1.1, running libbpf v1.1)": --version.
std::string version_text();
// "all", "sites", "none"
std::string_view stack_mode_name(Options::StackMode m);

} // namespace kextrace
