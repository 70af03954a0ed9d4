#!/usr/bin/python3
"""report.py: the study report (Markdown, with pictures) from a real traced run.

  analysis/report.py out/trace.json [--jsonl out/events.jsonl]
      [--keep-json out/keep.json] [--smaps-before F] [--smaps-after F]
      [--pmap-before F] [--pmap-after F] [--out DIR]

Walks the seed's path (shared/seed: the kex study) and answers each of its
questions with this run's own events and values: physically disjoint and
virtually contiguous pages; vm_insert_page -> insert_page_into_pte_locked ->
page_add_file_rmap -> the PTE written, with refcount and mapcount; the pmap
Dirty column; munmap -> unmap_region -> zap -> free; and what the seed gets
wrong or leaves out. Where the run lacks an event, the report says so rather
than stating what the trace did not show.

--keep-json: a second run with ref_policy=keep (kex frees at close).
--smaps-*/--pmap-*: /proc/PID/smaps and `pmap -x PID` of the rig at its
prompts, before and after the write. Writes DIR/report.md and the pictures
of plot.py into DIR (default: the report's directory).
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kexreport as kr  # noqa: E402
from kexreport import cell  # noqa: E402
import plot  # noqa: E402


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="kextrace --json report of the run (ref_policy=drop)")
    ap.add_argument("--jsonl", help="its kextrace --jsonl events")
    ap.add_argument("--keep-json", help="kextrace --json report of a ref_policy=keep run")
    ap.add_argument("--smaps-before", help="/proc/PID/smaps of the rig before the write")
    ap.add_argument("--smaps-after", help="/proc/PID/smaps of the rig after the write")
    ap.add_argument("--pmap-before", help="pmap -x PID of the rig before the write")
    ap.add_argument("--pmap-after", help="pmap -x PID of the rig after the write")
    ap.add_argument("--out", help="output directory (default: the report's)")
    ap.add_argument("--name", default="report", help="Markdown file name without .md")
    return ap.parse_args(argv)


# --- small helpers ---------------------------------------------------------------

def us(ns):
    return f"{ns / 1000:.1f} µs"


def frac(n, total):
    return f"{n}/{total}"


def chain(frames, n=8):
    """'a ← b ← c' (callee first), at most n frames."""
    shown = frames[:n]
    return " ← ".join(f"`{f}`" for f in shown) + (" ← …" if len(frames) > n else "")


def count_txt(v):
    return "?" if v is None else str(v)


def read_text(path):
    if not path:
        return None
    with open(path) as f:
        return f.read()


def pages_ok(pages, pred):
    return sum(1 for p in pages if pred(p))


def reference_page(pages):
    """The page whose story the report tells step by step: the first complete one."""
    for p in pages:
        if p["complete"]:
            return p
    return pages[0] if pages else None


def step_after(page, step):
    """The step following step in the page's life, or None."""
    st = page["steps"]
    i = st.index(step)
    return st[i + 1] if i + 1 < len(st) else None


# --- sections ------------------------------------------------------------------

def header(r, pages, keep):
    run, s = r["run"], r["summary"]
    attached = sum(1 for p in run["probes"] if p["attached"])
    out = [f"# What the kernel did with kex's pages",
           "",
           f"Traced run: `{run['command_line']}` on kernel `{run['kernel_release']}`, "
           f"{r['trace']['events']} events, {r['losses']['total']} lost, "
           f"{attached}/{len(run['probes'])} probes attached. "
           f"{s['pages']} page lives ({s['complete']} complete, {s['incomplete']} incomplete), "
           f"policy `{pages[0]['policy'] if pages else '?'}`."]
    if keep:
        out.append(f"A second run with `ref_policy=keep`: `{keep['run']['command_line']}`, "
                   f"{keep['summary']['pages']} page lives.")
    out += ["",
            "Every number below is read from this run's `--json` report (and its events); "
            "where the run lacks an event, the text says so. Background from the kernel "
            "source (not traced) is marked *(source)*.", ""]
    return out


