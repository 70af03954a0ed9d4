// kextrace/core.h - the pure per-page correlation engine.
//
// Input: typed copies of the BPF records of bpf/events.h (decode_event turns a
// ring-buffer record into an Event). Output: a Report that tells, page by page,
// what the kernel did with each page kex mapped: alloc, insert, rmap, PTE,
// first write, zap, kex's own free, the final free, with the refcount and
// mapcount at every step, aligned with the rig's phases.
//
// No libbpf, no I/O, no logging, no exceptions for recoverable errors: the
// session feeds events, asks for a Report, and hands it to kextrace/output.h.
//
//   kextrace::Correlator c({.roots = {rig_tgid}});
//   for (each ring-buffer record) if (auto ev = kextrace::decode_event(rec))
//   c.feed(std::move(*ev)); c.set_losses(losses_read_from_the_map); kextrace::Report r =
//   c.finish();
#pragma once

#include <linux/types.h>

#include "events.h"

#include <kextrace/steps.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kextrace {

static_assert(sizeof(kex_event) == 80, "bpf/events.h: struct kex_event must stay 80 bytes");
static_assert(KEX_EVENT_SIZE(KEX_STACK_DEPTH) == 80 + KEX_STACK_DEPTH * 8);

// Slots of per-type arrays (counts, losses): indexed by the kex_event_type value.
inline constexpr std::size_t kTypeSlots = KEX_LOSS_SLOTS;
// Slots of the BPF "tracking" counters (enum kex_track_slot).
inline constexpr std::size_t kTrackSlots = KEX_TRACK_SLOTS;
inline constexpr int32_t kNoCount = KEX_NO_COUNT;
inline constexpr uint64_t kNoPfn = KEX_NO_PFN;
inline constexpr uint32_t kNoIndex = UINT32_MAX;
inline constexpr uint64_t kPageSize = 4096;

// ---------------------------------------------------------------------------
// Events

// The payload of a KEX_EV_DRIVER_VMA record (struct kex_vma_info), decoded:
// what names a driver's mapping and its owner.
struct VmaInfo {
    uint64_t vma = 0;    // struct vm_area_struct *
    uint64_t f_op = 0;   // the file's file_operations, 0 = no file
    uint64_t mmap = 0;   // the mmap handler (a socket's proto_ops->mmap, else f_op->mmap)
    uint64_t vm_ops = 0; // vma->vm_ops at the first insert (often set after it)
    uint64_t fault = 0;  // vm_ops->fault then, 0 = none
    uint64_t ino = 0;
    uint32_t magic = 0;            // the file system's s_magic
    uint32_t rdev = 0;             // a device node's number (new_encode_dev), 0 otherwise
    uint32_t flags = 0;            // KEX_VMA_NAME_*
    std::vector<std::string> name; // path components, innermost first
    bool operator==(const VmaInfo&) const = default;
};
// The file as /proc/PID/maps names it: "/dev/kex", "socket:[1234]",
// "anon_inode:bpf-map"; a path the walk did not finish starts with ".../";
// "" without a file.
std::string vma_file_name(const VmaInfo& v);
// vm_flags as /proc/PID/smaps's VmFlags would hint them: "rw-s" then the
// mapping kinds that matter here ("mixedmap", "pfnmap", "io", "dontexpand",
// "dontdump"), space-separated.
std::string vm_flags_name(uint64_t vm_flags);
inline constexpr uint32_t kSockfsMagic = 0x534F434B;
inline constexpr uint32_t kAnonInodeFsMagic = 0x09041934;

