#!/usr/bin/python3
"""study.py: the whole study (every mapping mode on every kernel, and a real
driver beside kex) from the runs scripts/study traced.

  analysis/study.py DIR [--out DIR] [--wall-s SECONDS]

DIR holds one folder per guest kernel (scripts/guest/study wrote it: a
kernel.txt and insert, batch, fault, fault-read, pfn, af_packet and
follow .json reports). Writes into --out (default DIR) study.md, study.html (the same,
self-contained: pictures inline) and the pictures: per mode the counts plot
of plot.py (first kernel) and pte-appearance.png (when each page's PTE
appeared: at mmap or at first touch). Every statement is computed from the
reports; where a run lacks an event, the text says so.
"""

import argparse
import base64
import html
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kexreport as kr  # noqa: E402
from kexreport import cell, table  # noqa: E402,F401
from study_follow import FOLLOW_RUN, section_follow  # noqa: E402
import plot  # noqa: E402

MODES = [  # run, column title, what kex does
    ("insert", "insert", "`vm_insert_page` per page, in its mmap"),
    ("batch", "batch", "one `vm_insert_pages` for all pages, in its mmap"),
    ("fault", "fault, write first", "nothing at mmap; hands out `vmf->page` at each fault"),
    ("fault-read", "fault, read first", "the same; the rig reads every page before writing"),
    ("pfn", "pfn", "`remap_pfn_range` per page, in its mmap (a pfn map)"),
]
DRIVER_RUN = "af_packet"
PF_WRITE, PF_USER = 0x2, 0x4
# step kind -> the probe report's step whose resolved name ran it
STEP_PROBE = {
    "kmem_alloc": "alloc", "insert": "insert", "insert_ret": "insert", "rmap_add": "rmap add",
    "pte_set": "pte set", "do_set_pte": "fault install", "rmap_remove": "zap (rmap remove)",
    "set_dirty": "dirty at zap", "page_free": "free", "page_free_batched": "free batched",
    "user_fault": "user faults", "pte_lookup": "pfn PTE",
}
KERNEL_STEPS = [  # probe report step, what it is
    ("insert", "the insert (PTE written, reference taken)"),
    ("batch insert", "the batch insert"),
    ("rmap add", "rmap add (mapcount +1)"),
    ("pte set", "where the PTE value is read"),
    ("fault install", "the fault path's PTE install"),
    ("pfn map", "the pfn map"),
    ("pfn PTE", "a pfn map's PTE, given to the page lookup at the zap"),
    ("zap (rmap remove)", "zap: rmap remove"),
    ("dirty at zap", "zap: dirty bit to the page"),
    ("unmap (munmap)", "munmap's unmap"),
    ("exit unmap", "exit's unmap"),
]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="the runs: one folder per kernel (scripts/guest/study)")
    ap.add_argument("--out", help="output directory (default: DIR)")
    ap.add_argument("--wall-s", type=float, help="the study's wall time, said in the report")
    return ap.parse_args(argv)


def load_runs(top):
    """{kernel folder: {"release": uname -r, run: report}}, kernels in version order."""
    kernels = {}
    for name in os.listdir(top):
        d = os.path.join(top, name)
        if not os.path.isfile(os.path.join(d, "kernel.txt")):
            continue
        with open(os.path.join(d, "kernel.txt")) as f:
            runs = {"release": f.read().strip()}
        for run in [m[0] for m in MODES] + [DRIVER_RUN, FOLLOW_RUN]:
            path = os.path.join(d, run + ".json")
            if os.path.exists(path):
                runs[run] = kr.load_report(path)
        kernels[name] = runs
    if not kernels:
        raise kr.InputError(f"{top}: no kernel folder with a kernel.txt")
    version = lambda runs: [int(x) for x in re.findall(r"\d+", runs["release"])[:3]]  # noqa: E731
    return dict(sorted(kernels.items(), key=lambda kv: version(kv[1])))


# --- facts of one run ------------------------------------------------------------

KEX_EVENTS = {"kex_alloc": "kex:kex_page_alloc", "kex_insert": "kex:kex_page_insert",
              "kex_free": "kex:kex_page_free"}


