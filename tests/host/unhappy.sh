#!/bin/bash
# tests/host/unhappy.sh BINDIR - kextrace's unhappy paths on THIS machine's
# kernel (no guest needed): bad options, a missing command, unwritable
# outputs, no privileges, no BTF, SIGTERM, two tracers at once, a command that
# exits at once. Every case checks the exit status, the message, and that nothing
# is left behind: no BPF program of kextrace loaded, no temporary file.
# Needs root (as scripts/test runs); exits 0 when every case passed.
set -uo pipefail
bin=${1:?usage: unhappy.sh BINDIR}
kt=$(cd "$bin" && pwd)/kextrace
[ "$(id -u)" = 0 ] || { echo "unhappy.sh: needs root (scripts/test runs as root)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/kextrace-unhappy.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*" >&2; failed=$((failed + 1)); }
show() { sed 's/^/    /' "$1" >&2; }

# kextrace's BPF programs still loaded (their names: tp__*, kprobe__*, ...)
ours() {
	bpftool -j prog show 2>/dev/null | python3 -c '
import json, sys
progs = json.load(sys.stdin)
print(sum(1 for p in progs if p.get("name", "").startswith(("tp__", "tp_btf__", "kprobe__", "kretprobe__", "usdt__"))))'
}
# none_left WHAT: no program of ours outlives the run (freed within 3 s)
none_left() {
	local i n
	for i in $(seq 30); do
		n=$(ours)
		[ "$n" = 0 ] && { ok "$1: no BPF program left loaded"; return 0; }
		sleep 0.1
	done
	bad "$1: $n kextrace BPF programs still loaded"
}
# expect NAME STATUS REGEX CMD...: run CMD (60 s at most); its status must be
# STATUS and its stderr must match REGEX
expect() {
	local name=$1 want=$2 re=$3 rc
	shift 3
	timeout -k 5 60 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
	rc=$?
	if [ "$rc" != "$want" ]; then bad "$name: exit status $rc, expected $want"; show "$tmp/$name.err"; return 1; fi
	if ! grep -Eq -- "$re" "$tmp/$name.err"; then bad "$name: stderr does not match /$re/"; show "$tmp/$name.err"; return 1; fi
	ok "$name: exit $want, says /$re/"
}

before=$(ours)
[ "$before" = 0 ] || { echo "unhappy.sh: $before kextrace programs loaded before the test (another kextrace running?)" >&2; exit 1; }

# 1. bad options: exit 2, the option named, nothing loaded
expect unknown_option 2 'unknown option --bogus' "$kt" --bogus -- true
expect bad_value 2 'ringbuf-mb' "$kt" --ringbuf-mb 3 -- true
expect bad_range 2 'ringbuf-mb' "$kt" --ringbuf-mb 0 -- true
expect bad_max_pages 2 'max-pages: Value 0 not in range' "$kt" --max-pages 0 -- true
expect bad_max_allocs 2 'max-allocs: Value 0 not in range' "$kt" --max-allocs 0 -- true
# an output FILE forgotten: the next argument is not taken for it (no file "--")
cd "$tmp" || exit 1
expect file_is_option 2 "--stats: '--' is an option, not a FILE" "$kt" --stats -- true
cd "$OLDPWD" || exit 1
if [ -e "$tmp/--" ]; then bad "file_is_option: a file named -- was written"; else ok "file_is_option: no file named --"; fi
expect json_is_option 2 "--json: '--leaks' is an option, not a FILE" "$kt" --json --leaks -- true
expect bad_insert_args 2 'insert-args wants PTE,PAGE' "$kt" --insert-args 9,1 -- true
expect all_without_leaks 2 '--all goes with --leaks' "$kt" --all
expect report_without_file 2 'FILE is required' "$kt" report
expect report_bad_option 2 'bogus' "$kt" report --bogus x.jsonl
expect report_missing_file 1 'cannot read /nonexistent/x.jsonl' "$kt" report /nonexistent/x.jsonl
none_left "bad options"

