# tests/guest/tracer_modes.sh: kextrace's story of each kex mapping mode, in
# the guest (run: scripts/vm [--kernel 6.12] -- tests/guest/run tracer_modes).
#
#   insert  alloc, insert, rmap, PTE, kex_page_insert, kex free, zap, free
#   batch   the same per page, through fewer vm_insert_pages calls than pages
#   fault   alloc in the .fault handler, do_set_pte (6.1) / set_pte_range
#           (6.12) once per page at its first touch, never before; a write
#           fault installs a dirty PTE, a read fault a clean one (then dirty
#           at the zap); rmap, zap, kex free at close, free
#   pfn     alloc, remap_pfn_range, kex_page_insert; no insert, no rmap, no
#           refcount change by the mapping; at the zap only vm_normal_page,
#           given a special PTE (the page's PTE); the page is freed by kex at
#           close, not by the unmap
# Every mode: every page story complete for its mode, zero anomalies.

# --- helpers (not cases) ---------------------------------------------------------

# modes_py JSON EVENTS CODE: python CODE with j = the --json report, ev = the
# --events records, ok(cond, what); fails the case if any ok() failed.
modes_py() {
	python3 "$KEX_TOP/tests/guest/jcheck.py" "$1" --events "$2" "
pages = sorted(j['pages'], key=lambda p: p['index'])
phase = {p['name']: p for p in j['phases']}
$3"
}

# modes_trace N ARGS...: kextrace --json/--events on mmap_test /dev/kex N ARGS --no-wait
modes_trace() {
	local n=$1 rc=0
	shift
	kextrace --json "$CASE_TMP/out.json" --events "$CASE_TMP/ev.jsonl" \
		-- mmap_test /dev/kex "$n" "$@" --no-wait >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	# kextrace's own status, taken before anything else runs
	if [ "$rc" != 0 ]; then
		cat "$CASE_TMP/err.txt" "$CASE_TMP/out.txt"
		fail "kextrace exited $rc"
		return 1
	fi
	sed -n '/^kex mappings/,/^pages, unmap side/p' "$CASE_TMP/out.txt"
}

# The checks every mode shares: N complete lives of MODE, one mapping, no anomaly, no loss.
modes_common() {
	local n=$1 mode=$2 policy=$3
	modes_py "$CASE_TMP/out.json" "$CASE_TMP/ev.jsonl" "
N, MODE, POLICY = $n, '$mode', '$policy'
m = j['mappings']
ok(len(m) == 1, 'one kex mapping')
ok(m[0]['mode'] == MODE and not m[0]['mode_inferred'], 'mapping mode ' + MODE + ' (from kex_mmap_mode)')
ok(len(pages) == N, f'{len(pages)} page lives, expected {N}')
ok(all(p['mode'] == MODE for p in pages), 'every page in mode ' + MODE)
ok(all(p['policy'] == POLICY for p in pages), 'policy ' + POLICY)
ok(all(p['complete'] for p in pages), 'every page story complete for its mode: ' +
   str(set(tuple(p['missing']) for p in pages)))
ok(j['losses']['total'] == 0, 'no events lost')
ok(len(j['anomalies']) == 0, 'no anomalies: ' + '; '.join(a['message'] for a in j['anomalies'][:3]))
ok(all(p['free']['ts'] for p in pages), 'every page freed')
"
}

# --- cases -------------------------------------------------------------------------

case_insert_mode() {
	kex_load
	modes_trace 8 --mode insert
	modes_common 8 insert drop
	modes_py "$CASE_TMP/out.json" "$CASE_TMP/ev.jsonl" "
for k in ('kex_alloc', 'insert', 'insert_ret', 'rmap_add', 'pte_set', 'kex_insert', 'kex_free', 'rmap_remove', 'page_free'):
    ok(all(steps(p, k) for p in pages), 'every page has ' + k)
ok(all(p['refcount_trail'] == [1, 2, 1, 0] for p in pages), 'refcount 1->2->1->0')
ok(not any(e['type'] in ('vm_insert_pages', 'remap_pfn', 'kex_fault', 'do_set_pte') for e in ev),
   'no batch, pfn or fault-path event')
"
}

