// kextrace/leaks.h - refcount leak hunting on a correlated Report.
//
// Pure (no I/O): for every page life of a Report, a verdict (freed, leaked,
// still mapped, freed while mapped, held, inconclusive), the counts the page
// was left with, and a reference ledger rebuilt from the refcount read at each
// event: who took which reference, who dropped it, and, for a leaked page, the
// kernel stack of the reference nobody dropped.
//
//   kextrace::Report r = correlator.finish();
//   kextrace::LeakReport leaks = kextrace::assess_leaks(r, {.device_closed = true});
//   if (leaks.bugs()) ... // leaked or freed while mapped
//
// How the ledger is rebuilt. Every event reads page->_refcount once, either
// before its own action (kprobe entries: the insert's get_page, the zap's
// put; kex:kex_page_free, traced before __free_page) or after it
// (kex:kex_page_alloc, the insert's return, kex:kex_page_insert,
// kmem:mm_page_free). The change between two consecutive readings is booked,
// one reference at a time, on the actions that happened in between: first
// the pending action of the earlier event (insert +1, zap -1, kex put -1),
// then the completed action of the later one (an insert seen only at its
// return +1, the final put at mm_page_free -1); what remains is "unexplained"
// and booked at the later event (its stack and site; the earlier event's
// stack when the later one has none), except that a +1 that
// comes with a +1 of the mapcount is a copied PTE (fork). The first reading
// is the allocation's reference, booked at kex_page_alloc (its stack is kex's
// mmap). Drops cancel takes: kex's put the allocation's reference, the zap
// the mapping's (the insert's, or a copied PTE's), anything else the latest
// open take. The takes left open are the references never dropped.
#pragma once

#include <kextrace/core.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kextrace {

enum class Verdict : uint8_t {
    freed,              // mm_page_free seen, with no mapping left
    leaked,             // never freed, no mapping left, nothing open could still free it
    still_mapped,       // never freed, a live mapping holds it: not a leak (yet)
    freed_while_mapped, // mm_page_free while the mapcount was > 0 / no zap before the free
    held,               // never freed, unmapped, but its owner is alive and the device open
                        // (kex), or another driver's file or module is (PageVerdict::holder):
                        // the driver may still free it (at release, at unload)
    inconclusive,       // events for it were lost (or the free cannot be observed), or a
                        // put dropped its last reference but no free followed in the
                        // trace (it ended first): no verdict
};
inline constexpr std::size_t kVerdicts = 6;
// "freed", "leaked", "still mapped", "freed while mapped", "held", "inconclusive"
std::string_view verdict_name(Verdict v);
// The JSON key: "freed", "leaked", "still_mapped", "freed_while_mapped", "held", "inconclusive"
std::string_view verdict_key(Verdict v);

// Whose reference a ledger entry takes or drops.
enum class RefSite : uint8_t {
    alloc,       // alloc_page's reference, booked at kex_page_alloc (its stack: kex's mmap)
    insert,      // vm_insert_page's get_page: the mapping's reference (the insert's stack)
    pte_copy,    // another PTE took one: refcount and mapcount rose together with no event
                 // (fork copies the PTEs of a VM_MIXEDMAP mapping)
    kex_put,     // kex's own put (kex_page_free, its stack)
    zap,         // a mapping's put after its zap (rmap remove -> TLB flush -> release)
    unexplained, // a change no event accounts for: booked at the later event
};
// "alloc", "vm_insert_page", "pte copy (fork)", "kex put", "zap", "unexplained"
std::string_view ref_site_name(RefSite s);
// The JSON key: "alloc", "insert", "pte_copy", "kex_put", "zap", "unexplained"
std::string_view ref_site_key(RefSite s);

inline constexpr uint32_t kNoStep = UINT32_MAX;

// One booking: delta references taken (> 0) or dropped (< 0) by site, at a step.
struct RefChange {
    RefSite site = RefSite::unexplained;
    int32_t delta = 0;                   // +n taken, -n dropped
    uint32_t step = 0;                   // index into PageLife::steps of the event it is booked at
    StepKind kind = StepKind::kex_alloc; // that step's kind
    uint64_t ts = 0;                     // and time
    uint32_t stack_id = 0; // Report::stacks index of the stack it is attributed to, 0 = none
    bool inferred = false; // not seen as a count change: the trace ended first (a zap's
                           // put after the page's last event), or an expected put that
                           // never showed (delta 0)
    int32_t open = 0;      // for takes: references of this entry nobody dropped
    // Unexplained and pte_copy changes happened between two events: the
    // earlier one's step (the later one is `step`); kNoStep otherwise.
    uint32_t from_step = kNoStep;
};

