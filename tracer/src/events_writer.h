// events_writer.h - the --events stream: one JSON object per decoded record,
// written while the trace runs, to a file, a FIFO or a pipe (a stream: not
// atomic, unlike --json). Buffered through write(2), so the first write
// error is caught with its errno: a full file system (ENOSPC), a reader that
// went away (EPIPE, with SIGPIPE ignored). That error names the file, is
// kept, and every later write is skipped; kextrace then stops the trace and
// exits non-zero (main.cpp).
#pragma once

#include "error.h"

#include <kextrace/core.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace kextrace {

class EventsWriter {
  public:
    static constexpr std::size_t kBufferBytes = 64 << 10;

    // Opens (creates, truncates) path for writing; a FIFO blocks until a reader opens it.
    static Result<EventsWriter> open(const std::string& path);
    // Writes to an open fd it then owns (tests).
    static EventsWriter adopt(int fd, std::string path);
    EventsWriter(EventsWriter&& o) noexcept;
    EventsWriter& operator=(EventsWriter&&) = delete;
    EventsWriter(const EventsWriter&) = delete;
    ~EventsWriter();

    // Appends line and a newline. false once a write has failed (nothing more is written).
    bool write_line(std::string_view line);
    // Writes out the buffer; the first error so far, if any.
    Status flush();
    // flush(), then close(2): the stream is complete, or the first error.
    Status close();
    bool failed() const { return error_.has_value(); }
    const std::string& path() const { return path_; }
    uint64_t lines() const { return lines_; }

  private:
    EventsWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
    bool write_out();
    int fd_ = -1;
    std::string path_;
    std::string buf_;
    std::optional<Error> error_;
    uint64_t lines_ = 0;
};

class Ksyms;
// One --events line: the record's fields, type and probe by name, stack symbolized.
nlohmann::json event_json(const Event& ev, const Ksyms& ksyms);

} // namespace kextrace
