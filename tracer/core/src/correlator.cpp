// The correlator: events (any order) -> sorted -> per-page lives, phases,
// mappings, anomalies.
//
// Attribution: page events carry a pfn. kex:kex_page_alloc opens a life for
// its pfn; mm_page_free closes it (mm_page_free_batched and a late
// kex_page_free may still attach to the life just closed). mm_page_alloc is
// held pending until kex claims the pfn (same tid, within alloc_attach_ns);
// unclaimed, it is an "other allocation" (page tables in the mmap window).
// Per-tid windows give context: kex_mmap..done (which mapping a page belongs
// to), insert entry..return (PTE read back), unmap_region / exit_mmap (why a
// page was zapped). User faults find their page by (tgid, page address).
#include <kextrace/core.h>

#include <tsl/robin_map.h>
#include <tsl/robin_set.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

namespace kextrace {

namespace {

constexpr std::size_t kFlushBatch = 1024;   // buffered events before a windowed flush
constexpr std::size_t kRadixMin = 1 << 16;  // fewer keys than this: std::sort
constexpr std::size_t kMaxOrphanNotes = 16; // orphans described in anomalies
constexpr uint64_t kPageMask = ~(kPageSize - 1);

std::string hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

struct AddrKey {
    uint32_t tgid;
    uint64_t page;
    bool operator==(const AddrKey&) const = default;
};

// The murmur3 finalizer: std::hash of an integer is the identity, and the
// flat maps below index by the low bits (page addresses share theirs).
inline uint64_t mix64(uint64_t x) noexcept {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

struct IntHash {
    std::size_t operator()(uint64_t k) const noexcept { return mix64(k); }
};

struct AddrKeyHash {
    std::size_t operator()(const AddrKey& k) const noexcept {
        return mix64(k.page ^ (static_cast<uint64_t>(k.tgid) << 48));
    }
};

// The per-event lookups (pfn, tid, address): open addressing, one probe
// sequence in one array instead of a bucket list of heap nodes per entry.
// Iteration order is unspecified: finalize() sorts what it reports from them.
template <class K, class V, class H = IntHash> using FlatMap = tsl::robin_map<K, V, H>;
template <class K> using FlatSet = tsl::robin_set<K, IntHash>;

// mm_page_alloc waiting for kex to claim its pfn.
struct PendingAlloc {
    uint64_t ts;
    uint64_t order;
    uint32_t tid;
    int32_t mapping;
    int32_t refcount;
    int32_t mapcount;
};

// An event as the correlator keeps it while it waits for the reorder window:
// Event's fields, its stack already interned (Report::stacks), trivially
// copyable (the buffer grows and sorts by memcpy, no vector per record).
struct Rec {
    uint64_t ts;
    uint64_t pfn;
    uint64_t addr;
    uint64_t arg0;
    uint64_t arg1;
    int64_t ret;
    uint32_t type;
    uint32_t cpu;
    uint32_t pid;
    uint32_t tid;
    int32_t refcount;
    int32_t mapcount;
    uint32_t probe;
    uint32_t stack_id; // 0 = none
};
static_assert(sizeof(Rec) == 80);
// KEX_EV_DRIVER_VMA keeps its payload (VmaInfo) beside the buffer: its Rec's
// ret (always 0 in the record) holds 1 + its index in State::vma_infos.

// A user fault at an address of a kex mapping with no page there yet (mode
// fault: the fault comes before the .fault handler allocates the page).
struct PendingFault {
    Rec ev;
    bool in_write;
};

// unmap_region / exit_mmap of a tid.
struct UnmapWindow {
    ZapContext kind;
    uint32_t tgid;
};

// The event types whose loss can explain a missing milestone.
uint16_t milestones_of(uint32_t type) {
    switch (type) {
    case KEX_EV_PAGE_ALLOC:
        return kMsKmemAlloc;
    case KEX_EV_KEX_PAGE_ALLOC:
        return kMsKexAlloc;
    case KEX_EV_INSERT:
    case KEX_EV_DO_SET_PTE:
        return kMsInsert;
    case KEX_EV_INSERT_RET:
        return kMsInsert | kMsPteSet;
    case KEX_EV_DO_SET_PTE_RET:
        return kMsPteSet;
    case KEX_EV_RMAP_ADD:
        return kMsRmapAdd;
    case KEX_EV_KEX_PAGE_INSERT:
        return kMsKexInsert;
    case KEX_EV_KEX_PAGE_FREE:
        return kMsKexFree;
    case KEX_EV_RMAP_REMOVE:
        return kMsZap;
    case KEX_EV_PAGE_FREE:
        return kMsPageFree;
    default:
        return 0;
    }
}

std::string_view phase_name(uint32_t phase) {
    switch (phase) {
    case KEX_PHASE_MMAP_BEGIN:
    case KEX_PHASE_MMAP_END:
        return "mmap";
    case KEX_PHASE_WRITE_BEGIN:
    case KEX_PHASE_WRITE_END:
        return "write";
    case KEX_PHASE_MUNMAP_BEGIN:
    case KEX_PHASE_MUNMAP_END:
        return "munmap";
    default:
        return {};
    }
}

} // namespace

struct Correlator::State {
    explicit State(CorrelatorOptions o) : opts(std::move(o)) {
        all = opts.roots.empty();
        traced.insert(opts.roots.begin(), opts.roots.end());
        r.stacks.emplace_back();
        if (opts.reserve_pages) {
            r.pages.reserve(opts.reserve_pages);
            open_by_pfn.reserve(opts.reserve_pages);
            by_addr.reserve(opts.reserve_pages);
        }
    }

