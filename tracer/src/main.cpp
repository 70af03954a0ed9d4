// main.cpp - kextrace: options -> checks -> probe plan -> load/attach ->
// session -> correlator -> text / JSON report. Only wiring lives here; every
// step is in kextrace_lib. The one fatal error type (FatalError) is caught
// here; everything else returns errors as values.
#include "environment.h"
#include "events_writer.h"
#include "ksyms.h"
#include "leak_context.h"
#include "loader.h"
#include "options.h"
#include "probe_plan.h"
#include "probe_report.h"
#include "report_command.h"
#include "session.h"
#include "trace_files.h"

#include <kextrace/core.h>
#include <kextrace/leaks.h>
#include <kextrace/output.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include <fmt/format.h>
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

// One --events line: the record's fields, type and probe by name, stack symbolized.
nlohmann::json event_json(const Event& ev, const Ksyms& ksyms) {
    nlohmann::json j = {
        {"ts", ev.ts},
        {"type", event_type_name(ev.type)},
        {"cpu", ev.cpu},
        {"pid", ev.pid},
        {"tid", ev.tid},
        {"pfn", ev.pfn == KEX_NO_PFN ? nlohmann::json() : nlohmann::json(ev.pfn)},
        {"addr", ev.addr},
        {"arg0", ev.arg0},
        {"arg1", ev.arg1},
        {"ret", ev.ret},
        {"refcount", ev.refcount == KEX_NO_COUNT ? nlohmann::json() : nlohmann::json(ev.refcount)},
        {"mapcount", ev.mapcount == KEX_NO_COUNT ? nlohmann::json() : nlohmann::json(ev.mapcount)},
        {"probe", ev.probe < KEX_P_COUNT ? probe_spec(ev.probe).short_name : "?"}};
    if (!ev.stack.empty()) {
        auto& st = j["stack"] = nlohmann::json::array();
        for (uint64_t a : ev.stack) {
            std::string s = ksyms.symbolize(a);
            st.push_back(s.empty() ? fmt::format("{:#x}", a) : s);
        }
    }
    return j;
}

std::string join_command(const std::vector<std::string>& argv) {
    std::string s;
    for (const auto& a : argv)
        s += (s.empty() ? "" : " ") + a;
    return s;
}

