/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the qcow2 backend (src/block/qcow2.c) and khyve-img's
 * library side (qcow2.h): creating images and O(1) overlays, info on a
 * chain, read/write patterns (unaligned, multi-iovec, across L2 tables),
 * write-back of metadata (nothing on disk before FLUSH, everything after),
 * discard and write-zeroes reading zeros, the v3 zero flag, backing
 * chains with copy-on-write and relative names, concurrent partial writes
 * to one cluster, compressed clusters freed while reads of them run,
 * refcount-table growth, version 2 and compressed images
 * made by qemu-img (skipped with a reason when it is missing), repair of
 * a dirty image, and hostile images: every malformed header field,
 * unsupported features, loops in the backing chain, corrupt L1/L2/
 * refcount entries and compressed data.  Each refusal must be one error
 * line naming the file (and the feature).
 *
 * Images live in a fresh directory under /var/tmp.  Single-threaded TAP;
 * the block layer's workers only run done() hooks that record.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/blk.h"
#include "block/qcow2.h"
#include "lib/log.h"
#include "tests/tap.h"
#include "tests/unit/blkio.h"

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

static char dir[256];

/* ---- stderr capture ---- */

static char cap_buf[16384];
static int cap_fd = -1, cap_saved = -1;

static void cap_start(void)
{
	char tmpl[] = "/tmp/t_qcow2.cap.XXXXXX";

	fflush(stderr);
	cap_fd = mkstemp(tmpl);
	if (cap_fd < 0)
		abort();
	unlink(tmpl);
	cap_saved = dup(STDERR_FILENO);
	dup2(cap_fd, STDERR_FILENO);
}

static const char *cap_end(void)
{
	ssize_t n;

	fflush(stderr);
	dup2(cap_saved, STDERR_FILENO);
	close(cap_saved);
	lseek(cap_fd, 0, SEEK_SET);
	n = read(cap_fd, cap_buf, sizeof(cap_buf) - 1);
	cap_buf[n > 0 ? n : 0] = '\0';
	close(cap_fd);
	return cap_buf;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void diag_text(const char *s)
{
	const char *nl;

	while (*s) {
		nl = strchr(s, '\n');
		if (!nl)
			nl = s + strlen(s);
		diag("stderr: %.*s", (int)(nl - s), s);
		s = *nl ? nl + 1 : nl;
	}
}

/* One line containing 'a' and 'b' ("" matches anything). */
static bool one_line_with(const char *e, const char *a, const char *b)
{
	return count_lines(e) == 1 && strstr(e, a) && strstr(e, b);
}

#define ok_line(err, a, b, ...)                                                \
	do {                                                                   \
		const char *e_ = (err);                                        \
		if (!ok(one_line_with(e_, (a), (b)), __VA_ARGS__))             \
			diag_text(e_);                                         \
	} while (0)

/* ---- files ---- */

static char *path_of(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		abort();
	return p;
}

static void fill_pattern(uint8_t *p, size_t n, uint64_t off, unsigned salt)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(((off + i) * 131 + salt * 7 +
				  ((off + i) >> 9)) &
				 0xff);
}

/* A raw file of 'size' bytes with pattern 'salt' (0 = sparse zeros). */
static void make_raw(const char *path, uint64_t size, unsigned salt)
{
	uint8_t *buf = malloc(MIB);
	uint64_t off;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || !buf || ftruncate(fd, (off_t)size) < 0)
		abort();
	for (off = 0; salt && off < size; off += MIB) {
		size_t n = size - off < MIB ? (size_t)(size - off) : MIB;

		fill_pattern(buf, n, off, salt);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			abort();
	}
	close(fd);
	free(buf);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void patch(const char *path, uint64_t off, const void *b, size_t n)
{
	int fd = open(path, O_RDWR);

	if (fd < 0 || pwrite(fd, b, n, (off_t)off) != (ssize_t)n)
		abort();
	close(fd);
}

static void patch_be32(const char *path, uint64_t off, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
			(uint8_t)(v >> 8), (uint8_t)v};

	patch(path, off, b, 4);
}

static void patch_be64(const char *path, uint64_t off, uint64_t v)
{
	patch_be32(path, off, (uint32_t)(v >> 32));
	patch_be32(path, off + 4, (uint32_t)v);
}

static uint64_t read_be64(const char *path, uint64_t off)
{
	uint8_t b[8] = {0};
	uint64_t v = 0;
	int fd = open(path, O_RDONLY), i;

	if (fd >= 0) {
		if (pread(fd, b, 8, (off_t)off) != 8)
			memset(b, 0, 8);
		close(fd);
	}
	for (i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

static uint32_t read_be32(const char *path, uint64_t off)
{
	return (uint32_t)(read_be64(path, off) >> 32);
}

static int create(const char *path, uint64_t size, const char *backing,
		  const char *bfmt, unsigned cb)
{
	struct qcow2_create_opts o;

	memset(&o, 0, sizeof(o));
	o.size = size;
	o.backing = backing;
	o.backing_fmt = bfmt;
	o.cluster_bits = cb;
	return qcow2_create(path, &o);
}

/* ---- block requests ---- */

struct sync_req {
	struct blk_req req;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool done;
	int err;
};

static void sync_done(struct blk_req *r, int err)
{
	struct sync_req *s = r->opaque;

	pthread_mutex_lock(&s->lock);
	s->err = err;
	s->done = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->lock);
}

static int run_iov(struct blk *b, enum blk_op op, uint64_t off,
		   struct iovec *iov, unsigned cnt, uint64_t len)
{
	struct sync_req s;
	int rc;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cv, NULL);
	s.req.op = op;
	s.req.offset = off;
	s.req.len = len;
	s.req.iov = iov;
	s.req.iovcnt = cnt;
	s.req.done = sync_done;
	s.req.opaque = &s;
	rc = blk_submit(b, &s.req);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s.lock);
	while (!s.done)
		pthread_cond_wait(&s.cv, &s.lock);
	pthread_mutex_unlock(&s.lock);
	return s.err;
}

static int run_buf(struct blk *b, enum blk_op op, uint64_t off, void *buf,
		   uint64_t len)
{
	struct iovec v = {.iov_base = buf, .iov_len = (size_t)len};

	if (op == BLK_READ || op == BLK_WRITE)
		return run_iov(b, op, off, &v, 1, len);
	return run_iov(b, op, off, NULL, 0, len);
}

/* Open expecting failure: returns rc, the captured text in *err. */
static int open_fail(const char *path, bool ro, const char **err)
{
	struct blk_opts o;
	struct blk *b = NULL;
	int rc;

	memset(&o, 0, sizeof(o));
	o.path = path;
	o.ro = ro;
	o.format = "qcow2";
	cap_start();
	rc = blk_open(&o, 2, &b);
	*err = cap_end();
	if (rc == 0)
		blk_close(b);
	return rc;
}

