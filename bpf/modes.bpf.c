// SPDX-License-Identifier: GPL-2.0
/*
 * modes.bpf.c - vm_insert_pages (mode batch), remap_pfn_range (mode pfn,
 * another driver's pfn map), vmf_insert_pfn_prot (another driver's pfn at a
 * fault)
 */
#include "kextrace.bpf.h"
#include "driver.bpf.h"

/* x86-64's base page: what one pfn maps */
#define KEX_PFN_BYTES 4096

/* remap_pfn_range / vmf_insert_pfn_prot entry per tid, for its return */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct pte_call);
} remap_calls SEC(".maps");

/*
 * vm_insert_pages(vma, addr, pages, num): mode batch maps many pages per
 * call; reported for kex's own mmap only (the tid's kex mmap window); for
 * another driver's, where its pages go is remembered for their inserts.
 */
SEC("kprobe/vm_insert_pages")
int kprobe__vm_insert_pages(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	__u64 num = 0, nump = KEX_CTX_REG(ctx, cx);
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_VM_INSERT_PAGES);
	if (!bpf_map_lookup_elem(&mmap_window, &tid)) {
		/* another driver's batch: where its inserts go (insert_uaddr) */
		struct kex_insert_site site = {};

		if (insert_addr_arg || !driver_traced())
			return 0;
		site.vma = KEX_CTX_REG(ctx, di);
		site.addr = KEX_CTX_REG(ctx, si);
		track_update(&insert_sites, &tid, &site, KEX_TRACK_INSERT_SITES);
		return 0;
	}
	count_match(cnt, KEX_P_VM_INSERT_PAGES);
	if (nump)
		bpf_probe_read_kernel(&num, sizeof(num), (void *)nump);
	e = reserve(KEX_EV_VM_INSERT_PAGES, KEX_P_VM_INSERT_PAGES);
	if (!e)
		return 0;
	e->addr = KEX_CTX_REG(ctx, si);
	e->arg0 = num;
	submit(e);
	return 0;
}

/*
 * A pfn mapping of another driver into a traced process, entered at @probe
 * (remap_pfn_range: @bytes from its size argument; vmf_insert_pfn_prot at a
 * fault: one page): its VMA (once) and the range; the return says whether
 * it mapped (driver_pfnmap_return).
 */
static __always_inline void driver_pfnmap(void *ctx, bool tramp, __u64 pfn,
					  struct kex_counters *cnt, __u32 probe,
					  __u64 bytes, bool at_fault)
{
	struct vm_area_struct *vma = (void *)entry_arg(ctx, tramp, 1);
	struct pte_call call = {};
	struct kex_event *e;
	__u32 tid = current_tid();

	count_match(cnt, probe);
	report_driver_vma(ctx, stack_skip(tramp), vma, probe);
	call.pfn = pfn;
	call.addr = entry_arg(ctx, tramp, 2);
	if (!ret_is_fexit(probe + 1))	/* the return probe follows its entry */
		track_update(&remap_calls, &tid, &call, KEX_TRACK_REMAP_CALLS);
	e = reserve(KEX_EV_DRIVER_PFNMAP, probe);
	if (!e)
		return;
	e->pfn = pfn;
	e->addr = call.addr;
	e->arg0 = bytes;
	e->arg1 = BPF_CORE_READ(vma, vm_start);
	e->ret = at_fault;
	submit(e);
}

static __always_inline void driver_pfnmap_return(__u64 pfn, __u64 addr, long ret,
						 __u32 probe)
{
	struct kex_event *e = reserve(KEX_EV_DRIVER_PFNMAP_RET, probe);

	if (!e)
		return;
	e->pfn = pfn;
	e->addr = addr;
	e->ret = ret;
	submit(e);
}

/*
 * remap_pfn_range(vma, addr, pfn, size, prot) of a kex page (mode pfn): the
 * mapping takes no reference and adds no rmap, its PTEs are special
 * (_PAGE_SPECIAL), so the zap will not see the page at all. Another
 * driver's into a traced process: the range (driver_pfnmap).
 */
static __always_inline int remap_pfn_entry(void *ctx, bool tramp)
{
	__u64 pfn = entry_arg(ctx, tramp, 3);
	struct kex_pfn_info *fi;
	struct pte_call call = {};
	struct kex_event *e;
	__u32 tid = current_tid();
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_REMAP_PFN);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi) {
		if (driver_traced())
			driver_pfnmap(ctx, tramp, pfn, cnt, KEX_P_REMAP_PFN,
				      entry_arg(ctx, tramp, 4), false);
		return 0;
	}
	count_match(cnt, KEX_P_REMAP_PFN);
	call.page = fi->page;
	call.pfn = pfn;
	call.addr = entry_arg(ctx, tramp, 2);
	if (!ret_is_fexit(KEX_P_REMAP_PFN_RET))
		track_update(&remap_calls, &tid, &call, KEX_TRACK_REMAP_CALLS);
	e = reserve_stack_skip(ctx, KEX_EV_REMAP_PFN, KEX_P_REMAP_PFN,
			       stack_skip(tramp));
	if (!e)
		return 0;
	e->pfn = pfn;
	e->addr = call.addr;
	e->arg0 = entry_arg(ctx, tramp, 4);
	e->arg1 = fi->index;
	page_counts(e, fi->page);
	submit(e);
	return 0;
}

