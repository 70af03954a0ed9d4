/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kex_uapi.h - what user space (the rig, the tests) shares with the kex
 * module: names, paths, limits, the ioctls and the meaning of mmap errors.
 *
 * mmap(2) of the kex device:
 *   MAP_SHARED of a file opened O_RDWR only, offset 0, length 1..max_pages
 *   pages, no PROT_EXEC.
 *   Rejections (each logs one "kex: mmap rejected: ..." line):
 *     offset != 0                 -EINVAL
 *     MAP_PRIVATE                 -EINVAL (driver pages must not be COWed)
 *     MAP_SHARED, file opened O_RDONLY
 *                                 -EACCES (with PROT_WRITE the core refuses
 *                                 first, with no kex line)
 *     PROT_EXEC                   -EPERM
 *     pages > max_pages           -E2BIG  (distinct, so callers can tell)
 *     live pages + pages > max_pages_total
 *                                 -ENOMEM (may succeed once others unmap)
 *     mode fault or pfn with ref_policy=drop
 *                                 -EINVAL (see "Mapping modes")
 *   Failures while mapping: -ENOMEM (allocation), or what vm_insert_page,
 *   vm_insert_pages or remap_pfn_range returned; nothing stays allocated or
 *   mapped.
 *   The mapping cannot grow (mremap: -EFAULT) nor become executable.
 * read(2) and write(2) are not implemented: -EINVAL.
 *
 * Mapping modes (enum kex_map_mode): how mmap() maps the pages. Each open
 * file has one, initially the module parameter "mode" (default insert) as
 * it was at open(); KEX_IOC_SET_MODE changes it for the file's later mmaps
 * (a mapping keeps the mode it was made with).
 *   insert  alloc_page + vm_insert_page, page by page, all at mmap (eager).
 *   batch   all pages allocated first, then vm_insert_pages in calls of up
 *           to KEX_BATCH_PAGES pages (tracepoint kex:kex_batch per call).
 *   fault   mmap maps nothing; the .fault handler allocates page N on the
 *           first fault at it (tracepoint kex:kex_fault per fault) and
 *           hands the same page again on every later fault at N (after
 *           MADV_DONTNEED, in a fork child). Two threads faulting the same
 *           page get one page.
 *   pfn     alloc_page + remap_pfn_range, page by page, at mmap: VM_PFNMAP
 *           and VM_IO, special PTEs, no rmap, no page reference taken by
 *           the mapping (RSS in smaps / pmap counts 0).
 * ref_policy in fault and pfn modes: only keep. A fault mapping must hold
 * each page to hand it out again on a later fault, and a pfn mapping holds
 * no reference of its own (dropping kex's would free a mapped page), so an
 * mmap in those modes with ref_policy=drop is rejected with -EINVAL rather
 * than silently turned into keep. With keep, kex frees the pages when the
 * last VMA of the mapping closes, in every mode.
 *
 * After MADV_DONTNEED on a kex mapping, then a touch of the zapped range:
 *   insert, batch  SIGBUS: the pages are mapped once, at mmap, and there is
 *                  no .fault to map them again (with ref_policy=drop the
 *                  kernel frees them at the zap; with keep kex still holds
 *                  them until the last close). The rest of the mapping is
 *                  intact.
 *   fault          the same pages come back, contents intact.
 *   pfn            madvise fails with -EINVAL (no MADV_DONTNEED on
 *                  VM_PFNMAP); nothing changes.
 *
 * Other edges (tests/guest/boundary.sh, every mode, 6.1 and 6.12):
 *   MAP_FIXED over a kex mapping replaces it (the old mapping's pages are
 *   released) or, over part of it, splits it; a MAP_FIXED kex refuses
 *   (E2BIG, ...) leaves the old range unmapped all the same: the core
 *   unmaps it before calling ->mmap.
 *   PROT_NONE maps (or, mode fault, lets fault) nothing accessible: a touch
 *   is SIGSEGV; mprotect(PROT_READ|PROT_WRITE) then gives zeroed pages.
 *   mlock(), MAP_LOCKED: succeed but lock nothing (a kex VMA is VM_SPECIAL
 *   through VM_DONTEXPAND; VmLck stays 0). Like MAP_POPULATE they populate:
 *   a mode fault mapping gets every page allocated then.
 */
#ifndef KEX_UAPI_H
#define KEX_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Name in /proc/devices, the class and the node: /dev/kex. */
#define KEX_DEVICE_NAME		"kex"
/* Counters, one decimal number per file. */
#define KEX_SYSFS_DIR		"/sys/class/kex/kex"
/* Module parameters: ref_policy, mode, max_pages, verbose, ... */
#define KEX_PARAM_DIR		"/sys/module/kex/parameters"

/* Default of the max_pages parameter: pages per mmap. */
#define KEX_MAX_PAGES_DEFAULT	65536U

/*
 * Default of the max_pages_total parameter: pages of all live kex mappings
 * together (1 GiB). Each mmap reserves its whole length, in every mode (a
 * fault mapping before any page is touched), until its last VMA closes;
 * KEX_SYSFS_DIR/pages_reserved shows the sum.
 */
#define KEX_MAX_PAGES_TOTAL_DEFAULT	262144U

/*
 * Default of the node_mode parameter (octal, read at load): the permissions
 * of /dev/kex, owned by root. Only root may open the device by default:
 * whoever can open it can pin up to max_pages_total pages of memory and
 * drive the inject_* leaks. node_mode=0666 opens it to every user.
 */
#define KEX_NODE_MODE_DEFAULT	0600U

/* Most pages one vm_insert_pages call of mode batch maps. */
#define KEX_BATCH_PAGES		64U

/* The ref_policy parameter, and the policy field of kex:kex_mmap. */
enum kex_ref_policy {
	KEX_POLICY_DROP	= 0,	/* __free_page right after insert */
	KEX_POLICY_KEEP	= 1,	/* hold a reference until the last VMA closes */
};

/* The mode parameter, KEX_IOC_*_MODE and kex:kex_mmap_mode. */
enum kex_map_mode {
	KEX_MODE_INSERT	= 0,	/* vm_insert_page per page, at mmap */
	KEX_MODE_BATCH	= 1,	/* vm_insert_pages, at mmap */
	KEX_MODE_FAULT	= 2,	/* .fault, page by page, on first touch */
	KEX_MODE_PFN	= 3,	/* remap_pfn_range per page, at mmap */
};

#define KEX_MODE_COUNT		4U

/*
 * ioctl(2) on an open kex file, argument a __u32 *:
 *   KEX_IOC_SET_MODE  the mode of this file's later mmaps; -EINVAL if not an
 *                     enum kex_map_mode, -EFAULT for a bad pointer.
 *   KEX_IOC_GET_MODE  the file's current mode.
 * Any other request: -ENOTTY.
 */
#define KEX_IOC_MAGIC		'k'
#define KEX_IOC_SET_MODE	_IOW(KEX_IOC_MAGIC, 1, __u32)
#define KEX_IOC_GET_MODE	_IOR(KEX_IOC_MAGIC, 2, __u32)

/*
 * The inject_noput and inject_extra_get parameters (testing, 0600) take sets
 * of page indexes below this ("1,5", "0-3,7"; "" for none). Pages they, or
 * inject_fail_leak, leak are counted in KEX_SYSFS_DIR/pages_leaked_injected
 * and never in pages_freed: they stay in pages_live for good (rmmod works).
 */
#define KEX_INJECT_MAX		64U

/* The flags field of kex:kex_fault. */
#define KEX_FAULT_WRITE		0x1U	/* a write fault (FAULT_FLAG_WRITE) */
#define KEX_FAULT_ALLOC		0x2U	/* this fault allocated the page */
#define KEX_FAULT_ERROR		0x4U	/* the fault failed (pfn is ~0) */

#endif /* KEX_UAPI_H */
