/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stack.bpf.h - records that carry the kernel stack they ran under, and the
 * stack sites (--stacks=sites) that let most of them name a stack walked
 * once instead of walking it again. Part of kextrace.bpf.h (included after
 * reserve(), whose record it extends); not a header of its own.
 */
#ifndef KEXTRACE_STACK_BPF_H
#define KEXTRACE_STACK_BPF_H

/*
 * Stack sites (--stacks=sites): a call site's key -> the site number its
 * first record's stack defined (kex_event.stack_site). The key is what
 * fixes the kernel call chain without walking all of it: the probe and
 * record type, the user-space entry (system call number or exception error
 * code, user instruction pointer) the chain started from, and how deep in
 * the task's stack the probe fired (the sum of the frames below it): the
 * program's own frame, or where it runs on a stack of its own (the JIT's
 * private stack, 6.13 on), its context (a kprobe's registers, a
 * trampoline's arguments: on the task's stack), or a classic tracepoint's
 * registers (its context is a per-CPU buffer that points at them). On an
 * IRQ stack the depth is unknown and the record walks its stack as with
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

/*
 * A site's chain, checked before a record reuses it: each return address of
 * the walk and the word of the task's stack above the key's marker (the
 * program's frame or context) it was found in. Same depth, and the same
 * return address in every one of those words, is the same chain (an
 * unwinder reads nothing else), so a sibling call site of one function at
 * the same depth no longer passes for the first one. The first address
 * (a kprobe's or a trampoline's own function) may be in no word: the probe
 * fixes it. A kretprobe's function returns through arch_rethook_trampoline:
 * its return slot holds the trampoline, and the real address is read from
 * the task's rethook list (stack_word).
 */
#define KEX_SITE_WINDOW	1024		/* words above the marker searched (8 KiB) */
#define KEX_SLOT_NONE	0xffff

#define KEX_SITE_ADDRS	32		/* >= KEX_STACK_DEPTH, a power of two (index masks) */
_Static_assert(KEX_STACK_DEPTH <= KEX_SITE_ADDRS, "a walk's addresses fit a site");

/*
 * A check reads only the words its slots are in: runs of slots at most
 * KEX_SEG_GAP words apart are one read (a read costs about as much as
 * copying 13 words more, measured under the instruction clock), at most
 * KEX_SITE_SEGS reads (the last run takes in the rest).
 */
#define KEX_SITE_SEGS	8		/* a power of two (index masks) */
#define KEX_SEG_GAP	16

struct kex_site {
	__u32 site;
	__u32 n;			/* <= KEX_STACK_DEPTH */
	__u32 nseg;			/* <= KEX_SITE_SEGS */
	__u32 end;			/* its last slot + 1 (0: none) */
	__u16 seg_off[KEX_SITE_SEGS];	/* first word of each read */
	__u16 seg_len[KEX_SITE_SEGS];	/* its words */
	__u16 slot[KEX_SITE_ADDRS];
	__u64 ret[KEX_SITE_ADDRS];
};

/*
 * The window's last word (KEX_WORD_ZERO) is beyond every read (a read starts
 * below KEX_SITE_WINDOW and takes at most a window): always 0, the word a
 * kept site's unused slots (KEX_SLOT_NONE) stand for in site_holds_fast().
 */
#define KEX_WORD_ZERO	(2 * KEX_SITE_WINDOW - 1)
_Static_assert((KEX_SLOT_NONE & KEX_WORD_ZERO) == KEX_WORD_ZERO, "no slot reads the zero word");

struct kex_stack_window {
	/* twice the window: a read of up to a window's words at any word of it */
	__u64 words[2 * KEX_SITE_WINDOW];
	__u64 span;			/* a task's stack, its top - t->stack (0: not read yet) */
	__u64 stack[KEX_SITE_ADDRS];	/* the walk whose slots are searched */
	__u8 seen[KEX_SITE_ADDRS];	/* words found holding each of its addresses */
	struct kex_site site;		/* a new site, made from stack */
	struct kex_site check;		/* a kept site, copied to be checked */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KEX_MAX_STACK_SITES);
	__type(key, struct kex_site_key);
	__type(value, struct kex_site);
} stack_sites SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kex_stack_window);
} stack_window SEC(".maps") __weak;

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
 * A kretprobe (kextrace's own on 6.1's unmap_region, or anyone's) replaces
 * its function's return address with arch_rethook_trampoline (kallsyms;
 * 0: absent) and keeps the real one in a rethook node on the task's list,
 * with the slot's address as its frame (x86 arch_rethook_prepare). The
 * unwinder reads the real one back; so do stack sites.
 */
