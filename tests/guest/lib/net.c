/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A tiny IPv4 stack for the test guests (see net.h): Ethernet, ARP, IPv4
 * (no fragments, no options sent), ICMP echo replies, UDP, a DHCP client
 * (RFC 2131/2132: DISCOVER, OFFER, REQUEST, ACK/NAK) and a minimal TCP
 * server (RFC 793 subset: passive open, in-order data, cumulative ACKs,
 * go-back-N retransmission on a seconds timer, passive close, RST for
 * segments nobody listens to).
 *
 * Ring-0 code is emulated on the CI machines (about 1 us an instruction),
 * so frames are handled in place in the driver's buffers, copies are one
 * rep movsb, and the only per-byte loops are the checksums.
 *
 * Every header field of a received frame is checked before use; a bad
 * frame is counted in rx_bad and dropped, one we do not handle in
 * rx_ignored.
 *
 * State: the caller's struct net.  BSP only, ring 0, no locks.
 */
#include "net.h"

#define ETH_DST 0
#define ETH_SRC 6
#define ETH_TYPE 12
#define IP_HLEN 20
#define UDP_HLEN 8
#define TCP_HLEN 20
#define ICMP_HLEN 8
#define ARP_LEN 28
#define IP_MAX_PAYLOAD (NET_FRAME_MAX - NET_ETH_HLEN - IP_HLEN)
#define BCAST_IP 0xffffffffu

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_RTO_S 2 /* first retransmission after 1-2 RTC seconds */
#define TCP_MSS_MIN 64

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_FIXED 236 /* BOOTP header up to the magic cookie */
#define DHCP_MAGIC 0x63825363u
#define DHCP_LEN 300 /* the classic BOOTP minimum */
#define DHCP_DISCOVER 1
#define DHCP_OFFER 2
#define DHCP_REQUEST 3
#define DHCP_ACK 5
#define DHCP_NAK 6
#define DHCP_OPT_PAD 0
#define DHCP_OPT_MASK 1
#define DHCP_OPT_ROUTER 3
#define DHCP_OPT_REQ_IP 50
#define DHCP_OPT_LEASE 51
#define DHCP_OPT_TYPE 53
#define DHCP_OPT_SERVER 54
#define DHCP_OPT_PARAMS 55
#define DHCP_OPT_END 255

static const uint8_t bcast_mac[NET_ALEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---- helpers ------------------------------------------------------------ */

static bool mac_eq(const uint8_t *a, const uint8_t *b)
{
	return !memcmp(a, b, NET_ALEN);
}

/* Sequence-number comparisons (RFC 793 modulo 2^32). */
static bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

static bool seq_le(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}

uint32_t net_csum_add(uint32_t sum, const void *p, uint32_t len)
{
	const uint8_t *b = p;

	/* at most 2^16 bytes a call: the sum cannot overflow 32 bits */
	for (; len > 1; len -= 2, b += 2)
		sum += (uint32_t)(b[0] << 8 | b[1]);
	if (len)
		sum += (uint32_t)b[0] << 8;
	return sum;
}

uint16_t net_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t net_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto,
			 uint32_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) +
	       proto + len;
}

char *net_fmt_ip(char *buf, uint32_t ip)
{
	snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255,
		 (ip >> 8) & 255, ip & 255);
	return buf;
}

char *net_fmt_mac(char *buf, const uint8_t *mac)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1],
		 mac[2], mac[3], mac[4], mac[5]);
	return buf;
}

int net_parse_ip(const char *s, size_t len, uint32_t *ip)
{
	uint32_t v = 0;
	uint64_t part;
	size_t i = 0, start;
	unsigned int k;

	for (k = 0; k < 4; k++) {
		start = i;
		while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			i++;
		if (i == start || parse_u64(s + start, i - start, &part) ||
		    part > 255)
			return -GUEST_EINVAL;
		v = v << 8 | (uint32_t)part;
		if (k < 3) {
			if (i >= len || s[i] != '.')
				return -GUEST_EINVAL;
			i++;
		}
	}
	if (i != len)
		return -GUEST_EINVAL;
	*ip = v;
	return 0;
}

