/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for virtio-blk without KVM, driving the device through the
 * test driver in vdrv.h against a temporary raw image (under a mkdtemp
 * directory, removed at the end): config space, read/write through the
 * modern and the legacy interface checked against pread(2), FLUSH,
 * GET_ID, DISCARD, WRITE_ZEROES, 32 requests in flight, read-only images,
 * 4096-byte sectors, every hostile request we know of, and a reset with
 * requests in flight.  The block layer completes on its worker threads, so
 * the used ring is polled with a bounded wait.
 *
 * Threads: the test thread plays the guest driver; the device's block
 * workers write the used ring concurrently (read with acquire here).
 */
#include <endian.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/dev/diskimg.h"
#include "tests/dev/vdrv.h"
#include "tests/tap.h"

#define IMG_SIZE (16u << 20)
#define QSIZE 128
#define SEG_MAX 126
#define DZ_SEG_MAX 16
#define DZ_SECTORS_MAX (1u << 22)
#define ST_NONE 0xee /* status byte before the device writes it */
#define TIMEOUT (-1)

static char tmpdir[64];

struct env {
	struct vdrv_machine m;
	struct vdrv d;
	char path[128];
	int fd;	       /* the image, for pread/pwrite checks */
	uint64_t feat; /* negotiated */
	uint64_t hdr;  /* 64 header slots of 16 bytes */
	uint64_t st;   /* 64 status bytes */
	uint64_t buf;  /* 4 MiB of data */
	uint64_t tbl;  /* indirect tables */
};

/* ---- image ---- */

static bool file_is_pattern(struct env *e, uint64_t off, size_t len)
{
	uint8_t *b = malloc(len);
	bool same;
	size_t i;

	if (!b)
		return false;
	for (i = 0; i < len; i++)
		b[i] = dimg_pat(off + i);
	same = dimg_file_is(e->fd, off, b, len);
	free(b);
	return same;
}

/* ---- machine and driver ---- */

/* 'extra': more "key", "value" pairs for pci.0.3.0 (NULL-terminated). */
static int env_new(struct env *e, const char *img, const char *const *extra)
{
	const char *kv[32];
	char keys[8][64];
	unsigned n = 0, k = 0;

	memset(e, 0, sizeof(*e));
	snprintf(e->path, sizeof(e->path), "%s", img);
	kv[n++] = "pci.0.3.0.device";
	kv[n++] = "virtio-blk";
	kv[n++] = "pci.0.3.0.path";
	kv[n++] = e->path;
	for (; extra && *extra && k < 8; extra += 2, k++) {
		snprintf(keys[k], sizeof(keys[k]), "pci.0.3.0.%s", extra[0]);
		kv[n++] = keys[k];
		kv[n++] = extra[1];
	}
	kv[n] = NULL;
	e->fd = open(img, O_RDWR);
	if (e->fd < 0 || vdrv_machine_new(&e->m, kv))
		return -1;
	e->hdr = vdrv_alloc(&e->m, 4096, 4096);
	e->st = vdrv_alloc(&e->m, 4096, 4096);
	e->tbl = vdrv_alloc(&e->m, 65536, 4096);
	e->buf = vdrv_alloc(&e->m, 4u << 20, 4096);
	return 0;
}

static void env_free(struct env *e)
{
	vdrv_status(&e->d, 0);
	vdrv_machine_free(&e->m);
	close(e->fd);
}

#define F_ALL                                                                  \
	(VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |                                   \
	 VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_RO) |      \
	 VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |  \
	 VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY) |                                   \
	 VIRTIO_BIT(VIRTIO_BLK_F_DISCARD) |                                    \
	 VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES) |                               \
	 VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX) | \
	 VIRTIO_BIT(VIRTIO_F_VERSION_1))

/* Initialise the driver side: modern with MSI-X vector 1, or legacy with
 * INTx.  Returns the negotiated features. */
static uint64_t drv_init(struct env *e, bool legacy, uint64_t want)
{
	vdrv_probe(&e->d, &e->m, 3, legacy, !legacy);
	e->feat = vdrv_negotiate(&e->d, want);
	if (!legacy)
		vdrv_msix_vec(&e->d, 1, 0x41);
	vdrv_queue(&e->d, 0, QSIZE, legacy ? 0xffff : 1);
	vdrv_driver_ok(&e->d);
	return e->feat;
}

static uint64_t cfgr(struct env *e, unsigned off, unsigned size)
{
	if (e->d.legacy)
		return vdrv_pio(&e->m, e->d.io + 20 + off, size, false, 0);
	return vdrv_mmio(&e->m, e->d.bar4 + 0x2000 + off, size, false, 0);
}

static uint64_t capacity(struct env *e)
{
	return cfgr(e, VIRTIO_BLK_CFG_CAPACITY, 4) |
	       cfgr(e, VIRTIO_BLK_CFG_CAPACITY + 4, 4) << 32;
}

