/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The e1000 NIC, "-s N,e1000,backend[,mac=xx:xx:xx:xx:xx:xx]" (bhyve's
 * e1000): an Intel 82545EM gigabit copper controller, for guests without
 * virtio drivers.  Facts from the Intel PCI/PCI-X Family of Gigabit
 * Ethernet Controllers Software Developer's Manual (8254x); the code is
 * our own.
 *
 * What the guest sees: PCI 8086:100f, class 02/00/00, subsystem
 * 8086:1008; BAR0 the 128 KiB register window (32-bit memory), BAR2 the
 * 8-byte I/O window (IOADDR at 0, IODATA at 4) that Linux uses for the
 * 82545 reset; INTA (no MSI, as bhyve).  Registers: CTRL (RST resets the
 * MAC, SLU raises LSC), STATUS (1000 Mb/s full duplex, link up while a
 * backend exists), EECD bit-banged Microwire EEPROM (64 words: MAC, IDs,
 * checksum word 0x3f making the sum 0xBABA) and EERD, MDIC to an M88E1011
 * PHY at address 1, ICR/ICS/IMS/IMC, RCTL, TCTL, the descriptor ring
 * registers, 16 receive addresses, the 4096-bit multicast table, the VLAN
 * filter table, the statistics block (read to clear; 64-bit counters
 * clear when their high half is read) and a set of registers that only
 * hold what is written (flow control, ITR, RDTR/RADV/TIDV/TADV,
 * RXDCTL/TXDCTL, RXCSUM, wake-up...).  Anything else reads 0 and ignores
 * writes, with a rate-limited note.
 *
 * Interrupt moderation is not modelled: ITR, RDTR, RADV, TIDV and TADV
 * are stored and read back, but causes are raised at once; the INTx line
 * is (ICR & IMS) != 0 and drops when ICR is read.  TXD_LOW and the
 * small-packet detect are never raised.
 *
 * Transmit: legacy descriptors (with the CSO/CSS checksum of the EOP
 * descriptor), context descriptors and data descriptors: IP and TCP/UDP
 * checksums are inserted in software; TSO splits the packet into MSS-sized
 * frames, each with its own IPv4 length and id (or IPv6 payload length),
 * TCP sequence number (FIN/PSH only in the last) or UDP length, and fresh
 * checksums (the guest's pseudo-header sum has its length added per
 * frame, as the hardware does).  VLE inserts an 802.1Q tag when CTRL.VME
 * is set.  Descriptors with RS get DD written back.  Work is done on the
 * vCPU thread that writes TDT, at most one lap of the ring per write;
 * a packet may continue across writes.
 *
 * Receive: the backend's callback pulls frames, filters them (VLAN
 * filter with VFE, broadcast with BAM, RAL/RAH exact matches, UPE, MPE,
 * the multicast hash at RCTL.MO), strips the VLAN tag with CTRL.VME, pads
 * to 60 bytes, appends the FCS unless SECRC, and writes them into legacy
 * receive descriptors at the RCTL buffer size, as many as the frame needs
 * (EOP on the last).  Status: DD, EOP, IXSM (no checksum offload), VP.
 * Causes: RXT0 per frame, RXDMT0 at the RDMTS threshold, RXO when a frame
 * is dropped for being larger than the whole ring.  When the ring has no
 * room the frame is held and the backend's callbacks are stopped; an RDT
 * write (or RCTL, or a reset) restarts them.  With RCTL.EN clear frames
 * are read and dropped.  No backend ("backend" unset): link down, frames
 * sent are dropped.  Frames are bare Ethernet (no vnet header).
 *
 * Hostile guests: descriptor rings and buffers are reached only through
 * gmem (an address outside RAM drops the packet or marks the receive
 * descriptor with RXE, with one rate-limited warning); ring lengths are
 * masked to 128-byte multiples; a head or tail beyond the ring stops the
 * ring until the guest fixes it; TSO with MSS 0 or headers that do not fit
 * drops the packet; packets are capped at 64 KiB + 256 bytes.  No guest
 * value loops: every walk is bounded by the ring size.
 *
 * Threads and locks: BAR accesses on vCPU threads, the receive callback
 * on the backend's thread.  e->lock guards all device state and is held
 * while transmitting and receiving (net_backend_send/recv are then
 * serialised, as net_backend.h requires).  Lock order: e->lock -> the PCI
 * irq_lock (INTx).  net_backend_rx_enable(true) may run the callback on
 * the calling thread, so it is called only after dropping e->lock.
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core/gmem.h"
#include "lib/log.h"
#include "net/net_backend.h"
#include "pci/pci.h"

/* PCI identity. */
#define E1000_VENDOR 0x8086
#define E1000_DEVICE 0x100f /* 82545EM copper */
#define E1000_SUBDEV 0x1008
#define E1000_BAR_REGS 0
#define E1000_BAR_REGS_SIZE (128 * 1024)
#define E1000_BAR_IO 2
#define E1000_BAR_IO_SIZE 8
#define E1000_IO_REG_MAX 0x1ffff /* IOADDR beyond: no register */

/* Registers (byte offsets in BAR0). */
#define REG_CTRL 0x0000
#define REG_CTRL_DUP 0x0004
#define REG_STATUS 0x0008
#define REG_EECD 0x0010
#define REG_EERD 0x0014
#define REG_CTRL_EXT 0x0018
#define REG_MDIC 0x0020
#define REG_VET 0x0038
#define REG_ICR 0x00c0
#define REG_ICS 0x00c8
#define REG_IMS 0x00d0
#define REG_IMC 0x00d8
#define REG_RCTL 0x0100
#define REG_TCTL 0x0400
#define REG_RDBAL 0x2800
#define REG_RDBAH 0x2804
#define REG_RDLEN 0x2808
#define REG_RDH 0x2810
#define REG_RDT 0x2818
#define REG_TDBAL 0x3800
#define REG_TDBAH 0x3804
#define REG_TDLEN 0x3808
#define REG_TDH 0x3810
#define REG_TDT 0x3818
#define REG_STATS 0x4000 /* 64 counters */
#define REG_MTA 0x5200	 /* 128 dwords */
#define REG_RA 0x5400	 /* 16 RAL/RAH pairs */
#define REG_VFTA 0x5600	 /* 128 dwords */

#define NSTATS 64
#define NMTA 128
#define NRA 16
#define NVFTA 128

/* CTRL */
#define CTRL_FD 0x00000001u
#define CTRL_SLU 0x00000040u
#define CTRL_SPD_1000 0x00000200u
#define CTRL_RST 0x04000000u
#define CTRL_VME 0x40000000u
#define CTRL_PHY_RST 0x80000000u
#define CTRL_DEFAULT (CTRL_FD | CTRL_SPD_1000)

/* STATUS */
#define STATUS_FD 0x00000001u
#define STATUS_LU 0x00000002u
#define STATUS_SPEED_1000 0x00000080u

/* EECD */
#define EECD_SK 0x0001u
#define EECD_CS 0x0002u
#define EECD_DI 0x0004u
#define EECD_DO 0x0008u
#define EECD_FWE 0x0030u
#define EECD_REQ 0x0040u
#define EECD_GNT 0x0080u
#define EECD_PRES 0x0100u
#define EECD_WMASK (EECD_SK | EECD_CS | EECD_DI | EECD_FWE | EECD_REQ)

/* EERD */
#define EERD_START 0x00000001u
#define EERD_DONE 0x00000010u

/* MDIC */
#define MDIC_DATA 0x0000ffffu
#define MDIC_OP_WRITE 0x04000000u
#define MDIC_OP_READ 0x08000000u
#define MDIC_READY 0x10000000u
#define MDIC_IE 0x20000000u
#define MDIC_ERROR 0x40000000u
#define E1000_PHY_ADDR 1

/* Interrupt causes (ICR/ICS/IMS/IMC) */
#define ICR_TXDW 0x00000001u
#define ICR_TXQE 0x00000002u
#define ICR_LSC 0x00000004u
#define ICR_RXDMT0 0x00000010u
#define ICR_RXO 0x00000040u
#define ICR_RXT0 0x00000080u
#define ICR_MDAC 0x00000200u
#define ICR_MASK 0x0001ffffu