// A decoded record: struct kex_event field for field, plus its kernel stack
// and, for KEX_EV_DRIVER_VMA, its payload.
struct Event {
    uint64_t ts = 0;   // CLOCK_MONOTONIC ns
    uint32_t type = 0; // enum kex_event_type
    uint32_t cpu = 0;
    uint32_t pid = 0; // tgid
    uint32_t tid = 0;
    uint64_t pfn = KEX_NO_PFN;
    uint64_t addr = 0;
    uint64_t arg0 = 0;
    uint64_t arg1 = 0;
    int64_t ret = 0;
    int32_t refcount = KEX_NO_COUNT;
    int32_t mapcount = KEX_NO_COUNT;
    uint32_t probe = 0;
    uint32_t stack_site = 0;            // --stacks sites: the stack's call site, 0 = none
    std::vector<uint64_t> stack;        // kernel return addresses, innermost first
    std::shared_ptr<const VmaInfo> vma; // KEX_EV_DRIVER_VMA only
};

// True for the values of enum kex_event_type.
bool is_known_event_type(uint32_t type);
// "kex_page_alloc", "insert_ret", ...; "unknown" for other values.
std::string_view event_type_name(uint32_t type);
// The BPF map behind a tracking slot: "traced", "pages", ...; "pfn_unknown"
// for KEX_TRACK_PFN_UNKNOWN; "" for unused slots.
std::string_view track_slot_name(uint32_t slot);
// Inverse of track_slot_name.
std::optional<uint32_t> track_slot_from_name(std::string_view name);
// Inverse of event_type_name.
std::optional<uint32_t> event_type_from_name(std::string_view name);

// Decodes one ring-buffer record. Checks: rec.size() >= sizeof(kex_event),
// stack_len <= KEX_STACK_DEPTH, rec.size() == KEX_RECORD_SIZE(type, stack_len),
// known type. Pure; any byte sequence is safe (no alignment requirement). On failure
// returns nullopt and, if why != nullptr, a one-line reason.
std::optional<Event> decode_event(std::span<const std::byte> rec, std::string* why = nullptr);

// A record's header (struct kex_event) copied out, when the bytes are long
// enough to hold one; decode_event says what else may be wrong with them.
std::optional<kex_event> record_header(std::span<const std::byte> rec);

// The bytes of a ring-buffer sample that belong to its record: samples are
// reserved at full stack depth, only stack_len entries count; a life record
// (--watch) at KEX_LIFE_STEPS, only its header and arg0 records count.
// Unchanged when the sample is too short to say.
std::span<const std::byte> trim_record(std::span<const std::byte> sample);

// The records a KEX_EV_LIFE record carries (kextrace --watch), each one as
// decode_event takes it: its header's arg0 struct kex_event records after the
// header. nullopt (and why) when rec is not a whole life record.
std::optional<std::vector<std::span<const std::byte>>> life_records(std::span<const std::byte> rec,
                                                                    std::string* why = nullptr);

// The record decode_event accepts for ev (stack truncated to KEX_STACK_DEPTH).
// For tests, replay and fuzzing.
std::vector<std::byte> encode_event(const Event& ev);

// ---------------------------------------------------------------------------
// PTE values (x86-64)

struct PteBits {
    uint64_t pfn = 0;      // (pte & 0x000ffffffffff000) >> 12
    bool present = false;  // bit 0
    bool rw = false;       // bit 1
    bool user = false;     // bit 2
    bool accessed = false; // bit 5
    bool dirty = false;    // bit 6
    bool special = false;  // bit 9 (_PAGE_SPECIAL): no struct page behind it for the mm
    bool nx = false;       // bit 63
};
PteBits decode_pte(uint64_t pte);
// Fixed-width flags, one column per bit, '-' when clear: "P RW U A - NX";
// " S" appended for a special PTE (a pfn map's).
std::string pte_flags(uint64_t pte);

// ---------------------------------------------------------------------------
// Report

enum class Policy : uint8_t { drop = 0, keep = 1, unknown = 255 };
std::string_view policy_name(Policy p); // "drop", "keep", "unknown"

// How kex mapped the pages (enum kex_map_mode; kex:kex_mmap_mode, else inferred);
// driver: another driver inserted them (KEX_EV_DRIVER_PAGE), its own policy unknown.
enum class MapMode : uint8_t {
    insert = 0,
    batch = 1,
    fault = 2,
    pfn = 3,
    driver = 4,
    unknown = 255
};
std::string_view map_mode_name(MapMode m); // "insert", "batch", "fault", "pfn", "driver", "unknown"

