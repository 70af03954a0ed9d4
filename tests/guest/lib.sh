# tests/guest/lib.sh: helpers for the in-guest cases (sourced by tests/guest/run).
KEX_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export KEX_TOP

# The build tree whose binaries the cases run: KEX_BUILD (absolute, or
# relative to the repository), default build/. Its bin/ goes first on PATH;
# kex.ko still comes from build/module* (kex_ko).
#   scripts/vm -- env KEX_BUILD=build-other tests/guest/run tracer
KEX_BUILD=${KEX_BUILD:-$KEX_TOP/build}
case $KEX_BUILD in /*) ;; *) KEX_BUILD=$KEX_TOP/$KEX_BUILD ;; esac
PATH=$KEX_BUILD/bin:$PATH
export KEX_BUILD PATH

# The kex.ko built for the kernel this guest runs.
kex_ko() { "$KEX_TOP/scripts/guest/kex-ko" "$KEX_TOP/build"; }

# fail MSG: report and fail the case.
fail() {
	echo "FAILED: $*" >&2
	return 1
}

# expect_eq ACTUAL EXPECTED WHAT
expect_eq() {
	if [ "$1" != "$2" ]; then
		fail "$3: expected '$2', got '$1'"
		return 1
	fi
	echo "ok: $3 = $2"
}

# expect_match TEXT REGEX WHAT
expect_match() {
	if ! grep -Eq -- "$2" <<<"$1"; then
		fail "$3: no line matches /$2/ in:"$'\n'"$1"
		return 1
	fi
	echo "ok: $3"
}

# wait_kextrace_started ERRFILE: kextrace printed its start-up table, so
# every probe is attached and pages are being tracked.
wait_kextrace_started() {
	local i
	for i in $(seq 300); do
		grep -q '^usdt ' "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	cat "$1"
	fail "kextrace did not start"
}

# kex_trace_format EV: kex:EV's fields as TYPE:NAME:OFFSET:SIZE,... (the
# layout bpf/ reads raw; docs/architecture.md lists it).
kex_trace_format() {
	awk '/field:/ && !/common_/ {
		sub(/^[ \t]*field:/, ""); split($0, p, ";")
		n = split(p[1], w, " "); o = p[2]; s = p[3]
		sub(/.*offset:/, "", o); sub(/.*size:/, "", s)
		printf "%s%s:%s:%s:%s", sep, w[1], w[n], o, s; sep = ","
	}' "$KEX_TRACING/events/kex/$1/format"
}

# Lines "EVENT TYPE:NAME:OFFSET:SIZE,..." on stdin: each kex tracepoint's
# format is that (bpf/ reads them raw; docs/architecture.md lists them).
expect_trace_formats() {
	local ev want
	while read -r ev want; do
		expect_eq "$(kex_trace_format "$ev")" "$want" "format of kex:$ev"
	done
}

kex_load() {
	local ko
	ko=$(kex_ko)
	[ -f "$ko" ] || { fail "$ko not built (scripts/build)"; return 1; }
	insmod "$ko" "$@" || { fail "insmod $ko $* failed"; return 1; }
	kex_frees_start
	local i
	for i in $(seq 50); do [ -c /dev/kex ] && return 0; sleep 0.1; done
	fail "/dev/kex did not appear"
}

kex_unload() {
	grep -q '^kex ' /proc/modules || return 0
	rmmod kex
}

kex_counter() {
	cat "/sys/class/kex/kex/$1"
}

# The kernel's own account of kex's pages, for kex_balanced: a tracefs
# instance of its own (the cases' trace_on/trace_off use the top-level
# buffer) records kex:kex_page_alloc and the page allocator's
# kmem:mm_page_free (every order-0 page given back, batched or not) from
# each kex_load on. Loss is counted, not overwritten: a full buffer makes
# kex_balanced fail, never pass.
KEX_FREES=/sys/kernel/tracing/instances/kex_frees
kex_frees_start() {
	local t=$KEX_FREES top
	# 6.1: sizing any buffer marks them all expanded, so the top-level one
	# (the cases' trace_on) would stay at its boot size: expand it first.
	top=$(cat /sys/kernel/tracing/buffer_size_kb)
	case $top in
	*'(expanded: '*)
		top=${top#*expanded: }
		echo "${top%)}" >/sys/kernel/tracing/buffer_size_kb
		;;
	esac
	[ -d "$t" ] || mkdir "$t"
	echo 0 >"$t/tracing_on"
	echo 0 >"$t/options/overwrite"
	echo 16384 >"$t/buffer_size_kb"
	echo >"$t/trace"
	echo 'order == 0' >"$t/events/kmem/mm_page_free/filter"
	echo 1 >"$t/events/kmem/mm_page_free/enable"
	echo 1 >"$t/events/kex/kex_page_alloc/enable"
	echo 1 >"$t/tracing_on"
}

# kex_frees_check: every page kex allocated since kex_load was freed by the
# kernel after its allocation. Prints "allocated N" (kex_page_alloc events),
# "lost N" (events the buffer dropped), then one "not freed by the kernel:
# page I pfn P" line per page whose last allocation no mm_page_free followed.
kex_frees_check() {
	local t=$KEX_FREES lost
	lost=$(cat "$t"/per_cpu/cpu*/stats | awk '/^(overrun|dropped events):/ { n += $NF } END { print n + 0 }')
	echo "lost $lost"
	python3 - "$t/trace" <<'PY'
