/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit test for Linux bzImage direct boot (src/boot/bzimage.c, entry.c):
 * a synthetic bzImage (boot sector, setup header, 8 KiB protected-mode
 * payload) is loaded into 64 MiB of fake RAM; the test checks the load
 * address (pref_address, relocation), the zero page (copied setup header,
 * loader fields, command line, initrd, e820 table, RSDP), the page tables
 * by walking them, the 64-bit entry registers and the GDT.  Then hostile
 * images: old protocol, no 64-bit entry, truncation, sizes that do not
 * fit, a command line over the kernel's limit, and a mutation fuzzer.
 * Single-threaded.
 */
#include "tests/unit/t_boot_util.h"

#define SETUP_SECTS 2
#define SETUP_SIZE ((SETUP_SECTS + 1) * 512)
#define PAYLOAD 0x2000
#define IMG_SIZE (SETUP_SIZE + PAYLOAD)
#define PREF 0x1000000ULL
#define INIT_SIZE 0x400000U
#define HDR_END 0x268
#define CMDLINE "console=ttyS0 earlyprintk=serial panic=-1"
#define INITRD_LEN 300000

struct bzi {
	uint8_t img[IMG_SIZE];
	size_t size;
};

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void build(struct bzi *b)
{
	uint8_t *h = b->img;
	size_t i;

	memset(b, 0, sizeof(*b));
	b->size = IMG_SIZE;
	for (i = 0; i < SETUP_SIZE; i++)
		h[i] = (uint8_t)(0x40 + i % 7); /* "setup code" */
	for (i = 0; i < PAYLOAD; i++)
		h[SETUP_SIZE + i] = (uint8_t)(i * 11 + 3);
	memset(h + 0x1f1, 0, HDR_END - 0x1f1);
	h[0x1f1] = SETUP_SECTS;
	put16(h + 0x1f2, 1);		/* root_flags */
	put32(h + 0x1f4, PAYLOAD / 16); /* syssize */
	put16(h + 0x1fa, 0xffff);	/* vid_mode */
	put16(h + 0x1fc, 0x0801);	/* root_dev */
	put16(h + 0x1fe, 0xaa55);
	h[0x200] = 0xeb;
	h[0x201] = HDR_END - 0x202;
	memcpy(h + 0x202, "HdrS", 4);
	put16(h + 0x206, 0x020f);     /* protocol 2.15 */
	put16(h + 0x20e, 0x0123);     /* kernel_version */
	h[0x211] = 0x01;	      /* LOADED_HIGH */
	put32(h + 0x214, 0x100000);   /* code32_start */
	put32(h + 0x22c, 0x7fffffff); /* initrd_addr_max */
	put32(h + 0x230, 0x200000);   /* kernel_alignment */
	h[0x234] = 1;		      /* relocatable */
	h[0x235] = 21;		      /* min_alignment */
	put16(h + 0x236, 0x3);	      /* XLF_KERNEL_64 | ABOVE_4G */
	put32(h + 0x238, 2047);	      /* cmdline_size */
	put32(h + 0x248, 0x1234);     /* payload_offset */
	put32(h + 0x24c, 0x5678);     /* payload_length */
	put64(h + 0x258, PREF);	      /* pref_address */
	put32(h + 0x260, INIT_SIZE);  /* init_size */
	put32(h + 0x264, 0x190);      /* handover_offset */
}

/* Walk the 4-level tables from CR3 for 'va'; return the PA or ~0. */
static uint64_t walk(struct fx *f, uint64_t cr3, uint64_t va)
{
	uint64_t e;

	e = g64(f, (cr3 & ~0xfffULL) + ((va >> 39) & 511) * 8);
	if (!(e & 1) || !(e & 2))
		return ~0ULL;
	e = g64(f, (e & 0xffffffffff000ULL) + ((va >> 30) & 511) * 8);
	if (!(e & 1) || !(e & 2) || (e & 0x80))
		return ~0ULL;
	e = g64(f, (e & 0xffffffffff000ULL) + ((va >> 21) & 511) * 8);
	if (!(e & 1) || !(e & 2) || !(e & 0x80))
		return ~0ULL;
	return (e & 0xfffffffe00000ULL) + (va & 0x1fffff);
}

