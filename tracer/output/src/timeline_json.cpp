// json_sink (for write_trace_events): the timeline as Trace Event Format JSON, streamed
// (docs/timeline.md): the Sink that writes what the builder (timeline.cpp)
// sends, event by event, into a buffer flushed in large chunks.
#include <kextrace/timeline.h>

#include "timeline_parts.h"

#include <memory>
#include <sstream>

namespace kextrace {

using nlohmann::json;

namespace {

using namespace detail::timeline;

class JsonSink final : public Sink {
  public:
    explicit JsonSink(std::ostream& out) : w_(out) {}

    void begin(const json& metadata) override {
        w_.raw("{\"displayTimeUnit\":\"ns\",\"metadata\":");
        w_.raw(metadata.dump(-1, ' ', false, json::error_handler_t::replace));
        w_.raw(",\"traceEvents\":[");
    }

    void process(uint32_t pid, const std::string& name, uint64_t sort_index) override {
        name_and_sort("process_name", "process_sort_index", pid, pid, name,
                      static_cast<int64_t>(sort_index));
    }

    void thread(uint32_t pid, uint32_t tid, const std::string& name, int64_t sort_index,
                bool) override {
        name_and_sort("thread_name", "thread_sort_index", pid, tid, name, sort_index);
    }

    void event(const Track& t, const Ev& e, const Flow& f) override {
        begin_event(e.ph, e.name, t.pid, t.tid);
        w_.raw(",\"cat\":\"");
        w_.raw(e.cat);
        w_.raw("\",\"ts\":");
        w_.us(e.ts);
        if (e.ph == 'X') {
            w_.raw(",\"dur\":");
            w_.us(e.dur);
        } else {
            w_.raw(",\"s\":\"t\"");
        }
        if (f.id) {
            w_.raw(",\"bind_id\":");
            w_.u64(f.id);
            if (f.in)
                w_.raw(",\"flow_in\":true");
            if (f.out)
                w_.raw(",\"flow_out\":true");
        }
        w_.raw(",\"args\":{");
        for (uint32_t i = 0; i < e.args_len; ++i)
            arg(t, t.args[e.args_off + i], i == 0);
        w_.raw("}}");
    }

    void end_track(const Track&) override {}

    void counter(uint32_t pid, uint64_t ts, std::string_view name, int64_t v) override {
        begin_event('C', name, pid, pid);
        w_.raw(",\"cat\":\"kex\",\"ts\":");
        w_.us(ts);
        w_.raw(",\"args\":{\"pages\":");
        w_.i64(v);
        w_.raw("}}");
    }

    uint64_t finish() override {
        w_.raw("\n]}\n");
        w_.flush();
        return w_.bytes();
    }

  private:
    // Separator and the common fields of one event.
    void begin_event(char ph, std::string_view name, uint32_t pid, uint32_t tid) {
        w_.raw(first_ ? "\n{" : ",\n{");
        first_ = false;
        w_.raw("\"ph\":\"");
        w_.ch(ph);
        w_.raw("\",\"name\":");
        w_.str(name);
        w_.raw(",\"pid\":");
        w_.u64(pid);
        w_.raw(",\"tid\":");
        w_.u64(tid);
    }

    // The two M events that name a process or thread and order it.
    void name_and_sort(std::string_view name_event, std::string_view sort_event, uint32_t pid,
                       uint32_t tid, const std::string& name, int64_t sort_index) {
        begin_event('M', name_event, pid, tid);
        w_.raw(",\"args\":{\"name\":");
        w_.str(name);
        w_.raw("}}");
        begin_event('M', sort_event, pid, tid);
        w_.raw(",\"args\":{\"sort_index\":");
        w_.i64(sort_index);
        w_.raw("}}");
    }

    void arg(const Track& t, const Arg& a, bool first) {
        if (!first)
            w_.ch(',');
        w_.ch('"');
        w_.raw(a.key.name());
        w_.raw("\":");
        switch (a.kind) {
        case ArgKind::u:
            w_.u64(a.v);
            break;
        case ArgKind::i:
            w_.i64(static_cast<int64_t>(a.v));
            break;
        case ArgKind::b:
            w_.boolean(a.v != 0);
            break;
        case ArgKind::hex:
            w_.hex(a.v);
            break;
        case ArgKind::null:
            w_.null();
            break;
        case ArgKind::str:
            w_.str(t.text(a));
            break;
        case ArgKind::json:
            w_.raw(t.text(a));
            break;
        }
    }

    Writer w_;
    bool first_ = true;
};

} // namespace

std::unique_ptr<Sink> detail::timeline::json_sink(std::ostream& out) {
    return std::make_unique<JsonSink>(out);
}

json to_trace_events(const Report& report, const RunInfo& run, const Symbolizer& symbolize,
                     const TimelineOptions& opts) {
    std::ostringstream s;
    write_trace_events(report, run, symbolize, s, opts);
    return json::parse(s.str());
}

} // namespace kextrace
