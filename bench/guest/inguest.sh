#!/usr/bin/env bash
# bench/guest/inguest.sh OUT_DIR [options]: the guest benchmarks, run inside
# one guest boot by bench/guest.sh. Writes JSON lines to OUT_DIR/guest-raw.jsonl
# (one object per measurement; bench/summarize.py reduces them).
#
#   --overhead-pages "4096 65536"  --reps 5      overhead: untraced / kextrace (default:
#                                                 --stacks sites; none; --leaks --watch) /
#                                                 bpftrace (bench/kex.bt) / kextrace's hooks
#                                                 with empty programs (bench/hooks.bt)
#   --bpftrace-pages "65536"                      the overhead sizes both bpftrace runs are at
#                                                 (default: all)
#   --driver-pages 8192 --driver-reps 3          another driver's pages: untraced / kextrace
#                                                 (default; none; --leaks --watch) on an AF_PACKET
#                                                 ring of N pages (kexbench ring)
#   --loss-pages 65536 --loss-loops 4             loss: default ring, then forced overload
#   --mode-pages 4096 --mode-reps 3               per-page mapping cost by mode
#   --profile-pages 65536 --profile-reps 1        where kextrace's overhead goes: the kernel's
#                                                 own BPF run statistics per program, by --stacks
#   --only overhead,driver,loss,modes,profile     which benchmarks (default: all)
#   --loss-runs "default_1 default_2 overload"   which loss runs (default: all three)
#   --mode-limit N                                only the first N modes mmap_test lists
#   --bt-drain S  after the workload, wait up to S s for bpftrace to print what it holds (120)
#   --append      add to guest-raw.jsonl instead of starting it afresh
#   --clock DESC  how the guest's clock runs, for the summary (default: wall clock;
#                 bench/guest.sh --icount)
#   --bin DIR     kextrace, mmap_test, kexbench and kex.ko (default: build/bin, build/module)
#
# Every binary is copied to /tmp first: others may rebuild build/ while this runs
# (bench/guest.sh snapshots them on the machine before the boot, too).
set -u
# on the machine itself it would truncate the results and fail at insmod
[ -n "${KEX_GUEST:-}" ] || { echo "inguest.sh: runs inside a guest: bench/guest.sh boots one" >&2; exit 2; }
out=${1:?usage: inguest.sh OUT_DIR [options]}
shift
overhead_pages="4096 65536" reps=5 loss_pages=65536 loss_loops=4 mode_pages=4096 mode_reps=3
profile_pages=65536 profile_reps=1 follow_pages=1024 follow_reps=3 driver_pages=8192 driver_reps=3
bpftrace_pages= clock="wall clock"
only=overhead,driver,loss,modes,profile bt_drain=120 append=0 bin= loss_runs="default_1 default_2 overload" mode_limit=99
while [ $# -gt 0 ]; do
	case $1 in
	--overhead-pages) overhead_pages=$2; shift 2 ;;
	--reps) reps=$2; shift 2 ;;
	--bpftrace-pages) bpftrace_pages=$2; shift 2 ;;
	--loss-pages) loss_pages=$2; shift 2 ;;
	--loss-loops) loss_loops=$2; shift 2 ;;
	--mode-pages) mode_pages=$2; shift 2 ;;
	--mode-reps) mode_reps=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--bin) bin=$2; shift 2 ;;
	--bt-drain) bt_drain=$2; shift 2 ;;
	--append) append=1; shift ;;
	--loss-runs) loss_runs=$2; shift 2 ;;
	--mode-limit) mode_limit=$2; shift 2 ;;
	--profile-pages) profile_pages=$2; shift 2 ;;
	--profile-reps) profile_reps=$2; shift 2 ;;
	--follow-pages) follow_pages=$2; shift 2 ;;
	--follow-reps) follow_reps=$2; shift 2 ;;
	--driver-pages) driver_pages=$2; shift 2 ;;
	--driver-reps) driver_reps=$2; shift 2 ;;
	--clock) clock=$2; shift 2 ;;
	*) echo "inguest.sh: unknown option $1" >&2; exit 2 ;;
	esac
