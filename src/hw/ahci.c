/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The AHCI 1.3 SATA controller: "-s N,ahci,hd:disk.img,cd:install.iso,..."
 * and bhyve's one-port aliases ahci-hd and ahci-cd, with ATA disks and
 * ATAPI CD/DVD drives on the block layer (src/block/blk.h).  Config node:
 * port.<n>.{type=hd|cd, path, nmrr, ser, rev, model, bootindex} plus the
 * block keys under each port.
 *
 * The PCI function is an Intel ICH8 AHCI (8086:2821, class 01/06/01): the
 * ABAR is memory BAR 5, with a single-vector MSI capability and INTx.  CAP
 * offers 64-bit addressing, NCQ, command list override, AHCI-only mode,
 * Gen3 and 32 command slots; PI has one bit per port from 0 to the highest
 * configured port number (a gap is a port without a device).
 *
 * Commands.  The port engine reads the command header, the command FIS
 * (H2D register FIS) and the PRDT from guest RAM, every piece through
 * gmem_ptr() and bounds-checked.  ATA: IDENTIFY DEVICE, READ/WRITE DMA
 * (EXT), the PIO READ/WRITE SECTORS/MULTIPLE forms (data still through the
 * PRDT), WRITE DMA FUA EXT, READ/WRITE FPDMA QUEUED (NCQ: CI clears at
 * once, the completion is a Set Device Bits FIS clearing the PxSACT bit),
 * FLUSH CACHE (EXT), DATA SET MANAGEMENT/TRIM (unless nodelete or the image
 * cannot deallocate), READ LOG (DMA) EXT (the directory and the NCQ
 * command error log 10h), SET FEATURES, SET MULTIPLE MODE, READ VERIFY,
 * the power commands (no-ops), EXECUTE DEVICE DIAGNOSTIC and the soft
 * reset (a control FIS with SRST).  ATAPI: IDENTIFY PACKET DEVICE, DEVICE
 * RESET and PACKET with TEST UNIT READY, REQUEST SENSE, INQUIRY, READ
 * CAPACITY, READ(10/12), MODE SENSE(10), READ TOC (formats 0-2), GET
 * CONFIGURATION, GET EVENT STATUS NOTIFICATION (polled), READ DISC
 * INFORMATION, PREVENT/ALLOW, START STOP UNIT, SEEK and SET CD SPEED; the
 * image is opened read-only and read in 2048-byte blocks.
 *
 * Completion: a D2H register FIS (after a PIO setup FIS for PIO data
 * commands) or an SDB FIS in the received-FIS area when PxCMD.FRE is set,
 * PRDBC in the command header, PxTFD, then PxIS.  The HBA's IS bit of a
 * port is set while (PxIS & PxIE) != 0; with MSI a message goes out on each
 * 0->1 change of an IS bit (also when the guest clears an IS bit whose port
 * still has enabled status), with INTx the line is GHC.IE && IS != 0.
 *
 * Guest errors (command list, table or PRD buffers outside RAM, odd PRD
 * byte counts, a PRDT shorter than the transfer or with no entry, LBAs past
 * the end, a bad FIS type or length, NCQ without its PxSACT bit, TRIM
 * payloads out of range) end the command with ERR in the status and ABRT
 * (plus IDNF for a bad range) in the error register and PxIS.TFES (plus
 * HBFS for memory outside RAM), after one rate-limited warning.  As on
 * hardware, the failing command keeps its CI (or SACT) bit, PxCMD.CCS names
 * it, and the port runs nothing more until the guest clears PxCMD.ST.
 *
 * Threads: register accesses come from vCPU threads, which also decode
 * commands and answer the ones without disk I/O.  Disk I/O is queued to
 * the image's block workers, whose done() hook carries the command on (the
 * next piece of a long PRDT, the next TRIM range, the FUA flush) and posts
 * the completion.
 *
 * Locks: a 'lock' per port guards its registers, slots and device state;
 * the HBA 'lock' guards GHC, IS and the per-port pending mask.  Order: port
 * lock -> HBA lock -> the PCI irq_lock (taken by pci_irq_notify and
 * friends); the block layer's queue lock is a leaf.  HBA register writes
 * never take a port lock while holding the HBA lock.  Resets (GHC.HR, and
 * COMRESET through PxSCTL.DET) drop the port lock and blk_drain() the image
 * so that no DMA from before the reset lands after it.  Clearing PxCMD.ST
 * does not wait: PxCMD.CR stays set until the commands in flight have
 * finished, as on hardware, and their completions (stale by generation)
 * change nothing the guest sees.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/blk.h"
#include "core/gmem.h"
#include "hw/ahci.h"
#include "lib/log.h"
#include "pci/pci.h"

#define AHCI_IOV_MAX 128 /* segments per block request */
#define AHCI_WARN_MS 5000
#define AHCI_NCQ_DEPTH 32
#define AHCI_MULT_MAX 128 /* sectors per READ/WRITE MULTIPLE block */
#define AHCI_MULT_DEFAULT 16
#define AHCI_SER_MAX 20
#define AHCI_REV_MAX 8
#define AHCI_MODEL_MAX 40
#define AHCI_REV_DEFAULT "001"
#define AHCI_HD_MODEL "BHYVE SATA DISK" /* bhyve's, for compatibility */
#define AHCI_CD_MODEL "BHYVE SATA DVD ROM"
#define AHCI_INQ_VENDOR "BHYVE"
#define AHCI_INQ_PRODUCT "BHYVE DVD-ROM"
#define AHCI_CD_MAX_BLOCKS 360000 /* larger images are DVDs (80 min CD) */
#define AHCI_XFER_UDMA6 0x46	  /* SET FEATURES transfer mode codes */
#define AHCI_SPD_GEN3 3

struct ahci;
struct ahci_port;

/* Task-file registers of a completion (D2H / SDB / PIO setup FIS). */
struct ata_tf {
	uint8_t status, error, device;
	uint8_t lba[6];
	uint16_t count;
};

enum slot_kind {
	SLOT_NONE, /* no data: only the flush, if flush_after */
	SLOT_RW,   /* READ/WRITE through the PRDT */
	SLOT_DSM,  /* TRIM ranges */
};

struct dsm_range {
	uint64_t off, len; /* bytes */
};

/* One command slot: the command's state from issue to completion. */
struct ahci_slot {
	struct blk_req br; /* first: done() gets &br */
	struct ahci_port *p;
	unsigned idx;
	unsigned gen; /* p->gen when issued */
	bool active;  /* a block request is in flight */
	bool ncq, pio, write, atapi;
	bool hbfs;	  /* failed on memory outside RAM */
	bool guest_err;	  /* the PRDT went bad during the transfer */
	uint64_t hdr_gpa; /* its command header (PRDBC) */
	uint64_t prdt_gpa;
	unsigned prdtl;
	enum slot_kind kind;
	uint64_t pos;	/* RW: image byte offset of the next piece */
	uint64_t left;	/* RW: bytes still to move */
	uint64_t chunk; /* RW: bytes of the piece in flight */
	uint32_t xfer;	/* bytes moved, reported in PRDBC */
	unsigned prd_idx;
	uint32_t prd_off;
	bool flush_after; /* FUA or write cache off */
	struct dsm_range *dsm;
	unsigned ndsm, cur;
	uint64_t lba; /* NCQ: for the error log */
	uint16_t count;
	struct ata_tf tf;
	struct iovec iov[AHCI_IOV_MAX];
};

struct ahci_port {
	struct ahci *hba;
	unsigned idx;
	pthread_mutex_t lock;

	/* The device (blk NULL: an empty port).  Fixed after init. */
	struct blk *blk;
	bool atapi, ro, can_discard;
	uint64_t sectors; /* logical sectors, or 2048-byte blocks (ATAPI) */
	unsigned lsector, psector, unit;
	uint16_t nmrr;
	char ser[AHCI_SER_MAX + 1];
	char rev[AHCI_REV_MAX + 1];
	char model[AHCI_MODEL_MAX + 1];

	/* Device state, reset by a device reset. */
	bool wcache, rla;
	uint8_t xfer_mode, mult;
	uint8_t sense_key, sense_asc, sense_ascq;
	bool ncq_err;
	struct {
		uint8_t tag, status, error;
		uint64_t lba;
		uint16_t count;
	} ncq_log;

	/* Registers. */
	uint64_t clb, fb;
	uint32_t is, ie, cmd, tfd, sig, ssts, sctl, serr, sact, ci;

	/* Engine. */
	uint32_t issued;  /* slots fetched, not finished (this gen) */
	unsigned ccs;	  /* last slot issued */
	unsigned gen;	  /* bumped by stop and reset; atomic reads */
	unsigned nactive; /* slots with a block request in flight */
	bool halted;	  /* a command failed: wait for ST cleared */
	bool closing;	  /* teardown: submit nothing more */
	struct ahci_slot slot[AHCI_MAX_SLOTS];
};

struct ahci {
	struct pci_dev *pd;
	pthread_mutex_t lock; /* ghc, is, pending, intx */
	uint32_t ghc, is;
	uint32_t pending; /* ports with PxIS & PxIE != 0 */
	bool intx;
	unsigned nports;
	struct ahci_port *port;
};

/* ---- little helpers ---- */

static uint16_t get_le16(const uint8_t *b)
{
	return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t get_le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

static uint64_t get_le64(const uint8_t *b)
{
	return get_le32(b) | (uint64_t)get_le32(b + 4) << 32;
}

static void put_le16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *b, uint32_t v)
{
	put_le16(b, (uint16_t)v);
	put_le16(b + 2, (uint16_t)(v >> 16));
}

static uint16_t get_be16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

static uint32_t get_be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
}

static void put_be16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)(v >> 8);
	b[1] = (uint8_t)v;
}

static void put_be32(uint8_t *b, uint32_t v)
{
	put_be16(b, (uint16_t)(v >> 16));
	put_be16(b + 2, (uint16_t)v);
}

static const struct gmem *port_mem(const struct ahci_port *p)
{
	return p->hba->pd->ctx->mem;
}

static unsigned port_gen(struct ahci_port *p)
{
	return __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
}

static void port_bump_gen(struct ahci_port *p)
{
	__atomic_store_n(&p->gen, p->gen + 1, __ATOMIC_RELEASE);
}

/* One rate-limited warning for everything a guest can get wrong. */
static void port_warn(const struct ahci_port *p, const char *why)
{
	log_ratelimited(AHCI_WARN_MS, "%s: port %u: %s", p->hba->pd->name,
			p->idx, why);
}

/* ---- interrupts ---- */

/* Drive INTx, or send an MSI when 'edge' (HBA lock held). */
static void hba_irq_update(struct ahci *h, bool edge)
{
	struct pci_dev *pd = h->pd;
	bool level = (h->ghc & AHCI_GHC_IE) && h->is;

	if (pci_msi_enabled(pd)) {
		if (h->intx) {
			pci_intx_deassert(pd);
			h->intx = false;
		}
		if (edge && level)
			(void)pci_irq_notify(pd, 0);
		return;
	}
	if (level != h->intx) {
		if (level)
			pci_intx_assert(pd);
		else
			pci_intx_deassert(pd);
		h->intx = level;
	}
}

/* Port 'p' has (or no longer has) enabled status (port lock held). */
static void port_irq_sync(struct ahci_port *p)
{
	struct ahci *h = p->hba;
	uint32_t bit = 1u << p->idx;
	bool edge = false;

	pthread_mutex_lock(&h->lock);
	if (p->is & p->ie) {
		h->pending |= bit;
		if (!(h->is & bit)) {
			h->is |= bit;
			edge = true;
		}
	} else {
		h->pending &= ~bit;
	}
	hba_irq_update(h, edge);
	pthread_mutex_unlock(&h->lock);
}

