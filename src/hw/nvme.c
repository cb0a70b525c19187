/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The NVMe controller, "-s N,nvme,devpath|ram=MiB[,opts]" (bhyve's nvme):
 * one namespace (NSID 1) backed by the block layer, or by host memory with
 * ram=MiB.  NVM Express Base Specification 1.4; constants in nvme.h.
 *
 * What the guest sees: PCI 0xfb5d/0x0a0a, class 01/08/02; BAR0 (64-bit)
 * holds the registers and the doorbells (CAP.DSTRD 0), BAR4 the MSI-X
 * table (0x0) and PBA (0x800) with maxq + 1 vectors; INTx as a fallback
 * (INTMS/INTMC honoured).  Admin commands: create/delete I/O SQ/CQ,
 * Identify (CNS 0, 1, 2, 3), Get Log Page (error, SMART, firmware slot),
 * Get/Set Features, Async Event Request (held until an event), Abort
 * (never aborts: DW0 bit 0 = 1), Doorbell Buffer Config.  I/O commands:
 * Read, Write (FUA honoured), Flush, Write Zeroes, Dataset Management
 * (deallocate -> discard, per dsm=).  PRP1/PRP2 and PRP lists at the page
 * size of CC.MPS (4 KiB to 64 KiB), MDTS 2 MiB.
 *
 * Keys: maxq (I/O queue pairs, at most 16 as bhyve), qsz (CAP.MQES + 1),
 * ioslots (commands in flight per submission queue), sectsz (512, 4096,
 * 8192; default the image's logical sector, 4096 for ram=), ser (default
 * "NVME-<slot>-<func>" as bhyve), eui64 (default: a hash of the VM name
 * and the PCI address), dsm (auto: deallocate offered when the image can
 * punch holes), plus the block keys (blk.h).
 *
 * Threads: register and doorbell writes arrive on vCPU threads; admin
 * commands run there, synchronously.  I/O submission queues are read on
 * whichever thread noticed new entries: the vCPU writing the doorbell, the
 * event-loop thread when the doorbell is an ioeventfd, or a block worker
 * whose completion freed a slot.  Block requests complete on the image's
 * worker threads, which post the completion entry and raise that CQ's
 * MSI-X vector.  A RAM namespace runs its I/O inline on the submitting
 * thread.
 *
 * Doorbells and ioeventfd: a KVM ioeventfd signals a write but drops the
 * value, and an SQ tail doorbell is all value.  So SQ tail doorbells
 * become ioeventfds only once the guest has set up shadow doorbells
 * (Doorbell Buffer Config, OACS bit 8, as Linux does for emulated
 * controllers): the tail is then read from the shadow buffer and the
 * EventIdx buffer tells the guest when a doorbell write is needed at all.
 * Without shadow doorbells (or without ctx->ioeventfd, in device tests)
 * doorbell writes are ordinary BAR writes.
 *
 * Locks, in order: nv->lock (registers, features, queue creation and
 * deletion, admin queue, async events; held while admin commands run) ->
 * sq->lock (fetching from one I/O SQ) -> cq->lock (posting to one CQ, its
 * backlog, its interrupt) -> sq->pool_lock (the SQ's free slots and count
 * of block requests) -> nv->intx_lock -> the PCI irq_lock; the block
 * layer's lock is a leaf.  Completion hooks never take nv->lock, so a
 * queue deletion or controller reset can wait for in-flight I/O while
 * holding it.  Async events raised outside nv->lock are stashed
 * atomically and delivered by whoever holds it next.
 *
 * Full completion queues: a completion that finds its CQ full waits on the
 * CQ's backlog, holding its slot, and is posted when the guest moves the
 * head.  Reset (CC.EN 1 -> 0): every CQ stops posting, every SQ stops
 * fetching, in-flight block requests are waited for (their completions
 * are dropped), then the queues are freed.
 *
 * Hostile guests get NVMe status codes (Invalid Field, Invalid Opcode,
 * Invalid Namespace, LBA Out of Range, Invalid Queue Identifier, Invalid
 * Queue Size, Completion Queue Invalid, Invalid PRP Offset, Data Transfer
 * Error...) and never a crash; an invalid doorbell write is ignored with a
 * rate-limited warning and an Error async event; a bad admin queue set-up
 * sets CSTS.CFS.
 */
#include "hw/nvme.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "block/blk.h"
#include "core/gmem.h"
#include "event/event.h"
#include "lib/log.h"
#include "pci/pci.h"

#define NVME_MAXQ_LIMIT 16
#define NVME_DEF_QSZ 2048
#define NVME_MAX_QSZ 65536
#define NVME_DEF_IOSLOTS 8
/* Every slot of every queue may hold one block request. */
#define NVME_MAX_IOSLOTS (BLK_MAXREQ / NVME_MAXQ_LIMIT)
#define NVME_RAM_MAX_MIB (1u << 20) /* 1 TiB */
#define NVME_MAX_IOV (NVME_MAX_XFER / 4096 + 1)
#define NVME_DSM_MAX 256
#define NVME_CAP_TO 30 /* 15 s, in 500 ms units */
#define NVME_WARN_MS 5000
#define NVME_MODEL "bhyve-NVMe"
#define NVME_FW_REV "1.0"

/* Not statuses: the request went to the block layer / an AER is held. */
#define NVME_ASYNC 0xffffu
#define NVME_HELD 0xfffeu

/* Stashed async events (bits of nv->ae_stash). */
#define NVME_STASH_BAD_DB_REG 0x1u
#define NVME_STASH_BAD_DB_VALUE 0x2u
#define NVME_AE_TYPES 3

enum nvme_dsm_mode { NVME_DSM_AUTO, NVME_DSM_ENABLE, NVME_DSM_DISABLE };

struct nvme;
struct nvme_sq;

struct nvme_range {
	uint64_t off, len; /* bytes */
};

/* One I/O command slot of a submission queue. */
struct nvme_req {
	struct blk_req br; /* first: done() gets &br */
	struct nvme_sq *sq;
	struct nvme_req *next; /* free list, or the CQ backlog */
	uint16_t cid;
	uint16_t status; /* the completion to post */
	bool is_read, is_write;
	bool flush_after; /* FUA or write cache off: a FLUSH follows */
	uint64_t bytes;
	unsigned nrange, range; /* deallocate ranges, current */
	union {
		struct iovec iov[NVME_MAX_IOV];
		struct nvme_range rng[NVME_DSM_MAX];
	} u;
};

struct nvme_sq {
	struct nvme *nv;
	pthread_mutex_t lock;	   /* live, tail, head writes, fetching */
	pthread_mutex_t pool_lock; /* free, nblk */
	pthread_cond_t idle;	   /* nblk reached 0 */
	uint16_t qid, cqid;
	bool live; /* written under lock; atomic reads */
	uint32_t size;
	uint8_t *ring;
	uint32_t head; /* next entry to fetch; atomic reads (SQHD) */
	uint32_t tail;
	struct nvme_req *reqs, *free;
	unsigned nblk; /* requests in the block layer */
	int kick_fd;   /* ioeventfd of the tail doorbell, or -1 */
	struct event *kick_ev;
};

struct nvme_cq {
	pthread_mutex_t lock;
	uint16_t qid, iv;
	bool live, ien, phase;
	uint32_t size, head, tail;
	uint8_t *ring;
	unsigned nsq;			    /* SQs using it (nv->lock) */
	struct nvme_req *bl_head, *bl_tail; /* completions waiting for room */
};

struct nvme {
	struct pci_dev *pd;
	pthread_mutex_t lock;

	/* Configuration, fixed after init. */
	unsigned maxq, qsz, ioslots;
	unsigned lbashift;
	uint64_t nlba;
	bool ro, oncs_dsm, can_discard;
	struct blk *blk; /* NULL for a RAM namespace */
	uint8_t *ram;
	uint64_t ram_bytes;
	char sn[21];
	uint64_t eui64;
	bool kick_ok; /* ioeventfd and an event loop exist */

	/* Registers (lock). */
	uint32_t cc, csts, aqa, intms;
	uint64_t asq, acq;
	uint64_t page; /* memory page size while enabled */

	struct nvme_sq sq[NVME_MAXQ_LIMIT + 1];
	struct nvme_cq cq[NVME_MAXQ_LIMIT + 1];
	unsigned nsq_alloc, ncq_alloc; /* Number of Queues feature */

	/* Features (lock; wce also read atomically by I/O). */
	uint32_t f_arb, f_power, f_temp, f_errrec, f_coalesce, f_atomic, f_aec;
	bool wce;

	/* Async events (lock). */
	uint16_t aer_cid[NVME_AER_MAX];
	unsigned naer;
	bool ae_pending[NVME_AE_TYPES], ae_masked[NVME_AE_TYPES];
	uint8_t ae_info[NVME_AE_TYPES], ae_lid[NVME_AE_TYPES];
	uint32_t ae_stash; /* atomic */

	/* Shadow doorbells: set under lock, read atomically. */
	bool dbbuf;
	uint32_t *db_shadow, *db_ei;

	/* Doorbell ioeventfds (lock). */
	bool bar0_mapped, iofd_on;
	uint64_t bar0, iofd_addr;

	/* INTx: CQs with unread entries (bit per qid). */
	pthread_mutex_t intx_lock;
	uint32_t intx_pending;

	/* SMART counters (atomic). */
	uint64_t rd_bytes, wr_bytes, rd_cmds, wr_cmds;

	/* Admin scratch (lock). */
	struct iovec aiov[NVME_MAX_IOV];
	uint8_t abuf[NVME_IDENTIFY_SIZE];
};

/* A decoded submission queue entry. */
struct nvme_cmd {
	uint8_t opc, fuse, psdt;
	uint16_t cid;
	uint32_t nsid;
	uint64_t prp1, prp2;
	uint32_t cdw[16]; /* indexed as the spec's dwords */
};

/* ---- little helpers ---- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Copy 's' into an n-byte field padded with spaces (Identify strings). */
static void put_str(uint8_t *dst, const char *s, size_t n)
{
	size_t l = strnlen(s, n);

	memset(dst, ' ', n);
	memcpy(dst, s, l);
}

static const struct gmem *nv_mem(const struct nvme *nv)
{
	return nv->pd->ctx->mem;
}

static void cmd_decode(const uint8_t *e, struct nvme_cmd *c)
{
	unsigned i;

	for (i = 0; i < 16; i++)
		c->cdw[i] = get32(e + 4 * i);
	c->opc = (uint8_t)c->cdw[0];
	c->fuse = (uint8_t)((c->cdw[0] >> 8) & 3);
	c->psdt = (uint8_t)((c->cdw[0] >> 14) & 3);
	c->cid = (uint16_t)(c->cdw[0] >> 16);
	c->nsid = c->cdw[1];
	c->prp1 = c->cdw[6] | (uint64_t)c->cdw[7] << 32;
	c->prp2 = c->cdw[8] | (uint64_t)c->cdw[9] << 32;
}

/* Copy 'len' bytes of 'src' into the iovecs, then zero what is left. */
static void iov_fill(const struct iovec *iov, unsigned n, const uint8_t *src,
		     size_t len)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		size_t l = iov[i].iov_len, c = l < len ? l : len;

		memcpy(iov[i].iov_base, src, c);
		memset((uint8_t *)iov[i].iov_base + c, 0, l - c);
		src += c;
		len -= c;
	}
}

/* Copy the first 'len' bytes of the iovecs into 'dst'. */
static void iov_gather(const struct iovec *iov, unsigned n, uint8_t *dst,
		       size_t len)
{
	unsigned i;

	for (i = 0; i < n && len; i++) {
		size_t c = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(dst, iov[i].iov_base, c);
		dst += c;
		len -= c;
	}
}

