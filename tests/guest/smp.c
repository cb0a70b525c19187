/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * smp: start every AP listed in the ACPI MADT (INIT-SIPI-SIPI, real-mode
 * trampoline, long mode); each AP checks in with an atomic counter and
 * prints its APIC id.  PASS when all did (and, if the command line says
 * cpus=N, when N CPUs are running).  APs halt afterwards.
 */
#include "guest.h"

const char guest_name[] = "smp";

static struct acpi_info ai;
static volatile uint32_t printed;

static void ap_hello(uint32_t apic_id)
{
	printf("smp: AP with APIC id %u is up in long mode\n", apic_id);
	atomic_fetch_add32(&printed, 1);
}

void guest_main(void)
{
	uint64_t want = 0;
	int err, n;

	err = acpi_init(&ai, false);
	if (err || !ai.madt)
		guest_fail("no usable ACPI MADT (%d)", err);
	printf("smp: MADT lists %u CPUs; BSP APIC id %u\n", ai.ncpus,
	       lapic_id());
	n = smp_start_aps(&ai, ap_hello);
	if (n < 0)
		guest_fail("starting APs failed (%d)", n);
	while (printed < (uint32_t)n)
		cpu_relax();
	printf("smp: %d of %u APs checked in\n", n, ai.ncpus - 1);
	if ((unsigned int)n != ai.ncpus - 1)
		guest_fail("%d of %u APs checked in", n, ai.ncpus - 1);
	if (!cmdline_get_u64("cpus", &want) && want != (uint64_t)n + 1)
		guest_fail("%d CPUs running, cmdline says cpus=%lu", n + 1,
			   want);
	guest_pass();
}
