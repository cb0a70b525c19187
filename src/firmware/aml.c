/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The AML byte-code builder (see aml.h).  Encodings follow ACPI 6.5
 * chapter 20 (opcodes, NameString, PkgLength) and section 6.4 (resource
 * descriptors).  Open objects are kept on a small stack of offsets; their
 * PkgLength is inserted in front of the body when they are closed, so a
 * body of any size gets the shortest encoding.
 *
 * Threads: none of its own; a builder belongs to its caller's thread.
 */
#include "firmware/aml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ACPI 6.5 section 20.3, "AML Byte Stream Byte Values" */
enum {
	AML_ZERO_OP = 0x00,
	AML_ONE_OP = 0x01,
	AML_NAME_OP = 0x08,
	AML_BYTE_PREFIX = 0x0a,
	AML_WORD_PREFIX = 0x0b,
	AML_DWORD_PREFIX = 0x0c,
	AML_STRING_PREFIX = 0x0d,
	AML_QWORD_PREFIX = 0x0e,
	AML_SCOPE_OP = 0x10,
	AML_BUFFER_OP = 0x11,
	AML_PACKAGE_OP = 0x12,
	AML_VAR_PACKAGE_OP = 0x13,
	AML_METHOD_OP = 0x14,
	AML_DUAL_NAME_PREFIX = 0x2e,
	AML_MULTI_NAME_PREFIX = 0x2f,
	AML_EXT_OP_PREFIX = 0x5b,
	AML_DEVICE_OP = 0x82, /* after AML_EXT_OP_PREFIX */
	AML_ROOT_CHAR = 0x5c,
	AML_PARENT_PREFIX = 0x5e,
	AML_RETURN_OP = 0xa4,
};

/* ACPI 6.5 section 6.4.2 (small) and 6.4.3 (large) resource items */
enum {
	RES_IRQ_NOFLAGS = 0x22, /* IRQ, 2 bytes */
	RES_IO = 0x47,		/* I/O port, 7 bytes */
	RES_END_TAG = 0x79,	/* End tag, 1 byte */
	RES_MEMORY32_FIXED = 0x86,
	RES_DWORD_SPACE = 0x87,
	RES_WORD_SPACE = 0x88,
	RES_QWORD_SPACE = 0x8a,
};

enum { SPACE_MEMORY = 0, SPACE_IO = 1, SPACE_BUS = 2 };

/* General flags: _MAF | _MIF, positive decode; bit 0 set = consumer */
#define GEN_FLAGS_FIXED 0x0c
#define GEN_FLAGS_CONSUMER 0x01
/* Type-specific flags */
#define MEM_FLAG_RW 0x01
#define MEM_FLAG_CACHEABLE (1u << 1)
#define IO_FLAG_ENTIRE_RANGE 0x03

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	aml_init(a);
}

int aml_finish(const struct aml *a)
{
	if (a->err)
		return a->err;
	return a->depth ? -EINVAL : 0;
}

static void fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

