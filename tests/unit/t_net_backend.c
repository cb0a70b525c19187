/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Tests for the network backend layer (src/net): MAC parsing and bhyve's
 * derivation, the NICs' legacy option strings, backend selection and its
 * error lines, the dgram backend through a socketpair (with and without
 * the virtio-net header), the tap backend on a tap this test creates
 * (needs root and /dev/net/tun, else skipped), and slirp answering an ARP
 * request for its host address.
 *
 * Threads: an event loop runs on a second thread; the receive callback
 * counts calls under a mutex.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/devmodel.h"
#include "event/event.h"
#include "net/net_backend.h"
#include "tests/capture.h"
#include "tests/tap.h"
#include "virtio/virtio.h"

static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cb_cond = PTHREAD_COND_INITIALIZER;
static unsigned cb_calls;

static void rx_cb(void *opaque)
{
	(void)opaque;
	pthread_mutex_lock(&cb_lock);
	cb_calls++;
	pthread_cond_broadcast(&cb_cond);
	pthread_mutex_unlock(&cb_lock);
}

/* Wait until the callback has run more than 'seen' times (2 s max). */
static bool wait_cb(unsigned seen)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	pthread_mutex_lock(&cb_lock);
	while (cb_calls <= seen &&
	       pthread_cond_timedwait(&cb_cond, &cb_lock, &ts) == 0)
		;
	ok = cb_calls > seen;
	pthread_mutex_unlock(&cb_lock);
	return ok;
}

static unsigned calls(void)
{
	unsigned n;

	pthread_mutex_lock(&cb_lock);
	n = cb_calls;
	pthread_mutex_unlock(&cb_lock);
	return n;
}

/* Receive with retries for up to 2 s (slirp answers from its thread). */
static ssize_t recv_wait(struct net_backend *be, void *buf, size_t len)
{
	struct iovec iov = {buf, len};
	ssize_t n = 0;
	int i;

	for (i = 0; i < 200 && n == 0; i++) {
		n = net_backend_recv(be, &iov, 1);
		if (n == 0)
			usleep(10000);
	}
	return n;
}

static void *loop_thread(void *arg)
{
	event_loop_run(arg);
	return NULL;
}

static void test_mac(void)
{
	uint8_t m[6];
	struct cfg_node *root = cfg_new();
	struct cfg_node *n;
	struct capture cap;

	ok(net_mac_parse("52:54:00:12:34:56", m) == 0 && m[0] == 0x52 &&
		   m[5] == 0x56,
	   "MAC with colons parses");
	ok(net_mac_parse("52-54-00-12-34-ab", m) == 0 && m[5] == 0xab,
	   "MAC with dashes parses");
	ok(net_mac_parse("01:00:5e:00:00:01", m) == -EINVAL,
	   "multicast MAC refused");
	ok(net_mac_parse("00:00:00:00:00:00", m) == -EINVAL,
	   "all-zero MAC refused");
	ok(net_mac_parse("52:54:00:12:34", m) == -EINVAL, "short MAC refused");
	ok(net_mac_parse("52:54:00:12:34:56:78", m) == -EINVAL,
	   "long MAC refused");
	ok(net_mac_parse("52:54-00:12:34:56", m) == -EINVAL,
	   "mixed separators refused");
	ok(net_mac_parse("g2:54:00:12:34:56", m) == -EINVAL,
	   "non-hex MAC refused");

	/* MD5("3-0-vm1") = ee082b...: bhyve's OUI + its first 3 bytes */
	net_mac_derive(m, "vm1", 3, 0);
	ok(m[0] == 0x58 && m[1] == 0x9c && m[2] == 0xfc && m[3] == 0xee &&
		   m[4] == 0x08 && m[5] == 0x2b,
	   "derived MAC is bhyve's (58:9c:fc + md5 of slot-func-name)");
	{
		uint8_t m2[6];

		net_mac_derive(m2, "vm1", 4, 0);
		ok(memcmp(m, m2, 6) != 0, "another slot, another MAC");
	}

	cfg_set(root, "pci.0.3.0.device", "virtio-net");
	n = cfg_find(root, "pci.0.3.0");
	ok(net_mac_from_cfg(n, "vm1", 3, 0, m) == 0 && m[3] == 0xee,
	   "no mac= key: derived");
	cfg_set(n, "mac", "02:00:00:00:00:01");
	ok(net_mac_from_cfg(n, "vm1", 3, 0, m) == 0 && m[0] == 0x02 &&
		   m[5] == 0x01,
	   "mac= key used");
	cfg_set(n, "mac", "ff:ff:ff:ff:ff:ff");
	capture_begin(&cap, STDERR_FILENO);
	ok(net_mac_from_cfg(n, "vm1", 3, 0, m) == -EINVAL, "bad mac= refused");
	is_str(capture_end(&cap),
	       "khyve: pci.0.3.0.mac: invalid MAC address 'ff:ff:ff:ff:ff:ff' "
	       "(need xx:xx:xx:xx:xx:xx, unicast, not zero)\n",
	       "one line naming the key");
	cfg_free(root);
}

