/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vblk: drives the first virtio block device (virtio 1.2 §5.2), modern
 * interface, or legacy with "legacy" on the command line, polled, one
 * request at a time.  The disk is prepared by the test script: 512-byte
 * sector n holds 16 lines of 32 bytes,
 *     "vblk %010u %02u abcdefghijkl\n"  (sector number, line 0-15)
 * (awk: printf "vblk %010d %02d abcdefghijkl\n", n, i).  The guest:
 *   - checks the capacity against "sectors=N" if given;
 *   - reads sectors 0-7, the last 8 sectors, and sectors 1000-1007 as a
 *     chain of three data buffers, and checks the pattern;
 *   - writes sectors 64-95 and the last sector with the "wblk ...
 *     written-data" variant of the lines, reads them back, FLUSHes;
 *   - GET_ID, compared with "ser=" if given;
 *   - DISCARDs 128-159 and WRITE_ZEROES 192-223 (each if offered) and
 *     reads zeros back; prints "skipped" for a feature not offered;
 *   - reads and writes at and across the capacity: IOERR expected;
 *   - an unknown request type: UNSUPP expected.
 * The test script then compares the host file with what was written.
 * BSP only, ring 0.
 */
#include "guest.h"

const char guest_name[] = "vblk";

#define SECTOR 512
#define TIMEOUT_S 10
#define WRITE_AT 64
#define WRITE_N 32
#define DISCARD_AT 128
#define WZ_AT 192
#define RANGE_N 32
#define CHAIN_AT 1000
#define MIN_SECTORS 2048
#define BUF_BYTES (64 * 1024)

static struct vio_dev vd;
static struct virtio_blk_hdr *hdr;
static struct virtio_blk_range *range;
static volatile uint8_t *status;
static uint8_t *buf, *expect;
static uint64_t capacity;

static void put_dec(uint8_t *p, uint64_t v, unsigned int width)
{
	while (width--) {
		p[width] = (uint8_t)('0' + v % 10);
		v /= 10;
	}
}

/* Sector n of the original image (tag 0) or of the written data (1). */
static void gen_sector(uint8_t *p, uint64_t n, int tag)
{
	static const char *const pre[2] = {"vblk ", "wblk "};
	static const char *const suf[2] = {" abcdefghijkl\n",
					   " written-data\n"};
	unsigned int i;

	for (i = 0; i < SECTOR / 32; i++, p += 32) {
		memcpy(p, pre[tag], 5);
		put_dec(p + 5, n, 10);
		p[15] = ' ';
		put_dec(p + 16, i, 2);
		memcpy(p + 18, suf[tag], 14);
	}
}

static void check_sectors(const uint8_t *p, uint64_t first, unsigned int n,
			  int tag, const char *what)
{
	unsigned int i, j;

	for (i = 0; i < n; i++) {
		gen_sector(expect, first + i, tag);
		if (!memcmp(p + (uint64_t)i * SECTOR, expect, SECTOR))
			continue;
		for (j = 0; j < SECTOR; j++)
			if (p[(uint64_t)i * SECTOR + j] != expect[j])
				break;
		guest_fail("%s: sector %lu differs at byte %u (0x%02x, "
			   "expected 0x%02x)",
			   what, first + i, j, p[(uint64_t)i * SECTOR + j],
			   expect[j]);
	}
	printf("vblk: %s: sectors %lu-%lu OK\n", what, first, first + n - 1);
}

static void check_zero(const uint8_t *p, uint64_t first, unsigned int n,
		       const char *what)
{
	uint64_t i;

	for (i = 0; i < (uint64_t)n * SECTOR; i++)
		if (p[i])
			guest_fail("%s: sector %lu byte %lu is 0x%02x, not 0",
				   what, first + i / SECTOR, i % SECTOR, p[i]);
	printf("vblk: %s: sectors %lu-%lu read back as zeros\n", what, first,
	       first + n - 1);
}

/*
 * One request: header, the data buffers, status.  Returns the status
 * byte; *len gets the used length.  Fails the test if the transport
 * fails.
 */
