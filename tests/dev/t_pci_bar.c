/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for PCI BARs and interrupts without KVM, through a test-only
 * model ("t-bars"): allocation in the I/O, 32-bit and 64-bit windows,
 * sizing with all-ones writes, moves (the bus follows, the barmap hook is
 * told), decode on/off, MSI-X table/PBA/masking/function mask, MSI, INTx
 * with INTxDIS and lines shared between two functions, _PRT routes.
 */
#include <errno.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "config/config.h"
#include "core/devmodel.h"
#include "core/layout.h"
#include "pci/pci.h"
#include "tests/tap.h"

#define NMSI 8

static struct {
	unsigned reads, writes;
	uint64_t last_off;
	int maps, unmaps;
	uint64_t map_addr;
} st;

static struct {
	int msi_count;
	uint64_t addr;
	uint32_t data;
	int level[IOAPIC_PINS];
} irq;

static int sink_set(void *o, unsigned gsi, int level)
{
	(void)o;
	if (gsi < IOAPIC_PINS)
		irq.level[gsi] = level;
	return 0;
}

static int sink_msi(void *o, uint64_t addr, uint32_t data)
{
	(void)o;
	irq.msi_count++;
	irq.addr = addr;
	irq.data = data;
	return 0;
}

static int tb_init(struct pci_dev *pd, struct cfg_node *node)
{
	int rc;

	(void)node;
	pci_set_ids(pd, 0x1af4, 0x10f0, 0xff, 0, 0);
	if ((rc = pci_bar_alloc(pd, 0, PCIBAR_IO, 32, false)) ||
	    (rc = pci_bar_alloc(pd, 1, PCIBAR_MEM32, 0x2000, false)) ||
	    (rc = pci_bar_alloc(pd, 2, PCIBAR_MEM64, 64 * MIB, true)) ||
	    (rc = pci_msix_init(pd, NMSI, 1, 0x0, 0x1000)) ||
	    (rc = pci_msi_init(pd, 4)) || (rc = pci_intx_init(pd)))
		return rc;
	return 0;
}

static void tb_barread(struct pci_dev *pd, unsigned idx, uint64_t off,
		       unsigned size, uint64_t *val)
{
	(void)pd;
	(void)size;
	st.reads++;
	st.last_off = off;
	*val = 0xa0 + idx;
}

static void tb_barwrite(struct pci_dev *pd, unsigned idx, uint64_t off,
			unsigned size, uint64_t val)
{
	(void)pd;
	(void)idx;
	(void)size;
	(void)val;
	st.writes++;
	st.last_off = off;
}

static void tb_barmap(struct pci_dev *pd, unsigned idx, bool mapped,
		      uint64_t addr)
{
	(void)pd;
	if (idx != 1)
		return;
	if (mapped) {
		st.maps++;
		st.map_addr = addr;
	} else {
		st.unmaps++;
	}
}

static const struct pci_devops tb_ops = {
	.init = tb_init,
	.barread = tb_barread,
	.barwrite = tb_barwrite,
	.barmap = tb_barmap,
};
static const struct cfg_key tb_keys[] = {
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0}};
static const struct devmodel tb_model = {
	.name = "t-bars",
	.kind = DEVMODEL_PCI,
	.keys = tb_keys,
	.pci = &tb_ops,
};
DEVMODEL_SET(tb_model);

static struct devctx ctx;
static struct pci_bus *root;

static uint32_t cfgr(unsigned s, unsigned f, unsigned off, unsigned size)
{
	return pci_cfg_read(root, 0, s, f, off, size);
}

static void cfgw(unsigned s, unsigned f, unsigned off, unsigned size,
		 uint32_t v)
{
	pci_cfg_write(root, 0, s, f, off, size, v);
}

static uint64_t mmio(uint64_t addr, unsigned size, bool write, uint64_t v)
{
	bus_dispatch(ctx.mmio, addr, size, write, &v);
	return v;
}

