/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kex_trace.h - tracepoints of the kex module (system "kex").
 *
 * The field types and order are ABI for bpf/: the BPF programs read each
 * event as a plain C struct after the 8-byte common header (see
 * docs/architecture.md). Append nothing in the middle; never reorder.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM kex

#if !defined(_KEX_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _KEX_TRACE_H

#include <linux/tracepoint.h>

/* Entry of mmap, after the request was validated. */
TRACE_EVENT(kex_mmap,
	TP_PROTO(u64 vm_start, u64 vm_end, u64 pgoff, u32 pages, u32 policy),
	TP_ARGS(vm_start, vm_end, pgoff, pages, policy),
	TP_STRUCT__entry(
		__field(u64, vm_start)
		__field(u64, vm_end)
		__field(u64, pgoff)
		__field(u32, pages)
		__field(u32, policy)
	),
	TP_fast_assign(
		__entry->vm_start = vm_start;
		__entry->vm_end = vm_end;
		__entry->pgoff = pgoff;
		__entry->pages = pages;
		__entry->policy = policy;
	),
	TP_printk("vm_start=0x%llx vm_end=0x%llx pgoff=%llu pages=%u policy=%s",
		  __entry->vm_start, __entry->vm_end, __entry->pgoff,
		  __entry->pages, __entry->policy ? "keep" : "drop")
);

/* End of mmap: ret 0 or -errno, pages inserted (undone by the core on error). */
TRACE_EVENT(kex_mmap_done,
	TP_PROTO(u64 vm_start, s32 ret, u32 mapped),
	TP_ARGS(vm_start, ret, mapped),
	TP_STRUCT__entry(
		__field(u64, vm_start)
		__field(s32, ret)
		__field(u32, mapped)
	),
	TP_fast_assign(
		__entry->vm_start = vm_start;
		__entry->ret = ret;
		__entry->mapped = mapped;
	),
	TP_printk("vm_start=0x%llx ret=%d mapped=%u",
		  __entry->vm_start, __entry->ret, __entry->mapped)
);

/* After each successful alloc_page (in mode fault: in the .fault handler). */
TRACE_EVENT(kex_page_alloc,
	TP_PROTO(u64 pfn, u64 page, u32 index),
	TP_ARGS(pfn, page, index),
	TP_STRUCT__entry(
		__field(u64, pfn)
		__field(u64, page)
		__field(u32, index)
		__field(u32, pad)
	),
	TP_fast_assign(
		__entry->pfn = pfn;
		__entry->page = page;
		__entry->index = index;
		__entry->pad = 0;
	),
	TP_printk("pfn=0x%llx page=0x%llx index=%u",
		  __entry->pfn, __entry->page, __entry->index)
);

/*
 * After each page mapped at mmap time, whatever the call returned:
 * vm_insert_page (mode insert), remap_pfn_range (mode pfn), or, in mode
 * batch, once per page vm_insert_pages mapped (ret 0) and once for the page
 * it failed at. Mode fault fires kex_fault instead.
 */
TRACE_EVENT(kex_page_insert,
	TP_PROTO(u64 pfn, u64 uaddr, u32 index, s32 ret),
	TP_ARGS(pfn, uaddr, index, ret),
	TP_STRUCT__entry(
		__field(u64, pfn)
		__field(u64, uaddr)
		__field(u32, index)
		__field(s32, ret)
	),
	TP_fast_assign(
		__entry->pfn = pfn;
		__entry->uaddr = uaddr;
		__entry->index = index;
		__entry->ret = ret;
	),
	TP_printk("pfn=0x%llx uaddr=0x%llx index=%u ret=%d",
		  __entry->pfn, __entry->uaddr, __entry->index, __entry->ret)
);

/* Before each __free_page kex itself does; reason: enum kex_free_reason. */
TRACE_EVENT(kex_page_free,
	TP_PROTO(u64 pfn, u32 index, u32 reason),
	TP_ARGS(pfn, index, reason),
	TP_STRUCT__entry(
		__field(u64, pfn)
		__field(u32, index)
		__field(u32, reason)
	),
	TP_fast_assign(
		__entry->pfn = pfn;
		__entry->index = index;
		__entry->reason = reason;
	),
	TP_printk("pfn=0x%llx index=%u reason=%s", __entry->pfn,
		  __entry->index,
		  __print_symbolic(__entry->reason,
				   { 0, "after_insert" },
				   { 1, "at_close" },
				   { 2, "error" }))
);

