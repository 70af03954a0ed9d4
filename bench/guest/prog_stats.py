#!/usr/bin/env python3
"""bench/guest/prog_stats.py SNAPSHOTS PID BEFORE: the BPF programs of process PID
(kextrace), with the kernel's own run statistics (kernel.bpf_stats_enabled):
run_cnt and run_time_ns per program, from a file of `bpftool -j prog show`
snapshots taken while it ran (one JSON array per line). A program's figures
are its largest over the snapshots (the last ones may be taken while
kextrace detaches). A program is PID's when bpftool names PID among its
holders ("pids", where bpftool can tell), else when it is not in BEFORE (a
snapshot taken before kextrace started). Prints one JSON object: {"programs": {name: {...}},
"snapshots": N, "run_cnt": total, "run_time_ns": total}."""
import json
import sys


def main(path, pid, before_path):
    before = set()
    with open(before_path) as f:
        for line in f:
            if line.strip().startswith("["):
                before |= {p["id"] for p in json.loads(line)}
    progs, snaps = {}, 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("["):
                continue
            try:
                arr = json.loads(line)
            except json.JSONDecodeError:
                continue  # a snapshot cut short
            snaps += 1
            for p in arr:
                if "pids" in p:
                    if not any(x.get("pid") == pid for x in p["pids"]):
                        continue
                elif p["id"] in before:
                    continue
                cur = progs.get(p["id"])
                if cur is None or p.get("run_cnt", 0) >= cur.get("run_cnt", 0):
                    progs[p["id"]] = p
    out = {}
    for p in progs.values():
        name = p.get("name", str(p["id"]))
        d = out.setdefault(name, {"type": p.get("type"), "run_cnt": 0, "run_time_ns": 0})
        d["run_cnt"] += p.get("run_cnt", 0)
        d["run_time_ns"] += p.get("run_time_ns", 0)
    print(json.dumps({"programs": out, "snapshots": snaps,
                      "run_cnt": sum(d["run_cnt"] for d in out.values()),
                      "run_time_ns": sum(d["run_time_ns"] for d in out.values())}))
    return 0 if out else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
