/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * qcow2 crash consistency, and the image helper of tests/e2e/qcow2.t.
 *
 * Without arguments (a unit test under prove): a writer child runs
 * stamped random writes, discards, write-zeroes and flushes on a qcow2
 * overlay of a stamped raw base through blk_open()/blk_submit(), and is
 * killed with SIGKILL at a random moment, several times on the same
 * image.  After each kill:
 *   - qcow2_check() finds no refcount errors, ever;
 *   - when the header's dirty bit is clear it finds no leaks either (the
 *     dirty bit marks the commit window, see src/block/qcow2.c); when it
 *     is set, a read-write open repairs the leaks and clears it;
 *   - every 4 KiB block reads as zeros or as a stamp naming its own
 *     offset (no misplaced data), and no block went back to data older
 *     than the last write completed before the last completed FLUSH.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block/blk.h"
#include "block/qcow2.h"
#include "lib/log.h"
#include "tests/tap.h"
#include "tests/unit/blkio.h"

#define BLK 4096
#define MIB (1024 * 1024ULL)
#define QD 8
#define MAXBLKS 32
#define TMPDIR "/var/tmp"
static const char MAGIC[8] = {'K', 'H', 'Q', '2', 'S', 'T', 'M', 'P'};

/* ---- stamps ---- */

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
	uint8_t want[BLK];
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

static void __attribute__((noreturn))
mode_writer(const char *img, uint64_t seed)
{
	struct blk *b = bio_open_img(img, "qcow2", false);
	uint64_t nblk, *durable, *completed, seq, i, k;
	struct timespec now;
	struct bio_io ios[QD];
	struct bio_waiter w;
	unsigned n, j;

	if (!b)
		exit(2);
	nblk = blk_size(b) / BLK;
	durable = durable_map(img, nblk, true);
	completed = calloc(nblk, sizeof(*completed));
	if (!durable || !completed)
		exit(2);
	memcpy(completed, durable, nblk * 8);
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

/* ---- the self-test ---- */

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

static void crash_rounds(const char *img, unsigned rounds, uint64_t seed)
{
	struct qcow2_check_result res;
	unsigned r, bad, in_window = 0;
	struct timespec ts;
	struct blk *b;
	bool dirty;
	pid_t pid;
	int st;

	for (r = 0; r < rounds; r++) {
		fflush(stdout);
		pid = fork();
		if (pid == 0)
			mode_writer(img, seed + r);
		ok(pid > 0, "round %u: writer started", r);
		if (pid < 0)
			return;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(50 + bio_rng_below(400)) * 1000000L;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
		   "round %u: writer killed mid-run (status 0x%x)", r, st);
		dirty = header_dirty(img);
		in_window += dirty;
		is_int(qcow2_check(img, false, &res), 0, "round %u: check runs",
		       r);
		is_int(res.errors, 0, "round %u: no refcount errors", r);
		if (!dirty)
			is_int(res.leaks, 0, "round %u: clean header, no leaks",
			       r);
		else
			diag("round %u: killed inside a commit: %llu leaks, "
			     "dirty bit set",
			     r, (unsigned long long)res.leaks);
		is_int(verify(img, &bad, false), 0, "round %u: verify runs", r);
		is_int(bad, 0,
		       "round %u: every block intact, flushed data kept", r);
		if (dirty) { /* a read-write open repairs */
			b = bio_open_img(img, "qcow2", false);
			ok(b != NULL, "round %u: dirty image reopens", r);
			blk_close(b);
			ok(!header_dirty(img), "round %u: dirty bit cleared",
			   r);
			qcow2_check(img, false, &res);
			ok(!res.errors && !res.leaks, "round %u: repaired", r);
		}
	}
	diag("%u of %u kills landed inside a commit window", in_window, rounds);
}

static int self_test(void)
{
	char base[256], img[256], dur[300];
	struct qcow2_create_opts o;
	unsigned bad;

	plan_no_plan();
	log_init("t_qcow2_crash");
	bio_rng_state = 0x1234567;
	snprintf(base, sizeof(base), TMPDIR "/t_q2crash.%d.base",
		 (int)getpid());
	snprintf(img, sizeof(img), TMPDIR "/t_q2crash.%d.qcow2", (int)getpid());
	snprintf(dur, sizeof(dur), "%s.durable", img);
	is_int(mode_base(base, 24), 0, "stamped raw base");
	memset(&o, 0, sizeof(o));
	o.backing = base;
	o.backing_fmt = "raw";
	is_int(qcow2_create(img, &o), 0, "overlay created");
	is_int(verify(img, &bad, false), 0, "fresh overlay verifies");
	is_int(bad, 0, "fresh overlay: base stamps visible");
	crash_rounds(img, 6, 77);

	/* A plain image (no backing), 4 KiB clusters: many allocations. */
	unlink(img);
	unlink(dur);
	memset(&o, 0, sizeof(o));
	o.size = 16 * MIB;
	o.cluster_bits = 12;
	is_int(qcow2_create(img, &o), 0, "plain image created");
	crash_rounds(img, 4, 991);
	unlink(img);
	unlink(dur);
	unlink(base);
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
		mode_writer(argv[2], strtoull(argv[3], NULL, 0));
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
