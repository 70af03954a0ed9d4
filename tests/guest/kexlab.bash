# tests/guest/kexlab.bash: helpers shared by the kex suites (lab, modes,
# inject, boundary): the rig driven through a FIFO, dmesg marks, counters,
# pmap, tracepoints, and kexpy (tests/guest/kexlab.py). Sourced by each
# suite after tests/guest/lib.sh; defines no case_* functions.

# shellcheck disable=SC2034 # used by the suites
KEX_SYS=/sys/class/kex/kex
KEX_TRACING=/sys/kernel/tracing

kex_major() {
	awk '$2 == "kex" { print $1; exit }' /proc/devices
}

# dmesg_mark, then dmesg_new: the kernel log lines since the mark. The mark
# is a line written to /dev/kmsg, not a line count: once the log buffer is
# full (several suites in one boot), counts stop moving. A mark the buffer
# overwrote fails dmesg_new (status 1, said on stderr) instead of reading as
# "nothing logged since": the lines after it may be gone too.
dmesg_mark() {
	DMESG_MARK="kexlab mark $$.$RANDOM.$(date +%s%N)"
	echo "$DMESG_MARK" >/dev/kmsg
}
dmesg_new() {
	dmesg | awk -v m="$DMESG_MARK" 'seen { print } index($0, m) { seen = 1 }
		END { if (!seen) { print "FAILED: dmesg_new: the mark is no longer in the kernel log (overwritten)" >"/dev/stderr"; exit 1 } }'
}

# rig_start ARGS...: run mmap_test ARGS with stdin on a FIFO held open on fd 7
# and wait for its first prompt. Sets RIG_PID, RIG_OUT, RIG_ADDR (0x...).
rig_start() {
	local fifo=$CASE_TMP/rig.in
	RIG_OUT=$CASE_TMP/rig.out
	rm -f "$fifo" "$RIG_OUT"
	mkfifo "$fifo"
	mmap_test "$@" <"$fifo" >"$RIG_OUT" 2>&1 &
	RIG_PID=$!
	exec 7>"$fifo"
	rig_wait_line '^press a key to exercise memory write 0x'
	# shellcheck disable=SC2034 # used by the suites
	RIG_ADDR=$(sed -n 's/^press a key to exercise memory write \(0x[0-9a-f]*\)$/\1/p' "$RIG_OUT")
	expect_match "$(cat "$RIG_OUT")" "^pid: $RIG_PID\$" "rig prints its pid"
}

# rig_wait_line REGEX: wait (10 s at most) for the rig to print a line.
rig_wait_line() {
	local _
	for _ in $(seq 100); do
		grep -Eq -- "$1" "$RIG_OUT" && return 0
		kill -0 "$RIG_PID" 2>/dev/null || break
		sleep 0.1
	done
	grep -Eq -- "$1" "$RIG_OUT" && return 0
	fail "mmap_test never printed /$1/; its output: $(cat "$RIG_OUT")"
}

# rig_write: answer the first prompt; wait until the pattern is written.
rig_write() {
	echo >&7
	rig_wait_line '^press a key to terminate$'
	expect_match "$(cat "$RIG_OUT")" '^wrote and verified [0-9]+ pages$' "rig verified its pattern"
}

# rig_finish: answer the last prompt; the rig must exit 0.
rig_finish() {
	local rc=0
	echo >&7
	exec 7>&-
	wait "$RIG_PID" || rc=$?
	expect_eq "$rc" 0 "mmap_test exit status (output: $(tr '\n' '|' <"$RIG_OUT"))"
}

# pmap_line PID ADDR: "Kbytes RSS Dirty Mode Mapping" of the mapping at ADDR.
pmap_line() {
	local a
	a=$(printf '%016x' "$2")
	pmap -x "$1" | awk -v a="$a" '$1 == a { print $2, $3, $4, $5, $6 }'
}

# expect_counters ALLOCATED FREED LIVE MAPPINGS WHAT
expect_counters() {
	expect_eq "$(kex_counter pages_allocated) $(kex_counter pages_freed) $(kex_counter pages_live) $(kex_counter mappings)" \
		"$1 $2 $3 $4" "$5: pages_allocated pages_freed pages_live mappings"
}

# kexpy CMD ARGS...: run tests/guest/kexlab.py (raw mmap/mremap/fork/threads).
kexpy() {
	/usr/bin/python3 "$KEX_TOP/tests/guest/kexlab.py" "$@"
}


# rig_basic POLICY: the 8-page rig through its prompts; counters at each step.
rig_basic() {
	kex_load ref_policy="$1"
	expect_eq "$(cat /sys/module/kex/parameters/ref_policy)" "$1" "ref_policy parameter"
	rig_start /dev/kex 8
	expect_counters 8 0 8 1 "$1, mapped"
	rig_write
	rig_finish
	kex_balanced
	expect_counters 8 8 0 0 "$1, after the rig"
}

# tracepoint helpers: trace_on clears the buffer and enables system kex.
trace_on() {
	echo 0 >"$KEX_TRACING/tracing_on"
	echo >"$KEX_TRACING/trace"
	echo 1 >"$KEX_TRACING/events/kex/enable"
	echo 1 >"$KEX_TRACING/tracing_on"
}
trace_off() {
	echo 0 >"$KEX_TRACING/events/kex/enable"
	grep -v '^#' "$KEX_TRACING/trace" >"$CASE_TMP/trace.txt"
	echo >"$KEX_TRACING/trace"
}
trace_count() {
	# the number of lines matching (0 is an answer, not a failure)
	awk -v re="$1" '$0 ~ re { n++ } END { print n + 0 }' "$CASE_TMP/trace.txt"
}