/* RCTL */
#define RCTL_EN 0x00000002u
#define RCTL_UPE 0x00000008u
#define RCTL_MPE 0x00000010u
#define RCTL_LPE 0x00000020u
#define RCTL_RDMTS_SHIFT 8
#define RCTL_MO_SHIFT 12
#define RCTL_BAM 0x00008000u
#define RCTL_BSIZE_SHIFT 16
#define RCTL_VFE 0x00040000u
#define RCTL_BSEX 0x02000000u
#define RCTL_SECRC 0x04000000u

/* TCTL */
#define TCTL_EN 0x00000002u
#define TCTL_PSP 0x00000008u

/* RAH */
#define RAH_AV 0x80000000u
#define RAH_AS 0x00030000u

/* Transmit descriptors: the command byte (offset 11) and status (12). */
#define TXD_CMD_EOP 0x01u
#define TXD_CMD_IC 0x04u  /* legacy: insert checksum */
#define TXD_CMD_TSE 0x04u /* data: TCP segmentation */
#define TXD_CMD_RS 0x08u
#define TXD_CMD_DEXT 0x20u
#define TXD_CMD_VLE 0x40u
#define TXD_STA_DD 0x01u
#define TXD_DTYP_CTX 0x0u
#define TXD_DTYP_DATA 0x1u
#define TUCMD_TCP 0x01u
#define TUCMD_IP 0x02u
#define POPTS_IXSM 0x01u
#define POPTS_TXSM 0x02u

/* Receive descriptor status and errors. */
#define RXD_STA_DD 0x01u
#define RXD_STA_EOP 0x02u
#define RXD_STA_IXSM 0x04u
#define RXD_STA_VP 0x08u
#define RXD_ERR_RXE 0x80u

/* PHY (M88E1011) registers and values. */
#define PHY_BMCR 0x00
#define PHY_BMSR 0x01
#define PHY_ID1 0x02
#define PHY_ID2 0x03
#define PHY_ANAR 0x04
#define PHY_ANLPAR 0x05
#define PHY_ANER 0x06
#define PHY_GTCR 0x09
#define PHY_GTSR 0x0a
#define PHY_EXTSR 0x0f
#define PHY_M88_PSCR 0x10
#define PHY_M88_PSSR 0x11
#define PHY_NREGS 32
#define BMCR_RESET 0x8000u
#define BMCR_ANRESTART 0x0200u
#define BMSR_CAPS 0x7949u /* 10/100 FD/HD, ext status, AN able... */
#define BMSR_LINK 0x0004u
#define BMSR_ANDONE 0x0020u
#define PHY_ID1_M88 0x0141u
#define PHY_ID2_M88 0x0c20u

/* Statistics (index = (offset - 0x4000) / 4). */
#define ST_MPC 0x04
#define ST_PRC64 0x17 /* ...PRC1522 at 0x1c */
#define ST_GPRC 0x1d
#define ST_BPRC 0x1e
#define ST_MPRC 0x1f
#define ST_GPTC 0x20
#define ST_GORCL 0x22
#define ST_GORCH 0x23
#define ST_GOTCL 0x24
#define ST_GOTCH 0x25
#define ST_RNBC 0x28
#define ST_RUC 0x29
#define ST_ROC 0x2b
#define ST_TORL 0x30
#define ST_TORH 0x31
#define ST_TOTL 0x32
#define ST_TOTH 0x33
#define ST_TPR 0x34
#define ST_TPT 0x35
#define ST_PTC64 0x36 /* ...PTC1522 at 0x3b */
#define ST_MPTC 0x3c
#define ST_BPTC 0x3d
#define ST_TSCTC 0x3e
#define ST_TSCTFC 0x3f

/* EEPROM (Microwire, 64 x 16 bits). */
#define EE_WORDS 64
#define EE_ADDR_BITS 6
#define EE_SUM 0xbabau
#define EE_CHECKSUM_WORD 0x3f

/* Sizes. */
#define ETH_HLEN 14
#define ETH_ZLEN 60 /* minimum frame without FCS */
#define ETH_FCS 4
#define VLAN_HLEN 4
#define RX_STD_MAX 1518 /* 1522 with FCS, room for a VLAN tag */
#define RX_MAX 16384	/* with LPE */
#define TX_MAX (65536 + 256)
#define SEG_MAX (65535 + 255) /* MSS + header */
#define WARN_MS 5000

/* The transmit context, from the last context descriptor. */
struct e1000_txctx {
	uint8_t ipcss, ipcso, tucss, tucso, tucmd, hdrlen;
	uint16_t ipcse, tucse, mss;
	uint32_t paylen;
};

/* A packet being gathered from transmit descriptors. */
struct e1000_txpkt {
	size_t len;    /* bytes gathered in txbuf */
	bool inpkt;    /* its first descriptor was seen */
	bool bad;      /* drop at EOP (too long, address outside RAM) */
	bool tse;      /* TSO (data descriptors only) */
	uint8_t popts; /* from its first data descriptor */
};

/* Microwire EEPROM interface state. */
enum ee_state { EE_IDLE, EE_CMD, EE_READ, EE_WDATA, EE_DONE };

struct e1000_ee {
	enum ee_state state;
	unsigned bits; /* bits shifted in for the current phase */
	uint32_t val;  /* opcode + address, or write data */
	unsigned op, addr;
	uint16_t word; /* word being shifted out */
	bool dout;     /* DO level */
	bool wen;      /* EWEN given */
	uint32_t eecd; /* the guest-writable EECD bits */
};

struct e1000 {
	struct pci_dev *pd;
	const struct gmem *mem;
	struct net_backend *be; /* NULL: no backend, link down */
	uint8_t mac[6];
	pthread_mutex_t lock;

	/* Registers. */
	uint32_t ctrl, ctrl_ext, eerd, mdic, vet, icr, ims, rctl, tctl;
	uint32_t rdbal, rdbah, rdlen, rdh, rdt;
	uint32_t tdbal, tdbah, tdlen, tdh, tdt;
	uint32_t ra[2 * NRA], mta[NMTA], vfta[NVFTA], stats[NSTATS];
	uint32_t *plain; /* values of plain_regs[] */
	uint32_t ioaddr;
	bool irq_on;

	uint16_t phy[PHY_NREGS];
	uint16_t eeprom[EE_WORDS];
	struct e1000_ee ee;

	/* Transmit. */
	struct e1000_txctx txc;
	struct e1000_txpkt tx;
	uint8_t *txbuf; /* TX_MAX */
	uint8_t *seg;	/* SEG_MAX */

	/* Receive. */
	uint8_t *rxbuf; /* RX_MAX + FCS + slack */
	size_t rx_len;	/* bytes of the held frame, FCS included */
	bool rx_have;	/* a filtered frame waits for descriptors */
	bool rx_vp;	/* its VLAN tag was stripped into rx_vlan */
	uint16_t rx_vlan;
	bool rx_stopped; /* backend callbacks stopped: ring full */
};

/*
 * Registers that only hold what the guest writes (no side effects):
 * offset, value after reset, writable bits.
 */
struct plain_reg {
	uint32_t off, def, wmask;
};

