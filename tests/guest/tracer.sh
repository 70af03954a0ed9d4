# tests/guest/tracer.sh: kextrace in the guest, asserting what the kernel
# really did to kex's pages (run: scripts/vm -- tests/guest/run tracer [CASE...]).
#
# Each case runs kextrace on a real command and reads its --json report (and
# --events JSON lines) with python3; the expectations come from
# shared/docs/kernel-path.md: refcount 1->2->1->0, PTE present+rw+user
# with the page's own pfn, no fault on the first write (the MMU sets D), dirty
# at zap, freed after munmap (or at exit, or at close with ref_policy=keep).
# One case counts the same functions with bpftrace in the same guest.

# --- helpers (not cases) ---------------------------------------------------------

# pyjson FILE CODE: run python CODE with j = the parsed JSON of FILE and
# ok(cond, what) to assert; fails the case if any ok() failed.
pyjson() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
failed = 0
def ok(cond, what):
    global failed
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        failed += 1
exec(sys.argv[2])
sys.exit(1 if failed else 0)
EOF
}

# pyevents FILE CODE: like pyjson, with ev = the list of --events records.
pyevents() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
failed = 0
def ok(cond, what):
    global failed
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        failed += 1
exec(sys.argv[2])
sys.exit(1 if failed else 0)
EOF
}

