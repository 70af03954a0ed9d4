#!/usr/bin/env python3
"""bench/summarize_engine.py: the correlation engine and the export writers
(bench/correlator.sh's correlator-raw.json) for bench/summarize.py: their
figures reduced to medians with spread, and the summary's section 3."""

from bench_stats import spread


# --- machine: the correlator and the writers -----------------------------------------

def correlator(raw):
    res = {"context": raw.get("context", {}), "benchmarks": {}}
    groups = {}
    for b in raw.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue
        groups.setdefault(b.get("run_name", b["name"]), []).append(b)
    for name, bs in groups.items():
        d = {"repetitions": len(bs)}
        for key in ("items_per_second", "bytes_per_second", "real_time", "cpu_time",
                    "peak_B_per_page", "report_B_per_page", "pages", "events", "complete_pages",
                    "file_bytes", "sys_share", "faults_per_kevent", "user_events_per_s"):
            vals = [b.get(key) for b in bs if b.get(key) is not None]
            if vals:
                d[key] = spread(vals)
        # wall-clock rates too: the machine is shared, cpu_time is the engine's own
        if "items_per_second" in d and "events" in d:
            d["items_per_second_wall"] = spread([b["events"] * b.get("iterations", 1) /
                                                  (b["real_time"] * _unit(b)) for b in bs])
        d["time_unit"] = bs[0].get("time_unit")
        res["benchmarks"][name] = d
    return res


def kernel_part(d):
    """Where an engine run's CPU time went besides the engine's code: the kernel's share."""
    if "sys_share" not in d or "user_events_per_s" not in d:
        return ""
    return (f"; the kernel (faulting fresh memory in, {d['faults_per_kevent']['median']:.2f} faults a "
            f"1,000 events) {100 * d['sys_share']['median']:.0f}% of it, user space alone "
            f"{d['user_events_per_s']['median'] / 1e6:.2f} M/s")


def _unit(b):
    return {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")] * b.get("iterations", 1)


def md_engine(co):
    """Section 3: the correlation engine and the export writers."""
    L = []
    cb = co.get("benchmarks", {})
    L.append("## 3. Correlation engine and export writers (this machine, no guest)")
    L.append("")
    ctx = co.get("context", {})
    L.append(f"{ctx.get('num_cpus')} CPUs at {ctx.get('mhz_per_cpu')} MHz, load average at the start "
             f"{', '.join(f'{x:.1f}' for x in ctx.get('load_avg', []))}. Rates are per CPU second "
             "(the machine is shared; wall-clock rates beside them).")
    L.append("")
    L.append("| benchmark | reps | rate (CPU time) | rate (wall) | kernel's share of the CPU time | "
             "rate in user space alone | peak B/page | report B/page |")
    L.append("|---|---|---|---|---|---|---|---|")
    for name, d in sorted(cb.items()):
        if "items_per_second" in d:
            r = d["items_per_second"]
            w = d.get("items_per_second_wall")
            rate = f"{r['median'] / 1e6:.2f} ({r['min'] / 1e6:.2f}..{r['max'] / 1e6:.2f}) M events/s"
            wall = f"{w['median'] / 1e6:.2f} M events/s" if w else ""
        else:
            r = d["bytes_per_second"]
            rate = f"{r['median'] / 1e6:.0f} ({r['min'] / 1e6:.0f}..{r['max'] / 1e6:.0f}) MB/s"
            wall = ""
        pb = f"{d['peak_B_per_page']['median']:.0f}" if "peak_B_per_page" in d else ""
        rb = f"{d['report_B_per_page']['median']:.0f}" if "report_B_per_page" in d else ""
        ks = f"{100 * d['sys_share']['median']:.0f}%" if "sys_share" in d else ""
        us = f"{d['user_events_per_s']['median'] / 1e6:.2f} M events/s" if "user_events_per_s" in d else ""
        L.append(f"| {name} | {d['repetitions']} | {rate} | {wall} | {ks} | {us} | {pb} | {rb} |")
    L.append("")
    L.extend(md_timeline_sizes(cb))
    return L


def md_timeline_sizes(cb):
    """The timeline's size as JSON and as Perfetto protobuf, for the same report."""
    def by_kind(kind):
        return {n.split("/")[2]: d for n, d in cb.items()
                if n.startswith(f"export/timeline_{kind}/") and "file_bytes" in d}
    js, pf = by_kind("json"), by_kind("perfetto")
    rows = []
    for events in sorted(set(js) & set(pf), key=int):
        j, p = js[events]["file_bytes"]["median"], pf[events]["file_bytes"]["median"]
        pages = js[events].get("pages", {}).get("median", 0)
        rows.append(f"| {int(events):,} events, {pages:,.0f} pages | {j:,.0f} B | {p:,.0f} B "
                    f"| {p / j:.2f} ({j / p:.1f}x smaller) |")
    if not rows:
        return []
    return ["The timeline of the same report in both formats (`--export FILE.json`, "
            "`--export FILE.pftrace`):", "",
            "| report | JSON | Perfetto protobuf | protobuf / JSON |", "|---|---|---|---|",
            *rows, ""]