static const struct plain_reg plain_regs[] = {
	{0x001c, 0, 0xffffffffu},	    /* FLA */
	{0x0028, 0x00c28001u, 0xffffffffu}, /* FCAL */
	{0x002c, 0x00000100u, 0x0000ffffu}, /* FCAH */
	{0x0030, 0x00008808u, 0x0000ffffu}, /* FCT */
	{0x00c4, 0, 0x0000ffffu},	    /* ITR */
	{0x0170, 0, 0x0000ffffu},	    /* FCTTV */
	{0x0178, 0, 0xc000ffffu},	    /* TXCW */
	{0x0180, 0, 0},			    /* RXCW */
	{0x0410, 0x00602008u, 0x3fffffffu}, /* TIPG */
	{0x0458, 0, 0x0000ffffu},	    /* AIT */
	{0x0e00, 0x07068302u, 0xffffffffu}, /* LEDCTL */
	{0x1000, 0x00000030u, 0x0000ffffu}, /* PBA */
	{0x2160, 0, 0x8000fff8u},	    /* FCRTL */
	{0x2168, 0, 0x0000fff8u},	    /* FCRTH */
	{0x2410, 0, 0x00001fffu},	    /* RDFH */
	{0x2418, 0, 0x00001fffu},	    /* RDFT */
	{0x2420, 0, 0x00001fffu},	    /* RDFHS */
	{0x2428, 0, 0x00001fffu},	    /* RDFTS */
	{0x2430, 0, 0x00001fffu},	    /* RDFPC */
	{0x2820, 0, 0x0000ffffu},	    /* RDTR */
	{0x2828, 0x00010000u, 0x01ff3f3fu}, /* RXDCTL */
	{0x282c, 0, 0x0000ffffu},	    /* RADV */
	{0x2c00, 0, 0x00000fffu},	    /* RSRPD */
	{0x3000, 0, 0x00000001u},	    /* TXDMAC */
	{0x3410, 0, 0x00001fffu},	    /* TDFH */
	{0x3418, 0, 0x00001fffu},	    /* TDFT */
	{0x3420, 0, 0x00001fffu},	    /* TDFHS */
	{0x3428, 0, 0x00001fffu},	    /* TDFTS */
	{0x3430, 0, 0x00001fffu},	    /* TDFPC */
	{0x3820, 0, 0x0000ffffu},	    /* TIDV */
	{0x3828, 0, 0x01ff3f3fu},	    /* TXDCTL */
	{0x382c, 0, 0x0000ffffu},	    /* TADV */
	{0x3830, 0x01000400u, 0xffffffffu}, /* TSPMT */
	{0x5000, 0x00000300u, 0x000007ffu}, /* RXCSUM */
	{0x5800, 0, 0x0000000fu},	    /* WUC */
	{0x5808, 0, 0x000f00ffu},	    /* WUFC */
	{0x5810, 0, 0},			    /* WUS */
	{0x5820, 0, 0xffffffffu},	    /* MANC */
	{0x5838, 0, 0x0000000fu},	    /* IPAV */
};
#define NPLAIN (sizeof(plain_regs) / sizeof(plain_regs[0]))

/* ---- little helpers ---- */

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)get_be16(p) << 16 | get_be16(p + 2);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

static bool link_up(const struct e1000 *e)
{
	return e->be != NULL;
}

