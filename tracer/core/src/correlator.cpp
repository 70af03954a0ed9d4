// correlator.cpp - the dispatcher: input ordering, each event to its unit, and the public
// Correlator (the state and its contract: correlator_state.h).
#include "correlator_state.h"

namespace kextrace {

// --- input ---------------------------------------------------------------------

void Correlator::State::feed(Event&& e) {
    ++r.events;
    const uint32_t stack_id = intern_stack(e.stack);
    int64_t ret = e.ret;
    if (e.type == KEX_EV_DRIVER_VMA && e.vma) {
        vma_infos.push_back(std::move(e.vma));
        ret = static_cast<int64_t>(vma_infos.size());
    }
    auto rec = [&] {
        return Rec{e.ts,   e.pfn, e.addr, e.arg0,     e.arg1,     ret,
                   e.type, e.pid, e.tid,  e.refcount, e.mapcount, stack_id};
    };
    if (opts.reorder_window_ns && processed_any && e.ts < watermark) {
        // The window already passed it: process now, marked late.
        ++r.late;
        late = true;
        Rec ev = rec();
        process(ev);
        late = false;
        return;
    }
    max_ts = std::max(max_ts, e.ts);
    buf_allocs += e.type == KEX_EV_KEX_PAGE_ALLOC;
    piles.add(e.ts, buffer.size());
    buffer.emplace_back() = rec(); // written in place
    if (opts.reorder_window_ns && buffer.size() >= next_flush && max_ts > opts.reorder_window_ns) {
        flush_until(max_ts - opts.reorder_window_ns);
        // What stays is about one window's worth: flush again once as
        // much arrived again, so each event is sorted O(1) times.
        next_flush = std::max(kFlushBatch, 2 * buffer.size());
    }
}

void Correlator::State::radix_sort_keys(unsigned lo_bit, unsigned hi_bit) {
    ScratchArray<uint64_t>& tmp = keys_tmp;
    tmp.resize_for_overwrite(keys.size());
    // As few passes as digits of at most 12 bits allow, the bits shared out
    // evenly (23 bits: 2 passes of 12, not 11 + 11 + 1).
    constexpr unsigned kMaxBits = 12;
    const unsigned passes = std::max(1u, (hi_bit - lo_bit + kMaxBits - 1) / kMaxBits);
    const unsigned bits = (hi_bit - lo_bit + passes - 1) / passes;
    const uint64_t mask = (uint64_t{1} << bits) - 1;
    std::vector<std::size_t> start(std::size_t{1} << bits);
    for (unsigned shift = lo_bit; shift < hi_bit; shift += bits) {
        std::fill(start.begin(), start.end(), 0);
        for (uint64_t k : keys)
            ++start[(k >> shift) & mask];
        std::size_t sum = 0;
        for (auto& c : start)
            sum += std::exchange(c, sum);
        for (uint64_t k : keys)
            tmp[start[(k >> shift) & mask]++] = k;
        keys.swap(tmp);
    }
}

// The keys: (ts - the oldest ts) above the event's index, so that the
// keys' own order is (ts, arrival), in 8 bytes (half the memory a (ts,
// index) pair takes, and memory first touched is most of a large flush's
// cost: bench/README.md). A span of time too wide for that (more than
// 2^64 / events ns) sorts plain indices by their events' ts.
uint64_t Correlator::State::sort_keys() {
    const std::size_t n_keys = buffer.size();
    uint64_t lo = UINT64_MAX, hi = 0;
    buffer.for_each([&](const Rec& e) {
        lo = std::min(lo, e.ts);
        hi = std::max(hi, e.ts);
    });
    const auto idx_bits = static_cast<unsigned>(std::bit_width(n_keys - 1));
    const auto ts_bits = static_cast<unsigned>(std::bit_width(hi - lo));
    const bool packed = idx_bits + ts_bits <= 64;
    keys.resize_for_overwrite(n_keys);
    std::size_t i = 0;
    buffer.for_each([&](const Rec& e) {
        keys[i] = packed ? (e.ts - lo) << idx_bits | i : i;
        ++i;
    });
    if (!packed) {
        std::stable_sort(keys.begin(), keys.end(),
                         [&](uint64_t a, uint64_t b) { return buffer[a].ts < buffer[b].ts; });
    } else if (!std::is_sorted(keys.begin(), keys.end())) {
        if (n_keys < kRadixMin)
            std::sort(keys.begin(), keys.end()); // keys are distinct: stable
        else
            radix_sort_keys(idx_bits, idx_bits + ts_bits);
    }
    return packed ? (uint64_t{1} << idx_bits) - 1 : UINT64_MAX;
}

// The buffered events in (ts, arrival) order: the piles merged (piles.h),
// or, when the arrivals were in too little order for them, sorted.
void Correlator::State::flush_until(uint64_t limit) {
    if (buffer.empty())
        return;
    const bool merge = piles.ok();
    const uint64_t idx_mask = merge ? 0 : sort_keys();
    if (limit == UINT64_MAX) {
        keys_tmp = {}; // the last sort: its scratch is not held while the lives grow
        reserve_lives();
    }
    rest.clear();
    buf_allocs = 0;
    if (merge) {
        // what is kept (later than limit) keeps its arrival order and piles
        piles.merge_until(
            limit, [&](std::size_t i) { return buffer.segment(i); },
            [](const Rec& e) { return e.ts; }, [&](Rec& e, std::size_t) { process(e); },
            [&](std::size_t first, std::size_t n) {
                for (std::size_t end = first + n; first < end;) {
                    const std::span<Rec> seg = buffer.segment(first);
                    const std::size_t m = std::min(seg.size(), end - first);
                    for (const Rec& e : seg.first(m)) {
                        buf_allocs += e.type == KEX_EV_KEX_PAGE_ALLOC;
                        rest.push_back(e);
                    }
                    first += m;
                }
            });
        buffer.swap(rest);
        rest.clear();
    } else {
        uint64_t rest_tail = 0;
        for (std::size_t k = 0; k < keys.size(); ++k) { // sorted: what is kept comes last
            Rec& ev = buffer[keys[k] & idx_mask];
            if (ev.ts <= limit) {
                process(ev);
                continue;
            }
            buf_allocs += ev.type == KEX_EV_KEX_PAGE_ALLOC;
            rest_tail = ev.ts;
            rest.push_back(ev);
        }
        buffer.swap(rest);
        rest.clear();
        piles.reset(buffer.size(), rest_tail); // what is kept: in order
    }
    if (buffer.empty() && limit == UINT64_MAX) { // finish(): nothing more to hold
        buffer = {};
        rest = {};
        keys = {};
        keys_tmp = {};
        piles = {};
    }
}

void Correlator::State::reserve_lives() {
    const std::size_t allocs = buf_allocs;
    const std::size_t need = r.pages.size() + allocs;
    if (need <= r.pages.capacity())
        return;
    reserve_huge(r.pages, need);
    reserve_huge(life_track, need);
    if (closed_by_pfn.size() + allocs > closed_by_pfn.bucket_count() / 2)
        closed_by_pfn.reserve(closed_by_pfn.size() + allocs);
}

// --- dispatch ------------------------------------------------------------------

void Correlator::State::process(Rec& ev) {
    if (!processed_any) {
        r.first_ts = ev.ts;
        processed_any = true;
    }
    r.first_ts = std::min(r.first_ts, ev.ts);
    r.last_ts = std::max(r.last_ts, ev.ts);
    watermark = std::max(watermark, ev.ts);
    expire_pending(ev.ts);

    if (!is_known_event_type(ev.type)) {
        anomaly(ev.ts, -1, "event of unknown type " + std::to_string(ev.type) + " ignored");
        ++r.filtered;
        return;
    }
    if (!dispatch(ev, is_traced(ev.pid))) {
        ++r.filtered;
        return;
    }
    ++r.counts[ev.type];
    count_in_phases(ev);
}

void Correlator::State::count_in_phases(const Rec& ev) {
    if (ev.type == KEX_EV_RIG_PHASE)
        return;
    PhaseCacheSlot& slot = phase_cache[ev.pid % phase_cache.size()];
    if (!slot.known || slot.tgid != ev.pid) {
        auto it = open_phases.find(ev.pid);
        slot = {true, ev.pid, it == open_phases.end() ? nullptr : &it->second};
    }
    if (!slot.open)
        return;
    for (uint32_t i : *slot.open) {
        Phase& ph = r.phases[i];
        if (ev.type == KEX_EV_USER_FAULT) {
            ++ph.user_faults;
        } else {
            ++ph.counts[ev.type];
            ++ph.kernel_events;
        }
    }
}

// Page events belong to a page life whoever runs them (a free in another
// process, a zap at exit); everything else counts only from a traced process.
bool Correlator::State::dispatch(Rec& ev, bool traced_pid) {
    switch (ev.type) {
    case KEX_EV_KEX_FAULT:
        if (ev.pfn == kNoPfn) // the fault failed: no page to follow
            return traced_pid;
        return on_page_event(ev, traced_pid);
    case KEX_EV_REMAP_PFN:
    case KEX_EV_REMAP_PFN_RET:
    case KEX_EV_INSERT:
    case KEX_EV_INSERT_RET:
    case KEX_EV_RMAP_ADD:
    case KEX_EV_DO_SET_PTE:
    case KEX_EV_DO_SET_PTE_RET:
    case KEX_EV_KEX_PAGE_INSERT:
    case KEX_EV_KEX_PAGE_FREE:
    case KEX_EV_PAGE_FREE:
    case KEX_EV_PAGE_FREE_BATCHED:
    case KEX_EV_RMAP_REMOVE:
    case KEX_EV_SET_DIRTY:
    case KEX_EV_PTE_LOOKUP:
        return on_page_event(ev, traced_pid);
    case KEX_EV_DRIVER_ALLOC: // the allocating task's pid: not a traced-process event
        return on_driver_alloc(ev);
    case KEX_EV_FOLLOW: // whoever runs it, like the page events
        return on_follow(ev);
    case KEX_EV_UNMAP_REGION_RET:
    case KEX_EV_EXIT_MMAP_RET:
        return unmap_windows.erase(ev.tid) > 0 || traced_pid;
    default:
        return traced_pid && on_traced_event(ev);
    }
}

// An event of a traced process that is not about one page: phases, the
// process tree, mappings, driver VMAs, allocations, unmap windows.
bool Correlator::State::on_traced_event(Rec& ev) {
    switch (ev.type) {
    case KEX_EV_RIG_PHASE:
        on_phase(ev);
        return true;
    case KEX_EV_PROC_FORK:
        if (!all)
            traced.insert(static_cast<uint32_t>(ev.arg0));
        return true;
    case KEX_EV_USER_FAULT:
        on_user_fault(ev);
        return true;
    case KEX_EV_KEX_MMAP:
        on_kex_mmap(ev);
        return true;
    case KEX_EV_KEX_MMAP_DONE:
        on_kex_mmap_done(ev);
        return true;
    case KEX_EV_KEX_VMA_CLOSE:
        on_vma_close(ev);
        return true;
    case KEX_EV_KEX_MMAP_MODE:
    case KEX_EV_KEX_BATCH:
    case KEX_EV_VM_INSERT_PAGES:
        on_mapping_event(ev);
        return true;
    case KEX_EV_KEX_PAGE_ALLOC:
        on_kex_alloc(ev);
        return true;
    case KEX_EV_DRIVER_VMA:
        return on_driver_vma(ev);
    case KEX_EV_DRIVER_PAGE:
        return on_driver_page(ev);
    case KEX_EV_DRIVER_PFNMAP:
    case KEX_EV_DRIVER_PFNMAP_RET:
        return on_driver_pfnmap(ev);
    case KEX_EV_PAGE_ALLOC:
        on_kmem_alloc(ev);
        return true;
    case KEX_EV_UNMAP_REGION:
    case KEX_EV_EXIT_MMAP:
        unmap_windows[ev.tid] = {
            ev.type == KEX_EV_EXIT_MMAP ? ZapContext::exit : ZapContext::munmap, ev.pid};
        return true;
    default: // syscalls, exits, vma_open, release: counted only
        return true;
    }
}

Correlator::Correlator(CorrelatorOptions opts) : s_(std::make_unique<State>(std::move(opts))) {}
Correlator::~Correlator() = default;
Correlator::Correlator(Correlator&&) noexcept = default;
Correlator& Correlator::operator=(Correlator&&) noexcept = default;

void Correlator::feed(const Event& ev) {
    s_->feed(Event(ev));
}
void Correlator::feed(Event&& ev) {
    s_->feed(std::move(ev));
}

void Correlator::trace_tgid(uint32_t tgid) {
    s_->opts.roots.push_back(tgid);
    s_->all = false;
    s_->traced.insert(tgid);
}

void Correlator::set_losses(const Losses& losses) {
    s_->losses = losses;
}

void Correlator::flush() {
    s_->flush_all();
}

Report Correlator::finish() {
    s_->finalize();
    Report out = std::move(s_->r);
    CorrelatorOptions opts = std::move(s_->opts);
    s_ = std::make_unique<State>(std::move(opts));
    return out;
}

PendingState Correlator::pending() const {
    return s_->pending_state();
}

} // namespace kextrace