static uint8_t blk_req(uint32_t type, uint64_t sector,
		       const struct vio_seg *data, unsigned int ndata,
		       uint32_t *len)
{
	struct vio_seg seg[8];
	unsigned int i;
	int rc;

	hdr->type = type;
	hdr->ioprio = 0;
	hdr->sector = sector;
	*status = 0xee; /* poison: the device must overwrite it */
	seg[0] = (struct vio_seg){virt_to_phys(hdr), sizeof(*hdr), false};
	for (i = 0; i < ndata; i++)
		seg[1 + i] = data[i];
	seg[1 + ndata] = (struct vio_seg){virt_to_phys(status), 1, true};
	rc = vio_transfer(&vd.q[0], seg, ndata + 2, len, TIMEOUT_S);
	if (rc)
		guest_fail("request type %u sector %lu: transport error %d",
			   type, sector, rc);
	return *status;
}

/* Read or write n sectors at sector from/into p (one data buffer) and
 * expect status want; checks the used length of a good request. */
static void rw(bool write, uint64_t sector, unsigned int n, void *p,
	       uint8_t want, const char *what)
{
	struct vio_seg d = {virt_to_phys(p), n * SECTOR, !write};
	uint32_t len, good;
	uint8_t st;

	st = blk_req(write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector, &d, 1,
		     &len);
	if (st != want)
		guest_fail("%s: %s of %u sectors at %lu: status %u, expected "
			   "%u",
			   what, write ? "write" : "read", n, sector, st, want);
	good = write ? 1 : n * SECTOR + 1;
	if (st == VIRTIO_BLK_S_OK && len != good)
		guest_fail("%s: used length %u, expected %u", what, len, good);
}

static void test_reads(void)
{
	struct vio_seg d[3];
	uint32_t len;
	uint8_t st;

	rw(false, 0, 8, buf, VIRTIO_BLK_S_OK, "read");
	check_sectors(buf, 0, 8, 0, "read");
	rw(false, capacity - 8, 8, buf, VIRTIO_BLK_S_OK, "read at the end");
	check_sectors(buf, capacity - 8, 8, 0, "read at the end");
	/* one request, three data buffers of 512, 1024 and 2560 bytes,
	 * placed out of order in memory */
	mem_clear(buf, 8 * SECTOR);
	d[0] = (struct vio_seg){virt_to_phys(buf + 7 * SECTOR), SECTOR, true};
	d[1] = (struct vio_seg){virt_to_phys(buf), 2 * SECTOR, true};
	d[2] = (struct vio_seg){virt_to_phys(buf + 2 * SECTOR), 5 * SECTOR,
				true};
	st = blk_req(VIRTIO_BLK_T_IN, CHAIN_AT, d, 3, &len);
	if (st != VIRTIO_BLK_S_OK || len != 8 * SECTOR + 1)
		guest_fail("3-buffer read: status %u, used length %u", st, len);
	check_sectors(buf + 7 * SECTOR, CHAIN_AT, 1, 0, "3-buffer read (1/3)");
	check_sectors(buf, CHAIN_AT + 1, 7, 0, "3-buffer read (2,3/3)");
}

static void test_writes(void)
{
	unsigned int i;
	uint32_t len;
	uint8_t st;

	for (i = 0; i < WRITE_N; i++)
		gen_sector(buf + i * SECTOR, WRITE_AT + i, 1);
	rw(true, WRITE_AT, WRITE_N, buf, VIRTIO_BLK_S_OK, "write");
	gen_sector(buf + WRITE_N * SECTOR, capacity - 1, 1);
	rw(true, capacity - 1, 1, buf + WRITE_N * SECTOR, VIRTIO_BLK_S_OK,
	   "write of the last sector");
	mem_clear(buf, (WRITE_N + 1) * SECTOR);
	rw(false, WRITE_AT, WRITE_N, buf, VIRTIO_BLK_S_OK, "read back");
	check_sectors(buf, WRITE_AT, WRITE_N, 1, "write + read back");
	rw(false, capacity - 1, 1, buf, VIRTIO_BLK_S_OK, "read back");
	check_sectors(buf, capacity - 1, 1, 1, "write + read back");
	if (!(vd.features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH))) {
		printf("vblk: FLUSH not offered, skipped\n");
		return;
	}
	st = blk_req(VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &len);
	if (st != VIRTIO_BLK_S_OK)
		guest_fail("FLUSH: status %u", st);
	printf("vblk: FLUSH OK\n");
}

