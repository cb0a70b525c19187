/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The raw format: the guest's disk is the host file or block device byte
 * for byte.  Every op is one positional blk_file_* call, so the backend
 * holds no mutable state and is safe from all worker threads at once
 * without a lock (see blk_backend.h).  Its probe answers 1 for any image,
 * making raw the fallback when no other format recognises the first bytes.
 */
#include "block/blk_backend.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/log.h"

struct raw {
	struct blk_backend be; /* first: the block layer's view */
};

static struct blk_file *raw_file(struct blk_backend *be)
{
	return be->file;
}

static int raw_probe(const uint8_t *hdr, size_t n)
{
	(void)hdr;
	(void)n;
	return 1;
}

static int raw_open(struct blk_backend **out, struct blk_file *f,
		    const struct blk_opts *o)
{
	struct raw *r = calloc(1, sizeof(*r));
	long page = sysconf(_SC_PAGESIZE);

	if (!r) {
		log_err("%s: out of memory", f->path);
		return -ENOMEM;
	}
	r->be.ops = &blk_raw_ops;
	r->be.file = f;
	r->be.lock_align = 1;
	/* Misaligned O_DIRECT requests go through the page cache: keep two
	 * requests from sharing a page (or a direct-I/O block). */
	if (f->direct) {
		r->be.lock_align = page > 0 ? (unsigned)page : 4096;
		if (f->off_align > r->be.lock_align)
			r->be.lock_align = f->off_align;
	}
	r->be.can_discard = !o->nodelete && blk_file_can_discard(f);
	r->be.lsector_hint = f->dev_lsector;
	r->be.psector_hint = f->dev_psector;
	*out = &r->be;
	return 0;
}

static int raw_preadv(struct blk_backend *be, const struct iovec *iov,
		      unsigned iovcnt, uint64_t off)
{
	return blk_file_preadv(raw_file(be), iov, iovcnt, off);
}

/* Page-cache hit: one preadv2(RWF_NOWAIT) that returns every byte.  Not
 * with O_DIRECT (no cache to hit) and not on block devices (RWF_NOWAIT
 * there may still sleep in the block layer on some kernels). */
static int raw_read_nowait(struct blk_backend *be, const struct iovec *iov,
			   unsigned iovcnt, uint64_t off, uint64_t total)
{
	const struct blk_file *f = raw_file(be);
	ssize_t n;

	if (f->direct || f->bdev || iovcnt > IOV_MAX || off > INT64_MAX)
		return -EAGAIN;
	n = preadv2(f->fd, iov, (int)iovcnt, (off_t)off, RWF_NOWAIT);
	return n >= 0 && (uint64_t)n == total ? 0 : -EAGAIN;
}

static int raw_pwritev(struct blk_backend *be, const struct iovec *iov,
		       unsigned iovcnt, uint64_t off)
{
	return blk_file_pwritev(raw_file(be), iov, iovcnt, off);
}

static int raw_flush(struct blk_backend *be)
{
	return blk_file_flush(raw_file(be));
}

static int raw_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	return blk_file_discard(raw_file(be), off, len);
}

static int raw_write_zeroes(struct blk_backend *be, uint64_t off, uint64_t len)
{
	return blk_file_write_zeroes(raw_file(be), off, len);
}

static uint64_t raw_size(struct blk_backend *be)
{
	return raw_file(be)->size;
}

static void raw_close(struct blk_backend *be)
{
	free(be); /* be is the first member of struct raw */
}

const struct blk_backend_ops blk_raw_ops = {
	.name = "raw",
	.probe = raw_probe,
	.open = raw_open,
	.preadv = raw_preadv,
	.read_nowait = raw_read_nowait,
	.pwritev = raw_pwritev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.size = raw_size,
	.close = raw_close,
};
BLK_FORMAT_SET(blk_raw_ops);
