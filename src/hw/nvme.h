/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * NVM Express constants shared by the NVMe controller model (nvme.c) and
 * its device tests: register offsets and fields, command opcodes, status
 * codes, the layout of submission and completion queue entries and of the
 * Identify data we fill.  Values are from the NVM Express Base
 * Specification 1.4 (section numbers in comments).  Nothing here is state:
 * no threads, no locks.
 */
#ifndef KHYVE_HW_NVME_H
#define KHYVE_HW_NVME_H

#include <stdint.h>

/* PCI identity (bhyve's) and class: mass storage / NVM / NVMe. */
#define NVME_PCI_VENDOR 0xfb5d
#define NVME_PCI_DEVICE 0x0a0a
#define NVME_PCI_CLASS 0x01
#define NVME_PCI_SUBCLASS 0x08
#define NVME_PCI_PROGIF 0x02

/* BARs: registers and doorbells in BAR0 (64-bit), MSI-X in BAR4. */
#define NVME_BAR_REGS 0
#define NVME_BAR_MSIX 4
#define NVME_BAR0_SIZE 0x4000 /* the 16 KiB minimum Windows wants */
#define NVME_MSIX_PBA_OFF 0x800

/* Controller registers (§3.1). */
#define NVME_REG_CAP 0x00
#define NVME_REG_VS 0x08
#define NVME_REG_INTMS 0x0c
#define NVME_REG_INTMC 0x10
#define NVME_REG_CC 0x14
#define NVME_REG_CSTS 0x1c
#define NVME_REG_NSSR 0x20
#define NVME_REG_AQA 0x24
#define NVME_REG_ASQ 0x28
#define NVME_REG_ACQ 0x30
#define NVME_REG_END 0x40 /* registers we model end here */
#define NVME_REG_DBS 0x1000

/* Doorbell offsets with CAP.DSTRD = 0. */
#define NVME_SQ_TDBL(q) (NVME_REG_DBS + 8u * (q))
#define NVME_CQ_HDBL(q) (NVME_REG_DBS + 8u * (q) + 4u)

#define NVME_VS_1_4 0x00010400u

/* CAP fields. */
#define NVME_CAP_CQR (1ULL << 16)
#define NVME_CAP_TO_SHIFT 24
#define NVME_CAP_DSTRD_SHIFT 32
#define NVME_CAP_CSS_NVM (1ULL << 37)
#define NVME_CAP_MPSMIN_SHIFT 48
#define NVME_CAP_MPSMAX_SHIFT 52

/* CC fields. */
#define NVME_CC_EN 0x1u
#define NVME_CC_CSS(cc) (((cc) >> 4) & 0x7u)
#define NVME_CC_MPS(cc) (((cc) >> 7) & 0xfu)
#define NVME_CC_AMS(cc) (((cc) >> 11) & 0x7u)
#define NVME_CC_SHN(cc) (((cc) >> 14) & 0x3u)
#define NVME_CC_IOSQES(cc) (((cc) >> 16) & 0xfu)
#define NVME_CC_IOCQES(cc) (((cc) >> 20) & 0xfu)

/* CSTS fields. */
#define NVME_CSTS_RDY 0x1u
#define NVME_CSTS_CFS 0x2u
#define NVME_CSTS_SHST_MASK 0xcu
#define NVME_CSTS_SHST_DONE 0x8u

/* Largest page size we accept (CAP.MPSMAX): 4 KiB << 4 = 64 KiB. */
#define NVME_MPSMAX 4
/* Maximum data transfer: 2^MDTS pages of the minimum size (2 MiB). */
#define NVME_MDTS 9
#define NVME_MAX_XFER (4096u << NVME_MDTS)

/* Queue entry sizes. */
#define NVME_SQE_SIZE 64
#define NVME_CQE_SIZE 16

/* Admin command opcodes (§5). */
#define NVME_ADM_DELETE_SQ 0x00
#define NVME_ADM_CREATE_SQ 0x01
#define NVME_ADM_GET_LOG_PAGE 0x02
#define NVME_ADM_DELETE_CQ 0x04
#define NVME_ADM_CREATE_CQ 0x05
#define NVME_ADM_IDENTIFY 0x06
#define NVME_ADM_ABORT 0x08
#define NVME_ADM_SET_FEATURES 0x09
#define NVME_ADM_GET_FEATURES 0x0a
#define NVME_ADM_ASYNC_EVENT 0x0c
#define NVME_ADM_FW_COMMIT 0x10
#define NVME_ADM_FW_DOWNLOAD 0x11
#define NVME_ADM_KEEP_ALIVE 0x18
#define NVME_ADM_DBBUF_CONFIG 0x7c
#define NVME_ADM_FORMAT_NVM 0x80

/* NVM command set opcodes (NVM command set, §6). */
#define NVME_IO_FLUSH 0x00
#define NVME_IO_WRITE 0x01
#define NVME_IO_READ 0x02
#define NVME_IO_WRITE_ZEROES 0x08
#define NVME_IO_DSM 0x09

/* Identify CNS values. */
#define NVME_CNS_NS 0x00
#define NVME_CNS_CTRL 0x01
#define NVME_CNS_ACTIVE_NS 0x02
#define NVME_CNS_NS_DESC 0x03

/* Log pages. */
#define NVME_LOG_ERROR 0x01
#define NVME_LOG_SMART 0x02
#define NVME_LOG_FW_SLOT 0x03

