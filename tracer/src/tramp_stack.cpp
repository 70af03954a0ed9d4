// tramp_stack.cpp - TrampStacks (tramp_stack.h).
#include "tramp_stack.h"

namespace kextrace {

TrampStacks::TrampStacks(const ProbePlan& plan, const Ksyms& ksyms) : ksyms_(ksyms) {
    for (uint32_t p = 0; p < KEX_P_COUNT; p++)
        if (plan.enabled[p] && plan.kind[p] == ProbeKind::fentry)
            if (const Ksym* s = ksyms.find(plan.target[p]); s && s->is_text())
                traced_[p] = s;
}

void TrampStacks::complete(Event& ev) const {
    // a driver page's allocation record carries the allocation's stack,
    // copied at the page's adoption: not one this probe walked
    if (ev.probe >= KEX_P_COUNT || ev.stack.empty() || ev.type == KEX_EV_DRIVER_ALLOC)
        return;
    const Ksym* fn = traced_[ev.probe];
    if (!fn || ksyms_.containing(ev.stack.front()) == fn)
        return;
    ev.stack.insert(ev.stack.begin(), fn->addr);
}

} // namespace kextrace