DECLARE_EVENT_CLASS(kex_vma,
	TP_PROTO(u64 vm_start, u64 vm_end),
	TP_ARGS(vm_start, vm_end),
	TP_STRUCT__entry(
		__field(u64, vm_start)
		__field(u64, vm_end)
	),
	TP_fast_assign(
		__entry->vm_start = vm_start;
		__entry->vm_end = vm_end;
	),
	TP_printk("vm_start=0x%llx vm_end=0x%llx",
		  __entry->vm_start, __entry->vm_end)
);

/* vm_ops->open: fork, or the new half of a split VMA. */
DEFINE_EVENT(kex_vma, kex_vma_open,
	TP_PROTO(u64 vm_start, u64 vm_end),
	TP_ARGS(vm_start, vm_end)
);

/* vm_ops->close: munmap (whole or part), exit, or a failed mmap_region. */
DEFINE_EVENT(kex_vma, kex_vma_close,
	TP_PROTO(u64 vm_start, u64 vm_end),
	TP_ARGS(vm_start, vm_end)
);

/* Last close of an open file; pages: kex references still owned through it. */
TRACE_EVENT(kex_release,
	TP_PROTO(u32 pages),
	TP_ARGS(pages),
	TP_STRUCT__entry(
		__field(u32, pages)
		__field(u32, pad)
	),
	TP_fast_assign(
		__entry->pages = pages;
		__entry->pad = 0;
	),
	TP_printk("pages=%u", __entry->pages)
);

/*
 * Added with the mapping modes (docs/architecture.md, "kex additions").
 */

/* Right after kex_mmap: the mode of this mmap, enum kex_map_mode. */
TRACE_EVENT(kex_mmap_mode,
	TP_PROTO(u64 vm_start, u32 mode),
	TP_ARGS(vm_start, mode),
	TP_STRUCT__entry(
		__field(u64, vm_start)
		__field(u32, mode)
		__field(u32, pad)
	),
	TP_fast_assign(
		__entry->vm_start = vm_start;
		__entry->mode = mode;
		__entry->pad = 0;
	),
	TP_printk("vm_start=0x%llx mode=%s", __entry->vm_start,
		  __print_symbolic(__entry->mode,
				   { 0, "insert" },
				   { 1, "batch" },
				   { 2, "fault" },
				   { 3, "pfn" }))
);

/*
 * Mode batch: after each vm_insert_pages call for pages index ..
 * index + requested - 1 at uaddr; mapped of them are in the page tables,
 * ret 0 or -errno.
 */
TRACE_EVENT(kex_batch,
	TP_PROTO(u64 uaddr, u32 index, u32 requested, u32 mapped, s32 ret),
	TP_ARGS(uaddr, index, requested, mapped, ret),
	TP_STRUCT__entry(
		__field(u64, uaddr)
		__field(u32, index)
		__field(u32, requested)
		__field(u32, mapped)
		__field(s32, ret)
	),
	TP_fast_assign(
		__entry->uaddr = uaddr;
		__entry->index = index;
		__entry->requested = requested;
		__entry->mapped = mapped;
		__entry->ret = ret;
	),
	TP_printk("uaddr=0x%llx index=%u requested=%u mapped=%u ret=%d",
		  __entry->uaddr, __entry->index, __entry->requested,
		  __entry->mapped, __entry->ret)
);

/*
 * Mode fault: each call of the .fault handler, at its end. pfn is the page
 * handed to the core (~0 if the fault failed); flags: KEX_FAULT_*.
 */
TRACE_EVENT(kex_fault,
	TP_PROTO(u64 uaddr, u64 pfn, u32 index, u32 flags),
	TP_ARGS(uaddr, pfn, index, flags),
	TP_STRUCT__entry(
		__field(u64, uaddr)
		__field(u64, pfn)
		__field(u32, index)
		__field(u32, flags)
	),
	TP_fast_assign(
		__entry->uaddr = uaddr;
		__entry->pfn = pfn;
		__entry->index = index;
		__entry->flags = flags;
	),
	TP_printk("uaddr=0x%llx pfn=0x%llx index=%u flags=%s",
		  __entry->uaddr, __entry->pfn, __entry->index,
		  __print_flags(__entry->flags, "|",
				{ 1, "write" },
				{ 2, "alloc" },
				{ 4, "error" }))
);

#endif /* _KEX_TRACE_H */

/* This part must be outside the include guard. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE kex_trace
#include <trace/define_trace.h>
