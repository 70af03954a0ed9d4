#!/usr/bin/env python3
# tests/guest/stress.py: randomized scenarios on a loaded kex, each under
# kextrace --leaks, in the guest (tests/guest/stress.sh runs a few, scripts/soak
# runs many).
#
#   stress.py run --iterations N [--seed S] [--per-trace K] [--out DIR]
#   stress.py batch FIRST COUNT   (kextrace's command: iterations FIRST..)
#
# Iteration i uses seed S + i; its random draw alone picks a ref_policy, a
# mapping mode, a scenario and its sizes. After every iteration: the
# scenario's own checks held (a fresh mapping reads zero, data survives what
# it should, errnos and signals as decided in kex_uapi.h), kex's counters are
# balanced, and the kernel log since the iteration began has no WARN/BUG/
# Oops/"Bad page". Iterations run K at a time under one kextrace --leaks
# (K = 1: one session per iteration; a session costs seconds in the
# emulated guest); after every session: kextrace exits 0, every page it saw
# was freed, nothing was freed while mapped, no event was lost, and it saw
# exactly the pages kex allocated. A failure stops the run and prints the
# seeds to replay (`--seed S --iterations K --per-trace 1`).
import argparse, ctypes, json, os, random, re, signal, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kexlab as k  # noqa: E402  (raw mmap/mremap/madvise, counters, touch)

DEV = '/dev/kex'
POLICIES = ['drop', 'keep']
BAD_KERNEL_LOG = re.compile(r'WARNING:|BUG:|Oops|Bad page|general protection|Call Trace')
SIZES = [1, 2, 3, 4, 7, 8, 16, 33, 64]


class ScenarioFailed(Exception):
    pass


def want(what, got, expected):
    if got != expected:
        raise ScenarioFailed(f'{what}: expected {expected!r}, got {got!r}')


def expect_in(what, got, allowed):
    if got not in allowed:
        raise ScenarioFailed(f'{what}: got {got!r}, expected one of {allowed!r}')


def mapped(fd, pages, prot=k.R | k.W, flags=k.SHARED):
    a, res = k.mmap(fd, pages, prot, flags)
    want(f'mmap of {pages} pages', res, 'ok')
    return a


def zeros_then_pattern(a, pages, base):
    """A fresh kex mapping reads zero (no kernel data), then holds a pattern."""
    want('a fresh mapping reads zero', [k.byte_at(a, i) for i in range(pages)], [0] * pages)
    k.fill(a, pages, base)
    want('the pattern reads back', [k.byte_at(a, i) for i in range(pages)],
         [(base + i) & 0xff for i in range(pages)])


def fresh(pages, base, at_least=1):
    """A kex mapping of max(PAGES, AT_LEAST) pages, its fd closed, checked
    zero and then filled with the pattern from BASE: (address, pages)."""
    pages = max(pages, at_least)
    fd = k.kopen(DEV)
    a = mapped(fd, pages)
    os.close(fd)
    zeros_then_pattern(a, pages, base)
    return a, pages


# --- scenarios: (rng, mode, pages) -> None; raise ScenarioFailed -------------

def s_plain(rng, mode, pages):
    fd = k.kopen(DEV)
    a = mapped(fd, pages)
    if rng.random() < 0.5:
        os.close(fd)
        fd = None
    zeros_then_pattern(a, pages, rng.randrange(1, 200))
    k.munmap(a, pages)
    if fd is not None:
        os.close(fd)


def s_partial_munmap(rng, mode, pages):
    base = rng.randrange(1, 200)
    a, pages = fresh(pages, base, at_least=3)
    lo = rng.randrange(1, pages - 1)
    n = rng.randrange(1, pages - lo)
    k.munmap(a + lo * k.PS, n)
    keep = [i for i in range(pages) if not lo <= i < lo + n]
    want('pages around the hole keep their data', [k.byte_at(a, i) for i in keep],
         [(base + i) & 0xff for i in keep])
    want('the hole is unmapped', k.touch_status(a + lo * k.PS, 'read'), 'SIGSEGV')
    k.munmap(a, lo)
    k.munmap(a + (lo + n) * k.PS, pages - lo - n)


