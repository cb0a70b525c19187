/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libtest: the guest library checking itself inside a VM, on input a
 * hostile VMM could give it.  Builds fake ACPI tables in guest memory
 * (valid ones, then bad checksums, bad lengths, addresses above 4 GiB,
 * malformed MADT entries, odd \_S5 encodings) and points boot_info at
 * them; also command-line parsing, number parsing, snprintf and the RTC
 * date arithmetic.  Prints "not ok" for each failed check; PASS if none.
 * Touches no device besides the console.  BSP only.
 */
#include "guest.h"

const char guest_name[] = "libtest";

static unsigned int checks, failures;

static void check(bool cond, const char *what)
{
	checks++;
	if (!cond) {
		failures++;
		printf("  not ok - %s\n", what);
	}
}

static void check_int(int64_t got, int64_t want, const char *what)
{
	checks++;
	if (got != want) {
		failures++;
		printf("  not ok - %s: got %ld, want %ld\n", what, got, want);
	}
}

/* ---- fake ACPI tables ------------------------------------------------- */

static uint8_t arena[16384] __attribute__((aligned(16)));
static size_t arena_used;

static void *alloc(size_t n)
{
	void *p = arena + arena_used;

	arena_used += (n + 15) & ~(size_t)15;
	if (arena_used > sizeof(arena))
		guest_fail("libtest arena too small");
	memset(p, 0, n);
	return p;
}

static void put32(void *p, uint32_t off, uint32_t v)
{
	memcpy((uint8_t *)p + off, &v, 4);
}

static void put64(void *p, uint32_t off, uint64_t v)
{
	memcpy((uint8_t *)p + off, &v, 8);
}

static struct acpi_sdt *table(const char *sig, uint32_t len)
{
	struct acpi_sdt *t = alloc(len);

	memcpy(t->sig, sig, 4);
	t->length = len;
	t->revision = 2;
	memcpy(t->oem_id, "KHYVE ", 6);
	return t;
}

static void fix(void *p)
{
	struct acpi_sdt *t = p;

	t->checksum = 0;
	t->checksum = (uint8_t)(0x100 - acpi_checksum(t, t->length));
}

/* type, length, the 16 bits after them, the dword after that */
static void madt_entry(uint8_t *m, uint32_t off, uint8_t type, uint8_t len,
		       uint16_t w, uint32_t d)
{
	m[off] = type;
	m[off + 1] = len;
	memcpy(m + off + 2, &w, 2);
	put32(m, off + 4, d);
}

struct fake {
	uint8_t *rsdp;
	struct acpi_sdt *xsdt, *madt, *fadt, *dsdt, *mcfg;
};

static const uint8_t s5_aml[] = {
	0x10, 0x05, '\\', '_',	'S',  'B',  '_', /* unrelated scope */
	0x08, '_',  'S',  '5',	'_',		 /* Name (_S5, */
	0x12, 0x08, 0x04,			 /* Package (4) { */
	0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00,	 /* 5, 5, 0, 0 } */
};

static void fix_rsdp(uint8_t *r)
{
	r[8] = 0;
	r[8] = (uint8_t)(0x100 - acpi_checksum(r, 20));
	r[32] = 0;
	r[32] = (uint8_t)(0x100 - acpi_checksum(r, 36));
}

/* A valid set: RSDP rev 2 -> XSDT -> MADT, FADT (-> DSDT), MCFG. */
static void build(struct fake *f, const uint8_t *aml, uint32_t aml_len)
{
	uint8_t *m;

	arena_used = 0;
	f->dsdt = table("DSDT", 36 + aml_len);
	memcpy((uint8_t *)f->dsdt + 36, aml, aml_len);
	fix(f->dsdt);

	f->madt = table("APIC", 44 + 8 * 3 + 16 + 12);
	m = (uint8_t *)f->madt;
	put32(m, 36, 0xfee00000);
	/* LAPIC id 0 enabled, id 1 enabled, id 2 disabled */
	madt_entry(m, 44, 0, 8, 0 << 8, 1);
	madt_entry(m, 52, 0, 8, 1 << 8, 1);
	madt_entry(m, 60, 0, 8, 2 << 8, 0);
	/* x2APIC id 300 enabled; I/O APIC at 0xfec00000 */
	madt_entry(m, 68, 9, 16, 0, 300);
	put32(m, 76, 1);
	madt_entry(m, 84, 1, 12, 0, 0xfec00000);
	fix(f->madt);

	f->fadt = table("FACP", 276);
	put32(f->fadt, 40, (uint32_t)(uintptr_t)f->dsdt);
	put64(f->fadt, 140, (uintptr_t)f->dsdt);
	put32(f->fadt, 64, 0x404);
	fix(f->fadt);

	f->mcfg = table("MCFG", 60);
	put64(f->mcfg, 44, 0xe0000000);
	fix(f->mcfg);

	f->xsdt = table("XSDT", 36 + 3 * 8);
	put64(f->xsdt, 36, (uintptr_t)f->madt);
	put64(f->xsdt, 44, (uintptr_t)f->fadt);
	put64(f->xsdt, 52, (uintptr_t)f->mcfg);
	fix(f->xsdt);

	f->rsdp = alloc(36);
	memcpy(f->rsdp, "RSD PTR ", 8);
	memcpy(f->rsdp + 9, "KHYVE ", 6);
	f->rsdp[15] = 2;
	put32(f->rsdp, 20, 36);
	put64(f->rsdp, 24, (uintptr_t)f->xsdt);
	fix_rsdp(f->rsdp);
	boot_info.rsdp_pa = (uintptr_t)f->rsdp;
}