case_batch_mode() {
	local n=200 # KEX_BATCH_PAGES is 64: 4 calls
	kex_load
	modes_trace $n --mode batch
	modes_common $n batch drop
	modes_py "$CASE_TMP/out.json" "$CASE_TMP/ev.jsonl" "
N = $n
m = j['mappings'][0]
calls = [e for e in ev if e['type'] == 'vm_insert_pages']
batches = [e for e in ev if e['type'] == 'kex_batch']
print(f'note: {len(calls)} vm_insert_pages calls (kprobe), {len(batches)} kex_batch, for {N} pages')
ok(0 < len(calls) < N, 'fewer vm_insert_pages calls than pages (kprobe)')
ok(len(batches) == len(calls) == m['batch_calls'] == m['vm_insert_pages'], 'one kex_batch per vm_insert_pages call')
ok(sum(e['arg0'] for e in calls) == N, 'the calls asked for every page')
ok(sum(e['arg1'] for e in batches) == N, 'kex_batch: every page mapped')
for k in ('insert', 'insert_ret', 'rmap_add', 'pte_set', 'kex_insert', 'rmap_remove'):
    ok(all(len(steps(p, k)) == 1 for p in pages), 'every page has one ' + k)
ins = [e for e in ev if e['type'] == 'insert' and e.get('stack')]
# insert_pages is vm_insert_pages' own (which 7.2 tail-calls: off the stack)
ok(ins and all(any(f.startswith(('vm_insert_pages+', 'insert_pages+')) for f in e['stack']) for e in ins),
   'the inserts come from vm_insert_pages (same insert function): ' + ' < '.join(ins[0]['stack'][:5] if ins else []))
ok(all(p['refcount_trail'] == [1, 2, 1, 0] for p in pages), 'refcount 1->2->1->0')
"
}

# Write faults (the default: the pages come in on the rig's write)
case_fault_mode_write() {
	kex_load ref_policy=keep
	modes_trace 8 --mode fault
	modes_common 8 fault keep
	modes_py "$CASE_TMP/out.json" "$CASE_TMP/ev.jsonl" "
fn = 'do_set_pte' if '$KEX_GUEST_KERNEL' in ('', '6.1') else 'set_pte_range'
probe = next(p for p in j['run']['probes'] if p['step'] == 'fault install')
ok(probe['resolved'] == fn, 'fault install via ' + probe['resolved'])
w = phase['write']['start']
ok(j['mappings'][0]['mapped'] == 0 and j['mappings'][0]['faults'] == 8, 'nothing mapped at mmap, 8 faults')
ok(all(len(steps(p, 'do_set_pte')) == 1 for p in pages), fn + ' once per touched page')
ok(all(steps(p, 'do_set_pte')[0]['ts'] > w for p in pages), fn + ' only after write_begin (never before the touch)')
ok(all(s['ts'] > w for p in pages for s in p['steps']), 'nothing of a page happens before its touch')
ok(all(p['pte']['source'] == 'do_set_pte_ret' for p in pages), 'PTE read back at the install')
ok(all(p['pte']['dirty'] for p in pages), 'a write fault installs a dirty PTE')
ok(all(p['first_write']['kind'] == 'fault' and p['first_write']['error_code'] & 2 for p in pages),
   'first write: a (write) user fault on every page')
ok(all(steps(p, 'user_fault') and steps(p, 'user_fault')[0]['ts'] < steps(p, 'do_set_pte')[0]['ts']
       for p in pages), 'the user fault comes before the PTE install')
ok(not any(steps(p, 'kex_insert') or steps(p, 'insert') for p in pages), 'no insert, no kex_page_insert')
for k in ('kex_alloc', 'rmap_add', 'rmap_remove', 'kex_free', 'page_free'):
    ok(all(steps(p, k) for p in pages), 'every page has ' + k)
ok(all(p['zap']['context'] == 'munmap' and p['zap']['dirty'] for p in pages), 'zapped dirty at munmap')
ok(all(p['kex_free_reason'] == 'at-close' for p in pages), 'kex frees at close')
ok(all(p['refcount_trail'] == [1, 2, 1, 0] for p in pages), 'refcount 1->2->1->0: ' +
   str(set(tuple(p['refcount_trail']) for p in pages)))
"
}

