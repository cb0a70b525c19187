/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * virtio-blk (virtio 1.2 §5.2): a disk on one request queue, backed by the
 * block layer (src/block/blk.h).  "-s N,virtio-blk,path[,opts]" with
 * bhyve's block options (ro, nocache, direct/sync, sectorsize=L[/P],
 * nodelete) plus ser= (the GET_ID answer; bhyve's "serial" is accepted as
 * an alias).  Without ser= the ID is "KHYVE-XXXX-XXXX-XXXX" from an FNV-1a
 * hash of the path (bhyve uses MD5 with a "BHYVE-" prefix; any stable
 * value will do).
 *
 * Requests: IN, OUT, FLUSH (fdatasync through BLK_FLUSH), GET_ID,
 * DISCARD (offered when the image can punch holes and nodelete is off)
 * and WRITE_ZEROES (offered on writable images; the UNMAP flag is accepted
 * and ignored: the range is always zeroed, write_zeroes_may_unmap is 0).
 * Each chain is decoded on the kicking thread, turned into a block-layer
 * request and completed on a block worker thread, out of order.  A driver
 * that did not negotiate FLUSH gets writethrough semantics: every write,
 * discard or write-zeroes is followed by a flush before it completes.
 * CONFIG_WCE is not offered.
 *
 * Hostile drivers: a bad request (header under 16 bytes, data in the wrong
 * direction, a length that is not a multiple of 512 or of the logical
 * block, a range past the capacity or overflowing 64 bits, more than
 * seg_max data segments, a GET_ID buffer under 20 bytes, bad discard or
 * write-zeroes segments) completes with VIRTIO_BLK_S_IOERR after one
 * rate-limited warning.  Unknown flags in a discard/write-zeroes segment
 * give VIRTIO_BLK_S_UNSUPP, as §5.2.6.2 requires, and so do unknown
 * request types.  A chain with no device-writable byte (nowhere to put a
 * status) or a malformed ring sets DEVICE_NEEDS_RESET.
 *
 * Threads: kicks on the event-loop thread (ioeventfd) or a vCPU thread;
 * completions on the image's block worker threads; reset on a vCPU
 * thread; init/fini at start-up and teardown.
 *
 * Locks: 'qlock' (per queue; there is one) serialises everything that
 * touches the ring and the request pool: popping and decoding chains,
 * pushing completions, interrupts.  Inside it, vd->lock is taken around
 * each vq_pop/vq_push/notify, because the transport resets and enables the
 * ring under vd->lock from vCPU threads without calling us first.  Order:
 * qlock -> vd->lock -> (pci irq_lock); blk's lock is a leaf.
 *
 * Reset: the hook bumps 'gen' under qlock, then blk_drain()s.  A request
 * finishing with a stale generation writes nothing to the guest (no status
 * byte, no used entry) and goes back to the pool; so after the reset write
 * returns no used-ring write from before it can happen.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/blk.h"
#include "lib/log.h"
#include "virtio/virtio_pci.h"

#define VBLK_QUEUE_SIZE 128
/* Data segments per request (header and status excluded), as bhyve. */
#define VBLK_SEG_MAX (VBLK_QUEUE_SIZE - 2)
/* Advertised largest segment; larger ones are accepted anyway. */
#define VBLK_SIZE_MAX (4u << 20)
/* DISCARD / WRITE_ZEROES: segments per request, sectors per segment. */
#define VBLK_DZ_SEG_MAX 16
#define VBLK_DZ_SECTORS_MAX (1u << 22) /* 2 GiB */
#define VBLK_HDR_SIZE 16
#define VBLK_WARN_MS 5000

/* Outcome of decoding a chain besides a status to complete with now. */
#define VBLK_INLINE_BUDGET (8u << 20) /* bytes read inline per kick */
#define VBLK_ASYNC (-1)		      /* r->br is ready for blk_submit() */
#define VBLK_BROKEN (-2)	      /* no status byte: DEVICE_NEEDS_RESET */

struct vblk;

struct vblk_range {
	uint64_t off, len; /* bytes */
};

