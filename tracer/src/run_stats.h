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

#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>

namespace kextrace {

struct RingCounts {
    std::array<uint64_t, KEX_LOSS_SLOTS> produced{}; // BPF "produced" map
    std::array<uint64_t, KEX_LOSS_SLOTS> received{}; // records handed to the sample function
    std::array<uint64_t, KEX_LOSS_SLOTS> lost{};     // BPF "losses" map
    RecordQueue::Stats queue;
};

// {"produced", "received", "lost", "exact", "per_type": {type: {...}}, "queue"}
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