/* Reads [off, off+len) and compares with pattern 'salt' (0 = zeros). */
static bool reads_pattern(struct blk *b, uint64_t off, uint64_t len,
			  unsigned salt)
{
	uint8_t *got = malloc((size_t)len), *want = malloc((size_t)len);
	bool same;

	if (!got || !want)
		abort();
	if (salt)
		fill_pattern(want, (size_t)len, off, salt);
	else
		memset(want, 0, (size_t)len);
	same = run_buf(b, BLK_READ, off, got, len) == 0 &&
	       memcmp(got, want, (size_t)len) == 0;
	free(got);
	free(want);
	return same;
}

static int write_pattern(struct blk *b, uint64_t off, uint64_t len,
			 unsigned salt)
{
	uint8_t *p = malloc((size_t)len);
	int rc;

	if (!p)
		abort();
	fill_pattern(p, (size_t)len, off, salt);
	rc = run_buf(b, BLK_WRITE, off, p, len);
	free(p);
	return rc;
}

static void check_clean(const char *path, const char *what)
{
	struct qcow2_check_result r;

	is_int(qcow2_check(path, false, &r), 0, "%s: check runs", what);
	ok(r.errors == 0 && r.leaks == 0,
	   "%s: refcounts exact (%llu errors, "
	   "%llu leaks)",
	   what, (unsigned long long)r.errors, (unsigned long long)r.leaks);
}