struct vblk_req {
	struct blk_req br; /* first: done() gets &br */
	struct vblk *vb;
	struct vblk_req *next; /* free list */
	unsigned gen;	       /* vb->gen when popped */
	uint16_t head;
	uint8_t *status;    /* the chain's last writable byte */
	uint32_t written;   /* used length when it succeeds */
	bool flush_after;   /* writethrough: a FLUSH follows */
	unsigned nseg, seg; /* DISCARD/WRITE_ZEROES ranges, current */
	struct vblk_range range[VBLK_DZ_SEG_MAX];
	struct iovec iov[VBLK_SEG_MAX];
};

struct vblk {
	struct virtio_dev vd;	   /* first: pd->softc points here */
	struct virtio_dev_ops ops; /* per instance: features vary */
	uint8_t cfg[VIRTIO_BLK_CFG_SIZE];
	struct blk *blk;
	uint64_t cap_bytes; /* whole logical blocks of the image */
	unsigned lsector;
	bool ro, can_discard;
	char ident[VIRTIO_BLK_ID_BYTES]; /* NUL-padded, not terminated */

	pthread_mutex_t qlock;
	unsigned gen; /* bumped by reset; atomic reads */
	bool closing; /* fini started: no more submissions */
	struct vblk_req *free;
	struct vblk_req *reqs; /* VBLK_QUEUE_SIZE of them */
	struct vq_chain chain; /* scratch for vq_pop, under qlock */
};

/* ---- the ring, under qlock ---- */

/*
 * Complete request 'r' with 'status': write its status byte and return
 * the chain, both only while the ring is live (a reset may have started
 * in the transport before our hook ran: then the guest sees neither).
 * True if it reached the used ring.
 */
static bool vblk_push(struct vblk *vb, struct vblk_req *r, uint8_t status)
{
	struct virtio_dev *vd = &vb->vd;
	struct vq *q;
	bool done = false;

	pthread_mutex_lock(&vd->lock);
	q = virtio_queue_vq(vd, 0);
	if (q && virtio_pci_live(vd)) {
		*r->status = status;
		vq_push(q, r->head, status == VIRTIO_BLK_S_OK ? r->written : 1);
		done = true;
	}
	pthread_mutex_unlock(&vd->lock);
	return done;
}

static void vblk_notify(struct vblk *vb)
{
	pthread_mutex_lock(&vb->vd.lock);
	virtio_pci_notify_queue(&vb->vd, 0);
	pthread_mutex_unlock(&vb->vd.lock);
}

/* ---- decoding a chain ---- */

/*
 * Describe bytes [off, off + len) of iov[0..n) in out[] (at most 'max'
 * entries).  Returns the count, or -E2BIG when more would be needed.
 */
static int iov_slice(const struct iovec *iov, unsigned n, uint64_t off,
		     uint64_t len, struct iovec *out, unsigned max)
{
	unsigned i, k = 0;

	for (i = 0; i < n && len > 0; i++) {
		uint64_t l = iov[i].iov_len;

		if (off >= l) {
			off -= l;
			continue;
		}
		l -= off;
		if (l > len)
			l = len;
		if (k == max)
			return -E2BIG;
		out[k].iov_base = (uint8_t *)iov[i].iov_base + off;
		out[k].iov_len = (size_t)l;
		k++;
		len -= l;
		off = 0;
	}
	return (int)k;
}

/* Byte range of 'nsec' 512-byte sectors from 'sector'; false (and *why)
 * when it overflows, is not logical-block aligned or passes the end. */
static bool vblk_range_ok(const struct vblk *vb, uint64_t sector,
			  uint64_t nbytes, uint64_t *off, const char **why)
{
	if (sector > UINT64_MAX / VIRTIO_BLK_SECTOR_SIZE) {
		*why = "sector number overflows 64 bits";
		return false;
	}
	*off = sector * VIRTIO_BLK_SECTOR_SIZE;
	if ((*off | nbytes) % vb->lsector) {
		*why = "request not aligned to the logical block size";
		return false;
	}
	if (*off > vb->cap_bytes || nbytes > vb->cap_bytes - *off) {
		*why = "request beyond the disk capacity";
		return false;
	}
	return true;
}

