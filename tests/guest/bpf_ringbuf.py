#!/usr/bin/env python3
# tests/guest/bpf_ringbuf.py: a BPF ring buffer map mapped by user space as
# libbpf does it, the real in-tree driver whose data pages are mapped twice
# (kernel/bpf/ringbuf.c: the ring is vmap'ed with its data pages twice in a
# row so that a record may wrap; the read-only mapping of the producer page
# and the data inserts them through remap_vmalloc_range -> vm_insert_page,
# each data page at two user addresses).
#   python3 tests/guest/bpf_ringbuf.py [DATA_PAGES]
# Creates a ring buffer map of DATA_PAGES pages (a power of two, default 2),
# maps its consumer page read-write and its producer page + data (twice)
# read-only, reads every page, unmaps both, closes the map. Prints what it
# did and the map fd's inode; exit 0.
import ctypes, mmap, os, struct, sys

NR_BPF = 321  # x86_64
BPF_MAP_CREATE, BPF_MAP_TYPE_RINGBUF = 0, 27

data = int(sys.argv[1]) if len(sys.argv) > 1 else 2
if data < 1 or data & (data - 1):
    sys.exit(f'bpf_ringbuf.py: DATA_PAGES must be a power of two, not {data}')
ps = mmap.PAGESIZE
# union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, the rest 0
attr = struct.pack('IIII', BPF_MAP_TYPE_RINGBUF, 0, 0, data * ps) + bytes(56)
buf = ctypes.create_string_buffer(attr, len(attr))
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
fd = libc.syscall(ctypes.c_long(NR_BPF), ctypes.c_long(BPF_MAP_CREATE), buf,
                  ctypes.c_ulong(len(attr)))
if fd < 0:
    sys.exit(f'bpf_ringbuf.py: BPF_MAP_CREATE: {os.strerror(ctypes.get_errno())}')
cons = mmap.mmap(fd, ps, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
prod = mmap.mmap(fd, ps + 2 * data * ps, mmap.MAP_SHARED, mmap.PROT_READ, offset=ps)
touched = cons[0] + sum(prod[i * ps] for i in range(1 + 2 * data))
print(f'bpf_ringbuf.py: ring of {data} data pages mapped (consumer page, producer page, '
      f'data twice), every page read ({touched}), map fd inode {os.fstat(fd).st_ino}',
      flush=True)
prod.close()
cons.close()
os.close(fd)
print('bpf_ringbuf.py: unmapped, map closed', flush=True)
