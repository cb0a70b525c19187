/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qcow2 crash consistency and the commit helper process, and the image
 * helper of tests/e2e/qcow2.t.
 *
 * Without arguments (a unit test under prove; this process makes itself
 * a child subreaper, so the helpers of killed writers come to it):
 *   - the helper alone (qcow2_commit.h): its own session, only its own
 *     descriptors open, plans run and their errors come back, an aborted
 *     plan writes nothing, a killed helper is replaced by in-process
 *     runs (one warning), closing reaps it, and helpers can be off;
 *   - a 32 MiB plan handed over right before the "VMM" is killed with
 *     SIGKILL is executed in full, and the helper then exits;
 *   - through the block layer: a read-write qcow2 open has one helper,
 *     closing the image ends it, a read-only open has none;
 *   - crash rounds: a writer child runs stamped random writes, discards,
 *     write-zeroes and flushes through blk_open()/blk_submit() and is
 *     killed with SIGKILL, many times on the same image: at a random
 *     moment, once the header's dirty bit is set, or while its helper
 *     runs a plan.  After every kill the helper finishes and exits by
 *     itself (status 0), 'qemu-img check' (when installed) and
 *     qcow2_check() find no errors and no leaks, and every unit reads as
 *     zeros or as a stamp naming its own offset (no misplaced data) and
 *     no older than the last write completed before the last completed
 *     FLUSH.  Images: an overlay of a stamped raw base, a plain image
 *     with 4 KiB clusters, and one with 512-byte clusters (new refcount
 *     blocks and refcount-table growth during the rounds).
 *
 * Modes (for the e2e script):
 *   --base FILE MIB          a raw image of MIB MiB of seq-0 stamps
 *   --writer IMG SEED        the writer loop (never returns; kill it)
 *   --verify IMG             the block checks above (exit 0/1)
 *   --apply IMG FMT SEED N   N random ops (deterministic content)
 *   --dump IMG               the guest contents to stdout
 * The writer keeps IMG.durable, a shared map of what was flushed.
 *
 * Threads: the main thread, plus the block layer's workers whose done()
 * hooks only update counters under a mutex.  Images in /var/tmp.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block/blk.h"
#include "block/blk_backend.h"
#include "block/qcow2.h"
#include "block/qcow2_commit.h"
#include "lib/log.h"
#include "tests/tap.h"
#include "tests/unit/blkio.h"

#define BLK_MAX 4096
#define BLK blk_unit
#define MIB (1024 * 1024ULL)
#define QD 8
#define MAXBLKS 32
#define TMPDIR "/var/tmp"
static const char MAGIC[8] = {'K', 'H', 'Q', '2', 'S', 'T', 'M', 'P'};

/* ---- stamps ---- */

/*
 * The unit of stamps: 4 KiB, or the cluster size of images with smaller
 * clusters (a write of several clusters is not atomic: a unit must not
 * tear when a kill interrupts one).  Base images are stamped in 4 KiB.
 */
static unsigned blk_unit = BLK_MAX;

static void set_unit(const char *img)
{
	uint8_t h[24];
	int fd = open(img, O_RDONLY);

	blk_unit = BLK_MAX;
	if (fd < 0)
		return;
	if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
	    !memcmp(h, "QFI\xfb", 4) && h[23] >= 9 && h[23] < 12 && !h[20] &&
	    !h[21] && !h[22])
		blk_unit = 1U << h[23];
	close(fd);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Block at guest byte offset 'off' written by operation 'seq'. */
static void stamp(uint8_t *b, uint64_t off, uint64_t seq)
{
	uint64_t i, x = mix(off ^ (seq << 40) ^ 0x5151);

	memcpy(b, MAGIC, 8);
	put64(b + 8, off);
	put64(b + 16, seq);
	for (i = 32; i < BLK; i += 8) {
		x = mix(x + i);
		put64(b + i, x);
	}
	put64(b + 24, mix(off * 31 + seq) ^ get64(b + BLK - 8));
}

enum bstate { B_ZERO, B_STAMP, B_BAD };

static enum bstate stamp_check(const uint8_t *b, uint64_t off, uint64_t *seq)
{
	uint8_t want[BLK_MAX];
	size_t i;

	for (i = 0; i < BLK && !b[i]; i++)
		;
	if (i == BLK)
		return B_ZERO;
	if (memcmp(b, MAGIC, 8) || get64(b + 8) != off)
		return B_BAD;
	*seq = get64(b + 16);
	stamp(want, off, *seq);
	return memcmp(b, want, BLK) ? B_BAD : B_STAMP;
}

