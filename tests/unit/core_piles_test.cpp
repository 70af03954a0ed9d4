// RunPiles (tracer/core/src/piles.h): the reorder buffer's arrivals merged
// from sorted piles must come out as a sort by (time, arrival) would give
// them, and the correlator's report must not depend on which it did.
#include <kextrace/core.h>
#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

#include "../../tracer/core/src/piles.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <span>
#include <sstream>
#include <vector>

using namespace kextrace;
using kextrace::corr::RunPiles;

namespace {

// The elements from arrival i on in pieces of at most 5 (chunks ending at
// multiples of 5, as the reorder buffer's end at its chunks'), so that the
// merge's cursors cross pieces.
auto segs(const std::vector<uint64_t>& ts) {
    return [&ts](std::size_t i) {
        const std::size_t end = std::min(ts.size(), (i / 5 + 1) * 5);
        return std::span<const uint64_t>(ts.data() + i, end - i);
    };
}
uint64_t ts_of(uint64_t t) {
    return t;
}

// The arrivals merged, or nothing when the piles gave up.
std::vector<std::size_t> merged(const std::vector<uint64_t>& ts) {
    RunPiles p;
    for (std::size_t i = 0; i < ts.size(); ++i)
        p.add(ts[i], i);
    std::vector<std::size_t> out;
    if (p.ok())
        p.merge(segs(ts), ts_of, [&](uint64_t, std::size_t i) { out.push_back(i); });
    return out;
}

std::vector<std::size_t> sorted(const std::vector<uint64_t>& ts) {
    std::vector<std::size_t> v(ts.size());
    std::iota(v.begin(), v.end(), 0);
    std::stable_sort(v.begin(), v.end(),
                     [&](std::size_t a, std::size_t b) { return ts[a] < ts[b]; });
    return v;
}

// cpus sorted sequences (ties within and across them), delivered in chunks
// of up to chunk, the oldest CPU's next, as a per-CPU drain delivers them.
std::vector<uint64_t> interleaved(std::mt19937_64& rng, unsigned cpus, std::size_t n,
                                  std::size_t chunk) {
    std::vector<std::vector<uint64_t>> per(cpus);
    for (unsigned c = 0; c < cpus; ++c) {
        uint64_t t = rng() % 100;
        for (std::size_t i = 0; i < n; ++i)
            per[c].push_back(t += rng() % 4); // steps of 0..3: many ties
    }
    std::vector<uint64_t> out;
    std::vector<std::size_t> pos(cpus);
    while (true) {
        int next = -1;
        for (unsigned c = 0; c < cpus; ++c)
            if (pos[c] < n && (next < 0 || per[c][pos[c]] < per[next][pos[next]]))
                next = static_cast<int>(c);
        if (next < 0)
            break;
        const std::size_t end = std::min(n, pos[next] + 1 + rng() % chunk);
        for (; pos[next] < end; ++pos[next])
            out.push_back(per[next][pos[next]]);
    }
    return out;
}

} // namespace

TEST(RunPiles, MergesAsASortWould) {
    std::mt19937_64 rng(3);
    for (unsigned cpus = 1; cpus <= 8; ++cpus)
        for (std::size_t chunk : {1u, 7u, 256u}) {
            const std::vector<uint64_t> ts = interleaved(rng, cpus, 2000, chunk);
            const std::vector<std::size_t> got = merged(ts);
            ASSERT_FALSE(got.empty()) << cpus << " CPUs, chunks of " << chunk;
            EXPECT_EQ(got, sorted(ts)) << cpus << " CPUs, chunks of " << chunk;
        }
}

// A windowed flush: arrivals up to a limit merged, the rest kept (not
// merged) and renumbered as the next fill's first arrivals, more arrivals
// added, everything merged at the end: one stable sort's order.
TEST(RunPiles, MergeUntilKeepsTheRestInOrder) {
    std::mt19937_64 rng(5);
    for (unsigned cpus = 1; cpus <= 6; ++cpus)
        for (std::size_t chunk : {1u, 7u, 256u}) {
            const std::vector<uint64_t> all = interleaved(rng, cpus, 1500, chunk);
            std::vector<std::size_t> ids(all.size()); // arrival -> its index in all
            std::iota(ids.begin(), ids.end(), 0);
            std::vector<std::size_t> out; // indices into all, as processed
            std::vector<std::size_t> fill;
            std::vector<uint64_t> ts;
            RunPiles p;
            std::size_t next = 0, kept_total = 0;
            for (std::size_t step = 0; next < all.size(); ++step) {
                const std::size_t n = std::min(all.size() - next, 100 + rng() % 900);
                for (std::size_t j = 0; j < n; ++j, ++next) {
                    p.add(all[next], ts.size());
                    ts.push_back(all[next]);
                    fill.push_back(next);
                }
                ASSERT_TRUE(p.ok()) << cpus << " CPUs, chunks of " << chunk;
                const bool last = next == all.size();
                // a window: before every later arrival (none of them late)
                uint64_t limit = UINT64_MAX;
                if (!last) {
                    const uint64_t later = *std::min_element(all.begin() + long(next), all.end());
                    limit = later - std::min<uint64_t>(later, 1 + rng() % 10);
                }
                std::vector<std::size_t> kept;
                p.merge_until(
                    limit, segs(ts), ts_of,
                    [&](uint64_t t, std::size_t i) {
                        EXPECT_LE(t, limit);
                        out.push_back(fill[i]);
                    },
                    [&](std::size_t first, std::size_t k) {
                        for (std::size_t i = first; i < first + k; ++i) {
                            EXPECT_GT(ts[i], limit);
                            kept.push_back(i);
                        }
                    });
                ASSERT_TRUE(std::is_sorted(kept.begin(), kept.end())); // arrival order
                kept_total += kept.size();
                std::vector<uint64_t> kts;
                std::vector<std::size_t> kfill;
                for (std::size_t i : kept) {
                    kts.push_back(ts[i]);
                    kfill.push_back(fill[i]);
                }
                ts.swap(kts);
                fill.swap(kfill);
            }
            EXPECT_TRUE(ts.empty());
            if (cpus > 1 && chunk > 1) { // the flushes did keep arrivals back
                EXPECT_GT(kept_total, 0u) << cpus << " CPUs, chunks of " << chunk;
            }
            EXPECT_EQ(out, sorted(all)) << cpus << " CPUs, chunks of " << chunk;
        }
}

