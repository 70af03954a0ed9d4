// send_counters (timeline_parts.h): the timeline's counter tracks, "kex
// pages allocated" and "kex pages mapped" of each owner process, from the
// lives' allocation, first mapping, zap and free.
#include "timeline_parts.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <utility>
#include <vector>

namespace kextrace::detail::timeline {

namespace {

struct Delta {
    uint32_t pid;
    uint64_t ts;
    int alloc;
    int mapped;
};

// d sorted by (pid, ts): least significant byte first, the 8 bytes of ts
// then the 4 of pid, each a counting pass (stable), a byte that is the same
// in every delta skipped. std::sort here was a fifth of the Perfetto
// export's time (perf): its comparisons of near-random keys mispredict.
void sort_deltas(std::vector<Delta>& d) {
    constexpr std::size_t kBytes = 12;
    const auto byte_of = [](const Delta& x, std::size_t b) {
        return static_cast<std::size_t>(b < 8 ? (x.ts >> (8 * b)) & 0xff
                                              : (x.pid >> (8 * (b - 8))) & 0xff);
    };
    std::vector<std::array<std::size_t, 256>> count(kBytes);
    for (const Delta& x : d)
        for (std::size_t b = 0; b < kBytes; ++b)
            ++count[b][byte_of(x, b)];
    std::vector<Delta> tmp(d.size());
    for (std::size_t b = 0; b < kBytes; ++b) {
        std::array<std::size_t, 256>& at = count[b];
        if (std::find(at.begin(), at.end(), d.size()) != at.end())
            continue; // one value for all
        std::size_t sum = 0;
        for (std::size_t& c : at)
            sum += std::exchange(c, sum);
        for (const Delta& x : d)
            tmp[at[byte_of(x, b)]++] = x;
        d.swap(tmp);
    }
}

} // namespace

uint64_t send_counters(const Report& r, Sink& out) {
    uint64_t sent = 0;
    const auto send = [&](uint32_t pid, uint64_t ts, std::string_view name, int64_t v) {
        out.counter(pid, ts, name, v);
        ++sent;
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
    sort_deltas(d); // (the order among equal (pid, ts) does not matter: they are summed)
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
