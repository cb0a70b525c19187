/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The block layer (see blk.h): block options from the config tree, the
 * format registry (the BLK_FORMAT_SET linker set) and probing, opening an
 * image, and the request queue with its worker pool.
 *
 * Queue: every unfinished request that passed the submit-time checks is
 * on a list in submission order.  On submit a request counts the earlier
 * requests it must wait for (ndeps: overlapping ranges where one side
 * writes; every earlier write for a FLUSH); with none it goes on the ready
 * FIFO.  A worker takes the head of the ready FIFO, runs it without the
 * lock, then, under the lock, walks the later requests it conflicts with,
 * decrements their ndeps (making the ones reaching zero ready), unlinks
 * itself and calls done() without the lock.  Requests refused at submit
 * time (range, read-only, no discard) skip the list: a worker only calls
 * their done() with the error.  Submit and completion are O(queue length).
 *
 * Threads: blk_submit() from any thread; 'nworkers' "blk<N>/io<i>"
 * threads per image; blk_open()/blk_close() on the owner's thread.
 * Locks: struct blk 'lock' (a leaf) guards the lists and counters; the
 * backend's ops and done() run without it.
 */
#include "block/blk.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/blk_backend.h"
#include "lib/log.h"

#define HDR_SIZE 4096 /* bytes the probes see */

struct blk {
	char *path;
	struct blk_file file;
	struct blk_backend *be;
	uint64_t size;
	unsigned lsector, psector;
	unsigned lock_align;
	bool ro, can_discard;
	bool guard_hdr; /* probed raw: refuse format signatures at 0 */

	pthread_mutex_t lock;
	pthread_cond_t work_cv;	       /* workers: ready work or exit */
	pthread_cond_t idle_cv;	       /* drain/close: nothing unfinished */
	struct blk_req *head, *tail;   /* submission order */
	struct blk_req *rhead, *rtail; /* ready FIFO */
	unsigned nqueued;	       /* submitted, done() not called yet */
	unsigned ncallback;	       /* inside done() */
	bool closing, exiting;

	unsigned nworkers;
	pthread_t *workers;
};

/* ---- formats ---- */

extern const struct blk_backend_ops *const __start_khyve_blk_formats[]
	__attribute__((weak, visibility("hidden")));
extern const struct blk_backend_ops *const __stop_khyve_blk_formats[]
	__attribute__((weak, visibility("hidden")));

static size_t format_count(void)
{
	if (!__start_khyve_blk_formats || !__stop_khyve_blk_formats)
		return 0;
	return (size_t)(__stop_khyve_blk_formats - __start_khyve_blk_formats);
}

static const struct blk_backend_ops *format_at(size_t i)
{
	return __start_khyve_blk_formats[i];
}

static const struct blk_backend_ops *format_find(const char *name)
{
	size_t i, n = format_count();

	for (i = 0; i < n; i++) {
		if (strcmp(format_at(i)->name, name) == 0)
			return format_at(i);
	}
	return NULL;
}

/* "raw, ..." : the formats that can be opened, for error messages. */
static const char *format_list(char *buf, size_t len)
{
	size_t i, n = format_count(), pos = 0;
	int k;

	buf[0] = '\0';
	for (i = 0; i < n && pos < len; i++) {
		if (!format_at(i)->open)
			continue;
		k = snprintf(buf + pos, len - pos, "%s%s", pos ? ", " : "",
			     format_at(i)->name);
		if (k < 0)
			break;
		pos += (size_t)k;
	}
	return buf;
}

/* The best-scoring format for the first bytes 'hdr'. */
static const struct blk_backend_ops *format_probe(const uint8_t *hdr, size_t n)
{
	const struct blk_backend_ops *best = &blk_raw_ops;
	int score, best_score = 0;
	size_t i, nf = format_count();

	for (i = 0; i < nf; i++) {
		score = format_at(i)->probe(hdr, n);
		if (score > best_score) {
			best_score = score;
			best = format_at(i);
		}
	}
	return best;
}

/* ---- options ---- */

