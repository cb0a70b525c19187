/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for virtio-net without KVM: the test plays the guest driver
 * through vdrv.h (modern and legacy interfaces) and the far end of the
 * link through a socketpair(AF_UNIX, SOCK_DGRAM) handed to the device as
 * "backend=fd:N".  Covered: PCI identity, config space (MAC, status, MTU),
 * MAC derivation and mac=/mtu= (and bad values), a NIC without backend
 * (link down, transmit dropped), transmit (split, indirect, batched with
 * one interrupt, legacy 10-byte header), receive with and without
 * mergeable buffers (small, full-size, 60 KB frames across 512-byte
 * buffers, both the pop-ahead and the bounce-buffer paths), no receive
 * buffers then a kick, the control queue (every RX mode, MAC table with
 * overflow, MAC address, malformed commands) and the receive filter,
 * config writes, EVENT_IDX avail_event publishing, hostile descriptors
 * (loops, buffers outside RAM, read-only or too-small receive buffers,
 * short/long/oversized frames, control commands without an ack byte),
 * resets while frames flow both ways, and, where /dev/net/tun can be used
 * (else skipped), a tap backend seen from an AF_PACKET socket: offloads
 * offered, a guest TSO frame leaving whole with its GSO header, a host GSO
 * frame arriving whole over mergeable buffers, kernel segmentation when
 * the guest did not take GUEST_TSO4.
 *
 * Threads: the test thread plays the guest (kicks run the device on it,
 * no ioeventfd); the event loop runs on its own thread and delivers
 * received frames from the backend's callback; a flood thread writes and
 * drains the socket in the reset test.  The used rings are read with
 * acquire (vdrv_used) and polled with a bounded wait.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "event/event.h"
#include "net/net_backend.h"
#include "tests/dev/vdrv.h"
#include "tests/tap.h"

#define SLOT 3
#define QSIZE 256
#define RXMEM (8u << 20)
#define NONE 0xffff
#define ETH 14

#define F(b) VIRTIO_BIT(b)
#define F_V1 F(VIRTIO_F_VERSION_1)
#define F_MRG F(VIRTIO_NET_F_MRG_RXBUF)
#define F_CTRL                                                                 \
	(F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) |                   \
	 F(VIRTIO_NET_F_CTRL_RX_EXTRA) | F(VIRTIO_NET_F_CTRL_MAC_ADDR))
#define F_BASE                                                                 \
	(F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_MTU) | F(VIRTIO_NET_F_STATUS) |  \
	 F(VIRTIO_F_INDIRECT_DESC))

static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t other[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x42};
static const uint8_t mcast[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
static const uint8_t src_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

struct env {
	struct vdrv_machine m;
	struct vdrv d;
	struct event_loop *ev;
	pthread_t thr;
	bool running;
	int sv[2];     /* sv[0]: the device's end (fd:N), sv[1]: ours */
	uint64_t feat; /* negotiated */
	unsigned hdr;  /* header length for it */
	uint64_t rxmem, rxoff;
	uint64_t rxaddr[1024];
	uint32_t rxsz[1024];
	uint64_t tx;  /* 128 KiB transmit area */
	uint64_t ctl; /* control commands */
	uint64_t tbl; /* indirect tables */
};

/* ---- machine ---- */

static void *loop_main(void *ev)
{
	event_loop_run(ev);
	return NULL;
}

/*
 * A machine with a virtio-net at SLOT; 'backend' false: no backend key.
 * 'extra' are "key", "value" pairs for the device node.  0 or the init
 * error (the machine is then freed).
 */
static int env_new(struct env *e, bool backend, const char *const *extra)
{
	char keys[8][64], fdarg[32];
	const char *kv[32];
	unsigned n = 0, k = 0;
	int rc;

	memset(e, 0, sizeof(*e));
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, e->sv))
		return -errno;
	fcntl(e->sv[1], F_SETFL, O_NONBLOCK);
	kv[n++] = "pci.0.3.0.device";
	kv[n++] = "virtio-net";
	if (backend) {
		snprintf(fdarg, sizeof(fdarg), "fd:%d", e->sv[0]);
		kv[n++] = "pci.0.3.0.backend";
		kv[n++] = fdarg;
	}
	for (; extra && *extra && k < 8; extra += 2, k++) {
		snprintf(keys[k], sizeof(keys[k]), "pci.0.3.0.%s", extra[0]);
		kv[n++] = keys[k];
		kv[n++] = extra[1];
	}
	kv[n] = NULL;
	if (event_loop_new(&e->ev))
		return -ENOMEM;
	rc = vdrv_machine_new_ev(&e->m, kv, e->ev);
	if (rc) {
		vdrv_machine_free(&e->m);
		event_loop_free(e->ev);
		close(e->sv[0]);
		close(e->sv[1]);
		return rc;
	}
	/* the loop runs only once the devices exist (event_add_fd) */
	if (pthread_create(&e->thr, NULL, loop_main, e->ev))
		return -EAGAIN;
	e->running = true;
	e->rxmem = vdrv_alloc(&e->m, RXMEM, 4096);
	e->tx = vdrv_alloc(&e->m, 128 << 10, 4096);
	e->ctl = vdrv_alloc(&e->m, 64 << 10, 4096);
	e->tbl = vdrv_alloc(&e->m, 64 << 10, 4096);
	return 0;
}

static void env_free(struct env *e)
{
	vdrv_status(&e->d, 0);
	if (e->running) {
		event_loop_stop(e->ev, 0);
		pthread_join(e->thr, NULL);
	}
	vdrv_machine_free(&e->m);
	event_loop_free(e->ev);
	close(e->sv[0]);
	close(e->sv[1]);
}

static uint8_t *gp(struct env *e, uint64_t gpa)
{
	return vdrv_ptr(&e->m, gpa);
}