static void check_pagetables(struct fx *f, const struct hv_regs *r,
			     const char *name)
{
	static const uint64_t probe[] = {
		0,	   0x1234,     0x8000,	   0x20000,    0x1000200,
		0x3ffffff, 0x40000000, 0xbfffffff, 0xfee00000, 0xffffffff};
	unsigned i, bad = 0;
	uint64_t va;

	ok(r->cr3 >= BOOT_SCRATCH_BASE && r->cr3 < BOOT_SCRATCH_END &&
		   !(r->cr3 & 0xfff),
	   "%s: CR3 page-aligned in the scratch area", name);
	for (va = 0; va < 4 * GIB; va += 2 * MIB)
		bad += walk(f, r->cr3, va) != va;
	is_int(bad, 0, "%s: all of 0-4 GiB identity-mapped in 2 MiB pages",
	       name);
	bad = 0;
	for (i = 0; i < sizeof(probe) / sizeof(probe[0]); i++)
		bad += walk(f, r->cr3, probe[i]) != probe[i];
	is_int(bad, 0, "%s: probe addresses translate to themselves", name);
	is_int(walk(f, r->cr3, 4 * GIB), ~0ULL, "%s: 4 GiB is not mapped",
	       name);
	is_int(walk(f, r->cr3, 0xffffffff81000000ULL), ~0ULL,
	       "%s: high half is not mapped", name);
}

static void check_zero_page(struct fx *f, const struct bzi *b,
			    const struct hv_regs *r, const struct boot_info *in,
			    uint64_t load, const char *cmdline,
			    const char *name)
{
	uint64_t zp = r->rsi;
	unsigned i, same = 1;

	ok(zp >= BOOT_SCRATCH_BASE && zp + 4096 <= BOOT_SCRATCH_END &&
		   !(zp & 0xfff),
	   "%s: zero page page-aligned in the scratch area", name);
	for (i = 0x1f1; i < HDR_END; i++) {
		if ((i >= 0x210 && i < 0x212) || (i >= 0x214 && i < 0x220) ||
		    (i >= 0x224 && i < 0x22c))
			continue; /* fields the loader fills */
		same &= *g8(f, zp + i) == b->img[i];
	}
	ok(same, "%s: setup header copied from the image", name);
	ok(g_all(f, zp + HDR_END, 0x290 - HDR_END, 0),
	   "%s: nothing after the header end", name);
	is_int(*g8(f, zp + 0x210), 0xff, "%s: type_of_loader 0xff", name);
	is_int(*g8(f, zp + 0x211), 0x81, "%s: loadflags LOADED_HIGH|HEAP",
	       name);
	is_int(g16(f, zp + 0x224), 0xfe00, "%s: heap_end_ptr", name);
	is_int(g32(f, zp + 0x214), load, "%s: code32_start = load", name);
	is_int(g32(f, zp + 0x228), BOOT_CMDLINE_BASE, "%s: cmd_line_ptr", name);
	is_str((const char *)g8(f, g32(f, zp + 0x228)), cmdline,
	       "%s: command line", name);
	is_int(g32(f, zp + 0x218), in->initrd_start, "%s: ramdisk_image", name);
	is_int(g32(f, zp + 0x21c), in->initrd_end - in->initrd_start,
	       "%s: ramdisk_size", name);
	is_int(g32(f, zp + 0xc0) | g32(f, zp + 0xc4) | g32(f, zp + 0xc8), 0,
	       "%s: ext_ramdisk/ext_cmd_line high halves zero", name);
	is_int(g64(f, zp + 0x070), FX_RSDP, "%s: acpi_rsdp_addr", name);
	is_int(*g8(f, zp + 0x1e8), f->ne820, "%s: e820_entries", name);
	same = 1;
	for (i = 0; i < f->ne820; i++)
		same &= g64(f, zp + 0x2d0 + 20 * i) == f->e820[i].addr &&
			g64(f, zp + 0x2d0 + 20 * i + 8) == f->e820[i].size &&
			g32(f, zp + 0x2d0 + 20 * i + 16) == f->e820[i].type;
	ok(same, "%s: e820_table equals the e820 map", name);
	ok(g_all(f, zp, 0x70, 0) && g_all(f, zp + 0x78, 0x1e8 - 0x78, 0) &&
		   g_all(f, zp + 0x2d0 + 20 * f->ne820,
			 0x1000 - 0x2d0 - 20 * f->ne820, 0),
	   "%s: rest of the zero page is zero", name);
}