/* Ones'-complement sum of [p, p+len) as big-endian 16-bit words. */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The Ethernet FCS (CRC-32, reflected 0xedb88320). */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t eth_crc(const uint8_t *p, size_t len)
{
	uint32_t c = 0xffffffffu;
	size_t i;

	for (i = 0; i < len; i++)
		c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

/* ---- statistics ---- */

static void stat_inc(struct e1000 *e, unsigned idx)
{
	if (e->stats[idx] != UINT32_MAX)
		e->stats[idx]++;
}

/* Add to the 64-bit counter whose low half is at 'lo'. */
static void stat_add64(struct e1000 *e, unsigned lo, uint64_t v)
{
	uint64_t c = ((uint64_t)e->stats[lo + 1] << 32 | e->stats[lo]) + v;

	e->stats[lo] = (uint32_t)c;
	e->stats[lo + 1] = (uint32_t)(c >> 32);
}

/* The size bucket (64, 127, 255, 511, 1023, 1522) of a frame with FCS;
 * -1 beyond 1522. */
static int size_bucket(size_t wire)
{
	static const size_t top[] = {64, 127, 255, 511, 1023, 1522};
	int i;

	for (i = 0; i < 6; i++)
		if (wire <= top[i])
			return i;
	return -1;
}

static unsigned stat_index_read(struct e1000 *e, unsigned idx)
{
	uint32_t v = e->stats[idx];

	switch (idx) {
	case ST_GORCL:
	case ST_GOTCL:
	case ST_TORL:
	case ST_TOTL:
		return v; /* cleared with the high half */
	case ST_GORCH:
	case ST_GOTCH:
	case ST_TORH:
	case ST_TOTH:
		e->stats[idx - 1] = 0;
		break;
	default:
		break;
	}
	e->stats[idx] = 0;
	return v;
}

/* ---- interrupts ---- */

/* The INTx line follows (ICR & IMS). */
static void irq_update(struct e1000 *e)
{
	bool want = (e->icr & e->ims) != 0;

	if (want == e->irq_on)
		return;
	e->irq_on = want;
	if (want)
		pci_intx_assert(e->pd);
	else
		pci_intx_deassert(e->pd);
}

static void irq_raise(struct e1000 *e, uint32_t causes)
{
	e->icr |= causes & ICR_MASK;
	irq_update(e);
}

/* ---- EEPROM ---- */

static void eeprom_build(struct e1000 *e)
{
	uint16_t sum = 0;
	unsigned i;

	memset(e->eeprom, 0, sizeof(e->eeprom));
	for (i = 0; i < 3; i++)
		e->eeprom[i] =
			(uint16_t)(e->mac[2 * i] | e->mac[2 * i + 1] << 8);
	e->eeprom[0x0b] = E1000_SUBDEV;
	e->eeprom[0x0c] = E1000_VENDOR;
	e->eeprom[0x0d] = E1000_DEVICE;
	e->eeprom[0x0e] = E1000_VENDOR;
	for (i = 0; i < EE_CHECKSUM_WORD; i++)
		sum = (uint16_t)(sum + e->eeprom[i]);
	e->eeprom[EE_CHECKSUM_WORD] = (uint16_t)(EE_SUM - sum);
}

static void ee_deselect(struct e1000_ee *ee)
{
	ee->state = EE_IDLE;
	ee->bits = 0;
	ee->val = 0;
	ee->dout = true; /* ready */
}

/*
 * One rising SK edge with CS high: a start bit, two opcode bits and six
 * address bits come in; READ (10) then shifts out a dummy 0 and data
 * words, MSB first, going on to the next word (sequential read); WRITE
 * (01) takes 16 data bits and stores them after EWEN; EWEN/EWDS (00 11/
 * 00 00 in the address's top bits) toggle write enable; the rest is
 * ignored.
 */
static void ee_clock(struct e1000 *e, bool di)
{
	struct e1000_ee *ee = &e->ee;

	switch (ee->state) {
	case EE_IDLE:
		if (di) {
			ee->state = EE_CMD;
			ee->bits = 0;
			ee->val = 0;
		}
		break;
	case EE_CMD:
		ee->val = ee->val << 1 | di;
		if (++ee->bits < 2 + EE_ADDR_BITS)
			break;
		ee->op = ee->val >> EE_ADDR_BITS;
		ee->addr = ee->val & (EE_WORDS - 1);
		ee->bits = 0;
		ee->val = 0;
		if (ee->op == 2) { /* READ */
			ee->state = EE_READ;
			ee->word = e->eeprom[ee->addr];
			ee->dout = false; /* the dummy bit */
		} else if (ee->op == 1 ||
			   (ee->op == 0 && (ee->addr >> 4) == 1)) {
			ee->state = EE_WDATA; /* WRITE, WRAL */
		} else {
			if (ee->op == 0 && (ee->addr >> 4) == 3)
				ee->wen = true;
			else if (ee->op == 0 && (ee->addr >> 4) == 0)
				ee->wen = false;
			ee->state = EE_DONE;
			ee->dout = true;
		}
		break;
	case EE_READ:
		ee->dout = (ee->word & 0x8000) != 0;
		ee->word = (uint16_t)(ee->word << 1);
		if (++ee->bits == 16) {
			ee->bits = 0;
			ee->addr = (ee->addr + 1) & (EE_WORDS - 1);
			ee->word = e->eeprom[ee->addr];
		}
		break;
	case EE_WDATA:
		ee->val = ee->val << 1 | di;
		if (++ee->bits < 16)
			break;
		if (ee->op == 1 && ee->wen)
			e->eeprom[ee->addr] = (uint16_t)ee->val;
		ee->state = EE_DONE;
		ee->dout = true;
		break;
	case EE_DONE:
		break;
	}
}

static void eecd_write(struct e1000 *e, uint32_t v)
{
	struct e1000_ee *ee = &e->ee;
	uint32_t old = ee->eecd;

	ee->eecd = v & EECD_WMASK;
	if (!(v & EECD_CS))
		ee_deselect(ee);
	else if (!(old & EECD_SK) && (v & EECD_SK))
		ee_clock(e, (v & EECD_DI) != 0);
}

static uint32_t eecd_read(const struct e1000 *e)
{
	uint32_t v = e->ee.eecd | EECD_PRES;

	if (e->ee.dout)
		v |= EECD_DO;
	if (v & EECD_REQ)
		v |= EECD_GNT;
	return v;
}

static void eerd_write(struct e1000 *e, uint32_t v)
{
	unsigned addr = (v >> 8) & 0xff;
	uint16_t data = addr < EE_WORDS ? e->eeprom[addr] : 0xffff;

	if (!(v & EERD_START))
		return;
	e->eerd = (uint32_t)data << 16 | addr << 8 | EERD_DONE;
}

/* ---- PHY ---- */

static void phy_reset(struct e1000 *e)
{
	memset(e->phy, 0, sizeof(e->phy));
	e->phy[PHY_BMCR] = 0x1140; /* AN enabled, full duplex, 1000 */
	e->phy[PHY_ANAR] = 0x01e1;
	e->phy[PHY_GTCR] = 0x0300;
	e->phy[PHY_M88_PSCR] = 0x0068;
}

static uint16_t phy_read(const struct e1000 *e, unsigned reg)
{
	bool up = link_up(e);

	switch (reg) {
	case PHY_BMSR:
		return (uint16_t)(BMSR_CAPS |
				  (up ? BMSR_LINK | BMSR_ANDONE : 0));
	case PHY_ID1:
		return PHY_ID1_M88;
	case PHY_ID2:
		return PHY_ID2_M88;
	case PHY_ANLPAR: /* partner: 10/100 FD/HD, acknowledge */
		return up ? 0x41e1 : 0;
	case PHY_ANER:
		return up ? 0x0001 : 0;
	case PHY_GTSR: /* partner 1000 FD/HD, receivers OK */
		return up ? 0x3c00 : 0;
	case PHY_EXTSR:
		return 0x3000; /* 1000BASE-T FD/HD */
	case PHY_M88_PSSR:     /* 1000, full duplex, resolved, link */
		return up ? 0xac00 : 0;
	default:
		return e->phy[reg];
	}
}

static void phy_write(struct e1000 *e, unsigned reg, uint16_t v)
{
	switch (reg) {
	case PHY_BMCR:
		if (v & BMCR_RESET)
			phy_reset(e);
		e->phy[PHY_BMCR] =
			v & (uint16_t) ~(BMCR_RESET | BMCR_ANRESTART);
		/* Auto-negotiation completes at once. */
		if ((v & (BMCR_RESET | BMCR_ANRESTART)) && link_up(e))
			irq_raise(e, ICR_LSC);
		break;
	case PHY_BMSR:
	case PHY_ID1:
	case PHY_ID2:
	case PHY_ANLPAR:
	case PHY_ANER:
	case PHY_GTSR:
	case PHY_EXTSR:
	case PHY_M88_PSSR:
		break; /* read-only */
	default:
		e->phy[reg] = v;
		break;
	}
}

static void mdic_write(struct e1000 *e, uint32_t v)
{
	unsigned reg = (v >> 16) & 0x1f, phy = (v >> 21) & 0x1f;
	uint32_t op = v & (MDIC_OP_READ | MDIC_OP_WRITE);
	uint32_t r = v & ~(MDIC_READY | MDIC_ERROR);

	if (phy != E1000_PHY_ADDR ||
	    (op != MDIC_OP_READ && op != MDIC_OP_WRITE)) {
		r |= MDIC_ERROR;
	} else if (op == MDIC_OP_READ) {
		r = (r & ~MDIC_DATA) | phy_read(e, reg);
	} else {
		phy_write(e, reg, (uint16_t)(v & MDIC_DATA));
	}
	e->mdic = r | MDIC_READY;
	if (v & MDIC_IE)
		irq_raise(e, ICR_MDAC);
}

/* ---- reset ---- */

static void plain_reset(struct e1000 *e)
{
	size_t i;

	for (i = 0; i < NPLAIN; i++)
		e->plain[i] = plain_regs[i].def;
}

/* Everything but the PCI side and the backend to its reset state; the
 * MAC reloads from the EEPROM into receive address 0.  Lock held. */
static void e1000_reset(struct e1000 *e)
{
	e->ctrl = CTRL_DEFAULT;
	e->ctrl_ext = 0;
	e->eerd = 0;
	e->mdic = MDIC_READY;
	e->vet = 0x8100;
	e->icr = e->ims = 0;
	e->rctl = e->tctl = 0;
	e->rdbal = e->rdbah = e->rdlen = e->rdh = e->rdt = 0;
	e->tdbal = e->tdbah = e->tdlen = e->tdh = e->tdt = 0;
	memset(e->ra, 0, sizeof(e->ra));
	memset(e->mta, 0, sizeof(e->mta));
	memset(e->vfta, 0, sizeof(e->vfta));
	memset(e->stats, 0, sizeof(e->stats));
	e->ra[0] = get_le32(e->mac);
	e->ra[1] = get_le16(e->mac + 4) | RAH_AV;
	plain_reset(e);
	phy_reset(e);
	e->ee.eecd = 0;
	e->ee.wen = false;
	ee_deselect(&e->ee);
	memset(&e->txc, 0, sizeof(e->txc));
	memset(&e->tx, 0, sizeof(e->tx));
	e->rx_have = false;
	irq_update(e);
}

/* ---- transmit ---- */

static uint64_t ring_base(uint32_t lo, uint32_t hi)
{
	return (uint64_t)hi << 32 | (lo & ~0xfu);
}

/*
 * Insert a checksum of bytes [start, end] (end 0 or past the frame: to
 * its end) at 'off', adding 'extra' to the sum; UDP sends 0 as 0xffff.
 * Fields that do not fit the frame leave it alone.
 */
static void csum_insert(struct e1000 *e, uint8_t *p, size_t len, size_t start,
			size_t off, size_t end, uint64_t extra, bool udp)
{
	uint16_t v;

	if (len == 0)
		return;
	if (end == 0 || end >= len)
		end = len - 1;
	if (start > end || off + 2 > len) {
		log_ratelimited(
			WARN_MS,
			"%s: checksum offsets %zu/%zu beyond a %zu-byte "
			"frame; not inserted",
			e->pd->name, start, off, len);
		return;
	}
	v = csum_fold(csum_add(extra, p + start, end - start + 1));
	if (udp && v == 0)
		v = 0xffff;
	put_be16(p + off, v);
}

static void tx_count(struct e1000 *e, const uint8_t *f, size_t len)
{
	size_t wire = len + ETH_FCS;
	int b = size_bucket(wire);

	stat_inc(e, ST_TPT);
	stat_inc(e, ST_GPTC);
	stat_add64(e, ST_GOTCL, wire);
	stat_add64(e, ST_TOTL, wire);
	if (b >= 0)
		stat_inc(e, ST_PTC64 + (unsigned)b);
	if (len >= 6 && memcmp(f, "\xff\xff\xff\xff\xff\xff", 6) == 0)
		stat_inc(e, ST_BPTC);
	else if (len >= 1 && (f[0] & 1))
		stat_inc(e, ST_MPTC);
}

/* Hand one frame to the backend, with an 802.1Q tag when asked and the
 * short-packet padding of TCTL.PSP. */
static void tx_send(struct e1000 *e, const uint8_t *f, size_t len, bool vle,
		    uint16_t vlan)
{
	static const uint8_t zeros[ETH_ZLEN];
	struct iovec iov[4];
	uint8_t tag[VLAN_HLEN];
	size_t total = len;
	int n = 0;
	ssize_t rc;

	if (!e->be || len == 0)
		return;
	if (vle && (e->ctrl & CTRL_VME) && len >= 12) {
		put_be16(tag, (uint16_t)e->vet);
		put_be16(tag + 2, vlan);
		iov[n++] = (struct iovec){(void *)(uintptr_t)f, 12};
		iov[n++] = (struct iovec){tag, VLAN_HLEN};
		iov[n++] =
			(struct iovec){(void *)(uintptr_t)(f + 12), len - 12};
		total += VLAN_HLEN;
	} else {
		iov[n++] = (struct iovec){(void *)(uintptr_t)f, len};
	}
	if ((e->tctl & TCTL_PSP) && total < ETH_ZLEN) {
		iov[n++] = (struct iovec){(void *)(uintptr_t)zeros,
					  ETH_ZLEN - total};
		total = ETH_ZLEN;
	}
	rc = net_backend_send(e->be, iov, n);
	if (rc >= 0)
		tx_count(e, f, total);
	else if (rc != -EAGAIN)
		log_ratelimited(WARN_MS, "%s: send failed: %s", e->pd->name,
				strerror((int)-rc));
}

/* TSO parameters that keep every access inside the header. */
static bool tso_valid(struct e1000 *e, size_t len)
{
	const struct e1000_txctx *c = &e->txc;
	size_t hdr = c->hdrlen;
	size_t iph = (c->tucmd & TUCMD_IP) ? 20 : 40;
	size_t l4h = (c->tucmd & TUCMD_TCP) ? 20 : 8;

	if (c->mss == 0 || hdr < ETH_HLEN || hdr >= len ||
	    c->ipcss + iph > hdr || c->tucss + l4h > hdr ||
	    ((e->tx.popts & POPTS_IXSM) && c->ipcso + 2u > hdr) ||
	    ((e->tx.popts & POPTS_TXSM) && c->tucso + 2u > hdr)) {
		log_ratelimited(WARN_MS,
				"%s: TSO packet dropped (MSS %u, header %zu, "
				"length %zu, IP at %u, L4 at %u)",
				e->pd->name, c->mss, hdr, len, c->ipcss,
				c->tucss);
		stat_inc(e, ST_TSCTFC);
		return false;
	}
	return true;
}

/* Split the gathered packet into MSS-sized frames (TSO). */
static void tx_tso(struct e1000 *e, bool vle, uint16_t vlan)
{
	const struct e1000_txctx *c = &e->txc;
	size_t len = e->tx.len, hdr = c->hdrlen, off, chunk;
	bool ip4 = (c->tucmd & TUCMD_IP) != 0,
	     tcp = (c->tucmd & TUCMD_TCP) != 0;
	uint16_t id;
	uint32_t seq, segno = 0;
	uint8_t *f = e->seg;

	if (!tso_valid(e, len))
		return;
	id = get_be16(e->txbuf + c->ipcss + 4);
	seq = get_be32(e->txbuf + c->tucss + 4);
	for (off = hdr; off < len; off += chunk, segno++) {
		size_t flen;
		bool last;

		chunk = len - off < c->mss ? len - off : c->mss;
		flen = hdr + chunk;
		last = off + chunk == len;
		memcpy(f, e->txbuf, hdr);
		memcpy(f + hdr, e->txbuf + off, chunk);
		if (ip4) {
			put_be16(f + c->ipcss + 2, (uint16_t)(flen - c->ipcss));
			put_be16(f + c->ipcss + 4, (uint16_t)(id + segno));
		} else {
			put_be16(f + c->ipcss + 4,
				 (uint16_t)(flen - c->ipcss - 40));
		}
		if (tcp) {
			put_be32(f + c->tucss + 4, seq + (uint32_t)(off - hdr));
			if (!last)
				f[c->tucss + 13] &=
					(uint8_t)~0x09; /* FIN PSH */
		} else {
			put_be16(f + c->tucss + 4, (uint16_t)(flen - c->tucss));
		}
		if (e->tx.popts & POPTS_IXSM) {
			/* The header changed: a fresh IP checksum. */
			put_be16(f + c->ipcso, 0);
			csum_insert(e, f, flen, c->ipcss, c->ipcso, c->ipcse, 0,
				    false);
		}
		if (e->tx.popts & POPTS_TXSM)
			csum_insert(e, f, flen, c->tucss, c->tucso, 0,
				    flen - c->tucss, !tcp);
		tx_send(e, f, flen, vle, vlan);
	}
	stat_inc(e, ST_TSCTC);
}

/* The packet's last descriptor (EOP) was gathered. */
static void tx_finish(struct e1000 *e, bool ext, bool vle, uint16_t vlan)
{
	const struct e1000_txctx *c = &e->txc;
	uint8_t *p = e->txbuf;
	size_t len = e->tx.len;

	if (!e->tx.bad && link_up(e)) {
		if (ext && e->tx.tse) {
			tx_tso(e, vle, vlan);
		} else {
			if (ext && (e->tx.popts & POPTS_IXSM))
				csum_insert(e, p, len, c->ipcss, c->ipcso,
					    c->ipcse, 0, false);
			if (ext && (e->tx.popts & POPTS_TXSM))
				csum_insert(e, p, len, c->tucss, c->tucso,
					    c->tucse, 0,
					    !(c->tucmd & TUCMD_TCP));
			tx_send(e, p, len, vle, vlan);
		}
	}
	memset(&e->tx, 0, sizeof(e->tx));
}

static void tx_gather(struct e1000 *e, uint64_t addr, size_t len)
{
	if (e->tx.bad || len == 0)
		return;
	if (len > TX_MAX - e->tx.len) {
		log_ratelimited(WARN_MS,
				"%s: transmit packet longer than %u bytes "
				"dropped",
				e->pd->name, TX_MAX);
		e->tx.bad = true;
		return;
	}
	if (gmem_read(e->mem, addr, e->txbuf + e->tx.len, len)) {
		log_ratelimited(WARN_MS,
				"%s: transmit buffer 0x%llx+%zu outside guest "
				"RAM; packet dropped",
				e->pd->name, (unsigned long long)addr, len);
		e->tx.bad = true;
		return;
	}
	e->tx.len += len;
}

static void tx_context(struct e1000 *e, const uint8_t *d)
{
	struct e1000_txctx *c = &e->txc;

	c->ipcss = d[0];
	c->ipcso = d[1];
	c->ipcse = get_le16(d + 2);
	c->tucss = d[4];
	c->tucso = d[5];
	c->tucse = get_le16(d + 6);
	c->paylen = get_le32(d + 8) & 0xfffff;
	c->tucmd = d[11];
	c->hdrlen = d[13];
	c->mss = get_le16(d + 14);
}

/* Process one descriptor; true when it asks for a status write-back. */
static bool tx_desc(struct e1000 *e, const uint8_t *d)
{
	uint8_t cmd = d[11];
	bool ext = (cmd & TXD_CMD_DEXT) != 0;

	if (ext && (d[10] >> 4) == TXD_DTYP_CTX) {
		tx_context(e, d);
		return (cmd & TXD_CMD_RS) != 0;
	}
	if (ext && (d[10] >> 4) != TXD_DTYP_DATA) {
		log_ratelimited(WARN_MS,
				"%s: transmit descriptor type %u skipped",
				e->pd->name, d[10] >> 4);
		return (cmd & TXD_CMD_RS) != 0;
	}
	if (!e->tx.inpkt) {
		e->tx.inpkt = true;
		e->tx.tse = ext && (cmd & TXD_CMD_TSE);
		e->tx.popts = ext ? d[13] : 0;
	}
	tx_gather(e, get_le64(d),
		  ext ? get_le32(d + 8) & 0xfffff : get_le16(d + 8));
	if (cmd & TXD_CMD_EOP) {
		/* A legacy descriptor's checksum fields (CSO at 10, CSS at
		 * 13) count in its EOP descriptor. */
		if (!ext && (cmd & TXD_CMD_IC) && !e->tx.bad)
			csum_insert(e, e->txbuf, e->tx.len, d[13], d[10], 0, 0,
				    false);
		tx_finish(e, ext, (cmd & TXD_CMD_VLE) != 0, get_le16(d + 14));
	}
	return (cmd & TXD_CMD_RS) != 0;
}

/* Process descriptors from TDH to TDT: at most one lap.  Lock held. */
static void tx_run(struct e1000 *e)
{
	uint64_t base = ring_base(e->tdbal, e->tdbah);
	uint32_t n = e->tdlen / 16, done = 0, causes = 0;
	uint8_t d[16];

	if (!(e->tctl & TCTL_EN) || e->tdh == e->tdt)
		return;
	if (n == 0 || e->tdh >= n || e->tdt >= n) {
		log_ratelimited(
			WARN_MS,
			"%s: transmit ring head %u / tail %u beyond its "
			"%u descriptors; not processed",
			e->pd->name, e->tdh, e->tdt, n);
		return;
	}
	while (e->tdh != e->tdt && done++ < n) {
		uint64_t a = base + (uint64_t)e->tdh * 16;

		if (gmem_read(e->mem, a, d, sizeof(d))) {
			log_ratelimited(WARN_MS,
					"%s: transmit descriptor at 0x%llx "
					"outside guest RAM; ring stopped",
					e->pd->name, (unsigned long long)a);
			break;
		}
		if (tx_desc(e, d)) {
			d[12] |= TXD_STA_DD;
			(void)gmem_write(e->mem, a + 12, &d[12], 1);
			causes |= ICR_TXDW;
		}
		e->tdh = (e->tdh + 1) % n;
	}
	if (e->tdh == e->tdt)
		causes |= ICR_TXQE;
	irq_raise(e, causes);
}

/* ---- receive ---- */

static size_t rx_bufsize(uint32_t rctl)
{
	static const size_t norm[4] = {2048, 1024, 512, 256};
	static const size_t ext[4] = {2048, 16384, 8192, 4096};
	unsigned bs = (rctl >> RCTL_BSIZE_SHIFT) & 3;

	return (rctl & RCTL_BSEX) ? ext[bs] : norm[bs];
}

/* Descriptors the guest has given us (RDH up to RDT), 0 when the ring
 * registers are unusable. */
static uint32_t rx_avail(const struct e1000 *e)
{
	uint32_t n = e->rdlen / 16;

	if (n == 0 || e->rdh >= n || e->rdt >= n)
		return 0;
	return (e->rdt + n - e->rdh) % n;
}

static bool ra_match(const struct e1000 *e, const uint8_t *dst)
{
	uint32_t lo = get_le32(dst), hi = get_le16(dst + 4);
	unsigned i;

	for (i = 0; i < NRA; i++) {
		uint32_t rah = e->ra[2 * i + 1];

		if ((rah & RAH_AV) && !(rah & RAH_AS) && e->ra[2 * i] == lo &&
		    (rah & 0xffff) == hi)
			return true;
	}
	return false;
}

static bool mta_match(const struct e1000 *e, const uint8_t *dst)
{
	unsigned mo = (e->rctl >> RCTL_MO_SHIFT) & 3;
	unsigned shift = 4 - mo; /* MO 0..2: bits 47:36, 46:35, 45:34 */
	uint32_t h;

	if (mo == 3) /* bits 43:32 */
		h = dst[4] | (uint32_t)dst[5] << 8;
	else
		h = (uint32_t)dst[4] >> shift | (uint32_t)dst[5] << (8 - shift);
	h &= 0xfff;
	return (e->mta[h >> 5] >> (h & 31)) & 1;
}

/* Whether the frame passes the VLAN and address filters. */
static bool rx_filter(const struct e1000 *e, const uint8_t *f, size_t len)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	if ((e->rctl & RCTL_VFE) && len >= ETH_HLEN + VLAN_HLEN &&
	    get_be16(f + 12) == (e->vet & 0xffff)) {
		unsigned vid = get_be16(f + 14) & 0xfff;

		if (!((e->vfta[vid >> 5] >> (vid & 31)) & 1))
			return false;
	}
	if (memcmp(f, bcast, 6) == 0)
		return (e->rctl & (RCTL_BAM | RCTL_MPE)) != 0;
	if (f[0] & 1)
		return (e->rctl & RCTL_MPE) || ra_match(e, f) ||
		       mta_match(e, f);
	return (e->rctl & RCTL_UPE) || ra_match(e, f);
}

