/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The qcow2 format backend (QEMU's copy-on-write image format, versions 2
 * and 3): reads and writes, cluster allocation with refcounts, an L2
 * table cache, backing files (chains of qcow2 and raw images), zero
 * clusters, discard, and reading zlib-compressed clusters.  Also the
 * library side of khyve-img (qcow2.h): creating images and overlays,
 * describing a chain, checking and repairing refcounts.  Written from the
 * format specification (QEMU's docs/interop/qcow2.txt), not from QEMU.
 *
 * Refused at open, with one line naming the file and the feature:
 * encryption, external data files, extended L2 entries, zstd compression
 * and unknown incompatible features; for writing also internal snapshots,
 * persistent bitmaps and images marked corrupt (they open read-only).
 *
 * METADATA AND CRASH SAFETY.  The L1 table and the refcount table are
 * kept whole in memory, L2 tables and refcount blocks in two caches
 * written back at commit time.  A guest write to a cluster that is not
 * allocated (or compressed, or shared):
 *   1. reserves a free host cluster, in memory only (on disk its refcount
 *      stays 0: if we die now it is free space, not a leak);
 *   2. writes the whole cluster: the guest's bytes and, around them, the
 *      old content (backing file, zeros, decompressed data);
 *   3. links it in one critical section: refcount 1 and the L2 entry, both
 *      in the caches.
 * Metadata reaches the file only in a commit (guest FLUSH, close, or when
 * the caches outgrow their size), in this order:
 *   C0 set the header's dirty bit (v3), fdatasync: the data of every
 *      linked cluster, and the dirty bit, are durable before anything on
 *      disk points at that data;
 *   C1 write the dirty refcount blocks and the L2 tables that are new
 *      (nothing on disk points at those yet);
 *   C2 fdatasync: refcounts are durable before the pointers using them;
 *   C3 write the other dirty L2 tables and the dirty pages of the L1 table;
 *   C4 fdatasync;
 *   C5 decrement the refcounts of clusters whose last pointer went in C3
 *      (durable now), write those blocks, fdatasync;
 *   C6 clear the dirty bit.
 * So on disk no refcount is ever below the number of pointers to its
 * cluster, however the process ends or the power fails: 'qemu-img check'
 * finds no errors.  Leaks (a refcount above the pointers) cannot be
 * excluded by ordering: a refcount and the pointer that uses its cluster
 * live in different clusters of the file, no single write changes both,
 * and the refcount must be durable first.  They exist between C1 and C5.
 *
 * Kill -9 kills the VMM, not the kernel and its page cache: what matters
 * is that no commit stops half way.  So a commit is not written by the
 * VMM but built as a plan (qcow2_commit.h): every write of C0..C6 with its
 * bytes, and the syncs, in shared memory, handed over in one message to a
 * helper process forked when the image was opened read-write.  The helper
 * executes the whole plan and answers; the VMM waits for the answer (under
 * the lock, as it would for writes of its own).  If the VMM dies after
 * handing a plan over, the helper still executes all of it, then exits; if
 * it dies before, nothing of that commit was written, and clusters
 * reserved or linked since the previous commit have refcount 0 on disk
 * (free space).  The image goes from one consistent state to the next:
 * after a kill -9 at any moment, once the helper has exited (it keeps the
 * image's lock until then), 'qemu-img check' finds no errors and no leaks.
 * The dirty bit may be left set, without leaks: a guest FLUSH sets it
 * before its data sync (C0, done outside the lock, see below), so a kill
 * during that sync leaves it, and the next read-write open recounts.
 * While a plan is being built the caches evict nothing: a table the plan
 * writes stays cached, and a table loaded meanwhile (C5 may need refcount
 * blocks) has nothing pending in the plan, so the file is current for it
 * (earlier plans ran to the end before their commit returned).  Without a
 * helper (fork failed: one warning; or a test turned helpers off) plans
 * run in the VMM, and a kill inside C1..C5 leaves leaks, marked by the
 * dirty bit.
 *
 * Power loss takes the page cache too, so only the syncs order things,
 * and a plan stops wherever the power went.  The dirty bit is durable
 * before the first write that can leak (C0) and cleared only after the
 * sync ending the commit (C4, or C5's): after a power loss an image with a
 * clear bit has no leaks, and one with the bit set has the next read-write
 * open (ours, or QEMU's) recount and repair the leaks before anything
 * else.  Writes and metadata since the last completed FLUSH may be lost,
 * as on a disk with a volatile cache; the image stays consistent.
 * (Version 2 has no dirty bit: its leaks after a power loss inside a
 * commit stay until 'qemu-img check -r leaks'.)
 *
 * Discard and write-zeroes never free a cluster, which would need the same
 * two-step dance in reverse: an allocated cluster keeps its mapping and
 * its host range is punched out (a hole reads as zeros); an unallocated
 * cluster over a backing file gets the v3 zero flag.  Clusters are freed
 * only when a compressed or shared cluster is rewritten elsewhere (C5);
 * while a read that looked one up before may still use it ('fragile',
 * below) it is kept out of allocation ('held').
 * A refcount block is created when allocation reaches a range without one:
 * it is placed inside the range it describes and counts itself, is written
 * and synced, and then one 8-byte write of the refcount-table entry makes
 * it live, so it is never a leak (the VMM writes these itself).  Growing
 * the refcount table (rare: with 64 KiB clusters one table cluster covers
 * 16 TiB) commits first, then in one plan sets the dirty bit, writes the
 * new table and blocks, syncs, switches the header in one write, syncs,
 * and frees the old table (C5, C6).
 *
 * THREADS AND LOCKS.  The block layer calls preadv/pwritev/discard/
 * write_zeroes/flush from its workers concurrently.  One reader-writer
 * lock per image, 'lock', guards all metadata: L1, both caches, refcounts,
 * the allocator, and the reserved, in-flight and pending-free lists.
 * Reads and overwrites of allocated clusters look their mapping up in a
 * cached L2 table holding it shared (the common case costs no exclusive
 * lock); loading a table, allocating, linking and committing hold it
 * exclusive (writer-preferring, so reads cannot starve allocation).  Data
 * I/O runs without it.  A guest cluster being allocated is on the
 * in-flight list, and other writes to it wait on 'cv' (with 'infl_lock'
 * and a generation count; the block layer keeps overlapping byte ranges
 * apart, this covers two ranges sharing a cluster).  A read racing with
 * an allocation sees the old mapping (its data stays valid: freed
 * clusters are only reused after C5, and not while a read of such a
 * cluster is running: 'fragile') or the new one (linked after its data is
 * written).  Commits hold the lock exclusive, except for the first
 * fdatasync of a guest flush, and wait under it for the helper's answer.
 * The helper is a single-threaded process that shares only the image
 * file, the plan memory and a socket with the VMM (qcow2_commit.c).
 * Backing images are separate read-only instances with their own locks;
 * open, close and the khyve-img functions run on the caller's thread with
 * no worker running.
 */
#include "block/qcow2.h"
#include "block/qcow2_commit.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZLIB_CONST
#include <zlib.h>

#include "lib/log.h"

#define QCOW2_MAGIC 0x514649fbU
#define HDR_V2_LEN 72
#define HDR_V3_LEN 104
#define MIN_CLUSTER_BITS 9
#define MAX_CLUSTER_BITS 21	   /* QEMU's limit: 2 MiB */
#define MAX_L1_BYTES (32ULL << 20) /* QEMU's limit */
#define MAX_RT_BYTES (8ULL << 20)  /* QEMU's limit */
#define MAX_BACKING_NAME 1023
#define MAX_SNAPSHOTS 65536
#define MAX_CHAIN 32		     /* images in a backing chain */
#define L2_CACHE_BYTES (32ULL << 20) /* soft cap of the L2 cache */
#define RB_CACHE_BYTES (4ULL << 20)  /* soft cap of the refcount cache */
#define CACHE_MIN_SLOTS 8
#define CACHE_MAX_SLOTS 4096
#define ZERO_CHUNK 65536
#define META_ALIGN 4096 /* table buffers (O_DIRECT) */

#define OFLAG_COPIED (1ULL << 63)
#define OFLAG_COMPRESSED (1ULL << 62)
#define OFLAG_ZERO 1ULL
#define OFF_MASK 0x00fffffffffffe00ULL /* bits 9-55 */
#define L1_RESERVED 0x7f000000000001ffULL
#define L2_RESERVED 0x3f000000000001feULL
#define RT_OFF_MASK 0xfffffffffffffe00ULL

#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2 (1ULL << 4)
#define INCOMPAT_KNOWN 0x1fULL
#define AUTOCLEAR_BITMAPS (1ULL << 0)

#define EXT_END 0U
#define EXT_BACKING_FMT 0xe2792acaU
#define EXT_FEATURES 0x6803f857U
#define EXT_BITMAPS 0x23852875U
#define EXT_CRYPTO 0x0537be77U
#define EXT_DATA_FILE 0x44415441U

/* Header field offsets. */
#define H_VERSION 4
#define H_BACKING_OFF 8
#define H_BACKING_LEN 16
#define H_CLUSTER_BITS 20
#define H_SIZE 24
#define H_CRYPT 32
#define H_L1_SIZE 36
#define H_L1_OFF 40
#define H_RT_OFF 48
#define H_RT_CLUSTERS 56
#define H_NB_SNAP 60
#define H_SNAP_OFF 64
#define H_INCOMPAT 72
#define H_COMPAT 80
#define H_AUTOCLEAR 88
#define H_REFCOUNT_ORDER 96
#define H_HDR_LEN 100
#define H_COMPRESSION 104

static const uint8_t zero_chunk[ZERO_CHUNK];

/* ---- small helpers ---- */

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

static uint32_t get_be32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return be32toh(v);
}

static uint16_t get_be16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return be16toh(v);
}

static void put_be64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, 2);
}

static void *meta_alloc(size_t len)
{
	void *p;

	if (posix_memalign(&p, META_ALIGN, len ? len : 1))
		return NULL;
	return p;
}

static void *meta_zalloc(size_t len)
{
	void *p = meta_alloc(len);

	if (p)
		memset(p, 0, len);
	return p;
}

/* ---- iovec helpers ---- */

/*
 * Point 'dst' (room for 'max') at bytes [skip, skip+len) of the 'cnt'
 * iovecs 'src'.  Returns the number of iovecs used; 0 when len is 0.
 * The caller sizes 'dst' to cnt + 2, which always suffices.
 */
static unsigned iov_slice(struct iovec *dst, unsigned max,
			  const struct iovec *src, unsigned cnt, uint64_t skip,
			  uint64_t len)
{
	unsigned i, n = 0;

	for (i = 0; i < cnt && len > 0 && n < max; i++) {
		size_t l = src[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= (size_t)skip;
		if (l > len)
			l = (size_t)len;
		dst[n].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[n].iov_len = l;
		n++;
		len -= l;
		skip = 0;
	}
	return n;
}

static void iov_zero(const struct iovec *iov, unsigned cnt)
{
	unsigned i;

	for (i = 0; i < cnt; i++)
		memset(iov[i].iov_base, 0, iov[i].iov_len);
}

static void iov_from_buf(const struct iovec *iov, unsigned cnt,
			 const uint8_t *buf)
{
	unsigned i;

	for (i = 0; i < cnt; i++) {
		memcpy(iov[i].iov_base, buf, iov[i].iov_len);
		buf += iov[i].iov_len;
	}
}

/* ---- the image ---- */

/* One cached table (an L2 table or a refcount block). */
struct slot {
	uint8_t *buf; /* one cluster, big-endian as on disk */
	uint64_t off; /* host offset of the table */
	uint64_t key; /* L1 index or refcount-table index */
	uint64_t lru; /* last use, from the cache's tick */
	unsigned pos; /* index in the cache's slot array */
	bool dirty;   /* differs from the disk */
	bool fresh;   /* a new table nothing on disk points at yet */
};

struct cache {
	struct slot **slots;
	unsigned n;	/* slots in use */
	unsigned cap;	/* soft cap: beyond it a commit is wanted */
	unsigned alloc; /* length of 'slots' */
	int32_t *index; /* key -> slot position, or -1 */
	uint64_t nkeys;
	uint64_t tick;
};

/* A range of clusters (host or guest). */
struct range {
	uint64_t start, n;
};

struct rlist {
	struct range *v;
	unsigned n, cap;
};

/* Device and inode of each image of a chain being opened (loop check). */
struct chain {
	dev_t dev[MAX_CHAIN];
	ino_t ino[MAX_CHAIN];
	unsigned n;
};

struct qcow2 {
	struct blk_backend be; /* first: the block layer's view */
	struct blk_file *f;
	const char *path;
	struct blk_file *own_file; /* backing layers own their file */
	char *own_path;
	bool writable;

	/* header */
	unsigned version, cluster_bits, l2_bits, rb_bits, refcount_order;
	uint64_t cs;   /* cluster size */
	uint64_t size; /* virtual size */
	uint64_t l1_off, rt_off, snap_off;
	uint64_t incompat, compat, autoclear;
	uint32_t l1_size, rt_clusters, nb_snapshots, hdr_len;
	uint64_t l1_used;    /* L1 entries covering the virtual size */
	uint64_t rt_entries; /* refcount-table entries */
	uint64_t rc_max;     /* largest refcount value */
	bool has_bitmaps;    /* bitmaps extension present */
	char *backing_name;  /* as stored */
	char *backing_fmt;   /* from the header extension */

	/* metadata, under 'lock' */
	uint64_t *l1;	   /* host-endian, l1_size entries */
	uint8_t *l1_dirty; /* per 4 KiB page of the L1 table */
	uint64_t *rt;	   /* host-endian, rt_entries entries */
	struct cache l2c, rbc;
	uint64_t file_end;   /* clusters: first never used */
	uint64_t file_limit; /* clusters the file may grow to */
	uint64_t free_hint;  /* clusters below are not free */
	struct rlist resv;   /* reserved host clusters */
	struct rlist infl;   /* guest clusters being allocated */
	struct rlist pfree;  /* host clusters to decrement in C5 */
	struct rlist held;   /* freed in C5 while 'fragile': not reusable */
	unsigned fragile;    /* reads of clusters that may be freed (atomic) */
	uint64_t link_gen, synced_gen;
	bool meta_dirty;	   /* some table or L1 page is dirty */
	bool failed;		   /* a metadata write failed: no more writes */
	bool want_commit;	   /* a cache is over its cap */
	bool dirty_on_disk;	   /* we set the header's dirty bit */
	bool dirty_durable;	   /* ... and synced it since */
	unsigned dirty_gen;	   /* bumped when the bit changes */
	struct qcow2_commit *cm;   /* plans and their helper (writable) */
	bool planning;		   /* metadata writes go into cm's plan */
	pthread_rwlock_t lock;	   /* shared: lookups in cached tables */
	pthread_mutex_t infl_lock; /* with cv: waits for allocations */
	pthread_cond_t cv;
	unsigned infl_gen; /* bumped when an allocation finishes */

	/* backing image (its own instance) */
	struct blk_backend *bk;
	struct blk_file *bk_file;
	char *bk_path;
	const char *bk_format;
	uint64_t bk_size;
};

static struct qcow2 *q2(struct blk_backend *be)
{
	return (struct qcow2 *)be; /* be is the first member */
}

/*
 * 'lock' is a reader-writer lock: reads and in-place writes look their
 * mapping up in cached tables holding it shared; everything that changes
 * metadata (loading a table, allocating, linking, committing) holds it
 * exclusive.  Under the shared lock only the LRU stamps and 'fragile'
 * change, atomically.
 */
static void lock_shared(struct qcow2 *q)
{
	pthread_rwlock_rdlock(&q->lock);
}

static void lock_excl(struct qcow2 *q)
{
	pthread_rwlock_wrlock(&q->lock);
}

static void unlock(struct qcow2 *q)
{
	pthread_rwlock_unlock(&q->lock);
}

/* Holding the lock exclusive: drop it and sleep until some in-flight
 * allocation finishes (the caller then maps again). */
static void wait_inflight(struct qcow2 *q)
{
	unsigned g = q->infl_gen;

	unlock(q);
	pthread_mutex_lock(&q->infl_lock);
	while (q->infl_gen == g)
		pthread_cond_wait(&q->cv, &q->infl_lock);
	pthread_mutex_unlock(&q->infl_lock);
}

/* Holding the lock exclusive: an allocation finished, wake the waiters. */
static void inflight_done(struct qcow2 *q)
{
	pthread_mutex_lock(&q->infl_lock);
	q->infl_gen++;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->infl_lock);
}

