/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A polled driver for the 8254x (e1000) controllers that VMMs emulate
 * (Intel's "PCI/PCI-X Family of Gigabit Ethernet Controllers Software
 * Developer's Manual"): 82540EM (QEMU) and 82545EM (bhyve, khyve).
 * Memory-mapped registers (BAR0), legacy receive and transmit
 * descriptors, 2 KiB buffers, interrupts masked.
 *
 * The MAC address: RAL0/RAH0 as the VMM left them (before and after our
 * reset; bhyve clears RAH.AV on a software reset), else the EEPROM words
 * 0-2, read through EERD (QEMU) or, where EERD does not answer (bhyve
 * only has the Microwire interface), by clocking the EEPROM through EECD.
 *
 * Descriptor fields written by the device (status, length) are checked
 * before use; a frame with an error bit or without EOP is dropped.
 *
 * State: the caller's struct e1000.  BSP only, no locks.  The netif
 * operations touch only memory and MMIO (ring-3 safe); e1000_init() is
 * ring 0.
 */
#include "e1000.h"

#define REG_CTRL 0x0000
#define REG_STATUS 0x0008
#define REG_EECD 0x0010
#define REG_EERD 0x0014
#define REG_ICR 0x00c0
#define REG_IMC 0x00d8
#define REG_RCTL 0x0100
#define REG_TCTL 0x0400
#define REG_TIPG 0x0410
#define REG_RDBAL 0x2800
#define REG_RDBAH 0x2804
#define REG_RDLEN 0x2808
#define REG_RDH 0x2810
#define REG_RDT 0x2818
#define REG_RDTR 0x2820
#define REG_TDBAL 0x3800
#define REG_TDBAH 0x3804
#define REG_TDLEN 0x3808
#define REG_TDH 0x3810
#define REG_TDT 0x3818
#define REG_MTA 0x5200
#define REG_RAL0 0x5400
#define REG_RAH0 0x5404
#define BAR0_MIN 0x20000 /* 128 KiB of registers */

#define CTRL_LRST (1u << 3)
#define CTRL_ASDE (1u << 5)
#define CTRL_SLU (1u << 6)
#define CTRL_ILOS (1u << 7)
#define CTRL_RST (1u << 26)
#define CTRL_VME (1u << 30)
#define CTRL_PHY_RST (1u << 31)
#define STATUS_LU (1u << 1)
#define EERD_START 1u
#define EERD_DONE (1u << 4)
#define EERD_ADDR_SHIFT 8
#define EECD_SK 0x001
#define EECD_CS 0x002
#define EECD_DI 0x004
#define EECD_DO 0x008
#define EECD_REQ 0x040
#define EECD_GNT 0x080
#define EECD_PRES 0x100
#define EECD_SIZE 0x200	 /* Microwire: 256 words (8 address bits) */
#define EEPROM_READ_OP 6 /* start bit and READ: 1 10 */
#define EEPROM_WORDS 64
#define EEPROM_SUM 0xbaba
#define RAH_AV (1u << 31)
#define RCTL_EN (1u << 1)
#define RCTL_BAM (1u << 15)
#define RCTL_SECRC (1u << 26) /* BSIZE 00: 2048-byte buffers */
#define TCTL_EN (1u << 1)
#define TCTL_PSP (1u << 3)
#define TCTL_CT (0x10u << 4)
#define TCTL_COLD (0x40u << 12)
#define RXD_DD 0x01
#define RXD_EOP 0x02
#define RXD_ERRORS 0x97 /* CE SE SEQ CXE RXE (not the checksum bits) */
#define TXD_EOP 0x01
#define TXD_IFCS 0x02
#define TXD_RS 0x08
#define TXD_DD 0x01

static const struct {
	uint16_t device;
	const char *model;
} models[] = {
	{0x100e, "82540EM"},
	{0x100f, "82545EM"},
	{0x100c, "82544GC"},
	{0x1026, "82545GM"},
};

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

const char *e1000_model(uint16_t device)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(models); i++)
		if (models[i].device == device)
			return models[i].model;
	return NULL;
}

uint32_t e1000_read(const struct e1000 *e, unsigned int reg)
{
	return mmio_read32(e->regs + reg);
}

void e1000_write(const struct e1000 *e, unsigned int reg, uint32_t v)
{
	mmio_write32(e->regs + reg, v);
}

int e1000_find(unsigned int nth, struct e1000 *e)
{
	unsigned int dev, fn, nfn;
	uint32_t id;

	mem_clear(e, sizeof(*e));
	for (dev = 0; dev < 32; dev++) {
		if (!pci_func_present(0, dev, 0))
			continue;
		nfn = pci_cfg_read8(0, dev, 0, 0x0e) & 0x80 ? 8 : 1;
		for (fn = 0; fn < nfn; fn++) {
			id = pci_cfg_read32(0, dev, fn, 0);
			if ((id & 0xffff) != 0x8086 ||
			    !e1000_model((uint16_t)(id >> 16)) || nth--)
				continue;
			e->bus = 0;
			e->dev = (uint8_t)dev;
			e->fn = (uint8_t)fn;
			e->device = (uint16_t)(id >> 16);
			return 0;
		}
	}
	return -GUEST_ENOENT;
}

