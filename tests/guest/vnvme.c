/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vnvme: drives the first NVMe controller (class 01/08/02) with the
 * library's NVMe driver: admin queues, Identify, one polled I/O queue
 * pair, in ring 0.  The namespace is prepared by the test script with the
 * pattern of blkpat.c, tag "disk", word "abcdefghijkl", in 512-byte
 * sectors (a larger LBA size reads as several sectors).  The guest:
 *   - Identify Controller and Namespace: serial and model against "ser="
 *     and "model=", the size in 512-byte sectors against "sectors=" (each
 *     if given);
 *   - Read of 4 KiB (PRP1 only), 8 KiB (PRP1 + PRP2), 64 KiB (PRP list)
 *     and 8 KiB from a buffer at page offset 0x200 (PRP1 with an offset
 *     and a list), and of the last block, checking the pattern;
 *   - Write of sectors 64-95 and of the last block with tag "wrtn", word
 *     "written-data", read back, Flush;
 *   - Write Zeroes of sectors 192-223 and DSM deallocate of 128-159 (each
 *     if ONCS has it), read back as zeros;
 *   - Reads and writes at and across the capacity: status "LBA Out of
 *     Range"; an unknown I/O opcode, a bad namespace ID, and malformed
 *     admin commands (queue IDs, sizes) must fail too; the I/O queue must
 *     work afterwards;
 *   - a final Flush, as an OS does before it shuts down.
 * The test script then compares the host file with what was written.
 * BSP only, ring 0.
 */
#include "guest.h"

const char guest_name[] = "vnvme";

#define SECTOR 512
#define WRITE_AT 64
#define WRITE_N 32
#define DSM_AT 128
#define WZ_AT 192
#define RANGE_N 32
#define BIG_AT 1000
#define MIN_SECTORS 4096
#define BUF_BYTES (72 * 1024)

static const char tag0[] = "disk", word0[] = "abcdefghijkl";
static const char tag1[] = "wrtn", word1[] = "written-data";

static struct nvme_ctrl ctrl;
static uint8_t *buf;
static uint32_t spb;	 /* 512-byte sectors per block */
static uint64_t sectors; /* namespace size in 512-byte sectors */

static void check(const uint8_t *p, uint64_t first, unsigned int n, int tag,
		  const char *what)
{
	uint64_t bad;
	unsigned int off;

	if (blkpat_check(p, first, n, tag ? tag1 : tag0, tag ? word1 : word0,
			 &bad, &off))
		guest_fail("%s: sector %lu differs at byte %u (0x%02x)", what,
			   bad, off, p[(bad - first) * SECTOR + off]);
	printf("vnvme: %s: sectors %lu-%lu OK\n", what, first, first + n - 1);
}

static void status_fail(const char *what, int rc)
{
	guest_fail("%s: error %d, status 0x%03x (%s)", what, rc,
		   ctrl.last_status & 0x7ff, nvme_status_str(ctrl.last_status));
}

/* Read or write n 512-byte sectors at sector s (block aligned). */
static void rw(bool write, uint64_t s, uint32_t n, void *p, const char *what)
{
	int rc = nvme_rw(&ctrl, write, s / spb, n / spb, p);

	if (rc)
		status_fail(what, rc);
}

static void setup(void)
{
	char want[48];
	uint64_t want_sectors;
	int rc;

	if (nvme_find(0, &ctrl))
		guest_fail("no NVMe controller (class 01/08/02) on bus 0");
	if ((rc = nvme_init(&ctrl, 64, true)))
		guest_fail("NVMe set-up: error %d, status 0x%03x (%s)", rc,
			   ctrl.last_status & 0x7ff,
			   nvme_status_str(ctrl.last_status));
	spb = ctrl.lba_size / SECTOR;
	sectors = ctrl.nsze * spb;
	printf("vnvme: Identify: model \"%s\" serial \"%s\" firmware \"%s\", "
	       "namespace %u of %lu blocks of %u bytes, largest transfer %u "
	       "bytes\n",
	       ctrl.model, ctrl.serial, ctrl.fwrev, ctrl.nsid, ctrl.nsze,
	       ctrl.lba_size, ctrl.max_xfer);
	rc = cmdline_get("ser", want, sizeof(want));
	if (rc >= 0) {
		if (strcmp(want, ctrl.serial))
			guest_fail("serial \"%s\", expected ser=%s",
				   ctrl.serial, want);
		printf("vnvme: Identify serial matches ser=%s\n", want);
	}
	rc = cmdline_get("model", want, sizeof(want));
	if (rc >= 0) {
		if (strcmp(want, ctrl.model))
			guest_fail("model \"%s\", expected model=%s",
				   ctrl.model, want);
		printf("vnvme: Identify model matches model=%s\n", want);
	}
	if (cmdline_get_u64("sectors", &want_sectors) == 0) {
		if (want_sectors != sectors)
			guest_fail("%lu sectors, expected sectors=%lu", sectors,
				   want_sectors);
		printf("vnvme: capacity matches sectors=%lu\n", want_sectors);
	}
	if (sectors < MIN_SECTORS)
		guest_fail("the namespace needs at least %u sectors",
			   MIN_SECTORS);
	if (ctrl.max_xfer < 64 * 1024)
		guest_fail("MDTS allows only %u bytes, the test needs 64 KiB",
			   ctrl.max_xfer);
	if (spb > 8)
		guest_fail("LBA size %u: the test needs at most 4096",
			   ctrl.lba_size);
}

