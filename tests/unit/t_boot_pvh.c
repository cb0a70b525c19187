/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit test for PVH direct boot (src/boot/pvh.c, elf.c, boot.c): synthetic
 * 32- and 64-bit ELF kernels with a XEN_ELFNOTE_PHYS32_ENTRY note are
 * loaded into 64 MiB of fake RAM; the test checks the segments, the
 * hvm_start_info, its memmap and modlist, the command line, the initrd
 * placement, the entry registers and the GDT.  Then hostile files:
 * truncated, bad notes, program headers beyond EOF, overlapping or huge
 * segments, files that do not fit, and a mutation fuzzer.
 * Single-threaded.
 */
#include "tests/unit/t_boot_util.h"

#define CMDLINE "console=ttyS0 root=/dev/vda rw"
#define INITRD_LEN 100000

static void check_start_info(struct fx *f, const struct hv_regs *r,
			     const struct boot_info *in, int with_initrd,
			     const char *cmdline, uint64_t rsdp,
			     const char *name)
{
	uint64_t si = r->rbx, mm, ml;
	unsigned i;
	int good = 1;

	ok(si >= BOOT_SCRATCH_BASE && si + 56 <= BOOT_SCRATCH_END,
	   "%s: start_info in the scratch area", name);
	is_int(g32(f, si), 0x336ec578, "%s: magic", name);
	is_int(g32(f, si + 4), 1, "%s: version 1", name);
	is_int(g32(f, si + 8), 0, "%s: flags", name);
	is_int(g32(f, si + 12), with_initrd ? 1 : 0, "%s: nr_modules", name);
	is_str((const char *)g8(f, g64(f, si + 24)), cmdline,
	       "%s: cmdline_paddr -> command line", name);
	is_int(g64(f, si + 24), BOOT_CMDLINE_BASE, "%s: cmdline at %#llx", name,
	       BOOT_CMDLINE_BASE);
	is_int(g64(f, si + 32), rsdp, "%s: rsdp_paddr", name);
	is_int(g32(f, si + 48), f->ne820, "%s: memmap_entries", name);
	is_int(g32(f, si + 52), 0, "%s: reserved", name);
	mm = g64(f, si + 40);
	ok(mm >= BOOT_SCRATCH_BASE && mm + 24 * f->ne820 <= BOOT_SCRATCH_END,
	   "%s: memmap in the scratch area", name);
	for (i = 0; i < f->ne820; i++)
		good &= g64(f, mm + 24 * i) == f->e820[i].addr &&
			g64(f, mm + 24 * i + 8) == f->e820[i].size &&
			g32(f, mm + 24 * i + 16) == f->e820[i].type &&
			g32(f, mm + 24 * i + 20) == 0;
	ok(good, "%s: memmap entries equal the e820 map", name);
	ml = g64(f, si + 16);
	if (!with_initrd) {
		is_int(ml, 0, "%s: no modlist", name);
		return;
	}
	ok(ml >= BOOT_SCRATCH_BASE && ml + 32 <= BOOT_SCRATCH_END,
	   "%s: modlist in the scratch area", name);
	is_int(g64(f, ml), in->initrd_start, "%s: module 0 paddr", name);
	is_int(g64(f, ml + 8), INITRD_LEN, "%s: module 0 size", name);
	is_int(g64(f, ml + 16), 0, "%s: module 0 cmdline", name);
	is_int(g64(f, ml + 24), 0, "%s: module 0 reserved", name);
}

static void check_regs(struct fx *f, const struct hv_regs *r, const char *name)
{
	is_int(r->rip, FX_ELF_PVH_ENTRY, "%s: RIP = note entry", name);
	is_int(r->cr0, 0x11, "%s: CR0 = PE|ET", name);
	is_int(r->cr4, 0, "%s: CR4 = 0", name);
	is_int(r->cr3, 0, "%s: CR3 = 0", name);
	is_int(r->efer, 0, "%s: EFER = 0", name);
	is_int(r->rax, 0, "%s: EAX = 0", name);
	is_int(r->rsi, 0, "%s: ESI = 0", name);
	fx_check_segs(r, 0, name);
	fx_check_gdt(f, r, 0, name);
}

