/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kex_uapi.h - what user space (the rig, the tests) shares with the kex
 * module: names, paths, limits and the meaning of mmap errors.
 *
 * mmap(2) of the kex device:
 *   MAP_SHARED only, offset 0, length 1..max_pages pages, no PROT_EXEC.
 *   Rejections (each logs one "kex: mmap rejected: ..." line):
 *     offset != 0                 -EINVAL
 *     MAP_PRIVATE                 -EINVAL (driver pages must not be COWed)
 *     PROT_EXEC                   -EPERM
 *     pages > max_pages           -E2BIG  (distinct, so callers can tell)
 *   Failures while mapping: -ENOMEM (allocation), or what vm_insert_page
 *   returned; nothing stays allocated or mapped.
 *   The mapping cannot grow (mremap: -EFAULT) nor become executable.
 * read(2) and write(2) are not implemented: -EINVAL.
 */
#ifndef KEX_UAPI_H
#define KEX_UAPI_H

#include <linux/types.h>

/* Name in /proc/devices, the class and the node: /dev/kex. */
#define KEX_DEVICE_NAME		"kex"
/* Counters, one decimal number per file. */
#define KEX_SYSFS_DIR		"/sys/class/kex/kex"
/* Module parameters: ref_policy, max_pages, verbose. */
#define KEX_PARAM_DIR		"/sys/module/kex/parameters"

/* Default of the max_pages parameter: pages per mmap. */
#define KEX_MAX_PAGES_DEFAULT	65536U

/* The ref_policy parameter, and the policy field of kex:kex_mmap. */
enum kex_ref_policy {
	KEX_POLICY_DROP	= 0,	/* __free_page right after insert */
	KEX_POLICY_KEEP	= 1,	/* hold a reference until the last VMA closes */
};

#endif /* KEX_UAPI_H */
