// SPDX-License-Identifier: GPL-2.0
/* unmap.bpf.c - the unmap paths: munmap (unmap_region and successors), exit_mmap */
#include "kextrace.bpf.h"

/* tid -> 1 while inside an emitted unmap / exit_mmap entry */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, __u32);
} in_unmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, __u32);
} in_exit_mmap SEC(".maps");

/* a traced process's munmap; exit_mmap calls unmap_vmas too: that one is
 * reported as exit */
static __always_inline bool unmap_wanted(__u32 tid)
{
	if (!current_traced())
		return false;
	return !(unmap_mode == KEX_UNMAP_VMAS &&
		 bpf_map_lookup_elem(&in_exit_mmap, &tid));
}

static __always_inline int unmap_entry(void *ctx, bool tramp)
{
	__u64 start = 0, end = 0;
	__u32 tid = current_tid();
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_UNMAP);
	if (!unmap_wanted(tid))
		return 0;
	count_match(cnt, KEX_P_UNMAP);
	if (unmap_mode == KEX_UNMAP_REGION_61 && !tramp) {
		/* 7 arguments (so never a trampoline): end is the first one
		 * on the stack */
		struct pt_regs *regs = ctx;

		start = BPF_CORE_READ(regs, r9);	/* PARM6 */
		bpf_probe_read_kernel(&end, sizeof(end),
				      (void *)(PT_REGS_SP_CORE(regs) + 8));
	} else if (unmap_mode == KEX_UNMAP_VMS) {
		struct vma_munmap_struct *vms = (void *)entry_arg(ctx, tramp, 1);

		start = BPF_CORE_READ(vms, start);
		end = BPF_CORE_READ(vms, end);
	} else {
		start = entry_arg(ctx, tramp, 4);
		end = entry_arg(ctx, tramp, 5);
	}
	if (!ret_is_fexit(KEX_P_UNMAP_RET))
		track_update(&in_unmap, &tid, &one, KEX_TRACK_IN_UNMAP);
	return emit_range(KEX_EV_UNMAP_REGION, KEX_P_UNMAP, start, end);
}

/* with the fexit: one trampoline on the function (kextrace.bpf.h) */
KEX_ENTRY_PROGRAMS(unmap_region, unmap, unmap_entry)

SEC("kretprobe/unmap_region")
int kretprobe__unmap(struct pt_regs *ctx)
{
	if (!window_closes(&in_unmap, KEX_P_UNMAP_RET))
		return 0;
	return emit_bare(KEX_EV_UNMAP_REGION_RET, KEX_P_UNMAP_RET);
}

/* the entry's filter again: no state needed */
SEC("fexit/unmap_region")
int fexit__unmap(void *ctx)
{
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_UNMAP_RET);
	if (!unmap_wanted(current_tid()))
		return 0;
	count_match(cnt, KEX_P_UNMAP_RET);
	return emit_bare(KEX_EV_UNMAP_REGION_RET, KEX_P_UNMAP_RET);
}

static __always_inline int exit_mmap_entry(void *ctx, bool tramp)
{
	__u32 tid = current_tid();
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_EXIT_MMAP);
	if (!current_traced())
		return 0;
	count_match(cnt, KEX_P_EXIT_MMAP);
	/* also the unmap_vmas filter (KEX_UNMAP_VMAS), whatever the return is */
	track_update(&in_exit_mmap, &tid, &one, KEX_TRACK_IN_EXIT_MMAP);
	return emit_bare(KEX_EV_EXIT_MMAP, KEX_P_EXIT_MMAP);
}

/* with the fexit: one trampoline on the function (kextrace.bpf.h) */
KEX_ENTRY_PROGRAMS(exit_mmap, exit_mmap, exit_mmap_entry)

SEC("kretprobe/exit_mmap")
int kretprobe__exit_mmap(struct pt_regs *ctx)
{
	if (!window_closes(&in_exit_mmap, KEX_P_EXIT_MMAP_RET))
		return 0;
	return emit_bare(KEX_EV_EXIT_MMAP_RET, KEX_P_EXIT_MMAP_RET);
}

SEC("fexit/exit_mmap")
int fexit__exit_mmap(void *ctx)
{
	__u32 tid = current_tid();
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_EXIT_MMAP_RET);
	if (!current_traced())
		return 0;
	count_match(cnt, KEX_P_EXIT_MMAP_RET);
	bpf_map_delete_elem(&in_exit_mmap, &tid);
	return emit_bare(KEX_EV_EXIT_MMAP_RET, KEX_P_EXIT_MMAP_RET);
}
