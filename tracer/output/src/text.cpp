// render_text: the human report. Sample (2 pages, policy drop):
//
// clang-format off
// kextrace: kernel 6.1.0-56-amd64, 2 page lives, 36 events, 0 lost
// command:  mmap_test /dev/kex 2
//
// probes
// step       wanted                         attached to                              missed
// insert     insert_page_into_pte_locked    insert_page_into_pte_locked.constprop.0       0
//            clone without addr: page PARM3
// set_pte_at: PTE read back at the return of insert_page_into_pte_locked.constprop.0
// losses: none
//
// phases (start from the first event)
// phase      tgid     start  duration kernel ev faults  busiest kernel events
// mmap       4242      +0ns    4.50us        17      0  page_alloc 3, kex_page_alloc 2, …
// write      4242   +4.75us    10.2us         0      0  -
// munmap     4242   +15.2us    3.50us        13      0  page_free 2, page_free_batched 2, …
//
// kex mappings
// range                          pages policy  result             lives other allocs closed
// 0x7f5a3c000000-0x7f5a3c002000      2 drop    ok, 2 mapped           2            1 +18.2us
//
// pages, insert side: 2 lives, policy drop (alloc@: since the first event; others: since alloc)
//   # pfn       user address   alloc@  insert     rmap    PTE                bits          write
//   0 0x10a3f0  0x7f5a3c000000 +750ns  ok +1.00us +750ns  0x800000010a3f0027 P RW U A - NX no fault
//   1 0x10a3f1  0x7f5a3c001000 +2.50us ok +1.00us +750ns  0x800000010a3f1027 P RW U A - NX no fault
// pages, unmap side (times since alloc)
//   # kex free             zap                  free            refcount  mapcount  story
//   0 +1.50us after-insert +15.5us munmap dirty +16.2us batched 1→2→1→0   0→1→0     complete
//   1 +1.50us after-insert +14.2us munmap dirty +15.0us batched 1→2→1→0   0→1→0     complete
//
// anomalies: none
// summary: 2 page lives: 2 complete, 0 incomplete; anomalies 0; events lost 0
//        refcount 1→2→1→0 2/2; first write without fault 2/2; zap dirty 2/2
//        orphan events 0; other allocations 1; filtered events 0
// clang-format on
#include <kextrace/output.h>
#include <kextrace/owner.h>

#include "format.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace kextrace {

using detail::cell;
using detail::delta;
using detail::duration;
using detail::hex;
using detail::rcell;

