/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Host-file side of the block layer (see blk_backend.h): opening an image
 * file or block device with bhyve's flags, the read-only fallback, the
 * open-file-description lock, size and sector/alignment discovery, and
 * positional I/O that hides O_DIRECT's alignment rules.
 *
 * O_DIRECT: a request whose offset and length are multiples of the file's
 * direct-I/O granularity but whose buffers are not suitably aligned is
 * copied through an aligned bounce buffer (at most BOUNCE_MAX bytes at a
 * time); one whose offset or length is not a multiple (a 512-byte sector
 * on a file system that wants 4096) uses a second descriptor opened
 * without O_DIRECT.  The kernel keeps buffered and direct I/O coherent;
 * the block layer never runs two requests touching one page when one of
 * them writes (the backend's lock_align covers a page).
 *
 * Threads: the I/O helpers are called from worker threads concurrently;
 * they share no state (positional syscalls, per-call buffers).  Open and
 * close run on the caller's thread.  No locks.
 */
#include "block/blk_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "lib/log.h"

#define RW_WINDOW 64		  /* iovecs per preadv/pwritev call */
#define BOUNCE_MAX (1024 * 1024)  /* bytes per bounce-buffer round */
#define DIO_ALIGN_MAX (64 * 1024) /* largest O_DIRECT granularity */
#define ZERO_BUF 65536		  /* bytes of the shared zero buffer */
#define ZERO_IOVS 16		  /* zero iovecs per write */

static const uint8_t zero_buf[ZERO_BUF] __attribute__((aligned(4096)));

/* ---- iovec cursor ---- */

struct iov_cur {
	const struct iovec *iov;
	unsigned cnt, idx;
	size_t skip; /* bytes of iov[idx] already consumed */
};

static void cur_init(struct iov_cur *c, const struct iovec *iov, unsigned cnt)
{
	c->iov = iov;
	c->cnt = cnt;
	c->idx = 0;
	c->skip = 0;
}

/* Skip exhausted and empty iovecs; false at the end. */
static bool cur_more(struct iov_cur *c)
{
	while (c->idx < c->cnt && c->skip >= c->iov[c->idx].iov_len) {
		c->idx++;
		c->skip = 0;
	}
	return c->idx < c->cnt;
}

static void cur_advance(struct iov_cur *c, size_t n)
{
	while (n > 0 && cur_more(c)) {
		size_t left = c->iov[c->idx].iov_len - c->skip;

		if (n < left) {
			c->skip += n;
			return;
		}
		n -= left;
		c->idx++;
		c->skip = 0;
	}
}

/* Fill 'w' with up to 'max' non-empty iovecs from the cursor. */
static unsigned cur_window(struct iov_cur *c, struct iovec *w, unsigned max,
			   size_t *bytes)
{
	unsigned n = 0, k;
	size_t skip = c->skip, total = 0;

	for (k = c->idx; k < c->cnt && n < max; k++, skip = 0) {
		size_t len = c->iov[k].iov_len;

		if (len <= skip)
			continue;
		if (len - skip > SSIZE_MAX - total)
			break;
		w[n].iov_base = (uint8_t *)c->iov[k].iov_base + skip;
		w[n].iov_len = len - skip;
		total += len - skip;
		n++;
	}
	*bytes = total;
	return n;
}

/* Copy n bytes between 'buf' and the cursor's iovecs and advance. */
static void cur_copy(struct iov_cur *c, uint8_t *buf, size_t n, bool to_iov)
{
	while (n > 0 && cur_more(c)) {
		const struct iovec *v = &c->iov[c->idx];
		uint8_t *p = (uint8_t *)v->iov_base + c->skip;
		size_t k = v->iov_len - c->skip;

		if (k > n)
			k = n;
		if (to_iov)
			memcpy(p, buf, k);
		else
			memcpy(buf, p, k);
		buf += k;
		n -= k;
		cur_advance(c, k);
	}
}

/* Zero everything from the cursor to the end. */
static void cur_zero_rest(struct iov_cur *c)
{
	while (cur_more(c)) {
		const struct iovec *v = &c->iov[c->idx];

		memset((uint8_t *)v->iov_base + c->skip, 0,
		       v->iov_len - c->skip);
		c->idx++;
		c->skip = 0;
	}
}

static uint64_t iov_bytes(const struct iovec *iov, unsigned cnt)
{
	uint64_t total = 0;
	unsigned i;

	for (i = 0; i < cnt; i++)
		total += iov[i].iov_len;
	return total;
}

/* ---- positional I/O ---- */

/*
 * Move every byte of the iovecs with preadv/pwritev on 'fd', retrying
 * EINTR and short transfers.  A read hitting the end of the file fills
 * the rest with zeros.  'dio_align' > 1: the fd has O_DIRECT, so a short
 * read leaving a misaligned offset is the end of the file.
 */
static int fd_rw(int fd, bool wr, const struct iovec *iov, unsigned cnt,
		 uint64_t off, unsigned dio_align)
{
	struct iovec w[RW_WINDOW];
	struct iov_cur c;
	size_t want;
	unsigned n;
	ssize_t r;

	cur_init(&c, iov, cnt);
	while (cur_more(&c)) {
		n = cur_window(&c, w, RW_WINDOW, &want);
		if (off > (uint64_t)INT64_MAX - want)
			return -EINVAL;
		if (wr)
			r = pwritev(fd, w, (int)n, (off_t)off);
		else
			r = preadv(fd, w, (int)n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {
			if (wr)
				return -EIO;
			cur_zero_rest(&c);
			return 0;
		}
		cur_advance(&c, (size_t)r);
		off += (uint64_t)r;
		if (!wr && (size_t)r < want && dio_align > 1 &&
		    off % dio_align) {
			cur_zero_rest(&c);
			return 0;
		}
	}
	return 0;
}

static bool iov_dio_ok(const struct blk_file *f, const struct iovec *iov,
		       unsigned cnt)
{
	unsigned i;

	for (i = 0; i < cnt; i++) {
		if ((uintptr_t)iov[i].iov_base % f->mem_align ||
		    iov[i].iov_len % f->off_align)
			return false;
	}
	return true;
}

/* O_DIRECT with misaligned buffers: copy through an aligned buffer. */
static int bounce_rw(const struct blk_file *f, bool wr, const struct iovec *iov,
		     unsigned cnt, uint64_t off, uint64_t total)
{
	size_t chunk = total < BOUNCE_MAX ? (size_t)total : BOUNCE_MAX;
	size_t align = f->mem_align > 4096 ? f->mem_align : 4096;
	struct iov_cur c;
	struct iovec one;
	uint64_t done;
	void *buf;
	int rc = 0;

	if (posix_memalign(&buf, align, chunk))
		return -ENOMEM;
	cur_init(&c, iov, cnt);
	for (done = 0; done < total && rc == 0; done += one.iov_len) {
		one.iov_base = buf;
		one.iov_len =
			total - done < chunk ? (size_t)(total - done) : chunk;
		if (wr) {
			cur_copy(&c, buf, one.iov_len, false);
			rc = fd_rw(f->fd, true, &one, 1, off + done,
				   f->off_align);
		} else {
			rc = fd_rw(f->fd, false, &one, 1, off + done,
				   f->off_align);
			if (rc == 0)
				cur_copy(&c, buf, one.iov_len, true);
		}
	}
	free(buf);
	return rc;
}

static int file_rw(const struct blk_file *f, bool wr, const struct iovec *iov,
		   unsigned cnt, uint64_t off)
{
	uint64_t total;

	if (!f->direct)
		return fd_rw(f->fd, wr, iov, cnt, off, 1);
	total = iov_bytes(iov, cnt);
	if ((off | total) % f->off_align)
		return fd_rw(f->buf_fd, wr, iov, cnt, off, 1);
	if (iov_dio_ok(f, iov, cnt))
		return fd_rw(f->fd, wr, iov, cnt, off, f->off_align);
	return bounce_rw(f, wr, iov, cnt, off, total);
}

int blk_file_preadv(const struct blk_file *f, const struct iovec *iov,
		    unsigned iovcnt, uint64_t off)
{
	return file_rw(f, false, iov, iovcnt, off);
}

int blk_file_pwritev(const struct blk_file *f, const struct iovec *iov,
		     unsigned iovcnt, uint64_t off)
{
	return file_rw(f, true, iov, iovcnt, off);
}

int blk_file_pread(const struct blk_file *f, void *buf, size_t len,
		   uint64_t off)
{
	struct iovec v = {.iov_base = buf, .iov_len = len};

	return file_rw(f, false, &v, 1, off);
}

int blk_file_pwrite(const struct blk_file *f, const void *buf, size_t len,
		    uint64_t off)
{
	struct iovec v = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};

	return file_rw(f, true, &v, 1, off);
}

int blk_file_flush(const struct blk_file *f)
{
	while (fdatasync(f->fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int blk_file_discard(const struct blk_file *f, uint64_t off, uint64_t len)
{
	uint64_t range[2], sec, lo, hi;

	if (len == 0)
		return 0;
	if (!f->bdev) {
		if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len) < 0)
			return errno == ENOTSUP ? -EOPNOTSUPP : -errno;
		return 0;
	}
	/* BLKDISCARD wants whole device sectors: shrink to them. */
	sec = f->dev_lsector ? f->dev_lsector : 512;
	lo = (off + sec - 1) / sec * sec;
	hi = (off + len) / sec * sec;
	if (hi <= lo)
		return 0;
	range[0] = lo;
	range[1] = hi - lo;
	if (ioctl(f->fd, BLKDISCARD, range) < 0)
		return errno == ENOTSUP ? -EOPNOTSUPP : -errno;
	return 0;
}

/* Write zeros over [off, off+len) from the shared zero buffer. */
static int write_zero_buf(const struct blk_file *f, uint64_t off, uint64_t len)
{
	struct iovec v[ZERO_IOVS];
	unsigned n;
	uint64_t step;
	int rc;

	while (len > 0) {
		for (n = 0, step = 0; n < ZERO_IOVS && step < len; n++) {
			v[n].iov_base = (void *)(uintptr_t)zero_buf;
			v[n].iov_len = len - step < ZERO_BUF
					       ? (size_t)(len - step)
					       : ZERO_BUF;
			step += v[n].iov_len;
		}
		rc = file_rw(f, true, v, n, off);
		if (rc < 0)
			return rc;
		off += step;
		len -= step;
	}
	return 0;
}

int blk_file_write_zeroes(const struct blk_file *f, uint64_t off, uint64_t len)
{
	if (len == 0)
		return 0;
	if (fallocate(f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return 0;
	/* Not supported by the file system, or (devices) not whole
	 * sectors: write the zeros. */
	if (errno != EOPNOTSUPP && errno != ENOTSUP && errno != EINVAL &&
	    errno != ENOSYS && errno != ENODEV)
		return -errno;
	return write_zero_buf(f, off, len);
}

static bool bdev_sysfs_discard(const struct blk_file *f)
{
	static const char *const rel[] = {"queue", "../queue"};
	char path[128], val[32];
	struct stat st;
	unsigned i;
	ssize_t n;
	int fd;

	if (fstat(f->fd, &st) < 0)
		return true;
	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path),
			 "/sys/dev/block/%u:%u/%s/discard_max_bytes",
			 major(st.st_rdev), minor(st.st_rdev), rel[i]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, val, sizeof(val) - 1);
		close(fd);
		if (n <= 0)
			continue;
		val[n] = '\0';
		return strtoull(val, NULL, 10) > 0;
	}
	return true; /* unknown: try, and report what the device says */
}

bool blk_file_can_discard(const struct blk_file *f)
{
	if (!f->writable)
		return false;
	if (f->bdev)
		return bdev_sysfs_discard(f);
	/* Punching a hole past the end changes nothing, but tells whether
	 * the file system can. */
	return fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 (off_t)f->size, 4096) == 0;
}

