/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for the AHCI controller (src/hw/ahci.c) without KVM: a
 * machine from vdrv.h (buses, PCI root, 32 MiB of fake guest RAM, a
 * recording irq sink) with one AHCI function whose ports are a raw disk
 * image (port 0), an "ISO" (port 1, any file read in 2048-byte blocks),
 * two empty ports and a second disk with 4096-byte sectors and nodelete
 * (port 4), all in a mkdtemp directory removed at the end.  The test plays
 * the guest driver: it builds command lists, command tables and PRDTs in
 * the fake RAM and drives the ABAR registers through the MMIO bus.
 *
 * Covered: PCI identity and capabilities, CAP/PI/VS, HBA reset, port
 * start, IDENTIFY (strings byte-swapped, capacity, nmrr, checksum),
 * WRITE/READ DMA EXT against pread(2), a PRDT longer than one block
 * request with buffers that split sectors, NCQ with 8 slots in flight,
 * FLUSH, TRIM, ATAPI (IDENTIFY PACKET, INQUIRY, READ CAPACITY, READ(10),
 * REQUEST SENSE, MODE SENSE, READ TOC, GET CONFIGURATION, GET EVENT
 * STATUS), soft reset, COMRESET, the NCQ error log, every hostile case we
 * know of, HBA reset with I/O in flight, INTx and MSI delivery, and the
 * command-line syntax (ports, aliases, bad keys, bad values).
 *
 * Threads: the test thread is the guest; the block workers complete
 * commands concurrently, so completion is polled with a bounded wait.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/flags.h"
#include "config/keys.h"
#include "hw/ahci.h"
#include "tests/dev/diskimg.h"
#include "tests/dev/vdrv.h"
#include "tests/tap.h"

#define SLOT 3
#define NPORTS 5
#define DISK_SIZE (8u << 20)
#define DISK2_SIZE (1u << 20)
#define ISO_BLOCKS 300u
#define CT_SIZE 0x1000 /* command table incl. up to 248 PRD entries */
#define FAR_AWAY 0x100000000000ull /* not RAM */
#define TIMEOUT_MS 10000

static char tmpdir[64];

struct port_mem {
	uint64_t clb, fb, ct[AHCI_MAX_SLOTS];
};

struct env {
	struct vdrv_machine m;
	uint64_t abar;
	unsigned gsi;
	struct port_mem pm[NPORTS];
	uint64_t buf, buf2; /* 1 MiB each */
	char disk[128], iso[128], disk2[128];
	int fd, isofd;
};

/* ---- files ---- */

static uint8_t pat(uint64_t off)
{
	return (uint8_t)(off / 512 * 13 + off % 253 + 1);
}

static uint8_t isopat(uint64_t off)
{
	return (uint8_t)(off / 2048 * 7 + off % 251 + 3);
}

static bool file_zero(int fd, uint64_t off, size_t len)
{
	uint8_t *b = calloc(1, len), *z = calloc(1, len);
	bool same;

	same = b && z && pread(fd, b, len, (off_t)off) == (ssize_t)len &&
	       memcmp(b, z, len) == 0;
	free(b);
	free(z);
	return same;
}

/* ---- little-endian access to fake RAM ---- */

