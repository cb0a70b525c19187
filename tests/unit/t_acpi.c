/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the ACPI tables (src/firmware/acpi.c, acpi_dsdt.c, fw.c):
 * built into fake guest RAM, then read back the way a guest does: scan
 * 0xe0000-0xfffff for the RSDP, follow the XSDT, check every checksum,
 * length and the FADT/MADT/MCFG fields, the DSDT's known byte snippets,
 * hostile platform descriptions, and -ENOSPC.  When iasl (acpica-tools)
 * is installed every table is also disassembled by it.  Single-threaded.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/gmem.h"
#include "core/layout.h"
#include "firmware/acpi.h"
#include "firmware/aml.h"
#include "firmware/fw.h"
#include "tests/tap.h"

#define RAM_SIZE (2 * MIB)

static uint8_t *ram;
static struct gmem mem;

static const struct fw_uart uarts[] = {
	{COM1_PORT, COM1_IRQ, 1},
	{COM2_PORT, COM2_IRQ, 2},
};

static const struct fw_pci_intx intx[] = {
	{3, 0, 16},
	{3, 1, 17},
	{4, 0, 17},
	{31, 3, 23},
};

static struct fw_platform platform(unsigned ncpus)
{
	struct fw_platform p = {
		.ncpus = ncpus,
		.mptable = true,
		.pci = true,
		.ecam_base = PCI_ECAM_BASE,
		.bus_start = 0,
		.bus_end = 255,
		.pci_io_base = PCI_IO_BASE,
		.pci_io_end = PCI_IO_END - 1,
		.mmio32_base = PCI_MMIO32_BASE,
		.mmio32_end = PCI_MMIO32_END - 1,
		.mmio64_base = 0x1000000000ULL,
		.mmio64_end = 0x1000000000ULL + PCI_MMIO64_SIZE - 1,
		.intx = intx,
		.nintx = 4,
		.lpc_slot = 31,
		.uarts = uarts,
		.nuarts = 2,
	};
	return p;
}

