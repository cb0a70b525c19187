/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A polled virtio-net driver (virtio 1.2 §5.1) for the test guests, over
 * the virtio-pci library: modern interface (or legacy on request),
 * receive queue 0, transmit queue 1, one descriptor per buffer with the
 * header in front (12 bytes; 10 for legacy without MRG_RXBUF).
 * With MRG_RXBUF a frame may span buffers (num_buffers in its header);
 * this driver posts buffers big enough for any frame it accepts, so a
 * spanning frame is dropped whole (its continuation buffers are skipped).
 * Lengths from the device are checked against the buffers.
 *
 * State: the caller's struct vnet.  BSP only, no locks.  On the modern
 * interface the netif operations are ring-3 safe (memory and MMIO only);
 * vnet_init() is ring 0.
 */
#include "vnet.h"

int vnet_find(unsigned int nth, struct vnet *vn)
{
	mem_clear(vn, sizeof(*vn));
	return vio_find(VIRTIO_ID_NET, nth, &vn->vd);
}

bool vnet_link_up(struct vnet *vn)
{
	if (!vn->has_status)
		return true;
	return vio_cfg_read(&vn->vd, VIRTIO_NET_CFG_STATUS, 2) &
	       VIRTIO_NET_S_LINK_UP;
}

int vnet_rx_post(struct vnet *vn, uint8_t *buf)
{
	struct vio_seg s = {virt_to_phys(buf), vn->rx_buf_len, true};
	int head = vio_submit(vn->rxq, &s, 1);

	if (head >= 0)
		vn->rx_buf[head] = buf;
	return head;
}

/* ---- netif operations ------------------------------------------------------
 */

static int vnet_rx(struct netif *nif, const uint8_t **frame)
{
	struct vnet *vn = nif->drv;
	const struct virtio_net_hdr *h;
	uint16_t head, nb;
	uint32_t len;
	uint8_t *buf;
	int rc;

	for (;;) {
		rc = vio_get_used(vn->rxq, &head, &len);
		if (rc <= 0)
			return rc;
		buf = vn->rx_buf[head];
		if (!buf)
			return -GUEST_EPROTO;
		vn->rx_buf[head] = NULL;
		if (vn->rx_skip) {
			vn->rx_skip--;
			goto drop;
		}
		h = (const struct virtio_net_hdr *)buf;
		if (len < vn->hdr_len + NET_ETH_HLEN || len > vn->rx_buf_len) {
			nif->rx_errors++;
			goto drop;
		}
		nb = vn->mrg_rxbuf ? h->num_buffers : 1;
		if (nb != 1) {
			/* our buffers hold any frame we take: drop it */
			vn->rx_skip = nb ? (uint16_t)(nb - 1) : 0;
			vn->rx_dropped++;
			nif->rx_errors++;
			goto drop;
		}
		vn->rx_cur = head;
		vn->rx_buf[head] = buf; /* until rx_done */
		nif->rx_frames++;
		*frame = buf + vn->hdr_len;
		return (int)(len - vn->hdr_len);
	drop:
		if (vnet_rx_post(vn, buf) < 0)
			return -GUEST_EPROTO;
		vio_kick(vn->rxq);
	}
}

static void vnet_rx_done(struct netif *nif)
{
	struct vnet *vn = nif->drv;
	uint8_t *buf;

	if (vn->rx_cur < 0)
		return;
	buf = vn->rx_buf[vn->rx_cur];
	vn->rx_buf[vn->rx_cur] = NULL;
	vn->rx_cur = -1;
	if (vnet_rx_post(vn, buf) >= 0)
		vio_kick(vn->rxq);
}

static uint8_t *vnet_tx_buf(struct netif *nif)
{
	struct vnet *vn = nif->drv;
	struct vio_queue *q = vn->txq;
	uint16_t head;
	uint32_t len;

	if (!vn->tx_buf_len)
		return NULL;
	while (vio_get_used(q, &head, &len) > 0)
		;
	if (!q->num_free)
		return NULL;
	/* vio_submit() takes the free-list head: that is our buffer */
	vn->tx_cur = q->free_head;
	return vn->tx_buf[vn->tx_cur] + vn->hdr_len;
}

static int vnet_tx(struct netif *nif, uint32_t len)
{
	struct vnet *vn = nif->drv;
	struct vio_seg s;
	uint8_t *buf;
	int head;

	if (vn->tx_cur < 0 || len > vn->tx_buf_len - vn->hdr_len)
		return -GUEST_EINVAL;
	buf = vn->tx_buf[vn->tx_cur];
	mem_clear(buf, vn->hdr_len);
	s = (struct vio_seg){virt_to_phys(buf), len + vn->hdr_len, false};
	head = vio_submit(vn->txq, &s, 1);
	if (head < 0)
		return head;
	if (head != vn->tx_cur)
		return -GUEST_EPROTO; /* cannot happen: see vnet_tx_buf */
	vn->tx_cur = -1;
	vio_kick(vn->txq);
	nif->tx_frames++;
	return 0;
}

