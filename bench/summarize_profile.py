"""bench/summarize_profile.py: bench/summarize.py's profile figures (section
1b): the kernel's BPF run statistics of every kextrace program, per
kextrace configuration (the default, --stacks all, sites, none), beside an untraced run."""

from bench_stats import fmt_s, med, spread

# the kextrace configurations of the guest runs, as the summary names them
# (the default: --stacks all before 2026-12-05, sites since)
KEXTRACE_CFG = {"kextrace": "default", "kextrace_stacks_all": "all",
                "kextrace_stacks_sites": "sites", "kextrace_no_stacks": "none",
                "kextrace_watch": "--leaks --watch"}


def profile(records):
    rs = [r for r in records if r.get("bench") == "profile"]
    if not rs:
        return {}
    by = {}
    for r in rs:
        by.setdefault(r["cfg"], []).append(r)
    unt = spread([r["run"].get("wall_ns") for r in by.get("untraced", []) if r.get("run")])
    res = {"pages": rs[0]["pages"], "untraced_wall_ns": unt, "configs": {}}
    for cfg, runs in by.items():
        if cfg == "untraced":
            continue
        ok = [r for r in runs if r.get("run") and isinstance(r.get("bpf"), dict)]
        d = {"repetitions": len(runs), "failed_runs": len(runs) - len(ok)}
        d["wall_ns"] = spread([r["run"].get("wall_ns") for r in ok])
        d["bpf_run_time_ns"] = spread([r["bpf"]["run_time_ns"] for r in ok])
        d["bpf_run_cnt"] = spread([r["bpf"]["run_cnt"] for r in ok])
        d["events"] = med([r.get("events") for r in ok])
        d["lost"] = max([r.get("lost") or 0 for r in ok], default=None)
        if unt and d["wall_ns"]:
            d["over_untraced"] = d["wall_ns"]["median"] / unt["median"]
            d["overhead_ns"] = d["wall_ns"]["median"] - unt["median"]
        progs = {}
        for r in ok:
            for name, p in r["bpf"]["programs"].items():
                q = progs.setdefault(name, {"run_cnt": [], "run_time_ns": []})
                q["run_cnt"].append(p["run_cnt"])
                q["run_time_ns"].append(p["run_time_ns"])
        d["programs"] = {n: {"run_cnt": med(q["run_cnt"]), "run_time_ns": med(q["run_time_ns"]),
                             "ns_per_run": med([t / c for t, c in zip(q["run_time_ns"], q["run_cnt"]) if c])}
                         for n, q in progs.items()}
        res["configs"][cfg] = d
    return res