static bool needs_reset(struct env *e)
{
	return vdrv_get_status(&e->d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

/* Wait up to 5 s for the next used element.  1 or 0 (timeout). */
static int wait_used(struct env *e, uint32_t *id, uint32_t *len)
{
	struct timespec ms = {0, 1000000};
	int i;

	for (i = 0; i < 5000; i++) {
		if (vdrv_used(&e->d, 0, id, len))
			return 1;
		nanosleep(&ms, NULL);
	}
	return 0;
}

static uint8_t *gp(struct env *e, uint64_t gpa)
{
	return vdrv_ptr(&e->m, gpa);
}

static void put_hdr(struct env *e, uint64_t gpa, uint32_t type, uint64_t sector)
{
	struct virtio_blk_req_hdr h = {htole32(type), 0, htole64(sector)};

	memcpy(gp(e, gpa), &h, sizeof(h));
}

static void put_seg(struct env *e, uint64_t gpa, uint64_t sector, uint32_t num,
		    uint32_t flags)
{
	struct virtio_blk_discard_write_zeroes s = {
		htole64(sector), htole32(num), htole32(flags)};

	memcpy(gp(e, gpa), &s, sizeof(s));
}

/*
 * Post the chain (n segments) and wait for it.  Returns the byte at
 * 'stgpa' after completion, or TIMEOUT; *ulen gets the used length.
 */
static int run(struct env *e, unsigned n, const uint64_t *gpa,
	       const uint32_t *len, const bool *wr, uint64_t stgpa,
	       uint32_t *ulen)
{
	uint32_t id, l;
	uint16_t head;

	*gp(e, stgpa) = ST_NONE;
	head = vdrv_post(&e->d, 0, n, gpa, len, wr);
	if (!wait_used(e, &id, &l) || id != head)
		return TIMEOUT;
	if (ulen)
		*ulen = l;
	return *gp(e, stgpa);
}

/* header + one data segment (if dlen) + status. */
static int req(struct env *e, uint32_t type, uint64_t sector, uint64_t data,
	       uint32_t dlen, bool dwr, uint32_t *ulen)
{
	uint64_t gpa[3];
	uint32_t len[3];
	bool wr[3];
	unsigned n = 0;

	put_hdr(e, e->hdr, type, sector);
	gpa[n] = e->hdr, len[n] = 16, wr[n++] = false;
	if (dlen)
		gpa[n] = data, len[n] = dlen, wr[n++] = dwr;
	gpa[n] = e->st, len[n] = 1, wr[n++] = true;
	return run(e, n, gpa, len, wr, e->st, ulen);
}

static int rd(struct env *e, uint64_t sector, uint64_t data, uint32_t dlen)
{
	return req(e, VIRTIO_BLK_T_IN, sector, data, dlen, true, NULL);
}

static int wrt(struct env *e, uint64_t sector, uint64_t data, uint32_t dlen)
{
	return req(e, VIRTIO_BLK_T_OUT, sector, data, dlen, false, NULL);
}

/* DISCARD / WRITE_ZEROES with 'nseg' segments already at e->buf. */
static int dz(struct env *e, uint32_t type, unsigned nseg)
{
	uint64_t gpa[3] = {e->hdr, e->buf, e->st};
	uint32_t len[3] = {16, 16 * nseg, 1};
	bool wr[3] = {false, false, true};

	put_hdr(e, e->hdr, type, 0);
	return run(e, 3, gpa, len, wr, e->st, NULL);
}

/* ---- tests ---- */

static void test_config(const char *img)
{
	struct env e;
	uint64_t f;

	is_int(env_new(&e, img, NULL), 0, "machine with virtio-blk");
	vdrv_probe(&e.d, &e.m, 3, false, true);
	is_int(vdrv_cfg(&e.d, PCIR_VENDOR, 2), 0x1af4, "vendor 1af4");
	is_int(vdrv_cfg(&e.d, PCIR_DEVICE, 2), 0x1001, "device 1001");
	is_int(vdrv_cfg(&e.d, PCIR_SUBDEV, 2), VIRTIO_ID_BLOCK,
	       "subsystem id 2");
	is_int(vdrv_cfg(&e.d, PCIR_CLASS, 1), 0x01, "class mass storage");
	f = drv_init(&e, false, F_ALL);
	ok(f & VIRTIO_BIT(VIRTIO_F_VERSION_1), "VERSION_1");
	ok(f & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH), "FLUSH offered");
	ok(f & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX), "SEG_MAX offered");
	ok(f & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE), "BLK_SIZE offered");
	ok(f & VIRTIO_BIT(VIRTIO_BLK_F_TOPOLOGY), "TOPOLOGY offered");
	ok(f & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES), "WRITE_ZEROES offered");
	ok(f & VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC), "INDIRECT_DESC offered");
	ok(f & VIRTIO_BIT(VIRTIO_F_EVENT_IDX), "EVENT_IDX offered");
	ok(!(f & VIRTIO_BIT(VIRTIO_BLK_F_RO)), "RO not offered");
	ok(!(f & VIRTIO_BIT(VIRTIO_BLK_F_CONFIG_WCE)),
	   "CONFIG_WCE not offered");
	is_int(capacity(&e), IMG_SIZE / 512, "capacity in 512-byte sectors");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_BLK_SIZE, 4), 512, "blk_size 512");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_SEG_MAX, 4), SEG_MAX, "seg_max 126");
	ok(cfgr(&e, VIRTIO_BLK_CFG_SIZE_MAX, 4) >= 4096, "size_max set");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_NUM_QUEUES, 2), 1, "num_queues 1");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_MAX_WZ_SECTORS, 4), DZ_SECTORS_MAX,
	       "max_write_zeroes_sectors");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_MAX_WZ_SEG, 4), DZ_SEG_MAX,
	       "max_write_zeroes_seg");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_WZ_MAY_UNMAP, 1), 0,
	       "write_zeroes_may_unmap 0");
	if (f & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD)) {
		is_int(cfgr(&e, VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS, 4),
		       DZ_SECTORS_MAX, "max_discard_sectors");
		is_int(cfgr(&e, VIRTIO_BLK_CFG_MAX_DISCARD_SEG, 4), DZ_SEG_MAX,
		       "max_discard_seg");
		is_int(cfgr(&e, VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGN, 4), 1,
		       "discard_sector_alignment 1");
	} else {
		diag("the file system cannot punch holes: no DISCARD");
	}
	/* writes to the read-only config are ignored */
	vdrv_mmio(&e.m, e.d.bar4 + 0x2000, 4, true, 0x1234);
	is_int(capacity(&e), IMG_SIZE / 512, "config writes ignored");
	env_free(&e);
}

