// render_leaks_text / leaks_json: the leak verdicts of kextrace --leaks.
// Sample (noput on pages 1 and 5 of 8, policy drop):
//
// clang-format off
// leaks: 2 leaked, 6 freed (8 page lives; the device was closed)
//   index pfn       verdict              ref map  last event
//       0 0x10a3f0  freed                  0   0  page_free +16.2us
//       1 0x10a3f1  LEAKED                 1   0  rmap_remove +15.5us
//   ...
//
// leaked: pages 1, 5 (pfn 0x10a3f1, 0x10a3f5): never freed, no mapping left; never dropped:
//         alloc at kex_alloc
//   reference        taken dropped  booked at    site
//   alloc                1       -  kex_alloc    kex_mmap+0x1a5 [kex]
//   vm_insert_page       1       -  insert       insert_page_into_pte_locked.constprop.0+0x4 ← kex_mmap+0x201 [kex]
//   zap                  -       1  rmap_remove  (after the last event)
//   never dropped: 1 reference (alloc), taken at
//     kex_mmap+0x1a5 [kex]
//     mmap_region+0x5a1
//     ...
// clang-format on
#include <kextrace/output.h>

#include "format.h"
#include "pretty_json.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>

namespace kextrace {

using detail::cell;
using detail::delta;
using detail::hex;
using detail::rcell;

namespace {

constexpr std::size_t kGroupsCompact = 8; // bug groups detailed when not full
constexpr std::size_t kFramesCompact = 12;

std::string symbol(const Symbolizer& symbolize, uint64_t addr) {
    std::string s = symbolize ? symbolize(addr) : std::string();
    return s.empty() ? hex(addr) : s;
}

std::string count_cell(int32_t c) {
    return c == kNoCount ? "?" : std::to_string(c);
}

// Where a stack says a reference was taken: its first frame and, when that
// is the kernel's, the first module frame under it (the driver's call site).
std::string site_of(const Report& r, uint32_t stack_id, const Symbolizer& symbolize) {
    const auto st = r.stack(stack_id);
    if (st.empty())
        return "";
    std::string first = symbol(symbolize, st[0]);
    if (first.find(" [") != std::string::npos)
        return first;
    for (std::size_t i = 1; i < st.size(); ++i) {
        std::string s = symbolize ? symbolize(st[i]) : std::string();
        if (s.find(" [") != std::string::npos)
            return first + " ← " + s;
    }
    return first;
}

// Pages with the same verdict and the same ledger are one finding.
std::string group_key(const PageVerdict& v) {
    std::string k = std::string(verdict_key(v.verdict)) + "|";
    for (const LedgerLine& l : v.ledger)
        k += fmt::format("{}/{}/{}/{}/{};", ref_site_key(l.site), l.stack_id,
                         step_kind_name(l.kind), l.taken, l.dropped);
    k += "|";
    for (uint32_t i : v.never_dropped)
        k += fmt::format("{}/{};", ref_site_key(v.changes[i].site), v.changes[i].stack_id);
    return k;
}

std::string list(const std::vector<std::string>& items, std::size_t max) {
    std::string s;
    for (std::size_t i = 0; i < items.size() && i < max; ++i)
        s += (i ? ", " : "") + items[i];
    if (items.size() > max)
        s += fmt::format(", … ({} in all)", items.size());
    return s;
}

void render_group(const Report& r, const LeakReport& l, const std::vector<uint32_t>& members,
                  const Symbolizer& symbolize, const TextOptions& opts, std::ostream& out) {
    const PageVerdict& v = l.pages[members.front()];
    std::vector<std::string> idx, pfns;
    for (uint32_t m : members) {
        const PageLife& p = r.pages[l.pages[m].life];
        idx.push_back(p.index == kNoIndex ? "?" : std::to_string(p.index));
        pfns.push_back(hex(p.pfn));
    }
    out << fmt::format("{}: page{} {} (pfn {}): {}\n", verdict_name(v.verdict),
                       members.size() > 1 ? "s" : "", list(idx, 16), list(pfns, 4), v.reason);
    out << fmt::format("  refcount {}, mapcount {} after its last event ({}, read {}/{})\n",
                       count_cell(v.refcount), count_cell(v.mapcount),
                       step_kind_name(r.pages[v.life].steps.empty()
                                          ? StepKind::kex_alloc
                                          : r.pages[v.life].steps[v.last_step].kind),
                       count_cell(v.last_refcount), count_cell(v.last_mapcount));
    out << "  " << cell("reference", 16) << ' ' << rcell("taken", 5) << ' ' << rcell("dropped", 7)
        << "  " << cell("booked at", 12) << " site\n";
    for (const LedgerLine& line : v.ledger) {
        bool inferred = false;
        for (const RefChange& c : v.changes)
            if (c.site == line.site && c.stack_id == line.stack_id && c.kind == line.kind &&
                c.inferred && c.delta)
                inferred = true;
        std::string site = site_of(r, line.stack_id, symbolize);
        if (inferred)
            site = "(after the last event: inferred)" + (site.empty() ? "" : " " + site);
        out << "  " << cell(ref_site_name(line.site), 16) << ' '
            << rcell(line.taken ? std::to_string(line.taken) : "-", 5) << ' '
            << rcell(line.dropped ? std::to_string(line.dropped) : "-", 7) << "  "
            << cell(step_kind_name(line.kind), 12) << ' ' << (site.empty() ? "-" : site) << '\n';
    }
    for (const RefChange& c : v.changes)
        if (c.delta == 0 && c.inferred)
            out << fmt::format("  note: {} at {} changed no count (expected {:+d})\n",
                               ref_site_name(c.site), step_kind_name(c.kind),
                               c.site == RefSite::insert ? 1 : -1);
    for (uint32_t i : v.never_dropped) {
        const RefChange& c = v.changes[i];
        out << fmt::format("  never dropped: {} reference{} ({} {}), taken at\n", c.open,
                           c.open > 1 ? "s" : "", ref_site_name(c.site),
                           change_where(r.pages[v.life], c));
        const auto st = r.stack(c.stack_id);
        if (st.empty())
            out << "    (no stack recorded for this event)\n";
        const std::size_t n = opts.full ? st.size() : std::min(st.size(), kFramesCompact);
        for (std::size_t k = 0; k < n; ++k)
            out << "    " << symbol(symbolize, st[k]) << '\n';
        if (n < st.size())
            out << fmt::format("    … {} more frames\n", st.size() - n);
    }
}

nlohmann::json count_json(int32_t c) {
    return c == kNoCount ? nlohmann::json(nullptr) : nlohmann::json(c);
}

nlohmann::json frames_json(const Report& r, uint32_t stack_id, const Symbolizer& symbolize) {
    nlohmann::json f = nlohmann::json::array();
    for (uint64_t a : r.stack(stack_id))
        f.push_back(symbol(symbolize, a));
    return f;
}

// The head: the verdicts counted, who holds pages, what the trace may have missed.
void write_leak_summary(const LeakReport& l, std::ostream& out) {
    std::string counts;
    for (std::size_t v = 0; v < kVerdicts; ++v) {
        const auto verdict = static_cast<Verdict>(v);
        if (l.counts[v])
            counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", l.counts[v],
                                  verdict_name(verdict));
    }
    out << fmt::format("leaks: {} ({} page lives; {})\n", counts.empty() ? "no page" : counts,
                       l.pages.size(),
                       l.device_closed ? "the device was closed" : "the device may still be open");
    std::map<std::string, std::size_t> holders;
    for (const PageVerdict& v : l.pages)
        if (v.verdict == Verdict::held && !v.holder.empty())
            ++holders[v.holder];
    for (const auto& [h, n] : holders)
        out << fmt::format("  held by {}: {} page{}\n", h, n, n == 1 ? "" : "s");
    if (l.events_lost)
        out << fmt::format("  {} events lost: pages they may concern are inconclusive, never "
                           "leaked\n",
                           l.events_lost);
    if (l.orphans)
        out << fmt::format("  {} page events had no page life: the trace may have missed pages\n",
                           l.orphans);
}

// The table: every page when few (or --full), else the ones not freed.
void write_verdict_table(const LeakReport& l, const Report& r, std::ostream& out,
                         const TextOptions& opts) {
    const bool all_rows = opts.full || l.pages.size() <= opts.compact_threshold;
    out << "  " << rcell("index", 5) << ' ' << cell("pfn", 9) << ' ' << cell("verdict", 20) << ' '
        << rcell("ref", 3) << ' ' << rcell("map", 3) << "  last event\n";
    std::size_t hidden = 0;
    for (const PageVerdict& v : l.pages) {
        if (!all_rows && v.verdict == Verdict::freed) {
            ++hidden;
            continue;
        }
        const PageLife& p = r.pages[v.life];
        std::string name(verdict_name(v.verdict));
        if (v.verdict == Verdict::leaked || v.verdict == Verdict::freed_while_mapped)
            for (char& c : name)
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        const std::string last =
            p.steps.empty() ? "-"
                            : fmt::format("{} {}", step_kind_name(p.steps[v.last_step].kind),
                                          delta(p.alloc_ts, p.steps[v.last_step].ts));
        out << "  " << rcell(p.index == kNoIndex ? "?" : std::to_string(p.index), 5) << ' '
            << cell(hex(p.pfn), 9) << ' ' << cell(name, 20) << ' '
            << rcell(count_cell(v.refcount), 3) << ' ' << rcell(count_cell(v.mapcount), 3) << "  "
            << last << '\n';
    }
    if (hidden)
        out << fmt::format("  ({} freed pages not listed: --full)\n", hidden);
}

// The findings: bugs, grouped by identical ledgers.
void write_findings(const LeakReport& l, const Report& r, std::ostream& out,
                    const Symbolizer& symbolize, const TextOptions& opts) {
    std::vector<std::string> order;
    std::map<std::string, std::vector<uint32_t>> groups;
    for (uint32_t i = 0; i < l.pages.size(); ++i) {
        const PageVerdict& v = l.pages[i];
        if (v.verdict != Verdict::leaked && v.verdict != Verdict::freed_while_mapped)
            continue;
        std::string k = group_key(v);
        auto [it, inserted] = groups.try_emplace(k);
        if (inserted)
            order.push_back(k);
        it->second.push_back(i);
    }
    std::size_t shown = 0;
    for (const std::string& k : order) {
        if (!opts.full && shown == kGroupsCompact) {
            out << fmt::format("\n… {} more findings (--full, or --json)\n", order.size() - shown);
            break;
        }
        out << '\n';
        render_group(r, l, groups[k], symbolize, opts, out);
        ++shown;
    }
}

// The same document as leaks_json's tree, streamed: members in key (byte) order.
void write_last_event(detail::Pretty& w, const PageVerdict& v, const Step& s) {
    w.begin_object();
    w.key("kind").str(step_kind_name(s.kind));
    w.key("mapcount").count(v.last_mapcount);
    w.key("refcount").count(v.last_refcount);
    w.key("ts").u64(s.ts);
    w.end_object();
}

void write_changes(detail::Pretty& w, const PageVerdict& v, const PageLife& p) {
    w.begin_array();
    for (const RefChange& c : v.changes) {
        w.elem().begin_object();
        w.key("at").str(step_kind_name(c.kind));
        w.key("delta").i64(c.delta);
        w.key("from");
        c.from_step == kNoStep ? w.null() : w.str(step_kind_name(p.steps[c.from_step].kind));
        w.key("inferred").boolean(c.inferred);
        w.key("open").i64(c.open);
        w.key("site").str(ref_site_key(c.site));
        w.key("stack").u64(c.stack_id);
        w.key("step").u64(c.step);
        w.key("ts").u64(c.ts);
        w.end_object();
    }
    w.end_array();
}

void write_ledger(detail::Pretty& w, const PageVerdict& v) {
    w.begin_array();
    for (const LedgerLine& line : v.ledger) {
        w.elem().begin_object();
        w.key("at").str(step_kind_name(line.kind));
        w.key("dropped").i64(line.dropped);
        w.key("site").str(ref_site_key(line.site));
        w.key("stack").u64(line.stack_id);
        w.key("taken").i64(line.taken);
        w.end_object();
    }
    w.end_array();
}

void write_never_dropped(detail::Pretty& w, const PageVerdict& v, const PageLife& p,
                         const Report& r, const Symbolizer& symbolize) {
    w.begin_array();
    for (uint32_t i : v.never_dropped) {
        const RefChange& c = v.changes[i];
        w.elem().begin_object();
        w.key("at").str(step_kind_name(c.kind));
        w.key("frames").begin_array();
        for (uint64_t a : r.stack(c.stack_id))
            w.elem().str(symbol(symbolize, a));
        w.end_array();
        w.key("references").i64(c.open);
        w.key("site").str(ref_site_key(c.site));
        w.key("stack").u64(c.stack_id);
        w.key("ts").u64(c.ts);
        w.key("where").str(change_where(p, c));
        w.end_object();
    }
    w.end_array();
}

void write_verdict(detail::Pretty& w, const PageVerdict& v, const Report& r,
                   const Symbolizer& symbolize) {
    const PageLife& p = r.pages[v.life];
    const bool details = v.verdict != Verdict::freed || !v.balanced;
    w.begin_object();
    w.key("balanced").boolean(v.balanced);
    if (details)
        write_changes(w.key("changes"), v, p);
    w.key("holder");
    v.holder.empty() ? w.null() : w.str(v.holder);
    w.key("index");
    p.index == kNoIndex ? w.null() : w.u64(p.index);
    if (!p.steps.empty())
        write_last_event(w.key("last_event"), v, p.steps[v.last_step]);
    if (details)
        write_ledger(w.key("ledger"), v);
    w.key("life").u64(v.life);
    w.key("mapcount").count(v.mapcount);
    if (details)
        write_never_dropped(w.key("never_dropped"), v, p, r, symbolize);
    w.key("owner").u64(p.owner);
    w.key("pfn").u64(p.pfn);
    w.key("reason").str(v.reason);
    w.key("refcount").count(v.refcount);
    w.key("verdict").str(verdict_key(v.verdict));
    w.end_object();
}

} // namespace