def fn(r, kind):
    """The function (or event) that ran a step kind in this run."""
    if kind in KEX_EVENTS:
        return KEX_EVENTS[kind]
    p = kr.probe(r, STEP_PROBE.get(kind, ""))
    if not p or not p["attached"]:
        return f"({kind}: no probe)"
    return p["resolved"].replace(" (return)", "") + (" (return)" if kind == "insert_ret" else "")


def step_fn(r, s):
    """fn() of one step: a PTE read at a return names the function returning."""
    if s["kind"] == "pte_set":
        via = "insert" if "via_insert_ret" in s.get("flags", []) else "do_set_pte"
        return fn(r, via) + " (return)"
    return fn(r, s["kind"])


def path_of(r, page):
    """The page's steps in order as `function` names, repeats folded."""
    out = []
    for s in page["steps"]:
        name = step_fn(r, s)
        if s["kind"] == "pte_set" and out and out[-1][0] == name:
            continue  # the PTE read at the return already listed
        if not out or out[-1][0] != name:
            out.append([name, 1])
        else:
            out[-1][1] += 1
    return " → ".join(f"`{n}`" + (f" ×{c}" if c > 1 else "") for n, c in out)


def same(pages, f):
    """'value (8/8 pages)' when all agree, else the spread."""
    vals = [f(p) for p in pages]
    distinct = sorted({str(v) for v in vals})
    if len(distinct) == 1:
        return f"{distinct[0]} ({len(vals)}/{len(vals)} pages)"
    return "; ".join(f"{v} ({sum(1 for x in vals if str(x) == v)})" for v in distinct)


def chain_of(frames, n):
    """`a` ← `b` ← ..., the symbol names without offsets, callee first."""
    names = [f.split("+")[0] for f in frames[:n]]
    return " ← ".join(f"`{x}`" for x in names) + (" ← …" if len(frames) > n else "")


def counts_story(page, key):
    """'1 → 2 → 1 → 0' of the *_after counts, with the step that changed it."""
    out, last = [], None
    for s in page["steps"]:
        v = s.get(key + "_after")
        if v is None or v == last:
            continue
        out.append(f"{v} ({s['kind']})")
        last = v
    return " → ".join(out) if out else "not read"


def pte_install(page):
    return kr.first_step(page, "pte_set")


def mmap_ts(r, page):
    m = r["mappings"][page["mapping"]] if page["mapping"] is not None else None
    return m["ts"] if m else None


def pte_when(r, page):
    st = pte_install(page)
    if st is None:
        if page.get("remap_pfn_ts"):
            seen = page["pte"] and page["pte"]["source"] == "pte_lookup"
            return "at mmap (remap_pfn_range" + (
                "; its value read where the zap gave it to vm_normal_page)" if seen
                else "; the PTE value is not read)")
        return "no PTE event"
    write = kr.phase(r, "write")
    t0 = mmap_ts(r, page)
    if write and st["ts"] >= write["start"]:
        return "at first touch"
    if kr.first_step(page, "user_fault") and kr.first_step(page, "do_set_pte"):
        return "at first touch"
    return "at mmap" if t0 is not None else "before the write"


def first_write(page):
    fw = page["first_write"]
    if fw["kind"] == "fault":
        ec = fw["error_code"] or 0
        what = "write" if ec & PF_WRITE else "read"
        return f"faulted ({what} fault, error code {ec:#x})"
    if fw["kind"] == "no_fault":
        return "no fault"
    return f"not seen ({fw['kind']})"


def first_fault(page):
    f = kr.first_step(page, "user_fault")
    if not f:
        return "none"
    ec = f["value"] if isinstance(f["value"], int) else int(str(f["value"]), 0)
    return f"{'write' if ec & PF_WRITE else 'read'} (error code {ec:#x})"


def dirty_source(page):
    pte = page["pte"]
    if pte is None:
        return "no PTE read (pfn map)"
    if pte["source"] == "pte_lookup":  # a pfn map's: read at the zap only
        return ("the MMU: dirty at the zap, no fault" if pte["dirty"]
                and page["first_write"]["kind"] == "no_fault" else
                "dirty at the zap" if pte["dirty"] else "never dirty")
    if pte["dirty"]:
        return "the fault path: the PTE was installed dirty"
    if page["zap"]["dirty"]:
        return "the MMU: installed clean, dirty at the zap"
    return "never dirty"


