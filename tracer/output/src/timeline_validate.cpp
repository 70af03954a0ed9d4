// validate_trace_events: the Trace Event Format rules that ui.perfetto.dev and
// chrome://tracing depend on (see kextrace/timeline.h for the list). One
// validator for every test: the unit tests call it, the guest suite and the
// analysis tests run it as build/bin/kextrace-validate-trace.
#include <kextrace/timeline.h>

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <optional>
#include <set>
#include <unordered_map>

namespace kextrace {

using nlohmann::json;

namespace {

using TrackKey = std::pair<int64_t, int64_t>; // (pid, tid)

struct TrackKeyHash {
    std::size_t operator()(const TrackKey& k) const {
        return std::hash<int64_t>()(k.first) * 1000003u ^ std::hash<int64_t>()(k.second);
    }
};

struct Slice {
    double ts = 0;
    double dur = 0;
    std::size_t index = 0;
};

struct FlowRef {
    double ts = 0;
    std::size_t index = 0;
    bool in = false;
    bool out = false;
};

struct V1Flow {
    double ts = 0;
    std::size_t index = 0;
    char ph = 's';
    TrackKey track;
};

struct TrackState {
    double last_ts = -1;
    std::vector<Slice> slices;           // X and B..E, for nesting and v1 flow binding
    std::vector<std::size_t> open_begin; // indexes of open B events
    std::vector<double> open_begin_ts;
    bool has_events = false;
};

class Validator {
  public:
    Validator(const json& doc, std::size_t max_problems) : doc_(doc), max_(max_problems) {}

    TraceCheck run() {
        const json* events = nullptr;
        if (doc_.is_array()) {
            events = &doc_;
        } else if (doc_.is_object()) {
            auto it = doc_.find("traceEvents");
            if (it == doc_.end() || !it->is_array()) {
                problem("top level: no traceEvents array");
                return std::move(c_);
            }
            events = &*it;
            if (auto u = doc_.find("displayTimeUnit"); u != doc_.end())
                if (!u->is_string() || (*u != "ms" && *u != "ns"))
                    problem("top level: displayTimeUnit must be \"ms\" or \"ns\"");
        } else {
            problem("top level: neither an object nor an array");
            return std::move(c_);
        }
        c_.events = events->size();
        for (std::size_t i = 0; i < events->size(); ++i)
            event(i, (*events)[i]);
        finish();
        return std::move(c_);
    }

  private:
    void problem(std::string msg) {
        if (c_.problems.size() < max_)
            c_.problems.push_back(std::move(msg));
        else
            ++c_.problems_dropped;
    }

    std::string where(std::size_t i, const json& e) const {
        std::string ph = e.is_object() && e.contains("ph") && e["ph"].is_string()
                             ? e["ph"].get<std::string>()
                             : "?";
        std::string name = e.is_object() && e.contains("name") && e["name"].is_string()
                               ? e["name"].get<std::string>()
                               : "";
        return fmt::format("traceEvents[{}] ({} \"{}\")", i, ph, name);
    }

    static bool is_int(const json& v) { return v.is_number_integer() || v.is_number_unsigned(); }
    static bool finite_number(const json& v) {
        return v.is_number() && std::isfinite(v.get<double>());
    }

    // What every event carries: ph, a name, pid, and tid where its scope wants one.
    struct Head {
        char ph = 0;
        bool named = false;
        TrackKey key;
    };

    std::optional<Head> head(std::size_t i, const json& e) {
        if (!e.is_object()) {
            problem(fmt::format("traceEvents[{}]: not an object", i));
            return std::nullopt;
        }
        auto ph_it = e.find("ph");
        if (ph_it == e.end() || !ph_it->is_string() || ph_it->get<std::string>().size() != 1) {
            problem(where(i, e) + ": no one-character string ph");
            return std::nullopt;
        }
        Head h;
        h.ph = ph_it->get<std::string>()[0];
        ++c_.phases[std::string(1, h.ph)];
        static const std::string kPhases = "XBEiICMstf";
        if (kPhases.find(h.ph) == std::string::npos) {
            problem(where(i, e) + ": ph not one of X B E i I C M s t f");
            return std::nullopt;
        }
        auto name_it = e.find("name");
        h.named =
            name_it != e.end() && name_it->is_string() && !name_it->get<std::string>().empty();
        if (!h.named && h.ph != 'E')
            problem(where(i, e) + ": no name");
        auto pid_it = e.find("pid");
        auto tid_it = e.find("tid");
        if (pid_it == e.end() || !is_int(*pid_it)) {
            problem(where(i, e) + ": pid missing or not an integer");
            return std::nullopt;
        }
        const bool thread_scoped =
            h.ph != 'C' &&
            !(h.ph == 'M' && h.named && name_it->get<std::string>().rfind("process", 0) == 0);
        if (thread_scoped && (tid_it == e.end() || !is_int(*tid_it))) {
            problem(where(i, e) + ": tid missing or not an integer");
            return std::nullopt;
        }
        if (auto a = e.find("args"); a != e.end() && !a->is_object())
            problem(where(i, e) + ": args is not an object");
        h.key = {pid_it->get<int64_t>(),
                 tid_it != e.end() && is_int(*tid_it) ? tid_it->get<int64_t>() : -1};
        return h;
    }

