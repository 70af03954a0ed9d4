// kextrace/follow_output.h - kextrace --follow in the text and JSON reports:
// the common path across all pages, and (text --full) each page's path.
#pragma once

#include <kextrace/follow.h>
#include <kextrace/output.h>

#include <nlohmann/json.hpp>

#include <ostream>
#include <set>
#include <string>

namespace kextrace {

// The text section:
//   followed: 412 calls on 8 of 8 pages (0 outside any page life)
//   common path (pages that passed each function, or [curated step]):
//     8/8  [kex_alloc]  (curated step)
//     8/8  vm_insert_page
//     8/8  folio_add_file_rmap_ptes  (the plan watches it)
//   every page passed, not watched by the plan: vm_insert_page, __folio_put
// and with full, per page its whole path (curated and followed steps):
//   page 0 pfn 0x1000:
//     +0ns      kex_alloc
//     +1.20us   vm_insert_page             arg3 page   ref 1 map 0
void render_follow_text(const Report& report, const FollowSummary& summary, std::ostream& out,
                        bool full);

// The functions the run's probes attached to (ProbeStatus::resolved), for a
// replay that has no probe plan: the common path's "curated" marks.
std::set<std::string> curated_functions_of(const RunInfo& run);

// The "follow" section of the JSON report (docs/json-schema.md): the
// functions by id (a followed step's "value"), the common path, the
// functions every page passed that the plan does not watch.
nlohmann::json follow_json(const Report& report, const FollowSummary& summary);

} // namespace kextrace
