# tests/guest/lab.sh: the seed's lab, in the guest: the kex device, the rig
# (mmap_test), pmap, dmesg, the module's counters and tracepoints, bad
# requests, kills, fork and split VMAs, both ref policies.
# Run by: scripts/vm [--kernel 6.12] -- tests/guest/run lab [CASE...]
# Each case_* runs in a subshell with set -e, cwd = repo root, $CASE_TMP.

# --- helpers ------------------------------------------------------------------

# shellcheck source=tests/guest/kexlab.bash
. "$(dirname "${BASH_SOURCE[0]}")/kexlab.bash"

# --- cases --------------------------------------------------------------------

# The char device, its class, /dev/kex, the counters, the seed's dmesg lines.
case_device() {
	dmesg_mark
	kex_load verbose=1
	local major
	major=$(kex_major)
	expect_match "$major" '^[0-9]+$' "kex in /proc/devices"
	expect_eq "$(stat -c '%F %t:%T' /dev/kex)" "character special file $(printf '%x' "$major"):0" "/dev/kex"
	expect_eq "$(cat "$KEX_SYS/dev")" "$major:0" "class kex device kex"
	expect_counters 0 0 0 0 "fresh"
	expect_eq "$(cat /sys/module/kex/parameters/max_pages)" 65536 "max_pages default"
	expect_eq "$(cat /sys/module/kex/parameters/verbose)" Y "verbose=1"
	mmap_test /dev/kex 1 --no-wait >"$CASE_TMP/out"
	local log
	log=$(dmesg_new)
	expect_match "$log" "kex: loaded: major $major, ref_policy drop, max_pages 65536" "load line"
	expect_match "$log" 'kex: vma->vm_end [0-9]+ vm_start [0-9]+ len 4096 pages 1 vm_pgoff 0$' "seed's vma line"
	expect_match "$log" 'kex: inserted page 0 pfn 0x[0-9a-f]+ at 0x[0-9a-f]+$' "seed's insert line"
	expect_match "$log" 'kex: mapping->a_ops [0-9a-f]+, name kex$' "seed's mapping line"
	expect_match "$log" 'kex: completed inserting 1 pages$' "seed's completion line"
	kex_balanced
	kex_unload
	expect_eq "$(awk '$1 == "kex"' /proc/modules | wc -l)" 0 "kex unloaded"
	[ ! -e /dev/kex ] || fail "/dev/kex still exists after rmmod"
	[ ! -e "$KEX_SYS" ] || fail "$KEX_SYS still exists after rmmod"
}

# The kernel log stays quiet by default: no per-mmap or per-page line
# unless verbose=1, and a flood of rejected requests logs at most the
# printk rate limit's burst (10 lines per 5 s per message).
case_quiet_log() {
	kex_load
	dmesg_mark
	/usr/bin/python3 -c "
import mmap, os
fd = os.open('/dev/kex', os.O_RDWR)
for _ in range(50):
    try:
        mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError:
        pass
"
	local log
	log=$(dmesg_new)
	expect_eq "$(grep -c 'kex: mmap rejected: MAP_PRIVATE' <<<"$log")" 10 "50 MAP_PRIVATE requests: lines logged"
	expect_eq "$(cat /sys/module/kex/parameters/verbose)" N "verbose default"
	dmesg_mark
	mmap_test /dev/kex 8 --no-wait >"$CASE_TMP/out"
	KEXPY_MODE=fault kexpy req /dev/kex 4 >/dev/null
	log=$(dmesg_new)
	echo "$log"
	expect_eq "$(grep -c 'kex: ' <<<"$log")" 1 "kex lines for a rig of 8 pages and a refused fault mapping"
	expect_match "$log" 'kex: mmap rejected: mode fault needs ref_policy=keep' "the rejection is logged"
	kex_balanced
	kex_unload
	kex_load verbose=1
	dmesg_mark
	mmap_test /dev/kex 8 --no-wait >"$CASE_TMP/out"
	log=$(dmesg_new)
	expect_eq "$(grep -c 'kex: inserted page [0-9]* pfn 0x[0-9a-f]* at 0x[0-9a-f]*$' <<<"$log")" 8 "verbose=1: one line per page"
	kex_balanced
}

