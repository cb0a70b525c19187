/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Host-side block-layer benchmark (bench/clone.sh): read rates of an image
 * through blk_open()/blk_submit(), the path a virtio-blk device takes,
 * without a guest.
 *
 *   blk_rate read IMAGE rand4k|seq1m SECONDS [QD]
 *       after one full sequential pass (warms the page cache and the qcow2
 *       L2 cache), keep QD requests in flight for SECONDS; prints
 *       "ops=N bytes=N secs=S iops=X mbps=Y cpu_us_per_op=Z" on stdout
 *       (Z: user + system CPU time of all threads per request, which
 *       other load on the machine disturbs much less than the rates).
 *   blk_rate copy SRC DST
 *       copy SRC's contents into the image DST (same size or larger) with
 *       1 MiB writes, then flush: a qcow2 laid out the way a guest fills
 *       it.
 *
 * The format is probed (raw or qcow2).  Threads: main, plus the block
 * layer's workers, whose done() hooks resubmit under a mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "block/blk.h"
#include "lib/log.h"

#define MIB (1024 * 1024ULL)
#define MAX_QD 128

struct ctx;

struct rq {
	struct blk_req req;
	struct iovec iov;
	struct ctx *c;
	void *buf;
};

struct ctx {
	struct blk *b;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	uint64_t size, bs, next_seq, ops, bytes, rng;
	unsigned inflight;
	int err;
	bool random, stop;
};

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU seconds (user + system) of the whole process so far. */
static double cpu_secs(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static struct blk *open_img(const char *path)
{
	struct blk_opts o;
	struct blk *b = NULL;

	memset(&o, 0, sizeof(o));
	o.path = path;
	return blk_open(&o, 0, &b) < 0 ? NULL : b;
}

/* Under c->lock: the next offset. */
static uint64_t next_off(struct ctx *c)
{
	uint64_t n = c->size / c->bs, off;

	if (c->random) {
		c->rng ^= c->rng << 13;
		c->rng ^= c->rng >> 7;
		c->rng ^= c->rng << 17;
		return (c->rng % n) * c->bs;
	}
	off = c->next_seq;
	c->next_seq = (c->next_seq + c->bs) % (n * c->bs);
	return off;
}

static void rq_done(struct blk_req *r, int err)
{
	struct rq *q = r->opaque;
	struct ctx *c = q->c;

	pthread_mutex_lock(&c->lock);
	if (err && !c->err)
		c->err = err;
	c->ops++;
	c->bytes += r->len;
	if (c->stop || c->err) {
		c->inflight--;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	r->offset = next_off(c);
	pthread_mutex_unlock(&c->lock);
	if (blk_submit(c->b, r) < 0) {
		pthread_mutex_lock(&c->lock);
		c->err = -EIO;
		c->inflight--;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->lock);
	}
}

static int sync_rw(struct blk *b, enum blk_op op, uint64_t off, void *buf,
		   uint64_t len);

static int cmd_read(const char *path, const char *mode, double secs,
		    unsigned qd)
{
	struct ctx c;
	struct rq *rqs;
	double t0, t1, c0, c1;
	uint64_t off;
	void *buf;
	unsigned i;

	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cv, NULL);
	c.random = strcmp(mode, "rand4k") == 0;
	c.bs = c.random ? 4096 : MIB;
	c.rng = 0x2545f4914f6cdd1dULL;
	if (qd < 1 || qd > MAX_QD)
		qd = 32;
	c.b = open_img(path);
	if (!c.b)
		return 1;
	c.size = blk_size(c.b);
	if (c.size < MIB) {
		fprintf(stderr, "%s: too small\n", path);
		return 1;
	}
	/* warm-up: one sequential pass */
	buf = malloc(MIB);
	for (off = 0; buf && off + MIB <= c.size; off += MIB) {
		if (sync_rw(c.b, BLK_READ, off, buf, MIB) < 0) {
			fprintf(stderr, "%s: read error\n", path);
			return 1;
		}
	}
	free(buf);
	rqs = calloc(qd, sizeof(*rqs));
	if (!rqs)
		return 1;
	t0 = now();
	c0 = cpu_secs();
	pthread_mutex_lock(&c.lock);
	for (i = 0; i < qd; i++) {
		rqs[i].c = &c;
		rqs[i].buf = aligned_alloc(4096, c.bs);
		rqs[i].iov.iov_base = rqs[i].buf;
		rqs[i].iov.iov_len = c.bs;
		rqs[i].req.op = BLK_READ;
		rqs[i].req.iov = &rqs[i].iov;
		rqs[i].req.iovcnt = 1;
		rqs[i].req.done = rq_done;
		rqs[i].req.opaque = &rqs[i];
		rqs[i].req.offset = next_off(&c);
		c.inflight++;
	}
	pthread_mutex_unlock(&c.lock);
	for (i = 0; i < qd; i++) {
		if (blk_submit(c.b, &rqs[i].req) < 0)
			return 1;
	}
	while (now() - t0 < secs) {
		struct timespec ts = {0, 20 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&c.lock);
	c.stop = true;
	while (c.inflight)
		pthread_cond_wait(&c.cv, &c.lock);
	pthread_mutex_unlock(&c.lock);
	t1 = now();
	c1 = cpu_secs();
	blk_close(c.b);
	if (c.err) {
		fprintf(stderr, "%s: I/O error %d\n", path, c.err);
		return 1;
	}
	printf("ops=%llu bytes=%llu secs=%.3f iops=%.0f mbps=%.1f "
	       "cpu_us_per_op=%.3f\n",
	       (unsigned long long)c.ops, (unsigned long long)c.bytes, t1 - t0,
	       (double)c.ops / (t1 - t0), (double)c.bytes / (t1 - t0) / 1e6,
	       (c1 - c0) * 1e6 / (double)c.ops);
	for (i = 0; i < qd; i++)
		free(rqs[i].buf);
	free(rqs);
	return 0;
}

/* ---- synchronous requests ---- */

struct one {
	struct blk_req req;
	struct iovec iov;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool done;
	int err;
};

static void one_done(struct blk_req *r, int err)
{
	struct one *o = r->opaque;

	pthread_mutex_lock(&o->lock);
	o->err = err;
	o->done = true;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->lock);
}

