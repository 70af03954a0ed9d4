# tests/guest/modes.sh: kex's four mapping modes (insert, batch, fault, pfn),
# chosen per open file with KEX_IOC_SET_MODE or by the module parameter
# "mode": the rig in every mode and size, counters, pmap, tracepoints, the
# fault handler's laziness, refaults, races and forks, error paths.
# Run by: scripts/vm [--kernel 6.12] -- tests/guest/run modes [CASE...]
# Each case_* runs in a subshell with set -e, cwd = repo root, $CASE_TMP.

# shellcheck source=tests/guest/kexlab.bash
. "$(dirname "${BASH_SOURCE[0]}")/kexlab.bash"

# The policies each mode allows (fault and pfn need keep, kex_uapi.h).
mode_policies() {
	case $1 in
	insert | batch) echo drop keep ;;
	*) echo keep ;;
	esac
}

# rig_sizes MODE POLICY [RIG OPTIONS...]: the rig with 1, 8 and 1024 pages.
rig_sizes() {
	local mode=$1 policy=$2 n a=0
	shift 2
	kex_load ref_policy="$policy" verbose=0
	for n in 1 8 1024; do
		mmap_test /dev/kex "$n" --mode "$mode" --no-wait "$@" >"$CASE_TMP/out" 2>&1 ||
			fail "$mode/$policy: mmap_test $n pages failed: $(cat "$CASE_TMP/out")"
		expect_match "$(cat "$CASE_TMP/out")" "^wrote and verified $n pages\$" "$mode/$policy $*: rig with $n pages"
		a=$((a + n))
		kex_balanced
		expect_counters "$a" "$a" 0 0 "$mode/$policy $*: after $n pages"
	done
	kex_unload
}

# --- cases --------------------------------------------------------------------

# The ioctls and the mode parameter.
case_ioctl() {
	local rc=0
	insmod "$(kex_ko)" mode=bogus 2>/dev/null || rc=$?
	[ "$rc" != 0 ] || fail "insmod with mode=bogus succeeded"
	kex_load
	local p=/sys/module/kex/parameters
	expect_eq "$(cat "$p/mode")" insert "mode parameter default"
	local out
	out=$(kexpy ioctls /dev/kex)
	echo "$out"
	expect_match "$out" '^initial mode: insert$' "a new file starts in the module's mode"
	expect_match "$out" '^mode 4: EINVAL$' "SET_MODE 4"
	expect_match "$out" '^mode 0xffffffff: EINVAL$' "SET_MODE 0xffffffff"
	expect_match "$out" '^a NULL pointer: EFAULT$' "SET_MODE from NULL"
	expect_match "$out" '^GET to a NULL pointer: EFAULT$' "GET_MODE to NULL"
	expect_match "$out" '^an unknown request: ENOTTY$' "unknown ioctl"
	if (echo bogus >"$p/mode") 2>/dev/null; then
		fail "writing bogus to the mode parameter succeeded"
	fi
	local m
	for m in batch fault pfn insert; do
		echo "$m" >"$p/mode"
		expect_eq "$(cat "$p/mode")" "$m" "mode parameter set to $m"
		expect_eq "$(kexpy mode_of_new_open /dev/kex)" "$m" "a file opened with mode=$m"
	done
	kex_unload
	kex_load mode=fault ref_policy=keep
	expect_eq "$(kexpy mode_of_new_open /dev/kex)" fault "insmod mode=fault"
	# the rig without --mode maps in the module's mode: nothing before the prompt
	rig_start /dev/kex 4
	expect_counters 0 0 0 1 "rig without --mode under mode=fault, at the prompt"
	rig_write
	rig_finish
	kex_balanced
	expect_counters 4 4 0 0 "rig without --mode under mode=fault, after"
}

