#!/bin/bash
# tests/host/kextrace_host.sh BINDIR - kextrace on THIS machine's kernel (no
# guest): the BPF object loads and relocates against this kernel's BTF, what
# the kernel allows attaches, every step it cannot observe is named with the
# reason, and runs end with a clear status, never a hang.
#
# Exit status of kextrace, as checked here: the traced command's own status
# when the run worked, whatever steps are unobservable (they are reported in
# the start-up table, not failures); 127 when the command cannot be run; 1
# when the BPF object cannot be loaded. This script: 0 all cases passed, 1 a
# case failed, 77 skipped (not root, or no BTF).
set -uo pipefail
bin=${1:?usage: kextrace_host.sh BINDIR}
kt=$bin/kextrace
[ "$(id -u)" = 0 ] || { echo "skipped: needs root"; exit 77; }
[ -e /sys/kernel/btf/vmlinux ] || { echo "skipped: no /sys/kernel/btf/vmlinux"; exit 77; }
tmp=$(mktemp -d /tmp/kextrace-host.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

kprobes=no
{ [ -e /sys/bus/event_source/devices/kprobe ] || [ -e /sys/kernel/tracing/kprobe_events ] ||
	[ -e /sys/kernel/debug/tracing/kprobe_events ]; } && kprobes=yes
modules=no
[ -e /proc/modules ] && modules=yes
echo "# host kernel $(uname -r): kprobes $kprobes, modules $modules"

passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*" >&2; failed=$((failed + 1)); }
# run NAME SECONDS CMD...: CMD's status in $rc, its stdout/stderr in $tmp/NAME.{out,err}
run() {
	local name=$1 secs=$2
	shift 2
	timeout -k 5 "$secs" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
	if [ $rc = 124 ] || [ $rc = 137 ]; then
		bad "$name: hung (killed after ${secs}s)"
		sed 's/^/    /' "$tmp/$name.err" >&2
		return 1
	fi
}
show() { sed 's/^/    /' "$1" >&2; }

kprobe_steps=("insert" "batch insert" "rmap add" "pte set" "fault install" "zap (rmap remove)"
	"dirty at zap" "unmap (munmap)" "exit unmap" "pfn map" "pfn PTE" "pfn fault insert")
tp_steps=("alloc" "free" "free batched" "syscalls" "fork" "exit" "reap" "user faults")
kex_steps=("kex tracepoints" "kex modes")

# why_no STEP: the reason a NO row of STEP must give on this kernel (an ERE),
# or nothing when this kernel allows STEP, so that a NO row for it fails
why_no() {
	local s
	for s in "${tp_steps[@]}"; do [ "$1" = "$s" ] && return; done
	for s in "${kprobe_steps[@]}"; do
		[ "$1" = "$s" ] || continue
		[ $kprobes = yes ] && return
		[ "$1" = "pte set" ] && echo 'observed at the insert return, which is not attached' && return
		echo '^no kprobes on this kernel' && return
	done
	for s in "${kex_steps[@]}"; do
		[ "$1" = "$s" ] || continue
		# this test loads no kex: only a kernel's kex could attach
		[ $modules = yes ] && echo 'kex not loaded' && return
		echo 'this kernel cannot load modules' && return
	done
	# another driver's fault-path pages: through the fault install's kprobe
	if [ "$1" = "driver faults" ]; then
		[ $kprobes = yes ] && return
		echo 'the fault install step is not attached' && return
	fi
	# the host's commands are no rig: no kex_rig USDT probes
	[ "$1" = usdt ] && echo 'no rig binary|no kex_rig probe in ' && return
	echo unknown
}

# check_table FILE NAME: the start-up table has a row for every step, and
# every NO row is one this kernel explains (kprobes or modules missing, no
# kex, no rig) with that reason; a NO row for a step this kernel allows fails.
check_table() {
	local f=$1 name=$2 s st notes want n=0 seen=" " e=0
	while IFS=$'\t' read -r s st notes; do
		n=$((n + 1))
		seen+="$s|"
		want=$(why_no "$s")
		if [ "$want" = unknown ]; then
			bad "$name: a row for a step this test does not know: '$s' (update tests/host)"; e=1
		elif [ "$st" = yes ]; then
			[ "$s" = usdt ] && { bad "$name: usdt attached to a command that is no rig"; e=1; }
		elif [ -z "$want" ]; then
			bad "$name: step '$s' is NO on a kernel that allows it: $notes"; e=1
		elif ! grep -Eq -- "$want" <<<"$notes"; then
			bad "$name: step '$s' is NO without the expected reason /$want/: $notes"; e=1
		fi
	done < <(awk '
		# the columns by the header: step, ok, via, attached, notes
		/^step +ok +via +attached +notes/ { t = 1; ok = index($0, "ok"); nt = index($0, "notes"); next }
		t && length($0) >= ok && match(substr($0, ok), /^(yes|NO)( |$)/) {
			s = substr($0, 1, ok - 1); sub(/ +$/, "", s)
			st = substr($0, ok); sub(/ .*/, "", st)
			notes = substr($0, nt); sub(/ +$/, "", notes)
			printf "%s\t%s\t%s\n", s, st, notes; next }
		t { exit }' "$f")
	for s in "${tp_steps[@]}" "${kprobe_steps[@]}" "${kex_steps[@]}" usdt "driver faults"; do
		[[ $seen == *" $s|"* || $seen == *"|$s|"* ]] || { bad "$name: no row for step '$s'"; e=1; }
	done
	if [ $kprobes = no ] && ! grep -q "kprobe steps are unobservable here: " "$f"; then
		bad "$name: no 'kprobe steps are unobservable here' line"; e=1
	fi
	[ $e = 0 ] || { show "$f"; return 1; }
	ok "$name: $n rows, every step has one; each NO is expected here and says why"
}

# 1. every BPF program relocates and verifies here, attached or not
if run load_check 300 "$bin/kextrace-load-check"; then
	if [ $rc = 0 ]; then ok "load-check: $(grep -c '^ok ' "$tmp/load_check.out") loads"; sed 's/^/    /' "$tmp/load_check.out"
	else bad "load-check: status $rc"; show "$tmp/load_check.out"; show "$tmp/load_check.err"; fi
fi

# 2. the plan alone
if run plan 120 "$kt" --plan; then
	if [ $rc = 0 ]; then check_table "$tmp/plan.out" "--plan"; else bad "--plan: status $rc"; show "$tmp/plan.err"; fi
fi

# 3. a real run: attaches, reports at start-up, ends with the command's status
if run true 180 "$kt" --json "$tmp/true.json" --stats "$tmp/true.stats" -- true; then
	if [ $rc = 0 ]; then ok "kextrace -- true: status 0"; else bad "kextrace -- true: status $rc"; show "$tmp/true.err"; fi
	check_table "$tmp/true.err" "start-up report"
	if python3 - "$tmp/true.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
probes = j.get("probes") or j.get("run", {}).get("probes")
assert probes, "no probes in the JSON"
PY
	then ok "--json: valid, with the probe report"; else bad "--json: unreadable or without probes"; fi
	# --stats: the same counters as --json, without the pages
	if python3 - "$tmp/true.json" "$tmp/true.stats" <<'PY'
import json, sys
j, s = (json.load(open(p)) for p in sys.argv[1:3])
assert s["schema"] == "kextrace.stats/1", s.get("schema")
assert "pages" not in s and "phases" not in s, "pages in --stats"
assert s["ring_accounting"] == j["ring_accounting"], "ring accounting differs from --json's"
assert s["probe_counters"] == j["probe_counters"], "probe counters differ from --json's"
a = s["ring_accounting"]
assert a["exact"] and a["produced"] == a["received"] + a["lost"], a
assert s["events"] == a["received"] and s["page_lives"] == len(j["pages"]), s
PY
	then ok "--stats: the counters of --json, exact, no pages"; else bad "--stats: not the counters of --json"; show "$tmp/true.stats"; fi
	grep -q "^anomalies: none" "$tmp/true.out" && ok "kextrace -- true: no anomalies" ||
		{ bad "kextrace -- true: anomalies"; show "$tmp/true.out"; }
fi

# 4. the command's status passes through
if run exit7 180 "$kt" -- sh -c 'exit 7'; then
	[ $rc = 7 ] && ok "kextrace -- sh -c 'exit 7': status 7" || { bad "exit 7 gave $rc"; show "$tmp/exit7.err"; }
fi

# 5. a command that maps and touches memory, with its children (fork tracepoint)
if run mem 180 "$kt" -- sh -c 'head -c 8388608 /dev/zero | cat >/dev/null'; then
	[ $rc = 0 ] && ok "a memory-touching pipeline: status 0" || { bad "pipeline: status $rc"; show "$tmp/mem.err"; }
	grep -q "^pages: no page seen (no kex page" "$tmp/mem.out" && ok "no kex page without kex" ||
		{ bad "pipeline: kex pages without kex?"; show "$tmp/mem.out"; }
fi

# 6. a command that cannot run
if run missing 120 "$kt" -- /nonexistent/kextrace-host-test; then
	[ $rc = 127 ] && ok "missing command: status 127" || { bad "missing command: status $rc"; show "$tmp/missing.err"; }
fi

# 7. -p PID ends when the process does (the target ends once kextrace is attached)
sleep 600 &
target=$!
timeout -k 5 180 "$kt" -p "$target" >"$tmp/attach.out" 2>"$tmp/attach.err" &
tracer=$!
for _ in $(seq 1200); do
	grep -q '^step ' "$tmp/attach.err" && break
	kill -0 "$tracer" 2>/dev/null || break
	sleep 0.1
done
kill "$target" 2>/dev/null
wait "$target" 2>/dev/null
wait "$tracer"
rc=$?
if [ $rc = 124 ] || [ $rc = 137 ]; then
	bad "-p: hung after its process ended"
elif [ $rc = 0 ]; then
	ok "-p: ended with the process"
else
	bad "-p: status $rc"; show "$tmp/attach.err"
fi

echo "# host: $passed passed, $failed failed"
[ $failed = 0 ]
