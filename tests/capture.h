/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Capture what a test program writes to one of its own descriptors
 * (stderr, for the one-line error messages the tests compare word for
 * word; stdout for help texts).  The descriptor is pointed at an unlinked
 * temporary file between capture_begin() and capture_end(); capture_end()
 * puts the original back and returns the text, NUL-terminated and cut to
 * CAPTURE_MAX - 1 bytes (c->truncated says when it was cut).
 * Header-only.
 *
 *   static struct capture cap;
 *
 *   capture_begin(&cap, STDERR_FILENO);
 *   rc = thing_that_logs();
 *   is_str(capture_end(&cap), "khyve: x: bad\n", "one line naming x");
 *
 * When both stdout and stderr are captured, end them in the reverse order
 * of their begins.  TAP output must not be produced while stdout is
 * captured.
 *
 * Threads and locks: none.  A capture redirects the descriptor for the
 * whole process, so only single-threaded stretches of a test use it.
 */
#ifndef KHYVE_TESTS_CAPTURE_H
#define KHYVE_TESTS_CAPTURE_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes of buffer; captured text beyond CAPTURE_MAX - 1 is dropped. */
#define CAPTURE_MAX 16384

struct capture {
	int fd;		       /* the descriptor captured (2 for stderr) */
	int tmp;	       /* the temporary file (while active) */
	int saved;	       /* a copy of the original descriptor */
	bool active;	       /* between a successful begin and its end */
	bool truncated;	       /* more was written than buf holds */
	char buf[CAPTURE_MAX]; /* the text, after capture_end() */
};

/* Report a failed capture set-up as a TAP "Bail out!" (on stdout and
 * stderr, one of which may itself be captured already) and exit. */
static inline void __attribute__((noreturn))
capture_bail_(const char *what, int err)
{
	printf("Bail out! capture: %s: %s\n", what, strerror(err));
	fflush(stdout);
	fprintf(stderr, "capture: %s: %s\n", what, strerror(err));
	exit(255);
}

/*
 * Start capturing descriptor 'fd' into 'c' (stdio buffers are flushed
 * first so earlier output lands where it belongs).  A set-up failure (no
 * temporary file, no descriptor) is a harness failure: it bails out.
 */
static inline void capture_begin(struct capture *c, int fd)
{
	char tmpl[] = "/tmp/khyve-capture.XXXXXX";

	c->fd = fd;
	c->active = false;
	c->truncated = false;
	c->buf[0] = '\0';
	fflush(stdout);
	fflush(stderr);
	c->tmp = mkostemp(tmpl, O_CLOEXEC);
	if (c->tmp < 0)
		capture_bail_("mkostemp", errno);
	unlink(tmpl);
	c->saved = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (c->saved < 0)
		capture_bail_("dup", errno);
	if (dup2(c->tmp, fd) < 0)
		capture_bail_("dup2", errno);
	c->active = true;
}

/*
 * Stop capturing: restore the descriptor and return the captured text
 * (c->buf, valid until the next capture_begin() on 'c').  Returns "" when
 * no capture is running (a zeroed struct capture is idle).
 */
static inline const char *capture_end(struct capture *c)
{
	size_t got = 0;
	struct stat st;
	ssize_t n;

	if (!c->active) {
		c->buf[0] = '\0';
		return c->buf;
	}
	fflush(stdout);
	fflush(stderr);
	dup2(c->saved, c->fd);
	close(c->saved);
	while (got < sizeof(c->buf) - 1) {
		n = pread(c->tmp, c->buf + got, sizeof(c->buf) - 1 - got,
			  (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	c->buf[got] = '\0';
	c->truncated = fstat(c->tmp, &st) == 0 && (size_t)st.st_size > got;
	close(c->tmp);
	c->tmp = c->saved = -1;
	c->active = false;
	return c->buf;
}

#endif
