/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bpf/kextrace.h - what the BPF programs (bpf/NAME.bpf.c) and the loader (tracer/src/) share
 * besides the records in events.h: the probe ids (the "probe" field of every
 * record and the index into the probe_stats map), the per-page bookkeeping
 * the maps hold, and the tuning constants.
 *
 * Plain C, __u32/__u64 only: included after vmlinux.h on the BPF side and
 * after <linux/types.h> in C++.
 */
#ifndef KEXTRACE_KEXTRACE_H
#define KEXTRACE_KEXTRACE_H

#include "events.h"

/*
 * One id per BPF program. Part of the JSON output (the probe report keys
 * events by it): append only, never renumber.
 */
enum kex_probe_id {
	KEX_P_INSERT		= 0,	/* kprobe insert_page_into_pte_locked[.clone] */
	KEX_P_INSERT_RET	= 1,	/* its kretprobe */
	KEX_P_RMAP_ADD		= 2,	/* page_add_file_rmap / folio_add_file_rmap_ptes */
	KEX_P_RMAP_REMOVE	= 3,	/* page_remove_rmap / folio_remove_rmap_ptes */
	KEX_P_SET_DIRTY		= 4,	/* set_page_dirty / folio_mark_dirty */
	KEX_P_SET_PTE		= 5,	/* do_set_pte / set_pte_range */
	KEX_P_SET_PTE_RET	= 6,
	KEX_P_UNMAP		= 7,	/* unmap_region / vms_clear_ptes / unmap_vmas */
	KEX_P_UNMAP_RET		= 8,
	KEX_P_EXIT_MMAP		= 9,
	KEX_P_EXIT_MMAP_RET	= 10,
	KEX_P_MM_PAGE_ALLOC	= 11,	/* tp kmem:mm_page_alloc */
	KEX_P_MM_PAGE_FREE	= 12,	/* tp kmem:mm_page_free */
	KEX_P_MM_PAGE_FREE_BATCHED = 13, /* tp kmem:mm_page_free_batched */
	KEX_P_KEX_MMAP		= 14,	/* tp kex:kex_mmap */
	KEX_P_KEX_MMAP_DONE	= 15,
	KEX_P_KEX_PAGE_ALLOC	= 16,
	KEX_P_KEX_PAGE_INSERT	= 17,
	KEX_P_KEX_PAGE_FREE	= 18,
	KEX_P_KEX_VMA_OPEN	= 19,
	KEX_P_KEX_VMA_CLOSE	= 20,
	KEX_P_KEX_RELEASE	= 21,
	KEX_P_SYS_ENTER_MMAP	= 22,	/* stashes len/fd for sys_exit_mmap */
	KEX_P_SYS_EXIT_MMAP	= 23,
	KEX_P_SYS_ENTER_MUNMAP	= 24,
	KEX_P_SYS_EXIT_MUNMAP	= 25,
	KEX_P_PROC_FORK		= 26,	/* tp_btf sched_process_fork */
	KEX_P_PROC_EXIT		= 27,	/* tp sched:sched_process_exit */
	KEX_P_USER_FAULT	= 28,	/* tp exceptions:page_fault_user */
	KEX_P_USDT		= 29,	/* usdt kex_rig:* (one program, cookie = phase) */
	KEX_P_KEX_MMAP_MODE	= 30,	/* tp kex:kex_mmap_mode (kex with mapping modes) */
	KEX_P_KEX_BATCH		= 31,	/* tp kex:kex_batch */
	KEX_P_KEX_FAULT		= 32,	/* tp kex:kex_fault */
	KEX_P_VM_INSERT_PAGES	= 33,	/* kprobe vm_insert_pages (mode batch) */
	KEX_P_REMAP_PFN		= 34,	/* kprobe remap_pfn_range (mode pfn) */
	KEX_P_REMAP_PFN_RET	= 35,
	KEX_P_PROC_FREE		= 36,	/* tp_btf sched_process_free: prunes "traced" */
	KEX_P_VM_INSERT_PAGE	= 37,	/* kprobe vm_insert_page: a driver page's user address */
	KEX_P_INSERT_PFN	= 38,	/* kprobe vmf_insert_pfn_prot: a driver's pfn at a fault */
	KEX_P_INSERT_PFN_RET	= 39,
	KEX_P_PTE_LOOKUP	= 40,	/* kprobe vm_normal_page: a kex pfn map's PTE (mode pfn) */
	KEX_P_FOLLOW		= 41,	/* --follow: kprobe.multi (or kprobes) on every function
					 * with a page or folio argument, cookie = KEX_FOLLOW_COOKIE */
	KEX_P_COUNT
};

/*
 * Return probes the plan attaches as fexit (BPF trampoline) rather than
 * kretprobe: bit (1 << probe id) in the const volatile fexit_probes. An
 * fexit program has the function's arguments at return, so its entry kprobe
 * stashes nothing for it.
 */
#define KEX_FEXIT(id)		(1ULL << (id))

/*
 * --follow's BPF cookie per attached function: its index in the attached
 * list (the record's func), and which register arguments (bit n-1 for
 * argument n) hold a struct page *, a struct folio *, a struct folio_batch *
 * (nr and folios[], read whole), and an array of page pointers (struct
 * page **, struct folio **, struct encoded_page ** or a union of them)
 * whose length is the next argument.
 */
#define KEX_FOLLOW_COOKIE(func, pages, folios, batches, arrays) \
	((__u64)(func) | (__u64)(pages) << 32 | (__u64)(folios) << 40 | \
	 (__u64)(batches) << 48 | (__u64)(arrays) << 56)
