/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The DSDT's AML (see acpi.h, aml.h).  In ASL terms it is:
 *
 *	Name (_S5, Package () { ACPI_S5_SLP_TYP, ACPI_S5_SLP_TYP, 0, 0 })
 *	Scope (\_SB) {
 *		Device (PC00) {			// only with a PCI root
 *			_HID PNP0A08, _CID PNP0A03, _SEG 0, _UID 0, _BBN
 *			_CRS: bus range, config ports, I/O and memory windows
 *			_PRT: the INTx routes, straight to I/O APIC GSIs
 *			Device (ISA) {		// the LPC bridge
 *				Device (COMn) { PNP0501 }, Device (RTC_)
 *			}
 *			<dsdt_hook>
 *		}
 *		Device (ECAM) { PNP0C02 }	// reserves the MCFG window
 *	}
 *
 * Without a PCI root the COM and RTC devices (and the hook) sit directly
 * in \_SB.
 *
 * Threads: called from acpi_build() only; no state.
 */
#include "firmware/acpi.h"

#include <errno.h>

#include "core/layout.h"
#include "firmware/aml.h"
#include "firmware/fw.h"

#define PCI_CONFIG_PORTS 8 /* 0xcf8-0xcff */
#define ECAM_BUS_SIZE (1ULL << 20)

static void dsdt_uart(struct aml *a, const struct fw_uart *u, unsigned idx)
{
	char name[5] = {'C', 'O', 'M', (char)('1' + idx), 0};

	aml_device_begin(a, name);
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0501");
	aml_name(a, "_UID");
	aml_integer(a, u->uid);
	aml_name(a, "_CRS");
	aml_restemplate_begin(a);
	aml_res_io(a, u->port, u->port, 1, 8);
	aml_res_irq_noflags(a, u->irq);
	aml_end(a);
	aml_end(a);
}

static void dsdt_rtc(struct aml *a)
{
	aml_device_begin(a, "RTC");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0B00");
	aml_name(a, "_CRS");
	aml_restemplate_begin(a);
	aml_res_io(a, PORT_RTC, PORT_RTC, 1, 2);
	aml_res_irq_noflags(a, RTC_IRQ);
	aml_end(a);
	aml_end(a);
}

static void dsdt_isa_devices(struct aml *a, const struct fw_platform *p)
{
	unsigned i;

	for (i = 0; i < p->nuarts; i++)
		dsdt_uart(a, &p->uarts[i], i);
	dsdt_rtc(a);
}

/* What one host bridge forwards (PC00 or a further root). */
struct root_desc {
	uint8_t bus_start, bus_end;
	uint16_t io_base, io_end;
	uint64_t mmio32_base, mmio32_end, mmio64_base, mmio64_end;
	const struct fw_pci_intx *intx;
	unsigned nintx;
	bool legacy_io; /* PC00: also the ISA ports outside the window */
};

/* _CRS of a PCI root: every window the host bridge forwards. */
static void dsdt_pci_crs(struct aml *a, const struct root_desc *r)
{
	uint32_t io_lo = 0xd00; /* legacy ports above the config ports */

	aml_name(a, "_CRS");
	aml_restemplate_begin(a);
	aml_res_word_bus(a, true, r->bus_start, r->bus_end);
	if (r->legacy_io) {
		aml_res_io(a, PORT_PCI_CONF_ADDR, PORT_PCI_CONF_ADDR, 1,
			   PCI_CONFIG_PORTS);
		aml_res_word_io(a, true, 0, PORT_PCI_CONF_ADDR - 1);
	}
	if (r->io_end > r->io_base) {
		/* the ports below the BAR window, the window, above it */
		if (r->legacy_io && r->io_base > io_lo)
			aml_res_word_io(a, true, (uint16_t)io_lo,
					(uint16_t)(r->io_base - 1));
		aml_res_word_io(a, true, r->io_base, r->io_end);
		io_lo = r->io_end + 1u;
	}
	if (r->legacy_io && io_lo <= 0xffff)
		aml_res_word_io(a, true, (uint16_t)io_lo, 0xffff);
	if (r->mmio32_end > r->mmio32_base)
		aml_res_dword_memory(a, true, false, (uint32_t)r->mmio32_base,
				     (uint32_t)r->mmio32_end);
	if (r->mmio64_end > r->mmio64_base)
		aml_res_qword_memory(a, true, true, r->mmio64_base,
				     r->mmio64_end);
	aml_end(a);
}

/* _PRT: Package { Address, Pin, Source (none: GSI), SourceIndex (GSI) } */
static void dsdt_pci_prt(struct aml *a, const struct root_desc *r)
{
	unsigned i;

	aml_name(a, "_PRT");
	aml_package_begin(a);
	for (i = 0; i < r->nintx; i++) {
		const struct fw_pci_intx *x = &r->intx[i];

		aml_package_begin(a);
		aml_integer(a, ((uint64_t)x->slot << 16) | 0xffff);
		aml_integer(a, x->pin);
		aml_integer(a, 0);
		aml_integer(a, x->gsi);
		aml_end(a);
	}
	aml_end(a);
}

