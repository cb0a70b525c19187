/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * demo: a tour of the machine as a guest sees it.  Prints the CPUs of the
 * ACPI MADT, the e820 map from hvm_start_info, the PCI functions on bus 0
 * and the RTC date and time, then powers off through ACPI S5 (khyve exit
 * status 1).  Missing ACPI or PCI (QEMU microvm) is reported and skipped.
 * BSP only.
 */
#include "guest.h"

const char guest_name[] = "demo";

static struct acpi_info ai;

static void show_e820(void)
{
	const struct e820_entry *e;
	uint64_t ram = 0;
	unsigned int i;

	printf("\n== Memory map (e820 from hvm_start_info, %u entries)\n",
	       boot_info.nr_e820_total);
	for (i = 0; i < boot_info.nr_e820; i++) {
		e = &boot_info.e820[i];
		if (!e->size) {
			printf("  (empty entry, type %u)\n", e->type);
			continue;
		}
		printf("  0x%016lx-0x%016lx %s\n", e->addr,
		       e->addr + e->size - 1, e820_type_name(e->type));
		if (e->type == 1)
			ram += e->size;
	}
	if (!boot_info.nr_e820)
		printf("  (none given)\n");
	else
		printf("  usable RAM: %lu MiB\n", ram >> 20);
}

static void show_cpus(int acpi_err)
{
	unsigned int i;

	printf("\n== CPUs (ACPI MADT)\n");
	if (acpi_err == -GUEST_ENOENT || !ai.madt) {
		printf("  no ACPI MADT: CPU list not available\n");
		return;
	}
	printf("  %u CPU%s, local APIC at 0x%x, %u I/O APIC%s\n", ai.ncpus,
	       ai.ncpus == 1 ? "" : "s", ai.lapic_pa, ai.nioapics,
	       ai.nioapics == 1 ? "" : "s");
	for (i = 0; i < ai.ncpus; i++)
		printf("  CPU %u: APIC id %u%s\n", i, ai.cpu_apic_id[i],
		       ai.cpu_apic_id[i] == lapic_id() ? " (boot CPU)" : "");
}

static void show_pci(void)
{
	int n;

	printf("\n== PCI bus 0\n");
	n = pci_list_bus(0);
	if (n == 0)
		printf("  no PCI devices on bus 0 (no PCI host bridge?)\n");
}

static void show_rtc(void)
{
	struct rtc_time t;
	int err;

	printf("\n== Real-time clock\n");
	err = rtc_read(&t);
	if (err) {
		printf("  RTC not readable (%d)\n", err);
		return;
	}
	printf("  %04u-%02u-%02u %02u:%02u:%02u (%s, %s)%s\n", t.year, t.month,
	       t.day, t.hour, t.min, t.sec, t.reg_b & 0x04 ? "binary" : "BCD",
	       t.reg_b & 0x02 ? "24 h" : "12 h",
	       rtc_time_valid(&t) ? "" : " INVALID");
}

void guest_main(void)
{
	int err;

	printf("khyve demo guest\n");
	err = acpi_init(&ai, false);
	if (err == -GUEST_ENOENT)
		printf("no ACPI tables found\n");
	else if (err)
		printf("ACPI tables have problems (%d)\n", err);
	show_cpus(err);
	show_e820();
	show_pci();
	show_rtc();
	printf("\n== Power off\n");
	if (!ai.fadt) {
		printf("  no ACPI FADT: cannot power off through ACPI\n");
		guest_pass();
	}
	err = acpi_poweroff(&ai, true);
	guest_fail("ACPI power-off did not happen (%d)", err);
}
