/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Logging (see log.h).  Lines are formatted into a stack buffer and written
 * to stderr with one write(2).  No locks: the level and raw flag are set
 * during start-up before threads exist; the rate limiter uses atomics.
 */
#include "lib/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "khyve";
static bool log_raw;
static enum log_level log_max = LOG_INFO;

void log_init(const char *progname)
{
	const char *slash = strrchr(progname, '/');

	log_prog = slash ? slash + 1 : progname;
}

void log_set_raw(bool raw)
{
	log_raw = raw;
}

void log_set_level(enum log_level lvl)
{
	log_max = lvl;
}

static void log_vline(enum log_level lvl, int errnum, const char *fmt,
		      va_list ap)
{
	char buf[1024];
	size_t len;
	int n;

	if (lvl > log_max)
		return;
	n = snprintf(buf, sizeof(buf), "%s: ", log_prog);
	len = n > 0 ? (size_t)n : 0;
	n = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n;
	if (len > sizeof(buf) - 64)
		len = sizeof(buf) - 64;
	if (errnum > 0) {
		n = snprintf(buf + len, sizeof(buf) - len - 3, ": %s",
			     strerror(errnum));
		if (n > 0)
			len += (size_t)n;
		if (len > sizeof(buf) - 3)
			len = sizeof(buf) - 3;
	}
	if (log_raw)
		buf[len++] = '\r';
	buf[len++] = '\n';
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		break;
	}
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(lvl, 0, fmt, ap);
	va_end(ap);
}

void log_errno(enum log_level lvl, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(lvl, errnum, fmt, ap);
	va_end(ap);
}

bool log_ratelimit_ok(uint64_t *last, unsigned interval_ms)
{
	struct timespec ts;
	uint64_t now, prev;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
	prev = __atomic_load_n(last, __ATOMIC_RELAXED);
	if (prev != 0 && now - prev < interval_ms)
		return false;
	return __atomic_compare_exchange_n(last, &prev, now, false,
					   __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

void fatal(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_ERR, 0, fmt, ap);
	va_end(ap);
	exit(status);
}
