// process.h - the processes kextrace starts or watches: the command, held
// before exec until every probe is attached (HeldChild); the PATH lookup that
// finds its binary (for USDT); a process and its descendants (/proc scan);
// wait statuses in words and as exit codes.
#pragma once

#include "error.h"

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace kextrace {

// A forked child blocked before exec until release(); killed if never released.
class HeldChild {
  public:
    static Result<HeldChild> spawn(const std::vector<std::string>& argv);
    HeldChild(HeldChild&&) noexcept;
    HeldChild& operator=(HeldChild&&) = delete;
    ~HeldChild();

    pid_t pid() const { return pid_; }
    // Lets the child exec. Returns the exec error (errno text) if exec failed.
    Status release();
    // waitpid(WNOHANG): the wait status once the child has exited.
    std::optional<int> poll_exit();
    // Blocks up to timeout, then SIGKILLs; returns the wait status.
    int wait(std::chrono::milliseconds timeout);
    bool exited() const { return status_.has_value(); }

  private:
    HeldChild(pid_t pid, int go_fd, int err_fd) : pid_(pid), go_fd_(go_fd), err_fd_(err_fd) {}
    pid_t pid_ = -1;
    int go_fd_ = -1;  // write end: one byte releases the child
    int err_fd_ = -1; // read end: the child's errno if exec fails (CLOEXEC: EOF on success)
    std::optional<int> status_;
};

// Finds argv0 the way execvp would ("" if not found): for USDT attach.
std::string resolve_on_path(const std::string& argv0);
// pid and its living descendants (from /proc/*/stat).
std::vector<int> process_tree(int pid, const std::string& proc = "/proc");

// "exit status 3" / "killed by SIGKILL"
std::string describe_wait_status(int status);
// The shell-style exit code of a wait status: code, or 128 + signal.
int exit_code_of(int status);

} // namespace kextrace
