/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * net-bench (benchmark): virtio-net packet rates and throughput from a
 * polling guest.  Command line:
 *   mode=tx|rx        send or receive (default tx)
 *   n=N               frames to send or receive (default 100000)
 *   size=S            tx: frame bytes, FCS and virtio header excluded
 *                     (default 64; 60-1514, or up to 65549 with tso)
 *   tso               tx: TCP frames handed to the device as one
 *                     GSO_TCPV4 packet (gso_size 1448, checksum offload;
 *                     needs HOST_TSO4 and CSUM); rx: accept large
 *                     packets from the host (GUEST_TSO4, GUEST_CSUM)
 *   bytes             rx: n= counts received bytes (frames without the
 *                     virtio header), not packets: for TSO, where the
 *                     host may hand over whole 64 KiB packets or segments
 *   dmac=MAC dst=IP   tx: where the frames go (default broadcast,
 *                     10.0.0.1); ip=IP the source address (10.0.0.2)
 *   port=P            tx: destination port (default 9, discard)
 * Ring 0 finds the first virtio network device (modern interface),
 * negotiates VERSION_1, MAC, STATUS, MRG_RXBUF and the offloads asked for,
 * sets up the receive and transmit queues (up to 256 entries), and prints
 * the plan, then "net-bench: ready, entering ring 3".  From there it runs
 * in ring 3 for good:
 *   tx: one frame, built once, is submitted over and over with every
 *       descriptor of the queue in flight; completions are polled.  Stops
 *       once N frames have completed.
 *   rx: every receive buffer is posted; each used buffer counts as a
 *       frame (with MRG_RXBUF a packet's continuation buffers do not) and
 *       is posted again at once.  Stops after N frames.  The host starts
 *       sending after the ready line; the guest does not answer ARP, so
 *       the host needs a static neighbour entry for it.
 * Kicks are 16-bit MMIO writes to the notify register, skipped while the
 * device sets NO_NOTIFY.  Used lengths and num_buffers are checked.
 *
 * End: the khyve exit register with 0x10 (status 33); under QEMU, which
 * has no exit register, a triple fault (status 0).  On an error it writes
 * 0x11 (khyve status 35) and spins, so under QEMU a failure is a timeout.
 * BSP only.
 */
#include "net.h"
#include "vnet.h"

const char guest_name[] = "net-bench";

#define DEFAULT_N 100000
#define TSO_MSS 1448
#define TSO_MAX (NET_ETH_HLEN + 65535)
#define RX_BUF 2048
#define RX_BUF_BIG (VNET_HDR_LEN + TSO_MAX)
#define HDRS_UDP (NET_ETH_HLEN + 20 + 8)
#define HDRS_TCP (NET_ETH_HLEN + 20 + 20)

enum mode { TX, RX };

struct bench {
	unsigned int mode; /* enum mode */
	uint64_t n, size;
	bool tso;
	bool bytes; /* rx: n counts payload bytes, not packets */
	uint8_t dmac[NET_ALEN];
	uint32_t src, dst;
	uint16_t port;
	uint8_t *frame; /* tx: virtio header and frame */
	struct vio_seg seg;
};

static struct vnet vn;
static struct bench bench;

/* ---- ring 3
 * ------------------------------------------------------------------ */

static int tx_submit(void *arg, unsigned int s, uint64_t i)
{
	struct bench *b = arg;

	(void)s;
	(void)i;
	return vio_submit(vn.txq, &b->seg, 1);
}

static bool tx_check(void *arg, unsigned int s, uint32_t len)
{
	(void)arg;
	(void)s;
	(void)len; /* a device may report 0 or the bytes read */
	return true;
}

static void tx_loop(void *arg)
{
	struct bench *b = arg;

	bench_vio_run(vn.txq, vn.txq->size, b->n, tx_submit, tx_check, b);
}

static void rx_loop(void *arg)
{
	struct bench *b = arg;
	const struct virtio_net_hdr *h;
	uint64_t frames = 0, total = 0;
	uint32_t len, rest = 0;
	uint16_t head;
	uint8_t *buf;
	bool posted;
	int rc;

	while ((b->bytes ? total : frames) < b->n) {
		posted = false;
		while ((rc = vio_get_used(vn.rxq, &head, &len)) > 0) {
			buf = vn.rx_buf[head];
			if (!buf || len > vn.rx_buf_len)
				bench_fail();
			total += len;
			if (rest) {
				rest--; /* a continuation buffer */
			} else {
				total -= len < VNET_HDR_LEN ? len : VNET_HDR_LEN;
				h = (const struct virtio_net_hdr *)buf;
				if (len < VNET_HDR_LEN ||
				    (vn.mrg_rxbuf && !h->num_buffers))
					bench_fail();
				if (vn.mrg_rxbuf)
					rest = h->num_buffers - 1u;
				frames++;
			}
			if (vnet_rx_post(&vn, buf) < 0)
				bench_fail();
			posted = true;
		}
		if (rc < 0)
			bench_fail();
		if (posted)
			vio_kick(vn.rxq);
		else
			cpu_relax();
	}
	exit_mmio(GUEST_EXIT_PASS);
}

/* ---- ring 0 set-up
 * ------------------------------------------------------------- */

static void parse_ip(const char *key, uint32_t *ip)
{
	unsigned int prefix;
	char v[40];
	int rc = cmdline_get(key, v, sizeof(v));

	if (rc == -GUEST_ENOENT)
		return;
	if (rc < 0 || net_parse_cidr(v, ip, &prefix))
		guest_fail("bad %s= (want A.B.C.D)", key);
}

static void parse(struct bench *b)
{
	static const char *const modes[] = {"tx", "rx"};
	uint64_t v, max;
	char s[24];
	int rc;

	b->mode = TX;
	b->n = DEFAULT_N;
	b->size = 64;
	b->src = NET_IP4(10, 0, 0, 2);
	b->dst = NET_IP4(10, 0, 0, 1);
	b->port = 9;
	memset(b->dmac, 0xff, NET_ALEN);
	bench_parse_choice("mode", modes, 2, "tx or rx", &b->mode);
	b->tso = cmdline_has_word("tso");
	b->bytes = cmdline_has_word("bytes");
	if (cmdline_get_u64("n", &b->n) == -GUEST_EINVAL || b->n == 0)
		guest_fail("bad n=");
	max = b->tso ? TSO_MAX : NET_FRAME_MAX;
	rc = cmdline_get_u64("size", &b->size);
	if (rc == -GUEST_EINVAL || b->size < (b->tso ? HDRS_TCP + 1 : 60) ||
	    b->size > max)
		guest_fail("size= must be %u-%lu%s", b->tso ? HDRS_TCP + 1 : 60,
			   max, b->tso ? "" : " (more with tso)");
	rc = cmdline_get("dmac", s, sizeof(s));
	if (rc != -GUEST_ENOENT && (rc < 0 || net_parse_mac(s, b->dmac)))
		guest_fail("bad dmac= (want xx:xx:xx:xx:xx:xx)");
	parse_ip("dst", &b->dst);
	parse_ip("ip", &b->src);
	rc = cmdline_get_u64("port", &v);
	if (rc == -GUEST_EINVAL || (rc == 0 && (v == 0 || v > 65535)))
		guest_fail("bad port= (want 1-65535)");
	if (rc == 0)
		b->port = (uint16_t)v;
}

/* Build the one tx frame: UDP, or TCP with a GSO header for tso. */
static void build_frame(struct bench *b)
{
	struct virtio_net_hdr *h;
	uint32_t l4len = (uint32_t)b->size - NET_ETH_HLEN - 20, sum;
	uint8_t *f, *ip, *l4;

	b->frame = dma_zalloc(VNET_HDR_LEN + b->size, 4096);
	if (!b->frame)
		guest_fail("out of memory for a %lu-byte frame", b->size);
	h = (struct virtio_net_hdr *)b->frame;
	f = b->frame + VNET_HDR_LEN;
	net_copy(f, b->dmac, NET_ALEN);
	net_copy(f + 6, vn.nif.mac, NET_ALEN);
	net_put16(f + 12, NET_ETH_IP);
	ip = f + NET_ETH_HLEN;
	ip[0] = 0x45;
	net_put16(ip + 2, (uint16_t)(b->size - NET_ETH_HLEN));
	net_put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = b->tso ? NET_IP_TCP : NET_IP_UDP;
	net_put32(ip + 12, b->src);
	net_put32(ip + 16, b->dst);
	net_put16(ip + 10, net_csum_fold(net_csum_add(0, ip, 20)));
	l4 = ip + 20;
	net_put16(l4, 1024);
	net_put16(l4 + 2, b->port);
	if (!b->tso) {
		net_put16(l4 + 4, (uint16_t)l4len); /* checksum 0: none */
	} else {
		net_put32(l4 + 4, 1); /* seq */
		net_put32(l4 + 8, 1); /* ack */
		l4[12] = 5 << 4;
		l4[13] = 0x18;		   /* PSH ACK */
		net_put16(l4 + 14, 65535); /* window */
		/* checksum offload: the field holds the pseudo-header sum,
		 * the device adds the segment */
		sum = net_csum_pseudo(b->src, b->dst, NET_IP_TCP, l4len);
		net_put16(l4 + 16, (uint16_t)~net_csum_fold(sum));
		h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h->csum_start = NET_ETH_HLEN + 20;
		h->csum_offset = 16;
		if (l4len - 20 > TSO_MSS) {
			h->gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
			h->gso_size = TSO_MSS;
			h->hdr_len = HDRS_TCP;
		}
	}
	b->seg = (struct vio_seg){virt_to_phys(b->frame),
				  (uint32_t)(VNET_HDR_LEN + b->size), false};
}

static void setup(struct bench *b)
{
	struct vnet_cfg cfg = {.rx_queue = VIO_QUEUE_MAX,
			       .tx_queue = VIO_QUEUE_MAX};
	uint64_t need = 0;
	char m[18], s1[16], s2[16];
	int rc;

	if (vnet_find(0, &vn))
		guest_fail("no virtio network device on bus 0");
	if (b->mode == TX && b->tso)
		need = VIRTIO_BIT(VIRTIO_NET_F_CSUM) |
		       VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4);
	if (b->mode == RX && b->tso)
		need = VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM) |
		       VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4);
	cfg.features = need;
	/* with tso a packet may be 64 KiB: one buffer holds it, merged
	 * buffers or not */
	if (b->mode == RX)
		cfg.rx_buf_len = b->tso ? RX_BUF_BIG : RX_BUF;
	rc = vnet_init(&vn, &cfg);
	if (rc)
		guest_fail("virtio-net set-up: %d", rc);
	if ((vn.vd.features & need) != need)
		guest_fail("tso needs features 0x%lx, the device offers 0x%lx",
			   need, vn.vd.offered);
	if (b->mode == TX)
		build_frame(b);
	printf("net-bench: %s n=%lu size=%lu%s on %02x:%02x.%u, mac %s, "
	       "queues %u/%u, features 0x%lx%s\n",
	       b->mode == TX ? "tx" : "rx", b->n, b->size, b->tso ? " tso" : "",
	       vn.vd.bus, vn.vd.dev, vn.vd.fn, net_fmt_mac(m, vn.nif.mac),
	       vn.rxq->size, vn.txq->size, vn.vd.features,
	       vn.mrg_rxbuf ? " (mrg_rxbuf)" : "");
	if (b->mode == TX)
		printf("net-bench: frames %s -> %s, %s port %u, to %s\n",
		       net_fmt_ip(s1, b->src), net_fmt_ip(s2, b->dst),
		       b->tso ? "tcp" : "udp", b->port,
		       net_fmt_mac(m, b->dmac));
	else
		printf("net-bench: %u receive buffers of %u bytes posted\n",
		       vn.rxq->size, vn.rx_buf_len);
	if (!vnet_link_up(&vn))
		printf("net-bench: the device reports the link down\n");
}

void guest_main(void)
{
	parse(&bench);
	setup(&bench);
	printf("net-bench: ready, entering ring 3\n");
	ring3_enter(bench.mode == TX ? tx_loop : rx_loop, &bench);
}
