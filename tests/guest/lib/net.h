/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A tiny IPv4 stack for the test guests (net.c), on top of a polled
 * network interface (struct netif, provided by vnet.c or e1000.c):
 * Ethernet, ARP (answers for our address, a small cache, resolution),
 * IPv4 without fragments, ICMP echo replies, UDP (bound ports, sending and
 * replying), a DHCP client (DISCOVER/OFFER/REQUEST/ACK) and a minimal TCP
 * server: one listening port, a few connections, in-order data only, a
 * go-back-N retransmission on a seconds timer, passive close (the server
 * closes its side as soon as the peer closes).
 *
 * Everything received is checked (lengths, checksums, header fields)
 * before it is used; a malformed frame is counted and dropped.  Time is
 * kept in RTC seconds, read every NET_CLOCK_POLLS polls.
 *
 * State: the caller's struct net (and its connections).  BSP only, ring 0
 * (the clock reads the RTC by port I/O), no locks.  Addresses and ports in
 * the API are in host byte order.
 */
#ifndef GUEST_NET_H
#define GUEST_NET_H

#include "guest.h"

#define NET_ALEN 6
#define NET_ETH_HLEN 14
#define NET_ETH_MIN 60	   /* shortest frame, FCS excluded */
#define NET_FRAME_MAX 1514 /* longest frame we build */
#define NET_ETH_IP 0x0800
#define NET_ETH_ARP 0x0806
#define NET_IP_ICMP 1
#define NET_IP_TCP 6
#define NET_IP_UDP 17
#define NET_ARP_SLOTS 8
#define NET_UDP_BINDS 4
#define NET_TCP_CONNS 4
#define NET_TCP_SNDBUF 8192 /* unacknowledged bytes per connection */
#define NET_TCP_MSS 1460
#define NET_TCP_RETRIES 6
#define NET_CLOCK_POLLS 64 /* polls between two RTC reads */

/*
 * A polled network interface.  A driver fills in the identity and the
 * four operations; net.c uses nothing else.  Frames are bare Ethernet
 * (no FCS) and stay in the driver's buffers: rx() lends one until
 * rx_done(), tx_buf() lends a transmit buffer of at least NET_FRAME_MAX
 * bytes that tx() then sends.
 */
struct netif {
	const char *kind; /* "virtio-net", "e1000" */
	uint8_t mac[NET_ALEN];
	uint8_t bus, dev, fn;
	void *drv; /* the driver's state */
	/* The next received frame: its length (*frame set, valid until
	 * rx_done), 0 if none is waiting, or -errno (device broke the
	 * protocol). */
	int (*rx)(struct netif *nif, const uint8_t **frame);
	/* Give the frame of the last rx() back to the device. */
	void (*rx_done)(struct netif *nif);
	/* A free transmit buffer (completed ones are reclaimed first), or
	 * NULL while the transmit ring is full. */
	uint8_t *(*tx_buf)(struct netif *nif);
	/* Send the first len bytes of the buffer of the last tx_buf().
	 * Returns 0 or -errno. */
	int (*tx)(struct netif *nif, uint32_t len);
	/* counters kept by the driver: frames handed out by rx(), sent by
	 * tx(), and dropped by the driver (errors, bad lengths, frames that
	 * span buffers) */
	uint64_t rx_frames, tx_frames, rx_errors;
};

/* Where a received UDP datagram came from (for handlers and replies). */
struct net_rx_info {
	uint8_t src_mac[NET_ALEN];
	uint32_t src_ip, dst_ip;
	uint16_t src_port, dst_port;
};

struct net;
struct net_tcp_conn;

/* A bound UDP port's handler: called from net_poll() with the payload. */
typedef void (*net_udp_fn)(struct net *n, const struct net_rx_info *ri,
			   const uint8_t *data, uint32_t len, void *arg);