static bool needs_reset(struct env *e)
{
	return vdrv_get_status(&e->d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

static unsigned msis(struct env *e)
{
	return __atomic_load_n(&e->m.msi_count, __ATOMIC_ACQUIRE);
}

/*
 * Driver set-up: modern with MSI-X (config vector 0, queue q on vector
 * q + 1) or legacy with INTx; all three queues.  Returns the features.
 */
static uint64_t drv_init(struct env *e, bool legacy, uint64_t want)
{
	unsigned q;

	vdrv_probe(&e->d, &e->m, SLOT, legacy, !legacy);
	e->feat = vdrv_negotiate(&e->d, want);
	e->hdr = e->feat & (F_V1 | F_MRG) ? 12 : 10;
	if (!legacy) {
		for (q = 0; q < 4; q++)
			vdrv_msix_vec(&e->d, q, 0x40 + q);
		vdrv_common(&e->d, VIRTIO_PCI_COMMON_MSIX, 2, true, 0);
	}
	for (q = 0; q < 3; q++)
		vdrv_queue(&e->d, q, QSIZE, legacy ? NONE : (uint16_t)(q + 1));
	vdrv_driver_ok(&e->d);
	e->rxoff = 0;
	return e->feat;
}

static uint64_t cfgr(struct env *e, unsigned off, unsigned size)
{
	if (e->d.legacy)
		return vdrv_pio(&e->m, e->d.io + 20 + off, size, false, 0);
	return vdrv_mmio(&e->m, e->d.bar4 + 0x2000 + off, size, false, 0);
}

static void cfgw(struct env *e, unsigned off, unsigned size, uint64_t v)
{
	if (e->d.legacy)
		vdrv_pio(&e->m, e->d.io + 20 + off, size, true, v);
	else
		vdrv_mmio(&e->m, e->d.bar4 + 0x2000 + off, size, true, v);
}

static void cfg_mac(struct env *e, uint8_t mac[6])
{
	unsigned i;

	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)cfgr(e, VIRTIO_NET_CFG_MAC + i, 1);
}

static uint64_t offered(struct env *e)
{
	struct vdrv *d = &e->d;

	vdrv_common(d, VIRTIO_PCI_COMMON_DFSELECT, 4, true, 0);
	uint64_t f = vdrv_common(d, VIRTIO_PCI_COMMON_DF, 4, false, 0);
	vdrv_common(d, VIRTIO_PCI_COMMON_DFSELECT, 4, true, 1);
	return f | vdrv_common(d, VIRTIO_PCI_COMMON_DF, 4, false, 0) << 32;
}

/* ---- rings ---- */

static void kick(struct env *e, unsigned qi)
{
	if (e->d.legacy)
		vdrv_pio(&e->m, e->d.io + VIRTIO_PCI_LEGACY_QUEUE_NOTIFY, 2,
			 true, qi);
	else
		vdrv_mmio(&e->m, e->d.bar4 + 0x3000 + qi * e->d.notify_mult, 2,
			  true, qi);
}

/* Post a chain of 'n' segments on 'qi', kicking if asked.  The head. */
static uint16_t post(struct env *e, unsigned qi, unsigned n,
		     const uint64_t *gpa, const uint32_t *len, const bool *wr,
		     bool dokick)
{
	struct vdrv_q *q = &e->d.q[qi];
	uint16_t head = q->next_desc, i;

	for (i = 0; i < n; i++)
		vdrv_desc(&e->d, qi, (uint16_t)((head + i) % q->size), gpa[i],
			  len[i],
			  (uint16_t)((i + 1u < n ? VIRTQ_DESC_F_NEXT : 0) |
				     (wr[i] ? VIRTQ_DESC_F_WRITE : 0)),
			  (uint16_t)((head + i + 1) % q->size));
	q->next_desc = (uint16_t)((head + n) % q->size);
	vdrv_publish(&e->d, qi, head, dokick);
	return head;
}

/* Post one receive buffer of 'size' bytes.  The head. */
static uint16_t post_rx(struct env *e, uint32_t size, bool dokick)
{
	uint64_t gpa = e->rxmem + e->rxoff;
	bool wr = true;
	uint16_t head;

	e->rxoff += (size + 63) & ~63u;
	if (e->rxoff > RXMEM)
		e->rxoff = 0; /* tests stay far below */
	memset(gp(e, gpa), 0xa5, size);
	head = post(e, VIRTIO_NET_Q_RX, 1, &gpa, &size, &wr, dokick);
	e->rxaddr[head] = gpa;
	e->rxsz[head] = size;
	return head;
}

static void post_rx_n(struct env *e, unsigned n, uint32_t size)
{
	unsigned i;

	for (i = 0; i < n; i++)
		post_rx(e, size, i + 1 == n);
}

static void nap_ms(unsigned ms)
{
	struct timespec t = {0, ms ? (long)ms * 1000000 : 200000};

	nanosleep(&t, NULL);
}

/* Next used element of 'qi' within 'ms' milliseconds: 1, or 0. */
static int wait_used(struct env *e, unsigned qi, uint32_t *id, uint32_t *len,
		     unsigned ms)
{
	unsigned i;

	for (i = 0; i <= ms; i++) {
		if (vdrv_used(&e->d, qi, id, len))
			return 1;
		nap_ms(1);
	}
	return 0;
}

/*
 * Collect one received frame (header included) into 'buf': its length,
 * or -1 when none came within 'ms'.  *nbufs gets the chains it used.
 */
static int rx_frame(struct env *e, uint8_t *buf, size_t max, unsigned ms,
		    unsigned *nbufs)
{
	uint32_t id, len;
	unsigned nb = 1, i;
	size_t got = 0;

	for (i = 0; i < nb; i++) {
		if (!wait_used(e, VIRTIO_NET_Q_RX, &id, &len, ms) ||
		    id >= 1024 || len > e->rxsz[id] || got + len > max)
			return -1;
		memcpy(buf + got, gp(e, e->rxaddr[id]), len);
		got += len;
		if (i == 0 && e->hdr == 12 && (e->feat & F_MRG)) {
			nb = buf[10] | buf[11] << 8;
			if (nb == 0 || nb > 1024)
				return -1;
		}
	}
	if (nbufs)
		*nbufs = nb;
	return (int)got;
}

/* An Ethernet frame of 'len' bytes to 'dst' with sequence number 'seq'. */
static void mkframe(uint8_t *f, const uint8_t *dst, size_t len, uint32_t seq)
{
	size_t i;

	memcpy(f, dst, 6);
	memcpy(f + 6, src_mac, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	for (i = ETH; i < len; i++)
		f[i] = (uint8_t)(seq * 13 + i * 7);
	if (len >= ETH + 4)
		memcpy(f + ETH, &seq, 4);
}

static uint32_t frame_seq(const uint8_t *f)
{
	uint32_t s;

	memcpy(&s, f + ETH, 4);
	return s;
}

/* The peer sends a frame.  0 or -1. */
static int peer_send(struct env *e, const uint8_t *f, size_t len)
{
	return send(e->sv[1], f, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* The peer receives a frame within 'ms': its length or -1. */
static ssize_t peer_recv(struct env *e, uint8_t *buf, size_t max, unsigned ms)
{
	struct pollfd p = {.fd = e->sv[1], .events = POLLIN};

	if (poll(&p, 1, (int)ms) != 1)
		return -1;
	return recv(e->sv[1], buf, max, MSG_DONTWAIT);
}

/* Transmit 'len' bytes at e->tx (header included) as one descriptor. */
static uint16_t tx_post(struct env *e, uint32_t len, bool dokick)
{
	uint64_t gpa = e->tx;
	bool wr = false;

	return post(e, VIRTIO_NET_Q_TX, 1, &gpa, &len, &wr, dokick);
}

/* ---- control queue ---- */

/* Run a control command; the ack byte, or -1 without an answer. */
static int ctrl(struct env *e, uint8_t cls, uint8_t cmd, const void *data,
		uint32_t dlen)
{
	uint64_t g[3] = {e->ctl, e->ctl + 64, e->ctl + 60000};
	uint32_t l[3] = {2, dlen, 1}, id, len;
	bool wr[3] = {false, false, true};
	uint8_t *p = gp(e, e->ctl);

	p[0] = cls;
	p[1] = cmd;
	memcpy(gp(e, e->ctl + 64), data, dlen);
	*gp(e, e->ctl + 60000) = 0xee;
	if (dlen == 0) {
		g[1] = g[2];
		l[1] = l[2];
		wr[1] = true;
	}
	post(e, VIRTIO_NET_Q_CTRL, dlen ? 3 : 2, g, l, wr, true);
	if (!wait_used(e, VIRTIO_NET_Q_CTRL, &id, &len, 2000) || len != 1)
		return -1;
	return *gp(e, e->ctl + 60000);
}

static int rxmode(struct env *e, uint8_t cmd, uint8_t on)
{
	return ctrl(e, VIRTIO_NET_CTRL_RX, cmd, &on, 1);
}

/* MAC table: 'nu' unicast then 'nm' multicast entries. */
static int mac_table(struct env *e, const uint8_t (*u)[6], uint32_t nu,
		     const uint8_t (*mc)[6], uint32_t nm)
{
	uint8_t buf[8 + 6 * 80];
	uint32_t v = htole32(nu), len = 0;

	memcpy(buf + len, &v, 4);
	len += 4;
	memcpy(buf + len, u, 6 * nu);
	len += 6 * nu;
	v = htole32(nm);
	memcpy(buf + len, &v, 4);
	len += 4;
	memcpy(buf + len, mc, 6 * nm);
	len += 6 * nm;
	return ctrl(e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, buf,
		    len);
}

/*
 * Send a frame to 'dst' then a sentinel to 'sent' (which the filter
 * passes): 1 when the frame arrived, 0 when it was filtered, -1 on error.
 */
static int passes(struct env *e, const uint8_t *dst, const uint8_t *sent)
{
	static uint32_t seq = 1000;
	uint8_t f[128], got[2048];
	uint32_t s1 = ++seq, s2 = ++seq;

	mkframe(f, dst, 100, s1);
	if (peer_send(e, f, 100))
		return -1;
	mkframe(f, sent, 100, s2);
	if (peer_send(e, f, 100))
		return -1;
	if (rx_frame(e, got, sizeof(got), 2000, NULL) != (int)e->hdr + 100)
		return -1;
	if (frame_seq(got + e->hdr) == s2)
		return 0;
	if (frame_seq(got + e->hdr) != s1 ||
	    rx_frame(e, got, sizeof(got), 2000, NULL) != (int)e->hdr + 100 ||
	    frame_seq(got + e->hdr) != s2)
		return -1;
	return 1;
}

/* ---- tests ---- */

static void test_config(void)
{
	uint8_t mac[6], want[6];
	struct env e;
	uint64_t f;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine with virtio-net");
		return;
	}
	vdrv_probe(&e.d, &e.m, SLOT, false, true);
	is_int(vdrv_cfg(&e.d, PCIR_VENDOR, 2), 0x1af4, "vendor 0x1af4");
	is_int(vdrv_cfg(&e.d, PCIR_DEVICE, 2), 0x1000, "transitional id");
	is_int(vdrv_cfg(&e.d, PCIR_SUBDEV, 2), VIRTIO_ID_NET, "subsystem 1");
	is_int(vdrv_cfg(&e.d, PCIR_CLASS, 1), 0x02, "class: network");
	f = offered(&e);
	ok((f & (F_BASE | F_MRG | F_CTRL | F_V1 | F(VIRTIO_F_EVENT_IDX))) ==
		   (F_BASE | F_MRG | F_CTRL | F_V1 | F(VIRTIO_F_EVENT_IDX)),
	   "offers MAC MTU STATUS MRG_RXBUF CTRL_* EVENT_IDX INDIRECT V1");
	ok(!(f & (F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_VLAN) |
		  F(VIRTIO_NET_F_GUEST_ANNOUNCE))),
	   "no MQ, CTRL_VLAN, GUEST_ANNOUNCE");
	ok(!(f & (F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) |
		  F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO4))),
	   "no offloads over a datagram socket");
	cfg_mac(&e, mac);
	net_mac_derive(want, NULL, SLOT, 0);
	ok(!memcmp(mac, want, 6), "MAC derived from slot/func/name");
	ok(mac[0] == 0x58 && mac[1] == 0x9c && mac[2] == 0xfc,
	   "derived MAC has bhyve's OUI");
	is_int(cfgr(&e, VIRTIO_NET_CFG_STATUS, 2), VIRTIO_NET_S_LINK_UP,
	       "link up with a backend");
	is_int(cfgr(&e, VIRTIO_NET_CFG_MTU, 2), 1500, "mtu 1500 by default");
	is_int(cfgr(&e, VIRTIO_NET_CFG_MAX_VQ_PAIRS, 2), 1, "one queue pair");
	is_int(vdrv_common(&e.d, VIRTIO_PCI_COMMON_NUMQ, 2, false, 0), 3,
	       "three queues");
	env_free(&e);
	/* legacy view of the same config (MSI-X off: config at 20) */
	if (env_new(&e, true, NULL)) {
		ok(0, "machine with virtio-net");
		return;
	}
	vdrv_probe(&e.d, &e.m, SLOT, true, false);
	cfg_mac(&e, mac);
	ok(!memcmp(mac, want, 6), "legacy config: same MAC");
	is_int(cfgr(&e, VIRTIO_NET_CFG_STATUS, 2), VIRTIO_NET_S_LINK_UP,
	       "legacy config: link up");
	is_int(vdrv_pio(&e.m, e.d.io + VIRTIO_PCI_LEGACY_QUEUE_NUM, 2, false,
			0),
	       1024, "legacy queue size 1024");
	env_free(&e);
}