/* ---- modes ---- */

static int mode_base(const char *path, uint64_t mib)
{
	uint8_t *buf = malloc(MIB);
	uint64_t off, i;
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	blk_unit = BLK_MAX;
	if (fd < 0 || !buf) {
		perror(path);
		return 1;
	}
	for (off = 0; off < mib * MIB; off += MIB) {
		for (i = 0; i < MIB; i += BLK)
			stamp(buf + i, off + i, 0);
		if (pwrite(fd, buf, MIB, (off_t)off) != (ssize_t)MIB) {
			perror(path);
			return 1;
		}
	}
	close(fd);
	free(buf);
	return 0;
}

/* The writer's shared record: seq of the last write to each block that
 * completed before the last completed flush (0: none or zeroed). */
static uint64_t *durable_map(const char *img, uint64_t nblk, bool create)
{
	char path[512];
	uint64_t *m;
	int fd;

	snprintf(path, sizeof(path), "%s.durable", img);
	fd = open(path, O_RDWR | (create ? O_CREAT : 0), 0644);
	if (fd < 0)
		return NULL;
	if (create && ftruncate(fd, (off_t)(nblk * 8)) < 0) {
		close(fd);
		return NULL;
	}
	m = mmap(NULL, nblk * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return m == MAP_FAILED ? NULL : m;
}

/* The writer loop; 'ready_fd' (or -1) gets one byte once the image is
 * open. */
static void __attribute__((noreturn))
mode_writer(const char *img, uint64_t seed, int ready_fd)
{
	struct blk *b = bio_open_img(img, "qcow2", false);
	uint64_t nblk, *durable, *completed, seq, i, k;
	struct timespec now;
	struct bio_io ios[QD];
	struct bio_waiter w;
	unsigned n, j;

	if (!b)
		exit(2);
	set_unit(img);
	nblk = blk_size(b) / BLK;
	durable = durable_map(img, nblk, true);
	completed = calloc(nblk, sizeof(*completed));
	if (!durable || !completed)
		exit(2);
	memcpy(completed, durable, nblk * 8);
	if (ready_fd >= 0 && write(ready_fd, "r", 1) != 1)
		exit(2);
	bio_rng_state = seed ? seed : 1;
	/* Sequence numbers grow across runs: microseconds of the
	 * monotonic clock, with room for 2^20 operations per run. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	seq = ((uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000)
	      << 20;
	bio_waiter_init(&w);
	for (;;) {
		n = 1 + (unsigned)bio_rng_below(QD);
		for (j = 0; j < n; j++) {
			struct bio_io *io = &ios[j];
			unsigned p = (unsigned)bio_rng_below(100);
			uint64_t cnt = 1 + bio_rng_below(MAXBLKS);
			uint64_t first = bio_rng_below(nblk);

			if (p >= 85) /* sometimes whole, aligned clusters */
				first &= ~15ULL;
			if (cnt > nblk - first)
				cnt = nblk - first;
			memset(io, 0, sizeof(*io));
			io->seq = ++seq;
			io->req.offset = first * BLK;
			io->req.len = cnt * BLK;
			if (p < 70) {
				io->req.op = BLK_WRITE;
				io->buf = malloc(cnt * BLK);
				if (!io->buf)
					exit(2);
				for (i = 0; i < cnt; i++)
					stamp(io->buf + i * BLK,
					      (first + i) * BLK, io->seq);
			} else {
				io->req.op =
					p < 85 ? BLK_DISCARD : BLK_WRITE_ZEROES;
			}
			if (bio_submit(b, io, &w) < 0)
				exit(3);
		}
		bio_wait_all(&w);
		for (j = 0; j < n; j++) {
			struct bio_io *io = &ios[j];

			if (io->err)
				exit(4);
			k = io->req.offset / BLK;
			for (i = 0; i < io->req.len / BLK; i++)
				completed[k + i] =
					io->req.op == BLK_WRITE ? io->seq : 0;
			free(io->buf);
		}
		/* Note: overlapping ops of one batch complete in submission
		 * order (the block layer's rule), so the last one wins. */
		if (bio_rng_below(4) == 0) {
			if (bio_run_one(b, BLK_FLUSH, 0, NULL, 0))
				exit(5);
			memcpy(durable, completed, nblk * 8);
		}
	}
}