namespace detail {

void write_leaks_json(Pretty& w, const LeakReport& l, const Report& r,
                      const Symbolizer& symbolize) {
    // counts' keys (verdict_key) in byte order
    std::array<std::size_t, kVerdicts> order{};
    for (std::size_t v = 0; v < kVerdicts; ++v)
        order[v] = v;
    std::sort(order.begin(), order.end(), [](std::size_t a, std::size_t b) {
        return verdict_key(static_cast<Verdict>(a)) < verdict_key(static_cast<Verdict>(b));
    });
    w.begin_object();
    w.key("bugs").u64(l.bugs());
    w.key("counts").begin_object();
    for (std::size_t v : order)
        w.key(verdict_key(static_cast<Verdict>(v))).u64(l.counts[v]);
    w.end_object();
    w.key("device_closed").boolean(l.device_closed);
    w.key("events_lost").u64(l.events_lost);
    w.key("orphans").u64(l.orphans);
    w.key("pages").begin_array();
    for (const PageVerdict& v : l.pages)
        write_verdict(w.elem(), v, r, symbolize);
    w.end_array();
    w.end_object();
}

} // namespace detail

void render_leaks_text(const LeakReport& l, const Report& r, std::ostream& out,
                       const Symbolizer& symbolize, const TextOptions& opts) {
    write_leak_summary(l, out);
    if (l.pages.empty())
        return;
    write_verdict_table(l, r, out, opts);
    write_findings(l, r, out, symbolize, opts);
}

