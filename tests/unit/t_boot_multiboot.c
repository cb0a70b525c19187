/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit test for Multiboot v1 direct boot (src/boot/multiboot.c): a 32-bit
 * and a 64-bit ELF with a Multiboot header (no PVH note), an a.out-kludge
 * raw image, and an ELF whose header carries address fields are loaded
 * into 64 MiB of fake RAM; the test checks the image placement, the
 * multiboot_info (memory sizes, command line, module 0 = initrd with its
 * file name, mmap = e820, boot loader name), EAX/EBX, the 32-bit entry
 * state and the GDT.  Then hostile headers and a mutation fuzzer.
 * Single-threaded.
 */
#include "tests/unit/t_boot_util.h"

#define CMDLINE "kernel.elf --verbose"
#define INITRD_LEN 50000
#define KL_HOFF 0x40
#define KL_LOAD 0x200000U
#define KL_SIZE 0x1800

struct kludge {
	uint8_t img[0x3000];
	size_t size;
};

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Raw image: header at 0x40, loads 0x1000 bytes at 2 MiB, bss to +0x3000. */
static void build_kludge(struct kludge *k)
{
	uint8_t *h;
	size_t i;

	memset(k, 0, sizeof(*k));
	k->size = KL_SIZE;
	for (i = 0; i < KL_SIZE; i++)
		k->img[i] = (uint8_t)(i * 5 + 9);
	h = k->img + KL_HOFF;
	fx_mb_header(h, 0x10003);
	put32(h + 12, KL_LOAD + KL_HOFF); /* header_addr */
	put32(h + 16, KL_LOAD);		  /* load_addr */
	put32(h + 20, KL_LOAD + 0x1000);  /* load_end_addr */
	put32(h + 24, KL_LOAD + 0x3000);  /* bss_end_addr */
	put32(h + 28, KL_LOAD + 0x80);	  /* entry_addr */
}

static void set_flags(uint8_t *h, uint32_t flags)
{
	fx_mb_header(h, flags);
}

static void check_mbi(struct fx *f, const struct hv_regs *r,
		      const struct boot_info *in, const char *initrd,
		      const char *cmdline, const char *name)
{
	uint64_t mbi = r->rbx, mods, mmap;
	unsigned i, good = 1;

	is_int(r->rax, 0x2BADB002, "%s: EAX = Multiboot magic", name);
	ok(mbi >= BOOT_SCRATCH_BASE && mbi + 120 <= BOOT_SCRATCH_END,
	   "%s: multiboot_info in the scratch area", name);
	is_int(g32(f, mbi), 0x24d,
	       "%s: flags = mem|cmdline|mods|mmap|loader name", name);
	is_int(g32(f, mbi + 4), 639, "%s: mem_lower (KiB)", name);
	is_int(g32(f, mbi + 8), (FX_RAM - MIB) / 1024, "%s: mem_upper (KiB)",
	       name);
	is_int(g32(f, mbi + 12), 0, "%s: boot_device unset", name);
	is_str((const char *)g8(f, g32(f, mbi + 16)), cmdline,
	       "%s: command line", name);
	is_int(g32(f, mbi + 20), initrd ? 1 : 0, "%s: mods_count", name);
	mods = g32(f, mbi + 24);
	if (initrd) {
		ok(mods >= BOOT_SCRATCH_BASE && mods + 16 <= BOOT_SCRATCH_END,
		   "%s: mods in the scratch area", name);
		is_int(g32(f, mods), in->initrd_start, "%s: mod_start", name);
		is_int(g32(f, mods + 4), in->initrd_end, "%s: mod_end", name);
		is_str((const char *)g8(f, g32(f, mods + 8)), initrd,
		       "%s: module string = initrd file name", name);
		is_int(g32(f, mods + 12), 0, "%s: module reserved", name);
	}
	ok(g_all(f, mbi + 28, 16, 0), "%s: no symbol table", name);
	is_int(g32(f, mbi + 44), 24 * f->ne820, "%s: mmap_length", name);
	mmap = g32(f, mbi + 48);
	ok(mmap >= BOOT_SCRATCH_BASE &&
		   mmap + 24 * f->ne820 <= BOOT_SCRATCH_END,
	   "%s: mmap in the scratch area", name);
	for (i = 0; i < f->ne820; i++)
		good &= g32(f, mmap + 24 * i) == 20 &&
			g64(f, mmap + 24 * i + 4) == f->e820[i].addr &&
			g64(f, mmap + 24 * i + 12) == f->e820[i].size &&
			g32(f, mmap + 24 * i + 20) == f->e820[i].type;
	ok(good, "%s: mmap entries equal the e820 map", name);
	ok(g_all(f, mbi + 52, 12, 0), "%s: no drives/config table", name);
	is_str((const char *)g8(f, g32(f, mbi + 64)), "khyve",
	       "%s: boot_loader_name", name);
	ok(g_all(f, mbi + 68, 120 - 68, 0), "%s: no APM/VBE/framebuffer", name);
}

