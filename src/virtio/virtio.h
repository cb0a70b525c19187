/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Virtio constants and wire layouts shared by every piece of virtio code:
 * the split-virtqueue library (vq.c), the virtio-pci transport and the
 * device models (blk, rnd, console, later net).  Values come from the
 * virtio 1.2 specification; each group names its section.  Nothing here
 * has state, threads or locks: it is a header of numbers and structs.
 *
 * All multi-byte fields on the wire are little-endian for virtio 1.x
 * ("le16" etc. in the spec).  Legacy (0.9.5) devices use guest-native
 * endianness, which is little-endian on x86 too, so one set of structs
 * serves both.  Convert with le16toh()/htole16() where it matters.
 */
#ifndef KHYVE_VIRTIO_VIRTIO_H
#define KHYVE_VIRTIO_VIRTIO_H

#include <stdint.h>

/* Device status bits, virtio 1.2 §2.1 */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/*
 * Device-independent feature bits, virtio 1.2 §6 ("Reserved Feature
 * Bits") and §2.2; the legacy ones from §6.3.  Bit numbers, not masks:
 * use VIRTIO_BIT(VIRTIO_F_VERSION_1).
 */
#define VIRTIO_BIT(n) (1ULL << (n))
#define VIRTIO_F_NOTIFY_ON_EMPTY 24 /* legacy only */
#define VIRTIO_F_ANY_LAYOUT 27	    /* legacy only */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_BAD_FEATURE 30 /* legacy "UNUSED": never offered */
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33
#define VIRTIO_F_RING_PACKED 34
#define VIRTIO_F_IN_ORDER 35
#define VIRTIO_F_ORDER_PLATFORM 36
#define VIRTIO_F_SR_IOV 37
#define VIRTIO_F_NOTIFICATION_DATA 38
#define VIRTIO_F_NOTIF_CONFIG_DATA 39
#define VIRTIO_F_RING_RESET 40

/* Device IDs, virtio 1.2 §5 */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_BALLOON 5
#define VIRTIO_ID_SCSI 8
#define VIRTIO_ID_9P 9
#define VIRTIO_ID_GPU 16
#define VIRTIO_ID_INPUT 18
#define VIRTIO_ID_VSOCK 19
#define VIRTIO_ID_FS 26

/*
 * Split virtqueue layout, virtio 1.2 §2.7.  Alignment of each part (§2.7.1)
 * and its size for a queue of N entries:
 *   descriptor table  16   16 * N
 *   available ring     2   6 + 2 * N   (flags, idx, ring[N], used_event)
 *   used ring          4   6 + 8 * N   (flags, idx, ring[N], avail_event)
 * The maximum queue size is 32768 (§2.7).
 */
#define VIRTQ_DESC_ALIGN 16
#define VIRTQ_AVAIL_ALIGN 2
#define VIRTQ_USED_ALIGN 4
#define VIRTQ_MAX_SIZE 32768
#define VIRTQ_DESC_SIZE(n) (16ULL * (n))
#define VIRTQ_AVAIL_SIZE(n) (6ULL + 2ULL * (n))
#define VIRTQ_USED_SIZE(n) (6ULL + 8ULL * (n))

/* Descriptor flags, virtio 1.2 §2.7.5 */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

