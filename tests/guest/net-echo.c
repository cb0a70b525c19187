/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * net-echo: an IPv4 echo server on the first network card, polled, ring
 * 0, on the stack of lib/net.c.  Command line:
 *   nic=virtio|e1000     which card (default: the first one on bus 0)
 *   ip=A.B.C.D/N | dhcp  a static address (prefix default /24), or DHCP
 *   gw=A.B.C.D           the gateway (overrides DHCP's router)
 *   udp=PORT             echo UDP datagrams on PORT
 *   tcp=PORT             echo TCP connections on PORT
 *   hello=A.B.C.D:PORT   send one datagram "hello from <our ip>" at start
 *   timeout=SECONDS      give up (FAIL) after this long (default 60)
 *   verbose              the drivers' set-up details
 *   microwire            e1000: read the EEPROM through EECD, not EERD
 *   legacy               virtio-net: the legacy I/O interface
 *   selftest             no card: run the stack on a fake interface and
 *                        check its answers to crafted frames, valid and
 *                        malformed ("ok N - ..." / "not ok N - ..."
 *                        lines), then PASS or FAIL
 * It prints its card and MAC, its address ("net-echo: ip 10.0.2.15
 * (dhcp)"), then "net-echo: ready", and one line per request served
 * (ARP and ICMP echo requests are answered too).  A UDP datagram "quit"
 * on the echo port is echoed and ends the guest with PASS; the timeout
 * ends it with FAIL.
 * BSP only.
 */
#include "e1000.h"
#include "net.h"
#include "vnet.h"

const char guest_name[] = "net-echo";

#define DEFAULT_TIMEOUT 60
#define HELLO_PORT 1024 /* source port of the hello without udp= */

static struct vnet vn;
static struct e1000 e1k;
static struct net net;
static bool quit;
static unsigned int udp_served, tcp_served;

static const char *err_name(int rc)
{
	switch (-rc) {
	case GUEST_ETIMEDOUT:
		return "no answer (timed out)";
	case GUEST_ENOSPC:
		return "no room (ring or memory full)";
	case GUEST_ENOENT:
		return "no such device or route";
	case GUEST_EPROTO:
		return "the device broke the protocol";
	case GUEST_E2BIG:
		return "too big";
	case GUEST_EIO:
		return "I/O error";
	case GUEST_ENOTSUP:
		return "not supported by the device";
	case GUEST_ERANGE:
		return "out of range";
	default:
		return "error";
	}
}

static bool is_quit(const uint8_t *d, uint32_t len)
{
	while (len && (d[len - 1] == '\n' || d[len - 1] == '\r'))
		len--;
	return len == 4 && !memcmp(d, "quit", 4);
}

static void udp_echo(struct net *n, const struct net_rx_info *ri,
		     const uint8_t *data, uint32_t len, void *arg)
{
	bool q = is_quit(data, len);
	char s[16];
	int rc;

	(void)arg;
	printf("net-echo: udp %s:%u, %u bytes%s\n", net_fmt_ip(s, ri->src_ip),
	       ri->src_port, len, q ? " (quit)" : "");
	rc = net_udp_reply(n, ri, data, len);
	if (rc)
		printf("net-echo: udp reply failed: %s (%d)\n", err_name(rc),
		       rc);
	udp_served++;
	if (q)
		quit = true;
}

static void tcp_accepted(struct net *n, struct net_tcp_conn *c, void *arg)
{
	char s[16];

	(void)n;
	(void)arg;
	printf("net-echo: tcp %s:%u connected\n", net_fmt_ip(s, c->peer_ip),
	       c->peer_port);
}

static int tcp_data(struct net *n, struct net_tcp_conn *c, const uint8_t *data,
		    uint32_t len, void *arg)
{
	char s[16];
	int rc;

	(void)arg;
	rc = net_tcp_send(n, c, data, len);
	if (rc)
		return rc; /* no room: the peer sends it again */
	printf("net-echo: tcp %s:%u, %u bytes\n", net_fmt_ip(s, c->peer_ip),
	       c->peer_port, len);
	return 0;
}

static void tcp_closed(struct net *n, struct net_tcp_conn *c, const char *why,
		       void *arg)
{
	char s[16];

	(void)n;
	(void)arg;
	printf("net-echo: tcp %s:%u %s (%lu bytes in, %lu out)\n",
	       net_fmt_ip(s, c->peer_ip), c->peer_port, why, c->rx_bytes,
	       c->tx_bytes);
	tcp_served++;
}

static const struct net_tcp_ops tcp_ops = {
	.accepted = tcp_accepted,
	.data = tcp_data,
	.closed = tcp_closed,
};

/* A port from key=N: 0 if absent; fails the guest if malformed. */
static uint16_t get_port(const char *key)
{
	uint64_t v;
	int rc = cmdline_get_u64(key, &v);

	if (rc == -GUEST_ENOENT)
		return 0;
	if (rc || v == 0 || v > 65535)
		guest_fail("bad %s= (want a port 1-65535)", key);
	return (uint16_t)v;
}

static struct netif *pick_nic(bool verbose)
{
	bool have_v, have_e, use_v;
	char want[16];
	int rc;

	have_v = vnet_find(0, &vn) == 0;
	have_e = e1000_find(0, &e1k) == 0;
	rc = cmdline_get("nic", want, sizeof(want));
	if (rc == -GUEST_ENOENT) {
		if (!have_v && !have_e)
			guest_fail("no virtio-net or e1000 card on bus 0");
		use_v = have_v && (!have_e || vn.vd.dev < e1k.dev ||
				   (vn.vd.dev == e1k.dev && vn.vd.fn < e1k.fn));
	} else if (rc > 0 && !strcmp(want, "virtio")) {
		if (!have_v)
			guest_fail("nic=virtio: no virtio-net card on bus 0");
		use_v = true;
	} else if (rc > 0 && !strcmp(want, "e1000")) {
		if (!have_e)
			guest_fail("nic=e1000: no e1000 card on bus 0");
		use_v = false;
	} else {
		guest_fail("nic= must be virtio or e1000");
	}
	if (use_v) {
		struct vnet_cfg cfg = {
			.rx_queue = 64,
			.tx_queue = 32,
			.rx_buf_len = 2048,
			.tx_buf_len = 2048,
			.legacy = cmdline_has_word("legacy"),
			.verbose = verbose,
		};

		rc = vnet_init(&vn, &cfg);
		if (rc)
			guest_fail("virtio-net set-up (%s interface): %s (%d)",
				   cfg.legacy ? "legacy" : "modern",
				   err_name(rc), rc);
		printf("net-echo: virtio-net %s interface, %u-byte header\n",
		       cfg.legacy ? "legacy" : "modern", vn.hdr_len);
		if (!vnet_link_up(&vn))
			printf("net-echo: virtio-net reports the link down\n");
		return &vn.nif;
	}
	/* test the Microwire EEPROM path (bhyve's) on a VMM with EERD */
	e1k.no_eerd = cmdline_has_word("microwire");
	rc = e1000_init(&e1k, verbose);
	if (rc)
		guest_fail("e1000 set-up: %s (%d)", err_name(rc), rc);
	return &e1k.nif;
}

static void configure(struct net *n, unsigned int timeout)
{
	char v[40], s[16], s2[16];
	unsigned int prefix = 24;
	uint32_t ip, gw = 0;
	int rc;

	rc = cmdline_get("gw", v, sizeof(v));
	if (rc != -GUEST_ENOENT && (rc < 0 || net_parse_ip(v, (size_t)rc, &gw)))
		guest_fail("bad gw= (want A.B.C.D)");
	if (cmdline_has_word("dhcp")) {
		printf("net-echo: dhcp...\n");
		rc = net_dhcp(n, timeout);
		if (rc)
			guest_fail("dhcp: %s (%d)", err_name(rc), rc);
		printf("net-echo: ip %s (dhcp)\n", net_fmt_ip(s, n->ip));
		printf("net-echo: netmask %s, router %s, server %s, lease "
		       "%us\n",
		       net_fmt_ip(v, n->mask), net_fmt_ip(s2, n->gw),
		       net_fmt_ip(s, n->dhcp.server_id), n->dhcp.lease_s);
		if (gw)
			n->gw = gw;
		return;
	}
	rc = cmdline_get("ip", v, sizeof(v));
	if (rc == -GUEST_ENOENT)
		guest_fail("no address: give ip=A.B.C.D/N or dhcp");
	if (rc < 0 || net_parse_cidr(v, &ip, &prefix) || !ip)
		guest_fail("bad ip= (want A.B.C.D/N)");
	net_set_addr(n, ip, prefix, gw);
	printf("net-echo: ip %s (static)\n", net_fmt_ip(s, n->ip));
	printf("net-echo: netmask %s, gateway %s\n", net_fmt_ip(v, n->mask),
	       gw ? net_fmt_ip(s2, gw) : "none");
}

static void send_hello(struct net *n, uint16_t sport)
{
	char v[40], s[16], msg[40];
	uint32_t dst;
	uint64_t port;
	size_t i;
	int rc, len;

	rc = cmdline_get("hello", v, sizeof(v));
	if (rc == -GUEST_ENOENT)
		return;
	for (i = 0; rc > 0 && i < (size_t)rc && v[i] != ':'; i++)
		;
	if (rc < 0 || i == (size_t)rc || net_parse_ip(v, i, &dst) ||
	    parse_u64(v + i + 1, (size_t)rc - i - 1, &port) || !port ||
	    port > 65535)
		guest_fail("bad hello= (want A.B.C.D:PORT)");
	len = snprintf(msg, sizeof(msg), "hello from %s", net_fmt_ip(s, n->ip));
	rc = net_udp_send(n, dst, sport ? sport : HELLO_PORT, (uint16_t)port,
			  msg, (uint32_t)len);
	if (rc)
		guest_fail("hello to %s:%lu: %s (%d)", net_fmt_ip(s, dst), port,
			   err_name(rc), rc);
	printf("net-echo: sent \"%s\" to %s:%lu\n", msg, net_fmt_ip(s, dst),
	       port);
}

/* ---- selftest: the stack on a fake interface ---------------------------- */

#define FK_TX 4
#define ST_PORT 7
#define ST_OTHER_PORT 99

/* The fake card: one frame to receive, up to FK_TX sent frames kept. */
static struct {
	const uint8_t *rx;
	uint32_t rx_len;
	uint8_t tx[FK_TX][NET_FRAME_MAX];
	uint32_t tx_len[FK_TX];
	unsigned int ntx;
} fk;

static const uint8_t st_mac[NET_ALEN] = {2, 0, 0, 0, 0, 1};
static const uint8_t st_peer_mac[NET_ALEN] = {2, 0, 0, 0, 0, 2};
static const uint8_t st_bcast[NET_ALEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint32_t st_ip = NET_IP4(10, 1, 0, 2);
static const uint32_t st_peer = NET_IP4(10, 1, 0, 1);
static unsigned int st_n, st_failed, st_accepted, st_data, st_closed;
static uint8_t st_frame[NET_FRAME_MAX];
static struct netif st_nif;

static int fk_rx(struct netif *nif, const uint8_t **frame)
{
	uint32_t len = fk.rx_len;

	(void)nif;
	if (!len)
		return 0;
	fk.rx_len = 0;
	*frame = fk.rx;
	return (int)len;
}

static void fk_rx_done(struct netif *nif)
{
	(void)nif;
}

static uint8_t *fk_tx_buf(struct netif *nif)
{
	(void)nif;
	return fk.ntx < FK_TX ? fk.tx[fk.ntx] : NULL;
}

static int fk_tx(struct netif *nif, uint32_t len)
{
	(void)nif;
	if (fk.ntx >= FK_TX || len > NET_FRAME_MAX)
		return -GUEST_EINVAL;
	fk.tx_len[fk.ntx++] = len;
	return 0;
}

static void st_check(bool ok, const char *what)
{
	st_n++;
	if (!ok)
		st_failed++;
	printf("%s %u - %s\n", ok ? "ok" : "not ok", st_n, what);
}

/* Hand one frame to the stack; returns the frames it sent back. */
static unsigned int feed(struct net *n, const uint8_t *f, uint32_t len)
{
	unsigned int i;

	/* no retransmission may add frames while a check runs */
	for (i = 0; i < NET_TCP_CONNS; i++)
		n->tcp[i].rto_at = n->now + 100;
	fk.rx = f;
	fk.rx_len = len;
	fk.ntx = 0;
	net_poll(n);
	return fk.ntx;
}

static uint32_t mk_eth(uint8_t *f, const uint8_t *dst, uint16_t type)
{
	net_copy(f, dst, NET_ALEN);
	net_copy(f + 6, st_peer_mac, NET_ALEN);
	net_put16(f + 12, type);
	return NET_ETH_HLEN;
}

/* Ethernet and IPv4 headers for plen bytes of payload; frame length. */
static uint32_t mk_ip(uint8_t *f, uint8_t proto, uint32_t dst, uint32_t plen)
{
	uint8_t *ip = f + NET_ETH_HLEN;

	mk_eth(f, dst == st_ip ? st_mac : st_bcast, NET_ETH_IP);
	mem_clear(ip, 20);
	ip[0] = 0x45;
	net_put16(ip + 2, (uint16_t)(20 + plen));
	ip[8] = 64;
	ip[9] = proto;
	net_put32(ip + 12, st_peer);
	net_put32(ip + 16, dst);
	net_put16(ip + 10, net_csum_fold(net_csum_add(0, ip, 20)));
	return NET_ETH_HLEN + 20 + plen;
}

static uint32_t mk_udp(uint8_t *f, uint32_t dst, uint16_t dport,
		       const char *data)
{
	uint32_t len = (uint32_t)strlen(data), ulen = 8 + len;
	uint8_t *u = f + NET_ETH_HLEN + 20;
	uint16_t c;

	net_put16(u, 5555);
	net_put16(u + 2, dport);
	net_put16(u + 4, (uint16_t)ulen);
	net_put16(u + 6, 0);
	net_copy(u + 8, data, len);
	c = net_csum_fold(net_csum_add(
		net_csum_pseudo(st_peer, dst, NET_IP_UDP, ulen), u, ulen));
	net_put16(u + 6, c ? c : 0xffff);
	return mk_ip(f, NET_IP_UDP, dst, ulen);
}

static uint32_t mk_tcp(uint8_t *f, uint16_t dport, uint32_t seq, uint32_t ack,
		       uint8_t flags, const char *data)
{
	uint32_t len = data ? (uint32_t)strlen(data) : 0, hl = 20;
	uint8_t *t = f + NET_ETH_HLEN + 20;

	mem_clear(t, 24);
	net_put16(t, 4444);
	net_put16(t + 2, dport);
	net_put32(t + 4, seq);
	net_put32(t + 8, ack);
	if (flags & 0x02) { /* SYN: an MSS option of 1400 */
		hl = 24;
		t[20] = 2;
		t[21] = 4;
		net_put16(t + 22, 1400);
	}
	t[12] = (uint8_t)(hl / 4 << 4);
	t[13] = flags;
	net_put16(t + 14, 65535);
	if (len)
		net_copy(t + hl, data, len);
	net_put16(t + 16,
		  net_csum_fold(net_csum_add(
			  net_csum_pseudo(st_peer, st_ip, NET_IP_TCP, hl + len),
			  t, hl + len)));
	return mk_ip(f, NET_IP_TCP, st_ip, hl + len);
}

/* Is sent frame k a valid IPv4 packet of proto to the peer (checksums of
 * the header and, for UDP/TCP/ICMP, of the payload)?  Sets *l4, *l4len. */
static bool sent_ip(unsigned int k, uint8_t proto, const uint8_t **l4,
		    uint32_t *l4len)
{
	const uint8_t *f = fk.tx[k], *ip = f + NET_ETH_HLEN;
	uint32_t tot, sum = 0;

	if (k >= fk.ntx || fk.tx_len[k] < NET_ETH_MIN ||
	    memcmp(f, st_peer_mac, NET_ALEN) ||
	    memcmp(f + 6, st_mac, NET_ALEN) ||
	    net_get16(f + 12) != NET_ETH_IP || ip[0] != 0x45 ||
	    ip[9] != proto || net_csum_fold(net_csum_add(0, ip, 20)) ||
	    net_get32(ip + 12) != st_ip || net_get32(ip + 16) != st_peer)
		return false;
	tot = net_get16(ip + 2);
	if (tot < 20 || NET_ETH_HLEN + tot > fk.tx_len[k])
		return false;
	*l4 = ip + 20;
	*l4len = tot - 20;
	if (proto != NET_IP_ICMP)
		sum = net_csum_pseudo(st_ip, st_peer, proto, *l4len);
	return net_csum_fold(net_csum_add(sum, *l4, *l4len)) == 0;
}

static void st_parsers(void)
{
	unsigned int prefix = 99;
	uint8_t mac[NET_ALEN];
	static const uint8_t rfc1071[8] = {0x00, 0x01, 0xf2, 0x03,
					   0xf4, 0xf5, 0xf6, 0xf7};
	uint32_t ip = 0;
	struct net n;

	st_check(!net_parse_ip("192.168.0.1", 11, &ip) &&
			 ip == NET_IP4(192, 168, 0, 1),
		 "parse 192.168.0.1");
	st_check(net_parse_ip("256.0.0.1", 9, &ip) &&
			 net_parse_ip("1.2.3", 5, &ip) &&
			 net_parse_ip("1.2.3.4.5", 9, &ip) &&
			 net_parse_ip("1..2.3", 6, &ip) &&
			 net_parse_ip("", 0, &ip) &&
			 net_parse_ip("1.2.3.4 ", 8, &ip) &&
			 net_parse_ip("1.2.3.1000", 10, &ip),
		 "malformed addresses are refused");
	st_check(!net_parse_cidr("10.0.0.1/8", &ip, &prefix) && prefix == 8 &&
			 !net_parse_cidr("10.0.0.3", &ip, &prefix) &&
			 prefix == 8 && ip == NET_IP4(10, 0, 0, 3),
		 "parse A.B.C.D/N and A.B.C.D");
	st_check(net_parse_cidr("10.0.0.1/0", &ip, &prefix) &&
			 net_parse_cidr("10.0.0.1/33", &ip, &prefix) &&
			 net_parse_cidr("10.0.0.1/", &ip, &prefix) &&
			 net_parse_cidr("10.0.0.1/2x", &ip, &prefix),
		 "malformed prefixes are refused");
	st_check(!net_parse_mac("52:54:00:ab:CD:ef", mac) && mac[0] == 0x52 &&
			 mac[4] == 0xcd && mac[5] == 0xef &&
			 net_parse_mac("52:54:00:ab:cd", mac) &&
			 net_parse_mac("52-54-00-ab-cd-ef", mac) &&
			 net_parse_mac("52:54:00:ab:cd:eg", mac),
		 "parse MAC addresses, refuse malformed ones");
	st_check(net_csum_fold(net_csum_add(0, rfc1071, 8)) == 0x220d &&
			 net_csum_fold(net_csum_add(0, rfc1071, 7)) == 0x2304,
		 "Internet checksum (RFC 1071 example, odd length)");
	net_set_addr(&n, 1, 24, 0);
	prefix = n.mask == 0xffffff00u;
	net_set_addr(&n, 1, 32, 0);
	st_check(prefix && n.mask == 0xffffffffu, "prefix to netmask");
}

static void st_arp(struct net *n)
{
	uint8_t *f = st_frame, *a = f + NET_ETH_HLEN;
	const uint8_t *r;
	uint8_t mac[NET_ALEN];
	uint64_t bad;

	mk_eth(f, st_bcast, NET_ETH_ARP);
	net_put16(a, 1);
	net_put16(a + 2, NET_ETH_IP);
	a[4] = 6;
	a[5] = 4;
	net_put16(a + 6, 1);
	net_copy(a + 8, st_peer_mac, NET_ALEN);
	net_put32(a + 14, st_peer);
	mem_clear(a + 18, NET_ALEN);
	net_put32(a + 24, st_ip);
	r = fk.tx[0] + NET_ETH_HLEN;
	st_check(feed(n, f, 60) == 1 &&
			 !memcmp(fk.tx[0], st_peer_mac, NET_ALEN) &&
			 net_get16(fk.tx[0] + 12) == NET_ETH_ARP &&
			 net_get16(r + 6) == 2 && !memcmp(r + 8, st_mac, 6) &&
			 net_get32(r + 14) == st_ip &&
			 !memcmp(r + 18, st_peer_mac, 6) &&
			 net_get32(r + 24) == st_peer,
		 "arp: a request for our address is answered");
	st_check(net_arp_resolve(n, st_peer, mac, 0) == 0 &&
			 !memcmp(mac, st_peer_mac, NET_ALEN),
		 "arp: the requester is in the cache");
	net_put32(a + 24, st_ip + 1);
	st_check(feed(n, f, 60) == 0, "arp: a request for another address: "
				      "no answer");
	net_put32(a + 24, st_ip);
	a[4] = 5;
	bad = n->rx_bad;
	st_check(feed(n, f, 60) == 0 && n->rx_bad == bad + 1,
		 "arp: hardware length 5: dropped as malformed");
	a[4] = 6;
	bad = n->rx_bad;
	st_check(feed(n, f, NET_ETH_HLEN + 20) == 0 && n->rx_bad == bad + 1,
		 "arp: truncated packet: dropped as malformed");
	/* RFC 826: learn a new sender only when we are the target */
	net_put16(a + 6, 2);
	net_put32(a + 14, st_peer + 7);
	net_put32(a + 24, st_ip + 3);
	st_check(feed(n, f, 60) == 0 && net_arp_resolve(n, st_peer + 7, mac,
							0) == -GUEST_ETIMEDOUT,
		 "arp: a reply to someone else is not learned");
	bad = n->rx_bad;
	st_check(feed(n, f, 10) == 0 && n->rx_bad == bad + 1,
		 "a 10-byte frame: dropped as malformed");
}

static void st_udp(struct net *n)
{
	uint8_t *f = st_frame, *ip = f + NET_ETH_HLEN, *u = ip + 20;
	const uint8_t *l4;
	uint32_t len, l4len;
	uint64_t bad, ign;

	len = mk_udp(f, st_ip, ST_PORT, "hello");
	st_check(feed(n, f, len) == 1 && sent_ip(0, NET_IP_UDP, &l4, &l4len) &&
			 l4len == 13 && net_get16(l4) == ST_PORT &&
			 net_get16(l4 + 2) == 5555 &&
			 !memcmp(l4 + 8, "hello", 5),
		 "udp: echoed with valid checksums");
	net_put16(u + 6, 0);
	st_check(feed(n, f, len) == 1, "udp: checksum 0 (none) accepted");
	net_put16(u + 6, 0x1234);
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "udp: bad checksum: dropped");
	len = mk_udp(f, st_ip, ST_PORT, "hello");
	net_put16(u + 4, 200);
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "udp: length beyond the IP payload: dropped");
	net_put16(u + 4, 4);
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "udp: length below the header: dropped");
	len = mk_udp(f, st_ip, ST_OTHER_PORT, "x");
	ign = n->rx_ignored;
	st_check(feed(n, f, len) == 0 && n->rx_ignored == ign + 1,
		 "udp: unbound port: ignored");
	len = mk_udp(f, st_ip | 0xff, ST_PORT, "bcast");
	st_check(feed(n, f, len) == 1 && sent_ip(0, NET_IP_UDP, &l4, &l4len),
		 "udp: subnet broadcast accepted, answered to the sender");
	len = mk_udp(f, st_ip + 1, ST_PORT, "x");
	net_copy(f, st_mac, NET_ALEN);
	st_check(feed(n, f, len) == 0, "udp: another address: ignored");
	len = mk_udp(f, st_ip, ST_PORT, "x");
	f[5] = 9;
	st_check(feed(n, f, len) == 0, "another MAC address: ignored");

	/* IPv4 header checks */
	len = mk_udp(f, st_ip, ST_PORT, "hello");
	ip[0] = 0x65;
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "ip: version 6 in an IPv4 frame: dropped");
	ip[0] = 0x44;
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "ip: header length 16: dropped");
	len = mk_udp(f, st_ip, ST_PORT, "hello");
	bad = n->rx_bad;
	st_check(feed(n, f, len - 3) == 0 && n->rx_bad == bad + 1,
		 "ip: total length beyond the frame: dropped");
	ip[10] ^= 1;
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "ip: bad header checksum: dropped");
	len = mk_udp(f, st_ip, ST_PORT, "hello");
	net_put16(ip + 6, 0x2000); /* MF */
	net_put16(ip + 10, 0);
	net_put16(ip + 10, net_csum_fold(net_csum_add(0, ip, 20)));
	ign = n->rx_ignored;
	st_check(feed(n, f, len) == 0 && n->rx_ignored == ign + 1,
		 "ip: a fragment: ignored");
	/* a header with 4 bytes of options (NOPs) before the UDP header */
	len = mk_udp(f, st_ip, ST_PORT, "opts");
	memmove(u + 4, u, 12);
	memset(u, 1, 4);
	ip[0] = 0x46;
	net_put16(ip + 2, 36);
	net_put16(ip + 10, 0);
	net_put16(ip + 10, net_csum_fold(net_csum_add(0, ip, 24)));
	st_check(feed(n, f, len + 4) == 1 &&
			 sent_ip(0, NET_IP_UDP, &l4, &l4len) &&
			 !memcmp(l4 + 8, "opts", 4),
		 "ip: options are skipped");
}

