/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for the e1000 (82545EM) NIC without KVM: the test plays
 * the guest driver through the PCI root, BAR0 and the I/O BAR, with plain
 * memory as guest RAM and a recording INTx sink, and the host side of the
 * link through a socketpair(AF_UNIX, SOCK_DGRAM) whose other end is the
 * NIC's "fd:N" backend.  Covered: PCI identity, EEPROM (EERD and
 * bit-banged Microwire, MAC words, checksum, sequential read, EWEN
 * write), the PHY through MDIC, reset, interrupts (ICR/ICS/IMS/IMC, INTx
 * level, INTx disable), transmit with legacy descriptors (multi-buffer,
 * CSO/CSS checksum), context + data descriptors (IPv4 TCP/UDP checksum
 * offload), TSO (IPv4 and IPv6 TCP, IPv4 UDP: segment count, lengths,
 * ids, sequence numbers, flags, checksums, payloads), VLAN insertion and
 * stripping, receive into one or several descriptors, padding and FCS,
 * filtering (unicast, second RA, promiscuous, broadcast with BAM,
 * multicast hash, MPE, VLAN filter), receive held while the ring is full,
 * RCTL.EN off, statistics, the I/O window, a NIC without backend, config
 * errors, and hostile rings, descriptors and register values (including
 * random garbage), which must never crash or hang.
 *
 * Threads: the test thread is the guest; the event loop thread runs the
 * NIC's receive callback, which raises INTx, so interrupt levels are
 * recorded atomically and receive completion is waited for with a
 * deadline.  Transmit runs on the thread that writes TDT, so frames are
 * already in the socket when the write returns.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "event/event.h"
#include "tests/dev/vdrv.h"
#include "tests/tap.h"

#define SLOT 4
#define MACSTR "52:54:00:12:34:56"

/* Registers and bits (82545EM), as the guest driver knows them. */
#define CTRL 0x0000
#define STATUS 0x0008
#define EECD 0x0010
#define EERD 0x0014
#define MDIC 0x0020
#define VET 0x0038
#define ICR 0x00c0
#define ITR 0x00c4
#define ICS 0x00c8
#define IMS 0x00d0
#define IMC 0x00d8
#define RCTL 0x0100
#define TCTL 0x0400
#define RDBAL 0x2800
#define RDBAH 0x2804
#define RDLEN 0x2808
#define RDH 0x2810
#define RDT 0x2818
#define RDTR 0x2820
#define TDBAL 0x3800
#define TDBAH 0x3804
#define TDLEN 0x3808
#define TDH 0x3810
#define TDT 0x3818
#define GPRC 0x4074
#define BPRC 0x4078
#define MPRC 0x407c
#define GPTC 0x4080
#define GORCL 0x4088
#define GORCH 0x408c
#define GOTCL 0x4090
#define RNBC 0x40a0
#define ROC 0x40ac
#define MPC 0x4010
#define TPR 0x40d0
#define TPT 0x40d4
#define TSCTC 0x40f8
#define TSCTFC 0x40fc
#define MTA 0x5200
#define RAL(i) (0x5400 + 8 * (i))
#define RAH(i) (0x5404 + 8 * (i))
#define VFTA 0x5600

#define CTRL_SLU 0x40u
#define CTRL_RST 0x04000000u
#define CTRL_VME 0x40000000u
#define STATUS_LU 0x2u
#define EECD_SK 0x1u
#define EECD_CS 0x2u
#define EECD_DI 0x4u
#define EECD_DO 0x8u
#define EECD_REQ 0x40u
#define EECD_GNT 0x80u
#define EECD_PRES 0x100u
#define MDIC_WRITE 0x04000000u
#define MDIC_READ 0x08000000u
#define MDIC_READY 0x10000000u
#define MDIC_ERROR 0x40000000u
#define ICR_TXDW 0x01u
#define ICR_TXQE 0x02u
#define ICR_LSC 0x04u
#define ICR_RXDMT0 0x10u
#define ICR_RXO 0x40u
#define ICR_RXT0 0x80u
#define RCTL_EN 0x2u
#define RCTL_UPE 0x8u
#define RCTL_MPE 0x10u
#define RCTL_LPE 0x20u
#define RCTL_BAM 0x8000u
#define RCTL_BSIZE_256 (3u << 16)
#define RCTL_VFE 0x40000u
#define RCTL_SECRC 0x04000000u
#define TCTL_EN 0x2u
#define TCTL_PSP 0x8u
#define RAH_AV 0x80000000u

#define CMD_EOP 0x01u
#define CMD_IFCS 0x02u
#define CMD_IC 0x04u
#define CMD_TSE 0x04u
#define CMD_RS 0x08u
#define CMD_DEXT 0x20u
#define CMD_VLE 0x40u
#define TUCMD_TCP 0x01u
#define TUCMD_IP 0x02u
#define POPTS_IXSM 0x01u
#define POPTS_TXSM 0x02u
#define STA_DD 0x01u
#define RX_DD 0x01u
#define RX_EOP 0x02u
#define RX_IXSM 0x04u
#define RX_VP 0x08u
#define RX_RXE 0x80u

#define RING_MAX 256
#define RXBUF_STRIDE 16384u
#define WAIT_MS 3000

static const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t peer[6] = {0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc};
static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

/* ---- interrupt recording (any thread) ---- */

static int irq_level[IOAPIC_PINS];
static int irq_rises[IOAPIC_PINS];

static int rec_irq(void *o, unsigned gsi, int level)
{
	(void)o;
	if (gsi >= IOAPIC_PINS)
		return -EINVAL;
	if (level && !__atomic_load_n(&irq_level[gsi], __ATOMIC_SEQ_CST))
		__atomic_fetch_add(&irq_rises[gsi], 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&irq_level[gsi], level, __ATOMIC_SEQ_CST);
	return 0;
}

static int rec_msi(void *o, uint64_t addr, uint32_t data)
{
	(void)o;
	(void)addr;
	(void)data;
	return 0;
}

/* ---- the machine ---- */

struct env {
	struct vdrv_machine m;
	struct event_loop *ev;
	pthread_t thr;
	bool loop_on;
	int sv[2]; /* [0] the NIC's backend, [1] the host side */
	uint64_t bar0;
	uint16_t io;
	unsigned gsi;
	uint64_t txr, rxr, txb, rxb;
	unsigned txn, rxn, tdt;
};

static void *loop_main(void *arg)
{
	event_loop_run(arg);
	return NULL;
}

static uint32_t cfgr(struct env *e, unsigned off, unsigned size)
{
	return pci_cfg_read(e->m.root, 0, SLOT, 0, off, size);
}

static void cfgw(struct env *e, unsigned off, unsigned size, uint32_t v)
{
	pci_cfg_write(e->m.root, 0, SLOT, 0, off, size, v);
}

/*
 * Build the machine with an e1000 at 0:4.0 (MAC MACSTR), the host end of
 * a datagram socketpair as its backend when 'backend', and the extra
 * "key", "value" pairs of 'extra' on its node.  Returns 0 or the model's
 * -errno; env_free() either way.
 */
static int env_new(struct env *e, bool backend, const char *const *extra)
{
	struct vdrv_machine *m = &e->m;
	const char *kv[32];
	char keys[8][64], fdarg[32];
	unsigned n = 0, k = 0;
	int rc;

	memset(e, 0, sizeof(*e));
	memset(irq_level, 0, sizeof(irq_level));
	memset(irq_rises, 0, sizeof(irq_rises));
	e->sv[0] = e->sv[1] = -1;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, e->sv))
		return -errno;
	kv[n++] = "pci.0.4.0.device";
	kv[n++] = "e1000";
	kv[n++] = "pci.0.4.0.mac";
	kv[n++] = MACSTR;
	if (backend) {
		snprintf(fdarg, sizeof(fdarg), "fd:%d", e->sv[0]);
		kv[n++] = "pci.0.4.0.backend";
		kv[n++] = fdarg;
	}
	for (; extra && *extra && k < 8; extra += 2, k++) {
		snprintf(keys[k], sizeof(keys[k]), "pci.0.4.0.%s", extra[0]);
		kv[n++] = keys[k];
		kv[n++] = extra[1];
	}
	kv[n] = NULL;
	memset(m, 0, sizeof(*m));
	m->ram = aligned_alloc(4096, VDRV_RAM);
	if (!m->ram)
		return -ENOMEM;
	memset(m->ram, 0, VDRV_RAM);
	gmem_init_fake(&m->mem, m->ram, VDRV_RAM);
	m->cfg = cfg_new();
	for (n = 0; kv[n]; n += 2)
		cfg_set(m->cfg, kv[n], kv[n + 1]);
	bus_new(&m->ctx.pio, "pio");
	bus_new(&m->ctx.mmio, "mmio");
	m->ctx.mem = &m->mem;
	m->ctx.root = m->cfg;
	m->ctx.irq = (struct irq_sink){
		.set_irq = rec_irq, .msi = rec_msi, .opaque = m};
	m->ctx.opaque = m;
	m->ctx.vm_name = "t_e1000";
	m->brk = 0x100000;
	if ((rc = event_loop_new(&e->ev)))
		return rc;
	m->ctx.ev = e->ev;
	if ((rc = pci_root_new(&m->ctx, &m->root)) ||
	    (rc = pci_create_devices(m->root, m->cfg)) ||
	    (rc = pci_assign_bars(m->root)))
		return rc;
	if (pthread_create(&e->thr, NULL, loop_main, e->ev))
		return -EAGAIN;
	e->loop_on = true;
	e->bar0 = cfgr(e, PCIR_BAR(0), 4) & ~0xfull;
	e->io = (uint16_t)(cfgr(e, PCIR_BAR(2), 4) & ~3u);
	e->gsi = cfgr(e, PCIR_INTLINE, 1);
	e->txr = vdrv_alloc(m, RING_MAX * 16, 4096);
	e->rxr = vdrv_alloc(m, RING_MAX * 16, 4096);
	e->txb = vdrv_alloc(m, 1u << 20, 4096);
	e->rxb = vdrv_alloc(m, RING_MAX * RXBUF_STRIDE, 4096);
	return 0;
}

