// The timeline's building blocks: its JSON writer, one event and one track
// before they are written, the args builder, the sink the builder
// (timeline.cpp) sends them to, and the step names the probes really
// attached to.
#pragma once

#include <kextrace/output.h>
#include <kextrace/timeline.h>

#include "json_buffer.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace::detail::timeline {

// The timeline's JSON text: the shared buffer, and microseconds.
class Writer : public detail::JsonBuffer {
  public:
    using JsonBuffer::JsonBuffer;
    // ns as microseconds with three decimals: exact, no double rounding.
    void us(uint64_t ns) {
        buf_.room(32);
        char* p = std::to_chars(buf_.cursor(), buf_.cursor() + 24, ns / 1000).ptr;
        const unsigned frac = static_cast<unsigned>(ns % 1000);
        p[0] = '.';
        p[1] = static_cast<char>('0' + frac / 100);
        p[2] = static_cast<char>('0' + frac / 10 % 10);
        p[3] = static_cast<char>('0' + frac % 10);
        buf_.commit(p + 4);
    }
};

// The args' keys: the builder's own words, each known by its index here.
inline constexpr std::array<std::string_view, 52> kKeyNames = {
    "accessed",
    "addr",
    "after_free",
    "allocated_by",
    "arg",
    "bits",
    "closed",
    "dirty",
    "done_seen",
    "error_code",
    "f_op",
    "file",
    "flags",
    "in_write_phase",
    "index",
    "inserted_by",
    "kernel_events",
    "late",
    "lives",
    "mapcount",
    "mapcount_at_return",
    "mapped",
    "mapping",
    "message",
    "mmap",
    "module",
    "nx",
    "observed",
    "order",
    "other_allocations",
    "owner",
    "pages",
    "passed_as",
    "pfn",
    "policy",
    "present",
    "pte",
    "pte_address",
    "reason",
    "refcount",
    "refcount_at_return",
    "ret",
    "rw",
    "special",
    "stack",
    "step",
    "uaddr",
    "user",
    "user_faults",
    "vm_end",
    "vm_start",
    "zap_context",
};
// A key, from its literal (a name not in kKeyNames does not compile): one
// byte in an Arg, and the writers' tables are indexed by it.
struct Key {
    uint8_t id = 0;
    Key() = default;
    template <std::size_t N> consteval Key(const char (&name)[N]) : id(index_of({name, N - 1})) {}
    std::string_view name() const { return kKeyNames[id]; }

  private:
    static consteval uint8_t index_of(std::string_view name) {
        for (std::size_t i = 0; i < kKeyNames.size(); ++i)
            if (kKeyNames[i] == name)
                return static_cast<uint8_t>(i);
        throw "timeline arg key not in kKeyNames";
    }
};

// One argument of an event, typed, so that each output format writes it its
// own way. Strings are in the track's arena, or (our own words, a stack's
// JSON text) where they already are, for the whole write.
enum class ArgKind : uint8_t {
    u,    // unsigned integer
    i,    // signed integer
    b,    // boolean
    hex,  // an unsigned integer shown as the string "0x..."
    null, // no value (a count the BPF side could not read, an unknown addr)
    str,  // a string
    json, // JSON text (a symbolized stack: an array of strings)
};
struct Arg {
    Key key;
    ArgKind kind = ArgKind::u;
    uint32_t len = 0;         // str/json: the text's length
    uint64_t v = 0;           // the number; str/json: the text's offset in the arena
    const char* at = nullptr; // ... or the text, [at, at + len), not copied: alive for the
                              // whole write, at the same address (the Perfetto sink interns
                              // it by address)
};

// One event of a track before it is written; its args are
// track.args[args_off, args_off + args_len).
struct Ev {
    uint64_t ts = 0;
    uint64_t dur = 0;
    char ph = 'X'; // 'X' or 'i'
    // literals or the builder's and the report's own names, alive for the
    // whole write (the Perfetto sink interns them by address)
    std::string_view name;
    std::string_view cat;
    uint32_t args_off = 0;
    uint32_t args_len = 0;
    uint32_t seq = 0;
    bool flow = false; // takes part in the track's flow chain
};