static void port_raise(struct ahci_port *p, uint32_t bits)
{
	p->is |= bits;
	port_irq_sync(p);
}

/* ---- received FISes (port lock held) ---- */

static void port_fis(struct ahci_port *p, unsigned off, const uint8_t *fis,
		     size_t len)
{
	uint8_t *dst;

	if (!(p->cmd & AHCI_P_CMD_FRE))
		return;
	dst = gmem_ptr(port_mem(p), p->fb + off, len);
	if (!dst) {
		port_warn(p, "FIS receive area outside guest RAM");
		return;
	}
	memcpy(dst, fis, len);
}

static void fis_regs(uint8_t *f, const struct ata_tf *tf)
{
	f[4] = tf->lba[0];
	f[5] = tf->lba[1];
	f[6] = tf->lba[2];
	f[7] = tf->device;
	f[8] = tf->lba[3];
	f[9] = tf->lba[4];
	f[10] = tf->lba[5];
	put_le16(f + 12, tf->count);
}

static void fis_d2h(struct ahci_port *p, const struct ata_tf *tf, bool irq)
{
	uint8_t f[20] = {FIS_TYPE_D2H};

	f[1] = irq ? FIS_I : 0;
	f[2] = tf->status;
	f[3] = tf->error;
	fis_regs(f, tf);
	port_fis(p, AHCI_RFIS_RFIS, f, sizeof(f));
}

static void fis_pio_setup(struct ahci_port *p, const struct ata_tf *tf,
			  uint32_t xfer, bool to_host)
{
	uint8_t f[20] = {FIS_TYPE_PIO_SETUP};

	f[1] = (uint8_t)(FIS_I | (to_host ? FIS_PIO_D : 0));
	f[2] = ATA_S_DRDY | ATA_S_DSC | ATA_S_DRQ;
	f[3] = tf->error;
	fis_regs(f, tf);
	f[15] = tf->status; /* E_Status: the status after the transfer */
	put_le16(f + 16, (uint16_t)xfer);
	port_fis(p, AHCI_RFIS_PSFIS, f, sizeof(f));
}

static void fis_sdb(struct ahci_port *p, const struct ata_tf *tf, uint32_t done)
{
	uint8_t f[8] = {FIS_TYPE_SDB};

	f[1] = FIS_I;
	f[2] = tf->status & 0x77; /* status-hi and status-lo */
	f[3] = tf->error;
	put_le32(f + 4, done);
	port_fis(p, AHCI_RFIS_SDBFIS, f, sizeof(f));
}

/* ---- the PRDT ---- */

/* Entry 'i': guest address and byte count; -EINVAL for an odd count. */
static int prd_get(const uint8_t *prdt, unsigned i, uint64_t *gpa,
		   uint32_t *len)
{
	const uint8_t *e = prdt + (size_t)i * AHCI_PRD_SIZE;

	*gpa = get_le64(e);
	*len = (get_le32(e + 12) & AHCI_PRD_DBC_MASK) + 1;
	return (*len & 1) ? -EINVAL : 0;
}

static const uint8_t *slot_prdt(const struct ahci_port *p,
				const struct ahci_slot *s)
{
	return gmem_ptr(port_mem(p), s->prdt_gpa,
			(uint64_t)s->prdtl * AHCI_PRD_SIZE);
}

typedef void (*prd_fn)(void *arg, uint8_t *host, uint64_t off, uint32_t n);

/*
 * Walk the guest buffers of 's' over the first 'len' bytes (fewer when the
 * table is shorter), calling fn (when not NULL) for each piece.  Returns
 * the bytes covered, or -EFAULT (the table or a buffer outside RAM) or
 * -EINVAL (an odd byte count).
 */
static int64_t prdt_walk(const struct ahci_port *p, const struct ahci_slot *s,
			 uint64_t len, prd_fn fn, void *arg)
{
	const uint8_t *prdt;
	uint64_t done = 0, gpa;
	uint32_t n, blen;
	uint8_t *host;
	unsigned i;

	if (s->prdtl == 0 || len == 0)
		return 0;
	prdt = slot_prdt(p, s);
	if (!prdt)
		return -EFAULT;
	for (i = 0; i < s->prdtl && done < len; i++) {
		if (prd_get(prdt, i, &gpa, &blen))
			return -EINVAL;
		n = blen;
		if (n > len - done)
			n = (uint32_t)(len - done);
		host = gmem_ptr(port_mem(p), gpa, n);
		if (!host)
			return -EFAULT;
		if (fn)
			fn(arg, host, done, n);
		done += n;
	}
	return (int64_t)done;
}

struct copy_src {
	const uint8_t *buf;
};

struct copy_dst {
	uint8_t *buf;
};

static void copy_to_guest(void *arg, uint8_t *host, uint64_t off, uint32_t n)
{
	memcpy(host, ((struct copy_src *)arg)->buf + off, n);
}

static void copy_from_guest(void *arg, uint8_t *host, uint64_t off, uint32_t n)
{
	memcpy(((struct copy_dst *)arg)->buf + off, host, n);
}

/*
 * Point s->iov at the next piece of an RW transfer: at most AHCI_IOV_MAX
 * buffers from the PRDT cursor and, unless the piece ends the transfer, a
 * whole number of the image's sectors.  Buffers are checked again here:
 * the guest may have rewritten the table since the command was issued.
 * Returns the buffer count, or -EFAULT, -EINVAL, -ENOSPC (table too short)
 * or -E2BIG (too fragmented to make a sector).
 */
static int slot_chunk(struct ahci_port *p, struct ahci_slot *s)
{
	struct {
		unsigned idx;
		uint32_t off, n;
	} seg[AHCI_IOV_MAX];
	const uint8_t *prdt = slot_prdt(p, s);
	uint64_t total = 0, gpa, excess;
	unsigned idx = s->prd_idx, k = 0;
	uint32_t off = s->prd_off, blen, n;
	uint8_t *host;

	if (!prdt)
		return -EFAULT;
	while (k < AHCI_IOV_MAX && total < s->left) {
		if (idx >= s->prdtl)
			return -ENOSPC;
		if (prd_get(prdt, idx, &gpa, &blen))
			return -EINVAL;
		if (off >= blen) { /* rewritten shorter meanwhile */
			idx++;
			off = 0;
			continue;
		}
		n = blen - off;
		if (n > s->left - total)
			n = (uint32_t)(s->left - total);
		host = gmem_ptr(port_mem(p), gpa, (uint64_t)off + n);
		if (!host)
			return -EFAULT;
		s->iov[k].iov_base = host + off;
		s->iov[k].iov_len = n;
		seg[k].idx = idx;
		seg[k].off = off;
		seg[k].n = n;
		k++;
		total += n;
		off += n;
		if (off == blen) {
			idx++;
			off = 0;
		}
	}
	excess = total < s->left ? total % p->unit : 0;
	while (excess) { /* end the piece on a sector boundary */
		struct iovec *v = &s->iov[k - 1];

		idx = seg[k - 1].idx;
		if (seg[k - 1].n <= excess) {
			excess -= seg[k - 1].n;
			total -= seg[k - 1].n;
			off = seg[k - 1].off;
			k--;
		} else {
			v->iov_len -= excess;
			total -= excess;
			off = seg[k - 1].off + (uint32_t)v->iov_len;
			excess = 0;
		}
	}
	if (k == 0)
		return -E2BIG;
	s->prd_idx = idx;
	s->prd_off = off;
	s->chunk = total;
	return (int)k;
}

/* ---- completion (port lock held) ---- */

static void slot_release(struct ahci_slot *s)
{
	free(s->dsm);
	s->dsm = NULL;
	s->ndsm = s->cur = 0;
}

/*
 * Finish command 's' with the registers in s->tf: PRDBC, the FISes, PxTFD,
 * PxCI / PxSACT, PxIS.  An ERR status halts the port; the slot's CI (or
 * SACT) bit then stays set until the guest clears PxCMD.ST.
 */
static void slot_complete(struct ahci_port *p, struct ahci_slot *s)
{
	const struct ata_tf *tf = &s->tf;
	bool err = (tf->status & ATA_S_ERR) != 0;
	uint32_t bit = 1u << s->idx, irq;
	uint8_t *hdr = gmem_ptr(port_mem(p), s->hdr_gpa + 4, 4);

	if (hdr)
		put_le32(hdr, s->xfer);
	if (s->ncq) {
		fis_sdb(p, tf, err ? 0 : bit);
		irq = AHCI_P_IX_SDBS;
		if (err) {
			p->ncq_err = true;
			p->ncq_log.tag = (uint8_t)s->idx;
			p->ncq_log.status = tf->status;
			p->ncq_log.error = tf->error;
			p->ncq_log.lba = s->lba;
			p->ncq_log.count = s->count;
		} else {
			p->sact &= ~bit;
		}
	} else {
		irq = AHCI_P_IX_DHRS;
		if (s->pio && s->xfer) {
			fis_pio_setup(p, tf, s->xfer, !s->write);
			irq |= AHCI_P_IX_PSS;
		}
		fis_d2h(p, tf, true);
	}
	if (!p->halted)
		p->tfd = (uint32_t)tf->error << 8 | tf->status;
	if (err) {
		irq |= AHCI_P_IX_TFES | (s->hbfs ? AHCI_P_IX_HBFS : 0);
		p->halted = true;
		p->ccs = s->idx;
	} else {
		p->ci &= ~bit;
		p->issued &= ~bit;
	}
	slot_release(s);
	port_raise(p, irq);
}

static void slot_ok(struct ahci_port *p, struct ahci_slot *s)
{
	s->tf.status = ATA_S_DRDY | ATA_S_DSC;
	s->tf.error = 0;
	if (s->atapi)
		p->sense_key = p->sense_asc = p->sense_ascq = 0;
	slot_complete(p, s);
}

/* Fail 's' with ABRT plus 'error'; 'why' (may be NULL) is worth a
 * warning. */
static void slot_fail(struct ahci_port *p, struct ahci_slot *s, uint8_t error,
		      const char *why)
{
	if (why)
		port_warn(p, why);
	s->tf.status = ATA_S_DRDY | ATA_S_ERR;
	s->tf.error = (uint8_t)(ATA_E_ABRT | error);
	slot_complete(p, s);
}

/* Guest memory outside RAM: also a host bus fatal error. */
static void slot_fail_mem(struct ahci_port *p, struct ahci_slot *s,
			  const char *why)
{
	s->hbfs = true;
	slot_fail(p, s, 0, why);
}

/* Fail 's' for a PRDT error code from prdt_walk() / slot_chunk(). */
static void slot_fail_prdt(struct ahci_port *p, struct ahci_slot *s, int rc)
{
	switch (rc) {
	case -EFAULT:
		slot_fail_mem(p, s, "a PRD buffer is outside guest RAM");
		break;
	case -EINVAL:
		slot_fail(p, s, 0, "a PRD byte count is odd");
		break;
	case -E2BIG:
		slot_fail(p, s, 0, "the PRDT is too fragmented");
		break;
	default:
		slot_fail(p, s, 0, "the PRDT is shorter than the transfer");
		break;
	}
}

/* ATAPI CHECK CONDITION with sense key/ASC/ASCQ. */
static void atapi_check(struct ahci_port *p, struct ahci_slot *s, uint8_t key,
			uint8_t asc, uint8_t ascq)
{
	p->sense_key = key;
	p->sense_asc = asc;
	p->sense_ascq = ascq;
	s->tf.status = ATA_S_DRDY | ATA_S_ERR;
	s->tf.error = (uint8_t)(key << 4);
	slot_complete(p, s);
}

/*
 * Copy 'len' bytes of 'buf' to the guest buffers of 's' (all of them
 * unless 'partial') and record the count.  Returns 0, or -1 after failing
 * the command.
 */
