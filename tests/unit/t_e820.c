/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for e820_build() (src/firmware/e820.c): exact maps for
 * 256 MiB, 3 GiB, 4 GiB and 8 GiB guests (split at LOWMEM_LIMIT), tiny
 * sizes, the sorted/non-overlapping invariant over many sizes, -ENOSPC
 * for short output arrays and -EINVAL for broken layouts.
 * Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "core/gmem.h"
#include "core/layout.h"
#include "firmware/e820.h"
#include "tests/tap.h"

struct want {
	uint64_t addr, end;
	uint32_t type;
};

/* The same split as gmem_alloc(), without mapping anything. */
static struct gmem layout(uint64_t size)
{
	struct gmem m;

	memset(&m, 0, sizeof(m));
	m.size = size;
	m.lowmem = size < LOWMEM_LIMIT ? size : LOWMEM_LIMIT;
	m.highmem = size - m.lowmem;
	return m;
}

static int map_is(const struct e820_entry *e, int n, const struct want *w,
		  int nw)
{
	int i;

	if (n != nw)
		return 0;
	for (i = 0; i < n; i++)
		if (e[i].addr != w[i].addr ||
		    e[i].addr + e[i].size != w[i].end || e[i].type != w[i].type)
			return 0;
	return 1;
}

static void dump(const struct e820_entry *e, int n)
{
	int i;

	for (i = 0; i < n; i++)
		diag("  %#llx-%#llx type %u", (unsigned long long)e[i].addr,
		     (unsigned long long)(e[i].addr + e[i].size - 1),
		     e[i].type);
}

#define ECAM                                                                   \
	{                                                                      \
		PCI_ECAM_BASE, PCI_ECAM_BASE + PCI_ECAM_SIZE, E820_RESERVED    \
	}
#define KVMPRIV                                                                \
	{                                                                      \
		KVM_IDENTITY_MAP_ADDR, 0xff000000ULL, E820_RESERVED            \
	}
#define LEGACY                                                                 \
	{                                                                      \
		EBDA_BASE, 0x100000, E820_RESERVED                             \
	}

static void check(const char *what, uint64_t size, const struct want *w, int nw)
{
	struct gmem m = layout(size);
	struct e820_entry e[E820_MAX];
	int n = e820_build(&m, e, E820_MAX);

	if (!ok(map_is(e, n, w, nw), "%s: exact map", what))
		dump(e, n);
}

static void test_sizes(void)
{
	const struct want m256[] = {
		{0, EBDA_BASE, E820_RAM},
		LEGACY,
		{0x100000, 256 * MIB, E820_RAM},
		ECAM,
		KVMPRIV,
	};
	const struct want g3[] = {
		{0, EBDA_BASE, E820_RAM},
		LEGACY,
		{0x100000, 3 * GIB, E820_RAM},
		ECAM,
		KVMPRIV,
	};
	const struct want g4[] = {
		{0, EBDA_BASE, E820_RAM},
		LEGACY,
		{0x100000, LOWMEM_LIMIT, E820_RAM},
		ECAM,
		KVMPRIV,
		{4 * GIB, 5 * GIB, E820_RAM},
	};
	const struct want g8[] = {
		{0, EBDA_BASE, E820_RAM},
		LEGACY,
		{0x100000, LOWMEM_LIMIT, E820_RAM},
		ECAM,
		KVMPRIV,
		{4 * GIB, 9 * GIB, E820_RAM},
	};
	const struct want k512[] = {
		{0, 512 * KIB, E820_RAM},
		LEGACY,
		ECAM,
		KVMPRIV,
	};
	const struct want m1[] = {
		{0, EBDA_BASE, E820_RAM},
		LEGACY,
		ECAM,
		KVMPRIV,
	};
	const struct want m2[] = {
		{0, EBDA_BASE, E820_RAM},
		LEGACY,
		{0x100000, 2 * MIB, E820_RAM},
		ECAM,
		KVMPRIV,
	};
	const struct want zero[] = {LEGACY, ECAM, KVMPRIV};

	check("256 MiB", 256 * MIB, m256, 5);
	check("3 GiB (all low)", 3 * GIB, g3, 5);
	check("4 GiB (1 GiB high)", 4 * GIB, g4, 6);
	check("8 GiB (5 GiB high)", 8 * GIB, g8, 6);
	check("512 KiB", 512 * KIB, k512, 4);
	check("1 MiB", MIB, m1, 4);
	check("2 MiB", 2 * MIB, m2, 5);
	check("0 bytes", 0, zero, 3);
}