/* ---- PRPs (§4.3) ---- */

struct nvme_sgl {
	struct iovec *iov;
	unsigned n, max;
};

static uint16_t sgl_add(const struct nvme *nv, struct nvme_sgl *s, uint64_t gpa,
			uint64_t len)
{
	uint8_t *p = gmem_ptr(nv_mem(nv), gpa, len);
	struct iovec *last = s->n ? &s->iov[s->n - 1] : NULL;

	if (!p)
		return NVME_SC_DATA_XFER_ERROR;
	if (last && (uint8_t *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
		return NVME_SC_SUCCESS;
	}
	if (s->n == s->max)
		return NVME_SC_DATA_XFER_ERROR;
	s->iov[s->n].iov_base = p;
	s->iov[s->n].iov_len = len;
	s->n++;
	return NVME_SC_SUCCESS;
}

/*
 * 'len' more bytes described by the PRP list at 'list'.  The last entry of
 * a list page points at the next list page when more than one page of
 * data remains.  Chain hops are bounded so a list pointing at itself ends.
 */
static uint16_t prp_list(const struct nvme *nv, struct nvme_sgl *s,
			 uint64_t list, uint64_t len)
{
	uint64_t ps = nv->page, e, chunk;
	unsigned hops = 0;
	uint16_t st;

	if (list & 7)
		return NVME_SC_INVALID_PRP_OFFSET;
	while (len) {
		bool last_slot = (ps - (list & (ps - 1))) / 8 == 1;

		if (gmem_read(nv_mem(nv), list, &e, sizeof(e)))
			return NVME_SC_DATA_XFER_ERROR;
		e = le64toh(e);
		if (last_slot && len > ps) {
			if (e & 7)
				return NVME_SC_INVALID_PRP_OFFSET;
			if (++hops > NVME_MAX_IOV)
				return NVME_SC_DATA_XFER_ERROR;
			list = e;
			continue;
		}
		if (e & (ps - 1))
			return NVME_SC_INVALID_PRP_OFFSET;
		chunk = len < ps ? len : ps;
		st = sgl_add(nv, s, e, chunk);
		if (st)
			return st;
		len -= chunk;
		list += 8;
	}
	return NVME_SC_SUCCESS;
}

/*
 * Describe the 'len' bytes of data at prp1/prp2 as at most 'max' iovecs
 * into guest RAM.  Returns a status (*cnt set on success).
 */
static uint16_t prp_map(const struct nvme *nv, uint64_t prp1, uint64_t prp2,
			uint64_t len, struct iovec *iov, unsigned max,
			unsigned *cnt)
{
	struct nvme_sgl s = {iov, 0, max};
	uint64_t ps = nv->page, chunk;
	uint16_t st;

	*cnt = 0;
	if (len == 0)
		return NVME_SC_SUCCESS;
	if (prp1 & 3)
		return NVME_SC_INVALID_PRP_OFFSET;
	chunk = ps - (prp1 & (ps - 1));
	if (chunk > len)
		chunk = len;
	st = sgl_add(nv, &s, prp1, chunk);
	len -= chunk;
	if (st == NVME_SC_SUCCESS && len > 0 && len <= ps)
		st = (prp2 & (ps - 1)) ? NVME_SC_INVALID_PRP_OFFSET
				       : sgl_add(nv, &s, prp2, len);
	else if (st == NVME_SC_SUCCESS && len > ps)
		st = prp_list(nv, &s, prp2, len);
	*cnt = s.n;
	return st;
}

/* ---- interrupts ---- */

/* intx_lock held. */
static void intx_eval_locked(struct nvme *nv)
{
	struct pci_dev *pd = nv->pd;
	bool want = nv->intx_pending && !pci_msix_enabled(pd) &&
		    !(__atomic_load_n(&nv->intms, __ATOMIC_RELAXED) & 1);

	if (want)
		pci_intx_assert(pd);
	else
		pci_intx_deassert(pd);
}

static void intx_eval(struct nvme *nv)
{
	pthread_mutex_lock(&nv->intx_lock);
	intx_eval_locked(nv);
	pthread_mutex_unlock(&nv->intx_lock);
}

/* The CQ has nothing unread any more (cq->lock held or CQ dead). */
static void intx_clear(struct nvme *nv, unsigned qid)
{
	pthread_mutex_lock(&nv->intx_lock);
	nv->intx_pending &= ~(1u << qid);
	intx_eval_locked(nv);
	pthread_mutex_unlock(&nv->intx_lock);
}

/* Entries were posted to 'cq' (cq->lock held). */
static void cq_irq(struct nvme *nv, struct nvme_cq *cq)
{
	if (!cq->ien)
		return;
	if (pci_msix_enabled(nv->pd)) {
		(void)pci_irq_notify(nv->pd, cq->iv);
		return;
	}
	pthread_mutex_lock(&nv->intx_lock);
	nv->intx_pending |= 1u << cq->qid;
	intx_eval_locked(nv);
	pthread_mutex_unlock(&nv->intx_lock);
}

/* ---- shadow doorbells ---- */

static bool dbbuf_on(struct nvme *nv)
{
	return __atomic_load_n(&nv->dbbuf, __ATOMIC_ACQUIRE);
}

static uint32_t shadow_get(struct nvme *nv, unsigned idx)
{
	uint32_t *p = __atomic_load_n(&nv->db_shadow, __ATOMIC_ACQUIRE);

	return le32toh(__atomic_load_n(&p[idx], __ATOMIC_ACQUIRE));
}

static void shadow_set(struct nvme *nv, unsigned idx, uint32_t v)
{
	uint32_t *p = __atomic_load_n(&nv->db_shadow, __ATOMIC_ACQUIRE);

	__atomic_store_n(&p[idx], htole32(v), __ATOMIC_RELEASE);
}

static void ei_set(struct nvme *nv, unsigned idx, uint32_t v)
{
	uint32_t *p = __atomic_load_n(&nv->db_ei, __ATOMIC_ACQUIRE);

	__atomic_store_n(&p[idx], htole32(v), __ATOMIC_RELEASE);
}

/* ---- completion queues ---- */

/* May the host move the head to 'h': not past the entries we posted. */
static bool cq_head_ok(const struct nvme_cq *cq, uint32_t h)
{
	uint32_t used = (cq->tail + cq->size - cq->head) % cq->size;

	return h < cq->size && (h + cq->size - cq->head) % cq->size <= used;
}

static bool cq_ring_full(const struct nvme_cq *cq)
{
	return (cq->tail + 1) % cq->size == cq->head;
}

/* Take the head from the shadow doorbell when it is sane (cq->lock). */
static void cq_shadow_head(struct nvme *nv, struct nvme_cq *cq)
{
	uint32_t h = shadow_get(nv, 2u * cq->qid + 1);

	if (cq_head_ok(cq, h))
		cq->head = h;
}

/* True when nothing can be posted now (cq->lock held). */
static bool cq_full(struct nvme *nv, struct nvme_cq *cq)
{
	if (!cq_ring_full(cq))
		return false;
	if (cq->qid == 0 || !dbbuf_on(nv))
		return true;
	cq_shadow_head(nv, cq);
	if (!cq_ring_full(cq))
		return false;
	/* ask for a doorbell write when the host next moves the head */
	ei_set(nv, 2u * cq->qid + 1, cq->head);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	cq_shadow_head(nv, cq);
	return cq_ring_full(cq);
}

/* Errors a retry cannot fix carry Do Not Retry. */
static uint16_t with_dnr(uint16_t st)
{
	if (st == NVME_SC_SUCCESS || st == NVME_SC_CMD_INTERRUPTED ||
	    NVME_SCT(st) == 2)
		return st;
	return (uint16_t)(st | NVME_DNR);
}

/* Write one entry, phase tag last (cq->lock held, room checked). */
static void cq_write(struct nvme_cq *cq, uint16_t sqid, uint32_t sqhd,
		     uint16_t cid, uint16_t status, uint32_t dw0)
{
	uint8_t *e = cq->ring + (size_t)cq->tail * NVME_CQE_SIZE;
	uint32_t dw3 = cid | (uint32_t)cq->phase << 16 |
		       (uint32_t)with_dnr(status) << 17;

	put32(e, dw0);
	put32(e + 4, 0);
	put32(e + 8, (sqhd & 0xffff) | (uint32_t)sqid << 16);
	__atomic_store_n((uint32_t *)(e + 12), htole32(dw3), __ATOMIC_RELEASE);
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase = !cq->phase;
	}
}

/* ---- submission queue slots ---- */

static struct nvme_req *pool_get(struct nvme_sq *sq)
{
	struct nvme_req *r;

	pthread_mutex_lock(&sq->pool_lock);
	r = sq->free;
	if (r)
		sq->free = r->next;
	pthread_mutex_unlock(&sq->pool_lock);
	return r;
}

static void pool_put(struct nvme_sq *sq, struct nvme_req *r)
{
	pthread_mutex_lock(&sq->pool_lock);
	r->next = sq->free;
	sq->free = r;
	pthread_mutex_unlock(&sq->pool_lock);
}

static void nblk_add(struct nvme_sq *sq, int d)
{
	pthread_mutex_lock(&sq->pool_lock);
	sq->nblk = (unsigned)((int)sq->nblk + d);
	if (sq->nblk == 0)
		pthread_cond_broadcast(&sq->idle);
	pthread_mutex_unlock(&sq->pool_lock);
}

static uint32_t sq_head(struct nvme_sq *sq)
{
	return __atomic_load_n(&sq->head, __ATOMIC_RELAXED);
}

/*
 * Post the backlog while there is room (cq->lock held); the slots go back
 * to their SQs, which are added to *kick.  True if anything was posted.
 */
static bool cq_flush(struct nvme *nv, struct nvme_cq *cq, uint32_t *kick)
{
	struct nvme_req *r;
	bool posted = false;

	while ((r = cq->bl_head) != NULL && !cq_full(nv, cq)) {
		cq->bl_head = r->next;
		if (!cq->bl_head)
			cq->bl_tail = NULL;
		cq_write(cq, r->sq->qid, sq_head(r->sq), r->cid, r->status, 0);
		*kick |= 1u << r->sq->qid;
		pool_put(r->sq, r);
		posted = true;
	}
	return posted;
}

static void io_account(struct nvme *nv, const struct nvme_req *r)
{
	if (r->is_read) {
		__atomic_fetch_add(&nv->rd_bytes, r->bytes, __ATOMIC_RELAXED);
		__atomic_fetch_add(&nv->rd_cmds, 1, __ATOMIC_RELAXED);
	} else if (r->is_write) {
		__atomic_fetch_add(&nv->wr_bytes, r->bytes, __ATOMIC_RELAXED);
		__atomic_fetch_add(&nv->wr_cmds, 1, __ATOMIC_RELAXED);
	}
}

/*
 * Complete I/O command 'r' with 'status': it joins its CQ's backlog, which
 * is posted as far as there is room.  A dead CQ (reset) drops it.  SQs
 * that got slots back are added to *kick.  No lock held.
 */
static void req_finish(struct nvme_req *r, uint16_t status, uint32_t *kick)
{
	struct nvme_sq *sq = r->sq;
	struct nvme *nv = sq->nv;
	struct nvme_cq *cq = &nv->cq[sq->cqid];

	if (status == NVME_SC_SUCCESS)
		io_account(nv, r);
	r->status = status;
	r->next = NULL;
	pthread_mutex_lock(&cq->lock);
	if (!cq->live) {
		pool_put(sq, r);
		*kick |= 1u << sq->qid;
	} else {
		if (cq->bl_tail)
			cq->bl_tail->next = r;
		else
			cq->bl_head = r;
		cq->bl_tail = r;
		if (cq_flush(nv, cq, kick))
			cq_irq(nv, cq);
	}
	pthread_mutex_unlock(&cq->lock);
}

