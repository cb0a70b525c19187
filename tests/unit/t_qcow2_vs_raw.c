/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The qcow2 differential test: the same fixed-seed stream of random
 * writes, reads, discards, write-zeroes and flushes goes to a qcow2 image
 * and to a raw image through blk_open()/blk_submit(), with up to QD
 * requests in flight on each (the block layer orders overlapping ones the
 * same way for both), every read is compared, and at the end (and after a
 * reopen and more traffic) the whole contents are compared and the qcow2
 * refcounts recounted with qcow2_check().  Scenarios: no backing file;
 * overlay on a raw image; overlay on a qcow2 overlay (a chain); 512-byte
 * clusters (many L2 tables and refcount blocks, refcount-table growth);
 * 2 MiB clusters; a version 2 image.
 *
 * Images live in /var/tmp (kept when T_QCOW2_KEEP is set).  TAP calls come from
 * the main thread only; done() hooks only count completions and record errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/blk.h"
#include "block/qcow2.h"
#include "lib/log.h"
#include "tests/tap.h"
#include "tests/unit/blkio.h"

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define TMPDIR "/var/tmp"
#define QD 16
#define MAXLEN (256 * KIB)

/* ---- random data (fixed seeds) ---- */

static void rng_fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(bio_rng() >> 24);
}

/* ---- images ---- */

static unsigned scenario_no;

static char *tmp_path(const char *tag)
{
	char *p;

	if (asprintf(&p, TMPDIR "/t_q2vr.%d.%u.%s", (int)getpid(), scenario_no,
		     tag) < 0)
		abort();
	unlink(p);
	return p;
}

static void make_raw(const char *path, uint64_t size, bool random_fill)
{
	uint8_t *buf = malloc(MIB);
	uint64_t off;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || !buf || ftruncate(fd, (off_t)size) < 0)
		abort();
	for (off = 0; random_fill && off < size; off += MIB) {
		size_t n = size - off < MIB ? (size_t)(size - off) : MIB;

		rng_fill(buf, n);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
			abort();
	}
	close(fd);
	free(buf);
}