static uint8_t *gpa(uint64_t addr)
{
	return ram + addr;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static int build(const struct fw_platform *p, uint64_t *rsdp)
{
	memset(ram, 0, RAM_SIZE);
	*rsdp = 0;
	return fw_build_tables(&mem, p, rsdp);
}

/* The guest's view: a 16-byte-aligned "RSD PTR " with a good checksum. */
static uint64_t scan_rsdp(void)
{
	uint64_t a;

	for (a = FW_TABLES_BASE; a < FW_TABLES_END; a += 16)
		if (!memcmp(gpa(a), "RSD PTR ", 8) &&
		    sum(gpa(a), ACPI_RSDP_V1_LEN) == 0)
			return a;
	return 0;
}

/* A table at 'addr' inside the firmware area: checksum and bounds. */
static int table_ok(uint64_t addr, const char *sig)
{
	uint32_t len;

	if (addr < FW_TABLES_BASE || addr + ACPI_HDR_LEN > FW_TABLES_END)
		return 0;
	len = get32(gpa(addr) + ACPI_HDR_LENGTH);
	return !memcmp(gpa(addr), sig, 4) && len >= ACPI_HDR_LEN &&
	       addr + len <= FW_TABLES_END && sum(gpa(addr), len) == 0 &&
	       !memcmp(gpa(addr) + 10, "KHYVE ", 6) &&
	       !memcmp(gpa(addr) + 16, "KHYVE   ", 8) &&
	       !memcmp(gpa(addr) + 28, "KHYV", 4);
}

/* Find a table by signature through the XSDT; 0 if absent. */
static uint64_t find_table(uint64_t rsdp, const char *sig)
{
	uint64_t xsdt = get64(gpa(rsdp) + ACPI_RSDP_XSDT);
	uint32_t len = get32(gpa(xsdt) + ACPI_HDR_LENGTH), i;
	uint64_t t;

	for (i = ACPI_HDR_LEN; i + 8 <= len; i += 8) {
		t = get64(gpa(xsdt) + i);
		if (t >= FW_TABLES_BASE && t < FW_TABLES_END &&
		    !memcmp(gpa(t), sig, 4))
			return t;
	}
	return 0;
}

static int memmem_ok(uint64_t addr, uint32_t len, const void *needle, size_t n)
{
	return memmem(gpa(addr), len, needle, n) != NULL;
}

static void test_rsdp_xsdt(void)
{
	struct fw_platform p = platform(2);
	uint64_t rsdp, xsdt, rsdt, t;
	uint32_t len, i, n;
	const char *want[] = {"FACP", "APIC", "MCFG"};

	is_int(build(&p, &rsdp), 0, "tables build for 2 CPUs with PCI");
	is_int(scan_rsdp(), rsdp, "guest scan finds the RSDP at *rsdp_gpa");
	ok(rsdp % 16 == 0 && rsdp >= FW_TABLES_BASE && rsdp < FW_TABLES_END,
	   "RSDP 16-byte aligned inside the firmware area");
	is_int(gpa(rsdp)[ACPI_RSDP_REVISION], 2, "RSDP revision 2");
	is_int(get32(gpa(rsdp) + ACPI_RSDP_LENGTH), 36, "RSDP length 36");
	is_int(sum(gpa(rsdp), ACPI_RSDP_LEN), 0, "RSDP extended checksum");
	ok(!memcmp(gpa(rsdp) + 9, "KHYVE ", 6), "RSDP OEM id");

	xsdt = get64(gpa(rsdp) + ACPI_RSDP_XSDT);
	ok(table_ok(xsdt, "XSDT"), "XSDT signature, bounds, checksum, OEM");
	rsdt = get32(gpa(rsdp) + ACPI_RSDP_RSDT);
	ok(table_ok(rsdt, "RSDT"), "RSDT signature, bounds, checksum");
	len = get32(gpa(xsdt) + ACPI_HDR_LENGTH);
	n = (len - ACPI_HDR_LEN) / 8;
	is_int(n, 3, "XSDT has 3 entries");
	is_int(get32(gpa(rsdt) + ACPI_HDR_LENGTH), ACPI_HDR_LEN + 4 * n,
	       "RSDT has as many 32-bit entries");
	for (i = 0; i < n && i < 3; i++) {
		t = get64(gpa(xsdt) + ACPI_HDR_LEN + 8 * i);
		ok(table_ok(t, want[i]), "XSDT entry %u is a valid %s", i,
		   want[i]);
		is_int(get32(gpa(rsdt) + ACPI_HDR_LEN + 4 * i), t,
		       "RSDT entry %u matches the XSDT", i);
	}
	is_int(get32(gpa(find_table(rsdp, "FACP")) + ACPI_HDR_LENGTH),
	       ACPI_FADT_LEN, "FADT length 276");
	is_int(get32(gpa(find_table(rsdp, "MCFG")) + ACPI_HDR_LENGTH), 60,
	       "MCFG length 60 (one allocation)");
}

static void test_fadt(void)
{
	struct fw_platform p = platform(1);
	uint64_t rsdp, fadt, facs, dsdt;
	const uint8_t *f, *g;

	is_int(build(&p, &rsdp), 0, "tables build");
	fadt = find_table(rsdp, "FACP");
	ok(fadt && table_ok(fadt, "FACP"), "FADT checksum");
	if (!fadt)
		return;
	f = gpa(fadt);
	is_int(f[ACPI_HDR_REVISION], 6, "FADT revision 6");
	is_int(f[FADT_MINOR_VERSION], ACPI_FADT_MINOR, "FADT minor version");
	is_int(get16(f + FADT_SCI_INT), ACPI_SCI_IRQ, "SCI_INT");
	is_int(get32(f + FADT_SMI_CMD), PORT_SMI_CMD, "SMI_CMD");
	is_int(f[FADT_ACPI_ENABLE], ACPI_ENABLE_VAL, "ACPI_ENABLE");
	is_int(f[FADT_ACPI_DISABLE], ACPI_DISABLE_VAL, "ACPI_DISABLE");
	is_int(get32(f + FADT_PM1A_EVT_BLK), PORT_PM1A_EVT, "PM1a_EVT_BLK");
	is_int(f[FADT_PM1_EVT_LEN], 4, "PM1_EVT_LEN 4");
	is_int(get32(f + FADT_PM1A_CNT_BLK), PORT_PM1A_CNT, "PM1a_CNT_BLK");
	is_int(f[FADT_PM1_CNT_LEN], 2, "PM1_CNT_LEN 2");
	is_int(get32(f + FADT_PM_TMR_BLK), PORT_PM_TMR, "PM_TMR_BLK");
	is_int(f[FADT_PM_TMR_LEN], 4, "PM_TMR_LEN 4");
	ok(get32(f + FADT_GPE0_BLK) == 0 && f[FADT_GPE0_BLK_LEN] == 0,
	   "no GPE0 block");
	is_int(get32(f + FADT_FLAGS) & FADT_F_TMR_VAL_EXT, 0,
	       "24-bit PM timer (TMR_VAL_EXT clear)");
	ok(get32(f + FADT_FLAGS) & FADT_F_RESET_REG_SUP, "RESET_REG_SUP set");
	is_int(get16(f + FADT_IAPC_BOOT_ARCH),
	       FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042,
	       "IAPC_BOOT_ARCH: legacy devices, 8042");
	g = f + FADT_RESET_REG;
	ok(g[GAS_SPACE] == ACPI_GAS_SYSTEM_IO && g[GAS_BIT_WIDTH] == 8 &&
		   get64(g + GAS_ADDRESS) == PORT_RESET_CF9,
	   "RESET_REG is I/O port 0xcf9, 8 bits");
	is_int(f[FADT_RESET_VALUE], ACPI_RESET_VAL, "RESET_VALUE");

	facs = get32(f + FADT_FIRMWARE_CTRL);
	dsdt = get32(f + FADT_DSDT);
	is_int(get64(f + FADT_X_FIRMWARE_CTRL), facs, "X_FIRMWARE_CTRL");
	is_int(get64(f + FADT_X_DSDT), dsdt, "X_DSDT = DSDT");
	ok(facs % 64 == 0 && !memcmp(gpa(facs), "FACS", 4) &&
		   get32(gpa(facs) + 4) == 64,
	   "FACS 64-byte aligned, signature, length 64");
	ok(table_ok(dsdt, "DSDT"), "DSDT checksum and header");
	g = f + FADT_X_PM1A_EVT_BLK;
	ok(g[GAS_SPACE] == ACPI_GAS_SYSTEM_IO && g[GAS_BIT_WIDTH] == 32 &&
		   get64(g + GAS_ADDRESS) == PORT_PM1A_EVT,
	   "X_PM1a_EVT_BLK");
	g = f + FADT_X_PM1A_CNT_BLK;
	ok(g[GAS_SPACE] == ACPI_GAS_SYSTEM_IO && g[GAS_BIT_WIDTH] == 16 &&
		   get64(g + GAS_ADDRESS) == PORT_PM1A_CNT,
	   "X_PM1a_CNT_BLK");
	g = f + FADT_X_PM_TMR_BLK;
	ok(g[GAS_SPACE] == ACPI_GAS_SYSTEM_IO && g[GAS_BIT_WIDTH] == 32 &&
		   get64(g + GAS_ADDRESS) == PORT_PM_TMR,
	   "X_PM_TMR_BLK");
}

struct madt_count {
	unsigned lapic, x2apic, ioapic, iso, nmi, x2nmi, bad;
	unsigned next_id; /* ids must be 0, 1, 2, ... in order */
};

static void madt_walk(const uint8_t *t, struct madt_count *c)
{
	uint32_t len = get32(t + ACPI_HDR_LENGTH), off = MADT_ENTRIES;
	const uint8_t *e;

	memset(c, 0, sizeof(*c));
	while (off + 2 <= len) {
		e = t + off;
		if (e[1] < 2 || off + e[1] > len) {
			c->bad++;
			return;
		}
		switch (e[0]) {
		case MADT_LAPIC:
			c->lapic++;
			if (e[1] != 8 || e[3] != c->next_id ||
			    e[2] != c->next_id || get32(e + 4) != MADT_ENABLED)
				c->bad++;
			c->next_id++;
			break;
		case MADT_X2APIC:
			c->x2apic++;
			if (e[1] != 16 || get32(e + 4) != c->next_id ||
			    get32(e + 12) != c->next_id ||
			    get32(e + 8) != MADT_ENABLED)
				c->bad++;
			c->next_id++;
			break;
		case MADT_IOAPIC:
			c->ioapic++;
			if (e[1] != 12 || get32(e + 4) != IOAPIC_BASE ||
			    get32(e + 8) != 0)
				c->bad++;
			break;
		case MADT_ISO:
			c->iso++;
			if (e[1] != 10 || e[2] != 0)
				c->bad++;
			if (e[3] == 0 &&
			    (get32(e + 4) != 2 || (get16(e + 8) & 0xc) != 0x4))
				c->bad++;
			if (e[3] == 9 &&
			    (get32(e + 4) != 9 || get16(e + 8) != 0x000d))
				c->bad++;
			break;
		case MADT_LAPIC_NMI:
			c->nmi++;
			if (e[1] != 6 || e[2] != 0xff || e[5] != 1)
				c->bad++;
			break;
		case MADT_X2APIC_NMI:
			c->x2nmi++;
			if (e[1] != 12 || get32(e + 4) != 0xffffffff ||
			    e[8] != 1)
				c->bad++;
			break;
		default:
			c->bad++;
		}
		off += e[1];
	}
	if (off != len)
		c->bad++;
}

static void test_madt(unsigned ncpus, bool x2apic)
{
	struct fw_platform p = platform(ncpus);
	struct madt_count c;
	uint64_t rsdp, madt;
	unsigned want_x2;
	const uint8_t *t;

	p.x2apic = x2apic;
	is_int(build(&p, &rsdp), 0, "%u CPUs%s: tables build", ncpus,
	       x2apic ? " (x2apic)" : "");
	madt = find_table(rsdp, "APIC");
	ok(madt && table_ok(madt, "APIC"), "%u CPUs: MADT checksum", ncpus);
	if (!madt)
		return;
	t = gpa(madt);
	is_int(get32(t + MADT_LAPIC_ADDR), LAPIC_BASE, "local APIC address");
	is_int(get32(t + MADT_FLAGS), MADT_PCAT_COMPAT, "PCAT_COMPAT");
	madt_walk(t, &c);
	want_x2 = x2apic ? ncpus : ncpus > 255 ? ncpus - 255 : 0;
	is_int(c.bad, 0, "%u CPUs: every entry well formed", ncpus);
	is_int(c.lapic, ncpus - want_x2, "%u CPUs: local APIC entries", ncpus);
	is_int(c.x2apic, want_x2, "%u CPUs: x2APIC entries", ncpus);
	is_int(c.next_id, ncpus, "%u CPUs: ids 0..%u in order", ncpus,
	       ncpus - 1);
	is_int(c.ioapic, 1, "one I/O APIC");
	is_int(c.iso, 2, "two interrupt source overrides (IRQ0, SCI)");
	is_int(c.nmi, 1, "local APIC NMI on LINT1");
	is_int(c.x2nmi, want_x2 ? 1 : 0, "x2APIC NMI only with x2APIC CPUs");
}

static void test_madt_ioapic_id(void)
{
	struct fw_platform p = platform(4);
	uint64_t rsdp, madt;
	const uint8_t *t;

	build(&p, &rsdp);
	madt = find_table(rsdp, "APIC");
	t = gpa(madt) + MADT_ENTRIES + 4 * 8;
	ok(t[0] == MADT_IOAPIC && t[2] == 4, "I/O APIC id = ncpus (4)");
	is_int(fw_ioapic_id(300), 0xfe, "I/O APIC id stays below 0xff");
}

static void test_mcfg(void)
{
	struct fw_platform p = platform(1);
	uint64_t rsdp, mcfg;
	const uint8_t *e;

	p.bus_start = 0;
	p.bus_end = 63;
	is_int(build(&p, &rsdp), 0, "tables build with buses 0-63");
	mcfg = find_table(rsdp, "MCFG");
	ok(mcfg && table_ok(mcfg, "MCFG"), "MCFG checksum");
	if (!mcfg)
		return;
	e = gpa(mcfg) + MCFG_ENTRIES;
	ok(get64(e) == PCI_ECAM_BASE && get16(e + 8) == 0 && e[10] == 0 &&
		   e[11] == 63,
	   "MCFG allocation: ECAM base, segment 0, buses 0-63");
}

static void test_dsdt_snippets(void)
{
	static const uint8_t s5[] = {0x08, '_',
				     'S',  '5',
				     '_',  0x12,
				     0x08, 0x04,
				     0x0a, ACPI_S5_SLP_TYP,
				     0x0a, ACPI_S5_SLP_TYP,
				     0x00, 0x00};
	static const uint8_t hid_pnp0a08[] = {0x08, '_',  'H',	'I',  'D',
					      0x0c, 0x41, 0xd0, 0x0a, 0x08};
	static const uint8_t cid_pnp0a03[] = {0x08, '_',  'C',	'I',  'D',
					      0x0c, 0x41, 0xd0, 0x0a, 0x03};
	static const uint8_t com1_io[] = {0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03,
					  0x01, 0x08, 0x22, 0x10, 0x00};
	static const uint8_t rtc_io[] = {0x47, 0x01, 0x70, 0x00, 0x70, 0x00,
					 0x01, 0x02, 0x22, 0x00, 0x01};
	/* _PRT entry { 0x0003FFFF, One, Zero, 0x11 } */
	static const uint8_t prt[] = {0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff,
				      0x03, 0x00, 0x01, 0x00, 0x0a, 0x11};
	static const uint8_t bus[] = {0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00,
				      0x00, 0x00, 0x00, 0x00, 0xff, 0x00};
	static const uint8_t pnp0501[] = {0x0c, 0x41, 0xd0, 0x05, 0x01};
	static const uint8_t pnp0b00[] = {0x0c, 0x41, 0xd0, 0x0b, 0x00};
	struct fw_platform p = platform(2);
	uint64_t rsdp, dsdt;
	uint32_t len;

	build(&p, &rsdp);
	dsdt = get64(gpa(find_table(rsdp, "FACP")) + FADT_X_DSDT);
	len = get32(gpa(dsdt) + ACPI_HDR_LENGTH);
	is_int(gpa(dsdt)[ACPI_HDR_REVISION], 2, "DSDT revision 2");
	ok(memmem_ok(dsdt, len, s5, sizeof(s5)), "\\_S5 package bytes");
	ok(memmem_ok(dsdt, len, "\x10", 1) &&
		   memmem_ok(dsdt, len, "\x5c_SB_", 5),
	   "Scope (\\_SB)");
	ok(memmem_ok(dsdt, len, "\x5b\x82", 2) &&
		   memmem_ok(dsdt, len, "PC00", 4),
	   "Device (PC00)");
	ok(memmem_ok(dsdt, len, hid_pnp0a08, sizeof(hid_pnp0a08)),
	   "_HID EisaId (PNP0A08)");
	ok(memmem_ok(dsdt, len, cid_pnp0a03, sizeof(cid_pnp0a03)),
	   "_CID EisaId (PNP0A03) = 0x030AD041");
	ok(memmem_ok(dsdt, len, "_SEG\x00", 5) &&
		   memmem_ok(dsdt, len, "_BBN\x00", 5),
	   "_SEG 0, _BBN 0");
	ok(memmem_ok(dsdt, len, bus, sizeof(bus)), "_CRS WordBusNumber 0-255");
	ok(memmem_ok(dsdt, len, prt, sizeof(prt)),
	   "_PRT entry for slot 3 INTB -> GSI 17");
	ok(memmem_ok(dsdt, len, "COM1", 4) && memmem_ok(dsdt, len, "COM2", 4),
	   "COM1 and COM2 devices");
	ok(memmem_ok(dsdt, len, pnp0501, sizeof(pnp0501)), "PNP0501");
	ok(memmem_ok(dsdt, len, com1_io, sizeof(com1_io)),
	   "COM1 IO 0x3f8 len 8, IRQ 4");
	ok(memmem_ok(dsdt, len, "RTC_", 4) &&
		   memmem_ok(dsdt, len, pnp0b00, sizeof(pnp0b00)),
	   "RTC_ PNP0B00");
	ok(memmem_ok(dsdt, len, rtc_io, sizeof(rtc_io)),
	   "RTC IO 0x70-0x71, IRQ 8");
	ok(memmem_ok(dsdt, len, "_ADR\x0c\x00\x00\x1f\x00", 9),
	   "ISA bridge _ADR 0x001F0000");
}

/* Does the DSDT of 'p' hold a WordIO producer for [min, max]? */
static int has_word_io(const struct aml *a, uint16_t min, uint16_t max)
{
	uint8_t d[16] = {0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03};

	d[8] = (uint8_t)min;
	d[9] = (uint8_t)(min >> 8);
	d[10] = (uint8_t)max;
	d[11] = (uint8_t)(max >> 8);
	d[14] = (uint8_t)(max - min + 1);
	d[15] = (uint8_t)((max - min + 1) >> 8);
	return memmem(a->buf, a->len, d, sizeof(d)) != NULL;
}

static unsigned count_byte_pairs(const struct aml *a, uint8_t b0, uint8_t b1)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i + 1 < a->len; i++)
		n += a->buf[i] == b0 && a->buf[i + 1] == b1;
	return n;
}

