// loader.cpp - see loader.h.
#include "loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kextrace_bpf.skel.h"

#include <kextrace/core.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstddef>
#include <cstring>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdexcept>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace kextrace {

namespace {

int libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), format, args);
    std::string_view msg(buf, n > 0 ? std::min<std::size_t>(n, sizeof(buf) - 1) : 0);
    while (!msg.empty() && msg.back() == '\n')
        msg.remove_suffix(1);
    if (level == LIBBPF_WARN)
        spdlog::debug("libbpf: {}", msg); // warnings are expected for optional probes
    else
        spdlog::debug("libbpf: {}", msg);
    return n;
}

std::string errstr(int err) {
    return std::strerror(err < 0 ? -err : err);
}

int perf_event_open_tracepoint(int id) {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.config = id;
    attr.sample_period = 1;
    attr.wakeup_events = 1;
    return static_cast<int>(::syscall(__NR_perf_event_open, &attr, -1 /* pid */, 0 /* cpu */, -1,
                                      PERF_FLAG_FD_CLOEXEC));
}

bool pid_alive(int pid) {
    return ::kill(pid, 0) == 0 || errno == EPERM;
}

} // namespace

void route_libbpf_logs() {
    libbpf_set_print(libbpf_print);
}

void LinkDeleter::operator()(bpf_link* l) const {
    bpf_link__destroy(l);
}
void Loader::SkelDeleter::operator()(::kextrace_bpf* s) const {
    kextrace_bpf__destroy(s);
}
void Loader::RingBufferDeleter::operator()(ring_buffer* rb) const {
    ring_buffer__free(rb);
}

// --- tracefs kprobes ---------------------------------------------------------

Result<std::unique_ptr<TracefsKprobe>> TracefsKprobe::create(const Tracefs& tfs, std::string event,
                                                             const std::string& symbol,
                                                             bool retprobe) {
    // "r64:" raises the kretprobe instance limit above the default 2*ncpus.
    std::string line = fmt::format("{}:{}/{} {}", retprobe ? "r64" : "p", kGroup, event, symbol);
    if (auto st = tfs.write_kprobe_events(line); !st)
        return st.error();
    auto id = tfs.event_id(kGroup, event);
    if (!id) {
        (void)tfs.write_kprobe_events(fmt::format("-:{}/{}", kGroup, event));
        return Error{fmt::format("no id for {}/{} after creating it", kGroup, event)};
    }
    return std::unique_ptr<TracefsKprobe>(new TracefsKprobe(tfs, std::move(event), *id));
}

TracefsKprobe::~TracefsKprobe() {
    if (auto st = tfs_.write_kprobe_events(fmt::format("-:{}/{}", kGroup, event_)); !st)
        spdlog::warn("removing kprobe {}: {}", event_, st.error().message);
}

// Event names are kextrace_<pid>_<probe>: remove those whose pid is gone.
void remove_stale_kprobes(const Tracefs& tfs) {
    auto text = read_text_file(tfs.root() + "/kprobe_events");
    if (!text)
        return;
    std::string prefix = fmt::format("{}/kextrace_", TracefsKprobe::kGroup);
    std::size_t pos = 0;
    while ((pos = text->find(prefix, pos)) != std::string::npos) {
        std::size_t start = pos + std::strlen(TracefsKprobe::kGroup) + 1;
        std::size_t end = text->find_first_of(" \n", start);
        std::string event = text->substr(start, end - start);
        pos = end;
        int pid = std::atoi(event.c_str() + std::strlen("kextrace_"));
        if (pid > 0 && !pid_alive(pid)) {
            spdlog::debug("removing stale kprobe {}", event);
            (void)tfs.write_kprobe_events(fmt::format("-:{}/{}", TracefsKprobe::kGroup, event));
        }
    }
}

// --- the record queue ----------------------------------------------------------

namespace {

// A record in a chunk: its size (u32), 4 bytes of padding, its bytes, padded
// to 8 so the next one is aligned too.
constexpr std::size_t kFrame = 8;
constexpr std::size_t kKeepSpare = 16; // chunks kept for reuse (4 MiB at the default size)

std::size_t framed(std::size_t n) {
    return kFrame + ((n + 7) & ~std::size_t{7});
}

using QueueClock = std::chrono::steady_clock;

} // namespace

RecordQueue::RecordQueue(std::size_t limit_bytes, std::size_t chunk_bytes)
    : limit_bytes_(limit_bytes), chunk_bytes_(std::max<std::size_t>(chunk_bytes, 64)) {}