/* ---- async events (§5.2) ---- */

/* Complete held AERs for unmasked pending events (nv->lock held). */
static void ae_deliver(struct nvme *nv)
{
	struct nvme_cq *cq = &nv->cq[0];
	unsigned t;

	for (t = 0; t < NVME_AE_TYPES && nv->naer; t++) {
		if (!nv->ae_pending[t] || nv->ae_masked[t])
			continue;
		pthread_mutex_lock(&cq->lock);
		if (!cq->live || cq_full(nv, cq)) {
			pthread_mutex_unlock(&cq->lock);
			return;
		}
		cq_write(cq, 0, nv->sq[0].head, nv->aer_cid[--nv->naer],
			 NVME_SC_SUCCESS,
			 t | (uint32_t)nv->ae_info[t] << 8 |
				 (uint32_t)nv->ae_lid[t] << 16);
		cq_irq(nv, cq);
		pthread_mutex_unlock(&cq->lock);
		nv->ae_pending[t] = false;
		nv->ae_masked[t] = true; /* until the log page is read */
	}
}

/* Turn stashed events into pending ones and deliver (nv->lock held). */
static void ae_collect(struct nvme *nv)
{
	uint32_t s = __atomic_exchange_n(&nv->ae_stash, 0, __ATOMIC_ACQ_REL);

	if (!(nv->csts & NVME_CSTS_RDY))
		return;
	if ((s & (NVME_STASH_BAD_DB_REG | NVME_STASH_BAD_DB_VALUE)) &&
	    !nv->ae_pending[NVME_AE_TYPE_ERROR] &&
	    !nv->ae_masked[NVME_AE_TYPE_ERROR]) {
		nv->ae_pending[NVME_AE_TYPE_ERROR] = true;
		nv->ae_info[NVME_AE_TYPE_ERROR] =
			(s & NVME_STASH_BAD_DB_VALUE)
				? NVME_AE_INFO_BAD_DB_VALUE
				: NVME_AE_INFO_BAD_DB_REG;
		nv->ae_lid[NVME_AE_TYPE_ERROR] = NVME_LOG_ERROR;
	}
	ae_deliver(nv);
}

/*
 * Raise an Error event from any thread, holding no lock: stash it and
 * deliver now if nv->lock is free, else its holder will.
 */
static void ae_raise(struct nvme *nv, uint32_t stash_bit)
{
	__atomic_fetch_or(&nv->ae_stash, stash_bit, __ATOMIC_ACQ_REL);
	if (pthread_mutex_trylock(&nv->lock) != 0)
		return;
	ae_collect(nv);
	pthread_mutex_unlock(&nv->lock);
}

/* ---- I/O commands ---- */

static uint16_t lba_range(const struct nvme *nv, uint64_t slba, uint64_t nlb,
			  uint64_t *off, uint64_t *len)
{
	if (slba >= nv->nlba || nlb > nv->nlba - slba)
		return NVME_SC_LBA_RANGE;
	*off = slba << nv->lbashift;
	*len = nlb << nv->lbashift;
	return NVME_SC_SUCCESS;
}

static bool want_flush(struct nvme *nv, const struct nvme_cmd *c)
{
	return nv->blk && ((c->cdw[12] >> 30 & 1) ||
			   !__atomic_load_n(&nv->wce, __ATOMIC_RELAXED));
}

static uint16_t io_rw(struct nvme *nv, struct nvme_req *r,
		      const struct nvme_cmd *c)
{
	bool wr = c->opc == NVME_IO_WRITE;
	uint64_t slba = c->cdw[10] | (uint64_t)c->cdw[11] << 32;
	uint64_t nlb = (c->cdw[12] & 0xffff) + 1, off, len;
	unsigned n;
	uint16_t st;

	if (c->nsid != 1)
		return NVME_SC_INVALID_NS;
	st = lba_range(nv, slba, nlb, &off, &len);
	if (st)
		return st;
	if (len > NVME_MAX_XFER)
		return NVME_SC_INVALID_FIELD;
	if (wr && nv->ro)
		return NVME_SC_NS_WRITE_PROTECTED;
	st = prp_map(nv, c->prp1, c->prp2, len, r->u.iov, NVME_MAX_IOV, &n);
	if (st)
		return st;
	r->br.op = wr ? BLK_WRITE : BLK_READ;
	r->br.offset = off;
	r->br.iov = r->u.iov;
	r->br.iovcnt = n;
	r->bytes = len;
	r->is_read = !wr;
	r->is_write = wr;
	r->flush_after = wr && want_flush(nv, c);
	return NVME_ASYNC;
}

static uint16_t io_write_zeroes(struct nvme *nv, struct nvme_req *r,
				const struct nvme_cmd *c)
{
	uint64_t slba = c->cdw[10] | (uint64_t)c->cdw[11] << 32;
	uint16_t st;

	if (c->nsid != 1)
		return NVME_SC_INVALID_NS;
	st = lba_range(nv, slba, (c->cdw[12] & 0xffff) + 1, &r->br.offset,
		       &r->br.len);
	if (st)
		return st;
	if (nv->ro)
		return NVME_SC_NS_WRITE_PROTECTED;
	r->br.op = BLK_WRITE_ZEROES;
	r->flush_after = want_flush(nv, c);
	return NVME_ASYNC;
}

static uint16_t io_dsm(struct nvme *nv, struct nvme_req *r,
		       const struct nvme_cmd *c)
{
	unsigned nr = (c->cdw[10] & 0xff) + 1, i, k = 0, n;
	uint8_t buf[NVME_DSM_MAX * 16];
	uint64_t off, len;
	uint16_t st;

	if (!nv->oncs_dsm)
		return NVME_SC_INVALID_OPCODE;
	if (c->nsid != 1)
		return NVME_SC_INVALID_NS;
	if (!(c->cdw[11] & 4))
		return NVME_SC_SUCCESS; /* only hints (IDR, IDW) */
	if (nv->ro)
		return NVME_SC_NS_WRITE_PROTECTED;
	st = prp_map(nv, c->prp1, c->prp2, nr * 16u, r->u.iov, NVME_MAX_IOV,
		     &n);
	if (st)
		return st;
	iov_gather(r->u.iov, n, buf, nr * 16u);
	for (i = 0; i < nr; i++) {
		uint32_t nlb = get32(buf + 16 * i + 4);

		if (nlb == 0)
			continue;
		st = lba_range(nv, get64(buf + 16 * i + 8), nlb, &off, &len);
		if (st)
			return st;
		r->u.rng[k].off = off;
		r->u.rng[k].len = len;
		k++;
	}
	/* Deallocation is advisory: nothing to do is fine too. */
	if (k == 0 || (nv->blk && !nv->can_discard))
		return NVME_SC_SUCCESS;
	r->nrange = k;
	r->range = 0;
	r->br.op = BLK_DISCARD;
	r->br.offset = r->u.rng[0].off;
	r->br.len = r->u.rng[0].len;
	return NVME_ASYNC;
}

/* Decode an I/O command into r->br.  A status, or NVME_ASYNC. */
static uint16_t io_prepare(struct nvme *nv, struct nvme_req *r,
			   const struct nvme_cmd *c)
{
	r->br.iov = NULL;
	r->br.iovcnt = 0;
	r->br.offset = 0;
	r->br.len = 0;
	r->flush_after = false;
	r->nrange = r->range = 0;
	r->bytes = 0;
	r->is_read = r->is_write = false;
	if (c->fuse || c->psdt) {
		log_ratelimited(NVME_WARN_MS,
				"%s: fused or SGL I/O command refused",
				nv->pd->name);
		return NVME_SC_INVALID_FIELD;
	}
	switch (c->opc) {
	case NVME_IO_FLUSH:
		if (c->nsid != 1 && c->nsid != 0xffffffffu)
			return NVME_SC_INVALID_NS;
		r->br.op = BLK_FLUSH;
		return NVME_ASYNC;
	case NVME_IO_READ:
	case NVME_IO_WRITE:
		return io_rw(nv, r, c);
	case NVME_IO_WRITE_ZEROES:
		return io_write_zeroes(nv, r, c);
	case NVME_IO_DSM:
		return io_dsm(nv, r, c);
	default:
		return NVME_SC_INVALID_OPCODE;
	}
}

/* A RAM namespace: the whole request now. */
static uint16_t ram_exec(struct nvme *nv, struct nvme_req *r)
{
	uint8_t *p = nv->ram + r->br.offset;
	unsigned i;

	switch (r->br.op) {
	case BLK_READ:
		iov_fill(r->br.iov, r->br.iovcnt, p, r->bytes);
		break;
	case BLK_WRITE:
		iov_gather(r->br.iov, r->br.iovcnt, p, r->bytes);
		break;
	case BLK_WRITE_ZEROES:
		memset(p, 0, r->br.len);
		break;
	case BLK_DISCARD:
		for (i = 0; i < r->nrange; i++)
			memset(nv->ram + r->u.rng[i].off, 0, r->u.rng[i].len);
		break;
	case BLK_FLUSH:
		break;
	}
	return NVME_SC_SUCCESS;
}

static uint16_t io_start(struct nvme *nv, struct nvme_req *r)
{
	int rc;

	if (!nv->blk)
		return ram_exec(nv, r);
	nblk_add(r->sq, 1);
	rc = blk_submit(nv->blk, &r->br);
	if (rc == 0)
		return NVME_ASYNC;
	nblk_add(r->sq, -1);
	log_ratelimited(NVME_WARN_MS, "%s: cannot queue a request: %s",
			nv->pd->name, strerror(-rc));
	return rc == -EAGAIN ? NVME_SC_CMD_INTERRUPTED : NVME_SC_INTERNAL;
}

/* Fetch and start the entry at the head (sq->lock held, 'r' free). */
static void sq_fetch(struct nvme *nv, struct nvme_sq *sq, struct nvme_req *r,
		     uint32_t *kick)
{
	uint8_t e[NVME_SQE_SIZE];
	struct nvme_cmd c;
	uint16_t st;

	memcpy(e, sq->ring + (size_t)sq->head * NVME_SQE_SIZE, sizeof(e));
	__atomic_store_n(&sq->head, (sq->head + 1) % sq->size,
			 __ATOMIC_RELAXED);
	cmd_decode(e, &c);
	r->cid = c.cid;
	st = io_prepare(nv, r, &c);
	if (st == NVME_ASYNC)
		st = io_start(nv, r);
	if (st != NVME_ASYNC)
		req_finish(r, st, kick);
}

/*
 * Fetch from I/O SQ 'sq' while it has entries and free slots.  With shadow
 * doorbells the tail comes from the shadow buffer, and the EventIdx entry
 * is moved to what we consumed (then the shadow is read again, so a tail
 * written meanwhile is not missed).  Returns the other SQs that got slots
 * back and need a run.
 */