/* Write then read back through the device; compare with pread. */
static void test_rw(const char *img, bool legacy)
{
	const char *what = legacy ? "legacy" : "modern";
	uint64_t gpa[5];
	uint32_t len[5], ulen = 0;
	bool wr[5];
	struct env e;
	uint8_t *b;
	int i;

	dimg_make(img, IMG_SIZE, dimg_pat);
	is_int(env_new(&e, img, NULL), 0, "%s: machine", what);
	drv_init(&e, legacy, legacy ? 0xffffffff : F_ALL);
	ok(legacy ? !(e.feat >> 32)
		  : (e.feat & VIRTIO_BIT(VIRTIO_F_VERSION_1)) != 0,
	   "%s: %s", what,
	   legacy ? "only the low feature bits" : "VERSION_1 negotiated");
	if (legacy)
		is_int(capacity(&e), IMG_SIZE / 512,
		       "legacy: capacity at offset 20 of the I/O BAR");
	b = gp(&e, e.buf);
	for (i = 0; i < 8192; i++)
		b[i] = (uint8_t)(i * 13 + 5);
	is_int(wrt(&e, 10, e.buf, 4096), VIRTIO_BLK_S_OK,
	       "%s: OUT 8 sectors at 10", what);
	ok(dimg_file_is(e.fd, 10 * 512, b, 4096), "%s: file holds the data",
	   what);
	ok(file_is_pattern(&e, 0, 10 * 512) &&
		   file_is_pattern(&e, 18 * 512, 4096),
	   "%s: neighbours untouched", what);
	memset(b + 65536, 0, 4096);
	is_int(req(&e, VIRTIO_BLK_T_IN, 10, e.buf + 65536, 4096, true, &ulen),
	       VIRTIO_BLK_S_OK, "%s: IN 8 sectors at 10", what);
	ok(memcmp(b + 65536, b, 4096) == 0, "%s: read back the data", what);
	is_int(ulen, 4097, "%s: used length = data + status", what);

	/* several segments each way, header split in two */
	put_hdr(&e, e.hdr, VIRTIO_BLK_T_IN, 100);
	gpa[0] = e.hdr, len[0] = 8, wr[0] = false;
	gpa[1] = e.hdr + 8, len[1] = 8, wr[1] = false;
	gpa[2] = e.buf + 8192, len[2] = 512, wr[2] = true;
	gpa[3] = e.buf + 20000, len[3] = 1024, wr[3] = true;
	gpa[4] = e.st, len[4] = 1, wr[4] = true;
	is_int(run(&e, 5, gpa, len, wr, e.st, &ulen), VIRTIO_BLK_S_OK,
	       "%s: IN, split header, two data segments", what);
	ok(dimg_file_is(e.fd, 100 * 512, b + 8192, 512) &&
		   dimg_file_is(e.fd, 101 * 512, b + 20000, 1024),
	   "%s: both segments filled in order", what);
	/* header and first data part in one descriptor */
	put_hdr(&e, e.buf + 131072, VIRTIO_BLK_T_OUT, 200);
	gpa[0] = e.buf + 131072, len[0] = 16 + 512, wr[0] = false;
	memset(gp(&e, e.buf + 131072 + 16), 0x5a, 512);
	gpa[1] = e.buf + 150000, len[1] = 1024, wr[1] = false;
	memset(gp(&e, e.buf + 150000), 0xa5, 1024);
	gpa[2] = e.st, len[2] = 1, wr[2] = true;
	is_int(run(&e, 3, gpa, len, wr, e.st, NULL), VIRTIO_BLK_S_OK,
	       "%s: OUT with the header and data in one descriptor", what);
	ok(dimg_file_is(e.fd, 200 * 512, gp(&e, e.buf + 131072 + 16), 512) &&
		   dimg_file_is(e.fd, 201 * 512, gp(&e, e.buf + 150000), 1024),
	   "%s: file holds both parts", what);

	/* the status byte sharing the last data descriptor */
	put_hdr(&e, e.hdr, VIRTIO_BLK_T_IN, 200);
	gpa[0] = e.hdr, len[0] = 16, wr[0] = false;
	gpa[1] = e.buf + 300000, len[1] = 513, wr[1] = true;
	is_int(run(&e, 2, gpa, len, wr, e.buf + 300000 + 512, &ulen),
	       VIRTIO_BLK_S_OK,
	       "%s: IN with data and status in one "
	       "descriptor",
	       what);
	ok(dimg_all_bytes(gp(&e, e.buf + 300000), 0x5a, 512), "%s: data read",
	   what);

	/* last sector of the disk */
	is_int(rd(&e, IMG_SIZE / 512 - 1, e.buf, 512), VIRTIO_BLK_S_OK,
	       "%s: last sector readable", what);
	ok(dimg_file_is(e.fd, IMG_SIZE - 512, b, 512), "%s: its data", what);
	is_int(req(&e, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
	       VIRTIO_BLK_S_OK, "%s: FLUSH", what);
	env_free(&e);
}

/* No FLUSH negotiated: writethrough (each write followed by a sync). */
static void test_writethrough(const char *img)
{
	struct env e;

	dimg_make(img, IMG_SIZE, dimg_pat);
	env_new(&e, img, NULL);
	drv_init(&e, false, F_ALL & ~VIRTIO_BIT(VIRTIO_BLK_F_FLUSH));
	ok(!(e.feat & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH)), "FLUSH not negotiated");
	memset(gp(&e, e.buf), 0x77, 2048);
	is_int(wrt(&e, 4, e.buf, 2048), VIRTIO_BLK_S_OK,
	       "writethrough OUT completes");
	ok(dimg_file_is(e.fd, 4 * 512, gp(&e, e.buf), 2048),
	   "and reached the file");
	put_seg(&e, e.buf, 4, 2, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_OK,
	       "writethrough WRITE_ZEROES completes");
	env_free(&e);
}

