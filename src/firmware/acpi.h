/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * khyve's ACPI tables (ACPI 6.5 chapter 5): RSDP (revision 2), RSDT and
 * XSDT, FADT (revision 6) with its FACS, DSDT (AML, see aml.h), MADT and,
 * with a PCI root, MCFG.  The byte offsets of the fields khyve fills are
 * named here so the builder and the tests agree on them.
 *
 * The tables describe the fixed platform of core/layout.h: PM1a event,
 * control and 24-bit timer blocks at PORT_PM1A_EVT/CNT and PORT_PM_TMR,
 * SCI on ACPI_SCI_IRQ (level, active high), the SMI command port
 * PORT_SMI_CMD, reset through I/O port 0xcf9, one I/O APIC at IOAPIC_BASE.
 *
 * Threads: called from fw_build_tables() only; no state, no locks.
 */
#ifndef KHYVE_FIRMWARE_ACPI_H
#define KHYVE_FIRMWARE_ACPI_H

#include <stdint.h>

struct aml;
struct fw_area;
struct fw_platform;

#define ACPI_OEM_ID "KHYVE "	     /* 6 bytes */
#define ACPI_OEM_TABLE_ID "KHYVE   " /* 8 bytes */
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_ID "KHYV"
#define ACPI_CREATOR_REVISION 1

/* System description table header (ACPI 6.5 section 5.2.6) */
#define ACPI_HDR_LEN 36
#define ACPI_HDR_LENGTH 4 /* u32 */
#define ACPI_HDR_REVISION 8
#define ACPI_HDR_CHECKSUM 9

/* RSDP (5.2.5.3) */
#define ACPI_RSDP_LEN 36
#define ACPI_RSDP_V1_LEN 20
#define ACPI_RSDP_CHECKSUM 8
#define ACPI_RSDP_REVISION 15
#define ACPI_RSDP_RSDT 16   /* u32 */
#define ACPI_RSDP_LENGTH 20 /* u32 */
#define ACPI_RSDP_XSDT 24   /* u64 */
#define ACPI_RSDP_EXT_CHECKSUM 32

/* FADT (5.2.9), revision 6 */
#define ACPI_FADT_LEN 276
#define ACPI_FADT_REVISION 6
#define ACPI_FADT_MINOR 3
#define FADT_FIRMWARE_CTRL 36 /* u32 */
#define FADT_DSDT 40	      /* u32 */
#define FADT_PM_PROFILE 45
#define FADT_SCI_INT 46 /* u16 */
#define FADT_SMI_CMD 48 /* u32 */
#define FADT_ACPI_ENABLE 52
#define FADT_ACPI_DISABLE 53
#define FADT_PM1A_EVT_BLK 56 /* u32 */
#define FADT_PM1A_CNT_BLK 64 /* u32 */
#define FADT_PM_TMR_BLK 76   /* u32 */
#define FADT_GPE0_BLK 80     /* u32 */
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_PM_TMR_LEN 91
#define FADT_GPE0_BLK_LEN 92
#define FADT_P_LVL2_LAT 96 /* u16 */
#define FADT_P_LVL3_LAT 98 /* u16 */
#define FADT_CENTURY 108
#define FADT_IAPC_BOOT_ARCH 109 /* u16 */
#define FADT_FLAGS 112		/* u32 */
#define FADT_RESET_REG 116	/* GAS */
#define FADT_RESET_VALUE 128
#define FADT_MINOR_VERSION 131
#define FADT_X_FIRMWARE_CTRL 132 /* u64 */
#define FADT_X_DSDT 140		 /* u64 */
#define FADT_X_PM1A_EVT_BLK 148	 /* GAS */
#define FADT_X_PM1A_CNT_BLK 172	 /* GAS */
#define FADT_X_PM_TMR_BLK 208	 /* GAS */

/* IAPC_BOOT_ARCH bits */
#define FADT_BOOT_LEGACY_DEVICES (1u << 0)
#define FADT_BOOT_8042 (1u << 1)
/* FADT flags */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5)
#define FADT_F_TMR_VAL_EXT (1u << 8)
#define FADT_F_RESET_REG_SUP (1u << 10)

/* Generic Address Structure (5.2.3.2), 12 bytes */
#define ACPI_GAS_LEN 12
#define ACPI_GAS_SYSTEM_IO 1
#define GAS_SPACE 0
#define GAS_BIT_WIDTH 1
#define GAS_BIT_OFFSET 2
#define GAS_ACCESS_SIZE 3
#define GAS_ADDRESS 4 /* u64 */

/* FACS (5.2.10) */
#define ACPI_FACS_LEN 64
#define ACPI_FACS_ALIGN 64

/* MADT (5.2.12) */
#define ACPI_MADT_REVISION 5
#define MADT_LAPIC_ADDR 36 /* u32 */
#define MADT_FLAGS 40	   /* u32 */
#define MADT_ENTRIES 44
#define MADT_PCAT_COMPAT 1u
enum acpi_madt_type {
	MADT_LAPIC = 0,	      /* 8 bytes */
	MADT_IOAPIC = 1,      /* 12 bytes */
	MADT_ISO = 2,	      /* Interrupt Source Override, 10 bytes */
	MADT_LAPIC_NMI = 4,   /* 6 bytes */
	MADT_X2APIC = 9,      /* 16 bytes */
	MADT_X2APIC_NMI = 10, /* 12 bytes */
};
#define MADT_ENABLED 1u
/* MPS INTI flags: polarity bits 1:0, trigger mode bits 3:2 */
#define ACPI_INTI_ACTIVE_HIGH 0x1
#define ACPI_INTI_ACTIVE_LOW 0x3
#define ACPI_INTI_EDGE 0x4
#define ACPI_INTI_LEVEL 0xc

/* MCFG (PCI Firmware spec 3.2, 4.1.2): header, 8 reserved, allocations */
#define MCFG_ENTRIES 44
#define MCFG_ENTRY_LEN 16

/*
 * Write the ACPI tables for 'p' into 'area'; *rsdp_gpa gets the RSDP's
 * address.  Returns 0, -ENOSPC (the area is full), -ENOMEM or -EINVAL
 * (from the DSDT: bad names, too many UARTs, a dsdt_hook error).
 */
int acpi_build(struct fw_area *area, const struct fw_platform *p,
	       uint64_t *rsdp_gpa);

/*
 * Append the DSDT's AML body (no table header) for 'p' to 'aml'.
 * Returns 0 or the builder's error (-ENOMEM, -EINVAL, -E2BIG), or the
 * dsdt_hook's.
 */
int acpi_build_dsdt(struct aml *aml, const struct fw_platform *p);

#endif