/* 0 when every block is fine; prints the first problems. */
static int verify(const char *img, unsigned *nbad, bool quiet)
{
	struct blk *b = bio_open_img(img, NULL, true);
	uint64_t nblk, *durable, i, seq;
	uint8_t *buf = malloc(MIB);
	unsigned bad = 0;
	enum bstate s;

	if (!b || !buf)
		return -1;
	set_unit(img);
	nblk = blk_size(b) / BLK;
	durable = durable_map(img, nblk, false);
	for (i = 0; i < nblk; i++) {
		if (i % (MIB / BLK) == 0 &&
		    bio_run_one(b, BLK_READ, i * BLK, buf, MIB) < 0) {
			bad++;
			break;
		}
		s = stamp_check(buf + (i * BLK) % MIB, i * BLK, &seq);
		if (s == B_BAD ||
		    (s == B_STAMP && durable && seq < durable[i])) {
			if (bad++ < 5 && !quiet)
				fprintf(stderr,
					"block %llu: %s (seq %llu, durable "
					"%llu)\n",
					(unsigned long long)i,
					s == B_BAD ? "bad data" : "stale data",
					(unsigned long long)(s == B_BAD ? 0
									: seq),
					(unsigned long long)(durable ? durable[i]
								     : 0));
		}
	}
	if (durable)
		munmap(durable, nblk * 8);
	blk_close(b);
	free(buf);
	*nbad = bad;
	return 0;
}

static int mode_verify(const char *img)
{
	unsigned bad;

	if (verify(img, &bad, false) < 0)
		return 2;
	if (bad)
		fprintf(stderr, "%s: %u bad blocks\n", img, bad);
	return bad ? 1 : 0;
}

/* N random ops whose final content depends only on the seed. */
static int mode_apply(const char *img, const char *fmt, uint64_t seed,
		      unsigned nops)
{
	struct blk *b = bio_open_img(img, fmt, false);
	struct bio_io ios[QD];
	struct bio_waiter w;
	uint64_t size, i;
	unsigned done = 0, n, j;
	int rc = 0;

	if (!b)
		return 2;
	size = blk_size(b);
	bio_rng_state = seed ? seed : 1;
	bio_waiter_init(&w);
	while (done < nops && rc == 0) {
		n = 1 + (unsigned)bio_rng_below(QD);
		for (j = 0; j < n; j++) {
			struct bio_io *io = &ios[j];
			unsigned p = (unsigned)bio_rng_below(100);
			uint64_t len = 1 + bio_rng_below(256 * 1024);
			uint64_t off = bio_rng_below(size);

			if (p & 1)
				off &= ~511ULL, len = (len + 511) & ~511ULL;
			if (len > size - off)
				len = size - off;
			memset(io, 0, sizeof(*io));
			io->req.offset = off;
			io->req.len = len;
			io->req.op = p < 70   ? BLK_WRITE
				     : p < 82 ? BLK_DISCARD
				     : p < 94 ? BLK_WRITE_ZEROES
					      : BLK_FLUSH;
			if (io->req.op == BLK_WRITE) {
				io->buf = malloc(len);
				if (!io->buf)
					return 2;
				for (i = 0; i < len; i++)
					io->buf[i] = (uint8_t)(bio_rng() >> 32);
			}
			if (bio_submit(b, io, &w) < 0)
				rc = 3;
		}
		bio_wait_all(&w);
		for (j = 0; j < n; j++) {
			if (ios[j].err)
				rc = 4;
			free(ios[j].buf);
		}
		done += n;
	}
	blk_close(b);
	return rc;
}

static int mode_dump(const char *img)
{
	struct blk *b = bio_open_img(img, NULL, true);
	uint8_t *buf = malloc(MIB);
	uint64_t size, off, len;

	if (!b || !buf)
		return 2;
	size = blk_size(b);
	for (off = 0; off < size; off += len) {
		len = size - off < MIB ? size - off : MIB;
		if (bio_run_one(b, BLK_READ, off, buf, len) < 0 ||
		    fwrite(buf, 1, len, stdout) != len)
			return 1;
	}
	blk_close(b);
	free(buf);
	return fflush(stdout) ? 1 : 0;
}

/* ---- the self-test: processes ---- */

static bool header_dirty(const char *img)
{
	uint8_t b = 0;
	int fd = open(img, O_RDONLY);

	if (fd >= 0) {
		if (pread(fd, &b, 1, 79) != 1)
			b = 0;
		close(fd);
	}
	return b & 1;
}

