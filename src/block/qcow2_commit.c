/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Commit plans of the qcow2 backend and the helper process that executes
 * them (the contract is in qcow2_commit.h, the order of the operations
 * and why in the comment at the top of qcow2.c).
 *
 * The plan area is a memfd that the VMM maps read-write and the helper
 * read-only.  A plan is a stream of records (struct plan_op) from offset
 * 0, each WRITE followed by its bytes (aligned to the file's O_DIRECT
 * buffer alignment when the write itself is aligned, so it can go through
 * the O_DIRECT descriptor).  The area grows with ftruncate + mremap in the
 * VMM; each request carries the area's size and the helper maps it again
 * when it grew.  Requests and answers are single messages on a
 * SOCK_SEQPACKET socket pair.  EOF on the helper's end (the image was
 * closed, or the VMM died: the kernel closes its descriptors) ends the
 * helper, after the plan it was given, if any, has been executed.
 *
 * The helper is forked from a multi-threaded process: between fork() and
 * _exit() it only makes async-signal-safe system calls, never malloc or
 * stdio, and it keeps nothing of the VMM but four descriptors: the
 * socket, the memfd and the image's two descriptors (with and without
 * O_DIRECT), plus /dev/null as 0-2.  It runs in its own session with
 * terminal and termination signals ignored, so a ^C or a signal to the
 * VMM's process group does not stop it half way through a plan.
 *
 * Threads and locks: none.  The caller serialises all calls on one
 * commit object (qcow2.c holds its image lock exclusive).
 */
#include "block/qcow2_commit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"

#define PLAN_MIN (1UL << 20)  /* initial size of the area */
#define PLAN_KEEP (1UL << 20) /* memory kept after a large plan */
#define WRITE_CHUNK (1UL << 30)

/* The helper's descriptors. */
#define H_SOCK 3
#define H_MEM 4
#define H_FD 5
#define H_BUF 6

enum { OP_WRITE = 1, OP_SYNC = 2 };

struct plan_op {
	uint32_t kind;
	uint32_t pad;
	uint64_t off;  /* file offset (WRITE) */
	uint64_t len;  /* bytes (WRITE) */
	uint64_t data; /* area offset of the bytes (WRITE) */
};

struct plan_req {
	uint64_t seq;
	uint64_t used; /* bytes of plan from offset 0 */
	uint64_t cap;  /* size of the area */
};

struct plan_ack {
	uint64_t seq;
	int64_t rc;
};

/* Where writes go: the O_DIRECT descriptor only with aligned buffer,
 * offset and length (as blk_file_pwrite() decides). */
struct plan_fds {
	int fd, buf_fd;
	bool direct;
	unsigned mem_align, off_align;
};

struct qcow2_commit {
	const char *path;
	struct plan_fds fds;
	uint8_t *area;
	size_t cap;  /* bytes mapped */
	size_t used; /* bytes of the plan being built */
	int memfd;   /* -1: a private area (no helper) */
	pid_t pid;   /* the helper, 0 when none */
	int sock;    /* our end of the socket pair, or -1 */
	uint64_t seq;
	bool submitted;
	bool synced; /* the plan ends with a SYNC */
	int result;  /* of a plan run in-process */
};

static bool helpers_on = true;

void qcow2_commit_set_helper(bool on)
{
	helpers_on = on;
}

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

/* ---- executing a plan (also in the helper: async-signal-safe only) ---- */

static int pick_fd(const struct plan_fds *fds, const uint8_t *p, uint64_t len,
		   uint64_t off)
{
	if (!fds->direct || fds->buf_fd < 0)
		return fds->fd;
	if ((off | len) % fds->off_align == 0 &&
	    (uintptr_t)p % fds->mem_align == 0)
		return fds->fd;
	return fds->buf_fd;
}

