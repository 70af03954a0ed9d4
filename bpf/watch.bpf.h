/* SPDX-License-Identifier: GPL-2.0 */
/*
 * watch.bpf.h - kextrace --watch: a tracked page's records are kept in BPF,
 * in its life (a slot of map "lives", named in its "pfns" entry), and sent
 * as one KEX_EV_LIFE record when the page is freed (kmem:mm_page_free), its
 * slot given back; user space reads the lives of the pages not freed from
 * the map once the trace ended. The report is the same
 * as from records sent one by one: the same records reach the correlator,
 * which orders them by time.
 *
 * Under --watch every record is built in a per-CPU scratch record (reserve(),
 * reserve_stack_room()) and submit() copies it into its life or to the ring
 * buffer: the one choice the verifier can follow (a ring reservation must be
 * submitted, and its pointer cannot be told from a map value's at run time).
 * Part of kextrace.bpf.h (included before reserve()); not a header of its own.
 */
#ifndef KEXTRACE_WATCH_BPF_H
#define KEXTRACE_WATCH_BPF_H

/*
 * --watch: the lives, one slot each (head.type KEX_EV_LIFE while a page holds
 * it, head.pfn its page, head.arg0 the records it kept or tried to; the
 * first KEX_LIFE_STEPS are in steps). A tracked page finds its slot in its
 * "pfns" entry (kex_pfn_info.life). Sized by the loader: 1 without --watch,
 * else --max-pages up to KEX_WATCH_LIVES_MAX, 1,360 bytes a life. An array,
 * not a hash by pfn: a hash update copies its whole value, and the kernel's
 * memcpy (rep movsb) costs a guest instruction a byte under emulation.
 * User space maps it once the trace ended and reads the lives still held:
 * the pages not freed, and a life whose page's entry was made anew (its
 * free unseen), which keeps its slot until then.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);	/* read where it is at the end */
	__type(key, __u32);
	__type(value, struct kex_life);
} lives SEC(".maps") __weak;

/*
 * --watch: the slots given back at a page's free, taken again first; slots
 * never used are handed out by "lives_used" (no fill at load). As big as
 * "lives".
 */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 1);
	__type(value, __u32);
} free_lives SEC(".maps") __weak;

/* --watch: the slots of "lives" handed out so far (user space reads them) */
__u64 lives_used __weak = 0;

/*
 * --watch: the records being built on this CPU, one per nesting level (a
 * program interrupted by another on the same CPU, e.g. an fexit by an
 * interrupt's page free). Levels are taken and given back in LIFO order.
 */
#define KEX_SCRATCH_DEPTH	4

struct kex_scratch {
	__u32 depth;
	__u32 pad;
	struct kex_event_stack rec[KEX_SCRATCH_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kex_scratch);
} scratch SEC(".maps") __weak;

/* --watch: this CPU's next scratch record, NULL when all levels are taken */
static __always_inline struct kex_event_stack *scratch_get(void)
{
	__u32 zero = 0, d;
	struct kex_scratch *s = bpf_map_lookup_elem(&scratch, &zero);

	if (!s)
		return NULL;
	d = s->depth;
	if (d >= KEX_SCRATCH_DEPTH)
		return NULL;
	s->depth = d + 1;
	return &s->rec[d];
}

static __always_inline void scratch_put(void)
{
	__u32 zero = 0;
	struct kex_scratch *s = bpf_map_lookup_elem(&scratch, &zero);

	if (s && s->depth)
		s->depth--;
}

/*
 * The records a page life keeps (--watch): a tracked page's own, by pfn, up
 * to its free (kmem:mm_page_free; a batched free's record comes after it).
 */
static __always_inline bool life_record(const struct kex_event *e)
{
	switch (e->type) {
	case KEX_EV_KEX_PAGE_ALLOC:
	case KEX_EV_KEX_PAGE_INSERT:
	case KEX_EV_KEX_PAGE_FREE:
	case KEX_EV_PAGE_ALLOC:
	case KEX_EV_PAGE_FREE:
	case KEX_EV_INSERT:
	case KEX_EV_INSERT_RET:
	case KEX_EV_RMAP_ADD:
	case KEX_EV_DO_SET_PTE:
	case KEX_EV_DO_SET_PTE_RET:
	case KEX_EV_RMAP_REMOVE:
	case KEX_EV_SET_DIRTY:
	case KEX_EV_PTE_LOOKUP:
	case KEX_EV_KEX_FAULT:
	case KEX_EV_FOLLOW:
	case KEX_EV_DRIVER_PAGE:
		return e->pfn != KEX_NO_PFN;
	default:
		return false;
	}
}

/*
 * Under --watch a record goes to the ring buffer reserved at a constant size
 * (as the default mode reserves it: readers trim a sample to its record) and
 * copied by the program, 8 bytes a move: bpf_ringbuf_output's memcpy is a
 * rep movsb on ERMS/FSRM CPUs, which an emulated guest counts a byte at a
 * time.
 */

/* A copy of @e (a scratch record) to the ring buffer, stack included. */
static __always_inline void output(const struct kex_event *e)
{
	const struct kex_event_stack *r = (const void *)e;
	struct kex_event_stack *o;
	struct kex_event *o1;
	__u64 flags = ring_flags();

	if (!e->stack_len) {
		o1 = bpf_ringbuf_reserve(&events, sizeof(*o1), 0);
		if (!o1) {
			count_loss(e->type);
			return;
		}
		__builtin_memcpy(o1, e, sizeof(*o1));
		bpf_ringbuf_submit(o1, flags);
	} else {
		o = bpf_ringbuf_reserve(&events, sizeof(*o), 0);
		if (!o) {
			count_loss(e->type);
			return;
		}
		/* the whole stack room: past stack_len, older addresses it trims */
		__builtin_memcpy(o, r, sizeof(*o));
		bpf_ringbuf_submit(o, flags);
	}
	count_emitted(e->probe);
}

