/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PCI configuration access through mechanism #1 (0xcf8 address, 0xcfc
 * data) and a bus listing.  BSP only (the address/data pair is not
 * locked).
 */
#include "guest.h"

#define PCI_CONF_ADDR 0xcf8
#define PCI_CONF_DATA 0xcfc

static uint32_t cfg_addr(unsigned int bus, unsigned int dev, unsigned int fn,
			 unsigned int reg)
{
	return 0x80000000u | (bus & 0xff) << 16 | (dev & 0x1f) << 11 |
	       (fn & 7) << 8 | (reg & 0xfc);
}

uint32_t pci_cfg_read32(unsigned int bus, unsigned int dev, unsigned int fn,
			unsigned int reg)
{
	outl(PCI_CONF_ADDR, cfg_addr(bus, dev, fn, reg));
	return inl(PCI_CONF_DATA);
}

void pci_cfg_write32(unsigned int bus, unsigned int dev, unsigned int fn,
		     unsigned int reg, uint32_t val)
{
	outl(PCI_CONF_ADDR, cfg_addr(bus, dev, fn, reg));
	outl(PCI_CONF_DATA, val);
}

static const char *class_name(uint32_t class)
{
	switch (class >> 16) {
	case 0x01:
		return "storage";
	case 0x02:
		return "network";
	case 0x03:
		return "display";
	case 0x06:
		switch ((class >> 8) & 0xff) {
		case 0x00:
			return "host bridge";
		case 0x01:
			return "ISA bridge";
		case 0x04:
			return "PCI bridge";
		default:
			return "bridge";
		}
	case 0x07:
		return "communication";
	case 0x08:
		return "system";
	case 0x0c:
		return "serial bus";
	case 0xff:
		return "unassigned";
	default:
		return "other";
	}
}

int pci_list_bus(unsigned int bus)
{
	unsigned int dev, fn, nfn;
	uint32_t id, class, hdr;
	int found = 0;

	for (dev = 0; dev < 32; dev++) {
		nfn = 1;
		for (fn = 0; fn < nfn; fn++) {
			id = pci_cfg_read32(bus, dev, fn, 0x00);
			if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
				continue;
			class = pci_cfg_read32(bus, dev, fn, 0x08) >> 8;
			if (fn == 0) {
				hdr = pci_cfg_read32(bus, dev, 0, 0x0c) >> 16;
				if (hdr & 0x80)
					nfn = 8;
			}
			printf("  %02x:%02x.%u %04x:%04x class %06x (%s)\n",
			       bus, dev, fn, id & 0xffff, id >> 16, class,
			       class_name(class));
			found++;
		}
	}
	return found;
}
