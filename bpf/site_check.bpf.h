/* SPDX-License-Identifier: GPL-2.0 */
/*
 * site_check.bpf.h - does the task's stack still hold a kept stack site's
 * chain (--stacks=sites)? The words its slots are in, read; an unrolled
 * check in place; a kretprobe's trampoline resolved; the bpf_loop check
 * through stack_word() that decides the rest. Part of stack.bpf.h
 * (included after its window and site types); not a header of its own.
 */
#ifndef KEXTRACE_SITE_CHECK_BPF_H
#define KEXTRACE_SITE_CHECK_BPF_H

/*
 * The words of the task's stack that site s's slots are in (its runs,
 * struct kex_site), at their places in the window; a run past the stack's
 * top is cut there (its slots then fail the check).
 */
static __always_inline bool
read_site_words(struct kex_stack_window *w, const struct kex_site *s,
		__u64 marker, __u64 top, __u32 *nwords)
{
	__u64 off, len, nw;	/* 64-bit: no zero-extending copy loses a bound */
	__u32 i;

	if (top <= marker)
		return false;
	nw = (top - marker) / sizeof(__u64) > KEX_SITE_WINDOW ?
		KEX_SITE_WINDOW : (top - marker) / sizeof(__u64);
	for (i = 0; i < KEX_SITE_SEGS; i++) {
		if (i >= s->nseg)
			break;
		off = s->seg_off[i];
		len = s->seg_len[i];
		if (off >= nw)
			break;
		if (len > nw - off)
			len = nw - off;
		/* both bounded for the verifier: off + len <= 2 windows */
		off &= KEX_SITE_WINDOW - 1;
		if (len > KEX_SITE_WINDOW)
			len = KEX_SITE_WINDOW;
		if (bpf_probe_read_kernel(&w->words[off], len * sizeof(__u64),
					  (void *)(marker + off * sizeof(__u64))))
			return false;
	}
	*nwords = nw;
	return true;
}

/*
 * bpf_loop body: does slot i of the site being checked (w->check) still
 * hold its return address? (1: stop.) A loop body is verified once, where
 * an unrolled check of 24 slots, each maybe through the rethook list, cost
 * the verifier ~33,000 instructions in every program with a stack.
 */
static long check_slot(__u32 i, void *data)
{
	struct window_loop *c = data;
	struct kex_stack_window *w = c->w;
	__u64 word;
	__u32 slot;

	if (!w || i >= w->check.n)
		return 1;
	slot = w->check.slot[i & (KEX_SITE_ADDRS - 1)];
	if (slot == KEX_SLOT_NONE)
		return 0;
	word = slot < c->nwords ?
		stack_word(w->words[slot & (KEX_SITE_WINDOW - 1)],
			   c->marker + slot * sizeof(__u64)) : 0;
	if (slot >= c->nwords || word != w->check.ret[i & (KEX_SITE_ADDRS - 1)]) {
		c->held = 0;
		return 1;
	}
	return 0;
}

/*
 * site_holds() without the rethook walk and in place, unrolled (a few
 * instructions a slot, no branch): every slot holds its own return address
 * itself. A kept site's return addresses are none of them
 * rethook_trampoline (make_site finds each through stack_word(), which
 * never gives the trampoline), so a word that matches is no trampoline
 * and site_holds() would read it as it is: this passing, that passes. A
 * slot beyond the words read (end), a word that differs (a kretprobe's
 * trampoline among them) or a different chain: site_holds() decides.
 * Unused slots (KEX_SLOT_NONE, and all from n on) read KEX_WORD_ZERO
 * against a return address of 0.
 */
static __always_inline bool site_holds_fast(const struct kex_site *s,
					    const struct kex_stack_window *w,
					    __u32 nwords)
{
	__u64 diff = 0;
	__u32 i;

	if (s->end > nwords)
		return false;
	if (s->slot[0] != KEX_SLOT_NONE)
		diff = w->words[s->slot[0] & KEX_WORD_ZERO] ^ s->ret[0];
#pragma unroll
	for (i = 1; i < KEX_STACK_DEPTH; i++)
		diff |= w->words[s->slot[i] & KEX_WORD_ZERO] ^ s->ret[i];
	return !diff;
}

/* a bpf_loop's context over the task's rethook list (resolve_rethook) */
struct rethook_loop {
	struct kex_stack_window *w;
	struct llist_node *p;
	__u64 marker;
	__u32 nwords;
};

/*
 * bpf_loop body: the next rethook node's frame, if it is a word of the
 * window still holding the trampoline, gets its real return address, as
 * stack_word() would read it (the first node of that frame wins: a word
 * resolved is no trampoline, or 0 for one that saved the trampoline; a
 * word no node names keeps it, which no site's address is). 1: stop.
 */
static long resolve_rethook(__u32 i, void *data)
{
	struct rethook_loop *c = data;
	struct llist_node *p = c->p;	/* not in the CO-RE chain */
	struct rethook_node___kex *n;
	__u64 frame, k, ret;

	if (!p || !c->w)
		return 1;
	n = (void *)p - bpf_core_field_offset(struct rethook_node___kex, llist);
	frame = BPF_CORE_READ(n, frame);
	k = (frame - c->marker) / sizeof(__u64);
	if (frame >= c->marker && !((frame - c->marker) % sizeof(__u64)) &&
	    k < c->nwords &&
	    c->w->words[k & (KEX_SITE_WINDOW - 1)] == rethook_trampoline) {
		/* a second kretprobe of one call saved the first's trampoline */
		ret = BPF_CORE_READ(n, ret_addr);
		c->w->words[k & (KEX_SITE_WINDOW - 1)] =
			ret == rethook_trampoline ? 0 : ret;
	}
	c->p = BPF_CORE_READ(p, next);
	return 0;
}

/*
 * The window's words that hold a kretprobe's trampoline, read back as
 * stack_word() reads them (a kretprobed function on the chain: 6.1's
 * unmap_region under the unmap path's frees, insert_page under its own
 * kprobe): site_holds_fast() then decides as site_holds() would.
 */
static __always_inline void resolve_rethooks(struct kex_stack_window *w,
					     __u64 marker, __u32 nwords)
{
	struct task_struct___kex_rh *t = (void *)bpf_get_current_task();
	struct rethook_loop c = { .w = w, .marker = marker, .nwords = nwords };

	if (!rethook_trampoline || !bpf_core_field_exists(t->rethooks))
		return;
	c.p = BPF_CORE_READ(t, rethooks.first);
	bpf_loop(KEX_RETHOOK_DEPTH, resolve_rethook, &c, 0);
}

/* does the stack above marker still hold site s's chain? */
static __always_inline bool site_holds(const struct kex_site *s,
				       struct kex_stack_window *w,
				       __u64 marker, __u32 nwords)
{
	struct window_loop c = { .w = w, .marker = marker, .nwords = nwords,
				 .held = 1 };

	if (s->n > KEX_STACK_DEPTH)
		return false;
	w->check = *s;
	bpf_loop(KEX_STACK_DEPTH, check_slot, &c, 0);
	return c.held;
}

#endif /* KEXTRACE_SITE_CHECK_BPF_H */