/* A life's slot in "lives" (slot: kex_pfn_info.life, 0: none) */
static __always_inline struct kex_life *life_at(__u64 slot)
{
	__u32 key = slot - 1;

	return slot ? bpf_map_lookup_elem(&lives, &key) : NULL;
}

/*
 * A slot for @fi's page, set up as its empty life (only the head's count,
 * pfn and mark: the steps are sent up to the count), in kex_pfn_info.life
 * unless another CPU gave the page one first: the life the page has then,
 * 0 when none is left (its records go alone).
 */
static __always_inline __u64 life_claim(struct kex_pfn_info *fi, __u64 pfn)
{
	struct kex_life *l;
	__u64 n, won;
	__u32 key;

	if (bpf_map_pop_elem(&free_lives, &key)) {
		if (lives_used >= lives_max)
			return 0;
		n = __sync_fetch_and_add(&lives_used, 1);
		if (n >= lives_max)
			return 0;
		key = n;
	}
	l = bpf_map_lookup_elem(&lives, &key);
	if (!l)
		return 0;
	l->head.arg0 = 0;
	l->head.pfn = pfn;
	l->head.type = KEX_EV_LIFE;
	won = __sync_val_compare_and_swap(&fi->life, 0, (__u64)key + 1);
	if (!won)
		return (__u64)key + 1;
	l->head.type = 0;
	bpf_map_push_elem(&free_lives, &key, 0);
	return won;
}

/*
 * The page's life ended (sent, or lost and counted): its slot is free again.
 * The queue holds as many slots as there are, so the push finds room.
 */
static __always_inline void life_release(struct kex_pfn_info *fi,
					 struct kex_life *l, __u64 slot)
{
	__u32 key = slot - 1;

	fi->life = 0;
	l->head.type = 0;
	bpf_map_push_elem(&free_lives, &key, 0);
}

/*
 * A life goes out as one record (its first KEX_LIFE_STEPS records; ret
 * counts all it kept or tried to), reserved at KEX_LIFE_SIZE(KEX_LIFE_STEPS);
 * when the ring buffer has no room, each of its records counts as lost
 * under its own type, and the life under its.
 */
static __always_inline void output_life(const struct kex_life *l, __u64 pfn)
{
	__u64 flags = ring_flags(), kept = l->head.arg0, n = kept;
	struct kex_life *o;
	__u32 i;

	if (n > KEX_LIFE_STEPS)
		n = KEX_LIFE_STEPS;
	count_produced(KEX_EV_LIFE);
	o = bpf_ringbuf_reserve(&events, sizeof(*o), 0);
	if (!o) {
		count_loss(KEX_EV_LIFE);
		for (i = 0; i < KEX_LIFE_STEPS; i++)
			if (i < n)
				count_loss(l->steps[i].type);
		return;
	}
	__builtin_memset(&o->head, 0, sizeof(o->head));
	o->head.type = KEX_EV_LIFE;
	o->head.ts = bpf_ktime_get_ns();
	o->head.pfn = pfn;
	o->head.ret = kept;
	o->head.arg0 = n;
	o->head.arg1 = KEX_LIFE_FREED;
	for (i = 0; i < KEX_LIFE_STEPS; i++) {
		if (i >= n)
			break;
		__builtin_memcpy(&o->steps[i], &l->steps[i], sizeof(o->steps[i]));
	}
	bpf_ringbuf_submit(o, flags);
}

/*
 * --watch: @e joins its page's life (made at its first record); the page's
 * free sends the life. False when @e did not join and goes alone: a record
 * with a stack (a site's first: later records name the site), a page not
 * in "pfns" (not tracked), or no room in "lives" or in the life. Nothing is
 * lost either way.
 * @fi: @e's page's "pfns" entry when the caller has it, else NULL (looked
 * up here: a hash lookup a record, on the hot path).
 */
static __always_inline bool life_add(const struct kex_event *e,
				     struct kex_pfn_info *fi)
{
	__u64 pfn = e->pfn, n, i, slot;
	bool keep = !e->stack_len;
	struct kex_life *l;

	if (!fi)
		fi = bpf_map_lookup_elem(&pfns, &pfn);
	if (!fi)
		return false;
	slot = fi->life;
	if (!slot && keep)
		slot = life_claim(fi, pfn);
	l = life_at(slot);
	if (!l)
		return false;
	if (keep) {
		n = __sync_fetch_and_add(&l->head.arg0, 1);
		keep = n < KEX_LIFE_STEPS;
		if (keep) {
			/* the mask the verifier needs, hidden from clang (a no-op to it) */
			i = n;
			asm volatile("" : "+r"(i));
			__builtin_memcpy(&l->steps[i & (KEX_LIFE_STEPS - 1)], e, sizeof(*e));
			count_emitted(e->probe);
		}
	}
	if (e->type == KEX_EV_PAGE_FREE) {
		output_life(l, pfn);
		life_release(fi, l, slot);
	}
	return keep;
}

#endif /* KEXTRACE_WATCH_BPF_H */