// Milestones of a page's story; a mask of them says what was seen / expected /
// missing. drop: alloc→insert→rmap→pte→kex_insert→kex free→zap→free,
// refcount 1→2→1→0. keep: the same steps, kex free after the zap (at close).
enum Milestone : uint16_t {
    kMsKmemAlloc = 1 << 0, // kmem:mm_page_alloc (not expected by default)
    kMsKexAlloc = 1 << 1,
    kMsInsert = 1 << 2, // insert entry/return or do_set_pte
    kMsRmapAdd = 1 << 3,
    kMsPteSet = 1 << 4,
    kMsKexInsert = 1 << 5,
    kMsKexFree = 1 << 6,
    kMsZap = 1 << 7, // rmap remove
    kMsPageFree = 1 << 8,
};
inline constexpr uint16_t kMsAll = 0x1ff;
inline constexpr uint16_t kMsDefaultExpected = kMsAll & ~kMsKmemAlloc;
// The story of a page in each mapping mode (before masking out what this
// kernel cannot observe):
//   insert, batch: alloc, insert (vm_insert_page / vm_insert_pages -> the same
//     insert_page_into_pte_locked), rmap, PTE, kex_page_insert, kex free, zap, free.
//   fault: alloc in the .fault handler, do_set_pte / set_pte_range at the first
//     touch (insert + PTE milestones), rmap, kex free at close, zap, free; no
//     kex_page_insert.
//   pfn: alloc, remap_pfn_range (kex_page_insert), kex free at close, free: no
//     insert, rmap, PTE read-back nor zap (special PTEs: vm_normal_page is NULL).
uint16_t mode_expected(MapMode m);
// Names of the milestones in mask, in story order: "insert", "pte", ... ("a, b").
std::string milestone_names(uint16_t mask);

enum class FirstWrite : uint8_t {
    unknown,  // no rig write phase while the page was mapped
    no_fault, // write phase, no user fault on the page: the MMU set the D bit itself
    fault,    // a user fault on the page inside the write phase
};
std::string_view first_write_name(FirstWrite w); // "unknown", "no fault", "fault"

enum class ZapContext : uint8_t {
    none,   // not zapped (yet)
    munmap, // inside unmap_region of the owner (munmap)
    exit,   // inside exit_mmap of the owner (process exit)
    other,  // neither window open (6.12 munmap has no unmap_region, or its events were lost)
};
std::string_view zap_context_name(ZapContext z); // "-", "munmap", "exit", "other"

// Where the page's PTE was read: after it was written (the insert's or the
// fault path's return), or, for a pfn map, where vm_normal_page was given it.
enum class PteSource : uint8_t { none, insert_ret, do_set_pte_ret, pte_lookup };
std::string_view pte_source_name(PteSource s); // "insert_ret", "do_set_pte_ret", "pte_lookup"

// One life of one page: from its allocation to its final free. A pfn reused
// after a free starts a new life.
struct PageLife {
    // Fields by size, widest first: 160 bytes, no padding (bench/: bytes a page).
    uint64_t pfn = KEX_NO_PFN;
    uint64_t uaddr = 0; // user address, 0 = never inserted
    StepList steps;     // time order

    // Summary of the steps.
    uint64_t alloc_ts = 0;       // first alloc step (kmem or kex)
    uint64_t pte = 0;            // PTE value read back, 0 = not observed
    uint64_t pte_addr = 0;       // kernel address of the PTE
    int64_t insert_ret = 0;      // insert return value (0 = ok, -16 = -EBUSY)
    uint64_t first_write_ts = 0; // the fault's ts, 0 without a fault
    uint64_t fault_error_code = 0;
    uint64_t zap_ts = 0;
    uint64_t free_ts = 0;  // kmem:mm_page_free, 0 = not freed
    uint64_t remap_ts = 0; // remap_pfn_range of it (mode pfn), 0 = not seen
    int64_t remap_ret = 0; // its return value