bool RecordQueue::push(std::span<const std::byte> rec, std::stop_token stop, bool may_wait) {
    const std::size_t need = framed(rec.size());
    if (open_.cap - open_.used < need) {
        if (open_.records && !hand_over(stop, may_wait))
            return false;
        if (open_.cap < need) { // none, or too small for this record
            std::unique_lock lk(m_);
            if (!spare_.empty() && spare_.back().cap >= need) {
                open_ = std::move(spare_.back());
                spare_.pop_back();
            } else {
                lk.unlock();
                std::size_t cap = std::max(chunk_bytes_, need);
                Chunk c;
                c.data.reset(new (std::nothrow) std::byte[cap]);
                if (!c.data)
                    return false;
                c.cap = cap;
                open_ = std::move(c);
                lk.lock();
                stats_.chunks++;
            }
        }
    }
    std::byte* p = open_.data.get() + open_.used;
    const auto n = static_cast<uint32_t>(rec.size());
    std::memcpy(p, &n, sizeof(n));
    std::memcpy(p + kFrame, rec.data(), rec.size());
    open_.used += need;
    open_.records++;
    open_.payload += rec.size();
    return true;
}

bool RecordQueue::hand_over(std::stop_token stop, bool may_wait) {
    std::unique_lock lk(m_);
    if (limit_bytes_ && may_wait && queued_bytes_ >= limit_bytes_) {
        stats_.limit_waits++;
        if (!cv_.wait(lk, stop, [&] { return queued_bytes_ < limit_bytes_; }))
            return false;
    }
    queued_records_ += open_.records;
    queued_bytes_ += open_.payload;
    stats_.records += open_.records;
    stats_.bytes += open_.payload;
    stats_.peak_records = std::max(stats_.peak_records, queued_records_);
    stats_.peak_bytes = std::max(stats_.peak_bytes, queued_bytes_);
    full_.push_back(std::move(open_));
    open_ = Chunk{};
    lk.unlock();
    cv_.notify_all();
    return true;
}

bool RecordQueue::flush(std::stop_token stop, bool may_wait) {
    return !open_.records || hand_over(stop, may_wait);
}

bool RecordQueue::mark(uint64_t m, std::stop_token stop) {
    if (!flush(stop))
        return false;
    {
        std::lock_guard lk(m_);
        mark_ = std::max(mark_, m);
    }
    cv_.notify_all();
    return true;
}

void RecordQueue::close() {
    {
        std::lock_guard lk(m_);
        closed_ = true;
    }
    cv_.notify_all();
}

void RecordQueue::reopen() {
    std::lock_guard lk(m_);
    closed_ = false;
}

bool RecordQueue::closed() const {
    std::lock_guard lk(m_);
    return closed_;
}

void RecordQueue::set_limit(std::size_t limit_bytes) {
    std::lock_guard lk(m_);
    limit_bytes_ = limit_bytes;
}

std::size_t RecordQueue::take_one(std::unique_lock<std::mutex>& lk, const RecordFn& fn) {
    Chunk c = std::move(full_.front());
    full_.pop_front();
    queued_records_ -= c.records;
    queued_bytes_ -= c.payload;
    lk.unlock();
    cv_.notify_all(); // room for a producer held at the limit
    for (std::size_t off = 0; off < c.used;) {
        uint32_t n;
        std::memcpy(&n, c.data.get() + off, sizeof(n));
        fn(std::span<const std::byte>(c.data.get() + off + kFrame, n));
        off += framed(n);
    }
    const std::size_t records = c.records;
    c.used = c.records = c.payload = 0;
    lk.lock();
    if (spare_.size() < kKeepSpare && c.cap == chunk_bytes_)
        spare_.push_back(std::move(c));
    return records;
}

std::size_t RecordQueue::consume_for(const RecordFn& fn, std::chrono::milliseconds wait,
                                     std::chrono::milliseconds budget) {
    std::unique_lock lk(m_);
    if (wait.count() > 0)
        cv_.wait_for(lk, wait, [&] { return !full_.empty() || closed_; });
    const auto t0 = QueueClock::now();
    std::size_t n = 0;
    while (!full_.empty()) {
        n += take_one(lk, fn);
        if (budget.count() > 0 && QueueClock::now() - t0 >= budget)
            break;
    }
    return n;
}

