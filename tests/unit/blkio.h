/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Block-layer request helpers shared by the qcow2 unit tests
 * (t_qcow2.c, t_qcow2_vs_raw.c, t_qcow2_crash.c): a seeded xorshift
 * generator for random traffic, a counting waiter for batches of
 * requests in flight, one synchronous request, and opening an image
 * through blk_open().  Header-only; include once per test program.
 *
 * Threads: the generator is for the test's main thread only.  A waiter's
 * mutex guards its counters; the block layer's workers take it in the
 * done() hook, the test thread in bio_submit() and bio_wait_all().
 */
#ifndef KHYVE_TESTS_UNIT_BLKIO_H
#define KHYVE_TESTS_UNIT_BLKIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "block/blk.h"

/* ---- random numbers (seeded by assigning bio_rng_state) ---- */

static uint64_t bio_rng_state = 1;

/* The next 64-bit xorshift value. */
static inline uint64_t bio_rng(void)
{
	bio_rng_state ^= bio_rng_state << 13;
	bio_rng_state ^= bio_rng_state >> 7;
	bio_rng_state ^= bio_rng_state << 17;
	return bio_rng_state;
}

/* A value below 'n' (0 when n is 0). */
static inline uint64_t bio_rng_below(uint64_t n)
{
	return n ? bio_rng() % n : 0;
}

/* ---- requests ---- */

struct bio_waiter {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	unsigned pending;
	int first_err;
};

/*
 * One request.  The caller fills in req.op, req.offset, req.len and
 * either req.iov/req.iovcnt (up to three entries of iov) or buf, which
 * bio_submit() turns into a single iovec.  'seq' is the caller's.
 */
struct bio_io {
	struct blk_req req;
	struct iovec iov[3];
	uint8_t *buf;
	struct bio_waiter *w;
	uint64_t seq;
	int err;
};

static inline void bio_io_done_(struct blk_req *r, int err)
{
	struct bio_io *io = r->opaque;

	pthread_mutex_lock(&io->w->lock);
	io->err = err;
	if (err && !io->w->first_err)
		io->w->first_err = err;
	io->w->pending--;
	pthread_cond_broadcast(&io->w->cv);
	pthread_mutex_unlock(&io->w->lock);
}

/* Set up an idle waiter. */
static inline void bio_waiter_init(struct bio_waiter *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->pending = 0;
	w->first_err = 0;
}

/* Block until every request submitted with 'w' has completed. */
static inline void bio_wait_all(struct bio_waiter *w)
{
	pthread_mutex_lock(&w->lock);
	while (w->pending)
		pthread_cond_wait(&w->cv, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

/* Submit 'io' to 'b', counted on 'w'.  Returns blk_submit()'s result. */
static inline int bio_submit(struct blk *b, struct bio_io *io,
			     struct bio_waiter *w)
{
	int rc;

	io->w = w;
	io->req.done = bio_io_done_;
	io->req.opaque = io;
	if (io->buf && !io->req.iov) {
		io->iov[0].iov_base = io->buf;
		io->iov[0].iov_len = (size_t)io->req.len;
		io->req.iov = io->iov;
		io->req.iovcnt = 1;
	}
	pthread_mutex_lock(&w->lock);
	w->pending++;
	pthread_mutex_unlock(&w->lock);
	rc = blk_submit(b, &io->req);
	if (rc < 0) {
		pthread_mutex_lock(&w->lock);
		w->pending--;
		pthread_mutex_unlock(&w->lock);
	}
	return rc;
}

/*
 * One synchronous request ('buf' NULL for ops without data).  Returns
 * 0, a submission error or the completion error (-errno).
 */
static inline int bio_run_one(struct blk *b, enum blk_op op, uint64_t off,
			      void *buf, uint64_t len)
{
	struct bio_waiter w;
	struct bio_io io;
	int rc;

	bio_waiter_init(&w);
	memset(&io, 0, sizeof(io));
	io.req.op = op;
	io.req.offset = off;
	io.req.len = len;
	io.buf = buf;
	rc = bio_submit(b, &io, &w);
	if (rc < 0)
		return rc;
	bio_wait_all(&w);
	return io.err;
}

/* Open 'path' as 'fmt' (NULL: probe) with four workers; NULL on error. */
static inline struct blk *bio_open_img(const char *path, const char *fmt,
				       bool ro)
{
	struct blk_opts o;
	struct blk *b = NULL;

	memset(&o, 0, sizeof(o));
	o.path = path;
	o.format = fmt;
	o.ro = ro;
	return blk_open(&o, 4, &b) < 0 ? NULL : b;
}

#endif
