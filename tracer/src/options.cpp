// options.cpp - see options.h.
#include "options.h"

#include <bpf/libbpf.h>
#include <bpf/libbpf_version.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace kextrace {

namespace {

// The checks CLI11 cannot make: --insert-args' form, the ring's size, and the
// options that go together. false after printing why (a usage error).
bool check_options(Options& o, const std::string& insert_args, const std::string& help) {
    if (!insert_args.empty()) {
        int a = 0, b = 0;
        if (std::sscanf(insert_args.c_str(), "%d,%d", &a, &b) != 2 || a < 1 || a > 6 || b < 1 ||
            b > 6) {
            fmt::print(stderr, "kextrace: --insert-args wants PTE,PAGE (1-6), got '{}'\n",
                       insert_args);
            return false;
        }
        o.insert_args = std::make_pair(a, b);
    }
    if (o.kex_only && (!o.drivers.empty() || !o.files.empty())) {
        fmt::print(stderr, "kextrace: --kex-only follows no other driver: it does not go with "
                           "--driver or --file\n");
        return false;
    }
    if (!o.follow_exclude.empty() && !o.follow) {
        fmt::print(stderr, "kextrace: --follow-exclude goes with --follow\n");
        return false;
    }
    if (o.debug_stack_check && o.stack_mode != Options::StackMode::sites) {
        fmt::print(stderr, "kextrace: --debug-stack-check checks --stacks sites: add it\n");
        return false;
    }
    if ((o.ringbuf_mb & (o.ringbuf_mb - 1)) != 0) {
        fmt::print(stderr, "kextrace: --ringbuf-mb must be a power of 2\n");
        return false;
    }
    if (o.all && (!o.leaks || !o.command.empty() || o.pid)) {
        fmt::print(stderr, "kextrace: --all goes with --leaks, and with neither CMD nor -p\n");
        return false;
    }
    if (!o.plan_only && !o.all && o.command.empty() == !o.pid.has_value()) {
        fmt::print(stderr, "kextrace: give either -- CMD ARGS... or -p PID\n{}", help);
        return false;
    }
    return true;
}

// What --settle and --insert-args give before they become Options fields.
// --stacks's modes: the one place their names are spelled
constexpr std::array<std::pair<std::string_view, Options::StackMode>, 3> kStackModes{{
    {"all", Options::StackMode::all},
    {"sites", Options::StackMode::sites},
    {"none", Options::StackMode::none},
}};

std::vector<std::string> stack_mode_names() {
    std::vector<std::string> names;
    for (const auto& [name, mode] : kStackModes)
        names.emplace_back(name);
    return names;
}

struct RawOptions {
    int settle_ms = 0;
    CLI::Option* settle = nullptr;
    std::string insert_args;
    std::string stacks = "sites"; // --stacks MODE
};

// What to trace, and for how long.
void add_target_options(CLI::App& app, Options& o, RawOptions& raw) {
    const char* g = "What to trace";
    app.add_option("-p,--pid", o.pid, "trace a running process (and its new children)")
        ->type_name("PID")
        ->group(g);
    app.add_flag("--all", o.all,
                 "with --leaks: every process's kex pages, until SIGINT/SIGTERM, --duration or "
                 "kex unloads (kex cannot be unloaded while kextrace is attached: stop it first)")
        ->group(g);
    app.add_option("--duration", o.duration_s, "stop after S seconds")
        ->type_name("S")
        ->check(CLI::PositiveNumber)
        ->group(g);
    raw.settle_ms = static_cast<int>(o.settle.count());
    raw.settle = app.add_option("--settle", raw.settle_ms,
                                "ms to keep tracing after the command exits (deferred "
                                "frees; 1000 with --leaks)")
                     ->capture_default_str()
                     ->check(CLI::Range(0, 60000))
                     ->group(g);
    app.add_flag(
           "--leaks", o.leaks,
           "refcount leak hunting: once CMD exited and its deferred frees settled, a "
           "verdict per followed page (freed, leaked, still mapped, freed while mapped), with "
           "the reference ledger and the stack of the reference never dropped")
        ->group(g);
    app.add_flag("--kex-only", o.kex_only,
                 "follow kex's pages only, not the pages other drivers insert into the traced "
                 "processes (AF_PACKET rings, BPF ring buffers, ...)")
        ->group(g);
    app.add_option("--driver", o.drivers,
                   "follow only the mappings of this driver (a module, or a built-in one named "
                   "after its mmap handler: af_packet); repeat for more; kex's pages are "
                   "followed whenever kex is loaded")
        ->type_name("NAME")
        ->allow_extra_args(false)
        ->group(g);
    app.add_option("--file", o.files,
                   "follow only the mappings of this file (a device node, a file, or "
                   "socket:[INODE] / anon_inode:NAME as /proc/PID/maps shows it); repeat for more")
        ->type_name("PATH")
        ->allow_extra_args(false)
        ->group(g);
}

// An output FILE that is an option itself: `--json -- CMD` would write the
// report to a file named "--" and run CMD. Refused; ./-x names such a file.
const CLI::Validator kFileNotOption(
    [](std::string& v) -> std::string {
        if (v.size() > 1 && v[0] == '-')
            return "'" + v + "' is an option, not a FILE: give the file name first (./" + v +
                   " for a file named so)";
        return {};
    },
    "", "file, not an option");

// What to write, and where.
void add_output_options(CLI::App& app, Options& o) {
    const char* g = "Output";
    app.add_option("--json", o.json_path, "also write the report as JSON to FILE (atomically)")
        ->type_name("FILE")
        ->check(kFileNotOption)
        ->group(g);
    app.add_option("--stats", o.stats_path,
                   "also write the run's counters as JSON to FILE (atomically): ring accounting "
                   "and probe counters, as in --json, without the pages (small for any run)")
        ->type_name("FILE")
        ->check(kFileNotOption)
        ->group(g);
    app.add_option("--events", o.events_path,
                   "write every decoded record to FILE, one JSON object per line")
        ->type_name("FILE")
        ->check(kFileNotOption)
        ->group(g);
    app.add_option("--jsonl", o.jsonl_path,
                   "write every raw event to FILE, one JSON object per line after a header "
                   "(replay it with: kextrace report FILE)")
        ->type_name("FILE")
        ->check(kFileNotOption)
        ->group(g);
    app.add_option("--export", o.export_path,
                   "write a timeline (ui.perfetto.dev, chrome://tracing) to FILE: Perfetto "
                   "protobuf if FILE ends in .pftrace or .perfetto-trace, else Trace Event "
                   "Format JSON")
        ->type_name("FILE")
        ->check(kFileNotOption)
        ->group(g);
    app.add_option("--export-format", o.export_format,
                   "the --export timeline's format whatever FILE's name: json (Trace Event "
                   "Format) or perfetto (protobuf, for runs too big for JSON viewers)")
        ->type_name("FORMAT")
        ->check(CLI::IsMember({"json", "perfetto"}))
        ->group(g);
    app.add_flag("--full", o.full, "print every page row")->group(g);
    app.add_flag("--show-stacks", o.show_stacks, "print the kernel stacks of the first page")
        ->group(g);
    app.add_flag("--accept-loss", o.accept_loss,
                 "exit with the command's status even if events were lost")
        ->group(g);
    app.add_flag("-v,--verbose", o.verbose, "debug logging, libbpf's messages included")->group(g);
}

// How the probes attach and what they capture.
void add_probe_options(CLI::App& app, Options& o, RawOptions& raw) {
    const char* g = "Probes";
    app.add_flag("--plan", o.plan_only, "print which probe observes each step here, then exit")
        ->group(g);
    app.add_option("--follow", o.follow_globs,
                   "also follow every tracked page through every kernel function with a "
                   "struct page * or struct folio * argument (from the kernel's BTF), or only "
                   "those matching GLOB; --plan lists them and what was left out and why")
        ->expected(0, 1)
        ->type_name("[GLOB]")
        ->allow_extra_args(false)
        ->group(g);
    app.add_option("--follow-exclude", o.follow_exclude,
                   "with --follow: leave out the functions matching GLOB; repeat for more")
        ->type_name("GLOB")
        ->allow_extra_args(false)
        ->group(g);
    auto* stacks =
        app.add_option("--stacks", raw.stacks,
                       "kernel stacks: sites (default: a call site's stack walked once; its "
                       "later records name it where the task's stack still holds the same "
                       "return addresses), all (every stack record walks its own), none")
            ->type_name("MODE")
            ->check(CLI::IsMember(stack_mode_names()))
            ->group(g);
    app.add_flag_callback(
           "--no-stacks", [&raw] { raw.stacks = "none"; },
           "do not capture kernel stacks (--stacks none)")
        ->excludes(stacks)
        ->group(g);
    app.add_flag("--watch", o.watch,
                 "keep each page's records in the kernel and send them in one record when the "
                 "page is freed (the pages not freed are read at the end): the same verdicts "
                 "and ledgers from far fewer ring-buffer records, the steps no verdict reads "
                 "(the zap's dirtying, user faults) left off; for long --leaks --all runs")
        ->group(g);
    app.add_flag("--fault-probe-all-pages", o.fault_all_pages,
                 "report do_set_pte / set_pte_range for every page the traced processes fault "
                 "in, not only kex pages")
        ->group(g);
    app.add_option("--kallsyms", o.kallsyms, "kallsyms file")->capture_default_str()->group(g);
    app.add_option("--kprobe-mode", o.kprobe_mode,
                   "tracefs: kprobe_events (per-probe missed counts); perf: kprobe PMU")
        ->capture_default_str()
        ->check(CLI::IsMember({"auto", "tracefs", "perf"}))
        ->group(g);
    app.add_option("--usdt", o.usdt_binary,
                   "binary with the kex_rig USDT probes (default: CMD, or /proc/PID/exe)")
        ->type_name("BINARY")
        ->group(g);
    app.add_option("--insert-args", raw.insert_args,
                   "PTE,PAGE: argument positions (1-6) of insert_page_into_pte_locked's clone")
        ->type_name("PTE,PAGE")
        ->group(g);
}

// The sizes of the ring and the BPF maps (in the help's Probes group too).
void add_size_options(CLI::App& app, Options& o) {
    const char* g = "Probes";
    app.add_option("--ringbuf-mb", o.ringbuf_mb, "ring buffer size in MiB (power of 2)")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1024u))
        ->group(g);
    app.add_option("--max-pages", o.max_pages, "pages tracked at once (kex's and other drivers')")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1u << 24))
        ->group(g);
    app.add_option("--max-allocs", o.max_allocs,
                   "allocations of the traced processes remembered until a driver maps them "
                   "(a driver buffer allocated before its mmap: one a page; 224 bytes each)")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1u << 22))
        ->group(g);
    // Hidden, for tests: the ring's drain thread waits while KB of records wait
    // to be decoded, so a stalled consumer makes the ring overflow (events lost).
    app.add_option("--debug-queue-limit-kb", o.debug_queue_limit_kb)
        ->check(CLI::Range(0u, 1u << 20))
        ->group("");
    // Hidden, for tests: with --stacks sites, every record that reuses a site
    // walks too, and user space counts where the two differ.
    app.add_flag("--debug-stack-check", o.debug_stack_check)->group("");
    // Hidden, for tests: the traced map's size (thread groups alive at once),
    // small enough that only pruning at exit keeps it from filling.
    app.add_option("--debug-max-traced", o.debug_max_traced)
        ->check(CLI::Range(1u, 1u << 22))
        ->group("");
}

} // namespace

