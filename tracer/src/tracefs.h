// tracefs.h - what the kernel's tracing file system says: which tracepoints
// exist, their field layouts ("format" files), and the kprobe_events /
// kprobe_profile interface for tracefs-created (legacy) kprobes, whose missed
// counts the kernel exposes per probe. Every function takes the root path so
// tests can point it at fixture trees.
#pragma once

#include "text_file.h"

#include "error.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace kextrace {

struct TpField {
    std::size_t offset = 0;
    std::size_t size = 0;
    bool is_signed = false;
};

// The fields of one tracepoint, by name ("common_pid", "vm_start", ...).
using TpFormat = std::map<std::string, TpField>;

// Parses the text of events/<sys>/<name>/format.
TpFormat parse_tp_format(std::string_view text);

struct KprobeProfile {
    uint64_t hits = 0;
    uint64_t missed = 0;
};
// Parses kprobe_profile: "  <event>  <hits>  <missed>" per line, keyed by event.
std::map<std::string, KprobeProfile> parse_kprobe_profile(std::string_view text);

class Tracefs {
  public:
    // /sys/kernel/tracing if it has events/, else /sys/kernel/debug/tracing.
    static std::optional<Tracefs> find();
    explicit Tracefs(std::string root) : root_(std::move(root)) {}

    const std::string& root() const { return root_; }
    bool has_event(std::string_view sys, std::string_view name) const;
    bool has_system(std::string_view sys) const;
    std::optional<TpFormat> format(std::string_view sys, std::string_view name) const;
    // kprobe_events exists and is writable by us.
    bool kprobe_events_writable() const;
    Status write_kprobe_events(const std::string& line) const;
    std::optional<int> event_id(std::string_view sys, std::string_view name) const;
    std::map<std::string, KprobeProfile> kprobe_profile() const;

  private:
    std::string root_;
};

} // namespace kextrace
