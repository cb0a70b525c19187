/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * idle: a guest that waits for the ACPI power button, as an OS does.  It
 * masks the 8259s, enters ACPI mode (SMI_CMD <- ACPI_ENABLE, waits for
 * SCI_EN), enables the power-button event (PWRBTN_EN), routes the SCI
 * through the IOAPIC (GSI, trigger and polarity from the MADT override)
 * to the BSP, enables the local APIC, prints "idle: ready" and then sleeps
 * in "sti; hlt".  The SCI handler reads PM1a_STS and clears what it finds
 * (write 1 to clear); on PWRBTN_STS the main loop prints "idle: power
 * button" and powers off through ACPI S5 (khyve exit status 1).  Wake-ups
 * without a button event are reported (the first few) and slept through.
 *
 * It is what tests/e2e/vmctl.t runs under khyvectl.  BSP only; the handler
 * and the main loop share a few volatile counters.
 */
#include "guest.h"

const char guest_name[] = "idle";

#define SCI_VECTOR 0x40
#define SPURIOUS_VECTOR 0xff

static struct acpi_info ai;
static struct acpi_pm pm;
static volatile uint32_t button, nsci, nspurious;
static volatile uint16_t last_sts;

static void sci_handler(struct trap_frame *tf)
{
	uint16_t sts = inw(pm.pm1a_sts);

	(void)tf;
	nsci++;
	last_sts = sts;
	if (sts & ACPI_PM1_PWRBTN_STS)
		button = 1;
	/* Clear every event we saw (RW1C) so the level line drops before
	 * the EOI; otherwise the IOAPIC would deliver it again at once. */
	if (sts)
		outw(pm.pm1a_sts, sts);
	lapic_eoi();
}

static void spurious_handler(struct trap_frame *tf)
{
	(void)tf;
	nspurious++; /* no EOI for the spurious vector */
}

/* Trigger mode and polarity of the SCI: the MADT override, else the ACPI
 * default for the SCI (level, active low). */
static uint32_t sci_flags(uint32_t *gsi)
{
	uint16_t inti;
	uint32_t f = IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW;

	if (acpi_madt_irq_override(&ai, (uint8_t)pm.sci_irq, gsi, &inti)) {
		*gsi = pm.sci_irq;
		return f;
	}
	if (ACPI_INTI_TRIGGER(inti) == 1)
		f &= ~IOAPIC_LEVEL;
	if (ACPI_INTI_POLARITY(inti) == 1)
		f &= ~IOAPIC_ACTIVE_LOW;
	return f;
}

/* The IOAPIC that has gsi: its address and pin. */
static int find_ioapic(uint32_t gsi, uint64_t *pa, unsigned int *pin)
{
	uint32_t addr, base;
	unsigned int i, n;

	for (i = 0; !acpi_madt_ioapic(&ai, i, &addr, &base); i++) {
		n = ioapic_pins(addr);
		if (gsi >= base && gsi - base < n) {
			*pa = addr;
			*pin = gsi - base;
			return 0;
		}
	}
	return -GUEST_ENOENT;
}

static void route_sci(void)
{
	uint32_t gsi, flags, bsp;
	unsigned int pin;
	uint64_t ioapic;
	int err;

	flags = sci_flags(&gsi);
	if (find_ioapic(gsi, &ioapic, &pin))
		guest_fail("no IOAPIC in the MADT has GSI %u", gsi);
	bsp = lapic_current_id();
	if (bsp > 0xff)
		guest_fail("BSP APIC id %u does not fit an IOAPIC entry", bsp);
	err = ioapic_route(ioapic, pin, SCI_VECTOR, (uint8_t)bsp, flags);
	if (err)
		guest_fail("IOAPIC 0x%lx pin %u: %d", ioapic, pin, err);
	printf("idle: SCI (IRQ %u) -> GSI %u: IOAPIC 0x%lx pin %u, %s, "
	       "active %s, vector 0x%x, APIC %u (entry 0x%016lx)\n",
	       pm.sci_irq, gsi, ioapic, pin,
	       flags & IOAPIC_LEVEL ? "level" : "edge",
	       flags & IOAPIC_ACTIVE_LOW ? "low" : "high", SCI_VECTOR, bsp,
	       ioapic_redir(ioapic, pin));
}

void guest_main(void)
{
	uint32_t wakeups = 0;
	int err;

	pic_mask_all();
	err = acpi_init(&ai, false);
	if (!ai.fadt || !ai.madt)
		guest_fail("no usable ACPI FADT/MADT (%d)", err);
	err = acpi_pm_get(&ai, &pm);
	if (err)
		guest_fail("FADT PM fields unusable (%d)", err);
	printf("idle: SMI_CMD 0x%x ACPI_ENABLE 0x%x PM1a_STS 0x%x PM1a_EN "
	       "0x%x PM1a_CNT 0x%x\n",
	       pm.smi_cmd, pm.acpi_enable, pm.pm1a_sts, pm.pm1a_en,
	       pm.pm1a_cnt);
	err = acpi_pm_enable(&pm);
	if (err)
		guest_fail("cannot enter ACPI mode (%d)", err);
	printf("idle: ACPI mode on (PM1a_CNT 0x%x)\n", inw(pm.pm1a_cnt));

	if (intr_set_handler(SCI_VECTOR, sci_handler) ||
	    intr_set_handler(SPURIOUS_VECTOR, spurious_handler))
		guest_fail("cannot install the interrupt handlers");
	lapic_enable(SPURIOUS_VECTOR);
	/* Stale events out, then the power button in. */
	outw(pm.pm1a_sts, 0xffff);
	outw(pm.pm1a_en, (uint16_t)(inw(pm.pm1a_en) | ACPI_PM1_PWRBTN_STS));
	if (!(inw(pm.pm1a_en) & ACPI_PM1_PWRBTN_STS))
		guest_fail("PWRBTN_EN does not stick (PM1a_EN 0x%x)",
			   inw(pm.pm1a_en));
	route_sci();

	printf("idle: ready\n");
	for (;;) {
		cpu_wait_irq();
		irq_disable();
		if (button)
			break;
		if (++wakeups <= 5)
			printf("idle: wake-up without a power-button event "
			       "(SCIs %u, PM1a_STS 0x%x, spurious %u)\n",
			       nsci, last_sts, nspurious);
	}
	printf("idle: power button (PM1a_STS 0x%x, SCIs %u, other wake-ups "
	       "%u)\n",
	       last_sts, nsci, wakeups);
	err = acpi_poweroff(&ai, true);
	guest_fail("still running after S5 (%d)", err);
}
