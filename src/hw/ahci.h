/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Constants of the AHCI SATA controller model (src/hw/ahci.c) that its
 * device test shares: the PCI identity, the ABAR register map (AHCI 1.3.1
 * §3), the in-memory structures (command list, command table, received
 * FIS area; §4) and the ATA/ATAPI values the model speaks (ACS-3, SPC,
 * MMC).  No functions: the model registers itself with DEVMODEL_SET.
 *
 * Threads and locks: constants only.
 */
#ifndef KHYVE_HW_AHCI_H
#define KHYVE_HW_AHCI_H

/* ---- PCI ---- */
#define AHCI_PCI_VENDOR 0x8086 /* Intel */
#define AHCI_PCI_DEVICE 0x2821 /* ICH8 AHCI, as bhyve */
#define AHCI_PCI_CLASS 0x01    /* mass storage */
#define AHCI_PCI_SUBCLASS 0x06 /* SATA */
#define AHCI_PCI_PROGIF 0x01   /* AHCI 1.0 */
#define AHCI_BAR 5	       /* ABAR */
#define AHCI_BAR_SIZE 0x2000
#define AHCI_MAX_PORTS 32
#define AHCI_MAX_SLOTS 32

/* ---- generic host control (offsets in the ABAR) ---- */
#define AHCI_CAP 0x00
#define AHCI_GHC 0x04
#define AHCI_IS 0x08
#define AHCI_PI 0x0c
#define AHCI_VS 0x10
#define AHCI_CCC_CTL 0x14
#define AHCI_CCC_PORTS 0x18
#define AHCI_EM_LOC 0x1c
#define AHCI_EM_CTL 0x20
#define AHCI_CAP2 0x24
#define AHCI_BOHC 0x28

#define AHCI_CAP_S64A (1u << 31)
#define AHCI_CAP_SNCQ (1u << 30)
#define AHCI_CAP_SCLO (1u << 24)
#define AHCI_CAP_ISS_SHIFT 20
#define AHCI_CAP_SAM (1u << 18)
#define AHCI_CAP_PMD (1u << 15)
#define AHCI_CAP_NCS_SHIFT 8
#define AHCI_CAP_NCS_MASK (0x1fu << AHCI_CAP_NCS_SHIFT)
#define AHCI_CAP_NP_MASK 0x1fu

#define AHCI_GHC_AE (1u << 31)
#define AHCI_GHC_IE (1u << 1)
#define AHCI_GHC_HR (1u << 0)

#define AHCI_VS_1_3 0x00010300u

/* ---- port registers (offsets inside a port's 0x80 bytes) ---- */
#define AHCI_PORT_BASE 0x100
#define AHCI_PORT_SIZE 0x80
#define AHCI_PORT(n) (AHCI_PORT_BASE + (n)*AHCI_PORT_SIZE)

#define AHCI_P_CLB 0x00
#define AHCI_P_CLBU 0x04
#define AHCI_P_FB 0x08
#define AHCI_P_FBU 0x0c
#define AHCI_P_IS 0x10
#define AHCI_P_IE 0x14
#define AHCI_P_CMD 0x18
#define AHCI_P_TFD 0x20
#define AHCI_P_SIG 0x24
#define AHCI_P_SSTS 0x28
#define AHCI_P_SCTL 0x2c
#define AHCI_P_SERR 0x30
#define AHCI_P_SACT 0x34
#define AHCI_P_CI 0x38
#define AHCI_P_SNTF 0x3c
#define AHCI_P_FBS 0x40
#define AHCI_P_DEVSLP 0x44

/* PxIS / PxIE */
#define AHCI_P_IX_DHRS (1u << 0)  /* D2H register FIS */
#define AHCI_P_IX_PSS (1u << 1)	  /* PIO setup FIS */
#define AHCI_P_IX_DSS (1u << 2)	  /* DMA setup FIS */
#define AHCI_P_IX_SDBS (1u << 3)  /* set device bits FIS */
#define AHCI_P_IX_UFS (1u << 4)	  /* unknown FIS */
#define AHCI_P_IX_DPS (1u << 5)	  /* descriptor processed */
#define AHCI_P_IX_PCS (1u << 6)	  /* port connect change */
#define AHCI_P_IX_DMPS (1u << 7)  /* device mechanical presence */
#define AHCI_P_IX_PRCS (1u << 22) /* PhyRdy change */
#define AHCI_P_IX_IPMS (1u << 23) /* incorrect port multiplier */
#define AHCI_P_IX_OFS (1u << 24)  /* overflow */
#define AHCI_P_IX_INFS (1u << 26) /* interface non-fatal error */
#define AHCI_P_IX_IFS (1u << 27)  /* interface fatal error */
#define AHCI_P_IX_HBDS (1u << 28) /* host bus data error */
#define AHCI_P_IX_HBFS (1u << 29) /* host bus fatal error */
#define AHCI_P_IX_TFES (1u << 30) /* task file error */
#define AHCI_P_IX_CPDS (1u << 31) /* cold port detect */
#define AHCI_P_IX_MASK 0xfdc000ffu