/*
 * A frame of 'len' bytes arrived in rxbuf: check its length, filter it,
 * strip its VLAN tag, pad it and add the FCS.  True when it is to be
 * delivered (rx_len set).
 */
static bool rx_accept(struct e1000 *e, size_t len)
{
	uint8_t *f = e->rxbuf;
	size_t max = (e->rctl & RCTL_LPE) ? RX_MAX : RX_STD_MAX;

	if (len < ETH_HLEN) {
		stat_inc(e, ST_RUC);
		return false;
	}
	if (len > max) {
		stat_inc(e, ST_ROC);
		return false;
	}
	stat_inc(e, ST_TPR);
	stat_add64(e, ST_TORL, (len < ETH_ZLEN ? ETH_ZLEN : len) + ETH_FCS);
	if (!rx_filter(e, f, len))
		return false;
	e->rx_vp = false;
	if ((e->ctrl & CTRL_VME) && len >= ETH_HLEN + VLAN_HLEN &&
	    get_be16(f + 12) == (e->vet & 0xffff)) {
		e->rx_vlan = get_be16(f + 14);
		e->rx_vp = true;
		memmove(f + 12, f + 12 + VLAN_HLEN, len - 12 - VLAN_HLEN);
		len -= VLAN_HLEN;
	}
	if (len < ETH_ZLEN) {
		memset(f + len, 0, ETH_ZLEN - len);
		len = ETH_ZLEN;
	}
	if (!(e->rctl & RCTL_SECRC)) {
		uint32_t fcs = eth_crc(f, len);
		unsigned i;

		for (i = 0; i < ETH_FCS; i++)
			f[len + i] = (uint8_t)(fcs >> (8 * i));
		len += ETH_FCS;
	}
	e->rx_len = len;
	return true;
}