namespace {

constexpr std::size_t kAnomaliesCompact = 20; // anomalies listed when not full
constexpr std::size_t kColumns = 100;         // free text wraps here

std::string symbol(const Symbolizer& symbolize, uint64_t addr) {
    std::string s = symbolize ? symbolize(addr) : std::string();
    return s.empty() ? hex(addr) : s;
}

std::optional<Step> find_step(const PageLife& p, StepKind k) {
    for (const Step& s : p.steps)
        if (s.kind == k)
            return s;
    return std::nullopt;
}

std::string losses_line(const Losses& l) {
    if (!l.total())
        return "losses: none";
    std::string s = fmt::format("losses: {} (", l.total());
    bool first = true;
    auto add = [&](std::string_view what, uint64_t n) {
        if (!n)
            return;
        s += fmt::format("{}{} {}", first ? "" : ", ", what, n);
        first = false;
    };
    for (std::size_t t = 0; t < kTypeSlots; ++t)
        add(event_type_name(static_cast<uint32_t>(t)), l.per_type[t]);
    add("ring", l.ring);
    add("undecodable", l.decode_errors);
    for (uint32_t m = 0; m < kTrackSlots; ++m)
        if (m != KEX_TRACK_PFN_UNKNOWN)
            add(fmt::format("{} map full", track_slot_name(m)), l.map_full[m]);
    return s + ")";
}

// Not a loss: records of non-kex pages that carry no pfn.
std::string pfn_unknown_line(const Losses& l) {
    return fmt::format("pfn unknown: {} non-kex pages (no vmemmap_base in kallsyms, or an "
                       "argument read was no struct page: see --plan, --insert-args)",
                       l.pfn_unknown());
}

void render_probes(const Report& r, const RunInfo& run, std::ostream& out) {
    out << "probes\n";
    if (run.probes.empty()) {
        out << "  (no probe report)\n";
    } else {
        out << "  " << cell("step", 10) << ' ' << cell("wanted", 30) << ' '
            << cell("attached to", 40) << ' ' << rcell("missed", 6) << '\n';
        for (const ProbeStatus& p : run.probes) {
            const std::string where = p.attached ? (p.resolved.empty() ? p.wanted : p.resolved)
                                                 : (p.off ? "off" : "NOT ATTACHED");
            out << "  " << cell(p.step, 10) << ' ' << cell(p.wanted, 30) << ' ' << cell(where, 40)
                << ' ' << rcell(std::to_string(p.nmissed), 6) << '\n';
            if (!p.reason.empty())
                out << "             " << p.reason << '\n';
        }
    }
    std::size_t via_insert = 0, via_fault = 0, via_lookup = 0;
    for (const PageLife& p : r.pages) {
        via_insert += p.pte_source == PteSource::insert_ret;
        via_fault += p.pte_source == PteSource::do_set_pte_ret;
        via_lookup += p.pte_source == PteSource::pte_lookup;
    }
    if (!run.set_pte_observed.empty()) {
        out << "  set_pte_at: " << run.set_pte_observed << '\n';
    } else {
        out << "  set_pte_at is inline on x86 (no probe): the PTE is read back at the return of "
               "its caller\n";
        out << fmt::format("    (insert_page_into_pte_locked: {} pages, do_set_pte: {} pages)\n",
                           via_insert, via_fault);
    }
    if (via_lookup)
        out << fmt::format("  pfn maps: remap_pfn_range writes their PTEs in inline helpers; {} "
                           "pages' PTEs are the ones vm_normal_page was given (zap, write fault)\n",
                           via_lookup);
    out << "  " << losses_line(r.losses) << '\n';
    if (r.losses.pfn_unknown())
        out << "  " << pfn_unknown_line(r.losses) << '\n';
}

std::string busiest(const Phase& ph, std::size_t w) {
    std::vector<std::pair<uint32_t, uint32_t>> v; // (count, type)
    for (std::size_t t = 0; t < kTypeSlots; ++t)
        if (ph.counts[t])
            v.emplace_back(ph.counts[t], static_cast<uint32_t>(t));
    std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first > b.first; });
    std::string s;
    for (auto& [n, t] : v) {
        std::string item = fmt::format("{}{} {}", s.empty() ? "" : ", ", event_type_name(t), n);
        if (detail::width(s) + detail::width(item) > w) {
            s += ", …";
            break;
        }
        s += item;
    }
    return s.empty() ? "-" : s;
}

void render_phases(const Report& r, std::ostream& out) {
    out << "phases (start from the first event)\n";
    if (r.phases.empty()) {
        out << "  (no rig phase markers)\n";
        return;
    }
    out << "  " << cell("phase", 7) << ' ' << rcell("tgid", 7) << ' ' << rcell("start", 9) << ' '
        << rcell("duration", 9) << ' ' << rcell("kernel ev", 9) << ' ' << rcell("faults", 6)
        << "  busiest kernel events\n";
    for (const Phase& ph : r.phases) {
        const std::string dur =
            ph.closed ? duration(ph.end - ph.start) : ">" + duration(ph.end - ph.start) + " (open)";
        out << "  " << cell(ph.name, 7) << ' ' << rcell(std::to_string(ph.tgid), 7) << ' '
            << rcell(delta(r.first_ts, ph.start), 9) << ' ' << rcell(dur, 9) << ' '
            << rcell(std::to_string(ph.kernel_events), 9) << ' '
            << rcell(std::to_string(ph.user_faults), 6) << "  " << busiest(ph, 41) << '\n';
    }
}