# Read faults first: a clean PTE at the install, then the MMU's D bit, dirty at the zap
case_fault_mode_read_first() {
	kex_load ref_policy=keep
	modes_trace 8 --mode fault --read-first
	modes_common 8 fault keep
	modes_py "$CASE_TMP/out.json" "$CASE_TMP/ev.jsonl" "
w = phase['write']['start']
mm = phase['mmap']['end']
ok(all(len(steps(p, 'do_set_pte')) == 1 for p in pages), 'one PTE install per page')
ok(all(mm < steps(p, 'do_set_pte')[0]['ts'] < w for p in pages), 'installed by the reads: after mmap, before the write')
ok(all(not p['pte']['dirty'] and p['pte']['rw'] for p in pages), 'a read fault installs a clean, writable PTE')
ok(all(p['first_write']['kind'] == 'no_fault' for p in pages), 'the write then faults no more (the MMU sets D)')
ok(all(p['zap']['dirty'] for p in pages), 'dirty at the zap')
ok(all(not (steps(p, 'user_fault')[0]['value'] & 2) for p in pages), 'the fault was a read')
"
}

case_pfn_mode() {
	kex_load ref_policy=keep
	modes_trace 8 --mode pfn
	modes_common 8 pfn keep
	modes_py "$CASE_TMP/out.json" "$CASE_TMP/ev.jsonl" "
m = j['mappings'][0]
ok(m['remap_pfn_calls'] == 8, f\"remap_pfn_range once per page ({m['remap_pfn_calls']})\")
rp = [e for e in ev if e['type'] == 'remap_pfn']
ok(all(e['arg0'] == 4096 for e in rp), 'remap_pfn_range(addr, pfn, 4096) per page')
ok(all(e['refcount'] == 1 for e in ev if e['type'] == 'remap_pfn_ret'), 'the mapping takes no reference')
ok(not any(steps(p, k) for p in pages for k in ('insert', 'insert_ret', 'rmap_add', 'rmap_remove', 'set_dirty', 'do_set_pte')),
   'no insert, no rmap, nothing at the zap (special PTEs)')
ok(not any(e['type'] in ('rmap_add', 'rmap_remove', 'insert', 'set_dirty') for e in ev), 'not a single such event')
ok(all(p['refcount_trail'] == [1, 0] for p in pages), 'refcount 1->0: ' + str(set(tuple(p['refcount_trail']) for p in pages)))
ok(all(p['mapcount_trail'] in ([0], []) for p in pages), 'mapcount stays 0')
ok(all(p['zap']['context'] == 'none' for p in pages), 'no zap')
# the PTE: the one the munmap's zap gave vm_normal_page, special (bit 9),
# present, user, the page's pfn, dirty (the rig wrote it)
lk = [(p, steps(p, 'pte_lookup')) for p in pages]
ok(all(len(s) == 1 for p, s in lk), 'one vm_normal_page per page: ' + str([len(s) for p, s in lk]))
ok(all(p['pte'] and p['pte']['source'] == 'pte_lookup' and p['pte']['address'] is None for p in pages),
   'the PTE comes from vm_normal_page')
ok(all(p['pte']['special'] and p['pte']['present'] and p['pte']['user'] and p['pte']['rw'] for p in pages),
   'special, present, user, writable: ' + str(set(p['pte']['flags'] for p in pages)))
ok(all(p['pte']['flags'].endswith(' S') for p in pages), 'flags say S')
ok(all(p['pte']['pfn'] == p['pfn'] for p in pages), 'the PTE maps the page')
ok(all(p['pte']['dirty'] for p in pages), 'written: dirty at the zap')
ok(all(s[0]['ts'] > phase['munmap']['start'] for p, s in lk if s), 'looked up in the munmap')
lev = [e for e in ev if e['type'] == 'pte_lookup']
ok(len(lev) == 8 and all(e['stack'][0].startswith('vm_normal_page') and
   any(x in f for f in e['stack'] for x in ('unmap_vmas', 'zap_')) for e in lev),
   'the zap called it: ' + str(lev[0]['stack'][:4] if lev else None))
ok(all(e['refcount'] == 1 and e['mapcount'] == 0 for e in lev), 'refcount 1, mapcount 0 at the zap')
ok(all(p['kex_free_reason'] == 'at-close' and not p['free']['batched'] for p in pages), 'freed by kex at close')
ok(all(p['free']['ts'] > m['close_ts'] for p in pages), 'freed after the VMA closed')
frees = [e for e in ev if e['type'] == 'page_free' and e.get('stack')]
ok(len(frees) == 8 and all(any('[kex]' in f for f in e['stack']) and
   not any(x in f for f in e['stack'] for x in ('release_pages', 'folios_put', 'tlb_'))
   for e in frees), 'the free stack is kex, not the unmap')
"
}