static int vblk_parse_rw(struct vblk *vb, struct vblk_req *r,
			 const struct vq_chain *c, uint64_t sector, bool write,
			 bool writethrough, const char **why)
{
	uint64_t off, dlen;
	int n;

	if (write && vb->ro) {
		*why = "write to a read-only disk";
		return VIRTIO_BLK_S_IOERR;
	}
	if (!write && c->rlen != VBLK_HDR_SIZE) {
		*why = "read request with device-readable data";
		return VIRTIO_BLK_S_IOERR;
	}
	if (write && c->wlen != 1) {
		*why = "write request with device-writable data";
		return VIRTIO_BLK_S_IOERR;
	}
	dlen = write ? c->rlen - VBLK_HDR_SIZE : c->wlen - 1u;
	if (dlen % VIRTIO_BLK_SECTOR_SIZE) {
		*why = "data length not a multiple of 512";
		return VIRTIO_BLK_S_IOERR;
	}
	if (write)
		n = iov_slice(c->iov, c->nr, VBLK_HDR_SIZE, dlen, r->iov,
			      VBLK_SEG_MAX);
	else
		n = iov_slice(c->iov + c->nr, c->nw, 0, dlen, r->iov,
			      VBLK_SEG_MAX);
	if (n < 0) {
		*why = "more data segments than seg_max";
		return VIRTIO_BLK_S_IOERR;
	}
	if (!vblk_range_ok(vb, sector, dlen, &off, why))
		return VIRTIO_BLK_S_IOERR;
	r->br.op = write ? BLK_WRITE : BLK_READ;
	r->br.offset = off;
	r->br.iov = r->iov;
	r->br.iovcnt = (unsigned)n;
	r->written = write ? 1 : (uint32_t)dlen + 1;
	r->flush_after = write && writethrough;
	return VBLK_ASYNC;
}

static int vblk_parse_dz(struct vblk *vb, struct vblk_req *r,
			 const struct vq_chain *c, bool discard,
			 bool writethrough, const char **why)
{
	struct virtio_blk_discard_write_zeroes s;
	uint32_t plen = c->rlen - VBLK_HDR_SIZE, flags, bad_flags;
	uint64_t off;
	unsigned i, n;

	if (vb->ro) {
		*why = "discard or write-zeroes on a read-only disk";
		return VIRTIO_BLK_S_IOERR;
	}
	if (discard && !vb->can_discard)
		return VIRTIO_BLK_S_UNSUPP;
	if (plen == 0 || plen % sizeof(s)) {
		*why = "discard/write-zeroes payload not whole segments";
		return VIRTIO_BLK_S_IOERR;
	}
	n = plen / sizeof(s);
	if (n > VBLK_DZ_SEG_MAX) {
		*why = "more discard/write-zeroes segments than allowed";
		return VIRTIO_BLK_S_IOERR;
	}
	/* §5.2.6.2: unknown flags, or unmap on a discard, are UNSUPP */
	bad_flags =
		discard ? ~0u : ~(unsigned)VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	for (i = 0; i < n; i++) {
		vq_chain_read(c, VBLK_HDR_SIZE + i * sizeof(s), &s, sizeof(s));
		flags = le32toh(s.flags);
		if (flags & bad_flags) {
			*why = "discard/write-zeroes segment with bad flags";
			return VIRTIO_BLK_S_UNSUPP;
		}
		if (le32toh(s.num_sectors) > VBLK_DZ_SECTORS_MAX) {
			*why = "discard/write-zeroes segment too long";
			return VIRTIO_BLK_S_IOERR;
		}
		r->range[i].len = (uint64_t)le32toh(s.num_sectors) *
				  VIRTIO_BLK_SECTOR_SIZE;
		if (!vblk_range_ok(vb, le64toh(s.sector), r->range[i].len, &off,
				   why))
			return VIRTIO_BLK_S_IOERR;
		r->range[i].off = off;
	}
	r->nseg = n;
	r->seg = 0;
	r->br.op = discard ? BLK_DISCARD : BLK_WRITE_ZEROES;
	r->br.offset = r->range[0].off;
	r->br.len = r->range[0].len;
	r->flush_after = writethrough;
	return VBLK_ASYNC;
}

