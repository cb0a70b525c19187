/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * halt: start the APs of the MADT (if any), then every CPU executes
 * "cli; hlt".  khyve run with -H ends with exit status 2 (all vCPUs
 * halted with interrupts off); other VMMs simply sit there.
 */
#include "guest.h"

const char guest_name[] = "halt";

static struct acpi_info ai;
static volatile uint32_t printed;

static void ap_halt(uint32_t apic_id)
{
	printf("halt: APIC id %u: cli; hlt\n", apic_id);
	atomic_fetch_add32(&printed, 1);
}

void guest_main(void)
{
	int n = 0;

	if (!acpi_init(&ai, false) && ai.madt) {
		n = smp_start_aps(&ai, ap_halt);
		if (n < 0)
			guest_fail("starting APs failed (%d)", n);
		while (printed < (uint32_t)n)
			cpu_relax();
	}
	printf("halt: all %d CPUs halting with interrupts off\n", n + 1);
	halt_forever();
}
