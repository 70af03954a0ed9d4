// session.cpp - see session.h.
#include "session.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <spdlog/spdlog.h>

namespace kextrace {

namespace {

volatile sig_atomic_t g_stop_signal = 0;

void on_stop(int sig) {
    g_stop_signal = sig;
}

using Clock = std::chrono::steady_clock;

// The loader's drain thread for one session: started here, finished by
// Session::settle(), stopped and joined when the session unwinds.
class DrainThread {
  public:
    DrainThread(Loader& loader, const SessionOptions& opts) : loader_(loader) {
        if (auto st = loader_.start_draining(opts.drain_interval, opts.queue_limit_bytes); !st)
            spdlog::warn("{}: draining the ring buffer on the main thread", st.error().message);
    }
    ~DrainThread() { loader_.abandon_draining(); }
    DrainThread(const DrainThread&) = delete;
    DrainThread& operator=(const DrainThread&) = delete;

  private:
    Loader& loader_;
};

} // namespace

void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: poll() returns EINTR
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

void ignore_sigpipe() {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, nullptr);
}

bool stop_requested() {
    return g_stop_signal != 0;
}
int stop_signal() {
    return g_stop_signal;
}

// --- the session ------------------------------------------------------------------

void Session::settle() {
    // deferred frees (TLB batching, RCU, the file's release) land shortly after exit
    loader_.drain();
    auto until = Clock::now() + opts_.settle;
    while (Clock::now() < until) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        loader_.drain(static_cast<int>(std::max<long>(1, std::min<long>(left.count(), 20))));
    }
    // The drain thread empties the ring and exits; its last records are handed over.
    loader_.finish_draining();
    loader_.drain(); // without the thread (it could not start): the ring, here
}

SessionResult Session::wait(const std::function<bool(SessionResult&)>& done) {
    SessionResult r;
    auto start = Clock::now();
    while (true) {
        loader_.drain(static_cast<int>(opts_.drain_interval.count()));
        if (done(r))
            break;
        if (stop_requested()) {
            r.interrupted = true;
            r.signal = stop_signal();
            break;
        }
        if (opts_.abort && opts_.abort()) {
            r.aborted = true;
            break;
        }
        if (opts_.duration && Clock::now() - start >= *opts_.duration) {
            r.timed_out = true;
            break;
        }
    }
    return r;
}

SessionResult Session::run(HeldChild& child) {
    DrainThread drainer(loader_, opts_);
    SessionResult r = wait([&child](SessionResult& r) {
        r.wait_status = child.poll_exit();
        return r.wait_status.has_value();
    });
    if (!r.wait_status) {
        // stopping early: the command goes too (it was started for the trace)
        int sig = r.signal ? r.signal : SIGTERM;
        spdlog::debug("stopping the command (pid {}) with signal {}", child.pid(), sig);
        ::kill(child.pid(), sig);
        r.wait_status = child.wait(std::chrono::seconds(2));
    }
    settle();
    return r;
}

SessionResult Session::run_attached(int pid) {
    DrainThread drainer(loader_, opts_);
    SessionResult r = wait([pid](SessionResult& r) {
        r.target_gone = ::kill(pid, 0) < 0 && errno == ESRCH;
        return r.target_gone;
    });
    settle();
    return r;
}

SessionResult Session::run_system(const std::function<bool()>& gone) {
    DrainThread drainer(loader_, opts_);
    SessionResult r = wait([&gone](SessionResult& r) {
        r.module_gone = gone && gone();
        return r.module_gone;
    });
    settle();
    return r;
}

} // namespace kextrace
