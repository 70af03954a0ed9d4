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
 * page or a folio (KEX_FOLLOW_COOKIE). Everything else is dropped at once:
 * a tracked page is one in the "pages" map (kex's, or a driver's adopted
 * page); a folio matches when any of its pages is.
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

/* the pages of a large folio (1 if it is not one) */
static __always_inline __u32 folio_pages(__u64 folio)
{
	struct folio *f = (void *)folio;
	struct folio___61 *old = (void *)folio;
	__u64 flags = 0, f1 = 0;
	__u8 order = 0;
	int head = bpf_core_enum_value(enum pageflags, PG_head);

	/* page->flags is an unsigned long, or (6.18) a struct holding one */
	bpf_core_read(&flags, sizeof(flags), &f->flags);
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
static __always_inline struct kex_page_info *folio_tracked(__u64 folio,
							   __u64 *page)
{
	struct folio_scan s = { .head = folio };
	struct kex_follow_stats *st;
	struct kex_page_info *pi;
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

static __always_inline void follow_emit(__u64 cookie, __u32 reg, bool folio,
					__u64 ptr, __u64 page,
					struct kex_page_info *pi)
{
	struct kex_event *e = reserve(KEX_EV_FOLLOW, KEX_P_FOLLOW);

	if (!e)
		return;
	e->pfn = pi->pfn;
	e->arg0 = KEX_FOLLOW_ARG0((__u32)cookie, reg, folio);
	e->arg1 = ptr;
	page_counts(e, page);
	submit(e);
}

/* argument reg (1-6), if the cookie says it holds a tracked page or folio */
static __always_inline bool follow_arg(struct pt_regs *ctx, __u64 cookie,
				       __u8 reg, bool nested)
{
	__u32 bit = 1U << (reg - 1);
	bool folio = KEX_FOLLOW_FOLIOS(cookie) & bit;
	struct kex_follow_stats *st;
	struct kex_page_info *pi;
	__u64 ptr, page;

	if (!((KEX_FOLLOW_PAGES(cookie) | KEX_FOLLOW_FOLIOS(cookie)) & bit))
		return false;
	ptr = kprobe_arg(ctx, reg);
	if (!ptr)
		return false;
	page = ptr;
	pi = folio ? folio_tracked(ptr, &page) : kex_page(ptr);
	if (!pi)
		return false;
	count_match(KEX_P_FOLLOW);
	if (nested) {
		/* a record that could not be sent: a loss of its type, like a
		 * full ring (produced = received + lost), and why, apart */
		count_produced(KEX_EV_FOLLOW);
		count_loss(KEX_EV_FOLLOW);
		st = bpf_map_lookup_elem(&follow_stats, &zero);
		if (st)
			st->nested++;
		return true;
	}
	follow_emit(cookie, reg, folio, ptr, page, pi);
	return true;
}

static __always_inline int follow_body(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u32 *busy = bpf_map_lookup_elem(&follow_busy, &zero);
	bool nested;

	count_hit(KEX_P_FOLLOW);
	if (!busy)
		return 0;
	nested = *busy;
	*busy = 1;
	/* one record per tracked page passed: copy(dst, src) of two is two */
	follow_arg(ctx, cookie, 1, nested);
	follow_arg(ctx, cookie, 2, nested);
	follow_arg(ctx, cookie, 3, nested);
	follow_arg(ctx, cookie, 4, nested);
	follow_arg(ctx, cookie, 5, nested);
	follow_arg(ctx, cookie, 6, nested);
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
