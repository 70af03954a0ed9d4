// tracefs_kprobe.cpp - see tracefs_kprobe.h.
#include "tracefs_kprobe.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace kextrace {

namespace {

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

Result<bpf_link*> attach_tracefs_kprobe(bpf_program* prog, const Tracefs& tfs,
                                        const std::string& event, const std::string& symbol,
                                        bool retprobe,
                                        std::vector<std::unique_ptr<TracefsKprobe>>& kprobes) {
    auto kp = TracefsKprobe::create(tfs, event, symbol, retprobe);
    if (!kp)
        return kp.error();
    int pfd = perf_event_open_tracepoint((*kp)->id());
    if (pfd < 0)
        return Error{fmt::format("perf_event_open for {}: {}", event, errstr(errno))};
    bpf_link* link = bpf_program__attach_perf_event(prog, pfd);
    if (!link) {
        int err = errno;
        ::close(pfd);
        kprobes.push_back(std::move(*kp));
        return Error{fmt::format("attach to {}: {}", event, errstr(err))};
    }
    kprobes.push_back(std::move(*kp));
    return link;
}

} // namespace kextrace