const struct cfg_key blk_cfg_keys[] = {
	BLK_CFG_KEYS,
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static bool sector_ok(unsigned s)
{
	return s >= BLK_SECTOR_MIN && s <= BLK_SECTOR_MAX && !(s & (s - 1));
}

/* Decimal digits only; false on none or a huge value. */
static bool parse_dec(const char **s, unsigned *out)
{
	const char *p = *s;
	unsigned v = 0;

	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > 1000000)
			return false;
		v = v * 10 + (unsigned)(*p - '0');
	}
	*s = p;
	*out = v;
	return true;
}

/* "logical[/physical]".  0 or -EINVAL. */
static int parse_sectorsize(const char *v, unsigned *ls, unsigned *ps)
{
	const char *p = v;

	if (!parse_dec(&p, ls))
		return -EINVAL;
	*ps = *ls;
	if (*p == '/') {
		p++;
		if (!parse_dec(&p, ps))
			return -EINVAL;
	}
	if (*p != '\0' || !sector_ok(*ls) || !sector_ok(*ps) || *ps < *ls)
		return -EINVAL;
	return 0;
}

/* "<node path>.<key>" into buf. */
static const char *key_name(char *buf, size_t n, struct cfg_node *node,
			    const char *key)
{
	const char *p = cfg_path(node);

	snprintf(buf, n, "%s%s%s", p ? p : "", p && *p ? "." : "", key);
	return buf;
}

/* Checks a format name; logs with 'what' (a key or a path) first. */
static int format_check(const char *what, const char *name)
{
	const struct blk_backend_ops *ops = format_find(name);
	char list[128];

	if (!ops) {
		log_err("%s: unknown format '%s' (supported: %s)", what, name,
			format_list(list, sizeof(list)));
		return -EINVAL;
	}
	if (!ops->open) {
		log_err("%s: format %s is not supported yet", what, name);
		return -ENOTSUP;
	}
	return 0;
}

int blk_opts_from_cfg(struct cfg_node *node, struct blk_opts *o)
{
	char key[256];
	const char *v;
	bool direct;

	memset(o, 0, sizeof(*o));
	errno = 0;
	v = cfg_get(node, "path");
	if (!v) {
		if (errno == ENOENT || errno == 0)
			log_err("%s: missing (the disk image path)",
				key_name(key, sizeof(key), node, "path"));
		return -EINVAL;
	}
	if (*v == '\0') {
		log_err("%s: empty disk image path",
			key_name(key, sizeof(key), node, "path"));
		return -EINVAL;
	}
	o->path = v;
	if (cfg_get_bool(node, "ro", false, &o->ro) < 0 ||
	    cfg_get_bool(node, "nocache", false, &o->nocache) < 0 ||
	    cfg_get_bool(node, "sync", false, &o->sync) < 0 ||
	    cfg_get_bool(node, "direct", false, &direct) < 0 ||
	    cfg_get_bool(node, "nodelete", false, &o->nodelete) < 0)
		return -EINVAL;
	o->sync = o->sync || direct;

	errno = 0;
	v = cfg_get(node, "sectorsize");
	if (!v && errno != ENOENT && errno != 0)
		return -EINVAL;
	if (v && parse_sectorsize(v, &o->lsector, &o->psector) < 0) {
		log_err("%s: invalid sector size '%s' (logical[/physical]: "
			"powers of 2 from %u to %u, physical >= logical)",
			key_name(key, sizeof(key), node, "sectorsize"), v,
			BLK_SECTOR_MIN, BLK_SECTOR_MAX);
		o->lsector = o->psector = 0;
		return -EINVAL;
	}

	errno = 0;
	v = cfg_get(node, "format");
	if (!v && errno != ENOENT && errno != 0)
		return -EINVAL;
	if (v) {
		if (format_check(key_name(key, sizeof(key), node, "format"),
				 v) < 0)
			return -EINVAL;
		o->format = v;
	}
	return 0;
}