static void test_mac_mtu(void)
{
	static const char *const good[] = {"mac", "52:54:00:12:34:56", "mtu",
					   "9000", NULL};
	static const char *const bad_mac[] = {"mac", "01:00:5e:00:00:01", NULL};
	static const char *const bad_mac2[] = {"mac", "52:54:00:12:34", NULL};
	static const char *const bad_mtu[] = {"mtu", "67", NULL};
	static const char *const big_mtu[] = {"mtu", "65536", NULL};
	static const uint8_t want[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
	uint8_t mac[6], mac2[6];
	struct env e;

	if (env_new(&e, true, good) == 0) {
		vdrv_probe(&e.d, &e.m, SLOT, false, true);
		cfg_mac(&e, mac);
		ok(!memcmp(mac, want, 6), "mac= sets the MAC");
		is_int(cfgr(&e, VIRTIO_NET_CFG_MTU, 2), 9000, "mtu=9000");
		env_free(&e);
	} else {
		ok(0, "machine with mac= and mtu=");
	}
	ok(env_new(&e, true, bad_mac) != 0, "multicast mac= refused");
	ok(env_new(&e, true, bad_mac2) != 0, "short mac= refused");
	ok(env_new(&e, true, bad_mtu) != 0, "mtu=67 refused");
	ok(env_new(&e, true, big_mtu) != 0, "mtu=65536 refused");
	/* the derived MAC is stable across runs */
	if (env_new(&e, true, NULL) == 0) {
		vdrv_probe(&e.d, &e.m, SLOT, false, true);
		cfg_mac(&e, mac);
		env_free(&e);
	}
	if (env_new(&e, true, NULL) == 0) {
		vdrv_probe(&e.d, &e.m, SLOT, false, true);
		cfg_mac(&e, mac2);
		env_free(&e);
	}
	ok(!memcmp(mac, mac2, 6), "derived MAC is stable");
	net_mac_derive(mac2, NULL, SLOT + 1, 0);
	ok(memcmp(mac, mac2, 6) != 0, "another slot derives another MAC");
}

static void test_no_backend(void)
{
	uint32_t id, len;
	struct env e;
	uint16_t head;

	if (env_new(&e, false, NULL)) {
		ok(0, "machine without backend");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	is_int(cfgr(&e, VIRTIO_NET_CFG_STATUS, 2), 0, "no backend: link down");
	memset(gp(&e, e.tx), 0, 12);
	mkframe(gp(&e, e.tx + 12), bcast, 60, 1);
	head = tx_post(&e, 72, true);
	ok(wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000) && id == head &&
		   len == 0,
	   "no backend: transmit chain returned (frame dropped)");
	post_rx_n(&e, 4, 2048);
	ok(!wait_used(&e, VIRTIO_NET_Q_RX, &id, &len, 50),
	   "no backend: nothing received");
	ok(!needs_reset(&e), "no backend: device stays live");
	env_free(&e);
}

static void test_tx(void)
{
	uint8_t buf[70000];
	uint64_t g[6];
	uint32_t l[6], id, len;
	bool wr[6] = {false, false, false, false, false, false};
	unsigned i, n, before, got;
	struct env e;
	uint16_t head;
	ssize_t r;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1);
	/* one descriptor: header + frame */
	memset(gp(&e, e.tx), 0x55, 12); /* header content is not sent */
	mkframe(gp(&e, e.tx + 12), other, 60, 7);
	head = tx_post(&e, 72, true);
	r = peer_recv(&e, buf, sizeof(buf), 2000);
	ok(r == 60 && !memcmp(buf, gp(&e, e.tx + 12), 60),
	   "60-byte frame sent without the header");
	ok(wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000) && id == head &&
		   len == 0,
	   "transmit chain returned with length 0");
	/* split: header in two pieces, frame in three */
	mkframe(gp(&e, e.tx + 4096), other, 1514, 8);
	g[0] = e.tx;
	l[0] = 5;
	g[1] = e.tx + 5;
	l[1] = 7;
	g[2] = e.tx + 4096;
	l[2] = 100;
	g[3] = e.tx + 4196;
	l[3] = 1000;
	g[4] = e.tx + 5196;
	l[4] = 414;
	post(&e, VIRTIO_NET_Q_TX, 5, g, l, wr, true);
	r = peer_recv(&e, buf, sizeof(buf), 2000);
	ok(r == 1514 && !memcmp(buf, gp(&e, e.tx + 4096), 1514),
	   "frame split over 5 descriptors (header split too)");
	wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000);
	/* indirect table */
	{
		struct virtq_desc *t = (void *)gp(&e, e.tbl);
		uint64_t tg = e.tbl;
		uint32_t tl = 2 * sizeof(*t);

		memset(gp(&e, e.tx + 8192), 0, 12);
		mkframe(gp(&e, e.tx + 8192 + 12), bcast, 300, 9);
		t[0] = (struct virtq_desc){e.tx + 8192, 12, VIRTQ_DESC_F_NEXT,
					   1};
		t[1] = (struct virtq_desc){e.tx + 8192 + 12, 300, 0, 0};
		head = e.d.q[1].next_desc;
		vdrv_desc(&e.d, 1, head, tg, tl, VIRTQ_DESC_F_INDIRECT, 0);
		e.d.q[1].next_desc = (uint16_t)((head + 1) % QSIZE);
		vdrv_publish(&e.d, 1, head, true);
		r = peer_recv(&e, buf, sizeof(buf), 2000);
		ok(r == 300 && !memcmp(buf, gp(&e, e.tx + 8192 + 12), 300),
		   "indirect transmit chain");
		wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000);
	}
	/* a 64 KiB frame (largest allowed) */
	memset(gp(&e, e.tx), 0, 12);
	mkframe(gp(&e, e.tx + 12), other, 65550, 10);
	tx_post(&e, 12 + 65550, true);
	r = peer_recv(&e, buf, sizeof(buf), 2000);
	ok(r == 65550 && !memcmp(buf, gp(&e, e.tx + 12), 65550),
	   "65550-byte frame sent");
	wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000);
	/* a writable descriptor after the frame is ignored */
	g[0] = e.tx;
	l[0] = 12 + 100;
	g[1] = e.tx + 32768;
	l[1] = 16;
	wr[1] = true;
	mkframe(gp(&e, e.tx + 12), other, 100, 11);
	head = post(&e, VIRTIO_NET_Q_TX, 2, g, l, wr, true);
	wr[1] = false;
	r = peer_recv(&e, buf, sizeof(buf), 2000);
	ok(r == 100 && wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000) &&
		   id == head && len == 0,
	   "writable tail of a transmit chain ignored");
	/* batch: 32 frames, one kick, one interrupt */
	n = 32;
	for (i = 0; i < n; i++) {
		uint64_t a = e.tx + 2048 * i;
		uint32_t fl = 60 + i;

		memset(gp(&e, a), 0, 12);
		mkframe(gp(&e, a + 12), other, fl, 100 + i);
		fl += 12;
		post(&e, VIRTIO_NET_Q_TX, 1, &a, &fl, wr, false);
	}
	before = msis(&e);
	kick(&e, VIRTIO_NET_Q_TX);
	for (i = 0, got = 0; i < n; i++) {
		r = peer_recv(&e, buf, sizeof(buf), 2000);
		if (r == (ssize_t)(60 + i) && frame_seq(buf) == 100 + i)
			got++;
	}
	is_int(got, n, "32 frames from one kick, in order");
	for (i = 0, got = 0; i < n; i++)
		got += wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000);
	is_int(got, n, "32 chains returned");
	is_int(msis(&e) - before, 1, "one interrupt for the batch");
	ok(!needs_reset(&e), "device live after transmit tests");
	env_free(&e);

	/* legacy: 10-byte header */
	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, true, F_BASE);
	is_int(e.hdr, 10, "legacy without MRG_RXBUF: 10-byte header");
	memset(gp(&e, e.tx), 0x77, 10);
	mkframe(gp(&e, e.tx + 10), other, 200, 12);
	tx_post(&e, 210, true);
	r = peer_recv(&e, buf, sizeof(buf), 2000);
	ok(r == 200 && !memcmp(buf, gp(&e, e.tx + 10), 200),
	   "legacy: frame sent without its 10-byte header");
	env_free(&e);
}

