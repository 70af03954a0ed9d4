# tests/guest/tracer.sh: kextrace in the guest, asserting what the kernel
# really did to kex's pages (run: scripts/vm -- tests/guest/run tracer [CASE...]).
#
# Each case runs kextrace on a real command and reads its --json report (and
# --events JSON lines) with python3; the expectations come from
# shared/docs/kernel-path.md: refcount 1->2->1->0, PTE present+rw+user
# with the page's own pfn, no fault on the first write (the MMU sets D), dirty
# at zap, freed after munmap (or at exit, or at close with ref_policy=keep).
# One case counts the same functions with bpftrace in the same guest.

. "$KEX_TOP/tests/guest/tracerlib.bash"

# This kernel's verifier accepts every program in every mode the programs
# branch on (--watch, --stacks, --follow's: tests/host/load_check.cpp), kex
# not loaded: --follow --watch once did not load on 7.2 alone.
case_every_program_loads() {
	local rc=0
	kextrace-load-check >"$CASE_TMP/load.txt" 2>&1 || rc=$?
	cat "$CASE_TMP/load.txt"
	expect_eq "$rc" 0 "kextrace-load-check's exit status"
	expect_eq "$(grep -c '^FAIL' "$CASE_TMP/load.txt")" 0 "loads that failed"
}

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
	# stacks on alloc, insert, kex free and page free, none on kex_page_insert
	# (--stacks sites); the insert's is the mmap path
	pyevents "$CASE_TMP/ev.jsonl" "
ins = [e for e in ev if e['type'] == 'insert']
ok(len(ins) == 8 and all(e.get('stack') for e in ins), 'every insert carries a kernel stack')
# starting at the insert function (an fentry's too: tramp_stack.h), up to
# kex's mmap (7.2's vm_insert_page tail-calls insert_page: not on the stack)
st = ins[0]['stack']
ok(st[0].startswith('insert_page_into_pte_locked') and any(f.startswith('kex_mmap+') for f in st),
   'insert stack: the insert up to kex_mmap: ' + ' < '.join(st[:6]))
for t in ('kex_page_alloc', 'kex_page_free', 'page_free'):
    ok(all(e.get('stack') for e in ev if e['type'] == t), t + ' records carry stacks')
kins = [e for e in ev if e['type'] == 'kex_page_insert']
ok(len(kins) == 8 and not any(e.get('stack') for e in kins),
   'kex_page_insert records carry none (no reference taken; the insert has the chain)')
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
	local ins ins_ret ins_page rmap_add rmap_rm dirty rmap_add_page rmap_rm_page clone
	# the insert as this kernel has it: a clone without addr (6.1, 6.12:
	# kprobes, the page in arg2), or whole (7.2: in BTF, where kextrace puts
	# a trampoline, and so does bpftrace: one mechanism per function)
	clone=$(awk '$3 ~ /^insert_page_into_pte_locked\.(constprop|isra)\.[0-9]+$/ { print $3; exit }' /proc/kallsyms)
	if [ -n "$clone" ]; then
		ins=kprobe:$clone ins_ret=kretprobe:$clone ins_page=arg2
	else
		ins=kfunc:insert_page_into_pte_locked ins_ret=kretfunc:insert_page_into_pte_locked
		ins_page='(uint64)args->page'
	fi
	case ${KEX_GUEST_KERNEL:-6.1} in
	6.1)
		rmap_add=page_add_file_rmap rmap_add_page=arg0
		rmap_rm=page_remove_rmap rmap_rm_page=arg0
		dirty=set_page_dirty ;;
	*)
		rmap_add=folio_add_file_rmap_ptes rmap_add_page=arg1
		rmap_rm=folio_remove_rmap_ptes rmap_rm_page=arg1
		dirty=folio_mark_dirty ;;
	esac
	cat >"$CASE_TMP/count.bt" <<EOF