/* Ring flags, virtio 1.2 §2.7.6 (avail) and §2.7.8 (used) */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* One descriptor, virtio 1.2 §2.7.5 (also the indirect table entry). */
struct virtq_desc {
	uint64_t addr; /* guest-physical */
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* One used-ring element, virtio 1.2 §2.7.8 */
struct virtq_used_elem {
	uint32_t id;  /* head of the chain */
	uint32_t len; /* bytes written into the chain */
};

_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc layout");
_Static_assert(sizeof(struct virtq_used_elem) == 8, "used elem layout");

/* Byte offsets inside the rings (N = queue size). */
#define VIRTQ_AVAIL_FLAGS 0
#define VIRTQ_AVAIL_IDX 2
#define VIRTQ_AVAIL_RING 4
#define VIRTQ_AVAIL_USED_EVENT(n) (4ULL + 2ULL * (n))
#define VIRTQ_USED_FLAGS 0
#define VIRTQ_USED_IDX 2
#define VIRTQ_USED_RING 4
#define VIRTQ_USED_AVAIL_EVENT(n) (4ULL + 8ULL * (n))

/* Legacy layout (virtio 1.2 §2.7.2): used ring on the next 4096 boundary. */
#define VIRTIO_LEGACY_QUEUE_ALIGN 4096
#define VIRTIO_LEGACY_PFN_SHIFT 12

/*
 * virtio-pci, virtio 1.2 §4.1.  Vendor 0x1af4; modern device ID is
 * 0x1040 + virtio ID (§4.1.2); transitional devices use the legacy IDs
 * below with the virtio ID as subsystem device ID and revision 0.
 */
#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_MODERN_DEVICE(id) (0x1040 + (id))
#define VIRTIO_PCI_LEGACY_NET 0x1000
#define VIRTIO_PCI_LEGACY_BLOCK 0x1001
#define VIRTIO_PCI_LEGACY_BALLOON 0x1002
#define VIRTIO_PCI_LEGACY_CONSOLE 0x1003
#define VIRTIO_PCI_LEGACY_SCSI 0x1004
#define VIRTIO_PCI_LEGACY_RNG 0x1005
#define VIRTIO_PCI_LEGACY_9P 0x1009

/* Vendor-specific capability (ID 0x09) types, virtio 1.2 §4.1.4 */
#define VIRTIO_PCI_CAP_VNDR 0x09
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5
#define VIRTIO_PCI_CAP_SHARED_MEMORY_CFG 8
#define VIRTIO_PCI_CAP_VENDOR_CFG 9

/* struct virtio_pci_cap field offsets (from the capability start) */
#define VIRTIO_PCI_CAP_OFF_VNDR 0
#define VIRTIO_PCI_CAP_OFF_NEXT 1
#define VIRTIO_PCI_CAP_OFF_LEN 2
#define VIRTIO_PCI_CAP_OFF_CFG_TYPE 3
#define VIRTIO_PCI_CAP_OFF_BAR 4
#define VIRTIO_PCI_CAP_OFF_ID 5
#define VIRTIO_PCI_CAP_OFF_OFFSET 8  /* le32 */
#define VIRTIO_PCI_CAP_OFF_LENGTH 12 /* le32 */
#define VIRTIO_PCI_CAP_LEN 16
/* notify cap: + le32 notify_off_multiplier (§4.1.4.4) */
#define VIRTIO_PCI_NOTIFY_CAP_OFF_MULT 16
#define VIRTIO_PCI_NOTIFY_CAP_LEN 20
/* pci_cfg access cap: + u8 pci_cfg_data[4] (§4.1.4.7) */
#define VIRTIO_PCI_CFG_CAP_OFF_DATA 16
#define VIRTIO_PCI_CFG_CAP_LEN 20

/* struct virtio_pci_common_cfg register offsets, virtio 1.2 §4.1.4.3 */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00 /* le32 device_feature_select */
#define VIRTIO_PCI_COMMON_DF 0x04	/* le32 device_feature (RO) */
#define VIRTIO_PCI_COMMON_GFSELECT 0x08 /* le32 driver_feature_select */
#define VIRTIO_PCI_COMMON_GF 0x0c	/* le32 driver_feature */
#define VIRTIO_PCI_COMMON_MSIX 0x10	/* le16 config_msix_vector */
#define VIRTIO_PCI_COMMON_NUMQ 0x12	/* le16 num_queues (RO) */
#define VIRTIO_PCI_COMMON_STATUS 0x14	/* u8 device_status */
#define VIRTIO_PCI_COMMON_CFGGEN 0x15	/* u8 config_generation (RO) */
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16 /* le16 queue_select */
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18	/* le16 queue_size */
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a	/* le16 queue_msix_vector */
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c /* le16 queue_enable */
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e	/* le16 queue_notify_off (RO) */
#define VIRTIO_PCI_COMMON_Q_DESCLO 0x20 /* le64 queue_desc */
#define VIRTIO_PCI_COMMON_Q_DESCHI 0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28 /* le64 queue_driver */
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO 0x30 /* le64 queue_device */
#define VIRTIO_PCI_COMMON_Q_USEDHI 0x34
#define VIRTIO_PCI_COMMON_Q_NDATA 0x38	/* le16 queue_notif_config_data */
#define VIRTIO_PCI_COMMON_Q_RESET 0x3a	/* le16 queue_reset */
#define VIRTIO_PCI_COMMON_CFG_SIZE 0x3c /* 1.2 layout with queue_reset */

/* ISR status bits, virtio 1.2 §4.1.4.5 */
#define VIRTIO_PCI_ISR_QUEUE 0x1
#define VIRTIO_PCI_ISR_CONFIG 0x2

/* "No vector" for config_msix_vector/queue_msix_vector, §4.1.5.1.2 */
#define VIRTIO_MSI_NO_VECTOR 0xffff

/*
 * Legacy virtio-pci I/O BAR 0 register offsets, virtio 1.2 §4.1.4.8.
 * The device-specific config follows at 20, or at 24 when MSI-X is
 * enabled (the two vector registers are then present).
 */
#define VIRTIO_PCI_LEGACY_HOST_FEATURES 0  /* le32, RO */
#define VIRTIO_PCI_LEGACY_GUEST_FEATURES 4 /* le32 */
#define VIRTIO_PCI_LEGACY_QUEUE_PFN 8	   /* le32 */
#define VIRTIO_PCI_LEGACY_QUEUE_NUM 12	   /* le16, RO */
#define VIRTIO_PCI_LEGACY_QUEUE_SEL 14	   /* le16 */
#define VIRTIO_PCI_LEGACY_QUEUE_NOTIFY 16  /* le16 */
#define VIRTIO_PCI_LEGACY_STATUS 18	   /* u8 */
#define VIRTIO_PCI_LEGACY_ISR 19	   /* u8, read clears */
#define VIRTIO_PCI_LEGACY_CONFIG_VECTOR 20 /* le16, with MSI-X */
#define VIRTIO_PCI_LEGACY_QUEUE_VECTOR 22  /* le16, with MSI-X */
#define VIRTIO_PCI_LEGACY_CONFIG_OFF(msix) ((msix) ? 24 : 20)

/*
 * Block device, virtio 1.2 §5.2.  Feature bits (§5.2.3, legacy §5.2.3.1),
 * request types and status values (§5.2.6), config offsets (§5.2.4).
 * Sectors are always 512 bytes in the protocol.
 */
#define VIRTIO_BLK_F_BARRIER 0 /* legacy */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_GEOMETRY 4
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_SCSI 7  /* legacy */
#define VIRTIO_BLK_F_FLUSH 9 /* legacy name: WCE */
#define VIRTIO_BLK_F_TOPOLOGY 10
#define VIRTIO_BLK_F_CONFIG_WCE 11
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14
#define VIRTIO_BLK_F_LIFETIME 15
#define VIRTIO_BLK_F_SECURE_ERASE 16

#define VIRTIO_BLK_SECTOR_SIZE 512
#define VIRTIO_BLK_ID_BYTES 20 /* GET_ID answer: serial, NUL-padded */

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_GET_LIFETIME 10
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_T_SECURE_ERASE 14

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

/* The request header the driver puts first in every chain (§5.2.6). */
struct virtio_blk_req_hdr {
	uint32_t type;
	uint32_t reserved; /* "ioprio" in legacy */
	uint64_t sector;
};
_Static_assert(sizeof(struct virtio_blk_req_hdr) == 16, "blk hdr layout");

/* Payload of DISCARD / WRITE_ZEROES / SECURE_ERASE (§5.2.6) */
struct virtio_blk_discard_write_zeroes {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags; /* bit 0: unmap (WRITE_ZEROES only) */
};
_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == 16,
	       "blk discard layout");
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 0x1

