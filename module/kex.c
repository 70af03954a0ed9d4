// SPDX-License-Identifier: GPL-2.0
/*
 * kex - a char device whose mmap() maps freshly allocated pages into the
 * caller, so that every step of the kernel's insert / fault / unmap paths
 * can be traced. How it maps them is the open file's mode (kex_uapi.h):
 * alloc_page() + vm_insert_page() page by page (insert, the default),
 * vm_insert_pages() in batches (batch), a .fault handler on first touch
 * (fault), or remap_pfn_range() (pfn).
 *
 * The device: /dev/kex (class "kex", dynamic major, minor 0); a node made by
 * hand with "mknod NAME c MAJOR 0" works as well. The mmap rules, modes and
 * errors are documented in kex_uapi.h; the tracepoints in kex_trace.h.
 *
 * One file (layout: long on purpose, about 1,200 lines): a reference driver
 * that people read top to bottom, with every mapping mode's mmap, fault and
 * unwind path beside the others they mirror; kex_compat.h holds the
 * kernel-version differences and kex_trace.h the tracepoints.
 *
 * Who owns the pages (module parameter ref_policy, read at each mmap):
 *  - drop (default): kex drops its reference right after vm_insert_page took
 *    the mapping's; the page is freed by the kernel when it is unmapped.
 *    Modes insert and batch only.
 *  - keep: kex keeps its reference until the last VMA of the mapping closes,
 *    then frees the page itself. Any mode.
 *
 * Counters (sysfs, /sys/class/kex/kex/):
 *  - pages_allocated: pages kex got from alloc_page();
 *  - pages_freed: pages given back: at kex's own freeing __free_page (keep,
 *    error paths), or, with drop, when the last VMA of their mapping closed
 *    (the kernel zapped them before that) or the core undid a failed mmap;
 *  - pages_live: pages_allocated - pages_freed;
 *  - mappings: live VMAs mapping kex pages;
 *  - pages_leaked_injected: pages leaked on purpose by the inject_*
 *    parameters (never counted as freed, so they stay in pages_live);
 *  - pages_reserved: pages of the live mappings, against max_pages_total
 *    (a fault mapping reserves its whole length at mmap).
 *
 * Kernel log: what user space can make kex log (rejected requests, failed
 * mmaps and faults) is rate-limited; the lines of each mmap, page, fault
 * and release only come with verbose=1; the inject_* lines (root asked for
 * them) neither.
 *
 * Fault injection for leak hunting (parameters inject_*, 0600, off by
 * default): kex loses track of chosen pages so that a tracer can be shown
 * to find them. It only ever leaks: a page kex forgets, or holds one
 * reference too many on, is never freed while mapped or after.
 */
#define pr_fmt(fmt) "kex: " fmt

#include <linux/atomic.h>
#include <linux/bitmap.h>
#include <linux/bits.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/init.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/mutex.h>
#include <linux/overflow.h>
#include <linux/printk.h>
#include <linux/refcount.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/types.h>
#include <linux/uaccess.h>

#include "kex_compat.h"
#include "kex_uapi.h"
#include "bpf/events.h"		/* enum kex_free_reason */

#define CREATE_TRACE_POINTS
#include "kex_trace.h"

/* --- module parameters ---------------------------------------------------- */

static int kex_ref_policy = KEX_POLICY_DROP;
static int kex_mode = KEX_MODE_INSERT;
static unsigned int kex_max_pages = KEX_MAX_PAGES_DEFAULT;
static unsigned int kex_max_pages_total = KEX_MAX_PAGES_TOTAL_DEFAULT;
static unsigned int kex_node_mode = KEX_NODE_MODE_DEFAULT;
static bool kex_verbose;
static int kex_fail_at = -1;
static int kex_fail_init;		/* enum kex_init_step */
static u64 kex_inject_noput;		/* index sets: bit N = page N */
static u64 kex_inject_extra_get;
static int kex_inject_fail_leak = -1;

static const char * const kex_policy_names[] = {
	[KEX_POLICY_DROP] = "drop",
	[KEX_POLICY_KEEP] = "keep",
};

static const char * const kex_mode_names[] = {
	[KEX_MODE_INSERT] = "insert",
	[KEX_MODE_BATCH] = "batch",
	[KEX_MODE_FAULT] = "fault",
	[KEX_MODE_PFN] = "pfn",
};

/* The steps of kex_init() that fail_init can make fail. */
enum kex_init_step {
	KEX_INIT_NONE,
	KEX_INIT_CLASS,
	KEX_INIT_DEVICE,
	KEX_INIT_CDEV,
};

static const char * const kex_init_step_names[] = {
	[KEX_INIT_NONE] = "none",
	[KEX_INIT_CLASS] = "class",
	[KEX_INIT_DEVICE] = "device",
	[KEX_INIT_CDEV] = "cdev",
};

/* A parameter taking one name of @names; the int it sets is its index. */
static int kex_name_set(const char *val, const struct kernel_param *kp,
			const char * const *names, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (sysfs_streq(val, names[i])) {
			WRITE_ONCE(*(int *)kp->arg, i);
			return 0;
		}
	}
	return -EINVAL;
}

static int kex_ref_policy_set(const char *val, const struct kernel_param *kp)
{
	int ret = kex_name_set(val, kp, kex_policy_names,
			       ARRAY_SIZE(kex_policy_names));

	if (ret)
		pr_warn("ref_policy must be drop or keep, not '%s'\n", val);
	return ret;
}

static int kex_ref_policy_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%s\n",
			 kex_policy_names[READ_ONCE(*(int *)kp->arg)]);
}

