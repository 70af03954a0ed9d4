# tests/guest/inject.sh: kex's fault injection for leak hunting (module
# parameters inject_noput, inject_extra_get, inject_fail_leak): each leaks
# exactly the pages it names, says so in dmesg, counts them in
# pages_leaked_injected and never in pages_freed; the page allocator never
# sees them freed; nothing is injected when the parameters are unset; rmmod
# still works.
# Run by: scripts/vm [--kernel 6.12] -- tests/guest/run inject [CASE...]
# Each case_* runs in a subshell with set -e, cwd = repo root, $CASE_TMP.

# shellcheck source=tests/guest/kexlab.bash
. "$(dirname "${BASH_SOURCE[0]}")/kexlab.bash"

# expect_leaked LEAKED WHAT: once the mappings are gone and the frees have
# settled, pages_live == pages_leaked_injected == LEAKED, and
# pages_freed == pages_allocated - LEAKED.
expect_leaked() {
	local i
	for i in $(seq 50); do
		[ "$(kex_counter mappings)" = 0 ] && [ "$(kex_counter pages_live)" = "$1" ] && break
		sleep 0.1
	done
	expect_eq "$(kex_counter mappings)" 0 "$2: mappings"
	expect_eq "$(kex_counter pages_live)" "$1" "$2: pages_live"
	expect_eq "$(kex_counter pages_leaked_injected)" "$1" "$2: pages_leaked_injected"
	expect_eq "$(kex_counter pages_freed)" $(($(kex_counter pages_allocated) - $1)) "$2: pages_freed = pages_allocated - leaked"
}

# rig_run MODE PAGES: the rig straight through, in MODE; must succeed.
rig_run() {
	mmap_test /dev/kex "$2" --mode "$1" --no-wait >"$CASE_TMP/out" 2>&1 ||
		fail "mmap_test /dev/kex $2 --mode $1: $(cat "$CASE_TMP/out")"
	expect_match "$(cat "$CASE_TMP/out")" "^wrote and verified $2 pages\$" "$1: rig verified $2 pages"
}

# kex_unload_checked: rmmod works with pages leaked.
kex_unload_checked() {
	rmmod kex
	expect_eq "$(awk '$1 == "kex"' /proc/modules | wc -l)" 0 "rmmod after the leak"
}

# Tracing kex and the page allocator's frees (kmem:mm_page_free fires for
# every order-0 page given back, batched or not).
trace_frees_on() {
	echo 1 >"$KEX_TRACING/events/kmem/mm_page_free/enable"
	trace_on
}
trace_frees_off() {
	echo 0 >"$KEX_TRACING/events/kmem/mm_page_free/enable"
	trace_off
}
# pfn_of INDEX: the pfn kex allocated for page INDEX in the trace.
pfn_of() {
	sed -n "s/.*kex_page_alloc: pfn=\(0x[0-9a-f]*\) .*index=$1\$/\1/p" "$CASE_TMP/trace.txt"
}
# freed_by_kernel PFN: times the page allocator freed PFN in the trace
# after kex allocated it (it may have been freed by others before, and
# reused and freed again after): 0 for a leaked page, at least 1 otherwise.
freed_by_kernel() {
	awk -v pfn="$1" '
		/kex_page_alloc: / && index($0, "pfn=" pfn " ") { seen = 1; next }
		seen && /mm_page_free: / && match($0, /pfn=0x[0-9a-f]+/) &&
			substr($0, RSTART + 4, RLENGTH - 4) == pfn { n++ }
		END { print n + 0 }' "$CASE_TMP/trace.txt"
}

# --- cases --------------------------------------------------------------------

# Unset by default; nothing leaks; the parameters are root-only.
case_defaults() {
	kex_load
	local p=/sys/module/kex/parameters
	expect_eq "$(cat "$p/inject_noput")" "" "inject_noput default"
	expect_eq "$(cat "$p/inject_extra_get")" "" "inject_extra_get default"
	expect_eq "$(cat "$p/inject_fail_leak")" -1 "inject_fail_leak default"
	expect_eq "$(stat -c %a "$p/inject_noput") $(stat -c %a "$p/inject_extra_get") $(stat -c %a "$p/inject_fail_leak")" \
		"600 600 600" "inject_* permissions"
	expect_eq "$(kex_counter pages_leaked_injected)" 0 "pages_leaked_injected at load"
	dmesg_mark
	rig_run insert 8
	kex_balanced
	expect_eq "$(kex_counter pages_leaked_injected)" 0 "pages_leaked_injected after a rig"
	! dmesg_new | grep inject_ || fail "an inject_ line without injection"
}

