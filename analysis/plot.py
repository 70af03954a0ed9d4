#!/usr/bin/python3
"""plot.py: pictures of a kextrace run, from its --json report (and
optionally its --jsonl events).

  analysis/plot.py out/trace.json [--jsonl out/events.jsonl] [--out DIR] [--svg]

Writes, into DIR (default: the report's directory):
  <name>-swimlane.png   one row per page, its steps over time, coloured by kind;
                        the rig's phases shaded (with --jsonl: the traced
                        process's syscalls and unmap windows on a top row)
  <name>-counts.png     refcount and mapcount of every page over time: each
                        step's effect at the step (the report's *_after counts)
  <name>-physvirt.png   user address vs kex index (contiguous) and pfn vs index
                        (scattered)
and next to each picture <picture name>.data.json (drop-8-swimlane.data.json):
the plotted series, the image
size in pixels, and what was left out, so tests can check what was drawn.
<name> is the report's file name without .json. PNG by default; --svg writes
SVG instead. Uses Debian's matplotlib (Agg backend).
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kexreport  # noqa: E402

DPI = 100
MAX_LANES = 64       # swimlane / counts rows drawn; the rest is counted, not drawn
KIND_COLOURS = {
    "kmem_alloc": "#9e9e9e", "kex_alloc": "#1f77b4", "insert": "#2ca02c",
    "insert_ret": "#98df8a", "rmap_add": "#17becf", "do_set_pte": "#bcbd22",
    "pte_set": "#ff7f0e", "kex_insert": "#aec7e8", "user_fault": "#e377c2",
    "set_dirty": "#d62728", "rmap_remove": "#9467bd", "kex_free": "#8c564b",
    "page_free": "#000000", "page_free_batched": "#7f7f7f",
}
PHASE_COLOURS = {"mmap": "#c6dbef", "write": "#fdd0a2", "munmap": "#dadaeb"}
WINDOW_TYPES = ("sys_mmap", "sys_munmap", "sys_munmap_ret", "unmap_region",
                "unmap_region_ret", "exit_mmap", "exit_mmap_ret", "user_fault")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="kextrace --json report")
    ap.add_argument("--jsonl", help="kextrace --jsonl events of the same run")
    ap.add_argument("--out", help="output directory (default: the report's)")
    ap.add_argument("--name", help="file name prefix (default: the report's name)")
    ap.add_argument("--svg", action="store_true", help="write SVG instead of PNG")
    return ap.parse_args(argv)


def origin_ns(report):
    """Time zero of the pictures: the first rig phase, else the first event."""
    starts = [ph["start"] for ph in report["phases"]]
    return min(starts) if starts else report["trace"]["first_ts"]


def ms(ts, t0):
    return (ts - t0) / 1e6


def lane_label(p):
    idx = "?" if p["index"] is None else p["index"]
    return f"page {idx} pfn {p['pfn']:#x}"


def save(fig, path, data):
    """Saves fig at its exact pixel size and data (+ size) as path.data.json."""
    w, h = fig.get_size_inches()
    data["size_px"] = [int(round(w * DPI)), int(round(h * DPI))]
    data["image"] = os.path.basename(path)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    with open(os.path.splitext(path)[0] + ".data.json", "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    return path


def shade_phases(ax, report, t0, label=True):
    for ph in report["phases"]:
        end = ph["end"] or report["trace"]["last_ts"]
        ax.axvspan(ms(ph["start"], t0), ms(end, t0),
                   color=PHASE_COLOURS.get(ph["name"], "#eeeeee"), alpha=0.6, zorder=0,
                   label=f"phase {ph['name']}" if label else None)


def phase_series(report, t0):
    return [{"name": ph["name"], "tgid": ph["tgid"], "start_ms": ms(ph["start"], t0),
             "end_ms": ms(ph["end"] or report["trace"]["last_ts"], t0),
             "closed": ph["closed"]} for ph in report["phases"]]


def window_events(report, events):
    """Syscalls, unmap windows and faults of the traced processes (from --jsonl)."""
    tgids = set(report["trace"]["tgids"])
    return [e for e in events
            if e["type"] in WINDOW_TYPES and (not tgids or e["pid"] in tgids)]


def clusters(times, max_panels=3):
    """Splits sorted times (ms) at their largest gaps into at most max_panels
    [start, end] spans, so that bursts far apart (the mmap, the munmap) each
    get a readable panel."""
    times = sorted(times)
    if not times:
        return [(0.0, 1.0)]
    span = max(times[-1] - times[0], 1e-6)
    gaps = sorted(((times[i + 1] - times[i], i) for i in range(len(times) - 1)), reverse=True)
    cuts = sorted(i for g, i in gaps[:max_panels - 1] if g > 0.2 * span)
    spans, lo = [], 0
    for i in cuts + [len(times) - 1]:
        spans.append((times[lo], times[i]))
        lo = i + 1
    return spans


def panel_spans(report, pages, t0, max_panels=5):
    """One panel per rig phase, plus clusters of page steps outside every phase
    (an exit zap, frees after the rig ended)."""
    phases = sorted((ms(ph["start"], t0), ms(ph["end"] or report["trace"]["last_ts"], t0))
                    for ph in report["phases"])
    outside = [ms(s["ts"], t0) for p in pages for s in p["steps"]
               if not any(lo <= ms(s["ts"], t0) <= hi for lo, hi in phases)]
    spans = phases + (clusters(outside, 2) if outside or not phases else [])
    spans.sort()
    merged = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    while len(merged) > max_panels:  # join the two closest neighbours
        i = min(range(len(merged) - 1), key=lambda k: merged[k + 1][0] - merged[k][1])
        merged[i:i + 2] = [(merged[i][0], merged[i + 1][1])]
    return merged


def lane_sample(pages):
    """At most MAX_LANES pages, spread evenly over the whole run (every k-th
    page in index order, the last one included), and what the sample is."""
    if len(pages) <= MAX_LANES:
        return pages, f"all {len(pages)} pages"
    step = -(-len(pages) // MAX_LANES)  # ceil: never more than MAX_LANES lanes
    drawn = pages[::step]
    if drawn[-1] is not pages[-1]:
        drawn = drawn[:MAX_LANES - 1] + [pages[-1]]
    return drawn, f"a sample: every {step}th page in index order and the last, " \
        f"{len(drawn)} of {len(pages)}"


def swimlane(report, events, path):
    pages = kexreport.pages_by_index(report)
    drawn, sample = lane_sample(pages)
    t0 = origin_ns(report)
    extra = 1 if events is not None else 0
    rows = len(drawn) + extra
    spans = panel_spans(report, drawn, t0)
    fig, axes = plt.subplots(1, len(spans), figsize=(14, 2.2 + 0.32 * max(rows, 1)),
                             sharey=True, squeeze=False,
                             gridspec_kw={"width_ratios": [1] * len(spans)})
    axes = axes[0]
    series, win = [], []
    for row, p in enumerate(drawn):
        series.append({"life": p["life"], "index": p["index"], "pfn": p["pfn"],
                       "label": lane_label(p), "row": row + extra,
                       "steps": [{"kind": s["kind"], "t_ms": ms(s["ts"], t0), "ts": s["ts"]}
                                 for s in p["steps"]]})
    if events is not None:
        lo, hi = spans[0][0], spans[-1][1]
        margin = 0.05 * max(hi - lo, 1e-3)
        win = [{"type": e["type"], "t_ms": ms(e["ts"], t0), "ts": e["ts"]}
               for e in window_events(report, events)
               if lo - margin <= ms(e["ts"], t0) <= hi + margin]
    seen_kinds = set()
    for k, (ax, (lo, hi)) in enumerate(zip(axes, spans)):
        pad = max(0.08 * (hi - lo), 0.005)
        shade_phases(ax, report, t0, label=k == 0)
        for q in series:
            xs = [st["t_ms"] for st in q["steps"] if lo - pad <= st["t_ms"] <= hi + pad]
            if xs:
                ax.plot([min(xs), max(xs)], [q["row"]] * 2, color="#bbbbbb", linewidth=1,
                        zorder=2)
            for st in q["steps"]:
                if not lo - pad <= st["t_ms"] <= hi + pad:
                    continue
                first = st["kind"] not in seen_kinds
                seen_kinds.add(st["kind"])
                ax.plot([st["t_ms"]], [q["row"]], marker="o", linestyle="none", markersize=5,
                        color=KIND_COLOURS.get(st["kind"], "#333333"),
                        label=st["kind"] if first else None, zorder=3)
        for w in win:
            if lo - pad <= w["t_ms"] <= hi + pad:
                ax.plot([w["t_ms"]], [0], marker="|", markersize=12, linestyle="none",
                        color="#444444", zorder=3)
        if not any(lo - pad <= st["t_ms"] <= hi + pad for q in series for st in q["steps"]):
            ax.text(0.5, 0.5, "no kex page event\nin this span", transform=ax.transAxes,
                    ha="center", va="center", fontsize=8, color="#555555")
        ax.set_xlim(lo - pad, hi + pad)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("ms since the first rig phase", fontsize=8)
    labels = (["traced process: syscalls, unmap windows, faults"] if extra else []) + \
        [q["label"] for q in series]
    axes[0].set_yticks(range(rows))
    axes[0].set_yticklabels(labels, fontsize=7)
    axes[0].set_ylim(rows - 0.5, -0.5)
    title = f"kex pages over time: {report['run']['command_line']} on {report['run']['kernel_release']}"
    if len(pages) > len(drawn):
        title += f"\n({sample})"
    fig.suptitle(title, fontsize=9)
    handles, names = [], []
    for ax in axes:
        h, n = ax.get_legend_handles_labels()
        handles += h
        names += n
    fig.legend(handles, names, loc="upper right", fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.2, right=0.87, top=0.9, bottom=0.14, wspace=0.08)
    return save(fig, path, {"figure": "swimlane", "t0_ns": t0, "pages": series,
                            "pages_total": len(pages), "pages_drawn": len(drawn),
                            "sample": sample, "panels_ms": [list(sp) for sp in spans],
                            "phases": phase_series(report, t0), "windows": win})


def count_points(page, key, t0):
    """The count right after each step's own action (`<key>_after`, what the
    reference ledger books there: kex's put drops the refcount at the put),
    so a step plot changes at the step that changed it. A report without
    those fields (written before they existed) has only the readings, which
    entry probes take before their action: the drop shows one step late."""
    after = key + "_after"
    xs, ys = [], []
    for s in page["steps"]:
        v = s[after] if after in s else s[key]
        if v is not None:
            xs.append(ms(s["ts"], t0))
            ys.append(v)
    return xs, ys


def counts_source(report):
    steps = (s for p in report["pages"] for s in p["steps"])
    return "after" if all("refcount_after" in s for s in steps) else "reading"


def counts(report, path):
    pages = kexreport.pages_by_index(report)
    drawn, sample = lane_sample(pages)
    t0 = origin_ns(report)
    fig, axes = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    series = []
    n = max(len(drawn), 1)
    for i, p in enumerate(drawn):
        entry = {"life": p["life"], "index": p["index"], "pfn": p["pfn"], "label": lane_label(p)}
        for ax, key in zip(axes, ("refcount", "mapcount")):
            xs, ys = count_points(p, key, t0)
            # a small vertical offset per page keeps overlapping lines apart
            off = (i - (n - 1) / 2) * 0.3 / n
            ax.step(xs, [y + off for y in ys], where="post", linewidth=1,
                    label=entry["label"] if key == "refcount" and i < 16 else None)
            entry[key] = {"t_ms": xs, "value": ys}
        series.append(entry)
    for ax, key in zip(axes, ("refcount", "mapcount")):
        shade_phases(ax, report, t0, label=False)
        ax.set_ylabel(f"page {key}")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(axis="y", alpha=0.3)
    source = counts_source(report)
    axes[0].set_title("refcount (page->_refcount) and mapcount (page_mapcount()) after every "
                      "traced step's action (a zap's put drawn at the zap)" if source == "after"
                      else "refcount and mapcount as read at every traced step (an entry "
                      "probe reads before its action: old report, drops drawn one step late)",
                      fontsize=9)
    axes[1].set_xlabel("ms since the first rig phase (lines offset slightly per page)")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.08, right=0.84, top=0.94, bottom=0.09)
    if len(pages) > len(drawn):
        fig.suptitle(sample, fontsize=8)
    return save(fig, path, {"figure": "counts", "t0_ns": t0, "source": source, "pages": series,
                            "pages_total": len(pages), "pages_drawn": len(drawn),
                            "sample": sample,
                            "phases": phase_series(report, t0)})


def physvirt(report, path):
    pages = [p for p in kexreport.pages_by_index(report) if p["index"] is not None]
    idx = [p["index"] for p in pages]
    uaddr = [kexreport.hexint(p["uaddr"]) for p in pages]
    pfn = [p["pfn"] for p in pages]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    mapped = [(i, u) for i, u in zip(idx, uaddr) if u is not None]
    base = min((u for _, u in mapped), default=0)
    left.plot([i for i, _ in mapped], [(u - base) // 4096 for _, u in mapped], marker="o",
              markersize=4, color="#1f77b4")
    left.set_xlabel("kex page index")
    left.set_ylabel(f"user address - {base:#x}  (pages of 4 KiB)")
    left.set_title("virtual: one contiguous VMA", fontsize=9)
    right.scatter(idx, pfn, s=16, color="#d62728")
    right.set_xlabel("kex page index")
    right.set_ylabel("page frame number (pfn)")
    right.set_title("physical: pages where alloc_page found them", fontsize=9)
    right.ticklabel_format(axis="y", style="plain", useOffset=False)
    right.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{int(v):#x}"))
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{len(pages)} kex pages: contiguous user addresses, scattered pfns", fontsize=10)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.87, bottom=0.11, wspace=0.3)
    return save(fig, path, {"figure": "physvirt", "index": idx, "pfn": pfn,
                            "pfn_hex": [f"{v:#x}" for v in pfn],
                            "uaddr": [None if u is None else f"{u:#x}" for u in uaddr],
                            "uaddr_base": f"{base:#x}"})


def plot_all(report, events, out_dir, name, ext):
    os.makedirs(out_dir, exist_ok=True)
    path = lambda what: os.path.join(out_dir, f"{name}-{what}.{ext}")  # noqa: E731
    return [swimlane(report, events, path("swimlane")), counts(report, path("counts")),
            physvirt(report, path("physvirt"))]


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        report = kexreport.load_report(a.report)
        events = kexreport.load_events(a.jsonl)[1] if a.jsonl else None
    except kexreport.InputError as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return 1
    if not report["pages"]:
        print(f"plot.py: {a.report}: the report has no page lives to plot", file=sys.stderr)
        return 1
    out_dir = a.out or os.path.dirname(os.path.abspath(a.report))
    name = a.name or os.path.splitext(os.path.basename(a.report))[0]
    for p in plot_all(report, events, out_dir, name, "svg" if a.svg else "png"):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
