/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bpf/events.h - every record kextrace's BPF programs send to user space.
 *
 * Included by the BPF side (after vmlinux.h) and by the C++ decoder (after
 * <linux/types.h>); only __u32/__u64-style types, no pointers, no padding
 * holes. The C++ side static_asserts the sizes below.
 *
 * Every record starts with struct kex_event. A record is either a plain
 * struct kex_event, or a struct kex_event followed by a payload (type
 * KEX_EV_DRIVER_VMA only: struct kex_vma_info) and stack_len kernel return
 * addresses (stack_len <= KEX_STACK_DEPTH), see KEX_RECORD_SIZE().
 *
 * Ring-buffer samples of stack-carrying types are reserved at
 * KEX_RECORD_SIZE(type, KEX_STACK_DEPTH) (bpf_ringbuf_reserve needs a
 * constant size): readers take the first KEX_RECORD_SIZE(type, stack_len)
 * bytes and ignore the rest of the sample. So are KEX_EV_LIFE samples, at
 * KEX_LIFE_SIZE(KEX_LIFE_STEPS): readers take KEX_LIFE_SIZE(arg0).
 */
#ifndef KEXTRACE_EVENTS_H
#define KEXTRACE_EVENTS_H

#define KEX_EVENTS_VERSION	1
#define KEX_STACK_DEPTH		24
#define KEX_NO_PFN		(~0ULL)
#define KEX_NO_COUNT		(-0x7fffffff - 1)	/* refcount/mapcount unknown */
#define KEX_MAX_PROBES		64

/* What happened. Values are part of the JSONL format: never renumber. */
enum kex_event_type {
	/* the rig's USDT phase markers (provider kex_rig); arg0 = enum kex_phase,
	 * addr = the probe's addr argument, arg1 = its pages argument */
	KEX_EV_RIG_PHASE	= 1,

	/* the traced process tree */
	KEX_EV_SYS_MMAP		= 2,	/* sys_exit_mmap: addr = result, arg0 = len, arg1 = fd, ret */
	KEX_EV_SYS_MUNMAP	= 3,	/* sys_enter_munmap: addr, arg0 = len */
	KEX_EV_SYS_MUNMAP_RET	= 4,	/* sys_exit_munmap: ret */
	KEX_EV_PROC_FORK	= 5,	/* sched_process_fork: arg0 = child tgid */
	KEX_EV_PROC_EXIT	= 6,	/* sched_process_exit of a thread group leader; arg0 = task->exit_code */
	KEX_EV_USER_FAULT	= 7,	/* exceptions:page_fault_user: addr, arg0 = error_code, arg1 = ip */

	/* the kex module's own tracepoints (system "kex") */
	KEX_EV_KEX_MMAP		= 10,	/* addr = vm_start, arg0 = vm_end, arg1 = pages | policy << 32 */
	KEX_EV_KEX_MMAP_DONE	= 11,	/* addr = vm_start, arg0 = pages mapped, ret */
	KEX_EV_KEX_PAGE_ALLOC	= 12,	/* pfn, arg0 = index, arg1 = struct page *, stack;
					 * from BPF only: addr = ts of the KEX_EV_PAGE_ALLOC held
					 * back for this page (0: none, or sent alone under
					 * --watch), ret = its order | its cpu << 32. One record
					 * instead of two; the intake (tracer/src/intake.cpp)
					 * sends the KEX_EV_PAGE_ALLOC on first as it would have
					 * come alone, then this one with addr and ret 0 */
	KEX_EV_KEX_PAGE_INSERT	= 13,	/* pfn, addr = user address, arg0 = index, ret, stack */
	KEX_EV_KEX_PAGE_FREE	= 14,	/* pfn, arg0 = index, arg1 = enum kex_free_reason, stack */
	KEX_EV_KEX_VMA_OPEN	= 15,	/* addr = vm_start, arg0 = vm_end */
	KEX_EV_KEX_VMA_CLOSE	= 16,	/* addr = vm_start, arg0 = vm_end */
	KEX_EV_KEX_RELEASE	= 17,	/* arg0 = pages still owned by the file */