#define KEX_FOLLOW_PAGES(cookie)	((__u32)((cookie) >> 32) & 0x3f)
#define KEX_FOLLOW_FOLIOS(cookie)	((__u32)((cookie) >> 40) & 0x3f)
#define KEX_FOLLOW_BATCHES(cookie)	((__u32)((cookie) >> 48) & 0x3f)
#define KEX_FOLLOW_ARRAYS(cookie)	((__u32)((cookie) >> 56) & 0x3f)
/* pages of a large folio looked up one by one, at most (PMD order) */
#define KEX_FOLLOW_FOLIO_SCAN	512
/* entries of a page array looked up, at most (a TLB gather batch: ~510) */
#define KEX_FOLLOW_ARRAY_SCAN	512
/* a folio_batch's folios[] (PAGEVEC_SIZE, 31 on 6.1 to 7.2) */
#define KEX_FOLLOW_BATCH_SCAN	32

/* --follow's own counters (map follow_stats, per-CPU, summed by user space) */
struct kex_follow_stats {
	__u64 nested;		/* a tracked page's call seen inside another follow run on
				 * this CPU: not recorded (also in losses[KEX_EV_FOLLOW]) */
	__u64 folio_partial;	/* a folio larger than KEX_FOLLOW_FOLIO_SCAN pages: only its
				 * first pages were looked up */
	__u64 array_partial;	/* a page array longer than KEX_FOLLOW_ARRAY_SCAN (or a
				 * batch past KEX_FOLLOW_BATCH_SCAN): only its first entries */
};

/* Per probe, summed over CPUs by user space (struct kex_counters). */
struct kex_probe_stats {
	__u64 hits;	/* times the program ran */
	__u64 matched;	/* times it passed its filter (traced task / kex page) */
	__u64 emitted;	/* records submitted */
};

/*
 * The programs' counters, one copy per CPU (map "counters", a per-CPU array
 * of one entry: a program does not migrate, so no atomics), summed by user
 * space. One map so that a program run looks it up once or twice where it
 * looked up four counters and queried the ring a record (a helper call is
 * about 0.3 us in the emulated guest). produced = received by user space +
 * lost, type by type.
 */
struct kex_counters {
	struct kex_probe_stats probe[KEX_MAX_PROBES];
	__u64 produced[KEX_LOSS_SLOTS];	/* per event type: every reserve */
	__u64 lost[KEX_LOSS_SLOTS];	/* per event type: no room in the ring */
	__u64 reserved;			/* ring records reserved on this CPU: the
					 * ring's fill is checked every
					 * KEX_RING_CHECK of them */
};

/* a power of two: the ring's fill is checked every this many records a CPU */
#define KEX_RING_CHECK		16

/*
 * map "insert_sites": per tid, where a driver's vm_insert_page(s) call puts
 * its pages, for the insert clones that lost their addr argument: the page
 * itself (vm_insert_page), or the first of a batch (vm_insert_pages; the
 * n-th insert of that call maps addr + n pages).
 */
struct kex_insert_site {
	__u64 vma;
	__u64 addr;
	__u64 page;	/* 0: a batch */
	__u64 n;	/* batch inserts seen so far */
};

/*
 * map "pfns": pfn -> a followed page (kex's, or a driver's adopted at its
 * insert or fault), and whether mm_page_free was seen already. A struct
 * page * is looked up by its pfn (kex_page(): SPARSEMEM_VMEMMAP, the pfn is
 * the pointer's index in the vmemmap array), so one map serves both keys.
 */
struct kex_pfn_info {
	__u64 page;	/* struct page * as u64 */
	__u64 pfn;	/* the key, for the programs that found it by page */
	__u32 index;	/* page index in its mapping (kex's; a driver page's offset in its VMA) */
	__u32 freed;	/* 1 after mm_page_free: only mm_page_free_batched may follow */
	__u64 life;	/* --watch: its life's slot in "lives" + 1, 0: none (watch.bpf.h) */
};

/* How the munmap step's start/end are read (const volatile unmap_mode). */
enum kex_unmap_mode {
	KEX_UNMAP_REGION_61	= 0,	/* unmap_region(mm, mt, vma, prev, next, start, end): PARM6 + stack */
	KEX_UNMAP_VMS		= 1,	/* vms_clear_ptes / vms_complete_munmap_vmas(vms, ...): vms->start, vms->end */
	KEX_UNMAP_VMAS		= 2,	/* unmap_vmas(tlb, mas, vma, start, end, ...): PARM4, PARM5 */
};

#define KEX_MAX_PAGES_DEFAULT	(1 << 18)	/* live kex pages tracked at once */
#define KEX_WATCH_LIVES_MAX	(1 << 16)	/* --watch: page lives kept in BPF at once */
#define KEX_MAX_TRACED		(1 << 15)	/* traced thread groups alive at once */
#define KEX_MAX_TASKS		1024		/* threads inside a traced call at once */
#define KEX_MAX_DRIVER_VMAS	4096		/* driver VMAs remembered as reported (LRU) */
#define KEX_MAX_DRIVER_ALLOCS	(1 << 14)	/* live allocations of traced processes remembered */
#define KEX_MAX_STACK_SITES	4096		/* stack call sites remembered (LRU) */
#define KEX_ALLOC_MAX_ORDER	10		/* the largest buddy block looked up (MAX_ORDER) */
#define KEX_CORE_FAULTS		32		/* core fault handlers (core_faults) */
#define KEX_NO_INDEX		0xffffffffU	/* kex_pfn_info.index unknown */
#define KEX_RINGBUF_DEFAULT	(16 << 20)	/* bytes */

#endif /* KEXTRACE_KEXTRACE_H */
