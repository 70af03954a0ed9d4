// events_writer.cpp - see events_writer.h.
#include "events_writer.h"

#include "ksyms.h"
#include "probe_plan.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

namespace kextrace {

Result<EventsWriter> EventsWriter::open(const std::string& path) {
    int fd;
    do
        fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return Error{fmt::format("cannot write {}: {}", path, std::strerror(errno))};
    return EventsWriter(fd, path);
}

EventsWriter EventsWriter::adopt(int fd, std::string path) {
    return EventsWriter(fd, std::move(path));
}

EventsWriter::EventsWriter(EventsWriter&& o) noexcept
    : fd_(o.fd_), path_(std::move(o.path_)), buf_(std::move(o.buf_)), error_(std::move(o.error_)),
      lines_(o.lines_) {
    o.fd_ = -1;
}

EventsWriter::~EventsWriter() {
    if (fd_ >= 0) {
        (void)write_out();
        ::close(fd_);
    }
}

bool EventsWriter::write_out() {
    std::size_t done = 0;
    while (!error_ && done < buf_.size()) {
        ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            error_ = Error{fmt::format("writing events to {}: {}", path_,
                                       n < 0 ? std::strerror(errno) : "wrote nothing")};
        else
            done += static_cast<std::size_t>(n);
    }
    buf_.clear();
    return !error_;
}

bool EventsWriter::write_line(std::string_view line) {
    if (error_ || fd_ < 0)
        return false;
    buf_.append(line);
    buf_.push_back('\n');
    lines_++;
    if (buf_.size() >= kBufferBytes)
        return write_out();
    return true;
}

Status EventsWriter::flush() {
    if (fd_ >= 0)
        (void)write_out();
    if (error_)
        return *error_;
    return Ok{};
}

Status EventsWriter::close() {
    Status st = flush();
    if (fd_ >= 0) {
        if (::close(fd_) < 0 && st.ok())
            error_ = Error{fmt::format("closing {}: {}", path_, std::strerror(errno))};
        fd_ = -1;
    }
    if (error_)
        return *error_;
    return st;
}

// One --events line: the record's fields, type and probe by name, stack symbolized.
nlohmann::json event_json(const Event& ev, const Ksyms& ksyms) {
    nlohmann::json j = {
        {"ts", ev.ts},
        {"type", event_type_name(ev.type)},
        {"cpu", ev.cpu},
        {"pid", ev.pid},
        {"tid", ev.tid},
        {"pfn", ev.pfn == KEX_NO_PFN ? nlohmann::json() : nlohmann::json(ev.pfn)},
        {"addr", ev.addr},
        {"arg0", ev.arg0},
        {"arg1", ev.arg1},
        {"ret", ev.ret},
        {"refcount", ev.refcount == KEX_NO_COUNT ? nlohmann::json() : nlohmann::json(ev.refcount)},
        {"mapcount", ev.mapcount == KEX_NO_COUNT ? nlohmann::json() : nlohmann::json(ev.mapcount)},
        {"probe", ev.probe < KEX_P_COUNT ? probe_spec(ev.probe).short_name : "?"}};
    if (!ev.stack.empty()) {
        auto& st = j["stack"] = nlohmann::json::array();
        for (uint64_t a : ev.stack) {
            std::string s = ksyms.symbolize(a);
            st.push_back(s.empty() ? fmt::format("{:#x}", a) : s);
        }
    }
    return j;
}

} // namespace kextrace
