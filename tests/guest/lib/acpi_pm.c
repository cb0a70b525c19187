/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a guest needs to take ACPI events: the FADT's fixed-hardware fields
 * (SCI interrupt, SMI command port and its enable value, the PM1a event
 * and control blocks), turning ACPI mode on (SCI_EN), the PM1a status and
 * enable registers, and the MADT's IOAPIC and interrupt source override
 * entries.  Everything read from the tables is bounds-checked against the
 * table's length; a field that lies outside is treated as absent.
 *
 * Threads: the BSP (or one CPU at a time).  No state, no locks.
 */
#include "guest.h"

#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_ACPI_ENABLE 52
#define FADT_ACPI_DISABLE 53
#define FADT_PM1A_EVT 56
#define FADT_PM1A_CNT 64
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89

#define MADT_ENTRIES 44
#define MADT_IOAPIC 1
#define MADT_ISO 2

/* Little-endian field of a checked table; false if beyond its end. */
static bool tfield(const struct acpi_sdt *t, uint32_t off, uint32_t size,
		   uint64_t *val)
{
	const uint8_t *b = (const uint8_t *)t;
	uint64_t v = 0;

	if (size > 8 || off > t->length || size > t->length - off)
		return false;
	while (size--)
		v = v << 8 | b[off + size];
	*val = v;
	return true;
}

int acpi_pm_get(const struct acpi_info *ai, struct acpi_pm *pm)
{
	const struct acpi_sdt *f = ai->fadt;
	uint64_t sci, smi, en, dis, evt, cnt, elen, clen;

	memset(pm, 0, sizeof(*pm));
	if (!f)
		return -GUEST_ENOENT;
	if (!tfield(f, FADT_SCI_INT, 2, &sci) ||
	    !tfield(f, FADT_SMI_CMD, 4, &smi) ||
	    !tfield(f, FADT_ACPI_ENABLE, 1, &en) ||
	    !tfield(f, FADT_ACPI_DISABLE, 1, &dis) ||
	    !tfield(f, FADT_PM1A_EVT, 4, &evt) ||
	    !tfield(f, FADT_PM1A_CNT, 4, &cnt) ||
	    !tfield(f, FADT_PM1_EVT_LEN, 1, &elen) ||
	    !tfield(f, FADT_PM1_CNT_LEN, 1, &clen))
		return -GUEST_EINVAL;
	/* Port blocks only (the 32-bit fields); 4+ bytes of events. */
	if (!evt || evt > 0xfffc || elen < 4 || (elen & 1) ||
	    evt + elen > 0x10000 || !cnt || cnt > 0xfffe || clen < 2)
		return -GUEST_EINVAL;
	if (smi > 0xffff)
		return -GUEST_EINVAL;
	pm->sci_irq = (uint16_t)sci;
	pm->smi_cmd = (uint16_t)smi;
	pm->acpi_enable = (uint8_t)en;
	pm->acpi_disable = (uint8_t)dis;
	pm->pm1a_sts = (uint16_t)evt;
	pm->pm1a_en = (uint16_t)(evt + elen / 2);
	pm->pm1a_cnt = (uint16_t)cnt;
	return 0;
}

int acpi_pm_enable(const struct acpi_pm *pm)
{
	unsigned int i;

	if (inw(pm->pm1a_cnt) & ACPI_PM1_SCI_EN)
		return 0;
	if (!pm->smi_cmd || !pm->acpi_enable)
		return -GUEST_ENODEV;
	outb(pm->smi_cmd, pm->acpi_enable);
	/* Each read is a VM exit; a chipset may take a while. */
	for (i = 0; i < 100000; i++)
		if (inw(pm->pm1a_cnt) & ACPI_PM1_SCI_EN)
			return 0;
	return -GUEST_ETIMEDOUT;
}

/* Call fn for each well-formed MADT entry of 'type'; stop when it returns
 * true.  Returns true if fn did, false at the end or on a bad entry. */
static bool madt_each(const struct acpi_info *ai, uint8_t type,
		      bool (*fn)(const struct acpi_sdt *m, uint32_t off,
				 uint8_t len, void *arg),
		      void *arg)
{
	const struct acpi_sdt *m = ai->madt;
	const uint8_t *b = (const uint8_t *)m;
	uint32_t off;
	uint8_t len;

	if (!m || m->length < MADT_ENTRIES)
		return false;
	for (off = MADT_ENTRIES; off + 2 <= m->length; off += len) {
		len = b[off + 1];
		if (len < 2 || len > m->length - off)
			return false;
		if (b[off] == type && fn(m, off, len, arg))
			return true;
	}
	return false;
}

struct ioapic_find {
	unsigned int want, seen;
	uint32_t pa, gsi_base;
};

static bool ioapic_match(const struct acpi_sdt *m, uint32_t off, uint8_t len,
			 void *arg)
{
	struct ioapic_find *f = arg;
	uint64_t pa, gsi;

	if (len < 12 || f->seen++ != f->want)
		return false;
	if (!tfield(m, off + 4, 4, &pa) || !tfield(m, off + 8, 4, &gsi))
		return false;
	f->pa = (uint32_t)pa;
	f->gsi_base = (uint32_t)gsi;
	return true;
}

int acpi_madt_ioapic(const struct acpi_info *ai, unsigned int idx, uint32_t *pa,
		     uint32_t *gsi_base)
{
	struct ioapic_find f = {.want = idx};

	if (!madt_each(ai, MADT_IOAPIC, ioapic_match, &f))
		return -GUEST_ENOENT;
	*pa = f.pa;
	*gsi_base = f.gsi_base;
	return 0;
}

struct iso_find {
	uint8_t irq;
	uint32_t gsi;
	uint16_t flags;
};

static bool iso_match(const struct acpi_sdt *m, uint32_t off, uint8_t len,
		      void *arg)
{
	const uint8_t *b = (const uint8_t *)m;
	struct iso_find *f = arg;
	uint64_t gsi, flags;

	/* bus 0 (ISA), source IRQ, GSI, MPS INTI flags */
	if (len < 10 || b[off + 2] != 0 || b[off + 3] != f->irq)
		return false;
	if (!tfield(m, off + 4, 4, &gsi) || !tfield(m, off + 8, 2, &flags))
		return false;
	f->gsi = (uint32_t)gsi;
	f->flags = (uint16_t)flags;
	return true;
}

int acpi_madt_irq_override(const struct acpi_info *ai, uint8_t irq,
			   uint32_t *gsi, uint16_t *flags)
{
	struct iso_find f = {.irq = irq};

	if (!madt_each(ai, MADT_ISO, iso_match, &f))
		return -GUEST_ENOENT;
	*gsi = f.gsi;
	*flags = f.flags;
	return 0;
}
