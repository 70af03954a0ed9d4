#!/usr/bin/env bash
# tests/lab/demo.sh: the README's main command, `scripts/demo`, as a user runs
# it (setup, build, one guest boot, the traced seed scenario, the study
# report), into a scratch report folder; asserts what it must show.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=$top/.cache/demo-test
rm -rf "$dir"
out=$(mktemp /tmp/demo-out.XXXXXX)
trap 'rm -f "$out"' EXIT
failed=0
check() { # check WHAT REGEX: a line of the demo's output matches
	if grep -Eq -- "$2" "$out"; then echo "ok: $1"; else echo "FAILED: $1 (no /$2/)"; failed=1; fi
}
rc=0
"$top/scripts/demo" --report "$dir" >"$out" 2>&1 || rc=$?
[ $rc = 0 ] && echo "ok: scripts/demo exit 0" || { echo "FAILED: scripts/demo exit $rc"; tail -n 40 "$out"; exit 1; }
check "the seed's mknod flow" 'mknod devKex c [0-9]+ 0'
check "pmap before the write: 32 kB, no dirty" ' 32 +32 +0 rw-s- devKex$'
check "pmap after the write: 32 kB dirty" ' 32 +32 +32 rw-s- devKex$'
check "kextrace's insert-side table, 8 lives" '^pages, insert side: 8 lives, policy drop'
check "kextrace's unmap-side table" '^pages, unmap side'
check "every page's refcount 1→2→1→0" 'refcount 1→2→1→0 8/8'
check "the seed's dmesg: completed inserting 8 pages" 'completed inserting 8 pages'
check "counters balanced" '^pages_live +0$'
check "the keep run beside it" 'ref_policy=keep'
check "the study report written" 'report.md'
for f in report.md trace.json events.jsonl timeline.json keep.json; do
	[ -s "$dir/$f" ] && echo "ok: $f written" || { echo "FAILED: $f missing"; failed=1; }
done
"$top/build/bin/kextrace-validate-trace" "$dir/timeline.json" >/dev/null &&
	echo "ok: the timeline validates" || { echo "FAILED: the timeline does not validate"; failed=1; }
[ $failed = 0 ] || { echo "--- demo output"; cat "$out"; }
rm -rf "$dir"
exit $failed