# The rig's --mode and --read-first options; fault and pfn refuse drop.
case_rig_options() {
	kex_load
	local rc args
	for args in "--mode" "--mode bogus" "--mode=" "--mode=Insert"; do
		rc=0
		# shellcheck disable=SC2086
		mmap_test /dev/kex 1 $args --no-wait >"$CASE_TMP/out" 2>"$CASE_TMP/err" || rc=$?
		expect_eq "$rc" 2 "mmap_test $args: exit status"
		expect_eq "$(wc -l <"$CASE_TMP/err")" 1 "mmap_test $args: one error line ($(cat "$CASE_TMP/err"))"
	done
	expect_match "$(cat "$CASE_TMP/err")" "unknown --mode 'Insert': the kex modes are insert, batch, fault and pfn" "bad mode named"
	local mode
	dmesg_mark
	for mode in fault pfn; do
		rc=0
		mmap_test /dev/kex 4 --mode "$mode" --no-wait >"$CASE_TMP/out" 2>"$CASE_TMP/err" || rc=$?
		expect_eq "$rc" 1 "$mode with ref_policy=drop: rig exit status"
		expect_match "$(cat "$CASE_TMP/err")" "mode $mode needs the kex module's ref_policy=keep" "$mode with drop: rig says why"
		expect_eq "$(KEXPY_MODE=$mode kexpy req /dev/kex 4)" EINVAL "$mode with drop: mmap errno"
	done
	local log
	log=$(dmesg_new)
	expect_match "$log" 'kex: mmap rejected: mode fault needs ref_policy=keep: kex must hold each page to map it again on a later fault$' "fault/drop rejection logged"
	expect_match "$log" 'kex: mmap rejected: mode pfn needs ref_policy=keep: a pfn mapping holds no page reference$' "pfn/drop rejection logged"
	expect_counters 0 0 0 0 "after the refused mmaps"
	mmap_test --help | grep -q -- '--read-first' || fail "--help does not mention --read-first"
}

# Every mode, every policy it allows, 1, 8 and 1024 pages; fault with and
# without --read-first.
case_sizes_insert() {
	local p
	for p in $(mode_policies insert); do rig_sizes insert "$p"; done
	rig_sizes insert drop --read-first
}
case_sizes_batch() {
	local p
	for p in $(mode_policies batch); do rig_sizes batch "$p"; done
}
case_sizes_fault() {
	rig_sizes fault keep
	rig_sizes fault keep --read-first
}
case_sizes_pfn() {
	local p
	for p in $(mode_policies pfn); do rig_sizes pfn "$p"; done
}

# Mode fault is lazy: nothing allocated at mmap, 8 pages after the write;
# pmap shows RSS and Dirty grow with the faults; the tracepoints tell it.
case_fault_lazy() {
	kex_load ref_policy=keep verbose=1
	dmesg_mark
	trace_on
	rig_start /dev/kex 8 --mode fault
	expect_counters 0 0 0 1 "fault: right after mmap"
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "32 0 0 rw-s- kex" "fault: pmap before the write"
	rig_write
	expect_counters 8 0 8 1 "fault: after the write"
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "32 32 32 rw-s- kex" "fault: pmap after the write"
	rig_finish
	trace_off
	kex_balanced
	expect_counters 8 8 0 0 "fault: after the rig"
	expect_eq "$(trace_count 'kex_mmap_mode: .*mode=fault$')" 1 "kex_mmap_mode"
	expect_eq "$(trace_count 'kex_mmap_done: .*ret=0 mapped=0$')" 1 "kex_mmap_done: nothing mapped at mmap"
	expect_eq "$(trace_count 'kex_page_insert:')" 0 "no kex_page_insert"
	expect_eq "$(trace_count 'kex_page_alloc:')" 8 "kex_page_alloc in the faults"
	expect_eq "$(trace_count 'kex_fault: .*flags=write\|alloc$')" 8 "one write fault per page, each allocating"
	expect_eq "$(trace_count 'kex_fault:')" 8 "no other fault"
	expect_eq "$(trace_count 'kex_page_free: .*reason=at_close')" 8 "frees at close"
	# the pfn allocated is the pfn faulted in, page by page
	expect_eq "$(sed -n 's/.*kex_page_alloc: pfn=\(0x[0-9a-f]*\) .*index=\([0-9]*\)$/\2 \1/p' "$CASE_TMP/trace.txt" | sort -n)" \
		"$(sed -n 's/.*kex_fault: uaddr=0x[0-9a-f]* pfn=\(0x[0-9a-f]*\) index=\([0-9]*\) .*/\2 \1/p' "$CASE_TMP/trace.txt" | sort -n)" \
		"alloc and fault pfns"
	local log
	log=$(dmesg_new)
	expect_match "$log" 'kex: mode fault: no page mapped yet, each comes in at its first fault$' "mmap line"
	expect_eq "$(grep -c 'kex: write fault on page [0-9]* at 0x[0-9a-f]*: pfn 0x[0-9a-f]*, allocated$' <<<"$log")" 8 "one dmesg line per fault"
}

