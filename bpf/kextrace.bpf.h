/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kextrace.bpf.h - what every kextrace BPF program shares: configuration,
 * maps and helpers. The programs live in one file per kernel path they
 * watch (insert, fault, modes, unmap, page_alloc, kex_tp and process
 * .bpf.c), linked into one object (bpftool gen object) with one skeleton;
 * the configuration and the shared maps are __weak, so every file may
 * define them and the linker keeps one. A map only one file uses is
 * defined in that file.
 *
 * Page identity: tp/kex/kex_page_alloc (which carries both the pfn and the
 * struct page pointer) enters a page into one map, "pfns" (pfn -> struct
 * page *, index). A program that has a struct page * turns it into its pfn
 * by arithmetic (the vmemmap array's base, learned from the same tracepoint:
 * kex_page()) and looks that up, so a page costs one map update, not one
 * per key. Every page-level kprobe returns at once for any other page, so a
 * busy machine does not flood the ring buffer; kmem:mm_page_free emits the
 * page and marks it freed. Process-level events (syscalls, faults, the rig's USDT markers, the
 * unmap paths) are kept for the tgids in "traced" only: user space seeds it
 * with the command's pid, sched_process_fork adds children. With trace_all
 * (kextrace --all), kex's own tracepoints report every process.
 *
 * Configuration is const volatile only, set by the loader between open and
 * load from what it resolved on this kernel (argument positions of clones,
 * the munmap entry point). Programs whose attach point does not exist are
 * not loaded at all (the loader turns their autoload off).
 *
 * Records go through one ring buffer with reserve/submit and no wakeup
 * (user space drains it periodically) unless it is filling up; a failed
 * reserve counts as lost under the record's event type (counters.bpf.h), a
 * failed update of a map the trace depends on in "tracking" (events.h).
 *
 * Function returns: an fexit program (BPF trampoline, the arguments at hand)
 * where the kernel's BTF has the function, a kretprobe where it does not
 * (compiler clones such as insert_page_into_pte_locked.constprop.0); the
 * plan chooses, fexit_probes tells the entry programs. A function is never
 * watched by two mechanisms: with an fexit its entry is an fentry (one
 * trampoline), with a kretprobe a kprobe (one kprobe). A kprobe and a
 * trampoline on one function share its ftrace site, and on 6.1 every call
 * through a shared site looks its trampoline up in ftrace's global
 * direct_functions hash, from which a detach frees entries without a grace
 * period (docs/hardening.md).
 *
 * "traced" holds a thread group from its fork (or user space's seed) until
 * its leader's task_struct is freed (sched_process_free: every thread has
 * exited and the group was reaped), so a reused pid is not traced and the
 * map holds only live groups.
 */
#ifndef KEXTRACE_BPF_H
#define KEXTRACE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "kextrace.h"
#include "kex_tp.h"

/* --- configuration, set by the loader before load ------------------------ */

/* argument positions (1-based) of the resolved symbols, see probe_plan.cpp */
const volatile __u8 insert_pte_arg __weak = 2;		/* .constprop.0 / .isra.0: pte in PARM2 */
const volatile __u8 insert_page_arg __weak = 3;	/* ... and the page in PARM3 */
const volatile __u8 rmap_add_page_arg __weak = 1;	/* page_add_file_rmap(page, ...) */
const volatile __u8 rmap_remove_page_arg __weak = 1;	/* page_remove_rmap(page, ...) */
const volatile __u8 dirty_page_arg __weak = 1;		/* set_page_dirty(page) */
const volatile __u8 set_pte_page_arg __weak = 2;	/* do_set_pte(vmf, page, addr) */
const volatile __u8 set_pte_addr_arg __weak = 3;
const volatile __u8 unmap_mode __weak = KEX_UNMAP_REGION_61;
/* report do_set_pte for any page of a traced process, not only kex pages */
const volatile bool fault_all_pages __weak = false;
const volatile bool capture_stacks __weak = true;
/*
 * --stacks=sites: a record's stack is walked once per call site
 * (stack_sites) and later records of the site name it instead
 */
