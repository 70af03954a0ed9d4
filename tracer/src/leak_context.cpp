// leak_context.cpp - see leak_context.h.
#include "leak_context.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
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
    std::ifstream in(proc + "/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
