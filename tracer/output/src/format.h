// Small formatting helpers shared by the text and JSON renderers.
#pragma once

#include <kextrace/core.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace::detail {

// Three significant digits: 850ns, 4.21us, 12.3us, 123us, 1.23ms, 1.23s.
std::string duration(uint64_t ns);
// "+1.23us" (or "-..." when b < a).
std::string delta(uint64_t from, uint64_t to);
std::string hex(uint64_t v);
// "1→2→1→0"; "-" when empty.
std::string trail(const std::vector<int32_t>& t);
// Display width of UTF-8 text (code points; our output has no wide characters).
std::size_t width(std::string_view s);
// s padded with spaces (or cut, ending in '…') to exactly w columns.
std::string cell(std::string_view s, std::size_t w);
std::string rcell(std::string_view s, std::size_t w); // right-aligned
// JSON / machine names of milestones: "kex_alloc", "pte_set", ...
struct MilestoneToken {
    uint16_t bit;
    std::string_view name;
};
std::span<const MilestoneToken> milestone_token_table(); // in story order
std::vector<std::string> milestone_tokens(uint16_t mask);
std::string_view kex_free_reason_name(uint32_t reason); // "after-insert", "at-close", "error"
// Losses::map_full's failed maps (not pfn_unknown), by name, sorted by name.
std::vector<std::pair<std::string_view, uint64_t>> map_full_entries(const Losses& l);

} // namespace kextrace::detail