std::string_view stack_mode_name(Options::StackMode m) {
    auto it = std::ranges::find(kStackModes, m, &decltype(kStackModes)::value_type::second);
    return it->first;
}

std::string version_text() {
    return fmt::format("kextrace {} (built with libbpf {}.{}, running libbpf {})", KEXTRACE_VERSION,
                       LIBBPF_MAJOR_VERSION, LIBBPF_MINOR_VERSION, libbpf_version_string());
}

std::optional<Options> parse_options(int argc, char** argv, int* exit_code) {
    Options o;
    CLI::App app{"kextrace: follow every page a driver maps into a process (kex, or any driver "
                 "that inserts pages: vm_insert_page/vm_insert_pages), through the kernel's "
                 "insert / fault / unmap paths\n"
                 "usage: kextrace [OPTIONS] -- CMD ARGS...  |  kextrace [OPTIONS] -p PID  |  "
                 "kextrace report FILE.jsonl [--json OUT] [--export OUT]  |  "
                 "kextrace --leaks --all",
                 "kextrace"};
    app.footer("Exit status: the command's, when the trace is clean; 3 if events were lost "
               "(unless --accept-loss); 127 if CMD cannot be run; 1 on errors; 2 on bad usage. "
               "With --leaks: 4 if a page leaked or was freed while mapped, else 3 if events "
               "were lost (unless --accept-loss), else 0.");
    app.set_version_flag("--version", version_text(),
                         "print the version and the libbpf "
                         "kextrace was built with, and exit");
    RawOptions raw;
    add_target_options(app, o, raw);
    add_output_options(app, o);
    add_probe_options(app, o, raw);
    add_size_options(app, o);
    app.prefix_command(); // everything from the first positional (or "--") on is CMD

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help is success; every usage error is 2, whatever CLI11's own code
        *exit_code = app.exit(e) == 0 ? 0 : 2;
        return std::nullopt;
    }
    o.command = app.remaining();
    if (!o.command.empty() && o.command.front() == "--") {
        o.command.erase(o.command.begin());
    } else if (!o.command.empty() && o.command.front().starts_with('-')) {
        // prefix_command() hands an unknown option over as the command
        fmt::print(stderr, "kextrace: unknown option {} (see --help; the command goes after --)\n",
                   o.command.front());
        *exit_code = 2;
        return std::nullopt;
    }
    o.settle = std::chrono::milliseconds(raw.settle_ms);
    o.stack_mode = std::ranges::find(kStackModes, raw.stacks,
                                     &decltype(kStackModes)::value_type::first)
                       ->second; // IsMember checked it
    o.follow = app.count("--follow") > 0;
    std::erase(o.follow_globs, std::string()); // a bare --follow: every function
    if (o.leaks && raw.settle->count() == 0)
        o.settle = std::chrono::milliseconds(1000); // frees deferred past the exit, the release
    if (!check_options(o, raw.insert_args, app.help())) {
        *exit_code = 2;
        return std::nullopt;
    }
    return o;
}

} // namespace kextrace
