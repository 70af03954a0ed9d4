#!/usr/bin/env python3
# tests/guest/vgem.py: a DRM dumb buffer of the vgem driver, the pfn-at-fault
# mapping the drivers suite follows (drivers/gpu/drm/vgem with the GEM shmem
# helpers: drm_gem_shmem_fault maps each page of the buffer's shmem pages
# with vmf_insert_pfn at its first touch, into a VM_PFNMAP mapping: special
# PTEs, no reference, no rmap).
#   python3 tests/guest/vgem.py PAGES
# Needs the vgem module loaded (modprobe vgem). Creates a dumb buffer of
# PAGES pages, mmaps it, writes to every page, reads every page back, munmaps,
# destroys the buffer and closes the device. Prints what it did; exit 0.
# (/proc/self/pagemap cannot show these pfns: its walk skips VM_PFNMAP.)
import ctypes, fcntl, glob, mmap, os, struct, sys

# include/uapi/drm/drm.h: DRM_IOWR(nr, type) = _IOWR('d', nr, type)
def drm_iowr(nr, size):
    return (3 << 30) | (size << 16) | (ord('d') << 8) | nr

CREATE_DUMB = drm_iowr(0xB2, 32)   # struct drm_mode_create_dumb
MAP_DUMB = drm_iowr(0xB3, 16)      # struct drm_mode_map_dumb
DESTROY_DUMB = drm_iowr(0xB4, 4)   # struct drm_mode_destroy_dumb


def vgem_card():
    # vgem's device is a platform device named vgem, bound to no driver
    for card in sorted(glob.glob('/sys/class/drm/card[0-9]*')):
        if os.path.basename(os.path.realpath(os.path.join(card, 'device'))) == 'vgem':
            return '/dev/dri/' + os.path.basename(card)
    sys.exit('vgem.py: no vgem card under /sys/class/drm (modprobe vgem)')


if len(sys.argv) != 2 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
    sys.exit(f'vgem.py: usage: vgem.py PAGES (got {sys.argv[1:]})')
pages = int(sys.argv[1])
ps = mmap.PAGESIZE
dev = vgem_card()
fd = os.open(dev, os.O_RDWR)
# height = pages rows of one page each (width ps / 4 at 32 bpp)
req = bytearray(struct.pack('IIIIIIQ', pages, ps // 4, 32, 0, 0, 0, 0))
fcntl.ioctl(fd, CREATE_DUMB, req)
_, _, _, _, handle, pitch, size = struct.unpack('IIIIIIQ', req)
mreq = bytearray(struct.pack('IIQ', handle, 0, 0))
fcntl.ioctl(fd, MAP_DUMB, mreq)
offset = struct.unpack('IIQ', mreq)[2]
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
for i in range(pages):
    m[i * ps + ps - 1] = (i + 1) & 0xff
back = [m[i * ps + ps - 1] for i in range(pages)]
if back != [(i + 1) & 0xff for i in range(pages)]:
    sys.exit(f'vgem.py: read back {back}')
view = ctypes.c_char.from_buffer(m)
addr = ctypes.addressof(view)
del view  # an exported buffer cannot be closed
print(f'vgem.py: {dev} dumb buffer handle {handle} of {size // ps} x {ps} (pitch {pitch}) '
      f'mapped at {addr:#x}, written, read back', flush=True)
m.close()
fcntl.ioctl(fd, DESTROY_DUMB, struct.pack('I', handle))
os.close(fd)
print('vgem.py: munmapped, buffer destroyed, device closed', flush=True)
