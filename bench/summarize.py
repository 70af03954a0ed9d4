#!/usr/bin/env python3
"""bench/summarize.py: reduce the raw benchmark records to bench/results/*.json
and bench/results/summary.md.

  summarize.py RESULTS_DIR            reads RESULTS_DIR/guest-raw.jsonl (bench/guest.sh)
                                      and RESULTS_DIR/correlator-raw.json (bench/correlator.sh),
                                      whichever exist; writes overhead.json, loss.json,
                                      modes.json, correlator.json and summary.md there
  summarize.py --check-smoke FILE     exit 1 unless FILE (guest-raw.jsonl or
                                      correlator-raw.json) has every benchmark's records
                                      and no failed run

Every timing is a median over repetitions with its spread (min..max); the
guest's ratios are taken per repetition (A B C run back to back) and then
summarised, so load from other work on the machine cancels within a pair.
"""
import json
import os
import sys
import time
from datetime import datetime, timezone

from bench_stats import fmt_r, fmt_s, med, spread, verdict, verdict_vs
from summarize_follow import follow, md_follow
from summarize_engine import correlator, kernel_part, md_engine
from summarize_profile import KEXTRACE_CFG, md_profile, md_profile_says, profile

# issue 16's: default settings <= 2.0, the watch mode's 1.3,
# kextrace's overhead <= 0.15 of bpftrace's on the same probes
TARGETS = {
    "ratio_65536": 2.0, "watch_ratio_65536": 1.3, "overhead_vs_bpftrace": 0.15,
    "events_per_s": 10e6, "bytes_per_page": 256,  # held by the report once correlated
    "export_MBps": 1000,  # "exports stay >= 1 GB/s" (the first round's bound was 100 MB/s)
}


def read_jsonl(path):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


# --- guest: overhead -----------------------------------------------------------


def overhead(records, bench="overhead"):
    """Section 1 (bench "overhead": the rig on kex) and 1c ("driver": an AF_PACKET ring)."""
    res = {}
    sizes = sorted({r["pages"] for r in records if r.get("bench") == bench})
    for pages in sizes:
        rs = [r for r in records if r.get("bench") == bench and r["pages"] == pages]
        reps = sorted({r["rep"] for r in rs})
        by = {}
        for r in rs:
            by.setdefault(r["cfg"], {})[r["rep"]] = r
        wall = {c: [by[c][k]["run"].get("wall_ns") for k in by[c]] for c in by}
        d = {"pages": pages, "repetitions": len(reps), "wall_ns": {c: spread(v) for c, v in wall.items()}}
        tracers = ["kextrace", "bpftrace", "hooks"] + sorted(c for c in by if c.startswith("kextrace_"))
        ratios = {c: [] for c in tracers}
        ovr = []
        for k in reps:
            u = by.get("untraced", {}).get(k, {}).get("run", {}).get("wall_ns")
            for c in tracers:
                t = by.get(c, {}).get(k, {}).get("run", {}).get("wall_ns")
                if u and t:
                    ratios[c].append(t / u)
            kt = by.get("kextrace", {}).get(k, {}).get("run", {}).get("wall_ns")
            bt = by.get("bpftrace", {}).get(k, {}).get("run", {}).get("wall_ns")
            if u and kt and bt and bt > u:
                ovr.append((kt - u) / (bt - u))
        d["traced_over_untraced"] = {c: spread(v) for c, v in ratios.items()}
        d["kextrace_overhead_over_bpftrace_overhead"] = spread(ovr)
        for c in (c for c in tracers if c in by):
            cs = by[c].values()
            d.setdefault("startup_ns", {})[c] = spread([r["run"].get("startup_ns") for r in cs])
            # after the command exited: drain, settle, correlate, report (kextrace)
            d.setdefault("after_exit_ns", {})[c] = spread([
                r["tracer_total_ns"] - r["run"]["startup_ns"] - r["run"]["wall_ns"]
                for r in cs if r["run"].get("wall_ns") and r["run"].get("startup_ns") is not None])
            d.setdefault("events", {})[c] = med([r.get("events") for r in cs])
            d.setdefault("lost", {})[c] = max([r.get("lost") or 0 for r in cs], default=None)
            d.setdefault("page_lives", {})[c] = med([r.get("page_lives") for r in cs])
            d.setdefault("failed_runs", {})[c] = sum(1 for r in cs if r.get("exit", 0) != 0
                                                      or r["run"].get("status", 0) != 0)
        d["startup_ns"]["untraced"] = spread([r["run"].get("startup_ns") for r in by.get("untraced", {}).values()])
        for c in ("untraced", "kextrace", "bpftrace"):
            cs = by.get(c, {}).values()
            d.setdefault("cpu_us", {})[c] = spread([
                (r["run"].get("utime_us") or 0) + (r["run"].get("stime_us") or 0) for r in cs])
        res[str(pages)] = d
    return res


