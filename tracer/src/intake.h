// intake.h - records -> typed events -> the correlator, and the streams
// written while the trace runs (--events, --jsonl). A record is a ring-buffer
// sample, or with --watch a page's life of records (bpf/watch.bpf.h): one
// sample at the page's free, or read from the BPF map after the trace for
// the pages not freed. Counts what it received per type for the ring
// accounting (produced = received + lost).
#pragma once

#include "events_writer.h"
#include "ksyms.h"
#include "probe_plan.h"
#include "trace_files.h"
#include "tramp_stack.h"

#include <kextrace/core.h>
#include <kextrace/stack_sites.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace kextrace {

// The streams written while the trace runs (--jsonl, --events).
struct Streams {
    std::optional<JsonlWriter> jsonl;
    std::optional<EventsWriter> events;
};

class Intake {
  public:
    Intake(const CorrelatorOptions& copts, const Ksyms& ksyms, const ProbePlan& attached,
           Streams& streams)
        : correlator(copts), ksyms_(ksyms), tramp_(attached, ksyms), streams_(streams) {}

    // A ring-buffer sample, or (--watch) a life read from the map at the end.
    // Always 0 (the ring buffer's callback goes on).
    int take(std::span<const std::byte> rec);

    Correlator correlator;
    StackSites sites; // --stacks sites: every record's stack back
    uint64_t decode_errors = 0;
    std::array<uint64_t, KEX_LOSS_SLOTS> received{}; // records per type, for ring_accounting
    uint64_t ring_records = 0;                       // ring-buffer samples (--watch: a life is one)

  private:
    void take_record(std::span<const std::byte> rec);
    void take_one(std::span<const std::byte> rec);
    void take_life(std::span<const std::byte> rec);

    const Ksyms& ksyms_;
    TrampStacks tramp_;
    Streams& streams_;
};

} // namespace kextrace