static int slot_data_in(struct ahci_port *p, struct ahci_slot *s,
			const void *buf, uint32_t len, bool partial)
{
	struct copy_src c = {buf};
	int64_t n = prdt_walk(p, s, len, copy_to_guest, &c);

	if (n < 0) {
		slot_fail_prdt(p, s, (int)n);
		return -1;
	}
	if (!partial && (uint64_t)n < len) {
		slot_fail_prdt(p, s, -ENOSPC);
		return -1;
	}
	s->xfer = (uint32_t)n;
	return 0;
}

/* ---- block I/O ---- */

/* Submit the next block request of 's': 1 submitted, 0 nothing left, or
 * -errno (s->guest_err tells a PRDT fault from a block-layer refusal). */
static int slot_next(struct ahci_port *p, struct ahci_slot *s)
{
	struct blk_req *br = &s->br;
	int n;

	br->iov = NULL;
	br->iovcnt = 0;
	br->len = 0;
	if (s->kind == SLOT_RW && s->left) {
		n = slot_chunk(p, s);
		if (n < 0) {
			s->guest_err = true;
			return n;
		}
		br->op = s->write ? BLK_WRITE : BLK_READ;
		br->offset = s->pos;
		br->iov = s->iov;
		br->iovcnt = (unsigned)n;
	} else if (s->kind == SLOT_DSM && s->cur < s->ndsm) {
		br->op = BLK_DISCARD;
		br->offset = s->dsm[s->cur].off;
		br->len = s->dsm[s->cur].len;
		s->cur++;
	} else if (s->flush_after) {
		s->flush_after = false;
		br->op = BLK_FLUSH;
		br->offset = 0;
	} else {
		return 0;
	}
	n = blk_submit(p->blk, br);
	return n ? n : 1;
}

/* Start the block I/O of 's' (port lock held). */
static void slot_start(struct ahci_port *p, struct ahci_slot *s)
{
	int rc;

	s->active = true; /* before submitting: done() may run at once */
	p->nactive++;
	rc = slot_next(p, s);
	if (rc > 0)
		return;
	s->active = false;
	p->nactive--;
	if (rc == 0) {
		slot_ok(p, s);
	} else if (s->guest_err) {
		slot_fail_prdt(p, s, rc);
	} else {
		log_ratelimited(AHCI_WARN_MS, "%s: port %u: cannot queue: %s",
				p->hba->pd->name, p->idx, strerror(-rc));
		slot_fail(p, s, 0, NULL);
	}
}

/* A block request of 's' failed with 'err' (port lock held). */
static void slot_io_error(struct ahci_port *p, struct ahci_slot *s, int err)
{
	if (s->guest_err) {
		slot_fail_prdt(p, s, err);
		return;
	}
	if (err != -EOPNOTSUPP)
		log_ratelimited(
			AHCI_WARN_MS, "%s: port %u: I/O error at byte %llu: %s",
			p->hba->pd->name, p->idx,
			(unsigned long long)s->br.offset, strerror(-err));
	if (s->atapi)
		atapi_check(p, s, SENSE_MEDIUM_ERROR, ASC_UNRECOVERED_READ, 0);
	else if (err == -EINVAL)
		slot_fail(p, s, ATA_E_IDNF, NULL);
	else if (s->kind == SLOT_RW && !s->write && err != -ESHUTDOWN)
		slot_fail(p, s, ATA_E_UNC, NULL);
	else
		slot_fail(p, s, 0, NULL);
}

static void port_process(struct ahci_port *p);

/* Block worker thread: a request of slot 's' finished. */
static void ahci_io_done(struct blk_req *br, int err)
{
	struct ahci_slot *s = (struct ahci_slot *)br;
	struct ahci_port *p = s->p;
	int rc;

	if (err == 0 && s->gen == port_gen(p)) {
		if (br->op == BLK_READ || br->op == BLK_WRITE) {
			s->pos += s->chunk;
			s->left -= s->chunk;
			s->xfer += (uint32_t)s->chunk;
		}
		rc = slot_next(p, s);
		if (rc > 0)
			return; /* done() runs again */
		err = rc;
	}
	pthread_mutex_lock(&p->lock);
	s->active = false;
	p->nactive--;
	if (s->gen == p->gen) {
		if (err)
			slot_io_error(p, s, err);
		else
			slot_ok(p, s);
	} else {
		slot_release(s);
	}
	port_process(p); /* commands waiting for this slot */
	pthread_mutex_unlock(&p->lock);
}

/* ---- device reset and IDENTIFY ---- */

/* The signature registers after a reset or a diagnostic. */
static void dev_signature(const struct ahci_port *p, struct ata_tf *tf)
{
	memset(tf, 0, sizeof(*tf));
	tf->status = p->atapi ? 0 : ATA_S_DRDY | ATA_S_DSC;
	tf->error = 0x01; /* no error detected */
	tf->count = 1;
	tf->lba[0] = 1;
	tf->lba[1] = (uint8_t)(p->sig >> 16);
	tf->lba[2] = (uint8_t)(p->sig >> 24);
}

/* Device reset: state to defaults, signature FIS (port lock held). */
static void dev_reset(struct ahci_port *p)
{
	struct ata_tf tf;

	p->wcache = true;
	p->rla = true;
	p->xfer_mode = AHCI_XFER_UDMA6;
	p->mult = AHCI_MULT_DEFAULT;
	p->sense_key = p->sense_asc = p->sense_ascq = 0;
	p->ncq_err = false;
	p->sig = p->atapi ? AHCI_SIG_ATAPI : AHCI_SIG_ATA;
	dev_signature(p, &tf);
	p->tfd = (uint32_t)tf.error << 8 | tf.status;
	fis_d2h(p, &tf, false);
}

/* The link came up after COMRESET (or power-on / HBA reset). */
static void link_reset(struct ahci_port *p)
{
	unsigned spd = (p->sctl & AHCI_SCTL_SPD_MASK) >> AHCI_SCTL_SPD_SHIFT;

	if (!p->blk) {
		p->ssts = 0;
		p->sig = 0xffffffff;
		p->tfd = 0x7f;
		return;
	}
	if (spd == 0 || spd > AHCI_SPD_GEN3)
		spd = AHCI_SPD_GEN3;
	p->ssts = AHCI_SSTS_DET_PRESENT | spd << AHCI_SSTS_SPD_SHIFT |
		  AHCI_SSTS_IPM_ACTIVE;
	dev_reset(p);
}

/* ATA string: two characters per word, the first in the high byte. */
static void ata_string(uint16_t *w, unsigned nwords, const char *s)
{
	size_t len = strlen(s), i;

	for (i = 0; i < 2 * (size_t)nwords; i++) {
		uint8_t c = i < len ? (uint8_t)s[i] : ' ';

		if (i % 2 == 0)
			w[i / 2] = (uint16_t)(c << 8);
		else
			w[i / 2] = (uint16_t)(w[i / 2] | c);
	}
}

/* Word 255: signature A5h and a checksum making the 512 bytes sum to 0. */
static void ata_id_finish(uint16_t *id, uint8_t *buf)
{
	uint8_t sum = 0;
	unsigned i;

	id[ATA_ID_INTEGRITY] = 0x00a5;
	for (i = 0; i < 256; i++)
		put_le16(buf + 2 * i, id[i]);
	for (i = 0; i < 511; i++)
		sum = (uint8_t)(sum + buf[i]);
	buf[511] = (uint8_t)-sum;
}

static uint16_t ata_mwdma_word(const struct ahci_port *p)
{
	uint16_t w = 0x0007;

	if ((p->xfer_mode & 0xf8) == 0x20)
		w = (uint16_t)(w | 1u << (8 + (p->xfer_mode & 7)));
	return w;
}

static uint16_t ata_udma_word(const struct ahci_port *p)
{
	uint16_t w = 0x007f;

	if ((p->xfer_mode & 0xf8) == 0x40)
		w = (uint16_t)(w | 1u << (8 + (p->xfer_mode & 7)));
	return w;
}

static unsigned log2u(unsigned v)
{
	unsigned n = 0;

	while (v > 1) {
		v >>= 1;
		n++;
	}
	return n;
}

static void ata_identify_disk(const struct ahci_port *p, uint16_t *id)
{
	uint64_t n = p->sectors, chs;
	uint32_t n28 = n > 0x0fffffff ? 0x0fffffff : (uint32_t)n;
	uint16_t cyl =
		n / (16 * 63) > 16383 ? 16383 : (uint16_t)(n / (16 * 63));
	unsigned i;

	id[0] = 0x0040; /* fixed device */
	id[1] = cyl;
	id[3] = 16;
	id[6] = 63;
	ata_string(id + ATA_ID_SERIAL, 10, p->ser);
	ata_string(id + ATA_ID_FW_REV, 4, p->rev);
	ata_string(id + ATA_ID_MODEL, 20, p->model);
	id[47] = 0x8000 | AHCI_MULT_MAX;
	id[49] = 1u << 11 | 1u << 10 | 1u << 9 | 1u << 8; /* IORDY LBA DMA */
	id[50] = 0x4000;
	id[53] = 0x0006; /* words 64-70 and 88 valid */
	chs = (uint64_t)cyl * 16 * 63;
	id[54] = cyl;
	id[55] = 16;
	id[56] = 63;
	id[57] = (uint16_t)chs;
	id[58] = (uint16_t)(chs >> 16);
	id[59] = (uint16_t)(0x0100 | p->mult);
	id[60] = (uint16_t)n28;
	id[61] = (uint16_t)(n28 >> 16);
	id[63] = ata_mwdma_word(p);
	id[64] = 0x0003; /* PIO 3 and 4 */
	id[65] = id[66] = id[67] = id[68] = 120;
	id[ATA_ID_QUEUE_DEPTH] = AHCI_NCQ_DEPTH - 1;
	/* NCQ, Gen3/2/1 */
	id[ATA_ID_SATA_CAP] = 1u << 8 | 1u << 3 | 1u << 2 | 1u << 1;
	id[77] = AHCI_SPD_GEN3 << 1; /* current speed */
	id[80] = 0x07f0;	     /* ATA/ATAPI-4 .. ACS-3 */
	/* NOP, look-ahead, write cache, power management */
	id[82] = 1u << 14 | 1u << 6 | 1u << 5 | 1u << 3;
	/* FLUSH CACHE EXT, FLUSH CACHE, 48-bit */
	id[83] = 1u << 14 | 1u << 13 | 1u << 12 | 1u << 10;
	id[84] = 1u << 14 | 1u << 5; /* GPL */
	id[85] = (uint16_t)(1u << 14 | (p->rla ? 1u << 6 : 0) |
			    (p->wcache ? 1u << 5 : 0) | 1u << 3);
	id[86] = 1u << 15 | 1u << 13 | 1u << 12 | 1u << 10;
	id[87] = 1u << 14 | 1u << 5;
	id[88] = ata_udma_word(p);
	for (i = 0; i < 4; i++)
		id[ATA_ID_LBA48 + i] = (uint16_t)(n >> (16 * i));
	if (p->can_discard) {
		id[ATA_ID_DSM_BLOCKS] = ATA_DSM_MAX_BLOCKS;
		id[ATA_ID_DSM] = 1; /* TRIM */
	}
	id[ATA_ID_SECTOR_SIZE] = 0x4000;
	if (p->psector > p->lsector) {
		id[ATA_ID_SECTOR_SIZE] =
			(uint16_t)(id[ATA_ID_SECTOR_SIZE] | 1u << 13 |
				   log2u(p->psector / p->lsector));
		id[209] = 0x4000; /* logical sector 0 at offset 0 */
	}
	if (p->lsector > 512) {
		id[ATA_ID_SECTOR_SIZE] =
			(uint16_t)(id[ATA_ID_SECTOR_SIZE] | 1u << 12);
		id[117] = (uint16_t)(p->lsector / 2);
		id[118] = (uint16_t)(p->lsector / 2 >> 16);
	}
	id[119] = 0x4000;
	id[120] = 0x4000;
	id[ATA_ID_NMRR] = p->nmrr;
	id[222] = 0x103f; /* serial, SATA 1.0a .. 3.0 */
}