# --- guest: loss -----------------------------------------------------------------

def loss(records):
    out = []
    for r in records:
        if r.get("bench") != "loss":
            continue
        loopers = r.get("loopers") or []
        busy = max((l["wall_ns"] for l in loopers), default=None)
        d = dict(r)
        d["loop_wall_ns"] = busy
        d["events_per_s"] = (r["events"] + (r["lost"] or 0)) / (busy * 1e-9) if busy and r.get("events") else None
        acct = r.get("ring_accounting")
        if acct:
            rows = acct.get("per_type", {})
            bad = {t: v for t, v in rows.items() if v["produced"] != v["received"] + v["lost"]}
            d["accounting_exact"] = not bad and acct.get("produced") == acct.get("received") + acct.get("lost")
            d["accounting_mismatches"] = bad
        else:
            d["accounting_exact"] = None
        out.append(d)
    return out


# --- guest: where the overhead goes (BPF run statistics) ----------------------------

# --- guest: modes ---------------------------------------------------------------------

def modes(records):
    res = {}
    for r in records:
        if r.get("bench") != "modes":
            continue
        m = res.setdefault(r["mode"], {"runs": [], "skipped": None})
        if r.get("skipped") is not None:
            m["skipped"] = r["skipped"]
            continue
        m["runs"].append(r)
    for name, m in res.items():
        runs = m["runs"]
        costs = [r["cost"] for r in runs if isinstance(r.get("cost"), dict) and "per_page_ns" in r["cost"]]
        m["pages"] = runs[0]["pages"] if runs else None
        m["per_page_ns"] = spread([c["per_page_ns"] for c in costs])
        m["first_to_last_pte_per_page_ns"] = spread([
            c["first_to_last_pte_ns"] / c["pages"] for c in costs if c.get("pages")])
        m["pte_source"] = costs[0]["source"] if costs else None
        m["pte_events"] = costs[0]["pte_events"] if costs else None
        m["untraced_wall_per_page_ns"] = spread([
            r["untraced"]["wall_ns"] / r["pages"] for r in runs if r.get("untraced")])
        m["errors"] = [r.get("cost") for r in runs if not (isinstance(r.get("cost"), dict) and "per_page_ns" in r["cost"])]
        del m["runs"]
    return res


# --- Markdown --------------------------------------------------------------------------

def queue_peak(acct):
    q = (acct or {}).get("queue")
    if not q:
        return "n/a"
    return f"{q.get('peak_records', 0):,} records, {q.get('peak_bytes', 0) / 2**20:.1f} MiB"


def md_header(env, meta, co=None):
    """The title and where the figures come from, and when each part was measured."""
    L = []
    L.append("# kextrace benchmarks: summary")
    L.append("")
    ran = [f"the guest part at {env['date']}"] if env and env.get("date") else []
    if co and co.get("context", {}).get("date"):
        at = datetime.fromisoformat(co["context"]["date"]).astimezone(timezone.utc)
        ran.append(f"the engine and writers (section 3) at {at:%Y-%m-%d %H:%M} UTC")
    L.append(f"Generated by `scripts/bench` on {meta['host']} at {meta['date']}"
             f"{' from runs of ' + ' and '.join(ran) if ran else ''}. "
             "Figures are medians with (min..max) over repetitions.")
    if env:
        L.append(f"Guest: {env.get('guest')}, kernel {env.get('kernel')}, {env.get('cpus')} vCPUs, "
                 f"{int(env.get('mem_kb', 0)) // 1024} MiB, {env.get('bpftrace')}, kex {env.get('kex_params')}. "
                 "**Absolute guest times are from a software-emulated guest** (qemu TCG): "
                 "only the ratios carry over to real hardware.")
    L.append("")
    return L