const volatile bool stack_by_site __weak = false;
/* ... and a record that reuses a site walks too (tests: the two compared) */
const volatile bool stack_site_check __weak = false;
/*
 * follow the pages any driver inserts into a traced process's page table,
 * not only kex's (off: --kex-only)
 */
const volatile bool driver_pages __weak = true;
/*
 * argument (1-based) of the user address in the resolved insert function, 0:
 * the clone dropped it (6.1's .constprop.0); then the vm_insert_page(s)
 * entries remember it per tid (insert_sites)
 */
const volatile __u8 insert_addr_arg __weak = 0;
/*
 * the kernel's own fault handlers (page cache, shmem, the vdso, ...; the
 * loader fills them from kallsyms, 0 ends the list): a fault through any
 * other vm_ops->fault installs a driver's page (driver.bpf.h)
 */
const volatile __u64 core_faults[KEX_CORE_FAULTS] __weak = {};
/* kextrace's own tgid: its ring buffer's pages are not a driver's to follow */
const volatile __u32 tracer_tgid __weak = 0;
/* kex's own tracepoints for every process, not only the traced tree (--all) */
const volatile bool trace_all __weak = false;
/*
 * address of the kernel variable vmemmap_base (kallsyms); 0: unknown, and
 * the pfn of a page outside the kex maps is then unknown too (never guessed:
 * the base is randomized under KASLR)
 */
const volatile __u64 vmemmap_base_addr __weak = 0;
/* return probes attached as fexit: KEX_FEXIT(probe id) bits */
const volatile __u64 fexit_probes __weak = 0;
/*
 * kextrace --watch: a tracked page's records (no stack) are kept in "lives"
 * and sent as one KEX_EV_LIFE record at its free; user space reads the
 * lives left once the trace ended. Records are then built per CPU
 * ("scratch") and copied to where they go at submit().
 */
const volatile bool watch_lives __weak = false;
/* --watch: the slots of "lives" (its max_entries) */
const volatile __u64 lives_max __weak = 0;
/* force a wakeup once this many bytes wait in the ring buffer */
const volatile __u64 wakeup_bytes __weak = 1 << 20;

/*
 * Set by the loader once every probe of the plan is attached, cleared before
 * the first one detaches (the only global the loader writes while programs
 * run). A page becomes tracked (kex's claim, a driver's page adopted) only
 * while it is set: attaching and detaching take seconds under load, and a
 * life begun with a probe missing had its free unseen, then looked like a
 * page claimed twice.
 */
volatile bool tracking_armed __weak = false;

/*
 * The vmemmap array's base (struct page of pfn 0), 0 until known: learned
 * from the first kex:kex_page_alloc (page - pfn * sizeof(struct page)) or
 * read from vmemmap_base at a driver page's adoption, the same value on
 * SPARSEMEM_VMEMMAP (x86-64). Until then no page is followed, so none is
 * looked up by its pointer.
 */
__u64 kex_vmemmap __weak = 0;

/* --- maps ----------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KEX_RINGBUF_DEFAULT);
} events SEC(".maps") __weak;

/* per enum kex_track_slot: failed map updates, pfns not computable */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KEX_TRACK_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} tracking SEC(".maps") __weak;

/*
 * traced thread groups: tgid -> the leader's start_time (ns), 0 when user
 * space seeded it; deleted when that leader is freed
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TRACED);
	__type(key, __u32);
	__type(value, __u64);
} traced SEC(".maps") __weak;

/* kex pages by pfn, until mm_page_free(_batched) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_PAGES_DEFAULT);
	__type(key, __u64);
	__type(value, struct kex_pfn_info);
} pfns SEC(".maps") __weak;

struct kex_event_stack {
	struct kex_event ev;
	__u64 stack[KEX_STACK_DEPTH];
};

/*
 * The last order-0 mm_page_alloc of a tid inside its kex mmap window
 * (pfn KEX_NO_PFN: none, or claimed already), held back until
 * kex:kex_page_alloc claims that pfn (page_alloc.bpf.c)
 */
