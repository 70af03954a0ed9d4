// main.cpp - kextrace: options -> checks -> probe plan -> load/attach ->
// session -> correlator -> text / JSON report. Only wiring lives here; every
// step is in kextrace_lib. run() reads as the list of phases, each a function
// below. The one fatal error type (FatalError) is caught here; everything else
// returns errors as values.
#include "driver_filter.h"
#include "environment.h"
#include "events_writer.h"
#include "follow_plan.h"
#include "intake.h"
#include "ksyms.h"
#include "leak_context.h"
#include "loader.h"
#include "options.h"
#include "probe_plan.h"
#include "probe_report.h"
#include "report_command.h"
#include "run_stats.h"
#include "session.h"
#include "text_file.h"
#include "trace_files.h"
#include "tramp_stack.h"

#include <kextrace/core.h>
#include <kextrace/heap.h>
#include <kextrace/leaks.h>
#include <kextrace/output.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace kextrace {
namespace {

constexpr int kExitLoss = 3;
constexpr int kExitLeak = 4; // --leaks: a page leaked or was freed while mapped
constexpr int kExitCannotRun = 127;

void setup_logging(bool verbose) {
    auto logger = spdlog::stderr_color_mt("kextrace"); // the drain thread may log (libbpf)
    logger->set_pattern("kextrace: %^%l%$: %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
    route_libbpf_logs();
}

std::string join_command(const std::vector<std::string>& argv) {
    std::string s;
    for (const auto& a : argv)
        s += (s.empty() ? "" : " ") + a;
    return s;
}

// --- phases before the trace ----------------------------------------------------

// What this machine offers: symbols, tracefs, the kernel's facts for the plan.
struct Host {
    Ksyms ksyms;
    std::optional<Tracefs> tracefs;
    KernelFacts facts;
};

Host inspect_host(const Options& opt) {
    if (!opt.plan_only) {
        if (auto st = check_privileges(); !st)
            throw FatalError(st.error().message);
        if (auto st = check_btf(); !st)
            throw FatalError(st.error().message, opt.follow ? 2 : 1);
    }
    Ksyms ksyms = Ksyms::load(opt.kallsyms).take_or_die("kallsyms");
    if (ksyms.addresses_hidden())
        spdlog::warn("{} shows no addresses (not root?): stacks will not be symbolized",
                     opt.kallsyms);
    std::optional<Tracefs> tracefs = find_or_mount_tracefs();
    if (!tracefs)
        spdlog::warn("no tracefs (/sys/kernel/tracing): tracepoints cannot be checked or attached");
    KernelFacts facts = probe_kernel(tracefs);
    return Host{std::move(ksyms), std::move(tracefs), std::move(facts)};
}

ProbePlan make_plan(const Options& opt, const Host& host) {
    // Where the rig's USDT probes live: the command's binary, or the process's.
    PlanOptions popts;
    popts.insert_args = opt.insert_args;
    popts.usdt_binary = opt.usdt_binary;
    popts.watch = opt.watch;
    if (popts.usdt_binary.empty() && !opt.command.empty())
        popts.usdt_binary = resolve_on_path(opt.command.front());
    if (popts.usdt_binary.empty() && opt.pid) {
        char buf[4096];
        ssize_t n = ::readlink(fmt::format("/proc/{}/exe", *opt.pid).c_str(), buf, sizeof(buf) - 1);
        if (n > 0)
            popts.usdt_binary.assign(buf, n);
    }
    return plan_probes(host.ksyms, host.facts, popts);
}

// --follow: the functions to follow on this kernel (exit 2 without BTF).
std::optional<FollowSet> follow_set(const Options& opt, const FollowOptions& fo,
                                    const ProbePlan& plan, const Host& host) {
    if (!opt.follow)
        return std::nullopt;
    if (!opt.plan_only && !host.facts.kprobes)
        throw FatalError("--follow needs kprobes: " + host.facts.no_kprobes_reason, 2);
    return discover_follow(fo, plan, host.tracefs).take_or_die_with(2);
}

// --plan
int print_plan(const KernelFacts& facts, const ProbePlan& plan, const FollowOptions& fo,
               const std::optional<FollowSet>& follow) {
    std::cout << fmt::format("kextrace probe plan for {}:\n", facts.release);
    if (!facts.kprobes)
        std::cout << fmt::format("kprobe steps are unobservable here: {}\n",
                                 facts.no_kprobes_reason);
    print_probe_table(std::cout, probe_statuses(plan, nullptr, nullptr));
    if (follow)
        print_follow_plan(std::cout, fo, *follow);
    return 0;
}

// Output files first: an unwritable one fails before anything is loaded or attached.
Streams open_outputs(const Options& opt, const ProbePlan& plan) {
    Streams out;
    if (!opt.jsonl_path.empty())
        out.jsonl.emplace(JsonlWriter::open(opt.jsonl_path).take_or_die("--jsonl"));
    // an unwritable --export or --json fails now, not after the trace
    if (!opt.export_path.empty())
        AtomicFile::create(opt.export_path).take_or_die("--export");
    if (!opt.json_path.empty())
        AtomicFile::create(opt.json_path).take_or_die("--json");
    if (!opt.stats_path.empty())
        AtomicFile::create(opt.stats_path).take_or_die("--stats");
    if (!opt.events_path.empty())
        out.events.emplace(EventsWriter::open(opt.events_path).take_or_die());
    if (opt.fault_all_pages && !plan.config.vmemmap_base_addr)
        spdlog::warn("--fault-probe-all-pages: no vmemmap_base address in {}: the pfn of a "
                     "non-kex page cannot be computed (KASLR); such records carry no pfn and "
                     "are counted as 'pfn unknown'",
                     opt.kallsyms);
    return out;
}

LoaderOptions loader_options(const Options& opt, const std::optional<Tracefs>& tracefs) {
    LoaderOptions lopts;
    lopts.tracefs = tracefs;
    bool tracefs_kprobes = tracefs && tracefs->kprobe_events_writable();
    if (opt.kprobe_mode == "tracefs" && !tracefs_kprobes)
        throw FatalError("--kprobe-mode tracefs: no writable kprobe_events in tracefs");
    lopts.kprobe_mode =
        (opt.kprobe_mode == "perf" || !tracefs_kprobes) ? KprobeMode::perf : KprobeMode::tracefs;
    lopts.fault_all_pages = opt.fault_all_pages;
    lopts.driver_pages = !opt.kex_only;
    lopts.stacks = opt.stack_mode != Options::StackMode::none;
    lopts.stack_by_site = opt.stack_mode == Options::StackMode::sites;
    lopts.stack_site_check = opt.debug_stack_check;
    lopts.trace_all = opt.all;
    lopts.watch = opt.watch;
    lopts.ringbuf_bytes = opt.ringbuf_mb << 20;
    lopts.max_pages = opt.max_pages;
    lopts.max_allocs = opt.max_allocs;
    lopts.max_traced = opt.debug_max_traced;
    lopts.follow = opt.follow;
    return lopts;
}

std::unique_ptr<Loader> load_bpf(const LoaderOptions& lopts, const ProbePlan& plan) {
    auto loader = Loader::open(lopts).take_or_die();
    if (auto st = loader->configure(plan); !st)
        throw FatalError(st.error().message);
    if (auto st = loader->load(); !st)
        throw FatalError(st.error().message);
    return loader;
}

// Whom the trace follows: the command (held on a pipe until everything is
// attached), -p's process tree, or (--all) every process.
struct Targets {
    std::optional<HeldChild> child;
    std::vector<uint32_t> roots; // seeded into the traced map; none: all
};

Targets seed_targets(const Options& opt, Loader& loader) {
    Targets t;
    if (opt.all) {
        // every process: no roots (the correlator then follows all)
        if (!module_loaded("kex"))
            throw FatalError("--all: kex is not loaded (its tracepoints are what --all watches)");
    } else if (!opt.command.empty()) {
        t.child.emplace(HeldChild::spawn(opt.command).take_or_die("starting the command"));
        t.roots.push_back(t.child->pid());
    } else {
        if (::kill(*opt.pid, 0) < 0 && errno == ESRCH)
            throw FatalError(fmt::format("no process {}", *opt.pid));
        for (int p : process_tree(*opt.pid))
            t.roots.push_back(p);
    }
    for (uint32_t r : t.roots)
        if (auto st = loader.trace_tgid(r); !st)
            throw FatalError(st.error().message);
    return t;
}

// Attaches the plan and says on stderr what is traced and how.
std::optional<FollowAttach> attach_probes(const Options& opt, const KernelFacts& facts,
                                          const ProbePlan& plan,
                                          const std::optional<FollowSet>& follow, Loader& loader) {
    std::optional<FollowAttach> followed;
    if (follow)
        followed = attach_follow_or_die(loader, *follow);
    loader.attach(plan);
    auto startup = probe_statuses(plan, &loader.results(), nullptr);
    std::cerr << fmt::format("kextrace: {} on {}, kprobes via {}\n",
                             opt.all ? std::string("every process's kex pages (--all)")
                             : opt.command.empty() ? fmt::format("pid {}", *opt.pid)
                                                   : join_command(opt.command),
                             facts.release,
                             loader.kprobe_mode() == KprobeMode::tracefs ? "tracefs" : "perf");
    if (!facts.kprobes)
        std::cerr << fmt::format("kextrace: kprobe steps are unobservable here: {}\n",
                                 facts.no_kprobes_reason);
    print_probe_table(std::cerr, startup);
    return followed;
}

// --- the trace ----------------------------------------------------------------------

// --driver / --file, checked against this machine: a bad value ends the run
// (exit 2) before anything is attached.
DriverFilter driver_filter(const Options& opt, const Ksyms& ksyms) {
    if (opt.drivers.empty() && opt.files.empty())
        return {};
    const std::string modules = read_text_file("/proc/modules").value_or("");
    auto f = make_driver_filter(opt.drivers, opt.files, ksyms, modules);
    if (!f)
        throw FatalError(f.error().message, 2);
    return std::move(*f);
}

CorrelatorOptions correlator_options(const ProbePlan& plan, const Targets& targets,
                                     const Loader& loader, const DriverFilter& filter,
                                     const Symbolizer& sym) {
    CorrelatorOptions copts;
    if (!filter.empty())
        copts.follow_driver_vma = [&filter, &sym](const VmaInfo& v) {
            return filter.follows(v, sym);
        };
    copts.roots.assign(targets.roots.begin(), targets.roots.end());
    copts.expected = expected_milestones(plan, &loader.results());
    // The BPF side emits an mm_page_alloc only once kex_page_alloc claimed
    // its pfn on the same tid, so the pairing is certain: no time limit
    // (under qemu TCG the first page's gap alone can exceed the 5 ms default).
    copts.alloc_attach_ns = 10'000'000'000ull;
    return copts;
}

// Releases the command (nullopt: it could not run) and traces until the session ends.
std::optional<SessionResult> trace(const Options& opt, Loader& loader, Targets& targets,
                                   const Streams& streams) {
    SessionOptions sopts;
    if (opt.duration_s)
        sopts.duration = std::chrono::duration<double>(*opt.duration_s);
    sopts.settle = opt.settle;
    sopts.queue_limit_bytes = std::size_t{opt.debug_queue_limit_kb} << 10;
    // a failed --events write ends the trace: its stream is incomplete from there on
    sopts.abort = [&streams] { return streams.events && streams.events->failed(); };
    Session session(loader, sopts);
    if (stop_requested()) { // while attaching: the held command is killed unreleased
        SessionResult r;
        r.interrupted = true;
        r.signal = stop_signal();
        r.while_attaching = true;
        return r;
    }
    if (targets.child) {
        if (auto rel = targets.child->release(); !rel) {
            fmt::print(stderr, "kextrace: cannot run '{}': {}\n", opt.command.front(),
                       rel.error().message);
            return std::nullopt;
        }
        return session.run(*targets.child);
    }
    if (opt.all)
        return session.run_system([] { return !module_loaded("kex"); });
    return session.run_attached(*opt.pid);
}

// --- phases after the trace ---------------------------------------------------------

// The BPF counters, read once after everything is detached and the last
// record drained: nothing can change them any more, and the report, the ring
// accounting and --stats all use these same numbers.
struct Counters {
    MissedCounts missed;
    std::optional<LeakOptions> machine; // --leaks: the machine right after the trace
    std::optional<DriverFiles> files;   // --leaks: and what may still free driver pages
    std::array<uint64_t, KEX_LOSS_SLOTS> losses{};
    std::array<uint64_t, KEX_LOSS_SLOTS> produced{};
    std::array<kex_probe_stats, KEX_P_COUNT> probe_stats{};
    std::array<uint64_t, KEX_TRACK_SLOTS> tracking{};
    FollowCounts follow{}; // --follow's drops and misses
};

Counters detach_and_count(const Options& opt, Loader& loader, Intake& intake) {
    Counters c;
    // kprobe_profile forgets a probe once it is removed: its misses first.
    loader.read_kprobe_missed(c.missed);
    loader.detach([&] {
        // Only the page frees are traced now (kex's tracepoints pinned kex):
        // is kex still open, who still runs? A page freed until then, by a
        // process that closed kex after the trace ended, has its free seen.
        if (opt.leaks) {
            c.machine = machine_state();
            c.files = driver_files();
        }
    });
    loader.drain();
    if (opt.watch) { // the pages not freed: their records are still in the kernel
        auto open = loader.read_open_lives(
            [&intake](std::span<const std::byte> rec) { return intake.take(rec); });
        if (!open)
            throw FatalError(open.error().message + ": the pages not freed are missing");
        spdlog::debug("--watch: {} page lives not freed", *open);
    }
    loader.read_trampoline_missed(c.missed);
    auto counted = loader.read_program_counters();
    if (!counted)
        throw FatalError(counted.error().message + ": the run's losses are unknown");
    c.losses = counted->lost;
    c.produced = counted->produced;
    c.probe_stats = counted->probes;
    c.tracking = loader.read_tracking();
    c.follow = loader.read_follow_stats();
    c.follow.runs = c.probe_stats[KEX_P_FOLLOW].hits;
    c.follow.matched = c.probe_stats[KEX_P_FOLLOW].matched;
    spdlog::debug("traced map: {} thread groups left", loader.traced_entries());
    return c;
}

RunInfo run_info(const Options& opt, const KernelFacts& facts, const ProbePlan& plan,
                 const Loader& loader, const Counters& c) {
    RunInfo run;
    run.kernel_release = facts.release;
    run.command_line = opt.all               ? std::string("--all")
                       : opt.command.empty() ? fmt::format("-p {}", *opt.pid)
                                             : join_command(opt.command);
    run.probes = probe_statuses(plan, &loader.results(), &c.missed, true);
    if (const PlanStep* s = plan.find("pte set"); s && s->available)
        run.set_pte_observed = s->reason;
    for (uint32_t i = 0; i < KEX_P_COUNT; i++)
        if (c.probe_stats[i].hits)
            spdlog::debug("probe {:<22} hits {:>9} matched {:>7} emitted {:>7}",
                          probe_spec(i).short_name, c.probe_stats[i].hits, c.probe_stats[i].matched,
                          c.probe_stats[i].emitted);
    return run;
}

// --follow through the run: what was chosen and how it attached.
struct Followed {
    const FollowSet& set;
    const FollowAttach& attach;
    FollowSummary summary{}; // the report's common path, once it is made
};

// Standard output: the report, and with --leaks the verdicts (returned).
std::optional<LeakReport> print_report(const Options& opt, const Report& report, const RunInfo& run,
                                       const Symbolizer& sym, const Counters& counters,
                                       const std::optional<Followed>& fol) {
    TextOptions topts;
    topts.full = opt.full;
    topts.stacks = opt.show_stacks;
    render_text(report, run, std::cout, sym, topts);
    if (fol)
        print_follow_report(std::cout, report, fol->summary, fol->attach, counters.follow,
                            opt.full);
    std::optional<LeakReport> leaks;
    if (opt.leaks) {
        LeakOptions lo = counters.machine ? *counters.machine : leak_context(report);
        lo.driver_holders =
            driver_holders(report, counters.files ? *counters.files : driver_files(), sym);
        leaks = assess_leaks(report, lo);
        std::cout << '\n';
        render_leaks_text(*leaks, report, std::cout, sym, topts);
    }
    return leaks;
}

// --jsonl's header and --export's timeline.
void write_trace_files(const Options& opt, Streams& streams, const Report& report,
                       const RunInfo& run, const Losses& losses, const CorrelatorOptions& copts,
                       const Symbolizer& sym) {
    if (streams.jsonl) {
        JsonlHeader h;
        h.run = run;
        h.losses = losses;
        h.correlator = copts;
        for (uint32_t i = 0; i < KEX_P_COUNT; i++)
            h.probe_names.emplace_back(probe_spec(i).short_name);
        if (auto st = streams.jsonl->commit(std::move(h), sym); !st)
            throw FatalError("--jsonl: " + st.error().message);
    }
    if (!opt.export_path.empty()) {
        auto st = write_timeline(opt.export_path, report, run, sym, opt.export_format)
                      .take_or_die("--export");
        spdlog::info("timeline {}: {} events, {} tracks, {} flow arrows, {} bytes", opt.export_path,
                     st.events, st.tracks, st.flow_arrows, st.bytes);
    }
}

// --json and --stats: the sections beyond the report, merged at their sorted places.
void write_json_files(const Options& opt, const ProbePlan& plan, const Loader& loader,
                      const Counters& c, const Intake& intake, const Report& report,
                      const RunInfo& run, const Losses& losses,
                      const std::optional<LeakReport>& leaks, const Symbolizer& sym,
                      const std::optional<Followed>& fol) {
    if (opt.json_path.empty() && opt.stats_path.empty())
        return;
    nlohmann::json j = nlohmann::json::object();
    if (fol)
        j["follow"] = follow_report_json(report, fol->summary, fol->set, fol->attach, c.follow);
    j["ring_accounting"] = ring_accounting_json(
        RingCounts{c.produced, intake.received, intake.ring_records, c.losses, loader.queue_stats(),
                   loader.drain_thread(), stack_mode_name(opt.stack_mode), intake.sites.stats()});
    j["probe_counters"] = probe_counters_json(plan, loader.results(), c.probe_stats, c.missed);
    if (!opt.stats_path.empty())
        write_json_atomically(opt.stats_path, stats_json(j, report, run, losses));
    if (!opt.json_path.empty()) // the leaks streamed: no tree of every page's verdict
        write_report_json_atomically(opt.json_path, report, run, sym, j, leaks ? &*leaks : nullptr);
}

// What would have kept what was lost: the options that size the ring and the
// maps that filled ("larger --ringbuf-mb, or --accept-loss").
std::string loss_remedy(const Losses& l) {
    std::vector<std::string_view> opts;
    const bool ring = l.ring || std::any_of(l.per_type.begin(), l.per_type.end(),
                                            [](uint64_t n) { return n != 0; });
    if (ring)
        opts.push_back("--ringbuf-mb");
    if (l.map_full[KEX_TRACK_PFNS]) // (KEX_TRACK_PAGES: a vmemmap mismatch, no size helps)
        opts.push_back("--max-pages");
    if (l.map_full[KEX_TRACK_DRIVER_ALLOCS])
        opts.push_back("--max-allocs");
    std::string s =
        opts.empty() ? std::string() : fmt::format("larger {}, or ", fmt::join(opts, ", "));
    return s + "--accept-loss";
}

// What a stop by signal did to the command: never started, or how it ended
// (a command that ignores the signal is killed 2 s later: "killed by signal 9").
std::string command_fate(const Options& opt, const SessionResult& res) {
    if (opt.command.empty())
        return {};
    if (res.while_attaching)
        return fmt::format(" while attaching: {} was never started", opt.command.front());
    if (res.wait_status)
        return fmt::format("; {}: {}", opt.command.front(), describe_wait_status(*res.wait_status));
    return {};
}

// What ended the trace, on stderr, and kextrace's exit status.
int exit_status(const Options& opt, const SessionResult& res,
                const std::optional<LeakReport>& leaks, const Losses& losses) {
    if (res.wait_status && !res.interrupted)
        spdlog::debug("command: {}", describe_wait_status(*res.wait_status));
    if (res.interrupted)
        fmt::print(stderr, "kextrace: stopped by signal {}{}\n", res.signal,
                   command_fate(opt, res));
    if (res.module_gone)
        fmt::print(stderr, "kextrace: kex was unloaded\n");
    if (leaks && leaks->bugs()) {
        fmt::print(stderr, "kextrace: {} leaked, {} freed while mapped\n",
                   leaks->count(Verdict::leaked), leaks->count(Verdict::freed_while_mapped));
        return kExitLeak;
    }
    uint64_t lost = losses.total();
    if (lost && !opt.accept_loss) {
        fmt::print(stderr, "kextrace: {} events lost: the trace is incomplete ({})\n", lost,
                   loss_remedy(losses));
        return kExitLoss;
    }
    if (leaks)
        return 0; // no leak: the verdict, not the command's status
    if (res.wait_status)
        return exit_code_of(*res.wait_status);
    return res.interrupted ? 128 + res.signal : 0;
}

int run(const Options& opt) {
    ignore_sigpipe(); // write errors are reported, not a silent death with probes attached
    // From the start: a Ctrl-C while the BPF object loads or --follow's
    // probes attach (seconds of single kprobes on 6.1) ends the run cleanly
    // (the probes detached, exit 130), and the command never runs.
    install_stop_handlers();
    Host host = inspect_host(opt);
    const DriverFilter filter = driver_filter(opt, host.ksyms);
    const Symbolizer sym = [&host](uint64_t a) { return host.ksyms.symbolize(a); };
    ProbePlan probes = make_plan(opt, host);
    const FollowOptions fo{.globs = opt.follow_globs, .exclude = opt.follow_exclude};
    const std::optional<FollowSet> follow = follow_set(opt, fo, probes, host);
    if (opt.plan_only)
        return print_plan(host.facts, probes, fo, follow);
    if (!opt.command.empty() && resolve_on_path(opt.command.front()).empty()) {
        fmt::print(stderr, "kextrace: cannot run '{}': command not found\n", opt.command.front());
        return kExitCannotRun;
    }
    Streams streams = open_outputs(opt, probes);
    auto loader = load_bpf(loader_options(opt, host.tracefs), probes);
    // The ring buffer is mapped before any probe is attached: the kernel
    // inserts its pages with vm_insert_page, and the insert probes would see
    // every one of them (8192 for the default 16 MiB) at every start. Its
    // records are read once the session drains it, after intake exists.
    std::optional<Intake> intake;
    if (auto st = loader->open_ring_buffer(
            [&intake](std::span<const std::byte> rec) { return intake->take(rec); });
        !st)
        throw FatalError(st.error().message);
    Targets targets = seed_targets(opt, *loader);
    const std::optional<FollowAttach> followed =
        attach_probes(opt, host.facts, probes, follow, *loader);

    CorrelatorOptions copts = correlator_options(probes, targets, *loader, filter, sym);
    std::optional<Followed> fol;
    if (followed) {
        copts.follow_functions = followed->functions;
        fol.emplace(Followed{*follow, *followed});
    }
    intake.emplace(copts, host.ksyms, probes, streams);
    std::optional<SessionResult> res = trace(opt, *loader, targets, streams);
    if (!res)
        return kExitCannotRun;

    const Counters counters = detach_and_count(opt, *loader, *intake);
    if (streams.events)
        if (auto st = streams.events->close(); !st)
            throw FatalError(st.error().message +
                             (res->aborted ? " (the trace was stopped there)" : ""));
    Losses losses;
    losses.per_type = counters.losses;
    losses.decode_errors = intake->decode_errors;
    losses.map_full = counters.tracking;
    intake->correlator.set_losses(losses);
    Report report = intake->correlator.finish();
    if (fol)
        fol->summary = follow_summary(report, curated_functions(probes));

    RunInfo run = run_info(opt, host.facts, probes, *loader, counters);
    std::optional<LeakReport> leaks = print_report(opt, report, run, sym, counters, fol);
    write_trace_files(opt, streams, report, run, losses, copts, sym);
    std::cout.flush();
    if (!std::cout) // e.g. `kextrace ... | head -1`: SIGPIPE is ignored, the write failed
        throw FatalError(fmt::format("writing the report to standard output: {}",
                                     errno ? std::strerror(errno) : "write error"));
    write_json_files(opt, probes, *loader, counters, *intake, report, run, losses, leaks, sym, fol);
    return exit_status(opt, *res, leaks, losses);
}

} // namespace
} // namespace kextrace

int main(int argc, char** argv) {
    kextrace::keep_freed_heap();
    if (argc > 1 && std::strcmp(argv[1], "report") == 0)
        return kextrace::report_main(argc - 1, argv + 1);
    int code = 0;
    auto opt = kextrace::parse_options(argc, argv, &code);
    if (!opt)
        return code;
    kextrace::setup_logging(opt->verbose);
    try {
        return kextrace::run(*opt);
    } catch (const kextrace::FatalError& e) {
        std::fflush(stdout);
        fmt::print(stderr, "kextrace: error: {}\n", e.what());
        return e.status();
    } catch (const std::exception& e) {
        // a bug of ours: caught so that the stack unwinds and every probe,
        // tracefs kprobe and child is released on the way out
        std::fflush(stdout);
        fmt::print(stderr, "kextrace: internal error (a bug, please report it): {}\n", e.what());
        return 70; // EX_SOFTWARE
    }
}
