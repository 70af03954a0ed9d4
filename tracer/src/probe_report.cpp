// probe_report.cpp - see probe_report.h.
#include "probe_report.h"

#include <fmt/format.h>

namespace kextrace {

std::vector<ProbeStatus> probe_statuses(const ProbePlan& plan,
                                        const std::array<AttachResult, KEX_P_COUNT>* results,
                                        const MissedCounts* missed, bool note_unknown_missed) {
    std::vector<ProbeStatus> rows;
    for (const PlanStep& s : plan.steps) {
        ProbeStatus r;
        r.step = s.step;
        r.wanted = s.wanted;
        r.reason = s.reason;
        r.attached = s.available && s.off.empty();
        r.off = s.available && !s.off.empty();
        if (r.off)
            r.reason = s.off;
        if (r.attached)
            r.resolved = s.resolved;
        bool tracefs_kprobes = false;
        if (results)
            for (uint32_t p : s.probes)
                tracefs_kprobes = tracefs_kprobes || !(*results)[p].kprobe_event.empty();
        r.mechanism = step_mechanism(plan, s, tracefs_kprobes);
        bool missed_unknown = false;
        if (results && r.attached) {
            std::vector<std::string> errors;
            unsigned ok = 0;
            for (uint32_t p : s.probes) {
                const AttachResult& a = (*results)[p];
                if (!a.planned)
                    continue;
                if (a.attached)
                    ok++;
                if (!a.error.empty())
                    errors.push_back(fmt::format("{}: {}", probe_spec(p).short_name, a.error));
                if (missed && (*missed)[p])
                    r.nmissed += *(*missed)[p];
                else if (a.attached)
                    missed_unknown = true;
            }
            r.attached = ok > 0;
            if (!r.attached)
                r.resolved.clear();
            if (!errors.empty())
                r.reason = r.reason.empty()
                               ? fmt::format("{}", fmt::join(errors, "; "))
                               : fmt::format("{}; {}", r.reason, fmt::join(errors, "; "));
        }
        bool kprobe = !s.probes.empty() && (plan.kind[s.probes[0]] == ProbeKind::kprobe ||
                                            plan.kind[s.probes[0]] == ProbeKind::kretprobe);
        if (kprobe && r.attached && missed_unknown && note_unknown_missed)
            r.reason += r.reason.empty() ? "missed count not exposed (perf kprobes)"
                                         : "; missed count not exposed (perf kprobes)";
        rows.push_back(std::move(r));
    }
    return rows;
}

void print_probe_table(std::ostream& out, const std::vector<ProbeStatus>& rows) {
    std::size_t w_step = 4, w_res = 8, w_via = 3;
    for (const auto& r : rows) {
        w_step = std::max(w_step, r.step.size());
        w_res = std::max(w_res, r.attached ? r.resolved.size() : std::size_t(1));
        w_via = std::max(w_via, r.mechanism.size());
    }
    w_res = std::min<std::size_t>(w_res, 44);
    out << fmt::format("{:<{}}  {:<3}  {:<{}}  {:<{}}  {}\n", "step", w_step, "ok", "via", w_via,
                       "attached", w_res, "notes");
    for (const auto& r : rows) {
        std::string notes = r.reason;
        if (r.nmissed)
            notes = fmt::format("MISSED {}{}{}", r.nmissed, notes.empty() ? "" : "; ", notes);
        if (!r.attached && notes.empty())
            notes = "wanted " + r.wanted;
        out << fmt::format("{:<{}}  {:<3}  {:<{}}  {:<{}}  {}\n", r.step, w_step,
                           r.attached ? "yes"
                           : r.off    ? "off"
                                      : "NO",
                           r.mechanism, w_via, r.attached ? r.resolved : "-", w_res, notes);
    }
}

uint16_t expected_milestones(const ProbePlan& plan,
                             const std::array<AttachResult, KEX_P_COUNT>* results) {
    auto on = [&](uint32_t id) {
        return plan.enabled[id] && (!results || (*results)[id].attached);
    };
    uint16_t m = kMsDefaultExpected;
    if (!on(KEX_P_KEX_PAGE_ALLOC))
        m &= ~kMsKexAlloc;
    if (!on(KEX_P_INSERT) && !on(KEX_P_SET_PTE))
        m &= ~kMsInsert;
    if (!on(KEX_P_RMAP_ADD))
        m &= ~kMsRmapAdd;
    if (!on(KEX_P_INSERT_RET) && !on(KEX_P_SET_PTE_RET))
        m &= ~kMsPteSet;
    if (!on(KEX_P_KEX_PAGE_INSERT))
        m &= ~kMsKexInsert;
    if (!on(KEX_P_KEX_PAGE_FREE))
        m &= ~kMsKexFree;
    if (!on(KEX_P_RMAP_REMOVE))
        m &= ~kMsZap;
    if (!on(KEX_P_MM_PAGE_FREE))
        m &= ~kMsPageFree;
    return m;
}

} // namespace kextrace