/* ---- refcount block entries ---- */

static uint64_t rc_get(const struct qcow2 *q, const uint8_t *b, uint64_t i)
{
	unsigned bits;
	uint64_t bit;

	switch (q->refcount_order) {
	case 3:
		return b[i];
	case 4:
		return get_be16(b + 2 * i);
	case 5:
		return get_be32(b + 4 * i);
	case 6:
		return get_be64(b + 8 * i);
	default:
		bits = 1U << q->refcount_order;
		bit = i * bits;
		return (uint64_t)(b[bit / 8] >> (bit % 8)) & ((1U << bits) - 1);
	}
}

static void rc_put(const struct qcow2 *q, uint8_t *b, uint64_t i, uint64_t v)
{
	unsigned bits, mask;
	uint64_t bit;

	switch (q->refcount_order) {
	case 3:
		b[i] = (uint8_t)v;
		return;
	case 4:
		put_be16(b + 2 * i, (uint16_t)v);
		return;
	case 5:
		put_be32(b + 4 * i, (uint32_t)v);
		return;
	case 6:
		put_be64(b + 8 * i, v);
		return;
	default:
		bits = 1U << q->refcount_order;
		mask = (1U << bits) - 1;
		bit = i * bits;
		b[bit / 8] = (uint8_t)((b[bit / 8] & ~(mask << (bit % 8))) |
				       ((v & mask) << (bit % 8)));
	}
}

/* ---- caches ---- */

static int cache_init(struct cache *c, uint64_t nkeys, unsigned cap)
{
	memset(c, 0, sizeof(*c));
	c->nkeys = nkeys;
	c->cap = cap;
	c->index = malloc((nkeys ? nkeys : 1) * sizeof(*c->index));
	if (!c->index)
		return -ENOMEM;
	memset(c->index, 0xff, (nkeys ? nkeys : 1) * sizeof(*c->index));
	return 0;
}

static void cache_free(struct cache *c)
{
	unsigned i;

	for (i = 0; i < c->n; i++) {
		free(c->slots[i]->buf);
		free(c->slots[i]);
	}
	free(c->slots);
	free(c->index);
	memset(c, 0, sizeof(*c));
}

