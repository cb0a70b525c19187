/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Memory for device rings and data buffers: a bump allocator over the e820
 * RAM range that holds the guest image, starting after the image and
 * ending below 4 GiB (the identity-mapped part).  Nothing is ever freed.
 * The guests run identity mapped, so a pointer is a physical address.
 *
 * State: the allocator cursor, set up on first use.  BSP only, no locks.
 */
#include "guest.h"

extern char __image_end[];

static uint64_t dma_next, dma_end;
static bool dma_ready;

static void dma_setup(void)
{
	uint64_t start = (uint64_t)(uintptr_t)__image_end, end;
	const struct e820_entry *e;
	unsigned int i;

	dma_ready = true;
	start = (start + 4095) & ~4095ull;
	for (i = 0; i < boot_info.nr_e820; i++) {
		e = &boot_info.e820[i];
		if (e->type != 1 || start < e->addr ||
		    start >= e->addr + e->size)
			continue;
		end = e->addr + e->size;
		if (end > 0x100000000ull)
			end = 0x100000000ull;
		dma_next = start;
		dma_end = end;
		return;
	}
}

void *dma_alloc(uint64_t size, uint64_t align)
{
	uint64_t a;

	if (!dma_ready)
		dma_setup();
	if (align == 0 || (align & (align - 1)))
		return NULL;
	a = (dma_next + align - 1) & ~(align - 1);
	if (a < dma_next || a > dma_end || size > dma_end - a)
		return NULL;
	dma_next = a + size;
	return (void *)pa_ptr(a);
}

void *dma_zalloc(uint64_t size, uint64_t align)
{
	void *p = dma_alloc(size, align);

	if (p)
		mem_clear(p, size);
	return p;
}

uint64_t dma_free_bytes(void)
{
	if (!dma_ready)
		dma_setup();
	return dma_end - dma_next;
}

void mem_clear(void *p, size_t n)
{
	__asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(0) : "memory");
}