static void get_id(struct env *e, char *out)
{
	memset(gp(e, e->buf), 0xcc, 64);
	is_int(req(e, VIRTIO_BLK_T_GET_ID, 0, e->buf, 20, true, NULL),
	       VIRTIO_BLK_S_OK, "GET_ID");
	memcpy(out, gp(e, e->buf), 20);
	out[20] = '\0';
	ok(*gp(e, e->buf + 20) == 0xcc, "GET_ID writes 20 bytes only");
}

static void test_get_id(const char *img)
{
	static const char *const ser[] = {"ser", "disk-0042", NULL};
	static const char *const serial[] = {"serial", "ALIAS", NULL};
	static const char *const longser[] = {"ser", "0123456789abcdefghijKLMN",
					      NULL};
	char id1[21], id2[21];
	struct env e;

	env_new(&e, img, NULL);
	drv_init(&e, false, F_ALL);
	get_id(&e, id1);
	ok(strncmp(id1, "KHYVE-", 6) == 0 && strlen(id1) == 20,
	   "default ID from the path: %s", id1);
	env_free(&e);
	env_new(&e, img, NULL);
	drv_init(&e, false, F_ALL);
	get_id(&e, id2);
	is_str(id2, id1, "the default ID is stable");
	env_free(&e);

	env_new(&e, img, ser);
	drv_init(&e, false, F_ALL);
	memset(gp(&e, e.buf), 0xcc, 64);
	is_int(req(&e, VIRTIO_BLK_T_GET_ID, 0, e.buf, 32, true, NULL),
	       VIRTIO_BLK_S_OK, "GET_ID with ser= (32-byte buffer)");
	is_str((char *)gp(&e, e.buf), "disk-0042", "ser= is the ID");
	ok(dimg_all_bytes(gp(&e, e.buf + 9), 0, 11), "NUL-padded to 20 bytes");
	ok(*gp(&e, e.buf + 20) == 0xcc, "nothing past 20 bytes");
	is_int(req(&e, VIRTIO_BLK_T_GET_ID, 0, e.buf, 19, true, NULL),
	       VIRTIO_BLK_S_IOERR, "GET_ID buffer of 19 bytes: IOERR");
	env_free(&e);

	env_new(&e, img, serial);
	drv_init(&e, false, F_ALL);
	get_id(&e, id1);
	is_str(id1, "ALIAS", "serial= (bhyve's other key) works too");
	env_free(&e);

	env_new(&e, img, longser);
	drv_init(&e, false, F_ALL);
	get_id(&e, id1);
	is_str(id1, "0123456789abcdefghij", "a long ser= is cut at 20 bytes");
	env_free(&e);
}

static void test_discard_wz(const char *img)
{
	struct env e;
	uint8_t *z = calloc(1, 65536);

	dimg_make(img, IMG_SIZE, dimg_pat);
	env_new(&e, img, NULL);
	drv_init(&e, false, F_ALL);
	if (e.feat & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD)) {
		put_seg(&e, e.buf, 64, 16, 0); /* 8 KiB at 32 KiB */
		is_int(dz(&e, VIRTIO_BLK_T_DISCARD, 1), VIRTIO_BLK_S_OK,
		       "DISCARD 16 sectors");
		ok(dimg_file_is(e.fd, 64 * 512, z, 8192),
		   "the range reads zero");
		ok(file_is_pattern(&e, 60 * 512, 2048) &&
			   file_is_pattern(&e, 80 * 512, 2048),
		   "its neighbours are untouched");
		memset(gp(&e, e.buf + 4096), 0xff, 8192);
		is_int(rd(&e, 64, e.buf + 4096, 8192), VIRTIO_BLK_S_OK,
		       "read the discarded range");
		ok(dimg_all_bytes(gp(&e, e.buf + 4096), 0, 8192),
		   "the device reads zeros too");
		put_seg(&e, e.buf, 200, 8, 0);
		put_seg(&e, e.buf + 16, 300, 8, 0);
		put_seg(&e, e.buf + 32, 400, 8, 0);
		is_int(dz(&e, VIRTIO_BLK_T_DISCARD, 3), VIRTIO_BLK_S_OK,
		       "DISCARD with three segments");
		ok(dimg_file_is(e.fd, 200 * 512, z, 4096) &&
			   dimg_file_is(e.fd, 300 * 512, z, 4096) &&
			   dimg_file_is(e.fd, 400 * 512, z, 4096) &&
			   file_is_pattern(&e, 208 * 512, 4096),
		   "all three ranges zero, nothing else");
		put_seg(&e, e.buf, 10, 1, 1);
		is_int(dz(&e, VIRTIO_BLK_T_DISCARD, 1), VIRTIO_BLK_S_UNSUPP,
		       "DISCARD with the unmap flag: UNSUPP (5.2.6.2)");
		put_seg(&e, e.buf, 10, 1, 0x80);
		is_int(dz(&e, VIRTIO_BLK_T_DISCARD, 1), VIRTIO_BLK_S_UNSUPP,
		       "DISCARD with an unknown flag: UNSUPP");
		ok(file_is_pattern(&e, 10 * 512, 512), "and nothing changed");
	} else {
		diag("no DISCARD on this file system; skipped");
	}

	put_seg(&e, e.buf, 1000, 24, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_OK,
	       "WRITE_ZEROES 24 sectors");
	ok(dimg_file_is(e.fd, 1000 * 512, z, 24 * 512) &&
		   file_is_pattern(&e, 1024 * 512, 512) &&
		   file_is_pattern(&e, 999 * 512, 512),
	   "exactly the range is zero");
	put_seg(&e, e.buf, 2000, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	put_seg(&e, e.buf + 16, 3000, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 2), VIRTIO_BLK_S_OK,
	       "WRITE_ZEROES with UNMAP, two segments");
	ok(dimg_file_is(e.fd, 2000 * 512, z, 4096) &&
		   dimg_file_is(e.fd, 3000 * 512, z, 4096),
	   "both ranges zero");
	put_seg(&e, e.buf, 10, 1, 2);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_UNSUPP,
	       "WRITE_ZEROES with an unknown flag: UNSUPP");
	ok(file_is_pattern(&e, 10 * 512, 512), "and nothing changed");
	put_seg(&e, e.buf, 5000, 0, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_OK,
	       "WRITE_ZEROES of 0 sectors is a no-op");
	env_free(&e);
	free(z);
}