static void ata_identify_atapi(const struct ahci_port *p, uint16_t *id)
{
	/* ATAPI, CD-ROM set, removable, 50 us DRQ, 12-byte packets */
	id[0] = 0x8000 | 0x05 << 8 | 0x80 | 0x40;
	ata_string(id + ATA_ID_SERIAL, 10, p->ser);
	ata_string(id + ATA_ID_FW_REV, 4, p->rev);
	ata_string(id + ATA_ID_MODEL, 20, p->model);
	id[49] = 1u << 11 | 1u << 10 | 1u << 9 | 1u << 8;
	id[53] = 0x0006;
	id[63] = ata_mwdma_word(p);
	id[64] = 0x0003;
	id[65] = id[66] = id[67] = id[68] = 120;
	id[ATA_ID_SATA_CAP] = 1u << 3 | 1u << 2 | 1u << 1;
	id[77] = AHCI_SPD_GEN3 << 1;
	id[80] = 0x01f0;
	id[82] = 1u << 14 | 1u << 4 | 1u << 3; /* NOP, PACKET, PM */
	id[83] = 0x4000;
	id[84] = 0x4000;
	id[85] = 1u << 14 | 1u << 4 | 1u << 3;
	id[87] = 0x4000;
	id[88] = ata_udma_word(p);
	id[222] = 0x103f;
}

static void ata_identify(struct ahci_port *p, struct ahci_slot *s)
{
	uint16_t id[256];
	uint8_t buf[512];

	memset(id, 0, sizeof(id));
	if (p->atapi)
		ata_identify_atapi(p, id);
	else
		ata_identify_disk(p, id);
	ata_id_finish(id, buf);
	s->pio = true;
	if (slot_data_in(p, s, buf, sizeof(buf), false) == 0)
		slot_ok(p, s);
}

/* ---- ATA commands ---- */

/* A READ/WRITE of 'n' sectors from 'lba'. */
static void ata_rw(struct ahci_port *p, struct ahci_slot *s, uint64_t lba,
		   uint32_t n, bool write, bool fua)
{
	uint64_t bytes = (uint64_t)n * p->lsector;
	int64_t rc;

	s->write = write;
	if (write && p->ro) {
		slot_fail(p, s, 0, "write to a read-only disk");
		return;
	}
	if (lba > p->sectors || n > p->sectors - lba) {
		slot_fail(p, s, ATA_E_IDNF, "LBA range beyond the disk");
		return;
	}
	rc = prdt_walk(p, s, bytes, NULL, NULL);
	if (rc >= 0 && (uint64_t)rc < bytes)
		rc = -ENOSPC;
	if (rc < 0) {
		slot_fail_prdt(p, s, (int)rc);
		return;
	}
	s->kind = SLOT_RW;
	s->pos = lba * p->lsector;
	s->left = bytes;
	s->flush_after = write && (fua || !p->wcache);
	slot_start(p, s);
}

static void ata_flush(struct ahci_port *p, struct ahci_slot *s)
{
	if (p->ro) {
		slot_ok(p, s);
		return;
	}
	s->kind = SLOT_NONE;
	s->flush_after = true;
	slot_start(p, s);
}

/* DATA SET MANAGEMENT: TRIM ranges from 'count' 512-byte blocks. */
static void ata_dsm(struct ahci_port *p, struct ahci_slot *s, uint16_t feat,
		    uint32_t count)
{
	uint32_t len = count * 512, i;
	struct copy_dst c;
	struct dsm_range *r;
	int64_t n;

	s->write = true;
	if (!(feat & 1) || p->ro || !p->can_discard) {
		slot_fail(p, s, 0, NULL); /* not offered in IDENTIFY */
		return;
	}
	if (count == 0 || count > ATA_DSM_MAX_BLOCKS) {
		slot_fail(p, s, 0, "TRIM with a bad block count");
		return;
	}
	c.buf = malloc(len);
	r = calloc(len / 8, sizeof(*r));
	if (!c.buf || !r) {
		free(c.buf);
		free(r);
		slot_fail(p, s, 0, NULL);
		return;
	}
	n = prdt_walk(p, s, len, copy_from_guest, &c);
	if (n >= 0 && (uint64_t)n < len)
		n = -ENOSPC;
	if (n < 0) {
		free(c.buf);
		free(r);
		slot_fail_prdt(p, s, (int)n);
		return;
	}
	s->dsm = r;
	for (i = 0; i < len / 8; i++) {
		uint64_t v = get_le64(c.buf + 8 * i);
		uint64_t lba = v & 0xffffffffffffull, nsec = v >> 48;

		if (nsec == 0)
			continue;
		if (lba > p->sectors || nsec > p->sectors - lba) {
			free(c.buf);
			slot_fail(p, s, ATA_E_IDNF,
				  "TRIM range beyond the disk");
			return;
		}
		r[s->ndsm].off = lba * p->lsector;
		r[s->ndsm].len = nsec * p->lsector;
		s->ndsm++;
	}
	free(c.buf);
	s->xfer = len;
	s->kind = SLOT_DSM;
	slot_start(p, s);
}

/* READ LOG (DMA) EXT: the log directory and the NCQ error log. */
static void ata_read_log(struct ahci_port *p, struct ahci_slot *s, uint8_t log,
			 uint16_t page, uint32_t count)
{
	uint8_t buf[512], sum = 0;
	unsigned i;

	memset(buf, 0, sizeof(buf));
	if (page != 0 || count != 1) {
		slot_fail(p, s, 0, NULL);
		return;
	}
	switch (log) {
	case ATA_LOG_DIRECTORY:
		put_le16(buf, 1); /* GPL version */
		put_le16(buf + 2 * ATA_LOG_NCQ_ERROR, 1);
		break;
	case ATA_LOG_NCQ_ERROR:
		if (!p->ncq_err) {
			buf[0] = 0x80; /* NQ: no queued command failed */
		} else {
			buf[0] = p->ncq_log.tag;
			buf[2] = p->ncq_log.status;
			buf[3] = p->ncq_log.error;
			for (i = 0; i < 3; i++) {
				buf[4 + i] = (uint8_t)(p->ncq_log.lba >> 8 * i);
				buf[8 + i] = (uint8_t)(p->ncq_log.lba >>
						       (8 * i + 24));
			}
			buf[7] = 0x40;
			put_le16(buf + 12, p->ncq_log.count);
		}
		for (i = 0; i < 511; i++)
			sum = (uint8_t)(sum + buf[i]);
		buf[511] = (uint8_t)-sum;
		p->ncq_err = false; /* reading the log clears the error */
		break;
	default:
		slot_fail(p, s, 0, NULL);
		return;
	}
	if (slot_data_in(p, s, buf, sizeof(buf), false) == 0)
		slot_ok(p, s);
}

static void ata_set_features(struct ahci_port *p, struct ahci_slot *s,
			     uint8_t feat, uint8_t count)
{
	switch (feat) {
	case ATA_SF_ENABLE_WCACHE:
	case ATA_SF_DISABLE_WCACHE:
		if (p->atapi)
			goto abort;
		p->wcache = feat == ATA_SF_ENABLE_WCACHE;
		break;
	case ATA_SF_SET_XFER_MODE:
		if (count <= 0x01 || (count >= 0x08 && count <= 0x0c) ||
		    (count >= 0x20 && count <= 0x22) ||
		    (count >= 0x40 && count <= 0x46))
			p->xfer_mode = count;
		else
			goto abort;
		break;
	case ATA_SF_ENABLE_RLA:
	case ATA_SF_DISABLE_RLA:
		p->rla = feat == ATA_SF_ENABLE_RLA;
		break;
	case ATA_SF_ENABLE_REVERT:
	case ATA_SF_DISABLE_REVERT:
	case ATA_SF_ENABLE_SATA:
	case ATA_SF_DISABLE_SATA:
		break;
	default:
		goto abort;
	}
	slot_ok(p, s);
	return;
abort:
	log_debug("%s: port %u: SET FEATURES 0x%02x/0x%02x not supported",
		  p->hba->pd->name, p->idx, feat, count);
	slot_fail(p, s, 0, NULL);
}

/* EXECUTE DEVICE DIAGNOSTIC / DEVICE RESET: the signature, no ERR. */
static void ata_signature(struct ahci_port *p, struct ahci_slot *s)
{
	dev_signature(p, &s->tf);
	slot_complete(p, s);
}

/* READ/WRITE FPDMA QUEUED. */
static void ata_ncq(struct ahci_port *p, struct ahci_slot *s, const uint8_t *f,
		    uint64_t lba)
{
	uint32_t bit = 1u << s->idx, n = f[3] | (uint32_t)f[11] << 8;

	if (!(p->sact & bit)) {
		slot_fail(p, s, 0, "NCQ command without its PxSACT bit");
		return;
	}
	/* accepted: the device clears BSY, the HBA clears the CI bit */
	p->ci &= ~bit;
	s->ncq = true;
	s->lba = lba;
	s->count = (uint16_t)n;
	ata_rw(p, s, lba, n ? n : 65536, f[2] == ATA_WRITE_FPDMA_QUEUED,
	       (f[7] & 0x80) != 0);
}