static void rx_count(struct e1000 *e)
{
	const uint8_t *f = e->rxbuf;
	size_t wire = e->rx_len + ((e->rctl & RCTL_SECRC) ? ETH_FCS : 0);
	int b = size_bucket(wire);

	stat_inc(e, ST_GPRC);
	stat_add64(e, ST_GORCL, wire);
	if (b >= 0)
		stat_inc(e, ST_PRC64 + (unsigned)b);
	if (memcmp(f, "\xff\xff\xff\xff\xff\xff", 6) == 0)
		stat_inc(e, ST_BPRC);
	else if (f[0] & 1)
		stat_inc(e, ST_MPRC);
}

/*
 * Write the held frame into receive descriptors.  0 when it was
 * delivered or dropped, -EAGAIN when the ring lacks room for it now.
 */
static int rx_deliver(struct e1000 *e)
{
	uint64_t base = ring_base(e->rdbal, e->rdbah);
	uint32_t n = e->rdlen / 16, thresh;
	size_t bs = rx_bufsize(e->rctl), len = e->rx_len, off = 0;
	size_t need = (len + bs - 1) / bs;
	uint8_t d[16];

	if (n == 0 || need > n - 1) { /* can never fit */
		stat_inc(e, ST_MPC);
		irq_raise(e, ICR_RXO);
		return 0;
	}
	if (need > rx_avail(e))
		return -EAGAIN;
	while (off < len) {
		uint64_t a = base + (uint64_t)e->rdh * 16;
		size_t chunk = len - off < bs ? len - off : bs;
		bool last = off + chunk == len;

		if (gmem_read(e->mem, a, d, 8)) {
			log_ratelimited(WARN_MS,
					"%s: receive descriptor at 0x%llx "
					"outside guest RAM; frame dropped",
					e->pd->name, (unsigned long long)a);
			stat_inc(e, ST_MPC);
			return 0;
		}
		d[13] = 0;
		if (gmem_write(e->mem, get_le64(d), e->rxbuf + off, chunk)) {
			log_ratelimited(WARN_MS,
					"%s: receive buffer 0x%llx outside "
					"guest RAM; descriptor marked RXE",
					e->pd->name,
					(unsigned long long)get_le64(d));
			d[13] = RXD_ERR_RXE;
		}
		put_le16(d + 8, (uint16_t)chunk);
		put_le16(d + 10, 0);
		d[12] = RXD_STA_DD | RXD_STA_IXSM;
		put_le16(d + 14, 0);
		if (last) {
			d[12] |= RXD_STA_EOP;
			if (e->rx_vp) {
				d[12] |= RXD_STA_VP;
				put_le16(d + 14, e->rx_vlan);
			}
		}
		(void)gmem_write(e->mem, a + 8, d + 8, 8);
		e->rdh = (e->rdh + 1) % n;
		off += chunk;
	}
	rx_count(e);
	/* RDMTS: free descriptors down to 1/2, 1/4 or 1/8 of the ring. */
	thresh = n >> (((e->rctl >> RCTL_RDMTS_SHIFT) & 3) + 1);
	if (((e->rctl >> RCTL_RDMTS_SHIFT) & 3) == 3)
		thresh = n >> 3;
	irq_raise(e, ICR_RXT0 | (rx_avail(e) <= thresh ? ICR_RXDMT0 : 0));
	return 0;
}

