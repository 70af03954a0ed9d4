// correlator_state.h - the correlator's private state, shared by its units
// (not installed; kextrace/core.h is the contract):
//   correlator.cpp  input ordering and dispatch, and the public Correlator
//   lives.cpp       page identity: lives, steps, stacks, allocation, page events
//   driver_pages.cpp another driver's VMAs and pages
//   phases.cpp      rig phases, mappings, user faults
//   verdicts.cpp    the end of every life: milestones, anomalies, the report
//
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
#pragma once

#include <kextrace/core.h>

#include "chunked.h"
#include "piles.h"

#include <tsl/robin_map.h>
#include <tsl/robin_set.h>

#include <algorithm>
#include <array>
#include <bit>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

namespace kextrace {

// Internal to the correlator: not part of kextrace/core.h.
namespace corr {

constexpr std::size_t kFlushBatch = 1024;   // buffered events before a windowed flush
constexpr std::size_t kRadixMin = 1 << 16;  // fewer keys than this: std::sort
constexpr std::size_t kMaxOrphanNotes = 16; // orphans described in anomalies
constexpr std::size_t kLifeRoom = 84; // bytes lent a life for its steps (about 12) before it grows
constexpr uint64_t kPageMask = ~(kPageSize - 1);

// refcount_trail(steps) into out, its room reused (report.cpp; check_life's,
// a life after another).
void refcount_trail(std::span<const Step> steps, std::vector<int32_t>& out);

inline std::string hex(uint64_t v) {
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

// Pages come in runs (a mapping's pfns and addresses are consecutive), and
// the events of a run visit its pages in turn: kRunGroup neighbours keep
// their order in a table (one stretch of slots, two cache lines of a
// pfn -> life table), the groups spread by mix64. A pass over a run then
// misses once per group instead of once per page (bench/README.md).
constexpr unsigned kRunGroupBits = 3;
inline uint64_t run_hash(uint64_t group_key, uint64_t n) noexcept {
    constexpr uint64_t low = (uint64_t{1} << kRunGroupBits) - 1;
    return (mix64(group_key) << kRunGroupBits) | (n & low);
}

// A pfn: its group of kRunGroup neighbours, then its place in it.
struct PfnHash {
    std::size_t operator()(uint64_t pfn) const noexcept {
        return run_hash(pfn >> kRunGroupBits, pfn);
    }
};

struct AddrKeyHash {
    std::size_t operator()(const AddrKey& k) const noexcept {
        const uint64_t n = k.page / kPageSize;
        return run_hash((n >> kRunGroupBits) ^ (static_cast<uint64_t>(k.tgid) << 48), n);
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
// copyable (the buffer stores it by memcpy, no vector per record).
struct Rec {
    uint64_t ts;
    uint64_t pfn;
    uint64_t addr;
    uint64_t arg0;
    uint64_t arg1;
    int64_t ret;
    uint32_t type;
    uint32_t pid;
    uint32_t tid;
    int32_t refcount;
    int32_t mapcount;
    uint32_t stack_id; // 0 = none
};
// No cpu nor probe: nothing reads them, and buffer_all holds a Rec an event.
static_assert(sizeof(Rec) == 72);
// KEX_EV_DRIVER_VMA keeps its payload (VmaInfo) beside the buffer: its Rec's
// ret (always 0 in the record) holds 1 + its index in State::vma_infos.

// A user fault at an address of a kex mapping with no page there yet (mode
// fault: the fault comes before the .fault handler allocates the page).
struct PendingFault {
    Rec ev;
    bool in_write;
};

// What finalize() reads of a life's steps, kept as they come (push_step),
// so that a life whose steps came in time order needs no decoding at the
// end: the first step's time (the base of the others'), the times its
// verdict needs and the start of its refcount trail. A step before the last
// one (or one inserted) marks the life kDecode: settle_life then decodes and
// sorts it as before; a trail that does not fit marks kLongTrail.
struct LifeTrack {
    static constexpr uint8_t kDecode = 1 << 0;
    static constexpr uint8_t kLongTrail = 1 << 1;
    static constexpr uint8_t kZapBeforeFree = 1 << 2;
    static constexpr std::size_t kTrail = 6;

    uint64_t first_ts = 0; // the first step's
    uint64_t last_ts = 0;  // the last step's
    // The first in time order with a non-zero time, as settle_life finds them.
    uint64_t map_ts = 0;
    uint64_t kex_free_ts = 0;
    uint64_t page_free_ts = 0;
    int8_t trail[kTrail] = {}; // refcount_trail(steps), while it fits
    uint8_t trail_n = 0;
    uint8_t flags = 0;

    // s, pushed after the steps so far (first: it is the first).
    void add(const Step& s, bool first) {
        if (first)
            first_ts = s.ts;
        else if (s.ts < last_ts)
            flags |= kDecode;
        last_ts = s.ts;
        if (flags & kDecode)
            return;
        switch (s.kind) {
        case StepKind::insert_ret:
        case StepKind::kex_insert:
            if (s.value) // failed: not mapped
                break;
            [[fallthrough]];
        case StepKind::pte_set:
            map_ts = map_ts ? map_ts : s.ts;
            break;
        case StepKind::kex_free:
            kex_free_ts = kex_free_ts ? kex_free_ts : s.ts;
            break;
        case StepKind::page_free:
            page_free_ts = page_free_ts ? page_free_ts : s.ts;
            break;
        case StepKind::rmap_remove:
            if (!page_free_ts)
                flags |= kZapBeforeFree;
            break;
        case StepKind::followed:
            return; // not in the trail
        default:
            break;
        }
        if (s.refcount == kNoCount || (trail_n && trail[trail_n - 1] == s.refcount))
            return;
        if (trail_n == kTrail || s.refcount < INT8_MIN || s.refcount > INT8_MAX)
            flags |= kLongTrail;
        else
            trail[trail_n++] = static_cast<int8_t>(s.refcount);
    }
};
static_assert(sizeof(LifeTrack) == 48);

// unmap_region / exit_mmap of a tid.
struct UnmapWindow {
    ZapContext kind;
    uint32_t tgid;
};

// The event types whose loss can explain a missing milestone.
inline uint16_t milestones_of(uint32_t type) {
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

inline std::string_view phase_name(uint32_t phase) {
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

} // namespace corr
using namespace corr;

struct Correlator::State {
    explicit State(CorrelatorOptions o) : opts(std::move(o)) {
        all = opts.roots.empty();
        traced.insert(opts.roots.begin(), opts.roots.end());
        r.stacks.emplace_back();
        r.follow_functions = opts.follow_functions;
        if (opts.reserve_pages) {
            r.pages.reserve(opts.reserve_pages);
            open_by_pfn.reserve(opts.reserve_pages);
            by_addr.reserve(opts.reserve_pages);
        }
    }

    CorrelatorOptions opts;
    Losses losses;
    Report r;

    // Input ordering: events wait in buffer; a flush merges the sorted piles
    // their arrival order falls into (piles.h), or, past a few piles, sorts
    // keys (ts and arrival index in one word, sort_keys), not the events,
    // and keeps what is younger than the window.
    ChunkedBuffer<Rec> buffer;
    ChunkedBuffer<Rec> rest;         // reused by flush_until
    RunPiles piles;                  // the buffer's arrivals, in sorted piles
    ScratchArray<uint64_t> keys;     // reused by sort_keys, when the piles gave up
    ScratchArray<uint64_t> keys_tmp; // reused by radix_sort_keys
    std::size_t next_flush = kFlushBatch;
    // The buffered kex allocations, counted as they come (reserve_lives
    // would otherwise read every buffered record once more for them).
    std::size_t buf_allocs = 0;
    uint64_t max_ts = 0;
    uint64_t watermark = 0; // ts of the last processed event
    bool processed_any = false;
    bool late = false; // the event being processed arrived late

    // Process tree.
    bool all = true;
    FlatSet<uint32_t> traced;

    // Page lives.
    FlatMap<uint64_t, uint32_t, PfnHash> open_by_pfn;
    FlatMap<uint64_t, uint32_t, PfnHash> closed_by_pfn; // last life closed per pfn
    FlatMap<AddrKey, uint32_t, AddrKeyHash> by_addr;
    FlatMap<uint64_t, PendingAlloc, PfnHash> pending;
    std::deque<std::pair<uint64_t, uint64_t>> pending_order; // (ts, pfn)
    uint64_t pending_deadline = UINT64_MAX;                  // see expire_pending
    FlatMap<uint64_t, bool, PfnHash> other_pages;            // pfn -> freed
    std::unordered_map<AddrKey, PendingFault, AddrKeyHash> pending_faults;

    // Per-tid windows.
    std::unordered_map<uint32_t, uint32_t> mmap_windows; // tid -> mapping
    FlatMap<uint32_t, UnmapWindow> unmap_windows;
    FlatMap<uint32_t, uint64_t> insert_calls;                        // tid -> pfn
    FlatMap<uint32_t, uint64_t> set_pte_calls;                       // tid -> pfn
    std::unordered_map<uint32_t, std::vector<uint32_t>> open_phases; // tgid -> phases
    // The open phases of a few tgids, as open_phases has them (nullptr: none
    // open), for the count every event adds: the sorted events of the CPUs'
    // processes alternate, and open_phases' order is the unfinished
    // phases' order in the report, so it stays. Cleared whenever
    // open_phases changes.
    struct PhaseCacheSlot {
        bool known = false;
        uint32_t tgid = 0;
        const std::vector<uint32_t>* open = nullptr;
    };
    std::array<PhaseCacheSlot, 8> phase_cache{};

    std::vector<LifeTrack> life_track; // by life (push_step; dropped at finalize)

    // lent to the lives as they open; the report's at finalize()
    Slab<std::byte, std::size_t{1} << 17> step_room;

    FlatMap<uint64_t, uint32_t> stack_ids;                 // content hash -> Report::stacks
    std::vector<std::shared_ptr<const VmaInfo>> vma_infos; // see Rec
    // Other drivers' VMAs (tgid, vm_start) and pages the driver filter left out.
    tsl::robin_set<AddrKey, AddrKeyHash> unfollowed_vmas;
    FlatSet<uint64_t> unfollowed_pfns;

    // --- input -------------------------------------------------------------

    void feed(Event&& e);

    // Sorts keys (in arrival order) by their bits lo_bit..hi_bit, ties in
    // arrival order: an LSD radix sort, 11 bits a pass, only as many passes
    // as the ts range needs (a second of events: 3). Stable, so it gives the
    // (ts, arrival) order at a few linear passes; std::sort's n log n
    // compares were most of finish() for a large buffer (bench/:
    // correlate/buffer_all).
    void radix_sort_keys(unsigned lo_bit, unsigned hi_bit);

    // keys: the buffer's indices in (ts, arrival) order (above them, when the
    // returned mask is not all ones, the time since the oldest event).
    uint64_t sort_keys();

    // Processes buffered events with ts <= limit, in (ts, arrival) order.
    void flush_until(uint64_t limit);

    void flush_all() { flush_until(UINT64_MAX); }

    // Before a flush of everything (finish(); all there is when kextrace
    // buffers everything): room for the lives the buffered kex allocations
    // may open, so Report::pages (200 B a life) and the closed-pfn index grow
    // once, to size, instead of doubling (moving every life each time, and
    // holding up to twice the room). Windowed flushes grow as vectors do.
    void reserve_lives();

    // --- helpers -----------------------------------------------------------

    bool is_traced(uint32_t tgid) const { return all || traced.contains(tgid); }

    void anomaly(uint64_t ts, int32_t life, std::string msg);

    std::string page_name(uint32_t life) const;

    uint32_t intern_stack(std::vector<uint64_t>& st);

    void add_step(uint32_t life, StepKind kind, Rec& ev, uint64_t value, uint8_t flags = 0);
    // Every step a life gets goes through here: life_track keeps the base
    // of its steps' times, which the list would otherwise decode from its
    // first step at each push, and what finalize() reads of them.
    void push_step(uint32_t life, const Step& s);

    uint32_t open_life(uint64_t pfn, uint32_t owner, uint32_t tid);

    void set_uaddr(uint32_t life, uint64_t addr);

    void close_life(uint32_t life);

    void pending_to_other(uint64_t pfn);

    // Pending allocations older than alloc_attach_ns become other
    // allocations; every event asks, so the oldest one's deadline is kept
    // (UINT64_MAX: none pending; it compares as pending_order's front would).
    void expire_pending(uint64_t now) {
        if (pending_deadline < now)
            expire_pending_due(now);
    }
    void expire_pending_due(uint64_t now);
    void set_pending_deadline();

    // --- dispatch ----------------------------------------------------------

    void process(Rec& ev);

    void count_in_phases(const Rec& ev);

    // Returns false when the event is filtered out (not ours).
    bool dispatch(Rec& ev, bool traced_pid);
    bool on_traced_event(Rec& ev);

    // --- phases, mappings, faults -----------------------------------------

    void on_phase(const Rec& ev);

    bool in_write_phase(uint32_t tgid) const;

    // The mapping of tgid that contains addr and is not closed, -1 = none.
    int64_t mapping_at(uint32_t tgid, uint64_t addr) const;

    void on_user_fault(Rec& ev);

    void on_kex_mmap(const Rec& ev);

    void on_kex_mmap_done(const Rec& ev);

    // kex_mmap_mode, kex_batch, vm_insert_pages: about the tid's mapping.
    void on_mapping_event(const Rec& ev);

    void on_vma_close(const Rec& ev);

    // --- allocation --------------------------------------------------------

    void on_kmem_alloc(const Rec& ev);

    void on_kex_alloc(Rec& ev);

    // --- another driver's pages ---------------------------------------------

    // A driver VMA, reported with its first followed page. A VMA of the same
    // process over the same range before it was unmapped meanwhile.
    bool on_driver_vma(const Rec& ev);

    // A page another driver inserts (BPF adopted it at the insert): its life
    // starts here; the allocation came before, unseen, unless the record
    // after it links the allocation (KEX_EV_DRIVER_ALLOC: on_driver_alloc).
    bool on_driver_page(Rec& ev);
    bool on_driver_alloc(const Rec& ev);
    // Another driver's remap_pfn_range into a traced process, or its return:
    // the range on its mapping (no page lives: pfns, no references).
    bool on_driver_pfnmap(const Rec& ev);
    // tid -> the driver mapping its remap_pfn_range call maps into
    std::unordered_map<uint32_t, std::size_t> pfnmap_calls;

    // --- page events -------------------------------------------------------

    static bool can_open_life(uint32_t type);

    uint64_t page_event_pfn(const Rec& ev);
    uint32_t open_life_from_pending(uint64_t pfn, const Rec& ev);
    bool on_page_event(Rec& ev, bool traced_pid);
    // --follow: a followed call joins the page's life (follow.cpp)
    bool on_follow(Rec& ev);

    void check_pte(uint32_t life, uint64_t ts, uint64_t pte);

    void set_pte(uint32_t life, Rec& ev, uint8_t flags);

    // One page event applied to its life: by the path it belongs to. Each
    // answers whether the event was its kind.
    void apply(uint32_t life, Rec& ev, uint8_t flags);
    bool apply_map_step(uint32_t life, Rec& ev, uint8_t flags);
    bool apply_unmap_step(uint32_t life, Rec& ev, uint8_t flags);
    bool apply_kex_step(uint32_t life, const Rec& ev);

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

    void finalize();
    void report_unfinished_calls();
    void infer_mapping_modes();

    // One life's end: settle_life, set_expected, check_life, its first write.
    void finish_life(uint32_t i,
                     const std::unordered_map<uint32_t, std::vector<const Phase*>>& writes);
    struct LifeTimes {
        uint64_t map_ts = 0;      // its first PTE (insert, fault install, kex insert)
        uint64_t kex_free_ts = 0; // kex's put
        uint64_t page_free_ts = 0;
        uint64_t close_ts = 0; // its mapping's close
        bool zap_before_free = false;
        bool insert_failed = false;
        bool never_inserted = false; // kex's error path before any insert
    };
    LifeTimes settle_life(PageLife& p, const LifeTrack& k);
    // The steps of the life settle_life settled, decoded once (life_steps).
    const std::vector<Step>& decoded_steps(const PageLife& p);
    std::vector<Step> life_steps;
    bool life_decoded = false;
    void set_expected(PageLife& p, const LifeTimes& t);
    // The milestones whose events the losses may have taken (all of them
    // after a loss of unknown type): once, not per life.
    uint16_t lost_milestone_mask() const;
    uint16_t lost_milestones = 0;
    // check_life's trails: the life's in reused room, the expected ones by
    // (policy, mode), instead of two vectors allocated a life.
    std::vector<int32_t> trail_scratch;
    std::unordered_map<uint32_t, std::vector<int32_t>> expected_trails;
    const std::vector<int32_t>& expected_trail(Policy policy, MapMode mode);
    void check_life(uint32_t i, const LifeTimes& t, const LifeTrack& k);

    PendingState pending_state() const;
};

} // namespace kextrace