static uint8_t *ram(struct env *e, uint64_t gpa)
{
	return vdrv_ptr(&e->m, gpa);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* ---- registers ---- */

static uint32_t rd(struct env *e, unsigned off)
{
	return (uint32_t)vdrv_mmio(&e->m, e->abar + off, 4, false, 0);
}

static void wr(struct env *e, unsigned off, uint32_t v)
{
	vdrv_mmio(&e->m, e->abar + off, 4, true, v);
}

static uint32_t prd(struct env *e, unsigned port, unsigned reg)
{
	return rd(e, AHCI_PORT(port) + reg);
}

static void pwr(struct env *e, unsigned port, unsigned reg, uint32_t v)
{
	wr(e, AHCI_PORT(port) + reg, v);
}

/*
 * Wait until the slots in 'mask' left CI and SACT, or a task file error.
 * Returns PxIS (then cleared), or 0xffffffff on a timeout.
 */
static uint32_t wait_done(struct env *e, unsigned port, uint32_t mask)
{
	unsigned t;
	uint32_t is;

	for (t = 0; t < TIMEOUT_MS; t++) {
		is = prd(e, port, AHCI_P_IS);
		if (!(prd(e, port, AHCI_P_CI) & mask) &&
		    !(prd(e, port, AHCI_P_SACT) & mask))
			break;
		if (is & AHCI_P_IX_TFES)
			break;
		dimg_sleep_ms(1);
	}
	if (t == TIMEOUT_MS) {
		diag("port %u: timeout, CI=0x%x SACT=0x%x IS=0x%x", port,
		     prd(e, port, AHCI_P_CI), prd(e, port, AHCI_P_SACT),
		     prd(e, port, AHCI_P_IS));
		return 0xffffffff;
	}
	/* the IS update follows the CI/SACT update under the same lock */
	is = prd(e, port, AHCI_P_IS);
	pwr(e, port, AHCI_P_IS, is);
	return is;
}

static void port_start(struct env *e, unsigned port)
{
	pwr(e, port, AHCI_P_CLB, (uint32_t)e->pm[port].clb);
	pwr(e, port, AHCI_P_CLBU, 0);
	pwr(e, port, AHCI_P_FB, (uint32_t)e->pm[port].fb);
	pwr(e, port, AHCI_P_FBU, 0);
	pwr(e, port, AHCI_P_SERR, 0xffffffff);
	pwr(e, port, AHCI_P_IS, 0xffffffff);
	pwr(e, port, AHCI_P_CMD, AHCI_P_CMD_FRE | AHCI_P_CMD_SUD);
	pwr(e, port, AHCI_P_CMD,
	    AHCI_P_CMD_FRE | AHCI_P_CMD_SUD | AHCI_P_CMD_ST);
}

/* Clear ST, wait for CR to drop, start again (error recovery). */
static bool port_restart(struct env *e, unsigned port)
{
	unsigned t;

	pwr(e, port, AHCI_P_CMD, AHCI_P_CMD_FRE | AHCI_P_CMD_SUD);
	for (t = 0; t < TIMEOUT_MS; t++) {
		if (!(prd(e, port, AHCI_P_CMD) & AHCI_P_CMD_CR))
			break;
		dimg_sleep_ms(1);
	}
	pwr(e, port, AHCI_P_IS, 0xffffffff);
	pwr(e, port, AHCI_P_CMD,
	    AHCI_P_CMD_FRE | AHCI_P_CMD_SUD | AHCI_P_CMD_ST);
	return t < TIMEOUT_MS;
}

/* ---- commands ---- */

static void h2d(uint8_t *f, uint8_t cmd, uint64_t lba, uint16_t count,
		uint16_t feat)
{
	memset(f, 0, FIS_H2D_SIZE);
	f[0] = FIS_TYPE_H2D;
	f[1] = FIS_H2D_C;
	f[2] = cmd;
	f[3] = (uint8_t)feat;
	f[4] = (uint8_t)lba;
	f[5] = (uint8_t)(lba >> 8);
	f[6] = (uint8_t)(lba >> 16);
	f[7] = 0x40;
	f[8] = (uint8_t)(lba >> 24);
	f[9] = (uint8_t)(lba >> 32);
	f[10] = (uint8_t)(lba >> 40);
	f[11] = (uint8_t)(feat >> 8);
	f[12] = (uint8_t)count;
	f[13] = (uint8_t)(count >> 8);
}

/* Command header 'slot' of 'port' and its FIS (and ATAPI CDB). */
static void set_cmd(struct env *e, unsigned port, unsigned slot,
		    const uint8_t *fis, unsigned prdtl, uint32_t flags,
		    const uint8_t *cdb)
{
	uint8_t *h = ram(e, e->pm[port].clb + 32ull * slot);
	uint64_t ct = e->pm[port].ct[slot];

	memset(h, 0, 32);
	put32(h, 5 | flags | prdtl << 16);
	put64(h + 8, ct);
	memset(ram(e, ct), 0, 0x80);
	memcpy(ram(e, ct), fis, FIS_H2D_SIZE);
	if (cdb)
		memcpy(ram(e, ct + AHCI_CT_ACMD), cdb, 16);
}

static void set_prd(struct env *e, unsigned port, unsigned slot, unsigned i,
		    uint64_t gpa, uint32_t len)
{
	uint8_t *p = ram(e, e->pm[port].ct[slot] + AHCI_CT_PRDT + 16ull * i);

	put64(p, gpa);
	put32(p + 8, 0);
	put32(p + 12, len - 1);
}

static uint32_t prdbc(struct env *e, unsigned port, unsigned slot)
{
	return get32(ram(e, e->pm[port].clb + 32ull * slot + 4));
}

/* Issue 'slot' (one PRD entry at gpa/len unless len == 0) and wait. */
static uint32_t ata(struct env *e, unsigned port, unsigned slot, uint8_t cmd,
		    uint64_t lba, uint16_t count, uint16_t feat, uint64_t gpa,
		    uint32_t len, bool write)
{
	uint8_t f[FIS_H2D_SIZE];

	h2d(f, cmd, lba, count, feat);
	set_cmd(e, port, slot, f, len ? 1 : 0, write ? AHCI_CMDHDR_W : 0, NULL);
	if (len)
		set_prd(e, port, slot, 0, gpa, len);
	pwr(e, port, AHCI_P_CI, 1u << slot);
	return wait_done(e, port, 1u << slot);
}

static uint32_t atapi(struct env *e, unsigned slot, const uint8_t *cdb,
		      uint64_t gpa, uint32_t len)
{
	uint8_t f[FIS_H2D_SIZE], c[16];

	memset(c, 0, sizeof(c));
	memcpy(c, cdb, 12);
	h2d(f, ATA_PACKET, 0, 0, 1 /* DMA */);
	set_cmd(e, 1, slot, f, len ? 1 : 0, AHCI_CMDHDR_A, c);
	if (len)
		set_prd(e, 1, slot, 0, gpa, len);
	pwr(e, 1, AHCI_P_CI, 1u << slot);
	return wait_done(e, 1, 1u << slot);
}

/* An ATA string of 'nwords' words at byte offset 2*word of 'id'. */
static void id_string(const uint8_t *id, unsigned word, unsigned nwords,
		      char *out)
{
	unsigned i;

	for (i = 0; i < nwords; i++) {
		out[2 * i] = (char)id[2 * (word + i) + 1];
		out[2 * i + 1] = (char)id[2 * (word + i)];
	}
	out[2 * nwords] = '\0';
	for (i = 2 * nwords; i > 0 && out[i - 1] == ' '; i--)
		out[i - 1] = '\0';
}

static uint16_t idw(struct env *e, unsigned w)
{
	return get16(ram(e, e->buf + 2 * w));
}

/* ---- machine ---- */

static int env_new(struct env *e, const char *const *extra)
{
	const char *kv[64];
	unsigned n = 0, i, p, s;

	memset(e, 0, sizeof(*e));
	snprintf(e->disk, sizeof(e->disk), "%s/disk.img", tmpdir);
	snprintf(e->iso, sizeof(e->iso), "%s/cd.iso", tmpdir);
	snprintf(e->disk2, sizeof(e->disk2), "%s/disk2.img", tmpdir);
	kv[n++] = "pci.0.3.0.device";
	kv[n++] = "ahci";
	kv[n++] = "pci.0.3.0.port.0.type";
	kv[n++] = "hd";
	kv[n++] = "pci.0.3.0.port.0.path";
	kv[n++] = e->disk;
	kv[n++] = "pci.0.3.0.port.0.nmrr";
	kv[n++] = "7200";
	kv[n++] = "pci.0.3.0.port.0.ser";
	kv[n++] = "SER-0123456789ABCDE";
	kv[n++] = "pci.0.3.0.port.0.model";
	kv[n++] = "khyve test disk";
	kv[n++] = "pci.0.3.0.port.0.rev";
	kv[n++] = "1.2.3";
	kv[n++] = "pci.0.3.0.port.1.type";
	kv[n++] = "cd";
	kv[n++] = "pci.0.3.0.port.1.path";
	kv[n++] = e->iso;
	kv[n++] = "pci.0.3.0.port.4.path";
	kv[n++] = e->disk2;
	kv[n++] = "pci.0.3.0.port.4.sectorsize";
	kv[n++] = "4096";
	kv[n++] = "pci.0.3.0.port.4.nodelete";
	kv[n++] = "true";
	for (i = 0; extra && extra[i]; i++)
		kv[n++] = extra[i];
	kv[n] = NULL;
	if (vdrv_machine_new(&e->m, kv))
		return -1;
	e->abar = pci_cfg_read(e->m.root, 0, SLOT, 0, PCIR_BAR(AHCI_BAR), 4) &
		  ~0xfull;
	e->gsi = pci_cfg_read(e->m.root, 0, SLOT, 0, PCIR_INTLINE, 1);
	for (p = 0; p < NPORTS; p++) {
		e->pm[p].clb = vdrv_alloc(&e->m, AHCI_CL_SIZE, AHCI_CL_ALIGN);
		e->pm[p].fb = vdrv_alloc(&e->m, AHCI_RFIS_SIZE, 256);
		for (s = 0; s < AHCI_MAX_SLOTS; s++)
			e->pm[p].ct[s] = vdrv_alloc(&e->m, CT_SIZE, 128);
	}
	e->buf = vdrv_alloc(&e->m, 1u << 20, 4096);
	e->buf2 = vdrv_alloc(&e->m, 1u << 20, 4096);
	e->fd = open(e->disk, O_RDWR);
	e->isofd = open(e->iso, O_RDONLY);
	return e->fd < 0 || e->isofd < 0 ? -1 : 0;
}

static void env_free(struct env *e)
{
	vdrv_machine_free(&e->m);
	close(e->fd);
	close(e->isofd);
}

/* ---- the tests ---- */

static void t_pci(struct env *e)
{
	struct vdrv_machine *m = &e->m;
	unsigned c, msi = 0;

	is_int(pci_cfg_read(m->root, 0, SLOT, 0, PCIR_VENDOR, 2),
	       AHCI_PCI_VENDOR, "vendor 8086");
	is_int(pci_cfg_read(m->root, 0, SLOT, 0, PCIR_DEVICE, 2),
	       AHCI_PCI_DEVICE, "device 2821");
	is_int(pci_cfg_read(m->root, 0, SLOT, 0, PCIR_REVID, 4) >> 8, 0x010601,
	       "class 01/06/01");
	ok(e->abar != 0 &&
		   !(pci_cfg_read(m->root, 0, SLOT, 0, PCIR_BAR(AHCI_BAR), 4) &
		     1),
	   "ABAR is a memory BAR 5 at 0x%llx", (unsigned long long)e->abar);
	for (c = pci_cfg_read(m->root, 0, SLOT, 0, PCIR_CAP_PTR, 1); c;
	     c = pci_cfg_read(m->root, 0, SLOT, 0, c + 1, 1))
		if (pci_cfg_read(m->root, 0, SLOT, 0, c, 1) == PCIY_MSI)
			msi = c;
	ok(msi, "MSI capability");
	is_int((pci_cfg_read(m->root, 0, SLOT, 0, msi + 2, 2) >> 1) & 7, 0,
	       "MSI: one vector");
	is_int(pci_cfg_read(m->root, 0, SLOT, 0, PCIR_INTPIN, 1), 1, "INTA");
	ok(e->gsi >= 16 && e->gsi < 24, "INTx routed to GSI %u", e->gsi);
}

static void t_hba(struct env *e)
{
	uint32_t cap = rd(e, AHCI_CAP);
	unsigned p;

	is_int(cap & AHCI_CAP_NP_MASK, NPORTS - 1, "CAP.NP: 5 ports");
	is_int((cap & AHCI_CAP_NCS_MASK) >> AHCI_CAP_NCS_SHIFT, 31,
	       "CAP.NCS: 32 slots");
	ok((cap & AHCI_CAP_S64A) && (cap & AHCI_CAP_SNCQ) &&
		   (cap & AHCI_CAP_SAM) && (cap & AHCI_CAP_SCLO),
	   "CAP: 64-bit, NCQ, AHCI only, CLO");
	is_int((cap >> AHCI_CAP_ISS_SHIFT) & 0xf, 3, "CAP.ISS: Gen3");
	is_int(rd(e, AHCI_PI), 0x1f, "PI: ports 0-4");
	is_int(rd(e, AHCI_VS), 0x10300, "VS 1.3");
	ok(rd(e, AHCI_GHC) & AHCI_GHC_AE, "GHC.AE set");
	wr(e, AHCI_GHC, AHCI_GHC_HR);
	is_int(rd(e, AHCI_GHC), AHCI_GHC_AE, "HBA reset done: HR reads 0");
	is_int(prd(e, 0, AHCI_P_SIG), AHCI_SIG_ATA, "port 0: ATA signature");
	is_int(prd(e, 1, AHCI_P_SIG), AHCI_SIG_ATAPI,
	       "port 1: ATAPI signature");
	is_int(prd(e, 4, AHCI_P_SIG), AHCI_SIG_ATA, "port 4: ATA signature");
	is_int(prd(e, 0, AHCI_P_SSTS), 0x133, "port 0: Gen3, phy up");
	is_int(prd(e, 2, AHCI_P_SSTS), 0, "port 2: no device");
	is_int(prd(e, 2, AHCI_P_SIG), 0xffffffff, "port 2: no signature");
	is_int(prd(e, 0, AHCI_P_TFD) & 0xff, ATA_S_DRDY | ATA_S_DSC,
	       "port 0: TFD ready");
	is_int(prd(e, 1, AHCI_P_TFD) & ATA_S_BSY, 0, "port 1: not busy");
	is_int(rd(e, AHCI_PORT(5) + AHCI_P_SIG), 0,
	       "registers beyond the last port read 0");
	for (p = 0; p < NPORTS; p++)
		port_start(e, p);
	ok((prd(e, 0, AHCI_P_CMD) & (AHCI_P_CMD_CR | AHCI_P_CMD_FR)) ==
		   (AHCI_P_CMD_CR | AHCI_P_CMD_FR),
	   "port started: CR and FR");
}

static void t_identify(struct env *e)
{
	uint8_t *fb = ram(e, e->pm[0].fb);
	char s[48];
	uint64_t sectors = 0;
	uint8_t sum = 0;
	unsigned i;
	uint32_t is;

	memset(ram(e, e->buf), 0xee, 512);
	is = ata(e, 0, 0, ATA_IDENTIFY, 0, 0, 0, e->buf, 512, false);
	is_int(is & (AHCI_P_IX_DHRS | AHCI_P_IX_PSS | AHCI_P_IX_TFES),
	       AHCI_P_IX_DHRS | AHCI_P_IX_PSS, "IDENTIFY: D2H and PIO setup");
	is_int(prdbc(e, 0, 0), 512, "IDENTIFY: PRDBC 512");
	is_int(fb[AHCI_RFIS_PSFIS], FIS_TYPE_PIO_SETUP, "PIO setup FIS");
	is_int(fb[AHCI_RFIS_PSFIS + 1] & FIS_PIO_D, FIS_PIO_D,
	       "PIO setup: device to host");
	is_int(fb[AHCI_RFIS_RFIS], FIS_TYPE_D2H, "D2H FIS");
	is_int(fb[AHCI_RFIS_RFIS + 2], ATA_S_DRDY | ATA_S_DSC, "D2H status");
	id_string(ram(e, e->buf), ATA_ID_SERIAL, 10, s);
	is_str(s, "SER-0123456789ABCDE", "serial number (byte-swapped)");
	is_int(ram(e, e->buf)[2 * ATA_ID_SERIAL], 'E',
	       "first word holds 'S','E' with 'S' in the high byte");
	id_string(ram(e, e->buf), ATA_ID_MODEL, 20, s);
	is_str(s, "khyve test disk", "model number");
	id_string(ram(e, e->buf), ATA_ID_FW_REV, 4, s);
	is_str(s, "1.2.3", "firmware revision");
	for (i = 0; i < 4; i++)
		sectors |= (uint64_t)idw(e, ATA_ID_LBA48 + i) << (16 * i);
	is_int(sectors, DISK_SIZE / 512, "words 100-103: capacity");
	is_int(idw(e, 60) | (uint32_t)idw(e, 61) << 16, DISK_SIZE / 512,
	       "words 60-61: 28-bit capacity");
	is_int(idw(e, ATA_ID_NMRR), 7200, "word 217: nmrr");
	ok(idw(e, ATA_ID_SATA_CAP) & (1u << 8), "word 76: NCQ");
	is_int(idw(e, ATA_ID_QUEUE_DEPTH), 31, "word 75: queue depth 32");
	ok(idw(e, 83) & (1u << 10), "word 83: 48-bit");
	is_int(idw(e, ATA_ID_SECTOR_SIZE) & 0xd000, 0x4000,
	       "word 106: 512-byte logical sectors");
	ok(idw(e, 0) == 0x0040, "word 0: fixed ATA device");
	for (i = 0; i < 512; i++)
		sum = (uint8_t)(sum + ram(e, e->buf)[i]);
	ok(sum == 0 && ram(e, e->buf)[510] == 0xa5, "word 255: checksum");
	is_int(prd(e, 0, AHCI_P_CI), 0, "CI cleared");
}

static void t_rw(struct env *e)
{
	uint8_t *b = ram(e, e->buf), *b2 = ram(e, e->buf2);
	uint8_t f[FIS_H2D_SIZE];
	unsigned i, nent;
	uint32_t is;

	/* write 16 sectors at LBA 100 from three buffers */
	for (i = 0; i < 8192; i++)
		b[i] = (uint8_t)(i * 7 + 1);
	h2d(f, ATA_WRITE_DMA_EXT, 100, 16, 0);
	set_cmd(e, 0, 1, f, 3, AHCI_CMDHDR_W, NULL);
	set_prd(e, 0, 1, 0, e->buf, 2048);
	set_prd(e, 0, 1, 1, e->buf + 2048, 4096);
	set_prd(e, 0, 1, 2, e->buf + 6144, 2048);
	pwr(e, 0, AHCI_P_CI, 2);
	is = wait_done(e, 0, 2);
	is_int(is & (AHCI_P_IX_DHRS | AHCI_P_IX_TFES), AHCI_P_IX_DHRS,
	       "WRITE DMA EXT done");
	is_int(prdbc(e, 0, 1), 8192, "WRITE DMA EXT: PRDBC");
	ok(dimg_file_is(e->fd, 100 * 512, b, 8192),
	   "WRITE DMA EXT: file matches");
	ok(dimg_file_is(e->fd, 99 * 512, (uint8_t[]){pat(99 * 512)}, 1) &&
		   dimg_file_is(e->fd, 116 * 512, (uint8_t[]){pat(116 * 512)},
				1),
	   "WRITE DMA EXT: neighbours untouched");

	/* read it back into two buffers */
	memset(b2, 0, 8192);
	h2d(f, ATA_READ_DMA_EXT, 100, 16, 0);
	set_cmd(e, 0, 2, f, 2, 0, NULL);
	set_prd(e, 0, 2, 0, e->buf2, 512);
	set_prd(e, 0, 2, 1, e->buf2 + 512, 7680);
	pwr(e, 0, AHCI_P_CI, 4);
	is = wait_done(e, 0, 4);
	is_int(is & AHCI_P_IX_TFES, 0, "READ DMA EXT done");
	ok(memcmp(b, b2, 8192) == 0, "READ DMA EXT returns what was written");

	/* 28-bit READ DMA of the disk's own pattern */
	is = ata(e, 0, 3, ATA_READ_DMA, 5, 2, 0, e->buf2, 1024, false);
	for (i = 0; i < 1024 && b2[i] == pat(5 * 512 + i); i++)
		;
	ok(!(is & AHCI_P_IX_TFES) && i == 1024, "READ DMA (28-bit)");

	/* 200 sectors through 171 buffers of 602 bytes: several block
	 * requests, sectors split across buffers */
	for (i = 0; i < 200 * 512; i++)
		b[i] = (uint8_t)(i * 3 + 5);
	nent = (200 * 512 + 601) / 602;
	h2d(f, ATA_WRITE_DMA_EXT, 1000, 200, 0);
	set_cmd(e, 0, 4, f, nent, AHCI_CMDHDR_W, NULL);
	for (i = 0; i < nent; i++)
		set_prd(e, 0, 4, i, e->buf + 602ull * i, 602);
	pwr(e, 0, AHCI_P_CI, 1u << 4);
	is = wait_done(e, 0, 1u << 4);
	is_int(is & AHCI_P_IX_TFES, 0, "fragmented write: %u buffers", nent);
	is_int(prdbc(e, 0, 4), 200 * 512, "fragmented write: PRDBC");
	ok(dimg_file_is(e->fd, 1000 * 512, b, 200 * 512),
	   "fragmented write: file matches");
	memset(b2, 0, 200 * 512);
	h2d(f, ATA_READ_DMA_EXT, 1000, 200, 0);
	set_cmd(e, 0, 5, f, nent, 0, NULL);
	for (i = 0; i < nent; i++)
		set_prd(e, 0, 5, i, e->buf2 + 602ull * i, 602);
	pwr(e, 0, AHCI_P_CI, 1u << 5);
	is = wait_done(e, 0, 1u << 5);
	ok(!(is & AHCI_P_IX_TFES) && memcmp(b, b2, 200 * 512) == 0,
	   "fragmented read matches");

	/* PIO READ SECTORS: PIO setup FIS too */
	is = ata(e, 0, 6, ATA_READ_SECTORS, 1000, 1, 0, e->buf2, 512, false);
	is_int(is & (AHCI_P_IX_PSS | AHCI_P_IX_TFES), AHCI_P_IX_PSS,
	       "READ SECTORS: PIO setup FIS");
	ok(memcmp(b, b2, 512) == 0, "READ SECTORS data");
}

static void t_ncq(struct env *e)
{
	uint8_t *b = ram(e, e->buf), *b2 = ram(e, e->buf2);
	uint8_t *fb = ram(e, e->pm[0].fb);
	uint8_t f[FIS_H2D_SIZE];
	unsigned s, i;
	uint32_t is, ci;

	for (i = 0; i < 8 * 4096; i++)
		b[i] = (uint8_t)(i * 11 + 2);
	for (s = 0; s < 8; s++) {
		/* 8 sectors each, at LBAs 3000 + 50*s, FUA on the odd ones */
		h2d(f, ATA_WRITE_FPDMA_QUEUED, 3000 + 50 * s, 0, 8);
		f[12] = (uint8_t)(s << 3);
		f[7] = (uint8_t)(0x40 | (s & 1 ? 0x80 : 0));
		set_cmd(e, 0, s, f, 1, AHCI_CMDHDR_W, NULL);
		set_prd(e, 0, s, 0, e->buf + 4096ull * s, 4096);
	}
	pwr(e, 0, AHCI_P_SACT, 0xff);
	pwr(e, 0, AHCI_P_CI, 0xff);
	ci = prd(e, 0, AHCI_P_CI);
	is = wait_done(e, 0, 0xff);
	is_int(ci & 0xff, 0, "NCQ: CI clears when the commands are queued");
	is_int(is & (AHCI_P_IX_SDBS | AHCI_P_IX_TFES), AHCI_P_IX_SDBS,
	       "NCQ writes: SDB FIS interrupt");
	is_int(prd(e, 0, AHCI_P_SACT), 0, "NCQ writes: SACT cleared");
	is_int(fb[AHCI_RFIS_SDBFIS], FIS_TYPE_SDB, "SDB FIS received");
	for (s = 0; s < 8; s++)
		if (!dimg_file_is(e->fd, (3000 + 50 * s) * 512ull,
				  b + 4096ull * s, 4096))
			break;
	is_int(s, 8, "NCQ writes: all 8 in the file");

	memset(b2, 0, 8 * 4096);
	for (s = 0; s < 8; s++) {
		h2d(f, ATA_READ_FPDMA_QUEUED, 3000 + 50 * s, 0, 8);
		f[12] = (uint8_t)(s << 3);
		set_cmd(e, 0, 8 + s, f, 1, 0, NULL);
		set_prd(e, 0, 8 + s, 0, e->buf2 + 4096ull * s, 4096);
	}
	pwr(e, 0, AHCI_P_SACT, 0xff00);
	pwr(e, 0, AHCI_P_CI, 0xff00);
	is = wait_done(e, 0, 0xff00);
	ok(!(is & AHCI_P_IX_TFES) && memcmp(b, b2, 8 * 4096) == 0,
	   "NCQ reads: 8 in flight, data matches");
}

static void t_flush_trim(struct env *e)
{
	uint8_t *b = ram(e, e->buf);
	uint32_t is;

	is = ata(e, 0, 0, ATA_FLUSH_CACHE_EXT, 0, 0, 0, 0, 0, false);
	is_int(is & (AHCI_P_IX_DHRS | AHCI_P_IX_TFES), AHCI_P_IX_DHRS,
	       "FLUSH CACHE EXT");
	is = ata(e, 0, 0, ATA_FLUSH_CACHE, 0, 0, 0, 0, 0, false);
	is_int(is & AHCI_P_IX_TFES, 0, "FLUSH CACHE");

	is = ata(e, 0, 1, ATA_IDENTIFY, 0, 0, 0, e->buf, 512, false);
	if (!(idw(e, ATA_ID_DSM) & 1)) {
		ok(idw(e, ATA_ID_DSM_BLOCKS) == 0,
		   "no TRIM on this file system: not offered");
	} else {
		is_int(idw(e, ATA_ID_DSM_BLOCKS), ATA_DSM_MAX_BLOCKS,
		       "word 105: DSM blocks");
		memset(b, 0, 512);
		put64(b, 2048 | (uint64_t)16 << 48);	/* 16 at 2048 */
		put64(b + 8, 4096 | (uint64_t)8 << 48); /* 8 at 4096 */
		put64(b + 16, 5000);			/* length 0: skipped */
		is = ata(e, 0, 2, ATA_DSM, 0, 1, 1, e->buf, 512, true);
		is_int(is & AHCI_P_IX_TFES, 0, "TRIM done");
		ok(file_zero(e->fd, 2048 * 512, 16 * 512) &&
			   file_zero(e->fd, 4096 * 512, 8 * 512),
		   "TRIM: the ranges read as zeros");
		ok(dimg_file_is(e->fd, 2064 * 512, (uint8_t[]){pat(2064 * 512)},
				1),
		   "TRIM: past the range untouched");
	}
	/* nodelete disk: TRIM not offered, DSM aborted */
	is = ata(e, 4, 0, ATA_IDENTIFY, 0, 0, 0, e->buf, 512, false);
	is_int(idw(e, ATA_ID_DSM), 0, "nodelete: no TRIM in word 169");
	ok((idw(e, ATA_ID_SECTOR_SIZE) & (1u << 12)) && idw(e, 117) == 2048 &&
		   idw(e, 118) == 0,
	   "4096-byte sectors: word 106 bit 12, words 117-118");
	is_int(idw(e, 100), DISK2_SIZE / 4096, "4096-byte sectors: capacity");
	memset(b, 0, 512);
	put64(b, 1 | (uint64_t)1 << 48);
	is = ata(e, 4, 1, ATA_DSM, 0, 1, 1, e->buf, 512, true);
	ok((is & AHCI_P_IX_TFES) && (prd(e, 4, AHCI_P_TFD) >> 8) & ATA_E_ABRT,
	   "nodelete: DSM aborted");
	ok(port_restart(e, 4), "port 4 restarted");
}

static void t_atapi(struct env *e)
{
	uint8_t *b = ram(e, e->buf), *fb = ram(e, e->pm[1].fb);
	uint8_t cdb[12], want[4096];
	uint32_t is;
	char s[48];

	is = ata(e, 1, 0, ATA_IDENTIFY_PACKET, 0, 0, 0, e->buf, 512, false);
	is_int(is & AHCI_P_IX_TFES, 0, "IDENTIFY PACKET DEVICE");
	is_int(idw(e, 0), 0x85c0, "word 0: ATAPI CD-ROM, removable");
	id_string(b, ATA_ID_MODEL, 20, s);
	is_str(s, "BHYVE SATA DVD ROM", "default CD model");
	id_string(b, ATA_ID_FW_REV, 4, s);
	is_str(s, "001", "default revision 001");
	id_string(b, ATA_ID_SERIAL, 10, s);
	ok(strncmp(s, "KHYVE-", 6) == 0 && strlen(s) == 20,
	   "default serial '%s'", s);

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_INQUIRY;
	cdb[4] = 96;
	memset(b, 0, 96);
	is = atapi(e, 1, cdb, e->buf, 96);
	is_int(is & AHCI_P_IX_TFES, 0, "INQUIRY");
	ok(b[0] == 0x05 && b[1] == 0x80 && memcmp(b + 8, "BHYVE   ", 8) == 0,
	   "INQUIRY: removable CD/DVD, vendor");
	is_int(prdbc(e, 1, 1), 36, "INQUIRY: 36 bytes");

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_READ_CAPACITY;
	is = atapi(e, 2, cdb, e->buf, 8);
	ok(!(is & AHCI_P_IX_TFES) && be32(b) == ISO_BLOCKS - 1 &&
		   be32(b + 4) == 2048,
	   "READ CAPACITY: %u blocks of 2048", be32(b) + 1);

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_READ_10;
	cdb[5] = 3;
	cdb[8] = 2;
	memset(b, 0, 4096);
	is = atapi(e, 3, cdb, e->buf, 4096);
	pread(e->isofd, want, sizeof(want), 3 * 2048);
	ok(!(is & AHCI_P_IX_TFES) && memcmp(b, want, 4096) == 0,
	   "READ(10) of blocks 3-4");
	is_int(prdbc(e, 1, 3), 4096, "READ(10): PRDBC");
	is_int(fb[AHCI_RFIS_RFIS + 2] & ATA_S_ERR, 0, "READ(10): good status");

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_TEST_UNIT_READY;
	is = atapi(e, 4, cdb, 0, 0);
	is_int(is & AHCI_P_IX_TFES, 0, "TEST UNIT READY");

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_MODE_SENSE_10;
	cdb[2] = 0x2a;
	cdb[8] = 64;
	is = atapi(e, 5, cdb, e->buf, 64);
	ok(!(is & AHCI_P_IX_TFES) && b[8] == 0x2a &&
		   (b[0] << 8 | b[1]) + 2 == 28,
	   "MODE SENSE(10) page 2Ah");

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_READ_TOC;
	cdb[8] = 64;
	is = atapi(e, 6, cdb, e->buf, 64);
	ok(!(is & AHCI_P_IX_TFES) && b[2] == 1 && b[3] == 1 && b[6] == 1 &&
		   b[14] == 0xaa && be32(b + 16) == ISO_BLOCKS,
	   "READ TOC: track 1 and the lead-out at %u", be32(b + 16));
	cdb[1] = 2; /* MSF */
	is = atapi(e, 7, cdb, e->buf, 64);
	ok(!(is & AHCI_P_IX_TFES) && b[9] == 0 && b[10] == 2 && b[11] == 0,
	   "READ TOC (MSF): track 1 at 00:02:00");

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_GET_CONFIGURATION;
	cdb[8] = 128;
	is = atapi(e, 8, cdb, e->buf, 128);
	ok(!(is & AHCI_P_IX_TFES) && (b[6] << 8 | b[7]) == MMC_PROFILE_CDROM,
	   "GET CONFIGURATION: current profile CD-ROM");

	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_GET_EVENT_STATUS;
	cdb[1] = 1;
	cdb[4] = 0x10;
	cdb[8] = 8;
	is = atapi(e, 9, cdb, e->buf, 8);
	ok(!(is & AHCI_P_IX_TFES) && b[2] == 4 && (b[5] & 2),
	   "GET EVENT STATUS: media present");

	/* errors: check condition, then REQUEST SENSE after a restart */
	cdb[1] = 0; /* asynchronous: not supported */
	is = atapi(e, 10, cdb, e->buf, 8);
	ok(is & AHCI_P_IX_TFES, "GET EVENT STATUS (async): check condition");
	ok(port_restart(e, 1), "port 1 restarted");
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0xee;
	is = atapi(e, 11, cdb, 0, 0);
	ok((is & AHCI_P_IX_TFES) &&
		   (prd(e, 1, AHCI_P_TFD) >> 12) == SENSE_ILLEGAL_REQUEST,
	   "unknown opcode: ILLEGAL REQUEST in the error register");
	is_int(prd(e, 1, AHCI_P_CI), 1u << 11,
	       "failed command keeps its CI bit");
	is_int((prd(e, 1, AHCI_P_CMD) & AHCI_P_CMD_CCS_MASK) >>
		       AHCI_P_CMD_CCS_SHIFT,
	       11, "CCS names the failed slot");
	ok(port_restart(e, 1), "port 1 restarted");
	is_int(prd(e, 1, AHCI_P_CI), 0, "restart clears CI");
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_REQUEST_SENSE;
	cdb[4] = 18;
	is = atapi(e, 12, cdb, e->buf, 18);
	ok(!(is & AHCI_P_IX_TFES) && b[0] == 0x70 &&
		   b[2] == SENSE_ILLEGAL_REQUEST && b[12] == ASC_INVALID_OPCODE,
	   "REQUEST SENSE: 5/20h");
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_READ_10;
	cdb[3] = 0x01; /* LBA 65536: beyond */
	cdb[8] = 1;
	is = atapi(e, 13, cdb, e->buf, 2048);
	ok(is & AHCI_P_IX_TFES, "READ(10) beyond the end fails");
	ok(port_restart(e, 1), "port 1 restarted");
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = SCSI_REQUEST_SENSE;
	cdb[4] = 18;
	is = atapi(e, 14, cdb, e->buf, 18);
	ok(!(is & AHCI_P_IX_TFES) && b[2] == SENSE_ILLEGAL_REQUEST &&
		   b[12] == ASC_LBA_OUT_OF_RANGE,
	   "REQUEST SENSE: LBA out of range");
	/* a disk command to the CD */
	is = ata(e, 1, 15, ATA_WRITE_DMA_EXT, 0, 1, 0, e->buf, 512, true);
	ok(is & AHCI_P_IX_TFES, "WRITE DMA EXT to the CD is aborted");
	ok(port_restart(e, 1), "port 1 restarted");
	ok(dimg_file_is(e->isofd, 0, (uint8_t[]){isopat(0)}, 1),
	   "the ISO is untouched");
}

/* Expect slot 'slot' of port 0 to fail with 'err' bits (and HBFS if
 * 'hbfs'), then restart the port. */
static void expect_fail(struct env *e, unsigned slot, uint32_t is, uint8_t err,
			bool hbfs, const char *what)
{
	uint32_t tfd = prd(e, 0, AHCI_P_TFD);

	ok((is & AHCI_P_IX_TFES) && (tfd & ATA_S_ERR) &&
		   ((tfd >> 8) & err) == err,
	   "%s: ERR, error 0x%x", what, tfd >> 8);
	if (hbfs)
		ok(is & AHCI_P_IX_HBFS, "%s: host bus fatal error", what);
	ok(prd(e, 0, AHCI_P_CI) & 1u << slot, "%s: CI bit kept", what);
	ok(port_restart(e, 0), "%s: port restarted", what);
}

static void t_hostile(struct env *e)
{
	uint8_t f[FIS_H2D_SIZE], *h;
	uint32_t is;

	is = ata(e, 0, 0, ATA_READ_DMA_EXT, 0, 1, 0, FAR_AWAY, 512, false);
	expect_fail(e, 0, is, ATA_E_ABRT, true, "PRD buffer outside RAM");

	/* halted port ignores further commands until the restart */
	is = ata(e, 0, 1, ATA_READ_DMA_EXT, 0, 1, 0, FAR_AWAY, 512, false);
	pwr(e, 0, AHCI_P_CI, 1u << 2);
	dimg_sleep_ms(20);
	is_int(prd(e, 0, AHCI_P_CI), 0x6, "halted port: new commands wait");
	ok(port_restart(e, 0), "port restarted");
	is = ata(e, 0, 2, ATA_READ_DMA_EXT, 0, 1, 0, e->buf, 512, false);
	is_int(is & AHCI_P_IX_TFES, 0, "after the restart commands run again");

	is = ata(e, 0, 3, ATA_READ_DMA_EXT, 0, 1, 0, 0, 0, false);
	expect_fail(e, 3, is, ATA_E_ABRT, false, "zero PRD entries");

	h2d(f, ATA_READ_DMA_EXT, 0, 1, 0);
	set_cmd(e, 0, 4, f, 1, 0, NULL);
	set_prd(e, 0, 4, 0, e->buf, 511);
	pwr(e, 0, AHCI_P_CI, 1u << 4);
	is = wait_done(e, 0, 1u << 4);
	expect_fail(e, 4, is, ATA_E_ABRT, false, "odd PRD byte count");

	is = ata(e, 0, 5, ATA_READ_DMA_EXT, 0, 4, 0, e->buf, 1024, false);
	expect_fail(e, 5, is, ATA_E_ABRT, false, "PRDT shorter than data");

	is = ata(e, 0, 6, ATA_READ_DMA_EXT, DISK_SIZE / 512 - 1, 2, 0, e->buf,
		 1024, false);
	expect_fail(e, 6, is, ATA_E_ABRT | ATA_E_IDNF, false,
		    "LBA beyond the disk");
	is = ata(e, 0, 6, ATA_READ_DMA_EXT, 0xffffffffffffull, 1, 0, e->buf,
		 512, false);
	expect_fail(e, 6, is, ATA_E_IDNF, false, "LBA 2^48-1");

	h2d(f, ATA_READ_DMA_EXT, 0, 1, 0);
	f[0] = FIS_TYPE_D2H;
	set_cmd(e, 0, 7, f, 1, 0, NULL);
	set_prd(e, 0, 7, 0, e->buf, 512);
	pwr(e, 0, AHCI_P_CI, 1u << 7);
	is = wait_done(e, 0, 1u << 7);
	expect_fail(e, 7, is, ATA_E_ABRT, false, "wrong FIS type");

	h2d(f, ATA_READ_DMA_EXT, 0, 1, 0);
	set_cmd(e, 0, 8, f, 1, 0, NULL);
	h = ram(e, e->pm[0].clb + 32 * 8);
	put32(h, 2 | 1u << 16); /* CFL 2 dwords */
	set_prd(e, 0, 8, 0, e->buf, 512);
	pwr(e, 0, AHCI_P_CI, 1u << 8);
	is = wait_done(e, 0, 1u << 8);
	expect_fail(e, 8, is, ATA_E_ABRT, false, "command FIS too short");

	h2d(f, ATA_READ_DMA_EXT, 0, 1, 0);
	set_cmd(e, 0, 9, f, 1, 0, NULL);
	put64(h = ram(e, e->pm[0].clb + 32 * 9) + 8, FAR_AWAY);
	pwr(e, 0, AHCI_P_CI, 1u << 9);
	is = wait_done(e, 0, 1u << 9);
	expect_fail(e, 9, is, ATA_E_ABRT, true, "command table outside RAM");

	/* a PRDT that runs off the end of RAM */
	h2d(f, ATA_READ_DMA_EXT, 0, 1, 0);
	set_cmd(e, 0, 10, f, 0xffff, 0, NULL);
	put64(ram(e, e->pm[0].clb + 32 * 10) + 8, VDRV_RAM - 0x400);
	pwr(e, 0, AHCI_P_CI, 1u << 10);
	is = wait_done(e, 0, 1u << 10);
	expect_fail(e, 10, is, ATA_E_ABRT, true, "PRDT outside RAM");

	is = ata(e, 0, 11, 0xb0 /* SMART */, 0, 0, 0xd0, e->buf, 512, false);
	expect_fail(e, 11, is, ATA_E_ABRT, false, "unsupported command");

	is = ata(e, 0, 12, ATA_READ_FPDMA_QUEUED, 0, 0, 1, e->buf, 512, false);
	expect_fail(e, 12, is, ATA_E_ABRT, false, "NCQ without SACT");

	is = ata(e, 0, 13, ATA_DSM, 0, 0, 1, e->buf, 512, true);
	expect_fail(e, 13, is, ATA_E_ABRT, false, "DSM with count 0");

	is = ata(e, 0, 13, ATA_DSM, 0, 9, 1, e->buf, 512, true);
	expect_fail(e, 13, is, ATA_E_ABRT, false, "DSM with 9 blocks");

	/* command list outside RAM */
	pwr(e, 0, AHCI_P_CMD, AHCI_P_CMD_FRE);
	pwr(e, 0, AHCI_P_CLBU, 0x1000);
	pwr(e, 0, AHCI_P_CMD, AHCI_P_CMD_FRE | AHCI_P_CMD_ST);
	pwr(e, 0, AHCI_P_CI, 1);
	is = wait_done(e, 0, 1);
	ok((is & AHCI_P_IX_HBFS) && (is & AHCI_P_IX_TFES),
	   "command list outside RAM: HBFS, TFES");
	pwr(e, 0, AHCI_P_CLBU, 0);
	ok(port_restart(e, 0), "port restarted");

	/* FIS area outside RAM: commands still complete */
	pwr(e, 0, AHCI_P_CMD, 0);
	pwr(e, 0, AHCI_P_FBU, 0x1000);
	pwr(e, 0, AHCI_P_CMD, AHCI_P_CMD_FRE | AHCI_P_CMD_ST);
	is = ata(e, 0, 0, ATA_READ_DMA_EXT, 0, 1, 0, e->buf, 512, false);
	ok(!(is & AHCI_P_IX_TFES) && prd(e, 0, AHCI_P_CI) == 0,
	   "FIS area outside RAM: the command completes");
	pwr(e, 0, AHCI_P_CMD, 0);
	pwr(e, 0, AHCI_P_FBU, 0);
	port_start(e, 0);

	/* CI and SACT while stopped are ignored */
	pwr(e, 0, AHCI_P_CMD, AHCI_P_CMD_FRE);
	pwr(e, 0, AHCI_P_CI, 1);
	pwr(e, 0, AHCI_P_SACT, 1);
	ok(prd(e, 0, AHCI_P_CI) == 0 && prd(e, 0, AHCI_P_SACT) == 0,
	   "CI/SACT writes while stopped are ignored");
	port_start(e, 0);

	/* odd register accesses */
	vdrv_mmio(&e->m, e->abar + AHCI_PORT(0) + AHCI_P_CMD, 1, true, 0);
	ok(prd(e, 0, AHCI_P_CMD) & AHCI_P_CMD_ST, "byte write ignored");
	is_int(vdrv_mmio(&e->m, e->abar + AHCI_VS + 2, 2, false, 0), 1,
	       "2-byte read of VS high half");
	is_int(vdrv_mmio(&e->m, e->abar + AHCI_VS + 3, 2, false, 0), 0,
	       "misaligned read returns 0");
	vdrv_mmio(&e->m, e->abar + AHCI_BAR_SIZE - 4, 4, true, 0xffffffff);
	is_int(vdrv_mmio(&e->m, e->abar + AHCI_CAP, 8, false, 0) >> 32,
	       AHCI_GHC_AE, "8-byte read: CAP and GHC");
	is = ata(e, 0, 0, ATA_READ_DMA_EXT, 0, 1, 0, e->buf, 512, false);
	is_int(is & AHCI_P_IX_TFES, 0, "port 0 still works");
}

static void t_ncq_error(struct env *e)
{
	uint8_t f[FIS_H2D_SIZE], *log = ram(e, e->buf2);
	uint32_t is;

	h2d(f, ATA_READ_FPDMA_QUEUED, DISK_SIZE / 512, 0, 1);
	f[12] = 5 << 3;
	set_cmd(e, 0, 5, f, 1, 0, NULL);
	set_prd(e, 0, 5, 0, e->buf, 512);
	pwr(e, 0, AHCI_P_SACT, 1u << 5);
	pwr(e, 0, AHCI_P_CI, 1u << 5);
	is = wait_done(e, 0, 1u << 5);
	ok((is & AHCI_P_IX_TFES) && (is & AHCI_P_IX_SDBS),
	   "NCQ read beyond the disk: SDB FIS with an error");
	is_int(prd(e, 0, AHCI_P_SACT), 1u << 5, "failed tag keeps SACT");
	ok(port_restart(e, 0), "port restarted");
	is_int(prd(e, 0, AHCI_P_SACT), 0, "restart clears SACT");
	is = ata(e, 0, 0, ATA_READ_LOG_EXT, ATA_LOG_NCQ_ERROR, 1, 0, e->buf2,
		 512, false);
	ok(!(is & AHCI_P_IX_TFES) && log[0] == 5 && (log[2] & ATA_S_ERR) &&
		   (log[3] & ATA_E_IDNF),
	   "NCQ error log: tag 5, status and error");
	is = ata(e, 0, 0, ATA_READ_LOG_EXT, ATA_LOG_NCQ_ERROR, 1, 0, e->buf2,
		 512, false);
	ok(!(is & AHCI_P_IX_TFES) && (log[0] & 0x80),
	   "NCQ error log read again: NQ");
	is = ata(e, 0, 0, ATA_READ_LOG_EXT, ATA_LOG_DIRECTORY, 1, 0, e->buf2,
		 512, false);
	ok(!(is & AHCI_P_IX_TFES) && get16(log) == 1 &&
		   get16(log + 2 * ATA_LOG_NCQ_ERROR) == 1,
	   "log directory lists page 10h");
	is = ata(e, 0, 0, ATA_READ_LOG_EXT, 0x30, 1, 0, e->buf2, 512, false);
	ok(is & AHCI_P_IX_TFES, "unknown log aborted");
	ok(port_restart(e, 0), "port restarted");
}

static void t_resets(struct env *e)
{
	uint8_t *fb = ram(e, e->pm[1].fb), f[FIS_H2D_SIZE];
	uint32_t is;
	unsigned s;

	/* soft reset: SRST set, then cleared */
	h2d(f, 0, 0, 0, 0);
	f[1] = 0;
	f[15] = ATA_CTL_SRST;
	set_cmd(e, 1, 0, f, 0, AHCI_CMDHDR_R | AHCI_CMDHDR_C, NULL);
	pwr(e, 1, AHCI_P_CI, 1);
	is = wait_done(e, 1, 1);
	f[15] = 0;
	set_cmd(e, 1, 1, f, 0, 0, NULL);
	memset(fb, 0, AHCI_RFIS_SIZE);
	pwr(e, 1, AHCI_P_CI, 2);
	is = wait_done(e, 1, 2);
	ok(is != 0xffffffff && prd(e, 1, AHCI_P_CI) == 0,
	   "soft reset completes");
	ok(fb[AHCI_RFIS_RFIS] == FIS_TYPE_D2H &&
		   fb[AHCI_RFIS_RFIS + 5] == 0x14 &&
		   fb[AHCI_RFIS_RFIS + 6] == 0xeb,
	   "soft reset: ATAPI signature FIS");

	/* COMRESET through SCTL */
	pwr(e, 0, AHCI_P_CMD, AHCI_P_CMD_FRE);
	pwr(e, 0, AHCI_P_SCTL, 0x301);
	is_int(prd(e, 0, AHCI_P_SSTS) & 0xf, 0, "COMRESET: link down");
	memset(ram(e, e->pm[0].fb), 0, AHCI_RFIS_SIZE);
	pwr(e, 0, AHCI_P_SCTL, 0x300);
	is_int(prd(e, 0, AHCI_P_SSTS), 0x133, "COMRESET released: link up");
	is_int(ram(e, e->pm[0].fb)[AHCI_RFIS_RFIS], FIS_TYPE_D2H,
	       "COMRESET: signature FIS");
	pwr(e, 0, AHCI_P_SCTL, 0x311); /* COMRESET, Gen1 at most */
	pwr(e, 0, AHCI_P_SCTL, 0x310);
	is_int(prd(e, 0, AHCI_P_SSTS), 0x113, "SCTL.SPD limits the speed");
	pwr(e, 0, AHCI_P_SCTL, 0x301);
	pwr(e, 0, AHCI_P_SCTL, 0x300);
	port_start(e, 0);

	/* HBA reset with NCQ writes in flight */
	for (s = 0; s < 16; s++) {
		h2d(f, ATA_WRITE_FPDMA_QUEUED, 6000 + 64 * s, 0, 64);
		f[12] = (uint8_t)(s << 3);
		set_cmd(e, 0, s, f, 1, AHCI_CMDHDR_W, NULL);
		set_prd(e, 0, s, 0, e->buf, 32768);
	}
	pwr(e, 0, AHCI_P_SACT, 0xffff);
	pwr(e, 0, AHCI_P_CI, 0xffff);
	wr(e, AHCI_GHC, AHCI_GHC_HR);
	ok(rd(e, AHCI_GHC) == AHCI_GHC_AE && prd(e, 0, AHCI_P_SACT) == 0 &&
		   prd(e, 0, AHCI_P_CI) == 0 &&
		   !(prd(e, 0, AHCI_P_CMD) & AHCI_P_CMD_CR),
	   "HBA reset with I/O in flight: idle and reset");
	is_int(prd(e, 0, AHCI_P_SIG), AHCI_SIG_ATA, "signature after reset");
	for (s = 0; s < NPORTS; s++)
		port_start(e, s);
	is = ata(e, 0, 0, ATA_READ_DMA_EXT, 0, 1, 0, e->buf, 512, false);
	is_int(is & AHCI_P_IX_TFES, 0, "commands run after the HBA reset");
}

/*
 * Wait for 'bits' in port 0's PxIS.  The irq sink's counters are written
 * by a block worker under the port lock, which this read also takes, so
 * they are safe to read afterwards.
 */
static bool wait_is(struct env *e, uint32_t bits)
{
	unsigned t;

	for (t = 0; t < TIMEOUT_MS; t++) {
		if ((prd(e, 0, AHCI_P_IS) & bits) == bits)
			return true;
		dimg_sleep_ms(1);
	}
	return false;
}

static void t_irq(struct env *e)
{
	struct vdrv_machine *m = &e->m;
	unsigned c, msi = 0, before;
	uint32_t is;

	pwr(e, 0, AHCI_P_IE,
	    AHCI_P_IX_DHRS | AHCI_P_IX_SDBS | AHCI_P_IX_TFES | AHCI_P_IX_PSS);
	wr(e, AHCI_GHC, AHCI_GHC_AE);
	is = ata(e, 0, 0, ATA_FLUSH_CACHE, 0, 0, 0, 0, 0, false);
	is_int(m->level[e->gsi], 0, "GHC.IE clear: no interrupt");
	ok(is & AHCI_P_IX_DHRS, "GHC.IE clear: PxIS still set");
	is_int(rd(e, AHCI_IS), 1, "HBA IS: port 0");
	wr(e, AHCI_IS, 1);
	is_int(rd(e, AHCI_IS), 0, "HBA IS cleared");

	wr(e, AHCI_GHC, AHCI_GHC_AE | AHCI_GHC_IE);
	pwr(e, 0, AHCI_P_CI, 1);
	wait_is(e, AHCI_P_IX_DHRS);
	is_int(m->level[e->gsi], 1, "INTx asserted");
	is_int(rd(e, AHCI_IS), 1, "HBA IS: port 0");
	wr(e, AHCI_IS, 1);
	is_int(m->level[e->gsi], 1,
	       "HBA IS cleared while PxIS pending: asserted again");
	pwr(e, 0, AHCI_P_IS, 0xffffffff);
	wr(e, AHCI_IS, 1);
	is_int(m->level[e->gsi], 0, "INTx deasserted once acknowledged");

	/* MSI */
	for (c = pci_cfg_read(m->root, 0, SLOT, 0, PCIR_CAP_PTR, 1); c;
	     c = pci_cfg_read(m->root, 0, SLOT, 0, c + 1, 1))
		if (pci_cfg_read(m->root, 0, SLOT, 0, c, 1) == PCIY_MSI)
			msi = c;
	pci_cfg_write(m->root, 0, SLOT, 0, msi + 4, 4, 0xfee00000);
	pci_cfg_write(m->root, 0, SLOT, 0, msi + 8, 4, 0);
	pci_cfg_write(m->root, 0, SLOT, 0, msi + 12, 2, 0x4041);
	pci_cfg_write(m->root, 0, SLOT, 0, msi + 2, 2, 1);
	before = m->msi_count;
	pwr(e, 0, AHCI_P_CI, 1);
	wait_is(e, AHCI_P_IX_DHRS);
	is_int(m->msi_count, before + 1, "MSI sent");
	ok(m->msi_addr == 0xfee00000 && m->msi_data == 0x4041,
	   "MSI address and data");
	is_int(m->level[e->gsi], 0, "no INTx with MSI");
	wr(e, AHCI_IS, 1); /* PxIS still pending: a new message */
	is_int(m->msi_count, before + 2, "IS cleared with PxIS pending: MSI");
	pwr(e, 0, AHCI_P_IS, 0xffffffff);
	wr(e, AHCI_IS, 1);
	is_int(m->msi_count, before + 2, "acknowledged: no more messages");
	/* NCQ completions interrupt too */
	{
		uint8_t f[FIS_H2D_SIZE];

		h2d(f, ATA_READ_FPDMA_QUEUED, 0, 0, 1);
		set_cmd(e, 0, 0, f, 1, 0, NULL);
		set_prd(e, 0, 0, 0, e->buf, 512);
		before = m->msi_count;
		pwr(e, 0, AHCI_P_SACT, 1);
		pwr(e, 0, AHCI_P_CI, 1);
		ok(wait_is(e, AHCI_P_IX_SDBS) && m->msi_count == before + 1,
		   "NCQ completion: SDBS and MSI");
	}
	pwr(e, 0, AHCI_P_IS, 0xffffffff);
	wr(e, AHCI_IS, 0xffffffff);
	pci_cfg_write(m->root, 0, SLOT, 0, msi + 2, 2, 0);
	wr(e, AHCI_GHC, AHCI_GHC_AE);
}

/* ---- configuration ---- */

/* Parse "-s <arg>" into a fresh tree; returns the tree or NULL. */
static struct cfg_node *parse_s(const char *arg, int *rc)
{
	char a0[] = "khyve", a1[] = "-s", a3[] = "vm";
	char *a2 = strdup(arg);
	char *argv[] = {a0, a1, a2, a3, NULL};
	struct cfg_node *root = cfg_new();

	flags_set_defaults(root);
	*rc = flags_parse(root, 4, argv);
	free(a2);
	return root;
}

static void t_legacy(void)
{
	struct cfg_node *r;
	char big[4096];
	unsigned i;
	int rc;

	r = parse_s("3,ahci,hd:/a.img,nmrr=7200,ser=ABC,cd:/b.iso,ro", &rc);
	is_int(rc, 0, "ahci,hd:...,cd:... parses");
	is_str(cfg_get(r, "pci.0.3.0.device"), "ahci", "device=ahci");
	is_str(cfg_get(r, "pci.0.3.0.port.0.type"), "hd", "port 0: hd");
	is_str(cfg_get(r, "pci.0.3.0.port.0.path"), "/a.img", "port 0 path");
	is_str(cfg_get(r, "pci.0.3.0.port.0.nmrr"), "7200", "port 0 nmrr");
	is_str(cfg_get(r, "pci.0.3.0.port.0.ser"), "ABC", "port 0 ser");
	is_str(cfg_get(r, "pci.0.3.0.port.1.type"), "cd", "port 1: cd");
	is_str(cfg_get(r, "pci.0.3.0.port.1.path"), "/b.iso", "port 1 path");
	is_str(cfg_get(r, "pci.0.3.0.port.1.ro"), "true", "port 1 ro");
	is_int(config_check_all(r), 0, "the tree passes the key check");
	cfg_free(r);

	r = parse_s("2:0,ahci,hd:/tmp/f1.img,bootindex=2,hd:/tmp/f2.img,"
		    "bootindex=1",
		    &rc);
	ok(rc == 0 && config_check_all(r) == 0 &&
		   strcmp(cfg_get(r, "pci.0.2.0.port.1.bootindex"), "1") == 0,
	   "libvirt's per-port bootindex");
	cfg_free(r);

	r = parse_s("3,ahci,/plain.img,model=My Disk", &rc);
	ok(rc == 0 && strcmp(cfg_get(r, "pci.0.3.0.port.0.type"), "hd") == 0 &&
		   strcmp(cfg_get(r, "pci.0.3.0.port.0.model"), "My Disk") == 0,
	   "no prefix: a disk");
	cfg_free(r);

	r = parse_s("3,ahci-hd,/img,ro,sectorsize=4096", &rc);
	ok(rc == 0 && strcmp(cfg_get(r, "pci.0.3.0.device"), "ahci") == 0 &&
		   strcmp(cfg_get(r, "pci.0.3.0.port.0.type"), "hd") == 0 &&
		   strcmp(cfg_get(r, "pci.0.3.0.port.0.path"), "/img") == 0 &&
		   strcmp(cfg_get(r, "pci.0.3.0.port.0.ro"), "true") == 0 &&
		   config_check_all(r) == 0,
	   "ahci-hd alias");
	cfg_free(r);

	r = parse_s("4,ahci-cd,/x.iso", &rc);
	ok(rc == 0 && strcmp(cfg_get(r, "pci.0.4.0.device"), "ahci") == 0 &&
		   strcmp(cfg_get(r, "pci.0.4.0.port.0.type"), "cd") == 0 &&
		   config_check_all(r) == 0,
	   "ahci-cd alias");
	cfg_free(r);

	r = parse_s("3,ahci,hd:/a,bogus=1", &rc);
	ok(rc == 0 && config_check_all(r) != 0, "unknown port key refused");
	cfg_free(r);
	r = parse_s("3,ahci,hd:/a,nmrr=fast", &rc);
	ok(rc == 0 && config_check_all(r) != 0, "nmrr must be a number");
	cfg_free(r);
	r = parse_s("3,ahci,hd:", &rc);
	ok(rc != 0, "empty path refused");
	cfg_free(r);
	r = parse_s("3,ahci,hd:/a,ser", &rc);
	ok(rc != 0, "bare ser refused");
	cfg_free(r);
	r = parse_s("3,ahci-hd", &rc);
	ok(rc != 0, "ahci-hd without a path refused");
	cfg_free(r);

	strcpy(big, "3,ahci");
	for (i = 0; i < 32; i++)
		snprintf(big + strlen(big), sizeof(big) - strlen(big),
			 ",hd:/d%u", i);
	r = parse_s(big, &rc);
	ok(rc == 0 && cfg_get(r, "pci.0.3.0.port.31.path"), "32 ports");
	cfg_free(r);
	strcat(big, ",cd:/x");
	r = parse_s(big, &rc);
	ok(rc != 0, "33 ports refused");
	cfg_free(r);
}

/* A machine whose port 0 has one bad setting: init must refuse it. */
static void bad_init(const char *key, const char *val, const char *what)
{
	struct vdrv_machine m;
	char disk[128];
	const char *kv[] = {"pci.0.3.0.device",
			    "ahci",
			    "pci.0.3.0.port.0.path",
			    disk,
			    key,
			    val,
			    NULL};
	int rc;

	snprintf(disk, sizeof(disk), "%s/disk.img", tmpdir);
	rc = vdrv_machine_new(&m, kv);
	ok(rc != 0, "init refuses %s", what);
	vdrv_machine_free(&m);
}

static void t_init_errors(void)
{
	struct vdrv_machine m;
	const char *kv[] = {"pci.0.3.0.device", "ahci", NULL};

	bad_init("pci.0.3.0.port.0.type", "tape", "type=tape");
	bad_init("pci.0.3.0.port.0.ser", "123456789012345678901",
		 "a 21-character serial");
	bad_init("pci.0.3.0.port.0.rev", "123456789", "a 9-character rev");
	bad_init("pci.0.3.0.port.0.model",
		 "12345678901234567890123456789012345678901",
		 "a 41-character model");
	bad_init("pci.0.3.0.port.0.ser", "bad\tser", "a control character");
	bad_init("pci.0.3.0.port.0.nmrr", "70000", "nmrr=70000");
	bad_init("pci.0.3.0.port.32.path", "/x", "port 32");
	bad_init("pci.0.3.0.port.x.path", "/x", "port x");
	bad_init("pci.0.3.0.port.01.path", "/x", "port 01");
	bad_init("pci.0.3.0.port.1", "/x", "a port that is a value");
	bad_init("pci.0.3.0.port.1.type", "hd", "a port without a path");
	bad_init("pci.0.3.0.port.1.path", "/nonexistent/khyve.img",
		 "a missing image");

	ok(vdrv_machine_new(&m, kv) == 0 &&
		   pci_cfg_read(m.root, 0, 3, 0, PCIR_VENDOR, 2) ==
			   AHCI_PCI_VENDOR,
	   "a controller without ports");
	vdrv_machine_free(&m);
}

int main(void)
{
	char path[160];
	struct env e;

	plan_no_plan();
	dimg_tmpdir(tmpdir, sizeof(tmpdir), "t_ahci");
	snprintf(path, sizeof(path), "%s/disk.img", tmpdir);
	if (dimg_make(path, DISK_SIZE, pat))
		skip_all("cannot create the disk image");
	snprintf(path, sizeof(path), "%s/cd.iso", tmpdir);
	if (dimg_make(path, ISO_BLOCKS * 2048ull, isopat))
		skip_all("cannot create the ISO");
	snprintf(path, sizeof(path), "%s/disk2.img", tmpdir);
	if (dimg_make(path, DISK2_SIZE, NULL))
		skip_all("cannot create the second disk");

	if (env_new(&e, NULL) == 0) {
		t_pci(&e);
		t_hba(&e);
		t_identify(&e);
		t_rw(&e);
		t_ncq(&e);
		t_flush_trim(&e);
		t_atapi(&e);
		t_hostile(&e);
		t_ncq_error(&e);
		t_resets(&e);
		t_irq(&e);
		env_free(&e);
	} else {
		ok(0, "machine with an AHCI controller");
	}
	t_legacy();
	t_init_errors();

	snprintf(path, sizeof(path), "%s/disk.img", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/cd.iso", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/disk2.img", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	return done_testing();
}
