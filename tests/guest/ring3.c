/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ring3: switch to ring 3 for good, check CPL 3, write and read back a
 * few bytes and dwords of the pc-testdev iomem at 0xff000000, then write
 * the khyve exit register: 0x10 (status 33) if everything read back,
 * 0x11 (status 35) if not.  Ring 3 cannot print; under QEMU the exit
 * register does not exist and the guest ends by a triple fault.
 */
#include "guest.h"

const char guest_name[] = "ring3";

#define NWORDS 8

static void user_main(void *arg)
{
	uint64_t base = TESTDEV_IOMEM_BASE;
	uint32_t i, v;
	uint16_t cs;

	(void)arg;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	if ((cs & 3) != 3)
		exit_mmio(GUEST_EXIT_FAIL);
	for (i = 0; i < NWORDS; i++)
		mmio_write32(base + 4 * i, 0x5a000000u | i << 8 | (i ^ 0xa5));
	for (i = 0; i < NWORDS; i++) {
		v = mmio_read32(base + 4 * i);
		if (v != (0x5a000000u | i << 8 | (i ^ 0xa5)))
			exit_mmio(GUEST_EXIT_FAIL);
	}
	mmio_write8(base + 0x100, 0x3c);
	mmio_write8(base + 0x101, 0xc3);
	if (mmio_read8(base + 0x100) != 0x3c ||
	    mmio_read8(base + 0x101) != 0xc3 ||
	    mmio_read32(base + 0x100) != 0xc33c)
		exit_mmio(GUEST_EXIT_FAIL);
	exit_mmio(GUEST_EXIT_PASS);
}

void guest_main(void)
{
	/* Clear the dword the byte test reads back as a whole. */
	mmio_write32(TESTDEV_IOMEM_BASE + 0x100, 0);
	printf("ring3: entering ring 3 (one way); expect exit register 0x%x\n",
	       GUEST_EXIT_PASS);
	ring3_enter(user_main, NULL);
}