static struct acpi_info ai;
static struct fake f;

static int walk(void)
{
	return acpi_init(&ai, false);
}

static void test_acpi_valid(void)
{
	int err;

	build(&f, s5_aml, sizeof(s5_aml));
	err = walk();
	check_int(err, 0, "valid tables: acpi_init");
	check(ai.rsdp_pa == (uintptr_t)f.rsdp, "valid tables: our RSDP");
	check(ai.xsdt == f.xsdt && ai.madt == f.madt && ai.fadt == f.fadt &&
		      ai.dsdt == f.dsdt && ai.mcfg == f.mcfg,
	      "valid tables: all found");
	check_int(ai.ntables, 3, "valid tables: XSDT entries");
	check_int(ai.ncpus, 3, "MADT: enabled CPUs (2 LAPIC + 1 x2APIC)");
	check(ai.cpu_apic_id[0] == 0 && ai.cpu_apic_id[1] == 1 &&
		      ai.cpu_apic_id[2] == 300,
	      "MADT: APIC ids 0 1 300");
	check_int(ai.nioapics, 1, "MADT: I/O APICs");
	check_int(ai.lapic_pa, 0xfee00000, "MADT: LAPIC address");
	check_int(acpi_s5_slp_typ(&ai), 5, "DSDT: \\_S5 SLP_TYP");
}