TEST(RunPiles, EdgesAndGivingUp) {
    EXPECT_TRUE(merged({}).empty());
    EXPECT_EQ(merged({5}), (std::vector<std::size_t>{0}));
    EXPECT_EQ(merged({5, 5, 5}), (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(merged({0, UINT64_MAX, 0, UINT64_MAX}), (std::vector<std::size_t>{0, 2, 1, 3}));
    std::vector<uint64_t> down(RunPiles::kMaxPiles);
    for (std::size_t i = 0; i < down.size(); ++i)
        down[i] = 100 - i; // one pile each: just fits
    EXPECT_EQ(merged(down), sorted(down));
    down.push_back(1); // one more
    EXPECT_TRUE(merged(down).empty());
    RunPiles p;
    for (std::size_t i = 0; i < down.size(); ++i)
        p.add(down[i], i);
    EXPECT_FALSE(p.ok());
    p.reset(3, 9); // what a flush keeps: in order
    EXPECT_TRUE(p.ok());
    p.add(4, 3);
    std::vector<std::size_t> order;
    const std::vector<uint64_t> ts = {1, 2, 9, 4};
    p.merge(segs(ts), ts_of, [&](uint64_t, std::size_t i) { order.push_back(i); });
    EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 3, 2}));
}

// The same events (distinct times, no stacks: nothing depends on their
// arrival but the order) in time order, as 4 CPUs' chunks (merged piles,
// buffered or in a window) and shuffled (sorted keys): one report.
TEST(RunPiles, ReportDoesNotDependOnMergeOrSort) {
    std::vector<StreamBuilder> b;
    for (uint32_t c = 0; c < 4; ++c)
        b.emplace_back(1000 + c, 1'000'000'000ull + c, 8); // times distinct across CPUs
    for (uint32_t round = 0; round < 3; ++round)
        for (uint32_t c = 0; c < 4; ++c) {
            StreamBuilder::Story s;
            s.pages = 40 + 9 * c;
            s.vm_start = 0x7f0000000000ull + (uint64_t(round) << 32);
            s.pfn0 = 0x100000ull + (uint64_t(c) << 24) + round * 4096;
            s.policy = (round + c) % 2 ? Policy::keep : Policy::drop;
            b[c].story(s);
        }
    std::vector<Event> chunks; // the oldest CPU's next 50, as correlator_bench delivers
    std::vector<std::size_t> pos(4);
    while (true) {
        int next = -1;
        for (uint32_t c = 0; c < 4; ++c)
            if (pos[c] < b[c].events.size() &&
                (next < 0 || b[c].events[pos[c]].ts < b[next].events[pos[next]].ts))
                next = static_cast<int>(c);
        if (next < 0)
            break;
        const std::vector<Event>& v = b[next].events;
        for (std::size_t k = 0; k < 50 && pos[next] < v.size(); ++k)
            chunks.push_back(v[pos[next]++]);
    }
    for (Event& e : chunks)
        e.stack.clear();
    std::vector<Event> in_order = chunks;
    std::sort(in_order.begin(), in_order.end(),
              [](const Event& x, const Event& y) { return x.ts < y.ts; });
    std::vector<Event> shuffled = chunks;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937_64(5));

    auto report = [](const std::vector<Event>& events, uint64_t window) {
        CorrelatorOptions o;
        o.reorder_window_ns = window;
        Correlator c(o);
        for (const Event& e : events)
            c.feed(e);
        const Report r = c.finish();
        std::ostringstream out; // what the order decides: the lives, their steps, the anomalies
        out << anomaly_text(r) << r.events << ' ' << r.first_ts << ' ' << r.last_ts << '\n';
        for (const PageLife& p : r.pages) {
            out << p.pfn << ' ' << p.index << ' ' << p.seen << ' ' << p.missing << ' ' << p.alloc_ts
                << ' ' << p.free_ts << ' ' << p.zap_ts << ' ' << static_cast<int>(p.first_write)
                << ' ' << static_cast<int>(p.policy) << ' ' << static_cast<int>(p.mode) << ':';
            for (const Step& st : p.steps)
                out << ' ' << st.ts << '/' << static_cast<int>(st.kind) << '/' << st.value << '/'
                    << st.refcount << '/' << st.mapcount << '/' << int(st.flags);
            out << '\n';
        }
        for (const Phase& ph : r.phases)
            out << ph.name << ' ' << ph.start << ' ' << ph.end << ' ' << ph.kernel_events << '\n';
        return out.str();
    };
    const std::string want = report(in_order, 0);
    EXPECT_GT(want.size(), 10'000u);
    EXPECT_EQ(report(chunks, 0), want);
    EXPECT_EQ(report(shuffled, 0), want);
    EXPECT_EQ(report(chunks, 20'000), want); // flushes, none late: a chunk spans <= 10.4 us
}