def md_profile(pf):
    """Section 1b: where kextrace's overhead goes, per BPF program."""
    L = []
    L.append("## 1b. Where kextrace's overhead goes (software-emulated guest)")
    L.append("")
    L.append(f"`mmap_test --no-wait` at {pf['pages']} pages, once untraced and under kextrace with "
             "the kernel's BPF run statistics on (`kernel.bpf_stats_enabled`: run count and time "
             "spent inside each kextrace program, read with bpftool while it runs), at the "
             "default settings (`--stacks sites` since 2026-12-05, `all` before) and by `--stacks`: "
             "all, none (`--no-stacks`). The statistics themselves cost two clock reads "
             "per program run, so these runs are not the overhead figures of section 1. "
             f"Untraced: {fmt_s(pf.get('untraced_wall_ns'))}.")
    L.append("")
    L.append("| kextrace | workload | traced/untraced | overhead | time inside BPF programs | "
             "program runs | mean per run | events | lost |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for cfg, d in sorted(pf["configs"].items()):
        bt, bc = d.get("bpf_run_time_ns"), d.get("bpf_run_cnt")
        per = f"{bt['median'] / bc['median'] / 1e3:.1f} us" if bt and bc and bc["median"] else "n/a"
        ovh = f"{d['overhead_ns'] * 1e-9:.3f} s" if d.get("overhead_ns") is not None else "n/a"
        share = (f" ({bt['median'] / d['overhead_ns'] * 100:.0f}% of the overhead)"
                 if bt and d.get("overhead_ns") else "")
        L.append(f"| {KEXTRACE_CFG.get(cfg, cfg)} | "
                 f"{fmt_s(d.get('wall_ns'))} | {d.get('over_untraced', 0):.2f} | {ovh} | "
                 f"{fmt_s(bt)}{share} | {int(bc['median']) if bc else 'n/a'} | {per} | "
                 f"{d.get('events')} | {d.get('lost')} |")
    L.append("")
    L.extend(md_floor(pf))
    cfgs = sorted(pf["configs"])
    names = sorted({n for c in cfgs for n in pf["configs"][c]["programs"]},
                   key=lambda n: -max(pf["configs"][c]["programs"].get(n, {}).get("run_time_ns") or 0
                                      for c in cfgs))
    L.append("Per program (median over repetitions; runs include calls the program filters out, "
             "e.g. every process's file rmaps):")
    L.append("")
    L.append("| program | " + " | ".join(f"{c}: runs, time, per run" for c in cfgs) + " |")
    L.append("|---|" + "---|" * len(cfgs))
    for n in names:
        cells = []
        for c in cfgs:
            p = pf["configs"][c]["programs"].get(n)
            if not p or not p["run_cnt"]:
                cells.append("-")
                continue
            cells.append(f"{int(p['run_cnt'])}, {p['run_time_ns'] / 1e6:.1f} ms, "
                         f"{(p['ns_per_run'] or 0) / 1e3:.1f} us")
        if any(x != "-" for x in cells):
            L.append(f"| {n} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def floor_of(pf, d):
    """Program runs per page, the cheapest run (a program that only filters),
    and the traced/untraced ratio those runs alone would give: the floor the
    emulated guest sets whatever the programs do."""
    unt, bc = pf.get("untraced_wall_ns"), d.get("bpf_run_cnt")
    per = [p["ns_per_run"] for p in d["programs"].values()
           if p.get("ns_per_run") and (p.get("run_cnt") or 0) >= pf["pages"]]
    if not unt or not bc or not per:
        return None
    runs = bc["median"] / pf["pages"]
    cheapest = min(per)
    return {"runs_per_page": runs, "cheapest_ns": cheapest,
            "floor_ratio": 1 + runs * cheapest * pf["pages"] / unt["median"],
            "untraced_ns_per_page": unt["median"] / pf["pages"]}


def md_floor(pf):
    """What the program runs alone cost under emulation (the 1.3 and 2.0 targets' limit)."""
    L = []
    rows = [(cfg, floor_of(pf, d)) for cfg, d in sorted(pf["configs"].items())]
    rows = [(c, f) for c, f in rows if f]
    if not rows:
        return L
    L.append("The floor the emulated guest sets: every tracked page passes through the programs "
             "below (the steps a page life needs), and a program run costs the cheapest figure "
             "in the per-program table even when it only filters (a map lookup and a return; "
             "the kprobe or trampoline entry around it is not even counted). Those runs alone, "
             "at that cheapest cost, against the untraced "
             f"{rows[0][1]['untraced_ns_per_page'] / 1e3:.1f} us a page:")
    L.append("")
    L.append("| kextrace | program runs a page | cheapest run | floor traced/untraced |")
    L.append("|---|---|---|---|")
    for cfg, f in rows:
        L.append(f"| {KEXTRACE_CFG.get(cfg, cfg)} | {f['runs_per_page']:.1f} | "
                 f"{f['cheapest_ns'] / 1e3:.2f} us | {f['floor_ratio']:.2f} |")
    L.append("")
    return L


def md_profile_says(pf):
    """Under the targets: what section 1b's statistics say of the missed
    overhead targets, per configuration: the programs' share of the
    overhead, the five costliest programs' share of the programs' time, and
    what --no-stacks takes off it."""
    cfgs = pf.get("configs") or {}
    if not cfgs:
        return []
    L = ["What the profile shows (section 1b, BPF run statistics on; its ratios are "
         "these runs', not section 1's):", ""]
    none_t = (cfgs.get("kextrace_no_stacks") or {}).get("bpf_run_time_ns")
    for cfg in ("kextrace", "kextrace_watch"):
        d = cfgs.get(cfg)
        bt = d and d.get("bpf_run_time_ns")
        if not bt or not bt.get("median") or not d.get("overhead_ns") or not d.get("programs"):
            continue
        progs = sorted(d["programs"].items(), key=lambda kv: -(kv[1]["run_time_ns"] or 0))
        top = progs[:5]
        top_t = sum(p["run_time_ns"] or 0 for _, p in top)
        line = (f"- {KEXTRACE_CFG[cfg]}: {d['over_untraced']:.2f} traced/untraced; "
                f"{bt['median'] / d['overhead_ns'] * 100:.0f}% of the overhead is time inside "
                f"kextrace's programs ({len(progs)} loaded); the five costliest take "
                f"{top_t / bt['median'] * 100:.0f}% of it (per run): "
                + ", ".join(f"{n} {(p['ns_per_run'] or 0) / 1e3:.1f} us" for n, p in top))
        if cfg == "kextrace" and none_t and none_t.get("median") is not None:
            line += (f"; without stacks (`--no-stacks`) the programs take "
                     f"{none_t['median'] / bt['median'] * 100:.0f}% of this time")
        L.append(line + ".")
    if len(L) == 2:
        return []
    L.append("- The rest of the overhead: the hooks' own entry and exit, which these statistics "
             "do not count (the floor row above measures it), the statistics' own clock reads, "
             "and kextrace's user-space side sharing the guest's CPUs.")
    L.append("")
    return L