int run(const Options& opt) {
    ignore_sigpipe(); // write errors are reported, not a silent death with probes attached
    if (!opt.plan_only) {
        if (auto st = check_privileges(); !st)
            throw FatalError(st.error().message);
        if (auto st = check_btf(); !st)
            throw FatalError(st.error().message);
    }
    Ksyms ksyms = Ksyms::load(opt.kallsyms).take_or_die("kallsyms");
    if (ksyms.addresses_hidden())
        spdlog::warn("{} shows no addresses (not root?): stacks will not be symbolized",
                     opt.kallsyms);
    std::optional<Tracefs> tracefs = find_or_mount_tracefs();
    if (!tracefs)
        spdlog::warn("no tracefs (/sys/kernel/tracing): tracepoints cannot be checked or attached");
    KernelFacts facts = probe_kernel(tracefs);

    // Where the rig's USDT probes live: the command's binary, or the process's.
    PlanOptions popts;
    popts.insert_args = opt.insert_args;
    popts.usdt_binary = opt.usdt_binary;
    if (popts.usdt_binary.empty() && !opt.command.empty())
        popts.usdt_binary = resolve_on_path(opt.command.front());
    if (popts.usdt_binary.empty() && opt.pid) {
        char buf[4096];
        ssize_t n = ::readlink(fmt::format("/proc/{}/exe", *opt.pid).c_str(), buf, sizeof(buf) - 1);
        if (n > 0)
            popts.usdt_binary.assign(buf, n);
    }
    ProbePlan plan = plan_probes(ksyms, facts, popts);

    if (opt.plan_only) {
        std::cout << fmt::format("kextrace probe plan for {}:\n", facts.release);
        if (!facts.kprobes)
            std::cout << fmt::format("kprobe steps are unobservable here: {}\n",
                                     facts.no_kprobes_reason);
        print_probe_table(std::cout, probe_statuses(plan, nullptr, std::nullopt));
        return 0;
    }
    if (!opt.command.empty() && resolve_on_path(opt.command.front()).empty()) {
        fmt::print(stderr, "kextrace: cannot run '{}': command not found\n", opt.command.front());
        return kExitCannotRun;
    }

    // Output files first: an unwritable one fails before anything is loaded or attached.
    std::optional<JsonlWriter> jsonl;
    if (!opt.jsonl_path.empty())
        jsonl.emplace(JsonlWriter::open(opt.jsonl_path).take_or_die("--jsonl"));
    // an unwritable --export or --json fails now, not after the trace
    if (!opt.export_path.empty())
        AtomicFile::create(opt.export_path).take_or_die("--export");
    if (!opt.json_path.empty())
        AtomicFile::create(opt.json_path).take_or_die("--json");
    if (!opt.stats_path.empty())
        AtomicFile::create(opt.stats_path).take_or_die("--stats");
    std::optional<EventsWriter> events_out;
    if (!opt.events_path.empty())
        events_out.emplace(EventsWriter::open(opt.events_path).take_or_die());
    if (opt.fault_all_pages && !plan.config.vmemmap_base_addr)
        spdlog::warn("--fault-probe-all-pages: no vmemmap_base address in {}: the pfn of a "
                     "non-kex page cannot be computed (KASLR); such records carry no pfn and "
                     "are counted as 'pfn unknown'",
                     opt.kallsyms);

    LoaderOptions lopts;
    lopts.tracefs = tracefs;
    bool tracefs_kprobes = tracefs && tracefs->kprobe_events_writable();
    if (opt.kprobe_mode == "tracefs" && !tracefs_kprobes)
        throw FatalError("--kprobe-mode tracefs: no writable kprobe_events in tracefs");
    lopts.kprobe_mode =
        (opt.kprobe_mode == "perf" || !tracefs_kprobes) ? KprobeMode::perf : KprobeMode::tracefs;
    lopts.fault_all_pages = opt.fault_all_pages;
    lopts.driver_pages = !opt.kex_only;
    lopts.stacks = opt.stacks;
    lopts.trace_all = opt.all;
    lopts.ringbuf_bytes = opt.ringbuf_mb << 20;
    lopts.max_pages = opt.max_pages;
    lopts.max_traced = opt.debug_max_traced;

    auto loader = Loader::open(lopts).take_or_die();
    if (auto st = loader->configure(plan); !st)
        throw FatalError(st.error().message);
    if (auto st = loader->load(); !st)
        throw FatalError(st.error().message);

    // The command waits on a pipe until everything is attached.
    std::optional<HeldChild> child;
    std::vector<uint32_t> roots;
    if (opt.all) {
        // every process: no roots (the correlator then follows all)
        if (!module_loaded("kex"))
            throw FatalError("--all: kex is not loaded (its tracepoints are what --all watches)");
    } else if (!opt.command.empty()) {
        child.emplace(HeldChild::spawn(opt.command).take_or_die("starting the command"));
        roots.push_back(child->pid());
    } else {
        if (::kill(*opt.pid, 0) < 0 && errno == ESRCH)
            throw FatalError(fmt::format("no process {}", *opt.pid));
        for (int p : process_tree(*opt.pid))
            roots.push_back(p);
    }
    for (uint32_t t : roots)
        if (auto st = loader->trace_tgid(t); !st)
            throw FatalError(st.error().message);

    install_stop_handlers();
    loader->attach(plan);
    auto startup = probe_statuses(plan, &loader->results(), std::nullopt);
    std::cerr << fmt::format("kextrace: {} on {}, kprobes via {}\n",
                             opt.all ? std::string("every process's kex pages (--all)")
                             : opt.command.empty() ? fmt::format("pid {}", *opt.pid)
                                                   : join_command(opt.command),
                             facts.release,
                             lopts.kprobe_mode == KprobeMode::tracefs ? "tracefs" : "perf");
    if (!facts.kprobes)
        std::cerr << fmt::format("kextrace: kprobe steps are unobservable here: {}\n",
                                 facts.no_kprobes_reason);
    print_probe_table(std::cerr, startup);

    // Records -> typed events -> the correlator.
    CorrelatorOptions copts;
    copts.roots.assign(roots.begin(), roots.end());
    copts.expected = expected_milestones(plan, &loader->results());
    // The BPF side emits an mm_page_alloc only once kex_page_alloc claimed
    // its pfn on the same tid, so the pairing is certain: no time limit
    // (under qemu TCG the first page's gap alone can exceed the 5 ms default).
    copts.alloc_attach_ns = 10'000'000'000ull;
    Correlator correlator(copts);
    uint64_t decode_errors = 0;
    std::array<uint64_t, KEX_LOSS_SLOTS> received{}; // records per type, for ring_accounting
    auto st = loader->open_ring_buffer([&](std::span<const std::byte> rec) {
        rec = trim_record(rec);
        if (rec.size() >= sizeof(kex_event)) {
            uint32_t type;
            std::memcpy(&type, rec.data() + offsetof(kex_event, type), sizeof(type));
            ++received[type < KEX_LOSS_SLOTS ? type : 0];
        }
        std::string why;
        if (auto ev = decode_event(rec, &why)) {
            if (events_out && !events_out->failed())
                events_out->write_line(event_json(*ev, ksyms).dump());
            if (jsonl)
                jsonl->add(*ev);
            correlator.feed(std::move(*ev));
        } else if (decode_errors++ < 5)
            spdlog::warn("undecodable record ({} bytes): {}", rec.size(), why);
        return 0;
    });
    if (!st)
        throw FatalError(st.error().message);

    SessionOptions sopts;
    if (opt.duration_s)
        sopts.duration = std::chrono::duration<double>(*opt.duration_s);
    sopts.settle = opt.settle;
    sopts.queue_limit_bytes = std::size_t{opt.debug_queue_limit_kb} << 10;
    // a failed --events write ends the trace: its stream is incomplete from there on
    sopts.abort = [&events_out] { return events_out && events_out->failed(); };
    Session session(*loader, sopts);
    SessionResult res;
    if (child) {
        if (auto rel = child->release(); !rel) {
            fmt::print(stderr, "kextrace: cannot run '{}': {}\n", opt.command.front(),
                       rel.error().message);
            return kExitCannotRun;
        }
        res = session.run(*child);
    } else if (opt.all) {
        res = session.run_system([] { return !module_loaded("kex"); });
    } else {
        res = session.run_attached(*opt.pid);
    }

    // kprobe_profile forgets a probe once it is removed: its misses first.
    auto missed = loader->read_kprobe_missed();
    std::optional<LeakOptions> machine;
    loader->detach([&] {
        // Only the page frees are traced now (kex's tracepoints pinned kex):
        // is kex still open, who still runs? A page freed until then, by a
        // process that closed kex after the trace ended, has its free seen.
        if (opt.leaks)
            machine = machine_state();
    });
    loader->drain();
    // Every other counter once, after everything is detached and the last
    // record drained: nothing can change them any more, and the report, the
    // ring accounting and --stats all use these same numbers.
    const auto loss_slots = loader->read_losses();
    const auto produced = loader->read_produced();
    const auto stats = loader->read_probe_stats();
    const auto tracking = loader->read_tracking();
    spdlog::debug("traced map: {} thread groups left", loader->traced_entries());
    if (events_out)
        if (auto st = events_out->close(); !st)
            throw FatalError(st.error().message +
                             (res.aborted ? " (the trace was stopped there)" : ""));

    Losses losses;
    losses.per_type = loss_slots;
    losses.decode_errors = decode_errors;
    losses.map_full = tracking;
    correlator.set_losses(losses);
    Report report = correlator.finish();

    RunInfo run;
    run.kernel_release = facts.release;
    run.command_line = opt.all               ? std::string("--all")
                       : opt.command.empty() ? fmt::format("-p {}", *opt.pid)
                                             : join_command(opt.command);
    run.probes = probe_statuses(plan, &loader->results(), missed, true);
    if (const PlanStep* s = plan.find("pte set"); s && s->available)
        run.set_pte_observed = s->reason;
    for (uint32_t i = 0; i < KEX_P_COUNT; i++)
        if (stats[i].hits)
            spdlog::debug("probe {:<22} hits {:>9} matched {:>7} emitted {:>7}",
                          probe_spec(i).short_name, stats[i].hits, stats[i].matched,
                          stats[i].emitted);

    Symbolizer sym = [&ksyms](uint64_t a) { return ksyms.symbolize(a); };
    TextOptions topts;
    topts.full = opt.full;
    topts.stacks = opt.show_stacks;
    render_text(report, run, std::cout, sym, topts);
    std::optional<LeakReport> leaks;
    if (opt.leaks) {
        leaks = assess_leaks(report, machine ? *machine : leak_context(report));
        std::cout << '\n';
        render_leaks_text(*leaks, report, std::cout, sym, topts);
    }
    if (jsonl) {
        JsonlHeader h;
        h.run = run;
        h.losses = losses;
        h.correlator = copts;
        for (uint32_t i = 0; i < KEX_P_COUNT; i++)
            h.probe_names.emplace_back(probe_spec(i).short_name);
        if (auto st = jsonl->commit(std::move(h), sym); !st)
            throw FatalError("--jsonl: " + st.error().message);
    }
    if (!opt.export_path.empty()) {
        auto st = write_timeline(opt.export_path, report, run, sym).take_or_die("--export");
        spdlog::info("timeline {}: {} events, {} tracks, {} flow arrows, {} bytes", opt.export_path,
                     st.events, st.tracks, st.flow_arrows, st.bytes);
    }
    std::cout.flush();
    if (!std::cout) // e.g. `kextrace ... | head -1`: SIGPIPE is ignored, the write failed
        throw FatalError(fmt::format("writing the report to standard output: {}",
                                     errno ? std::strerror(errno) : "write error"));
    if (!opt.json_path.empty() || !opt.stats_path.empty()) {
        // the sections beyond the report, merged at their sorted places
        nlohmann::json j = nlohmann::json::object();
        // produced (BPF) = received (here) + lost (losses map), type by type
        auto& acct = j["ring_accounting"] = {{"produced", 0}, {"received", 0}, {"lost", 0}};
        acct["per_type"] = nlohmann::json::object();
        bool exact = true;
        for (uint32_t t = 0; t < KEX_LOSS_SLOTS; t++) {
            if (!produced[t] && !received[t] && !loss_slots[t])
                continue;
            exact = exact && produced[t] == received[t] + loss_slots[t];
            acct["per_type"][std::string(event_type_name(t))] = {
                {"produced", produced[t]}, {"received", received[t]}, {"lost", loss_slots[t]}};
            acct["produced"] = acct["produced"].get<uint64_t>() + produced[t];
            acct["received"] = acct["received"].get<uint64_t>() + received[t];
            acct["lost"] = acct["lost"].get<uint64_t>() + loss_slots[t];
        }
        acct["exact"] = exact;
        // records copied off the ring, waiting to be decoded: the most at once
        RecordQueue::Stats qs = loader->queue_stats();
        acct["queue"] = {{"peak_records", qs.peak_records}, {"peak_bytes", qs.peak_bytes}};
        j["probe_counters"] = nlohmann::json::object();
        for (uint32_t i = 0; i < KEX_P_COUNT; i++)
            if (loader->results()[i].planned)
                j["probe_counters"][probe_spec(i).short_name] = {
                    {"mechanism", probe_kind_name(plan.kind[i])},
                    {"hits", stats[i].hits},
                    {"matched", stats[i].matched},
                    {"emitted", stats[i].emitted},
                    {"missed", missed ? nlohmann::json((*missed)[i]) : nlohmann::json()}};
        if (!opt.stats_path.empty()) {
            nlohmann::json st = j;
            st["schema"] = "kextrace.stats/1";
            st["events"] = report.events;
            st["page_lives"] = report.pages.size();
            st["kernel_release"] = run.kernel_release;
            // the report's losses, from the same reads as ring_accounting
            nlohmann::json map_full = nlohmann::json::object();
            for (uint32_t m = 0; m < KEX_TRACK_SLOTS; m++)
                if (m != KEX_TRACK_PFN_UNKNOWN && losses.map_full[m])
                    map_full[std::string(track_slot_name(m))] = losses.map_full[m];
            st["losses"] = {{"total", losses.total()},
                            {"ring", losses.ring},
                            {"decode_errors", losses.decode_errors},
                            {"map_full", map_full},
                            {"pfn_unknown", losses.pfn_unknown()}};
            write_json_atomically(opt.stats_path, st);
        }
        if (!opt.json_path.empty()) {
            if (leaks)
                j["leaks"] = leaks_json(*leaks, report, sym);
            write_report_json_atomically(opt.json_path, report, run, sym, j);
        }
    }

    if (res.wait_status)
        spdlog::debug("command: {}", describe_wait_status(*res.wait_status));
    if (res.interrupted)
        fmt::print(stderr, "kextrace: stopped by signal {}\n", res.signal);
    if (res.module_gone)
        fmt::print(stderr, "kextrace: kex was unloaded\n");
    if (leaks && leaks->bugs()) {
        fmt::print(stderr, "kextrace: {} leaked, {} freed while mapped\n",
                   leaks->count(Verdict::leaked), leaks->count(Verdict::freed_while_mapped));
        return kExitLeak;
    }
    uint64_t lost = losses.total();
    if (lost && !opt.accept_loss) {
        fmt::print(stderr,
                   "kextrace: {} events lost: the trace is incomplete (larger --ringbuf-mb, or "
                   "--accept-loss)\n",
                   lost);
        return kExitLoss;
    }
    if (leaks)
        return 0; // no leak: the verdict, not the command's status
    if (res.wait_status)
        return exit_code_of(*res.wait_status);
    return res.interrupted ? 128 + res.signal : 0;
}

} // namespace
} // namespace kextrace

int main(int argc, char** argv) {
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
    }
}
