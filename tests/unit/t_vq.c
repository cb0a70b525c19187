/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the split virtqueue (src/virtio/vq.c) over fake guest RAM.
 * A small driver model in this file builds descriptor chains and publishes
 * avail entries the way a guest driver does; the tests then check chains,
 * the used ring, both kinds of notification suppression, every malformed
 * ring the library must refuse, and a seeded random stress run that
 * compares the bytes a chain yields with what the driver wrote.
 * Single-threaded.
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/gmem.h"
#include "tests/tap.h"
#include "virtio/virtio.h"
#include "virtio/vq.h"

#define RAM_SIZE (4u << 20)
#define DESC_GPA 0x10000ULL   /* up to 32768 * 16 = 0x80000 */
#define AVAIL_GPA 0x90000ULL  /* up to 0x10006 */
#define USED_GPA 0xa1000ULL   /* up to 0x40006 */
#define INDIR_GPA 0x100000ULL /* indirect tables, 1 MiB */
#define DATA_GPA 0x200000ULL  /* buffers, 2 MiB */
#define DATA_END (DATA_GPA + (2u << 20))

static uint8_t *g_ram;
static struct gmem g_mem;
static struct vq_chain g_c; /* 16 KiB: keep it off the stack */

/* ---- a guest driver in miniature ---------------------------------------- */

struct drv {
	uint16_t size;
	uint16_t avail_idx; /* driver's copy of avail->idx */
	uint16_t last_used; /* next used entry the driver reads */
};

static void w16(uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(g_ram + gpa, &v, 2);
}

static void w32(uint64_t gpa, uint32_t v)
{
	v = htole32(v);
	memcpy(g_ram + gpa, &v, 4);
}

static void w64(uint64_t gpa, uint64_t v)
{
	v = htole64(v);
	memcpy(g_ram + gpa, &v, 8);
}

static uint16_t r16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, g_ram + gpa, 2);
	return le16toh(v);
}

static uint32_t r32(uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, g_ram + gpa, 4);
	return le32toh(v);
}

/* Write descriptor i of the table at 'tbl'. */
static void drv_desc(uint64_t tbl, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint64_t d = tbl + 16ULL * i;

	w64(d, addr);
	w32(d + 8, len);
	w16(d + 12, flags);
	w16(d + 14, next);
}

/* Fresh rings for a queue of 'size' entries. */
static void drv_init(struct drv *d, uint16_t size)
{
	memset(g_ram, 0, DATA_GPA);
	d->size = size;
	d->avail_idx = 0;
	d->last_used = 0;
}

/* Put 'head' in the next avail slot and expose it (release, as a driver's
 * write barrier before the idx update, virtio 1.2 §2.7.13.3.1). */
static void drv_publish(struct drv *d, uint16_t head)
{
	w16(AVAIL_GPA + VIRTQ_AVAIL_RING + 2ULL * (d->avail_idx % d->size),
	    head);
	d->avail_idx++;
	__atomic_store_n(
		(uint16_t *)(void *)(g_ram + AVAIL_GPA + VIRTQ_AVAIL_IDX),
		htole16(d->avail_idx), __ATOMIC_RELEASE);
}

static void drv_set_avail_idx(struct drv *d, uint16_t idx)
{
	d->avail_idx = idx;
	w16(AVAIL_GPA + VIRTQ_AVAIL_IDX, idx);
}

static int q_enable(struct vq *q, struct drv *d, bool event_idx, bool indirect)
{
	return vq_enable(q, &g_mem, d->size, DESC_GPA, AVAIL_GPA, USED_GPA,
			 event_idx, indirect);
}

static uint16_t used_idx(void)
{
	return r16(USED_GPA + VIRTQ_USED_IDX);
}

static uint32_t used_id(struct drv *d, uint16_t n)
{
	return r32(USED_GPA + VIRTQ_USED_RING + 8ULL * (n % d->size));
}

static uint32_t used_len(struct drv *d, uint16_t n)
{
	return r32(USED_GPA + VIRTQ_USED_RING + 8ULL * (n % d->size) + 4);
}

static uint16_t avail_event(struct drv *d)
{
	return r16(USED_GPA + VIRTQ_USED_AVAIL_EVENT(d->size));
}

static void set_used_event(struct drv *d, uint16_t v)
{
	w16(AVAIL_GPA + VIRTQ_AVAIL_USED_EVENT(d->size), v);
}

/* ---- enable / address validation --------------------------------------- */

