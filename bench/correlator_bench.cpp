// correlator_bench - the correlation engine and the export writers on this
// machine (no guest), Google Benchmark.
//
// Streams: StreamBuilder stories (11 events per page: kmem alloc, kex alloc,
// insert, rmap add, insert return, kex insert, kex free, dirty, zap, free,
// free batched; three of them with a 2-frame stack), one process per CPU,
// each process mapping 16,384-page windows (fewer pages for small streams) over its own pfn range
// until the stream has the asked number of events. Delivery is out of order across CPUs, as a
// drained per-CPU buffer would deliver it: 256-event chunks, the oldest CPU's next, so
// consecutive events jump back and forth in time by up to a chunk's span (~30 us).
//
// Counters:
//   events/s          items_processed / time (single thread; feed + finish)
//   peak_B_per_page   peak heap growth during feed + finish, per page life
//                     (a counting operator new around the run)
//   report_B_per_page heap the finished Report still holds, per page life
//   sys_share         the kernel's share of the timed CPU time (page faults)
//   faults_per_kevent minor page faults in the timed part, per 1,000 events
//   user_events_per_s events / user CPU time (the rate without the kernel's part)
//   bytes_per_second  output bytes / time for the export writers
//
// Sizes: KEXBENCH_EVENTS="1000000,10000000" (default); the ctest smoke run
// sets KEXBENCH_EVENTS=20000.
#include <kextrace/core.h>
#include <kextrace/heap.h>
#include <kextrace/jsonl.h>
#include <kextrace/output.h>
#include <kextrace/stream_builder.h>
#include <kextrace/timeline.h>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <malloc.h>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <sys/resource.h>
#include <vector>

// --- a counting allocator: every operator new/delete of this binary ---------

namespace {
// Counting only while g_counting (the memory pass): the timed runs pay no
// bookkeeping. Frees of blocks allocated before counting began would make
// g_live drop: the memory pass keeps its input alive until it has read them.
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};

void* counted_alloc(std::size_t n) {
    void* p = std::malloc(n ? n : 1);
    if (!p)
        throw std::bad_alloc();
    if (!g_counting.load(std::memory_order_relaxed))
        return p;
    const auto sz = static_cast<int64_t>(malloc_usable_size(p));
    int64_t live = g_live.fetch_add(sz, std::memory_order_relaxed) + sz;
    int64_t peak = g_peak.load(std::memory_order_relaxed);
    while (live > peak && !g_peak.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
    }
    return p;
}

void counted_free(void* p) {
    if (!p)
        return;
    if (g_counting.load(std::memory_order_relaxed))
        g_live.fetch_sub(static_cast<int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
    std::free(p);
}
} // namespace

void* operator new(std::size_t n) {
    return counted_alloc(n);
}
void* operator new[](std::size_t n) {
    return counted_alloc(n);
}
void operator delete(void* p) noexcept {
    counted_free(p);
}
void operator delete[](void* p) noexcept {
    counted_free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    counted_free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    counted_free(p);
}

