// trace_files.cpp - see trace_files.h.
#include "trace_files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include <fmt/format.h>

namespace kextrace {

namespace {

std::string temp_name(const std::string& path, const char* what) {
    return fmt::format("{}.{}.{}", path, what, ::getpid());
}

} // namespace

// ---------------------------------------------------------------------------
// AtomicFile

Result<AtomicFile> AtomicFile::create(const std::string& path) {
    std::string tmp = temp_name(path, "tmp");
    auto out = std::make_unique<std::ofstream>(tmp, std::ios::trunc | std::ios::binary);
    if (!*out)
        return Error{fmt::format("cannot write {}: {}", tmp, std::strerror(errno))};
    return AtomicFile(path, std::move(tmp), std::move(out));
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), out_(std::move(o.out_)), done_(o.done_) {
    o.done_ = true;
}

AtomicFile::~AtomicFile() {
    if (done_ || !out_)
        return;
    out_->close();
    std::remove(tmp_.c_str());
}

Status AtomicFile::commit() {
    out_->flush();
    const bool good = static_cast<bool>(*out_);
    out_->close();
    done_ = true;
    if (!good || out_->fail()) {
        std::remove(tmp_.c_str());
        return Error{fmt::format("writing {} failed (disk full?)", tmp_)};
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
        int e = errno;
        std::remove(tmp_.c_str());
        return Error{fmt::format("rename {} -> {}: {}", tmp_, path_, std::strerror(e))};
    }
    return Ok{};
}

namespace {
// A JSON document to path through a temp file and rename, with its final newline.
template <class WriteFn> void write_document_atomically(const std::string& path, WriteFn&& write) {
    AtomicFile f = AtomicFile::create(path).take_or_die();
    write(f.stream());
    f.stream() << '\n';
    if (auto st = f.commit(); !st)
        throw FatalError(st.error().message);
}
} // namespace

void write_json_atomically(const std::string& path, const nlohmann::json& j) {
    write_document_atomically(path, [&](std::ostream& out) {
        out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    });
}

void write_report_json_atomically(const std::string& path, const Report& report, const RunInfo& run,
                                  const Symbolizer& symbolize, const nlohmann::json& extra,
                                  const LeakReport* leaks) {
    write_document_atomically(path, [&](std::ostream& out) {
        write_report_json(out, report, run, symbolize, extra, leaks);
    });
}

Result<TimelineStats> write_timeline(const std::string& path, const Report& report,
                                     const RunInfo& run, const Symbolizer& symbolize,
                                     const std::string& format) {
    const std::optional<TimelineFormat> fmt =
        format.empty() ? timeline_format_of(path) : parse_timeline_format(format);
    if (!fmt)
        return Error{"unknown timeline format \"" + format + "\" (json or perfetto)"};
    auto f = AtomicFile::create(path);
    if (!f)
        return f.error();
    TimelineStats st = write_timeline_as(*fmt, report, run, symbolize, f->stream());
    if (auto c = f->commit(); !c)
        return c.error();
    return st;
}

// ---------------------------------------------------------------------------
// JsonlWriter

Result<JsonlWriter> JsonlWriter::open(const std::string& path) {
    // the final file's directory must be writable: fail now, not after the trace
    auto probe = AtomicFile::create(path);
    if (!probe)
        return probe.error();
    std::string body = temp_name(path, "events.tmp");
    auto out = std::make_unique<std::fstream>(body, std::ios::in | std::ios::out | std::ios::trunc |
                                                        std::ios::binary);
    if (!*out)
        return Error{fmt::format("cannot write {}: {}", body, std::strerror(errno))};
    return JsonlWriter(path, std::move(body), std::move(out));
}

JsonlWriter::JsonlWriter(JsonlWriter&& o) noexcept
    : path_(std::move(o.path_)), body_path_(std::move(o.body_path_)), body_(std::move(o.body_)),
      buf_(std::move(o.buf_)), addrs_(std::move(o.addrs_)), events_(o.events_) {}

JsonlWriter::~JsonlWriter() {
    if (!body_)
        return;
    body_->close();
    std::remove(body_path_.c_str());
}

void JsonlWriter::add(const Event& ev) {
    append_jsonl_event(buf_, ev);
    buf_.push_back('\n');
    ++events_;
    for (uint64_t a : ev.stack)
        addrs_.insert(a);
    if (ev.vma)
        for (uint64_t a : {ev.vma->f_op, ev.vma->mmap, ev.vma->vm_ops, ev.vma->fault})
            if (a)
                addrs_.insert(a);
    if (buf_.size() >= (1u << 20))
        flush_buffer();
}

void JsonlWriter::flush_buffer() {
    body_->write(buf_.data(), static_cast<std::streamsize>(buf_.size()));
    buf_.clear();
}

Status JsonlWriter::commit(JsonlHeader header, const Symbolizer& symbolize) {
    flush_buffer();
    body_->flush();
    if (!*body_)
        return Error{fmt::format("writing {} failed (disk full?)", body_path_)};
    header.events = events_;
    if (symbolize)
        for (uint64_t a : addrs_)
            if (std::string s = symbolize(a); !s.empty())
                header.symbols[a] = std::move(s);
    auto f = AtomicFile::create(path_);
    if (!f)
        return f.error();
    f->stream() << jsonl_header_line(header) << '\n';
    body_->seekg(0);
    if (events_)
        f->stream() << body_->rdbuf();
    return f->commit();
}

// ---------------------------------------------------------------------------
// Replay

Result<Replay> replay_jsonl(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return Error{fmt::format("cannot read {}: {}", path, std::strerror(errno))};
    // The correlator is configured by the header before the first event: read
    // the header line, then the whole file as a stream.
    std::string first;
    std::getline(in, first);
    std::string why;
    auto header = parse_jsonl_header(first, &why);
    if (!header)
        return Error{fmt::format("{}:1: {}", path,
                                 first.empty() ? "empty: no header line" : "bad header: " + why)};
    Correlator c(header->correlator);
    in.seekg(0);
    JsonlRead r = read_jsonl(in, [&c](Event&& ev) { c.feed(std::move(ev)); });
    if (r.error)
        return Error{fmt::format("{}:{}: {}", path, r.error->line, r.error->message)};
    c.set_losses(r.header->losses);
    return Replay{std::move(*r.header), c.finish()};
}

} // namespace kextrace
