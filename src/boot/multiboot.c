/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Multiboot v1 (the Multiboot Specification 0.6.96): a header with magic
 * 0x1BADB002 and a checksum in the first 8 KiB of the image.  The image is
 * placed by the header's address fields (flag 16, the "a.out kludge") or,
 * without them, by its ELF program headers.  Entered in flat 32-bit
 * protected mode with EAX = 0x2BADB002 and EBX = the GPA of the
 * multiboot_info structure.
 *
 * Layout written (scratch area, see boot_int.h):
 *   BOOT_INFO_GPA  multiboot_info (flags: mem, cmdline, mods, mmap, name)
 *   BOOT_MAP_GPA   mmap: {size = 20, base_addr, length, type} per e820 entry
 *   BOOT_MODS_GPA  mods[1]: {mod_start, mod_end, string, reserved}
 *   BOOT_STR_GPA   "khyve\0" then the initrd file name
 *
 * Header flags 0 (page-aligned modules: always true here), 1 (memory
 * information: always given) and 2 (video mode: not available, the kernel
 * finds no video fields in the info flags) are accepted; any other of
 * bits 0-15 is a requirement we cannot meet, so the load fails.
 *
 * Threads: set-up only; no state.
 */
#include "boot/boot_int.h"

#include <errno.h>

#include "lib/log.h"

#define MB_MAGIC 0x1BADB002U
#define MB_BOOT_MAGIC 0x2BADB002U
#define MB_SEARCH 8192
#define MB_HDR_MIN 12
#define MB_HDR_ADDR 32 /* header with the address fields */

#define MB_F_PAGE_ALIGN (1U << 0)
#define MB_F_MEMINFO (1U << 1)
#define MB_F_VIDEO (1U << 2)
#define MB_F_ADDR (1U << 16)
#define MB_F_KNOWN (MB_F_PAGE_ALIGN | MB_F_MEMINFO | MB_F_VIDEO)

/* multiboot_info flags and field offsets */
#define MBI_MEM (1U << 0)
#define MBI_CMDLINE (1U << 2)
#define MBI_MODS (1U << 3)
#define MBI_MMAP (1U << 6)
#define MBI_LOADER (1U << 9)
#define MBI_FLAGS 0
#define MBI_MEM_LOWER 4
#define MBI_MEM_UPPER 8
#define MBI_CMDLINE_PTR 16
#define MBI_MODS_COUNT 20
#define MBI_MODS_ADDR 24
#define MBI_MMAP_LENGTH 44
#define MBI_MMAP_ADDR 48
#define MBI_LOADER_NAME 64
#define MBI_SIZE 120 /* through the framebuffer fields, zeroed */

#define MB_MMAP_ENTRY 24
#define MB_MOD_SIZE 16
#define MB_LOADER_NAME "khyve"

long boot_mb_find(const struct boot_ctx *c)
{
	size_t off, end = c->headlen < MB_SEARCH ? c->headlen : MB_SEARCH;
	const uint8_t *p;

	for (off = 0; off + MB_HDR_MIN <= end; off += 4) {
		p = c->head + off;
		if (boot_get32(p) == MB_MAGIC &&
		    (uint32_t)(boot_get32(p) + boot_get32(p + 4) +
			       boot_get32(p + 8)) == 0)
			return (long)off;
	}
	return -1;
}

