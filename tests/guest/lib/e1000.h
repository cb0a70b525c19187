/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A polled driver for the Intel 8254x (e1000) Ethernet controllers that
 * VMMs emulate: 82540EM (8086:100e, QEMU's "e1000") and 82545EM
 * (8086:100f, bhyve's and khyve's "e1000").  e1000.c: reset, MAC address
 * from RAL0/RAH0 or the EEPROM (EERD), legacy receive and transmit
 * descriptor rings, no interrupts.  It offers the struct netif of net.h.
 *
 * State: the caller's struct e1000.  BSP only, no locks.  The netif
 * operations touch only memory and MMIO (ring-3 safe); e1000_init() is
 * ring 0.
 */
#ifndef GUEST_E1000_H
#define GUEST_E1000_H

#include "net.h"

#define E1000_NRX 32 /* descriptors: multiples of 8 (128-byte rings) */
#define E1000_NTX 16
#define E1000_BUF 2048

struct e1000_rx_desc {
	uint64_t addr;
	uint16_t length;
	uint16_t csum;
	uint8_t status;
	uint8_t errors;
	uint16_t special;
};

struct e1000_tx_desc {
	uint64_t addr;
	uint16_t length;
	uint8_t cso;
	uint8_t cmd;
	uint8_t status;
	uint8_t css;
	uint16_t special;
};

struct e1000 {
	struct netif nif;
	uint8_t bus, dev, fn;
	uint16_t device;	  /* PCI device ID */
	uint64_t regs, regs_size; /* BAR0 */
	volatile struct e1000_rx_desc *rxd;
	volatile struct e1000_tx_desc *txd;
	uint8_t *rx_bufs, *tx_bufs;	/* E1000_BUF bytes per descriptor */
	unsigned int rx_next;		/* next descriptor to look at */
	unsigned int tx_next, tx_clean; /* next to fill, oldest in flight */
	bool rx_lent;
	bool rx_discard;      /* inside a frame being dropped */
	bool mac_from_eeprom; /* RAL0/RAH0 had no valid address */
	bool eeprom_ok;	      /* words 0-2 could be read */
	bool no_eerd;	      /* EERD does not answer: Microwire */
	uint8_t eeprom_mac[NET_ALEN];
	uint32_t status; /* STATUS after the set-up */
};

/* "82540EM", "82545EM", ... for a device ID (NULL: not one we drive). */
const char *e1000_model(uint16_t device);
/*
 * Find the nth supported e1000 function on bus 0; clears e and sets its
 * address and device ID.  Returns 0 or -GUEST_ENOENT.
 */
int e1000_find(unsigned int nth, struct e1000 *e);
/*
 * Map BAR0, reset the controller, mask its interrupts, read the MAC
 * address (RAL0/RAH0 if valid, else EEPROM words 0-2, written back to
 * RAL0/RAH0), clear the multicast table, set up and enable the receive
 * (broadcast accepted, CRC stripped, 2 KiB buffers) and transmit rings,
 * set link up and wait up to 3 s for STATUS.LU, and fill e->nif.
 * verbose prints what it finds.  Returns 0, -GUEST_ERANGE for an unusable
 * BAR, -GUEST_ETIMEDOUT if the reset does not finish, -GUEST_ENODEV
 * without any MAC address, -GUEST_ENOSPC without memory.
 */
int e1000_init(struct e1000 *e, bool verbose);
/*
 * Read EEPROM word addr through EERD, or, once EERD has not answered, by
 * clocking the Microwire interface of EECD.  Returns 0 (*val set),
 * -GUEST_ENODEV (no EEPROM present) or -GUEST_ETIMEDOUT.  Ring-3 safe.
 */
int e1000_eeprom_read(struct e1000 *e, uint8_t addr, uint16_t *val);
/* Register access (byte offset).  Ring-3 safe. */
uint32_t e1000_read(const struct e1000 *e, unsigned int reg);
void e1000_write(const struct e1000 *e, unsigned int reg, uint32_t v);

#endif
