/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vahci: drives the first SATA disk of the first AHCI controller (class
 * 01/06/01) with the library's AHCI driver, polled, in ring 0.  The disk
 * is prepared by the test script with the pattern of blkpat.c, tag "disk"
 * and word "abcdefghijkl" (awk: printf "disk %010d %02d abcdefghijkl\n").
 * The guest:
 *   - IDENTIFY DEVICE: serial and model against "ser=" and "model=" if
 *     given, the capacity against "sectors=" if given;
 *   - READ DMA EXT of sectors 0-7, of the last 8 sectors, and of sectors
 *     1000-1007 through three PRDT entries out of order in memory;
 *   - WRITE DMA EXT of sectors 64-95 and of the last sector with tag
 *     "wrtn", word "written-data"; reads them back; FLUSH CACHE EXT;
 *   - NCQ (if the HBA and the disk have it): 8 READ FPDMA QUEUED in
 *     slots 0-7 issued at once, then one WRITE FPDMA QUEUED of sectors
 *     96-103 read back with NCQ;
 *   - reads and writes at and across the capacity, a reserved command,
 *     and an NCQ read beyond the end: each must fail with a task-file
 *     error, and the port must work afterwards;
 *   - a final FLUSH CACHE EXT, as an OS does before it shuts down.
 * The test script then compares the host file with what was written.
 * BSP only, ring 0.
 */
#include "guest.h"

const char guest_name[] = "vahci";

#define WRITE_AT 64
#define WRITE_N 32
#define NCQ_WRITE_AT 96
#define NCQ_WRITE_N 8
#define CHAIN_AT 1000
#define NCQ_AT 2000
#define NCQ_N 8
#define MIN_SECTORS 4096
#define BUF_BYTES (64 * 1024)

static const char tag0[] = "disk", word0[] = "abcdefghijkl";
static const char tag1[] = "wrtn", word1[] = "written-data";

static struct ahci_hba hba;
static struct ahci_port *port;
static uint8_t *buf;

static void check(const uint8_t *p, uint64_t first, unsigned int n, int tag,
		  const char *what)
{
	uint64_t bad;
	unsigned int off;

	if (blkpat_check(p, first, n, tag ? tag1 : tag0, tag ? word1 : word0,
			 &bad, &off))
		guest_fail("%s: sector %lu differs at byte %u (0x%02x)", what,
			   bad, off, p[(bad - first) * AHCI_SECTOR + off]);
	printf("vahci: %s: sectors %lu-%lu OK\n", what, first, first + n - 1);
}

static void rw(bool write, uint64_t lba, uint32_t n, void *p, const char *what)
{
	int rc = ahci_rw(port, write, lba, n, p);

	if (rc)
		guest_fail("%s: %s of %u sectors at %lu: error %d (PxTFD 0x%x "
			   "PxIS 0x%x)",
			   what, write ? "write" : "read", n, lba, rc,
			   port->err_tfd, port->err_is);
}

static void setup(void)
{
	char want[48];
	uint64_t sectors;
	int rc;

	if (ahci_find(0, &hba))
		guest_fail("no AHCI controller (class 01/06/01) on bus 0");
	if ((rc = ahci_init(&hba, true)))
		guest_fail("AHCI set-up: %d", rc);
	port = ahci_port_of_type(&hba, AHCI_DEV_ATA, 0);
	if (!port)
		guest_fail("no SATA disk on any port");
	if ((rc = ahci_identify(port)))
		guest_fail("IDENTIFY DEVICE: error %d (PxTFD 0x%x)", rc,
			   port->err_tfd);
	printf("vahci: port %u: IDENTIFY: model \"%s\" serial \"%s\" "
	       "firmware \"%s\", %lu sectors%s, NCQ %s (depth %u)\n",
	       port->num, port->model, port->serial, port->fwrev, port->sectors,
	       port->lba48 ? ", LBA48" : "", port->ncq ? "yes" : "no",
	       port->ncq_depth);
	rc = cmdline_get("ser", want, sizeof(want));
	if (rc >= 0) {
		if (strcmp(want, port->serial))
			guest_fail("serial \"%s\", expected ser=%s",
				   port->serial, want);
		printf("vahci: IDENTIFY serial matches ser=%s\n", want);
	}
	rc = cmdline_get("model", want, sizeof(want));
	if (rc >= 0) {
		if (strcmp(want, port->model))
			guest_fail("model \"%s\", expected model=%s",
				   port->model, want);
		printf("vahci: IDENTIFY model matches model=%s\n", want);
	}
	if (cmdline_get_u64("sectors", &sectors) == 0) {
		if (sectors != port->sectors)
			guest_fail("capacity %lu sectors, expected %lu",
				   port->sectors, sectors);
		printf("vahci: capacity matches sectors=%lu\n", sectors);
	}
	if (port->sectors < MIN_SECTORS)
		guest_fail("the disk needs at least %u sectors", MIN_SECTORS);
}