static void copy_file(const char *from, const char *to)
{
	uint8_t *buf = malloc(MIB);
	int a = open(from, O_RDONLY),
	    b = open(to, O_RDWR | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	if (a < 0 || b < 0 || !buf)
		abort();
	while ((n = read(a, buf, MIB)) > 0) {
		if (write(b, buf, (size_t)n) != n)
			abort();
	}
	close(a);
	close(b);
	free(buf);
}

/* ---- the random stream ---- */

struct stats {
	unsigned ops, reads, mismatches, errors;
};

/* Pick an offset/length: mostly aligned, sometimes not, sometimes near
 * cluster and L2-table boundaries. */
static void pick_range(uint64_t size, uint64_t cs, uint64_t *off, uint64_t *len)
{
	uint64_t l = 512 * (1 + bio_rng_below(MAXLEN / 512));
	uint64_t o, span = cs * (cs / 8);

	switch (bio_rng_below(4)) {
	case 0: /* around an L2-table boundary */
		o = span * bio_rng_below(size / span + 1);
		o = o > l / 2 ? o - l / 2 : 0;
		break;
	case 1: /* cluster aligned */
		o = cs * bio_rng_below(size / cs);
		break;
	case 2: /* odd bytes */
		o = bio_rng_below(size);
		l = 1 + bio_rng_below(3 * cs);
		break;
	default:
		o = 512 * bio_rng_below(size / 512);
	}
	if (l > MAXLEN)
		l = MAXLEN;
	if (o >= size)
		o = size - 512;
	if (l > size - o)
		l = size - o;
	*off = o;
	*len = l;
}

/*
 * 'nops' random operations on both images, QD at a time.  Reads of the
 * two images are compared when the batch completes.
 */
static void stream(struct blk *q, struct blk *r, uint64_t size, uint64_t cs,
		   unsigned nops, struct stats *st)
{
	struct bio_io qio[QD], rio[QD];
	struct bio_waiter wq, wr;
	unsigned i, n, k;
	uint64_t off, len;
	enum blk_op op;

	bio_waiter_init(&wq);
	bio_waiter_init(&wr);
	for (i = 0; i < nops; i += n) {
		n = 1 + (unsigned)bio_rng_below(QD);
		if (n > nops - i)
			n = nops - i;
		for (k = 0; k < n; k++) {
			unsigned p = (unsigned)bio_rng_below(100);

			op = p < 55   ? BLK_WRITE
			     : p < 75 ? BLK_READ
			     : p < 85 ? BLK_DISCARD
			     : p < 93 ? BLK_WRITE_ZEROES
				      : BLK_FLUSH;
			pick_range(size, cs, &off, &len);
			memset(&qio[k], 0, sizeof(qio[k]));
			memset(&rio[k], 0, sizeof(rio[k]));
			qio[k].req.op = rio[k].req.op = op;
			qio[k].req.offset = rio[k].req.offset = off;
			qio[k].req.len = rio[k].req.len = len;
			if (op == BLK_READ || op == BLK_WRITE) {
				size_t a = (size_t)(len / 3),
				       b2 = (size_t)(len / 3);

				qio[k].buf = malloc((size_t)len);
				rio[k].buf = malloc((size_t)len);
				if (!qio[k].buf || !rio[k].buf)
					abort();
				if (op == BLK_WRITE) {
					rng_fill(qio[k].buf, (size_t)len);
					memcpy(rio[k].buf, qio[k].buf,
					       (size_t)len);
				}
				/* three iovecs of odd sizes */
				qio[k].iov[0].iov_base = qio[k].buf;
				qio[k].iov[0].iov_len = a;
				qio[k].iov[1].iov_base = qio[k].buf + a;
				qio[k].iov[1].iov_len = b2;
				qio[k].iov[2].iov_base = qio[k].buf + a + b2;
				qio[k].iov[2].iov_len = (size_t)len - a - b2;
				rio[k].iov[0].iov_base = rio[k].buf;
				rio[k].iov[0].iov_len = (size_t)len;
				qio[k].req.iov = qio[k].iov;
				qio[k].req.iovcnt = 3;
				rio[k].req.iov = rio[k].iov;
				rio[k].req.iovcnt = 1;
			}
			if (bio_submit(q, &qio[k], &wq) < 0 ||
			    bio_submit(r, &rio[k], &wr) < 0)
				st->errors++;
		}
		bio_wait_all(&wq);
		bio_wait_all(&wr);
		for (k = 0; k < n; k++) {
			st->ops++;
			if (qio[k].err || rio[k].err) {
				if (st->errors++ < 5)
					diag("op %u (%d @%llu+%llu): qcow2 %d "
					     "raw %d",
					     st->ops, qio[k].req.op,
					     (unsigned long long)qio[k]
						     .req.offset,
					     (unsigned long long)qio[k].req.len,
					     qio[k].err, rio[k].err);
			}
			if (qio[k].req.op == BLK_READ) {
				st->reads++;
				if (memcmp(qio[k].buf, rio[k].buf,
					   (size_t)qio[k].req.len) &&
				    st->mismatches++ < 5)
					diag("read %llu+%llu differs",
					     (unsigned long long)qio[k]
						     .req.offset,
					     (unsigned long long)qio[k]
						     .req.len);
			}
			free(qio[k].buf);
			free(rio[k].buf);
		}
	}
}

/* Compare the whole contents; returns the first differing offset or
 * UINT64_MAX. */
static uint64_t compare_all(struct blk *q, struct blk *r, uint64_t size)
{
	uint8_t *a = malloc(MIB), *b = malloc(MIB);
	uint64_t off, len, i, bad = UINT64_MAX;

	if (!a || !b)
		abort();
	for (off = 0; off < size && bad == UINT64_MAX; off += len) {
		len = size - off < MIB ? size - off : MIB;
		if (bio_run_one(q, BLK_READ, off, a, len) ||
		    bio_run_one(r, BLK_READ, off, b, len)) {
			bad = off;
			break;
		}
		if (memcmp(a, b, (size_t)len)) {
			for (i = 0; i < len && a[i] == b[i]; i++)
				;
			bad = off + i;
		}
	}
	free(a);
	free(b);
	return bad;
}

static void check_refcounts(const char *path, const char *name)
{
	struct qcow2_check_result res;
	int rc = qcow2_check(path, false, &res);

	is_int(rc, 0, "%s: qcow2_check runs", name);
	is_int(res.errors, 0, "%s: no refcount errors", name);
	is_int(res.leaks, 0, "%s: no leaked clusters", name);
}

struct scenario {
	const char *name;
	uint64_t size;
	unsigned cluster_bits;
	int backing; /* 0 none, 1 raw, 2 qcow2 over raw */
	bool v2;
	unsigned nops;
};

/* Turn a fresh version 3 image (no header extensions) into version 2:
 * the v2 extension area at byte 72 then starts with a zero (end) type. */
static void make_v2(const char *path)
{
	uint8_t v[4] = {0, 0, 0, 2};
	int fd = open(path, O_RDWR);

	if (fd < 0 || pwrite(fd, v, 4, 4) != 4)
		abort();
	close(fd);
}

static void run_scenario(const struct scenario *sc, uint64_t seed)
{
	char *qp = tmp_path("qcow2"), *rp = tmp_path("raw");
	char *bp = tmp_path("base.raw"), *mp = tmp_path("mid.qcow2");
	struct qcow2_create_opts co;
	struct stats st;
	struct blk *q, *r, *mid;
	uint64_t bad;
	const char *n = sc->name;

	bio_rng_state = seed;
	memset(&co, 0, sizeof(co));
	co.size = sc->size;
	co.cluster_bits = sc->cluster_bits;
	if (sc->backing) {
		make_raw(bp, sc->size, true);
		copy_file(bp, rp);
		co.backing = bp + sizeof(TMPDIR); /* relative */
		co.backing_fmt = "raw";
	} else {
		make_raw(rp, sc->size, false);
	}
	if (sc->backing == 2) {
		/* base.raw <- mid.qcow2 (with data) <- top */
		is_int(qcow2_create(mp, &co), 0, "%s: create the middle", n);
		mid = bio_open_img(mp, "qcow2", false);
		r = bio_open_img(rp, "raw", false);
		ok(mid && r, "%s: open middle and raw", n);
		if (!mid || !r)
			goto out;
		memset(&st, 0, sizeof(st));
		stream(mid, r, sc->size, 1ULL << (sc->cluster_bits ?: 16),
		       sc->nops / 2, &st);
		is_int(st.errors + st.mismatches, 0, "%s: middle layer traffic",
		       n);
		blk_close(mid);
		blk_close(r);
		co.backing = mp + sizeof(TMPDIR);
		co.backing_fmt = NULL; /* probed */
	}
	is_int(qcow2_create(qp, &co), 0, "%s: create", n);
	if (sc->v2)
		make_v2(qp);
	q = bio_open_img(qp, NULL, false);
	r = bio_open_img(rp, "raw", false);
	ok(q && r, "%s: open both", n);
	if (!q || !r)
		goto out;
	is_str(blk_format(q), "qcow2", "%s: probed as qcow2", n);
	is_int(blk_size(q), (sc->size + 511) & ~511ULL, "%s: size", n);
	ok(blk_can_discard(q), "%s: discard offered", n);

	memset(&st, 0, sizeof(st));
	stream(q, r, sc->size, 1ULL << (sc->cluster_bits ?: 16), sc->nops, &st);
	is_int(st.errors, 0, "%s: %u ops without error", n, st.ops);
	is_int(st.mismatches, 0, "%s: %u reads equal", n, st.reads);
	bad = compare_all(q, r, sc->size);
	ok(bad == UINT64_MAX, "%s: whole contents equal (first diff %llu)", n,
	   (unsigned long long)bad);
	blk_close(q);
	blk_close(r);
	check_refcounts(qp, n);

	/* Reopen: the metadata comes from disk now; more traffic. */
	q = bio_open_img(qp, "qcow2", false);
	r = bio_open_img(rp, "raw", false);
	ok(q && r, "%s: reopen", n);
	if (!q || !r)
		goto out;
	bad = compare_all(q, r, sc->size);
	ok(bad == UINT64_MAX, "%s: equal after reopen (first diff %llu)", n,
	   (unsigned long long)bad);
	memset(&st, 0, sizeof(st));
	stream(q, r, sc->size, 1ULL << (sc->cluster_bits ?: 16), sc->nops / 2,
	       &st);
	is_int(st.errors + st.mismatches, 0, "%s: more traffic", n);
	bad = compare_all(q, r, sc->size);
	ok(bad == UINT64_MAX, "%s: equal at the end (first diff %llu)", n,
	   (unsigned long long)bad);
	blk_close(q);
	blk_close(r);
	check_refcounts(qp, n);
out:
	if (getenv("T_QCOW2_KEEP")) { /* for debugging with qemu-img */
		diag("kept %s %s %s %s", qp, rp, bp, mp);
	} else {
		unlink(qp);
		unlink(rp);
		unlink(bp);
		unlink(mp);
	}
	free(qp);
	free(rp);
	free(bp);
	free(mp);
}

int main(void)
{
	static const struct scenario scs[] = {
		{"plain", 640 * MIB, 0, 0, false, 3000},
		{"raw backing", 96 * MIB + 512, 0, 1, false, 3000},
		{"chain", 80 * MIB, 0, 2, false, 2000},
		{"512B clusters", 24 * MIB, 9, 1, false, 3000},
		{"2MiB clusters", 160 * MIB, 21, 1, false, 1000},
		{"version 2", 64 * MIB, 0, 1, true, 2000},
		{"v2 no backing", 48 * MIB, 12, 0, true, 2000},
	};
	unsigned i;

	plan_no_plan();
	log_init("t_qcow2_vs_raw");
	for (i = 0; i < sizeof(scs) / sizeof(scs[0]); i++) {
		scenario_no = i;
		run_scenario(&scs[i], 0x9e3779b97f4a7c15ULL * (i + 1));
	}
	return done_testing();
}
