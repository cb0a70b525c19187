/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The guest's e820 memory map, derived from the guest memory layout
 * (gmem.h) and the fixed holes of layout.h.  Handed to kernels by the
 * direct-boot loaders (zero page, hvm_start_info memmap, multiboot mmap).
 * Pure functions, no state.
 */
#ifndef KHYVE_FIRMWARE_E820_H
#define KHYVE_FIRMWARE_E820_H

#include <stdint.h>

struct gmem;

enum e820_type {
	E820_RAM = 1,
	E820_RESERVED = 2,
	E820_ACPI = 3,
	E820_NVS = 4,
};

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

#define E820_MAX 16

/*
 * Build the map for 'mem' into out[0..max): RAM below the EBDA, the EBDA
 * and legacy BIOS area reserved (ACPI tables live in 0xe0000-0xfffff),
 * RAM from 1 MiB to the end of low memory, the PCI ECAM reserved, high RAM
 * from 4 GiB.  Entries are sorted and do not overlap.
 * Returns the number of entries, or -ENOSPC when 'max' is too small.
 */
int e820_build(const struct gmem *mem, struct e820_entry *out, unsigned max);

#endif