static const struct kernel_param_ops kex_ref_policy_ops = {
	.set = kex_ref_policy_set,
	.get = kex_ref_policy_get,
};
module_param_cb(ref_policy, &kex_ref_policy_ops, &kex_ref_policy, 0644);
MODULE_PARM_DESC(ref_policy,
		 "drop: free kex's page reference right after insert (default); keep: hold it until the last VMA closes");

static int kex_mode_set(const char *val, const struct kernel_param *kp)
{
	int ret = kex_name_set(val, kp, kex_mode_names,
			       ARRAY_SIZE(kex_mode_names));

	if (ret)
		pr_warn("mode must be insert, batch, fault or pfn, not '%s'\n",
			val);
	return ret;
}

static int kex_mode_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%s\n",
			 kex_mode_names[READ_ONCE(*(int *)kp->arg)]);
}

static const struct kernel_param_ops kex_mode_ops = {
	.set = kex_mode_set,
	.get = kex_mode_get,
};
module_param_cb(mode, &kex_mode_ops, &kex_mode, 0644);
MODULE_PARM_DESC(mode,
		 "mapping mode of files opened from now on: insert (default), batch, fault or pfn");

static int kex_max_pages_set(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, 1, UINT_MAX);
}

static const struct kernel_param_ops kex_max_pages_ops = {
	.set = kex_max_pages_set,
	.get = param_get_uint,
};
module_param_cb(max_pages, &kex_max_pages_ops, &kex_max_pages, 0644);
MODULE_PARM_DESC(max_pages, "most pages one mmap may map (default 65536)");

module_param_cb(max_pages_total, &kex_max_pages_ops, &kex_max_pages_total,
		0644);
MODULE_PARM_DESC(max_pages_total,
		 "most pages all live kex mappings together may map (default 262144, 1 GiB); each mmap reserves its whole length until its last VMA closes");

static int kex_node_mode_set(const char *val, const struct kernel_param *kp)
{
	unsigned int mode;

	if (kstrtouint(val, 8, &mode) || mode > 0777) {
		pr_warn("node_mode must be octal permissions 0..0777, not '%s'\n",
			val);
		return -EINVAL;
	}
	*(unsigned int *)kp->arg = mode;
	return 0;
}

static int kex_node_mode_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%04o\n", *(unsigned int *)kp->arg);
}

static const struct kernel_param_ops kex_node_mode_ops = {
	.set = kex_node_mode_set,
	.get = kex_node_mode_get,
};
module_param_cb(node_mode, &kex_node_mode_ops, &kex_node_mode, 0444);
MODULE_PARM_DESC(node_mode,
		 "permissions of /dev/kex, octal, set at load (default 0600: root only)");

module_param_named(verbose, kex_verbose, bool, 0644);
MODULE_PARM_DESC(verbose,
		 "log each mmap, mapped page, fault and release (default off)");

static int kex_fail_init_set(const char *val, const struct kernel_param *kp)
{
	int ret = kex_name_set(val, kp, kex_init_step_names,
			       ARRAY_SIZE(kex_init_step_names));

	if (ret)
		pr_warn("fail_init must be none, class, device or cdev, not '%s'\n",
			val);
	return ret;
}

static int kex_fail_init_get(char *buf, const struct kernel_param *kp)
{
	return scnprintf(buf, PAGE_SIZE, "%s\n",
			 kex_init_step_names[*(int *)kp->arg]);
}

static const struct kernel_param_ops kex_fail_init_ops = {
	.set = kex_fail_init_set,
	.get = kex_fail_init_get,
};
module_param_cb(fail_init, &kex_fail_init_ops, &kex_fail_init, 0400);
MODULE_PARM_DESC(fail_init,
		 "testing: make this step of the module's init fail with -ENOMEM: none (default), class, device or cdev");

module_param_named(fail_at, kex_fail_at, int, 0600);
MODULE_PARM_DESC(fail_at,
		 "testing: make the insert of page N of every mmap fail with -ENOMEM (fault mode: SIGBUS at the first fault of page N; -1: off)");

/*
 * A set of page indexes below KEX_INJECT_MAX, written as a list ("1,5",
 * "0-3,7", "" for none), kept as a u64 bit set so that an mmap reads it at
 * once.
 */
static int kex_index_set_set(const char *val, const struct kernel_param *kp)
{
	DECLARE_BITMAP(bits, KEX_INJECT_MAX);
	u64 set;

	if (bitmap_parselist(val, bits, KEX_INJECT_MAX)) {
		pr_warn("%s must list page indexes below %u (like 1,5 or 0-3), not '%s'\n",
			kp->name, KEX_INJECT_MAX, val);
		return -EINVAL;
	}
	bitmap_to_arr64(&set, bits, KEX_INJECT_MAX);
	WRITE_ONCE(*(u64 *)kp->arg, set);
	return 0;
}

static int kex_index_set_get(char *buf, const struct kernel_param *kp)
{
	DECLARE_BITMAP(bits, KEX_INJECT_MAX);
	u64 set = READ_ONCE(*(u64 *)kp->arg);

	bitmap_from_arr64(bits, &set, KEX_INJECT_MAX);
	return scnprintf(buf, PAGE_SIZE, "%*pbl\n", KEX_INJECT_MAX, bits);
}

static const struct kernel_param_ops kex_index_set_ops = {
	.set = kex_index_set_set,
	.get = kex_index_set_get,
};

module_param_cb(inject_noput, &kex_index_set_ops, &kex_inject_noput, 0600);
MODULE_PARM_DESC(inject_noput,
		 "testing: leak these page indexes (<64) of every mmap: kex forgets its reference instead of freeing it (after insert with drop, at close with keep)");

module_param_cb(inject_extra_get, &kex_index_set_ops, &kex_inject_extra_get,
		0600);