/*
 * The backend's receive callback: deliver frames until none is waiting
 * or the ring is full (then stop the callbacks until the guest posts
 * buffers).  Runs on the backend's thread, or on a vCPU thread through
 * net_backend_rx_enable().
 */
static void e1000_rx(void *opaque)
{
	struct e1000 *e = opaque;
	struct iovec iov = {e->rxbuf, RX_MAX + 1};
	bool stop = false;
	ssize_t n;

	pthread_mutex_lock(&e->lock);
	while (e->be) {
		if (e->rx_have) {
			if (rx_deliver(e) == -EAGAIN) {
				stop = true;
				break;
			}
			e->rx_have = false;
			continue;
		}
		if ((e->rctl & RCTL_EN) && rx_avail(e) == 0) {
			stop = true;
			break;
		}
		n = net_backend_recv(e->be, &iov, 1);
		if (n < 0)
			log_ratelimited(WARN_MS, "%s: receive failed: %s",
					e->pd->name, strerror((int)-n));
		if (n <= 0)
			break;
		if (e->rctl & RCTL_EN)
			e->rx_have = rx_accept(e, (size_t)n);
	}
	if (stop && !e->rx_stopped) {
		e->rx_stopped = true;
		stat_inc(e, ST_RNBC);
		net_backend_rx_enable(e->be, false);
	}
	pthread_mutex_unlock(&e->lock);
}

/* After a register write: restart the callbacks if they were stopped and
 * frames can move again.  Lock held; the caller restarts them unlocked. */
static bool rx_restart_check(struct e1000 *e)
{
	if (!e->rx_stopped || !e->be)
		return false;
	if ((e->rctl & RCTL_EN) && rx_avail(e) == 0)
		return false;
	e->rx_stopped = false;
	return true;
}

/* ---- register access (lock held) ---- */

static int plain_find(uint32_t off)
{
	size_t i;

	for (i = 0; i < NPLAIN; i++)
		if (plain_regs[i].off == off)
			return (int)i;
	return -1;
}

static uint32_t reg_read(struct e1000 *e, uint32_t off)
{
	uint32_t v;
	int i;

	switch (off) {
	case REG_CTRL:
	case REG_CTRL_DUP:
		return e->ctrl;
	case REG_STATUS:
		return STATUS_FD | STATUS_SPEED_1000 |
		       (link_up(e) ? STATUS_LU : 0);
	case REG_EECD:
		return eecd_read(e);
	case REG_EERD:
		return e->eerd;
	case REG_CTRL_EXT:
		return e->ctrl_ext;
	case REG_MDIC:
		return e->mdic;
	case REG_VET:
		return e->vet;
	case REG_ICR:
		v = e->icr;
		e->icr = 0;
		irq_update(e);
		return v;
	case REG_IMS:
		return e->ims;
	case REG_ICS:
	case REG_IMC:
		return 0; /* write-only */
	case REG_RCTL:
		return e->rctl;
	case REG_TCTL:
		return e->tctl;
	case REG_RDBAL:
		return e->rdbal;
	case REG_RDBAH:
		return e->rdbah;
	case REG_RDLEN:
		return e->rdlen;
	case REG_RDH:
		return e->rdh;
	case REG_RDT:
		return e->rdt;
	case REG_TDBAL:
		return e->tdbal;
	case REG_TDBAH:
		return e->tdbah;
	case REG_TDLEN:
		return e->tdlen;
	case REG_TDH:
		return e->tdh;
	case REG_TDT:
		return e->tdt;
	default:
		break;
	}
	if (off >= REG_STATS && off < REG_STATS + 4 * NSTATS)
		return stat_index_read(e, (off - REG_STATS) / 4);
	if (off >= REG_MTA && off < REG_MTA + 4 * NMTA)
		return e->mta[(off - REG_MTA) / 4];
	if (off >= REG_RA && off < REG_RA + 8 * NRA)
		return e->ra[(off - REG_RA) / 4];
	if (off >= REG_VFTA && off < REG_VFTA + 4 * NVFTA)
		return e->vfta[(off - REG_VFTA) / 4];
	i = plain_find(off);
	if (i >= 0)
		return e->plain[i];
	log_ratelimited(WARN_MS, "%s: read of unknown register 0x%05x (0)",
			e->pd->name, off);
	return 0;
}

static void ctrl_write(struct e1000 *e, uint32_t v)
{
	uint32_t old = e->ctrl;

	if (v & CTRL_RST) {
		e1000_reset(e);
		return;
	}
	if (v & CTRL_PHY_RST)
		phy_reset(e);
	e->ctrl = v;
	if (!(old & CTRL_SLU) && (v & CTRL_SLU) && link_up(e))
		irq_raise(e, ICR_LSC);
}

static void rctl_write(struct e1000 *e, uint32_t v)
{
	e->rctl = v & 0x07fffffeu;
	if (!(e->rctl & RCTL_EN))
		e->rx_have = false; /* receiver off: the held frame is lost */
}

static void tctl_write(struct e1000 *e, uint32_t v)
{
	e->tctl = v & 0x03fffffau;
	if (!(e->tctl & TCTL_EN))
		memset(&e->tx, 0, sizeof(e->tx));
	tx_run(e);
}

static bool reg_write_array(struct e1000 *e, uint32_t off, uint32_t v)
{
	if (off >= REG_STATS && off < REG_STATS + 4 * NSTATS)
		return true; /* read-only */
	if (off >= REG_MTA && off < REG_MTA + 4 * NMTA)
		e->mta[(off - REG_MTA) / 4] = v;
	else if (off >= REG_RA && off < REG_RA + 8 * NRA)
		e->ra[(off - REG_RA) / 4] =
			(off & 4) ? v & (RAH_AV | RAH_AS | 0xffffu) : v;
	else if (off >= REG_VFTA && off < REG_VFTA + 4 * NVFTA)
		e->vfta[(off - REG_VFTA) / 4] = v;
	else
		return false;
	return true;
}

