// SPDX-License-Identifier: GPL-2.0
/*
 * kextrace.bpf.c - follow every page the kex driver maps into a process.
 *
 * Page identity: tp/kex/kex_page_alloc (which carries both the pfn and the
 * struct page pointer) enters a page into two maps, "pages" (struct page * ->
 * pfn) and "pfns" (pfn -> struct page *). Every page-level kprobe looks its
 * page up there and returns at once for any other page, so a busy machine
 * does not flood the ring buffer; kmem:mm_page_free emits and forgets the
 * page. Process-level events (syscalls, faults, the rig's USDT markers, the
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
 * reserve counts in "losses" under the record's event type, a failed update
 * of a map the trace depends on in "tracking" (events.h).
 *
 * Function returns: an fexit program (BPF trampoline, the arguments at hand)
 * where the kernel's BTF has the function, a kretprobe where it does not
 * (compiler clones such as insert_page_into_pte_locked.constprop.0); the
 * plan chooses, fexit_probes tells the entry kprobes.
 *
 * "traced" holds a thread group from its fork (or user space's seed) until
 * its leader's task_struct is freed (sched_process_free: every thread has
 * exited and the group was reaped), so a reused pid is not traced and the
 * map holds only live groups.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/usdt.bpf.h>
#include "kextrace.h"
#include "kex_tp.h"

char LICENSE[] SEC("license") = "GPL";

/* --- configuration, set by the loader before load ------------------------ */

/* argument positions (1-based) of the resolved symbols, see probe_plan.cpp */
const volatile __u8 insert_pte_arg = 2;		/* .constprop.0 / .isra.0: pte in PARM2 */
const volatile __u8 insert_page_arg = 3;	/* ... and the page in PARM3 */
const volatile __u8 rmap_add_page_arg = 1;	/* page_add_file_rmap(page, ...) */
const volatile __u8 rmap_remove_page_arg = 1;	/* page_remove_rmap(page, ...) */
const volatile __u8 dirty_page_arg = 1;		/* set_page_dirty(page) */
const volatile __u8 set_pte_page_arg = 2;	/* do_set_pte(vmf, page, addr) */
const volatile __u8 set_pte_addr_arg = 3;
const volatile __u8 unmap_mode = KEX_UNMAP_REGION_61;
/* report do_set_pte for any page of a traced process, not only kex pages */
const volatile bool fault_all_pages = false;
const volatile bool capture_stacks = true;
/* kex's own tracepoints for every process, not only the traced tree (--all) */
const volatile bool trace_all = false;
/*
 * address of the kernel variable vmemmap_base (kallsyms); 0: unknown, and
 * the pfn of a page outside the kex maps is then unknown too (never guessed:
 * the base is randomized under KASLR)
 */
const volatile __u64 vmemmap_base_addr = 0;
/* return probes attached as fexit: KEX_FEXIT(probe id) bits */
const volatile __u64 fexit_probes = 0;
/* force a wakeup once this many bytes wait in the ring buffer */
const volatile __u64 wakeup_bytes = 1 << 20;

/* --- maps ----------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KEX_RINGBUF_DEFAULT);
} events SEC(".maps");

/* per event type: records dropped because the ring buffer was full */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KEX_LOSS_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} losses SEC(".maps");

/* per enum kex_track_slot: failed map updates, pfns not computable */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KEX_TRACK_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} tracking SEC(".maps");

/*
 * per event type: records the programs tried to send (every reserve), so
 * that produced = received by user space + losses, type by type
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KEX_LOSS_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} produced SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KEX_MAX_PROBES);
	__type(key, __u32);
	__type(value, struct kex_probe_stats);
} probe_stats SEC(".maps");

/*
 * traced thread groups: tgid -> the leader's start_time (ns), 0 when user
 * space seeded it; deleted when that leader is freed
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TRACED);
	__type(key, __u32);
	__type(value, __u64);
} traced SEC(".maps");

/* live kex pages by struct page pointer */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_PAGES_DEFAULT);
	__type(key, __u64);
	__type(value, struct kex_page_info);
} pages SEC(".maps");

/* kex pages by pfn, until mm_page_free(_batched) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_PAGES_DEFAULT);
	__type(key, __u64);
	__type(value, struct kex_pfn_info);
} pfns SEC(".maps");

/* tid -> 1 between kex:kex_mmap and kex:kex_mmap_done */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, __u32);
} mmap_window SEC(".maps");

/* the last order-0 mm_page_alloc of a tid inside its kex mmap window */
struct pending_alloc {
	__u64 ts;
	__u64 pfn;
	__u32 cpu;
	__u32 order;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct pending_alloc);
} pending_allocs SEC(".maps");

/* entry state a kretprobe needs: which page, where its PTE lives */
struct pte_call {
	__u64 page;
	__u64 pte;	/* pte_t * */
	__u64 addr;
	__u64 pfn;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct pte_call);
} insert_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct pte_call);
} set_pte_calls SEC(".maps");

/* remap_pfn_range entry per tid, for its return (mode pfn) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct pte_call);
} remap_calls SEC(".maps");

/* sys_enter_mmap arguments per tid, for sys_exit_mmap */
struct mmap_call {
	__u64 len;
	__u64 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct mmap_call);
} mmap_calls SEC(".maps");

/* tid -> 1 while inside an emitted unmap / exit_mmap entry */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, __u32);
} in_unmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, __u32);
} in_exit_mmap SEC(".maps");

/* --- helpers ---------------------------------------------------------------- */

struct kex_event_stack {
	struct kex_event ev;
	__u64 stack[KEX_STACK_DEPTH];
};

