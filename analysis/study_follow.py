"""study_follow.py: the study's section on --follow (analysis/study.py):
each kernel's discovered path of kex's pages, and what came after the zap."""

import kexreport as kr
from kexreport import table

FOLLOW_RUN = "follow"  # kextrace --follow on the insert mode (ref_policy=drop)


def follow_path(f):
    """The common path of a --follow run, in path order: `function` n/N or [step]."""
    n = f["pages"]
    parts = []
    for c in f["common_path"]:  # most pages first, then in path order
        if c["step"]:
            parts.append(f"[{c['step']}]")
        else:
            parts.append(f"`{c['function']}`" + ("" if c["pages"] == n else f" {c['pages']}/{n}"))
    return " → ".join(parts)


def section_follow(kernels):
    out = ["## 4. The path, discovered", "",
           "`kextrace --follow -- mmap_test /dev/kex 8 --mode insert --no-wait` (kex "
           "`ref_policy=drop`): an entry probe on every kernel function whose BTF "
           "prototype takes a `struct page *`, a `struct folio *`, a `struct folio_batch *` "
           "or an array of pages with its length, each call kept when it passes one of "
           "kex's pages. The curated steps are in [brackets]; a function is listed once, "
           "at its first call, with the pages that passed it when not all did.", ""]
    rows = []
    for n, k in kernels.items():
        r = k.get(FOLLOW_RUN)
        if not r or "follow" not in r:
            rows.append([f"`{k['release']}`", "no --follow run", "", "", ""])
            continue
        f, a = r["follow"], r["follow"]["attach"]
        rows.append([f"`{k['release']}`",
                     f"{a['attached']} via {a['mechanism']}"
                     + (f" ({a['why_not_multi']})" if a["why_not_multi"] else ""),
                     f"{a['us'] / 1000:.0f} ms / {a.get('detach_us', 0) / 1000:.0f} ms",
                     f"{f['calls']} on {f['followed_pages']}/{f['pages']} pages",
                     f"{len(f['left_out'])} left out, each with its reason"])
    out += table(["kernel", "functions attached", "attach / detach", "calls kept",
                  "not followed"], rows) + [""]
    for n, k in kernels.items():
        r = k.get(FOLLOW_RUN)
        if not r or "follow" not in r:
            continue
        f = r["follow"]
        out += [f"**`{k['release']}`**: {follow_path(f)}", ""]
        if f["every_page_unwatched"]:
            out += ["Every page passed these, which the curated plan does not watch: "
                    + ", ".join(f"`{x}`" for x in f["every_page_unwatched"]) + ".", ""]
    out += ["The seed guessed `munmap → free_page`. After the zap (the rmap removal), "
            "every page went through:", ""]
    rows = []
    for n, k in kernels.items():
        r = k.get(FOLLOW_RUN)
        if not r or "follow" not in r:
            continue
        f = r["follow"]
        steps = [c["step"] for c in f["common_path"]]
        after = f["common_path"][steps.index("rmap_remove") + 1:] if "rmap_remove" in steps else []
        calls = [c["function"] for c in after if c["function"] and c["pages"] == f["pages"]]
        # the free's own stack: callers no argument names the page in
        p0 = kr.pages_by_index(r)[0]
        free = kr.first_step(p0, "page_free")
        frames = [fr.split("+")[0] for fr in (kr.stack_syms(r, free) if free else [])]
        unseen = [fr for fr in frames if fr not in f["functions"] and fr.startswith("free_")]
        rows.append([f"`{k['release']}`", " → ".join(f"`{c}`" for c in calls) or "nothing followed",
                     ", ".join(f"`{u}`" for u in unseen) or "none"])
    out += table(["kernel", "followed after the zap (every page)",
                  "on the free's stack, not followable (no page argument)"], rows) + [""]
    out += ["So the page goes into the TLB gather batch and back to the allocator in "
            "batches, not through a `free_page` of its own; a function whose arguments do "
            "not name the page (a `struct list_head *` of pages, 6.1's "
            "`free_unref_page_list`) cannot be followed by argument, and is read from the "
            "free step's stack instead.", ""]
    return out
