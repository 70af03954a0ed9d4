// send_counters (timeline_parts.h): the timeline's counter tracks, "kex
// pages allocated" and "kex pages mapped" of each owner process, from the
// lives' allocation, first mapping, zap and free.
#include "timeline_parts.h"

#include <algorithm>
#include <string_view>
#include <vector>

namespace kextrace::detail::timeline {

uint64_t send_counters(const Report& r, Sink& out) {
    uint64_t sent = 0;
    const auto send = [&](uint32_t pid, uint64_t ts, std::string_view name, int64_t v) {
        out.counter(pid, ts, name, v);
        ++sent;
    };
    struct Delta {
        uint32_t pid;
        uint64_t ts;
        int alloc;
        int mapped;
    };
    std::vector<Delta> d;
    d.reserve(r.pages.size() * 4);
    for (const PageLife& p : r.pages) {
        const uint32_t pid = timeline_owner(r, p);
        d.push_back({pid, p.alloc_ts, 1, 0});
        uint64_t map_ts = 0, unmap_ts = 0;
        for (const Step& s : p.steps) {
            if (!map_ts && (s.kind == StepKind::rmap_add || s.kind == StepKind::pte_set))
                map_ts = s.ts;
            if (map_ts && !unmap_ts && s.kind == StepKind::rmap_remove) {
                unmap_ts = s.ts;
                if (unmap_ts)
                    break; // (the steps after it change nothing here: not decoded)
            }
        }
        if (map_ts)
            d.push_back({pid, map_ts, 0, 1});
        if (unmap_ts)
            d.push_back({pid, unmap_ts, 0, -1});
        if (p.free_ts)
            d.push_back({pid, std::max(p.free_ts, p.alloc_ts), -1, 0});
    }
    if (d.empty())
        return 0;
    // (the order among equal (pid, ts) does not matter: they are summed)
    std::sort(d.begin(), d.end(), [](const Delta& a, const Delta& b) {
        return a.pid != b.pid ? a.pid < b.pid : a.ts < b.ts;
    });
    std::size_t i = 0;
    while (i < d.size()) {
        const uint32_t pid = d[i].pid;
        int64_t alloc = 0, mapped = 0;
        const uint64_t t0 = std::min(r.first_ts ? r.first_ts : d[i].ts, d[i].ts);
        send(pid, t0, "kex pages allocated", 0);
        send(pid, t0, "kex pages mapped", 0);
        while (i < d.size() && d[i].pid == pid) {
            const uint64_t ts = d[i].ts;
            int64_t a0 = alloc, m0 = mapped;
            for (; i < d.size() && d[i].pid == pid && d[i].ts == ts; ++i) {
                alloc += d[i].alloc;
                mapped += d[i].mapped;
            }
            if (alloc != a0)
                send(pid, ts, "kex pages allocated", alloc);
            if (mapped != m0)
                send(pid, ts, "kex pages mapped", mapped);
        }
    }
    return sent;
}

} // namespace kextrace::detail::timeline