/* Field 'which' of /proc/PID/stat: 0 = state, 1 = parent; -1 if gone. */
static long proc_stat(pid_t pid, int which)
{
	char path[64], buf[512], *p, st;
	long ppid = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the name may hold anything */
	if (!p || sscanf(p + 1, " %c %ld", &st, &ppid) != 2)
		return -1;
	return which == 0 ? st : ppid;
}

/* The children of process 'parent' (up to 'max'); their number. */
static unsigned children_of(pid_t parent, pid_t *out, unsigned max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	unsigned n = 0;
	long pid;
	char *end;

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || proc_stat((pid_t)pid, 1) != parent)
			continue;
		if (n < max)
			out[n] = (pid_t)pid;
		n++;
	}
	closedir(d);
	return n;
}

static bool comm_is(pid_t pid, const char *name)
{
	char path[64], buf[64] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	buf[n > 0 ? n : 0] = 0;
	return !strcmp(buf, name);
}

/* Wait up to 'ms' for our child (or orphan: we are a subreaper) 'pid'.
 * 0, or -ETIMEDOUT after killing it, or -errno. */
static int reap(pid_t pid, unsigned ms, int *st)
{
	struct timespec ts = {0, 1000000};
	unsigned i;
	pid_t r;

	*st = -1;
	for (i = 0; i < ms; i++) {
		r = waitpid(pid, st, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0)
			return -errno;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, st, 0);
	return -ETIMEDOUT;
}

static bool have_qemu_img(void)
{
	return system("qemu-img --version >/dev/null 2>&1") == 0;
}

/* qemu-img check's exit status (0: no errors, no leaks); its report goes
 * to the TAP stream as comments when it is not 0. */
static int qemu_img_check(const char *img)
{
	char cmd[600];
	int st;

	fflush(stdout);
	snprintf(cmd, sizeof(cmd), "qemu-img check -q '%s' >/dev/null 2>&1",
		 img);
	st = system(cmd);
	if (st != 0) {
		snprintf(cmd, sizeof(cmd),
			 "qemu-img check '%s' 2>&1 | sed 's/^/# /'", img);
		if (system(cmd) != 0)
			diag("qemu-img check failed to run");
	}
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Capture stderr (our warnings) between cap_start() and cap_end(). */
static char cap_buf[4096];
static int cap_fd = -1, cap_saved = -1;

static void cap_start(void)
{
	char tmpl[] = "/tmp/t_qcow2_crash.cap.XXXXXX";

	fflush(stderr);
	cap_fd = mkstemp(tmpl);
	if (cap_fd < 0)
		return;
	unlink(tmpl);
	cap_saved = dup(STDERR_FILENO);
	dup2(cap_fd, STDERR_FILENO);
}

static const char *cap_end(void)
{
	ssize_t n = 0;

	cap_buf[0] = 0;
	if (cap_fd < 0)
		return cap_buf;
	fflush(stderr);
	dup2(cap_saved, STDERR_FILENO);
	close(cap_saved);
	n = pread(cap_fd, cap_buf, sizeof(cap_buf) - 1, 0);
	cap_buf[n > 0 ? n : 0] = 0;
	close(cap_fd);
	cap_fd = -1;
	return cap_buf;
}

/* ---- the self-test: killing writers ---- */

struct crash_stats {
	unsigned kills, targeted, busy, dirty;
};

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void nap_us(long us)
{
	struct timespec ts = {0, us * 1000};

	nanosleep(&ts, NULL);
}

/* Poll the header until its dirty bit is set, up to 'ms'. */
static bool wait_dirty(const char *img, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	int fd = open(img, O_RDONLY);
	uint8_t b = 0;

	if (fd < 0)
		return false;
	while (!(pread(fd, &b, 1, 79) == 1 && (b & 1)) && now_ms() < end)
		nap_us(50);
	close(fd);
	return b & 1;
}

/* Poll the helper until it runs a plan (not asleep waiting for one), up
 * to 'ms'. */
static bool wait_busy(pid_t helper, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	long st = 'S';

	while (helper > 0 && now_ms() < end) {
		st = proc_stat(helper, 0);
		if (st != 'S')
			break;
		nap_us(50);
	}
	return st != 'S' && st != -1;
}

/*
 * One round: a writer opens 'img' (with its commit helper), runs for a
 * random time and is killed; the helper must finish and exit, and the
 * image must be clean and hold what was flushed.
 */
static void crash_round(const char *img, unsigned r, uint64_t seed, bool qimg,
			struct crash_stats *cs)
{
	struct timespec ts = {0, 0};
	struct qcow2_check_result res;
	pid_t pid, kids[4], helper;
	int pfd[2], st, hst;
	unsigned bad, nk;
	char c = 0;
	long state;

	if (pipe(pfd) < 0) {
		ok(0, "round %u: pipe", r);
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		mode_writer(img, seed + r, pfd[1]);
	}
	close(pfd[1]);
	ok(pid > 0 && read(pfd[0], &c, 1) == 1 && c == 'r',
	   "round %u: writer started, image open", r);
	close(pfd[0]);
	if (pid < 0)
		return;
	nk = children_of(pid, kids, 4);
	helper = nk == 1 ? kids[0] : 0;
	ok(helper > 0 && comm_is(helper, "khyve-qcow2"),
	   "round %u: the writer has one commit helper (%u children)", r, nk);
	if (r % 3 == 0) { /* at a random moment */
		ts.tv_nsec = (long)bio_rng_below(150) * 1000000L;
		nanosleep(&ts, NULL);
	} else { /* in a commit: dirty bit set, or a plan running */
		ts.tv_nsec = (long)bio_rng_below(20) * 1000000L;
		nanosleep(&ts, NULL);
		cs->targeted += r % 3 == 1 ? wait_dirty(img, 300)
					   : wait_busy(helper, 300);
	}
	kill(pid, SIGKILL);
	state = helper > 0 ? proc_stat(helper, 0) : 'S';
	cs->busy += state != 'S' && state != -1; /* running or in a sync */
	waitpid(pid, &st, 0);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	   "round %u: writer killed mid-run (status 0x%x)", r, st);
	cs->kills++;
	if (helper > 0) {
		is_int(reap(helper, 10000, &hst), 0,
		       "round %u: the orphaned helper exits by itself", r);
		ok(WIFEXITED(hst) && WEXITSTATUS(hst) == 0,
		   "round %u: helper exit status 0 (0x%x)", r, hst);
	}
	cs->dirty += header_dirty(img);
	if (qimg)
		is_int(qemu_img_check(img), 0,
		       "round %u: qemu-img check: no errors, no leaks", r);
	is_int(qcow2_check(img, false, &res), 0, "round %u: check runs", r);
	ok(res.errors == 0 && res.leaks == 0,
	   "round %u: khyve check: no errors, no leaks (%llu, %llu)", r,
	   (unsigned long long)res.errors, (unsigned long long)res.leaks);
	is_int(verify(img, &bad, false), 0, "round %u: verify runs", r);
	is_int(bad, 0, "round %u: every block intact, flushed data kept", r);
}

