/* SPDX-License-Identifier: GPL-2.0 */
/*
 * driver.bpf.h - another driver's pages (not kex's): a page some driver
 * gets into a traced process's page table is adopted there, its VMA
 * reported once with what names its owner. The insert path (insert.bpf.c)
 * and the fault path (fault.bpf.c: a VMA whose vm_ops->fault is a driver's,
 * not one of the kernel's page-cache or special-mapping handlers) share it.
 */
#ifndef KEXTRACE_DRIVER_BPF_H
#define KEXTRACE_DRIVER_BPF_H

#include "kextrace.bpf.h"

/* driver VMAs reported already: vma pointer -> vm_start (a reused vma has another) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KEX_MAX_DRIVER_VMAS);
	__type(key, __u64);
	__type(value, __u64);
} driver_vmas SEC(".maps") __weak;

/*
 * The allocations of traced processes a driver page may come from (not
 * under --all: every allocation of the machine), by the block's first pfn,
 * from mm_page_alloc to mm_page_free (page_alloc.bpf.c): what
 * KEX_EV_DRIVER_ALLOC sends when one of its pages is adopted.
 */
struct driver_alloc {
	__u64 ts;
	__u32 tgid;
	__u32 tid;
	__u32 cpu;
	__u32 order;
	__u32 stack_len;
	__u32 pad;
	__u64 stack[KEX_STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_DRIVER_ALLOCS);
	__type(key, __u64);
	__type(value, struct driver_alloc);
} driver_allocs SEC(".maps") __weak;

#define GFP_MOVABLE_	0x08	/* ___GFP_MOVABLE: user memory, page cache */

/*
 * mm_page_alloc: remember an allocation that may become a driver's page: by
 * a traced process, while tracking is armed, not movable (a driver's buffer,
 * a page table, a slab; not the process's own memory). kex's pages are
 * claimed by its tracepoints instead (the caller skips its mmap windows).
 */
static __always_inline void remember_alloc(struct trace_event_raw_mm_page_alloc *ctx)
{
	struct driver_alloc a = {};
	__u64 pfn = ctx->pfn;
	long n;

	if (!driver_pages || trace_all || !tracking_armed || pfn == ~0UL ||
	    (ctx->gfp_flags & GFP_MOVABLE_) || ctx->order > KEX_ALLOC_MAX_ORDER ||
	    !driver_traced())
		return;
	a.ts = bpf_ktime_get_ns();
	a.tgid = bpf_get_current_pid_tgid() >> 32;
	a.tid = current_tid();
	a.cpu = bpf_get_smp_processor_id();
	a.order = ctx->order;
	if (capture_stacks) {
		n = bpf_get_stack(ctx, a.stack, sizeof(a.stack), 0);
		a.stack_len = n > 0 ? n / sizeof(__u64) : 0;
	}
	track_update(&driver_allocs, &pfn, &a, KEX_TRACK_DRIVER_ALLOCS);
}

/* mm_page_free of a block: its allocation is no longer one to link */
static __always_inline void forget_alloc(__u64 pfn)
{
	if (driver_pages && !trace_all && bpf_map_lookup_elem(&driver_allocs, &pfn))
		bpf_map_delete_elem(&driver_allocs, &pfn);
}

/*
 * An adopted page's allocation, if the trace saw it: the block that holds
 * pfn starts at pfn rounded down to its order (buddy blocks are aligned),
 * so try each order, smallest first.
 */
static __always_inline void link_alloc(__u64 pfn, __u32 probe)
{
	struct kex_event_stack *r;
	struct driver_alloc *a;
	__u64 head = 0;
	__u32 n;
	int k;

	if (trace_all)
		return;
	for (k = 0; k <= KEX_ALLOC_MAX_ORDER; k++) {
		head = pfn & ~((1ULL << k) - 1);
		a = bpf_map_lookup_elem(&driver_allocs, &head);
		if (a && a->order <= KEX_ALLOC_MAX_ORDER && pfn - head < (1ULL << a->order))
			break;
		a = NULL;
	}
	if (!a)
		return;
	r = reserve_stack_room(KEX_EV_DRIVER_ALLOC, probe);
	if (!r)
		return;
	r->ev.pfn = pfn;
	r->ev.arg0 = a->ts;
	r->ev.arg1 = head;
	r->ev.ret = a->order;
	r->ev.pid = a->tgid;
	r->ev.tid = a->tid;
	r->ev.cpu = a->cpu;
	__builtin_memcpy(r->stack, a->stack, sizeof(r->stack));
	n = a->stack_len;
	r->ev.stack_len = n < KEX_STACK_DEPTH ? n : KEX_STACK_DEPTH;
	submit(&r->ev);
}

