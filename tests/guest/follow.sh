# tests/guest/follow.sh: kextrace --follow in the guest (run: scripts/vm
# [--kernel 6.12] -- tests/guest/run follow).
#
#   kex_path     an 8-page kex run: every function with a page, folio,
#                folio_batch or page array argument found in BTF and
#                attached (kprobe.multi where the kernel has fprobe, single
#                kprobes on 6.1); each page's followed path has vm_insert_page,
#                the rmap add, the dirty marking at the zap, the rmap removal
#                and the free path of this kernel, in that order, 8/8 on the
#                common path; nothing attached after the exit
#   sigint       Ctrl-C while the probes attach or run: exit 130, a report,
#                nothing attached after
#   narrow_glob  --follow '*rmap*' attaches only matching functions
#   with_leaks   --follow --leaks, and with --watch: the same verdicts (8
#                freed) and the paths (--follow --watch did not load on 7.2)
#   plan         --follow --plan lists chosen and left-out functions, with
#                reasons, and attaches nothing

# --- helpers (not cases) ---------------------------------------------------------

. "$KEX_TOP/tests/guest/tracerlib.bash"

# What ftrace has armed on kernel functions (kprobes and fprobes both sit on
# ftrace sites): empty in a guest where nothing traces.
follow_armed() {
	wc -l </sys/kernel/tracing/enabled_functions
}

# follow_nothing_left BEFORE: no ftrace site, kprobe or BPF link of ours left
follow_nothing_left() {
	expect_eq "$(follow_armed)" "$1" "ftrace sites armed after kextrace exited (enabled_functions)"
	expect_eq "$(awk '/kextrace\//' /sys/kernel/tracing/kprobe_events | wc -l)" 0 "tracefs kprobes removed"
	local links
	links=$(bpftool link show) || fail "bpftool link show failed"
	expect_eq "$(grep -c -E 'kprobe_multi|perf_event' <<<"$links" || :)" 0 \
		"BPF links (kprobe_multi, perf_event) left"
}

# The free path this kernel takes from the zap (docs/kernel-path.md): 6.1
# batches page pointers, later kernels encoded pages and folio batches.
# 6.1's free_unref_page_list takes a list_head: not followable by argument,
# it is on the free step's stack instead.
follow_free_path() {
	case "$KEX_GUEST_KERNEL" in
	'' | 6.1) echo "'free_pages_and_swap_cache', 'release_pages'" ;;
	*) echo "'free_pages_and_swap_cache', 'folios_put_refs', 'free_unref_folios'" ;;
	esac
}

# --- cases -------------------------------------------------------------------------

