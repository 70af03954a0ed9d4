# tests/guest/tracerlib.bash: helpers of the tracer suites (tracer.sh,
# tracer_limits.sh): run kextrace, read its JSON with python3, bpftrace side by side.

# --- helpers (not cases) ---------------------------------------------------------

# pyjson FILE CODE: run python CODE with j = the parsed JSON of FILE and
# ok(cond, what) to assert; fails the case if any ok() failed.
pyjson() {
	python3 "$KEX_TOP/tests/guest/jcheck.py" "$1" "$2"
}

# pyevents FILE CODE: like pyjson, with ev = the list of --events records.
pyevents() {
	python3 "$KEX_TOP/tests/guest/jcheck.py" --events "$1" "$2"
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

# SIGINT, then SIGTERM every second until it ends, then its exit status; a
# bpftrace still running 60 s later is reported with its signal masks and
# its threads' kernel stacks, killed, and the case fails.
bpftrace_stop() {
	local rc=0 i t
	# bpftrace 0.17's poll loop returns only when epoll_wait is interrupted;
	# a signal handled while it was outside epoll_wait sets its exit flag and
	# is never looked at again (seen in CI: SIGINT caught, none pending,
	# blocked in epoll_wait). Another signal interrupts the wait and finds
	# the flag set. The repeats are SIGTERM: bpftrace resets SIGINT to its
	# default once its loop has returned (a second SIGINT while it prints
	# its maps kills it, exit 130: seen in CI), SIGTERM keeps the handler.
	kill -INT "$bt_pid"
	for i in $(seq 600); do
		((i % 10 != 0)) || kill -TERM "$bt_pid" 2>/dev/null || break
		kill -0 "$bt_pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$bt_pid" 2>/dev/null; then
		# diagnostics only: it may end while they are read
		grep -E '^(State|Sig(Q|Pnd|Blk|Ign|Cgt)|ShdPnd)' "/proc/$bt_pid/status" || echo "(ended)"
		for t in /proc/"$bt_pid"/task/*; do
			echo "--- thread ${t##*/}: $(cat "$t/comm" "$t/stack" 2>&1)"
		done
		kill -9 "$bt_pid" 2>/dev/null || echo "(ended before the kill)"
		fail "bpftrace still running 60 s after SIGINT"
	fi
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
