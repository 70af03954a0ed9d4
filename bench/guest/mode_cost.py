#!/usr/bin/env python3
"""mode_cost.py TRACE.jsonl: per-page mapping cost from a kextrace --jsonl trace.

For the (first) kex mapping in the trace: the time from its kex_mmap event
to the last PTE written for it, divided by its pages. "PTE written" is the
PTE read back at insert_ret (insert, batch) or do_set_pte_ret (fault), or the
return of remap_pfn_range (pfn); a trace with none of them (a kextrace
without the pfn probes) falls back to kex:kex_page_insert, which kex emits
right after each page is mapped. Prints one JSON object.
"""
import json
import sys

PTE_TYPES = ("insert_ret", "do_set_pte_ret", "remap_pfn_ret")


def main(path):
    mmap_ts = pages = None
    done_ts = None
    pte = []
    kex_insert = []
    with open(path) as f:
        for n, line in enumerate(f):
            if n == 0:
                continue  # header
            ev = json.loads(line)
            t = ev.get("type")
            if t == "kex_mmap" and mmap_ts is None:
                mmap_ts = ev["ts"]
                a1 = ev.get("arg1", 0)
                pages = (int(a1, 0) if isinstance(a1, str) else int(a1)) & 0xFFFFFFFF
            elif mmap_ts is None:
                continue
            elif t == "kex_mmap_done" and done_ts is None:
                done_ts = ev["ts"]
            elif t in PTE_TYPES:
                pte.append(ev["ts"])
            elif t == "kex_page_insert":
                kex_insert.append(ev["ts"])
    if mmap_ts is None:
        print(json.dumps({"error": "no kex_mmap in the trace"}))
        return 1
    src = "pte_readback"
    marks = pte
    if not marks:
        src, marks = "kex_page_insert", kex_insert
    if not marks:
        print(json.dumps({"error": "no PTE events", "pages": pages}))
        return 1
    last = max(marks)
    out = {
        "pages": pages,
        "pte_events": len(marks),
        "source": src,
        "mmap_to_last_pte_ns": last - mmap_ts,
        "per_page_ns": (last - mmap_ts) / pages if pages else None,
        "first_to_last_pte_ns": last - min(marks),
        "mmap_to_done_ns": (done_ts - mmap_ts) if done_ts else None,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