static void test_good(struct fx *f, int is64)
{
	const char *name = is64 ? "elf64" : "elf32";
	struct fx_elf e;
	struct boot_req req;
	struct hv_regs r;
	struct boot_info in;
	const char *kpath, *ipath;
	int rc;

	fx_build_elf(&e, is64, 1, 0);
	kpath = fx_write(f, is64 ? "pvh64" : "pvh32", e.img, e.size);
	ipath = fx_initrd(f, "initrd", INITRD_LEN);
	req = fx_req(f, kpath, ipath, CMDLINE);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "%s: boot_load succeeds", name);
	is_int(f->err_lines, 0, "%s: no messages", name);
	if (rc)
		diag("%s", f->err);
	is_int(in.format, BOOT_PVH, "%s: format PVH", name);
	is_int(in.kernel_start, FX_ELF_TEXT_PA, "%s: kernel_start", name);
	is_int(in.kernel_end, FX_ELF_DATA_PA + 0x2000, "%s: kernel_end", name);
	fx_check_elf_loaded(f, &e, name);
	fx_check_initrd(f, &in, INITRD_LEN, FX_RAM, name);
	check_start_info(f, &r, &in, 1, CMDLINE, FX_RSDP, name);
	check_regs(f, &r, name);
	fx_check_untouched(f, name);
}

static void test_minimal(struct fx *f)
{
	const char *name = "no initrd/cmdline";
	struct fx_elf e;
	struct boot_req req;
	struct hv_regs r;
	struct boot_info in;
	int rc;

	fx_build_elf(&e, 1, 1, 1); /* with a Multiboot header too */
	req = fx_req(f, fx_write(f, "min", e.img, e.size), NULL, NULL);
	req.rsdp = 0;
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "%s: boot_load succeeds", name);
	is_int(in.format, BOOT_PVH, "%s: PVH note wins over Multiboot", name);
	is_int(in.initrd_start, 0, "%s: no initrd start", name);
	is_int(in.initrd_end, 0, "%s: no initrd end", name);
	check_start_info(f, &r, &in, 0, "", 0, name);
	is_int(r.rax, 0, "%s: no Multiboot magic in EAX", name);
	/* NULL info is accepted */
	req = fx_req(f, fx_path(f, "min"), NULL, NULL);
	is_int(fx_run(f, &req, &r, NULL), 0, "%s: NULL info accepted", name);
}