static void ata_command(struct ahci_port *p, struct ahci_slot *s,
			const uint8_t *f)
{
	uint64_t lba48 = get_le32(f + 4) & 0xffffff;
	uint32_t lba28 = lba48 | (uint32_t)(f[7] & 0x0f) << 24;
	uint32_t count16 = get_le16(f + 12), count8 = f[12];
	uint8_t cmd = f[2];

	lba48 |= (uint64_t)(get_le32(f + 8) & 0xffffff) << 24;
	switch (cmd) {
	case ATA_IDENTIFY:
		ata_identify(p, s);
		return;
	case ATA_READ_DMA_EXT:
	case ATA_READ_SECTORS_EXT:
	case ATA_READ_MULTIPLE_EXT:
	case ATA_WRITE_DMA_EXT:
	case ATA_WRITE_SECTORS_EXT:
	case ATA_WRITE_MULTIPLE_EXT:
	case ATA_WRITE_DMA_FUA_EXT:
	case ATA_WRITE_MULTIPLE_FUA_EXT:
		if ((cmd == ATA_READ_MULTIPLE_EXT ||
		     cmd == ATA_WRITE_MULTIPLE_EXT ||
		     cmd == ATA_WRITE_MULTIPLE_FUA_EXT) &&
		    p->mult == 0)
			break;
		s->pio = cmd != ATA_READ_DMA_EXT && cmd != ATA_WRITE_DMA_EXT &&
			 cmd != ATA_WRITE_DMA_FUA_EXT;
		ata_rw(p, s, lba48, count16 ? count16 : 65536,
		       cmd != ATA_READ_DMA_EXT && cmd != ATA_READ_SECTORS_EXT &&
			       cmd != ATA_READ_MULTIPLE_EXT,
		       cmd == ATA_WRITE_DMA_FUA_EXT ||
			       cmd == ATA_WRITE_MULTIPLE_FUA_EXT);
		return;
	case ATA_READ_DMA:
	case ATA_READ_SECTORS:
	case ATA_READ_MULTIPLE:
	case ATA_WRITE_DMA:
	case ATA_WRITE_SECTORS:
	case ATA_WRITE_MULTIPLE:
		if ((cmd == ATA_READ_MULTIPLE || cmd == ATA_WRITE_MULTIPLE) &&
		    p->mult == 0)
			break;
		s->pio = cmd != ATA_READ_DMA && cmd != ATA_WRITE_DMA;
		ata_rw(p, s, lba28, count8 ? count8 : 256,
		       cmd == ATA_WRITE_DMA || cmd == ATA_WRITE_SECTORS ||
			       cmd == ATA_WRITE_MULTIPLE,
		       false);
		return;
	case ATA_READ_FPDMA_QUEUED:
	case ATA_WRITE_FPDMA_QUEUED:
		ata_ncq(p, s, f, lba48);
		return;
	case ATA_FLUSH_CACHE:
	case ATA_FLUSH_CACHE_EXT:
		ata_flush(p, s);
		return;
	case ATA_DSM:
		ata_dsm(p, s, (uint16_t)(f[3] | f[11] << 8),
			count16 ? count16 : 65536);
		return;
	case ATA_READ_LOG_EXT:
	case ATA_READ_LOG_DMA_EXT:
		s->pio = cmd == ATA_READ_LOG_EXT;
		ata_read_log(p, s, f[4], (uint16_t)(f[5] | f[10] << 8),
			     count16);
		return;
	case ATA_SET_FEATURES:
		ata_set_features(p, s, f[3], f[12]);
		return;
	case ATA_SET_MULTIPLE:
		if (count8 > AHCI_MULT_MAX || (count8 & (count8 - 1)))
			break;
		p->mult = (uint8_t)count8;
		slot_ok(p, s);
		return;
	case ATA_READ_VERIFY:
	case ATA_READ_VERIFY_EXT:
		if (cmd == ATA_READ_VERIFY) {
			lba48 = lba28;
			count16 = count8 ? count8 : 256;
		} else if (count16 == 0) {
			count16 = 65536;
		}
		if (lba48 > p->sectors || count16 > p->sectors - lba48) {
			slot_fail(p, s, ATA_E_IDNF,
				  "LBA range beyond the disk");
			return;
		}
		slot_ok(p, s);
		return;
	case ATA_CHECK_POWER_MODE:
		s->tf.count = 0xff; /* active or idle */
		slot_ok(p, s);
		return;
	case ATA_STANDBY_IMMEDIATE:
	case ATA_IDLE_IMMEDIATE:
	case ATA_STANDBY:
	case ATA_IDLE:
	case ATA_SLEEP:
	case ATA_RECALIBRATE:
	case ATA_INIT_DEV_PARAMS:
		slot_ok(p, s);
		return;
	case ATA_EXEC_DIAGNOSTIC:
		ata_signature(p, s);
		return;
	case ATA_NOP: /* always aborts */
	case ATA_IDENTIFY_PACKET:
	case ATA_DEVICE_RESET:
	case ATA_PACKET:
		break;
	default:
		log_debug("%s: port %u: ATA command 0x%02x not supported",
			  p->hba->pd->name, p->idx, cmd);
		break;
	}
	slot_fail(p, s, 0, NULL);
}

/* ---- ATAPI ---- */

/* Send 'len' bytes of a reply, cut to the allocation length, and end the
 * command. */
static void atapi_reply(struct ahci_port *p, struct ahci_slot *s,
			const uint8_t *buf, uint32_t len, uint32_t alloc)
{
	if (len > alloc)
		len = alloc;
	if (slot_data_in(p, s, buf, len, true) == 0)
		slot_ok(p, s);
}

static bool atapi_is_dvd(const struct ahci_port *p)
{
	return p->sectors > AHCI_CD_MAX_BLOCKS;
}

static void pad_copy(uint8_t *dst, const char *src, size_t n)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

static void atapi_inquiry(struct ahci_port *p, struct ahci_slot *s,
			  const uint8_t *cdb)
{
	uint32_t alloc = get_be16(cdb + 3);
	uint8_t buf[36];

	memset(buf, 0, sizeof(buf));
	if (cdb[1] & 1) { /* EVPD: only the list of pages */
		if (cdb[2] != 0) {
			atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
				    ASC_INVALID_FIELD_IN_CDB, 0);
			return;
		}
		buf[0] = 0x05;
		put_be16(buf + 2, 1);
		buf[4] = 0x00;
		atapi_reply(p, s, buf, 5, alloc);
		return;
	}
	if (cdb[2] != 0) {
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
			    ASC_INVALID_FIELD_IN_CDB, 0);
		return;
	}
	buf[0] = 0x05; /* CD/DVD device */
	buf[1] = 0x80; /* removable */
	buf[2] = 0x05; /* SPC-3 */
	buf[3] = 0x02; /* response data format */
	buf[4] = sizeof(buf) - 5;
	pad_copy(buf + 8, AHCI_INQ_VENDOR, 8);
	pad_copy(buf + 16,
		 strcmp(p->model, AHCI_CD_MODEL) ? p->model : AHCI_INQ_PRODUCT,
		 16);
	pad_copy(buf + 32, p->rev, 4);
	atapi_reply(p, s, buf, sizeof(buf), alloc);
}

static void atapi_request_sense(struct ahci_port *p, struct ahci_slot *s,
				const uint8_t *cdb)
{
	uint8_t buf[18];

	memset(buf, 0, sizeof(buf));
	buf[0] = 0x70; /* current, fixed format */
	buf[2] = p->sense_key;
	buf[7] = sizeof(buf) - 8;
	buf[12] = p->sense_asc;
	buf[13] = p->sense_ascq;
	atapi_reply(p, s, buf, sizeof(buf), cdb[4]);
}

static void atapi_read_capacity(struct ahci_port *p, struct ahci_slot *s)
{
	uint8_t buf[8];

	put_be32(buf, p->sectors ? (uint32_t)(p->sectors - 1) : 0);
	put_be32(buf + 4, ATAPI_BLOCK);
	atapi_reply(p, s, buf, sizeof(buf), sizeof(buf));
}

static void atapi_read(struct ahci_port *p, struct ahci_slot *s, uint32_t lba,
		       uint32_t n)
{
	uint64_t bytes = (uint64_t)n * ATAPI_BLOCK;
	int64_t rc;

	if (lba > p->sectors || n > p->sectors - lba) {
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE,
			    0);
		return;
	}
	if (n == 0) {
		slot_ok(p, s);
		return;
	}
	rc = prdt_walk(p, s, bytes, NULL, NULL);
	if (rc >= 0 && (uint64_t)rc < bytes)
		rc = -ENOSPC;
	if (rc < 0) {
		slot_fail_prdt(p, s, (int)rc);
		return;
	}
	s->kind = SLOT_RW;
	s->write = false;
	s->pos = (uint64_t)lba * ATAPI_BLOCK;
	s->left = bytes;
	slot_start(p, s);
}

/* MODE SENSE(10) pages 01h, 2Ah and 3Fh. */
static void atapi_mode_sense(struct ahci_port *p, struct ahci_slot *s,
			     const uint8_t *cdb)
{
	unsigned pc = cdb[2] >> 6, page = cdb[2] & 0x3f, n = 8;
	uint8_t buf[64];

	memset(buf, 0, sizeof(buf));
	if (pc == 3) {
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
			    ASC_SAVING_NOT_SUPPORTED, 0);
		return;
	}
	if (page != 0x01 && page != 0x2a && page != 0x3f) {
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
			    ASC_INVALID_FIELD_IN_CDB, 0);
		return;
	}
	if (page == 0x01 || page == 0x3f) { /* read error recovery */
		buf[n] = 0x01;
		buf[n + 1] = 0x06;
		n += 8;
	}
	if (page == 0x2a || page == 0x3f) { /* capabilities */
		uint8_t *c = buf + n;

		c[0] = 0x2a;
		c[1] = 0x12;
		if (pc != 1) {
			c[2] = 0x0f; /* reads CD-R, CD-RW, method 2, DVD-ROM */
			c[4] = 0x71; /* audio, mode 2 forms 1/2, multisession */
			c[6] = 0x29; /* tray, eject, lock */
			put_be16(c + 8, 2816); /* max speed, kB/s */
			put_be16(c + 10, 256); /* volume levels */
			put_be16(c + 12, 512); /* buffer, KiB */
			put_be16(c + 14, 2816);
		}
		n += 20;
	}
	put_be16(buf, (uint16_t)(n - 2));
	atapi_reply(p, s, buf, n, get_be16(cdb + 7));
}

/* An address in a TOC: LBA, or MSF with the 2-second pregap. */
static void toc_addr(uint8_t *b, uint32_t lba, bool msf)
{
	if (!msf) {
		put_be32(b, lba);
		return;
	}
	lba += 150;
	b[0] = 0;
	b[1] = (uint8_t)(lba / (75 * 60));
	b[2] = (uint8_t)(lba / 75 % 60);
	b[3] = (uint8_t)(lba % 75);
}

static void atapi_read_toc(struct ahci_port *p, struct ahci_slot *s,
			   const uint8_t *cdb)
{
	bool msf = (cdb[1] & 2) != 0;
	unsigned fmt = cdb[2] & 0x0f, start = cdb[6], n = 4, i;
	uint32_t end = (uint32_t)p->sectors;
	uint8_t buf[64], *d;

	memset(buf, 0, sizeof(buf));
	if (fmt == 0)
		fmt = cdb[9] >> 6; /* the older place of the format */
	buf[2] = 1;
	buf[3] = 1;
	switch (fmt) {
	case 0: /* TOC: track 1 and the lead-out */
		if (start > 1 && start != 0xaa) {
			atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
				    ASC_INVALID_FIELD_IN_CDB, 0);
			return;
		}
		if (start <= 1) {
			buf[n + 1] = 0x14; /* ADR 1, data track */
			buf[n + 2] = 1;
			toc_addr(buf + n + 4, 0, msf);
			n += 8;
		}
		buf[n + 1] = 0x14;
		buf[n + 2] = 0xaa;
		toc_addr(buf + n + 4, end, msf);
		n += 8;
		break;
	case 1: /* session information */
		buf[n + 1] = 0x14;
		buf[n + 2] = 1;
		toc_addr(buf + n + 4, 0, msf);
		n += 8;
		break;
	case 2: /* raw TOC: points A0, A1, A2 and track 1, in MSF */
		for (i = 0; i < 4; i++) {
			static const uint8_t point[4] = {0xa0, 0xa1, 0xa2, 1};

			d = buf + n;
			d[0] = 1;    /* session */
			d[1] = 0x14; /* ADR 1, data */
			d[3] = point[i];
			if (i < 2) {
				d[8] = 1; /* first/last track */
			} else {
				uint8_t a[4];

				toc_addr(a, i == 2 ? end : 0, true);
				memcpy(d + 8, a + 1, 3);
			}
			n += 11;
		}
		break;
	default:
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
			    ASC_INVALID_FIELD_IN_CDB, 0);
		return;
	}
	put_be16(buf, (uint16_t)(n - 2));
	atapi_reply(p, s, buf, n, get_be16(cdb + 7));
}

/* Append feature 'code' to a GET CONFIGURATION reply if 'rt' wants it. */
static unsigned gc_feature(uint8_t *b, unsigned n, unsigned rt, unsigned start,
			   uint16_t code, uint8_t flags, const uint8_t *data,
			   uint8_t len)
{
	bool current = flags & 1;

	if ((rt == 2 && code != start) || code < start || (rt == 1 && !current))
		return n;
	put_be16(b + n, code);
	b[n + 2] = flags;
	b[n + 3] = len;
	memcpy(b + n + 4, data, len);
	return n + 4u + len;
}

