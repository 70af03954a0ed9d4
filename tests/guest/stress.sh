# tests/guest/stress.sh: short runs of the randomized stress
# (tests/guest/stress.py; scripts/soak runs the long one). Random seeds: a
# failure prints the seed that replays it.

# stress_run ARGS...: stress.py run ARGS on the loaded kex; output shown.
stress_run() {
	/usr/bin/python3 "$KEX_TOP/tests/guest/stress.py" run --out "$CASE_TMP/stress" "$@"
}

# One kextrace --leaks per iteration: every iteration gets its own verdict.
case_one_session_per_iteration() {
	kex_load verbose=0
	stress_run --iterations 4 --per-trace 1
	kex_balanced
}

# Many iterations under one kextrace --leaks each: the soak's shape.
case_batched_sessions() {
	kex_load verbose=0
	stress_run --iterations 24 --per-trace 12
	kex_balanced
}

# The checks can fail: with kex told to skip a put_page (inject_noput), the
# stress stops at the first iteration that leaks, names the leak and prints
# the seeds that replay it.
case_detects_an_injected_leak() {
	kex_load verbose=0 inject_noput=0
	local rc=0 out
	out=$(stress_run --iterations 3 --per-trace 3 --seed 42) || rc=$?
	echo "$out"
	expect_eq "$rc" 1 "stress exit status with a leaking kex"
	expect_match "$out" "kex injected leaks" "the iteration names kex's injected leak"
	expect_match "$out" "^FAIL session seeds 42\.\.44" "the session fails"
	expect_match "$out" "leaked" "kextrace's verdict names the leaked page"
	expect_match "$out" "replay its iterations one by one with: --seed 42 --iterations 3 --per-trace 1" "the replay command"
}
