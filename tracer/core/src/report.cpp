// The Report model's helpers: names, trails, totals.
#include <kextrace/core.h>

namespace kextrace {

std::string_view policy_name(Policy p) {
    switch (p) {
    case Policy::drop:
        return "drop";
    case Policy::keep:
        return "keep";
    case Policy::unknown:
        break;
    }
    return "unknown";
}

std::string_view step_kind_name(StepKind k) {
    switch (k) {
    case StepKind::kmem_alloc:
        return "kmem_alloc";
    case StepKind::kex_alloc:
        return "kex_alloc";
    case StepKind::insert:
        return "insert";
    case StepKind::insert_ret:
        return "insert_ret";
    case StepKind::rmap_add:
        return "rmap_add";
    case StepKind::do_set_pte:
        return "do_set_pte";
    case StepKind::pte_set:
        return "pte_set";
    case StepKind::kex_insert:
        return "kex_insert";
    case StepKind::user_fault:
        return "user_fault";
    case StepKind::set_dirty:
        return "set_dirty";
    case StepKind::rmap_remove:
        return "rmap_remove";
    case StepKind::kex_free:
        return "kex_free";
    case StepKind::page_free:
        return "page_free";
    case StepKind::page_free_batched:
        return "page_free_batched";
    case StepKind::pte_lookup:
        return "pte_lookup";
    case StepKind::followed:
        return "followed";
    }
    return "unknown";
}

std::string_view pte_source_name(PteSource s) {
    switch (s) {
    case PteSource::insert_ret:
        return "insert_ret";
    case PteSource::do_set_pte_ret:
        return "do_set_pte_ret";
    case PteSource::pte_lookup:
        return "pte_lookup";
    case PteSource::none:
        break;
    }
    return "none";
}

std::string milestone_names(uint16_t mask) {
    static constexpr std::pair<uint16_t, std::string_view> kNames[] = {
        {kMsKmemAlloc, "kmem alloc"}, {kMsKexAlloc, "kex alloc"},
        {kMsInsert, "insert"},        {kMsRmapAdd, "rmap add"},
        {kMsPteSet, "pte"},           {kMsKexInsert, "kex insert"},
        {kMsKexFree, "kex free"},     {kMsZap, "zap"},
        {kMsPageFree, "free"},
    };
    std::string s;
    for (const auto& [bit, name] : kNames) {
        if (!(mask & bit))
            continue;
        if (!s.empty())
            s += ", ";
        s += name;
    }
    return s;
}

std::string_view first_write_name(FirstWrite w) {
    switch (w) {
    case FirstWrite::unknown:
        return "unknown";
    case FirstWrite::no_fault:
        return "no fault";
    case FirstWrite::fault:
        return "fault";
    }
    return "unknown";
}

std::string_view zap_context_name(ZapContext z) {
    switch (z) {
    case ZapContext::none:
        return "-";
    case ZapContext::munmap:
        return "munmap";
    case ZapContext::exit:
        return "exit";
    case ZapContext::other:
        return "other";
    }
    return "-";
}

namespace {

// The curated steps' readings only: the same trail with or without --follow.
template <typename Steps, typename Get>
void trail_into(const Steps& steps, Get get, std::vector<int32_t>& t) {
    t.clear();
    for (const Step& s : steps) {
        const int32_t v = get(s);
        if (v == kNoCount || s.kind == StepKind::followed)
            continue;
        if (t.empty() || t.back() != v)
            t.push_back(v);
    }
}
template <typename Steps, typename Get> std::vector<int32_t> trail(const Steps& steps, Get get) {
    std::vector<int32_t> t;
    trail_into(steps, get, t);
    return t;
}

template <typename Steps> int32_t max_mapcount_of(const Steps& steps) {
    int32_t m = 0;
    for (const Step& s : steps)
        if (s.mapcount != kNoCount)
            m = std::max(m, s.mapcount);
    return m;
}

int32_t refcount_of(const Step& s) {
    return s.refcount;
}
int32_t mapcount_of(const Step& s) {
    return s.mapcount;
}

} // namespace

std::vector<int32_t> refcount_trail(const PageLife& p) {
    return trail(p.steps, refcount_of);
}
std::vector<int32_t> refcount_trail(std::span<const Step> steps) {
    return trail(steps, refcount_of);
}
// internal to the correlator (correlator_state.h: corr::refcount_trail)
namespace corr {
void refcount_trail(std::span<const Step> steps, std::vector<int32_t>& out);
}
void corr::refcount_trail(std::span<const Step> steps, std::vector<int32_t>& out) {
    trail_into(steps, refcount_of, out);
}
std::vector<int32_t> mapcount_trail(const PageLife& p) {
    return trail(p.steps, mapcount_of);
}
std::vector<int32_t> mapcount_trail(std::span<const Step> steps) {
    return trail(steps, mapcount_of);
}
int32_t max_mapcount(const PageLife& p) {
    return max_mapcount_of(p.steps);
}
int32_t max_mapcount(std::span<const Step> steps) {
    return max_mapcount_of(steps);
}

std::vector<int32_t> expected_refcount_trail(Policy p) {
    // drop: 1 alloc, 2 insert (get_page), 1 kex free, 0 at the zap's release.
    // keep: 1 alloc, 2 insert, 1 at the zap's release, 0 at kex's free (close).
    (void)p;
    return {1, 2, 1, 0};
}

std::vector<int32_t> expected_refcount_trail(Policy p, MapMode m) {
    // pfn: 1 alloc, the mapping takes none, 0 at kex's free (close).
    if (m == MapMode::pfn)
        return {1, 0};
    // another driver: its own references are its business (none expected)
    if (m == MapMode::driver)
        return {};
    // fault: 1 alloc, 2 with the get_page handed to the core, 1 at the zap, 0 at close.
    return expected_refcount_trail(p);
}

std::string_view map_mode_name(MapMode m) {
    switch (m) {
    case MapMode::insert:
        return "insert";
    case MapMode::batch:
        return "batch";
    case MapMode::fault:
        return "fault";
    case MapMode::pfn:
        return "pfn";
    case MapMode::driver:
        return "driver";
    case MapMode::unknown:
        break;
    }
    return "unknown";
}

uint16_t mode_expected(MapMode m) {
    switch (m) {
    case MapMode::fault:
        return kMsDefaultExpected & static_cast<uint16_t>(~kMsKexInsert);
    case MapMode::pfn:
        return kMsKexAlloc | kMsKexInsert | kMsKexFree | kMsPageFree;
    case MapMode::driver: // allocated before the trace, no kex tracepoints
        return kMsInsert | kMsRmapAdd | kMsPteSet | kMsZap | kMsPageFree;
    default:
        return kMsDefaultExpected;
    }
}

uint64_t Losses::map_failures() const {
    uint64_t n = 0;
    for (std::size_t i = 0; i < kTrackSlots; ++i)
        if (i != KEX_TRACK_PFN_UNKNOWN)
            n += map_full[i];
    return n;
}

uint64_t Losses::total() const {
    uint64_t n = ring + decode_errors + map_failures();
    for (uint64_t v : per_type)
        n += v;
    return n;
}

std::span<const uint64_t> Report::stack(uint32_t id) const {
    if (id >= stacks.size())
        return {};
    return stacks[id];
}

std::size_t Report::incomplete_pages() const {
    std::size_t n = 0;
    for (const PageLife& p : pages)
        n += p.complete() ? 0 : 1;
    return n;
}

} // namespace kextrace