# The checks every clean kex run must pass: N pages under POLICY, zapped in
# CONTEXT (munmap | exit), all from one mapping of the traced rig.
check_clean_run() {
	local json=$1 n=$2 policy=$3 context=${4:-munmap}
	pyjson "$json" "
N, POLICY, CONTEXT = $n, '$policy', '$context'
pages = sorted(j['pages'], key=lambda p: p['index'])
ok(len(pages) == N, f'{len(pages)} page lives, expected {N}')
ok(j['losses']['total'] == 0, f\"no events lost ({j['losses']['total']})\")
ok(len(j['mappings']) == 1 and j['mappings'][0]['mapped'] == N, 'one kex mapping of N pages')
ok(all(p['complete'] for p in pages), 'every page story complete')
ok(all(p['policy'] == POLICY for p in pages), 'policy ' + POLICY)
kinds = ['kmem_alloc', 'kex_alloc', 'insert', 'insert_ret', 'rmap_add', 'pte_set', 'kex_insert',
         'kex_free', 'set_dirty', 'rmap_remove', 'page_free']
for k in kinds:
    ok(all(any(s['kind'] == k for s in p['steps']) for p in pages), 'every page has ' + k)
ok(all(p['insert_ret'] == 0 for p in pages), 'insert returned 0 for every page')
ok(all(p['pte']['present'] and p['pte']['rw'] and p['pte']['user'] for p in pages),
   'PTE present+rw+user for every page')
ok(all(p['pte']['pfn'] == p['pfn'] for p in pages), 'each PTE holds its own page pfn')
ok(all(p['pte']['source'] == 'insert_ret' for p in pages), 'PTE read back at the insert return')
ok(all(p['first_write']['kind'] == 'no_fault' for p in pages), 'no user fault in the write phase')
ok(all(p['zap']['dirty'] for p in pages), 'dirty seen at zap (set_page_dirty/folio_mark_dirty)')
ok(all(p['zap']['context'] == CONTEXT for p in pages), 'zapped in ' + CONTEXT)
ok(all(p['free']['ts'] and p['free']['ts'] > p['zap']['ts'] for p in pages), 'freed after the zap')
ok(all(p['refcount_trail'] == [1, 2, 1, 0] for p in pages),
   'refcount 1->2->1->0 (' + str(set(tuple(p['refcount_trail']) for p in pages)) + ')')
ok(all(p['mapcount_trail'] == [0, 1, 0] for p in pages), 'mapcount 0->1->0')
want = 'after-insert' if POLICY == 'drop' else 'at-close'
ok(all(p['kex_free_reason'] == want for p in pages), 'kex drops its reference ' + want)
if POLICY == 'keep':
    # the last reference is kex's own: dropped at close, after the zap, by __free_page
    ok(all(next(s['ts'] for s in p['steps'] if s['kind'] == 'kex_free') > p['zap']['ts']
           for p in pages), 'kex frees after the zap')
    ok(not any(p['free']['batched'] for p in pages), 'final free by kex (not release_pages)')
else:
    ok(all(p['free']['batched'] for p in pages), 'final free by release_pages (batched)')
ua = [int(p['uaddr'], 16) for p in pages]
ok(all(ua[i] == ua[0] + 4096 * i for i in range(N)), 'user addresses contiguous')
pf = [p['pfn'] for p in pages]
ok(len(set(pf)) == N, 'pfns distinct')
if N > 1:
    # kex's pages are whatever the allocator hands out: usually scattered, but
    # a run of free pages can come out in order, so this is reported, not asserted
    runs = sum(1 for i in range(1, N) if pf[i] != pf[i - 1] + 1) + 1
    print(f'note: pfns form {runs} physically contiguous run(s) for {N} virtually '
          'contiguous pages: ' + ' '.join(hex(x) for x in pf[:8]))
ok(j['summary']['refcount_as_expected'] == N, 'summary: refcount as expected on every page')
"
}

# bpftrace_start OUT SCRIPT: starts bpftrace in the background, returns once
# its BEGIN probe ran (every probe attached); $bt_pid is its pid.
bpftrace_start() {
	local out=$1 script=$2 i
	bpftrace "$script" >"$out" 2>&1 &
	bt_pid=$!
	for i in $(seq 300); do
		grep -q '^ready$' "$out" && return 0
		kill -0 "$bt_pid" 2>/dev/null || { cat "$out"; fail "bpftrace died"; return 1; }
		sleep 0.1
	done
	cat "$out"
	fail "bpftrace did not start"
}

bpftrace_stop() {
	local rc=0
	kill -INT "$bt_pid"
	wait "$bt_pid" || rc=$?
	expect_eq "$rc" 0 "bpftrace exit status after SIGINT"
}

# stalled_reader FIFO PAGES: in the background, open FIFO but read nothing
# until the rig has mapped and freed PAGES pages (kex's counters: the rig
# itself stays a zombie until the blocked kextrace reaps it), 60 s at most,
# then read it all. Builtins only while it waits: an exec every 0.1 s while
# kextrace (de)registers its kretprobes is what exposed the guest oops in
# docs/hardening.md. The reader's pid goes to $reader.
stalled_reader() {
	local fifo=$1 pages=$2 tick=$CASE_TMP/tick.fifo
	mkfifo "$tick"
	(
		exec 3<"$fifo" 4<>"$tick"
		local a l i
		for ((i = 0; i < 600; i++)); do
			read -r a </sys/class/kex/kex/pages_allocated
			read -r l </sys/class/kex/kex/pages_live
			[ "$a" -ge "$pages" ] && [ "$l" = 0 ] && break
			read -r -t 0.1 -u 4 _ || :
		done
		cat <&3 >/dev/null
	) &
	reader=$!
}

# --- cases -------------------------------------------------------------------------

case_drop_8_pages() {
	kex_load
	kextrace --json "$CASE_TMP/out.json" --events "$CASE_TMP/ev.jsonl" \
		-- mmap_test /dev/kex 8 --no-wait >"$CASE_TMP/out.txt"
	cat "$CASE_TMP/out.txt"
	check_clean_run "$CASE_TMP/out.json" 8 drop munmap
	# the rig's phases, in order, from its USDT probes
	pyjson "$CASE_TMP/out.json" "
names = [p['name'] for p in j['phases']]
ok(names == ['mmap', 'write', 'munmap'], 'rig phases ' + str(names))
w = next(p for p in j['phases'] if p['name'] == 'write')
ok(w['user_faults'] == 0 and w['kernel_events'] == 0, 'the write phase runs no kernel code')
"
	# stacks on alloc, insert, kex free and page free; the insert's is the mmap path
	pyevents "$CASE_TMP/ev.jsonl" "
ins = [e for e in ev if e['type'] == 'insert']
ok(len(ins) == 8 and all(e.get('stack') for e in ins), 'every insert carries a kernel stack')
ok(any('vm_insert_page' in f for f in ins[0]['stack']), 'insert stack passes vm_insert_page')
for t in ('kex_page_alloc', 'kex_page_free', 'page_free'):
    ok(all(e.get('stack') for e in ev if e['type'] == t), t + ' records carry stacks')
ret = [e for e in ev if e['type'] == 'insert_ret']
ok(all(e['refcount'] == 2 and e['mapcount'] == 1 for e in ret), 'after insert: refcount 2, mapcount 1')
"
	kex_balanced
	kex_unload
}

case_keep_8_pages() {
	kex_load ref_policy=keep
	kextrace --json "$CASE_TMP/out.json" -- mmap_test /dev/kex 8 --no-wait >"$CASE_TMP/out.txt"
	cat "$CASE_TMP/out.txt"
	check_clean_run "$CASE_TMP/out.json" 8 keep munmap
}

case_one_page() {
	kex_load
	kextrace --json "$CASE_TMP/out.json" -- mmap_test /dev/kex 1 --no-wait >/dev/null
	check_clean_run "$CASE_TMP/out.json" 1 drop munmap
}

case_1024_pages() {
	kex_load
	kextrace --json "$CASE_TMP/out.json" -- mmap_test /dev/kex 1024 --no-wait >"$CASE_TMP/out.txt"
	tail -n 5 "$CASE_TMP/out.txt"
	check_clean_run "$CASE_TMP/out.json" 1024 drop munmap
	pyjson "$CASE_TMP/out.json" "
for p in ('insert', 'insert_ret', 'rmap_add', 'rmap_remove', 'set_dirty', 'kex_page_alloc', 'mm_page_free'):
    ok(j['probe_counters'][p]['emitted'] == 1024, p + ' emitted 1024')
"
}

# The kprobe and tracepoint counts kextrace reports equal what bpftrace counts
# on the same functions, for the same pages, in the same guest and run.
case_counts_match_bpftrace() {
	local ins rmap_add rmap_rm dirty ins_page rmap_add_page rmap_rm_page
	case ${KEX_GUEST_KERNEL:-6.1} in
	6.1)
		ins=insert_page_into_pte_locked.constprop.0 ins_page=arg2
		rmap_add=page_add_file_rmap rmap_add_page=arg0
		rmap_rm=page_remove_rmap rmap_rm_page=arg0
		dirty=set_page_dirty ;;
	*)
		ins=insert_page_into_pte_locked.isra.0 ins_page=arg2
		rmap_add=folio_add_file_rmap_ptes rmap_add_page=arg1
		rmap_rm=folio_remove_rmap_ptes rmap_rm_page=arg1
		dirty=folio_mark_dirty ;;
	esac
	cat >"$CASE_TMP/count.bt" <<EOF
