/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Shared fixture for the direct-boot unit tests (t_boot_*.c): 64 MiB of
 * fake guest RAM with a PC-like e820 map, a temporary directory for the
 * synthetic kernel images the tests write, stderr capture (to check that a
 * failure prints exactly one line), guest-memory readers, a decoder that
 * checks the GDT in guest RAM against the hidden segment state in
 * struct hv_regs, and a mutation fuzzer for hostile images.
 *
 * Single-threaded, header-only (static inline), included once per test.
 */
#ifndef KHYVE_TESTS_T_BOOT_UTIL_H
#define KHYVE_TESTS_T_BOOT_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot/boot.h"
#include "core/gmem.h"
#include "core/layout.h"
#include "firmware/e820.h"
#include "tests/tap.h"

#include <elf.h>

#define FX_RAM (64 * MIB)
#define FX_FILL 0xa5 /* RAM is pre-filled with this */
#define FX_RSDP 0xf0000ULL
#define FX_MAX_FILES 64

struct fx {
	uint8_t *ram;
	struct gmem mem;
	struct e820_entry e820[4];
	unsigned ne820;
	char dir[64];
	char files[FX_MAX_FILES][320];
	unsigned nfiles;
	char err[4096]; /* stderr of the last fx_run() */
	int err_lines;
};

static inline void fx_reset_ram(struct fx *f)
{
	memset(f->ram, FX_FILL, FX_RAM);
}

static inline void fx_init(struct fx *f)
{
	const char *tmp = getenv("TMPDIR");

	memset(f, 0, sizeof(*f));
	f->ram = malloc(FX_RAM);
	if (!f->ram) {
		printf("Bail out! no memory\n");
		exit(1);
	}
	fx_reset_ram(f);
	gmem_init_fake(&f->mem, f->ram, FX_RAM);
	f->e820[0] = (struct e820_entry){0, EBDA_BASE, E820_RAM};
	f->e820[1] = (struct e820_entry){
		EBDA_BASE, LEGACY_HOLE_BASE - EBDA_BASE, E820_RESERVED};
	f->e820[2] = (struct e820_entry){
		FW_TABLES_BASE, FW_TABLES_END - FW_TABLES_BASE, E820_RESERVED};
	f->e820[3] = (struct e820_entry){KERNEL_MIN_BASE,
					 FX_RAM - KERNEL_MIN_BASE, E820_RAM};
	f->ne820 = 4;
	snprintf(f->dir, sizeof(f->dir), "%s/t_boot.XXXXXX",
		 tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
}

static inline void fx_fini(struct fx *f)
{
	unsigned i;

	for (i = 0; i < f->nfiles; i++)
		unlink(f->files[i]);
	rmdir(f->dir);
	free(f->ram);
}

/* Path of file 'name' in the temp dir (registered for clean-up). */
static inline const char *fx_path(struct fx *f, const char *name)
{
	unsigned i;

	for (i = 0; i < f->nfiles; i++) {
		const char *slash = strrchr(f->files[i], '/');

		if (strcmp(slash + 1, name) == 0)
			return f->files[i];
	}
	if (f->nfiles == FX_MAX_FILES) {
		printf("Bail out! too many files\n");
		exit(1);
	}
	snprintf(f->files[f->nfiles], sizeof(f->files[0]), "%s/%s", f->dir,
		 name);
	return f->files[f->nfiles++];
}

static inline const char *fx_write(struct fx *f, const char *name,
				   const void *buf, size_t len)
{
	const char *path = fx_path(f, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len) {
		printf("Bail out! write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
	return path;
}

/* A sparse file of 'len' bytes. */
static inline const char *fx_sparse(struct fx *f, const char *name,
				    uint64_t len)
{
	const char *path = fx_path(f, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, (off_t)len) != 0) {
		printf("Bail out! truncate %s: %s\n", path, strerror(errno));
		exit(1);
	}
	close(fd);
	return path;
}

static inline struct boot_req fx_req(struct fx *f, const char *kernel,
				     const char *initrd, const char *cmdline)
{
	struct boot_req r = {
		.kernel = kernel,
		.initrd = initrd,
		.cmdline = cmdline,
		.mem = &f->mem,
		.e820 = f->e820,
		.ne820 = f->ne820,
		.rsdp = FX_RSDP,
	};

	return r;
}

/* boot_load() with stderr captured into f->err / f->err_lines. */
static inline int fx_run(struct fx *f, const struct boot_req *req,
			 struct hv_regs *regs, struct boot_info *info)
{
	FILE *tmp = tmpfile();
	int saved, rc;
	size_t n;
	char *p;

	fflush(stderr);
	saved = dup(2);
	if (!tmp || saved < 0 || dup2(fileno(tmp), 2) < 0) {
		printf("Bail out! cannot capture stderr\n");
		exit(1);
	}
	rc = boot_load(req, regs, info);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(tmp);
	n = fread(f->err, 1, sizeof(f->err) - 1, tmp);
	f->err[n] = 0;
	fclose(tmp);
	f->err_lines = 0;
	for (p = f->err; *p; p++)
		f->err_lines += *p == '\n';
	return rc;
}

/*
 * Expect boot_load() to fail with 'want' and print exactly one line that
 * contains 'key' (e.g. "boot.kernel: /path") and 'what'.
 */
static inline void fx_expect_fail(struct fx *f, const struct boot_req *req,
				  int want, const char *key, const char *what,
				  const char *name)
{
	struct hv_regs regs;
	struct boot_info info;
	int rc = fx_run(f, req, &regs, &info);

	is_int(rc, want, "%s: fails with the right errno", name);
	is_int(f->err_lines, 1, "%s: one error line", name);
	ok(strstr(f->err, key) != NULL, "%s: message names '%s'", name, key);
	ok(strstr(f->err, what) != NULL, "%s: message says '%s'", name, what);
	if (!strstr(f->err, key) || !strstr(f->err, what) ||
	    f->err_lines != 1 || rc != want || getenv("T_BOOT_SHOW"))
		diag("stderr was: %.*s",
		     (int)(strlen(f->err) - (f->err[0] != 0)), f->err);
}

static inline uint8_t *g8(struct fx *f, uint64_t gpa)
{
	return f->ram + gpa;
}

static inline uint16_t g16(struct fx *f, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, f->ram + gpa, 2);
	return v;
}

static inline uint32_t g32(struct fx *f, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, f->ram + gpa, 4);
	return v;
}

