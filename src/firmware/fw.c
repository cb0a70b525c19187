/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * fw_build_tables(): checks the platform description, composes the ACPI
 * tables and the MP table in a host staging copy of [FW_TABLES_BASE,
 * FW_TABLES_END), and copies it into guest RAM once everything fits.
 * Also the staging allocator and checksum the builders share (fw.h).
 *
 * Threads: main thread, before vCPUs run; no state, no locks.
 */
#include "firmware/fw.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/gmem.h"
#include "core/layout.h"
#include "firmware/acpi.h"
#include "firmware/mptable.h"
#include "lib/log.h"

uint8_t *fw_area_alloc(struct fw_area *a, size_t len, size_t align,
		       uint64_t min_gpa, uint64_t *gpa)
{
	uint64_t at = a->gpa + a->used, end = a->gpa + a->size;

	if (!align || (align & (align - 1)))
		return NULL;
	if (at < min_gpa)
		at = min_gpa;
	at = (at + align - 1) & ~((uint64_t)align - 1);
	if (at < a->gpa || at > end || len > end - at)
		return NULL;
	a->used = (size_t)(at + len - a->gpa);
	if (gpa)
		*gpa = at;
	return a->buf + (at - a->gpa);
}

uint8_t fw_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;
	size_t i;

	for (i = 0; i < len; i++)
		sum = (uint8_t)(sum + b[i]);
	return (uint8_t)(0x100 - sum);
}

static const char *check_intx(const struct fw_pci_intx *intx, unsigned n)
{
	unsigned i;

	if (n && !intx)
		return "INTx routes missing";
	if (n > FW_MAX_INTX)
		return "too many INTx routes";
	for (i = 0; i < n; i++)
		if (intx[i].slot > 31 || intx[i].pin > 3)
			return "INTx route with a bad slot or pin";
	return NULL;
}

static const char *check_roots(const struct fw_platform *p)
{
	unsigned i, last = p->bus_end;
	const char *msg;

	if (p->nroots && !p->roots)
		return "PCI root bridges missing";
	if (p->nroots > FW_MAX_ROOTS)
		return "too many PCI root bridges";
	for (i = 0; i < p->nroots; i++) {
		const struct fw_pci_root *r = &p->roots[i];

		if (r->bus <= last)
			return "PCI root bridge buses overlap or are unsorted";
		last = r->bus;
		if (r->io_end > r->io_base && r->io_base < 0xd00)
			return "PCI I/O window below 0xd00";
		if (r->mmio32_end > r->mmio32_base &&
		    r->mmio32_end > UINT32_MAX)
			return "32-bit PCI window above 4 GiB";
		if ((msg = check_intx(r->intx, r->nintx)))
			return msg;
	}
	return NULL;
}

static const char *check_pci(const struct fw_platform *p)
{
	const char *msg;

	if (p->bus_start > p->bus_end)
		return "PCI bus range is empty";
	if (p->ecam_base % (1ULL << 20) != 0 ||
	    p->ecam_base + ((p->bus_end + 1ULL) << 20) < p->ecam_base)
		return "ECAM base is not 1 MiB aligned or wraps";
	if (p->pci_io_end > p->pci_io_base && p->pci_io_base < 0xd00)
		return "PCI I/O window below 0xd00";
	if (p->mmio32_end > p->mmio32_base && p->mmio32_end > UINT32_MAX)
		return "32-bit PCI window above 4 GiB";
	if ((msg = check_intx(p->intx, p->nintx)))
		return msg;
	if (p->lpc_slot > 31)
		return "bad LPC slot";
	return check_roots(p);
}

int fw_platform_check(const struct fw_platform *p, const char **why)
{
	const char *msg = NULL;
	unsigned i;

	if (!p || !p->ncpus)
		msg = "no CPUs";
	else if (p->nuarts > FW_MAX_UARTS || (p->nuarts && !p->uarts))
		msg = "too many UARTs";
	for (i = 0; !msg && i < p->nuarts; i++)
		if (p->uarts[i].irq > 15)
			msg = "UART IRQ above 15";
	if (!msg && p->pci)
		msg = check_pci(p);
	if (why)
		*why = msg;
	return msg ? -EINVAL : 0;
}

int fw_build_tables(const struct gmem *mem, const struct fw_platform *p,
		    uint64_t *rsdp_gpa)
{
	struct fw_area area = {
		.gpa = FW_TABLES_BASE,
		.size = FW_TABLES_END - FW_TABLES_BASE,
	};
	uint64_t rsdp = 0;
	const char *why;
	int rc;

	rc = fw_platform_check(p, &why);
	if (rc) {
		log_err("firmware tables: %s", why);
		return rc;
	}
	if (!mem || !gmem_ptr(mem, area.gpa, area.size))
		return -EFAULT;
	area.buf = calloc(1, area.size);
	if (!area.buf)
		return -ENOMEM;
	rc = acpi_build(&area, p, &rsdp);
	if (!rc && p->mptable)
		rc = mptable_build(&area, p);
	if (rc == -ENOSPC)
		log_err("ACPI/MP tables for %u CPUs do not fit in "
			"0x%llx-0x%llx",
			p->ncpus, (unsigned long long)FW_TABLES_BASE,
			(unsigned long long)FW_TABLES_END - 1);
	if (!rc)
		rc = gmem_write(mem, area.gpa, area.buf, area.size);
	free(area.buf);
	if (!rc && rsdp_gpa)
		*rsdp_gpa = rsdp;
	return rc;
}
