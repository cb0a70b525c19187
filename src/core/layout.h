/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The guest-physical and I/O-port map of a khyve x86 machine.  One place so
 * that the loaders, the table builders and the device models agree.  The
 * values follow bhyve where bhyve has one (PCI hole, ECAM, PM block).
 *
 *  GPA                      what
 *  0x00000000-0x00000fff    zero (real-mode IVT area)
 *  0x00001000-0x0000ffff    direct-boot scratch: GDT, page tables, zero page,
 *                           hvm_start_info, memmap, multiboot info (boot/)
 *  0x00020000-0x0002ffff    kernel command line (boot/)
 *  0x00030000-0x0009efff    free low RAM (multiboot modules list, AP stacks)
 *  0x0009fc00-0x0009ffff    EBDA (reserved in e820)
 *  0x000a0000-0x000dffff    legacy VGA/option-ROM hole (reserved)
 *  0x000e0000-0x000fffff    ACPI tables, RSDP and MP table (firmware/)
 *  0x00100000-LOWMEM        RAM: kernel, initrd (top of low RAM down)
 *  LOWMEM_LIMIT (3 GiB)     PCI 32-bit MMIO window up to ECAM
 *  0xe0000000-0xefffffff    PCI ECAM, 256 buses
 *  0xfec00000               IOAPIC
 *  0xfed00000               (HPET, not emulated)
 *  0xfee00000               local APIC
 *  0xff000000-0xff00ffff    pc-testdev iomem; last dword: khyve exit register
 *  4 GiB-                   high RAM, then the 64-bit PCI MMIO window
 */
#ifndef KHYVE_CORE_LAYOUT_H
#define KHYVE_CORE_LAYOUT_H

#define GIB (1ULL << 30)
#define MIB (1ULL << 20)
#define KIB (1ULL << 10)

/* Guest physical memory */
#define LOWMEM_LIMIT 0xc0000000ULL /* RAM below 4G ends here at most */
#define HIGHMEM_BASE 0x100000000ULL
#define BOOT_SCRATCH_BASE 0x1000ULL
#define BOOT_SCRATCH_END 0x10000ULL
#define BOOT_CMDLINE_BASE 0x20000ULL
#define BOOT_CMDLINE_MAX 0x10000ULL
#define BOOT_FREE_BASE 0x30000ULL
#define EBDA_BASE 0x9fc00ULL
#define LEGACY_HOLE_BASE 0xa0000ULL
#define FW_TABLES_BASE 0xe0000ULL /* ACPI tables, RSDP, MP table */
#define FW_TABLES_END 0x100000ULL
#define KERNEL_MIN_BASE 0x100000ULL

/* PCI */
#define PCI_MMIO32_BASE LOWMEM_LIMIT
#define PCI_MMIO32_END PCI_ECAM_BASE
#define PCI_ECAM_BASE 0xe0000000ULL
#define PCI_ECAM_SIZE 0x10000000ULL
#define PCI_IO_BASE 0x2000 /* I/O BAR window */
#define PCI_IO_END 0x10000
#define PCI_MMIO64_SIZE (32ULL * GIB)

/* Interrupt controllers (in-kernel) */
#define IOAPIC_BASE 0xfec00000ULL
#define LAPIC_BASE 0xfee00000ULL
#define IOAPIC_PINS 24

/* pc-testdev (QEMU compatible) and the khyve exit register */
#define TESTDEV_IOMEM_BASE 0xff000000ULL
#define TESTDEV_IOMEM_SIZE 0x10000ULL
#define TESTDEV_EXIT_REG (TESTDEV_IOMEM_BASE + TESTDEV_IOMEM_SIZE - 4)
#define TESTDEV_PORT_BASE 0xe0	/* 4 ports, scratch register */
#define DEBUG_EXIT_PORT 0xf4	/* isa-debug-exit: status (v<<1)|1 */
#define TESTDEV_IRQ_PORT 0x2000 /* irq line control, 24 pins */

/* KVM private areas (just under the high BIOS area, in the PCI hole) */
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define KVM_TSS_ADDR 0xfeffd000ULL

/* I/O ports */
#define PORT_PIC1 0x20
#define PORT_PIT 0x40
#define PORT_KBD_DATA 0x60
#define PORT_KBD_CMD 0x64
#define PORT_RTC 0x70
#define PORT_POST 0x80
#define PORT_PIC2 0xa0
#define PORT_SMI_CMD 0xb2
#define PORT_PCI_CONF_ADDR 0xcf8
#define PORT_PCI_CONF_DATA 0xcfc
#define PORT_RESET_CF9 0xcf9
#define PORT_PM1A_EVT 0x400 /* 4 bytes: status (2), enable (2) */
#define PORT_PM1A_CNT 0x404 /* 2 bytes */
#define PORT_PM_TMR 0x408   /* 4 bytes, 3.579545 MHz, 24-bit */
#define ACPI_SCI_IRQ 9
#define ACPI_ENABLE_VAL 0xa0
#define ACPI_DISABLE_VAL 0xa1
#define ACPI_RESET_VAL 0x06 /* written to 0xcf9 by the FADT reset register */
#define ACPI_S5_SLP_TYP 5   /* \_S5 package value = PM1_CNT.SLP_TYP for S5 */

/* ISA COM ports */
#define COM1_PORT 0x3f8
#define COM1_IRQ 4
#define COM2_PORT 0x2f8
#define COM2_IRQ 3
#define COM3_PORT 0x3e8
#define COM3_IRQ 4
#define COM4_PORT 0x2e8
#define COM4_IRQ 3
#define RTC_IRQ 8

#endif