/* Variants of the good ELF64 image, each broken in one way. */
static void test_hostile_elf(struct fx *f)
{
	struct fx_elf e;
	struct boot_req req;
	const char *p;
	uint32_t v;
	char key[160];

#define HOSTILE(tag, want, what)                                               \
	do {                                                                   \
		p = fx_write(f, tag, e.img, e.size);                           \
		req = fx_req(f, p, NULL, NULL);                                \
		snprintf(key, sizeof(key), "boot.kernel: %s: ", p);            \
		fx_reset_ram(f);                                               \
		fx_expect_fail(f, &req, want, key, what, tag);                 \
	} while (0)

	fx_build_elf(&e, 1, 1, 0);
	e.size = 40;
	HOSTILE("trunc-ehdr", -ENOEXEC, "truncated ELF header");

	fx_build_elf(&e, 1, 1, 0);
	e.size = 0x60;
	HOSTILE("trunc-phdrs", -ENOEXEC, "program headers");

	fx_build_elf(&e, 1, 1, 0);
	e.size = FX_ELF_DATA_OFF + 0x80;
	HOSTILE("trunc-segment", -ENOEXEC, "beyond the end of the file");

	fx_build_elf(&e, 1, 1, 0);
	e.img[EI_CLASS] = 7;
	HOSTILE("bad-class", -ENOEXEC, "bad ELF class");

	fx_build_elf(&e, 1, 1, 0);
	e.img[EI_DATA] = ELFDATA2MSB;
	HOSTILE("big-endian", -ENOEXEC, "little-endian");

	fx_build_elf(&e, 1, 1, 0);
	e.img[offsetof(Elf64_Ehdr, e_machine)] = EM_ARM;
	HOSTILE("arm", -ENOEXEC, "not an x86 ELF");

	fx_build_elf(&e, 1, 1, 0);
	e.img[offsetof(Elf64_Ehdr, e_phoff)] = 0x00;
	e.img[offsetof(Elf64_Ehdr, e_phoff) + 1] = 0x19; /* 0x1900 = EOF */
	HOSTILE("phoff-eof", -ENOEXEC, "beyond the end of the file");

	fx_build_elf(&e, 1, 1, 0);
	memset(e.img + offsetof(Elf64_Ehdr, e_phoff), 0xff, 8);
	HOSTILE("phoff-huge", -ENOEXEC, "beyond the end of the file");

	fx_build_elf(&e, 1, 1, 0);
	e.img[offsetof(Elf64_Ehdr, e_phnum)] = 0;
	HOSTILE("phnum-0", -ENOEXEC, "bad program header table");

	fx_build_elf(&e, 1, 1, 0);
	e.img[offsetof(Elf64_Ehdr, e_phentsize)] = 32;
	HOSTILE("phentsize", -ENOEXEC, "bad program header table");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 1, PH_OFFSET, 0xfffffffffffff000ULL);
	HOSTILE("seg-offset-huge", -ENOEXEC, "beyond the end of the file");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 1, PH_FILESZ, 0x3000);
	HOSTILE("filesz>memsz", -ENOEXEC, "p_filesz");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 1, PH_MEMSZ, 0xfffffffffff00000ULL);
	HOSTILE("memsz-wrap", -ENOEXEC, "wraps");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 1, PH_MEMSZ, 1ULL << 30);
	HOSTILE("memsz-huge", -ENOMEM, "1073741824 bytes at 0x300000");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 1, PH_PADDR, FX_ELF_TEXT_PA + 0x800);
	HOSTILE("overlap", -ENOEXEC, "overlap");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 0, PH_PADDR, 0x8000);
	fx_elf_ph_set(&e, 0, PH_MEMSZ, 0x800);
	HOSTILE("below-1M", -ENOEXEC, "below 1 MiB");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 1, PH_PADDR, FX_RAM - 0x1000);
	HOSTILE("beyond-ram", -ENOMEM, "8192 bytes at 0x3fff000");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 1, PH_PADDR, 0xe0000000ULL);
	HOSTILE("in-pci-hole", -ENOMEM, "RAM below 4 GiB ends at 0x4000000");

	fx_build_elf(&e, 1, 1, 0);
	v = 0xffffff00;
	memcpy(e.img + e.note_off + 4, &v, 4);
	HOSTILE("note-descsz", -ENOEXEC, "overruns its segment");

	fx_build_elf(&e, 1, 1, 0);
	v = 0x7ffffff0;
	memcpy(e.img + 0x200, &v, 4);
	HOSTILE("note-namesz", -ENOEXEC, "overruns its segment");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 2, PH_OFFSET, FX_ELF_SIZE - 8);
	HOSTILE("note-eof", -ENOEXEC, "note segment");

	fx_build_elf(&e, 1, 1, 0);
	fx_elf_ph_set(&e, 2, PH_FILESZ, 64ULL << 20);
	HOSTILE("note-huge", -ENOEXEC, "note segment");

	fx_build_elf(&e, 1, 1, 0);
	v = 2;
	memcpy(e.img + e.note_off + 4, &v, 4);
	HOSTILE("note-desc-2", -ENOEXEC, "PVH entry note has 2 bytes");

	fx_build_elf(&e, 1, 1, 0);
	v = 0x100000; /* entry outside both segments */
	memcpy(e.img + e.note_off + 16, &v, 4);
	HOSTILE("entry-outside", -ENOEXEC, "outside the loaded image");

	fx_build_elf(&e, 1, 0, 0);
	HOSTILE("no-note", -ENOEXEC,
		"not a bzImage, PVH ELF or Multiboot kernel");

	fx_build_elf(&e, 0, 1, 0);
	fx_elf_ph_set(&e, 1, PH_MEMSZ, 0xfffff000);
	HOSTILE("elf32-memsz", -ENOEXEC, "wraps");
#undef HOSTILE
}