	/* page allocator (kmem tracepoints), kex pages only */
	KEX_EV_PAGE_ALLOC	= 20,	/* mm_page_alloc in a kex mmap window: pfn, arg0 = order, arg1 = index;
					 * held back by BPF until kex_page_alloc claims the pfn (ts is
					 * the allocator's), so page-table pages are not reported */
	KEX_EV_PAGE_FREE	= 21,	/* mm_page_free: pfn, arg0 = order, arg1 = index, stack */
	KEX_EV_PAGE_FREE_BATCHED = 22,	/* mm_page_free_batched: pfn, arg1 = index */

	/* the insert path */
	KEX_EV_INSERT		= 30,	/* insert_page_into_pte_locked entry: pfn, addr (0: the clones drop
					 * addr; kex_page_insert has it), arg0 = index, arg1 = PTE address, stack */
	KEX_EV_INSERT_RET	= 31,	/* its return: pfn, ret; arg0 = PTE value read back, arg1 = PTE address */
	KEX_EV_RMAP_ADD		= 32,	/* page_add_file_rmap (or its successor): pfn, arg0 = index */
	KEX_EV_DO_SET_PTE	= 33,	/* do_set_pte (or set_pte_range) entry: pfn, addr, arg1 = PTE address, stack */
	KEX_EV_DO_SET_PTE_RET	= 34,	/* its return: arg0 = PTE value read back, arg1 = PTE address */

	/* the unmap path */
	KEX_EV_UNMAP_REGION	= 40,	/* unmap_region entry: addr = start, arg0 = end (6.12:
					 * vms_complete_munmap_vmas, see the probe report) */
	KEX_EV_UNMAP_REGION_RET	= 41,
	KEX_EV_EXIT_MMAP	= 42,	/* exit_mmap entry (process exit unmaps without unmap_region) */
	KEX_EV_EXIT_MMAP_RET	= 43,
	KEX_EV_RMAP_REMOVE	= 44,	/* page_remove_rmap (or successor): pfn, arg0 = index */
	KEX_EV_SET_DIRTY	= 45,	/* set_page_dirty/folio_mark_dirty at zap: pfn, arg0 = index */
	KEX_EV_PTE_LOOKUP	= 46,	/* vm_normal_page entry on a kex page in a VM_PFNMAP VMA (mode
					 * pfn): pfn, addr = user address, arg0 = the PTE it was given
					 * (by value: the zap's, a write fault's or a page-table
					 * walker's), arg1 = index, stack. The one place a pfn map's
					 * PTE is seen: special PTEs stop the walk there */

	/* the mapping modes (kex's "kex additions" tracepoints and their kernel calls) */
	KEX_EV_KEX_MMAP_MODE	= 50,	/* kex:kex_mmap_mode: addr = vm_start, arg0 = enum kex_map_mode */
	KEX_EV_KEX_BATCH	= 51,	/* kex:kex_batch: addr = uaddr, arg0 = index | requested << 32,
					 * arg1 = pages mapped, ret */
	KEX_EV_KEX_FAULT	= 52,	/* kex:kex_fault: pfn (KEX_NO_PFN on error), addr = fault address,
					 * arg0 = index, arg1 = KEX_FAULT_* flags (kex_uapi.h) */
	KEX_EV_VM_INSERT_PAGES	= 53,	/* vm_insert_pages entry inside a kex mmap: addr, arg0 = pages asked */
	KEX_EV_REMAP_PFN	= 54,	/* remap_pfn_range entry for a kex pfn: pfn, addr, arg0 = size */
	KEX_EV_REMAP_PFN_RET	= 55,	/* its return: pfn, addr, ret */

	/*
	 * kextrace --follow: a tracked page passed one of the functions with a
	 * struct page * / struct folio * argument (kprobe.multi, else kprobes).
	 * No stack: one record per call, thousands of functions. Below
	 * KEX_LOSS_SLOTS like every type (losses and produced are per type).
	 */
	KEX_EV_FOLLOW		= 56,	/* pfn = the tracked page's, arg0 = KEX_FOLLOW_ARG0(func, reg,
					 * kind): func = index into the attached list, reg = the
					 * argument (1-6) that held it, kind = enum
					 * kex_follow_kind: how it was passed;
					 * arg1 = the struct page * / struct folio * passed (of a
					 * batch or an array: the entry);
					 * refcount, mapcount of the tracked page */

