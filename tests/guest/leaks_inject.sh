# tests/guest/leaks_inject.sh: kextrace --leaks against kex's fault injection
# (inject_noput, inject_extra_get, inject_fail_leak): exactly the injected
# pages are reported leaked, with the stack of the reference never dropped,
# exit status 4, and the module's own counters (pages_leaked_injected,
# pages_live) agree. Each case leaks a few pages for good: a suite of its own,
# so that the clean suite (leaks.sh) runs in an unpolluted boot.
# Run by: scripts/vm [--kernel 6.12] -- tests/guest/run leaks_inject [CASE...]
# Each case_* runs in a subshell with set -e, cwd = repo root, $CASE_TMP.

# shellcheck source=tests/guest/leaklib.bash
. "$(dirname "${BASH_SOURCE[0]}")/leaklib.bash"

# expect_module_leaked N: the module counts N pages leaked on purpose, and
# N still live (nobody will free them).
expect_module_leaked() {
	local i
	for i in $(seq 50); do
		[ "$(kex_counter mappings)" = 0 ] && [ "$(kex_counter pages_live)" = "$1" ] && break
		sleep 0.1
	done
	expect_eq "$(kex_counter pages_leaked_injected)" "$1" "module: pages_leaked_injected"
	expect_eq "$(kex_counter pages_live)" "$1" "module: pages_live"
}