namespace {

using namespace kextrace;

constexpr uint32_t kCpus = 4;
constexpr uint32_t kMaxPagesPerMapping = 16384;
constexpr std::size_t kChunk = 256;

// n events (at least), out of order across kCpus CPUs.
std::vector<Event> make_stream(std::size_t n) {
    std::vector<std::vector<Event>> per_cpu(kCpus);
    std::size_t total = 0;
    uint32_t round = 0;
    std::vector<StreamBuilder> builders;
    for (uint32_t c = 0; c < kCpus; ++c) {
        builders.emplace_back(1000 + c, 1'000'000'000ull + c * 37, 100 + c * 7);
        builders.back().cpu(c);
    }
    // 16,384-page mappings, smaller for small streams (a few mappings per CPU)
    const auto pages_per_mapping = static_cast<uint32_t>(
        std::clamp<std::size_t>(n / (11 * kCpus * 4), 64, kMaxPagesPerMapping));
    while (total < n) {
        for (uint32_t c = 0; c < kCpus && total < n; ++c) {
            StreamBuilder::Story s;
            s.pages = pages_per_mapping;
            s.vm_start = 0x7f0000000000ull + (uint64_t(round) << 32);
            s.pfn0 = 0x100000ull + (uint64_t(c) << 36) + uint64_t(round) * kMaxPagesPerMapping;
            s.policy = (round % 4 == 3) ? Policy::keep : Policy::drop;
            std::size_t before = builders[c].events.size();
            builders[c].story(s);
            total += builders[c].events.size() - before;
        }
        ++round;
    }
    for (uint32_t c = 0; c < kCpus; ++c)
        per_cpu[c] = std::move(builders[c].events);
    std::vector<Event> out;
    out.reserve(total);
    // Next chunk from the CPU whose next event is oldest, as a consumer
    // draining per-CPU buffers in turn sees them: the CPUs' clocks advance at
    // different rates (steps of 100..121 ns), so taking them strictly in turn
    // would let their timelines drift apart without bound (tens of ms over
    // 10^7 events: no reorder window could hold that, and no drain does it).
    std::vector<std::size_t> pos(kCpus, 0);
    while (true) {
        int next = -1;
        for (uint32_t c = 0; c < kCpus; ++c)
            if (pos[c] < per_cpu[c].size() &&
                (next < 0 ||
                 per_cpu[c][pos[c]].ts < per_cpu[std::size_t(next)][pos[std::size_t(next)]].ts))
                next = int(c);
        if (next < 0)
            break;
        auto& v = per_cpu[std::size_t(next)];
        auto& at = pos[std::size_t(next)];
        const std::size_t end = std::min(v.size(), at + kChunk);
        for (; at < end; ++at)
            out.push_back(std::move(v[at]));
    }
    return out;
}

const std::vector<Event>& stream(std::size_t n) {
    static std::map<std::size_t, std::unique_ptr<std::vector<Event>>> cache;
    auto& slot = cache[n];
    if (!slot)
        slot = std::make_unique<std::vector<Event>>(make_stream(n));
    return *slot;
}

CorrelatorOptions options(uint64_t window_ns) {
    CorrelatorOptions o;
    o.roots = {};
    o.reorder_window_ns = window_ns;
    o.alloc_attach_ns = 10'000'000'000ull; // as kextrace sets it
    return o;
}

// One run of the engine, with its memory.
struct RunResult {
    Report report;
    int64_t peak = 0;   // heap growth at the peak
    int64_t remain = 0; // heap the report holds
};

RunResult correlate(std::vector<Event>& events, uint64_t window_ns) {
    RunResult rr;
    g_live.store(0);
    g_peak.store(0);
    g_counting.store(true);
    {
        Correlator c(options(window_ns));
        for (auto& ev : events) // stacks move into the engine: counted there
            c.feed(std::move(ev));
        rr.report = c.finish();
    }
    rr.peak = g_peak.load();
    rr.remain = g_live.load();
    g_counting.store(false);
    return rr;
}

// The calling thread's CPU seconds (user, system) and minor faults so far.
struct Usage {
    double user = 0, sys = 0;
    long faults = 0;
    Usage& operator+=(const Usage& o) {
        user += o.user, sys += o.sys, faults += o.faults;
        return *this;
    }
    Usage operator-(const Usage& o) const {
        return {user - o.user, sys - o.sys, faults - o.faults};
    }
};
Usage usage_now() {
    rusage ru{};
    getrusage(RUSAGE_THREAD, &ru);
    auto sec = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) * 1e-6; };
    return {sec(ru.ru_utime), sec(ru.ru_stime), ru.ru_minflt};
}

// Counters measured once per size, outside the timed loop.
void memory_counters(benchmark::State& state, const std::vector<Event>& src, uint64_t window_ns) {
    std::vector<Event> copy = src; // outlives the count: its frees are not the engine's
    RunResult rr = correlate(copy, window_ns);
    double pages = double(rr.report.pages.size());
    state.counters["pages"] = pages;
    state.counters["peak_B_per_page"] = pages ? double(rr.peak) / pages : 0;
    state.counters["report_B_per_page"] = pages ? double(rr.remain) / pages : 0;
    state.counters["complete_pages"] =
        double(rr.report.pages.size() - rr.report.incomplete_pages());
    state.counters["late"] = double(rr.report.late);
}

void BM_Correlate(benchmark::State& state, uint64_t window_ns) {
    const auto n = static_cast<std::size_t>(state.range(0));
    const auto& src = stream(n);
    memory_counters(state, src, window_ns);
    Usage used;
    for (auto _ : state) {
        state.PauseTiming();
        std::vector<Event> events = src;
        Correlator c(options(window_ns));
        state.ResumeTiming();
        const Usage before = usage_now();
        for (auto& ev : events)
            c.feed(std::move(ev));
        Report r = c.finish();
        benchmark::DoNotOptimize(r.pages.data());
        used += usage_now() - before;
        state.PauseTiming();
        { Report drop = std::move(r); }    // freeing the report is not the engine's time
        std::vector<Event>().swap(events); // nor the input copy's memory (1.2 GB at 10^7)
        state.ResumeTiming();
    }
    state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(src.size()));
    state.counters["events"] = double(src.size());
    // where the timed CPU time went: the kernel's share (faulting fresh
    // memory in, nearly all of it) and the user-space rate without it
    const double events = double(state.iterations()) * double(src.size());
    state.counters["sys_share"] = used.user + used.sys > 0 ? used.sys / (used.user + used.sys) : 0;
    state.counters["faults_per_kevent"] = events ? 1000.0 * double(used.faults) / events : 0;
    state.counters["user_events_per_s"] = used.user > 0 ? events / used.user : 0;
}

// --- export writers ---------------------------------------------------------

std::string symbolize(uint64_t a) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "kex_func_%llx+0x%x", (unsigned long long)(a >> 12),
                  unsigned(a & 0xfff));
    return buf;
}