bool any_driver_mapping(const Report& r) {
    return std::any_of(r.mappings.begin(), r.mappings.end(),
                       [](const Mapping& m) { return m.driver; });
}

void render_mappings(const Report& r, std::ostream& out) {
    out << "kex mappings\n";
    if (std::all_of(r.mappings.begin(), r.mappings.end(),
                    [](const Mapping& m) { return m.driver; })) {
        out << "  (no kex_mmap seen)\n";
        return;
    }
    out << "  " << cell("range", 29) << ' ' << rcell("pages", 6) << ' ' << cell("policy", 7) << ' '
        << cell("mode", 7) << ' ' << cell("result", 17) << ' ' << rcell("lives", 6) << ' '
        << rcell("other allocs", 12) << ' ' << "closed\n";
    for (const Mapping& m : r.mappings) {
        if (m.driver)
            continue;
        const std::string result =
            !m.done_ts ? "not done"
                       : (m.ret == 0 ? fmt::format("ok, {} mapped", m.mapped)
                                     : fmt::format("ret {}, {} mapped", m.ret, m.mapped));
        out << "  " << cell(hex(m.vm_start) + "-" + hex(m.vm_end), 29) << ' '
            << rcell(std::to_string(m.pages), 6) << ' ' << cell(policy_name(m.policy), 7)
            << ' '
            // "?": no kex:kex_mmap_mode, the mode is inferred from the events
            << cell(std::string(map_mode_name(m.mode)) + (m.mode_inferred ? "?" : ""), 7) << ' '
            << cell(result, 17) << ' ' << rcell(std::to_string(m.lives), 6) << ' '
            << rcell(std::to_string(m.other_allocations), 12) << ' '
            << (m.close_ts ? delta(r.first_ts, m.close_ts) : "-") << '\n';
    }
}

// Other drivers' mappings (KEX_EV_DRIVER_VMA): range, file, owner.
void render_driver_mappings(const Report& r, const Symbolizer& symbolize, std::ostream& out) {
    out << "driver mappings (another driver's pages, followed from their first insert or "
           "fault)\n";
    out << "  " << cell("range", 29) << ' ' << rcell("pages", 6) << ' ' << rcell("lives", 6) << ' '
        << cell("flags", 22) << ' ' << cell("owner", 12) << ' ' << "file\n";
    for (const Mapping& m : r.mappings) {
        if (!m.driver)
            continue;
        const DriverOwner o = mapping_owner(r, m, symbolize);
        out << "  " << cell(hex(m.vm_start) + "-" + hex(m.vm_end), 29) << ' '
            << rcell(std::to_string(m.pages), 6) << ' ' << rcell(std::to_string(m.lives), 6) << ' '
            << cell(vm_flags_name(m.vm_flags), 22) << ' '
            << cell(o.name + (o.module ? "" : "*"), 12) << ' '
            << (o.file.empty() ? "(no file)" : o.file) << '\n';
        std::string via;
        auto add = [&](std::string_view what, const std::string& v) {
            if (!v.empty())
                via += fmt::format("{}{} {}", via.empty() ? "" : ", ", what, v);
        };
        add("mmap", o.handler);
        add("f_op", o.f_op);
        add("vm_ops", o.vm_ops);
        if (m.by_fault)
            add("mapped at fault by", o.fault.empty() ? std::string("?") : o.fault);
        add("inserted by", o.caller);
        if (m.allocs_seen)
            add("allocated by",
                fmt::format("{} ({} of its {} lives)",
                            o.allocated_by.empty() ? std::string("?") : o.allocated_by,
                            m.allocs_seen, m.lives));
        if (!via.empty())
            out << "    " << via << '\n';
        // one line per call: a fault handler's pfns come one per fault, so a
        // long run shows its first ones (the JSON has them all)
        constexpr std::size_t kPfnMapLines = 8;
        for (std::size_t i = 0; i < m.pfnmaps.size() && i < kPfnMapLines; ++i)
            out << "    pfn map: " << pfnmap_text(m.pfnmaps[i])
                << " (special PTEs: no page reference, no rmap, nothing for the zap to free)\n";
        if (m.pfnmaps.size() > kPfnMapLines)
            out << fmt::format("    ... {} more pfn maps (--json lists them)\n",
                               m.pfnmaps.size() - kPfnMapLines);
    }
    out << "  (* built into the kernel: named after its mmap handler or file operations)\n";
}

