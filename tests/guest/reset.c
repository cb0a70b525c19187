/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * reset: write 0x06 (hard reset) to the PCI reset control register 0xcf9.
 * khyve exit status 0.  If the VM is still running, try the FADT reset
 * register (QEMU microvm has that one), then FAIL.  BSP only.
 */
#include "guest.h"

const char guest_name[] = "reset";

static struct acpi_info ai;

void guest_main(void)
{
	int err;

	printf("reset: writing 0x06 to port 0xcf9\n");
	reset_cf9();
	printf("reset: still running; trying the ACPI reset register\n");
	err = acpi_init(&ai, false);
	if (err && !ai.fadt)
		guest_fail("0xcf9 did not reset, no ACPI (%d)", err);
	err = acpi_reset(&ai, true);
	guest_fail("still running after reset (%d)", err);
}