# The seed's flow: mknod devKex c MAJOR 0, the rig on it, pmap names devKex.
case_mknod() {
	dmesg_mark
	kex_load verbose=1
	local node=$CASE_TMP/devKex
	mknod "$node" c "$(kex_major)" 0
	chmod a+rw "$node"
	rig_start "$node" 1
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "4 4 0 rw-s- devKex" "pmap of the devKex mapping"
	expect_match "$(dmesg_new)" 'kex: mapping->a_ops [0-9a-f]+, name devKex$' "dmesg names devKex"
	rig_write
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "4 4 4 rw-s- devKex" "pmap after the write"
	rig_finish
	rm "$node"
	kex_balanced
}

# mmap_test with 1, 8 and 1024 pages, straight through.
case_rig_sizes() {
	kex_load
	local n a=0
	for n in 1 8 1024; do
		mmap_test /dev/kex "$n" --no-wait >"$CASE_TMP/out"
		expect_match "$(cat "$CASE_TMP/out")" "^wrote and verified $n pages\$" "rig with $n pages"
		a=$((a + n))
		kex_balanced
		expect_eq "$(kex_counter pages_allocated)" "$a" "pages_allocated after $n pages"
	done
	# stdin not a terminal nor a pipe: no wait
	mmap_test /dev/kex 2 </dev/null >"$CASE_TMP/out"
	expect_match "$(cat "$CASE_TMP/out")" '^press a key to terminate$' "runs through with stdin /dev/null"
}

# The largest mapping max_pages allows by default (256 MiB), keep policy:
# the page array is vmalloc'ed.
case_max_pages() {
	kex_load ref_policy=keep verbose=0
	mmap_test /dev/kex 65536 --no-wait >"$CASE_TMP/out"
	expect_match "$(cat "$CASE_TMP/out")" '^wrote and verified 65536 pages$' "rig with 65536 pages"
	kex_balanced
	expect_counters 65536 65536 0 0 "after 65536 pages"
	local rc=0
	mmap_test /dev/kex 65537 --no-wait 2>"$CASE_TMP/err" || rc=$?
	expect_eq "$rc" 2 "rig refuses 65537 pages"
	expect_match "$(cat "$CASE_TMP/err")" "max_pages 65536" "rig names max_pages"
}

# --hold-after-write: the rig keeps the mapping until SIGTERM, then unmaps.
case_hold_after_write() {
	kex_load
	RIG_OUT=$CASE_TMP/rig.out
	mmap_test /dev/kex 4 --no-wait --hold-after-write >"$RIG_OUT" 2>&1 &
	RIG_PID=$!
	rig_wait_line '^holding the mapping at 0x[0-9a-f]+ until SIGINT or SIGTERM$'
	expect_counters 4 0 4 1 "while holding"
	kill -TERM "$RIG_PID"
	local rc=0
	wait "$RIG_PID" || rc=$?
	expect_eq "$rc" 0 "rig exit status after SIGTERM"
	kex_balanced
}

# pmap -x at the rig's prompts: 8 pages, 32 kB rw-s-, Dirty 0 then 32.
case_pmap_dirty() {
	kex_load
	rig_start /dev/kex 8
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "32 32 0 rw-s- kex" "pmap before the write"
	rig_write
	expect_eq "$(pmap_line "$RIG_PID" "$RIG_ADDR")" "32 32 32 rw-s- kex" "pmap after the write"
	rig_finish
	kex_balanced
	kex_unload
}

# rmmod is refused while a mapping exists, and works after it is gone.
case_rmmod_while_mapped() {
	kex_load
	rig_start /dev/kex 4
	local rc=0
	rmmod kex 2>"$CASE_TMP/err" || rc=$?
	[ "$rc" != 0 ] || fail "rmmod kex succeeded while mmap_test mapped it"
	expect_match "$(cat "$CASE_TMP/err")" 'in use' "rmmod says the module is in use"
	expect_eq "$(kex_counter mappings)" 1 "mapping survived the rmmod attempt"
	rig_write
	rig_finish
	kex_balanced
	rmmod kex
	expect_eq "$(awk '$1 == "kex"' /proc/modules | wc -l)" 0 "rmmod after the rig exited"
}

