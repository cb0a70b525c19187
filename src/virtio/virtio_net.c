/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * virtio-net (virtio 1.2 §5.1): one receive queue, one transmit queue and
 * a control queue, on a network backend (src/net/net_backend.h).
 * "-s N,virtio-net,backend[,mac=xx:xx:xx:xx:xx:xx][,mtu=N]" (bhyve's
 * syntax; the backend keys are the backend's).  The MAC is mac= or bhyve's
 * stable derivation from the VM name, slot and function; mtu= (68..65535,
 * default 1500) is offered through VIRTIO_NET_F_MTU.  A node without a
 * backend gives a NIC whose link is down: transmitted frames are dropped.
 *
 * Offered: VERSION_1 (and the legacy interface), MAC, MTU, STATUS (link
 * up when there is a backend; it never changes at run time), MRG_RXBUF,
 * EVENT_IDX, INDIRECT_DESC, ANY_LAYOUT (legacy), CTRL_VQ with CTRL_RX and
 * CTRL_RX_EXTRA (promisc, allmulti, alluni, nomulti, nouni, nobcast),
 * CTRL_MAC_ADDR and MAC table filtering on receive (64 entries; a longer
 * table switches that kind of address to "accept all", as the spec
 * allows).  CSUM, GUEST_CSUM and the HOST/GUEST TSO4/TSO6/ECN/UFO offloads
 * only when the backend can carry them (a tap: they travel in its vnet
 * header).  After DRIVER_OK the backend is told the negotiated offloads
 * and the header length (12 with VERSION_1 or MRG_RXBUF, else 10).
 * NOT offered: MQ (one queue pair), CTRL_VLAN (no VLAN filter: every VLAN
 * is received), CTRL_GUEST_OFFLOADS, GUEST_ANNOUNCE, the legacy GSO bit,
 * NOTIFY_ON_EMPTY, RSS/hash reports, notification coalescing, SPEED_DUPLEX.
 * A legacy driver without CTRL_MAC_ADDR may write the MAC into config
 * space; every other config write is ignored.
 *
 * Data path.  Every frame carries the guest's header (10 or 12 bytes) in
 * both directions on the backend interface; backends without a vnet header
 * strip it on send and zero it on receive (net_backend.c), a tap passes it
 * through.  Transmit: each chain's readable iovecs go to the backend as
 * they are (one writev for a tap), no copy.  Receive: the device pops
 * receive chains ahead into a pool of guest iovecs and the backend reads
 * straight into them (one readv), with a private 64 KiB "bounce" buffer
 * behind the pool: a frame larger than the pooled space lands partly
 * there and is copied into chains popped afterwards (mergeable buffers).
 * It is dropped when the ring holds too few buffers for it, or when it is
 * larger than the one buffer it may use without MRG_RXBUF, as a NIC whose
 * ring ran low drops (waiting for more buffers could wait forever: a
 * driver may refill only once many are free).  How much to pop ahead
 * follows the recent frame sizes, so small frames cost one chain and
 * 64 KiB TSO frames rarely touch the bounce buffer.  num_buffers is
 * written after the frame is in.  Frames not for us (receive filter),
 * runts and frames over 64 KiB are dropped with their chains kept for the
 * next frame; drops are counted (rx_dropped, tx_dropped).
 *
 * Notifications: the transmit path runs with kicks disabled while it
 * drains the ring (vq_disable_notify / vq_enable_notify and re-check) and
 * raises one interrupt per batch.  The receive queue asks for kicks only
 * when it has run out of buffers: then it stops the backend's receive
 * callbacks (net_backend_rx_enable(false)), so frames wait in the host
 * (tap queue, socket buffer) instead of being dropped, and the guest's next
 * kick restarts them.  Passes are bounded (VNET_BUDGET frames); the rest
 * continues through event_post() so one queue can't starve the loop.
 *
 * Hostile drivers: a malformed ring or chain, a receive chain with no
 * writable byte or shorter than the header, or a control command with
 * nowhere to put the ack sets DEVICE_NEEDS_RESET.  A transmit frame shorter
 * than header + Ethernet header or longer than header + 65550 bytes is
 * dropped (returned unsent) after a rate-limited warning.  Malformed
 * control commands are answered VIRTIO_NET_ERR and change nothing.
 *
 * Threads: transmit and control kicks on the event-loop thread (ioeventfd)
 * or a vCPU thread (device tests); receive from the backend's callback
 * (the event loop for tap and dgram, the slirp thread) and from receive
 * kicks; reset, DRIVER_OK and config writes on vCPU threads.
 *
 * Locks: 'rxlock' serialises the receive path, the receive pool, the
 * filter and the control queue (which changes the filter); 'txlock' the
 * transmit path.  Ring accesses are made with vd->lock held as well,
 * since the transport may reset a legacy queue under vd->lock without
 * calling us.  Order: rxlock -> txlock -> vd->lock -> (PCI irq lock).
 * net_backend_rx_enable() is only called with no lock held (a backend may
 * call the receive callback from it).  The reset hook takes rxlock and
 * txlock, so it returns when no pass touches a queue; passes check
 * virtio_pci_live() under vd->lock before every push.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "lib/log.h"
#include "net/net_backend.h"
#include "virtio/virtio_pci.h"

#define VNET_QUEUE_SIZE 1024
#define VNET_NQUEUES 3
#define VNET_ETH_HLEN 14
#define VNET_MTU_DEFAULT 1500
/* Largest transmit frame after the header (64 KiB of IP + Ethernet). */
#define VNET_TX_MAX 65550
/* Largest receive frame after the header (room for a VLAN tag too). */
#define VNET_RX_MAX 65562
#define VNET_BUDGET 256	   /* frames per pass, then event_post() */
#define VNET_POOL_BUFS 256 /* receive chains held ahead, at most */
#define VNET_POOL_IOV 2048 /* their writable iovecs, at most */
#define VNET_RD_IOV 1024   /* iovecs per receive read (IOV_MAX) */
#define VNET_RX_PREFETCH 8 /* chains to pop at once when refilling */
#define VNET_MAC_TABLE 64  /* MAC filter entries, unicast + multicast */
#define VNET_WARN_MS 5000

/* Offloads that depend on the backend carrying a vnet header. */
#define VNET_OFFLOADS                                                          \
	(VIRTIO_BIT(VIRTIO_NET_F_CSUM) | VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) | \
	 VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |                                 \
	 VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) |                                 \
	 VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN) |                                  \
	 VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO) |                                  \
	 VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |                                  \
	 VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |                                  \
	 VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN) |                                   \
	 VIRTIO_BIT(VIRTIO_NET_F_HOST_UFO))

