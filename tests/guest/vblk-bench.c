/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vblk-bench (benchmark): virtio-blk throughput from a polling guest.
 * Command line: "mode=seqread|seqwrite|randread qd=Q bs=B n=N" (defaults
 * seqread, 1, 4096, 1000).  Ring 0 finds the first virtio block device
 * (modern interface), negotiates VERSION_1, FLUSH (so the device runs in
 * write-back mode, as a Linux guest would), SIZE_MAX and SEG_MAX, sets up
 * one queue, and prints the plan.  Then it switches to ring 3 for good and
 * runs N requests of B bytes with up to Q in flight: sequential offsets
 * (wrapping at the capacity), or random B-aligned offsets from a fixed-seed
 * LCG.  Each request is a real chain -- header, data (one buffer, or
 * several if size_max is smaller than B), status -- with its own header,
 * status byte and data buffer, resubmitted only after its completion.
 * Completions are found by polling the used ring; kicks are 16-bit MMIO
 * writes to the notify register, skipped while the device sets
 * NO_NOTIFY.  Every status is checked.
 *
 * End: the khyve exit register with 0x10 (status 33); under QEMU, which
 * has no exit register, a triple fault (status 0).  On a failed request
 * it writes 0x11 to the exit register (khyve status 35) and then spins,
 * so under QEMU a failure shows as a timeout, not as success.
 * BSP only.
 */
#include "guest.h"

const char guest_name[] = "vblk-bench";

#define SECTOR 512
#define MAX_QD 128
#define MAX_SEGS 32 /* per request, header and status included */

enum mode { SEQREAD, SEQWRITE, RANDREAD };

struct slot {
	struct virtio_blk_hdr *hdr;
	volatile uint8_t *status;
	uint8_t *data;
};

struct bench {
	unsigned int mode; /* enum mode */
	uint64_t qd, bs, n;
	uint64_t nblocks;  /* bs-sized blocks on the disk */
	uint32_t seg_size; /* largest data buffer per descriptor */
	unsigned int nsegs;
	uint64_t lcg;
	struct vio_queue *q;
	struct slot slot[MAX_QD];
};

static struct vio_dev vd;
static struct bench bench;

static uint64_t next_sector(struct bench *b, uint64_t i)
{
	return bench_next_block(&b->lcg, b->mode == RANDREAD, i, b->nblocks) *
	       (b->bs / SECTOR);
}

static int submit(void *arg, unsigned int s, uint64_t i)
{
	struct bench *b = arg;
	struct slot *sl = &b->slot[s];
	struct vio_seg seg[MAX_SEGS];
	uint64_t off;
	unsigned int k = 0;

	sl->hdr->type =
		b->mode == SEQWRITE ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	sl->hdr->ioprio = 0;
	sl->hdr->sector = next_sector(b, i);
	*sl->status = 0xff;
	seg[k++] = (struct vio_seg){virt_to_phys(sl->hdr), sizeof(*sl->hdr),
				    false};
	for (off = 0; off < b->bs; off += b->seg_size)
		seg[k++] = (struct vio_seg){virt_to_phys(sl->data + off),
					    (uint32_t)(b->bs - off < b->seg_size
							       ? b->bs - off
							       : b->seg_size),
					    b->mode != SEQWRITE};
	seg[k++] = (struct vio_seg){virt_to_phys(sl->status), 1, true};
	return vio_submit(b->q, seg, k);
}

static bool check(void *arg, unsigned int s, uint32_t len)
{
	struct bench *b = arg;
	uint32_t want_len = b->mode == SEQWRITE ? 1 : (uint32_t)b->bs + 1;

	return *b->slot[s].status == VIRTIO_BLK_S_OK && len == want_len;
}

/* Ring 3 from here on: memory and MMIO only. */
static void bench_loop(void *arg)
{
	struct bench *b = arg;

	bench_vio_run(b->q, b->qd, b->n, submit, check, b);
}

