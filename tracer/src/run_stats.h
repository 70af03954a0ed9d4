// run_stats.h - what --json and --stats add beyond the report: the ring
// accounting (per event type, records the BPF side produced = received here +
// lost in the ring; the record queue's peak) and the BPF counters of each
// planned probe; and --stats' own document.
#pragma once

#include "loader.h"
#include "probe_plan.h"
#include "record_queue.h"

#include <kextrace/core.h>
#include <kextrace/output.h>
#include <kextrace/stack_sites.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kextrace {

struct RingCounts {
    std::array<uint64_t, KEX_LOSS_SLOTS> produced{}; // BPF kex_counters.produced
    std::array<uint64_t, KEX_LOSS_SLOTS> received{}; // records handed to the sample function
    uint64_t ring_records = 0; // ring-buffer samples (--watch: a life of records is one)
    std::array<uint64_t, KEX_LOSS_SLOTS> lost{}; // BPF kex_counters.lost
    RecordQueue::Stats queue;
    RingDrain::ThreadInfo drain;
    std::string_view stacks;   // --stacks: all, sites, none
    StackSites::Stats sites{}; // with sites: stacks walked and named
};

// {"produced", "received", "lost", "exact", "ring_records", "per_type": {type: {...}}, "queue",
//  "drain_thread": {"nice", "error"} or null, "stacks": {"mode", "walked", "reused", "unresolved"}}
nlohmann::json ring_accounting_json(const RingCounts& c);

// {probe: {"mechanism", "hits", "matched", "emitted", "missed"}} for the planned probes.
nlohmann::json probe_counters_json(const ProbePlan& plan,
                                   const std::array<AttachResult, KEX_P_COUNT>& results,
                                   const std::array<kex_probe_stats, KEX_P_COUNT>& stats,
                                   const MissedCounts& missed);

// --stats: sections (ring_accounting, probe_counters), the run's totals and
// the report's losses (from the same reads as ring_accounting).
nlohmann::json stats_json(nlohmann::json sections, const Report& report, const RunInfo& run,
                          const Losses& losses);

} // namespace kextrace
