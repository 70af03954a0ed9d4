// environment.cpp - see environment.h.
#include "environment.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <memory>

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

namespace kextrace {

namespace {

bool exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

bool has_cap(const __user_cap_data_struct (&d)[2], int cap) {
    return (d[cap / 32].effective & (1u << (cap % 32))) != 0;
}

} // namespace

std::function<std::optional<std::vector<std::string>>(std::string_view)>
btf_function_params(const std::string& path) {
    std::shared_ptr<btf> b(btf__parse(path.c_str(), nullptr), btf__free);
    if (!b)
        return {};
    return [b](std::string_view name) -> std::optional<std::vector<std::string>> {
        std::string n(name);
        int id = btf__find_by_name_kind(b.get(), n.c_str(), BTF_KIND_FUNC);
        if (id <= 0)
            return std::nullopt;
        const btf_type* fn = btf__type_by_id(b.get(), id);
        const btf_type* proto = fn ? btf__type_by_id(b.get(), fn->type) : nullptr;
        if (!proto || !btf_is_func_proto(proto))
            return std::nullopt;
        std::vector<std::string> names;
        const btf_param* p = btf_params(proto);
        for (unsigned i = 0; i < btf_vlen(proto); i++) {
            const char* pn = btf__name_by_offset(b.get(), p[i].name_off);
            names.emplace_back(pn ? pn : "");
        }
        return names;
    };
}

Status check_privileges() {
    // The effective capabilities, not the uid: root with a reduced bounding set
    // (a container, setpriv) cannot load BPF either.
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &hdr, data) == 0 &&
        ((has_cap(data, CAP_BPF) && has_cap(data, CAP_PERFMON)) || has_cap(data, CAP_SYS_ADMIN)))
        return Ok{};
    return Error{fmt::format("kextrace needs root, or CAP_BPF and CAP_PERFMON (and CAP_SYS_ADMIN "
                             "for tracefs kprobes){}: run it with sudo",
                             ::geteuid() == 0 ? " (running as root, but without them)" : "")};
}

Status check_btf(const std::string& path) {
    if (exists(path))
        return Ok{};
    return Error{fmt::format("no {}: this kernel was built without CONFIG_DEBUG_INFO_BTF, so the "
                             "CO-RE programs cannot be relocated",
                             path)};
}

std::string kernel_release() {
    utsname u{};
    ::uname(&u);
    return u.release;
}

std::optional<Tracefs> find_or_mount_tracefs() {
    if (auto t = Tracefs::find())
        return t;
    if (::mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, nullptr) == 0)
        return Tracefs::find();
    return std::nullopt;
}

std::set<std::string> read_kprobe_blacklist(const std::string& path) {
    std::set<std::string> out;
    std::ifstream in(path);
    std::string range, name;
    while (in >> range >> name)
        out.insert(name);
    return out;
}

KernelFacts probe_kernel(const std::optional<Tracefs>& tracefs) {
    KernelFacts f;
    f.release = kernel_release();
    f.btf = exists("/sys/kernel/btf/vmlinux");
    if (f.btf)
        f.btf_func_params = btf_function_params("/sys/kernel/btf/vmlinux");
    f.modules = exists("/proc/modules"); // absent without CONFIG_MODULES
    bool pmu = exists("/sys/bus/event_source/devices/kprobe");
    bool tfs = tracefs && exists(tracefs->root() + "/kprobe_events");
    f.kprobes = pmu || tfs;
    if (!f.kprobes)
        f.no_kprobes_reason = "no kprobe PMU in /sys/bus/event_source/devices, no kprobe_events "
                              "in tracefs: CONFIG_KPROBES is off";
    if (tracefs) {
        Tracefs t = *tracefs;
        f.has_tracepoint = [t](std::string_view sys, std::string_view name) {
            return t.has_event(sys, name);
        };
        f.tp_format = [t](std::string_view sys, std::string_view name) {
            return t.format(sys, name);
        };
    } else {
        f.has_tracepoint = [](std::string_view, std::string_view) { return false; };
    }
    f.kprobe_blacklist = read_kprobe_blacklist("/sys/kernel/debug/kprobes/blacklist");
    if (tracefs) {
        if (auto text = read_text_file(tracefs->root() + "/available_filter_functions"))
            f.traceable = parse_traceable_functions(*text);
    }
    return f;
}

} // namespace kextrace
