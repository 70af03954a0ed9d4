# tests/guest/report.sh: the timeline export, the JSONL replay, the pictures
# and the study report on real runs (scripts/vm -- tests/guest/run report).
#
# One validator serves every test: build/bin/kextrace-validate-trace (the
# unit tests call the same code). Python is Debian's /usr/bin/python3 with
# its matplotlib.

PY=/usr/bin/python3
export MPLBACKEND=Agg

# pycheck CODE ARGS...: run python CODE with sys.argv[1:] = ARGS, a json
# loader load(path) and ok(cond, what); fails the case if any ok() failed.
pycheck() {
	local code=$1
	shift
	MPLCONFIGDIR=$CASE_TMP/mpl "$PY" - "$@" <<EOF
import json, os, struct, sys
def load(p):
    with open(p) as f:
        return json.load(f)
def png_size(p):
    with open(p, 'rb') as f:
        h = f.read(24)
    return list(struct.unpack('>II', h[16:24])) if h[:8] == b'\x89PNG\r\n\x1a\n' else None
sys.path.insert(0, os.path.join(os.environ['KEX_TOP'], 'tests/guest'))
from jcheck import ok, done
$code
done()
EOF
}

# trace_run DIR PAGES: kextrace with --json/--jsonl/--export on a real rig run.
trace_run() {
	local d=$1 pages=$2 rc=0
	kextrace --json "$d/trace.json" --jsonl "$d/events.jsonl" --export "$d/timeline.json" \
		-- mmap_test /dev/kex "$pages" --no-wait >"$d/live.txt" 2>"$d/live.err" || rc=$?
	if [ "$rc" != 0 ]; then
		cat "$d/live.err"
		fail "kextrace exited $rc"
		return 1
	fi
}

# --- cases -----------------------------------------------------------------------

case_export_is_a_valid_timeline_of_the_real_pages() {
	kex_load
	local d=$CASE_TMP
	trace_run "$d" 8
	kextrace-validate-trace "$d/timeline.json"
	kextrace-validate-trace --json "$d/timeline.json" >"$d/check.json"
	pycheck '
check, trace, tl = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
pages = trace["pages"]
ok(check["valid"], "the validator finds no problem: %s" % check["problems"][:3])
ok(len(pages) == 8, "8 page lives in --json")
ok(check["tracks"] == len(pages) + 1, "one track per page plus the rig: %d" % check["tracks"])
names = set(check["thread_names"].values())
ok(all("page %d pfn %#x" % (p["index"], p["pfn"]) in names for p in pages),
   "page tracks named after the real pfns")
steps = sum(len(p["steps"]) - 1 for p in pages)  # insert + return are one slice
ok(check["flow_arrows"] == steps - len(pages), "flow arrows link every step of every page")
ok(check["phases"].get("C", 0) >= 2 * 8, "page counters")
ok(tl["displayTimeUnit"] == "ns" and tl["metadata"]["kernel_release"] == trace["run"]["kernel_release"],
   "metadata: kernel release")
ok(tl["metadata"]["probes"] == trace["run"]["probes"], "metadata: the probe report")
ptes = {e["args"]["pte"] for e in tl["traceEvents"] if e.get("args", {}).get("step") == "pte_set"}
ok(ptes == {p["pte"]["value"] for p in pages}, "the PTE values of the run in the export")
rig = [e["name"] for e in tl["traceEvents"] if e["ph"] == "X" and e.get("cat") == "rig"]
ok(rig == ["mmap", "write", "munmap"], "rig phases as slices: %s" % rig)
ok(not [f for f in os.listdir(os.path.dirname(sys.argv[3])) if ".tmp." in f], "no temp file left")
' "$d/check.json" "$d/trace.json" "$d/timeline.json"
}

case_report_replays_the_jsonl_offline() {
	kex_load
	local d=$CASE_TMP
	trace_run "$d" 8
	kextrace report "$d/events.jsonl" --json "$d/replay.json" --export "$d/replay-timeline.json" \
		>"$d/replay.txt"
	cmp "$d/timeline.json" "$d/replay-timeline.json" || fail "the replayed timeline differs"
	pycheck '
live, replay = load(sys.argv[1]), load(sys.argv[2])
ok([p["pfn"] for p in replay["pages"]] == [p["pfn"] for p in live["pages"]],
   "same per-page pfns: %s" % [hex(p["pfn"]) for p in replay["pages"]])
for k in ("probe_counters", "ring_accounting"):  # live-only: read from the kernel session
    ok(k in live and k not in replay, "%s only in the live --json" % k)
    live.pop(k)
ok(replay == live, "the replayed --json equals the live one")
with open(sys.argv[3]) as f: lt = f.read()
with open(sys.argv[4]) as f: rt = f.read()
ok(len(rt) > 500 and lt.endswith(rt), "the same text report (after the rig output)")
with open(sys.argv[5]) as f: header = json.loads(f.readline())
ok(header["schema"] == "kextrace.events/1" and header["events"] == live["trace"]["events"],
   "JSONL header: schema and event count")
' "$d/trace.json" "$d/replay.json" "$d/live.txt" "$d/replay.txt" "$d/events.jsonl"
	# a damaged line is reported with its number, nothing is written
	sed '5s/"ts":/"tz":/' "$d/events.jsonl" >"$d/bad.jsonl"
	if kextrace report "$d/bad.jsonl" --json "$d/bad.json" >/dev/null 2>"$d/bad.err"; then
		fail "a damaged JSONL was accepted"
	fi
	expect_match "$(cat "$d/bad.err")" 'bad\.jsonl:5: bad event: no "ts"' "error names line 5"
	[ ! -e "$d/bad.json" ] || fail "a report was written from a damaged file"
}