static void test_enable(void)
{
	struct drv d;
	struct vq q;
	uint64_t end = RAM_SIZE;

	drv_init(&d, 8);
	is_int(q_enable(&q, &d, false, false), 0, "enable: good rings");
	ok(q.ready, "enable: ready");
	is_int(q.size, 8, "enable: size kept");

	is_int(vq_enable(&q, &g_mem, 8, DESC_GPA + 8, AVAIL_GPA, USED_GPA,
			 false, false),
	       -EINVAL, "enable: desc 8-aligned refused");
	ok(!q.ready, "enable: refused queue not ready");
	ok(q.err && strstr(q.err, "misaligned"), "enable: reason misaligned");
	is_int(vq_enable(&q, &g_mem, 8, DESC_GPA, AVAIL_GPA + 1, USED_GPA,
			 false, false),
	       -EINVAL, "enable: avail odd refused");
	is_int(vq_enable(&q, &g_mem, 8, DESC_GPA, AVAIL_GPA, USED_GPA + 2,
			 false, false),
	       -EINVAL, "enable: used 2-aligned refused");
	is_int(vq_enable(&q, &g_mem, 8, DESC_GPA, AVAIL_GPA + 2, USED_GPA + 4,
			 false, false),
	       0, "enable: avail 2, used 4 aligned ok");
	is_int(vq_enable(&q, &g_mem, 0, DESC_GPA, AVAIL_GPA, USED_GPA, false,
			 false),
	       -EINVAL, "enable: size 0 refused");

	/* Each part exactly at the end of RAM fits; one byte more does not. */
	is_int(vq_enable(&q, &g_mem, 8, end - 128, AVAIL_GPA, USED_GPA, false,
			 false),
	       0, "enable: desc table ends at RAM end");
	is_int(vq_enable(&q, &g_mem, 8, end - 112, AVAIL_GPA, USED_GPA, false,
			 false),
	       -EINVAL, "enable: desc table past RAM end");
	ok(q.err && strstr(q.err, "RAM"), "enable: reason not in RAM");
	is_int(vq_enable(&q, &g_mem, 8, DESC_GPA, end - 22, USED_GPA, false,
			 false),
	       0, "enable: avail ring (with used_event) fits");
	is_int(vq_enable(&q, &g_mem, 8, DESC_GPA, end - 20, USED_GPA, false,
			 false),
	       -EINVAL, "enable: avail ring missing used_event refused");
	is_int(vq_enable(&q, &g_mem, 8, DESC_GPA, AVAIL_GPA, end - 68, false,
			 false),
	       -EINVAL, "enable: used ring 2 bytes short");
	is_int(vq_enable(&q, &g_mem, 8, DESC_GPA, AVAIL_GPA, end - 72, false,
			 false),
	       0, "enable: used ring (with avail_event) fits");
	is_int(vq_enable(&q, &g_mem, 8, 0xfffffffffffffff0ULL, AVAIL_GPA,
			 USED_GPA, false, false),
	       -EINVAL, "enable: desc table wrapping 2^64 refused");
	is_int(vq_enable(&q, &g_mem, 8, 0xfec00000ULL, AVAIL_GPA, USED_GPA,
			 false, false),
	       -EINVAL, "enable: desc table in MMIO");

	/* A queue that is not ready does nothing. */
	vq_reset(&q);
	is_int(vq_pop(&q, &g_c), 0, "reset queue: pop returns 0");
	is_int(vq_pending(&q), 0, "reset queue: nothing pending");
	vq_push(&q, 0, 0);
	ok(!vq_need_notify(&q), "reset queue: no notify");
}

/* ---- chains -------------------------------------------------------------- */

static void test_chains(void)
{
	struct drv d;
	struct vq q;
	uint8_t buf[64];
	const char *msg = "hello, virtio";

	drv_init(&d, 16);
	q_enable(&q, &d, false, false);
	is_int(vq_pop(&q, &g_c), 0, "empty ring: pop 0");

	/* one readable segment */
	memcpy(g_ram + DATA_GPA, msg, strlen(msg));
	drv_desc(DESC_GPA, 3, DATA_GPA, (uint32_t)strlen(msg), 0, 0);
	drv_publish(&d, 3);
	is_int(vq_pending(&q), 1, "one chain pending");
	is_int(vq_pop(&q, &g_c), 1, "single: popped");
	is_int(g_c.head, 3, "single: head");
	is_int(g_c.nr, 1, "single: 1 readable");
	is_int(g_c.nw, 0, "single: 0 writable");
	is_int(g_c.rlen, strlen(msg), "single: rlen");
	ok(g_c.iov[0].iov_base == g_ram + DATA_GPA,
	   "single: iov points at RAM");
	memset(buf, 0, sizeof(buf));
	is_int(vq_chain_read(&g_c, 0, buf, sizeof(buf)), strlen(msg),
	       "single: read stops at rlen");
	is_str((char *)buf, msg, "single: bytes");
	is_int(vq_chain_read(&g_c, 7, buf, 3), 3, "single: read at offset");
	ok(memcmp(buf, "vir", 3) == 0, "single: offset bytes");
	is_int(vq_chain_read(&g_c, 100, buf, 3), 0, "single: read past end 0");
	is_int(vq_chain_write(&g_c, 0, "x", 1), 0,
	       "single: no writable part to write");
	is_int(vq_pending(&q), 0, "nothing pending after pop");
	is_int(vq_pop(&q, &g_c), 0, "single: ring empty again");
	vq_push(&q, 3, 0);
	is_int(used_idx(), 1, "push: used idx 1");
	is_int(used_id(&d, 0), 3, "push: used id");
	is_int(used_len(&d, 0), 0, "push: used len");
	is_int(q.used_idx, 1, "push: shadow used idx");

	/* 2 readable (5 + 3 bytes) + zero-length + 2 writable (4 + 6) */
	memcpy(g_ram + DATA_GPA + 0x100, "abcde", 5);
	memcpy(g_ram + DATA_GPA + 0x200, "fgh", 3);
	drv_desc(DESC_GPA, 0, DATA_GPA + 0x100, 5, VIRTQ_DESC_F_NEXT, 7);
	drv_desc(DESC_GPA, 7, DATA_GPA + 0x200, 3, VIRTQ_DESC_F_NEXT, 2);
	drv_desc(DESC_GPA, 2, 0xdeadbeef000ULL, 0,
		 VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 9);
	drv_desc(DESC_GPA, 9, DATA_GPA + 0x300, 4,
		 VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 15);
	drv_desc(DESC_GPA, 15, DATA_GPA + 0x400, 6, VIRTQ_DESC_F_WRITE, 0);
	drv_publish(&d, 0);
	is_int(vq_pop(&q, &g_c), 1, "multi: popped");
	is_int(g_c.head, 0, "multi: head");
	is_int(g_c.nr, 2, "multi: 2 readable");
	is_int(g_c.nw, 2, "multi: 2 writable (zero-length skipped)");
	is_int(g_c.rlen, 8, "multi: rlen");
	is_int(g_c.wlen, 10, "multi: wlen");
	memset(buf, 0, sizeof(buf));
	is_int(vq_chain_read(&g_c, 3, buf, sizeof(buf)), 5,
	       "multi: read across segments");
	is_str((char *)buf, "defgh", "multi: bytes across segments");
	is_int(vq_chain_write(&g_c, 2, "0123456789", 10), 8,
	       "multi: write clipped at wlen");
	ok(memcmp(g_ram + DATA_GPA + 0x302, "01", 2) == 0 &&
		   memcmp(g_ram + DATA_GPA + 0x400, "234567", 6) == 0,
	   "multi: written bytes across segments");
	ok(memcmp(g_ram + DATA_GPA + 0x100, "abcde", 5) == 0,
	   "multi: readable part untouched by write");
	vq_push(&q, g_c.head, 10);
	is_int(used_idx(), 2, "multi: used idx 2");
	is_int(used_id(&d, 1), 0, "multi: used id");
	is_int(used_len(&d, 1), 10, "multi: used len");

	/* unpop gives the same chain back */
	drv_desc(DESC_GPA, 4, DATA_GPA, 1, 0, 0);
	drv_desc(DESC_GPA, 5, DATA_GPA, 2, 0, 0);
	drv_publish(&d, 4);
	drv_publish(&d, 5);
	is_int(vq_pop(&q, &g_c), 1, "unpop: first");
	is_int(vq_pop(&q, &g_c), 1, "unpop: second");
	vq_unpop(&q, 1);
	is_int(vq_pending(&q), 1, "unpop: one pending again");
	is_int(vq_pop(&q, &g_c), 1, "unpop: popped again");
	is_int(g_c.head, 5, "unpop: same head");
	is_int(g_c.rlen, 2, "unpop: same chain");
}

