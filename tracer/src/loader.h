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
// (start_draining): it only copies raw records into a RecordQueue; drain(),
// on the thread that calls it, hands them to the sample function (decode,
// correlate, write). finish_draining() empties the ring and hands over the
// last records before the losses map is read.
#pragma once

#include "error.h"
#include "probe_plan.h"
#include "tracefs.h"

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <thread>
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
    bool driver_pages = true; // other drivers' inserted pages too (not --kex-only)
    bool stacks = true;
    bool trace_all = false; // kex's tracepoints for every process (kextrace --all)
    uint32_t ringbuf_bytes = KEX_RINGBUF_DEFAULT;
    uint32_t max_pages = KEX_MAX_PAGES_DEFAULT;
    uint32_t max_traced = KEX_MAX_TRACED; // thread groups in the traced map at once
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

// Raw ring-buffer records on their way from the drain thread (the one
// producer) to the thread that decodes them (the one consumer): copied into
// chunks of bytes (no allocation per record; chunks are recycled), a chunk
// handed over under a mutex when it is full or a drain pass ends. Records
// come out in the order they went in. Unbounded unless limit_bytes > 0, a
// debugging aid: the producer then waits while that many record bytes are
// queued, so a stalled consumer backs up into the ring again (and the BPF
// side counts the losses), as when the consumer drained the ring itself.
class RecordQueue {
  public:
    using RecordFn = std::function<void(std::span<const std::byte>)>;
    struct Stats {
        uint64_t records = 0;      // copied in, in all
        uint64_t bytes = 0;        // their bytes
        uint64_t peak_records = 0; // most records handed over and not yet taken, at once
        uint64_t peak_bytes = 0;   // most record bytes handed over and not yet taken
        uint64_t chunks = 0;       // chunks allocated
        uint64_t limit_waits = 0;  // times the producer waited for the limit
    };
    static constexpr std::size_t kChunkBytes = 256 << 10;
    static constexpr uint64_t kClosed = UINT64_MAX; // consume_until(kClosed): until close()

    explicit RecordQueue(std::size_t limit_bytes = 0, std::size_t chunk_bytes = kChunkBytes);
    RecordQueue(const RecordQueue&) = delete;
    RecordQueue& operator=(const RecordQueue&) = delete;

    // Producer (one thread at a time). Copies rec; a full chunk is handed over.
    // may_wait = false ignores the limit (the consumer is this thread). false:
    // stop requested while waiting for the limit, or out of memory; rec was not kept.
    bool push(std::span<const std::byte> rec, std::stop_token stop = {}, bool may_wait = true);
    // Hands the open chunk over, if it holds records.
    bool flush(std::stop_token stop = {}, bool may_wait = true);
    // flush(), then marks m as reached: consume_until(m) returns once it took
    // every record pushed before.
    bool mark(uint64_t m, std::stop_token stop = {});
    // The producer is done: waiting consumers return once the queue is empty.
    void close();
    // Undoes close() for a new producer.
    void reopen();
    bool closed() const;
    // 0: unbounded. Set while no producer runs.
    void set_limit(std::size_t limit_bytes);

    // Consumer (one thread). Waits up to `wait` for a chunk, then hands the
    // queued records to fn, in order, until none is left or `budget` (0: no
    // limit) has passed. Returns the records handed.
    std::size_t consume_for(const RecordFn& fn, std::chrono::milliseconds wait,
                            std::chrono::milliseconds budget = {});
    // Hands records to fn until the producer reached mark m (or closed the
    // queue) and nothing pushed before that is left.
    std::size_t consume_until(uint64_t m, const RecordFn& fn);

    Stats stats() const;

  private:
    struct Chunk {
        std::unique_ptr<std::byte[]> data;
        std::size_t cap = 0, used = 0; // bytes of data, framing included
        std::size_t records = 0, payload = 0;
    };
    bool hand_over(std::stop_token stop, bool may_wait);
    std::size_t take_one(std::unique_lock<std::mutex>& lk, const RecordFn& fn);

