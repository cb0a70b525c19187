/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * libFuzzer harness for the split virtqueue (src/virtio/vq.c).  The input
 * is a hostile guest: it supplies the ring memory (descriptor table,
 * available ring, indirect tables, buffers) and then a stream of device
 * operations interleaved with guest writes into that memory.  The library
 * must never crash, hang or hand out an iovec outside guest RAM; the
 * harness traps if it does.  Single-threaded.  Built by tests/fuzz/build.sh.
 *
 * Input:  [0] flags: bit0 EVENT_IDX, bit1 INDIRECT_DESC, bit2 "tame":
 *             every 16-byte slot of the image is treated as a descriptor
 *             and its addr/len folded to near guest RAM, so the fuzzer
 *             reaches deep chains and indirect tables quickly
 *         [1] queue size - 1 (1..64)
 *         [2..3] n = length of the RAM image (little-endian, <= 8192)
 *         [4..4+n) copied to guest RAM at GPA 0 (rings live there)
 *         rest: operations, see run_ops()
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/gmem.h"
#include "lib/log.h"
#include "virtio/vq.h"

#define RAM_SIZE 0x10000u
#define IMAGE_MAX 0x2000u
#define DESC_GPA 0x0000u  /* 64 * 16 = 0x400 */
#define AVAIL_GPA 0x1000u /* 6 + 2 * 64 */
#define USED_GPA 0x2000u  /* 6 + 8 * 64 */
#define MAX_INFLIGHT 64

static uint8_t ram[RAM_SIZE] __attribute__((aligned(4096)));
static struct gmem mem;
static struct vq q;
static struct vq_chain chain;
static uint16_t inflight[MAX_INFLIGHT];
static unsigned ninflight;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The oracle: everything the library hands out lies inside guest RAM. */
static void check_chain(const struct vq_chain *c)
{
	uint64_t r = 0, w = 0;
	unsigned i;

	if (c->nr + c->nw > VQ_MAX_SEGS || c->head >= q.size)
		__builtin_trap();
	for (i = 0; i < c->nr + c->nw; i++) {
		const uint8_t *b = c->iov[i].iov_base;

		if (b < ram || c->iov[i].iov_len == 0 ||
		    c->iov[i].iov_len > RAM_SIZE ||
		    (size_t)(b - ram) > RAM_SIZE - c->iov[i].iov_len)
			__builtin_trap();
		if (i < c->nr)
			r += c->iov[i].iov_len;
		else
			w += c->iov[i].iov_len;
	}
	if (r != c->rlen || w != c->wlen)
		__builtin_trap();
}

/* Device side of one popped chain: read it all, write part of it. */
static void consume(void)
{
	static uint8_t buf[RAM_SIZE];
	size_t n;

	check_chain(&chain);
	n = vq_chain_read(&chain, 0, buf, sizeof(buf));
	if (n != (chain.rlen < sizeof(buf) ? chain.rlen : sizeof(buf)))
		__builtin_trap();
	n = vq_chain_write(&chain, chain.wlen / 3, buf, chain.wlen);
	if (n > chain.wlen)
		__builtin_trap();
	if (ninflight < MAX_INFLIGHT)
		inflight[ninflight++] = chain.head;
	else
		vq_push(&q, chain.head, (uint32_t)n);
}

/* bit2: fold addr/len of every 16-byte slot to just around RAM. */
static void tame(size_t img)
{
	size_t off;

	for (off = 0; off + 16 <= img; off += 16) {
		uint64_t addr;
		uint32_t len;

		memcpy(&addr, ram + off, 8);
		memcpy(&len, ram + off + 8, 4);
		addr %= RAM_SIZE + 64;
		len %= 0x1000 + 64;
		memcpy(ram + off, &addr, 8);
		memcpy(ram + off + 8, &len, 4);
	}
}

static void enable(const uint8_t flags, uint16_t size)
{
	if (vq_enable(&q, &mem, size, DESC_GPA, AVAIL_GPA, USED_GPA, flags & 1,
		      flags & 2) != 0)
		__builtin_trap(); /* these addresses are always valid */
	ninflight = 0;
}

/*
 * Operations, one opcode byte each (low 4 bits), some with arguments:
 *  0 pop   1 push oldest   2 need_notify   3 disable_notify
 *  4 enable_notify   5 pending   6 poke RAM (off16, val8)
 *  7 unpop newest   8 push bogus head (head16)   9 reset + re-enable
 *  other: pop until empty
 */
static void run_ops(const uint8_t *p, size_t n, uint8_t flags, uint16_t size)
{
	size_t i = 0;
	unsigned k;

	while (i < n) {
		uint8_t op = p[i++] & 15;

		switch (op) {
		case 0:
			if (vq_pop(&q, &chain) == 1)
				consume();
			break;
		case 1:
			if (ninflight) {
				vq_push(&q, inflight[0], 0);
				memmove(inflight, inflight + 1,
					--ninflight * sizeof(inflight[0]));
			}
			break;
		case 2:
			(void)vq_need_notify(&q);
			break;
		case 3:
			vq_disable_notify(&q);
			break;
		case 4:
			(void)vq_enable_notify(&q);
			break;
		case 5:
			if (vq_pending(&q) > (int)q.size)
				__builtin_trap();
			break;
		case 6:
			if (i + 3 <= n) {
				ram[(p[i] | p[i + 1] << 8) % RAM_SIZE] =
					p[i + 2];
				i += 3;
			}
			break;
		case 7:
			if (ninflight) {
				ninflight--;
				vq_unpop(&q, 1);
			}
			break;
		case 8:
			if (i + 2 <= n) {
				vq_push(&q, (uint16_t)(p[i] | p[i + 1] << 8),
					7);
				i += 2;
			}
			break;
		case 9:
			vq_reset(&q);
			enable(flags, size);
			break;
		default:
			for (k = 0; k < 2u * size + 2; k++) {
				if (vq_pop(&q, &chain) != 1)
					break;
				consume();
			}
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint16_t qsize, img;
	uint8_t flags;

	if (size < 4)
		return 0;
	log_set_level(LOG_ERR); /* the rate-limited warnings are expected */
	flags = data[0];
	qsize = (uint16_t)(1 + data[1] % 64);
	img = (uint16_t)(data[2] | data[3] << 8);
	data += 4;
	size -= 4;
	if (img > IMAGE_MAX)
		img = IMAGE_MAX;
	if (img > size)
		img = (uint16_t)size;

	gmem_init_fake(&mem, ram, RAM_SIZE);
	memset(ram, 0, RAM_SIZE);
	memcpy(ram, data, img);
	if (flags & 4)
		tame(img);
	/* buffers above the image get a recognisable pattern */
	memset(ram + IMAGE_MAX, 0xa5, RAM_SIZE - IMAGE_MAX);
	enable(flags, qsize);

	if (size == img) {
		/* no operations: a plain device loop */
		run_ops((const uint8_t *)"\x0f\x02", 2, flags, qsize);
	} else {
		run_ops(data + img, size - img, flags, qsize);
	}
	while (ninflight)
		vq_push(&q, inflight[--ninflight], 1);
	(void)vq_need_notify(&q);
	vq_reset(&q);
	return 0;
}
