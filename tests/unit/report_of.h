// report_of.h - the report of a synthetic stream, as the output tests take it.
#pragma once

#include <kextrace/output.h>
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

// A 6.12 run's facts: one step attached through a clone, one not found.
inline RunInfo run_info() {
    RunInfo run;
    run.kernel_release = "6.12.117+deb12-amd64";
    run.command_line = "mmap_test /dev/kex 8";
    run.set_pte_observed = "PTE read back at the return of insert_page_into_pte_locked.isra.0";
    run.probes = {{"insert", "insert_page_into_pte_locked", "insert_page_into_pte_locked.isra.0",
                   true, "", 2, "kprobe + kretprobe"},
                  {"zap", "page_remove_rmap", "", false, "not in kallsyms", 0, "kprobe"}};
    return run;
}

} // namespace kextrace::test
