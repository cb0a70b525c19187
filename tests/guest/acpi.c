/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * acpi: walk RSDP -> XSDT (or RSDT) -> every table, checking each
 * checksum; require a MADT, a FADT and its DSDT, decode \_S5, list the
 * MCFG if there is one, and check that the MADT's enabled CPUs equal the
 * "cpus=N" of the command line.  BSP only.
 */
#include "guest.h"

const char guest_name[] = "acpi";

static struct acpi_info ai;

static void show_mcfg(void)
{
	const struct acpi_sdt *m = ai.mcfg;
	const uint8_t *b = (const uint8_t *)m;
	uint64_t base;
	uint32_t off;

	if (!m) {
		printf("acpi: no MCFG (no PCIe ECAM)\n");
		return;
	}
	for (off = 44; off + 16 <= m->length; off += 16) {
		memcpy(&base, b + off, 8);
		printf("acpi: MCFG ECAM 0x%lx segment %u buses %u-%u\n", base,
		       b[off + 8] | b[off + 9] << 8, b[off + 10], b[off + 11]);
	}
}

void guest_main(void)
{
	uint64_t want;
	unsigned int i;
	int err, s5;

	err = acpi_init(&ai, true);
	if (err)
		guest_fail("ACPI walk failed (%d, %u of %u tables bad)", err,
			   ai.nbad, ai.ntables);
	if (!ai.xsdt)
		printf("acpi: no XSDT (RSDP revision %u), used the RSDT\n",
		       ai.rsdp_revision);
	if (!ai.madt)
		guest_fail("no MADT");
	if (!ai.fadt || !ai.dsdt)
		guest_fail("no FADT or DSDT");
	printf("acpi: %u tables, all checksums good\n", ai.ntables);
	printf("acpi: MADT: local APIC 0x%x, %u I/O APIC(s), %u CPU(s):",
	       ai.lapic_pa, ai.nioapics, ai.ncpus);
	for (i = 0; i < ai.ncpus; i++)
		printf(" %u", ai.cpu_apic_id[i]);
	printf("\n");
	s5 = acpi_s5_slp_typ(&ai);
	if (s5 < 0)
		guest_fail("no usable \\_S5 in the DSDT (%d)", s5);
	printf("acpi: DSDT \\_S5 SLP_TYP %d\n", s5);
	show_mcfg();
	err = cmdline_get_u64("cpus", &want);
	if (err)
		guest_fail("no cpus=N on the command line");
	if (want != ai.ncpus)
		guest_fail("MADT has %u CPUs, cmdline says cpus=%lu", ai.ncpus,
			   want);
	guest_pass();
}
