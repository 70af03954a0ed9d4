// ring_drain.cpp - see ring_drain.h.
#include "ring_drain.h"

#include <bpf/libbpf.h>

#include <kextrace/core.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <pthread.h>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <system_error>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace kextrace {

void RingDrain::RingBufferDeleter::operator()(ring_buffer* rb) const {
    ring_buffer__free(rb);
}

RingDrain::Fd::~Fd() {
    if (fd >= 0)
        ::close(fd);
}

Result<std::unique_ptr<RingDrain>> RingDrain::open(int map_fd, SampleFn on_sample) {
    std::unique_ptr<RingDrain> d(new RingDrain(map_fd, std::move(on_sample)));
    // On the drain thread: copy, nothing else (no decoding, no logging).
    auto cb = [](void* ctx, void* data, size_t size) -> int {
        auto* self = static_cast<RingDrain*>(ctx);
        std::span<const std::byte> rec(static_cast<const std::byte*>(data), size);
        rec = trim_record(rec);
        return self->queue_.push(rec, self->drain_stop_, self->drain_threaded_) ? 0 : -ECANCELED;
    };
    ring_buffer* rb = ring_buffer__new(map_fd, cb, d.get(), nullptr);
    if (!rb)
        return Error{fmt::format("ring buffer: {}", errstr(errno))};
    d->rb_.reset(rb);
    return d;
}

RingDrain::~RingDrain() {
    abandon();
}

Status RingDrain::start(std::chrono::milliseconds interval, std::size_t queue_limit_bytes) {
    if (!rb_)
        return Error{"no ring buffer to drain"};
    if (drainer_.joinable())
        return Ok{};
    if (epoll_fd_.fd < 0) {
        // The ring's map fd, as libbpf polls it, plus an eventfd that wakes the
        // thread at once for drain(0), finish and stop.
        Fd ep, wake;
        ep.fd = ::epoll_create1(EPOLL_CLOEXEC);
        if (ep.fd < 0)
            return Error{fmt::format("epoll_create1: {}", errstr(errno))};
        wake.fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake.fd < 0)
            return Error{fmt::format("eventfd: {}", errstr(errno))};
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = 0;
        if (::epoll_ctl(ep.fd, EPOLL_CTL_ADD, map_fd_, &ev) < 0)
            return Error{fmt::format("epoll_ctl (ring buffer): {}", errstr(errno))};
        ev.data.u32 = 1;
        if (::epoll_ctl(ep.fd, EPOLL_CTL_ADD, wake.fd, &ev) < 0)
            return Error{fmt::format("epoll_ctl (eventfd): {}", errstr(errno))};
        std::swap(epoll_fd_.fd, ep.fd);
        std::swap(wake_fd_.fd, wake.fd);
    }
    queue_.set_limit(queue_limit_bytes);
    queue_.reopen();
    finish_requested_.store(false);
    drain_error_.clear();
    drain_threaded_ = true;
    // SIGINT / SIGTERM stay with the consumer's thread, which checks for them;
    // the new thread inherits the blocked mask.
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    try {
        drainer_ = std::jthread(
            [this, interval](std::stop_token stop) { drain_loop(std::move(stop), interval); });
    } catch (const std::system_error& e) {
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
        drain_threaded_ = false;
        return Error{fmt::format("starting the drain thread: {}", e.what())};
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return Ok{};
}

void RingDrain::wake_drainer() const {
    uint64_t one = 1;
    (void)!::write(wake_fd_.fd, &one, sizeof(one));
}

// The drain thread copies and sleeps; when every CPU runs the traced
// workload (and the consumer), CFS gives it a share too small to keep up and
// the ring overflows (two loopers on a 2-CPU guest lost 7% of their records at
// nice 0). kDrainNiceBelow under the process's nice it gets ~9x their weight,
// which a copy-only thread with an idle ring does not use. Without
// CAP_SYS_NICE it keeps the process's nice; finish() logs which.
namespace {
constexpr int kDrainNiceBelow = 10;

// The nice it runs at, or the errno that kept it at the process's.
std::pair<int, int> raise_drain_priority() {
    errno = 0;
    int base = ::getpriority(PRIO_PROCESS, 0); // this thread's nice (inherited)
    if (base == -1 && errno != 0)
        return {0, errno};
    int want = std::max(base - kDrainNiceBelow, -20);
    if (::setpriority(PRIO_PROCESS, 0, want) < 0) // 0: this thread, on Linux
        return {base, errno};
    return {want, 0};
}
} // namespace

