/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The qcow2 format outside the guest I/O path: creating images and O(1)
 * overlays on a backing file (khyve-img create), describing an image and
 * its backing chain (khyve-img info), and checking or repairing refcounts
 * (khyve-img check, and the tests).  The I/O backend itself (qcow2.c) is
 * a block-layer format: blk_open() probes it or takes format=qcow2.
 *
 * Threads: every function runs on the caller's thread and opens the files
 * it needs itself (with the block layer's image locks); no shared state.
 */
#ifndef KHYVE_BLOCK_QCOW2_H
#define KHYVE_BLOCK_QCOW2_H

#include <stdbool.h>
#include <stdint.h>

#include "block/blk_backend.h"

/* The qcow2 backend (format=qcow2). */
extern const struct blk_backend_ops blk_qcow2_ops;

struct qcow2_create_opts {
	/* Virtual size in bytes, rounded up to 512; 0 = the backing
	 * image's virtual size (an error without a backing image). */
	uint64_t size;
	/* Backing image name stored in the header, or NULL.  A relative
	 * name is relative to the new image's directory (as QEMU). */
	const char *backing;
	/* "raw" or "qcow2"; NULL = probe the backing image.  Recorded in
	 * the backing format header extension. */
	const char *backing_fmt;
	/* log2 of the cluster size, 9..21; 0 = 16 (64 KiB). */
	unsigned cluster_bits;
};

/*
 * Create (or truncate and overwrite) 'path' as an empty qcow2 version 3
 * image: header, a one-cluster refcount table, one refcount block and a
 * zeroed L1 table, so creating an overlay costs the same for any backing
 * size.  The backing image (whole chain) is opened read-only first, to
 * check it and to learn its size and format.  Takes the image lock like
 * blk_open(), so an image in use is not overwritten.  Returns 0, or
 * -errno after one error line naming the file.
 */
int qcow2_create(const char *path, const struct qcow2_create_opts *o);

/* One image of a chain, as qcow2_info() describes it. */
struct qcow2_layer {
	char *path;	       /* resolved file name */
	const char *format;    /* "qcow2" or "raw" (static string) */
	uint64_t virtual_size; /* bytes */
	uint64_t file_size;    /* bytes of the host file */
	uint32_t cluster_size; /* qcow2 only, else 0 */
	unsigned version;      /* qcow2 only (2 or 3), else 0 */
	unsigned refcount_bits;
	bool dirty;	   /* qcow2 v3 dirty bit (not closed cleanly) */
	char *backing;	   /* name stored in the header, or NULL */
	char *backing_fmt; /* from the header extension, or NULL */
};

/*
 * Open 'path' read-only with its whole backing chain (every check of a
 * real open applies: hostile headers, loops, missing files) and describe
 * each image, top first, into a malloc'd array of *n layers.  A file that
 * is not qcow2 is one raw layer.  Returns 0, or -errno after one error
 * line naming the file.
 */
int qcow2_info(const char *path, struct qcow2_layer **layers, unsigned *n);
/* Free what qcow2_info() returned (NULL is fine). */
void qcow2_info_free(struct qcow2_layer *layers, unsigned n);

struct qcow2_check_result {
	uint64_t errors;      /* refcount below the references, or bad
				 offsets: corruption */
	uint64_t leaks;	      /* clusters counted above their references */
	uint64_t leaks_fixed; /* leaks repaired (repair mode) */
	uint64_t referenced;  /* clusters referenced by the image */
	uint64_t clusters;    /* clusters of the host file */
};

/*
 * Recount every cluster reference of the qcow2 image 'path' (header, L1
 * and L2 tables, data and compressed clusters, refcount table and blocks)
 * and compare with the stored refcounts, like 'qemu-img check'.  With
 * 'repair' the image is opened read-write, leaks are fixed and the dirty
 * bit cleared when nothing else is wrong; errors are never "fixed".  The
 * backing chain is not opened.  Images with internal snapshots or
 * persistent bitmaps are refused (-ENOTSUP).  Returns 0 with *res filled
 * (whatever it found), or -errno after one error line.
 */
int qcow2_check(const char *path, bool repair, struct qcow2_check_result *res);

#endif