static void check_regs(struct fx *f, const struct hv_regs *r, uint64_t entry,
		       const char *name)
{
	is_int(r->rip, entry, "%s: RIP = entry", name);
	is_int(r->cr0, 0x11, "%s: CR0 = PE|ET", name);
	ok(r->cr3 == 0 && r->cr4 == 0 && r->efer == 0,
	   "%s: CR3, CR4, EFER zero", name);
	fx_check_segs(r, 0, name);
	fx_check_gdt(f, r, 0, name);
}

static void test_elf(struct fx *f, int is64)
{
	const char *name = is64 ? "mb elf64" : "mb elf32";
	struct boot_req req;
	struct hv_regs r;
	struct boot_info in;
	struct fx_elf e;
	const char *ipath;
	int rc;

	fx_build_elf(&e, is64, 0, 1);
	ipath = fx_initrd(f, "module.img", INITRD_LEN);
	req = fx_req(f, fx_write(f, name, e.img, e.size), ipath, CMDLINE);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "%s: boot_load succeeds", name);
	is_int(f->err_lines, 0, "%s: no messages", name);
	if (rc)
		diag("%s", f->err);
	is_int(in.format, BOOT_MULTIBOOT, "%s: format", name);
	is_int(in.kernel_start, FX_ELF_TEXT_PA, "%s: kernel_start", name);
	is_int(in.kernel_end, FX_ELF_DATA_PA + 0x2000, "%s: kernel_end", name);
	fx_check_elf_loaded(f, &e, name);
	fx_check_initrd(f, &in, INITRD_LEN, FX_RAM, name);
	check_mbi(f, &r, &in, ipath, CMDLINE, name);
	check_regs(f, &r, FX_ELF_MB_ENTRY, name);
	fx_check_untouched(f, name);
}