    CorrelatorOptions opts;
    Losses losses;
    Report r;

    // Input ordering: events wait in buffer; a flush sorts (ts, arrival)
    // keys, not the events, and keeps what is younger than the window.
    struct Key {
        uint64_t ts;
        uint32_t idx;
    };
    std::vector<Rec> buffer;
    std::vector<Rec> rest; // reused by flush_until
    std::vector<Key> keys; // reused by flush_until
    std::size_t next_flush = kFlushBatch;
    uint64_t max_ts = 0;
    uint64_t watermark = 0; // ts of the last processed event
    bool processed_any = false;
    bool late = false; // the event being processed arrived late

    // Process tree.
    bool all = true;
    FlatSet<uint32_t> traced;

    // Page lives.
    FlatMap<uint64_t, uint32_t> open_by_pfn;
    FlatMap<uint64_t, uint32_t> closed_by_pfn; // last life closed per pfn
    FlatMap<AddrKey, uint32_t, AddrKeyHash> by_addr;
    FlatMap<uint64_t, PendingAlloc> pending;
    std::deque<std::pair<uint64_t, uint64_t>> pending_order; // (ts, pfn)
    FlatMap<uint64_t, bool> other_pages;                     // pfn -> freed
    std::unordered_map<AddrKey, PendingFault, AddrKeyHash> pending_faults;

    // Per-tid windows.
    std::unordered_map<uint32_t, uint32_t> mmap_windows; // tid -> mapping
    FlatMap<uint32_t, UnmapWindow> unmap_windows;
    FlatMap<uint32_t, uint64_t> insert_calls;                        // tid -> pfn
    FlatMap<uint32_t, uint64_t> set_pte_calls;                       // tid -> pfn
    std::unordered_map<uint32_t, std::vector<uint32_t>> open_phases; // tgid -> phases

    FlatMap<uint64_t, uint32_t> stack_ids;                 // content hash -> Report::stacks
    std::vector<std::shared_ptr<const VmaInfo>> vma_infos; // see Rec

    // --- input -------------------------------------------------------------

    void feed(Event&& e) {
        ++r.events;
        Rec ev{e.ts,  e.pfn, e.addr, e.arg0,     e.arg1,     e.ret,   e.type,
               e.cpu, e.pid, e.tid,  e.refcount, e.mapcount, e.probe, intern_stack(e.stack)};
        if (e.type == KEX_EV_DRIVER_VMA && e.vma) {
            vma_infos.push_back(std::move(e.vma));
            ev.ret = static_cast<int64_t>(vma_infos.size());
        }
        if (opts.reorder_window_ns && processed_any && ev.ts < watermark) {
            // The window already passed it: process now, marked late.
            ++r.late;
            late = true;
            process(ev);
            late = false;
            return;
        }
        max_ts = std::max(max_ts, ev.ts);
        buffer.push_back(ev);
        if (opts.reorder_window_ns && buffer.size() >= next_flush &&
            max_ts > opts.reorder_window_ns) {
            flush_until(max_ts - opts.reorder_window_ns);
            // What stays is about one window's worth: flush again once as
            // much arrived again, so each event is sorted O(1) times.
            next_flush = std::max(kFlushBatch, 2 * buffer.size());
        }
    }