static void test_legacy(void)
{
	struct cfg_node *root = cfg_new();
	struct cfg_node *n;

	n = cfg_create(root, "pci.0.2.0");
	ok(net_parse_legacy(n, "tap0,mac=52:54:00:00:00:01,mtu=9000") == 0,
	   "tap0,mac=,mtu= parses");
	is_str(cfg_get(n, "backend"), "tap0", "first token is the backend");
	is_str(cfg_get(n, "mac"), "52:54:00:00:00:01", "mac key");
	is_str(cfg_get(n, "mtu"), "9000", "mtu key");

	n = cfg_create(root, "pci.0.3.0");
	ok(net_parse_legacy(n, "slirp,hostfwd=tcp::2222-:22,open") == 0,
	   "slirp,hostfwd=,open parses");
	is_str(cfg_get(n, "backend"), "slirp", "slirp backend");
	is_str(cfg_get(n, "hostfwd"), "tcp::2222-:22", "hostfwd key");
	is_str(cfg_get(n, "open"), "true", "bare open is true");

	n = cfg_create(root, "pci.0.4.0");
	ok(net_parse_legacy(n, "mac=52:54:00:00:00:02") == 0,
	   "options without a backend parse");
	ok(cfg_get(n, "backend") == NULL, "no backend key then");
	ok(net_parse_legacy(n, NULL) == 0, "no options at all is fine");
	cfg_free(root);
}

static struct cfg_node *nic(struct cfg_node *root, const char *backend)
{
	struct cfg_node *n;

	cfg_unset(root, "pci.0.5.0");
	n = cfg_create(root, "pci.0.5.0");
	if (backend)
		cfg_set(n, "backend", backend);
	return n;
}

static void test_select(struct event_loop *ev)
{
	struct cfg_node *root = cfg_new();
	struct devctx ctx = {.ev = ev, .vm_name = "t"};
	struct net_backend *be = NULL;
	struct capture cap;
	int rc;

	rc = net_backend_open(&be, nic(root, NULL), &ctx, rx_cb, NULL);
	ok(rc == -ENOENT && be == NULL, "no backend: -ENOENT, no link");

	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, nic(root, "netmap:em0"), &ctx, rx_cb, NULL);
	is_str(capture_end(&cap),
	       "khyve: net backend \"netmap:em0\": unknown backend type "
	       "(netmap and netgraph are FreeBSD-only; use a tap or slirp)\n",
	       "netmap: bhyve-style unknown backend line");
	ok(rc == -EINVAL, "netmap refused");

	capture_begin(&cap, STDERR_FILENO);
	cfg_set(nic(root, "x0"), "type", "vde");
	rc = net_backend_open(&be, cfg_find(root, "pci.0.5.0"), &ctx, rx_cb,
			      NULL);
	is_str(capture_end(&cap),
	       "khyve: net backend \"x0\": unknown backend type \"vde\"\n",
	       "unknown type= named");
	ok(rc == -EINVAL, "unknown type refused");

	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, nic(root, "khyvenosuch9"), &ctx, rx_cb,
			      NULL);
	is_str(capture_end(&cap),
	       "khyve: khyvenosuch9: no such tap interface (create it with "
	       "\"ip tuntap add khyvenosuch9 mode tap\", or set "
	       "create=true)\n",
	       "missing tap: one line saying how to fix it");
	ok(rc == -ENODEV, "missing tap refused");

	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, nic(root, "much-too-long-tap-name"), &ctx,
			      rx_cb, NULL);
	ok(strstr(capture_end(&cap), "not a valid interface name") != NULL,
	   "over-long interface name named");
	ok(rc == -EINVAL, "over-long interface name refused");

	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, nic(root, "fd:x"), &ctx, rx_cb, NULL);
	is_str(capture_end(&cap),
	       "khyve: net backend \"fd:x\": bad file descriptor number\n",
	       "bad fd: number named");
	ok(rc == -EINVAL, "bad fd refused");

	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, nic(root, "fd:0"), &ctx, rx_cb, NULL);
	ok(strstr(capture_end(&cap), "not a tap or a datagram socket") != NULL,
	   "fd that is neither a tap nor a socket named");
	ok(rc == -EINVAL, "such an fd refused");

	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, nic(root, "unix:/nonexistent/khyve.sock"),
			      &ctx, rx_cb, NULL);
	ok(strstr(capture_end(&cap), "unix:/nonexistent/khyve.sock") != NULL,
	   "unix socket that does not exist named");
	ok(rc < 0, "and refused");
	cfg_free(root);
}

