// ring_drain.h - the BPF ring buffer's consumer side: RingDrain owns the
// libbpf ring_buffer and, while a session runs, the drain thread.
//
// The drain thread only copies raw records into a RecordQueue, waiting up to
// its interval for a wakeup (the BPF side mostly does not wake us: drain on a
// timer); drain(), on the thread that calls it, hands them to the sample
// function (decode, correlate, write). finish() empties the ring and hands
// over the last records. Without the thread, drain() consumes the ring itself.
#pragma once

#include "error.h"
#include "record_queue.h"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <thread>

struct ring_buffer;

namespace kextrace {

class RingDrain {
  public:
    using SampleFn = std::function<int(std::span<const std::byte>)>;

    // map_fd: the BPF_MAP_TYPE_RINGBUF map. on_sample gets every record (a
    // stack record cut to its stack_len), on the thread that calls drain() /
    // finish().
    static Result<std::unique_ptr<RingDrain>> open(int map_fd, SampleFn on_sample);
    ~RingDrain();
    RingDrain(const RingDrain&) = delete;
    RingDrain& operator=(const RingDrain&) = delete;

    // Starts the drain thread: from now on it alone uses the ring buffer.
    // queue_limit_bytes > 0: see RecordQueue (debugging).
    Status start(std::chrono::milliseconds interval, std::size_t queue_limit_bytes = 0);
    // The drain thread consumes the ring until it is empty and exits (joined);
    // every record it copied has gone to on_sample when this returns.
    void finish();
    // Stops the drain thread without handing anything more over (error and
    // unwinding paths); joined. Idempotent.
    void abandon() noexcept;
    bool threaded() const { return drainer_.joinable(); }
    // Hands records to on_sample on this thread. poll_ms > 0: waits up to
    // poll_ms for some, and stops handing over after poll_ms. poll_ms == 0:
    // everything in the ring at the call goes to on_sample before it returns.
    // Without the drain thread, consumes the ring here. Returns the records.
    int drain(int poll_ms);
    RecordQueue::Stats queue_stats() const { return queue_.stats(); }
    // Set by the drain thread as it starts (read once it was joined): ran, the
    // nice it runs at, and the errno that kept it at the process's (0: none).
    struct ThreadInfo {
        bool ran = false;
        int nice = 0;
        int error = 0;
    };
    ThreadInfo thread_info() const { return thread_info_; }

  private:
    RingDrain(int map_fd, SampleFn on_sample) : map_fd_(map_fd), on_sample_(std::move(on_sample)) {}
    void drain_loop(std::stop_token stop, std::chrono::milliseconds interval);
    void wake_drainer() const;
    void check_drainer() const;

    struct RingBufferDeleter {
        void operator()(ring_buffer* rb) const;
    };
    struct Fd {
        int fd = -1;
        ~Fd();
    };

    int map_fd_;
    SampleFn on_sample_;
    // The ring callback runs on the drain thread (or in drain() when there is
    // none) and only copies into queue_.
    RecordQueue queue_;
    std::unique_ptr<ring_buffer, RingBufferDeleter> rb_;
    Fd epoll_fd_, wake_fd_;       // the ring's map fd + wake_fd_ (eventfd)
    std::stop_token drain_stop_;  // the drain thread's, for the ring callback
    bool drain_threaded_ = false; // the callback runs on the drain thread
    ThreadInfo thread_info_;      // set by the drain thread, read after join()
    std::atomic<uint64_t> sync_requested_{0};
    std::atomic<bool> finish_requested_{false};
    std::string drain_error_; // set by the drain thread before it closes queue_
    std::jthread drainer_;    // last: joined before everything above goes
};

} // namespace kextrace