#define SOCKFS_MAGIC_ 0x534F434B

/*
 * The file's path components, innermost first, as d_path would walk them
 * for the current task (/proc/PID/maps's names): up the dentries to the
 * mount's root, then on from the mount point in the parent mount, until
 * the task's root directory (a chroot's, or the namespace's root: then
 * KEX_VMA_NAME_ROOT) or KEX_NAME_PARTS names. Pseudo files (sockets, anon
 * inodes) are their own root: one name.
 */
static __always_inline void file_name(struct kex_vma_info *vi, struct file *f)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct vfsmount *vmnt = BPF_CORE_READ(f, f_path.mnt);
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry), *parent, *root;
	struct vfsmount *task_mnt = BPF_CORE_READ(task, fs, root.mnt);
	struct dentry *task_root = BPF_CORE_READ(task, fs, root.dentry);
	struct mount *mnt, *up;
	__u32 n = 0;

	mnt = (void *)vmnt - bpf_core_field_offset(struct mount, mnt);
	for (int i = 0; i < 2 * KEX_NAME_PARTS + 2; i++) {
		if (d == task_root && (void *)mnt + bpf_core_field_offset(struct mount, mnt) ==
					      (void *)task_mnt) {
			vi->flags |= KEX_VMA_NAME_ROOT;
			break;
		}
		root = BPF_CORE_READ(mnt, mnt.mnt_root);
		if (d == root) {
			up = BPF_CORE_READ(mnt, mnt_parent);
			if (up == mnt) {
				vi->flags |= KEX_VMA_NAME_ROOT;
				break;
			}
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = up;
			continue;
		}
		if (n >= KEX_NAME_PARTS)
			break;
		bpf_probe_read_kernel_str(vi->name[n], KEX_NAME_LEN,
					  BPF_CORE_READ(d, d_name.name));
		n++;
		parent = BPF_CORE_READ(d, d_parent);
		if (parent == d) {
			vi->flags |= KEX_VMA_NAME_ROOT;
			break;
		}
		d = parent;
	}
	vi->parts = n;
}

struct kex_vma_record {
	struct kex_event ev;
	struct kex_vma_info vi;
	__u64 stack[KEX_STACK_DEPTH];
};

/*
 * A file whose mmap is an mmap_prepare hook (6.17 and later; 7.2's /dev/mem)
 * has no f_op->mmap: its handler is the hook. Absent from older kernels'
 * struct file_operations (CO-RE: 0 then).
 */
struct file_operations___prepare {
	int (*mmap_prepare)(void *desc);
} __attribute__((preserve_access_index));

static __always_inline __u64 mmap_prepare_of(const void *fop)
{
	const struct file_operations___prepare *fp = fop;

	if (!bpf_core_field_exists(fp->mmap_prepare))
		return 0;
	return (__u64)BPF_CORE_READ(fp, mmap_prepare);
}

/*
 * A driver VMA's first followed page: report the VMA once, with what names
 * it (the file) and its owner (f_op, the mmap handler, vm_ops and its fault
 * handler, and the call chain that mapped the page, captured even under
 * --no-stacks: once per VMA).
 */