static void check_regs(struct fx *f, const struct hv_regs *r, uint64_t load,
		       const char *name)
{
	is_int(r->rip, load + 0x200, "%s: RIP = load + 0x200", name);
	is_int(r->cr0, 0x80000011, "%s: CR0 = PE|ET|PG", name);
	is_int(r->cr4, 0x20, "%s: CR4 = PAE", name);
	is_int(r->efer, 0x500, "%s: EFER = LME|LMA", name);
	ok(r->rax == 0 && r->rbx == 0, "%s: RAX/RBX zero", name);
	fx_check_segs(r, 1, name);
	fx_check_gdt(f, r, 1, name);
	check_pagetables(f, r, name);
}

static void test_good(struct fx *f)
{
	const char *name = "bzImage";
	struct boot_req req;
	struct hv_regs r;
	struct boot_info in;
	struct bzi b;
	int rc;

	build(&b);
	req = fx_req(f, fx_write(f, "bz", b.img, b.size),
		     fx_initrd(f, "initrd", INITRD_LEN), CMDLINE);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "%s: boot_load succeeds", name);
	is_int(f->err_lines, 0, "%s: no messages", name);
	if (rc)
		diag("%s", f->err);
	is_int(in.format, BOOT_BZIMAGE, "%s: format", name);
	is_int(in.kernel_start, PREF, "%s: loaded at pref_address", name);
	is_int(in.kernel_end, PREF + INIT_SIZE,
	       "%s: kernel_end covers "
	       "init_size",
	       name);
	ok(memcmp(g8(f, PREF), b.img + SETUP_SIZE, PAYLOAD) == 0,
	   "%s: protected-mode kernel copied", name);
	ok(g_all(f, PREF - 0x1000, 0x1000, FX_FILL),
	   "%s: setup code not loaded below the kernel", name);
	fx_check_initrd(f, &in, INITRD_LEN, FX_RAM, name);
	check_zero_page(f, &b, &r, &in, PREF, CMDLINE, name);
	check_regs(f, &r, PREF, name);
	fx_check_untouched(f, name);
}