BEGIN { printf("ready\n"); }
tracepoint:kex:kex_page_alloc { @kex[args->page] = 1; @pfn[args->pfn] = 1; @n["kex_page_alloc"] = count(); }
tracepoint:kex:kex_page_insert /@pfn[args->pfn]/ { @n["kex_page_insert"] = count(); }
tracepoint:kex:kex_page_free /@pfn[args->pfn]/ { @n["kex_page_free"] = count(); }
$ins /@kex[$ins_page]/ { @n["insert"] = count(); @ins[tid] = 1; }
$ins_ret /@ins[tid]/ { @n["insert_ret"] = count(); delete(@ins[tid]); }
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

case_sigint_still_reports() {
	local rc=0
	kextrace --json "$CASE_TMP/out.json" -- sleep 299 >/dev/null 2>"$CASE_TMP/err.txt" &
	local k=$!
	wait_kextrace_started "$CASE_TMP/err.txt"
	kill -INT $k
	wait $k || rc=$?
	[ -s "$CASE_TMP/out.json" ] || fail "no JSON report after SIGINT"
	expect_eq "$rc" 130 "exit status after SIGINT"
	expect_match "$(cat "$CASE_TMP/err.txt")" "kextrace: stopped by signal 2; sleep: killed by signal 2 \\(INT\\)" \
		"the command, started, ended by the signal kextrace passed on"
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
	wait_kextrace_started "$CASE_TMP/err.txt"
	echo go >"$CASE_TMP/go"
	local rc=0
	wait $rig
	wait $k || rc=$?
	cat "$CASE_TMP/err.txt" "$CASE_TMP/out.txt"
	expect_eq "$rc" 0 "kextrace -p exit status once its process ended"
	check_clean_run "$CASE_TMP/out.json" 4 drop munmap
}

# --- returns: fexit where the kernel's BTF has the function (kernel-specific,
# so here, in the suite every guest kernel runs) ---

