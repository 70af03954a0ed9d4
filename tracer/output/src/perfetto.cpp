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
#include <span>
#include <string_view>
#include <unordered_map>

namespace kextrace {

namespace {

using namespace detail::timeline;
using detail::OutBuffer;
using detail::proto::put_field;
using detail::proto::put_fixed64;
using detail::proto::put_short_bytes;
using detail::proto::put_varint;
using detail::proto::StringWriter;
using detail::proto::tag;
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

// One interning table: string -> iid, with what finds a string without
// hashing its bytes in front. A stable string (an event's name or category,
// a value referenced rather than copied: alive at its address for the whole
// write, timeline_parts.h) is found by its address and length in a table of
// its own, exactly (no eviction, no collision); a copied one (text in a
// track's arena, at addresses reused track after track) through a small
// cache keyed by its address whose hit compares the bytes with the table's
// copy, so it is never taken for what was there before.
class Interner {
  public:
    // The iid of s if found without its table (inlined: the usual case), else 0.
    uint64_t cached(std::string_view s, bool stable) const {
        if (stable) {
            if (addresses_.empty())
                return 0;
            for (std::size_t i = address_slot(s);; i = (i + 1) & (addresses_.size() - 1)) {
                const Address& a = addresses_[i];
                if (a.p == s.data() && a.len == s.size())
                    return a.iid;
                if (!a.p)
                    return 0;
            }
        }
        const Slot& slot = slots_[slot_of(s)];
        if (slot.p == s.data() && slot.len == s.size() && slot.key &&
            std::memcmp(slot.key->data(), s.data(), s.size()) == 0)
            return slot.iid;
        return 0;
    }
    // The iid of s from the table (added when new: its iid is the table's
    // size), then found without it next time.
    [[gnu::noinline]] uint64_t find(std::string_view s, bool& added, bool stable) {
        auto it = table_.find(s);
        added = it == table_.end();
        if (added)
            it = table_.emplace(std::string(s), table_.size() + 1).first;
        if (stable && s.data()) // (an empty string may have no address: left to the table)
            remember(s, it->second);
        else
            slots_[slot_of(s)] = {s.data(), s.size(), &it->first, it->second};
        return it->second;
    }

  private:
    struct Address {
        const char* p = nullptr; // null: a free slot
        std::size_t len = 0;
        uint64_t iid = 0;
    };
    struct Slot {
        const char* p = nullptr;
        std::size_t len = 0;
        const std::string* key = nullptr; // the table's copy (nodes do not move)
        uint64_t iid = 0;
    };
    // Open addressing, linear probing, a power of two at most half full.
    std::size_t address_slot(std::string_view s) const {
        const auto a = reinterpret_cast<std::uintptr_t>(s.data()) ^ (uint64_t{s.size()} << 48);
        return static_cast<std::size_t>((a * 0x9e3779b97f4a7c15) >> 32) & (addresses_.size() - 1);
    }
    void remember(std::string_view s, uint64_t iid) {
        if (2 * (used_ + 1) > addresses_.size()) {
            std::vector<Address> old(std::max<std::size_t>(64, 2 * addresses_.size()));
            old.swap(addresses_);
            for (const Address& a : old)
                if (a.p)
                    place({a.p, a.len}, a.iid);
        }
        place(s, iid);
        ++used_;
    }
    void place(std::string_view s, uint64_t iid) {
        std::size_t i = address_slot(s);
        while (addresses_[i].p)
            i = (i + 1) & (addresses_.size() - 1);
        addresses_[i] = {s.data(), s.size(), iid};
    }
    static std::size_t slot_of(std::string_view s) {
        const auto a = reinterpret_cast<std::uintptr_t>(s.data());
        return ((a >> 3) ^ (a >> 11) ^ s.size()) % kSlots;
    }
    static constexpr std::size_t kSlots = 256;
    std::vector<Address> addresses_; // stable strings
    std::size_t used_ = 0;
    std::array<Slot, kSlots> slots_{}; // copied strings
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