static const __u32 one = 1;

static __always_inline struct kex_probe_stats *stats(__u32 probe)
{
	return bpf_map_lookup_elem(&probe_stats, &probe);
}

static __always_inline void count_hit(__u32 probe)
{
	struct kex_probe_stats *s = stats(probe);

	if (s)
		s->hits++;
}

static __always_inline void count_match(__u32 probe)
{
	struct kex_probe_stats *s = stats(probe);

	if (s)
		s->matched++;
}

static __always_inline void count_loss(__u32 type)
{
	__u32 slot = type < KEX_LOSS_SLOTS ? type : 0;
	__u64 *n = bpf_map_lookup_elem(&losses, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

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

static __always_inline void count_produced(__u32 type)
{
	__u32 slot = type < KEX_LOSS_SLOTS ? type : 0;
	__u64 *n = bpf_map_lookup_elem(&produced, &slot);

	if (n)
		(*n)++;
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
}

/* a plain record */
static __always_inline struct kex_event *reserve(__u32 type, __u32 probe)
{
	struct kex_event *e;

	count_produced(type);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(type);
		return NULL;
	}
	fill(e, type, probe);
	return e;
}

/*
 * A record with room for a kernel stack. The reserved size must be a
 * constant, so it is always KEX_EVENT_SIZE(KEX_STACK_DEPTH); stack_len says
 * how much of the tail is used.
 */
static __always_inline struct kex_event *reserve_stack(void *ctx, __u32 type,
						       __u32 probe)
{
	struct kex_event_stack *r;
	long n;

	if (!capture_stacks)
		return reserve(type, probe);
	count_produced(type);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_loss(type);
		return NULL;
	}
	fill(&r->ev, type, probe);
	n = bpf_get_stack(ctx, r->stack, sizeof(r->stack), 0);
	r->ev.stack_len = n > 0 ? n / sizeof(__u64) : 0;
	return &r->ev;
}