static void crash_rounds(const char *img, unsigned rounds, uint64_t seed,
			 bool qimg)
{
	struct crash_stats cs;
	unsigned r;

	memset(&cs, 0, sizeof(cs));
	for (r = 0; r < rounds; r++)
		crash_round(img, r, seed, qimg, &cs);
	diag("%u kills: %u aimed at a commit (dirty bit set or helper "
	     "busy), %u with the helper busy, %u left the dirty bit set",
	     cs.kills, cs.targeted, cs.busy, cs.dirty);
}

/* ---- the self-test: the helper on its own ---- */

static void fake_file(struct blk_file *f, const char *path, int fd)
{
	memset(f, 0, sizeof(*f));
	f->path = path;
	f->fd = fd;
	f->buf_fd = -1;
	f->writable = true;
	f->mem_align = f->off_align = 1;
}

static void fill(uint8_t *b, size_t n, uint64_t salt)
{
	size_t i;

	for (i = 0; i + 8 <= n; i += 8)
		put64(b + i, mix(salt * 1000003 + i));
}

#define PLAN_MIB 32

/*
 * A plan handed over right before the VMM is killed is executed in full:
 * PLAN_MIB MiB of writes (the area grows far past its first size after
 * the fork), a sync and a last marker.
 */
static void test_plan_outlives_vmm(const char *dir_path)
{
	uint8_t *buf = malloc(MIB), *got = malloc(MIB);
	struct blk_file f;
	struct stat sb;
	pid_t pid, helper = 0;
	int fd, pfd[2], st, hst, good = 0;
	char path[300], mark[8];
	uint64_t i;

	snprintf(path, sizeof(path), "%s.plan", dir_path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || !buf || !got || pipe(pfd) < 0) {
		ok(0, "plan: set-up");
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct qcow2_commit *c;
		pid_t hp;

		close(pfd[0]);
		fake_file(&f, path, fd);
		if (qcow2_commit_open(&c, &f, true) < 0)
			_exit(2);
		for (i = 0; i < PLAN_MIB; i++) {
			fill(buf, MIB, i);
			if (qcow2_commit_write(c, buf, MIB, i * MIB) < 0)
				_exit(3);
		}
		if (qcow2_commit_sync(c) < 0 ||
		    qcow2_commit_write(c, "PLANDONE", 8, PLAN_MIB * MIB) < 0 ||
		    qcow2_commit_submit(c) < 0)
			_exit(4);
		hp = qcow2_commit_helper_pid(c);
		if (write(pfd[1], &hp, sizeof(hp)) != sizeof(hp))
			_exit(5);
		for (;;)
			pause();
	}
	close(pfd[1]);
	ok(pid > 0 && read(pfd[0], &helper, sizeof(helper)) == sizeof(helper) &&
		   helper > 0,
	   "plan: submitted to helper %d", (int)helper);
	close(pfd[0]);
	if (pid > 0)
		kill(pid, SIGKILL);
	if (fstat(fd, &sb) == 0)
		diag("plan: %llu of %u MiB written when the VMM was killed",
		     (unsigned long long)sb.st_size / MIB, PLAN_MIB);
	if (pid > 0)
		waitpid(pid, &st, 0);
	if (helper > 0) {
		is_int(reap(helper, 20000, &hst), 0,
		       "plan: the helper finished and exited");
		ok(WIFEXITED(hst) && WEXITSTATUS(hst) == 0,
		   "plan: helper exit status 0 (0x%x)", hst);
	}
	for (i = 0; i < PLAN_MIB; i++) {
		fill(buf, MIB, i);
		good += pread(fd, got, MIB, (off_t)(i * MIB)) == (ssize_t)MIB &&
			!memcmp(got, buf, MIB);
	}
	is_int(good, PLAN_MIB, "plan: every MiB of the plan is on disk");
	ok(pread(fd, mark, 8, PLAN_MIB * MIB) == 8 &&
		   !memcmp(mark, "PLANDONE", 8),
	   "plan: its last write too");
	close(fd);
	unlink(path);
	free(buf);
	free(got);
}