def section_layout(r, pages, pics):
    out = ["## 1. Physically disjoint, virtually contiguous", ""]
    if not pages:
        return out + ["The run has no page lives: nothing to say about their layout.", ""]
    maps = r["mappings"]
    if maps:
        m = maps[0]
        out.append(f"kex's mmap handler was asked for {m['pages']} pages for the VMA "
                   f"`{m['vm_start']}`–`{m['vm_end']}` (policy `{m['policy']}`) and mapped "
                   f"{m['mapped']}.")
    else:
        out.append("The run shows no `kex_mmap` event: the VMA bounds are not known.")
    out += ["", "| kex index | user address | pfn | PTE written | PTE's pfn |",
            "|---:|---|---|---|---|"]
    for p in pages:
        pte = p["pte"]
        value = f"`{pte['value']}`" if pte else "not observed"
        pte_pfn = f"`{pte['pfn']:#x}`" if pte else "-"
        out.append(f"| {count_txt(p['index'])} | `{p['uaddr'] or '-'}` | `{p['pfn']:#x}` | "
                   f"{value} | {pte_pfn} |")
    out.append("")
    idx = [p for p in pages if p["index"] is not None and p["uaddr"]]
    addrs = [kr.hexint(p["uaddr"]) for p in idx]
    deltas = {b - a for a, b in zip(addrs, addrs[1:])}
    if len(addrs) >= 2 and deltas == {4096}:
        out.append(f"- **Virtually contiguous:** the {len(addrs)} user addresses run from "
                   f"`{addrs[0]:#x}` to `{addrs[-1]:#x}` in steps of exactly 4096 bytes, in kex "
                   f"index order: one contiguous range of the VMA.")
    elif len(addrs) >= 2:
        out.append(f"- The user addresses are **not** evenly spaced: steps {sorted(deltas)}.")
    else:
        out.append("- Fewer than two pages have a user address: contiguity cannot be judged.")
    pfns = [p["pfn"] for p in idx]
    if len(pfns) >= 2:
        adjacent = sum(1 for a, b in zip(pfns, pfns[1:]) if b == a + 1)
        lo, hi = min(pfns), max(pfns)
        if adjacent < len(pfns) - 1:
            out.append(f"- **Physically disjoint:** the pfns are not in sequence: only "
                       f"{adjacent} of {len(pfns) - 1} neighbouring pages are adjacent in "
                       f"physical memory; they lie anywhere in `{lo:#x}`–`{hi:#x}` "
                       f"({hi - lo + 1} frames for {len(pfns)} pages), wherever `alloc_page` "
                       f"found a free page.")
        else:
            out.append(f"- In this run `alloc_page` happened to return physically consecutive "
                       f"pages (`{lo:#x}`–`{hi:#x}`): nothing requires it to.")
    same = pages_ok(pages, lambda p: p["pte"] and p["pte"]["pfn"] == p["pfn"])
    out += [f"- Each PTE points at its own page: the pfn in the PTE equals the page's pfn for "
            f"{frac(same, len(pages))} pages.", "", f"![physical vs virtual]({pics['physvirt']})",
            ""]
    return out