/* Sorted, non-overlapping, RAM total right, for many sizes. */
static void test_invariants(void)
{
	static const uint64_t sizes[] = {
		4 * KIB,      EBDA_BASE - 1,
		EBDA_BASE,    EBDA_BASE + 1,
		MIB - 1,      MIB + 4096,
		64 * MIB,     LOWMEM_LIMIT - 2 * MIB,
		LOWMEM_LIMIT, LOWMEM_LIMIT + 2 * MIB,
		16 * GIB,     1024 * GIB,
	};
	struct e820_entry e[E820_MAX];
	unsigned i, bad = 0;
	uint64_t ram, want;
	int n, j;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct gmem m = layout(sizes[i]);

		n = e820_build(&m, e, E820_MAX);
		if (n < 1) {
			bad++;
			continue;
		}
		ram = 0;
		for (j = 0; j < n; j++) {
			if (e[j].size == 0)
				bad++;
			if (j && e[j].addr < e[j - 1].addr + e[j - 1].size)
				bad++;
			if (e[j].type == E820_RAM)
				ram += e[j].size;
		}
		/* RAM under the EBDA..1 MiB hole is not usable */
		want = sizes[i];
		if (m.lowmem > EBDA_BASE)
			want -= (m.lowmem < MIB ? m.lowmem : MIB) - EBDA_BASE;
		if (ram != want) {
			diag("size %#llx: RAM %#llx, want %#llx",
			     (unsigned long long)sizes[i],
			     (unsigned long long)ram, (unsigned long long)want);
			bad++;
		}
	}
	is_int(bad, 0, "sorted, non-overlapping, RAM adds up (%zu sizes)",
	       sizeof(sizes) / sizeof(sizes[0]));
}

static void test_errors(void)
{
	struct gmem m = layout(8 * GIB);
	struct e820_entry e[E820_MAX];
	unsigned max;
	int short_ok = 1;

	for (max = 0; max < 6; max++)
		if (e820_build(&m, e, max) != -ENOSPC)
			short_ok = 0;
	ok(short_ok, "every array shorter than 6 entries: -ENOSPC");
	is_int(e820_build(&m, e, 6), 6, "exactly 6 entries fit");
	is_int(e820_build(&m, NULL, 0), -ENOSPC, "NULL array, max 0");
	is_int(e820_build(NULL, e, E820_MAX), -EINVAL, "NULL gmem");
	is_int(e820_build(&m, NULL, 4), -EINVAL, "NULL array, max 4");
	m.lowmem = LOWMEM_LIMIT + 4096;
	is_int(e820_build(&m, e, E820_MAX), -EINVAL,
	       "low RAM reaching into the PCI hole refused");
	m = layout(8 * GIB);
	m.highmem = UINT64_MAX - GIB;
	is_int(e820_build(&m, e, E820_MAX), -EINVAL,
	       "high RAM wrapping past 2^64 refused");
}

static void test_fake_gmem(void)
{
	static uint8_t buf[4 * MIB];
	struct e820_entry e[E820_MAX];
	struct gmem m;

	gmem_init_fake(&m, buf, sizeof(buf));
	ok(e820_build(&m, e, E820_MAX) == 5 && e[2].addr == MIB &&
		   e[2].size == 3 * MIB && e[2].type == E820_RAM,
	   "gmem_init_fake layout: RAM 1-4 MiB");
}

int main(void)
{
	plan_no_plan();
	test_sizes();
	test_invariants();
	test_errors();
	test_fake_gmem();
	return done_testing();
}
