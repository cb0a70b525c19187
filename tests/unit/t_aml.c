/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the AML builder (src/firmware/aml.c): PkgLength at the
 * encoding boundaries (decoded independently here), integer, name,
 * EisaId, package and resource-template encodings byte for byte, and the
 * latched errors for malformed use.  Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/aml.h"
#include "tests/tap.h"

/* Decode a PkgLength at p; *n gets its byte count.  ACPI 6.5 20.2.4. */
static uint32_t pkglen_decode(const uint8_t *p, unsigned *n)
{
	unsigned follow = p[0] >> 6, i;
	uint32_t v;

	if (!follow) {
		*n = 1;
		return p[0] & 0x3f;
	}
	v = p[0] & 0x0f;
	for (i = 0; i < follow; i++)
		v |= (uint32_t)p[1 + i] << (4 + 8 * i);
	*n = 1 + follow;
	return v;
}

static unsigned pkglen_min_bytes(uint32_t v)
{
	return v <= 0x3f ? 1 : v <= 0xfff ? 2 : v <= 0xfffff ? 3 : 4;
}

static int bytes_eq(const struct aml *a, const uint8_t *want, size_t n)
{
	return a->len == n && memcmp(a->buf, want, n) == 0;
}

static void test_pkglen_encode(void)
{
	static const uint32_t vals[] = {0,	   1,	      63,      64,
					4095,	   4096,      1048575, 1048576,
					0x0fffffe, 0x0fffffff};
	uint8_t enc[4];
	unsigned i, n;
	int rc;

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		rc = aml_pkglen_encode(vals[i], enc);
		is_int(rc, pkglen_min_bytes(vals[i]),
		       "PkgLength %u uses %u byte(s)", vals[i],
		       pkglen_min_bytes(vals[i]));
		is_int(pkglen_decode(enc, &n), vals[i],
		       "PkgLength %u decodes back", vals[i]);
		is_int(n, rc, "decoded byte count for %u", vals[i]);
		if (rc > 1)
			is_int(enc[0] & 0x30, 0, "reserved bits clear for %u",
			       vals[i]);
	}
	is_int(aml_pkglen_encode(0x10000000, enc), -E2BIG,
	       "PkgLength above 28 bits is refused");
	is_int(aml_pkglen_encode(0xffffffff, enc), -E2BIG,
	       "PkgLength 0xffffffff is refused");
}

/*
 * A Scope whose body is 'body' bytes: the PkgLength must count itself,
 * be minimal and cover exactly the rest of the object.
 */
static int scope_pkglen_ok(size_t body)
{
	struct aml a;
	uint8_t *zero = calloc(1, body ? body : 1);
	uint32_t v;
	unsigned n;
	int good;

	aml_init(&a);
	aml_scope_begin(&a, "\\_SB");
	aml_bytes(&a, zero, body);
	aml_end(&a);
	good = aml_finish(&a) == 0 && a.buf[0] == 0x10;
	if (good) {
		v = pkglen_decode(a.buf + 1, &n);
		good = v == a.len - 1 && n == pkglen_min_bytes(v) &&
		       memcmp(a.buf + 1 + n, "\x5c_SB_", 5) == 0;
	}
	aml_free(&a);
	free(zero);
	return good;
}

static void test_pkglen_objects(void)
{
	static const size_t around[] = {63, 4095, 1048575};
	size_t i, body, bad = 0, tried = 0;

	for (i = 0; i < 3; i++) {
		/* the body includes the 5-byte name: cross each boundary */
		for (body = around[i] - 12; body <= around[i] + 4; body++) {
			tried++;
			if (!scope_pkglen_ok(body)) {
				diag("bad PkgLength for body %zu", body);
				bad++;
			}
		}
	}
	is_int(bad, 0, "Scope PkgLength right across boundaries (%zu sizes)",
	       tried);
	ok(scope_pkglen_ok(0), "empty Scope body");
}

static void test_integers(void)
{
	static const struct {
		uint64_t v;
		const char *enc;
		size_t n;
	} t[] = {
		{0, "\x00", 1},
		{1, "\x01", 1},
		{2, "\x0a\x02", 2},
		{0xff, "\x0a\xff", 2},
		{0x100, "\x0b\x00\x01", 3},
		{0xffff, "\x0b\xff\xff", 3},
		{0x10000, "\x0c\x00\x00\x01\x00", 5},
		{0xffffffff, "\x0c\xff\xff\xff\xff", 5},
		{0x100000000ULL, "\x0e\x00\x00\x00\x00\x01\x00\x00\x00", 9},
		{UINT64_MAX, "\x0e\xff\xff\xff\xff\xff\xff\xff\xff", 9},
	};
	struct aml a;
	unsigned i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		aml_init(&a);
		aml_integer(&a, t[i].v);
		ok(aml_finish(&a) == 0 &&
			   bytes_eq(&a, (const uint8_t *)t[i].enc, t[i].n),
		   "Integer 0x%llx encoding", (unsigned long long)t[i].v);
		aml_free(&a);
	}
}