static void test_kludge(struct fx *f)
{
	const char *name = "a.out kludge";
	struct boot_req req;
	struct hv_regs r;
	struct boot_info in;
	struct kludge k;
	struct fx_elf e;
	int rc;

	build_kludge(&k);
	req = fx_req(f, fx_write(f, "kludge", k.img, k.size), NULL, NULL);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "%s: boot_load succeeds", name);
	if (rc)
		diag("%s", f->err);
	is_int(in.format, BOOT_MULTIBOOT, "%s: format", name);
	is_int(in.kernel_start, KL_LOAD, "%s: kernel_start", name);
	is_int(in.kernel_end, KL_LOAD + 0x3000, "%s: kernel_end = bss_end",
	       name);
	ok(memcmp(g8(f, KL_LOAD), k.img, 0x1000) == 0,
	   "%s: text+data copied from file offset 0", name);
	ok(g_all(f, KL_LOAD + 0x1000, 0x2000, 0),
	   "%s: bss zeroed (file bytes past load_end not loaded)", name);
	ok(g_all(f, KL_LOAD + 0x3000, 0x1000, FX_FILL),
	   "%s: nothing past bss_end", name);
	check_mbi(f, &r, &in, NULL, "", name);
	check_regs(f, &r, KL_LOAD + 0x80, name);
	fx_check_untouched(f, name);

	/* load_end_addr 0: the whole file from the load offset. */
	put32(k.img + KL_HOFF + 20, 0);
	req = fx_req(f, fx_write(f, "kludge-end0", k.img, k.size), NULL, NULL);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "load_end 0: boot_load succeeds");
	ok(memcmp(g8(f, KL_LOAD), k.img, KL_SIZE) == 0,
	   "load_end 0: the whole file loaded");
	ok(g_all(f, KL_LOAD + KL_SIZE, 0x3000 - KL_SIZE, 0),
	   "load_end 0: bss after the file zeroed");

	/* Header not at the start of the loaded image (load_addr lower). */
	build_kludge(&k);
	put32(k.img + KL_HOFF + 12, 0x400020);
	put32(k.img + KL_HOFF + 16, 0x400000);
	put32(k.img + KL_HOFF + 20, 0x400800);
	put32(k.img + KL_HOFF + 24, 0);
	put32(k.img + KL_HOFF + 28, 0x400100);
	req = fx_req(f, fx_write(f, "kludge-off", k.img, k.size), NULL, NULL);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "header offset 0x20 into the image: succeeds");
	ok(memcmp(g8(f, 0x400000), k.img + 0x20, 0x800) == 0,
	   "header offset: loaded from file offset 0x20");
	is_int(in.kernel_end, 0x400800, "header offset: no bss");
	is_int(r.rip, 0x400100, "header offset: entry");

	/* ELF with address fields: the fields win over the ELF headers. */
	fx_build_elf(&e, 1, 0, 0);
	fx_mb_header(e.img + FX_ELF_MB_OFF, 0x10002);
	put32(e.img + FX_ELF_MB_OFF + 12, 0x400040);
	put32(e.img + FX_ELF_MB_OFF + 16, 0x400000);
	put32(e.img + FX_ELF_MB_OFF + 20, 0x400800);
	put32(e.img + FX_ELF_MB_OFF + 24, 0x401000);
	put32(e.img + FX_ELF_MB_OFF + 28, 0x400010);
	req = fx_req(f, fx_write(f, "elf-addr", e.img, e.size), NULL, NULL);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "ELF + address fields: succeeds");
	is_int(in.format, BOOT_MULTIBOOT, "ELF + address fields: multiboot");
	ok(memcmp(g8(f, 0x400000), e.img + FX_ELF_TEXT_OFF, 0x800) == 0,
	   "ELF + address fields: placed by the fields");
	ok(g_all(f, FX_ELF_TEXT_PA, 0x1000, FX_FILL),
	   "ELF + address fields: ELF segments ignored");
	is_int(r.rip, 0x400010, "ELF + address fields: entry_addr");
}