static uint32_t sq_run(struct nvme_sq *sq)
{
	struct nvme *nv = sq->nv;
	unsigned sidx = 2u * sq->qid;
	uint32_t kick = 0, t;
	struct nvme_req *r;
	bool bad = false;

	pthread_mutex_lock(&sq->lock);
	while (sq->live) {
		if (dbbuf_on(nv)) {
			t = shadow_get(nv, sidx);
			if (t >= sq->size) {
				bad = true;
				break;
			}
			sq->tail = t;
		}
		while (sq->head != sq->tail && (r = pool_get(sq)) != NULL)
			sq_fetch(nv, sq, r, &kick);
		if (sq->head != sq->tail || !dbbuf_on(nv))
			break;
		ei_set(nv, sidx, sq->tail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (shadow_get(nv, sidx) == sq->tail)
			break;
	}
	pthread_mutex_unlock(&sq->lock);
	if (bad) {
		log_ratelimited(NVME_WARN_MS,
				"%s: shadow SQ %u tail beyond the queue size; "
				"ignored",
				nv->pd->name, sq->qid);
		ae_raise(nv, NVME_STASH_BAD_DB_VALUE);
	}
	return kick & ~(1u << sq->qid);
}

/* Run every I/O SQ in 'mask' (and those their runs free slots for). */
static void sq_kick(struct nvme *nv, uint32_t mask)
{
	unsigned q;

	while (mask) {
		q = (unsigned)__builtin_ctz(mask);
		mask &= mask - 1;
		if (q >= 1 && q <= nv->maxq)
			mask |= sq_run(&nv->sq[q]);
	}
}

/* Next block-layer step: 1 (resubmit), 0 (finished), -1 (SQ deleted). */
static int req_next_step(struct nvme_req *r)
{
	bool more = r->range + 1 < r->nrange || r->flush_after;

	if (!more)
		return 0;
	if (!__atomic_load_n(&r->sq->live, __ATOMIC_ACQUIRE))
		return -1;
	if (r->range + 1 < r->nrange) {
		r->range++;
		r->br.offset = r->u.rng[r->range].off;
		r->br.len = r->u.rng[r->range].len;
		return 1;
	}
	r->flush_after = false;
	r->br.op = BLK_FLUSH;
	r->br.iov = NULL;
	r->br.iovcnt = 0;
	return 1;
}

static uint16_t blk_status(const struct nvme_req *r, int err)
{
	switch (err) {
	case 0:
		return NVME_SC_SUCCESS;
	case -EINVAL:
		return NVME_SC_LBA_RANGE;
	case -EROFS:
		return NVME_SC_NS_WRITE_PROTECTED;
	case -EOPNOTSUPP:
		return r->br.op == BLK_DISCARD ? NVME_SC_SUCCESS
					       : NVME_SC_INVALID_FIELD;
	default:
		return r->br.op == BLK_READ ? NVME_SC_READ_ERROR
					    : NVME_SC_WRITE_FAULT;
	}
}

/* Block worker thread: a request (or one step of it) finished. */
static void nvme_blk_done(struct blk_req *br, int err)
{
	struct nvme_req *r = (struct nvme_req *)br;
	struct nvme_sq *sq = r->sq;
	struct nvme *nv = sq->nv;
	uint32_t kick = 1u << sq->qid;
	uint16_t st;
	int step = 0;

	if (err == 0) {
		step = req_next_step(r);
		if (step > 0) {
			err = blk_submit(nv->blk, &r->br);
			if (err == 0)
				return; /* done() runs again */
		}
	}
	if (err && err != -EOPNOTSUPP)
		log_ratelimited(NVME_WARN_MS, "%s: I/O error at byte %llu: %s",
				nv->pd->name, (unsigned long long)r->br.offset,
				strerror(-err));
	st = step < 0 ? NVME_SC_ABORTED_SQ_DELETED : blk_status(r, err);
	req_finish(r, st, &kick); /* 'r' may be reused from here on */
	nblk_add(sq, -1);
	sq_kick(nv, kick);
}

/* ---- queue creation and deletion (nv->lock held) ---- */

/*
 * Stop fetching from 'sq', wait for its block requests, drop its
 * completions still waiting for CQ room and free its slots.
 */
static void sq_teardown(struct nvme *nv, struct nvme_sq *sq)
{
	struct nvme_cq *cq = &nv->cq[sq->cqid];
	struct nvme_req **pp;

	pthread_mutex_lock(&sq->lock);
	__atomic_store_n(&sq->live, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&sq->lock);
	pthread_mutex_lock(&sq->pool_lock);
	while (sq->nblk)
		pthread_cond_wait(&sq->idle, &sq->pool_lock);
	pthread_mutex_unlock(&sq->pool_lock);
	pthread_mutex_lock(&cq->lock);
	cq->bl_tail = NULL;
	for (pp = &cq->bl_head; *pp;) {
		if ((*pp)->sq == sq) {
			*pp = (*pp)->next;
			continue;
		}
		cq->bl_tail = *pp;
		pp = &(*pp)->next;
	}
	if (sq->reqs && cq->nsq)
		cq->nsq--;
	pthread_mutex_unlock(&cq->lock);
	free(sq->reqs);
	sq->reqs = sq->free = NULL;
}

/* Host memory for a queue of 'n' entries of 'esz' bytes at 'gpa'. */
static uint8_t *queue_ring(const struct nvme *nv, uint64_t gpa, uint32_t n,
			   unsigned esz)
{
	if (gpa & (nv->page - 1))
		return NULL;
	return gmem_ptr(nv_mem(nv), gpa, (uint64_t)n * esz);
}

static uint16_t adm_create_cq(struct nvme *nv, const struct nvme_cmd *c)
{
	unsigned qid = c->cdw[10] & 0xffff;
	uint32_t size = (c->cdw[10] >> 16) + 1;
	uint16_t iv = (uint16_t)(c->cdw[11] >> 16);
	struct nvme_cq *cq;
	uint8_t *ring;

	if (qid == 0 || qid > nv->ncq_alloc || nv->cq[qid].live)
		return NVME_SC_INVALID_QID;
	if (size < 2 || size > nv->qsz)
		return NVME_SC_INVALID_QSIZE;
	if (!(c->cdw[11] & 1) || NVME_CC_IOCQES(nv->cc) != 4)
		return NVME_SC_INVALID_FIELD;
	if (iv > nv->maxq)
		return NVME_SC_INVALID_VECTOR;
	ring = queue_ring(nv, c->prp1, size, NVME_CQE_SIZE);
	if (!ring) {
		log_ratelimited(NVME_WARN_MS,
				"%s: completion queue %u not in guest RAM or "
				"misaligned",
				nv->pd->name, qid);
		return NVME_SC_INVALID_FIELD;
	}
	cq = &nv->cq[qid];
	pthread_mutex_lock(&cq->lock);
	cq->ring = ring;
	cq->size = size;
	cq->head = cq->tail = 0;
	cq->phase = true;
	cq->ien = (c->cdw[11] & 2) != 0;
	cq->iv = iv;
	cq->nsq = 0;
	cq->bl_head = cq->bl_tail = NULL;
	if (dbbuf_on(nv)) {
		shadow_set(nv, 2 * qid + 1, 0);
		ei_set(nv, 2 * qid + 1, 0);
	}
	cq->live = true;
	pthread_mutex_unlock(&cq->lock);
	intx_clear(nv, qid);
	return NVME_SC_SUCCESS;
}

static uint16_t adm_create_sq(struct nvme *nv, const struct nvme_cmd *c)
{
	unsigned qid = c->cdw[10] & 0xffff, cqid = c->cdw[11] >> 16, i;
	uint32_t size = (c->cdw[10] >> 16) + 1;
	struct nvme_sq *sq;
	struct nvme_req *reqs;
	uint8_t *ring;

	if (qid == 0 || qid > nv->nsq_alloc || nv->sq[qid].live)
		return NVME_SC_INVALID_QID;
	if (size < 2 || size > nv->qsz)
		return NVME_SC_INVALID_QSIZE;
	if (cqid == 0 || cqid > nv->maxq || !nv->cq[cqid].live)
		return NVME_SC_CQ_INVALID;
	if (!(c->cdw[11] & 1) || NVME_CC_IOSQES(nv->cc) != 6)
		return NVME_SC_INVALID_FIELD;
	ring = queue_ring(nv, c->prp1, size, NVME_SQE_SIZE);
	if (!ring) {
		log_ratelimited(NVME_WARN_MS,
				"%s: submission queue %u not in guest RAM or "
				"misaligned",
				nv->pd->name, qid);
		return NVME_SC_INVALID_FIELD;
	}
	reqs = calloc(nv->ioslots, sizeof(*reqs));
	if (!reqs)
		return NVME_SC_INTERNAL;
	sq = &nv->sq[qid];
	pthread_mutex_lock(&sq->lock);
	sq->cqid = (uint16_t)cqid;
	sq->ring = ring;
	sq->size = size;
	sq->head = sq->tail = 0;
	sq->reqs = reqs;
	sq->free = NULL;
	sq->nblk = 0;
	for (i = 0; i < nv->ioslots; i++) {
		reqs[i].sq = sq;
		reqs[i].br.done = nvme_blk_done;
		reqs[i].next = sq->free;
		sq->free = &reqs[i];
	}
	if (dbbuf_on(nv)) {
		shadow_set(nv, 2 * qid, 0);
		ei_set(nv, 2 * qid, 0);
	}
	__atomic_store_n(&sq->live, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&sq->lock);
	pthread_mutex_lock(&nv->cq[cqid].lock);
	nv->cq[cqid].nsq++;
	pthread_mutex_unlock(&nv->cq[cqid].lock);
	return NVME_SC_SUCCESS;
}

static uint16_t adm_delete_sq(struct nvme *nv, const struct nvme_cmd *c)
{
	unsigned qid = c->cdw[10] & 0xffff;

	if (qid == 0 || qid > nv->maxq || !nv->sq[qid].live)
		return NVME_SC_INVALID_QID;
	sq_teardown(nv, &nv->sq[qid]);
	return NVME_SC_SUCCESS;
}

static uint16_t adm_delete_cq(struct nvme *nv, const struct nvme_cmd *c)
{
	unsigned qid = c->cdw[10] & 0xffff;
	struct nvme_cq *cq;

	if (qid == 0 || qid > nv->maxq || !nv->cq[qid].live)
		return NVME_SC_INVALID_QID;
	cq = &nv->cq[qid];
	if (cq->nsq)
		return NVME_SC_INVALID_QUEUE_DEL;
	pthread_mutex_lock(&cq->lock);
	cq->live = false;
	cq->bl_head = cq->bl_tail = NULL;
	pthread_mutex_unlock(&cq->lock);
	intx_clear(nv, qid);
	return NVME_SC_SUCCESS;
}

/* ---- Identify, log pages ---- */

static void id_ctrl(struct nvme *nv, uint8_t *d)
{
	char nqn[96];

	put16(d + NVME_IDC_VID, NVME_PCI_VENDOR);
	put16(d + NVME_IDC_SSVID, NVME_PCI_VENDOR);
	put_str(d + NVME_IDC_SN, nv->sn, 20);
	put_str(d + NVME_IDC_MN, NVME_MODEL, 40);
	put_str(d + NVME_IDC_FR, NVME_FW_REV, 8);
	d[NVME_IDC_RAB] = 4;
	d[NVME_IDC_MDTS] = NVME_MDTS;
	put32(d + NVME_IDC_VER, NVME_VS_1_4);
	d[NVME_IDC_CNTRLTYPE] = 1; /* I/O controller */
	put16(d + NVME_IDC_OACS, NVME_OACS_DBBUF);
	d[NVME_IDC_ACL] = 3;
	d[NVME_IDC_AERL] = NVME_AER_MAX - 1;
	d[NVME_IDC_FRMW] = 0x03; /* one slot, slot 1 read-only */
	d[NVME_IDC_LPA] = 0x04;	 /* extended Get Log Page data */
	put16(d + NVME_IDC_WCTEMP, 0x0157);
	put16(d + NVME_IDC_CCTEMP, 0x0175);
	d[NVME_IDC_SQES] = 0x66;
	d[NVME_IDC_CQES] = 0x44;
	put32(d + NVME_IDC_NN, 1);
	put16(d + NVME_IDC_ONCS,
	      NVME_ONCS_WRITE_ZEROES | (nv->oncs_dsm ? NVME_ONCS_DSM : 0));
	d[NVME_IDC_VWC] = 0x01;
	snprintf(nqn, sizeof(nqn), "nqn.2014-08.org.nvmexpress:%04x%04x%s",
		 NVME_PCI_VENDOR, NVME_PCI_VENDOR, nv->sn);
	memcpy(d + NVME_IDC_SUBNQN, nqn, strlen(nqn));
	put16(d + NVME_IDC_PSD0, 0x09c4); /* 25 W */
}

static void id_ns(struct nvme *nv, uint8_t *d)
{
	put64(d + NVME_IDN_NSZE, nv->nlba);
	put64(d + NVME_IDN_NCAP, nv->nlba);
	put64(d + NVME_IDN_NUSE, nv->nlba);
	d[NVME_IDN_DLFEAT] = nv->ram ? 0x01 : 0x00; /* ram: reads zeroes */
	d[NVME_IDN_NSATTR] = nv->ro ? 0x01 : 0x00;
	put64(d + NVME_IDN_EUI64, htobe64(nv->eui64));
	put32(d + NVME_IDN_LBAF0, nv->lbashift << 16);
}

/* Copy 'len' bytes of nv->abuf from 'off' to the command's data buffer,
 * zero-filling past 'have'.  Returns a status. */
static uint16_t adm_send(struct nvme *nv, const struct nvme_cmd *c,
			 uint64_t len, size_t off, size_t have)
{
	unsigned n;
	uint16_t st =
		prp_map(nv, c->prp1, c->prp2, len, nv->aiov, NVME_MAX_IOV, &n);

	if (st == NVME_SC_SUCCESS)
		iov_fill(nv->aiov, n, nv->abuf + off, have - off);
	return st;
}

static uint16_t adm_identify(struct nvme *nv, const struct nvme_cmd *c)
{
	uint8_t *d = nv->abuf;

	memset(d, 0, NVME_IDENTIFY_SIZE);
	switch (c->cdw[10] & 0xff) {
	case NVME_CNS_CTRL:
		id_ctrl(nv, d);
		break;
	case NVME_CNS_NS:
		if (c->nsid != 1)
			return NVME_SC_INVALID_NS;
		id_ns(nv, d);
		break;
	case NVME_CNS_ACTIVE_NS:
		if (c->nsid >= 0xfffffffeu)
			return NVME_SC_INVALID_NS;
		if (c->nsid < 1)
			put32(d, 1);
		break;
	case NVME_CNS_NS_DESC:
		if (c->nsid != 1)
			return NVME_SC_INVALID_NS;
		d[0] = NVME_NIDT_EUI64;
		d[1] = 8;
		put64(d + 4, htobe64(nv->eui64));
		break;
	default:
		return NVME_SC_INVALID_FIELD;
	}
	return adm_send(nv, c, NVME_IDENTIFY_SIZE, 0, NVME_IDENTIFY_SIZE);
}

/* 128-bit little-endian counter field (only the low 64 bits used). */
static void put_count(uint8_t *p, uint64_t v)
{
	put64(p, v);
	put64(p + 8, 0);
}

static size_t log_smart(struct nvme *nv, uint8_t *d)
{
	uint64_t rb = __atomic_load_n(&nv->rd_bytes, __ATOMIC_RELAXED);
	uint64_t wb = __atomic_load_n(&nv->wr_bytes, __ATOMIC_RELAXED);

	put16(d + 1, 0x0136); /* composite temperature: 310 K */
	d[3] = 100;	      /* available spare */
	d[4] = 10;	      /* spare threshold */
	/* data units: thousands of 512-byte units, rounded up */
	put_count(d + 32, (rb / 512 + 999) / 1000);
	put_count(d + 48, (wb / 512 + 999) / 1000);
	put_count(d + 64, __atomic_load_n(&nv->rd_cmds, __ATOMIC_RELAXED));
	put_count(d + 80, __atomic_load_n(&nv->wr_cmds, __ATOMIC_RELAXED));
	return 512;
}

static uint16_t adm_get_log(struct nvme *nv, const struct nvme_cmd *c)
{
	unsigned lid = c->cdw[10] & 0xff;
	bool rae = (c->cdw[10] >> 15) & 1;
	uint64_t numd =
		((uint64_t)(c->cdw[11] & 0xffff) << 16 | c->cdw[10] >> 16) + 1;
	uint64_t off = c->cdw[12] | (uint64_t)c->cdw[13] << 32;
	uint8_t *d = nv->abuf;
	size_t size;
	uint16_t st;

	memset(d, 0, NVME_IDENTIFY_SIZE);
	switch (lid) {
	case NVME_LOG_ERROR:
		size = 64; /* one entry (ELPE 0), nothing logged */
		break;
	case NVME_LOG_SMART:
		size = log_smart(nv, d);
		break;
	case NVME_LOG_FW_SLOT:
		d[0] = 0x01; /* slot 1 active */
		put_str(d + 8, NVME_FW_REV, 8);
		size = 512;
		break;
	default:
		return NVME_SC_INVALID_LOG_PAGE;
	}
	if (numd * 4 > NVME_MAX_XFER || (off & 3) || off > size)
		return NVME_SC_INVALID_FIELD;
	st = adm_send(nv, c, numd * 4, (size_t)off, size);
	if (st == NVME_SC_SUCCESS && !rae) {
		if (lid == NVME_LOG_ERROR)
			nv->ae_masked[NVME_AE_TYPE_ERROR] = false;
		if (lid == NVME_LOG_SMART)
			nv->ae_masked[NVME_AE_TYPE_SMART] = false;
	}
	return st;
}

/* ---- features ---- */

static void features_default(struct nvme *nv)
{
	nv->f_arb = 0;
	nv->f_power = 0;
	nv->f_temp = 0x0157;
	nv->f_errrec = 0;
	nv->f_coalesce = 0;
	nv->f_atomic = 0;
	nv->f_aec = 0;
	__atomic_store_n(&nv->wce, true, __ATOMIC_RELAXED);
	nv->nsq_alloc = nv->ncq_alloc = nv->maxq;
}

static bool io_queues_exist(const struct nvme *nv)
{
	unsigned q;

	for (q = 1; q <= nv->maxq; q++)
		if (nv->sq[q].live || nv->cq[q].live)
			return true;
	return false;
}

static uint16_t feat_num_queues(struct nvme *nv, uint32_t v, uint32_t *dw0)
{
	uint32_t nsq = (v & 0xffff) + 1, ncq = (v >> 16) + 1;

	if ((v & 0xffff) == 0xffff || (v >> 16) == 0xffff)
		return NVME_SC_INVALID_FIELD;
	if (io_queues_exist(nv))
		return NVME_SC_CMD_SEQ_ERROR;
	nv->nsq_alloc = nsq < nv->maxq ? nsq : nv->maxq;
	nv->ncq_alloc = ncq < nv->maxq ? ncq : nv->maxq;
	*dw0 = (nv->ncq_alloc - 1) << 16 | (nv->nsq_alloc - 1);
	return NVME_SC_SUCCESS;
}

static uint16_t adm_set_features(struct nvme *nv, const struct nvme_cmd *c,
				 uint32_t *dw0)
{
	uint32_t v = c->cdw[11];

	if (c->cdw[10] >> 31)
		return NVME_SC_FEAT_NOT_SAVEABLE;
	switch (c->cdw[10] & 0xff) {
	case NVME_FEAT_ARBITRATION:
		nv->f_arb = v;
		break;
	case NVME_FEAT_POWER_MGMT:
		if (v & 0x1f) /* only power state 0 */
			return NVME_SC_INVALID_FIELD;
		nv->f_power = v;
		break;
	case NVME_FEAT_TEMP_THRESH:
		nv->f_temp = v & 0xffff;
		break;
	case NVME_FEAT_ERROR_RECOVERY:
		nv->f_errrec = v;
		break;
	case NVME_FEAT_VOLATILE_WC:
		__atomic_store_n(&nv->wce, (v & 1) != 0, __ATOMIC_RELAXED);
		break;
	case NVME_FEAT_NUM_QUEUES:
		return feat_num_queues(nv, v, dw0);
	case NVME_FEAT_INT_COALESCING:
		nv->f_coalesce = v & 0xffff; /* accepted, not used */
		break;
	case NVME_FEAT_INT_VECTOR:
		if ((v & 0xffff) > nv->maxq)
			return NVME_SC_INVALID_FIELD;
		break;
	case NVME_FEAT_WRITE_ATOMICITY:
		nv->f_atomic = v & 1;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		nv->f_aec = v;
		break;
	default:
		return NVME_SC_INVALID_FIELD;
	}
	return NVME_SC_SUCCESS;
}

static uint16_t adm_get_features(struct nvme *nv, const struct nvme_cmd *c,
				 uint32_t *dw0)
{
	unsigned sel = (c->cdw[10] >> 8) & 7, fid = c->cdw[10] & 0xff;
	bool def = sel == 1 || sel == 2; /* nothing is saveable */

	if (sel > 3)
		return NVME_SC_INVALID_FIELD;
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		*dw0 = def ? 0 : nv->f_arb;
		break;
	case NVME_FEAT_POWER_MGMT:
		*dw0 = def ? 0 : nv->f_power;
		break;
	case NVME_FEAT_TEMP_THRESH:
		*dw0 = def ? 0x0157 : nv->f_temp;
		break;
	case NVME_FEAT_ERROR_RECOVERY:
		*dw0 = def ? 0 : nv->f_errrec;
		break;
	case NVME_FEAT_VOLATILE_WC:
		*dw0 = def || __atomic_load_n(&nv->wce, __ATOMIC_RELAXED);
		break;
	case NVME_FEAT_NUM_QUEUES:
		*dw0 = def ? (nv->maxq - 1) << 16 | (nv->maxq - 1)
			   : (nv->ncq_alloc - 1) << 16 | (nv->nsq_alloc - 1);
		break;
	case NVME_FEAT_INT_COALESCING:
		*dw0 = def ? 0 : nv->f_coalesce;
		break;
	case NVME_FEAT_INT_VECTOR:
		if ((c->cdw[11] & 0xffff) > nv->maxq)
			return NVME_SC_INVALID_FIELD;
		*dw0 = c->cdw[11] & 0xffff;
		break;
	case NVME_FEAT_WRITE_ATOMICITY:
		*dw0 = def ? 0 : nv->f_atomic;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		*dw0 = def ? 0 : nv->f_aec;
		break;
	default:
		return NVME_SC_INVALID_FIELD;
	}
	if (sel == 3)
		*dw0 = 0x4; /* changeable, not saveable, not per namespace */
	return NVME_SC_SUCCESS;
}