static bool reserve(struct aml *a, size_t extra)
{
	size_t want, ncap;
	uint8_t *nb;

	if (a->err)
		return false;
	/* an ACPI table's length is 32 bits */
	if (extra > UINT32_MAX || a->len + extra > UINT32_MAX) {
		fail(a, -E2BIG);
		return false;
	}
	want = a->len + extra;
	if (want <= a->cap)
		return true;
	ncap = a->cap ? a->cap : 256;
	while (ncap < want)
		ncap *= 2;
	nb = realloc(a->buf, ncap);
	if (!nb) {
		fail(a, -ENOMEM);
		return false;
	}
	a->buf = nb;
	a->cap = ncap;
	return true;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (!n || !reserve(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void put8(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

static void put_le(struct aml *a, uint64_t v, unsigned n)
{
	uint8_t b[8];
	unsigned i;

	for (i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n);
}

/* Insert n bytes at offset 'off' (inside the buffer), shifting the rest. */
static void insert(struct aml *a, size_t off, const uint8_t *p, size_t n)
{
	if (!reserve(a, n))
		return;
	memmove(a->buf + off + n, a->buf + off, a->len - off);
	memcpy(a->buf + off, p, n);
	a->len += n;
}

int aml_pkglen_encode(uint32_t len, uint8_t out[4])
{
	unsigned i, n;

	if (len > AML_PKGLEN_MAX)
		return -E2BIG;
	if (len < 0x40) {
		out[0] = (uint8_t)len;
		return 1;
	}
	n = len <= 0xfff ? 2 : len <= 0xfffff ? 3 : 4;
	/* lead byte: count of following bytes, then the low nibble */
	out[0] = (uint8_t)(((n - 1) << 6) | (len & 0x0f));
	for (i = 1; i < n; i++)
		out[i] = (uint8_t)(len >> (4 + 8 * (i - 1)));
	return (int)n;
}

/* A data object inside a Package counts as one of its elements. */
static void count_elem(struct aml *a)
{
	if (a->depth && a->open[a->depth - 1].kind == AML_OPEN_PACKAGE)
		a->open[a->depth - 1].nelem++;
}

static bool seg_char_ok(char c, bool first)
{
	if (c == '_' || (c >= 'A' && c <= 'Z'))
		return true;
	return !first && c >= '0' && c <= '9';
}

/*
 * Parse one NameSeg from *pp into seg[4] (padded with '_').  Returns false
 * on a malformed segment.
 */
static bool parse_seg(const char **pp, uint8_t seg[4])
{
	const char *p = *pp;
	unsigned n = 0;

	while (*p && *p != '.') {
		if (n == 4 || !seg_char_ok(*p, n == 0))
			return false;
		seg[n++] = (uint8_t)*p++;
	}
	if (!n)
		return false;
	while (n < 4)
		seg[n++] = '_';
	*pp = p;
	return true;
}

void aml_name_path(struct aml *a, const char *path)
{
	uint8_t segs[255][4];
	const char *p = path;
	unsigned nseg = 0;

	if (a->err)
		return;
	if (!path) {
		fail(a, -EINVAL);
		return;
	}
	if (*p == '\\') {
		put8(a, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == '^') {
			put8(a, AML_PARENT_PREFIX);
			p++;
		}
	}
	while (*p) {
		if (nseg == 255 || !parse_seg(&p, segs[nseg])) {
			fail(a, -EINVAL);
			return;
		}
		nseg++;
		if (*p == '.' && !*++p) {
			fail(a, -EINVAL); /* trailing dot */
			return;
		}
	}
	if (nseg == 0) {
		/* NullName: only valid as the bare root "\\" */
		if (p == path || path[0] != '\\') {
			fail(a, -EINVAL);
			return;
		}
		put8(a, 0x00);
		return;
	}
	if (nseg == 2) {
		put8(a, AML_DUAL_NAME_PREFIX);
	} else if (nseg > 2) {
		put8(a, AML_MULTI_NAME_PREFIX);
		put8(a, (uint8_t)nseg);
	}
	aml_bytes(a, segs, 4 * (size_t)nseg);
}

static void open_obj(struct aml *a, const uint8_t *op, size_t oplen,
		     enum aml_open_kind kind)
{
	struct aml_open *o;

	if (a->err)
		return;
	if (a->depth == AML_MAX_DEPTH) {
		fail(a, -E2BIG);
		return;
	}
	o = &a->open[a->depth];
	o->op = a->len;
	aml_bytes(a, op, oplen);
	o->body = a->len;
	o->nelem = 0;
	o->kind = kind;
	if (!a->err)
		a->depth++;
}

void aml_scope_begin(struct aml *a, const char *path)
{
	static const uint8_t op[] = {AML_SCOPE_OP};

	open_obj(a, op, sizeof(op), AML_OPEN_PLAIN);
	aml_name_path(a, path);
}

void aml_device_begin(struct aml *a, const char *name)
{
	static const uint8_t op[] = {AML_EXT_OP_PREFIX, AML_DEVICE_OP};

	open_obj(a, op, sizeof(op), AML_OPEN_PLAIN);
	aml_name_path(a, name);
}

void aml_method_begin(struct aml *a, const char *name, unsigned nargs,
		      bool serialized)
{
	static const uint8_t op[] = {AML_METHOD_OP};

	if (nargs > 7) {
		fail(a, -EINVAL);
		return;
	}
	open_obj(a, op, sizeof(op), AML_OPEN_PLAIN);
	aml_name_path(a, name);
	put8(a, (uint8_t)(nargs | (serialized ? 0x08 : 0)));
}

void aml_package_begin(struct aml *a)
{
	static const uint8_t op[] = {AML_PACKAGE_OP};

	count_elem(a);
	open_obj(a, op, sizeof(op), AML_OPEN_PACKAGE);
}

void aml_restemplate_begin(struct aml *a)
{
	static const uint8_t op[] = {AML_BUFFER_OP};

	count_elem(a);
	open_obj(a, op, sizeof(op), AML_OPEN_BUFFER);
}

/* Encode an Integer in its shortest form into out[0..9). */
static size_t encode_integer(uint64_t v, uint8_t out[9])
{
	unsigned i, n;

	if (v <= 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (v <= 0xff) {
		out[0] = AML_BYTE_PREFIX;
		n = 1;
	} else if (v <= 0xffff) {
		out[0] = AML_WORD_PREFIX;
		n = 2;
	} else if (v <= 0xffffffff) {
		out[0] = AML_DWORD_PREFIX;
		n = 4;
	} else {
		out[0] = AML_QWORD_PREFIX;
		n = 8;
	}
	for (i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + n;
}

/* Insert the PkgLength for the object whose body starts at 'body'. */
static void close_pkglen(struct aml *a, size_t body)
{
	size_t blen = a->len - body;
	uint8_t enc[4];
	int n;

	/* the PkgLength counts its own 1-4 bytes */
	if (blen > AML_PKGLEN_MAX - 4) {
		fail(a, -E2BIG);
		return;
	}
	n = aml_pkglen_encode((uint32_t)blen + 1, enc);
	if (n > 1)
		n = aml_pkglen_encode((uint32_t)blen + 2, enc);
	if (n > 2)
		n = aml_pkglen_encode((uint32_t)blen + 3, enc);
	if (n > 3)
		n = aml_pkglen_encode((uint32_t)blen + 4, enc);
	if (n < 0) {
		fail(a, n);
		return;
	}
	insert(a, body, enc, (size_t)n);
}

/* End tag with the checksum making the template's bytes sum to zero. */
static void close_restemplate(struct aml *a, const struct aml_open *o)
{
	uint8_t sum = RES_END_TAG, enc[9];
	size_t i;

	for (i = o->body; i < a->len; i++)
		sum = (uint8_t)(sum + a->buf[i]);
	put8(a, RES_END_TAG);
	put8(a, (uint8_t)(0x100 - sum));
	if (a->err)
		return;
	insert(a, o->body, enc, encode_integer(a->len - o->body, enc));
}

static void close_package(struct aml *a, const struct aml_open *o)
{
	uint8_t enc[9];

	if (o->nelem <= 0xff) {
		enc[0] = (uint8_t)o->nelem;
		insert(a, o->body, enc, 1);
		return;
	}
	/* more than 255 elements: VarPackage with an Integer count */
	a->buf[o->op] = AML_VAR_PACKAGE_OP;
	insert(a, o->body, enc, encode_integer(o->nelem, enc));
}

void aml_end(struct aml *a)
{
	struct aml_open *o;

	if (a->err)
		return;
	if (!a->depth) {
		fail(a, -EINVAL);
		return;
	}
	o = &a->open[--a->depth];
	if (o->kind == AML_OPEN_BUFFER)
		close_restemplate(a, o);
	else if (o->kind == AML_OPEN_PACKAGE)
		close_package(a, o);
	close_pkglen(a, o->body);
}

void aml_name(struct aml *a, const char *name)
{
	put8(a, AML_NAME_OP);
	aml_name_path(a, name);
}

void aml_return(struct aml *a)
{
	put8(a, AML_RETURN_OP);
}

void aml_integer(struct aml *a, uint64_t v)
{
	uint8_t enc[9];

	count_elem(a);
	aml_bytes(a, enc, encode_integer(v, enc));
}

void aml_string(struct aml *a, const char *s)
{
	const char *p;

	if (!s) {
		fail(a, -EINVAL);
		return;
	}
	for (p = s; *p; p++) {
		if ((unsigned char)*p > 0x7f) {
			fail(a, -EINVAL);
			return;
		}
	}
	count_elem(a);
	put8(a, AML_STRING_PREFIX);
	aml_bytes(a, s, (size_t)(p - s) + 1);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int64_t aml_eisaid_value(const char *id)
{
	uint32_t v = 0;
	unsigned i;
	int h;

	if (!id || strlen(id) != 7)
		return -EINVAL;
	for (i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return -EINVAL;
		v = (v << 5) | (uint32_t)((id[i] - 0x40) & 0x1f);
	}
	for (i = 3; i < 7; i++) {
		h = hexval(id[i]);
		if (h < 0)
			return -EINVAL;
		v = (v << 4) | (uint32_t)h;
	}
	/* the 32-bit value is stored big-endian (byte-swapped) */
	return (int64_t)(((v & 0xff) << 24) | ((v & 0xff00) << 8) |
			 ((v >> 8) & 0xff00) | (v >> 24));
}

void aml_eisaid(struct aml *a, const char *id)
{
	int64_t v = aml_eisaid_value(id);

	if (v < 0) {
		fail(a, (int)v);
		return;
	}
	count_elem(a);
	/* always a DWord constant, as ASL compilers emit it */
	put8(a, AML_DWORD_PREFIX);
	put_le(a, (uint64_t)v, 4);
}

void aml_buffer(struct aml *a, const void *data, size_t n)
{
	static const uint8_t op[] = {AML_BUFFER_OP};
	uint8_t enc[9];

	if (a->err)
		return;
	count_elem(a);
	open_obj(a, op, sizeof(op), AML_OPEN_PLAIN);
	aml_bytes(a, enc, encode_integer(n, enc));
	aml_bytes(a, data, n);
	aml_end(a);
}

void aml_name_ref(struct aml *a, const char *path)
{
	count_elem(a);
	aml_name_path(a, path);
}

/* Resource items are only allowed directly inside a ResourceTemplate. */
static bool in_restemplate(struct aml *a)
{
	if (a->err)
		return false;
	if (!a->depth || a->open[a->depth - 1].kind != AML_OPEN_BUFFER) {
		fail(a, -EINVAL);
		return false;
	}
	return true;
}

void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align,
		uint8_t len)
{
	if (!in_restemplate(a))
		return;
	put8(a, RES_IO);
	put8(a, 0x01); /* Decode16 */
	put_le(a, min, 2);
	put_le(a, max, 2);
	put8(a, align);
	put8(a, len);
}

void aml_res_irq_noflags(struct aml *a, unsigned irq)
{
	if (irq > 15) {
		fail(a, -EINVAL);
		return;
	}
	if (!in_restemplate(a))
		return;
	put8(a, RES_IRQ_NOFLAGS);
	put_le(a, 1u << irq, 2);
}

void aml_res_memory32_fixed(struct aml *a, bool rw, uint32_t base, uint32_t len)
{
	if (!in_restemplate(a))
		return;
	put8(a, RES_MEMORY32_FIXED);
	put_le(a, 9, 2); /* length of the rest */
	put8(a, rw ? 1 : 0);
	put_le(a, base, 4);
	put_le(a, len, 4);
}

/*
 * Word/DWord/QWord Address Space Descriptor: tag, length, type, general
 * flags, type flags, then granularity, min, max, translation and length,
 * each 'w' bytes wide.
 */
static void res_space(struct aml *a, uint8_t tag, unsigned w, uint8_t type,
		      bool producer, uint8_t tflags, uint64_t min, uint64_t max)
{
	if (max < min) {
		fail(a, -EINVAL);
		return;
	}
	if (!in_restemplate(a))
		return;
	put8(a, tag);
	put_le(a, 3 + 5 * w, 2);
	put8(a, type);
	put8(a, GEN_FLAGS_FIXED | (producer ? 0 : GEN_FLAGS_CONSUMER));
	put8(a, tflags);
	put_le(a, 0, w); /* granularity */
	put_le(a, min, w);
	put_le(a, max, w);
	put_le(a, 0, w);	     /* translation offset */
	put_le(a, max - min + 1, w); /* wraps to 0 for a full QWord span */
}

void aml_res_word_bus(struct aml *a, bool producer, uint16_t min, uint16_t max)
{
	res_space(a, RES_WORD_SPACE, 2, SPACE_BUS, producer, 0, min, max);
}

void aml_res_word_io(struct aml *a, bool producer, uint16_t min, uint16_t max)
{
	res_space(a, RES_WORD_SPACE, 2, SPACE_IO, producer,
		  IO_FLAG_ENTIRE_RANGE, min, max);
}

void aml_res_dword_io(struct aml *a, bool producer, uint32_t min, uint32_t max)
{
	res_space(a, RES_DWORD_SPACE, 4, SPACE_IO, producer,
		  IO_FLAG_ENTIRE_RANGE, min, max);
}

void aml_res_dword_memory(struct aml *a, bool producer, bool cacheable,
			  uint32_t min, uint32_t max)
{
	res_space(a, RES_DWORD_SPACE, 4, SPACE_MEMORY, producer,
		  MEM_FLAG_RW | (cacheable ? MEM_FLAG_CACHEABLE : 0), min, max);
}

void aml_res_qword_memory(struct aml *a, bool producer, bool cacheable,
			  uint64_t min, uint64_t max)
{
	res_space(a, RES_QWORD_SPACE, 8, SPACE_MEMORY, producer,
		  MEM_FLAG_RW | (cacheable ? MEM_FLAG_CACHEABLE : 0), min, max);
}