def free_how(r, page):
    free = page["free"]
    if free["ts"] is None:
        return "not freed in the trace"
    where = "batched (TLB gather at the unmap)" if free["batched"] else "single"
    who = {"at-close": "kex's put at close", "after-insert": "the zap's put"}.get(
        page.get("kex_free_reason"), "the last put")
    m = r["mappings"][page["mapping"]] if page["mapping"] is not None else None
    when = ""
    if m and m.get("close_ts") and free["ts"] >= m["close_ts"]:
        when = ", after the VMA closed"
    return f"{who}, {where}{when}"


def mode_calls(r):
    m = r["mappings"][0] if r["mappings"] else None
    if not m:
        return "no mapping seen"
    n = m["pages"]
    inserts = sum(1 for p in r["pages"] if kr.first_step(p, "insert"))
    if m["mode"] == "batch":
        return f"{m['vm_insert_pages']} `vm_insert_pages` call for {n} pages ({inserts} inserts)"
    if m["mode"] == "pfn":
        return f"{m['remap_pfn_calls']} `remap_pfn_range` calls for {n} pages"
    if m["mode"] == "fault":
        return f"{m['faults']} faults for {n} pages"
    return f"{inserts} `vm_insert_page` inserts for {n} pages"


# --- sections --------------------------------------------------------------------

def header(kernels, wall):
    runs = sum(1 for k in kernels.values() for r in k if r != "release")
    lost = sum(r["losses"]["total"] for k in kernels.values() for n, r in k.items()
               if n != "release")
    rel = ", ".join(f"`{k['release']}`" for k in kernels.values())
    out = ["# The kex study: every mapping mode, every kernel, and a real driver", "",
           f"{runs} traced runs on {len(kernels)} guest kernels ({rel}), "
           f"{lost} events lost in all."
           + (f" `scripts/study` took {wall:.0f} s." if wall else ""),
           "",
           "Every value below is read from those runs' `--json` reports (listed at the "
           "end); where a run lacks an event, the text says so. Background from the "
           "kernel source, not traced, is marked *(source)*.", ""]
    return out


def section_modes(k):
    cols = [m for m in MODES if m[0] in k]
    out = [f"## 1. The mapping modes side by side (kernel `{k['release']}`)", ""]
    if not cols:
        return out + ["No mode run on this kernel.", ""]
    rows = []

    def row(title, f):
        rows.append([title] + [f(k[m[0]]) for m in cols])

    first = lambda r: kr.pages_by_index(r)[0]  # noqa: E731
    row("kex maps with", lambda r: next(m[2] for m in MODES if k.get(m[0]) is r))
    row("driver calls", mode_calls)
    row("functions, in order (page 0)", lambda r: path_of(r, first(r)))
    row("refcount after each step (page 0)", lambda r: counts_story(first(r), "refcount"))
    row("refcount trail (all pages)", lambda r: same(r["pages"], lambda p: "→".join(
        map(str, p["refcount_trail"]))))
    row("mapcount after each step (page 0)", lambda r: counts_story(first(r), "mapcount"))
    row("the first fault on the page", lambda r: same(r["pages"], first_fault))
    row("PTE appeared", lambda r: same(r["pages"], lambda p: pte_when(r, p)))
    row("PTE at install (page 0)", lambda r: pte_text(first(r)))
    row("PTE bits at install", lambda r: same(r["pages"], lambda p: (
        p["pte"]["flags"] + (" at the zap" if p["pte"]["source"] == "pte_lookup" else ""))
        if p["pte"] else "not read"))
    row("first write", lambda r: same(r["pages"], first_write))
    row("Dirty came from", lambda r: same(r["pages"], dirty_source))
    row("rmap (mapcount)", lambda r: same(r["pages"], lambda p: f"max {p['max_mapcount']}"))
    row("freed by", lambda r: same(r["pages"], lambda p: free_how(r, p)))
    out += table([""] + [f"{m[1]}" for m in cols], rows) + [""]
    out += seed_fault_text(k) + pfn_text(k) + batch_text(k)
    return out