/* Features. */
#define NVME_FEAT_ARBITRATION 0x01
#define NVME_FEAT_POWER_MGMT 0x02
#define NVME_FEAT_TEMP_THRESH 0x04
#define NVME_FEAT_ERROR_RECOVERY 0x05
#define NVME_FEAT_VOLATILE_WC 0x06
#define NVME_FEAT_NUM_QUEUES 0x07
#define NVME_FEAT_INT_COALESCING 0x08
#define NVME_FEAT_INT_VECTOR 0x09
#define NVME_FEAT_WRITE_ATOMICITY 0x0a
#define NVME_FEAT_ASYNC_EVENT 0x0b

/* Asynchronous events (§5.2). */
#define NVME_AE_TYPE_ERROR 0
#define NVME_AE_TYPE_SMART 1
#define NVME_AE_TYPE_NOTICE 2
#define NVME_AE_INFO_BAD_DB_REG 0x00
#define NVME_AE_INFO_BAD_DB_VALUE 0x01
/* Outstanding Async Event Requests (Identify AERL is this minus 1). */
#define NVME_AER_MAX 4

/*
 * Status field of a completion (§4.6.1.2): bits 7:0 status code, 10:8
 * status code type, 14 Do Not Retry.  NVME_SC(type, code).
 */
#define NVME_SC(t, c) ((uint16_t)(((t) << 8) | (c)))
#define NVME_DNR 0x4000u
#define NVME_SCT(s) (((s) >> 8) & 0x7u)
#define NVME_SCODE(s) ((s)&0xffu)

/* Generic command status (type 0). */
#define NVME_SC_SUCCESS NVME_SC(0, 0x00)
#define NVME_SC_INVALID_OPCODE NVME_SC(0, 0x01)
#define NVME_SC_INVALID_FIELD NVME_SC(0, 0x02)
#define NVME_SC_DATA_XFER_ERROR NVME_SC(0, 0x04)
#define NVME_SC_INTERNAL NVME_SC(0, 0x06)
#define NVME_SC_ABORTED_SQ_DELETED NVME_SC(0, 0x08)
#define NVME_SC_INVALID_NS NVME_SC(0, 0x0b)
#define NVME_SC_CMD_SEQ_ERROR NVME_SC(0, 0x0c)
#define NVME_SC_INVALID_PRP_OFFSET NVME_SC(0, 0x13)
#define NVME_SC_NS_WRITE_PROTECTED NVME_SC(0, 0x20)
#define NVME_SC_CMD_INTERRUPTED NVME_SC(0, 0x21)
#define NVME_SC_LBA_RANGE NVME_SC(0, 0x80)
/* Command specific status (type 1). */
#define NVME_SC_CQ_INVALID NVME_SC(1, 0x00)
#define NVME_SC_INVALID_QID NVME_SC(1, 0x01)
#define NVME_SC_INVALID_QSIZE NVME_SC(1, 0x02)
#define NVME_SC_AER_LIMIT NVME_SC(1, 0x05)
#define NVME_SC_INVALID_VECTOR NVME_SC(1, 0x08)
#define NVME_SC_INVALID_LOG_PAGE NVME_SC(1, 0x09)
#define NVME_SC_INVALID_QUEUE_DEL NVME_SC(1, 0x0c)
#define NVME_SC_FEAT_NOT_SAVEABLE NVME_SC(1, 0x0d)
/* Media and data integrity errors (type 2). */
#define NVME_SC_WRITE_FAULT NVME_SC(2, 0x80)
#define NVME_SC_READ_ERROR NVME_SC(2, 0x81)

/* Identify Controller offsets we fill (Figure 247). */
#define NVME_IDC_VID 0
#define NVME_IDC_SSVID 2
#define NVME_IDC_SN 4  /* 20 bytes */
#define NVME_IDC_MN 24 /* 40 bytes */
#define NVME_IDC_FR 64 /* 8 bytes */
#define NVME_IDC_RAB 72
#define NVME_IDC_IEEE 73
#define NVME_IDC_MDTS 77
#define NVME_IDC_CNTLID 78
#define NVME_IDC_VER 80
#define NVME_IDC_CNTRLTYPE 111
#define NVME_IDC_OACS 256
#define NVME_IDC_ACL 258
#define NVME_IDC_AERL 259
#define NVME_IDC_FRMW 260
#define NVME_IDC_LPA 261
#define NVME_IDC_ELPE 262
#define NVME_IDC_NPSS 263
#define NVME_IDC_WCTEMP 266
#define NVME_IDC_CCTEMP 268
#define NVME_IDC_SQES 512
#define NVME_IDC_CQES 513
#define NVME_IDC_NN 516
#define NVME_IDC_ONCS 520
#define NVME_IDC_VWC 525
#define NVME_IDC_SGLS 536
#define NVME_IDC_SUBNQN 768 /* 256 bytes */
#define NVME_IDC_PSD0 2048

#define NVME_OACS_DBBUF (1u << 8)
#define NVME_ONCS_DSM (1u << 2)
#define NVME_ONCS_WRITE_ZEROES (1u << 3)

/* Identify Namespace offsets (Figure 249). */
#define NVME_IDN_NSZE 0
#define NVME_IDN_NCAP 8
#define NVME_IDN_NUSE 16
#define NVME_IDN_NSFEAT 24
#define NVME_IDN_NLBAF 25
#define NVME_IDN_FLBAS 26
#define NVME_IDN_DLFEAT 33
#define NVME_IDN_NSATTR 99
#define NVME_IDN_EUI64 120
#define NVME_IDN_LBAF0 128

/* Namespace identification descriptor types (CNS 3). */
#define NVME_NIDT_EUI64 1

#define NVME_IDENTIFY_SIZE 4096

#endif
