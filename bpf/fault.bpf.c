// SPDX-License-Identifier: GPL-2.0
/* fault.bpf.c - the fault path: do_set_pte / set_pte_range (kex's pages, a driver's) */
#include "kextrace.bpf.h"
#include "driver.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct pte_call);
} set_pte_calls SEC(".maps");

/* a driver's page its fault handler handed back (driver.bpf.h) */
static __always_inline struct kex_pfn_info *
adopt_fault_page(void *ctx, bool tramp, struct vm_fault *vmf, __u64 page)
{
	struct vm_area_struct *vma;

	if (!driver_traced())
		return NULL;
	vma = BPF_CORE_READ(vmf, vma);
	if (!driver_fault_page(vma, page))
		return NULL;
	return adopt_page(ctx, stack_skip(tramp), vma, page,
			  entry_arg(ctx, tramp, set_pte_addr_arg), KEX_P_SET_PTE);
}

/* do_set_pte(vmf, page, addr) / set_pte_range(vmf, folio, page, nr, addr) */
static __always_inline int set_pte_entry(void *ctx, bool tramp)
{
	struct vm_fault *vmf = (struct vm_fault *)entry_arg(ctx, tramp, 1);
	__u64 page = entry_arg(ctx, tramp, set_pte_page_arg);
	struct kex_pfn_info *pi;
	struct pte_call call = {};
	struct kex_event *e;
	__u32 tid = current_tid();
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_SET_PTE);
	pi = kex_page(page);
	if (!pi)
		pi = adopt_fault_page(ctx, tramp, vmf, page);
	if (pi)
		call.pfn = pi->pfn;
	else if (fault_all_pages && current_traced())
		call.pfn = page_to_pfn(page);
	else
		return 0;
	count_match(cnt, KEX_P_SET_PTE);
	call.page = page;
	call.pte = (__u64)BPF_CORE_READ(vmf, pte);
	call.addr = entry_arg(ctx, tramp, set_pte_addr_arg);
	if (!ret_is_fexit(KEX_P_SET_PTE_RET))
		track_update(&set_pte_calls, &tid, &call,
			     KEX_TRACK_SET_PTE_CALLS);

	e = reserve_stack_skip(ctx, KEX_EV_DO_SET_PTE, KEX_P_SET_PTE,
			       stack_skip(tramp));
	if (!e)
		return 0;
	e->pfn = call.pfn;
	e->addr = call.addr;
	e->arg1 = call.pte;
	page_counts(e, page);
	submit_page(e, pi);
	return 0;
}

/* with the fexit: one trampoline on the function (kextrace.bpf.h) */
KEX_ENTRY_PROGRAMS(do_set_pte, set_pte, set_pte_entry)

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
	struct pte_call *call;
	__u32 tid;

	call = call_returns(&set_pte_calls, &tid, KEX_P_SET_PTE_RET);
	if (!call)
		return 0;
	set_pte_return(call);
	bpf_map_delete_elem(&set_pte_calls, &tid);
	return 0;
}

SEC("fexit/do_set_pte")
int fexit__set_pte(void *ctx)
{
	struct kex_pfn_info *pi;
	struct pte_call call = {};
	struct vm_fault *vmf;
	__u64 arg = 0;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_SET_PTE_RET);
	bpf_get_func_arg(ctx, set_pte_page_arg - 1, &call.page);
	pi = kex_page(call.page);
	if (pi)
		call.pfn = pi->pfn;
	else if (fault_all_pages && current_traced())
		call.pfn = page_to_pfn(call.page);
	else
		return 0;
	count_match(cnt, KEX_P_SET_PTE_RET);
	bpf_get_func_arg(ctx, 0, &arg);
	vmf = (struct vm_fault *)arg;
	call.pte = (__u64)BPF_CORE_READ(vmf, pte);
	bpf_get_func_arg(ctx, set_pte_addr_arg - 1, &call.addr);
	set_pte_return(&call);
	return 0;
}
