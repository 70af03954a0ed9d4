// to_json: the versioned machine report, schema "kextrace.report/1"
// (docs/json-schema.md). Kernel and user addresses and PTE values are hex
// strings (they do not fit a double); timestamps, counts and pfns are numbers.
// This tree is the reference: files are written by write_report_json
// (report_json.cpp), which streams the same bytes. A field added here must be
// added there too, at its sorted key position (output_report_json_test checks).
#include <kextrace/leaks.h>
#include <kextrace/output.h>
#include <kextrace/owner.h>
#include <kextrace/status_json.h>

#include "format.h"

namespace kextrace {

using detail::hex;
using nlohmann::json;

namespace {

json type_counts32(const std::array<uint32_t, kTypeSlots>& counts) {
    json o = json::object();
    for (std::size_t t = 0; t < counts.size(); ++t)
        if (counts[t])
            o[std::string(event_type_name(static_cast<uint32_t>(t)))] = counts[t];
    return o;
}

json step_flags(uint8_t f) {
    json a = json::array();
    if (f & kStepViaInsertRet)
        a.push_back("via_insert_ret");
    if (f & kStepViaDoSetPteRet)
        a.push_back("via_do_set_pte_ret");
    if (f & kStepInWritePhase)
        a.push_back("in_write_phase");
    if (f & kStepAfterFree)
        a.push_back("after_free");
    if (f & kStepLate)
        a.push_back("late");
    return a;
}

// value of a step, typed by its kind
json step_value(const Step& s) {
    switch (s.kind) {
    case StepKind::insert_ret:
    case StepKind::kex_insert:
        return s.ret();
    case StepKind::insert: // user address: 0 where the kernel dropped the argument
    case StepKind::do_set_pte:
        return s.value ? json(hex(s.value)) : json(nullptr);
    case StepKind::pte_set:
        return hex(s.value);
    case StepKind::user_fault: // the error code
        return s.value;
    case StepKind::kex_free:
        return std::string(detail::kex_free_reason_name(static_cast<uint32_t>(s.value)));
    case StepKind::followed: // the function's id in the "follow" section
        return KEX_FOLLOW_FUNC(s.value);
    default:
        return s.value;
    }
}

json count(int32_t v) {
    return v == kNoCount ? json(nullptr) : json(v);
}

json pte_json(const PageLife& p) {
    if (!p.pte)
        return nullptr;
    const PteBits b = decode_pte(p.pte);
    return {
        {"value", hex(p.pte)},
        {"address", p.pte_addr ? json(hex(p.pte_addr)) : json(nullptr)},
        {"source", pte_source_name(p.pte_source)},
        {"pfn", b.pfn},
        {"present", b.present},
        {"rw", b.rw},
        {"user", b.user},
        {"accessed", b.accessed},
        {"dirty", b.dirty},
        {"nx", b.nx},
        {"special", b.special},
        {"flags", pte_flags(p.pte)},
    };
}

json page_json(const PageLife& p, std::size_t life) {
    const std::vector<Step> decoded = p.steps.to_vector(); // read five times: decoded once
    json steps = json::array();
    const std::vector<CountsAfter> after = counts_after_steps(decoded);
    auto a = after.begin();
    for (const Step& s : decoded) {
        const CountsAfter& now = *a++;
        json j = {
            {"kind", step_kind_name(s.kind)},
            {"ts", s.ts},
            {"dt", static_cast<int64_t>(s.ts - p.alloc_ts)},
            {"refcount", count(s.refcount)},
            {"mapcount", count(s.mapcount)},
            {"refcount_after", count(now.refcount)},
            {"mapcount_after", count(now.mapcount)},
            {"value", step_value(s)},
        };
        if (s.flags)
            j["flags"] = step_flags(s.flags);
        if (s.stack_id)
            j["stack"] = s.stack_id;
        steps.push_back(std::move(j));
    }
    return {
        {"life", life},
        {"index", p.index == kNoIndex ? json(nullptr) : json(p.index)},
        {"pfn", p.pfn},
        {"uaddr", p.uaddr ? json(hex(p.uaddr)) : json(nullptr)},
        {"owner", p.owner},
        {"mapping", p.mapping},
        {"policy", policy_name(p.policy)},
        {"mode", map_mode_name(p.mode)},
        {"kex_faults", p.kex_faults},
        {"remap_pfn_ts", p.remap_ts ? json(p.remap_ts) : json(nullptr)},
        {"alloc_ts", p.alloc_ts},
        {"insert_ret", p.insert_ret},
        {"pte", pte_json(p)},
        {"first_write",
         {{"kind",
           p.first_write == FirstWrite::no_fault ? "no_fault" : first_write_name(p.first_write)},
          {"ts", p.first_write_ts ? json(p.first_write_ts) : json(nullptr)},
          {"error_code",
           p.first_write == FirstWrite::fault ? json(p.fault_error_code) : json(nullptr)}}},
        {"zap",
         {{"context", p.zap_context == ZapContext::none ? "none" : zap_context_name(p.zap_context)},
          {"ts", p.zap_ts ? json(p.zap_ts) : json(nullptr)},
          {"dirty", p.zap_dirty}}},
        {"kex_free_reason", p.kex_free_reason == UINT32_MAX
                                ? json(nullptr)
                                : json(detail::kex_free_reason_name(p.kex_free_reason))},
        {"free",
         {{"ts", p.free_ts ? json(p.free_ts) : json(nullptr)}, {"batched", p.free_batched}}},
        {"open_at_end", p.open_at_end},
        {"alloc_before_trace", p.alloc_before_trace},
        {"by_fault", p.by_fault},
        {"complete", p.complete()},
        {"seen", detail::milestone_tokens(p.seen)},
        {"expected", detail::milestone_tokens(p.expected)},
        {"missing", detail::milestone_tokens(p.missing)},
        {"missing_lost", detail::milestone_tokens(p.missing_lost)},
        {"refcount_trail", refcount_trail(decoded)},
        {"mapcount_trail", mapcount_trail(decoded)},
        {"max_mapcount", max_mapcount(decoded)},
        {"anomalies", p.anomalies},
        {"steps", std::move(steps)},
    };
}

json phases_json(const Report& r) {
    json phases = json::array();
    for (const Phase& ph : r.phases)
        phases.push_back({{"name", ph.name},
                          {"tgid", ph.tgid},
                          {"start", ph.start},
                          {"end", ph.end},
                          {"duration_ns", ph.end - ph.start},
                          {"closed", ph.closed},
                          {"addr", hex(ph.addr)},
                          {"arg1", ph.arg1},
                          {"kernel_events", ph.kernel_events},
                          {"user_faults", ph.user_faults},
                          {"counts", type_counts32(ph.counts)}});
    return phases;
}

json mappings_json(const Report& r, const Symbolizer& symbolize) {
    json mappings = json::array();
    for (const Mapping& m : r.mappings) {
        mappings.push_back({{"tgid", m.tgid},
                            {"tid", m.tid},
                            {"vm_start", hex(m.vm_start)},
                            {"vm_end", hex(m.vm_end)},
                            {"pages", m.pages},
                            {"policy", policy_name(m.policy)},
                            {"mode", map_mode_name(m.mode)},
                            {"mode_inferred", m.mode_inferred},
                            {"batch_calls", m.batch_calls},
                            {"vm_insert_pages", m.vm_insert_pages},
                            {"remap_pfn_calls", m.remap_pfn_calls},
                            {"faults", m.faults},
                            {"ts", m.ts},
                            {"done_ts", m.done_ts ? json(m.done_ts) : json(nullptr)},
                            {"ret", m.ret},
                            {"mapped", m.mapped},
                            {"lives", m.lives},
                            {"other_allocations", m.other_allocations},
                            {"close_ts", m.close_ts ? json(m.close_ts) : json(nullptr)},
                            {"driver", m.driver}});
        if (m.driver) {
            mappings.back()["owner"] = owner_json(r, m, symbolize);
            mappings.back()["pfn_maps"] = pfnmaps_json(m);
        }
    }
    return mappings;
}

json stacks_json(const Report& r, const Symbolizer& symbolize) {
    json stacks = json::array();
    for (const auto& st : r.stacks) {
        json frames = json::array();
        for (uint64_t a : st) {
            std::string sym = symbolize ? symbolize(a) : std::string();
            frames.push_back({{"addr", hex(a)}, {"sym", sym.empty() ? json(nullptr) : json(sym)}});
        }
        stacks.push_back(std::move(frames));
    }
    return stacks;
}

json anomalies_json(const Report& r) {
    json anomalies = json::array();
    for (const Anomaly& a : r.anomalies)
        anomalies.push_back({{"ts", a.ts},
                             {"life", a.life < 0 ? json(nullptr) : json(a.life)},
                             {"message", a.message}});
    return anomalies;
}

json summary_json(const Report& r) {
    std::size_t clean_trail = 0, no_fault = 0, dirty = 0;
    for (const PageLife& p : r.pages) {
        clean_trail += refcount_trail(p) == expected_refcount_trail(p.policy, p.mode);
        no_fault += p.first_write == FirstWrite::no_fault;
        dirty += p.zap_dirty;
    }
    const std::size_t incomplete = r.incomplete_pages();
    return {{"pages", r.pages.size()},
            {"complete", r.pages.size() - incomplete},
            {"incomplete", incomplete},
            {"expected_refcount_trail", expected_refcount_trail(Policy::drop)},
            {"refcount_as_expected", clean_trail},
            {"first_write_no_fault", no_fault},
            {"zap_dirty", dirty},
            {"anomalies", r.anomalies.size() + r.anomalies_dropped},
            {"events_lost", r.losses.total()}};
}

} // namespace

json to_json(const Report& r, const RunInfo& run, const Symbolizer& symbolize) {
    json pages = json::array();
    for (std::size_t i = 0; i < r.pages.size(); ++i)
        pages.push_back(page_json(r.pages[i], i));
    return {
        {"schema", kJsonSchema},
        {"run",
         {{"kernel_release", run.kernel_release},
          {"command_line", run.command_line},
          {"set_pte_observed", run.set_pte_observed},
          {"probes", probes_json(run.probes)}}},
        {"trace",
         {{"first_ts", r.first_ts},
          {"last_ts", r.last_ts},
          {"events", r.events},
          {"filtered", r.filtered},
          {"orphans", r.orphans},
          {"late", r.late},
          {"other_allocations", r.other_allocations},
          {"other_frees", r.other_frees},
          {"tgids", r.tgids},
          {"unfollowed_driver_pages", r.unfollowed_driver_pages}}},
        {"counts", type_counts_json(r.counts)},
        {"losses", losses_json(r.losses)},
        {"phases", phases_json(r)},
        {"mappings", mappings_json(r, symbolize)},
        {"pages", std::move(pages)},
        {"stacks", stacks_json(r, symbolize)},
        {"anomalies", anomalies_json(r)},
        {"anomalies_dropped", r.anomalies_dropped},
        {"summary", summary_json(r)},
    };
}

} // namespace kextrace
