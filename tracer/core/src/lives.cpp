// lives.cpp - page identity: lives, steps and stacks; allocations; the page events applied to a
// life (the state and its contract: correlator_state.h).
#include "correlator_state.h"

namespace kextrace {

// --- helpers -------------------------------------------------------------------

void Correlator::State::anomaly(uint64_t ts, int32_t life, std::string msg) {
    if (life >= 0)
        ++r.pages[static_cast<std::size_t>(life)].anomalies;
    if (r.anomalies.size() >= opts.max_anomalies) {
        ++r.anomalies_dropped;
        return;
    }
    r.anomalies.push_back({ts, life, std::move(msg)});
}

std::string Correlator::State::page_name(uint32_t life) const {
    const PageLife& p = r.pages[life];
    std::string s = "page";
    if (p.index != kNoIndex)
        s += " " + std::to_string(p.index);
    s += " (pfn " + hex(p.pfn) + ")";
    return s;
}

uint32_t Correlator::State::intern_stack(std::vector<uint64_t>& st) {
    if (st.empty())
        return 0;
    uint64_t h = 1469598103934665603ULL;
    for (uint64_t a : st)
        h = (h ^ a) * 1099511628211ULL;
    auto [it, inserted] = stack_ids.try_emplace(h, static_cast<uint32_t>(r.stacks.size()));
    if (!inserted) {
        if (r.stacks[it->second] == st)
            return it->second;
        // Hash collision: keep both, the second one undeduplicated.
        r.stacks.push_back(std::move(st));
        return static_cast<uint32_t>(r.stacks.size() - 1);
    }
    r.stacks.push_back(std::move(st));
    return it->second;
}

void Correlator::State::add_step(uint32_t life, StepKind kind, Rec& ev, uint64_t value,
                                 uint8_t flags) {
    Step s;
    s.ts = ev.ts;
    s.value = value;
    s.refcount = ev.refcount;
    s.mapcount = ev.mapcount;
    s.stack_id = ev.stack_id;
    s.kind = kind;
    s.flags = static_cast<uint8_t>(flags | (late ? kStepLate : 0));
    push_step(life, s);
}

void Correlator::State::push_step(uint32_t life, const Step& s) {
    StepList& steps = r.pages[life].steps;
    LifeTrack& k = life_track[life];
    k.add(s, steps.empty());
    steps.push_back(s, k.first_ts);
}

uint32_t Correlator::State::open_life(uint64_t pfn, uint32_t owner, uint32_t tid) {
    const auto idx = static_cast<uint32_t>(r.pages.size());
    grow_huge(r.pages);
    grow_huge(life_track);
    PageLife& p = r.pages.emplace_back();
    life_track.emplace_back();
    p.pfn = pfn;
    p.owner = owner;
    p.steps.borrow(step_room.take(kLifeRoom), kLifeRoom);
    if (auto w = mmap_windows.find(tid); w != mmap_windows.end()) {
        p.mapping = static_cast<int32_t>(w->second);
        Mapping& m = r.mappings[w->second];
        p.policy = m.policy;
        ++m.lives;
    }
    open_by_pfn[pfn] = idx;
    // closed_by_pfn keeps the pfn's last closed life: every reader looks in
    // open_by_pfn first, so it is not erased here (a probe a page in a table
    // of every pfn seen, most of a large run's cache misses)
    other_pages.erase(pfn);
    return idx;
}

void Correlator::State::set_uaddr(uint32_t life, uint64_t addr) {
    PageLife& p = r.pages[life];
    if (!addr || p.uaddr == addr)
        return;
    if (p.uaddr)
        by_addr.erase({p.owner, p.uaddr & kPageMask});
    p.uaddr = addr;
    by_addr[{p.owner, addr & kPageMask}] = life;
    if (p.mapping < 0) {
        // No kex_mmap window seen for the alloc: find the mapping by address.
        for (std::size_t i = r.mappings.size(); i-- > 0;) {
            Mapping& m = r.mappings[i];
            if (m.tgid == p.owner && addr >= m.vm_start && addr < m.vm_end) {
                p.mapping = static_cast<int32_t>(i);
                if (p.policy == Policy::unknown)
                    p.policy = m.policy;
                ++m.lives;
                break;
            }
        }
    }
    // The user fault that brought this page in (mode fault) came first.
    if (auto f = pending_faults.find({p.owner, addr & kPageMask}); f != pending_faults.end()) {
        PendingFault pf = std::move(f->second);
        pending_faults.erase(f);
        add_step(life, StepKind::user_fault, pf.ev, pf.ev.arg0,
                 pf.in_write ? kStepInWritePhase : 0);
        PageLife& q = r.pages[life];
        if (pf.in_write && q.first_write != FirstWrite::fault) {
            q.first_write = FirstWrite::fault;
            q.first_write_ts = pf.ev.ts;
            q.fault_error_code = pf.ev.arg0;
        }
    }
}

void Correlator::State::close_life(uint32_t life) {
    PageLife& p = r.pages[life];
    open_by_pfn.erase(p.pfn);
    closed_by_pfn[p.pfn] = life;
    if (p.uaddr) {
        auto it = by_addr.find({p.owner, p.uaddr & kPageMask});
        if (it != by_addr.end() && it->second == life)
            by_addr.erase(it);
    }
}

void Correlator::State::pending_to_other(uint64_t pfn) {
    auto it = pending.find(pfn);
    if (it == pending.end())
        return;
    ++r.other_allocations;
    if (it->second.mapping >= 0)
        ++r.mappings[static_cast<std::size_t>(it->second.mapping)].other_allocations;
    other_pages[pfn] = false;
    pending.erase(it);
}

void Correlator::State::expire_pending_due(uint64_t now) {
    while (!pending_order.empty() && pending_order.front().first + opts.alloc_attach_ns < now) {
        auto [ts, pfn] = pending_order.front();
        pending_order.pop_front();
        auto it = pending.find(pfn);
        if (it != pending.end() && it->second.ts == ts)
            pending_to_other(pfn);
    }
    set_pending_deadline();
}

void Correlator::State::set_pending_deadline() {
    pending_deadline =
        pending_order.empty() ? UINT64_MAX : pending_order.front().first + opts.alloc_attach_ns;
}

// --- allocation ----------------------------------------------------------------

void Correlator::State::on_kmem_alloc(const Rec& ev) {
    if (ev.pfn == kNoPfn)
        return; // failed allocation
    if (pending.contains(ev.pfn))
        pending_to_other(ev.pfn);
    PendingAlloc pa;
    pa.ts = ev.ts;
    pa.order = ev.arg0;
    pa.tid = ev.tid;
    auto w = mmap_windows.find(ev.tid);
    pa.mapping = w == mmap_windows.end() ? -1 : static_cast<int32_t>(w->second);
    pa.refcount = ev.refcount;
    pa.mapcount = ev.mapcount;
    pending[ev.pfn] = pa;
    pending_order.emplace_back(ev.ts, ev.pfn);
    if (pending_order.size() == 1)
        set_pending_deadline();
}

void Correlator::State::on_kex_alloc(Rec& ev) {
    if (auto old = open_by_pfn.find(ev.pfn); old != open_by_pfn.end()) {
        const uint32_t prev = old->second;
        anomaly(ev.ts, static_cast<int32_t>(prev),
                page_name(prev) + ": allocated again by kex before its free was seen");
        close_life(prev);
    }
    const uint32_t life = open_life(ev.pfn, ev.pid, ev.tid);
    r.pages[life].index = static_cast<uint32_t>(ev.arg0);
    if (auto pa = pending.find(ev.pfn); pa != pending.end()) {
        if (pa->second.tid == ev.tid && ev.ts - pa->second.ts <= opts.alloc_attach_ns) {
            Step s;
            s.ts = pa->second.ts;
            s.value = pa->second.order;
            s.refcount = pa->second.refcount;
            s.mapcount = pa->second.mapcount;
            s.kind = StepKind::kmem_alloc;
            push_step(life, s);
            r.pages[life].seen |= kMsKmemAlloc;
            r.pages[life].alloc_ts = s.ts;
            pending.erase(pa);
        } else {
            pending_to_other(ev.pfn);
        }
    }
    add_step(life, StepKind::kex_alloc, ev, ev.arg0);
    PageLife& p = r.pages[life];
    p.seen |= kMsKexAlloc;
    if (!p.alloc_ts)
        p.alloc_ts = ev.ts;
}

// --- page events ---------------------------------------------------------------

bool Correlator::State::can_open_life(uint32_t type) {
    return type == KEX_EV_INSERT || type == KEX_EV_INSERT_RET || type == KEX_EV_RMAP_ADD ||
           type == KEX_EV_DO_SET_PTE || type == KEX_EV_KEX_PAGE_INSERT;
}

// The pfn of a page event; for a return, its entry's when the return could
// not tell, and the entry's call is over either way.
uint64_t Correlator::State::page_event_pfn(const Rec& ev) {
    uint64_t pfn = ev.pfn;
    if (ev.type == KEX_EV_INSERT_RET || ev.type == KEX_EV_DO_SET_PTE_RET) {
        auto& calls = ev.type == KEX_EV_INSERT_RET ? insert_calls : set_pte_calls;
        if (auto it = calls.find(ev.tid); it != calls.end()) {
            if (pfn == kNoPfn)
                pfn = it->second;
            calls.erase(it);
        }
    }
    return pfn;
}

// kex_page_alloc lost: the allocator's event (pending in a kex window)
// opens the life, and the anomaly says so.
uint32_t Correlator::State::open_life_from_pending(uint64_t pfn, const Rec& ev) {
    const PendingAlloc pa = pending[pfn];
    pending.erase(pfn);
    const auto l = open_life(pfn, ev.pid, pa.tid);
    Step s;
    s.ts = pa.ts;
    s.value = pa.order;
    s.refcount = pa.refcount;
    s.mapcount = pa.mapcount;
    s.kind = StepKind::kmem_alloc;
    push_step(l, s);
    r.pages[l].seen |= kMsKmemAlloc;
    r.pages[l].alloc_ts = pa.ts;
    anomaly(ev.ts, static_cast<int32_t>(l),
            page_name(l) + ": " + std::string(event_type_name(ev.type)) +
                " without kex_page_alloc (life opened from mm_page_alloc)");
    return l;
}

bool Correlator::State::on_page_event(Rec& ev, bool traced_pid) {
    const uint64_t pfn = page_event_pfn(ev);
    uint8_t flags = 0;
    int64_t life = -1;
    if (auto it = open_by_pfn.find(pfn); it != open_by_pfn.end())
        life = it->second;
    if (life < 0) {
        auto closed = closed_by_pfn.find(pfn);
        auto other = other_pages.find(pfn);
        if (closed != closed_by_pfn.end() &&
            (ev.type == KEX_EV_PAGE_FREE_BATCHED || ev.type == KEX_EV_KEX_PAGE_FREE)) {
            // mm_page_free_batched follows mm_page_free; a kex tracepoint
            // placed after __free_page would too.
            life = closed->second;
            if (ev.type == KEX_EV_KEX_PAGE_FREE) // batched always comes after
                flags |= kStepAfterFree;
        } else if (closed != closed_by_pfn.end() && late &&
                   ev.ts >= r.pages[closed->second].alloc_ts &&
                   ev.ts <= r.pages[closed->second].free_ts) {
            life = closed->second; // a late event from inside the closed life
        } else if (pending.contains(pfn) && ev.type == KEX_EV_PAGE_FREE) {
            // Allocated in a kex window, never claimed, freed: not kex's.
            pending_to_other(pfn);
            ++r.other_frees;
            other_pages[pfn] = true;
            return true;
        } else if (pending.contains(pfn) && can_open_life(ev.type)) {
            life = open_life_from_pending(pfn, ev);
        } else if (other != other_pages.end()) {
            if (ev.type == KEX_EV_PAGE_FREE && !other->second) {
                ++r.other_frees;
                other.value() = true;
                return true;
            }
            if (ev.type == KEX_EV_PAGE_FREE_BATCHED && other->second) {
                other_pages.erase(other);
                return true;
            }
        }
    }
    if (life < 0 && unfollowed_pfns.contains(pfn)) {
        if (ev.type == KEX_EV_PAGE_FREE) { // its last event: the pfn may come back
            unfollowed_pfns.erase(pfn);
            other_pages[pfn] = true; // the batched free that may follow
        }
        return false;
    }
    if (life < 0) {
        if (!traced_pid)
            return false;
        if (r.orphans++ < kMaxOrphanNotes)
            anomaly(ev.ts, -1,
                    std::string(event_type_name(ev.type)) + " for pfn " + hex(pfn) +
                        ", which has no page life (orphan)");
        return true;
    }
    apply(static_cast<uint32_t>(life), ev, flags);
    return true;
}

void Correlator::State::check_pte(uint32_t life, uint64_t ts, uint64_t pte) {
    const PageLife& p = r.pages[life];
    const PteBits b = decode_pte(pte);
    if (b.pfn != p.pfn)
        anomaly(ts, static_cast<int32_t>(life),
                page_name(life) + ": PTE " + hex(pte) + " maps pfn " + hex(b.pfn) +
                    ", not the page's");
    if (!b.present)
        anomaly(ts, static_cast<int32_t>(life),
                page_name(life) + ": PTE " + hex(pte) + " read back not present");
}

void Correlator::State::set_pte(uint32_t life, Rec& ev, uint8_t flags) {
    add_step(life, StepKind::pte_set, ev, ev.arg0, flags);
    PageLife& p = r.pages[life];
    const bool first = !(p.seen & kMsPteSet);
    p.seen |= kMsPteSet;
    if (first) {
        p.pte = ev.arg0;
        p.pte_addr = ev.arg1;
        p.pte_source =
            flags & kStepViaInsertRet ? PteSource::insert_ret : PteSource::do_set_pte_ret;
    }
    check_pte(life, ev.ts, ev.arg0);
}

// The steps that put the page into a page table.
bool Correlator::State::apply_map_step(uint32_t life, Rec& ev, uint8_t flags) {
    switch (ev.type) {
    case KEX_EV_INSERT:
        add_step(life, StepKind::insert, ev, ev.addr, flags);
        r.pages[life].seen |= kMsInsert;
        insert_calls[ev.tid] = r.pages[life].pfn;
        set_uaddr(life, ev.addr);
        return true;
    case KEX_EV_INSERT_RET:
        add_step(life, StepKind::insert_ret, ev, static_cast<uint64_t>(ev.ret), flags);
        r.pages[life].seen |= kMsInsert;
        r.pages[life].insert_ret = ev.ret;
        if (ev.ret == 0 && ev.arg0)
            set_pte(life, ev, static_cast<uint8_t>(flags | kStepViaInsertRet));
        return true;
    case KEX_EV_DO_SET_PTE:
        add_step(life, StepKind::do_set_pte, ev, ev.addr, flags);
        r.pages[life].seen |= kMsInsert;
        set_pte_calls[ev.tid] = r.pages[life].pfn;
        set_uaddr(life, ev.addr);
        return true;
    case KEX_EV_DO_SET_PTE_RET:
        if (ev.arg0)
            set_pte(life, ev, static_cast<uint8_t>(flags | kStepViaDoSetPteRet));
        return true;
    case KEX_EV_RMAP_ADD:
        add_step(life, StepKind::rmap_add, ev, 0, flags);
        r.pages[life].seen |= kMsRmapAdd;
        return true;
    case KEX_EV_KEX_PAGE_INSERT: {
        add_step(life, StepKind::kex_insert, ev, static_cast<uint64_t>(ev.ret), flags);
        PageLife& p = r.pages[life];
        p.seen |= kMsKexInsert;
        if (p.index == kNoIndex)
            p.index = static_cast<uint32_t>(ev.arg0);
        if (ev.ret != 0 && p.insert_ret == 0)
            p.insert_ret = ev.ret;
        if (ev.ret == 0)
            set_uaddr(life, ev.addr);
        return true;
    }
    default:
        return false;
    }
}

// The steps that take it out, and its frees.
bool Correlator::State::apply_unmap_step(uint32_t life, Rec& ev, uint8_t flags) {
    switch (ev.type) {
    case KEX_EV_SET_DIRTY: {
        add_step(life, StepKind::set_dirty, ev, 0, flags);
        PageLife& p = r.pages[life];
        if (p.seen & (kMsInsert | kMsPteSet | kMsKexInsert))
            p.zap_dirty = true;
        return true;
    }
    case KEX_EV_RMAP_REMOVE: {
        add_step(life, StepKind::rmap_remove, ev, 0, flags);
        PageLife& p = r.pages[life];
        if (!(p.seen & kMsZap)) {
            p.seen |= kMsZap;
            p.zap_ts = ev.ts;
            auto w = unmap_windows.find(ev.tid);
            p.zap_context = w == unmap_windows.end() ? ZapContext::other : w->second.kind;
        }
        return true;
    }
    case KEX_EV_KEX_PAGE_FREE: {
        add_step(life, StepKind::kex_free, ev, ev.arg1, flags);
        PageLife& p = r.pages[life];
        if (p.seen & kMsKexFree)
            anomaly(ev.ts, static_cast<int32_t>(life),
                    page_name(life) + ": kex freed its reference twice");
        p.seen |= kMsKexFree;
        p.kex_free_reason = static_cast<uint32_t>(ev.arg1);
        return true;
    }
    case KEX_EV_PAGE_FREE: {
        add_step(life, StepKind::page_free, ev, ev.arg0, flags);
        PageLife& p = r.pages[life];
        p.seen |= kMsPageFree;
        p.free_ts = ev.ts;
        close_life(life);
        return true;
    }
    case KEX_EV_PAGE_FREE_BATCHED:
        add_step(life, StepKind::page_free_batched, ev, 0, flags);
        r.pages[life].free_batched = true;
        return true;
    case KEX_EV_PTE_LOOKUP: {
        // a pfn map's PTE, never read back after remap_pfn_range wrote it:
        // the first one vm_normal_page was given is the page's
        add_step(life, StepKind::pte_lookup, ev, ev.arg0, flags);
        PageLife& p = r.pages[life];
        if (p.pte_source == PteSource::none) {
            p.pte = ev.arg0;
            p.pte_addr = 0;
            p.pte_source = PteSource::pte_lookup;
        }
        check_pte(life, ev.ts, ev.arg0);
        return true;
    }
    default:
        return false;
    }
}

// kex's own view of its mapping: fault and remap_pfn_range.
bool Correlator::State::apply_kex_step(uint32_t life, const Rec& ev) {
    switch (ev.type) {
    case KEX_EV_KEX_FAULT: {
        PageLife& p = r.pages[life];
        if (!p.kex_faults++)
            p.kex_fault_flags = static_cast<uint32_t>(ev.arg1);
        if (p.index == kNoIndex)
            p.index = static_cast<uint32_t>(ev.arg0);
        set_uaddr(life, ev.addr);
        if (r.pages[life].mapping >= 0)
            ++r.mappings[static_cast<std::size_t>(r.pages[life].mapping)].faults;
        return true;
    }
    case KEX_EV_REMAP_PFN: {
        set_uaddr(life, ev.addr);
        PageLife& p = r.pages[life];
        if (!p.remap_ts)
            p.remap_ts = ev.ts;
        if (p.mapping >= 0)
            ++r.mappings[static_cast<std::size_t>(p.mapping)].remap_pfn_calls;
        return true;
    }
    case KEX_EV_REMAP_PFN_RET:
        r.pages[life].remap_ret = ev.ret;
        return true;
    default:
        return false;
    }
}

void Correlator::State::apply(uint32_t life, Rec& ev, uint8_t flags) {
    if (!apply_map_step(life, ev, flags) && !apply_unmap_step(life, ev, flags))
        apply_kex_step(life, ev);
}

} // namespace kextrace
