// driver_filter.h - kextrace --driver NAME / --file PATH: which other drivers'
// mappings are followed (kex's pages are followed whenever kex is loaded).
// A mapping is followed when its owner (kextrace/owner.h: the module, or a
// built-in's name such as af_packet) is one of the names, or its file is one
// of the files. Names and files are checked before the trace starts.
#pragma once

#include "error.h"
#include "ksyms.h"

#include <kextrace/core.h>
#include <kextrace/output.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace {

struct FileId {
    std::string path;  // canonical, or "socket:[N]" / "anon_inode:NAME" as given
    uint64_t ino = 0;  // 0 for the given-as-is names
    uint32_t rdev = 0; // a device node's number (new_encode_dev), else 0
};

struct DriverFilter {
    std::vector<std::string> drivers;
    std::vector<FileId> files;
    bool empty() const { return drivers.empty() && files.empty(); }
    bool follows(const VmaInfo& v, const Symbolizer& symbolize) const;
};

// Checks every name (a loaded module, from /proc/modules' text, or a
// built-in's owner name that the kernel's symbols know) and every file (it
// exists); the error names the value and what to give instead.
Result<DriverFilter> make_driver_filter(const std::vector<std::string>& drivers,
                                        const std::vector<std::string>& files, const Ksyms& ksyms,
                                        std::string_view proc_modules);

} // namespace kextrace