static __always_inline void submit(struct kex_event *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	struct kex_probe_stats *s = stats(e->probe);

	if (s)
		s->emitted++;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
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

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

/* the page's reference and map counts, as the kernel sees them right now */
static __always_inline void page_counts(struct kex_event *e, __u64 page)
{
	struct page *pg = (struct page *)page;

	if (!page)
		return;
	e->refcount = BPF_CORE_READ(pg, _refcount.counter);
	if (bpf_core_field_exists(pg->_mapcount))
		e->mapcount = BPF_CORE_READ(pg, _mapcount.counter) + 1;
}

/*
 * page_to_pfn for pages that are not in the kex maps (SPARSEMEM_VMEMMAP):
 * (page - vmemmap_base) / sizeof(struct page). vmemmap_base is randomized
 * under KASLR: without its address the pfn is unknown (KEX_NO_PFN, counted),
 * never computed from a guessed base.
 */
static __always_inline __u64 page_to_pfn(__u64 page)
{
	__u64 base = 0, size = bpf_core_type_size(struct page);

	if (!vmemmap_base_addr || !size ||
	    bpf_probe_read_kernel(&base, sizeof(base),
				  (void *)vmemmap_base_addr) ||
	    !base || page < base) {
		count_tracking(KEX_TRACK_PFN_UNKNOWN);
		return KEX_NO_PFN;
	}
	return (page - base) / size;
}

/*
 * Argument n (1-based) of a kprobed function. Read through
 * bpf_probe_read_kernel: clang folds a switch over direct ctx loads into one
 * load at a computed ctx offset, which the verifier rejects.
 */
static __always_inline __u64 kprobe_arg(struct pt_regs *ctx, __u8 n)
{
	switch (n) {
	case 1: return PT_REGS_PARM1_CORE(ctx);
	case 2: return PT_REGS_PARM2_CORE(ctx);
	case 3: return PT_REGS_PARM3_CORE(ctx);
	case 4: return PT_REGS_PARM4_CORE(ctx);
	case 5: return PT_REGS_PARM5_CORE(ctx);
	case 6: return BPF_CORE_READ(ctx, r9);
	default: return 0;
	}
}

static __always_inline struct kex_page_info *kex_page(__u64 page)
{
	return bpf_map_lookup_elem(&pages, &page);
}

static __always_inline __u64 read_pte(__u64 pte)
{
	__u64 val = 0;

	if (pte)
		bpf_probe_read_kernel(&val, sizeof(val), (void *)pte);
	return val;
}

/* --- the insert path -------------------------------------------------------- */

/*
 * insert_page_into_pte_locked(vma, pte, [addr,] page, prot): gets the page,
 * adds the file rmap and sets the PTE (set_pte_at is inlined: the PTE value
 * is read back at return).
 */
SEC("kprobe/insert_page_into_pte_locked")
int kprobe__insert_page(struct pt_regs *ctx)
{
	__u64 page = kprobe_arg(ctx, insert_page_arg);
	__u64 pte = kprobe_arg(ctx, insert_pte_arg);
	struct kex_page_info *pi;
	struct pte_call call = {};
	struct kex_event *e;
	__u32 tid = current_tid();

	count_hit(KEX_P_INSERT);
	pi = kex_page(page);
	if (!pi)
		return 0;
	count_match(KEX_P_INSERT);
	if (!ret_is_fexit(KEX_P_INSERT_RET)) {
		call.page = page;
		call.pte = pte;
		call.pfn = pi->pfn;
		track_update(&insert_calls, &tid, &call, KEX_TRACK_INSERT_CALLS);
	}

	e = reserve_stack(ctx, KEX_EV_INSERT, KEX_P_INSERT);
	if (!e)
		return 0;
	e->pfn = pi->pfn;
	e->arg0 = pi->index;
	e->arg1 = pte;
	page_counts(e, page);
	submit(e);
	return 0;
}

static __always_inline void insert_return(__u64 page, __u64 pte, __u64 pfn,
					  long ret)
{
	struct kex_event *e = reserve(KEX_EV_INSERT_RET, KEX_P_INSERT_RET);

	if (!e)
		return;
	e->pfn = pfn;
	e->ret = ret;
	e->arg0 = read_pte(pte);
	e->arg1 = pte;
	page_counts(e, page);
	submit(e);
}

SEC("kretprobe/insert_page_into_pte_locked")
int kretprobe__insert_page(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	struct pte_call *call;

	count_hit(KEX_P_INSERT_RET);
	call = bpf_map_lookup_elem(&insert_calls, &tid);
	if (!call)
		return 0;
	count_match(KEX_P_INSERT_RET);
	insert_return(call->page, call->pte, call->pfn, (long)PT_REGS_RC(ctx));
	bpf_map_delete_elem(&insert_calls, &tid);
	return 0;
}

/* the non-clone insert_page_into_pte_locked(vma, pte, addr, page, prot) */
SEC("fexit/insert_page_into_pte_locked")
int fexit__insert_page(void *ctx)
{
	__u64 page = 0, pte = 0, ret = 0;
	struct kex_page_info *pi;

	count_hit(KEX_P_INSERT_RET);
	bpf_get_func_arg(ctx, insert_page_arg - 1, &page);
	bpf_get_func_arg(ctx, insert_pte_arg - 1, &pte);
	pi = kex_page(page);
	if (!pi)
		return 0;
	count_match(KEX_P_INSERT_RET);
	bpf_get_func_ret(ctx, &ret);
	insert_return(page, pte, pi->pfn, (int)ret);
	return 0;
}

/* page-level kprobe that only reports the page and its counts */
static __always_inline int page_event(struct pt_regs *ctx, __u8 arg,
				      __u32 type, __u32 probe)
{
	__u64 page = kprobe_arg(ctx, arg);
	struct kex_page_info *pi;
	struct kex_event *e;

	count_hit(probe);
	pi = kex_page(page);
	if (!pi)
		return 0;
	count_match(probe);
	e = reserve(type, probe);
	if (!e)
		return 0;
	e->pfn = pi->pfn;
	e->arg0 = pi->index;
	page_counts(e, page);
	submit(e);
	return 0;
}

SEC("kprobe/page_add_file_rmap")
int kprobe__rmap_add(struct pt_regs *ctx)
{
	return page_event(ctx, rmap_add_page_arg, KEX_EV_RMAP_ADD, KEX_P_RMAP_ADD);
}

SEC("kprobe/page_remove_rmap")
int kprobe__rmap_remove(struct pt_regs *ctx)
{
	return page_event(ctx, rmap_remove_page_arg, KEX_EV_RMAP_REMOVE,
			  KEX_P_RMAP_REMOVE);
}

/* set_page_dirty(page) / folio_mark_dirty(folio): order 0, folio == page */
SEC("kprobe/set_page_dirty")
int kprobe__set_dirty(struct pt_regs *ctx)
{
	return page_event(ctx, dirty_page_arg, KEX_EV_SET_DIRTY, KEX_P_SET_DIRTY);
}

/* --- the fault path: do_set_pte(vmf, page, addr) / set_pte_range ---------- */

SEC("kprobe/do_set_pte")
int kprobe__set_pte(struct pt_regs *ctx)
{
	struct vm_fault *vmf = (struct vm_fault *)PT_REGS_PARM1(ctx);
	__u64 page = kprobe_arg(ctx, set_pte_page_arg);
	struct kex_page_info *pi;
	struct pte_call call = {};
	struct kex_event *e;
	__u32 tid = current_tid();

	count_hit(KEX_P_SET_PTE);
	pi = kex_page(page);
	if (pi)
		call.pfn = pi->pfn;
	else if (fault_all_pages && current_traced())
		call.pfn = page_to_pfn(page);
	else
		return 0;
	count_match(KEX_P_SET_PTE);
	call.page = page;
	call.pte = (__u64)BPF_CORE_READ(vmf, pte);
	call.addr = kprobe_arg(ctx, set_pte_addr_arg);
	if (!ret_is_fexit(KEX_P_SET_PTE_RET))
		track_update(&set_pte_calls, &tid, &call,
			     KEX_TRACK_SET_PTE_CALLS);

	e = reserve_stack(ctx, KEX_EV_DO_SET_PTE, KEX_P_SET_PTE);
	if (!e)
		return 0;
	e->pfn = call.pfn;
	e->addr = call.addr;
	e->arg1 = call.pte;
	page_counts(e, page);
	submit(e);
	return 0;
}

static __always_inline void set_pte_return(struct pte_call *call)
{
	struct kex_event *e = reserve(KEX_EV_DO_SET_PTE_RET, KEX_P_SET_PTE_RET);

	if (!e)
		return;
	e->pfn = call->pfn;
	e->addr = call->addr;
	e->arg0 = read_pte(call->pte);
	e->arg1 = call->pte;
	page_counts(e, call->page);
	submit(e);
}

SEC("kretprobe/do_set_pte")
int kretprobe__set_pte(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	struct pte_call *call;

	count_hit(KEX_P_SET_PTE_RET);
	call = bpf_map_lookup_elem(&set_pte_calls, &tid);
	if (!call)
		return 0;
	count_match(KEX_P_SET_PTE_RET);
	set_pte_return(call);
	bpf_map_delete_elem(&set_pte_calls, &tid);
	return 0;
}

/* do_set_pte(vmf, page, addr) / set_pte_range(vmf, folio, page, nr, addr) */
SEC("fexit/do_set_pte")
int fexit__set_pte(void *ctx)
{
	struct kex_page_info *pi;
	struct pte_call call = {};
	struct vm_fault *vmf;
	__u64 arg = 0;

	count_hit(KEX_P_SET_PTE_RET);
	bpf_get_func_arg(ctx, set_pte_page_arg - 1, &call.page);
	pi = kex_page(call.page);
	if (pi)
		call.pfn = pi->pfn;
	else if (fault_all_pages && current_traced())
		call.pfn = page_to_pfn(call.page);
	else
		return 0;
	count_match(KEX_P_SET_PTE_RET);
	bpf_get_func_arg(ctx, 0, &arg);
	vmf = (struct vm_fault *)arg;
	call.pte = (__u64)BPF_CORE_READ(vmf, pte);
	bpf_get_func_arg(ctx, set_pte_addr_arg - 1, &call.addr);
	set_pte_return(&call);
	return 0;
}

/* --- the batch and pfn modes' kernel calls ------------------------------- */

/*
 * vm_insert_pages(vma, addr, pages, num): mode batch maps many pages per
 * call; kept for kex's own mmap only (the tid's kex mmap window).
 */
SEC("kprobe/vm_insert_pages")
int kprobe__vm_insert_pages(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	__u64 num = 0, nump = PT_REGS_PARM4_CORE(ctx);
	struct kex_event *e;

	count_hit(KEX_P_VM_INSERT_PAGES);
	if (!bpf_map_lookup_elem(&mmap_window, &tid))
		return 0;
	count_match(KEX_P_VM_INSERT_PAGES);
	if (nump)
		bpf_probe_read_kernel(&num, sizeof(num), (void *)nump);
	e = reserve(KEX_EV_VM_INSERT_PAGES, KEX_P_VM_INSERT_PAGES);
	if (!e)
		return 0;
	e->addr = PT_REGS_PARM2_CORE(ctx);
	e->arg0 = num;
	submit(e);
	return 0;
}

/*
 * remap_pfn_range(vma, addr, pfn, size, prot) of a kex page (mode pfn): the
 * mapping takes no reference and adds no rmap, its PTEs are special
 * (_PAGE_SPECIAL), so the zap will not see the page at all.
 */
SEC("kprobe/remap_pfn_range")
int kprobe__remap_pfn(struct pt_regs *ctx)
{
	__u64 pfn = PT_REGS_PARM3_CORE(ctx);
	struct kex_pfn_info *fi;
	struct pte_call call = {};
	struct kex_event *e;
	__u32 tid = current_tid();

	count_hit(KEX_P_REMAP_PFN);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi)
		return 0;
	count_match(KEX_P_REMAP_PFN);
	call.page = fi->page;
	call.pfn = pfn;
	call.addr = PT_REGS_PARM2_CORE(ctx);
	if (!ret_is_fexit(KEX_P_REMAP_PFN_RET))
		track_update(&remap_calls, &tid, &call, KEX_TRACK_REMAP_CALLS);
	e = reserve_stack(ctx, KEX_EV_REMAP_PFN, KEX_P_REMAP_PFN);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->addr = call.addr;
	e->arg0 = PT_REGS_PARM4_CORE(ctx);
	e->arg1 = fi->index;
	page_counts(e, fi->page);
	submit(e);
	return 0;
}

