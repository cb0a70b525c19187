/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Scaffolding shared by the benchmark guests (storage-bench, vblk-bench):
 * command-line parsing of the mode and of qd=/bs=/n=, the request offset
 * generator (sequential or a fixed-seed LCG), the ring-3 virtio request
 * loop and the ring-3 failure exit.
 * BSP only, no locks; the parsers are ring 0 (they may fail the guest),
 * the rest works in ring 3 (memory and MMIO only).
 */
#include "guest.h"

__noreturn void bench_fail(void)
{
	mmio_write32(TESTDEV_EXIT_REG, GUEST_EXIT_FAIL);
	for (;;)
		cpu_relax();
}

uint64_t bench_next_block(uint64_t *lcg, bool random, uint64_t i,
			  uint64_t nblocks)
{
	if (!random)
		return i % nblocks;
	/* Knuth's MMIX LCG; the high bits are the good ones */
	*lcg = *lcg * 6364136223846793005ull + 1442695040888963407ull;
	return (*lcg >> 33) % nblocks;
}

void bench_parse_choice(const char *key, const char *const *names,
			unsigned int count, const char *want, unsigned int *val)
{
	char v[16];
	unsigned int i;
	int rc;

	rc = cmdline_get(key, v, sizeof(v));
	if (rc == -GUEST_ENOENT)
		return;
	if (rc < 0)
		guest_fail("bad %s=", key);
	for (i = 0; i < count; i++) {
		if (!strcmp(v, names[i])) {
			*val = i;
			return;
		}
	}
	guest_fail("%s=%s: want %s", key, v, want);
}

void bench_parse_sizes(uint64_t *qd, uint64_t max_qd, uint64_t *bs,
		       uint64_t bs_align, uint64_t bs_max, const char *bs_err,
		       uint64_t *n)
{
	if (cmdline_get_u64("qd", qd) == -GUEST_EINVAL || *qd == 0 ||
	    *qd > max_qd)
		guest_fail("qd= must be 1-%lu", max_qd);
	if (cmdline_get_u64("bs", bs) == -GUEST_EINVAL || *bs == 0 ||
	    *bs % bs_align || *bs > bs_max)
		guest_fail("%s", bs_err);
	if (cmdline_get_u64("n", n) == -GUEST_EINVAL || *n == 0)
		guest_fail("bad n=");
}

__noreturn void
bench_vio_run(struct vio_queue *q, uint64_t qd, uint64_t n,
	      int (*submit)(void *arg, unsigned int s, uint64_t i),
	      bool (*check)(void *arg, unsigned int s, uint32_t len), void *arg)
{
	static uint8_t slot_of[VIO_QUEUE_MAX]; /* by chain head */
	uint64_t submitted = 0, completed = 0;
	unsigned int s;
	uint16_t head;
	uint32_t len;
	bool more;
	int rc;

	for (s = 0; s < qd && submitted < n; s++) {
		rc = submit(arg, s, submitted++);
		if (rc < 0)
			bench_fail();
		slot_of[rc] = (uint8_t)s;
	}
	vio_kick(q);
	while (completed < n) {
		more = false;
		while ((rc = vio_get_used(q, &head, &len)) > 0) {
			s = slot_of[head];
			if (!check(arg, s, len))
				bench_fail();
			completed++;
			if (submitted < n) {
				rc = submit(arg, s, submitted++);
				if (rc < 0)
					bench_fail();
				slot_of[rc] = (uint8_t)s;
				more = true;
			}
		}
		if (rc < 0)
			bench_fail();
		if (more)
			vio_kick(q);
		else
			cpu_relax();
	}
	exit_mmio(GUEST_EXIT_PASS);
}