def floor_note(left):
    """What the 2.0 target leaves kextrace's programs after the hooks' share (in untraced times)."""
    return (f"the 2.0 target leaves kextrace's programs {left:.2f} of the untraced time" if left > 0 else
            f"the hooks alone take {-left:.2f} of the untraced time more than the 2.0 target: it leaves kextrace's programs nothing")


def hooks_vs_bpftrace(h, b):
    """The floor's share of the overhead target against bpftrace: what the hooks alone cost, in
    bpftrace's overhead (medians), and what that leaves kextrace's programs."""
    if not h or not b or b["median"] <= 1:
        return ""
    share = (h["median"] - 1) / (b["median"] - 1)
    left = TARGETS["overhead_vs_bpftrace"] - share
    return (f"; the hooks alone (the floor row) are {share:.2f} of bpftrace's overhead, which leaves "
            + (f"kextrace's programs {left:.2f}" if left > 0 else "kextrace's programs nothing"))


def md_targets(ov, ls, co):
    """The targets table: wanted against measured."""
    L = []
    L.append("## Targets")
    L.append("")
    L.append("| target | wanted | measured | verdict |")
    L.append("|---|---|---|---|")
    big = ov.get("65536") or (ov[max(ov, key=int)] if ov else None)
    if big:
        r = big["traced_over_untraced"]["kextrace"]
        L.append(f"| kextrace traced/untraced, {big['pages']} pages (guest), default settings | "
                 f"<= {TARGETS['ratio_65536']} | {fmt_r(r)} | "
                 f"{verdict_vs(r and r['median'], TARGETS['ratio_65536'])} |")
        w = big["traced_over_untraced"].get("kextrace_watch")
        if w:
            L.append(f"| kextrace --leaks --watch traced/untraced, {big['pages']} pages (guest) | "
                     f"<= {TARGETS['watch_ratio_65536']} | {fmt_r(w)} | "
                     f"{verdict_vs(w['median'], TARGETS['watch_ratio_65536'])} |")
        h = big["traced_over_untraced"].get("hooks")
        if h and r:
            L.append(f"| (the floor) kextrace's hooks alone, every program empty (bench/hooks.bt), "
                     f"{big['pages']} pages | none: no tracer on these hooks goes below it | "
                     f"{fmt_r(h)} | {floor_note(TARGETS['ratio_65536'] - h['median'])}; they take "
                     f"{r['median'] - h['median']:.2f} |")
        o = big["kextrace_overhead_over_bpftrace_overhead"]
        L.append(f"| kextrace overhead / bpftrace overhead, {big['pages']} pages | "
                 f"<= {TARGETS['overhead_vs_bpftrace']} | {fmt_r(o)} | "
                 f"{verdict_vs(o and o['median'], TARGETS['overhead_vs_bpftrace'])}"
                 f"{hooks_vs_bpftrace(h, big['traced_over_untraced'].get('bpftrace'))} |")
    dflt = [l for l in ls if l["name"].startswith("default")]
    if dflt:
        lost = sum(l.get("lost") or 0 for l in dflt)
        L.append(f"| lost events at default settings | 0 | {lost} over {len(dflt)} runs, "
                 f"{sum(l.get('events') or 0 for l in dflt)} events | {verdict(lost == 0)} |")
    over = [l for l in ls if l["name"] == "overload"]
    if over:
        o = over[0]
        ok = o.get("accounting_exact")
        L.append(f"| exact loss accounting under overload | produced = received + lost, per type | "
                 f"{o.get('lost')} lost of {(o.get('events') or 0) + (o.get('lost') or 0)}; "
                 f"{'exact' if ok else 'not exact' if ok is False else 'no accounting'} | {verdict(bool(ok) and (o.get('lost') or 0) > 0)} |")
    cb = co.get("benchmarks", {}) if co else {}
    for name, d in sorted(cb.items()):
        if name.startswith("correlate/") and "items_per_second" in d:
            ev = d["items_per_second"]
            parts = name.split('/')  # correlate/MODE/EVENTS/iterations:N
            label = f"{int(parts[2]):,} events, {parts[1]}"
            L.append(f"| correlation, {label} (1 thread, CPU time) | >= 10 M events/s | "
                     f"{fmt_r({k: v / 1e6 if isinstance(v, (int, float)) else v for k, v in ev.items()})} M/s{kernel_part(d)} | "
                     f"{verdict_vs(ev['median'] / 1e6, TARGETS['events_per_s'] / 1e6, at_most=False, unit=' M/s')} |")
            if "report_B_per_page" in d:
                rb, pb = d["report_B_per_page"]["median"], d["peak_B_per_page"]["median"]
                # held once correlated (the 592 B); the peak adds the buffered records
                L.append(f"| memory per tracked page, {label} | <= 256 B held | "
                         f"{rb:.0f} B held by the report, {pb:.0f} B at the peak | {verdict(rb <= TARGETS['bytes_per_page'])} |")
    for name, d in sorted(cb.items()):
        if name.startswith("export/") and "bytes_per_second" in d:
            b = d["bytes_per_second"]
            L.append(f"| export {name.split('/')[1]} | >= {TARGETS['export_MBps']} MB/s | "
                     f"{b['median'] / 1e6:.0f} ({b['min'] / 1e6:.0f}..{b['max'] / 1e6:.0f}) MB/s | "
                     f"{verdict(b['median'] >= TARGETS['export_MBps'] * 1e6)} |")
    L.append("| no ring-buffer wakeup per event | BPF_RB_NO_WAKEUP + periodic drain | "
             "submit() uses BPF_RB_NO_WAKEUP, forces a wakeup only past 1/4 of the ring (checked every 16th record a CPU); "
             "the session drains every 50 ms | met (by construction) |")
    L.append("")
    return L