    uint32_t index = kNoIndex;             // kex's page index (kex_page_alloc arg0)
    uint32_t owner = 0;                    // tgid that mapped it
    int32_t mapping = -1;                  // index into Report::mappings, -1 = none
    uint32_t kex_free_reason = UINT32_MAX; // enum kex_free_reason, UINT32_MAX = none
    uint32_t kex_faults = 0;               // kex:kex_fault handing this page out (mode fault)
    uint32_t kex_fault_flags = 0;          // the first one's KEX_FAULT_* flags
    uint32_t anomalies = 0;                // entries in Report::anomalies about this life

    uint16_t seen = 0;         // Milestone mask
    uint16_t expected = 0;     // Milestone mask for this page's policy / outcome
    uint16_t missing = 0;      // expected & ~seen
    uint16_t missing_lost = 0; // subset of missing whose event types had losses

    Policy policy = Policy::unknown;
    MapMode mode = MapMode::unknown; // its mapping's, or inferred from the page's events
    PteSource pte_source = PteSource::none;
    FirstWrite first_write = FirstWrite::unknown;
    ZapContext zap_context = ZapContext::none;
    bool zap_dirty = false;          // set_page_dirty at the zap: the MMU had set D
    bool free_batched = false;       // mm_page_free_batched followed (release_pages path)
    bool open_at_end = false;        // no page_free before finish()
    bool by_fault = false;           // another driver's page, adopted at a fault
                                     // (vm_ops->fault), not an insert
    bool alloc_before_trace = false; // another driver's page: the life starts at its
                                     // insert (KEX_EV_DRIVER_PAGE), its allocation unseen
                                     // (false once KEX_EV_DRIVER_ALLOC linked it: then
                                     // its first step is that kmem_alloc)

    bool complete() const { return missing == 0; }
};
static_assert(sizeof(void*) != 8 || sizeof(PageLife) == 160, "PageLife grew: keep it packed");

// Refcounts / mapcounts observed along the steps, consecutive duplicates and
// unknowns dropped: {1, 2, 1, 0}.
std::vector<int32_t> refcount_trail(const PageLife& p);
std::vector<int32_t> mapcount_trail(const PageLife& p);
// The same of a life's steps decoded (StepList::to_vector), for a reader that
// reads them more than once.
std::vector<int32_t> refcount_trail(std::span<const Step> steps);
std::vector<int32_t> mapcount_trail(std::span<const Step> steps);
int32_t max_mapcount(std::span<const Step> steps);
// The most PTEs that mapped it at once, as its events read the mapcount: 2
// for a BPF ring buffer's data pages (each mapped at two addresses of one
// VMA) or a page whose PTE a fork copied; 0 when never read.
int32_t max_mapcount(const PageLife& p);
// The trail expected for a clean life under policy: {1, 2, 1, 0}.
std::vector<int32_t> expected_refcount_trail(Policy p);
// ... and in a mapping mode: pfn {1, 0} (the mapping takes no reference).
std::vector<int32_t> expected_refcount_trail(Policy p, MapMode m);

