// follow_plan.h - --follow on this machine: the discovery (follow_discovery.h)
// fed with the running kernel's BTF, kprobe blacklist, traceable functions
// and the curated plan, and its --plan listing.
#pragma once

#include "follow_discovery.h"
#include "loader.h"
#include "probe_plan.h"
#include "tracefs.h"

#include <optional>
#include <ostream>
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

} // namespace kextrace