/* Make the index cover 'nkeys' keys (the refcount table grew). */
static int cache_grow_index(struct cache *c, uint64_t nkeys)
{
	int32_t *ix;

	if (nkeys <= c->nkeys)
		return 0;
	ix = realloc(c->index, nkeys * sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	memset(ix + c->nkeys, 0xff, (nkeys - c->nkeys) * sizeof(*ix));
	c->index = ix;
	c->nkeys = nkeys;
	return 0;
}

static struct slot *cache_find(struct cache *c, uint64_t key)
{
	int32_t i = key < c->nkeys ? c->index[key] : -1;

	if (i < 0)
		return NULL;
	/* atomic: also called under the shared lock */
	__atomic_store_n(&c->slots[i]->lru,
			 __atomic_add_fetch(&c->tick, 1, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	return c->slots[i];
}

/*
 * A slot for 'key', which is not cached: the least recently used clean
 * slot when the cache is at its cap, else a new slot (past the cap only
 * when every slot is dirty: then a commit is wanted at the end of the
 * operation, never in the middle of one, where the in-memory metadata may
 * be half way through a change).  While a plan is being built nothing is
 * evicted: a clean slot may be clean only because the plan writes it, and
 * reading it back from the disk would miss that (the cache is trimmed
 * after the plan ran).  A slot pointer stays valid until the next claim
 * in the same cache.
 */
static struct slot *cache_claim(struct qcow2 *q, struct cache *c, uint64_t key)
{
	struct slot *s = NULL, **sv;
	unsigned i;

	if (c->n >= c->cap && !q->planning) {
		for (i = 0; i < c->n; i++) {
			struct slot *t = c->slots[i];

			if (!t->dirty &&
			    (!s || __atomic_load_n(&t->lru, __ATOMIC_RELAXED) <
					   __atomic_load_n(&s->lru,
							   __ATOMIC_RELAXED)))
				s = t;
		}
	}
	if (s) {
		c->index[s->key] = -1;
	} else {
		if (c->n == c->alloc) {
			unsigned na = c->alloc ? c->alloc * 2 : 16;

			sv = realloc(c->slots, na * sizeof(*sv));
			if (!sv)
				return NULL;
			c->slots = sv;
			c->alloc = na;
		}
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
		s->buf = meta_alloc((size_t)q->cs);
		if (!s->buf) {
			free(s);
			return NULL;
		}
		s->pos = c->n;
		c->slots[c->n++] = s;
		if (c->n > c->cap && !q->planning)
			q->want_commit = true;
	}
	s->key = key;
	s->off = 0;
	s->dirty = s->fresh = false;
	s->lru = __atomic_add_fetch(&c->tick, 1, __ATOMIC_RELAXED);
	c->index[key] = (int32_t)s->pos;
	return s;
}

/* Forget a slot (its load failed). */
static void cache_drop(struct cache *c, struct slot *s)
{
	struct slot *last = c->slots[c->n - 1];

	c->index[s->key] = -1;
	c->slots[s->pos] = last;
	last->pos = s->pos;
	if (last != s)
		c->index[last->key] = (int32_t)last->pos;
	c->n--;
	free(s->buf);
	free(s);
}

/* Free clean slots until the cache is back under its cap. */
static void cache_trim(struct cache *c)
{
	unsigned i;

	for (i = 0; i < c->n && c->n > c->cap;) {
		struct slot *s = c->slots[i];

		if (s->dirty) {
			i++;
			continue;
		}
		cache_drop(c, s); /* moves the last slot to i */
	}
}

/* ---- range lists ---- */

/* Make room for one more entry, so a later rlist_add() cannot fail. */
static int rlist_reserve(struct rlist *l)
{
	struct range *v;
	unsigned nc;

	if (l->n < l->cap)
		return 0;
	nc = l->cap ? l->cap * 2 : 16;
	v = realloc(l->v, nc * sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->v = v;
	l->cap = nc;
	return 0;
}

static int rlist_add(struct rlist *l, uint64_t start, uint64_t n)
{
	int rc = rlist_reserve(l);

	if (rc < 0)
		return rc;
	l->v[l->n].start = start;
	l->v[l->n].n = n;
	l->n++;
	return 0;
}

/* Remove the entry that starts at 'start' with length 'n'. */
static void rlist_del(struct rlist *l, uint64_t start, uint64_t n)
{
	unsigned i;

	for (i = 0; i < l->n; i++) {
		if (l->v[i].start == start && l->v[i].n == n) {
			l->v[i] = l->v[--l->n];
			return;
		}
	}
}

static bool rlist_overlaps(const struct rlist *l, uint64_t start, uint64_t n)
{
	unsigned i;

	for (i = 0; i < l->n; i++) {
		if (l->v[i].start < start + n &&
		    start < l->v[i].start + l->v[i].n)
			return true;
	}
	return false;
}

/* ---- host file ---- */

static int file_pread(struct qcow2 *q, void *buf, size_t len, uint64_t off)
{
	return blk_file_pread(q->f, buf, len, off);
}

static int file_pwrite(struct qcow2 *q, const void *buf, size_t len,
		       uint64_t off)
{
	return blk_file_pwrite(q->f, buf, len, off);
}

static int file_sync(struct qcow2 *q)
{
	return blk_file_flush(q->f);
}

/*
 * Metadata writes and syncs: into the plan being built (between
 * plan_begin() and plan_end()), else straight to the file.
 */
static int meta_write(struct qcow2 *q, const void *buf, size_t len,
		      uint64_t off)
{
	if (q->planning)
		return qcow2_commit_write(q->cm, buf, len, off);
	return file_pwrite(q, buf, len, off);
}

static int meta_sync(struct qcow2 *q)
{
	if (q->planning)
		return qcow2_commit_sync(q->cm);
	return file_sync(q);
}

/* Start collecting metadata writes into a plan (no-op without a commit
 * object, or when a plan is open already: it then takes them).  Returns
 * whether this call opened the plan, for plan_end(). */
static bool plan_begin(struct qcow2 *q)
{
	if (!q->cm || q->planning)
		return false;
	q->planning = true;
	return true;
}

/*
 * Close the plan opened by plan_begin() (when 'opened'): with 'rc' 0 hand
 * it over and wait until it is on disk, else throw it away.  Returns the
 * plan's result, or 'rc'.
 */
static int plan_end(struct qcow2 *q, bool opened, int rc)
{
	if (!opened)
		return rc;
	q->planning = false;
	if (rc < 0) {
		qcow2_commit_abort(q->cm);
		return rc;
	}
	return qcow2_commit_run(q->cm);
}

/* Rewrite one 8-byte header field. */
static int hdr_put64(struct qcow2 *q, unsigned field, uint64_t v)
{
	uint8_t b[8];

	put_be64(b, v);
	return meta_write(q, b, 8, field);
}

/* Set or clear the v3 dirty bit on disk (no sync: see the top). */
static int hdr_set_dirty(struct qcow2 *q, bool on)
{
	uint64_t v;
	int rc;

	if (q->version < 3 || q->dirty_on_disk == on)
		return 0;
	v = on ? q->incompat | INCOMPAT_DIRTY : q->incompat & ~INCOMPAT_DIRTY;
	rc = hdr_put64(q, H_INCOMPAT, v);
	if (rc < 0)
		return rc;
	q->incompat = v;
	q->dirty_on_disk = on;
	q->dirty_durable = false;
	q->dirty_gen++;
	return 0;
}

/* Is host cluster 'c' part of the header, the L1 table or the refcount
 * table (never data, never allocatable)? */
static bool cluster_protected(const struct qcow2 *q, uint64_t c)
{
	uint64_t off = c << q->cluster_bits;
	uint64_t l1_end = q->l1_off + (uint64_t)q->l1_size * 8;
	uint64_t rt_end =
		q->rt_off + ((uint64_t)q->rt_clusters << q->cluster_bits);

	if (c == 0)
		return true;
	if (q->l1_size && off < l1_end && off + q->cs > q->l1_off)
		return true;
	return off < rt_end && off + q->cs > q->rt_off;
}

/* A metadata write or sync failed: the image is left as the last commit
 * made it; every later write and flush fails.  Reads still work. */
static int meta_fail(struct qcow2 *q, int rc)
{
	if (!q->failed) {
		q->failed = true;
		log_errno(LOG_ERR, -rc,
			  "%s: writing qcow2 metadata failed; the image is "
			  "read-only from now on",
			  q->path);
	}
	return rc;
}

/* ---- L2 entries ---- */

enum kind { K_UNALLOC, K_ZERO, K_NORMAL, K_COMPRESSED, K_BAD };

/* A decoded L2 entry. */
struct ent {
	enum kind kind;
	uint64_t raw;
	uint64_t host; /* cluster offset (K_NORMAL, K_ZERO with a cluster),
			  byte offset (K_COMPRESSED), else 0 */
	uint64_t clen; /* K_COMPRESSED: bytes from 'host' */
	bool copied;   /* refcount exactly 1: may be written in place */
};

static uint64_t file_bytes(const struct qcow2 *q)
{
	return q->file_end << q->cluster_bits;
}

/* May cluster offset 'off' hold data or a table? */
static bool host_ok(const struct qcow2 *q, uint64_t off)
{
	return off && !(off & (q->cs - 1)) && off < file_bytes(q) &&
	       !cluster_protected(q, off >> q->cluster_bits);
}

static void ent_decode(const struct qcow2 *q, uint64_t e, struct ent *d)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t reserved = L2_RESERVED | (q->version < 3 ? OFLAG_ZERO : 0);
	uint64_t add;

	memset(d, 0, sizeof(*d));
	d->raw = e;
	if (e & OFLAG_COMPRESSED) {
		add = (e >> x) & ((1ULL << (62 - x)) - 1);
		d->host = e & ((1ULL << x) - 1);
		d->clen = (add + 1) * 512 - (d->host & 511);
		d->kind = K_COMPRESSED;
		if ((e & OFLAG_COPIED) || d->host < q->cs ||
		    d->host >= file_bytes(q))
			d->kind = K_BAD;
		return;
	}
	if (e & reserved) {
		d->kind = K_BAD;
		return;
	}
	d->host = e & OFF_MASK;
	d->copied = (e & OFLAG_COPIED) != 0;
	if (q->version >= 3 && (e & OFLAG_ZERO)) {
		d->kind = !d->host || host_ok(q, d->host) ? K_ZERO : K_BAD;
		return;
	}
	if (!d->host) {
		d->kind = d->copied ? K_BAD : K_UNALLOC;
		return;
	}
	d->kind = host_ok(q, d->host) ? K_NORMAL : K_BAD;
}

/* Does a write to this cluster need a new cluster (not in place)? */
static bool need_alloc(const struct ent *d)
{
	return !(d->kind == K_NORMAL && d->copied);
}

/* Is the cluster's data freed when it is remapped (so reading it outside
 * the lock must hold off frees)? */
static bool ent_fragile(const struct ent *d)
{
	return d->kind == K_COMPRESSED || (d->kind == K_NORMAL && !d->copied);
}

static int bad_entry(struct qcow2 *q, uint64_t goff, uint64_t e)
{
	log_ratelimited(1000,
			"%s: corrupt qcow2 L2 entry 0x%016llx for guest "
			"offset 0x%llx",
			q->path, (unsigned long long)e,
			(unsigned long long)goff);
	return -EIO;
}

/* ---- L1 and L2 tables ---- */

/* The L2 table offset in L1 entry 'i': 0 when none, -EIO when corrupt. */
static int l1_decode(struct qcow2 *q, uint64_t i, uint64_t *off)
{
	uint64_t e = q->l1[i];

	*off = e & OFF_MASK;
	if (!(e & L1_RESERVED) && (!*off || host_ok(q, *off)))
		return 0;
	log_ratelimited(1000, "%s: corrupt qcow2 L1 entry %llu (0x%016llx)",
			q->path, (unsigned long long)i, (unsigned long long)e);
	return -EIO;
}

static void l1_mark(struct qcow2 *q, uint64_t i)
{
	q->l1_dirty[i * 8 / 4096] = 1;
	q->meta_dirty = true;
}

static int alloc_find(struct qcow2 *q, uint64_t want, uint64_t *start,
		      uint64_t *n);
static int rb_get(struct qcow2 *q, uint64_t c, struct slot **out);
static int rc_write(struct qcow2 *q, uint64_t c, uint64_t v);

/* A new, empty L2 table for L1 index 'i', linked in memory. */
static int l2_create(struct qcow2 *q, uint64_t i, struct slot **out)
{
	uint64_t c, n;
	struct slot *s;
	int rc;

	rc = alloc_find(q, 1, &c, &n);
	if (rc < 0)
		return rc;
	s = cache_claim(q, &q->l2c, i);
	if (!s)
		return -ENOMEM;
	rc = rc_write(q, c, 1);
	if (rc < 0) {
		cache_drop(&q->l2c, s);
		return rc;
	}
	memset(s->buf, 0, (size_t)q->cs);
	s->off = c << q->cluster_bits;
	s->dirty = s->fresh = true;
	if (c + 1 > q->file_end)
		q->file_end = c + 1;
	if (q->free_hint == c)
		q->free_hint = c + 1;
	q->l1[i] = s->off | OFLAG_COPIED;
	l1_mark(q, i);
	*out = s;
	return 0;
}

/*
 * The L2 table for L1 index 'i', loaded into the cache.  *out is NULL
 * when the table is not allocated, unless 'create' (then a new empty one
 * is linked).  With 'create' the table must be exclusively ours
 * (L1 COPIED flag): a shared table (internal snapshots) is -EIO.
 */
static int l2_get(struct qcow2 *q, uint64_t i, bool create, struct slot **out)
{
	struct slot *s = cache_find(&q->l2c, i);
	uint64_t off;
	int rc;

	*out = NULL;
	if (!s) {
		rc = l1_decode(q, i, &off);
		if (rc < 0)
			return rc;
		if (!off)
			return create ? l2_create(q, i, out) : 0;
		s = cache_claim(q, &q->l2c, i);
		if (!s)
			return -ENOMEM;
		s->off = off;
		rc = file_pread(q, s->buf, (size_t)q->cs, off);
		if (rc < 0) {
			cache_drop(&q->l2c, s);
			return rc;
		}
	}
	if (create && !(q->l1[i] & OFLAG_COPIED)) {
		log_ratelimited(1000,
				"%s: qcow2 L2 table %llu is shared (internal "
				"snapshot?); not written",
				q->path, (unsigned long long)i);
		return -EIO;
	}
	*out = s;
	return 0;
}

/* The L2 entry of guest cluster 'g' (0 when its table is unallocated). */
static int entry_at(struct qcow2 *q, uint64_t g, uint64_t *e)
{
	struct slot *s;
	int rc;

	rc = l2_get(q, g >> q->l2_bits, false, &s);
	if (rc < 0)
		return rc;
	*e = s ? get_be64(s->buf + 8 * (g & ((1ULL << q->l2_bits) - 1))) : 0;
	return 0;
}

/* Set the L2 entry of guest cluster 'g' (creating its table). */
static int entry_set(struct qcow2 *q, uint64_t g, uint64_t e)
{
	struct slot *s;
	int rc;

	rc = l2_get(q, g >> q->l2_bits, true, &s);
	if (rc < 0)
		return rc;
	put_be64(s->buf + 8 * (g & ((1ULL << q->l2_bits) - 1)), e);
	s->dirty = true;
	q->meta_dirty = true;
	return 0;
}

/* ---- refcounts ---- */

/* The refcount block covering host cluster 'c' (NULL: none allocated). */
static int rb_get(struct qcow2 *q, uint64_t c, struct slot **out)
{
	uint64_t k = c >> q->rb_bits, off;
	struct slot *s;
	int rc;

	*out = NULL;
	if (k >= q->rt_entries)
		return 0;
	s = cache_find(&q->rbc, k);
	if (s) {
		*out = s;
		return 0;
	}
	off = q->rt[k];
	if (!off)
		return 0;
	if ((off & ~RT_OFF_MASK) || (off & (q->cs - 1)) ||
	    off >= file_bytes(q) ||
	    cluster_protected(q, off >> q->cluster_bits)) {
		log_ratelimited(1000,
				"%s: corrupt qcow2 refcount table entry %llu "
				"(0x%llx)",
				q->path, (unsigned long long)k,
				(unsigned long long)off);
		return -EIO;
	}
	s = cache_claim(q, &q->rbc, k);
	if (!s)
		return -ENOMEM;
	s->off = off;
	rc = file_pread(q, s->buf, (size_t)q->cs, off);
	if (rc < 0) {
		cache_drop(&q->rbc, s);
		return rc;
	}
	*out = s;
	return 0;
}

static uint64_t rb_index(const struct qcow2 *q, uint64_t c)
{
	return c & ((1ULL << q->rb_bits) - 1);
}

static int rc_read(struct qcow2 *q, uint64_t c, uint64_t *v)
{
	struct slot *s;
	int rc = rb_get(q, c, &s);

	*v = 0;
	if (rc == 0 && s)
		*v = rc_get(q, s->buf, rb_index(q, c));
	return rc;
}

/* Set the refcount of 'c', whose block must exist (in memory only). */
static int rc_write(struct qcow2 *q, uint64_t c, uint64_t v)
{
	struct slot *s;
	int rc = rb_get(q, c, &s);

	if (rc < 0)
		return rc;
	if (!s || v > q->rc_max)
		return -EIO;
	rc_put(q, s->buf, rb_index(q, c), v);
	s->dirty = true;
	q->meta_dirty = true;
	return 0;
}

static int rt_grow(struct qcow2 *q, uint64_t need);

/*
 * Create the refcount block for range 'k' (clusters k << rb_bits ...):
 * placed at the first usable cluster of its own range, counting itself,
 * written and synced before the refcount-table entry that makes it live.
 */
static int rb_create(struct qcow2 *q, uint64_t k)
{
	uint64_t first = k << q->rb_bits, end = first + (1ULL << q->rb_bits);
	uint8_t ent[8];
	struct slot *s;
	uint64_t c;
	int rc;

	if (k >= q->rt_entries) {
		rc = rt_grow(q, k);
		if (rc < 0)
			return rc;
	}
	if (q->rt[k])
		return 0;
	for (c = first; c < end && c < q->file_limit; c++) {
		if (!cluster_protected(q, c) && !rlist_overlaps(&q->resv, c, 1))
			break;
	}
	if (c >= end || c >= q->file_limit)
		return -ENOSPC;
	s = cache_claim(q, &q->rbc, k);
	if (!s)
		return -ENOMEM;
	memset(s->buf, 0, (size_t)q->cs);
	rc_put(q, s->buf, c - first, 1);
	s->off = c << q->cluster_bits;
	put_be64(ent, s->off);
	rc = file_pwrite(q, s->buf, (size_t)q->cs, s->off);
	if (rc == 0)
		rc = file_sync(q);
	if (rc == 0)
		rc = file_pwrite(q, ent, 8, q->rt_off + 8 * k);
	if (rc == 0)
		rc = file_sync(q);
	if (rc < 0) {
		cache_drop(&q->rbc, s);
		return meta_fail(q, rc);
	}
	q->rt[k] = s->off;
	if (c + 1 > q->file_end)
		q->file_end = c + 1;
	return 0;
}

/* Is host cluster 'c' free for allocation? */
static int cluster_free(struct qcow2 *q, uint64_t c, bool *is_free)
{
	uint64_t v;
	int rc;

	*is_free = false;
	if (cluster_protected(q, c) || rlist_overlaps(&q->resv, c, 1) ||
	    rlist_overlaps(&q->held, c, 1))
		return 0;
	rc = rc_read(q, c, &v);
	*is_free = rc == 0 && v == 0;
	return rc;
}

static bool rb_exists(const struct qcow2 *q, uint64_t c)
{
	uint64_t k = c >> q->rb_bits;

	return k < q->rt_entries && q->rt[k];
}

/*
 * Find up to 'want' (>= 1) free host clusters, contiguous: *start and *n
 * (1 <= n <= want).  Every one is covered by an existing refcount block
 * (made here when needed).  Nothing is marked in use: the caller reserves
 * or links them before dropping the lock.
 */
static int alloc_find(struct qcow2 *q, uint64_t want, uint64_t *start,
		      uint64_t *n)
{
	uint64_t c, m;
	unsigned i;
	bool fr;
	int rc;

	if (q->held.n && !__atomic_load_n(&q->fragile, __ATOMIC_ACQUIRE)) {
		/* no read of a freed cluster can still be running */
		for (i = 0; i < q->held.n; i++) {
			if (q->held.v[i].start < q->free_hint)
				q->free_hint = q->held.v[i].start;
		}
		q->held.n = 0;
	}
	c = q->free_hint;
	for (;;) {
		if (c >= q->file_limit) {
			log_ratelimited(1000, "%s: no space left in the image",
					q->path);
			return -ENOSPC;
		}
		if (!rb_exists(q, c)) {
			rc = rb_create(q, c >> q->rb_bits);
			if (rc < 0)
				return rc;
			continue; /* the block may have taken 'c' */
		}
		rc = cluster_free(q, c, &fr);
		if (rc < 0)
			return rc;
		if (fr)
			break;
		c++;
	}
	for (m = 1; m < want; m++) {
		if (c + m >= q->file_limit || !rb_exists(q, c + m))
			break;
		rc = cluster_free(q, c + m, &fr);
		if (rc < 0)
			return rc;
		if (!fr)
			break;
	}
	*start = c;
	*n = m;
	q->free_hint = c + m;
	return 0;
}

/* Queue the clusters of a replaced L2 entry for a decrement in C5. */
static int queue_free(struct qcow2 *q, const struct ent *d)
{
	uint64_t first, last;

	switch (d->kind) {
	case K_NORMAL:
	case K_ZERO:
		if (!d->host)
			return 0;
		return rlist_add(&q->pfree, d->host >> q->cluster_bits, 1);
	case K_COMPRESSED:
		first = d->host >> q->cluster_bits;
		last = (d->host + d->clen - 1) >> q->cluster_bits;
		return rlist_add(&q->pfree, first, last - first + 1);
	default:
		return 0;
	}
}

/*
 * C5: decrement the queued clusters (their pointers are gone on disk).
 * While reads that may use such clusters run ('fragile'), the clusters
 * are also held back from allocation, until alloc_find() sees none.
 */
static int apply_frees(struct qcow2 *q)
{
	bool hold = __atomic_load_n(&q->fragile, __ATOMIC_ACQUIRE) != 0;
	uint64_t c, v;
	unsigned i;
	int rc;

	for (i = 0; i < q->pfree.n; i++) {
		if (hold) {
			rc = rlist_add(&q->held, q->pfree.v[i].start,
				       q->pfree.v[i].n);
			if (rc < 0)
				return rc;
		}
		for (c = q->pfree.v[i].start;
		     c < q->pfree.v[i].start + q->pfree.v[i].n; c++) {
			rc = rc_read(q, c, &v);
			if (rc < 0)
				return rc;
			if (v == 0) {
				log_ratelimited(1000,
						"%s: qcow2 cluster 0x%llx "
						"freed twice",
						q->path, (unsigned long long)c);
				continue;
			}
			rc = rc_write(q, c, v - 1);
			if (rc < 0)
				return rc;
			if (v == 1 && c < q->free_hint)
				q->free_hint = c;
		}
	}
	q->pfree.n = 0;
	return 0;
}

/*
 * Map guest cluster 'g' to host cluster 'h' (reserved, its data written):
 * refcount 1 and the L2 entry, in one critical section; the old mapping's
 * clusters are queued for freeing.
 */
static int link_cluster(struct qcow2 *q, uint64_t g, uint64_t h)
{
	struct slot *s;
	struct ent old;
	uint64_t v, e;
	int rc;

	rc = l2_get(q, g >> q->l2_bits, true, &s);
	if (rc < 0)
		return rc;
	e = get_be64(s->buf + 8 * (g & ((1ULL << q->l2_bits) - 1)));
	rc = rc_read(q, h, &v);
	if (rc < 0)
		return rc;
	if (v != 0 || !rb_exists(q, h))
		return -EIO;
	rc = rlist_reserve(&q->pfree);
	if (rc < 0)
		return rc;
	rc = rc_write(q, h, 1); /* the block is cached: cannot fail now */
	if (rc < 0)
		return rc;
	/* rc_write never touches the L2 cache: 's' is still valid. */
	put_be64(s->buf + 8 * (g & ((1ULL << q->l2_bits) - 1)),
		 (h << q->cluster_bits) | OFLAG_COPIED);
	s->dirty = true;
	q->meta_dirty = true;
	q->link_gen++;
	ent_decode(q, e, &old);
	return queue_free(q, &old); /* room reserved: cannot fail */
}

/* ---- commit ---- */

static int slot_write(struct qcow2 *q, struct slot *s)
{
	return meta_write(q, s->buf, (size_t)q->cs, s->off);
}

static int write_dirty_rbs(struct qcow2 *q)
{
	unsigned i;
	int rc;

	for (i = 0; i < q->rbc.n; i++) {
		struct slot *s = q->rbc.slots[i];

		if (!s->dirty)
			continue;
		rc = slot_write(q, s);
		if (rc < 0)
			return rc;
		s->dirty = false;
	}
	return 0;
}

static int write_dirty_l2s(struct qcow2 *q, bool fresh)
{
	unsigned i;
	int rc;

	for (i = 0; i < q->l2c.n; i++) {
		struct slot *s = q->l2c.slots[i];

		if (!s->dirty || s->fresh != fresh)
			continue;
		rc = slot_write(q, s);
		if (rc < 0)
			return rc;
		s->dirty = s->fresh = false;
	}
	return 0;
}

static int write_dirty_l1(struct qcow2 *q)
{
	uint64_t bytes = (uint64_t)q->l1_size * 8, p, i, lo, hi;
	uint8_t buf[4096];
	int rc;

	for (p = 0; p * 4096 < bytes; p++) {
		if (!q->l1_dirty[p])
			continue;
		lo = p * 512;
		hi = lo + 512 < q->l1_size ? lo + 512 : q->l1_size;
		for (i = lo; i < hi; i++)
			put_be64(buf + 8 * (i - lo), q->l1[i]);
		rc = meta_write(q, buf, (size_t)(8 * (hi - lo)),
				q->l1_off + 8 * lo);
		if (rc < 0)
			return rc;
		q->l1_dirty[p] = 0;
	}
	return 0;
}

/*
 * C0: the data of every linked cluster, and the header's dirty bit (v3),
 * durable before any write that could leave a leak after a power loss.
 */
static int commit_start(struct qcow2 *q)
{
	bool sync = q->synced_gen != q->link_gen;
	int rc;

	if (q->version >= 3 && !q->dirty_durable) {
		rc = hdr_set_dirty(q, true);
		if (rc < 0)
			return rc;
		sync = true;
	}
	if (!sync)
		return 0;
	rc = meta_sync(q);
	if (rc < 0)
		return rc;
	q->synced_gen = q->link_gen;
	q->dirty_durable = q->dirty_on_disk;
	return 0;
}

/*
 * Every metadata change, in the order described at the top (C0..C6), into
 * the open plan (or to the file when there is no commit object).
 */
static int commit_build(struct qcow2 *q)
{
	int rc;

	if (q->meta_dirty || q->pfree.n) {
		rc = commit_start(q); /* C0 */
		if (rc < 0)
			return rc;
	}
	if (q->meta_dirty) {
		rc = write_dirty_rbs(q); /* C1 */
		if (rc == 0)
			rc = write_dirty_l2s(q, true);
		if (rc == 0)
			rc = meta_sync(q); /* C2 */
		if (rc == 0)
			rc = write_dirty_l2s(q, false); /* C3 */
		if (rc == 0)
			rc = write_dirty_l1(q);
		if (rc == 0)
			rc = meta_sync(q); /* C4 */
		if (rc < 0)
			return rc;
		q->meta_dirty = false;
	}
	if (q->pfree.n) {
		rc = apply_frees(q); /* C5 */
		if (rc == 0)
			rc = write_dirty_rbs(q);
		if (rc == 0)
			rc = meta_sync(q);
		if (rc < 0)
			return rc;
		q->meta_dirty = false;
	}
	return hdr_set_dirty(q, false); /* C6 */
}

/*
 * Write every metadata change back as one plan (see the top).  Under the
 * lock.  A failure leaves the image read-only.
 */
static int commit_locked(struct qcow2 *q)
{
	bool opened;
	int rc;

	if (q->failed)
		return -EIO;
	opened = plan_begin(q);
	rc = commit_build(q);
	rc = plan_end(q, opened, rc);
	return rc < 0 ? meta_fail(q, rc) : 0;
}

/* End of an operation that may have grown a cache: commit and trim. */
static int op_end(struct qcow2 *q)
{
	int rc;

	if (!q->want_commit)
		return 0;
	q->want_commit = false;
	rc = commit_locked(q);
	cache_trim(&q->l2c);
	cache_trim(&q->rbc);
	return rc;
}

/*
 * Grow the refcount table so it has an entry 'need' (see the top): the
 * new table and the refcount blocks covering it go at the end of the file,
 * become live with one header write, and the old table is freed.
 */
static int rt_grow(struct qcow2 *q, uint64_t need)
{
	uint64_t epc = q->cs / 8, start, nc, nb, r, r0, r1, area_end, c;
	uint64_t entries = q->rt_entries * 2, old_off = q->rt_off, *nrt = NULL;
	uint32_t old_nc = q->rt_clusters;
	uint8_t *tab = NULL, *blocks = NULL, hdr[12];
	bool opened;
	unsigned i;
	int rc;

	rc = commit_locked(q);
	if (rc < 0)
		return rc;
	if (need + 1 > entries)
		entries = need + 1;
	start = q->file_end;
	for (;;) {
		nc = (entries + epc - 1) / epc;
		nb = 0;
		for (i = 0; i < 64; i++) { /* fixed point of nb */
			uint64_t want = 0;

			area_end = start + nc + nb;
			r0 = start >> q->rb_bits;
			r1 = (area_end - 1) >> q->rb_bits;
			for (r = r0; r <= r1; r++)
				want += r >= q->rt_entries || !q->rt[r];
			if (want == nb)
				break;
			nb = want;
		}
		area_end = start + nc + nb;
		r1 = (area_end - 1) >> q->rb_bits;
		if (r1 < entries && nc * q->cs <= MAX_RT_BYTES)
			break;
		if (nc * q->cs > MAX_RT_BYTES) {
			log_err("%s: qcow2 refcount table would exceed %llu "
				"bytes",
				q->path, (unsigned long long)MAX_RT_BYTES);
			return -ENOSPC;
		}
		entries = r1 + 1 > entries * 2 ? r1 + 1 : entries * 2;
	}
	if (area_end > q->file_limit)
		return -ENOSPC;
	entries = nc * epc;
	tab = meta_zalloc((size_t)(nc * q->cs));
	blocks = meta_zalloc((size_t)((nb ? nb : 1) * q->cs));
	nrt = calloc(entries, sizeof(*nrt));
	if (!tab || !blocks || !nrt) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(nrt, q->rt, q->rt_entries * sizeof(*nrt));
	/* New blocks, in range order, right after the new table. */
	r0 = start >> q->rb_bits;
	for (r = r0, i = 0; r <= r1; r++) {
		if (r < q->rt_entries && q->rt[r])
			continue;
		nrt[r] = (start + nc + i) << q->cluster_bits;
		i++;
	}
	rc = cache_grow_index(&q->rbc, entries);
	if (rc < 0)
		goto out;
	/* One plan: the new table and blocks, the header switch, and the
	 * old table freed. */
	opened = plan_begin(q);
	rc = commit_start(q);
	/* Count every cluster of the new area, in new or existing blocks. */
	for (c = start; rc == 0 && c < area_end; c++) {
		r = c >> q->rb_bits;
		if (r < q->rt_entries && q->rt[r]) {
			rc = rc_write(q, c, 1);
			continue;
		}
		i = (unsigned)(((nrt[r] >> q->cluster_bits) - start) - nc);
		rc_put(q, blocks + i * q->cs, rb_index(q, c), 1);
	}
	for (r = 0; r < entries; r++)
		put_be64(tab + 8 * r, nrt[r]);
	if (rc == 0)
		rc = write_dirty_rbs(q);
	if (rc == 0 && nb)
		rc = meta_write(q, blocks, (size_t)(nb * q->cs),
				(start + nc) << q->cluster_bits);
	if (rc == 0)
		rc = meta_write(q, tab, (size_t)(nc * q->cs),
				start << q->cluster_bits);
	if (rc == 0)
		rc = meta_sync(q);
	put_be64(hdr, start << q->cluster_bits);
	put_be32(hdr + 8, (uint32_t)nc);
	if (rc == 0)
		rc = meta_write(q, hdr, sizeof(hdr), H_RT_OFF);
	if (rc == 0)
		rc = meta_sync(q);
	if (rc == 0) {
		/* Live once the plan ran: switch the in-memory view, then
		 * free the old table. */
		free(q->rt);
		q->rt = nrt;
		nrt = NULL;
		q->rt_entries = entries;
		q->rt_off = start << q->cluster_bits;
		q->rt_clusters = (uint32_t)nc;
		q->file_end = area_end;
		if (q->free_hint >= start && q->free_hint < area_end)
			q->free_hint = area_end;
		rc = rlist_add(&q->pfree, old_off >> q->cluster_bits, old_nc);
	}
	if (rc == 0)
		rc = commit_build(q);
	rc = plan_end(q, opened, rc);
	if (rc < 0)
		rc = meta_fail(q, rc);
out:
	free(nrt);
	free(tab);
	free(blocks);
	return rc;
}

/* ---- mapping guest ranges ---- */

/* A run of guest clusters handled by one host operation. */
struct run {
	struct ent d;	 /* the first cluster's entry */
	struct ent last; /* the last cluster's entry */
	uint64_t n;	 /* clusters */
	uint64_t len;	 /* bytes of the request covered, from its offset */
};

static bool run_continues(const struct qcow2 *q, const struct ent *prev,
			  const struct ent *e, bool wr)
{
	if (e->kind == K_BAD || prev->kind == K_BAD)
		return false;
	if (wr) {
		if (need_alloc(prev) != need_alloc(e))
			return false;
		return need_alloc(e) || e->host == prev->host + q->cs;
	}
	if (e->kind != prev->kind || e->kind == K_COMPRESSED)
		return false;
	return e->kind != K_NORMAL || e->host == prev->host + q->cs;
}

/*
 * Under the lock: the run of clusters starting at guest offset 'off' (at
 * most 'len' bytes, within one L2 table) that one operation can handle:
 * for reads, clusters of one kind (host-contiguous when allocated); for
 * writes, either clusters writable in place (host-contiguous) or clusters
 * that all need allocation.  'shared': the lock is held shared, so an L2
 * table that is not cached is -EAGAIN instead of being loaded.
 */
static int map_run(struct qcow2 *q, uint64_t off, uint64_t len, bool wr,
		   bool shared, struct run *r)
{
	uint64_t g = off >> q->cluster_bits, in = off & (q->cs - 1);
	uint64_t per = 1ULL << q->l2_bits, j = g & (per - 1);
	uint64_t maxn = (in + len + q->cs - 1) >> q->cluster_bits;
	struct slot *s;
	struct ent e;
	int rc;

	if (maxn > per - j)
		maxn = per - j;
	if (shared) { /* no loading: -EAGAIN, retry exclusive */
		uint64_t toff;

		s = cache_find(&q->l2c, g >> q->l2_bits);
		rc = s ? 0 : l1_decode(q, g >> q->l2_bits, &toff);
		if (rc == 0 && !s && toff)
			rc = -EAGAIN;
	} else {
		rc = l2_get(q, g >> q->l2_bits, false, &s);
	}
	if (rc < 0)
		return rc;
	if (!s) {
		ent_decode(q, 0, &r->d);
		r->last = r->d;
		r->n = maxn;
	} else {
		ent_decode(q, get_be64(s->buf + 8 * j), &r->d);
		r->last = r->d;
		for (r->n = 1; r->n < maxn; r->n++) {
			ent_decode(q, get_be64(s->buf + 8 * (j + r->n)), &e);
			if (!run_continues(q, &r->last, &e, wr))
				break;
			r->last = e;
		}
	}
	r->len = (r->n << q->cluster_bits) - in;
	if (r->len > len)
		r->len = len;
	return 0;
}

/* ---- reading ---- */

/* Read and inflate the compressed cluster 'd' into 'out' (one cluster). */
static int read_compressed(struct qcow2 *q, const struct ent *d, uint8_t *out)
{
	uint8_t *in = malloc((size_t)d->clen);
	z_stream z;
	int rc, zr;

	if (!in)
		return -ENOMEM;
	rc = file_pread(q, in, (size_t)d->clen, d->host);
	if (rc < 0)
		goto out;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, -15) != Z_OK) {
		rc = -ENOMEM;
		goto out;
	}
	z.next_in = in;
	z.avail_in = (uInt)d->clen;
	z.next_out = out;
	z.avail_out = (uInt)q->cs;
	zr = inflate(&z, Z_FINISH);
	inflateEnd(&z);
	if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR && zr != Z_OK) ||
	    z.avail_out != 0) {
		log_ratelimited(1000,
				"%s: corrupt qcow2 compressed cluster at "
				"0x%llx",
				q->path, (unsigned long long)d->host);
		rc = -EIO;
	}
