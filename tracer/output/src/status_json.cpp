// status_json.cpp - see kextrace/status_json.h.
#include <kextrace/status_json.h>

#include "format.h"

#include <string>

namespace kextrace {

using nlohmann::json;

json probes_json(const std::vector<ProbeStatus>& probes) {
    json out = json::array();
    for (const ProbeStatus& p : probes)
        out.push_back({{"step", p.step},
                       {"wanted", p.wanted},
                       {"resolved", p.resolved},
                       {"mechanism", p.mechanism},
                       {"attached", p.attached},
                       {"off", p.off},
                       {"reason", p.reason},
                       {"nmissed", p.nmissed}});
    return out;
}

json type_counts_json(std::span<const uint64_t> counts) {
    json o = json::object();
    for (std::size_t t = 0; t < counts.size(); ++t)
        if (counts[t])
            o[std::string(event_type_name(static_cast<uint32_t>(t)))] = counts[t];
    return o;
}

json losses_json(const Losses& l, LossesJsonFields fields) {
    // Losses::map_full as {"map": failed updates}, the maps that failed only
    json map_full = json::object();
    for (const auto& [name, n] : detail::map_full_entries(l))
        map_full[std::string(name)] = n;
    json j = {{"ring", l.ring},
              {"decode_errors", l.decode_errors},
              {"map_full", std::move(map_full)},
              {"pfn_unknown", l.pfn_unknown()}};
    if (fields.per_type)
        j["per_type"] = type_counts_json(l.per_type);
    if (fields.total)
        j["total"] = l.total();
    return j;
}

} // namespace kextrace