#define VNET_FEATURES                                                          \
	(VIRTIO_BIT(VIRTIO_NET_F_MAC) | VIRTIO_BIT(VIRTIO_NET_F_MTU) |         \
	 VIRTIO_BIT(VIRTIO_NET_F_STATUS) |                                     \
	 VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF) |                                  \
	 VIRTIO_BIT(VIRTIO_NET_F_CTRL_VQ) | VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX) | \
	 VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX_EXTRA) |                              \
	 VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |                              \
	 VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | \
	 VIRTIO_BIT(VIRTIO_F_ANY_LAYOUT))

/* One receive chain popped ahead: its writable iovecs in rx_iov. */
struct vnet_rxbuf {
	uint16_t head;
	uint32_t len; /* writable bytes */
	unsigned iov0, niov;
};

struct vnet_used {
	uint16_t head;
	uint32_t len;
};

struct vnet {
	struct virtio_dev vd;	   /* first: pd->softc points here */
	struct virtio_dev_ops ops; /* per instance: offloads vary */
	uint8_t cfg[VIRTIO_NET_CFG_SIZE];
	struct net_backend *be; /* NULL: no backend, link down */
	struct event_loop *ev;	/* for continuations; NULL in some tests */
	uint8_t perm_mac[6];	/* mac= or derived: config after reset */
	uint16_t mtu;
	uint64_t offloads; /* VNET_OFFLOADS the backend carries */

	/* Negotiated at DRIVER_OK; written under rxlock and txlock. */
	unsigned hdr_len; /* 10 or 12 */
	bool mrg;	  /* MRG_RXBUF */
	bool link;	  /* backend set up for this driver */

	pthread_mutex_t rxlock;
	/* receive filter */
	uint8_t mac[6];
	bool promisc, allmulti, alluni, nomulti, nouni, nobcast;
	bool uni_over, multi_over;
	unsigned n_uni, n_multi; /* table: unicast first */
	uint8_t table[VNET_MAC_TABLE][6];
	/* receive pool: rx_buf[rb_first .. +rb_n), rx_iov[ri_first, ri_end) */
	struct vnet_rxbuf *rx_buf;
	unsigned rb_first, rb_n;
	struct iovec *rx_iov;
	unsigned ri_first, ri_end;
	uint64_t rx_bytes;	   /* writable bytes in the pool */
	struct vnet_used *rx_used; /* pushes not yet on the ring */
	unsigned rx_nused;
	struct iovec *rd_iov; /* one read's iovecs */
	uint8_t *bounce;      /* hdr_len + VNET_RX_MAX + 1 bytes */
	uint32_t rx_est;      /* expected frame size (pop-ahead target) */
	bool rx_off;	      /* backend receive callbacks stopped */
	bool rx_posted;	      /* a continuation is queued */
	struct vq_chain *rxc; /* pop scratch (receive and control) */
	uint64_t rx_dropped;

	pthread_mutex_t txlock;
	bool tx_posted;
	struct vq_chain *txc;
	uint64_t tx_dropped;
};

static void vnet_rx_run(struct vnet *n);
static void vnet_tx_run(struct vnet *n);

static struct vnet *vnet_of(struct virtio_dev *vd)
{
	return (struct vnet *)vd;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* The live queue 'qi' (vd->lock held), or NULL. */
static struct vq *vnet_vq(struct vnet *n, unsigned qi)
{
	if (!virtio_pci_live(&n->vd))
		return NULL;
	return virtio_queue_vq(&n->vd, qi);
}

static void vnet_notify(struct vnet *n, unsigned qi)
{
	pthread_mutex_lock(&n->vd.lock);
	if (vnet_vq(n, qi))
		virtio_pci_notify_queue(&n->vd, qi);
	pthread_mutex_unlock(&n->vd.lock);
}

/* Device config from the state (vd->lock held). */
static void vnet_cfg_fill(struct vnet *n)
{
	memcpy(n->cfg + VIRTIO_NET_CFG_MAC, n->mac, 6);
	put_le16(n->cfg + VIRTIO_NET_CFG_STATUS,
		 n->be ? VIRTIO_NET_S_LINK_UP : 0);
	put_le16(n->cfg + VIRTIO_NET_CFG_MAX_VQ_PAIRS, 1);
	put_le16(n->cfg + VIRTIO_NET_CFG_MTU, n->mtu);
}

/* ---- receive filter (rxlock held) ---- */

static void vnet_filter_reset(struct vnet *n)
{
	memcpy(n->mac, n->perm_mac, 6);
	n->promisc = true; /* until a CTRL_RX driver says otherwise */
	n->allmulti = n->alluni = false;
	n->nomulti = n->nouni = n->nobcast = false;
	n->uni_over = n->multi_over = false;
	n->n_uni = n->n_multi = 0;
}

static bool vnet_in_table(const struct vnet *n, const uint8_t *d, unsigned from,
			  unsigned cnt)
{
	unsigned i;

	for (i = from; i < from + cnt; i++)
		if (!memcmp(n->table[i], d, 6))
			return true;
	return false;
}

/* Should a frame for destination 'd' reach the driver? */
static bool vnet_accept(const struct vnet *n, const uint8_t *d)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	if (n->promisc)
		return true;
	if (d[0] & 1) {
		if (!memcmp(d, bcast, 6))
			return !n->nobcast;
		if (n->nomulti)
			return false;
		if (n->allmulti || n->multi_over)
			return true;
		return vnet_in_table(n, d, n->n_uni, n->n_multi);
	}
	if (n->nouni)
		return false;
	if (n->alluni || n->uni_over || !memcmp(d, n->mac, 6))
		return true;
	return vnet_in_table(n, d, 0, n->n_uni);
}

