/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for blk_read_nowait(), the inline page-cache read path:
 * cached data is read at once, evicted data and O_DIRECT images say
 * -EAGAIN, ranges are checked, and an overlapping unfinished write is
 * never overtaken.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/blk.h"
#include "tests/tap.h"

#define SIZE (1u << 20)

static int write_done;

static void on_done(struct blk_req *req, int err)
{
	(void)req;
	__atomic_store_n(&write_done, err ? -1 : 1, __ATOMIC_RELEASE);
}

int main(void)
{
	char path[] = "/var/tmp/t_blk_nowait.XXXXXX";
	static uint8_t data[SIZE], buf[SIZE], neu[4096];
	struct blk_opts o = {0};
	struct iovec iov;
	struct blk_req r;
	struct blk *b;
	int fd, rc;
	unsigned i;

	plan_no_plan();
	fd = mkstemp(path);
	if (fd < 0)
		skip_all("cannot create a temp file");
	for (i = 0; i < SIZE; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 12));
	if (write(fd, data, SIZE) != SIZE)
		skip_all("cannot write the temp file");
	fsync(fd);
	o.path = path;
	is_int(blk_open(&o, 2, &b), 0, "open");

	memset(&r, 0, sizeof(r));
	iov = (struct iovec){buf, 8192};
	r = (struct blk_req){
		.op = BLK_READ, .offset = 4096, .iov = &iov, .iovcnt = 1};
	is_int(blk_read_nowait(b, &r), 0, "cached read done inline");
	ok(memcmp(buf, data + 4096, 8192) == 0, "with the file's bytes");

	r.offset = SIZE - 4096;
	is_int(blk_read_nowait(b, &r), -EINVAL, "read past the end refused");

	(void)posix_fadvise(fd, 0, SIZE, POSIX_FADV_DONTNEED);
	r.offset = 65536;
	rc = blk_read_nowait(b, &r);
	ok(rc == -EAGAIN || rc == 0,
	   "evicted data: -EAGAIN (or 0 if the cache kept it): %d", rc);
	if (rc == 0)
		ok(memcmp(buf, data + 65536, 8192) == 0, "and right bytes");

	/* a write in flight to the same bytes is never overtaken */
	memset(neu, 0xab, sizeof(neu));
	iov = (struct iovec){neu, sizeof(neu)};
	r = (struct blk_req){.op = BLK_WRITE,
			     .offset = 0,
			     .iov = &iov,
			     .iovcnt = 1,
			     .done = on_done};
	is_int(blk_submit(b, &r), 0, "write submitted");
	{
		struct iovec riov = {buf, 4096};
		struct blk_req rr = {
			.op = BLK_READ, .offset = 0, .iov = &riov, .iovcnt = 1};
		int fin = __atomic_load_n(&write_done, __ATOMIC_ACQUIRE);

		rc = blk_read_nowait(b, &rr);
		ok(rc == -EAGAIN ||
			   (rc == 0 &&
			    (fin ||
			     __atomic_load_n(&write_done, __ATOMIC_ACQUIRE)) &&
			    buf[0] == 0xab),
		   "overlapping read: -EAGAIN while the write is unfinished "
		   "(rc %d)",
		   rc);
	}
	blk_drain(b);
	is_int(write_done, 1, "write completed");
	iov = (struct iovec){buf, 4096};
	r = (struct blk_req){
		.op = BLK_READ, .offset = 0, .iov = &iov, .iovcnt = 1};
	is_int(blk_read_nowait(b, &r), 0, "after it, inline read works");
	ok(buf[0] == 0xab && buf[4095] == 0xab, "and sees the write");
	r.op = BLK_WRITE;
	is_int(blk_read_nowait(b, &r), -EINVAL, "only reads");
	blk_close(b);

	o.nocache = true;
	rc = blk_open(&o, 1, &b);
	if (rc == 0) {
		r = (struct blk_req){
			.op = BLK_READ, .offset = 0, .iov = &iov, .iovcnt = 1};
		is_int(blk_read_nowait(b, &r), -EAGAIN,
		       "O_DIRECT images never read inline");
		blk_close(b);
	} else {
		ok(1, "# SKIP O_DIRECT not supported here");
	}
	close(fd);
	unlink(path);
	return done_testing();
}
