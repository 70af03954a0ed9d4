// tracefs.cpp - see tracefs.h.
#include "tracefs.h"
#include "lines.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace kextrace {

namespace {

bool is_dir(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// "offset:8;" -> 8 from a "\tfield:...;\toffset:8;\tsize:8;\tsigned:0;" line
std::optional<std::size_t> attr(std::string_view line, std::string_view key) {
    std::size_t p = line.find(key);
    if (p == std::string_view::npos)
        return std::nullopt;
    p += key.size();
    std::size_t e = line.find(';', p);
    return std::strtoull(std::string(line.substr(p, e - p)).c_str(), nullptr, 10);
}

} // namespace

TpFormat parse_tp_format(std::string_view text) {
    TpFormat out;
    for (std::string_view line : Lines(text)) {
        std::size_t f = line.find("field:");
        if (f == std::string_view::npos)
            continue;
        std::size_t semi = line.find(';', f);
        if (semi == std::string_view::npos)
            continue;
        // "field:unsigned long vm_start" / "field:char comm[16]": the name is the last word
        std::string_view decl = line.substr(f + 6, semi - f - 6);
        std::size_t sp = decl.find_last_of(" \t*");
        std::string name(sp == std::string_view::npos ? decl : decl.substr(sp + 1));
        if (auto br = name.find('['); br != std::string::npos)
            name.resize(br);
        auto off = attr(line, "offset:");
        auto size = attr(line, "size:");
        auto sign = attr(line, "signed:");
        if (!off || !size)
            continue;
        out[name] = TpField{*off, *size, sign.value_or(0) != 0};
    }
    return out;
}

std::map<std::string, KprobeProfile> parse_kprobe_profile(std::string_view text) {
    std::map<std::string, KprobeProfile> out;
    std::string name;
    uint64_t hits = 0, missed = 0;
    for (std::string_view line : Lines(text)) {
        std::istringstream ls{std::string(line)};
        if (ls >> name >> hits >> missed)
            out[name] = KprobeProfile{hits, missed};
    }
    return out;
}

std::optional<Tracefs> Tracefs::find() {
    for (const char* root : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
        if (is_dir(std::string(root) + "/events"))
            return Tracefs(root);
    }
    return std::nullopt;
}

bool Tracefs::has_system(std::string_view sys) const {
    return is_dir(fmt::format("{}/events/{}", root_, sys));
}

bool Tracefs::has_event(std::string_view sys, std::string_view name) const {
    return is_dir(fmt::format("{}/events/{}/{}", root_, sys, name));
}

std::optional<TpFormat> Tracefs::format(std::string_view sys, std::string_view name) const {
    auto text = read_text_file(fmt::format("{}/events/{}/{}/format", root_, sys, name));
    if (!text)
        return std::nullopt;
    return parse_tp_format(*text);
}

bool Tracefs::kprobe_events_writable() const {
    return ::access((root_ + "/kprobe_events").c_str(), W_OK) == 0;
}

Status Tracefs::write_kprobe_events(const std::string& line) const {
    std::string path = root_ + "/kprobe_events";
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return Error{fmt::format("open {}: {}", path, std::strerror(errno))};
    ssize_t n = ::write(fd, line.data(), line.size());
    int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(line.size()))
        return Error{fmt::format("write '{}' to {}: {}", line, path, std::strerror(err))};
    return Ok{};
}

std::optional<int> Tracefs::event_id(std::string_view sys, std::string_view name) const {
    auto text = read_text_file(fmt::format("{}/events/{}/{}/id", root_, sys, name));
    if (!text)
        return std::nullopt;
    return std::atoi(text->c_str());
}

std::map<std::string, KprobeProfile> Tracefs::kprobe_profile() const {
    auto text = read_text_file(root_ + "/kprobe_profile");
    return text ? parse_kprobe_profile(*text) : std::map<std::string, KprobeProfile>{};
}

} // namespace kextrace
