#!/usr/bin/env python3
# tests/guest/jcheck.py: the one assertion helper of the in-guest suites.
#   python3 tests/guest/jcheck.py [JSON] [--events FILE] CODE
# runs CODE with j = the kextrace --json report JSON, ev = the --events (or
# --jsonl) records of FILE, ok(cond, what), steps(page, kind) = the page's
# steps of that kind, and sym(stack_id) = the symbol names of a stack of j.
# Prints "ok: what" / "FAILED: what" per check; exit 1 if any failed.
# Python heredocs of the suites import it instead: from jcheck import ok, done.
import json, sys

failed = 0
j = None


def ok(cond, what):
    global failed
    print(("ok: " if cond else "FAILED: ") + what)
    if not cond:
        failed += 1


def done():
    sys.exit(1 if failed else 0)


def steps(p, kind):
    return [s for s in p['steps'] if s['kind'] == kind]


def sym(stack_id):
    return [(f['sym'] or '').split('+')[0] for f in j['stacks'][stack_id]] if stack_id else []


def read_events(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


if __name__ == '__main__':
    args = sys.argv[1:]
    ev = None
    if '--events' in args:
        i = args.index('--events')
        ev = read_events(args[i + 1])
        del args[i:i + 2]
    if len(args) == 2:
        with open(args[0]) as f:
            j = json.load(f)
    elif len(args) != 1:
        sys.exit('usage: jcheck.py [JSON] [--events FILE] CODE')
    exec(args[-1], {**globals(), 'j': j, 'ev': ev})
    done()
