# tests/guest/boundary.sh: kex at the edges of the mm API, in every mapping
# mode: the page limits (max_pages per mmap, max_pages_total for all live
# mappings), MAP_FIXED over a kex mapping, PROT_NONE then mprotect,
# MADV_DONTNEED then a touch, mlock / MAP_LOCKED / MAP_POPULATE, 256 open
# files, and who may open /dev/kex. The harness checks dmesg for
# WARN/BUG/Oops after every case.
# Run by: scripts/vm [--kernel 6.12] -- tests/guest/run boundary [CASE...]
# Each case_* runs in a subshell with set -e, cwd = repo root, $CASE_TMP.

# shellcheck source=tests/guest/kexlab.bash
. "$(dirname "${BASH_SOURCE[0]}")/kexlab.bash"

MODES="insert batch fault pfn"

# mode_policies MODE: the ref policies MODE allows (fault and pfn: keep).
mode_policies() {
	case $1 in
	insert | batch) echo drop keep ;;
	*) echo keep ;;
	esac
}

# for_modes FUNCTION: FUNCTION MODE POLICY with kex loaded for each mode and
# policy it allows; the pages balance after each.
for_modes() {
	local mode policy
	for mode in $MODES; do
		for policy in $(mode_policies "$mode"); do
			echo "-- mode=$mode ref_policy=$policy"
			kex_load ref_policy="$policy" verbose=0
			"$1" "$mode" "$policy"
			kex_balanced
			kex_unload
		done
	done
}

# --- cases --------------------------------------------------------------------

# max_pages bounds one mmap (E2BIG); max_pages_total bounds all live
# mappings (ENOMEM, with the reason in dmesg); a mapping reserves its whole
# length, fault mode included, until its last VMA closes.
case_page_limits() {
	kex_load
	expect_eq "$(cat /sys/module/kex/parameters/max_pages_total)" 262144 "max_pages_total default"
	expect_eq "$(kex_counter pages_reserved)" 0 "pages_reserved at load"
	local rc=0
	insmod "$(kex_ko)" max_pages_total=0 2>/dev/null || rc=$?
	kex_unload
	[ "$rc" != 0 ] || fail "insmod with max_pages_total=0 succeeded"
	local mode policy
	for mode in $MODES; do
		policy=$(mode_policies "$mode" | awk '{ print $NF }')
		kex_load max_pages_total=100 max_pages=100 ref_policy="$policy" verbose=0
		dmesg_mark
		expect_eq "$(KEXPY_MODE=$mode kexpy req /dev/kex 101)" E2BIG "$mode: 101 pages with max_pages=100"
		KEXPY_MODE=$mode kexpy budget /dev/kex
		expect_match "$(dmesg_new)" 'kex: mmap rejected: 60 more pages would exceed max_pages_total 100 \(60 reserved by live mappings\)$' "$mode: reason logged"
		kex_balanced
		kex_unload
	done
	# the limit changes at run time; the refusal is not a WARN
	kex_load max_pages_total=10 verbose=0
	expect_eq "$(kexpy req /dev/kex 11)" ENOMEM "11 pages with max_pages_total=10"
	echo 11 >/sys/module/kex/parameters/max_pages_total
	expect_eq "$(kexpy req /dev/kex 11)" ok "11 pages with max_pages_total=11"
	kex_balanced
}

# MAP_FIXED over a kex mapping: replaces it (the old pages are released);
# over part of it: splits it; a MAP_FIXED that kex refuses still unmaps
# the old range (the core unmaps before ->mmap, 6.1 and 6.12 alike).
fixed_one() {
	KEXPY_MODE=$1 kexpy map_fixed /dev/kex
}
case_map_fixed() {
	for_modes fixed_one
}

# PROT_NONE then mprotect(PROT_READ|PROT_WRITE): the pages were mapped
# (or fault in) PROT_NONE, the mprotect makes them usable, zeros first.
prot_one() {
	KEXPY_MODE=$1 kexpy prot_none /dev/kex
}
case_prot_none() {
	for_modes prot_one
}