# --read-first: the pages come in on read faults; the PTE a read fault of a
# shared writable mapping installs is writable, so the write faults no more.
case_fault_read_first() {
	kex_load ref_policy=keep verbose=0
	trace_on
	rig_start /dev/kex 8 --mode fault --read-first
	expect_counters 0 0 0 1 "fault --read-first: at the prompt"
	rig_write
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "32 32 32 rw-s- kex" "pmap after the write"
	rig_finish
	trace_off
	kex_balanced
	expect_eq "$(trace_count 'kex_fault: .*flags=alloc$')" 8 "one read fault per page, each allocating"
	expect_eq "$(trace_count 'kex_fault:')" 8 "no write fault after the reads"
}

# Refaults after MADV_DONTNEED get the same pages; forks share them; threads
# and processes faulting the same page at once get one page.
case_fault_refault() {
	kex_load ref_policy=keep verbose=0
	KEXPY_MODE=fault kexpy fault_refault /dev/kex 16
	kex_balanced
	expect_counters 16 16 0 0 "after the refaults"
}
case_fault_race() {
	kex_load ref_policy=keep verbose=0
	KEXPY_MODE=fault kexpy fault_race /dev/kex 64 8 20
	KEXPY_MODE=fault kexpy fault_fork /dev/kex 64
	kex_balanced
	expect_counters $((64 * 20 + 64)) $((64 * 20 + 64)) 0 0 "after the races"
}

# fail_at in mode fault: the first fault at that page gets SIGBUS, the others
# work; nothing leaks.
case_fault_fail_at() {
	kex_load ref_policy=keep fail_at=2
	dmesg_mark
	trace_on
	local out
	out=$(KEXPY_MODE=fault kexpy touch /dev/kex 4 2 write)
	trace_off
	expect_match "$out" '^touch page 2: SIGBUS$' "fault at page 2"
	expect_match "$out" '^allocated: 0$' "nothing allocated for it"
	expect_match "$(dmesg_new)" 'kex: fault on page 2 at 0x[0-9a-f]+ failed: fail_at$' "dmesg"
	expect_eq "$(trace_count 'kex_fault: .*pfn=0xffffffffffffffff index=2 flags=write\|alloc\|error$')" 1 "kex_fault with error"
	out=$(KEXPY_MODE=fault kexpy touch /dev/kex 4 1 read)
	expect_match "$out" '^touch page 1: ok$' "fault at page 1"
	expect_match "$out" '^allocated: 1$' "one page for it"
	kex_balanced
}