static void st_icmp(struct net *n)
{
	uint8_t *f = st_frame, *ic = f + NET_ETH_HLEN + 20;
	const uint8_t *l4;
	uint32_t len, l4len;
	uint64_t bad;

	mem_clear(ic, 16);
	ic[0] = 8;
	net_put16(ic + 4, 0x1234);
	net_put16(ic + 6, 7);
	net_copy(ic + 8, "pingpong", 8);
	net_put16(ic + 2, net_csum_fold(net_csum_add(0, ic, 16)));
	len = mk_ip(f, NET_IP_ICMP, st_ip, 16);
	st_check(feed(n, f, len) == 1 && sent_ip(0, NET_IP_ICMP, &l4, &l4len) &&
			 l4len == 16 && l4[0] == 0 &&
			 net_get16(l4 + 4) == 0x1234 &&
			 net_get16(l4 + 6) == 7 &&
			 !memcmp(l4 + 8, "pingpong", 8),
		 "icmp: echo request answered");
	ic[9] ^= 0x40;
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "icmp: bad checksum: dropped");
	ic[9] ^= 0x40;
	ic[0] = 13;
	ic[2] = ic[3] = 0;
	net_put16(ic + 2, net_csum_fold(net_csum_add(0, ic, 16)));
	st_check(feed(n, f, len) == 0, "icmp: other types: ignored");
}