int main(void)
{
	struct cfg_node *cfg = cfg_new();
	uint32_t bar0, bar1, bar2lo, bar2hi, v;
	uint64_t b1, tbl, pba, b2;
	uint8_t s[8], p[8], g[8];
	unsigned n, cap;

	plan_no_plan();
	bus_new(&ctx.pio, "pio");
	bus_new(&ctx.mmio, "mmio");
	ctx.irq = (struct irq_sink){.set_irq = sink_set, .msi = sink_msi};
	ctx.root = cfg;
	cfg_set(cfg, "pci.0.4.0.device", "t-bars");
	cfg_set(cfg, "pci.0.4.1.device", "t-bars");
	cfg_set(cfg, "pci.0.12.0.device", "t-bars");
	is_int(pci_root_new(&ctx, &root), 0, "root");
	pci_set_windows(root, PCI_IO_BASE, PCI_IO_END - 1, PCI_MMIO32_BASE,
			PCI_MMIO32_END - 1, 0x800000000ULL,
			0x800000000ULL + 32 * GIB - 1);
	is_int(pci_create_devices(root, cfg), 0, "three functions created");
	is_int(pci_assign_bars(root), 0, "BARs assigned");

	bar0 = cfgr(4, 0, PCIR_BAR(0), 4);
	bar1 = cfgr(4, 0, PCIR_BAR(1), 4);
	bar2lo = cfgr(4, 0, PCIR_BAR(2), 4);
	bar2hi = cfgr(4, 0, PCIR_BAR(3), 4);
	is_int(bar0 & 1, 1, "BAR0 is I/O");
	ok((bar0 & ~3u) >= PCI_IO_BASE && (bar0 & ~3u) < PCI_IO_END &&
		   (bar0 & 31) == 1,
	   "BAR0 in the I/O window, aligned (0x%x)", bar0);
	is_int(bar1 & 0xf, 0, "BAR1 is 32-bit non-prefetchable memory");
	b1 = bar1 & ~0xfULL;
	ok(b1 >= PCI_MMIO32_BASE && b1 < PCI_MMIO32_END && !(b1 & 0x1fff),
	   "BAR1 in the 32-bit window, aligned");
	is_int(bar2lo & 0xf, 0xc, "BAR2 is 64-bit prefetchable");
	b2 = (bar2lo & ~0xfULL) | (uint64_t)bar2hi << 32;
	is_int(b2, 0x800000000ULL, "64 MiB BAR goes to the 64-bit window");
	is_int(cfgr(4, 0, PCIR_COMMAND, 2) & 3, 3, "I/O and memory decode on");
	is_int(st.maps, 3, "barmap told about BAR1 of each function");

	/* sizing */
	cfgw(4, 0, PCIR_BAR(1), 4, 0xffffffff);
	is_int(cfgr(4, 0, PCIR_BAR(1), 4), 0xffffe000, "BAR1 sizes to 8 KiB");
	cfgw(4, 0, PCIR_BAR(0), 4, 0xffffffff);
	is_int(cfgr(4, 0, PCIR_BAR(0), 4), 0xffffffe1, "BAR0 sizes to 32");
	cfgw(4, 0, PCIR_BAR(2), 4, 0xffffffff);
	cfgw(4, 0, PCIR_BAR(3), 4, 0xffffffff);
	is_int(cfgr(4, 0, PCIR_BAR(2), 4), 0xfc00000c, "BAR2 low sizes");
	is_int(cfgr(4, 0, PCIR_BAR(3), 4), 0xffffffff, "BAR2 high sizes");
	cfgw(4, 0, PCIR_BAR(5), 4, 0xffffffff);
	is_int(cfgr(4, 0, PCIR_BAR(5), 4), 0, "unused BAR reads 0");

	/* move BAR1 while decoding: bus and hook follow */
	cfgw(4, 0, PCIR_BAR(1), 4, 0xd0000000);
	ok(st.map_addr == 0xd0000000, "barmap told the new address");
	v = (uint32_t)mmio(0xd0000000 + 0x1ff0, 4, false, 0);
	ok(bus_claimed(ctx.mmio, 0xd0001ff0), "BAR1 decodes at 0xd0000000");
	ok(!bus_claimed(ctx.mmio, b1 + 0x1ff0), "old BAR1 address released");
	/* decode off/on */
	cfgw(4, 0, PCIR_COMMAND, 2, 0);
	ok(!bus_claimed(ctx.mmio, 0xd0000000), "memory decode off unmaps");
	cfgw(4, 0, PCIR_COMMAND, 2, PCIM_CMD_MEMEN | PCIM_CMD_PORTEN);
	ok(bus_claimed(ctx.mmio, 0xd0000000), "decode on maps again");
	st.reads = 0;
	mmio(0xd0000000 + 0x1800, 4, false, 0);
	is_int(st.reads, 1, "non-MSI-X part of BAR1 reaches the model");
	is_int(st.last_off, 0x1800, "with the offset in the BAR");
	(void)v;

	/* MSI-X */
	tbl = 0xd0000000;
	pba = 0xd0001000;
	for (cap = cfgr(4, 0, PCIR_CAP_PTR, 1); cap;
	     cap = cfgr(4, 0, cap + 1, 1))
		if (cfgr(4, 0, cap, 1) == PCIY_MSIX)
			break;
	ok(cap != 0, "MSI-X capability in the list");
	is_int(cfgr(4, 0, cap + 2, 2) & 0x7ff, NMSI - 1, "table size");
	is_int(cfgr(4, 0, cap + 4, 4), 0x1, "table in BAR1 at 0");
	is_int(cfgr(4, 0, cap + 8, 4), 0x1001, "PBA in BAR1 at 0x1000");
	is_int(mmio(tbl + 12, 4, false, 0), 1, "vectors start masked");
	mmio(tbl + 16 * 3, 8, true, 0xfee01000ULL);
	mmio(tbl + 16 * 3 + 8, 4, true, 0x4041);
	is_int(mmio(tbl + 16 * 3, 8, false, 0), 0xfee01000ULL,
	       "64-bit table write reads back");
	irq.msi_count = 0;
	pci_irq_notify(pci_find(root, 0, 4, 0), 3);
	is_int(irq.msi_count, 0, "MSI-X disabled: no MSI (INTx instead)");
	is_int(irq.level[pci_find(root, 0, 4, 0)->intx_gsi], 1,
	       "INTx asserted while MSI-X is off");
	pci_intx_deassert(pci_find(root, 0, 4, 0));
	cfgw(4, 0, cap + 2, 2, 0x8000);
	pci_irq_notify(pci_find(root, 0, 4, 0), 3);
	is_int(irq.msi_count, 0, "masked vector does not fire");
	is_int(mmio(pba, 8, false, 0), 1u << 3, "its PBA bit is set");
	mmio(tbl + 16 * 3 + 12, 4, true, 0);
	is_int(irq.msi_count, 1, "unmasking delivers the pending vector");
	is_int(irq.addr, 0xfee01000ULL, "to the programmed address");
	is_int(irq.data, 0x4041, "with the programmed data");
	is_int(mmio(pba, 8, false, 0), 0, "PBA bit cleared");
	cfgw(4, 0, cap + 2, 2, 0xc000);
	pci_irq_notify(pci_find(root, 0, 4, 0), 3);
	is_int(irq.msi_count, 1, "function mask holds it");
	cfgw(4, 0, cap + 2, 2, 0x8000);
	is_int(irq.msi_count, 2, "clearing the function mask delivers");
	is_int(pci_irq_notify(pci_find(root, 0, 4, 0), NMSI), -EINVAL,
	       "vector beyond the table refused");
	mmio(tbl + 2, 2, true, 0xffff);
	mmio(tbl + 16 * NMSI - 4, 1, false, 0);
	mmio(pba, 4, true, 0xffffffff);
	is_int(mmio(pba, 8, false, 0), 0, "odd-sized and PBA writes ignored");
	cfgw(4, 0, cap + 2, 2, 0);

	/* MSI */
	for (cap = cfgr(4, 0, PCIR_CAP_PTR, 1); cap;
	     cap = cfgr(4, 0, cap + 1, 1))
		if (cfgr(4, 0, cap, 1) == PCIY_MSI)
			break;
	ok(cap != 0, "MSI capability in the list");
	is_int((cfgr(4, 0, cap + 2, 2) >> 1) & 7, 2, "MSI: 4 vectors capable");
	cfgw(4, 0, cap + 4, 4, 0xfee00000);
	cfgw(4, 0, cap + 8, 4, 0);
	cfgw(4, 0, cap + 12, 2, 0x30);
	cfgw(4, 0, cap + 2, 2, 0x11); /* enable, MME = 2 vectors */
	irq.msi_count = 0;
	pci_irq_notify(pci_find(root, 0, 4, 0), 1);
	is_int(irq.msi_count, 1, "MSI sent");
	is_int(irq.data, 0x31, "vector number in the low data bits");
	is_int(pci_irq_notify(pci_find(root, 0, 4, 0), 2), -EINVAL,
	       "vector beyond MME refused");
	cfgw(4, 0, cap + 2, 2, 0);

	/* INTx sharing: 4.0 and 12.0 share a pin (slot swizzle) */
	{
		struct pci_dev *a = pci_find(root, 0, 4, 0);
		struct pci_dev *b = pci_find(root, 0, 12, 0);

		is_int(a->intx_gsi, b->intx_gsi, "slots 4 and 12 share a pin");
		pci_intx_assert(a);
		pci_intx_assert(b);
		pci_intx_deassert(a);
		is_int(irq.level[a->intx_gsi], 1, "line stays up for b");
		pci_intx_deassert(b);
		is_int(irq.level[a->intx_gsi], 0, "line drops when both ack");
		pci_intx_assert(a);
		cfgw(4, 0, PCIR_COMMAND, 2,
		     PCIM_CMD_MEMEN | PCIM_CMD_PORTEN | PCIM_CMD_INTxDIS);
		is_int(irq.level[a->intx_gsi], 0, "INTxDIS drops the line");
		cfgw(4, 0, PCIR_COMMAND, 2, PCIM_CMD_MEMEN | PCIM_CMD_PORTEN);
		is_int(irq.level[a->intx_gsi], 1, "clearing it raises it");
		pci_intx_deassert(a);
	}
	n = pci_intx_routes(root, 0, s, p, g, 8);
	is_int(n, 2, "two _PRT routes (slot 4 INTA once, slot 12 INTA)");
	is_int(cfgr(4, 0, PCIR_INTPIN, 1), 1, "interrupt pin A");

	pci_root_free(root);
	bus_free(ctx.pio);
	bus_free(ctx.mmio);
	cfg_free(cfg);

	/* two buses: each gets contiguous, disjoint sub-windows */
	{
		struct pci_bus_windows w0, w2;
		struct pci_dev *a, *b;
		uint8_t buses[4];

		cfg = cfg_new();
		bus_new(&ctx.pio, "pio");
		bus_new(&ctx.mmio, "mmio");
		ctx.root = cfg;
		cfg_set(cfg, "pci.0.4.0.device", "t-bars");
		cfg_set(cfg, "pci.2.1.0.device", "t-bars");
		pci_root_new(&ctx, &root);
		pci_set_windows(root, PCI_IO_BASE, PCI_IO_END - 1,
				PCI_MMIO32_BASE, PCI_MMIO32_END - 1,
				0x800000000ULL, 0x800000000ULL + 32 * GIB - 1);
		is_int(pci_create_devices(root, cfg), 0, "bus 0 and bus 2");
		is_int(pci_assign_bars(root), 0, "assigned per bus");
		is_int(pci_buses(root, buses, 4), 2, "two populated buses");
		is_int(buses[1], 2, "the second is bus 2");
		ok(pci_bus_windows(root, 0, &w0) &&
			   pci_bus_windows(root, 2, &w2),
		   "both have windows");
		ok(w0.io_end < w2.io_base && w0.mem32_end < w2.mem32_base &&
			   w0.mem64_end < w2.mem64_base,
		   "bus 2's windows follow bus 0's without overlap");
		a = pci_find(root, 0, 4, 0);
		b = pci_find(root, 2, 1, 0);
		ok(a->bar[0].addr >= w0.io_base &&
			   a->bar[0].addr <= w0.io_end &&
			   b->bar[0].addr >= w2.io_base &&
			   b->bar[0].addr <= w2.io_end,
		   "I/O BARs inside their bus's window");
		ok(b->bar[1].addr >= w2.mem32_base &&
			   b->bar[1].addr + b->bar[1].size - 1 <= w2.mem32_end,
		   "memory BAR inside its bus's window");
		is_int(pci_intx_routes(root, 2, s, p, g, 8), 1,
		       "bus 2 has its own _PRT route");
		is_int(g[0], 16 + (2 + 1) % 8, "swizzled by bus and slot");
		ok(!pci_bus_windows(root, 1, &w0), "bus 1 is empty");
		pci_root_free(root);
		bus_free(ctx.pio);
		bus_free(ctx.mmio);
		cfg_free(cfg);
	}
	return done_testing();
}