# Mode batch: every page allocated first, then vm_insert_pages in calls of
# at most 64 pages; kex_page_insert still fires for every page.
case_batch_trace() {
	local policy
	for policy in drop keep; do
		kex_load ref_policy="$policy" verbose=0
		trace_on
		mmap_test /dev/kex 200 --mode batch --no-wait >"$CASE_TMP/out"
		trace_off
		kex_balanced
		expect_counters 200 200 0 0 "$policy: after 200 pages"
		expect_eq "$(trace_count 'kex_mmap_mode: .*mode=batch$')" 1 "$policy: kex_mmap_mode"
		expect_eq "$(sed -n 's/.*kex_batch: uaddr=0x[0-9a-f]* //p' "$CASE_TMP/trace.txt" | tr '\n' ' ')" \
			"index=0 requested=64 mapped=64 ret=0 index=64 requested=64 mapped=64 ret=0 index=128 requested=64 mapped=64 ret=0 index=192 requested=8 mapped=8 ret=0 " \
			"$policy: kex_batch calls"
		expect_eq "$(trace_count 'kex_page_insert: .*ret=0$')" 200 "$policy: kex_page_insert per page"
		expect_eq "$(trace_count 'kex_page_alloc:')" 200 "$policy: kex_page_alloc"
		local last_alloc first_insert
		last_alloc=$(grep -n 'kex_page_alloc:' "$CASE_TMP/trace.txt" | tail -n 1 | cut -d: -f1)
		first_insert=$(grep -n 'kex_batch:' "$CASE_TMP/trace.txt" | head -n 1 | cut -d: -f1)
		[ "$last_alloc" -lt "$first_insert" ] || fail "$policy: a page was allocated after the first vm_insert_pages"
		if [ "$policy" = drop ]; then
			expect_eq "$(trace_count 'kex_page_free: .*reason=after_insert')" 200 "drop: frees after insert"
		else
			expect_eq "$(trace_count 'kex_page_free: .*reason=at_close')" 200 "keep: frees at close"
		fi
		expect_eq "$(sed -n 's/.*kex_page_alloc: pfn=\(0x[0-9a-f]*\) .*index=\([0-9]*\)$/\2 \1/p' "$CASE_TMP/trace.txt")" \
			"$(sed -n 's/.*kex_page_insert: pfn=\(0x[0-9a-f]*\) .*index=\([0-9]*\) ret=0$/\2 \1/p' "$CASE_TMP/trace.txt")" \
			"$policy: alloc and insert pfns"
		rig_start /dev/kex 8 --mode batch
		expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "32 32 0 rw-s- kex" "$policy: pmap before the write"
		rig_write
		rig_finish
		kex_balanced
		kex_unload
	done
}

# The error paths of batch and pfn (fail_at): nothing leaks, kex frees what
# it held with reason error.
case_error_paths() {
	local policy at
	for policy in drop keep; do
		for at in 0 70; do
			kex_load ref_policy=$policy fail_at=$at verbose=0
			dmesg_mark
			trace_on
			expect_eq "$(KEXPY_MODE="batch" kexpy req /dev/kex 200)" ENOMEM "batch/$policy: failure at page $at"
			trace_off
			expect_match "$(dmesg_new)" "kex: mmap failed: vm_insert_pages of pages $at-$((at + 63)) at 0x[0-9a-f]+ returned -12, 0 mapped\$" "batch/$policy: failure logged"
			kex_balanced
			expect_counters 200 200 0 0 "batch/$policy: after the failure at $at"
			local errors=$((200 - at))
			[ "$policy" = keep ] && errors=200
			expect_eq "$(trace_count 'kex_page_free: .*reason=error')" "$errors" "batch/$policy: frees with reason error"
			expect_eq "$(trace_count "kex_mmap_done: .*ret=-12 mapped=$at\$")" 1 "batch/$policy: kex_mmap_done"
			expect_eq "$(trace_count "kex_page_insert: .*index=$at ret=-12\$")" 1 "batch/$policy: kex_page_insert of the failed page"
			expect_eq "$(trace_count 'kex_vma_close:')" 0 "batch/$policy: no vma_close for a failed mmap"
			kex_unload
		done
	done
	for at in 0 3; do
		kex_load ref_policy=keep fail_at=$at
		dmesg_mark
		trace_on
		expect_eq "$(KEXPY_MODE=pfn kexpy req /dev/kex 8)" ENOMEM "pfn: failure at page $at"
		trace_off
		expect_match "$(dmesg_new)" "kex: mmap failed: remap_pfn_range of page $at at 0x[0-9a-f]+ returned -12\$" "pfn: failure logged"
		kex_balanced
		expect_counters $((at + 1)) $((at + 1)) 0 0 "pfn: after the failure at $at"
		expect_eq "$(trace_count 'kex_page_free: .*reason=error')" $((at + 1)) "pfn: frees with reason error"
		kex_unload
	done
}