static bool have_qemu_img(void)
{
	return system("qemu-img --version >/dev/null 2>&1") == 0;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* ---- create and info ---- */

static void test_create_info(void)
{
	char *b1 = path_of("base1g.raw"), *b100 = path_of("base100g.raw");
	char *o1 = path_of("ov1g.qcow2"), *o100 = path_of("ov100g.qcow2");
	char *plain = path_of("plain.qcow2"), *chain = path_of("chain.qcow2");
	struct qcow2_layer *l;
	unsigned n;
	const char *err;

	make_raw(b1, GIB, 0);
	make_raw(b100, 100 * GIB, 0);
	is_int(create(o1, 0, "base1g.raw", NULL, 0), 0, "create: 1 GiB clone");
	is_int(create(o100, 0, "base100g.raw", "raw", 0), 0,
	       "create: 100 GiB clone");
	is_int(file_size(o1), file_size(o100),
	       "create: clone size does not depend on the base size");
	ok(file_size(o100) <= 256 * KIB, "create: clone is 4 clusters (%llu)",
	   (unsigned long long)file_size(o100));
	is_int(qcow2_info(o100, &l, &n), 0, "info: runs");
	is_int(n, 2, "info: two layers");
	if (n == 2) {
		is_str(l[0].format, "qcow2", "info: top is qcow2");
		is_int(l[0].virtual_size, 100 * GIB, "info: size from base");
		is_int(l[0].cluster_size, 65536, "info: 64 KiB clusters");
		is_int(l[0].version, 3, "info: version 3");
		is_int(l[0].refcount_bits, 16, "info: 16-bit refcounts");
		is_str(l[0].backing, "base100g.raw", "info: backing name");
		is_str(l[0].backing_fmt, "raw", "info: backing format");
		is_str(l[1].format, "raw", "info: base is raw");
		is_str(l[1].path, b100,
		       "info: base resolved next to the image");
	}
	qcow2_info_free(l, n);
	is_str(l ? "" : "", "", "info: freed");

	/* probed backing format recorded */
	is_int(create(chain, 0, "ov1g.qcow2", NULL, 0), 0,
	       "create: clone of a clone");
	is_int(qcow2_info(chain, &l, &n), 0, "info: chain of three");
	is_int(n, 3, "info: three layers");
	if (n == 3)
		is_str(l[0].backing_fmt, "qcow2", "info: probed format stored");
	qcow2_info_free(l, n);

	is_int(create(plain, 10 * GIB + 1, NULL, NULL, 12), 0,
	       "create: plain 4 KiB clusters");
	is_int(qcow2_info(plain, &l, &n), 0, "info: plain");
	if (n == 1) {
		is_int(l[0].virtual_size, 10 * GIB + 512, "info: size rounded");
		is_int(l[0].cluster_size, 4096, "info: cluster size");
		ok(!l[0].backing && !l[0].dirty, "info: no backing, clean");
	}
	qcow2_info_free(l, n);
	check_clean(plain, "create: plain");
	check_clean(o100, "create: clone");

	cap_start();
	is_int(create(plain, 0, NULL, NULL, 0), 0, "create: size 0 allowed");
	is_int(create(plain, GIB, NULL, NULL, 8), -EINVAL,
	       "create: 256-byte clusters refused");
	is_int(create(plain, GIB, "nonexistent.raw", NULL, 0), -ENOENT,
	       "create: missing backing refused");
	is_int(create(plain, GIB, "ov1g.qcow2", "vmdk", 0), -EINVAL,
	       "create: unknown backing format refused");
	is_int(create(plain, GIB, "base1g.raw", "qcow2", 0), -EINVAL,
	       "create: wrong backing format refused");
	is_int(create(o1, 0, "ov1g.qcow2", NULL, 0), -ELOOP,
	       "create: an image as its own backing refused");
	is_int(create(plain, 1ULL << 62, NULL, NULL, 9), -EFBIG,
	       "create: too large for the cluster size");
	err = cap_end();
	is_int(count_lines(err), 6, "create: one line per refusal");
	ok(strstr(err, "nonexistent.raw") && strstr(err, "vmdk") &&
		   strstr(err, "itself"),
	   "create: lines name the problem");

	/* an image in use is not overwritten */
	{
		struct blk *b = bio_open_img(o1, NULL, false);

		cap_start();
		is_int(create(o1, GIB, NULL, NULL, 0), -EBUSY,
		       "create: image in use refused");
		err = cap_end();
		ok_line(err, "in use", o1, "create: in use: one line");
		blk_close(b);
	}
	unlink(b1);
	unlink(b100);
	unlink(o1);
	unlink(o100);
	unlink(plain);
	unlink(chain);
	free(b1);
	free(b100);
	free(o1);
	free(o100);
	free(plain);
	free(chain);
}

/* ---- reads and writes ---- */

static void test_rw_patterns(void)
{
	char *p = path_of("rw.qcow2");
	uint8_t *a, *z;
	struct iovec v[4];
	struct blk *b;
	uint64_t l1, e;
	unsigned i;

	/* 4 KiB clusters: one L2 table covers 2 MiB. */
	is_int(create(p, 64 * MIB, NULL, NULL, 12), 0, "rw: create");
	b = bio_open_img(p, NULL, false);
	ok(b != NULL, "rw: open (probed)");
	if (!b)
		return;
	is_str(blk_format(b), "qcow2", "rw: format qcow2");
	is_int(blk_size(b), 64 * MIB, "rw: size");
	ok(reads_pattern(b, 0, 64 * KIB, 0), "rw: fresh image reads zeros");
	is_int(write_pattern(b, 0, 4096, 1), 0, "rw: write one cluster");
	ok(reads_pattern(b, 0, 4096, 1), "rw: read it back");
	is_int(write_pattern(b, 5000, 3000, 2), 0, "rw: unaligned write");
	ok(reads_pattern(b, 5000, 3000, 2), "rw: unaligned read back");
	ok(reads_pattern(b, 4096, 904, 0) && reads_pattern(b, 8000, 192, 0),
	   "rw: the rest of the cluster stays zero");
	/* across an L2-table boundary (2 MiB) and several clusters */
	is_int(write_pattern(b, 2 * MIB - 10000, 30000, 3), 0,
	       "rw: write across an L2 table boundary");
	ok(reads_pattern(b, 2 * MIB - 10000, 30000, 3),
	   "rw: read across the boundary");
	/* multi-iovec, odd sizes */
	a = malloc(20000);
	z = malloc(20000);
	fill_pattern(a, 20000, 7 * MIB + 123, 4);
	v[0].iov_base = a;
	v[0].iov_len = 1;
	v[1].iov_base = a + 1;
	v[1].iov_len = 9999;
	v[2].iov_base = a + 10000;
	v[2].iov_len = 0;
	v[3].iov_base = a + 10000;
	v[3].iov_len = 10000;
	is_int(run_iov(b, BLK_WRITE, 7 * MIB + 123, v, 4, 20000), 0,
	       "rw: 4-iovec write");
	ok(reads_pattern(b, 7 * MIB + 123, 20000, 4), "rw: 4-iovec read back");
	memset(z, 0xee, 20000);
	v[0].iov_base = z;
	v[1].iov_base = z + 1;
	v[2].iov_base = z + 10000;
	v[3].iov_base = z + 10000;
	is_int(run_iov(b, BLK_READ, 7 * MIB + 123, v, 4, 20000), 0,
	       "rw: 4-iovec read");
	ok(memcmp(a, z, 20000) == 0, "rw: scattered read equal");
	free(a);
	free(z);
	/* the last byte of the image */
	is_int(write_pattern(b, 64 * MIB - 1, 1, 5), 0, "rw: last byte");
	ok(reads_pattern(b, 64 * MIB - 1, 1, 5), "rw: last byte read");
	/* overwrite in place: no new cluster */
	{
		uint64_t before;

		is_int(run_buf(b, BLK_FLUSH, 0, NULL, 0), 0, "rw: flush");
		before = file_size(p);
		is_int(write_pattern(b, 0, 4096, 6), 0, "rw: overwrite");
		is_int(run_buf(b, BLK_FLUSH, 0, NULL, 0), 0, "rw: flush");
		is_int(file_size(p), before, "rw: overwrite stays in place");
		ok(reads_pattern(b, 0, 4096, 6), "rw: overwritten data");
	}

	/* Metadata is written back: L1 on disk empty before FLUSH. */
	is_int(write_pattern(b, 40 * MIB, 4096, 7), 0, "rw: write far away");
	l1 = read_be64(p, 40);
	e = read_be64(p, l1 + 8 * (40 * MIB / (2 * MIB)));
	is_int(e, 0, "rw: new L2 table not on disk before FLUSH");
	is_int(run_buf(b, BLK_FLUSH, 0, NULL, 0), 0, "rw: flush");
	e = read_be64(p, l1 + 8 * (40 * MIB / (2 * MIB)));
	ok(e & (1ULL << 63) && (e & 0x00fffffffffffe00ULL),
	   "rw: L1 entry on disk after FLUSH (COPIED)");
	ok(!(read_be64(p, 72) & 1), "rw: dirty bit clear after the commit");
	blk_close(b);
	check_clean(p, "rw");

	/* everything survives a reopen */
	b = bio_open_img(p, "qcow2", true);
	ok(b != NULL, "rw: reopen read-only");
	if (b) {
		ok(reads_pattern(b, 0, 4096, 6) &&
			   reads_pattern(b, 5000, 3000, 2) &&
			   reads_pattern(b, 2 * MIB - 10000, 30000, 3) &&
			   reads_pattern(b, 7 * MIB + 123, 20000, 4) &&
			   reads_pattern(b, 40 * MIB, 4096, 7),
		   "rw: data after reopen");
		is_int(write_pattern(b, 0, 512, 1), -EROFS,
		       "rw: read-only refuses writes");
		blk_close(b);
	}
	for (i = 0; i < 1; i++)
		unlink(p);
	free(p);
}

/* ---- discard, write-zeroes, zero clusters ---- */

static void test_zeroes(void)
{
	char *base = path_of("zbase.raw"), *p = path_of("z.qcow2");
	struct blk_opts o;
	uint64_t l1, l2, e;
	struct blk *b;

	make_raw(base, 8 * MIB, 9);
	is_int(create(p, 0, "zbase.raw", "raw", 16), 0, "zero: create overlay");
	b = bio_open_img(p, NULL, false);
	ok(b != NULL, "zero: open");
	if (!b)
		return;
	ok(blk_can_discard(b), "zero: discard offered");
	ok(reads_pattern(b, 0, 8 * MIB, 9), "zero: base visible");
	/* discard of an allocated cluster: mapping kept, zeros read */
	is_int(write_pattern(b, 64 * KIB, 64 * KIB, 10), 0,
	       "zero: allocate a cluster");
	is_int(run_buf(b, BLK_DISCARD, 64 * KIB, NULL, 64 * KIB), 0,
	       "zero: discard it");
	ok(reads_pattern(b, 64 * KIB, 64 * KIB, 0), "zero: discarded reads 0");
	/* discard of unallocated clusters over the base: zero flag */
	is_int(run_buf(b, BLK_DISCARD, 1 * MIB, NULL, 256 * KIB), 0,
	       "zero: discard over the base");
	ok(reads_pattern(b, 1 * MIB, 256 * KIB, 0),
	   "zero: reads zeros, not the base");
	ok(reads_pattern(b, 1 * MIB - 4096, 4096, 9) &&
		   reads_pattern(b, 1 * MIB + 256 * KIB, 4096, 9),
	   "zero: neighbours untouched");
	/* partial discard: zeros in the range only */
	is_int(run_buf(b, BLK_DISCARD, 2 * MIB + 1000, NULL, 3000), 0,
	       "zero: partial discard");
	ok(reads_pattern(b, 2 * MIB + 1000, 3000, 0) &&
		   reads_pattern(b, 2 * MIB, 1000, 9) &&
		   reads_pattern(b, 2 * MIB + 4000, 4096, 9),
	   "zero: partial discard is exact");
	/* write-zeroes across allocated and unallocated clusters */
	is_int(write_pattern(b, 3 * MIB, 100 * KIB, 11), 0, "zero: write some");
	is_int(run_buf(b, BLK_WRITE_ZEROES, 3 * MIB - 5000, NULL, 300 * KIB), 0,
	       "zero: write-zeroes");
	ok(reads_pattern(b, 3 * MIB - 5000, 300 * KIB, 0),
	   "zero: write-zeroes reads zeros");
	ok(reads_pattern(b, 3 * MIB - 9096, 4096, 9),
	   "zero: before it the base");
	/* writing into a zero cluster clears the flag */
	is_int(write_pattern(b, 1 * MIB + 4096, 512, 12), 0,
	       "zero: write into a zero cluster");
	ok(reads_pattern(b, 1 * MIB + 4096, 512, 12) &&
		   reads_pattern(b, 1 * MIB, 4096, 0) &&
		   reads_pattern(b, 1 * MIB + 4608, 60 * KIB, 0),
	   "zero: the rest of it stays zero");
	is_int(run_buf(b, BLK_FLUSH, 0, NULL, 0), 0, "zero: flush");
	l1 = read_be64(p, 40);
	l2 = read_be64(p, l1) & 0x00fffffffffffe00ULL;
	e = read_be64(p, l2 + 8 * (1 * MIB / (64 * KIB) + 1));
	is_int(e, 1, "zero: L2 entry is the bare zero flag on disk");
	blk_close(b);
	check_clean(p, "zero");

	/* nodelete: no discard */
	memset(&o, 0, sizeof(o));
	o.path = p;
	o.nodelete = true;
	is_int(blk_open(&o, 1, &b), 0, "zero: open with nodelete");
	ok(!blk_can_discard(b), "zero: nodelete hides discard");
	blk_close(b);
	unlink(p);
	unlink(base);
	free(p);
	free(base);
}

/* ---- backing chains ---- */

static void test_backing(void)
{
	char *base = path_of("b.raw"), *mid = path_of("sub/mid.qcow2");
	char *top = path_of("top.qcow2"), *sub = path_of("sub"), *moved;
	char cwd[PATH_MAX];
	struct blk *b;
	const char *err;

	mkdir(sub, 0755);
	make_raw(base, 3 * MIB, 13);
	/* mid lives in sub/ and names its base "../b.raw" */
	is_int(create(mid, 0, "../b.raw", "raw", 0), 0,
	       "backing: relative name");
	is_int(create(top, 4 * MIB, "sub/mid.qcow2", "qcow2", 0), 0,
	       "backing: top larger than its base");
	if (!getcwd(cwd, sizeof(cwd)) || chdir("/") < 0)
		abort();
	b = bio_open_img(top, NULL, false);
	ok(b != NULL, "backing: chain opens from another directory");
	if (!b) {
		if (chdir(cwd) < 0)
			abort();
		return;
	}
	ok(reads_pattern(b, 0, 3 * MIB, 13), "backing: base read through");
	ok(reads_pattern(b, 3 * MIB, 1 * MIB, 0),
	   "backing: zeros past the base");
	/* COW of a partial cluster */
	is_int(write_pattern(b, 100 * KIB + 1000, 2000, 14), 0,
	       "backing: partial write");
	ok(reads_pattern(b, 64 * KIB, 100 * KIB + 1000 - 64 * KIB, 13) &&
		   reads_pattern(b, 100 * KIB + 1000, 2000, 14) &&
		   reads_pattern(b, 100 * KIB + 3000,
				 128 * KIB - 100 * KIB - 3000, 13),
	   "backing: copy-on-write kept the base around it");
	/* a cluster that straddles the end of the base */
	is_int(write_pattern(b, 3 * MIB - 10, 20, 15), 0,
	       "backing: write across the base's end");
	ok(reads_pattern(b, 3 * MIB - 64 * KIB, 64 * KIB - 10, 13) &&
		   reads_pattern(b, 3 * MIB - 10, 20, 15) &&
		   reads_pattern(b, 3 * MIB + 10, 64 * KIB - 10, 0),
	   "backing: base then zeros around it");
	blk_close(b);
	if (chdir(cwd) < 0)
		abort();
	/* the lower layers never change */
	b = bio_open_img(mid, NULL, true);
	ok(b && reads_pattern(b, 0, 3 * MIB, 13), "backing: mid untouched");
	blk_close(b);
	check_clean(top, "backing: top");
	check_clean(mid, "backing: mid");

	/* the base is missing */
	moved = path_of("b.moved");
	if (rename(base, moved) < 0)
		abort();
	is_int(open_fail(top, false, &err), -ENOENT,
	       "backing: missing base refused");
	ok_line(err, "b.raw", "backing file", "backing: one line, names it");
	if (rename(moved, base) < 0)
		abort();
	free(moved);

	/* loops: top -> mid -> top, and an image naming itself */
	patch(mid, read_be64(mid, 8), "../top.qcow2", 12);
	patch_be32(mid, 16, 12);
	/* an unknown extension type instead of the format: probed */
	patch_be32(mid, 104, 0x11111111);
	is_int(open_fail(top, true, &err), -ELOOP, "backing: loop refused");
	ok_line(err, "loops", "", "backing: loop, one line");
	patch(mid, read_be64(mid, 8), "mid.qcow2", 9);
	patch_be32(mid, 16, 9);
	is_int(open_fail(mid, true, &err), -ELOOP,
	       "backing: self reference refused");
	ok_line(err, "loops", mid, "backing: self, one line");
	/* an unsupported backing format and a protocol name */
	patch_be32(mid, 104, 0xe2792aca);
	patch(mid, 104 + 8, "vmdk\0\0\0\0", 8);
	patch_be32(mid, 104 + 4, 4);
	is_int(open_fail(mid, true, &err), -ENOTSUP,
	       "backing: vmdk backing format refused");
	ok_line(err, "vmdk", "", "backing: names the format");
	patch(mid, read_be64(mid, 8), "nbd://x", 7);
	patch_be32(mid, 16, 7);
	is_int(open_fail(mid, true, &err), -ENOTSUP,
	       "backing: network backing refused");
	ok_line(err, "local files", "", "backing: says why");
	unlink(top);
	unlink(mid);
	unlink(base);
	rmdir(sub);
	free(base);
	free(mid);
	free(top);
	free(sub);
}

/* ---- concurrency in one cluster ---- */

struct part {
	struct blk_req req;
	struct iovec iov;
	uint8_t buf[512];
	int err;
};

static pthread_mutex_t part_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t part_cv = PTHREAD_COND_INITIALIZER;
static unsigned part_left;

static void part_done(struct blk_req *r, int err)
{
	struct part *p = r->opaque;

	pthread_mutex_lock(&part_lock);
	p->err = err;
	part_left--;
	pthread_cond_signal(&part_cv);
	pthread_mutex_unlock(&part_lock);
}

static void test_concurrent_cluster(void)
{
	char *base = path_of("cbase.raw"), *p = path_of("c.qcow2");
	struct part parts[16];
	unsigned round, i, bad = 0, errs = 0;
	struct blk *b;

	make_raw(base, 4 * MIB, 16);
	is_int(create(p, 0, "cbase.raw", "raw", 16), 0, "concurrent: create");
	b = bio_open_img(p, NULL, false);
	ok(b != NULL, "concurrent: open");
	if (!b)
		return;
	/* 16 writers of 512 bytes, 4 KiB apart, in one new cluster each
	 * round: all must land, COW must keep the base in between. */
	for (round = 0; round < 48; round++) {
		uint64_t c = round * 64 * KIB;

		part_left = 16;
		for (i = 0; i < 16; i++) {
			memset(&parts[i], 0, sizeof(parts[i]));
			fill_pattern(parts[i].buf, 512, c + i * 4096, 17);
			parts[i].iov.iov_base = parts[i].buf;
			parts[i].iov.iov_len = 512;
			parts[i].req.op = BLK_WRITE;
			parts[i].req.offset = c + i * 4096;
			parts[i].req.iov = &parts[i].iov;
			parts[i].req.iovcnt = 1;
			parts[i].req.done = part_done;
			parts[i].req.opaque = &parts[i];
			if (blk_submit(b, &parts[i].req) < 0)
				abort();
		}
		pthread_mutex_lock(&part_lock);
		while (part_left)
			pthread_cond_wait(&part_cv, &part_lock);
		pthread_mutex_unlock(&part_lock);
		for (i = 0; i < 16; i++) {
			errs += parts[i].err != 0;
			if (!reads_pattern(b, c + i * 4096, 512, 17) ||
			    !reads_pattern(b, c + i * 4096 + 512, 3584, 16))
				bad++;
		}
	}
	is_int(errs, 0, "concurrent: no errors");
	is_int(bad, 0, "concurrent: every partial write landed, base kept");
	blk_close(b);
	check_clean(p, "concurrent");
	unlink(p);
	unlink(base);
	free(p);
	free(base);
}

/*
 * Partial writes into compressed clusters (COW elsewhere, the old
 * compressed data freed in the commit) while another thread keeps reading
 * the untouched first 4 KiB of the same clusters from the old data.  The
 * reads must always see the old bytes (a freed cluster is not reused
 * while such a read may run), and after every FLUSH the image on disk is
 * complete: dirty bit clear, no leaks (also while the reads go on).
 */
struct comp_reader {
	struct blk *b;
	uint64_t nclusters, seed;
	unsigned bad, reads;
	bool stop;
};

static void *comp_read_loop(void *arg)
{
	struct comp_reader *r = arg;
	uint64_t rng = r->seed, c;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		c = (rng >> 33) % r->nclusters;
		if (!reads_pattern(r->b, c * 64 * KIB, 4096, 31))
			r->bad++;
		r->reads++;
	}
	return NULL;
}