// One kex mmap (kex:kex_mmap .. kex:kex_mmap_done), or another driver's VMA,
// and what became of it.
struct Mapping {
    uint32_t tgid = 0;
    uint32_t tid = 0;
    uint64_t vm_start = 0;
    uint64_t vm_end = 0;
    uint32_t pages = 0; // requested
    Policy policy = Policy::unknown;
    uint64_t ts = 0;                // kex_mmap
    uint64_t done_ts = 0;           // kex_mmap_done, 0 = not seen
    int64_t ret = 0;                // kex_mmap_done ret
    uint32_t mapped = 0;            // kex_mmap_done arg0
    uint32_t lives = 0;             // PageLife entries attributed to it
    uint64_t other_allocations = 0; // mm_page_alloc in its window never confirmed by kex
    uint64_t close_ts = 0;          // kex_vma_close, 0 = not seen
    MapMode mode = MapMode::unknown;
    bool mode_inferred = false;   // no kex:kex_mmap_mode: guessed from the events
    uint32_t batch_calls = 0;     // kex:kex_batch (mode batch: one per vm_insert_pages)
    uint32_t vm_insert_pages = 0; // vm_insert_pages calls seen by the kprobe
    uint32_t remap_pfn_calls = 0; // remap_pfn_range calls of its pages (mode pfn)
    uint32_t faults = 0;          // kex:kex_fault on it (mode fault)
    // Another driver's VMA (KEX_EV_DRIVER_VMA), not a kex mmap: vm_start /
    // vm_end / tgid / tid / ts as above, policy unknown, mode driver.
    bool driver = false;
    uint64_t vm_flags = 0;
    std::shared_ptr<const VmaInfo> vma; // its file and its owner's pointers
    uint32_t stack_id = 0;              // the call chain that mapped its first page
    bool by_fault = false;              // its first page came from its vm_ops->fault, not an insert
    uint32_t allocs_seen = 0;    // its lives whose allocation was linked (KEX_EV_DRIVER_ALLOC)
    uint32_t alloc_stack_id = 0; // the first such allocation's call chain
    // Another driver's pfn mapping (KEX_EV_DRIVER_PFNMAP): special PTEs, no
    // struct page reference, no rmap, no page lives. A range at mmap
    // (remap_pfn_range) or one pfn at a fault (vmf_insert_pfn_prot).
    struct PfnMap {
        uint64_t pfn = 0;   // the first
        uint64_t addr = 0;  // user address
        uint64_t bytes = 0; // size asked
        uint64_t ts = 0;
        std::optional<int64_t> ret; // its return, unset when not seen
        bool at_fault = false;      // vmf_insert_pfn_prot: ret is a vm_fault_t
    };
    std::vector<PfnMap> pfnmaps;
};

// One rig phase (KEX_EV_RIG_PHASE begin/end pair) of one process.
struct Phase {
    std::string name;   // "mmap", "write", "munmap"
    uint32_t begin = 0; // enum kex_phase of the begin marker
    uint32_t tgid = 0;
    uint64_t start = 0;
    uint64_t end = 0;                          // 0 while open
    bool closed = false;                       // the end marker was seen
    uint64_t addr = 0;                         // the marker's addr
    uint64_t arg1 = 0;                         // the marker's arg1
    std::array<uint32_t, kTypeSlots> counts{}; // events of this tgid inside, per type
    uint64_t kernel_events = 0; // sum of counts, without phase markers and user faults
    uint64_t user_faults = 0;
};

// Losses the caller knows about; the correlator uses them to say why a page's
// story has a hole.
struct Losses {
    std::array<uint64_t, kTypeSlots> per_type{}; // the BPF kex_counters.lost
    uint64_t ring = 0;                           // ring-buffer records dropped without a type
    uint64_t decode_errors = 0;                  // records decode_event rejected
    // The BPF "tracking" map: per map, updates that failed (full, no memory),
    // so whatever that entry was for went untraced; part of total(). The
    // KEX_TRACK_PFN_UNKNOWN slot is not a loss (see pfn_unknown()).
    std::array<uint64_t, kTrackSlots> map_full{};
    uint64_t map_failures() const; // the map slots summed
    // Non-kex pages whose pfn could not be computed (reported as unknown).
    uint64_t pfn_unknown() const { return map_full[KEX_TRACK_PFN_UNKNOWN]; }
    uint64_t total() const;
};

struct Anomaly {
    uint64_t ts = 0;
    int32_t life = -1;   // index into Report::pages, -1 = not about one page
    std::string message; // one human-readable line
};

struct Report {
    // The arena the lives' steps borrow their room from (PageLife::steps),
    // shared by copies of the report (whose lives own their steps). Declared
    // first, destroyed last.
    std::shared_ptr<const void> step_arena;
    std::vector<Phase> phases;                 // start order
    std::vector<PageLife> pages;               // alloc order
    std::vector<Mapping> mappings;             // kex_mmap order
    std::array<uint64_t, kTypeSlots> counts{}; // accepted events per type
    Losses losses;
    std::vector<Anomaly> anomalies;
    uint64_t anomalies_dropped = 0;           // beyond CorrelatorOptions::max_anomalies
    uint16_t observable = kMsDefaultExpected; // CorrelatorOptions::expected: the milestones
                                              // the attached probes can show at all