MODULE_PARM_DESC(inject_extra_get,
		 "testing: leak these page indexes (<64) of every mapping: one extra get_page when mapped (fault mode: at the first fault), never put");

module_param_named(inject_fail_leak, kex_inject_fail_leak, int, 0600);
MODULE_PARM_DESC(inject_fail_leak,
		 "testing: fail every mmap at page K like fail_at, and leak the pages kex still holds instead of freeing them (-1: off; not in fault mode)");

/* --- state ----------------------------------------------------------------- */

/*
 * Device-wide counters, shown in sysfs. Atomic, no lock: each is exact, a
 * reader of several may see them a few pages apart while mmaps run.
 */
static struct {
	atomic64_t pages_allocated;
	atomic64_t pages_freed;
	atomic64_t pages_live;
	atomic64_t mappings;
	atomic64_t pages_leaked_injected;
	atomic64_t pages_reserved;
} kex_stats;

/*
 * kex_file: one per open(), in file->private_data.
 * Life: open -> any number of ioctl()s and mmap()s, from any thread or,
 * after fork, any process sharing the file -> release. Every VMA holds a
 * reference on the file, so release runs after the last VMA mapping it
 * closed: kept is 0 then.
 * Locking: kept is atomic; mode is one word, written by KEX_IOC_SET_MODE
 * and read once per mmap (READ_ONCE/WRITE_ONCE).
 */
struct kex_file {
	atomic_t kept;		/* pages kex holds for this file's keep areas */
	u32 mode;		/* enum kex_map_mode of the next mmap */
};

/*
 * kex_area: the pages of one successful mmap(), in vma->vm_private_data.
 * Life:
 *  - kex_mmap() creates it with refs = 1 for the VMA it filled;
 *  - kex_vm_open() takes a reference for every further VMA mapping it: the
 *    child's copy at fork, the new part of a VMA split by a partial munmap or
 *    mprotect, the new VMA of an mremap move;
 *  - kex_vm_close() drops one; the last one releases the pages (keep: kex's
 *    own references are freed; drop: the kernel zapped them already) and
 *    the area. A failed mmap() never publishes an area.
 * Locking: refs is a refcount_t. In mode fault, pages[] and nr_held change
 * after publication: under lock, with pages[i] published by
 * smp_store_release() so that a fault finding it set takes it without the
 * lock. Every other field is written before the area is published (under
 * the mmap_lock, held for write around ->mmap) and only read after. VMAs of
 * one area may close concurrently in different processes after fork; they
 * share nothing but refs and the atomics. Release runs when no VMA is left,
 * so no fault can run concurrently with it.
 */
struct kex_area {
	refcount_t refs;	/* one per VMA mapping the area */
	struct kex_file *kf;	/* the file it was mapped through */
	u32 policy;		/* enum kex_ref_policy at mmap time */
	u32 mode;		/* enum kex_map_mode at mmap time */
	u32 nr_pages;
	u32 nr_held;		/* pages in pages[] kex holds a reference on */
	int fail_at;		/* fault mode: fail_at at mmap time */
	u64 inject_noput;	/* inject_* at mmap time */
	u64 inject_extra_get;
	u64 leaked;		/* indexes leaked on purpose so far */
	struct mutex lock;	/* fault mode: filling pages[] and leaked */
	/*
	 * keep, and batch with drop: the pages in page order. With keep, each
	 * set entry is a reference of kex's; with batch and drop, entries are
	 * cleared as kex drops its references. Mode fault: NULL until the first
	 * fault at the index.
	 */
	struct page *pages[];
};

static dev_t kex_devt;
static struct cdev kex_cdev;
static struct class *kex_class;
static struct device *kex_device;

/* --- pages ----------------------------------------------------------------- */

static void kex_count_freed(unsigned long pages)
{
	atomic64_add(pages, &kex_stats.pages_freed);
	atomic64_sub(pages, &kex_stats.pages_live);
}

/* A zeroed page for index @index of a mapping, counted and traced. */
static struct page *kex_alloc_page(u32 index)
{
	struct page *page = alloc_page(GFP_KERNEL | __GFP_ZERO);

	if (!page)
		return NULL;
	atomic64_inc(&kex_stats.pages_allocated);
	atomic64_inc(&kex_stats.pages_live);
	trace_kex_page_alloc(page_to_pfn(page), (unsigned long)page, index);
	return page;
}

/* Drop kex's own reference on @page (index @index of its mapping). */
static void kex_free_page(struct page *page, u32 index,
			  enum kex_free_reason reason)
{
	trace_kex_page_free(page_to_pfn(page), index, reason);
	__free_page(page);
}

static bool kex_index_in(u64 set, u32 index)
{
	return index < KEX_INJECT_MAX && (set & BIT_ULL(index));
}

/* Page @index of @area now leaks on purpose; counts it once. */
static void kex_leak(struct kex_area *area, u32 index)
{
	if (kex_index_in(area->leaked, index))
		return;
	area->leaked |= BIT_ULL(index);
	atomic64_inc(&kex_stats.pages_leaked_injected);
}

/* inject_extra_get: one more reference on @page, never put. */
static void kex_take_extra_ref(struct kex_area *area, struct page *page,
			       u32 index)
{
	if (!kex_index_in(area->inject_extra_get, index))
		return;
	get_page(page);
	pr_warn("inject_extra_get: page %u pfn 0x%lx: took a reference that is never put, the page leaks\n",
		index, page_to_pfn(page));
	kex_leak(area, index);
}

static bool kex_area_has_array(u32 policy, u32 mode)
{
	return policy == KEX_POLICY_KEEP || mode == KEX_MODE_BATCH;
}

/*
 * Reserve @pages against max_pages_total, for a mapping's whole life. Exact
 * under concurrent mmaps: a reservation that would cross the limit fails.
 */
