// leak_context.h - what assess_leaks() needs to know about the machine once
// the trace ended: is any kex file still open anywhere, which page owners
// are still alive.
#pragma once

#include <kextrace/core.h>
#include <kextrace/leaks.h>
#include <kextrace/output.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace kextrace {

// /sys/module/NAME exists (under the given sysfs root, for tests).
bool module_loaded(const std::string& name, const std::string& sys = "/sys");
// /sys/module/NAME/refcnt: open files, VMAs (through their files), attached
// tracepoints; nullopt when the module is not loaded.
std::optional<long> module_refcount(const std::string& name, const std::string& sys = "/sys");
// The process exists and is not a zombie (a zombie has closed its files).
bool process_alive(int pid, const std::string& proc = "/proc");

// The machine's side of the verdicts: the device counts as closed when kex
// is gone or its refcount falls to 0 within `wait` (our tracepoint references
// drop asynchronously); alive = every process running then (not a zombie).
// Read it once kex's tracepoints are detached (they pin kex) but the page
// frees are still traced (Loader::detach's before_frees): a page freed
// before these facts were read then has its free in the trace, however many
// processes keep opening and closing the device meanwhile.
LeakOptions machine_state(const std::string& module = "kex",
                          std::chrono::milliseconds wait = std::chrono::milliseconds(1000),
                          const std::string& sys = "/sys", const std::string& proc = "/proc");
// machine_state(), alive narrowed to the report's page owners.
LeakOptions leak_context(const Report& report, const std::string& module = "kex",
                         std::chrono::milliseconds wait = std::chrono::milliseconds(1000),
                         const std::string& sys = "/sys", const std::string& proc = "/proc");

// What may still free another driver's pages: the inodes of every file open
// in any process (but this one) and the modules loaded, read at the same
// point as machine_state().
struct DriverFiles {
    std::vector<uint64_t> open_inodes; // sorted, unique
    std::vector<std::string> modules;  // sorted
};
DriverFiles driver_files(const std::string& proc = "/proc");
// LeakOptions::driver_holders for the report's driver mappings: the owner
// and its file when that file is open somewhere, else the owner when it is
// a loaded module, else "".
std::vector<std::string> driver_holders(const Report& report, const DriverFiles& files,
                                        const Symbolizer& symbolize);

} // namespace kextrace
