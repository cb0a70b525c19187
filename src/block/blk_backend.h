/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The format-backend interface of the block layer (raw and qcow2)
 * and the host-file I/O helpers backends build on.
 *
 * blk.c opens the image (flags, read-only fallback, lock, size, O_DIRECT
 * alignment) into a struct blk_file, reads its first bytes, picks a
 * backend (the explicit format= or the best probe() score) and calls its
 * open().  Requests reach the backend at guest byte offsets: preadv/
 * pwritev/discard/write_zeroes are only called with ranges inside size(),
 * writes only on a writable image, discard only when the backend said
 * can_discard.
 *
 * Threads and locks: every I/O op is called from the image's worker
 * threads CONCURRENTLY, with no lock held.  The block layer only
 * guarantees that no two running requests touch overlapping guest byte
 * ranges when one of them writes (ranges are first widened to
 * 'lock_align').  The raw backend is thread-safe by construction (each op
 * is a pread/pwrite/fallocate at an explicit offset).  A backend with
 * shared metadata (qcow2's L1/L2 tables, refcounts, allocation of new
 * clusters, a metadata cache) must lock it itself; it must not rely on
 * the block layer for anything beyond the guest-range rule above, and two
 * guest ranges that do not overlap may map to one host cluster.  open(),
 * size() and close() run on the thread calling blk_open()/blk_close(),
 * with no worker running.
 *
 * The blk_file_* helpers are thread-safe too (positional I/O only) and
 * hide O_DIRECT: unaligned buffers go through an aligned bounce buffer,
 * offsets or lengths not aligned to the file's O_DIRECT granularity go
 * through a second descriptor without O_DIRECT (the kernel keeps the two
 * coherent; the block layer's range rule, widened to a page, keeps them
 * from racing).
 */
#ifndef KHYVE_BLOCK_BLK_BACKEND_H
#define KHYVE_BLOCK_BLK_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block/blk.h"

/* The opened host file (image file or block device); owned by blk.c. */
struct blk_file {
	const char *path;
	int fd;	       /* opened with the options' flags */
	int buf_fd;    /* same file without O_DIRECT (nocache only), or -1 */
	bool writable; /* opened read-write */
	bool direct;   /* fd has O_DIRECT */
	bool bdev;     /* a block device */
	unsigned mem_align; /* O_DIRECT buffer alignment (1 without) */
	unsigned off_align; /* O_DIRECT offset/length granularity (1 without) */
	uint64_t size;	    /* bytes at open time */
	unsigned dev_lsector; /* block device logical sector, 0 for files */
	unsigned dev_psector; /* block device physical sector, or the file
				 system's block size for files */
};

/*
 * Open o->path into 'f' (see blk_open() in blk.h: flags, read-only
 * fallback, the lock, file type, size, O_DIRECT alignment, sector hints).
 * 'f->path' is set to o->path, which must outlive 'f'.  Returns 0 or
 * -errno after one error line naming the path (-EBUSY when locked).
 */
int blk_file_open(struct blk_file *f, const struct blk_opts *o);
/* Close the descriptors (dropping the lock).  Safe on a zeroed 'f' with
 * fd = buf_fd = -1. */
void blk_file_close(struct blk_file *f);

/*
 * Read 'iovcnt' iovecs from 'off' in full: EINTR and short reads are
 * retried, bytes past the end of the file read as zeros.  0 or -errno.
 */
int blk_file_preadv(const struct blk_file *f, const struct iovec *iov,
		    unsigned iovcnt, uint64_t off);
/* Write 'iovcnt' iovecs at 'off' in full (short writes and EINTR are
 * retried).  0 or -errno. */
int blk_file_pwritev(const struct blk_file *f, const struct iovec *iov,
		     unsigned iovcnt, uint64_t off);
/* Single-buffer forms of the two above. */
int blk_file_pread(const struct blk_file *f, void *buf, size_t len,
		   uint64_t off);
int blk_file_pwrite(const struct blk_file *f, const void *buf, size_t len,
		    uint64_t off);