static void test_compressed_frees(void)
{
	char *raw = path_of("cf.raw"), *comp = path_of("cf.qcow2");
	char *snap = path_of("cf.snap");
	struct comp_reader rd[2];
	unsigned i, j, k, dirty = 0, errs = 0, qbad = 0;
	pthread_t t[2];
	struct blk *b;

	if (!have_qemu_img()) {
		ok(1, "# SKIP qemu-img not installed: no compressed image");
		return;
	}
	make_raw(raw, 8 * MIB, 31);
	is_int(sh("qemu-img convert -c -O qcow2 %s %s", raw, comp), 0,
	       "frees: compressed image made");
	b = bio_open_img(comp, NULL, false);
	ok(b != NULL, "frees: open");
	if (!b)
		return;
	memset(rd, 0, sizeof(rd));
	for (j = 0; j < 2; j++) {
		rd[j].b = b;
		rd[j].nclusters = 8 * MIB / (64 * KIB);
		rd[j].seed = 99 + j;
		if (pthread_create(&t[j], NULL, comp_read_loop, &rd[j]) != 0)
			abort();
	}
	for (i = 0; i < rd[0].nclusters; i++) {
		k = (i * 37) % (unsigned)rd[0].nclusters; /* a permutation */
		errs += write_pattern(b, k * 64 * KIB + 8192, 4096, 32) != 0;
		if (i % 2)
			continue;
		errs += run_buf(b, BLK_FLUSH, 0, NULL, 0) != 0;
		dirty += (read_be64(comp, 72) & 1) != 0;
		/* the image is locked: QEMU checks a copy */
		if (i % 64 == 62)
			qbad += sh("cp %s %s && qemu-img check -q %s", comp,
				   snap, snap) != 0;
	}
	for (j = 0; j < 2; j++) {
		__atomic_store_n(&rd[j].stop, true, __ATOMIC_RELEASE);
		pthread_join(t[j], NULL);
	}
	is_int(errs, 0, "frees: writes and flushes succeed");
	ok(rd[0].reads && rd[1].reads && !rd[0].bad && !rd[1].bad,
	   "frees: %u concurrent reads, all of the old data (%u bad)",
	   rd[0].reads + rd[1].reads, rd[0].bad + rd[1].bad);
	is_int(dirty, 0, "frees: the dirty bit is clear after every flush");
	is_int(qbad, 0, "frees: qemu-img check clean between flushes");
	ok(reads_pattern(b, 8192, 4096, 32) && reads_pattern(b, 0, 8192, 31) &&
		   reads_pattern(b, 12288, 64 * KIB - 12288, 31),
	   "frees: COW kept the rest of a cluster");
	blk_close(b);
	check_clean(comp, "frees");
	unlink(raw);
	unlink(comp);
	unlink(snap);
	free(raw);
	free(comp);
	free(snap);
}

