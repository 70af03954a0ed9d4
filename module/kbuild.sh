#!/bin/sh
# module/kbuild.sh OUTDIR KDIR|guest=LINK: build kex.ko into OUTDIR with W=1.
# guest=LINK names a .cache/guest/<short> link; the headers are those of the
# ABI it points at. Fails, leaving no kex.ko, if the build printed a warning.
# 6.1's Kbuild cannot put an external module's output elsewhere, so OUTDIR
# gets symlinks to the sources and is itself the M= directory.
set -eu
out=$1 kdir=$2
src=$(cd "$(dirname "$0")" && pwd)
case $kdir in
guest=*)
	link=${kdir#guest=}
	abi=$(readlink "$link") || {
		echo "kex: no guest kernel at $link: run scripts/setup" >&2
		exit 1
	}
	kdir=/usr/src/linux-headers-$abi
	;;
esac
[ -f "$kdir/Makefile" ] || {
	echo "kex: no kernel build tree at $kdir: install its headers (scripts/setup)" >&2
	exit 1
}
mkdir -p "$out"
for f in "$src"/Kbuild "$src"/*.c "$src"/*.h; do
	ln -sfn "$f" "$out/$(basename "$f")"
done
rm -f "$out/kex.ko"
log=$out/build.log
if ! make -C "$kdir" M="$out" W=1 modules >"$log" 2>&1; then
	cat "$log" >&2
	echo "kex: build for $kdir failed" >&2
	exit 1
fi
if grep -qi 'warning' "$log"; then
	cat "$log" >&2
	rm -f "$out/kex.ko"
	echo "kex: the build for $kdir printed warnings; W=1 must be clean" >&2
	exit 1
fi
echo "kex: built $out/kex.ko for $(basename "$kdir")"