/* ---- the receive pool (rxlock held) ---- */

static void vnet_pool_clear(struct vnet *n)
{
	n->rb_first = n->rb_n = 0;
	n->ri_first = n->ri_end = 0;
	n->rx_bytes = 0;
	n->rx_nused = 0;
}

static void vnet_pool_compact(struct vnet *n)
{
	unsigned i, shift = n->ri_first;

	if (n->rb_n == 0) {
		vnet_pool_clear(n);
		return;
	}
	memmove(n->rx_buf, n->rx_buf + n->rb_first,
		n->rb_n * sizeof(*n->rx_buf));
	n->rb_first = 0;
	memmove(n->rx_iov, n->rx_iov + shift,
		(n->ri_end - shift) * sizeof(*n->rx_iov));
	n->ri_end -= shift;
	n->ri_first = 0;
	for (i = 0; i < n->rb_n; i++)
		n->rx_buf[i].iov0 -= shift;
}

/*
 * Add the chain in n->rxc to the pool.  0, -ENOSPC (no room for its
 * iovecs: give it back) or -EINVAL (unusable: no room for the header).
 */
static int vnet_pool_add(struct vnet *n)
{
	const struct vq_chain *c = n->rxc;
	struct vnet_rxbuf *b;

	if (c->nw == 0 || c->wlen < n->hdr_len)
		return -EINVAL;
	if (n->rb_first + n->rb_n == VNET_POOL_BUFS ||
	    n->ri_end + c->nw > VNET_POOL_IOV)
		vnet_pool_compact(n);
	if (n->ri_end + c->nw > VNET_POOL_IOV)
		return -ENOSPC;
	memcpy(n->rx_iov + n->ri_end, c->iov + c->nr, c->nw * sizeof(*c->iov));
	b = &n->rx_buf[n->rb_first + n->rb_n];
	b->head = c->head;
	b->len = c->wlen;
	b->iov0 = n->ri_end;
	b->niov = c->nw;
	n->ri_end += c->nw;
	n->rb_n++;
	n->rx_bytes += c->wlen;
	return 0;
}

/* Forget the first 'k' pooled chains (used by a frame). */
static void vnet_pool_drop(struct vnet *n, unsigned k)
{
	unsigned i;

	for (i = 0; i < k; i++)
		n->rx_bytes -= n->rx_buf[n->rb_first + i].len;
	n->rb_first += k;
	n->rb_n -= k;
	if (n->rb_n == 0) {
		n->rb_first = 0;
		n->ri_first = n->ri_end = 0;
	} else {
		n->ri_first = n->rx_buf[n->rb_first].iov0;
	}
}

/* Copy 'len' bytes from 'src' into the pooled space at byte 'off'. */
static void vnet_pool_write(struct vnet *n, uint64_t off, const void *src,
			    size_t len)
{
	const uint8_t *s = src;
	unsigned i;

	for (i = n->ri_first; i < n->ri_end && len > 0; i++) {
		size_t l = n->rx_iov[i].iov_len, k;

		if (off >= l) {
			off -= l;
			continue;
		}
		k = l - off < len ? l - off : len;
		memcpy((uint8_t *)n->rx_iov[i].iov_base + off, s, k);
		s += k;
		len -= k;
		off = 0;
	}
}

/* Copy 'len' bytes at byte 'off' of the pooled space into 'dst'. */
static void vnet_pool_read(const struct vnet *n, uint64_t off, void *dst,
			   size_t len)
{
	uint8_t *d = dst;
	unsigned i;

	for (i = n->ri_first; i < n->ri_end && len > 0; i++) {
		size_t l = n->rx_iov[i].iov_len, k;

		if (off >= l) {
			off -= l;
			continue;
		}
		k = l - off < len ? l - off : len;
		memcpy(d, (const uint8_t *)n->rx_iov[i].iov_base + off, k);
		d += k;
		len -= k;
		off = 0;
	}
}

/* Bytes [off, off + len) of a frame just read: the first 'given' bytes
 * are in the pool, the rest in the bounce buffer. */
static void vnet_frame_read(const struct vnet *n, size_t given, size_t off,
			    uint8_t *dst, size_t len)
{
	size_t k = 0;

	if (off < given) {
		k = given - off < len ? given - off : len;
		vnet_pool_read(n, off, dst, k);
	}
	if (k < len)
		memcpy(dst + k, n->bounce + (off + k - given), len - k);
}

/* ---- receive (rxlock held unless said otherwise) ---- */

/* Smallest pop-ahead target: one full-MTU frame with a VLAN tag. */
static uint32_t vnet_rx_base(const struct vnet *n)
{
	return n->hdr_len + VNET_ETH_HLEN + 4u + n->mtu;
}

/* Follow the frame sizes: jump up at once, decay slowly. */
static void vnet_rx_estimate(struct vnet *n, size_t len)
{
	uint32_t base = vnet_rx_base(n);

	if (len > n->hdr_len + VNET_RX_MAX)
		len = n->hdr_len + VNET_RX_MAX;
	if (len > n->rx_est)
		n->rx_est = (uint32_t)len;
	else
		n->rx_est -= (n->rx_est - (uint32_t)len) / 8;
	if (n->rx_est < base)
		n->rx_est = base;
}