def section_insert(r, pages):
    out = ["## 2. `vm_insert_page` → `insert_page_into_pte_locked` → `page_add_file_rmap` → "
           "the PTE", ""]
    ins, rmap, pte_probe = kr.probe(r, "insert"), kr.probe(r, "rmap add"), kr.probe(r, "pte set")
    p = reference_page(pages)
    if not p:
        return out + ["The run has no page lives.", ""]
    if ins and ins["attached"]:
        out.append(f"The insert was observed at `{ins['resolved']}`"
                   + (f" ({ins['reason']})." if ins["reason"] else "."))
        if ins["resolved"] != ins["wanted"].split(" ")[0]:
            out.append(f"That is the function that really ran: the kernel has no plain "
                       f"`{ins['wanted'].split(' ')[0]}`, only this compiler clone.")
    else:
        out.append("The insert probe did not attach: the insert itself is not in this trace.")
    st = kr.first_step(p, "insert")
    if st and "stack" in st:
        out.append(f"Its kernel stack (page {p['index']}): {chain(kr.stack_syms(r, st))} — "
                   f"so `vm_insert_page`, called from kex's mmap handler, is what reaches it.")
    elif st:
        out.append("The insert event carries no stack in this run: the caller is not shown.")
    out += ["", f"Page {p['index']} (pfn `{p['pfn']:#x}`), step by step (Δt since its "
            f"allocation):", "",
            "| step | Δt | refcount | mapcount | value |", "|---|---:|---:|---:|---|"]
    for s in p["steps"]:
        val = s["value"]
        if s["kind"] == "pte_set":
            val = f"`{val}` ({p['pte']['flags'] if p['pte'] else '?'})"
        elif val is None:
            val = "-"
        out.append(f"| {s['kind']} | {us(s['dt'])} | {count_txt(s['refcount'])} | "
                   f"{count_txt(s['mapcount'])} | {val} |")
    out.append("")

    def at(kind, key, want):
        return pages_ok(pages, lambda q: (kr.first_step(q, kind) or {}).get(key) == want)
    n = len(pages)
    facts = [
        (at("insert", "refcount", 1), "refcount 1 when `insert_page_into_pte_locked` is entered "
         "(the allocation's reference)"),
        (at("rmap_add", "refcount", 2), "refcount 2 by the time `page_add_file_rmap` runs "
         "(`get_page` came first)"),
        (at("rmap_add", "mapcount", 0), "mapcount 0 entering `page_add_file_rmap`"),
        (at("insert_ret", "mapcount", 1), "mapcount 1 at the insert's return"),
        (at("insert_ret", "refcount", 2), "refcount 2 at the insert's return"),
    ]
    out.append("Across the run:")
    out += [f"- {frac(k, n)} pages: {what}" for k, what in facts]
    if not rmap or not rmap["attached"]:
        out.append("- the rmap probe did not attach: the rmap step is not in this trace")
    ptes = [q["pte"] for q in pages if q["pte"]]
    if ptes:
        flags = sorted({x["flags"] for x in ptes})
        out.append(f"- {frac(len(ptes), n)} PTEs read back, bits {', '.join(f'`{f}`' for f in flags)}"
                   f": present {sum(x['present'] for x in ptes)}, writable "
                   f"{sum(x['rw'] for x in ptes)}, user {sum(x['user'] for x in ptes)}, "
                   f"accessed {sum(x['accessed'] for x in ptes)}, dirty "
                   f"{sum(x['dirty'] for x in ptes)}, NX {sum(x['nx'] for x in ptes)}")
    else:
        out.append("- no PTE value was read back in this run")
    if pte_probe:
        out.append(f"- how the PTE was seen: {pte_probe['reason'] or pte_probe['resolved']}")
    out.append("")
    return out


def smaps_lines(r, before, after, pmap_before, pmap_after):
    if not (before or after):
        return ["No smaps snapshots were given for this run, so the Dirty column itself is "
                "not shown here.", ""]
    vm_start = kr.hexint(r["mappings"][0]["vm_start"]) if r["mappings"] else None
    out = ["The rig's kex VMA in `/proc/PID/smaps` at its prompts (pmap's Dirty = "
           "Shared_Dirty + Private_Dirty):", "",
           "| snapshot | Size | Rss | Shared_Dirty | Private_Dirty | pmap Dirty |",
           "|---|---:|---:|---:|---:|---:|"]
    found = {}
    for name, text in (("before the write", before), ("after the write", after)):
        if text is None:
            out.append(f"| {name} | not taken | | | | |")
            continue
        e = kr.parse_smaps(text, vma_start=vm_start) or kr.parse_smaps(text, name_contains="kex")
        found[name] = e
        if e is None:
            out.append(f"| {name} | no kex VMA in the snapshot | | | | |")
            continue
        out.append(f"| {name} | {e.get('Size', '?')} kB | {e.get('Rss', '?')} kB | "
                   f"{e.get('Shared_Dirty', '?')} kB | {e.get('Private_Dirty', '?')} kB | "
                   f"{kr.smaps_dirty_kb(e)} kB |")
    out.append("")
    b, a = found.get("before the write"), found.get("after the write")
    if b and a:
        out.append(f"Dirty went from {kr.smaps_dirty_kb(b)} kB to {kr.smaps_dirty_kb(a)} kB "
                   f"while the write phase ran no kernel code on these pages: smaps reads the "
                   f"D bit the MMU set in each PTE *(source: `smaps_pte_entry` uses "
                   f"`pte_dirty`)*.")
        out.append("")
    for name, text in (("pmap -x before the write", pmap_before),
                       ("pmap -x after the write", pmap_after)):
        if text:
            keep = [ln for ln in text.splitlines()
                    if ln.startswith("Address") or "kex" in ln.lower()]
            out += [f"`{name}`:", "", "```", *keep, "```", ""]
    return out


