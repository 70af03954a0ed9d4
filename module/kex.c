// SPDX-License-Identifier: GPL-2.0
/*
 * kex - a char device whose mmap() maps freshly allocated pages into the
 * caller with alloc_page() + vm_insert_page(), one page at a time, so that
 * every step of the kernel's insert / fault / unmap paths can be traced.
 *
 * The device: /dev/kex (class "kex", dynamic major, minor 0); a node made by
 * hand with "mknod NAME c MAJOR 0" works as well. The mmap rules and errors
 * are documented in kex_uapi.h; the tracepoints in kex_trace.h.
 *
 * Who owns the pages (module parameter ref_policy, read at each mmap):
 *  - drop (default): kex drops its reference right after vm_insert_page took
 *    the mapping's; the page is freed by the kernel when it is unmapped.
 *  - keep: kex keeps its reference until the last VMA of the mapping closes,
 *    then frees the page itself.
 *
 * Counters (sysfs, /sys/class/kex/kex/):
 *  - pages_allocated: pages kex got from alloc_page();
 *  - pages_freed: pages given back: at kex's own freeing __free_page (keep,
 *    error paths), or, with drop, when the last VMA of their mapping closed
 *    (the kernel zapped them before that) or the core undid a failed mmap;
 *  - pages_live: pages_allocated - pages_freed;
 *  - mappings: live VMAs mapping kex pages.
 */
#define pr_fmt(fmt) "kex: " fmt

#include <linux/atomic.h>
#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/init.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/overflow.h>
#include <linux/printk.h>
#include <linux/refcount.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/sysfs.h>
#include <linux/types.h>

#include "kex_compat.h"
#include "kex_uapi.h"
#include "bpf/events.h"		/* enum kex_free_reason */

#define CREATE_TRACE_POINTS
#include "kex_trace.h"

/* --- module parameters ---------------------------------------------------- */

static int kex_ref_policy = KEX_POLICY_DROP;
static unsigned int kex_max_pages = KEX_MAX_PAGES_DEFAULT;
static bool kex_verbose = true;
static int kex_fail_at = -1;

static const char * const kex_policy_names[] = {
	[KEX_POLICY_DROP] = "drop",
	[KEX_POLICY_KEEP] = "keep",
};

static int kex_ref_policy_set(const char *val, const struct kernel_param *kp)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(kex_policy_names); i++) {
		if (sysfs_streq(val, kex_policy_names[i])) {
			WRITE_ONCE(*(int *)kp->arg, i);
			return 0;
		}
	}
	pr_warn("ref_policy must be drop or keep, not '%s'\n", val);
	return -EINVAL;
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

module_param_named(verbose, kex_verbose, bool, 0644);
MODULE_PARM_DESC(verbose, "log each mmap and inserted page (default on)");

module_param_named(fail_at, kex_fail_at, int, 0600);
MODULE_PARM_DESC(fail_at,
		 "testing: make the insert of page N of every mmap fail with -ENOMEM (-1: off)");

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
} kex_stats;

/*
 * kex_file: one per open(), in file->private_data.
 * Life: open -> any number of mmap()s, from any thread or, after fork, any
 * process sharing the file -> release. Every VMA holds a reference on the
 * file, so release runs after the last VMA mapping it closed: kept is 0 then.
 * Locking: kept is atomic; there is no other state.
 */