static void test_pci_windows(void)
{
	static const uint8_t mmio32[] = {0x00, 0x00, 0x00, 0xc0,
					 0xff, 0xff, 0xff, 0xdf};
	struct fw_platform p = platform(1);
	struct aml a;

	aml_init(&a);
	is_int(acpi_build_dsdt(&a, &p), 0, "DSDT for the default windows");
	ok(has_word_io(&a, 0, 0xcf7), "WordIO 0x0000-0x0cf7");
	ok(has_word_io(&a, 0xd00, 0x1fff), "WordIO 0x0d00-0x1fff");
	ok(has_word_io(&a, 0x2000, 0xffff), "WordIO 0x2000-0xffff (window)");
	is_int(count_byte_pairs(&a, 0x88, 0x0d), 4,
	       "bus range and three WordIO descriptors");
	ok(memmem(a.buf, a.len, mmio32, sizeof(mmio32)) != NULL,
	   "DWordMemory 0xc0000000-0xdfffffff (inclusive end)");
	is_int(count_byte_pairs(&a, 0x8a, 0x2b), 1, "one QWordMemory");
	aml_free(&a);

	p.pci_io_base = 0x1000;
	p.pci_io_end = 0x7fff;
	p.mmio64_base = p.mmio64_end = 0;
	aml_init(&a);
	is_int(acpi_build_dsdt(&a, &p), 0, "DSDT for a mid-range I/O window");
	ok(has_word_io(&a, 0xd00, 0xfff) && has_word_io(&a, 0x1000, 0x7fff) &&
		   has_word_io(&a, 0x8000, 0xffff),
	   "ports below, in and above the window");
	is_int(count_byte_pairs(&a, 0x8a, 0x2b), 0,
	       "empty 64-bit window: no QWordMemory");
	aml_free(&a);

	p.pci_io_base = p.pci_io_end = 0;
	p.mmio32_base = p.mmio32_end = 0;
	aml_init(&a);
	is_int(acpi_build_dsdt(&a, &p), 0, "DSDT without BAR windows");
	ok(has_word_io(&a, 0xd00, 0xffff), "one WordIO 0x0d00-0xffff");
	is_int(count_byte_pairs(&a, 0x87, 0x17), 0, "no DWordMemory");
	aml_free(&a);
}