def seed_fault_text(k):
    out = ["### The seed's `do_set_pte`: \"if it is a write fault, it sets the dirty bit "
           "and the write permission\"", ""]
    w, rd = k.get("fault"), k.get("fault-read")
    if not w:
        return out + ["No fault-mode run on this kernel: nothing to show.", ""]
    n = len(w["pages"])
    dirty_rw = [p for p in w["pages"] if p["pte"] and p["pte"]["dirty"] and p["pte"]["rw"]]
    wf = [p for p in w["pages"] if p["first_write"]["kind"] == "fault"
          and (p["first_write"]["error_code"] or 0) & PF_WRITE]
    inst = fn(w, "do_set_pte")
    out.append(f"**Write first:** {len(wf)}/{n} pages took a write fault on their first "
               f"write, and `{inst}` installed {len(dirty_rw)}/{n} PTEs already dirty and "
               f"writable (page 0: `{kr.pages_by_index(w)[0]['pte']['value']}`, "
               f"{kr.pages_by_index(w)[0]['pte']['flags']}). The seed is right for a write "
               "fault.")
    if rd:
        m = len(rd["pages"])
        clean = [p for p in rd["pages"] if p["pte"] and not p["pte"]["dirty"]]
        clean_rw = [p for p in clean if p["pte"]["rw"]]
        nofault = [p for p in rd["pages"] if p["first_write"]["kind"] == "no_fault"]
        zdirty = [p for p in rd["pages"] if p["zap"]["dirty"]]
        p0 = kr.pages_by_index(rd)[0]
        out.append("")
        out.append(f"**Read first:** the read faults installed {len(clean)}/{m} clean PTEs "
                   f"(page 0: `{p0['pte']['value']}`, {p0['pte']['flags']}), "
                   f"{len(clean_rw)}/{m} of them already writable; the later write took "
                   f"no fault on {len(nofault)}/{m} pages, and {len(zdirty)}/{m} PTEs were "
                   "dirty at the zap: the MMU set D on the write. Write permission did not "
                   "wait for a write fault: kex's mapping is shared and has no "
                   "`page_mkwrite`, so its `vm_page_prot` is writable from the start "
                   "*(source: `vma_wants_writenotify`)*; only Dirty waits for the write, "
                   "and the hardware sets it.")
    else:
        out.append("No read-first run on this kernel.")
    return out + [""]


def pte_text(page):
    pte = page["pte"]
    if not pte:
        return "not read: no event carries a pfn map's PTE"
    at = " (at the zap, given to `vm_normal_page`)" if pte["source"] == "pte_lookup" else ""
    return f"`{pte['value']}` {pte['flags']}{at}"


def pfn_text(k):
    r = k.get("pfn")
    if not r:
        return []
    n = len(r["pages"])
    no_rmap = [p for p in r["pages"] if not kr.steps(p, "rmap_add")]
    trail = same(r["pages"], lambda p: "→".join(map(str, p["refcount_trail"])))
    looked = [p for p in r["pages"] if p["pte"] and p["pte"]["source"] == "pte_lookup"]
    special = [p for p in looked if p["pte"]["special"]]
    if looked:
        pte = (f"{len(special)}/{n} pages' PTEs were special (bit 9, `_PAGE_SPECIAL`: "
               f"{same(looked, lambda p: p['pte']['flags'])}) when the munmap's zap gave "
               f"them to `{fn(r, 'pte_lookup')}`, which returns no page "
               "for a special PTE: nothing after it on the zap path saw the page. "
               "`remap_pfn_range` wrote them at mmap in inline helpers (not read there).")
    else:
        pte = ("kextrace read no PTE of this pfn map (no `pte_lookup` event in the run), so "
               "its special bit is not shown here; `remap_pfn_range` writes `pte_mkspecial` "
               "PTEs in a `VM_PFNMAP | VM_IO` VMA *(source)*.")
    return ["### pfn: special PTEs, no rmap, no reference", "",
            f"{len(no_rmap)}/{n} pages had no rmap add and no rmap remove; their refcount "
            f"trail is {trail}: only kex's own reference, dropped at close; the mapping "
            f"took none ({mode_calls(r)}). The zap put nothing. {pte}", ""]


