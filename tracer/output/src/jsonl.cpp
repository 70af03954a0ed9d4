// JSONL: raw events as JSON lines and back (kextrace/jsonl.h). Event lines
// are written by hand (a trace can hold millions); everything is read with
// nlohmann::json, and every field is checked so a damaged line is reported,
// never guessed at.
#include <kextrace/jsonl.h>
#include <kextrace/status_json.h>

#include "format.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

namespace kextrace {

using nlohmann::json;

namespace {

// One line's fields, written through a pointer into room the caller
// reserved (a field's worst case: 21 bytes, a literal its own size): no
// per-piece size check or call, one append per line.
class Cursor {
  public:
    explicit Cursor(char* p) : p_(p) {}
    char* end() const { return p_; }
    template <std::size_t N> Cursor& lit(const char (&s)[N]) {
        std::memcpy(p_, s, N - 1);
        p_ += N - 1;
        return *this;
    }
    Cursor& ch(char c) {
        *p_++ = c;
        return *this;
    }
    template <class Int> Cursor& num(Int v) {
        p_ = std::to_chars(p_, p_ + 20, v).ptr;
        return *this;
    }
    Cursor& hex(uint64_t v) {
        p_[0] = '"';
        p_[1] = '0';
        p_[2] = 'x';
        p_ = std::to_chars(p_ + 3, p_ + 19, v, 16).ptr;
        *p_++ = '"';
        return *this;
    }
    Cursor& count(int32_t v) { return v == kNoCount ? lit("null") : num(v); }

  private:
    char* p_;
};

void put_hex(std::string& out, uint64_t v) {
    char tmp[24];
    out.append(tmp, Cursor(tmp).hex(v).end());
}

std::string hex(uint64_t v) {
    std::string s;
    put_hex(s, v);
    return s.substr(1, s.size() - 2);
}

// "0x1f" -> 31; nullopt unless the whole string is 0x + 1..16 hex digits.
std::optional<uint64_t> parse_hex(const json& v) {
    if (!v.is_string())
        return std::nullopt;
    const std::string& s = v.get_ref<const std::string&>();
    if (s.size() < 3 || s.size() > 18 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
        return std::nullopt;
    uint64_t out = 0;
    auto r = std::from_chars(s.data() + 2, s.data() + s.size(), out, 16);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
        return std::nullopt;
    return out;
}

// Reads typed fields of one object, remembering the first problem.
class Fields {
  public:
    explicit Fields(const json& j) : j_(j) {}
    const std::string& error() const { return error_; }
    bool ok() const { return error_.empty(); }

    const json* get(const char* key) {
        auto it = j_.find(key);
        if (it == j_.end()) {
            fail(std::string("no \"") + key + "\"");
            return nullptr;
        }
        return &*it;
    }
    template <class T> T integer(const char* key) {
        const json* v = get(key);
        if (!v)
            return T{};
        if (v->is_number_unsigned()) {
            uint64_t u = v->get<uint64_t>();
            if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max()))
                return static_cast<T>(u);
        } else if (v->is_number_integer()) {
            int64_t s = v->get<int64_t>();
            if (s >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                (s < 0 ||
                 static_cast<uint64_t>(s) <= static_cast<uint64_t>(std::numeric_limits<T>::max())))
                return static_cast<T>(s);
        }
        fail(std::string("\"") + key + "\" is not an integer in range: " + v->dump());
        return T{};
    }
    template <class T> T integer_or_null(const char* key, T null_value) {
        const json* v = get(key);
        if (v && v->is_null())
            return null_value;
        return v ? integer<T>(key) : T{};
    }
    uint64_t hex(const char* key) {
        const json* v = get(key);
        if (!v)
            return 0;
        auto h = parse_hex(*v);
        if (!h)
            fail(std::string("\"") + key + "\" is not a hex string: " + v->dump());
        return h.value_or(0);
    }
    std::string string(const char* key, bool required = true) {
        auto it = j_.find(key);
        if (it == j_.end()) {
            if (required)
                fail(std::string("no \"") + key + "\"");
            return {};
        }
        if (!it->is_string()) {
            fail(std::string("\"") + key + "\" is not a string");
            return {};
        }
        return it->get<std::string>();
    }
    void fail(std::string why) {
        if (error_.empty())
            error_ = std::move(why);
    }