static void test_dgram(struct event_loop *ev)
{
	struct cfg_node *root = cfg_new();
	struct devctx ctx = {.ev = ev, .vm_name = "t"};
	struct net_backend *be = NULL;
	uint8_t frame[60], buf[2048], hdr[12];
	struct iovec iov[2];
	char name[32];
	unsigned seen;
	int sv[2];
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) {
		ok(0, "socketpair");
		return;
	}
	snprintf(name, sizeof(name), "fd:%d", sv[0]);
	ok(net_backend_open(&be, nic(root, name), &ctx, rx_cb, NULL) == 0,
	   "fd:N with a datagram socket opens");
	if (!be)
		goto out;
	is_str(net_backend_type(be), "dgram", "type inferred as dgram");
	ok(net_backend_get_cap(be) == 0, "no offloads");

	memset(frame, 0xab, sizeof(frame));
	iov[0].iov_base = frame;
	iov[0].iov_len = sizeof(frame);
	is_int(net_backend_send(be, iov, 1), 60, "send one frame");
	is_int(recv(sv[1], buf, sizeof(buf), 0), 60, "peer got it");

	ok(net_backend_recv(be, iov, 1) == 0, "nothing waiting: 0");
	seen = calls();
	is_int(send(sv[1], frame, 42, 0), 42, "peer sends");
	ok(wait_cb(seen), "receive callback ran");
	is_int(net_backend_peek_len(be), 42, "peek_len sees 42 bytes");
	is_int(net_backend_recv(be, (struct iovec[]){{buf, sizeof(buf)}}, 1),
	       42, "recv gets 42 bytes");

	/* with a 12-byte header the core strips and zero-fills it */
	ok(net_backend_set_cap(be, 0, 12) == 0, "header length 12 set");
	ok(net_backend_set_cap(be, VIRTIO_BIT(VIRTIO_NET_F_CSUM), 12) ==
		   -ENOTSUP,
	   "offload the backend can't carry refused");
	ok(net_backend_set_cap(be, 0, 7) == -EINVAL, "odd header length");
	memset(hdr, 0x11, sizeof(hdr));
	iov[0].iov_base = hdr;
	iov[0].iov_len = 12;
	iov[1].iov_base = frame;
	iov[1].iov_len = 60;
	is_int(net_backend_send(be, iov, 2), 72, "send counts the header");
	is_int(recv(sv[1], buf, sizeof(buf), 0), 60, "peer got a bare frame");
	send(sv[1], frame, 50, 0);
	memset(buf, 0xff, sizeof(buf));
	usleep(1000);
	is_int(net_backend_peek_len(be), 62, "peek_len includes the header");
	n = net_backend_recv(be, (struct iovec[]){{buf, 5}, {buf + 5, 500}},
			     2);
	is_int(n, 62, "recv: header + frame");
	ok(buf[0] == 0 && buf[4] == 0 && buf[5] == 0 && buf[11] == 0 &&
		   buf[12] == 0xab,
	   "header zero-filled across segments, frame after it");

	/* paused callbacks */
	net_backend_rx_enable(be, false);
	seen = calls();
	send(sv[1], frame, 42, 0);
	usleep(50000);
	ok(calls() == seen, "no callback while rx is disabled");
	net_backend_rx_enable(be, true);
	ok(wait_cb(seen), "re-enabling calls back for the waiting frame");
	net_backend_close(be);