int net_parse_cidr(const char *s, uint32_t *ip, unsigned int *prefix)
{
	size_t len = strlen(s), i;
	uint64_t p;

	for (i = 0; i < len && s[i] != '/'; i++)
		;
	if (net_parse_ip(s, i, ip))
		return -GUEST_EINVAL;
	if (i == len)
		return 0;
	if (i + 1 == len || parse_u64(s + i + 1, len - i - 1, &p) || p < 1 ||
	    p > 32)
		return -GUEST_EINVAL;
	*prefix = (unsigned int)p;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_parse_mac(const char *s, uint8_t *mac)
{
	unsigned int k;
	int hi, lo;

	if (strlen(s) != 17)
		return -GUEST_EINVAL;
	for (k = 0; k < NET_ALEN; k++, s += 3) {
		hi = hexval(s[0]);
		lo = hexval(s[1]);
		if (hi < 0 || lo < 0 || (k < 5 && s[2] != ':'))
			return -GUEST_EINVAL;
		mac[k] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- set-up and the clock ------------------------------------------------ */

int net_init(struct net *n, struct netif *nif)
{
	uint8_t *bufs;
	unsigned int i;

	mem_clear(n, sizeof(*n));
	n->nif = nif;
	n->ip_id = (uint16_t)rdtsc();
	n->rtc_sec = cmos_read(0);
	bufs = dma_alloc((uint64_t)NET_TCP_CONNS * NET_TCP_SNDBUF, 64);
	if (!bufs)
		return -GUEST_ENOSPC;
	for (i = 0; i < NET_TCP_CONNS; i++)
		n->tcp[i].sndbuf = bufs + i * NET_TCP_SNDBUF;
	return 0;
}

void net_set_addr(struct net *n, uint32_t ip, unsigned int prefix, uint32_t gw)
{
	n->ip = ip;
	n->mask = prefix >= 32	? 0xffffffffu
		  : prefix == 0 ? 0
				: ~(0xffffffffu >> prefix);
	n->gw = gw;
}

static void tcp_timers(struct net *n);

/* Count RTC seconds; without an RTC, about 20000 polls make a second. */
static void clock_step(struct net *n)
{
	uint8_t sec;

	if (++n->polls % NET_CLOCK_POLLS)
		return;
	sec = cmos_read(0);
	if (sec == 0xff) {
		if (n->polls % 20032 == 0) {
			n->now++;
			tcp_timers(n);
		}
		return;
	}
	if (sec != n->rtc_sec) {
		n->rtc_sec = sec;
		n->now++;
		tcp_timers(n);
	}
}

/* ---- output -------------------------------------------------------------- */

/*
 * A transmit buffer with the Ethernet header for dmac/type written, or
 * NULL if the ring stays full (the device does not complete anything).
 */
static uint8_t *eth_start(struct net *n, const uint8_t *dmac, uint16_t type)
{
	struct netif *nif = n->nif;
	unsigned int tries;
	uint8_t *f = NULL;

	for (tries = 0; tries < 100000 && !f; tries++) {
		f = nif->tx_buf(nif);
		if (!f)
			cpu_relax();
	}
	if (!f) {
		n->tx_dropped++;
		return NULL;
	}
	net_copy(f + ETH_DST, dmac, NET_ALEN);
	net_copy(f + ETH_SRC, nif->mac, NET_ALEN);
	net_put16(f + ETH_TYPE, type);
	return f;
}

/* Send the frame of the last eth_start() with len bytes after the
 * Ethernet header (padded to the minimum frame). */
static int eth_send(struct net *n, uint8_t *f, uint32_t len)
{
	int rc;

	len += NET_ETH_HLEN;
	if (len < NET_ETH_MIN) {
		mem_clear(f + len, NET_ETH_MIN - len);
		len = NET_ETH_MIN;
	}
	rc = n->nif->tx(n->nif, len);
	if (rc) {
		n->tx_dropped++;
		return rc;
	}
	n->tx_ok++;
	return 0;
}

/* Fill the IPv4 header at f + 14 for plen bytes of payload and send. */
static int ip_send(struct net *n, uint8_t *f, uint8_t proto, uint32_t src,
		   uint32_t dst, uint32_t plen)
{
	uint8_t *ip = f + NET_ETH_HLEN;

	ip[0] = 0x45;
	ip[1] = 0;
	net_put16(ip + 2, (uint16_t)(IP_HLEN + plen));
	net_put16(ip + 4, n->ip_id++);
	net_put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	net_put16(ip + 10, 0);
	net_put32(ip + 12, src);
	net_put32(ip + 16, dst);
	net_put16(ip + 10, net_csum_fold(net_csum_add(0, ip, IP_HLEN)));
	return eth_send(n, f, IP_HLEN + plen);
}

static int udp_send_mac(struct net *n, const uint8_t *dmac, uint32_t src,
			uint32_t dst, uint16_t sport, uint16_t dport,
			const void *data, uint32_t len)
{
	uint8_t *f, *u;
	uint32_t sum;
	uint16_t c;

	if (len > IP_MAX_PAYLOAD - UDP_HLEN)
		return -GUEST_E2BIG;
	f = eth_start(n, dmac, NET_ETH_IP);
	if (!f)
		return -GUEST_ENOSPC;
	u = f + NET_ETH_HLEN + IP_HLEN;
	net_put16(u, sport);
	net_put16(u + 2, dport);
	net_put16(u + 4, (uint16_t)(UDP_HLEN + len));
	net_put16(u + 6, 0);
	net_copy(u + UDP_HLEN, data, len);
	sum = net_csum_pseudo(src, dst, NET_IP_UDP, UDP_HLEN + len);
	c = net_csum_fold(net_csum_add(sum, u, UDP_HLEN + len));
	net_put16(u + 6, c ? c : 0xffff);
	return ip_send(n, f, NET_IP_UDP, src, dst, UDP_HLEN + len);
}

/* ---- ARP ------------------------------------------------------------------
 */

static struct net_arp_entry *arp_find(struct net *n, uint32_t ip)
{
	unsigned int i;

	for (i = 0; i < NET_ARP_SLOTS; i++)
		if (n->arp[i].ip == ip && ip)
			return &n->arp[i];
	return NULL;
}

static void arp_store(struct net *n, uint32_t ip, const uint8_t *mac,
		      bool create)
{
	struct net_arp_entry *e = arp_find(n, ip);

	if (!e) {
		if (!create)
			return;
		e = &n->arp[n->arp_next];
		n->arp_next = (n->arp_next + 1) % NET_ARP_SLOTS;
		e->ip = ip;
	}
	net_copy(e->mac, mac, NET_ALEN);
}

static int arp_send(struct net *n, uint16_t op, const uint8_t *dmac,
		    const uint8_t *tha, uint32_t tpa)
{
	uint8_t *f = eth_start(n, dmac, NET_ETH_ARP), *a;

	if (!f)
		return -GUEST_ENOSPC;
	a = f + NET_ETH_HLEN;
	net_put16(a, 1); /* Ethernet */
	net_put16(a + 2, NET_ETH_IP);
	a[4] = NET_ALEN;
	a[5] = 4;
	net_put16(a + 6, op);
	net_copy(a + 8, n->nif->mac, NET_ALEN);
	net_put32(a + 14, n->ip);
	net_copy(a + 18, tha, NET_ALEN);
	net_put32(a + 24, tpa);
	return eth_send(n, f, ARP_LEN);
}

static void arp_input(struct net *n, const uint8_t *a, uint32_t len)
{
	uint32_t spa, tpa;
	uint16_t op;
	char s[16];

	if (len < ARP_LEN || net_get16(a) != 1 ||
	    net_get16(a + 2) != NET_ETH_IP || a[4] != NET_ALEN || a[5] != 4) {
		n->rx_bad++;
		return;
	}
	op = net_get16(a + 6);
	spa = net_get32(a + 14);
	tpa = net_get32(a + 24);
	if (!n->ip || (op != 1 && op != 2)) {
		n->rx_ignored++;
		return;
	}
	/* RFC 826: update a known sender; learn it if we are the target */
	if (spa && !(a[8] & 1))
		arp_store(n, spa, a + 8, tpa == n->ip);
	if (op == 1 && tpa == n->ip) {
		if (arp_send(n, 2, a + 8, a + 8, spa) == 0) {
			n->arp_answered++;
			if (n->verbose)
				printf("net: arp: told %s we are here\n",
				       net_fmt_ip(s, spa));
		}
	}
	n->rx_ok++;
}

int net_arp_resolve(struct net *n, uint32_t ip, uint8_t *mac,
		    unsigned int timeout_s)
{
	static const uint8_t zero_mac[NET_ALEN];
	struct net_arp_entry *e;
	uint32_t hop = ip, start = n->now, sent_at = 0;
	bool sent = false;
	int rc;

	if (!n->ip)
		return -GUEST_ENOENT;
	if (ip == BCAST_IP ||
	    (n->mask != 0xffffffffu && (ip & ~n->mask) == ~n->mask &&
	     (ip & n->mask) == (n->ip & n->mask))) {
		net_copy(mac, bcast_mac, NET_ALEN);
		return 0;
	}
	if ((ip & n->mask) != (n->ip & n->mask)) {
		if (!n->gw)
			return -GUEST_ENOENT;
		hop = n->gw;
	}
	for (;;) {
		e = arp_find(n, hop);
		if (e) {
			net_copy(mac, e->mac, NET_ALEN);
			return 0;
		}
		if (n->now - start > timeout_s)
			return -GUEST_ETIMEDOUT;
		if (!sent || n->now != sent_at) {
			sent = true;
			sent_at = n->now;
			rc = arp_send(n, 1, bcast_mac, zero_mac, hop);
			if (rc)
				return rc;
		}
		rc = net_poll(n);
		if (rc < 0)
			return rc;
		/* the reply names us as target, so arp_input() stores it */
	}
}

/* ---- UDP and DHCP ----------------------------------------------------------
 */

int net_udp_bind(struct net *n, uint16_t port, net_udp_fn fn, void *arg)
{
	unsigned int i, fr = NET_UDP_BINDS;

	if (!port || !fn)
		return -GUEST_EINVAL;
	for (i = 0; i < NET_UDP_BINDS; i++) {
		if (n->udp[i].port == port)
			return -GUEST_EINVAL;
		if (!n->udp[i].port && fr == NET_UDP_BINDS)
			fr = i;
	}
	if (fr == NET_UDP_BINDS)
		return -GUEST_ENOSPC;
	n->udp[fr].port = port;
	n->udp[fr].fn = fn;
	n->udp[fr].arg = arg;
	return 0;
}

int net_udp_send(struct net *n, uint32_t dst, uint16_t sport, uint16_t dport,
		 const void *data, uint32_t len)
{
	uint8_t mac[NET_ALEN];
	int rc;

	if (len > IP_MAX_PAYLOAD - UDP_HLEN)
		return -GUEST_E2BIG;
	rc = net_arp_resolve(n, dst, mac, 3);
	if (rc)
		return rc;
	return udp_send_mac(n, mac, n->ip, dst, sport, dport, data, len);
}

int net_udp_reply(struct net *n, const struct net_rx_info *ri, const void *data,
		  uint32_t len)
{
	return udp_send_mac(n, ri->src_mac, n->ip, ri->src_ip, ri->dst_port,
			    ri->src_port, data, len);
}

/* Build and broadcast a DISCOVER or REQUEST. */
static int dhcp_send(struct net *n, uint8_t type)
{
	uint8_t *f, *u, *d, *o;
	uint32_t sum;
	uint16_t c;

	f = eth_start(n, bcast_mac, NET_ETH_IP);
	if (!f)
		return -GUEST_ENOSPC;
	u = f + NET_ETH_HLEN + IP_HLEN;
	d = u + UDP_HLEN;
	mem_clear(d, DHCP_LEN);
	d[0] = 1; /* BOOTREQUEST */
	d[1] = 1; /* Ethernet */
	d[2] = NET_ALEN;
	net_put32(d + 4, n->dhcp.xid);
	net_put16(d + 10, 0x8000); /* please broadcast the answer */
	net_copy(d + 28, n->nif->mac, NET_ALEN);
	net_put32(d + DHCP_FIXED, DHCP_MAGIC);
	o = d + DHCP_FIXED + 4;
	*o++ = DHCP_OPT_TYPE;
	*o++ = 1;
	*o++ = type;
	if (type == DHCP_REQUEST) {
		*o++ = DHCP_OPT_REQ_IP;
		*o++ = 4;
		net_put32(o, n->dhcp.offer_ip);
		o += 4;
		*o++ = DHCP_OPT_SERVER;
		*o++ = 4;
		net_put32(o, n->dhcp.server_id);
		o += 4;
	}
	*o++ = DHCP_OPT_PARAMS;
	*o++ = 2;
	*o++ = DHCP_OPT_MASK;
	*o++ = DHCP_OPT_ROUTER;
	*o = DHCP_OPT_END;
	net_put16(u, DHCP_CLIENT_PORT);
	net_put16(u + 2, DHCP_SERVER_PORT);
	net_put16(u + 4, UDP_HLEN + DHCP_LEN);
	net_put16(u + 6, 0);
	sum = net_csum_pseudo(0, BCAST_IP, NET_IP_UDP, UDP_HLEN + DHCP_LEN);
	c = net_csum_fold(net_csum_add(sum, u, UDP_HLEN + DHCP_LEN));
	net_put16(u + 6, c ? c : 0xffff);
	return ip_send(n, f, NET_IP_UDP, 0, BCAST_IP, UDP_HLEN + DHCP_LEN);
}

/* An answer from a DHCP server: check it is for us, read the options. */
static void dhcp_input(struct net *n, const uint8_t *d, uint32_t len)
{
	struct net_dhcp *h = &n->dhcp;
	uint32_t i, server = 0, mask = 0, router = 0, lease = 0;
	uint8_t type = 0, opt, olen;

	if (len < DHCP_FIXED + 4 || d[0] != 2 || d[1] != 1 ||
	    d[2] != NET_ALEN || net_get32(d + 4) != h->xid ||
	    !mac_eq(d + 28, n->nif->mac) ||
	    net_get32(d + DHCP_FIXED) != DHCP_MAGIC) {
		n->rx_ignored++;
		return;
	}
	for (i = DHCP_FIXED + 4; i < len;) {
		opt = d[i++];
		if (opt == DHCP_OPT_PAD)
			continue;
		if (opt == DHCP_OPT_END)
			break;
		if (i >= len) {
			n->rx_bad++;
			return; /* no length byte */
		}
		olen = d[i++];
		if (olen > len - i) {
			n->rx_bad++;
			return; /* an option runs past the datagram */
		}
		if (opt == DHCP_OPT_TYPE && olen == 1)
			type = d[i];
		else if (opt == DHCP_OPT_SERVER && olen == 4)
			server = net_get32(d + i);
		else if (opt == DHCP_OPT_MASK && olen == 4)
			mask = net_get32(d + i);
		else if (opt == DHCP_OPT_ROUTER && olen >= 4)
			router = net_get32(d + i);
		else if (opt == DHCP_OPT_LEASE && olen == 4)
			lease = net_get32(d + i);
		i += olen;
	}
	n->rx_ok++;
	if (h->phase == NET_DHCP_SELECTING && type == DHCP_OFFER &&
	    !h->got_offer) {
		h->offer_ip = net_get32(d + 16);
		h->server_id = server ? server : net_get32(d + 20);
		if (!h->offer_ip || h->offer_ip == BCAST_IP || !h->server_id)
			return;
		h->got_offer = true;
		return;
	}
	if (h->phase != NET_DHCP_REQUESTING ||
	    (server && server != h->server_id))
		return;
	if (type == DHCP_NAK) {
		h->got_nak = true;
	} else if (type == DHCP_ACK && net_get32(d + 16) == h->offer_ip) {
		h->mask = mask;
		h->router = router;
		h->lease_s = lease;
		h->got_ack = true;
	}
}

static unsigned int mask_prefix(uint32_t mask)
{
	unsigned int p = 0;

	while (p < 32 && (mask & (0x80000000u >> p)))
		p++;
	/* a mask with holes is not a prefix: fall back to /24 */
	if (p == 0 || (p < 32 && (mask << p)))
		return 24;
	return p;
}

int net_dhcp(struct net *n, unsigned int timeout_s)
{
	struct net_dhcp *h = &n->dhcp;
	uint32_t start = n->now, sent_at = 0;
	bool sent = false;
	int rc;

	mem_clear(h, sizeof(*h));
	h->xid = (uint32_t)rdtsc() ^ net_get32(n->nif->mac + 2);
	h->phase = NET_DHCP_SELECTING;
	n->ip = 0;
	for (;;) {
		if (n->now - start > timeout_s) {
			h->phase = NET_DHCP_IDLE;
			return -GUEST_ETIMEDOUT;
		}
		if (h->got_nak) {
			h->got_nak = h->got_offer = false;
			h->phase = NET_DHCP_SELECTING;
			sent = false;
		}
		if (h->phase == NET_DHCP_SELECTING && h->got_offer) {
			h->phase = NET_DHCP_REQUESTING;
			sent = false;
		}
		if (h->got_ack)
			break;
		if (!sent || n->now - sent_at >= 2) {
			sent = true;
			sent_at = n->now;
			rc = dhcp_send(n, h->phase == NET_DHCP_SELECTING
						  ? DHCP_DISCOVER
						  : DHCP_REQUEST);
			if (rc)
				return rc;
		}
		rc = net_poll(n);
		if (rc < 0)
			return rc;
	}
	h->phase = NET_DHCP_BOUND;
	net_set_addr(n, h->offer_ip, mask_prefix(h->mask), h->router);
	return 0;
}

static void udp_input(struct net *n, const uint8_t *f, uint32_t src,
		      uint32_t dst, const uint8_t *u, uint32_t len)
{
	struct net_rx_info ri;
	uint32_t ulen, i;

	if (len < UDP_HLEN) {
		n->rx_bad++;
		return;
	}
	ulen = net_get16(u + 4);
	if (ulen < UDP_HLEN || ulen > len ||
	    (net_get16(u + 6) &&
	     net_csum_fold(net_csum_add(
		     net_csum_pseudo(src, dst, NET_IP_UDP, ulen), u, ulen)))) {
		n->rx_bad++;
		return;
	}
	ri.src_ip = src;
	ri.dst_ip = dst;
	ri.src_port = net_get16(u);
	ri.dst_port = net_get16(u + 2);
	net_copy(ri.src_mac, f + ETH_SRC, NET_ALEN);
	if (ri.dst_port == DHCP_CLIENT_PORT &&
	    ri.src_port == DHCP_SERVER_PORT &&
	    (n->dhcp.phase == NET_DHCP_SELECTING ||
	     n->dhcp.phase == NET_DHCP_REQUESTING)) {
		dhcp_input(n, u + UDP_HLEN, ulen - UDP_HLEN);
		return;
	}
	if (!n->ip) {
		n->rx_ignored++;
		return;
	}
	for (i = 0; i < NET_UDP_BINDS; i++) {
		if (n->udp[i].port && n->udp[i].port == ri.dst_port) {
			n->rx_ok++;
			n->udp[i].fn(n, &ri, u + UDP_HLEN, ulen - UDP_HLEN,
				     n->udp[i].arg);
			return;
		}
	}
	n->rx_ignored++;
}

/* ---- ICMP ------------------------------------------------------------------
 */

static void icmp_input(struct net *n, const uint8_t *f, uint32_t src,
		       const uint8_t *p, uint32_t len)
{
	uint8_t *o, *ic;
	char s[16];

	if (len < ICMP_HLEN || net_csum_fold(net_csum_add(0, p, len))) {
		n->rx_bad++;
		return;
	}
	if (p[0] != 8 || p[1] != 0 || len > IP_MAX_PAYLOAD) {
		n->rx_ignored++; /* echo requests that fit a frame only */
		return;
	}
	n->rx_ok++;
	o = eth_start(n, f + ETH_SRC, NET_ETH_IP);
	if (!o)
		return;
	ic = o + NET_ETH_HLEN + IP_HLEN;
	net_copy(ic, p, len);
	ic[0] = 0; /* echo reply */
	net_put16(ic + 2, 0);
	net_put16(ic + 2, net_csum_fold(net_csum_add(0, ic, len)));
	if (ip_send(n, o, NET_IP_ICMP, n->ip, src, len) == 0) {
		n->icmp_answered++;
		if (n->verbose)
			printf("net: icmp: echo reply to %s, %u bytes\n",
			       net_fmt_ip(s, src), len - ICMP_HLEN);
	}
}

/* ---- TCP --------------------------------------------------------------------
 */

int net_tcp_listen(struct net *n, uint16_t port, const struct net_tcp_ops *ops,
		   void *arg)
{
	if (!port || n->tcp_port || !ops)
		return -GUEST_EINVAL;
	n->tcp_port = port;
	n->tcp_ops = ops;
	n->tcp_arg = arg;
	return 0;
}

static uint32_t tcp_wnd(const struct net_tcp_conn *c)
{
	uint32_t w = NET_TCP_SNDBUF - c->snd_len;

	return w > 0xffff ? 0xffff : w;
}

/* Fill a TCP header and dlen bytes of c's ring from offset off, send. */
static int tcp_output(struct net *n, struct net_tcp_conn *c, uint32_t seq,
		      uint8_t flags, uint32_t off, uint32_t dlen)
{
	uint32_t hlen = flags & TCP_SYN ? TCP_HLEN + 4 : TCP_HLEN, first;
	uint8_t *f, *t;
	uint32_t sum;

	f = eth_start(n, c->peer_mac, NET_ETH_IP);
	if (!f)
		return -GUEST_ENOSPC;
	t = f + NET_ETH_HLEN + IP_HLEN;
	net_put16(t, c->local_port);
	net_put16(t + 2, c->peer_port);
	net_put32(t + 4, seq);
	net_put32(t + 8, c->rcv_nxt);
	t[12] = (uint8_t)(hlen / 4 << 4);
	t[13] = flags | TCP_ACK;
	c->last_wnd = tcp_wnd(c);
	net_put16(t + 14, (uint16_t)c->last_wnd);
	net_put32(t + 16, 0); /* checksum, urgent pointer */
	if (flags & TCP_SYN) {
		t[20] = 2; /* MSS */
		t[21] = 4;
		net_put16(t + 22, NET_TCP_MSS);
	}
	if (dlen) {
		off = (c->snd_head + off) % NET_TCP_SNDBUF;
		first = NET_TCP_SNDBUF - off;
		if (first > dlen)
			first = dlen;
		net_copy(t + hlen, c->sndbuf + off, first);
		net_copy(t + hlen + first, c->sndbuf, dlen - first);
	}
	sum = net_csum_pseudo(n->ip, c->peer_ip, NET_IP_TCP, hlen + dlen);
	net_put16(t + 16, net_csum_fold(net_csum_add(sum, t, hlen + dlen)));
	c->ack_due = false;
	return ip_send(n, f, NET_IP_TCP, n->ip, c->peer_ip, hlen + dlen);
}

/* Send the buffered data from byte off of the ring (as seq snd_una + off)
 * in MSS-sized segments, with the FIN after the last byte if it is due. */
static void tcp_push(struct net *n, struct net_tcp_conn *c, uint32_t off)
{
	uint32_t seg, seq;
	uint8_t flags;

	do {
		seg = c->snd_len - off;
		if (seg > c->peer_mss)
			seg = c->peer_mss;
		seq = c->snd_una + off;
		flags = seg ? TCP_PSH : 0;
		if (c->fin_sent && off + seg == c->snd_len)
			flags |= TCP_FIN;
		if (!seg && !(flags & TCP_FIN))
			return;
		if (tcp_output(n, c, seq, flags, off, seg))
			return;
		off += seg;
	} while (off < c->snd_len);
}

/* Retransmit after 2, 4, then every 8 seconds. */
static void tcp_arm(struct net *n, struct net_tcp_conn *c)
{
	uint32_t rto = TCP_RTO_S << (c->retries < 2 ? c->retries : 2);

	c->rto_at = n->now + rto;
}

static void tcp_free(struct net *n, struct net_tcp_conn *c, const char *why)
{
	c->state = NET_TCP_FREE;
	if (n->tcp_ops->closed)
		n->tcp_ops->closed(n, c, why, n->tcp_arg);
}

static void tcp_rst(struct net *n, const uint8_t *dmac, uint32_t dst,
		    uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		    uint8_t flags)
{
	uint8_t *f = eth_start(n, dmac, NET_ETH_IP), *t;
	uint32_t sum;

	if (!f)
		return;
	t = f + NET_ETH_HLEN + IP_HLEN;
	net_put16(t, sport);
	net_put16(t + 2, dport);
	net_put32(t + 4, seq);
	net_put32(t + 8, ack);
	t[12] = TCP_HLEN / 4 << 4;
	t[13] = flags;
	net_put32(t + 14, 0); /* window, checksum */
	net_put16(t + 18, 0);
	sum = net_csum_pseudo(n->ip, dst, NET_IP_TCP, TCP_HLEN);
	net_put16(t + 16, net_csum_fold(net_csum_add(sum, t, TCP_HLEN)));
	if (ip_send(n, f, NET_IP_TCP, n->ip, dst, TCP_HLEN) == 0)
		n->tcp_resets++;
}

int net_tcp_send(struct net *n, struct net_tcp_conn *c, const void *data,
		 uint32_t len)
{
	uint32_t at, first, old = 0;

	if (c->state != NET_TCP_ESTABLISHED || c->fin_sent)
		return -GUEST_EINVAL;
	if (len > NET_TCP_SNDBUF - c->snd_len)
		return -GUEST_ENOSPC;
	if (!len)
		return 0;
	at = (c->snd_head + c->snd_len) % NET_TCP_SNDBUF;
	first = NET_TCP_SNDBUF - at;
	if (first > len)
		first = len;
	net_copy(c->sndbuf + at, data, first);
	net_copy(c->sndbuf, (const uint8_t *)data + first, len - first);
	old = c->snd_len;
	if (c->snd_una == c->snd_nxt) {
		c->retries = 0;
		tcp_arm(n, c);
	}
	c->snd_len += len;
	c->snd_nxt += len;
	c->tx_bytes += len;
	tcp_push(n, c, old);
	return 0;
}

/* Retransmit what is outstanding from snd_una (go-back-N). */
static void tcp_retransmit(struct net *n, struct net_tcp_conn *c)
{
	if (c->state == NET_TCP_SYN_RCVD)
		tcp_output(n, c, c->iss, TCP_SYN, 0, 0);
	else
		tcp_push(n, c, 0);
}

static void tcp_timers(struct net *n)
{
	struct net_tcp_conn *c;
	unsigned int i;

	for (i = 0; i < NET_TCP_CONNS; i++) {
		c = &n->tcp[i];
		if (c->state == NET_TCP_FREE || c->snd_una == c->snd_nxt ||
		    seq_lt(n->now, c->rto_at))
			continue;
		if (++c->retries > NET_TCP_RETRIES) {
			tcp_rst(n, c->peer_mac, c->peer_ip, c->local_port,
				c->peer_port, c->snd_nxt, c->rcv_nxt,
				TCP_RST | TCP_ACK);
			tcp_free(n, c, "timed out");
			continue;
		}
		tcp_retransmit(n, c);
		tcp_arm(n, c);
	}
}

static struct net_tcp_conn *tcp_lookup(struct net *n, uint32_t src,
				       uint16_t sport, uint16_t dport)
{
	struct net_tcp_conn *c;
	unsigned int i;

	for (i = 0; i < NET_TCP_CONNS; i++) {
		c = &n->tcp[i];
		if (c->state != NET_TCP_FREE && c->peer_ip == src &&
		    c->peer_port == sport && c->local_port == dport)
			return c;
	}
	return NULL;
}

/* The MSS option of a SYN (536 without one, RFC 1122). */
static uint16_t tcp_syn_mss(const uint8_t *t, uint32_t hlen)
{
	uint32_t i = TCP_HLEN;
	uint16_t mss = 536;
	uint8_t kind, len;

	while (i < hlen) {
		kind = t[i];
		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= hlen || (len = t[i + 1]) < 2 || len > hlen - i)
			break;
		if (kind == 2 && len == 4)
			mss = net_get16(t + i + 2);
		i += len;
	}
	if (mss > NET_TCP_MSS)
		mss = NET_TCP_MSS;
	if (mss < TCP_MSS_MIN)
		mss = TCP_MSS_MIN;
	return mss;
}

static void tcp_accept(struct net *n, const uint8_t *f, uint32_t src,
		       const uint8_t *t, uint32_t hlen)
{
	struct net_tcp_conn *c = NULL;
	unsigned int i;

	for (i = 0; i < NET_TCP_CONNS && !c; i++)
		if (n->tcp[i].state == NET_TCP_FREE)
			c = &n->tcp[i];
	if (!c) {
		n->rx_ignored++; /* full: the peer tries again */
		return;
	}
	c->state = NET_TCP_SYN_RCVD;
	net_copy(c->peer_mac, f + ETH_SRC, NET_ALEN);
	c->peer_ip = src;
	c->peer_port = net_get16(t);
	c->local_port = net_get16(t + 2);
	c->peer_mss = tcp_syn_mss(t, hlen);
	c->rcv_nxt = net_get32(t + 4) + 1;
	c->iss = (uint32_t)rdtsc();
	c->snd_una = c->iss;
	c->snd_nxt = c->iss + 1;
	c->fin_sent = false;
	c->snd_head = c->snd_len = 0;
	c->retries = 0;
	c->ack_due = false;
	c->rx_bytes = c->tx_bytes = 0;
	tcp_arm(n, c);
	tcp_output(n, c, c->iss, TCP_SYN, 0, 0);
}

/* The peer acknowledged up to ack: release data, advance the state. */
static bool tcp_ack(struct net *n, struct net_tcp_conn *c, uint32_t ack)
{
	uint32_t acked, old_wnd = c->last_wnd;

	if (!seq_lt(c->snd_una, ack) || seq_lt(c->snd_nxt, ack))
		return true; /* old or duplicate (or beyond what we sent) */
	acked = ack - c->snd_una;
	c->snd_una = ack;
	if (c->state == NET_TCP_SYN_RCVD) {
		acked--;
		c->state = NET_TCP_ESTABLISHED;
		if (n->tcp_ops->accepted)
			n->tcp_ops->accepted(n, c, n->tcp_arg);
	}
	if (c->fin_sent && ack == c->snd_nxt) {
		acked--;
		if (acked > c->snd_len)
			acked = c->snd_len;
		c->snd_len -= acked;
		tcp_free(n, c, "closed");
		return false;
	}
	if (acked > c->snd_len)
		acked = c->snd_len;
	c->snd_head = (c->snd_head + acked) % NET_TCP_SNDBUF;
	c->snd_len -= acked;
	c->retries = 0;
	tcp_arm(n, c);
	/* tell the peer when a nearly closed window opens again */
	if (old_wnd < c->peer_mss && tcp_wnd(c) >= c->peer_mss)
		c->ack_due = true;
	return true;
}

static void tcp_input(struct net *n, const uint8_t *f, uint32_t src,
		      uint32_t dst, const uint8_t *t, uint32_t len)
{
	struct net_tcp_conn *c;
	uint32_t hlen, dlen, seq, ack, skip;
	uint16_t sport, dport;
	uint8_t flags;
	char s[16];
	int rc;

	if (len < TCP_HLEN || (hlen = (uint32_t)(t[12] >> 4) * 4) < TCP_HLEN ||
	    hlen > len ||
	    net_csum_fold(net_csum_add(
		    net_csum_pseudo(src, dst, NET_IP_TCP, len), t, len))) {
		n->rx_bad++;
		return;
	}
	sport = net_get16(t);
	dport = net_get16(t + 2);
	seq = net_get32(t + 4);
	ack = net_get32(t + 8);
	flags = t[13];
	dlen = len - hlen;
	c = tcp_lookup(n, src, sport, dport);
	if (!c) {
		if (flags & TCP_RST) {
			n->rx_ignored++;
			return;
		}
		if (dport == n->tcp_port && n->tcp_port &&
		    (flags & (TCP_SYN | TCP_ACK | TCP_FIN)) == TCP_SYN) {
			n->rx_ok++;
			tcp_accept(n, f, src, t, hlen);
			return;
		}
		n->rx_ignored++;
		if (n->verbose)
			printf("net: tcp: reset to %s:%u (port %u)\n",
			       net_fmt_ip(s, src), sport, dport);
		if (flags & TCP_ACK)
			tcp_rst(n, f + ETH_SRC, src, dport, sport, ack, 0,
				TCP_RST);
		else
			tcp_rst(n, f + ETH_SRC, src, dport, sport, 0,
				seq + dlen + !!(flags & TCP_SYN) +
					!!(flags & TCP_FIN),
				TCP_RST | TCP_ACK);
		return;
	}
	n->rx_ok++;
	if (flags & TCP_RST) {
		/* accept a reset anywhere in our window (RFC 5961 lite) */
		if (seq_le(c->rcv_nxt, seq) &&
		    seq_lt(seq, c->rcv_nxt + c->last_wnd + 1))
			tcp_free(n, c, "reset by peer");
		return;
	}
	if (flags & TCP_SYN) {
		/* a repeated SYN: answer again (SYN-ACK or plain ACK) */
		if (c->state == NET_TCP_SYN_RCVD && seq + 1 == c->rcv_nxt)
			tcp_output(n, c, c->iss, TCP_SYN, 0, 0);
		else
			c->ack_due = true;
		goto out;
	}
	if (!(flags & TCP_ACK))
		return; /* every segment after the SYN carries an ACK */
	if (!tcp_ack(n, c, ack))
		return; /* freed */
	if (c->state == NET_TCP_SYN_RCVD)
		return; /* the ACK did not complete the handshake */
	if (!dlen && !(flags & TCP_FIN))
		goto out;
	/* trim what we already have (a retransmission overlapping) */
	if (seq_lt(seq, c->rcv_nxt)) {
		skip = c->rcv_nxt - seq;
		if (skip > dlen || (skip == dlen && !(flags & TCP_FIN))) {
			c->ack_due = true; /* entirely old */
			goto out;
		}
		seq += skip;
		dlen -= skip;
		hlen += skip;
	}
	if (seq != c->rcv_nxt) {
		c->ack_due = true; /* out of order: ask for the gap */
		goto out;
	}
	if (dlen) {
		if (c->state != NET_TCP_ESTABLISHED) {
			c->ack_due = true; /* data after the peer's FIN */
			goto out;
		}
		/* taken unless the handler refuses: what it sends in answer
		 * then acknowledges the data already */
		c->rcv_nxt += dlen;
		c->ack_due = true;
		rc = n->tcp_ops->data ? n->tcp_ops->data(n, c, t + hlen, dlen,
							 n->tcp_arg)
				      : 0;
		if (c->state == NET_TCP_FREE)
			return;
		if (rc) {
			c->rcv_nxt -= dlen;
			c->ack_due = true;
			goto out;
		}
		c->rx_bytes += dlen;
	}
	if ((flags & TCP_FIN) && c->state == NET_TCP_ESTABLISHED) {
		/* the peer is done: close our side after our data */
		c->rcv_nxt++;
		c->state = NET_TCP_LAST_ACK;
		c->fin_sent = true;
		if (c->snd_una == c->snd_nxt) {
			c->retries = 0;
			tcp_arm(n, c);
		}
		c->snd_nxt++;
		tcp_output(n, c, c->snd_nxt - 1, TCP_FIN, 0, 0);
	} else if (flags & TCP_FIN) {
		c->ack_due = true; /* a repeated FIN */
	}
out:
	if (c->ack_due && c->state != NET_TCP_FREE)
		tcp_output(n, c, c->snd_nxt, 0, 0, 0);
}

/* ---- IPv4 and Ethernet input ----------------------------------------------
 */

static bool ip_for_us(const struct net *n, uint32_t dst)
{
	if (dst == BCAST_IP)
		return true;
	if (!n->ip)
		return false;
	return dst == n->ip ||
	       (n->mask != 0xffffffffu && (dst & ~n->mask) == ~n->mask &&
		(dst & n->mask) == (n->ip & n->mask));
}

static void ip_input(struct net *n, const uint8_t *f, const uint8_t *ip,
		     uint32_t len)
{
	uint32_t hlen, total, src, dst;
	uint8_t proto;

	if (len < IP_HLEN || ip[0] >> 4 != 4 ||
	    (hlen = (uint32_t)(ip[0] & 15) * 4) < IP_HLEN || hlen > len ||
	    (total = net_get16(ip + 2)) < hlen || total > len ||
	    net_csum_fold(net_csum_add(0, ip, hlen))) {
		n->rx_bad++;
		return;
	}
	if (net_get16(ip + 6) & 0x3fff) { /* MF or an offset: a fragment */
		n->rx_ignored++;
		return;
	}
	proto = ip[9];
	src = net_get32(ip + 12);
	dst = net_get32(ip + 16);
	/* while DHCP runs we have no address: take UDP to anyone */
	if (!ip_for_us(n, dst) && !(proto == NET_IP_UDP && !n->ip)) {
		n->rx_ignored++;
		return;
	}
	switch (proto) {
	case NET_IP_UDP:
		udp_input(n, f, src, dst, ip + hlen, total - hlen);
		break;
	case NET_IP_ICMP:
		if (dst == n->ip && n->ip)
			icmp_input(n, f, src, ip + hlen, total - hlen);
		else
			n->rx_ignored++;
		break;
	case NET_IP_TCP:
		if (dst == n->ip && n->ip && src != BCAST_IP)
			tcp_input(n, f, src, dst, ip + hlen, total - hlen);
		else
			n->rx_ignored++;
		break;
	default:
		n->rx_ignored++;
	}
}

static void eth_input(struct net *n, const uint8_t *f, uint32_t len)
{
	uint16_t type;

	if (len < NET_ETH_HLEN) {
		n->rx_bad++;
		return;
	}
	if (!mac_eq(f + ETH_DST, n->nif->mac) &&
	    !mac_eq(f + ETH_DST, bcast_mac)) {
		n->rx_ignored++;
		return;
	}
	type = net_get16(f + ETH_TYPE);
	if (type == NET_ETH_ARP)
		arp_input(n, f + NET_ETH_HLEN, len - NET_ETH_HLEN);
	else if (type == NET_ETH_IP)
		ip_input(n, f, f + NET_ETH_HLEN, len - NET_ETH_HLEN);
	else
		n->rx_ignored++;
}

int net_poll(struct net *n)
{
	struct netif *nif = n->nif;
	const uint8_t *f;
	int len;

	len = nif->rx(nif, &f);
	if (len > 0) {
		eth_input(n, f, (uint32_t)len);
		nif->rx_done(nif);
	} else if (len == 0) {
		cpu_relax();
	}
	clock_step(n);
	return len < 0 ? len : len > 0;
}