/* Put the pending used entries on the ring (vd->lock held; 'q' NULL when
 * the device is not live: they are dropped). */
static void vnet_rx_flush_locked(struct vnet *n, struct vq *q)
{
	unsigned i;

	if (q)
		for (i = 0; i < n->rx_nused; i++)
			vq_push(q, n->rx_used[i].head, n->rx_used[i].len);
	n->rx_nused = 0;
}

static void vnet_rx_flush(struct vnet *n)
{
	pthread_mutex_lock(&n->vd.lock);
	vnet_rx_flush_locked(n, vnet_vq(n, VIRTIO_NET_Q_RX));
	pthread_mutex_unlock(&n->vd.lock);
}

/*
 * Flush pending pushes, then pop receive chains until the pool holds
 * 'want' bytes and a few chains, or the ring is empty.  A malformed chain
 * sets *broken.
 */
static void vnet_rx_fill(struct vnet *n, uint64_t want, const char **broken)
{
	bool popped = false;
	struct vq *q;
	int rc;

	pthread_mutex_lock(&n->vd.lock);
	q = vnet_vq(n, VIRTIO_NET_Q_RX);
	vnet_rx_flush_locked(n, q);
	while (q && (n->rx_bytes < want || n->rb_n < VNET_RX_PREFETCH) &&
	       n->rb_n < VNET_POOL_BUFS) {
		rc = vq_pop(q, n->rxc);
		if (rc == 0)
			break;
		if (rc < 0) {
			*broken = q->err ? q->err : "malformed receive chain";
			break;
		}
		rc = vnet_pool_add(n);
		if (rc == -ENOSPC) {
			vq_unpop(q, 1);
			break;
		}
		if (rc) {
			*broken = "receive buffer without room for the header";
			break;
		}
		popped = true;
	}
	/* we have buffers in hand: no kicks needed until they run out */
	if (popped)
		vq_disable_notify(q);
	pthread_mutex_unlock(&n->vd.lock);
}

/* Out of buffers: ask the driver for a kick.  True when chains arrived
 * meanwhile (keep going instead). */
static bool vnet_rx_wait(struct vnet *n)
{
	bool more = false;
	struct vq *q;

	pthread_mutex_lock(&n->vd.lock);
	q = vnet_vq(n, VIRTIO_NET_Q_RX);
	if (q) {
		more = vq_enable_notify(q);
		if (more)
			vq_disable_notify(q);
	}
	pthread_mutex_unlock(&n->vd.lock);
	return more;
}

/* The frame of 'len' bytes in the pool goes to the driver: fix its
 * header and queue the used entries. */
static void vnet_rx_deliver(struct vnet *n, size_t len)
{
	uint64_t left = len;
	unsigned k = 0;
	uint16_t nb;

	while (left > 0 && k < n->rb_n) {
		const struct vnet_rxbuf *b = &n->rx_buf[n->rb_first + k];
		uint32_t l = b->len < left ? b->len : (uint32_t)left;

		if (n->rx_nused == VNET_POOL_BUFS)
			vnet_rx_flush(n);
		n->rx_used[n->rx_nused].head = b->head;
		n->rx_used[n->rx_nused].len = l;
		n->rx_nused++;
		left -= l;
		k++;
		if (!n->mrg)
			break;
	}
	/* num_buffers (also with a 12-byte header and no MRG_RXBUF: 1) */
	if (n->hdr_len == VIRTIO_NET_HDR_LEN) {
		nb = htole16((uint16_t)k);
		vnet_pool_write(n, offsetof(struct virtio_net_hdr, num_buffers),
				&nb, sizeof(nb));
	}
	vnet_pool_drop(n, k);
}

/*
 * Read one frame from the backend into the pool (the bounce buffer takes
 * what does not fit) and deliver or drop it.  Returns 1 when a frame was
 * taken, 0 when none is waiting, -errno on a backend error.
 */
static int vnet_rx_one(struct vnet *n, bool *pushed, const char **broken)
{
	const struct vnet_rxbuf *first = &n->rx_buf[n->rb_first];
	size_t limit = n->hdr_len + VNET_RX_MAX + 1, given = 0, len;
	unsigned i, cnt = 0, end;
	uint8_t dst[6];
	ssize_t r;

	/* without MRG_RXBUF a frame must fit in one chain */
	end = n->mrg ? n->ri_end : first->iov0 + first->niov;
	for (i = n->ri_first; i < end && cnt < VNET_RD_IOV - 1 && given < limit;
	     i++) {
		len = n->rx_iov[i].iov_len;
		if (len > limit - given)
			len = limit - given;
		n->rd_iov[cnt].iov_base = n->rx_iov[i].iov_base;
		n->rd_iov[cnt].iov_len = len;
		cnt++;
		given += len;
	}
	if (given < limit) {
		n->rd_iov[cnt].iov_base = n->bounce;
		n->rd_iov[cnt].iov_len = limit - given;
		cnt++;
	}
	r = net_backend_recv(n->be, n->rd_iov, (int)cnt);
	if (r <= 0)
		return r < 0 ? (int)r : 0;
	vnet_rx_estimate(n, (size_t)r);
	if ((size_t)r >= limit || (size_t)r < n->hdr_len + VNET_ETH_HLEN) {
		log_ratelimited(VNET_WARN_MS,
				"%s: received frame of %zd bytes (header "
				"included) dropped: %s",
				n->vd.pd->name, r,
				(size_t)r >= limit ? "too long" : "too short");
		n->rx_dropped++;
		return 1;
	}
	vnet_frame_read(n, given, n->hdr_len, dst, sizeof(dst));
	if (!vnet_accept(n, dst)) {
		n->rx_dropped++;
		return 1;
	}
	if ((size_t)r > given) {
		/* the tail is in the bounce buffer: copy it into more chains */
		if (n->mrg && n->rx_bytes < (uint64_t)r)
			vnet_rx_fill(n, (uint64_t)r, broken);
		if (!n->mrg || n->rx_bytes < (uint64_t)r) {
			if (!n->mrg)
				log_ratelimited(VNET_WARN_MS,
						"%s: received frame of %zd "
						"bytes does not fit the "
						"receive buffer; dropped",
						n->vd.pd->name, r);
			n->rx_dropped++;
			return 1;
		}
		vnet_pool_write(n, given, n->bounce, (size_t)r - given);
	}
	vnet_rx_deliver(n, (size_t)r);
	*pushed = true;
	return 1;
}