// The args of a track's events, in one array that grows: appended to
// inline (std::vector's push_back is a call here, one an arg).
class ArgList {
  public:
    std::size_t size() const { return size_; }
    const Arg& operator[](std::size_t i) const { return data_[i]; }
    std::span<const Arg> subspan(std::size_t off, std::size_t n) const {
        return {data_.get() + off, n};
    }
    void clear() { size_ = 0; }
    void push(const Arg& a) {
        if (size_ == cap_) [[unlikely]]
            grow();
        data_[size_++] = a;
    }

  private:
    [[gnu::noinline]] void grow() {
        cap_ = cap_ ? 2 * cap_ : 64;
        auto d = std::make_unique_for_overwrite<Arg[]>(cap_);
        std::copy_n(data_.get(), size_, d.get());
        data_ = std::move(d);
    }
    std::unique_ptr<Arg[]> data_;
    std::size_t size_ = 0, cap_ = 0;
};

struct Track {
    uint32_t pid = 0;
    uint32_t tid = 0;
    std::vector<Ev> events;
    ArgList args;
    std::string arena;
    void clear() {
        events.clear();
        args.clear();
        arena.clear();
    }
    std::string_view text(const Arg& a) const { return {a.at ? a.at : arena.data() + a.v, a.len}; }
};

// Builds one event's args in the track: Args a(track); a.u(...)...; a.end(ev).
class Args {
  public:
    explicit Args(Track& t) : t_(t), off_(t.args.size()) {}
    Args& u(Key k, uint64_t v) { return add(k, ArgKind::u, v); }
    Args& i(Key k, int64_t v) { return add(k, ArgKind::i, static_cast<uint64_t>(v)); }
    Args& count(Key k, int32_t v) { return v == kNoCount ? null(k) : i(k, v); }
    Args& b(Key k, bool v) { return add(k, ArgKind::b, v); }
    Args& hex(Key k, uint64_t v) { return add(k, ArgKind::hex, v); }
    Args& null(Key k) { return add(k, ArgKind::null, 0); }
    // Our own words (literals, names that outlive the write: not copied) and
    // any other text (copied): escaped by the writer as needed.
    Args& word(Key k, std::string_view s) { return add_ref(k, ArgKind::str, s); }
    Args& text(Key k, std::string_view s) { return add_text(k, ArgKind::str, s); }
    // JSON text that outlives the write (the builder's stack cache): not copied.
    Args& raw(Key k, std::string_view json_text) { return add_ref(k, ArgKind::json, json_text); }
    void end(Ev& e) {
        e.args_off = static_cast<uint32_t>(off_);
        e.args_len = static_cast<uint32_t>(t_.args.size() - off_);
    }

  private:
    Args& add(Key k, ArgKind kind, uint64_t v) {
        push({k, kind, 0, v, nullptr});
        return *this;
    }
    void push(const Arg& a) { t_.args.push(a); }
    Args& add_text(Key k, ArgKind kind, std::string_view s) {
        push({k, kind, static_cast<uint32_t>(s.size()), t_.arena.size(), nullptr});
        t_.arena.append(s);
        return *this;
    }
    Args& add_ref(Key k, ArgKind kind, std::string_view s) {
        push({k, kind, static_cast<uint32_t>(s.size()), 0, s.data()});
        return *this;
    }
    Track& t_;
    std::size_t off_;
};

// A flow-chain position of one event: id 0 = not on a chain.
struct Flow {
    uint64_t id = 0;
    bool in = false;  // continues the chain from the previous event
    bool out = false; // the chain goes on to a next event
};