static void st_tcp_accepted(struct net *n, struct net_tcp_conn *c, void *arg)
{
	(void)n;
	(void)c;
	(void)arg;
	st_accepted++;
}

static int st_tcp_data(struct net *n, struct net_tcp_conn *c,
		       const uint8_t *data, uint32_t len, void *arg)
{
	(void)arg;
	st_data++;
	return net_tcp_send(n, c, data, len);
}

static void st_tcp_closed(struct net *n, struct net_tcp_conn *c,
			  const char *why, void *arg)
{
	(void)n;
	(void)c;
	(void)arg;
	if (!strcmp(why, "closed"))
		st_closed++;
}

static const struct net_tcp_ops st_tcp_ops = {
	.accepted = st_tcp_accepted,
	.data = st_tcp_data,
	.closed = st_tcp_closed,
};

/* Sent frame 0 is a TCP segment from port sport with these flags, seq
 * and ack; *dlen. */
static bool sent_tcp(uint16_t sport, uint8_t flags, uint32_t seq, uint32_t ack,
		     uint32_t *dlen)
{
	const uint8_t *t;
	uint32_t l4len, hl;

	if (fk.ntx != 1 || !sent_ip(0, NET_IP_TCP, &t, &l4len) || l4len < 20 ||
	    (hl = (uint32_t)(t[12] >> 4) * 4) > l4len)
		return false;
	*dlen = l4len - hl;
	return t[13] == flags && net_get32(t + 4) == seq &&
	       net_get32(t + 8) == ack && net_get16(t) == sport &&
	       net_get16(t + 2) == 4444;
}