# MADV_DONTNEED on page 1, then a touch (kex_uapi.h): insert and batch have
# no .fault, the zapped page is gone: SIGBUS, the others intact; fault
# brings the same page back; pfn: madvise refuses VM_PFNMAP (EINVAL).
dontneed_one() {
	local out
	out=$(KEXPY_MODE=$1 kexpy dontneed /dev/kex | grep -v '^ok: ')
	echo "$out"
	case $1 in
	insert | batch)
		expect_eq "$out" "madvise: ok"$'\n'"touch page 1: SIGBUS"$'\n'"pages 0, 2, 3: 1 3 4" "$1/$2: DONTNEED, touch" ;;
	fault)
		expect_eq "$out" "madvise: ok"$'\n'"touch page 1: ok"$'\n'"pages 0, 2, 3: 1 3 4"$'\n'"page 1: 2" "$1/$2: DONTNEED, touch" ;;
	pfn)
		expect_eq "$out" "madvise: EINVAL"$'\n'"touch page 1: ok"$'\n'"pages 0, 2, 3: 1 3 4"$'\n'"page 1: 2" "$1/$2: DONTNEED, touch" ;;
	esac
}
case_dontneed() {
	for_modes dontneed_one
}

# mlock succeeds on a kex mapping but locks nothing (VM_DONTEXPAND makes it
# VM_SPECIAL: VmLck stays 0); it still populates: a fault mapping gets every
# page. MAP_LOCKED and MAP_POPULATE likewise.
mlock_one() {
	local out alloc
	out=$(KEXPY_MODE=$1 kexpy mlock /dev/kex)
	echo "$out"
	alloc=0
	[ "$1" = fault ] || alloc=4
	expect_match "$out" "^allocated by mmap: $alloc\$" "$1/$2: pages allocated by mmap"
	expect_match "$out" '^mlock: ok$' "$1/$2: mlock"
	expect_match "$out" '^VmLck: 0 kB$' "$1/$2: nothing locked"
	expect_match "$out" '^allocated after mlock: 4$' "$1/$2: every page there after mlock"
	expect_match "$out" '^munlock: ok$' "$1/$2: munlock"
	expect_match "$out" '^MAP_LOCKED: ok, allocated by mmap: 4, VmLck: 0 kB$' "$1/$2: MAP_LOCKED"
	expect_match "$out" '^MAP_POPULATE: ok, allocated by mmap: 4, VmLck: 0 kB$' "$1/$2: MAP_POPULATE"
}
case_mlock() {
	for_modes mlock_one
}

# 256 opens, one mapping each, every fd closed while mapped; then 256 fds
# open at once.
case_many_fds() {
	local mode
	for mode in insert fault; do
		kex_load ref_policy=keep verbose=0
		KEXPY_MODE=$mode kexpy many_fds /dev/kex 256
		kex_balanced
		expect_counters 256 256 0 0 "$mode: after 256 fds"
		kex_unload
	done
}

# /dev/kex is root's, 0600, by default: another user cannot open it;
# node_mode (octal, at load) sets the permissions; it is read-only after.
case_node_perms() {
	kex_load
	expect_eq "$(stat -c '%a %U %G' /dev/kex)" "600 root root" "/dev/kex by default"
	expect_eq "$(cat /sys/module/kex/parameters/node_mode)" 0600 "node_mode default"
	expect_eq "$(kexpy open_as /dev/kex 65534)" EACCES "open as uid 65534"
	if (echo 0666 >/sys/module/kex/parameters/node_mode) 2>/dev/null; then
		fail "node_mode writable after load"
	fi
	kex_unload
	kex_load node_mode=0666
	expect_eq "$(stat -c '%a %U %G' /dev/kex)" "666 root root" "/dev/kex with node_mode=0666"
	expect_eq "$(kexpy open_as /dev/kex 65534)" ok "open, mmap and write as uid 65534"
	kex_balanced
	kex_unload
	kex_load node_mode=0640
	expect_eq "$(stat -c '%a' /dev/kex)" 640 "/dev/kex with node_mode=0640"
	kex_unload
	local bad rc
	for bad in 1000 0778 abc -1; do
		rc=0
		insmod "$(kex_ko)" node_mode=$bad 2>/dev/null || rc=$?
		kex_unload
		[ "$rc" != 0 ] || fail "insmod with node_mode=$bad succeeded"
	done
}
