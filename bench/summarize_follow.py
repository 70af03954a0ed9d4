"""bench/summarize_follow.py: bench/summarize.py's --follow figures: per guest
kernel, the rig untraced, under the curated plan and under --follow (ratios
per repetition), attach and detach times, program runs."""

from bench_stats import fmt_r, fmt_s, med, spread


def follow(records):
    """Per guest kernel (the env record before them): untraced / curated /
    --follow rig times, their ratios per repetition, attach and detach times."""
    res, kernel = {}, None
    by = {}
    for r in records:
        if r.get("bench") == "env":
            kernel = r.get("kernel")
        elif r.get("bench") == "follow":
            by.setdefault(kernel, {}).setdefault(r["rep"], {})[r["cfg"]] = r
    for k, reps in by.items():
        ratios = {"kextrace": [], "follow": [], "follow_over_curated": []}
        f = [v["follow"] for v in reps.values() if isinstance(v.get("follow", {}).get("follow"), dict)]
        for v in reps.values():
            u = v.get("untraced", {}).get("run", {}).get("wall_ns")
            c = v.get("kextrace", {}).get("run", {}).get("wall_ns")
            fo = v.get("follow", {}).get("run", {}).get("wall_ns")
            if u and c:
                ratios["kextrace"].append(c / u)
            if u and fo:
                ratios["follow"].append(fo / u)
            if c and fo:
                ratios["follow_over_curated"].append(fo / c)
        ff = [r["follow"] for r in f]
        pages = next(iter(reps.values())).get("untraced", {}).get("pages")
        res[k] = {
            "pages": pages, "repetitions": len(reps),
            "mechanism": ff[0]["mechanism"] if ff else None,
            "functions": med([x["functions"] for x in ff]),
            "attach_us": spread([x["attach_us"] for x in ff]),
            "detach_us": spread([x["detach_us"] for x in ff]),
            "prog_runs": spread([x["prog_runs"] for x in ff]),
            "matched": spread([x["matched"] for x in ff]),
            "calls": spread([x["calls"] for x in ff]),
            "ratios": {n: spread(v) for n, v in ratios.items()},
            "lost": max([r.get("lost") or 0 for r in f], default=None),
            "failed_runs": sum(1 for v in reps.values() for r in v.values()
                               if r.get("exit", 0) != 0 or r.get("run", {}).get("status", 0) != 0),
        }
    return res


def md_follow(fo):
    """Section 5: --follow beside the curated run."""
    L = ["## 5. `--follow`: every function with a page argument (software-emulated guest)", "",
         "Per repetition, back to back: the rig untraced, under kextrace (the curated plan), "
         "under `kextrace --follow` (every function of the kernel's BTF that takes a page, a "
         "folio, a folio_batch or a page array). Program runs are every call of a followed "
         "function, system-wide, while attached; `matched`, those on a tracked page.", "",
         "| kernel | pages | reps | functions (mechanism) | attach | detach | program runs | "
         "matched | kextrace/untraced | follow/untraced | follow/kextrace | lost | failed |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, d in fo.items():
        L.append(f"| `{k}` | {d['pages']} | {d['repetitions']} | {d['functions']} ({d['mechanism']}) | "
                 f"{fmt_s(d['attach_us'], 1e-3, 'ms', 0)} | {fmt_s(d['detach_us'], 1e-3, 'ms', 0)} | "
                 f"{_fmt_n(d['prog_runs'])} | {_fmt_n(d['matched'])} | "
                 f"{fmt_r(d['ratios']['kextrace'])} | {fmt_r(d['ratios']['follow'])} | "
                 f"{fmt_r(d['ratios']['follow_over_curated'])} | {d['lost']} | {d['failed_runs']} |")
    L.append("")
    return L


def _fmt_n(s):
    if not isinstance(s, dict) or s.get("median") is None:
        return "-"
    return f"{s['median']:.0f} ({s['min']:.0f}..{s['max']:.0f})"
