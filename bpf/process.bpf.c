// SPDX-License-Identifier: GPL-2.0
/* process.bpf.c - the traced process tree: syscalls, fork/exit/free, user faults, the rig USDT */
#include "kextrace.bpf.h"
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

/* sys_enter_mmap arguments per tid, for sys_exit_mmap */
struct mmap_call {
	__u64 len;
	__u64 fd;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KEX_MAX_TASKS);
	__type(key, __u32);
	__type(value, struct mmap_call);
} mmap_calls SEC(".maps");

SEC("tp/syscalls/sys_enter_mmap")
int tp__sys_enter_mmap(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = current_tid();
	struct mmap_call call = {};
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_SYS_ENTER_MMAP);
	if (!current_traced())
		return 0;
	count_match(cnt, KEX_P_SYS_ENTER_MMAP);
	call.len = ctx->args[1];
	call.fd = ctx->args[4];
	track_update(&mmap_calls, &tid, &call, KEX_TRACK_MMAP_CALLS);
	return 0;
}

SEC("tp/syscalls/sys_exit_mmap")
int tp__sys_exit_mmap(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	struct mmap_call *call;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_SYS_EXIT_MMAP);
	call = bpf_map_lookup_elem(&mmap_calls, &tid);
	if (!call)
		return 0;
	count_match(cnt, KEX_P_SYS_EXIT_MMAP);
	e = reserve(KEX_EV_SYS_MMAP, KEX_P_SYS_EXIT_MMAP);
	if (e) {
		e->addr = ctx->ret;
		e->arg0 = call->len;
		e->arg1 = call->fd;
		e->ret = ctx->ret;
		submit(e);
	}
	bpf_map_delete_elem(&mmap_calls, &tid);
	return 0;
}

SEC("tp/syscalls/sys_enter_munmap")
int tp__sys_enter_munmap(struct trace_event_raw_sys_enter *ctx)
{
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_SYS_ENTER_MUNMAP);
	if (!current_traced())
		return 0;
	count_match(cnt, KEX_P_SYS_ENTER_MUNMAP);
	e = reserve(KEX_EV_SYS_MUNMAP, KEX_P_SYS_ENTER_MUNMAP);
	if (!e)
		return 0;
	e->addr = ctx->args[0];
	e->arg0 = ctx->args[1];
	submit(e);
	return 0;
}

SEC("tp/syscalls/sys_exit_munmap")
int tp__sys_exit_munmap(struct trace_event_raw_sys_exit *ctx)
{
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_SYS_EXIT_MUNMAP);
	if (!current_traced())
		return 0;
	count_match(cnt, KEX_P_SYS_EXIT_MUNMAP);
	e = reserve(KEX_EV_SYS_MUNMAP_RET, KEX_P_SYS_EXIT_MUNMAP);
	if (!e)
		return 0;
	e->ret = ctx->ret;
	submit(e);
	return 0;
}

/*
 * A traced process's new child (not thread) is traced too, until its
 * leader is freed (tp__sched_process_free). A full map loses the child:
 * counted (KEX_TRACK_TRACED), and its fork record still goes out.
 */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(tp__sched_process_fork, struct task_struct *parent,
	     struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	__u64 start = child->start_time;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_PROC_FORK);
	if (ptgid == ctgid || !bpf_map_lookup_elem(&traced, &ptgid))
		return 0;
	count_match(cnt, KEX_P_PROC_FORK);
	track_update(&traced, &ctgid, &start, KEX_TRACK_TRACED);
	e = reserve(KEX_EV_PROC_FORK, KEX_P_PROC_FORK);
	if (!e)
		return 0;
	e->arg0 = ctgid;
	submit(e);
	return 0;
}

/*
 * A thread group's leader is freed: every thread of it has exited (the
 * leader's task_struct outlives them as a zombie) and it was reaped, so its
 * tgid may be reused from now on. Its "traced" entry goes, unless a new
 * group with that tgid has replaced it already (another start_time): the
 * free runs after an RCU grace period. The exit path's own events (exit_mmap,
 * the files' release, after sched_process_exit) all came before.
 */
SEC("tp_btf/sched_process_free")
int BPF_PROG(tp__sched_process_free, struct task_struct *p)
{
	__u32 tgid = p->tgid;
	__u64 *start;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_PROC_FREE);
	if (p->pid != tgid)
		return 0;
	start = bpf_map_lookup_elem(&traced, &tgid);
	if (!start || (*start && *start != p->start_time))
		return 0;
	count_match(cnt, KEX_P_PROC_FREE);
	bpf_map_delete_elem(&traced, &tgid);
	return 0;
}

/* a traced thread group's leader exits: arg0 = its exit code */
SEC("tp/sched/sched_process_exit")
int tp__sched_process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_PROC_EXIT);
	if ((__u32)id != id >> 32 || !current_traced())
		return 0;
	count_match(cnt, KEX_P_PROC_EXIT);
	e = reserve(KEX_EV_PROC_EXIT, KEX_P_PROC_EXIT);
	if (!e)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	e->arg0 = BPF_CORE_READ(task, exit_code);
	submit(e);
	return 0;
}

SEC("tp/exceptions/page_fault_user")
int tp__page_fault_user(struct kex_tp_x86_fault *ctx)
{
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_USER_FAULT);
	if (!current_traced())
		return 0;
	count_match(cnt, KEX_P_USER_FAULT);
	e = reserve(KEX_EV_USER_FAULT, KEX_P_USER_FAULT);
	if (!e)
		return 0;
	e->addr = ctx->address;
	e->arg0 = ctx->error_code;
	e->arg1 = ctx->ip;
	submit(e);
	return 0;
}

/*
 * The rig's phase markers, provider kex_rig: one program attached to every
 * probe with the phase as cookie. mmap_begin(pages) has one argument, the
 * others (addr, pages): addr goes to addr, pages to arg1.
 */
SEC("usdt")
int usdt__rig_phase(struct pt_regs *ctx)
{
	__u64 phase = bpf_usdt_cookie(ctx);
	long a0 = 0, a1 = 0;
	struct kex_event *e;
	struct kex_counters *cnt;

	cnt = count_hit(KEX_P_USDT);
	if (!current_traced())
		return 0;
	count_match(cnt, KEX_P_USDT);
	if (bpf_usdt_arg_cnt(ctx) > 0)
		bpf_usdt_arg(ctx, 0, &a0);
	if (bpf_usdt_arg_cnt(ctx) > 1)
		bpf_usdt_arg(ctx, 1, &a1);
	e = reserve(KEX_EV_RIG_PHASE, KEX_P_USDT);
	if (!e)
		return 0;
	e->arg0 = phase;
	if (phase == KEX_PHASE_MMAP_BEGIN) {
		e->arg1 = a0;
	} else {
		e->addr = a0;
		e->arg1 = a1;
	}
	submit(e);
	return 0;
}
