// trace_files.h - the files kextrace writes and reads back: every output
// file is written atomically (a temporary file in the same directory, renamed
// over the target when complete; removed on error or when abandoned), the
// JSONL event log is streamed during the trace and gets its header at the
// end, and a JSONL file can be replayed through the correlator offline.
#pragma once

#include "error.h"

#include <kextrace/core.h>
#include <kextrace/jsonl.h>
#include <kextrace/output.h>
#include <kextrace/timeline.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <memory>
#include <set>
#include <string>

namespace kextrace {

// A file that appears at path only when commit() succeeds. Until then the
// data goes to "<path>.tmp.<pid>" in the same directory (so the rename is
// atomic); the destructor removes that file if commit() was not reached.
class AtomicFile {
  public:
    static Result<AtomicFile> create(const std::string& path);
    AtomicFile(AtomicFile&& o) noexcept;
    AtomicFile& operator=(AtomicFile&&) = delete;
    AtomicFile(const AtomicFile&) = delete;
    ~AtomicFile();

    std::ostream& stream() { return *out_; }
    const std::string& path() const { return path_; }
    // Flushes, checks for write errors, renames over path.
    Status commit();

  private:
    AtomicFile(std::string path, std::string tmp, std::unique_ptr<std::ofstream> out)
        : path_(std::move(path)), tmp_(std::move(tmp)), out_(std::move(out)) {}
    std::string path_;
    std::string tmp_;
    std::unique_ptr<std::ofstream> out_;
    bool done_ = false;
};

// A JSON document, pretty-printed, atomically. Throws FatalError.
void write_json_atomically(const std::string& path, const nlohmann::json& j);

// --json: the report, streamed (write_report_json, with extra's top-level
// sections and, when given, the leaks section), atomically. Throws FatalError.
void write_report_json_atomically(const std::string& path, const Report& report, const RunInfo& run,
                                  const Symbolizer& symbolize,
                                  const nlohmann::json& extra = nlohmann::json::object(),
                                  const LeakReport* leaks = nullptr);

// --export: the timeline, atomically, in format ("": by the file name,
// timeline_format_of; else "json" or "perfetto").
Result<TimelineStats> write_timeline(const std::string& path, const Report& report,
                                     const RunInfo& run, const Symbolizer& symbolize,
                                     const std::string& format = "");

// --jsonl: events are appended while the trace runs (to "<path>.events.tmp.<pid>"),
// commit() writes the header (which needs the losses, known only at the end)
// followed by those lines, atomically, and removes the body file.
class JsonlWriter {
  public:
    static Result<JsonlWriter> open(const std::string& path);
    JsonlWriter(JsonlWriter&& o) noexcept;
    JsonlWriter(const JsonlWriter&) = delete;
    ~JsonlWriter();

    void add(const Event& ev);
    uint64_t events() const { return events_; }
    // Sets header.events and header.symbols (every stack address seen,
    // through symbolize), then writes the file.
    Status commit(JsonlHeader header, const Symbolizer& symbolize);

  private:
    JsonlWriter(std::string path, std::string body, std::unique_ptr<std::fstream> out)
        : path_(std::move(path)), body_path_(std::move(body)), body_(std::move(out)) {}
    void flush_buffer();
    std::string path_;
    std::string body_path_;
    std::unique_ptr<std::fstream> body_;
    std::string buf_;
    std::set<uint64_t> addrs_;
    uint64_t events_ = 0;
};

// `kextrace report FILE.jsonl`: the events replayed through a correlator
// configured as the header says.
struct Replay {
    JsonlHeader header;
    Report report;
};
Result<Replay> replay_jsonl(const std::string& path);

} // namespace kextrace