/* ---- refcount table growth, repair ---- */

static void test_growth_and_repair(void)
{
	char *p = path_of("g.qcow2");
	struct qcow2_check_result r;
	uint64_t rt_off, rb, c;
	uint32_t rtc;
	struct blk *b;
	uint8_t one[2] = {0, 1};

	/* 512-byte clusters: one refcount-table cluster covers 8 MiB */
	is_int(create(p, 32 * MIB, NULL, NULL, 9), 0, "grow: create");
	rtc = read_be32(p, 56);
	b = bio_open_img(p, NULL, false);
	ok(b != NULL, "grow: open");
	if (!b)
		return;
	for (c = 0; c < 20 * MIB; c += 256 * KIB)
		if (write_pattern(b, c, 256 * KIB, 18))
			break;
	is_int(c, 20 * MIB, "grow: 20 MiB written");
	blk_close(b);
	ok(read_be32(p, 56) > rtc,
	   "grow: refcount table grew (%u -> %u "
	   "clusters)",
	   rtc, read_be32(p, 56));
	check_clean(p, "grow");
	b = bio_open_img(p, NULL, true);
	ok(b && reads_pattern(b, 0, 20 * MIB, 18), "grow: data intact");
	blk_close(b);

	unlink(p);

	/* A leak: 64 KiB clusters, cluster 10 counted but unused. */
	is_int(create(p, 64 * MIB, NULL, NULL, 16), 0, "repair: create");
	b = bio_open_img(p, NULL, false);
	ok(b && write_pattern(b, 0, 128 * KIB, 18) == 0, "repair: some data");
	blk_close(b);
	rt_off = read_be64(p, 48);
	rb = read_be64(p, rt_off);
	c = file_size(p) / 65536;
	patch(p, rb + 2 * (c + 2), one, 2); /* past the end: not counted */
	is_int(qcow2_check(p, false, &r), 0, "repair: check");
	ok(r.leaks == 0 && r.errors == 0,
	   "repair: refcount past the end of the file is no leak");
	if (truncate(p, (off_t)((c + 3) * 65536)) < 0)
		abort();
	is_int(qcow2_check(p, false, &r), 0, "repair: check with a leak");
	ok(r.leaks == 1 && r.errors == 0,
	   "repair: one leak (%llu), no "
	   "errors (%llu)",
	   (unsigned long long)r.leaks, (unsigned long long)r.errors);
	patch_be64(p, 72, 1); /* dirty */
	b = bio_open_img(p, NULL, true);
	ok(b != NULL, "repair: dirty image opens read-only as is");
	blk_close(b);
	is_int(read_be64(p, 72) & 1, 1, "repair: read-only leaves it dirty");
	cap_start();
	b = bio_open_img(p, NULL, false);
	cap_end();
	ok(b != NULL, "repair: read-write open of the dirty image");
	blk_close(b);
	is_int(read_be64(p, 72) & 1, 0, "repair: dirty bit cleared");
	check_clean(p, "repair");
	b = bio_open_img(p, NULL, true);
	ok(b && reads_pattern(b, 0, 128 * KIB, 18), "repair: data intact");
	blk_close(b);
	/* qcow2_check's own repair mode */
	patch(p, rb + 2 * (c + 2), one, 2);
	is_int(qcow2_check(p, true, &r), 0, "repair: check -r");
	ok(r.leaks == 1 && r.leaks_fixed == 1, "repair: check -r fixed it");
	check_clean(p, "repair: after check -r");

	/* a refcount below its references: read-write refused */
	{
		uint8_t zero2[2] = {0, 0};
		const char *err;

		patch(p, rb + 2 * 3, zero2, 2); /* the L1 table's cluster */
		is_int(qcow2_check(p, false, &r), 0, "repair: check error");
		ok(r.errors >= 1, "repair: refcount 0 under the L1 table is "
				  "an error");
		is_int(qcow2_check(p, true, &r), 0, "repair: repair mode runs");
		ok(r.errors >= 1, "repair: errors are not 'fixed'");
		patch_be64(p, 72, 1);
		is_int(open_fail(p, false, &err), -EUCLEAN,
		       "repair: inconsistent dirty image refused read-write");
		ok_line(err, "inconsistent", p, "repair: one line");
		b = bio_open_img(p, NULL, true);
		ok(b && reads_pattern(b, 0, 128 * KIB, 18),
		   "repair: still readable read-only");
		blk_close(b);
	}
	unlink(p);
	free(p);
}