	/*
	 * Any driver's pages, not only kex's: a page some driver inserts into a
	 * traced process's page table (vm_insert_page(s), remap_vmalloc_range,
	 * ... -> insert_page_into_pte_locked), or hands back from its
	 * vm_ops->fault (do_set_pte / set_pte_range), is followed from there on
	 * like a kex page; its allocation was not seen (it predates the insert).
	 * The VMA record's flags say which path (KEX_VMA_BY_FAULT).
	 */
	KEX_EV_DRIVER_VMA	= 60,	/* the first such page of a VMA: addr = vm_start, arg0 = vm_end,
					 * arg1 = vm_flags; struct kex_vma_info follows, then the
					 * mapping call chain (stack_len, always captured) */
	KEX_EV_DRIVER_PAGE	= 61,	/* a page adopted at its insert or fault: pfn, addr = user
					 * address (0: unknown), arg0 = vm_start of its VMA,
					 * arg1 = struct page *, ret = 1 at a fault, 0 at an insert */
	/*
	 * Another driver's pfn mapping into a traced process: pfns behind
	 * special PTEs, no struct page reference, no rmap, nothing for the zap
	 * to free; its VMA record (KEX_VMA_PFNMAP) comes first. Mapped at
	 * mmap (remap_pfn_range, io_remap_pfn_range: a range, ret = 0) or one
	 * pfn at a fault (vmf_insert_pfn_prot, under vmf_insert_pfn: ret = 1).
	 */
	KEX_EV_DRIVER_PFNMAP	= 62,	/* pfn = the first, addr = user address, arg0 = bytes,
					 * arg1 = vm_start of its VMA, ret = 1 at a fault */
	KEX_EV_DRIVER_PFNMAP_RET = 63,	/* its return: pfn, addr, ret (remap_pfn_range:
					 * 0 or -errno; at a fault: the vm_fault_t,
					 * VM_FAULT_NOPAGE 0x100 when mapped) */
	/*
	 * The allocation of an adopted page, when the trace saw it: an
	 * mm_page_alloc by a traced process (not under --all) without
	 * __GFP_MOVABLE (user memory and page cache are movable; a driver's
	 * buffer, a page table or a slab is not), remembered per block until
	 * its free. Sent right after the page's KEX_EV_DRIVER_PAGE; without
	 * it the allocation was not seen (it came before the trace, from a
	 * process not traced, or from a path without the tracepoint).
	 */
	/*
	 * kextrace --watch: a page's records kept in BPF (map "lives") and
	 * sent together once, when the page is freed, instead of one by one.
	 * struct kex_life: this header, then arg0 records of the page, each a
	 * struct kex_event as it would have been sent alone (never one with a
	 * stack: those go out alone and name a site the life's records use).
	 * A life with more than KEX_LIFE_STEPS records sends the rest alone.
	 */
	KEX_EV_LIFE		= 58,	/* pfn, arg0 = records that follow, arg1 = KEX_LIFE_*,
					 * ret = records it kept or tried to (> arg0: the rest
					 * went alone) */
	KEX_EV_DRIVER_ALLOC	= 59,	/* pfn = the adopted page's, arg0 = ts of the allocation,
					 * arg1 = the block's first pfn, ret = its order; pid, tid
					 * and cpu the allocating task's; stack = the allocation's */
};

/* KEX_EV_FOLLOW's arg0 */
enum kex_follow_kind {
	KEX_FOLLOW_K_PAGE	= 0,	/* a struct page * */
	KEX_FOLLOW_K_FOLIO	= 1,	/* a struct folio * (any of its pages) */
	KEX_FOLLOW_K_BATCH	= 2,	/* one of a struct folio_batch *'s folios */
	KEX_FOLLOW_K_ARRAY	= 3,	/* one entry of a page array, length in the next argument */
};
#define KEX_FOLLOW_ARG0(func, reg, kind) \
	((__u64)(func) | (__u64)(reg) << 32 | (__u64)(kind) << 40)
#define KEX_FOLLOW_FUNC(arg0)	((__u32)(arg0))
#define KEX_FOLLOW_REG(arg0)	((__u32)((arg0) >> 32) & 0xff)
#define KEX_FOLLOW_KIND(arg0)	((__u32)((arg0) >> 40) & 0xff)

