// report_of.h - the report of a synthetic stream, as the output tests take it.
#pragma once

#include <kextrace/stream_builder.h>

#include <gtest/gtest.h>

namespace kextrace::test {

// Correlated as `kextrace -- CMD` would with CMD's tgid 100 (unless opts say
// otherwise); a complete stream leaves nothing pending at its end.
inline Report report_of(const StreamBuilder& b, const Losses& losses = {},
                        CorrelatorOptions opts = {.roots = {100}}) {
    PendingState left;
    Report r = correlate(b, std::move(opts), losses, &left);
    EXPECT_TRUE(left.empty());
    return r;
}

} // namespace kextrace::test