static void test_no_pci(void)
{
	struct fw_platform p = platform(2);
	uint64_t rsdp, dsdt;
	uint32_t len;

	p.pci = false;
	is_int(build(&p, &rsdp), 0, "tables build without PCI");
	ok(find_table(rsdp, "MCFG") == 0, "no MCFG without PCI");
	ok(find_table(rsdp, "FACP") && find_table(rsdp, "APIC"),
	   "FADT and MADT still there");
	dsdt = get64(gpa(find_table(rsdp, "FACP")) + FADT_X_DSDT);
	len = get32(gpa(dsdt) + ACPI_HDR_LENGTH);
	ok(table_ok(dsdt, "DSDT"), "DSDT checksum");
	ok(!memmem_ok(dsdt, len, "PC00", 4) && !memmem_ok(dsdt, len, "_PRT", 4),
	   "no PCI root, no _PRT");
	ok(memmem_ok(dsdt, len, "COM1", 4) && memmem_ok(dsdt, len, "RTC_", 4),
	   "COM and RTC devices directly in \\_SB");
}

static int hook_calls;

static int hook_add_device(struct aml *a, void *opaque)
{
	hook_calls++;
	aml_device_begin(a, (const char *)opaque);
	aml_name(a, "_ADR");
	aml_integer(a, 0x00050000);
	aml_end(a);
	return 0;
}