static void test_acpi_hostile(void)
{
	uint8_t aml[64];
	int err;

	/* RSDP with a bad checksum: ignored (a scan may find the VMM's). */
	build(&f, s5_aml, sizeof(s5_aml));
	f.rsdp[8] ^= 1;
	err = walk();
	check(err == -GUEST_ENOENT || ai.rsdp_pa != (uintptr_t)f.rsdp,
	      "RSDP bad checksum: not used");

	/* RSDP with a bad extended checksum */
	build(&f, s5_aml, sizeof(s5_aml));
	f.rsdp[32] ^= 1;
	err = walk();
	check(err == -GUEST_ENOENT || ai.rsdp_pa != (uintptr_t)f.rsdp,
	      "RSDP bad extended checksum: not used");

	/* XSDT with a bad checksum */
	build(&f, s5_aml, sizeof(s5_aml));
	f.xsdt->checksum ^= 0x55;
	check_int(walk(), -GUEST_EBADMSG, "XSDT bad checksum");

	/* XSDT that is not an XSDT */
	build(&f, s5_aml, sizeof(s5_aml));
	memcpy(f.xsdt->sig, "XSDX", 4);
	fix(f.xsdt);
	check_int(walk(), -GUEST_EINVAL, "XSDT wrong signature");

	/* XSDT length shorter than a header */
	build(&f, s5_aml, sizeof(s5_aml));
	f.xsdt->length = 20;
	check_int(walk(), -GUEST_EINVAL, "XSDT length 20");

	/* XSDT length far beyond 4 GiB */
	build(&f, s5_aml, sizeof(s5_aml));
	f.xsdt->length = 0xffffffff;
	check_int(walk(), -GUEST_EINVAL, "XSDT length 4 GiB");

	/* A listed table with a bad checksum */
	build(&f, s5_aml, sizeof(s5_aml));
	f.mcfg->checksum ^= 1;
	err = walk();
	check(err == -GUEST_EBADMSG && ai.nbad == 1 && !ai.mcfg,
	      "MCFG bad checksum: reported, not used");

	/* XSDT entries above 4 GiB and at 0 */
	build(&f, s5_aml, sizeof(s5_aml));
	put64(f.xsdt, 52, 0x100000000ULL);
	put64(f.xsdt, 36, 0);
	fix(f.xsdt);
	err = walk();
	check(err == -GUEST_EBADMSG && ai.nbad == 2 && !ai.madt,
	      "XSDT entries at 0 and 4 GiB: rejected");

	/* XSDT whose length cuts an entry in half */
	build(&f, s5_aml, sizeof(s5_aml));
	f.xsdt->length = 36 + 8 + 4;
	fix(f.xsdt);
	err = walk();
	check(err == 0 && ai.ntables == 1, "XSDT with half an entry");

	/* MADT entry of length 0 (would loop forever) */
	build(&f, s5_aml, sizeof(s5_aml));
	((uint8_t *)f.madt)[53] = 0;
	fix(f.madt);
	check_int(walk(), -GUEST_EINVAL, "MADT entry length 0");

	/* MADT entry running past the table */
	build(&f, s5_aml, sizeof(s5_aml));
	((uint8_t *)f.madt)[85] = 200;
	fix(f.madt);
	check_int(walk(), -GUEST_EINVAL, "MADT entry past the end");

	/* MADT too short for its fixed fields */
	build(&f, s5_aml, sizeof(s5_aml));
	f.madt->length = 40;
	fix(f.madt);
	check_int(walk(), -GUEST_EINVAL, "MADT length 40");

	/* FADT pointing at a DSDT with a bad checksum */
	build(&f, s5_aml, sizeof(s5_aml));
	f.dsdt->checksum ^= 1;
	check_int(walk(), -GUEST_EBADMSG, "DSDT bad checksum");

	/* FADT truncated before X_DSDT: the 32-bit DSDT field is used */
	build(&f, s5_aml, sizeof(s5_aml));
	f.fadt->length = 116;
	fix(f.fadt);
	err = walk();
	check(err == 0 && ai.dsdt == f.dsdt, "FADT rev 1 size: DSDT found");

	/* \_S5 encodings */
	build(&f, s5_aml, sizeof(s5_aml) - 6); /* package cut short */
	walk();
	check_int(acpi_s5_slp_typ(&ai), -GUEST_EINVAL, "\\_S5 truncated");

	memcpy(aml, s5_aml, sizeof(s5_aml));
	aml[7] = 0x5b; /* not a NameOp */
	build(&f, aml, sizeof(s5_aml));
	walk();
	check_int(acpi_s5_slp_typ(&ai), -GUEST_ENOENT,
		  "\"_S5_\" without NameOp: ignored");

	memcpy(aml, s5_aml, sizeof(s5_aml));
	aml[15] = 0x00; /* ZeroOp, then garbage */
	aml[16] = 0x00;
	build(&f, aml, sizeof(s5_aml));
	walk();
	check_int(acpi_s5_slp_typ(&ai), 0, "\\_S5 ZeroOp");

	memcpy(aml, s5_aml, sizeof(s5_aml));
	aml[16] = 0x09; /* SLP_TYP does not fit in 3 bits */
	build(&f, aml, sizeof(s5_aml));
	walk();
	check_int(acpi_s5_slp_typ(&ai), -GUEST_ERANGE, "\\_S5 value 9");

	memcpy(aml, s5_aml, sizeof(s5_aml));
	aml[15] = 0x5c; /* not an integer */
	build(&f, aml, sizeof(s5_aml));
	walk();
	check_int(acpi_s5_slp_typ(&ai), -GUEST_EINVAL, "\\_S5 non-integer");

	/* root prefix and a 2-byte PkgLength */
	{
		static const uint8_t alt[] = {
			0x08, '\\', '_',  'S',	'5',  '_',  0x12,
			0x48, 0x00, 0x02, 0x0b, 0x07, 0x00, 0x01,
		};
		build(&f, alt, sizeof(alt));
		walk();
		check_int(acpi_s5_slp_typ(&ai), 7,
			  "\\_S5 root prefix, 2-byte PkgLength, WordPrefix");
	}

	/* \_S5 in the last bytes of the table */
	{
		static const uint8_t tail[] = {0x08, '_', 'S', '5', '_'};

		build(&f, tail, sizeof(tail));
		walk();
		check_int(acpi_s5_slp_typ(&ai), -GUEST_ENOENT,
			  "\\_S5 at the very end");
	}
	boot_info.rsdp_pa = 0;
}

/* ---- command line, numbers, formatting, dates ------------------------- */