/* The kex_map_mode values of kex:kex_mmap_mode (module/kex_uapi.h). */
enum kex_map_mode_ev {
	KEX_EV_MODE_INSERT	= 0,
	KEX_EV_MODE_BATCH	= 1,
	KEX_EV_MODE_FAULT	= 2,
	KEX_EV_MODE_PFN		= 3,
};

/* The rig's phases, in USDT probe order. */
enum kex_phase {
	KEX_PHASE_MMAP_BEGIN	= 1,
	KEX_PHASE_MMAP_END	= 2,
	KEX_PHASE_WRITE_BEGIN	= 3,
	KEX_PHASE_WRITE_END	= 4,
	KEX_PHASE_MUNMAP_BEGIN	= 5,
	KEX_PHASE_MUNMAP_END	= 6,
};

/* Why kex dropped its own reference (kex:kex_page_free reason field). */
enum kex_free_reason {
	KEX_FREE_AFTER_INSERT	= 0,	/* ref_policy=drop: the mapping owns the page */
	KEX_FREE_AT_CLOSE	= 1,	/* ref_policy=keep: last VMA closed */
	KEX_FREE_ERROR		= 2,	/* mmap error path */
};

struct kex_event {
	__u64 ts;		/* bpf_ktime_get_ns(): CLOCK_MONOTONIC, ns */
	__u32 type;		/* enum kex_event_type */
	__u32 cpu;
	__u32 pid;		/* tgid of current */
	__u32 tid;
	__u64 pfn;		/* page frame number, or KEX_NO_PFN */
	__u64 addr;		/* user virtual address, or 0 */
	__u64 arg0;		/* type-specific, see enum kex_event_type */
	__u64 arg1;
	__s64 ret;		/* return value where the type has one */
	__s32 refcount;		/* page->_refcount at the event, or KEX_NO_COUNT */
	__s32 mapcount;		/* page->_mapcount + 1 at the event, or KEX_NO_COUNT */
	__u16 probe;		/* index of the probe that produced it (probe report) */
	__u16 stack_len;	/* kernel return addresses following this struct */
	__u32 stack_site;	/* --stacks=sites: the call site of its stack, 0: none */
};

/*
 * A stack site (--stacks=sites): a record with stack_len > 0 and a site
 * defines the site's stack; a record with a site and no stack ran under
 * that stack, defined by an earlier record of the same ring buffer (the
 * ring keeps reservation order, and a site is named only after its defining
 * record was reserved). Site numbers have 31 bits: KEX_SITE_CHECK marks a
 * record that reused the site and walked anyway (kextrace
 * --debug-stack-check), its stack the walk's, to compare with the site's.
 */
#define KEX_SITE_CHECK	(1U << 31)

#define KEX_EVENT_SIZE(stack_len) \
	(sizeof(struct kex_event) + (stack_len) * sizeof(__u64))

/*
 * The payload of a KEX_EV_DRIVER_VMA record, between its struct kex_event and
 * its stack: what names the mapping and its owner. User space turns the
 * pointers into symbols (kallsyms: module or built-in) and the name parts
 * and the file system magic into a path ("/dev/kex"), "socket:[ino]" or
 * "anon_inode:NAME".
 */
#define KEX_NAME_PARTS		4
#define KEX_NAME_LEN		32

struct kex_vma_info {
	__u64 vma;		/* struct vm_area_struct * */
	__u64 f_op;		/* vm_file->f_op, 0: no file */
	__u64 mmap;		/* the mmap handler: a socket's proto_ops->mmap, else f_op->mmap */
	__u64 vm_ops;		/* vma->vm_ops at the insert (many drivers set it after) */
	__u64 fault;		/* vm_ops->fault then, 0: none */
	__u64 ino;		/* the file's inode number */
	__u32 magic;		/* its file system's s_magic (sockfs, anon_inodefs, devtmpfs, ...) */
	__u32 rdev;		/* i_rdev: a device node's number (new_encode_dev), 0 otherwise */
	__u32 parts;		/* name[0..parts) used, innermost first */
	__u32 flags;		/* KEX_VMA_NAME_* */
	char name[KEX_NAME_PARTS][KEX_NAME_LEN];	/* path components, innermost first */
};