/* The TCP server's callbacks, all called from net_poll(). */
struct net_tcp_ops {
	/* The three-way handshake completed. */
	void (*accepted)(struct net *n, struct net_tcp_conn *c, void *arg);
	/* In-order data arrived.  Return 0 to take it (it is acknowledged;
	 * a net_tcp_send() from here carries that ACK), or -GUEST_ENOSPC
	 * to refuse it, having sent nothing (the peer sends it again). */
	int (*data)(struct net *n, struct net_tcp_conn *c, const uint8_t *data,
		    uint32_t len, void *arg);
	/* The connection is gone: closed (both FINs acknowledged), reset by
	 * the peer, or given up after NET_TCP_RETRIES retransmissions. */
	void (*closed)(struct net *n, struct net_tcp_conn *c, const char *why,
		       void *arg);
};

enum net_tcp_state {
	NET_TCP_FREE,
	NET_TCP_SYN_RCVD,
	NET_TCP_ESTABLISHED,
	NET_TCP_LAST_ACK, /* the peer closed; our FIN is sent */
};

struct net_tcp_conn {
	enum net_tcp_state state;
	uint8_t peer_mac[NET_ALEN];
	uint32_t peer_ip;
	uint16_t peer_port, local_port;
	uint16_t peer_mss;
	uint32_t iss, snd_una, snd_nxt, rcv_nxt;
	bool fin_sent;
	uint8_t *sndbuf;	    /* ring of NET_TCP_SNDBUF bytes */
	uint32_t snd_head, snd_len; /* unacknowledged data in the ring */
	uint32_t last_wnd;	    /* the window we last advertised */
	uint32_t rto_at;	    /* clock second of the retransmission */
	unsigned int retries;
	bool ack_due;
	uint64_t rx_bytes, tx_bytes;
};

struct net_arp_entry {
	uint32_t ip; /* 0: free */
	uint8_t mac[NET_ALEN];
};

enum net_dhcp_phase {
	NET_DHCP_IDLE,
	NET_DHCP_SELECTING,
	NET_DHCP_REQUESTING,
	NET_DHCP_BOUND,
};

struct net_dhcp {
	enum net_dhcp_phase phase;
	uint32_t xid;
	uint32_t offer_ip, server_id, mask, router, lease_s;
	bool got_offer, got_ack, got_nak;
};

struct net {
	struct netif *nif;
	uint32_t ip, mask, gw; /* ip 0: no address yet */
	bool verbose;	       /* one line per ARP/ICMP/RST answered */
	uint16_t ip_id;
	/* the clock: seconds counted on the RTC since net_init() */
	uint32_t now;
	uint8_t rtc_sec;
	uint64_t polls;
	struct net_arp_entry arp[NET_ARP_SLOTS];
	unsigned int arp_next;
	struct {
		uint16_t port; /* 0: free */
		net_udp_fn fn;
		void *arg;
	} udp[NET_UDP_BINDS];
	uint16_t tcp_port; /* 0: no listener */
	const struct net_tcp_ops *tcp_ops;
	void *tcp_arg;
	struct net_tcp_conn tcp[NET_TCP_CONNS];
	struct net_dhcp dhcp;
	/* counters */
	uint64_t rx_ok, rx_ignored, rx_bad, tx_ok, tx_dropped;
	uint64_t arp_answered, icmp_answered, tcp_resets;
};