/* with the fexit: one trampoline on the function (kextrace.bpf.h) */
KEX_ENTRY_PROGRAMS(remap_pfn_range, remap_pfn, remap_pfn_entry)

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
	struct pte_call *call;
	__u32 tid;

	call = call_returns(&remap_calls, &tid, KEX_P_REMAP_PFN_RET);
	if (!call)
		return 0;
	if (call->page)
		remap_return(call->page, call->pfn, call->addr, (long)PT_REGS_RC(ctx));
	else
		driver_pfnmap_return(call->pfn, call->addr, (long)PT_REGS_RC(ctx),
				     KEX_P_REMAP_PFN_RET);
	bpf_map_delete_elem(&remap_calls, &tid);
	return 0;
}

SEC("fexit/remap_pfn_range")
int fexit__remap_pfn(void *ctx)
{
	__u64 pfn = 0, addr = 0, ret = 0;
	struct kex_pfn_info *fi;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_REMAP_PFN_RET);
	bpf_get_func_arg(ctx, 2, &pfn);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi && !driver_traced())
		return 0;
	count_match(cnt, KEX_P_REMAP_PFN_RET);
	bpf_get_func_arg(ctx, 1, &addr);
	bpf_get_func_ret(ctx, &ret);
	if (fi)
		remap_return(fi->page, pfn, addr, (int)ret);
	else
		driver_pfnmap_return(pfn, addr, (int)ret, KEX_P_REMAP_PFN_RET);
	return 0;
}

/*
 * vmf_insert_pfn_prot(vma, addr, pfn, pgprot), which vmf_insert_pfn calls:
 * one pfn behind a special PTE at a fault of another driver's VM_PFNMAP
 * mapping (e.g. drm_gem_shmem_fault, whose pfns are shmem pages: the
 * mapping takes no reference on them). Its return is a vm_fault_t. The
 * kernel's own (the vDSO's vvar pages, which have no file) are left out.
 */
/* a driver's mapping has its device file; the vDSO's vvar has none */
static __always_inline bool driver_pfn_insert(struct vm_area_struct *vma)
{
	return driver_traced() && BPF_CORE_READ(vma, vm_file);
}

static __always_inline int insert_pfn_entry(void *ctx, bool tramp)
{
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_INSERT_PFN);
	if (!driver_pfn_insert((void *)entry_arg(ctx, tramp, 1)))
		return 0;
	driver_pfnmap(ctx, tramp, entry_arg(ctx, tramp, 3), cnt,
		      KEX_P_INSERT_PFN, KEX_PFN_BYTES, true);
	return 0;
}

/* with the fexit: one trampoline on the function (kextrace.bpf.h) */
KEX_ENTRY_PROGRAMS(vmf_insert_pfn_prot, insert_pfn, insert_pfn_entry)

SEC("kretprobe/vmf_insert_pfn_prot")
int kretprobe__insert_pfn(struct pt_regs *ctx)
{
	struct pte_call *call;
	__u32 tid;

	call = call_returns(&remap_calls, &tid, KEX_P_INSERT_PFN_RET);
	if (!call)
		return 0;
	driver_pfnmap_return(call->pfn, call->addr, (__u32)PT_REGS_RC(ctx),
			     KEX_P_INSERT_PFN_RET);
	bpf_map_delete_elem(&remap_calls, &tid);
	return 0;
}

SEC("fexit/vmf_insert_pfn_prot")
int fexit__insert_pfn(void *ctx)
{
	__u64 vma = 0, pfn = 0, addr = 0, ret = 0;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_INSERT_PFN_RET);
	bpf_get_func_arg(ctx, 0, &vma);
	/* the entry's filter: no return for a call it did not report */
	if (!driver_pfn_insert((void *)vma))
		return 0;
	count_match(cnt, KEX_P_INSERT_PFN_RET);
	bpf_get_func_arg(ctx, 1, &addr);
	bpf_get_func_arg(ctx, 2, &pfn);
	bpf_get_func_ret(ctx, &ret);
	driver_pfnmap_return(pfn, addr, (__u32)ret, KEX_P_INSERT_PFN_RET);
	return 0;
}

/* x86-64's pte_pfn(): bits 12-51 (PTE_PFN_MASK) */
#define KEX_PTE_PFN_MASK 0x000ffffffffff000ULL
/* include/linux/mm.h: a VMA of pfns behind special PTEs (remap_pfn_range) */
#define KEX_VM_PFNMAP 0x00000400UL

/*
 * vm_normal_page(vma, addr, pte) on a kex page in a VM_PFNMAP VMA (mode
 * pfn): the zap (and a write fault's do_wp_page, or a /proc page-table
 * walker) asks it for the page behind a present PTE, which it takes by
 * value; a special PTE makes it return NULL, so nothing after it on the
 * zap path sees the page. The one place a pfn map's PTE can be read: it
 * is written by remap_pfn_range's loop, whose per-PTE helpers are inline.
 * Other VMAs are left at the first test: the call is on every zap.
 */
SEC("kprobe/vm_normal_page")
int kprobe__pte_lookup(struct pt_regs *ctx)
{
	struct vm_area_struct *vma = (void *)KEX_CTX_REG(ctx, di);
	__u64 pte = KEX_CTX_REG(ctx, dx);
	__u64 pfn = (pte & KEX_PTE_PFN_MASK) >> 12;
	struct kex_pfn_info *fi;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_PTE_LOOKUP);
	if (!(BPF_CORE_READ(vma, vm_flags) & KEX_VM_PFNMAP))
		return 0;
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi)
		return 0;
	count_match(cnt, KEX_P_PTE_LOOKUP);
	e = reserve_stack_skip(ctx, KEX_EV_PTE_LOOKUP, KEX_P_PTE_LOOKUP,
			       KEX_STACK_AT_ENTRY);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->addr = KEX_CTX_REG(ctx, si);
	e->arg0 = pte;
	e->arg1 = fi->index;
	page_counts(e, fi->page);
	submit(e);
	return 0;
}