static __always_inline void remap_return(__u64 page, __u64 pfn, __u64 addr,
					 long ret)
{
	struct kex_event *e = reserve(KEX_EV_REMAP_PFN_RET, KEX_P_REMAP_PFN_RET);

	if (!e)
		return;
	e->pfn = pfn;
	e->addr = addr;
	e->ret = ret;
	page_counts(e, page);
	submit(e);
}

SEC("kretprobe/remap_pfn_range")
int kretprobe__remap_pfn(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	struct pte_call *call;

	count_hit(KEX_P_REMAP_PFN_RET);
	call = bpf_map_lookup_elem(&remap_calls, &tid);
	if (!call)
		return 0;
	count_match(KEX_P_REMAP_PFN_RET);
	remap_return(call->page, call->pfn, call->addr, (long)PT_REGS_RC(ctx));
	bpf_map_delete_elem(&remap_calls, &tid);
	return 0;
}

SEC("fexit/remap_pfn_range")
int fexit__remap_pfn(void *ctx)
{
	__u64 pfn = 0, addr = 0, ret = 0;
	struct kex_pfn_info *fi;

	count_hit(KEX_P_REMAP_PFN_RET);
	bpf_get_func_arg(ctx, 2, &pfn);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi)
		return 0;
	count_match(KEX_P_REMAP_PFN_RET);
	bpf_get_func_arg(ctx, 1, &addr);
	bpf_get_func_ret(ctx, &ret);
	remap_return(fi->page, pfn, addr, (int)ret);
	return 0;
}

/* --- the unmap paths -------------------------------------------------------- */

/* a traced process's munmap; exit_mmap calls unmap_vmas too: that one is
 * reported as exit */
static __always_inline bool unmap_wanted(__u32 tid)
{
	if (!current_traced())
		return false;
	return !(unmap_mode == KEX_UNMAP_VMAS &&
		 bpf_map_lookup_elem(&in_exit_mmap, &tid));
}

