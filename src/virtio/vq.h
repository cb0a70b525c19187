/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The device side of one split virtqueue (virtio 1.2 §2.7): taking
 * descriptor chains the driver made available, turning them into host
 * iovecs, returning them through the used ring, and both directions of
 * notification suppression (NO_INTERRUPT / NO_NOTIFY flags and, with
 * VIRTIO_F_EVENT_IDX, used_event / avail_event).
 *
 * The transport (virtio-pci, modern or legacy) only supplies the three
 * ring addresses; the legacy layout with its 4096-aligned used ring is
 * just a particular choice of them.
 *
 * The guest is hostile.  Everything read from the rings is validated:
 * indexes against the queue size, buffers against guest RAM (gmem_ptr),
 * chains against loops and length limits.  A malformed chain makes
 * vq_pop() return -EINVAL and puts the queue in a broken state (every
 * later vq_pop()/vq_pending() fails the same way until vq_reset() or
 * vq_enable()); the caller then sets DEVICE_NEEDS_RESET.  One
 * rate-limited warning names the reason, which is also kept in q->err.
 *
 * Threads: a struct vq has no lock.  Exactly one host thread at a time may
 * use it (the device's queue worker, or callers holding the device lock).
 * The other party, the guest driver on other CPUs, is synchronised with
 * acquire/release atomics and full fences on the ring words.
 */
#ifndef KHYVE_VIRTIO_VQ_H
#define KHYVE_VIRTIO_VQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/gmem.h"

/* Largest queue size of a split ring (virtio 1.2 §2.7). */
#define VQ_MAX_SIZE 32768

/*
 * Most descriptors one chain may use, direct and indirect together, and
 * so the most iovecs a chain yields.  Longer chains are malformed (a
 * device "MAY have a reasonable limit", virtio 1.2 §2.7.4.1).  It is also
 * the largest indirect table accepted (VQ_MAX_SEGS * 16 bytes).
 */
#define VQ_MAX_SEGS 1024

struct vq {
	const struct gmem *mem;
	/*
	 * Queue size, 1..32768.  Legacy requires a power of 2; 1.x modern
	 * split rings are not required to be one here, any size is accepted.
	 */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool event_idx;	     /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;	     /* VIRTIO_F_INDIRECT_DESC negotiated */
	bool ready;	     /* enabled and rings validated */
	uint16_t last_avail; /* next avail entry to consume */
	uint16_t used_idx;   /* shadow of used->idx */
	/* EVENT_IDX: used_idx when vq_need_notify() last looked */
	uint16_t signalled_used;
	bool signalled_used_valid;
	/* why the last vq_enable()/vq_pop()/vq_pending() failed, or NULL */
	const char *err;

	/* private: host pointers cached by vq_enable() */
	uint8_t *desc_host;
	uint16_t *avail_host; /* flags, idx, ring[size], used_event */
	uint8_t *used_host;   /* flags, idx, ring[size], avail_event */
	bool notify_enabled;  /* device wants available-buffer kicks */
	bool broken;	      /* a malformed chain was seen */
};

/*
 * A descriptor chain as host iovecs: iov[0..nr) are the device-readable
 * segments, iov[nr..nr+nw) the device-writable ones; rlen and wlen are
 * their byte totals.  Zero-length descriptors produce no iovec.
 *
 * The struct is about 16 KiB (VQ_MAX_SEGS iovecs).  That is fine on a
 * worker thread's stack (8 MiB by default) but keep it off small stacks
 * (signal handlers, coroutines); devices that keep requests in flight
 * usually allocate it with the request.
 */
struct vq_chain {
	uint16_t head; /* give this back to vq_push() */
	unsigned nr, nw;
	struct iovec iov[VQ_MAX_SEGS];
	uint32_t rlen, wlen;
};

/*
 * Validate the ring addresses for a queue of 'size' entries and cache host
 * pointers.  Each part must be aligned as virtio 1.2 §2.7.1 requires (desc
 * 16, avail 2, used 4) and lie entirely in guest RAM, including the
 * used_event/avail_event words even when EVENT_IDX is off.  Resets every
 * index to 0.  Returns 0, or -EINVAL (q->err says why; the queue is then
 * not ready).
 */
int vq_enable(struct vq *q, const struct gmem *mem, uint16_t size,
	      uint64_t desc, uint64_t avail, uint64_t used, bool event_idx,
	      bool indirect);

/* Disable the queue and forget all state (device reset). */
void vq_reset(struct vq *q);

/*
 * Take the next available chain into 'c'.  Returns 1 (got one), 0 (ring
 * empty, or queue not ready), -EINVAL (malformed ring or chain: the
 * caller marks the device NEEDS_RESET).  With EVENT_IDX and notifications
 * enabled, finding the ring empty also publishes avail_event and re-checks
 * (so a device that pops until 0 never misses a kick).  Call it until it
 * returns 0.
 */
int vq_pop(struct vq *q, struct vq_chain *c);

/*
 * Give back the last 'n' popped chains so the next vq_pop() returns them
 * again (e.g. a receive buffer that turned out too small).  Only valid for
 * chains not yet pushed.
 */
void vq_unpop(struct vq *q, unsigned n);

/*
 * Return a chain: append (head, written) to the used ring and publish the
 * new used->idx (release).  'written' is the number of bytes the device
 * wrote into the writable part.  Ignored if the queue is not ready or
 * head is out of range (a device bug, logged).
 */
void vq_push(struct vq *q, uint16_t head, uint32_t written);

/*
 * After one or more vq_push(): should the device interrupt the driver?
 * Honours VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX (virtio
 * 1.2 §2.7.7).  Issues a full fence before reading the driver's words.
 * Returns true to send the interrupt.
 */
bool vq_need_notify(struct vq *q);

/*
 * Ask the driver to stop kicking the device (VIRTQ_USED_F_NO_NOTIFY, or
 * with EVENT_IDX simply stop moving avail_event).  Advisory only.
 */
void vq_disable_notify(struct vq *q);

/*
 * Ask for kicks again (clear NO_NOTIFY, or set avail_event to the next
 * entry to consume), then fence and re-check.  Returns true if chains are
 * available that the device has not popped: the caller must process them,
 * since no kick will come for those.
 */
bool vq_enable_notify(struct vq *q);

/*
 * Number of available chains not yet popped (0..size), 0 if not ready, or
 * -EINVAL if avail->idx claims more than 'size' (malformed).
 */
int vq_pending(struct vq *q);

/*
 * Copy up to 'len' bytes from the readable part of 'c', starting 'off'
 * bytes into it.  Returns the number of bytes copied (less than len when
 * the readable part ends).
 */
size_t vq_chain_read(const struct vq_chain *c, size_t off, void *buf,
		     size_t len);

/*
 * Copy up to 'len' bytes into the writable part of 'c', starting 'off'
 * bytes into it.  Returns the number of bytes copied.
 */
size_t vq_chain_write(const struct vq_chain *c, size_t off, const void *buf,
		      size_t len);

#endif
