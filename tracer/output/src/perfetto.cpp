// perfetto_sink (for write_perfetto_trace): the timeline in Perfetto's own protobuf trace format
// (docs/timeline.md, "Perfetto protobuf"): the Sink that writes what the
// builder (timeline.cpp) sends as TracePackets of TrackDescriptors and
// TrackEvents on one packet sequence. Field numbers are those of Perfetto's
// published protos (protos/perfetto/trace/...); names, categories,
// annotation keys and string values (stacks too) are interned, so a big run
// costs a fraction of the JSON.
#include <kextrace/timeline.h>

#include "proto_writer.h"
#include "timeline_parts.h"

#include <array>
#include <cstring>
#include <memory>
#include <string_view>
#include <unordered_map>

namespace kextrace {

namespace {

using namespace detail::timeline;
using detail::OutBuffer;
using detail::proto::put_field;
using detail::proto::put_short_bytes;
using detail::proto::StringWriter;
using detail::proto::Writer;

// Field numbers, from Perfetto's .proto files.
namespace trace {
constexpr uint32_t packet = 1;
}
namespace packet {
constexpr uint32_t timestamp = 8, sequence_id = 10, track_event = 11, interned_data = 12,
                   sequence_flags = 13, track_descriptor = 60;
constexpr uint64_t incremental_state_cleared = 1, needs_incremental_state = 2;
} // namespace packet
namespace track {
constexpr uint32_t uuid = 1, name = 2, process = 3, thread = 4, parent_uuid = 5, counter = 8;
}
namespace process_desc {
constexpr uint32_t pid = 1, process_name = 6;
}
namespace thread_desc {
constexpr uint32_t pid = 1, tid = 2, thread_name = 5;
}
namespace event {
constexpr uint32_t debug_annotations = 4, category_iids = 3, type = 9, name_iid = 10,
                   track_uuid = 11, counter_value = 30, flow_ids = 47, terminating_flow_ids = 48;
constexpr uint64_t slice_begin = 1, slice_end = 2, instant = 3, counter = 4;
} // namespace event
namespace annotation {
constexpr uint32_t name_iid = 1, bool_value = 2, uint_value = 3, int_value = 4, pointer_value = 7,
                   legacy_json_value = 9, string_value_iid = 17;
}
namespace interned {
// InternedData's tables; each entry is {iid = 1, name (or str) = 2}
constexpr uint32_t event_categories = 1, event_names = 2, debug_annotation_names = 3,
                   debug_annotation_string_values = 29;
constexpr uint32_t iid = 1, name = 2;
} // namespace interned

constexpr uint32_t kSequence = 1; // trusted_packet_sequence_id of every packet

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using InternTable = std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>>;

// One interning table: string -> iid, with a small cache in front keyed by
// where the string is (names, categories, keys and most values are the
// builder's literals and tables, at the same address every time). Event
// names, categories and arg keys live as long as the write (timeline_parts.h),
// so their address is enough (by_address); a value's hit compares the bytes
// with the table's copy, so text at a reused address (a track's arena) is
// never taken for what was there before.
class Interner {
  public:
    explicit Interner(bool by_address) : by_address_(by_address) {}

    // The iid of s; added: s is new (its iid is table size).
    // The iid of s if the cache has it (inlined: the usual case), else 0.
    uint64_t cached(std::string_view s) const {
        const Slot& slot = slots_[slot_of(s)];
        if (slot.p == s.data() && slot.len == s.size() && slot.key &&
            (by_address_ || std::memcmp(slot.key->data(), s.data(), s.size()) == 0))
            return slot.iid;
        return 0;
    }
    // The iid of s from the table (added when new), cached.
    [[gnu::noinline]] uint64_t find(std::string_view s, bool& added) {
        Slot& slot = slots_[slot_of(s)];
        auto it = table_.find(s);
        added = it == table_.end();
        if (added)
            it = table_.emplace(std::string(s), table_.size() + 1).first;
        slot = {s.data(), s.size(), &it->first, it->second};
        return it->second;
    }

  private:
    struct Slot {
        const char* p = nullptr;
        std::size_t len = 0;
        const std::string* key = nullptr; // the table's copy (nodes do not move)
        uint64_t iid = 0;
    };
    static std::size_t slot_of(std::string_view s) {
        const auto a = reinterpret_cast<std::uintptr_t>(s.data());
        return ((a >> 3) ^ (a >> 11) ^ s.size()) % kSlots;
    }
    static constexpr std::size_t kSlots = 256;
    bool by_address_;
    std::array<Slot, kSlots> slots_{};
    InternTable table_;
};

class PerfettoSink final : public Sink {
  public:
    explicit PerfettoSink(std::ostream& out) : out_(out), buf_(out) {}

    void begin(const nlohmann::json&) override {}

    void process(uint32_t pid, const std::string& name, uint64_t) override {
        const uint64_t uuid = next_uuid_++;
        process_uuid_[pid] = uuid;
        descriptor(uuid, [&](Writer& w) {
            const std::size_t p = w.begin(track::process);
            w.varint(process_desc::pid, pid);
            w.bytes(process_desc::process_name, name);
            w.end(p);
        });
    }

