/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Linux bzImage through the 64-bit boot protocol (Linux
 * Documentation/arch/x86/boot.rst, "64-bit Boot Protocol", and
 * zero-page.rst).  The real-mode setup code is not run: the protected-mode
 * kernel (after the (setup_sects + 1) * 512 setup bytes) is copied to its
 * load address and entered in long mode at load address + 0x200 with RSI
 * pointing at a zero page (struct boot_params) we build: the image's setup
 * header copied in and completed (loader type, heap, command line,
 * initrd), the e820 table and the ACPI RSDP.
 *
 * Requirements enforced: boot protocol >= 2.06 (khyve's documented floor)
 * and in practice >= 2.12 because the kernel must advertise XLF_KERNEL_64; a
 * bzImage (LOADED_HIGH).  The load address is pref_address when
 * [pref_address, pref_address + init_size) is RAM; a relocatable kernel
 * may instead go at the lowest address >= 1 MiB aligned to
 * kernel_alignment (or, failing that, to 1 << min_alignment).
 *
 * Threads: set-up only; no state.
 */
#include "boot/boot_int.h"

#include <errno.h>

/* boot_params (zero page) offsets */
#define BP_ACPI_RSDP 0x070
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_HDR_MAX_END 0x290 /* end of the setup header's room */
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128
#define BP_E820_SIZE 20

/* setup header offsets (in the image and in the zero page) */
#define HDR_SETUP_SECTS 0x1f1
#define HDR_SYSSIZE 0x1f4
#define HDR_BOOT_FLAG 0x1fe
#define HDR_JUMP 0x200
#define HDR_MAGIC 0x202
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_CODE32_START 0x214
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21c
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22c
#define HDR_KERNEL_ALIGNMENT 0x230
#define HDR_RELOCATABLE 0x234
#define HDR_MIN_ALIGNMENT 0x235
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_SETUP_DATA 0x250
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260

#define LOADED_HIGH (1U << 0)
#define CAN_USE_HEAP (1U << 7)
#define XLF_KERNEL_64 (1U << 0)
#define LOADER_TYPE_UNKNOWN 0xff
#define HEAP_END 0xfe00 /* setup heap end, relative to the setup segment */
#define ENTRY64_OFFSET 0x200

#define PROTO(maj, min) ((maj) << 8 | (min))

/* What we learn from the image's setup header. */
struct bz {
	uint16_t version;
	uint64_t setup_size;  /* bytes before the protected-mode kernel */
	uint64_t kernel_size; /* protected-mode kernel bytes in the file */
	uint64_t need;	      /* bytes it needs at its load address */
	uint64_t load;	      /* chosen load address */
	uint64_t initrd_max;  /* exclusive end for the initrd */
	uint64_t cmdline_max; /* longest command line (without NUL) */
};

bool boot_bzimage_probe(const struct boot_ctx *c)
{
	return c->headlen >= HDR_MAGIC + 4 &&
	       boot_get16(c->head + HDR_BOOT_FLAG) == 0xaa55 &&
	       memcmp(c->head + HDR_MAGIC, "HdrS", 4) == 0;
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Copy the setup header into zp and check the version and flags. */
static int read_header(const struct boot_ctx *c, uint8_t *zp, struct bz *bz)
{
	size_t end = HDR_MAGIC + (size_t)c->head[HDR_JUMP + 1];
	unsigned sects;

	if (end > c->headlen) {
		boot_kernel_err(c, "truncated setup header (%zu bytes)",
				c->headlen);
		return -ENOEXEC;
	}
	if (end > BP_HDR_MAX_END)
		end = BP_HDR_MAX_END;
	memcpy(zp + BP_HDR, c->head + BP_HDR, end - BP_HDR);
	bz->version = boot_get16(zp + HDR_VERSION);
	if (bz->version < PROTO(2, 6)) {
		boot_kernel_err(c,
				"boot protocol %u.%02u is too old (2.06 or "
				"later needed)",
				bz->version >> 8, bz->version & 0xff);
		return -ENOEXEC;
	}
	if (!(zp[HDR_LOADFLAGS] & LOADED_HIGH)) {
		boot_kernel_err(c, "zImage (loads below 1 MiB) not supported");
		return -ENOEXEC;
	}
	if (bz->version < PROTO(2, 12) ||
	    !(boot_get16(zp + HDR_XLOADFLAGS) & XLF_KERNEL_64)) {
		boot_kernel_err(c,
				"no 64-bit entry point (XLF_KERNEL_64 not "
				"set, boot protocol %u.%02u)",
				bz->version >> 8, bz->version & 0xff);
		return -ENOEXEC;
	}
	sects = zp[HDR_SETUP_SECTS] ? zp[HDR_SETUP_SECTS] : 4;
	bz->setup_size = (uint64_t)(sects + 1) * 512;
	bz->kernel_size = (uint64_t)boot_get32(zp + HDR_SYSSIZE) * 16;
	if (bz->setup_size >= c->kernel.size ||
	    bz->kernel_size > c->kernel.size - bz->setup_size) {
		boot_kernel_err(c,
				"truncated: setup (%llu bytes) and kernel "
				"(%llu bytes) exceed the file (%llu bytes)",
				(unsigned long long)bz->setup_size,
				(unsigned long long)bz->kernel_size,
				(unsigned long long)c->kernel.size);
		return -ENOEXEC;
	}
	if (bz->kernel_size == 0)
		bz->kernel_size = c->kernel.size - bz->setup_size;
	if (bz->kernel_size <= ENTRY64_OFFSET) {
		boot_kernel_err(c,
				"protected-mode kernel of %llu bytes is too "
				"small for the 64-bit entry at +%#x",
				(unsigned long long)bz->kernel_size,
				ENTRY64_OFFSET);
		return -ENOEXEC;
	}
	bz->need = boot_get32(zp + HDR_INIT_SIZE);
	if (bz->need < bz->kernel_size)
		bz->need = bz->kernel_size;
	bz->initrd_max = (uint64_t)boot_get32(zp + HDR_INITRD_ADDR_MAX) + 1;
	bz->cmdline_max = boot_get32(zp + HDR_CMDLINE_SIZE);
	return 0;
}

/* True when [gpa, gpa + need) is usable kernel RAM. */
static bool fits(const struct boot_ctx *c, uint64_t gpa, uint64_t need)
{
	return gpa >= KERNEL_MIN_BASE && gpa < c->low_top &&
	       need <= c->low_top - gpa;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Choose the load address (see the file comment). */
static int place_kernel(const struct boot_ctx *c, const uint8_t *zp,
			struct bz *bz)
{
	uint64_t pref = boot_get64(zp + HDR_PREF_ADDRESS);
	uint64_t align = boot_get32(zp + HDR_KERNEL_ALIGNMENT);
	unsigned min_shift = zp[HDR_MIN_ALIGNMENT];

	bz->load = pref;
	if (fits(c, pref, bz->need))
		return boot_check_kernel_range(c, pref, bz->need, "kernel");
	if (!zp[HDR_RELOCATABLE])
		return boot_check_kernel_range(c, pref, bz->need, "kernel");
	if (!is_pow2(align) || align > GIB || min_shift > 30) {
		boot_kernel_err(c,
				"bad kernel_alignment %#llx / "
				"min_alignment %u",
				(unsigned long long)align, min_shift);
		return -ENOEXEC;
	}
	bz->load = align_up(KERNEL_MIN_BASE, align);
	if (!fits(c, bz->load, bz->need))
		bz->load = align_up(KERNEL_MIN_BASE, 1ULL << min_shift);
	return boot_check_kernel_range(c, bz->load, bz->need, "kernel");
}

static int fill_e820(const struct boot_ctx *c, uint8_t *zp)
{
	const struct boot_req *req = c->req;
	uint8_t *p;
	unsigned i;

	if (req->ne820 > BP_E820_MAX) {
		boot_kernel_err(c, "e820 map of %u entries is too large",
				req->ne820);
		return -EINVAL;
	}
	zp[BP_E820_ENTRIES] = (uint8_t)req->ne820;
	for (i = 0; i < req->ne820; i++) {
		p = zp + BP_E820_TABLE + i * BP_E820_SIZE;
		boot_put64(p, req->e820[i].addr);
		boot_put64(p + 8, req->e820[i].size);
		boot_put32(p + 16, req->e820[i].type);
	}
	return 0;
}

/* Complete the zero page once the kernel and initrd are placed. */
static int fill_zero_page(const struct boot_ctx *c, uint8_t *zp,
			  const struct bz *bz)
{
	const struct boot_info *info = c->info;

	zp[HDR_TYPE_OF_LOADER] = LOADER_TYPE_UNKNOWN;
	zp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
	boot_put16(zp + HDR_HEAP_END_PTR, HEAP_END);
	boot_put32(zp + HDR_CODE32_START, (uint32_t)bz->load);
	boot_put32(zp + HDR_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_BASE);
	boot_put32(zp + HDR_RAMDISK_IMAGE, (uint32_t)info->initrd_start);
	boot_put32(zp + HDR_RAMDISK_SIZE,
		   (uint32_t)(info->initrd_end - info->initrd_start));
	boot_put64(zp + HDR_SETUP_DATA, 0);
	if (bz->version >= PROTO(2, 14))
		boot_put64(zp + BP_ACPI_RSDP, c->req->rsdp);
	return fill_e820(c, zp);
}

int boot_bzimage_load(struct boot_ctx *c)
{
	uint8_t zp[BOOT_PAGE];
	struct bz bz;
	int rc;

	memset(zp, 0, sizeof(zp));
	memset(&bz, 0, sizeof(bz));
	rc = read_header(c, zp, &bz);
	if (rc)
		return rc;
	rc = place_kernel(c, zp, &bz);
	if (rc)
		return rc;
	rc = boot_load_kernel_bytes(c, bz.setup_size, bz.kernel_size, bz.load,
				    0);
	if (rc)
		return rc;
	c->info->kernel_start = bz.load;
	c->info->kernel_end = bz.load + bz.need;
	rc = boot_initrd_load(c, bz.initrd_max);
	if (rc)
		return rc;
	rc = boot_cmdline_write(c, bz.cmdline_max);
	if (rc)
		return rc;
	rc = fill_zero_page(c, zp, &bz);
	if (rc)
		return rc;
	rc = boot_scratch_write(c, BOOT_INFO_GPA, zp, sizeof(zp));
	if (rc)
		return rc;
	rc = boot_pagetables_write(c);
	if (rc)
		return rc;
	boot_regs_long64(c->regs, bz.load + ENTRY64_OFFSET);
	c->regs->rsi = BOOT_INFO_GPA;
	rc = boot_gdt_write(c, c->regs);
	if (rc)
		return rc;
	c->info->format = BOOT_BZIMAGE;
	return 0;
}
