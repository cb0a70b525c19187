/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A small ACPI Machine Language (AML) byte-code builder, enough for the
 * DSDT khyve writes and for device models that add their own Device()
 * objects to it (ACPI 6.5, chapter 20 "ACPI Machine Language
 * Specification" and section 6.4 "Resource Data Types").
 *
 * The builder is a growable byte buffer.  Objects with a PkgLength
 * (Scope, Device, Method, Package, Buffer, ResourceTemplate) are opened
 * with a *_begin() call and closed with aml_end(); the PkgLength (and a
 * Package's element count, a ResourceTemplate's buffer size and end tag)
 * are filled in at aml_end() with the shortest encoding.  Every helper
 * returns nothing: the first error (-ENOMEM, -EINVAL for a bad name or
 * an unbalanced aml_end(), -E2BIG for an object too large to encode) is
 * latched in the buffer, later calls do nothing, and aml_finish()
 * returns it.  Example:
 *
 *	aml_scope_begin(a, "\\_SB");
 *	aml_device_begin(a, "COM1");
 *	aml_name(a, "_HID");
 *	aml_eisaid(a, "PNP0501");
 *	aml_name(a, "_CRS");
 *	aml_restemplate_begin(a);
 *	aml_res_io(a, 0x3f8, 0x3f8, 1, 8);
 *	aml_res_irq_noflags(a, 4);
 *	aml_end(a);	// ResourceTemplate
 *	aml_end(a);	// Device
 *	aml_end(a);	// Scope
 *	rc = aml_finish(a);
 *
 * Names are ASL-style paths: "\\" root prefix, "^" parent prefixes, then
 * dot-separated segments of 1-4 characters ([A-Z_][A-Z0-9_]*), padded with
 * '_' ("RTC" is "RTC_").
 *
 * Threads: a builder belongs to one thread; no locks.
 */
#ifndef KHYVE_FIRMWARE_AML_H
#define KHYVE_FIRMWARE_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

/* The largest value a PkgLength can encode (28 bits). */
#define AML_PKGLEN_MAX 0x0fffffffu

enum aml_open_kind {
	AML_OPEN_PLAIN,	  /* Scope, Device, Method */
	AML_OPEN_PACKAGE, /* Package: element count filled in at end */
	AML_OPEN_BUFFER,  /* ResourceTemplate: size and EndTag at end */
};

struct aml_open {
	size_t op;	/* offset of the opcode */
	size_t body;	/* offset where the PkgLength will be inserted */
	unsigned nelem; /* packages: elements emitted so far */
	enum aml_open_kind kind;
};

struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	int err; /* first error, 0 if none */
	unsigned depth;
	struct aml_open open[AML_MAX_DEPTH];
};

/* Start an empty builder (no allocation until the first byte). */
void aml_init(struct aml *a);
/* Release the buffer; the builder may be aml_init()ed again. */
void aml_free(struct aml *a);
/*
 * Check the builder is complete: returns the latched error, -EINVAL if an
 * object is still open, else 0.  a->buf/a->len then hold the byte code.
 */
int aml_finish(const struct aml *a);

/*
 * Encode 'len' (the PkgLength value, which counts its own bytes) into
 * out[0..3].  Returns the number of bytes used (1-4) or -E2BIG if 'len'
 * exceeds AML_PKGLEN_MAX.
 */
int aml_pkglen_encode(uint32_t len, uint8_t out[4]);

/* Append raw bytes (an opcode the builder has no helper for). */
void aml_bytes(struct aml *a, const void *p, size_t n);
/* Append a NamePath ("\\_SB.PC00", "_HID", "^^FOO"). */
void aml_name_path(struct aml *a, const char *path);

/* Scope (path) { ... aml_end() */
void aml_scope_begin(struct aml *a, const char *path);
/* Device (name) { ... aml_end() */
void aml_device_begin(struct aml *a, const char *name);
/*
 * Method (name, nargs, Serialized/NotSerialized) { ... aml_end().
 * nargs is 0-7.
 */
void aml_method_begin(struct aml *a, const char *name, unsigned nargs,
		      bool serialized);
/* Close the innermost open object. */
void aml_end(struct aml *a);

/* Name (name, <next data object>): follow with one data object. */
void aml_name(struct aml *a, const char *name);
/* Return (<next object>): follow with one data object or name. */
void aml_return(struct aml *a);

/* Package () { ... aml_end(); the element count is automatic. */
void aml_package_begin(struct aml *a);
/*
 * An Integer in its shortest form: Zero, One, or a Byte/Word/DWord/QWord
 * constant.
 */
void aml_integer(struct aml *a, uint64_t v);
/* A String ("..." of printable ASCII). */
void aml_string(struct aml *a, const char *s);
/* EisaId ("PNP0A03"): 3 upper-case letters and 4 hex digits. */
void aml_eisaid(struct aml *a, const char *id);
/* Buffer () { bytes } */
void aml_buffer(struct aml *a, const void *data, size_t n);
/* A reference to a named object inside a Package or after Return. */
void aml_name_ref(struct aml *a, const char *path);

/*
 * The compressed EISA id of 'id' as the 32-bit integer AML stores, or
 * -EINVAL (as int64_t) when 'id' is malformed.
 */
int64_t aml_eisaid_value(const char *id);

/*
 * ResourceTemplate () { ... aml_end(): a Buffer whose EndTag (with its
 * checksum) and size are written at aml_end().  The aml_res_*() items
 * below are only valid directly inside one (else -EINVAL).
 */
void aml_restemplate_begin(struct aml *a);

/* IO (Decode16, min, max, align, len) */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align,
		uint8_t len);
/* IRQNoFlags () { irq }, irq 0-15 */
void aml_res_irq_noflags(struct aml *a, unsigned irq);
/* Memory32Fixed (ReadWrite or ReadOnly, base, len) */
void aml_res_memory32_fixed(struct aml *a, bool rw, uint32_t base,
			    uint32_t len);
/*
 * The address-space descriptors, all MinFixed, MaxFixed, PosDecode, zero
 * granularity and translation, length max - min + 1; 'producer' is
 * ResourceProducer (a bridge window) versus ResourceConsumer.
 */
/* WordBusNumber (producer, min, max) */
void aml_res_word_bus(struct aml *a, bool producer, uint16_t min, uint16_t max);
/* WordIO (producer, ..., EntireRange, min, max) */
void aml_res_word_io(struct aml *a, bool producer, uint16_t min, uint16_t max);
/* DWordIO (producer, ..., EntireRange, min, max) */
void aml_res_dword_io(struct aml *a, bool producer, uint32_t min, uint32_t max);
/* DWordMemory (producer, ..., Cacheable or NonCacheable, ReadWrite, ...) */
void aml_res_dword_memory(struct aml *a, bool producer, bool cacheable,
			  uint32_t min, uint32_t max);
/* QWordMemory (producer, ..., Cacheable or NonCacheable, ReadWrite, ...) */
void aml_res_qword_memory(struct aml *a, bool producer, bool cacheable,
			  uint64_t min, uint64_t max);

#endif
