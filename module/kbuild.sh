#!/bin/sh
# module/kbuild.sh OUTDIR KDIR|guest=LINK: build kex.ko into OUTDIR with W=1.
# KDIR: a kernel build tree on this machine (/lib/modules/$(uname -r)/build):
#   OUTDIR gets symlinks to the sources and is itself the M= directory (6.1's
#   Kbuild cannot put an external module's output elsewhere).
# guest=LINK: a .cache/guest/<short> link to a guest kernel's ABI. kex is
#   built inside the build root that scripts/setup made with that ABI's
#   headers and compiler (.cache/buildroot/<suite>/root), through
#   scripts/in-root, in a tmpfs there; kex.ko and build.log are copied to
#   OUTDIR. Headers installed on this machine are never used.
# Fails, leaving no kex.ko, if the build printed a warning.
set -eu
out=$1 kdir=$2
src=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$src/.." && pwd)
mkdir -p "$out"
rm -f "$out/kex.ko"
log=$out/build.log

# the build root holding the headers of $1 (an ABI): in the .cache that holds
# the guest link, or else in the one its .cache/guest links to (a worktree's
# .cache/guest may link to the main tree's, and so use its build roots)
find_root() {
	for cache in "$(dirname "$(dirname "$link")")" "$(cd -P "$(dirname "$link")/.." && pwd)"; do
		for r in "$cache"/buildroot/*/root; do
			if [ -f "$r/.kextrace-complete" ] && [ -f "$r/usr/src/linux-headers-$1/Makefile" ]; then
				echo "$r"
				return
			fi
		done
	done
	return 1
}

case $kdir in
guest=*)
	link=${kdir#guest=}
	abi=$(readlink "$link") || {
		echo "kex: no guest kernel at $link: run scripts/setup" >&2
		exit 1
	}
	root=$(find_root "$abi") || {
		echo "kex: no build root in .cache/buildroot has the headers of $abi: run scripts/setup" >&2
		exit 1
	}
	kdir=/usr/src/linux-headers-$abi
	# shellcheck disable=SC2016 # expanded in the build root
	if ! "$top/scripts/in-root" "$root" --proc --ro "$src" /tmp/kex/module \
		--ro "$top/bpf" /tmp/kex/bpf --rw "$out" /tmp/kex/out -- sh -c '
		set -e
		mkdir /tmp/kex/build
		for f in /tmp/kex/module/Kbuild /tmp/kex/module/*.c /tmp/kex/module/*.h; do
			ln -s "$f" /tmp/kex/build/
		done
		make -C "$1" M=/tmp/kex/build W=1 modules >/tmp/kex/out/build.log 2>&1
		cp /tmp/kex/build/kex.ko /tmp/kex/out/kex.ko' sh "$kdir"; then
		# the log may not exist when the build root failed before make ran;
		# the build fails below either way
		cat "$log" >&2 2>/dev/null || true
		rm -f "$out/kex.ko"
		echo "kex: build for $abi in $root failed" >&2
		exit 1
	fi
	where="$abi, in the $(basename "$(dirname "$root")") build root"
	;;
*)
	[ -f "$kdir/Makefile" ] || {
		echo "kex: no kernel build tree at $kdir" >&2
		exit 1
	}
	for f in "$src"/Kbuild "$src"/*.c "$src"/*.h; do
		ln -sfn "$f" "$out/$(basename "$f")"
	done
	if ! make -C "$kdir" M="$out" W=1 modules >"$log" 2>&1; then
		cat "$log" >&2
		echo "kex: build for $kdir failed" >&2
		exit 1
	fi
	where=$(basename "$kdir")
	;;
esac
if grep -qi 'warning' "$log"; then
	cat "$log" >&2
	rm -f "$out/kex.ko"
	echo "kex: the build for $where printed warnings; W=1 must be clean" >&2
	exit 1
fi
echo "kex: built $out/kex.ko for $where"
