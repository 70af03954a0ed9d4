// follow.cpp - --follow in the correlator and the Report (kextrace/follow.h).
#include "correlator_state.h"

#include <kextrace/follow.h>

#include <algorithm>
#include <map>

namespace kextrace {

// A followed call belongs to the life open on its pfn, or to the last one
// closed there when it falls inside it (a free path's calls before the
// mm_page_free that closed it, reordered). The BPF side only sends calls on
// tracked pages, so one outside any life is counted, not an anomaly.
bool Correlator::State::on_follow(Rec& ev) {
    int64_t life = -1;
    if (auto it = open_by_pfn.find(ev.pfn); it != open_by_pfn.end()) {
        life = it->second;
    } else if (auto c = closed_by_pfn.find(ev.pfn); c != closed_by_pfn.end()) {
        const PageLife& p = r.pages[c->second];
        if (ev.ts >= p.alloc_ts && ev.ts <= p.free_ts)
            life = c->second;
    }
    if (life < 0) {
        ++r.follow_unmatched;
        return false;
    }
    add_step(static_cast<uint32_t>(life), StepKind::followed, ev, ev.arg0);
    return true;
}

FollowedCall followed_call(const Step& s) {
    return {KEX_FOLLOW_FUNC(s.value), KEX_FOLLOW_REG(s.value), KEX_FOLLOW_KIND(s.value)};
}

std::string_view followed_kind_name(uint32_t kind) {
    switch (kind) {
    case KEX_FOLLOW_K_FOLIO:
        return "folio";
    case KEX_FOLLOW_K_BATCH:
        return "folio_batch";
    case KEX_FOLLOW_K_ARRAY:
        return "page array";
    default:
        return "page";
    }
}

std::string followed_name(const Report& r, uint32_t func) {
    return func < r.follow_functions.size() ? r.follow_functions[func] : "#" + std::to_string(func);
}

namespace {

// One life's functions and steps: first position (0..1 in its path) and calls.
struct LifeVisit {
    double first = 0;
    uint64_t calls = 0;
};

std::map<uint32_t, LifeVisit> visits_of(const PageLife& p, bool* followed) {
    std::map<uint32_t, LifeVisit> out;
    const std::size_t n = p.steps.size();
    std::size_t i = 0;
    for (const Step& s : p.steps) {
        const bool call = s.kind == StepKind::followed;
        *followed = *followed || call;
        const uint32_t key =
            call ? followed_call(s).func : kStepEntry | static_cast<uint32_t>(s.kind);
        auto [it, fresh] = out.try_emplace(key);
        if (fresh)
            it->second.first = n > 1 ? static_cast<double>(i) / static_cast<double>(n - 1) : 0;
        it->second.calls++;
        ++i;
    }
    return out;
}

} // namespace

FollowSummary follow_summary(const Report& r, const std::set<std::string>& curated) {
    FollowSummary sum;
    sum.lives = r.pages.size();
    sum.unmatched = r.follow_unmatched;
    std::map<uint32_t, FollowedFunction> by_func;
    for (const PageLife& p : r.pages) {
        bool followed = false;
        auto visits = visits_of(p, &followed);
        sum.followed_lives += followed;
        for (const auto& [func, v] : visits) {
            FollowedFunction& f = by_func[func];
            f.func = func;
            f.pages++;
            f.calls += v.calls;
            f.position += v.first;
            if (!(func & kStepEntry))
                sum.calls += v.calls;
        }
    }
    if (!sum.followed_lives) // no --follow here: no path
        return sum;
    for (auto& [func, f] : by_func) {
        f.step = func & kStepEntry;
        f.name = f.step ? std::string(step_kind_name(static_cast<StepKind>(func & 0xff)))
                        : followed_name(r, func);
        f.position /= static_cast<double>(f.pages);
        f.curated = f.step || curated.contains(f.name);
        sum.path.push_back(std::move(f));
    }
    std::stable_sort(sum.path.begin(), sum.path.end(), [](const auto& a, const auto& b) {
        return a.pages != b.pages ? a.pages > b.pages : a.position < b.position;
    });
    for (const auto& f : sum.path)
        if (f.pages == sum.lives && !f.curated)
            sum.every_page_unwatched.push_back(f.name);
    return sum;
}

} // namespace kextrace
