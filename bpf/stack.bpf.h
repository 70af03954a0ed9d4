/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stack.bpf.h - records that carry the kernel stack they ran under, and the
 * stack sites (--stacks=sites) that let most of them name a stack walked
 * once instead of walking it again. Part of kextrace.bpf.h (included after
 * reserve(), whose record it extends); not a header of its own.
 */
#ifndef KEXTRACE_STACK_BPF_H
#define KEXTRACE_STACK_BPF_H

struct kex_event_stack {
	struct kex_event ev;
	__u64 stack[KEX_STACK_DEPTH];
};

/*
 * Stack sites (--stacks=sites): a call site's key -> the site number its
 * first record's stack defined (kex_event.stack_site). The key is what
 * fixes the kernel call chain without walking all of it: the probe and
 * record type, the user-space entry (system call number or exception error
 * code, user instruction pointer) the chain started from, and how deep in
 * the task's stack the probe fired (the sum of the frames below it): the
 * program's own frame, or where it runs on a stack of its own (the JIT's
 * private stack, 6.13 on), its context (a kprobe's registers, a
 * trampoline's arguments: on the task's stack). A classic tracepoint's
 * context is a per-CPU buffer: under a private stack, and on an IRQ stack,
 * the depth is unknown and the record walks its stack as with
 * --stacks=all (a shorter walk as the key was measured: it costs as much
 * as the whole walk). A site forgotten (LRU) is walked again under a new
 * number.
 */
struct kex_site_key {
	__u64 user_ip;
	__u64 entry;
	__u32 depth;
	__u32 probe;
	__u32 type;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KEX_MAX_STACK_SITES);
	__type(key, struct kex_site_key);
	__type(value, __u32);
} stack_sites SEC(".maps") __weak;

/*
 * Site numbers: each CPU gives out seq * stack_site_cpus + cpu + 1 from its
 * own counter (no atomics: the programs do not migrate), so no two CPUs
 * give out the same number; 2^32 / CPUs sites before one comes round again.
 */
const volatile __u32 stack_site_cpus __weak = 1;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} stack_site_seq SEC(".maps") __weak;

/*
 * A record with room for a kernel stack. The reserved size must be a
 * constant, so it is always KEX_EVENT_SIZE(KEX_STACK_DEPTH); stack_len says
 * how much of the tail is used.
 */
static __always_inline struct kex_event_stack *reserve_stack_room(__u32 type,
							      __u32 probe)
{
	struct kex_event_stack *r;

	count_produced(type);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count_loss(type);
		return NULL;
	}
	fill(&r->ev, type, probe);
	return r;
}

/* The current call site's key (struct kex_site_key); false if it has none. */
static __always_inline bool site_key(void *ctx, struct kex_site_key *k,
				     __u32 type, __u32 probe)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct pt_regs *regs;
	void *here = k, *c = ctx;
	__u64 sp = 0, base;

	__builtin_memset(k, 0, sizeof(*k));
	/* addresses as numbers (root may read pointers) */
	bpf_probe_read_kernel(&sp, sizeof(sp), &here);
	base = (__u64)BPF_CORE_READ(t, stack);
	if (sp - base >= KEX_MAX_THREAD_SIZE)
		bpf_probe_read_kernel(&sp, sizeof(sp), &c);
	if (sp - base >= KEX_MAX_THREAD_SIZE)
		return false;
	k->depth = sp - base;
	regs = (struct pt_regs *)bpf_task_pt_regs(t);
	k->user_ip = BPF_CORE_READ(regs, ip);
	k->entry = BPF_CORE_READ(regs, orig_ax);
	k->probe = probe;
	k->type = type;
	return true;
}

/* ... with the current kernel stack in it, skip frames skipped */
static __always_inline struct kex_event *
reserve_stack_skip(void *ctx, __u32 type, __u32 probe, __u64 skip)
{
	struct kex_site_key key;
	struct kex_event_stack *r;
	struct kex_event *e;
	bool keyed = false;
	__u32 *site, *seq, n_site, zero = 0;
	long n;

	if (!capture_stacks)
		return reserve(type, probe);
	if (stack_by_site) {
		keyed = site_key(ctx, &key, type, probe);
		site = keyed ? bpf_map_lookup_elem(&stack_sites, &key) : NULL;
		if (site) {
			n_site = *site;
			e = reserve(type, probe);
			if (e)
				e->stack_site = n_site;
			return e;
		}
	}
	r = reserve_stack_room(type, probe);
	if (!r)
		return NULL;
	n = bpf_get_stack(ctx, r->stack, sizeof(r->stack),
			  skip & BPF_F_SKIP_FIELD_MASK);
	r->ev.stack_len = n > 0 ? n / sizeof(__u64) : 0;
	seq = keyed && n > 0 ? bpf_map_lookup_elem(&stack_site_seq, &zero) : NULL;
	if (seq) {
		n_site = ++*seq * stack_site_cpus + r->ev.cpu + 1;
		if (n_site && !track_update(&stack_sites, &key, &n_site,
					    KEX_TRACK_STACK_SITES))
			r->ev.stack_site = n_site;
	}
	return &r->ev;
}

static __always_inline struct kex_event *reserve_stack(void *ctx, __u32 type,
						       __u32 probe)
{
	return reserve_stack_skip(ctx, type, probe, 0);
}

/*
 * A tracing program's stack starts in the program itself, then the BPF
 * trampoline that called it, then the traced function (its fentry site):
 * skipped, an fentry's stack starts where the kprobe's would, at the
 * function (tests/guest/tracer.sh checks it on every guest kernel).
 */
#define KEX_TRAMP_STACK_SKIP 2

/* bpf_get_stack's skip for an entry program (entry_arg) */
static __always_inline __u64 stack_skip(bool tramp)
{
	return tramp ? KEX_TRAMP_STACK_SKIP : 0;
}

#endif /* KEXTRACE_STACK_BPF_H */