static int sync_rw(struct blk *b, enum blk_op op, uint64_t off, void *buf,
		   uint64_t len)
{
	struct one o;
	int rc;

	memset(&o, 0, sizeof(o));
	pthread_mutex_init(&o.lock, NULL);
	pthread_cond_init(&o.cv, NULL);
	o.iov.iov_base = buf;
	o.iov.iov_len = len;
	o.req.op = op;
	o.req.offset = off;
	if (buf) {
		o.req.iov = &o.iov;
		o.req.iovcnt = 1;
	}
	o.req.done = one_done;
	o.req.opaque = &o;
	rc = blk_submit(b, &o.req);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&o.lock);
	while (!o.done)
		pthread_cond_wait(&o.cv, &o.lock);
	pthread_mutex_unlock(&o.lock);
	return o.err;
}

static int cmd_copy(const char *src, const char *dst)
{
	struct blk *s = open_img(src), *d = open_img(dst);
	uint64_t off, len, size;
	void *buf = aligned_alloc(4096, MIB);

	if (!s || !d || !buf)
		return 1;
	size = blk_size(s);
	if (blk_size(d) < size) {
		fprintf(stderr, "%s: smaller than %s\n", dst, src);
		return 1;
	}
	for (off = 0; off < size; off += len) {
		len = size - off < MIB ? size - off : MIB;
		if (sync_rw(s, BLK_READ, off, buf, len) < 0 ||
		    sync_rw(d, BLK_WRITE, off, buf, len) < 0) {
			fprintf(stderr, "copy failed at %llu\n",
				(unsigned long long)off);
			return 1;
		}
	}
	if (sync_rw(d, BLK_FLUSH, 0, NULL, 0) < 0)
		return 1;
	blk_close(s);
	blk_close(d);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	log_init("blk_rate");
	if (argc >= 5 && !strcmp(argv[1], "read"))
		return cmd_read(argv[2], argv[3], atof(argv[4]),
				argc > 5 ? (unsigned)atoi(argv[5]) : 32);
	if (argc == 4 && !strcmp(argv[1], "copy"))
		return cmd_copy(argv[2], argv[3]);
	fprintf(stderr, "usage: blk_rate read IMAGE rand4k|seq1m SECONDS [QD]\n"
			"       blk_rate copy SRC DST\n");
	return 2;
}
