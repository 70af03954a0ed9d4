// SPDX-License-Identifier: GPL-2.0
/*
 * follow.bpf.c - kextrace --follow: an entry probe on every kernel function
 * with a struct page * or struct folio * argument (tracer/src/follow_*),
 * one record per call that passes a tracked page.
 *
 * One body, two programs: follow_multi (kprobe.multi: one link for every
 * function, fprobe) and follow_kprobe (a kprobe per function, where the
 * kernel has no fprobe: 6.1). Either way the BPF cookie of the function
 * says its index in the attached list and which register arguments hold a
 * page, a folio, a folio_batch or an array of pages (KEX_FOLLOW_COOKIE).
 * Everything else is dropped at once: a tracked page is one kex_page()
 * finds (kex's, or a driver's adopted page); a folio matches when any of its
 * pages is; a batch or an array, one record per tracked entry.
 */
#include "kextrace.bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kex_follow_stats);
} follow_stats SEC(".maps");

/*
 * Per CPU: 1 while a follow program runs. The kernel already keeps kprobe
 * programs from nesting on a CPU (bpf_prog_active); this guard also covers
 * a run entered from a trampoline program's helpers, and counts what it
 * drops as lost KEX_EV_FOLLOW records instead of losing them silently.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} follow_busy SEC(".maps");

static const __u32 zero;

/* 6.1's struct folio kept its order in a byte of its own (first tail page) */
struct folio___61 {
	unsigned char _folio_order;
} __attribute__((preserve_access_index));

/* page->flags up to 6.17: an unsigned long (6.18 wraps it in memdesc_flags_t) */
struct page___flagsword {
	unsigned long flags;
} __attribute__((preserve_access_index));

/* the pages of a large folio (1 if it is not one) */
static __always_inline __u32 folio_pages(__u64 folio)
{
	struct folio *f = (void *)folio;
	struct folio___61 *old = (void *)folio;
	__u64 flags = 0, f1 = 0;
	__u8 order = 0;
	int head = bpf_core_enum_value(enum pageflags, PG_head);

	/* page->flags is an unsigned long, or (6.18) a struct holding one:
	 * CO-RE matches a field only with its own type, so two reads */
	if (bpf_core_field_exists(((struct page___flagsword *)0)->flags))
		flags = BPF_CORE_READ((struct page___flagsword *)folio, flags);
	else
		bpf_core_read(&flags, sizeof(flags), &((struct page *)folio)->flags);
	if (!(flags & (1ULL << head)))
		return 1;
	/* 6.1 has both fields, and the order in _folio_order; later kernels
	 * keep it in the low byte of _flags_1 */
	if (bpf_core_field_exists(old->_folio_order)) {
		order = BPF_CORE_READ(old, _folio_order);
	} else if (bpf_core_field_exists(f->_flags_1)) {
		bpf_core_read(&f1, sizeof(f1), &f->_flags_1);
		order = f1 & 0xff;
	}
	return order < 31 ? 1U << order : 1;
}

struct folio_scan {
	__u64 head;
	__u64 size;	/* sizeof(struct page) */
	__u64 page;	/* out: the tracked page found, 0: none */
};

static long folio_scan_one(__u32 i, void *data)
{
	struct folio_scan *s = data;
	__u64 page = s->head + i * s->size;

	if (!kex_page(page))
		return 0;
	s->page = page;
	return 1;
}

/*
 * The tracked page of a folio: its head (a small folio is one page), else
 * any page of a large one (struct pages are contiguous in a folio).
 */
static __always_inline struct kex_pfn_info *folio_tracked(__u64 folio,
							   __u64 *page)
{
	struct folio_scan s = { .head = folio };
	struct kex_follow_stats *st;
	struct kex_pfn_info *pi;
	__u32 n;

	*page = folio;
	pi = kex_page(folio);
	if (pi)
		return pi;
	n = folio_pages(folio);
	if (n <= 1)
		return NULL;
	if (n > KEX_FOLLOW_FOLIO_SCAN) {
		st = bpf_map_lookup_elem(&follow_stats, &zero);
		if (st)
			st->folio_partial++;
		n = KEX_FOLLOW_FOLIO_SCAN;
	}
	s.size = bpf_core_type_size(struct page);
	bpf_loop(n, folio_scan_one, &s, 0);
	if (!s.page)
		return NULL;
	*page = s.page;
	return kex_page(s.page);
}

static __always_inline void follow_emit(__u64 cookie, __u32 reg, __u32 kind,
					__u64 ptr, __u64 page,
					struct kex_pfn_info *pi)
{
	struct kex_event *e = reserve(KEX_EV_FOLLOW, KEX_P_FOLLOW);

	if (!e)
		return;
	e->pfn = pi->pfn;
	e->arg0 = KEX_FOLLOW_ARG0((__u32)cookie, reg, kind);
	e->arg1 = ptr;
	page_counts(e, page);
	submit_alone(e);
}

/*
 * A tracked page met in argument reg: a record, or (inside another follow
 * run on this CPU) a counted loss. *seen is the last page recorded for this
 * call: copy(dst, src) of two pages is two records, but a folio and its own
 * page passed side by side (folio_add_file_rmap_ptes(folio, page, ...)) are
 * one call on one page, one record.
 */