static void test_tx_hostile(void)
{
	uint8_t buf[70000];
	uint32_t id, len;
	struct env e;
	uint16_t head;
	ssize_t r;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1);
	memset(gp(&e, e.tx), 0, 12);
	head = tx_post(&e, 5, true); /* shorter than the header */
	ok(wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000) && id == head,
	   "frame shorter than the header returned");
	tx_post(&e, 12 + 10, true); /* shorter than an Ethernet header */
	wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000);
	tx_post(&e, 12 + 65551, true); /* too long */
	ok(wait_used(&e, VIRTIO_NET_Q_TX, &id, &len, 2000),
	   "frame longer than 65550 bytes returned");
	mkframe(gp(&e, e.tx + 12), other, 64, 77);
	tx_post(&e, 12 + 64, true);
	r = peer_recv(&e, buf, sizeof(buf), 2000);
	ok(r == 64 && frame_seq(buf) == 77,
	   "short, runt and oversized frames were dropped, next one sent");
	ok(!needs_reset(&e), "dropped frames don't break the device");
	/* descriptor loop */
	head = e.d.q[1].next_desc;
	vdrv_desc(&e.d, 1, head, e.tx, 12, VIRTQ_DESC_F_NEXT, head);
	e.d.q[1].next_desc = (uint16_t)(head + 1);
	vdrv_publish(&e.d, 1, head, true);
	ok(needs_reset(&e), "descriptor loop: NEEDS_RESET");
	ok(peer_recv(&e, buf, sizeof(buf), 20) < 0, "nothing sent");
	/* recovers after a reset */
	drv_init(&e, false, F_BASE | F_V1);
	ok(!needs_reset(&e), "reset clears it");
	mkframe(gp(&e, e.tx + 12), other, 64, 78);
	tx_post(&e, 12 + 64, true);
	r = peer_recv(&e, buf, sizeof(buf), 2000);
	ok(r == 64 && frame_seq(buf) == 78, "transmit works after reset");
	/* buffer outside guest RAM */
	{
		uint64_t a = VDRV_RAM - 16;
		uint32_t l = 64;
		bool w = false;

		post(&e, VIRTIO_NET_Q_TX, 1, &a, &l, &w, true);
		ok(needs_reset(&e), "buffer past the end of RAM: NEEDS_RESET");
	}
	/* huge length */
	drv_init(&e, false, F_BASE | F_V1);
	{
		uint64_t a = e.tx;
		uint32_t l = 0xffffffffu;
		bool w = false;

		post(&e, VIRTIO_NET_Q_TX, 1, &a, &l, &w, true);
		ok(needs_reset(&e), "4 GiB descriptor: NEEDS_RESET");
	}
	/* indirect without negotiating it */
	drv_init(&e, false, F(VIRTIO_NET_F_MAC) | F_V1);
	head = e.d.q[1].next_desc;
	vdrv_desc(&e.d, 1, head, e.tbl, 32, VIRTQ_DESC_F_INDIRECT, 0);
	e.d.q[1].next_desc = (uint16_t)(head + 1);
	vdrv_publish(&e.d, 1, head, true);
	ok(needs_reset(&e), "indirect not negotiated: NEEDS_RESET");
	/* avail index running ahead */
	drv_init(&e, false, F_BASE | F_V1);
	{
		uint16_t *avail = (void *)gp(&e, e.d.q[1].avail);

		__atomic_store_n(&avail[1], (uint16_t)(QSIZE + 5),
				 __ATOMIC_RELEASE);
		kick(&e, VIRTIO_NET_Q_TX);
		ok(needs_reset(&e), "avail idx beyond the ring: NEEDS_RESET");
	}
	env_free(&e);
}

