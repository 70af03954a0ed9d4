// SPDX-License-Identifier: GPL-2.0
/* kex_tp.bpf.c - the kex module's own tracepoints (system kex) */
#include "kextrace.bpf.h"

SEC("tp/kex/kex_mmap")
int tp__kex_mmap(struct kex_tp_mmap *ctx)
{
	__u32 tid = current_tid();
	struct pending_alloc none = { .pfn = KEX_NO_PFN };
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_KEX_MMAP);
	if (!kex_traced())
		return 0;
	count_match(cnt, KEX_P_KEX_MMAP);
	track_update(&mmap_window, &tid, &none, KEX_TRACK_MMAP_WINDOW);
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
	struct kex_event *e;

	if (!window_closes(&mmap_window, KEX_P_KEX_MMAP_DONE))
		return 0;
	e = reserve(KEX_EV_KEX_MMAP_DONE, KEX_P_KEX_MMAP_DONE);
	if (!e)
		return 0;
	e->addr = ctx->vm_start;
	e->arg0 = ctx->mapped;
	e->ret = ctx->ret;
	submit(e);
	return 0;
}

/*
 * --watch: a held-back allocation goes as its own KEX_EV_PAGE_ALLOC record,
 * into the page's life (watch.bpf.h keeps lives of plain records)
 */
static __always_inline void held_alone(const struct pending_alloc *pa,
				       __u64 pfn, __u32 index, __u64 page)
{
	struct kex_event *e = reserve(KEX_EV_PAGE_ALLOC, KEX_P_MM_PAGE_ALLOC);

	if (!e)
		return;
	e->ts = pa->ts;
	e->cpu = pa->cpu;
	e->pfn = pfn;
	e->arg0 = pa->order;
	e->arg1 = index;
	page_counts(e, page);
	submit(e);
}

/*
 * A held-back allocation riding in its kex_page_alloc record (@sent: false
 * when it got no room): counted as a KEX_EV_PAGE_ALLOC record of mm_page_alloc's
 * probe, produced and sent or lost with it, as reserve() would have, so
 * that produced = received + lost holds per type once the intake has split
 * it off (events.h). @c: count_hit()'s.
 */
static __always_inline void held_counted(struct kex_counters *c, bool sent)
{
	if (!c)
		return;
	c->produced[type_slot(KEX_EV_PAGE_ALLOC)]++;
	if (sent)
		probe_slot(c, KEX_P_MM_PAGE_ALLOC)->emitted++;
	else
		c->lost[type_slot(KEX_EV_PAGE_ALLOC)]++;
}

SEC("tp/kex/kex_page_alloc")
int tp__kex_page_alloc(struct kex_tp_page_alloc *ctx)
{
	__u32 tid = current_tid();
	struct kex_pfn_info fi = {};
	struct pending_alloc *pa, *held = NULL;
	struct kex_event *e;
	__u64 page = ctx->page, pfn = ctx->pfn, base;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_KEX_PAGE_ALLOC);
	if (!kex_traced() || !tracking_armed)
		return 0;
	count_match(cnt, KEX_P_KEX_PAGE_ALLOC);
	/*
	 * the vmemmap base this page implies: kex_page() finds it by its
	 * pointer only if it is the base every followed page has (always, on
	 * SPARSEMEM_VMEMMAP; else it counts as a page not remembered by
	 * pointer, and its pointer's probes miss it)
	 */
	base = page - pfn * bpf_core_type_size(struct page);
	if (!kex_vmemmap)
		kex_vmemmap = base;
	else if (kex_vmemmap != base)
		count_tracking(KEX_TRACK_PAGES);
	fi.page = page;
	fi.pfn = pfn;
	fi.index = ctx->index;
	track_update(&pfns, &pfn, &fi, KEX_TRACK_PFNS);

	/* the allocator's own event for this page, held back until now */
	pa = bpf_map_lookup_elem(&mmap_window, &tid);
	if (pa && pa->pfn == pfn) {
		pa->pfn = KEX_NO_PFN;
		if (!watch_lives)
			held = pa;
		else
			held_alone(pa, pfn, ctx->index, page);
	}

	e = reserve_stack_tp(ctx, KEX_EV_KEX_PAGE_ALLOC, KEX_P_KEX_PAGE_ALLOC);
	if (!e) {
		if (held)
			held_counted(cnt, false);
		return 0;
	}
	e->pfn = pfn;
	e->arg0 = ctx->index;
	e->arg1 = page;
	if (held) {
		held_counted(cnt, true);
		e->addr = held->ts;
		e->ret = held->order | (__u64)held->cpu << 32;
	}
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
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_KEX_PAGE_INSERT);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi)
		return 0;
	count_match(cnt, KEX_P_KEX_PAGE_INSERT);
	/* the insert's record before it has its chain, two frames longer */
	e = reserve_stack_skip(ctx, KEX_EV_KEX_PAGE_INSERT,
			       KEX_P_KEX_PAGE_INSERT,
			       KEX_STACK_TP | KEX_STACK_ALL_ONLY);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->addr = ctx->uaddr;
	e->arg0 = ctx->index;
	e->ret = ctx->ret;
	page_counts(e, fi->page);
	submit_page(e, fi);
	return 0;
}

SEC("tp/kex/kex_page_free")
int tp__kex_page_free(struct kex_tp_page_free *ctx)
{
	__u64 pfn = ctx->pfn;
	struct kex_pfn_info *fi;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_KEX_PAGE_FREE);
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi || fi->freed)
		return 0;
	count_match(cnt, KEX_P_KEX_PAGE_FREE);
	e = reserve_stack_tp(ctx, KEX_EV_KEX_PAGE_FREE, KEX_P_KEX_PAGE_FREE);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->arg0 = ctx->index;
	e->arg1 = ctx->reason;
	page_counts(e, fi->page);
	submit_page(e, fi);
	return 0;
}

static __always_inline int vma_event(__u64 start, __u64 end, __u32 type,
				     __u32 probe)
{
	struct kex_counters *cnt;

	cnt = count_hit(probe);
	if (!kex_traced())
		return 0;
	count_match(cnt, probe);
	return emit_range(type, probe, start, end);
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
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_KEX_RELEASE);
	if (!kex_traced())
		return 0;
	count_match(cnt, KEX_P_KEX_RELEASE);
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
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_KEX_MMAP_MODE);
	if (!kex_traced())
		return 0;
	count_match(cnt, KEX_P_KEX_MMAP_MODE);
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
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_KEX_BATCH);
	if (!kex_traced())
		return 0;
	count_match(cnt, KEX_P_KEX_BATCH);
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
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_KEX_FAULT);
	if (!kex_traced())
		return 0;
	count_match(cnt, KEX_P_KEX_FAULT);
	e = reserve_stack_tp(ctx, KEX_EV_KEX_FAULT, KEX_P_KEX_FAULT);
	if (!e)
		return 0;
	e->pfn = pfn;
	e->addr = ctx->uaddr;
	e->arg0 = ctx->index;
	e->arg1 = ctx->flags;
	fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (fi)
		page_counts(e, fi->page);
	submit_page(e, fi);
	return 0;
}