done
top=$(pwd)
mkdir -p "$out"
raw=$out/guest-raw.jsonl
[ $append = 1 ] || : >"$raw"
kb=/tmp/kb
mkdir -p "$kb"
for b in kextrace mmap_test kexbench kex.ko; do
	src=${bin:-$top/build/bin}/$b
	[ -n "$bin" ] || [ $b != kex.ko ] || src=$top/build/module/kex.ko
	cp "$src" "$kb/$b" || { echo "inguest.sh: no $src" >&2; exit 1; }
done
sed "s|@RIG@|$kb/mmap_test|" "$top/bench/kex.bt" >"$kb/kex.bt"
cp "$top/bench/hooks.bt" "$kb/hooks.bt"
export PATH=$kb:$PATH
rig=$kb/mmap_test

log() { printf 'bench: [%4d s] %s\n' "$SECONDS" "$*" >&2; } # time since the guest part began
emit() { printf '%s\n' "$1" >>"$raw"; }
# verbose=0: kex's per-page pr_info would be console printing, not mapping
insmod "$kb/kex.ko" verbose=0 || { log "insmod failed"; exit 1; }
emit "$(printf '{"bench":"env","date":"%s","kernel":"%s","cpus":%s,"mem_kb":%s,"guest":"qemu TCG (software-emulated), %s","bpftrace":"%s","kex_params":"verbose=0"}' \
	"$(date -u '+%Y-%m-%d %H:%M UTC')" "$(uname -r)" "$(nproc)" "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" "$clock" "$(bpftrace --version 2>/dev/null | head -1)")"

# "kextrace: kernel K, N page lives, E events, L lost" -> "N E L"
kextrace_counts() {
	sed -n 's/^kextrace: kernel .*, \([0-9]*\) page lives, \([0-9]*\) events, \([0-9]*\) lost.*/\1 \2 \3/p' "$1" | head -1
}

# one JSON object from kexbench's line + the tracer's own numbers
record() { # bench cfg pages rep kexbench_line total_ns events lost [extra]
	local line=$5
	[ -n "$line" ] || line='{"wall_ns":null}'
	emit "$(printf '{"bench":"%s","cfg":"%s","pages":%s,"rep":%s,"tracer_total_ns":%s,"events":%s,"lost":%s%s,"run":%s}' \
		"$1" "$2" "$3" "$4" "$6" "${7:-null}" "${8:-null}" "${9:-}" "$line")"
}

# The workload of a bench's run, in W: the rig on kex, or (bench "driver")
# kexbench's AF_PACKET ring, another driver's pages.
workload() { # bench pages
	if [ "$1" = driver ]; then
		W=("$kb/kexbench" ring "$2")
	else
		W=("$rig" /dev/kex "$2" --no-wait)
	fi
}

run_untraced() { # pages rep [bench]
	local f=$kb/r.json t0 W
	rm -f "$f"
	workload "${3:-overhead}" "$1"
	t0=$(kexbench now)
	kexbench run --t0 "$t0" --label untraced --out "$f" -- "${W[@]}" >/dev/null
	record "${3:-overhead}" untraced "$1" "$2" "$(cat "$f" 2>/dev/null)" "$(($(kexbench now) - t0))"
}