import re, sys
ev = re.compile(r' (kex_page_alloc|mm_page_free): .*?pfn=(0x[0-9a-f]+)(?:.*index=(\d+))?')
open_ = {}   # pfn -> index: allocated by kex, not freed since
n = 0
for line in open(sys.argv[1]):
    m = ev.search(line)
    if not m:
        continue
    if m.group(1) == 'kex_page_alloc':
        n += 1
        if m.group(2) in open_:
            print(f'not freed by the kernel: page {open_[m.group(2)]} pfn {m.group(2)} (allocated again)')
        open_[m.group(2)] = m.group(3)
    else:
        open_.pop(m.group(2), None)
print(f'allocated {n}')
for pfn, i in open_.items():
    print(f'not freed by the kernel: page {i} pfn {pfn}')
PY
}

# kex_balanced: the module's own counters say every page it allocated was
# freed, and so does the kernel: each page kex allocated since kex_load was
# freed by the page allocator after its allocation (kex_frees_check), with
# no trace event lost. Fails naming the pages the kernel still holds.
kex_balanced() {
	local a f out rc=0 _
	[ -d "$KEX_FREES/events/kex" ] || { fail "kex_balanced: no record of kex's pages (load kex with kex_load)"; return 1; }
	# frees of mapped pages can lag the process exit by a little (TLB batching, RCU)
	for _ in $(seq 50); do
		a=$(kex_counter pages_allocated) f=$(kex_counter pages_freed)
		[ "$(kex_counter pages_live)" = 0 ] && [ "$a" = "$f" ] && [ "$(kex_counter mappings)" = 0 ] && break
		sleep 0.1
	done
	for _ in $(seq 10); do
		out=$(kex_frees_check)
		grep -q '^not freed' <<<"$out" || break
		sleep 0.5
	done
	expect_eq "$(kex_counter pages_live)" 0 "pages_live" || rc=1
	expect_eq "$(kex_counter pages_freed)" "$(kex_counter pages_allocated)" "pages_freed == pages_allocated" || rc=1
	expect_eq "$(kex_counter mappings)" 0 "mappings" || rc=1
	expect_eq "$(sed -n 's/^lost //p' <<<"$out")" 0 "trace events lost (the kernel's record of kex's pages)" || rc=1
	expect_eq "$(sed -n 's/^allocated //p' <<<"$out")" "$(kex_counter pages_allocated)" "kex_page_alloc events = pages_allocated" || rc=1
	if grep -q '^not freed' <<<"$out"; then
		fail "pages kex allocated that the kernel has not freed:"$'\n'"$(grep '^not freed' <<<"$out")"
		rc=1
	else
		echo "ok: the kernel freed every page kex allocated"
	fi
	return $rc
}

# Run after every case: nothing of the case survives into the next one.
lab_cleanup() {
	pkill -9 -x mmap_test 2>/dev/null
	pkill -9 -x kextrace 2>/dev/null
	pkill -9 -x bpftrace 2>/dev/null
	sleep 0.1
	kex_unload 2>/dev/null || echo "lab_cleanup: rmmod kex failed (the next case loads it again and fails loudly)"
}
