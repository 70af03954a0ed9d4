#!/usr/bin/env bash
# bench/correlator.sh [--smoke] [--out DIR] [--reps N]: the correlation engine
# and the export writers on this machine (build/bin/correlator_bench, Google
# Benchmark), N repetitions (default 5). Raw results: DIR/correlator-raw.json.
#   sizes: KEXBENCH_EVENTS (default 1000000,10000000; --smoke: 20000, 1 rep)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${KEXBENCH_BIN:-$top/build/bin}
out=$top/bench/results reps=5 smoke=0
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1; shift ;;
	--out) out=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	*) echo "bench/correlator.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
[ -x "$bin/correlator_bench" ] || { echo "bench/correlator.sh: no $bin/correlator_bench (libbenchmark-dev; ninja -C build)" >&2; exit 1; }
mkdir -p "$out"
if [ $smoke = 1 ]; then
	export KEXBENCH_EVENTS=20000
	reps=1
fi
"$bin/correlator_bench" --benchmark_repetitions="$reps" \
	--benchmark_out="$out/correlator-raw.json" --benchmark_out_format=json \
	--benchmark_counters_tabular=false
# the results are committed: no path of this machine in them
python3 - "$out/correlator-raw.json" "$top" <<'PY'
import json, os, sys
p, top = sys.argv[1], sys.argv[2]
d = json.load(open(p))
exe = d.get("context", {}).get("executable", "")
if exe.startswith(top + "/"):
    d["context"]["executable"] = os.path.relpath(exe, top)
    json.dump(d, open(p, "w"), indent=2)
PY
[ $smoke = 0 ] || python3 "$top/bench/summarize.py" --check-smoke "$out/correlator-raw.json"