# Bad requests: the errno, one kex: line each, nothing allocated.
case_bad_requests() {
	kex_load max_pages=16
	dmesg_mark
	expect_eq "$(kexpy req /dev/kex 1 offset=1)" EINVAL "mmap at offset 1 page"
	expect_eq "$(kexpy req /dev/kex 1 private)" EINVAL "MAP_PRIVATE"
	expect_eq "$(kexpy req /dev/kex 1 exec)" EPERM "PROT_EXEC"
	expect_eq "$(kexpy req /dev/kex 17)" E2BIG "17 pages with max_pages=16"
	expect_eq "$(kexpy req /dev/kex 16)" ok "16 pages with max_pages=16"
	local log
	log=$(dmesg_new)
	expect_eq "$(grep -c 'kex: mmap rejected' <<<"$log")" 4 "one kex: line per rejected mmap"
	expect_match "$log" 'kex: mmap rejected: offset 1 pages, only offset 0 is supported$' "offset reason"
	expect_match "$log" 'kex: mmap rejected: MAP_PRIVATE would copy-on-write driver pages, use MAP_SHARED$' "MAP_PRIVATE reason"
	expect_match "$log" 'kex: mmap rejected: PROT_EXEC is not allowed$' "PROT_EXEC reason"
	expect_match "$log" 'kex: mmap rejected: 17 pages exceeds max_pages 16$' "max_pages reason"
	expect_eq "$(kexpy mremap_grow /dev/kex)" EFAULT "mremap growing the mapping"
	expect_eq "$(kexpy mprotect_exec /dev/kex)" EACCES "mprotect to PROT_EXEC"
	expect_eq "$(kexpy read /dev/kex)" EINVAL "read(2)"
	expect_eq "$(kexpy write /dev/kex)" EINVAL "write(2)"
	expect_counters 19 19 0 0 "after the bad requests (16 + 2 + 1 pages mapped)"

	# the rig's own checks: status 2, one line naming the problem
	local major rc
	major=$(kex_major)
	mknod "$CASE_TMP/minor1" c "$major" 1
	for args in "/dev/kex 0" "/dev/kex -1" "/dev/kex many" "/dev/kex 17" "/nonexistent 1" \
		"/etc/passwd 1" "/dev/null 1" "$CASE_TMP/minor1 1" "/dev/kex" "/dev/kex 1 --bogus"; do
		rc=0
		# shellcheck disable=SC2086
		mmap_test $args --no-wait >"$CASE_TMP/out" 2>"$CASE_TMP/err" || rc=$?
		expect_eq "$rc" 2 "mmap_test $args: exit status"
		expect_eq "$(wc -l <"$CASE_TMP/err")" 1 "mmap_test $args: one error line ($(cat "$CASE_TMP/err"))"
	done
	local out rc=0
	out=$(mmap_test /dev/kex 17 2>&1) || rc=$?
	[ "$rc" != 0 ] || fail "mmap_test mapped 17 pages past max_pages 16"
	expect_match "$out" "exceeds the kex module's max_pages 16" "rig names max_pages"
	kex_unload
	rc=0
	mmap_test /dev/kex 1 2>"$CASE_TMP/err" || rc=$?
	expect_eq "$rc" 2 "mmap_test on /dev/kex after rmmod (node gone)"
	rc=0
	mmap_test /dev/null 1 2>"$CASE_TMP/err" || rc=$?
	expect_eq "$rc" 1 "mmap_test with kex not loaded"
	expect_match "$(cat "$CASE_TMP/err")" 'kex module is not loaded' "rig says kex is not loaded"
}

