/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A minimal TAP producer for khyve's unit and device tests (run by prove).
 * Header-only; every test program includes it once.
 *
 *   plan_no_plan() ... ok(cond, "name") / is_int(a, b, "name") /
 *   is_str(a, b, "name") ... return done_testing();
 *
 * skip_all("reason") prints "1..0 # SKIP reason" and exits 0.
 * Single-threaded use only.
 */
#ifndef KHYVE_TESTS_TAP_H
#define KHYVE_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count_;
static int tap_failed_;

static inline void tap_result_(int pass, const char *file, int line,
			       const char *fmt, va_list ap)
{
	tap_count_++;
	printf("%sok %d - ", pass ? "" : "not ", tap_count_);
	vprintf(fmt, ap);
	printf("\n");
	if (!pass) {
		tap_failed_++;
		printf("#   Failed test at %s line %d.\n", file, line);
	}
	fflush(stdout);
}

static inline int __attribute__((format(printf, 4, 5)))
ok_at_(int pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_result_(pass, file, line, fmt, ap);
	va_end(ap);
	return pass;
}

#define ok(cond, ...) ok_at_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                                 \
	do {                                                                   \
		long long got_ = (long long)(got);                             \
		long long want_ = (long long)(want);                           \
		if (!ok_at_(got_ == want_, __FILE__, __LINE__, __VA_ARGS__))   \
			printf("#          got: %lld (0x%llx)\n"               \
			       "#     expected: %lld (0x%llx)\n",              \
			       got_, (unsigned long long)got_, want_,          \
			       (unsigned long long)want_);                     \
	} while (0)

#define is_str(got, want, ...)                                                 \
	do {                                                                   \
		const char *got_ = (got);                                      \
		const char *want_ = (want);                                    \
		int same_ = (got_ && want_) ? strcmp(got_, want_) == 0         \
					    : got_ == want_;                   \
		if (!ok_at_(same_, __FILE__, __LINE__, __VA_ARGS__))           \
			printf("#          got: '%s'\n#     expected: '%s'\n", \
			       got_ ? got_ : "(null)",                         \
			       want_ ? want_ : "(null)");                      \
	} while (0)

static inline void diag(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

static inline void plan_no_plan(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline void __attribute__((noreturn)) skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(0);
}

static inline int done_testing(void)
{
	printf("1..%d\n", tap_count_);
	if (tap_failed_)
		printf("# Looks like you failed %d test%s of %d.\n",
		       tap_failed_, tap_failed_ == 1 ? "" : "s", tap_count_);
	return tap_failed_ ? 1 : 0;
}

#endif
