// kextrace/stream_builder.h - synthetic event streams for tests (header only).
//
// Every helper appends one Event at ts += step, as the BPF side would emit it
// (field use as in bpf/events.h and bpf/*.bpf.c). story() appends the
// whole life of a kex mapping: the rig's phases, kex's mmap, per page the
// alloc/insert path, the write phase, munmap with its zap and frees.
//
//   kextrace::StreamBuilder b;
//   b.story({.pages = 8});
//   kextrace::Correlator c;
//   for (auto& ev : b.events) c.feed(ev);
#pragma once

#include <kextrace/core.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kextrace {

// The VMA record of a perf event's ring buffer (a driver that maps on
// fault): perf_fops, vm_ops->fault perf_mmap_fault at kPerfMmapFault.
inline constexpr uint64_t kPerfMmapFault = 0xffffffff81300000;
inline VmaInfo perf_ring_vma() {
    VmaInfo v;
    v.f_op = 0xffffffff82b00000;
    v.fault = kPerfMmapFault;
    v.magic = kAnonInodeFsMagic;
    v.flags = KEX_VMA_NAME_ROOT;
    v.name = {"[perf_event]"};
    return v;
}

class StreamBuilder {
  public:
    struct Story {
        uint32_t pages = 8;
        uint64_t vm_start = 0x7f0000000000;
        uint64_t pfn0 = 0x1000; // page i has pfn pfn0 + i
        Policy policy = Policy::drop;
        bool write = true;                   // run the write phase (the MMU sets D: zap dirty)
        bool exit_instead_of_munmap = false; // zap in exit_mmap, no munmap phase
        bool page_table_alloc = false;       // an unclaimed mm_page_alloc in the mmap window
        uint64_t page_table_pfn = 0x9999;
        int fail_at = -1; // kex's fail_at: page fail_at's insert returns -ENOMEM
    };

