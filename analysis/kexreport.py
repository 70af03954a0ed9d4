"""Reading kextrace's files: the --json report (schema kextrace.report/1), the
--jsonl events (schema kextrace.events/1) and /proc/PID/smaps snapshots.

Shared by plot.py and report.py. Standard library only.
"""

import json

REPORT_SCHEMA = "kextrace.report/1"
EVENTS_SCHEMA = "kextrace.events/1"


class InputError(Exception):
    """A file that is not what the tool expects; the message says why."""


def load_report(path):
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: {e}") from e
    if not isinstance(j, dict) or j.get("schema") != REPORT_SCHEMA:
        raise InputError(f"{path}: not a kextrace --json report (schema {REPORT_SCHEMA})")
    return j


def load_events(path):
    """(header, events) of a --jsonl file."""
    header, events = None, []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    raise InputError(f"{path}:{n}: not valid JSON ({e})") from e
                if header is None:
                    if obj.get("schema") != EVENTS_SCHEMA:
                        raise InputError(f"{path}:{n}: not a kextrace --jsonl header")
                    header = obj
                else:
                    events.append(obj)
    except OSError as e:
        raise InputError(f"{path}: {e}") from e
    if header is None:
        raise InputError(f"{path}: empty")
    return header, events


def hexint(v):
    """'0x7f..' -> int; None stays None."""
    if v is None:
        return None
    return int(v, 16) if isinstance(v, str) else int(v)


def pages_by_index(report):
    """Page lives in kex index order (lives without an index last, by life)."""
    return sorted(report["pages"],
                  key=lambda p: (p["index"] is None, p["index"] or 0, p["life"]))


def steps(page, kind):
    return [s for s in page["steps"] if s["kind"] == kind]


def first_step(page, kind):
    s = steps(page, kind)
    return s[0] if s else None


def probe(report, step):
    """The probe report row of a logical step ("insert", "rmap add", ...), or None."""
    for p in report["run"]["probes"]:
        if p["step"] == step:
            return p
    return None


def stack_syms(report, step):
    """The symbolized frames of a step's stack (hex where unknown), innermost first."""
    if "stack" not in step:
        return []
    return [f["sym"] or f["addr"] for f in report["stacks"][step["stack"]]]


def phase(report, name):
    for ph in report["phases"]:
        if ph["name"] == name:
            return ph
    return None


def parse_smaps(text, vma_start=None, name_contains=None):
    """The smaps entry of one VMA: the one starting at vma_start (int), or the
    first whose mapping name contains name_contains. Returns a dict with
    'range', 'perms', 'name' and every 'Key: N kB' field as an int (kB), or
    None when no entry matches."""
    entry, found = None, None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
            if found is not None:
                break
            lo, hi = parts[0].split("-")
            name = " ".join(parts[5:]) if len(parts) > 5 else ""
            entry = {"range": (int(lo, 16), int(hi, 16)), "perms": parts[1], "name": name}
            if (vma_start is not None and entry["range"][0] == vma_start) or (
                    vma_start is None and name_contains and name_contains in name):
                found = entry
            continue
        if found is not None and parts[0].endswith(":") and len(parts) >= 2:
            try:
                found[parts[0][:-1]] = int(parts[1])
            except ValueError:
                found[parts[0][:-1]] = " ".join(parts[1:])
    return found


def smaps_dirty_kb(entry):
    """What pmap -x prints as Dirty: Shared_Dirty + Private_Dirty (kB)."""
    return entry.get("Shared_Dirty", 0) + entry.get("Private_Dirty", 0)


def cell(s):
    """Text for a Markdown table cell."""
    return str(s).replace("|", "\\|").replace("\n", " ")


def table(head, rows):
    """A Markdown table: the head's row, the rule, one row per list of cells."""
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out