static void test_reads(void)
{
	uint8_t *odd = buf + 0x200;
	struct nvme_sqe e;
	int rc;

	rw(false, 0, 8, buf, "read");
	check(buf, 0, 8, 0, "read of 4 KiB (PRP1)");
	rw(false, 8, 16, buf, "read");
	check(buf, 8, 16, 0, "read of 8 KiB (PRP1 + PRP2)");
	mem_clear(buf, 64 * 1024);
	rw(false, BIG_AT, 128, buf, "read");
	check(buf, BIG_AT, 128, 0, "read of 64 KiB (PRP list)");
	rw(false, sectors - 8, 8, buf, "read");
	check(buf, sectors - 8, 8, 0, "read at the end");
	/* 8 KiB at page offset 0x200: three pages, so PRP1 + a list */
	if (spb == 1) {
		mem_clear(buf, 3 * 4096);
		nvme_rw_cmd(&e, NVME_CMD_READ, ctrl.nsid, 300, 16);
		if (nvme_prp_fill(&e, virt_to_phys(odd), 16 * SECTOR,
				  ctrl.prp_list))
			guest_fail("PRP set-up for the offset buffer");
		if ((rc = nvme_io(&ctrl, &e, NULL)))
			status_fail("read into a buffer at offset 0x200", rc);
		check(odd, 300, 16, 0, "read at page offset 0x200 (PRP list)");
		if (buf[0x1ff] || odd[16 * SECTOR])
			guest_fail("the read at offset 0x200 wrote outside its "
				   "buffer");
	}
}

static void test_writes(void)
{
	uint64_t last = sectors - spb;
	unsigned int i;
	int rc;

	for (i = 0; i < WRITE_N; i++)
		blkpat_fill(buf + i * SECTOR, WRITE_AT + i, tag1, word1);
	rw(true, WRITE_AT, WRITE_N, buf, "write");
	for (i = 0; i < spb; i++)
		blkpat_fill(buf + (WRITE_N + i) * SECTOR, last + i, tag1,
			    word1);
	rw(true, last, spb, buf + WRITE_N * SECTOR, "write of the last block");
	mem_clear(buf, (WRITE_N + spb) * SECTOR);
	rw(false, WRITE_AT, WRITE_N, buf, "read back");
	check(buf, WRITE_AT, WRITE_N, 1, "write + read back");
	rw(false, last, spb, buf, "read back");
	check(buf, last, spb, 1, "write + read back");
	if ((rc = nvme_flush(&ctrl)))
		status_fail("Flush", rc);
	printf("vnvme: Flush OK\n");
}

static void read_zeros(uint64_t at, const char *what)
{
	size_t off;

	memset(buf, 0x55, RANGE_N * SECTOR);
	rw(false, at, RANGE_N, buf, what);
	off = blk_nonzero(buf, RANGE_N * SECTOR);
	if (off != RANGE_N * SECTOR)
		guest_fail("%s: sector %lu byte %lu is 0x%02x, not 0", what,
			   at + off / SECTOR, (uint64_t)(off % SECTOR),
			   buf[off]);
	printf("vnvme: %s: sectors %lu-%lu read back as zeros\n", what, at,
	       at + RANGE_N - 1);
}

static void test_zeroing(void)
{
	int rc;

	if (ctrl.oncs & NVME_ONCS_WRITE_ZEROES) {
		if ((rc = nvme_write_zeroes(&ctrl, WZ_AT / spb, RANGE_N / spb)))
			status_fail("Write Zeroes", rc);
		read_zeros(WZ_AT, "Write Zeroes");
		rc = nvme_write_zeroes(&ctrl, ctrl.nsze - 1, 2);
		if (rc != -GUEST_EIO)
			guest_fail("Write Zeroes across the capacity: %d", rc);
		printf("vnvme: Write Zeroes across the capacity: status "
		       "0x%03x (%s)\n",
		       ctrl.last_status & 0x7ff,
		       nvme_status_str(ctrl.last_status));
	} else {
		printf("vnvme: Write Zeroes not supported (ONCS 0x%x), "
		       "skipped\n",
		       ctrl.oncs);
	}
	if (!(ctrl.oncs & NVME_ONCS_DSM)) {
		printf("vnvme: DSM not supported (ONCS 0x%x), skipped\n",
		       ctrl.oncs);
		return;
	}
	if ((rc = nvme_dsm_deallocate(&ctrl, DSM_AT / spb, RANGE_N / spb)))
		status_fail("DSM deallocate", rc);
	printf("vnvme: DSM deallocate OK (DLFEAT 0x%x)\n", ctrl.dlfeat);
	read_zeros(DSM_AT, "DSM deallocate");
}

/* Expect e (on the I/O queue, or the admin queue) to fail with SCT/SC
 * want (want < 0: any error). */
