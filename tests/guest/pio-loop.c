/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pio-loop (benchmark): n byte writes to the pc-testdev port 0xe0 from
 * ring 0, n from the command line "n=..." (default 100000), then PASS
 * (status 33).  BSP only.
 */
#include "guest.h"

const char guest_name[] = "pio-loop";

void guest_main(void)
{
	uint64_t n = 100000, i;

	if (cmdline_get_u64("n", &n) == -GUEST_EINVAL)
		guest_fail("bad n= on the command line");
	printf("pio-loop: %lu outb to port 0x%x\n", n, TESTDEV_PORT);
	for (i = 0; i < n; i++)
		outb(TESTDEV_PORT, (uint8_t)i);
	guest_pass();
}