static inline uint64_t g64(struct fx *f, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, f->ram + gpa, 8);
	return v;
}

/* True when every byte of [gpa, gpa+len) equals 'v'. */
static inline int g_all(struct fx *f, uint64_t gpa, uint64_t len, uint8_t v)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		if (f->ram[gpa + i] != v)
			return 0;
	return 1;
}

/*
 * The loader may only write the scratch area, the command line, the kernel
 * and the initrd: the rest of low RAM (IVT page, the gap after the scratch
 * area, free low RAM, EBDA, legacy hole, firmware tables) is untouched.
 */
static inline void fx_check_untouched(struct fx *f, const char *name)
{
	ok(g_all(f, 0, BOOT_SCRATCH_BASE, FX_FILL), "%s: page 0 untouched",
	   name);
	ok(g_all(f, BOOT_SCRATCH_END, BOOT_CMDLINE_BASE - BOOT_SCRATCH_END,
		 FX_FILL),
	   "%s: 0x10000-0x1ffff untouched", name);
	ok(g_all(f, BOOT_FREE_BASE, FW_TABLES_BASE - BOOT_FREE_BASE, FX_FILL),
	   "%s: free low RAM, EBDA, VGA hole untouched", name);
	ok(g_all(f, FW_TABLES_BASE, FW_TABLES_END - FW_TABLES_BASE, FX_FILL),
	   "%s: firmware table area untouched", name);
}

