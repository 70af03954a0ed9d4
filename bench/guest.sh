#!/usr/bin/env bash
# bench/guest.sh [--smoke] [--out DIR] [--kernel 6.1] [inguest options...]:
# boots one guest (scripts/vm, qemu TCG unless --accel is given to it) and
# runs bench/guest/inguest.sh there: tracer overhead (untraced / kextrace /
# bpftrace, interleaved), where kextrace's overhead goes (the kernel's BPF run
# statistics per program, stacks on and off), the overhead on another driver's
# pages (an AF_PACKET ring), loss (sustained and forced
# overload, with the ring accounting), per-page mapping cost by mode. Raw results: DIR/guest-raw.jsonl.
#   --smoke   tiny sizes, 1 repetition: the ctest smoke run (about 120 s alone,
#             twice that beside another guest; the guest's limit is 560 s,
#             inside ctest's 600)
#   --icount SHIFT  the guest's clock counts instructions (scripts/vm
#             --icount): figures repeat to about 1% whatever the host does;
#             the summary names the clock
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/bench/results kernel=6.1 smoke=0 timeout=1500
args=() vm_args=()
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1; shift ;;
	--out) out=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--icount)
		vm_args+=(--icount "$2")
		args+=(--clock "instructions x 2^$2 ns (scripts/vm --icount $2)")
		shift 2 ;;
	*) args+=("$1"); shift ;;
	esac
done
if [ $smoke = 1 ]; then
	args=(--overhead-pages 64 --reps 1 --loss-pages 256 --loss-loops 2 --loss-runs overload
		--mode-pages 64 --mode-reps 1 --mode-limit 1 --profile-pages 64 --profile-reps 1
		--driver-pages 64 --driver-reps 1 "${args[@]}")
	timeout=560
fi
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$top"
# Snapshot the binaries: build/ may be rebuilt by others while the guest runs.
mkdir -p build
stage=$(mktemp -d "$top/build/bench-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
# KEXBENCH_BUILD: another build tree's binaries (default build/); kex.ko built for
# the guest's kernel (build/module for 6.1, build/module-K for the others).
b=${KEXBENCH_BUILD:-build}
ko=build/module/kex.ko
[ "$kernel" = 6.1 ] || ko=build/module-$kernel/kex.ko
for f in $b/bin/kextrace $b/bin/mmap_test $b/bin/kexbench $ko; do
	for try in 1 2 3 4 5 6; do
		[ -s "$f" ] && cp "$f" "$stage/" && break
		sleep 5 # being relinked right now
	done
	[ -s "$stage/$(basename "$f")" ] || { echo "bench/guest.sh: $f missing: build first (ninja -C build)" >&2; exit 1; }
done
# 4 GiB: at 65,536 pages bpftrace (maps for BPFTRACE_MAP_KEYS_MAX keys, and
# its output in /tmp) beside kex's 256 MiB ran 2 GiB out: the OOM killer ended it
scripts/vm --kernel "$kernel" --cpus 2 --mem 4096 --timeout "$timeout" "${vm_args[@]}" -- \
	bench/guest/inguest.sh "$out" --bin "$stage" "${args[@]}"
raw=$out/guest-raw.jsonl
[ -s "$raw" ] || { echo "bench/guest.sh: no results in $raw" >&2; exit 1; }
if [ $smoke = 1 ]; then
	# every benchmark produced its records, and nothing failed
	python3 "$top/bench/summarize.py" --check-smoke "$raw"
fi