case_kex_path() {
	local rc=0 before
	kex_load
	before=$(follow_armed)
	kextrace --follow --json "$CASE_TMP/out.json" --full \
		-- mmap_test /dev/kex 8 --no-wait >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	cat "$CASE_TMP/err.txt" | grep -E '^kextrace: follow' || :
	expect_eq "$rc" 0 "kextrace's exit status"
	follow_nothing_left "$before"
	sed -n '/^follow: /,/^every page passed/p' "$CASE_TMP/out.txt"
	local err
	err=$(cat "$CASE_TMP/err.txt")
	if [ "$KEX_GUEST_KERNEL" = 6.1 ] || [ -z "$KEX_GUEST_KERNEL" ]; then
		expect_match "$err" "kextrace: follow: ([0-9]+) of \\1 functions via kprobe \\(\\1 links\\) in [0-9]+ ms \\(kprobe.multi refused: .*CONFIG_FPROBE" \
			"the attach line: every function by a single kprobe, and why"
	else
		expect_match "$err" "kextrace: follow: ([0-9]+) of \\1 functions via kprobe.multi \\([0-9]+ links?\\) in [0-9]+ ms" \
			"the attach line: every function in kprobe.multi links"
	fi
	expect_match "$(cat "$CASE_TMP/out.txt")" "follow: [0-9]+ functions via .* \\(attached in [0-9]+ ms, detached in [0-9]+ ms\\), [0-9]+ program runs" \
		"attach and detach times in the report"
	expect_match "$(cat "$CASE_TMP/out.txt")" "followed paths:" "--full prints each page's path"
	pyjson "$CASE_TMP/out.json" "
FREE = [$(follow_free_path)]
f = j['follow']
pages = sorted(j['pages'], key=lambda p: p['index'])
probe = {p['step']: p.get('resolved') for p in j['run']['probes']}
ok(len(pages) == 8, f'{len(pages)} page lives')
ok(j['losses']['total'] == 0, 'nothing lost')
ok(f['nested_dropped'] == 0, 'no follow record of a tracked page dropped')
# any caller's array or folio counts (system-wide), not only kex's: said, not asserted
print(f\"note: {f['arrays_partly_scanned']} arrays, {f['folios_partly_scanned']} folios partly scanned; \"
      f\"{f['runs']} program runs, {f['matched']} on tracked pages\")
ok(f['runs'] > 0 and f['matched'] >= f['calls'] > 0, 'program runs and matches counted')
ok(f['attach']['attached'] == len(f['functions']) > 100, f\"{f['attach']['attached']} functions attached\")
ok(f['attach']['us'] > 0 and f['attach']['detach_us'] > 0, 'attach and detach times measured')
ok(f['followed_pages'] == 8 and f['unmatched'] == 0, 'every page followed, no call outside a life')
names = f['functions']
def path(p):
    return [names[s['value']] for s in p['steps'] if s['kind'] == 'followed']
want = ['vm_insert_page', probe['rmap add'], probe['dirty at zap'], probe['zap (rmap remove)']] + FREE
print('note: page 0 path: ' + ' > '.join(path(pages[0])))
for p in pages:
    seq = path(p)
    missing = [w for w in want if w not in seq]
    ok(not missing, f\"page {p['index']}: {missing} not on its path\")
    if not missing:
        at = [seq.index(w) for w in want]
        ok(at == sorted(at), f\"page {p['index']}: in order {want}: at {at}\")
    steps = [s['kind'] for s in p['steps']]
    ok(steps.index('kex_alloc') < steps.index('followed') and steps[-1] in ('page_free', 'page_free_batched'),
       f\"page {p['index']}: followed calls between its allocation and its free\")
common = {c['function']: c['pages'] for c in f['common_path'] if c['function']}
ok(all(common.get(w) == 8 for w in want), 'common path: ' + ', '.join(f'{w} {common.get(w)}/8' for w in want))
unwatched = set(f['every_page_unwatched'])
ok(set(FREE) <= unwatched, 'the free path is named as passed by every page, not watched by the plan')
if FREE[-1] == 'release_pages':
    # 6.1: free_unref_page_list(struct list_head *) cannot be followed by argument: the free's stack has it
    st = j['stacks']
    frees = [s for p in pages for s in p['steps'] if s['kind'] == 'page_free' and s.get('stack') is not None]
    ok(frees and all(any(fr['sym'].startswith('free_unref_page_list+') for fr in st[s['stack']]) for s in frees),
       'free_unref_page_list on the free step stack of every page')
"
}

case_sigint() {
	local rc=0 before
	kex_load
	before=$(follow_armed)
	# job control: a background job's SIGINT is not ignored, as at a terminal
	set -m
	kextrace --follow --json "$CASE_TMP/out.json" -- sleep 299 >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" &
	local k=$! i
	set +m
	# as soon as the first probes are armed: the attach is under way (seconds
	# of single kprobes on 6.1; on fprobe kernels the plan's probes follow)
	for i in $(seq 600); do
		[ "$(follow_armed)" -gt "$before" ] && break
		sleep 0.1
	done
	kill -INT $k
	wait $k || rc=$?
	grep -v debug "$CASE_TMP/err.txt" | head -3
	grep 'stopped by signal' "$CASE_TMP/err.txt" || :
	expect_eq "$rc" 130 "exit status after SIGINT"
	# The command's fate, not a time: never started (the signal came during
	# the attach) or ended by the signal kextrace passed on (it came later);
	# a command left running, or killed 2 s later, reads otherwise.
	expect_match "$(cat "$CASE_TMP/err.txt")" \
		"kextrace: stopped by signal 2( while attaching: sleep was never started|; sleep: killed by signal 2 \\(INT\\))" \
		"the stop line says what became of the command"
	expect_eq "$(pgrep -c -x -f 'sleep 299' || :)" 0 "the command's processes left"
	follow_nothing_left "$before"
}

case_narrow_glob() {
	local rc=0
	kex_load
	kextrace --follow '*rmap*' --json "$CASE_TMP/out.json" \
		-- mmap_test /dev/kex 8 --no-wait >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
	expect_eq "$rc" 0 "kextrace's exit status"
	grep '^kextrace: follow' "$CASE_TMP/err.txt" || :
	pyjson "$CASE_TMP/out.json" "
import fnmatch
f = j['follow']
probe = {p['step']: p.get('resolved') for p in j['run']['probes']}
ok(f['functions'] and all(fnmatch.fnmatch(n, '*rmap*') for n in f['functions']), 'only *rmap* functions')
ok(f['not_matched'] > 0, 'the others counted as not matched')
common = {c['function']: c['pages'] for c in f['common_path'] if c['function']}
for w in (probe['rmap add'], probe['zap (rmap remove)']):
    ok(common.get(w) == 8, f'{w} on every page path ({common.get(w)})')
"
}

case_with_leaks() {
	local rc watch
	kex_load
	for watch in "" --watch; do
		rc=0
		# shellcheck disable=SC2086 # $watch: no option, or one
		kextrace --follow --leaks $watch --json "$CASE_TMP/out.json" \
			-- mmap_test /dev/kex 8 --no-wait >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" || rc=$?
		expect_eq "$rc" 0 "kextrace --follow --leaks $watch: exit status ($(tail -1 "$CASE_TMP/err.txt"))"
		pyjson "$CASE_TMP/out.json" "
c = j['leaks']['counts']
ok(c['freed'] == 8 and c['leaked'] == 0 and j['leaks']['bugs'] == 0, f'8 freed, nothing leaked: {c}')
ok(j['leaks']['events_lost'] == 0, 'no events lost')
ok(j['follow']['followed_pages'] == 8, 'every page followed beside the leak verdicts')
"
	done
}

case_plan() {
	local rc=0 before out
	before=$(follow_armed)
	out=$(kextrace --follow --plan 2>&1) || rc=$?
	expect_eq "$rc" 0 "exit status of --plan"
	expect_eq "$(follow_armed)" "$before" "--plan attaches nothing"
	expect_match "$out" "chosen [0-9]+ \\(with a page [0-9]+, a folio [0-9]+, a folio_batch [1-9][0-9]*, a page array [1-9][0-9]*\\)" \
		"chosen functions by kind, batches and arrays among them"
	expect_match "$out" "kprobe blacklist|not in available_filter_functions" "left-out functions with their reason"
	expect_match "$out" "release_pages +arg1 page array" "release_pages by its page array"
}