BEGIN { printf("ready\n"); }
tracepoint:kex:kex_page_alloc { @kex[args->page] = 1; @pfn[args->pfn] = 1; @n["kex_page_alloc"] = count(); }
tracepoint:kex:kex_page_insert /@pfn[args->pfn]/ { @n["kex_page_insert"] = count(); }
tracepoint:kex:kex_page_free /@pfn[args->pfn]/ { @n["kex_page_free"] = count(); }
kprobe:$ins /@kex[$ins_page]/ { @n["insert"] = count(); @ins[tid] = 1; }
kretprobe:$ins /@ins[tid]/ { @n["insert_ret"] = count(); delete(@ins[tid]); }
kprobe:$rmap_add /@kex[$rmap_add_page]/ { @n["rmap_add"] = count(); }
kprobe:$rmap_rm /@kex[$rmap_rm_page]/ { @n["rmap_remove"] = count(); }
kprobe:$dirty /@kex[arg0]/ { @n["set_dirty"] = count(); }
tracepoint:kmem:mm_page_free /@pfn[args->pfn]/ { @n["mm_page_free"] = count(); delete(@pfn[args->pfn]); }
END { clear(@kex); clear(@pfn); clear(@ins); }
EOF
	kex_load
	bpftrace_start "$CASE_TMP/bt.out" "$CASE_TMP/count.bt"
	kextrace --json "$CASE_TMP/out.json" -- mmap_test /dev/kex 8 --no-wait >/dev/null
	sleep 0.3
	bpftrace_stop
	cat "$CASE_TMP/bt.out"
	python3 - "$CASE_TMP/bt.out" "$CASE_TMP/out.json" <<'EOF'
import json, re, sys
bt = {m.group(1): int(m.group(2))
      for m in re.finditer(r'^@n\[(\w+)\]: (\d+)$', open(sys.argv[1]).read(), re.M)}
kt = json.load(open(sys.argv[2]))['probe_counters']
bad = 0
print(f"{'probe':<16} {'kextrace':>8} {'bpftrace':>8}")
for name in ('kex_page_alloc', 'kex_page_insert', 'kex_page_free', 'insert', 'insert_ret',
             'rmap_add', 'rmap_remove', 'set_dirty', 'mm_page_free'):
    k, b = kt[name]['emitted'], bt.get(name, 0)
    print(f"{name:<16} {k:>8} {b:>8}" + ("" if k == b else "   MISMATCH"))
    bad += k != b or k != 8
    if kt[name]['missed']:
        print(f"  {name}: {kt[name]['missed']} kprobe misses"); bad += 1
sys.exit(1 if bad else 0)
EOF
}

# Another rig maps, writes and unmaps kex pages at the same time, outside the
# traced process tree: only the traced one is reported.
case_two_rigs_only_traced_reported() {
	kex_load
	mkfifo "$CASE_TMP/go"
	sh -c "read x <$CASE_TMP/go; exec mmap_test /dev/kex 4 --no-wait" >/dev/null &
	local other=$!
	kextrace --json "$CASE_TMP/out.json" --usdt "$KEX_BUILD/bin/mmap_test" \
		-- sh -c "echo go >$CASE_TMP/go; mmap_test /dev/kex 8 --no-wait; sleep 0.2" >/dev/null
	wait $other
	check_clean_run "$CASE_TMP/out.json" 8 drop munmap
	pyjson "$CASE_TMP/out.json" "
ok(all(p['owner'] != $other for p in j['pages']), 'no page of the untraced rig ($other)')
ok(all(m['tgid'] != $other for m in j['mappings']), 'no mapping of the untraced rig')
ok(j['probe_counters']['kex_page_alloc']['hits'] == 12, 'both rigs allocated during the trace (' +
   str(j['probe_counters']['kex_page_alloc']['hits']) + ' kex_page_alloc hits)')
ok(j['trace']['orphans'] == 0, 'no orphan page events')
"
}