/* Place the image by the header's address fields. */
static int load_kludge(struct boot_ctx *c, size_t hoff, uint32_t *entry)
{
	const uint8_t *h = c->head + hoff;
	uint32_t hdr_addr, load, load_end, bss_end;
	uint64_t foff, filelen, memlen;
	int rc;

	if (hoff + MB_HDR_ADDR > c->headlen) {
		boot_kernel_err(c, "truncated Multiboot header");
		return -ENOEXEC;
	}
	hdr_addr = boot_get32(h + 12);
	load = boot_get32(h + 16);
	load_end = boot_get32(h + 20);
	bss_end = boot_get32(h + 24);
	*entry = boot_get32(h + 28);
	if (hdr_addr < load || hdr_addr - load > hoff) {
		boot_kernel_err(c,
				"Multiboot header_addr %#x and load_addr "
				"%#x do not match the header offset %zu",
				hdr_addr, load, hoff);
		return -ENOEXEC;
	}
	foff = hoff - (hdr_addr - load);
	if (load_end == 0) {
		filelen = c->kernel.size - foff;
	} else if (load_end < load || load_end - load > c->kernel.size - foff) {
		boot_kernel_err(c,
				"Multiboot load_end_addr %#x is outside the "
				"file (load_addr %#x, %llu bytes from "
				"offset %llu)",
				load_end, load,
				(unsigned long long)(c->kernel.size - foff),
				(unsigned long long)foff);
		return -ENOEXEC;
	} else {
		filelen = load_end - load;
	}
	memlen = filelen;
	if (bss_end != 0) {
		if (bss_end < load || bss_end - load < filelen) {
			boot_kernel_err(c,
					"Multiboot bss_end_addr %#x is "
					"below the loaded image",
					bss_end);
			return -ENOEXEC;
		}
		memlen = bss_end - load;
	}
	if (memlen == 0 || *entry < load || *entry - load >= memlen) {
		boot_kernel_err(c,
				"Multiboot entry_addr %#x is outside the "
				"image [%#x, %#llx)",
				*entry, load,
				(unsigned long long)(load + memlen));
		return -ENOEXEC;
	}
	rc = boot_check_kernel_range(c, load, memlen, "Multiboot image");
	if (rc)
		return rc;
	rc = boot_load_kernel_bytes(c, foff, filelen, load, memlen - filelen);
	if (rc)
		return rc;
	c->info->kernel_start = load;
	c->info->kernel_end = load + memlen;
	return 0;
}

/* Place the image by its ELF program headers; translate a virtual entry. */
static int load_elf(struct boot_ctx *c, const struct boot_elf *e,
		    uint32_t *entry)
{
	uint64_t ent = e->entry;
	unsigned i;
	int rc;

	if (ent < e->lo || ent >= e->hi) {
		for (i = 0; i < e->nseg; i++) {
			const struct boot_elf_seg *s = &e->seg[i];

			if (ent >= s->vaddr && ent - s->vaddr < s->memsz) {
				ent = s->paddr + (ent - s->vaddr);
				break;
			}
		}
	}
	if (ent < e->lo || ent >= e->hi) {
		boot_kernel_err(c,
				"ELF entry point %#llx is outside the "
				"loaded image",
				(unsigned long long)e->entry);
		return -ENOEXEC;
	}
	rc = boot_elf_load(c, e);
	if (rc)
		return rc;
	*entry = (uint32_t)ent; /* below low_top <= 4 GiB after the load */
	return 0;
}

/* KiB of RAM from 'base' up to the first hole, following e820 entries. */
static uint64_t ram_from(const struct boot_req *req, uint64_t base)
{
	uint64_t end = base;
	bool grew = true;
	unsigned i;

	while (grew) {
		grew = false;
		for (i = 0; i < req->ne820; i++) {
			const struct e820_entry *x = &req->e820[i];

			if (x->type == E820_RAM && x->addr <= end &&
			    x->size > end - x->addr) {
				end = x->addr + x->size;
				grew = true;
			}
		}
	}
	return (end - base) / 1024;
}

static int write_mmap(const struct boot_ctx *c)
{
	const struct boot_req *req = c->req;
	uint8_t ent[MB_MMAP_ENTRY];
	unsigned i;
	int rc;

	if ((uint64_t)req->ne820 * MB_MMAP_ENTRY >
	    BOOT_MODS_GPA - BOOT_MAP_GPA) {
		boot_kernel_err(c, "e820 map of %u entries is too large",
				req->ne820);
		return -EINVAL;
	}
	for (i = 0; i < req->ne820; i++) {
		boot_put32(ent, MB_MMAP_ENTRY - 4);
		boot_put64(ent + 4, req->e820[i].addr);
		boot_put64(ent + 12, req->e820[i].size);
		boot_put32(ent + 20, req->e820[i].type);
		rc = boot_scratch_write(c, BOOT_MAP_GPA + i * MB_MMAP_ENTRY,
					ent, sizeof(ent));
		if (rc)
			return rc;
	}
	return 0;
}