/* The helper's descriptors, as "fd=target" lines; their number. */
static unsigned helper_fds(pid_t pid, char *out, size_t max)
{
	char dpath[64], lpath[400], tgt[300];
	size_t used = 0;
	struct dirent *e;
	unsigned n = 0;
	ssize_t l;
	DIR *d;

	out[0] = 0;
	snprintf(dpath, sizeof(dpath), "/proc/%d/fd", (int)pid);
	d = opendir(dpath);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(lpath, sizeof(lpath), "%s/%s", dpath, e->d_name);
		l = readlink(lpath, tgt, sizeof(tgt) - 1);
		tgt[l > 0 ? l : 0] = 0;
		if (used < max)
			used += (size_t)snprintf(out + used, max - used,
						 "%s=%s\n", e->d_name, tgt);
		n++;
	}
	closedir(d);
	return n;
}

static bool file_has(int fd, const char *s, uint64_t off)
{
	char b[64];
	size_t n = strlen(s);

	return n < sizeof(b) && pread(fd, b, n, (off_t)off) == (ssize_t)n &&
	       !memcmp(b, s, n);
}

static void test_helper_process(const char *dir_path)
{
	struct qcow2_commit *c = NULL;
	char path[300], fds[2048];
	struct blk_file f;
	int fd, rofd, extra, st;
	pid_t pid;

	snprintf(path, sizeof(path), "%s.helper", dir_path);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	extra = open("/dev/zero", O_RDONLY); /* the helper must not get it */
	fake_file(&f, path, fd);
	is_int(qcow2_commit_open(&c, &f, true), 0, "helper: open");
	if (!c)
		return;
	pid = qcow2_commit_helper_pid(c);
	ok(pid > 0 && comm_is(pid, "khyve-qcow2"), "helper: running (%d)",
	   (int)pid);
	ok(getsid(pid) == pid, "helper: in its own session");
	ok(proc_stat(pid, 1) == getpid(), "helper: our child");
	if (!ok(helper_fds(pid, fds, sizeof(fds)) == 6 &&
			strstr(fds, "3=socket:") && strstr(fds, "4=/memfd:") &&
			strstr(fds, "5=/") && strstr(fds, path) &&
			!strstr(fds, "/dev/zero"),
		"helper: only /dev/null, its socket, the plan memfd and the "
		"image are open"))
		diag("helper fds:\n%s", fds);
	ok(qcow2_commit_empty(c), "helper: a new plan is empty");
	is_int(qcow2_commit_run(c), 0, "helper: an empty plan runs");
	ok(qcow2_commit_write(c, "hello", 5, 4096) == 0 &&
		   qcow2_commit_sync(c) == 0 && qcow2_commit_sync(c) == 0 &&
		   qcow2_commit_write(c, "world", 5, 3) == 0 &&
		   !qcow2_commit_empty(c),
	   "helper: plan built");
	is_int(qcow2_commit_run(c), 0, "helper: plan ran");
	ok(file_has(fd, "hello", 4096) && file_has(fd, "world", 3),
	   "helper: the writes are in the file");
	ok(qcow2_commit_empty(c), "helper: a run leaves an empty plan");
	qcow2_commit_write(c, "gone", 4, 100);
	qcow2_commit_abort(c);
	is_int(qcow2_commit_run(c), 0, "helper: aborted plan: nothing to run");
	ok(!file_has(fd, "gone", 100),
	   "helper: an aborted plan writes nothing");

	/* The helper killed under our feet: the plan runs here. */
	kill(pid, SIGKILL);
	ok(qcow2_commit_write(c, "again", 5, 200) == 0, "lost: plan built");
	cap_start();
	is_int(qcow2_commit_run(c), 0, "lost: the plan still runs");
	ok(strstr(cap_end(), "commit helper"), "lost: one warning");
	ok(file_has(fd, "again", 200), "lost: write in the file");
	is_int(qcow2_commit_helper_pid(c), 0, "lost: in-process from now on");
	ok(waitpid(pid, &st, WNOHANG) < 0 && errno == ECHILD,
	   "lost: the dead helper was reaped");
	qcow2_commit_close(c);

	/* Closing reaps the helper. */
	c = NULL;
	is_int(qcow2_commit_open(&c, &f, true), 0, "close: open");
	pid = c ? qcow2_commit_helper_pid(c) : 0;
	qcow2_commit_close(c);
	ok(pid > 0 && waitpid(pid, &st, WNOHANG) < 0 && errno == ECHILD,
	   "close: helper %d gone and reaped", (int)pid);

	/* Errors of the plan come back: a read-only descriptor. */
	rofd = open(path, O_RDONLY);
	fake_file(&f, path, rofd);
	c = NULL;
	is_int(qcow2_commit_open(&c, &f, true), 0, "error: open");
	if (c) {
		qcow2_commit_write(c, "x", 1, 0);
		qcow2_commit_write(c, "y", 1, 1);
		is_int(qcow2_commit_run(c), -EBADF,
		       "error: a failing write is the plan's result");
		ok(qcow2_commit_helper_pid(c) > 0,
		   "error: the helper lives on");
		is_int(qcow2_commit_run(c), 0, "error: the next plan is new");
	}
	qcow2_commit_close(c);
	close(rofd);

	/* Helpers off (tests, or when fork fails): in-process. */
	qcow2_commit_set_helper(false);
	fake_file(&f, path, fd);
	c = NULL;
	is_int(qcow2_commit_open(&c, &f, true), 0, "off: open");
	if (c) {
		is_int(qcow2_commit_helper_pid(c), 0, "off: no helper");
		qcow2_commit_write(c, "local", 5, 300);
		is_int(qcow2_commit_run(c), 0, "off: plan ran");
		ok(file_has(fd, "local", 300), "off: write in the file");
	}
	qcow2_commit_close(c);
	qcow2_commit_set_helper(true);
	close(extra);
	close(fd);
	unlink(path);
}