def s_fork(rng, mode, pages):
    a, pages = fresh(pages, 1)
    child_first = rng.random() < 0.5
    page = rng.randrange(pages)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        k.no_core()
        k.libc.memset(a + page * k.PS, 0xee, 1)
        os.read(r, 1)       # the parent says when to unmap and exit
        k.munmap(a, pages)
        os._exit(0)
    if child_first:
        os.write(w, b'.')
        os.waitpid(pid, 0)
    else:
        while ctypes.string_at(a + page * k.PS, 1)[0] != 0xee:
            time.sleep(0.001)
    want("the child's write is shared", ctypes.string_at(a + page * k.PS, 1)[0], 0xee)
    k.munmap(a, pages)
    if not child_first:
        os.write(w, b'.')
        _, st = os.waitpid(pid, 0)
        want('the child exited 0', os.waitstatus_to_exitcode(st), 0)
    os.close(r)
    os.close(w)


def s_mremap(rng, mode, pages):
    a, pages = fresh(pages, 7, at_least=2)
    if rng.random() < 0.5:  # shrink: the tail is unmapped, the head stays
        n = rng.randrange(1, pages)
        b = k.libc.mremap(a, pages * k.PS, n * k.PS, 0)
        want('mremap shrink', b, a)
        want('the head keeps its data', [k.byte_at(a, i) for i in range(n)],
             [(7 + i) & 0xff for i in range(n)])
        k.munmap(a, n)
    else:  # grow: kex refuses (vm_ops has no may_split growth); nothing moves
        b = k.libc.mremap(a, pages * k.PS, (pages + 2) * k.PS, 1)
        want('mremap grow is refused', k.err() if b == k.FAILED else 'ok', 'EFAULT')
        want('the mapping is intact', k.byte_at(a, pages - 1), (7 + pages - 1) & 0xff)
        k.munmap(a, pages)


def s_dontneed(rng, mode, pages):
    a, pages = fresh(pages, 1, at_least=2)
    i = rng.randrange(pages)
    rc = k.libc.madvise(a + i * k.PS, k.PS, k.MADV_DONTNEED)
    res = 'ok' if rc == 0 else k.err()
    # kex_uapi.h: insert/batch have no .fault (the zapped page is gone:
    # SIGBUS); fault brings the same page back; pfn: madvise says EINVAL
    want('madvise(MADV_DONTNEED)', res, 'EINVAL' if mode == 'pfn' else 'ok')
    want('touch after DONTNEED', k.touch_status(a + i * k.PS, 'read'),
         'SIGBUS' if mode in ('insert', 'batch') else 'ok')
    others = [j for j in range(pages) if j != i]
    want('the other pages keep their data', [k.byte_at(a, j) for j in others],
         [(1 + j) & 0xff for j in others])
    k.munmap(a, pages)


def s_mlock(rng, mode, pages):
    fd = k.kopen(DEV)
    a = mapped(fd, pages)
    os.close(fd)
    want('mlock', k.libc.mlock(a, pages * k.PS), 0)
    zeros_then_pattern(a, pages, 3)
    want('munlock', k.libc.munlock(a, pages * k.PS), 0)
    k.munmap(a, pages)


def s_prot_none(rng, mode, pages):
    fd = k.kopen(DEV)
    a = mapped(fd, pages, prot=0)
    os.close(fd)
    want('touch under PROT_NONE', k.touch_status(a, 'read'), 'SIGSEGV')
    want('mprotect(RW)', k.libc.mprotect(a, pages * k.PS, k.R | k.W), 0)
    zeros_then_pattern(a, pages, 5)
    k.munmap(a, pages)


