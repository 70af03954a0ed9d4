#!/usr/bin/env python3
# tests/guest/kexlab.py: raw system calls on the kex device for the in-guest
# suites (mmap flags and offsets, mremap, mprotect, fork, threads, ...):
#   python3 tests/guest/kexlab.py CMD ARGS...
# Each command prints what it saw ("ok: ..." lines, an errno name, or
# "FAILED: ...", then exit 1).
# KEXPY_MODE=insert|batch|fault|pfn in the environment: every kex file the
# commands open is switched to that mapping mode (KEX_IOC_SET_MODE) first.
import ctypes, errno, fcntl, os, resource, signal, struct, sys, threading

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PS = os.sysconf('SC_PAGE_SIZE')
FAILED = ctypes.c_void_p(-1).value
R, W, X = 1, 2, 4
SHARED, PRIVATE = 1, 2

MODES = ['insert', 'batch', 'fault', 'pfn']
# kex_uapi.h: _IOW('k', 1, __u32), _IOR('k', 2, __u32)
KEX_IOC_SET_MODE = (1 << 30) | (4 << 16) | (ord('k') << 8) | 1
KEX_IOC_GET_MODE = (2 << 30) | (4 << 16) | (ord('k') << 8) | 2
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
libc.memcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
MADV_DONTNEED = 4

def set_mode(fd, mode):
    fcntl.ioctl(fd, KEX_IOC_SET_MODE, struct.pack('I', MODES.index(mode)))

def get_mode(fd):
    return MODES[struct.unpack('I', fcntl.ioctl(fd, KEX_IOC_GET_MODE, b'\0' * 4))[0]]

def kopen(dev):
    """Open the kex device; switch it to $KEXPY_MODE if that is set."""
    fd = os.open(dev, os.O_RDWR)
    if os.environ.get('KEXPY_MODE'):
        set_mode(fd, os.environ['KEXPY_MODE'])
    return fd

def err():
    return errno.errorcode[ctypes.get_errno()]

def counter(name):
    with open('/sys/class/kex/kex/' + name) as f:
        return int(f.read())

def check(what, got, want):
    if got != want:
        print(f'FAILED: {what}: expected {want}, got {got}')
        sys.exit(1)
    print(f'ok: {what} = {want}')

def mmap(fd, pages, prot=R | W, flags=SHARED, off=0):
    a = libc.mmap(None, pages * PS, prot, flags, fd, off)
    return (None, err()) if a == FAILED else (a, 'ok')

def munmap(a, pages):
    if libc.munmap(a, pages * PS) != 0:
        print('FAILED: munmap: ' + err())
        sys.exit(1)

def req(dev, pages, *opts):
    """One mmap request; prints ok or the errno name."""
    prot, flags, off = R | W, SHARED, 0
    for o in opts:
        if o == 'private': flags = PRIVATE
        elif o == 'exec': prot |= X
        elif o == 'ro': prot = R
        elif o.startswith('offset='): off = int(o[7:]) * PS
    fd = kopen(dev)
    a, res = mmap(fd, int(pages), prot, flags, off)
    if a is not None:
        munmap(a, int(pages))
    os.close(fd)
    print(res)

def mremap_grow(dev):
    fd = kopen(dev)
    a, res = mmap(fd, 2)
    b = libc.mremap(a, 2 * PS, 4 * PS, 1)  # MREMAP_MAYMOVE
    print(err() if b == FAILED else 'ok')
    munmap(a if b == FAILED else b, 2 if b == FAILED else 4)
    os.close(fd)

def mprotect_exec(dev):
    fd = kopen(dev)
    a, res = mmap(fd, 1)
    print(err() if libc.mprotect(a, PS, R | X) != 0 else 'ok')
    munmap(a, 1)
    os.close(fd)

def rw(dev, op):
    fd = kopen(dev)
    try:
        os.read(fd, 1) if op == 'read' else os.write(fd, b'x')
        print('ok')
    except OSError as e:
        print(errno.errorcode[e.errno])
    os.close(fd)