/* ---- EEPROM
 * ------------------------------------------------------------------ */

static int eerd_read(struct e1000 *e, uint8_t addr, uint16_t *val)
{
	unsigned int i;
	uint32_t v;

	e1000_write(e, REG_EERD,
		    (uint32_t)addr << EERD_ADDR_SHIFT | EERD_START);
	for (i = 0; i < 1000; i++) {
		v = e1000_read(e, REG_EERD);
		if (v & EERD_DONE) {
			*val = (uint16_t)(v >> 16);
			return 0;
		}
		cpu_relax();
	}
	return -GUEST_ETIMEDOUT;
}

/* One Microwire clock: raise SK, sample DO, lower SK. */
static bool mw_clock(struct e1000 *e, uint32_t eecd)
{
	uint32_t v;

	e1000_write(e, REG_EECD, eecd | EECD_SK);
	v = e1000_read(e, REG_EECD);
	e1000_write(e, REG_EECD, eecd);
	return (v & EECD_DO) != 0;
}

/* Read a word by clocking the Microwire EEPROM through EECD. */
static int microwire_read(struct e1000 *e, uint8_t addr, uint16_t *val)
{
	uint32_t eecd = e1000_read(e, REG_EECD), bits;
	unsigned int i, nbits, abits;
	uint16_t w = 0;

	if (!(eecd & EECD_PRES))
		return -GUEST_ENODEV;
	abits = eecd & EECD_SIZE ? 8 : 6;
	eecd &= ~(EECD_SK | EECD_CS | EECD_DI | EECD_DO);
	e1000_write(e, REG_EECD, eecd | EECD_REQ);
	for (i = 0; i < 1000 && !(e1000_read(e, REG_EECD) & EECD_GNT); i++)
		cpu_relax();
	if (i == 1000) {
		e1000_write(e, REG_EECD, eecd);
		return -GUEST_ETIMEDOUT;
	}
	eecd |= EECD_REQ | EECD_CS;
	e1000_write(e, REG_EECD, eecd);
	bits = (uint32_t)EEPROM_READ_OP << abits | addr;
	nbits = 3 + abits;
	for (i = nbits; i-- > 0;) {
		uint32_t di = bits >> i & 1 ? EECD_DI : 0;

		e1000_write(e, REG_EECD, eecd | di);
		mw_clock(e, eecd | di);
	}
	for (i = 0; i < 16; i++)
		w = (uint16_t)(w << 1 | mw_clock(e, eecd));
	e1000_write(e, REG_EECD, eecd & ~(EECD_CS | EECD_REQ));
	*val = w;
	return 0;
}

int e1000_eeprom_read(struct e1000 *e, uint8_t addr, uint16_t *val)
{
	if (!e->no_eerd) {
		if (eerd_read(e, addr, val) == 0)
			return 0;
		e->no_eerd = true; /* do not wait for it again */
	}
	return microwire_read(e, addr, val);
}

/* ---- netif operations
 * ---------------------------------------------------------- */

static int e1000_rx(struct netif *nif, const uint8_t **frame)
{
	struct e1000 *e = nif->drv;
	volatile struct e1000_rx_desc *d;
	unsigned int i;
	uint16_t len;

	for (;;) {
		i = e->rx_next;
		d = &e->rxd[i];
		if (!(d->status & RXD_DD))
			return 0;
		barrier(); /* the rest of the descriptor after DD */
		len = d->length;
		if (e->rx_discard || !(d->status & RXD_EOP) ||
		    (d->errors & RXD_ERRORS) || len < NET_ETH_HLEN ||
		    len > E1000_BUF) {
			/* an error or a frame spanning buffers: drop it,
			 * up to and with its last (EOP) descriptor */
			if (!e->rx_discard)
				nif->rx_errors++;
			e->rx_discard = !(d->status & RXD_EOP);
			e->rx_lent = true;
			nif->rx_done(nif);
			continue;
		}
		e->rx_lent = true;
		nif->rx_frames++;
		*frame = e->rx_bufs + (uint64_t)i * E1000_BUF;
		return len;
	}
}

static void e1000_rx_done(struct netif *nif)
{
	struct e1000 *e = nif->drv;
	unsigned int i = e->rx_next;

	if (!e->rx_lent)
		return;
	e->rx_lent = false;
	e->rxd[i].status = 0;
	e->rxd[i].errors = 0;
	barrier();
	/* hand it back: the device owns RDH up to RDT - 1 */
	e1000_write(e, REG_RDT, i);
	e->rx_next = (i + 1) % E1000_NRX;
}

