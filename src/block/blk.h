/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The block layer: what a disk device model (virtio-blk now, AHCI and NVMe
 * later) talks to, as bhyve's block_if.  A frontend reads its block keys
 * with blk_opts_from_cfg(), opens the image with blk_open() and queues
 * struct blk_req requests with blk_submit(); a pool of worker threads runs
 * them against a format backend (raw or qcow2: blk_backend.h) and
 * calls each request's done() hook.
 *
 * Ordering: requests complete out of order, except that a request whose
 * byte range overlaps an earlier, still unfinished write (WRITE, DISCARD,
 * WRITE_ZEROES) waits for it, and a write waits for every earlier
 * unfinished request it overlaps (bhyve's BST_BLOCK rule).  So the bytes
 * of the image change in submission order and a read sees every write
 * submitted before it.  FLUSH waits for all earlier writes, then syncs.
 * Only the I/O is ordered: the done() hook of a later request may run
 * before that of an earlier one has returned.
 *
 * Threads: blk_submit() may be called from any thread (vCPU threads, the
 * event loop, a done() hook) and never blocks on I/O.  Each open image has
 * 'nworkers' threads named "blk<N>/io<i>" with every signal blocked.
 * Locks: one mutex per image guards its queue (a leaf: done() is called
 * without it, so done() may submit again).
 */
#ifndef KHYVE_BLOCK_BLK_H
#define KHYVE_BLOCK_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "config/config.h"

/* Unfinished requests per image; blk_submit() says -EAGAIN beyond. */
#define BLK_MAXREQ 1024
/* Worker threads per image when blk_open() is given 0, and the most. */
#define BLK_DEFAULT_WORKERS 4
#define BLK_MAX_WORKERS 64
/* Sector sizes a user may ask for (sectorsize=logical[/physical]). */
#define BLK_SECTOR_MIN 512
#define BLK_SECTOR_MAX 4096

/*
 * Block options of one disk, as bhyve's block_if reads them.  Strings
 * point into the config tree (or the caller's memory): keep it alive until
 * blk_open() returns.  0 sector sizes mean "from the image" (the block
 * device's sizes, else 512 logical and the file system block physical).
 */
struct blk_opts {
	const char *path;   /* image file or block device */
	bool ro;	    /* read-only */
	bool nocache;	    /* O_DIRECT */
	bool sync;	    /* O_DSYNC ("sync", or bhyve's alias "direct") */
	bool nodelete;	    /* no discard (TRIM): -EOPNOTSUPP */
	unsigned lsector;   /* logical sector size, 0 = auto */
	unsigned psector;   /* physical sector size, 0 = auto */
	const char *format; /* "raw"; NULL = probe the first bytes */
};

/*
 * Read the block keys of a device's config node: path, ro, nocache,
 * sync, direct (bhyve's alias of sync), sectorsize=logical[/physical]
 * (powers of 2 from 512 to 4096, physical >= logical), nodelete and format
 * (raw or qcow2; probed when unset).  Keys the
 * node does not hold take their defaults.  Returns 0, or -EINVAL after one
 * error line naming the full key ("pci.0.3.0.sectorsize: ...").
 */
int blk_opts_from_cfg(struct cfg_node *node, struct blk_opts *o);

/*
 * bhyve's short form "path[,opts]" ("-s 3,virtio-blk,disk.img,ro"): the
 * first token is the path (even when it holds a '='), the rest goes
 * through cfg_split_opts().  Usable as a devmodel parse_legacy hook; a
 * NULL or empty 'opts' sets nothing.  Returns 0 or -errno after logging.
 */
int blk_parse_legacy(struct cfg_node *node, const char *opts);

/*
 * The block keys for device schemas.  blk_cfg_keys is a NULL-terminated
 * table; a model whose node holds other keys too builds one table with
 * BLK_CFG_KEYS (entries only, no terminator), and a model with several
 * disks under one node uses BLK_CFG_KEYS_AT("port.*.").  bootindex is a
 * generic PCI key, not a block one.
 */
/* clang-format off */
#define BLK_CFG_KEYS_AT(p)                                                     \
	{p "path", CFG_STRING, NULL, "disk image file or block device",       \
	 0, 0, 0},                                                             \
	{p "ro", CFG_BOOL, "false", "read-only", 0, 0, 0},                     \
	{p "nocache", CFG_BOOL, "false", "bypass the host page cache "        \
	 "(O_DIRECT)", 0, 0, 0},                                               \
	{p "sync", CFG_BOOL, "false", "synchronous writes (O_DSYNC)",         \
	 0, 0, 0},                                                             \
	{p "direct", CFG_BOOL, "false", "alias of sync", 0, 0, 0},             \
	{p "sectorsize", CFG_STRING, NULL, "logical[/physical] sector size "  \
	 "(512..4096)", 0, 0, 0},                                              \
	{p "nodelete", CFG_BOOL, "false", "disable discard (TRIM)", 0, 0, 0}, \
	{p "format", CFG_STRING, NULL, "image format: raw or qcow2 (default: probe)", \
	 0, 0, 0}
/* clang-format on */
#define BLK_CFG_KEYS BLK_CFG_KEYS_AT("")
extern const struct cfg_key blk_cfg_keys[];

struct blk;

/*
 * Open the image 'o->path': read-write unless o->ro (when a read-write
 * open fails with EROFS or EACCES, warn and fall back to read-only, as
 * bhyve), O_DIRECT for nocache, O_DSYNC for sync.  Regular files and block
 * devices only.  Takes an open-file-description lock on the whole image,
 * exclusive when writable and shared when read-only, so two VMs cannot
 * write one image ("<path>: in use by another process (locked)", -EBUSY).
 * Starts 'nworkers' worker threads (0 = BLK_DEFAULT_WORKERS, at most
 * BLK_MAX_WORKERS).  Returns 0 and *out, or -errno after one error line
 * naming the path.
 */
int blk_open(const struct blk_opts *o, unsigned nworkers, struct blk **out);

/*
 * Wait until every submitted request has finished (its done() hook
 * returned), stop the workers, drop the lock and close the image.  No
 * blk_submit() may start once blk_close() has been called; submissions
 * racing with it get -ESHUTDOWN.  NULL is accepted.  Never call it from a
 * done() hook.
 */
void blk_close(struct blk *b);

/*
 * Wait until no request is queued, running or in its done() hook (device
 * reset).  Requests submitted meanwhile are waited for too.  Never call it
 * from a done() hook.
 */
void blk_drain(struct blk *b);

/* Image size in bytes (frontends show size / blk_lsector() sectors). */
uint64_t blk_size(const struct blk *b);
/* Logical and physical sector sizes in bytes (powers of 2, psector >=
 * lsector). */
unsigned blk_lsector(const struct blk *b);
unsigned blk_psector(const struct blk *b);
/* True when the image is read-only (asked for, or the fallback). */
bool blk_readonly(const struct blk *b);
/* True when BLK_DISCARD may succeed: writable, no nodelete, and the file
 * system or device supports it. */
bool blk_can_discard(const struct blk *b);
/* The image path, for frontends' log lines. */
const char *blk_path(const struct blk *b);
/* The backend's format name ("raw"). */
const char *blk_format(const struct blk *b);

enum blk_op {
	BLK_READ,
	BLK_WRITE,
	BLK_FLUSH,
	BLK_DISCARD,	  /* deallocate; reads may then return zeros */
	BLK_WRITE_ZEROES, /* the range reads as zeros afterwards */
};

/*
 * One request.  The frontend owns the memory; the block layer owns the
 * 'priv' part from blk_submit() until done() is called, and does not touch
 * the request after done() (which may free or resubmit it).
 */
struct blk_req {
	enum blk_op op;
	uint64_t offset; /* bytes */
	/* Bytes.  DISCARD/WRITE_ZEROES: the caller sets it.  READ/WRITE:
	 * blk_submit() sets it to the iovecs' total.  FLUSH: unused. */
	uint64_t len;
	struct iovec *iov; /* READ/WRITE data (not modified) */
	unsigned iovcnt;
	/* Called once, from a worker thread, with 0 or -errno: -EINVAL
	 * (range beyond the image), -EROFS, -EOPNOTSUPP (discard not
	 * available), -EPERM (a format signature written to sector 0 of a
	 * probed raw image), or an I/O error. */
	void (*done)(struct blk_req *req, int err);
	void *opaque; /* the frontend's */

	struct blk_req_priv {
		struct blk_req *prev, *next; /* submission-order list */
		struct blk_req *rnext;	     /* ready FIFO */
		uint64_t lo, hi;	     /* serialised byte range */
		unsigned ndeps;		     /* earlier requests to wait for */
		int err;		     /* decided at submit time */
		bool listed;		     /* on the submission-order list */
	} priv;
};

/*
 * Queue 'req'.  Never blocks on I/O.  Requests with a range beyond the
 * image, writes on a read-only image and discards that are not available
 * are accepted and completed with an error through done(), without
 * touching the image.  Returns 0 (done() will be called), -EINVAL (no
 * done hook, unknown op, iovcnt without iov: done() is not called),
 * -EAGAIN (BLK_MAXREQ requests unfinished: retry after a completion) or
 * -ESHUTDOWN (blk_close() started).
 */
int blk_submit(struct blk *b, struct blk_req *req);

/*
 * Complete a BLK_READ right now on the caller's thread if that needs no
 * waiting: the backend can serve it from the host page cache and no
 * unfinished write, discard or write-zeroes overlaps it.  Returns 0 (read
 * done; req->done is NOT called), -EAGAIN (submit it with blk_submit()),
 * or the error blk_submit() would report through done() (-EINVAL out of
 * range).  Never blocks on I/O: frontends use it to skip the hand-off to
 * a worker thread for cached data.
 */
int blk_read_nowait(struct blk *b, struct blk_req *req);

#endif