    void thread(uint32_t pid, uint32_t tid, const std::string& name, int64_t, bool page) override {
        const uint64_t uuid = next_uuid_++;
        if (page && tid >= kPageTidBase) {
            const std::size_t life = tid - kPageTidBase;
            if (page_uuid_.size() <= life)
                page_uuid_.resize(life + 1, 0);
            page_uuid_[life] = uuid;
        } else {
            thread_uuid_[key(pid, tid)] = uuid;
        }
        descriptor(uuid, [&](Writer& w) {
            if (page) { // a named child track of the owner's process track
                w.bytes(track::name, name);
                w.varint(track::parent_uuid, parent_of(pid));
                return;
            }
            const std::size_t t = w.begin(track::thread);
            w.varint(thread_desc::pid, pid);
            w.varint(thread_desc::tid, tid);
            w.bytes(thread_desc::thread_name, name);
            w.end(t);
        });
    }

    void event(const Track& t, const Ev& e, const Flow& f) override {
        const uint64_t uuid = uuid_of(t);
        // slices that ended before this event starts
        while (!open_.empty() &&
               (open_.back() < e.ts || (open_.back() == e.ts && e.dur > 0 && e.ph == 'X'))) {
            slice_end(uuid, open_.back());
            open_.pop_back();
        }
        pending_.clear();
        const uint64_t name = intern(names_, e.name, interned::event_names);
        const uint64_t cat = intern(cats_, e.cat, interned::event_categories);
        keys_.clear();
        values_.clear();
        for (uint32_t i = 0; i < e.args_len; ++i) {
            const Arg& a = t.args[e.args_off + i];
            keys_.push_back(intern(keys_tab_, a.key, interned::debug_annotation_names));
            const bool text = a.kind == ArgKind::str || a.kind == ArgKind::json;
            values_.push_back(
                text ? intern(strings_, t.text(a), interned::debug_annotation_string_values) : 0);
        }
        const std::size_t pk = packet_begin(e.ts, packet::needs_incremental_state);
        if (!pending_.empty())
            w_.bytes(packet::interned_data, pending_);
        const std::size_t te = w_.begin(packet::track_event);
        w_.fields(4 * kField, [&](char* p) {
            p = put_field(p, event::type, e.ph == 'X' ? event::slice_begin : event::instant);
            p = put_field(p, event::track_uuid, uuid);
            p = put_field(p, event::name_iid, name);
            return put_field(p, event::category_iids, cat);
        });
        for (uint32_t i = 0; i < e.args_len; ++i)
            annotation(t.args[e.args_off + i], keys_[i], values_[i]);
        if (f.id)
            w_.fixed64(f.out ? event::flow_ids : event::terminating_flow_ids, f.id);
        w_.end(te);
        packet_end(pk);
        if (e.ph != 'X')
            return;
        if (e.dur == 0)
            slice_end(uuid, e.ts);
        else
            open_.push_back(e.ts + e.dur);
    }

    void end_track(const Track& t) override {
        const uint64_t uuid = uuid_of(t);
        while (!open_.empty()) {
            slice_end(uuid, open_.back());
            open_.pop_back();
        }
    }

    void counter(uint32_t pid, uint64_t ts, std::string_view name, int64_t v) override {
        const uint64_t uuid = counter_uuid(pid, name);
        const std::size_t pk = packet_begin(ts, packet::needs_incremental_state);
        const std::size_t te = w_.begin(packet::track_event);
        w_.varint(event::type, event::counter);
        w_.varint(event::track_uuid, uuid);
        w_.sint(event::counter_value, v);
        w_.end(te);
        packet_end(pk);
    }

    uint64_t finish() override {
        buf_.flush();
        out_.flush();
        return buf_.bytes();
    }

  private:
    static uint64_t key(uint32_t pid, uint32_t tid) { return (uint64_t{pid} << 32) | tid; }

    uint64_t parent_of(uint32_t pid) {
        if (pid != parent_pid_ || !parent_uuid_) {
            auto it = process_uuid_.find(pid);
            parent_pid_ = pid;
            parent_uuid_ = it == process_uuid_.end() ? 0 : it->second;
        }
        return parent_uuid_;
    }

    // The counter track name of pid, declared when first used (a few per process).
    uint64_t counter_uuid(uint32_t pid, std::string_view name) {
        for (const CounterTrack& c : counters_)
            if (c.pid == pid && c.name == name)
                return c.uuid;
        const uint64_t uuid = next_uuid_++;
        counters_.push_back({pid, std::string(name), uuid});
        descriptor(uuid, [&](Writer& w) {
            w.bytes(track::name, name);
            w.varint(track::parent_uuid, parent_of(pid));
            w.bytes(track::counter, {}); // an empty CounterDescriptor
        });
        return uuid;
    }