static void atapi_get_configuration(struct ahci_port *p, struct ahci_slot *s,
				    const uint8_t *cdb)
{
	unsigned rt = cdb[1] & 3, start = get_be16(cdb + 2), n = 8;
	bool dvd = atapi_is_dvd(p);
	uint8_t buf[128], d[8];

	if (rt == 3) {
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
			    ASC_INVALID_FIELD_IN_CDB, 0);
		return;
	}
	memset(buf, 0, sizeof(buf));
	put_be16(buf + 6, dvd ? MMC_PROFILE_DVDROM : MMC_PROFILE_CDROM);
	memset(d, 0, sizeof(d));
	put_be16(d, MMC_PROFILE_DVDROM);
	d[2] = dvd;
	put_be16(d + 4, MMC_PROFILE_CDROM);
	d[6] = !dvd;
	n = gc_feature(buf, n, rt, start, 0x0000, 0x03, d, 8); /* profiles */
	memset(d, 0, sizeof(d));
	put_be32(d, 2);					       /* ATAPI */
	n = gc_feature(buf, n, rt, start, 0x0001, 0x0b, d, 8); /* core */
	memset(d, 0, sizeof(d));
	n = gc_feature(buf, n, rt, start, 0x0002, 0x07, d, 4); /* morphing */
	d[0] = 0x29; /* tray, eject, lock */
	n = gc_feature(buf, n, rt, start, 0x0003, 0x03, d, 4); /* removable */
	memset(d, 0, sizeof(d));
	put_be32(d, ATAPI_BLOCK);
	put_be16(d + 4, dvd ? 16 : 1);
	n = gc_feature(buf, n, rt, start, 0x0010, 0x03, d, 8); /* random rd */
	memset(d, 0, sizeof(d));
	n = gc_feature(buf, n, rt, start, 0x001e, (uint8_t)(0x08 | !dvd), d,
		       4); /* CD read */
	n = gc_feature(buf, n, rt, start, 0x001f, (uint8_t)(0x04 | dvd), d,
		       4); /* DVD read */
	put_be32(buf, n - 4);
	atapi_reply(p, s, buf, n, get_be16(cdb + 7));
}

static void atapi_event_status(struct ahci_port *p, struct ahci_slot *s,
			       const uint8_t *cdb)
{
	uint8_t buf[8];
	unsigned n = 4;

	if (!(cdb[1] & 1)) { /* only polled operation */
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
			    ASC_INVALID_FIELD_IN_CDB, 0);
		return;
	}
	memset(buf, 0, sizeof(buf));
	buf[3] = 0x10; /* supported: media events */
	if (cdb[4] & 0x10) {
		buf[2] = 0x04; /* media class */
		buf[4] = 0x00; /* no change */
		buf[5] = 0x02; /* media present, tray closed */
		n = 8;
	} else {
		buf[2] = 0x80; /* no event available */
	}
	put_be16(buf, (uint16_t)(n - 2));
	atapi_reply(p, s, buf, n, get_be16(cdb + 7));
}

static void atapi_disc_info(struct ahci_port *p, struct ahci_slot *s,
			    const uint8_t *cdb)
{
	uint8_t buf[34];

	if (cdb[1] & 7) {
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST,
			    ASC_INVALID_FIELD_IN_CDB, 0);
		return;
	}
	memset(buf, 0, sizeof(buf));
	put_be16(buf, sizeof(buf) - 2);
	buf[2] = 0x0e; /* last session complete, disc complete */
	buf[3] = 1;    /* first track */
	buf[4] = 1;    /* sessions */
	buf[5] = 1;    /* first track of the last session */
	buf[6] = 1;    /* last track of the last session */
	memset(buf + 16, 0xff, 8);
	atapi_reply(p, s, buf, sizeof(buf), get_be16(cdb + 7));
}

static void atapi_packet(struct ahci_port *p, struct ahci_slot *s,
			 const uint8_t *f, const uint8_t *cdb)
{
	s->atapi = true;
	s->pio = !(f[3] & 1); /* features bit 0: DMA */
	s->tf.count = 3;      /* interrupt reason: I/O, C/D */
	switch (cdb[0]) {
	case SCSI_TEST_UNIT_READY:
	case SCSI_START_STOP_UNIT:
	case SCSI_PREVENT_ALLOW:
	case SCSI_SEEK_10:
	case SCSI_SET_CD_SPEED:
		slot_ok(p, s);
		break;
	case SCSI_REQUEST_SENSE:
		atapi_request_sense(p, s, cdb);
		break;
	case SCSI_INQUIRY:
		atapi_inquiry(p, s, cdb);
		break;
	case SCSI_READ_CAPACITY:
		atapi_read_capacity(p, s);
		break;
	case SCSI_READ_10:
		atapi_read(p, s, get_be32(cdb + 2), get_be16(cdb + 7));
		break;
	case SCSI_READ_12:
		atapi_read(p, s, get_be32(cdb + 2), get_be32(cdb + 6));
		break;
	case SCSI_MODE_SENSE_10:
		atapi_mode_sense(p, s, cdb);
		break;
	case SCSI_READ_TOC:
		atapi_read_toc(p, s, cdb);
		break;
	case SCSI_GET_CONFIGURATION:
		atapi_get_configuration(p, s, cdb);
		break;
	case SCSI_GET_EVENT_STATUS:
		atapi_event_status(p, s, cdb);
		break;
	case SCSI_READ_DISC_INFO:
		atapi_disc_info(p, s, cdb);
		break;
	default:
		log_debug("%s: port %u: SCSI command 0x%02x not supported",
			  p->hba->pd->name, p->idx, cdb[0]);
		atapi_check(p, s, SENSE_ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0);
		break;
	}
}

static void atapi_command(struct ahci_port *p, struct ahci_slot *s,
			  const uint8_t *f, const uint8_t *cdb)
{
	switch (f[2]) {
	case ATA_PACKET:
		atapi_packet(p, s, f, cdb);
		return;
	case ATA_IDENTIFY_PACKET:
		ata_identify(p, s);
		return;
	case ATA_IDENTIFY: /* a packet device aborts it with its signature */
		dev_signature(p, &s->tf);
		s->tf.status = ATA_S_DRDY | ATA_S_ERR;
		s->tf.error = ATA_E_ABRT;
		slot_complete(p, s);
		return;
	case ATA_DEVICE_RESET:
	case ATA_EXEC_DIAGNOSTIC:
		ata_signature(p, s);
		return;
	case ATA_SET_FEATURES:
		ata_set_features(p, s, f[3], f[12]);
		return;
	case ATA_CHECK_POWER_MODE:
		s->tf.count = 0xff;
		slot_ok(p, s);
		return;
	case ATA_STANDBY_IMMEDIATE:
	case ATA_IDLE_IMMEDIATE:
	case ATA_SLEEP:
	case ATA_FLUSH_CACHE:
		slot_ok(p, s);
		return;
	default:
		log_debug("%s: port %u: ATA command 0x%02x to a packet device",
			  p->hba->pd->name, p->idx, f[2]);
		slot_fail(p, s, 0, NULL);
		return;
	}
}

/* ---- the command engine (port lock held) ---- */

/* A control FIS (C bit clear): soft reset through SRST. */
static void port_control_fis(struct ahci_port *p, struct ahci_slot *s,
			     const uint8_t *f)
{
	uint32_t bit = 1u << s->idx;

	if (!(f[15] & ATA_CTL_SRST))
		dev_reset(p); /* SRST released: the device resets */
	p->ci &= ~bit;
	p->issued &= ~bit;
}

/* Fetch and start the command in slot 'k'. */
static void port_issue(struct ahci_port *p, unsigned k)
{
	const struct gmem *m = port_mem(p);
	struct ahci_slot *s = &p->slot[k];
	uint8_t cfis[FIS_H2D_SIZE], cdb[ATAPI_CDB_SIZE];
	const uint8_t *hdr, *tbl;
	uint64_t ctba;
	uint32_t dw0;
	unsigned cfl;

	s->gen = p->gen;
	s->ncq = s->pio = s->write = s->atapi = false;
	s->hbfs = s->guest_err = false;
	s->kind = SLOT_NONE;
	s->xfer = 0;
	s->pos = s->left = s->chunk = 0;
	s->prd_idx = 0;
	s->prd_off = 0;
	s->flush_after = false;
	s->prdtl = 0;
	memset(&s->tf, 0, sizeof(s->tf));
	s->hdr_gpa = p->clb + (uint64_t)k * AHCI_CMDHDR_SIZE;
	hdr = gmem_ptr(m, s->hdr_gpa, AHCI_CMDHDR_SIZE);
	if (!hdr) {
		slot_fail_mem(p, s, "command list outside guest RAM");
		return;
	}
	dw0 = get_le32(hdr);
	ctba = get_le64(hdr + 8) & ~(uint64_t)(AHCI_CT_ALIGN - 1);
	cfl = dw0 & AHCI_CMDHDR_CFL_MASK;
	s->prdtl = dw0 >> AHCI_CMDHDR_PRDTL_SHIFT;
	s->prdt_gpa = ctba + AHCI_CT_PRDT;
	tbl = gmem_ptr(m, ctba,
		       AHCI_CT_PRDT + (uint64_t)s->prdtl * AHCI_PRD_SIZE);
	if (!tbl) {
		s->prdtl = 0;
		slot_fail_mem(p, s, "command table outside guest RAM");
		return;
	}
	memcpy(cfis, tbl + AHCI_CT_CFIS, sizeof(cfis));
	memcpy(cdb, tbl + AHCI_CT_ACMD, sizeof(cdb));
	if (cfl * 4 < FIS_H2D_SIZE || cfl > 16) {
		slot_fail(p, s, 0, "bad command FIS length");
		return;
	}
	if (cfis[0] != FIS_TYPE_H2D) {
		slot_fail(p, s, 0, "command FIS is not a host-to-device one");
		return;
	}
	if (!(cfis[1] & FIS_H2D_C)) {
		port_control_fis(p, s, cfis);
		return;
	}
	if (p->atapi)
		atapi_command(p, s, cfis, cdb);
	else
		ata_command(p, s, cfis);
}

static bool port_running(const struct ahci_port *p)
{
	return (p->cmd & AHCI_P_CMD_ST) && !p->halted && !p->closing &&
	       p->blk &&
	       (p->ssts & AHCI_SSTS_DET_MASK) == AHCI_SSTS_DET_PRESENT;
}

/* Start every issued command whose slot is free, round robin. */
static void port_process(struct ahci_port *p)
{
	unsigned i, k, start = p->ccs + 1;
	uint32_t pend;

	for (i = 0; i < AHCI_MAX_SLOTS && port_running(p); i++) {
		pend = p->ci & ~p->issued;
		if (!pend)
			break;
		k = (start + i) % AHCI_MAX_SLOTS;
		if (!(pend & 1u << k) || p->slot[k].active)
			continue;
		p->issued |= 1u << k;
		port_issue(p, k);
		if (!p->halted)
			p->ccs = k;
	}
}

/* Stop the engine: forget every command (their completions go stale). */
static void port_stop(struct ahci_port *p)
{
	unsigned i;

	port_bump_gen(p);
	p->ci = p->sact = p->issued = 0;
	p->halted = false;
	p->ccs = 0;
	for (i = 0; i < AHCI_MAX_SLOTS; i++)
		if (!p->slot[i].active)
			slot_release(&p->slot[i]);
}

/* Stop the port and wait until its I/O is over (port lock not held). */
static void port_quiesce(struct ahci_port *p)
{
	pthread_mutex_lock(&p->lock);
	port_stop(p);
	pthread_mutex_unlock(&p->lock);
	if (p->blk)
		blk_drain(p->blk);
}

/* ---- port registers (port lock held) ---- */

