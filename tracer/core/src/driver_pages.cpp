// driver_pages.cpp - another driver's pages: its VMAs, the pages BPF adopted at their insert,
// their allocations and its remap_pfn_range calls (the state and its contract:
// correlator_state.h).
#include "correlator_state.h"

namespace kextrace {

// --- another driver's pages ----------------------------------------------------

bool Correlator::State::on_driver_vma(const Rec& ev) {
    const std::shared_ptr<const VmaInfo> vma =
        ev.ret > 0 && static_cast<std::size_t>(ev.ret) <= vma_infos.size()
            ? vma_infos[static_cast<std::size_t>(ev.ret) - 1]
            : nullptr;
    if (opts.follow_driver_vma && !(vma && opts.follow_driver_vma(*vma))) {
        unfollowed_vmas.insert({ev.pid, ev.addr});
        return false;
    }
    unfollowed_vmas.erase({ev.pid, ev.addr}); // the range mapped again, by a followed driver
    for (Mapping& old : r.mappings)
        if (old.driver && old.tgid == ev.pid && !old.close_ts && old.vm_start < ev.arg0 &&
            ev.addr < old.vm_end)
            old.close_ts = ev.ts;
    Mapping& m = r.mappings.emplace_back();
    m.driver = true;
    m.tgid = ev.pid;
    m.tid = ev.tid;
    m.vm_start = ev.addr;
    m.vm_end = ev.arg0;
    m.vm_flags = ev.arg1;
    m.pages = static_cast<uint32_t>((ev.arg0 - ev.addr) / kPageSize);
    m.mode = MapMode::driver;
    m.mode_inferred = false;
    m.ts = ev.ts;
    m.stack_id = ev.stack_id;
    m.vma = vma;
    m.by_fault = vma && (vma->flags & KEX_VMA_BY_FAULT);
    return true;
}

bool Correlator::State::on_driver_page(Rec& ev) {
    if (unfollowed_vmas.contains({ev.pid, ev.arg0})) {
        unfollowed_pfns.insert(ev.pfn);
        ++r.unfollowed_driver_pages;
        return false;
    }
    if (auto old = open_by_pfn.find(ev.pfn); old != open_by_pfn.end()) {
        const uint32_t prev = old->second;
        anomaly(ev.ts, static_cast<int32_t>(prev),
                page_name(prev) + ": inserted by a driver again before its free was seen");
        close_life(prev);
    }
    pending_to_other(ev.pfn);
    const uint32_t life = open_life(ev.pfn, ev.pid, ev.tid);
    for (std::size_t i = r.mappings.size(); i-- > 0;) {
        Mapping& m = r.mappings[i];
        if (m.driver && m.tgid == ev.pid && m.vm_start == ev.arg0 && !m.close_ts) {
            PageLife& p = r.pages[life];
            if (p.mapping >= 0)
                --r.mappings[static_cast<std::size_t>(p.mapping)].lives;
            p.mapping = static_cast<int32_t>(i);
            ++m.lives;
            break;
        }
    }
    PageLife& p = r.pages[life];
    p.mode = MapMode::driver;
    p.policy = Policy::unknown;
    p.alloc_before_trace = true;
    p.by_fault = ev.ret == 1;
    p.alloc_ts = ev.ts;
    if (ev.addr >= ev.arg0 && ev.addr)
        p.index = static_cast<uint32_t>((ev.addr - ev.arg0) / kPageSize);
    set_uaddr(life, ev.addr);
    return true;
}

// The allocation of the driver page just adopted (KEX_EV_DRIVER_PAGE comes
// first): its mm_page_alloc becomes the life's first step, with the
// allocating call chain; the life then starts there.
bool Correlator::State::on_driver_alloc(const Rec& ev) {
    auto it = open_by_pfn.find(ev.pfn);
    if (it == open_by_pfn.end())
        return false; // left out by --driver/--file, or its page record was lost (counted)
    PageLife& p = r.pages[it->second];
    if (p.mode != MapMode::driver || !p.alloc_before_trace) {
        anomaly(ev.ts, static_cast<int32_t>(it->second),
                page_name(it->second) + ": an allocation link for a page not just adopted");
        return false;
    }
    Step s;
    s.ts = ev.arg0;
    s.value = static_cast<uint64_t>(ev.ret); // the block's order
    s.stack_id = ev.stack_id;
    s.kind = StepKind::kmem_alloc;
    p.steps.insert(p.steps.begin(), s);
    LifeTrack& k = life_track[it->second];
    k.first_ts = s.ts;
    k.flags |= LifeTrack::kDecode; // not pushed after the others: finalize decodes
    p.seen |= kMsKmemAlloc;
    p.alloc_ts = ev.arg0;
    p.alloc_before_trace = false;
    r.first_ts = std::min(r.first_ts, ev.arg0);
    if (p.mapping >= 0) {
        Mapping& m = r.mappings[static_cast<std::size_t>(p.mapping)];
        if (!m.allocs_seen++)
            m.alloc_stack_id = ev.stack_id;
    }
    return true;
}

bool Correlator::State::on_driver_pfnmap(const Rec& ev) {
    if (ev.type == KEX_EV_DRIVER_PFNMAP_RET) {
        auto it = pfnmap_calls.find(ev.tid);
        if (it == pfnmap_calls.end())
            return false;
        Mapping& m = r.mappings[it->second];
        pfnmap_calls.erase(it);
        if (!m.pfnmaps.empty())
            m.pfnmaps.back().ret = ev.ret;
        return true;
    }
    if (unfollowed_vmas.contains({ev.pid, ev.arg1}))
        return false;
    for (std::size_t i = r.mappings.size(); i-- > 0;) {
        Mapping& m = r.mappings[i];
        if (m.driver && m.tgid == ev.pid && m.vm_start == ev.arg1 && !m.close_ts) {
            m.pfnmaps.push_back({ev.pfn, ev.addr, ev.arg0, ev.ts, std::nullopt, ev.ret == 1});
            pfnmap_calls[ev.tid] = i;
            return true;
        }
    }
    return false; // its VMA record was lost (counted): nothing to attach the range to
}

} // namespace kextrace