static void test_get_id(void)
{
	char want[VIRTIO_BLK_ID_BYTES + 2], got[VIRTIO_BLK_ID_BYTES + 1];
	struct vio_seg d = {virt_to_phys(buf), VIRTIO_BLK_ID_BYTES, true};
	uint32_t len;
	uint8_t st;
	int wl, i;
	bool pad;

	memset(buf, 0xaa, VIRTIO_BLK_ID_BYTES);
	st = blk_req(VIRTIO_BLK_T_GET_ID, 0, &d, 1, &len);
	wl = cmdline_get("ser", want, sizeof(want));
	if (st != VIRTIO_BLK_S_OK) {
		if (wl >= 0 || st != VIRTIO_BLK_S_UNSUPP)
			guest_fail("GET_ID: status %u", st);
		printf("vblk: GET_ID unsupported (no ser= given)\n");
		return;
	}
	memcpy(got, buf, VIRTIO_BLK_ID_BYTES);
	got[VIRTIO_BLK_ID_BYTES] = 0;
	printf("vblk: GET_ID \"%s\"\n", got);
	if (wl == -GUEST_E2BIG || wl > VIRTIO_BLK_ID_BYTES)
		guest_fail("ser= on the command line is too long");
	if (wl < 0)
		return;
	/* exactly the serial, NUL-terminated unless it is 20 bytes (the
	 * spec says NUL-padded; QEMU writes the terminator only) */
	if (memcmp(buf, want, (size_t)wl) ||
	    (wl < VIRTIO_BLK_ID_BYTES && buf[wl]))
		guest_fail("GET_ID \"%s\", expected \"%s\"", got, want);
	pad = true;
	for (i = wl; i < VIRTIO_BLK_ID_BYTES; i++)
		pad = pad && !buf[i];
	printf("vblk: GET_ID matches ser=%s%s\n", want,
	       pad ? "" : " (terminated, not NUL-padded)");
}

static void test_zeroing(unsigned int feature, uint32_t type, uint64_t at,
			 const char *what)
{
	struct vio_seg d = {virt_to_phys(range), sizeof(*range), false};
	uint32_t len;
	uint8_t st;

	if (!(vd.features & VIRTIO_BIT(feature))) {
		printf("vblk: %s not offered, skipped\n", what);
		return;
	}
	range->sector = at;
	range->num_sectors = RANGE_N;
	range->flags = 0;
	st = blk_req(type, 0, &d, 1, &len);
	if (st != VIRTIO_BLK_S_OK)
		guest_fail("%s of sectors %lu-%lu: status %u", what, at,
			   at + RANGE_N - 1, st);
	memset(buf, 0x55, RANGE_N * SECTOR);
	rw(false, at, RANGE_N, buf, VIRTIO_BLK_S_OK, what);
	check_zero(buf, at, RANGE_N, what);
	/* a range past the end must fail */
	range->sector = capacity - 1;
	range->num_sectors = 2;
	st = blk_req(type, 0, &d, 1, &len);
	if (st == VIRTIO_BLK_S_OK)
		guest_fail("%s across the capacity succeeded", what);
	printf("vblk: %s across the capacity: status %u\n", what, st);
}

