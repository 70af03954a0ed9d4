// environment.h - start-up checks and facts about the running kernel: who we
// are (root / CAP_BPF+CAP_PERFMON), BTF, tracefs, kprobe support, the kprobe
// blacklist. Everything reads paths, so it can be pointed elsewhere.
#pragma once

#include "error.h"
#include "probe_plan.h"
#include "tracefs.h"

#include <functional>
#include <optional>
#include <set>
#include <string>

namespace kextrace {

// Ok when root or holding CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN for tracefs kprobes).
Status check_privileges();
// Ok when path (default /sys/kernel/btf/vmlinux) exists.
Status check_btf(const std::string& path = "/sys/kernel/btf/vmlinux");
std::string kernel_release();
// tracefs, mounting it at /sys/kernel/tracing if it is not mounted anywhere.
std::optional<Tracefs> find_or_mount_tracefs();
// Function names from a kprobes blacklist file ("0xstart-0xend\tname").
std::set<std::string> read_kprobe_blacklist(const std::string& path);
// KernelFacts::btf_func_params from a BTF file (raw, or an ELF with .BTF);
// empty when it cannot be read.
std::function<std::optional<std::vector<std::string>>(std::string_view)>
btf_function_params(const std::string& path);
// KernelFacts of this machine for the planner.
KernelFacts probe_kernel(const std::optional<Tracefs>& tracefs);

} // namespace kextrace