static bool kex_reserve(unsigned long pages, s64 *reserved)
{
	s64 limit = READ_ONCE(kex_max_pages_total);
	s64 old = atomic64_read(&kex_stats.pages_reserved);

	do {
		*reserved = old;
		if (old + (s64)pages > limit)
			return false;
	} while (!atomic64_try_cmpxchg(&kex_stats.pages_reserved, &old,
				       old + pages));
	return true;
}

static void kex_unreserve(unsigned long pages)
{
	atomic64_sub(pages, &kex_stats.pages_reserved);
}

/*
 * The last VMA closed: free kex's references (keep; inject_noput forgets
 * them instead) and count the pages freed: with drop, the kernel freed them
 * at the zap. Pages leaked on purpose are not counted.
 */
static void kex_area_release(struct kex_area *area)
{
	unsigned long freed = area->nr_pages;
	struct page *page;
	u32 i;

	if (area->policy == KEX_POLICY_KEEP) {
		for (i = 0; i < area->nr_pages; i++) {
			page = area->pages[i];
			if (!page)
				continue;
			if (kex_index_in(area->inject_noput, i)) {
				pr_warn("inject_noput: page %u pfn 0x%lx: kex forgot its reference at close, the page leaks\n",
					i, page_to_pfn(page));
				kex_leak(area, i);
				continue;
			}
			kex_free_page(page, i, KEX_FREE_AT_CLOSE);
		}
		atomic_sub(area->nr_held, &area->kf->kept);
		freed = area->nr_held;
	}
	kex_count_freed(freed - hweight64(area->leaked));
	kex_unreserve(area->nr_pages);
	if (READ_ONCE(kex_verbose))
		pr_info("released mapping of %u pages, ref_policy %s\n",
			area->nr_pages, kex_policy_names[area->policy]);
	mutex_destroy(&area->lock);
	kvfree(area);
}

/* --- vm_operations --------------------------------------------------------- */

static void kex_vm_open(struct vm_area_struct *vma)
{
	struct kex_area *area = vma->vm_private_data;

	refcount_inc(&area->refs);
	atomic64_inc(&kex_stats.mappings);
	trace_kex_vma_open(vma->vm_start, vma->vm_end);
}

static void kex_vm_close(struct vm_area_struct *vma)
{
	struct kex_area *area = vma->vm_private_data;

	trace_kex_vma_close(vma->vm_start, vma->vm_end);
	atomic64_dec(&kex_stats.mappings);
	if (refcount_dec_and_test(&area->refs))
		kex_area_release(area);
}

/*
 * Mode fault, under the area's lock: the page for @index, allocated now.
 * Returns NULL with *ret set if it cannot be had.
 */
static struct page *kex_fault_alloc(struct vm_fault *vmf,
				    struct kex_area *area, u32 index,
				    vm_fault_t *ret)
{
	struct page *page;

	if (area->fail_at >= 0 && index == (u32)area->fail_at) {
		pr_warn_ratelimited("fault on page %u at 0x%lx failed: fail_at\n",
			index, vmf->address);
		*ret = VM_FAULT_SIGBUS;
		return NULL;
	}
	page = kex_alloc_page(index);
	if (!page) {
		pr_warn_ratelimited("fault on page %u at 0x%lx failed: no memory\n",
			index, vmf->address);
		*ret = VM_FAULT_OOM;
		return NULL;
	}
	area->nr_held++;
	atomic_inc(&area->kf->kept);
	kex_take_extra_ref(area, page, index);
	/* Pairs with the smp_load_acquire() of the lockless lookup. */
	smp_store_release(&area->pages[index], page);
	return page;
}

/*
 * Mode fault: hand the core the page for the faulting index, with the
 * reference finish_fault() consumes (do_set_pte / set_pte_range take none).
 * The area keeps its own reference, so a later fault at the same index (after
 * MADV_DONTNEED, in a fork child) gets the same page.
 */
static vm_fault_t kex_vm_fault(struct vm_fault *vmf)
{
	struct kex_area *area = vmf->vma->vm_private_data;
	u32 flags = (vmf->flags & FAULT_FLAG_WRITE) ? KEX_FAULT_WRITE : 0;
	vm_fault_t ret = 0;
	struct page *page;
	u32 index;

	if (vmf->pgoff >= area->nr_pages) {	/* VM_DONTEXPAND: cannot be */
		trace_kex_fault(vmf->address, KEX_NO_PFN, U32_MAX,
				flags | KEX_FAULT_ERROR);
		return VM_FAULT_SIGBUS;
	}
	index = vmf->pgoff;
	/*
	 * Pairs with kex_fault_alloc()'s smp_store_release(): a set entry is
	 * a fully initialised page kex holds.
	 */
	page = smp_load_acquire(&area->pages[index]);
	if (!page) {
		mutex_lock(&area->lock);
		page = area->pages[index];
		if (!page) {
			page = kex_fault_alloc(vmf, area, index, &ret);
			flags |= KEX_FAULT_ALLOC;
		}
		mutex_unlock(&area->lock);
		if (!page) {
			trace_kex_fault(vmf->address, KEX_NO_PFN, index,
					flags | KEX_FAULT_ERROR);
			return ret;
		}
	}
	get_page(page);
	vmf->page = page;
	trace_kex_fault(vmf->address, page_to_pfn(page), index, flags);
	if (READ_ONCE(kex_verbose))
		pr_info("%s fault on page %u at 0x%lx: pfn 0x%lx%s\n",
			flags & KEX_FAULT_WRITE ? "write" : "read", index,
			vmf->address, page_to_pfn(page),
			flags & KEX_FAULT_ALLOC ? ", allocated" : "");
	return 0;
}