/* PxCMD */
#define AHCI_P_CMD_ST (1u << 0)
#define AHCI_P_CMD_SUD (1u << 1)
#define AHCI_P_CMD_POD (1u << 2)
#define AHCI_P_CMD_CLO (1u << 3)
#define AHCI_P_CMD_FRE (1u << 4)
#define AHCI_P_CMD_CCS_SHIFT 8
#define AHCI_P_CMD_CCS_MASK (0x1fu << AHCI_P_CMD_CCS_SHIFT)
#define AHCI_P_CMD_FR (1u << 14)
#define AHCI_P_CMD_CR (1u << 15)
#define AHCI_P_CMD_ATAPI (1u << 24)
#define AHCI_P_CMD_DLAE (1u << 25)

/* PxSIG: what the device's reset signature FIS says */
#define AHCI_SIG_ATA 0x00000101u
#define AHCI_SIG_ATAPI 0xeb140101u

/* PxSSTS / PxSCTL */
#define AHCI_SSTS_DET_MASK 0xfu
#define AHCI_SSTS_DET_PRESENT 0x3u /* device present, phy up */
#define AHCI_SSTS_DET_OFFLINE 0x4u
#define AHCI_SSTS_SPD_SHIFT 4
#define AHCI_SSTS_SPD_MASK (0xfu << AHCI_SSTS_SPD_SHIFT)
#define AHCI_SSTS_IPM_ACTIVE (1u << 8)
#define AHCI_SCTL_DET_MASK 0xfu
#define AHCI_SCTL_DET_COMRESET 0x1u
#define AHCI_SCTL_DET_DISABLE 0x4u
#define AHCI_SCTL_SPD_SHIFT 4
#define AHCI_SCTL_SPD_MASK (0xfu << AHCI_SCTL_SPD_SHIFT)

/* ---- memory structures ---- */
#define AHCI_CL_SIZE 1024 /* command list: 32 headers */
#define AHCI_CL_ALIGN 1024
#define AHCI_CMDHDR_SIZE 32
#define AHCI_RFIS_SIZE 256 /* received FIS area */
#define AHCI_RFIS_ALIGN 256
#define AHCI_RFIS_DSFIS 0x00 /* DMA setup FIS */
#define AHCI_RFIS_PSFIS 0x20 /* PIO setup FIS */
#define AHCI_RFIS_RFIS 0x40  /* D2H register FIS */
#define AHCI_RFIS_SDBFIS 0x58
#define AHCI_RFIS_UFIS 0x60

/* Command header DW0 */
#define AHCI_CMDHDR_CFL_MASK 0x1fu /* command FIS length, dwords */
#define AHCI_CMDHDR_A (1u << 5)	   /* ATAPI */
#define AHCI_CMDHDR_W (1u << 6)	   /* write */
#define AHCI_CMDHDR_P (1u << 7)	   /* prefetchable */
#define AHCI_CMDHDR_R (1u << 8)	   /* reset */
#define AHCI_CMDHDR_C (1u << 10)   /* clear busy upon R_OK */
#define AHCI_CMDHDR_PRDTL_SHIFT 16

/* Command table */
#define AHCI_CT_CFIS 0x00
#define AHCI_CT_ACMD 0x40
#define AHCI_CT_PRDT 0x80
#define AHCI_CT_ALIGN 128
#define AHCI_PRD_SIZE 16
#define AHCI_PRD_DBC_MASK 0x3fffffu
#define AHCI_PRD_I (1u << 31)

/* FIS types */
#define FIS_TYPE_H2D 0x27
#define FIS_TYPE_D2H 0x34
#define FIS_TYPE_DMA_SETUP 0x41
#define FIS_TYPE_PIO_SETUP 0x5f
#define FIS_TYPE_SDB 0xa1
#define FIS_H2D_C 0x80 /* byte 1: command register update */
#define FIS_I 0x40     /* byte 1 of device-to-host FISes: interrupt */
#define FIS_PIO_D 0x20 /* PIO setup: device to host */
#define FIS_H2D_SIZE 20

/* ---- ATA ---- */
#define ATA_S_ERR 0x01
#define ATA_S_DRQ 0x08
#define ATA_S_DSC 0x10
#define ATA_S_DF 0x20
#define ATA_S_DRDY 0x40
#define ATA_S_BSY 0x80
#define ATA_E_AMNF 0x01
#define ATA_E_ABRT 0x04
#define ATA_E_IDNF 0x10
#define ATA_E_UNC 0x40
#define ATA_CTL_SRST 0x04

