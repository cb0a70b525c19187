/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A small AHCI driver for the test guests (Serial ATA AHCI 1.3.1, ATA8-ACS
 * commands, SCSI MMC commands for ATAPI).  It finds the controller by class
 * 01/06/01, maps ABAR (BAR5), resets the HBA, enables AHCI mode and brings
 * up every implemented port: stop, command list and received-FIS area in
 * RAM from dma_alloc(), FIS receive on, device detection by PxSSTS and
 * PxSIG, start.  Commands are built in the command tables (register H2D
 * FIS, ATAPI packet, PRDT), issued through PxCI (and PxSACT for NCQ) and
 * polled: no interrupts (GHC.IE and every PxIE stay 0).
 *
 * Errors: a task-file error (PxIS.TFES, PxTFD.ERR) or a host bus error
 * gives -GUEST_EIO with the task file, PxIS and PxSERR saved in the port,
 * and the port is recovered (stop, clear errors, start) so the next
 * command works.  Everything the HBA reports is range-checked (port and
 * slot counts, BAR placement) before it is used.
 *
 * State: the caller's struct ahci_hba.  BSP only, no locks.  Building a
 * command (ahci_cmd_build), issuing it (ahci_cmd_issue) and reading
 * PxCI/PxSACT/PxIS (ahci_port_read) touch only memory and MMIO, so ring-3
 * code may use them after a ring-0 set-up; everything that waits is
 * ring 0 (it reads the RTC).
 */
#include "guest.h"

/* HBA registers */
#define HBA_CAP 0x00
#define HBA_GHC 0x04
#define HBA_IS 0x08
#define HBA_PI 0x0c
#define HBA_VS 0x10
#define HBA_CAP2 0x24
#define GHC_HR 0x00000001u
#define GHC_AE 0x80000000u
#define CAP_NP(c) ((c)&0x1f)
#define CAP_NCS(c) (((c) >> 8) & 0x1f)
#define CAP_SCLO (1u << 24)
#define CAP_S64A (1u << 31)

/* Port registers, relative to the port's base */
#define PORT_BASE 0x100
#define PORT_STRIDE 0x80
#define PX_CLB 0x00
#define PX_CLBU 0x04
#define PX_FB 0x08
#define PX_FBU 0x0c
#define PX_SERR 0x30
#define PX_SCTL 0x2c
#define CMD_ST 0x00000001u
#define CMD_SUD 0x00000002u
#define CMD_POD 0x00000004u
#define CMD_CLO 0x00000008u
#define CMD_FRE 0x00000010u
#define CMD_FR 0x00004000u
#define CMD_CR 0x00008000u
#define IS_IFS (1u << 27)
#define IS_HBDS (1u << 28)
#define IS_HBFS (1u << 29)
#define IS_TFES (1u << 30)
#define IS_ERRORS (IS_IFS | IS_HBDS | IS_HBFS | IS_TFES)
#define TFD_ERR 0x01
#define TFD_DRQ 0x08
#define TFD_BSY 0x80
#define SSTS_DET(s) ((s)&0xf)
#define SSTS_DET_NO_PHY 1
#define SSTS_DET_PRESENT 3
#define SIG_ATA 0x00000101u
#define SIG_ATAPI 0xeb140101u

/* Command header, dword 0 */
#define CH_CFL_H2D 5 /* a register H2D FIS is 5 dwords */
#define CH_ATAPI (1u << 5)
#define CH_WRITE (1u << 6)
#define CH_PRDTL_SHIFT 16
/* Command table */
#define CT_CFIS 0x00
#define CT_ACMD 0x40
#define CT_PRDT 0x80
#define CT_BYTES (CT_PRDT + 16 * AHCI_PRDT_MAX)
#define PRD_MAX_BYTES (4u << 20)
/* Received-FIS area */
#define RFIS_BYTES 256
#define FIS_H2D 0x27

#define FOUR_GIB 0x100000000ull

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

/* ---- registers -------------------------------------------------------- */

static uint32_t hba_read(const struct ahci_hba *h, unsigned int reg)
{
	return mmio_read32(h->abar + reg);
}