static int hook_unbalanced(struct aml *a, void *opaque)
{
	(void)opaque;
	aml_device_begin(a, "LEAK");
	return 0;
}

static int hook_fails(struct aml *a, void *opaque)
{
	(void)a;
	(void)opaque;
	return -EIO;
}

static void test_hook(void)
{
	struct fw_platform p = platform(1);
	char name[] = "VIO5";
	uint64_t rsdp, dsdt;

	p.dsdt_hook = hook_add_device;
	p.dsdt_opaque = name;
	is_int(build(&p, &rsdp), 0, "DSDT hook adds a device");
	dsdt = get64(gpa(find_table(rsdp, "FACP")) + FADT_X_DSDT);
	ok(hook_calls == 1 &&
		   memmem_ok(dsdt, get32(gpa(dsdt) + ACPI_HDR_LENGTH),
			     "VIO5\x08_ADR\x0c\x00\x00\x05\x00", 14),
	   "hook's Device (VIO5) is in the DSDT");
	p.dsdt_hook = hook_unbalanced;
	is_int(build(&p, &rsdp), -EINVAL, "hook leaving a Device open");
	ok(scan_rsdp() == 0, "nothing written on failure");
	p.dsdt_hook = hook_fails;
	is_int(build(&p, &rsdp), -EIO, "hook error is returned");
	p.pci = false;
	p.dsdt_hook = hook_add_device;
	hook_calls = 0;
	is_int(build(&p, &rsdp), 0, "hook runs without PCI too");
	is_int(hook_calls, 1, "hook called once");
}

