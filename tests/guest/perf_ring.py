#!/usr/bin/env python3
# tests/guest/perf_ring.py: a perf event's ring buffer, the real in-tree
# driver that maps its pages on fault (kernel/events/core.c: perf_mmap
# allocates the ring, perf_mmap_fault hands each page back in vmf->page at
# its first touch; the pages are freed when the last mapping and the event
# are gone, after an RCU grace period).
#   python3 tests/guest/perf_ring.py [DATA_PAGES]
# Opens a software dummy event on itself, mmaps 1 + DATA_PAGES pages (a
# power of two, default 4) shared read-write, reads every page once (a read
# fault each; a data page is never writable), writes the user page's
# data_tail (its write-protect fault: page_mkwrite, no new page), munmaps,
# then closes the event. Prints what it did; exit 0.
import ctypes, mmap, os, struct, sys

NR_PERF_EVENT_OPEN = 298  # x86_64
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY = 1, 9
PERF_ATTR_SIZE_VER0 = 64

data = int(sys.argv[1]) if len(sys.argv) > 1 else 4
if data < 1 or data & (data - 1):
    sys.exit(f'perf_ring.py: DATA_PAGES must be a power of two, not {data}')

# struct perf_event_attr, version 0 (64 bytes): type, size, config, then
# zeros (sample_period, sample_type, read_format, flags: not disabled).
attr = struct.pack('IIQ', PERF_TYPE_SOFTWARE, PERF_ATTR_SIZE_VER0, PERF_COUNT_SW_DUMMY)
attr += bytes(PERF_ATTR_SIZE_VER0 - len(attr))
buf = ctypes.create_string_buffer(attr, len(attr))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
fd = libc.syscall(ctypes.c_long(NR_PERF_EVENT_OPEN), buf, ctypes.c_long(0), ctypes.c_long(-1),
                  ctypes.c_long(-1), ctypes.c_ulong(0))
if fd < 0:
    sys.exit(f'perf_ring.py: perf_event_open: {os.strerror(ctypes.get_errno())}')
ps = mmap.PAGESIZE
size = (1 + data) * ps
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
touched = sum(m[i * ps] for i in range(1 + data))  # one read fault per page
m[1032:1040] = struct.pack('Q', 0)  # data_tail (struct perf_event_mmap_page): a write fault, mkwrite
print(f'perf_ring.py: ring of 1 + {data} x {ps} mapped, every page read ({touched}), '
      f'event fd inode {os.fstat(fd).st_ino}', flush=True)
m.close()
os.close(fd)
print('perf_ring.py: munmapped, event closed', flush=True)