std::string index_cell(const PageLife& p) {
    return p.index == kNoIndex ? "?" : std::to_string(p.index);
}

// Width of the "#" column: 3, more for 4-digit indexes.
std::size_t index_width(const Report& r) {
    std::size_t w = 3;
    for (const PageLife& p : r.pages)
        w = std::max(w, index_cell(p).size());
    return w;
}

void insert_row(const Report& r, const PageLife& p, std::size_t iw, std::size_t bw,
                std::ostream& out) {
    std::string ins = "-";
    if (const auto s = find_step(p, StepKind::insert_ret))
        ins = (s->ret() == 0 ? std::string("ok") : std::to_string(s->ret())) + " " +
              delta(p.alloc_ts, s->ts);
    else if (const auto k = find_step(p, StepKind::kex_insert))
        ins = (k->ret() == 0 ? std::string("ok") : std::to_string(k->ret())) + " " +
              delta(p.alloc_ts, k->ts) + "*";
    else if (find_step(p, StepKind::do_set_pte))
        ins = "at fault"; // installed by the fault path (do_set_pte / set_pte_range), not inserted
    const auto rm = find_step(p, StepKind::rmap_add);
    const std::string_view fw = first_write_name(p.first_write); // error code: in JSON
    out << "  " << rcell(index_cell(p), iw) << ' ' << cell(hex(p.pfn), 9) << ' '
        << cell(p.uaddr ? hex(p.uaddr) : "-", 14) << ' '
        << cell(p.alloc_before_trace ? "unseen" : delta(r.first_ts, p.alloc_ts), 7) << ' '
        << cell(ins, 10) << ' ' << cell(rm ? delta(p.alloc_ts, rm->ts) : "-", 7) << ' '
        << cell(p.pte ? hex(p.pte) : "-", 18) << ' ' << cell(p.pte ? pte_flags(p.pte) : "-", bw)
        << ' ' << fw << '\n';
}

std::string story(const PageLife& p) {
    std::string s = p.complete() ? "complete" : "INCOMPLETE";
    if (const int32_t m = max_mapcount(p); m > 1)
        s += m == 2 ? ", mapped twice" : fmt::format(", mapped {}x", m);
    if (p.anomalies)
        s += fmt::format(" !{}", p.anomalies);
    return s;
}

void unmap_row(const PageLife& p, std::size_t iw, std::ostream& out) {
    std::string kf = "-";
    if (const auto s = find_step(p, StepKind::kex_free))
        kf = delta(p.alloc_ts, s->ts) + " " + std::string(detail::kex_free_reason_name(s->value));
    std::string zap = "-";
    if (p.zap_ts)
        zap = delta(p.alloc_ts, p.zap_ts) + " " + std::string(zap_context_name(p.zap_context)) +
              (p.zap_dirty ? " dirty" : " clean");
    std::string fr = p.open_at_end ? "live at end" : "-";
    if (p.free_ts)
        fr = delta(p.alloc_ts, p.free_ts) + (p.free_batched ? " batched" : "");
    out << "  " << rcell(index_cell(p), iw) << ' ' << cell(kf, 20) << ' ' << cell(zap, 20) << ' '
        << cell(fr, 15) << ' ' << cell(detail::trail(refcount_trail(p)), 9) << ' '
        << cell(detail::trail(mapcount_trail(p)), 9) << ' ' << story(p) << '\n';
}

