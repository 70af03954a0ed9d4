#!/usr/bin/env python3
# tests/guest/jcheck.py JSON CODE: assertions on a kextrace --json report for
# the in-guest suites. Runs CODE with j = the report, ok(cond, what),
# steps(page, kind) = the page's steps of that kind, and sym(stack_id) = the
# symbol names of a stack. Prints "ok: what" / "FAILED: what" per check;
# exit 1 if any failed.
import json, sys

j = json.load(open(sys.argv[1]))
failed = 0


def ok(cond, what):
    global failed
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        failed += 1


def steps(p, kind):
    return [s for s in p['steps'] if s['kind'] == kind]


def sym(stack_id):
    return [(f['sym'] or '').split('+')[0] for f in j['stacks'][stack_id]] if stack_id else []


exec(sys.argv[2])
sys.exit(1 if failed else 0)