void RingDrain::drain_loop(std::stop_token stop, std::chrono::milliseconds interval) {
    drain_stop_ = stop;
    pthread_setname_np(pthread_self(), "kextrace-drain"); // top -H, /proc/PID/task
    auto [nice, err] = raise_drain_priority();
    thread_info_ = {.ran = true, .nice = nice, .error = err};
    std::stop_callback on_stop(stop, [this] { wake_drainer(); });
    constexpr int kFinishPasses = 64; // bounded: --all may never see an idle ring
    uint64_t done = 0;
    try {
        while (!stop.stop_requested()) {
            bool finishing = finish_requested_.load(std::memory_order_acquire);
            uint64_t want = sync_requested_.load(std::memory_order_acquire);
            if (!finishing && want == done) {
                epoll_event ev[2];
                int n = ::epoll_wait(epoll_fd_.fd, ev, 2, static_cast<int>(interval.count()));
                if (n < 0 && errno != EINTR)
                    throw std::runtime_error(
                        fmt::format("waiting for the ring buffer: {}", errstr(errno)));
                for (int i = 0; i < n; i++) {
                    uint64_t v;
                    if (ev[i].data.u32 == 1)
                        (void)!::read(wake_fd_.fd, &v, sizeof(v));
                }
                finishing = finish_requested_.load(std::memory_order_acquire);
                want = sync_requested_.load(std::memory_order_acquire);
            }
            int r = ring_buffer__consume(rb_.get());
            for (int i = 0; finishing && r > 0 && i < kFinishPasses; i++)
                r = ring_buffer__consume(rb_.get()); // until nothing is left
            if (r < 0) {
                if (stop.stop_requested())
                    break;
                throw std::runtime_error(
                    fmt::format("copying ring buffer records: {}",
                                r == -ECANCELED ? "out of memory" : errstr(r)));
            }
            if (!queue_.mark(want, stop))
                break; // stopped while held at the queue limit
            done = want;
            if (finishing)
                break;
        }
    } catch (const std::exception& e) {
        drain_error_ = e.what();
    }
    queue_.close(); // after drain_error_: the consumer reads it once it saw the close
}

void RingDrain::check_drainer() const {
    if (queue_.closed() && !drain_error_.empty())
        throw FatalError("drain thread: " + drain_error_);
}

void RingDrain::finish() {
    if (!drainer_.joinable())
        return;
    finish_requested_.store(true, std::memory_order_release);
    wake_drainer();
    queue_.consume_until(RecordQueue::kClosed,
                         [this](std::span<const std::byte> rec) { on_sample_(rec); });
    drainer_.join();
    drain_threaded_ = false;
    drain_stop_ = {};
    RecordQueue::Stats q = queue_.stats();
    spdlog::debug(
        "drain thread (nice {}{}): {} records ({} bytes) copied; queue peak {} records, "
        "{} bytes; {} chunks of {} KiB{}",
        thread_info_.nice,
        thread_info_.error ? fmt::format(", the process's: {}", errstr(thread_info_.error))
                           : std::string(),
        q.records, q.bytes, q.peak_records, q.peak_bytes, q.chunks, RecordQueue::kChunkBytes >> 10,
        q.limit_waits ? fmt::format("; held at the queue limit {} times", q.limit_waits)
                      : std::string());
    check_drainer();
}

void RingDrain::abandon() noexcept {
    if (!drainer_.joinable())
        return;
    drainer_.request_stop(); // wakes it (stop callback), and any wait at the queue limit
    try {
        drainer_.join();
    } catch (const std::system_error&) {
    }
    drain_threaded_ = false;
    drain_stop_ = {};
}

int RingDrain::drain(int poll_ms) {
    if (!rb_)
        return 0;
    auto handler = [this](std::span<const std::byte> rec) { on_sample_(rec); };
    std::size_t n;
    if (!drainer_.joinable()) {
        // no drain thread: consume here, then hand over (never waiting for the limit)
        int p = poll_ms > 0 ? ring_buffer__poll(rb_.get(), poll_ms) : 0;
        int c = ring_buffer__consume(rb_.get());
        (void)queue_.flush({}, false);
        n = queue_.consume_for(handler, {});
        if (p == -ECANCELED || c == -ECANCELED)
            throw FatalError("copying ring buffer records: out of memory");
        return static_cast<int>(n);
    }
    if (poll_ms > 0) {
        n = queue_.consume_for(handler, std::chrono::milliseconds(poll_ms),
                               std::chrono::milliseconds(poll_ms));
    } else {
        uint64_t mark = sync_requested_.fetch_add(1, std::memory_order_acq_rel) + 1;
        wake_drainer();
        n = queue_.consume_until(mark, handler);
    }
    check_drainer();
    return static_cast<int>(n);
}

} // namespace kextrace