out:
	free(in);
	return rc;
}

/* Guest bytes [off, off+len) of the backing image into 'w' (zeros past
 * its end, or without one). */
static int read_backing(struct qcow2 *q, const struct iovec *w, unsigned n,
			uint64_t off, uint64_t len)
{
	struct iovec *v;
	uint64_t part;
	unsigned m;
	int rc;

	if (!q->bk || off >= q->bk_size) {
		iov_zero(w, n);
		return 0;
	}
	if (len <= q->bk_size - off)
		return q->bk->ops->preadv(q->bk, w, n, off);
	part = q->bk_size - off;
	v = malloc((n + 2) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	m = iov_slice(v, n + 2, w, n, 0, part);
	rc = q->bk->ops->preadv(q->bk, v, m, off);
	m = iov_slice(v, n + 2, w, n, part, len - part);
	iov_zero(v, m);
	free(v);
	return rc;
}

/* Does the guest range [off, off+len) of an unallocated cluster read as
 * zeros (no backing data under it)? */
static bool unalloc_is_zero(const struct qcow2 *q, uint64_t off)
{
	return !q->bk || off >= q->bk_size;
}

static int read_run(struct qcow2 *q, const struct run *r, uint64_t off,
		    const struct iovec *w, unsigned n)
{
	uint64_t in = off & (q->cs - 1);
	uint8_t *buf;
	int rc;

	switch (r->d.kind) {
	case K_ZERO:
		iov_zero(w, n);
		return 0;
	case K_UNALLOC:
		return read_backing(q, w, n, off, r->len);
	case K_NORMAL:
		return blk_file_preadv(q->f, w, n, r->d.host + in);
	case K_COMPRESSED:
		buf = malloc((size_t)q->cs);
		if (!buf)
			return -ENOMEM;
		rc = read_compressed(q, &r->d, buf);
		if (rc == 0)
			iov_from_buf(w, n, buf + in);
		free(buf);
		return rc;
	default:
		return bad_entry(q, off, r->d.raw);
	}
}

static uint64_t iov_total(const struct iovec *iov, unsigned cnt)
{
	uint64_t t = 0;
	unsigned i;

	for (i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return t;
}

static int q2_preadv(struct blk_backend *be, const struct iovec *iov,
		     unsigned iovcnt, uint64_t off)
{
	struct qcow2 *q = q2(be);
	uint64_t total = iov_total(iov, iovcnt), done = 0;
	struct iovec stackv[16], *w = stackv;
	unsigned n;
	bool fragile;
	struct run r;
	int rc = 0;

	if (iovcnt + 2 > 16) {
		w = malloc((iovcnt + 2) * sizeof(*w));
		if (!w)
			return -ENOMEM;
	}
	while (done < total) {
		lock_shared(q);
		rc = map_run(q, off + done, total - done, false, true, &r);
		if (rc == -EAGAIN) { /* load the table */
			unlock(q);
			lock_excl(q);
			rc = map_run(q, off + done, total - done, false, false,
				     &r);
			if (rc == 0)
				rc = op_end(q);
		}
		fragile = rc == 0 && ent_fragile(&r.d);
		if (fragile)
			__atomic_add_fetch(&q->fragile, 1, __ATOMIC_ACQ_REL);
		unlock(q);
		if (rc < 0)
			break;
		n = iov_slice(w, iovcnt + 2, iov, iovcnt, done, r.len);
		rc = read_run(q, &r, off + done, w, n);
		if (fragile)
			__atomic_sub_fetch(&q->fragile, 1, __ATOMIC_ACQ_REL);
		if (rc < 0)
			break;
		done += r.len;
	}
	if (w != stackv)
		free(w);
	return rc;
}

/* ---- writing ---- */

/* Old content of guest cluster 'gc' (guest offset), bytes [from,
 * from+len), into 'buf': what a partial write copies around itself. */
static int cow_read(struct qcow2 *q, const struct ent *d, uint64_t gc,
		    uint64_t from, uint64_t len, uint8_t *buf)
{
	struct iovec v = {.iov_base = buf, .iov_len = (size_t)len};
	uint8_t *tmp;
	int rc;

	if (!len)
		return 0;
	switch (d->kind) {
	case K_UNALLOC:
		return read_backing(q, &v, 1, gc + from, len);
	case K_ZERO:
		memset(buf, 0, (size_t)len);
		return 0;
	case K_NORMAL:
		return file_pread(q, buf, (size_t)len, d->host + from);
	case K_COMPRESSED:
		tmp = malloc((size_t)q->cs);
		if (!tmp)
			return -ENOMEM;
		rc = read_compressed(q, d, tmp);
		if (rc == 0)
			memcpy(buf, tmp + from, (size_t)len);
		free(tmp);
		return rc;
	default:
		return bad_entry(q, gc + from, d->raw);
	}
}

/*
 * Write run 'r' (clusters that need allocation) at guest offset 'off'
 * from bytes [skip, ...) of the request: reserve host clusters, write the
 * whole clusters (old content around the new bytes), link.  Called with
 * the lock held exclusive and the run's clusters not in flight; returns
 * with it released, and *done the bytes written (the run may be shortened to
 * the contiguous clusters found).
 */
static int write_alloc(struct qcow2 *q, struct run *r, uint64_t off,
		       const struct iovec *iov, unsigned iovcnt, uint64_t skip,
		       struct iovec *w, uint64_t *done)
{
	uint64_t g0 = off >> q->cluster_bits, in = off & (q->cs - 1);
	uint64_t h, k, i, end, tail_len, tail_from, e;
	uint8_t *head = NULL, *tail = NULL;
	unsigned nfrag = 0, m;
	int rc, rc2;

	rc = alloc_find(q, r->n, &h, &k);
	if (rc < 0)
		goto unlock;
	if (k < r->n) {
		r->n = k;
		if (r->len > (k << q->cluster_bits) - in)
			r->len = (k << q->cluster_bits) - in;
		rc = entry_at(q, g0 + k - 1, &e);
		if (rc < 0)
			goto unlock;
		ent_decode(q, e, &r->last);
		if (r->last.kind == K_BAD) {
			rc = bad_entry(q, (g0 + k - 1) << q->cluster_bits, e);
			goto unlock;
		}
	}
	end = in + r->len;
	tail_len = (k << q->cluster_bits) - end;
	tail_from = end - ((k - 1) << q->cluster_bits);
	rc = rlist_add(&q->resv, h, k);
	if (rc < 0)
		goto unlock;
	rc = rlist_add(&q->infl, g0, k);
	if (rc < 0) {
		rlist_del(&q->resv, h, k);
		goto unlock;
	}
	if (h + k > q->file_end)
		q->file_end = h + k;
	nfrag = (in && ent_fragile(&r->d)) +
		(tail_len && ent_fragile(&r->last));
	__atomic_add_fetch(&q->fragile, nfrag, __ATOMIC_ACQ_REL);
	unlock(q);

	if (in)
		head = meta_alloc((size_t)in);
	if (tail_len)
		tail = meta_alloc((size_t)tail_len);
	if ((in && !head) || (tail_len && !tail))
		rc = -ENOMEM;
	if (rc == 0)
		rc = cow_read(q, &r->d, g0 << q->cluster_bits, 0, in, head);
	if (rc == 0)
		rc = cow_read(q, &r->last, (g0 + k - 1) << q->cluster_bits,
			      tail_from, tail_len, tail);
	if (rc == 0) {
		m = 0;
		if (in) {
			w[m].iov_base = head;
			w[m++].iov_len = (size_t)in;
		}
		m += iov_slice(w + m, iovcnt, iov, iovcnt, skip, r->len);
		if (tail_len) {
			w[m].iov_base = tail;
			w[m++].iov_len = (size_t)tail_len;
		}
		rc = blk_file_pwritev(q->f, w, m, h << q->cluster_bits);
	}
	free(head);
	free(tail);

	lock_excl(q);
	__atomic_sub_fetch(&q->fragile, nfrag, __ATOMIC_ACQ_REL);
	for (i = 0; rc == 0 && i < k; i++)
		rc = link_cluster(q, g0 + i, h + i);
	if (rc < 0 && h < q->free_hint)
		q->free_hint = h; /* unlinked clusters stay free */
	rlist_del(&q->resv, h, k);
	rlist_del(&q->infl, g0, k);
	inflight_done(q);
	*done = r->len;
unlock:
	rc2 = op_end(q);
	unlock(q);
	return rc < 0 ? rc : rc2;
}

/* Write run 'r' in place (clusters ours and host-contiguous). */
static int write_in_place(struct qcow2 *q, const struct run *r, uint64_t off,
			  const struct iovec *iov, unsigned iovcnt,
			  uint64_t skip, struct iovec *w)
{
	unsigned n = iov_slice(w, iovcnt + 2, iov, iovcnt, skip, r->len);

	return blk_file_pwritev(q->f, w, n, r->d.host + (off & (q->cs - 1)));
}

static int q2_pwritev(struct blk_backend *be, const struct iovec *iov,
		      unsigned iovcnt, uint64_t off)
{
	struct qcow2 *q = q2(be);
	uint64_t total = iov_total(iov, iovcnt), done = 0, wrote;
	struct iovec stackv[16], *w = stackv;
	struct run r;
	int rc = 0;

	if (iovcnt + 2 > 16) {
		w = malloc((iovcnt + 2) * sizeof(*w));
		if (!w)
			return -ENOMEM;
	}
	while (done < total && rc == 0) {
		/* The common case, an overwrite, under the shared lock. */
		lock_shared(q);
		rc = q->failed ? -EIO
			       : map_run(q, off + done, total - done, true,
					 true, &r);
		unlock(q);
		if (rc == 0 && r.d.kind != K_BAD && !need_alloc(&r.d)) {
			rc = write_in_place(q, &r, off + done, iov, iovcnt,
					    done, w);
			done += r.len;
			continue;
		}
		if (rc < 0 && rc != -EAGAIN)
			break;
		lock_excl(q);
		rc = q->failed ? -EIO
			       : map_run(q, off + done, total - done, true,
					 false, &r);
		if (rc == 0 && r.d.kind == K_BAD)
			rc = bad_entry(q, off + done, r.d.raw);
		if (rc < 0) {
			unlock(q);
			break;
		}
		if (!need_alloc(&r.d)) {
			unlock(q);
			rc = write_in_place(q, &r, off + done, iov, iovcnt,
					    done, w);
			done += r.len;
			continue;
		}
		if (rlist_overlaps(&q->infl, (off + done) >> q->cluster_bits,
				   r.n)) {
			wait_inflight(q);
			continue;
		}
		wrote = 0;
		rc = write_alloc(q, &r, off + done, iov, iovcnt, done, w,
				 &wrote);
		done += wrote;
	}
	if (w != stackv)
		free(w);
	return rc;
}

/* ---- discard and write-zeroes ---- */

/* Write zeros at guest [off, off+len) through the normal write path. */
static int write_zero_bytes(struct qcow2 *q, uint64_t off, uint64_t len)
{
	struct iovec v[32];
	unsigned n;
	uint64_t step;
	int rc;

	while (len > 0) {
		for (n = 0, step = 0; n < 32 && step < len; n++) {
			v[n].iov_base = (void *)(uintptr_t)zero_chunk;
			v[n].iov_len = len - step < ZERO_CHUNK
					       ? (size_t)(len - step)
					       : ZERO_CHUNK;
			step += v[n].iov_len;
		}
		rc = q2_pwritev(&q->be, v, n, off);
		if (rc < 0)
			return rc;
		off += step;
		len -= step;
	}
	return 0;
}

/* Zero host bytes of allocated clusters: punch a hole (files, discard)
 * or zero the range. */
static int zero_host(struct qcow2 *q, uint64_t host, uint64_t len, bool discard)
{
	int rc;

	if (discard && !q->f->bdev) {
		rc = blk_file_discard(q->f, host, len);
		if (rc != -EOPNOTSUPP)
			return rc;
	}
	return blk_file_write_zeroes(q->f, host, len);
}

/*
 * Under the lock: make the 'n' whole guest clusters from 'g0' (one run
 * needing allocation, none in flight) read as zeros with the v3 zero flag
 * where their content is not zero already.
 */
static int zero_flag_clusters(struct qcow2 *q, uint64_t g0, uint64_t n)
{
	struct ent d;
	uint64_t i, e;
	int rc;

	for (i = 0; i < n; i++) {
		rc = entry_at(q, g0 + i, &e);
		if (rc < 0)
			return rc;
		ent_decode(q, e, &d);
		if (d.kind == K_ZERO ||
		    (d.kind == K_UNALLOC &&
		     unalloc_is_zero(q, (g0 + i) << q->cluster_bits)))
			continue;
		if (d.kind == K_BAD)
			return bad_entry(q, (g0 + i) << q->cluster_bits, e);
		rc = rlist_reserve(&q->pfree); /* queue_free cannot fail */
		if (rc < 0)
			return rc;
		rc = entry_set(q, g0 + i, OFLAG_ZERO);
		if (rc < 0)
			return rc;
		rc = queue_free(q, &d);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int q2_zero_range(struct qcow2 *q, uint64_t off, uint64_t len,
			 bool discard)
{
	uint64_t in, plen, nfull;
	struct run r;
	int rc = 0;

	while (len > 0 && rc == 0) {
		lock_excl(q);
		if (q->failed) {
			unlock(q);
			return -EIO;
		}
		rc = map_run(q, off, len, true, false, &r);
		if (rc == 0 && r.d.kind == K_BAD)
			rc = bad_entry(q, off, r.d.raw);
		if (rc < 0) {
			unlock(q);
			break;
		}
		in = off & (q->cs - 1);
		if (!need_alloc(&r.d)) {
			/* Allocated and ours: keep the mapping, zero the
			 * host bytes. */
			unlock(q);
			rc = zero_host(q, r.d.host + in, r.len, discard);
			off += r.len;
			len -= r.len;
			continue;
		}
		nfull = in ? 0 : r.len >> q->cluster_bits;
		if (nfull && q->version >= 3) {
			if (rlist_overlaps(&q->infl, off >> q->cluster_bits,
					   nfull)) {
				wait_inflight(q);
				continue;
			}
			rc = zero_flag_clusters(q, off >> q->cluster_bits,
						nfull);
			if (rc == 0)
				rc = op_end(q);
			unlock(q);
			off += nfull << q->cluster_bits;
			len -= nfull << q->cluster_bits;
			continue;
		}
		/* One cluster, partial (or any on v2, which has no zero
		 * flag): zeros through the write path, unless it reads as
		 * zeros already. */
		plen = q->cs - in < r.len ? q->cs - in : r.len;
		unlock(q);
		if (r.d.kind != K_ZERO &&
		    !(r.d.kind == K_UNALLOC && unalloc_is_zero(q, off)))
			rc = write_zero_bytes(q, off, plen);
		off += plen;
		len -= plen;
	}
	return rc;
}

static int q2_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	return q2_zero_range(q2(be), off, len, true);
}

static int q2_write_zeroes(struct blk_backend *be, uint64_t off, uint64_t len)
{
	return q2_zero_range(q2(be), off, len, false);
}

/*
 * A guest FLUSH: C0 outside the lock (the long data sync does not hold up
 * other requests), with the dirty bit set before it when the commit will
 * need it, then the rest of the commit.
 */
static int q2_flush(struct blk_backend *be)
{
	struct qcow2 *q = q2(be);
	unsigned dg;
	uint64_t g;
	int rc;

	lock_excl(q);
	g = q->link_gen;
	rc = q->failed ? -EIO : 0;
	if (rc == 0 && (q->meta_dirty || q->pfree.n) && !q->dirty_durable) {
		rc = hdr_set_dirty(q, true);
		if (rc < 0)
			rc = meta_fail(q, rc);
	}
	dg = q->dirty_gen;
	unlock(q);
	if (rc < 0)
		return rc;
	rc = file_sync(q); /* C0, outside the lock */
	lock_excl(q);
	if (rc < 0) {
		rc = meta_fail(q, rc);
	} else {
		if (q->synced_gen < g)
			q->synced_gen = g;
		if (q->dirty_on_disk && q->dirty_gen == dg)
			q->dirty_durable = true;
		rc = commit_locked(q);
		cache_trim(&q->l2c);
		cache_trim(&q->rbc);
	}
	unlock(q);
	return rc;
}

static uint64_t q2_size(struct blk_backend *be)
{
	return q2(be)->size;
}

/* ---- refcount scan (check, and repair after a crash) ---- */

struct scan {
	struct qcow2 *q;
	uint16_t *refs; /* references per host cluster, saturating */
	uint64_t n;	/* clusters of the file */
	struct qcow2_check_result *res;
};

static void scan_add(struct scan *sc, uint64_t off, uint64_t len)
{
	uint64_t c, last;

	if (!len)
		return;
	last = (off + len - 1) >> sc->q->cluster_bits;
	for (c = off >> sc->q->cluster_bits; c <= last; c++) {
		if (c >= sc->n) {
			sc->res->errors++;
			return;
		}
		if (sc->refs[c] < UINT16_MAX)
			sc->refs[c]++;
	}
}

static int scan_l2(struct scan *sc, uint64_t i, uint8_t *buf)
{
	struct qcow2 *q = sc->q;
	struct slot *s = i < q->l1_used ? cache_find(&q->l2c, i) : NULL;
	uint64_t off, j;
	struct ent d;
	int rc;

	rc = l1_decode(q, i, &off);
	if (rc < 0 || !off) {
		sc->res->errors += rc < 0;
		return 0;
	}
	scan_add(sc, off, q->cs);
	if (!s) {
		rc = file_pread(q, buf, (size_t)q->cs, off);
		if (rc < 0)
			return rc;
	}
	for (j = 0; j < (1ULL << q->l2_bits); j++) {
		ent_decode(q, get_be64((s ? s->buf : buf) + 8 * j), &d);
		switch (d.kind) {
		case K_NORMAL:
		case K_ZERO:
			scan_add(sc, d.host, d.host ? q->cs : 0);
			break;
		case K_COMPRESSED:
			scan_add(sc, d.host, d.clen);
			break;
		case K_BAD:
			sc->res->errors++;
			break;
		default:
			break;
		}
	}
	return 0;
}

/*
 * Count every reference and compare with the refcounts (under the lock,
 * with nothing uncommitted).  'fix': set leaked refcounts to the
 * references and commit.
 */
static int scan_refs(struct qcow2 *q, bool fix, struct qcow2_check_result *r)
{
	struct scan sc = {.q = q, .n = q->file_end, .res = r};
	uint8_t *buf = NULL;
	uint64_t i, v;
	int rc;

	memset(r, 0, sizeof(*r));
	if (sc.n > (1ULL << 32)) {
		log_err("%s: too large to check", q->path);
		return -EFBIG;
	}
	sc.refs = calloc(sc.n ? sc.n : 1, sizeof(*sc.refs));
	buf = meta_alloc((size_t)q->cs);
	if (!sc.refs || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	scan_add(&sc, 0, q->cs);
	scan_add(&sc, q->l1_off, (uint64_t)q->l1_size * 8);
	for (i = 0; i < q->l1_size; i++) {
		rc = scan_l2(&sc, i, buf);
		if (rc < 0)
			goto out;
	}
	scan_add(&sc, q->rt_off, (uint64_t)q->rt_clusters << q->cluster_bits);
	for (i = 0; i < q->rt_entries; i++) {
		if (!q->rt[i])
			continue;
		if (!host_ok(q, q->rt[i]))
			r->errors++;
		else
			scan_add(&sc, q->rt[i], q->cs);
	}
	for (i = 0; i < sc.n; i++) {
		if (rc_read(q, i, &v) < 0) {
			r->errors++;
			i |= (1ULL << q->rb_bits) - 1; /* skip the block */
			continue;
		}
		r->referenced += sc.refs[i] != 0;
		if (v < sc.refs[i]) {
			r->errors++;
		} else if (v > sc.refs[i]) {
			r->leaks++;
			if (fix && rc_write(q, i, sc.refs[i]) == 0)
				r->leaks_fixed++;
		}
	}
	r->clusters = sc.n;
	rc = 0;
	if (fix && r->leaks_fixed && !r->errors)
		rc = commit_locked(q);
out:
	free(sc.refs);
	free(buf);
	return rc;
}

/* ---- opening ---- */

enum open_mode {
	OPEN_IO,    /* the block layer's open: backing chain, repair */
	OPEN_CHECK, /* qcow2_check(): no backing, no repair at open */
};

static int bad_header(struct qcow2 *q, const char *what)
{
	log_err("%s: invalid qcow2 header: %s", q->path, what);
	return -EINVAL;
}

static int unsupported(struct qcow2 *q, const char *what)
{
	log_err("%s: qcow2 feature not supported: %s", q->path, what);
	return -ENOTSUP;
}

/* The feature-name-table name of an incompatible bit, or "". */
static void feature_name(const uint8_t *tab, uint32_t len, unsigned bit,
			 char *out, size_t outlen)
{
	uint32_t i;

	out[0] = '\0';
	for (i = 0; tab && i + 48 <= len; i += 48) {
		if (tab[i] == 0 && tab[i + 1] == bit) {
			size_t n = strnlen((const char *)tab + i + 2, 46);
			size_t k;

			if (n >= outlen)
				n = outlen - 1;
			for (k = 0; k < n; k++) {
				char ch = (char)tab[i + 2 + k];

				out[k] = ch >= 0x20 && ch < 0x7f ? ch : '?';
			}
			out[n] = '\0';
			return;
		}
	}
}

/* Header extensions in [pos, end) of the header cluster. */
static int parse_extensions(struct qcow2 *q, const uint8_t *h, uint64_t pos,
			    uint64_t end, const uint8_t **ftab,
			    uint32_t *ftab_len)
{
	uint32_t type, len, k;

	while (pos + 8 <= end) {
		type = get_be32(h + pos);
		len = get_be32(h + pos + 4);
		pos += 8;
		if (type == EXT_END)
			return 0;
		if (len > end - pos)
			return bad_header(q, "header extension too long");
		switch (type) {
		case EXT_BACKING_FMT:
			if (len == 0 || len > 15)
				return bad_header(q, "backing format name");
			for (k = 0; k < len; k++) {
				if (h[pos + k] < 0x21 || h[pos + k] > 0x7e)
					return bad_header(
						q, "backing format name");
			}
			free(q->backing_fmt);
			q->backing_fmt = strndup((const char *)h + pos, len);
			if (!q->backing_fmt)
				return -ENOMEM;
			break;
		case EXT_FEATURES:
			*ftab = h + pos;
			*ftab_len = len;
			break;
		case EXT_BITMAPS:
			q->has_bitmaps = true;
			break;
		default: /* unknown ones are safe to ignore */
			break;
		}
		pos += ((uint64_t)len + 7) & ~7ULL;
	}
	return 0;
}

/* Feature bits, version 3 fields, and what refuses a write. */
static int check_features(struct qcow2 *q, const uint8_t *h,
			  const uint8_t *ftab, uint32_t ftab_len)
{
	uint64_t unknown = q->incompat & ~INCOMPAT_KNOWN;
	uint8_t ctype = q->hdr_len > H_COMPRESSION ? h[H_COMPRESSION] : 0;
	char name[64], msg[128];
	unsigned bit;

	if (unknown) {
		bit = (unsigned)__builtin_ctzll(unknown);
		feature_name(ftab, ftab_len, bit, name, sizeof(name));
		snprintf(msg, sizeof(msg),
			 "unknown incompatible feature bit %u%s%s%s", bit,
			 name[0] ? " ('" : "", name, name[0] ? "')" : "");
		return unsupported(q, msg);
	}
	if (q->incompat & INCOMPAT_DATA_FILE)
		return unsupported(q, "external data file");
	if (q->incompat & INCOMPAT_EXTL2)
		return unsupported(q, "extended L2 entries (subclusters)");
	if (q->incompat & INCOMPAT_COMPRESSION) {
		if (ctype == 1)
			return unsupported(q, "zstd compression");
		snprintf(msg, sizeof(msg), "compression type %u", ctype);
		return unsupported(q, msg);
	}
	if (ctype != 0)
		return bad_header(q, "compression type without its feature "
				     "bit");
	if (!q->writable)
		return 0;
	if (q->incompat & INCOMPAT_CORRUPT) {
		log_err("%s: qcow2 image is marked corrupt: open it read-only "
			"or repair it with 'qemu-img check -r all'",
			q->path);
		return -EROFS;
	}
	if (q->nb_snapshots)
		return unsupported(q, "writing an image with internal "
				      "snapshots (open it read-only)");
	if (q->has_bitmaps && (q->autoclear & AUTOCLEAR_BITMAPS))
		return unsupported(q, "writing an image with persistent "
				      "bitmaps (open it read-only)");
	return 0;
}

/* The fixed header fields and their limits. */
static int parse_header(struct qcow2 *q, const uint8_t *h, uint64_t fsize)
{
	uint64_t span_bits, need, l1_bytes, rt_bytes, fend;
	uint32_t crypt;

	q->size = get_be64(h + H_SIZE);
	crypt = get_be32(h + H_CRYPT);
	q->l1_size = get_be32(h + H_L1_SIZE);
	q->l1_off = get_be64(h + H_L1_OFF);
	q->rt_off = get_be64(h + H_RT_OFF);
	q->rt_clusters = get_be32(h + H_RT_CLUSTERS);
	q->nb_snapshots = get_be32(h + H_NB_SNAP);
	q->snap_off = get_be64(h + H_SNAP_OFF);
	q->refcount_order = 4;
	q->hdr_len = HDR_V2_LEN;
	if (q->version >= 3) {
		q->incompat = get_be64(h + H_INCOMPAT);
		q->compat = get_be64(h + H_COMPAT);
		q->autoclear = get_be64(h + H_AUTOCLEAR);
		q->refcount_order = get_be32(h + H_REFCOUNT_ORDER);
		q->hdr_len = get_be32(h + H_HDR_LEN);
		if (q->hdr_len < HDR_V3_LEN || q->hdr_len % 8 ||
		    q->hdr_len > q->cs)
			return bad_header(q, "header length");
	}
	if (crypt)
		return unsupported(q, crypt == 2 ? "LUKS encryption"
						 : "AES encryption");
	if (q->refcount_order > 6)
		return bad_header(q, "refcount order above 6");
	q->l2_bits = q->cluster_bits - 3;
	q->rb_bits = q->cluster_bits + 3 - q->refcount_order;
	q->rc_max = q->refcount_order == 6
			    ? UINT64_MAX
			    : (1ULL << (1U << q->refcount_order)) - 1;
	fend = (fsize + q->cs - 1) & ~(q->cs - 1);

	/* L1: large enough for the size, within QEMU's limit, in the file. */
	span_bits = q->cluster_bits + q->l2_bits;
	need = (q->size >> span_bits) +
	       ((q->size & ((1ULL << span_bits) - 1)) != 0);
	l1_bytes = (uint64_t)q->l1_size * 8;
	if (l1_bytes > MAX_L1_BYTES)
		return bad_header(q, "L1 table larger than 32 MiB");
	if (need > q->l1_size)
		return bad_header(q, "L1 table too small for the virtual size");
	if (q->l1_size && (!q->l1_off || (q->l1_off & (q->cs - 1)) ||
			   q->l1_off > fend || l1_bytes > fend - q->l1_off))
		return bad_header(q, "L1 table offset");
	q->l1_used = need;

	rt_bytes = (uint64_t)q->rt_clusters << q->cluster_bits;
	if (!q->rt_clusters || rt_bytes > MAX_RT_BYTES)
		return bad_header(q, "refcount table size");
	if (!q->rt_off || (q->rt_off & (q->cs - 1)) || q->rt_off > fend ||
	    rt_bytes > fend - q->rt_off)
		return bad_header(q, "refcount table offset");
	q->rt_entries = rt_bytes / 8;

	if (q->nb_snapshots > MAX_SNAPSHOTS ||
	    (q->nb_snapshots && (q->snap_off & (q->cs - 1))))
		return bad_header(q, "snapshot table");
	return 0;
}

/* The backing file name stored in the header cluster. */
static int parse_backing_name(struct qcow2 *q, const uint8_t *h)
{
	uint64_t off = get_be64(h + H_BACKING_OFF);
	uint32_t len = get_be32(h + H_BACKING_LEN);

	if (!off)
		return 0;
	if (len == 0 || len > MAX_BACKING_NAME)
		return bad_header(q, "backing file name length");
	if (off < q->hdr_len || off > q->cs || len > q->cs - off)
		return bad_header(q, "backing file name offset");
	if (memchr(h + off, '\0', len))
		return bad_header(q, "backing file name");
	q->backing_name = strndup((const char *)h + off, len);
	return q->backing_name ? 0 : -ENOMEM;
}

static int read_tables(struct qcow2 *q)
{
	uint64_t i, l1_bytes = (uint64_t)q->l1_size * 8;
	uint8_t *raw;
	int rc;

	q->l1 = calloc(q->l1_size ? q->l1_size : 1, sizeof(*q->l1));
	q->l1_dirty = calloc(l1_bytes / 4096 + 1, 1);
	q->rt = calloc(q->rt_entries, sizeof(*q->rt));
	raw = malloc((size_t)(l1_bytes > q->rt_entries * 8
				      ? l1_bytes
				      : q->rt_entries * 8));
	if (!q->l1 || !q->l1_dirty || !q->rt || !raw) {
		free(raw);
		return -ENOMEM;
	}
	rc = file_pread(q, raw, (size_t)l1_bytes, q->l1_off);
	for (i = 0; rc == 0 && i < q->l1_size; i++)
		q->l1[i] = get_be64(raw + 8 * i);
	if (rc == 0)
		rc = file_pread(q, raw, (size_t)(q->rt_entries * 8), q->rt_off);
	for (i = 0; rc == 0 && i < q->rt_entries; i++)
		q->rt[i] = get_be64(raw + 8 * i);
	free(raw);
	if (rc < 0)
		log_errno(LOG_ERR, -rc, "%s: reading the qcow2 tables",
			  q->path);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Two refcount-table entries naming one block would let one block count
 * two ranges (and a crafted table of a million copies of one full block
 * make the allocator scan forever): refused for writing.
 */
static int check_rt_unique(struct qcow2 *q)
{
	uint64_t *v = malloc(q->rt_entries * sizeof(*v)), n = 0, i;
	int rc = 0;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < q->rt_entries; i++) {
		if (q->rt[i])
			v[n++] = q->rt[i];
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	for (i = 1; i < n && rc == 0; i++) {
		if (v[i] == v[i - 1])
			rc = bad_header(q, "refcount blocks shared by two "
					   "refcount table entries");
	}
	free(v);
	return rc;
}

static unsigned cache_slots(uint64_t keys, uint64_t bytes, unsigned cb)
{
	uint64_t n = bytes >> cb;

	if (n > keys)
		n = keys;
	if (n < CACHE_MIN_SLOTS)
		n = CACHE_MIN_SLOTS;
	return n > CACHE_MAX_SLOTS ? CACHE_MAX_SLOTS : (unsigned)n;
}

static int q2_open_layer(struct blk_backend **out, struct blk_file *f,
			 const struct blk_opts *o, struct chain *ch,
			 enum open_mode mode);

static int chain_add(const char *path, struct chain *ch, int fd)
{
	struct stat st;
	unsigned i;

	if (fstat(fd, &st) < 0)
		return -errno;
	for (i = 0; i < ch->n; i++) {
		if (ch->dev[i] == st.st_dev && ch->ino[i] == st.st_ino) {
			log_err("%s: qcow2 backing chain loops back to an "
				"image already in the chain",
				path);
			return -ELOOP;
		}
	}
	if (ch->n == MAX_CHAIN) {
		log_err("%s: qcow2 backing chain deeper than %u images", path,
			MAX_CHAIN);
		return -ELOOP;
	}
	ch->dev[ch->n] = st.st_dev;
	ch->ino[ch->n] = st.st_ino;
	ch->n++;
	return 0;
}

/* 'name' relative to the directory of 'image' (absolute names as is). */
static char *resolve_backing(const char *image, const char *name)
{
	const char *slash = strrchr(image, '/');
	char *p;

	if (name[0] == '/' || !slash)
		return strdup(name);
	if (asprintf(&p, "%.*s/%s", (int)(slash - image), image, name) < 0)
		return NULL;
	return p;
}

/* "qcow2" or "raw" from the first bytes of an image. */
static const char *probe_format(const struct blk_file *f)
{
	uint8_t *h = meta_alloc(4096);
	const char *fmt = "raw";

	if (!h)
		return NULL;
	if (f->size >= 4 && blk_file_pread(f, h, 4096, 0) == 0 &&
	    get_be32(h) == QCOW2_MAGIC)
		fmt = "qcow2";
	free(h);
	return fmt;
}

/*
 * Open an image of a backing chain read-only: 'bf' (allocated by the
 * caller, opened here) with format 'fmt' (NULL = probe).  *be on success.
 */
static int open_image_ro(const char *path, const char *fmt, bool nocache,
			 struct chain *ch, struct blk_file *bf,
			 struct blk_backend **be, const char **fmt_out)
{
	struct blk_opts bo;
	int rc;

	memset(&bo, 0, sizeof(bo));
	bo.path = path;
	bo.ro = true;
	bo.nocache = nocache;
	rc = blk_file_open(bf, &bo);
	if (rc < 0)
		return rc;
	if (!fmt)
		fmt = probe_format(bf);
	if (!fmt) {
		rc = -ENOMEM;
	} else if (strcmp(fmt, "qcow2") == 0) {
		rc = q2_open_layer(be, bf, &bo, ch, OPEN_IO);
	} else if (strcmp(fmt, "raw") == 0) {
		rc = blk_raw_ops.open(be, bf, &bo); /* a leaf: no loop */
	} else {
		log_err("%s: backing format '%s' is not supported (raw, qcow2)",
			path, fmt);
		rc = -ENOTSUP;
	}
	if (rc < 0) {
		blk_file_close(bf);
		return rc;
	}
	*fmt_out = fmt;
	return 0;
}

static int open_backing(struct qcow2 *q, const struct blk_opts *o,
			struct chain *ch)
{
	const char *fmt = q->backing_fmt;
	struct stat st;
	int rc;

	if (strncmp(q->backing_name, "json:", 5) == 0 ||
	    strstr(q->backing_name, "://")) {
		log_err("%s: backing file '%s': only local files are supported",
			q->path, q->backing_name);
		return -ENOTSUP;
	}
	if (fmt && strcmp(fmt, "raw") && strcmp(fmt, "qcow2")) {
		log_err("%s: backing format '%s' is not supported (raw, qcow2)",
			q->path, fmt);
		return -ENOTSUP;
	}
	q->bk_path = resolve_backing(q->path, q->backing_name);
	q->bk_file = calloc(1, sizeof(*q->bk_file));
	if (!q->bk_path || !q->bk_file)
		return -ENOMEM;
	q->bk_file->fd = q->bk_file->buf_fd = -1;
	if (stat(q->bk_path, &st) < 0) {
		rc = -errno;
		log_err("%s: backing file '%s': %s", q->path, q->bk_path,
			strerror(errno));
		return rc;
	}
	rc = open_image_ro(q->bk_path, fmt, o->nocache, ch, q->bk_file, &q->bk,
			   &q->bk_format);
	if (rc < 0)
		return rc;
	q->bk_size = q->bk->ops->size(q->bk);
	return 0;
}

static void q2_free(struct qcow2 *q)
{
	if (q->bk)
		q->bk->ops->close(q->bk);
	if (q->bk_file) {
		blk_file_close(q->bk_file);
		free(q->bk_file);
	}
	free(q->bk_path);
	cache_free(&q->l2c);
	cache_free(&q->rbc);
	free(q->resv.v);
	free(q->infl.v);
	free(q->pfree.v);
	free(q->held.v);
	qcow2_commit_close(q->cm);
	free(q->l1);
	free(q->l1_dirty);
	free(q->rt);
	free(q->backing_name);
	free(q->backing_fmt);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->infl_lock);
	pthread_rwlock_destroy(&q->lock);
	free(q);
}

/* A read-write open of a dirty image: recount and repair leaks first. */
static int repair_dirty(struct qcow2 *q)
{
	struct qcow2_check_result r;
	int rc;

	q->dirty_on_disk = q->dirty_durable = true;
	rc = scan_refs(q, true, &r);
	if (rc < 0)
		return rc;
	if (r.errors) {
		log_err("%s: qcow2 refcounts are inconsistent (%llu errors); "
			"repair with 'qemu-img check -r all' or open read-only",
			q->path, (unsigned long long)r.errors);
		return -EUCLEAN;
	}
	if (r.leaks_fixed)
		log_info("%s: repaired %llu leaked qcow2 clusters", q->path,
			 (unsigned long long)r.leaks_fixed);
	rc = commit_locked(q);
	if (rc == 0)
		rc = file_sync(q);
	return rc;
}

static int q2_open_layer(struct blk_backend **out, struct blk_file *f,
			 const struct blk_opts *o, struct chain *ch,
			 enum open_mode mode)
{
	const uint8_t *ftab = NULL;
	pthread_rwlockattr_t ra;
	uint32_t ftab_len = 0;
	struct qcow2 *q;
	uint8_t *h = NULL;
	uint64_t ext_end;
	long page;
	int rc;

	q = calloc(1, sizeof(*q));
	if (!q) {
		log_err("%s: out of memory", f->path);
		return -ENOMEM;
	}
	/* Writers first: a stream of reads must not starve allocation. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(
		&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&q->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&q->infl_lock, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->be.ops = &blk_qcow2_ops;
	q->be.file = f;
	q->f = f;
	q->path = f->path;
	q->writable = f->writable;

	rc = -ENOMEM;
	h = meta_alloc(4096);
	if (!h)
		goto fail;
	if (f->size < HDR_V2_LEN) {
		rc = bad_header(q, "file too short");
		goto fail;
	}
	rc = file_pread(q, h, 4096, 0);
	if (rc < 0) {
		log_errno(LOG_ERR, -rc, "%s: reading the header", q->path);
		goto fail;
	}
	rc = -EINVAL;
	if (get_be32(h) != QCOW2_MAGIC) {
		bad_header(q, "no qcow2 magic");
		goto fail;
	}
	q->version = get_be32(h + H_VERSION);
	if (q->version != 2 && q->version != 3) {
		log_err("%s: qcow2 version %u is not supported (2, 3)", q->path,
			q->version);
		rc = -ENOTSUP;
		goto fail;
	}
	q->cluster_bits = get_be32(h + H_CLUSTER_BITS);
	if (q->cluster_bits < MIN_CLUSTER_BITS ||
	    q->cluster_bits > MAX_CLUSTER_BITS) {
		bad_header(q, "cluster size (512 B to 2 MiB)");
		goto fail;
	}
	q->cs = 1ULL << q->cluster_bits;
	if (q->cs > 4096) { /* the whole header cluster */
		free(h);
		h = meta_alloc((size_t)q->cs);
		rc = h ? file_pread(q, h, (size_t)q->cs, 0) : -ENOMEM;
		if (rc < 0)
			goto fail;
	}
	rc = parse_header(q, h, f->size);
	if (rc == 0)
		rc = parse_backing_name(q, h);
	ext_end = get_be64(h + H_BACKING_OFF) ? get_be64(h + H_BACKING_OFF)
					      : q->cs;
	if (rc == 0)
		rc = parse_extensions(q, h, q->hdr_len, ext_end, &ftab,
				      &ftab_len);
	if (rc == 0)
		rc = check_features(q, h, ftab, ftab_len);
	if (rc < 0)
		goto fail;
	free(h);
	h = NULL;

	q->file_end = (f->size + q->cs - 1) >> q->cluster_bits;
	q->file_limit = f->bdev ? f->size >> q->cluster_bits
				: 1ULL << (56 - q->cluster_bits);
	q->free_hint = 1;
	rc = read_tables(q);
	if (rc == 0 && q->writable)
		rc = check_rt_unique(q);
	if (rc == 0)
		rc = cache_init(&q->l2c, q->l1_used,
				cache_slots(q->l1_used, L2_CACHE_BYTES,
					    q->cluster_bits));
	if (rc == 0)
		rc = cache_init(&q->rbc, q->rt_entries,
				cache_slots(q->rt_entries, RB_CACHE_BYTES,
					    q->cluster_bits));
	if (rc < 0)
		goto fail;
	rc = chain_add(q->path, ch, f->fd);
	if (rc < 0)
		goto fail;
	if (mode == OPEN_IO && q->backing_name) {
		rc = open_backing(q, o, ch);
		if (rc < 0)
			goto fail;
	}
	q->dirty_on_disk = (q->incompat & INCOMPAT_DIRTY) != 0;
	q->dirty_durable = q->dirty_on_disk;
	if (q->writable && mode == OPEN_IO) {
		rc = qcow2_commit_open(&q->cm, f, true);
		if (rc < 0 && rc != -ENOMEM)
			log_errno(LOG_ERR, -rc, "%s: commit memory", q->path);
		if (rc < 0)
			goto fail;
		if (q->dirty_on_disk) {
			rc = repair_dirty(q);
			if (rc < 0)
				goto fail;
		}
		if (q->autoclear) { /* none we maintain: clear them */
			rc = hdr_put64(q, H_AUTOCLEAR, 0);
			if (rc == 0)
				rc = file_sync(q);
			if (rc < 0)
				goto fail;
			q->autoclear = 0;
		}
	}

	q->be.lock_align = 1;
	if (f->direct) {
		page = sysconf(_SC_PAGESIZE);
		q->be.lock_align = page > 0 ? (unsigned)page : 4096;
		if (f->off_align > q->be.lock_align)
			q->be.lock_align = f->off_align;
	}
	q->be.can_discard = q->writable && !o->nodelete;
	q->be.lsector_hint = f->dev_lsector;
	q->be.psector_hint = f->dev_psector;
	*out = &q->be;
	return 0;
fail:
	if (rc == -ENOMEM)
		log_err("%s: out of memory", q->path);
	free(h);
	q2_free(q);
	return rc;
}

static int q2_open(struct blk_backend **out, struct blk_file *f,
		   const struct blk_opts *o)
{
	struct chain ch;

	memset(&ch, 0, sizeof(ch));
	return q2_open_layer(out, f, o, &ch, OPEN_IO);
}

static void q2_close(struct blk_backend *be)
{
	struct qcow2 *q = q2(be);
	int rc;

	if (q->writable) {
		lock_excl(q);
		rc = q->failed ? 0 : commit_locked(q);
		unlock(q);
		if (rc < 0)
			log_errno(LOG_ERR, -rc, "%s: closing", q->path);
	}
	q2_free(q);
}

static int q2_probe(const uint8_t *hdr, size_t n)
{
	return n >= 4 && get_be32(hdr) == QCOW2_MAGIC ? 100 : 0;
}

const struct blk_backend_ops blk_qcow2_ops = {
	.name = "qcow2",
	.probe = q2_probe,
	.open = q2_open,
	.preadv = q2_preadv,
	.pwritev = q2_pwritev,
	.flush = q2_flush,
	.discard = q2_discard,
	.write_zeroes = q2_write_zeroes,
	.size = q2_size,
	.close = q2_close,
};
BLK_FORMAT_SET(blk_qcow2_ops);

/* ---- khyve-img: info ---- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int layer_fill(struct qcow2_layer *l, const char *path,
		      struct blk_backend *be, const struct blk_file *f)
{
	struct qcow2 *q;

	memset(l, 0, sizeof(*l));
	l->path = strdup(path);
	l->file_size = f->size;
	l->virtual_size = be->ops->size(be);
	if (be->ops != &blk_qcow2_ops) {
		l->format = "raw";
		return l->path ? 0 : -ENOMEM;
	}
	q = q2(be);
	l->format = "qcow2";
	l->cluster_size = (uint32_t)q->cs;
	l->version = q->version;
	l->refcount_bits = 1U << q->refcount_order;
	l->dirty = (q->incompat & INCOMPAT_DIRTY) != 0;
	l->backing = dup_or_null(q->backing_name);
	l->backing_fmt = dup_or_null(q->backing_fmt);
	if (!l->path || (q->backing_name && !l->backing) ||
	    (q->backing_fmt && !l->backing_fmt))
		return -ENOMEM;
	return 0;
}

int qcow2_info(const char *path, struct qcow2_layer **layers, unsigned *n)
{
	struct qcow2_layer *v;
	struct blk_backend *be = NULL, *cur;
	struct blk_file f;
	const char *fmt, *p;
	struct chain ch;
	unsigned i = 0;
	int rc;

	*layers = NULL;
	*n = 0;
	memset(&ch, 0, sizeof(ch));
	memset(&f, 0, sizeof(f));
	f.fd = f.buf_fd = -1;
	v = calloc(MAX_CHAIN + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	rc = open_image_ro(path, NULL, false, &ch, &f, &be, &fmt);
	if (rc < 0) {
		free(v);
		return rc;
	}
	cur = be;
	p = path;
	const struct blk_file *cf = &f;
	while (cur && rc == 0 && i <= MAX_CHAIN) {
		rc = layer_fill(&v[i++], p, cur, cf);
		if (cur->ops != &blk_qcow2_ops)
			break;
		p = q2(cur)->bk_path;
		cf = q2(cur)->bk_file;
		cur = q2(cur)->bk;
	}
	be->ops->close(be);
	blk_file_close(&f);
	if (rc < 0) {
		log_err("%s: out of memory", path);
		qcow2_info_free(v, i);
		return rc;
	}
	*layers = v;
	*n = i;
	return 0;
}

void qcow2_info_free(struct qcow2_layer *layers, unsigned n)
{
	unsigned i;

	if (!layers)
		return;
	for (i = 0; i < n; i++) {
		free(layers[i].path);
		free(layers[i].backing);
		free(layers[i].backing_fmt);
	}
	free(layers);
}

/* ---- khyve-img: check ---- */

int qcow2_check(const char *path, bool repair, struct qcow2_check_result *res)
{
	struct blk_backend *be = NULL;
	struct blk_opts o;
	struct blk_file f;
	struct qcow2 *q;
	struct chain ch;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&ch, 0, sizeof(ch));
	memset(&o, 0, sizeof(o));
	o.path = path;
	o.ro = !repair;
	rc = blk_file_open(&f, &o);
	if (rc < 0)
		return rc;
	if (repair && !f.writable) {
		log_err("%s: cannot repair a read-only file", path);
		blk_file_close(&f);
		return -EROFS;
	}
	rc = q2_open_layer(&be, &f, &o, &ch, OPEN_CHECK);
	if (rc < 0) {
		blk_file_close(&f);
		return rc;
	}
	q = q2(be);
	if (q->nb_snapshots ||
	    (q->has_bitmaps && (q->autoclear & AUTOCLEAR_BITMAPS))) {
		log_err("%s: cannot check images with internal snapshots or "
			"bitmaps",
			path);
		rc = -ENOTSUP;
	} else {
		lock_excl(q);
		rc = scan_refs(q, repair, res);
		if (rc == 0 && repair && !res->errors &&
		    res->leaks == res->leaks_fixed) {
			rc = commit_locked(q);
			if (rc == 0)
				rc = hdr_set_dirty(q, false);
			if (rc == 0)
				rc = file_sync(q);
		}
		unlock(q);
		if (rc < 0)
			log_errno(LOG_ERR, -rc, "%s: check", path);
	}
	be->ops->close(be);
	blk_file_close(&f);
	return rc;
}

/* ---- khyve-img: create ---- */

/* Lay out header, refcount table, refcount blocks and L1 from cluster 0;
 * the refcount blocks count every cluster of the layout. */
struct layout {
	uint64_t l1_entries, rtc, nb, l1c, total;
};

static void plan_layout(struct layout *L, unsigned cb, uint64_t size)
{
	uint64_t cs = 1ULL << cb, span_bits = 2 * (uint64_t)cb - 3;
	uint64_t per_rb = cs * 8 / 16, i;

	L->l1_entries =
		(size >> span_bits) + ((size & ((1ULL << span_bits) - 1)) != 0);
	L->l1c = (L->l1_entries * 8 + cs - 1) / cs;
	if (!L->l1c)
		L->l1c = 1;
	L->nb = 1;
	L->rtc = 1;
	for (i = 0; i < 16; i++) {
		L->total = 1 + L->rtc + L->nb + L->l1c;
		L->nb = (L->total + per_rb - 1) / per_rb;
		L->rtc = (L->nb * 8 + cs - 1) / cs;
	}
	L->total = 1 + L->rtc + L->nb + L->l1c;
}

/* The backing image's format and virtual size, opening its chain. */
static int create_probe_backing(const char *image, const char *name,
				const char *fmt, uint64_t *size,
				const char **fmt_out)
{
	struct blk_backend *be = NULL;
	struct stat a, b;
	struct blk_file f;
	struct chain ch;
	char *path;
	int rc;

	path = resolve_backing(image, name);
	if (!path)
		return -ENOMEM;
	if (stat(path, &b) < 0) {
		rc = -errno;
		log_err("%s: backing file '%s': %s", image, path,
			strerror(errno));
		free(path);
		return rc;
	}
	if (stat(image, &a) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino) {
		log_err("%s: the backing file is the image itself", image);
		free(path);
		return -ELOOP;
	}
	memset(&ch, 0, sizeof(ch));
	memset(&f, 0, sizeof(f));
	f.fd = f.buf_fd = -1;
	rc = open_image_ro(path, fmt, false, &ch, &f, &be, fmt_out);
	if (rc == 0) {
		*size = be->ops->size(be);
		be->ops->close(be);
		blk_file_close(&f);
	}
	free(path);
	return rc;
}

static int create_write(int fd, const char *path, const struct layout *L,
			unsigned cb, uint64_t size, const char *backing,
			const char *bfmt)
{
	uint64_t cs = 1ULL << cb, c, pos;
	uint8_t *h = NULL, *rt = NULL, *rb = NULL;
	size_t blen = backing ? strlen(backing) : 0;
	size_t flen = bfmt ? strlen(bfmt) : 0;
	int rc = -ENOMEM;

	h = meta_zalloc((size_t)cs);
	rt = meta_zalloc((size_t)(L->rtc * cs));
	rb = meta_zalloc((size_t)(L->nb * cs));
	if (!h || !rt || !rb)
		goto out;
	/* Header, extensions, backing name: all in cluster 0. */
	put_be32(h, QCOW2_MAGIC);
	put_be32(h + H_VERSION, 3);
	put_be32(h + H_CLUSTER_BITS, cb);
	put_be64(h + H_SIZE, size);
	put_be32(h + H_L1_SIZE, (uint32_t)L->l1_entries);
	put_be64(h + H_L1_OFF, (1 + L->rtc + L->nb) * cs);
	put_be64(h + H_RT_OFF, cs);
	put_be32(h + H_RT_CLUSTERS, (uint32_t)L->rtc);
	put_be32(h + H_REFCOUNT_ORDER, 4);
	put_be32(h + H_HDR_LEN, HDR_V3_LEN);
	pos = HDR_V3_LEN;
	if (flen) {
		put_be32(h + pos, EXT_BACKING_FMT);
		put_be32(h + pos + 4, (uint32_t)flen);
		memcpy(h + pos + 8, bfmt, flen);
		pos += 8 + ((flen + 7) & ~(size_t)7);
	}
	pos += 8; /* the end-of-extensions marker (zeros) */
	if (blen) {
		if (pos + blen > cs) {
			log_err("%s: backing file name too long for %llu-byte "
				"clusters",
				path, (unsigned long long)cs);
			rc = -ENAMETOOLONG;
			goto out;
		}
		put_be64(h + H_BACKING_OFF, pos);
		put_be32(h + H_BACKING_LEN, (uint32_t)blen);
		memcpy(h + pos, backing, blen);
	}
	for (c = 0; c < L->nb; c++)
		put_be64(rt + 8 * c, (1 + L->rtc + c) * cs);
	for (c = 0; c < L->total; c++)
		put_be16(rb + 2 * c, 1);
	/* Tables first, the header last, then one sync. */
	rc = -errno;
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)(L->total * cs)) < 0 ||
	    pwrite(fd, rt, L->rtc * cs, (off_t)cs) != (ssize_t)(L->rtc * cs) ||
	    pwrite(fd, rb, L->nb * cs, (off_t)((1 + L->rtc) * cs)) !=
		    (ssize_t)(L->nb * cs) ||
	    pwrite(fd, h, cs, 0) != (ssize_t)cs || fdatasync(fd) < 0) {
		rc = errno ? -errno : -EIO;
		log_errno(LOG_ERR, -rc, "%s", path);
		goto out;
	}
	rc = 0;