/* fdatasync().  0 or -errno. */
int blk_file_flush(const struct blk_file *f);
/*
 * Deallocate [off, off+len): a hole (reads zeros) in a file, BLKDISCARD
 * on a device (contents then undefined; the range is shrunk to whole
 * device sectors).  0, -EOPNOTSUPP or -errno.
 */
int blk_file_discard(const struct blk_file *f, uint64_t off, uint64_t len);
/* Make [off, off+len) read as zeros: fallocate(ZERO_RANGE), else writing
 * zeros.  0 or -errno. */
int blk_file_write_zeroes(const struct blk_file *f, uint64_t off, uint64_t len);
/* Whether discard works on this file (probes with a no-op hole punch past
 * the end of a file; asks sysfs for a device).  Writable files only. */
bool blk_file_can_discard(const struct blk_file *f);

/*
 * The part of an opened backend the block layer reads.  A backend embeds
 * it as the first member of its own state.
 */
struct blk_backend {
	const struct blk_backend_ops *ops;
	struct blk_file *file;
	/* Granularity of read-modify-write the backend may do on guest
	 * ranges; the block layer serialises on ranges widened to it
	 * (1 = byte exact).  A power of 2. */
	unsigned lock_align;
	bool can_discard;
	/* Sector sizes the image suggests, 0 = none (blk.c then uses 512
	 * logical, and the larger of it and the physical hint). */
	unsigned lsector_hint, psector_hint;
};

/*
 * A format.  Every op returns 0 or -errno (except probe and size).
 */
struct blk_backend_ops {
	const char *name; /* the format= value */
	/*
	 * How sure the backend is that the image is its format, from its
	 * first 'n' bytes (up to 4096; fewer for a shorter file).  0 = not
	 * mine; raw answers 1 for anything (the fallback); a format with a
	 * magic answers 100.  Also used to refuse a guest writing a format
	 * signature into sector 0 of a probed raw image (so a raw image can
	 * never turn into, say, a qcow2 one naming a host backing file).
	 * Pure: no I/O.
	 */
	int (*probe)(const uint8_t *hdr, size_t n);
	/*
	 * Open the format on 'f' (which stays owned by blk.c and outlives
	 * the backend).  NULL = recognised by probe() but not supported
	 * yet.  Logs one error line naming f->path on failure.
	 */
	int (*open)(struct blk_backend **be, struct blk_file *f,
		    const struct blk_opts *o);
	int (*preadv)(struct blk_backend *be, const struct iovec *iov,
		      unsigned iovcnt, uint64_t off);
	int (*pwritev)(struct blk_backend *be, const struct iovec *iov,
		       unsigned iovcnt, uint64_t off);
	int (*flush)(struct blk_backend *be);
	int (*discard)(struct blk_backend *be, uint64_t off, uint64_t len);
	int (*write_zeroes)(struct blk_backend *be, uint64_t off, uint64_t len);
	/* Guest-visible size in bytes. */
	uint64_t (*size)(struct blk_backend *be);
	/*
	 * Optional: read [off, off + total) only if that needs no waiting
	 * (the data is in the host page cache): 0 when every byte was read,
	 * -EAGAIN otherwise (nothing is promised about the buffers then).
	 * Called on the submitter's thread; must never block on I/O.
	 */
	int (*read_nowait)(struct blk_backend *be, const struct iovec *iov,
			   unsigned iovcnt, uint64_t off, uint64_t total);
	/* Free the backend (not the file). */
	void (*close)(struct blk_backend *be);
};

/*
 * Formats register themselves with BLK_FORMAT_SET(ops) (a linker set, as
 * DEVMODEL_SET): raw.c, qcow2.c, and test
 * binaries' own formats.  Names must be unique.
 */
#define BLK_FORMAT_SET(o)                                                      \
	static const struct blk_backend_ops *const blk_format_ptr_##o          \
		__attribute__((used, retain, section("khyve_blk_formats"))) =  \
			&(o)

/* The raw format (raw.c), also the fallback when nothing else probes. */
extern const struct blk_backend_ops blk_raw_ops;

#endif