std::size_t RecordQueue::consume_until(uint64_t m, const RecordFn& fn) {
    std::unique_lock lk(m_);
    std::size_t n = 0;
    while (true) {
        cv_.wait(lk, [&] { return !full_.empty() || mark_ >= m || closed_; });
        if (full_.empty())
            return n; // the mark reached (or the producer gone), nothing before it left
        n += take_one(lk, fn);
    }
}

RecordQueue::Stats RecordQueue::stats() const {
    std::lock_guard lk(m_);
    return stats_;
}

// --- the loader -----------------------------------------------------------------

Result<std::unique_ptr<Loader>> Loader::open(const LoaderOptions& opts) {
    std::unique_ptr<Loader> l(new Loader(opts));
    ::kextrace_bpf* skel = kextrace_bpf__open();
    if (!skel)
        return Error{fmt::format("opening the BPF object: {}", errstr(errno))};
    l->skel_.reset(skel);
    return l;
}

Loader::~Loader() {
    abandon_draining();
    detach();
}

Loader::Fd::~Fd() {
    if (fd >= 0)
        ::close(fd);
}

Status Loader::configure(const ProbePlan& plan) {
    auto* ro = skel_->rodata;
    const ProbeConfig& c = plan.config;
    ro->insert_pte_arg = c.insert_pte_arg;
    ro->insert_page_arg = c.insert_page_arg;
    ro->insert_addr_arg = c.insert_addr_arg;
    ro->driver_pages = opts_.driver_pages;
    ro->tracer_tgid = static_cast<uint32_t>(::getpid());
    ro->rmap_add_page_arg = c.rmap_add_page_arg;
    ro->rmap_remove_page_arg = c.rmap_remove_page_arg;
    ro->dirty_page_arg = c.dirty_page_arg;
    ro->set_pte_page_arg = c.set_pte_page_arg;
    ro->set_pte_addr_arg = c.set_pte_addr_arg;
    ro->unmap_mode = c.unmap_mode;
    ro->vmemmap_base_addr = c.vmemmap_base_addr;
    ro->fexit_probes = c.fexit_probes;
    ro->fault_all_pages = opts_.fault_all_pages;
    ro->capture_stacks = opts_.stacks;
    ro->trace_all = opts_.trace_all;
    ro->wakeup_bytes = opts_.ringbuf_bytes / 4;

    if (int err = bpf_map__set_max_entries(skel_->maps.events, opts_.ringbuf_bytes))
        return Error{fmt::format("ring buffer size {}: {}", opts_.ringbuf_bytes, errstr(err))};
    if (int err = bpf_map__set_max_entries(skel_->maps.traced, opts_.max_traced))
        return Error{fmt::format("traced map size {}: {}", opts_.max_traced, errstr(err))};
    for (bpf_map* m : {skel_->maps.pages, skel_->maps.pfns})
        if (int err = bpf_map__set_max_entries(m, opts_.max_pages))
            return Error{fmt::format("map size {}: {}", opts_.max_pages, errstr(err))};

    for (uint32_t id = 0; id < KEX_P_COUNT; id++) {
        const ProbeSpec& spec = probe_spec(id);
        bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, spec.prog);
        if (!prog)
            return Error{fmt::format("BPF program {} missing from the object", spec.prog)};
        results_[id].planned = plan.enabled[id];
        results_[id].target = plan.target[id];
        bool fexit = plan.enabled[id] && plan.kind[id] == ProbeKind::fexit;
        if (fexit && !spec.fexit_prog)
            return Error{fmt::format("probe {} has no fexit program", spec.short_name)};
        bpf_program__set_autoload(prog, plan.enabled[id] && !fexit);
        if (!spec.fexit_prog)
            continue;
        bpf_program* fprog = bpf_object__find_program_by_name(skel_->obj, spec.fexit_prog);
        if (!fprog)
            return Error{fmt::format("BPF program {} missing from the object", spec.fexit_prog)};
        bpf_program__set_autoload(fprog, fexit);
        // the trampoline's function: BTF resolves it at load
        if (fexit)
            if (int err = bpf_program__set_attach_target(fprog, 0, plan.target[id].c_str()))
                return Error{fmt::format("fexit target {}: {}", plan.target[id], errstr(err))};
    }
    return Ok{};
}

Status Loader::load() {
    if (int err = kextrace_bpf__load(skel_.get()))
        return Error{fmt::format("loading the BPF programs: {} (run with -v for the verifier log)",
                                 errstr(err))};
    return Ok{};
}

