// leak_context.cpp - see leak_context.h.
#include "leak_context.h"
#include "lines.h"
#include "text_file.h"

#include <kextrace/owner.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace kextrace {

bool module_loaded(const std::string& name, const std::string& sys) {
    return ::access((sys + "/module/" + name).c_str(), F_OK) == 0;
}

std::optional<long> module_refcount(const std::string& name, const std::string& sys) {
    std::ifstream in(sys + "/module/" + name + "/refcnt");
    long n = 0;
    if (!(in >> n))
        return std::nullopt;
    return n;
}

bool process_alive(int pid, const std::string& proc) {
    // gone since the scan (ESRCH), or never there: not running
    const std::string stat =
        read_text_file(proc + "/" + std::to_string(pid) + "/stat").value_or("");
    // "pid (comm) S ...": comm may hold spaces and ')'
    const auto rp = stat.rfind(')');
    if (rp == std::string::npos || rp + 2 >= stat.size())
        return false;
    const char state = stat[rp + 2];
    return state != 'Z' && state != 'X';
}

LeakOptions machine_state(const std::string& module, std::chrono::milliseconds wait,
                          const std::string& sys, const std::string& proc) {
    LeakOptions o;
    const auto until = std::chrono::steady_clock::now() + wait;
    while (true) {
        const auto n = module_refcount(module, sys);
        if (!n) {
            // Unloaded: nothing of it is open. Loaded without a refcnt file
            // (no CONFIG_MODULE_UNLOAD): cannot tell, assume open.
            o.device_closed = !module_loaded(module, sys);
            break;
        }
        if (*n == 0) {
            o.device_closed = true;
            break;
        }
        if (std::chrono::steady_clock::now() >= until) {
            o.device_closed = false;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::error_code ec;
    for (const auto& d : std::filesystem::directory_iterator(proc, ec)) {
        const std::string name = d.path().filename().string();
        uint32_t pid = 0;
        const auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), pid);
        if (err == std::errc() && end == name.data() + name.size() && pid &&
            process_alive(static_cast<int>(pid), proc))
            o.alive.push_back(pid);
    }
    std::sort(o.alive.begin(), o.alive.end());
    return o;
}

namespace {

// The numeric entries of dir (pids, fd numbers).
std::vector<std::string> numeric_entries(const std::string& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& d : std::filesystem::directory_iterator(dir, ec)) {
        std::string name = d.path().filename().string();
        if (!name.empty() &&
            std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
            out.push_back(std::move(name));
    }
    return out;
}

} // namespace

DriverFiles driver_files(const std::string& proc) {
    DriverFiles f;
    const std::string self = std::to_string(::getpid());
    for (const std::string& pid : numeric_entries(proc)) {
        if (pid == self)
            continue;
        const std::string dir = proc + "/" + pid + "/fd";
        for (const std::string& fd : numeric_entries(dir)) {
            struct stat st {};
            if (::stat((dir + "/" + fd).c_str(), &st) == 0)
                f.open_inodes.push_back(st.st_ino);
        }
    }
    std::sort(f.open_inodes.begin(), f.open_inodes.end());
    f.open_inodes.erase(std::unique(f.open_inodes.begin(), f.open_inodes.end()),
                        f.open_inodes.end());
    for (std::string_view line : Lines(read_text_file(proc + "/modules").value_or("")))
        if (auto sp = line.find(' '); sp != std::string_view::npos && sp)
            f.modules.emplace_back(line.substr(0, sp));
    std::sort(f.modules.begin(), f.modules.end());
    return f;
}

std::vector<std::string> driver_holders(const Report& report, const DriverFiles& files,
                                        const Symbolizer& symbolize) {
    std::vector<std::string> out(report.mappings.size());
    for (std::size_t i = 0; i < report.mappings.size(); ++i) {
        const Mapping& m = report.mappings[i];
        if (!m.driver || !m.vma)
            continue;
        const DriverOwner o = mapping_owner(report, m, symbolize);
        if (m.vma->ino &&
            std::binary_search(files.open_inodes.begin(), files.open_inodes.end(), m.vma->ino))
            out[i] = o.name + ": " + (o.file.empty() ? std::string("its file") : o.file) + " open";
        else if (o.module && std::binary_search(files.modules.begin(), files.modules.end(), o.name))
            out[i] = o.name + ": module loaded";
    }
    return out;
}

LeakOptions leak_context(const Report& report, const std::string& module,
                         std::chrono::milliseconds wait, const std::string& sys,
                         const std::string& proc) {
    LeakOptions o = machine_state(module, wait, sys, proc);
    std::vector<uint32_t> owners;
    for (const PageLife& p : report.pages)
        if (p.owner && std::binary_search(o.alive.begin(), o.alive.end(), p.owner))
            owners.push_back(p.owner);
    std::sort(owners.begin(), owners.end());
    owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
    o.alive = std::move(owners);
    return o;
}

} // namespace kextrace