static void hba_write(const struct ahci_hba *h, unsigned int reg, uint32_t v)
{
	mmio_write32(h->abar + reg, v);
}

uint32_t ahci_port_read(const struct ahci_port *p, unsigned int reg)
{
	return mmio_read32(p->regs + reg);
}

void ahci_port_write(const struct ahci_port *p, unsigned int reg, uint32_t v)
{
	mmio_write32(p->regs + reg, v);
}

/* Wait until (reg & mask) == want; 0 or -GUEST_ETIMEDOUT. */
static int port_wait(const struct ahci_port *p, unsigned int reg, uint32_t mask,
		     uint32_t want, unsigned int timeout_s)
{
	struct deadline d;

	deadline_start(&d, timeout_s, 50000000ull, 63);
	while ((ahci_port_read(p, reg) & mask) != want)
		if (deadline_passed(&d))
			return -GUEST_ETIMEDOUT;
	return 0;
}

/* ---- discovery -------------------------------------------------------- */

int ahci_find(unsigned int nth, struct ahci_hba *h)
{
	uint32_t id;
	int rc;

	mem_clear(h, sizeof(*h));
	rc = pci_find_class(0x010601, nth, &h->dev, &h->fn, &id);
	if (rc)
		return rc;
	h->vendor = (uint16_t)id;
	h->device = (uint16_t)(id >> 16);
	return 0;
}

/* ---- ports ------------------------------------------------------------ */

/* Stop the command engine and FIS receive; 0 or -GUEST_ETIMEDOUT. */
static int port_stop(struct ahci_port *p)
{
	uint32_t cmd = ahci_port_read(p, AHCI_PX_CMD);

	if (cmd & CMD_ST)
		ahci_port_write(p, AHCI_PX_CMD, cmd & ~CMD_ST);
	if (port_wait(p, AHCI_PX_CMD, CMD_CR, 0, 1))
		return -GUEST_ETIMEDOUT;
	cmd = ahci_port_read(p, AHCI_PX_CMD);
	if (cmd & CMD_FRE)
		ahci_port_write(p, AHCI_PX_CMD, cmd & ~CMD_FRE);
	return port_wait(p, AHCI_PX_CMD, CMD_FR, 0, 1);
}

static void port_clear_errors(struct ahci_port *p)
{
	ahci_port_write(p, PX_SERR, 0xffffffffu);
	ahci_port_write(p, AHCI_PX_IS, 0xffffffffu);
	hba_write(p->hba, HBA_IS, 1u << p->num);
}

/*
 * Start the command engine.  A device still busy (BSY or DRQ) is cleared
 * with a command list override if the HBA has one.  0, -GUEST_ETIMEDOUT.
 */
static int port_start(struct ahci_port *p)
{
	uint32_t cmd;

	if (ahci_port_read(p, AHCI_PX_TFD) & (TFD_BSY | TFD_DRQ) &&
	    (p->hba->cap & CAP_SCLO)) {
		cmd = ahci_port_read(p, AHCI_PX_CMD);
		ahci_port_write(p, AHCI_PX_CMD, cmd | CMD_CLO);
		if (port_wait(p, AHCI_PX_CMD, CMD_CLO, 0, 1))
			return -GUEST_ETIMEDOUT;
	}
	cmd = ahci_port_read(p, AHCI_PX_CMD);
	ahci_port_write(p, AHCI_PX_CMD, cmd | CMD_ST);
	return 0;
}

/* After an error: save the state, stop, clear, start again. */
static void port_recover(struct ahci_port *p, uint32_t is)
{
	p->err_is = is;
	p->err_tfd = ahci_port_read(p, AHCI_PX_TFD);
	p->err_serr = ahci_port_read(p, PX_SERR);
	p->errors++;
	ahci_port_write(p, AHCI_PX_CMD,
			ahci_port_read(p, AHCI_PX_CMD) & ~CMD_ST);
	if (port_wait(p, AHCI_PX_CMD, CMD_CR, 0, 1))
		p->stuck = true;
	port_clear_errors(p);
	if (port_start(p))
		p->stuck = true;
}