# The index sets: lists and ranges below 64, "" clears; anything else fails.
case_params() {
	local rc=0
	insmod "$(kex_ko)" inject_noput=64 2>/dev/null || rc=$?
	[ "$rc" != 0 ] || fail "insmod with inject_noput=64 succeeded"
	rc=0
	insmod "$(kex_ko)" inject_extra_get=abc 2>/dev/null || rc=$?
	[ "$rc" != 0 ] || fail "insmod with inject_extra_get=abc succeeded"
	kex_load inject_noput=1,5 inject_extra_get=0-3,7
	local p=/sys/module/kex/parameters
	expect_eq "$(cat "$p/inject_noput")" "1,5" "inject_noput=1,5"
	expect_eq "$(cat "$p/inject_extra_get")" "0-3,7" "inject_extra_get=0-3,7"
	echo 63 >"$p/inject_noput"
	expect_eq "$(cat "$p/inject_noput")" 63 "inject_noput at run time"
	if (echo 64 >"$p/inject_noput") 2>/dev/null; then
		fail "writing 64 to inject_noput succeeded"
	fi
	if (echo 1-x >"$p/inject_noput") 2>/dev/null; then
		fail "writing 1-x to inject_noput succeeded"
	fi
	expect_eq "$(cat "$p/inject_noput")" 63 "inject_noput after the bad writes"
	echo >"$p/inject_noput"
	echo >"$p/inject_extra_get"
	expect_eq "$(cat "$p/inject_noput")$(cat "$p/inject_extra_get")" "" "cleared"
	rig_run insert 8
	kex_balanced
	expect_match "$(dmesg | tail -n 20)" 'inject_noput must list page indexes below 64 \(like 1,5 or 0-3\), not' "bad set logged"
}

# inject_noput with drop: pages 1 and 5 keep kex's reference forever; the
# allocator frees the 6 others at the munmap and never pages 1 and 5.
case_noput_drop() {
	kex_load inject_noput=1,5
	dmesg_mark
	trace_frees_on
	rig_run insert 8
	sleep 0.5
	trace_frees_off
	expect_leaked 2 "noput 1,5 drop"
	local log
	log=$(dmesg_new)
	expect_match "$log" 'kex: inject_noput: page 1 pfn 0x[0-9a-f]+: kex forgot its reference after insert, the page leaks$' "dmesg names page 1"
	expect_match "$log" 'kex: inject_noput: page 5 pfn 0x[0-9a-f]+: kex forgot its reference after insert, the page leaks$' "dmesg names page 5"
	expect_eq "$(grep -c 'kex: inject_' <<<"$log")" 2 "one dmesg line per injection"
	expect_match "$log" "kex: inject_noput: page 1 pfn $(pfn_of 1):" "dmesg pfn of page 1 is kex_page_alloc's"
	expect_eq "$(trace_count 'kex_page_free: .*reason=after_insert')" 6 "kex_page_free for the 6 others"
	local i
	for i in 1 5; do
		expect_eq "$(freed_by_kernel "$(pfn_of $i)")" 0 "page $i never freed by the allocator"
	done
	for i in 0 2 3 4 6 7; do
		expect_eq "$(freed_by_kernel "$(pfn_of $i)" | sed 's/^[1-9][0-9]*$/yes/')" yes "page $i freed by the allocator"
	done
	kex_unload_checked
}

# inject_noput with keep: kex forgets the reference at close instead.
case_noput_keep() {
	local mode
	for mode in insert batch fault pfn; do
		kex_load ref_policy=keep inject_noput=1,5 verbose=0
		dmesg_mark
		rig_run "$mode" 8
		expect_leaked 2 "$mode: noput 1,5 keep"
		expect_eq "$(dmesg_new | grep -cE 'kex: inject_noput: page [15] pfn 0x[0-9a-f]+: kex forgot its reference at close, the page leaks$')" 2 "$mode: dmesg names pages 1 and 5"
		kex_unload_checked
	done
	# batch with drop, too
	kex_load inject_noput=1,5 verbose=0
	rig_run batch 8
	expect_leaked 2 "batch: noput 1,5 drop"
	kex_unload_checked
	# an index past the mapping: nothing happens
	kex_load inject_noput=5 verbose=0
	dmesg_mark
	rig_run insert 2
	expect_leaked 0 "noput 5 with 2 pages"
	! dmesg_new | grep inject_ || fail "an inject_ line for a page that does not exist"
}