# Mode pfn: VM_PFNMAP|VM_IO, special PTEs: pmap shows the mapping with no
# RSS (smaps counts no special PTE), pagemap shows a hole (the page walker
# skips VM_PFNMAP); only kex's tracepoints tie the pfns to the addresses.
case_pfn_map() {
	kex_load ref_policy=keep verbose=1
	dmesg_mark
	trace_on
	rig_start /dev/kex 8 --mode pfn
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "32 0 0 rw-s- kex" "pmap of the pfn mapping"
	local flags
	flags=$(awk -v a="${RIG_ADDR#0x}-" 'index($1, a) == 1 { m = 1 } m && /^VmFlags:/ { print; exit }' "/proc/$RIG_PID/smaps")
	expect_match "$flags" ' io( |$)' "VmFlags has io (VM_IO)"
	expect_match "$flags" ' pf( |$)' "VmFlags has pf (VM_PFNMAP)"
	# the page walker skips VM_PFNMAP VMAs: pagemap sees a hole
	expect_eq "$(kexpy pagemap "$RIG_PID" "$RIG_ADDR" 8)" "- - - - - - - -" "pagemap of the pfn mapping"
	expect_counters 8 0 8 1 "pfn: mapped"
	rig_write
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "32 0 0 rw-s- kex" "pmap after the write"
	rig_finish
	trace_off
	kex_balanced
	expect_eq "$(sed -n 's/.*kex_page_alloc: pfn=\(0x[0-9a-f]*\) .*index=\([0-9]*\)$/\2 \1/p' "$CASE_TMP/trace.txt")" \
		"$(sed -n 's/.*kex_page_insert: pfn=\(0x[0-9a-f]*\) .*index=\([0-9]*\) ret=0$/\2 \1/p' "$CASE_TMP/trace.txt")" \
		"alloc and remap pfns"
	expect_eq "$(trace_count 'kex_page_insert: .*ret=0$')" 8 "kex_page_insert per remapped page"
	expect_eq "$(trace_count 'kex_page_free: .*reason=at_close')" 8 "frees at close"
	expect_eq "$(trace_count 'kex_mmap_mode: .*mode=pfn$')" 1 "kex_mmap_mode"
	local log
	log=$(dmesg_new)
	expect_match "$log" 'kex: remapped page 0 pfn 0x[0-9a-f]+ at 0x[0-9a-f]+$' "dmesg per page"
	expect_match "$log" 'kex: completed remapping 8 pages$' "completion line"
}

# The lab's fork/split, multi-open and threads scenarios in every mode.
case_fork_split_modes() {
	local mode policy
	for mode in batch fault pfn; do
		for policy in $(mode_policies $mode); do
			kex_load ref_policy="$policy" verbose=0
			echo "-- mode=$mode ref_policy=$policy"
			KEXPY_MODE=$mode kexpy fork_split /dev/kex
			kex_balanced
			expect_counters 8 8 0 0 "$mode/$policy: after fork and split"
			kex_unload
		done
	done
}
case_threads_modes() {
	local mode policy
	for mode in batch fault pfn; do
		for policy in $(mode_policies $mode); do
			kex_load ref_policy="$policy" verbose=0
			echo "-- mode=$mode ref_policy=$policy"
			KEXPY_MODE=$mode kexpy threads /dev/kex 4 10 16 &
			local other=$!
			KEXPY_MODE=$mode kexpy threads /dev/kex 2 10 3
			wait "$other"
			kex_balanced
			# multi checks the global counters: alone
			KEXPY_MODE=$mode kexpy multi /dev/kex 3 2
			kex_balanced
			expect_counters $((4 * 10 * 16 + 2 * 10 * 3 + 21)) $((4 * 10 * 16 + 2 * 10 * 3 + 21)) 0 0 "$mode/$policy: after the threads"
			kex_unload
		done
	done
}

# The new tracepoints' formats (docs/architecture.md, "kex additions").
case_trace_format() {
	kex_load
	expect_trace_formats <<'EOF'
kex_mmap_mode u64:vm_start:8:8,u32:mode:16:4,u32:pad:20:4
kex_batch u64:uaddr:8:8,u32:index:16:4,u32:requested:20:4,u32:mapped:24:4,s32:ret:28:4
kex_fault u64:uaddr:8:8,u64:pfn:16:8,u32:index:24:4,u32:flags:28:4
EOF
}
