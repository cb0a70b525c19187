/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Host-side image helpers shared by the disk device tests (t_ahci.c,
 * t_nvme.c, t_virtio_blk.c): the byte pattern their images start with,
 * writing an image file from a pattern, comparing file or buffer bytes,
 * and the short sleep their bounded polling loops use.  Header-only;
 * include once per test program.  No shared state and no locks: every
 * helper works on its arguments only, from any thread.
 */
#ifndef KHYVE_TESTS_DEV_DISKIMG_H
#define KHYVE_TESTS_DEV_DISKIMG_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/tap.h"

/* The byte at image offset 'off' of a fresh test image. */
static inline uint8_t dimg_pat(uint64_t off)
{
	return (uint8_t)(off / 512 * 7 + off % 251);
}

/*
 * Create (or truncate) 'path' as 'size' bytes whose byte at offset i is
 * f(i) (zeros when f is NULL).  Returns 0 or -1.
 */
static inline int dimg_make(const char *path, uint64_t size,
			    uint8_t (*f)(uint64_t))
{
	uint8_t *b = malloc(size);
	uint64_t i;
	int fd, rc;

	if (!b)
		return -1;
	for (i = 0; i < size; i++)
		b[i] = f ? f(i) : 0;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		free(b);
		return -1;
	}
	rc = pwrite(fd, b, size, 0) == (ssize_t)size ? 0 : -1;
	close(fd);
	free(b);
	return rc;
}

/* True when bytes [off, off+len) of file 'fd' equal 'want'. */
static inline bool dimg_file_is(int fd, uint64_t off, const void *want,
				size_t len)
{
	uint8_t *b = malloc(len);
	bool same;

	if (!b)
		return false;
	same = pread(fd, b, len, (off_t)off) == (ssize_t)len &&
	       memcmp(b, want, len) == 0;
	free(b);
	return same;
}

/* True when all 'n' bytes at 'p' are 'v'. */
static inline bool dimg_all_bytes(const uint8_t *p, uint8_t v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

/* Sleep 'ms' milliseconds (a polling step). */
static inline void dimg_sleep_ms(unsigned ms)
{
	nanosleep(&(struct timespec){(time_t)(ms / 1000),
				     (long)(ms % 1000) * 1000000},
		  NULL);
}

/*
 * Make a fresh directory /tmp/'name'.XXXXXX into 'dir' (of 'n' bytes) for
 * the test's images; skips the whole test (skip_all) when that fails.
 */
static inline void dimg_tmpdir(char *dir, size_t n, const char *name)
{
	snprintf(dir, n, "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(dir))
		skip_all("mkdtemp failed");
}

#endif