/* Modes insert, batch and pfn: every page is mapped at mmap, no .fault. */
static const struct vm_operations_struct kex_vm_ops = {
	.open	= kex_vm_open,
	.close	= kex_vm_close,
};

static const struct vm_operations_struct kex_fault_vm_ops = {
	.open	= kex_vm_open,
	.close	= kex_vm_close,
	.fault	= kex_vm_fault,
};

/* --- mmap ------------------------------------------------------------------ */

/* One line per rejected request: the reason, then -errno to the caller. */
static int kex_mmap_check(struct vm_area_struct *vma, unsigned long pages,
			  unsigned int max_pages, u32 mode, u32 policy)
{
	if (vma->vm_pgoff) {
		pr_info_ratelimited("mmap rejected: offset %lu pages, only offset 0 is supported\n",
			vma->vm_pgoff);
		return -EINVAL;
	}
	/* MAP_SHARED of a file opened read-only: VM_MAYSHARE, no VM_SHARED. */
	if (!(vma->vm_flags & VM_MAYSHARE)) {
		pr_info_ratelimited("mmap rejected: MAP_PRIVATE would copy-on-write driver pages, use MAP_SHARED\n");
		return -EINVAL;
	}
	if (!(vma->vm_flags & VM_SHARED)) {
		pr_info_ratelimited("mmap rejected: MAP_SHARED of a file opened read-only, open it O_RDWR\n");
		return -EACCES;
	}
	if (vma->vm_flags & VM_EXEC) {
		pr_info_ratelimited("mmap rejected: PROT_EXEC is not allowed\n");
		return -EPERM;
	}
	if (pages > max_pages) {
		pr_info_ratelimited("mmap rejected: %lu pages exceeds max_pages %u\n",
			pages, max_pages);
		return -E2BIG;
	}
	if (policy == KEX_POLICY_DROP && mode == KEX_MODE_FAULT) {
		pr_info_ratelimited("mmap rejected: mode fault needs ref_policy=keep: kex must hold each page to map it again on a later fault\n");
		return -EINVAL;
	}
	if (policy == KEX_POLICY_DROP && mode == KEX_MODE_PFN) {
		pr_info_ratelimited("mmap rejected: mode pfn needs ref_policy=keep: a pfn mapping holds no page reference\n");
		return -EINVAL;
	}
	return 0;
}

/* One mmap() in progress. */
struct kex_mapper {
	struct vm_area_struct *vma;
	struct kex_area *area;
	int fail_at;		/* index whose mapping fails with -ENOMEM, or -1 */
	int fail_leak;		/* inject_fail_leak: the same, leaking, or -1 */
	bool verbose;
	bool leaking;		/* the error path leaks instead of freeing */
	u32 mapped;		/* pages in the page tables */
	u32 freed;		/* pages kex freed on the error path */
	u32 leaked;		/* pages the error path leaked (inject_fail_leak) */
};

/* Whether mapping page @index must fail (fail_at, inject_fail_leak). */
static bool kex_fails_at(struct kex_mapper *m, u32 index)
{
	if (m->fail_leak >= 0 && index == (u32)m->fail_leak) {
		m->leaking = true;
		return true;
	}
	return m->fail_at >= 0 && index == (u32)m->fail_at;
}

static unsigned long kex_uaddr(struct vm_area_struct *vma, u32 index)
{
	return vma->vm_start + ((unsigned long)index << PAGE_SHIFT);
}

static int kex_check_signal(u32 index, u32 pages)
{
	if (!fatal_signal_pending(current))
		return 0;
	pr_info_ratelimited("mmap interrupted at page %u of %u: fatal signal\n",
		index, pages);
	return -EINTR;
}

/*
 * Page @index is in the page tables: drop kex's reference (ref_policy drop)
 * or record it (keep).
 */
static void kex_page_mapped(struct kex_mapper *m, struct page *page, u32 index)
{
	struct kex_area *area = m->area;

	m->mapped++;
	kex_take_extra_ref(area, page, index);
	if (area->policy == KEX_POLICY_KEEP) {
		area->pages[index] = page;
		area->nr_held++;
		return;
	}
	if (area->mode == KEX_MODE_BATCH)
		area->pages[index] = NULL;
	if (kex_index_in(area->inject_noput, index)) {
		pr_warn("inject_noput: page %u pfn 0x%lx: kex forgot its reference after insert, the page leaks\n",
			index, page_to_pfn(page));
		kex_leak(area, index);
		return;
	}
	kex_free_page(page, index, KEX_FREE_AFTER_INSERT);
}

/*
 * Error path: give back a page kex still holds a reference on, or, failing
 * by inject_fail_leak, forget it. Only a page whose last reference this is
 * counts as freed (not one inject_extra_get leaked).
 */
static void kex_give_back(struct kex_mapper *m, struct page *page, u32 index)
{
	bool leaked = kex_index_in(m->area->leaked, index);

	if (m->leaking) {
		if (!leaked)
			m->leaked++;
		return;
	}
	kex_free_page(page, index, KEX_FREE_ERROR);
	if (!leaked)
		m->freed++;
}

/*
 * Modes insert and pfn: allocate and map page by page. On failure, kex
 * frees what it still holds. Insert: each page in the page tables holds
 * the mapping's own reference, so the core's unmap of the failed VMA after
 * ->mmap returns frees it. Pfn: the special PTEs hold no reference; they
 * are zapped here, before kex frees the pages they point to.
 */
