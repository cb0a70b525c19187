/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * poweroff: ACPI S5 through the FADT's PM1 control register (or the
 * HW-reduced sleep control register), with SLP_TYP from the DSDT's \_S5.
 * khyve exit status 1.  BSP only.
 */
#include "guest.h"

const char guest_name[] = "poweroff";

static struct acpi_info ai;

void guest_main(void)
{
	int err;

	err = acpi_init(&ai, false);
	if (err && !ai.fadt)
		guest_fail("no usable ACPI tables (%d)", err);
	printf("poweroff: entering ACPI S5\n");
	err = acpi_poweroff(&ai, true);
	guest_fail("still running after S5 (%d)", err);
}