static uint8_t *e1000_tx_buf(struct netif *nif)
{
	struct e1000 *e = nif->drv;

	while (e->tx_clean != e->tx_next &&
	       (e->txd[e->tx_clean].status & TXD_DD))
		e->tx_clean = (e->tx_clean + 1) % E1000_NTX;
	if ((e->tx_next + 1) % E1000_NTX == e->tx_clean)
		return NULL;
	return e->tx_bufs + (uint64_t)e->tx_next * E1000_BUF;
}

static int e1000_tx(struct netif *nif, uint32_t len)
{
	struct e1000 *e = nif->drv;
	volatile struct e1000_tx_desc *d = &e->txd[e->tx_next];

	if (len > E1000_BUF || !len ||
	    (e->tx_next + 1) % E1000_NTX == e->tx_clean)
		return -GUEST_EINVAL;
	d->addr = virt_to_phys(e->tx_bufs + (uint64_t)e->tx_next * E1000_BUF);
	d->length = (uint16_t)len;
	d->cso = 0;
	d->cmd = TXD_EOP | TXD_IFCS | TXD_RS;
	d->status = 0;
	d->css = 0;
	d->special = 0;
	barrier();
	e->tx_next = (e->tx_next + 1) % E1000_NTX;
	e1000_write(e, REG_TDT, e->tx_next);
	nif->tx_frames++;
	return 0;
}

/* ---- set-up
 * -------------------------------------------------------------------- */

static bool ra_valid(uint32_t ral, uint32_t rah)
{
	return (rah & RAH_AV) && (ral || (rah & 0xffff)) &&
	       !(ral & 1); /* not a multicast address */
}

static void ra_to_mac(uint32_t ral, uint32_t rah, uint8_t *mac)
{
	mac[0] = (uint8_t)ral;
	mac[1] = (uint8_t)(ral >> 8);
	mac[2] = (uint8_t)(ral >> 16);
	mac[3] = (uint8_t)(ral >> 24);
	mac[4] = (uint8_t)rah;
	mac[5] = (uint8_t)(rah >> 8);
}

/* EEPROM words 0-2 (and, if verbose, the checksum of words 0-63). */
static void read_eeprom_mac(struct e1000 *e, bool verbose)
{
	uint16_t w, sum = 0;
	unsigned int i;

	for (i = 0; i < 3; i++) {
		if (e1000_eeprom_read(e, (uint8_t)i, &w))
			return;
		e->eeprom_mac[2 * i] = (uint8_t)w;
		e->eeprom_mac[2 * i + 1] = (uint8_t)(w >> 8);
	}
	e->eeprom_ok = true;
	if (!verbose)
		return;
	for (i = 0; i < EEPROM_WORDS; i++) {
		if (e1000_eeprom_read(e, (uint8_t)i, &w))
			return;
		sum = (uint16_t)(sum + w);
	}
	printf("e1000: EEPROM read through %s, checksum 0x%04x (%s)\n",
	       e->no_eerd ? "EECD (Microwire)" : "EERD", sum,
	       sum == EEPROM_SUM ? "good" : "BAD");
}

static int reset(struct e1000 *e)
{
	unsigned int i;

	e1000_write(e, REG_IMC, 0xffffffffu);
	e1000_write(e, REG_RCTL, 0);
	e1000_write(e, REG_TCTL, 0);
	e1000_write(e, REG_CTRL, e1000_read(e, REG_CTRL) | CTRL_RST);
	for (i = 0; i < 100000; i++) {
		if (!(e1000_read(e, REG_CTRL) & CTRL_RST))
			break;
		cpu_relax();
	}
	if (i == 100000)
		return -GUEST_ETIMEDOUT;
	e1000_write(e, REG_IMC, 0xffffffffu);
	(void)e1000_read(e, REG_ICR);
	return 0;
}