// Where the builder (timeline.cpp) sends the timeline: the Trace Event
// Format JSON (timeline_json.cpp) or Perfetto's protobuf (perfetto.cpp).
// Calls come in this order: begin, process..., thread..., then per track its
// events (sorted, nested) and end_track, counters (per process, in time
// order) between the rig tracks and the page tracks, and finish.
class Sink {
  public:
    virtual ~Sink() = default;
    virtual void begin(const nlohmann::json& metadata) = 0;
    virtual void process(uint32_t pid, const std::string& name, uint64_t sort_index) = 0;
    // page: a page's track (tid = kPageTidBase + life), else a rig thread
    virtual void thread(uint32_t pid, uint32_t tid, const std::string& name, int64_t sort_index,
                        bool page) = 0;
    virtual void event(const Track& t, const Ev& e, const Flow& f) = 0;
    virtual void end_track(const Track& t) = 0;
    virtual void counter(uint32_t pid, uint64_t ts, std::string_view name, int64_t v) = 0;
    // Flushes; returns the bytes written.
    virtual uint64_t finish() = 0;
};

// The process of tracks that have none of their own: the report's first
// tgid, phase or mapping's (0 if none).
inline uint32_t timeline_default_pid(const Report& r) {
    if (!r.tgids.empty())
        return r.tgids.front();
    if (!r.phases.empty())
        return r.phases.front().tgid;
    if (!r.mappings.empty())
        return r.mappings.front().tgid;
    return 0;
}
// The process a page's track belongs to: its owner, else the default.
inline uint32_t timeline_owner(const Report& r, const PageLife& p) {
    return p.owner ? p.owner : timeline_default_pid(r);
}

// "kex pages allocated" and "kex pages mapped" of each owner process, sent
// to out in time order (timeline_counters.cpp); returns how many were sent.
uint64_t send_counters(const Report& r, Sink& out);

// The sinks: Trace Event Format JSON (timeline_json.cpp), Perfetto
// protobuf (perfetto.cpp), both onto out.
std::unique_ptr<Sink> json_sink(std::ostream& out);
std::unique_ptr<Sink> perfetto_sink(std::ostream& out);

// The real function names the probes attached to, for step names.
struct StepNames {
    std::array<std::string, kStepKinds> name;
    std::array<std::string_view, kStepKinds> cat;

    explicit StepNames(const RunInfo& run) {
        auto resolved = [&](std::string_view step, std::string_view dflt) {
            for (const ProbeStatus& p : run.probes)
                if (p.step == step && p.attached && !p.resolved.empty()) {
                    std::string r = p.resolved.substr(0, p.resolved.find(' '));
                    if (r.find(':') == std::string::npos && r.find('*') == std::string::npos)
                        return r;
                }
            return std::string(dflt);
        };
        auto set = [&](StepKind k, std::string n, std::string_view c) {
            name[static_cast<std::size_t>(k)] = std::move(n);
            cat[static_cast<std::size_t>(k)] = c;
        };
        set(StepKind::kmem_alloc, "kmem:mm_page_alloc", "alloc");
        set(StepKind::kex_alloc, "kex:kex_page_alloc", "alloc");
        set(StepKind::insert, resolved("insert", "insert_page_into_pte_locked"), "insert");
        set(StepKind::insert_ret, resolved("insert", "insert_page_into_pte_locked") + " (return)",
            "insert");
        set(StepKind::rmap_add, resolved("rmap add", "page_add_file_rmap"), "insert");
        set(StepKind::do_set_pte, resolved("fault install", "do_set_pte"), "fault");
        set(StepKind::pte_set, "set_pte_at (PTE written)", "insert");
        set(StepKind::kex_insert, "kex:kex_page_insert", "kex");
        set(StepKind::user_fault, "exceptions:page_fault_user", "fault");
        set(StepKind::set_dirty, resolved("dirty at zap", "set_page_dirty"), "unmap");
        set(StepKind::rmap_remove, resolved("zap (rmap remove)", "page_remove_rmap"), "unmap");
        set(StepKind::kex_free, "kex:kex_page_free", "kex");
        set(StepKind::page_free, "kmem:mm_page_free", "free");
        set(StepKind::page_free_batched, "kmem:mm_page_free_batched", "free");
        set(StepKind::pte_lookup, resolved("pfn PTE", "vm_normal_page"), "unmap");
        set(StepKind::followed, "followed call (--follow)", "follow");
    }
    std::string_view of(StepKind k) const { return name[static_cast<std::size_t>(k)]; }
    std::string_view cat_of(StepKind k) const { return cat[static_cast<std::size_t>(k)]; }
};

} // namespace kextrace::detail::timeline