# Returns are observed with fexit where the kernel's BTF has the function,
# and then the entry with fentry: one BPF trampoline per function, never a
# kprobe beside it. Kprobe + kretprobe where BTF has not the function (the
# insert clone of 6.1 and 6.12; 6.1's unmap_region, 7 arguments); 7.2's
# insert is whole, in BTF: fentry + fexit, its layout from BTF's names. The start-up table, the
# JSON and the probe counters say which, the kernel's kprobe_events holds no
# kprobe for a trampoline step, and the per-page story is the one every
# clean run has.
case_returns_use_fexit_where_btf_has_them() {
	kex_load
	local set_pte=do_set_pte unmap='tracefs kprobe \+ tracefs kretprobe' ins_kprobes=1 ins_mech
	[ "${KEX_GUEST_KERNEL:-6.1}" = 6.1 ] || { set_pte=set_pte_range; unmap='fentry \+ fexit'; }
	grep -qE ' insert_page_into_pte_locked\.(constprop|isra)\.[0-9]+$' /proc/kallsyms || ins_kprobes=0
	kextrace --json "$CASE_TMP/out.json" --stats "$CASE_TMP/stats.json" --events "$CASE_TMP/ev.jsonl" \
		--usdt "$KEX_BUILD/bin/mmap_test" -- sh -c "mmap_test /dev/kex 8 --no-wait; cat /sys/kernel/tracing/kprobe_events >$CASE_TMP/kprobe_events" \
		>"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt"
	grep -E '^(step|insert|fault install|unmap|exit unmap|pfn map|reap) ' "$CASE_TMP/err.txt"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^fault install +yes +fentry \+ fexit +'"$set_pte"' ' "fault install: fentry + fexit on $set_pte"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^exit unmap +yes +fentry \+ fexit +exit_mmap ' "exit unmap: fentry + fexit"
	expect_match "$(cat "$CASE_TMP/err.txt")" '^pfn map +yes +fentry \+ fexit +remap_pfn_range(_track)? ' "pfn map: fentry + fexit"
	if [ $ins_kprobes = 1 ]; then
		ins_mech='tracefs kprobe + tracefs kretprobe'
		expect_match "$(cat "$CASE_TMP/err.txt")" '^insert +yes +tracefs kprobe \+ tracefs kretprobe +insert_page_into_pte_locked\.' "insert: the clone keeps its kprobe and kretprobe"
	else
		ins_mech='fentry + fexit'
		expect_match "$(cat "$CASE_TMP/err.txt")" '^insert +yes +fentry \+ fexit +insert_page_into_pte_locked +from BTF: pte PARM2, addr PARM3, page PARM4; mkwrite PARM6' "insert: whole, in BTF: one trampoline, its layout from BTF"
	fi
	expect_match "$(cat "$CASE_TMP/err.txt")" '^unmap \(munmap\) +yes +'"$unmap"' ' "unmap: $unmap"
	# while the command ran: kprobe_events has no probe on a trampoline's function
	cat "$CASE_TMP/kprobe_events"
	expect_eq "$(grep -c 'exit_mmap' "$CASE_TMP/kprobe_events")" 0 "no kprobe on exit_mmap"
	expect_eq "$(grep -c "$set_pte\$" "$CASE_TMP/kprobe_events")" 0 "no kprobe on $set_pte"
	expect_eq "$(grep -c 'remap_pfn_range' "$CASE_TMP/kprobe_events")" 0 "no kprobe on remap_pfn_range"
	expect_eq "$(grep -c '^p.*insert_page_into_pte_locked' "$CASE_TMP/kprobe_events")" $ins_kprobes "the insert's kprobe: $ins_kprobes"
	expect_eq "$(grep -c '^r.*insert_page_into_pte_locked' "$CASE_TMP/kprobe_events")" $ins_kprobes "the insert's kretprobe: $ins_kprobes"
	check_clean_run "$CASE_TMP/out.json" 8 drop munmap
	pyjson "$CASE_TMP/out.json" "
ins_mech = '$ins_mech'
by = {p['step']: p for p in j['run']['probes']}
ok(by['fault install']['mechanism'] == 'fentry + fexit', 'JSON: fault install ' + by['fault install']['mechanism'])
ok(by['exit unmap']['mechanism'] == 'fentry + fexit', 'JSON: exit unmap ' + by['exit unmap']['mechanism'])
ok('one trampoline' in by['exit unmap']['reason'], 'JSON: exit unmap says why: ' + by['exit unmap']['reason'])
ok(by['insert']['mechanism'] == ins_mech, 'JSON: insert ' + by['insert']['mechanism'])
ok(by['alloc']['mechanism'] == 'tracepoint' and by['fork']['mechanism'] == 'tp_btf', 'JSON: tracepoints')
pc = j['probe_counters']
ok(pc['exit_mmap']['mechanism'] == 'fentry' and pc['exit_mmap_ret']['mechanism'] == 'fexit', 'counters: exit_mmap fentry + fexit')
ok(pc['set_pte']['mechanism'] == 'fentry' and pc['set_pte_ret']['mechanism'] == 'fexit', 'counters: set_pte fentry + fexit')
ins_pc = ('kprobe', 'kretprobe') if ins_mech.startswith('tracefs') else ('fentry', 'fexit')
ok((pc['insert']['mechanism'], pc['insert_ret']['mechanism']) == ins_pc, 'counters: insert ' + ' + '.join(ins_pc))
# the kernel counts a trampoline program's skipped runs; kextrace reports them
ok(all(isinstance(pc[p]['missed'], int) for p in ('exit_mmap', 'exit_mmap_ret', 'set_pte', 'set_pte_ret')),
   'counters: trampoline misses known: ' + str({p: pc[p]['missed'] for p in ('exit_mmap', 'set_pte')}))
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
# an fentry's stack starts where a kprobe's would: at the function itself
ent = [e for e in ev if e['type'] == 'do_set_pte']
tops = {e['stack'][0].split('+')[0] for e in ent if e.get('stack')}
ok(len(ent) >= 4 and tops <= {'do_set_pte', 'set_pte_range'} and len(tops) == 1,
   f'{len(ent)} fentry records, stacks start at {tops}: {ent[0].get(\"stack\", [])[:3] if ent else None}')
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