static void test_hostile_files(struct fx *f)
{
	static const char garbage[] = "this is not a kernel at all";
	struct fx_elf e;
	struct boot_req req;
	const char *k;
	char key[160], *big;

	k = fx_write(f, "garbage", garbage, sizeof(garbage));
	req = fx_req(f, k, NULL, NULL);
	snprintf(key, sizeof(key), "boot.kernel: %s: ", k);
	fx_expect_fail(f, &req, -ENOEXEC, key,
		       "not a bzImage, PVH ELF or Multiboot kernel", "garbage");

	k = fx_write(f, "empty", "", 0);
	req = fx_req(f, k, NULL, NULL);
	snprintf(key, sizeof(key), "boot.kernel: %s: ", k);
	fx_expect_fail(f, &req, -ENOEXEC, key, "not a bzImage", "empty");

	req = fx_req(f, fx_path(f, "missing"), NULL, NULL);
	fx_expect_fail(f, &req, -ENOENT,
		       "boot.kernel: ", "No such file or directory",
		       "missing kernel");

	req = fx_req(f, f->dir, NULL, NULL);
	fx_expect_fail(f, &req, -EINVAL, "boot.kernel: ", "not a regular",
		       "kernel is a directory");

	k = fx_path(f, "fifo");
	if (mkfifo(k, 0600) == 0) {
		req = fx_req(f, k, NULL, NULL);
		fx_expect_fail(f, &req, -EINVAL,
			       "boot.kernel: ", "not a regular file",
			       "kernel is a FIFO");
		fx_build_elf(&e, 1, 1, 0);
		req = fx_req(f, fx_write(f, "good", e.img, e.size), k, NULL);
		fx_expect_fail(f, &req, -EINVAL,
			       "boot.initrd: ", "not a regular file",
			       "initrd is a FIFO");
	}

	req = fx_req(f, NULL, NULL, NULL);
	fx_expect_fail(f, &req, -EINVAL, "boot.kernel", "not set", "no kernel");

	fx_build_elf(&e, 1, 1, 0);
	k = fx_write(f, "good", e.img, e.size);
	req = fx_req(f, k, fx_path(f, "missing-initrd"), NULL);
	fx_expect_fail(f, &req, -ENOENT,
		       "boot.initrd: ", "No such file or directory",
		       "missing initrd");

	req = fx_req(f, k, fx_sparse(f, "big-initrd", 100 * MIB), NULL);
	fx_expect_fail(f, &req, -ENOMEM, "boot.initrd: ", "104857600 bytes",
		       "initrd too big");

	req = fx_req(f, k, fx_sparse(f, "tight-initrd", FX_RAM - 0x301000),
		     NULL);
	fx_expect_fail(f, &req, -ENOMEM, "boot.initrd: ",
		       "do not fit between the kernel end 0x302000",
		       "initrd would overlap the kernel");

	req = fx_req(f, k, fx_write(f, "empty-initrd", "", 0), NULL);
	fx_expect_fail(f, &req, -EINVAL, "boot.initrd: ", "empty",
		       "empty initrd");

	big = malloc(BOOT_CMDLINE_MAX + 1);
	memset(big, 'x', BOOT_CMDLINE_MAX);
	big[BOOT_CMDLINE_MAX] = 0;
	req = fx_req(f, k, NULL, big);
	fx_expect_fail(f, &req, -E2BIG, "boot.cmdline: ", "65536 bytes",
		       "cmdline too long");
	big[BOOT_CMDLINE_MAX - 1] = 0;
	req = fx_req(f, k, NULL, big);
	fx_reset_ram(f);
	{
		struct hv_regs r;

		is_int(fx_run(f, &req, &r, NULL), 0,
		       "longest command line accepted");
		is_int(strlen((const char *)g8(f, BOOT_CMDLINE_BASE)),
		       BOOT_CMDLINE_MAX - 1, "longest command line stored");
		ok(g_all(f, BOOT_FREE_BASE, 16, FX_FILL),
		   "longest command line stays inside its area");
	}
	free(big);

	f->ne820 = 200;
	{
		struct e820_entry many[200];
		unsigned i;

		for (i = 0; i < 200; i++)
			many[i] = (struct e820_entry){i * 0x1000, 0x1000, 1};
		req = fx_req(f, k, NULL, NULL);
		req.e820 = many;
		fx_expect_fail(f, &req, -EINVAL,
			       "boot.kernel: ", "200 entries is too large",
			       "e820 too large");
	}
	f->ne820 = 4;
}

static void test_small_ram(struct fx *f)
{
	struct fx_elf e;
	struct boot_req req;
	struct gmem small;
	char key[160];
	const char *k;

	/* Only 3 MiB of RAM: the data segment at 3 MiB does not fit. */
	fx_build_elf(&e, 1, 1, 0);
	k = fx_write(f, "good", e.img, e.size);
	gmem_init_fake(&small, f->ram, 3 * MIB);
	req = fx_req(f, k, NULL, NULL);
	req.mem = &small;
	snprintf(key, sizeof(key), "boot.kernel: %s: ", k);
	fx_expect_fail(f, &req, -ENOMEM, key,
		       "8192 bytes at 0x300000, but RAM below 4 GiB ends at "
		       "0x300000",
		       "kernel does not fit in RAM");

	/* 32 KiB of RAM: not even the scratch area. */
	gmem_init_fake(&small, f->ram, 0x8000);
	req.mem = &small;
	fx_expect_fail(f, &req, -ENOMEM, key, "RAM below 4 GiB", "tiny RAM");
}

int main(void)
{
	struct fx f;
	struct fx_elf e;
	size_t hot[] = {0,    0x18, 0x20, 0x36, 0x38,  0x40,  0x60, 0x78,
			0x98, 0xb0, 0xc8, 0xe8, 0x200, 0x224, 0x23c};

	plan_no_plan();
	fx_init(&f);
	test_good(&f, 1);
	test_good(&f, 0);
	test_minimal(&f);
	test_hostile_elf(&f);
	test_hostile_files(&f);
	test_small_ram(&f);
	fx_build_elf(&e, 1, 1, 0);
	hot[14] = e.note_off;
	fx_fuzz(&f, e.img, e.size, hot, 15, 3000, 0x40, "fuzz elf64");
	fx_build_elf(&e, 0, 1, 0);
	fx_fuzz(&f, e.img, e.size, hot, 10, 1500, 0x40, "fuzz elf32");
	fx_fini(&f);
	return done_testing();
}