run_kextrace() { # pages rep [bench] [extra kextrace options...]
	local pages=$1 rep=$2 bench=${3:-overhead} f=$kb/r.json t0 t1 rc W lives ev lost
	shift 3 2>/dev/null || shift $#
	rm -f "$f"
	workload "$bench" "$pages"
	t0=$(kexbench now)
	kextrace --usdt "$rig" "$@" -- kexbench run --t0 "$t0" --label kextrace --out "$f" \
		-- "${W[@]}" >"$kb/kt.out" 2>"$kb/kt.err"
	rc=$?
	t1=$(kexbench now)
	read -r lives ev lost <<<"$(kextrace_counts "$kb/kt.out")"
	[ $rc = 0 ] || log "kextrace exit $rc: $(tail -3 "$kb/kt.err" | tr '\n' ' ')"
	record "$bench" "${cfg:-kextrace}" "$pages" "$rep" "$(cat "$f" 2>/dev/null)" "$((t1 - t0))" "${ev:-null}" "${lost:-null}" ",\"exit\":$rc,\"page_lives\":${lives:-null}"
}

# bench/kex.bt (label bpftrace, the traced process as $1), or bench/hooks.bt
# (label hooks: kextrace's hooks, every program empty)
run_bpftrace() { # pages rep [label]
	local pages=$1 rep=$2 cfg=${3:-bpftrace} f=$kb/r.json go=$kb/go t0 t1 ev lost rc kpid bpid i
	local args=()
	rm -f "$f" "$go"
	t0=$(kexbench now)
	kexbench run --hold "$go" --t0 "$t0" --label "$cfg" --out "$f" -- "$rig" /dev/kex "$pages" --no-wait >/dev/null &
	kpid=$!
	if [ "$cfg" = hooks ]; then args=("$kb/hooks.bt"); else args=("$kb/kex.bt" "$kpid"); fi
	BPFTRACE_MAP_KEYS_MAX=1048576 BPFTRACE_PERF_RB_PAGES=2048 \
		bpftrace "${args[@]}" >"$kb/bt.out" 2>"$kb/bt.err" &
	bpid=$!
	for i in $(seq 6000); do # BEGIN runs once every probe is attached
		grep -q '^READY' "$kb/bt.out" 2>/dev/null && break
		kill -0 $bpid 2>/dev/null || break
		sleep 0.05
	done
	touch "$go"
	wait $kpid
	# bpftrace prints (and symbolizes) in user space, far behind the kernel: let
	# it drain until its output stops growing, at most $bt_drain s, then stop it
	local size=-1 now drained=true t_end=$(($(date +%s) + bt_drain))
	while now=$(stat -c %s "$kb/bt.out" 2>/dev/null || echo 0); [ "$now" != "$size" ]; do
		size=$now
		[ "$(date +%s)" -lt $t_end ] || { drained=false; break; }
		sleep 2
	done
	# SIGINT, then SIGTERM every second until it ends: bpftrace 0.17 misses a
	# signal handled outside its epoll_wait, and a second SIGINT kills it
	# while it prints its maps (tests/guest/tracerlib.bash, bpftrace_stop)
	kill -INT $bpid 2>/dev/null
	for i in $(seq 60); do sleep 1; kill -TERM $bpid 2>/dev/null || break; done
	kill -KILL $bpid 2>/dev/null && drained=killed
	wait $bpid
	rc=$?
	t1=$(kexbench now)
	# record lines start with a timestamp; stack frames are indented lines
	ev=$(grep -c '^[0-9]' "$kb/bt.out")
	lost=$(sed -n 's/.*Lost \([0-9]*\) events.*/\1/p' "$kb/bt.out" "$kb/bt.err" | awk '{s += $1} END {print s + 0}')
	if [ $rc != 0 ]; then
		log "$cfg: bpftrace exit $rc: $(grep -v '^$' "$kb/bt.err" | tail -3 | tr '\n' ' ')"
		# who ended it, when it was not us (the OOM killer's line)
		[ $rc != 137 ] || [ $drained = killed ] ||
			log "$(dmesg | grep -iE 'out of memory|killed process' | tail -2 | tr '\n' ' ')"
	fi
	record overhead "$cfg" "$pages" "$rep" "$(cat "$f" 2>/dev/null)" "$((t1 - t0))" "$ev" "$lost" ",\"exit\":$rc,\"drained\":\"$drained\""
}

has() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }

# --- 2. loss -----------------------------------------------------------------------
# kextrace over kexbench loop (map, touch, unmap, LOOPS times, no exec between),
# one looper and two in parallel (both vCPUs producing); then the same with a
# 1 MiB ring buffer, the slowest consumer (--events: JSON per record) and the
# drain thread held behind it (--debug-queue-limit-kb) to force overload.
# --stats gives the ring accounting (produced / received / lost per type; --json
# would too, but with every page: over a GB for 393,216 page lives, more than the
# guest's /tmp holds).
loss_run() { # name ringbuf_mb parallel [kextrace options...]
	local name=$1 mb=$2 par=$3 f=$kb/loop.json j=$kb/loss.json t0 t1 rc cmd
	shift 3
	rm -f "$f" "$j"
	cmd="for i in \$(seq $par); do $kb/kexbench loop /dev/kex $loss_pages $loss_loops --out $f & done; wait"
	t0=$(kexbench now)
	kextrace --usdt "$rig" --ringbuf-mb "$mb" --accept-loss --stats "$j" "$@" -- sh -c "$cmd" \
		>"$kb/kt.out" 2>"$kb/kt.err"
	rc=$?
	t1=$(kexbench now)
	read -r lives ev lost <<<"$(kextrace_counts "$kb/kt.out")"
	[ $rc = 0 ] || log "kextrace exit $rc: $(tail -3 "$kb/kt.err" | tr '\n' ' ')"
	local acct=null loops
	[ -s "$j" ] && acct=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d.get("ring_accounting")))' "$j" 2>/dev/null || echo null)
	loops=$(paste -sd, "$f" 2>/dev/null)
	emit "$(printf '{"bench":"loss","name":"%s","ringbuf_mb":%s,"parallel":%s,"pages":%s,"loops":%s,"tracer_total_ns":%s,"page_lives":%s,"events":%s,"lost":%s,"exit":%s,"loopers":[%s],"ring_accounting":%s}' \
		"$name" "$mb" "$par" "$loss_pages" "$loss_loops" "$((t1 - t0))" "${lives:-null}" "${ev:-null}" "${lost:-null}" "$rc" "$loops" "$acct")"
}
if has loss; then
	for r in $loss_runs; do
		log "loss: $r"
		case $r in
		default_1) loss_run default_1 16 1 ;;
		default_2) loss_run default_2 16 2 ;;
		overload) # 1 MiB ring, the slowest consumer (JSON per record), and the drain
			# thread held once 1 KiB of records wait for it: it would otherwise keep
			# copying the ring into memory however slow the consumer is
			loss_run overload 1 2 --events "$kb/events.jsonl" --debug-queue-limit-kb 1
			rm -f "$kb/events.jsonl" ;;
		esac
	done
fi

