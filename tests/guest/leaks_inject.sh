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

# --stacks sites on the same injected leak as --stacks all (noput on pages 1
# and 5 of 1024, module loaded once, so the same addresses; 1024 pages so
# that the zap frees in batches, which free_pages_and_swap_cache does from
# two call sites at the same depth on 6.12 and 7.2). Which page goes in which
# batch may change from run to run, so across the two runs: the leaked
# references' stacks are the same frames, and every stack sites shows for a
# step kind is one --stacks all showed for it (a BPF trampoline's frame,
# made anew per run, by place, not address). Within one run, the exact
# check: with --debug-stack-check every record that reuses a site walks as
# well, and none differs from its site's stack. sites walked each site once
# and gave the other records that stack (none unresolved); kex_page_insert's
# record, which takes no reference, has a stack under all only.
case_stacks_sites_match_all() {
	local rc
	kex_load inject_noput=1,5 verbose=0
	leaks_run rc --stacks all -- mmap_test /dev/kex 1024 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks --stacks all exit status"
	mv "$CASE_TMP/out.json" "$CASE_TMP/all.json"
	leaks_run rc --stacks sites --debug-stack-check -- mmap_test /dev/kex 1024 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks --stacks sites --debug-stack-check exit status"
	mv "$CASE_TMP/out.json" "$CASE_TMP/check.json"
	leaks_run rc --stacks sites -- mmap_test /dev/kex 1024 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks --stacks sites exit status"
	python3 - "$CASE_TMP/all.json" "$CASE_TMP/out.json" "$CASE_TMP/check.json" <<'PY'
import json, re, sys
sys.path.insert(0, "tests/guest")
from jcheck import ok, done
A, S, C = (json.load(open(f)) for f in sys.argv[1:4])
def norm(f):
    return "<trampoline>" if re.search(r"\+0x[0-9a-f]{6,}( |$)", f) else f
def frames(j, sid):
    return tuple(norm(f["sym"]) for f in j["stacks"][sid]) if sid else ()
def chains(j):
    out = {}
    for p in j["pages"]:
        for s in p["steps"]:
            out.setdefault(s["kind"], set()).add(frames(j, s.get("stack", 0)))
    return out
def leaked(j):
    return {v["index"]: [tuple(norm(f) for f in n["frames"]) for n in v.get("never_dropped", [])]
            for v in j["leaks"]["pages"] if v["verdict"] == "leaked"}
N = 1024
for name, j in (("all", A), ("sites", S), ("check", C)):
    ok(len(j["pages"]) == N and j["losses"]["total"] == 0, f"{name}: {N} pages, nothing lost")
ca, cs = chains(A), chains(S)
# kex_page_insert takes no reference: sites leaves its record without a
# stack (the insert's before it has the chain); all walks it
ok(() not in ca.get("kex_insert", {()}) and cs.get("kex_insert") == {()},
   f"kex_insert: a stack under all, none under sites: {len(ca.get('kex_insert', ()))} chains")
cs.pop("kex_insert", None)
extra = {k: v - ca.get(k, set()) for k, v in cs.items() if v - ca.get(k, set())}
ok(not extra, f"every stack under sites is one all showed for its step: {str(extra)[:600]}")
ok(len(ca.get("page_free", ())) >= 1, f"the frees came by {len(ca.get('page_free', ()))} chains")
la, ls = leaked(A), leaked(S)
ok(sorted(la) == [1, 5] and la == ls, f"pages 1 and 5 leaked, their stacks frame for frame: {ls}")
ok(all(any(x.endswith("[kex]") for x in nd[0]) for nd in ls.values()), "the leaks' stacks are in kex")
sa, ss, sc = (j["ring_accounting"]["stacks"] for j in (A, S, C))
ok(sa["mode"] == "all" and sa["walked"] == 0 and sa["reused"] == 0, f"all: no sites {sa}")
ok(ss["mode"] == "sites" and ss["unresolved"] == 0 and 0 < ss["walked"] < ss["reused"],
   f"sites: each site walked once, far more records reused it {ss}")
ok(sc["checked"] > ss["walked"] and sc["mismatched"] == 0 and sc["unresolved"] == 0,
   f"check: every reuse walked too, none differs from its site {sc}")
done()
PY
	expect_module_leaked 6
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

# --watch keeps each page's records in BPF and sends them in one record at
# the page's free; the pages never freed are read from the map at the end.
# On the same scenario (module loaded once: the same code addresses) it must
# give what the full-event run gives: per page the verdict, its reason, the
# counts, the ledger and the stacks of the references never dropped, and the
# same steps but the two kinds it leaves off (the zap's dirtying, user
# faults: no verdict reads them; the probe report says so); and
# fewer than half the ring-buffer records (a page's records but its batched
# free's, which comes after the life went, travel as one). Noput on 1 and 5 and an extra get on 3, of 64
# pages; then the same under --all, two rigs.
case_watch_matches_full() {
	local rc
	kex_load inject_noput=1,5 inject_extra_get=3 verbose=0
	leaks_run rc -- mmap_test /dev/kex 64 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks exit status"
	mv "$CASE_TMP/out.json" "$CASE_TMP/full.json"
	leaks_run rc --watch -- mmap_test /dev/kex 64 --no-wait
	expect_eq "$rc" 4 "kextrace --leaks --watch exit status"
	mv "$CASE_TMP/out.json" "$CASE_TMP/watch.json"
	for mode in full watch; do
		leaks_all_start $([ $mode = watch ] && echo --watch)
		mmap_test /dev/kex 8 --no-wait >/dev/null
		mmap_test /dev/kex 16 --no-wait >/dev/null
		sleep 0.5
		leaks_all_stop rc
		expect_eq "$rc" 4 "kextrace --leaks --all ($mode) exit status"
		mv "$CASE_TMP/out.json" "$CASE_TMP/all-$mode.json"
	done
	python3 - "$CASE_TMP"/{full,watch,all-full,all-watch}.json <<'PY'
import json, re, sys
sys.path.insert(0, "tests/guest")
from jcheck import ok, done
F, W, AF, AW = (json.load(open(f)) for f in sys.argv[1:5])
def norm(f):
    return "<trampoline>" if re.search(r"\+0x[0-9a-f]{6,}( |$)", f) else f
def verdicts(j):
    out = []
    for v in j["leaks"]["pages"]:
        nd = [(n["site"], n["at"], n.get("where"), n["references"], tuple(norm(f) for f in n["frames"]))
              for n in v.get("never_dropped", [])]
        ledger = [(l["site"], l["at"], l["taken"], l["dropped"]) for l in v.get("ledger", [])]
        reason = re.sub(r"[0-9.]+(ns|us|ms|s)\b", "T", v["reason"])  # times differ
        out.append((v["index"], v["verdict"], reason, v["refcount"], v["mapcount"],
                    v["balanced"], tuple(nd), tuple(ledger)))
    return sorted(out)
OFF = {"set_dirty", "user_fault"}  # the steps --watch leaves off (no verdict reads them)
def steps(j, drop=()):
    return sorted(tuple(s["kind"] for s in p["steps"] if s["kind"] not in drop) for p in j["pages"])
def off_rows(j):
    return sorted(p["step"] for p in j["run"]["probes"] if p.get("off"))
def records(j):
    return j["ring_accounting"]["ring_records"]
for name, full, watch, n in (("command", F, W, 64), ("--all", AF, AW, 24)):
    vf, vw = verdicts(full), verdicts(watch)
    ok(len(vf) == n and vf == vw,
       f"{name}: {n} pages, the same verdicts, counts, ledgers and leak stacks: "
       f"{[(a, b) for a, b in zip(vf, vw) if a != b][:2]}")
    ok(full["leaks"]["counts"] == watch["leaks"]["counts"], f"{name}: counts {watch['leaks']['counts']}")
    ok(steps(full, OFF) == steps(watch), f"{name}: every page the same steps but those --watch leaves off")
    ok(any(k in OFF for p in steps(full) for k in p), f"{name}: the full run has the steps --watch leaves off")
    ok(off_rows(watch) == ["dirty at zap", "user faults"] and off_rows(full) == [],
       f"{name}: the probe rows off: watch {off_rows(watch)}, full {off_rows(full)}")
    for label, j in (("full", full), ("watch", watch)):
        ok(j["losses"]["total"] == 0, f"{name} {label}: nothing lost")
    lives = watch["ring_accounting"]["per_type"].get("life", {}).get("received", 0)
    ok(lives > 0 and "life" not in full["ring_accounting"]["per_type"], f"{name}: {lives} life records")
    ok(records(watch) * 2 < records(full),
       f"{name}: ring records full {records(full)}, watch {records(watch)} ({lives} lives)")
leaked = {v["index"] for v in W["leaks"]["pages"] if v["verdict"] == "leaked"}
ok(leaked == {1, 3, 5}, f"pages 1, 3 and 5 leaked: {sorted(leaked)}")
done()
PY
	expect_module_leaked 18
}
