// status_json.h - the run's probe status and losses as JSON: one serializer
// for the report (to_json), the timeline's metadata, the JSONL header and
// kextrace's --stats, so they cannot drift apart.
#pragma once

#include <kextrace/core.h>
#include <kextrace/output.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace kextrace {

// [{"step", "wanted", "resolved", "mechanism", "attached", "reason", "nmissed"}, ...]
nlohmann::json probes_json(const std::vector<ProbeStatus>& probes);

// {"event type": n} for the nonzero counts, by event type name.
nlohmann::json type_counts_json(std::span<const uint64_t> counts);

// Which of the optional losses fields to write: the JSONL header has no total
// (a reader computes it), --stats no per_type (ring_accounting has it).
struct LossesJsonFields {
    bool per_type = true;
    bool total = true;
};
// {"per_type", "ring", "decode_errors", "map_full", "pfn_unknown", "total"}
nlohmann::json losses_json(const Losses& losses, LossesJsonFields fields = {});

} // namespace kextrace