static int port_setup(struct ahci_hba *h, unsigned int num, bool verbose)
{
	struct ahci_port *p = &h->port[num];
	uint8_t *tables;
	uint32_t ssts, tfd;
	unsigned int s;
	struct deadline d;
	int rc;

	p->hba = h;
	p->num = num;
	p->regs = h->abar + PORT_BASE + PORT_STRIDE * num;
	p->type = AHCI_DEV_NONE;
	if ((rc = port_stop(p))) {
		printf("ahci: port %u does not stop (PxCMD 0x%x)\n", num,
		       ahci_port_read(p, AHCI_PX_CMD));
		return rc;
	}
	p->cl = dma_zalloc(32 * 32, 1024);
	p->rfis = dma_zalloc(RFIS_BYTES, 256);
	p->scratch = dma_zalloc(AHCI_SCRATCH_BYTES, 512);
	tables = dma_zalloc((uint64_t)CT_BYTES * h->nslots, 128);
	if (!p->cl || !p->rfis || !p->scratch || !tables)
		return -GUEST_ENOSPC;
	for (s = 0; s < h->nslots; s++) {
		p->ct[s] = tables + (uint64_t)CT_BYTES * s;
		p->cl[8 * s + 2] = (uint32_t)virt_to_phys(p->ct[s]);
		p->cl[8 * s + 3] = 0;
	}
	ahci_port_write(p, PX_CLB, (uint32_t)virt_to_phys(p->cl));
	ahci_port_write(p, PX_CLBU, 0);
	ahci_port_write(p, PX_FB, (uint32_t)virt_to_phys(p->rfis));
	ahci_port_write(p, PX_FBU, 0);
	ahci_port_write(p, AHCI_PX_IE, 0);
	port_clear_errors(p);
	ahci_port_write(p, AHCI_PX_CMD,
			ahci_port_read(p, AHCI_PX_CMD) | CMD_FRE | CMD_SUD |
				CMD_POD);
	/* DET 1: a device is there, the link is still coming up */
	deadline_start(&d, 1, 50000000ull, 63);
	while (SSTS_DET(ssts = ahci_port_read(p, AHCI_PX_SSTS)) ==
	       SSTS_DET_NO_PHY)
		if (deadline_passed(&d))
			break;
	if (SSTS_DET(ssts) != SSTS_DET_PRESENT) {
		if (verbose)
			printf("ahci: port %u: no device (PxSSTS 0x%x)\n", num,
			       ssts);
		return 0;
	}
	deadline_start(&d, 2, 50000000ull, 63);
	while ((tfd = ahci_port_read(p, AHCI_PX_TFD)) & (TFD_BSY | TFD_DRQ))
		if (deadline_passed(&d))
			break;
	p->sig = ahci_port_read(p, AHCI_PX_SIG);
	if (p->sig == SIG_ATA)
		p->type = AHCI_DEV_ATA;
	else if (p->sig == SIG_ATAPI)
		p->type = AHCI_DEV_ATAPI;
	else
		p->type = AHCI_DEV_UNKNOWN;
	if (verbose)
		printf("ahci: port %u: PxSSTS 0x%x PxTFD 0x%x PxSIG 0x%08x "
		       "(%s)\n",
		       num, ssts, tfd, p->sig, ahci_dev_type_name(p->type));
	port_clear_errors(p);
	if ((rc = port_start(p))) {
		printf("ahci: port %u: busy device (PxTFD 0x%x), no CLO\n", num,
		       ahci_port_read(p, AHCI_PX_TFD));
		p->type = AHCI_DEV_NONE;
	}
	return 0;
}

const char *ahci_dev_type_name(enum ahci_dev_type t)
{
	switch (t) {
	case AHCI_DEV_ATA:
		return "SATA disk";
	case AHCI_DEV_ATAPI:
		return "ATAPI";
	case AHCI_DEV_UNKNOWN:
		return "unknown signature";
	default:
		return "none";
	}
}