    uint64_t events = 0;                  // fed
    uint64_t filtered = 0;                // not from the traced process tree
    uint64_t orphans = 0;                 // page events for a pfn with no life
    uint64_t late = 0;                    // arrived after the reorder window had passed their ts
    uint64_t other_allocations = 0;       // mm_page_alloc never confirmed by kex (page tables, ...)
    uint64_t other_frees = 0;             // mm_page_free of such pages
    uint64_t unfollowed_driver_pages = 0; // other drivers' pages the driver filter left out
    uint64_t first_ts = 0;
    uint64_t last_ts = 0;
    std::vector<uint32_t> tgids; // the traced processes (empty: all)
    // --follow: the followed functions by id (StepKind::followed), and the
    // calls on a tracked pfn outside any life (kextrace/follow.h)
    std::vector<std::string> follow_functions;
    uint64_t follow_unmatched = 0;

    std::vector<std::vector<uint64_t>> stacks; // [0] is the empty stack

    std::span<const uint64_t> stack(uint32_t id) const;
    std::size_t incomplete_pages() const;
};

// ---------------------------------------------------------------------------
// The correlator

struct CorrelatorOptions {
    std::vector<uint32_t> roots;            // traced root tgids and their descendants; empty = all
    uint64_t reorder_window_ns = 0;         // 0 = buffer everything, sort at finish()
    uint64_t alloc_attach_ns = 5'000'000;   // kmem alloc → kex alloc on the same tid
    uint16_t expected = kMsDefaultExpected; // clear bits for probes that did not attach
    std::size_t reserve_pages = 0;
    std::size_t max_anomalies = 1000;
    // Which other drivers' mappings to follow (kextrace --driver / --file),
    // asked once per VMA; empty: every one. A VMA left out is not reported and
    // its pages' events are filtered (Report::unfollowed_driver_pages).
    std::function<bool(const VmaInfo&)> follow_driver_vma{};
    // --follow: the name of each function id of KEX_EV_FOLLOW (Report::follow_functions)
    std::vector<std::string> follow_functions{};
};

// What the correlator still holds; all zero after finish().
struct PendingState {
    std::size_t buffered = 0;    // events waiting for the reorder window
    std::size_t kmem_allocs = 0; // mm_page_alloc waiting for a kex alloc
    std::size_t open_lives = 0;
    std::size_t windows = 0; // open insert / unmap / exit / mmap windows
    bool empty() const { return buffered + kmem_allocs + open_lives + windows == 0; }
};

class Correlator {
  public:
    explicit Correlator(CorrelatorOptions opts = {});
    ~Correlator();
    Correlator(Correlator&&) noexcept;
    Correlator& operator=(Correlator&&) noexcept;
    Correlator(const Correlator&) = delete;
    Correlator& operator=(const Correlator&) = delete;

    // Events in any order (CPUs interleave); sorted by ts before use.
    void feed(const Event& ev);
    void feed(Event&& ev);
    // Add a root tgid after construction (e.g. the child the session spawned);
    // a correlator built with no roots (all processes) then follows only these.
    void trace_tgid(uint32_t tgid);
    // Read at finish(); may be called any time before.
    void set_losses(const Losses& losses);
    // Processes every buffered event now, as if the reorder window had passed
    // (an event older than those arrives later is counted as late). Lets a
    // caller (or a test) inspect pending() on a fully processed stream.
    void flush();
    // Processes everything buffered and returns the report; the correlator is
    // then empty (pending().empty()) and may be fed again for a new report.
    Report finish();
    PendingState pending() const;

  private:
    struct State;
    std::unique_ptr<State> s_;
};

} // namespace kextrace