const volatile __u64 rethook_trampoline __weak = 0;

struct rethook_node___kex {
	struct llist_node llist;
	unsigned long ret_addr;
	unsigned long frame;
} __attribute__((preserve_access_index));

struct task_struct___kex_rh {
	struct llist_head rethooks;
} __attribute__((preserve_access_index));

#define KEX_RETHOOK_DEPTH 8	/* kretprobed calls nested on one task's stack */

/* the stack word at addr, with a kretprobe's trampoline read back */
static __always_inline __u64 stack_word(__u64 word, __u64 addr)
{
	struct task_struct___kex_rh *t;
	struct rethook_node___kex *n;
	struct llist_node *p;
	__u32 i;

	if (!rethook_trampoline || word != rethook_trampoline)
		return word;
	t = (void *)bpf_get_current_task();
	if (!bpf_core_field_exists(t->rethooks))
		return 0;
	p = BPF_CORE_READ(t, rethooks.first);
	for (i = 0; i < KEX_RETHOOK_DEPTH && p; i++) {
		n = (void *)p - bpf_core_field_offset(struct rethook_node___kex, llist);
		if (BPF_CORE_READ(n, frame) == addr)
			return BPF_CORE_READ(n, ret_addr);
		p = BPF_CORE_READ(p, next);
	}
	return 0;	/* a stale copy of the trampoline: no return slot */
}

/*
 * A record with room for a kernel stack. The reserved size must be a
 * constant, so it is always KEX_EVENT_SIZE(KEX_STACK_DEPTH); stack_len says
 * how much of the tail is used.
 */
static __always_inline struct kex_event_stack *reserve_stack_room(__u32 type,
							      __u32 probe)
{
	return reserve_room(type, probe, sizeof(struct kex_event_stack));
}

/*
 * The current call site's key (struct kex_site_key); false if it has none.
 * tp: ctx is a classic tracepoint's, whose first word perf_trace_run_bpf_submit
 * set to the registers the tracepoint fired with: their sp is the frame of
 * the tracepoint's perf_trace_* handler, on the task's stack.
 *
 * Addresses as numbers (root may read pointers) with no helper's read: the
 * difference of two pointers is a number to a privileged program's
 * verifier, and bpf_get_current_task() gives the task's address as one, so
 * an address is the task's plus its distance from the task (barrier_var:
 * no pointer is added to a number). The stack's span (its top - t->stack:
 * THREAD_SIZE less the arch's padding, the same for every task) is read
 * once a CPU (w->span). The user registers' fields are numbers: plain
 * loads through the BTF pointer.
 */
static __always_inline bool site_key(void *ctx, bool tp, struct kex_stack_window *w,
				     struct kex_site_key *k, __u32 type, __u32 probe,
				     __u64 *marker, __u64 *top)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(t);
	__u64 task = bpf_get_current_task(), sp, base;
	void *tp_regs = NULL;
	long off;

	__builtin_memset(k, 0, sizeof(*k));
	/* the stack's top: the user registers are its last bytes (x86-64) */
	off = (long)regs - (long)t;
	barrier_var(off);
	*top = task + off + sizeof(struct pt_regs);
	if (!w->span) {
		if (bpf_core_read(&base, sizeof(base), &t->stack) || base >= *top)
			return false;
		w->span = *top - base;
	}
	base = *top - w->span;
	/* exactly the task's stack: a private BPF stack may lie near it */
	off = (long)k - (long)t;
	barrier_var(off);
	sp = task + off;
	if (sp < base || sp >= *top) {
		off = (long)ctx - (long)t;
		barrier_var(off);
		sp = task + off;
	}
	if ((sp < base || sp >= *top) && tp) {
		bpf_probe_read_kernel(&tp_regs, sizeof(tp_regs), ctx);
		sp = BPF_CORE_READ((struct pt_regs *)tp_regs, sp);
	}
	if (sp < base || sp >= *top)
		return false;
	k->depth = sp - base;
	*marker = sp;
	k->user_ip = regs->ip;
	k->entry = regs->orig_ax;
	k->probe = probe;
	k->type = type;
	return true;
}

/* this CPU's scratch window (struct kex_stack_window) */
static __always_inline struct kex_stack_window *stack_window_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&stack_window, &zero);
}

/* a bpf_loop's context over the window's words above marker */
struct window_loop {
	struct kex_stack_window *w;	/* the caller's window: no lookup an iteration */
	__u64 marker;
	__u32 nwords;
	__u32 n;	/* find_slot: the walk's addresses */
	__u32 held;	/* check_slot: 0 once a slot differs */
};