def kextrace_cfgs(d):
    """The kextrace configurations that ran at one size, the default first."""
    return sorted((c for c in d["traced_over_untraced"] if c.startswith("kextrace") and c in d["events"]),
                  key=lambda c: (c != "kextrace", c))


def md_overhead(ov):
    """Section 1: the tracers' overhead on the rig."""
    L = []
    L.append("## 1. Tracer overhead on `mmap_test --no-wait` (software-emulated guest)")
    L.append("")
    L.append("Workload time = `kexbench run`'s fork-to-reap of mmap_test (so a tracer's start-up, "
             "which happens before it releases the command, and its work after the command exited "
             "are not in it; both are reported apart). Order per repetition: untraced, kextrace, bpftrace, then, at bpftrace's sizes, the "
             "hooks alone (bench/hooks.bt: every hook kextrace attaches, each program empty, "
             "loaded by bpftrace: the floor no tracer on them goes below). "
             "bpftrace runs only at the sizes `scripts/bench` names (`--bpftrace-pages`: the target's "
             "65,536; its start-up under emulation, 40-50 s of compiling and attaching, is most of a run "
             "at 4,096 pages); n/a where it did not run.")
    L.append("")
    L.append("| pages | reps | untraced | kextrace | bpftrace | kextrace/untraced | bpftrace/untraced | "
             "kextrace ovh / bpftrace ovh |")
    L.append("|---|---|---|---|---|---|---|---|")
    for p in sorted(ov, key=int):
        d = ov[p]
        w = d["wall_ns"]
        L.append(f"| {p} | {d['repetitions']} | {fmt_s(w.get('untraced'))} | {fmt_s(w.get('kextrace'))} | "
                 f"{fmt_s(w.get('bpftrace'))} | {fmt_r(d['traced_over_untraced']['kextrace'])} | "
                 f"{fmt_r(d['traced_over_untraced']['bpftrace'])} | "
                 f"{fmt_r(d['kextrace_overhead_over_bpftrace_overhead'])} |")
    L.append("")
    L.append("kextrace by configuration (in the same repetitions, after the default run; the "
             "default is `--stacks sites` since 2026-12-05, `all` before): `none` "
             "(`--no-stacks`), `--leaks --watch` (a page's records kept in BPF and sent once, at "
             "its free; since 2026-12-05, in place of `--stacks all`, which section 1b profiles).")
    L.append("")
    L.append("| pages | configuration | workload | traced/untraced |")
    L.append("|---|---|---|---|")
    for p in sorted(ov, key=int):
        d = ov[p]
        for c in kextrace_cfgs(d):
            L.append(f"| {p} | {KEXTRACE_CFG.get(c, c)} | {fmt_s(d['wall_ns'].get(c))} | "
                     f"{fmt_r(d['traced_over_untraced'][c])} |")
        if d["traced_over_untraced"].get("hooks"):
            L.append(f"| {p} | the hooks alone: bench/hooks.bt, bpftrace, every program empty | "
                     f"{fmt_s(d['wall_ns'].get('hooks'))} | {fmt_r(d['traced_over_untraced']['hooks'])} |")
    L.append("")
    L.append("| pages | tracer | start-up (launch to command start) | after the command exited | "
             "events | lost | failed runs |")
    L.append("|---|---|---|---|---|---|---|")
    for p in sorted(ov, key=int):
        d = ov[p]
        for c in sorted(d["startup_ns"], key=lambda c: (c == "bpftrace", c)):
            if c == "untraced":
                continue
            L.append(f"| {p} | {c} | {fmt_s(d['startup_ns'].get(c))} | {fmt_s(d['after_exit_ns'].get(c))} | "
                     f"{d['events'].get(c)} | {d['lost'].get(c)} | {d['failed_runs'].get(c)} |")
    L.append("")
    return L