static void parse(struct bench *b)
{
	static const char *const modes[] = {"seqread", "seqwrite", "randread"};

	b->mode = SEQREAD;
	b->qd = 1;
	b->bs = 4096;
	b->n = 1000;
	bench_parse_choice("mode", modes, 3, "seqread, seqwrite or randread",
			   &b->mode);
	bench_parse_sizes(&b->qd, MAX_QD, &b->bs, SECTOR, 64u << 20,
			  "bs= must be a multiple of 512, at most 64 MiB",
			  &b->n);
}

static void setup(struct bench *b)
{
	uint64_t cap, want;
	uint32_t size_max = 0, seg_max = 0;
	uint8_t *hs;
	unsigned int s;
	int rc;

	if (vio_find(VIRTIO_ID_BLOCK, 0, &vd))
		guest_fail("no virtio block device on bus 0");
	if ((rc = vio_probe(&vd, false, false)))
		guest_fail("probe (modern interface): %d", rc);
	want = VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
	       VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX) |
	       VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX);
	if ((rc = vio_start(&vd, want)))
		guest_fail("feature negotiation: %d", rc);
	if (vd.features & VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX))
		size_max = vio_cfg_read(&vd, VIRTIO_BLK_CFG_SIZE_MAX, 4);
	if (vd.features & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX))
		seg_max = vio_cfg_read(&vd, VIRTIO_BLK_CFG_SEG_MAX, 4);
	b->seg_size = (uint32_t)b->bs;
	if (size_max >= 4096 && size_max < b->bs)
		b->seg_size = size_max & ~4095u;
	b->nsegs = (unsigned int)((b->bs + b->seg_size - 1) / b->seg_size);
	if (b->nsegs + 2 > MAX_SEGS || (seg_max && b->nsegs > seg_max))
		guest_fail("bs=%lu needs %u data buffers (size_max %u, "
			   "seg_max %u)",
			   b->bs, b->nsegs, size_max, seg_max);
	if ((rc = vio_queue_setup(&vd, 0, VIO_QUEUE_MAX)))
		guest_fail("queue set-up: %d", rc);
	b->q = &vd.q[0];
	if (b->qd * (b->nsegs + 2) > b->q->size)
		guest_fail("qd=%lu of %u-descriptor chains does not fit a "
			   "queue of %u",
			   b->qd, b->nsegs + 2, b->q->size);
	cap = vio_cfg_read64(&vd, VIRTIO_BLK_CFG_CAPACITY);
	b->nblocks = cap / (b->bs / SECTOR);
	if (b->nblocks == 0)
		guest_fail("the disk (%lu sectors) is smaller than bs=%lu", cap,
			   b->bs);
	hs = dma_zalloc(b->qd * 64, 64);
	if (!hs)
		guest_fail("out of memory");
	for (s = 0; s < b->qd; s++) {
		b->slot[s].hdr = (struct virtio_blk_hdr *)(hs + 64 * s);
		b->slot[s].status = hs + 64 * s + 32;
		b->slot[s].data = dma_alloc(b->bs, 4096);
		if (!b->slot[s].data)
			guest_fail("out of memory for %lu buffers of %lu bytes",
				   b->qd, b->bs);
	}
	b->lcg = 0x5eed;
	if ((rc = vio_driver_ok(&vd)))
		guest_fail("DRIVER_OK: status 0x%x", vio_get_status(&vd));
	printf("vblk-bench: %s qd=%lu bs=%lu n=%lu on %02x:%02x.%u, %lu "
	       "sectors, queue %u, %u data buffer%s per request\n",
	       b->mode == SEQREAD    ? "seqread"
	       : b->mode == SEQWRITE ? "seqwrite"
				     : "randread",
	       b->qd, b->bs, b->n, vd.bus, vd.dev, vd.fn, cap, b->q->size,
	       b->nsegs, b->nsegs == 1 ? "" : "s");
}

void guest_main(void)
{
	parse(&bench);
	setup(&bench);
	printf("vblk-bench: entering ring 3\n");
	ring3_enter(bench_loop, &bench);
}