/* Check one GDT descriptor against the hidden state the loader set. */
static inline void fx_check_desc(struct fx *f, const struct hv_regs *r,
				 const struct hv_seg *s, const char *seg,
				 int long_mode, const char *name)
{
	uint64_t d, base;
	uint32_t limit;
	int good;

	if (!s->present && s->sel == 0) {
		ok(1, "%s: %s null/unusable", name, seg);
		return;
	}
	if ((uint32_t)s->sel + 7 > r->gdt_limit) {
		ok(0, "%s: %s selector %#x beyond GDT limit %#x", name, seg,
		   s->sel, r->gdt_limit);
		return;
	}
	d = g64(f, r->gdt_base + (s->sel & ~7u));
	base = ((d >> 16) & 0xffffff) | ((d >> 56) & 0xff) << 24;
	if (long_mode && !((d >> 44) & 1)) /* system: 16-byte descriptor */
		base |= (g64(f, r->gdt_base + (s->sel & ~7u) + 8) &
			 0xffffffffULL)
			<< 32;
	limit = (uint32_t)((d & 0xffff) | ((d >> 48) & 0xf) << 16);
	if ((d >> 55) & 1)
		limit = limit << 12 | 0xfff;
	good = base == s->base && limit == s->limit &&
	       ((d >> 40) & 0xf) == s->type && ((d >> 44) & 1) == s->s &&
	       ((d >> 45) & 3) == s->dpl && ((d >> 47) & 1) == s->present &&
	       ((d >> 52) & 1) == s->avl && ((d >> 53) & 1) == s->l &&
	       ((d >> 54) & 1) == s->db && ((d >> 55) & 1) == s->g;
	ok(good, "%s: GDT[%#x] matches hidden %s state", name, s->sel, seg);
	if (!good)
		diag("descriptor %016llx vs base %llx limit %x type %u s %u "
		     "dpl %u p %u l %u db %u g %u",
		     (unsigned long long)d, (unsigned long long)s->base,
		     s->limit, s->type, s->s, s->dpl, s->present, s->l, s->db,
		     s->g);
}

static inline void fx_check_gdt(struct fx *f, const struct hv_regs *r,
				int long_mode, const char *name)
{
	ok(r->gdt_base >= BOOT_SCRATCH_BASE &&
		   r->gdt_base + r->gdt_limit < BOOT_SCRATCH_END,
	   "%s: GDT inside the scratch area", name);
	is_int(g64(f, r->gdt_base), 0, "%s: GDT[0] is null", name);
	fx_check_desc(f, r, &r->cs, "cs", long_mode, name);
	fx_check_desc(f, r, &r->ds, "ds", long_mode, name);
	fx_check_desc(f, r, &r->es, "es", long_mode, name);
	fx_check_desc(f, r, &r->ss, "ss", long_mode, name);
	fx_check_desc(f, r, &r->fs, "fs", long_mode, name);
	fx_check_desc(f, r, &r->gs, "gs", long_mode, name);
	fx_check_desc(f, r, &r->tr, "tr", long_mode, name);
}

static inline int fx_flat(const struct hv_seg *s, uint8_t type, int db, int l)
{
	return s->base == 0 && s->limit == 0xffffffff && s->type == type &&
	       s->present && s->s && s->dpl == 0 && s->g && s->db == db &&
	       s->l == l;
}

/* An initrd of 'len' bytes with a recognisable pattern. */
static inline const char *fx_initrd(struct fx *f, const char *name, size_t len)
{
	uint8_t *buf = malloc(len);
	const char *path;
	size_t i;

	for (i = 0; buf && i < len; i++)
		buf[i] = (uint8_t)(i * 31 + 7 + i / 4096);
	path = fx_write(f, name, buf, buf ? len : 0);
	free(buf);
	return path;
}

/* Initrd placement: page-aligned, as high as allowed, contents intact. */
static inline void fx_check_initrd(struct fx *f, const struct boot_info *in,
				   size_t len, uint64_t top, const char *name)
{
	size_t i;
	int same = 1;

	is_int(in->initrd_end - in->initrd_start, len, "%s: initrd size", name);
	is_int(in->initrd_start & 0xfff, 0, "%s: initrd page-aligned", name);
	is_int(in->initrd_start, (top - len) & ~0xfffULL,
	       "%s: initrd at the top of allowed RAM", name);
	ok(in->initrd_start >= in->kernel_end, "%s: initrd above the kernel",
	   name);
	for (i = 0; i < len && in->initrd_end <= FX_RAM; i++)
		same &= f->ram[in->initrd_start + i] ==
			(uint8_t)(i * 31 + 7 + i / 4096);
	ok(same && in->initrd_end <= FX_RAM, "%s: initrd contents", name);
}