def section_dirty(r, pages, smaps):
    out = ["## 3. The Dirty column: who sets it", ""]
    n = len(pages)
    clean_pte = pages_ok(pages, lambda p: p["pte"] and not p["pte"]["dirty"])
    out.append(f"- **PTE written clean:** {frac(clean_pte, n)} PTEs had the dirty bit (6) "
               f"clear when the insert wrote them.")
    w = kr.phase(r, "write")
    no_fault = pages_ok(pages, lambda p: p["first_write"]["kind"] == "no_fault")
    faulted = pages_ok(pages, lambda p: p["first_write"]["kind"] == "fault")
    if w:
        out.append(f"- **No fault on the first write:** the rig's write phase "
                   f"({us(w['duration_ns'])}) wrote every page; the trace holds "
                   f"{w['user_faults']} user page faults and {w['kernel_events']} kernel events "
                   f"of the rig inside it; {frac(no_fault, n)} pages were written without a "
                   f"fault" + (f", {faulted} with one" if faulted else "") + ".")
    else:
        out.append("- The run has no write phase (no `write_begin`/`write_end` markers): "
                   "the first write is not in this trace.")
    dirty = pages_ok(pages, lambda p: p["zap"]["dirty"])
    out.append(f"- **Dirty found at the zap:** `set_page_dirty` ran for {frac(dirty, n)} pages "
               f"while their PTEs were cleared — `zap_pte_range` calls it only when the PTE it "
               f"takes down has D set *(source)*.")
    if w and clean_pte == n and no_fault == n and dirty == n and w["kernel_events"] == 0:
        out.append("")
        out.append("So the D bit was set by the **MMU** on the first store: the PTE went in "
                   "clean, no kernel code ran during the write, and the PTE came out dirty. "
                   "This answers the seed's TODO (\"is this an MMU flag set on write to the "
                   "page?\"): yes, the hardware dirty bit of the PTE.")
    else:
        out.append("")
        out.append("The run does not show all three facts for every page, so it does not by "
                   "itself prove that the MMU set the D bit for each of them.")
    out.append("")
    return out + smaps_lines(r, *smaps)


def free_story(r, p):
    """(kex_free step, page_free step, its stack) of a page."""
    kf = kr.first_step(p, "kex_free")
    pf = kr.first_step(p, "page_free")
    return kf, pf, kr.stack_syms(r, pf) if pf else []