def s_map_fixed(rng, mode, pages):
    pages = max(pages, 2)
    fd = k.kopen(DEV)
    a = mapped(fd, pages)
    k.fill(a, pages, 1)
    lo = rng.randrange(pages)
    n = rng.randrange(1, pages - lo + 1)
    b = k.libc.mmap(a + lo * k.PS, n * k.PS, k.R | k.W, k.SHARED | k.MAP_FIXED, fd, 0)
    want('MAP_FIXED address', b, a + lo * k.PS)
    want('the new pages read zero', [k.byte_at(a, i) for i in range(lo, lo + n)], [0] * n)
    rest = [i for i in range(pages) if not lo <= i < lo + n]
    want('the old pages around keep their data', [k.byte_at(a, i) for i in rest],
         [(1 + i) & 0xff for i in rest])
    k.munmap(a, pages)
    os.close(fd)


def s_threads(rng, mode, pages):
    fd = k.kopen(DEV)
    errors = []
    iters = rng.randrange(2, 6)

    def work(t):
        for it in range(iters):
            a, res = k.mmap(fd, pages)
            if a is None:
                errors.append(f'thread {t} iteration {it}: {res}')
                return
            if ctypes.string_at(a + pages * k.PS - 1, 1)[0] != 0:
                errors.append(f'thread {t} iteration {it}: fresh page not zero')
            k.libc.memset(a, t + 1, pages * k.PS)
            if ctypes.string_at(a + pages * k.PS - 1, 1)[0] != t + 1:
                errors.append(f'thread {t} iteration {it}: data')
            k.munmap(a, pages)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(rng.randrange(2, 5))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    os.close(fd)
    want('thread errors', errors, [])


def s_multi_fd(rng, mode, pages):
    held = []
    for o in range(rng.randrange(2, 5)):
        fd = k.kopen(DEV)
        n = rng.randrange(1, pages + 1)
        a = mapped(fd, n)
        k.libc.memset(a, o + 1, n * k.PS)
        held.append((a, n, o + 1))
        os.close(fd)
    rng.shuffle(held)
    for a, n, v in held:
        want('data of a mapping whose fd is closed', ctypes.string_at(a + n * k.PS - 1, 1)[0], v)
        k.munmap(a, n)


def s_rig_kill(rng, mode, pages):
    """The seed's rig, SIGKILLed at a random phase (or let finish)."""
    rig = os.path.join(os.environ['KEX_TOP'], 'build', 'bin', 'mmap_test')
    phase = rng.choice(['mapped', 'writing', 'written', 'finish'])
    p = subprocess.Popen([rig, DEV, str(pages), '--mode', mode], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         preexec_fn=k.no_core)

    def until(prefix):
        seen = []
        for line in p.stdout:
            seen.append(line.rstrip())
            if line.startswith(prefix):
                return
        raise ScenarioFailed(f'the rig never printed {prefix!r}: {seen}')

    until('press a key to exercise memory write')
    if phase == 'mapped':
        p.kill()
    else:
        p.stdin.write('\n')
        p.stdin.flush()
        if phase != 'writing':
            until('press a key to terminate')
            if phase == 'finish':
                p.stdin.write('\n')
                p.stdin.flush()
            else:
                p.kill()
        else:
            p.kill()
    rest = p.stdout.read()
    rc = p.wait()
    if phase == 'finish':
        want(f'rig exit status (output: {rest!r})', rc, 0)
    else:
        expect_in('rig exit status', rc, (-signal.SIGKILL, 0))


def s_rejected(rng, mode, pages):
    """A request kex refuses, with its errno (kex_mmap_check); nothing kept."""
    fd = k.kopen(DEV)
    case = rng.choice(['offset', 'private', 'exec', 'too_many', 'zero', 'drop_policy'])
    if case == 'offset':
        a, res = k.mmap(fd, pages, off=k.PS)
        want('mmap at offset 1 page', res, 'EINVAL')
    elif case == 'private':
        a, res = k.mmap(fd, pages, flags=k.PRIVATE)
        want('MAP_PRIVATE', res, 'EINVAL')
    elif case == 'exec':
        a, res = k.mmap(fd, pages, prot=k.R | k.W | k.X)
        want('PROT_EXEC', res, 'EPERM')
    elif case == 'too_many':
        a, res = k.mmap(fd, 65537)
        want('65537 pages (max_pages 65536)', res, 'E2BIG')
    elif case == 'zero':
        a, res = k.mmap(fd, 0)
        want('0 bytes', res, 'EINVAL')
    else:  # fault and pfn mappings need kex to hold the pages
        k.param_write('ref_policy', 'drop')
        k.set_mode(fd, rng.choice(['fault', 'pfn']))
        a, res = k.mmap(fd, pages)
        want('mode fault/pfn with ref_policy=drop', res, 'EINVAL')
    os.close(fd)