Status Loader::attach_one(uint32_t id, const ProbePlan& plan) {
    const ProbeSpec& spec = probe_spec(id);
    bpf_program* prog = bpf_object__find_program_by_name(skel_->obj, spec.prog);
    const std::string& target = plan.target[id];
    bpf_link* link = nullptr;

    switch (plan.kind[id]) {
    case ProbeKind::kprobe:
    case ProbeKind::kretprobe: {
        bool ret = plan.kind[id] == ProbeKind::kretprobe;
        if (opts_.kprobe_mode == KprobeMode::tracefs && opts_.tracefs) {
            std::string event = fmt::format("kextrace_{}_{}", ::getpid(), spec.short_name);
            auto kp = TracefsKprobe::create(*opts_.tracefs, event, target, ret);
            if (!kp)
                return kp.error();
            int pfd = perf_event_open_tracepoint((*kp)->id());
            if (pfd < 0)
                return Error{fmt::format("perf_event_open for {}: {}", event, errstr(errno))};
            link = bpf_program__attach_perf_event(prog, pfd);
            if (!link) {
                int err = errno;
                ::close(pfd);
                kprobes_.push_back(std::move(*kp));
                return Error{fmt::format("attach to {}: {}", event, errstr(err))};
            }
            results_[id].kprobe_event = event;
            kprobes_.push_back(std::move(*kp));
        } else {
            LIBBPF_OPTS(bpf_kprobe_opts, kopts, .retprobe = ret);
            link = bpf_program__attach_kprobe_opts(prog, target.c_str(), &kopts);
        }
        break;
    }
    case ProbeKind::tracepoint: {
        std::string sys = target.substr(0, target.find('/'));
        std::string name = target.substr(target.find('/') + 1);
        link = bpf_program__attach_tracepoint(prog, sys.c_str(), name.c_str());
        break;
    }
    case ProbeKind::tp_btf:
        link = bpf_program__attach(prog);
        break;
    case ProbeKind::fexit:
        prog = bpf_object__find_program_by_name(skel_->obj, spec.fexit_prog);
        link = bpf_program__attach(prog);
        break;
    case ProbeKind::usdt: {
        std::vector<std::string> failed;
        for (const UsdtProbe& p : rig_usdt_probes()) {
            LIBBPF_OPTS(bpf_usdt_opts, uopts, .usdt_cookie = p.phase);
            bpf_link* l =
                bpf_program__attach_usdt(prog, -1, target.c_str(), "kex_rig", p.name, &uopts);
            if (!l) {
                failed.push_back(fmt::format("{} ({})", p.name, errstr(errno)));
                continue;
            }
            links_.emplace_back(l);
            results_[id].usdt_attached++;
        }
        if (results_[id].usdt_attached == 0)
            return Error{fmt::format("no kex_rig probe in {}: {}", target,
                                     failed.empty() ? "" : failed.front())};
        if (!failed.empty()) {
            std::string msg = "not attached:";
            for (const auto& f : failed)
                msg += " " + f;
            results_[id].error = msg;
        }
        return Ok{};
    }
    }
    if (!link)
        return Error{fmt::format("attach {} to {}: {}",
                                 plan.kind[id] == ProbeKind::fexit ? spec.fexit_prog : spec.prog,
                                 target, errstr(errno))};
    links_.emplace_back(link);
    return Ok{};
}

void Loader::attach(const ProbePlan& plan) {
    if (opts_.kprobe_mode == KprobeMode::tracefs && opts_.tracefs)
        remove_stale_kprobes(*opts_.tracefs);
    for (uint32_t id = 0; id < KEX_P_COUNT; id++) {
        if (!plan.enabled[id])
            continue;
        Status st = attach_one(id, plan);
        link_probes_.resize(links_.size(), id);
        results_[id].attached = st.ok();
        if (!st) {
            results_[id].error = st.error().message;
            spdlog::debug("probe {}: {}", probe_spec(id).short_name, st.error().message);
        }
    }
}

Status Loader::trace_tgid(uint32_t tgid) {
    uint64_t any_instance = 0; // seeded: removed at the free of whichever leader has tgid
    if (bpf_map__update_elem(skel_->maps.traced, &tgid, sizeof(tgid), &any_instance,
                             sizeof(any_instance), BPF_ANY))
        return Error{fmt::format("adding tgid {} to the traced map: {}", tgid, errstr(errno))};
    return Ok{};
}