def section_unmap(r, pages, keep):
    out = ["## 4. `munmap` → `unmap_region` → zap → free", ""]
    n = len(pages)
    m = kr.phase(r, "munmap")
    um = kr.probe(r, "unmap (munmap)")
    if m:
        c = m["counts"]
        out.append(f"The rig's munmap phase took {us(m['duration_ns'])}: "
                   f"{c.get('sys_munmap', 0)} `munmap` syscall, {c.get('unmap_region', 0)} "
                   f"`{um['resolved'] if um and um['attached'] else 'unmap_region'}` window, "
                   f"{c.get('set_dirty', 0)} `set_page_dirty`, {c.get('rmap_remove', 0)} rmap "
                   f"removals, {c.get('page_free', 0)} `mm_page_free` and "
                   f"{c.get('page_free_batched', 0)} `mm_page_free_batched`.")
    else:
        out.append("The run has no munmap phase: the unmap is not bracketed by the rig here.")
    zapped = pages_ok(pages, lambda p: p["zap"]["context"] == "munmap")
    out.append(f"{frac(zapped, n)} pages were zapped inside that munmap window.")
    p = reference_page(pages)
    if p:
        rm = kr.first_step(p, "rmap_remove")
        kf, pf, stack = free_story(r, p)
        out.append("")
        if rm:
            out.append(f"Page {p['index']}: `set_page_dirty`, then the rmap removal with "
                       f"refcount {count_txt(rm['refcount'])} and mapcount "
                       f"{count_txt(rm['mapcount'])} (the mapping's reference and its map "
                       f"count are still there while the PTE is cleared).")
        if pf:
            out.append(f"Then, {us(pf['ts'] - p['zap']['ts'])} after the rmap removal, "
                       f"`mm_page_free` with refcount {count_txt(pf['refcount'])}, from: "
                       f"{chain(stack, 9)}.")
            names = " ".join(stack)
            if "release_pages" in names and ("tlb_" in names):
                out.append("")
                out.append("The zap does not free the page: it queues it in the TLB gather "
                           "batch; after the TLB flush (`tlb_batch_pages_flush`), "
                           "`release_pages` drops the mapping's reference, the refcount reaches "
                           "0 and `free_unref_page_list` frees it (then `mm_page_free_batched`). "
                           "Not a direct `free_page()` call, as the seed's munmap note has it.")
        else:
            out.append("The run shows no `mm_page_free` for this page.")
        freed_batched = pages_ok(pages, lambda q: q["free"]["batched"])
        out.append(f"{frac(freed_batched, n)} pages were freed through that batched path.")
        if kf and p["policy"] == "drop":
            nxt = step_after(p, kf)
            out.append("")
            out.append(f"kex's own reference (policy drop): `kex_page_free` "
                       f"({kf['value']}) right after the insert, at refcount "
                       f"{count_txt(kf['refcount'])}"
                       + (f"; the next step sees refcount {count_txt(nxt['refcount'])}"
                          if nxt else "")
                       + ": the page survives, the mapping now holds the only reference "
                       "(the seed's point 2: `vm_insert_page` took a reference, so the driver "
                       "may drop its own).")
        trails = {tuple(q["refcount_trail"]) for q in pages}
        out.append(f"Refcount trails in this run: "
                   f"{', '.join('→'.join(map(str, t)) for t in sorted(trails))}.")
    out.append("")
    out += keep_lines(keep)
    return out


def keep_lines(keep):
    if not keep:
        return ["With `ref_policy=keep` kex keeps its reference until the VMA closes; no "
                "keep run was given, so that case is not shown here.", ""]
    pages = kr.pages_by_index(keep)
    n = len(pages)
    out = [f"**With `ref_policy=keep`** ({keep['run']['command_line']}, {n} pages):"]
    p = reference_page(pages)
    if not p:
        return out + ["the keep run has no page lives.", ""]
    rm = kr.first_step(p, "rmap_remove")
    kf, pf, stack = free_story(keep, p)
    if rm:
        out.append(f"the zap sees refcount {count_txt(rm['refcount'])} (kex still holds its "
                   f"reference), so the TLB flush leaves the page allocated;")
    if kf:
        out.append(f"kex's `kex_page_free` ({kf['value']}) comes "
                   f"{us(kf['ts'] - p['zap']['ts']) if p['zap']['ts'] else '?'} after the zap, "
                   f"at refcount {count_txt(kf['refcount'])};")
    if pf:
        out.append(f"`mm_page_free` follows from {chain(stack, 6)}.")
    else:
        out.append("no `mm_page_free` for it is in the keep run.")
    at_close = pages_ok(pages, lambda q: q["kex_free_reason"] == "at-close")
    batched = pages_ok(pages, lambda q: q["free"]["batched"])
    out += [f"{frac(at_close, n)} pages freed by kex at close, {batched} through the batched "
            f"path.", ""]
    return out