/* ---- set-up ----------------------------------------------------------------
 */

static int alloc_bufs(uint8_t **tab, unsigned int count, uint32_t len)
{
	uint32_t stride = (len + 63) & ~63u;
	uint8_t *all;
	unsigned int i;

	all = dma_alloc((uint64_t)stride * count, 4096);
	if (!all)
		return -GUEST_ENOSPC;
	for (i = 0; i < count; i++)
		tab[i] = all + (uint64_t)stride * i;
	return 0;
}

int vnet_init(struct vnet *vn, const struct vnet_cfg *cfg)
{
	struct vio_dev *vd = &vn->vd;
	uint8_t *rx[VIO_QUEUE_MAX];
	uint64_t want;
	unsigned int i;
	char m[18];
	int rc;

	if ((cfg->rx_buf_len &&
	     cfg->rx_buf_len < VNET_HDR_LEN + NET_FRAME_MAX) ||
	    (cfg->tx_buf_len &&
	     cfg->tx_buf_len < VNET_HDR_LEN + NET_FRAME_MAX) ||
	    !cfg->rx_queue || !cfg->tx_queue)
		return -GUEST_EINVAL;
	vn->rx_cur = vn->tx_cur = -1;
	rc = vio_probe(vd, cfg->legacy, cfg->verbose);
	if (rc)
		return rc;
	want = cfg->features | VIRTIO_BIT(VIRTIO_NET_F_MAC) |
	       VIRTIO_BIT(VIRTIO_NET_F_STATUS) |
	       VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
	rc = vio_start(vd, want);
	if (rc)
		return rc;
	vn->mrg_rxbuf = vd->features & VIRTIO_BIT(VIRTIO_NET_F_MRG_RXBUF);
	vn->has_status = vd->features & VIRTIO_BIT(VIRTIO_NET_F_STATUS);
	vn->hdr_len = vd->legacy && !vn->mrg_rxbuf ? VNET_HDR_LEN_LEGACY
						   : VNET_HDR_LEN;
	rc = vio_queue_setup(vd, VNET_Q_RX, cfg->rx_queue);
	if (!rc)
		rc = vio_queue_setup(vd, VNET_Q_TX, cfg->tx_queue);
	if (rc)
		return rc;
	vn->rxq = &vd->q[VNET_Q_RX];
	vn->txq = &vd->q[VNET_Q_TX];
	vn->rx_buf_len = cfg->rx_buf_len;
	vn->tx_buf_len = cfg->tx_buf_len;
	if (vn->rx_buf_len) {
		rc = alloc_bufs(rx, vn->rxq->size, vn->rx_buf_len);
		if (rc)
			return rc;
		for (i = 0; i < vn->rxq->size; i++)
			if (vnet_rx_post(vn, rx[i]) < 0)
				return -GUEST_EIO;
	}
	if (vn->tx_buf_len) {
		rc = alloc_bufs(vn->tx_buf, vn->txq->size, vn->tx_buf_len);
		if (rc)
			return rc;
	}
	if (vd->features & VIRTIO_BIT(VIRTIO_NET_F_MAC)) {
		for (i = 0; i < NET_ALEN; i++)
			vn->nif.mac[i] = (uint8_t)vio_cfg_read(
				vd, VIRTIO_NET_CFG_MAC + i, 1);
	} else {
		static const uint8_t def[NET_ALEN] = {0x52, 0x54, 0, 0, 0, 1};

		net_copy(vn->nif.mac, def, NET_ALEN);
	}
	rc = vio_driver_ok(vd);
	if (rc)
		return rc;
	if (vn->rx_buf_len)
		vio_kick(vn->rxq);
	vn->nif.kind = "virtio-net";
	vn->nif.bus = vd->bus;
	vn->nif.dev = vd->dev;
	vn->nif.fn = vd->fn;
	vn->nif.drv = vn;
	vn->nif.rx = vnet_rx;
	vn->nif.rx_done = vnet_rx_done;
	vn->nif.tx_buf = vnet_tx_buf;
	vn->nif.tx = vnet_tx;
	if (cfg->verbose)
		printf("virtio-net: features 0x%lx of 0x%lx, header %u bytes, "
		       "queues %u/%u, mac %s%s\n",
		       vd->features, vd->offered, vn->hdr_len, vn->rxq->size,
		       vn->txq->size, net_fmt_mac(m, vn->nif.mac),
		       vd->features & VIRTIO_BIT(VIRTIO_NET_F_MAC)
			       ? ""
			       : " (default)");
	return 0;
}
