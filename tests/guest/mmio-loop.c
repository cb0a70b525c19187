/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * mmio-loop (benchmark): from ring 3, n dword writes to the pc-testdev
 * iomem at 0xff000000, n from the command line "n=..." (default 100000),
 * then the khyve exit register with 0x10 (status 33).  Under QEMU it
 * ends by a triple fault.
 */
#include "guest.h"

const char guest_name[] = "mmio-loop";

static uint64_t count = 100000;

static void user_loop(void *arg)
{
	uint64_t i, n = *(const uint64_t *)arg;

	for (i = 0; i < n; i++)
		mmio_write32(TESTDEV_IOMEM_BASE, (uint32_t)i);
	exit_mmio(GUEST_EXIT_PASS);
}

void guest_main(void)
{
	if (cmdline_get_u64("n", &count) == -GUEST_EINVAL)
		guest_fail("bad n= on the command line");
	printf("mmio-loop: %lu MMIO writes to 0x%x from ring 3\n", count,
	       TESTDEV_IOMEM_BASE);
	ring3_enter(user_loop, &count);
}
