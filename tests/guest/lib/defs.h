/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Constants shared by the guest library's assembly (boot.S) and C code:
 * the GDT layout, control-register bits, the guest-physical addresses of
 * the test devices and the exit protocol.  Values only, no declarations,
 * so the file can be included from .S files.  No state, no locks.
 */
#ifndef GUEST_DEFS_H
#define GUEST_DEFS_H

/* GDT selectors (see boot.S).  The user selectors are used with RPL 3. */
#define GDT_CODE32 0x08
#define GDT_DATA 0x10
#define GDT_CODE64 0x18
#define GDT_UDATA 0x20
#define GDT_UCODE64 0x28

#define CR0_PE 0x00000001
#define CR0_PG 0x80000000
#define CR4_PAE 0x00000020
#define MSR_EFER 0xc0000080
#define EFER_LME 0x00000100

/* CPUs the library can start (BSP included) and the per-AP stack size. */
#define GUEST_MAX_CPUS 32
#define AP_STACK_SHIFT 13 /* 8 KiB */
#define BOOT_STACK_SIZE 16384
#define RING3_STACK_SIZE 16384

/* Where the AP real-mode trampoline is copied (khyve's free low RAM, clear
 * of its boot scratch page at 0x1000-0xffff); SIPI vector = page number. */
#define AP_TRAMPOLINE_PA 0x30000

/* Test devices and the exit protocol (see tests/guest/README.md). */
#define COM1_PORT 0x3f8
#define DEBUG_EXIT_PORT 0xf4
#define TESTDEV_PORT 0xe0
#define TESTDEV_IOMEM_BASE 0xff000000
#define TESTDEV_IOMEM_SIZE 0x10000
#define TESTDEV_EXIT_REG (TESTDEV_IOMEM_BASE + TESTDEV_IOMEM_SIZE - 4)
#define GUEST_EXIT_PASS 0x10 /* VMM status (0x10 << 1) | 1 = 33 */
#define GUEST_EXIT_FAIL 0x11 /* VMM status (0x11 << 1) | 1 = 35 */

#endif
