// correlate_all.h - the correlator tests' harness: feed a synthetic stream,
// process it all, check that nothing was left pending, finish.
#pragma once

#include <kextrace/core.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace::test {

// Feeds events, processes them all, checks nothing is pending (windows:
// as many open as the stream leaves open), finishes.
inline Report run(const std::vector<Event>& events, CorrelatorOptions opts = {},
                  const Losses* losses = nullptr, std::size_t open_windows = 0) {
    Correlator c(std::move(opts));
    for (const Event& e : events)
        c.feed(e);
    if (losses)
        c.set_losses(*losses);
    c.flush();
    const PendingState ps = c.pending();
    EXPECT_EQ(ps.buffered, 0u);
    EXPECT_EQ(ps.kmem_allocs, 0u) << "mm_page_alloc left unclaimed";
    EXPECT_EQ(ps.open_lives, 0u) << "page lives left open";
    EXPECT_EQ(ps.windows, open_windows) << "windows or phases left open";
    Report r = c.finish();
    EXPECT_TRUE(c.pending().empty());
    return r;
}

inline std::string anomalies(const Report& r) {
    return anomaly_text(r);
}

inline bool has_anomaly(const Report& r, std::string_view needle) {
    return std::any_of(r.anomalies.begin(), r.anomalies.end(), [&](const Anomaly& a) {
        return a.message.find(needle) != std::string::npos;
    });
}

} // namespace kextrace::test
