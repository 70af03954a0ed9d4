/* SPDX-License-Identifier: GPL-2.0 */
/*
 * counters.bpf.h - the programs' counters (struct kex_counters, kextrace.h):
 * per probe its runs, filter passes and records sent, per event type the
 * records produced and lost, in one per-CPU map looked up once a run
 * (count_hit) and once a record (ring_reserved). Included by kextrace.bpf.h
 * after its maps.
 */
#ifndef KEXTRACE_COUNTERS_BPF_H
#define KEXTRACE_COUNTERS_BPF_H

/* per probe and per event type: struct kex_counters (kextrace.h) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kex_counters);
} counters SEC(".maps") __weak;

_Static_assert(!(KEX_MAX_PROBES & (KEX_MAX_PROBES - 1)) &&
	       !(KEX_LOSS_SLOTS & (KEX_LOSS_SLOTS - 1)) &&
	       !(KEX_RING_CHECK & (KEX_RING_CHECK - 1)),
	       "counter indexes are masked: powers of two");

/* this CPU's counters (NULL only if the map could not be read) */
static __always_inline struct kex_counters *counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

/* a probe's slot (bounded for the verifier) */
static __always_inline struct kex_probe_stats *probe_slot(struct kex_counters *c,
							  __u32 probe)
{
	return &c->probe[probe & (KEX_MAX_PROBES - 1)];
}

/* an event type's slot: an unknown type counts in slot 0 */
static __always_inline __u32 type_slot(__u32 type)
{
	return (type < KEX_LOSS_SLOTS ? type : 0) & (KEX_LOSS_SLOTS - 1);
}

/*
 * A program run: counted under its probe; returns this CPU's counters for
 * count_match() and the rest of the run, so that a run looks them up once.
 */
static __always_inline struct kex_counters *count_hit(__u32 probe)
{
	struct kex_counters *c = counters_get();

	if (c)
		probe_slot(c, probe)->hits++;
	return c;
}

/* The run passed its filter: @c from count_hit(). */
static __always_inline void count_match(struct kex_counters *c, __u32 probe)
{
	if (c)
		probe_slot(c, probe)->matched++;
}

static __always_inline void count_loss(__u32 type)
{
	struct kex_counters *c = counters_get();

	if (c)
		c->lost[type_slot(type)]++;
}

static __always_inline void count_produced(__u32 type)
{
	struct kex_counters *c = counters_get();

	if (c)
		c->produced[type_slot(type)]++;
}

/*
 * In a record's probe field between reserve_room() and submit_ring() only: the
 * reader is to be woken (probes are below KEX_MAX_PROBES).
 */
#define KEX_PROBE_WAKE		0x8000

static __always_inline __u64 ring_flags(void)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void count_emitted(__u32 probe)
{
	struct kex_counters *c = counters_get();

	if (c)
		probe_slot(c, probe)->emitted++;
}

/*
 * A record of the ring buffer reserved (@r) or not: counted as produced, and
 * as emitted or lost, in this CPU's counters, looked up once. Every reserved
 * record is submitted (nothing is discarded), so it is emitted from here on.
 * Returns the probe field for fill(): @probe, with KEX_PROBE_WAKE when this
 * record is the CPU's KEX_RING_CHECK-th and the ring is past wakeup_bytes,
 * so that submit_ring() forces a wakeup without querying the ring (a helper
 * call) a record.
 */
static __always_inline __u32 ring_reserved(void *r, __u32 type, __u32 probe)
{
	struct kex_counters *c = counters_get();

	if (!c)
		return probe;
	c->produced[type_slot(type)]++;
	if (!r) {
		c->lost[type_slot(type)]++;
		return probe;
	}
	probe_slot(c, probe)->emitted++;
	if (++c->reserved & (KEX_RING_CHECK - 1))
		return probe;
	return ring_flags() == BPF_RB_FORCE_WAKEUP ? probe | KEX_PROBE_WAKE : probe;
}

#endif /* KEXTRACE_COUNTERS_BPF_H */