static void test_cmdline(void)
{
	static const char line[] =
		"  cpus=0x10 n=42 bad=12x empty= huge=99999999999999999999 "
		"cpu=3 long=abcdefghij";
	char saved[CMDLINE_MAX], buf[8];
	uint64_t v = 0;

	memcpy(saved, boot_info.cmdline, sizeof(saved));
	memcpy(boot_info.cmdline, line, sizeof(line));
	check(!cmdline_get_u64("cpus", &v) && v == 16, "cmdline cpus=0x10");
	check(!cmdline_get_u64("n", &v) && v == 42, "cmdline n=42");
	check(!cmdline_get_u64("cpu", &v) && v == 3,
	      "cmdline: cpu= is not cpus=");
	check_int(cmdline_get_u64("bad", &v), -GUEST_EINVAL, "cmdline 12x");
	check_int(cmdline_get_u64("empty", &v), -GUEST_EINVAL,
		  "cmdline empty value");
	check_int(cmdline_get_u64("huge", &v), -GUEST_EINVAL,
		  "cmdline overflow");
	check_int(cmdline_get_u64("absent", &v), -GUEST_ENOENT,
		  "cmdline absent key");
	check_int(cmdline_get_u64("cpus=0x10", &v), -GUEST_ENOENT,
		  "cmdline key with '='");
	check_int(cmdline_get("long", buf, sizeof(buf)), -GUEST_E2BIG,
		  "cmdline value too long");
	check(cmdline_get("n", buf, sizeof(buf)) == 2 && !strcmp(buf, "42"),
	      "cmdline_get n");
	memcpy(boot_info.cmdline, saved, sizeof(saved));
}

static void test_numbers(void)
{
	uint64_t v = 0;

	check(!parse_u64("18446744073709551615", 20, &v) && v == UINT64_MAX,
	      "parse_u64 max");
	check_int(parse_u64("18446744073709551616", 20, &v), -GUEST_ERANGE,
		  "parse_u64 max + 1");
	check_int(parse_u64("0x", 2, &v), -GUEST_EINVAL, "parse_u64 0x");
	check_int(parse_u64("", 0, &v), -GUEST_EINVAL, "parse_u64 empty");
	check(!parse_u64("0xfF", 4, &v) && v == 255, "parse_u64 0xfF");
	check_int(parse_u64("-1", 2, &v), -GUEST_EINVAL, "parse_u64 -1");
}

static void test_format(void)
{
	char buf[64];
	int n;

	n = snprintf(buf, sizeof(buf), "[%5d|%-4u|%04x|%s|%c|%lx|%%]", -12, 7u,
		     0xabu, "s", 'c', 0x123456789aUL);
	check(!strcmp(buf, "[  -12|7   |00ab|s|c|123456789a|%]") &&
		      n == (int)strlen(buf),
	      "snprintf formats");
	n = snprintf(buf, 5, "%s", "truncated");
	check(n == 9 && !strcmp(buf, "trun"), "snprintf truncates");
	n = snprintf(buf, sizeof(buf), "%ld %d", (long)INT64_MIN,
		     -2147483647 - 1);
	check(!strcmp(buf, "-9223372036854775808 -2147483648"),
	      "snprintf minimum integers");
	n = snprintf(buf, sizeof(buf), "%05d", -42);
	check(!strcmp(buf, "-0042"), "snprintf zero pad negative");
}

static void test_dates(void)
{
	struct rtc_time t = {1970, 1, 1, 0, 0, 0, 0};

	check(rtc_time_valid(&t) && rtc_to_epoch(&t) == 0, "epoch 1970");
	t = (struct rtc_time){2000, 3, 1, 0, 0, 0, 0};
	check_int((int64_t)rtc_to_epoch(&t), 951868800, "epoch 2000-03-01");
	t = (struct rtc_time){2024, 2, 29, 12, 34, 56, 0};
	check(rtc_time_valid(&t), "2024-02-29 valid");
	check_int((int64_t)rtc_to_epoch(&t), 1709210096, "epoch 2024-02-29");
	t = (struct rtc_time){2023, 2, 29, 0, 0, 0, 0};
	check(!rtc_time_valid(&t), "2023-02-29 invalid");
	t = (struct rtc_time){2100, 2, 29, 0, 0, 0, 0};
	check(!rtc_time_valid(&t), "2100-02-29 invalid");
	t = (struct rtc_time){2024, 13, 1, 0, 0, 0, 0};
	check(!rtc_time_valid(&t), "month 13 invalid");
	t = (struct rtc_time){2024, 1, 1, 24, 0, 0, 0};
	check(!rtc_time_valid(&t), "hour 24 invalid");
}

void guest_main(void)
{
	printf("libtest: ACPI parsing of valid and hostile tables\n");
	test_acpi_valid();
	test_acpi_hostile();
	printf("libtest: command line, numbers, printf, dates\n");
	test_cmdline();
	test_numbers();
	test_format();
	test_dates();
	printf("libtest: %u checks, %u failed\n", checks, failures);
	if (failures)
		guest_fail("%u of %u checks failed", failures, checks);
	guest_pass();
}
