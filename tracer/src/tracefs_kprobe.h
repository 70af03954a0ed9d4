// tracefs_kprobe.h - kprobes made through tracefs kprobe_events (the legacy
// interface, whose missed counts kprobe_profile tells): create one, attach a
// BPF program to its perf tracepoint event, remove it, and remove those a dead
// kextrace left behind.
#pragma once

#include "error.h"
#include "tracefs.h"

#include <memory>
#include <string>
#include <vector>

struct bpf_link;
struct bpf_program;

namespace kextrace {

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

// Creates the kprobe `event` (kextrace_<pid>_<probe>) on symbol and attaches
// prog to its perf event. The kprobe goes to `kprobes` once prog's attach was
// tried, attached or not: it is removed after the links, at detach.
Result<bpf_link*> attach_tracefs_kprobe(bpf_program* prog, const Tracefs& tfs,
                                        const std::string& event, const std::string& symbol,
                                        bool retprobe,
                                        std::vector<std::unique_ptr<TracefsKprobe>>& kprobes);

} // namespace kextrace
