/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Internals shared by the direct-boot loaders (src/boot/ only): the
 * scratch-area map, the loader context, bounds-checked file access, the
 * guest-RAM placement checks and the CPU entry-state helpers.
 *
 * Error discipline: the function that detects a problem prints the one
 * error line (naming the config key and the file) and returns -errno;
 * callers only pass the value up.
 *
 * Threads: as boot.h (set-up only, no shared state).
 */
#ifndef KHYVE_BOOT_BOOT_INT_H
#define KHYVE_BOOT_BOOT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "boot/boot.h"
#include "core/layout.h"

/*
 * The scratch area [BOOT_SCRATCH_BASE, BOOT_SCRATCH_END):
 *   0x1000  GDT (6 entries, see BOOT_SEL_*)
 *   0x2000  PML4        (64-bit entry only)
 *   0x3000  PDPT
 *   0x4000  4 page directories, 2 MiB pages, identity map of 0-4 GiB
 *   0x8000  zero page / hvm_start_info / multiboot_info
 *   0x9000  e820 copy (hvm memmap, multiboot mmap)
 *   0xa000  module list (hvm modlist, multiboot mods)
 *   0xb000  strings (multiboot boot loader name, module name)
 */
#define BOOT_GDT_GPA 0x1000ULL
#define BOOT_PML4_GPA 0x2000ULL
#define BOOT_PDPT_GPA 0x3000ULL
#define BOOT_PD_GPA 0x4000ULL
#define BOOT_INFO_GPA 0x8000ULL
#define BOOT_MAP_GPA 0x9000ULL
#define BOOT_MODS_GPA 0xa000ULL
#define BOOT_STR_GPA 0xb000ULL

#define BOOT_PAGE 0x1000ULL

/* GDT selectors; the TSS descriptor takes two slots in long mode. */
#define BOOT_SEL_CODE 0x10
#define BOOT_SEL_DATA 0x18
#define BOOT_SEL_TSS 0x20
#define BOOT_GDT_ENTRIES 6

/* Bytes of the kernel file kept in memory for probing. */
#define BOOT_HEAD_MAX (8192 + 64)

/* An open, untrusted input file. */
struct boot_file {
	const char *key; /* "boot.kernel" / "boot.initrd" */
	const char *path;
	int fd;
	uint64_t size;
};

/* State shared by the probe and the format loaders during boot_load(). */
struct boot_ctx {
	const struct boot_req *req;
	struct boot_file kernel;
	struct hv_regs *regs;
	struct boot_info *info;
	uint8_t head[BOOT_HEAD_MAX]; /* first bytes of the kernel file */
	size_t headlen;
	uint64_t low_top; /* end of the RAM region at GPA 0, at most 4 GiB */
};

/* Little-endian field access on byte buffers. */
static inline uint16_t boot_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t boot_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t boot_get64(const uint8_t *p)
{
	return (uint64_t)boot_get32(p) | (uint64_t)boot_get32(p + 4) << 32;
}

static inline void boot_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void boot_put32(uint8_t *p, uint32_t v)
{
	boot_put16(p, (uint16_t)v);
	boot_put16(p + 2, (uint16_t)(v >> 16));
}

static inline void boot_put64(uint8_t *p, uint64_t v)
{
	boot_put32(p, (uint32_t)v);
	boot_put32(p + 4, (uint32_t)(v >> 32));
}

/* boot.c */

/*
 * Read exactly 'len' bytes at 'off' of 'f' into 'buf'.  'what' names the
 * piece in the error ("program headers").
 * Returns 0, -ENOEXEC (beyond end of file) or -errno (read error).
 */
int boot_file_read(const struct boot_file *f, uint64_t off, void *buf,
		   uint64_t len, const char *what);

/*
 * Check that [gpa, gpa+len) is RAM the kernel may use: at or above
 * KERNEL_MIN_BASE and below c->low_top.  'what' names the piece.
 * Returns 0 or -ENOMEM (error printed with the sizes).
 */
int boot_check_kernel_range(const struct boot_ctx *c, uint64_t gpa,
			    uint64_t len, const char *what);

/*
 * Copy 'len' bytes at file offset 'off' of the kernel to guest 'gpa' and
 * zero the following 'zero' bytes.  The range must have been checked.
 * Returns 0 or -errno.
 */
int boot_load_kernel_bytes(const struct boot_ctx *c, uint64_t off, uint64_t len,
			   uint64_t gpa, uint64_t zero);

