/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A polled virtio-net driver for the test guests (vnet.c), on the
 * virtio-pci library of virtio.c (modern interface, or the legacy one on
 * request): receive queue 0 and transmit queue 1, every frame in one
 * descriptor with the virtio_net_hdr in front (12 bytes; 10 for legacy
 * without MRG_RXBUF), no control queue, no interrupts.  It offers the struct
 * netif of net.h, so the IPv4 stack of net.c runs on it; a benchmark may
 * instead drive the queues itself.
 *
 * State: the caller's struct vnet.  BSP only, no locks.  On the modern
 * interface the netif operations touch only memory and MMIO (ring-3
 * safe); vnet_init() and anything on the legacy interface is ring 0.
 */
#ifndef GUEST_VNET_H
#define GUEST_VNET_H

#include "net.h"

/* virtio 1.2 §5.1 */
#define VIRTIO_ID_NET 1
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_CFG_MAC 0
#define VIRTIO_NET_CFG_STATUS 6 /* le16, with F_STATUS */
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VNET_Q_RX 0
#define VNET_Q_TX 1
#define VNET_HDR_LEN 12	       /* VERSION_1, or legacy with MRG_RXBUF */
#define VNET_HDR_LEN_LEGACY 10 /* legacy without MRG_RXBUF */

struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers; /* VERSION_1 or MRG_RXBUF */
};

/* What vnet_init() sets up. */
struct vnet_cfg {
	uint64_t features; /* wanted besides VERSION_1, MAC, STATUS and
			    * MRG_RXBUF (which are asked for always) */
	uint16_t rx_queue; /* queue sizes (power of two, <= 256) */
	uint16_t tx_queue;
	uint32_t rx_buf_len; /* per receive buffer, header included; 0: do
			      * not post receive buffers */
	uint32_t tx_buf_len; /* per transmit buffer, header included; 0: no
			      * transmit buffers (no netif tx) */
	bool legacy;	     /* drive the legacy I/O interface (ring 0
			      * only: kicks are port I/O) */
	bool verbose;
};

struct vnet {
	struct vio_dev vd;
	struct netif nif;
	struct vio_queue *rxq, *txq;
	bool mrg_rxbuf, has_status;
	uint32_t hdr_len; /* VNET_HDR_LEN or _LEGACY */
	uint32_t rx_buf_len, tx_buf_len;
	uint8_t *rx_buf[VIO_QUEUE_MAX]; /* posted buffer by chain head */
	uint8_t *tx_buf[VIO_QUEUE_MAX]; /* buffer by descriptor index */
	int rx_cur;			/* head lent by rx(), or -1 */
	uint16_t rx_skip;		/* continuation buffers to drop */
	int tx_cur;			/* descriptor lent by tx_buf() */
	uint64_t rx_dropped;		/* frames spanning buffers */
};

/*
 * Find the nth virtio network function on bus 0 (vio_find).  Returns 0 or
 * -GUEST_ENOENT.
 */
int vnet_find(unsigned int nth, struct vnet *vn);
/*
 * Probe the function found by vnet_find (modern interface, or legacy
 * with cfg->legacy), negotiate VERSION_1 (modern), MAC, STATUS and
 * MRG_RXBUF if offered plus cfg->features
 * (what the device lacks is left out: check vn->vd.features), set up the
 * two queues, allocate and post the receive buffers, allocate the
 * transmit buffers, set DRIVER_OK and fill vn->nif.  Without F_MAC the
 * MAC is 52:54:00:00:00:01.  Returns 0, or -errno from the virtio
 * library, -GUEST_EINVAL for a bad cfg, -GUEST_ENOSPC without memory.
 */
int vnet_init(struct vnet *vn, const struct vnet_cfg *cfg);
/* Link state from the config space: true if up (or F_STATUS absent). */
bool vnet_link_up(struct vnet *vn);
/* Post buf (rx_buf_len bytes) on the receive queue, no kick.  Returns the
 * chain head or vio_submit()'s -errno.  Ring-3 safe. */
int vnet_rx_post(struct vnet *vn, uint8_t *buf);

#endif