def batch_text(k):
    r = k.get("batch")
    if not r or not r["mappings"]:
        return []
    m = r["mappings"][0]
    return ["### batch: fewer calls than pages", "",
            f"{m['vm_insert_pages']} `vm_insert_pages` call mapped {m['mapped']} pages; each "
            f"page still went through `{fn(r, 'insert')}` once "
            f"({sum(1 for p in r['pages'] if kr.first_step(p, 'insert'))} inserts).", ""]


def section_kernels(kernels):
    names = list(kernels)
    out = ["## 2. The same scenario on every kernel", "",
           "The function each step ran on, per kernel (from the probe report of each "
           "kernel's runs):", ""]
    rows = []
    for step, what in KERNEL_STEPS:
        cells = []
        for n in names:
            got = set()
            for run, r in kernels[n].items():
                if run == "release":
                    continue
                p = kr.probe(r, step)
                if p and p["attached"]:
                    got.add(p["resolved"])
            cells.append(", ".join(f"`{g}`" for g in sorted(got)) or "not attached")
        rows.append([what] + cells)
    out += table(["step"] + [f"`{kernels[n]['release']}`" for n in names], rows) + [""]
    out += ["What stayed the same:", ""]
    rows = []
    for run, title, _ in MODES:
        cells = []
        for n in names:
            r = kernels[n].get(run)
            cells.append("no run" if not r else same(r["pages"], lambda p: "→".join(
                map(str, p["refcount_trail"])) + ", " + dirty_source(p)))
        rows.append([title] + cells)
    out += table(["mode: refcount trail, Dirty"] + [f"`{kernels[n]['release']}`" for n in names],
                 rows) + [""]
    return out


def section_driver(kernels):
    out = ["## 3. A real driver beside kex: an AF_PACKET ring", "",
           "`python3 tests/guest/ring.py rx 2 8`: a TPACKET_V2 RX ring of 8 one-page "
           "blocks, mmapped, written, unmapped, closed; traced with no kex loaded.", ""]
    rows = []
    for n, k in kernels.items():
        r, kex = k.get(DRIVER_RUN), k.get("insert")
        if not r or not r["pages"]:
            rows.append([f"`{k['release']}`", "no run or no page seen", "", "", "", ""])
            continue
        m = r["mappings"][0]
        o = m.get("owner") or {}
        mm = m["ts"]
        before = sum(1 for p in r["pages"] if p["alloc_ts"] < mm)
        after_zap = [p for p in r["pages"] if p["free"]["ts"] and p["zap"]["ts"]
                     and p["free"]["ts"] > p["zap"]["ts"]]
        gap = [(p["free"]["ts"] - p["zap"]["ts"]) / 1e6 for p in after_zap]
        p0 = kr.pages_by_index(r)[0]
        free = kr.first_step(p0, "page_free")
        frames = kr.stack_syms(r, free) if free else []
        rows.append([f"`{k['release']}`",
                     f"{o.get('name')} ({o.get('file')}, mmap `{o.get('mmap')}`)",
                     f"{before}/{len(r['pages'])} before the mmap, by `{o.get('allocated_by')}`",
                     counts_story(p0, "refcount") + " (page 0)",
                     (f"{len(after_zap)}/{len(r['pages'])} after the zap, "
                      f"+{min(gap):.1f} to +{max(gap):.1f} ms later"
                      if gap else "no free after a zap seen")
                     + (f"; page 0 by {chain_of(frames[2:], 6)}" if frames
                        else "; page 0's free has no stack"),
                     same(kex["pages"], lambda p: "→".join(map(str, p["refcount_trail"])))
                     if kex else "no kex run"])
    out += table(["kernel", "owner", "allocated", "refcount trail", "freed",
                  "kex insert's trail"], rows) + [""]
    out += ["What differs from kex: the ring's pages exist before the mmap (allocated by "
            "`setsockopt(PACKET_RX_RING)`, the allocation's stack above), and the munmap "
            "does not free them: the zap drops the mapping's reference, the socket's own "
            "goes when the socket is released (the free's stack). The insert, rmap and "
            "zap are the same kernel functions as for kex.", ""]
    return out


def section_pictures(pics):
    out = ["## 5. Pictures", ""]
    for title, path in pics:
        out += [f"{title}:", "", f"![{title}]({path})", ""]
    return out


