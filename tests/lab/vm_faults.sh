#!/usr/bin/env bash
# The guest harness under fault: scripts/vm must say what went wrong and exit
# with its own status, leaving nothing running. Runs on the machine (it boots
# guests itself). Usage: tests/lab/vm_faults.sh CASE
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
log=$(mktemp /tmp/vm-faults-console.XXXXXX)
vm() { "$top/scripts/vm" --log "$log" "$@"; }
vm=vm
err=$(mktemp)
trap 'rm -f "$err" "$log"' EXIT
check() { # check WHAT CONDITION...
	local what=$1
	shift
	if "$@"; then echo "ok: $what"; else echo "FAILED: $what"; cat "$err"; exit 1; fi
}
# each run's qemu names this test's own console log on its command line
no_qemu_left() { ! pgrep -f "file:$log" >/dev/null; }

# crash_line LINE KIND: a guest whose kernel logs LINE is stopped at once,
# with the crash named as KIND and LINE shown
crash_line() {
	local line=$1 kind=$2 start rc took
	start=$(date +%s)
	"$vm" --timeout 120 -- sh -c "echo '$line' >/dev/kmsg; sleep 600" 2>"$err" >/dev/null
	rc=$?
	took=$(($(date +%s) - start))
	check "exit 125 on a $kind (got $rc)" [ "$rc" = 125 ]
	check "says the guest kernel had a $kind" grep -qF "guest kernel $kind" "$err"
	check "shows the line" grep -qF "$line" "$err"
	check "stopped well before the deadline (${took}s)" [ "$took" -lt 60 ]
	check "no guest left running" no_qemu_left
}

case ${1:?case} in
status)	# the command's exit status and both streams come back, in order
	out=$("$vm" -- sh -c 'echo one; echo two >&2; echo three; exit 7' 2>"$err")
	rc=$?
	check "exit status 7 (got $rc)" [ "$rc" = 7 ]
	check "stdout is one, three" [ "$out" = $'one\nthree' ]
	check "stderr has two" grep -qx two "$err"
	check "the log is named on failure" grep -q "console log: $log" "$err"
	check "no guest left running" no_qemu_left
	;;
clean)	# a first successful run, with no console log anywhere yet, is exit 0
	dir=$(mktemp -d /tmp/vm-faults-logs.XXXXXX)
	KEX_VM_LOGDIR=$dir "$top/scripts/vm" -- true 2>"$err"
	rc=$?
	left=$(find "$dir" -type f | wc -l)
	rm -rf "$dir"
	check "exit 0 with an empty log folder (got $rc)" [ "$rc" = 0 ]
	check "a successful run keeps no console log (left $left)" [ "$left" = 0 ]
	check "no guest left running" no_qemu_left
	;;
oops)	# a kernel oops is reported with its text at once, not at the deadline
	crash_line 'Oops: 0000 [#1] kextrace lab test' oops
	;;
lockup)	# a soft lockup or an RCU stall is a crash too, reported at once
	crash_line 'watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [lab:1]' 'soft lockup'
	crash_line 'rcu: INFO: rcu_preempt detected stalls on CPUs/tasks' 'RCU stall'
	;;
hang)	# a guest that never finishes is killed at the timeout
	"$vm" --timeout 12 -- sleep 600 2>"$err" >/dev/null
	rc=$?
	check "exit 124 on timeout (got $rc)" [ "$rc" = 124 ]
	check "says it timed out" grep -q 'timed out after 12 s' "$err"
	check "no guest left running" no_qemu_left
	;;
panic)	# a guest kernel panic is reported with its text
	"$vm" -- sh -c 'echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger; sleep 30' 2>"$err" >/dev/null
	rc=$?
	check "exit 125 on panic (got $rc)" [ "$rc" = 125 ]
	check "says the guest panicked" grep -q 'guest kernel panicked' "$err"
	check "shows the panic text" grep -q 'Kernel panic - not syncing' "$err"
	check "no guest left running" no_qemu_left
	;;
share)	# a repository that is not there (9p share broken) is a clear lab error
	"$vm" -- sh -c 'ls /definitely/not/here' 2>"$err" >/dev/null
	rc=$?
	check "a failing command is its own status, not a lab error (got $rc)" [ "$rc" = 2 ]
	"$vm" --kernel 9.9 -- true 2>"$err"
	rc=$?
	check "unknown kernel: exit 125 (got $rc)" [ "$rc" = 125 ]
	check "names the unknown kernel" grep -q "no guest kernel '9.9'" "$err"
	"$vm" 2>"$err"
	rc=$?
	check "no command: usage, exit 2 (got $rc)" [ "$rc" = 2 ]
	;;
*) echo "unknown case $1"; exit 2 ;;
esac
