/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ELF kernel images (32- and 64-bit little-endian x86), for the PVH and
 * Multiboot loaders: header and program-header validation, PT_NOTE lookup
 * and loading of PT_LOAD segments at their physical addresses (p_paddr).
 *
 * The file is hostile: the program-header table and every segment and note
 * must lie inside the file, sizes must not wrap, PT_LOAD segments must not
 * overlap each other, and their memory must be guest RAM above 1 MiB.
 * Fields are decoded byte by byte (no casts of file data to structs).
 *
 * Threads: set-up only; no state.
 */
#include "boot/boot_int.h"

#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#define ELF_MAX_PHNUM 256
#define ELF_MAX_NOTE_BYTES (1U << 20)

/* One program header, decoded. */
struct phdr {
	uint32_t type;
	uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

bool boot_elf_is_elf(const struct boot_ctx *c)
{
	return c->headlen >= SELFMAG && memcmp(c->head, ELFMAG, SELFMAG) == 0;
}

static void phdr_decode(bool is64, const uint8_t *p, struct phdr *ph)
{
	if (is64) {
		ph->type = boot_get32(p + offsetof(Elf64_Phdr, p_type));
		ph->offset = boot_get64(p + offsetof(Elf64_Phdr, p_offset));
		ph->vaddr = boot_get64(p + offsetof(Elf64_Phdr, p_vaddr));
		ph->paddr = boot_get64(p + offsetof(Elf64_Phdr, p_paddr));
		ph->filesz = boot_get64(p + offsetof(Elf64_Phdr, p_filesz));
		ph->memsz = boot_get64(p + offsetof(Elf64_Phdr, p_memsz));
		ph->align = boot_get64(p + offsetof(Elf64_Phdr, p_align));
	} else {
		ph->type = boot_get32(p + offsetof(Elf32_Phdr, p_type));
		ph->offset = boot_get32(p + offsetof(Elf32_Phdr, p_offset));
		ph->vaddr = boot_get32(p + offsetof(Elf32_Phdr, p_vaddr));
		ph->paddr = boot_get32(p + offsetof(Elf32_Phdr, p_paddr));
		ph->filesz = boot_get32(p + offsetof(Elf32_Phdr, p_filesz));
		ph->memsz = boot_get32(p + offsetof(Elf32_Phdr, p_memsz));
		ph->align = boot_get32(p + offsetof(Elf32_Phdr, p_align));
	}
}

/* True when [off, off+len) lies inside the kernel file. */
static bool in_file(const struct boot_ctx *c, uint64_t off, uint64_t len)
{
	return off <= c->kernel.size && len <= c->kernel.size - off;
}

static int add_load(const struct boot_ctx *c, struct boot_elf *e, unsigned idx,
		    const struct phdr *ph)
{
	struct boot_elf_seg *s;

	if (ph->memsz == 0)
		return 0;
	if (ph->filesz > ph->memsz) {
		boot_kernel_err(c,
				"program header %u: p_filesz %#llx > "
				"p_memsz %#llx",
				idx, (unsigned long long)ph->filesz,
				(unsigned long long)ph->memsz);
		return -ENOEXEC;
	}
	if (!in_file(c, ph->offset, ph->filesz)) {
		boot_kernel_err(c,
				"program header %u: segment (%llu bytes at "
				"offset %llu) is beyond the end of the "
				"file (%llu bytes)",
				idx, (unsigned long long)ph->filesz,
				(unsigned long long)ph->offset,
				(unsigned long long)c->kernel.size);
		return -ENOEXEC;
	}
	if (ph->paddr + ph->memsz < ph->paddr ||
	    (!e->is64 && ph->paddr + ph->memsz > 0x100000000ULL)) {
		boot_kernel_err(c,
				"program header %u: address %#llx + size "
				"%#llx wraps",
				idx, (unsigned long long)ph->paddr,
				(unsigned long long)ph->memsz);
		return -ENOEXEC;
	}
	if (e->nseg == BOOT_ELF_MAX_LOAD) {
		boot_kernel_err(c, "more than %d PT_LOAD segments",
				BOOT_ELF_MAX_LOAD);
		return -ENOEXEC;
	}
	s = &e->seg[e->nseg++];
	s->paddr = ph->paddr;
	s->vaddr = ph->vaddr;
	s->offset = ph->offset;
	s->filesz = ph->filesz;
	s->memsz = ph->memsz;
	return 0;
}

static int add_note(const struct boot_ctx *c, struct boot_elf *e, unsigned idx,
		    const struct phdr *ph)
{
	if (!in_file(c, ph->offset, ph->filesz)) {
		boot_kernel_err(c,
				"program header %u: note segment (%llu "
				"bytes at offset %llu) is beyond the end "
				"of the file (%llu bytes)",
				idx, (unsigned long long)ph->filesz,
				(unsigned long long)ph->offset,
				(unsigned long long)c->kernel.size);
		return -ENOEXEC;
	}
	if (ph->filesz > ELF_MAX_NOTE_BYTES) {
		boot_kernel_err(c,
				"program header %u: note segment of %llu "
				"bytes is too large",
				idx, (unsigned long long)ph->filesz);
		return -ENOEXEC;
	}
	if (e->nnote == BOOT_ELF_MAX_NOTE) {
		boot_kernel_err(c, "more than %d PT_NOTE segments",
				BOOT_ELF_MAX_NOTE);
		return -ENOEXEC;
	}
	e->note[e->nnote].offset = ph->offset;
	e->note[e->nnote].size = ph->filesz;
	e->note[e->nnote].align = ph->align == 8 ? 8 : 4;
	e->nnote++;
	return 0;
}

/* Sort the PT_LOAD segments by address and reject overlaps. */
static int check_overlap(const struct boot_ctx *c, struct boot_elf *e)
{
	unsigned i, j;

	for (i = 1; i < e->nseg; i++) {
		struct boot_elf_seg t = e->seg[i];

		for (j = i; j > 0 && e->seg[j - 1].paddr > t.paddr; j--)
			e->seg[j] = e->seg[j - 1];
		e->seg[j] = t;
	}
	for (i = 0; i + 1 < e->nseg; i++) {
		if (e->seg[i].paddr + e->seg[i].memsz > e->seg[i + 1].paddr) {
			boot_kernel_err(
				c,
				"segments at %#llx and %#llx "
				"overlap",
				(unsigned long long)e->seg[i].paddr,
				(unsigned long long)e->seg[i + 1].paddr);
			return -ENOEXEC;
		}
	}
	if (e->nseg == 0) {
		boot_kernel_err(c, "no loadable segments");
		return -ENOEXEC;
	}
	e->lo = e->seg[0].paddr;
	e->hi = e->seg[e->nseg - 1].paddr + e->seg[e->nseg - 1].memsz;
	return 0;
}

/* Check e_ident, type and machine; fill is64, entry, phoff, phnum. */
static int parse_ehdr(const struct boot_ctx *c, struct boot_elf *e,
		      uint64_t *phoff, unsigned *phnum)
{
	const uint8_t *h = c->head;
	size_t need, phentsize;
	uint16_t type, machine;

	if (c->headlen < EI_NIDENT) {
		boot_kernel_err(c, "truncated ELF header");
		return -ENOEXEC;
	}
	if (h[EI_CLASS] != ELFCLASS32 && h[EI_CLASS] != ELFCLASS64) {
		boot_kernel_err(c, "bad ELF class %u", h[EI_CLASS]);
		return -ENOEXEC;
	}
	e->is64 = h[EI_CLASS] == ELFCLASS64;
	need = e->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	if (c->headlen < need) {
		boot_kernel_err(c, "truncated ELF header");
		return -ENOEXEC;
	}
	if (h[EI_DATA] != ELFDATA2LSB || h[EI_VERSION] != EV_CURRENT) {
		boot_kernel_err(c, "not a little-endian ELF version 1 file");
		return -ENOEXEC;
	}
	type = boot_get16(h + offsetof(Elf32_Ehdr, e_type));
	machine = boot_get16(h + offsetof(Elf32_Ehdr, e_machine));
	if ((type != ET_EXEC && type != ET_DYN) ||
	    (machine != EM_386 && machine != EM_X86_64)) {
		boot_kernel_err(c,
				"not an x86 ELF executable (type %u, "
				"machine %u)",
				type, machine);
		return -ENOEXEC;
	}
	if (e->is64) {
		e->entry = boot_get64(h + offsetof(Elf64_Ehdr, e_entry));
		*phoff = boot_get64(h + offsetof(Elf64_Ehdr, e_phoff));
		phentsize = boot_get16(h + offsetof(Elf64_Ehdr, e_phentsize));
		*phnum = boot_get16(h + offsetof(Elf64_Ehdr, e_phnum));
		need = sizeof(Elf64_Phdr);
	} else {
		e->entry = boot_get32(h + offsetof(Elf32_Ehdr, e_entry));
		*phoff = boot_get32(h + offsetof(Elf32_Ehdr, e_phoff));
		phentsize = boot_get16(h + offsetof(Elf32_Ehdr, e_phentsize));
		*phnum = boot_get16(h + offsetof(Elf32_Ehdr, e_phnum));
		need = sizeof(Elf32_Phdr);
	}
	if (*phnum == 0 || *phnum > ELF_MAX_PHNUM || phentsize != need) {
		boot_kernel_err(c,
				"bad program header table (%u entries of "
				"%zu bytes)",
				*phnum, phentsize);
		return -ENOEXEC;
	}
	if (!in_file(c, *phoff, (uint64_t)*phnum * need)) {
		boot_kernel_err(c,
				"program headers (%u at offset %llu) are "
				"beyond the end of the file (%llu bytes)",
				*phnum, (unsigned long long)*phoff,
				(unsigned long long)c->kernel.size);
		return -ENOEXEC;
	}
	return 0;
}

int boot_elf_parse(const struct boot_ctx *c, struct boot_elf *e)
{
	size_t phsize;
	uint64_t phoff;
	unsigned phnum, i;
	uint8_t *tab;
	struct phdr ph;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = parse_ehdr(c, e, &phoff, &phnum);
	if (rc)
		return rc;
	phsize = e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	tab = malloc(phnum * phsize);
	if (!tab) {
		boot_kernel_err(c, "out of memory");
		return -ENOMEM;
	}
	rc = boot_file_read(&c->kernel, phoff, tab, phnum * phsize,
			    "program headers");
	for (i = 0; rc == 0 && i < phnum; i++) {
		phdr_decode(e->is64, tab + i * phsize, &ph);
		if (ph.type == PT_LOAD)
			rc = add_load(c, e, i, &ph);
		else if (ph.type == PT_NOTE)
			rc = add_note(c, e, i, &ph);
	}
	free(tab);
	if (rc)
		return rc;
	return check_overlap(c, e);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Search one note segment held in buf[0..size). */
static int scan_notes(const struct boot_ctx *c, const uint8_t *buf,
		      uint64_t size, uint64_t align, const char *name,
		      uint32_t type, void *desc, size_t *desclen)
{
	uint64_t namelen = strlen(name) + 1;
	uint64_t pos = 0, nsz, dsz;
	uint32_t ntype;

	while (size - pos >= 12) {
		nsz = boot_get32(buf + pos);
		dsz = boot_get32(buf + pos + 4);
		ntype = boot_get32(buf + pos + 8);
		pos += 12;
		if (align_up(nsz, align) > size - pos ||
		    dsz > size - pos - align_up(nsz, align)) {
			boot_kernel_err(c,
					"ELF note with name size %llu and "
					"descriptor size %llu overruns its "
					"segment",
					(unsigned long long)nsz,
					(unsigned long long)dsz);
			return -ENOEXEC;
		}
		if (nsz == namelen && ntype == type &&
		    memcmp(buf + pos, name, namelen) == 0) {
			pos += align_up(nsz, align);
			memcpy(desc, buf + pos,
			       dsz < *desclen ? dsz : *desclen);
			*desclen = dsz;
			return 1;
		}
		pos += align_up(nsz, align);
		pos += align_up(dsz, align) < size - pos ? align_up(dsz, align)
							 : size - pos;
	}
	return 0;
}

int boot_elf_find_note(const struct boot_ctx *c, const struct boot_elf *e,
		       const char *name, uint32_t type, void *desc,
		       size_t *desclen)
{
	unsigned i;
	uint8_t *buf;
	int rc = 0;

	for (i = 0; rc == 0 && i < e->nnote; i++) {
		buf = malloc(e->note[i].size ? e->note[i].size : 1);
		if (!buf) {
			boot_kernel_err(c, "out of memory");
			return -ENOMEM;
		}
		rc = boot_file_read(&c->kernel, e->note[i].offset, buf,
				    e->note[i].size, "note segment");
		if (rc == 0)
			rc = scan_notes(c, buf, e->note[i].size,
					e->note[i].align, name, type, desc,
					desclen);
		free(buf);
	}
	return rc;
}

int boot_elf_load(const struct boot_ctx *c, const struct boot_elf *e)
{
	const struct boot_elf_seg *s;
	unsigned i;
	int rc;

	for (i = 0; i < e->nseg; i++) {
		s = &e->seg[i];
		rc = boot_check_kernel_range(c, s->paddr, s->memsz, "segment");
		if (rc)
			return rc;
	}
	for (i = 0; i < e->nseg; i++) {
		s = &e->seg[i];
		rc = boot_load_kernel_bytes(c, s->offset, s->filesz, s->paddr,
					    s->memsz - s->filesz);
		if (rc)
			return rc;
	}
	c->info->kernel_start = e->lo;
	c->info->kernel_end = e->hi;
	return 0;
}