/* 32 requests in flight at once, completing in any order. */
static void test_inflight(const char *img)
{
	uint64_t gpa[3];
	uint32_t len[3], id, ulen;
	bool wr[3] = {false, false, true}, seen[QSIZE], good = true;
	uint16_t head[32];
	struct env e;
	unsigned i, j, got = 0, inorder = 1;

	dimg_make(img, IMG_SIZE, dimg_pat);
	env_new(&e, img, NULL);
	drv_init(&e, false, F_ALL);
	for (i = 0; i < 32; i++) {
		put_hdr(&e, e.hdr + 16 * i, VIRTIO_BLK_T_OUT, 1000 + 16 * i);
		memset(gp(&e, e.buf + 8192 * i), (int)(i + 1), 8192);
		*gp(&e, e.st + i) = ST_NONE;
		gpa[0] = e.hdr + 16 * i, len[0] = 16;
		gpa[1] = e.buf + 8192 * i, len[1] = 8192;
		gpa[2] = e.st + i, len[2] = 1;
		head[i] = vdrv_post(&e.d, 0, 3, gpa, len, wr);
	}
	memset(seen, 0, sizeof(seen));
	while (got < 32 && wait_used(&e, &id, &ulen)) {
		if (id < QSIZE)
			seen[id] = true;
		if (id != head[got])
			inorder = 0;
		got++;
	}
	is_int(got, 32, "32 writes in flight all completed");
	for (i = 0; i < 32; i++)
		good &= seen[head[i]] && *gp(&e, e.st + i) == VIRTIO_BLK_S_OK;
	ok(good, "each once, each with status OK");
	diag("completion order %s submission order",
	     inorder ? "matched" : "differed from");
	for (i = 0; i < 32; i++)
		good &= dimg_file_is(e.fd, (1000 + 16 * i) * 512ull,
				     gp(&e, e.buf + 8192 * i), 8192);
	ok(good, "the file holds all 32 writes");

	for (i = 0; i < 32; i++) {
		put_hdr(&e, e.hdr + 16 * i, VIRTIO_BLK_T_IN, 1000 + 16 * i);
		memset(gp(&e, e.buf + 8192 * (32 + i)), 0, 8192);
		*gp(&e, e.st + i) = ST_NONE;
		gpa[0] = e.hdr + 16 * i, len[0] = 16, wr[1] = true;
		gpa[1] = e.buf + 8192 * (32 + i), len[1] = 8192;
		gpa[2] = e.st + i, len[2] = 1;
		vdrv_post(&e.d, 0, 3, gpa, len, wr);
	}
	for (got = 0; got < 32 && wait_used(&e, &id, &ulen);)
		got++;
	is_int(got, 32, "32 reads in flight all completed");
	for (i = 0; i < 32; i++) {
		const uint8_t *p = gp(&e, e.buf + 8192 * (32 + i));

		good &= *gp(&e, e.st + i) == VIRTIO_BLK_S_OK;
		for (j = 0; j < 8192; j++)
			good &= p[j] == (uint8_t)(i + 1);
	}
	ok(good, "each read returned its own data");
	env_free(&e);
}

static void test_ro(const char *img)
{
	static const char *const ro[] = {"ro", "true", NULL};
	struct env e;

	dimg_make(img, IMG_SIZE, dimg_pat);
	env_new(&e, img, ro);
	drv_init(&e, false, F_ALL);
	ok(e.feat & VIRTIO_BIT(VIRTIO_BLK_F_RO), "ro: RO offered");
	ok(!(e.feat & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD)) &&
		   !(e.feat & VIRTIO_BIT(VIRTIO_BLK_F_WRITE_ZEROES)),
	   "ro: no DISCARD or WRITE_ZEROES");
	memset(gp(&e, e.buf), 0x33, 4096);
	is_int(wrt(&e, 0, e.buf, 4096), VIRTIO_BLK_S_IOERR, "ro: OUT: IOERR");
	ok(file_is_pattern(&e, 0, 8192), "ro: file unchanged");
	put_seg(&e, e.buf, 0, 8, 0);
	is_int(dz(&e, VIRTIO_BLK_T_DISCARD, 1), VIRTIO_BLK_S_IOERR,
	       "ro: DISCARD: IOERR");
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_IOERR,
	       "ro: WRITE_ZEROES: IOERR");
	ok(file_is_pattern(&e, 0, 8192), "ro: file still unchanged");
	is_int(rd(&e, 0, e.buf, 4096), VIRTIO_BLK_S_OK, "ro: IN works");
	ok(dimg_file_is(e.fd, 0, gp(&e, e.buf), 4096),
	   "ro: with the file's data");
	is_int(req(&e, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL),
	       VIRTIO_BLK_S_OK, "ro: FLUSH is OK");
	env_free(&e);
}

