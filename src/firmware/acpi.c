/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The ACPI tables (see acpi.h for the layout constants).  They are laid
 * out in the staging area in this order: RSDP (16-byte aligned, found by
 * the guest's scan of 0xe0000-0xfffff), FACS (64-byte aligned), DSDT,
 * FADT, MADT, MCFG, XSDT, RSDT.  Each table is filled, then checksummed;
 * tables that point at others are written after them.
 *
 * Threads: called from fw_build_tables() only; no state, no locks.
 */
#include "firmware/acpi.h"

#include <errno.h>
#include <string.h>

#include "core/layout.h"
#include "firmware/aml.h"
#include "firmware/fw.h"
#include "hw/rtc.h"

#define ACPI_MAX_TABLES 8 /* entries of the XSDT/RSDT */
#define ACPI_TABLE_ALIGN 16

struct acpi_ctx {
	struct fw_area *area;
	uint64_t table[ACPI_MAX_TABLES]; /* XSDT entries */
	unsigned ntables;
};

static void acpi_header(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	fw_put32(t + ACPI_HDR_LENGTH, len);
	t[ACPI_HDR_REVISION] = rev;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
	fw_put32(t + 24, ACPI_OEM_REVISION);
	memcpy(t + 28, ACPI_CREATOR_ID, 4);
	fw_put32(t + 32, ACPI_CREATOR_REVISION);
}

static void acpi_finish(uint8_t *t, uint32_t len)
{
	t[ACPI_HDR_CHECKSUM] = 0;
	t[ACPI_HDR_CHECKSUM] = fw_checksum(t, len);
}

/* Allocate a table with its header filled in; NULL if it does not fit. */
static uint8_t *acpi_alloc(struct acpi_ctx *c, const char *sig, size_t len,
			   uint8_t rev, uint64_t *gpa)
{
	uint8_t *t;

	t = fw_area_alloc(c->area, len, ACPI_TABLE_ALIGN, 0, gpa);
	if (t)
		acpi_header(t, sig, (uint32_t)len, rev);
	return t;
}

static int acpi_add(struct acpi_ctx *c, uint64_t gpa)
{
	if (c->ntables == ACPI_MAX_TABLES)
		return -ENOSPC;
	c->table[c->ntables++] = gpa;
	return 0;
}

static void gas_io(uint8_t *g, uint16_t port, unsigned bytes, uint8_t access)
{
	g[GAS_SPACE] = ACPI_GAS_SYSTEM_IO;
	g[GAS_BIT_WIDTH] = (uint8_t)(bytes * 8);
	g[GAS_BIT_OFFSET] = 0;
	g[GAS_ACCESS_SIZE] = access; /* 1 byte, 2 word, 3 dword */
	fw_put64(g + GAS_ADDRESS, port);
}

static int acpi_facs(struct acpi_ctx *c, uint64_t *gpa)
{
	uint8_t *t;

	t = fw_area_alloc(c->area, ACPI_FACS_LEN, ACPI_FACS_ALIGN, 0, gpa);
	if (!t)
		return -ENOSPC;
	memcpy(t, "FACS", 4);
	fw_put32(t + 4, ACPI_FACS_LEN);
	t[32] = 2; /* version */
	return 0;  /* the FACS has no checksum */
}

static int acpi_dsdt(struct acpi_ctx *c, const struct fw_platform *p,
		     uint64_t *gpa)
{
	struct aml a;
	uint8_t *t;
	int rc;

	aml_init(&a);
	rc = acpi_build_dsdt(&a, p);
	if (rc)
		goto out;
	rc = -ENOSPC;
	t = acpi_alloc(c, "DSDT", ACPI_HDR_LEN + a.len, 2, gpa);
	if (!t)
		goto out;
	memcpy(t + ACPI_HDR_LEN, a.buf, a.len);
	acpi_finish(t, (uint32_t)(ACPI_HDR_LEN + a.len));
	rc = 0;
out:
	aml_free(&a);
	return rc;
}

static int acpi_fadt(struct acpi_ctx *c, uint64_t facs, uint64_t dsdt)
{
	uint64_t gpa;
	uint8_t *t;

	t = acpi_alloc(c, "FACP", ACPI_FADT_LEN, ACPI_FADT_REVISION, &gpa);
	if (!t)
		return -ENOSPC;
	fw_put32(t + FADT_FIRMWARE_CTRL, (uint32_t)facs);
	fw_put32(t + FADT_DSDT, (uint32_t)dsdt);
	t[FADT_PM_PROFILE] = 0; /* unspecified */
	fw_put16(t + FADT_SCI_INT, ACPI_SCI_IRQ);
	fw_put32(t + FADT_SMI_CMD, PORT_SMI_CMD);
	t[FADT_ACPI_ENABLE] = ACPI_ENABLE_VAL;
	t[FADT_ACPI_DISABLE] = ACPI_DISABLE_VAL;
	fw_put32(t + FADT_PM1A_EVT_BLK, PORT_PM1A_EVT);
	fw_put32(t + FADT_PM1A_CNT_BLK, PORT_PM1A_CNT);
	fw_put32(t + FADT_PM_TMR_BLK, PORT_PM_TMR);
	t[FADT_PM1_EVT_LEN] = 4;
	t[FADT_PM1_CNT_LEN] = 2;
	t[FADT_PM_TMR_LEN] = 4;
	/* no GPE blocks; C2/C3 latencies above the limits: not supported */
	fw_put16(t + FADT_P_LVL2_LAT, 101);
	fw_put16(t + FADT_P_LVL3_LAT, 1001);
	t[FADT_CENTURY] = RTC_CENTURY; /* CMOS index of the century */
	fw_put16(t + FADT_IAPC_BOOT_ARCH,
		 FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042);
	/* fixed power button (PM1 PWRBTN), no sleep button, 24-bit timer */
	fw_put32(t + FADT_FLAGS, FADT_F_WBINVD | FADT_F_PROC_C1 |
					 FADT_F_SLP_BUTTON |
					 FADT_F_RESET_REG_SUP);
	gas_io(t + FADT_RESET_REG, PORT_RESET_CF9, 1, 1);
	t[FADT_RESET_VALUE] = ACPI_RESET_VAL;
	t[FADT_MINOR_VERSION] = ACPI_FADT_MINOR;
	fw_put64(t + FADT_X_FIRMWARE_CTRL, facs);
	fw_put64(t + FADT_X_DSDT, dsdt);
	gas_io(t + FADT_X_PM1A_EVT_BLK, PORT_PM1A_EVT, 4, 2);
	gas_io(t + FADT_X_PM1A_CNT_BLK, PORT_PM1A_CNT, 2, 2);
	gas_io(t + FADT_X_PM_TMR_BLK, PORT_PM_TMR, 4, 3);
	acpi_finish(t, ACPI_FADT_LEN);
	return acpi_add(c, gpa);
}

/* Does CPU 'i' get an x2APIC entry rather than a local APIC one? */
static bool madt_cpu_x2apic(const struct fw_platform *p, unsigned i)
{
	return p->x2apic || i >= 0xff;
}

/* CPUs 0xff and up (all of them with x2apic) get x2APIC entries. */
static size_t madt_size(const struct fw_platform *p)
{
	size_t len = MADT_ENTRIES + 12 + 2 * 10 + 6;
	size_t nx2 = 0;

	if (p->x2apic)
		nx2 = p->ncpus;
	else if (p->ncpus > 0xff)
		nx2 = p->ncpus - 0xff;
	len += (p->ncpus - nx2) * 8 + nx2 * 16;
	return len + (nx2 ? 12 : 0);
}

static uint8_t *madt_iso(uint8_t *e, uint8_t irq, uint32_t gsi, uint16_t flags)
{
	e[0] = MADT_ISO;
	e[1] = 10;
	e[2] = 0; /* bus: ISA */
	e[3] = irq;
	fw_put32(e + 4, gsi);
	fw_put16(e + 8, flags);
	return e + 10;
}

static uint8_t *madt_cpus(uint8_t *e, const struct fw_platform *p, bool *any_x2)
{
	unsigned i;

	for (i = 0; i < p->ncpus; i++) {
		if (madt_cpu_x2apic(p, i)) {
			*any_x2 = true;
			e[0] = MADT_X2APIC;
			e[1] = 16;
			fw_put32(e + 4, i); /* x2APIC id */
			fw_put32(e + 8, MADT_ENABLED);
			fw_put32(e + 12, i); /* processor UID */
			e += 16;
		} else {
			e[0] = MADT_LAPIC;
			e[1] = 8;
			e[2] = (uint8_t)i; /* processor UID */
			e[3] = (uint8_t)i; /* APIC id */
			fw_put32(e + 4, MADT_ENABLED);
			e += 8;
		}
	}
	return e;
}

static int acpi_madt(struct acpi_ctx *c, const struct fw_platform *p)
{
	size_t len = madt_size(p);
	bool any_x2 = false;
	uint64_t gpa;
	uint8_t *t, *e;

	if (len > UINT32_MAX)
		return -ENOSPC;
	t = acpi_alloc(c, "APIC", len, ACPI_MADT_REVISION, &gpa);
	if (!t)
		return -ENOSPC;
	fw_put32(t + MADT_LAPIC_ADDR, (uint32_t)LAPIC_BASE);
	fw_put32(t + MADT_FLAGS, MADT_PCAT_COMPAT);
	e = madt_cpus(t + MADT_ENTRIES, p, &any_x2);

	e[0] = MADT_IOAPIC;
	e[1] = 12;
	e[2] = fw_ioapic_id(p->ncpus);
	fw_put32(e + 4, (uint32_t)IOAPIC_BASE);
	fw_put32(e + 8, 0); /* GSI base */
	e += 12;

	/* the PIT's IRQ0 is wired to pin 2; the SCI is level, active high */
	e = madt_iso(e, 0, 2, ACPI_INTI_EDGE | ACPI_INTI_ACTIVE_HIGH);
	e = madt_iso(e, ACPI_SCI_IRQ, ACPI_SCI_IRQ,
		     ACPI_INTI_LEVEL | ACPI_INTI_ACTIVE_HIGH);

	/* NMI on LINT1 of every processor */
	e[0] = MADT_LAPIC_NMI;
	e[1] = 6;
	e[2] = 0xff; /* all processors */
	fw_put16(e + 3, ACPI_INTI_EDGE | ACPI_INTI_ACTIVE_HIGH);
	e[5] = 1; /* LINT1 */
	e += 6;
	if (any_x2) {
		e[0] = MADT_X2APIC_NMI;
		e[1] = 12;
		fw_put16(e + 2, ACPI_INTI_EDGE | ACPI_INTI_ACTIVE_HIGH);
		fw_put32(e + 4, 0xffffffff); /* all processors */
		e[8] = 1;		     /* LINT1 */
		e += 12;
	}
	if ((size_t)(e - t) != len)
		return -EINVAL; /* madt_size() and the writer disagree */
	acpi_finish(t, (uint32_t)len);
	return acpi_add(c, gpa);
}

static int acpi_mcfg(struct acpi_ctx *c, const struct fw_platform *p)
{
	size_t len = MCFG_ENTRIES + MCFG_ENTRY_LEN;
	uint64_t gpa;
	uint8_t *t, *e;

	t = acpi_alloc(c, "MCFG", len, 1, &gpa);
	if (!t)
		return -ENOSPC;
	e = t + MCFG_ENTRIES;
	fw_put64(e, p->ecam_base); /* ECAM address of bus 0 */
	fw_put16(e + 8, 0);	   /* segment */
	e[10] = p->bus_start;
	e[11] = fw_last_bus(p);
	acpi_finish(t, (uint32_t)len);
	return acpi_add(c, gpa);
}

static int acpi_xsdt_rsdt(struct acpi_ctx *c, uint64_t *xsdt, uint64_t *rsdt)
{
	size_t xlen = ACPI_HDR_LEN + 8 * (size_t)c->ntables;
	size_t rlen = ACPI_HDR_LEN + 4 * (size_t)c->ntables;
	uint8_t *x, *r;
	unsigned i;

	x = acpi_alloc(c, "XSDT", xlen, 1, xsdt);
	if (!x)
		return -ENOSPC;
	r = acpi_alloc(c, "RSDT", rlen, 1, rsdt);
	if (!r)
		return -ENOSPC;
	for (i = 0; i < c->ntables; i++) {
		fw_put64(x + ACPI_HDR_LEN + 8 * i, c->table[i]);
		fw_put32(r + ACPI_HDR_LEN + 4 * i, (uint32_t)c->table[i]);
	}
	acpi_finish(x, (uint32_t)xlen);
	acpi_finish(r, (uint32_t)rlen);
	return 0;
}

static void acpi_rsdp(uint8_t *r, uint64_t xsdt, uint64_t rsdt)
{
	memcpy(r, "RSD PTR ", 8);
	memcpy(r + 9, ACPI_OEM_ID, 6);
	r[ACPI_RSDP_REVISION] = 2;
	fw_put32(r + ACPI_RSDP_RSDT, (uint32_t)rsdt);
	fw_put32(r + ACPI_RSDP_LENGTH, ACPI_RSDP_LEN);
	fw_put64(r + ACPI_RSDP_XSDT, xsdt);
	r[ACPI_RSDP_CHECKSUM] = fw_checksum(r, ACPI_RSDP_V1_LEN);
	r[ACPI_RSDP_EXT_CHECKSUM] = fw_checksum(r, ACPI_RSDP_LEN);
}

int acpi_build(struct fw_area *area, const struct fw_platform *p,
	       uint64_t *rsdp_gpa)
{
	struct acpi_ctx c = {.area = area};
	uint64_t rsdp, facs, dsdt, xsdt, rsdt;
	uint8_t *r;
	int rc;

	r = fw_area_alloc(area, ACPI_RSDP_LEN, 16, 0, &rsdp);
	if (!r)
		return -ENOSPC;
	rc = acpi_facs(&c, &facs);
	if (!rc)
		rc = acpi_dsdt(&c, p, &dsdt);
	if (!rc)
		rc = acpi_fadt(&c, facs, dsdt);
	if (!rc)
		rc = acpi_madt(&c, p);
	if (!rc && p->pci)
		rc = acpi_mcfg(&c, p);
	if (!rc)
		rc = acpi_xsdt_rsdt(&c, &xsdt, &rsdt);
	if (rc)
		return rc;
	acpi_rsdp(r, xsdt, rsdt);
	*rsdp_gpa = rsdp;
	return 0;
}