/* Segment and control state common to every entry mode. */
static inline void fx_check_segs(const struct hv_regs *r, int long_mode,
				 const char *name)
{
	ok(fx_flat(&r->cs, 0xb, !long_mode, long_mode), "%s: CS flat %s code",
	   name, long_mode ? "64-bit" : "32-bit");
	is_int(r->cs.sel, 0x10, "%s: CS selector 0x10", name);
	ok(fx_flat(&r->ds, 0x3, 1, 0) && fx_flat(&r->es, 0x3, 1, 0) &&
		   fx_flat(&r->ss, 0x3, 1, 0) && fx_flat(&r->fs, 0x3, 1, 0) &&
		   fx_flat(&r->gs, 0x3, 1, 0),
	   "%s: DS/ES/SS/FS/GS flat data", name);
	ok(r->ds.sel == 0x18 && r->es.sel == 0x18 && r->ss.sel == 0x18,
	   "%s: data selectors 0x18", name);
	ok(r->tr.base == 0 && r->tr.limit == 0x67 && r->tr.type == 11 &&
		   r->tr.present && !r->tr.s && r->tr.sel != 0,
	   "%s: TR is a busy TSS, base 0, limit 0x67", name);
	ok(!r->ldt.present, "%s: LDTR unusable", name);
	is_int(r->rflags, 0x2, "%s: RFLAGS 0x2", name);
	is_int(r->idt_limit, 0, "%s: IDT empty", name);
	ok(r->rcx == 0 && r->rdx == 0 && r->rdi == 0 && r->rsp == 0 &&
		   r->rbp == 0 && r->r8 == 0 && r->r15 == 0,
	   "%s: other GPRs zero", name);
	is_int(r->apic_base, 0, "%s: APIC base left to the hv layer", name);
	ok(r->dr6 == 0xffff0ff0 && r->dr7 == 0x400, "%s: DR6/DR7 reset values",
	   name);
}

/*
 * A synthetic ELF kernel (32- or 64-bit):
 *   0x000 ELF header, 0x040 program headers:
 *         [0] PT_LOAD file 0x1000+0x800 -> paddr 0x200000, memsz 0x1000
 *         [1] PT_LOAD file 0x1800+0x100 -> paddr 0x300000, memsz 0x2000
 *         [2] PT_NOTE file 0x200
 *   0x200 notes: GNU build-id, Xen type 5 ("xen-3.0"), and with 'pvh' the
 *         Xen type 18 PHYS32_ENTRY note (4 bytes for ELF32, 8 for ELF64)
 *         holding 0x200010
 *   with 'mb' a Multiboot header (flags 3) at file 0x1040; e_entry is the
 *   virtual address of paddr 0x200020.
 */
#define FX_ELF_TEXT_PA 0x200000ULL
#define FX_ELF_DATA_PA 0x300000ULL
#define FX_ELF_PVH_ENTRY 0x200010ULL
#define FX_ELF_MB_ENTRY 0x200020ULL
#define FX_ELF_TEXT_OFF 0x1000
#define FX_ELF_DATA_OFF 0x1800
#define FX_ELF_SIZE 0x1900
#define FX_ELF_MB_OFF 0x1040

struct fx_elf {
	uint8_t img[FX_ELF_SIZE];
	size_t size;
	int is64;
	size_t note_off; /* the PHYS32_ENTRY note header */
	size_t notes_end;
};

enum fx_ph { PH_TYPE, PH_OFFSET, PH_VADDR, PH_PADDR, PH_FILESZ, PH_MEMSZ };

static inline void fx_elf_ph_set(struct fx_elf *e, unsigned idx,
				 enum fx_ph field, uint64_t v)
{
	if (e->is64) {
		Elf64_Phdr ph;
		uint8_t *p = e->img + 0x40 + idx * sizeof(ph);

		memcpy(&ph, p, sizeof(ph));
		switch (field) {
		case PH_TYPE:
			ph.p_type = (uint32_t)v;
			break;
		case PH_OFFSET:
			ph.p_offset = v;
			break;
		case PH_VADDR:
			ph.p_vaddr = v;
			break;
		case PH_PADDR:
			ph.p_paddr = v;
			break;
		case PH_FILESZ:
			ph.p_filesz = v;
			break;
		case PH_MEMSZ:
			ph.p_memsz = v;
			break;
		}
		memcpy(p, &ph, sizeof(ph));
	} else {
		Elf32_Phdr ph;
		uint8_t *p = e->img + 0x40 + idx * sizeof(ph);

		memcpy(&ph, p, sizeof(ph));
		switch (field) {
		case PH_TYPE:
			ph.p_type = (uint32_t)v;
			break;
		case PH_OFFSET:
			ph.p_offset = (uint32_t)v;
			break;
		case PH_VADDR:
			ph.p_vaddr = (uint32_t)v;
			break;
		case PH_PADDR:
			ph.p_paddr = (uint32_t)v;
			break;
		case PH_FILESZ:
			ph.p_filesz = (uint32_t)v;
			break;
		case PH_MEMSZ:
			ph.p_memsz = (uint32_t)v;
			break;
		}
		memcpy(p, &ph, sizeof(ph));
	}
}