    // Sorts keys (in arrival order) by ts, ties in arrival order: an LSD radix
    // sort of ts - min, 11 bits a pass, only as many passes as the ts range
    // needs (a second of events: 3). Stable, so it gives by_ts's order at a
    // few linear passes; std::sort's n log n compares were most of finish()
    // for a large buffer (bench/: correlate/buffer_all).
    void radix_sort_keys() {
        uint64_t lo = UINT64_MAX, hi = 0;
        for (const Key& k : keys) {
            lo = std::min(lo, k.ts);
            hi = std::max(hi, k.ts);
        }
        std::vector<Key> tmp(keys.size());
        constexpr unsigned kBits = 11;
        for (unsigned shift = 0; shift < 64 && ((hi - lo) >> shift); shift += kBits) {
            std::vector<std::size_t> start(std::size_t{1} << kBits, 0);
            const uint64_t mask = (uint64_t{1} << kBits) - 1;
            for (const Key& k : keys)
                ++start[((k.ts - lo) >> shift) & mask];
            std::size_t sum = 0;
            for (auto& c : start)
                sum += std::exchange(c, sum);
            for (const Key& k : keys)
                tmp[start[((k.ts - lo) >> shift) & mask]++] = k;
            keys.swap(tmp);
        }
    }

    // Processes buffered events with ts <= limit, in (ts, arrival) order.
    void flush_until(uint64_t limit) {
        if (buffer.empty())
            return;
        keys.resize(buffer.size());
        for (std::size_t i = 0; i < buffer.size(); ++i)
            keys[i] = {buffer[i].ts, static_cast<uint32_t>(i)};
        auto by_ts = [](const Key& a, const Key& b) {
            return a.ts < b.ts || (a.ts == b.ts && a.idx < b.idx);
        };
        if (!std::is_sorted(keys.begin(), keys.end(), by_ts)) {
            if (keys.size() < kRadixMin)
                std::sort(keys.begin(), keys.end(), by_ts);
            else
                radix_sort_keys();
        }
        if (limit == UINT64_MAX)
            reserve_lives();
        std::size_t n = 0;
        while (n < keys.size() && keys[n].ts <= limit)
            process(buffer[keys[n++].idx]);
        rest.clear();
        for (std::size_t i = n; i < keys.size(); ++i)
            rest.push_back(buffer[keys[i].idx]);
        buffer.swap(rest);
        rest.clear();
    }

    void flush_all() { flush_until(UINT64_MAX); }

    // Before a flush of everything (finish(); all there is when kextrace
    // buffers everything): room for the lives the buffered kex allocations
    // may open, so Report::pages (200 B a life) and the closed-pfn index grow
    // once, to size, instead of doubling (moving every life each time, and
    // holding up to twice the room). Windowed flushes grow as vectors do.
    void reserve_lives() {
        std::size_t allocs = 0;
        for (const Rec& e : buffer)
            allocs += e.type == KEX_EV_KEX_PAGE_ALLOC;
        const std::size_t need = r.pages.size() + allocs;
        if (need <= r.pages.capacity())
            return;
        r.pages.reserve(need);
        if (closed_by_pfn.size() + allocs > closed_by_pfn.bucket_count() / 2)
            closed_by_pfn.reserve(closed_by_pfn.size() + allocs);
    }

    // --- helpers -----------------------------------------------------------

    bool is_traced(uint32_t tgid) const { return all || traced.contains(tgid); }

    void anomaly(uint64_t ts, int32_t life, std::string msg) {
        if (life >= 0)
            ++r.pages[static_cast<std::size_t>(life)].anomalies;
        if (r.anomalies.size() >= opts.max_anomalies) {
            ++r.anomalies_dropped;
            return;
        }
        r.anomalies.push_back({ts, life, std::move(msg)});
    }

    std::string page_name(uint32_t life) const {
        const PageLife& p = r.pages[life];
        std::string s = "page";
        if (p.index != kNoIndex)
            s += " " + std::to_string(p.index);
        s += " (pfn " + hex(p.pfn) + ")";
        return s;
    }