// Which rows to show: all, or head + tail + (some) incomplete/anomalous ones.
std::vector<std::size_t> rows_to_show(const Report& r, const TextOptions& o) {
    std::vector<std::size_t> rows;
    const std::size_t n = r.pages.size();
    if (o.full || n <= o.compact_threshold) {
        for (std::size_t i = 0; i < n; ++i)
            rows.push_back(i);
        return rows;
    }
    std::size_t flagged = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const PageLife& p = r.pages[i];
        const bool edge = i < o.head || i + o.tail >= n;
        const bool odd = (!p.complete() || p.anomalies) && flagged < 10;
        if (!edge && odd)
            ++flagged;
        if (edge || odd)
            rows.push_back(i);
    }
    return rows;
}

template <typename RowFn>
void rows(const std::vector<std::size_t>& shown, std::size_t total, std::ostream& out, RowFn fn) {
    std::size_t next = 0;
    for (std::size_t i : shown) {
        if (i > next)
            out << fmt::format("  ... {} page lives not shown ...\n", i - next);
        fn(i);
        next = i + 1;
    }
    if (total > next)
        out << fmt::format("  ... {} page lives not shown ...\n", total - next);
}

// "name" when every page has the same, else "name N, name M" by name.
std::string tally(const std::map<std::string_view, std::size_t>& n) {
    if (n.empty())
        return "-";
    if (n.size() == 1)
        return std::string(n.begin()->first);
    std::string s;
    for (auto& [name, count] : n)
        s += fmt::format("{}{} {}", s.empty() ? "" : ", ", name, count);
    return s;
}

std::string policies(const Report& r) {
    std::map<std::string_view, std::size_t> n;
    for (const PageLife& p : r.pages)
        if (p.mode != MapMode::driver) // kex's ref_policy: no meaning for another driver
            ++n[policy_name(p.policy)];
    return tally(n);
}

std::string modes(const Report& r) {
    std::map<std::string_view, std::size_t> n;
    for (const PageLife& p : r.pages)
        ++n[map_mode_name(p.mode)];
    return tally(n);
}

void render_pages(const Report& r, const TextOptions& o, std::ostream& out) {
    if (r.pages.empty()) {
        out << "pages: no page seen (no kex page, and no other driver inserted a page into a "
               "traced process)\n";
        return;
    }
    const auto shown = rows_to_show(r, o);
    out << fmt::format("pages, insert side: {} lives, policy {}, mode {} (times since alloc; "
                       "alloc@ since the start)\n",
                       r.pages.size(), policies(r), modes(r));
    const std::size_t iw = index_width(r); // the bits column: 15 with a special PTE's " S"
    const std::size_t bw = std::any_of(r.pages.begin(), r.pages.end(),
                                       [](const PageLife& p) { return decode_pte(p.pte).special; })
                               ? 15
                               : 13;
    out << "  " << rcell("#", iw) << ' ' << cell("pfn", 9) << ' ' << cell("user address", 14) << ' '
        << cell("alloc@", 7) << ' ' << cell("insert", 10) << ' ' << cell("rmap", 7) << ' '
        << cell("PTE", 18) << ' ' << cell("bits", bw) << ' ' << "write\n";
    rows(shown, r.pages.size(), out,
         [&](std::size_t i) { insert_row(r, r.pages[i], iw, bw, out); });
    if (std::any_of(r.pages.begin(), r.pages.end(),
                    [](const PageLife& p) { return p.alloc_before_trace; }))
        out << "  alloc@ unseen: a driver's page allocated before its first insert or fault, not "
               "traced; its life starts there (other times since then)\n";
    out << "pages, unmap side (times since alloc)\n";
    out << "  " << rcell("#", iw) << ' ' << cell("kex free", 20) << ' ' << cell("zap", 20) << ' '
        << cell("free", 15) << ' ' << cell("refcount", 9) << ' ' << cell("mapcount", 9) << ' '
        << "story\n";
    rows(shown, r.pages.size(), out, [&](std::size_t i) { unmap_row(r.pages[i], iw, out); });

    // What each incomplete page lacks.
    std::size_t listed = 0, incomplete = 0;
    for (const PageLife& p : r.pages) {
        if (p.complete())
            continue;
        ++incomplete;
        if (!o.full && listed >= 10)
            continue;
        ++listed;
        std::string why = "missing " + milestone_names(p.missing);
        if (p.missing_lost)
            why += " (events lost: " + milestone_names(p.missing_lost) + ")";
        if (p.open_at_end)
            why += "; still live when the trace ended";
        out << fmt::format("  incomplete: page {} (pfn {}): {}\n", index_cell(p), hex(p.pfn), why);
    }
    if (incomplete > listed)
        out << fmt::format("  ... {} more incomplete page lives\n", incomplete - listed);
}