/* ---- doorbell buffer config and ioeventfds ---- */

/* Register or remove the SQ doorbell ioeventfds to match the state
 * (nv->lock held). */
static void iofd_sync(struct nvme *nv)
{
	struct devctx *ctx = nv->pd->ctx;
	bool want = nv->kick_ok && nv->dbbuf && nv->bar0_mapped;
	unsigned q, i;
	int rc;

	if (nv->iofd_on && (!want || nv->iofd_addr != nv->bar0)) {
		for (q = 1; q <= nv->maxq; q++)
			(void)ctx->ioeventfd(ctx->opaque, nv->sq[q].kick_fd,
					     nv->iofd_addr + NVME_SQ_TDBL(q), 4,
					     false, false, 0, true);
		nv->iofd_on = false;
	}
	if (!want || nv->iofd_on)
		return;
	for (q = 1; q <= nv->maxq; q++) {
		rc = ctx->ioeventfd(ctx->opaque, nv->sq[q].kick_fd,
				    nv->bar0 + NVME_SQ_TDBL(q), 4, false, false,
				    0, false);
		if (rc == 0)
			continue;
		for (i = 1; i < q; i++)
			(void)ctx->ioeventfd(ctx->opaque, nv->sq[i].kick_fd,
					     nv->bar0 + NVME_SQ_TDBL(i), 4,
					     false, false, 0, true);
		log_ratelimited(NVME_WARN_MS,
				"%s: doorbell ioeventfd: %s; doorbells will "
				"exit to user space",
				nv->pd->name, strerror(-rc));
		return;
	}
	nv->iofd_on = true;
	nv->iofd_addr = nv->bar0;
}