/* the words of the task's stack from marker up to top, at most a window */
static __always_inline struct kex_stack_window *
read_window(__u64 marker, __u64 top, __u32 *nwords)
{
	struct kex_stack_window *w = stack_window_get();
	__u64 len = top - marker;

	if (!w || top <= marker)
		return NULL;
	if (len > KEX_SITE_WINDOW * sizeof(__u64))
		len = KEX_SITE_WINDOW * sizeof(__u64);
	if (bpf_probe_read_kernel(w->words, len, (void *)marker))
		return NULL;
	*nwords = len / sizeof(__u64);
	return w;
}

#include "site_check.bpf.h"

/* bpf_loop body: which addresses of the walk does word k hold? (1: stop) */
static long find_slot(__u32 k, void *data)
{
	struct window_loop *c = data;
	struct kex_stack_window *w = c->w;
	__u64 word;
	__u32 i;

	if (!w || k >= c->nwords)
		return 1;
	/* nwords <= KEX_SITE_WINDOW: the mask bounds the index for the verifier */
	word = stack_word(w->words[k & (KEX_SITE_WINDOW - 1)],
			  c->marker + k * sizeof(__u64));
	for (i = 0; i < KEX_SITE_ADDRS && i < c->n; i++) {
		if (word == w->stack[i]) {
			w->site.slot[i] = k;
			w->seen[i]++;
		}
	}
	return 0;
}

struct site_order {
	__u32 last;
	__u32 n;
	bool at_entry;
	bool kept;
};

/* bpf_loop body: address i of a new site: its one slot, above the last (1: stop) */
static long order_slot(__u32 i, void *data)
{
	struct kex_stack_window *w = stack_window_get();
	struct site_order *c = data;
	__u32 k = i & (KEX_SITE_ADDRS - 1);

	if (!w || i >= c->n)
		return 1;
	w->site.ret[k] = w->stack[k];
	if (i == 0 && (c->at_entry || w->seen[0] == 0)) {
		w->site.slot[0] = KEX_SLOT_NONE;
		return 0;
	}
	if (w->seen[k] != 1 || (i > 0 && w->site.slot[k] <= c->last)) {
		c->kept = false;
		return 1;
	}
	c->last = w->site.slot[k];
	return 0;
}

/* bpf_loop body: slot i of a new site joins its last read or starts one (1: stop) */
static long seg_slot(__u32 i, void *data)
{
	struct kex_stack_window *w = stack_window_get();
	__u32 slot, k, *end = data;

	if (!w || i >= w->site.n)
		return 1;
	slot = w->site.slot[i & (KEX_SITE_ADDRS - 1)];
	if (slot == KEX_SLOT_NONE)
		return 0;
	k = w->site.nseg;
	if (k > 0 && (slot <= *end + KEX_SEG_GAP || k == KEX_SITE_SEGS)) {
		k = (k - 1) & (KEX_SITE_SEGS - 1);
		w->site.seg_len[k] = slot + 1 - w->site.seg_off[k];
	} else if (k < KEX_SITE_SEGS) {
		w->site.seg_off[k] = slot;
		w->site.seg_len[k] = 1;
		w->site.nseg = k + 1;
	}
	*end = slot;
	return 0;
}

/*
 * The site of w->stack (n addresses): each found in exactly one word above
 * the marker, in order, so that the word is its return slot and not a
 * stale copy in some frame's uninitialised locals (seen on 7.2: a copy of
 * free_pages_and_swap_cache's other call site in folios_put_refs's frame).
 * A stack that starts at a probed function's entry (at_entry: a kprobe's,
 * a trampoline's) starts with an address the probe fixes, in no return
 * slot or in several (a kprobe's int3 frame): not looked for.
 * Otherwise the site is not kept and its records walk.
 */
static __always_inline bool make_site(struct kex_stack_window *w, __u64 marker,
				      __u32 nwords, __u32 n, bool at_entry)
{
	struct window_loop c = { .w = w, .marker = marker, .n = n,
				 .nwords = nwords };
	struct site_order o = { .n = n, .at_entry = at_entry, .kept = true };
	__u32 end = 0;

	if (n == 0 || n > KEX_STACK_DEPTH)
		return false;
	__builtin_memset(w->seen, 0, sizeof(w->seen));
	/* slots from n on: unused, for site_holds_fast() */
	__builtin_memset(w->site.slot, 0xff, sizeof(w->site.slot));
	__builtin_memset(w->site.ret, 0, sizeof(w->site.ret));
	bpf_loop(KEX_SITE_WINDOW, find_slot, &c, 0);
	w->site.n = n;
	bpf_loop(KEX_STACK_DEPTH, order_slot, &o, 0);
	if (!o.kept)
		return false;
	w->site.nseg = 0;
	bpf_loop(KEX_STACK_DEPTH, seg_slot, &end, 0);
	w->site.end = w->site.nseg ? end + 1 : 0;
	return true;
}

