/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * net_blast: the host side of the network benchmark's host-to-guest cases
 * (bench/net.sh).  It sends Ethernet frames into a tap interface, towards
 * the VM that has the tap open, as fast as it can until SIGTERM/SIGINT,
 * then prints the number of frames sent.
 *
 *   net_blast IFNAME DSTMAC SIZE        UDP/IPv4 frames of SIZE bytes
 *   net_blast IFNAME DSTMAC 65536 tso   one 64 KiB TCP/IPv4 segment per
 *                                       frame with a GSO virtio-net header
 *                                       (gso_size 1448): a VMM whose guest
 *                                       took TSO gets it whole
 *
 * Frames go through an AF_PACKET socket bound to the tap (PACKET_VNET_HDR
 * for tso, PACKET_QDISC_BYPASS without), 64 per sendmmsg().  A full tap queue drops
 * frames in the kernel; the guest counts what arrives.
 *
 * Threads: one.  Needs CAP_NET_RAW.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define GSO_MSS 1448

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint16_t csum16(const uint8_t *p, size_t n, uint32_t sum)
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

/* Ethernet + IPv4 header for a frame of 'len' bytes carrying 'proto'. */
static void build_l2l3(uint8_t *f, size_t len, const uint8_t dst[6],
		       uint8_t proto)
{
	static const uint8_t src[6] = {0x02, 0x6b, 0x68, 0x79, 0x76, 0x65};
	uint8_t *ip = f + 14;
	uint16_t tot = (uint16_t)(len - 14 > 65535 ? 65535 : len - 14);

	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x08;
	f[13] = 0x00;
	ip[0] = 0x45;
	ip[2] = (uint8_t)(tot >> 8);
	ip[3] = (uint8_t)tot;
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, "\x0a\x63\x00\x01", 4); /* 10.99.0.1 */
	memcpy(ip + 16, "\x0a\x63\x00\x02", 4); /* 10.99.0.2 */
	{
		uint16_t c = csum16(ip, 20, 0);

		ip[10] = (uint8_t)(c >> 8);
		ip[11] = (uint8_t)c;
	}
}

static int parse_mac(const char *s, uint8_t m[6])
{
	unsigned v[6];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
		   &v[5]) != 6)
		return -1;
	for (i = 0; i < 6; i++)
		m[i] = (uint8_t)v[i];
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_ll sll = {.sll_family = AF_PACKET,
				  .sll_protocol = htons(ETH_P_ALL)};
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH][2];
	struct virtio_net_hdr vh;
	unsigned long long sent = 0;
	uint8_t dst[6], *frame;
	size_t size;
	int s, one = 1, i, tso;

	if (argc < 4 || parse_mac(argv[2], dst)) {
		fprintf(stderr, "usage: net_blast IFNAME DSTMAC SIZE [tso]\n");
		return 2;
	}
	size = strtoul(argv[3], NULL, 0);
	tso = argc > 4 && !strcmp(argv[4], "tso");
	if (size < 60 || size > 65536 || (!tso && size > 9000)) {
		fprintf(stderr, "net_blast: size 60..9000 (65536 with tso)\n");
		return 2;
	}
	frame = calloc(1, size);
	s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (!frame || s < 0) {
		perror("net_blast: socket");
		return 1;
	}
	sll.sll_ifindex = (int)if_nametoindex(argv[1]);
	if (!sll.sll_ifindex || bind(s, (struct sockaddr *)&sll, sizeof(sll))) {
		fprintf(stderr, "net_blast: %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	/* GSO packets must pass the qdisc layer to be handled (with
	 * PACKET_QDISC_BYPASS they stall in the tap) */
	if (!tso)
		setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one,
			   sizeof(one));
	memset(&vh, 0, sizeof(vh));
	if (tso) {
		uint8_t *tcp = frame + 34;

		if (setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one,
			       sizeof(one))) {
			perror("net_blast: PACKET_VNET_HDR");
			return 1;
		}
		build_l2l3(frame, size, dst, 6);
		tcp[0] = 0x13; /* 5001 -> 5001 */
		tcp[1] = 0x89;
		tcp[2] = 0x13;
		tcp[3] = 0x89;
		tcp[12] = 0x50; /* header length 20 */
		tcp[13] = 0x10; /* ACK */
		tcp[14] = 0xff;
		tcp[15] = 0xff;
		vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		vh.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
		vh.hdr_len = 54;
		vh.gso_size = GSO_MSS;
		vh.csum_start = 34;
		vh.csum_offset = 16;
	} else {
		uint8_t *udp = frame + 34;
		size_t ulen = size - 34;

		build_l2l3(frame, size, dst, 17);
		udp[0] = 0x13;
		udp[1] = 0x89;
		udp[2] = 0x13;
		udp[3] = 0x89;
		udp[4] = (uint8_t)(ulen >> 8);
		udp[5] = (uint8_t)ulen;
	}
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < BATCH; i++) {
		iov[i][0].iov_base = &vh;
		iov[i][0].iov_len = sizeof(vh);
		iov[i][1].iov_base = frame;
		iov[i][1].iov_len = size;
		msgs[i].msg_hdr.msg_iov = tso ? iov[i] : iov[i] + 1;
		msgs[i].msg_hdr.msg_iovlen = tso ? 2 : 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop) {
		int n = sendmmsg(s, msgs, BATCH, 0);

		if (n > 0)
			sent += (unsigned)n;
		else if (n < 0 && errno != ENOBUFS && errno != EAGAIN &&
			 errno != EINTR) {
			perror("net_blast: sendmmsg");
			return 1;
		}
	}
	printf("%llu\n", sent);
	return 0;
}
