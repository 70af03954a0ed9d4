/* SPDX-License-Identifier: GPL-2.0 */
/*
 * bpf/kex_tp.h - context structs for classic tracepoints whose types are not
 * in vmlinux BTF: the kex module's own events (module BTF is not available
 * to CO-RE here) and x86's exceptions:page_fault_user (not in every kernel's
 * BTF). Layouts follow docs/architecture.md and the kernels' tracefs
 * "format" files: an 8-byte common header, then the fields in declaration
 * order with natural alignment. The loader checks them against
 * /sys/kernel/tracing/events/<sys>/<name>/format before attaching.
 */
#ifndef KEXTRACE_KEX_TP_H
#define KEXTRACE_KEX_TP_H

struct kex_tp_common {
	__u16 type;
	__u8 flags;
	__u8 preempt_count;
	__s32 pid;
};

struct kex_tp_mmap {
	struct kex_tp_common common;
	__u64 vm_start;
	__u64 vm_end;
	__u64 pgoff;
	__u32 pages;
	__u32 policy;
};

struct kex_tp_mmap_done {
	struct kex_tp_common common;
	__u64 vm_start;
	__s32 ret;
	__u32 mapped;
};

struct kex_tp_page_alloc {
	struct kex_tp_common common;
	__u64 pfn;
	__u64 page;
	__u32 index;
	__u32 pad;
};

struct kex_tp_page_insert {
	struct kex_tp_common common;
	__u64 pfn;
	__u64 uaddr;
	__u32 index;
	__s32 ret;
};

struct kex_tp_page_free {
	struct kex_tp_common common;
	__u64 pfn;
	__u32 index;
	__u32 reason;
};

struct kex_tp_vma {
	struct kex_tp_common common;
	__u64 vm_start;
	__u64 vm_end;
};

struct kex_tp_release {
	struct kex_tp_common common;
	__u32 pages;
	__u32 pad;
};

/* the "kex additions" of the mapping modes */
struct kex_tp_mmap_mode {
	struct kex_tp_common common;
	__u64 vm_start;
	__u32 mode;
	__u32 pad;
};

struct kex_tp_batch {
	struct kex_tp_common common;
	__u64 uaddr;
	__u32 index;
	__u32 requested;
	__u32 mapped;
	__s32 ret;
};

struct kex_tp_fault {
	struct kex_tp_common common;
	__u64 uaddr;
	__u64 pfn;
	__u32 index;
	__u32 flags;
};

/* exceptions:page_fault_user (arch/x86/include/asm/trace/exceptions.h) */
struct kex_tp_x86_fault {
	struct kex_tp_common common;
	__u64 address;
	__u64 ip;
	__u64 error_code;
};

#endif /* KEXTRACE_KEX_TP_H */