out:
	close(sv[0]);
	close(sv[1]);
	cfg_free(root);
}

static int tap_sock(const char *ifname)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_protocol = htons(ETH_P_ALL)};
	int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));

	if (s < 0)
		return -1;
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (bind(s, (struct sockaddr *)&sll, sizeof(sll))) {
		close(s);
		return -1;
	}
	return s;
}

static void test_tap(struct event_loop *ev)
{
	struct cfg_node *root = cfg_new();
	struct devctx ctx = {.ev = ev, .vm_name = "t"};
	struct net_backend *be = NULL;
	uint8_t frame[64], buf[2048];
	struct iovec iov[2];
	struct virtio_net_hdr hdr;
	struct capture cap;
	char name[16], path[64];
	struct stat st;
	unsigned seen;
	struct cfg_node *n;
	int s, i, rc;
	ssize_t got = 0;

	snprintf(name, sizeof(name), "khtst%d", (int)getpid() % 100000);
	if (getuid() != 0 || access("/dev/net/tun", R_OK | W_OK)) {
		diag("tap tests skipped: they need root and /dev/net/tun");
		cfg_free(root);
		return;
	}
	n = nic(root, name);
	cfg_set(n, "create", "true");
	cfg_set(n, "bridge", "khyvenobridge0");
	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, n, &ctx, rx_cb, NULL);
	ok(strstr(capture_end(&cap),
		  "khyve: khyvenobridge0: no such bridge (for tap khtst") !=
		   NULL,
	   "missing bridge named");
	ok(rc < 0, "missing bridge refused");
	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	ok(stat(path, &st) != 0, "nothing half-made: the tap is gone again");

	cfg_unset(n, "bridge");
	rc = net_backend_open(&be, n, &ctx, rx_cb, NULL);
	ok(rc == 0, "create=true makes tap %s", name);
	if (rc)
		goto out;
	ok(stat(path, &st) == 0, "the interface exists");
	ok(net_backend_get_cap(be) & VIRTIO_BIT(VIRTIO_NET_F_CSUM),
	   "tap carries checksum offload");
	ok(net_backend_get_cap(be) & VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4),
	   "tap carries TSO");
	s = tap_sock(name);
	ok(s >= 0, "packet socket on the tap");
	if (s < 0)
		goto close;

	/* bare frames (hdr_len 0, as e1000) */
	memset(frame, 0, sizeof(frame));
	memset(frame, 0xff, 6);				  /* broadcast */
	memcpy(frame + 6, "\x02\x00\x00\x00\x00\x09", 6); /* src */
	frame[12] = 0x88;				  /* local type */
	frame[13] = 0xb5;
	memcpy(frame + 14, "khyve-tap-test", 14);
	iov[0].iov_base = frame;
	iov[0].iov_len = sizeof(frame);
	is_int(net_backend_send(be, iov, 1), 64, "bare frame sent");
	for (i = 0; i < 50; i++) {
		got = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
		if (got == 64 && !memcmp(buf + 14, "khyve-tap-test", 14))
			break;
		usleep(10000);
	}
	ok(got == 64 && !memcmp(buf, frame, 64), "host saw the frame");

	seen = calls();
	memcpy(frame + 6, "\x02\x00\x00\x00\x00\x0a", 6);
	memcpy(frame + 14, "khyve-host-send", 15);
	is_int(send(s, frame, 64, 0), 64, "host sends into the tap");
	ok(wait_cb(seen), "receive callback ran");
	got = 0;
	for (i = 0; i < 50; i++) {
		got = net_backend_recv(be, (struct iovec[]){{buf, sizeof(buf)}},
				       1);
		if (got == 64 && !memcmp(buf + 14, "khyve-host-send", 15))
			break;
		usleep(10000);
	}
	ok(got == 64 && !memcmp(buf + 14, "khyve-host-send", 15),
	   "bare frame received without a header");

	/* with the 12-byte virtio-net header */
	ok(net_backend_set_cap(be, 0, 12) == 0, "header length 12 set");
	memset(&hdr, 0, sizeof(hdr));
	iov[0].iov_base = &hdr;
	iov[0].iov_len = 12;
	iov[1].iov_base = frame;
	iov[1].iov_len = 64;
	memcpy(frame + 14, "khyve-tap-hdr!", 14);
	is_int(net_backend_send(be, iov, 2), 76, "frame with header sent");
	for (i = 0; i < 50; i++) {
		got = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
		if (got == 64 && !memcmp(buf + 14, "khyve-tap-hdr!", 14))
			break;
		usleep(10000);
	}
	ok(got == 64, "host saw it without the header");
	memcpy(frame + 14, "khyve-host-hdr!", 15);
	send(s, frame, 64, 0);
	got = 0;
	for (i = 0; i < 50; i++) {
		got = net_backend_recv(be, (struct iovec[]){{buf, sizeof(buf)}},
				       1);
		if (got == 76 && !memcmp(buf + 12 + 14, "khyve-host-hdr!", 15))
			break;
		usleep(10000);
	}
	ok(got == 76, "received with a 12-byte header first");
	close(s);
