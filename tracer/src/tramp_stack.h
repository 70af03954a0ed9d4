// tramp_stack.h - an fentry program's stack starts at the traced function,
// as a kprobe's does, on every kernel. Below the BPF program and its
// trampoline (skipped in BPF, kextrace.bpf.h), 6.12 shows the traced
// function's own frame and 7.2 does not: its first frame is the caller's
// (measured in the lab guests: tests/guest/tracer.sh). Where the first frame
// is not in the traced function, the function's entry is put first (not on
// a stack the probe copied from an earlier record: a driver page's
// allocation).
#pragma once

#include "ksyms.h"
#include "probe_plan.h"

#include <kextrace/core.h>

#include <array>

namespace kextrace {

class TrampStacks {
  public:
    TrampStacks(const ProbePlan& plan, const Ksyms& ksyms);
    // Completes ev's stack if ev came from an fentry program.
    void complete(Event& ev) const;

  private:
    const Ksyms& ksyms_;
    std::array<const Ksym*, KEX_P_COUNT> traced_{}; // the fentry probes' functions
};

} // namespace kextrace