/*
 * ... with the current kernel stack in it, skip frames skipped (the low
 * byte: bpf_get_stack's); KEX_STACK_AT_ENTRY: the program is a kprobe's or
 * a trampoline's at a function's entry (make_site); KEX_STACK_TP: ctx is a
 * classic tracepoint's (site_key); KEX_STACK_ALL_ONLY: a record that takes
 * no reference, whose stack another record of its life repeats: walked at
 * --stacks all only, none at sites.
 */
#define KEX_STACK_AT_ENTRY (1ULL << 32)
#define KEX_STACK_TP (1ULL << 33)
#define KEX_STACK_ALL_ONLY (1ULL << 34)

static __always_inline struct kex_event *
reserve_stack_skip(void *ctx, __u32 type, __u32 probe, __u64 skip)
{
	struct kex_stack_window *w = NULL;
	struct kex_site_key key;
	struct kex_event_stack *r;
	struct kex_site *site;
	struct kex_event *e;
	__u64 marker = 0, top = 0;
	__u32 *seq, n_site, nwords = 0, zero = 0, check = 0;
	bool held;
	long n;

	if (!capture_stacks || (stack_by_site && (skip & KEX_STACK_ALL_ONLY)))
		return reserve(type, probe);
	if (stack_by_site)
		w = stack_window_get();
	if (w && !site_key(ctx, skip & KEX_STACK_TP, w, &key, type, probe,
			   &marker, &top))
		w = NULL;
	if (w) {
		site = bpf_map_lookup_elem(&stack_sites, &key);
		/* site 0: a chain that cannot be checked here; walk, as all */
		if (!site || !site->site ||
		    !read_site_words(w, site, marker, top, &nwords))
			w = NULL;
		held = w && site_holds_fast(site, w, nwords);
		if (w && !held) {
			resolve_rethooks(w, marker, nwords);
			held = site_holds_fast(site, w, nwords) ||
			       site_holds(site, w, marker, nwords);
		}
		if (held) {
			n_site = site->site;
			if (stack_site_check) {
				check = n_site | KEX_SITE_CHECK;
			} else {
				e = reserve(type, probe);
				if (e)
					e->stack_site = n_site;
				return e;
			}
		}
		/* a new site's walk is searched for in the whole window */
		if (!check && (!site || site->site))
			w = read_window(marker, top, &nwords);
	}
	r = reserve_stack_room(type, probe);
	if (!r)
		return NULL;
	n = bpf_get_stack(ctx, r->stack, sizeof(r->stack),
			  skip & BPF_F_SKIP_FIELD_MASK);
	n = n > 0 ? n / sizeof(__u64) : 0;
	r->ev.stack_len = n;
	if (check) {
		r->ev.stack_site = check;
		return &r->ev;
	}
	seq = w ? bpf_map_lookup_elem(&stack_site_seq, &zero) : NULL;
	if (!seq)
		return &r->ev;
	__builtin_memcpy(w->stack, r->stack, sizeof(r->stack));
	/* a chain whose slots are not unique is remembered as site 0 */
	n_site = 0;
	if (make_site(w, marker, nwords, n, skip & KEX_STACK_AT_ENTRY))
		n_site = (++*seq * stack_site_cpus + r->ev.cpu + 1) & ~KEX_SITE_CHECK;
	w->site.site = n_site;
	if (!track_update(&stack_sites, &key, &w->site, KEX_TRACK_STACK_SITES))
		r->ev.stack_site = n_site;
	return &r->ev;
}

/* ... for a classic tracepoint's program */
static __always_inline struct kex_event *reserve_stack_tp(void *ctx, __u32 type,
							  __u32 probe)
{
	return reserve_stack_skip(ctx, type, probe, KEX_STACK_TP);
}

/*
 * A tracing program's stack starts in the program itself, then the BPF
 * trampoline that called it, then the traced function (its fentry site):
 * skipped, an fentry's stack starts where the kprobe's would, at the
 * function (tests/guest/tracer.sh checks it on every guest kernel).
 */
#define KEX_TRAMP_STACK_SKIP 2

/* reserve_stack_skip()'s skip for an entry program (entry_arg) */
static __always_inline __u64 stack_skip(bool tramp)
{
	return KEX_STACK_AT_ENTRY | (tramp ? KEX_TRAMP_STACK_SKIP : 0);
}

#endif /* KEXTRACE_STACK_BPF_H */
