// session.h - one tracing run: start the command held on a pipe (or adopt a
// running process), release it once every probe is attached, drain the ring
// buffer while it runs, and after it exits drain, settle, drain again.
// The ring is drained on the loader's drain thread (started and joined here);
// the records are handed to the sample function on the session's thread.
//
//   HeldChild child = HeldChild::spawn(cmd)      // forked, waiting on a pipe
//   loader.trace_tgid(child.pid()); loader.attach(plan);
//   child.release();                              // execs CMD now
//   Session(loader, opts).run(&child)             // until exit / signal / --duration
#pragma once

#include "error.h"
#include "loader.h"
#include "process.h"

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>

namespace kextrace {

struct SessionOptions {
    std::optional<std::chrono::duration<double>> duration;
    std::chrono::milliseconds settle{150};
    std::chrono::milliseconds drain_interval{50};
    // Debugging: the drain thread waits while this many record bytes are
    // queued (0: unbounded), so a stalled consumer loses events again.
    std::size_t queue_limit_bytes = 0;
    // Polled after every drain: true ends the session early (an output
    // stream failed); the command is stopped as on SIGTERM.
    std::function<bool()> abort;
};

struct SessionResult {
    std::optional<int> wait_status; // the command's, when it ran and exited
    bool interrupted = false;       // SIGINT / SIGTERM
    int signal = 0;
    bool while_attaching = false; // interrupted before the command was released
    bool timed_out = false;       // --duration
    bool target_gone = false;     // -p: the process exited
    bool module_gone = false;     // --all: the watched module was unloaded
    bool aborted = false;         // SessionOptions::abort said so
};

// Installs SIGINT/SIGTERM handlers that ask the session to stop (no SA_RESTART).
void install_stop_handlers();
// SIGPIPE ignored: a write to a closed pipe or FIFO fails with EPIPE, which
// the writer reports, instead of killing kextrace with its probes attached.
// (HeldChild restores the default for the command.)
void ignore_sigpipe();
bool stop_requested();
int stop_signal();

class Session {
  public:
    Session(Loader& loader, SessionOptions opts) : loader_(loader), opts_(opts) {}
    // Command mode: runs until the child exits (then settles) or a stop.
    SessionResult run(HeldChild& child);
    // -p mode: runs until pid exits, --duration or a stop.
    SessionResult run_attached(int pid);
    // --all mode: runs until a stop, --duration, or gone() says the watched
    // module is gone (polled at every drain).
    SessionResult run_system(const std::function<bool()>& gone);

  private:
    // Drains until done(r) says the traced target ended (and sets why in r),
    // a stop signal, an abort or --duration.
    SessionResult wait(const std::function<bool(SessionResult&)>& done);
    void settle();
    Loader& loader_;
    SessionOptions opts_;
};

} // namespace kextrace
