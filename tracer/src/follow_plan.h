// follow_plan.h - --follow on this machine: the discovery (follow_discovery.h)
// fed with the running kernel's BTF, kprobe blacklist, traceable functions
// and the curated plan, and its --plan listing.
#pragma once

#include "follow_discovery.h"
#include "loader.h"
#include "probe_plan.h"
#include "tracefs.h"

#include <kextrace/follow.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace kextrace {

struct FollowOptions {
    std::vector<std::string> globs;   // --follow GLOB (empty: every function)
    std::vector<std::string> exclude; // --follow-exclude GLOB...
    std::string btf_path{};           // "" = the running kernel's
    std::string blacklist_path = "/sys/kernel/debug/kprobes/blacklist";
};

// The functions the curated plan watches with a BPF trampoline, by step.
std::map<std::string, std::string> trampoline_functions(const ProbePlan& plan);
// Every function the curated plan attaches to (kprobes and trampolines).
std::set<std::string> curated_functions(const ProbePlan& plan);

// The follow set of this kernel; an error (no BTF) names what is missing.
Result<FollowSet> discover_follow(const FollowOptions& fo, const ProbePlan& plan,
                                  const std::optional<Tracefs>& tracefs);

// --follow --plan:
//   follow: 1712 functions take a struct page * or struct folio * in BTF
//     chosen 1630 (412 with a page, 1218 with a folio)
//       __folio_put                       arg1 folio
//       ...
//     left out 82:
//       kprobe blacklist (9): __free_one_page, ...
void print_follow_plan(std::ostream& out, const FollowOptions& fo, const FollowSet& s);

// Attaches the follow set before the curated probes arm the tracking (so
// every page life has its followed calls from its start), and says on
// stderr how:
//   kextrace: follow: 1630 of 1630 functions via kprobe.multi (1 link) in 412 ms
// exit 2 when none could be attached.
FollowAttach attach_follow_or_die(Loader& loader, const FollowSet& set);

// The text report's --follow part (kextrace/follow_output.h) and the JSON
// "follow" section: the report's paths and common path (summary: computed
// once, follow_summary(report, curated_functions(plan))), with how the
// functions were chosen and attached and what the BPF side dropped.
void print_follow_report(std::ostream& out, const Report& report, const FollowSummary& summary,
                         const FollowAttach& attach, const FollowCounts& stats, bool full);
nlohmann::json follow_report_json(const Report& report, const FollowSummary& summary,
                                  const FollowSet& set, const FollowAttach& attach,
                                  const FollowCounts& stats);

} // namespace kextrace