static void test_4k(const char *img)
{
	static const char *const s4k[] = {"sectorsize", "4096", NULL};
	static const char *const s512_4k[] = {"sectorsize", "512/4096", NULL};
	struct env e;

	dimg_make(img, IMG_SIZE + 1024,
		  dimg_pat); /* a partial block at the end */
	env_new(&e, img, s4k);
	drv_init(&e, false, F_ALL);
	is_int(cfgr(&e, VIRTIO_BLK_CFG_BLK_SIZE, 4), 4096, "4k: blk_size");
	is_int(capacity(&e), IMG_SIZE / 512,
	       "4k: capacity counts whole 4096-byte blocks");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_PHYS_BLOCK_EXP, 1), 0,
	       "4k: physical_block_exp 0");
	if (e.feat & VIRTIO_BIT(VIRTIO_BLK_F_DISCARD))
		is_int(cfgr(&e, VIRTIO_BLK_CFG_DISCARD_SECTOR_ALIGN, 4), 8,
		       "4k: discard_sector_alignment 8");
	is_int(rd(&e, 8, e.buf, 4096), VIRTIO_BLK_S_OK, "4k: aligned IN");
	ok(dimg_file_is(e.fd, 4096, gp(&e, e.buf), 4096), "4k: right data");
	is_int(rd(&e, 1, e.buf, 4096), VIRTIO_BLK_S_IOERR,
	       "4k: IN at sector 1: IOERR");
	is_int(rd(&e, 8, e.buf, 512), VIRTIO_BLK_S_IOERR,
	       "4k: IN of 512 bytes: IOERR");
	memset(gp(&e, e.buf), 1, 4096);
	is_int(wrt(&e, 4, e.buf, 4096), VIRTIO_BLK_S_IOERR,
	       "4k: OUT at sector 4: IOERR");
	ok(file_is_pattern(&e, 0, 16384), "4k: file unchanged");
	put_seg(&e, e.buf, 3, 8, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_IOERR,
	       "4k: unaligned WRITE_ZEROES: IOERR");
	is_int(rd(&e, IMG_SIZE / 512, e.buf, 4096), VIRTIO_BLK_S_IOERR,
	       "4k: the partial block at the end is not readable");
	env_free(&e);

	env_new(&e, img, s512_4k);
	drv_init(&e, false, F_ALL);
	is_int(cfgr(&e, VIRTIO_BLK_CFG_BLK_SIZE, 4), 512, "512/4096: blk_size");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_PHYS_BLOCK_EXP, 1), 3,
	       "512/4096: physical_block_exp 3");
	is_int(cfgr(&e, VIRTIO_BLK_CFG_MIN_IO_SIZE, 2), 8,
	       "512/4096: min_io_size 8 blocks");
	is_int(capacity(&e), IMG_SIZE / 512 + 2, "512/4096: capacity");
	env_free(&e);
}

/* Recover from NEEDS_RESET: reset and initialise again. */
static void reinit(struct env *e)
{
	vdrv_status(&e->d, 0);
	drv_init(e, false, F_ALL);
}