/*
 * Decode the chain 'c' into 'r'.  Returns a status to complete with at
 * once, VBLK_ASYNC (submit r->br) or VBLK_BROKEN; *why names a guest
 * error worth a warning (or the reason for VBLK_BROKEN).
 */
static int vblk_parse(struct vblk *vb, struct vblk_req *r,
		      const struct vq_chain *c, bool writethrough,
		      const char **why)
{
	struct virtio_blk_req_hdr hdr;
	const struct iovec *last;

	if (c->nw == 0) {
		*why = "request without a writable status byte";
		return VBLK_BROKEN;
	}
	/* zero-length descriptors make no iovec: this one has a byte */
	last = &c->iov[c->nr + c->nw - 1];
	r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	r->written = 1;
	r->br.iov = NULL;
	r->br.iovcnt = 0;
	r->br.len = 0;
	r->br.offset = 0;
	r->flush_after = false;
	r->nseg = r->seg = 0;
	if (c->rlen < sizeof(hdr)) {
		*why = "request header shorter than 16 bytes";
		return VIRTIO_BLK_S_IOERR;
	}
	vq_chain_read(c, 0, &hdr, sizeof(hdr));
	switch (le32toh(hdr.type)) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return vblk_parse_rw(vb, r, c, le64toh(hdr.sector),
				     le32toh(hdr.type) == VIRTIO_BLK_T_OUT,
				     writethrough, why);
	case VIRTIO_BLK_T_FLUSH:
		r->br.op = BLK_FLUSH;
		return VBLK_ASYNC;
	case VIRTIO_BLK_T_GET_ID:
		if (c->wlen - 1 < VIRTIO_BLK_ID_BYTES) {
			*why = "GET_ID buffer shorter than 20 bytes";
			return VIRTIO_BLK_S_IOERR;
		}
		vq_chain_write(c, 0, vb->ident, VIRTIO_BLK_ID_BYTES);
		r->written = VIRTIO_BLK_ID_BYTES + 1;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return vblk_parse_dz(vb, r, c,
				     le32toh(hdr.type) == VIRTIO_BLK_T_DISCARD,
				     writethrough, why);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* ---- request flow ---- */

static void vblk_done(struct blk_req *br, int err);

static void vblk_req_put(struct vblk *vb, struct vblk_req *r)
{
	r->next = vb->free;
	vb->free = r;
}

/*
 * Pop and start requests while the pool has room (qlock held).  Returns
 * true when something reached the used ring (the caller notifies).
 */
static bool vblk_process(struct vblk *vb)
{
	struct virtio_dev *vd = &vb->vd;
	const char *broken = NULL, *why;
	struct vblk_req *r;
	bool pushed = false, writethrough;
	struct vq *q;
	int rc, st;

	uint64_t inline_bytes = 0;

	while (!vb->closing && (r = vb->free) != NULL) {
		pthread_mutex_lock(&vd->lock);
		q = virtio_queue_vq(vd, 0);
		rc = q && virtio_pci_live(vd) ? vq_pop(q, &vb->chain) : 0;
		if (rc < 0)
			broken = q->err ? q->err : "malformed descriptor chain";
		writethrough = !virtio_has_feature(vd, VIRTIO_BLK_F_FLUSH);
		pthread_mutex_unlock(&vd->lock);
		if (rc <= 0)
			break;
		vb->free = r->next;
		r->head = vb->chain.head;
		r->gen = vb->gen;
		why = NULL;
		st = vblk_parse(vb, r, &vb->chain, writethrough, &why);
		if (st == VBLK_BROKEN) {
			vblk_req_put(vb, r);
			broken = why;
			break;
		}
		if (why)
			log_ratelimited(VBLK_WARN_MS, "%s: bad request: %s",
					vd->pd->name, why);
		/* Cached reads complete here, without a worker hand-off;
		 * a budget keeps one kick from holding this thread long. */
		if (st == VBLK_ASYNC && r->br.op == BLK_READ &&
		    inline_bytes < VBLK_INLINE_BUDGET &&
		    blk_read_nowait(vb->blk, &r->br) == 0) {
			inline_bytes += r->br.len;
			pushed |= vblk_push(vb, r, VIRTIO_BLK_S_OK);
			vblk_req_put(vb, r);
			continue;
		}
		if (st == VBLK_ASYNC) {
			rc = blk_submit(vb->blk, &r->br);
			if (rc == 0)
				continue;
			log_ratelimited(VBLK_WARN_MS,
					"%s: cannot queue a request: %s",
					vd->pd->name, strerror(-rc));
			st = VIRTIO_BLK_S_IOERR;
		}
		pushed |= vblk_push(vb, r, (uint8_t)st);
		vblk_req_put(vb, r);
	}
	if (broken)
		virtio_pci_needs_reset(vd, broken);
	return pushed;
}

/* The next block-layer step of a request, if any: the next discard or
 * write-zeroes range, then the writethrough flush. */
static bool vblk_next_step(struct vblk_req *r)
{
	if (r->gen != __atomic_load_n(&r->vb->gen, __ATOMIC_ACQUIRE))
		return false; /* reset: stop early */
	if (r->seg + 1 < r->nseg) {
		r->seg++;
		r->br.offset = r->range[r->seg].off;
		r->br.len = r->range[r->seg].len;
		return true;
	}
	if (r->flush_after) {
		r->flush_after = false;
		r->br.op = BLK_FLUSH;
		r->br.iov = NULL;
		r->br.iovcnt = 0;
		return true;
	}
	return false;
}

static uint8_t vblk_status(int err)
{
	if (err == 0)
		return VIRTIO_BLK_S_OK;
	if (err == -EOPNOTSUPP)
		return VIRTIO_BLK_S_UNSUPP;
	return VIRTIO_BLK_S_IOERR;
}

/* Block worker thread: a request (or one step of it) finished. */
static void vblk_done(struct blk_req *br, int err)
{
	struct vblk_req *r = (struct vblk_req *)br;
	struct vblk *vb = r->vb;
	bool current, pushed = false;

	if (err == 0 && vblk_next_step(r)) {
		err = blk_submit(vb->blk, &r->br);
		if (err == 0)
			return; /* done() runs again */
	}
	if (err && err != -EOPNOTSUPP)
		log_ratelimited(VBLK_WARN_MS, "%s: I/O error at byte %llu: %s",
				vb->vd.pd->name,
				(unsigned long long)r->br.offset,
				strerror(-err));
	pthread_mutex_lock(&vb->qlock);
	current = r->gen == vb->gen;
	if (current)
		pushed = vblk_push(vb, r, vblk_status(err));
	vblk_req_put(vb, r);
	if (current)
		pushed |= vblk_process(vb); /* chains left waiting for room */
	if (pushed)
		vblk_notify(vb);
	pthread_mutex_unlock(&vb->qlock);
}

/* ---- virtio hooks ---- */

static void vblk_queue_notify(struct virtio_dev *vd, unsigned qi)
{
	struct vblk *vb = (struct vblk *)vd;

	if (qi != 0)
		return;
	pthread_mutex_lock(&vb->qlock);
	if (vblk_process(vb))
		vblk_notify(vb);
	pthread_mutex_unlock(&vb->qlock);
}

static void vblk_reset(struct virtio_dev *vd)
{
	struct vblk *vb = (struct vblk *)vd;

	pthread_mutex_lock(&vb->qlock);
	__atomic_store_n(&vb->gen, vb->gen + 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vb->qlock);
	/* in-flight requests finish; their completions are dropped */
	blk_drain(vb->blk);
}

static const struct virtio_dev_ops vblk_ops_template = {
	.name = "virtio-blk",
	.device_type = VIRTIO_ID_BLOCK,
	.legacy_pci_id = VIRTIO_PCI_LEGACY_BLOCK,
	.pci_class = 0x01,    /* mass storage */
	.pci_subclass = 0x80, /* other, as bhyve and QEMU */
	.nqueues = 1,
	.queue_size = VBLK_QUEUE_SIZE,
	.cfg_size = VIRTIO_BLK_CFG_SIZE,
	.queue_notify = vblk_queue_notify,
	.reset = vblk_reset,
};

/* ---- set-up ---- */

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
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

/* Device config space (§5.2.4) and the features that go with it. */
static uint64_t vblk_setup_cfg(struct vblk *vb)
{
	unsigned lsec = vb->lsector, psec = blk_psector(vb->blk);
	uint8_t *c = vb->cfg;
	uint64_t f;

	memset(c, 0, sizeof(vb->cfg));
	put_le(c + VIRTIO_BLK_CFG_CAPACITY,
	       vb->cap_bytes / VIRTIO_BLK_SECTOR_SIZE, 8);
	put_le(c + VIRTIO_BLK_CFG_SIZE_MAX, VBLK_SIZE_MAX, 4);
	put_le(c + VIRTIO_BLK_CFG_SEG_MAX, VBLK_SEG_MAX, 4);
	put_le(c + VIRTIO_BLK_CFG_BLK_SIZE, lsec, 4);
	c[VIRTIO_BLK_CFG_PHYS_BLOCK_EXP] = (uint8_t)log2u(psec / lsec);
	c[VIRTIO_BLK_CFG_ALIGN_OFFSET] = 0;
	put_le(c + VIRTIO_BLK_CFG_MIN_IO_SIZE, psec / lsec, 2);
	put_le(c + VIRTIO_BLK_CFG_OPT_IO_SIZE, 0, 4);
	put_le(c + VIRTIO_BLK_CFG_NUM_QUEUES, 1, 2);
	f = VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
	    VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
	    VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
	    VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |
	    VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX);
	if (vb->ro)
		return f | VIRTIO_BIT(VIRTIO_BLK_F_RO);
	if (vb->can_discard) {
		put_le(c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS,
		       VBLK_DZ_SECTORS_MAX, 4);
		put_le(c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG, VBLK_DZ_SEG_MAX, 4);
		put_le(c + VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGN,
		       lsec / VIRTIO_BLK_SECTOR_SIZE, 4);
		f |= VIRTIO_BIT(VIRTIO_BLK_F_DISCARD);
	}
	put_le(c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS, VBLK_DZ_SECTORS_MAX, 4);
	put_le(c + VIRTIO_BLK_CFG_MAX_WZ_SEG, VBLK_DZ_SEG_MAX, 4);
	c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 0;
	return f | VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
}