static int write_mods(const struct boot_ctx *c, uint8_t *mbi)
{
	const struct boot_info *info = c->info;
	uint64_t name_gpa = BOOT_STR_GPA + sizeof(MB_LOADER_NAME);
	uint8_t mod[MB_MOD_SIZE];
	size_t len;
	int rc;

	boot_put32(mbi + MBI_MODS_ADDR, BOOT_MODS_GPA);
	if (info->initrd_end <= info->initrd_start)
		return 0;
	len = strlen(c->req->initrd) + 1;
	if (len > BOOT_SCRATCH_END - name_gpa) {
		log_err("boot.initrd: %s: file name too long for Multiboot",
			c->req->initrd);
		return -EINVAL;
	}
	rc = boot_scratch_write(c, name_gpa, c->req->initrd, len);
	if (rc)
		return rc;
	memset(mod, 0, sizeof(mod));
	boot_put32(mod, (uint32_t)info->initrd_start);
	boot_put32(mod + 4, (uint32_t)info->initrd_end);
	boot_put32(mod + 8, (uint32_t)name_gpa);
	boot_put32(mbi + MBI_MODS_COUNT, 1);
	return boot_scratch_write(c, BOOT_MODS_GPA, mod, sizeof(mod));
}

static int write_info(const struct boot_ctx *c)
{
	const struct boot_req *req = c->req;
	uint8_t mbi[MBI_SIZE];
	uint64_t lower = ram_from(req, 0), upper = ram_from(req, 1 * MIB);
	uint32_t flags = MBI_MEM | MBI_CMDLINE | MBI_MODS | MBI_LOADER;
	int rc;

	memset(mbi, 0, sizeof(mbi));
	boot_put32(mbi + MBI_MEM_LOWER, lower > 640 ? 640 : (uint32_t)lower);
	boot_put32(mbi + MBI_MEM_UPPER,
		   upper > UINT32_MAX ? UINT32_MAX : (uint32_t)upper);
	boot_put32(mbi + MBI_CMDLINE_PTR, BOOT_CMDLINE_BASE);
	rc = write_mods(c, mbi);
	if (rc)
		return rc;
	if (req->ne820) {
		rc = write_mmap(c);
		if (rc)
			return rc;
		flags |= MBI_MMAP;
		boot_put32(mbi + MBI_MMAP_LENGTH, req->ne820 * MB_MMAP_ENTRY);
		boot_put32(mbi + MBI_MMAP_ADDR, BOOT_MAP_GPA);
	}
	rc = boot_scratch_write(c, BOOT_STR_GPA, MB_LOADER_NAME,
				sizeof(MB_LOADER_NAME));
	if (rc)
		return rc;
	boot_put32(mbi + MBI_LOADER_NAME, BOOT_STR_GPA);
	boot_put32(mbi + MBI_FLAGS, flags);
	return boot_scratch_write(c, BOOT_INFO_GPA, mbi, sizeof(mbi));
}

int boot_mb_load(struct boot_ctx *c, long hoff, const struct boot_elf *e)
{
	uint32_t flags = boot_get32(c->head + hoff + 4), entry = 0;
	int rc;

	if (flags & 0xffffU & ~MB_F_KNOWN) {
		boot_kernel_err(c,
				"Multiboot header requires features khyve "
				"lacks (flags %#x)",
				flags);
		return -ENOEXEC;
	}
	if (flags & MB_F_ADDR)
		rc = load_kludge(c, (size_t)hoff, &entry);
	else if (e)
		rc = load_elf(c, e, &entry);
	else {
		boot_kernel_err(c, "Multiboot header without address fields "
				   "in a non-ELF image");
		rc = -ENOEXEC;
	}
	if (rc)
		return rc;
	rc = boot_initrd_load(c, 4 * GIB);
	if (rc)
		return rc;
	rc = boot_cmdline_write(c, BOOT_CMDLINE_MAX - 1);
	if (rc)
		return rc;
	rc = write_info(c);
	if (rc)
		return rc;
	boot_regs_prot32(c->regs, entry);
	c->regs->rax = MB_BOOT_MAGIC;
	c->regs->rbx = BOOT_INFO_GPA;
	rc = boot_gdt_write(c, c->regs);
	if (rc)
		return rc;
	c->info->format = BOOT_MULTIBOOT;
	return 0;
}
