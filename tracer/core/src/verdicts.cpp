// verdicts.cpp - the end of the trace: every life's milestones, anomalies and verdict, and what is
// still pending (the state and its contract: correlator_state.h).
#include "correlator_state.h"

namespace kextrace {

// --- finish --------------------------------------------------------------------

void Correlator::State::finalize() {
    flush_all();
    // Nothing more will claim a pending allocation.
    while (!pending.empty())
        pending_to_other(pending.begin()->first);
    pending_order.clear();
    set_pending_deadline();
    report_unfinished_calls();

    for (const auto& [pfn, life] : open_by_pfn)
        r.pages[life].open_at_end = true;
    open_by_pfn.clear();

    // Write phases per tgid, for the first-write verdicts.
    std::unordered_map<uint32_t, std::vector<const Phase*>> writes;
    for (const Phase& ph : r.phases)
        if (ph.begin == KEX_PHASE_WRITE_BEGIN)
            writes[ph.tgid].push_back(&ph);

    pending_faults.clear();
    infer_mapping_modes();
    lost_milestones = lost_milestone_mask();
    for (uint32_t i = 0; i < r.pages.size(); ++i)
        finish_life(i, writes);
    // A windowed run grew the lives as a vector grows (up to twice the room):
    // the report keeps what it holds (bench/: bytes a page).
    shrink_huge(r.pages);
    life_track = {}; // no more steps come
    // The lives' room goes with the report (no copy: the chunks never move).
    r.step_arena = std::make_shared<decltype(step_room)>(std::exchange(step_room, {}));

    for (std::size_t i = 0; i < r.mappings.size(); ++i) {
        const Mapping& m = r.mappings[i];
        // mode fault maps nothing at mmap: its pages come with the touches
        if (m.done_ts && m.ret == 0 && m.lives != m.mapped && m.mode != MapMode::fault)
            anomaly(m.done_ts, -1,
                    "mapping " + hex(m.vm_start) + ": kex reported " + std::to_string(m.mapped) +
                        " pages mapped, " + std::to_string(m.lives) + " page lives seen");
    }

    if (!all) {
        r.tgids.assign(traced.begin(), traced.end());
        std::sort(r.tgids.begin(), r.tgids.end());
    }
    r.losses = losses;
    r.observable = opts.expected;
}

// Whatever began and never ended by the end of the trace: rig phases, kex
// mmap windows, unmaps, inserts and PTE installs whose return never came.
void Correlator::State::report_unfinished_calls() {
    for (auto& [tgid, open] : open_phases)
        for (uint32_t i : open) {
            Phase& ph = r.phases[i];
            ph.end = r.last_ts;
            anomaly(r.last_ts, -1,
                    "rig phase " + ph.name + " of " + std::to_string(tgid) +
                        " never ended (end marker lost, or the run stopped)");
        }
    open_phases.clear();
    phase_cache = {};
    for (auto& [tid, m] : mmap_windows)
        anomaly(r.last_ts, -1,
                "kex_mmap at " + hex(r.mappings[m].vm_start) + " (tid " + std::to_string(tid) +
                    ") without kex_mmap_done");
    mmap_windows.clear();
    for (const auto& [tid, w] : sorted(unmap_windows))
        anomaly(r.last_ts, -1,
                std::string(w.kind == ZapContext::exit ? "exit_mmap" : "unmap_region") +
                    " of tid " + std::to_string(tid) + " never returned");
    unmap_windows.clear();
    for (const auto& [tid, pfn] : sorted(insert_calls))
        anomaly(r.last_ts, -1,
                "insert of pfn " + hex(pfn) + " (tid " + std::to_string(tid) + ") never returned");
    insert_calls.clear();
    for (const auto& [tid, pfn] : sorted(set_pte_calls))
        anomaly(r.last_ts, -1,
                "do_set_pte of pfn " + hex(pfn) + " (tid " + std::to_string(tid) +
                    ") never returned");
    set_pte_calls.clear();
}

// A mapping whose mode no kex_mmap_mode said (an older kex, or the event
// was lost): inferred from the calls it saw.
void Correlator::State::infer_mapping_modes() {
    for (Mapping& m : r.mappings)
        if (m.mode == MapMode::unknown) {
            m.mode_inferred = true;
            m.mode = m.batch_calls || m.vm_insert_pages    ? MapMode::batch
                     : m.remap_pfn_calls                   ? MapMode::pfn
                     : m.faults                            ? MapMode::fault
                     : m.done_ts && m.ret == 0 && m.mapped ? MapMode::insert
                                                           : MapMode::unknown;
        }
}

const std::vector<Step>& Correlator::State::decoded_steps(const PageLife& p) {
    if (!life_decoded) {
        life_steps.clear();
        for (const Step& s : p.steps)
            life_steps.push_back(s);
        life_decoded = true;
    }
    return life_steps;
}

// A life's steps in time order, its allocation time, policy and mode, and
// the times its verdict needs: from what push_step kept (k) when its steps
// came in time order, else from its steps decoded (and sorted), which are
// then left in life_steps for check_life.
Correlator::State::LifeTimes Correlator::State::settle_life(PageLife& p, const LifeTrack& k) {
    life_decoded = false;
    const bool decode = k.flags & LifeTrack::kDecode;
    if (decode) {
        decoded_steps(p);
        auto by_ts = [](const Step& a, const Step& b) { return a.ts < b.ts; };
        if (!std::is_sorted(life_steps.begin(), life_steps.end(), by_ts)) {
            std::stable_sort(life_steps.begin(), life_steps.end(), by_ts);
            p.steps.assign(life_steps);
        }
    }
    if (!p.alloc_ts && !p.steps.empty())
        p.alloc_ts = decode ? life_steps.front().ts : k.first_ts;

    // Policy: from the mapping, else from kex's free reason.
    if (p.policy == Policy::unknown) {
        if (p.kex_free_reason == KEX_FREE_AFTER_INSERT)
            p.policy = Policy::drop;
        else if (p.kex_free_reason == KEX_FREE_AT_CLOSE)
            p.policy = Policy::keep;
    }

    // Mode: the mapping's, else what the page's own events say.
    if (p.mapping >= 0)
        p.mode = r.mappings[static_cast<std::size_t>(p.mapping)].mode;
    if (p.mode == MapMode::unknown)
        p.mode = p.kex_faults ? MapMode::fault : p.remap_ts ? MapMode::pfn : MapMode::unknown;

    LifeTimes t;
    t.close_ts = p.mapping >= 0 ? r.mappings[static_cast<std::size_t>(p.mapping)].close_ts : 0;
    t.insert_failed = p.insert_ret != 0;
    t.never_inserted =
        p.kex_free_reason == KEX_FREE_ERROR && !(p.seen & (kMsInsert | kMsKexInsert | kMsPteSet));
    if (!decode) { // LifeTrack::add found them as the loop below does
        t.map_ts = k.map_ts;
        t.kex_free_ts = k.kex_free_ts;
        t.page_free_ts = k.page_free_ts;
        t.zap_before_free = k.flags & LifeTrack::kZapBeforeFree;
        return t;
    }
    // When was it mapped, and by which step.
    for (const Step& s : life_steps) {
        const bool maps = s.kind == StepKind::pte_set ||
                          (s.kind == StepKind::insert_ret && s.ret() == 0) ||
                          (s.kind == StepKind::kex_insert && s.ret() == 0);
        if (maps && !t.map_ts)
            t.map_ts = s.ts;
        if (s.kind == StepKind::kex_free && !t.kex_free_ts)
            t.kex_free_ts = s.ts;
        if (s.kind == StepKind::page_free && !t.page_free_ts)
            t.page_free_ts = s.ts;
        if (s.kind == StepKind::rmap_remove && !t.page_free_ts)
            t.zap_before_free = true;
    }
    return t;
}

// What this page's story should contain, what is missing, and which of
// the missing milestones may be among the lost events.
void Correlator::State::set_expected(PageLife& p, const LifeTimes& t) {
    p.expected = opts.expected & mode_expected(p.mode);
    // A failed insert may not have reached insert_page_into_pte_locked
    // (kex's fail_at, validation): only kex's own view of it is expected.
    if (t.insert_failed || t.never_inserted)
        p.expected &= static_cast<uint16_t>(~(kMsInsert | kMsRmapAdd | kMsPteSet | kMsZap));
    if (t.never_inserted)
        p.expected &= static_cast<uint16_t>(~kMsKexInsert);
    // Another driver's page still held when the trace ended: its free is
    // the driver's business, later (at close, at unload), not a lost event.
    if (p.mode == MapMode::driver && p.open_at_end)
        p.expected &= static_cast<uint16_t>(~kMsPageFree);
    p.missing = p.expected & static_cast<uint16_t>(~p.seen);
    p.missing_lost = p.missing & lost_milestones;
}

uint16_t Correlator::State::lost_milestone_mask() const {
    // a failed map update (traced, pages, pfns...) can hide any event of any page
    if (losses.ring || losses.decode_errors || losses.map_failures())
        return UINT16_MAX;
    uint16_t mask = 0;
    for (std::size_t k = 0; k < kTypeSlots; ++k)
        if (losses.per_type[k])
            mask |= milestones_of(static_cast<uint32_t>(k));
    return mask;
}

// The anomalies of a life: mode pfn's rules, a free while mapped, the
// policy's order of puts, the refcount trail of a complete life.
void Correlator::State::check_life(uint32_t i, const LifeTimes& t, const LifeTrack& k) {
    const PageLife& p = r.pages[i];
    const auto life = static_cast<int32_t>(i);
    auto name = [&] { return page_name(i); }; // only for anomalies: most pages have none

    // Mode pfn: special PTEs, no struct page use by the mapping. Any rmap,
    // insert or zap of the page means it was not mapped the pfn way.
    if (p.mode == MapMode::pfn)
        for (const Step& s : decoded_steps(p))
            if (s.kind == StepKind::rmap_add || s.kind == StepKind::rmap_remove ||
                s.kind == StepKind::insert || s.kind == StepKind::do_set_pte) {
                anomaly(s.ts, life,
                        name() + ": mode pfn, but " + std::string(step_kind_name(s.kind)) +
                            " saw the page (its PTE should be special, without rmap)");
                break;
            }
    // ... and every PTE vm_normal_page was given for it is special.
    if (p.mode == MapMode::pfn)
        for (const Step& s : decoded_steps(p))
            if (s.kind == StepKind::pte_lookup && !decode_pte(s.value).special) {
                anomaly(s.ts, life,
                        name() + ": mode pfn, but its PTE " + hex(s.value) +
                            " is not special (vm_normal_page would take it for a page)");
                break;
            }

    // Freed while still mapped: the classic driver bug (use after free).
    // Mode pfn has no zap to see: mapped until its VMA closed.
    if (p.mode == MapMode::pfn) {
        if (t.page_free_ts && t.map_ts && !t.insert_failed &&
            (!t.close_ts || t.page_free_ts < t.close_ts))
            anomaly(t.page_free_ts, life,
                    name() + ": mode pfn, freed before its mapping closed (still mapped)");
    } else if (t.page_free_ts && t.map_ts && t.map_ts < t.page_free_ts && !t.zap_before_free &&
               !t.insert_failed)
        anomaly(t.page_free_ts, life,
                name() + ": freed while still mapped (no rmap remove before mm_page_free)" +
                    (p.missing_lost & kMsZap ? " - or its zap events were lost" : ""));

    // Policy: who drops which reference when.
    if (t.kex_free_ts && p.zap_ts && !t.insert_failed) {
        if (p.policy == Policy::drop && t.kex_free_ts > p.zap_ts)
            anomaly(t.kex_free_ts, life,
                    name() + ": policy drop, but kex freed its reference after the zap");
        if (p.policy == Policy::keep && t.kex_free_ts < p.zap_ts)
            anomaly(t.kex_free_ts, life,
                    name() + ": policy keep, but kex freed its reference while still mapped");
    }
    if (p.kex_free_reason != UINT32_MAX && !t.insert_failed) {
        const bool mismatch =
            (p.policy == Policy::drop && p.kex_free_reason == KEX_FREE_AT_CLOSE) ||
            (p.policy == Policy::keep && p.kex_free_reason == KEX_FREE_AFTER_INSERT);
        if (mismatch)
            anomaly(t.kex_free_ts, life,
                    name() + ": kex free reason " + std::to_string(p.kex_free_reason) +
                        " does not match policy " + std::string(policy_name(p.policy)));
    }

    // Refcounts of a complete, successful life.
    if (p.missing == 0 && !t.insert_failed && !t.never_inserted && (p.seen & kMsPageFree)) {
        if (k.flags & (LifeTrack::kDecode | LifeTrack::kLongTrail))
            refcount_trail(decoded_steps(p), trail_scratch);
        else
            trail_scratch.assign(k.trail, k.trail + k.trail_n);
        const std::vector<int32_t>& got = trail_scratch;
        const std::vector<int32_t>& want = expected_trail(p.policy, p.mode);
        // a fault page handed out again (refault) goes 1->2->1 once more
        const bool refaulted = p.mode == MapMode::fault && p.kex_faults > 1;
        // (another driver: its own references, no trail to expect)
        if (!got.empty() && !want.empty() && got != want && !refaulted) {
            auto fmt = [](const std::vector<int32_t>& v) {
                std::string s;
                for (std::size_t k = 0; k < v.size(); ++k)
                    s += (k ? "->" : "") + std::to_string(v[k]);
                return s;
            };
            anomaly(p.free_ts, life,
                    name() + ": refcount " + fmt(got) + ", expected " + fmt(want) + " (" +
                        std::string(policy_name(p.policy)) + ")");
        }
    }
}

const std::vector<int32_t>& Correlator::State::expected_trail(Policy policy, MapMode mode) {
    const uint32_t key = static_cast<uint32_t>(policy) << 8 | static_cast<uint32_t>(mode);
    auto [it, inserted] = expected_trails.try_emplace(key);
    if (inserted)
        it->second = expected_refcount_trail(policy, mode);
    return it->second;
}

void Correlator::State::finish_life(
    uint32_t i, const std::unordered_map<uint32_t, std::vector<const Phase*>>& writes) {
    PageLife& p = r.pages[i];
    const LifeTrack& k = life_track[i];
    const LifeTimes t = settle_life(p, k);
    set_expected(p, t);
    check_life(i, t, k);

    // First write: a fault in the write phase was recorded when it came;
    // else, if a write phase ran while the page was mapped, the MMU wrote
    // without a fault (it sets the PTE's D bit itself).
    if (p.first_write == FirstWrite::unknown && t.map_ts) {
        auto w = writes.find(p.owner);
        if (w != writes.end())
            for (const Phase* ph : w->second)
                if (ph->start >= t.map_ts && (!p.zap_ts || ph->start < p.zap_ts)) {
                    p.first_write = FirstWrite::no_fault;
                    break;
                }
    }
}

PendingState Correlator::State::pending_state() const {
    PendingState ps;
    ps.buffered = buffer.size();
    ps.kmem_allocs = pending.size();
    ps.open_lives = open_by_pfn.size();
    ps.windows = mmap_windows.size() + unmap_windows.size() + insert_calls.size() +
                 set_pte_calls.size() + open_phases.size();
    return ps;
}

} // namespace kextrace
