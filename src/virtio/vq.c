/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Split virtqueue, device side (see vq.h).  This file owns the parsing of
 * guest-written ring memory: every index is checked against the queue
 * size, every buffer goes through gmem_ptr(), and each descriptor is
 * copied once into a local before any decision is made on it, so a guest
 * rewriting the ring under us can give us a wrong chain but never an
 * out-of-bounds access.
 *
 * Memory ordering against the guest (virtio 1.2 §2.7.13 and §2.7.14):
 *  - avail->idx is loaded with acquire before the ring entry and the
 *    descriptors it exposes are read;
 *  - a used element is written before used->idx is stored with release;
 *  - a seq_cst fence separates our stores (used->idx, avail_event, flags)
 *    from the loads that decide about notifications (used_event, avail
 *    flags, avail->idx), which closes the classic lost-wakeup race.
 *
 * Threads and locks: none of its own; one thread per struct vq at a time.
 */
#include "virtio/vq.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "lib/log.h"
#include "virtio/virtio.h"

/* ---- guest ring words ------------------------------------------------ */

static uint16_t ring_load16(const uint16_t *p, int order)
{
	return le16toh(__atomic_load_n(p, order));
}

static void ring_store16(uint16_t *p, uint16_t v, int order)
{
	__atomic_store_n(p, htole16(v), order);
}

static uint16_t *avail_idx_ptr(const struct vq *q)
{
	return &q->avail_host[VIRTQ_AVAIL_IDX / 2];
}

static uint16_t *avail_flags_ptr(const struct vq *q)
{
	return &q->avail_host[VIRTQ_AVAIL_FLAGS / 2];
}

static uint16_t *avail_ring_ptr(const struct vq *q, uint16_t slot)
{
	return &q->avail_host[VIRTQ_AVAIL_RING / 2 + slot];
}

static uint16_t *used_event_ptr(const struct vq *q)
{
	return &q->avail_host[VIRTQ_AVAIL_USED_EVENT(q->size) / 2];
}

static uint16_t *used_word_ptr(const struct vq *q, uint64_t off)
{
	return (uint16_t *)(void *)(q->used_host + off);
}

static uint32_t *used_elem_ptr(const struct vq *q, uint16_t slot)
{
	return (uint32_t *)(void *)(q->used_host + VIRTQ_USED_RING +
				    8ULL * slot);
}

/* ---- errors ------------------------------------------------------------ */

/*
 * Record a malformed ring: the reason in q->err and the queue marked
 * broken.  The device reports it (virtio_pci_needs_reset() prints the one
 * rate-limited warning with the device's name); the details are logged at
 * debug level only, so a guest spraying bad chains can't flood the log.
 */
static int vq_malformed(struct vq *q, const char *why, unsigned index)
{
	q->err = why;
	q->broken = true;
	log_debug("virtqueue at 0x%llx (size %u): %s (index %u)",
		  (unsigned long long)q->desc_gpa, q->size, why, index);
	return -EINVAL;
}

/* ---- set-up -------------------------------------------------------------- */

void vq_reset(struct vq *q)
{
	memset(q, 0, sizeof(*q));
}

/* Host pointer for one ring part, or NULL if not all of it is RAM. */
static void *ring_map(const struct gmem *mem, uint64_t gpa, uint64_t len,
		      uint64_t align)
{
	void *p = gmem_ptr(mem, gpa, len);

	/* Host alignment too, so the ring atomics are naturally aligned. */
	if (p && ((uintptr_t)p & (align - 1)))
		return NULL;
	return p;
}

int vq_enable(struct vq *q, const struct gmem *mem, uint16_t size,
	      uint64_t desc, uint64_t avail, uint64_t used, bool event_idx,
	      bool indirect)
{
	vq_reset(q);
	q->desc_gpa = desc;
	q->avail_gpa = avail;
	q->used_gpa = used;
	q->size = size;
	if (!mem) {
		q->err = "no guest memory";
		return -EINVAL;
	}
	if (size == 0 || size > VQ_MAX_SIZE) {
		q->err = "queue size out of range 1..32768";
		return -EINVAL;
	}
	if ((desc & (VIRTQ_DESC_ALIGN - 1)) ||
	    (avail & (VIRTQ_AVAIL_ALIGN - 1)) ||
	    (used & (VIRTQ_USED_ALIGN - 1))) {
		q->err = "ring address misaligned";
		return -EINVAL;
	}
	q->desc_host =
		ring_map(mem, desc, VIRTQ_DESC_SIZE(size), VIRTQ_DESC_ALIGN);
	q->avail_host =
		ring_map(mem, avail, VIRTQ_AVAIL_SIZE(size), VIRTQ_AVAIL_ALIGN);
	q->used_host =
		ring_map(mem, used, VIRTQ_USED_SIZE(size), VIRTQ_USED_ALIGN);
	if (!q->desc_host || !q->avail_host || !q->used_host) {
		q->err = "ring not entirely in guest RAM";
		q->desc_host = NULL;
		q->avail_host = NULL;
		q->used_host = NULL;
		return -EINVAL;
	}
	q->err = NULL;
	q->mem = mem;
	q->event_idx = event_idx;
	q->indirect = indirect;
	q->notify_enabled = true;
	q->ready = true;
	return 0;
}