#define KEX_VMA_NAME_ROOT	(1U << 0)	/* the walk reached the root: name is the whole path */
#define KEX_VMA_BY_FAULT	(1U << 1)	/* its first page came from vm_ops->fault, not an insert */
#define KEX_VMA_PFNMAP		(1U << 2)	/* reported at a pfn mapping (KEX_EV_DRIVER_PFNMAP) */

/*
 * A KEX_EV_LIFE record (kextrace --watch); only the first arg0 steps are sent.
 * A power of two: an index masked with KEX_LIFE_STEPS - 1 is in bounds.
 */
#define KEX_LIFE_STEPS		16

struct kex_life {
	struct kex_event head;
	struct kex_event steps[KEX_LIFE_STEPS];
};

#define KEX_LIFE_FREED		(1U << 0)	/* sent at the page's free */
#define KEX_LIFE_OPEN		(1U << 1)	/* read from the map once the trace ended: not freed */

#define KEX_LIFE_SIZE(steps)	(sizeof(struct kex_event) * (1 + (steps)))

/* The bytes a record of type with stack_len stack entries takes. */
#define KEX_PAYLOAD_SIZE(type) \
	((type) == KEX_EV_DRIVER_VMA ? sizeof(struct kex_vma_info) : 0)
#define KEX_RECORD_SIZE(type, stack_len) \
	(KEX_EVENT_SIZE(stack_len) + KEX_PAYLOAD_SIZE(type))

/* Event type slots of the loss and produced counters (kex_counters, kextrace.h). */
#define KEX_LOSS_SLOTS		64

/*
 * Tracking failures, in the BPF map "tracking" (array): every failed
 * bpf_map_update_elem on a map whose entry the trace depends on (full map,
 * no memory) counts in its map's slot; user space reports them as losses
 * (the events that entry would have let through are missing). Values are
 * part of the JSON output: never renumber.
 */
enum kex_track_slot {
	KEX_TRACK_TRACED	= 0,	/* a traced process's child is not traced */
	KEX_TRACK_PAGES		= 1,	/* a kex page not findable by its struct page * (its vmemmap
					 * base not the one every followed page has) */
	KEX_TRACK_PFNS		= 2,	/* a kex page's pfn not remembered */
	KEX_TRACK_MMAP_WINDOW	= 3,	/* a kex mmap window not opened */
	KEX_TRACK_PENDING_ALLOC	= 4,	/* an mm_page_alloc not held back (none since it is
					 * held in its window's entry: kept for the numbering) */
	KEX_TRACK_INSERT_CALLS	= 5,	/* insert entry state for its kretprobe not kept, or
					 * taken by another entry before its return */
	KEX_TRACK_SET_PTE_CALLS	= 6,	/* do_set_pte entry state for its kretprobe */
	KEX_TRACK_MMAP_CALLS	= 7,	/* sys_enter_mmap arguments */
	KEX_TRACK_IN_UNMAP	= 8,	/* unmap entry state for its kretprobe */
	KEX_TRACK_IN_EXIT_MMAP	= 9,	/* exit_mmap entry state */
	KEX_TRACK_REMAP_CALLS	= 10,	/* remap_pfn_range entry state for its kretprobe */
	/* not a map: a non-kex page whose pfn could not be computed (no
	 * vmemmap_base, or not a struct page pointer: see page_to_pfn); its
	 * records carry KEX_NO_PFN */
	KEX_TRACK_PFN_UNKNOWN	= 11,
	KEX_TRACK_DRIVER_VMAS	= 12,	/* a driver VMA's "reported" mark (it is reported again) */
	KEX_TRACK_INSERT_SITES	= 13,	/* a vm_insert_page(s) call's address not remembered */
	KEX_TRACK_DRIVER_ALLOCS	= 14,	/* an allocation of a traced process not remembered:
					 * a driver page from it reads "allocation unseen" */
	KEX_TRACK_STACK_SITES	= 15,	/* a stack site not remembered: its stack is
					 * walked again (nothing is lost, it costs) */
	KEX_TRACK_COUNT
};

#define KEX_TRACK_SLOTS		16

#endif /* KEXTRACE_EVENTS_H */
