/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Direct kernel boot (no firmware): boot.kernel, boot.initrd and
 * boot.cmdline.  boot_load() recognises the kernel file, copies it and the
 * initrd into guest RAM, writes the boot structures the kernel expects
 * (Linux zero page, Xen hvm_start_info, Multiboot v1 info), a GDT and, for
 * 64-bit entry, identity page tables, and describes the BSP's first
 * instruction in a struct hv_regs.  It never calls hv_*(): the caller
 * loads the registers into vCPU 0.
 *
 * Formats, probed in this order:
 *   1. Linux bzImage, boot protocol 2.12 or later with a 64-bit entry
 *      (XLF_KERNEL_64).  Entered in long mode at load address + 0x200.
 *   2. ELF (32- or 64-bit) with a XEN_ELFNOTE_PHYS32_ENTRY note (PVH).
 *      Entered in flat 32-bit protected mode, EBX = hvm_start_info.
 *   3. Multiboot v1 (ELF, or any image with the a.out-kludge address
 *      fields).  Entered in flat 32-bit mode, EAX = 0x2BADB002,
 *      EBX = multiboot_info.
 *
 * Where things go (core/layout.h): the GDT, page tables and boot
 * structures in [BOOT_SCRATCH_BASE, BOOT_SCRATCH_END), the command line at
 * BOOT_CMDLINE_BASE, the kernel at or above KERNEL_MIN_BASE, the initrd
 * page-aligned at the top of RAM below 4 GiB.  The firmware table area
 * [FW_TABLES_BASE, FW_TABLES_END) is never written.
 *
 * Both files are untrusted: every offset, size and address taken from them
 * is checked against the file and against guest RAM, and any problem is
 * one error line naming the config key and the file, with a -errno result.
 *
 * Threads: called once from the main thread during VM set-up, before any
 * vCPU runs.  No global state, no locks.
 */
#ifndef KHYVE_BOOT_BOOT_H
#define KHYVE_BOOT_BOOT_H

#include <stdint.h>

#include "firmware/e820.h"
#include "kvm/hv.h"

struct gmem;

struct boot_req {
	const char *kernel;	/* boot.kernel: path, required */
	const char *initrd;	/* boot.initrd: path or NULL */
	const char *cmdline;	/* boot.cmdline: string or NULL (empty) */
	const struct gmem *mem; /* guest RAM */
	const struct e820_entry *e820; /* the guest's memory map */
	unsigned ne820;
	uint64_t rsdp; /* ACPI RSDP GPA, 0 = none */
};

enum boot_format {
	BOOT_BZIMAGE,
	BOOT_PVH,
	BOOT_MULTIBOOT,
};

struct boot_info {
	enum boot_format format;
	uint64_t kernel_start, kernel_end; /* GPA range the kernel owns */
	uint64_t initrd_start, initrd_end; /* 0, 0 without an initrd */
};

/*
 * boot_load: load req->kernel (and req->initrd) into req->mem, build the
 * boot structures and fill *regs with the BSP's complete initial state
 * (every GPR, all segment registers including their hidden parts, CR0,
 * CR3, CR4, EFER, GDTR, IDTR, DR6/DR7).  regs->apic_base is left 0, which
 * hv_vcpu_set_regs() takes as "keep the current APIC base" (so x2APIC
 * mode chosen by the hypervisor layer survives).
 *
 * Parameters:
 *   req   what to load and where (see struct boot_req)
 *   regs  out: the BSP's registers
 *   info  out: format and the GPA ranges used (may be NULL)
 *
 * Return values:
 *   0        success
 *   -ENOENT, -EACCES, ... (-errno)  a file cannot be opened or read
 *   -ENOEXEC the kernel is not a supported format, or is malformed or
 *            truncated
 *   -ENOMEM  the kernel or initrd does not fit in guest RAM
 *   -E2BIG   the command line is too long
 *   -EINVAL  bad request (no kernel, no RAM for the boot structures,
 *            e820 map too large)
 * Every failure has printed one error line.
 */
int boot_load(const struct boot_req *req, struct hv_regs *regs,
	      struct boot_info *info);

#endif