static void test_reads(void)
{
	struct ahci_seg seg[3];
	struct ahci_cmd c;
	int rc;

	rw(false, 0, 8, buf, "read");
	check(buf, 0, 8, 0, "read");
	rw(false, port->sectors - 8, 8, buf, "read at the end");
	check(buf, port->sectors - 8, 8, 0, "read at the end");
	/* one command, three PRDT entries of 512, 1024 and 2560 bytes,
	 * placed out of order in memory */
	mem_clear(buf, 8 * AHCI_SECTOR);
	seg[0] = (struct ahci_seg){virt_to_phys(buf + 7 * AHCI_SECTOR),
				   AHCI_SECTOR};
	seg[1] = (struct ahci_seg){virt_to_phys(buf), 2 * AHCI_SECTOR};
	seg[2] = (struct ahci_seg){virt_to_phys(buf + 2 * AHCI_SECTOR),
				   5 * AHCI_SECTOR};
	ahci_rw_cmd(&c, false, CHAIN_AT, 8);
	if ((rc = ahci_exec(port, &c, seg, 3)))
		guest_fail("3-entry PRDT read: error %d (PxTFD 0x%x)", rc,
			   port->err_tfd);
	if (ahci_cmd_prdbc(port, 0) != 8 * AHCI_SECTOR)
		guest_fail("3-entry PRDT read: PRDBC %u, expected %u",
			   ahci_cmd_prdbc(port, 0), 8 * AHCI_SECTOR);
	check(buf + 7 * AHCI_SECTOR, CHAIN_AT, 1, 0, "3-entry PRDT (1/3)");
	check(buf, CHAIN_AT + 1, 7, 0, "3-entry PRDT (2,3/3)");
}

static void test_writes(void)
{
	uint64_t last = port->sectors - 1;
	unsigned int i;
	int rc;

	for (i = 0; i < WRITE_N; i++)
		blkpat_fill(buf + i * AHCI_SECTOR, WRITE_AT + i, tag1, word1);
	rw(true, WRITE_AT, WRITE_N, buf, "write");
	blkpat_fill(buf + WRITE_N * AHCI_SECTOR, last, tag1, word1);
	rw(true, last, 1, buf + WRITE_N * AHCI_SECTOR,
	   "write of the last sector");
	mem_clear(buf, (WRITE_N + 1) * AHCI_SECTOR);
	rw(false, WRITE_AT, WRITE_N, buf, "read back");
	check(buf, WRITE_AT, WRITE_N, 1, "write + read back");
	rw(false, last, 1, buf, "read back");
	check(buf, last, 1, 1, "write + read back");
	if ((rc = ahci_flush(port)))
		guest_fail("FLUSH CACHE EXT: error %d (PxTFD 0x%x)", rc,
			   port->err_tfd);
	printf("vahci: FLUSH CACHE EXT OK\n");
}

/* Queue n NCQ commands (slot i: cmds[i]) at once and wait for all. */
static int ncq_run(const struct ahci_cmd *cmds, const struct ahci_seg *segs,
		   unsigned int n)
{
	uint32_t mask = 0;
	unsigned int i;
	int rc;

	for (i = 0; i < n; i++) {
		if ((rc = ahci_cmd_build(port, i, &cmds[i], &segs[i], 1)))
			return rc;
		mask |= 1u << i;
	}
	ahci_cmd_issue(port, mask, true);
	return ahci_cmd_wait(port, mask, true, AHCI_TIMEOUT_S);
}

static void test_ncq(void)
{
	struct ahci_cmd cmds[NCQ_N];
	struct ahci_seg segs[NCQ_N];
	unsigned int i, n = NCQ_N;
	char what[48];
	int rc;

	if (!port->ncq) {
		printf("vahci: NCQ not supported (CAP 0x%x, IDENTIFY word 76 "
		       "0x%x), skipped\n",
		       hba.cap, port->ident[76]);
		return;
	}
	if (n > port->ncq_depth)
		n = port->ncq_depth;
	if (n > hba.nslots)
		n = hba.nslots;
	mem_clear(buf, n * 4096);
	/* slot i reads sectors NCQ_AT + 16 * (n - 1 - i), 8 of them */
	for (i = 0; i < n; i++) {
		ahci_ncq_cmd(&cmds[i], false, NCQ_AT + 16 * (n - 1 - i), 8, i);
		segs[i] = (struct ahci_seg){virt_to_phys(buf + 4096 * i),
					    8 * AHCI_SECTOR};
	}
	if ((rc = ncq_run(cmds, segs, n)))
		guest_fail("%u queued reads: error %d (PxTFD 0x%x PxIS 0x%x "
			   "PxSERR 0x%x)",
			   n, rc, port->err_tfd, port->err_is, port->err_serr);
	for (i = 0; i < n; i++) {
		snprintf(what, sizeof(what), "NCQ read, slot %u", i);
		check(buf + 4096 * i, NCQ_AT + 16 * (n - 1 - i), 8, 0, what);
	}
	printf("vahci: NCQ: %u queued reads OK\n", n);

	for (i = 0; i < NCQ_WRITE_N; i++)
		blkpat_fill(buf + i * AHCI_SECTOR, NCQ_WRITE_AT + i, tag1,
			    word1);
	ahci_ncq_cmd(&cmds[0], true, NCQ_WRITE_AT, NCQ_WRITE_N, 0);
	segs[0] =
		(struct ahci_seg){virt_to_phys(buf), NCQ_WRITE_N * AHCI_SECTOR};
	if ((rc = ncq_run(cmds, segs, 1)))
		guest_fail("queued write: error %d (PxTFD 0x%x)", rc,
			   port->err_tfd);
	mem_clear(buf, NCQ_WRITE_N * AHCI_SECTOR);
	ahci_ncq_cmd(&cmds[0], false, NCQ_WRITE_AT, NCQ_WRITE_N, 0);
	if ((rc = ncq_run(cmds, segs, 1)))
		guest_fail("queued read back: error %d (PxTFD 0x%x)", rc,
			   port->err_tfd);
	check(buf, NCQ_WRITE_AT, NCQ_WRITE_N, 1, "NCQ write + read back");
}

