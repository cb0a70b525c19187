/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the Intel MP table (src/firmware/mptable.c) as a guest
 * finds it: the "_MP_" floating pointer on a 16-byte boundary in
 * 0xf0000-0xfffff, its checksum, the configuration table's base and
 * extended checksums, entry order, counts and interrupt routing.
 * Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/gmem.h"
#include "core/layout.h"
#include "firmware/fw.h"
#include "firmware/mptable.h"
#include "tests/tap.h"

#define RAM_SIZE (2 * MIB)

static uint8_t *ram;
static struct gmem mem;

static const struct fw_pci_intx intx[] = {
	{3, 0, 16},
	{4, 1, 18},
	{31, 3, 23},
};

struct mp_seen {
	unsigned cpus, bsp, buses, pci_buses, ioapics, ioints, pci_ints;
	unsigned localints, bad;
	uint8_t isa_bus, pci_bus, ioapic_id;
	int isa_pin[16]; /* IOAPIC pin of each ISA IRQ, -1 if none */
	uint8_t lint_type[2];
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static struct fw_platform platform(unsigned ncpus, bool pci)
{
	struct fw_platform p = {
		.ncpus = ncpus,
		.mptable = true,
		.pci = pci,
		.ecam_base = PCI_ECAM_BASE,
		.bus_end = 255,
		.pci_io_base = PCI_IO_BASE,
		.pci_io_end = PCI_IO_END - 1,
		.mmio32_base = PCI_MMIO32_BASE,
		.mmio32_end = PCI_MMIO32_END - 1,
		.intx = intx,
		.nintx = 3,
	};
	return p;
}

/* The guest's scan of the BIOS area. */
static uint64_t scan_mpfp(void)
{
	uint64_t a;

	for (a = MPFP_MIN_GPA; a < FW_TABLES_END; a += 16)
		if (!memcmp(ram + a, "_MP_", 4) && sum(ram + a, MPFP_LEN) == 0)
			return a;
	return 0;
}

static void walk_one(const uint8_t *e, struct mp_seen *s)
{
	switch (e[0]) {
	case MP_PROCESSOR:
		if (e[1] != s->cpus || !(e[3] & MP_CPU_ENABLED))
			s->bad++;
		s->bsp += !!(e[3] & MP_CPU_BSP);
		if ((e[3] & MP_CPU_BSP) && e[1] != 0)
			s->bad++;
		s->cpus++;
		break;
	case MP_BUS:
		s->buses++;
		if (!memcmp(e + 2, "PCI   ", 6)) {
			s->pci_buses++;
			s->pci_bus = e[1];
		} else if (!memcmp(e + 2, "ISA   ", 6)) {
			s->isa_bus = e[1];
		} else {
			s->bad++;
		}
		break;
	case MP_IOAPIC:
		s->ioapics++;
		s->ioapic_id = e[1];
		if (!(e[3] & 1) || get32(e + 4) != IOAPIC_BASE)
			s->bad++;
		break;
	case MP_IOINT:
		s->ioints++;
		if (e[1] != MP_INT || e[6] != s->ioapic_id)
			s->bad++;
		if (s->pci_buses && e[4] == s->pci_bus) {
			s->pci_ints++;
		} else if (e[4] == s->isa_bus && e[5] < 16) {
			if (s->isa_pin[e[5]] != -1)
				s->bad++; /* duplicate */
			s->isa_pin[e[5]] = e[7];
		} else {
			s->bad++;
		}
		break;
	case MP_LOCALINT:
		if (e[7] > 1 || e[6] != 0xff)
			s->bad++;
		else
			s->lint_type[e[7]] = e[1];
		s->localints++;
		break;
	default:
		s->bad++;
	}
}

/* Walk the configuration table; entries must come sorted by type. */
static int walk(uint64_t mpc, struct mp_seen *s)
{
	const uint8_t *t = ram + mpc;
	uint16_t len = get16(t + MPC_BASE_LEN), count;
	unsigned off = MPC_HDR_LEN, i;
	uint8_t last = 0;

	memset(s, 0, sizeof(*s));
	memset(s->isa_pin, 0xff, sizeof(s->isa_pin));
	count = get16(t + MPC_ENTRY_COUNT);
	for (i = 0; i < count; i++) {
		unsigned elen = t[off] == MP_PROCESSOR ? MP_PROCESSOR_LEN
						       : MP_ENTRY_LEN;

		if (off + elen > len || t[off] < last)
			return -1;
		last = t[off];
		walk_one(t + off, s);
		off += elen;
	}
	return off == len ? 0 : -1;
}

static uint64_t build_and_find(const struct fw_platform *p)
{
	uint64_t rsdp;

	memset(ram, 0, RAM_SIZE);
	if (fw_build_tables(&mem, p, &rsdp) != 0)
		return 0;
	return scan_mpfp();
}

static void test_table(unsigned ncpus, bool pci)
{
	struct fw_platform p = platform(ncpus, pci);
	uint64_t fp, mpc;
	struct mp_seen s;
	const uint8_t *t;
	unsigned irq, misrouted = 0;

	fp = build_and_find(&p);
	ok(fp != 0, "%u CPUs%s: floating pointer found", ncpus,
	   pci ? "" : " (no PCI)");
	if (!fp)
		return;
	ok(fp % 16 == 0 && fp >= 0xf0000 && fp + 16 <= 0x100000,
	   "floating pointer 16-byte aligned in 0xf0000-0xfffff");
	is_int(ram[fp + MPFP_LENGTH], 1, "floating pointer length 1");
	is_int(ram[fp + MPFP_SPEC_REV], 4, "MP spec 1.4");
	is_int(ram[fp + MPFP_FEATURE1], 0, "configuration table present");
	mpc = get32(ram + fp + MPFP_PHYS_ADDR);
	ok(mpc >= FW_TABLES_BASE && mpc < FW_TABLES_END,
	   "config table inside the firmware area");
	t = ram + mpc;
	ok(!memcmp(t, "PCMP", 4), "PCMP signature");
	is_int(sum(t, get16(t + MPC_BASE_LEN)), 0, "base table checksum");
	is_int(sum(t + get16(t + MPC_BASE_LEN), get16(t + MPC_EXT_LEN)) +
		       t[MPC_EXT_CHECKSUM],
	       0, "extended table checksum (empty table)");
	is_int(t[MPC_SPEC_REV], 4, "config table spec 1.4");
	is_int(get32(t + MPC_LAPIC_ADDR), LAPIC_BASE, "local APIC address");
	ok(!memcmp(t + MPC_OEM_ID, "KHYVE   ", 8), "OEM id");
	is_int(walk(mpc, &s), 0, "entries sorted, lengths add up");
	is_int(s.bad, 0, "every entry well formed");
	is_int(s.cpus, ncpus, "one processor entry per CPU");
	is_int(s.bsp, 1, "exactly one BSP (CPU 0)");
	is_int(s.buses, pci ? 2 : 1, "bus entries");
	is_int(s.pci_buses, pci ? 1 : 0, "PCI bus entry only with PCI");
	is_int(s.ioapics, 1, "one I/O APIC");
	is_int(s.ioapic_id, ncpus, "I/O APIC id = ncpus");
	is_int(s.ioints, 15 + (pci ? 3 : 0), "I/O interrupt entries");
	is_int(s.pci_ints, pci ? 3 : 0, "PCI INTx routes");
	is_int(s.isa_pin[0], 2, "ISA IRQ0 -> pin 2");
	is_int(s.isa_pin[2], -1, "no entry for IRQ2 (cascade)");
	for (irq = 1; irq < 16; irq++)
		if (irq != 2 && s.isa_pin[irq] != (int)irq)
			misrouted++;
	is_int(misrouted, 0, "ISA IRQs 1, 3-15 identity mapped");
	is_int(s.localints, 2, "two local interrupt entries");
	ok(s.lint_type[0] == MP_EXTINT && s.lint_type[1] == MP_NMI,
	   "ExtINT on LINT0, NMI on LINT1");
}

static void test_pci_route(void)
{
	struct fw_platform p = platform(2, true);
	uint64_t fp, mpc;
	const uint8_t *e;
	unsigned off, len, found = 0;

	fp = build_and_find(&p);
	if (!ok(fp != 0, "MP table for 2 CPUs"))
		return;
	mpc = get32(ram + fp + MPFP_PHYS_ADDR);
	len = get16(ram + mpc + MPC_BASE_LEN);
	/* past the two 20-byte processor entries all entries are 8 bytes */
	for (off = MPC_HDR_LEN + 2 * MP_PROCESSOR_LEN; off + 8 <= len;
	     off += 8) {
		e = ram + mpc + off;
		/* slot 4 INTB: source irq (4 << 2) | 1, level, active low */
		if (e[0] == MP_IOINT && e[4] == 0 && e[5] == ((4 << 2) | 1) &&
		    e[7] == 18 && get16(e + 2) == 0xf)
			found++;
	}
	is_int(found, 1, "slot 4 INTB -> pin 18, level, active low");
}

static void test_absent(void)
{
	struct fw_platform p = platform(2, true);

	p.mptable = false;
	ok(build_and_find(&p) == 0, "x86.mptable=false: no MP table");
	p = platform(MPTABLE_MAX_CPUS + 1, true);
	ok(build_and_find(&p) == 0, "%u CPUs: no MP table (8-bit APIC ids)",
	   MPTABLE_MAX_CPUS + 1);
	p = platform(MPTABLE_MAX_CPUS, true);
	ok(build_and_find(&p) != 0, "%u CPUs: MP table written",
	   MPTABLE_MAX_CPUS);
}

static void test_area_full(void)
{
	struct fw_platform p = platform(4, true);
	uint8_t buf[200];
	struct fw_area a = {buf, 0xf0000, sizeof(buf), 0};

	memset(buf, 0, sizeof(buf));
	is_int(mptable_build(&a, &p), -ENOSPC, "no room: -ENOSPC");
	a.size = 16;
	a.used = 0;
	is_int(mptable_build(&a, &p), -ENOSPC, "room for the pointer only");
}

int main(void)
{
	plan_no_plan();
	ram = calloc(1, RAM_SIZE);
	if (!ram)
		skip_all("out of memory");
	gmem_init_fake(&mem, ram, RAM_SIZE);
	test_table(1, true);
	test_table(2, true);
	test_table(8, false);
	test_table(MPTABLE_MAX_CPUS, true);
	test_pci_route();
	test_absent();
	test_area_full();
	free(ram);
	return done_testing();
}