static void vnet_rx_resume(void *arg, uint32_t events);

/* The budget is spent: continue on the loop thread.  False when that is
 * impossible (no loop, no memory): the caller goes on itself.  rxlock. */
static bool vnet_rx_later(struct vnet *n)
{
	if (!n->rx_posted && n->ev && event_post(n->ev, vnet_rx_resume, n) == 0)
		n->rx_posted = true;
	return n->rx_posted;
}

/*
 * One receive pass: frames from the backend into the ring until none is
 * waiting, buffers run out (*pause: stop the backend's callbacks) or the
 * budget is spent (a continuation is posted).
 */
static void vnet_rx_pass(struct vnet *n, bool *pause)
{
	const char *broken = NULL;
	bool pushed = false;
	unsigned frames = 0;
	uint64_t need;
	int rc = 0;

	if (!n->be)
		return;
	if (!n->link || !virtio_pci_live(&n->vd)) {
		n->rx_off = true;
		*pause = true;
		return;
	}
	for (;;) {
		if (frames == VNET_BUDGET) {
			if (vnet_rx_later(n))
				break;
			frames = 0; /* no continuation possible: go on */
		}
		need = n->mrg ? n->rx_est : 1;
		if (n->rx_bytes < need) {
			vnet_rx_fill(n, need, &broken);
			if (broken)
				break;
			/*
			 * No buffer at all: wait for a kick (frames wait in
			 * the host meanwhile).  With some buffers, read: a
			 * frame that turns out not to fit is dropped, as a
			 * NIC whose ring ran low does.  Waiting for more
			 * could wait forever: a driver may refill only once
			 * many buffers are free (Linux: half its budget).
			 */
			if (n->rb_n == 0) {
				if (vnet_rx_wait(n))
					continue;
				n->rx_off = true;
				*pause = true;
				break;
			}
		}
		rc = vnet_rx_one(n, &pushed, &broken);
		if (rc <= 0 || broken)
			break;
		frames++;
	}
	if (rc < 0)
		log_ratelimited(VNET_WARN_MS,
				"%s: receive from the backend "
				"failed: %s",
				n->vd.pd->name, strerror(-rc));
	if (n->rx_nused)
		vnet_rx_flush(n);
	if (pushed)
		vnet_notify(n, VIRTIO_NET_Q_RX);
	if (broken)
		virtio_pci_needs_reset(&n->vd, broken);
}

static void vnet_rx_resume(void *arg, uint32_t events)
{
	struct vnet *n = arg;

	(void)events;
	pthread_mutex_lock(&n->rxlock);
	n->rx_posted = false;
	pthread_mutex_unlock(&n->rxlock);
	vnet_rx_run(n);
}

/*
 * The backend's callbacks were asked to stop (n->rx_off set under
 * rxlock).  Stop them, then re-check: a kick that came in between has
 * cleared rx_off and its restart may have been undone by ours.
 * No lock held.
 */
static void vnet_rx_pause(struct vnet *n)
{
	bool resume;

	net_backend_rx_enable(n->be, false);
	pthread_mutex_lock(&n->rxlock);
	resume = !n->rx_off;
	pthread_mutex_unlock(&n->rxlock);
	if (resume)
		net_backend_rx_enable(n->be, true);
}

/* Restart the backend's callbacks if they were stopped.  No lock held. */
static void vnet_rx_wake(struct vnet *n)
{
	bool was;

	if (!n->be)
		return;
	pthread_mutex_lock(&n->rxlock);
	was = n->rx_off;
	n->rx_off = false;
	pthread_mutex_unlock(&n->rxlock);
	if (was)
		net_backend_rx_enable(n->be, true);
}

static void vnet_rx_run(struct vnet *n)
{
	bool pause = false;

	pthread_mutex_lock(&n->rxlock);
	vnet_rx_pass(n, &pause);
	pthread_mutex_unlock(&n->rxlock);
	if (pause)
		vnet_rx_pause(n);
}

/* The backend's receive callback (its thread). */
static void vnet_rx_cb(void *opaque)
{
	vnet_rx_run(opaque);
}

/* ---- transmit (txlock held) ---- */

static void vnet_tx_send(struct vnet *n, const struct vq_chain *c)
{
	ssize_t r;

	if (c->rlen < n->hdr_len + VNET_ETH_HLEN ||
	    c->rlen > n->hdr_len + VNET_TX_MAX) {
		log_ratelimited(VNET_WARN_MS,
				"%s: transmit frame of %u bytes (header "
				"included) dropped: too %s",
				n->vd.pd->name, c->rlen,
				c->rlen > n->hdr_len + VNET_TX_MAX ? "long"
								   : "short");
		n->tx_dropped++;
		return;
	}
	if (!n->link) {
		n->tx_dropped++; /* no backend: the link is down */
		return;
	}
	r = net_backend_send(n->be, c->iov, (int)c->nr);
	if (r >= 0)
		return;
	n->tx_dropped++;
	if (r != -EAGAIN && r != -EWOULDBLOCK && r != -ENOBUFS)
		log_ratelimited(VNET_WARN_MS,
				"%s: transmit to the backend failed: %s",
				n->vd.pd->name, strerror((int)-r));
}