static void test_hostile(const char *img)
{
	uint64_t gpa[4], cap = IMG_SIZE / 512;
	uint32_t len[4], id, ulen;
	bool wr[4];
	struct env e;
	unsigned i;

	dimg_make(img, IMG_SIZE, dimg_pat);
	env_new(&e, img, NULL);
	drv_init(&e, false, F_ALL);

	/* short header */
	put_hdr(&e, e.hdr, VIRTIO_BLK_T_OUT, 0);
	gpa[0] = e.hdr, len[0] = 8, wr[0] = false;
	gpa[1] = e.st, len[1] = 1, wr[1] = true;
	is_int(run(&e, 2, gpa, len, wr, e.st, &ulen), VIRTIO_BLK_S_IOERR,
	       "header of 8 bytes: IOERR");
	is_int(ulen, 1, "used length 1 (the status)");

	/* data of the wrong direction */
	memset(gp(&e, e.buf), 0x44, 512);
	is_int(req(&e, VIRTIO_BLK_T_IN, 0, e.buf, 512, false, NULL),
	       VIRTIO_BLK_S_IOERR, "IN into a device-readable buffer: IOERR");
	ok(dimg_all_bytes(gp(&e, e.buf), 0x44, 512), "the buffer is untouched");
	is_int(req(&e, VIRTIO_BLK_T_OUT, 0, e.buf, 512, true, NULL),
	       VIRTIO_BLK_S_IOERR, "OUT from a device-writable buffer: IOERR");
	ok(file_is_pattern(&e, 0, 512), "the file is untouched");

	/* lengths and ranges */
	is_int(rd(&e, 0, e.buf, 100), VIRTIO_BLK_S_IOERR,
	       "IN of 100 bytes: IOERR");
	is_int(wrt(&e, 0, e.buf, 1000), VIRTIO_BLK_S_IOERR,
	       "OUT of 1000 bytes: IOERR");
	ok(file_is_pattern(&e, 0, 1024), "the file is untouched");
	is_int(rd(&e, UINT64_MAX / 512 + 1, e.buf, 512), VIRTIO_BLK_S_IOERR,
	       "sector * 512 overflowing: IOERR");
	is_int(rd(&e, UINT64_MAX / 512, e.buf, 1024), VIRTIO_BLK_S_IOERR,
	       "sector * 512 + len overflowing: IOERR");
	is_int(rd(&e, cap - 1, e.buf, 1024), VIRTIO_BLK_S_IOERR,
	       "read across the end: IOERR");
	is_int(wrt(&e, cap, e.buf, 512), VIRTIO_BLK_S_IOERR,
	       "write past the end: IOERR");
	is_int(rd(&e, cap, e.buf, 0), VIRTIO_BLK_S_OK,
	       "empty read at the end is fine");

	/* unknown requests */
	is_int(req(&e, 99, 0, e.buf, 512, true, NULL), VIRTIO_BLK_S_UNSUPP,
	       "unknown type: UNSUPP");
	is_int(req(&e, VIRTIO_BLK_T_GET_LIFETIME, 0, e.buf, 8, true, NULL),
	       VIRTIO_BLK_S_UNSUPP, "GET_LIFETIME: UNSUPP");
	is_int(req(&e, VIRTIO_BLK_T_SECURE_ERASE, 0, e.buf, 16, false, NULL),
	       VIRTIO_BLK_S_UNSUPP, "SECURE_ERASE: UNSUPP");

	/* discard / write-zeroes segments */
	put_seg(&e, e.buf, 0, DZ_SECTORS_MAX + 8, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_IOERR,
	       "num_sectors above the maximum: IOERR");
	put_seg(&e, e.buf, cap - 8, 16, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_IOERR,
	       "segment across the end: IOERR");
	put_seg(&e, e.buf, UINT64_MAX / 256, 8, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 1), VIRTIO_BLK_S_IOERR,
	       "segment sector overflowing: IOERR");
	put_seg(&e, e.buf, 0, 8, 0);
	put_seg(&e, e.buf + 16, cap, 8, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 2), VIRTIO_BLK_S_IOERR,
	       "second segment bad: IOERR");
	ok(file_is_pattern(&e, 0, 4096), "and the first was not run");
	for (i = 0; i < 17; i++)
		put_seg(&e, e.buf + 16 * i, 8 * i, 8, 0);
	is_int(dz(&e, VIRTIO_BLK_T_WRITE_ZEROES, 17), VIRTIO_BLK_S_IOERR,
	       "17 segments (max 16): IOERR");
	ok(file_is_pattern(&e, 0, 17 * 4096), "nothing zeroed");
	put_hdr(&e, e.hdr, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	gpa[0] = e.hdr, len[0] = 16, wr[0] = false;
	gpa[1] = e.buf, len[1] = 8, wr[1] = false;
	gpa[2] = e.st, len[2] = 1, wr[2] = true;
	is_int(run(&e, 3, gpa, len, wr, e.st, NULL), VIRTIO_BLK_S_IOERR,
	       "segment list of 8 bytes: IOERR");
	is_int(run(&e, 2, (uint64_t[]){e.hdr, e.st}, (uint32_t[]){16, 1},
		   (bool[]){false, true}, e.st, NULL),
	       VIRTIO_BLK_S_IOERR, "WRITE_ZEROES without segments: IOERR");

	/* seg_max: 126 data segments are fine, 127 are not (indirect) */
	for (i = 0; i < 2; i++) {
		unsigned nseg = SEG_MAX + i, k;
		uint8_t *t = gp(&e, e.tbl);
		uint64_t a;
		uint32_t l;
		uint16_t fl, nx;

		put_hdr(&e, e.hdr, VIRTIO_BLK_T_IN, 0);
		for (k = 0; k < nseg + 2; k++) {
			a = k == 0	    ? e.hdr
			    : k == nseg + 1 ? e.st
					    : e.buf + 512ull * (k - 1);
			l = k == 0 ? 16 : k == nseg + 1 ? 1 : 512;
			fl = (uint16_t)((k ? VIRTQ_DESC_F_WRITE : 0) |
					(k < nseg + 1 ? VIRTQ_DESC_F_NEXT : 0));
			nx = (uint16_t)(k + 1);
			memcpy(t + 16 * k, &a, 8);
			memcpy(t + 16 * k + 8, &l, 4);
			memcpy(t + 16 * k + 12, &fl, 2);
			memcpy(t + 16 * k + 14, &nx, 2);
		}
		*gp(&e, e.st) = ST_NONE;
		vdrv_desc(&e.d, 0, 0, e.tbl, 16 * (nseg + 2),
			  VIRTQ_DESC_F_INDIRECT, 0);
		vdrv_publish(&e.d, 0, 0, true);
		ok(wait_used(&e, &id, &ulen) && id == 0, "%u segments: done",
		   nseg);
		is_int(*gp(&e, e.st), i ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK,
		       "%u data segments: %s", nseg, i ? "IOERR" : "OK");
	}
	ok(dimg_file_is(e.fd, 0, gp(&e, e.buf), SEG_MAX * 512),
	   "the 126-segment read is right");
	ok(!needs_reset(&e), "none of that needed a reset");

	/* no status byte at all */
	put_hdr(&e, e.hdr, VIRTIO_BLK_T_IN, 0);
	gpa[0] = e.hdr, len[0] = 16, wr[0] = false;
	gpa[1] = e.buf, len[1] = 512, wr[1] = false;
	vdrv_post(&e.d, 0, 2, gpa, len, wr);
	ok(needs_reset(&e), "no writable byte: DEVICE_NEEDS_RESET");
	is_int(vdrv_used(&e.d, 0, &id, &ulen), 0, "and no completion");
	put_hdr(&e, e.hdr, VIRTIO_BLK_T_IN, 0);
	gpa[1] = e.st, len[1] = 1, wr[1] = true;
	vdrv_post(&e.d, 0, 2, gpa, len, wr);
	nanosleep(&(struct timespec){0, 20000000}, NULL);
	is_int(vdrv_used(&e.d, 0, &id, &ulen), 0,
	       "a broken device ignores further requests");
	reinit(&e);
	ok(!needs_reset(&e), "reset clears it");
	is_int(rd(&e, 0, e.buf, 512), VIRTIO_BLK_S_OK, "works after reset");

	/* a zero-length status descriptor counts as none */
	gpa[0] = e.hdr, len[0] = 16, wr[0] = false;
	gpa[1] = e.st, len[1] = 0, wr[1] = true;
	vdrv_post(&e.d, 0, 2, gpa, len, wr);
	ok(needs_reset(&e), "empty writable descriptor: DEVICE_NEEDS_RESET");
	reinit(&e);
	env_free(&e);
}

/*
 * Reset while requests are in flight (after 'delay_us' of I/O):
 * nothing is written to the rings or the buffers' status after it.
 */
