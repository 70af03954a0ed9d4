/* SPDX-License-Identifier: GPL-2.0 */
/*
 * watch.bpf.h - kextrace --watch: a tracked page's records are kept in BPF,
 * in its life (map "lives", by pfn), and sent as one KEX_EV_LIFE record when
 * the page is freed (kmem:mm_page_free); user space reads the lives of the
 * pages not freed from the map once the trace ended. The report is the same
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
 * --watch: pfn -> the page's records so far (head.arg0 counts every one,
 * the first KEX_LIFE_STEPS are kept). Sized by the loader: 1 without
 * --watch, else --max-pages up to KEX_WATCH_LIVES_MAX; preallocated, 1,360
 * bytes a life (an allocating update cost 40 us a page under emulation).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, struct kex_life);
} lives SEC(".maps") __weak;

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

static const struct kex_life empty_life;

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

/* A copy of @e (a scratch record) to the ring buffer, stack included. */
static __always_inline void output(const struct kex_event *e)
{
	__u32 n = e->stack_len;

	if (n > KEX_STACK_DEPTH)
		n = KEX_STACK_DEPTH;
	if (bpf_ringbuf_output(&events, (void *)e, KEX_EVENT_SIZE(n), ring_flags()))
		count_loss(e->type);
	else
		count_emitted(e->probe);
}

/*
 * A life goes out as one record (its first KEX_LIFE_STEPS records; head.arg0
 * counts all it kept or tried to); when the ring buffer has no room, each of
 * its records counts as lost under its own type, and the life under its.
 */
static __always_inline void output_life(struct kex_life *l, __u64 pfn)
{
	__u64 flags, size, n = l->head.arg0;
	__u32 i;

	if (n > KEX_LIFE_STEPS)
		n = KEX_LIFE_STEPS;
	l->head.type = KEX_EV_LIFE;
	l->head.ts = bpf_ktime_get_ns();
	l->head.pfn = pfn;
	l->head.ret = l->head.arg0;
	l->head.arg0 = n;
	l->head.arg1 = KEX_LIFE_FREED;
	count_produced(KEX_EV_LIFE);
	flags = ring_flags();
	/* bounded again right before the call: the verifier lost n's bound in a spill */
	asm volatile("" : "+r"(n));
	size = KEX_LIFE_SIZE(n <= KEX_LIFE_STEPS ? n : KEX_LIFE_STEPS);
	if (!bpf_ringbuf_output(&events, l, size, flags))
		return;
	count_loss(KEX_EV_LIFE);
	for (i = 0; i < KEX_LIFE_STEPS; i++)
		if (i < n)
			count_loss(l->steps[i].type);
}

/*
 * --watch: @e joins its page's life (made at its first record); the page's
 * free sends the life. False when @e did not join and goes alone: a record
 * with a stack (a site's first: later records name the site), or no room
 * in the map or in the life. Nothing is lost either way.
 */
static __always_inline bool life_add(const struct kex_event *e)
{
	__u64 pfn = e->pfn, n, i;
	bool keep = !e->stack_len;
	struct kex_life *l;

	l = bpf_map_lookup_elem(&lives, &pfn);
	if (!l && keep) {
		bpf_map_update_elem(&lives, &pfn, &empty_life, BPF_NOEXIST);
		l = bpf_map_lookup_elem(&lives, &pfn);
	}
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
		bpf_map_delete_elem(&lives, &pfn);
	}
	return keep;
}

#endif /* KEXTRACE_WATCH_BPF_H */