/* GET_LIFETIME answer (§5.2.6) */
struct virtio_blk_lifetime {
	uint16_t pre_eol_info;
	uint16_t device_lifetime_est_typ_a;
	uint16_t device_lifetime_est_typ_b;
};

/* struct virtio_blk_config byte offsets (§5.2.4) */
#define VIRTIO_BLK_CFG_CAPACITY 0	 /* le64, in 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX 8	 /* le32 */
#define VIRTIO_BLK_CFG_SEG_MAX 12	 /* le32 */
#define VIRTIO_BLK_CFG_GEOM_CYLINDERS 16 /* le16 */
#define VIRTIO_BLK_CFG_GEOM_HEADS 18	 /* u8 */
#define VIRTIO_BLK_CFG_GEOM_SECTORS 19	 /* u8 */
#define VIRTIO_BLK_CFG_BLK_SIZE 20	 /* le32 */
#define VIRTIO_BLK_CFG_PHYS_BLOCK_EXP 24 /* u8 */
#define VIRTIO_BLK_CFG_ALIGN_OFFSET 25	 /* u8 */
#define VIRTIO_BLK_CFG_MIN_IO_SIZE 26	 /* le16 */
#define VIRTIO_BLK_CFG_OPT_IO_SIZE 28	 /* le32 */
#define VIRTIO_BLK_CFG_WRITEBACK 32	 /* u8 */
#define VIRTIO_BLK_CFG_NUM_QUEUES 34	 /* le16 */
#define VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS 36
#define VIRTIO_BLK_CFG_MAX_DISCARD_SEG 40
#define VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGN 44
#define VIRTIO_BLK_CFG_MAX_WZ_SECTORS 48
#define VIRTIO_BLK_CFG_MAX_WZ_SEG 52
#define VIRTIO_BLK_CFG_WZ_MAY_UNMAP 56 /* u8 */
#define VIRTIO_BLK_CFG_MAX_SE_SECTORS 60
#define VIRTIO_BLK_CFG_MAX_SE_SEG 64
#define VIRTIO_BLK_CFG_SE_SECTOR_ALIGN 68
#define VIRTIO_BLK_CFG_SIZE 72 /* without the zoned block */