int ahci_init(struct ahci_hba *h, bool verbose)
{
	struct deadline d;
	unsigned int i;
	int rc;

	rc = pci_bar_map_mem(h->bus, h->dev, h->fn, 5, PORT_BASE + PORT_STRIDE,
			     "ahci: BAR5 (ABAR)", &h->abar, &h->abar_size);
	if (rc)
		return rc;

	/* AHCI mode first (some HBAs ignore HR otherwise), then reset */
	hba_write(h, HBA_GHC, GHC_AE);
	hba_write(h, HBA_GHC, GHC_AE | GHC_HR);
	deadline_start(&d, 2, 50000000ull, 63);
	while (hba_read(h, HBA_GHC) & GHC_HR)
		if (deadline_passed(&d)) {
			printf("ahci: HBA reset does not complete\n");
			return -GUEST_ETIMEDOUT;
		}
	hba_write(h, HBA_GHC, GHC_AE);
	if (!(hba_read(h, HBA_GHC) & GHC_AE)) {
		printf("ahci: GHC.AE does not stick\n");
		return -GUEST_EIO;
	}
	h->cap = hba_read(h, HBA_CAP);
	h->cap2 = hba_read(h, HBA_CAP2);
	h->pi = hba_read(h, HBA_PI);
	h->vs = hba_read(h, HBA_VS);
	h->nslots = CAP_NCS(h->cap) + 1;
	h->nports = CAP_NP(h->cap) + 1;
	if (verbose)
		printf("ahci: %02x:%02x.%u %04x:%04x ABAR 0x%lx, AHCI %x.%x, "
		       "CAP 0x%08x (%u ports, %u slots%s%s), PI 0x%x\n",
		       h->bus, h->dev, h->fn, h->vendor, h->device, h->abar,
		       h->vs >> 16, h->vs & 0xffff, h->cap, h->nports,
		       h->nslots, h->cap & AHCI_CAP_SNCQ ? ", NCQ" : "",
		       h->cap & CAP_S64A ? ", 64-bit" : "", h->pi);
	if (h->pi == 0) {
		printf("ahci: no ports implemented\n");
		return -GUEST_ENODEV;
	}
	for (i = 0; i < AHCI_MAX_PORTS; i++) {
		if (!(h->pi & (1u << i)))
			continue;
		if (PORT_BASE + PORT_STRIDE * (i + 1) > h->abar_size) {
			printf("ahci: port %u lies outside ABAR\n", i);
			return -GUEST_ERANGE;
		}
		if ((rc = port_setup(h, i, verbose)))
			return rc;
	}
	return 0;
}

struct ahci_port *ahci_port_of_type(struct ahci_hba *h, enum ahci_dev_type t,
				    unsigned int nth)
{
	unsigned int i;

	for (i = 0; i < AHCI_MAX_PORTS; i++)
		if ((h->pi & (1u << i)) && h->port[i].type == t && !nth--)
			return &h->port[i];
	return NULL;
}

/* ---- commands --------------------------------------------------------- */