# --- 3. per-page mapping cost by mode, from the trace ------------------------------
# The modes are whatever mmap_test --help lists ("--mode insert|batch|...");
# a mode the loaded kex refuses is recorded as skipped. ref_policy=keep for every
# mode (fault and pfn require it), so the modes differ only in how they map.
if has modes; then
	modes=$("$rig" --help 2>&1 | sed -n 's/.*--mode \([a-z|]*\).*/\1/p' | head -1 | tr '|' ' ')
	[ -n "$modes" ] || modes=default
	modes=$(echo $modes | tr ' ' '\n' | head -n "$mode_limit" | tr '\n' ' ')
	echo keep >/sys/module/kex/parameters/ref_policy
	for rep in $(seq 1 "$mode_reps"); do
		for m in $modes; do
			log "mode $m, rep $rep/$mode_reps"
			margs=()
			[ "$m" = default ] || margs=(--mode "$m")
			f=$kb/r.json
			rm -f "$f"
			t0=$(kexbench now)
			kexbench run --t0 "$t0" --label "untraced-$m" --out "$f" -- "$rig" /dev/kex "$mode_pages" "${margs[@]}" --no-wait >/dev/null 2>"$kb/m.err"
			rc=$?
			if [ $rc != 0 ]; then
				emit "$(printf '{"bench":"modes","mode":"%s","rep":%s,"skipped":"%s"}' "$m" "$rep" "$(tail -1 "$kb/m.err" | tr -d '"\\')")"
				continue
			fi
			untraced=$(cat "$f")
			rm -f "$f"
			kextrace --usdt "$rig" --no-stacks --jsonl "$kb/m.jsonl" -- kexbench run --label "kextrace-$m" --out "$f" \
				-- "$rig" /dev/kex "$mode_pages" "${margs[@]}" --no-wait >"$kb/kt.out" 2>"$kb/kt.err"
			rc=$?
			cost=$(python3 "$top/bench/guest/mode_cost.py" "$kb/m.jsonl" 2>&1 || echo null)
			emit "$(printf '{"bench":"modes","mode":"%s","rep":%s,"pages":%s,"exit":%s,"untraced":%s,"traced":%s,"cost":%s}' \
				"$m" "$rep" "$mode_pages" "$rc" "$untraced" "$(cat "$f" 2>/dev/null || echo null)" "$cost")"
			rm -f "$kb/m.jsonl"
		done
	done
	echo drop >/sys/module/kex/parameters/ref_policy
fi
# --- 1b. where kextrace's overhead goes --------------------------------------------
# The kernel's own statistics of every kextrace BPF program (kernel.bpf_stats_enabled:
# run count and time inside the program), with stacks and with --no-stacks, next to
# an untraced run. bpftool snapshots the programs every 0.5 s while kextrace runs;
# --settle 3000 keeps them attached (and counted) for 3 s after the workload. The
# statistics cost two clock reads per program run: these runs are not overhead figures.
profile_run() { # cfg pages rep [kextrace options...]
	local cfg=$1 pages=$2 rep=$3 f=$kb/r.json snaps=$kb/progs.snap t0 kt rc stats
	shift 3
	rm -f "$f" "$snaps"
	bpftool -j prog show >"$snaps.before" 2>/dev/null
	sysctl -q -w kernel.bpf_stats_enabled=1
	t0=$(kexbench now)
	kextrace --usdt "$rig" --settle 3000 "$@" -- kexbench run --t0 "$t0" --label "$cfg" --out "$f" \
		-- "$rig" /dev/kex "$pages" --no-wait >"$kb/kt.out" 2>"$kb/kt.err" &
	kt=$!
	while kill -0 $kt 2>/dev/null; do
		bpftool -j prog show >>"$snaps" 2>/dev/null
		echo >>"$snaps"
		sleep 0.5
	done
	wait $kt
	rc=$?
	sysctl -q -w kernel.bpf_stats_enabled=0
	stats=$(python3 "$top/bench/guest/prog_stats.py" "$snaps" "$kt" "$snaps.before" 2>&1) || { log "profile $cfg: no program statistics: $stats"; stats=null; }
	read -r _ ev lost <<<"$(kextrace_counts "$kb/kt.out")"
	[ $rc = 0 ] || log "kextrace exit $rc: $(tail -3 "$kb/kt.err" | tr '\n' ' ')"
	emit "$(printf '{"bench":"profile","cfg":"%s","pages":%s,"rep":%s,"exit":%s,"events":%s,"lost":%s,"run":%s,"bpf":%s}' \
		"$cfg" "$pages" "$rep" "$rc" "${ev:-null}" "${lost:-null}" "$(cat "$f" 2>/dev/null || echo null)" "$stats")"
	rm -f "$snaps" "$snaps.before"
}
if has profile; then
	for rep in $(seq 1 "$profile_reps"); do
		log "profile $profile_pages pages, rep $rep/$profile_reps"
		run_untraced "$profile_pages" "$rep" profile
		profile_run kextrace "$profile_pages" "$rep"
		profile_run kextrace_stacks_all "$profile_pages" "$rep" --stacks all
		profile_run kextrace_no_stacks "$profile_pages" "$rep" --no-stacks
		profile_run kextrace_watch "$profile_pages" "$rep" --leaks --watch
	done
