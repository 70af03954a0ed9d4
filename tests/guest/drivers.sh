# tests/guest/drivers.sh: kextrace on a real in-tree driver, not kex: an
# AF_PACKET ring (tests/guest/ring.py; net/packet/af_packet.c maps its pages
# with vm_insert_page in packet_mmap, allocated at setsockopt, freed when the
# socket closes). kex is not loaded in any case: every page here is one the
# kernel's own insert path showed kextrace.
#
#   rx_ring        RX ring of 8 x 4096 (TPACKET_V2): 8 pages, each inserted
#                  once (insert, rmap, PTE), zapped at munmap, freed at close
#                  from the socket's release; owner af_packet, the socket's
#                  file, 0 lost, exit 0
#   rx_ring_leaks  the same under --leaks: exit 0, 8 freed, no bug
#                  (each page's life starts at its mm_page_alloc, from
#                  setsockopt, linked with its call chain)
#   alloc_before_trace  the ring set up before kextrace -p attaches: its
#                  4 pages' allocation "unseen", their lives start at
#                  the insert
#   tx_and_v3      a TX ring (V2) and an RX ring (V3) of 4 blocks each in
#                  two processes of one traced tree: 2 mappings, 8 pages
#   kex_only       --kex-only: the ring's pages are not followed
#   perf_ring      a perf event's ring (tests/guest/perf_ring.py), mapped on
#                  fault: perf_mmap_fault hands each page back at its first
#                  touch; 1 + 4 pages, each installed once by the fault path
#                  (no insert), zapped at munmap; under --leaks all freed
#                  (after the event's close and an RCU grace period). 7.2
#                  has no perf_mmap_fault: perf_mmap maps the ring with
#                  remap_pfn_range, 5 pfn maps, no page life
#   bpf_ringbuf    a BPF ring buffer map mapped as libbpf does
#                  (tests/guest/bpf_ringbuf.py; remap_vmalloc_range): the
#                  consumer page, the producer page, and 2 data pages each
#                  inserted twice into one VMA: 4 lives, the data pages
#                  "mapped twice" (mapcount 2), all freed after the map's
#                  close (--leaks)
#   devmem_pfnmap  /dev/mem mapped at the BIOS area (0xf0000, 16 pages, as
#                  dmidecode does; drivers/char/mem.c: remap_pfn_range, on
#                  7.2 through mmap_prepare's remap_pfn_range_complete): a
#                  pfn map of the "mem" driver, pfns 0xf0-0xff, returned 0,
#                  no page life (special PTEs: no reference, no rmap)
#   vgem_pfn_fault a DRM dumb buffer of vgem (tests/guest/vgem.py, 8 pages;
#                  the GEM shmem helpers' drm_gem_shmem_fault (7.2:
#                  drm_gem_shmem_any_fault) maps each page
#                  with vmf_insert_pfn at its first touch): one driver
#                  mapping, owner vgem (its file operations; the mmap handler
#                  is drm's), 8 pfn maps at faults, each VM_FAULT_NOPAGE, no
#                  page life; the vDSO's vvar (also vmf_insert_pfn, no file)
#                  is not listed; --leaks: no bug
#   held_by_driver --leaks while the ring's socket stays open after the
#                  trace (its process outlives the traced shell): 4 pages
#                  unmapped, not freed, "held by af_packet: socket:[N]
#                  open", exit 0 (not a leak)
#   max_allocs     a ring of 100 pages allocated before its mmap with room
#                  for 64 remembered allocations (--max-allocs 64): exit 3,
#                  the loss counted as driver_allocs map full and the message
#                  naming --max-allocs, every page still followed, those not
#                  remembered "unseen"; with --max-allocs 4096: 0 lost, every
#                  allocation linked
#   filters        --driver af_packet follows them; --file of another socket
#                  leaves all 8 out (counted, no orphan); --driver of a
#                  module that is not loaded exits 2 listing the loaded ones

# drivers_trace OUT ARGS...: kextrace --json $CASE_TMP/OUT.json ARGS; text to
# OUT.txt (the driver section shown), kextrace's exit status must be 0.
drivers_trace() {
	local out=$1 rc=0
	shift
	kextrace --json "$CASE_TMP/$out.json" "$@" >"$CASE_TMP/$out.txt" 2>"$CASE_TMP/$out.err" || rc=$?
	sed -n '/^driver mappings/,/^$/p;/^pages/p;/^summary/p' "$CASE_TMP/$out.txt"
	if [ "$rc" != 0 ]; then
		cat "$CASE_TMP/$out.err" "$CASE_TMP/$out.txt"
		fail "kextrace exited $rc"
	fi
}