static void test_names(void)
{
	static const struct {
		const char *path;
		const char *enc;
		size_t n;
	} good[] = {
		{"_SB", "_SB_", 4},
		{"RTC", "RTC_", 4},
		{"PC00", "PC00", 4},
		{"\\_SB.PC00", "\x5c\x2e_SB_PC00", 10},
		{"\\_SB.PC00.ISA", "\x5c\x2f\x03_SB_PC00ISA_", 15},
		{"^^FOO",
		 "\x5e\x5e"
		 "FOO_",
		 6},
		{"\\", "\x5c\x00", 2},
		{"\\A",
		 "\x5c"
		 "A___",
		 5},
	};
	static const char *const bad[] = {
		"",  "1ABC", "ABCDE", "abc", "A..B",   "A.",	       ".A",
		"^", "^\\A", "\\^A",  "A-B", "\\_SB.", "PC00.TOOLONG",
	};
	struct aml a;
	unsigned i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		aml_init(&a);
		aml_name_path(&a, good[i].path);
		ok(aml_finish(&a) == 0 &&
			   bytes_eq(&a, (const uint8_t *)good[i].enc,
				    good[i].n),
		   "NamePath '%s'", good[i].path);
		aml_free(&a);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a);
		aml_name_path(&a, bad[i]);
		is_int(aml_finish(&a), -EINVAL, "NamePath '%s' refused",
		       bad[i]);
		aml_free(&a);
	}
	aml_init(&a);
	aml_name_path(&a, NULL);
	is_int(aml_finish(&a), -EINVAL, "NULL NamePath refused");
	aml_free(&a);
}

static void test_eisaid(void)
{
	static const char *const bad[] = {"pnp0a03",  "PNP0A0",	 "PNP0A0G",
					  "PNP0A033", "PN10A03", ""};
	struct aml a;
	unsigned i;

	is_int(aml_eisaid_value("PNP0A03"), 0x030AD041,
	       "EisaId PNP0A03 = 0x030AD041");
	is_int(aml_eisaid_value("PNP0A08"), 0x080AD041,
	       "EisaId PNP0A08 = 0x080AD041");
	is_int(aml_eisaid_value("PNP0501"), 0x0105D041,
	       "EisaId PNP0501 = 0x0105D041");
	is_int(aml_eisaid_value("PNP0B00"), 0x000BD041,
	       "EisaId PNP0B00 = 0x000BD041");
	aml_init(&a);
	aml_eisaid(&a, "PNP0A03");
	ok(aml_finish(&a) == 0 &&
		   bytes_eq(&a, (const uint8_t *)"\x0c\x41\xd0\x0a\x03", 5),
	   "EisaId is a DWord constant, bytes 41 d0 0a 03");
	aml_free(&a);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		is_int(aml_eisaid_value(bad[i]), -EINVAL, "EisaId '%s' refused",
		       bad[i]);
		aml_init(&a);
		aml_eisaid(&a, bad[i]);
		is_int(aml_finish(&a), -EINVAL, "aml_eisaid('%s') latches",
		       bad[i]);
		aml_free(&a);
	}
	is_int(aml_eisaid_value(NULL), -EINVAL, "EisaId NULL refused");
}

static void test_packages(void)
{
	static const uint8_t s5[] = {0x08, '_',	 'S',  '5',  '_',  0x12, 0x08,
				     0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00};
	struct aml a;
	unsigned i, n;

	aml_init(&a);
	aml_name(&a, "_S5");
	aml_package_begin(&a);
	aml_integer(&a, 5);
	aml_integer(&a, 5);
	aml_integer(&a, 0);
	aml_integer(&a, 0);
	aml_end(&a);
	ok(aml_finish(&a) == 0 && bytes_eq(&a, s5, sizeof(s5)),
	   "Name (_S5, Package () {5, 5, 0, 0}) bytes");
	aml_free(&a);

	/* nested packages count as one element of the parent */
	aml_init(&a);
	aml_package_begin(&a);
	aml_package_begin(&a);
	aml_integer(&a, 1);
	aml_end(&a);
	aml_string(&a, "ab");
	aml_name_ref(&a, "\\_SB");
	aml_end(&a);
	ok(aml_finish(&a) == 0 &&
		   bytes_eq(&a,
			    (const uint8_t *)"\x12\x0f\x03\x12\x03\x01\x01"
					     "\x0d"
					     "ab\x00"
					     "\x5c_SB_",
			    16),
	   "Package { Package {One}, \"ab\", \\_SB } bytes");
	aml_free(&a);

	/* more than 255 elements: VarPackage with an Integer count */
	aml_init(&a);
	aml_package_begin(&a);
	for (i = 0; i < 300; i++)
		aml_integer(&a, 0);
	aml_end(&a);
	ok(aml_finish(&a) == 0 && a.buf[0] == 0x13, "300 elements: VarPackage");
	pkglen_decode(a.buf + 1, &n);
	ok(a.len > 4 + n && !memcmp(a.buf + 1 + n, "\x0b\x2c\x01", 3),
	   "VarPackage NumElements is Word 300");
	aml_free(&a);
}