fi

# --- 1. overhead: A B C A B C ... ------------------------------------------------
if has overhead; then
	# warm-up (page cache, BTF parsing caches, first-insmod effects): not recorded
	run_untraced 64 0 warmup
	for pages in $overhead_pages; do
		for rep in $(seq 1 "$reps"); do
			log "overhead $pages pages, rep $rep/$reps"
			run_untraced "$pages" "$rep"
			run_kextrace "$pages" "$rep" overhead
			cfg=kextrace_no_stacks run_kextrace "$pages" "$rep" overhead --no-stacks
			cfg=kextrace_watch run_kextrace "$pages" "$rep" overhead --leaks --watch
			case " ${bpftrace_pages:-$overhead_pages} " in
			*" $pages "*) run_bpftrace "$pages" "$rep"; run_bpftrace "$pages" "$rep" hooks ;;
			esac
		done
	done
fi

# --- 1c. another driver's pages: an AF_PACKET ring, as section 1 -----------------
# (kex stays loaded: its pages are not in these runs; bpftrace's script is kex's)
if has driver; then
	run_untraced 64 0 warmup
	for rep in $(seq 1 "$driver_reps"); do
		log "driver $driver_pages pages, rep $rep/$driver_reps"
		run_untraced "$driver_pages" "$rep" driver
		run_kextrace "$driver_pages" "$rep" driver
		cfg=kextrace_no_stacks run_kextrace "$driver_pages" "$rep" driver --no-stacks
		cfg=kextrace_watch run_kextrace "$driver_pages" "$rep" driver --leaks --watch
	done
fi

# --- 5. --follow: untraced, curated, --follow, interleaved ---------------------------
# The --follow run's own JSON: functions attached and how, attach and detach
# times, followed calls, and its program's runs (the follow probe's hits).
follow_kextrace() { # pages rep
	local pages=$1 rep=$2 f=$kb/r.json j=$kb/follow.json t0 t1 rc extra
	rm -f "$f" "$j"
	t0=$(kexbench now)
	kextrace --usdt "$rig" --follow --json "$j" -- kexbench run --t0 "$t0" --label follow --out "$f" \
		-- "$rig" /dev/kex "$pages" --no-wait >"$kb/kt.out" 2>"$kb/kt.err"
	rc=$?
	t1=$(kexbench now)
	read -r _ ev lost <<<"$(kextrace_counts "$kb/kt.out")"
	[ $rc = 0 ] || log "kextrace --follow exit $rc: $(tail -3 "$kb/kt.err" | tr '\n' ' ')"
	extra=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); f = j["follow"]; a = f["attach"]
print(json.dumps({"mechanism": a["mechanism"], "functions": a["attached"], "attach_us": a["us"],
                  "detach_us": a["detach_us"], "calls": f["calls"],
                  "prog_runs": f["runs"], "matched": f["matched"]}))' "$j" 2>/dev/null || echo null)
	record follow follow "$pages" "$rep" "$(cat "$f" 2>/dev/null)" "$((t1 - t0))" "${ev:-null}" "${lost:-null}" ",\"exit\":$rc,\"follow\":$extra"
}
if has follow; then
	run_untraced 64 0 warmup
	for rep in $(seq 1 "$follow_reps"); do
		log "follow $follow_pages pages, rep $rep/$follow_reps"
		run_untraced "$follow_pages" "$rep" follow
		run_kextrace "$follow_pages" "$rep" follow
		follow_kextrace "$follow_pages" "$rep"
	done
fi

rmmod kex 2>/dev/null
log "done: $raw"