static uint16_t adm_dbbuf(struct nvme *nv, const struct nvme_cmd *c)
{
	uint64_t ps = nv->page;
	uint32_t *sh, *ei;
	unsigned q;

	if ((c->prp1 | c->prp2) & (ps - 1))
		return NVME_SC_INVALID_FIELD;
	sh = gmem_ptr(nv_mem(nv), c->prp1, ps);
	ei = gmem_ptr(nv_mem(nv), c->prp2, ps);
	if (!sh || !ei)
		return NVME_SC_INVALID_FIELD;
	__atomic_store_n(&nv->db_shadow, sh, __ATOMIC_RELEASE);
	__atomic_store_n(&nv->db_ei, ei, __ATOMIC_RELEASE);
	/* queues that exist continue from where they are */
	for (q = 1; q <= nv->maxq; q++) {
		struct nvme_sq *sq = &nv->sq[q];
		struct nvme_cq *cq = &nv->cq[q];

		pthread_mutex_lock(&sq->lock);
		shadow_set(nv, 2 * q, sq->live ? sq->tail : 0);
		ei_set(nv, 2 * q, sq->live ? sq->tail : 0);
		pthread_mutex_unlock(&sq->lock);
		pthread_mutex_lock(&cq->lock);
		shadow_set(nv, 2 * q + 1, cq->live ? cq->head : 0);
		ei_set(nv, 2 * q + 1, cq->live ? cq->head : 0);
		pthread_mutex_unlock(&cq->lock);
	}
	__atomic_store_n(&nv->dbbuf, true, __ATOMIC_RELEASE);
	iofd_sync(nv);
	return NVME_SC_SUCCESS;
}

/* ---- the admin queue (nv->lock held) ---- */

static uint16_t adm_exec(struct nvme *nv, const struct nvme_cmd *c,
			 uint32_t *dw0)
{
	if (c->fuse || c->psdt)
		return NVME_SC_INVALID_FIELD;
	switch (c->opc) {
	case NVME_ADM_DELETE_SQ:
		return adm_delete_sq(nv, c);
	case NVME_ADM_CREATE_SQ:
		return adm_create_sq(nv, c);
	case NVME_ADM_GET_LOG_PAGE:
		return adm_get_log(nv, c);
	case NVME_ADM_DELETE_CQ:
		return adm_delete_cq(nv, c);
	case NVME_ADM_CREATE_CQ:
		return adm_create_cq(nv, c);
	case NVME_ADM_IDENTIFY:
		return adm_identify(nv, c);
	case NVME_ADM_ABORT:
		*dw0 = 1; /* not aborted: best effort means none */
		return NVME_SC_SUCCESS;
	case NVME_ADM_SET_FEATURES:
		return adm_set_features(nv, c, dw0);
	case NVME_ADM_GET_FEATURES:
		return adm_get_features(nv, c, dw0);
	case NVME_ADM_ASYNC_EVENT:
		if (nv->naer >= NVME_AER_MAX)
			return NVME_SC_AER_LIMIT;
		nv->aer_cid[nv->naer++] = c->cid;
		return NVME_HELD;
	case NVME_ADM_DBBUF_CONFIG:
		return adm_dbbuf(nv, c);
	default:
		return NVME_SC_INVALID_OPCODE;
	}
}

static void admin_post(struct nvme *nv, uint16_t cid, uint16_t st, uint32_t dw0)
{
	struct nvme_cq *cq = &nv->cq[0];

	pthread_mutex_lock(&cq->lock);
	if (cq->live && !cq_full(nv, cq)) {
		cq_write(cq, 0, nv->sq[0].head, cid, st, dw0);
		cq_irq(nv, cq);
	}
	pthread_mutex_unlock(&cq->lock);
}

/* Run admin commands while there are some and room for completions. */
static void admin_run(struct nvme *nv)
{
	struct nvme_sq *sq = &nv->sq[0];
	struct nvme_cq *cq = &nv->cq[0];
	uint8_t e[NVME_SQE_SIZE];
	struct nvme_cmd c;
	uint32_t dw0;
	uint16_t st;
	bool room;

	while (sq->live && sq->head != sq->tail) {
		pthread_mutex_lock(&cq->lock);
		room = cq->live && !cq_full(nv, cq);
		pthread_mutex_unlock(&cq->lock);
		if (!room)
			break;
		memcpy(e, sq->ring + (size_t)sq->head * NVME_SQE_SIZE,
		       sizeof(e));
		__atomic_store_n(&sq->head, (sq->head + 1) % sq->size,
				 __ATOMIC_RELAXED);
		cmd_decode(e, &c);
		dw0 = 0;
		st = adm_exec(nv, &c, &dw0);
		if (st != NVME_HELD)
			admin_post(nv, c.cid, st, dw0);
	}
	ae_deliver(nv);
}

/* ---- controller enable, reset, shutdown (nv->lock held) ---- */

static void ctrl_enable(struct nvme *nv)
{
	uint32_t cc = nv->cc, asqs = (nv->aqa & 0xfff) + 1;
	uint32_t acqs = ((nv->aqa >> 16) & 0xfff) + 1;
	const struct gmem *mem = nv_mem(nv);
	struct nvme_sq *sq = &nv->sq[0];
	struct nvme_cq *cq = &nv->cq[0];
	const char *why = NULL;
	uint8_t *sr = NULL, *cr = NULL;

	nv->csts &= ~NVME_CSTS_CFS;
	if (NVME_CC_CSS(cc) != 0)
		why = "command set (CC.CSS) not NVM";
	else if (NVME_CC_MPS(cc) > NVME_MPSMAX)
		why = "memory page size (CC.MPS) beyond CAP.MPSMAX";
	else if (NVME_CC_AMS(cc) != 0)
		why = "arbitration (CC.AMS) not round robin";
	else if (asqs < 2 || acqs < 2)
		why = "admin queues (AQA) of fewer than 2 entries";
	else if (!(sr = gmem_ptr(mem, nv->asq, asqs * NVME_SQE_SIZE)) ||
		 !(cr = gmem_ptr(mem, nv->acq, acqs * NVME_CQE_SIZE)))
		why = "admin queues (ASQ/ACQ) not in guest RAM";
	if (why) {
		log_ratelimited(NVME_WARN_MS, "%s: cannot enable: %s",
				nv->pd->name, why);
		nv->csts |= NVME_CSTS_CFS;
		return;
	}
	nv->page = 4096ULL << NVME_CC_MPS(cc);
	sq->ring = sr;
	sq->size = asqs;
	sq->head = sq->tail = 0;
	sq->cqid = 0;
	sq->live = true;
	pthread_mutex_lock(&cq->lock);
	cq->ring = cr;
	cq->size = acqs;
	cq->head = cq->tail = 0;
	cq->phase = true;
	cq->ien = true;
	cq->iv = 0;
	cq->nsq = 1;
	cq->bl_head = cq->bl_tail = NULL;
	cq->live = true;
	pthread_mutex_unlock(&cq->lock);
	features_default(nv);
	nv->csts = NVME_CSTS_RDY;
}

/*
 * Controller reset: stop posting, stop fetching, wait for the block
 * requests in flight (their completions are dropped), free the queues and
 * forget features, async events and shadow doorbells.  AQA/ASQ/ACQ stay.
 */
static void ctrl_reset(struct nvme *nv)
{
	unsigned q;

	for (q = 0; q <= nv->maxq; q++) {
		struct nvme_cq *cq = &nv->cq[q];

		pthread_mutex_lock(&cq->lock);
		cq->live = false;
		cq->bl_head = cq->bl_tail = NULL;
		cq->nsq = 0;
		pthread_mutex_unlock(&cq->lock);
	}
	for (q = 1; q <= nv->maxq; q++) {
		pthread_mutex_lock(&nv->sq[q].lock);
		__atomic_store_n(&nv->sq[q].live, false, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&nv->sq[q].lock);
	}
	for (q = 1; q <= nv->maxq; q++)
		sq_teardown(nv, &nv->sq[q]);
	nv->sq[0].live = false;
	nv->naer = 0;
	memset(nv->ae_pending, 0, sizeof(nv->ae_pending));
	memset(nv->ae_masked, 0, sizeof(nv->ae_masked));
	__atomic_store_n(&nv->ae_stash, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&nv->dbbuf, false, __ATOMIC_RELEASE);
	iofd_sync(nv);
	features_default(nv);
	nv->csts = 0;
	pthread_mutex_lock(&nv->intx_lock);
	nv->intx_pending = 0;
	intx_eval_locked(nv);
	pthread_mutex_unlock(&nv->intx_lock);
}

struct nvme_sync {
	struct blk_req br; /* first */
	pthread_mutex_t m;
	pthread_cond_t cv;
	bool done;
	int err;
};

static void sync_done(struct blk_req *br, int err)
{
	struct nvme_sync *s = (struct nvme_sync *)br;

	pthread_mutex_lock(&s->m);
	s->err = err;
	s->done = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->m);
}

/* Flush the image and wait (shutdown notification). */
static void ctrl_shutdown(struct nvme *nv)
{
	struct nvme_sync s;

	if (!nv->blk)
		return;
	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.m, NULL);
	pthread_cond_init(&s.cv, NULL);
	s.br.op = BLK_FLUSH;
	s.br.done = sync_done;
	if (blk_submit(nv->blk, &s.br) == 0) {
		pthread_mutex_lock(&s.m);
		while (!s.done)
			pthread_cond_wait(&s.cv, &s.m);
		pthread_mutex_unlock(&s.m);
		if (s.err)
			log_errno(LOG_WARN, -s.err, "%s: flush at shutdown",
				  nv->pd->name);
	}
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.m);
}

/* CC fields that only change while the controller is disabled. */
#define NVME_CC_FIXED_WHILE_EN 0x00003ff1u /* EN, CSS, MPS, AMS */