int ahci_cmd_build(struct ahci_port *p, unsigned int slot,
		   const struct ahci_cmd *c, const struct ahci_seg *seg,
		   unsigned int nseg)
{
	volatile uint8_t *ct;
	volatile uint32_t *prd;
	unsigned int i;

	if (slot >= p->hba->nslots || nseg > AHCI_PRDT_MAX)
		return -GUEST_EINVAL;
	for (i = 0; i < nseg; i++)
		if (seg[i].len == 0 || (seg[i].len & 1) ||
		    seg[i].len > PRD_MAX_BYTES || (seg[i].addr & 1) ||
		    seg[i].addr + seg[i].len > FOUR_GIB)
			return -GUEST_EINVAL;
	ct = p->ct[slot];
	mem_clear((void *)(uintptr_t)ct, CT_PRDT);
	ct[CT_CFIS + 0] = FIS_H2D;
	ct[CT_CFIS + 1] = 0x80; /* C: this is a command */
	ct[CT_CFIS + 2] = c->command;
	ct[CT_CFIS + 3] = (uint8_t)c->features;
	ct[CT_CFIS + 4] = (uint8_t)c->lba;
	ct[CT_CFIS + 5] = (uint8_t)(c->lba >> 8);
	ct[CT_CFIS + 6] = (uint8_t)(c->lba >> 16);
	ct[CT_CFIS + 7] = c->device;
	ct[CT_CFIS + 8] = (uint8_t)(c->lba >> 24);
	ct[CT_CFIS + 9] = (uint8_t)(c->lba >> 32);
	ct[CT_CFIS + 10] = (uint8_t)(c->lba >> 40);
	ct[CT_CFIS + 11] = (uint8_t)(c->features >> 8);
	ct[CT_CFIS + 12] = (uint8_t)c->count;
	ct[CT_CFIS + 13] = (uint8_t)(c->count >> 8);
	if (c->atapi)
		for (i = 0; i < 16; i++)
			ct[CT_ACMD + i] = c->cdb[i];
	prd = (volatile uint32_t *)(ct + CT_PRDT);
	for (i = 0; i < nseg; i++) {
		prd[4 * i + 0] = (uint32_t)seg[i].addr;
		prd[4 * i + 1] = (uint32_t)(seg[i].addr >> 32);
		prd[4 * i + 2] = 0;
		prd[4 * i + 3] = seg[i].len - 1; /* I = 0: no interrupt */
	}
	p->cl[8 * slot + 1] = 0; /* PRDBC */
	barrier();
	p->cl[8 * slot] = CH_CFL_H2D | (c->atapi ? CH_ATAPI : 0) |
			  (c->write ? CH_WRITE : 0) | nseg << CH_PRDTL_SHIFT;
	return 0;
}

void ahci_cmd_issue(struct ahci_port *p, uint32_t mask, bool ncq)
{
	barrier(); /* x86 keeps stores in order; stop the compiler only */
	if (ncq)
		ahci_port_write(p, AHCI_PX_SACT, mask);
	ahci_port_write(p, AHCI_PX_CI, mask);
}

uint8_t ahci_d2h_status(const struct ahci_port *p)
{
	return p->rfis[AHCI_RFIS_D2H + 2];
}

uint32_t ahci_cmd_prdbc(const struct ahci_port *p, unsigned int slot)
{
	return p->cl[8 * slot + 1];
}

int ahci_cmd_wait(struct ahci_port *p, uint32_t mask, bool ncq,
		  unsigned int timeout_s)
{
	struct deadline d;
	uint32_t is, busy;

	deadline_start(&d, timeout_s, 50000000ull, 63);
	for (;;) {
		is = ahci_port_read(p, AHCI_PX_IS);
		if (is & IS_ERRORS) {
			port_recover(p, is);
			return -GUEST_EIO;
		}
		busy = ahci_port_read(p, AHCI_PX_CI);
		if (ncq)
			busy |= ahci_port_read(p, AHCI_PX_SACT);
		if (!(busy & mask))
			break;
		if (deadline_passed(&d)) {
			port_recover(p, is);
			return -GUEST_ETIMEDOUT;
		}
	}
	/* an HBA may clear PxCI before it sets PxIS.TFES: look again */
	is = ahci_port_read(p, AHCI_PX_IS);
	if ((is & IS_ERRORS) ||
	    (!ncq && (ahci_port_read(p, AHCI_PX_TFD) & TFD_ERR))) {
		port_recover(p, is);
		return -GUEST_EIO;
	}
	return 0;
}

int ahci_exec(struct ahci_port *p, const struct ahci_cmd *c,
	      const struct ahci_seg *seg, unsigned int nseg)
{
	int rc;

	if (p->stuck)
		return -GUEST_EIO;
	rc = ahci_cmd_build(p, 0, c, seg, nseg);
	if (rc)
		return rc;
	ahci_cmd_issue(p, 1, false);
	return ahci_cmd_wait(p, 1, false, AHCI_TIMEOUT_S);
}

/* ---- ATA -------------------------------------------------------------- */

/* An ATA string: big-endian character pairs per word, trailing spaces
 * dropped. */
static void ata_string(const uint16_t *id, unsigned int word,
		       unsigned int nwords, char *out)
{
	unsigned int i, n = 0;

	for (i = 0; i < nwords; i++) {
		out[n++] = (char)(id[word + i] >> 8);
		out[n++] = (char)id[word + i];
	}
	out[n] = 0;
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == 0))
		out[--n] = 0;
}