# 2. no command: usage, exit 2
expect no_command 2 'give either -- CMD ARGS... or -p PID' "$kt"
grep -q '^usage: kextrace' "$tmp/no_command.err" && ok "no command: usage shown" || { bad "no command: no usage"; show "$tmp/no_command.err"; }
expect both_cmd_and_pid 2 'give either -- CMD ARGS... or -p PID' "$kt" -p 1 -- true
expect no_such_pid 1 'no process 999999' "$kt" -p 999999

# 3. a command that cannot run: 127, named, nothing left attached
expect missing_command 127 "cannot run '/nonexistent/cmd'" "$kt" -- /nonexistent/cmd
none_left "missing command"

# 4. unwritable outputs: an error naming the option and path before anything
# is traced (no probe table printed), no file created
for o in --json --stats --export --jsonl; do
	n=unwritable_${o#--}
	expect "$n" 1 "$o.*/nonexistent/dir/out" "$kt" "$o" /nonexistent/dir/out -- true
	if grep -q '^insert ' "$tmp/$n.err"; then bad "$n: probes were attached before the error"; show "$tmp/$n.err"; else ok "$n: failed before attaching"; fi
done
mkdir "$tmp/ro" && chmod 555 "$tmp/ro"
# root ignores mode bits: a read-only bind mount is unwritable even for root
if mount --bind -o ro "$tmp/ro" "$tmp/ro" 2>/dev/null || { mount --bind "$tmp/ro" "$tmp/ro" && mount -o remount,bind,ro "$tmp/ro"; }; then
	expect readonly_dir 1 '--json.*Read-only file system' "$kt" --json "$tmp/ro/out.json" -- true
	umount "$tmp/ro"
	[ -z "$(ls -A "$tmp/ro")" ] && ok "read-only dir: nothing written" || bad "read-only dir: files left: $(ls -A "$tmp/ro")"
else
	bad "cannot make a read-only bind mount for the test"
fi
none_left "unwritable outputs"

# 5. no privileges: a clear message, exit 1
expect not_root 1 'needs root, or CAP_BPF and CAP_PERFMON' setpriv --reuid=65534 --regid=65534 --clear-groups "$kt" -- true
expect no_caps 1 'needs root, or CAP_BPF and CAP_PERFMON' setpriv --inh-caps=-all --bounding-set=-bpf,-perfmon,-sys_admin "$kt" -- true
none_left "no privileges"

had_btf=no
[ -e /sys/kernel/btf/vmlinux ] && had_btf=yes
# 5b. a kernel without BTF (hidden in a mount namespace of its own): named, exit 1.
# Not plain `unshare -m`: it makes / private, which fails where / is not a
# mount point (a chroot). Only the mount holding /sys/kernel/btf is made a
# slave instead, so the tmpfs over it cannot propagate back to this machine
# when it is shared (systemd's default).
expect no_btf 1 'no /sys/kernel/btf/vmlinux: this kernel was built without CONFIG_DEBUG_INFO_BTF' \
	unshare -m --propagation unchanged sh -c 'mount --make-rslave "$(findmnt -no TARGET -T /sys/kernel/btf)" &&
		mount -t tmpfs none /sys/kernel/btf && exec "$0" -- true' "$kt"
if [ "$had_btf" = yes ]; then
	[ -e /sys/kernel/btf/vmlinux ] && ok "no_btf: BTF still there outside its namespace" ||
		bad "no_btf: the tmpfs hiding BTF leaked out of its mount namespace"
fi
none_left "no BTF"

# 6. a command that exits at once: its status, a complete report
expect exits_at_once 0 'kprobes via' "$kt" --json "$tmp/once.json" -- true
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["schema"] == "kextrace.report/1"' "$tmp/once.json" &&
	ok "exits at once: complete JSON" || bad "exits at once: bad JSON"
# a kernel without kprobes (this machine's, usually): said plainly, the rest traced
if [ -e /sys/bus/event_source/devices/kprobe ] || [ -e /sys/kernel/tracing/kprobe_events ]; then
	grep -q 'kprobe steps are unobservable' "$tmp/exits_at_once.err" &&
		bad "kprobes here, yet kextrace says they are unobservable" || ok "kprobes here: none called unobservable"
else
	grep -q '^kextrace: kprobe steps are unobservable here: .' "$tmp/exits_at_once.err" &&
		ok "no kprobes here: kextrace says so, with the reason" ||
		{ bad "no kprobes here, and kextrace does not say so"; show "$tmp/exits_at_once.err"; }
fi
expect exits_at_once_fail 3 'kprobes via' "$kt" -- sh -c 'exit 3'

# 7. SIGTERM during the run: 143, the report and exports complete, no temp file
"$kt" --json "$tmp/term.json" --export "$tmp/term-tl.json" --jsonl "$tmp/term.jsonl" -- sleep 60 \
	>"$tmp/term.out" 2>"$tmp/term.err" &
k=$!
for _ in $(seq 300); do grep -q '^usdt ' "$tmp/term.err" && break; sleep 0.1; done
# the traced command: kextrace's own child (by pid and start time, never by
# name: another "sleep 60" on the machine is not ours to judge or kill)
start_of() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '$1 !~ /^[ZX]$/ { print $20 }'; }
for _ in $(seq 30); do # released once the probes are attached, then it execs
	child=$(pgrep -P "$k" | head -n 1)
	[ -n "$child" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = sleep ] && break
	sleep 0.1
