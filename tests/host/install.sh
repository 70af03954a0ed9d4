#!/bin/bash
# tests/host/install.sh BUILD_DIR - `cmake --install` into a fresh prefix, then
# use what was installed: kextrace --version and --help, kextrace-report on a
# committed real run, every man page through `man --warnings` (no warning
# allowed), and the bash completion (its option lists against kextrace
# --help and mmap_test's usage, and what it completes). No root needed.
set -uo pipefail
build=${1:?usage: install.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/kextrace-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
passed=0 failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*" >&2; failed=$((failed + 1)); }

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 \
	|| { cat "$tmp/install.log" >&2; echo "FAILED: cmake --install" >&2; exit 1; }
want="bin/kextrace-report bin/mmap_test sbin/kextrace
share/bash-completion/completions/kextrace share/bash-completion/completions/mmap_test
share/kextrace/analysis/kexreport.py share/kextrace/analysis/plot.py
share/kextrace/analysis/report.py share/kextrace/analysis/study.py
share/kextrace/analysis/study_follow.py
share/man/man1/kextrace-report.1 share/man/man1/mmap_test.1 share/man/man8/kextrace.8"
got=$(cd "$prefix" && find . -type f | sed 's|^\./||' | sort)
if [ "$got" = "$(tr ' ' '\n' <<<"$want" | sed '/^$/d' | sort)" ]; then
	ok "cmake --install: exactly the $(wc -l <<<"$got") files"
else
	bad "cmake --install: installed files differ: $(diff <(tr ' ' '\n' <<<"$want" | sed '/^$/d' | sort) <(echo "$got") | tr '\n' ' ')"
fi

v=$("$prefix/sbin/kextrace" --version)
if [[ $v =~ ^kextrace\ [0-9]+\.[0-9]+\ \(built\ with\ libbpf\ [0-9]+\.[0-9]+,\ running\ libbpf\ v[0-9.]+\)$ ]]; then
	ok "kextrace --version: $v"
else
	bad "kextrace --version printed '$v'"
fi
help=$("$prefix/sbin/kextrace" --help)
if [ "$("$prefix/sbin/kextrace" --help | tail -c 1 | od -An -tx1 | tr -d ' ')" = 0a ]; then
	ok "kextrace --help ends its last line"
else
	bad "kextrace --help does not end with a newline"
fi
if grep -q '{false}\|{true}' <<<"$help"; then bad "--help shows a flag's default ({false})"; else ok "--help shows no {false}"; fi

"$prefix/bin/kextrace-report" plot "$top/analysis/tests/data/drop-8.json" --out "$tmp/plot" >"$tmp/plot.out" 2>&1
if [ $? = 0 ] && [ -s "$tmp/plot/drop-8-counts.png" ]; then
	ok "kextrace-report plot on a committed run"
else
	bad "kextrace-report plot: $(cat "$tmp/plot.out")"
fi
"$prefix/bin/kextrace-report" study "$tmp/no-such-dir" >"$tmp/study.out" 2>&1
if [ $? = 1 ] && grep -q 'no-such-dir' "$tmp/study.out"; then
	ok "kextrace-report study on a missing folder: exit 1, named"
else
	bad "kextrace-report study on a missing folder: $(cat "$tmp/study.out")"
fi

for page in man8/kextrace.8 man1/mmap_test.1 man1/kextrace-report.1; do
	warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$prefix/share/man/$page" 2>&1 >"$tmp/page.txt")
	if [ -z "$warn" ] && [ "$(wc -l <"$tmp/page.txt")" -gt 20 ]; then
		ok "man $page: $(wc -l <"$tmp/page.txt") lines, no warning"
	else
		bad "man $page: ${warn:-too short}"
	fi
done
# every option of --help is documented in the man page
for o in $(grep -oE '^  (-[a-z],)?--[a-z-]+' <<<"$help" | grep -oE -- '--[a-z-]+'); do
	grep -q -- "$o" "$top/man/kextrace.8.scd" || bad "kextrace.8 does not document $o"
done
ok "kextrace.8 documents every option of --help"

# completion: the option lists are kextrace's and mmap_test's own
source "$prefix/share/bash-completion/completions/kextrace"
help_opts=$(grep -oE '^  (-[a-z],)?--[a-z-]+' <<<"$help" | grep -oE -- '-{1,2}[a-z-]+' | sort -u)
comp_opts=$(tr ' \n' '\n\n' <<<"$_kextrace_opts" | sed '/^$/d' | sort -u)
[ "$help_opts" = "$comp_opts" ] && ok "completion: kextrace's $(wc -l <<<"$comp_opts") options" \
	|| bad "completion options differ from --help: $(diff <(echo "$help_opts") <(echo "$comp_opts") | tr '\n' ' ')"
rhelp=$("$prefix/sbin/kextrace" report --help)
r_opts=$(grep -oE '^  (-[a-z],)?--[a-z-]+' <<<"$rhelp" | grep -oE -- '-{1,2}[a-z-]+' | sort -u)
[ "$r_opts" = "$(tr ' ' '\n' <<<"$_kextrace_report_opts" | sort -u)" ] \
	&& ok "completion: kextrace report's options" || bad "completion: report options differ: $r_opts"
usage=$("$prefix/bin/mmap_test" 2>&1)
for m in insert batch fault pfn --read-first --no-wait --hold-after-write; do
	grep -q -- "$m" <<<"$usage" || bad "mmap_test's usage has no $m (the completion offers it)"
done
complete_words() { # complete_words WORD...: what TAB offers for the last word
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMPREPLY=()
	case $1 in kextrace) _kextrace ;; mmap_test) _mmap_test ;; esac
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
}
check() { # check "EXPECTED" WORD...
	local want=$1 got
	shift
	got=$(complete_words "$@")
	[ "$got" = "$want" ] && ok "complete '$*' -> $got" || bad "complete '$*': '$got', want '$want'"
}
check "--leaks " kextrace --le
check "auto perf tracefs " kextrace --kprobe-mode ""
check "report " kextrace rep
check "--export --export-format " kextrace report run.jsonl --ex
check "json perfetto " kextrace report run.jsonl --export-format ""
check "--stacks --stats " kextrace --st
check "all none sites " kextrace --stacks ""
check "--json --jsonl " kextrace --jso
check "batch fault insert pfn " mmap_test /dev/kex 8 --mode ""
check "--hold-after-write " mmap_test /dev/kex 8 --ho
echo "install: $passed passed, $failed failed"
[ "$failed" = 0 ]