/*
 * Load req->initrd (if any) page-aligned at the top of RAM below
 * min(c->low_top, max_end), above the kernel; fills info->initrd_*.
 * Returns 0, -ENOMEM (does not fit) or -errno (file).
 */
int boot_initrd_load(struct boot_ctx *c, uint64_t max_end);

/*
 * Write req->cmdline (or "") NUL-terminated at BOOT_CMDLINE_BASE.  'max'
 * is the longest length (without NUL) the kernel accepts.
 * Returns 0, -E2BIG or -EINVAL (no RAM there).
 */
int boot_cmdline_write(const struct boot_ctx *c, uint64_t max);

/*
 * Write 'len' bytes to guest 'gpa' inside the scratch area.
 * Returns 0 or -EINVAL (not RAM / outside scratch; error printed).
 */
int boot_scratch_write(const struct boot_ctx *c, uint64_t gpa, const void *buf,
		       size_t len);

/* Print "boot.kernel: <file>: <msg>" as one error line. */
void boot_kernel_err(const struct boot_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* entry.c */

/*
 * Write the GDT (null, null, code, data, TSS) at BOOT_GDT_GPA matching the
 * segment state in *r (which boot_regs_prot32/long64 filled).
 * Returns 0 or -EINVAL.
 */
int boot_gdt_write(const struct boot_ctx *c, const struct hv_regs *r);

/*
 * Write the identity map of the first 4 GiB (2 MiB pages) at
 * BOOT_PML4_GPA.  Returns 0 or -EINVAL.
 */
int boot_pagetables_write(const struct boot_ctx *c);

/* Flat 32-bit protected mode, paging off, at 'entry' (PVH, Multiboot). */
void boot_regs_prot32(struct hv_regs *r, uint32_t entry);
/* 64-bit long mode with the identity map, at 'entry' (bzImage). */
void boot_regs_long64(struct hv_regs *r, uint64_t entry);
/* The 8-byte descriptor that loads as *s (low half for system segs). */
uint64_t boot_seg_desc(const struct hv_seg *s);

/* elf.c */

#define BOOT_ELF_MAX_LOAD 32
#define BOOT_ELF_MAX_NOTE 8

struct boot_elf_seg {
	uint64_t paddr, vaddr, offset, filesz, memsz;
};

struct boot_elf {
	bool is64;
	uint64_t entry;
	unsigned nseg; /* PT_LOAD segments with p_memsz > 0, by paddr */
	struct boot_elf_seg seg[BOOT_ELF_MAX_LOAD];
	uint64_t lo, hi; /* physical range covered by the segments */
	unsigned nnote;	 /* PT_NOTE segments */
	struct {
		uint64_t offset, size, align;
	} note[BOOT_ELF_MAX_NOTE];
};

/* True when the kernel head starts with the ELF magic. */
bool boot_elf_is_elf(const struct boot_ctx *c);

/*
 * Validate the ELF header and program headers of the kernel and collect
 * its PT_LOAD segments.  Returns 0 or -ENOEXEC/-errno (error printed).
 */
int boot_elf_parse(const struct boot_ctx *c, struct boot_elf *e);

/*
 * Find note 'name'/'type' in the PT_NOTE segments; copies up to *desclen
 * bytes of its descriptor to 'desc' and sets *desclen to its real size.
 * Returns 1 (found), 0 (absent) or -ENOEXEC/-errno (malformed notes).
 */
int boot_elf_find_note(const struct boot_ctx *c, const struct boot_elf *e,
		       const char *name, uint32_t type, void *desc,
		       size_t *desclen);

/*
 * Range-check and copy every segment into guest RAM at its p_paddr;
 * sets info->kernel_start/end.  Returns 0 or -errno (error printed).
 */
int boot_elf_load(const struct boot_ctx *c, const struct boot_elf *e);

/* Format loaders: each returns 0 or -errno with its error printed. */
int boot_bzimage_load(struct boot_ctx *c);
int boot_pvh_load(struct boot_ctx *c, const struct boot_elf *e, uint64_t entry);
/* True when c->head holds a Linux bzImage boot sector + setup header. */
bool boot_bzimage_probe(const struct boot_ctx *c);
/*
 * Find a Multiboot v1 header (valid checksum) in the first 8 KiB.
 * Returns its offset, or -1.
 */
long boot_mb_find(const struct boot_ctx *c);
/* Load a Multiboot kernel whose header is at 'hoff'; 'e' NULL if no ELF. */
int boot_mb_load(struct boot_ctx *c, long hoff, const struct boot_elf *e);

#endif
