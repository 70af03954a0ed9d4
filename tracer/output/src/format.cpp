#include "format.h"

#include <algorithm>

#include <fmt/format.h>

namespace kextrace::detail {

std::string duration(uint64_t ns) {
    // Three significant digits: 850ns 4.21us 12.3us 123us 1.23ms 12.3ms 1.23s.
    if (ns < 1000)
        return fmt::format("{}ns", ns);
    auto three = [](double v, const char* unit) {
        if (v < 10)
            return fmt::format("{:.2f}{}", v, unit);
        if (v < 100)
            return fmt::format("{:.1f}{}", v, unit);
        return fmt::format("{:.0f}{}", v, unit);
    };
    if (ns < 999500)
        return three(static_cast<double>(ns) / 1e3, "us");
    if (ns < 999500000)
        return three(static_cast<double>(ns) / 1e6, "ms");
    return three(static_cast<double>(ns) / 1e9, "s");
}

std::string delta(uint64_t from, uint64_t to) {
    return to >= from ? "+" + duration(to - from) : "-" + duration(from - to);
}

std::string hex(uint64_t v) {
    return fmt::format("{:#x}", v);
}

std::string trail(const std::vector<int32_t>& t) {
    if (t.empty())
        return "-";
    std::string s;
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (i)
            s += "→";
        s += std::to_string(t[i]);
    }
    return s;
}

std::size_t width(std::string_view s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        n += (c & 0xc0) != 0x80;
    return n;
}

namespace {

// The first n code points of s.
std::string_view prefix(std::string_view s, std::size_t n) {
    std::size_t i = 0, cps = 0;
    while (i < s.size()) {
        if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) {
            if (cps == n)
                break;
            ++cps;
        }
        ++i;
    }
    return s.substr(0, i);
}

} // namespace

std::string cell(std::string_view s, std::size_t w) {
    const std::size_t n = width(s);
    if (n > w)
        return w ? std::string(prefix(s, w - 1)) + "…" : std::string();
    return std::string(s) + std::string(w - n, ' ');
}

std::string rcell(std::string_view s, std::size_t w) {
    const std::size_t n = width(s);
    if (n >= w)
        return cell(s, w);
    return std::string(w - n, ' ') + std::string(s);
}

std::span<const MilestoneToken> milestone_token_table() {
    static constexpr MilestoneToken kTokens[] = {
        {kMsKmemAlloc, "kmem_alloc"}, {kMsKexAlloc, "kex_alloc"},
        {kMsInsert, "insert"},        {kMsRmapAdd, "rmap_add"},
        {kMsPteSet, "pte_set"},       {kMsKexInsert, "kex_insert"},
        {kMsKexFree, "kex_free"},     {kMsZap, "zap"},
        {kMsPageFree, "page_free"},
    };
    return kTokens;
}

std::vector<std::string> milestone_tokens(uint16_t mask) {
    std::vector<std::string> out;
    for (const auto& [bit, name] : milestone_token_table())
        if (mask & bit)
            out.emplace_back(name);
    return out;
}

std::string_view kex_free_reason_name(uint32_t reason) {
    switch (reason) {
    case KEX_FREE_AFTER_INSERT:
        return "after-insert";
    case KEX_FREE_AT_CLOSE:
        return "at-close";
    case KEX_FREE_ERROR:
        return "error";
    case UINT32_MAX:
        return "-";
    default:
        return "?";
    }
}

std::vector<std::pair<std::string_view, uint64_t>> map_full_entries(const Losses& l) {
    std::vector<std::pair<std::string_view, uint64_t>> out;
    for (uint32_t m = 0; m < kTrackSlots; ++m)
        if (m != KEX_TRACK_PFN_UNKNOWN && l.map_full[m])
            out.emplace_back(track_slot_name(m), l.map_full[m]);
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace kextrace::detail