def section_seed(r, pages):
    out = ["## 5. What the seed gets wrong or leaves out", ""]
    n = len(pages)
    rmap, ins, pte = kr.probe(r, "rmap add"), kr.probe(r, "insert"), kr.probe(r, "pte set")
    rmap_n = pages_ok(pages, lambda p: kr.first_step(p, "rmap_add") is not None)
    if rmap and rmap["attached"]:
        out.append(f"- **`page_add_anon_rmap` where the file rmap is meant.** The seed's text "
                   f"says `page_add_anon_rmap` sets up the reverse map of the devKex file "
                   f"page. The run: the rmap add that fired is `{rmap['resolved']}`, for "
                   f"{frac(rmap_n, n)} pages (kex's pages belong to a file mapping; anon rmap "
                   f"is for anonymous memory).")
    else:
        out.append("- The seed's `page_add_anon_rmap` mix-up cannot be checked here: the rmap "
                   "probe did not attach.")
    if pte:
        out.append(f"- **`set_pte_at` is not a call you can watch.** The seed lists it as the "
                   f"last call of the chain; on this kernel: {pte['reason'] or pte['resolved']}. "
                   f"The PTE is observed through the value it wrote.")
    if ins and ins["attached"]:
        null_addr = pages_ok(pages, lambda p: (kr.first_step(p, "insert") or {"value": 1})
                             ["value"] is None)
        out.append(f"- **An older `insert_page_into_pte_locked`.** The seed quotes "
                   f"`(struct mm_struct *mm, pte_t *pte, unsigned long addr, struct page *page, "
                   f"pgprot_t prot)`; 6.1 passes the `vma` first *(source)*, and the function "
                   f"this kernel runs is `{ins['resolved']}`"
                   + (f" ({ins['reason']})" if ins["reason"] else "")
                   + (f"; the user address was absent at its entry for {frac(null_addr, n)} "
                      f"pages" if null_addr else "") + ".")
    fp = reference_page(pages)
    if fp and kr.first_step(fp, "page_free"):
        out.append("- **munmap does not call `free_page()`.** See section 4: the page is freed "
                   "by `release_pages` after the TLB flush (`mm_page_free`, then "
                   "`mm_page_free_batched`).")
    out.append("- **The Dirty TODO.** Answered in section 3 with this run's PTEs, write phase "
               "and zap.")
    other = r["trace"]["other_allocations"]
    out.append(f"- **Left out:** the kernel's own allocations in the mmap window that kex "
               f"never claimed (page-table pages): {other} in this run; the refcount path "
               f"through the TLB gather batch; the exit path (`exit_mmap` zaps without "
               f"`unmap_region`; not in this run).")
    out.append("")
    return out


def section_pictures(pics):
    return ["## 6. Pictures", "",
            "Every page's steps over time, one panel per rig phase:", "",
            f"![swimlane]({pics['swimlane']})", "",
            "Refcount and mapcount right after every step's action (kex's put "
            "drops the refcount at the put; a zap's put is drawn at the zap, the "
            "kernel does it at the TLB flush before the free):", "",
            f"![refcount and mapcount]({pics['counts']})", ""]


def section_probes(r):
    out = ["## Appendix: probes and losses", "",
           "| step | wanted | attached to | note |", "|---|---|---|---|"]
    for p in r["run"]["probes"]:
        out.append(f"| {cell(p['step'])} | `{cell(p['wanted'])}` | "
                   f"{('`' + cell(p['resolved']) + '`') if p['attached'] else 'off' if p.get('off') else 'not attached'} | "
                   f"{cell(p['reason'])} |")
    lost = r["losses"]
    out += ["", f"Events lost: {lost['total']} (per type: {lost['per_type'] or 'none'}, ring "
            f"{lost['ring']}, undecodable {lost['decode_errors']}). Anomalies: "
            f"{len(r['anomalies'])}."]
    for a in r["anomalies"][:10]:
        out.append(f"- {a['message']}")
    out.append("")
    return out


def build(r, keep, pics, smaps):
    pages = kr.pages_by_index(r)
    lines = (header(r, pages, keep) + section_layout(r, pages, pics)
             + section_insert(r, pages) + section_dirty(r, pages, smaps)
             + section_unmap(r, pages, keep) + section_seed(r, pages)
             + section_pictures(pics) + section_probes(r))
    return "\n".join(lines) + "\n"


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        r = kr.load_report(a.report)
        keep = kr.load_report(a.keep_json) if a.keep_json else None
        events = kr.load_events(a.jsonl)[1] if a.jsonl else None
        smaps = tuple(read_text(p) for p in (a.smaps_before, a.smaps_after, a.pmap_before,
                                             a.pmap_after))
    except (kr.InputError, OSError) as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 1
    if not r["pages"]:
        print(f"report.py: {a.report}: no page lives in the report", file=sys.stderr)
        return 1
    out_dir = a.out or os.path.dirname(os.path.abspath(a.report))
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.splitext(os.path.basename(a.report))[0]
    made = plot.plot_all(r, events, out_dir, name, "png")
    pics = {k: os.path.basename(p) for k, p in zip(("swimlane", "counts", "physvirt"), made)}
    path = os.path.join(out_dir, a.name + ".md")
    with open(path, "w") as f:
        f.write(build(r, keep, pics, smaps))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