/* ---- available ring ------------------------------------------------------ */

/*
 * Chains the driver has exposed beyond last_avail (acquire), or -EINVAL if
 * the driver claims more than the ring holds: avail->idx never runs more
 * than 'size' ahead (virtio 1.2 §2.7.13).
 */
static int avail_count(struct vq *q)
{
	uint16_t idx = ring_load16(avail_idx_ptr(q), __ATOMIC_ACQUIRE);
	uint16_t n = (uint16_t)(idx - q->last_avail);

	if (n > q->size)
		return vq_malformed(q, "avail idx ran ahead by more than size",
				    idx);
	return n;
}

int vq_pending(struct vq *q)
{
	if (!q->ready)
		return 0;
	if (q->broken)
		return -EINVAL;
	return avail_count(q);
}

/* ---- chain walking ------------------------------------------------------- */

struct walk {
	struct vq_chain *c;
	unsigned visits; /* buffer descriptors, direct + indirect */
	uint64_t total;	 /* bytes in the chain */
	bool seen_write; /* a device-writable descriptor came already */
};

/* Copy one descriptor out of guest memory, once, in host byte order. */
static void desc_fetch(const uint8_t *src, struct virtq_desc *d)
{
	memcpy(d, src, sizeof(*d));
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

/* Append one buffer descriptor to the chain; NULL or the reason it is bad. */
static const char *walk_add(struct vq *q, struct walk *w,
			    const struct virtq_desc *d)
{
	bool wr = d->flags & VIRTQ_DESC_F_WRITE;
	struct vq_chain *c = w->c;
	struct iovec *iov;
	void *p;

	/*
	 * Every buffer descriptor counts, empty or not, so a chain of
	 * zero-length descriptors is bounded too.  (The one descriptor that
	 * points at an indirect table is not a buffer and does not count.)
	 */
	if (++w->visits > VQ_MAX_SEGS)
		return "chain longer than 1024 descriptors";
	/* Writable after readable only: virtio 1.2 §2.7.4.2 */
	if (!wr && w->seen_write)
		return "readable descriptor after a writable one";
	w->seen_write |= wr;
	/* Zero-length buffers carry nothing: skip them (no iovec). */
	if (d->len == 0)
		return NULL;
	/* At most 2^32 bytes per chain: virtio 1.2 §2.7.5.2 */
	w->total += d->len;
	if (w->total > UINT32_MAX)
		return "chain longer than 4 GiB";
	p = gmem_ptr(q->mem, d->addr, d->len);
	if (!p)
		return "buffer not in guest RAM";
	/* visits <= VQ_MAX_SEGS bounds this already; keep the check local. */
	if (c->nr + c->nw >= VQ_MAX_SEGS)
		return "chain longer than 1024 descriptors";
	iov = &c->iov[c->nr + c->nw];
	iov->iov_base = p;
	iov->iov_len = d->len;
	if (wr) {
		c->nw++;
		c->wlen += d->len;
	} else {
		c->nr++;
		c->rlen += d->len;
	}
	return NULL;
}

/*
 * Walk an indirect table (virtio 1.2 §2.7.5.3).  'd' is the descriptor that
 * refers to it; its WRITE flag is ignored as §2.7.5.3.2 requires.
 */
static const char *walk_indirect(struct vq *q, struct walk *w,
				 const struct virtq_desc *d, unsigned *where)
{
	uint64_t seen[VQ_MAX_SEGS / 64];
	const uint8_t *tbl;
	struct virtq_desc e;
	unsigned n, i = 0;
	const char *why;

	if (d->len == 0)
		return "empty indirect table";
	if (d->len % sizeof(struct virtq_desc))
		return "indirect table length not a multiple of 16";
	n = d->len / sizeof(struct virtq_desc);
	if (n > VQ_MAX_SEGS)
		return "indirect table larger than 1024 descriptors";
	tbl = gmem_ptr(q->mem, d->addr, d->len);
	if (!tbl)
		return "indirect table not in guest RAM";
	memset(seen, 0, sizeof(seen[0]) * ((n + 63) / 64));
	for (;;) {
		*where = i;
		if (seen[i / 64] & (1ULL << (i % 64)))
			return "indirect descriptor visited twice (loop)";
		seen[i / 64] |= 1ULL << (i % 64);
		desc_fetch(tbl + (size_t)i * sizeof(e), &e);
		/* One table per chain: §2.7.5.3.1 */
		if (e.flags & VIRTQ_DESC_F_INDIRECT)
			return "nested INDIRECT descriptor";
		why = walk_add(q, w, &e);
		if (why)
			return why;
		if (!(e.flags & VIRTQ_DESC_F_NEXT))
			return NULL;
		i = e.next;
		if (i >= n)
			return "indirect next index out of range";
	}
}

/*
 * Walk the chain at 'head' (already checked < size).  Returns NULL, or the
 * reason the chain is malformed with the offending index in *where.
 *
 * Loops: a visited bitmap catches any descriptor seen twice, so a direct
 * chain can never exceed 'size' descriptors (the spec's limit, §2.7.5.3.1)
 * and an indirect one never exceeds its table; on top of that a chain may
 * hold at most VQ_MAX_SEGS buffer descriptors in all.
 */
static const char *walk_chain(struct vq *q, uint16_t head, struct walk *w,
			      unsigned *where)
{
	uint64_t seen[VQ_MAX_SIZE / 64];
	struct virtq_desc d;
	unsigned i = head;
	const char *why;

	memset(seen, 0, sizeof(seen[0]) * ((q->size + 63u) / 64));
	for (;;) {
		*where = i;
		if (seen[i / 64] & (1ULL << (i % 64)))
			return "descriptor visited twice (loop)";
		seen[i / 64] |= 1ULL << (i % 64);
		desc_fetch(q->desc_host + (size_t)i * sizeof(d), &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			/* §2.7.5.3.1: only if negotiated, never with NEXT */
			if (!q->indirect)
				return "INDIRECT descriptor not negotiated";
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return "INDIRECT together with NEXT";
			return walk_indirect(q, w, &d, where);
		}
		why = walk_add(q, w, &d);
		if (why)
			return why;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return NULL;
		i = d.next;
		if (i >= q->size)
			return "next index out of range";
	}
}

/*
 * Make sure the driver will kick us for anything made available after
 * 'last_avail' (EVENT_IDX, notifications enabled): publish avail_event,
 * then a full fence before the caller re-reads avail->idx (§2.7.10).
 */
static void publish_avail_event(struct vq *q)
{
	ring_store16(used_word_ptr(q, VIRTQ_USED_AVAIL_EVENT(q->size)),
		     q->last_avail, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

int vq_pop(struct vq *q, struct vq_chain *c)
{
	struct walk w = {.c = c};
	unsigned where = 0;
	const char *why;
	uint16_t head;
	int n;

	c->nr = c->nw = 0;
	c->rlen = c->wlen = 0;
	if (!q->ready)
		return 0;
	if (q->broken)
		return -EINVAL;
	n = avail_count(q);
	if (n == 0 && q->event_idx && q->notify_enabled) {
		publish_avail_event(q);
		n = avail_count(q);
	}
	if (n <= 0)
		return n;

	head = le16toh(__atomic_load_n(
		avail_ring_ptr(q, q->last_avail % q->size), __ATOMIC_RELAXED));
	c->head = head;
	if (head >= q->size)
		return vq_malformed(q, "head index out of range", head);
	why = walk_chain(q, head, &w, &where);
	if (why) {
		c->nr = c->nw = 0;
		c->rlen = c->wlen = 0;
		return vq_malformed(q, why, where);
	}
	q->last_avail++;
	return 1;
}

void vq_unpop(struct vq *q, unsigned n)
{
	q->last_avail = (uint16_t)(q->last_avail - n);
}

/* ---- used ring ----------------------------------------------------------- */

void vq_push(struct vq *q, uint16_t head, uint32_t written)
{
	uint32_t *elem;

	if (!q->ready)
		return;
	if (head >= q->size) {
		log_ratelimited(5000,
				"virtqueue at 0x%llx: push of head %u "
				"beyond size %u ignored",
				(unsigned long long)q->desc_gpa, head, q->size);
		return;
	}
	elem = used_elem_ptr(q, q->used_idx % q->size);
	__atomic_store_n(&elem[0], htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&elem[1], htole32(written), __ATOMIC_RELAXED);
	q->used_idx++;
	/* §2.7.8.2: element (and len) visible before the new idx */
	ring_store16(used_word_ptr(q, VIRTQ_USED_IDX), q->used_idx,
		     __ATOMIC_RELEASE);
	/*
	 * 65536 pushes without a vq_need_notify() make signalled_used
	 * ambiguous (it equals used_idx again): forget it, so the next
	 * check notifies.
	 */
	if (q->used_idx == q->signalled_used)
		q->signalled_used_valid = false;
}

/*
 * EVENT_IDX: did used->idx, moving from 'old' to 'new', pass the entry the
 * driver asked about ('event')?  That is event in [old, new) modulo 2^16
 * (virtio 1.2 §2.7.7.2: notify when idx reaches used_event + 1).
 */
static bool event_crossed(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

bool vq_need_notify(struct vq *q)
{
	uint16_t old, event;
	bool valid;

	if (!q->ready)
		return false;
	/* used->idx is published; now read what the driver asked for. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(ring_load16(avail_flags_ptr(q), __ATOMIC_RELAXED) &
			 VIRTQ_AVAIL_F_NO_INTERRUPT);
	old = q->signalled_used;
	valid = q->signalled_used_valid;
	q->signalled_used = q->used_idx;
	q->signalled_used_valid = true;
	if (!valid)
		return true;
	event = ring_load16(used_event_ptr(q), __ATOMIC_RELAXED);
	return event_crossed(event, q->used_idx, old);
}

/* ---- available-buffer notifications -------------------------------------- */

void vq_disable_notify(struct vq *q)
{
	if (!q->ready)
		return;
	q->notify_enabled = false;
	/* §2.7.10: with EVENT_IDX flags must stay 0; avail_event just ages */
	if (!q->event_idx)
		ring_store16(used_word_ptr(q, VIRTQ_USED_FLAGS),
			     VIRTQ_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
}

bool vq_enable_notify(struct vq *q)
{
	uint16_t idx;

	if (!q->ready)
		return false;
	q->notify_enabled = true;
	if (q->event_idx)
		ring_store16(used_word_ptr(q, VIRTQ_USED_AVAIL_EVENT(q->size)),
			     q->last_avail, __ATOMIC_RELAXED);
	else
		ring_store16(used_word_ptr(q, VIRTQ_USED_FLAGS), 0,
			     __ATOMIC_RELAXED);
	/* Our store before the re-read of avail->idx (lost-wakeup race). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	idx = ring_load16(avail_idx_ptr(q), __ATOMIC_ACQUIRE);
	return idx != q->last_avail;
}

/* ---- copying ------------------------------------------------------------- */

/* Skip 'off' bytes into iov[0..cnt): index of the iovec, *off becomes local. */
static unsigned iov_seek(const struct iovec *iov, unsigned cnt, size_t *off)
{
	unsigned i;

	for (i = 0; i < cnt && *off >= iov[i].iov_len; i++)
		*off -= iov[i].iov_len;
	return i;
}

size_t vq_chain_read(const struct vq_chain *c, size_t off, void *buf,
		     size_t len)
{
	unsigned cnt = c->nr < VQ_MAX_SEGS ? c->nr : VQ_MAX_SEGS;
	unsigned i = iov_seek(c->iov, cnt, &off);
	uint8_t *dst = buf;
	size_t done = 0, n;

	for (; i < cnt && done < len; i++, off = 0) {
		n = c->iov[i].iov_len - off;
		if (n > len - done)
			n = len - done;
		memcpy(dst + done, (const uint8_t *)c->iov[i].iov_base + off,
		       n);
		done += n;
	}
	return done;
}

size_t vq_chain_write(const struct vq_chain *c, size_t off, const void *buf,
		      size_t len)
{
	unsigned nr = c->nr < VQ_MAX_SEGS ? c->nr : VQ_MAX_SEGS;
	unsigned cnt = c->nw < VQ_MAX_SEGS - nr ? c->nw : VQ_MAX_SEGS - nr;
	const struct iovec *iov = c->iov + nr;
	unsigned i = iov_seek(iov, cnt, &off);
	const uint8_t *src = buf;
	size_t done = 0, n;

	for (; i < cnt && done < len; i++, off = 0) {
		n = iov[i].iov_len - off;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)iov[i].iov_base + off, src + done, n);
		done += n;
	}
	return done;
}