/* The common part of a host bridge Device(): ids, _BBN, _CRS, _PRT. */
static void dsdt_host_bridge(struct aml *a, const char *name, unsigned uid,
			     const struct root_desc *r)
{
	aml_device_begin(a, name);
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A08");
	aml_name(a, "_CID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_SEG");
	aml_integer(a, 0);
	aml_name(a, "_UID");
	aml_integer(a, uid);
	aml_name(a, "_BBN");
	aml_integer(a, r->bus_start);
	dsdt_pci_crs(a, r);
	dsdt_pci_prt(a, r);
}

/* Device (PCxx) for each further root bridge (bhyve's bus model). */
static void dsdt_extra_roots(struct aml *a, const struct fw_platform *p)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned i;

	for (i = 0; i < p->nroots; i++) {
		const struct fw_pci_root *x = &p->roots[i];
		struct root_desc r = {
			.bus_start = x->bus,
			.bus_end = x->bus,
			.io_base = x->io_base,
			.io_end = x->io_end,
			.mmio32_base = x->mmio32_base,
			.mmio32_end = x->mmio32_end,
			.mmio64_base = x->mmio64_base,
			.mmio64_end = x->mmio64_end,
			.intx = x->intx,
			.nintx = x->nintx,
		};
		char name[5] = {'P', 'C', hex[x->bus >> 4], hex[x->bus & 15],
				0};

		dsdt_host_bridge(a, name, x->bus, &r);
		aml_end(a);
	}
}

/* Motherboard resource (PCI Firmware spec 4.1.2): the ECAM window. */
static void dsdt_ecam_reserve(struct aml *a, const struct fw_platform *p)
{
	uint64_t base = p->ecam_base + p->bus_start * ECAM_BUS_SIZE;
	uint64_t len = (fw_last_bus(p) - p->bus_start + 1ULL) * ECAM_BUS_SIZE;

	aml_device_begin(a, "ECAM");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0C02");
	aml_name(a, "_UID");
	aml_integer(a, 1);
	aml_name(a, "_CRS");
	aml_restemplate_begin(a);
	if (base + len <= 1ULL << 32)
		aml_res_memory32_fixed(a, true, (uint32_t)base, (uint32_t)len);
	else
		aml_res_qword_memory(a, false, false, base, base + len - 1);
	aml_end(a);
	aml_end(a);
}

/* Let device models add objects; they must leave as many open as found. */
static int dsdt_run_hook(struct aml *a, const struct fw_platform *p)
{
	unsigned depth = a->depth;
	int rc;

	if (!p->dsdt_hook || a->err)
		return 0;
	rc = p->dsdt_hook(a, p->dsdt_opaque);
	if (!rc && !a->err && a->depth != depth)
		rc = -EINVAL;
	return rc;
}

static int dsdt_pci_root(struct aml *a, const struct fw_platform *p)
{
	struct root_desc r = {
		.bus_start = p->bus_start,
		.bus_end = p->bus_end,
		.io_base = p->pci_io_base,
		.io_end = p->pci_io_end,
		.mmio32_base = p->mmio32_base,
		.mmio32_end = p->mmio32_end,
		.mmio64_base = p->mmio64_base,
		.mmio64_end = p->mmio64_end,
		.intx = p->intx,
		.nintx = p->nintx,
		.legacy_io = true,
	};
	int rc = 0;

	dsdt_host_bridge(a, "PC00", 0, &r);

	aml_device_begin(a, "ISA");
	if (p->lpc_slot) {
		aml_name(a, "_ADR");
		aml_integer(a, (uint64_t)p->lpc_slot << 16);
	} else {
		/* no LPC function to bind to: a generic ISA bus */
		aml_name(a, "_HID");
		aml_eisaid(a, "PNP0A05");
	}
	dsdt_isa_devices(a, p);
	aml_end(a);

	rc = dsdt_run_hook(a, p);
	aml_end(a);
	dsdt_extra_roots(a, p);
	dsdt_ecam_reserve(a, p);
	return rc;
}

int acpi_build_dsdt(struct aml *a, const struct fw_platform *p)
{
	int rc;

	rc = fw_platform_check(p, NULL);
	if (rc)
		return rc;

	aml_name(a, "_S5");
	aml_package_begin(a);
	aml_integer(a, ACPI_S5_SLP_TYP);
	aml_integer(a, ACPI_S5_SLP_TYP);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a);

	aml_scope_begin(a, "\\_SB");
	if (p->pci) {
		rc = dsdt_pci_root(a, p);
	} else {
		dsdt_isa_devices(a, p);
		rc = dsdt_run_hook(a, p);
	}
	aml_end(a);
	if (rc)
		return rc;
	return aml_finish(a);
}
