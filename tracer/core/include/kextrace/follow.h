// kextrace/follow.h - kextrace --follow in a Report: each page's followed
// path (StepKind::followed steps, in time order among the curated steps)
// and the common path across all pages.
//
//   common path of 8 pages (followed calls: 412, outside any life: 0)
//     8/8  vm_insert_page
//     8/8  folio_add_file_rmap_ptes   (curated: rmap add)
//     8/8  __folio_put                 not watched by the plan
#pragma once

#include <kextrace/core.h>

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace {

// A followed step's function, argument and kind (its Step::value).
struct FollowedCall {
    uint32_t func = 0;
    uint32_t reg = 0;  // 1-6: the argument that held the page or folio
    uint32_t kind = 0; // enum kex_follow_kind: page, folio, folio_batch entry, array entry
};
FollowedCall followed_call(const Step& s);
// "page", "folio", "folio_batch", "page array"
std::string_view followed_kind_name(uint32_t kind);
// The function's name, "#N" when the report has no name for it.
std::string followed_name(const Report& r, uint32_t func);

// One entry of the common path: a followed function, or one of the curated
// plan's steps (step: its StepKind's name), so that the path is whole on a
// kernel where a step's function cannot be followed (6.1's insert clone).
struct FollowedFunction {
    uint32_t func = 0; // the function's id; for a step, kStepEntry | its StepKind
    std::string name;
    uint64_t pages = 0;   // lives that passed it at least once
    uint64_t calls = 0;   // followed steps (steps of that kind)
    double position = 0;  // mean relative position of its first call in a life's path (0..1)
    bool curated = false; // the curated plan watches it too (always, for a step)
    bool step = false;    // a curated step, not a followed function
};
inline constexpr uint32_t kStepEntry = 1u << 31;

struct FollowSummary {
    uint64_t lives = 0;          // every life of the report
    uint64_t followed_lives = 0; // lives with at least one followed call
    uint64_t calls = 0;          // followed steps in all (curated steps not counted)
    uint64_t unmatched = 0;      // Report::follow_unmatched
    // most pages first, then in path order (position)
    std::vector<FollowedFunction> path;
    // passed by every life, and not among the curated plan's functions
    std::vector<std::string> every_page_unwatched;
};

// curated: the functions the curated plan attaches to (probe targets).
FollowSummary follow_summary(const Report& r, const std::set<std::string>& curated);

} // namespace kextrace
