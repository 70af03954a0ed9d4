# tests/guest/leaks.sh: kextrace --leaks on a clean kex (no fault injection):
# every rig scenario ends with every page freed, exit status 0, and the
# module's own counters agree. The injected leaks are in leaks_inject.sh
# (their lost pages would pollute this boot).
# Run by: scripts/vm [--kernel 6.12] -- tests/guest/run leaks [CASE...]
# Each case_* runs in a subshell with set -e, cwd = repo root, $CASE_TMP.

# shellcheck source=tests/guest/leaklib.bash
. "$(dirname "${BASH_SOURCE[0]}")/leaklib.bash"

# clean_rig POLICY PAGES: one rig run under --leaks, all freed, exit 0.
clean_rig() {
	local rc
	kex_load ref_policy="$1" verbose=0
	leaks_run rc -- mmap_test /dev/kex "$2" --no-wait
	expect_eq "$rc" 0 "kextrace --leaks exit status"
	expect_all_freed "$2"
	kex_balanced
	expect_eq "$(kex_counter pages_leaked_injected)" 0 "pages_leaked_injected"
}

case_one_page_drop() { clean_rig drop 1; }
case_one_page_keep() { clean_rig keep 1; }
case_eight_pages_drop() { clean_rig drop 8; }
case_eight_pages_keep() { clean_rig keep 8; }
case_1024_pages_drop() { clean_rig drop 1024; }
case_1024_pages_keep() { clean_rig keep 1024; }

# The rig is killed with SIGKILL after its write, before munmap: exit_mmap
# zaps and frees every page (the frees may trail the exit).
case_killed_before_munmap() {
	local policy rc
	for policy in drop keep; do
		kex_load ref_policy=$policy verbose=0
		mkfifo "$CASE_TMP/hold.$policy"
		leaks_run rc -- sh -c "
			mmap_test /dev/kex 8 <$CASE_TMP/hold.$policy >$CASE_TMP/rig.txt &
			rig=\$!
			exec 7>$CASE_TMP/hold.$policy
			for i in \$(seq 100); do grep -q 'press a key to exercise' $CASE_TMP/rig.txt && break; sleep 0.05; done
			echo >&7
			for i in \$(seq 100); do grep -q 'press a key to terminate' $CASE_TMP/rig.txt && break; sleep 0.05; done
			kill -9 \$rig
			wait \$rig
			exit 0"
		expect_eq "$rc" 0 "$policy: kextrace --leaks exit status"
		expect_all_freed 8
		kex_balanced
		kex_unload
	done
}