static uint32_t port_read(struct ahci_port *p, unsigned off)
{
	uint32_t v;

	switch (off) {
	case AHCI_P_CLB:
		return (uint32_t)p->clb;
	case AHCI_P_CLBU:
		return (uint32_t)(p->clb >> 32);
	case AHCI_P_FB:
		return (uint32_t)p->fb;
	case AHCI_P_FBU:
		return (uint32_t)(p->fb >> 32);
	case AHCI_P_IS:
		return p->is;
	case AHCI_P_IE:
		return p->ie;
	case AHCI_P_CMD:
		v = p->cmd | p->ccs << AHCI_P_CMD_CCS_SHIFT;
		if ((p->cmd & AHCI_P_CMD_ST) || p->nactive)
			v |= AHCI_P_CMD_CR;
		if (p->cmd & AHCI_P_CMD_FRE)
			v |= AHCI_P_CMD_FR;
		return v;
	case AHCI_P_TFD:
		return p->tfd;
	case AHCI_P_SIG:
		return p->sig;
	case AHCI_P_SSTS:
		return p->ssts;
	case AHCI_P_SCTL:
		return p->sctl;
	case AHCI_P_SERR:
		return p->serr;
	case AHCI_P_SACT:
		return p->sact;
	case AHCI_P_CI:
		return p->ci;
	default:
		return 0;
	}
}

static void port_write_cmd(struct ahci_port *p, uint32_t val)
{
	const uint32_t rw = AHCI_P_CMD_ST | AHCI_P_CMD_FRE | AHCI_P_CMD_ATAPI |
			    AHCI_P_CMD_DLAE;
	uint32_t old = p->cmd;

	p->cmd = (old & ~rw) | (val & rw);
	if (val & AHCI_P_CMD_CLO) /* command list override */
		p->tfd &= ~(uint32_t)(ATA_S_BSY | ATA_S_DRQ);
	if ((old & AHCI_P_CMD_ST) && !(p->cmd & AHCI_P_CMD_ST))
		port_stop(p);
}

/* Returns true when the caller must drain the image (COMRESET). */
static bool port_write_sctl(struct ahci_port *p, uint32_t val)
{
	uint32_t old = p->sctl & AHCI_SCTL_DET_MASK;
	uint32_t det = val & AHCI_SCTL_DET_MASK;

	p->sctl = val & 0xfffu;
	if (det == AHCI_SCTL_DET_COMRESET || det == AHCI_SCTL_DET_DISABLE) {
		port_stop(p);
		p->ssts = det == AHCI_SCTL_DET_DISABLE ? AHCI_SSTS_DET_OFFLINE
						       : 0;
		return true;
	}
	if (det == 0 &&
	    (old == AHCI_SCTL_DET_COMRESET || old == AHCI_SCTL_DET_DISABLE))
		link_reset(p);
	return false;
}

static bool port_write(struct ahci_port *p, unsigned off, uint32_t val)
{
	switch (off) {
	case AHCI_P_CLB:
		p->clb = (p->clb & ~0xffffffffull) |
			 (val & ~(uint32_t)(AHCI_CL_ALIGN - 1));
		break;
	case AHCI_P_CLBU:
		p->clb = (p->clb & 0xffffffffull) | (uint64_t)val << 32;
		break;
	case AHCI_P_FB:
		p->fb = (p->fb & ~0xffffffffull) |
			(val & ~(uint32_t)(AHCI_RFIS_ALIGN - 1));
		break;
	case AHCI_P_FBU:
		p->fb = (p->fb & 0xffffffffull) | (uint64_t)val << 32;
		break;
	case AHCI_P_IS:
		p->is &= ~val;
		port_irq_sync(p);
		break;
	case AHCI_P_IE:
		p->ie = val & AHCI_P_IX_MASK;
		port_irq_sync(p);
		break;
	case AHCI_P_CMD:
		port_write_cmd(p, val);
		port_process(p);
		break;
	case AHCI_P_SCTL:
		return port_write_sctl(p, val);
	case AHCI_P_SERR:
		p->serr &= ~val;
		break;
	case AHCI_P_SACT:
		if (p->cmd & AHCI_P_CMD_ST)
			p->sact |= val;
		break;
	case AHCI_P_CI:
		if (p->cmd & AHCI_P_CMD_ST) {
			p->ci |= val;
			port_process(p);
		}
		break;
	default:
		break; /* read-only or not implemented */
	}
	return false;
}

/* ---- HBA registers ---- */

static void hba_reset(struct ahci *h)
{
	unsigned i;

	for (i = 0; i < h->nports; i++) {
		struct ahci_port *p = &h->port[i];

		port_quiesce(p);
		pthread_mutex_lock(&p->lock);
		port_stop(p); /* again: another vCPU may have restarted it */
		p->is = p->ie = 0;
		p->cmd = AHCI_P_CMD_SUD | AHCI_P_CMD_POD;
		p->sctl = p->serr = 0;
		link_reset(p);
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_lock(&h->lock);
	h->ghc = AHCI_GHC_AE;
	h->is = h->pending = 0;
	hba_irq_update(h, false);
	pthread_mutex_unlock(&h->lock);
}

static uint32_t hba_read(struct ahci *h, unsigned off)
{
	uint32_t v;

	switch (off) {
	case AHCI_CAP:
		return AHCI_CAP_S64A | AHCI_CAP_SNCQ | AHCI_CAP_SCLO |
		       AHCI_SPD_GEN3 << AHCI_CAP_ISS_SHIFT | AHCI_CAP_SAM |
		       AHCI_CAP_PMD |
		       (AHCI_MAX_SLOTS - 1) << AHCI_CAP_NCS_SHIFT |
		       (h->nports - 1);
	case AHCI_GHC:
	case AHCI_IS:
		pthread_mutex_lock(&h->lock);
		v = off == AHCI_GHC ? h->ghc : h->is;
		pthread_mutex_unlock(&h->lock);
		return v;
	case AHCI_PI:
		return h->nports == 32 ? 0xffffffffu : (1u << h->nports) - 1;
	case AHCI_VS:
		return AHCI_VS_1_3;
	default:
		return 0;
	}
}

static void hba_write(struct ahci *h, unsigned off, uint32_t val)
{
	uint32_t old, again;

	switch (off) {
	case AHCI_GHC:
		if (val & AHCI_GHC_HR) {
			hba_reset(h);
			return;
		}
		pthread_mutex_lock(&h->lock);
		old = h->ghc;
		h->ghc = AHCI_GHC_AE | (val & AHCI_GHC_IE);
		hba_irq_update(h,
			       !(old & AHCI_GHC_IE) && (h->ghc & AHCI_GHC_IE));
		pthread_mutex_unlock(&h->lock);
		break;
	case AHCI_IS:
		pthread_mutex_lock(&h->lock);
		h->is &= ~val;
		/* ports whose status is still enabled raise it again */
		again = val & h->pending;
		h->is |= again;
		hba_irq_update(h, again != 0);
		pthread_mutex_unlock(&h->lock);
		break;
	default:
		break;
	}
}

/* One aligned dword of the ABAR. */
static uint32_t abar_read32(struct ahci *h, unsigned off)
{
	struct ahci_port *p;
	unsigned idx;
	uint32_t v;

	if (off < AHCI_PORT_BASE)
		return hba_read(h, off);
	idx = (off - AHCI_PORT_BASE) / AHCI_PORT_SIZE;
	if (idx >= h->nports)
		return 0;
	p = &h->port[idx];
	pthread_mutex_lock(&p->lock);
	v = port_read(p, (off - AHCI_PORT_BASE) % AHCI_PORT_SIZE);
	pthread_mutex_unlock(&p->lock);
	return v;
}

static void abar_write32(struct ahci *h, unsigned off, uint32_t val)
{
	struct ahci_port *p;
	unsigned idx;
	bool drain;

	if (off < AHCI_PORT_BASE) {
		hba_write(h, off, val);
		return;
	}
	idx = (off - AHCI_PORT_BASE) / AHCI_PORT_SIZE;
	if (idx >= h->nports)
		return;
	p = &h->port[idx];
	pthread_mutex_lock(&p->lock);
	drain = port_write(p, (off - AHCI_PORT_BASE) % AHCI_PORT_SIZE, val);
	pthread_mutex_unlock(&p->lock);
	if (drain && p->blk)
		blk_drain(p->blk);
}

static void ahci_barread(struct pci_dev *pd, unsigned idx, uint64_t off,
			 unsigned size, uint64_t *val)
{
	struct ahci *h = pd->softc;
	unsigned dw = (unsigned)off & ~3u, sh = ((unsigned)off & 3) * 8;
	uint64_t v;

	if (idx != AHCI_BAR || off >= AHCI_BAR_SIZE)
		return;
	if (size == 8 && !(off & 7)) {
		*val = abar_read32(h, dw) | (uint64_t)abar_read32(h, dw + 4)
						    << 32;
		return;
	}
	if (size > 4 || (off & 3) + size > 4) {
		*val = 0;
		return;
	}
	v = abar_read32(h, dw) >> sh;
	*val = size == 4 ? v : v & ((1ull << (8 * size)) - 1);
}

static void ahci_barwrite(struct pci_dev *pd, unsigned idx, uint64_t off,
			  unsigned size, uint64_t val)
{
	struct ahci *h = pd->softc;

	if (idx != AHCI_BAR || off >= AHCI_BAR_SIZE)
		return;
	if (size == 4 && !(off & 3)) {
		abar_write32(h, (unsigned)off, (uint32_t)val);
	} else if (size == 8 && !(off & 7)) {
		abar_write32(h, (unsigned)off, (uint32_t)val);
		abar_write32(h, (unsigned)off + 4, (uint32_t)(val >> 32));
	} else {
		log_ratelimited(AHCI_WARN_MS,
				"%s: ignored %u-byte register write at 0x%llx",
				pd->name, size, (unsigned long long)off);
	}
}

/* The guest switched between MSI and INTx. */
static void ahci_irq_changed(struct pci_dev *pd)
{
	struct ahci *h = pd->softc;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	hba_irq_update(h, true);
	pthread_mutex_unlock(&h->lock);
}

/* ---- configuration ---- */

/* ser / rev / model: printable ASCII, at most 'max' characters. */
static int port_ident(struct cfg_node *node, const char *key, char *out,
		      size_t max, const char *def)
{
	const char *v, *c;

	errno = 0;
	v = cfg_get(node, key);
	if (!v) {
		if (errno && errno != ENOENT)
			return -EINVAL; /* cfg_get() said why */
		v = def;
	}
	if (strlen(v) > max) {
		log_err("%s.%s: '%s' is longer than %zu characters",
			cfg_path(node), key, v, max);
		return -EINVAL;
	}
	for (c = v; *c; c++) {
		if (*c < 0x20 || *c > 0x7e) {
			log_err("%s.%s: only printable ASCII characters are "
				"allowed",
				cfg_path(node), key);
			return -EINVAL;
		}
	}
	snprintf(out, max + 1, "%s", v);
	return 0;
}

/* The default serial number: "KHYVE-" and a hash of the path. */
static void port_default_ser(char *out, size_t len, const char *path)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
	const char *c;

	for (c = path; *c; c++) {
		h ^= (uint8_t)*c;
		h *= 0x100000001b3ULL;
	}
	snprintf(out, len, "KHYVE-%04X-%04X-%04X", (unsigned)(h >> 48),
		 (unsigned)(h >> 32) & 0xffff, (unsigned)(h >> 16) & 0xffff);
}