/* Through the block layer: a read-write qcow2 open has a helper, closing
 * the image ends it; a read-only open has none. */
static void test_image_helper(const char *img)
{
	uint8_t buf[BLK_MAX];
	pid_t kids[8], pid;
	struct qcow2_create_opts o;
	struct blk *b;
	unsigned n0, n, i;
	int st;

	unlink(img);
	memset(&o, 0, sizeof(o));
	o.size = 8 * MIB;
	o.cluster_bits = 12;
	is_int(qcow2_create(img, &o), 0, "image: created");
	n0 = children_of(getpid(), kids, 8);
	b = bio_open_img(img, "qcow2", false);
	ok(b != NULL, "image: opened read-write");
	n = children_of(getpid(), kids, 8);
	pid = 0;
	for (i = 0; i < n && i < 8; i++) {
		if (comm_is(kids[i], "khyve-qcow2"))
			pid = kids[i];
	}
	ok(n == n0 + 1 && pid > 0,
	   "image: one commit helper (%u children, %u before)", n, n0);
	stamp(buf, 0, 1);
	ok(b && bio_run_one(b, BLK_WRITE, 0, buf, BLK) == 0 &&
		   bio_run_one(b, BLK_FLUSH, 0, NULL, 0) == 0,
	   "image: write and flush through the helper");
	blk_close(b);
	ok(pid > 0 && waitpid(pid, &st, WNOHANG) < 0 && errno == ECHILD &&
		   proc_stat(pid, 1) != getpid(),
	   "image: closing it ended and reaped the helper");
	is_int(children_of(getpid(), kids, 8), n0, "image: no child left");
	b = bio_open_img(img, "qcow2", true);
	ok(b != NULL, "image: opened read-only");
	is_int(children_of(getpid(), kids, 8), n0,
	       "image: no helper for a read-only image");
	blk_close(b);
	if (have_qemu_img())
		is_int(qemu_img_check(img), 0, "image: qemu-img check clean");
	unlink(img);
}