SCENARIOS = {
    'plain': s_plain, 'partial_munmap': s_partial_munmap, 'fork': s_fork, 'mremap': s_mremap,
    'dontneed': s_dontneed, 'mlock': s_mlock, 'prot_none': s_prot_none,
    'map_fixed': s_map_fixed, 'threads': s_threads, 'multi_fd': s_multi_fd,
    'rig_kill': s_rig_kill, 'rejected': s_rejected,
}


def draw(seed):
    """The iteration's parameters, from its seed alone."""
    rng = random.Random(seed)
    mode = rng.choice(k.MODES)
    # fault and pfn need ref_policy=keep (s_rejected checks that drop is refused)
    policy = rng.choice(POLICIES) if mode in ('insert', 'batch') else 'keep'
    return rng, policy, mode, rng.choice(sorted(SCENARIOS)), rng.choice(SIZES)


# --- the traced command: a batch of iterations ------------------------------------

def counters():
    return {n: k.counter(n) for n in ('pages_allocated', 'pages_freed', 'pages_live', 'mappings',
                                      'pages_leaked_injected')}


def settled():
    """kex's counters once the frees have landed (they lag unmap a little)."""
    for _ in range(50):
        c = counters()
        if c['pages_live'] == 0 and c['mappings'] == 0 and c['pages_allocated'] == c['pages_freed']:
            break
        time.sleep(0.1)
    return c


def kmsg_mark(text):
    with open('/dev/kmsg', 'w') as f:
        f.write(text + '\n')


def bad_kernel_log_since(mark):
    out = subprocess.run(['dmesg'], capture_output=True, text=True, check=True).stdout
    out = out[out.rfind(mark) + len(mark):] if mark in out else out
    return [ln for ln in out.splitlines() if BAD_KERNEL_LOG.search(ln)]


def batch(first, count):
    """Iterations FIRST .. FIRST+COUNT-1 in this process (kextrace's command).
    After each: kex's counters balanced, no injected leak, kernel log clean.
    One line per iteration: 'iteration SEED ok|FAIL PAGES DT WHAT [problems]'."""
    for seed in range(first, first + count):
        rng, policy, mode, scenario, pages = draw(seed)
        what = f'{scenario} mode={mode} policy={policy} pages={pages}'
        k.param_write('ref_policy', policy)
        os.environ['KEXPY_MODE'] = mode
        before = counters()
        mark = f'kex-stress seed {seed}'
        kmsg_mark(mark)
        t0 = time.monotonic()
        problems = []
        try:
            SCENARIOS[scenario](rng, mode, pages)
        except ScenarioFailed as e:
            problems.append(f'scenario: {e}')
        after = settled()
        if after['pages_live'] or after['mappings'] or after['pages_allocated'] != after['pages_freed']:
            problems.append(f'kex counters not balanced: {after}')
        if after['pages_leaked_injected'] != before['pages_leaked_injected']:
            problems.append('kex injected leaks (inject_* parameters set?)')
        bad = bad_kernel_log_since(mark)
        if bad:
            problems.append('kernel log: ' + ' | '.join(bad[:5]))
        alloc = after['pages_allocated'] - before['pages_allocated']
        verdict = 'FAIL' if problems else 'ok'
        print(f'iteration {seed} {verdict} {alloc} {time.monotonic() - t0:.1f} {what}'
              + ''.join(f'\n    ! {p}' for p in problems), flush=True)
        if problems:
            return 3
    return 0


# --- the driver: kextrace --leaks sessions ---------------------------------------