static void test_reset_inflight(const char *img, long delay_us)
{
	uint64_t gpa[3];
	uint32_t len[3], id, ulen;
	bool wr[3] = {false, true, true};
	struct timespec ms50 = {0, 50000000};
	uint8_t before_used[8 * QSIZE + 6], before_st[32];
	struct env e;
	unsigned i, done = 0, written = 0;
	uint8_t *used;

	dimg_make(img, IMG_SIZE, dimg_pat);
	env_new(&e, img, NULL);
	drv_init(&e, false, F_ALL);
	used = gp(&e, e.d.q[0].used);
	for (i = 0; i < 32; i++) {
		put_hdr(&e, e.hdr + 16 * i,
			i % 4 ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_FLUSH,
			(uint64_t)i * 256);
		*gp(&e, e.st + i) = ST_NONE;
		gpa[0] = e.hdr + 16 * i, len[0] = 16;
		gpa[1] = e.buf + 131072ull * i, len[1] = 131072;
		gpa[2] = e.st + i, len[2] = 1;
		if (i % 4)
			vdrv_post(&e.d, 0, 3, gpa, len, wr);
		else
			vdrv_post(&e.d, 0, 2, (uint64_t[]){gpa[0], gpa[2]},
				  (uint32_t[]){16, 1}, (bool[]){false, true});
	}
	nanosleep(&(struct timespec){0, delay_us * 1000}, NULL);
	vdrv_status(&e.d, 0); /* returns once in-flight I/O is drained */
	memcpy(before_used, used, sizeof(before_used));
	memcpy(before_st, gp(&e, e.st), sizeof(before_st));
	nanosleep(&ms50, NULL);
	ok(memcmp(before_used, used, sizeof(before_used)) == 0,
	   "no used-ring write after the reset returned");
	ok(memcmp(before_st, gp(&e, e.st), sizeof(before_st)) == 0,
	   "no status byte written after the reset returned");
	while (vdrv_used(&e.d, 0, &id, &ulen))
		done++;
	for (i = 0; i < 32; i++)
		written += before_st[i] != ST_NONE;
	is_int(written, done, "a status byte for each completion, no more");
	diag("%u of 32 completed before the reset (after %ld us)", done,
	     delay_us);
	drv_init(&e, false, F_ALL);
	is_int(rd(&e, 8, e.buf, 4096), VIRTIO_BLK_S_OK,
	       "the device works after the reset");
	ok(dimg_file_is(e.fd, 4096, gp(&e, e.buf), 4096),
	   "with the right data");
	/* and reset on an idle device, twice */
	vdrv_status(&e.d, 0);
	vdrv_status(&e.d, 0);
	drv_init(&e, true, 0xffffffff);
	is_int(rd(&e, 16, e.buf, 512), VIRTIO_BLK_S_OK,
	       "legacy init after modern use works");
	env_free(&e);
}

static void test_config_errors(const char *img)
{
	static const char *const bad_ss[] = {"sectorsize", "1000", NULL};
	char missing[160];
	struct env e;

	ok(env_new(&e, img, bad_ss) != 0, "sectorsize=1000 refused");
	vdrv_machine_free(&e.m);
	close(e.fd);
	snprintf(missing, sizeof(missing), "%s/nope.img", tmpdir);
	memset(&e, 0, sizeof(e));
	{
		const char *kv[] = {"pci.0.3.0.device", "virtio-blk",
				    "pci.0.3.0.path", missing, NULL};

		ok(vdrv_machine_new(&e.m, kv) != 0, "missing image refused");
		vdrv_machine_free(&e.m);
	}
	{
		const char *kv[] = {"pci.0.3.0.device", "virtio-blk", NULL};

		ok(vdrv_machine_new(&e.m, kv) != 0, "no path refused");
		vdrv_machine_free(&e.m);
	}
}

static void test_legacy_opts(void)
{
	const struct devmodel *m = devmodel_find("virtio-blk");
	struct cfg_node *root = cfg_new(), *n;

	ok(m && m->parse_legacy, "virtio-blk model registered");
	if (!m || !root)
		return;
	n = cfg_create(root, "pci.0.3.0");
	is_int(m->parse_legacy(n, "/x/disk.img,ro,ser=ABC,sectorsize=512/4096"),
	       0, "legacy options parsed");
	is_str(cfg_get_raw(n, "path"), "/x/disk.img", "path");
	is_str(cfg_get_raw(n, "ro"), "true", "ro");
	is_str(cfg_get_raw(n, "ser"), "ABC", "ser");
	is_str(cfg_get_raw(n, "sectorsize"), "512/4096", "sectorsize");
	ok(m->parse_legacy(cfg_create(root, "pci.0.4.0"), "/x/d.img,ser") < 0,
	   "bare ser refused");
	ok(cfg_schema_find((const struct cfg_key *const[]){m->keys, NULL},
			   "nocache") != NULL &&
		   cfg_schema_find(
			   (const struct cfg_key *const[]){m->keys, NULL},
			   "ser") != NULL,
	   "schema has the block keys and ser");
	cfg_free(root);
}

int main(void)
{
	char img[128];

	plan_no_plan();
	dimg_tmpdir(tmpdir, sizeof(tmpdir), "t_virtio_blk");
	snprintf(img, sizeof(img), "%s/disk.img", tmpdir);
	if (dimg_make(img, IMG_SIZE, dimg_pat))
		skip_all("cannot create the image");

	test_legacy_opts();
	test_config(img);
	test_rw(img, false);
	test_rw(img, true);
	test_writethrough(img);
	test_get_id(img);
	test_discard_wz(img);
	test_inflight(img);
	test_ro(img);
	test_4k(img);
	test_hostile(img);
	test_reset_inflight(img, 0);
	test_reset_inflight(img, 300);
	test_config_errors(img);

	unlink(img);
	rmdir(tmpdir);
	return done_testing();
}
