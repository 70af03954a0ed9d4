// loader.h - the BPF side's lifetime: open the skeleton, configure it from
// the probe plan (const volatile globals, autoload, map sizes), load, attach
// every planned probe, read the counters, detach.
//
// Phases, in order: Loader::open -> configure -> load -> attach -> (run) ->
// read counters -> detach (or destruction). Every kernel object is owned by
// an RAII member; destruction order is ring buffer, links, tracefs kprobes,
// skeleton, so a failure at any phase unwinds cleanly.
#pragma once

#include "error.h"
#include "probe_plan.h"
#include "tracefs.h"

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

struct kextrace_bpf;
struct bpf_link;
struct ring_buffer;

namespace kextrace {

enum class KprobeMode {
    tracefs, // kprobe_events + perf tracepoint event: missed counts in kprobe_profile
    perf,    // libbpf's perf kprobe PMU: no per-probe missed counts on 6.1
};

struct LoaderOptions {
    KprobeMode kprobe_mode = KprobeMode::tracefs;
    std::optional<Tracefs> tracefs;
    bool fault_all_pages = false;
    bool stacks = true;
    bool trace_all = false; // kex's tracepoints for every process (kextrace --all)
    uint32_t ringbuf_bytes = KEX_RINGBUF_DEFAULT;
    uint32_t max_pages = KEX_MAX_PAGES_DEFAULT;
};

// What happened to one probe id at attach time.
struct AttachResult {
    bool planned = false;
    bool attached = false;
    std::string target;       // symbol / "sys/name" / binary
    std::string error;        // why attach failed
    std::string kprobe_event; // tracefs event name ("" in perf mode)
    unsigned usdt_attached = 0;
};

// Calls libbpf's print hook into spdlog (debug level for info/debug, warn for warnings).
void route_libbpf_logs();

struct LinkDeleter {
    void operator()(bpf_link* l) const;
};
using LinkPtr = std::unique_ptr<bpf_link, LinkDeleter>;

// A kprobe created through tracefs kprobe_events; removed when destroyed.
class TracefsKprobe {
  public:
    static Result<std::unique_ptr<TracefsKprobe>> create(const Tracefs& tfs, std::string event,
                                                         const std::string& symbol, bool retprobe);
    ~TracefsKprobe();
    TracefsKprobe(const TracefsKprobe&) = delete;
    TracefsKprobe& operator=(const TracefsKprobe&) = delete;
    const std::string& event() const { return event_; }
    int id() const { return id_; }
    static constexpr const char* kGroup = "kextrace";

  private:
    TracefsKprobe(const Tracefs& tfs, std::string event, int id)
        : tfs_(tfs), event_(std::move(event)), id_(id) {}
    Tracefs tfs_;
    std::string event_;
    int id_;
};

// Removes kprobe_events entries of group kextrace left by dead kextrace processes.
void remove_stale_kprobes(const Tracefs& tfs);

class Loader {
  public:
    using SampleFn = std::function<int(std::span<const std::byte>)>;

    static Result<std::unique_ptr<Loader>> open(const LoaderOptions& opts);
    ~Loader();
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    // Sets the globals from plan.config and the options, autoload per plan.enabled.
    Status configure(const ProbePlan& plan);
    Status load();
    // Attaches what the plan enabled; per-probe failures are recorded, not fatal.
    void attach(const ProbePlan& plan);
    const std::array<AttachResult, KEX_P_COUNT>& results() const { return results_; }

    Status trace_tgid(uint32_t tgid);
    Status open_ring_buffer(SampleFn on_sample);
    // Consumes what is waiting; poll_ms > 0 first waits for a wakeup (the BPF
    // side mostly does not wake us: drain on a timer).
    int drain(int poll_ms = 0);

    std::array<uint64_t, KEX_LOSS_SLOTS> read_losses() const;
    // Per event type: records the BPF programs tried to send (map "produced",
    // summed over CPUs); produced = received + losses when nothing else drops.
    std::array<uint64_t, KEX_LOSS_SLOTS> read_produced() const;
    std::array<kex_probe_stats, KEX_P_COUNT> read_probe_stats() const;
    // Kprobe misses per probe id, from kprobe_profile (tracefs mode); nullopt
    // when this kernel does not tell (perf mode).
    std::optional<std::array<uint64_t, KEX_P_COUNT>> read_kprobe_missed() const;
    KprobeMode kprobe_mode() const { return opts_.kprobe_mode; }

    // Destroys every link and tracefs kprobe (idempotent); the maps stay readable.
    void detach();

  private:
    explicit Loader(const LoaderOptions& opts) : opts_(opts) {}
    Status attach_one(uint32_t id, const ProbePlan& plan);

    LoaderOptions opts_;
    struct SkelDeleter {
        void operator()(::kextrace_bpf* s) const;
    };
    std::unique_ptr<::kextrace_bpf, SkelDeleter> skel_;
    std::vector<std::unique_ptr<TracefsKprobe>> kprobes_;
    std::vector<LinkPtr> links_;
    struct RingBufferDeleter {
        void operator()(ring_buffer* rb) const;
    };
    SampleFn on_sample_;
    std::unique_ptr<ring_buffer, RingBufferDeleter> rb_;
    std::array<AttachResult, KEX_P_COUNT> results_{};
};

} // namespace kextrace
