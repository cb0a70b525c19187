/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The Intel MP table (see mptable.h).  Entries are written in the order
 * the MP spec requires (sorted by type): processors, buses (PCI 0 then
 * ISA, or ISA 0 alone), the I/O APIC, I/O interrupt assignments (ISA IRQs
 * 0-15 with IRQ0 on pin 2, then the PCI INTx routes) and the local
 * interrupts (ExtINT on LINT0, NMI on LINT1).  No extended entries.
 *
 * Threads: called from fw_build_tables() only; no state, no locks.
 */
#include "firmware/mptable.h"

#include <errno.h>
#include <string.h>

#include "core/layout.h"
#include "firmware/fw.h"

#define MP_OEM_ID "KHYVE   "	     /* 8 bytes */
#define MP_PRODUCT_ID "KHYVE       " /* 12 bytes */
#define MP_LAPIC_VERSION 0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_IOAPIC_ENABLED 0x01
/* family 6 signature; features: FPU, APIC */
#define MP_CPU_SIGNATURE 0x600
#define MP_CPU_FEATURES ((1u << 0) | (1u << 9))
/* I/O interrupt flags: conforming, or PCI's level-triggered active low */
#define MP_IRQ_CONFORM 0x0
#define MP_IRQ_LEVEL_LOW 0xf
#define MP_ALL_LAPICS 0xff
#define ISA_IRQS 16

struct mp_ids {
	uint8_t pci_bus, isa_bus, ioapic;
};

static uint8_t *mp_cpu(uint8_t *e, unsigned id)
{
	e[0] = MP_PROCESSOR;
	e[1] = (uint8_t)id;
	e[2] = MP_LAPIC_VERSION;
	e[3] = MP_CPU_ENABLED | (id == 0 ? MP_CPU_BSP : 0);
	fw_put32(e + 4, MP_CPU_SIGNATURE);
	fw_put32(e + 8, MP_CPU_FEATURES);
	return e + MP_PROCESSOR_LEN;
}

static uint8_t *mp_bus(uint8_t *e, uint8_t id, const char *type)
{
	e[0] = MP_BUS;
	e[1] = id;
	memcpy(e + 2, type, 6);
	return e + MP_ENTRY_LEN;
}

static uint8_t *mp_int(uint8_t *e, uint8_t entry, uint8_t type, uint16_t flags,
		       uint8_t bus, uint8_t irq, uint8_t dst, uint8_t pin)
{
	e[0] = entry;
	e[1] = type;
	fw_put16(e + 2, flags);
	e[4] = bus;
	e[5] = irq;
	e[6] = dst;
	e[7] = pin;
	return e + MP_ENTRY_LEN;
}

static uint8_t *mp_irqs(uint8_t *e, const struct fw_platform *p,
			const struct mp_ids *id)
{
	unsigned irq, i;

	for (irq = 0; irq < ISA_IRQS; irq++) {
		if (irq == 2) /* the cascade; IRQ0 takes its pin */
			continue;
		e = mp_int(e, MP_IOINT, MP_INT, MP_IRQ_CONFORM, id->isa_bus,
			   (uint8_t)irq, id->ioapic,
			   (uint8_t)(irq == 0 ? 2 : irq));
	}
	for (i = 0; p->pci && i < p->nintx; i++) {
		const struct fw_pci_intx *r = &p->intx[i];

		/* PCI source irq: device number in bits 6:2, pin in 1:0 */
		e = mp_int(e, MP_IOINT, MP_INT, MP_IRQ_LEVEL_LOW, id->pci_bus,
			   (uint8_t)((r->slot << 2) | r->pin), id->ioapic,
			   r->gsi);
	}
	e = mp_int(e, MP_LOCALINT, MP_EXTINT, MP_IRQ_CONFORM, id->isa_bus, 0,
		   MP_ALL_LAPICS, 0);
	return mp_int(e, MP_LOCALINT, MP_NMI, MP_IRQ_CONFORM, id->isa_bus, 0,
		      MP_ALL_LAPICS, 1);
}

int mptable_build(struct fw_area *area, const struct fw_platform *p)
{
	struct mp_ids id = {
		.pci_bus = 0,
		.isa_bus = p->pci ? 1 : 0,
		.ioapic = fw_ioapic_id(p->ncpus),
	};
	uint64_t fp_gpa, mpc_gpa;
	uint8_t *fp, *mpc, *e;
	size_t nother, count, len;
	unsigned i;

	if (p->ncpus > MPTABLE_MAX_CPUS)
		return 0;
	/* buses, the I/O APIC, ISA IRQs but 2, INTx routes, 2 local ints */
	nother = (p->pci ? 2 : 1) + 1 + (ISA_IRQS - 1) +
		 (p->pci ? (size_t)p->nintx : 0) + 2;
	count = p->ncpus + nother;
	len = MPC_HDR_LEN + (size_t)p->ncpus * MP_PROCESSOR_LEN +
	      nother * MP_ENTRY_LEN;
	if (len > UINT16_MAX)
		return -ENOSPC;
	fp = fw_area_alloc(area, MPFP_LEN, 16, MPFP_MIN_GPA, &fp_gpa);
	mpc = fw_area_alloc(area, len, 16, 0, &mpc_gpa);
	if (!fp || !mpc)
		return -ENOSPC;

	memcpy(mpc, "PCMP", 4);
	fw_put16(mpc + MPC_BASE_LEN, (uint16_t)len);
	mpc[MPC_SPEC_REV] = MP_SPEC_REV_1_4;
	memcpy(mpc + MPC_OEM_ID, MP_OEM_ID, 8);
	memcpy(mpc + MPC_PRODUCT_ID, MP_PRODUCT_ID, 12);
	fw_put16(mpc + MPC_ENTRY_COUNT, (uint16_t)count);
	fw_put32(mpc + MPC_LAPIC_ADDR, (uint32_t)LAPIC_BASE);

	e = mpc + MPC_HDR_LEN;
	for (i = 0; i < p->ncpus; i++)
		e = mp_cpu(e, i);
	if (p->pci)
		e = mp_bus(e, id.pci_bus, "PCI   ");
	e = mp_bus(e, id.isa_bus, "ISA   ");
	e[0] = MP_IOAPIC;
	e[1] = id.ioapic;
	e[2] = MP_IOAPIC_VERSION;
	e[3] = MP_IOAPIC_ENABLED;
	fw_put32(e + 4, (uint32_t)IOAPIC_BASE);
	e = mp_irqs(e + MP_ENTRY_LEN, p, &id);
	if ((size_t)(e - mpc) != len)
		return -EINVAL; /* the count and the writer disagree */
	/* no extended entries: length 0, checksum of nothing */
	mpc[MPC_EXT_CHECKSUM] = fw_checksum(mpc + len, 0);
	mpc[MPC_CHECKSUM] = fw_checksum(mpc, len);

	memcpy(fp, "_MP_", 4);
	fw_put32(fp + MPFP_PHYS_ADDR, (uint32_t)mpc_gpa);
	fp[MPFP_LENGTH] = 1;
	fp[MPFP_SPEC_REV] = MP_SPEC_REV_1_4;
	fp[MPFP_FEATURE1] = 0; /* a configuration table is present */
	fp[MPFP_FEATURE2] = 0; /* IMCR absent: virtual wire mode */
	fp[MPFP_CHECKSUM] = fw_checksum(fp, MPFP_LEN);
	return 0;
}