SEC("kprobe/unmap_region")
int kprobe__unmap(struct pt_regs *ctx)
{
	__u64 start = 0, end = 0;
	__u32 tid = current_tid();
	struct kex_event *e;

	count_hit(KEX_P_UNMAP);
	if (!unmap_wanted(tid))
		return 0;
	count_match(KEX_P_UNMAP);
	if (unmap_mode == KEX_UNMAP_REGION_61) {
		/* 7 arguments: end is the first one on the stack */
		start = ctx->r9;	/* PARM6 */
		bpf_probe_read_kernel(&end, sizeof(end),
				      (void *)(PT_REGS_SP(ctx) + 8));
	} else if (unmap_mode == KEX_UNMAP_VMS) {
		struct vma_munmap_struct *vms = (void *)PT_REGS_PARM1(ctx);

		start = BPF_CORE_READ(vms, start);
		end = BPF_CORE_READ(vms, end);
	} else {
		start = PT_REGS_PARM4(ctx);
		end = PT_REGS_PARM5(ctx);
	}
	if (!ret_is_fexit(KEX_P_UNMAP_RET))
		track_update(&in_unmap, &tid, &one, KEX_TRACK_IN_UNMAP);
	e = reserve(KEX_EV_UNMAP_REGION, KEX_P_UNMAP);
	if (!e)
		return 0;
	e->addr = start;
	e->arg0 = end;
	submit(e);
	return 0;
}

SEC("kretprobe/unmap_region")
int kretprobe__unmap(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	struct kex_event *e;

	count_hit(KEX_P_UNMAP_RET);
	if (!bpf_map_lookup_elem(&in_unmap, &tid))
		return 0;
	count_match(KEX_P_UNMAP_RET);
	bpf_map_delete_elem(&in_unmap, &tid);
	e = reserve(KEX_EV_UNMAP_REGION_RET, KEX_P_UNMAP_RET);
	if (e)
		submit(e);
	return 0;
}

/* the entry's filter again: no state needed */
SEC("fexit/unmap_region")
int fexit__unmap(void *ctx)
{
	__u32 tid = current_tid();
	struct kex_event *e;

	count_hit(KEX_P_UNMAP_RET);
	if (!unmap_wanted(tid))
		return 0;
	count_match(KEX_P_UNMAP_RET);
	e = reserve(KEX_EV_UNMAP_REGION_RET, KEX_P_UNMAP_RET);
	if (e)
		submit(e);
	return 0;
}

SEC("kprobe/exit_mmap")
int kprobe__exit_mmap(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	struct kex_event *e;

	count_hit(KEX_P_EXIT_MMAP);
	if (!current_traced())
		return 0;
	count_match(KEX_P_EXIT_MMAP);
	/* also the unmap_vmas filter (KEX_UNMAP_VMAS), whatever the return is */
	track_update(&in_exit_mmap, &tid, &one, KEX_TRACK_IN_EXIT_MMAP);
	e = reserve(KEX_EV_EXIT_MMAP, KEX_P_EXIT_MMAP);
	if (e)
		submit(e);
	return 0;
}

SEC("kretprobe/exit_mmap")
int kretprobe__exit_mmap(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	struct kex_event *e;

	count_hit(KEX_P_EXIT_MMAP_RET);
	if (!bpf_map_lookup_elem(&in_exit_mmap, &tid))
		return 0;
	count_match(KEX_P_EXIT_MMAP_RET);
	bpf_map_delete_elem(&in_exit_mmap, &tid);
	e = reserve(KEX_EV_EXIT_MMAP_RET, KEX_P_EXIT_MMAP_RET);
	if (e)
		submit(e);
	return 0;
}

SEC("fexit/exit_mmap")
int fexit__exit_mmap(void *ctx)
{
	__u32 tid = current_tid();
	struct kex_event *e;

	count_hit(KEX_P_EXIT_MMAP_RET);
	if (!current_traced())
		return 0;
	count_match(KEX_P_EXIT_MMAP_RET);
	bpf_map_delete_elem(&in_exit_mmap, &tid);
	e = reserve(KEX_EV_EXIT_MMAP_RET, KEX_P_EXIT_MMAP_RET);
	if (e)
		submit(e);
	return 0;
}

/* --- page allocator ------------------------------------------------------- */

/*
 * Inside a kex mmap window the module allocates its pages, but the kernel
 * also allocates page tables there: remember the latest order-0 allocation
 * of the tid and emit it only when kex:kex_page_alloc claims that pfn.
 */
SEC("tp/kmem/mm_page_alloc")
int tp__mm_page_alloc(struct trace_event_raw_mm_page_alloc *ctx)
{
	__u32 tid = current_tid();
	struct pending_alloc pa = {};

	count_hit(KEX_P_MM_PAGE_ALLOC);
	if (!bpf_map_lookup_elem(&mmap_window, &tid))
		return 0;
	if (ctx->order != 0)
		return 0;
	count_match(KEX_P_MM_PAGE_ALLOC);
	pa.ts = bpf_ktime_get_ns();
	pa.pfn = ctx->pfn;
	pa.cpu = bpf_get_smp_processor_id();
	pa.order = ctx->order;
	track_update(&pending_allocs, &tid, &pa, KEX_TRACK_PENDING_ALLOC);
	return 0;
}