int e1000_init(struct e1000 *e, bool verbose)
{
	uint32_t ral0, rah0, ral, rah, ctrl;
	struct deadline dl;
	char m[18], m2[18];
	const char *src;
	unsigned int i;
	int rc;

	rc = pci_bar_map_mem(e->bus, e->dev, e->fn, 0, BAR0_MIN, "e1000 BAR0",
			     &e->regs, &e->regs_size);
	if (rc)
		return rc;
	if (verbose)
		printf("e1000: %02x:%02x.%u 8086:%04x (%s), BAR0 0x%lx "
		       "(0x%lx bytes)\n",
		       e->bus, e->dev, e->fn, e->device, e1000_model(e->device),
		       e->regs, e->regs_size);
	ral0 = e1000_read(e, REG_RAL0);
	rah0 = e1000_read(e, REG_RAH0);
	rc = reset(e);
	if (rc)
		return rc;
	read_eeprom_mac(e, verbose);
	ral = e1000_read(e, REG_RAL0);
	rah = e1000_read(e, REG_RAH0);
	if (ra_valid(ral, rah)) {
		ra_to_mac(ral, rah, e->nif.mac);
		src = "RAL0/RAH0";
	} else if (ra_valid(ral0, rah0)) {
		ra_to_mac(ral0, rah0, e->nif.mac);
		src = "RAL0/RAH0 before the reset";
	} else if (e->eeprom_ok && !(e->eeprom_mac[0] & 1)) {
		net_copy(e->nif.mac, e->eeprom_mac, NET_ALEN);
		e->mac_from_eeprom = true;
		src = "EEPROM";
	} else {
		printf("e1000: no MAC address (RAH0.AV clear, EEPROM "
		       "unreadable)\n");
		return -GUEST_ENODEV;
	}
	if (verbose) {
		printf("e1000: mac %s from %s\n", net_fmt_mac(m, e->nif.mac),
		       src);
		if (e->eeprom_ok && memcmp(e->eeprom_mac, e->nif.mac, NET_ALEN))
			printf("e1000: the EEPROM says %s\n",
			       net_fmt_mac(m2, e->eeprom_mac));
	}
	e1000_write(e, REG_RAL0,
		    (uint32_t)e->nif.mac[0] | (uint32_t)e->nif.mac[1] << 8 |
			    (uint32_t)e->nif.mac[2] << 16 |
			    (uint32_t)e->nif.mac[3] << 24);
	e1000_write(e, REG_RAH0,
		    (uint32_t)e->nif.mac[4] | (uint32_t)e->nif.mac[5] << 8 |
			    RAH_AV);
	for (i = 0; i < 128; i++)
		e1000_write(e, REG_MTA + 4 * i, 0);

	e->rxd = dma_zalloc(sizeof(*e->rxd) * E1000_NRX, 128);
	e->txd = dma_zalloc(sizeof(*e->txd) * E1000_NTX, 128);
	e->rx_bufs = dma_alloc((uint64_t)E1000_BUF * E1000_NRX, 4096);
	e->tx_bufs = dma_alloc((uint64_t)E1000_BUF * E1000_NTX, 4096);
	if (!e->rxd || !e->txd || !e->rx_bufs || !e->tx_bufs)
		return -GUEST_ENOSPC;
	for (i = 0; i < E1000_NRX; i++)
		e->rxd[i].addr =
			virt_to_phys(e->rx_bufs + (uint64_t)i * E1000_BUF);

	/* link up, speed and duplex from autonegotiation */
	ctrl = e1000_read(e, REG_CTRL);
	ctrl &= ~(CTRL_LRST | CTRL_ILOS | CTRL_VME | CTRL_PHY_RST);
	e1000_write(e, REG_CTRL, ctrl | CTRL_SLU | CTRL_ASDE);

	e1000_write(e, REG_RDBAL, (uint32_t)virt_to_phys(e->rxd));
	e1000_write(e, REG_RDBAH, (uint32_t)(virt_to_phys(e->rxd) >> 32));
	e1000_write(e, REG_RDLEN, sizeof(*e->rxd) * E1000_NRX);
	e1000_write(e, REG_RDH, 0);
	e1000_write(e, REG_RDT, E1000_NRX - 1);
	e1000_write(e, REG_RDTR, 0);
	e->rx_next = 0;
	e1000_write(e, REG_TDBAL, (uint32_t)virt_to_phys(e->txd));
	e1000_write(e, REG_TDBAH, (uint32_t)(virt_to_phys(e->txd) >> 32));
	e1000_write(e, REG_TDLEN, sizeof(*e->txd) * E1000_NTX);
	e1000_write(e, REG_TDH, 0);
	e1000_write(e, REG_TDT, 0);
	e->tx_next = e->tx_clean = 0;
	e1000_write(e, REG_TIPG, 10 | 10 << 10 | 10 << 20);
	e1000_write(e, REG_TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
	e1000_write(e, REG_RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);

	deadline_start(&dl, 3, 20000, 63);
	do {
		e->status = e1000_read(e, REG_STATUS);
	} while (!(e->status & STATUS_LU) && !deadline_passed(&dl));
	if (verbose)
		printf("e1000: STATUS 0x%08x, link %s\n", e->status,
		       e->status & STATUS_LU ? "up" : "down");

	e->nif.kind = "e1000";
	e->nif.bus = e->bus;
	e->nif.dev = e->dev;
	e->nif.fn = e->fn;
	e->nif.drv = e;
	e->nif.rx = e1000_rx;
	e->nif.rx_done = e1000_rx_done;
	e->nif.tx_buf = e1000_tx_buf;
	e->nif.tx = e1000_tx;
	return 0;
}