int blk_parse_legacy(struct cfg_node *node, const char *opts)
{
	const char *comma;
	char *path;
	int rc;

	if (!opts || !*opts)
		return 0;
	comma = strchr(opts, ',');
	path = comma ? strndup(opts, (size_t)(comma - opts)) : strdup(opts);
	if (!path) {
		log_err("out of memory");
		return -ENOMEM;
	}
	rc = cfg_set(node, "path", path);
	free(path);
	if (rc == -ENOMEM)
		log_err("out of memory");
	if (rc < 0)
		return rc;
	return comma ? cfg_split_opts(node, comma + 1) : 0;
}

/* ---- the queue ---- */

static bool op_writes(enum blk_op op)
{
	return op == BLK_WRITE || op == BLK_DISCARD || op == BLK_WRITE_ZEROES;
}

/* Must 'l' (submitted later) wait for the earlier, unfinished 'e'? */
static bool blk_conflict(const struct blk_req *e, const struct blk_req *l)
{
	if (e->op == BLK_FLUSH)
		return false;
	if (l->op == BLK_FLUSH)
		return op_writes(e->op);
	if (!op_writes(e->op) && !op_writes(l->op))
		return false;
	return e->priv.lo < l->priv.hi && l->priv.lo < e->priv.hi;
}

static void ready_push(struct blk *b, struct blk_req *r)
{
	r->priv.rnext = NULL;
	if (b->rtail)
		b->rtail->priv.rnext = r;
	else
		b->rhead = r;
	b->rtail = r;
	pthread_cond_signal(&b->work_cv);
}

static struct blk_req *ready_pop(struct blk *b)
{
	struct blk_req *r = b->rhead;

	b->rhead = r->priv.rnext;
	if (!b->rhead)
		b->rtail = NULL;
	return r;
}

static void list_append(struct blk *b, struct blk_req *r)
{
	r->priv.next = NULL;
	r->priv.prev = b->tail;
	if (b->tail)
		b->tail->priv.next = r;
	else
		b->head = r;
	b->tail = r;
	r->priv.listed = true;
}

static void list_unlink(struct blk *b, struct blk_req *r)
{
	if (r->priv.prev)
		r->priv.prev->priv.next = r->priv.next;
	else
		b->head = r->priv.next;
	if (r->priv.next)
		r->priv.next->priv.prev = r->priv.prev;
	else
		b->tail = r->priv.prev;
	r->priv.listed = false;
}

/* Sum of the iovec lengths; -EINVAL on overflow. */
static int iov_total(const struct iovec *iov, unsigned cnt, uint64_t *out)
{
	uint64_t total = 0;
	unsigned i;

	for (i = 0; i < cnt; i++) {
		if (iov[i].iov_len > UINT64_MAX - total)
			return -EINVAL;
		total += iov[i].iov_len;
	}
	*out = total;
	return 0;
}

/* The error a request gets without reaching the image, or 0. */
static int blk_precheck(const struct blk *b, struct blk_req *r)
{
	uint64_t len = 0;

	if (r->op == BLK_READ || r->op == BLK_WRITE) {
		if (iov_total(r->iov, r->iovcnt, &len) < 0) {
			r->len = UINT64_MAX;
			return -EINVAL;
		}
		r->len = len;
	}
	if (r->op == BLK_FLUSH)
		return 0;
	if (b->ro && op_writes(r->op))
		return -EROFS;
	if (r->offset > b->size || r->len > b->size - r->offset)
		return -EINVAL;
	if (r->op == BLK_DISCARD && !b->can_discard)
		return -EOPNOTSUPP;
	return 0;
}