case_plots_and_study_report_hold_the_runs_values() {
	kex_load
	local d=$CASE_TMP
	trace_run "$d" 8
	MPLCONFIGDIR=$d/mpl "$PY" analysis/plot.py "$d/trace.json" --jsonl "$d/events.jsonl" \
		--out "$d/plots"
	MPLCONFIGDIR=$d/mpl "$PY" analysis/report.py "$d/trace.json" --jsonl "$d/events.jsonl" \
		--out "$d/study"
	pycheck '
trace, d = load(sys.argv[1]), sys.argv[2]
pages = sorted(trace["pages"], key=lambda p: p["index"])
pfns = [p["pfn"] for p in pages]
for what in ("swimlane", "counts", "physvirt"):
    png = os.path.join(d, "plots", "trace-%s.png" % what)
    data = load(os.path.join(d, "plots", "trace-%s.data.json" % what))
    ok(os.path.getsize(png) > 10000, what + ": PNG not empty")
    ok(png_size(png) == data["size_px"], what + ": PNG of %s px" % data["size_px"])
ok(load(os.path.join(d, "plots", "trace-physvirt.data.json"))["pfn"] == pfns,
   "physvirt series hold the real pfns")
sw = load(os.path.join(d, "plots", "trace-swimlane.data.json"))
ok([p["pfn"] for p in sw["pages"]] == pfns, "swimlane rows are the real pages")
with open(os.path.join(d, "study", "report.md")) as f: md = f.read()
ok(all("`%#x`" % p["pfn"] in md for p in pages), "the report names every real pfn")
ok(all(p["pte"]["value"] in md for p in pages), "the report shows every real PTE value")
ok("insert_page_into_pte_locked" in md and "set by the **MMU**" in md, "the insert and the Dirty answer")
ok(all(os.path.exists(os.path.join(d, "study", "trace-%s.png" % w))
       for w in ("swimlane", "counts", "physvirt")), "the report pictures")
' "$d/trace.json" "$d"
}

case_keep_policy_in_the_study_report() {
	kex_load ref_policy=keep
	local d=$CASE_TMP
	kextrace --json "$d/keep.json" -- mmap_test /dev/kex 4 --no-wait >/dev/null
	kex_unload
	kex_load
	trace_run "$d" 4
	MPLCONFIGDIR=$d/mpl "$PY" analysis/report.py "$d/trace.json" --keep-json "$d/keep.json" \
		--out "$d/study"
	local md
	md=$(cat "$d/study/report.md")
	expect_match "$md" 'With `ref_policy=keep`' "keep section"
	expect_match "$md" '4/4 pages freed by kex at close, 0 through the batched path' "kex frees at close"
}

case_interrupted_trace_leaves_no_temp_file() {
	kex_load
	local d=$CASE_TMP
	mkfifo "$d/in"
	exec 3<>"$d/in"
	# the rig waits at its first prompt (stdin is a FIFO): stop kextrace there
	kextrace --json "$d/t.json" --jsonl "$d/t.jsonl" --export "$d/t-timeline.json" \
		-- mmap_test /dev/kex 2 <&3 >"$d/out.txt" 2>&1 &
	local kt=$! i
	for i in $(seq 100); do grep -q 'press a key' "$d/out.txt" 2>/dev/null && break; sleep 0.1; done
	local rc=0
	kill -INT "$kt"
	wait "$kt" || rc=$?
	expect_eq "$rc" 130 "kextrace exit status after SIGINT (128 + 2)"
	exec 3>&-
	local left
	left=$(find "$d" -name '*.tmp.*')
	expect_eq "$left" "" "temp files left after an interrupt"
	# an interrupted run still writes every output, complete: required, not
	# checked only when present
	local f
	for f in t.json t.jsonl t-timeline.json; do
		[ -s "$d/$f" ] || fail "no $f after SIGINT"
	done
	kextrace-validate-trace "$d/t-timeline.json"
	kextrace report "$d/t.jsonl" --json "$d/t-replay.json" >/dev/null
	pycheck '
live, replay = load(sys.argv[1]), load(sys.argv[2])
ok(live["schema"] == "kextrace.report/1", "the interrupted run wrote its --json report")
ok(len(live["pages"]) == 2, "2 page lives, mapped before the interrupt: %d" % len(live["pages"]))
ok([p["pfn"] for p in replay["pages"]] == [p["pfn"] for p in live["pages"]],
   "its JSONL replays to the same pages")
with open(sys.argv[3]) as f: header = json.loads(f.readline())
ok(header["schema"] == "kextrace.events/1" and header["events"] == live["trace"]["events"],
   "JSONL header: schema and event count %s" % header.get("events"))
' "$d/t.json" "$d/t-replay.json" "$d/t.jsonl"
	# an export into a directory that does not exist fails cleanly
	if kextrace --export /nonexistent/t.json -- mmap_test /dev/kex 1 --no-wait >/dev/null 2>"$d/err"; then
		fail "--export into a missing directory succeeded"
	fi
	expect_match "$(cat "$d/err")" 'cannot write /nonexistent/t.json' "the error names the file"
}