static void test_hostile(void)
{
	struct fw_platform p;
	struct fw_uart many[FW_MAX_UARTS + 1];
	struct fw_pci_intx bad_intx = {32, 0, 16};
	struct fw_uart bad_uart = {0x3f8, 16, 1};
	struct gmem small;
	uint8_t *tiny;
	uint64_t rsdp = 0;

	p = platform(0);
	is_int(build(&p, &rsdp), -EINVAL, "0 CPUs refused");
	p = platform(1);
	p.bus_start = 10;
	p.bus_end = 9;
	is_int(build(&p, &rsdp), -EINVAL, "bus_start > bus_end refused");
	p = platform(1);
	p.pci_io_base = 0x100;
	is_int(build(&p, &rsdp), -EINVAL, "I/O window over legacy ports");
	p = platform(1);
	p.pci_io_base = 0xcf8;
	is_int(build(&p, &rsdp), -EINVAL, "I/O window over 0xcf8");
	p = platform(1);
	p.mmio32_end = 1ULL << 32;
	is_int(build(&p, &rsdp), -EINVAL, "32-bit window above 4 GiB");
	p = platform(1);
	p.ecam_base = PCI_ECAM_BASE + 4096;
	is_int(build(&p, &rsdp), -EINVAL, "unaligned ECAM base");
	p = platform(1);
	p.ecam_base = UINT64_MAX - (1ULL << 20) + 1;
	is_int(build(&p, &rsdp), -EINVAL, "ECAM window wrapping around");
	p = platform(1);
	p.intx = &bad_intx;
	p.nintx = 1;
	is_int(build(&p, &rsdp), -EINVAL, "INTx slot 32 refused");
	p.intx = NULL;
	is_int(build(&p, &rsdp), -EINVAL, "nintx without an array");
	p = platform(1);
	p.uarts = &bad_uart;
	p.nuarts = 1;
	is_int(build(&p, &rsdp), -EINVAL, "UART IRQ 16 refused");
	p = platform(1);
	memset(many, 0, sizeof(many));
	p.uarts = many;
	p.nuarts = FW_MAX_UARTS + 1;
	is_int(build(&p, &rsdp), -EINVAL, "too many UARTs refused");
	p.nuarts = FW_MAX_UARTS;
	is_int(build(&p, &rsdp), 0, "FW_MAX_UARTS UARTs accepted");
	is_int(fw_build_tables(&mem, NULL, &rsdp), -EINVAL, "NULL platform");

	p = platform(1);
	is_int(fw_build_tables(NULL, &p, &rsdp), -EFAULT, "NULL gmem");
	tiny = calloc(1, 512 * KIB);
	gmem_init_fake(&small, tiny, 512 * KIB);
	is_int(fw_build_tables(&small, &p, &rsdp), -EFAULT,
	       "512 KiB of RAM: no room at 0xe0000");
	free(tiny);
}