static void test_rx_nomrg(void)
{
	uint8_t f[4096], got[70000];
	uint16_t h1;
	struct env e;
	unsigned nb, i;
	bool zero;
	int n;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1);
	is_int(e.hdr, 12, "modern: 12-byte header");
	h1 = post_rx(&e, 12 + 1514, false);
	post_rx(&e, 12 + 1514, false);
	post_rx(&e, 12 + 1514, true);
	mkframe(f, bcast, 60, 1);
	peer_send(&e, f, 60);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	is_int(n, 12 + 60, "60-byte frame: used length header + 60");
	for (i = 0, zero = true; i < 10; i++)
		zero &= got[i] == 0;
	ok(zero, "header zeroed (no offloads)");
	is_int(got[10] | got[11] << 8, 1, "num_buffers 1 without MRG_RXBUF");
	ok(n > 0 && !memcmp(got + 12, f, 60), "payload intact");
	mkframe(f, bcast, 1514, 2);
	peer_send(&e, f, 1514);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	ok(n == 12 + 1514 && !memcmp(got + 12, f, 1514),
	   "full-size frame fills the buffer exactly");
	/* too large for the buffer: dropped, buffer kept for the next one */
	mkframe(f, bcast, 2000, 3);
	peer_send(&e, f, 2000);
	mkframe(f, bcast, 70, 4);
	peer_send(&e, f, 70);
	{
		uint32_t id, len;

		ok(wait_used(&e, 0, &id, &len, 2000) && len == 12 + 70 &&
			   frame_seq(gp(&e, e.rxaddr[id]) + 12) == 4,
		   "frame larger than the buffer dropped, next delivered");
		ok(id == (uint16_t)(h1 + 2), "... into the buffer kept");
	}
	ok(!needs_reset(&e), "device live");
	env_free(&e);
}

static void test_rx_mrg(void)
{
	static uint8_t f[65550], got[70000];
	struct env e;
	unsigned nb;
	int n;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	post_rx_n(&e, 250, 512);
	mkframe(f, bcast, 3000, 1);
	peer_send(&e, f, 3000);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	is_int(n, 12 + 3000, "3000-byte frame over 512-byte buffers");
	is_int(nb, 6, "num_buffers 6");
	ok(n > 0 && !memcmp(got + 12, f, 3000), "merged payload intact");
	mkframe(f, bcast, 60, 2);
	peer_send(&e, f, 60);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	ok(n == 72 && nb == 1 && !memcmp(got + 12, f, 60),
	   "small frame: one buffer");
	/* 60 KB: most of it lands in the bounce buffer the first time */
	mkframe(f, other, 60000, 3);
	peer_send(&e, f, 60000);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	is_int(n, 12 + 60000, "60000-byte frame received");
	is_int(nb, (12 + 60000 + 511) / 512, "num_buffers for 60000 bytes");
	ok(n > 0 && !memcmp(got + 12, f, 60000), "payload intact (bounce)");
	/* the second time the pool is popped ahead */
	mkframe(f, other, 60000, 4);
	peer_send(&e, f, 60000);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	ok(n == 12 + 60000 && !memcmp(got + 12, f, 60000),
	   "second 60000-byte frame intact (popped ahead)");
	ok(!needs_reset(&e), "device live");
	/* oversize and runt datagrams are dropped */
	peer_send(&e, f, 5);
	{
		static uint8_t big[70000];

		memcpy(big, f, 6);
		ok(peer_send(&e, big, sizeof(big)) == 0, "70000-byte datagram");
	}
	mkframe(f, bcast, 80, 5);
	peer_send(&e, f, 80);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	ok(n == 12 + 80 && frame_seq(got + 12) == 5,
	   "runt and 70000-byte datagrams dropped, next delivered");
	env_free(&e);
}

static void test_rx_legacy(void)
{
	uint8_t f[2048], got[4096];
	struct env e;
	unsigned nb;
	int n;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, true, F_BASE);
	/* old drivers: header and data in separate descriptors */
	{
		uint64_t g[2] = {e.rxmem, e.rxmem + 10};
		uint32_t l[2] = {10, 1514};
		bool w[2] = {true, true};
		uint16_t head;

		head = post(&e, 0, 2, g, l, w, true);
		e.rxaddr[head] = e.rxmem;
		e.rxsz[head] = 1524;
	}
	mkframe(f, bcast, 100, 1);
	peer_send(&e, f, 100);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	ok(n == 110 && !memcmp(got + 10, f, 100),
	   "legacy: 10-byte header, data in the second descriptor");
	env_free(&e);

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, true, F_BASE | F_MRG);
	is_int(e.hdr, 12, "legacy with MRG_RXBUF: 12-byte header");
	post_rx_n(&e, 16, 1024);
	mkframe(f, bcast, 1500, 2);
	peer_send(&e, f, 1500);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	ok(n == 1512 && nb == 2 && !memcmp(got + 12, f, 1500),
	   "legacy mergeable: 2 buffers");
	env_free(&e);
}

static void test_rx_nobufs(void)
{
	uint8_t f[256], got[4096];
	uint32_t id, len;
	unsigned i, ok_n = 0, before;
	struct env e;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1 | F_MRG | F(VIRTIO_F_EVENT_IDX));
	for (i = 0; i < 5; i++) {
		mkframe(f, bcast, 100 + i, 50 + i);
		peer_send(&e, f, 100 + i);
	}
	ok(!wait_used(&e, 0, &id, &len, 100), "no buffers: nothing delivered");
	before = msis(&e);
	post_rx_n(&e, 8, 2048);
	for (i = 0; i < 5; i++)
		if (rx_frame(&e, got, sizeof(got), 2000, NULL) ==
			    (int)(12 + 100 + i) &&
		    frame_seq(got + 12) == 50 + i)
			ok_n++;
	is_int(ok_n, 5, "frames kept by the host arrive after the kick");
	is_int(msis(&e) - before, 1, "one interrupt for them");
	/* EVENT_IDX: out of buffers again, the device asks for a kick at
	 * the next entry (avail_event = entries consumed) */
	for (i = 0; i < 4; i++) {
		mkframe(f, bcast, 100, 60 + i);
		peer_send(&e, f, 100);
	}
	for (i = 0; i < 3; i++)
		rx_frame(&e, got, sizeof(got), 2000, NULL);
	{
		uint8_t *u = gp(&e, e.d.q[0].used);
		uint16_t ev = 0;

		for (i = 0; i < 1000; i++) {
			ev = __atomic_load_n((uint16_t *)(u + 4 + 8 * QSIZE),
					     __ATOMIC_ACQUIRE);
			if (ev == 8)
				break;
			nap_ms(1);
		}
		is_int(ev, 8, "starved: avail_event published at 8");
	}
	post_rx_n(&e, 2, 2048);
	ok(rx_frame(&e, got, sizeof(got), 2000, NULL) == 112 &&
		   frame_seq(got + 12) == 63,
	   "the waiting frame arrives after the kick");
	env_free(&e);
}

