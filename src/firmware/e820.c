/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The guest's e820 map (see e820.h), from low to high address:
 *
 *	0 - EBDA_BASE			RAM (or less, if low RAM is smaller)
 *	EBDA_BASE - 1 MiB		reserved: EBDA, VGA hole, ACPI/MP tables
 *	1 MiB - lowmem			RAM
 *	PCI_ECAM_BASE + PCI_ECAM_SIZE	reserved (PCI ECAM)
 *	KVM_IDENTITY_MAP_ADDR - 16 MiB	reserved (KVM's private pages: the
 *					identity-map page and the TSS)
 *	4 GiB - 4 GiB + highmem		RAM
 *
 * Pure functions, no state, no locks.
 */
#include "firmware/e820.h"

#include <errno.h>
#include <stddef.h>

#include "core/gmem.h"
#include "core/layout.h"

#define KVM_PRIVATE_END 0xff000000ULL /* identity map page + 3 TSS pages */

static int add(struct e820_entry *out, unsigned max, unsigned *n, uint64_t addr,
	       uint64_t end, uint32_t type)
{
	if (end <= addr)
		return 0;
	if (*n == max)
		return -ENOSPC;
	out[*n].addr = addr;
	out[*n].size = end - addr;
	out[*n].type = type;
	(*n)++;
	return 0;
}

int e820_build(const struct gmem *mem, struct e820_entry *out, unsigned max)
{
	uint64_t low;
	unsigned n = 0;
	int rc;

	if (!mem || (!out && max))
		return -EINVAL;
	/* low RAM ends at the PCI hole; a larger value is a broken layout */
	if (mem->lowmem > LOWMEM_LIMIT)
		return -EINVAL;
	if (mem->highmem > UINT64_MAX - HIGHMEM_BASE)
		return -EINVAL;
	low = mem->lowmem;

	rc = add(out, max, &n, 0, low < EBDA_BASE ? low : EBDA_BASE, E820_RAM);
	if (!rc)
		rc = add(out, max, &n, EBDA_BASE, KERNEL_MIN_BASE,
			 E820_RESERVED);
	if (!rc)
		rc = add(out, max, &n, KERNEL_MIN_BASE, low, E820_RAM);
	if (!rc)
		rc = add(out, max, &n, PCI_ECAM_BASE,
			 PCI_ECAM_BASE + PCI_ECAM_SIZE, E820_RESERVED);
	if (!rc)
		rc = add(out, max, &n, KVM_IDENTITY_MAP_ADDR, KVM_PRIVATE_END,
			 E820_RESERVED);
	if (!rc)
		rc = add(out, max, &n, HIGHMEM_BASE,
			 HIGHMEM_BASE + mem->highmem, E820_RAM);
	return rc ? rc : (int)n;
}