/* ---- open ---- */

static unsigned pow2_clamp(unsigned long v, unsigned lo, unsigned hi)
{
	unsigned p = lo;

	while (p < hi && p < v)
		p <<= 1;
	return p;
}

static int open_image(struct blk_file *f, const struct blk_opts *o, int extra)
{
	const char *path = o->path;
	int e;

	f->writable = !o->ro;
	f->fd = open(path, (o->ro ? O_RDONLY : O_RDWR) | extra);
	if (f->fd < 0 && !o->ro &&
	    (errno == EROFS || errno == EACCES || errno == EPERM)) {
		e = errno;
		log_warn("%s: cannot open read-write (%s), opening read-only",
			 path, strerror(e));
		f->writable = false;
		f->fd = open(path, O_RDONLY | extra);
	}
	if (f->fd >= 0)
		return 0;
	e = errno;
	if (e == EINVAL && (extra & O_DIRECT))
		log_err("%s: nocache: the file system does not support "
			"O_DIRECT",
			path);
	else
		log_errno(LOG_ERR, e, "%s", path);
	return -e;
}

#define LOCK_WAIT_MS 2000

static int lock_image(const struct blk_file *f)
{
	struct flock fl;
	int i;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = f->writable ? F_WRLCK : F_RDLCK;
	fl.l_whence = SEEK_SET;
	/*
	 * A VMM killed a moment ago may have left its qcow2 commit helper
	 * finishing the last write-back with the lock held (milliseconds):
	 * wait up to LOCK_WAIT_MS for it before calling the image busy.
	 */
	for (i = 0; i < LOCK_WAIT_MS / 20; i++) {
		if (fcntl(f->fd, F_OFD_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES)
			break;
		usleep(20000);
	}
	if (fcntl(f->fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EAGAIN || errno == EACCES) {
		log_err("%s: in use by another process (locked)", f->path);
		return -EBUSY;
	}
	/* A file system without locks: go on, but say so. */
	log_warn("%s: cannot lock the image (%s); another VM could write it",
		 f->path, strerror(errno));
	return 0;
}

/* Device size and sector sizes. */
static int probe_bdev(struct blk_file *f)
{
	unsigned int pss = 0;
	uint64_t size;
	int lss = 0;

	if (ioctl(f->fd, BLKGETSIZE64, &size) < 0) {
		log_errno(LOG_ERR, errno, "%s: BLKGETSIZE64", f->path);
		return -errno;
	}
	f->size = size;
	if (ioctl(f->fd, BLKSSZGET, &lss) == 0 && lss > 0)
		f->dev_lsector = (unsigned)lss;
	if (ioctl(f->fd, BLKPBSZGET, &pss) == 0 && pss > 0)
		f->dev_psector = pss;
	return 0;
}

/* O_DIRECT buffer and offset alignment: statx, else conservative. */
static int probe_dio_align(struct blk_file *f, const struct stat *st)
{
	struct statx stx;
	unsigned fallback;

	if (f->bdev)
		fallback = f->dev_lsector ? f->dev_lsector : 512;
	else
		fallback = pow2_clamp((unsigned long)st->st_blksize, 512, 4096);
	f->mem_align = fallback;
	f->off_align = fallback;
	memset(&stx, 0, sizeof(stx));
	if (statx(f->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		f->off_align =
			pow2_clamp(stx.stx_dio_offset_align, 1, UINT_MAX / 2);
		f->mem_align =
			pow2_clamp(stx.stx_dio_mem_align, 1, UINT_MAX / 2);
	}
	if (f->off_align > DIO_ALIGN_MAX || f->mem_align > DIO_ALIGN_MAX) {
		log_err("%s: nocache: O_DIRECT alignment %u is too large",
			f->path, f->off_align);
		return -EINVAL;
	}
	return 0;
}

/* The same file again without O_DIRECT, for misaligned requests. */
static int open_buffered(struct blk_file *f, const struct blk_opts *o,
			 const struct stat *st)
{
	char proc[64];
	struct stat st2;
	int flags = (f->writable ? O_RDWR : O_RDONLY) | O_CLOEXEC;

	if (o->sync)
		flags |= O_DSYNC;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
	f->buf_fd = open(proc, flags);
	if (f->buf_fd < 0)
		f->buf_fd = open(f->path, flags);
	if (f->buf_fd < 0) {
		log_errno(LOG_ERR, errno, "%s", f->path);
		return -errno;
	}
	if (fstat(f->buf_fd, &st2) < 0 || st2.st_dev != st->st_dev ||
	    st2.st_ino != st->st_ino) {
		log_err("%s: changed while being opened", f->path);
		return -ESTALE;
	}
	return 0;
}

int blk_file_open(struct blk_file *f, const struct blk_opts *o)
{
	struct stat st;
	int extra = O_CLOEXEC, rc;

	memset(f, 0, sizeof(*f));
	f->fd = f->buf_fd = -1;
	f->path = o->path;
	f->mem_align = f->off_align = 1;
	if (o->nocache)
		extra |= O_DIRECT;
	if (o->sync)
		extra |= O_DSYNC;
	rc = open_image(f, o, extra);
	if (rc < 0)
		return rc;
	if (fstat(f->fd, &st) < 0) {
		rc = -errno;
		log_errno(LOG_ERR, errno, "%s", f->path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		log_err("%s: not a regular file or block device", f->path);
		rc = -EINVAL;
		goto fail;
	}
	rc = lock_image(f);
	if (rc < 0)
		goto fail;
	f->bdev = S_ISBLK(st.st_mode);
	if (f->bdev) {
		rc = probe_bdev(f);
		if (rc < 0)
			goto fail;
	} else {
		f->size = (uint64_t)st.st_size;
		f->dev_psector =
			pow2_clamp((unsigned long)st.st_blksize, 512, 4096);
	}
	if (o->nocache) {
		f->direct = true;
		rc = probe_dio_align(f, &st);
		if (rc == 0)
			rc = open_buffered(f, o, &st);
		if (rc < 0)
			goto fail;
	}
	return 0;
fail:
	blk_file_close(f);
	return rc;
}

void blk_file_close(struct blk_file *f)
{
	if (f->buf_fd >= 0)
		close(f->buf_fd);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = f->buf_fd = -1;
}
