/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The Intel MultiProcessor table (MP spec 1.4, chapter 4): a floating
 * pointer structure in 0xf0000-0xfffff and the configuration table it
 * points at, for guests booted without ACPI (acpi=off) and for old
 * kernels.  Layout constants are named so the builder and tests agree.
 *
 * The 8-bit APIC ids of the MP table cannot name more than 254 CPUs plus
 * the I/O APIC; with more CPUs no MP table is written (ACPI only).
 *
 * Threads: called from fw_build_tables() only; no state, no locks.
 */
#ifndef KHYVE_FIRMWARE_MPTABLE_H
#define KHYVE_FIRMWARE_MPTABLE_H

#include <stdint.h>

struct fw_area;
struct fw_platform;

/* Floating pointer structure (MP spec 4.1) */
#define MPFP_LEN 16
#define MPFP_MIN_GPA 0xf0000ULL
#define MPFP_PHYS_ADDR 4 /* u32 */
#define MPFP_LENGTH 8	 /* in 16-byte units */
#define MPFP_SPEC_REV 9
#define MPFP_CHECKSUM 10
#define MPFP_FEATURE1 11
#define MPFP_FEATURE2 12

/* Configuration table header (MP spec 4.2) */
#define MPC_HDR_LEN 44
#define MPC_BASE_LEN 4 /* u16 */
#define MPC_SPEC_REV 6
#define MPC_CHECKSUM 7
#define MPC_OEM_ID 8	   /* 8 bytes */
#define MPC_PRODUCT_ID 16  /* 12 bytes */
#define MPC_ENTRY_COUNT 34 /* u16 */
#define MPC_LAPIC_ADDR 36  /* u32 */
#define MPC_EXT_LEN 40	   /* u16 */
#define MPC_EXT_CHECKSUM 42

#define MP_SPEC_REV_1_4 4

/* Entry types (MP spec 4.3) and their lengths */
enum mp_entry_type {
	MP_PROCESSOR = 0, /* 20 bytes */
	MP_BUS = 1,	  /* 8 bytes */
	MP_IOAPIC = 2,	  /* 8 bytes */
	MP_IOINT = 3,	  /* 8 bytes */
	MP_LOCALINT = 4,  /* 8 bytes */
};
#define MP_PROCESSOR_LEN 20
#define MP_ENTRY_LEN 8

#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP 0x02

/* Interrupt types of I/O and local interrupt entries */
enum mp_int_type { MP_INT = 0, MP_NMI = 1, MP_SMI = 2, MP_EXTINT = 3 };

/* The most CPUs an MP table can describe (ids 0..253, I/O APIC 254). */
#define MPTABLE_MAX_CPUS 254

/*
 * Write the MP floating pointer and configuration table for 'p' into
 * 'area' (the pointer at or above MPFP_MIN_GPA).  Writes nothing and
 * returns 0 when p->ncpus > MPTABLE_MAX_CPUS.  Returns 0 or -ENOSPC.
 */
int mptable_build(struct fw_area *area, const struct fw_platform *p);

#endif