static int kex_map_each(struct kex_mapper *m)
{
	struct kex_area *area = m->area;
	bool pfn = area->mode == KEX_MODE_PFN;
	unsigned long uaddr;
	struct page *page;
	u32 i;
	int ret;

	for (i = 0; i < area->nr_pages; i++) {
		uaddr = kex_uaddr(m->vma, i);
		ret = kex_check_signal(i, area->nr_pages);
		if (ret)
			goto out_unwind;
		page = kex_alloc_page(i);
		if (!page) {
			pr_warn_ratelimited("mmap failed: alloc_page for page %u of %u\n",
				i, area->nr_pages);
			ret = -ENOMEM;
			goto out_unwind;
		}

		if (kex_fails_at(m, i))
			ret = -ENOMEM;	/* fail_at: test the error path */
		else if (pfn)
			ret = remap_pfn_range(m->vma, uaddr, page_to_pfn(page),
					      PAGE_SIZE, m->vma->vm_page_prot);
		else
			ret = vm_insert_page(m->vma, uaddr, page);
		trace_kex_page_insert(page_to_pfn(page), uaddr, i, ret);
		if (ret) {
			pr_warn_ratelimited("mmap failed: %s of page %u at 0x%lx returned %d\n",
				pfn ? "remap_pfn_range" : "vm_insert_page",
				i, uaddr, ret);
			kex_give_back(m, page, i);
			goto out_unwind;
		}
		if (m->verbose)
			pr_info("%s page %u pfn 0x%lx at 0x%lx\n",
				pfn ? "remapped" : "inserted",
				i, page_to_pfn(page), uaddr);
		kex_page_mapped(m, page, i);
		cond_resched();
	}
	return 0;

out_unwind:
	if (pfn && m->mapped)
		kex_zap_special(m->vma, m->vma->vm_start,
			     (unsigned long)m->mapped << PAGE_SHIFT);
	if (area->policy == KEX_POLICY_KEEP) {
		for (i = 0; i < m->mapped; i++)
			kex_give_back(m, area->pages[i], i);
	}
	return ret;
}

/*
 * Mode batch: allocate every page, then map them with vm_insert_pages, at
 * most KEX_BATCH_PAGES per call. fail_at (or inject_fail_leak) cuts the
 * batch before that page and fails the next call without making it.
 */
static int kex_map_batch(struct kex_mapper *m)
{
	struct kex_area *area = m->area;
	unsigned long uaddr, left;
	u32 i, j, n, done, nr_alloc = 0;
	int ret = 0;

	for (i = 0; i < area->nr_pages; i++) {
		ret = kex_check_signal(i, area->nr_pages);
		if (ret)
			goto out_unwind;
		area->pages[i] = kex_alloc_page(i);
		if (!area->pages[i]) {
			pr_warn_ratelimited("mmap failed: alloc_page for page %u of %u\n",
				i, area->nr_pages);
			ret = -ENOMEM;
			goto out_unwind;
		}
		nr_alloc++;
		cond_resched();
	}

	for (i = 0; i < area->nr_pages; i += n) {
		uaddr = kex_uaddr(m->vma, i);
		n = min(area->nr_pages - i, KEX_BATCH_PAGES);
		for (j = i + 1; j < i + n; j++) {
			if ((m->fail_at >= 0 && j == (u32)m->fail_at) ||
			    (m->fail_leak >= 0 && j == (u32)m->fail_leak))
				n = j - i;
		}
		left = n;
		if (kex_fails_at(m, i))
			ret = -ENOMEM;	/* fail_at: test the error path */
		else
			ret = vm_insert_pages(m->vma, uaddr, &area->pages[i],
					      &left);
		done = n - left;
		trace_kex_batch(uaddr, i, n, done, ret);
		for (j = i; j < i + done; j++) {
			trace_kex_page_insert(page_to_pfn(area->pages[j]),
					      kex_uaddr(m->vma, j), j, 0);
			if (m->verbose)
				pr_info("inserted page %u pfn 0x%lx at 0x%lx\n",
					j, page_to_pfn(area->pages[j]),
					kex_uaddr(m->vma, j));
			kex_page_mapped(m, area->pages[j], j);
		}
		if (ret) {
			if (done < n)
				trace_kex_page_insert(page_to_pfn(area->pages[i + done]),
						      kex_uaddr(m->vma, i + done),
						      i + done, ret);
			pr_warn_ratelimited("mmap failed: vm_insert_pages of pages %u-%u at 0x%lx returned %d, %u mapped\n",
				i, i + n - 1, uaddr, ret, done);
			goto out_unwind;
		}
		cond_resched();
	}
	return 0;

out_unwind:
	/*
	 * keep: kex holds pages 0..nr_alloc-1; drop: those not mapped. A
	 * mapped page keeps the reference vm_insert_pages took until the core
	 * unmaps the failed VMA: nothing here frees a page a PTE maps.
	 */
	for (j = area->policy == KEX_POLICY_KEEP ? 0 : m->mapped;
	     j < nr_alloc; j++)
		kex_give_back(m, area->pages[j], j);
	return ret;
}

/*
 * The area of a new mapping of @pages pages, with one reference (the VMA's);
 * NULL without memory.
 */
static struct kex_area *kex_area_new(struct kex_file *kf, unsigned long pages,
				     u32 policy, u32 mode, int fail_at)
{
	struct kex_area *area;

	/* NOWARN: a huge max_pages must fail here quietly, not WARN. */
	area = kvzalloc(struct_size(area, pages,
				    kex_area_has_array(policy, mode) ? pages : 0),
			GFP_KERNEL | __GFP_NOWARN);
	if (!area)
		return NULL;
	refcount_set(&area->refs, 1);
	area->kf = kf;
	area->policy = policy;
	area->mode = mode;
	area->nr_pages = pages;
	area->fail_at = fail_at;
	area->inject_noput = READ_ONCE(kex_inject_noput);
	area->inject_extra_get = READ_ONCE(kex_inject_extra_get);
	mutex_init(&area->lock);
	return area;
}