static void test_method_device(void)
{
	struct aml a;

	aml_init(&a);
	aml_method_begin(&a, "_STA", 0, false);
	aml_return(&a);
	aml_integer(&a, 0x0f);
	aml_end(&a);
	ok(aml_finish(&a) == 0 &&
		   bytes_eq(&a, (const uint8_t *)"\x14\x09_STA\x00\xa4\x0a\x0f",
			    10),
	   "Method (_STA) { Return (0x0F) } bytes");
	aml_free(&a);

	aml_init(&a);
	aml_method_begin(&a, "M7", 7, true);
	aml_end(&a);
	ok(aml_finish(&a) == 0 && a.len == 7 && a.buf[6] == 0x0f,
	   "Method flags: 7 args, serialized");
	aml_free(&a);

	aml_init(&a);
	aml_device_begin(&a, "DEV0");
	aml_name(&a, "_ADR");
	aml_integer(&a, 0x001f0000);
	aml_end(&a);
	ok(aml_finish(&a) == 0 &&
		   bytes_eq(&a,
			    (const uint8_t *)"\x5b\x82\x0f"
					     "DEV0\x08_ADR"
					     "\x0c\x00\x00\x1f\x00",
			    17),
	   "Device (DEV0) { Name (_ADR, 0x001F0000) } bytes");
	aml_free(&a);

	aml_init(&a);
	aml_buffer(&a, "\x01\x02\x03", 3);
	ok(aml_finish(&a) == 0 &&
		   bytes_eq(&a, (const uint8_t *)"\x11\x06\x0a\x03\x01\x02\x03",
			    7),
	   "Buffer () {1, 2, 3} bytes");
	aml_free(&a);
}

/* Resource template bytes must sum to zero from the first item on. */
static int template_sum_ok(const struct aml *a, size_t items)
{
	uint8_t sum = 0;
	size_t i;

	for (i = items; i < a->len; i++)
		sum = (uint8_t)(sum + a->buf[i]);
	return sum == 0 && a->buf[a->len - 2] == 0x79;
}