static void test_variants(struct fx *f)
{
	struct boot_req req;
	struct hv_regs r;
	struct boot_info in;
	struct bzi b;
	int rc;

	/* pref_address does not fit: relocated to 2 MiB alignment. */
	build(&b);
	put64(b.img + 0x258, 0x3f00000);
	req = fx_req(f, fx_write(f, "reloc", b.img, b.size), NULL, NULL);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "relocated: boot_load succeeds");
	is_int(in.kernel_start, 0x200000, "relocated: lowest aligned address");
	is_int(r.rip, 0x200200, "relocated: entry follows");
	ok(memcmp(g8(f, 0x200000), b.img + SETUP_SIZE, PAYLOAD) == 0,
	   "relocated: kernel copied");
	is_int(g32(f, r.rsi + 0x214), 0x200000, "relocated: code32_start");
	is_int(g32(f, r.rsi + 0x218), 0, "relocated: no ramdisk_image");
	is_int(g32(f, r.rsi + 0x21c), 0, "relocated: no ramdisk_size");
	is_str((const char *)g8(f, g32(f, r.rsi + 0x228)), "",
	       "relocated: empty command line");

	/* kernel_alignment 16 MiB cannot fit; min_alignment 2 MiB can. */
	put32(b.img + 0x230, 0x1000000);
	put32(b.img + 0x260, 0x3100000);
	req = fx_req(f, fx_write(f, "minalign", b.img, b.size), NULL, NULL);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "min_alignment: boot_load succeeds");
	is_int(in.kernel_start, 0x200000, "min_alignment: 2 MiB aligned");

	/* initrd_addr_max caps the initrd; protocol 2.13: no RSDP field. */
	build(&b);
	put32(b.img + 0x22c, 0x1ffffff);
	put16(b.img + 0x206, 0x020d);
	req = fx_req(f, fx_write(f, "lowinitrd", b.img, b.size),
		     fx_path(f, "initrd"), "x");
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "initrd_addr_max: boot_load succeeds");
	fx_check_initrd(f, &in, INITRD_LEN, 0x2000000, "initrd_addr_max");
	is_int(g64(f, r.rsi + 0x70), 0, "protocol 2.13: acpi_rsdp_addr unset");

	/* syssize 0: the whole rest of the file is the kernel. */
	build(&b);
	put32(b.img + 0x1f4, 0);
	req = fx_req(f, fx_write(f, "syssize0", b.img, b.size), NULL, NULL);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "syssize 0: boot_load succeeds");
	ok(memcmp(g8(f, PREF), b.img + SETUP_SIZE, PAYLOAD) == 0,
	   "syssize 0: kernel copied");

	/* setup_sects 0 means 4. */
	build(&b);
	b.img[0x1f1] = 0;
	put32(b.img + 0x1f4, (PAYLOAD - 0x400) / 16);
	req = fx_req(f, fx_write(f, "sects0", b.img, b.size), NULL, NULL);
	fx_reset_ram(f);
	rc = fx_run(f, &req, &r, &in);
	is_int(rc, 0, "setup_sects 0: boot_load succeeds");
	ok(memcmp(g8(f, PREF), b.img + 5 * 512, PAYLOAD - 0x400) == 0,
	   "setup_sects 0: kernel starts after 5 sectors");
}