/*
 * A failed mmap, after kex_map_each() or kex_map_batch() gave back what kex
 * held: count what was freed and leaked, drop the area and its reservation.
 */
static void kex_mmap_failed(struct kex_mapper *m)
{
	struct kex_area *area = m->area;

	/* With drop, the core frees the pages it unmaps. */
	if (area->policy == KEX_POLICY_DROP)
		m->freed += m->mapped - hweight64(area->leaked);
	kex_count_freed(m->freed);
	if (m->leaking) {
		atomic64_add(m->leaked, &kex_stats.pages_leaked_injected);
		pr_warn("inject_fail_leak: mmap failed at page %d, leaked the %u pages kex still held\n",
			m->fail_leak, m->leaked);
	}
	kex_unreserve(area->nr_pages);
	mutex_destroy(&area->lock);
	kvfree(area);
}

/*
 * Map vm_end - vm_start bytes of fresh zeroed pages in the file's mode.
 * Called with the mmap_lock held for write. On failure every page kex
 * allocated and still references is freed here, never while a PTE maps it
 * without a reference of its own (pfn: zapped first); pages mapped by
 * vm_insert_page(s) are unmapped by the core's error path after we return
 * (with drop, that frees them).
 */
static int kex_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct kex_file *kf = file->private_data;
	unsigned long pages = vma_pages(vma);
	u32 policy = READ_ONCE(kex_ref_policy);
	u32 mode = READ_ONCE(kf->mode);
	struct kex_mapper m = {
		.vma = vma,
		.fail_at = READ_ONCE(kex_fail_at),
		.fail_leak = READ_ONCE(kex_inject_fail_leak),
		.verbose = READ_ONCE(kex_verbose),
	};
	struct kex_area *area;
	s64 reserved;
	int ret;

	ret = kex_mmap_check(vma, pages, READ_ONCE(kex_max_pages), mode, policy);
	if (ret)
		return ret;
	if (!kex_reserve(pages, &reserved)) {
		pr_info_ratelimited("mmap rejected: %lu more pages would exceed max_pages_total %u (%lld reserved by live mappings)\n",
			pages, READ_ONCE(kex_max_pages_total), reserved);
		return -ENOMEM;
	}

	trace_kex_mmap(vma->vm_start, vma->vm_end, vma->vm_pgoff, pages, policy);
	trace_kex_mmap_mode(vma->vm_start, mode);
	if (m.verbose)
		pr_info("vma->vm_end %lu vm_start %lu len %lu pages %lu vm_pgoff %lu\n",
			vma->vm_end, vma->vm_start, vma->vm_end - vma->vm_start,
			pages, vma->vm_pgoff);

	/* The mapping can neither grow (mremap) nor become executable. */
	kex_vm_flags_mod(vma, VM_DONTEXPAND | VM_DONTDUMP, VM_MAYEXEC);

	area = kex_area_new(kf, pages, policy, mode, m.fail_at);
	if (!area) {
		pr_warn_ratelimited("mmap failed: no memory to track %lu pages\n", pages);
		kex_unreserve(pages);
		ret = -ENOMEM;
		goto out;
	}
	m.area = area;

	switch (mode) {
	case KEX_MODE_BATCH:
		ret = kex_map_batch(&m);
		break;
	case KEX_MODE_FAULT:
		ret = 0;	/* pages come in at kex_vm_fault() */
		break;
	default:
		ret = kex_map_each(&m);
		break;
	}
	if (ret) {
		kex_mmap_failed(&m);
		goto out;
	}

	atomic_add(area->nr_held, &kf->kept);
	vma->vm_private_data = area;
	vma->vm_ops = mode == KEX_MODE_FAULT ? &kex_fault_vm_ops : &kex_vm_ops;
	atomic64_inc(&kex_stats.mappings);
	if (m.verbose) {
		pr_info("mapping->a_ops %p, name %pd\n",
			file_inode(file)->i_mapping->a_ops, file->f_path.dentry);
		if (mode == KEX_MODE_FAULT)
			pr_info("mode fault: no page mapped yet, each comes in at its first fault\n");
		else
			pr_info("completed %s %u pages\n",
				mode == KEX_MODE_PFN ? "remapping" : "inserting",
				m.mapped);
	}
out:
	trace_kex_mmap_done(vma->vm_start, ret, m.mapped);
	return ret;
}

/* --- file_operations ------------------------------------------------------- */

static int kex_open(struct inode *inode, struct file *file)
{
	struct kex_file *kf;

	kf = kzalloc(sizeof(*kf), GFP_KERNEL);
	if (!kf)
		return -ENOMEM;
	atomic_set(&kf->kept, 0);
	kf->mode = READ_ONCE(kex_mode);
	file->private_data = kf;
	return nonseekable_open(inode, file);
}

static long kex_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct kex_file *kf = file->private_data;
	u32 __user *uarg = (u32 __user *)arg;
	u32 mode;

	switch (cmd) {
	case KEX_IOC_SET_MODE:
		if (get_user(mode, uarg))
			return -EFAULT;
		if (mode >= KEX_MODE_COUNT) {
			pr_info_ratelimited("ioctl rejected: mode %u is not a kex mapping mode (0..%u)\n",
				mode, KEX_MODE_COUNT - 1);
			return -EINVAL;
		}
		WRITE_ONCE(kf->mode, mode);
		return 0;
	case KEX_IOC_GET_MODE:
		return put_user(READ_ONCE(kf->mode), uarg);
	default:
		return -ENOTTY;
	}
}