static void st_tcp(struct net *n)
{
	uint8_t *f = st_frame, *t = f + NET_ETH_HLEN + 20;
	struct net_tcp_conn *c = &n->tcp[0];
	uint32_t len, iss, dl = 99;
	uint64_t bad;

	net_tcp_listen(n, ST_PORT, &st_tcp_ops, NULL);
	len = mk_tcp(f, ST_PORT, 1000, 0, 0x02, NULL);
	feed(n, f, len);
	iss = c->iss;
	st_check(sent_tcp(ST_PORT, 0x12, iss, 1001, &dl) && dl == 0 &&
			 fk.tx[0][NET_ETH_HLEN + 20 + 12] >> 4 == 6 &&
			 c->peer_mss == 1400,
		 "tcp: SYN answered by SYN-ACK with an MSS option");
	len = mk_tcp(f, ST_PORT, 1001, iss + 1, 0x10, NULL);
	st_check(feed(n, f, len) == 0 && st_accepted == 1 &&
			 c->state == NET_TCP_ESTABLISHED,
		 "tcp: the ACK completes the handshake");
	len = mk_tcp(f, ST_PORT, 1001, iss + 1, 0x18, "abc");
	feed(n, f, len);
	st_check(sent_tcp(ST_PORT, 0x18, iss + 1, 1004, &dl) && dl == 3 &&
			 !memcmp(fk.tx[0] + NET_ETH_HLEN + 40, "abc", 3),
		 "tcp: data echoed in one segment that also acknowledges it");
	feed(n, f, len);
	st_check(sent_tcp(ST_PORT, 0x10, iss + 4, 1004, &dl) && dl == 0 &&
			 st_data == 1,
		 "tcp: a retransmission is acknowledged, not delivered again");
	len = mk_tcp(f, ST_PORT, 1010, iss + 4, 0x18, "zz");
	feed(n, f, len);
	st_check(sent_tcp(ST_PORT, 0x10, iss + 4, 1004, &dl) && st_data == 1,
		 "tcp: out-of-order data: duplicate ACK");
	len = mk_tcp(f, ST_PORT, 900000, iss + 4, 0x04, NULL);
	st_check(feed(n, f, len) == 0 && c->state == NET_TCP_ESTABLISHED,
		 "tcp: a RST outside the window is ignored");
	len = mk_tcp(f, ST_PORT, 1004, iss + 4, 0x18, "q");
	t[12] = 15 << 4;
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "tcp: data offset beyond the segment: dropped");
	len = mk_tcp(f, ST_PORT, 1004, iss + 4, 0x18, "q");
	t[16] ^= 0x10;
	bad = n->rx_bad;
	st_check(feed(n, f, len) == 0 && n->rx_bad == bad + 1,
		 "tcp: bad checksum: dropped");
	len = mk_tcp(f, ST_PORT, 1004, iss + 4, 0x11, NULL);
	feed(n, f, len);
	st_check(sent_tcp(ST_PORT, 0x11, iss + 4, 1005, &dl) &&
			 c->state == NET_TCP_LAST_ACK,
		 "tcp: the peer's FIN is answered with our FIN");
	len = mk_tcp(f, ST_PORT, 1005, iss + 5, 0x10, NULL);
	st_check(feed(n, f, len) == 0 && st_closed == 1 &&
			 c->state == NET_TCP_FREE,
		 "tcp: the ACK of our FIN closes the connection");
	len = mk_tcp(f, ST_OTHER_PORT, 5000, 0, 0x02, NULL);
	feed(n, f, len);
	st_check(sent_tcp(ST_OTHER_PORT, 0x14, 0, 5001, &dl),
		 "tcp: SYN to a closed port: "
		 "RST-ACK");
	len = mk_tcp(f, ST_OTHER_PORT, 5000, 777, 0x10, NULL);
	feed(n, f, len);
	st_check(sent_tcp(ST_OTHER_PORT, 0x04, 777, 0, &dl),
		 "tcp: ACK without a connection: RST with its ack as seq");
	len = mk_tcp(f, ST_OTHER_PORT, 5000, 0, 0x04, NULL);
	st_check(feed(n, f, len) == 0, "tcp: RST without a connection: no "
				       "answer");
	len = mk_tcp(f, ST_PORT, 6000, 0, 0x03, NULL);
	feed(n, f, len);
	st_check(sent_tcp(ST_PORT, 0x14, 0, 6002, &dl) &&
			 n->tcp[0].state == NET_TCP_FREE,
		 "tcp: SYN+FIN is refused with a RST");
}