#define ATA_NOP 0x00
#define ATA_DSM 0x06
#define ATA_DEVICE_RESET 0x08
#define ATA_RECALIBRATE 0x10
#define ATA_READ_SECTORS 0x20
#define ATA_READ_SECTORS_EXT 0x24
#define ATA_READ_DMA_EXT 0x25
#define ATA_READ_MULTIPLE_EXT 0x29
#define ATA_READ_LOG_EXT 0x2f
#define ATA_WRITE_SECTORS 0x30
#define ATA_WRITE_SECTORS_EXT 0x34
#define ATA_WRITE_DMA_EXT 0x35
#define ATA_WRITE_MULTIPLE_EXT 0x39
#define ATA_WRITE_DMA_FUA_EXT 0x3d
#define ATA_READ_VERIFY 0x40
#define ATA_READ_VERIFY_EXT 0x42
#define ATA_READ_LOG_DMA_EXT 0x47
#define ATA_READ_FPDMA_QUEUED 0x60
#define ATA_WRITE_FPDMA_QUEUED 0x61
#define ATA_EXEC_DIAGNOSTIC 0x90
#define ATA_INIT_DEV_PARAMS 0x91
#define ATA_PACKET 0xa0
#define ATA_IDENTIFY_PACKET 0xa1
#define ATA_READ_MULTIPLE 0xc4
#define ATA_WRITE_MULTIPLE 0xc5
#define ATA_SET_MULTIPLE 0xc6
#define ATA_READ_DMA 0xc8
#define ATA_WRITE_DMA 0xca
#define ATA_WRITE_MULTIPLE_FUA_EXT 0xce
#define ATA_STANDBY_IMMEDIATE 0xe0
#define ATA_IDLE_IMMEDIATE 0xe1
#define ATA_STANDBY 0xe2
#define ATA_IDLE 0xe3
#define ATA_CHECK_POWER_MODE 0xe5
#define ATA_SLEEP 0xe6
#define ATA_FLUSH_CACHE 0xe7
#define ATA_FLUSH_CACHE_EXT 0xea
#define ATA_IDENTIFY 0xec
#define ATA_SET_FEATURES 0xef

/* SET FEATURES subcommands (features register) */
#define ATA_SF_ENABLE_WCACHE 0x02
#define ATA_SF_SET_XFER_MODE 0x03
#define ATA_SF_ENABLE_SATA 0x10
#define ATA_SF_DISABLE_RLA 0x55
#define ATA_SF_DISABLE_REVERT 0x66
#define ATA_SF_DISABLE_WCACHE 0x82
#define ATA_SF_DISABLE_SATA 0x90
#define ATA_SF_ENABLE_RLA 0xaa
#define ATA_SF_ENABLE_REVERT 0xcc

/* IDENTIFY DEVICE words the tests look at */
#define ATA_ID_SERIAL 10 /* 10 words */
#define ATA_ID_FW_REV 23 /* 4 words */
#define ATA_ID_MODEL 27	 /* 20 words */
#define ATA_ID_QUEUE_DEPTH 75
#define ATA_ID_SATA_CAP 76
#define ATA_ID_LBA48 100 /* 4 words */
#define ATA_ID_DSM_BLOCKS 105
#define ATA_ID_SECTOR_SIZE 106
#define ATA_ID_DSM 169
#define ATA_ID_NMRR 217
#define ATA_ID_INTEGRITY 255

/* General-purpose logs */
#define ATA_LOG_DIRECTORY 0x00
#define ATA_LOG_NCQ_ERROR 0x10
#define ATA_DSM_MAX_BLOCKS 8 /* 512-byte blocks of ranges per TRIM */

/* ---- ATAPI (SCSI commands in the PACKET command) ---- */
#define ATAPI_CDB_SIZE 16
#define ATAPI_BLOCK 2048
#define SCSI_TEST_UNIT_READY 0x00
#define SCSI_REQUEST_SENSE 0x03
#define SCSI_INQUIRY 0x12
#define SCSI_MODE_SENSE_6 0x1a
#define SCSI_START_STOP_UNIT 0x1b
#define SCSI_PREVENT_ALLOW 0x1e
#define SCSI_READ_CAPACITY 0x25
#define SCSI_READ_10 0x28
#define SCSI_SEEK_10 0x2b
#define SCSI_READ_TOC 0x43
#define SCSI_GET_CONFIGURATION 0x46
#define SCSI_GET_EVENT_STATUS 0x4a
#define SCSI_READ_DISC_INFO 0x51
#define SCSI_MODE_SENSE_10 0x5a
#define SCSI_READ_12 0xa8
#define SCSI_SET_CD_SPEED 0xbb

/* Sense keys and additional sense codes */
#define SENSE_NONE 0x00
#define SENSE_NOT_READY 0x02
#define SENSE_MEDIUM_ERROR 0x03
#define SENSE_ILLEGAL_REQUEST 0x05
#define SENSE_UNIT_ATTENTION 0x06
#define SENSE_ABORTED_COMMAND 0x0b
#define ASC_UNRECOVERED_READ 0x11
#define ASC_INVALID_OPCODE 0x20
#define ASC_LBA_OUT_OF_RANGE 0x21
#define ASC_INVALID_FIELD_IN_CDB 0x24
#define ASC_SAVING_NOT_SUPPORTED 0x39

/* MMC profiles */
#define MMC_PROFILE_CDROM 0x0008
#define MMC_PROFILE_DVDROM 0x0010

#endif