    uint64_t uuid_of(const Track& t) {
        if (t.tid >= kPageTidBase && t.tid - kPageTidBase < page_uuid_.size() &&
            page_uuid_[t.tid - kPageTidBase])
            return page_uuid_[t.tid - kPageTidBase];
        const uint64_t k = key(t.pid, t.tid);
        if (k != last_key_ || !last_uuid_) {
            auto it = thread_uuid_.find(k);
            last_key_ = k;
            last_uuid_ = it == thread_uuid_.end() ? 0 : it->second;
        }
        return last_uuid_;
    }

    // The iid of s in table; a new entry goes to pending_ (this packet's
    // InternedData) under field.
    uint64_t intern(Interner& table, std::string_view s, uint32_t field) {
        if (const uint64_t iid = table.cached(s))
            return iid;
        return intern_slow(table, s, field);
    }
    [[gnu::noinline]] uint64_t intern_slow(Interner& table, std::string_view s, uint32_t field) {
        bool added = false;
        const uint64_t iid = table.find(s, added);
        if (!added)
            return iid;
        StringWriter p(pending_);
        const std::size_t m = p.begin(field);
        p.varint(interned::iid, iid);
        p.bytes(interned::name, s);
        p.end(m);
        return iid;
    }

    // One arg: numbers as varints, 0x-numbers as pointers (shown in hex),
    // strings and stacks (their JSON text) by their interned iid.
    // (One message of at most 2 + 2 fields: its length fits the reserved byte.)
    void annotation(const Arg& a, uint64_t key_iid, uint64_t string_iid) {
        w_.fields(2 + 2 * kField, [&](char* p) {
            p = detail::proto::put_varint(
                p, detail::proto::tag(event::debug_annotations, detail::proto::kLen));
            char* const len = p++;
            p = put_field(p, annotation::name_iid, key_iid);
            switch (a.kind) {
            case ArgKind::u:
                p = put_field(p, annotation::uint_value, a.v);
                break;
            case ArgKind::i:
                p = put_field(p, annotation::int_value, a.v);
                break;
            case ArgKind::b:
                p = put_field(p, annotation::bool_value, a.v != 0);
                break;
            case ArgKind::hex:
                p = put_field(p, annotation::pointer_value, a.v);
                break;
            case ArgKind::null:
                p = put_short_bytes(p, annotation::legacy_json_value, "null");
                break;
            case ArgKind::str:
            case ArgKind::json:
                p = put_field(p, annotation::string_value_iid, string_iid);
                break;
            }
            *len = static_cast<char>(p - len - 1);
            return p;
        });
    }

    std::size_t packet_begin(uint64_t ts, uint64_t flags) {
        const std::size_t m = w_.begin(trace::packet);
        if (first_packet_) {
            flags |= packet::incremental_state_cleared;
            first_packet_ = false;
        }
        w_.fields(3 * kField, [&](char* p) {
            p = put_field(p, packet::sequence_id, kSequence);
            if (flags)
                p = put_field(p, packet::sequence_flags, flags);
            return ts ? put_field(p, packet::timestamp, ts) : p;
        });
        return m;
    }
    void packet_end(std::size_t mark) {
        w_.end(mark);
        buf_.flush_if_full();
    }

    template <class Body> void descriptor(uint64_t uuid, Body&& body) {
        const std::size_t pk = packet_begin(0, 0);
        const std::size_t d = w_.begin(packet::track_descriptor);
        w_.varint(track::uuid, uuid);
        body(w_);
        w_.end(d);
        packet_end(pk);
    }

    void slice_end(uint64_t uuid, uint64_t ts) {
        const std::size_t pk = packet_begin(ts, packet::needs_incremental_state);
        const std::size_t te = w_.begin(packet::track_event);
        w_.fields(2 * kField, [&](char* p) {
            return put_field(put_field(p, event::type, event::slice_end), event::track_uuid, uuid);
        });
        w_.end(te);
        packet_end(pk);
    }

    static constexpr std::size_t kField = 24; // a tag and a varint, at most
    std::ostream& out_;
    OutBuffer buf_;
    Writer w_{buf_};
    bool first_packet_ = true;
    uint64_t next_uuid_ = 1;
    std::unordered_map<uint32_t, uint64_t> process_uuid_;
    std::unordered_map<uint64_t, uint64_t> thread_uuid_; // rig threads
    std::vector<uint64_t> page_uuid_;                    // page tracks, by life
    uint32_t parent_pid_ = 0;
    uint64_t parent_uuid_ = 0;
    struct CounterTrack {
        uint32_t pid;
        std::string name;
        uint64_t uuid;
    };
    std::vector<CounterTrack> counters_;
    uint64_t last_key_ = 0, last_uuid_ = 0;
    std::vector<uint64_t> open_; // end ts of the current track's open slices
    Interner names_{true}, cats_{true}, keys_tab_{true}, strings_{false};
    std::string pending_;
    std::vector<uint64_t> keys_, values_; // this event's annotation name and string iids
};

} // namespace

std::unique_ptr<Sink> detail::timeline::perfetto_sink(std::ostream& out) {
    return std::make_unique<PerfettoSink>(out);
}

} // namespace kextrace
