/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Logging for every khyve binary.  One line per message, prefixed with the
 * program name ("khyve: ...") as err(3) does, so tools that grep bhyve's
 * messages find ours.  When the guest console is stdio in raw mode the line
 * ends in "\r\n" (bhyve's EPRINTLN) so it does not stair-step.
 *
 * Threads: every function is safe from any thread; a line is written with a
 * single write(2) so lines from different threads do not interleave.
 * log_ratelimited() keeps a per-call-site timestamp (atomic) and drops
 * repeats within its interval: use it on every path a guest can trigger.
 */
#ifndef KHYVE_LIB_LOG_H
#define KHYVE_LIB_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Set the program name used as the prefix of every line. */
void log_init(const char *progname);
/* Choose "\r\n" line ends (raw tty on stdout/stderr) or "\n". */
void log_set_raw(bool raw);
/* Set the most verbose level printed (default LOG_INFO). */
void log_set_level(enum log_level lvl);

/* Print "prog: msg" at level lvl. */
void log_msg(enum log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print "prog: msg: strerror(errnum)" at LOG_ERR/WARN; errnum is positive. */
void log_errno(enum log_level lvl, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * Rate-limited warning: at most one line per 'interval_ms' per call site.
 * For anything a guest can provoke repeatedly.
 */
#define log_ratelimited(interval_ms, ...)                                      \
	do {                                                                   \
		static uint64_t log_rl_last_;                                  \
		if (log_ratelimit_ok(&log_rl_last_, (interval_ms)))            \
			log_msg(LOG_WARN, __VA_ARGS__);                        \
	} while (0)

/* True when a message stamped in *last may be printed now (updates it). */
bool log_ratelimit_ok(uint64_t *last, unsigned interval_ms);

/* Print "prog: msg" and exit(status).  Only cmd/ main code may call this. */
void fatal(int status, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

#endif
