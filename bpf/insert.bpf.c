// SPDX-License-Identifier: GPL-2.0
/* insert.bpf.c - the insert path: insert_page_into_pte_locked, the file rmap, dirtying */
#include "kextrace.bpf.h"
#include "driver.bpf.h"

/*
 * The insert's entry state for its kretprobe, one per CPU: the function
 * runs under the PTE lock (insert_page_into_pte_locked: no preemption, no
 * migration, and no interrupt inserts pages), so its return comes on the
 * entry's CPU before any other insert there. The thread is kept too: a
 * return whose entry left nothing (another page) finds another tid, or
 * the slot emptied. A slot costs no hash, no lock and cannot be full,
 * where a per-thread hash entry cost an update, a lookup and a delete.
 * An entry that finds the slot still set lost that call's return (a
 * kretprobe that missed it, or a kernel whose PTE lock sleeps, PREEMPT_RT,
 * where another task's insert can run on the CPU meanwhile): counted under
 * the insert_calls tracking slot before it is taken, never silent.
 */
struct insert_call {
	struct pte_call call;
	__u32 tid;
	__u32 set;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct insert_call);
} insert_calls SEC(".maps");

/*
 * The user address of a driver page being inserted: the insert's own
 * argument where it has one, else what its vm_insert_page(s) caller said
 * (insert_sites), else 0 (unknown). Checked against the VMA either way.
 */
static __always_inline __u64 insert_uaddr(void *ctx, bool tramp, __u64 page,
					  struct vm_area_struct *vma)
{
	struct kex_insert_site *site;
	__u64 addr = 0, start, end;
	__u32 tid = current_tid();

	if (insert_addr_arg) {
		addr = entry_arg(ctx, tramp, insert_addr_arg);
	} else {
		site = bpf_map_lookup_elem(&insert_sites, &tid);
		if (site && site->vma == (__u64)vma) {
			if (site->page == page)
				addr = site->addr;
			else if (!site->page)
				addr = site->addr + (site->n++ << 12);
		}
	}
	start = BPF_CORE_READ(vma, vm_start);
	end = BPF_CORE_READ(vma, vm_end);
	return addr >= start && addr < end ? addr : 0;
}

/* a page some driver inserts into a traced process (driver.bpf.h) */
static __always_inline struct kex_pfn_info *
adopt_inserted_page(void *ctx, bool tramp, __u64 page)
{
	struct vm_area_struct *vma = (void *)entry_arg(ctx, tramp, 1);

	if (!page || !driver_traced())
		return NULL;
	return adopt_page(ctx, stack_skip(tramp), vma, page,
			  insert_uaddr(ctx, tramp, page, vma), KEX_P_INSERT);
}

/*
 * insert_page_into_pte_locked(vma, pte, [addr,] page, prot): gets the page,
 * adds the file rmap and sets the PTE (set_pte_at is inlined: the PTE value
 * is read back at return).
 */
static __always_inline int insert_entry(void *ctx, bool tramp)
{
	__u64 page = entry_arg(ctx, tramp, insert_page_arg);
	__u64 pte = entry_arg(ctx, tramp, insert_pte_arg);
	struct kex_pfn_info *pi;
	struct insert_call *call;
	struct kex_event *e;
	__u32 zero = 0;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_INSERT);
	pi = kex_page(page);
	if (!pi)
		pi = adopt_inserted_page(ctx, tramp, page);
	if (!pi)
		return 0;
	count_match(cnt, KEX_P_INSERT);
	if (!ret_is_fexit(KEX_P_INSERT_RET)) {
		call = bpf_map_lookup_elem(&insert_calls, &zero);
		if (call && call->set) /* the call before it never returned here */
			count_tracking(KEX_TRACK_INSERT_CALLS);
		if (call) {
			call->call.page = page;
			call->call.pte = pte;
			call->call.pfn = pi->pfn;
			call->tid = current_tid();
			call->set = 1;
		} else {
			count_tracking(KEX_TRACK_INSERT_CALLS);
		}
	}

	e = reserve_stack_skip(ctx, KEX_EV_INSERT, KEX_P_INSERT,
			       stack_skip(tramp));
	if (!e)
		return 0;
	e->pfn = pi->pfn;
	e->arg0 = pi->index;
	e->arg1 = pte;
	page_counts(e, page);
	submit_page(e, pi);
	return 0;
}

/* with the fexit: one trampoline on the function (kextrace.bpf.h) */
KEX_ENTRY_PROGRAMS(insert_page_into_pte_locked, insert_page, insert_entry)

/*
 * vm_insert_page(vma, addr, page) of a driver page into a traced process:
 * remember addr for the insert (the clone lost it). Attached only where the
 * insert function has no addr argument.
 */
SEC("kprobe/vm_insert_page")
int kprobe__vm_insert_page(struct pt_regs *ctx)
{
	struct kex_insert_site site = {};
	__u32 tid = current_tid();
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_VM_INSERT_PAGE);
	site.page = KEX_CTX_REG(ctx, dx);
	if (kex_page(site.page) || !driver_traced())
		return 0;
	count_match(cnt, KEX_P_VM_INSERT_PAGE);
	site.vma = KEX_CTX_REG(ctx, di);
	site.addr = KEX_CTX_REG(ctx, si);
	track_update(&insert_sites, &tid, &site, KEX_TRACK_INSERT_SITES);
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
	struct insert_call *call;
	struct kex_counters *cnt;
	__u32 zero = 0;

	cnt = count_hit(KEX_P_INSERT_RET);
	call = bpf_map_lookup_elem(&insert_calls, &zero);
	if (!call || !call->set || call->tid != current_tid())
		return 0;
	count_match(cnt, KEX_P_INSERT_RET);
	call->set = 0;
	insert_return(call->call.page, call->call.pte, call->call.pfn,
		      (long)PT_REGS_RC(ctx));
	return 0;
}

/* the non-clone insert_page_into_pte_locked(vma, pte, addr, page, prot) */
SEC("fexit/insert_page_into_pte_locked")
int fexit__insert_page(void *ctx)
{
	__u64 page = 0, pte = 0, ret = 0;
	struct kex_pfn_info *pi;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_INSERT_RET);
	bpf_get_func_arg(ctx, insert_page_arg - 1, &page);
	bpf_get_func_arg(ctx, insert_pte_arg - 1, &pte);
	pi = kex_page(page);
	if (!pi)
		return 0;
	count_match(cnt, KEX_P_INSERT_RET);
	bpf_get_func_ret(ctx, &ret);
	insert_return(page, pte, pi->pfn, (int)ret);
	return 0;
}

/* page-level kprobe that only reports the page and its counts */
static __always_inline int page_event(struct pt_regs *ctx, __u8 arg,
				      __u32 type, __u32 probe)
{
	__u64 page = kprobe_arg(ctx, arg);
	struct kex_pfn_info *pi;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(probe);
	pi = kex_page(page);
	if (!pi)
		return 0;
	count_match(cnt, probe);
	e = reserve(type, probe);
	if (!e)
		return 0;
	e->pfn = pi->pfn;
	e->arg0 = pi->index;
	page_counts(e, page);
	submit_page(e, pi);
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