done
child_start=$( [ -n "$child" ] && start_of "$child")
[ -n "$child_start" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = sleep ] &&
	ok "SIGTERM: the traced command runs as kextrace's child $child" ||
	bad "SIGTERM: no 'sleep' child of kextrace $k (children: ${child:-none})"
kill -TERM $k
rc=0
wait $k || rc=$?
[ $rc = 143 ] && ok "SIGTERM: exit 143" || { bad "SIGTERM: exit $rc"; show "$tmp/term.err"; }
grep -q 'stopped by signal 15; sleep: killed by signal 15 (TERM)' "$tmp/term.err" &&
	ok "SIGTERM: says it was stopped, and the command by the same signal" ||
	bad "SIGTERM: no 'stopped by signal 15; sleep: killed by signal 15 (TERM)'"
if python3 - "$tmp/term.json" "$tmp/term-tl.json" "$tmp/term.jsonl" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); assert j["schema"] == "kextrace.report/1"
t = json.load(open(sys.argv[2])); assert t["traceEvents"]
with open(sys.argv[3]) as f: h = json.loads(f.readline()); assert h["schema"] == "kextrace.events/1"
PY
then ok "SIGTERM: JSON, timeline and JSONL complete"; else bad "SIGTERM: an output is incomplete"; fi
left=$(find "$tmp" -maxdepth 1 -name '*.tmp.*')
[ -z "$left" ] && ok "SIGTERM: no temporary file" || bad "SIGTERM: left $left"
# killed with kextrace, it may take a moment to be gone (1 s; sleep 60 would stay)
for _ in $(seq 10); do [ "$(start_of "$child")" = "$child_start" ] || break; sleep 0.1; done
if [ -n "$child_start" ] && [ "$(start_of "$child")" = "$child_start" ]; then
	bad "SIGTERM: the command (pid $child) still runs"
	kill -9 "$child"
else
	ok "SIGTERM: the command is gone"
fi
none_left "SIGTERM"

# 8. two kextraces at once: both attach, both end with their command's status
"$kt" --json "$tmp/a.json" -- sleep 2 >"$tmp/a.out" 2>"$tmp/a.err" &
a=$!
"$kt" --json "$tmp/b.json" -- sleep 2 >"$tmp/b.out" 2>"$tmp/b.err" &
b=$!
ra=0 rb=0
wait $a || ra=$?
wait $b || rb=$?
[ "$ra $rb" = "0 0" ] && ok "two at once: both exit 0" || { bad "two at once: $ra $rb"; show "$tmp/a.err"; show "$tmp/b.err"; }
python3 -c 'import json,sys; [json.load(open(f)) for f in sys.argv[1:]]' "$tmp/a.json" "$tmp/b.json" &&
	ok "two at once: both reports complete" || bad "two at once: a report is missing"
none_left "two at once"

echo "# unhappy: $passed passed, $failed failed"
[ $failed = 0 ]