def session(first, count, out):
    """One kextrace --leaks over a batch; True when the batch and the
    tracer's verdict are clean. Prints one line per iteration."""
    j = os.path.join(out, 'leaks.json')
    try:
        os.unlink(j)
    except FileNotFoundError:
        pass
    t0 = time.monotonic()
    p = subprocess.run(['kextrace', '--leaks', '--json', j, '--', sys.executable,
                        os.path.abspath(__file__), 'batch', str(first), str(count)],
                       capture_output=True, text=True, timeout=120 + 60 * count)
    dt = time.monotonic() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith(('iteration ', '    ! '))]
    print('\n'.join(lines), flush=True)
    done = [ln.split() for ln in lines if ln.startswith('iteration ')]
    problems = []
    if len(done) != count or any(d[2] != 'ok' for d in done):
        problems.append(f'{sum(d[2] == "ok" for d in done)} of {count} iterations passed')
    if p.returncode != 0:
        problems.append(f'kextrace --leaks exit status {p.returncode}')
    try:
        with open(j) as f:
            L = json.load(f)['leaks']
        not_freed = [(pg['index'], pg['verdict']) for pg in L['pages'] if pg['verdict'] != 'freed']
        if L['bugs'] or not_freed:
            problems.append(f"kextrace: {L['bugs']} bugs; pages not freed: {not_freed[:8]}")
        if L['events_lost']:
            problems.append(f"kextrace: {L['events_lost']} events lost")
        allocated = sum(int(d[3]) for d in done)
        if len(L['pages']) != allocated:
            problems.append(f"kextrace saw {len(L['pages'])} page lives, kex allocated {allocated}")
        seen = len(L['pages'])
    except (OSError, ValueError, KeyError) as e:
        problems.append(f'no leaks report from kextrace: {e}')
        seen = None
    head = f'session seeds {first}..{first + count - 1}: {seen} pages traced, {dt:.1f} s'
    if problems:
        print(f'FAIL {head}', flush=True)
        for pr in problems:
            print('    ' + pr, flush=True)
        tail = p.stderr.strip().splitlines()[-15:]
        if tail:
            print('    kextrace stderr:\n' + '\n'.join('      | ' + t for t in tail), flush=True)
        return False, done
    print(f'ok   {head}', flush=True)
    return True, done


def run(args):
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), 'little')
    os.makedirs(args.out, exist_ok=True)
    print(f'stress: {args.iterations} iterations from seed {args.seed}, '
          f'{args.per_trace} per kextrace session, on {os.uname().release}', flush=True)
    t0 = time.monotonic()
    per, pages = {}, 0
    for first in range(args.seed, args.seed + args.iterations, args.per_trace):
        count = min(args.per_trace, args.seed + args.iterations - first)
        ok, done = session(first, count, args.out)
        for d in done:
            per[d[5]] = per.get(d[5], 0) + 1
            pages += int(d[3])
        if not ok:
            print(f'stress: a session failed; replay its iterations one by one with: '
                  f'--seed {first} --iterations {count} --per-trace 1', flush=True)
            return 1
    dt = time.monotonic() - t0
    print(f'stress: {args.iterations} iterations passed in {dt:.0f} s '
          f'({dt / args.iterations:.1f} s each), {pages} kex pages, 0 leaked, '
          f'0 kernel warnings; scenarios: {dict(sorted(per.items()))}', flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description='randomized kex scenarios under kextrace --leaks')
    sub = ap.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('run')
    r.add_argument('--iterations', type=int, required=True)
    r.add_argument('--seed', type=int)
    r.add_argument('--per-trace', type=int, default=1,
                   help='iterations per kextrace --leaks session (default 1)')
    r.add_argument('--out', default='/tmp/kex-stress')
    b = sub.add_parser('batch')
    b.add_argument('first', type=int)
    b.add_argument('count', type=int)
    a = ap.parse_args()
    if a.cmd == 'batch':
        return batch(a.first, a.count)
    if a.iterations < 1 or a.per_trace < 1:
        ap.error('--iterations and --per-trace must be at least 1')
    return run(a)


if __name__ == '__main__':
    sys.exit(main())
