// driver_filter.cpp - see driver_filter.h.
#include "driver_filter.h"
#include "lines.h"

#include <kextrace/owner.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fmt/format.h>

namespace kextrace {

namespace {

std::vector<std::string> module_names(std::string_view proc_modules) {
    std::vector<std::string> out;
    for (std::string_view line : Lines(proc_modules))
        if (auto sp = line.find(' '); sp != std::string_view::npos && sp > 0)
            out.emplace_back(line.substr(0, sp));
    return out;
}

// A built-in owner name as owner.cpp makes it: its file operations without
// the suffix, its mmap handler without "_mmap", a socket family's "af_" name.
bool builtin_owner(std::string_view name, const Ksyms& ksyms) {
    const std::string n(name);
    for (const char* suffix : {"_fops", "_file_operations", "_file_ops", "_ops", "_mmap"})
        if (ksyms.find(n + suffix))
            return true;
    return name.starts_with("af_") && ksyms.find(n.substr(3) + "_mmap");
}

uint32_t new_encode_dev(dev_t d) {
    const uint32_t maj = major(d), min = minor(d);
    return (min & 0xff) | (maj << 8) | ((min & ~0xffu) << 12);
}

} // namespace

bool DriverFilter::follows(const VmaInfo& v, const Symbolizer& symbolize) const {
    if (!drivers.empty()) {
        const DriverOwner o = driver_owner(v, {}, symbolize);
        if (std::find(drivers.begin(), drivers.end(), o.name) != drivers.end())
            return true;
    }
    const std::string shown = vma_file_name(v);
    for (const FileId& f : files) {
        if (f.rdev && v.rdev == f.rdev)
            return true;
        if (!f.ino && shown == f.path)
            return true;
        // a regular file: its inode, and the name as far as the walk went
        const std::string_view tail =
            std::string_view(shown).substr(shown.starts_with("...") ? 3 : 0);
        if (f.ino && v.ino == f.ino && !tail.empty() && f.path.ends_with(tail))
            return true;
    }
    return false;
}

Result<DriverFilter> make_driver_filter(const std::vector<std::string>& drivers,
                                        const std::vector<std::string>& files, const Ksyms& ksyms,
                                        std::string_view proc_modules) {
    DriverFilter f;
    const std::vector<std::string> loaded = module_names(proc_modules);
    for (const std::string& d : drivers) {
        const bool known =
            std::find(loaded.begin(), loaded.end(), d) != loaded.end() || builtin_owner(d, ksyms);
        if (d.empty() || !known) {
            std::string list;
            for (const std::string& m : loaded)
                list += (list.empty() ? "" : ", ") + m;
            return Error{fmt::format(
                "--driver '{}': no loaded module and no built-in driver of that name (loaded "
                "modules: {}; a built-in driver is named after its mmap handler or file "
                "operations, e.g. af_packet for packet_mmap)",
                d, list.empty() ? "none" : list)};
        }
        f.drivers.push_back(d);
    }
    for (const std::string& p : files) {
        if (p.starts_with("socket:[") || p.starts_with("anon_inode:")) {
            f.files.push_back({p, 0, 0});
            continue;
        }
        struct stat st {};
        char* real = ::realpath(p.c_str(), nullptr);
        if (!real || ::stat(real, &st) != 0) {
            const int err = errno;
            std::free(real);
            return Error{fmt::format("--file '{}': {} (give the path of the device node or file "
                                     "the program maps, or socket:[INODE] / anon_inode:NAME)",
                                     p, std::strerror(err))};
        }
        FileId id{real, static_cast<uint64_t>(st.st_ino),
                  S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? new_encode_dev(st.st_rdev) : 0};
        std::free(real);
        f.files.push_back(std::move(id));
    }
    return f;
}

} // namespace kextrace