def section_index(top, kernels):
    out = ["## Index of the runs", ""]
    for n, k in kernels.items():
        files = sorted(f for f in os.listdir(os.path.join(top, n)))
        out.append(f"- `{n}/` (`{k['release']}`): " + ", ".join(f"`{f}`" for f in files))
    return out + [""]


# --- pictures --------------------------------------------------------------------

def pte_appearance(k, path):
    """Per mode, when each page's PTE appeared, in ms since the mmap call."""
    cols = [m for m in MODES if m[0] in k]
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.6 * len(cols)))
    series = []
    for row, (run, title, _) in enumerate(cols):
        r = k[run]
        t0 = r["mappings"][0]["ts"] if r["mappings"] else r["trace"]["first_ts"]
        xs = []
        for p in r["pages"]:
            st = pte_install(p)
            ts = st["ts"] if st else p.get("remap_pfn_ts")
            if ts:
                xs.append((ts - t0) / 1e6)
        ax.scatter(xs, [row] * len(xs), s=18)
        marks = {}
        for ph, colour, what in (("mmap", "#7f7f7f", "mmap returns"),
                                 ("write", "#d62728", "the write starts")):
            at = kr.phase(r, ph)
            t = at and (at["end"] if ph == "mmap" else at["start"])
            if t:
                marks[ph] = (t - t0) / 1e6
                ax.plot([marks[ph]] * 2, [row - 0.35, row + 0.35], color=colour,
                        linewidth=1.5, label=what if row == 0 else None)
        series.append({"run": run, "t_ms": xs, "mmap_end_ms": marks.get("mmap"),
                       "write_start_ms": marks.get("write")})
    ax.set_yticks(range(len(cols)), [c[1] for c in cols])
    ax.set_xlabel("ms since the mmap call: when the PTE of each page appeared (one dot per page)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"PTE appearance per mode on {k['release']}: at mmap, or at first touch",
                 fontsize=9)
    fig.subplots_adjust(left=0.16, right=0.98, top=0.9, bottom=0.16)
    return plot.save(fig, path, {"figure": "pte-appearance", "modes": series})


def make_pictures(k, out_dir):
    pics = [("When each page's PTE appeared, per mode",
             os.path.basename(pte_appearance(k, os.path.join(out_dir, "pte-appearance.png"))))]
    for run, title, _ in MODES:
        if run in k and k[run]["pages"]:
            p = plot.counts(k[run], os.path.join(out_dir, f"{run}-counts.png"))
            pics.append((f"Refcount and mapcount after each step: {title}", os.path.basename(p)))
    return pics


def to_html(md_text, out_dir):
    """study.md as one self-contained HTML file (pictures inline)."""
    import markdown

    body = markdown.markdown(md_text, extensions=["tables"])

    def inline(m):
        with open(os.path.join(out_dir, html.unescape(m.group(1))), "rb") as f:
            return 'src="data:image/png;base64,' + base64.b64encode(f.read()).decode() + '"'

    body = re.sub(r'src="([^"]+\.png)"', inline, body)
    style = ("body{font-family:sans-serif;max-width:80em;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;font-size:0.85em}"
             "td,th{border:1px solid #ccc;padding:0.3em;vertical-align:top}"
             "img{max-width:100%}code{font-size:0.9em}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>kex study</title>"
            f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")


def build(top, kernels, pics, wall):
    first = next(iter(kernels))
    lines = (header(kernels, wall) + section_modes(kernels[first])
             + section_kernels(kernels) + section_driver(kernels) + section_follow(kernels)
             + section_pictures(pics)
             + section_index(top, kernels))
    return "\n".join(lines) + "\n"


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        kernels = load_runs(a.dir)
    except (kr.InputError, OSError) as e:
        print(f"study.py: {e}", file=sys.stderr)
        return 1
    out_dir = a.out or a.dir
    os.makedirs(out_dir, exist_ok=True)
    pics = make_pictures(kernels[next(iter(kernels))], out_dir)
    md = build(a.dir, kernels, pics, a.wall_s)
    for name, text in (("study.md", md), ("study.html", to_html(md, out_dir))):
        path = os.path.join(out_dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