    void event(std::size_t i, const json& e) {
        const std::optional<Head> h = head(i, e);
        if (!h)
            return;
        if (h->ph == 'M') {
            metadata(i, e, h->key);
            return;
        }
        auto ts_it = e.find("ts");
        if (ts_it == e.end() || !finite_number(*ts_it) || ts_it->get<double>() < 0) {
            problem(where(i, e) + ": ts missing, not a finite number, or negative");
            return;
        }
        const double ts = ts_it->get<double>();
        if (h->ph == 'C') {
            counter(i, e, ts);
            return;
        }
        if ((h->ph == 'i' || h->ph == 'I') && e.contains("s")) {
            const json& s = e["s"];
            if (!s.is_string() || (s != "t" && s != "p" && s != "g"))
                problem(where(i, e) + ": instant scope s not one of t p g");
            else if (s != "t")
                return; // process or global instants are not on a thread track
        }
        on_track(i, e, *h, ts);
    }

    // An event on its thread's track: in time order; slices, B/E pairs, flows.
    void on_track(std::size_t i, const json& e, const Head& h, double ts) {
        const TrackKey& key = h.key;
        TrackState& t = tracks_[key];
        t.has_events = true;
        if (ts < t.last_ts)
            problem(where(i, e) + fmt::format(": ts {} goes back on track pid {} tid {} (last {})",
                                              ts, key.first, key.second, t.last_ts));
        t.last_ts = std::max(t.last_ts, ts);
        switch (h.ph) {
        case 'X': {
            auto d = e.find("dur");
            if (d == e.end() || !finite_number(*d) || d->get<double>() < 0) {
                problem(where(i, e) + ": X without a finite dur >= 0");
                return;
            }
            t.slices.push_back({ts, d->get<double>(), i});
            v2_flow(i, e, ts);
            break;
        }
        case 'B':
            t.open_begin.push_back(i);
            t.open_begin_ts.push_back(ts);
            v2_flow(i, e, ts);
            break;
        case 'E':
            if (t.open_begin.empty()) {
                problem(where(i, e) + ": E without an open B on its track");
            } else {
                const json& b = (*events())[t.open_begin.back()];
                if (h.named && b.contains("name") && b["name"] != e["name"])
                    problem(where(i, e) + ": E closes B \"" + b["name"].get<std::string>() +
                            "\" (B/E must nest)");
                t.slices.push_back(
                    {t.open_begin_ts.back(), ts - t.open_begin_ts.back(), t.open_begin.back()});
                t.open_begin.pop_back();
                t.open_begin_ts.pop_back();
            }
            break;
        case 's':
        case 't':
        case 'f':
            if (!e.contains("id") || !(is_int(e["id"]) || e["id"].is_string()))
                problem(where(i, e) + ": flow event without an id");
            else
                v1_.emplace_back(e["id"].dump(), V1Flow{ts, i, h.ph, key});
            break;
        default:
            break;
        }
    }

    const json* events() const { return doc_.is_array() ? &doc_ : &doc_["traceEvents"]; }

    void metadata(std::size_t i, const json& e, const TrackKey& key) {
        const std::string name = e.value("name", "");
        const json args = e.value("args", json::object());
        if (name == "process_name" || name == "thread_name" || name == "process_labels") {
            const char* k = name == "process_labels" ? "labels" : "name";
            if (!args.contains(k) || !args[k].is_string())
                problem(where(i, e) + fmt::format(": args.{} missing or not a string", k));
            else if (name == "thread_name")
                c_.thread_names[fmt::format("{}/{}", key.first, key.second)] =
                    args[k].get<std::string>();
        } else if (name == "process_sort_index" || name == "thread_sort_index") {
            if (!args.contains("sort_index") || !is_int(args["sort_index"]))
                problem(where(i, e) + ": args.sort_index missing or not an integer");
        } else {
            problem(where(i, e) + ": unknown metadata name");
        }
    }

    void counter(std::size_t i, const json& e, double ts) {
        auto a = e.find("args");
        if (a == e.end() || !a->is_object() || a->empty()) {
            problem(where(i, e) + ": counter without args");
            return;
        }
        for (auto it = a->begin(); it != a->end(); ++it)
            if (!finite_number(*it))
                problem(where(i, e) + ": counter series \"" + it.key() + "\" is not a number");
        const std::string key =
            fmt::format("{}/{}", e["pid"].get<int64_t>(),
                        e["name"].is_string() ? e["name"].get<std::string>() : std::string());
        double& last = counters_.try_emplace(key, -1.0).first->second;
        if (ts < last)
            problem(where(i, e) + ": counter ts goes back");
        last = std::max(last, ts);
    }