// The distribution of page stories, for many pages.
void render_page_stats(const Report& r, std::ostream& out) {
    std::map<std::string, std::size_t> trails;
    std::size_t fw[3] = {}, zap[4] = {}, dirty = 0, batched = 0, freed = 0;
    std::vector<uint64_t> to_insert, to_free;
    for (const PageLife& p : r.pages) {
        ++trails[detail::trail(refcount_trail(p))];
        ++fw[static_cast<int>(p.first_write)];
        ++zap[static_cast<int>(p.zap_context)];
        dirty += p.zap_dirty;
        batched += p.free_batched;
        freed += p.free_ts != 0;
        if (const auto s = find_step(p, StepKind::insert_ret))
            to_insert.push_back(s->ts - p.alloc_ts);
        if (p.free_ts)
            to_free.push_back(p.free_ts - p.alloc_ts);
    }
    out << "page stories\n  refcount:";
    const char* sep = " ";
    for (auto& [t, n] : trails) {
        out << fmt::format("{}{} ×{}", sep, t, n);
        sep = ", ";
    }
    out << fmt::format("\n  first write: no fault {}, fault {}, unknown {}\n",
                       fw[static_cast<int>(FirstWrite::no_fault)],
                       fw[static_cast<int>(FirstWrite::fault)],
                       fw[static_cast<int>(FirstWrite::unknown)]);
    out << fmt::format(
        "  zap: munmap {}, exit {}, other {}, none {}; dirty {}\n",
        zap[static_cast<int>(ZapContext::munmap)], zap[static_cast<int>(ZapContext::exit)],
        zap[static_cast<int>(ZapContext::other)], zap[static_cast<int>(ZapContext::none)], dirty);
    out << fmt::format("  freed {} (batched {}), live at end {}\n", freed, batched,
                       r.pages.size() - freed);
    auto stats = [&](const char* what, std::vector<uint64_t>& v) {
        if (v.empty())
            return;
        std::sort(v.begin(), v.end());
        out << fmt::format("  {}: min {}, median {}, max {}\n", what, duration(v.front()),
                           duration(v[v.size() / 2]), duration(v.back()));
    };
    stats("alloc→insert", to_insert);
    stats("alloc→free", to_free);
}

// prefix + text, wrapped at kColumns on spaces, continuation lines indented.
void wrap(std::ostream& out, const std::string& prefix, std::string_view text) {
    std::string line = prefix;
    const std::size_t indent = detail::width(prefix);
    std::size_t pos = 0;
    bool first_word = true;
    while (pos < text.size()) {
        std::size_t end = text.find(' ', pos);
        if (end == std::string_view::npos)
            end = text.size();
        const std::string_view word = text.substr(pos, end - pos);
        if (!first_word && detail::width(line) + 1 + detail::width(word) > kColumns) {
            out << line << '\n';
            line = std::string(indent, ' ');
            first_word = true;
        }
        if (!first_word)
            line += ' ';
        line += word;
        first_word = false;
        pos = end + 1;
    }
    out << line << '\n';
}