/* Read port node 'node' and open its image. */
static int port_setup(struct ahci_port *p, struct cfg_node *node)
{
	char ser[AHCI_SER_MAX + 1];
	struct blk_opts o;
	const char *type;
	uint64_t nmrr;
	int rc;

	errno = 0;
	type = cfg_get(node, "type");
	if (!type && errno && errno != ENOENT)
		return -EINVAL;
	if (!type)
		type = "hd";
	if (strcmp(type, "hd") != 0 && strcmp(type, "cd") != 0) {
		log_err("%s.type: invalid value '%s' (hd or cd)",
			cfg_path(node), type);
		return -EINVAL;
	}
	p->atapi = type[0] == 'c';
	rc = blk_opts_from_cfg(node, &o);
	if (rc)
		return rc;
	if (!o.path || !*o.path) {
		log_err("%s.path: missing (the %s image)", cfg_path(node),
			p->atapi ? "CD/DVD" : "disk");
		return -EINVAL;
	}
	port_default_ser(ser, sizeof(ser), o.path);
	rc = port_ident(node, "ser", p->ser, AHCI_SER_MAX, ser);
	if (rc == 0)
		rc = port_ident(node, "rev", p->rev, AHCI_REV_MAX,
				AHCI_REV_DEFAULT);
	if (rc == 0)
		rc = port_ident(node, "model", p->model, AHCI_MODEL_MAX,
				p->atapi ? AHCI_CD_MODEL : AHCI_HD_MODEL);
	if (rc == 0)
		rc = cfg_get_u64(node, "nmrr", 0, 0, 0xffff, &nmrr);
	if (rc)
		return rc;
	p->nmrr = (uint16_t)nmrr;
	if (p->atapi)
		o.ro = true; /* a CD is read-only; the lock is shared */
	rc = blk_open(&o, 0, &p->blk);
	if (rc)
		return rc;
	p->ro = blk_readonly(p->blk);
	p->can_discard = !p->atapi && blk_can_discard(p->blk);
	p->unit = blk_lsector(p->blk);
	if (p->atapi) {
		p->lsector = p->psector = ATAPI_BLOCK;
		p->sectors = blk_size(p->blk) / ATAPI_BLOCK;
	} else {
		p->lsector = blk_lsector(p->blk);
		p->psector = blk_psector(p->blk);
		p->sectors = blk_size(p->blk) / p->lsector;
	}
	return 0;
}

static void ahci_free(struct ahci *h)
{
	unsigned i, k;

	for (i = 0; i < h->nports; i++) {
		struct ahci_port *p = &h->port[i];

		pthread_mutex_lock(&p->lock);
		p->closing = true;
		port_bump_gen(p);
		pthread_mutex_unlock(&p->lock);
		blk_close(p->blk); /* waits for every completion */
	}
	for (i = 0; i < h->nports; i++) {
		for (k = 0; k < AHCI_MAX_SLOTS; k++)
			slot_release(&h->port[i].slot[k]);
		pthread_mutex_destroy(&h->port[i].lock);
	}
	pthread_mutex_destroy(&h->lock);
	free(h->port);
	free(h);
}

/* The port.<n> nodes, by number; *nports = highest + 1 (at least 1). */
static int ahci_find_ports(struct cfg_node *node, struct cfg_node **pn,
			   unsigned *nports)
{
	struct cfg_node *ports = cfg_find(node, "port"), *c;
	const char *name;
	unsigned long n;
	char *end;

	*nports = 1;
	if (!ports && cfg_get_raw(node, "port")) {
		log_err("%s.port: must hold port.<n> nodes", cfg_path(node));
		return -EINVAL;
	}
	for (c = ports ? cfg_first_child(ports) : NULL; c; c = cfg_next(c)) {
		name = cfg_name(c);
		n = strtoul(name, &end, 10);
		if (cfg_is_leaf(c)) {
			log_err("%s: must be a node holding the port's keys "
				"(path, type, ...)",
				cfg_path(c));
			return -EINVAL;
		}
		if (*name < '0' || *name > '9' || *end ||
		    (name[0] == '0' && name[1]) || n >= AHCI_MAX_PORTS) {
			log_err("%s: not a port number (0-%d)", cfg_path(c),
				AHCI_MAX_PORTS - 1);
			return -EINVAL;
		}
		pn[n] = c;
		if (n + 1 > *nports)
			*nports = (unsigned)n + 1;
	}
	return 0;
}

static int ahci_init(struct pci_dev *pd, struct cfg_node *node)
{
	struct cfg_node *pn[AHCI_MAX_PORTS] = {NULL};
	struct ahci *h;
	unsigned i, k, nports;
	int rc;

	rc = ahci_find_ports(node, pn, &nports);
	if (rc)
		return rc;
	h = calloc(1, sizeof(*h));
	if (!h || !(h->port = calloc(nports, sizeof(*h->port)))) {
		free(h);
		log_err("%s: out of memory", pd->name);
		return -ENOMEM;
	}
	h->pd = pd;
	h->nports = nports;
	h->ghc = AHCI_GHC_AE;
	pthread_mutex_init(&h->lock, NULL);
	for (i = 0; i < nports; i++) {
		struct ahci_port *p = &h->port[i];

		p->hba = h;
		p->idx = i;
		pthread_mutex_init(&p->lock, NULL);
		for (k = 0; k < AHCI_MAX_SLOTS; k++) {
			p->slot[k].p = p;
			p->slot[k].idx = k;
			p->slot[k].br.done = ahci_io_done;
		}
	}
	for (i = 0; i < nports && rc == 0; i++)
		if (pn[i])
			rc = port_setup(&h->port[i], pn[i]);
	if (rc == 0) {
		pci_set_ids(pd, AHCI_PCI_VENDOR, AHCI_PCI_DEVICE,
			    AHCI_PCI_CLASS, AHCI_PCI_SUBCLASS, AHCI_PCI_PROGIF);
		rc = pci_bar_alloc(pd, AHCI_BAR, PCIBAR_MEM32, AHCI_BAR_SIZE,
				   false);
		if (rc == 0)
			rc = pci_msi_init(pd, 1);
		if (rc == 0)
			rc = pci_intx_init(pd);
		if (rc)
			log_errno(LOG_ERR, -rc, "%s: cannot set up", pd->name);
	}
	if (rc) {
		ahci_free(h);
		return rc;
	}
	for (i = 0; i < nports; i++) {
		struct ahci_port *p = &h->port[i];

		pthread_mutex_lock(&p->lock);
		p->cmd = AHCI_P_CMD_SUD | AHCI_P_CMD_POD;
		link_reset(p);
		pthread_mutex_unlock(&p->lock);
	}
	pd->softc = h;
	return 0;
}

static void ahci_fini(struct pci_dev *pd)
{
	struct ahci *h = pd->softc;

	if (!h)
		return;
	pd->softc = NULL;
	ahci_free(h);
}

/* ---- the command line ---- */

/* A bare "ser" (no value) would become "true": refuse those keys. */
static int ahci_check_bare(const char *model, unsigned port, const char *opts)
{
	static const char *const need[] = {"ser", "rev", "model", "nmrr"};
	const char *t = strchr(opts, ',');
	unsigned i;

	for (; t; t = strchr(t + 1, ',')) {
		size_t n = strcspn(t + 1, ",");

		for (i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
			if (strlen(need[i]) == n &&
			    strncmp(t + 1, need[i], n) == 0) {
				log_err("%s: port %u: '%s' needs a value "
					"(%s=...)",
					model, port, need[i], need[i]);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Port 'n' from "path[,opts]" of the given type. */
static int ahci_parse_port(const char *model, struct cfg_node *node, unsigned n,
			   const char *type, const char *seg)
{
	struct cfg_node *pn;
	char name[16];
	int rc;

	if (!*seg || *seg == ',') {
		log_err("%s: port %u: no image path", model, n);
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "port.%u", n);
	pn = cfg_create(node, name);
	if (!pn)
		return -EINVAL;
	rc = cfg_set(pn, "type", type);
	if (rc == 0)
		rc = blk_parse_legacy(pn, seg);
	if (rc == 0)
		rc = ahci_check_bare(model, n, seg);
	return rc < 0 ? -EINVAL : 0;
}

/*
 * "[hd:|cd:]path[,opts][,hd:|cd:path[,opts]]...": each "hd:" or "cd:"
 * item starts the next port (port.0, port.1, ...); the first item is a
 * port even without a prefix (a disk, then).  Options belong to the port
 * before them.
 */
static int ahci_parse_legacy(struct cfg_node *node, const char *opts)
{
	char *copy, *cur, *next, *c;
	const char *type;
	unsigned n = 0;
	int rc = 0;

	if (!opts || !*opts)
		return 0;
	copy = strdup(opts);
	if (!copy) {
		log_err("out of memory");
		return -ENOMEM;
	}
	for (cur = copy; cur && rc == 0; cur = next, n++) {
		next = NULL;
		for (c = strchr(cur, ','); c; c = strchr(c + 1, ',')) {
			if (strncmp(c + 1, "hd:", 3) == 0 ||
			    strncmp(c + 1, "cd:", 3) == 0) {
				*c = '\0';
				next = c + 1;
				break;
			}
		}
		if (n == AHCI_MAX_PORTS) {
			log_err("ahci: too many ports (at most %d)",
				AHCI_MAX_PORTS);
			rc = -EINVAL;
			break;
		}
		type = "hd";
		if (strncmp(cur, "hd:", 3) == 0 ||
		    strncmp(cur, "cd:", 3) == 0) {
			type = cur[0] == 'c' ? "cd" : "hd";
			cur += 3;
		}
		rc = ahci_parse_port("ahci", node, n, type, cur);
	}
	free(copy);
	return rc;
}

static int ahci_hd_parse_legacy(struct cfg_node *node, const char *opts)
{
	if (!opts || !*opts) {
		log_err("ahci-hd: a disk image is required (ahci-hd,PATH)");
		return -EINVAL;
	}
	return ahci_parse_port("ahci-hd", node, 0, "hd", opts);
}

static int ahci_cd_parse_legacy(struct cfg_node *node, const char *opts)
{
	if (!opts || !*opts) {
		log_err("ahci-cd: an image is required (ahci-cd,PATH)");
		return -EINVAL;
	}
	return ahci_parse_port("ahci-cd", node, 0, "cd", opts);
}

static const struct pci_devops ahci_pci = {
	.init = ahci_init,
	.barread = ahci_barread,
	.barwrite = ahci_barwrite,
	.irq_changed = ahci_irq_changed,
	.fini = ahci_fini,
};

/* clang-format off */
static const struct cfg_key ahci_keys[] = {
	{"port.*.type", CFG_STRING, "hd", "hd (SATA disk) or cd (ATAPI "
	 "CD/DVD)", 0, 0, 0},
	BLK_CFG_KEYS_AT("port.*."),
	{"port.*.nmrr", CFG_INT, "0", "nominal media rotation rate "
	 "(IDENTIFY word 217; 1 = SSD)", 0, 0xffff, 0},
	{"port.*.ser", CFG_STRING, NULL, "serial number (up to 20 "
	 "characters)", 0, 0, 0},
	{"port.*.rev", CFG_STRING, "001", "firmware revision (up to 8 "
	 "characters)", 0, 0, 0},
	{"port.*.model", CFG_STRING, NULL, "model number (up to 40 "
	 "characters)", 0, 0, 0},
	{"port.*.bootindex", CFG_INT, NULL, "boot order of the port's "
	 "device", 0, 65535, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};
/* clang-format on */

static const struct devmodel ahci_model = {
	.name = "ahci",
	.kind = DEVMODEL_PCI,
	.keys = ahci_keys,
	.parse_legacy = ahci_parse_legacy,
	.pci = &ahci_pci,
};
DEVMODEL_SET(ahci_model);

static const struct devmodel ahci_hd_model = {
	.name = "ahci-hd",
	.kind = DEVMODEL_PCI,
	.alias_of = "ahci",
	.parse_legacy = ahci_hd_parse_legacy,
	.pci = &ahci_pci,
};
DEVMODEL_SET(ahci_hd_model);

static const struct devmodel ahci_cd_model = {
	.name = "ahci-cd",
	.kind = DEVMODEL_PCI,
	.alias_of = "ahci",
	.parse_legacy = ahci_cd_parse_legacy,
	.pci = &ahci_pci,
};
DEVMODEL_SET(ahci_cd_model);