static void test_indirect(void)
{
	struct drv d;
	struct vq q;
	uint8_t buf[16];

	drv_init(&d, 4);
	q_enable(&q, &d, false, true);
	/* table of 3: R(4) -> W(2) -> W(3), chained out of order */
	memcpy(g_ram + DATA_GPA, "wxyz", 4);
	drv_desc(INDIR_GPA, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 2);
	drv_desc(INDIR_GPA, 2, DATA_GPA + 0x10, 2,
		 VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	drv_desc(INDIR_GPA, 1, DATA_GPA + 0x20, 3, VIRTQ_DESC_F_WRITE, 0);
	drv_desc(DESC_GPA, 1, INDIR_GPA, 48, VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 1);
	is_int(vq_pop(&q, &g_c), 1, "indirect: popped");
	is_int(g_c.head, 1, "indirect: head is the direct descriptor");
	is_int(g_c.nr, 1, "indirect: 1 readable");
	is_int(g_c.nw, 2, "indirect: 2 writable");
	is_int(g_c.rlen, 4, "indirect: rlen");
	is_int(g_c.wlen, 5, "indirect: wlen");
	memset(buf, 0, sizeof(buf));
	vq_chain_read(&g_c, 0, buf, sizeof(buf));
	is_str((char *)buf, "wxyz", "indirect: bytes");
	is_int(vq_chain_write(&g_c, 0, "ABCDE", 5), 5, "indirect: write");
	ok(memcmp(g_ram + DATA_GPA + 0x10, "AB", 2) == 0 &&
		   memcmp(g_ram + DATA_GPA + 0x20, "CDE", 3) == 0,
	   "indirect: written bytes");

	/* direct R -> indirect (with a WRITE flag, ignored) of R + W */
	drv_desc(DESC_GPA, 2, DATA_GPA + 0x40, 7, VIRTQ_DESC_F_NEXT, 3);
	drv_desc(DESC_GPA, 3, INDIR_GPA + 0x100, 32,
		 VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	drv_desc(INDIR_GPA + 0x100, 0, DATA_GPA + 0x50, 1, VIRTQ_DESC_F_NEXT,
		 1);
	drv_desc(INDIR_GPA + 0x100, 1, DATA_GPA + 0x60, 9, VIRTQ_DESC_F_WRITE,
		 0);
	drv_publish(&d, 2);
	is_int(vq_pop(&q, &g_c), 1, "direct then indirect: popped");
	is_int(g_c.nr, 2, "direct then indirect: 2 readable");
	is_int(g_c.nw, 1, "direct then indirect: 1 writable");
	is_int(g_c.rlen, 8, "direct then indirect: rlen");
	is_int(g_c.wlen, 9, "direct then indirect: wlen");

	/* a table of VQ_MAX_SEGS entries is the largest accepted */
	for (unsigned i = 0; i < VQ_MAX_SEGS; i++)
		drv_desc(INDIR_GPA, i, DATA_GPA + i, 1,
			 i + 1 < VQ_MAX_SEGS ? VIRTQ_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	drv_desc(DESC_GPA, 0, INDIR_GPA, 16 * VQ_MAX_SEGS,
		 VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 0);
	is_int(vq_pop(&q, &g_c), 1, "indirect: 1024-entry table ok");
	is_int(g_c.nr, VQ_MAX_SEGS, "indirect: 1024 segments");
}

/* ---- malformed rings ----------------------------------------------------- */

/* Pop the chain the caller set up and expect -EINVAL for 'why'. */
static void expect_bad(struct vq *q, const char *name, const char *why)
{
	int rc = vq_pop(q, &g_c);

	is_int(rc, -EINVAL, "malformed %s: -EINVAL", name);
	ok(q->err && strstr(q->err, why), "malformed %s: reason '%s'", name,
	   q->err ? q->err : "(none)");
	ok(g_c.nr == 0 && g_c.nw == 0, "malformed %s: no segments handed out",
	   name);
	is_int(vq_pop(q, &g_c), -EINVAL, "malformed %s: queue stays broken",
	       name);
}

/* Fresh queue of 'size' with 'head' published after the caller's setup. */
static void bad_setup(struct drv *d, struct vq *q, uint16_t size, bool indirect)
{
	drv_init(d, size);
	q_enable(q, d, false, indirect);
}

static void test_malformed(void)
{
	struct drv d;
	struct vq q;

	bad_setup(&d, &q, 8, false);
	drv_publish(&d, 8);
	expect_bad(&q, "head == size", "head index out of range");
	vq_reset(&q);
	is_int(vq_pop(&q, &g_c), 0, "after reset the queue is idle");
	q_enable(&q, &d, false, false);
	ok(!q.err, "re-enable clears the error");

	bad_setup(&d, &q, 8, false);
	drv_publish(&d, 0xffff);
	expect_bad(&q, "head 0xffff", "head index out of range");

	bad_setup(&d, &q, 8, false);
	drv_desc(DESC_GPA, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 8);
	drv_publish(&d, 0);
	expect_bad(&q, "next == size", "next index out of range");

	bad_setup(&d, &q, 8, false);
	drv_desc(DESC_GPA, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 1);
	drv_desc(DESC_GPA, 1, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "loop 0->1->0", "visited twice");

	bad_setup(&d, &q, 1, false);
	drv_desc(DESC_GPA, 0, DATA_GPA, 4, VIRTQ_DESC_F_NEXT, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "size-1 self loop", "visited twice");

	bad_setup(&d, &q, 8, false);
	for (unsigned i = 0; i < 8; i++)
		drv_desc(DESC_GPA, i, DATA_GPA, 0, VIRTQ_DESC_F_NEXT,
			 (uint16_t)((i + 1) % 8));
	drv_publish(&d, 0);
	expect_bad(&q, "zero-length ring loop", "visited twice");

	/* 1025 distinct descriptors in a 2048 queue: too long, not a loop */
	bad_setup(&d, &q, 2048, false);
	for (unsigned i = 0; i <= VQ_MAX_SEGS; i++)
		drv_desc(DESC_GPA, i, DATA_GPA, 1, VIRTQ_DESC_F_NEXT,
			 (uint16_t)(i + 1));
	drv_desc(DESC_GPA, VQ_MAX_SEGS, DATA_GPA, 1, 0, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "1025 descriptors", "longer than 1024");
	/* ... and exactly 1024 is fine */
	bad_setup(&d, &q, 2048, false);
	for (unsigned i = 0; i < VQ_MAX_SEGS; i++)
		drv_desc(DESC_GPA, i, DATA_GPA, 1,
			 i + 1 < VQ_MAX_SEGS ? VIRTQ_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	drv_publish(&d, 0);
	is_int(vq_pop(&q, &g_c), 1, "1024 descriptors accepted");
	is_int(g_c.nr, VQ_MAX_SEGS, "1024 descriptors: 1024 iovecs");
	/* 1025 zero-length ones are bounded the same way */
	bad_setup(&d, &q, 2048, false);
	for (unsigned i = 0; i < 2048; i++)
		drv_desc(DESC_GPA, i, 0, 0, VIRTQ_DESC_F_NEXT,
			 (uint16_t)(i + 1));
	drv_publish(&d, 0);
	expect_bad(&q, "zero-length chain of 2048", "longer than 1024");

	bad_setup(&d, &q, 8, false);
	drv_desc(DESC_GPA, 0, RAM_SIZE - 4, 8, 0, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "buffer past RAM end", "not in guest RAM");

	bad_setup(&d, &q, 8, false);
	drv_desc(DESC_GPA, 0, 0xfffffffffffff000ULL, 0x2000, 0, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "buffer wrapping 2^64", "not in guest RAM");

	bad_setup(&d, &q, 8, false);
	drv_desc(DESC_GPA, 0, 0xfee00000ULL, 16, VIRTQ_DESC_F_WRITE, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "buffer in the APIC page", "not in guest RAM");

	bad_setup(&d, &q, 8, false);
	drv_desc(DESC_GPA, 0, DATA_GPA, 8,
		 VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	drv_desc(DESC_GPA, 1, DATA_GPA, 8, 0, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "readable after writable", "readable descriptor after");

	bad_setup(&d, &q, 8, false);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_desc(INDIR_GPA, 0, DATA_GPA, 8, 0, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "INDIRECT not negotiated", "not negotiated");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 24, VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "indirect len 24", "multiple of 16");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 0, VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "indirect len 0", "empty indirect");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 16 * (VQ_MAX_SEGS + 1),
		 VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "indirect table of 1025", "larger than 1024");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	drv_desc(INDIR_GPA, 0, DATA_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	drv_desc(INDIR_GPA, 1, INDIR_GPA + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "nested indirect", "nested INDIRECT");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 16,
		 VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	drv_desc(INDIR_GPA, 0, DATA_GPA, 8, 0, 0);
	drv_desc(DESC_GPA, 1, DATA_GPA, 8, 0, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "INDIRECT|NEXT", "together with NEXT");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "indirect table past RAM end", "table not in guest RAM");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	drv_desc(INDIR_GPA, 0, DATA_GPA, 8, VIRTQ_DESC_F_NEXT, 2);
	drv_publish(&d, 0);
	expect_bad(&q, "indirect next == table size", "indirect next index");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
	drv_desc(INDIR_GPA, 0, DATA_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
	drv_desc(INDIR_GPA, 1, DATA_GPA, 8, VIRTQ_DESC_F_NEXT, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "indirect loop", "indirect descriptor visited twice");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, INDIR_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_desc(INDIR_GPA, 0, RAM_SIZE, 1, 0, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "indirect buffer outside RAM", "buffer not in guest");

	bad_setup(&d, &q, 8, true);
	drv_desc(DESC_GPA, 0, DATA_GPA, 8,
		 VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	drv_desc(DESC_GPA, 1, INDIR_GPA, 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_desc(INDIR_GPA, 0, DATA_GPA, 8, 0, 0);
	drv_publish(&d, 0);
	expect_bad(&q, "readable in table after direct writable",
		   "readable descriptor after");

	/* avail idx running ahead */
	bad_setup(&d, &q, 8, false);
	for (unsigned i = 0; i < 8; i++)
		drv_desc(DESC_GPA, i, DATA_GPA, 1, 0, 0);
	drv_set_avail_idx(&d, 8);
	is_int(vq_pending(&q), 8, "avail idx == size: 8 pending");
	drv_set_avail_idx(&d, 9);
	is_int(vq_pending(&q), -EINVAL, "avail idx size+1 ahead: pending bad");
	ok(q.err && strstr(q.err, "ahead by more than size"),
	   "avail idx ahead: reason");
	bad_setup(&d, &q, 8, false);
	drv_set_avail_idx(&d, 0x8000);
	expect_bad(&q, "avail idx 0x8000 ahead", "ahead by more than size");
	bad_setup(&d, &q, 8, false);
	drv_set_avail_idx(&d, 0xffff); /* "went backwards" by one */
	expect_bad(&q, "avail idx moved back", "ahead by more than size");
}

/* A chain over 4 GiB needs RAM that large: map it without touching it. */
static void test_4g_chain(void)
{
	const uint64_t len = 3 * (1ULL << 30);
	struct gmem big;
	struct vq q;
	uint8_t *p;
	uint64_t d0 = 0x10000, av = 0x20000, us = 0x30000;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		diag("cannot map 3 GiB; 4 GiB chain test skipped");
		return;
	}
	gmem_init_fake(&big, p, len);
	is_int(vq_enable(&q, &big, 4, d0, av, us, false, false), 0,
	       "4G: enable");
	for (unsigned i = 0; i < 2; i++) {
		uint64_t d = htole64(0x100000);
		uint32_t l = htole32(0xa0000000u);
		uint16_t f = htole16(i == 0 ? VIRTQ_DESC_F_NEXT : 0);
		uint16_t n = htole16(1);

		memcpy(p + d0 + 16 * i, &d, 8);
		memcpy(p + d0 + 16 * i + 8, &l, 4);
		memcpy(p + d0 + 16 * i + 12, &f, 2);
		memcpy(p + d0 + 16 * i + 14, &n, 2);
	}
	p[av + VIRTQ_AVAIL_IDX] = 1; /* ring[0] = head 0 already */
	is_int(vq_pop(&q, &g_c), -EINVAL, "4G: 2 x 2.5 GiB chain refused");
	ok(q.err && strstr(q.err, "4 GiB"), "4G: reason");
	munmap(p, len);
}

/* ---- used ring and idx wrap ---------------------------------------------- */

static void test_wrap(void)
{
	struct drv d;
	struct vq q;
	unsigned bad = 0, i;

	drv_init(&d, 4);
	q_enable(&q, &d, false, false);
	for (i = 0; i < 4; i++)
		drv_desc(DESC_GPA, i, DATA_GPA + i, 1, VIRTQ_DESC_F_WRITE, 0);
	for (i = 0; i < 70000; i++) {
		uint16_t h = (uint16_t)(i % 4);

		drv_publish(&d, h);
		if (vq_pop(&q, &g_c) != 1 || g_c.head != h || g_c.nw != 1)
			bad++;
		vq_push(&q, h, i & 0xff);
		if (used_idx() != (uint16_t)(i + 1) ||
		    used_id(&d, (uint16_t)i) != h ||
		    used_len(&d, (uint16_t)i) != (i & 0xff))
			bad++;
	}
	is_int(bad, 0, "wrap: 70000 pop/push rounds consistent");
	is_int(used_idx(), 70000 & 0xffff, "wrap: used idx wrapped");
	is_int(q.last_avail, 70000 & 0xffff, "wrap: last_avail wrapped");
	is_int(vq_pop(&q, &g_c), 0, "wrap: empty afterwards");
}

static void test_sizes(void)
{
	struct drv d;
	struct vq q;
	unsigned bad = 0, i, round;

	drv_init(&d, 1);
	is_int(q_enable(&q, &d, true, false), 0, "size 1: enable");
	drv_desc(DESC_GPA, 0, DATA_GPA, 8, 0, 0);
	for (i = 0; i < 5; i++) {
		drv_publish(&d, 0);
		is_int(vq_pending(&q), 1, "size 1: round %u pending 1", i);
		is_int(vq_pop(&q, &g_c), 1, "size 1: round %u pop", i);
		vq_push(&q, 0, 0);
	}
	is_int(used_idx(), 5, "size 1: used idx 5");
	drv_set_avail_idx(&d, (uint16_t)(d.avail_idx + 2));
	is_int(vq_pending(&q), -EINVAL, "size 1: 2 ahead malformed");

	drv_init(&d, VQ_MAX_SIZE);
	is_int(q_enable(&q, &d, false, false), 0, "size 32768: enable");
	is_int(vq_enable(&q, &g_mem, 0, DESC_GPA, AVAIL_GPA, USED_GPA, false,
			 false),
	       -EINVAL, "size 0 refused");
	q_enable(&q, &d, false, false);
	for (i = 0; i < VQ_MAX_SIZE; i++)
		drv_desc(DESC_GPA, i, DATA_GPA + (i % 1024) * 8, 8,
			 VIRTQ_DESC_F_WRITE, 0);
	for (round = 0; round < 2; round++) {
		for (i = 0; i < VQ_MAX_SIZE; i++)
			drv_publish(&d, (uint16_t)(VQ_MAX_SIZE - 1 - i));
		is_int(vq_pending(&q), VQ_MAX_SIZE,
		       "size 32768: full ring pending (round %u)", round);
		for (i = 0; i < VQ_MAX_SIZE; i++) {
			if (vq_pop(&q, &g_c) != 1 ||
			    g_c.head != VQ_MAX_SIZE - 1 - i)
				bad++;
			vq_push(&q, g_c.head, 8);
		}
		is_int(bad, 0, "size 32768: every chain in order (round %u)",
		       round);
		is_int(vq_pop(&q, &g_c), 0, "size 32768: empty (round %u)",
		       round);
	}
	is_int(used_idx(), 0, "size 32768: used idx wrapped to 0");
	is_int(used_id(&d, 65535), 0, "size 32768: last used id");
	is_int(used_len(&d, 65535), 8, "size 32768: last used len");
}

/* ---- notification suppression ------------------------------------------- */

static void push_one(struct drv *d, struct vq *q)
{
	drv_publish(d, 0);
	vq_pop(q, &g_c);
	vq_push(q, 0, 0);
}

static void test_no_interrupt(void)
{
	struct drv d;
	struct vq q;

	drv_init(&d, 8);
	q_enable(&q, &d, false, false);
	drv_desc(DESC_GPA, 0, DATA_GPA, 8, 0, 0);
	push_one(&d, &q);
	ok(vq_need_notify(&q), "no EVENT_IDX, flags 0: notify");
	w16(AVAIL_GPA + VIRTQ_AVAIL_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT);
	push_one(&d, &q);
	ok(!vq_need_notify(&q), "NO_INTERRUPT: no notify");
	w16(AVAIL_GPA + VIRTQ_AVAIL_FLAGS, 0);
	ok(vq_need_notify(&q), "NO_INTERRUPT cleared: notify");

	/* device-side: NO_NOTIFY in used->flags */
	vq_disable_notify(&q);
	is_int(r16(USED_GPA + VIRTQ_USED_FLAGS), VIRTQ_USED_F_NO_NOTIFY,
	       "disable_notify sets NO_NOTIFY");
	ok(!vq_enable_notify(&q), "enable_notify: nothing new");
	is_int(r16(USED_GPA + VIRTQ_USED_FLAGS), 0,
	       "enable_notify clears NO_NOTIFY");
	vq_disable_notify(&q);
	drv_publish(&d, 0);
	ok(vq_enable_notify(&q), "enable_notify: re-check sees new chain");
	is_int(vq_pop(&q, &g_c), 1, "enable_notify: chain is there");
	ok(!vq_enable_notify(&q), "enable_notify: drained");
}

static void test_event_idx(void)
{
	struct drv d;
	struct vq q;
	unsigned i;

	drv_init(&d, 8);
	q_enable(&q, &d, true, false);
	drv_desc(DESC_GPA, 0, DATA_GPA, 8, 0, 0);

	push_one(&d, &q); /* used idx 1 */
	ok(vq_need_notify(&q), "EVENT_IDX: first check always notifies");
	set_used_event(&d, 0);
	push_one(&d, &q); /* 2: event 0 not in [1,2) */
	ok(!vq_need_notify(&q), "EVENT_IDX: used_event 0 passed, quiet");
	set_used_event(&d, 2);
	push_one(&d, &q); /* 3: event 2 in [2,3) */
	ok(vq_need_notify(&q), "EVENT_IDX: used_event 2 reached, notify");
	ok(!vq_need_notify(&q), "EVENT_IDX: no pushes since, quiet");
	set_used_event(&d, 4);
	push_one(&d, &q); /* 4 */
	ok(!vq_need_notify(&q), "EVENT_IDX: used_event 4 not reached yet");
	push_one(&d, &q); /* 5 */
	ok(vq_need_notify(&q), "EVENT_IDX: used_event 4 reached");
	set_used_event(&d, 6);
	push_one(&d, &q);
	push_one(&d, &q);
	push_one(&d, &q); /* 8: event 6 in [5,8) */
	ok(vq_need_notify(&q), "EVENT_IDX: batch crosses used_event");
	w16(AVAIL_GPA + VIRTQ_AVAIL_FLAGS, VIRTQ_AVAIL_F_NO_INTERRUPT);
	set_used_event(&d, 8);
	push_one(&d, &q);
	ok(vq_need_notify(&q), "EVENT_IDX: NO_INTERRUPT flag ignored");
	w16(AVAIL_GPA + VIRTQ_AVAIL_FLAGS, 0);

	/* wrap of used idx past 65535 */
	q.used_idx = 65534;
	q.signalled_used = 65534;
	q.signalled_used_valid = true;
	set_used_event(&d, 65535);
	push_one(&d, &q);
	push_one(&d, &q); /* 0: event 65535 in [65534, 0) */
	is_int(used_idx(), 0, "EVENT_IDX wrap: used idx 0");
	ok(vq_need_notify(&q), "EVENT_IDX wrap: used_event 65535 crossed");
	set_used_event(&d, 1);
	push_one(&d, &q); /* 1 */
	ok(!vq_need_notify(&q), "EVENT_IDX wrap: used_event 1 not yet");
	push_one(&d, &q); /* 2 */
	ok(vq_need_notify(&q), "EVENT_IDX wrap: used_event 1 reached");
	q.used_idx = 65535;
	q.signalled_used = 65530;
	set_used_event(&d, 65533);
	push_one(&d, &q); /* 0: event 65533 in [65530, 0) */
	ok(vq_need_notify(&q), "EVENT_IDX wrap: old before, event before");

	/* 65536 pushes without a check: ambiguous, so notify */
	set_used_event(&d, (uint16_t)(q.used_idx - 1));
	ok(!vq_need_notify(&q), "EVENT_IDX: settle");
	for (i = 0; i < 65536; i++)
		vq_push(&q, 0, 0);
	ok(vq_need_notify(&q), "EVENT_IDX: 65536 unchecked pushes notify");

	/* avail_event */
	drv_init(&d, 8);
	q_enable(&q, &d, true, false);
	for (i = 0; i < 8; i++)
		drv_desc(DESC_GPA, i, DATA_GPA, 8, 0, 0);
	w16(USED_GPA + VIRTQ_USED_AVAIL_EVENT(8), 0x1234);
	vq_disable_notify(&q);
	is_int(r16(USED_GPA + VIRTQ_USED_FLAGS), 0,
	       "EVENT_IDX: disable_notify leaves used->flags 0");
	for (i = 0; i < 3; i++)
		drv_publish(&d, (uint16_t)i);
	for (i = 0; i < 3; i++)
		vq_pop(&q, &g_c);
	is_int(vq_pop(&q, &g_c), 0, "EVENT_IDX: drained with kicks off");
	is_int(avail_event(&d), 0x1234,
	       "EVENT_IDX: avail_event untouched while disabled");
	ok(!vq_enable_notify(&q), "EVENT_IDX: enable_notify, nothing new");
	is_int(avail_event(&d), 3, "EVENT_IDX: avail_event = next to consume");
	vq_disable_notify(&q);
	drv_publish(&d, 3);
	ok(vq_enable_notify(&q), "EVENT_IDX: enable_notify re-check true");
	is_int(avail_event(&d), 3, "EVENT_IDX: avail_event still 3");
	is_int(vq_pop(&q, &g_c), 1, "EVENT_IDX: pop the late chain");
	is_int(vq_pop(&q, &g_c), 0, "EVENT_IDX: empty");
	is_int(avail_event(&d), 4,
	       "EVENT_IDX: pop on empty ring publishes avail_event");
	is_int(r16(USED_GPA + VIRTQ_USED_FLAGS), 0,
	       "EVENT_IDX: used->flags stays 0");
}

/* ---- random stress ------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return (uint32_t)((g_rng * 0x2545f4914f6cdd1dULL) >> 32) % n;
}

#define ST_MAXSEG 8

struct st_chain {
	bool busy;
	bool indirect;
	unsigned nseg;
	uint64_t gpa[ST_MAXSEG];
	uint32_t len[ST_MAXSEG];
	bool wr[ST_MAXSEG];
	unsigned ndesc;		  /* direct descriptors used */
	uint16_t desc[ST_MAXSEG]; /* which ones */
	uint32_t rlen, wlen;
	unsigned nr, nw; /* non-empty segments */
	uint32_t w;	 /* bytes the device wrote */
	uint8_t expect_w[ST_MAXSEG * 300];
};

struct stress {
	struct drv d;
	struct vq q;
	uint16_t free_list[256];
	unsigned nfree;
	uint64_t data_next;
	struct st_chain ch[256]; /* by head */
	uint16_t popped[256];
	uint32_t popped_w[256];
	unsigned npopped;
	unsigned bad;
	unsigned chains;
};

static uint64_t st_alloc(struct stress *s, uint32_t len)
{
	if (s->data_next + len > DATA_END)
		s->data_next = DATA_GPA;
	s->data_next += len;
	return s->data_next - len;
}

/* Driver: build one random chain; false if no descriptors are free. */
static bool st_add(struct stress *s)
{
	unsigned nseg = 1 + rnd(ST_MAXSEG), nr = rnd(nseg + 1), i;
	bool ind = s->q.indirect && rnd(2);
	struct st_chain *c;
	uint16_t head;

	if (s->nfree == 0)
		return false;
	if (!ind && nseg > s->nfree)
		nseg = s->nfree;
	if (nr > nseg)
		nr = nseg;
	head = s->free_list[s->nfree - 1];
	c = &s->ch[head];
	memset(c, 0, offsetof(struct st_chain, expect_w));
	c->busy = true;
	c->indirect = ind;
	c->nseg = nseg;
	for (i = 0; i < nseg; i++) {
		c->len[i] = rnd(5) == 0 ? 0 : 1 + rnd(300);
		c->wr[i] = i >= nr;
		c->gpa[i] = st_alloc(s, c->len[i]);
		for (uint32_t b = 0; b < c->len[i]; b++)
			g_ram[c->gpa[i] + b] = (uint8_t)rnd(256);
		if (c->wr[i]) {
			c->wlen += c->len[i];
			c->nw += c->len[i] != 0;
		} else {
			c->rlen += c->len[i];
			c->nr += c->len[i] != 0;
		}
	}
	c->ndesc = ind ? 1 : nseg;
	for (i = 0; i < c->ndesc; i++)
		c->desc[i] = s->free_list[--s->nfree];
	if (ind) {
		uint64_t tbl = INDIR_GPA + 16ULL * ST_MAXSEG * head;

		for (i = 0; i < nseg; i++)
			drv_desc(tbl, i, c->gpa[i], c->len[i],
				 (c->wr[i] ? VIRTQ_DESC_F_WRITE : 0) |
					 (i + 1 < nseg ? VIRTQ_DESC_F_NEXT : 0),
				 (uint16_t)(i + 1));
		drv_desc(DESC_GPA, head, tbl, 16 * nseg, VIRTQ_DESC_F_INDIRECT,
			 0);
	} else {
		for (i = 0; i < nseg; i++)
			drv_desc(DESC_GPA, c->desc[i], c->gpa[i], c->len[i],
				 (c->wr[i] ? VIRTQ_DESC_F_WRITE : 0) |
					 (i + 1 < nseg ? VIRTQ_DESC_F_NEXT : 0),
				 i + 1 < nseg ? c->desc[i + 1] : 0);
	}
	drv_publish(&s->d, head);
	s->chains++;
	return true;
}

/* Device: check a popped chain against the driver's record, fill it. */
static void st_device(struct stress *s)
{
	static uint8_t buf[ST_MAXSEG * 300];
	struct st_chain *c = &s->ch[g_c.head];
	uint32_t off = 0, w;
	unsigned i;

	if (!c->busy || g_c.rlen != c->rlen || g_c.wlen != c->wlen ||
	    g_c.nr != c->nr || g_c.nw != c->nw) {
		s->bad++;
		return;
	}
	if (vq_chain_read(&g_c, 0, buf, sizeof(buf)) != c->rlen)
		s->bad++;
	for (i = 0; i < c->nseg; i++) {
		if (c->wr[i])
			continue;
		if (memcmp(buf + off, g_ram + c->gpa[i], c->len[i]) != 0)
			s->bad++;
		off += c->len[i];
	}
	w = c->wlen ? rnd(c->wlen + 1) : 0;
	for (i = 0; i < w; i++)
		c->expect_w[i] = (uint8_t)rnd(256);
	if (vq_chain_write(&g_c, 0, c->expect_w, w) != w)
		s->bad++;
	c->w = w;
	s->popped[s->npopped] = g_c.head;
	s->popped_w[s->npopped] = w;
	s->npopped++;
}

/* Driver: reap the used ring, check lengths and written bytes. */
static void st_reap(struct stress *s)
{
	while (s->d.last_used != used_idx()) {
		uint32_t id = used_id(&s->d, s->d.last_used);
		uint32_t len = used_len(&s->d, s->d.last_used);
		struct st_chain *c;
		uint32_t off = 0;
		unsigned i;

		s->d.last_used++;
		if (id >= s->d.size || !s->ch[id].busy || len != s->ch[id].w) {
			s->bad++;
			continue;
		}
		c = &s->ch[id];
		for (i = 0; i < c->nseg && off < len; i++) {
			uint32_t n;

			if (!c->wr[i])
				continue;
			n = len - off < c->len[i] ? len - off : c->len[i];
			if (memcmp(g_ram + c->gpa[i], c->expect_w + off, n))
				s->bad++;
			off += n;
		}
		c->busy = false;
		for (i = 0; i < c->ndesc; i++)
			s->free_list[s->nfree++] = c->desc[i];
	}
}

static void test_stress(void)
{
	static const uint16_t sizes[] = {1, 2, 3, 8, 64, 256};
	static struct stress s;
	unsigned iter, i, n;

	for (iter = 0; iter < 10000; iter++) {
		if (iter % 500 == 0) {
			uint16_t size = sizes[rnd(6)];

			memset(&s.ch, 0, sizeof(s.ch));
			drv_init(&s.d, size);
			if (vq_enable(&s.q, &g_mem, size, DESC_GPA, AVAIL_GPA,
				      USED_GPA, rnd(2), rnd(4) != 0))
				s.bad++;
			s.nfree = 0;
			for (i = 0; i < size; i++)
				s.free_list[s.nfree++] =
					(uint16_t)(size - 1 - i);
			s.npopped = 0;
			s.data_next = DATA_GPA;
		}
		n = rnd(6);
		for (i = 0; i < n && st_add(&s); i++)
			;
		if (rnd(3) == 0)
			vq_disable_notify(&s.q);
		for (;;) {
			int rc = vq_pop(&s.q, &g_c);

			if (rc < 0)
				s.bad++;
			if (rc != 1)
				break;
			st_device(&s);
		}
		/* drained, and no other thread adds: nothing to re-check */
		if (vq_enable_notify(&s.q) || vq_pending(&s.q) != 0)
			s.bad++;
		/* complete a random subset in random order */
		n = s.npopped ? rnd(s.npopped + 1) : 0;
		for (i = 0; i < n; i++) {
			unsigned k = rnd(s.npopped);

			vq_push(&s.q, s.popped[k], s.popped_w[k]);
			s.popped[k] = s.popped[s.npopped - 1];
			s.popped_w[k] = s.popped_w[s.npopped - 1];
			s.npopped--;
		}
		(void)vq_need_notify(&s.q);
		st_reap(&s);
	}
	ok(s.chains > 10000, "stress: %u chains built", s.chains);
	is_int(s.bad, 0, "stress: 10000 rounds, chains and bytes match");
}

int main(void)
{
	plan_no_plan();
	g_ram = aligned_alloc(4096, RAM_SIZE);
	if (!g_ram)
		skip_all("out of memory");
	memset(g_ram, 0, RAM_SIZE);
	gmem_init_fake(&g_mem, g_ram, RAM_SIZE);

	test_enable();
	test_chains();
	test_indirect();
	test_malformed();
	test_4g_chain();
	test_wrap();
	test_sizes();
	test_no_interrupt();
	test_event_idx();
	test_stress();

	free(g_ram);
	return done_testing();
}