int ahci_identify(struct ahci_port *p)
{
	struct ahci_cmd c;
	struct ahci_seg seg;
	uint16_t *id;
	int rc;

	if (p->type != AHCI_DEV_ATA && p->type != AHCI_DEV_ATAPI)
		return -GUEST_ENODEV;
	if (!p->ident)
		p->ident = dma_alloc(512, 512);
	id = p->ident;
	if (!id)
		return -GUEST_ENOSPC;
	mem_clear(id, 512);
	mem_clear(&c, sizeof(c));
	c.command =
		p->type == AHCI_DEV_ATAPI ? ATA_IDENTIFY_PACKET : ATA_IDENTIFY;
	seg.addr = virt_to_phys(id);
	seg.len = 512;
	rc = ahci_exec(p, &c, &seg, 1);
	if (rc)
		return rc;
	ata_string(id, 10, 10, p->serial);
	ata_string(id, 23, 4, p->fwrev);
	ata_string(id, 27, 20, p->model);
	if (p->type == AHCI_DEV_ATAPI)
		return 0;
	p->lba48 = (id[83] & (1u << 10)) != 0;
	if (p->lba48)
		p->sectors = (uint64_t)id[100] | (uint64_t)id[101] << 16 |
			     (uint64_t)id[102] << 32 | (uint64_t)id[103] << 48;
	else
		p->sectors = (uint32_t)id[60] | (uint32_t)id[61] << 16;
	p->ncq = (id[76] & (1u << 8)) != 0 && (p->hba->cap & AHCI_CAP_SNCQ);
	p->ncq_depth = p->ncq ? (id[75] & 0x1f) + 1u : 0;
	return 0;
}

void ahci_rw_cmd(struct ahci_cmd *c, bool write, uint64_t lba, uint32_t count)
{
	mem_clear(c, sizeof(*c));
	c->command = write ? ATA_WRITE_DMA_EXT : ATA_READ_DMA_EXT;
	c->device = 0x40; /* LBA mode */
	c->lba = lba;
	c->count = (uint16_t)count; /* 0 means 65536 */
	c->write = write;
}

void ahci_ncq_cmd(struct ahci_cmd *c, bool write, uint64_t lba, uint32_t count,
		  unsigned int tag)
{
	mem_clear(c, sizeof(*c));
	c->command = write ? ATA_WRITE_FPDMA : ATA_READ_FPDMA;
	c->device = 0x40;
	c->lba = lba;
	c->features = (uint16_t)count; /* sector count in FEATURE */
	c->count = (uint16_t)(tag << 3);
	c->write = write;
}

int ahci_rw(struct ahci_port *p, bool write, uint64_t lba, uint32_t count,
	    void *buf)
{
	struct ahci_seg seg[AHCI_PRDT_MAX];
	uint64_t bytes = (uint64_t)count * AHCI_SECTOR, off;
	unsigned int n = 0;
	struct ahci_cmd c;

	if (count == 0 || count > 65536)
		return -GUEST_EINVAL;
	for (off = 0; off < bytes; off += PRD_MAX_BYTES) {
		if (n == AHCI_PRDT_MAX)
			return -GUEST_EINVAL;
		seg[n].addr = virt_to_phys(buf) + off;
		seg[n].len =
			(uint32_t)(bytes - off < PRD_MAX_BYTES ? bytes - off
							       : PRD_MAX_BYTES);
		n++;
	}
	ahci_rw_cmd(&c, write, lba, count);
	return ahci_exec(p, &c, seg, n);
}

int ahci_flush(struct ahci_port *p)
{
	struct ahci_cmd c;

	mem_clear(&c, sizeof(c));
	c.command = ATA_FLUSH_CACHE_EXT;
	c.device = 0x40;
	return ahci_exec(p, &c, NULL, 0);
}

/* ---- ATAPI ------------------------------------------------------------ */