static void vnet_tx_resume(void *arg, uint32_t events)
{
	struct vnet *n = arg;

	(void)events;
	pthread_mutex_lock(&n->txlock);
	n->tx_posted = false;
	pthread_mutex_unlock(&n->txlock);
	vnet_tx_run(n);
}

/* The budget is spent: continue on the loop thread.  False when that is
 * impossible (no loop, no memory): the caller goes on itself.  txlock. */
static bool vnet_tx_later(struct vnet *n)
{
	if (!n->tx_posted && n->ev && event_post(n->ev, vnet_tx_resume, n) == 0)
		n->tx_posted = true;
	return n->tx_posted;
}

/*
 * Drain the transmit ring with kicks disabled: pop a chain, send it,
 * return it (together with the next pop, one lock round per frame), then
 * re-enable kicks and re-check.  One interrupt at the end.
 */
static void vnet_tx_run(struct vnet *n)
{
	const char *broken = NULL;
	bool have = false, pushed = false, first = true;
	unsigned frames = 0;
	struct vq *q;
	int rc;

	pthread_mutex_lock(&n->txlock);
	for (;;) {
		rc = 0;
		pthread_mutex_lock(&n->vd.lock);
		q = vnet_vq(n, VIRTIO_NET_Q_TX);
		if (q && have) {
			vq_push(q, n->txc->head, 0);
			pushed = true;
		}
		have = false;
		if (q && frames == VNET_BUDGET && vnet_tx_later(n)) {
			q = NULL; /* kicks stay off: the continuation runs */
		} else if (q) {
			if (first)
				vq_disable_notify(q);
			first = false;
			rc = vq_pop(q, n->txc);
			if (rc == 0 && vq_enable_notify(q)) {
				rc = vq_pop(q, n->txc);
				if (rc > 0)
					vq_disable_notify(q);
			}
			if (rc < 0)
				broken = q->err ? q->err
						: "malformed transmit chain";
		}
		pthread_mutex_unlock(&n->vd.lock);
		if (rc <= 0)
			break;
		have = true;
		if (++frames > VNET_BUDGET)
			frames = 1; /* no continuation possible: go on */
		vnet_tx_send(n, n->txc);
	}
	pthread_mutex_unlock(&n->txlock);
	if (pushed)
		vnet_notify(n, VIRTIO_NET_Q_TX);
	if (broken)
		virtio_pci_needs_reset(&n->vd, broken);
}

/* ---- control queue (rxlock held: it changes the filter) ---- */

static uint8_t vnet_ctrl_table(struct vnet *n, const struct vq_chain *c,
			       uint32_t dlen, const char **why)
{
	uint32_t nu, nm;
	uint64_t need;

	*why = "MAC table command of the wrong length";
	if (dlen < 8)
		return VIRTIO_NET_ERR;
	vq_chain_read(c, 2, &nu, sizeof(nu));
	nu = le32toh(nu);
	need = 8 + 6ULL * nu;
	if (need > dlen)
		return VIRTIO_NET_ERR;
	vq_chain_read(c, 2 + 4 + 6ULL * nu, &nm, sizeof(nm));
	nm = le32toh(nm);
	if (need + 6ULL * nm != dlen)
		return VIRTIO_NET_ERR;
	*why = NULL;
	n->n_uni = n->n_multi = 0;
	n->uni_over = nu > VNET_MAC_TABLE;
	if (!n->uni_over) {
		vq_chain_read(c, 2 + 4, n->table, 6ULL * nu);
		n->n_uni = nu;
	}
	n->multi_over = nm > VNET_MAC_TABLE - n->n_uni;
	if (!n->multi_over) {
		vq_chain_read(c, 2 + 4 + 6ULL * nu + 4, n->table[n->n_uni],
			      6ULL * nm);
		n->n_multi = nm;
	}
	return VIRTIO_NET_OK;
}

static uint8_t vnet_ctrl_rx(struct vnet *n, uint8_t cmd, bool on)
{
	switch (cmd) {
	case VIRTIO_NET_CTRL_RX_PROMISC:
		n->promisc = on;
		break;
	case VIRTIO_NET_CTRL_RX_ALLMULTI:
		n->allmulti = on;
		break;
	case VIRTIO_NET_CTRL_RX_ALLUNI:
		n->alluni = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOMULTI:
		n->nomulti = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOUNI:
		n->nouni = on;
		break;
	case VIRTIO_NET_CTRL_RX_NOBCAST:
		n->nobcast = on;
		break;
	default:
		return VIRTIO_NET_ERR;
	}
	return VIRTIO_NET_OK;
}

/* Carry out one command; the ack.  *why names a malformed one. */
static uint8_t vnet_ctrl_cmd(struct vnet *n, const struct vq_chain *c,
			     uint64_t feat, const char **why)
{
	uint8_t hdr[2], on;
	uint32_t dlen;

	*why = NULL;
	if (c->rlen < sizeof(hdr)) {
		*why = "control command shorter than its header";
		return VIRTIO_NET_ERR;
	}
	vq_chain_read(c, 0, hdr, sizeof(hdr));
	dlen = c->rlen - (uint32_t)sizeof(hdr);
	if (hdr[0] == VIRTIO_NET_CTRL_RX &&
	    (feat & VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX))) {
		if (hdr[1] > VIRTIO_NET_CTRL_RX_ALLMULTI &&
		    !(feat & VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX_EXTRA)))
			return VIRTIO_NET_ERR;
		if (dlen != 1) {
			*why = "RX mode command without exactly one byte";
			return VIRTIO_NET_ERR;
		}
		vq_chain_read(c, sizeof(hdr), &on, 1);
		return vnet_ctrl_rx(n, hdr[1], on != 0);
	}
	if (hdr[0] != VIRTIO_NET_CTRL_MAC)
		return VIRTIO_NET_ERR;
	if (hdr[1] == VIRTIO_NET_CTRL_MAC_TABLE_SET &&
	    (feat & VIRTIO_BIT(VIRTIO_NET_F_CTRL_RX)))
		return vnet_ctrl_table(n, c, dlen, why);
	if (hdr[1] == VIRTIO_NET_CTRL_MAC_ADDR_SET &&
	    (feat & VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR))) {
		if (dlen != 6) {
			*why = "MAC address command without 6 bytes";
			return VIRTIO_NET_ERR;
		}
		vq_chain_read(c, sizeof(hdr), n->mac, 6);
		pthread_mutex_lock(&n->vd.lock);
		vnet_cfg_fill(n);
		pthread_mutex_unlock(&n->vd.lock);
		return VIRTIO_NET_OK;
	}
	return VIRTIO_NET_ERR;
}