/* The GET_ID string: ser= (or serial=), else a hash of the path. */
static int vblk_setup_ident(struct vblk *vb, struct cfg_node *node,
			    const char *path)
{
	const char *key = "ser", *ser;
	char buf[VIRTIO_BLK_ID_BYTES + 1];
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 */
	const char *p;

	errno = 0;
	ser = cfg_get(node, key);
	if (!ser && errno == ENOENT) {
		key = "serial";
		errno = 0;
		ser = cfg_get(node, key);
	}
	if (!ser && errno != ENOENT && errno != 0)
		return -EINVAL; /* cfg_get() logged it */
	memset(vb->ident, 0, sizeof(vb->ident));
	if (ser) {
		if (strlen(ser) > VIRTIO_BLK_ID_BYTES)
			log_warn("%s.%s: '%s' is longer than %u bytes; the "
				 "guest sees the first %u",
				 cfg_path(node), key, ser, VIRTIO_BLK_ID_BYTES,
				 VIRTIO_BLK_ID_BYTES);
		memcpy(vb->ident, ser, strnlen(ser, VIRTIO_BLK_ID_BYTES));
		return 0;
	}
	for (p = path; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 0x100000001b3ULL;
	}
	snprintf(buf, sizeof(buf), "KHYVE-%04X-%04X-%04X", (unsigned)(h >> 48),
		 (unsigned)(h >> 32) & 0xffff, (unsigned)(h >> 16) & 0xffff);
	memcpy(vb->ident, buf, VIRTIO_BLK_ID_BYTES);
	return 0;
}