static inline size_t fx_note(uint8_t *p, const char *name, uint32_t type,
			     const void *desc, uint32_t dsz)
{
	uint32_t nsz = (uint32_t)strlen(name) + 1;
	size_t n = 12;

	memcpy(p, &nsz, 4);
	memcpy(p + 4, &dsz, 4);
	memcpy(p + 8, &type, 4);
	memcpy(p + n, name, nsz);
	n += (nsz + 3) & ~3u;
	memcpy(p + n, desc, dsz);
	n += (dsz + 3) & ~3u;
	return n;
}

static inline void fx_mb_header(uint8_t *p, uint32_t flags)
{
	uint32_t magic = 0x1BADB002, sum = 0u - magic - flags;

	memcpy(p, &magic, 4);
	memcpy(p + 4, &flags, 4);
	memcpy(p + 8, &sum, 4);
}

static inline void fx_build_elf(struct fx_elf *e, int is64, int pvh, int mb)
{
	static const uint8_t buildid[20] = {1, 2, 3, 4, 5};
	uint64_t vbase = is64 ? 0xffffffff80000000ULL : 0xc0000000ULL;
	uint64_t entry = FX_ELF_PVH_ENTRY;
	size_t i, n = 0x200;
	uint8_t *h = e->img;

	memset(e, 0, sizeof(*e));
	e->is64 = is64;
	e->size = FX_ELF_SIZE;
	for (i = 0; i < 0x800; i++)
		h[FX_ELF_TEXT_OFF + i] = (uint8_t)(i * 7 + 1);
	for (i = 0; i < 0x100; i++)
		h[FX_ELF_DATA_OFF + i] = (uint8_t)(i * 13 + 5);
	n += fx_note(h + n, "GNU", 3, buildid, sizeof(buildid));
	n += fx_note(h + n, "Xen", 5, "xen-3.0", 8);
	e->note_off = n;
	if (pvh)
		n += fx_note(h + n, "Xen", 18, &entry, is64 ? 8 : 4);
	e->notes_end = n;
	if (mb)
		fx_mb_header(h + FX_ELF_MB_OFF, 3);
	memcpy(h, ELFMAG, SELFMAG);
	h[EI_CLASS] = is64 ? ELFCLASS64 : ELFCLASS32;
	h[EI_DATA] = ELFDATA2LSB;
	h[EI_VERSION] = EV_CURRENT;
	if (is64) {
		Elf64_Ehdr eh;
		Elf64_Phdr ph[3] = {
			{PT_LOAD, PF_R | PF_X, FX_ELF_TEXT_OFF,
			 vbase + FX_ELF_TEXT_PA, FX_ELF_TEXT_PA, 0x800, 0x1000,
			 0x1000},
			{PT_LOAD, PF_R | PF_W, FX_ELF_DATA_OFF,
			 vbase + FX_ELF_DATA_PA, FX_ELF_DATA_PA, 0x100, 0x2000,
			 0x1000},
			{PT_NOTE, PF_R, 0x200, 0, 0, n - 0x200, n - 0x200, 4},
		};

		memcpy(&eh, h, sizeof(eh));
		eh.e_type = ET_EXEC;
		eh.e_machine = EM_X86_64;
		eh.e_version = EV_CURRENT;
		eh.e_entry = vbase + FX_ELF_MB_ENTRY;
		eh.e_phoff = 0x40;
		eh.e_ehsize = sizeof(eh);
		eh.e_phentsize = sizeof(Elf64_Phdr);
		eh.e_phnum = 3;
		memcpy(h, &eh, sizeof(eh));
		memcpy(h + 0x40, ph, sizeof(ph));
	} else {
		Elf32_Ehdr eh;
		Elf32_Phdr ph[3] = {
			{PT_LOAD, FX_ELF_TEXT_OFF,
			 (uint32_t)(vbase + FX_ELF_TEXT_PA), FX_ELF_TEXT_PA,
			 0x800, 0x1000, PF_R | PF_X, 0x1000},
			{PT_LOAD, FX_ELF_DATA_OFF,
			 (uint32_t)(vbase + FX_ELF_DATA_PA), FX_ELF_DATA_PA,
			 0x100, 0x2000, PF_R | PF_W, 0x1000},
			{PT_NOTE, 0x200, 0, 0, (uint32_t)(n - 0x200),
			 (uint32_t)(n - 0x200), PF_R, 4},
		};

		memcpy(&eh, h, sizeof(eh));
		eh.e_type = ET_EXEC;
		eh.e_machine = EM_386;
		eh.e_version = EV_CURRENT;
		eh.e_entry = (uint32_t)(vbase + FX_ELF_MB_ENTRY);
		eh.e_phoff = 0x40;
		eh.e_ehsize = sizeof(eh);
		eh.e_phentsize = sizeof(Elf32_Phdr);
		eh.e_phnum = 3;
		memcpy(h, &eh, sizeof(eh));
		memcpy(h + 0x40, ph, sizeof(ph));
	}
}