struct pending_alloc {
	__u64 ts;
	__u64 pfn;
	__u32 cpu;
	__u32 order;
};

/*
 * tid -> its pending allocation, between kex:kex_mmap and kex:kex_mmap_done:
 * the window and what is held back in it are one entry, written in place,
 * so an allocation costs a lookup, not an update, and a claim no delete
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct pending_alloc);
} mmap_window SEC(".maps") __weak;

/* per tid: the address a driver's vm_insert_page(s) call maps (kextrace.h) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct kex_insert_site);
} insert_sites SEC(".maps") __weak;


/* entry state a kretprobe needs: which page, where its PTE lives */
struct pte_call {
	__u64 page;
	__u64 pte;	/* pte_t * */
	__u64 addr;
	__u64 pfn;
};

/* --- helpers ---------------------------------------------------------------- */

static const __u32 one = 1;

/* count_hit(), count_match(), ring_reserved() ... */
#include "counters.bpf.h"

static __always_inline void count_tracking(__u32 slot)
{
	__u64 *n;

	if (slot >= KEX_TRACK_SLOTS)
		return;
	n = bpf_map_lookup_elem(&tracking, &slot);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* bpf_map_update_elem whose failure is counted under slot */
static __always_inline long track_update(void *map, const void *key,
					 const void *val, __u32 slot)
{
	long err = bpf_map_update_elem(map, key, val, BPF_ANY);

	if (err)
		count_tracking(slot);
	return err;
}

static __always_inline bool ret_is_fexit(__u32 probe)
{
	return fexit_probes & KEX_FEXIT(probe);
}

static __always_inline void fill(struct kex_event *e, __u32 type, __u32 probe)
{
	__u64 id = bpf_get_current_pid_tgid();

	e->ts = bpf_ktime_get_ns();
	e->type = type;
	e->cpu = bpf_get_smp_processor_id();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->pfn = KEX_NO_PFN;
	e->addr = 0;
	e->arg0 = 0;
	e->arg1 = 0;
	e->ret = 0;
	e->refcount = KEX_NO_COUNT;
	e->mapcount = KEX_NO_COUNT;
	e->probe = probe;
	e->stack_len = 0;
	e->stack_site = 0;
}

/* --watch: page lives kept in BPF, records built per CPU */
#include "watch.bpf.h"

/*
 * Room for a record and a stack, filled with the common header: the ring
 * buffer's, or with --watch a scratch record that submit() copies. Counted as
 * produced; NULL (counted lost) when there is no room.
 */
static __always_inline struct kex_event_stack *reserve_room(__u32 type, __u32 probe,
							    __u32 size)
{
	struct kex_event_stack *r;

	if (watch_lives) {
		count_produced(type);
		r = scratch_get();
		if (!r)
			count_loss(type);
	} else {
		if (size == sizeof(struct kex_event))
			r = bpf_ringbuf_reserve(&events, sizeof(struct kex_event), 0);
		else
			r = bpf_ringbuf_reserve(&events, sizeof(struct kex_event_stack), 0);
		probe = ring_reserved(r, type, probe);
	}
	if (r)
		fill(&r->ev, type, probe);
	return r;
}

/* a plain record */
static __always_inline struct kex_event *reserve(__u32 type, __u32 probe)
{
	struct kex_event_stack *r = reserve_room(type, probe, sizeof(struct kex_event));

	return r ? &r->ev : NULL;
}

/* records with a kernel stack: reserve_stack_skip(), reserve_stack_tp() */
#include "stack.bpf.h"

/*
 * A record reserved in the ring buffer itself (reserve_room(), counted there)
 * goes out, waking the reader when ring_reserved() said so.
 */
static __always_inline void submit_ring(struct kex_event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (e->probe & KEX_PROBE_WAKE) {
		e->probe &= ~KEX_PROBE_WAKE;
		flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

/*
 * The record from reserve() or reserve_stack*() goes out (or into its life).
 * @fi: its page's "pfns" entry when the program has it, so that --watch does
 * not look it up again (NULL: life_add() looks it up).
 */
static __always_inline void submit_page(struct kex_event *e,
					struct kex_pfn_info *fi)
{
	if (!watch_lives) {
		submit_ring(e);
		return;
	}
	if (!life_record(e) || !life_add(e, fi))
		output(e);
	scratch_put();
}

static __always_inline void submit(struct kex_event *e)
{
	submit_page(e, NULL);
}

/*
 * A record that goes alone under --watch too, never into a life: --follow's.
 * Its program runs life_add() in a bpf_loop callback, a path per argument
 * register, which made follow_multi more than the verifier takes on 7.2
 * (1,000,000 instructions processed, --follow --watch did not load). The
 * correlator gets the same records either way.
 */
static __always_inline void submit_alone(struct kex_event *e)
{
	if (!watch_lives) {
		submit_ring(e);
		return;
	}
	output(e);
	scratch_put();
}

static __always_inline bool current_traced(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	return bpf_map_lookup_elem(&traced, &tgid) != NULL;
}

/* kex's tracepoints: the traced tree, or every process with trace_all */
static __always_inline bool kex_traced(void)
{
	return trace_all || current_traced();
}

/* follow another driver's pages inserted into the current process */
static __always_inline bool driver_traced(void)
{
	return driver_pages && kex_traced() &&
	       bpf_get_current_pid_tgid() >> 32 != tracer_tgid;
}

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

/* A record of @type for an address range (addr, arg0), else only the header. */
static __always_inline int emit_range(__u32 type, __u32 probe, __u64 start,
				      __u64 end)
{
	struct kex_event *e = reserve(type, probe);

	if (!e)
		return 0;
	e->addr = start;
	e->arg0 = end;
	submit(e);
	return 0;
}

/* A record of @type with nothing but the common header (a window's end). */
static __always_inline int emit_bare(__u32 type, __u32 probe)
{
	return emit_range(type, probe, 0, 0);
}

/*
 * A kretprobe's half of a call its entry saved in @calls (keyed by thread,
 * *@tid on return): counted, NULL when the entry saved nothing. The caller
 * deletes the entry once it has used it.
 */
static __always_inline void *call_returns(void *calls, __u32 *tid, __u32 probe)
{
	void *call;
	struct kex_counters *cnt;

	*tid = current_tid();
	cnt = count_hit(probe);
	call = bpf_map_lookup_elem(calls, tid);
	if (call)
		count_match(cnt, probe);
	return call;
}

/* A kretprobe closing the window its entry opened in @window: forgotten. */
static __always_inline bool window_closes(void *window, __u32 probe)
{
	__u32 tid;

	if (!call_returns(window, &tid, probe))
		return false;
	bpf_map_delete_elem(window, &tid);
	return true;
}

/*
 * The page's reference and map counts, as the kernel sees them right now:
 * one read where _refcount follows _mapcount (6.1 to 7.2), a helper call
 * less a record.
 */
static __always_inline void page_counts(struct kex_event *e, __u64 page)
{
	struct page *pg = (struct page *)page;
	__u32 map_off;
	__s32 both[2];

	if (!page)
		return;
	if (bpf_core_field_exists(pg->_mapcount)) {
		map_off = bpf_core_field_offset(pg->_mapcount);
		if (bpf_core_field_offset(pg->_refcount) == map_off + sizeof(__s32) &&
		    !bpf_probe_read_kernel(both, sizeof(both), (void *)page + map_off)) {
			e->mapcount = both[0] + 1;
			e->refcount = both[1];
			return;
		}
		e->mapcount = BPF_CORE_READ(pg, _mapcount.counter) + 1;
	}
	e->refcount = BPF_CORE_READ(pg, _refcount.counter);
}

/*
 * page_to_pfn for pages that are not in the kex maps (SPARSEMEM_VMEMMAP):
 * (page - vmemmap_base) / sizeof(struct page). vmemmap_base is randomized
 * under KASLR: without its address the pfn is unknown (KEX_NO_PFN, counted),
 * never computed from a guessed base. So is a pointer that is not a struct
 * page of the array (an argument layout that does not fit the kernel).
 */
/* page's pfn by the vmemmap base, KEX_NO_PFN when it is no struct page there */
static __always_inline __u64 vmemmap_pfn(__u64 page, __u64 base)
{
	__u64 size = bpf_core_type_size(struct page);

	if (!base || !size || page < base || (page - base) % size)
		return KEX_NO_PFN;
	return (page - base) / size;
}

static __always_inline __u64 page_to_pfn(__u64 page)
{
	__u64 base = kex_vmemmap, pfn;

	if (!base && vmemmap_base_addr &&
	    !bpf_probe_read_kernel(&base, sizeof(base), (void *)vmemmap_base_addr))
		kex_vmemmap = base;
	pfn = vmemmap_pfn(page, base);
	if (pfn == KEX_NO_PFN)
		count_tracking(KEX_TRACK_PFN_UNKNOWN);
	return pfn;
}

/*
 * A word of a kprobe's registers (its context), loaded directly: one
 * instruction where a PT_REGS_PARMn_CORE is a bpf_probe_read_kernel call.
 * In asm, so that clang cannot fold a switch of such loads into one load at
 * a computed context offset, which the verifier rejects. x86-64's struct
 * pt_regs is the kernel's ABI with user space: its offsets do not move.
 */
#define KEX_CTX_REG(ctx, reg) ({					\
	__u64 __v;							\
	asm volatile("%0 = *(u64 *)(%1 + %2)" : "=r"(__v)		\
		     : "r"(ctx), "i"(__builtin_offsetof(struct pt_regs, reg))); \
	__v;								\
})

/* Argument n (1-based) of a kprobed function. */
static __always_inline __u64 kprobe_arg(struct pt_regs *ctx, __u8 n)
{
	switch (n) {
	case 1: return KEX_CTX_REG(ctx, di);
	case 2: return KEX_CTX_REG(ctx, si);
	case 3: return KEX_CTX_REG(ctx, dx);
	case 4: return KEX_CTX_REG(ctx, cx);
	case 5: return KEX_CTX_REG(ctx, r8);
	case 6: return KEX_CTX_REG(ctx, r9);
	default: return 0;
	}
}

/*
 * Argument n (1-based) of a traced function, from an entry program built
 * twice from one body: as a kprobe (pt_regs) and as an fentry (the BPF
 * trampoline's argument array). tramp is a constant in each, so the other
 * branch (and the helper the kprobe may not call) compiles away.
 */
static __always_inline __u64 entry_arg(void *ctx, bool tramp, __u8 n)
{
	__u64 v = 0;

	if (!tramp)
		return kprobe_arg(ctx, n);
	bpf_get_func_arg(ctx, n - 1, &v);
	return v;
}

/*
 * The two entry programs of one body: SEC("kprobe/fn") kprobe__name and
 * SEC("fentry/fn") fentry__name, each calling body(ctx, tramp). The loader
 * loads the one the plan chose and points an fentry at the real function.
 */
#define KEX_ENTRY_PROGRAMS(fn, name, body)				\
	SEC("kprobe/" #fn)						\
	int kprobe__##name(struct pt_regs *ctx)				\
	{								\
		return body(ctx, false);				\
	}								\
	SEC("fentry/" #fn)						\
	int fentry__##name(void *ctx)					\
	{								\
		return body(ctx, true);					\
	}

/*
 * A followed page by its struct page pointer, NULL for any other pointer
 * and once the page was freed: its pfn's entry in "pfns", found by
 * arithmetic (kex_vmemmap; no helper call), if it holds this very page.
 */
static __always_inline struct kex_pfn_info *kex_page(__u64 page)
{
	__u64 pfn = vmemmap_pfn(page, kex_vmemmap);
	struct kex_pfn_info *fi;

	if (pfn == KEX_NO_PFN)
		return NULL;
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi || fi->page != page || fi->freed)
		return NULL;
	return fi;
}

static __always_inline __u64 read_pte(__u64 pte)
{
	__u64 val = 0;

	if (pte)
		bpf_probe_read_kernel(&val, sizeof(val), (void *)pte);
	return val;
}

#endif /* KEXTRACE_BPF_H */