static void test_nospc(void)
{
	static struct fw_pci_intx all[32 * 4];
	struct fw_uart four[4] = {{COM1_PORT, COM1_IRQ, 1},
				  {COM2_PORT, COM2_IRQ, 2},
				  {COM3_PORT, COM3_IRQ, 3},
				  {COM4_PORT, COM4_IRQ, 4}};
	struct fw_platform p = platform(300);
	uint64_t rsdp;
	unsigned i;

	for (i = 0; i < 32 * 4; i++)
		all[i] =
			(struct fw_pci_intx){(uint8_t)(i / 4), (uint8_t)(i % 4),
					     (uint8_t)(16 + (i % 8))};
	p.intx = all;
	p.nintx = 32 * 4;
	p.uarts = four;
	p.nuarts = 4;
	p.x2apic = true;
	is_int(build(&p, &rsdp), 0,
	       "fits: 300 x2APIC CPUs, 128 INTx routes, 4 UARTs");
	p.ncpus = 254;
	p.x2apic = false;
	is_int(build(&p, &rsdp), 0, "fits: 254 CPUs with an MP table too");
	p.ncpus = 4000;
	p.x2apic = true;
	is_int(build(&p, &rsdp), 0, "fits: 4000 x2APIC CPUs (64 KiB MADT)");
	p.ncpus = 10000;
	is_int(build(&p, &rsdp), -ENOSPC, "10000 CPUs: -ENOSPC");
	ok(scan_rsdp() == 0 && rsdp == 0, "guest RAM untouched on -ENOSPC");
	p.ncpus = UINT32_MAX;
	is_int(build(&p, &rsdp), -ENOSPC, "UINT32_MAX CPUs: -ENOSPC");
	p.ncpus = 1;
	p.nintx = FW_MAX_INTX + 1;
	is_int(build(&p, &rsdp), -EINVAL, "more than FW_MAX_INTX routes");
	p.nintx = UINT32_MAX;
	is_int(build(&p, &rsdp), -EINVAL, "UINT32_MAX INTx routes");
}

/* Disassemble every table with iasl when it is installed. */
static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	int good;

	if (!f)
		return 0;
	good = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && good;
}

static int run_iasl(const char *dir, const char *name)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && iasl -d %s.dat >%s.log 2>&1 && "
		 "! grep -Eiq '(error|warning)[ ]' %s.log && "
		 "test -s %s.dsl",
		 dir, name, name, name, name);
	st = system(cmd);
	return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void test_iasl(const char *what, const struct fw_platform *p)
{
	static const char *const sigs[] = {"FACP", "APIC", "MCFG", "DSDT"};
	char dir[] = "/tmp/t_acpi.XXXXXX", path[600], cmd[700];
	uint64_t rsdp, t;
	unsigned i;
	int st;

	diag("iasl checks: %s", what);

	if (system("command -v iasl >/dev/null 2>&1") != 0) {
		diag("iasl not installed (apt-get install acpica-tools): "
		     "skipping the disassembly checks");
		ok(1, "# SKIP iasl missing");
		return;
	}
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	is_int(build(p, &rsdp), 0, "tables build for iasl");
	for (i = 0; i < 4; i++) {
		if (i == 2 && !p->pci)
			continue;
		if (i < 3)
			t = find_table(rsdp, sigs[i]);
		else
			t = get64(gpa(find_table(rsdp, "FACP")) + FADT_X_DSDT);
		snprintf(path, sizeof(path), "%s/%s.dat", dir, sigs[i]);
		ok(t &&
			   write_file(path, gpa(t),
				      get32(gpa(t) + ACPI_HDR_LENGTH)) &&
			   run_iasl(dir, sigs[i]),
		   "iasl -d %s: no errors or warnings", sigs[i]);
	}
	snprintf(cmd, sizeof(cmd),
		 "grep -q 'Name (_S5, Package' %s/DSDT.dsl && "
		 "grep -q 'Device (COM1)' %s/DSDT.dsl && "
		 "%s grep -q 'EisaId (\"PNP0A08\")' %s/DSDT.dsl && "
		 "%s grep -q 'WordBusNumber' %s/DSDT.dsl",
		 dir, dir, p->pci ? "" : "!", dir, p->pci ? "" : "!", dir);
	st = system(cmd);
	ok(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "iasl's DSDT shows _S5, COM1 and %s PCI root",
	   p->pci ? "the" : "no");
	/* the compiler checks more (_PRT shape, _HID types, resources) */
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && iasl -p rt DSDT.dsl >compile.log 2>&1 && "
		 "grep -q ' 0 Errors, 0 Warnings' compile.log",
		 dir);
	st = system(cmd);
	ok(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "the disassembled DSDT recompiles: 0 errors, 0 warnings");
	if (getenv("T_ACPI_KEEP"))
		diag("tables kept in %s", dir);
	else {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			diag("could not remove %s", dir);
	}
}