  private:
    const json& j_;
    std::string error_;
};

std::optional<json> parse_object(std::string_view line, std::string* why) {
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
        if (why)
            *why = "not valid JSON";
        return std::nullopt;
    }
    if (!j.is_object()) {
        if (why)
            *why = "not a JSON object";
        return std::nullopt;
    }
    return j;
}

constexpr uint16_t kMilestoneBits = 9;

} // namespace

void append_jsonl_event(std::string& o, const Event& ev) {
    o.append("{\"type\":\"");
    o.append(event_type_name(ev.type));
    char line[512]; // the fixed fields' worst case: under 400 bytes
    Cursor c(line);
    c.lit("\",\"ts\":").num(ev.ts);
    c.lit(",\"pid\":").num(ev.pid);
    c.lit(",\"tid\":").num(ev.tid);
    c.lit(",\"cpu\":").num(ev.cpu);
    c.lit(",\"pfn\":");
    ev.pfn == kNoPfn ? c.lit("null") : c.num(ev.pfn);
    c.lit(",\"addr\":").hex(ev.addr);
    c.lit(",\"arg0\":").hex(ev.arg0);
    c.lit(",\"arg1\":").hex(ev.arg1);
    c.lit(",\"ret\":").num(ev.ret);
    c.lit(",\"refcount\":").count(ev.refcount);
    c.lit(",\"mapcount\":").count(ev.mapcount);
    c.lit(",\"probe\":").num(ev.probe);
    c.lit(",\"stack\":[");
    for (std::size_t i = 0; i < ev.stack.size(); ++i) {
        if (c.end() - line > static_cast<std::ptrdiff_t>(sizeof(line) - 32)) {
            o.append(line, c.end());
            c = Cursor(line);
        }
        if (i)
            c.ch(',');
        c.hex(ev.stack[i]);
    }
    c.ch(']');
    o.append(line, c.end());
    if (ev.vma) {
        const VmaInfo& v = *ev.vma;
        json name = v.name;
        Cursor d(line);
        d.lit(",\"vma\":{\"vma\":").hex(v.vma);
        d.lit(",\"f_op\":").hex(v.f_op);
        d.lit(",\"mmap\":").hex(v.mmap);
        d.lit(",\"vm_ops\":").hex(v.vm_ops);
        d.lit(",\"fault\":").hex(v.fault);
        d.lit(",\"ino\":").num(v.ino);
        d.lit(",\"magic\":").num(v.magic);
        d.lit(",\"rdev\":").num(v.rdev);
        d.lit(",\"flags\":").num(v.flags);
        o.append(line, d.end());
        o.append(",\"name\":");
        o.append(name.dump());
        o.push_back('}');
    }
    o.push_back('}');
}

std::string jsonl_event_line(const Event& ev) {
    std::string s;
    s.reserve(256);
    append_jsonl_event(s, ev);
    return s;
}

namespace {

// "stack": an array of hex strings.
void parse_stack(Fields& f, std::vector<uint64_t>& stack) {
    const json* st = f.get("stack");
    if (!st)
        return;
    if (!st->is_array()) {
        f.fail("\"stack\" is not an array");
        return;
    }
    stack.reserve(st->size());
    for (const json& a : *st) {
        auto h = parse_hex(a);
        if (!h) {
            f.fail("a stack frame is not a hex string: " + a.dump());
            return;
        }
        stack.push_back(*h);
    }
}

// "vma": a driver VMA record's struct kex_vma_info.
std::shared_ptr<VmaInfo> parse_vma(const json& vj, Fields& f) {
    if (!vj.is_object()) {
        f.fail("\"vma\" is not an object");
        return nullptr;
    }
    Fields g(vj);
    auto v = std::make_shared<VmaInfo>();
    v->vma = g.hex("vma");
    v->f_op = g.hex("f_op");
    v->mmap = g.hex("mmap");
    v->vm_ops = g.hex("vm_ops");
    v->fault = vj.contains("fault") ? g.hex("fault") : 0; // not in older captures
    v->ino = g.integer<uint64_t>("ino");
    v->magic = g.integer<uint32_t>("magic");
    v->rdev = g.integer<uint32_t>("rdev");
    v->flags = g.integer<uint32_t>("flags");
    const json* n = g.get("name");
    if (n && n->is_array() && n->size() <= KEX_NAME_PARTS &&
        std::all_of(n->begin(), n->end(), [](const json& x) { return x.is_string(); }))
        v->name = n->get<std::vector<std::string>>();
    else
        g.fail("\"vma\".\"name\" is not an array of at most " + std::to_string(KEX_NAME_PARTS) +
               " strings");
    if (g.ok())
        return v;
    f.fail("vma: " + g.error());
    return nullptr;
}

} // namespace