static void test_errors(void)
{
	struct vio_seg d = {virt_to_phys(buf), SECTOR, true};
	uint32_t len;
	uint8_t st;

	rw(false, capacity, 1, buf, VIRTIO_BLK_S_IOERR, "read at capacity");
	rw(false, capacity - 1, 2, buf, VIRTIO_BLK_S_IOERR,
	   "read across capacity");
	rw(false, ~0ull / SECTOR, 1, buf, VIRTIO_BLK_S_IOERR,
	   "read at a huge sector");
	gen_sector(buf, capacity, 1);
	rw(true, capacity, 1, buf, VIRTIO_BLK_S_IOERR, "write at capacity");
	rw(true, capacity - 1, 2, buf, VIRTIO_BLK_S_IOERR,
	   "write across capacity");
	printf("vblk: reads and writes beyond the capacity: IOERR\n");
	st = blk_req(0x7f, 0, &d, 1, &len);
	if (st != VIRTIO_BLK_S_UNSUPP)
		guest_fail("request type 0x7f: status %u, expected UNSUPP", st);
	printf("vblk: unknown request type: UNSUPP\n");
	/* the device must still work */
	rw(false, 0, 1, buf, VIRTIO_BLK_S_OK, "read after errors");
	check_sectors(buf, 0, 1, 0, "read after errors");
}

static void setup(bool legacy)
{
	uint64_t want, sectors;
	int rc;

	if (vio_find(VIRTIO_ID_BLOCK, 0, &vd))
		guest_fail("no virtio block device on bus 0");
	if ((rc = vio_probe(&vd, legacy, true)))
		guest_fail("probe: %d", rc);
	want = VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
	       VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
	       VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
	       VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
	       VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |
	       VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES);
	if ((rc = vio_start(&vd, want)))
		guest_fail("feature negotiation: %d", rc);
	printf("vblk: features offered 0x%lx, accepted 0x%lx\n", vd.offered,
	       vd.features);
	if (vd.offered & VIRTIO_BIT(VIRTIO_BLK_F_RO))
		guest_fail("the device is read-only");
	if ((rc = vio_queue_setup(&vd, 0, 64)))
		guest_fail("queue set-up: %d", rc);
	if ((rc = vio_driver_ok(&vd)))
		guest_fail("DRIVER_OK: status 0x%x", vio_get_status(&vd));
	capacity = vio_cfg_read64(&vd, VIRTIO_BLK_CFG_CAPACITY);
	printf("vblk: capacity %lu sectors, queue of %u", capacity,
	       vd.q[0].size);
	if (vd.features & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX))
		printf(", seg_max %u",
		       vio_cfg_read(&vd, VIRTIO_BLK_CFG_SEG_MAX, 4));
	if (vd.features & VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX))
		printf(", size_max %u",
		       vio_cfg_read(&vd, VIRTIO_BLK_CFG_SIZE_MAX, 4));
	if (vd.features & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE))
		printf(", blk_size %u",
		       vio_cfg_read(&vd, VIRTIO_BLK_CFG_BLK_SIZE, 4));
	printf("\n");
	if (cmdline_get_u64("sectors", &sectors) == 0 && sectors != capacity)
		guest_fail("capacity %lu, expected %lu", capacity, sectors);
	if (capacity < MIN_SECTORS)
		guest_fail("the disk needs at least %u sectors", MIN_SECTORS);
	if ((vd.features & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX)) &&
	    vio_cfg_read(&vd, VIRTIO_BLK_CFG_SEG_MAX, 4) < 3)
		guest_fail("seg_max below 3");
}

void guest_main(void)
{
	bool legacy = cmdline_has_word("legacy");

	printf("vblk: virtio-blk, %s interface\n",
	       legacy ? "legacy" : "modern");
	hdr = dma_zalloc(sizeof(*hdr), 64);
	range = dma_zalloc(sizeof(*range), 64);
	status = dma_zalloc(1, 64);
	buf = dma_zalloc(BUF_BYTES, 4096);
	expect = dma_zalloc(SECTOR, 64);
	if (!hdr || !range || !status || !buf || !expect)
		guest_fail("out of memory");
	setup(legacy);
	test_reads();
	test_writes();
	test_get_id();
	test_zeroing(VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_T_DISCARD, DISCARD_AT,
		     "DISCARD");
	test_zeroing(VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_T_WRITE_ZEROES,
		     WZ_AT, "WRITE_ZEROES");
	test_errors();
	if (vio_get_status(&vd) &
	    (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		guest_fail("device status 0x%x", vio_get_status(&vd));
	printf("vblk: %lu notifications\n", vd.q[0].kicks);
	guest_pass();
}
