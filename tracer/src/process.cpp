// process.cpp - see process.h.
#include "process.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>

namespace kextrace {

namespace {
using Clock = std::chrono::steady_clock;
} // namespace

// --- the held child -----------------------------------------------------------

Result<HeldChild> HeldChild::spawn(const std::vector<std::string>& argv) {
    if (argv.empty())
        return Error{"no command"};
    int go[2], err[2];
    if (::pipe2(go, O_CLOEXEC) < 0)
        return Error{fmt::format("pipe: {}", std::strerror(errno))};
    if (::pipe2(err, O_CLOEXEC) < 0) {
        ::close(go[0]);
        ::close(go[1]);
        return Error{fmt::format("pipe: {}", std::strerror(errno))};
    }
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid < 0) {
        int e = errno;
        for (int fd : {go[0], go[1], err[0], err[1]})
            ::close(fd);
        return Error{fmt::format("fork: {}", std::strerror(e))};
    }
    if (pid == 0) {
        // child: only async-signal-safe calls from here on
        ::close(go[1]);
        ::close(err[0]);
        char c;
        ssize_t n;
        do
            n = ::read(go[0], &c, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1)
            ::_exit(126); // kextrace gave up before releasing us
        ::close(go[0]);
        ::signal(SIGINT, SIG_DFL);
        ::signal(SIGTERM, SIG_DFL);
        ::signal(SIGPIPE, SIG_DFL); // ignored by kextrace, not by the command
        ::execvp(args[0], args.data());
        int e = errno;
        (void)!::write(err[1], &e, sizeof(e));
        ::_exit(127);
    }
    ::close(go[0]);
    ::close(err[1]);
    return HeldChild(pid, go[1], err[0]);
}

HeldChild::HeldChild(HeldChild&& o) noexcept
    : pid_(o.pid_), go_fd_(o.go_fd_), err_fd_(o.err_fd_), status_(o.status_) {
    o.pid_ = -1;
    o.go_fd_ = o.err_fd_ = -1;
}

HeldChild::~HeldChild() {
    if (go_fd_ >= 0)
        ::close(go_fd_); // never released: the child sees EOF and exits 126
    if (err_fd_ >= 0)
        ::close(err_fd_);
    if (pid_ > 0 && !status_) {
        int st;
        if (::waitpid(pid_, &st, WNOHANG) == 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &st, 0);
        }
    }
}

Status HeldChild::release() {
    char c = 'g';
    if (::write(go_fd_, &c, 1) != 1)
        return Error{fmt::format("releasing the command: {}", std::strerror(errno))};
    ::close(go_fd_);
    go_fd_ = -1;
    // EOF (exec closed the CLOEXEC end) = success; an int = exec's errno
    int e = 0;
    ssize_t n;
    do
        n = ::read(err_fd_, &e, sizeof(e));
    while (n < 0 && errno == EINTR);
    ::close(err_fd_);
    err_fd_ = -1;
    if (n == sizeof(e))
        return Error{std::strerror(e)};
    return Ok{};
}

std::optional<int> HeldChild::poll_exit() {
    if (status_)
        return status_;
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_)
        status_ = st;
    return status_;
}

int HeldChild::wait(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (!poll_exit()) {
        if (Clock::now() >= deadline) {
            ::kill(pid_, SIGKILL);
            int st;
            ::waitpid(pid_, &st, 0);
            status_ = st;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return *status_;
}

std::string resolve_on_path(const std::string& argv0) {
    auto usable = [](const std::string& p) {
        struct stat st;
        return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
    };
    if (argv0.find('/') != std::string::npos)
        return usable(argv0) ? argv0 : "";
    const char* path = std::getenv("PATH");
    std::string p = path ? path : "/usr/local/bin:/usr/bin:/bin";
    std::size_t pos = 0;
    while (pos <= p.size()) {
        std::size_t c = p.find(':', pos);
        std::string dir = p.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
        std::string cand = (dir.empty() ? "." : dir) + "/" + argv0;
        if (usable(cand))
            return cand;
        if (c == std::string::npos)
            break;
        pos = c + 1;
    }
    return "";
}

std::vector<int> process_tree(int pid, const std::string& proc) {
    std::multimap<int, int> children; // ppid -> pid
    if (DIR* d = ::opendir(proc.c_str())) {
        while (dirent* e = ::readdir(d)) {
            int p = std::atoi(e->d_name);
            if (p <= 0)
                continue;
            char path[64];
            std::snprintf(path, sizeof(path), "%s/%d/stat", proc.c_str(), p);
            FILE* f = std::fopen(path, "r");
            if (!f)
                continue;
            char buf[512];
            size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
            std::fclose(f);
            buf[n] = 0;
            // "pid (comm) S ppid ...": comm may hold spaces and ')'
            const char* rp = std::strrchr(buf, ')');
            int ppid = 0;
            char state;
            if (rp && std::sscanf(rp + 1, " %c %d", &state, &ppid) == 2)
                children.emplace(ppid, p);
        }
        ::closedir(d);
    }
    std::vector<int> out{pid};
    for (std::size_t i = 0; i < out.size(); i++) {
        auto [b, e] = children.equal_range(out[i]);
        for (auto it = b; it != e; ++it)
            out.push_back(it->second);
    }
    return out;
}

std::string describe_wait_status(int status) {
    if (WIFEXITED(status))
        return fmt::format("exit status {}", WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return fmt::format("killed by signal {} ({})", WTERMSIG(status),
                           sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    return fmt::format("wait status {:#x}", status);
}

int exit_code_of(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

} // namespace kextrace