    // One pass: the packet's head, the track event and its annotations
    // under one bounds check, the strings interned on the way; a string new
    // to the sequence (rare) then has its InternedData put in before the
    // track event (the packet's fields in the order Perfetto writes them).
    void event(const Track& t, const Ev& e, const Flow& f) override {
        const uint64_t uuid = uuid_of(t);
        // slices that ended before this event starts
        while (!open_.empty() &&
               (open_.back() < e.ts || (open_.back() == e.ts && e.dur > 0 && e.ph == 'X'))) {
            slice_end(uuid, open_.back());
            open_.pop_back();
        }
        pending_.clear();
        // (names and categories: alive for the write, timeline_parts.h)
        const uint64_t name = intern(names_, e.name, interned::event_names, true);
        const uint64_t cat = intern(cats_, e.cat, interned::event_categories, true);
        buf_.room(kHead + e.args_len * kAnnotation + kField);
        char* p = put_packet_tag(buf_.cursor());
        const std::size_t pk = mark(p);
        p = put_packet_fields(p, e.ts, packet::needs_incremental_state);
        const std::size_t interned_at = mark(p); // where the InternedData goes, if any
        p = put_varint(p, tag(packet::track_event, detail::proto::kLen));
        char* const te_len = p++;
        p = put_field(p, event::type, e.ph == 'X' ? event::slice_begin : event::instant);
        p = put_field(p, event::track_uuid, uuid);
        p = put_field(p, event::name_iid, name);
        p = put_field(p, event::category_iids, cat);
        for (const Arg& a : t.args.subspan(e.args_off, e.args_len))
            p = annotation(p, t, a);
        if (f.id) {
            p = put_varint(p, tag(f.out ? event::flow_ids : event::terminating_flow_ids,
                                  detail::proto::kFixed64));
            p = put_fixed64(p, f.id);
        }
        const std::size_t te = mark(te_len + 1);
        buf_.commit(p);
        w_.end(te);
        if (!pending_.empty()) [[unlikely]]
            insert_interned(interned_at);
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
        short_event(ts, [&](char* p) {
            p = put_field(put_field(p, event::type, event::counter), event::track_uuid, uuid);
            return put_field(p, event::counter_value, static_cast<uint64_t>(v)); // int64
        });
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

    // The iid of s in table (stable: see Interner); a new entry goes to
    // pending_ (this packet's InternedData) under field.
    uint64_t intern(Interner& table, std::string_view s, uint32_t field, bool stable) {
        if (const uint64_t iid = table.cached(s, stable))
            return iid;
        return intern_slow(table, s, field, stable);
    }
    [[gnu::noinline]] uint64_t intern_slow(Interner& table, std::string_view s, uint32_t field,
                                           bool stable) {
        bool added = false;
        const uint64_t iid = table.find(s, added, stable);
        if (!added)
            return iid;
        StringWriter p(pending_);
        const std::size_t m = p.begin(field);
        p.varint(interned::iid, iid);
        p.bytes(interned::name, s);
        p.end(m);
        return iid;
    }

    // The iid of an arg's key (the table's by its name when first used).
    uint64_t key_iid(Key k) {
        uint64_t& iid = key_iid_[k.id];
        if (!iid) [[unlikely]]
            iid = intern_slow(keys_tab_, k.name(), interned::debug_annotation_names, true);
        return iid;
    }

    // One arg at p (kAnnotation bytes at most): numbers as varints,
    // 0x-numbers as pointers (shown in hex), strings and stacks (their JSON
    // text) by their interned iid; returns the end. (One message of at most
    // 2 + 2 fields: its length fits the reserved byte.)
    char* annotation(char* p, const Track& t, const Arg& a) {
        p = put_varint(p, tag(event::debug_annotations, detail::proto::kLen));
        char* const len = p++;
        p = put_field(p, annotation::name_iid, key_iid(a.key));
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
            // (a referenced value is stable, a copied one is not)
            p = put_field(p, annotation::string_value_iid,
                          intern(strings_, t.text(a), interned::debug_annotation_string_values,
                                 a.at != nullptr));
            break;
        }
        *len = static_cast<char>(p - len - 1);
        return p;
    }

    // This packet's InternedData (pending_) put in at the offset at, before
    // its track event.
    void insert_interned(std::size_t at) {
        char head[2 * kField];
        char* h = put_varint(head, tag(packet::interned_data, detail::proto::kLen));
        h = put_varint(h, pending_.size());
        const auto n = static_cast<std::size_t>(h - head);
        buf_.open_gap(at, n + pending_.size());
        std::copy_n(head, n, buf_.data() + at);
        std::copy_n(pending_.data(), pending_.size(), buf_.data() + at + n);
    }

    // A packet's tag and its reserved length byte at p; returns the end
    // (the mark for packet_end).
    static char* put_packet_tag(char* p) {
        p = put_varint(p, tag(trace::packet, detail::proto::kLen));
        *p++ = '\0';
        return p;
    }
    // A packet's first fields at p (3 * kField at most): its sequence, flags
    // (the first packet's clear the incremental state), timestamp (if any).
    char* put_packet_fields(char* p, uint64_t ts, uint64_t flags) {
        if (first_packet_) [[unlikely]] {
            flags |= packet::incremental_state_cleared;
            first_packet_ = false;
        }
        p = put_field(p, packet::sequence_id, kSequence);
        if (flags)
            p = put_field(p, packet::sequence_flags, flags);
        return ts ? put_field(p, packet::timestamp, ts) : p;
    }
    // The buffer's offset of p (a pointer into the room reserved).
    std::size_t mark(const char* p) { return static_cast<std::size_t>(p - buf_.data()); }

    std::size_t packet_begin(uint64_t ts, uint64_t flags) {
        buf_.room(kHead);
        char* p = put_packet_tag(buf_.cursor());
        const std::size_t m = mark(p);
        buf_.commit(put_packet_fields(p, ts, flags));
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

    // A track event of a few short fields (3 at most: under 128 bytes, and
    // so is its packet, one length byte each), written at once by fields(p).
    template <class Fields> void short_event(uint64_t ts, Fields&& fields) {
        buf_.room(kHead + 3 * kField);
        char* const pk = put_packet_tag(buf_.cursor());
        char* p = put_packet_fields(pk, ts, packet::needs_incremental_state);
        p = put_varint(p, tag(packet::track_event, detail::proto::kLen));
        char* const te = ++p;
        p = fields(p);
        te[-1] = static_cast<char>(p - te);
        pk[-1] = static_cast<char>(p - pk);
        buf_.commit(p);
        buf_.flush_if_full();
    }

    void slice_end(uint64_t uuid, uint64_t ts) {
        short_event(ts, [&](char* p) {
            return put_field(put_field(p, event::type, event::slice_end), event::track_uuid, uuid);
        });
    }

    static constexpr std::size_t kField = 24; // a tag and a varint, at most
    // a packet's tag, length and first fields; an annotation
    static constexpr std::size_t kHead = 4 * kField, kAnnotation = 2 + 2 * kField;
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
    Interner names_, cats_, keys_tab_, strings_;
    std::string pending_;
    std::array<uint64_t, kKeyNames.size()> key_iid_{}; // by Key::id; 0: not interned yet
};

} // namespace

std::unique_ptr<Sink> detail::timeline::perfetto_sink(std::ostream& out) {
    return std::make_unique<PerfettoSink>(out);
}

} // namespace kextrace