/* ---- hostile images ---- */

struct hostile {
	const char *what;
	unsigned off;	/* header byte */
	unsigned width; /* 4 or 8 */
	uint64_t val;
	int rc;
	const char *msg;
	bool rw_only; /* refused read-write only */
};

static void test_hostile_headers(void)
{
	static const struct hostile cases[] = {
		{"bad magic", 0, 4, 0x514649fa, -EINVAL, "magic", false},
		{"version 1", 4, 4, 1, -ENOTSUP, "version 1", false},
		{"version 4", 4, 4, 4, -ENOTSUP, "version 4", false},
		{"cluster bits 8", 20, 4, 8, -EINVAL, "cluster size", false},
		{"cluster bits 22", 20, 4, 22, -EINVAL, "cluster size", false},
		{"cluster bits huge", 20, 4, 0xffffffff, -EINVAL,
		 "cluster size", false},
		{"AES", 32, 4, 1, -ENOTSUP, "AES encryption", false},
		{"LUKS", 32, 4, 2, -ENOTSUP, "LUKS encryption", false},
		{"huge L1", 36, 4, 0xffffffff, -EINVAL, "L1 table larger",
		 false},
		{"L1 too small", 36, 4, 0, -EINVAL, "L1 table too small",
		 false},
		{"L1 unaligned", 40, 8, 3 * 65536 + 8, -EINVAL,
		 "L1 table offset", false},
		{"L1 past the end", 40, 8, 1ULL << 40, -EINVAL,
		 "L1 table offset", false},
		{"L1 offset overflow", 40, 8, 0xffffffffffff0000ULL, -EINVAL,
		 "L1 table offset", false},
		{"refcount table past the end", 48, 8, 1ULL << 50, -EINVAL,
		 "refcount table offset", false},
		{"refcount table at 0", 48, 8, 0, -EINVAL,
		 "refcount table offset", false},
		{"refcount table empty", 56, 4, 0, -EINVAL,
		 "refcount table size", false},
		{"refcount table huge", 56, 4, 0xffffffff, -EINVAL,
		 "refcount table size", false},
		{"size beyond the L1", 24, 8, 1ULL << 62, -EINVAL,
		 "L1 table too small", false},
		{"too many snapshots", 60, 4, 1000000, -EINVAL, "snapshot",
		 false},
		{"external data file", 72, 8, 4, -ENOTSUP, "external data file",
		 false},
		{"extended L2", 72, 8, 16, -ENOTSUP, "extended L2", false},
		{"unknown incompatible bit", 72, 8, 1ULL << 40, -ENOTSUP,
		 "bit 40", false},
		{"zstd", 72, 8, 8, -ENOTSUP, "compression type 0", false},
		{"corrupt bit", 72, 8, 2, -EROFS, "corrupt", true},
		{"refcount order 7", 96, 4, 7, -EINVAL, "refcount order",
		 false},
		{"header length huge", 100, 4, 0xfffffff8, -EINVAL,
		 "header length", false},
		{"header length short", 100, 4, 72, -EINVAL, "header length",
		 false},
		{"header length odd", 100, 4, 109, -EINVAL, "header length",
		 false},
		{"backing name huge", 16, 4, 5000, -EINVAL,
		 "backing file name length", false},
		{"backing name outside", 8, 8, 65530, -EINVAL,
		 "backing file name offset", false},
		{"backing name in the header", 8, 8, 16, -EINVAL,
		 "backing file name offset", false},
		{"snapshots", 60, 4, 1, -ENOTSUP, "internal snapshots", true},
	};
	char *p = path_of("h.qcow2"), *base = path_of("hbase.raw");
	const char *err;
	unsigned i;
	int rc;

	make_raw(base, 1 * MIB, 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hostile *h = &cases[i];

		if (create(p, 1 * MIB, "hbase.raw", "raw", 16))
			abort();
		if (h->width == 4)
			patch_be32(p, h->off, (uint32_t)h->val);
		else
			patch_be64(p, h->off, h->val);
		rc = open_fail(p, false, &err);
		is_int(rc, h->rc, "hostile: %s refused", h->what);
		ok_line(err, h->msg, p, "hostile: %s: one line naming it",
			h->what);
		rc = open_fail(p, true, &err);
		if (h->rw_only)
			is_int(rc, 0, "hostile: %s: read-only is fine",
			       h->what);
		else
			is_int(rc, h->rc, "hostile: %s: read-only too",
			       h->what);
	}
	/* zstd proper: the feature bit and the type byte */
	create(p, 1 * MIB, NULL, NULL, 16);
	patch_be32(p, 100, 112);
	patch(p, 104, "\x01", 1);
	patch_be64(p, 72, 8);
	is_int(open_fail(p, true, &err), -ENOTSUP, "hostile: zstd refused");
	ok_line(err, "zstd", p, "hostile: zstd named");
	/* unknown bit with a feature-name table naming it */
	create(p, 1 * MIB, NULL, NULL, 16);
	{
		uint8_t ext[8 + 48 + 8];

		memset(ext, 0, sizeof(ext));
		ext[0] = 0x68, ext[1] = 0x03, ext[2] = 0xf8, ext[3] = 0x57;
		ext[7] = 48;
		ext[8] = 0;  /* incompatible */
		ext[9] = 33; /* bit */
		memcpy(ext + 10, "time travel", 11);
		patch(p, 104, ext, sizeof(ext));
		patch_be64(p, 72, 1ULL << 33);
	}
	is_int(open_fail(p, true, &err), -ENOTSUP,
	       "hostile: named unknown feature refused");
	ok_line(err, "time travel", "bit 33", "hostile: feature name shown");
	/* a header extension claiming more bytes than the cluster has */
	create(p, 1 * MIB, NULL, NULL, 16);
	patch_be32(p, 104, 0x12345678);
	patch_be32(p, 108, 0x7ffffff0);
	is_int(open_fail(p, true, &err), -EINVAL,
	       "hostile: huge extension refused");
	ok_line(err, "extension", p, "hostile: extension, one line");
	/* bitmaps: read-only only */
	create(p, 1 * MIB, NULL, NULL, 16);
	patch_be32(p, 104, 0x23852875);
	patch_be32(p, 108, 24);
	patch_be64(p, 88, 1);
	is_int(open_fail(p, false, &err), -ENOTSUP,
	       "hostile: bitmaps refused read-write");
	ok_line(err, "bitmaps", p, "hostile: bitmaps named");
	is_int(open_fail(p, true, &err), 0, "hostile: bitmaps read-only ok");
	/* truncated files */
	make_raw(p, 40, 0);
	patch(p, 0, "QFI\xfb", 4);
	is_int(open_fail(p, true, &err), -EINVAL, "hostile: 40-byte file");
	ok_line(err, "too short", p, "hostile: too short, one line");
	unlink(p);
	unlink(base);
	free(p);
	free(base);
}