no_kex() {
	if grep -q '^kex ' /proc/modules; then
		fail "kex is loaded: this suite is about other drivers"
	fi
}

# ring_checks JSON N INODES: N pages of af_packet rings, each one's whole
# life, on the sockets with those inodes (space-separated).
ring_checks() {
	python3 tests/guest/jcheck.py "$1" "
N, INODES = $2, '$3'.split()
pages = j['pages']
maps = [m for m in j['mappings'] if m['driver']]
ok(len(pages) == N, f'{len(pages)} page lives, expected {N}')
ok(j['losses']['total'] == 0, f\"no events lost ({j['losses']['total']})\")
ok(j['summary']['anomalies'] == 0, f\"no anomaly ({j['anomalies'][:3]})\")
ok(len(maps) == len(INODES), f'{len(maps)} driver mappings, expected {len(INODES)}')
ok(not any(not m['driver'] for m in j['mappings']), 'no kex mapping')
for m in maps:
    o = m['owner']
    ok(o['name'] == 'af_packet', f\"owner {o['name']}\")
    ok(o['mmap'] == 'packet_mmap', f\"mmap handler {o['mmap']}\")
    ok(o['f_op'] == 'socket_file_ops', f\"f_op {o['f_op']}\")
    ok(o['file'] in [f'socket:[{i}]' for i in INODES], f\"file {o['file']} is one of the sockets {INODES}\")
    ok(o['inserted_by'] and o['inserted_by'].startswith('packet_mmap'), f\"inserted by {o['inserted_by']}\")
    ok(o['flags'].startswith('rw-s'), f\"vm flags {o['flags']}\")
    ok(m['lives'] == m['pages'], f\"{m['lives']} lives for its {m['pages']} pages\")
    ok(o['allocs_seen'] == m['lives'], f\"every life's allocation seen ({o['allocs_seen']})\")
    ok((o['allocated_by'] or '').split('+')[0] in ('packet_set_ring', 'alloc_pg_vec', 'alloc_one_pg_vec_page'),
       f\"allocated by {o['allocated_by']}\")
for p in sorted(pages, key=lambda p: (p['mapping'], p['index'] or 0)):
    name = f\"page {p['index']} of mapping {p['mapping']} (pfn {p['pfn']:#x})\"
    m = j['mappings'][p['mapping']] if p['mapping'] >= 0 else None
    ok(m is not None and m['driver'], name + ': in a driver mapping')
    ok(p['mode'] == 'driver' and not p['alloc_before_trace'], name + ': a driver page, its allocation linked')
    al = steps(p, 'kmem_alloc')
    chain = sym(al[0].get('stack')) if al else []
    ok(len(al) == 1 and p['steps'][0] is al[0] and al[0]['ts'] < steps(p, 'insert')[0]['ts'],
       name + ': its life starts at its mm_page_alloc, before the insert')
    ok(any(f in ('alloc_pg_vec', 'packet_set_ring', 'packet_setsockopt') for f in chain),
       name + f': allocated at setsockopt ({chain[:8]})')
    ok(p['complete'], name + f\": complete (missing {p['missing']})\")
    ok(m is not None and p['uaddr'] == hex(int(m['vm_start'], 16) + 4096 * p['index']), name + f\": at {p['uaddr']}\")
    ok(len(steps(p, 'insert')) == 1 and len(steps(p, 'rmap_add')) == 1, name + ': inserted once, one rmap')
    ok(p['pte'] is not None and p['pte']['present'] and p['pte']['pfn'] == p['pfn'] and p['pte']['rw'],
       name + ': PTE present, writable, maps the page')
    ins = steps(p, 'insert')[0]
    ok(ins['refcount'] is not None and ins['refcount'] >= 1 and steps(p, 'insert_ret')[0]['refcount'] == ins['refcount'] + 1,
       name + ': the insert took one reference')
    ok(p['zap']['context'] == 'munmap', name + f\": zapped at munmap ({p['zap']['context']})\")
    ok(p['free']['ts'] is not None and p['free']['ts'] > p['zap']['ts'], name + ': freed after its zap')
    fr = steps(p, 'page_free')
    chain = sym(fr[0].get('stack')) if fr else []
    ok(any(f in ('packet_release', 'free_pg_vec', 'packet_set_ring') for f in chain),
       name + f': freed from the socket\'s release ({chain[:6]})')
"
}

socket_inodes() {
	sed -n 's/.*socket inode \([0-9]*\).*/\1/p' "$1" | tr '\n' ' '
}

case_rx_ring() {
	no_kex
	drivers_trace rx -- python3 tests/guest/ring.py rx 2 8
	grep -q "^driver mappings" "$CASE_TMP/rx.txt" || fail "no driver mappings section"
	grep -q "af_packet\*  *socket:\[" "$CASE_TMP/rx.txt" || fail "no af_packet socket row"
	grep -Eq "allocated by (packet_set_ring|alloc_pg_vec|alloc_one_pg_vec_page)\+0x[0-9a-f]+ \(8 of its 8 lives\)" "$CASE_TMP/rx.txt" ||
		fail "no 'allocated by packet_set_ring+0x... (8 of its 8 lives)'"
	ring_checks "$CASE_TMP/rx.json" 8 "$(socket_inodes "$CASE_TMP/rx.txt")"
}

case_rx_ring_leaks() {
	no_kex
	drivers_trace leaks --leaks -- python3 tests/guest/ring.py rx 2 8
	python3 tests/guest/jcheck.py "$CASE_TMP/leaks.json" "
L = j['leaks']
ok(len(L['pages']) == 8, f\"{len(L['pages'])} page verdicts\")
ok(L['counts']['freed'] == 8, f\"8 freed: {L['counts']}\")
ok(L['bugs'] == 0, 'no leak, nothing freed while mapped')
ok(L['events_lost'] == 0, 'nothing lost')
"
	grep -q "^leaks: 8 freed" "$CASE_TMP/leaks.txt" || fail "no 'leaks: 8 freed' line"
}

# The ring set up before kextrace attaches (-p), mapped after: its pages'
# allocation is not in the trace, and each life says so ("unseen") and
# starts at its insert, complete otherwise.
case_alloc_before_trace() {
	no_kex
	mkfifo "$CASE_TMP/go"
	python3 tests/guest/ring.py rx 2 4 --wait "$CASE_TMP/go" >"$CASE_TMP/ring.out" &
	local ring=$! rc=0 i
	for i in $(seq 100); do grep -q "ring set" "$CASE_TMP/ring.out" && break; sleep 0.1; done
	kextrace -p $ring --json "$CASE_TMP/before.json" >"$CASE_TMP/before.txt" 2>"$CASE_TMP/before.err" &
	local k=$!
	wait_kextrace_started "$CASE_TMP/before.err"
	echo go >"$CASE_TMP/go"
	wait $ring
	wait $k || rc=$?
	cat "$CASE_TMP/ring.out"
	sed -n '/^pages/,/^pages, unmap/p' "$CASE_TMP/before.txt"
	expect_eq "$rc" 0 "kextrace -p exit status"
	grep -q "^  alloc@ unseen: a driver's page allocated before" "$CASE_TMP/before.txt" ||
		fail "the text does not say the allocation was unseen"
	python3 tests/guest/jcheck.py "$CASE_TMP/before.json" "
pages = j['pages']
ok(len(pages) == 4, f'{len(pages)} page lives')
for p in pages:
    name = f\"pfn {p['pfn']:#x}\"
    ok(p['alloc_before_trace'] and steps(p, 'kmem_alloc') == [], name + ': allocation unseen, no alloc step')
    ok(p['steps'][0]['kind'] == 'insert', name + f\": its life starts at the insert ({p['steps'][0]['kind']})\")
    ok(p['complete'], name + f\": complete (missing {p['missing']})\")
ok(j['losses']['total'] == 0 and j['summary']['anomalies'] == 0, 'nothing lost, no anomaly')
"
}

case_tx_and_v3() {
	no_kex
	drivers_trace two -- sh -c 'python3 tests/guest/ring.py tx 2 4 && python3 tests/guest/ring.py rx 3 4'
	ring_checks "$CASE_TMP/two.json" 8 "$(socket_inodes "$CASE_TMP/two.txt")"
}

case_perf_ring() {
	no_kex
	drivers_trace perf --leaks -- python3 tests/guest/perf_ring.py 4
	grep -q "perf\*  *anon_inode:\[perf_event\]" "$CASE_TMP/perf.txt" || fail "no perf row"
	# 7.x maps the whole ring at mmap (perf_mmap: remap_pfn_range), no fault
	if ! grep -q ' perf_mmap_fault$' /proc/kallsyms; then
		perf_ring_pfnmap
		return
	fi
	grep -q "mapped at fault by perf_mmap_fault" "$CASE_TMP/perf.txt" || fail "no 'mapped at fault by perf_mmap_fault'"
	python3 tests/guest/jcheck.py "$CASE_TMP/perf.json" "
pages = j['pages']
maps = [m for m in j['mappings'] if m['driver']]
ok(len(pages) == 5, f'{len(pages)} page lives, expected 1 + 4')
ok(j['losses']['total'] == 0, f\"no events lost ({j['losses']['total']})\")
ok(j['summary']['anomalies'] == 0, f\"no anomaly ({j['anomalies'][:3]})\")
ok(len(maps) == 1 and len(j['mappings']) == 1, f'one driver mapping ({len(maps)})')
o = maps[0]['owner']
ok(o['name'] == 'perf' and not o['module'], f\"owner {o['name']} (built in)\")
ok(o['file'] == 'anon_inode:[perf_event]', f\"file {o['file']}\")
ok(o['fault'] == 'perf_mmap_fault' and o['mapped_by'] == 'fault', f\"fault {o['fault']}, mapped by {o['mapped_by']}\")
ok(o['inserted_by'] is None, f\"no inserting caller ({o['inserted_by']})\")
ok((o['allocated_by'] or '').startswith(('perf_mmap', 'rb_alloc')) and o['allocs_seen'] == 5,
   f\"allocated by {o['allocated_by']}, {o['allocs_seen']} seen\")
for p in sorted(pages, key=lambda p: p['index']):
    name = f\"page {p['index']} (pfn {p['pfn']:#x})\"
    ok(p['mode'] == 'driver' and p['by_fault'], name + ': a driver page from its fault handler')
    chain = sym(steps(p, 'kmem_alloc')[0].get('stack')) if steps(p, 'kmem_alloc') else []
    ok(not p['alloc_before_trace'] and any(f.startswith(('rb_alloc', 'perf_mmap')) for f in chain),
       name + f': allocated by perf_mmap ({chain[:8]})')
    ok(p['complete'], name + f\": complete (missing {p['missing']})\")
    ok(p['uaddr'] == hex(int(maps[0]['vm_start'], 16) + 4096 * p['index']), name + f\": at {p['uaddr']}\")
    ok(steps(p, 'insert') == [] and len(steps(p, 'do_set_pte')) == 1, name + ': installed once by the fault path, never inserted')
    ok(len(steps(p, 'rmap_add')) == 1, name + ': one rmap')
    ok(p['pte'] is not None and p['pte']['present'] and p['pte']['pfn'] == p['pfn'] and not p['pte']['rw'],
       name + f\": PTE present, read-only (a read fault, page_mkwrite VMA), maps the page ({p['pte']})\")
    ok(p['zap']['context'] == 'munmap', name + f\": zapped at munmap ({p['zap']['context']})\")
    ok(p['free']['ts'] is not None and p['free']['ts'] > p['zap']['ts'], name + ': freed after its zap')
ok(sorted(p['index'] for p in pages) == list(range(5)), 'indexes 0..4')
L = j['leaks']
ok(L['counts']['freed'] == 5 and L['bugs'] == 0, f\"5 freed, no bug: {L['counts']}\")
"
}

# A kernel without perf_mmap_fault (7.2): perf_mmap maps the ring's 1 + 4
# pages with remap_pfn_range at mmap: pfn maps of the perf owner, special
# PTEs, no page life; --leaks has nothing to hold against it.
perf_ring_pfnmap() {
	grep -c "pfn map: pfn 0x[0-9a-f]* at 0x[0-9a-f]*, remap_pfn_range ok" "$CASE_TMP/perf.txt" |
		grep -qx 5 || { cat "$CASE_TMP/perf.txt"; fail "not 5 pfn map lines"; }
	python3 tests/guest/jcheck.py "$CASE_TMP/perf.json" "
maps = [m for m in j['mappings'] if m['driver']]
ok(len(maps) == 1 and len(j['mappings']) == 1, f'one driver mapping ({len(maps)})')
o, pm = maps[0]['owner'], maps[0]['pfn_maps']
ok(o['name'] == 'perf' and not o['module'] and o['file'] == 'anon_inode:[perf_event]', f\"owner {o['name']}, file {o['file']}\")
ok((o['inserted_by'] or '').startswith('perf_mmap'), f\"mapped by {o['inserted_by']}\")
ok(len(pm) == 5 and all(p['via'] == 'remap_pfn_range' and p['pages'] == 1 and p['ret'] == 0 for p in pm), f'5 pfn maps: {pm}')
ok(sorted(int(p['addr'], 16) for p in pm) == [int(maps[0]['vm_start'], 16) + 4096 * i for i in range(5)], 'one per page of the ring')
ok(j['pages'] == [], 'no page life: pfns behind special PTEs')
ok(j['losses']['total'] == 0 and j['summary']['anomalies'] == 0, 'nothing lost, no anomaly')
ok(j['leaks']['bugs'] == 0, f\"no leak: {j['leaks']['counts']}\")
"
}

case_bpf_ringbuf() {
	no_kex
	drivers_trace rb --leaks -- python3 tests/guest/bpf_ringbuf.py 2
	grep -q "complete, mapped twice" "$CASE_TMP/rb.txt" || fail "no 'mapped twice' story"
	python3 tests/guest/jcheck.py "$CASE_TMP/rb.json" "
pages, maps = j['pages'], [m for m in j['mappings'] if m['driver']]
ok(len(maps) == 2 and len(j['mappings']) == 2, f'two driver mappings, consumer and producer ({len(maps)})')
for m in maps:
    o = m['owner']
    ok(o['name'] == 'bpf_map' and o['file'] == 'anon_inode:bpf-map' and o['mapped_by'] == 'insert',
       f\"owner {o['name']}, file {o['file']}, mapped by {o['mapped_by']}\")
    # ringbuf_map_mmap(_kern) calls remap_vmalloc_range, or is inlined into bpf_map_mmap
    ok(o['inserted_by'] is not None and o['inserted_by'].split('+')[0] in ('ringbuf_map_mmap', 'ringbuf_map_mmap_kern', 'bpf_map_mmap'),
       f\"inserted by {o['inserted_by']}\")
ok(len(pages) == 4, f'{len(pages)} page lives: consumer, producer, 2 data pages')
twice = [p for p in pages if p['max_mapcount'] == 2]
once = [p for p in pages if p['max_mapcount'] == 1]
ok(len(twice) == 2 and len(once) == 2, f\"2 pages mapped twice, 2 once: {[p['max_mapcount'] for p in pages]}\")
for p in twice:
    ins = [s for s in steps(p, 'insert_ret') if s['value'] == 0]
    ok(len(ins) == 2 and len(steps(p, 'rmap_add')) == 2 and len(steps(p, 'rmap_remove')) == 2,
       f\"pfn {p['pfn']:#x}: two inserts, two rmaps, two zaps\")
for p in pages:
    ok(p['complete'] and p['mode'] == 'driver', f\"pfn {p['pfn']:#x}: complete ({p['missing']})\")
ok(j['losses']['total'] == 0 and j['summary']['anomalies'] == 0, f\"nothing lost, no anomaly ({j['anomalies'][:3]})\")
L = j['leaks']
ok(L['counts']['freed'] == 4 and L['bugs'] == 0, f\"4 freed, no bug: {L['counts']}\")
"
}

case_devmem_pfnmap() {
	no_kex
	drivers_trace mem -- python3 -c "
import mmap, os
fd = os.open('/dev/mem', os.O_RDONLY)
m = mmap.mmap(fd, 16 * 4096, mmap.MAP_SHARED, mmap.PROT_READ, offset=0xf0000)
print('devmem: read', sum(m[i * 4096] for i in range(16)))
m.close(); os.close(fd)
"
	grep -q "pfn map: pfns 0xf0-0xff (16 pages) at 0x[0-9a-f]*, remap_pfn_range ok" "$CASE_TMP/mem.txt" ||
		{ cat "$CASE_TMP/mem.txt"; fail "no pfn map line"; }
	python3 tests/guest/jcheck.py "$CASE_TMP/mem.json" "
maps = j['mappings']
ok(len(maps) == 1 and maps[0]['driver'], f'one driver mapping ({len(maps)})')
o, pm = maps[0]['owner'], maps[0]['pfn_maps']
ok(o['name'] == 'mem' and o['file'] == '/dev/mem' and o['f_op'] == 'mem_fops', f\"owner {o['name']}, file {o['file']}, f_op {o['f_op']}\")
# 7.2: /dev/mem's mmap is an mmap_prepare hook
ok(o['mmap'] in ('mmap_mem', 'mmap_mem_prepare'), f\"mmap handler {o['mmap']}\")
ok(len(pm) == 1 and pm[0]['pfn'] == 0xf0 and pm[0]['pages'] == 16 and pm[0]['ret'] == 0, f'the pfn map: {pm}')
ok(pm[0]['addr'] == maps[0]['vm_start'], 'at the start of the mapping')
ok(j['pages'] == [], 'no page life: pfns behind special PTEs')
ok(j['losses']['total'] == 0 and j['summary']['anomalies'] == 0, 'nothing lost, no anomaly')
"
}

case_vgem_pfn_fault() {
	no_kex
	modprobe -d ".cache/guest/$(uname -r)" vgem || { fail "modprobe vgem failed"; return 1; }
	drivers_trace vgem --leaks -- python3 tests/guest/vgem.py 8
	grep -q "pfn map: pfn 0x[0-9a-f]* at 0x[0-9a-f]*, vmf_insert_pfn_prot at a fault ok" "$CASE_TMP/vgem.txt" ||
		{ cat "$CASE_TMP/vgem.txt"; fail "no pfn map line at a fault"; }
	python3 tests/guest/jcheck.py "$CASE_TMP/vgem.json" "
maps = j['mappings']
ok(len(maps) == 1 and maps[0]['driver'], f'one driver mapping, no vvar ({[m[\"owner\"][\"file\"] for m in maps]})')
m = maps[0]
o, pm = m['owner'], m['pfn_maps']
ok(o['name'] == 'vgem' and o['f_op'] == 'vgem_driver_fops', f\"owner {o['name']}, f_op {o['f_op']}\")
ok(o['file'].startswith('/dev/dri/card') and o['mmap'] == 'drm_gem_mmap', f\"file {o['file']}, mmap {o['mmap']}\")
# drm_gem_shmem_fault; 7.2: drm_gem_shmem_any_fault
ok((o['inserted_by'] or '').startswith(('drm_gem_shmem_fault', 'drm_gem_shmem_any_fault')), f\"inserted by {o['inserted_by']}\")
ok('pfnmap' in o['flags'], f\"vm flags {o['flags']}\")
ok(len(pm) == 8, f'8 pfn maps, one per fault ({len(pm)})')
ok(all(p['via'] == 'vmf_insert_pfn_prot' and p['pages'] == 1 and p['ret'] == 256 for p in pm),
   'each one pfn by vmf_insert_pfn_prot, VM_FAULT_NOPAGE: ' + str([(p['via'], p['pages'], p['ret']) for p in pm]))
start = int(m['vm_start'], 16)
ok(sorted(int(p['addr'], 16) for p in pm) == [start + 4096 * i for i in range(8)], 'one per page of the buffer')
ok(len({p['pfn'] for p in pm}) == 8, 'eight distinct pfns')
ok(j['pages'] == [], 'no page life: pfns behind special PTEs')
ok(j['losses']['total'] == 0 and j['summary']['anomalies'] == 0, 'nothing lost, no anomaly')
ok(j['trace']['orphans'] == 0, f\"no orphan event, e.g. a vvar fault's return ({j['trace']['orphans']})\")
ok(j['leaks']['bugs'] == 0, f\"no leak bug ({j['leaks']['counts']})\")
"
}

case_held_by_driver() {
	no_kex
	local out=$CASE_TMP/ring.out
	drivers_trace held --leaks -- sh -c "python3 tests/guest/ring.py rx 2 4 --hold 60 >$out &
		until grep -q holding $out; do sleep 0.1; done"
	local ino
	ino=$(socket_inodes "$out" | tr -d ' ')
	pkill -f 'ring.py rx 2 4 --hold 60' || true # the check below needs it gone either way
	grep -q "^  held by af_packet: socket:\[$ino\] open: 4 pages" "$CASE_TMP/held.txt" ||
		{ cat "$CASE_TMP/held.txt"; fail "no 'held by af_packet: socket:[$ino] open: 4 pages'"; }
	python3 tests/guest/jcheck.py "$CASE_TMP/held.json" "
L = j['leaks']
ok(L['counts']['held'] == 4 and L['bugs'] == 0, f\"4 held, no bug: {L['counts']}\")
ok(all(p['holder'] == 'af_packet: socket:[$ino] open' for p in L['pages']), 'each held by the socket: ' + str({p['holder'] for p in L['pages']}))
"
}

case_max_allocs() {
	no_kex
	local rc=0
	kextrace --max-allocs 64 --json "$CASE_TMP/small.json" -- python3 tests/guest/ring.py rx 2 100 \
		>"$CASE_TMP/small.txt" 2>"$CASE_TMP/small.err" || rc=$?
	[ $rc = 3 ] || { cat "$CASE_TMP/small.err"; fail "kextrace --max-allocs 64 exited $rc, expected 3 (events lost)"; }
	grep -E "events lost: the trace is incomplete \(larger (.*, )?--max-allocs, or --accept-loss\)" "$CASE_TMP/small.err" ||
		{ cat "$CASE_TMP/small.err"; fail "the loss message does not name --max-allocs"; }
	python3 tests/guest/jcheck.py "$CASE_TMP/small.json" "
pages = j['pages']
full = j['losses']['map_full'].get('driver_allocs', 0)
unseen = [p for p in pages if p['alloc_before_trace']]
ok(len(pages) == 100, f'{len(pages)} page lives, expected 100: every page followed')
ok(full >= 100 - 64, f'driver_allocs map full {full} times, at least 36')
ok(len(unseen) >= 36 and len(unseen) <= full, f'{len(unseen)} lives with their allocation unseen, one a failed update at most')
"
	drivers_trace big --max-allocs 4096 -- python3 tests/guest/ring.py rx 2 100
	python3 tests/guest/jcheck.py "$CASE_TMP/big.json" "
pages = j['pages']
ok(len(pages) == 100, f'{len(pages)} page lives, expected 100')
ok(j['losses']['total'] == 0, f\"nothing lost: {j['losses']}\")
ok(not any(p['alloc_before_trace'] for p in pages), 'every allocation linked')
"
}

case_kex_only() {
	no_kex
	drivers_trace only --kex-only -- python3 tests/guest/ring.py rx 2 8
	grep -q "^pages: no page seen" "$CASE_TMP/only.txt" || fail "--kex-only followed a driver page"
	python3 tests/guest/jcheck.py "$CASE_TMP/only.json" "
ok(j['pages'] == [] and j['mappings'] == [], 'no page, no mapping')
"
}

case_filters() {
	no_kex
	drivers_trace follow --driver af_packet -- python3 tests/guest/ring.py rx 2 8
	python3 tests/guest/jcheck.py "$CASE_TMP/follow.json" "
ok(len(j['pages']) == 8, f\"--driver af_packet follows the ring's 8 pages ({len(j['pages'])})\")
ok(j['trace']['unfollowed_driver_pages'] == 0, 'none left out')
"
	drivers_trace other --file 'socket:[1]' -- python3 tests/guest/ring.py rx 2 8
	python3 tests/guest/jcheck.py "$CASE_TMP/other.json" "
t = j['trace']
ok(j['pages'] == [] and j['mappings'] == [], 'another socket: no page, no mapping')
ok(t['unfollowed_driver_pages'] == 8, f\"8 pages left out ({t['unfollowed_driver_pages']})\")
ok(t['orphans'] == 0 and j['summary']['anomalies'] == 0, 'no orphan, no anomaly')
"
	grep -q "driver pages not followed 8 (--driver/--file)" "$CASE_TMP/other.txt" ||
		fail "the summary does not say 8 pages were left out"
	local rc=0
	kextrace --driver kex -- true >"$CASE_TMP/bad.txt" 2>&1 || rc=$?
	cat "$CASE_TMP/bad.txt"
	expect_eq "$rc" 2 "--driver of a module that is not loaded: exit status"
	grep -q "loaded modules:" "$CASE_TMP/bad.txt" || fail "the error does not list the loaded modules"
}
