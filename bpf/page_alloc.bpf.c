// SPDX-License-Identifier: GPL-2.0
/*
 * page_alloc.bpf.c - the page allocator: kmem:mm_page_alloc, mm_page_free(_batched);
 * kex's allocations, and those a driver page may come from (driver.bpf.h)
 */
#include "kextrace.bpf.h"
#include "driver.bpf.h"

/*
 * Inside a kex mmap window the module allocates its pages, but the kernel
 * also allocates page tables there: remember the latest order-0 allocation
 * of the tid and emit it only when kex:kex_page_alloc claims that pfn.
 */
SEC("tp/kmem/mm_page_alloc")
int tp__mm_page_alloc(struct trace_event_raw_mm_page_alloc *ctx)
{
	__u32 tid = current_tid();
	struct pending_alloc *pa;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_MM_PAGE_ALLOC);
	pa = bpf_map_lookup_elem(&mmap_window, &tid);
	if (!pa) {
		remember_alloc(ctx);
		return 0;
	}
	if (ctx->order != 0)
		return 0;
	count_match(cnt, KEX_P_MM_PAGE_ALLOC);
	/* in place: only this tid reads its entry, and not while it writes */
	pa->ts = bpf_ktime_get_ns();
	pa->pfn = ctx->pfn;
	pa->cpu = bpf_get_smp_processor_id();
	pa->order = ctx->order;
	return 0;
}

SEC("tp/kmem/mm_page_free")
int tp__mm_page_free(struct trace_event_raw_mm_page_free *ctx)
{
	__u64 pfn = ctx->pfn;
	struct kex_pfn_info *fi;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_MM_PAGE_FREE);
	forget_alloc(pfn);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi)
		return 0;
	if (fi->freed) {
		/* stale: freed before, reused by someone else since */
		bpf_map_delete_elem(&pfns, &pfn);
		return 0;
	}
	count_match(cnt, KEX_P_MM_PAGE_FREE);
	fi->freed = 1;
	e = reserve_stack_tp(ctx, KEX_EV_PAGE_FREE, KEX_P_MM_PAGE_FREE);
	if (e) {
		e->pfn = pfn;
		e->arg0 = ctx->order;
		e->arg1 = fi->index;
		page_counts(e, fi->page);
		submit_page(e, fi);
	}
	return 0;
}

/* follows mm_page_free on the release_pages/folios_put path only */
SEC("tp/kmem/mm_page_free_batched")
int tp__mm_page_free_batched(struct trace_event_raw_mm_page_free_batched *ctx)
{
	__u64 pfn = ctx->pfn;
	struct kex_pfn_info *fi;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_MM_PAGE_FREE_BATCHED);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi || !fi->freed)
		return 0;
	count_match(cnt, KEX_P_MM_PAGE_FREE_BATCHED);
	e = reserve(KEX_EV_PAGE_FREE_BATCHED, KEX_P_MM_PAGE_FREE_BATCHED);
	if (e) {
		e->pfn = pfn;
		e->arg1 = fi->index;
		submit_page(e, fi);
	}
	bpf_map_delete_elem(&pfns, &pfn);
	return 0;
}
