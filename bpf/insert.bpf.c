// SPDX-License-Identifier: GPL-2.0
/* insert.bpf.c - the insert path: insert_page_into_pte_locked, the file rmap, dirtying */
#include "kextrace.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct pte_call);
} insert_calls SEC(".maps");

/* driver VMAs reported already: vma pointer -> vm_start (a reused vma has another) */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KEX_MAX_DRIVER_VMAS);
	__type(key, __u64);
	__type(value, __u64);
} driver_vmas SEC(".maps");

#define SOCKFS_MAGIC_ 0x534F434B

/*
 * The file's path components, innermost first, as d_path would walk them:
 * up the dentries to the mount's root, then on from the mount point in the
 * parent mount, until the root (KEX_VMA_NAME_ROOT) or KEX_NAME_PARTS names.
 * Pseudo files (sockets, anon inodes) are their own root: one name.
 */
static __always_inline void file_name(struct kex_vma_info *vi, struct file *f)
{
	struct vfsmount *vmnt = BPF_CORE_READ(f, f_path.mnt);
	struct dentry *d = BPF_CORE_READ(f, f_path.dentry), *parent, *root;
	struct mount *mnt, *up;
	__u32 n = 0;

	mnt = (void *)vmnt - bpf_core_field_offset(struct mount, mnt);
	for (int i = 0; i < 2 * KEX_NAME_PARTS + 2; i++) {
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
 * A driver VMA's first followed page: report the VMA once, with what names
 * it (the file) and its owner (f_op, the mmap handler, vm_ops, and the
 * inserting call chain, captured even under --no-stacks: once per VMA).
 */
static __always_inline void report_driver_vma(void *ctx,
					      struct vm_area_struct *vma)
{
	__u64 key = (__u64)vma, start = BPF_CORE_READ(vma, vm_start), *seen;
	const struct file_operations *fop;
	struct kex_vma_record *r;
	struct inode *inode;
	struct file *f;
	long n;

	seen = bpf_map_lookup_elem(&driver_vmas, &key);
	if (seen && *seen == start)
		return;
	track_update(&driver_vmas, &key, &start, KEX_TRACK_DRIVER_VMAS);
	count_produced(KEX_EV_DRIVER_VMA);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_loss(KEX_EV_DRIVER_VMA);
		return;
	}
	fill(&r->ev, KEX_EV_DRIVER_VMA, KEX_P_INSERT);
	__builtin_memset(&r->vi, 0, sizeof(r->vi));
	r->ev.addr = start;
	r->ev.arg0 = BPF_CORE_READ(vma, vm_end);
	r->ev.arg1 = BPF_CORE_READ(vma, vm_flags);
	r->vi.vma = key;
	r->vi.vm_ops = (__u64)BPF_CORE_READ(vma, vm_ops);
	f = BPF_CORE_READ(vma, vm_file);
	if (f) {
		fop = BPF_CORE_READ(f, f_op);
		inode = BPF_CORE_READ(f, f_inode);
		r->vi.f_op = (__u64)fop;
		r->vi.mmap = (__u64)BPF_CORE_READ(fop, mmap);
		r->vi.ino = BPF_CORE_READ(inode, i_ino);
		r->vi.rdev = BPF_CORE_READ(inode, i_rdev);
		r->vi.magic = BPF_CORE_READ(inode, i_sb, s_magic);
		if (r->vi.magic == SOCKFS_MAGIC_) {
			struct socket *sock = BPF_CORE_READ(f, private_data);

			r->vi.mmap = (__u64)BPF_CORE_READ(sock, ops, mmap);
		}
		file_name(&r->vi, f);
	}
	n = bpf_get_stack(ctx, r->stack, sizeof(r->stack), 0);
	r->ev.stack_len = n > 0 ? n / sizeof(__u64) : 0;
	submit(&r->ev);
}

/*
 * The user address of a driver page being inserted: the insert's own
 * argument where it has one, else what its vm_insert_page(s) caller said
 * (insert_sites), else 0 (unknown). Checked against the VMA either way.
 */
static __always_inline __u64 insert_uaddr(struct pt_regs *ctx, __u64 page,
					  struct vm_area_struct *vma)
{
	struct kex_insert_site *site;
	__u64 addr = 0, start, end;
	__u32 tid = current_tid();

	if (insert_addr_arg) {
		addr = kprobe_arg(ctx, insert_addr_arg);
	} else {
		site = bpf_map_lookup_elem(&insert_sites, &tid);
		if (site && site->vma == (__u64)vma) {
			if (site->page == page)
				addr = site->addr;
			else if (!site->page)
				addr = site->addr + (site->n++ << 12);
		}
	}
	start = BPF_CORE_READ(vma, vm_start);
	end = BPF_CORE_READ(vma, vm_end);
	return addr >= start && addr < end ? addr : 0;
}

/*
 * A page some driver (not kex) inserts into a traced process's page table:
 * from now on it is followed like a kex page ("pages", "pfns"), its life
 * starting here: its allocation came before (at setsockopt, at driver load,
 * ...), which the record says by being the first of the life.
 */
static __always_inline struct kex_page_info *adopt_page(struct pt_regs *ctx,
							__u64 page)
{
	struct vm_area_struct *vma = (void *)PT_REGS_PARM1_CORE(ctx);
	struct kex_page_info pi = {};
	struct kex_pfn_info fi = {};
	struct kex_event *e;
	__u64 addr, start;

	if (!page || !driver_traced())
		return NULL;
	pi.pfn = page_to_pfn(page);
	if (pi.pfn == KEX_NO_PFN)
		return NULL;
	addr = insert_uaddr(ctx, page, vma);
	start = BPF_CORE_READ(vma, vm_start);
	pi.index = addr ? (addr - start) >> 12 : KEX_NO_INDEX;
	pi.tgid = bpf_get_current_pid_tgid() >> 32;
	fi.page = page;
	fi.index = pi.index;
	if (track_update(&pages, &page, &pi, KEX_TRACK_PAGES) ||
	    track_update(&pfns, &pi.pfn, &fi, KEX_TRACK_PFNS))
		return NULL;
	report_driver_vma(ctx, vma);
	e = reserve(KEX_EV_DRIVER_PAGE, KEX_P_INSERT);
	if (e) {
		e->pfn = pi.pfn;
		e->addr = addr;
		e->arg0 = start;
		e->arg1 = page;
		page_counts(e, page);
		submit(e);
	}
	return kex_page(page);
}

/*
 * insert_page_into_pte_locked(vma, pte, [addr,] page, prot): gets the page,
 * adds the file rmap and sets the PTE (set_pte_at is inlined: the PTE value
 * is read back at return).
 */
SEC("kprobe/insert_page_into_pte_locked")
int kprobe__insert_page(struct pt_regs *ctx)
{
	__u64 page = kprobe_arg(ctx, insert_page_arg);
	__u64 pte = kprobe_arg(ctx, insert_pte_arg);
	struct kex_page_info *pi;
	struct pte_call call = {};
	struct kex_event *e;
	__u32 tid = current_tid();

	count_hit(KEX_P_INSERT);
	pi = kex_page(page);
	if (!pi)
		pi = adopt_page(ctx, page);
	if (!pi)
		return 0;
	count_match(KEX_P_INSERT);
	if (!ret_is_fexit(KEX_P_INSERT_RET)) {
		call.page = page;
		call.pte = pte;
		call.pfn = pi->pfn;
		track_update(&insert_calls, &tid, &call, KEX_TRACK_INSERT_CALLS);
	}

	e = reserve_stack(ctx, KEX_EV_INSERT, KEX_P_INSERT);
	if (!e)
		return 0;
	e->pfn = pi->pfn;
	e->arg0 = pi->index;
	e->arg1 = pte;
	page_counts(e, page);
	submit(e);
	return 0;
}

/*
 * vm_insert_page(vma, addr, page) of a driver page into a traced process:
 * remember addr for the insert (the clone lost it). Attached only where the
 * insert function has no addr argument.
 */
SEC("kprobe/vm_insert_page")
int kprobe__vm_insert_page(struct pt_regs *ctx)
{
	struct kex_insert_site site = {};
	__u32 tid = current_tid();

	count_hit(KEX_P_VM_INSERT_PAGE);
	site.page = PT_REGS_PARM3_CORE(ctx);
	if (kex_page(site.page) || !driver_traced())
		return 0;
	count_match(KEX_P_VM_INSERT_PAGE);
	site.vma = PT_REGS_PARM1_CORE(ctx);
	site.addr = PT_REGS_PARM2_CORE(ctx);
	track_update(&insert_sites, &tid, &site, KEX_TRACK_INSERT_SITES);
	return 0;
}

static __always_inline void insert_return(__u64 page, __u64 pte, __u64 pfn,
					  long ret)
{
	struct kex_event *e = reserve(KEX_EV_INSERT_RET, KEX_P_INSERT_RET);

	if (!e)
		return;
	e->pfn = pfn;
	e->ret = ret;
	e->arg0 = read_pte(pte);
	e->arg1 = pte;
	page_counts(e, page);
	submit(e);
}

SEC("kretprobe/insert_page_into_pte_locked")
int kretprobe__insert_page(struct pt_regs *ctx)
{
	__u32 tid = current_tid();
	struct pte_call *call;

	count_hit(KEX_P_INSERT_RET);
	call = bpf_map_lookup_elem(&insert_calls, &tid);
	if (!call)
		return 0;
	count_match(KEX_P_INSERT_RET);
	insert_return(call->page, call->pte, call->pfn, (long)PT_REGS_RC(ctx));
	bpf_map_delete_elem(&insert_calls, &tid);
	return 0;
}

/* the non-clone insert_page_into_pte_locked(vma, pte, addr, page, prot) */
SEC("fexit/insert_page_into_pte_locked")
int fexit__insert_page(void *ctx)
{
	__u64 page = 0, pte = 0, ret = 0;
	struct kex_page_info *pi;

	count_hit(KEX_P_INSERT_RET);
	bpf_get_func_arg(ctx, insert_page_arg - 1, &page);
	bpf_get_func_arg(ctx, insert_pte_arg - 1, &pte);
	pi = kex_page(page);
	if (!pi)
		return 0;
	count_match(KEX_P_INSERT_RET);
	bpf_get_func_ret(ctx, &ret);
	insert_return(page, pte, pi->pfn, (int)ret);
	return 0;
}

/* page-level kprobe that only reports the page and its counts */
static __always_inline int page_event(struct pt_regs *ctx, __u8 arg,
				      __u32 type, __u32 probe)
{
	__u64 page = kprobe_arg(ctx, arg);
	struct kex_page_info *pi;
	struct kex_event *e;

	count_hit(probe);
	pi = kex_page(page);
	if (!pi)
		return 0;
	count_match(probe);
	e = reserve(type, probe);
	if (!e)
		return 0;
	e->pfn = pi->pfn;
	e->arg0 = pi->index;
	page_counts(e, page);
	submit(e);
	return 0;
}

SEC("kprobe/page_add_file_rmap")
int kprobe__rmap_add(struct pt_regs *ctx)
{
	return page_event(ctx, rmap_add_page_arg, KEX_EV_RMAP_ADD, KEX_P_RMAP_ADD);
}

SEC("kprobe/page_remove_rmap")
int kprobe__rmap_remove(struct pt_regs *ctx)
{
	return page_event(ctx, rmap_remove_page_arg, KEX_EV_RMAP_REMOVE,
			  KEX_P_RMAP_REMOVE);
}

/* set_page_dirty(page) / folio_mark_dirty(folio): order 0, folio == page */
SEC("kprobe/set_page_dirty")
int kprobe__set_dirty(struct pt_regs *ctx)
{
	return page_event(ctx, dirty_page_arg, KEX_EV_SET_DIRTY, KEX_P_SET_DIRTY);
}