Status Loader::open_ring_buffer(SampleFn on_sample) {
    on_sample_ = std::move(on_sample);
    queue_ = std::make_unique<RecordQueue>();
    // On the drain thread: copy, nothing else (no decoding, no logging).
    auto cb = [](void* ctx, void* data, size_t size) -> int {
        auto* self = static_cast<Loader*>(ctx);
        std::span<const std::byte> rec(static_cast<const std::byte*>(data), size);
        rec = trim_record(rec);
        return self->queue_->push(rec, self->drain_stop_, self->drain_threaded_) ? 0 : -ECANCELED;
    };
    ring_buffer* rb = ring_buffer__new(bpf_map__fd(skel_->maps.events), cb, this, nullptr);
    if (!rb)
        return Error{fmt::format("ring buffer: {}", errstr(errno))};
    rb_.reset(rb);
    return Ok{};
}

Status Loader::start_draining(std::chrono::milliseconds interval, std::size_t queue_limit_bytes) {
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
        if (::epoll_ctl(ep.fd, EPOLL_CTL_ADD, bpf_map__fd(skel_->maps.events), &ev) < 0)
            return Error{fmt::format("epoll_ctl (ring buffer): {}", errstr(errno))};
        ev.data.u32 = 1;
        if (::epoll_ctl(ep.fd, EPOLL_CTL_ADD, wake.fd, &ev) < 0)
            return Error{fmt::format("epoll_ctl (eventfd): {}", errstr(errno))};
        std::swap(epoll_fd_.fd, ep.fd);
        std::swap(wake_fd_.fd, wake.fd);
    }
    queue_->set_limit(queue_limit_bytes);
    queue_->reopen();
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

void Loader::wake_drainer() const {
    uint64_t one = 1;
    (void)!::write(wake_fd_.fd, &one, sizeof(one));
}

void Loader::drain_loop(std::stop_token stop, std::chrono::milliseconds interval) {
    drain_stop_ = stop;
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
            if (!queue_->mark(want, stop))
                break; // stopped while held at the queue limit
            done = want;
            if (finishing)
                break;
        }
    } catch (const std::exception& e) {
        drain_error_ = e.what();
    }
    queue_->close(); // after drain_error_: the consumer reads it once it saw the close
}

void Loader::check_drainer() const {
    if (queue_->closed() && !drain_error_.empty())
        throw FatalError("drain thread: " + drain_error_);
}

void Loader::finish_draining() {
    if (!drainer_.joinable())
        return;
    finish_requested_.store(true, std::memory_order_release);
    wake_drainer();
    queue_->consume_until(RecordQueue::kClosed,
                          [this](std::span<const std::byte> rec) { on_sample_(rec); });
    drainer_.join();
    drain_threaded_ = false;
    drain_stop_ = {};
    RecordQueue::Stats q = queue_->stats();
    spdlog::debug("drain thread: {} records ({} bytes) copied; queue peak {} records, {} bytes; "
                  "{} chunks of {} KiB{}",
                  q.records, q.bytes, q.peak_records, q.peak_bytes, q.chunks,
                  RecordQueue::kChunkBytes >> 10,
                  q.limit_waits ? fmt::format("; held at the queue limit {} times", q.limit_waits)
                                : std::string());
    check_drainer();
}

void Loader::abandon_draining() noexcept {
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

int Loader::drain(int poll_ms) {
    if (!rb_)
        return 0;
    auto handler = [this](std::span<const std::byte> rec) { on_sample_(rec); };
    std::size_t n;
    if (!drainer_.joinable()) {
        // no drain thread: consume here, then hand over (never waiting for the limit)
        int p = poll_ms > 0 ? ring_buffer__poll(rb_.get(), poll_ms) : 0;
        int c = ring_buffer__consume(rb_.get());
        (void)queue_->flush({}, false);
        n = queue_->consume_for(handler, {});
        if (p == -ECANCELED || c == -ECANCELED)
            throw FatalError("copying ring buffer records: out of memory");
        return static_cast<int>(n);
    }
    if (poll_ms > 0) {
        n = queue_->consume_for(handler, std::chrono::milliseconds(poll_ms),
                                std::chrono::milliseconds(poll_ms));
    } else {
        uint64_t mark = sync_requested_.fetch_add(1, std::memory_order_acq_rel) + 1;
        wake_drainer();
        n = queue_->consume_until(mark, handler);
    }
    check_drainer();
    return static_cast<int>(n);
}

RecordQueue::Stats Loader::queue_stats() const {
    return queue_ ? queue_->stats() : RecordQueue::Stats{};
}

namespace {
// an ARRAY map of N u64 counters, one lookup per slot (a slot that cannot be
// read stays 0)
template <std::size_t N> std::array<uint64_t, N> read_counters(const bpf_map* m) {
    std::array<uint64_t, N> out{};
    for (uint32_t i = 0; i < N; i++) {
        uint64_t v = 0;
        if (bpf_map__lookup_elem(m, &i, sizeof(i), &v, sizeof(v), 0) == 0)
            out[i] = v;
    }
    return out;
}
} // namespace

std::array<uint64_t, KEX_LOSS_SLOTS> Loader::read_losses() const {
    return read_counters<KEX_LOSS_SLOTS>(skel_->maps.losses);
}

std::array<uint64_t, KEX_TRACK_SLOTS> Loader::read_tracking() const {
    return read_counters<KEX_TRACK_SLOTS>(skel_->maps.tracking);
}

uint32_t Loader::traced_entries() const {
    uint32_t key = 0, next = 0, n = 0;
    const uint32_t* prev = nullptr;
    int fd = bpf_map__fd(skel_->maps.traced);
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        n++;
        key = next;
        prev = &key;
    }
    return n;
}