static void test_rx_hostile(void)
{
	uint8_t f[256], got[4096];
	struct env e;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	post_rx(&e, 4, true); /* smaller than the header */
	ok(needs_reset(&e), "receive buffer smaller than the header: "
			    "NEEDS_RESET");
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	{
		uint64_t g = e.rxmem;
		uint32_t l = 2048;
		bool w = false;

		post(&e, 0, 1, &g, &l, &w, true);
		ok(needs_reset(&e), "read-only receive buffer: NEEDS_RESET");
	}
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	{
		uint64_t g = VDRV_RAM + 4096;
		uint32_t l = 2048;
		bool w = true;

		post(&e, 0, 1, &g, &l, &w, true);
		ok(needs_reset(&e), "receive buffer outside RAM: NEEDS_RESET");
	}
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	{
		uint16_t head = e.d.q[0].next_desc;

		vdrv_desc(&e.d, 0, head, e.rxmem, 2048,
			  VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
			  (uint16_t)(head + 1));
		vdrv_desc(&e.d, 0, (uint16_t)(head + 1), e.rxmem, 2048,
			  VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, head);
		e.d.q[0].next_desc = (uint16_t)(head + 2);
		vdrv_publish(&e.d, 0, head, true);
		ok(needs_reset(&e), "receive descriptor loop: NEEDS_RESET");
	}
	/* works again; a buffer split in tiny pieces is fine */
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	{
		uint64_t g[16];
		uint32_t l[16];
		bool w[16];
		unsigned i;
		uint16_t head;

		for (i = 0; i < 16; i++) {
			g[i] = e.rxmem + 7 * i;
			l[i] = 7;
			w[i] = true;
		}
		head = post(&e, 0, 16, g, l, w, true);
		e.rxaddr[head] = e.rxmem;
		e.rxsz[head] = 112;
		mkframe(f, bcast, 90, 9);
		peer_send(&e, f, 90);
		ok(rx_frame(&e, got, sizeof(got), 2000, NULL) == 102 &&
			   !memcmp(got + 12, f, 90),
		   "buffer of 16 7-byte pieces (header split) works");
	}
	ok(!needs_reset(&e), "device live");
	env_free(&e);
}

static void test_ctrl(void)
{
	static const uint8_t uni[1][6] = {{0x02, 0, 0, 0, 0, 0x99}};
	static const uint8_t mc[1][6] = {{0x01, 0x00, 0x5e, 0, 0, 0xfb}};
	static const uint8_t mc2[6] = {0x01, 0x00, 0x5e, 0, 0, 0xfc};
	static const uint8_t newmac[6] = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
	static uint8_t many[80][6];
	uint8_t me[6], mac[6], bad[16];
	struct env e;
	unsigned i;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1 | F_MRG | F_CTRL);
	post_rx_n(&e, 200, 2048);
	cfg_mac(&e, me);
	is_int(passes(&e, other, me), 1, "promiscuous after reset");
	is_int(rxmode(&e, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_OK,
	       "PROMISC off: OK");
	is_int(passes(&e, other, me), 0, "other unicast dropped");
	is_int(passes(&e, me, bcast), 1, "own MAC passes");
	is_int(passes(&e, bcast, me), 1, "broadcast passes");
	is_int(passes(&e, mcast, me), 0, "multicast dropped");
	is_int(rxmode(&e, VIRTIO_NET_CTRL_RX_ALLMULTI, 1), VIRTIO_NET_OK,
	       "ALLMULTI on");
	is_int(passes(&e, mcast, me), 1, "ALLMULTI: multicast passes");
	rxmode(&e, VIRTIO_NET_CTRL_RX_ALLMULTI, 0);
	is_int(mac_table(&e, uni, 1, mc, 1), VIRTIO_NET_OK, "MAC table set");
	is_int(passes(&e, uni[0], me), 1, "table unicast passes");
	is_int(passes(&e, mc[0], me), 1, "table multicast passes");
	is_int(passes(&e, mc2, me), 0, "other multicast still dropped");
	is_int(passes(&e, other, me), 0, "other unicast still dropped");
	is_int(rxmode(&e, VIRTIO_NET_CTRL_RX_NOBCAST, 1), VIRTIO_NET_OK,
	       "NOBCAST on");
	is_int(passes(&e, bcast, me), 0, "NOBCAST: broadcast dropped");
	rxmode(&e, VIRTIO_NET_CTRL_RX_NOBCAST, 0);
	is_int(rxmode(&e, VIRTIO_NET_CTRL_RX_ALLUNI, 1), VIRTIO_NET_OK,
	       "ALLUNI on");
	is_int(passes(&e, other, me), 1, "ALLUNI: any unicast passes");
	rxmode(&e, VIRTIO_NET_CTRL_RX_ALLUNI, 0);
	rxmode(&e, VIRTIO_NET_CTRL_RX_ALLMULTI, 1);
	is_int(rxmode(&e, VIRTIO_NET_CTRL_RX_NOMULTI, 1), VIRTIO_NET_OK,
	       "NOMULTI on");
	is_int(passes(&e, mcast, me), 0, "NOMULTI beats ALLMULTI");
	rxmode(&e, VIRTIO_NET_CTRL_RX_NOMULTI, 0);
	rxmode(&e, VIRTIO_NET_CTRL_RX_ALLMULTI, 0);
	is_int(rxmode(&e, VIRTIO_NET_CTRL_RX_NOUNI, 1), VIRTIO_NET_OK,
	       "NOUNI on");
	is_int(passes(&e, me, bcast), 0, "NOUNI: own MAC dropped");
	rxmode(&e, VIRTIO_NET_CTRL_RX_NOUNI, 0);
	/* MAC address */
	is_int(ctrl(&e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET,
		    newmac, 6),
	       VIRTIO_NET_OK, "MAC_ADDR_SET");
	cfg_mac(&e, mac);
	ok(!memcmp(mac, newmac, 6), "config shows the new MAC");
	is_int(passes(&e, newmac, bcast), 1, "new MAC passes");
	is_int(passes(&e, me, bcast), 0, "old MAC dropped");
	/* table overflow: every unicast passes */
	for (i = 0; i < 80; i++) {
		many[i][0] = 0x02;
		many[i][5] = (uint8_t)i;
	}
	is_int(mac_table(&e, (const uint8_t(*)[6])many, 65, mc, 0),
	       VIRTIO_NET_OK, "65 unicast entries accepted");
	is_int(passes(&e, other, bcast), 1, "table overflow: unicast passes");
	is_int(passes(&e, mc2, bcast), 0, "... multicast still filtered");
	/* malformed commands: ERR, nothing changes */
	is_int(mac_table(&e, uni, 1, mc, 1), VIRTIO_NET_OK, "table reset");
	memset(bad, 0, sizeof(bad));
	bad[0] = 2; /* two unicast entries announced, one given */
	is_int(ctrl(&e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, bad,
		    4 + 6 + 4),
	       VIRTIO_NET_ERR, "MAC table length mismatch: ERR");
	memset(bad, 0xff, 4);
	is_int(ctrl(&e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, bad,
		    8),
	       VIRTIO_NET_ERR, "MAC table with 2^32-1 entries: ERR");
	is_int(ctrl(&e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, bad,
		    3),
	       VIRTIO_NET_ERR, "MAC table of 3 bytes: ERR");
	is_int(passes(&e, uni[0], newmac), 1, "table unchanged by bad ones");
	is_int(ctrl(&e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, bad, 2),
	       VIRTIO_NET_ERR, "RX mode with 2 bytes: ERR");
	is_int(ctrl(&e, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, bad, 0),
	       VIRTIO_NET_ERR, "RX mode with no byte: ERR");
	is_int(passes(&e, other, newmac), 0, "still not promiscuous");
	is_int(rxmode(&e, 6, 1), VIRTIO_NET_ERR, "unknown RX mode: ERR");
	is_int(ctrl(&e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, bad,
		    5),
	       VIRTIO_NET_ERR, "MAC address of 5 bytes: ERR");
	is_int(ctrl(&e, VIRTIO_NET_CTRL_MAC, 7, bad, 6), VIRTIO_NET_ERR,
	       "unknown MAC command: ERR");
	is_int(ctrl(&e, VIRTIO_NET_CTRL_VLAN, 0, bad, 2), VIRTIO_NET_ERR,
	       "VLAN (not offered): ERR");
	is_int(ctrl(&e, 99, 0, bad, 1), VIRTIO_NET_ERR, "unknown class: ERR");
	{
		uint64_t g = e.ctl;
		uint32_t l = 2;
		bool w = false;

		post(&e, VIRTIO_NET_Q_CTRL, 1, &g, &l, &w, true);
		ok(needs_reset(&e), "command with no ack byte: NEEDS_RESET");
	}
	/* a reset restores the MAC and promiscuous mode */
	drv_init(&e, false, F_BASE | F_V1 | F_MRG | F_CTRL);
	post_rx_n(&e, 32, 2048);
	cfg_mac(&e, mac);
	ok(!memcmp(mac, me, 6), "reset restores the MAC");
	is_int(passes(&e, other, me), 1, "reset restores promiscuous mode");
	env_free(&e);

	/* without CTRL_RX the commands are refused */
	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	drv_init(&e, false, F_BASE | F_V1 | F(VIRTIO_NET_F_CTRL_VQ));
	post_rx_n(&e, 16, 2048);
	is_int(rxmode(&e, VIRTIO_NET_CTRL_RX_PROMISC, 0), VIRTIO_NET_ERR,
	       "PROMISC without CTRL_RX: ERR");
	is_int(ctrl(&e, VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET,
		    newmac, 6),
	       VIRTIO_NET_ERR, "MAC_ADDR_SET without CTRL_MAC_ADDR: ERR");
	cfg_mac(&e, me);
	is_int(passes(&e, other, me), 1, "still promiscuous");
	env_free(&e);
}