int blk_submit(struct blk *b, struct blk_req *r)
{
	struct blk_req *e;
	uint64_t a;
	int err;

	if (!b || !r || !r->done || (unsigned)r->op > BLK_WRITE_ZEROES ||
	    (r->iovcnt && !r->iov))
		return -EINVAL;
	err = blk_precheck(b, r);
	memset(&r->priv, 0, sizeof(r->priv));
	r->priv.err = err;
	if (!err && r->op != BLK_FLUSH) {
		a = b->lock_align;
		r->priv.lo = r->offset / a * a;
		r->priv.hi = (r->offset + r->len + a - 1) / a * a;
	}

	pthread_mutex_lock(&b->lock);
	if (b->closing) {
		pthread_mutex_unlock(&b->lock);
		return -ESHUTDOWN;
	}
	if (b->nqueued >= BLK_MAXREQ) {
		pthread_mutex_unlock(&b->lock);
		return -EAGAIN;
	}
	b->nqueued++;
	if (!err) {
		for (e = b->head; e; e = e->priv.next) {
			if (blk_conflict(e, r))
				r->priv.ndeps++;
		}
		list_append(b, r);
	}
	if (r->priv.ndeps == 0)
		ready_push(b, r);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

int blk_read_nowait(struct blk *b, struct blk_req *r)
{
	const struct blk_backend_ops *ops;
	struct blk_req *e;
	bool busy = false;
	int err;

	if (!b || !r || r->op != BLK_READ || (r->iovcnt && !r->iov))
		return -EINVAL;
	ops = b->be->ops;
	if (!ops->read_nowait)
		return -EAGAIN;
	err = blk_precheck(b, r);
	if (err)
		return err;
	if (r->len == 0)
		return 0;
	/* An earlier unfinished write to these bytes must land first; a
	 * write submitted after this check is not ordered before us. */
	pthread_mutex_lock(&b->lock);
	busy = b->closing;
	for (e = b->head; e && !busy; e = e->priv.next)
		busy = op_writes(e->op) && e->offset < r->offset + r->len &&
		       r->offset < e->offset + e->len;
	pthread_mutex_unlock(&b->lock);
	if (busy)
		return -EAGAIN;
	return ops->read_nowait(b->be, r->iov, r->iovcnt, r->offset, r->len);
}

/* True (and a warning) when a write at offset 0 of a probed raw image
 * would make the image look like another format. */
static bool hdr_write_refused(struct blk *b, const struct blk_req *r)
{
	uint8_t hdr[HDR_SIZE];
	size_t n = 0, k;
	unsigned i;

	for (i = 0; i < r->iovcnt && n < sizeof(hdr); i++) {
		k = r->iov[i].iov_len;
		if (k > sizeof(hdr) - n)
			k = sizeof(hdr) - n;
		memcpy(hdr + n, r->iov[i].iov_base, k);
		n += k;
	}
	for (i = 0; i < format_count(); i++) {
		if (format_at(i) == b->be->ops ||
		    format_at(i)->probe(hdr, n) <= 1)
			continue;
		log_ratelimited(1000,
				"%s: refused a guest write of a %s signature "
				"to sector 0 of a probed raw image (set "
				"format=raw to allow it)",
				b->path, format_at(i)->name);
		return true;
	}
	return false;
}

static int blk_execute(struct blk *b, struct blk_req *r)
{
	struct blk_backend *be = b->be;

	switch (r->op) {
	case BLK_READ:
		if (r->len == 0)
			return 0;
		return be->ops->preadv(be, r->iov, r->iovcnt, r->offset);
	case BLK_WRITE:
		if (r->len == 0)
			return 0;
		if (b->guard_hdr && r->offset == 0 && hdr_write_refused(b, r))
			return -EPERM;
		return be->ops->pwritev(be, r->iov, r->iovcnt, r->offset);
	case BLK_FLUSH:
		return b->ro ? 0 : be->ops->flush(be);
	case BLK_DISCARD:
		return r->len ? be->ops->discard(be, r->offset, r->len) : 0;
	case BLK_WRITE_ZEROES:
		if (r->len == 0)
			return 0;
		return be->ops->write_zeroes(be, r->offset, r->len);
	}
	return -EINVAL;
}

/* Under the lock: 'r' finished; release the requests waiting for it. */
static void blk_retire(struct blk *b, struct blk_req *r)
{
	struct blk_req *x;

	if (!r->priv.listed)
		return;
	for (x = r->priv.next; x; x = x->priv.next) {
		if (x->priv.ndeps && blk_conflict(r, x) && --x->priv.ndeps == 0)
			ready_push(b, x);
	}
	list_unlink(b, r);
}

static void *blk_worker(void *arg)
{
	struct blk *b = arg;
	struct blk_req *r;
	int err;

	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (!b->rhead && !b->exiting)
			pthread_cond_wait(&b->work_cv, &b->lock);
		if (!b->rhead)
			break;
		r = ready_pop(b);
		pthread_mutex_unlock(&b->lock);

		err = r->priv.err ? r->priv.err : blk_execute(b, r);

		pthread_mutex_lock(&b->lock);
		blk_retire(b, r);
		b->nqueued--;
		b->ncallback++;
		pthread_mutex_unlock(&b->lock);

		r->done(r, err); /* r may be gone after this */

		pthread_mutex_lock(&b->lock);
		b->ncallback--;
		if (b->nqueued == 0 && b->ncallback == 0)
			pthread_cond_broadcast(&b->idle_cv);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

void blk_drain(struct blk *b)
{
	pthread_mutex_lock(&b->lock);
	while (b->nqueued || b->ncallback)
		pthread_cond_wait(&b->idle_cv, &b->lock);
	pthread_mutex_unlock(&b->lock);
}

/* ---- open and close ---- */

static atomic_uint blk_next_id;

static void blk_stop_workers(struct blk *b, unsigned n)
{
	unsigned i;

	pthread_mutex_lock(&b->lock);
	b->exiting = true;
	pthread_cond_broadcast(&b->work_cv);
	pthread_mutex_unlock(&b->lock);
	for (i = 0; i < n; i++)
		pthread_join(b->workers[i], NULL);
}

static int blk_start_workers(struct blk *b, unsigned n)
{
	unsigned id = atomic_fetch_add(&blk_next_id, 1), i;
	sigset_t all, old;
	char name[16];
	int rc = 0;

	b->workers = calloc(n, sizeof(*b->workers));
	if (!b->workers) {
		log_err("%s: out of memory", b->path);
		return -ENOMEM;
	}
	/* Workers inherit a fully blocked mask: signals (vCPU kicks,
	 * SIGTERM through signalfd) are for other threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < n; i++) {
		rc = -pthread_create(&b->workers[i], NULL, blk_worker, b);
		if (rc < 0)
			break;
		snprintf(name, sizeof(name), "blk%u/io%u", id, i);
		pthread_setname_np(b->workers[i], name);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		log_errno(LOG_ERR, -rc, "%s: cannot start I/O threads",
			  b->path);
		blk_stop_workers(b, i);
		return rc;
	}
	b->nworkers = n;
	return 0;
}

/* Pick and open the backend. */
static int blk_open_backend(struct blk *b, const struct blk_opts *o)
{
	const struct blk_backend_ops *ops;
	uint8_t *hdr = NULL;
	size_t n;
	int rc;

	if (o->format) {
		ops = format_find(o->format);
		if (!ops || !ops->open) /* blk_check_opts() said so */
			return -EINVAL;
	} else {
		n = b->file.size < HDR_SIZE ? (size_t)b->file.size : HDR_SIZE;
		if (posix_memalign((void **)&hdr, 4096, HDR_SIZE)) {
			log_err("%s: out of memory", b->path);
			return -ENOMEM;
		}
		rc = n ? blk_file_pread(&b->file, hdr, HDR_SIZE, 0) : 0;
		if (rc < 0) {
			log_errno(LOG_ERR, -rc, "%s: reading the header",
				  b->path);
			free(hdr);
			return rc;
		}
		ops = format_probe(hdr, n);
		free(hdr);
		if (!ops->open) {
			log_err("%s: %s image, and %s is not supported yet "
				"(format=raw opens it as raw)",
				b->path, ops->name, ops->name);
			return -ENOTSUP;
		}
		b->guard_hdr = b->file.writable;
	}
	return ops->open(&b->be, &b->file, o);
}

/* Sector sizes: the options', else the image's hints, else 512. */
static int blk_sectors(struct blk *b, const struct blk_opts *o)
{
	unsigned hint;

	b->lsector = o->lsector;
	if (!b->lsector) {
		hint = b->be->lsector_hint;
		b->lsector = sector_ok(hint) ? hint : BLK_SECTOR_MIN;
	}
	b->psector = o->psector;
	if (!b->psector) {
		hint = b->be->psector_hint;
		if (hint > BLK_SECTOR_MAX)
			hint = BLK_SECTOR_MAX;
		b->psector = sector_ok(hint) && hint > b->lsector ? hint
								  : b->lsector;
	}
	if (b->psector < b->lsector) {
		log_err("%s: physical sector size %u is smaller than the "
			"logical %u",
			b->path, b->psector, b->lsector);
		return -EINVAL;
	}
	return 0;
}

static int blk_check_opts(const struct blk_opts *o)
{
	if (!o || !o->path || !*o->path) {
		log_err("block device: no disk image path");
		return -EINVAL;
	}
	if ((o->lsector && !sector_ok(o->lsector)) ||
	    (o->psector && !sector_ok(o->psector))) {
		log_err("%s: invalid sector size %u/%u (powers of 2 from %u "
			"to %u)",
			o->path, o->lsector, o->psector, BLK_SECTOR_MIN,
			BLK_SECTOR_MAX);
		return -EINVAL;
	}
	return o->format ? format_check(o->path, o->format) : 0;
}

static void blk_free(struct blk *b)
{
	if (b->be)
		b->be->ops->close(b->be);
	blk_file_close(&b->file);
	pthread_cond_destroy(&b->idle_cv);
	pthread_cond_destroy(&b->work_cv);
	pthread_mutex_destroy(&b->lock);
	free(b->workers);
	free(b->path);
	free(b);
}

int blk_open(const struct blk_opts *o, unsigned nworkers, struct blk **out)
{
	struct blk_opts oc;
	struct blk *b;
	int rc;

	*out = NULL;
	rc = blk_check_opts(o);
	if (rc < 0)
		return rc;
	b = calloc(1, sizeof(*b));
	if (!b || !(b->path = strdup(o->path))) {
		free(b);
		log_err("%s: out of memory", o->path);
		return -ENOMEM;
	}
	b->file.fd = b->file.buf_fd = -1;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->work_cv, NULL);
	pthread_cond_init(&b->idle_cv, NULL);
	oc = *o;
	oc.path = b->path;

	rc = blk_file_open(&b->file, &oc);
	if (rc < 0)
		goto fail;
	rc = blk_open_backend(b, &oc);
	if (rc < 0)
		goto fail;
	b->size = b->be->ops->size(b->be);
	rc = blk_sectors(b, &oc);
	if (rc < 0)
		goto fail;
	b->ro = !b->file.writable;
	b->can_discard = !b->ro && !oc.nodelete && b->be->can_discard;
	b->lock_align = b->be->lock_align ? b->be->lock_align : 1;

	if (nworkers == 0)
		nworkers = BLK_DEFAULT_WORKERS;
	if (nworkers > BLK_MAX_WORKERS)
		nworkers = BLK_MAX_WORKERS;
	rc = blk_start_workers(b, nworkers);
	if (rc < 0)
		goto fail;
	*out = b;
	return 0;
fail:
	blk_free(b);
	return rc;
}

void blk_close(struct blk *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->closing = true;
	while (b->nqueued || b->ncallback)
		pthread_cond_wait(&b->idle_cv, &b->lock);
	pthread_mutex_unlock(&b->lock);
	blk_stop_workers(b, b->nworkers);
	blk_free(b);
}

uint64_t blk_size(const struct blk *b)
{
	return b->size;
}

unsigned blk_lsector(const struct blk *b)
{
	return b->lsector;
}

unsigned blk_psector(const struct blk *b)
{
	return b->psector;
}

bool blk_readonly(const struct blk *b)
{
	return b->ro;
}

bool blk_can_discard(const struct blk *b)
{
	return b->can_discard;
}

const char *blk_path(const struct blk *b)
{
	return b->path;
}

const char *blk_format(const struct blk *b)
{
	return b->be->ops->name;
}
