# tests/guest/leaklib.bash: helpers of the leak-hunting suites (leaks,
# leaks_inject): kextrace --leaks runs and checks on their JSON "leaks"
# section. Sourced by the suites after tests/guest/lib.sh; no case_* here.

# shellcheck source=tests/guest/kexlab.bash
. "$(dirname "${BASH_SOURCE[0]}")/kexlab.bash"

# leaks_run RC_VAR ARGS...: kextrace --leaks --json $CASE_TMP/out.json ARGS,
# text to $CASE_TMP/out.txt (shown), stderr to $CASE_TMP/err.txt; its exit
# status in RC_VAR.
leaks_run() {
	local __var=$1 __rc=0
	shift
	kextrace --leaks --json "$CASE_TMP/out.json" "$@" >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || __rc=$?
	sed -n '/^leaks:/,$p' "$CASE_TMP/out.txt"
	tail -n 3 "$CASE_TMP/err.txt"
	printf -v "$__var" '%s' "$__rc"
}

# leaksjson CODE: python CODE with j = the run's JSON, L = j['leaks'],
# by_verdict(v) = sorted indexes with verdict v, and ok(cond, what).
leaksjson() {
	python3 "$KEX_TOP/tests/guest/jcheck.py" "$CASE_TMP/out.json" "
L = j['leaks']
def by_verdict(v):
    return sorted(p['index'] for p in L['pages'] if p['verdict'] == v)
def page(i):
    return next(p for p in L['pages'] if p['index'] == i)
$1"
}

# expect_all_freed N: N page lives, every one freed, nothing lost.
expect_all_freed() {
	leaksjson "
N = $1
ok(len(L['pages']) == N, f\"{len(L['pages'])} page lives, expected {N}\")
ok(L['counts']['freed'] == N, f\"all freed: {L['counts']}\")
ok(L['bugs'] == 0, 'no leak, nothing freed while mapped')
ok(L['events_lost'] == 0, 'no events lost')
ok(L['device_closed'], 'the device was closed')
ok(all(p['balanced'] for p in L['pages']), 'every ledger balanced')
"
}

# leaks_all_start: kextrace --leaks --all in the background ($LEAKS_PID).
leaks_all_start() {
	kextrace --leaks --all --json "$CASE_TMP/out.json" "$@" >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" &
	LEAKS_PID=$!
	wait_kextrace_started "$CASE_TMP/err.txt"
}

# leaks_all_stop RC_VAR: SIGINT, wait (60 s at most: a kextrace that does not
# stop is a failure with its kernel stack and wait channel shown, not a hung
# suite), its exit status in RC_VAR.
leaks_all_stop() {
	local __var=$1 __rc=0 i
	kill -INT "$LEAKS_PID"
	for i in $(seq 600); do
		kill -0 "$LEAKS_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$LEAKS_PID" 2>/dev/null; then
		echo "kextrace $LEAKS_PID still running 60 s after SIGINT: wchan $(cat "/proc/$LEAKS_PID/wchan" 2>/dev/null)"
		cat "/proc/$LEAKS_PID/stack" 2>/dev/null
		grep -E '^(State|SigCgt|SigIgn|SigBlk):' "/proc/$LEAKS_PID/status" 2>/dev/null
		tail -n 20 "$CASE_TMP/err.txt"
		kill -9 "$LEAKS_PID"
		wait "$LEAKS_PID" 2>/dev/null
		fail "kextrace --all did not stop on SIGINT"
		return 1
	fi
	wait "$LEAKS_PID" || __rc=$?
	sed -n '/^leaks:/,$p' "$CASE_TMP/out.txt"
	tail -n 3 "$CASE_TMP/err.txt"
	printf -v "$__var" '%s' "$__rc"
}

# load_start LOOPS: LOOPS loops per vCPU, each mapping 4 fault-mode pages of
# kex, writing and unmapping them, back to back (the torture's kex load; kex
# loaded with ref_policy=keep). Stopped by load_stop, or when the case ends.
load_start() {
	local _
	LOAD_PIDS=()
	for _ in $(seq $(($(nproc) * $1))); do
		(while :; do mmap_test /dev/kex 4 --no-wait --mode fault >/dev/null 2>&1 || exit 1; done) &
		LOAD_PIDS+=($!)
	done
	trap load_stop EXIT
}

# load_stop: every loop must still run (a rig failed otherwise), then stop
# them and wait for their last rigs.
load_stop() {
	local p dead=0
	[ ${#LOAD_PIDS[@]} -gt 0 ] || return 0
	for p in "${LOAD_PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || dead=$((dead + 1))
	done
	# cleanup: a load process that died early is counted in $dead above
	# (and fails the case); kill and wait then only reap what is left
	kill "${LOAD_PIDS[@]}" 2>/dev/null || true
	wait "${LOAD_PIDS[@]}" 2>/dev/null || true
	LOAD_PIDS=()
	for p in $(seq 50); do pgrep -x mmap_test >/dev/null || break; sleep 0.1; done
	expect_eq "$dead" 0 "load loops that died"
}
