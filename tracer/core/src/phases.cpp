// phases.cpp - rig phases (USDT), kex mappings, user faults
// (the state and its contract: correlator_state.h).
#include "correlator_state.h"

namespace kextrace {

// --- phases, mappings, faults --------------------------------------------------

void Correlator::State::on_phase(const Rec& ev) {
    const auto phase = static_cast<uint32_t>(ev.arg0);
    const std::string_view name = phase_name(phase);
    if (name.empty()) {
        anomaly(ev.ts, -1, "rig phase marker with unknown phase " + std::to_string(phase));
        return;
    }
    phase_cache = {}; // open_phases changes
    auto& open = open_phases[ev.pid];
    const uint32_t begin = phase % 2 ? phase : phase - 1;
    auto it = std::find_if(open.begin(), open.end(),
                           [&](uint32_t i) { return r.phases[i].begin == begin; });
    if (phase % 2) { // begin
        if (it != open.end()) {
            anomaly(ev.ts, -1,
                    "rig phase " + std::string(name) + " of " + std::to_string(ev.pid) +
                        " began again before it ended");
            r.phases[*it].end = ev.ts;
            open.erase(it);
        }
        Phase& ph = r.phases.emplace_back();
        ph.name = name;
        ph.begin = begin;
        ph.tgid = ev.pid;
        ph.start = ev.ts;
        ph.addr = ev.addr;
        ph.arg1 = ev.arg1;
        open.push_back(static_cast<uint32_t>(r.phases.size() - 1));
    } else { // end
        if (it == open.end()) {
            anomaly(ev.ts, -1,
                    "rig phase " + std::string(name) + " of " + std::to_string(ev.pid) +
                        " ended without a begin");
            if (open.empty())
                open_phases.erase(ev.pid);
            return;
        }
        Phase& ph = r.phases[*it];
        ph.end = ev.ts;
        ph.closed = true;
        if (!ph.addr)
            ph.addr = ev.addr;
        open.erase(it);
    }
    if (open.empty())
        open_phases.erase(ev.pid);
}

bool Correlator::State::in_write_phase(uint32_t tgid) const {
    auto it = open_phases.find(tgid);
    if (it == open_phases.end())
        return false;
    return std::any_of(it->second.begin(), it->second.end(),
                       [&](uint32_t i) { return r.phases[i].begin == KEX_PHASE_WRITE_BEGIN; });
}

int64_t Correlator::State::mapping_at(uint32_t tgid, uint64_t addr) const {
    for (std::size_t i = r.mappings.size(); i-- > 0;) {
        const Mapping& m = r.mappings[i];
        if (m.tgid == tgid && addr >= m.vm_start && addr < m.vm_end && !m.close_ts)
            return static_cast<int64_t>(i);
    }
    return -1;
}

void Correlator::State::on_user_fault(Rec& ev) {
    auto it = by_addr.find({ev.pid, ev.addr & kPageMask});
    if (it == by_addr.end()) {
        // A kex page not there yet (mode fault): the page comes in the
        // fault's handling; attach the fault once the page has its address.
        if (mapping_at(ev.pid, ev.addr) >= 0)
            pending_faults[{ev.pid, ev.addr & kPageMask}] = {ev, in_write_phase(ev.pid)};
        return;
    }
    const uint32_t life = it->second;
    const bool in_write = in_write_phase(ev.pid);
    add_step(life, StepKind::user_fault, ev, ev.arg0, in_write ? kStepInWritePhase : 0);
    PageLife& p = r.pages[life];
    if (in_write && p.first_write != FirstWrite::fault) {
        p.first_write = FirstWrite::fault;
        p.first_write_ts = ev.ts;
        p.fault_error_code = ev.arg0;
    }
}

void Correlator::State::on_kex_mmap(const Rec& ev) {
    Mapping& m = r.mappings.emplace_back();
    m.tgid = ev.pid;
    m.tid = ev.tid;
    m.vm_start = ev.addr;
    m.vm_end = ev.arg0;
    m.pages = static_cast<uint32_t>(ev.arg1);
    const uint64_t policy = ev.arg1 >> 32;
    m.policy = policy == 0 ? Policy::drop : policy == 1 ? Policy::keep : Policy::unknown;
    m.ts = ev.ts;
    const auto idx = static_cast<uint32_t>(r.mappings.size() - 1);
    if (auto [it, inserted] = mmap_windows.try_emplace(ev.tid, idx); !inserted) {
        anomaly(ev.ts, -1,
                "kex_mmap at " + hex(ev.addr) + " while the mmap at " +
                    hex(r.mappings[it->second].vm_start) + " (tid " + std::to_string(ev.tid) +
                    ") never reported kex_mmap_done");
        it->second = idx;
    }
}

void Correlator::State::on_kex_mmap_done(const Rec& ev) {
    int64_t idx = -1;
    if (auto it = mmap_windows.find(ev.tid); it != mmap_windows.end()) {
        idx = it->second;
        mmap_windows.erase(it);
    } else {
        for (std::size_t i = r.mappings.size(); i-- > 0;)
            if (r.mappings[i].tgid == ev.pid && r.mappings[i].vm_start == ev.addr &&
                !r.mappings[i].done_ts) {
                idx = static_cast<int64_t>(i);
                break;
            }
    }
    if (idx < 0) {
        anomaly(ev.ts, -1, "kex_mmap_done at " + hex(ev.addr) + " without its kex_mmap");
        return;
    }
    // kex allocates nothing more for this mmap: what the tid allocated
    // and kex did not claim is someone else's (page tables).
    std::vector<uint64_t> mine;
    for (const auto& [pfn, pa] : pending)
        if (pa.tid == ev.tid)
            mine.push_back(pfn);
    for (uint64_t pfn : mine) // erasing moves entries of a flat map: not while iterating
        pending_to_other(pfn);
    Mapping& m = r.mappings[static_cast<std::size_t>(idx)];
    m.done_ts = ev.ts;
    m.ret = ev.ret;
    m.mapped = static_cast<uint32_t>(ev.arg0);
}

void Correlator::State::on_mapping_event(const Rec& ev) {
    int64_t idx = -1;
    if (auto w = mmap_windows.find(ev.tid); w != mmap_windows.end())
        idx = w->second;
    else if (ev.type == KEX_EV_KEX_MMAP_MODE)
        for (std::size_t i = r.mappings.size(); i-- > 0;)
            if (r.mappings[i].tgid == ev.pid && r.mappings[i].vm_start == ev.addr) {
                idx = static_cast<int64_t>(i);
                break;
            }
    if (idx < 0)
        return;
    Mapping& m = r.mappings[static_cast<std::size_t>(idx)];
    switch (ev.type) {
    case KEX_EV_KEX_MMAP_MODE:
        m.mode = ev.arg0 <= KEX_EV_MODE_PFN ? static_cast<MapMode>(ev.arg0) : MapMode::unknown;
        m.mode_inferred = false;
        break;
    case KEX_EV_KEX_BATCH:
        ++m.batch_calls;
        break;
    default:
        ++m.vm_insert_pages;
        break;
    }
}

void Correlator::State::on_vma_close(const Rec& ev) {
    for (std::size_t i = r.mappings.size(); i-- > 0;) {
        Mapping& m = r.mappings[i];
        if (m.vm_start == ev.addr && m.tgid == ev.pid && !m.close_ts) {
            m.close_ts = ev.ts;
            return;
        }
    }
}

} // namespace kextrace