static int self_test(void)
{
	char base[256], img[256], dur[300];
	struct qcow2_create_opts o;
	bool qimg = have_qemu_img();
	unsigned bad, k;
	int st;

	plan_no_plan();
	log_init("t_qcow2_crash");
	bio_rng_state = 0x1234567;
	/* Orphaned helpers come to us: we can wait for them. */
	ok(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, "subreaper");
	if (!qimg)
		diag("qemu-img missing: only khyve's own check is used");
	snprintf(base, sizeof(base), TMPDIR "/t_q2crash.%d.base",
		 (int)getpid());
	snprintf(img, sizeof(img), TMPDIR "/t_q2crash.%d.qcow2", (int)getpid());
	snprintf(dur, sizeof(dur), "%s.durable", img);

	test_helper_process(img);
	test_plan_outlives_vmm(img);
	test_image_helper(img);

	/* Overlays of a stamped base, three fresh ones: once all of an
	 * overlay's clusters are allocated, flushes commit nothing. */
	is_int(mode_base(base, 24), 0, "stamped raw base");
	for (k = 0; k < 3; k++) {
		unlink(img);
		unlink(dur);
		memset(&o, 0, sizeof(o));
		o.backing = base;
		o.backing_fmt = "raw";
		is_int(qcow2_create(img, &o), 0, "overlay %u created", k);
		is_int(verify(img, &bad, false), 0, "fresh overlay verifies");
		is_int(bad, 0, "fresh overlay: base stamps visible");
		crash_rounds(img, 10, 77 + 100 * k, qimg);
	}

	/* A plain image (no backing), 4 KiB clusters: many allocations. */
	unlink(img);
	unlink(dur);
	memset(&o, 0, sizeof(o));
	o.size = 16 * MIB;
	o.cluster_bits = 12;
	is_int(qcow2_create(img, &o), 0, "plain image created");
	crash_rounds(img, 24, 991, qimg);

	/* 512-byte clusters: new refcount blocks and refcount-table growth
	 * inside the rounds. */
	unlink(img);
	unlink(dur);
	o.cluster_bits = 9;
	is_int(qcow2_create(img, &o), 0, "small-cluster image created");
	crash_rounds(img, 16, 4242, qimg);

	unlink(img);
	unlink(dur);
	unlink(base);
	ok(waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD,
	   "no process left behind");
	return done_testing();
}

int main(int argc, char **argv)
{
	if (argc == 1)
		return self_test();
	log_init("t_qcow2_crash");
	if (argc == 4 && !strcmp(argv[1], "--base"))
		return mode_base(argv[2], strtoull(argv[3], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "--writer"))
		mode_writer(argv[2], strtoull(argv[3], NULL, 0), -1);
	if (argc == 3 && !strcmp(argv[1], "--verify"))
		return mode_verify(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "--apply"))
		return mode_apply(argv[2], argv[3], strtoull(argv[4], NULL, 0),
				  (unsigned)strtoul(argv[5], NULL, 0));
	if (argc == 3 && !strcmp(argv[1], "--dump"))
		return mode_dump(argv[2]);
	fprintf(stderr,
		"usage: %s [--base FILE MIB | --writer IMG SEED | --verify IMG "
		"| --apply IMG FMT SEED N | --dump IMG]\n",
		argv[0]);
	return 2;
}
