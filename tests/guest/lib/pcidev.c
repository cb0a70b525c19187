/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PCI function helpers for drivers in the test guests: sized
 * configuration accesses (mechanism #1, byte and word lanes of 0xcfc),
 * the capability list walk, BAR decoding and sizing, and the command
 * register.  Everything read from the VMM is checked (capability pointers
 * into the header, loops, size masks) before it is used.
 *
 * BSP only: the 0xcf8/0xcfc pair is not locked.  Ring 0 (port I/O).
 */
#include "guest.h"

#define PCI_CONF_ADDR 0xcf8
#define PCI_CONF_DATA 0xcfc

#define PCIR_VENDOR 0x00
#define PCIR_COMMAND 0x04
#define PCIR_STATUS 0x06
#define PCIR_HDRTYPE 0x0e
#define PCIR_BAR0 0x10
#define PCIR_CAP_PTR 0x34
#define PCI_STATUS_CAP_LIST 0x0010
#define PCI_CAP_MAX 48 /* (256 - 64) / 4: more means a loop */

static void cfg_select(unsigned int bus, unsigned int dev, unsigned int fn,
		       unsigned int reg)
{
	outl(PCI_CONF_ADDR, 0x80000000u | (bus & 0xff) << 16 |
				    (dev & 0x1f) << 11 | (fn & 7) << 8 |
				    (reg & 0xfc));
}

uint8_t pci_cfg_read8(unsigned int bus, unsigned int dev, unsigned int fn,
		      unsigned int reg)
{
	cfg_select(bus, dev, fn, reg);
	return inb((uint16_t)(PCI_CONF_DATA + (reg & 3)));
}

uint16_t pci_cfg_read16(unsigned int bus, unsigned int dev, unsigned int fn,
			unsigned int reg)
{
	cfg_select(bus, dev, fn, reg);
	return inw((uint16_t)(PCI_CONF_DATA + (reg & 2)));
}

void pci_cfg_write8(unsigned int bus, unsigned int dev, unsigned int fn,
		    unsigned int reg, uint8_t val)
{
	cfg_select(bus, dev, fn, reg);
	outb((uint16_t)(PCI_CONF_DATA + (reg & 3)), val);
}

void pci_cfg_write16(unsigned int bus, unsigned int dev, unsigned int fn,
		     unsigned int reg, uint16_t val)
{
	cfg_select(bus, dev, fn, reg);
	outw((uint16_t)(PCI_CONF_DATA + (reg & 2)), val);
}

bool pci_func_present(unsigned int bus, unsigned int dev, unsigned int fn)
{
	uint16_t v = pci_cfg_read16(bus, dev, fn, PCIR_VENDOR);

	return v != 0xffff && v != 0;
}

int pci_cap_next(unsigned int bus, unsigned int dev, unsigned int fn,
		 unsigned int prev)
{
	unsigned int ptr, steps = 0, c;

	if (!(pci_cfg_read16(bus, dev, fn, PCIR_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	/* Walk from the start to bound the walk even if prev is in a loop. */
	ptr = pci_cfg_read8(bus, dev, fn, PCIR_CAP_PTR) & 0xfc;
	for (;;) {
		if (ptr == 0)
			return 0;
		if (ptr < 0x40 || ++steps > PCI_CAP_MAX)
			return -GUEST_EINVAL;
		c = ptr;
		if (prev == 0)
			return (int)c;
		ptr = pci_cfg_read8(bus, dev, fn, c + 1) & 0xfc;
		if (c == prev)
			prev = 0; /* the next one is the answer */
	}
}

int pci_cap_find(unsigned int bus, unsigned int dev, unsigned int fn,
		 uint8_t id)
{
	int c = 0;

	for (;;) {
		c = pci_cap_next(bus, dev, fn, (unsigned int)c);
		if (c < 0)
			return c;
		if (c == 0)
			return -GUEST_ENOENT;
		if (pci_cfg_read8(bus, dev, fn, (unsigned int)c) == id)
			return c;
	}
}

void pci_cmd_set(unsigned int bus, unsigned int dev, unsigned int fn,
		 uint16_t bits)
{
	uint16_t cmd = pci_cfg_read16(bus, dev, fn, PCIR_COMMAND);

	pci_cfg_write16(bus, dev, fn, PCIR_COMMAND, (uint16_t)(cmd | bits));
}

int pci_bar_probe(unsigned int bus, unsigned int dev, unsigned int fn,
		  unsigned int idx, struct pci_bar_info *bar)
{
	unsigned int reg = PCIR_BAR0 + 4 * idx;
	uint32_t lo, hi = 0, mlo, mhi = 0xffffffffu;
	uint16_t cmd;
	uint64_t mask;

	memset(bar, 0, sizeof(*bar));
	if (idx > 5)
		return -GUEST_EINVAL;
	lo = pci_cfg_read32(bus, dev, fn, reg);
	if (lo & 1) {
		bar->type = PCI_BAR_IO;
	} else {
		switch ((lo >> 1) & 3) {
		case 0:
			bar->type = PCI_BAR_MEM32;
			break;
		case 2:
			if (idx == 5)
				return -GUEST_EINVAL;
			bar->type = PCI_BAR_MEM64;
			hi = pci_cfg_read32(bus, dev, fn, reg + 4);
			break;
		default:
			return -GUEST_EINVAL; /* reserved type */
		}
		bar->prefetch = (lo & 8) != 0;
	}
	/* Size with decoding off, as an OS does, then restore. */
	cmd = pci_cfg_read16(bus, dev, fn, PCIR_COMMAND);
	pci_cfg_write16(bus, dev, fn, PCIR_COMMAND,
			(uint16_t)(cmd & ~(PCI_CMD_IO | PCI_CMD_MEM)));
	pci_cfg_write32(bus, dev, fn, reg, 0xffffffffu);
	mlo = pci_cfg_read32(bus, dev, fn, reg);
	pci_cfg_write32(bus, dev, fn, reg, lo);
	if (bar->type == PCI_BAR_MEM64) {
		pci_cfg_write32(bus, dev, fn, reg + 4, 0xffffffffu);
		mhi = pci_cfg_read32(bus, dev, fn, reg + 4);
		pci_cfg_write32(bus, dev, fn, reg + 4, hi);
	}
	pci_cfg_write16(bus, dev, fn, PCIR_COMMAND, cmd);
	if (bar->type == PCI_BAR_IO) {
		bar->addr = lo & ~3u;
		if ((mlo & ~3u) == 0) {
			bar->type = PCI_BAR_NONE; /* unimplemented */
			bar->addr = 0;
			return 0;
		}
		/* 16-bit I/O decoders may read the upper half as zeros */
		if (!(mlo & 0xffff0000u))
			mlo |= 0xffff0000u;
		mask = (mlo & ~3u) | 0xffffffff00000000ull;
	} else {
		bar->addr = (lo & ~0xfu) | (uint64_t)hi << 32;
		mask = (mlo & ~0xfu) | (uint64_t)mhi << 32;
		if ((mlo & ~0xfu) == 0 &&
		    (bar->type != PCI_BAR_MEM64 || mhi == 0)) {
			bar->type = PCI_BAR_NONE;
			bar->addr = 0;
			return 0;
		}
	}
	bar->size = ~mask + 1;
	/* A valid mask is ones above the size, zeros below it. */
	if (bar->size == 0 || (bar->size & (bar->size - 1)))
		return -GUEST_EIO;
	return 0;
}

int pci_find_class(uint32_t class_code, unsigned int nth, uint8_t *dev,
		   uint8_t *fn, uint32_t *id)
{
	unsigned int d, f, nfn;

	for (d = 0; d < 32; d++) {
		if (!pci_func_present(0, d, 0))
			continue;
		nfn = pci_cfg_read8(0, d, 0, PCIR_HDRTYPE) & 0x80 ? 8 : 1;
		for (f = 0; f < nfn; f++) {
			if (!pci_func_present(0, d, f))
				continue;
			if (pci_cfg_read32(0, d, f, 0x08) >> 8 != class_code ||
			    nth--)
				continue;
			*id = pci_cfg_read32(0, d, f, PCIR_VENDOR);
			*dev = (uint8_t)d;
			*fn = (uint8_t)f;
			return 0;
		}
	}
	return -GUEST_ENOENT;
}

int pci_bar_map_mem(unsigned int bus, unsigned int dev, unsigned int fn,
		    unsigned int idx, uint64_t min_size, const char *name,
		    uint64_t *addr, uint64_t *size)
{
	struct pci_bar_info bar;
	int rc;

	rc = pci_bar_probe(bus, dev, fn, idx, &bar);
	if (rc || (bar.type != PCI_BAR_MEM32 && bar.type != PCI_BAR_MEM64)) {
		printf("%s is not a memory BAR (%d)\n", name, rc);
		return rc ? rc : -GUEST_ENODEV;
	}
	if (bar.addr == 0 || bar.addr + bar.size > 0x100000000ull ||
	    bar.size < min_size) {
		printf("%s 0x%lx size 0x%lx unusable\n", name, bar.addr,
		       bar.size);
		return -GUEST_ERANGE;
	}
	*addr = bar.addr;
	*size = bar.size;
	pci_cmd_set(bus, dev, fn, PCI_CMD_MEM | PCI_CMD_MASTER);
	return 0;
}