static void test_cfg_write(void)
{
	static const uint8_t newmac[6] = {0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};
	uint8_t mac[6], orig[6];
	struct env e;
	unsigned i;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	/* a legacy driver without CTRL_MAC_ADDR writes the MAC */
	drv_init(&e, true,
		 F_BASE | F_MRG | F(VIRTIO_NET_F_CTRL_VQ) |
			 F(VIRTIO_NET_F_CTRL_RX));
	post_rx_n(&e, 32, 2048);
	cfg_mac(&e, orig);
	for (i = 0; i < 6; i++)
		cfgw(&e, VIRTIO_NET_CFG_MAC + i, 1, newmac[i]);
	cfgw(&e, VIRTIO_NET_CFG_STATUS, 2, 0);
	cfgw(&e, VIRTIO_NET_CFG_MTU, 2, 9);
	cfg_mac(&e, mac);
	ok(!memcmp(mac, newmac, 6), "legacy driver sets the MAC in config");
	is_int(cfgr(&e, VIRTIO_NET_CFG_STATUS, 2), 1, "status is read-only");
	is_int(cfgr(&e, VIRTIO_NET_CFG_MTU, 2), 1500, "mtu is read-only");
	rxmode(&e, VIRTIO_NET_CTRL_RX_PROMISC, 0);
	is_int(passes(&e, newmac, bcast), 1, "filter uses the written MAC");
	is_int(passes(&e, orig, bcast), 0, "... not the old one");
	/* a modern driver can't */
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	cfgw(&e, VIRTIO_NET_CFG_MAC, 4, 0x12345678);
	cfg_mac(&e, mac);
	ok(!memcmp(mac, orig, 6), "modern driver: MAC is read-only");
	env_free(&e);
}

/* ---- reset while frames flow ---- */

struct flood {
	struct env *e;
	bool stop; /* atomic */
	unsigned sent, drained;
};