const Report& report_of(std::size_t n) {
    static std::map<std::size_t, std::unique_ptr<Report>> cache;
    auto& slot = cache[n];
    if (!slot) {
        Correlator c(options(0));
        for (const auto& ev : stream(n))
            c.feed(ev);
        slot = std::make_unique<Report>(c.finish());
    }
    return *slot;
}

RunInfo run_info() {
    RunInfo run;
    run.kernel_release = "6.1.0-bench";
    run.command_line = "mmap_test /dev/kex 65536 --no-wait";
    return run;
}

// A discarding stream that counts (the writers' own cost, no disk).
class CountingBuf : public std::streambuf {
  public:
    uint64_t bytes = 0;

  protected:
    std::streamsize xsputn(const char*, std::streamsize n) override {
        bytes += uint64_t(n);
        return n;
    }
    int_type overflow(int_type c) override {
        if (c != traits_type::eof())
            ++bytes;
        return c;
    }
};

// One export of a report of state.range(0) events per iteration, its bytes
// counted (not kept); counter file_bytes: one export's size.
template <class Write> void export_report(benchmark::State& state, Write write) {
    const Report& r = report_of(std::size_t(state.range(0)));
    const RunInfo run = run_info();
    uint64_t bytes = 0;
    for (auto _ : state) {
        CountingBuf buf;
        std::ostream out(&buf);
        write(out, r, run);
        bytes += buf.bytes;
    }
    state.SetBytesProcessed(int64_t(bytes));
    state.counters["pages"] = double(r.pages.size());
    state.counters["file_bytes"] = double(bytes) / double(std::max<int64_t>(state.iterations(), 1));
}

void BM_ExportTimeline(benchmark::State& state) {
    export_report(state, [](std::ostream& out, const Report& r, const RunInfo& run) {
        TimelineStats st = write_trace_events(r, run, symbolize, out);
        benchmark::DoNotOptimize(st.events);
    });
}

// The same timeline as Perfetto protobuf (TrackEvent), for the size beside the JSON's.
void BM_ExportPerfetto(benchmark::State& state) {
    export_report(state, [](std::ostream& out, const Report& r, const RunInfo& run) {
        TimelineStats st = write_perfetto_trace(r, run, symbolize, out);
        benchmark::DoNotOptimize(st.events);
    });
}

void BM_ExportJsonl(benchmark::State& state) {
    const auto& events = stream(std::size_t(state.range(0)));
    uint64_t bytes = 0;
    for (auto _ : state) {
        CountingBuf buf;
        std::ostream out(&buf);
        std::string line;
        line.reserve(1 << 20);
        for (const auto& ev : events) {
            append_jsonl_event(line, ev);
            line.push_back('\n');
            if (line.size() >= (1 << 20)) {
                out.write(line.data(), std::streamsize(line.size()));
                line.clear();
            }
        }
        out.write(line.data(), std::streamsize(line.size()));
        bytes += buf.bytes;
    }
    state.SetBytesProcessed(int64_t(bytes));
    state.counters["events"] = double(events.size());
}

void BM_ExportReportJson(benchmark::State& state) {
    // the complete --json document, as kextrace writes it (pretty-printed)
    export_report(state, [](std::ostream& out, const Report& r, const RunInfo& run) {
        benchmark::DoNotOptimize(write_report_json(out, r, run, symbolize));
    });
}

std::vector<int64_t> sizes() {
    std::vector<int64_t> v;
    const char* env = std::getenv("KEXBENCH_EVENTS");
    std::string s = env && *env ? env : "1000000,10000000";
    std::size_t p = 0;
    while (p < s.size()) {
        std::size_t c = s.find(',', p);
        v.push_back(std::stoll(s.substr(p, c == std::string::npos ? std::string::npos : c - p)));
        if (c == std::string::npos)
            break;
        p = c + 1;
    }
    return v;
}

} // namespace

int main(int argc, char** argv) {
    kextrace::keep_freed_heap(); // as kextrace does
    auto ns = sizes();
    for (int64_t n : ns) {
        benchmark::RegisterBenchmark("correlate/buffer_all", BM_Correlate, uint64_t(0))
            ->Arg(n)
            ->Unit(benchmark::kMillisecond)
            ->Iterations(n >= 5'000'000 ? 1 : 3);
        benchmark::RegisterBenchmark("correlate/window_1ms", BM_Correlate, uint64_t(1'000'000))
            ->Arg(n)
            ->Unit(benchmark::kMillisecond)
            ->Iterations(n >= 5'000'000 ? 1 : 3);
    }
    // export writers on the smallest size's report (1e6 events by default)
    int64_t e = ns.front();
    benchmark::RegisterBenchmark("export/timeline_json", BM_ExportTimeline)
        ->Arg(e)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
    benchmark::RegisterBenchmark("export/timeline_perfetto", BM_ExportPerfetto)
        ->Arg(e)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
    benchmark::RegisterBenchmark("export/jsonl", BM_ExportJsonl)
        ->Arg(e)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
    benchmark::RegisterBenchmark("export/report_json", BM_ExportReportJson)
        ->Arg(e)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(3);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