out:
	if (rc == -ENOMEM)
		log_err("%s: out of memory", path);
	free(h);
	free(rt);
	free(rb);
	return rc;
}

int qcow2_create(const char *path, const struct qcow2_create_opts *o)
{
	unsigned cb = o->cluster_bits ? o->cluster_bits : 16;
	const char *bfmt = o->backing_fmt;
	uint64_t size = o->size, bsize = 0;
	struct layout L;
	struct flock fl;
	struct stat st;
	int fd, rc;

	if (cb < MIN_CLUSTER_BITS || cb > MAX_CLUSTER_BITS) {
		log_err("%s: cluster size must be a power of 2 from 512 to "
			"2097152",
			path);
		return -EINVAL;
	}
	if (bfmt && strcmp(bfmt, "raw") && strcmp(bfmt, "qcow2")) {
		log_err("%s: backing format '%s' is not supported (raw, qcow2)",
			path, bfmt);
		return -EINVAL;
	}
	if (o->backing) {
		if (!*o->backing || strlen(o->backing) > MAX_BACKING_NAME) {
			log_err("%s: invalid backing file name", path);
			return -EINVAL;
		}
		rc = create_probe_backing(path, o->backing, bfmt, &bsize,
					  &bfmt);
		if (rc < 0)
			return rc;
		if (!size)
			size = bsize;
	} else if (bfmt) {
		log_err("%s: a backing format without a backing file", path);
		return -EINVAL;
	}
	if (size > (1ULL << 62)) {
		log_err("%s: virtual size too large", path);
		return -EFBIG;
	}
	size = (size + 511) & ~511ULL;
	plan_layout(&L, cb, size);
	if (L.l1_entries * 8 > MAX_L1_BYTES) {
		log_err("%s: virtual size too large for %llu-byte clusters",
			path, 1ULL << cb);
		return -EFBIG;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		log_errno(LOG_ERR, errno, "%s", path);
		return rc;
	}
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_err("%s: not a regular file", path);
		rc = -EINVAL;
	} else if (fcntl(fd, F_OFD_SETLK, &fl) < 0 &&
		   (errno == EAGAIN || errno == EACCES)) {
		log_err("%s: in use by another process (locked)", path);
		rc = -EBUSY;
	} else {
		rc = create_write(fd, path, &L, cb, size, o->backing,
				  o->backing ? bfmt : NULL);
	}
	close(fd);
	return rc;
}