# The rig is killed after its write, before munmap: exit_mmap zaps and frees
# every page. The rig is the traced shell's child (followed through fork).
case_killed_before_munmap() {
	kex_load
	mkfifo "$CASE_TMP/hold"
	local rc=0
	kextrace --json "$CASE_TMP/out.json" --usdt "$KEX_BUILD/bin/mmap_test" -- sh -c "
		mmap_test /dev/kex 8 <$CASE_TMP/hold >$CASE_TMP/rig.txt &
		rig=\$!
		exec 7>$CASE_TMP/hold
		for i in \$(seq 100); do grep -q 'press a key to exercise' $CASE_TMP/rig.txt && break; sleep 0.05; done
		echo >&7
		for i in \$(seq 100); do grep -q 'press a key to terminate' $CASE_TMP/rig.txt && break; sleep 0.05; done
		kill -9 \$rig
		wait \$rig
		exit 0" >"$CASE_TMP/out.txt" || rc=$?
	cat "$CASE_TMP/out.txt"
	expect_eq "$rc" 0 "kextrace exit status"
	check_clean_run "$CASE_TMP/out.json" 8 drop exit
	pyjson "$CASE_TMP/out.json" "
names = [p['name'] for p in j['phases']]
ok('munmap' not in names, 'no munmap phase: ' + str(names))
ok(j['counts'].get('proc_fork', 0) >= 1, 'the rig was followed through fork')
"
}