static void expect_status(struct nvme_sqe *e, bool admin, int want,
			  const char *what)
{
	int rc = admin ? nvme_admin(&ctrl, e, NULL) : nvme_io(&ctrl, e, NULL);
	unsigned int got = ctrl.last_status & 0x7ff;

	if (rc == 0)
		guest_fail("%s succeeded", what);
	if (rc != -GUEST_EIO)
		guest_fail("%s: error %d, expected an error status", what, rc);
	if (want >= 0 && got != (unsigned int)want)
		guest_fail("%s: status 0x%03x (%s), expected 0x%03x", what, got,
			   nvme_status_str(ctrl.last_status), want);
	printf("vnvme: %s: status 0x%03x (%s)\n", what, got,
	       nvme_status_str(ctrl.last_status));
}

static void test_errors(void)
{
	uint64_t nsze = ctrl.nsze;
	struct nvme_sqe e;
	int rc;

	nvme_rw_cmd(&e, NVME_CMD_READ, ctrl.nsid, nsze, 1);
	nvme_prp_fill(&e, virt_to_phys(buf), ctrl.lba_size, NULL);
	expect_status(&e, false, NVME_SC_LBA_RANGE, "read at the capacity");
	nvme_rw_cmd(&e, NVME_CMD_READ, ctrl.nsid, nsze - 1, 2);
	nvme_prp_fill(&e, virt_to_phys(buf), 2 * ctrl.lba_size, NULL);
	expect_status(&e, false, NVME_SC_LBA_RANGE, "read across the capacity");
	nvme_rw_cmd(&e, NVME_CMD_READ, ctrl.nsid, ~0ull, 1);
	nvme_prp_fill(&e, virt_to_phys(buf), ctrl.lba_size, NULL);
	expect_status(&e, false, NVME_SC_LBA_RANGE, "read at LBA 2^64-1");
	nvme_rw_cmd(&e, NVME_CMD_WRITE, ctrl.nsid, nsze, 1);
	nvme_prp_fill(&e, virt_to_phys(buf), ctrl.lba_size, NULL);
	expect_status(&e, false, NVME_SC_LBA_RANGE, "write at the capacity");
	nvme_rw_cmd(&e, NVME_CMD_WRITE, ctrl.nsid, nsze - 1, 2);
	nvme_prp_fill(&e, virt_to_phys(buf), 2 * ctrl.lba_size, NULL);
	expect_status(&e, false, NVME_SC_LBA_RANGE,
		      "write across the capacity");
	printf("vnvme: reads and writes beyond the capacity: LBA Out of "
	       "Range\n");

	nvme_rw_cmd(&e, 0x7f, ctrl.nsid, 0, 1);
	expect_status(&e, false, 0x001, "I/O opcode 0x7f");
	nvme_rw_cmd(&e, NVME_CMD_READ, 0xdeadbeef, 0, 1);
	nvme_prp_fill(&e, virt_to_phys(buf), ctrl.lba_size, NULL);
	expect_status(&e, false, 0x00b, "read from namespace 0xdeadbeef");

	/* malformed admin commands */
	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_ADM_CREATE_SQ;
	e.prp1 = virt_to_phys(buf);
	e.cdw10 = 7u << 16 | 2; /* SQ 2 ... */
	e.cdw11 = 9u << 16 | 1; /* ... on CQ 9, which does not exist */
	expect_status(&e, true, -1, "Create I/O SQ on a missing CQ");
	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_ADM_CREATE_CQ;
	e.prp1 = virt_to_phys(buf);
	e.cdw10 = 7u << 16 | 1; /* CQ 1 exists already */
	e.cdw11 = 1;
	expect_status(&e, true, -1, "Create I/O CQ 1 twice");
	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_ADM_CREATE_CQ;
	e.prp1 = virt_to_phys(buf);
	e.cdw10 = 0xffffu << 16 | 0xffff; /* queue 65535 of 65536 entries */
	e.cdw11 = 1;
	expect_status(&e, true, -1, "Create I/O CQ 65535");
	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_ADM_DELETE_SQ;
	e.cdw10 = 0; /* the admin queue */
	expect_status(&e, true, -1, "Delete SQ 0");
	mem_clear(&e, sizeof(e));
	e.cdw0 = 0x7e;
	expect_status(&e, true, 0x001, "admin opcode 0x7e");

	/* the queues must still work */
	mem_clear(buf, SECTOR * spb);
	if ((rc = nvme_rw(&ctrl, false, 0, 1, buf)))
		status_fail("read after the errors", rc);
	check(buf, 0, spb, 0, "read after the errors");
}

void guest_main(void)
{
	int rc;

	buf = dma_zalloc(BUF_BYTES, 4096);
	if (!buf)
		guest_fail("out of memory");
	setup();
	test_reads();
	test_writes();
	test_zeroing();
	test_errors();
	/* what an OS does before it shuts down: the script reads the file */
	if ((rc = nvme_flush(&ctrl)))
		status_fail("final Flush", rc);
	printf("vnvme: final Flush OK\n");
	guest_pass();
}
