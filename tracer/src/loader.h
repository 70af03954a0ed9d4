// loader.h - the BPF side's lifetime: open the skeleton, configure it from
// the probe plan (const volatile globals, autoload, map sizes), load, attach
// every planned probe, read the counters, detach.
//
// Phases, in order: Loader::open -> configure -> load -> attach -> (run) ->
// read counters -> detach (or destruction). Every kernel object is owned by
// an RAII member; destruction order is drain thread (joined), ring buffer,
// links, tracefs kprobes, skeleton, so a failure at any phase unwinds cleanly.
//
// While a session runs, the ring buffer is drained on a thread of its own
// (start_draining, ring_drain.h): it only copies raw records into a
// RecordQueue (record_queue.h); drain(), on the thread that calls it, hands
// them to the sample function (decode, correlate, write). finish_draining()
// empties the ring and hands over the last records before the losses map is
// read. Kprobes go through tracefs kprobe_events (tracefs_kprobe.h) or
// libbpf's perf kprobe PMU.
#pragma once

#include "error.h"
#include "follow_discovery.h"
#include "probe_plan.h"
#include "record_queue.h"
#include "ring_drain.h"
#include "tracefs.h"
#include "tracefs_kprobe.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

struct kextrace_bpf;
struct bpf_link;

namespace kextrace {

// Per probe id: the runs the kernel skipped, where it says (Loader).
using MissedCounts = std::array<std::optional<uint64_t>, KEX_P_COUNT>;

enum class KprobeMode {
    tracefs, // kprobe_events + perf tracepoint event: missed counts in kprobe_profile
    perf,    // libbpf's perf kprobe PMU: no per-probe missed counts on 6.1
};

// --watch: the page lives kept in BPF at once (an array of 1,360-byte
// slots, plus 4 bytes each in the queue of free slots); a page beyond them
// sends its records one by one.
constexpr uint32_t watch_lives(uint32_t max_pages) {
    return max_pages < KEX_WATCH_LIVES_MAX ? max_pages : KEX_WATCH_LIVES_MAX;
}

struct LoaderOptions {
    KprobeMode kprobe_mode = KprobeMode::tracefs;
    std::optional<Tracefs> tracefs;
    bool fault_all_pages = false;
    bool driver_pages = true; // other drivers' inserted pages too (not --kex-only)
    bool stacks = true;
    bool stack_by_site = false;    // a call site's stack walked once (--stacks sites)
    bool stack_site_check = false; // ... and walked again where reused, to compare
    bool trace_all = false;        // kex's tracepoints for every process (kextrace --all)
    bool watch = false;            // a page's records kept in BPF until its free (--watch)
    uint32_t ringbuf_bytes = KEX_RINGBUF_DEFAULT;
    uint32_t max_pages = KEX_MAX_PAGES_DEFAULT;
    uint32_t max_allocs = KEX_MAX_DRIVER_ALLOCS; // driver_allocs: allocations awaiting a mapping
    uint32_t max_traced = KEX_MAX_TRACED;        // thread groups in the traced map at once
    bool follow = false;                         // load the --follow programs (attach_follow)
};

// How --follow attached (follow_attach.cpp):
//   follow: 1630 of 1630 functions via kprobe.multi in 0.41 s
struct FollowAttach {
    std::string mechanism;              // "kprobe.multi" or "kprobe"
    std::string why_not_multi;          // when mechanism is "kprobe"
    std::vector<std::string> functions; // the record's func id -> name (FollowSet::chosen)
    std::vector<bool> attached;         // per func id
    std::size_t attached_count = 0;
    std::size_t links = 0;
    std::chrono::microseconds took{};
    bool interrupted = false; // a stop signal ended the attach early
    // functions that did not attach, and the error
    std::vector<std::pair<std::string, std::string>> failed;
};

// What --follow's BPF side counted (follow_stats, summed over CPUs) and
// the runs the kernel skipped (the programs' recursion_misses: a followed
// function called inside another BPF program on its CPU; counted by
// kernels from 6.7 on, 6.1 counts none).
struct FollowCounts {
    uint64_t nested = 0;        // kex_follow_stats.nested: lost follow records
    uint64_t folio_partial = 0; // kex_follow_stats.folio_partial
    uint64_t array_partial = 0; // kex_follow_stats.array_partial
    uint64_t missed = 0;
    std::chrono::microseconds detach{}; // the follow links' detach (0 before it)
    uint64_t runs = 0;                  // the follow programs' runs (hits of KEX_P_FOLLOW)
    uint64_t matched = 0;               // of them, tracked pages met
};

// The BPF programs' counters (struct kex_counters), summed over CPUs:
// per event type, the records the programs tried to send and those that
// found no room (produced = received + lost when nothing else drops); per
// probe, runs, filter passes and records sent.
struct ProgramCounters {
    std::array<uint64_t, KEX_LOSS_SLOTS> produced{};
    std::array<uint64_t, KEX_LOSS_SLOTS> lost{};
    std::array<kex_probe_stats, KEX_P_COUNT> probes{};
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

// Releases the links for which which(i) is true. Each release of a
// tracepoint's perf event or a single kprobe waits for an RCU grace period;
// from up to 16 threads the waits overlap (one after the other: 2.4 s for
// kextrace's own probes in an idle 7.2 guest, 42-48 s for 529 --follow
// kprobes on 6.1). Without threads, one by one.
void release_links(std::vector<LinkPtr>& links, const std::function<bool(std::size_t)>& which);

class Loader {
  public:
    using SampleFn = RingDrain::SampleFn;

