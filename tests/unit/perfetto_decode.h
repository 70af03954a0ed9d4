// perfetto_decode.h - a test-side reader of the Perfetto export: the protobuf
// wire format decoded by hand (no libprotobuf, independent of the writer),
// and the trace's tracks and events gathered from it, interned strings
// resolved.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace::test::pf {

// One field of a message: a varint or fixed64 value, or bytes.
struct Field {
    uint32_t num = 0;
    uint32_t wire = 0;
    uint64_t v = 0;
    std::string_view bytes;
};

inline uint64_t varint(std::string_view s, std::size_t& i) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (i >= s.size())
            throw std::runtime_error("truncated varint");
        const auto b = static_cast<uint8_t>(s[i++]);
        v |= uint64_t{b & 0x7fu} << shift;
        if (!(b & 0x80))
            return v;
    }
    throw std::runtime_error("varint too long");
}

// The fields of one message, in order; throws on malformed input.
inline std::vector<Field> fields(std::string_view s) {
    std::vector<Field> out;
    std::size_t i = 0;
    while (i < s.size()) {
        const uint64_t tag = varint(s, i);
        Field f{static_cast<uint32_t>(tag >> 3), static_cast<uint32_t>(tag & 7), 0, {}};
        if (f.wire == 0) {
            f.v = varint(s, i);
        } else if (f.wire == 1) {
            if (i + 8 > s.size())
                throw std::runtime_error("truncated fixed64");
            for (int b = 0; b < 8; ++b)
                f.v |= uint64_t{static_cast<uint8_t>(s[i + b])} << (8 * b);
            i += 8;
        } else if (f.wire == 2) {
            const uint64_t n = varint(s, i);
            if (n > s.size() - i)
                throw std::runtime_error("truncated bytes");
            f.bytes = s.substr(i, n);
            i += n;
        } else {
            throw std::runtime_error("unexpected wire type " + std::to_string(f.wire));
        }
        out.push_back(f);
    }
    return out;
}

struct TrackDesc {
    uint64_t uuid = 0, parent = 0;
    std::string name;
    bool process = false, thread = false, counter = false;
    int64_t pid = -1, tid = -1;
};

struct Annotation {
    std::string name;
    char kind = '?'; // u i b p(ointer) s j(son)
    uint64_t v = 0;
    std::string s;
};

struct TrackEv {
    uint64_t ts = 0;
    uint32_t flags = 0; // sequence_flags
    uint64_t type = 0;  // 1 begin 2 end 3 instant 4 counter
    uint64_t track = 0;
    std::string name, category;
    std::vector<Annotation> args;
    std::vector<uint64_t> flow_ids, terminating_flow_ids;
    int64_t counter = 0;
    bool declared_before = false; // its track's descriptor came earlier in the file
};

struct Trace {
    std::vector<TrackDesc> tracks; // in file order
    std::vector<TrackEv> events;   // in file order
    std::map<uint64_t, std::size_t> track_index;
    std::size_t packets = 0;
    bool sequences_ok = true; // every packet on sequence 1, the first clears the state
};

inline TrackDesc track_desc(std::string_view s) {
    TrackDesc d;
    for (const Field& f : fields(s)) {
        if (f.num == 1)
            d.uuid = f.v;
        else if (f.num == 2)
            d.name = f.bytes;
        else if (f.num == 5)
            d.parent = f.v;
        else if (f.num == 8)
            d.counter = true;
        else if (f.num == 3 || f.num == 4) {
            (f.num == 3 ? d.process : d.thread) = true;
            for (const Field& g : fields(f.bytes)) {
                if (g.num == 1)
                    d.pid = static_cast<int64_t>(g.v);
                else if (g.num == 2 && f.num == 4)
                    d.tid = static_cast<int64_t>(g.v);
                else if ((g.num == 6 && f.num == 3) || (g.num == 5 && f.num == 4))
                    d.name = g.bytes;
            }
        }
    }
    return d;
}

// Interned tables of the sequence: [field of InternedData][iid] = name.
using Interned = std::map<uint32_t, std::map<uint64_t, std::string>>;

inline void intern(Interned& tabs, std::string_view s) {
    for (const Field& f : fields(s)) {
        uint64_t iid = 0;
        std::string name;
        for (const Field& g : fields(f.bytes))
            (g.num == 1 ? (void)(iid = g.v) : (void)(name = g.bytes));
        tabs[f.num][iid] = name;
    }
}

inline Annotation annotation(std::string_view s, Interned& tabs) {
    // DebugAnnotation: name_iid 1; values bool 2, uint 3, int 4, pointer 7
    // (varints), string 6, legacy JSON 9, interned string 17
    static const std::map<uint32_t, char> scalar = {{2, 'b'}, {3, 'u'}, {4, 'i'}, {7, 'p'}};
    Annotation a;
    for (const Field& f : fields(s)) {
        if (f.num == 1) {
            a.name = tabs[3].at(f.v);
        } else if (scalar.count(f.num)) {
            a.kind = scalar.at(f.num);
            a.v = f.v;
        } else if (f.num == 6 || f.num == 9) {
            a.kind = f.num == 6 ? 's' : 'j';
            a.s = f.bytes;
        } else if (f.num == 17) {
            a.kind = 's';
            a.s = tabs[29].at(f.v);
        } else {
            throw std::runtime_error("unexpected annotation field " + std::to_string(f.num));
        }
    }
    return a;
}

inline TrackEv track_event(std::string_view s, Interned& tabs) {
    TrackEv e;
    for (const Field& f : fields(s)) {
        switch (f.num) {
        case 3:
            e.category = tabs[1].at(f.v);
            break;
        case 4:
            e.args.push_back(annotation(f.bytes, tabs));
            break;
        case 9:
            e.type = f.v;
            break;
        case 10:
            e.name = tabs[2].at(f.v);
            break;
        case 11:
            e.track = f.v;
            break;
        case 30:
            e.counter = static_cast<int64_t>(f.v);
            break;
        case 47:
            e.flow_ids.push_back(f.v);
            break;
        case 48:
            e.terminating_flow_ids.push_back(f.v);
            break;
        default:
            throw std::runtime_error("unexpected TrackEvent field " + std::to_string(f.num));
        }
    }
    return e;
}

// The whole trace: Trace.packet (1) fields, each a TracePacket.
inline Trace decode(std::string_view file) {
    Trace t;
    Interned tabs;
    for (const Field& p : fields(file)) {
        if (p.num != 1 || p.wire != 2)
            throw std::runtime_error("not a Trace.packet");
        uint64_t ts = 0, seq = 0, flags = 0;
        std::string_view desc, ev;
        for (const Field& f : fields(p.bytes)) {
            if (f.num == 8)
                ts = f.v;
            else if (f.num == 10)
                seq = f.v;
            else if (f.num == 13)
                flags = f.v;
            else if (f.num == 12)
                intern(tabs, f.bytes);
            else if (f.num == 60)
                desc = f.bytes;
            else if (f.num == 11)
                ev = f.bytes;
        }
        if (seq != 1 || ((flags & 1) != 0) != (t.packets == 0))
            t.sequences_ok = false;
        ++t.packets;
        if (!desc.empty()) {
            t.track_index[track_desc(desc).uuid] = t.tracks.size();
            t.tracks.push_back(track_desc(desc));
        }
        if (!ev.empty()) {
            TrackEv e = track_event(ev, tabs);
            e.ts = ts;
            e.flags = static_cast<uint32_t>(flags);
            e.declared_before = t.track_index.count(e.track) != 0;
            t.events.push_back(std::move(e));
        }
    }
    return t;
}

} // namespace kextrace::test::pf
