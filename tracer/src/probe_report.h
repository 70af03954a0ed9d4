// probe_report.h - the start-up report: per logical step, the attach point
// used on this kernel or why there is none, built from the plan and what
// actually attached. Rows become RunInfo::probes for the final report.
#pragma once

#include "loader.h"
#include "probe_plan.h"

#include <kextrace/output.h>

#include <optional>
#include <ostream>
#include <vector>

namespace kextrace {

std::vector<ProbeStatus> probe_statuses(const ProbePlan& plan,
                                        const std::array<AttachResult, KEX_P_COUNT>* results,
                                        const MissedCounts* missed,
                                        bool note_unknown_missed = false);

// One line per step:
//   insert          insert_page_into_pte_locked.constprop.0  clone without addr: pte PARM2, ...
//   fault install   -                                         no kprobes on this kernel (...)
void print_probe_table(std::ostream& out, const std::vector<ProbeStatus>& rows);

// The Correlator's expected-milestone mask for what is observable here.
uint16_t expected_milestones(const ProbePlan& plan,
                             const std::array<AttachResult, KEX_P_COUNT>* results);

} // namespace kextrace