static void vblk_free(struct vblk *vb)
{
	if (vb->blk) {
		pthread_mutex_lock(&vb->qlock);
		vb->closing = true;
		pthread_mutex_unlock(&vb->qlock);
		blk_close(vb->blk); /* waits for every completion */
	}
	virtio_pci_fini(&vb->vd);
	pthread_mutex_destroy(&vb->qlock);
	free(vb->reqs);
	free(vb);
}

static int vblk_init(struct pci_dev *pd, struct cfg_node *node)
{
	struct blk_opts o;
	struct vblk *vb;
	unsigned i;
	int rc;

	rc = blk_opts_from_cfg(node, &o);
	if (rc)
		return rc;
	vb = calloc(1, sizeof(*vb));
	if (!vb)
		goto nomem;
	pthread_mutex_init(&vb->qlock, NULL);
	vb->reqs = calloc(VBLK_QUEUE_SIZE, sizeof(*vb->reqs));
	if (!vb->reqs) {
		vblk_free(vb);
		goto nomem;
	}
	for (i = 0; i < VBLK_QUEUE_SIZE; i++) {
		vb->reqs[i].vb = vb;
		vb->reqs[i].br.done = vblk_done;
		vblk_req_put(vb, &vb->reqs[i]);
	}
	rc = vblk_setup_ident(vb, node, o.path);
	if (rc == 0)
		rc = blk_open(&o, 0, &vb->blk); /* logs its errors */
	if (rc) {
		vblk_free(vb);
		return rc;
	}
	vb->lsector = blk_lsector(vb->blk);
	vb->cap_bytes = blk_size(vb->blk) / vb->lsector * vb->lsector;
	vb->ro = blk_readonly(vb->blk);
	vb->can_discard = blk_can_discard(vb->blk);
	vb->ops = vblk_ops_template;
	vb->ops.features = vblk_setup_cfg(vb);
	pd->softc = vb;
	rc = virtio_pci_init(&vb->vd, pd, &vb->ops, vb->cfg);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: cannot set up", pd->name);
		pd->softc = NULL;
		vblk_free(vb);
	}
	return rc;