nlohmann::json leaks_json(const LeakReport& l, const Report& r, const Symbolizer& symbolize) {
    using json = nlohmann::json;
    json counts = json::object();
    for (std::size_t v = 0; v < kVerdicts; ++v)
        counts[std::string(verdict_key(static_cast<Verdict>(v)))] = l.counts[v];
    json pages = json::array();
    for (const PageVerdict& v : l.pages) {
        const PageLife& p = r.pages[v.life];
        json j = {{"life", v.life},
                  {"index", p.index == kNoIndex ? json(nullptr) : json(p.index)},
                  {"pfn", p.pfn},
                  {"owner", p.owner},
                  {"verdict", verdict_key(v.verdict)},
                  {"reason", v.reason},
                  {"holder", v.holder.empty() ? json(nullptr) : json(v.holder)},
                  {"refcount", count_json(v.refcount)},
                  {"mapcount", count_json(v.mapcount)},
                  {"balanced", v.balanced}};
        if (!p.steps.empty()) {
            const Step& s = p.steps[v.last_step];
            j["last_event"] = {{"kind", step_kind_name(s.kind)},
                               {"ts", s.ts},
                               {"refcount", count_json(v.last_refcount)},
                               {"mapcount", count_json(v.last_mapcount)}};
        }
        if (v.verdict != Verdict::freed || !v.balanced) {
            json ledger = json::array();
            for (const LedgerLine& line : v.ledger)
                ledger.push_back({{"site", ref_site_key(line.site)},
                                  {"at", step_kind_name(line.kind)},
                                  {"taken", line.taken},
                                  {"dropped", line.dropped},
                                  {"stack", line.stack_id}});
            json changes = json::array();
            for (const RefChange& c : v.changes)
                changes.push_back(
                    {{"site", ref_site_key(c.site)},
                     {"delta", c.delta},
                     {"at", step_kind_name(c.kind)},
                     {"from", c.from_step == kNoStep
                                  ? nlohmann::json(nullptr)
                                  : nlohmann::json(step_kind_name(p.steps[c.from_step].kind))},
                     {"step", c.step},
                     {"ts", c.ts},
                     {"stack", c.stack_id},
                     {"inferred", c.inferred},
                     {"open", c.open}});
            json never = json::array();
            for (uint32_t i : v.never_dropped) {
                const RefChange& c = v.changes[i];
                never.push_back({{"site", ref_site_key(c.site)},
                                 {"at", step_kind_name(c.kind)},
                                 {"where", change_where(p, c)},
                                 {"ts", c.ts},
                                 {"references", c.open},
                                 {"stack", c.stack_id},
                                 {"frames", frames_json(r, c.stack_id, symbolize)}});
            }
            j["ledger"] = std::move(ledger);
            j["changes"] = std::move(changes);
            j["never_dropped"] = std::move(never);
        }
        pages.push_back(std::move(j));
    }
    return {{"device_closed", l.device_closed},
            {"events_lost", l.events_lost},
            {"orphans", l.orphans},
            {"counts", std::move(counts)},
            {"bugs", l.bugs()},
            {"pages", std::move(pages)}};
}

} // namespace kextrace