int atapi_packet(struct ahci_port *p, const uint8_t *cdb, unsigned int cdb_len,
		 void *buf, uint32_t len)
{
	struct ahci_seg seg;
	struct ahci_cmd c;
	unsigned int i;
	int rc;

	if (cdb_len > 16 || (len & 1))
		return -GUEST_EINVAL;
	mem_clear(&c, sizeof(c));
	c.command = ATA_PACKET;
	c.features = len ? 1 : 0;			      /* DMA */
	c.lba = (uint64_t)(len > 0xfffe ? 0xfffe : len) << 8; /* byte count
							       * limit */
	c.atapi = true;
	for (i = 0; i < cdb_len; i++)
		c.cdb[i] = cdb[i];
	seg.addr = virt_to_phys(buf);
	seg.len = len;
	p->sense_key = 0;
	rc = ahci_exec(p, &c, &seg, len ? 1 : 0);
	if (rc == -GUEST_EIO)
		p->sense_key = (uint8_t)(p->err_tfd >> 12); /* ERR[7:4] */
	return rc;
}

int atapi_request_sense(struct ahci_port *p, uint8_t *key, uint8_t *asc,
			uint8_t *ascq)
{
	uint8_t cdb[12] = {SCSI_REQUEST_SENSE, 0, 0, 0, 18, 0};
	uint8_t *s = p->scratch;
	int rc;

	mem_clear(s, 32);
	rc = atapi_packet(p, cdb, sizeof(cdb), s, 18);
	if (rc)
		return rc;
	*key = s[2] & 0xf;
	*asc = s[12];
	*ascq = s[13];
	return 0;
}

/* Run a command; on UNIT ATTENTION (a reset or a new medium) repeat it. */
static int atapi_retry(struct ahci_port *p, const uint8_t *cdb, void *buf,
		       uint32_t len)
{
	uint8_t key, asc, ascq;
	int rc = 0, tries;

	for (tries = 0; tries < 4; tries++) {
		rc = atapi_packet(p, cdb, 12, buf, len);
		if (rc != -GUEST_EIO)
			return rc;
		if (atapi_request_sense(p, &key, &asc, &ascq))
			return rc;
		p->sense_key = key;
		p->sense_asc = asc;
		p->sense_ascq = ascq;
		if (key != SCSI_SENSE_UNIT_ATTENTION)
			return rc;
	}
	return rc;
}

int atapi_test_unit_ready(struct ahci_port *p)
{
	uint8_t cdb[12] = {SCSI_TEST_UNIT_READY};

	return atapi_retry(p, cdb, NULL, 0);
}

int atapi_inquiry(struct ahci_port *p, uint8_t *buf, uint32_t len)
{
	uint8_t cdb[12] = {SCSI_INQUIRY, 0, 0, (uint8_t)(len >> 8),
			   (uint8_t)len};

	return atapi_retry(p, cdb, buf, len);
}

int atapi_read_capacity(struct ahci_port *p, uint32_t *last_lba,
			uint32_t *block_len)
{
	uint8_t cdb[12] = {SCSI_READ_CAPACITY};
	uint8_t *b = p->scratch;
	int rc;

	mem_clear(b, 8);
	rc = atapi_retry(p, cdb, b, 8);
	if (rc)
		return rc;
	*last_lba = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
		    (uint32_t)b[2] << 8 | b[3];
	*block_len = (uint32_t)b[4] << 24 | (uint32_t)b[5] << 16 |
		     (uint32_t)b[6] << 8 | b[7];
	return 0;
}

int atapi_read10(struct ahci_port *p, uint32_t lba, uint16_t blocks, void *buf)
{
	uint8_t cdb[12] = {SCSI_READ10,
			   0,
			   (uint8_t)(lba >> 24),
			   (uint8_t)(lba >> 16),
			   (uint8_t)(lba >> 8),
			   (uint8_t)lba,
			   0,
			   (uint8_t)(blocks >> 8),
			   (uint8_t)blocks};

	if ((uint64_t)blocks * ATAPI_SECTOR > PRD_MAX_BYTES)
		return -GUEST_EINVAL;
	return atapi_retry(p, cdb, buf, (uint32_t)blocks * ATAPI_SECTOR);
}