static void vnet_ctrl_run(struct vnet *n)
{
	const char *broken = NULL, *why;
	bool have = false, pushed = false;
	uint64_t feat = 0;
	struct vq *q;
	uint8_t ack;
	int rc;

	pthread_mutex_lock(&n->rxlock);
	for (;;) {
		pthread_mutex_lock(&n->vd.lock);
		q = vnet_vq(n, VIRTIO_NET_Q_CTRL);
		if (q && have) {
			vq_push(q, n->rxc->head, 1);
			pushed = true;
		}
		have = false;
		rc = q ? vq_pop(q, n->rxc) : 0;
		if (rc < 0)
			broken = q->err ? q->err : "malformed control chain";
		if (rc > 0 && n->rxc->wlen == 0) {
			broken = "control command without an ack byte";
			rc = -EINVAL;
		}
		feat = n->vd.guest_features;
		pthread_mutex_unlock(&n->vd.lock);
		if (rc <= 0)
			break;
		ack = vnet_ctrl_cmd(n, n->rxc, feat, &why);
		if (why)
			log_ratelimited(VNET_WARN_MS,
					"%s: bad control command: "
					"%s",
					n->vd.pd->name, why);
		vq_chain_write(n->rxc, 0, &ack, 1);
		have = true;
	}
	pthread_mutex_unlock(&n->rxlock);
	if (pushed)
		vnet_notify(n, VIRTIO_NET_Q_CTRL);
	if (broken)
		virtio_pci_needs_reset(&n->vd, broken);
}

/* ---- virtio hooks ---- */

static void vnet_queue_notify(struct virtio_dev *vd, unsigned qi)
{
	struct vnet *n = vnet_of(vd);

	switch (qi) {
	case VIRTIO_NET_Q_RX:
		/* buffers posted: restart the backend and deliver now */
		vnet_rx_wake(n);
		vnet_rx_run(n);
		break;
	case VIRTIO_NET_Q_TX:
		vnet_tx_run(n);
		break;
	case VIRTIO_NET_Q_CTRL:
		vnet_ctrl_run(n);
		break;
	default:
		break;
	}
}

static void vnet_reset(struct virtio_dev *vd)
{
	struct vnet *n = vnet_of(vd);

	pthread_mutex_lock(&n->rxlock);
	pthread_mutex_lock(&n->txlock);
	n->link = false;
	pthread_mutex_unlock(&n->txlock);
	vnet_pool_clear(n); /* the chains die with the rings */
	vnet_filter_reset(n);
	n->rx_off = true;
	pthread_mutex_lock(&vd->lock);
	vnet_cfg_fill(n);
	pthread_mutex_unlock(&vd->lock);
	pthread_mutex_unlock(&n->rxlock);
	if (n->be)
		vnet_rx_pause(n);
}

static void vnet_driver_ok(struct virtio_dev *vd)
{
	struct vnet *n = vnet_of(vd);
	bool link;
	uint64_t f;
	int rc;

	pthread_mutex_lock(&n->rxlock);
	pthread_mutex_lock(&n->txlock);
	pthread_mutex_lock(&vd->lock);
	f = vd->guest_features;
	pthread_mutex_unlock(&vd->lock);
	n->mrg = f & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
	n->hdr_len = f & (VIRTIO_BIT(VIRTIO_F_VERSION_1) |
			  VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF))
			     ? VIRTIO_NET_HDR_LEN
			     : VIRTIO_NET_HDR_LEN_LEGACY;
	n->rx_est = vnet_rx_base(n);
	vnet_pool_clear(n);
	n->link = false;
	if (n->be) {
		rc = net_backend_set_cap(n->be, f & n->offloads, n->hdr_len);
		if (rc)
			log_ratelimited(VNET_WARN_MS,
					"%s: the backend refused the "
					"negotiated offloads (%s); no link",
					vd->pd->name, strerror(-rc));
		n->link = rc == 0;
	}
	link = n->link;
	pthread_mutex_unlock(&n->txlock);
	pthread_mutex_unlock(&n->rxlock);
	if (link)
		vnet_rx_wake(n);
}

/* Config writes: a legacy driver may set the MAC; the rest is read-only. */
static void vnet_cfg_write(struct virtio_dev *vd, unsigned off, unsigned size)
{
	struct vnet *n = vnet_of(vd);

	(void)size;
	pthread_mutex_lock(&n->rxlock);
	pthread_mutex_lock(&vd->lock);
	if (off < VIRTIO_NET_CFG_MAC + 6 &&
	    !(vd->guest_features & (VIRTIO_BIT(VIRTIO_F_VERSION_1) |
				    VIRTIO_BIT(VIRTIO_NET_F_CTRL_MAC_ADDR))))
		memcpy(n->mac, n->cfg + VIRTIO_NET_CFG_MAC, 6);
	vnet_cfg_fill(n);
	pthread_mutex_unlock(&vd->lock);
	pthread_mutex_unlock(&n->rxlock);
}

