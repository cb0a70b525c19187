/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Guest physical memory: the RAM regions, their host mappings and the
 * accessors every device, loader and table builder uses.  RAM below the PCI
 * hole (LOWMEM_LIMIT, see layout.h) is one region at GPA 0; the rest is a
 * second region at 4 GiB, as bhyve lays it out.
 *
 * Guest-physical addresses are untrusted: gmem_ptr() returns NULL unless the
 * whole [gpa, gpa+len) lies inside one RAM region, and every caller checks.
 *
 * Threads: the layout is fixed before any vCPU runs; afterwards the struct
 * is read-only and may be used from any thread without locks.
 */
#ifndef KHYVE_CORE_GMEM_H
#define KHYVE_CORE_GMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_REGIONS 4

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct gmem {
	struct gmem_region region[GMEM_MAX_REGIONS];
	unsigned nregions;
	uint64_t size;	  /* total RAM bytes */
	uint64_t lowmem;  /* bytes of RAM below 4 GiB (region 0) */
	uint64_t highmem; /* bytes of RAM from 4 GiB up */
	void *map;	  /* the single host mapping (NULL for fake) */
	size_t map_len;
};

/*
 * Compute the layout for 'size' bytes (a multiple of 2 MiB, at least
 * 2 MiB) and map anonymous host memory for it.  'wired' mlock()s it (-S),
 * 'in_core' keeps it in core dumps (-C; default MADV_DONTDUMP).
 * Returns 0, -EINVAL (bad size) or -ENOMEM/-errno from mmap/mlock.
 */
int gmem_alloc(struct gmem *m, uint64_t size, bool wired, bool in_core);
/* Unmap what gmem_alloc() mapped. */
void gmem_free(struct gmem *m);

/*
 * Describe caller-owned memory 'buf' of 'size' bytes as guest RAM with the
 * same low/high split as gmem_alloc() (for tests; size may be small).
 */
void gmem_init_fake(struct gmem *m, void *buf, uint64_t size);

/* Host pointer for [gpa, gpa+len) if it is RAM, else NULL. */
void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len);
/* Copy len bytes from guest RAM.  Returns 0 or -EFAULT. */
int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, size_t len);
/* Copy len bytes into guest RAM.  Returns 0 or -EFAULT. */
int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, size_t len);

#endif