/* Bad entries inside the tables: I/O errors, never a crash. */
static void test_hostile_tables(void)
{
	char *p = path_of("t.qcow2");
	uint64_t l1, l2, rt;
	uint8_t buf[4096];
	struct blk *b;
	const char *err;
	int rc;

	create(p, 1 * GIB, NULL, NULL, 16); /* two L1 entries */
	b = bio_open_img(p, NULL, false);
	if (!b)
		abort();
	write_pattern(b, 0, 128 * KIB, 19);
	blk_close(b);
	l1 = read_be64(p, 40);
	l2 = read_be64(p, l1) & 0x00fffffffffffe00ULL;
	rt = read_be64(p, 48);

	struct {
		const char *what;
		uint64_t at, val;
	} cases[] = {
		{"L1 entry past the end", l1, (1ULL << 40) | (1ULL << 63)},
		{"L1 entry unaligned", l1, l2 + 512},
		{"L1 entry reserved bits", l1, l2 | 1},
		{"L1 entry on the refcount table", l1, (1ULL << 63) | rt},
		{"L2 entry past the end", l2, (1ULL << 45) | (1ULL << 63)},
		{"L2 entry unaligned", l2, 0x8000000000010200ULL},
		{"L2 entry on the refcount table", l2, (1ULL << 63) | rt},
		{"L2 entry on the L1 table", l2, (1ULL << 63) | (l1)},
		{"compressed past the end", l2, (1ULL << 62) | (1ULL << 40)},
		{"compressed garbage", l2, (1ULL << 62) | (3 * 65536 + 100)},
	};
	unsigned i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t saved = read_be64(p, cases[i].at);

		patch_be64(p, cases[i].at, cases[i].val);
		b = bio_open_img(p, NULL, false);
		ok(b != NULL, "tables: %s: opens", cases[i].what);
		if (!b)
			continue;
		cap_start();
		rc = run_buf(b, BLK_READ, 0, buf, 4096);
		is_int(rc, -EIO, "tables: %s: read is an I/O error",
		       cases[i].what);
		rc = run_buf(b, BLK_WRITE, 512, buf, 1024);
		is_int(rc, -EIO, "tables: %s: write is an I/O error",
		       cases[i].what);
		rc = run_buf(b, BLK_READ, 600 * MIB, buf, 4096);
		is_int(rc, 0, "tables: %s: other ranges still read",
		       cases[i].what);
		blk_close(b);
		err = cap_end();
		/* warnings are rate-limited per call site: the first case
		 * must print, later ones may be silenced */
		ok(count_lines(err) <= 3 &&
			   (i ? !*err || strstr(err, p) != NULL
			      : count_lines(err) >= 1 && strstr(err, p) &&
					    strstr(err, "corrupt")),
		   "tables: %s: at most a few warnings, naming the file",
		   cases[i].what);
		patch_be64(p, cases[i].at, saved);
	}
	/* a corrupt refcount table entry: allocation fails cleanly */
	{
		uint64_t saved = read_be64(p, rt);

		patch_be64(p, rt, 12345);
		b = bio_open_img(p, NULL, false);
		ok(b != NULL, "tables: bad refcount entry: opens");
		cap_start();
		rc = b ? write_pattern(b, 6 * MIB, 4096, 20) : -1;
		is_int(rc, -EIO,
		       "tables: bad refcount entry: allocating "
		       "write fails");
		rc = b ? write_pattern(b, 0, 4096, 20) : -1;
		is_int(rc, 0, "tables: in-place writes still work");
		blk_close(b);
		err = cap_end();
		ok(strstr(err, "refcount table entry") != NULL,
		   "tables: bad refcount entry: warned");
		patch_be64(p, rt, saved);
	}
	/* two refcount-table entries naming one block */
	{
		uint64_t saved = read_be64(p, rt + 8);

		patch_be64(p, rt + 8, read_be64(p, rt));
		is_int(open_fail(p, false, &err), -EINVAL,
		       "tables: shared refcount block refused read-write");
		ok_line(err, "shared by two", p, "tables: shared block named");
		is_int(open_fail(p, true, &err), 0,
		       "tables: shared refcount block: read-only is fine");
		patch_be64(p, rt + 8, saved);
	}
	check_clean(p, "tables: restored");
	unlink(p);
	free(p);
}