void render_anomalies(const Report& r, const TextOptions& o, std::ostream& out) {
    const std::size_t total = r.anomalies.size() + r.anomalies_dropped;
    if (!total) {
        out << "anomalies: none\n";
        return;
    }
    out << fmt::format("anomalies: {}\n", total);
    std::size_t shown = 0;
    for (const Anomaly& a : r.anomalies) {
        if (!o.full && shown == kAnomaliesCompact)
            break;
        wrap(out, "  [" + delta(r.first_ts, a.ts) + "] ", a.message);
        ++shown;
    }
    if (total > shown)
        out << fmt::format("  ... {} more\n", total - shown);
}

void render_stacks(const Report& r, const std::vector<std::size_t>& shown,
                   const Symbolizer& symbolize, std::ostream& out) {
    if (shown.empty())
        return;
    const PageLife& p = r.pages[shown.front()];
    for (const Step& s : p.steps) {
        if (!s.stack_id)
            continue;
        out << fmt::format("stack of {} (page {}, pfn {})\n", step_kind_name(s.kind), index_cell(p),
                           hex(p.pfn));
        for (uint64_t a : r.stack(s.stack_id))
            out << "  " << symbol(symbolize, a) << '\n';
    }
}

} // namespace

void render_text(const Report& r, const RunInfo& run, std::ostream& out,
                 const Symbolizer& symbolize, const TextOptions& opts) {
    out << fmt::format("kextrace: kernel {}, {} page lives, {} events, {} lost\n",
                       run.kernel_release.empty() ? "?" : run.kernel_release, r.pages.size(),
                       r.events, r.losses.total());
    if (!run.command_line.empty())
        out << "command:  " << run.command_line << '\n';
    out << '\n';
    render_probes(r, run, out);
    out << '\n';
    render_phases(r, out);
    out << '\n';
    render_mappings(r, out);
    out << '\n';
    if (any_driver_mapping(r)) {
        render_driver_mappings(r, symbolize, out);
        out << '\n';
    }
    render_pages(r, opts, out);
    const bool compact = !opts.full && r.pages.size() > opts.compact_threshold;
    if (compact) {
        out << '\n';
        render_page_stats(r, out);
    }
    if (opts.stacks) {
        out << '\n';
        render_stacks(r, rows_to_show(r, opts), symbolize, out);
    }
    out << '\n';
    render_anomalies(r, opts, out);

    // The one line to read.
    const std::size_t n = r.pages.size();
    const std::size_t incomplete = r.incomplete_pages();
    // the refcount story is checked where kex's policy defines it; another
    // driver's pages have no expected story (the text shows each one's)
    std::size_t clean_trail = 0, expected = 0, no_fault = 0, dirty = 0;
    std::set<std::string> wanted; // the expected stories, by policy and mode
    for (const PageLife& p : r.pages) {
        const auto want = expected_refcount_trail(p.policy, p.mode);
        if (!want.empty())
            wanted.insert(detail::trail(want));
        expected += !want.empty();
        clean_trail += !want.empty() && refcount_trail(p) == want;
        no_fault += p.first_write == FirstWrite::no_fault;
        dirty += p.zap_dirty;
    }
    out << fmt::format("summary: {} page lives: {} complete, {} incomplete; anomalies {}; "
                       "events lost {}\n",
                       n, n - incomplete, incomplete, r.anomalies.size() + r.anomalies_dropped,
                       r.losses.total());
    const std::string others =
        expected < n ? fmt::format(" (kex pages; {} driver pages: no expected story)", n - expected)
                     : "";
    out << fmt::format("         refcount {} {}/{}{}; first write without fault {}/{}; "
                       "zap dirty {}/{}\n",
                       wanted.size() == 1 ? *wanted.begin()
                       : wanted.empty()   ? detail::trail(expected_refcount_trail(Policy::drop))
                                          : std::string("as its policy and mode expect"),
                       clean_trail, expected, others, no_fault, n, dirty, n);
    out << fmt::format("         orphan events {}; other allocations {}; filtered events {}{}\n",
                       r.orphans, r.other_allocations, r.filtered,
                       r.unfollowed_driver_pages
                           ? fmt::format("; driver pages not followed {} (--driver/--file)",
                                         r.unfollowed_driver_pages)
                           : "");
}

} // namespace kextrace
