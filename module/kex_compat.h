/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kex_compat.h - the kernel APIs that differ between the guests kex is built
 * for (Debian's 6.1, 6.12 and sid's 7.x). The only place that tests the version.
 */
#ifndef _KEX_COMPAT_H
#define _KEX_COMPAT_H

#include <linux/device.h>
#include <linux/mm.h>
#include <linux/version.h>

/* vm_flags became read-only behind vm_flags_*() in 6.3. */
static inline void kex_vm_flags_mod(struct vm_area_struct *vma,
				    unsigned long set, unsigned long clear)
{
#if KERNEL_VERSION(6, 3, 0) <= LINUX_VERSION_CODE
	vm_flags_mod(vma, set, clear);
#else
	vma->vm_flags = (vma->vm_flags | set) & ~clear;
#endif
}

/* class_create() lost its owner argument in 6.4. */
static inline struct class *kex_class_create(const char *name)
{
#if KERNEL_VERSION(6, 4, 0) <= LINUX_VERSION_CODE
	return class_create(name);
#else
	return class_create(THIS_MODULE, name);
#endif
}

/* struct class's devnode() takes a const struct device * since 6.2. */
#if KERNEL_VERSION(6, 2, 0) <= LINUX_VERSION_CODE
#define KEX_DEVNODE_CONST const
#else
#define KEX_DEVNODE_CONST
#endif

/* zap_vma_ptes() was renamed zap_special_vma_range() in 7.1. */
static inline void kex_zap_special(struct vm_area_struct *vma,
				   unsigned long address, unsigned long size)
{
#if KERNEL_VERSION(7, 1, 0) <= LINUX_VERSION_CODE
	zap_special_vma_range(vma, address, size);
#else
	zap_vma_ptes(vma, address, size);
#endif
}

#endif /* _KEX_COMPAT_H */