# MAP_SHARED of /dev/kex opened O_RDONLY: the core clears VM_SHARED (it
# cannot become writable) and keeps VM_MAYSHARE. kex refuses it, EACCES,
# and says why: the read-only open, not MAP_PRIVATE.
case_shared_readonly() {
	kex_load
	dmesg_mark
	local out
	out=$(/usr/bin/python3 -c "
import errno, mmap, os
fd = os.open('/dev/kex', os.O_RDONLY)
for name, prot in (('PROT_READ', mmap.PROT_READ), ('PROT_READ|PROT_WRITE', mmap.PROT_READ | mmap.PROT_WRITE)):
    try:
        mmap.mmap(fd, 4096, mmap.MAP_SHARED, prot).close()
        print(name, 'ok')
    except OSError as e:
        print(name, errno.errorcode[e.errno])
")
	echo "$out"
	local log
	log=$(dmesg_new)
	echo "$log"
	! grep 'MAP_PRIVATE' <<<"$log" || fail "a MAP_SHARED mmap was called MAP_PRIVATE"
	expect_match "$log" 'kex: mmap rejected: MAP_SHARED of a file opened read-only, open it O_RDWR$' "read-only reason"
	expect_eq "$(grep -c 'kex: mmap rejected' <<<"$log")" 1 "one kex: line, for the PROT_READ mmap"
	# with PROT_WRITE the core refuses before kex sees it
	expect_eq "$out" $'PROT_READ EACCES\nPROT_READ|PROT_WRITE EACCES' "MAP_SHARED on an O_RDONLY open"
	expect_counters 0 0 0 0 "after the refused mmaps"
}

# Module parameters are validated.
case_params() {
	local rc=0
	insmod "$(kex_ko)" ref_policy=bogus 2>/dev/null || rc=$?
	[ "$rc" != 0 ] || fail "insmod with ref_policy=bogus succeeded"
	rc=0
	insmod "$(kex_ko)" max_pages=0 2>/dev/null || rc=$?
	[ "$rc" != 0 ] || fail "insmod with max_pages=0 succeeded"
	kex_load
	local p=/sys/module/kex/parameters
	if (echo bogus >"$p/ref_policy") 2>/dev/null; then
		fail "writing bogus to ref_policy succeeded"
	fi
	expect_eq "$(cat "$p/ref_policy")" drop "ref_policy after the bad write"
	echo keep >"$p/ref_policy"
	expect_eq "$(cat "$p/ref_policy")" keep "ref_policy at run time"
	echo 4 >"$p/max_pages"
	expect_eq "$(kexpy req /dev/kex 5)" E2BIG "max_pages changed at run time"
	# keep's page array for 2^28 pages (1 TiB) cannot be had: ENOMEM, no WARN
	echo 4294967295 >"$p/max_pages"
	expect_eq "$(kexpy req /dev/kex 268435456)" ENOMEM "1 TiB mapping with keep"
	expect_counters 0 0 0 0 "after the refused 1 TiB mapping"
	echo drop >"$p/ref_policy"
}

# A failed load leaves nothing behind and was never reachable: fail_init
# makes one step of kex's init fail. A kprobe event on cdev_add (the call
# that makes the device number's file operations live) shows whether a
# failed init had made the device openable while it could still fail:
# never. A good load calls cdev_add last, after device_create.
case_init_failure() {
	local t=$KEX_TRACING step rc
	# the probes go away however the case ends
	trap 'echo 0 >"$KEX_TRACING/events/kexlab/enable"; echo "-:kexlab/cdev_add" >>"$KEX_TRACING/kprobe_events"; echo "-:kexlab/device_create" >>"$KEX_TRACING/kprobe_events"' EXIT
	echo 'p:kexlab/cdev_add cdev_add' >>"$t/kprobe_events"
	echo 'p:kexlab/device_create device_create_with_groups' >>"$t/kprobe_events"
	echo 0 >"$t/tracing_on"
	echo >"$t/trace"
	echo 1 >"$t/events/kexlab/enable"
	echo 1 >"$t/tracing_on"
	for step in class device cdev; do
		dmesg_mark
		rc=0
		insmod "$(kex_ko)" fail_init=$step 2>"$CASE_TMP/err" || rc=$?
		[ "$rc" != 0 ] || fail "insmod with fail_init=$step succeeded"
		expect_match "$(dmesg_new)" "kex: fail_init: $step fails with -ENOMEM\$" "$step: the injected failure logged"
		expect_eq "$(awk '$1 == "kex"' /proc/modules | wc -l)" 0 "$step: no module"
		expect_eq "$(awk '$2 == "kex"' /proc/devices | wc -l)" 0 "$step: no device number"
		[ ! -e /sys/class/kex ] || fail "$step: /sys/class/kex left behind"
		[ ! -e /dev/kex ] || fail "$step: /dev/kex left behind"
		sed '/^#/d' "$t/trace" >"$CASE_TMP/trace.$step"
		echo >"$t/trace"
		cat "$CASE_TMP/trace.$step"
		expect_eq "$(grep -c 'insmod-.* cdev_add:' "$CASE_TMP/trace.$step")" 0 "$step: cdev_add calls in the failed init"
	done
	expect_eq "$(cat /sys/module/kex/parameters/fail_init 2>/dev/null)" "" "no kex parameters left"
	rc=0
	insmod "$(kex_ko)" fail_init=bogus 2>/dev/null || rc=$?
	[ "$rc" != 0 ] || fail "insmod with fail_init=bogus succeeded"
	kex_load
	expect_eq "$(cat /sys/module/kex/parameters/fail_init)" none "fail_init default"
	expect_eq "$(stat -c %a /sys/module/kex/parameters/fail_init)" 400 "fail_init is read-only"
	sed '/^#/d' "$t/trace" >"$CASE_TMP/trace.ok"
	cat "$CASE_TMP/trace.ok"
	expect_eq "$(grep -o 'insmod-.* \(cdev_add\|device_create\):' "$CASE_TMP/trace.ok" | sed 's/.* //' | tr '\n' ' ')" \
		"device_create: cdev_add: " "a good load: cdev_add last"
	mmap_test /dev/kex 1 --no-wait >/dev/null
	kex_balanced
}

# kex_balanced believes the kernel, not kex: under ref_policy=drop kex
# counts a mapping's pages freed when its last VMA closes, whoever still
# holds a reference. Here a pipe does: vmsplice() took a reference on page
# 1 of 4, then the process unmapped and closed /dev/kex. kex's counters
# balance, but the kernel has not freed page 1: kex_balanced must fail
# until the pipe is closed, then pass.
case_balanced_sees_kernel_frees() {
	kex_load verbose=0
	local fifo=$CASE_TMP/hold out=$CASE_TMP/splice.out
	mkfifo "$fifo"
	/usr/bin/python3 -c "
import ctypes, mmap, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [('base', ctypes.c_void_p), ('len', ctypes.c_size_t)]
fd = os.open('/dev/kex', os.O_RDWR)
m = mmap.mmap(fd, 4 * 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(4):
    m[i * 4096] = i + 1
r, w = os.pipe()
iov = iovec(ctypes.addressof(ctypes.c_char.from_buffer(m, 4096)), 4096)
n = libc.vmsplice(w, ctypes.byref(iov), 1, 0)
if n != 4096:
    sys.exit(f'vmsplice: {n}, errno {ctypes.get_errno()}')
del iov
m.close()
os.close(fd)
print('spliced', flush=True)
open(sys.argv[1]).read()      # until the case says so, the pipe holds page 1
" "$fifo" >"$out" 2>&1 &
	local holder=$!
	exec 8>"$fifo"
	local _
	for _ in $(seq 100); do grep -q spliced "$out" && break; kill -0 $holder 2>/dev/null || break; sleep 0.1; done
	expect_eq "$(cat "$out")" spliced "page 1 spliced into a pipe, the mapping gone"
	expect_counters 4 4 0 0 "kex's counters with the pipe still holding page 1"
	local rc=0
	kex_balanced >"$CASE_TMP/balanced" 2>&1 || rc=$?
	cat "$CASE_TMP/balanced"
	[ "$rc" != 0 ] || fail "kex_balanced passed while a pipe held page 1"
	expect_match "$(cat "$CASE_TMP/balanced")" "not freed by the kernel: page 1 pfn 0x[0-9a-f]+\$" "kex_balanced names page 1"
	exec 8>&-
	wait $holder
	kex_balanced
}

# Both ref policies through the rig's prompts.
case_policy_drop() {
	rig_basic drop
}
case_policy_keep() {
	rig_basic keep
}

# SIGKILL between the write and the munmap leaks nothing, either policy.
case_kill_after_write() {
	local policy rc
	for policy in drop keep; do
		kex_load ref_policy=$policy
		rig_start /dev/kex 8
		rig_write
		kill -9 "$RIG_PID"
		rc=0
		wait "$RIG_PID" || rc=$?
		expect_eq "$rc" 137 "$policy: rig killed by SIGKILL"
		exec 7>&-
		kex_balanced
		expect_counters 8 8 0 0 "$policy: after the kill"
		kex_unload
	done
}

# Killed before the write, at the first prompt.
case_kill_before_write() {
	kex_load ref_policy=keep
	rig_start /dev/kex 16
	local rc=0
	kill -9 "$RIG_PID"
	wait "$RIG_PID" || rc=$?
	exec 7>&-
	expect_eq "$rc" 137 "the rig was killed by SIGKILL"
	kex_balanced
	expect_counters 16 16 0 0 "after the kill"
}

# fork and partial munmap: vm_ops->open shares the page set, freed once.
case_fork_split() {
	local policy
	for policy in drop keep; do
		kex_load ref_policy=$policy verbose=0
		echo "-- ref_policy=$policy"
		kexpy fork_split /dev/kex
		kex_balanced
		expect_counters 8 8 0 0 "$policy: after fork and split"
		kex_unload
	done
}

# Several opens, several mmaps per open.
case_multi_open() {
	kex_load ref_policy=keep verbose=0
	kexpy multi /dev/kex 3 2
	kex_balanced
	expect_counters 21 21 0 0 "3 opens x 2 mmaps (1..6 pages)"
}

# Concurrent mmaps: threads of one process, and two processes.
case_threads() {
	local policy
	for policy in drop keep; do
		kex_load ref_policy=$policy verbose=0
		kexpy threads /dev/kex 4 25 16 &
		local other=$!
		kexpy threads /dev/kex 2 25 3
		wait "$other"
		kex_balanced
		expect_counters $((4 * 25 * 16 + 2 * 25 * 3)) $((4 * 25 * 16 + 2 * 25 * 3)) 0 0 "$policy: after the threads"
		kex_unload
	done
}

# The mmap error path (fail_at injects a failure at page N): everything is
# freed, with kex:kex_page_free reason=error for kex's own references.
case_error_path() {
	local policy at
	for policy in drop keep; do
		for at in 0 3; do
			kex_load ref_policy=$policy fail_at=$at
			dmesg_mark
			trace_on
			expect_eq "$(kexpy req /dev/kex 8)" ENOMEM "$policy: failure at page $at"
			trace_off
			expect_match "$(dmesg_new)" "kex: mmap failed: vm_insert_page of page $at at 0x[0-9a-f]+ returned -12\$" "$policy: failure logged"
			kex_balanced
			expect_counters $((at + 1)) $((at + 1)) 0 0 "$policy: after the failure at $at"
			local errors=1
			[ "$policy" = keep ] && errors=$((at + 1))
			expect_eq "$(trace_count 'kex_page_free: .*reason=error')" "$errors" "$policy: frees with reason error"
			expect_eq "$(trace_count "kex_mmap_done: .*ret=-12 mapped=$at\$")" 1 "$policy: kex_mmap_done"
			expect_eq "$(trace_count 'kex_vma_close:')" 0 "$policy: no vma_close for a failed mmap"
			kex_unload
		done
	done
}

# The tracepoints fire in order with the right values.
case_trace_events() {
	local policy
	for policy in drop keep; do
		kex_load ref_policy=$policy
		trace_on
		mmap_test /dev/kex 8 --no-wait >/dev/null
		trace_off
		expect_eq "$(trace_count 'kex_mmap: .*pgoff=0 pages=8 policy='$policy)" 1 "$policy: kex_mmap"
		expect_eq "$(trace_count 'kex_page_alloc: pfn=0x[0-9a-f]+ page=0x[0-9a-f]+ index=')" 8 "$policy: kex_page_alloc"
		expect_eq "$(trace_count 'kex_page_insert: .*ret=0$')" 8 "$policy: kex_page_insert ret=0"
		expect_eq "$(trace_count 'kex_mmap_done: .*ret=0 mapped=8$')" 1 "$policy: kex_mmap_done"
		expect_eq "$(trace_count 'kex_vma_close:')" 1 "$policy: kex_vma_close"
		expect_eq "$(trace_count 'kex_release: pages=0$')" 1 "$policy: kex_release"
		if [ "$policy" = drop ]; then
			expect_eq "$(trace_count 'kex_page_free: .*reason=after_insert')" 8 "drop: frees after insert"
		else
			expect_eq "$(trace_count 'kex_page_free: .*reason=at_close')" 8 "keep: frees at close"
		fi
		# the pfn allocated is the pfn inserted, page by page
		expect_eq "$(sed -n 's/.*kex_page_alloc: pfn=\(0x[0-9a-f]*\) .*index=\([0-9]*\)$/\2 \1/p' "$CASE_TMP/trace.txt")" \
			"$(sed -n 's/.*kex_page_insert: pfn=\(0x[0-9a-f]*\) .*index=\([0-9]*\) ret=0$/\2 \1/p' "$CASE_TMP/trace.txt")" \
			"$policy: alloc and insert pfns"
		kex_unload
	done
}

# The tracepoint formats match docs/architecture.md (bpf/ reads them raw).
case_trace_format() {
	kex_load
	expect_trace_formats <<'EOF'
kex_mmap u64:vm_start:8:8,u64:vm_end:16:8,u64:pgoff:24:8,u32:pages:32:4,u32:policy:36:4
kex_mmap_done u64:vm_start:8:8,s32:ret:16:4,u32:mapped:20:4
kex_page_alloc u64:pfn:8:8,u64:page:16:8,u32:index:24:4,u32:pad:28:4
kex_page_insert u64:pfn:8:8,u64:uaddr:16:8,u32:index:24:4,s32:ret:28:4
kex_page_free u64:pfn:8:8,u32:index:16:4,u32:reason:20:4
kex_vma_open u64:vm_start:8:8,u64:vm_end:16:8
kex_vma_close u64:vm_start:8:8,u64:vm_end:16:8
kex_release u32:pages:8:4,u32:pad:12:4
EOF
}