close:
	net_backend_close(be);
	usleep(10000);
	ok(stat(path, &st) != 0, "created tap removed on close");
out:
	cfg_free(root);
}

static void test_slirp(struct event_loop *ev)
{
	struct cfg_node *root = cfg_new();
	struct devctx ctx = {.ev = ev, .vm_name = "t"};
	struct net_backend *be = NULL;
	static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x56};
	uint8_t arp[42], buf[2048];
	struct iovec iov = {arp, sizeof(arp)};
	struct capture cap;
	struct cfg_node *n;
	ssize_t got;
	int rc;

	n = nic(root, "slirp");
	cfg_set(n, "hostfwd", "tcp:127.0.0.1:2-:22;bogus");
	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, n, &ctx, rx_cb, NULL);
	ok(strstr(capture_end(&cap),
		  "pci.0.5.0.hostfwd: invalid rule 'bogus'") != NULL,
	   "bad hostfwd rule named");
	ok(rc == -EINVAL, "bad hostfwd refused");

	cfg_set(n, "hostfwd", "udp:127.0.0.1:0-:7");
	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, n, &ctx, rx_cb, NULL);
	capture_end(&cap);
	ok(rc == -EINVAL, "port 0 refused");

	cfg_set(n, "hostfwd", "udp::0");
	capture_begin(&cap, STDERR_FILENO);
	rc = net_backend_open(&be, n, &ctx, rx_cb, NULL);
	capture_end(&cap);
	ok(rc == -EINVAL, "rule without a guest part refused");

	cfg_unset(n, "hostfwd");
	rc = net_backend_open(&be, n, &ctx, rx_cb, NULL);
	ok(rc == 0, "slirp opens");
	if (rc)
		goto out;
	is_str(net_backend_type(be), "slirp", "type slirp");

	/* ARP who-has 10.0.2.2 tell 10.0.2.15 */
	memset(arp, 0, sizeof(arp));
	memset(arp, 0xff, 6);
	memcpy(arp + 6, mac, 6);
	arp[12] = 0x08;
	arp[13] = 0x06;
	arp[14] = 0x00; /* htype 1 */
	arp[15] = 0x01;
	arp[16] = 0x08; /* ptype IPv4 */
	arp[17] = 0x00;
	arp[18] = 6;
	arp[19] = 4;
	arp[20] = 0;
	arp[21] = 1; /* request */
	memcpy(arp + 22, mac, 6);
	memcpy(arp + 28, "\x0a\x00\x02\x0f", 4);
	memcpy(arp + 38, "\x0a\x00\x02\x02", 4);
	is_int(net_backend_send(be, &iov, 1), 42, "ARP request sent");
	got = recv_wait(be, buf, sizeof(buf));
	ok(got >= 42, "slirp answered (%zd bytes)", got);
	ok(got >= 42 && !memcmp(buf, mac, 6) && buf[12] == 0x08 &&
		   buf[13] == 0x06 && buf[21] == 2 &&
		   !memcmp(buf + 28, "\x0a\x00\x02\x02", 4),
	   "an ARP reply for 10.0.2.2, to our MAC");
	net_backend_close(be);
out:
	cfg_free(root);
}