std::optional<Event> parse_jsonl_event(std::string_view line, std::string* why) {
    auto j = parse_object(line, why);
    if (!j)
        return std::nullopt;
    Fields f(*j);
    Event ev;
    const std::string type = f.string("type");
    if (f.ok()) {
        if (auto t = event_type_from_name(type))
            ev.type = *t;
        else
            f.fail("unknown event type \"" + type + "\"");
    }
    ev.ts = f.integer<uint64_t>("ts");
    ev.pid = f.integer<uint32_t>("pid");
    ev.tid = f.integer<uint32_t>("tid");
    ev.cpu = f.integer<uint32_t>("cpu");
    ev.pfn = f.integer_or_null<uint64_t>("pfn", kNoPfn);
    ev.addr = f.hex("addr");
    ev.arg0 = f.hex("arg0");
    ev.arg1 = f.hex("arg1");
    ev.ret = f.integer<int64_t>("ret");
    ev.refcount = f.integer_or_null<int32_t>("refcount", kNoCount);
    ev.mapcount = f.integer_or_null<int32_t>("mapcount", kNoCount);
    ev.probe = f.integer<uint32_t>("probe");
    parse_stack(f, ev.stack);
    if (const json* vj = j->contains("vma") ? f.get("vma") : nullptr; vj && f.ok())
        ev.vma = parse_vma(*vj, f);
    if (!f.ok()) {
        if (why)
            *why = f.error();
        return std::nullopt;
    }
    return ev;
}

std::string jsonl_header_line(const JsonlHeader& h) {
    json symbols = json::object();
    for (const auto& [addr, sym] : h.symbols)
        symbols[hex(addr)] = sym;
    json j = {
        {"schema", kJsonlSchema},
        {"kernel_release", h.run.kernel_release},
        {"command_line", h.run.command_line},
        {"set_pte_observed", h.run.set_pte_observed},
        {"probes", probes_json(h.run.probes)},
        {"probe_names", h.probe_names},
        {"correlator",
         {{"roots", h.correlator.roots},
          {"expected", detail::milestone_tokens(h.correlator.expected)},
          {"reorder_window_ns", h.correlator.reorder_window_ns},
          {"alloc_attach_ns", h.correlator.alloc_attach_ns},
          {"max_anomalies", h.correlator.max_anomalies}}},
        {"losses", losses_json(h.losses, {.total = false})},
        {"events", h.events},
        {"symbols", std::move(symbols)},
    };
    if (!h.correlator.follow_functions.empty()) // --follow: the followed steps' names
        j["correlator"]["follow_functions"] = h.correlator.follow_functions;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

// The header's parts; json exceptions (a field of the wrong type) go to the
// caller, a value it cannot take comes back as the reason.
void parse_header_probes(const json& j, JsonlHeader& h) {
    for (const json& p : j.value("probes", json::array())) {
        ProbeStatus s;
        s.step = p.at("step").get<std::string>();
        s.wanted = p.at("wanted").get<std::string>();
        s.resolved = p.at("resolved").get<std::string>();
        s.attached = p.at("attached").get<bool>();
        s.off = p.value("off", false); // traces before 2026-12-07 have no such key
        s.reason = p.at("reason").get<std::string>();
        s.mechanism = p.value("mechanism", std::string());
        s.nmissed = p.at("nmissed").get<uint64_t>();
        h.run.probes.push_back(std::move(s));
    }
    h.probe_names = j.value("probe_names", std::vector<std::string>{});
}

std::optional<std::string> parse_header_correlator(const json& j, CorrelatorOptions& co) {
    const json corr = j.value("correlator", json::object());
    co.roots = corr.value("roots", std::vector<uint32_t>{});
    co.reorder_window_ns = corr.value("reorder_window_ns", co.reorder_window_ns);
    co.alloc_attach_ns = corr.value("alloc_attach_ns", co.alloc_attach_ns);
    co.max_anomalies = corr.value("max_anomalies", co.max_anomalies);
    co.follow_functions = corr.value("follow_functions", std::vector<std::string>{});
    if (!corr.contains("expected"))
        return std::nullopt;
    co.expected = 0;
    for (const std::string& tok : corr.at("expected").get<std::vector<std::string>>()) {
        uint16_t bit = 0;
        for (uint16_t b = 0; b < kMilestoneBits && !bit; ++b)
            if (detail::milestone_tokens(static_cast<uint16_t>(1u << b)).front() == tok)
                bit = static_cast<uint16_t>(1u << b);
        if (!bit)
            return "unknown milestone \"" + tok + "\" in \"expected\"";
        co.expected |= bit;
    }
    return std::nullopt;
}

std::optional<std::string> parse_header_losses(const json& j, Losses& l) {
    const json losses = j.value("losses", json::object());
    const json per_type = losses.value("per_type", json::object());
    for (const auto& [name, n] : per_type.items()) {
        auto t = event_type_from_name(name);
        if (!t)
            return "unknown event type \"" + name + "\" in losses";
        l.per_type[*t] = n.get<uint64_t>();
    }
    const json map_full = losses.value("map_full", json::object());
    for (const auto& [name, n] : map_full.items()) {
        auto m = track_slot_from_name(name);
        if (!m || *m == KEX_TRACK_PFN_UNKNOWN)
            return "unknown map \"" + name + "\" in losses.map_full";
        l.map_full[*m] = n.get<uint64_t>();
    }
    l.map_full[KEX_TRACK_PFN_UNKNOWN] = losses.value("pfn_unknown", uint64_t{0});
    l.ring = losses.value("ring", uint64_t{0});
    l.decode_errors = losses.value("decode_errors", uint64_t{0});
    return std::nullopt;
}

std::optional<std::string> parse_header_symbols(const json& j, JsonlHeader& h) {
    const json symbols = j.value("symbols", json::object());
    for (const auto& [addr, sym] : symbols.items()) {
        auto a = parse_hex(json(addr));
        if (!a)
            return "symbol address \"" + addr + "\" is not a hex string";
        h.symbols[*a] = sym.get<std::string>();
    }
    return std::nullopt;
}

} // namespace