/* A DHCP answer from st_peer: type, yiaddr, options after the type. */
static uint32_t mk_dhcp(uint8_t *f, uint32_t xid, uint8_t type,
			const uint8_t *opts, uint32_t olen)
{
	uint8_t *u = f + NET_ETH_HLEN + 20, *d = u + 8;
	uint32_t len = 240 + 3 + olen + 1;

	mem_clear(d, len);
	d[0] = 2;
	d[1] = 1;
	d[2] = 6;
	net_put32(d + 4, xid);
	net_put32(d + 16, NET_IP4(10, 1, 0, 50));
	net_copy(d + 28, st_mac, NET_ALEN);
	net_put32(d + 236, 0x63825363u);
	d[240] = 53;
	d[241] = 1;
	d[242] = type;
	net_copy(d + 243, opts, olen);
	d[243 + olen] = 255;
	net_put16(u, 67);
	net_put16(u + 2, 68);
	net_put16(u + 4, (uint16_t)(8 + len));
	net_put16(u + 6, 0);
	return mk_ip(f, NET_IP_UDP, 0xffffffffu, 8 + len);
}

static void st_dhcp(struct net *n)
{
	static const uint8_t opts[] = {54,  4,	 10, 1, 0, 1, 1,  4,
				       255, 255, 0,  0, 3, 4, 10, 1,
				       0,   1,	 51, 4, 0, 0, 1,  0};
	static const uint8_t bad_opts[] = {54, 4, 10, 1, 0, 1, 1, 40, 255};
	static const uint8_t other[] = {54, 4, 10, 1, 0, 9};
	struct net_dhcp *h = &n->dhcp;
	uint32_t len, ip = n->ip;
	uint64_t bad;

	n->ip = 0;
	mem_clear(h, sizeof(*h));
	h->phase = NET_DHCP_SELECTING;
	h->xid = 0x1234abcd;
	len = mk_dhcp(st_frame, h->xid + 1, 2, opts, sizeof(opts));
	feed(n, st_frame, len);
	st_check(!h->got_offer, "dhcp: an offer for another xid: ignored");
	len = mk_dhcp(st_frame, h->xid, 2, bad_opts, sizeof(bad_opts));
	bad = n->rx_bad;
	feed(n, st_frame, len);
	st_check(!h->got_offer && n->rx_bad == bad + 1,
		 "dhcp: an option running past the end: dropped");
	len = mk_dhcp(st_frame, h->xid, 2, opts, sizeof(opts));
	feed(n, st_frame, len);
	st_check(h->got_offer && h->offer_ip == NET_IP4(10, 1, 0, 50) &&
			 h->server_id == st_peer,
		 "dhcp: offer taken (address, server id)");
	h->phase = NET_DHCP_REQUESTING;
	len = mk_dhcp(st_frame, h->xid, 6, other, sizeof(other));
	feed(n, st_frame, len);
	st_check(!h->got_nak, "dhcp: a NAK from another server: ignored");
	len = mk_dhcp(st_frame, h->xid, 5, opts, sizeof(opts));
	feed(n, st_frame, len);
	st_check(h->got_ack && h->mask == 0xffff0000u && h->router == st_peer &&
			 h->lease_s == 256,
		 "dhcp: ack read (netmask, router, lease)");
	h->phase = NET_DHCP_IDLE;
	n->ip = ip;
}