// "at kex_alloc", or "between kex_insert and kex_free" for a change seen
// between two events.
std::string change_where(const PageLife& page, const RefChange& change);

// Per site (and stack): references taken and dropped.
struct LedgerLine {
    RefSite site = RefSite::unexplained;
    uint32_t stack_id = 0;
    StepKind kind = StepKind::kex_alloc; // the step kind it was booked at
    int32_t taken = 0;
    int32_t dropped = 0;
};

struct PageVerdict {
    uint32_t life = 0; // index into Report::pages
    Verdict verdict = Verdict::inconclusive;
    std::string reason; // one line: why this verdict

    // The counts the page was left with after its last event (that event's
    // reading, with a trailing zap's put and mapcount decrement applied),
    // kNoCount when never read.
    int32_t refcount = kNoCount;
    int32_t mapcount = kNoCount;
    // The last event with a count reading, and what it read.
    uint32_t last_step = 0;
    int32_t last_refcount = kNoCount;
    int32_t last_mapcount = kNoCount;

    std::vector<RefChange> changes; // time order
    std::vector<LedgerLine> ledger; // per site and stack, in first-booking order
    // Indexes into changes of the takes never dropped (leaked pages: the
    // references to look for), oldest first.
    std::vector<uint32_t> never_dropped;
    // The stack of the first never-dropped take that has one (0 = none).
    uint32_t leak_stack = 0;
    bool balanced = true; // every drop found a take, no unexplained change
    // Verdict::held of another driver's page: who holds it ("af_packet:
    // socket:[1234] open"), from LeakOptions::driver_holders.
    std::string holder;
};

struct LeakOptions {
    // No kex file is open anywhere any more (the module's refcount fell to 0
    // once kextrace detached, or kex was unloaded): a page neither mapped nor
    // freed can no longer be freed by anyone, it is leaked.
    bool device_closed = true;
    // Processes alive when the trace ended. When !device_closed, an unmapped,
    // unfreed page whose owner is among them is "held", not leaked.
    std::vector<uint32_t> alive;
    // Per Report::mappings index, for another driver's mappings: who may
    // still free their pages when the trace ended ("af_packet: socket:[1234]
    // open", "af_packet: module loaded"), "" when nobody: an unmapped,
    // unfreed page of such a mapping is "held" by it, not leaked.
    std::vector<std::string> driver_holders{};
};

struct LeakReport {
    std::vector<PageVerdict> pages; // one per Report::pages, same order
    std::array<std::size_t, kVerdicts> counts{};
    uint64_t events_lost = 0;  // Report::losses.total()
    uint64_t orphans = 0;      // page events with no life: pages the trace may have missed
    bool device_closed = true; // as given

    std::size_t count(Verdict v) const { return counts[static_cast<std::size_t>(v)]; }
    // Pages a driver author must look at: leaked + freed while mapped.
    std::size_t bugs() const { return count(Verdict::leaked) + count(Verdict::freed_while_mapped); }
};

// The counts right after each step's own action, one per PageLife::steps
// entry: the refcount as the ledger books it (kex's put drops it at
// kex_page_free, the insert's get_page raises it at the insert, a zap's put is
// drawn at the zap although the kernel drops it at the TLB flush that
// precedes the free; a change no event explains at the later event), the
// mapcount as read, with the rmap add or remove of the step applied. kNoCount
// before the first reading. What a plot of the counts over time draws.
struct CountsAfter {
    int32_t refcount = kNoCount;
    int32_t mapcount = kNoCount;
};
std::vector<CountsAfter> counts_after_steps(const PageLife& page);
// The same, of a life's steps decoded (StepList::to_vector): a writer that
// reads them more than once decodes them once.
std::vector<CountsAfter> counts_after_steps(std::span<const Step> steps);

// The verdict and ledger of one page life.
PageVerdict assess_page(const Report& report, uint32_t life, const LeakOptions& opts = {});
// Every page life of the report.
LeakReport assess_leaks(const Report& report, const LeakOptions& opts = {});

} // namespace kextrace