    uint32_t intern_stack(std::vector<uint64_t>& st) {
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

    Step& add_step(uint32_t life, StepKind kind, Rec& ev, uint64_t value, uint8_t flags = 0) {
        Step s;
        s.ts = ev.ts;
        s.value = value;
        s.refcount = ev.refcount;
        s.mapcount = ev.mapcount;
        s.stack_id = ev.stack_id;
        s.kind = kind;
        s.flags = static_cast<uint8_t>(flags | (late ? kStepLate : 0));
        auto& steps = r.pages[life].steps;
        steps.push_back(s);
        return steps.back();
    }

    uint32_t open_life(uint64_t pfn, uint32_t owner, uint32_t tid) {
        const auto idx = static_cast<uint32_t>(r.pages.size());
        PageLife& p = r.pages.emplace_back();
        p.pfn = pfn;
        p.owner = owner;
        p.steps.reserve(12);
        if (auto w = mmap_windows.find(tid); w != mmap_windows.end()) {
            p.mapping = static_cast<int32_t>(w->second);
            Mapping& m = r.mappings[w->second];
            p.policy = m.policy;
            ++m.lives;
        }
        open_by_pfn[pfn] = idx;
        closed_by_pfn.erase(pfn);
        other_pages.erase(pfn);
        return idx;
    }

    void set_uaddr(uint32_t life, uint64_t addr) {
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

    void close_life(uint32_t life) {
        PageLife& p = r.pages[life];
        open_by_pfn.erase(p.pfn);
        closed_by_pfn[p.pfn] = life;
        if (p.uaddr) {
            auto it = by_addr.find({p.owner, p.uaddr & kPageMask});
            if (it != by_addr.end() && it->second == life)
                by_addr.erase(it);
        }
    }

    void pending_to_other(uint64_t pfn) {
        auto it = pending.find(pfn);
        if (it == pending.end())
            return;
        ++r.other_allocations;
        if (it->second.mapping >= 0)
            ++r.mappings[static_cast<std::size_t>(it->second.mapping)].other_allocations;
        other_pages[pfn] = false;
        pending.erase(it);
    }

    void expire_pending(uint64_t now) {
        while (!pending_order.empty() && pending_order.front().first + opts.alloc_attach_ns < now) {
            auto [ts, pfn] = pending_order.front();
            pending_order.pop_front();
            auto it = pending.find(pfn);
            if (it != pending.end() && it->second.ts == ts)
                pending_to_other(pfn);
        }
    }

    // --- dispatch ----------------------------------------------------------

    void process(Rec& ev) {
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

    void count_in_phases(const Rec& ev) {
        if (ev.type == KEX_EV_RIG_PHASE)
            return;
        auto it = open_phases.find(ev.pid);
        if (it == open_phases.end())
            return;
        for (uint32_t i : it->second) {
            Phase& ph = r.phases[i];
            if (ev.type == KEX_EV_USER_FAULT) {
                ++ph.user_faults;
            } else {
                ++ph.counts[ev.type];
                ++ph.kernel_events;
            }
        }
    }

    // Returns false when the event is filtered out (not ours).
    bool dispatch(Rec& ev, bool traced_pid) {
        switch (ev.type) {
        case KEX_EV_RIG_PHASE:
            if (traced_pid)
                on_phase(ev);
            return traced_pid;
        case KEX_EV_PROC_FORK:
            if (traced_pid && !all)
                traced.insert(static_cast<uint32_t>(ev.arg0));
            return traced_pid;
        case KEX_EV_USER_FAULT:
            if (traced_pid)
                on_user_fault(ev);
            return traced_pid;
        case KEX_EV_KEX_MMAP:
            if (traced_pid)
                on_kex_mmap(ev);
            return traced_pid;
        case KEX_EV_KEX_MMAP_DONE:
            if (traced_pid)
                on_kex_mmap_done(ev);
            return traced_pid;
        case KEX_EV_KEX_VMA_CLOSE:
            if (traced_pid)
                on_vma_close(ev);
            return traced_pid;
        case KEX_EV_KEX_MMAP_MODE:
        case KEX_EV_KEX_BATCH:
        case KEX_EV_VM_INSERT_PAGES:
            if (traced_pid)
                on_mapping_event(ev);
            return traced_pid;
        case KEX_EV_KEX_FAULT:
            if (ev.pfn == kNoPfn) // the fault failed: no page to follow
                return traced_pid;
            return on_page_event(ev, traced_pid);
        case KEX_EV_REMAP_PFN:
        case KEX_EV_REMAP_PFN_RET:
            return on_page_event(ev, traced_pid);
        case KEX_EV_KEX_PAGE_ALLOC:
            if (traced_pid)
                on_kex_alloc(ev);
            return traced_pid;
        case KEX_EV_DRIVER_VMA:
            if (traced_pid)
                on_driver_vma(ev);
            return traced_pid;
        case KEX_EV_DRIVER_PAGE:
            if (traced_pid)
                on_driver_page(ev);
            return traced_pid;
        case KEX_EV_PAGE_ALLOC:
            if (traced_pid)
                on_kmem_alloc(ev);
            return traced_pid;
        case KEX_EV_UNMAP_REGION:
        case KEX_EV_EXIT_MMAP:
            if (traced_pid)
                unmap_windows[ev.tid] = {
                    ev.type == KEX_EV_EXIT_MMAP ? ZapContext::exit : ZapContext::munmap, ev.pid};
            return traced_pid;
        case KEX_EV_UNMAP_REGION_RET:
        case KEX_EV_EXIT_MMAP_RET:
            return unmap_windows.erase(ev.tid) > 0 || traced_pid;
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
            return on_page_event(ev, traced_pid);
        default: // syscalls, exits, vma_open, release: counted only
            return traced_pid;
        }
    }

    // --- phases, mappings, faults -----------------------------------------

    void on_phase(const Rec& ev) {
        const auto phase = static_cast<uint32_t>(ev.arg0);
        const std::string_view name = phase_name(phase);
        if (name.empty()) {
            anomaly(ev.ts, -1, "rig phase marker with unknown phase " + std::to_string(phase));
            return;
        }
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

    bool in_write_phase(uint32_t tgid) const {
        auto it = open_phases.find(tgid);
        if (it == open_phases.end())
            return false;
        return std::any_of(it->second.begin(), it->second.end(),
                           [&](uint32_t i) { return r.phases[i].begin == KEX_PHASE_WRITE_BEGIN; });
    }

    // The mapping of tgid that contains addr and is not closed, -1 = none.
    int64_t mapping_at(uint32_t tgid, uint64_t addr) const {
        for (std::size_t i = r.mappings.size(); i-- > 0;) {
            const Mapping& m = r.mappings[i];
            if (m.tgid == tgid && addr >= m.vm_start && addr < m.vm_end && !m.close_ts)
                return static_cast<int64_t>(i);
        }
        return -1;
    }

    void on_user_fault(Rec& ev) {
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

    void on_kex_mmap(const Rec& ev) {
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

    void on_kex_mmap_done(const Rec& ev) {
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

    // kex_mmap_mode, kex_batch, vm_insert_pages: about the tid's mapping.
    void on_mapping_event(const Rec& ev) {
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

    void on_vma_close(const Rec& ev) {
        for (std::size_t i = r.mappings.size(); i-- > 0;) {
            Mapping& m = r.mappings[i];
            if (m.vm_start == ev.addr && m.tgid == ev.pid && !m.close_ts) {
                m.close_ts = ev.ts;
                return;
            }
        }
    }

    // --- allocation --------------------------------------------------------

    void on_kmem_alloc(const Rec& ev) {
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
    }

    void on_kex_alloc(Rec& ev) {
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
                r.pages[life].steps.push_back(s);
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

    // --- another driver's pages ---------------------------------------------

    // A driver VMA, reported with its first followed page. A VMA of the same
    // process over the same range before it was unmapped meanwhile.
    void on_driver_vma(const Rec& ev) {
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
        if (ev.ret > 0 && static_cast<std::size_t>(ev.ret) <= vma_infos.size())
            m.vma = vma_infos[static_cast<std::size_t>(ev.ret) - 1];
    }

    // A page another driver inserts (BPF adopted it at the insert): its life
    // starts here; the allocation came before, unseen.
    void on_driver_page(Rec& ev) {
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
        p.alloc_ts = ev.ts;
        if (ev.addr >= ev.arg0 && ev.addr)
            p.index = static_cast<uint32_t>((ev.addr - ev.arg0) / kPageSize);
        set_uaddr(life, ev.addr);
    }

    // --- page events -------------------------------------------------------

    static bool can_open_life(uint32_t type) {
        return type == KEX_EV_INSERT || type == KEX_EV_INSERT_RET || type == KEX_EV_RMAP_ADD ||
               type == KEX_EV_DO_SET_PTE || type == KEX_EV_KEX_PAGE_INSERT;
    }

    bool on_page_event(Rec& ev, bool traced_pid) {
        uint64_t pfn = ev.pfn;
        if (ev.type == KEX_EV_INSERT_RET || ev.type == KEX_EV_DO_SET_PTE_RET) {
            auto& calls = ev.type == KEX_EV_INSERT_RET ? insert_calls : set_pte_calls;
            if (auto it = calls.find(ev.tid); it != calls.end()) {
                if (pfn == kNoPfn)
                    pfn = it->second;
                calls.erase(it);
            }
        }
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
                // kex_page_alloc lost: the allocator's event opens the life.
                const PendingAlloc pa = pending[pfn];
                pending.erase(pfn);
                const auto l = open_life(pfn, ev.pid, pa.tid);
                Step s;
                s.ts = pa.ts;
                s.value = pa.order;
                s.refcount = pa.refcount;
                s.mapcount = pa.mapcount;
                s.kind = StepKind::kmem_alloc;
                r.pages[l].steps.push_back(s);
                r.pages[l].seen |= kMsKmemAlloc;
                r.pages[l].alloc_ts = pa.ts;
                anomaly(ev.ts, static_cast<int32_t>(l),
                        page_name(l) + ": " + std::string(event_type_name(ev.type)) +
                            " without kex_page_alloc (life opened from mm_page_alloc)");
                life = l;
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

    void check_pte(uint32_t life, uint64_t ts, uint64_t pte) {
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

    void set_pte(uint32_t life, Rec& ev, uint8_t flags) {
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

    void apply(uint32_t life, Rec& ev, uint8_t flags) {
        switch (ev.type) {
        case KEX_EV_INSERT:
            add_step(life, StepKind::insert, ev, ev.addr, flags);
            r.pages[life].seen |= kMsInsert;
            insert_calls[ev.tid] = r.pages[life].pfn;
            set_uaddr(life, ev.addr);
            break;
        case KEX_EV_INSERT_RET:
            add_step(life, StepKind::insert_ret, ev, static_cast<uint64_t>(ev.ret), flags);
            r.pages[life].seen |= kMsInsert;
            r.pages[life].insert_ret = ev.ret;
            if (ev.ret == 0 && ev.arg0)
                set_pte(life, ev, static_cast<uint8_t>(flags | kStepViaInsertRet));
            break;
        case KEX_EV_DO_SET_PTE:
            add_step(life, StepKind::do_set_pte, ev, ev.addr, flags);
            r.pages[life].seen |= kMsInsert;
            set_pte_calls[ev.tid] = r.pages[life].pfn;
            set_uaddr(life, ev.addr);
            break;
        case KEX_EV_DO_SET_PTE_RET:
            if (ev.arg0)
                set_pte(life, ev, static_cast<uint8_t>(flags | kStepViaDoSetPteRet));
            break;
        case KEX_EV_RMAP_ADD:
            add_step(life, StepKind::rmap_add, ev, 0, flags);
            r.pages[life].seen |= kMsRmapAdd;
            break;
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
            break;
        }
        case KEX_EV_SET_DIRTY: {
            add_step(life, StepKind::set_dirty, ev, 0, flags);
            PageLife& p = r.pages[life];
            if (p.seen & (kMsInsert | kMsPteSet | kMsKexInsert))
                p.zap_dirty = true;
            break;
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
            break;
        }
        case KEX_EV_KEX_PAGE_FREE: {
            add_step(life, StepKind::kex_free, ev, ev.arg1, flags);
            PageLife& p = r.pages[life];
            if (p.seen & kMsKexFree)
                anomaly(ev.ts, static_cast<int32_t>(life),
                        page_name(life) + ": kex freed its reference twice");
            p.seen |= kMsKexFree;
            p.kex_free_reason = static_cast<uint32_t>(ev.arg1);
            break;
        }
        case KEX_EV_PAGE_FREE: {
            add_step(life, StepKind::page_free, ev, ev.arg0, flags);
            PageLife& p = r.pages[life];
            p.seen |= kMsPageFree;
            p.free_ts = ev.ts;
            close_life(life);
            break;
        }
        case KEX_EV_PAGE_FREE_BATCHED:
            add_step(life, StepKind::page_free_batched, ev, 0, flags);
            r.pages[life].free_batched = true;
            break;
        case KEX_EV_KEX_FAULT: {
            PageLife& p = r.pages[life];
            if (!p.kex_faults++)
                p.kex_fault_flags = static_cast<uint32_t>(ev.arg1);
            if (p.index == kNoIndex)
                p.index = static_cast<uint32_t>(ev.arg0);
            set_uaddr(life, ev.addr);
            if (r.pages[life].mapping >= 0)
                ++r.mappings[static_cast<std::size_t>(r.pages[life].mapping)].faults;
            break;
        }
        case KEX_EV_REMAP_PFN: {
            set_uaddr(life, ev.addr);
            PageLife& p = r.pages[life];
            if (!p.remap_ts)
                p.remap_ts = ev.ts;
            if (p.mapping >= 0)
                ++r.mappings[static_cast<std::size_t>(p.mapping)].remap_pfn_calls;
            break;
        }
        case KEX_EV_REMAP_PFN_RET:
            r.pages[life].remap_ret = ev.ret;
            break;
        default:
            break;
        }
    }

    // --- finish ------------------------------------------------------------

    // A flat map's entries by key: what finalize() reports does not depend on
    // the table's layout.
    template <class Map> static auto sorted(const Map& m) {
        std::vector<std::pair<typename Map::key_type, typename Map::mapped_type>> v(m.begin(),
                                                                                    m.end());
        std::sort(v.begin(), v.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        return v;
    }

    void finalize() {
        flush_all();
        // Nothing more will claim a pending allocation.
        while (!pending.empty())
            pending_to_other(pending.begin()->first);
        pending_order.clear();

        for (auto& [tgid, open] : open_phases)
            for (uint32_t i : open) {
                Phase& ph = r.phases[i];
                ph.end = r.last_ts;
                anomaly(r.last_ts, -1,
                        "rig phase " + ph.name + " of " + std::to_string(tgid) +
                            " never ended (end marker lost, or the run stopped)");
            }
        open_phases.clear();
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
                    "insert of pfn " + hex(pfn) + " (tid " + std::to_string(tid) +
                        ") never returned");
        insert_calls.clear();
        for (const auto& [tid, pfn] : sorted(set_pte_calls))
            anomaly(r.last_ts, -1,
                    "do_set_pte of pfn " + hex(pfn) + " (tid " + std::to_string(tid) +
                        ") never returned");
        set_pte_calls.clear();

        for (const auto& [pfn, life] : open_by_pfn)
            r.pages[life].open_at_end = true;
        open_by_pfn.clear();

        // Write phases per tgid, for the first-write verdicts.
        std::unordered_map<uint32_t, std::vector<const Phase*>> writes;
        for (const Phase& ph : r.phases)
            if (ph.begin == KEX_PHASE_WRITE_BEGIN)
                writes[ph.tgid].push_back(&ph);

        pending_faults.clear();
        for (Mapping& m : r.mappings)
            if (m.mode == MapMode::unknown) {
                // an older kex (no kex_mmap_mode), or the event was lost
                m.mode_inferred = true;
                m.mode = m.batch_calls || m.vm_insert_pages    ? MapMode::batch
                         : m.remap_pfn_calls                   ? MapMode::pfn
                         : m.faults                            ? MapMode::fault
                         : m.done_ts && m.ret == 0 && m.mapped ? MapMode::insert
                                                               : MapMode::unknown;
            }

        for (uint32_t i = 0; i < r.pages.size(); ++i)
            finish_life(i, writes);

        for (std::size_t i = 0; i < r.mappings.size(); ++i) {
            const Mapping& m = r.mappings[i];
            // mode fault maps nothing at mmap: its pages come with the touches
            if (m.done_ts && m.ret == 0 && m.lives != m.mapped && m.mode != MapMode::fault)
                anomaly(m.done_ts, -1,
                        "mapping " + hex(m.vm_start) + ": kex reported " +
                            std::to_string(m.mapped) + " pages mapped, " + std::to_string(m.lives) +
                            " page lives seen");
        }

        if (!all) {
            r.tgids.assign(traced.begin(), traced.end());
            std::sort(r.tgids.begin(), r.tgids.end());
        }
        r.losses = losses;
    }

    void finish_life(uint32_t i,
                     const std::unordered_map<uint32_t, std::vector<const Phase*>>& writes) {
        PageLife& p = r.pages[i];
        if (!std::is_sorted(p.steps.begin(), p.steps.end(),
                            [](const Step& a, const Step& b) { return a.ts < b.ts; }))
            std::stable_sort(p.steps.begin(), p.steps.end(),
                             [](const Step& a, const Step& b) { return a.ts < b.ts; });
        if (!p.alloc_ts && !p.steps.empty())
            p.alloc_ts = p.steps.front().ts;

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
        const uint64_t close_ts =
            p.mapping >= 0 ? r.mappings[static_cast<std::size_t>(p.mapping)].close_ts : 0;

        // When was it mapped, and by which step.
        uint64_t map_ts = 0;
        uint64_t kex_free_ts = 0;
        uint64_t page_free_ts = 0;
        bool zap_before_free = false;
        for (const Step& s : p.steps) {
            const bool maps = s.kind == StepKind::pte_set ||
                              (s.kind == StepKind::insert_ret && s.ret() == 0) ||
                              (s.kind == StepKind::kex_insert && s.ret() == 0);
            if (maps && !map_ts)
                map_ts = s.ts;
            if (s.kind == StepKind::kex_free && !kex_free_ts)
                kex_free_ts = s.ts;
            if (s.kind == StepKind::page_free && !page_free_ts)
                page_free_ts = s.ts;
            if (s.kind == StepKind::rmap_remove && !page_free_ts)
                zap_before_free = true;
        }
        const bool insert_failed = p.insert_ret != 0;
        const bool never_inserted = p.kex_free_reason == KEX_FREE_ERROR &&
                                    !(p.seen & (kMsInsert | kMsKexInsert | kMsPteSet));

        // What this page's story should contain.
        p.expected = opts.expected & mode_expected(p.mode);
        // A failed insert may not have reached insert_page_into_pte_locked
        // (kex's fail_at, validation): only kex's own view of it is expected.
        if (insert_failed || never_inserted)
            p.expected &= static_cast<uint16_t>(~(kMsInsert | kMsRmapAdd | kMsPteSet | kMsZap));
        if (never_inserted)
            p.expected &= static_cast<uint16_t>(~kMsKexInsert);
        // Another driver's page still held when the trace ended: its free is
        // the driver's business, later (at close, at unload), not a lost event.
        if (p.mode == MapMode::driver && p.open_at_end)
            p.expected &= static_cast<uint16_t>(~kMsPageFree);
        p.missing = p.expected & static_cast<uint16_t>(~p.seen);
        p.missing_lost = 0;
        // a failed map update (traced, pages, pfns...) can hide any event of any page
        const bool global_loss = losses.ring || losses.decode_errors || losses.map_failures();
        for (std::size_t t = 0; t < kTypeSlots; ++t)
            if (global_loss || losses.per_type[t])
                p.missing_lost |= p.missing & milestones_of(static_cast<uint32_t>(t));
        if (global_loss)
            p.missing_lost = p.missing;

        const auto life = static_cast<int32_t>(i);
        auto name = [&] { return page_name(i); }; // only for anomalies: most pages have none

        // Mode pfn: special PTEs, no struct page use by the mapping. Any rmap,
        // insert or zap of the page means it was not mapped the pfn way.
        if (p.mode == MapMode::pfn)
            for (const Step& s : p.steps)
                if (s.kind == StepKind::rmap_add || s.kind == StepKind::rmap_remove ||
                    s.kind == StepKind::insert || s.kind == StepKind::do_set_pte) {
                    anomaly(s.ts, life,
                            name() + ": mode pfn, but " + std::string(step_kind_name(s.kind)) +
                                " saw the page (its PTE should be special, without rmap)");
                    break;
                }

        // Freed while still mapped: the classic driver bug (use after free).
        // Mode pfn has no zap to see: mapped until its VMA closed.
        if (p.mode == MapMode::pfn) {
            if (page_free_ts && map_ts && !insert_failed && (!close_ts || page_free_ts < close_ts))
                anomaly(page_free_ts, life,
                        name() + ": mode pfn, freed before its mapping closed (still mapped)");
        } else if (page_free_ts && map_ts && map_ts < page_free_ts && !zap_before_free &&
                   !insert_failed)
            anomaly(page_free_ts, life,
                    name() + ": freed while still mapped (no rmap remove before mm_page_free)" +
                        (p.missing_lost & kMsZap ? " - or its zap events were lost" : ""));

        // Policy: who drops which reference when.
        if (kex_free_ts && p.zap_ts && !insert_failed) {
            if (p.policy == Policy::drop && kex_free_ts > p.zap_ts)
                anomaly(kex_free_ts, life,
                        name() + ": policy drop, but kex freed its reference after the zap");
            if (p.policy == Policy::keep && kex_free_ts < p.zap_ts)
                anomaly(kex_free_ts, life,
                        name() + ": policy keep, but kex freed its reference while still mapped");
        }
        if (p.kex_free_reason != UINT32_MAX && !insert_failed) {
            const bool mismatch =
                (p.policy == Policy::drop && p.kex_free_reason == KEX_FREE_AT_CLOSE) ||
                (p.policy == Policy::keep && p.kex_free_reason == KEX_FREE_AFTER_INSERT);
            if (mismatch)
                anomaly(kex_free_ts, life,
                        name() + ": kex free reason " + std::to_string(p.kex_free_reason) +
                            " does not match policy " + std::string(policy_name(p.policy)));
        }

        // Refcounts of a complete, successful life.
        if (p.missing == 0 && !insert_failed && !never_inserted && (p.seen & kMsPageFree)) {
            const auto got = refcount_trail(p);
            const auto want = expected_refcount_trail(p.policy, p.mode);
            // a fault page handed out again (refault) goes 1->2->1 once more
            const bool refaulted = p.mode == MapMode::fault && p.kex_faults > 1;
            // (another driver: its own references, no trail to expect)
            if (!got.empty() && !want.empty() && got != want && !refaulted) {
                auto fmt = [](const std::vector<int32_t>& t) {
                    std::string s;
                    for (std::size_t k = 0; k < t.size(); ++k)
                        s += (k ? "->" : "") + std::to_string(t[k]);
                    return s;
                };
                anomaly(p.free_ts, life,
                        name() + ": refcount " + fmt(got) + ", expected " + fmt(want) + " (" +
                            std::string(policy_name(p.policy)) + ")");
            }
        }

        // First write: a fault in the write phase was recorded when it came;
        // else, if a write phase ran while the page was mapped, the MMU wrote
        // without a fault (it sets the PTE's D bit itself).
        if (p.first_write == FirstWrite::unknown && map_ts) {
            auto w = writes.find(p.owner);
            if (w != writes.end())
                for (const Phase* ph : w->second)
                    if (ph->start >= map_ts && (!p.zap_ts || ph->start < p.zap_ts)) {
                        p.first_write = FirstWrite::no_fault;
                        break;
                    }
        }
    }

    PendingState pending_state() const {
        PendingState ps;
        ps.buffered = buffer.size();
        ps.kmem_allocs = pending.size();
        ps.open_lives = open_by_pfn.size();
        ps.windows = mmap_windows.size() + unmap_windows.size() + insert_calls.size() +
                     set_pte_calls.size() + open_phases.size();
        return ps;
    }
};

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