/* Check both ELF PT_LOAD segments landed, bss zeroed. */
static inline void fx_check_elf_loaded(struct fx *f, const struct fx_elf *e,
				       const char *name)
{
	ok(memcmp(g8(f, FX_ELF_TEXT_PA), e->img + FX_ELF_TEXT_OFF, 0x800) == 0,
	   "%s: text segment copied", name);
	ok(g_all(f, FX_ELF_TEXT_PA + 0x800, 0x800, 0),
	   "%s: text segment tail zeroed", name);
	ok(memcmp(g8(f, FX_ELF_DATA_PA), e->img + FX_ELF_DATA_OFF, 0x100) == 0,
	   "%s: data segment copied", name);
	ok(g_all(f, FX_ELF_DATA_PA + 0x100, 0x2000 - 0x100, 0),
	   "%s: bss zeroed", name);
	ok(g_all(f, FX_ELF_TEXT_PA + 0x1000,
		 FX_ELF_DATA_PA - FX_ELF_TEXT_PA - 0x1000, FX_FILL),
	   "%s: gap between segments untouched", name);
}

/*
 * Mutation fuzzing: 'iters' copies of 'img' with a few bytes changed (and
 * every 'step'-th prefix), each loaded once.  Every run must return 0 or
 * a negative errno with exactly one error line, and must never crash
 * (ASan/UBSan builds catch out-of-bounds and overflow).
 */
static inline void fx_fuzz(struct fx *f, const uint8_t *img, size_t len,
			   const size_t *hot, unsigned nhot, unsigned iters,
			   size_t step, const char *name)
{
	uint8_t *buf = malloc(len);
	struct boot_req req;
	struct hv_regs regs;
	struct boot_info info;
	unsigned i, j, bad = 0, fails = 0;
	const char *path;
	size_t cut;
	int rc;

	srand(12345);
	for (i = 0; i < iters && buf; i++) {
		memcpy(buf, img, len);
		for (j = 0; j < 1 + (unsigned)rand() % 4; j++) {
			size_t pos = nhot && rand() % 2
					     ? hot[rand() % nhot] +
						       (size_t)(rand() % 8)
					     : (size_t)rand() % len;
			if (pos < len)
				buf[pos] = (uint8_t)rand();
		}
		path = fx_write(f, "fuzz", buf, len);
		req = fx_req(f, path, NULL, "console=ttyS0");
		rc = fx_run(f, &req, &regs, &info);
		fails += rc != 0;
		if (rc > 0 || (rc < 0 && f->err_lines != 1)) {
			if (!bad++)
				diag("iteration %u: rc %d, %d lines: %s", i, rc,
				     f->err_lines, f->err);
		}
	}
	for (cut = 0; cut < len && buf; cut += step) {
		path = fx_write(f, "fuzz", img, cut);
		req = fx_req(f, path, NULL, NULL);
		rc = fx_run(f, &req, &regs, &info);
		fails += rc != 0;
		if (rc > 0 || (rc < 0 && f->err_lines != 1))
			bad++;
	}
	free(buf);
	is_int(bad, 0, "%s: %u mutated/truncated images fail cleanly", name,
	       iters);
	ok(fails > 0, "%s: the fuzzer did reach error paths (%u)", name, fails);
}

#endif
