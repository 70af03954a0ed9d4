#!/usr/bin/env python3
# tests/guest/ring.py: an AF_PACKET ring, the real in-tree driver the drivers
# suite follows (net/packet/af_packet.c: packet_mmap inserts the ring's pages
# with vm_insert_page; they are allocated at setsockopt and freed when the
# socket closes, not at munmap).
#   python3 tests/guest/ring.py [rx|tx] [VERSION] [BLOCKS] [--hold SECONDS] [--wait FIFO]
# Sets PACKET_VERSION (1..3; TPACKET_V3 for rx only), a ring of BLOCKS blocks
# of one page each (with --wait: prints "ring set", then reads a line from
# FIFO before going on), mmaps it, writes to every page, munmaps, then closes the
# socket (after SECONDS with --hold). Prints what it did; exit 0.
import mmap, os, socket, struct, sys, time

SOL_PACKET = 263
PACKET_RX_RING, PACKET_VERSION, PACKET_TX_RING = 5, 10, 13
ETH_P_ALL = 3

args = [a for a in sys.argv[1:] if not a.startswith('--')]
hold = 0.0
if '--hold' in sys.argv:
    hold = float(sys.argv[sys.argv.index('--hold') + 1])
    args.remove(sys.argv[sys.argv.index('--hold') + 1])
wait = None
if '--wait' in sys.argv:
    wait = sys.argv[sys.argv.index('--wait') + 1]
    args.remove(wait)
kind = args[0] if args else 'rx'
version = int(args[1]) if len(args) > 1 else 2
blocks = int(args[2]) if len(args) > 2 else 8
if kind not in ('rx', 'tx') or version not in (1, 2, 3) or (kind == 'tx' and version == 3):
    sys.exit(f'ring.py: bad arguments {sys.argv[1:]} (rx|tx, version 1..3, v3 rx only)')

ps = mmap.PAGESIZE
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.setsockopt(SOL_PACKET, PACKET_VERSION, version - 1)  # TPACKET_V1 is 0
frame = ps // 2
req = struct.pack('IIII', ps, blocks, frame, blocks * ps // frame)
if version == 3:  # struct tpacket_req3: retire_blk_tov, sizeof_priv, feature_req_word
    req += struct.pack('III', 10, 0, 0)
s.setsockopt(SOL_PACKET, PACKET_RX_RING if kind == 'rx' else PACKET_TX_RING, req)
if wait:
    print('ring.py: ring set', flush=True)
    with open(wait) as f:
        f.readline()
m = mmap.mmap(s.fileno(), blocks * ps, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(blocks):  # the kernel filled the frame headers; write past them
    m[i * ps + ps - 1] = 0x5a
print(f'ring.py: {kind} TPACKET_V{version} ring of {blocks} x {ps} mapped, written, '
      f'socket inode {os.fstat(s.fileno()).st_ino}', flush=True)
m.close()
if hold:
    print(f'ring.py: munmapped, holding the socket for {hold} s', flush=True)
    time.sleep(hold)
s.close()
print('ring.py: munmapped, socket closed', flush=True)