static void test_resources(void)
{
	static const uint8_t io_irq[] = {
		0x11, 0x10, 0x0a, 0x0d,				/* Buffer */
		0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, /* IO */
		0x22, 0x10, 0x00,				/* IRQ4 */
		0x79, 0x00 /* checksum patched below */
	};
	uint8_t want[sizeof(io_irq)];
	struct aml a;
	uint8_t sum = 0;
	size_t i;

	memcpy(want, io_irq, sizeof(want));
	for (i = 4; i < sizeof(want) - 1; i++)
		sum = (uint8_t)(sum + want[i]);
	want[sizeof(want) - 1] = (uint8_t)(0x100 - sum);
	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_res_io(&a, 0x3f8, 0x3f8, 1, 8);
	aml_res_irq_noflags(&a, 4);
	aml_end(&a);
	ok(aml_finish(&a) == 0 && bytes_eq(&a, want, sizeof(want)),
	   "ResourceTemplate { IO, IRQNoFlags } bytes");
	ok(template_sum_ok(&a, 4), "EndTag checksum zeroes the sum");
	aml_free(&a);

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_res_word_bus(&a, true, 0, 0xff);
	aml_end(&a);
	ok(aml_finish(&a) == 0 && a.len == 4 + 16 + 2 &&
		   !memcmp(a.buf + 4,
			   "\x88\x0d\x00\x02\x0c\x00\x00\x00\x00\x00\xff\x00"
			   "\x00\x00\x00\x01",
			   16),
	   "WordBusNumber (ResourceProducer, 0-255) bytes");
	aml_free(&a);

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_res_word_io(&a, true, 0xd00, 0xffff);
	aml_res_dword_io(&a, false, 0x1000, 0x1fff);
	aml_res_dword_memory(&a, true, false, 0xc0000000, 0xdfffffff);
	aml_res_qword_memory(&a, true, true, 0x1000000000ULL, 0x17ffffffffULL);
	aml_res_memory32_fixed(&a, true, 0xe0000000, 0x10000000);
	aml_end(&a);
	ok(aml_finish(&a) == 0, "a template of every item builds");
	/* Buffer, PkgLength (2 bytes: > 63), ByteConst size 128 */
	ok(a.len == 1 + 2 + 2 + 16 + 26 + 26 + 46 + 12 + 2,
	   "template length %zu", a.len);
	ok(a.len > 5 && !memcmp(a.buf + 3, "\x0a\x80", 2),
	   "BufferSize is ByteConst 128");
	ok(template_sum_ok(&a, 5), "large template checksum");
	ok(!memcmp(a.buf + 5, "\x88\x0d\x00\x01\x0c\x03", 6),
	   "WordIO: I/O space, producer, fixed, EntireRange");
	ok(!memcmp(a.buf + 21, "\x87\x17\x00\x01\x0d\x03", 6),
	   "DWordIO: consumer flag set");
	ok(!memcmp(a.buf + 47, "\x87\x17\x00\x00\x0c\x01", 6) &&
		   !memcmp(a.buf + 47 + 10, "\x00\x00\x00\xc0\xff\xff\xff\xdf",
			   8) &&
		   !memcmp(a.buf + 47 + 22, "\x00\x00\x00\x20", 4),
	   "DWordMemory: NonCacheable ReadWrite, min/max/length");
	ok(!memcmp(a.buf + 73, "\x8a\x2b\x00\x00\x0c\x03", 6),
	   "QWordMemory: Cacheable ReadWrite");
	ok(!memcmp(a.buf + 119, "\x86\x09\x00\x01\x00\x00\x00\xe0", 8),
	   "Memory32Fixed bytes");
	aml_free(&a);
}

static void test_errors(void)
{
	struct aml a;
	unsigned i;

	aml_init(&a);
	aml_end(&a);
	is_int(aml_finish(&a), -EINVAL, "aml_end with nothing open");
	aml_free(&a);

	aml_init(&a);
	aml_scope_begin(&a, "\\_SB");
	is_int(aml_finish(&a), -EINVAL, "unclosed Scope is an error");
	aml_free(&a);

	aml_init(&a);
	aml_res_io(&a, 0x3f8, 0x3f8, 1, 8);
	is_int(aml_finish(&a), -EINVAL, "resource item outside a template");
	aml_free(&a);

	aml_init(&a);
	aml_package_begin(&a);
	aml_res_irq_noflags(&a, 4);
	aml_end(&a);
	is_int(aml_finish(&a), -EINVAL, "resource item inside a Package");
	aml_free(&a);

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_res_irq_noflags(&a, 16);
	aml_end(&a);
	is_int(aml_finish(&a), -EINVAL, "IRQ 16 refused");
	aml_free(&a);

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_res_word_io(&a, true, 0x200, 0x100);
	aml_end(&a);
	is_int(aml_finish(&a), -EINVAL, "max < min refused");
	aml_free(&a);

	aml_init(&a);
	aml_method_begin(&a, "M8", 8, false);
	is_int(aml_finish(&a), -EINVAL, "Method with 8 args refused");
	aml_free(&a);

	aml_init(&a);
	for (i = 0; i <= AML_MAX_DEPTH; i++)
		aml_scope_begin(&a, "\\_SB");
	is_int(aml_finish(&a), -E2BIG, "nesting deeper than AML_MAX_DEPTH");
	aml_free(&a);

	aml_init(&a);
	aml_string(&a, "caf\xc3\xa9");
	is_int(aml_finish(&a), -EINVAL, "non-ASCII string refused");
	aml_free(&a);

	/* the first error sticks and later calls append nothing */
	aml_init(&a);
	aml_integer(&a, 7);
	aml_name_path(&a, "bad!");
	i = (unsigned)a.len;
	aml_integer(&a, 0x1234);
	aml_scope_begin(&a, "\\_SB");
	aml_end(&a);
	ok(aml_finish(&a) == -EINVAL && a.len == i && a.depth == 0,
	   "error latched, nothing appended after it");
	aml_free(&a);

	aml_init(&a);
	aml_bytes(&a, "", SIZE_MAX / 2);
	is_int(aml_finish(&a), -E2BIG, "absurd append size refused");
	aml_free(&a);
}

int main(void)
{
	plan_no_plan();
	test_pkglen_encode();
	test_pkglen_objects();
	test_integers();
	test_names();
	test_eisaid();
	test_packages();
	test_method_device();
	test_resources();
	test_errors();
	return done_testing();
}