    explicit StreamBuilder(uint32_t pid = 100, uint64_t t0 = 1'000'000'000, uint64_t step = 100)
        : pid_(pid), tid_(pid), ts_(t0), step_(step) {}

    std::vector<Event> events;

    uint64_t ts() const { return ts_; }
    StreamBuilder& pid(uint32_t pid) {
        pid_ = tid_ = pid;
        return *this;
    }
    StreamBuilder& tid(uint32_t tid) {
        tid_ = tid;
        return *this;
    }
    StreamBuilder& cpu(uint32_t cpu) {
        cpu_ = cpu;
        return *this;
    }
    StreamBuilder& advance(uint64_t ns) {
        ts_ += ns;
        return *this;
    }

    static uint64_t pte_for(uint64_t pfn, bool dirty = false) {
        // PAGE_SHARED: P RW U A NX, D only once written
        return (1ULL << 63) | (pfn << 12) | 0x27 | (dirty ? 0x40 : 0);
    }

    Event& add(uint32_t type) {
        ts_ += step_;
        Event& e = events.emplace_back();
        e.ts = ts_;
        e.type = type;
        e.cpu = cpu_;
        e.pid = pid_;
        e.tid = tid_;
        return e;
    }

    Event& page(uint32_t type, uint64_t pfn, uint32_t index, int32_t ref, int32_t map) {
        Event& e = add(type);
        e.pfn = pfn;
        e.arg0 = index;
        e.refcount = ref;
        e.mapcount = map;
        return e;
    }

    Event& phase(uint32_t phase, uint64_t addr = 0, uint64_t pages = 0) {
        Event& e = add(KEX_EV_RIG_PHASE);
        e.arg0 = phase;
        e.addr = addr;
        e.arg1 = pages;
        return e;
    }
    Event& kex_mmap(uint64_t vm_start, uint32_t pages, Policy policy) {
        Event& e = add(KEX_EV_KEX_MMAP);
        e.addr = vm_start;
        e.arg0 = vm_start + pages * kPageSize;
        e.arg1 = pages | static_cast<uint64_t>(policy == Policy::keep ? 1 : 0) << 32;
        return e;
    }
    Event& kex_mmap_done(uint64_t vm_start, uint32_t mapped, int64_t ret = 0) {
        Event& e = add(KEX_EV_KEX_MMAP_DONE);
        e.addr = vm_start;
        e.arg0 = mapped;
        e.ret = ret;
        return e;
    }
    Event& kmem_alloc(uint64_t pfn) {
        Event& e = page(KEX_EV_PAGE_ALLOC, pfn, 0, 1, 0);
        e.arg0 = 0; // order
        return e;
    }
    Event& kex_alloc(uint64_t pfn, uint32_t index) {
        Event& e = page(KEX_EV_KEX_PAGE_ALLOC, pfn, index, 1, 0);
        e.stack = {0xffffffffc0001000, 0xffffffff81200000};
        return e;
    }
    Event& insert(uint64_t pfn, uint32_t index) {
        Event& e = page(KEX_EV_INSERT, pfn, index, 1, 0);
        e.arg1 = 0xffff888000100000 + index * 8; // PTE address
        return e;
    }
    Event& rmap_add(uint64_t pfn, uint32_t index) {
        return page(KEX_EV_RMAP_ADD, pfn, index, 2, 0);
    }
    Event& insert_ret(uint64_t pfn, uint32_t index, uint64_t pte, int64_t ret = 0) {
        Event& e = page(KEX_EV_INSERT_RET, pfn, 0, ret ? 1 : 2, ret ? 0 : 1);
        e.ret = ret;
        e.arg0 = pte;
        e.arg1 = 0xffff888000100000 + index * 8;
        return e;
    }
    Event& kex_insert(uint64_t pfn, uint64_t uaddr, uint32_t index, int64_t ret = 0) {
        Event& e = page(KEX_EV_KEX_PAGE_INSERT, pfn, index, ret ? 1 : 2, ret ? 0 : 1);
        e.addr = uaddr;
        e.ret = ret;
        return e;
    }
    Event& kex_free(uint64_t pfn, uint32_t index, uint32_t reason, int32_t ref, int32_t map) {
        Event& e = page(KEX_EV_KEX_PAGE_FREE, pfn, index, ref, map);
        e.arg1 = reason;
        e.stack = {0xffffffffc0001100, 0xffffffff81200100};
        return e;
    }
    Event& set_dirty(uint64_t pfn, uint32_t index, int32_t ref) {
        return page(KEX_EV_SET_DIRTY, pfn, index, ref, 1);
    }
    Event& rmap_remove(uint64_t pfn, uint32_t index, int32_t ref) {
        return page(KEX_EV_RMAP_REMOVE, pfn, index, ref, 1);
    }
    Event& page_free(uint64_t pfn, uint32_t index) {
        Event& e = page(KEX_EV_PAGE_FREE, pfn, 0, 0, 0);
        e.arg1 = index;
        e.stack = {0xffffffff81300000, 0xffffffff81200200};
        return e;
    }
    Event& page_free_batched(uint64_t pfn, uint32_t index) {
        Event& e = page(KEX_EV_PAGE_FREE_BATCHED, pfn, 0, KEX_NO_COUNT, KEX_NO_COUNT);
        e.arg1 = index;
        return e;
    }
    Event& user_fault(uint64_t addr, uint64_t error_code = 0x7) {
        Event& e = add(KEX_EV_USER_FAULT);
        e.addr = addr;
        e.arg0 = error_code;
        e.arg1 = 0x401000;
        return e;
    }
    Event& window(uint32_t type, uint64_t start = 0, uint64_t end = 0) {
        Event& e = add(type);
        e.addr = start;
        e.arg0 = end;
        return e;
    }
    // Another driver's VMA (KEX_EV_DRIVER_VMA), reported with its first page.
    Event& driver_vma(uint64_t vm_start, uint32_t pages, const VmaInfo& vma) {
        Event& e = add(KEX_EV_DRIVER_VMA);
        e.addr = vm_start;
        e.arg0 = vm_start + pages * kPageSize;
        e.arg1 = 0xfb | 0x10000000; // rw-s mayread.. mixedmap
        e.vma = std::make_shared<const VmaInfo>(vma);
        e.stack = {0xffffffff81001000, 0xffffffffc0400300};
        return e;
    }
    // A page of it adopted at its insert (KEX_EV_DRIVER_PAGE), its counts then.
    Event& driver_page(uint64_t pfn, uint64_t vm_start, uint64_t uaddr, int32_t ref) {
        Event& e = page(KEX_EV_DRIVER_PAGE, pfn, 0, ref, 0);
        e.arg0 = vm_start;
        e.addr = uaddr;
        e.arg1 = 0xffffea0000000000 + pfn * 64; // struct page *
        return e;
    }
    // The allocation of a page just adopted (KEX_EV_DRIVER_ALLOC): the block
    // at head of order, allocated at alloc_ts by the builder's pid.
    Event& driver_alloc(uint64_t pfn, uint64_t alloc_ts, uint64_t head, uint32_t order) {
        Event& e = page(KEX_EV_DRIVER_ALLOC, pfn, 0, KEX_NO_COUNT, KEX_NO_COUNT);
        e.arg0 = alloc_ts;
        e.arg1 = head;
        e.ret = order;
        e.stack = {0xffffffff81200000, 0xffffffff81c00400}; // __alloc_pages, the driver
        return e;
    }
    // An AF_PACKET-like ring of pages: mapped by the driver's mmap (insert,
    // rmap, PTE with a reference each), unmapped (zap, the mapping's put),
    // freed at close (the driver's own reference, no batch).
    // With alloc_ts, each page's allocation (one block of order 3 at pfn0
    // allocated then) is linked.
    void driver_ring(uint64_t vm_start, uint32_t pages, uint64_t pfn0, const VmaInfo& vma,
                     bool close = true, uint64_t alloc_ts = 0) {
        for (uint32_t i = 0; i < pages; ++i) {
            if (i == 0)
                driver_vma(vm_start, pages, vma);
            driver_page(pfn0 + i, vm_start, vm_start + i * kPageSize, 1);
            if (alloc_ts)
                driver_alloc(pfn0 + i, alloc_ts, pfn0, 3);
            insert(pfn0 + i, i);
            rmap_add(pfn0 + i, i);
            insert_ret(pfn0 + i, i, pte_for(pfn0 + i));
        }
        window(KEX_EV_UNMAP_REGION, vm_start, vm_start + pages * kPageSize);
        for (uint32_t i = 0; i < pages; ++i)
            rmap_remove(pfn0 + i, i, 2);
        window(KEX_EV_UNMAP_REGION_RET);
        if (close)
            for (uint32_t i = 0; i < pages; ++i)
                page_free(pfn0 + i, i);
    }
    // A perf-like ring mapped on fault: each page handed back by the
    // driver's vm_ops->fault (with a reference for the mapping) at its first
    // touch and installed by the fault path (do_set_pte, rmap, the PTE read
    // at return, written: dirty), zapped at munmap, freed at close.
    void driver_fault_ring(uint64_t vm_start, uint32_t pages, uint64_t pfn0, VmaInfo vma) {
        vma.flags |= KEX_VMA_BY_FAULT;
        for (uint32_t i = 0; i < pages; ++i) {
            const uint64_t pfn = pfn0 + i, addr = vm_start + i * kPageSize;
            user_fault(addr, 0x6);
            if (i == 0)
                driver_vma(vm_start, pages, vma);
            driver_page(pfn, vm_start, addr, 2).ret = 1;
            page(KEX_EV_DO_SET_PTE, pfn, 0, 2, 0).addr = addr;
            rmap_add(pfn, i);
            Event& r = page(KEX_EV_DO_SET_PTE_RET, pfn, 0, 2, 1);
            r.addr = addr;
            r.arg0 = pte_for(pfn, true);
        }
        window(KEX_EV_UNMAP_REGION, vm_start, vm_start + pages * kPageSize);
        for (uint32_t i = 0; i < pages; ++i)
            rmap_remove(pfn0 + i, i, 2);
        window(KEX_EV_UNMAP_REGION_RET);
        for (uint32_t i = 0; i < pages; ++i)
            page_free(pfn0 + i, i);
    }
    Event& fork(uint32_t child) {
        Event& e = add(KEX_EV_PROC_FORK);
        e.arg0 = child;
        return e;
    }

    // The mmap half of a story: phase, kex_mmap, per page alloc → insert →
    // (drop) kex free, kex_mmap_done.
    void map(const Story& s) {
        phase(KEX_PHASE_MMAP_BEGIN, 0, s.pages);
        kex_mmap(s.vm_start, s.pages, s.policy);
        uint32_t mapped = 0;
        int64_t ret = 0;
        for (uint32_t i = 0; i < s.pages; ++i) {
            const uint64_t pfn = s.pfn0 + i;
            const uint64_t uaddr = s.vm_start + i * kPageSize;
            if (s.page_table_alloc && i == 0)
                kmem_alloc(s.page_table_pfn); // pte_alloc inside vm_insert_page
            kmem_alloc(pfn);
            kex_alloc(pfn, i);
            if (static_cast<int>(i) == s.fail_at) {
                ret = -12;
                kex_insert(pfn, uaddr, i, ret);
                kex_free(pfn, i, KEX_FREE_ERROR, 1, 0);
                page_free(pfn, i);
                break;
            }
            insert(pfn, i);
            rmap_add(pfn, i);
            insert_ret(pfn, i, pte_for(pfn));
            kex_insert(pfn, uaddr, i);
            ++mapped;
            if (s.policy == Policy::drop)
                kex_free(pfn, i, KEX_FREE_AFTER_INSERT, 2, 1);
        }
        kex_mmap_done(s.vm_start, mapped, ret);
        phase(KEX_PHASE_MMAP_END, s.vm_start, s.pages);
    }

    void write(const Story& s) {
        phase(KEX_PHASE_WRITE_BEGIN, s.vm_start, s.pages);
        advance(10'000); // the stores: the MMU sets D, no kernel event
        phase(KEX_PHASE_WRITE_END, s.vm_start, s.pages);
    }

    // The munmap (or exit) half: zap every page, release, free.
    void unmap(const Story& s) {
        const bool keep = s.policy == Policy::keep;
        const int32_t ref = keep ? 2 : 1; // refcount while the zap runs
        const uint32_t n = s.fail_at >= 0 ? static_cast<uint32_t>(s.fail_at) : s.pages;
        const uint64_t end = s.vm_start + s.pages * kPageSize;
        if (!s.exit_instead_of_munmap) {
            phase(KEX_PHASE_MUNMAP_BEGIN, s.vm_start, s.pages);
            window(KEX_EV_SYS_MUNMAP, s.vm_start, s.pages * kPageSize);
        }
        window(s.exit_instead_of_munmap ? KEX_EV_EXIT_MMAP : KEX_EV_UNMAP_REGION, s.vm_start, end);
        for (uint32_t i = 0; i < n; ++i) {
            if (s.write)
                set_dirty(s.pfn0 + i, i, ref);
            rmap_remove(s.pfn0 + i, i, ref);
        }
        if (!keep) // release_pages: the mapping's reference was the last one
            for (uint32_t i = 0; i < n; ++i) {
                page_free(s.pfn0 + i, i);
                page_free_batched(s.pfn0 + i, i);
            }
        window(s.exit_instead_of_munmap ? KEX_EV_EXIT_MMAP_RET : KEX_EV_UNMAP_REGION_RET);
        window(KEX_EV_KEX_VMA_CLOSE, s.vm_start, end);
        if (keep) // the last VMA closed: kex drops its references
            for (uint32_t i = 0; i < n; ++i) {
                kex_free(s.pfn0 + i, i, KEX_FREE_AT_CLOSE, 1, 0);
                page_free(s.pfn0 + i, i);
            }
        if (!s.exit_instead_of_munmap) {
            window(KEX_EV_SYS_MUNMAP_RET);
            phase(KEX_PHASE_MUNMAP_END, s.vm_start, s.pages);
        }
    }

    void story(const Story& s) {
        map(s);
        if (s.write && s.fail_at < 0)
            write(s);
        if (s.fail_at >= 0 && s.fail_at == 0)
            return; // nothing was mapped
        unmap(s);
    }

    // Drops the events for which pred is true (to simulate missing events).
    void drop_if(const std::function<bool(const Event&)>& pred) {
        events.erase(std::remove_if(events.begin(), events.end(), pred), events.end());
    }

  private:
    uint32_t pid_;
    uint32_t tid_;
    uint32_t cpu_ = 0;
    uint64_t ts_;
    uint64_t step_;
};

// b's events through a Correlator: losses set, everything flushed; the state
// left pending after the flush goes to *pending when asked (tests expect none).
inline Report correlate(const StreamBuilder& b, CorrelatorOptions opts = {.roots = {100}},
                        const Losses& losses = {}, PendingState* pending = nullptr) {
    Correlator c(std::move(opts));
    for (const Event& e : b.events)
        c.feed(e);
    c.set_losses(losses);
    c.flush();
    if (pending)
        *pending = c.pending();
    return c.finish();
}

// Every event type the decoder knows.
inline std::vector<uint32_t> known_event_types() {
    std::vector<uint32_t> types;
    for (uint32_t t = 0; t < kTypeSlots; ++t)
        if (is_known_event_type(t))
            types.push_back(t);
    return types;
}

// A random event of one of types, among 4 pids, 16 pfns and 16 addresses:
// what the engines must survive. wild_counts: now and then a refcount or
// mapcount no kernel would read.
template <class Rng>
Event random_event(Rng& rng, const std::vector<uint32_t>& types, bool wild_counts) {
    Event e;
    e.ts = rng() % 100000;
    e.type = types[rng() % types.size()];
    e.pid = static_cast<uint32_t>(1 + rng() % 4);
    e.tid = static_cast<uint32_t>(e.pid + rng() % 2);
    e.pfn = rng() % 8 ? 0x1000 + rng() % 16 : kNoPfn;
    e.addr = 0x7f0000000000 + (rng() % 16) * kPageSize;
    e.arg0 = rng() % 8;
    e.arg1 = rng() % 3 ? rng() % 4 : rng();
    e.ret = rng() % 4 ? 0 : -16;
    auto count = [&](uint64_t range) {
        if (!wild_counts)
            return static_cast<int32_t>(rng() % range);
        return rng() % 16 ? static_cast<int32_t>(rng() % range) : static_cast<int32_t>(rng());
    };
    e.refcount = count(4);
    e.mapcount = count(3);
    if (rng() % 4 == 0)
        e.stack = {rng(), rng()};
    return e;
}

// Every anomaly's message, one a line.
inline std::string anomaly_text(const Report& r) {
    std::string s;
    for (const Anomaly& a : r.anomalies)
        s += a.message + "\n";
    return s;
}

} // namespace kextrace
