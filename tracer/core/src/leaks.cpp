// Leak hunting: per-page verdicts and reference ledgers (kextrace/leaks.h).
#include <cstdint>
#include <kextrace/leaks.h>

#include <algorithm>
#include <cstdio>
#include <optional>

// Counts come from the kernel or from arbitrary input (fuzzing, damaged JSONL):
// differences are taken in 64 bits and saturated, never overflowed.
static int32_t sat32(int64_t v) {
    return int32_t(std::clamp<int64_t>(v, INT32_MIN, INT32_MAX));
}

namespace kextrace {

std::string_view verdict_name(Verdict v) {
    switch (v) {
    case Verdict::freed:
        return "freed";
    case Verdict::leaked:
        return "leaked";
    case Verdict::still_mapped:
        return "still mapped";
    case Verdict::freed_while_mapped:
        return "freed while mapped";
    case Verdict::held:
        return "held";
    case Verdict::inconclusive:
        break;
    }
    return "inconclusive";
}

std::string_view verdict_key(Verdict v) {
    switch (v) {
    case Verdict::still_mapped:
        return "still_mapped";
    case Verdict::freed_while_mapped:
        return "freed_while_mapped";
    default:
        return verdict_name(v);
    }
}

std::string_view ref_site_name(RefSite s) {
    switch (s) {
    case RefSite::alloc:
        return "alloc";
    case RefSite::insert:
        return "vm_insert_page";
    case RefSite::pte_copy:
        return "pte copy (fork)";
    case RefSite::kex_put:
        return "kex put";
    case RefSite::zap:
        return "zap";
    case RefSite::unexplained:
        break;
    }
    return "unexplained";
}

std::string_view ref_site_key(RefSite s) {
    switch (s) {
    case RefSite::insert:
        return "insert";
    case RefSite::pte_copy:
        return "pte_copy";
    case RefSite::kex_put:
        return "kex_put";
    default:
        return ref_site_name(s);
    }
}

std::string change_where(const PageLife& page, const RefChange& c) {
    if (c.from_step != kNoStep && c.from_step < page.steps.size())
        return "between " + std::string(step_kind_name(page.steps[c.from_step].kind)) + " and " +
               std::string(step_kind_name(c.kind));
    return "at " + std::string(step_kind_name(c.kind));
}

namespace {

// The action an event's reading comes before (kprobe entries, kex's put).
struct Pending {
    RefSite site;
    int32_t delta;
    uint32_t step;
};

std::optional<Pending> action_after_reading(const Step& s, uint32_t i) {
    switch (s.kind) {
    case StepKind::insert:
        return Pending{RefSite::insert, +1, i};
    case StepKind::rmap_remove:
        return Pending{RefSite::zap, -1, i};
    case StepKind::kex_free:
        return Pending{RefSite::kex_put, -1, i};
    default:
        return std::nullopt;
    }
}

// The insert path: mapcount rises there because of the insert itself.
bool insert_path(StepKind prev, StepKind next) {
    auto in = [](StepKind k) {
        return k == StepKind::insert || k == StepKind::rmap_add || k == StepKind::do_set_pte;
    };
    return in(prev) || in(next) || next == StepKind::insert_ret || next == StepKind::pte_set ||
           next == StepKind::kex_insert;
}

bool counted(const Step& s) {
    // Negative refcounts are no page's: treat as unread (and never trust
    // counts from a step that arrived after the free that closed the life).
    // --follow's readings are left out: the ledger books its changes at the
    // curated steps, the same with or without --follow.
    return s.refcount != kNoCount && s.refcount >= 0 && !(s.flags & kStepAfterFree) &&
           s.kind != StepKind::page_free_batched && s.kind != StepKind::followed;
}

std::string fmt_ns(uint64_t ns) {
    char buf[32];
    if (ns < 10'000)
        std::snprintf(buf, sizeof(buf), "%lluns", static_cast<unsigned long long>(ns));
    else if (ns < 10'000'000)
        std::snprintf(buf, sizeof(buf), "%.1fus", static_cast<double>(ns) / 1e3);
    else if (ns < 10'000'000'000ULL)
        std::snprintf(buf, sizeof(buf), "%.1fms", static_cast<double>(ns) / 1e6);
    else
        std::snprintf(buf, sizeof(buf), "%.1fs", static_cast<double>(ns) / 1e9);
    return buf;
}

class LedgerBuilder {
  public:
    // Of a life's steps, decoded here, or of steps decoded by the caller (kept alive by it).
    LedgerBuilder(const PageLife& p, PageVerdict& v)
        : decoded_(p.steps.to_vector()), steps_(decoded_), v_(v) {}
    LedgerBuilder(std::span<const Step> steps, PageVerdict& v) : steps_(steps), v_(v) {}

    void book(RefSite site, int32_t delta, uint32_t step, uint32_t stack_id, bool inferred,
              uint32_t from_step = kNoStep) {
        RefChange c;
        c.site = site;
        c.delta = delta;
        c.step = step;
        c.kind = steps_[step].kind;
        c.ts = steps_[step].ts;
        c.stack_id = stack_id;
        c.inferred = inferred;
        c.open = delta > 0 ? delta : 0;
        c.from_step = from_step;
        v_.changes.push_back(c);
    }

    // Walks the steps up to the first page_free. Returns the mapcount state
    // just before that free (kNoCount if never read), or after the last step.
    void run() {
        int32_t ref = kNoCount;
        int32_t map = kNoCount;
        std::optional<uint32_t> prev;
        std::optional<Pending> pending;
        bool insert_accounted = false;
        const auto n = static_cast<uint32_t>(steps_.size());
        for (uint32_t i = 0; i < n; ++i) {
            const Step& s = steps_[i];
            const bool is_free = s.kind == StepKind::page_free;
            if (is_free)
                map_before_free_ = map;
            // Mapcount: the reading, less the zap's own decrement.
            if (!(s.flags & kStepAfterFree) && s.kind != StepKind::page_free_batched) {
                if (s.mapcount != kNoCount && s.mapcount >= 0 && !is_free)
                    map =
                        s.kind == StepKind::rmap_remove ? std::max(0, s.mapcount - 1) : s.mapcount;
                else if (s.kind == StepKind::rmap_remove && map != kNoCount && map > 0)
                    --map;
            }
            if (s.kind == StepKind::insert)
                insert_accounted = true;
            if (!counted(s)) {
                if (is_free)
                    break;
                continue;
            }
            if (!prev) {
                first_reading(i, s.refcount);
            } else {
                interval(*prev, i, sat32(int64_t(s.refcount) - ref), pending, insert_accounted);
            }
            pending.reset();
            if (!is_free)
                pending = action_after_reading(s, i);
            // An insert seen only at its return books its reference there.
            ref = s.refcount;
            prev = i;
            v_.last_step = i;
            v_.last_refcount = s.refcount;
            v_.last_mapcount = s.mapcount;
            if (is_free)
                break;
        }
        // The trace ended after an event whose action comes after its reading:
        // the zap's put (or kex's) happened, unseen.
        if (pending && ref != kNoCount) {
            book(pending->site, pending->delta, pending->step, stack_of(pending->step), true);
            ref = sat32(int64_t(ref) + pending->delta);
        }
        v_.refcount = ref;
        v_.mapcount = map;
        final_map_ = map;
    }

    int32_t map_before_free() const { return map_before_free_; }
    int32_t final_map() const { return final_map_; }
    std::span<const Step> steps() const { return steps_; }

  private:
    uint32_t stack_of(uint32_t step) const { return steps_[step].stack_id; }

    void first_reading(uint32_t i, int32_t count) {
        if (count <= 0)
            return;
        // The allocation's reference, booked at kex_page_alloc (kex's mmap stack).
        uint32_t at = i;
        for (uint32_t k = 0; k < steps_.size(); ++k)
            if (steps_[k].kind == StepKind::kex_alloc) {
                at = k;
                break;
            }
        book(RefSite::alloc, 1, at, stack_of(at), false);
        if (count > 1)
            book(RefSite::unexplained, count - 1, i, stack_of(i), false);
    }

    void interval(uint32_t prev, uint32_t next, int32_t d, const std::optional<Pending>& pending,
                  bool& insert_accounted) {
        const Step& P = steps_[prev];
        const Step& N = steps_[next];
        // A copied PTE (fork): mapcount and refcount rise with no event.
        if (P.mapcount != kNoCount && N.mapcount != kNoCount && N.mapcount > P.mapcount &&
            !insert_path(P.kind, N.kind)) {
            const int32_t pend_drop = pending && pending->delta < 0 ? -pending->delta : 0;
            const int32_t copies = sat32(std::min<int64_t>(
                int64_t(N.mapcount) - P.mapcount, std::max<int64_t>(0, int64_t(d) + pend_drop)));
            if (copies > 0) {
                book(RefSite::pte_copy, copies, next, stack_of(next), false, prev);
                d -= copies;
            }
        }
        // The earlier event's own action.
        if (pending) {
            const bool same_sign = (d > 0 && pending->delta > 0) || (d < 0 && pending->delta < 0);
            if (same_sign) {
                const int32_t take =
                    d > 0 ? std::min(d, pending->delta) : std::max(d, pending->delta);
                // The zap's put is done by the release that frees the page:
                // that free's stack says where.
                uint32_t stack = stack_of(pending->step);
                if (pending->site == RefSite::zap && !stack && N.kind == StepKind::page_free)
                    stack = stack_of(next);
                book(pending->site, take, pending->step, stack, false);
                d -= take;
            } else {
                book(pending->site, 0, pending->step, stack_of(pending->step), true);
            }
        }
        // The later event's completed action: an insert seen only at its return.
        if (d > 0 && !insert_accounted && N.ret() == 0 &&
            (N.kind == StepKind::insert_ret || N.kind == StepKind::kex_insert)) {
            book(RefSite::insert, 1, next, stack_of(next), false);
            insert_accounted = true;
            d -= 1;
        }
        // What no event accounts for happened between the two: the later
        // event's stack says where, else the earlier one's.
        if (d != 0)
            book(RefSite::unexplained, d, next, stack_of(next) ? stack_of(next) : stack_of(prev),
                 false, prev);
    }

    const std::vector<Step> decoded_;
    const std::span<const Step> steps_; // the life's, decoded once
    PageVerdict& v_;
    int32_t map_before_free_ = kNoCount;
    int32_t final_map_ = kNoCount;
};

// Drops cancel takes: kex's put the allocation's reference, a zap the
// mapping's (insert, then a copied PTE), an unexplained drop an unexplained
// take; then the latest open take.
void pair(PageVerdict& v) {
    auto prefer = [](RefSite drop) -> std::vector<RefSite> {
        switch (drop) {
        case RefSite::kex_put:
            return {RefSite::alloc};
        case RefSite::zap:
            return {RefSite::insert, RefSite::pte_copy};
        default:
            return {RefSite::unexplained};
        }
    };
    for (std::size_t i = 0; i < v.changes.size(); ++i) {
        RefChange& d = v.changes[i];
        if (d.delta >= 0)
            continue;
        int64_t left = -int64_t(d.delta);
        auto cancel = [&](RefChange& t) {
            const auto k = static_cast<int32_t>(std::min<int64_t>(left, t.open));
            t.open -= k;
            left -= k;
        };
        for (RefSite site : prefer(d.site))
            for (std::size_t j = 0; j < i && left; ++j)
                if (v.changes[j].site == site && v.changes[j].open > 0)
                    cancel(v.changes[j]);
        for (std::size_t j = i; j-- > 0 && left;)
            if (v.changes[j].open > 0)
                cancel(v.changes[j]);
        if (left)
            v.balanced = false; // a drop of a reference no event took
    }
    for (std::size_t i = 0; i < v.changes.size(); ++i) {
        const RefChange& c = v.changes[i];
        if (c.site == RefSite::unexplained)
            v.balanced = false;
        if (c.open > 0) {
            v.never_dropped.push_back(static_cast<uint32_t>(i));
            if (!v.leak_stack && c.stack_id)
                v.leak_stack = c.stack_id;
        }
        if (c.delta == 0)
            continue;
        auto it = std::find_if(v.ledger.begin(), v.ledger.end(), [&](const LedgerLine& l) {
            return l.site == c.site && l.stack_id == c.stack_id && l.kind == c.kind;
        });
        if (it == v.ledger.end()) {
            v.ledger.push_back({c.site, c.stack_id, c.kind, 0, 0});
            it = v.ledger.end() - 1;
        }
        int32_t& sum = c.delta > 0 ? it->taken : it->dropped;
        sum = sat32(int64_t(sum) + (c.delta > 0 ? int64_t(c.delta) : -int64_t(c.delta)));
    }
}

std::string site_list(const PageLife& p, const PageVerdict& v) {
    std::string s;
    for (uint32_t i : v.never_dropped) {
        const RefChange& c = v.changes[i];
        if (!s.empty())
            s += ", ";
        if (c.open > 1)
            s += std::to_string(c.open) + "x ";
        s += std::string(ref_site_name(c.site)) + " " + change_where(p, c);
    }
    return s;
}

// What the verdict of one life rests on, besides its ledger.
struct LifeFacts {
    bool global_loss = false;     // records lost or undecodable, or a failed map update
    bool lost = false;            // ... or events of this page's missing milestones lost
    std::optional<Step> free;     // its mm_page_free, if seen
    bool mapped = false;          // mapped before its free, by the correlator's account
    bool zap_before_free = false; // an rmap remove before its free
    bool insert_failed = false;
};

LifeFacts life_facts(const Report& report, const PageLife& p) {
    LifeFacts f;
    f.global_loss =
        report.losses.ring || report.losses.decode_errors || report.losses.map_failures();
    f.lost = f.global_loss || p.missing_lost;
    for (const Step& s : p.steps)
        if (s.kind == StepKind::page_free) {
            f.free = s;
            break;
        }
    // Mapped by the correlator's account, for lives with no mapcount readings.
    for (const Step& s : p.steps) {
        if (s.kind == StepKind::page_free)
            break;
        if (s.kind == StepKind::pte_set || (s.kind == StepKind::insert_ret && s.ret() == 0) ||
            (s.kind == StepKind::kex_insert && s.ret() == 0))
            f.mapped = true;
        if (s.kind == StepKind::rmap_remove)
            f.zap_before_free = true;
    }
    f.insert_failed = p.insert_ret != 0;
    return f;
}

// A freed page: freed, or freed while a PTE still pointed to it.
void judge_freed(const PageLife& p, const LifeFacts& f, const LedgerBuilder& lb, PageVerdict& v) {
    const int32_t m = lb.map_before_free();
    const bool while_mapped =
        m != kNoCount ? m > 0 : (f.mapped && !f.zap_before_free && !f.insert_failed);
    if (!while_mapped) {
        v.verdict = Verdict::freed;
        v.reason = "freed +" + fmt_ns(f.free->ts - p.alloc_ts) + " after its allocation";
    } else if ((p.missing_lost & kMsZap) || f.global_loss) {
        v.verdict = Verdict::inconclusive;
        v.reason = "freed with no zap seen before, but zap events were lost";
    } else {
        v.verdict = Verdict::freed_while_mapped;
        v.reason = m != kNoCount ? "mm_page_free while its mapcount was " + std::to_string(m) +
                                       ": a PTE still pointed to it"
                                 : "mm_page_free with no zap before it: a PTE still "
                                   "pointed to it";
    }
}

// A page never freed in the trace: inconclusive, still mapped, held, or leaked.
void judge_unfreed(const Report& report, const PageLife& p, const LifeFacts& f,
                   const LedgerBuilder& lb, const LeakOptions& opts, PageVerdict& v) {
    // (not p.expected: another driver's page held at the end does not
    // expect its free, and is judged below)
    if (!(report.observable & kMsPageFree)) {
        v.verdict = Verdict::inconclusive;
        v.reason = "mm_page_free is not observed here (probe not attached)";
        return;
    }
    if (f.lost) {
        v.verdict = Verdict::inconclusive;
        v.reason = f.global_loss ? "records were lost or undecodable: its free may be among them"
                                 : "events lost: " + milestone_names(p.missing_lost);
        return;
    }
    if (!p.open_at_end) {
        v.verdict = Verdict::inconclusive;
        v.reason = "its pfn began a new life (kex allocated it, or a driver inserted it) "
                   "before a free was seen: the free is missing";
        return;
    }
    // The last event read refcount 1 before a put (kex's, or the zap's): that
    // put dropped the last reference and freed the page; the trace ended (or
    // missed the event) before its mm_page_free. Whoever held it let it go.
    if (v.refcount == 0 && v.last_refcount > 0) {
        v.verdict = Verdict::inconclusive;
        v.reason = "its last reference was dropped at " +
                   std::string(step_kind_name(p.steps[v.last_step].kind)) + " (refcount " +
                   std::to_string(v.last_refcount) +
                   " before the put), but no mm_page_free was seen: the trace ended first";
        return;
    }
    const int32_t m = lb.final_map();
    const bool mapped_now =
        m != kNoCount ? m > 0 : (f.mapped && !(p.seen & kMsZap) && !f.insert_failed);
    if (mapped_now) {
        v.verdict = Verdict::still_mapped;
        v.reason = m != kNoCount ? "mapcount " + std::to_string(m) + ": a live mapping holds it"
                                 : "mapped and never zapped: a live mapping holds it";
        return;
    }
    if (p.mode == MapMode::driver) {
        const auto mi = static_cast<std::size_t>(p.mapping);
        if (p.mapping >= 0 && mi < opts.driver_holders.size() && !opts.driver_holders[mi].empty()) {
            v.verdict = Verdict::held;
            v.holder = opts.driver_holders[mi];
            v.reason = "unmapped and not freed, held by " + v.holder +
                       ": the driver may still free it (at release, at unload)";
            return;
        }
    } else if (const bool owner_alive =
                   std::find(opts.alive.begin(), opts.alive.end(), p.owner) != opts.alive.end();
               !opts.device_closed && owner_alive) {
        v.verdict = Verdict::held;
        v.reason = "unmapped and not freed, but its owner " + std::to_string(p.owner) +
                   " is alive with the device open: kex may still free it";
        return;
    }
    v.verdict = Verdict::leaked;
    v.reason = "never freed, no mapping left";
    if (!v.never_dropped.empty())
        v.reason += "; never dropped: " + site_list(p, v);
}

} // namespace

PageVerdict assess_page(const Report& report, uint32_t life, const LeakOptions& opts) {
    const PageLife& p = report.pages[life];
    PageVerdict v;
    v.life = life;

    LedgerBuilder lb(p, v);
    lb.run();
    pair(v);

    const LifeFacts f = life_facts(report, p);
    if (f.free)
        judge_freed(p, f, lb, v);
    else
        judge_unfreed(report, p, f, lb, opts, v);
    return v;
}

std::vector<CountsAfter> counts_after_steps(const PageLife& p) {
    return counts_after_steps(p.steps.to_vector());
}

std::vector<CountsAfter> counts_after_steps(std::span<const Step> steps) {
    PageVerdict v;
    LedgerBuilder lb(steps, v);
    lb.run();
    const auto n = static_cast<uint32_t>(steps.size());
    uint32_t first = n; // the first reading: the allocation's reference exists from there
    for (uint32_t i = 0; i < n && first == n; ++i)
        if (counted(steps[i]))
            first = i;
    std::vector<int64_t> delta(n, 0);
    for (const RefChange& c : v.changes)
        delta[c.site == RefSite::alloc ? std::min(c.step, first) : c.step] += c.delta;

    std::vector<CountsAfter> out(n);
    int64_t ref = 0;
    int32_t map = kNoCount;
    for (uint32_t i = 0; i < n; ++i) {
        const Step& s = steps[i];
        ref += delta[i];
        if (i >= first)
            out[i].refcount = sat32(ref);
        if (!(s.flags & kStepAfterFree) && s.kind != StepKind::page_free_batched) {
            int32_t step_delta = 0;
            if (s.kind == StepKind::rmap_add)
                step_delta = 1;
            else if (s.kind == StepKind::rmap_remove)
                step_delta = -1;
            if (s.mapcount != kNoCount && s.mapcount >= 0)
                map = std::max(0, sat32(int64_t(s.mapcount) + step_delta));
            else if (map != kNoCount)
                map = std::max(0, map + step_delta);
        }
        out[i].mapcount = map;
    }
    return out;
}

LeakReport assess_leaks(const Report& report, const LeakOptions& opts) {
    LeakReport out;
    out.events_lost = report.losses.total();
    out.orphans = report.orphans;
    out.device_closed = opts.device_closed;
    out.pages.reserve(report.pages.size());
    for (uint32_t i = 0; i < report.pages.size(); ++i) {
        out.pages.push_back(assess_page(report, i, opts));
        ++out.counts[static_cast<std::size_t>(out.pages.back().verdict)];
    }
    return out;
}

} // namespace kextrace