std::optional<JsonlHeader> parse_jsonl_header(std::string_view line, std::string* why) {
    auto j = parse_object(line, why);
    if (!j)
        return std::nullopt;
    auto fail = [why](std::string reason) -> std::optional<JsonlHeader> {
        if (why)
            *why = std::move(reason);
        return std::nullopt;
    };
    Fields f(*j);
    const std::string schema = f.string("schema");
    if (!f.ok())
        return fail("not a kextrace events header (" + f.error() + ")");
    if (schema != kJsonlSchema)
        return fail("schema \"" + schema + "\", expected \"" + kJsonlSchema + "\"");
    JsonlHeader h;
    h.run.kernel_release = f.string("kernel_release");
    h.run.command_line = f.string("command_line");
    h.run.set_pte_observed = f.string("set_pte_observed", false);
    h.events = f.integer<uint64_t>("events");
    try {
        parse_header_probes(*j, h);
        for (auto err : {parse_header_correlator(*j, h.correlator),
                         parse_header_losses(*j, h.losses), parse_header_symbols(*j, h)})
            if (err)
                return fail(*err);
    } catch (const json::exception& e) {
        return fail(std::string("malformed header field: ") + e.what());
    }
    if (!f.ok())
        return fail(f.error());
    return h;
}

JsonlRead read_jsonl(std::istream& in, const std::function<void(Event&&)>& on_event) {
    JsonlRead r;
    std::string line, why;
    std::size_t n = 0;
    std::optional<JsonlHeader> header;
    auto error = [&](std::string msg) {
        r.error = JsonlError{n, std::move(msg)};
        return r;
    };
    while (std::getline(in, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos)
            continue;
        if (!header) {
            header = parse_jsonl_header(line, &why);
            if (!header)
                return error("bad header: " + why);
            continue;
        }
        auto ev = parse_jsonl_event(line, &why);
        if (!ev)
            return error("bad event: " + why);
        ++r.events;
        on_event(std::move(*ev));
    }
    if (in.bad())
        return error("read error");
    if (!header) {
        n = 1;
        return error("empty: no header line");
    }
    if (header->events != r.events) {
        ++n;
        return error("truncated: the header announces " + std::to_string(header->events) +
                     " events, the file has " + std::to_string(r.events));
    }
    r.header = std::move(header);
    return r;
}

Symbolizer symbolizer_of(const JsonlHeader& h) {
    auto table = std::make_shared<std::map<uint64_t, std::string>>(h.symbols);
    return [table](uint64_t addr) {
        auto it = table->find(addr);
        return it == table->end() ? std::string() : it->second;
    };
}

} // namespace kextrace