struct kex_file {
	atomic_t kept;		/* pages kex holds for this file's keep areas */
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
 * Locking: refs is a refcount_t; every other field is written before the
 * area is published (under the mmap_lock, held for write around ->mmap) and
 * only read after. VMAs of one area may close concurrently in different
 * processes after fork; they share nothing but refs and the atomics.
 */
struct kex_area {
	refcount_t refs;	/* one per VMA mapping the area */
	struct kex_file *kf;	/* the file it was mapped through */
	u32 policy;		/* enum kex_ref_policy at mmap time */
	u32 nr_pages;
	struct page *pages[];	/* keep only: kex's references, in page order */
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

/* Drop kex's own reference on @page (index @index of its mapping). */
static void kex_free_page(struct page *page, u32 index,
			  enum kex_free_reason reason)
{
	trace_kex_page_free(page_to_pfn(page), index, reason);
	__free_page(page);
}

static void kex_area_release(struct kex_area *area)
{
	u32 i;

	if (area->policy == KEX_POLICY_KEEP) {
		for (i = 0; i < area->nr_pages; i++)
			kex_free_page(area->pages[i], i, KEX_FREE_AT_CLOSE);
		atomic_sub(area->nr_pages, &area->kf->kept);
	}
	kex_count_freed(area->nr_pages);
	if (READ_ONCE(kex_verbose))
		pr_info("released mapping of %u pages, ref_policy %s\n",
			area->nr_pages, kex_policy_names[area->policy]);
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

static const struct vm_operations_struct kex_vm_ops = {
	.open	= kex_vm_open,
	.close	= kex_vm_close,
};

/* --- file_operations ------------------------------------------------------- */

/* One line per rejected request: the reason, then -errno to the caller. */
static int kex_mmap_check(struct vm_area_struct *vma, unsigned long pages,
			  unsigned int max_pages)
{
	if (vma->vm_pgoff) {
		pr_info("mmap rejected: offset %lu pages, only offset 0 is supported\n",
			vma->vm_pgoff);
		return -EINVAL;
	}
	if (!(vma->vm_flags & VM_SHARED)) {
		pr_info("mmap rejected: MAP_PRIVATE would copy-on-write driver pages, use MAP_SHARED\n");
		return -EINVAL;
	}
	if (vma->vm_flags & VM_EXEC) {
		pr_info("mmap rejected: PROT_EXEC is not allowed\n");
		return -EPERM;
	}
	if (pages > max_pages) {
		pr_info("mmap rejected: %lu pages exceeds max_pages %u\n",
			pages, max_pages);
		return -E2BIG;
	}
	return 0;
}

/*
 * Map vm_end - vm_start bytes of fresh zeroed pages, page by page. Called
 * with the mmap_lock held for write. On failure every page kex allocated
 * and still references is freed here; pages already inserted are unmapped
 * by the core's error path after we return (with drop, that frees them).
 */
static int kex_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct kex_file *kf = file->private_data;
	unsigned long pages = vma_pages(vma);
	u32 policy = READ_ONCE(kex_ref_policy);
	bool verbose = READ_ONCE(kex_verbose);
	int fail_at = READ_ONCE(kex_fail_at);
	struct kex_area *area;
	unsigned long uaddr;
	struct page *page;
	u32 i, mapped = 0;
	int ret;

	ret = kex_mmap_check(vma, pages, READ_ONCE(kex_max_pages));
	if (ret)
		return ret;

	trace_kex_mmap(vma->vm_start, vma->vm_end, vma->vm_pgoff, pages, policy);
	if (verbose)
		pr_info("vma->vm_end %lu vm_start %lu len %lu pages %lu vm_pgoff %lu\n",
			vma->vm_end, vma->vm_start, vma->vm_end - vma->vm_start,
			pages, vma->vm_pgoff);

	/* The mapping can neither grow (mremap) nor become executable. */
	kex_vm_flags_mod(vma, VM_DONTEXPAND | VM_DONTDUMP, VM_MAYEXEC);

	/* NOWARN: a huge max_pages must fail here quietly, not WARN. */
	area = kvzalloc(struct_size(area, pages,
				    policy == KEX_POLICY_KEEP ? pages : 0),
			GFP_KERNEL | __GFP_NOWARN);
	if (!area) {
		pr_warn("mmap failed: no memory to track %lu pages\n", pages);
		ret = -ENOMEM;
		goto out;
	}
	refcount_set(&area->refs, 1);
	area->kf = kf;
	area->policy = policy;
	area->nr_pages = pages;

	for (i = 0; i < pages; i++) {
		uaddr = vma->vm_start + ((unsigned long)i << PAGE_SHIFT);
		if (fatal_signal_pending(current)) {
			pr_info("mmap interrupted at page %u of %lu: fatal signal\n",
				i, pages);
			ret = -EINTR;
			goto out_unwind;
		}
		page = alloc_page(GFP_KERNEL | __GFP_ZERO);
		if (!page) {
			pr_warn("mmap failed: alloc_page for page %u of %lu\n",
				i, pages);
			ret = -ENOMEM;
			goto out_unwind;
		}
		atomic64_inc(&kex_stats.pages_allocated);
		atomic64_inc(&kex_stats.pages_live);
		trace_kex_page_alloc(page_to_pfn(page), (unsigned long)page, i);

		if (fail_at >= 0 && i == (u32)fail_at)
			ret = -ENOMEM;	/* fail_at: test the error path */
		else
			ret = vm_insert_page(vma, uaddr, page);
		trace_kex_page_insert(page_to_pfn(page), uaddr, i, ret);
		if (ret) {
			pr_warn("mmap failed: vm_insert_page of page %u at 0x%lx returned %d\n",
				i, uaddr, ret);
			kex_free_page(page, i, KEX_FREE_ERROR);
			kex_count_freed(1);
			goto out_unwind;
		}
		mapped++;
		if (verbose)
			pr_info("inserted page %u pfn 0x%lx at 0x%lx\n",
				i, page_to_pfn(page), uaddr);

		if (policy == KEX_POLICY_KEEP)
			area->pages[i] = page;
		else
			kex_free_page(page, i, KEX_FREE_AFTER_INSERT);
		cond_resched();
	}

	if (policy == KEX_POLICY_KEEP)
		atomic_add(pages, &kf->kept);
	vma->vm_private_data = area;
	vma->vm_ops = &kex_vm_ops;
	atomic64_inc(&kex_stats.mappings);
	if (verbose) {
		pr_info("mapping->a_ops %p, name %pd\n",
			file_inode(file)->i_mapping->a_ops, file->f_path.dentry);
		pr_info("completed inserting %u pages\n", mapped);
	}
	goto out;

out_unwind:
	/* Pages 0..mapped-1 are in the page tables; the core unmaps them. */
	if (policy == KEX_POLICY_KEEP) {
		for (i = 0; i < mapped; i++)
			kex_free_page(area->pages[i], i, KEX_FREE_ERROR);
	}
	kex_count_freed(mapped);
	kvfree(area);
out:
	trace_kex_mmap_done(vma->vm_start, ret, mapped);
	return ret;
}

static int kex_open(struct inode *inode, struct file *file)
{
	struct kex_file *kf;

	kf = kzalloc(sizeof(*kf), GFP_KERNEL);
	if (!kf)
		return -ENOMEM;
	atomic_set(&kf->kept, 0);
	file->private_data = kf;
	return nonseekable_open(inode, file);
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

static struct attribute *kex_attrs[] = {
	&kex_attr_pages_allocated.attr.attr,
	&kex_attr_pages_freed.attr.attr,
	&kex_attr_pages_live.attr.attr,
	&kex_attr_mappings.attr.attr,
	NULL,
};
ATTRIBUTE_GROUPS(kex);

/* --- module ---------------------------------------------------------------- */

static int __init kex_init(void)
{
	int ret;

	ret = alloc_chrdev_region(&kex_devt, 0, 1, KEX_DEVICE_NAME);
	if (ret) {
		pr_err("cannot allocate a char device number: %d\n", ret);
		return ret;
	}

	cdev_init(&kex_cdev, &kex_fops);
	kex_cdev.owner = THIS_MODULE;
	ret = cdev_add(&kex_cdev, kex_devt, 1);
	if (ret) {
		pr_err("cdev_add failed: %d\n", ret);
		goto out_unregister;
	}

	kex_class = kex_class_create(KEX_DEVICE_NAME);
	if (IS_ERR(kex_class)) {
		ret = PTR_ERR(kex_class);
		pr_err("class_create failed: %d\n", ret);
		goto out_cdev_del;
	}

	kex_device = device_create_with_groups(kex_class, NULL, kex_devt, NULL,
					       kex_groups, KEX_DEVICE_NAME);
	if (IS_ERR(kex_device)) {
		ret = PTR_ERR(kex_device);
		pr_err("device_create failed: %d\n", ret);
		goto out_class_destroy;
	}

	pr_info("loaded: major %d, ref_policy %s, max_pages %u\n",
		MAJOR(kex_devt), kex_policy_names[kex_ref_policy],
		kex_max_pages);
	return 0;

out_class_destroy:
	class_destroy(kex_class);
out_cdev_del:
	cdev_del(&kex_cdev);
out_unregister:
	unregister_chrdev_region(kex_devt, 1);
	return ret;
}

static void __exit kex_exit(void)
{
	device_destroy(kex_class, kex_devt);
	class_destroy(kex_class);
	cdev_del(&kex_cdev);
	unregister_chrdev_region(kex_devt, 1);
	pr_info("unloaded: %lld pages allocated, %lld freed\n",
		(long long)atomic64_read(&kex_stats.pages_allocated),
		(long long)atomic64_read(&kex_stats.pages_freed));
}

module_init(kex_init);
module_exit(kex_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("kex: maps alloc_page() pages into user space with vm_insert_page(), traced");