/* O_DIRECT: metadata and data through the aligned and unaligned paths. */
static void test_nocache(void)
{
	char *base = path_of("ncbase.raw"), *p = path_of("nc.qcow2");
	struct blk_opts o;
	struct blk *b = NULL;
	int rc;

	make_raw(base, 4 * MIB, 25);
	is_int(create(p, 0, "ncbase.raw", "raw", 16), 0, "nocache: create");
	memset(&o, 0, sizeof(o));
	o.path = p;
	o.nocache = true;
	cap_start();
	rc = blk_open(&o, 4, &b);
	cap_end();
	if (rc == -EINVAL) {
		ok(1, "# SKIP the file system does not support O_DIRECT");
		goto out;
	}
	is_int(rc, 0, "nocache: open");
	if (rc < 0)
		goto out;
	ok(reads_pattern(b, 0, 4 * MIB, 25), "nocache: base read through");
	is_int(write_pattern(b, 777, 5000, 26), 0, "nocache: unaligned COW");
	is_int(write_pattern(b, 1 * MIB, 256 * KIB, 27), 0,
	       "nocache: aligned clusters");
	is_int(run_buf(b, BLK_FLUSH, 0, NULL, 0), 0, "nocache: flush");
	ok(reads_pattern(b, 0, 777, 25) && reads_pattern(b, 777, 5000, 26) &&
		   reads_pattern(b, 5777, 64 * KIB - 5777, 25) &&
		   reads_pattern(b, 1 * MIB, 256 * KIB, 27),
	   "nocache: data read back");
	blk_close(b);
	check_clean(p, "nocache");
	b = bio_open_img(p, NULL, true);
	ok(b && reads_pattern(b, 777, 5000, 26) &&
		   reads_pattern(b, 1 * MIB, 256 * KIB, 27),
	   "nocache: buffered reopen sees it");
	blk_close(b);
out:
	unlink(p);
	unlink(base);
	free(p);
	free(base);
}

/* ---- images made by qemu-img ---- */

static void test_qemu_images(void)
{
	char *raw = path_of("q.raw"), *v2 = path_of("v2.qcow2");
	char *comp = path_of("comp.qcow2"), *ov = path_of("qov.qcow2");
	struct blk *b;

	if (!have_qemu_img()) {
		ok(1, "# SKIP qemu-img not installed: no v2/compressed images");
		return;
	}
	make_raw(raw, 6 * MIB, 21);
	/* zeros and a hole to compress well */
	{
		uint8_t z[65536] = {0};

		patch(raw, 2 * MIB, z, sizeof(z));
	}
	is_int(sh("qemu-img convert -O qcow2 -o compat=0.10 %s %s", raw, v2), 0,
	       "qemu: v2 image made");
	is_int(read_be32(v2, 4), 2, "qemu: it is version 2");
	b = bio_open_img(v2, NULL, false);
	ok(b && reads_pattern(b, 0, 2 * MIB, 21) &&
		   reads_pattern(b, 2 * MIB, 64 * KIB, 0) &&
		   reads_pattern(b, 2 * MIB + 64 * KIB, 4 * MIB - 64 * KIB, 21),
	   "qemu: v2 reads equal the raw image");
	is_int(b ? write_pattern(b, 5000, 70000, 22) : -1, 0,
	       "qemu: v2 written");
	is_int(b ? run_buf(b, BLK_DISCARD, 1 * MIB, NULL, 128 * KIB) : -1, 0,
	       "qemu: v2 discard (no zero flag)");
	ok(b && reads_pattern(b, 1 * MIB, 128 * KIB, 0),
	   "qemu: v2 discard reads zeros");
	blk_close(b);
	is_int(sh("qemu-img check -q %s", v2), 0, "qemu: v2 passes its check");

	is_int(sh("qemu-img convert -c -O qcow2 %s %s", raw, comp), 0,
	       "qemu: compressed image made");
	b = bio_open_img(comp, NULL, false);
	ok(b && reads_pattern(b, 0, 2 * MIB, 21) &&
		   reads_pattern(b, 2 * MIB, 64 * KIB, 0) &&
		   reads_pattern(b, 3 * MIB + 777, 3 * MIB - 777, 21),
	   "qemu: compressed clusters read");
	/* partial writes into compressed clusters: decompress, COW, free */
	is_int(b ? write_pattern(b, 100000, 3000, 23) : -1, 0,
	       "qemu: write into a compressed cluster");
	ok(b && reads_pattern(b, 65536, 100000 - 65536, 21) &&
		   reads_pattern(b, 100000, 3000, 23) &&
		   reads_pattern(b, 103000, 131072 - 103000, 21),
	   "qemu: compressed COW kept the rest");
	is_int(b ? run_buf(b, BLK_DISCARD, 4 * MIB, NULL, 256 * KIB) : -1, 0,
	       "qemu: discard compressed clusters");
	ok(b && reads_pattern(b, 4 * MIB, 256 * KIB, 0),
	   "qemu: discarded compressed reads zeros");
	blk_close(b);
	check_clean(comp, "qemu: compressed after writes");
	is_int(sh("qemu-img check -q %s", comp), 0,
	       "qemu: compressed image passes its check");

	/* an overlay made by qemu-img on our-written compressed image */
	is_int(sh("qemu-img create -q -f qcow2 -b comp.qcow2 -F qcow2 %s", ov),
	       0, "qemu: qemu-made overlay");
	b = bio_open_img(ov, NULL, false);
	ok(b && reads_pattern(b, 100000, 3000, 23) &&
		   reads_pattern(b, 0, 65536, 21),
	   "qemu: qemu overlay reads");
	is_int(b ? write_pattern(b, 1 * MIB + 5, 10, 24) : -1, 0,
	       "qemu: write the qemu overlay");
	blk_close(b);
	is_int(sh("qemu-img check -q %s", ov), 0,
	       "qemu: qemu overlay passes its check");
	unlink(raw);
	unlink(v2);
	unlink(comp);
	unlink(ov);
	free(raw);
	free(v2);
	free(comp);
	free(ov);
}

int main(void)
{
	plan_no_plan();
	log_init("t_qcow2");
	snprintf(dir, sizeof(dir), "/var/tmp/t_qcow2.%d", (int)getpid());
	if (mkdir(dir, 0755) < 0)
		skip_all("cannot make a directory in /var/tmp");
	test_create_info();
	test_rw_patterns();
	test_zeroes();
	test_backing();
	test_concurrent_cluster();
	test_compressed_frees();
	test_growth_and_repair();
	test_hostile_headers();
	test_hostile_tables();
	test_nocache();
	test_qemu_images();
	if (sh("rm -rf %s", dir) != 0)
		diag("could not remove %s", dir);
	return done_testing();
}