/*
 * Entropy device, virtio 1.2 §5.4: no feature bits, no config space, one
 * queue (requestq) of device-writable buffers to fill with random bytes.
 */
#define VIRTIO_RNG_QUEUE 0

/*
 * Console device, virtio 1.2 §5.3.  Queues: 0/1 port 0 receive/transmit,
 * 2/3 control receive/transmit, then 4+2k/5+2k for port k+1 (MULTIPORT).
 */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VIRTIO_CONSOLE_F_EMERG_WRITE 2

#define VIRTIO_CONSOLE_Q_RX(port) ((port) == 0 ? 0 : 2 + 2 * (port))
#define VIRTIO_CONSOLE_Q_TX(port) ((port) == 0 ? 1 : 3 + 2 * (port))
#define VIRTIO_CONSOLE_Q_CTRL_RX 2
#define VIRTIO_CONSOLE_Q_CTRL_TX 3

/*
 * Config offsets.  The 1.2 text lists "rows" first, but the Linux driver
 * (and every device it is tested against) reads cols at offset 0 and rows
 * at 2; we follow the drivers.
 */
#define VIRTIO_CONSOLE_CFG_COLS 0	  /* le16 */
#define VIRTIO_CONSOLE_CFG_ROWS 2	  /* le16 */
#define VIRTIO_CONSOLE_CFG_MAX_NR_PORTS 4 /* le32 */
#define VIRTIO_CONSOLE_CFG_EMERG_WR 8	  /* le32 */
#define VIRTIO_CONSOLE_CFG_SIZE 12

/* Control message (§5.3.6.2) and its events */
struct virtio_console_control {
	uint32_t id;	/* port number */
	uint16_t event; /* VIRTIO_CONSOLE_* below */
	uint16_t value;
};
_Static_assert(sizeof(struct virtio_console_control) == 8,
	       "console control layout");