static int write_all(const struct plan_fds *fds, const uint8_t *p, uint64_t len,
		     uint64_t off)
{
	ssize_t r;
	size_t n;

	while (len > 0) {
		n = len < WRITE_CHUNK ? (size_t)len : WRITE_CHUNK;
		/* again each time: a short O_DIRECT write leaves the rest
		 * unaligned, for the other descriptor */
		r = pwrite(pick_fd(fds, p, n, off), p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		len -= (uint64_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int sync_file(const struct plan_fds *fds)
{
	while (fdatasync(fds->fd) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Execute the plan in [area, area + used): 0, or the first error (the
 * rest is not executed); -EPROTO for a malformed plan. */
static int plan_exec(const uint8_t *area, uint64_t used,
		     const struct plan_fds *fds)
{
	struct plan_op op;
	uint64_t pos = 0;
	int rc;

	while (pos < used) {
		if (used - pos < sizeof(op))
			return -EPROTO;
		memcpy(&op, area + pos, sizeof(op));
		switch (op.kind) {
		case OP_SYNC:
			rc = sync_file(fds);
			pos += sizeof(op);
			break;
		case OP_WRITE:
			if (op.data < pos + sizeof(op) || op.data > used ||
			    op.len > used - op.data)
				return -EPROTO;
			rc = write_all(fds, area + op.data, op.len, op.off);
			pos = align_up(op.data + op.len, 8);
			break;
		default:
			return -EPROTO;
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- the helper process ---- */

struct helper_args {
	int sock, memfd, fd, buf_fd;
	struct plan_fds fds; /* alignment; descriptors are renumbered */
	const uint8_t *area; /* the inherited mapping */
	size_t cap;
	long maxfd; /* for closing one by one without close_range() */
};

/* Keep only our descriptors, as 3..6, and /dev/null as 0..2. */
static void helper_fds(const struct helper_args *a)
{
	int src[4] = {a->sock, a->memfd, a->fd, a->buf_fd}, tmp[4], lo = 0;
	int n = a->buf_fd >= 0 ? 4 : 3, nul, i;

	for (i = 0; i < n; i++)
		lo = src[i] > lo ? src[i] : lo;
	lo = lo + 1 > H_BUF + 1 ? lo + 1 : H_BUF + 1;
	for (i = 0; i < n; i++) /* out of the way of 0..6 first */
		tmp[i] = fcntl(src[i], F_DUPFD, lo);
	nul = open("/dev/null", O_RDWR);
	if (nul >= 0 && nul < lo) {
		int t = fcntl(nul, F_DUPFD, lo);

		close(nul);
		nul = t;
	}
	for (i = 0; i < 3; i++) {
		if (nul >= 0)
			dup2(nul, i);
		else
			close(i);
	}
	for (i = 0; i < n; i++) {
		if (tmp[i] < 0 || dup2(tmp[i], H_SOCK + i) < 0)
			_exit(3);
	}
	if (close_range((unsigned)(H_SOCK + n), ~0U, 0) < 0) {
		for (i = H_SOCK + n; i < a->maxfd; i++)
			close(i);
	}
}

static void helper_signals(void)
{
	static const int ign[] = {SIGINT,  SIGTERM, SIGHUP,  SIGPIPE,
				  SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU};
	struct sigaction sa;
	unsigned i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	for (i = 0; i < sizeof(ign) / sizeof(ign[0]); i++)
		sigaction(ign[i], &sa, NULL);
}

/* The helper: execute plans until EOF.  Never returns. */
static void __attribute__((noreturn)) helper_main(const struct helper_args *a)
{
	struct plan_fds fds = a->fds;
	const uint8_t *map = a->area;
	size_t maplen = a->cap;
	struct plan_req rq;
	struct plan_ack ack;
	void *p;
	ssize_t n;
	int e;

	setsid();
	helper_signals();
	(void)prctl(PR_SET_NAME, "khyve-qcow2", 0, 0, 0);
	e = chdir("/"); /* keep no directory busy */
	(void)e;
	helper_fds(a);
	(void)mprotect((void *)(uintptr_t)map, maplen, PROT_READ);
	fds.fd = H_FD;
	fds.buf_fd = a->buf_fd >= 0 ? H_BUF : -1;
	memset(&ack, 0, sizeof(ack)); /* ready: seq 0 */
	if (send(H_SOCK, &ack, sizeof(ack), MSG_NOSIGNAL) != sizeof(ack))
		_exit(1);
	for (;;) {
		n = recv(H_SOCK, &rq, sizeof(rq), 0);
		if (n == 0)
			_exit(0); /* image closed, or the VMM is gone */
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* ECONNRESET: the VMM died with our last answer
			 * unread (so with no plan pending) */
			_exit(errno == ECONNRESET ? 0 : 1);
		}
		ack.seq = rq.seq;
		if ((size_t)n != sizeof(rq) || rq.used > rq.cap) {
			ack.rc = -EPROTO;
		} else if (rq.cap > maplen) { /* the area grew */
			munmap((void *)(uintptr_t)map, maplen);
			p = mmap(NULL, (size_t)rq.cap, PROT_READ, MAP_SHARED,
				 H_MEM, 0);
			map = p == MAP_FAILED ? NULL : p;
			maplen = p == MAP_FAILED ? 0 : (size_t)rq.cap;
			ack.rc = map ? plan_exec(map, rq.used, &fds) : -ENOMEM;
		} else {
			ack.rc = plan_exec(map, rq.used, &fds);
		}
		/* Nobody may be listening any more: no SIGPIPE, no check. */
		(void)send(H_SOCK, &ack, sizeof(ack), MSG_NOSIGNAL);
	}
}

/* Fork the helper.  0, or -errno with nothing left behind. */
static int helper_start(struct qcow2_commit *c, const struct blk_file *f)
{
	struct helper_args a;
	struct plan_ack ack;
	int sv[2];
	ssize_t n;
	pid_t pid;
	long m;
	int rc;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	m = sysconf(_SC_OPEN_MAX);
	memset(&a, 0, sizeof(a));
	a.sock = sv[1];
	a.memfd = c->memfd;
	a.fd = f->fd;
	a.buf_fd = c->fds.direct ? f->buf_fd : -1;
	a.fds = c->fds;
	a.area = c->area;
	a.cap = c->cap;
	a.maxfd = m > 0 && m < 65536 ? m : 65536;
	pid = fork();
	if (pid == 0)
		helper_main(&a);
	close(sv[1]);
	if (pid < 0) {
		int e = errno;

		close(sv[0]);
		return -e;
	}
	c->pid = pid;
	c->sock = sv[0];
	/* Wait until it holds nothing of ours but its four descriptors. */
	do {
		n = recv(c->sock, &ack, sizeof(ack), 0);
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(ack) && ack.seq == 0 && ack.rc == 0)
		return 0;
	rc = n < 0 ? -errno : -ECHILD;
	kill(pid, SIGKILL);
	close(c->sock);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	c->pid = 0;
	c->sock = -1;
	return rc;
}

/* The helper died or broke the protocol: plans run in-process from now
 * on (the caller runs the current one again). */
static void helper_lost(struct qcow2_commit *c, const char *why)
{
	log_warn("%s: the qcow2 commit helper (pid %d) %s; metadata commits "
		 "run in-process from now on",
		 c->path, (int)c->pid, why);
	kill(c->pid, SIGKILL);
	close(c->sock);
	while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
		;
	c->sock = -1;
	c->pid = 0;
}

/* ---- the area ---- */

static int area_map(struct qcow2_commit *c, size_t cap)
{
	void *p;

	if (c->memfd >= 0) {
		if (ftruncate(c->memfd, (off_t)cap) < 0)
			return -errno;
		p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED,
			 c->memfd, 0);
	} else {
		p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	}
	if (p == MAP_FAILED)
		return -errno;
	c->area = p;
	c->cap = cap;
	return 0;
}

/* Make the area at least 'need' bytes. */
static int area_grow(struct qcow2_commit *c, size_t need)
{
	size_t cap;
	void *p;

	if (need <= c->cap)
		return 0;
	cap = c->cap * 2 > need ? c->cap * 2 : align_up(need, PLAN_MIN);
	if (c->memfd >= 0 && ftruncate(c->memfd, (off_t)cap) < 0)
		return -errno;
	p = mremap(c->area, c->cap, cap, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return -ENOMEM;
	c->area = p;
	c->cap = cap;
	return 0;
}

/* A plan is done: start an empty one, giving back the memory of a large
 * one. */
static void area_reset(struct qcow2_commit *c)
{
	if (c->used > PLAN_KEEP) {
		size_t end = align_up(c->used, PLAN_MIN);

		if (c->memfd >= 0)
			(void)fallocate(
				c->memfd,
				FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)PLAN_KEEP, (off_t)(end - PLAN_KEEP));
		else
			(void)madvise(c->area + PLAN_KEEP, end - PLAN_KEEP,
				      MADV_DONTNEED);
	}
	c->used = 0;
	c->submitted = false;
	c->synced = false;
}

/* ---- the interface ---- */

int qcow2_commit_open(struct qcow2_commit **out, const struct blk_file *f,
		      bool helper)
{
	struct qcow2_commit *c;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->path = f->path;
	c->sock = -1;
	c->memfd = -1;
	c->fds.fd = f->fd;
	c->fds.buf_fd = f->direct ? f->buf_fd : -1;
	c->fds.direct = f->direct;
	c->fds.mem_align = f->mem_align ? f->mem_align : 1;
	c->fds.off_align = f->off_align ? f->off_align : 1;
	helper = helper && helpers_on;
	if (helper) {
		c->memfd = memfd_create("khyve-qcow2-plan", MFD_CLOEXEC);
		rc = c->memfd < 0 ? -errno : area_map(c, PLAN_MIN);
		if (rc == 0)
			rc = helper_start(c, f);
		if (rc < 0) {
			log_errno(LOG_WARN, -rc,
				  "%s: cannot start the qcow2 commit helper; "
				  "metadata commits run in-process (a kill -9 "
				  "during one may leak clusters)",
				  f->path);
			if (c->area)
				munmap(c->area, c->cap);
			if (c->memfd >= 0)
				close(c->memfd);
			c->area = NULL;
			c->memfd = -1;
		}
	}
	if (!c->area) {
		rc = area_map(c, PLAN_MIN);
		if (rc < 0) {
			free(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

void qcow2_commit_close(struct qcow2_commit *c)
{
	if (!c)
		return;
	if (c->sock >= 0) {
		/* EOF for the helper even if a forked child of ours still
		 * holds a copy of this end */
		shutdown(c->sock, SHUT_RDWR);
		close(c->sock);
	}
	if (c->pid > 0) {
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	munmap(c->area, c->cap);
	if (c->memfd >= 0)
		close(c->memfd);
	free(c);
}

int qcow2_commit_write(struct qcow2_commit *c, const void *buf, size_t len,
		       uint64_t off)
{
	struct plan_op op;
	size_t data, end;
	int rc;

	if (len == 0)
		return 0;
	if (len > SIZE_MAX / 4 || c->used > SIZE_MAX / 4)
		return -EFBIG;
	data = c->used + sizeof(op);
	if (c->fds.direct && (off | len) % c->fds.off_align == 0)
		data = align_up(data,
				c->fds.mem_align > 8 ? c->fds.mem_align : 8);
	end = align_up(data + len, 8);
	rc = area_grow(c, end);
	if (rc < 0)
		return rc;
	memset(&op, 0, sizeof(op));
	op.kind = OP_WRITE;
	op.off = off;
	op.len = len;
	op.data = data;
	memcpy(c->area + c->used, &op, sizeof(op));
	memcpy(c->area + data, buf, len);
	c->used = end;
	c->synced = false;
	return 0;
}

int qcow2_commit_sync(struct qcow2_commit *c)
{
	struct plan_op op;
	int rc;

	if (c->synced) /* nothing written since */
		return 0;
	rc = area_grow(c, c->used + sizeof(op));
	if (rc < 0)
		return rc;
	memset(&op, 0, sizeof(op));
	op.kind = OP_SYNC;
	memcpy(c->area + c->used, &op, sizeof(op));
	c->used += sizeof(op);
	c->synced = true;
	return 0;
}

void qcow2_commit_abort(struct qcow2_commit *c)
{
	area_reset(c);
}

bool qcow2_commit_empty(const struct qcow2_commit *c)
{
	return c->used == 0;
}

int qcow2_commit_submit(struct qcow2_commit *c)
{
	struct plan_req rq;
	ssize_t n;

	c->submitted = true;
	if (c->pid > 0) {
		rq.seq = ++c->seq;
		rq.used = c->used;
		rq.cap = c->cap;
		do {
			n = send(c->sock, &rq, sizeof(rq), MSG_NOSIGNAL);
		} while (n < 0 && errno == EINTR);
		if (n == (ssize_t)sizeof(rq))
			return 0;
		helper_lost(c, "cannot be reached");
	}
	c->result = plan_exec(c->area, c->used, &c->fds);
	return 0;
}

int qcow2_commit_wait(struct qcow2_commit *c)
{
	struct plan_ack ack;
	ssize_t n;
	int rc;

	if (!c->submitted)
		return 0;
	if (c->pid > 0) {
		do {
			n = recv(c->sock, &ack, sizeof(ack), 0);
		} while (n < 0 && errno == EINTR);
		if (n == (ssize_t)sizeof(ack) && ack.seq == c->seq &&
		    ack.rc <= 0 && ack.rc >= -4095) {
			rc = (int)ack.rc;
			area_reset(c);
			return rc;
		}
		/* Plans are idempotent: run this one again, here. */
		helper_lost(c, n == 0 ? "died" : "does not answer properly");
		c->result = plan_exec(c->area, c->used, &c->fds);
	}
	rc = c->result;
	area_reset(c);
	return rc;
}

int qcow2_commit_run(struct qcow2_commit *c)
{
	int rc;

	if (c->used == 0)
		return 0;
	rc = qcow2_commit_submit(c);
	if (rc == 0)
		rc = qcow2_commit_wait(c);
	return rc;
}

pid_t qcow2_commit_helper_pid(const struct qcow2_commit *c)
{
	return c->pid;
}
