#!/bin/bash
# tests/host/package.sh BUILD_DIR [--guest] - the Debian packages, as a user gets them:
# scripts/package builds kextrace and kex-dkms; lintian finds no error and no
# warning; then a fresh minimal bookworm root (scripts/fresh-root) installs
# kextrace_*.deb with apt and runs, from the package alone, kextrace
# --version, kextrace --plan (on this machine's kernel, through the root's
# /proc and /sys), kextrace report on a committed real run, and
# kextrace-report on its JSON: a file the package forgot fails here. In the
# same root, kex-dkms and the 6.1 guest kernel's headers: DKMS builds kex for
# that kernel (kept in BUILD_DIR/deb/dkms-ABI/). --guest: only the last step,
# after a run without it: the 6.1 guest loads the DKMS-built kex.ko and maps
# its pages with mmap_test (a test of its own, so that only it holds the 6.1
# guest). Needs root (chroot, mounts). Exits 0 when all passed.
set -uo pipefail
build=${1:?usage: package.sh BUILD_DIR [--guest]}
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "package.sh: needs root (scripts/test runs as root)" >&2; exit 1; }
debs=$build/deb
root=$top/.cache/fresh-root/package-test
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*" >&2; failed=$((failed + 1)); }

if [ "${2:-}" = --guest ]; then
	abi=$(readlink "$top/.cache/guest/6.1") || { echo "FAILED: no 6.1 guest kernel" >&2; exit 1; }
	ko=$debs/dkms-$abi/kex.ko
	[ -f "$ko" ] || { echo "FAILED: no DKMS-built $ko (the package test makes it)" >&2; exit 1; }
	"$top/scripts/vm" --kernel 6.1 --timeout 600 -- sh -c \
		"insmod '$ko' && grep -w kex /proc/modules && mmap_test /dev/kex 8 --no-wait && rmmod kex" \
		>"$debs/guest.log" 2>&1
	grc=$?
	if [ $grc = 0 ] && grep -q 'wrote and verified 8 pages' "$debs/guest.log"; then
		ok "the 6.1 guest loads the DKMS-built kex.ko ($abi) and maps 8 pages"
	else
		sed 's/^/    /' "$debs/guest.log" >&2
		bad "the DKMS-built kex.ko in the 6.1 guest: exit $grc"
	fi
	echo "package --guest: $passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
fi
trap 'rm -rf "$root"' EXIT

"$top/scripts/package" --out "$debs" || { echo "FAILED: scripts/package" >&2; exit 1; }
version=$(cd "$top" && dpkg-parsechangelog -S Version)
for p in "kextrace_${version}_amd64.deb" "kex-dkms_${version}_all.deb"; do
	[ -s "$debs/$p" ] && ok "built $p" || bad "no $p"
done

# lintian: no error, no warning (informational tags are listed, not failed)
lintian --fail-on error,warning --tag-display-limit 0 "$debs"/kextrace_*.changes >"$debs/lintian.txt" 2>&1
lrc=$?
grep -v '^running with root privileges' "$debs/lintian.txt" | sed 's/^/    lintian: /'
[ $lrc = 0 ] && ok "lintian: no error or warning" || bad "lintian exit $lrc (above)"

"$top/scripts/fresh-root" make "$root" || { echo "FAILED: scripts/fresh-root make" >&2; exit 1; }
mkdir -p "$root/tmp/pkg"
cp "$debs"/*.deb "$top/analysis/tests/data/drop-8.jsonl" "$root/tmp/pkg/"
in_root() { "$top/scripts/fresh-root" run "$root" "$@"; }
in_root sh -c 'apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /tmp/pkg/kextrace_*.deb' \
	>"$debs/install.log" 2>&1
if [ $? = 0 ]; then
	ok "apt-get install kextrace_*.deb in a fresh bookworm root"
else
	tail -n 20 "$debs/install.log" >&2
	bad "apt-get install kextrace in the fresh root (log: $debs/install.log)"
fi

v=$(in_root kextrace --version 2>&1)
[[ $v == "kextrace $version (built with libbpf "* ]] && ok "kextrace --version: $v" \
	|| bad "kextrace --version in the fresh root: $v"
in_root kextrace --plan >"$debs/plan.txt" 2>&1
prc=$?
if [ $prc = 0 ] && grep -q 'kmem:mm_page_alloc' "$debs/plan.txt"; then
	ok "kextrace --plan on this kernel, from the package"
else
	sed 's/^/    /' "$debs/plan.txt" >&2
	bad "kextrace --plan in the fresh root: exit $prc"
fi
in_root kextrace report /tmp/pkg/drop-8.jsonl --json /tmp/pkg/drop-8.json >"$debs/report.txt" 2>&1
if [ $? = 0 ] && grep -q '^summary: 8 page lives: 8 complete' "$debs/report.txt"; then
	ok "kextrace report on a committed run: 8 complete lives"
else
	sed 's/^/    /' "$debs/report.txt" >&2
	bad "kextrace report in the fresh root"
fi
in_root kextrace-report /tmp/pkg/drop-8.json --out /tmp/pkg/report >"$debs/kextrace-report.txt" 2>&1
if [ $? = 0 ] && [ -s "$root/tmp/pkg/report/report.md" ] && [ -s "$root/tmp/pkg/report/drop-8-counts.png" ]; then
	ok "kextrace-report: report.md and the pictures, with the package's dependencies alone"
else
	sed 's/^/    /' "$debs/kextrace-report.txt" >&2
	bad "kextrace-report in the fresh root"
fi

# kex-dkms: DKMS builds kex for the 6.1 guest kernel, whose headers the root gets from apt
abi=$(readlink "$top/.cache/guest/6.1") || abi=
if [ -z "$abi" ]; then
	bad "no 6.1 guest kernel (.cache/guest/6.1): run scripts/setup"
else
	in_root sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends linux-headers-$abi /tmp/pkg/kex-dkms_*.deb && { dkms status -m kex -k $abi | grep -q installed || dkms install kex/$version -k $abi; } && dkms status" \
		>"$debs/dkms.log" 2>&1
	ko=$root/lib/modules/$abi/updates/dkms/kex.ko
	[ -f "$ko" ] || ko=$(ls "$root/var/lib/dkms/kex/$version/$abi"/*/module/kex.ko* 2>/dev/null | head -n 1)
	rm -rf "$debs/dkms-$abi"
	if [ -n "$ko" ] && [ -f "$ko" ]; then
		mkdir -p "$debs/dkms-$abi"
		cp "$ko" "$debs/dkms-$abi/"
		ko=$debs/dkms-$abi/$(basename "$ko")
		case $ko in *.xz) xz -d -f "$ko"; ko=${ko%.xz} ;; *.zst) zstd -q -d --rm -f "$ko"; ko=${ko%.zst} ;; esac
		if [ "$(modinfo -F vermagic "$ko" | cut -d' ' -f1)" = "$abi" ]; then
			ok "DKMS built kex $version for $abi ($(modinfo -F vermagic "$ko"))"
		else
			bad "the DKMS-built kex.ko is not for $abi: $(modinfo -F vermagic "$ko")"
		fi
	else
		tail -n 30 "$debs/dkms.log" >&2
		bad "DKMS did not build kex for $abi (log: $debs/dkms.log)"
	fi
fi
echo "package: $passed passed, $failed failed"
[ "$failed" = 0 ]