static void reg_write(struct e1000 *e, uint32_t off, uint32_t v)
{
	int i;

	switch (off) {
	case REG_CTRL:
	case REG_CTRL_DUP:
		ctrl_write(e, v);
		return;
	case REG_STATUS:
		return; /* read-only */
	case REG_EECD:
		eecd_write(e, v);
		return;
	case REG_EERD:
		eerd_write(e, v);
		return;
	case REG_CTRL_EXT:
		e->ctrl_ext = v & ~0x00002000u; /* EE_RST self-clears */
		return;
	case REG_MDIC:
		mdic_write(e, v);
		return;
	case REG_VET:
		e->vet = v & 0xffff;
		return;
	case REG_ICR: /* writing 1s clears them */
		e->icr &= ~v;
		irq_update(e);
		return;
	case REG_ICS:
		irq_raise(e, v);
		return;
	case REG_IMS:
		e->ims |= v & ICR_MASK;
		irq_update(e);
		return;
	case REG_IMC:
		e->ims &= ~v;
		irq_update(e);
		return;
	case REG_RCTL:
		rctl_write(e, v);
		return;
	case REG_TCTL:
		tctl_write(e, v);
		return;
	case REG_RDBAL:
		e->rdbal = v & ~0xfu;
		return;
	case REG_RDBAH:
		e->rdbah = v;
		return;
	case REG_RDLEN:
		e->rdlen = v & 0x000fff80u;
		return;
	case REG_RDH:
		e->rdh = v & 0xffff;
		return;
	case REG_RDT:
		e->rdt = v & 0xffff;
		return;
	case REG_TDBAL:
		e->tdbal = v & ~0xfu;
		return;
	case REG_TDBAH:
		e->tdbah = v;
		return;
	case REG_TDLEN:
		e->tdlen = v & 0x000fff80u;
		return;
	case REG_TDH:
		e->tdh = v & 0xffff;
		return;
	case REG_TDT:
		e->tdt = v & 0xffff;
		tx_run(e);
		return;
	default:
		break;
	}
	if (reg_write_array(e, off, v))
		return;
	i = plain_find(off);
	if (i >= 0) {
		e->plain[i] = (e->plain[i] & ~plain_regs[i].wmask) |
			      (v & plain_regs[i].wmask);
		return;
	}
	log_ratelimited(WARN_MS,
			"%s: write 0x%08x to unknown register 0x%05x ignored",
			e->pd->name, v, off);
}

/* ---- BAR access ---- */

static uint64_t regs_read(struct e1000 *e, uint64_t off, unsigned size)
{
	uint64_t v;

	if (size == 8 && !(off & 7))
		return reg_read(e, (uint32_t)off) |
		       (uint64_t)reg_read(e, (uint32_t)off + 4) << 32;
	if ((off & 3) + size > 4)
		return ~0ULL;
	v = reg_read(e, (uint32_t)off & ~3u) >> (8 * (off & 3));
	return size == 4 ? v : v & ((1ULL << (8 * size)) - 1);
}

static void regs_write(struct e1000 *e, uint64_t off, unsigned size, uint64_t v)
{
	if (size == 8 && !(off & 7)) {
		reg_write(e, (uint32_t)off, (uint32_t)v);
		reg_write(e, (uint32_t)off + 4, (uint32_t)(v >> 32));
	} else if (size == 4 && !(off & 3)) {
		reg_write(e, (uint32_t)off, (uint32_t)v);
	} else {
		log_ratelimited(WARN_MS,
				"%s: %u-byte write at 0x%05llx ignored (the "
				"registers take 32-bit writes)",
				e->pd->name, size, (unsigned long long)off);
	}
}

static void io_read(struct e1000 *e, uint64_t off, unsigned size, uint64_t *val)
{
	if (size != 4 || (off != 0 && off != 4))
		return; /* all ones */
	if (off == 0)
		*val = e->ioaddr;
	else if (e->ioaddr <= E1000_IO_REG_MAX && !(e->ioaddr & 3))
		*val = reg_read(e, e->ioaddr);
	else
		*val = 0;
}

static void io_write(struct e1000 *e, uint64_t off, unsigned size, uint64_t v)
{
	if (size != 4 || (off != 0 && off != 4))
		return;
	if (off == 0)
		e->ioaddr = (uint32_t)v;
	else if (e->ioaddr <= E1000_IO_REG_MAX && !(e->ioaddr & 3))
		reg_write(e, e->ioaddr, (uint32_t)v);
}

static void e1000_barread(struct pci_dev *pd, unsigned idx, uint64_t off,
			  unsigned size, uint64_t *val)
{
	struct e1000 *e = pd->softc;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	if (idx == E1000_BAR_REGS)
		*val = regs_read(e, off, size);
	else if (idx == E1000_BAR_IO)
		io_read(e, off, size, val);
	pthread_mutex_unlock(&e->lock);
}

static void e1000_barwrite(struct pci_dev *pd, unsigned idx, uint64_t off,
			   unsigned size, uint64_t val)
{
	struct e1000 *e = pd->softc;
	bool kick;

	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	if (idx == E1000_BAR_REGS)
		regs_write(e, off, size, val);
	else if (idx == E1000_BAR_IO)
		io_write(e, off, size, val);
	kick = rx_restart_check(e);
	pthread_mutex_unlock(&e->lock);
	if (kick)
		net_backend_rx_enable(e->be, true);
}

/* ---- set-up ---- */

static void e1000_free(struct e1000 *e)
{
	if (!e)
		return;
	net_backend_close(e->be);
	pthread_mutex_destroy(&e->lock);
	free(e->plain);
	free(e->txbuf);
	free(e->seg);
	free(e->rxbuf);
	free(e);
}

static struct e1000 *e1000_alloc(struct pci_dev *pd)
{
	struct e1000 *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->pd = pd;
	e->mem = pd->ctx->mem;
	pthread_mutex_init(&e->lock, NULL);
	e->plain = calloc(NPLAIN, sizeof(*e->plain));
	e->txbuf = malloc(TX_MAX);
	e->seg = malloc(SEG_MAX);
	e->rxbuf = calloc(1, RX_MAX + 64);
	if (!e->plain || !e->txbuf || !e->seg || !e->rxbuf) {
		e1000_free(e);
		return NULL;
	}
	return e;
}

static int e1000_pci_setup(struct pci_dev *pd)
{
	int rc;

	pci_set_ids(pd, E1000_VENDOR, E1000_DEVICE, 0x02, 0x00, 0x00);
	pci_set16(pd, PCIR_SUBVEND, E1000_VENDOR);
	pci_set16(pd, PCIR_SUBDEV, E1000_SUBDEV);
	if ((rc = pci_bar_alloc(pd, E1000_BAR_REGS, PCIBAR_MEM32,
				E1000_BAR_REGS_SIZE, false)) ||
	    (rc = pci_bar_alloc(pd, E1000_BAR_IO, PCIBAR_IO, E1000_BAR_IO_SIZE,
				false)) ||
	    (rc = pci_intx_init(pd)))
		return rc;
	return 0;
}

static int e1000_init(struct pci_dev *pd, struct cfg_node *node)
{
	struct net_backend *be = NULL;
	struct e1000 *e;
	int rc;

	(void)pthread_once(&crc_once, crc_init);
	e = e1000_alloc(pd);
	if (!e) {
		log_err("%s: out of memory", pd->name);
		return -ENOMEM;
	}
	rc = net_mac_from_cfg(node, pd->ctx->vm_name, pd->slot, pd->func,
			      e->mac);
	if (rc)
		goto fail;
	eeprom_build(e);
	e1000_reset(e);
	rc = e1000_pci_setup(pd);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: cannot set up", pd->name);
		goto fail;
	}
	pd->softc = e;
	rc = net_backend_open(&be, node, pd->ctx, e1000_rx, e);
	if (rc && rc != -ENOENT) { /* -ENOENT: no backend, link down */
		pd->softc = NULL;
		goto fail;
	}
	/* The callback may already run: it reads e->be under the lock. */
	pthread_mutex_lock(&e->lock);
	e->be = be;
	pthread_mutex_unlock(&e->lock);
	return 0;
fail:
	e1000_free(e);
	return rc;
}

static void e1000_fini(struct pci_dev *pd)
{
	e1000_free(pd->softc);
	pd->softc = NULL;
}

static const struct pci_devops e1000_pci = {
	.init = e1000_init,
	.barread = e1000_barread,
	.barwrite = e1000_barwrite,
	.fini = e1000_fini,
};

static const struct cfg_key e1000_keys[] = {
	NET_BACKEND_CFG_KEYS,
	{"mac", CFG_STRING, NULL,
	 "MAC address (default: derived from the VM name and PCI slot)", 0, 0,
	 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static const struct devmodel e1000_model = {
	.name = "e1000",
	.kind = DEVMODEL_PCI,
	.keys = e1000_keys,
	.parse_legacy = net_parse_legacy,
	.pci = &e1000_pci,
};
DEVMODEL_SET(e1000_model);