std::array<uint64_t, KEX_LOSS_SLOTS> Loader::read_produced() const {
    std::array<uint64_t, KEX_LOSS_SLOTS> out{};
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        return out;
    std::vector<uint64_t> per_cpu(ncpu);
    for (uint32_t i = 0; i < KEX_LOSS_SLOTS; i++) {
        if (bpf_map__lookup_elem(skel_->maps.produced, &i, sizeof(i), per_cpu.data(),
                                 per_cpu.size() * sizeof(uint64_t), 0))
            continue;
        for (uint64_t v : per_cpu)
            out[i] += v;
    }
    return out;
}

std::array<kex_probe_stats, KEX_P_COUNT> Loader::read_probe_stats() const {
    std::array<kex_probe_stats, KEX_P_COUNT> out{};
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        return out;
    std::vector<kex_probe_stats> per_cpu(ncpu);
    for (uint32_t i = 0; i < KEX_P_COUNT; i++) {
        if (bpf_map__lookup_elem(skel_->maps.probe_stats, &i, sizeof(i), per_cpu.data(),
                                 per_cpu.size() * sizeof(kex_probe_stats), 0))
            continue;
        for (const auto& s : per_cpu) {
            out[i].hits += s.hits;
            out[i].matched += s.matched;
            out[i].emitted += s.emitted;
        }
    }
    return out;
}

std::optional<std::array<uint64_t, KEX_P_COUNT>> Loader::read_kprobe_missed() const {
    if (opts_.kprobe_mode != KprobeMode::tracefs || !opts_.tracefs)
        return std::nullopt;
    auto profile = opts_.tracefs->kprobe_profile();
    std::array<uint64_t, KEX_P_COUNT> out{};
    for (uint32_t i = 0; i < KEX_P_COUNT; i++) {
        if (results_[i].kprobe_event.empty())
            continue;
        if (auto it = profile.find(results_[i].kprobe_event); it != profile.end())
            out[i] = it->second.missed;
    }
    return out;
}

void Loader::detach(const std::function<void()>& before_frees) {
    // Each detach waits for an RCU grace period: under load in the TCG guest
    // they took seconds together (the last event of each probe says when it
    // went). In probe id order, kmem:mm_page_free went before
    // kex:kex_page_free, and every page kex freed in between looked leaked.
    link_probes_.resize(links_.size(), KEX_P_COUNT);
    auto detach_if = [this](auto&& pred) {
        for (std::size_t i = 0; i < links_.size(); ++i)
            if (links_[i] && pred(link_probes_[i]))
                links_[i].reset();
    };
    // No new page lives (nor faults on pages whose life the trace missed).
    detach_if([](uint32_t id) {
        return id == KEX_P_KEX_PAGE_ALLOC || id == KEX_P_MM_PAGE_ALLOC || id == KEX_P_KEX_FAULT ||
               id == KEX_P_KEX_MMAP || id == KEX_P_KEX_MMAP_MODE;
    });
    detach_if(
        [](uint32_t id) { return id != KEX_P_MM_PAGE_FREE && id != KEX_P_MM_PAGE_FREE_BATCHED; });
    kprobes_.clear(); // after their links: a tracefs kprobe in use cannot be removed
    if (before_frees)
        before_frees();
    links_.clear();
    link_probes_.clear();
}

} // namespace kextrace