static __always_inline void report_driver_vma(void *ctx, __u64 skip,
					      struct vm_area_struct *vma,
					      __u32 probe)
{
	__u64 key = (__u64)vma, start = BPF_CORE_READ(vma, vm_start), *seen;
	const struct file_operations *fop;
	struct kex_vma_record *r;
	struct inode *inode;
	struct file *f;
	__u32 mark;
	long n;

	seen = bpf_map_lookup_elem(&driver_vmas, &key);
	if (seen && *seen == start)
		return;
	track_update(&driver_vmas, &key, &start, KEX_TRACK_DRIVER_VMAS);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	mark = ring_reserved(r, KEX_EV_DRIVER_VMA, probe);
	if (!r)
		return;
	fill(&r->ev, KEX_EV_DRIVER_VMA, mark);
	__builtin_memset(&r->vi, 0, sizeof(r->vi));
	r->ev.addr = start;
	r->ev.arg0 = BPF_CORE_READ(vma, vm_end);
	r->ev.arg1 = BPF_CORE_READ(vma, vm_flags);
	r->vi.vma = key;
	if (probe == KEX_P_SET_PTE)
		r->vi.flags = KEX_VMA_BY_FAULT;
	else if (probe == KEX_P_REMAP_PFN)
		r->vi.flags = KEX_VMA_PFNMAP;
	r->vi.vm_ops = (__u64)BPF_CORE_READ(vma, vm_ops);
	if (r->vi.vm_ops)
		r->vi.fault = (__u64)BPF_CORE_READ(vma, vm_ops, fault);
	f = BPF_CORE_READ(vma, vm_file);
	if (f) {
		fop = BPF_CORE_READ(f, f_op);
		inode = BPF_CORE_READ(f, f_inode);
		r->vi.f_op = (__u64)fop;
		r->vi.mmap = (__u64)BPF_CORE_READ(fop, mmap);
		if (!r->vi.mmap)
			r->vi.mmap = mmap_prepare_of(fop);
		r->vi.ino = BPF_CORE_READ(inode, i_ino);
		r->vi.rdev = BPF_CORE_READ(inode, i_rdev);
		r->vi.magic = BPF_CORE_READ(inode, i_sb, s_magic);
		if (r->vi.magic == SOCKFS_MAGIC_) {
			struct socket *sock = BPF_CORE_READ(f, private_data);

			r->vi.mmap = (__u64)BPF_CORE_READ(sock, ops, mmap);
		}
		file_name(&r->vi, f);
	}
	n = bpf_get_stack(ctx, r->stack, sizeof(r->stack),
			  skip & BPF_F_SKIP_FIELD_MASK);
	r->ev.stack_len = n > 0 ? n / sizeof(__u64) : 0;
	submit_ring(&r->ev);
}

/*
 * A page some driver (not kex) gets into a traced process's page table, at
 * addr of vma (0: unknown), by its insert (probe KEX_P_INSERT) or from its
 * fault handler (KEX_P_SET_PTE): from now on it is followed like a kex page
 * ("pfns"), its life starting here: its allocation came before (at
 * setsockopt, at driver load, ...), which the record says by being the
 * first of the life. The caller checked driver_traced(); skip is its stacks'
 * (stack_skip).
 */
static __always_inline struct kex_pfn_info *
adopt_page(void *ctx, __u64 skip, struct vm_area_struct *vma, __u64 page,
	   __u64 addr, __u32 probe)
{
	struct kex_pfn_info fi = {};
	struct kex_event *e;
	__u64 start;

	if (!tracking_armed)
		return NULL;
	fi.pfn = page_to_pfn(page);
	if (fi.pfn == KEX_NO_PFN)
		return NULL;
	start = BPF_CORE_READ(vma, vm_start);
	fi.page = page;
	fi.index = addr ? (addr - start) >> 12 : KEX_NO_INDEX;
	if (track_update(&pfns, &fi.pfn, &fi, KEX_TRACK_PFNS))
		return NULL;
	report_driver_vma(ctx, skip, vma, probe);
	e = reserve(KEX_EV_DRIVER_PAGE, probe);
	if (e) {
		e->pfn = fi.pfn;
		e->addr = addr;
		e->arg0 = start;
		e->arg1 = page;
		e->ret = probe == KEX_P_SET_PTE;
		page_counts(e, page);
		submit(e);
	}
	link_alloc(fi.pfn, probe);
	return kex_page(page);
}

#define PAGE_MAPPING_ANON_	0x1

/*
 * A page a fault handler handed back (vmf->page) on vma, being installed:
 * a driver's page when the VMA has a file and a vm_ops->fault that is not
 * one of core_faults (filemap_fault, shmem_fault, the vdso's, ...: the
 * loader fills them from kallsyms) and the page is not anonymous (a private
 * mapping's copy-on-write copy is not the driver's page).
 */
static __always_inline bool driver_fault_page(struct vm_area_struct *vma,
					      __u64 page)
{
	const struct vm_operations_struct *ops;
	struct page *pg = (struct page *)page;
	__u64 fault;

	if (!page || !vma || !BPF_CORE_READ(vma, vm_file))
		return false;
	ops = BPF_CORE_READ(vma, vm_ops);
	if (!ops)
		return false;
	fault = (__u64)BPF_CORE_READ(ops, fault);
	if (!fault)
		return false;
	for (int i = 0; i < KEX_CORE_FAULTS; i++) {
		if (!core_faults[i])
			break;
		if (core_faults[i] == fault)
			return false;
	}
	return !((__u64)BPF_CORE_READ(pg, mapping) & PAGE_MAPPING_ANON_);
}

#endif /* KEXTRACE_DRIVER_BPF_H */