static void test_hostile(struct fx *f)
{
	struct boot_req req;
	struct kludge k;
	struct fx_elf e;
	const char *p;
	char key[160];
	uint8_t *h = k.img + KL_HOFF;

#define HOSTILE(tag, img, len, want, what)                                     \
	do {                                                                   \
		p = fx_write(f, tag, img, len);                                \
		req = fx_req(f, p, NULL, NULL);                                \
		snprintf(key, sizeof(key), "boot.kernel: %s: ", p);            \
		fx_reset_ram(f);                                               \
		fx_expect_fail(f, &req, want, key, what, tag);                 \
	} while (0)

	build_kludge(&k);
	set_flags(h, 0x10000 | 0x8);
	HOSTILE("flag3", k.img, k.size, -ENOEXEC,
		"requires features khyve lacks (flags 0x10008)");

	build_kludge(&k);
	set_flags(h, 0x8000);
	HOSTILE("flag15", k.img, k.size, -ENOEXEC, "requires features");

	build_kludge(&k);
	h[8] ^= 1; /* checksum */
	HOSTILE("checksum", k.img, k.size, -ENOEXEC,
		"not a bzImage, PVH ELF or Multiboot kernel");

	build_kludge(&k);
	set_flags(h, 0x3);
	HOSTILE("no-addr", k.img, k.size, -ENOEXEC,
		"without address fields in a non-ELF image");

	build_kludge(&k);
	k.size = KL_HOFF + 16;
	HOSTILE("trunc-hdr", k.img, k.size, -ENOEXEC,
		"truncated Multiboot header");

	build_kludge(&k);
	put32(h + 12, KL_LOAD - 4);
	HOSTILE("hdr<load", k.img, k.size, -ENOEXEC, "do not match");

	build_kludge(&k);
	put32(h + 16, KL_LOAD - 0x1000);
	HOSTILE("hdr-offset", k.img, k.size, -ENOEXEC, "do not match");

	build_kludge(&k);
	put32(h + 20, KL_LOAD + KL_SIZE + 1);
	HOSTILE("load-end-eof", k.img, k.size, -ENOEXEC,
		"load_end_addr 0x201801 is outside the file");

	build_kludge(&k);
	put32(h + 20, KL_LOAD - 1);
	HOSTILE("load-end<load", k.img, k.size, -ENOEXEC, "load_end_addr");

	build_kludge(&k);
	put32(h + 24, KL_LOAD + 0x800);
	HOSTILE("bss<load-end", k.img, k.size, -ENOEXEC, "bss_end_addr");

	build_kludge(&k);
	put32(h + 28, KL_LOAD + 0x3000);
	HOSTILE("entry-outside", k.img, k.size, -ENOEXEC,
		"entry_addr 0x203000 is outside");

	build_kludge(&k);
	put32(h + 12, 0x8040);
	put32(h + 16, 0x8000);
	put32(h + 20, 0x9000);
	put32(h + 24, 0xa000);
	put32(h + 28, 0x8080);
	HOSTILE("below-1M", k.img, k.size, -ENOEXEC, "below 1 MiB");

	build_kludge(&k);
	put32(h + 24, 0xfff00000);
	HOSTILE("bss-huge", k.img, k.size, -ENOMEM,
		"RAM below 4 GiB ends at 0x4000000");

	/* A header beyond the first 8 KiB is not looked for. */
	{
		static uint8_t far[0x2100];

		memset(far, 0x90, sizeof(far));
		memcpy(far + 0x2000, k.img + KL_HOFF, 32);
		HOSTILE("beyond-8k", far, sizeof(far), -ENOEXEC,
			"not a bzImage, PVH ELF or Multiboot kernel");
	}

	fx_build_elf(&e, 0, 0, 1);
	put32(e.img + offsetof(Elf32_Ehdr, e_entry), 0x12345678);
	HOSTILE("elf-entry", e.img, e.size, -ENOEXEC,
		"ELF entry point 0x12345678 is outside");

	fx_build_elf(&e, 0, 0, 1);
	fx_elf_ph_set(&e, 1, PH_MEMSZ, 0x40000000);
	HOSTILE("elf-huge-seg", e.img, e.size, -ENOMEM, "1073741824 bytes");

	fx_build_elf(&e, 0, 0, 1);
	fx_mb_header(e.img + FX_ELF_MB_OFF, 0x10003);
	memset(e.img + FX_ELF_MB_OFF + 12, 0, 20);
	HOSTILE("elf-zero-addr", e.img, e.size, -ENOEXEC, "below 1 MiB");
#undef HOSTILE

	/* The initrd's name must fit in the scratch area. */
	{
		char longname[256];

		build_kludge(&k);
		memset(longname, 'n', 200);
		longname[200] = 0;
		p = fx_initrd(f, longname, 1000);
		req = fx_req(f, fx_write(f, "kl", k.img, k.size), p, NULL);
		fx_reset_ram(f);
		is_int(fx_run(f, &req, &(struct hv_regs){0}, NULL), 0,
		       "long initrd name accepted");
	}
}

int main(void)
{
	static const size_t hot[] = {KL_HOFF,	   KL_HOFF + 4,	 KL_HOFF + 12,
				     KL_HOFF + 16, KL_HOFF + 20, KL_HOFF + 24,
				     KL_HOFF + 28};
	struct fx f;
	struct kludge k;
	struct fx_elf e;
	size_t ehot[] = {0x18, 0x1c,	      0x20,
			 0x2a, 0x2c,	      0x40,
			 0x60, FX_ELF_MB_OFF, FX_ELF_MB_OFF + 4};

	plan_no_plan();
	fx_init(&f);
	test_elf(&f, 0);
	test_elf(&f, 1);
	test_kludge(&f);
	test_hostile(&f);
	build_kludge(&k);
	fx_fuzz(&f, k.img, k.size, hot, 7, 3000, 0x10, "fuzz kludge");
	fx_build_elf(&e, 0, 0, 1);
	fx_fuzz(&f, e.img, e.size, ehot, 9, 2000, 0x40, "fuzz mb elf32");
	fx_fini(&f);
	return done_testing();
}