SEC("tp/kmem/mm_page_free")
int tp__mm_page_free(struct trace_event_raw_mm_page_free *ctx)
{
	__u64 pfn = ctx->pfn;
	struct kex_pfn_info *fi;
	struct kex_event *e;

	count_hit(KEX_P_MM_PAGE_FREE);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi)
		return 0;
	if (fi->freed) {
		/* stale: freed before, reused by someone else since */
		bpf_map_delete_elem(&pfns, &pfn);
		return 0;
	}
	count_match(KEX_P_MM_PAGE_FREE);
	fi->freed = 1;
	e = reserve_stack(ctx, KEX_EV_PAGE_FREE, KEX_P_MM_PAGE_FREE);
	if (e) {
		e->pfn = pfn;
		e->arg0 = ctx->order;
		e->arg1 = fi->index;
		page_counts(e, fi->page);
		submit(e);
	}
	bpf_map_delete_elem(&pages, &fi->page);
	return 0;
}

/* follows mm_page_free on the release_pages/folios_put path only */
SEC("tp/kmem/mm_page_free_batched")
int tp__mm_page_free_batched(struct trace_event_raw_mm_page_free_batched *ctx)
{
	__u64 pfn = ctx->pfn;
	struct kex_pfn_info *fi;
	struct kex_event *e;

	count_hit(KEX_P_MM_PAGE_FREE_BATCHED);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi || !fi->freed)
		return 0;
	count_match(KEX_P_MM_PAGE_FREE_BATCHED);
	e = reserve(KEX_EV_PAGE_FREE_BATCHED, KEX_P_MM_PAGE_FREE_BATCHED);
	if (e) {
		e->pfn = pfn;
		e->arg1 = fi->index;
		submit(e);
	}
	bpf_map_delete_elem(&pfns, &pfn);
	return 0;
}

/* --- the kex module's tracepoints ----------------------------------------- */

SEC("tp/kex/kex_mmap")
int tp__kex_mmap(struct kex_tp_mmap *ctx)
{
	__u32 tid = current_tid();
	struct kex_event *e;

	count_hit(KEX_P_KEX_MMAP);
	if (!kex_traced())
		return 0;
	count_match(KEX_P_KEX_MMAP);
	track_update(&mmap_window, &tid, &one, KEX_TRACK_MMAP_WINDOW);
	e = reserve(KEX_EV_KEX_MMAP, KEX_P_KEX_MMAP);
	if (!e)
		return 0;
	e->addr = ctx->vm_start;
	e->arg0 = ctx->vm_end;
	e->arg1 = ctx->pages | (__u64)ctx->policy << 32;
	submit(e);
	return 0;
}

SEC("tp/kex/kex_mmap_done")
int tp__kex_mmap_done(struct kex_tp_mmap_done *ctx)
{
	__u32 tid = current_tid();
	struct kex_event *e;

	count_hit(KEX_P_KEX_MMAP_DONE);
	if (!bpf_map_lookup_elem(&mmap_window, &tid))
		return 0;
	count_match(KEX_P_KEX_MMAP_DONE);
	bpf_map_delete_elem(&mmap_window, &tid);
	bpf_map_delete_elem(&pending_allocs, &tid);
	e = reserve(KEX_EV_KEX_MMAP_DONE, KEX_P_KEX_MMAP_DONE);
	if (!e)
		return 0;
	e->addr = ctx->vm_start;
	e->arg0 = ctx->mapped;
	e->ret = ctx->ret;
	submit(e);
	return 0;
}

SEC("tp/kex/kex_page_alloc")
int tp__kex_page_alloc(struct kex_tp_page_alloc *ctx)
{
	__u32 tid = current_tid();
	struct kex_page_info pi = {};
	struct kex_pfn_info fi = {};
	struct pending_alloc *pa;
	struct kex_event *e;
	__u64 page = ctx->page, pfn = ctx->pfn;

	count_hit(KEX_P_KEX_PAGE_ALLOC);
	if (!kex_traced())
		return 0;
	count_match(KEX_P_KEX_PAGE_ALLOC);
	pi.pfn = pfn;
	pi.index = ctx->index;
	pi.tgid = bpf_get_current_pid_tgid() >> 32;
	fi.page = page;
	fi.index = ctx->index;
	track_update(&pages, &page, &pi, KEX_TRACK_PAGES);
	track_update(&pfns, &pfn, &fi, KEX_TRACK_PFNS);

	/* the allocator's own event for this page, held back until now */
	pa = bpf_map_lookup_elem(&pending_allocs, &tid);
	if (pa && pa->pfn == pfn) {
		e = reserve(KEX_EV_PAGE_ALLOC, KEX_P_MM_PAGE_ALLOC);
		if (e) {
			e->ts = pa->ts;
			e->cpu = pa->cpu;
			e->pfn = pfn;
			e->arg0 = pa->order;
			e->arg1 = ctx->index;
			page_counts(e, page);
			submit(e);
		}
		bpf_map_delete_elem(&pending_allocs, &tid);
	}

	e = reserve_stack(ctx, KEX_EV_KEX_PAGE_ALLOC, KEX_P_KEX_PAGE_ALLOC);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->arg0 = ctx->index;
	e->arg1 = page;
	page_counts(e, page);
	submit(e);
	return 0;
}

SEC("tp/kex/kex_page_insert")
int tp__kex_page_insert(struct kex_tp_page_insert *ctx)
{
	__u64 pfn = ctx->pfn;
	struct kex_pfn_info *fi;
	struct kex_event *e;

	count_hit(KEX_P_KEX_PAGE_INSERT);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi)
		return 0;
	count_match(KEX_P_KEX_PAGE_INSERT);
	e = reserve_stack(ctx, KEX_EV_KEX_PAGE_INSERT, KEX_P_KEX_PAGE_INSERT);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->addr = ctx->uaddr;
	e->arg0 = ctx->index;
	e->ret = ctx->ret;
	page_counts(e, fi->page);
	submit(e);
	return 0;
}

