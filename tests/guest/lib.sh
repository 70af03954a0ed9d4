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
kex_ko() {
	case ${KEX_GUEST_KERNEL:-6.1} in
	6.1) echo "$KEX_TOP/build/module/kex.ko" ;;
	*) echo "$KEX_TOP/build/module-$KEX_GUEST_KERNEL/kex.ko" ;;
	esac
}

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

kex_load() {
	local ko
	ko=$(kex_ko)
	[ -f "$ko" ] || { fail "$ko not built (scripts/build)"; return 1; }
	insmod "$ko" "$@" || { fail "insmod $ko $* failed"; return 1; }
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

# kex_balanced: the module's own counters say every page it allocated was freed.
kex_balanced() {
	local i a f
	# frees of mapped pages can lag the process exit by a little (TLB batching, RCU)
	for i in $(seq 50); do
		a=$(kex_counter pages_allocated) f=$(kex_counter pages_freed)
		[ "$(kex_counter pages_live)" = 0 ] && [ "$a" = "$f" ] && [ "$(kex_counter mappings)" = 0 ] && break
		sleep 0.1
	done
	expect_eq "$(kex_counter pages_live)" 0 "pages_live"
	expect_eq "$(kex_counter pages_freed)" "$(kex_counter pages_allocated)" "pages_freed == pages_allocated"
	expect_eq "$(kex_counter mappings)" 0 "mappings"
}

# Run after every case: nothing of the case survives into the next one.
lab_cleanup() {
	pkill -9 -x mmap_test 2>/dev/null
	pkill -9 -x kextrace 2>/dev/null
	pkill -9 -x bpftrace 2>/dev/null
	sleep 0.1
	kex_unload 2>/dev/null || echo "lab_cleanup: rmmod kex failed (the next case loads it again and fails loudly)"
}