    std::size_t limit_bytes_;
    const std::size_t chunk_bytes_;
    Chunk open_; // the producer's, not under the mutex
    mutable std::mutex m_;
    std::condition_variable_any cv_; // data for the consumer, room for the producer
    std::deque<Chunk> full_;
    std::vector<Chunk> spare_;
    uint64_t queued_records_ = 0, queued_bytes_ = 0, mark_ = 0;
    bool closed_ = false;
    Stats stats_;
};

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
    bool draining() const { return drainer_.joinable(); }
    // Hands records to on_sample on this thread. poll_ms > 0: waits up to
    // poll_ms for some, and stops handing over after poll_ms. poll_ms == 0:
    // everything in the ring at the call goes to on_sample before it returns.
    // Without the drain thread, consumes the ring here. Returns the records.
    int drain(int poll_ms = 0);
    RecordQueue::Stats queue_stats() const;

    std::array<uint64_t, KEX_LOSS_SLOTS> read_losses() const;
    // Per enum kex_track_slot: failed map updates (and pfns not computable).
    std::array<uint64_t, KEX_TRACK_SLOTS> read_tracking() const;
    // Thread groups in the BPF "traced" map right now.
    uint32_t traced_entries() const;
    // Per event type: records the BPF programs tried to send (map "produced",
    // summed over CPUs); produced = received + losses when nothing else drops.
    std::array<uint64_t, KEX_LOSS_SLOTS> read_produced() const;
    std::array<kex_probe_stats, KEX_P_COUNT> read_probe_stats() const;
    // Kprobe misses per probe id, from kprobe_profile (tracefs mode); nullopt
    // when this kernel does not tell (perf mode).
    std::optional<std::array<uint64_t, KEX_P_COUNT>> read_kprobe_missed() const;
    KprobeMode kprobe_mode() const { return opts_.kprobe_mode; }

    // Destroys every link and tracefs kprobe (idempotent); the maps stay
    // readable. In an order that cuts the page lives cleanly, however long
    // each detach takes: first the probes where a mapping, a page life or a
    // fault starts, then all others but the page frees; then
    // before_frees runs (kex's tracepoints no longer pin kex; a page freed
    // meanwhile still has its free traced); the page-free tracepoints last.
    void detach(const std::function<void()>& before_frees = {});

  private:
    explicit Loader(const LoaderOptions& opts) : opts_(opts) {}
    Status attach_one(uint32_t id, const ProbePlan& plan);
    void drain_loop(std::stop_token stop, std::chrono::milliseconds interval);
    void wake_drainer() const;
    void hand_over(std::span<const std::byte> rec);
    void check_drainer() const;

    LoaderOptions opts_;
    struct SkelDeleter {
        void operator()(::kextrace_bpf* s) const;
    };
    std::unique_ptr<::kextrace_bpf, SkelDeleter> skel_;
    std::vector<std::unique_ptr<TracefsKprobe>> kprobes_;
    std::vector<LinkPtr> links_;
    std::vector<uint32_t> link_probes_; // links_[i] is probe link_probes_[i]'s
    struct RingBufferDeleter {
        void operator()(ring_buffer* rb) const;
    };
    SampleFn on_sample_;
    std::unique_ptr<ring_buffer, RingBufferDeleter> rb_;
    std::array<AttachResult, KEX_P_COUNT> results_{};

    // The drain side. The ring callback runs on the drain thread (or in drain()
    // when there is none) and only copies into queue_.
    std::unique_ptr<RecordQueue> queue_;
    struct Fd {
        int fd = -1;
        ~Fd();
    };
    Fd epoll_fd_, wake_fd_;       // the ring's map fd + wake_fd_ (eventfd)
    std::stop_token drain_stop_;  // the drain thread's, for the ring callback
    bool drain_threaded_ = false; // the callback runs on the drain thread
    std::atomic<uint64_t> sync_requested_{0};
    std::atomic<bool> finish_requested_{false};
    std::string drain_error_; // set by the drain thread before it closes queue_
    std::jthread drainer_;    // last: joined before everything above goes
};

} // namespace kextrace