static void *flood_main(void *arg)
{
	struct flood *fl = arg;
	uint8_t f[1600], buf[70000];
	unsigned i = 0;

	while (!__atomic_load_n(&fl->stop, __ATOMIC_ACQUIRE)) {
		mkframe(f, bcast, 60 + (i % 1400), i);
		if (send(fl->e->sv[1], f, 60 + (i % 1400),
			 MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
			fl->sent++;
		while (recv(fl->e->sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
			fl->drained++;
		if ((++i & 63) == 0)
			sched_yield();
	}
	return NULL;
}

static void test_reset_traffic(void)
{
	uint8_t f[256], got[4096], buf[4096];
	struct flood fl = {0};
	pthread_t th;
	struct env e;
	unsigned round, i;
	bool legacy;
	ssize_t r;

	if (env_new(&e, true, NULL)) {
		ok(0, "machine");
		return;
	}
	fl.e = &e;
	if (pthread_create(&th, NULL, flood_main, &fl)) {
		ok(0, "flood thread");
		env_free(&e);
		return;
	}
	for (round = 0; round < 60; round++) {
		legacy = round % 3 == 2;
		drv_init(&e, legacy,
			 F_BASE | (legacy ? 0 : F_V1) |
				 (round & 1 ? F_MRG : 0) |
				 (round & 2 ? F(VIRTIO_F_EVENT_IDX) : 0));
		post_rx_n(&e, 64, round & 1 ? 512 : 2048);
		for (i = 0; i < 16; i++) {
			uint64_t a = e.tx + 2048 * i;
			uint32_t l = e.hdr + 100;
			bool w = false;

			memset(gp(&e, a), 0, e.hdr);
			mkframe(gp(&e, a + e.hdr), other, 100, i);
			post(&e, VIRTIO_NET_Q_TX, 1, &a, &l, &w, i == 15);
		}
		if (round % 4 == 0)
			post_rx_n(&e, 64, 2048);
		/* a full ring spends the budget: the rest of the transmit
		 * work continues on the loop thread, racing the reset */
		if (round % 5 == 0 && !legacy)
			for (i = 0; i < QSIZE + 100; i++) {
				uint64_t a = e.tx + 2048 * (i % 64);
				uint32_t l = e.hdr + 100;
				bool w = false;

				post(&e, VIRTIO_NET_Q_TX, 1, &a, &l, &w,
				     i == QSIZE - 1);
			}
		nap_ms(round % 2);
		vdrv_status(&e.d, 0); /* reset with frames in flight */
	}
	__atomic_store_n(&fl.stop, true, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ok(fl.sent > 0 && fl.drained > 0,
	   "frames flowed both ways (%u in, "
	   "%u out)",
	   fl.sent, fl.drained);
	/* drain what's left, then check the device still works */
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	post_rx_n(&e, 250, 2048);
	for (i = 0; i < 2000; i++) {
		if (rx_frame(&e, got, sizeof(got), 20, NULL) < 0)
			break;
		if (i % 200 == 199)
			post_rx_n(&e, 200, 2048);
	}
	while (recv(e.sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	post_rx_n(&e, 8, 2048);
	mkframe(f, bcast, 100, 4242);
	peer_send(&e, f, 100);
	ok(rx_frame(&e, got, sizeof(got), 2000, NULL) == 112 &&
		   frame_seq(got + 12) == 4242,
	   "receive works after the resets");
	memset(gp(&e, e.tx), 0, 12);
	mkframe(gp(&e, e.tx + 12), other, 100, 4343);
	tx_post(&e, 112, true);
	r = peer_recv(&e, buf, sizeof(buf), 2000);
	ok(r == 100 && frame_seq(buf) == 4343, "transmit works after them");
	ok(!needs_reset(&e), "device live");
	env_free(&e);
}

/* ---- tap: offloads through the vnet header ---- */

/* A tap with a vnet header, named by the kernel; fd or -1 (errno). */
static int tap_create(char name[IFNAMSIZ])
{
	struct ifreq ifr;
	char path[96];
	int fd, s;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "kvnt%%d");
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		close(fd);
		return -1;
	}
	memcpy(name, ifr.ifr_name, IFNAMSIZ);
	/* keep the kernel's IPv6 chatter (RS, MLD) off the link */
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6",
		 name);
	s = open(path, O_WRONLY);
	if (s >= 0) {
		if (write(s, "1", 1) != 1)
			diag("cannot disable IPv6 on %s", name);
		close(s);
	}
	return fd;
}

/* A packet socket on interface 'name' (the host side of the link). */
static int pkt_open(const char *name, bool vnet_hdr)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_protocol = htons(ETH_P_ALL)};
	int fd, one = 1;

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	if (fd < 0)
		return -1;
	sll.sll_ifindex = (int)if_nametoindex(name);
	if (!sll.sll_ifindex || bind(fd, (void *)&sll, sizeof(sll)) ||
	    (vnet_hdr &&
	     setsockopt(fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A frame the guest sent, as the host sees it ('skip' bytes of packet
 * socket vnet header first): its length or -1. */
static ssize_t pkt_recv(int fd, uint8_t *buf, size_t max, size_t skip,
			uint16_t ethertype, unsigned ms)
{
	struct sockaddr_ll from;
	socklen_t fl;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ssize_t n;
	unsigned i;

	for (i = 0; i < 50; i++) {
		if (poll(&p, 1, (int)ms) != 1)
			return -1;
		fl = sizeof(from);
		n = recvfrom(fd, buf, max, MSG_DONTWAIT, (void *)&from, &fl);
		if (n < (ssize_t)(skip + ETH) ||
		    from.sll_pkttype == PACKET_OUTGOING)
			continue;
		if (buf[skip + 12] == ethertype >> 8 &&
		    buf[skip + 13] == (ethertype & 0xff))
			return n;
	}
	return -1;
}

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/*
 * An IPv4/TCP frame to 'dst' with 'plen' payload bytes and a header
 * asking for TSO (gso_size 1448) and checksum offload.  Returns the
 * frame length (without the header).
 */
static size_t mktcp(struct virtio_net_hdr *h, uint8_t *f, const uint8_t *dst,
		    size_t plen)
{
	uint8_t *ip = f + ETH, *tcp = ip + 20;
	uint16_t tot = (uint16_t)(40 + plen);
	uint32_t sum;
	size_t i;

	memcpy(f, dst, 6);
	memcpy(f + 6, src_mac, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	memset(ip, 0, 40);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(tot >> 8);
	ip[3] = (uint8_t)tot;
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	sum = ip_csum(ip, 20);
	ip[10] = (uint8_t)(sum >> 8);
	ip[11] = (uint8_t)sum;
	tcp[0] = 0x30; /* ports 12345 -> 80 */
	tcp[1] = 0x39;
	tcp[3] = 80;
	tcp[12] = 0x50;
	tcp[13] = 0x18; /* PSH ACK */
	tcp[14] = 0xff;
	tcp[15] = 0xff;
	for (i = 0; i < plen; i++)
		tcp[20 + i] = (uint8_t)(i * 31 + 7);
	/* partial checksum: the pseudo-header sum, not complemented */
	sum = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 20 + (uint32_t)plen;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	tcp[16] = (uint8_t)(sum >> 8);
	tcp[17] = (uint8_t)sum;
	memset(h, 0, sizeof(*h));
	h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h->gso_type = plen > 1448 ? VIRTIO_NET_HDR_GSO_TCPV4 : 0;
	h->hdr_len = htole16(ETH + 40);
	h->gso_size = htole16(plen > 1448 ? 1448 : 0);
	h->csum_start = htole16(ETH + 20);
	h->csum_offset = htole16(16);
	return ETH + 40 + plen;
}

static void test_tap(void)
{
	static uint8_t f[70000], got[70000];
	static const char *kv[] = {"backend", NULL, NULL};
	const uint64_t offl =
		F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) |
		F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO4);
	struct virtio_net_hdr h, *rh;
	char name[IFNAMSIZ], arg[32];
	int tfd, ps, pv;
	struct env e;
	unsigned nb;
	ssize_t r;
	size_t len;
	int n;

	tfd = tap_create(name);
	if (tfd < 0) {
		ok(1, "# SKIP no tap here (%s)", strerror(errno));
		return;
	}
	snprintf(arg, sizeof(arg), "fd:%d", tfd);
	kv[1] = arg;
	if (env_new(&e, false, kv)) {
		ok(0, "machine with a tap backend");
		close(tfd);
		return;
	}
	ps = pkt_open(name, false);
	pv = pkt_open(name, true);
	if (ps < 0 || pv < 0) {
		ok(1, "# SKIP no packet socket on %s (%s)", name,
		   strerror(errno));
		goto out;
	}
	vdrv_probe(&e.d, &e.m, SLOT, false, true);
	ok((offered(&e) & offl) == offl,
	   "tap: checksum and TSO offloads offered");
	drv_init(&e, false, F_BASE | F_V1 | F_MRG | offl);
	ok((e.feat & offl) == offl, "tap: offloads negotiated");
	/* plain frame out */
	memset(gp(&e, e.tx), 0, 12);
	mkframe(gp(&e, e.tx + 12), other, 200, 31);
	tx_post(&e, 212, true);
	r = pkt_recv(ps, got, sizeof(got), 0, 0x88b5, 2000);
	ok(r == 200 && frame_seq(got) == 31, "tap: frame reaches the host");
	/* plain frame in */
	post_rx_n(&e, 64, 2048);
	mkframe(f, bcast, 300, 32);
	r = send(ps, f, 300, 0);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	while (n > 0 && (got[12 + 12] != 0x88 || got[12 + 13] != 0xb5))
		n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	ok(r == 300 && n == 312 && nb == 1 && !memcmp(got + 12, f, 300),
	   "tap: host frame received, num_buffers 1");
	/* the guest sends a 20000-byte TSO frame: it leaves unsegmented */
	len = mktcp(&h, gp(&e, e.tx + 12), other, 20000);
	memcpy(gp(&e, e.tx), &h, 10);
	memset(gp(&e, e.tx + 10), 0, 2);
	tx_post(&e, (uint32_t)(12 + len), true);
	r = pkt_recv(pv, got, sizeof(got), 10, 0x0800, 2000);
	rh = (struct virtio_net_hdr *)got;
	ok(r == (ssize_t)(10 + len),
	   "tap: TSO frame of %zu bytes leaves "
	   "whole (got %zd)",
	   len, r - 10);
	ok(r > 0 && rh->gso_type == VIRTIO_NET_HDR_GSO_TCPV4 &&
		   le16toh(rh->gso_size) == 1448,
	   "tap: ... with its GSO header");
	/* the host sends a 20000-byte GSO frame: one frame in the guest */
	len = mktcp(&h, f + 10, bcast, 20000);
	memcpy(f, &h, 10);
	r = send(pv, f, 10 + len, 0);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	while (n > 0 && (got[12 + 12] != 0x08 || got[12 + 13] != 0x00))
		n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	rh = (struct virtio_net_hdr *)got;
	ok(r == (ssize_t)(10 + len) && n == (int)(12 + len),
	   "tap: GSO frame of %zu bytes arrives whole (got %d)", len, n - 12);
	ok(n > 0 && nb == (12 + len + 2047) / 2048,
	   "tap: ... over %u mergeable buffers", nb);
	ok(n > 0 && rh->gso_type == VIRTIO_NET_HDR_GSO_TCPV4 &&
		   le16toh(rh->gso_size) == 1448 &&
		   (rh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM),
	   "tap: ... with the GSO header passed through");
	ok(n > 0 && !memcmp(got + 12, f + 10, len), "tap: ... intact");
	/* without GUEST_TSO4 the kernel segments for us */
	drv_init(&e, false, F_BASE | F_V1 | F_MRG);
	post_rx_n(&e, 64, 2048);
	r = send(pv, f, 10 + len, 0);
	n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	while (n > 0 && (got[12 + 12] != 0x08 || got[12 + 13] != 0x00))
		n = rx_frame(&e, got, sizeof(got), 2000, &nb);
	rh = (struct virtio_net_hdr *)got;
	ok(n == 12 + ETH + 40 + 1448 && rh->gso_type == 0,
	   "tap: without GUEST_TSO4 the guest gets MSS-sized frames");
	ok(!needs_reset(&e), "tap: device live");
out:
	if (ps >= 0)
		close(ps);
	if (pv >= 0)
		close(pv);
	env_free(&e);
	close(tfd);
}

int main(void)
{
	plan_no_plan();
	test_config();
	test_mac_mtu();
	test_no_backend();
	test_tx();
	test_tx_hostile();
	test_rx_nomrg();
	test_rx_mrg();
	test_rx_legacy();
	test_rx_nobufs();
	test_rx_hostile();
	test_ctrl();
	test_cfg_write();
	test_reset_traffic();
	test_tap();
	return done_testing();
}