SEC("tp/kex/kex_page_free")
int tp__kex_page_free(struct kex_tp_page_free *ctx)
{
	__u64 pfn = ctx->pfn;
	struct kex_pfn_info *fi;
	struct kex_event *e;

	count_hit(KEX_P_KEX_PAGE_FREE);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi || fi->freed)
		return 0;
	count_match(KEX_P_KEX_PAGE_FREE);
	e = reserve_stack(ctx, KEX_EV_KEX_PAGE_FREE, KEX_P_KEX_PAGE_FREE);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->arg0 = ctx->index;
	e->arg1 = ctx->reason;
	page_counts(e, fi->page);
	submit(e);
	return 0;
}

static __always_inline int vma_event(__u64 start, __u64 end, __u32 type,
				     __u32 probe)
{
	struct kex_event *e;

	count_hit(probe);
	if (!kex_traced())
		return 0;
	count_match(probe);
	e = reserve(type, probe);
	if (!e)
		return 0;
	e->addr = start;
	e->arg0 = end;
	submit(e);
	return 0;
}

SEC("tp/kex/kex_vma_open")
int tp__kex_vma_open(struct kex_tp_vma *ctx)
{
	return vma_event(ctx->vm_start, ctx->vm_end, KEX_EV_KEX_VMA_OPEN,
			 KEX_P_KEX_VMA_OPEN);
}

SEC("tp/kex/kex_vma_close")
int tp__kex_vma_close(struct kex_tp_vma *ctx)
{
	return vma_event(ctx->vm_start, ctx->vm_end, KEX_EV_KEX_VMA_CLOSE,
			 KEX_P_KEX_VMA_CLOSE);
}

SEC("tp/kex/kex_release")
int tp__kex_release(struct kex_tp_release *ctx)
{
	struct kex_event *e;

	count_hit(KEX_P_KEX_RELEASE);
	if (!kex_traced())
		return 0;
	count_match(KEX_P_KEX_RELEASE);
	e = reserve(KEX_EV_KEX_RELEASE, KEX_P_KEX_RELEASE);
	if (!e)
		return 0;
	e->arg0 = ctx->pages;
	submit(e);
	return 0;
}

/* kex:kex_mmap_mode follows kex:kex_mmap: the mapping's enum kex_map_mode */
SEC("tp/kex/kex_mmap_mode")
int tp__kex_mmap_mode(struct kex_tp_mmap_mode *ctx)
{
	struct kex_event *e;

	count_hit(KEX_P_KEX_MMAP_MODE);
	if (!kex_traced())
		return 0;
	count_match(KEX_P_KEX_MMAP_MODE);
	e = reserve(KEX_EV_KEX_MMAP_MODE, KEX_P_KEX_MMAP_MODE);
	if (!e)
		return 0;
	e->addr = ctx->vm_start;
	e->arg0 = ctx->mode;
	submit(e);
	return 0;
}

/* mode batch: one vm_insert_pages call of kex */
SEC("tp/kex/kex_batch")
int tp__kex_batch(struct kex_tp_batch *ctx)
{
	struct kex_event *e;

	count_hit(KEX_P_KEX_BATCH);
	if (!kex_traced())
		return 0;
	count_match(KEX_P_KEX_BATCH);
	e = reserve(KEX_EV_KEX_BATCH, KEX_P_KEX_BATCH);
	if (!e)
		return 0;
	e->addr = ctx->uaddr;
	e->arg0 = ctx->index | (__u64)ctx->requested << 32;
	e->arg1 = ctx->mapped;
	e->ret = ctx->ret;
	submit(e);
	return 0;
}

/* mode fault: kex's .fault handler handed a page to the core (or failed) */
SEC("tp/kex/kex_fault")
int tp__kex_fault(struct kex_tp_fault *ctx)
{
	__u64 pfn = ctx->pfn;
	struct kex_pfn_info *fi;
	struct kex_event *e;

	count_hit(KEX_P_KEX_FAULT);
	if (!kex_traced())
		return 0;
	count_match(KEX_P_KEX_FAULT);
	e = reserve_stack(ctx, KEX_EV_KEX_FAULT, KEX_P_KEX_FAULT);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->addr = ctx->uaddr;
	e->arg0 = ctx->index;
	e->arg1 = ctx->flags;
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (fi)
		page_counts(e, fi->page);
	submit(e);
	return 0;
}

/* --- syscalls, faults, the process tree ----------------------------------- */

SEC("tp/syscalls/sys_enter_mmap")
int tp__sys_enter_mmap(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = current_tid();
	struct mmap_call call = {};

	count_hit(KEX_P_SYS_ENTER_MMAP);
	if (!current_traced())
		return 0;
	count_match(KEX_P_SYS_ENTER_MMAP);
	call.len = ctx->args[1];
	call.fd = ctx->args[4];
	track_update(&mmap_calls, &tid, &call, KEX_TRACK_MMAP_CALLS);
	return 0;
}

SEC("tp/syscalls/sys_exit_mmap")
int tp__sys_exit_mmap(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	struct mmap_call *call;
	struct kex_event *e;

	count_hit(KEX_P_SYS_EXIT_MMAP);
	call = bpf_map_lookup_elem(&mmap_calls, &tid);
	if (!call)
		return 0;
	count_match(KEX_P_SYS_EXIT_MMAP);
	e = reserve(KEX_EV_SYS_MMAP, KEX_P_SYS_EXIT_MMAP);
	if (e) {
		e->addr = ctx->ret;
		e->arg0 = call->len;
		e->arg1 = call->fd;
		e->ret = ctx->ret;
		submit(e);
	}
	bpf_map_delete_elem(&mmap_calls, &tid);
	return 0;
}