    static Result<std::unique_ptr<Loader>> open(const LoaderOptions& opts);
    ~Loader();
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    // Sets the globals from plan.config and the options, autoload per plan.enabled.
    Status configure(const ProbePlan& plan);
    Status load();
    // Attaches what the plan enabled; per-probe failures are recorded, not
    // fatal. Pages become tracked only once all of them are attached.
    void attach(const ProbePlan& plan);
    const std::array<AttachResult, KEX_P_COUNT>& results() const { return results_; }
    // --follow: one entry probe per chosen function (kprobe.multi, else a
    // kprobe each), cookie = KEX_FOLLOW_COOKIE; owned like every link. An
    // error when none attached; the ones that failed are listed.
    Result<FollowAttach> attach_follow(const FollowSet& set);
    FollowCounts read_follow_stats() const;

    Status trace_tgid(uint32_t tgid);
    // on_sample gets every record (a stack record cut to its stack_len), on
    // the thread that calls drain() / finish_draining().
    Status open_ring_buffer(SampleFn on_sample);
    // Starts the drain thread: from now on it alone uses the ring buffer,
    // waiting up to interval for a wakeup (the BPF side mostly does not wake
    // us: drain on a timer) and copying every record into the queue.
    // queue_limit_bytes > 0: see RecordQueue (debugging).
    Status start_draining(std::chrono::milliseconds interval, std::size_t queue_limit_bytes = 0);
    // The drain thread consumes the ring until it is empty and exits (joined);
    // every record it copied has gone to on_sample when this returns.
    void finish_draining();
    // Stops the drain thread without handing anything more over (error and
    // unwinding paths); joined. Idempotent.
    void abandon_draining() noexcept;
    bool draining() const { return ring_ && ring_->threaded(); }
    // Hands records to on_sample on this thread. poll_ms > 0: waits up to
    // poll_ms for some, and stops handing over after poll_ms. poll_ms == 0:
    // everything in the ring at the call goes to on_sample before it returns.
    // Without the drain thread, consumes the ring here. Returns the records.
    int drain(int poll_ms = 0);
    RecordQueue::Stats queue_stats() const;
    RingDrain::ThreadInfo drain_thread() const;

    // Per enum kex_track_slot: failed map updates (and pfns not computable).
    std::array<uint64_t, KEX_TRACK_SLOTS> read_tracking() const;
    // Thread groups in the BPF "traced" map right now.
    uint32_t traced_entries() const;
    // The programs' counters (map "counters", summed over CPUs); an error if
    // the map cannot be read.
    Result<ProgramCounters> read_program_counters() const;
    // --watch, once everything is detached: every life still held in the BPF
    // map of slots (a page not freed) to on_sample as a KEX_EV_LIFE record flagged
    // KEX_LIFE_OPEN. Returns how many; an error if the map cannot be read.
    Result<std::size_t> read_open_lives(const SampleFn& on_sample) const;
    // Runs the kernel skipped, per probe id: a kprobe's from kprobe_profile
    // (tracefs mode: read before detach, which forgets them; perf mode does
    // not tell), a trampoline program's recursion misses (read after detach,
    // the programs stay loaded). Left nullopt where the kernel does not say.
    void read_kprobe_missed(MissedCounts& into) const;
    void read_trampoline_missed(MissedCounts& into) const;
    KprobeMode kprobe_mode() const { return opts_.kprobe_mode; }

    // Destroys every link and tracefs kprobe (idempotent); the maps stay
    // readable. In an order that cuts the page lives cleanly, however long
    // each detach takes: no page becomes tracked any more; then the probes
    // where a mapping, a page life or a fault starts, then all others but
    // the page frees; then before_frees runs (kex's tracepoints no longer pin
    // kex; a page freed meanwhile still has its free traced); the page-free
    // tracepoints last.
    void detach(const std::function<void()>& before_frees = {});

  private:
    explicit Loader(const LoaderOptions& opts) : opts_(opts) {}
    Status attach_one(uint32_t id, const ProbePlan& plan);
    Result<bpf_link*> attach_kprobe(uint32_t id, bpf_program* prog, const std::string& target,
                                    bool ret);
    Status attach_usdt(uint32_t id, bpf_program* prog, const std::string& binary);
    void attach_follow_singles(std::vector<const char*>& syms, const std::vector<__u64>& cookies,
                               FollowAttach& out);
    // --follow's links released, timed into follow_detach_ (follow_attach.cpp)
    void detach_follow();
    void attach_follow_multi(std::vector<const char*>& syms, const std::vector<__u64>& cookies,
                             std::size_t begin, std::size_t end, FollowAttach& out);

    LoaderOptions opts_;
    struct SkelDeleter {
        void operator()(::kextrace_bpf* s) const;
    };
    std::unique_ptr<::kextrace_bpf, SkelDeleter> skel_;
    std::vector<std::unique_ptr<TracefsKprobe>> kprobes_;
    std::vector<LinkPtr> links_;
    std::vector<uint32_t> link_probes_;         // links_[i] is probe link_probes_[i]'s
    std::vector<LinkPtr> follow_links_;         // --follow's, detached with the other probes
    std::chrono::microseconds follow_detach_{}; // how long their detach took
    std::array<AttachResult, KEX_P_COUNT> results_{};
    std::unique_ptr<RingDrain> ring_; // last: its thread joined, its ring freed first
};

} // namespace kextrace