#define VIRTIO_CONSOLE_DEVICE_READY 0
#define VIRTIO_CONSOLE_DEVICE_ADD 1
#define VIRTIO_CONSOLE_DEVICE_REMOVE 2
#define VIRTIO_CONSOLE_PORT_READY 3
#define VIRTIO_CONSOLE_CONSOLE_PORT 4
#define VIRTIO_CONSOLE_RESIZE 5
#define VIRTIO_CONSOLE_PORT_OPEN 6
#define VIRTIO_CONSOLE_PORT_NAME 7

/* RESIZE payload following the control header */
struct virtio_console_resize {
	uint16_t cols;
	uint16_t rows;
};

/*
 * Network device, virtio 1.2 §5.1.  Feature bits (§5.1.3), the header that
 * precedes every frame in both directions (§5.1.6), config offsets
 * (§5.1.4) and the control queue commands (§5.1.6.5).  Queues: 0 receiveq,
 * 1 transmitq, 2 controlq (single queue pair, no VIRTIO_NET_F_MQ).
 */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GSO 6 /* legacy */
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN 9
#define VIRTIO_NET_F_GUEST_UFO 10
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12
#define VIRTIO_NET_F_HOST_ECN 13
#define VIRTIO_NET_F_HOST_UFO 14
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_CTRL_VQ 17
#define VIRTIO_NET_F_CTRL_RX 18
#define VIRTIO_NET_F_CTRL_VLAN 19
#define VIRTIO_NET_F_CTRL_RX_EXTRA 20
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21
#define VIRTIO_NET_F_MQ 22
#define VIRTIO_NET_F_CTRL_MAC_ADDR 23

#define VIRTIO_NET_Q_RX 0
#define VIRTIO_NET_Q_TX 1
#define VIRTIO_NET_Q_CTRL 2

/* struct virtio_net_config byte offsets (§5.1.4) */
#define VIRTIO_NET_CFG_MAC 0	     /* u8[6] */
#define VIRTIO_NET_CFG_STATUS 6	     /* le16 */
#define VIRTIO_NET_CFG_MAX_VQ_PAIRS 8 /* le16 */
#define VIRTIO_NET_CFG_MTU 10	     /* le16 */
#define VIRTIO_NET_CFG_SIZE 12
#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_S_ANNOUNCE 2

/*
 * The per-frame header (§5.1.6).  num_buffers is present with
 * VIRTIO_NET_F_MRG_RXBUF or VERSION_1 (12 bytes); a legacy device without
 * MRG_RXBUF uses the first 10 bytes only.  It is also the Linux tap
 * "vnet header" (IFF_VNET_HDR, TUNSETVNETHDRSZ), so backends carry it.
 */
struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
_Static_assert(sizeof(struct virtio_net_hdr) == 12, "net hdr layout");
#define VIRTIO_NET_HDR_LEN 12
#define VIRTIO_NET_HDR_LEN_LEGACY 10
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_UDP 3
#define VIRTIO_NET_HDR_GSO_TCPV6 4
#define VIRTIO_NET_HDR_GSO_ECN 0x80

/* Control queue: class/command header, then data, then an ack byte. */
#define VIRTIO_NET_OK 0
#define VIRTIO_NET_ERR 1
#define VIRTIO_NET_CTRL_RX 0
#define VIRTIO_NET_CTRL_RX_PROMISC 0
#define VIRTIO_NET_CTRL_RX_ALLMULTI 1
#define VIRTIO_NET_CTRL_RX_ALLUNI 2
#define VIRTIO_NET_CTRL_RX_NOMULTI 3
#define VIRTIO_NET_CTRL_RX_NOUNI 4
#define VIRTIO_NET_CTRL_RX_NOBCAST 5
#define VIRTIO_NET_CTRL_MAC 1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET 0
#define VIRTIO_NET_CTRL_MAC_ADDR_SET 1
#define VIRTIO_NET_CTRL_VLAN 2
#define VIRTIO_NET_CTRL_ANNOUNCE 3
#define VIRTIO_NET_CTRL_ANNOUNCE_ACK 0
#define VIRTIO_NET_CTRL_MQ 4
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS 5
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET 0

#endif