static uint16_t csum(const uint8_t *p, size_t n, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)(p[n - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* A TCP SYN from 10.0.2.15:40000 to 10.0.2.2:port (the host). */
static size_t build_syn(uint8_t *f, const uint8_t mac[6], uint16_t port)
{
	uint8_t *ip = f + 14, *tcp = f + 34, ph[12];
	uint16_t c;

	memset(f, 0, 54);
	memcpy(f, "\x52\x55\x0a\x00\x02\x02", 6); /* slirp's MAC */
	memcpy(f + 6, mac, 6);
	f[12] = 0x08;
	ip[0] = 0x45;
	ip[3] = 40;
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, "\x0a\x00\x02\x0f", 4);
	memcpy(ip + 16, "\x0a\x00\x02\x02", 4);
	c = csum(ip, 20, 0);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	tcp[0] = 40000 >> 8;
	tcp[1] = 40000 & 0xff;
	tcp[2] = (uint8_t)(port >> 8);
	tcp[3] = (uint8_t)port;
	tcp[7] = 1;	/* seq 1 */
	tcp[12] = 0x50; /* 20-byte header */
	tcp[13] = 0x02; /* SYN */
	tcp[14] = 0x40; /* window */
	memcpy(ph, ip + 12, 8);
	ph[8] = 0;
	ph[9] = 6;
	ph[10] = 0;
	ph[11] = 20;
	{
		uint32_t sum = 0;
		size_t i;

		for (i = 0; i < 12; i += 2)
			sum += (uint32_t)(ph[i] << 8 | ph[i + 1]);
		c = csum(tcp, 20, sum);
	}
	tcp[16] = (uint8_t)(c >> 8);
	tcp[17] = (uint8_t)c;
	return 54;
}

/* Does the guest's SYN to a host listener get a SYN-ACK back? */
static bool slirp_syn_answered(struct event_loop *ev, bool open_net)
{
	static const uint8_t mac[6] = {0x52, 0x54, 0, 0x12, 0x34, 0x57};
	struct cfg_node *root = cfg_new();
	struct devctx ctx = {.ev = ev, .vm_name = "t"};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct net_backend *be = NULL;
	uint8_t f[64], buf[2048];
	struct iovec iov = {f, 0};
	socklen_t sl = sizeof(sa);
	bool answered = false;
	struct cfg_node *n;
	int l, i;
	ssize_t got;

	l = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&sa, &sl))
		goto out;
	n = nic(root, "slirp");
	if (open_net)
		cfg_set(n, "open", "true");
	if (net_backend_open(&be, n, &ctx, rx_cb, NULL))
		goto out;
	/* an ARP request first, so slirp knows the guest's MAC */
	memset(f, 0, sizeof(f));
	memset(f, 0xff, 6);
	memcpy(f + 6, mac, 6);
	memcpy(f + 12, "\x08\x06\x00\x01\x08\x00\x06\x04\x00\x01", 10);
	memcpy(f + 22, mac, 6);
	memcpy(f + 28, "\x0a\x00\x02\x0f", 4);
	memcpy(f + 38, "\x0a\x00\x02\x02", 4);
	iov.iov_len = 42;
	net_backend_send(be, &iov, 1);
	recv_wait(be, buf, sizeof(buf));
	iov.iov_len = build_syn(f, mac, ntohs(sa.sin_port));
	net_backend_send(be, &iov, 1);
	for (i = 0; i < 5 && !answered; i++) {
		got = recv_wait(be, buf, sizeof(buf));
		answered = got >= 54 && buf[23] == 6 &&
			   (buf[47] & 0x12) == 0x12;
		if (got <= 0)
			break;
	}
	net_backend_close(be);
out:
	if (l >= 0)
		close(l);
	cfg_free(root);
	return answered;
}

int main(void)
{
	struct event_loop *ev;
	pthread_t th;

	plan_no_plan();
	if (event_loop_new(&ev)) {
		ok(0, "event loop");
		return done_testing();
	}
	pthread_create(&th, NULL, loop_thread, ev);
	test_mac();
	test_legacy();
	test_select(ev);
	test_dgram(ev);
	test_tap(ev);
	test_slirp(ev);
	ok(!slirp_syn_answered(ev, false),
	   "slirp restricted (default): the guest cannot open a connection");
	ok(slirp_syn_answered(ev, true),
	   "slirp open: the guest's SYN to the host is answered");
	event_loop_stop(ev, 0);
	pthread_join(th, NULL);
	event_loop_free(ev);
	return done_testing();
}