static int kex_release(struct inode *inode, struct file *file)
{
	struct kex_file *kf = file->private_data;
	int kept = atomic_read(&kf->kept);

	trace_kex_release(kept);
	/* Cannot happen (VMAs pin the file); leak rather than free in use. */
	if (WARN_ONCE(kept, "kex: release with %d pages still kept\n", kept))
		return 0;
	kfree(kf);
	return 0;
}

/* No read/write (the VFS answers -EINVAL), no lseek (nonseekable_open). */
static const struct file_operations kex_fops = {
	.owner		= THIS_MODULE,
	.open		= kex_open,
	.unlocked_ioctl	= kex_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= kex_mmap,
	.release	= kex_release,
};

/* --- sysfs counters -------------------------------------------------------- */

static ssize_t kex_counter_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	struct dev_ext_attribute *ea = container_of(attr, typeof(*ea), attr);

	return sysfs_emit(buf, "%lld\n", (long long)atomic64_read(ea->var));
}

static struct dev_ext_attribute kex_attr_pages_allocated = {
	__ATTR(pages_allocated, 0444, kex_counter_show, NULL),
	&kex_stats.pages_allocated,
};

static struct dev_ext_attribute kex_attr_pages_freed = {
	__ATTR(pages_freed, 0444, kex_counter_show, NULL),
	&kex_stats.pages_freed,
};

static struct dev_ext_attribute kex_attr_pages_live = {
	__ATTR(pages_live, 0444, kex_counter_show, NULL),
	&kex_stats.pages_live,
};

static struct dev_ext_attribute kex_attr_mappings = {
	__ATTR(mappings, 0444, kex_counter_show, NULL),
	&kex_stats.mappings,
};

static struct dev_ext_attribute kex_attr_pages_leaked_injected = {
	__ATTR(pages_leaked_injected, 0444, kex_counter_show, NULL),
	&kex_stats.pages_leaked_injected,
};

static struct dev_ext_attribute kex_attr_pages_reserved = {
	__ATTR(pages_reserved, 0444, kex_counter_show, NULL),
	&kex_stats.pages_reserved,
};

static struct attribute *kex_attrs[] = {
	&kex_attr_pages_allocated.attr.attr,
	&kex_attr_pages_freed.attr.attr,
	&kex_attr_pages_live.attr.attr,
	&kex_attr_mappings.attr.attr,
	&kex_attr_pages_leaked_injected.attr.attr,
	&kex_attr_pages_reserved.attr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(kex);

/* --- module ---------------------------------------------------------------- */

/* The permissions devtmpfs gives /dev/kex: node_mode, root's by default. */
static char *kex_devnode(KEX_DEVNODE_CONST struct device *dev, umode_t *mode)
{
	if (mode)
		*mode = kex_node_mode;
	return NULL;
}

/* fail_init: whether init step @step must fail (and say so). */
static bool __init kex_init_fails(enum kex_init_step step)
{
	if (kex_fail_init != step)
		return false;
	pr_warn("fail_init: %s fails with -ENOMEM\n",
		kex_init_step_names[step]);
	return true;
}

/*
 * The device number, then the class and the device (sysfs, /dev/kex), and
 * last the cdev: once cdev_add() returns, an open() of the device number
 * (/dev/kex or any mknod'ed node) reaches kex_fops, so nothing may fail
 * after it. Before it, such an open gets -ENXIO. Each error undoes the
 * steps before it in reverse; exit undoes them all the same way.
 */
static int __init kex_init(void)
{
	int ret;

	ret = alloc_chrdev_region(&kex_devt, 0, 1, KEX_DEVICE_NAME);
	if (ret) {
		pr_err("cannot allocate a char device number: %d\n", ret);
		return ret;
	}

	kex_class = kex_init_fails(KEX_INIT_CLASS) ? ERR_PTR(-ENOMEM) :
		kex_class_create(KEX_DEVICE_NAME);
	if (IS_ERR(kex_class)) {
		ret = PTR_ERR(kex_class);
		pr_err("class_create failed: %d\n", ret);
		goto out_unregister;
	}
	kex_class->devnode = kex_devnode;

	kex_device = kex_init_fails(KEX_INIT_DEVICE) ? ERR_PTR(-ENOMEM) :
		device_create_with_groups(kex_class, NULL, kex_devt, NULL,
					  kex_groups, KEX_DEVICE_NAME);
	if (IS_ERR(kex_device)) {
		ret = PTR_ERR(kex_device);
		pr_err("device_create failed: %d\n", ret);
		goto out_class_destroy;
	}

	cdev_init(&kex_cdev, &kex_fops);
	kex_cdev.owner = THIS_MODULE;
	ret = kex_init_fails(KEX_INIT_CDEV) ? -ENOMEM :
		cdev_add(&kex_cdev, kex_devt, 1);
	if (ret) {
		pr_err("cdev_add failed: %d\n", ret);
		goto out_device_destroy;
	}

	pr_info("loaded: major %d, ref_policy %s, max_pages %u\n",
		MAJOR(kex_devt), kex_policy_names[kex_ref_policy],
		kex_max_pages);
	return 0;

out_device_destroy:
	device_destroy(kex_class, kex_devt);
out_class_destroy:
	class_destroy(kex_class);
out_unregister:
	unregister_chrdev_region(kex_devt, 1);
	return ret;
}

static void __exit kex_exit(void)
{
	cdev_del(&kex_cdev);
	device_destroy(kex_class, kex_devt);
	class_destroy(kex_class);
	unregister_chrdev_region(kex_devt, 1);
	pr_info("unloaded: %lld pages allocated, %lld freed\n",
		(long long)atomic64_read(&kex_stats.pages_allocated),
		(long long)atomic64_read(&kex_stats.pages_freed));
}

module_init(kex_init);
module_exit(kex_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kex: maps alloc_page() pages into user space with vm_insert_page(), traced");