/* Expect cmd to fail with a task-file error. */
static void expect_error(const struct ahci_cmd *c, const struct ahci_seg *seg,
			 const char *what)
{
	int rc = ahci_exec(port, c, seg, seg ? 1 : 0);

	if (rc == 0)
		guest_fail("%s succeeded", what);
	if (rc != -GUEST_EIO)
		guest_fail("%s: error %d, expected a task-file error", what,
			   rc);
	if (!(port->err_tfd & 1) && !(port->err_is & (1u << 30)))
		guest_fail("%s: error without PxTFD.ERR or PxIS.TFES (PxTFD "
			   "0x%x PxIS 0x%x)",
			   what, port->err_tfd, port->err_is);
	printf("vahci: %s: error (PxTFD 0x%04x PxIS 0x%08x)\n", what,
	       port->err_tfd, port->err_is);
}

static void test_errors(void)
{
	struct ahci_seg seg = {virt_to_phys(buf), 2 * AHCI_SECTOR};
	uint64_t cap = port->sectors;
	struct ahci_cmd c;
	int rc;

	ahci_rw_cmd(&c, false, cap, 1);
	expect_error(&c, &seg, "read at the capacity");
	ahci_rw_cmd(&c, false, cap - 1, 2);
	expect_error(&c, &seg, "read across the capacity");
	ahci_rw_cmd(&c, false, 0xffffffffffffull, 1);
	expect_error(&c, &seg, "read at LBA 2^48-1");
	blkpat_fill(buf, cap, tag1, word1);
	blkpat_fill(buf + AHCI_SECTOR, cap + 1, tag1, word1);
	ahci_rw_cmd(&c, true, cap, 1);
	expect_error(&c, &seg, "write at the capacity");
	ahci_rw_cmd(&c, true, cap - 1, 2);
	expect_error(&c, &seg, "write across the capacity");
	printf("vahci: reads and writes beyond the capacity: errors\n");
	mem_clear(&c, sizeof(c));
	c.command = 0x77; /* reserved in ATA8-ACS */
	c.device = 0x40;
	expect_error(&c, NULL, "reserved command 0x77");
	if (port->ncq) {
		ahci_ncq_cmd(&c, false, cap, 1, 0);
		rc = ahci_cmd_build(port, 0, &c, &seg, 1);
		if (rc)
			guest_fail("NCQ build: %d", rc);
		ahci_cmd_issue(port, 1, true);
		rc = ahci_cmd_wait(port, 1, true, AHCI_TIMEOUT_S);
		if (rc != -GUEST_EIO)
			guest_fail("NCQ read at the capacity: %d, expected a "
				   "task-file error",
				   rc);
		printf("vahci: NCQ read at the capacity: error (PxTFD 0x%04x "
		       "PxIS 0x%08x)\n",
		       port->err_tfd, port->err_is);
	}
	/* the port must still work */
	rw(false, 0, 1, buf, "read after the errors");
	check(buf, 0, 1, 0, "read after the errors");
	if (port->ncq) {
		ahci_ncq_cmd(&c, false, 1, 1, 3);
		seg.len = AHCI_SECTOR;
		rc = ahci_cmd_build(port, 3, &c, &seg, 1);
		if (!rc) {
			ahci_cmd_issue(port, 1u << 3, true);
			rc = ahci_cmd_wait(port, 1u << 3, true, AHCI_TIMEOUT_S);
		}
		if (rc)
			guest_fail("NCQ read after the errors: %d", rc);
		check(buf, 1, 1, 0, "NCQ read after the errors");
	}
	printf("vahci: the port works after %u errors\n", port->errors);
}

void guest_main(void)
{
	buf = dma_zalloc(BUF_BYTES, 4096);
	if (!buf)
		guest_fail("out of memory");
	setup();
	test_reads();
	test_writes();
	test_ncq();
	test_errors();
	/* what an OS does before it shuts down: the script reads the file */
	if (ahci_flush(port))
		guest_fail("final FLUSH CACHE EXT: PxTFD 0x%x", port->err_tfd);
	printf("vahci: final FLUSH CACHE EXT OK\n");
	guest_pass();
}
