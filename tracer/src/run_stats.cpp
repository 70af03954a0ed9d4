// run_stats.cpp - see run_stats.h.
#include "run_stats.h"

#include <kextrace/status_json.h>

#include <string>

namespace kextrace {

using nlohmann::json;

json ring_accounting_json(const RingCounts& c) {
    json acct = {{"produced", 0}, {"received", 0}, {"lost", 0}};
    acct["per_type"] = json::object();
    bool exact = true;
    for (uint32_t t = 0; t < KEX_LOSS_SLOTS; t++) {
        if (!c.produced[t] && !c.received[t] && !c.lost[t])
            continue;
        exact = exact && c.produced[t] == c.received[t] + c.lost[t];
        acct["per_type"][std::string(event_type_name(t))] = {
            {"produced", c.produced[t]}, {"received", c.received[t]}, {"lost", c.lost[t]}};
        acct["produced"] = acct["produced"].get<uint64_t>() + c.produced[t];
        acct["received"] = acct["received"].get<uint64_t>() + c.received[t];
        acct["lost"] = acct["lost"].get<uint64_t>() + c.lost[t];
    }
    acct["exact"] = exact;
    acct["ring_records"] = c.ring_records;
    // records copied off the ring, waiting to be decoded: the most at once
    acct["queue"] = {{"peak_records", c.queue.peak_records}, {"peak_bytes", c.queue.peak_bytes}};
    // the thread that copied them: its nice, or why it kept the process's
    acct["drain_thread"] =
        c.drain.ran ? json{{"nice", c.drain.nice},
                           {"error", c.drain.error ? json(errstr(c.drain.error)) : json()}}
                    : json();
    // --stacks sites: records that walked their stack (a site's first) and
    // records given their site's stack; unresolved ones are also undecodable
    acct["stacks"] = {{"mode", c.stacks},           {"walked", c.sites.walked},
                      {"reused", c.sites.reused},   {"unresolved", c.sites.unresolved},
                      {"checked", c.sites.checked}, {"mismatched", c.sites.mismatched}};
    return acct;
}

json probe_counters_json(const ProbePlan& plan,
                         const std::array<AttachResult, KEX_P_COUNT>& results,
                         const std::array<kex_probe_stats, KEX_P_COUNT>& stats,
                         const MissedCounts& missed) {
    json out = json::object();
    for (uint32_t i = 0; i < KEX_P_COUNT; i++)
        if (results[i].planned)
            out[probe_spec(i).short_name] = {{"mechanism", probe_kind_name(plan.kind[i])},
                                             {"hits", stats[i].hits},
                                             {"matched", stats[i].matched},
                                             {"emitted", stats[i].emitted},
                                             {"missed", missed[i] ? json(*missed[i]) : json()}};
    return out;
}

json stats_json(json sections, const Report& report, const RunInfo& run, const Losses& losses) {
    json st = std::move(sections);
    st["schema"] = "kextrace.stats/1";
    st["events"] = report.events;
    st["page_lives"] = report.pages.size();
    st["kernel_release"] = run.kernel_release;
    st["losses"] = losses_json(losses, {.per_type = false});
    return st;
}

} // namespace kextrace