# expect_leaked "i,j,..." FREED: exactly those indexes leaked, FREED freed,
# no other verdict; each leaked page has refcount 1, mapcount 0 and one
# reference never dropped whose stack has a kex frame.
expect_leaked() {
	leaksjson "
want = [$1]
ok(by_verdict('leaked') == want, f\"leaked {by_verdict('leaked')}, expected {want}\")
ok(L['counts']['freed'] == $2, f\"freed: {L['counts']}\")
ok(L['bugs'] == len(want), 'bugs = leaked pages')
ok(L['events_lost'] == 0, 'no events lost')
for i in want:
    p = page(i)
    ok(p['refcount'] == 1 and p['mapcount'] == 0,
       f\"page {i}: refcount {p['refcount']}, mapcount {p['mapcount']} after its last event\")
    nd = p['never_dropped']
    ok(len(nd) == 1 and nd[0]['references'] == 1, f'page {i}: one reference never dropped: {nd}')
    ok(any(f.endswith('[kex]') for f in nd[0]['frames']),
       f\"page {i}: its stack has a kex frame: {nd[0]['frames'][:6]}\")
"
}

# noput on pages 1 and 5 of 8 (drop): kex never puts its own reference;
# what is left is the allocation's, taken in kex's mmap.
case_noput_1_5() {
	local rc
	kex_load inject_noput=1,5 verbose=0
	leaks_run rc -- mmap_test /dev/kex 8 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks exit status"
	expect_leaked 1,5 6
	leaksjson "
for i in (1, 5):
    nd = page(i)['never_dropped'][0]
    ok(nd['site'] == 'alloc' and nd['at'] == 'kex_alloc', f'page {i}: the alloc reference: {nd}')
    ok(any(f.startswith('kex_mmap') or 'kex_alloc_page' in f for f in nd['frames'] if f.endswith('[kex]')),
       f\"page {i}: taken in kex's mmap path: {nd['frames'][:6]}\")
    ok([l['site'] for l in page(i)['ledger']] == ['alloc', 'insert', 'zap'],
       f\"page {i}: ledger alloc, insert, zap: {page(i)['ledger']}\")
"
	expect_match "$(cat "$CASE_TMP/out.txt")" '^leaked: pages 1, 5 \(pfn 0x[0-9a-f]+, 0x[0-9a-f]+\)' "one finding for both pages"
	expect_module_leaked 2
}

# extra get on page 3: refcount 3 after the insert; the reference nobody
# drops shows up between kex_page_insert and kex's put, in kex's code.
case_extra_get_3() {
	local rc
	kex_load inject_extra_get=3 verbose=0
	leaks_run rc -- mmap_test /dev/kex 8 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks exit status"
	expect_leaked 3 7
	leaksjson "
nd = page(3)['never_dropped'][0]
ok(nd['site'] == 'unexplained' and nd['where'] == 'between kex_insert and kex_free',
   f'booked where it showed: {nd}')
taken = sum(c['delta'] for c in page(3)['changes'] if c['delta'] > 0)
ok(taken == 3, f'three references taken (alloc, insert, the extra one): {taken}')
"
	expect_module_leaked 1
}

# fail at page 3 under drop: page 3 is never mapped and never freed; 0..2,
# unmapped by the kernel's error path, are freed.
case_fail_leak_drop() {
	local rc
	kex_load inject_fail_leak=3 verbose=0
	leaks_run rc -- mmap_test /dev/kex 8 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks exit status"
	expect_leaked 3 3
	leaksjson "
nd = page(3)['never_dropped'][0]
ok(nd['site'] == 'alloc', f'the alloc reference: {nd}')
ok(page(3)['last_event']['kind'] == 'kex_insert', 'its last event: the failed insert')
"
	expect_module_leaked 1
}

# ... under keep: kex held 0..3 and returns without putting any.
case_fail_leak_keep() {
	local rc
	kex_load ref_policy=keep inject_fail_leak=3 verbose=0
	leaks_run rc -- mmap_test /dev/kex 8 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks exit status"
	expect_leaked 0,1,2,3 0
	expect_module_leaked 4
}

# noput under keep: kex forgets its reference at close.
case_noput_keep() {
	local rc
	kex_load ref_policy=keep inject_noput=2 verbose=0
	leaks_run rc -- mmap_test /dev/kex 8 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks exit status"
	expect_leaked 2 7
	expect_module_leaked 1
}

# --stacks sites against --stacks all (the default) on the same injected
# leak (noput on pages 1 and 5 of 1024, module loaded once, so the same
# addresses; 1024 pages so that the zap frees in batches): every page's
# every step and ledger line has a stack of the same functions in both
# (a BPF trampoline's frame, made anew per run, by place, not address), and
# the leaked references' stacks are the same frames; where sites shows
# another offset, it is a sibling call site of the same function at the
# same depth (free_pages_and_swap_cache's two, on 6.12 and 7.2), which the
# man page and README state. sites walked each call site once and gave the
# other records that stack (none unresolved); all walked none by site.
case_stacks_sites_match_all() {
	local rc
	kex_load inject_noput=1,5 verbose=0
	leaks_run rc --stacks all -- mmap_test /dev/kex 1024 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks --stacks all exit status"
	mv "$CASE_TMP/out.json" "$CASE_TMP/all.json"
	leaks_run rc --stacks sites -- mmap_test /dev/kex 1024 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks --stacks sites exit status"
	python3 - "$CASE_TMP/all.json" "$CASE_TMP/out.json" <<'PY'
import json, re, sys
sys.path.insert(0, "tests/guest")
from jcheck import ok, done
A, S = (json.load(open(f)) for f in sys.argv[1:3])
# a BPF trampoline (an fentry on a function of the chain) is made anew at
# every run, at another address that the symbols read at start do not name
# ("sym+0x39cebcb9"): the same frame, not the same address
def norm(f):
    return "<trampoline>" if re.search(r"\+0x[0-9a-f]{6,}( |$)", f) else f
def frames(j, sid):
    return [norm(f["sym"]) for f in j["stacks"][sid]] if sid else []
def per_page(j):
    out = {}
    for p in j["pages"]:
        out[p["index"]] = [(s["kind"], frames(j, s.get("stack", 0))) for s in p["steps"]
                           if s["kind"] != "followed"]
    for v in j["leaks"]["pages"]:
        out[v["index"]] += [("ledger " + l["site"], frames(j, l["stack"])) for l in v.get("ledger", [])]
        out[v["index"]] += [("never dropped " + n["site"], [norm(f) for f in n["frames"]])
                            for n in v.get("never_dropped", [])]
    return out
a, s = per_page(A), per_page(S)
N = 1024
ok(sorted(a) == list(range(N)) and sorted(s) == list(range(N)), f"{N} pages each")
with_stack = sum(1 for p in a.values() for _, f in p if f)
ok(with_stack >= N * 4, f"--stacks all: {with_stack} steps and ledger lines with a stack")
differ = []
for i in sorted(a):
    if a[i] != s.get(i):
        differ.append((i, [(x, y) for x, y in zip(a[i], s.get(i, [])) if x != y][:1]))
ok(not differ, f"every page: the same steps and ledger lines, frame for frame: {len(differ)} differ {differ[:2]}")
chains = {tuple(f) for p in a.values() for k, f in p if k == "page_free"}
print(f"(the frees came by {len(chains)} call chains)")
for i in (1, 5):
    nd = [f for k, f in s[i] if k.startswith("never dropped")]
    ok(len(nd) == 1 and any(x.endswith("[kex]") for x in nd[0]), f"page {i}: the leak's stack, in kex")
    ok(nd == [f for k, f in a[i] if k.startswith("never dropped")], f"page {i}: the leak's stack, frame for frame")
sa, ss = A["ring_accounting"]["stacks"], S["ring_accounting"]["stacks"]
ok(sa["mode"] == "all" and sa["walked"] == 0 and sa["reused"] == 0, f"all: no sites {sa}")
ok(ss["mode"] == "sites" and ss["unresolved"] == 0, f"sites: none unresolved {ss}")
ok(0 < ss["walked"] < ss["reused"], f"sites: each site walked once, more records reused it {ss}")
ok(S["losses"]["total"] == 0 and A["losses"]["total"] == 0, "nothing lost in either run")
done()
PY
	expect_module_leaked 4
}

# --all: the leaks of untraced processes, found after SIGINT.
case_all_finds_leaks() {
	local rc
	kex_load inject_noput=1,5 verbose=0
	leaks_all_start
	mmap_test /dev/kex 8 --no-wait >/dev/null
	mmap_test /dev/kex 2 --no-wait >/dev/null
	sleep 0.5
	leaks_all_stop rc
	expect_eq "$rc" 4 "kextrace --leaks --all exit status"
	leaksjson "
ok(sorted(p['index'] for p in L['pages'] if p['verdict'] == 'leaked') == [1, 1, 5],
   'pages 1 and 5 of the first rig, page 1 of the second')
ok(L['counts']['freed'] == 7, f\"freed: {L['counts']}\")
ok(L['device_closed'], 'the device was closed')
"
	expect_module_leaked 3
	# the leaked pages are just lost memory: rmmod still works
	rmmod kex
	expect_eq "$(awk '$1 == "kex"' /proc/modules | wc -l)" 0 "rmmod after the leaks"
}

# The same load as leaks.sh all_under_load_no_false_leak, kex forgetting
# page 2 of every mapping at its last close (inject_noput=2, keep): the
# pages reported leaked are page 2s, and each one's pfn is one kex logged as
# leaked; every other page is freed, held or still mapped.
case_all_under_load_finds_injected() {
	local rc
	kex_load ref_policy=keep inject_noput=2 verbose=0
	dmesg_mark
	load_start 2
	sleep 0.5
	leaks_run rc --all --duration 2
	load_stop
	expect_eq "$rc" 4 "kextrace --leaks --all under load: exit status"
	dmesg_new | sed -n 's/.*kex: inject_noput: page 2 pfn \(0x[0-9a-f]*\):.*/\1/p' >"$CASE_TMP/injected"
	leaksjson "
inj = set(int(x, 16) for x in open('$CASE_TMP/injected').read().split())
leaked = [p for p in L['pages'] if p['verdict'] == 'leaked']
ok(len(leaked) >= 2, f'{len(leaked)} pages leaked, of {len(inj)} kex leaked in all')
ok(all(p['index'] == 2 for p in leaked), f\"only page 2s: {sorted(set(p['index'] for p in leaked))}\")
missing = [hex(p['pfn']) for p in leaked if p['pfn'] not in inj]
ok(not missing, f'each leaked pfn is one kex logged: not logged {missing}')
ok(all(p['refcount'] == 1 and p['mapcount'] == 0 for p in leaked), 'refcount 1, mapcount 0')
twos = set(p['verdict'] for p in L['pages'] if p['index'] == 2)
ok(twos <= {'leaked', 'held', 'still_mapped'}, f'no page 2 freed: {twos}')
others = set(p['verdict'] for p in L['pages'] if p['index'] != 2)
ok(others <= {'freed', 'held', 'still_mapped'}, f'other pages: {others}')
ok(L['counts']['inconclusive'] == 0, f\"no inconclusive page: {L['counts']}\")
ok(L['events_lost'] == 0, 'no events lost')
"
	expect_module_leaked "$(wc -l <"$CASE_TMP/injected")"
}