static void cc_write(struct nvme *nv, uint32_t val)
{
	uint32_t old = nv->cc;

	if ((old & NVME_CC_EN) && !(val & NVME_CC_EN)) {
		ctrl_reset(nv);
		nv->cc = val;
		return;
	}
	if (!(old & NVME_CC_EN) && (val & NVME_CC_EN)) {
		nv->cc = val;
		ctrl_enable(nv);
		return;
	}
	if (!(old & NVME_CC_EN)) {
		nv->cc = val;
		return;
	}
	nv->cc = (old & NVME_CC_FIXED_WHILE_EN) |
		 (val & ~NVME_CC_FIXED_WHILE_EN);
	if (NVME_CC_SHN(val) && !NVME_CC_SHN(old)) {
		ctrl_shutdown(nv);
		nv->csts =
			(nv->csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_DONE;
	} else if (!NVME_CC_SHN(val)) {
		nv->csts &= ~NVME_CSTS_SHST_MASK;
	}
}

/* ---- registers ---- */

static uint64_t nvme_cap(const struct nvme *nv)
{
	return (uint64_t)(nv->qsz - 1) | NVME_CAP_CQR |
	       (uint64_t)NVME_CAP_TO << NVME_CAP_TO_SHIFT | NVME_CAP_CSS_NVM |
	       (uint64_t)NVME_MPSMAX << NVME_CAP_MPSMAX_SHIFT;
}

static void regs_read(struct nvme *nv, uint64_t off, unsigned size,
		      uint64_t *val)
{
	uint8_t img[NVME_REG_END];
	uint64_t v = 0;
	unsigned i;

	memset(img, 0, sizeof(img));
	put64(img + NVME_REG_CAP, nvme_cap(nv));
	put32(img + NVME_REG_VS, NVME_VS_1_4);
	pthread_mutex_lock(&nv->lock);
	put32(img + NVME_REG_INTMS, nv->intms);
	put32(img + NVME_REG_INTMC, nv->intms);
	put32(img + NVME_REG_CC, nv->cc);
	put32(img + NVME_REG_CSTS, nv->csts);
	put32(img + NVME_REG_AQA, nv->aqa);
	put64(img + NVME_REG_ASQ, nv->asq);
	put64(img + NVME_REG_ACQ, nv->acq);
	pthread_mutex_unlock(&nv->lock);
	for (i = 0; i < size && off + i < NVME_REG_END; i++)
		v |= (uint64_t)img[off + i] << (8 * i);
	*val = v;
}

/* One aligned 32-bit register write (nv->lock held). */
static void reg_write32(struct nvme *nv, uint64_t off, uint32_t val)
{
	switch (off) {
	case NVME_REG_INTMS:
	case NVME_REG_INTMC:
		if (pci_msix_enabled(nv->pd))
			break; /* undefined with MSI-X */
		if (off == NVME_REG_INTMS)
			__atomic_or_fetch(&nv->intms, val & 1,
					  __ATOMIC_RELAXED);
		else
			__atomic_and_fetch(&nv->intms, ~val, __ATOMIC_RELAXED);
		intx_eval(nv);
		break;
	case NVME_REG_CC:
		cc_write(nv, val);
		break;
	case NVME_REG_AQA:
		nv->aqa = val & 0x0fff0fffu;
		break;
	case NVME_REG_ASQ:
		nv->asq = (nv->asq & ~0xffffffffULL) | (val & ~0xfffu);
		break;
	case NVME_REG_ASQ + 4:
		nv->asq = (nv->asq & 0xffffffffULL) | (uint64_t)val << 32;
		break;
	case NVME_REG_ACQ:
		nv->acq = (nv->acq & ~0xffffffffULL) | (val & ~0xfffu);
		break;
	case NVME_REG_ACQ + 4:
		nv->acq = (nv->acq & 0xffffffffULL) | (uint64_t)val << 32;
		break;
	default:
		break; /* CAP, VS, CSTS read-only; NSSR unsupported */
	}
}

static void regs_write(struct nvme *nv, uint64_t off, unsigned size,
		       uint64_t val)
{
	if (size == 8 && !(off & 7)) {
		pthread_mutex_lock(&nv->lock);
		reg_write32(nv, off, (uint32_t)val);
		reg_write32(nv, off + 4, (uint32_t)(val >> 32));
		pthread_mutex_unlock(&nv->lock);
		return;
	}
	if (size != 4 || (off & 3)) {
		log_ratelimited(NVME_WARN_MS,
				"%s: %u-byte register write at 0x%llx ignored",
				nv->pd->name, size, (unsigned long long)off);
		return;
	}
	pthread_mutex_lock(&nv->lock);
	reg_write32(nv, off, (uint32_t)val);
	pthread_mutex_unlock(&nv->lock);
}

/* ---- doorbells ---- */

static void bad_doorbell(struct nvme *nv, unsigned idx, uint32_t val,
			 bool value)
{
	log_ratelimited(NVME_WARN_MS,
			"%s: invalid doorbell write (%s %u, value %u); ignored",
			nv->pd->name, idx & 1 ? "CQ head" : "SQ tail", idx / 2,
			val);
	ae_raise(nv, value ? NVME_STASH_BAD_DB_VALUE : NVME_STASH_BAD_DB_REG);
}

/* Admin doorbells (nv->lock held).  0, or 1/2 for a bad register/value. */
static int admin_doorbell(struct nvme *nv, bool cqdb, uint32_t val)
{
	struct nvme_sq *sq = &nv->sq[0];
	struct nvme_cq *cq = &nv->cq[0];
	int bad = 0;

	if (!cqdb) {
		if (!sq->live)
			return 1;
		if (val >= sq->size)
			return 2;
		sq->tail = val;
	} else {
		pthread_mutex_lock(&cq->lock);
		if (!cq->live)
			bad = 1;
		else if (!cq_head_ok(cq, val))
			bad = 2;
		else
			cq->head = val;
		if (!bad && cq->head == cq->tail)
			intx_clear(nv, 0);
		pthread_mutex_unlock(&cq->lock);
		if (bad)
			return bad;
	}
	admin_run(nv);
	return 0;
}

static int sq_doorbell(struct nvme *nv, struct nvme_sq *sq, uint32_t val)
{
	int bad = 0;

	pthread_mutex_lock(&sq->lock);
	if (!sq->live)
		bad = 1;
	else if (dbbuf_on(nv))
		; /* a kick: the tail is in the shadow (as with ioeventfd) */
	else if (val >= sq->size)
		bad = 2;
	else
		sq->tail = val;
	pthread_mutex_unlock(&sq->lock);
	if (!bad)
		sq_kick(nv, 1u << sq->qid);
	return bad;
}

static int cq_doorbell(struct nvme *nv, struct nvme_cq *cq, uint32_t val)
{
	uint32_t kick = 0;
	int bad = 0;

	pthread_mutex_lock(&cq->lock);
	if (!cq->live) {
		bad = 1;
	} else if (!cq_head_ok(cq, val)) {
		bad = 2;
	} else {
		cq->head = val;
		if (cq_flush(nv, cq, &kick))
			cq_irq(nv, cq);
		if (cq->head == cq->tail)
			intx_clear(nv, cq->qid);
	}
	pthread_mutex_unlock(&cq->lock);
	sq_kick(nv, kick);
	return bad;
}

static void db_write(struct nvme *nv, uint64_t off, unsigned size, uint64_t val)
{
	unsigned idx = (unsigned)((off - NVME_REG_DBS) / 4), q = idx / 2;
	uint32_t v = (uint32_t)val;
	int bad;

	if (size != 4 || (off & 3)) {
		log_ratelimited(NVME_WARN_MS,
				"%s: %u-byte doorbell write at 0x%llx ignored",
				nv->pd->name, size, (unsigned long long)off);
		return;
	}
	if (q > nv->maxq) {
		bad = 1;
	} else if (q == 0) {
		pthread_mutex_lock(&nv->lock);
		bad = admin_doorbell(nv, idx & 1, v);
		ae_collect(nv);
		pthread_mutex_unlock(&nv->lock);
	} else if (idx & 1) {
		bad = cq_doorbell(nv, &nv->cq[q], v);
	} else {
		bad = sq_doorbell(nv, &nv->sq[q], v);
	}
	if (bad)
		bad_doorbell(nv, idx, v, bad == 2);
}

/* ---- PCI hooks ---- */

static void nvme_barread(struct pci_dev *pd, unsigned idx, uint64_t off,
			 unsigned size, uint64_t *val)
{
	struct nvme *nv = pd->softc;

	if (idx != NVME_BAR_REGS)
		return;
	if (off < NVME_REG_END)
		regs_read(nv, off, size, val);
	else
		*val = 0; /* reserved, and doorbells read as 0 */
}

static void nvme_barwrite(struct pci_dev *pd, unsigned idx, uint64_t off,
			  unsigned size, uint64_t val)
{
	struct nvme *nv = pd->softc;

	if (idx != NVME_BAR_REGS)
		return;
	if (off >= NVME_REG_DBS)
		db_write(nv, off, size, val);
	else if (off < NVME_REG_END)
		regs_write(nv, off, size, val);
}

static void nvme_barmap(struct pci_dev *pd, unsigned idx, bool mapped,
			uint64_t addr)
{
	struct nvme *nv = pd->softc;

	if (!nv || idx != NVME_BAR_REGS)
		return;
	pthread_mutex_lock(&nv->lock);
	nv->bar0_mapped = mapped;
	nv->bar0 = addr;
	iofd_sync(nv);
	pthread_mutex_unlock(&nv->lock);
}

static void nvme_irq_changed(struct pci_dev *pd)
{
	struct nvme *nv = pd->softc;

	if (nv)
		intx_eval(nv);
}

/* Event-loop thread: an SQ tail doorbell ioeventfd fired. */
static void nvme_on_kick(void *arg, uint32_t events)
{
	struct nvme_sq *sq = arg;
	uint64_t n;

	(void)events;
	if (read(sq->kick_fd, &n, sizeof(n)) != sizeof(n))
		return;
	sq_kick(sq->nv, 1u << sq->qid);
}

/* ---- set-up ---- */

static void nvme_free(struct nvme *nv)
{
	unsigned q;

	pthread_mutex_lock(&nv->lock);
	ctrl_reset(nv);
	pthread_mutex_unlock(&nv->lock);
	blk_close(nv->blk);
	for (q = 0; q <= NVME_MAXQ_LIMIT; q++) {
		struct nvme_sq *sq = &nv->sq[q];

		if (sq->kick_ev)
			event_del(sq->kick_ev);
		if (sq->kick_fd >= 0)
			close(sq->kick_fd);
		pthread_cond_destroy(&sq->idle);
		pthread_mutex_destroy(&sq->pool_lock);
		pthread_mutex_destroy(&sq->lock);
		pthread_mutex_destroy(&nv->cq[q].lock);
	}
	free(nv->ram);
	pthread_mutex_destroy(&nv->intx_lock);
	pthread_mutex_destroy(&nv->lock);
	free(nv);
}

static struct nvme *nvme_alloc(struct pci_dev *pd)
{
	struct nvme *nv = calloc(1, sizeof(*nv));
	unsigned q;

	if (!nv)
		return NULL;
	nv->pd = pd;
	pthread_mutex_init(&nv->lock, NULL);
	pthread_mutex_init(&nv->intx_lock, NULL);
	for (q = 0; q <= NVME_MAXQ_LIMIT; q++) {
		struct nvme_sq *sq = &nv->sq[q];

		sq->nv = nv;
		sq->qid = (uint16_t)q;
		sq->kick_fd = -1;
		pthread_mutex_init(&sq->lock, NULL);
		pthread_mutex_init(&sq->pool_lock, NULL);
		pthread_cond_init(&sq->idle, NULL);
		nv->cq[q].qid = (uint16_t)q;
		pthread_mutex_init(&nv->cq[q].lock, NULL);
	}
	return nv;
}

static int cfg_uint(struct cfg_node *node, const char *key, uint64_t def,
		    uint64_t min, uint64_t max, unsigned *out)
{
	uint64_t v;
	int rc = cfg_get_u64(node, key, def, min, max, &v);

	if (rc == 0)
		*out = (unsigned)v;
	return rc;
}

/* The string value of 'key' (NULL when unset); -EINVAL when broken. */
static int cfg_str(struct cfg_node *node, const char *key, const char **out)
{
	errno = 0;
	*out = cfg_get(node, key);
	if (!*out && errno != ENOENT && errno != 0)
		return -EINVAL; /* cfg_get() logged it */
	return 0;
}

static int nvme_cfg_ser(struct nvme *nv, struct cfg_node *node)
{
	const char *v, *p;
	int rc = cfg_str(node, "ser", &v);

	if (rc)
		return rc;
	if (!v) {
		snprintf(nv->sn, sizeof(nv->sn), "NVME-%u-%u", nv->pd->slot,
			 nv->pd->func);
		return 0;
	}
	for (p = v; *p; p++) {
		if (*p < 0x20 || *p > 0x7e) {
			log_err("%s.ser: '%s' is not printable ASCII",
				cfg_path(node), v);
			return -EINVAL;
		}
	}
	if (strlen(v) > 20)
		log_warn("%s.ser: '%s' is longer than 20 characters; the "
			 "guest sees the first 20",
			 cfg_path(node), v);
	snprintf(nv->sn, sizeof(nv->sn), "%.20s", v);
	return 0;
}

static int nvme_cfg_eui64(struct nvme *nv, struct cfg_node *node)
{
	const char *v, *name = nv->pd->ctx->vm_name;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
	char *end;
	char at[16];
	int rc = cfg_str(node, "eui64", &v);
	const char *p;

	if (rc)
		return rc;
	if (v) {
		errno = 0;
		nv->eui64 = strtoull(v, &end, 0);
		if (errno || end == v || *end || *v == '-') {
			log_err("%s.eui64: invalid EUI-64 '%s' (a 64-bit "
				"number)",
				cfg_path(node), v);
			return -EINVAL;
		}
		return 0;
	}
	snprintf(at, sizeof(at), "@%u:%u:%u", nv->pd->bus, nv->pd->slot,
		 nv->pd->func);
	for (p = name ? name : "khyve"; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	for (p = at; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
	nv->eui64 = h ? h : 1;
	return 0;
}

static int nvme_cfg_dsm(struct cfg_node *node, enum nvme_dsm_mode *m)
{
	const char *v;
	int rc = cfg_str(node, "dsm", &v);

	if (rc)
		return rc;
	if (!v || strcmp(v, "auto") == 0)
		*m = NVME_DSM_AUTO;
	else if (strcmp(v, "enable") == 0)
		*m = NVME_DSM_ENABLE;
	else if (strcmp(v, "disable") == 0)
		*m = NVME_DSM_DISABLE;
	else {
		log_err("%s.dsm: invalid value '%s' (auto, enable or disable)",
			cfg_path(node), v);
		return -EINVAL;
	}
	return 0;
}

/* maxq, qsz, ioslots, sectsz, ser, eui64. */
static int nvme_cfg_scalars(struct nvme *nv, struct cfg_node *node,
			    unsigned *sectsz)
{
	int rc;

	if ((rc = cfg_uint(node, "maxq", NVME_MAXQ_LIMIT, 1, 65535,
			   &nv->maxq)) ||
	    (rc = cfg_uint(node, "qsz", NVME_DEF_QSZ, 2, NVME_MAX_QSZ,
			   &nv->qsz)) ||
	    (rc = cfg_uint(node, "ioslots", NVME_DEF_IOSLOTS, 1,
			   NVME_MAX_IOSLOTS, &nv->ioslots)) ||
	    (rc = cfg_uint(node, "sectsz", 0, 0, 8192, sectsz)))
		return rc;
	if (*sectsz && *sectsz != 512 && *sectsz != 4096 && *sectsz != 8192) {
		log_err("%s.sectsz: invalid sector size %u (512, 4096 or "
			"8192)",
			cfg_path(node), *sectsz);
		return -EINVAL;
	}
	if (nv->maxq > NVME_MAXQ_LIMIT) {
		log_warn("%s.maxq: %u is more than %u; using %u",
			 cfg_path(node), nv->maxq, NVME_MAXQ_LIMIT,
			 NVME_MAXQ_LIMIT);
		nv->maxq = NVME_MAXQ_LIMIT;
	}
	if ((rc = nvme_cfg_ser(nv, node)) || (rc = nvme_cfg_eui64(nv, node)))
		return rc;
	return 0;
}

/* The namespace's storage: ram=MiB or a block-layer image. */
static int nvme_cfg_store(struct nvme *nv, struct cfg_node *node,
			  unsigned sectsz)
{
	struct blk_opts o;
	uint64_t mib;
	int rc;

	if (cfg_get_raw(node, "ram")) {
		if (cfg_get_raw(node, "path")) {
			log_err("%s: ram= and a disk path are exclusive",
				cfg_path(node));
			return -EINVAL;
		}
		rc = cfg_get_u64(node, "ram", 0, 1, NVME_RAM_MAX_MIB, &mib);
		if (rc == 0)
			rc = cfg_get_bool(node, "ro", false, &nv->ro);
		if (rc)
			return rc;
		nv->ram_bytes = mib << 20;
		nv->ram = calloc(1, nv->ram_bytes);
		if (!nv->ram) {
			log_err("%s.ram: cannot allocate %llu MiB",
				cfg_path(node), (unsigned long long)mib);
			return -ENOMEM;
		}
		nv->can_discard = !nv->ro;
		sectsz = sectsz ? sectsz : 4096;
	} else {
		rc = blk_opts_from_cfg(node, &o);
		if (rc == 0)
			rc = blk_open(&o, 0, &nv->blk); /* logs its errors */
		if (rc)
			return rc;
		nv->ro = blk_readonly(nv->blk);
		nv->can_discard = blk_can_discard(nv->blk);
		sectsz = sectsz ? sectsz : blk_lsector(nv->blk);
	}
	nv->lbashift = 9;
	while ((1u << nv->lbashift) < sectsz)
		nv->lbashift++;
	nv->nlba =
		(nv->blk ? blk_size(nv->blk) : nv->ram_bytes) >> nv->lbashift;
	return 0;
}

static int nvme_pci_setup(struct nvme *nv)
{
	struct pci_dev *pd = nv->pd;
	/* PCI Express capability, version 2, root complex integrated
	 * endpoint (what bhyve offers; Windows' driver looks for it). */
	uint8_t pcie[60] = {PCIY_EXPRESS, 0, 0x92, 0x00};
	int rc;

	pci_set_ids(pd, NVME_PCI_VENDOR, NVME_PCI_DEVICE, NVME_PCI_CLASS,
		    NVME_PCI_SUBCLASS, NVME_PCI_PROGIF);
	pci_set16(pd, PCIR_SUBVEND, NVME_PCI_VENDOR);
	pci_set16(pd, PCIR_SUBDEV, NVME_PCI_DEVICE);
	if ((rc = pci_bar_alloc(pd, NVME_BAR_REGS, PCIBAR_MEM64, NVME_BAR0_SIZE,
				false)) ||
	    (rc = pci_bar_alloc(pd, NVME_BAR_MSIX, PCIBAR_MEM32, 4096,
				false)) ||
	    (rc = pci_msix_init(pd, nv->maxq + 1, NVME_BAR_MSIX, 0,
				NVME_MSIX_PBA_OFF)) ||
	    (rc = pci_add_cap(pd, pcie, sizeof(pcie), NULL)) ||
	    (rc = pci_intx_init(pd)))
		return rc;
	return 0;
}

/* Doorbell eventfds on the event loop, when the VM has ioeventfds. */
static int nvme_kick_setup(struct nvme *nv)
{
	struct devctx *ctx = nv->pd->ctx;
	unsigned q;
	int rc;

	if (!ctx->ioeventfd || !ctx->ev)
		return 0;
	for (q = 1; q <= nv->maxq; q++) {
		struct nvme_sq *sq = &nv->sq[q];

		sq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (sq->kick_fd < 0)
			return -errno;
		rc = event_add_fd(ctx->ev, sq->kick_fd, EPOLLIN, nvme_on_kick,
				  sq, &sq->kick_ev);
		if (rc)
			return rc;
	}
	nv->kick_ok = true;
	return 0;
}

static int nvme_init(struct pci_dev *pd, struct cfg_node *node)
{
	enum nvme_dsm_mode dsm;
	unsigned sectsz = 0;
	struct nvme *nv = nvme_alloc(pd);
	int rc;

	if (!nv) {
		log_err("%s: out of memory", pd->name);
		return -ENOMEM;
	}
	if ((rc = nvme_cfg_scalars(nv, node, &sectsz)) ||
	    (rc = nvme_cfg_dsm(node, &dsm)) ||
	    (rc = nvme_cfg_store(nv, node, sectsz)))
		goto fail;
	nv->oncs_dsm = dsm == NVME_DSM_ENABLE ||
		       (dsm == NVME_DSM_AUTO && nv->can_discard);
	features_default(nv);
	pd->softc = nv;
	if ((rc = nvme_pci_setup(nv)) || (rc = nvme_kick_setup(nv))) {
		log_errno(LOG_ERR, -rc, "%s: cannot set up", pd->name);
		pd->softc = NULL;
		goto fail;
	}
	return 0;
fail:
	nvme_free(nv);
	return rc;
}

static void nvme_fini(struct pci_dev *pd)
{
	struct nvme *nv = pd->softc;

	if (!nv)
		return;
	nvme_free(nv);
	pd->softc = NULL;
}

static const struct pci_devops nvme_pci = {
	.init = nvme_init,
	.barread = nvme_barread,
	.barwrite = nvme_barwrite,
	.barmap = nvme_barmap,
	.irq_changed = nvme_irq_changed,
	.fini = nvme_fini,
};

static const struct cfg_key nvme_keys[] = {
	BLK_CFG_KEYS,
	{"ram", CFG_INT, NULL,
	 "namespace in host memory of this many MiB (instead of a path)", 1,
	 NVME_RAM_MAX_MIB, 0},
	{"maxq", CFG_INT, "16", "I/O queue pairs (at most 16)", 1, 65535, 0},
	{"qsz", CFG_INT, "2048", "entries per queue", 2, NVME_MAX_QSZ, 0},
	{"ioslots", CFG_INT, "8", "commands in flight per submission queue", 1,
	 NVME_MAX_IOSLOTS, 0},
	{"sectsz", CFG_INT, NULL,
	 "LBA size: 512, 4096 or 8192 (default: the image's)", 512, 8192, 0},
	{"ser", CFG_STRING, NULL, "serial number (up to 20 characters)", 0, 0,
	 0},
	{"eui64", CFG_STRING, NULL, "namespace EUI-64 (a 64-bit number)", 0, 0,
	 0},
	{"dsm", CFG_STRING, "auto",
	 "dataset management (deallocate): auto, enable or disable", 0, 0, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

/*
 * bhyve's short form: "ram=MiB[,opts]" for a RAM namespace, else
 * "path[,opts]" as blk_parse_legacy().  Options that need a value (ser,
 * eui64, dsm, maxq, qsz, ioslots, sectsz, ram) given bare would become
 * "true": refuse them here with a clear message.
 */
static int nvme_parse_legacy(struct cfg_node *node, const char *opts)
{
	static const char *const need_value[] = {"ser",	   "eui64", "dsm",
						 "maxq",   "qsz",   "ioslots",
						 "sectsz", "ram",   NULL};
	const char *p, *rest = NULL;
	unsigned i;
	char *ram;
	int rc;

	if (!opts || !*opts)
		return 0;
	for (p = opts; p; p = strchr(p, ',')) {
		size_t n;

		if (*p == ',')
			p++;
		n = strcspn(p, ",");
		for (i = 0; need_value[i]; i++) {
			if (p != opts && n == strlen(need_value[i]) &&
			    strncmp(p, need_value[i], n) == 0) {
				log_err("nvme: '%.*s' needs a value (%.*s=...)",
					(int)n, p, (int)n, p);
				return -EINVAL;
			}
		}
	}
	if (strncmp(opts, "ram=", 4) != 0)
		return blk_parse_legacy(node, opts);
	rest = strchr(opts, ',');
	ram = rest ? strndup(opts + 4, (size_t)(rest - opts - 4))
		   : strdup(opts + 4);
	if (!ram) {
		log_err("out of memory");
		return -ENOMEM;
	}
	rc = cfg_set(node, "ram", ram);
	free(ram);
	if (rc == 0 && rest)
		rc = cfg_split_opts(node, rest + 1);
	return rc;
}

static const struct devmodel nvme_model = {
	.name = "nvme",
	.kind = DEVMODEL_PCI,
	.keys = nvme_keys,
	.parse_legacy = nvme_parse_legacy,
	.pci = &nvme_pci,
};
DEVMODEL_SET(nvme_model);