    void v2_flow(std::size_t i, const json& e, double ts) {
        auto b = e.find("bind_id");
        if (b == e.end())
            return;
        if (!is_int(*b) && !b->is_string()) {
            problem(where(i, e) + ": bind_id is neither an integer nor a string");
            return;
        }
        const bool in = e.value("flow_in", false), out = e.value("flow_out", false);
        if (!in && !out) {
            problem(where(i, e) + ": bind_id without flow_in or flow_out");
            return;
        }
        v2_[b->dump()].push_back({ts, i, in, out});
    }

    void finish() {
        for (auto& [key, t] : tracks_) {
            if (t.has_events)
                ++c_.tracks;
            for (std::size_t b : t.open_begin)
                problem(fmt::format("traceEvents[{}] (B): never closed by an E", b));
            nesting(key, t);
        }
        for (auto& [id, refs] : v2_) {
            std::stable_sort(refs.begin(), refs.end(),
                             [](const FlowRef& a, const FlowRef& b) { return a.ts < b.ts; });
            bool open = false;
            for (const FlowRef& f : refs) {
                if (f.in) {
                    if (!open)
                        problem(fmt::format("traceEvents[{}]: flow_in of bind_id {} with no "
                                            "earlier flow_out",
                                            f.index, id));
                    else
                        ++c_.flow_arrows;
                    open = f.out;
                } else if (f.out) {
                    if (open)
                        problem(fmt::format("traceEvents[{}]: flow_out of bind_id {} while "
                                            "that flow is already open (duplicate id)",
                                            f.index, id));
                    open = true;
                }
            }
            if (open)
                problem(fmt::format("bind_id {}: flow_out never consumed by a flow_in", id));
        }
        v1_flows();
    }

    // Slices on a track must nest: sorted by (ts, longest first), each one
    // ends within the innermost slice still open at its start.
    void nesting(const TrackKey& key, TrackState& t) {
        std::stable_sort(t.slices.begin(), t.slices.end(), [](const Slice& a, const Slice& b) {
            return a.ts != b.ts ? a.ts < b.ts : a.dur > b.dur;
        });
        std::vector<const Slice*> open;
        for (const Slice& s : t.slices) {
            while (!open.empty()) {
                const double end = open.back()->ts + open.back()->dur;
                if (end < s.ts || (end == s.ts && s.dur > 0))
                    open.pop_back();
                else
                    break;
            }
            if (!open.empty() && s.ts + s.dur > open.back()->ts + open.back()->dur + 1e-9)
                problem(fmt::format("traceEvents[{}]: slice overlaps traceEvents[{}] partially "
                                    "on track pid {} tid {} (slices must nest)",
                                    s.index, open.back()->index, key.first, key.second));
            open.push_back(&s);
        }
    }

    bool enclosed(const TrackKey& key, double ts) const {
        auto it = tracks_.find(key);
        if (it == tracks_.end())
            return false;
        for (const Slice& s : it->second.slices)
            if (s.ts <= ts && ts <= s.ts + s.dur)
                return true;
        return false;
    }

    void v1_flows() {
        std::stable_sort(v1_.begin(), v1_.end(), [](const auto& a, const auto& b) {
            return a.first != b.first ? a.first < b.first : a.second.ts < b.second.ts;
        });
        std::string id;
        bool started = false;
        for (const auto& [fid, f] : v1_) {
            if (fid != id) {
                id = fid;
                started = false;
            }
            if (!enclosed(f.track, f.ts))
                problem(fmt::format("traceEvents[{}] ({}): flow id {} not bound to a slice of its "
                                    "track at its ts",
                                    f.index, f.ph, fid));
            if (f.ph == 's') {
                if (started)
                    problem(fmt::format("traceEvents[{}]: flow id {} started twice", f.index, fid));
                started = true;
            } else if (!started) {
                problem(fmt::format("traceEvents[{}] ({}): flow id {} has no earlier s", f.index,
                                    f.ph, fid));
            } else {
                ++c_.flow_arrows;
                if (f.ph == 'f')
                    started = false;
            }
        }
    }

    const json& doc_;
    std::size_t max_;
    TraceCheck c_;
    std::unordered_map<TrackKey, TrackState, TrackKeyHash> tracks_;
    std::map<std::string, double> counters_;
    std::map<std::string, std::vector<FlowRef>> v2_;
    std::vector<std::pair<std::string, V1Flow>> v1_;
};

} // namespace

TraceCheck validate_trace_events(const json& doc, std::size_t max_problems) {
    return Validator(doc, max_problems).run();
}

} // namespace kextrace