static const struct virtio_dev_ops vnet_ops_template = {
	.name = "virtio-net",
	.device_type = VIRTIO_ID_NET,
	.legacy_pci_id = VIRTIO_PCI_LEGACY_NET,
	.pci_class = 0x02,    /* network */
	.pci_subclass = 0x00, /* Ethernet */
	.nqueues = VNET_NQUEUES,
	.queue_size = VNET_QUEUE_SIZE,
	.cfg_size = VIRTIO_NET_CFG_SIZE,
	.queue_notify = vnet_queue_notify,
	.reset = vnet_reset,
	.cfg_write = vnet_cfg_write,
	.driver_ok = vnet_driver_ok,
};

/* ---- set-up ---- */

/* The offloads the backend carries, with the spec's dependencies. */
static uint64_t vnet_offloads(uint64_t cap)
{
	cap &= VNET_OFFLOADS;
	if (!(cap & VIRTIO_BIT(VIRTIO_NET_F_CSUM)))
		cap &= ~(VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
			 VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |
			 VIRTIO_BIT(VIRTIO_NET_F_HOST_UFO));
	if (!(cap & (VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
		     VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6))))
		cap &= ~VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN);
	if (!(cap & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)))
		cap &= ~(VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
			 VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) |
			 VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO));
	if (!(cap & (VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
		     VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6))))
		cap &= ~VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN);
	return cap;
}

static void vnet_free(struct vnet *n)
{
	net_backend_close(n->be); /* no callback after this */
	virtio_pci_fini(&n->vd);
	pthread_mutex_destroy(&n->rxlock);
	pthread_mutex_destroy(&n->txlock);
	free(n->rx_buf);
	free(n->rx_iov);
	free(n->rx_used);
	free(n->rd_iov);
	free(n->bounce);
	free(n->rxc);
	free(n->txc);
	free(n);
}

static int vnet_alloc(struct vnet **out)
{
	struct vnet *n = calloc(1, sizeof(*n));

	*out = n;
	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->rxlock, NULL);
	pthread_mutex_init(&n->txlock, NULL);
	n->rx_buf = calloc(VNET_POOL_BUFS, sizeof(*n->rx_buf));
	n->rx_iov = calloc(VNET_POOL_IOV, sizeof(*n->rx_iov));
	n->rx_used = calloc(VNET_POOL_BUFS, sizeof(*n->rx_used));
	n->rd_iov = calloc(VNET_RD_IOV, sizeof(*n->rd_iov));
	n->bounce = malloc(VIRTIO_NET_HDR_LEN + VNET_RX_MAX + 1);
	n->rxc = malloc(sizeof(*n->rxc));
	n->txc = malloc(sizeof(*n->txc));
	if (!n->rx_buf || !n->rx_iov || !n->rx_used || !n->rd_iov ||
	    !n->bounce || !n->rxc || !n->txc)
		return -ENOMEM;
	return 0;
}

static int vnet_init(struct pci_dev *pd, struct cfg_node *node)
{
	struct net_backend *be = NULL;
	struct vnet *n;
	uint64_t mtu;
	int rc;

	rc = vnet_alloc(&n);
	if (rc) {
		log_err("%s: out of memory", pd->name);
		goto fail;
	}
	rc = net_mac_from_cfg(node, pd->ctx->vm_name, pd->slot, pd->func,
			      n->perm_mac);
	if (rc == 0)
		rc = cfg_get_u64(node, "mtu", VNET_MTU_DEFAULT, 68, 65535,
				 &mtu); /* logs a bad value */
	if (rc)
		goto fail;
	n->mtu = (uint16_t)mtu;
	n->ev = pd->ctx->ev;
	n->hdr_len = VIRTIO_NET_HDR_LEN;
	n->rx_off = true;
	vnet_filter_reset(n);
	/* The callback may run before we stop it: it sees no backend
	 * (n->be is set under rxlock) or a device that is not live. */
	rc = net_backend_open(&be, node, pd->ctx, vnet_rx_cb, n);
	if (rc && rc != -ENOENT)
		goto fail; /* logged */
	pthread_mutex_lock(&n->rxlock);
	n->be = be;
	pthread_mutex_unlock(&n->rxlock);
	if (be) {
		net_backend_rx_enable(be, false);
		n->offloads = vnet_offloads(net_backend_get_cap(be));
	}
	n->ops = vnet_ops_template;
	n->ops.features = VNET_FEATURES | n->offloads;
	vnet_cfg_fill(n);
	pd->softc = n;
	rc = virtio_pci_init(&n->vd, pd, &n->ops, n->cfg);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: cannot set up", pd->name);
		pd->softc = NULL;
		goto fail;
	}
	return 0;
fail:
	if (n)
		vnet_free(n);
	return rc;
}

static void vnet_fini(struct pci_dev *pd)
{
	struct vnet *n = pd->softc;

	if (!n)
		return;
	vnet_free(n);
	pd->softc = NULL;
}

static const struct pci_devops vnet_pci =
	VIRTIO_PCI_DEVOPS(vnet_init, vnet_fini);

static const struct cfg_key vnet_keys[] = {
	NET_BACKEND_CFG_KEYS,
	{"mac", CFG_STRING, NULL,
	 "MAC address (default: derived from the VM name and slot)", 0, 0, 0},
	{"mtu", CFG_INT, "1500", "MTU offered to the guest", 68, 65535, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static const struct devmodel vnet_model = {
	.name = "virtio-net",
	.kind = DEVMODEL_PCI,
	.keys = vnet_keys,
	.parse_legacy = net_parse_legacy,
	.pci = &vnet_pci,
};
DEVMODEL_SET(vnet_model);
