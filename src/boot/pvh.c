/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PVH boot: an ELF kernel with a XEN_ELFNOTE_PHYS32_ENTRY note, started
 * the way Xen starts PVH guests (xen/include/public/arch-x86/hvm/
 * start_info.h): flat 32-bit protected mode, paging off, EBX = the GPA of
 * a struct hvm_start_info (version 1) holding the command line, the
 * initrd as module 0, the e820 map and the ACPI RSDP.
 *
 * Layout written (scratch area, see boot_int.h):
 *   BOOT_INFO_GPA  hvm_start_info (56 bytes)
 *   BOOT_MAP_GPA   hvm_memmap_table_entry[ne820] (24 bytes each)
 *   BOOT_MODS_GPA  hvm_modlist_entry[1] (32 bytes), if an initrd is given
 *
 * Threads: set-up only; no state.
 */
#include "boot/boot_int.h"

#include <errno.h>

#define HVM_START_MAGIC 0x336ec578U
#define HVM_START_VERSION 1

/* struct hvm_start_info field offsets */
#define SI_MAGIC 0
#define SI_VERSION 4
#define SI_FLAGS 8
#define SI_NR_MODULES 12
#define SI_MODLIST 16
#define SI_CMDLINE 24
#define SI_RSDP 32
#define SI_MEMMAP 40
#define SI_MEMMAP_ENTRIES 48
#define SI_SIZE 56

#define MOD_SIZE 32    /* hvm_modlist_entry: paddr, size, cmdline, rsvd */
#define MEMMAP_SIZE 24 /* hvm_memmap_table_entry: addr, size, type, rsvd */

static int write_memmap(const struct boot_ctx *c)
{
	const struct boot_req *req = c->req;
	uint8_t ent[MEMMAP_SIZE];
	unsigned i;
	int rc;

	if ((uint64_t)req->ne820 * MEMMAP_SIZE > BOOT_MODS_GPA - BOOT_MAP_GPA) {
		boot_kernel_err(c, "e820 map of %u entries is too large",
				req->ne820);
		return -EINVAL;
	}
	for (i = 0; i < req->ne820; i++) {
		memset(ent, 0, sizeof(ent));
		boot_put64(ent, req->e820[i].addr);
		boot_put64(ent + 8, req->e820[i].size);
		boot_put32(ent + 16, req->e820[i].type);
		rc = boot_scratch_write(c, BOOT_MAP_GPA + i * MEMMAP_SIZE, ent,
					sizeof(ent));
		if (rc)
			return rc;
	}
	return 0;
}

static int write_start_info(const struct boot_ctx *c)
{
	const struct boot_info *info = c->info;
	uint8_t si[SI_SIZE], mod[MOD_SIZE];
	int rc;

	memset(si, 0, sizeof(si));
	boot_put32(si + SI_MAGIC, HVM_START_MAGIC);
	boot_put32(si + SI_VERSION, HVM_START_VERSION);
	boot_put64(si + SI_CMDLINE, BOOT_CMDLINE_BASE);
	boot_put64(si + SI_RSDP, c->req->rsdp);
	if (c->req->ne820) {
		boot_put64(si + SI_MEMMAP, BOOT_MAP_GPA);
		boot_put32(si + SI_MEMMAP_ENTRIES, c->req->ne820);
	}
	if (info->initrd_end > info->initrd_start) {
		memset(mod, 0, sizeof(mod));
		boot_put64(mod, info->initrd_start);
		boot_put64(mod + 8, info->initrd_end - info->initrd_start);
		rc = boot_scratch_write(c, BOOT_MODS_GPA, mod, sizeof(mod));
		if (rc)
			return rc;
		boot_put32(si + SI_NR_MODULES, 1);
		boot_put64(si + SI_MODLIST, BOOT_MODS_GPA);
	}
	return boot_scratch_write(c, BOOT_INFO_GPA, si, sizeof(si));
}

int boot_pvh_load(struct boot_ctx *c, const struct boot_elf *e, uint64_t entry)
{
	int rc;

	if (entry < e->lo || entry >= e->hi) {
		boot_kernel_err(c,
				"PVH entry point %#llx is outside the "
				"loaded image [%#llx, %#llx)",
				(unsigned long long)entry,
				(unsigned long long)e->lo,
				(unsigned long long)e->hi);
		return -ENOEXEC;
	}
	rc = boot_elf_load(c, e);
	if (rc)
		return rc;
	rc = boot_initrd_load(c, 4 * GIB);
	if (rc)
		return rc;
	rc = boot_cmdline_write(c, BOOT_CMDLINE_MAX - 1);
	if (rc)
		return rc;
	rc = write_memmap(c);
	if (rc)
		return rc;
	rc = write_start_info(c);
	if (rc)
		return rc;
	boot_regs_prot32(c->regs, (uint32_t)entry);
	c->regs->rbx = BOOT_INFO_GPA;
	rc = boot_gdt_write(c, c->regs);
	if (rc)
		return rc;
	c->info->format = BOOT_PVH;
	return 0;
}