def md_driver(dv):
    """Section 1c: the same on another driver's pages."""
    L = ["## 1c. Another driver's pages: an AF_PACKET ring (software-emulated guest)", ""]
    L.append("`kexbench ring N`: an AF_PACKET RX ring (TPACKET_V2) of N one-page blocks, the pages "
             "net/packet allocates at setsockopt and `packet_mmap` inserts with `vm_insert_page`; "
             "one byte written a page, munmap, close (which frees them). Workload time as in "
             "section 1 (fork to reap, set-up and close included); kextrace follows these pages as "
             "any driver's (kex is loaded, idle). Interleaved per repetition. 8,192 pages: a ring "
             "allocated before its mmap holds one remembered allocation a page until then, and "
             "`--max-allocs` (16,384 by default) bounds them.")
    L.append("")
    L.append("| pages | reps | configuration | workload | traced/untraced | page lives | events | lost | failed runs |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for p in sorted(dv, key=int):
        d = dv[p]
        L.append(f"| {p} | {d['repetitions']} | untraced | {fmt_s(d['wall_ns'].get('untraced'))} | | | | | |")
        for c in kextrace_cfgs(d):
            L.append(f"| {p} | {d['repetitions']} | {KEXTRACE_CFG.get(c, c)} | {fmt_s(d['wall_ns'].get(c))} | "
                     f"{fmt_r(d['traced_over_untraced'][c])} | {d['page_lives'].get(c)} | "
                     f"{d['events'].get(c)} | {d['lost'].get(c)} | {d['failed_runs'].get(c)} |")
    L.append("")
    return L


def md_loss(ls):
    """Section 2: loss and its accounting."""
    L = []
    L.append("## 2. Loss (software-emulated guest)")
    L.append("")
    L.append("kextrace over `kexbench loop` (mmap, touch every page, munmap, no exec between), "
             "1 or 2 loopers at once; the overload run uses a 1 MiB ring and the slowest consumer "
             "(`--events`, a JSON line per record), with the ring's drain thread held once 1 KiB of "
             "records wait for that consumer (`--debug-queue-limit-kb 1`: without it the drain thread "
             "keeps copying the ring into memory and nothing is lost). "
             "Rate = (received + lost) / the loopers' wall time.")
    L.append("")
    L.append("| run | ring | loopers x pages x loops | events received | lost | rate (events/s) | "
             "drain queue peak | produced = received + lost |")
    L.append("|---|---|---|---|---|---|---|---|")
    for l in ls:
        acct = l.get("ring_accounting") or {}
        ex = l.get("accounting_exact")
        L.append(f"| {l['name']} | {l['ringbuf_mb']} MiB | {l['parallel']} x {l['pages']} x {l['loops']} | "
                 f"{l.get('events')} | {l.get('lost')} | "
                 f"{(l['events_per_s'] or 0):,.0f} | {queue_peak(acct)} | "
                 f"{'exact' if ex else 'NOT exact' if ex is False else 'n/a'}"
                 f"{' (' + str(acct.get('produced')) + ' = ' + str(acct.get('received')) + ' + ' + str(acct.get('lost')) + ')' if acct else ''} |")
    over = [l for l in ls if l["name"] == "overload" and l.get("ring_accounting")]
    if over:
        L.append("")
        L.append("Overload, per event type (BPF `produced` counter, records the session received, "
                 "the BPF loss counter):")
        L.append("")
        L.append("| type | produced | received | lost | exact |")
        L.append("|---|---|---|---|---|")
        for t, v in sorted(over[0]["ring_accounting"].get("per_type", {}).items()):
            L.append(f"| {t} | {v['produced']} | {v['received']} | {v['lost']} | "
                     f"{'yes' if v['produced'] == v['received'] + v['lost'] else 'NO'} |")
    L.append("")
    return L


def md_modes(md):
    """Section 4: the mapping cost per page, by mode."""
    L = []
    L.append("## 4. Per-page mapping cost by mode, from the trace (software-emulated guest)")
    L.append("")
    L.append("Per page = (last PTE written for the mapping - its kex_mmap event) / pages, from "
             "`kextrace --no-stacks --jsonl`; ref_policy=keep for every mode. For mode fault "
             "this includes the rig's user-space time between faults (pages come in on first touch). "
             "Untraced: mmap_test's whole run per page, no tracer.")
    L.append("")
    L.append("| mode | pages | per page (trace) | first to last PTE, per page | PTE seen at | untraced run per page |")
    L.append("|---|---|---|---|---|---|")
    for name, m in md.items():
        if m.get("skipped") and not m.get("per_page_ns"):
            L.append(f"| {name} | - | skipped: {m['skipped']} | | | |")
            continue
        L.append(f"| {name} | {m['pages']} | {fmt_s(m['per_page_ns'], 1e-3, 'us', 1)} | "
                 f"{fmt_s(m['first_to_last_pte_per_page_ns'], 1e-3, 'us', 1)} | {m['pte_source']} | "
                 f"{fmt_s(m['untraced_wall_per_page_ns'], 1e-3, 'us', 1)} |")
    L.append("")
    return L


def md_notes(meta):
    """The notes given to scripts/bench."""
    L = []
    notes = meta.get("notes")
    if notes:
        L.append("## Notes")
        L.append("")
        L.append(notes.strip())
        L.append("")
    return L


def summary_md(env, ov, ls, md, co, meta, pf=None, fo=None, dv=None):
    parts = [md_header(env, meta, co), md_targets(ov, ls, co)]
    if pf:
        parts.append(md_profile_says(pf))
    if ov:
        parts.append(md_overhead(ov))
    if pf:
        parts.append(md_profile(pf))
    if dv:
        parts.append(md_driver(dv))
    if ls:
        parts.append(md_loss(ls))
    if md:
        parts.append(md_modes(md))
    if co and co.get("benchmarks"):
        parts.append(md_engine(co))
    if fo:
        parts.append(md_follow(fo))
    parts.append(md_notes(meta))
    return "\n".join(line for part in parts for line in part)

def check_smoke(path):
    problems = []
    if path.endswith(".json"):
        raw = json.load(open(path))
        names = {b.get("run_name", b["name"]).split("/")[0] + "/" + b.get("run_name", b["name"]).split("/")[1]
                 for b in raw.get("benchmarks", [])}
        for want in ("correlate/buffer_all", "correlate/window_1ms", "export/timeline_json",
                     "export/timeline_perfetto", "export/jsonl", "export/report_json"):
            if want not in names:
                problems.append(f"no {want} result")
    else:
        recs = read_jsonl(path)
        ov = [r for r in recs if r.get("bench") == "overhead"]
        for c in ("untraced", "kextrace", "bpftrace", "hooks"):
            rs = [r for r in ov if r["cfg"] == c]
            if not rs:
                problems.append(f"overhead: no {c} run")
            for r in rs:
                if r.get("exit", 0) != 0 or r["run"].get("status") != 0 or not r["run"].get("wall_ns"):
                    problems.append(f"overhead: {c} run failed: {json.dumps(r)}")
        # another driver's pages: every run followed the whole ring (N lives at least)
        dr = [r for r in recs if r.get("bench") == "driver"]
        for c in ("untraced", "kextrace", "kextrace_no_stacks", "kextrace_watch"):
            if not any(r["cfg"] == c for r in dr):
                problems.append(f"driver: no {c} run")
        for r in dr:
            if r.get("exit", 0) != 0 or r["run"].get("status") != 0 or not r["run"].get("wall_ns"):
                problems.append(f"driver: {r['cfg']} run failed: {json.dumps(r)}")
            elif r["cfg"] != "untraced" and (r.get("page_lives") or 0) < r["pages"]:
                problems.append(f"driver: {r['cfg']}: {r.get('page_lives')} page lives for a "
                                f"ring of {r['pages']} pages")
        ls = [r for r in recs if r.get("bench") == "loss"]
        if not ls:
            problems.append("loss: no runs")
        for r in ls:
            if not r.get("events"):
                problems.append(f"loss: {r['name']}: no events")
            a = r.get("ring_accounting")
            if a and a["produced"] != a["received"] + a["lost"]:
                problems.append(f"loss: {r['name']}: accounting not exact: {a}")
        pr = [r for r in recs if r.get("bench") == "profile" and r.get("cfg") != "untraced"]
        if not pr:
            problems.append("profile: no runs")
        for r in pr:
            b = r.get("bpf")
            if r.get("exit", 0) != 0 or not isinstance(b, dict) or not b.get("run_cnt"):
                problems.append(f"profile: {r['cfg']}: no BPF run statistics: {json.dumps(r)[:300]}")
        md = [r for r in recs if r.get("bench") == "modes" and not r.get("skipped")]
        if not md:
            problems.append("modes: no mode ran")
        for r in md:
            if not (isinstance(r.get("cost"), dict) and r["cost"].get("per_page_ns")):
                problems.append(f"modes: {r['mode']}: no cost: {r.get('cost')}")
    for p in problems:
        print("smoke:", p, file=sys.stderr)
    print(f"smoke: {path}: {'ok' if not problems else str(len(problems)) + ' problems'}")
    return 1 if problems else 0


def main(argv):
    if len(argv) >= 2 and argv[0] == "--check-smoke":
        return check_smoke(argv[1])
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    d = argv[0]
    notes_file = os.path.join(d, "notes.md")
    meta = {"host": os.uname().nodename, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "notes": open(notes_file).read() if os.path.exists(notes_file) else ""}
    env, ov, ls, md, co, pf, fo, dv = {}, {}, [], {}, {}, {}, {}, {}
    graw = os.path.join(d, "guest-raw.jsonl")
    if os.path.exists(graw):
        recs = read_jsonl(graw)
        env = next((r for r in recs if r.get("bench") == "env"), {})
        ov, ls, md, pf, fo = overhead(recs), loss(recs), modes(recs), profile(recs), follow(recs)
        dv = overhead(recs, "driver")
        json.dump({"follow": fo}, open(os.path.join(d, "follow.json"), "w"), indent=1)
        json.dump({"env": env, "profile": pf}, open(os.path.join(d, "profile.json"), "w"), indent=1)
        json.dump({"env": env, "overhead": ov, "driver": dv}, open(os.path.join(d, "overhead.json"), "w"), indent=1)
        json.dump({"env": env, "loss": ls}, open(os.path.join(d, "loss.json"), "w"), indent=1)
        json.dump({"env": env, "modes": md}, open(os.path.join(d, "modes.json"), "w"), indent=1)
    craw = os.path.join(d, "correlator-raw.json")
    if os.path.exists(craw):
        co = correlator(json.load(open(craw)))
        json.dump(co, open(os.path.join(d, "correlator.json"), "w"), indent=1)
    md_text = summary_md(env, ov, ls, md, co, meta, pf, fo, dv)
    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write(md_text + "\n")
    print(md_text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