def fork_split(dev):
    """Split a mapping, fork, unmap in the parent first: pages live until
    the child's VMAs close, then are released once."""
    m0 = counter('mappings')
    fd = kopen(dev)
    a, res = mmap(fd, 8)
    check('mmap 8 pages', res, 'ok')
    os.close(fd)
    for i in range(8):
        ctypes.memset(a + i * PS, i + 1, PS)
    check('mappings after mmap', counter('mappings'), m0 + 1)
    munmap(a + 2 * PS, 1)
    check('mappings after unmapping page 2 (split)', counter('mappings'), m0 + 2)
    check('pages_live after the split', counter('pages_live'), 8)
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        ctypes.memset(a, 0xab, 1)
        os.write(w, b'.')
        os.read(r2, 1)
        ok = all(ctypes.string_at(a + i * PS + 1, 1)[0] == i + 1 for i in (0, 1, 3, 7))
        os._exit(0 if ok else 3)
    os.read(r, 1)
    check("child's write seen by the parent", ctypes.string_at(a, 1)[0], 0xab)
    check('mappings with the child', counter('mappings'), m0 + 4)
    munmap(a, 2)
    munmap(a + 3 * PS, 5)
    check('mappings after the parent unmapped', counter('mappings'), m0 + 2)
    check('pages_live while the child maps them', counter('pages_live'), 8)
    os.write(w2, b'.')
    _, status = os.waitpid(pid, 0)
    check('child read its pages intact', os.waitstatus_to_exitcode(status), 0)
    check('mappings after the child exited', counter('mappings'), m0)
    check('pages_live after the last VMA closed', counter('pages_live'), 0)

def multi(dev, opens, maps):
    """Several opens, several mmaps each; fds closed while mapped."""
    opens, maps = int(opens), int(maps)
    held, pages = [], 0
    for o in range(opens):
        fd = kopen(dev)
        for m in range(maps):
            n = o * maps + m + 1
            a, res = mmap(fd, n)
            check(f'open {o} mmap {m} ({n} pages)', res, 'ok')
            ctypes.memset(a, n, n * PS)
            held.append((a, n))
            pages += n
        os.close(fd)
    check('mappings', counter('mappings'), opens * maps)
    check('pages_live', counter('pages_live'), pages)
    for a, n in held:
        check(f'data of the {n}-page mapping', ctypes.string_at(a + n * PS - 1, 1)[0], n)
        munmap(a, n)
    check('mappings after munmap', counter('mappings'), 0)

def threads(dev, nthreads, iters, pages):
    nthreads, iters, pages = int(nthreads), int(iters), int(pages)
    fd = kopen(dev)
    errors = []
    def work(t):
        for i in range(iters):
            a, res = mmap(fd, pages)
            if a is None:
                errors.append(f'thread {t} iteration {i}: {res}')
                return
            ctypes.memset(a, t + 1, pages * PS)
            if ctypes.string_at(a + pages * PS - 1, 1)[0] != t + 1:
                errors.append(f'thread {t} iteration {i}: data')
            munmap(a, pages)
    ts = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
    for t in ts: t.start()
    for t in ts: t.join()
    os.close(fd)
    check('thread errors', errors, [])

def ioctls(dev):
    """KEX_IOC_GET_MODE / KEX_IOC_SET_MODE on one file, and bad requests."""
    fd = os.open(dev, os.O_RDWR)
    print('initial mode: ' + get_mode(fd))
    for m in MODES:
        set_mode(fd, m)
        check(f'mode after setting {m}', get_mode(fd), m)
    for what, req, arg in (('mode 4', KEX_IOC_SET_MODE, struct.pack('I', 4)),
                           ('mode 0xffffffff', KEX_IOC_SET_MODE, struct.pack('I', 0xffffffff)),
                           ('a NULL pointer', KEX_IOC_SET_MODE, 0),
                           ('GET to a NULL pointer', KEX_IOC_GET_MODE, 0),
                           ('an unknown request', KEX_IOC_SET_MODE + 7, struct.pack('I', 0))):
        try:
            fcntl.ioctl(fd, req, arg)
            res = 'ok'
        except OSError as e:
            res = errno.errorcode[e.errno]
        print(f'{what}: {res}')
    check('mode after the bad requests', get_mode(fd), MODES[-1])
    os.close(fd)