# Part of the mapping unmapped, the rest left to the exit; and the lab's
# split + fork case (a child holds the pages after the parent unmapped).
case_partial_munmap() {
	local policy rc
	for policy in drop keep; do
		kex_load ref_policy=$policy verbose=0
		leaks_run rc -- /usr/bin/python3 -c "
import ctypes, mmap, os
fd = os.open('/dev/kex', os.O_RDWR)
m = mmap.mmap(fd, 8 * 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(8):
    m[i * 4096] = i + 1
a = ctypes.addressof(ctypes.c_char.from_buffer(m))
libc = ctypes.CDLL(None, use_errno=True)
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
assert libc.munmap(a + 2 * 4096, 3 * 4096) == 0   # pages 2..4 now
os.close(fd)
os._exit(0)                                       # 0, 1, 5..7 at exit
"
		expect_eq "$rc" 0 "$policy: kextrace --leaks exit status"
		expect_all_freed 8
		kex_balanced
		kex_unload
	done
}

case_fork_split() {
	local rc
	kex_load verbose=0
	leaks_run rc -- /usr/bin/python3 "$KEX_TOP/tests/guest/kexlab.py" fork_split /dev/kex
	expect_eq "$rc" 0 "kextrace --leaks exit status"
	# balanced ledgers: the child's references were seen as copied PTEs
	expect_all_freed 8
	kex_balanced
}

# The mmap fails at page 3 (fail_at): kex frees page 3, the kernel's error
# path unmaps and frees 0..2: nothing leaks, though the rig fails.
case_error_path_frees_everything() {
	local policy rc
	for policy in drop keep; do
		kex_load ref_policy=$policy fail_at=3 verbose=0
		leaks_run rc -- mmap_test /dev/kex 8 --no-wait
		expect_eq "$rc" 0 "$policy: kextrace --leaks exit status (the verdict, not the rig's)"
		expect_all_freed 4
		kex_balanced
		kex_unload
	done
}

# --all: every process's pages, until SIGINT; the policy changes between
# two rigs; nothing of either is leaked.
case_all_two_rigs() {
	local rc
	kex_load verbose=0
	leaks_all_start
	mmap_test /dev/kex 8 --no-wait >/dev/null
	echo keep >/sys/module/kex/parameters/ref_policy
	mmap_test /dev/kex 4 --no-wait >/dev/null
	sleep 0.5
	leaks_all_stop rc
	expect_eq "$rc" 0 "kextrace --leaks --all exit status after SIGINT"
	expect_all_freed 12
	leaksjson "
owners = sorted(set(p['owner'] for p in L['pages']))
ok(len(owners) == 2, f'pages of two untraced rigs: {owners}')
"
	kex_balanced
}

# --all stopped while a rig still maps its pages: still mapped, not leaked.
case_all_still_mapped_is_no_leak() {
	local rc
	kex_load verbose=0
	leaks_all_start
	rig_start /dev/kex 8
	leaks_all_stop rc
	expect_eq "$rc" 0 "exit status with live mappings"
	leaksjson "
ok(by_verdict('still_mapped') == list(range(8)), f\"still mapped: {by_verdict('still_mapped')}\")
ok(L['bugs'] == 0, 'no bug')
ok(all(p['mapcount'] == 1 and p['refcount'] == 1 for p in L['pages']), 'refcount 1, mapcount 1')
"
	rig_write
	rig_finish
	kex_balanced
}


# zap_trace_on / zap_trace_off: kex's inserts and frees, with a kprobe event
# (named kexlab/unmap_page_range) on unmap_page_range(tlb, vma, start, end,
# details), __zap_vma_range since 7.1 with the same arguments, through which
# every teardown of user PTEs passes (munmap, exit, the core's unmap of a
# failed mmap, zap_vma_ptes / zap_special_vma_range), into $CASE_TMP/zap.txt.
zap_trace_on() {
	local t=$KEX_TRACING fn=unmap_page_range
	grep -qx "$fn" "$t/available_filter_functions" || fn=__zap_vma_range
	# shellcheck disable=SC2016 # $argN is kprobe_events syntax
	echo "p:kexlab/unmap_page_range $fn"' start=$arg3:x64 end=$arg4:x64' >>"$t/kprobe_events"
	echo 0 >"$t/tracing_on"
	echo >"$t/trace"
	echo 1 >"$t/events/kexlab/unmap_page_range/enable"
	echo 1 >"$t/events/kex/kex_page_insert/enable"
	echo 1 >"$t/events/kex/kex_page_free/enable"
	echo 1 >"$t/tracing_on"
}
zap_trace_off() {
	local t=$KEX_TRACING
	echo 0 >"$t/events/kex/kex_page_insert/enable"
	echo 0 >"$t/events/kex/kex_page_free/enable"
	echo 0 >"$t/events/kexlab/unmap_page_range/enable"
	grep -v '^#' "$t/trace" >"$CASE_TMP/zap.txt"
	echo >"$t/trace"
	echo '-:kexlab/unmap_page_range' >>"$t/kprobe_events"
}

# freed_before_zap: one line per page kex freed while the PTE it was mapped
# by was still there: a kex_page_free of a pfn whose last successful
# kex_page_insert (same task) is not followed, before the free, by an
# unmap_page_range of that task covering its address. Prints
# "page I pfn P at A" lines, and a last line "checked N".
freed_before_zap() {
	python3 - "$CASE_TMP/zap.txt" <<'PY'
import re, sys
line_re = re.compile(r'-(\d+)\s+\[\d+\].*?\s(kex_page_insert|kex_page_free|unmap_page_range): (.*)$')
live = {}   # pfn -> (pid, uaddr, index) of a page whose PTE is still there
n = 0
for line in open(sys.argv[1]):
    m = line_re.search(line)
    if not m:
        continue
    pid, ev, f = int(m.group(1)), m.group(2), dict(kv.split('=', 1) for kv in m.group(3).split() if '=' in kv)
    if ev == 'kex_page_insert' and f['ret'] == '0':
        live[f['pfn']] = (pid, int(f['uaddr'], 16), f['index'])
    elif ev == 'unmap_page_range':
        s, e = int(f['start'], 16), int(f['end'], 16)
        live = {p: v for p, v in live.items() if not (v[0] == pid and s <= v[1] < e)}
    elif ev == 'kex_page_free':
        n += 1
        v = live.pop(f['pfn'], None)
        if v:
            print(f"page {v[2]} pfn {f['pfn']} at {v[1]:#x}")
print(f'checked {n}')
PY
}

# Mode pfn, the mmap fails at page 3 (fail_at): remap_pfn_range took no
# reference on pages 0..2, so their special PTEs must be torn down before
# kex frees them: the core's own unmap of the failed VMA comes only after
# ->mmap returned, too late. Under kextrace --leaks, every page freed and
# nothing leaked; in the kernel's own order of events, no page freed while
# its PTE was still there.
case_pfn_error_path_zaps_before_free() {
	local rc
	kex_load ref_policy=keep fail_at=3 verbose=0
	trap 'zap_trace_off 2>/dev/null' EXIT
	zap_trace_on
	leaks_run rc -- mmap_test /dev/kex 8 --mode pfn --no-wait
	zap_trace_off
	trap - EXIT
	sed -n '/kex_page_insert: /,$p' "$CASE_TMP/zap.txt" | grep -E ' mmap_test-' | head -n 12
	expect_eq "$rc" 0 "kextrace --leaks exit status (the verdict, not the rig's)"
	expect_all_freed 4
	leaksjson "
ok(by_verdict('freed') == [0, 1, 2, 3], f\"freed: {by_verdict('freed')}\")
print('anomalies:', [a['message'] for a in j.get('anomalies', [])])
"
	local bad
	bad=$(freed_before_zap)
	echo "$bad"
	expect_eq "$(tail -n 1 <<<"$bad")" "checked 4" "kex_page_free of pages 0..3 in the trace"
	expect_eq "$(sed '$d' <<<"$bad")" "" "pages kex freed while their PTE was still there"
	kex_balanced
}

# --all stopped while other processes keep mapping, faulting and closing kex
# (the torture's load: two rigs per vCPU back to back, 4 fault-mode pages
# each, ref_policy=keep). The probes detach one by one for a long while under
# that load; kex keeps freeing pages meanwhile and after: each free is traced
# (the page-free tracepoints detach last, once it was read whether kex is
# still open and who still runs), so no page is leaked nor left inconclusive.
case_all_under_load_no_false_leak() {
	local rc
	kex_load ref_policy=keep verbose=0
	load_start 2
	sleep 0.5
	leaks_run rc --all --duration 2
	load_stop
	expect_eq "$rc" 0 "kextrace --leaks --all under load: exit status"
	leaksjson "
c = L['counts']
ok(c['leaked'] == 0 and L['bugs'] == 0, f'nothing leaked: {c}')
ok(c['inconclusive'] == 0, f'no life without its free or a holder: {c}')
ok(c['freed'] >= 8, f'pages freed while traced: {c}')
owners = set(p['owner'] for p in L['pages'])
ok(len(owners) >= 2, f'pages of {len(owners)} rigs')
ok(L['events_lost'] == 0, 'no events lost')
"
	kex_balanced
	expect_eq "$(kex_counter pages_leaked_injected)" 0 "pages_leaked_injected"
}
