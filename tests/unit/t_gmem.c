/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for guest memory: the low/high split at the PCI hole, and the
 * bounds checks every device relies on (edges, wrap-around, holes).
 */
#include <errno.h>
#include <stdlib.h>

#include "core/gmem.h"
#include "core/layout.h"
#include "tests/tap.h"

int main(void)
{
	struct gmem m;
	uint8_t buf[64];
	static uint8_t ram[1 << 20];

	plan_no_plan();
	is_int(gmem_alloc(&m, 3 * MIB, false, false), -EINVAL,
	       "size not a multiple of 2 MiB refused");
	is_int(gmem_alloc(&m, 0, false, false), -EINVAL, "zero refused");

	is_int(gmem_alloc(&m, 256 * MIB, false, false), 0, "256 MiB");
	is_int(m.nregions, 1, "one region");
	is_int(m.lowmem, 256 * MIB, "all low");
	ok(gmem_ptr(&m, 256 * MIB - 8, 8) != NULL, "last 8 bytes mapped");
	ok(gmem_ptr(&m, 256 * MIB - 8, 9) == NULL, "one past the end: NULL");
	ok(gmem_ptr(&m, 256 * MIB, 0) != NULL, "empty range at the end ok");
	ok(gmem_ptr(&m, ~0ULL - 4, 16) == NULL, "wrapping range: NULL");
	ok(gmem_ptr(&m, 8, ~0ULL) == NULL, "huge length: NULL");
	is_int(gmem_write(&m, 0x1000, "abc", 4), 0, "write");
	is_int(gmem_read(&m, 0x1000, buf, 4), 0, "read back");
	is_str((char *)buf, "abc", "same bytes");
	is_int(gmem_read(&m, 256 * MIB - 2, buf, 4), -EFAULT,
	       "read across the end faults");
	gmem_free(&m);

	is_int(gmem_alloc(&m, 4 * GIB, false, false), 0, "4 GiB (sparse)");
	is_int(m.nregions, 2, "split in two");
	is_int(m.lowmem, LOWMEM_LIMIT, "low part stops at the PCI hole");
	is_int(m.highmem, 4 * GIB - LOWMEM_LIMIT, "rest above 4 GiB");
	is_int(m.region[1].gpa, HIGHMEM_BASE, "high region at 4 GiB");
	ok(gmem_ptr(&m, LOWMEM_LIMIT, 1) == NULL, "PCI hole is not RAM");
	ok(gmem_ptr(&m, LOWMEM_LIMIT - 4, 8) == NULL,
	   "range straddling the hole: NULL");
	ok(gmem_ptr(&m, HIGHMEM_BASE, 8) != NULL, "4 GiB is RAM");
	is_int(gmem_write(&m, HIGHMEM_BASE + 5, "hi", 3), 0, "write high");
	ok(m.region[1].host[5] == 'h', "high region host pointer right");
	gmem_free(&m);

	gmem_init_fake(&m, ram, sizeof(ram));
	is_int(m.nregions, 1, "fake: one region");
	ok(gmem_ptr(&m, 0, sizeof(ram)) == ram, "fake maps the buffer");
	ok(gmem_ptr(&m, 1, sizeof(ram)) == NULL, "fake bounds");
	return done_testing();
}