/* Build an IPv4 address from its four bytes. */
#define NET_IP4(a, b, c, d)                                                    \
	((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 |      \
	 (uint32_t)(d))

/*
 * Clear n and attach it to nif (no address yet).  Allocates the TCP send
 * buffers (dma_alloc).  Returns 0 or -GUEST_ENOSPC.
 */
int net_init(struct net *n, struct netif *nif);
/* Set our address, prefix length (1-32) and gateway (0: none). */
void net_set_addr(struct net *n, uint32_t ip, unsigned int prefix, uint32_t gw);
/*
 * Handle at most one received frame and advance the clock and the TCP
 * timers.  Returns 1 if a frame was handled, 0 if none was waiting, or
 * the driver's -errno.
 */
int net_poll(struct net *n);
/*
 * Run the DHCP client: DISCOVER (broadcast, repeated every 2 s), take the
 * first OFFER, REQUEST it, and on ACK set the address, netmask (default
 * /24) and router.  A NAK restarts.  Returns 0, -GUEST_ETIMEDOUT after
 * timeout_s seconds, or net_poll()'s error.
 */
int net_dhcp(struct net *n, unsigned int timeout_s);

/*
 * The MAC address of ip (through the gateway if ip is off our subnet;
 * broadcast for 255.255.255.255 and the subnet broadcast): from the cache,
 * else by ARP requests every second for up to timeout_s seconds.  Returns
 * 0, -GUEST_ENOENT without an address or a route, -GUEST_ETIMEDOUT, or
 * net_poll()'s error.
 */
int net_arp_resolve(struct net *n, uint32_t ip, uint8_t *mac,
		    unsigned int timeout_s);

/* Deliver UDP datagrams to port to fn.  0, -GUEST_EINVAL (port 0 or taken)
 * or -GUEST_ENOSPC (NET_UDP_BINDS ports bound). */
int net_udp_bind(struct net *n, uint16_t port, net_udp_fn fn, void *arg);
/*
 * Send a UDP datagram of len (at most NET_FRAME_MAX - 42) bytes from our
 * address to dst (resolved with net_arp_resolve(), 3 s).  Returns 0,
 * -GUEST_E2BIG, -GUEST_ENOSPC (transmit ring full), or the resolver's
 * error.
 */
int net_udp_send(struct net *n, uint32_t dst, uint16_t sport, uint16_t dport,
		 const void *data, uint32_t len);
/* Answer the datagram described by ri: to its source MAC, address and
 * port, from the port it was sent to.  Returns what net_udp_send() does,
 * without resolving. */
int net_udp_reply(struct net *n, const struct net_rx_info *ri, const void *data,
		  uint32_t len);

/*
 * Accept TCP connections on port (one listener per struct net) and report
 * them through ops.  Segments for other ports get a RST.  Returns 0, or
 * -GUEST_EINVAL for port 0 or a second listener.
 */
int net_tcp_listen(struct net *n, uint16_t port, const struct net_tcp_ops *ops,
		   void *arg);
/*
 * Queue len bytes on c and send them at once (segments of the peer's
 * MSS); they stay buffered until acknowledged.  All or nothing: returns 0,
 * -GUEST_ENOSPC if they do not fit the send buffer, -GUEST_EINVAL if c is
 * not established.
 */
int net_tcp_send(struct net *n, struct net_tcp_conn *c, const void *data,
		 uint32_t len);

/*
 * Parse "A.B.C.D" (len bytes of s) into *ip.  Returns 0 or -GUEST_EINVAL.
 */
int net_parse_ip(const char *s, size_t len, uint32_t *ip);
/* Parse "A.B.C.D/N" (the /N optional: *prefix is left alone without it).
 * Returns 0 or -GUEST_EINVAL. */
int net_parse_cidr(const char *s, uint32_t *ip, unsigned int *prefix);
/* Parse "xx:xx:xx:xx:xx:xx" (hex).  Returns 0 or -GUEST_EINVAL. */
int net_parse_mac(const char *s, uint8_t *mac);
/* Format ip as "A.B.C.D" into buf (at least 16 bytes); returns buf. */
char *net_fmt_ip(char *buf, uint32_t ip);
/* Format mac as "xx:xx:xx:xx:xx:xx" into buf (at least 18 bytes). */
char *net_fmt_mac(char *buf, const uint8_t *mac);
/* The Internet checksum of len bytes at p, starting from the partial sum
 * sum (as returned by net_csum_add); net_csum_fold() gives the final
 * one's-complement value. */
uint32_t net_csum_add(uint32_t sum, const void *p, uint32_t len);
uint16_t net_csum_fold(uint32_t sum);
/* The partial sum of the TCP/UDP pseudo-header. */
uint32_t net_csum_pseudo(uint32_t src, uint32_t dst, uint8_t proto,
			 uint32_t len);

/* Big-endian loads and stores for header fields. */
static inline uint16_t net_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t net_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline void net_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void net_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Copy n bytes with one rep movsb (cheap in emulated ring 0). */
static inline void net_copy(void *dst, const void *src, size_t n)
{
	__asm__ volatile("rep movsb"
			 : "+D"(dst), "+S"(src), "+c"(n)
			 :
			 : "memory");
}

#endif