/* Check the stack against crafted frames, then PASS or FAIL. */
static __noreturn void selftest(void)
{
	struct net *n = &net;

	st_nif.kind = "fake";
	net_copy(st_nif.mac, st_mac, NET_ALEN);
	st_nif.rx = fk_rx;
	st_nif.rx_done = fk_rx_done;
	st_nif.tx_buf = fk_tx_buf;
	st_nif.tx = fk_tx;
	if (net_init(n, &st_nif))
		guest_fail("out of memory");
	net_set_addr(n, st_ip, 24, 0);
	if (net_udp_bind(n, ST_PORT, udp_echo, NULL))
		guest_fail("cannot bind");
	st_parsers();
	st_arp(n);
	st_udp(n);
	st_icmp(n);
	st_tcp(n);
	st_dhcp(n);
	printf("net-echo: selftest: %u checks, %u failed\n", st_n, st_failed);
	if (st_failed)
		guest_fail("%u of %u selftest checks failed", st_failed, st_n);
	guest_pass();
}

void guest_main(void)
{
	uint16_t udp_port = get_port("udp"), tcp_port = get_port("tcp");
	bool verbose = cmdline_has_word("verbose");
	uint64_t timeout = DEFAULT_TIMEOUT;
	struct netif *nif;
	uint32_t start;
	char m[18];
	int rc;

	if (cmdline_has_word("selftest"))
		selftest();
	rc = cmdline_get_u64("timeout", &timeout);
	if (rc == -GUEST_EINVAL || timeout == 0 || timeout > 86400)
		guest_fail("bad timeout= (want 1-86400 seconds)");
	nif = pick_nic(verbose);
	printf("net-echo: %s at %02x:%02x.%u, mac %s\n", nif->kind, nif->bus,
	       nif->dev, nif->fn, net_fmt_mac(m, nif->mac));
	if (net_init(&net, nif))
		guest_fail("out of memory");
	net.verbose = true;
	start = net.now;
	configure(&net, (unsigned int)timeout);
	if (udp_port && net_udp_bind(&net, udp_port, udp_echo, NULL))
		guest_fail("cannot bind udp=%u", udp_port);
	if (tcp_port && net_tcp_listen(&net, tcp_port, &tcp_ops, NULL))
		guest_fail("cannot listen on tcp=%u", tcp_port);
	send_hello(&net, udp_port);
	printf("net-echo: ready (udp %u, tcp %u, timeout %lus)\n", udp_port,
	       tcp_port, timeout);
	while (!quit) {
		rc = net_poll(&net);
		if (rc < 0)
			guest_fail("%s: receive: %s (%d)", nif->kind,
				   err_name(rc), rc);
		if (net.now - start >= timeout)
			guest_fail("timeout after %lus (%u udp requests, %u "
				   "tcp connections served)",
				   timeout, udp_served, tcp_served);
	}
	printf("net-echo: %u udp requests, %u tcp connections; frames "
	       "rx %lu (ignored %lu, bad %lu, dropped by the card's driver "
	       "%lu), tx %lu (dropped %lu)\n",
	       udp_served, tcp_served, net.rx_ok, net.rx_ignored, net.rx_bad,
	       nif->rx_errors, net.tx_ok, net.tx_dropped);
	guest_pass();
}