# inject_extra_get: one extra reference on page 3, every mode and policy.
case_extra_get() {
	local mode policy
	for mode in insert batch fault pfn; do
		for policy in drop keep; do
			case $mode/$policy in fault/drop | pfn/drop) continue ;; esac
			kex_load ref_policy=$policy inject_extra_get=3 verbose=0
			dmesg_mark
			trace_frees_on
			rig_run "$mode" 8
			sleep 0.5
			trace_frees_off
			expect_leaked 1 "$mode/$policy: extra_get 3"
			expect_match "$(dmesg_new)" "kex: inject_extra_get: page 3 pfn $(pfn_of 3): took a reference that is never put, the page leaks\$" "$mode/$policy: dmesg names page 3"
			expect_eq "$(freed_by_kernel "$(pfn_of 3)")" 0 "$mode/$policy: page 3 never freed by the allocator"
			expect_eq "$(freed_by_kernel "$(pfn_of 2)" | sed 's/^[1-9][0-9]*$/yes/')" yes "$mode/$policy: page 2 freed by the allocator"
			kex_unload_checked
		done
	done
	# noput and extra_get on one page: it leaks once
	kex_load inject_noput=3 inject_extra_get=3,4
	rig_run insert 8
	expect_leaked 2 "noput 3 + extra_get 3,4"
	kex_unload_checked
}

# inject_fail_leak=K: the mmap fails at page K like fail_at, and kex keeps
# what it held: page K (drop), or pages 0..K (keep); batch had allocated
# every page first.
case_fail_leak() {
	local mode policy k want
	for mode in insert batch pfn; do
		for policy in drop keep; do
			[ "$mode/$policy" = pfn/drop ] && continue
			for k in 0 3; do
				kex_load ref_policy=$policy inject_fail_leak=$k verbose=0
				dmesg_mark
				expect_eq "$(KEXPY_MODE=$mode kexpy req /dev/kex 8)" ENOMEM "$mode/$policy: mmap fails at page $k"
				case $mode/$policy in
				batch/drop) want=$((8 - k)) ;;
				batch/keep) want=8 ;;
				*/drop) want=1 ;;
				*/keep) want=$((k + 1)) ;;
				esac
				expect_leaked "$want" "$mode/$policy: fail_leak $k"
				expect_match "$(dmesg_new)" "kex: inject_fail_leak: mmap failed at page $k, leaked the $want pages kex still held\$" "$mode/$policy: dmesg"
				kex_unload_checked
			done
		done
	done
	# fault mode maps nothing at mmap: nothing to fail
	kex_load ref_policy=keep inject_fail_leak=3 verbose=0
	KEXPY_MODE=fault kexpy fork_split /dev/kex
	expect_leaked 0 "fault: fail_leak does not apply"
}

# Leaks add up across mappings and injections; rmmod works; a fresh load
# counts from zero.
case_rmmod_after_leaks() {
	kex_load ref_policy=keep inject_noput=0 inject_extra_get=1 inject_fail_leak=2 verbose=0
	local rc=0
	mmap_test /dev/kex 8 --no-wait >/dev/null 2>&1 || rc=$?	# fails at page 2
	[ "$rc" != 0 ] || fail "mmap_test succeeded although inject_fail_leak=2"
	echo -1 >/sys/module/kex/parameters/inject_fail_leak
	rig_run insert 8
	rig_run fault 8
	# fail_leak: pages 0..2 (3); two rigs: page 0 (noput) and page 1 (extra) each
	expect_leaked 7 "three mappings"
	kex_unload_checked
	kex_load
	expect_counters 0 0 0 0 "reloaded"
	expect_eq "$(kex_counter pages_leaked_injected)" 0 "pages_leaked_injected after reload"
	rig_run insert 8
	kex_balanced
}