nomem:
	log_err("%s: out of memory", pd->name);
	return -ENOMEM;
}

static void vblk_fini(struct pci_dev *pd)
{
	struct vblk *vb = pd->softc;

	if (!vb)
		return;
	vblk_free(vb);
	pd->softc = NULL;
}

static const struct pci_devops vblk_pci =
	VIRTIO_PCI_DEVOPS(vblk_init, vblk_fini);

static const struct cfg_key vblk_keys[] = {
	BLK_CFG_KEYS,
	{"ser", CFG_STRING, NULL, "serial number (GET_ID, up to 20 bytes)", 0,
	 0, 0},
	{"serial", CFG_STRING, NULL, "alias of ser", 0, 0, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

/*
 * "path[,opts]" as blk_parse_legacy(); "ser=" and "serial=" are plain
 * options, but a bare "ser" (no value) would silently become "true":
 * refuse it.
 */
static int vblk_parse_legacy(struct cfg_node *node, const char *opts)
{
	const char *p;
	int rc = blk_parse_legacy(node, opts);

	if (rc || !opts)
		return rc;
	for (p = strchr(opts, ','); p; p = strchr(p + 1, ',')) {
		size_t n = strcspn(p + 1, ",");

		if ((n == 3 && strncmp(p + 1, "ser", 3) == 0) ||
		    (n == 6 && strncmp(p + 1, "serial", 6) == 0)) {
			log_err("virtio-blk: '%.*s' needs a value (ser=ID)",
				(int)n, p + 1);
			return -EINVAL;
		}
	}
	return 0;
}

static const struct devmodel vblk_model = {
	.name = "virtio-blk",
	.kind = DEVMODEL_PCI,
	.keys = vblk_keys,
	.parse_legacy = vblk_parse_legacy,
	.pci = &vblk_pci,
};
DEVMODEL_SET(vblk_model);