# tmpfs_faults FILE: a python3 program that write-faults 4 pages of a shared
# tmpfs mapping of FILE (the fault path's do_set_pte / set_pte_range on pages
# that are not kex's), then unmaps and removes FILE
tmpfs_faults() {
	cat <<EOF
import mmap, os
fd = os.open('$1', os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(fd, 4 * 4096)
m = mmap.mmap(fd, 4 * 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(4):
    m[i * 4096] = 0x5a       # a write fault on a shared file page
m.close(); os.close(fd); os.unlink('$1')
EOF
}

# do_set_pte (6.12: set_pte_range) on the fault path: a shared tmpfs file
# mapping faulted in by a traced python3, reported for non-kex pages with
# --fault-probe-all-pages.
case_do_set_pte_tmpfs() {
	local f=/dev/shm/kextrace-fault-$$
	kextrace --fault-probe-all-pages --events "$CASE_TMP/ev.jsonl" --json "$CASE_TMP/out.json" \
		-- python3 -c "$(tmpfs_faults "$f")" >/dev/null
	pyevents "$CASE_TMP/ev.jsonl" "
sp = [e for e in ev if e['type'] == 'do_set_pte']
ret = [e for e in ev if e['type'] == 'do_set_pte_ret']
ok(len(sp) >= 4, f'{len(sp)} do_set_pte events for the traced process')
ok(len(ret) == len(sp), 'each has its return')
def pte_pfn(v): return (v & 0x000ffffffffff000) >> 12
good = [e for e in ret if e['arg0'] & 1 and e['pfn'] is not None and pte_pfn(e['arg0']) == e['pfn']]
ok(len(good) == len(ret), f'PTE present with the page pfn at every return ({len(good)}/{len(ret)})')
w = [e for e in ret if e['arg0'] & 0x40]
ok(len(w) >= 4, f'{len(w)} PTEs installed dirty (write faults)')
ok(all(e['pid'] == sp[0]['pid'] for e in sp), 'all from the traced process')
"
	pyjson "$CASE_TMP/out.json" "ok(j['losses']['total'] == 0, 'no losses')"
}

case_exit_status_propagates() {
	local rc=0
	kextrace -- sh -c 'exit 5' >/dev/null || rc=$?
	expect_eq "$rc" 5 "the command's exit status"
}

case_exec_failure_is_127() {
	local rc=0 err
	err=$(kextrace -- /nonexistent/command 2>&1 >/dev/null) || rc=$?
	expect_eq "$rc" 127 "exit status"
	expect_match "$err" "cannot run '/nonexistent/command'" "a clear message"
}

# wait_started ERRFILE: kextrace printed its start-up table (probes attached).
wait_started() {
	local i
	for i in $(seq 300); do
		grep -q '^usdt ' "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$1"
	fail "kextrace did not start"
}

case_sigint_still_reports() {
	local rc=0
	kextrace --json "$CASE_TMP/out.json" -- sleep 30 >/dev/null 2>"$CASE_TMP/err.txt" &
	local k=$!
	wait_started "$CASE_TMP/err.txt"
	kill -INT $k
	wait $k || rc=$?
	[ -s "$CASE_TMP/out.json" ] || fail "no JSON report after SIGINT"
	expect_eq "$rc" 130 "exit status after SIGINT"
	pyjson "$CASE_TMP/out.json" "ok(j['schema'] == 'kextrace.report/1', 'a complete JSON report')"
	# no kprobe of ours is left behind
	expect_eq "$(awk '/kextrace\//' /sys/kernel/tracing/kprobe_events | wc -l)" 0 "kprobes removed"
}

# -p PID: attach to a running process before it maps kex (USDT from --usdt).
case_attach_to_pid() {
	kex_load
	mkfifo "$CASE_TMP/go"
	sh -c "read x <$CASE_TMP/go; exec mmap_test /dev/kex 4 --no-wait" >/dev/null &
	local rig=$!
	kextrace -p $rig --usdt "$KEX_BUILD/bin/mmap_test" --json "$CASE_TMP/out.json" \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" &
	local k=$!
	wait_started "$CASE_TMP/err.txt"
	echo go >"$CASE_TMP/go"
	local rc=0
	wait $rig
	wait $k || rc=$?
	cat "$CASE_TMP/err.txt" "$CASE_TMP/out.txt"
	expect_eq "$rc" 0 "kextrace -p exit status once its process ended"
	check_clean_run "$CASE_TMP/out.json" 4 drop munmap
}

# Forced overload: a 1 MiB ring and a consumer held up (its --events output is
# a FIFO nobody reads until the rig is done). The ring is drained on a thread
# of its own that keeps up with a stalled consumer (its queue is unbounded),
# so the hidden --debug-queue-limit-kb 1 makes that thread wait once 1 KiB of
# records is queued: the stall backs up into the ring again. Events are lost,
# and every one is accounted for: produced (the BPF side's count) = received
# + lost, type by type; kextrace says so and exits 3.
case_ring_overload_is_counted_exactly() {
	kex_load
	local fifo=$CASE_TMP/events.fifo rc=0 reader
	mkfifo "$fifo"
	stalled_reader "$fifo" 4096
	kextrace --ringbuf-mb 1 --debug-queue-limit-kb 1 --events "$fifo" --json "$CASE_TMP/out.json" \
		-- mmap_test /dev/kex 4096 --no-wait >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	wait $reader
	tail -n 3 "$CASE_TMP/err.txt"
	expect_eq "$rc" 3 "exit status with events lost"
	expect_match "$(cat "$CASE_TMP/err.txt")" 'events lost: the trace is incomplete' "kextrace says the trace is incomplete"
	pyjson "$CASE_TMP/out.json" "
a = j['ring_accounting']
print('ring accounting:', {k: a[k] for k in ('produced', 'received', 'lost', 'exact')})
ok(a['lost'] > 0, 'events were lost (%d)' % a['lost'])
ok(a['exact'], 'produced = received + lost for every type')
ok(a['produced'] == a['received'] + a['lost'], 'produced %d = received %d + lost %d' % (a['produced'], a['received'], a['lost']))
ok(all(t['produced'] == t['received'] + t['lost'] for t in a['per_type'].values()), 'per type')
ok(j['losses']['total'] == a['lost'], 'the report counts the same losses (%d)' % j['losses']['total'])
q = a['queue']
print('drain queue peak:', q)
ok(q['peak_bytes'] <= 2 * 256 * 1024, 'the queue limit held the drain thread (peak %d bytes)' % q['peak_bytes'])
"
	kex_balanced
}

# The same stalled consumer without the limit: the drain thread keeps copying
# into its queue while the consumer is blocked, so nothing is lost even with
# a 1 MiB ring; every record it copied reaches the report.
case_stalled_consumer_loses_nothing() {
	kex_load
	local fifo=$CASE_TMP/events.fifo rc=0 reader
	mkfifo "$fifo"
	stalled_reader "$fifo" 1024
	kextrace --ringbuf-mb 1 --events "$fifo" --json "$CASE_TMP/out.json" \
		-- mmap_test /dev/kex 1024 --no-wait >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	wait $reader
	tail -n 3 "$CASE_TMP/err.txt"
	expect_eq "$rc" 0 "exit status"
	pyjson "$CASE_TMP/out.json" "
a = j['ring_accounting']
print('ring accounting:', {k: a[k] for k in ('produced', 'received', 'lost', 'exact', 'queue')})
ok(a['lost'] == 0, 'nothing lost')
ok(a['exact'] and a['produced'] == a['received'], 'produced %d = received %d' % (a['produced'], a['received']))
ok(a['queue']['peak_records'] > 0, 'records waited in the queue (%d at most)' % a['queue']['peak_records'])
ok(j['summary']['pages'] == 1024, 'every page reported (%d)' % j['summary']['pages'])
"
	kex_balanced
}

# --- issue 13: fexit returns, the traced set, pfns, write errors, one loss read ---

# Returns are observed with fexit where the kernel's BTF has the function,
# with kretprobes where it has not (the insert clone; 6.1's unmap_region, 7
# arguments): the start-up table, the JSON and the probe counters say which,
# the kernel's kprobe_events holds no kretprobe for a fexit step, and the
# per-page story is the one every clean run has.
case_returns_use_fexit_where_btf_has_them() {
	kex_load
	local set_pte=do_set_pte unmap_ret=kretprobe
	[ "${KEX_GUEST_KERNEL:-6.1}" = 6.1 ] || { set_pte=set_pte_range; unmap_ret=fexit; }
	kextrace --json "$CASE_TMP/out.json" --stats "$CASE_TMP/stats.json" --events "$CASE_TMP/ev.jsonl" \
		--usdt "$KEX_BUILD/bin/mmap_test" -- sh -c "mmap_test /dev/kex 8 --no-wait; cat /sys/kernel/tracing/kprobe_events >$CASE_TMP/kprobe_events" \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt"
	grep -E '^(step|insert|fault install|unmap|exit unmap|pfn map|reap) ' "$CASE_TMP/err.txt"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^fault install +yes +tracefs kprobe \+ fexit +'"$set_pte"' ' "fault install: kprobe + fexit on $set_pte"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^exit unmap +yes +tracefs kprobe \+ fexit +exit_mmap ' "exit unmap: kprobe + fexit"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^pfn map +yes +tracefs kprobe \+ fexit +remap_pfn_range ' "pfn map: kprobe + fexit"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^insert +yes +tracefs kprobe \+ tracefs kretprobe +insert_page_into_pte_locked\.' "insert: the clone keeps its kretprobe"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^unmap \(munmap\) +yes +tracefs kprobe \+ (tracefs )?'"$unmap_ret"' ' "unmap: $unmap_ret return"
	# while the command ran: kprobe_events has the entries, and kretprobes only where no fexit
	cat "$CASE_TMP/kprobe_events"
	expect_eq "$(grep -c '^r.*exit_mmap' "$CASE_TMP/kprobe_events")" 0 "no kretprobe on exit_mmap"
	expect_eq "$(grep -c "^r.*$set_pte\$" "$CASE_TMP/kprobe_events")" 0 "no kretprobe on $set_pte"
	expect_eq "$(grep -c '^p.*exit_mmap' "$CASE_TMP/kprobe_events")" 1 "the exit_mmap entry kprobe"
	expect_eq "$(grep -c '^r.*insert_page_into_pte_locked' "$CASE_TMP/kprobe_events")" 1 "the insert clone's kretprobe"
	check_clean_run "$CASE_TMP/out.json" 8 drop munmap
	pyjson "$CASE_TMP/out.json" "
by = {p['step']: p for p in j['run']['probes']}
ok(by['fault install']['mechanism'] == 'tracefs kprobe + fexit', 'JSON: fault install ' + by['fault install']['mechanism'])
ok(by['exit unmap']['mechanism'] == 'tracefs kprobe + fexit', 'JSON: exit unmap ' + by['exit unmap']['mechanism'])
ok(by['insert']['mechanism'] == 'tracefs kprobe + tracefs kretprobe', 'JSON: insert ' + by['insert']['mechanism'])
ok(by['alloc']['mechanism'] == 'tracepoint' and by['fork']['mechanism'] == 'tp_btf', 'JSON: tracepoints')
pc = j['probe_counters']
ok(pc['exit_mmap_ret']['mechanism'] == 'fexit' and pc['set_pte_ret']['mechanism'] == 'fexit', 'counters: fexit returns')
ok(pc['insert_ret']['mechanism'] == 'kretprobe', 'counters: insert_ret kretprobe')
ok(pc['exit_mmap_ret']['emitted'] == pc['exit_mmap']['emitted'] >= 1, 'every exit_mmap entry has its fexit return (%d)' % pc['exit_mmap']['emitted'])
ok(pc['unmap_ret']['emitted'] == pc['unmap']['emitted'] >= 1, 'every unmap entry has its return (%d)' % pc['unmap']['emitted'])
"
	pyjson "$CASE_TMP/stats.json" "
ok(j['probe_counters']['exit_mmap_ret']['mechanism'] == 'fexit', '--stats: exit_mmap_ret via fexit')
"
}

# The fault path's return through fexit on a shared tmpfs mapping (kex's
# fault mode is in tracer_modes): the PTE read at return holds the page.
case_fexit_set_pte_reads_the_pte() {
	local f=/dev/shm/kextrace-fexit-$$
	kextrace --fault-probe-all-pages --events "$CASE_TMP/ev.jsonl" --json "$CASE_TMP/out.json" \
		-- python3 -c "$(tmpfs_faults "$f")" >/dev/null
	pyevents "$CASE_TMP/ev.jsonl" "
ret = [e for e in ev if e['type'] == 'do_set_pte_ret']
ok(len(ret) >= 4 and all(e['probe'] == 'set_pte_ret' for e in ret), f'{len(ret)} returns')
def pte_pfn(v): return (v & 0x000ffffffffff000) >> 12
ok(all(e['arg0'] & 1 and e['pfn'] is not None and pte_pfn(e['arg0']) == e['pfn'] for e in ret),
   'at every fexit return: PTE present with the page pfn')
"
	pyjson "$CASE_TMP/out.json" "
by = {p['step']: p for p in j['run']['probes']}
ok(by['fault install']['mechanism'].endswith('fexit'), 'fault install return via fexit')
ok(j['losses']['pfn_unknown'] == 0, 'every pfn computed (vmemmap_base from kallsyms)')
"
}

# Without vmemmap_base (a kallsyms without it: hidden, or not this layout)
# the pfn of a non-kex page is unknown: reported as null and counted, never
# computed from the non-KASLR default base.
case_pfn_unknown_without_vmemmap_base() {
	local f=/dev/shm/kextrace-nobase-$$
	grep -v ' vmemmap_base$' /proc/kallsyms >"$CASE_TMP/kallsyms"
	kextrace --kallsyms "$CASE_TMP/kallsyms" --fault-probe-all-pages --events "$CASE_TMP/ev.jsonl" \
		--json "$CASE_TMP/out.json" -- python3 -c "$(tmpfs_faults "$f")" >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt"
	pyevents "$CASE_TMP/ev.jsonl" "
sp = [e for e in ev if e['type'] in ('do_set_pte', 'do_set_pte_ret')]
ok(len(sp) >= 8, f'{len(sp)} fault-path records of the traced process')
ok(all(e['pfn'] is None for e in sp), 'every one with an unknown pfn: ' + str([e['pfn'] for e in sp][:4]))
"
	expect_match "$(cat "$CASE_TMP/err.txt")" 'no vmemmap_base address in .*kallsyms: the pfn of a non-kex page cannot be computed' "a plain warning"
	pyjson "$CASE_TMP/out.json" "
n = j['losses']['pfn_unknown']
ok(n >= 8, f'counted: pfn_unknown {n}')
ok(j['losses']['total'] == 0, 'not an event loss')
"
	expect_match "$(cat "$CASE_TMP/out.txt")" '^  pfn unknown: [0-9]+ non-kex pages' "the text report says so"
}

# More than 1024 short-lived children (the traced map's old size), then a
# rig: every child is followed, none is dropped, and the late rig is traced
# with its pages. Then with a traced map of 128 entries: pruning at each
# child's reap is what keeps room for the rig.
case_many_children_all_traced() {
	kex_load
	kextrace --json "$CASE_TMP/out.json" --stats "$CASE_TMP/stats.json" --usdt "$KEX_BUILD/bin/mmap_test" \
		-- sh -c 'i=0; while [ $i -lt 1100 ]; do (:); i=$((i + 1)); done; mmap_test /dev/kex 4 --no-wait' \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt"
	tail -n 3 "$CASE_TMP/err.txt"
	check_clean_run "$CASE_TMP/out.json" 4 drop munmap
	pyjson "$CASE_TMP/out.json" "
ok(j['counts']['proc_fork'] == 1101, 'every child followed through fork (%d)' % j['counts']['proc_fork'])
ok(j['losses']['map_full'] == {}, 'no failed traced/pages/pfns update: ' + str(j['losses']['map_full']))
ok(j['losses']['total'] == 0, 'nothing lost')
ok(j['probe_counters']['reap']['matched'] >= 1000, 'the reaped children left the traced set (%d)' % j['probe_counters']['reap']['matched'])
"
	pyjson "$CASE_TMP/stats.json" "ok(j['losses']['total'] == 0 and j['losses']['map_full'] == {}, '--stats: no loss')"
	kex_balanced
}

case_traced_map_pruned_at_reap() {
	kex_load
	kextrace --debug-max-traced 128 --json "$CASE_TMP/out.json" --usdt "$KEX_BUILD/bin/mmap_test" \
		-- sh -c 'i=0; while [ $i -lt 600 ]; do (:); i=$((i + 1)); done; mmap_test /dev/kex 4 --no-wait' \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt"
	check_clean_run "$CASE_TMP/out.json" 4 drop munmap
	pyjson "$CASE_TMP/out.json" "
ok(j['counts']['proc_fork'] == 601, '601 children in a 128-entry traced map (%d)' % j['counts']['proc_fork'])
ok(j['losses']['map_full'] == {}, 'no failed update: ' + str(j['losses']['map_full']))
"
	kex_balanced
}

# A full traced map is a counted, reported loss, not a silent drop: 8
# children alive at once in a 4-entry map.
case_traced_map_full_is_a_loss() {
	local rc=0
	kextrace --debug-max-traced 4 --json "$CASE_TMP/out.json" --stats "$CASE_TMP/stats.json" \
		-- sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait' \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	tail -n 2 "$CASE_TMP/err.txt"
	grep '^  losses' "$CASE_TMP/out.txt"
	expect_eq "$rc" 3 "exit status: the trace is incomplete"
	expect_match "$(cat "$CASE_TMP/out.txt")" '^  losses: [0-9]+ \(traced map full [0-9]+\)' "the text report names the map"
	pyjson "$CASE_TMP/out.json" "
n = j['losses']['map_full'].get('traced', 0)
ok(n >= 5, f'children not traced, counted: {n}')
ok(j['losses']['total'] == n, 'part of the losses total')
"
	pyjson "$CASE_TMP/stats.json" "ok(j['losses']['map_full'].get('traced', 0) >= 5, '--stats counts them too')"
}

# --events to a reader that goes away (a FIFO read by `head -n 1`), and to a
# full device: kextrace names the file and the error, stops the trace,
# removes every probe, leaves no partial --json, exits non-zero.
case_events_reader_gone_is_an_error() {
	kex_load
	local fifo=$CASE_TMP/events.fifo rc=0
	mkfifo "$fifo"
	head -n 1 "$fifo" >"$CASE_TMP/first.txt" &
	local reader=$!
	kextrace --events "$fifo" --json "$CASE_TMP/out.json" -- mmap_test /dev/kex 1024 --no-wait \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	wait $reader
	tail -n 3 "$CASE_TMP/err.txt"
	[ "$rc" != 0 ] || fail "exit status 0 after a write error"
	expect_eq "$rc" 1 "exit status"
	expect_match "$(cat "$CASE_TMP/err.txt")" "^kextrace: error: writing events to $fifo: Broken pipe" "the error names the file"
	expect_eq "$(wc -l <"$CASE_TMP/first.txt")" 1 "the reader got its line"
	[ ! -e "$CASE_TMP/out.json" ] || fail "--json written after the trace failed"
	expect_eq "$(ls "$CASE_TMP" | grep -c '\.tmp\.')" 0 "no temporary file left"
	expect_eq "$(grep -c 'kextrace/' /sys/kernel/tracing/kprobe_events)" 0 "every kprobe removed"
	kex_balanced
}

case_events_full_device_is_an_error() {
	local rc=0
	kextrace --events /dev/full --json "$CASE_TMP/out.json" -- sh -c 'exit 0' \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	tail -n 2 "$CASE_TMP/err.txt"
	expect_eq "$rc" 1 "exit status"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^kextrace: error: writing events to /dev/full: No space left on device' "the error names the file"
	[ ! -e "$CASE_TMP/out.json" ] || fail "--json written after the trace failed"
	expect_eq "$(grep -c 'kextrace/' /sys/kernel/tracing/kprobe_events)" 0 "every kprobe removed"
}

# The losses are read once, after every probe is detached and the ring
# drained: the text report, the JSON report, its ring accounting and --stats
# give the same number. A traced loop of rigs keeps mapping kex pages into a
# 1 MiB ring whose consumer is throttled (a slow --events reader, the drain
# queue held at 64 KiB), so the ring overflows until --duration stops it.
case_losses_read_once() {
	kex_load
	local fifo=$CASE_TMP/events.fifo rc=0 reader
	mkfifo "$fifo"
	python3 -c "
import sys, time
for line in open(sys.argv[1]):
    time.sleep(0.0002)
" "$fifo" &
	reader=$!
	kextrace --duration 4 --ringbuf-mb 1 --debug-queue-limit-kb 64 --events "$fifo" \
		--json "$CASE_TMP/out.json" --stats "$CASE_TMP/stats.json" --usdt "$KEX_BUILD/bin/mmap_test" \
		-- sh -c 'while :; do mmap_test /dev/kex 2048 --no-wait >/dev/null; done' \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	# a kextrace that never opened the FIFO must not leave the reader blocked
	timeout 2 sh -c ": >$fifo" 2>/dev/null || :
	wait $reader || :
	pkill -x mmap_test || :
	tail -n 2 "$CASE_TMP/err.txt"
	grep '^  losses' "$CASE_TMP/out.txt" || :
	expect_eq "$rc" 3 "exit status with events lost"
	local text
	text=$(sed -n 's/^  losses: \([0-9]*\).*/\1/p' "$CASE_TMP/out.txt")
	python3 - "$CASE_TMP/out.json" "$CASE_TMP/stats.json" "${text:-0}" <<'PY'
import json, sys
j, s = (json.load(open(p)) for p in sys.argv[1:3])
text = int(sys.argv[3])
a, sa = j['ring_accounting'], s['ring_accounting']
print(f"text {text}, report {j['losses']['total']}, ring_accounting {a['lost']}, "
      f"--stats {sa['lost']} / {s.get('losses', {}).get('total')}")
bad = 0
bad += not (a['lost'] > 0)
bad += not (text == j['losses']['total'] == a['lost'] == sa['lost'] == s.get('losses', {}).get('total', sa['lost']))
bad += not (a['exact'] and a['produced'] == a['received'] + a['lost'])
bad += not (j['summary']['events_lost'] == a['lost'])
print('FAILED: the loss differs' if bad else 'ok: report == ring_accounting == --stats')
sys.exit(1 if bad else 0)
PY
}