static void env_free(struct env *e)
{
	if (e->loop_on) {
		event_loop_stop(e->ev, 0);
		pthread_join(e->thr, NULL);
	}
	if (e->m.cfg)
		vdrv_machine_free(&e->m);
	if (e->ev)
		event_loop_free(e->ev);
	if (e->sv[0] >= 0)
		close(e->sv[0]);
	if (e->sv[1] >= 0)
		close(e->sv[1]);
}

static uint32_t rd(struct env *e, unsigned off)
{
	return (uint32_t)vdrv_mmio(&e->m, e->bar0 + off, 4, false, 0);
}

static void wr(struct env *e, unsigned off, uint32_t v)
{
	vdrv_mmio(&e->m, e->bar0 + off, 4, true, v);
}

static uint8_t *gp(struct env *e, uint64_t gpa)
{
	return vdrv_ptr(&e->m, gpa);
}

static int level(struct env *e)
{
	return __atomic_load_n(&irq_level[e->gsi], __ATOMIC_SEQ_CST);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {0, (long)ms * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- byte helpers ---- */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)be16(p) << 16 | be16(p + 2);
}

static void pbe16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void pbe32(uint8_t *p, uint32_t v)
{
	pbe16(p, (uint16_t)(v >> 16));
	pbe16(p + 2, (uint16_t)v);
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void ple16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void ple32(uint8_t *p, uint32_t v)
{
	ple16(p, (uint16_t)v);
	ple16(p + 2, (uint16_t)(v >> 16));
}

static void ple64(uint8_t *p, uint64_t v)
{
	ple32(p, (uint32_t)v);
	ple32(p + 4, (uint32_t)(v >> 32));
}

/* 16-bit ones'-complement sum (not complemented, not folded). */
static uint32_t sum16(const uint8_t *p, size_t len)
{
	uint32_t s = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += be16(p + i);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static uint8_t pat(size_t i, uint8_t seed)
{
	return (uint8_t)(i * 7 + seed);
}

/* ---- the host side of the link ---- */

static ssize_t host_recv(struct env *e, uint8_t *buf, size_t max)
{
	return recv(e->sv[1], buf, max, MSG_DONTWAIT);
}

static unsigned host_drain(struct env *e)
{
	uint8_t b[2048];
	unsigned n = 0;

	while (recv(e->sv[1], b, sizeof(b), MSG_DONTWAIT) >= 0)
		n++;
	return n;
}

static bool host_send(struct env *e, const uint8_t *f, size_t len)
{
	return send(e->sv[1], f, len, MSG_DONTWAIT) == (ssize_t)len;
}

/* An Ethernet frame to 'dst' of 'len' bytes with a pattern payload. */
static size_t mk_frame(uint8_t *f, const uint8_t *dst, size_t len, uint8_t seed)
{
	size_t i;

	memcpy(f, dst, 6);
	memcpy(f + 6, peer, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
	for (i = 14; i < len; i++)
		f[i] = pat(i, seed);
	return len;
}

/* ---- transmit ring ---- */

static void tx_init(struct env *e, unsigned n)
{
	e->txn = n;
	e->tdt = 0;
	memset(gp(e, e->txr), 0, RING_MAX * 16);
	wr(e, TDBAL, (uint32_t)e->txr);
	wr(e, TDBAH, 0);
	wr(e, TDLEN, n * 16);
	wr(e, TDH, 0);
	wr(e, TDT, 0);
	wr(e, TCTL, TCTL_EN | TCTL_PSP);
}

static uint8_t *txd_next(struct env *e)
{
	uint8_t *d = gp(e, e->txr + 16 * e->tdt);

	memset(d, 0, 16);
	e->tdt = (e->tdt + 1) % e->txn;
	return d;
}

static uint8_t txd_sta(struct env *e, unsigned i)
{
	return gp(e, e->txr + 16 * i)[12];
}

static void put_legacy(struct env *e, uint64_t addr, uint16_t len, uint8_t cmd,
		       uint8_t cso, uint8_t css, uint16_t special)
{
	uint8_t *d = txd_next(e);

	ple64(d, addr);
	ple16(d + 8, len);
	d[10] = cso;
	d[11] = cmd;
	d[13] = css;
	ple16(d + 14, special);
}

struct ctxd {
	uint8_t ipcss, ipcso, tucss, tucso, tucmd, hdrlen;
	uint16_t ipcse, tucse, mss;
	uint32_t paylen;
};

static void put_ctx(struct env *e, const struct ctxd *c)
{
	uint8_t *d = txd_next(e);

	d[0] = c->ipcss;
	d[1] = c->ipcso;
	ple16(d + 2, c->ipcse);
	d[4] = c->tucss;
	d[5] = c->tucso;
	ple16(d + 6, c->tucse);
	ple32(d + 8, (c->paylen & 0xfffff) | (uint32_t)(c->tucmd | CMD_DEXT)
						     << 24);
	d[13] = c->hdrlen;
	ple16(d + 14, c->mss);
}

static void put_data(struct env *e, uint64_t addr, uint32_t len, uint8_t dcmd,
		     uint8_t popts, uint16_t special)
{
	uint8_t *d = txd_next(e);

	ple64(d, addr);
	ple32(d + 8,
	      (len & 0xfffff) | 1u << 20 | (uint32_t)(dcmd | CMD_DEXT) << 24);
	d[13] = popts;
	ple16(d + 14, special);
}

static void tx_kick(struct env *e)
{
	wr(e, TDT, e->tdt);
}

/* ---- receive ring ---- */

/* 'n' descriptors, buffers at rxb + i * RXBUF_STRIDE, RDT = 'give'. */
static void rx_init(struct env *e, unsigned n, uint32_t rctl, unsigned give)
{
	unsigned i;

	e->rxn = n;
	memset(gp(e, e->rxr), 0, RING_MAX * 16);
	for (i = 0; i < n; i++)
		ple64(gp(e, e->rxr + 16 * i), e->rxb + i * RXBUF_STRIDE);
	wr(e, RDBAL, (uint32_t)e->rxr);
	wr(e, RDBAH, 0);
	wr(e, RDLEN, n * 16);
	wr(e, RDH, 0);
	wr(e, RDT, give);
	wr(e, RCTL, rctl);
}

static const uint8_t *rxd(struct env *e, unsigned i)
{
	return gp(e, e->rxr + 16 * i);
}

static const uint8_t *rxbuf(struct env *e, unsigned i)
{
	return gp(e, e->rxb + i * RXBUF_STRIDE);
}

/* Wait until RDH reads 'want'; false on timeout. */
static bool wait_rdh(struct env *e, unsigned want)
{
	uint64_t end = now_ms() + WAIT_MS;

	while (rd(e, RDH) != want) {
		if (now_ms() > end)
			return false;
		sleep_ms(1);
	}
	return true;
}

/* ---- packets ---- */

#define HDR4 54 /* Ethernet + IPv4 + TCP */
#define HDR6 74 /* Ethernet + IPv6 + TCP */

static void eth_hdr(uint8_t *p, uint16_t type)
{
	memcpy(p, peer, 6);
	memcpy(p + 6, mac, 6);
	pbe16(p + 12, type);
}

/*
 * An IPv4 packet with a TCP (proto 6) or UDP (17) header and 'paylen'
 * bytes of payload, IP checksum 0 and, in the L4 checksum field, the
 * pseudo-header sum a driver leaves for the NIC: with the L4 length
 * ('with_len', checksum offload) or without (TSO).  Returns its length.
 */
static size_t mk_ip4(uint8_t *p, uint8_t proto, size_t paylen, bool with_len,
		     uint8_t flags)
{
	size_t l4h = proto == 6 ? 20 : 8, l4len = l4h + paylen, i;
	uint8_t *ip = p + 14, *l4 = ip + 20;
	uint32_t s;

	memset(p, 0, 14 + 20 + l4h);
	eth_hdr(p, 0x0800);
	ip[0] = 0x45;
	pbe16(ip + 2, (uint16_t)(20 + l4len));
	pbe16(ip + 4, 0x1234);
	pbe16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = proto;
	pbe32(ip + 12, 0x0a000001);
	pbe32(ip + 16, 0x0a000002);
	pbe16(l4, 40000);
	pbe16(l4 + 2, 80);
	if (proto == 6) {
		pbe32(l4 + 4, 0x01020304);
		l4[12] = 0x50;
		l4[13] = flags;
		pbe16(l4 + 14, 0xffff);
	} else {
		pbe16(l4 + 4, (uint16_t)l4len);
	}
	for (i = 0; i < paylen; i++)
		l4[l4h + i] = pat(i, 3);
	s = sum16(ip + 12, 8) + proto + (with_len ? (uint32_t)l4len : 0);
	pbe16(l4 + (proto == 6 ? 16 : 6), fold(s));
	return 14 + 20 + l4len;
}

/* IPv6 + TCP, pseudo-header sum without length (for TSO). */
static size_t mk_ip6_tcp(uint8_t *p, size_t paylen, uint8_t flags)
{
	uint8_t *ip = p + 14, *l4 = ip + 40;
	uint32_t s;
	size_t i;

	memset(p, 0, HDR6);
	eth_hdr(p, 0x86dd);
	ip[0] = 0x60;
	pbe16(ip + 4, (uint16_t)(20 + paylen));
	ip[6] = 6;
	ip[7] = 64;
	ip[8] = 0xfd;
	ip[23] = 1;
	ip[24] = 0xfd;
	ip[39] = 2;
	pbe16(l4, 40000);
	pbe16(l4 + 2, 80);
	pbe32(l4 + 4, 0xfffffc00u); /* wraps during the split */
	l4[12] = 0x50;
	l4[13] = flags;
	for (i = 0; i < paylen; i++)
		l4[20 + i] = pat(i, 3);
	s = sum16(ip + 8, 32) + 6;
	pbe16(l4 + 16, fold(s));
	return HDR6 + paylen;
}

static bool ip4_ok(const uint8_t *ip)
{
	return fold(sum16(ip, 20)) == 0xffff;
}

static bool l4_ok4(const uint8_t *ip, const uint8_t *l4, size_t l4len)
{
	uint32_t s =
		sum16(ip + 12, 8) + ip[9] + (uint32_t)l4len + sum16(l4, l4len);

	return fold(s) == 0xffff;
}

static bool l4_ok6(const uint8_t *ip, const uint8_t *l4, size_t l4len)
{
	uint32_t s = sum16(ip + 8, 32) + 6 + (uint32_t)l4len + sum16(l4, l4len);

	return fold(s) == 0xffff;
}

static bool payload_ok(const uint8_t *p, size_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != pat(off + i, 3))
			return false;
	return true;
}

/* ---- EEPROM through EECD ---- */

static void ee_w(struct env *e, uint32_t v)
{
	wr(e, EECD, EECD_REQ | v);
}

static void ee_out(struct env *e, uint32_t bits, unsigned n)
{
	while (n--) {
		uint32_t di = (bits >> n) & 1 ? EECD_DI : 0;

		ee_w(e, EECD_CS | di);
		ee_w(e, EECD_CS | di | EECD_SK);
		ee_w(e, EECD_CS | di);
	}
}

static uint16_t ee_in(struct env *e)
{
	uint16_t w = 0;
	unsigned i;

	for (i = 0; i < 16; i++) {
		ee_w(e, EECD_CS | EECD_SK);
		w = (uint16_t)(w << 1 | ((rd(e, EECD) & EECD_DO) ? 1 : 0));
		ee_w(e, EECD_CS);
	}
	return w;
}

/* Select, send READ (1 10 aaaaaa); *dummy gets DO after the address. */
static void ee_start_read(struct env *e, unsigned addr, bool *dummy)
{
	ee_w(e, 0);
	ee_w(e, EECD_CS);
	ee_out(e, 0x6u << 6 | addr, 9);
	*dummy = (rd(e, EECD) & EECD_DO) != 0;
}

static uint16_t eerd(struct env *e, unsigned addr)
{
	wr(e, EERD, addr << 8 | 1);
	return (uint16_t)(rd(e, EERD) >> 16);
}

/* ---- PHY ---- */

static uint32_t mdic(struct env *e, unsigned phy, unsigned reg, bool write,
		     uint16_t data)
{
	wr(e, MDIC,
	   (write ? MDIC_WRITE : MDIC_READ) | phy << 21 | reg << 16 | data);
	return rd(e, MDIC);
}

/* ================= tests ================= */

static void test_identity(struct env *e)
{
	uint32_t st, v;

	is_int(cfgr(e, PCIR_VENDOR, 2), 0x8086, "vendor 8086");
	is_int(cfgr(e, PCIR_DEVICE, 2), 0x100f, "device 100f (82545EM)");
	is_int(cfgr(e, PCIR_CLASS, 1), 0x02, "class network");
	is_int(cfgr(e, PCIR_SUBCLASS, 1), 0x00, "subclass ethernet");
	is_int(cfgr(e, PCIR_SUBVEND, 2), 0x8086, "subsystem vendor");
	is_int(cfgr(e, PCIR_SUBDEV, 2), 0x1008, "subsystem id");
	is_int(cfgr(e, PCIR_BAR(0), 4) & 0x7, 0, "BAR0: 32-bit memory");
	is_int(cfgr(e, PCIR_BAR(2), 4) & 0x1, 1, "BAR2: I/O");
	is_int(cfgr(e, PCIR_INTPIN, 1), 1, "INTA");
	ok(e->bar0 != 0 && e->io != 0, "BARs assigned");
	cfgw(e, PCIR_BAR(0), 4, 0xffffffffu);
	is_int(cfgr(e, PCIR_BAR(0), 4) & ~0xfu, 0xfffe0000u,
	       "BAR0 sizes to 128 KiB");
	cfgw(e, PCIR_BAR(0), 4, (uint32_t)e->bar0);
	/* An 8-byte I/O BAR sizes to 8 (bit 3 writable-as-zero). */
	cfgw(e, PCIR_BAR(2), 4, 0xffffffffu);
	v = cfgr(e, PCIR_BAR(2), 4) & 0xfffcu;
	ok(v == 0xfff8, "BAR2 sizes to 8 (0x%x)", v);
	cfgw(e, PCIR_BAR(2), 4, e->io);
	is_int(cfgr(e, PCIR_BAR(2), 4) & ~3u, e->io, "BAR2 restored");
	st = rd(e, STATUS);
	is_int(st & 0xc3, 0x83, "STATUS: link up, 1000 Mb/s, full duplex");
}

static void test_eeprom(struct env *e)
{
	uint16_t sum = 0, w, w2;
	unsigned i;
	bool dummy, all = true;

	for (i = 0; i < 64; i++)
		sum = (uint16_t)(sum + eerd(e, i));
	is_int(sum, 0xbaba, "EEPROM words sum to 0xBABA");
	is_int(eerd(e, 0), 0x5452, "EERD word 0: MAC bytes 0-1");
	is_int(eerd(e, 1), 0x1200, "EERD word 1: MAC bytes 2-3");
	is_int(eerd(e, 2), 0x5634, "EERD word 2: MAC bytes 4-5");
	is_int(rd(e, EERD) & 0x10, 0x10, "EERD DONE");
	is_int(eerd(e, 0x0d), 0x100f, "EEPROM device id");
	is_int(eerd(e, 200), 0xffff, "EERD beyond the EEPROM: all ones");

	wr(e, EECD, EECD_REQ);
	ok((rd(e, EECD) & (EECD_GNT | EECD_PRES)) == (EECD_GNT | EECD_PRES),
	   "EECD: REQ granted, EEPROM present");
	is_int(rd(e, EECD) & 0x200, 0, "EECD size bit: 64-word part");
	for (i = 0; i < 64; i++) {
		ee_start_read(e, i, &dummy);
		w = ee_in(e);
		if (dummy || w != eerd(e, i))
			all = false;
	}
	ok(all, "Microwire READ of all 64 words matches EERD (dummy 0)");
	ee_start_read(e, 2, &dummy);
	w = ee_in(e);
	w2 = ee_in(e);
	ok(w == eerd(e, 2) && w2 == eerd(e, 3),
	   "Microwire sequential read goes on to the next word");
	ee_w(e, 0);
	ee_w(e, EECD_CS);
	ok(rd(e, EECD) & EECD_DO, "DO high (ready) when idle");
	/* WRITE without EWEN is ignored; with EWEN it sticks. */
	ee_out(e, 0x5u << 6 | 0x30, 9);
	ee_out(e, 0xbeef, 16);
	ee_w(e, 0);
	is_int(eerd(e, 0x30), 0, "EEPROM write without EWEN ignored");
	ee_w(e, EECD_CS);
	ee_out(e, 0x4u << 6 | 0x30, 9); /* EWEN: 1 00 11xxxx */
	ee_w(e, 0);
	ee_w(e, EECD_CS);
	ee_out(e, 0x5u << 6 | 0x30, 9);
	ee_out(e, 0xbeef, 16);
	ee_w(e, 0);
	is_int(eerd(e, 0x30), 0xbeef, "EEPROM write after EWEN");
	/* Garbage clocking never hurts. */
	ee_w(e, EECD_CS);
	ee_out(e, 0xffffffffu, 32);
	ee_out(e, 0, 32);
	ee_w(e, 0);
	is_int(eerd(e, 0), 0x5452, "EEPROM intact after garbage clocks");
	wr(e, EECD, 0);
}

static void test_phy(struct env *e)
{
	uint32_t r;

	r = mdic(e, 1, 2, false, 0);
	ok((r & MDIC_READY) && !(r & MDIC_ERROR), "MDIC read ready");
	is_int(r & 0xffff, 0x0141, "PHY ID1 (Marvell)");
	is_int(mdic(e, 1, 3, false, 0) & 0xfff0, 0x0c20, "PHY ID2 (88E1011)");
	r = mdic(e, 1, 1, false, 0);
	is_int(r & 0x24, 0x24, "BMSR: link up, autoneg complete");
	is_int(mdic(e, 1, 0x11, false, 0) & 0xec00, 0xac00,
	       "M88 PSSR: 1000 full duplex resolved, link");
	is_int(mdic(e, 1, 10, false, 0) & 0x0c00, 0x0c00,
	       "1000BASE-T status: partner 1000 FD/HD");
	mdic(e, 1, 4, true, 0x0de1);
	is_int(mdic(e, 1, 4, false, 0) & 0xffff, 0x0de1, "ANAR write sticks");
	mdic(e, 1, 1, true, 0);
	is_int(mdic(e, 1, 1, false, 0) & 0x24, 0x24, "BMSR is read-only");
	rd(e, ICR);
	r = mdic(e, 1, 0, true, 0x9140);
	is_int(mdic(e, 1, 0, false, 0) & 0x8200, 0,
	       "BMCR reset/restart bits self-clear");
	is_int(mdic(e, 1, 4, false, 0) & 0xffff, 0x01e1,
	       "PHY reset restores ANAR");
	is_int(rd(e, ICR) & ICR_LSC, ICR_LSC, "autoneg restart raises LSC");
	r = mdic(e, 2, 2, false, 0);
	ok((r & MDIC_ERROR) && (r & MDIC_READY), "PHY address 2: error");
	wr(e, MDIC, 3u << 26 | 1u << 21);
	ok(rd(e, MDIC) & MDIC_ERROR, "MDIC reserved opcode: error");
	wr(e, IMS, 0x200);
	mdic(e, 1, 2, false, 0);
	is_int(rd(e, ICR) & 0x200, 0, "no MDAC without MDIC.I");
	wr(e, MDIC, MDIC_READ | 1u << 21 | 2u << 16 | 0x20000000u);
	ok(level(e), "MDIC with I raises MDAC");
	is_int(rd(e, ICR) & 0x200, 0x200, "ICR.MDAC");
	wr(e, IMC, ~0u);
}

static void test_interrupts(struct env *e)
{
	wr(e, IMC, ~0u);
	rd(e, ICR);
	ok(!level(e), "line low after ICR read");
	wr(e, ICS, ICR_RXT0);
	is_int(level(e), 0, "ICS with IMS 0: no interrupt");
	wr(e, IMS, ICR_RXT0 | ICR_TXDW);
	is_int(rd(e, IMS), ICR_RXT0 | ICR_TXDW, "IMS reads the mask");
	is_int(level(e), 1, "unmasking a pending cause raises INTx");
	wr(e, IMC, ICR_RXT0);
	is_int(level(e), 0, "IMC masks it again");
	wr(e, IMS, ICR_RXT0);
	is_int(level(e), 1, "and IMS unmasks");
	is_int(rd(e, ICR), ICR_RXT0, "ICR reads the cause");
	is_int(level(e), 0, "ICR read deasserts");
	is_int(rd(e, ICR), 0, "ICR read cleared it");
	wr(e, ICS, ICR_TXDW | ICR_LSC);
	is_int(level(e), 1, "ICS TXDW raises");
	wr(e, ICR, ICR_TXDW);
	is_int(level(e), 0, "writing 1 to ICR clears the cause");
	is_int(rd(e, ICR), ICR_LSC, "the other cause stays");
	wr(e, ICS, ICR_TXDW);
	cfgw(e, PCIR_COMMAND, 2, cfgr(e, PCIR_COMMAND, 2) | PCIM_CMD_INTxDIS);
	is_int(level(e), 0, "INTx disable drops the line");
	cfgw(e, PCIR_COMMAND, 2,
	     cfgr(e, PCIR_COMMAND, 2) & ~(uint32_t)PCIM_CMD_INTxDIS);
	is_int(level(e), 1, "INTx enable raises it again");
	rd(e, ICR);
	wr(e, IMC, ~0u);
	wr(e, ITR, 0x1234);
	is_int(rd(e, ITR), 0x1234, "ITR stored");
	wr(e, RDTR, 0x80000040u);
	is_int(rd(e, RDTR), 0x40, "RDTR stored (FPD self-clears)");
	wr(e, CTRL, rd(e, CTRL) & ~CTRL_SLU);
	rd(e, ICR);
	wr(e, CTRL, rd(e, CTRL) | CTRL_SLU);
	is_int(rd(e, ICR) & ICR_LSC, ICR_LSC, "setting SLU raises LSC");
}

static void test_reset(struct env *e)
{
	wr(e, IMS, 0xff);
	wr(e, RCTL, RCTL_EN | RCTL_UPE);
	wr(e, RDLEN, 4096);
	wr(e, MTA + 8, 0xffffffffu);
	wr(e, RAL(0), 0x11111111u);
	wr(e, VET, 0x9100);
	wr(e, CTRL, rd(e, CTRL) | CTRL_RST);
	is_int(rd(e, CTRL) & CTRL_RST, 0, "CTRL.RST self-clears");
	is_int(rd(e, IMS), 0, "reset clears IMS");
	is_int(rd(e, RCTL), 0, "reset clears RCTL");
	is_int(rd(e, RDLEN), 0, "reset clears RDLEN");
	is_int(rd(e, MTA + 8), 0, "reset clears the MTA");
	is_int(rd(e, VET), 0x8100, "reset restores VET");
	is_int(rd(e, RAL(0)), 0x12005452u, "RAL0 reloads the MAC");
	is_int(rd(e, RAH(0)), RAH_AV | 0x5634, "RAH0: MAC, address valid");
	is_int(rd(e, RAH(1)), 0, "RAH1 invalid");
	is_int(level(e), 0, "no interrupt after reset");
}

static void test_tx_legacy(struct env *e)
{
	uint8_t f[2048], out[2048];
	ssize_t n;
	uint32_t s;
	size_t i;

	tx_init(e, 16);
	wr(e, IMS, ICR_TXDW);
	rd(e, ICR);
	mk_frame(f, peer, 100, 1);
	memcpy(gp(e, e->txb), f, 100);
	put_legacy(e, e->txb, 100, CMD_EOP | CMD_IFCS | CMD_RS, 0, 0, 0);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	ok(n == 100 && memcmp(out, f, 100) == 0, "legacy frame sent as is");
	is_int(rd(e, TDH), 1, "TDH advanced");
	is_int(txd_sta(e, 0) & STA_DD, STA_DD, "DD written back");
	is_int(level(e), 1, "TXDW interrupt");
	is_int(rd(e, ICR) & (ICR_TXDW | ICR_TXQE), ICR_TXDW | ICR_TXQE,
	       "ICR: TXDW and TXQE");
	is_int(host_recv(e, out, sizeof(out)), -1, "exactly one frame");

	/* Three buffers, one frame; RS only on the last. */
	mk_frame(f, peer, 1514, 2);
	memcpy(gp(e, e->txb + 4096), f, 500);
	memcpy(gp(e, e->txb + 8192), f + 500, 14);
	memcpy(gp(e, e->txb + 12288), f + 514, 1000);
	put_legacy(e, e->txb + 4096, 500, 0, 0, 0, 0);
	put_legacy(e, e->txb + 8192, 14, 0, 0, 0, 0);
	put_legacy(e, e->txb + 12288, 1000, CMD_EOP | CMD_RS, 0, 0, 0);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	ok(n == 1514 && memcmp(out, f, 1514) == 0,
	   "three descriptors make one 1514-byte frame");
	ok(!(txd_sta(e, 1) & STA_DD) && (txd_sta(e, 3) & STA_DD),
	   "DD only where RS was set");

	/* A packet split across two TDT writes. */
	mk_frame(f, peer, 300, 3);
	memcpy(gp(e, e->txb), f, 300);
	put_legacy(e, e->txb, 200, 0, 0, 0, 0);
	tx_kick(e);
	is_int(host_recv(e, out, sizeof(out)), -1, "no EOP yet: nothing sent");
	put_legacy(e, e->txb + 200, 100, CMD_EOP, 0, 0, 0);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	ok(n == 300 && memcmp(out, f, 300) == 0,
	   "packet continued across TDT writes");

	/* Short frame padded (TCTL.PSP). */
	mk_frame(f, peer, 42, 4);
	memcpy(gp(e, e->txb), f, 42);
	put_legacy(e, e->txb, 42, CMD_EOP, 0, 0, 0);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	ok(n == 60 && memcmp(out, f, 42) == 0 && out[59] == 0,
	   "42-byte frame padded to 60");

	/* Legacy checksum: CSS 14, CSO 16, over the rest of the frame. */
	mk_frame(f, peer, 91, 5);
	f[16] = f[17] = 0;
	memcpy(gp(e, e->txb), f, 91);
	put_legacy(e, e->txb, 91, CMD_EOP | CMD_IC, 16, 14, 0);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	s = sum16(out + 14, 91 - 14);
	ok(n == 91 && fold(s) == 0xffff, "legacy IC checksum inserted");
	for (i = 0; i < 91; i++)
		if (i != 16 && i != 17 && out[i] != f[i])
			break;
	is_int(i, 91, "the rest of the frame unchanged");

	is_int(rd(e, GPTC), 5, "GPTC counts 5 frames");
	is_int(rd(e, GPTC), 0, "GPTC cleared on read");
	rd(e, TPT);
	is_int(rd(e, TPT), 0, "TPT cleared on read");
	rd(e, ICR);
	wr(e, IMC, ~0u);
}

static void test_tx_csum(struct env *e)
{
	static uint8_t p[4096], out[4096];
	struct ctxd c = {0};
	size_t len;
	ssize_t n;

	tx_init(e, 16);
	/* TCP/IPv4, 1000 bytes of payload, split over two buffers. */
	len = mk_ip4(p, 6, 1000, true, 0x18);
	memcpy(gp(e, e->txb), p, len);
	c.ipcss = 14;
	c.ipcso = 24;
	c.ipcse = 33;
	c.tucss = 34;
	c.tucso = 50;
	c.tucse = 0;
	c.tucmd = TUCMD_IP | TUCMD_TCP;
	put_ctx(e, &c);
	put_data(e, e->txb, 60, 0, POPTS_IXSM | POPTS_TXSM, 0);
	put_data(e, e->txb + 60, (uint32_t)len - 60, CMD_EOP | CMD_RS, 0, 0);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	is_int(n, (ssize_t)len, "checksummed TCP frame sent");
	ok(ip4_ok(out + 14), "IPv4 header checksum inserted");
	ok(l4_ok4(out + 14, out + 34, len - 34), "TCP checksum inserted");
	ok(payload_ok(out + HDR4, 0, 1000), "payload intact");
	ok(txd_sta(e, 2) & STA_DD, "DD on the EOP data descriptor");

	/* UDP/IPv4 with only TXSM. */
	len = mk_ip4(p, 17, 333, true, 0);
	memcpy(gp(e, e->txb), p, len);
	c.tucso = 40;
	c.tucmd = TUCMD_IP;
	put_ctx(e, &c);
	put_data(e, e->txb, (uint32_t)len, CMD_EOP, POPTS_TXSM, 0);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	ok(n == (ssize_t)len && l4_ok4(out + 14, out + 34, len - 34),
	   "UDP checksum inserted");
	is_int(be16(out + 24), 0, "IP checksum left alone without IXSM");

	/* Offsets beyond the frame: not inserted, frame still sent. */
	c.tucso = 250;
	put_ctx(e, &c);
	put_data(e, e->txb, 100, CMD_EOP, POPTS_TXSM, 0);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	ok(n == 100 && memcmp(out, gp(e, e->txb), 100) == 0,
	   "checksum offset beyond the frame: sent unchanged");
}

/* Read 'nseg' frames of a TSO burst into segs[] (lengths in lens[]). */
static unsigned recv_segs(struct env *e, uint8_t (*segs)[2048], ssize_t *lens,
			  unsigned max)
{
	unsigned k = 0;

	while (k < max && (lens[k] = host_recv(e, segs[k], 2048)) > 0)
		k++;
	return k;
}

static void test_tso(struct env *e)
{
	static uint8_t p[70000], segs[12][2048];
	ssize_t lens[12];
	struct ctxd c = {0};
	size_t len, paylen = 3500, mss = 1000;
	unsigned k, i;
	bool lens_ok = true, ip_ok = true, tcp_ok = true, seq_ok = true,
	     flags_ok = true, data_ok = true;

	tx_init(e, 32);
	len = mk_ip4(p, 6, paylen, false, 0x19); /* FIN PSH ACK */
	memcpy(gp(e, e->txb), p, len);
	c.ipcss = 14;
	c.ipcso = 24;
	c.ipcse = 33;
	c.tucss = 34;
	c.tucso = 50;
	c.tucmd = TUCMD_IP | TUCMD_TCP | CMD_TSE;
	c.hdrlen = HDR4;
	c.mss = (uint16_t)mss;
	c.paylen = (uint32_t)paylen;
	put_ctx(e, &c);
	put_data(e, e->txb, 100, CMD_TSE, POPTS_IXSM | POPTS_TXSM, 0);
	put_data(e, e->txb + 100, (uint32_t)len - 100,
		 CMD_TSE | CMD_EOP | CMD_RS, 0, 0);
	rd(e, TSCTC);
	tx_kick(e);
	k = recv_segs(e, segs, lens, 12);
	is_int(k, 4, "TSO: 3500 bytes at MSS 1000 make 4 frames");
	for (i = 0; i < k; i++) {
		size_t seg = i < 3 ? 1000 : 500;
		const uint8_t *ip = segs[i] + 14, *tcp = ip + 20;

		if (lens[i] != (ssize_t)(HDR4 + seg) ||
		    be16(ip + 2) != 40 + seg)
			lens_ok = false;
		if (!ip4_ok(ip) || be16(ip + 4) != 0x1234 + i)
			ip_ok = false;
		if (!l4_ok4(ip, tcp, 20 + seg))
			tcp_ok = false;
		if (be32(tcp + 4) != 0x01020304u + i * mss)
			seq_ok = false;
		if (tcp[13] != (i == k - 1 ? 0x19 : 0x10))
			flags_ok = false;
		if (!payload_ok(segs[i] + HDR4, i * mss, seg) ||
		    memcmp(segs[i], p, 14) != 0)
			data_ok = false;
	}
	ok(lens_ok, "TSO: frame and IP total lengths");
	ok(ip_ok, "TSO: IP ids count up, IP checksums valid");
	ok(tcp_ok, "TSO: TCP checksums valid per segment");
	ok(seq_ok, "TSO: sequence numbers advance by MSS");
	ok(flags_ok, "TSO: FIN/PSH only in the last segment");
	ok(data_ok, "TSO: headers and payload slices");
	is_int(rd(e, TSCTC), 1, "TSCTC counts the TSO context");

	/* IPv6, sequence number wrapping. */
	len = mk_ip6_tcp(p, 2500, 0x18);
	memcpy(gp(e, e->txb), p, len);
	memset(&c, 0, sizeof(c));
	c.ipcss = 14;
	c.tucss = 54;
	c.tucso = 70;
	c.tucmd = TUCMD_TCP | CMD_TSE;
	c.hdrlen = HDR6;
	c.mss = 1200;
	c.paylen = 2500;
	put_ctx(e, &c);
	put_data(e, e->txb, (uint32_t)len, CMD_TSE | CMD_EOP, POPTS_TXSM, 0);
	tx_kick(e);
	k = recv_segs(e, segs, lens, 12);
	is_int(k, 3, "TSO IPv6: 3 frames");
	lens_ok = tcp_ok = seq_ok = data_ok = true;
	for (i = 0; i < k; i++) {
		size_t seg = i < 2 ? 1200 : 100;
		const uint8_t *ip = segs[i] + 14, *tcp = ip + 40;

		if (lens[i] != (ssize_t)(HDR6 + seg) ||
		    be16(ip + 4) != 20 + seg)
			lens_ok = false;
		if (!l4_ok6(ip, tcp, 20 + seg))
			tcp_ok = false;
		if (be32(tcp + 4) != (uint32_t)(0xfffffc00u + i * 1200))
			seq_ok = false;
		if (!payload_ok(segs[i] + HDR6, i * 1200, seg))
			data_ok = false;
	}
	ok(lens_ok, "TSO IPv6: payload lengths");
	ok(tcp_ok, "TSO IPv6: TCP checksums");
	ok(seq_ok, "TSO IPv6: sequence numbers (wrapping)");
	ok(data_ok, "TSO IPv6: payloads");

	/* UDP over IPv4: a UDP header per segment. */
	len = mk_ip4(p, 17, 1000, false, 0);
	memcpy(gp(e, e->txb), p, len);
	memset(&c, 0, sizeof(c));
	c.ipcss = 14;
	c.ipcso = 24;
	c.ipcse = 33;
	c.tucss = 34;
	c.tucso = 40;
	c.tucmd = TUCMD_IP | CMD_TSE;
	c.hdrlen = 42;
	c.mss = 400;
	put_ctx(e, &c);
	put_data(e, e->txb, (uint32_t)len, CMD_TSE | CMD_EOP,
		 POPTS_IXSM | POPTS_TXSM, 0);
	tx_kick(e);
	k = recv_segs(e, segs, lens, 12);
	is_int(k, 3, "TSO UDP: 3 frames");
	lens_ok = tcp_ok = true;
	for (i = 0; i < k; i++) {
		size_t seg = i < 2 ? 400 : 200;
		const uint8_t *ip = segs[i] + 14, *udp = ip + 20;

		if (be16(udp + 4) != 8 + seg || !ip4_ok(ip))
			lens_ok = false;
		if (!l4_ok4(ip, udp, 8 + seg))
			tcp_ok = false;
	}
	ok(lens_ok, "TSO UDP: UDP lengths, IP checksums");
	ok(tcp_ok, "TSO UDP: UDP checksums");
}

static void test_vlan(struct env *e)
{
	uint8_t f[256], out[256];
	ssize_t n;

	tx_init(e, 16);
	mk_frame(f, peer, 100, 6);
	memcpy(gp(e, e->txb), f, 100);
	put_legacy(e, e->txb, 100, CMD_EOP | CMD_VLE, 0, 0, 0x2123);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	ok(n == 100 && memcmp(out, f, 100) == 0,
	   "VLE without CTRL.VME: no tag");
	wr(e, CTRL, rd(e, CTRL) | CTRL_VME);
	put_legacy(e, e->txb, 100, CMD_EOP | CMD_VLE, 0, 0, 0x2123);
	tx_kick(e);
	n = host_recv(e, out, sizeof(out));
	ok(n == 104 && be16(out + 12) == 0x8100 && be16(out + 14) == 0x2123 &&
		   memcmp(out, f, 12) == 0 && memcmp(out + 16, f + 12, 88) == 0,
	   "VLE with VME: 802.1Q tag inserted");
	wr(e, CTRL, rd(e, CTRL) & ~CTRL_VME);
}

static void test_rx(struct env *e)
{
	uint8_t f[4096];
	const uint8_t *d;
	unsigned i;
	bool ok_lens = true;

	rx_init(e, 16, RCTL_EN | RCTL_BAM | RCTL_SECRC, 15);
	wr(e, IMS, ICR_RXT0);
	rd(e, ICR);
	mk_frame(f, mac, 100, 7);
	ok(host_send(e, f, 100), "host sends a unicast frame");
	ok(wait_rdh(e, 1), "RDH advances to 1");
	d = rxd(e, 0);
	is_int(le16(d + 8), 100, "descriptor length 100 (SECRC)");
	is_int(d[12], RX_DD | RX_EOP | RX_IXSM, "status DD EOP IXSM");
	is_int(d[13], 0, "no errors");
	ok(memcmp(rxbuf(e, 0), f, 100) == 0, "frame in the buffer");
	is_int(level(e), 1, "RXT0 interrupt");
	is_int(rd(e, ICR) & ICR_RXT0, ICR_RXT0, "ICR.RXT0");
	is_int(rd(e, GPRC), 1, "GPRC 1");
	is_int(rd(e, TPR), 1, "TPR 1");
	is_int(rd(e, TPR), 0, "TPR cleared on read");
	is_int(rd(e, GORCL), 104, "GORC counts 104 octets");
	rd(e, GORCH);
	is_int(rd(e, GORCL), 0, "GORC cleared by reading the high half");

	/* A short frame is padded; without SECRC the FCS is appended. */
	wr(e, RCTL, RCTL_EN | RCTL_BAM);
	mk_frame(f, mac, 42, 8);
	host_send(e, f, 42);
	ok(wait_rdh(e, 2), "second frame in");
	d = rxd(e, 1);
	is_int(le16(d + 8), 64, "42 bytes padded to 60, plus FCS");
	ok(memcmp(rxbuf(e, 1), f, 42) == 0 && rxbuf(e, 1)[59] == 0,
	   "padding is zeros");
	{
		const uint8_t *b = rxbuf(e, 1);
		uint32_t c = 0xffffffffu, fcs;
		unsigned j, k;

		for (j = 0; j < 60; j++) {
			c ^= b[j];
			for (k = 0; k < 8; k++)
				c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
		}
		fcs = (uint32_t)b[60] | (uint32_t)b[61] << 8 |
		      (uint32_t)b[62] << 16 | (uint32_t)b[63] << 24;
		is_int(fcs, ~c, "FCS is the frame's CRC-32");
	}

	/* Multi-descriptor: 256-byte buffers, a 1000-byte frame (LPE). */
	rx_init(e, 16, RCTL_EN | RCTL_SECRC | RCTL_BSIZE_256 | RCTL_LPE, 15);
	mk_frame(f, mac, 1000, 9);
	host_send(e, f, 1000);
	ok(wait_rdh(e, 4), "1000 bytes take 4 descriptors of 256");
	for (i = 0; i < 4; i++) {
		d = rxd(e, i);
		if (le16(d + 8) != (i < 3 ? 256 : 232) ||
		    d[12] != (RX_DD | RX_IXSM | (i == 3 ? RX_EOP : 0)) ||
		    memcmp(rxbuf(e, i), f + 256 * i, i < 3 ? 256 : 232))
			ok_lens = false;
	}
	ok(ok_lens, "lengths 256/256/256/232, EOP only on the last, data");

	/* Oversized without LPE, and runts, are dropped. */
	wr(e, RCTL, RCTL_EN | RCTL_SECRC | RCTL_BSIZE_256);
	rd(e, ROC);
	mk_frame(f, mac, 1600, 10);
	host_send(e, f, 1600);
	host_send(e, f, 10);
	mk_frame(f, mac, 80, 11);
	host_send(e, f, 80);
	ok(wait_rdh(e, 5), "only the 80-byte frame arrives");
	ok(memcmp(rxbuf(e, 4), f, 80) == 0, "it is the 80-byte one");
	is_int(rd(e, ROC), 1, "ROC counts the oversized frame");

	/* Larger than the whole ring can hold: dropped with RXO. */
	rx_init(e, 8, RCTL_EN | RCTL_SECRC | RCTL_BSIZE_256 | RCTL_LPE, 7);
	rd(e, ICR);
	rd(e, MPC);
	mk_frame(f, mac, 4000, 12);
	host_send(e, f, 4000);
	mk_frame(f, mac, 70, 13);
	host_send(e, f, 70);
	ok(wait_rdh(e, 1), "frame larger than the ring dropped, next one in");
	ok(memcmp(rxbuf(e, 0), f, 70) == 0, "the small frame");
	is_int(rd(e, ICR) & ICR_RXO, ICR_RXO, "RXO raised");
	is_int(rd(e, MPC), 1, "MPC counts it");
	rd(e, ICR);
	wr(e, IMC, ~0u);
}

/* Send 'bad' (should be filtered), then a good frame; true when only the
 * good one arrived (RDH moves by one and the buffer holds it). */
static bool filtered(struct env *e, const uint8_t *dst, unsigned *slot)
{
	uint8_t f[128], g[128];

	mk_frame(f, dst, 80, 20);
	mk_frame(g, mac, 80, 21);
	host_send(e, f, 80);
	host_send(e, g, 80);
	if (!wait_rdh(e, *slot + 1))
		return false;
	sleep_ms(5);
	if (rd(e, RDH) != *slot + 1)
		return false;
	return memcmp(rxbuf(e, (*slot)++), g, 80) == 0;
}

/* Send a frame to 'dst'; true when it arrived. */
static bool accepted(struct env *e, const uint8_t *dst, unsigned *slot)
{
	uint8_t f[128];

	mk_frame(f, dst, 80, 22);
	host_send(e, f, 80);
	if (!wait_rdh(e, *slot + 1))
		return false;
	return memcmp(rxbuf(e, (*slot)++), f, 80) == 0;
}

static void test_filter(struct env *e)
{
	static const uint8_t other[6] = {0x52, 0x54, 0x00, 0x99, 0x99, 0x99};
	static const uint8_t second[6] = {0x52, 0x54, 0x00, 0x77, 0x77, 0x77};
	static const uint8_t mc[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
	static const uint8_t mc2[6] = {0x01, 0x00, 0x5e, 0x7f, 0x12, 0x34};
	uint32_t h;
	unsigned s = 0;

	rx_init(e, 64, RCTL_EN | RCTL_SECRC, 63);
	ok(filtered(e, other, &s), "unicast to another MAC dropped");
	ok(filtered(e, bcast, &s), "broadcast dropped without BAM");
	ok(filtered(e, mc, &s), "multicast dropped (empty MTA)");
	wr(e, RCTL, RCTL_EN | RCTL_SECRC | RCTL_BAM);
	ok(accepted(e, bcast, &s), "broadcast accepted with BAM");
	rd(e, BPRC);
	wr(e, RAL(1), 0x77005452u);
	wr(e, RAH(1), RAH_AV | 0x7777);
	ok(accepted(e, second, &s), "second receive address accepted");
	wr(e, RAH(1), 0x7777);
	ok(filtered(e, second, &s), "not once its AV bit is clear");
	/* MTA, MO = 0: hash = bits 47:36 of the address. */
	h = ((uint32_t)mc[4] >> 4 | (uint32_t)mc[5] << 4) & 0xfff;
	wr(e, MTA + 4 * (h >> 5), 1u << (h & 31));
	ok(accepted(e, mc, &s), "multicast accepted by its MTA bit");
	ok(filtered(e, mc2, &s), "other multicast still dropped");
	rd(e, MPRC);
	wr(e, RCTL, RCTL_EN | RCTL_SECRC | RCTL_MPE);
	ok(accepted(e, mc2, &s), "MPE accepts any multicast");
	is_int(rd(e, MPRC), 1, "MPRC counts it");
	ok(filtered(e, other, &s), "MPE does not accept other unicast");
	wr(e, RCTL, RCTL_EN | RCTL_SECRC | RCTL_UPE);
	ok(accepted(e, other, &s), "UPE accepts other unicast");
	/* MO = 3: bits 43:32. */
	wr(e, MTA + 4 * (h >> 5), 0);
	h = ((uint32_t)mc2[4] | (uint32_t)mc2[5] << 8) & 0xfff;
	wr(e, MTA + 4 * (h >> 5), 1u << (h & 31));
	wr(e, RCTL, RCTL_EN | RCTL_SECRC | 3u << 12);
	ok(accepted(e, mc2, &s), "MO=3 hash");
	wr(e, MTA + 4 * (h >> 5), 0);
}

static void test_rx_vlan(struct env *e)
{
	uint8_t f[128], g[128];
	const uint8_t *d;

	rx_init(e, 16, RCTL_EN | RCTL_SECRC, 15);
	wr(e, CTRL, rd(e, CTRL) | CTRL_VME);
	mk_frame(f, mac, 100, 30);
	pbe16(f + 12, 0x8100);
	pbe16(f + 14, 0x6005);
	host_send(e, f, 100);
	ok(wait_rdh(e, 1), "tagged frame in");
	d = rxd(e, 0);
	ok(d[12] & RX_VP, "VP status");
	is_int(le16(d + 14), 0x6005, "special holds the tag");
	is_int(le16(d + 8), 96, "tag stripped (96 bytes)");
	ok(memcmp(rxbuf(e, 0), f, 12) == 0 &&
		   memcmp(rxbuf(e, 0) + 12, f + 16, 84) == 0,
	   "frame without the tag");
	/* VLAN filter: VLAN 5 dropped until its VFTA bit is set. */
	wr(e, RCTL, RCTL_EN | RCTL_SECRC | RCTL_VFE);
	mk_frame(f, mac, 100, 31);
	pbe16(f + 12, 0x8100);
	pbe16(f + 14, 0x0005);
	mk_frame(g, mac, 80, 32);
	host_send(e, f, 100);
	host_send(e, g, 80);
	ok(wait_rdh(e, 2) && memcmp(rxbuf(e, 1), g, 80) == 0,
	   "VFE drops VLAN 5 without its VFTA bit (untagged passes)");
	wr(e, VFTA, 1u << 5);
	host_send(e, f, 100);
	ok(wait_rdh(e, 3) && le16(rxd(e, 2) + 14) == 5 &&
		   (rxd(e, 2)[12] & RX_VP),
	   "VFTA bit 5 lets VLAN 5 in");
	wr(e, CTRL, rd(e, CTRL) & ~CTRL_VME);
	wr(e, VFTA, 0);
}

static void test_rx_full(struct env *e)
{
	uint8_t f[128];
	unsigned i;
	bool all = true;

	/* 8 descriptors, 3 given: 5 frames arrive, 3 fit. */
	rx_init(e, 8, RCTL_EN | RCTL_SECRC, 3);
	rd(e, ICR);
	rd(e, RNBC);
	for (i = 0; i < 5; i++) {
		mk_frame(f, mac, 80, (uint8_t)(40 + i));
		host_send(e, f, 80);
	}
	ok(wait_rdh(e, 3), "3 frames fill the 3 descriptors");
	sleep_ms(20);
	is_int(rd(e, RDH), 3, "no more while the ring is full");
	ok(rd(e, ICR) & ICR_RXDMT0, "RXDMT0 at the threshold");
	ok(rd(e, RNBC) >= 1, "RNBC counts the stall");
	wr(e, RDT, 7);
	ok(wait_rdh(e, 5), "after RDT moves, the held frames arrive");
	for (i = 0; i < 5; i++) {
		mk_frame(f, mac, 80, (uint8_t)(40 + i));
		if (memcmp(rxbuf(e, i), f, 80))
			all = false;
	}
	ok(all, "all 5 in order, none lost");

	/* Receiver off: frames are dropped, not queued. */
	wr(e, RCTL, RCTL_SECRC);
	mk_frame(f, mac, 80, 50);
	host_send(e, f, 80);
	sleep_ms(30);
	wr(e, RCTL, RCTL_EN | RCTL_SECRC);
	mk_frame(f, mac, 80, 51);
	host_send(e, f, 80);
	ok(wait_rdh(e, 6) && memcmp(rxbuf(e, 5), f, 80) == 0,
	   "with RCTL.EN clear frames are dropped");
	/* Stop while full, then reset: the backend is drained again. */
	wr(e, RDT, 6);
	mk_frame(f, mac, 80, 52);
	host_send(e, f, 80);
	sleep_ms(20);
	wr(e, CTRL, CTRL_RST);
	sleep_ms(50);
	rx_init(e, 8, RCTL_EN | RCTL_SECRC, 7);
	mk_frame(f, mac, 80, 53);
	host_send(e, f, 80);
	ok(wait_rdh(e, 1) && memcmp(rxbuf(e, 0), f, 80) == 0,
	   "after reset, a fresh frame arrives (old one dropped)");
}

static void test_io_bar(struct env *e)
{
	uint32_t v;

	vdrv_pio(&e->m, e->io, 4, true, STATUS);
	is_int(vdrv_pio(&e->m, e->io, 4, false, 0), STATUS,
	       "IOADDR reads back");
	v = (uint32_t)vdrv_pio(&e->m, e->io + 4, 4, false, 0);
	is_int(v, rd(e, STATUS), "IODATA reads STATUS");
	vdrv_pio(&e->m, e->io, 4, true, IMS);
	vdrv_pio(&e->m, e->io + 4, 4, true, ICR_LSC);
	is_int(rd(e, IMS), ICR_LSC, "IODATA writes IMS");
	vdrv_pio(&e->m, e->io, 4, true, CTRL);
	vdrv_pio(&e->m, e->io + 4, 4, true, CTRL_RST);
	is_int(rd(e, IMS), 0, "reset through the I/O window");
	vdrv_pio(&e->m, e->io, 4, true, 0x80000);
	is_int(vdrv_pio(&e->m, e->io + 4, 4, false, 0), 0,
	       "IOADDR beyond the registers: IODATA reads 0");
	vdrv_pio(&e->m, e->io + 4, 4, true, 0xffffffffu);
	vdrv_pio(&e->m, e->io, 4, true, STATUS + 1);
	is_int(vdrv_pio(&e->m, e->io + 4, 4, false, 0), 0,
	       "unaligned IOADDR: IODATA reads 0");
	is_int(vdrv_pio(&e->m, e->io + 4, 2, false, 0), 0xffff,
	       "16-bit IODATA access ignored");
	vdrv_pio(&e->m, e->io, 2, true, 0);
	is_int(vdrv_pio(&e->m, e->io, 4, false, 0), STATUS + 1,
	       "16-bit IOADDR write ignored");
}

static void test_regs_hostile(struct env *e)
{
	is_int(rd(e, 0x7ff0), 0, "unknown register reads 0");
	wr(e, 0x7ff0, 0x1234);
	is_int(rd(e, 0x7ff0), 0, "and ignores writes");
	wr(e, IMS, 0);
	vdrv_mmio(&e->m, e->bar0 + IMS, 1, true, 0xff);
	is_int(rd(e, IMS), 0, "byte write ignored");
	wr(e, RDLEN, 200);
	is_int(rd(e, RDLEN), 128, "RDLEN masked to a 128-byte multiple");
	wr(e, TDLEN, 0xffffffffu);
	is_int(rd(e, TDLEN), 0xfff80, "TDLEN masked to 20 bits");
	wr(e, STATUS, 0);
	is_int(rd(e, STATUS) & STATUS_LU, STATUS_LU, "STATUS is read-only");
	is_int(vdrv_mmio(&e->m, e->bar0 + STATUS, 1, false, 0), 0x83,
	       "byte read of STATUS");
	is_int(vdrv_mmio(&e->m, e->bar0 + RAL(0), 8, false, 0),
	       (uint64_t)(RAH_AV | 0x5634) << 32 | 0x12005452u,
	       "8-byte read of RAL0/RAH0");
	wr(e, RAH(15), 0xffffffffu);
	is_int(rd(e, RAH(15)), 0x8003ffffu, "RAH keeps AV, AS and the address");
	wr(e, 0x4000, 5);
	is_int(rd(e, 0x4000), 0, "statistics are read-only");
	wr(e, CTRL, CTRL_RST);
}

static void test_tx_hostile(struct env *e)
{
	static uint8_t p[70000];
	uint8_t out[2048];
	struct ctxd c = {0};
	size_t len;

	tx_init(e, 16);
	/* Buffer outside RAM: packet dropped, ring advances, DD set. */
	put_legacy(e, 0xf0000000u, 100, CMD_EOP | CMD_RS, 0, 0, 0);
	tx_kick(e);
	is_int(host_recv(e, out, sizeof(out)), -1, "bad buffer: dropped");
	is_int(rd(e, TDH), 1, "ring advanced");
	ok(txd_sta(e, 0) & STA_DD, "DD written");
	/* Huge length on a data descriptor. */
	put_data(e, e->txb, 0xfffff, CMD_EOP | CMD_RS, 0, 0);
	tx_kick(e);
	is_int(host_recv(e, out, sizeof(out)), -1, "1 MiB packet dropped");
	/* Unknown descriptor type. */
	{
		uint8_t *d = txd_next(e);

		ple32(d + 8, 100 | 0xfu << 20 | (uint32_t)CMD_DEXT << 24);
	}
	tx_kick(e);
	is_int(rd(e, TDH), 3, "unknown descriptor type skipped");
	/* TSO with MSS 0, header beyond the packet, header of 0. */
	len = mk_ip4(p, 6, 500, false, 0x10);
	memcpy(gp(e, e->txb), p, len);
	c.ipcss = 14;
	c.ipcso = 24;
	c.ipcse = 33;
	c.tucss = 34;
	c.tucso = 50;
	c.tucmd = TUCMD_IP | TUCMD_TCP | CMD_TSE;
	c.hdrlen = HDR4;
	c.mss = 0;
	put_ctx(e, &c);
	put_data(e, e->txb, (uint32_t)len, CMD_TSE | CMD_EOP,
		 POPTS_IXSM | POPTS_TXSM, 0);
	c.mss = 100;
	c.hdrlen = 255;
	put_ctx(e, &c);
	put_data(e, e->txb, 200, CMD_TSE | CMD_EOP, POPTS_TXSM, 0);
	c.hdrlen = 0;
	put_ctx(e, &c);
	put_data(e, e->txb, 200, CMD_TSE | CMD_EOP, POPTS_TXSM, 0);
	c.hdrlen = HDR4;
	c.tucss = 250;
	c.tucso = 2;
	put_ctx(e, &c);
	put_data(e, e->txb, (uint32_t)len, CMD_TSE | CMD_EOP, POPTS_TXSM, 0);
	rd(e, TSCTFC);
	tx_kick(e);
	is_int(host_recv(e, out, sizeof(out)), -1,
	       "TSO with MSS 0 / header beyond packet / L4 beyond header: "
	       "dropped");
	is_int(rd(e, TSCTFC), 4, "TSCTFC counts the 4 failed contexts");
	is_int(rd(e, TDH), e->tdt, "and the ring moved past them");
	/* MSS 1 on a small packet: bounded, many tiny frames. */
	c.tucss = 34;
	c.tucso = 50;
	c.mss = 1;
	put_ctx(e, &c);
	put_data(e, e->txb, HDR4 + 8, CMD_TSE | CMD_EOP, POPTS_TXSM, 0);
	tx_kick(e);
	is_int(host_drain(e), 8, "MSS 1: 8 one-byte segments");

	/* Tail beyond the ring: nothing processed until fixed. */
	tx_init(e, 8);
	memcpy(gp(e, e->txb), p, 100);
	put_legacy(e, e->txb, 100, CMD_EOP | CMD_RS, 0, 0, 0);
	wr(e, TDT, 1000);
	is_int(rd(e, TDH), 0, "TDT beyond the ring: not processed");
	is_int(host_recv(e, out, sizeof(out)), -1, "nothing sent");
	tx_kick(e);
	is_int(rd(e, TDH), 1, "a sane TDT works again");
	is_int(host_recv(e, out, sizeof(out)), 100, "frame sent");
	wr(e, TDH, 50);
	wr(e, TDT, 2);
	is_int(rd(e, TDH), 50, "TDH beyond the ring: not processed");
	/* Ring outside RAM. */
	tx_init(e, 8);
	wr(e, TDBAL, 0xfffff000u);
	wr(e, TDBAH, 0xffffffffu);
	wr(e, TDT, 3);
	is_int(rd(e, TDH), 0, "ring outside RAM: stopped at once");
	/* Zero-length ring. */
	wr(e, TDLEN, 0);
	wr(e, TDT, 5);
	is_int(rd(e, TDH), 0, "TDLEN 0: nothing");
	/* TCTL.EN clear: nothing until enabled. */
	tx_init(e, 8);
	wr(e, TCTL, 0);
	put_legacy(e, e->txb, 100, CMD_EOP, 0, 0, 0);
	tx_kick(e);
	is_int(rd(e, TDH), 0, "TCTL.EN clear: not processed");
	wr(e, TCTL, TCTL_EN);
	is_int(rd(e, TDH), 1, "enabling TCTL processes it");
	is_int(host_recv(e, out, sizeof(out)), 100, "and sends it");
	/* A whole lap of descriptors without EOP: gathered, then dropped
	 * when too long; the ring never wedges. */
	tx_init(e, 256);
	{
		unsigned i;

		for (i = 0; i < 255; i++)
			put_data(e, e->txb, 0x1000, 0, 0, 0);
	}
	tx_kick(e);
	is_int(rd(e, TDH), 255, "255 descriptors without EOP consumed");
	put_data(e, e->txb, 100, CMD_EOP, 0, 0);
	tx_kick(e);
	is_int(host_recv(e, out, sizeof(out)), -1,
	       "the over-long packet is dropped at EOP");
	put_legacy(e, e->txb, 100, CMD_EOP, 0, 0, 0);
	tx_kick(e);
	is_int(host_recv(e, out, sizeof(out)), 100, "the next one is fine");
}

static void test_rx_hostile(struct env *e)
{
	uint8_t f[128];

	/* Buffer address outside RAM: DD + RXE, the ring moves on. */
	rx_init(e, 8, RCTL_EN | RCTL_SECRC, 7);
	ple64(gp(e, e->rxr), 0xfffffffff000ull);
	mk_frame(f, mac, 80, 60);
	host_send(e, f, 80);
	ok(wait_rdh(e, 1), "descriptor with a bad buffer consumed");
	is_int(rxd(e, 0)[13], RX_RXE, "marked RXE");
	ok(rxd(e, 0)[12] & RX_DD, "with DD");
	host_send(e, f, 80);
	ok(wait_rdh(e, 2) && memcmp(rxbuf(e, 1), f, 80) == 0,
	   "next descriptor fine");
	/* Ring outside RAM: frames dropped, nothing hangs. */
	wr(e, RCTL, 0);
	wr(e, RDBAL, 0xfffff000u);
	wr(e, RDBAH, 0x10);
	wr(e, RDH, 0);
	wr(e, RDT, 5);
	wr(e, RCTL, RCTL_EN | RCTL_SECRC);
	host_send(e, f, 80);
	host_send(e, f, 80);
	sleep_ms(30);
	is_int(rd(e, RDH), 0, "ring outside RAM: nothing written");
	/* Head/tail beyond the ring: held, then delivered once fixed. */
	rx_init(e, 8, RCTL_EN | RCTL_SECRC, 7);
	wr(e, RDT, 100);
	mk_frame(f, mac, 80, 61);
	host_send(e, f, 80);
	sleep_ms(30);
	is_int(rd(e, RDH), 0, "RDT beyond the ring: no delivery");
	wr(e, RDT, 7);
	ok(wait_rdh(e, 1) && memcmp(rxbuf(e, 0), f, 80) == 0,
	   "delivered once RDT is sane");
	/* Odd RDLEN: masked to 128 bytes = 8 descriptors. */
	wr(e, RDLEN, 8 * 16 + 40);
	is_int(rd(e, RDLEN), 128, "RDLEN 168 reads 128");
	/* A flood larger than the socket queue while the ring is full
	 * neither hangs nor crashes. */
	wr(e, RDT, 1);
	{
		unsigned i, sent = 0;

		for (i = 0; i < 50; i++)
			sent += host_send(e, f, 80);
		ok(sent >= 1, "flood while full (%u queued)", sent);
	}
	sleep_ms(20);
	is_int(rd(e, RDH), 1, "ring full: head stays");
}

/* Random register values and random descriptor rings: no crash. */
static void test_garbage(struct env *e)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	uint8_t f[128];
	unsigned i, j, frames = 0, descs = 0;

	mk_frame(f, mac, 80, 70);
	for (i = 0; i < 40; i++) {
		uint8_t *ring = gp(e, e->txr);

		for (j = 0; j < RING_MAX * 16; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			ring[j] = (uint8_t)x;
			gp(e, e->rxr)[j] = (uint8_t)(x >> 8);
		}
		/* Keep buffer addresses mostly inside RAM, sometimes not. */
		for (j = 0; j < RING_MAX; j++) {
			if (j % 3)
				ple64(ring + 16 * j, e->txb + (x % 4096));
			if (j % 4)
				ple64(gp(e, e->rxr) + 16 * j,
				      e->rxb + (j % 64) * RXBUF_STRIDE);
		}
		for (j = 0; j < 200; j++) {
			uint32_t off = (uint32_t)(x % 0x20000) & ~3u;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			if (off == CTRL && (x & 1))
				continue;
			wr(e, off, (uint32_t)(x >> 16));
		}
		wr(e, TDBAL, (uint32_t)e->txr);
		wr(e, TDBAH, 0);
		wr(e, TDLEN, RING_MAX * 16);
		wr(e, TCTL, TCTL_EN | (uint32_t)(x & TCTL_PSP));
		wr(e, TDT, (uint32_t)(x >> 40) % RING_MAX);
		wr(e, RDBAL, (uint32_t)e->rxr);
		wr(e, RDBAH, 0);
		wr(e, RDLEN, RING_MAX * 16);
		wr(e, RCTL, (uint32_t)(x >> 20) | RCTL_EN | RCTL_UPE);
		wr(e, RDT, (uint32_t)(x >> 48) % RING_MAX);
		host_send(e, f, 80);
		frames += host_drain(e);
		descs += rd(e, TDH);
	}
	sleep_ms(20);
	frames += host_drain(e);
	diag("garbage: %u frames out, TDH sum %u", frames, descs);
	wr(e, CTRL, CTRL_RST);
	is_int(rd(e, STATUS) & STATUS_LU, STATUS_LU,
	       "alive after 40 rounds of random registers and rings");
	is_int(eerd(e, 0), 0x5452, "EEPROM still answers");
}

static void test_no_backend(void)
{
	struct env e;
	uint8_t out[256];
	int rc = env_new(&e, false, NULL);

	is_int(rc, 0, "e1000 without backend starts");
	if (rc == 0) {
		is_int(rd(&e, STATUS) & STATUS_LU, 0, "no backend: link down");
		is_int(mdic(&e, 1, 1, false, 0) & 0x4, 0, "BMSR: no link");
		tx_init(&e, 8);
		put_legacy(&e, e.txb, 100, CMD_EOP | CMD_RS, 0, 0, 0);
		tx_kick(&e);
		ok(rd(&e, TDH) == 1 && (txd_sta(&e, 0) & STA_DD),
		   "TX completes (frame dropped)");
		is_int(host_recv(&e, out, sizeof(out)), -1, "nothing sent");
		is_int(rd(&e, GPTC), 0, "and not counted");
	}
	env_free(&e);
}

static void test_config(void)
{
	static const char *const badmac[] = {"mac", "01:00:00:00:00:01", NULL};
	static const char *const badfd[] = {"backend", "fd:999", NULL};
	struct env e;
	const struct devmodel *m = devmodel_find("e1000");
	struct cfg_node *root = cfg_new(), *n;
	int rc;

	ok(m && m->kind == DEVMODEL_PCI, "model e1000 registered");
	rc = env_new(&e, false, badmac);
	ok(rc < 0, "multicast MAC refused (%d)", rc);
	env_free(&e);
	rc = env_new(&e, false, badfd);
	ok(rc < 0, "backend fd:999 (not open) refused (%d)", rc);
	env_free(&e);
	if (m) {
		n = cfg_create(root, "pci.0.5.0");
		is_int(m->parse_legacy(n, "slirp,mac=52:54:00:00:00:01"), 0,
		       "legacy options parse");
		is_str(cfg_get_raw(n, "backend"), "slirp", "backend key");
		is_str(cfg_get_raw(n, "mac"), "52:54:00:00:00:01", "mac key");
	}
	cfg_free(root);
}

int main(void)
{
	struct env e;
	int rc;

	plan_no_plan();
	rc = env_new(&e, true, NULL);
	if (rc) {
		printf("Bail out! machine: %s\n", strerror(-rc));
		return 1;
	}
	test_identity(&e);
	test_eeprom(&e);
	test_phy(&e);
	test_interrupts(&e);
	test_reset(&e);
	test_tx_legacy(&e);
	test_tx_csum(&e);
	test_tso(&e);
	test_vlan(&e);
	test_rx(&e);
	test_filter(&e);
	test_rx_vlan(&e);
	test_rx_full(&e);
	test_io_bar(&e);
	test_regs_hostile(&e);
	test_tx_hostile(&e);
	test_rx_hostile(&e);
	test_garbage(&e);
	env_free(&e);
	test_no_backend();
	test_config();
	return done_testing();
}