static void test_hostile(struct fx *f)
{
	struct boot_req req;
	struct bzi b;
	const char *p;
	char key[160];

#define HOSTILE(tag, want, what)                                               \
	do {                                                                   \
		p = fx_write(f, tag, b.img, b.size);                           \
		req = fx_req(f, p, NULL, NULL);                                \
		snprintf(key, sizeof(key), "boot.kernel: %s: ", p);            \
		fx_reset_ram(f);                                               \
		fx_expect_fail(f, &req, want, key, what, tag);                 \
	} while (0)

	build(&b);
	put16(b.img + 0x206, 0x0205);
	HOSTILE("proto-2.05", -ENOEXEC, "boot protocol 2.05 is too old");

	build(&b);
	put16(b.img + 0x236, 0x2);
	HOSTILE("no-xlf64", -ENOEXEC, "XLF_KERNEL_64");

	build(&b);
	put16(b.img + 0x206, 0x020a);
	HOSTILE("proto-2.10", -ENOEXEC, "XLF_KERNEL_64");

	build(&b);
	b.img[0x211] = 0;
	HOSTILE("zimage", -ENOEXEC, "zImage");

	build(&b);
	b.size = 0x210;
	HOSTILE("trunc-header", -ENOEXEC, "truncated setup header");

	build(&b);
	b.size = SETUP_SIZE;
	HOSTILE("no-payload", -ENOEXEC, "truncated");

	build(&b);
	b.size = IMG_SIZE - 16;
	HOSTILE("trunc-payload", -ENOEXEC, "exceed the file");

	build(&b);
	b.img[0x1f1] = 0xff;
	HOSTILE("setup-sects-huge", -ENOEXEC, "exceed the file");

	build(&b);
	put32(b.img + 0x1f4, 0xffffffff);
	HOSTILE("syssize-huge", -ENOEXEC, "exceed the file");

	build(&b);
	put32(b.img + 0x1f4, 0x10);
	HOSTILE("tiny-kernel", -ENOEXEC, "too small for the 64-bit entry");

	build(&b);
	b.img[0x234] = 0;
	put32(b.img + 0x260, 0x8000000);
	HOSTILE("init-size-huge", -ENOMEM,
		"kernel needs 134217728 bytes at 0x1000000");

	build(&b);
	b.img[0x234] = 0;
	put64(b.img + 0x258, 0x3f00000);
	HOSTILE("pref-no-reloc", -ENOMEM, "RAM below 4 GiB ends at 0x4000000");

	build(&b);
	b.img[0x234] = 0;
	put64(b.img + 0x258, 0x80000);
	HOSTILE("pref-low", -ENOEXEC, "below 1 MiB");

	build(&b);
	put64(b.img + 0x258, 0x3f00000);
	put32(b.img + 0x230, 3);
	HOSTILE("bad-align", -ENOEXEC, "bad kernel_alignment");

	build(&b);
	put64(b.img + 0x258, 0xffffffffffff0000ULL);
	put32(b.img + 0x260, 0x5000000);
	HOSTILE("reloc-too-big", -ENOMEM, "83886080 bytes");

	build(&b);
	put32(b.img + 0x22c, 0x1400fff); /* just above the kernel */
	p = fx_write(f, "initrd-max", b.img, b.size);
	req = fx_req(f, p, fx_path(f, "initrd"), NULL);
	fx_expect_fail(f, &req, -ENOMEM, "boot.initrd: ",
		       "do not fit between the kernel end 0x1400000",
		       "initrd below initrd_addr_max");

	build(&b);
	p = fx_write(f, "cmdline", b.img, b.size);
	{
		char line[2100];

		memset(line, 'a', 2048);
		line[2048] = 0;
		req = fx_req(f, p, NULL, line);
		fx_expect_fail(f, &req, -E2BIG, "boot.cmdline: ",
			       "2048 bytes long, the limit is 2047",
			       "cmdline over cmdline_size");
		line[2047] = 0;
		req = fx_req(f, p, NULL, line);
		is_int(fx_run(f, &req, &(struct hv_regs){0}, NULL), 0,
		       "cmdline of exactly cmdline_size accepted");
	}

	req = fx_req(f, p, fx_sparse(f, "huge-initrd", 80 * MIB), NULL);
	fx_expect_fail(f, &req, -ENOMEM, "boot.initrd: ", "83886080 bytes",
		       "initrd too big");
	{
		struct e820_entry many[129];
		unsigned i;

		for (i = 0; i < 129; i++)
			many[i] = (struct e820_entry){i * 0x1000, 0x1000, 1};
		req = fx_req(f, p, NULL, NULL);
		req.e820 = many;
		req.ne820 = 129;
		fx_expect_fail(f, &req, -EINVAL,
			       "boot.kernel: ", "129 entries is too large",
			       "e820 too large");
	}
#undef HOSTILE
}

int main(void)
{
	static const size_t hot[] = {0x1f1, 0x1f4, 0x1fe, 0x200, 0x206,
				     0x211, 0x22c, 0x230, 0x234, 0x236,
				     0x238, 0x258, 0x260};
	struct fx f;
	struct bzi b;

	plan_no_plan();
	fx_init(&f);
	test_good(&f);
	test_variants(&f);
	test_hostile(&f);
	build(&b);
	fx_fuzz(&f, b.img, b.size, hot, sizeof(hot) / sizeof(hot[0]), 3000,
		0x80, "fuzz bzImage");
	fx_fini(&f);
	return done_testing();
}