def mode_of_new_open(dev):
    fd = os.open(dev, os.O_RDWR)
    print(get_mode(fd))
    os.close(fd)

def pagemap_pfns(pid, addr, pages):
    """PFN of each page of [addr, addr + pages pages) in process pid, or -
    when not present."""
    out = []
    with open(f'/proc/{pid}/pagemap', 'rb') as f:
        for i in range(int(pages)):
            f.seek((int(addr, 0) // PS + i) * 8)
            v = struct.unpack('<Q', f.read(8))[0]
            out.append(hex(v & ((1 << 55) - 1)) if v >> 63 else '-')
    return out

def pagemap(pid, addr, pages):
    print(' '.join(pagemap_pfns(pid, addr, pages)))

def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

def touch_status(a, op):
    """Touch one byte at a in a child; 'ok' or the signal that killed it."""
    pid = os.fork()
    if pid == 0:
        no_core()
        if op == 'write':
            libc.memset(a, 0x5a, 1)
        else:
            buf = ctypes.create_string_buffer(1)
            libc.memcpy(buf, a, 1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return 'ok' if os.WEXITSTATUS(status) == 0 else f'exit {os.WEXITSTATUS(status)}'

def map_counted(dev, pages):
    """A new MAP_SHARED mapping of PAGES pages of DEV (the file closed again),
    and kex's pages_allocated before it."""
    fd = kopen(dev)
    a0 = counter('pages_allocated')
    a, res = mmap(fd, pages)
    check('mmap', res, 'ok')
    os.close(fd)
    return a, a0

def touch(dev, pages, index, op):
    """mmap PAGES pages, touch page INDEX in a child (read or write): prints
    ok or the signal, then the pages the module allocated."""
    pages, index = int(pages), int(index)
    a, a0 = map_counted(dev, pages)
    print(f'touch page {index}: ' + touch_status(a + index * PS, op))
    print(f'allocated: {counter("pages_allocated") - a0}')
    munmap(a, pages)

def fault_refault(dev, pages):
    """Mode fault: write every page, MADV_DONTNEED, read back: the same pages
    (pfns) come back with their data, nothing is allocated again."""
    pages = int(pages)
    a, a0 = map_counted(dev, pages)
    check('pages allocated by the mmap', counter('pages_allocated') - a0, 0)
    check('pages present before any touch', pagemap_pfns('self', hex(a), pages), ['-'] * pages)
    for i in range(pages):
        libc.memset(a + i * PS, i + 1, PS)
    check('pages allocated by the writes', counter('pages_allocated') - a0, pages)
    before = pagemap_pfns('self', hex(a), pages)
    check('every page present after the writes', '-' in before, False)
    check('distinct pfns', len(set(before)), pages)
    check('madvise(MADV_DONTNEED)', libc.madvise(a, pages * PS, MADV_DONTNEED), 0)
    check('pages present after MADV_DONTNEED', pagemap_pfns('self', hex(a), pages), ['-'] * pages)
    data = [ctypes.string_at(a + i * PS + PS - 1, 1)[0] for i in range(pages)]
    check('data after the refaults', data, [i + 1 for i in range(pages)])
    check('pfns after the refaults', pagemap_pfns('self', hex(a), pages), before)
    check('pages allocated in all', counter('pages_allocated') - a0, pages)
    munmap(a, pages)

def fault_race(dev, pages, nthreads, rounds):
    """Mode fault: NTHREADS threads fault the same fresh pages at once (each
    writes its own byte of every page); one page per index, shared by all."""
    pages, nthreads, rounds = int(pages), int(nthreads), int(rounds)
    for r in range(rounds):
        fd = kopen(dev)
        a0 = counter('pages_allocated')
        a, res = mmap(fd, pages)
        os.close(fd)
        if a is None:
            check(f'round {r}: mmap', res, 'ok')
        barrier = threading.Barrier(nthreads)

        def work(t):
            barrier.wait()
            for i in range(pages):
                if t % 2:
                    libc.memset(a + i * PS + t, t + 1, 1)
                else:
                    buf = ctypes.create_string_buffer(1)
                    libc.memcpy(buf, a + i * PS, 1)
                    libc.memset(a + i * PS + t, t + 1, 1)
        ts = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
        for t in ts: t.start()
        for t in ts: t.join()
        got = counter('pages_allocated') - a0
        if got != pages:
            check(f'round {r}: pages allocated', got, pages)
        want = bytes(range(1, nthreads + 1))
        bad = [i for i in range(pages) if ctypes.string_at(a + i * PS, nthreads) != want]
        if bad:
            check(f'round {r}: pages missing a thread\'s byte', bad, [])
        munmap(a, pages)
    print(f'ok: {rounds} rounds of {nthreads} threads on {pages} pages: one page per index')

def fault_fork(dev, pages):
    """Mode fault: fork before any touch; parent and child fault the same
    pages at once, each writing its byte: both see both bytes."""
    pages = int(pages)
    a, a0 = map_counted(dev, pages)
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    me = 2 if pid == 0 else 1
    if pid == 0:
        os.write(w, b'.')
    else:
        os.read(r, 1)
    for i in range(pages):
        libc.memset(a + i * PS + me, me, 1)
    if pid == 0:
        os.read(r2, 1)
        ok = all(ctypes.string_at(a + i * PS + 1, 2) == b'\x01\x02' for i in range(pages))
        os._exit(0 if ok else 3)
    os.write(w2, b'.')
    _, status = os.waitpid(pid, 0)
    check("the child saw both processes' bytes", os.waitstatus_to_exitcode(status), 0)
    check("the parent sees both processes' bytes",
          all(ctypes.string_at(a + i * PS + 1, 2) == b'\x01\x02' for i in range(pages)), True)
    check('pages allocated', counter('pages_allocated') - a0, pages)
    munmap(a, pages)

MAP_FIXED, MAP_LOCKED, MAP_POPULATE = 0x10, 0x2000, 0x8000

def param_write(name, value):
    with open('/sys/module/kex/parameters/' + name, 'w') as f:
        f.write(str(value))

def budget(dev):
    """max_pages_total=100: reservations, ENOMEM past it, release at the
    last close only."""
    fd = kopen(dev)
    a1, res = mmap(fd, 60)
    check('mmap 60 of 100', res, 'ok')
    check('pages_reserved', counter('pages_reserved'), 60)
    check('mmap 60 more', mmap(fd, 60)[1], 'ENOMEM')
    a2, res = mmap(fd, 40)
    check('mmap 40 more (exactly 100)', res, 'ok')
    check('mmap 1 more', mmap(fd, 1)[1], 'ENOMEM')
    check('pages_reserved at the limit', counter('pages_reserved'), 100)
    munmap(a2, 20)
    check('pages_reserved after unmapping half of the 40', counter('pages_reserved'), 100)
    check('mmap 1 with half of the 40 unmapped', mmap(fd, 1)[1], 'ENOMEM')
    munmap(a2 + 20 * PS, 20)
    check('pages_reserved after the 40 are gone', counter('pages_reserved'), 60)
    munmap(a1, 60)
    a3, res = mmap(fd, 100)
    check('mmap 100 once all is unmapped', res, 'ok')
    munmap(a3, 100)
    if os.environ.get('KEXPY_MODE') != 'fault':   # fault mode fails at the fault
        param_write('fail_at', 3)
        check('mmap 10 failing at page 3', mmap(fd, 10)[1], 'ENOMEM')
        param_write('fail_at', -1)
    check('pages_reserved at the end', counter('pages_reserved'), 0)
    os.close(fd)

def fill(a, pages, base):
    for i in range(pages):
        libc.memset(a + i * PS, base + i, PS)

def byte_at(a, i):
    return ctypes.string_at(a + i * PS + 7, 1)[0]

def map_fixed(dev):
    """MAP_FIXED over a kex mapping: whole, partial, and a failing one."""
    fd = kopen(dev)
    a, res = mmap(fd, 4)
    check('mmap 4', res, 'ok')
    fill(a, 4, 1)
    f0 = counter('pages_freed')
    b = libc.mmap(a, 4 * PS, R | W, SHARED | MAP_FIXED, fd, 0)
    check('MAP_FIXED over the whole mapping: address', b, a)
    check('the new mapping reads zeros', [byte_at(a, i) for i in range(4)], [0] * 4)
    check('mappings after MAP_FIXED', counter('mappings'), 1)
    check('the old pages were released', counter('pages_freed') - f0, 4)
    fill(a, 4, 1)
    b = libc.mmap(a + PS, 2 * PS, R | W, SHARED | MAP_FIXED, fd, 0)
    check('MAP_FIXED over pages 1-2: address', b, a + PS)
    check('mappings: two pieces of the old one and the new one', counter('mappings'), 3)
    check('bytes of pages 0-3', [byte_at(a, i) for i in range(4)], [1, 0, 0, 4])
    munmap(a, 4)
    check('mappings after munmap', counter('mappings'), 0)
    a, res = mmap(fd, 4)
    fill(a, 4, 1)
    param_write('max_pages', 3)
    b = libc.mmap(a, 4 * PS, R | W, SHARED | MAP_FIXED, fd, 0)
    res = err() if b == FAILED else 'ok'
    param_write('max_pages', 65536)
    check('MAP_FIXED refused (E2BIG) over a mapping', res, 'E2BIG')
    check('the old mapping is gone all the same', touch_status(a, 'read'), 'SIGSEGV')
    check('mappings after the refused MAP_FIXED', counter('mappings'), 0)
    os.close(fd)

def prot_none(dev):
    """PROT_NONE, then mprotect(PROT_READ|PROT_WRITE); PROT_READ, then RW."""
    fd = kopen(dev)
    a, res = mmap(fd, 4, prot=0)
    check('mmap PROT_NONE', res, 'ok')
    check('touch under PROT_NONE', touch_status(a, 'read'), 'SIGSEGV')
    check('mprotect(PROT_READ|PROT_WRITE)', libc.mprotect(a, 4 * PS, R | W), 0)
    check('reads zeros', [byte_at(a, i) for i in range(4)], [0] * 4)
    fill(a, 4, 1)
    check('data written', [byte_at(a, i) for i in range(4)], [1, 2, 3, 4])
    check('mprotect(PROT_NONE) again', libc.mprotect(a, 4 * PS, 0), 0)
    check('touch under PROT_NONE again', touch_status(a, 'read'), 'SIGSEGV')
    check('mprotect back to PROT_READ', libc.mprotect(a, 4 * PS, R), 0)
    check('data kept', [byte_at(a, i) for i in range(4)], [1, 2, 3, 4])
    check('write under PROT_READ', touch_status(a, 'write'), 'SIGSEGV')
    munmap(a, 4)
    a, res = mmap(fd, 2, prot=R)
    check('mmap PROT_READ', res, 'ok')
    check('mprotect(PROT_READ|PROT_WRITE)', libc.mprotect(a, 2 * PS, R | W), 0)
    fill(a, 2, 9)
    check('data written', [byte_at(a, i) for i in range(2)], [9, 10])
    munmap(a, 2)
    os.close(fd)

def dontneed(dev):
    """MADV_DONTNEED on page 1 of 4 written pages, then touch it."""
    fd = kopen(dev)
    a, res = mmap(fd, 4)
    check('mmap 4', res, 'ok')
    os.close(fd)
    fill(a, 4, 1)
    rc = libc.madvise(a + PS, PS, MADV_DONTNEED)
    print('madvise: ' + ('ok' if rc == 0 else err()))
    print('touch page 1: ' + touch_status(a + PS, 'read'))
    print('pages 0, 2, 3: ' + ' '.join(str(byte_at(a, i)) for i in (0, 2, 3)))
    if touch_status(a + PS, 'read') == 'ok':
        print(f'page 1: {byte_at(a, 1)}')
    munmap(a, 4)

def vm_lck():
    with open('/proc/self/status') as f:
        return next(l.split()[1] for l in f if l.startswith('VmLck:'))

def mlock(dev):
    """mlock, MAP_LOCKED and MAP_POPULATE on kex mappings."""
    fd = kopen(dev)
    a0 = counter('pages_allocated')
    a, res = mmap(fd, 4)
    check('mmap 4', res, 'ok')
    print(f'allocated by mmap: {counter("pages_allocated") - a0}')
    print('mlock: ' + ('ok' if libc.mlock(a, 4 * PS) == 0 else err()))
    print(f'VmLck: {vm_lck()} kB')
    print(f'allocated after mlock: {counter("pages_allocated") - a0}')
    fill(a, 4, 1)
    print('munlock: ' + ('ok' if libc.munlock(a, 4 * PS) == 0 else err()))
    munmap(a, 4)
    for name, flag in (('MAP_LOCKED', MAP_LOCKED), ('MAP_POPULATE', MAP_POPULATE)):
        a0 = counter('pages_allocated')
        a, res = mmap(fd, 4, flags=SHARED | flag)
        print(f'{name}: {res}, allocated by mmap: {counter("pages_allocated") - a0}, VmLck: {vm_lck()} kB')
        if a is not None:
            munmap(a, 4)
    os.close(fd)

def many_fds(dev, n):
    """N opens of the device, one 1-page mapping each, every fd closed while
    mapped."""
    n = int(n)
    m0, l0 = counter('mappings'), counter('pages_live')
    held = []
    for i in range(n):
        fd = kopen(dev)
        a, res = mmap(fd, 1)
        if a is None:
            check(f'mmap through fd {i}', res, 'ok')
        os.close(fd)
        libc.memset(a, i % 251 + 1, PS)
        held.append(a)
    check(f'mappings with {n} fds closed', counter('mappings') - m0, n)
    check('pages_live', counter('pages_live') - l0, n)
    check('data', [ctypes.string_at(a + 9, 1)[0] for a in held], [i % 251 + 1 for i in range(n)])
    for a in held:
        munmap(a, 1)
    check('mappings after munmap', counter('mappings') - m0, 0)
    fds = [kopen(dev) for _ in range(n)]
    check(f'{n} fds open at once', len(fds), n)
    for fd in fds:
        os.close(fd)

def open_as(dev, uid):
    """open() the device as UID in a child: ok (then mmap and write one
    page) or the errno."""
    pid = os.fork()
    if pid == 0:
        os.setgid(int(uid))
        os.setuid(int(uid))
        try:
            fd = kopen(dev)
        except OSError as e:
            print(errno.errorcode[e.errno], flush=True)
            os._exit(0)
        a, res = mmap(fd, 1)
        if a is not None:
            libc.memset(a, 1, PS)
            munmap(a, 1)
        print('ok' if res == 'ok' else 'mmap ' + res, flush=True)
        os._exit(0)
    os.waitpid(pid, 0)

COMMANDS = {'req': req, 'mremap_grow': mremap_grow, 'mprotect_exec': mprotect_exec,
 'read': lambda d: rw(d, 'read'), 'write': lambda d: rw(d, 'write'),
 'fork_split': fork_split, 'multi': multi, 'threads': threads,
 'ioctls': ioctls, 'mode_of_new_open': mode_of_new_open, 'pagemap': pagemap,
 'touch': touch, 'fault_refault': fault_refault, 'fault_race': fault_race,
 'fault_fork': fault_fork, 'budget': budget, 'map_fixed': map_fixed,
 'prot_none': prot_none, 'dontneed': dontneed, 'mlock': mlock,
 'many_fds': many_fds, 'open_as': open_as}

if __name__ == '__main__':   # tests/guest/stress.py imports the helpers
    COMMANDS[sys.argv[1]](*sys.argv[2:])