static __always_inline void follow_found(__u64 cookie, __u32 reg, __u32 kind,
					 __u64 ptr, __u64 page,
					 struct kex_pfn_info *pi, bool nested,
					 __u64 *seen)
{
	struct kex_follow_stats *st;

	if (*seen == page)
		return;
	*seen = page;
	count_match(counters_get(), KEX_P_FOLLOW);
	if (nested) {
		/* a record that could not be sent: a loss of its type, like a
		 * full ring (produced = received + lost), and why, apart */
		count_produced(KEX_EV_FOLLOW);
		count_loss(KEX_EV_FOLLOW);
		st = bpf_map_lookup_elem(&follow_stats, &zero);
		if (st)
			st->nested++;
		return;
	}
	follow_emit(cookie, reg, kind, ptr, page, pi);
}

/* one entry of a batch or an array: the state bpf_loop carries */
struct follow_scan {
	__u64 cookie;
	__u64 base;	/* &folios[0] / &pages[0] */
	__u64 seen;
	__u32 reg;
	__u32 kind;
	bool nested;
};

static long follow_scan_one(__u32 i, void *data)
{
	struct follow_scan *s = data;
	struct kex_pfn_info *pi;
	__u64 ptr = 0, page;

	bpf_probe_read_kernel(&ptr, sizeof(ptr), (void *)(s->base + i * 8));
	/* an encoded_page keeps flags in its low bits (struct page is 8-byte
	 * aligned, more): mask them; a count entry after
	 * ENCODED_PAGE_BIT_NR_PAGES_NEXT is a small number, never a page */
	ptr &= ~7ULL;
	if (!ptr)
		return 0;
	page = ptr;
	pi = s->kind == KEX_FOLLOW_K_BATCH ? folio_tracked(ptr, &page) :
					     kex_page(ptr);
	if (pi)
		follow_found(s->cookie, s->reg, s->kind, ptr, page, pi,
			     s->nested, &s->seen);
	return 0;
}

/* argument reg (1-6), if the cookie says it holds a tracked page or folio,
 * or a batch or an array of them */
static __always_inline void follow_arg(struct pt_regs *ctx, __u64 cookie,
				       __u8 reg, bool nested, __u64 *seen)
{
	__u32 bit = 1U << (reg - 1);
	struct follow_scan s = { .cookie = cookie, .reg = reg,
				 .nested = nested };
	struct kex_follow_stats *st;
	struct kex_pfn_info *pi;
	__u64 ptr, page, n = 0, limit;

	if (!((KEX_FOLLOW_PAGES(cookie) | KEX_FOLLOW_FOLIOS(cookie) |
	       KEX_FOLLOW_BATCHES(cookie) | KEX_FOLLOW_ARRAYS(cookie)) & bit))
		return;
	ptr = kprobe_arg(ctx, reg);
	if (!ptr)
		return;
	if (KEX_FOLLOW_PAGES(cookie) & bit) {
		pi = kex_page(ptr);
		if (pi)
			follow_found(cookie, reg, KEX_FOLLOW_K_PAGE, ptr, ptr,
				     pi, nested, seen);
		return;
	}
	if (KEX_FOLLOW_FOLIOS(cookie) & bit) {
		pi = folio_tracked(ptr, &page);
		if (pi)
			follow_found(cookie, reg, KEX_FOLLOW_K_FOLIO, ptr, page,
				     pi, nested, seen);
		return;
	}
	if (KEX_FOLLOW_BATCHES(cookie) & bit) {
		struct folio_batch *fb = (void *)ptr;

		n = BPF_CORE_READ(fb, nr);
		s.base = (__u64)&fb->folios[0];
		s.kind = KEX_FOLLOW_K_BATCH;
		limit = KEX_FOLLOW_BATCH_SCAN;
	} else {
		/* the length is the next argument (int, unsigned int, long:
		 * discovery keeps an array only when it is in a register) */
		n = (__u32)kprobe_arg(ctx, reg + 1);
		s.base = ptr;
		s.kind = KEX_FOLLOW_K_ARRAY;
		limit = KEX_FOLLOW_ARRAY_SCAN;
	}
	if (n > limit) {
		n = limit;
		st = bpf_map_lookup_elem(&follow_stats, &zero);
		if (st)
			st->array_partial++;
	}
	s.seen = *seen;
	bpf_loop(n, follow_scan_one, &s, 0);
	*seen = s.seen;
}

static __always_inline int follow_body(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 *busy = bpf_map_lookup_elem(&follow_busy, &zero);
	__u64 seen = 0;
	bool nested;

	count_hit(KEX_P_FOLLOW);
	if (!busy)
		return 0;
	nested = *busy;
	*busy = 1;
	/* one record per tracked page passed: copy(dst, src) of two is two */
	follow_arg(ctx, cookie, 1, nested, &seen);
	follow_arg(ctx, cookie, 2, nested, &seen);
	follow_arg(ctx, cookie, 3, nested, &seen);
	follow_arg(ctx, cookie, 4, nested, &seen);
	follow_arg(ctx, cookie, 5, nested, &seen);
	follow_arg(ctx, cookie, 6, nested, &seen);
	if (!nested)
		*busy = 0;
	return 0;
}

SEC("kprobe.multi")
int follow_multi(struct pt_regs *ctx)
{
	return follow_body(ctx);
}

SEC("kprobe")
int follow_kprobe(struct pt_regs *ctx)
{
	return follow_body(ctx);
}