SEC("tp/syscalls/sys_enter_munmap")
int tp__sys_enter_munmap(struct trace_event_raw_sys_enter *ctx)
{
	struct kex_event *e;

	count_hit(KEX_P_SYS_ENTER_MUNMAP);
	if (!current_traced())
		return 0;
	count_match(KEX_P_SYS_ENTER_MUNMAP);
	e = reserve(KEX_EV_SYS_MUNMAP, KEX_P_SYS_ENTER_MUNMAP);
	if (!e)
		return 0;
	e->addr = ctx->args[0];
	e->arg0 = ctx->args[1];
	submit(e);
	return 0;
}

SEC("tp/syscalls/sys_exit_munmap")
int tp__sys_exit_munmap(struct trace_event_raw_sys_exit *ctx)
{
	struct kex_event *e;

	count_hit(KEX_P_SYS_EXIT_MUNMAP);
	if (!current_traced())
		return 0;
	count_match(KEX_P_SYS_EXIT_MUNMAP);
	e = reserve(KEX_EV_SYS_MUNMAP_RET, KEX_P_SYS_EXIT_MUNMAP);
	if (!e)
		return 0;
	e->ret = ctx->ret;
	submit(e);
	return 0;
}

/*
 * A traced process's new child (not thread) is traced too, until its
 * leader is freed (tp__sched_process_free). A full map loses the child:
 * counted (KEX_TRACK_TRACED), and its fork record still goes out.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(tp__sched_process_fork, struct task_struct *parent,
	     struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	__u64 start = child->start_time;
	struct kex_event *e;

	count_hit(KEX_P_PROC_FORK);
	if (ptgid == ctgid || !bpf_map_lookup_elem(&traced, &ptgid))
		return 0;
	count_match(KEX_P_PROC_FORK);
	track_update(&traced, &ctgid, &start, KEX_TRACK_TRACED);
	e = reserve(KEX_EV_PROC_FORK, KEX_P_PROC_FORK);
	if (!e)
		return 0;
	e->arg0 = ctgid;
	submit(e);
	return 0;
}

/*
 * A thread group's leader is freed: every thread of it has exited (the
 * leader's task_struct outlives them as a zombie) and it was reaped, so its
 * tgid may be reused from now on. Its "traced" entry goes, unless a new
 * group with that tgid has replaced it already (another start_time): the
 * free runs after an RCU grace period. The exit path's own events (exit_mmap,
 * the files' release, after sched_process_exit) all came before.
 */
SEC("tp_btf/sched_process_free")
int BPF_PROG(tp__sched_process_free, struct task_struct *p)
{
	__u32 tgid = p->tgid;
	__u64 *start;

	count_hit(KEX_P_PROC_FREE);
	if (p->pid != tgid)
		return 0;
	start = bpf_map_lookup_elem(&traced, &tgid);
	if (!start || (*start && *start != p->start_time))
		return 0;
	count_match(KEX_P_PROC_FREE);
	bpf_map_delete_elem(&traced, &tgid);
	return 0;
}

/* a traced thread group's leader exits: arg0 = its exit code */
SEC("tp/sched/sched_process_exit")
int tp__sched_process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct kex_event *e;

	count_hit(KEX_P_PROC_EXIT);
	if ((__u32)id != id >> 32 || !current_traced())
		return 0;
	count_match(KEX_P_PROC_EXIT);
	e = reserve(KEX_EV_PROC_EXIT, KEX_P_PROC_EXIT);
	if (!e)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	e->arg0 = BPF_CORE_READ(task, exit_code);
	submit(e);
	return 0;
}

SEC("tp/exceptions/page_fault_user")
int tp__page_fault_user(struct kex_tp_x86_fault *ctx)
{
	struct kex_event *e;

	count_hit(KEX_P_USER_FAULT);
	if (!current_traced())
		return 0;
	count_match(KEX_P_USER_FAULT);
	e = reserve(KEX_EV_USER_FAULT, KEX_P_USER_FAULT);
	if (!e)
		return 0;
	e->addr = ctx->address;
	e->arg0 = ctx->error_code;
	e->arg1 = ctx->ip;
	submit(e);
	return 0;
}

/*
 * The rig's phase markers, provider kex_rig: one program attached to every
 * probe with the phase as cookie. mmap_begin(pages) has one argument, the
 * others (addr, pages): addr goes to addr, pages to arg1.
 */
SEC("usdt")
int usdt__rig_phase(struct pt_regs *ctx)
{
	__u64 phase = bpf_usdt_cookie(ctx);
	long a0 = 0, a1 = 0;
	struct kex_event *e;

	count_hit(KEX_P_USDT);
	if (!current_traced())
		return 0;
	count_match(KEX_P_USDT);
	if (bpf_usdt_arg_cnt(ctx) > 0)
		bpf_usdt_arg(ctx, 0, &a0);
	if (bpf_usdt_arg_cnt(ctx) > 1)
		bpf_usdt_arg(ctx, 1, &a1);
	e = reserve(KEX_EV_RIG_PHASE, KEX_P_USDT);
	if (!e)
		return 0;
	e->arg0 = phase;
	if (phase == KEX_PHASE_MMAP_BEGIN) {
		e->arg1 = a0;
	} else {
		e->addr = a0;
		e->arg1 = a1;
	}
	submit(e);
	return 0;
}