/* Further root bridges (bhyve's one-host-bridge-per-bus model). */
static void test_roots(void)
{
	static const struct fw_pci_intx ix[] = { { 2, 0, 19 } };
	struct fw_pci_root roots[2] = {
		{ .bus = 1, .io_base = 0x8000, .io_end = 0x8fff,
		  .mmio32_base = 0xd0000000, .mmio32_end = 0xd0ffffff,
		  .intx = ix, .nintx = 1 },
		{ .bus = 0x1f, .mmio64_base = 0x900000000ULL,
		  .mmio64_end = 0x9ffffffffULL },
	};
	struct fw_platform p = platform(2), bad;
	char dir[] = "/tmp/t_acpi_roots.XXXXXX", path[600], cmd[900];
	uint64_t rsdp, t;
	int st;

	p.bus_end = 0;
	p.roots = roots;
	p.nroots = 2;
	is_int(build(&p, &rsdp), 0, "tables with two further root bridges");
	t = find_table(rsdp, "MCFG");
	ok(t && gpa(t)[44 + 11] == 0x1f, "MCFG covers up to the last root");
	bad = p;
	bad.bus_end = 1;
	is_int(build(&bad, &rsdp), -EINVAL, "root bus inside PC00's range");
	roots[1].bus = 1;
	is_int(build(&p, &rsdp), -EINVAL, "two roots on one bus");
	roots[1].bus = 0x1f;
	roots[0].io_base = 0x100;
	is_int(build(&p, &rsdp), -EINVAL, "root I/O window below 0xd00");
	roots[0].io_base = 0x8000;
	if (system("command -v iasl >/dev/null 2>&1") != 0 || !mkdtemp(dir)) {
		ok(1, "# SKIP iasl missing");
		return;
	}
	is_int(build(&p, &rsdp), 0, "rebuilt");
	t = get64(gpa(find_table(rsdp, "FACP")) + FADT_X_DSDT);
	snprintf(path, sizeof(path), "%s/DSDT.dat", dir);
	ok(write_file(path, gpa(t), get32(gpa(t) + ACPI_HDR_LENGTH)) &&
		   run_iasl(dir, "DSDT"),
	   "iasl -d: DSDT with roots disassembles cleanly");
	snprintf(cmd, sizeof(cmd),
		 "grep -q 'Device (PC01)' %s/DSDT.dsl && "
		 "grep -q 'Device (PC1F)' %s/DSDT.dsl && "
		 "grep -c 'WordBusNumber' %s/DSDT.dsl | grep -qx 3 && "
		 "cd %s && iasl -p rt DSDT.dsl >compile.log 2>&1 && "
		 "grep -q ' 0 Errors, 0 Warnings' compile.log",
		 dir, dir, dir, dir);
	st = system(cmd);
	ok(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "PC01 and PC1F with their own bus ranges; recompiles cleanly");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
}

int main(void)
{
	struct fw_platform p;

	plan_no_plan();
	ram = calloc(1, RAM_SIZE);
	if (!ram)
		skip_all("out of memory");
	gmem_init_fake(&mem, ram, RAM_SIZE);

	test_rsdp_xsdt();
	test_fadt();
	test_madt(1, false);
	test_madt(2, false);
	test_madt(300, false);
	test_madt(300, true);
	test_madt(2, true);
	test_madt_ioapic_id();
	test_mcfg();
	test_dsdt_snippets();
	test_pci_windows();
	test_no_pci();
	test_hook();
	test_hostile();
	test_nospc();
	test_roots();
	p = platform(3);
	test_iasl("3 CPUs, PCI", &p);
	p = platform(1);
	p.lpc_slot = 0;
	p.nintx = 0;
	test_iasl("no LPC slot, empty _PRT", &p);
	p = platform(300);
	p.pci = false;
	p.nuarts = 1;
	test_iasl("300 CPUs, no PCI", &p);
	free(ram);
	return done_testing();
}
