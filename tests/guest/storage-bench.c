/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * storage-bench (benchmark): read throughput of an NVMe, AHCI or
 * virtio-blk disk from a polling guest.  Command line:
 *     "dev=nvme|ahci|virtio mode=randread|seqread bs=B qd=Q n=N"
 * (defaults nvme, randread, 4096, 1, 1000).  Ring 0 finds the first device
 * of that kind on bus 0, sets it up with the library driver (NVMe: one I/O
 * queue pair; AHCI: the first SATA disk, NCQ when qd > 1; virtio: modern
 * interface, one queue), prints the plan, and switches to ring 3 for
 * good.  Ring 3 runs N reads of B bytes with up to Q in flight:
 * sequential offsets (wrapping at the capacity) or random B-aligned
 * offsets from a fixed-seed LCG.  Each request has its own buffer and is
 * resubmitted only after its completion.  Ring 3 touches only memory and
 * MMIO:
 *   NVMe:   SQ entries and PRP lists in RAM, the SQ tail and CQ head
 *           doorbells, completions by the phase tag.  A request larger
 *           than the controller's transfer limit is split into several
 *           commands.
 *   AHCI:   command headers and tables in RAM, PxSACT/PxCI to issue,
 *           PxSACT (NCQ) or PxCI polled for completion; errors from the
 *           D2H FIS in RAM and from PxIS (every 256 idle polls, and at
 *           the end).
 *   virtio: descriptors and rings in RAM, the notify register, the used
 *           ring polled.
 * Every completion status is checked.
 *
 * End: the khyve exit register with 0x10 (status 33); under QEMU, which
 * has no exit register, a triple fault (status 0).  A failed request
 * writes 0x11 to the exit register (khyve status 35) and then spins, so
 * under QEMU a failure shows as a timeout, not as success.  BSP only.
 */
#include "guest.h"

const char guest_name[] = "storage-bench";

#define SECTOR 512
#define MAX_QD 32
#define MAX_BS (4u << 20)
#define MAX_PARTS 8  /* NVMe commands per request */
#define POLL_PAUSE 8 /* pause instructions between AHCI polls */

enum dev { DEV_NVME, DEV_AHCI, DEV_VIRTIO };
enum mode { SEQREAD, RANDREAD };

struct bench {
	unsigned int dev;  /* enum dev */
	unsigned int mode; /* enum mode */
	uint64_t qd, bs, n;
	uint64_t nblocks; /* bs-sized blocks on the disk */
	uint64_t lcg;
	uint8_t *data[MAX_QD];
	/* NVMe */
	unsigned int parts; /* commands per request */
	uint32_t part_bytes;
	uint64_t *prp[MAX_QD][MAX_PARTS];
	uint8_t left[MAX_QD]; /* commands of the request still running */
	/* AHCI */
	struct ahci_port *port;
	bool ncq;
	/* virtio */
	struct vio_queue *q;
	struct virtio_blk_hdr *hdr[MAX_QD];
	volatile uint8_t *status[MAX_QD];
};

static struct bench bench;
static struct nvme_ctrl nvme;
static struct ahci_hba hba;
static struct vio_dev vd;

/* The byte offset of request i. */
static uint64_t next_offset(struct bench *b, uint64_t i)
{
	return bench_next_block(&b->lcg, b->mode == RANDREAD, i, b->nblocks) *
	       b->bs;
}

/* ---- NVMe ------------------------------------------------------------- */

static void nvme_submit(struct bench *b, unsigned int s, uint64_t i)
{
	uint64_t off = next_offset(b, i), lba;
	struct nvme_sqe e;
	unsigned int k;

	for (k = 0; k < b->parts; k++) {
		lba = (off + (uint64_t)k * b->part_bytes) / nvme.lba_size;
		nvme_rw_cmd(&e, NVME_CMD_READ, nvme.nsid, lba,
			    b->part_bytes / nvme.lba_size);
		if (nvme_prp_fill(&e,
				  virt_to_phys(b->data[s] +
					       (uint64_t)k * b->part_bytes),
				  b->part_bytes, b->prp[s][k]))
			bench_fail();
		e.cdw0 |= (uint32_t)(s * b->parts + k) << 16;
		if (nvme_sq_push(&nvme.io, &e))
			bench_fail();
	}
	b->left[s] = (uint8_t)b->parts;
}

static void nvme_loop(void *arg)
{
	struct bench *b = arg;
	uint64_t submitted = 0, completed = 0;
	struct nvme_cqe cqe;
	unsigned int s;
	bool more, got;
	int rc;

	for (s = 0; s < b->qd && submitted < b->n; s++)
		nvme_submit(b, s, submitted++);
	nvme_sq_ring(&nvme.io);
	while (completed < b->n) {
		more = got = false;
		while ((rc = nvme_cq_pop(&nvme.io, &cqe)) > 0) {
			got = true;
			s = cqe.cid / b->parts;
			if (cqe.status || s >= b->qd || b->left[s] == 0)
				bench_fail();
			if (--b->left[s])
				continue;
			completed++;
			if (submitted < b->n) {
				nvme_submit(b, s, submitted++);
				more = true;
			}
		}
		if (rc < 0)
			bench_fail();
		if (got)
			nvme_cq_ring(&nvme.io);
		if (more)
			nvme_sq_ring(&nvme.io);
		else if (!got)
			cpu_relax();
	}
	exit_mmio(GUEST_EXIT_PASS);
}

static void nvme_setup(struct bench *b)
{
	unsigned int s, k;
	int rc;

	if (nvme_find(0, &nvme))
		guest_fail("no NVMe controller on bus 0");
	if ((rc = nvme_init(&nvme, 256, false)))
		guest_fail("NVMe set-up: error %d, status 0x%03x (%s)", rc,
			   nvme.last_status & 0x7ff,
			   nvme_status_str(nvme.last_status));
	if (b->bs % nvme.lba_size)
		guest_fail("bs=%lu is not a multiple of the LBA size %u", b->bs,
			   nvme.lba_size);
	b->part_bytes = (uint32_t)b->bs;
	if (b->part_bytes > nvme.max_xfer)
		b->part_bytes = nvme.max_xfer;
	b->parts = (unsigned int)((b->bs + b->part_bytes - 1) / b->part_bytes);
	if (b->bs % b->part_bytes || b->parts > MAX_PARTS)
		guest_fail("bs=%lu does not split into at most %u commands "
			   "of %u bytes",
			   b->bs, MAX_PARTS, b->part_bytes);
	if (b->qd * b->parts >= nvme.io.size)
		guest_fail("qd=%lu of %u commands does not fit a queue of %u",
			   b->qd, b->parts, nvme.io.size);
	for (s = 0; s < b->qd; s++)
		for (k = 0; k < b->parts; k++)
			if (b->part_bytes > 2 * 4096 &&
			    !(b->prp[s][k] = dma_alloc(4096, 4096)))
				guest_fail("out of memory for PRP lists");
	b->nblocks = nvme.nsze * nvme.lba_size / b->bs;
	printf("storage-bench: NVMe \"%s\" at %02x:%02x.%u, %lu blocks of "
	       "%u bytes, %u command%s of %u bytes per request, queue %u\n",
	       nvme.model, nvme.bus, nvme.dev, nvme.fn, nvme.nsze,
	       nvme.lba_size, b->parts, b->parts == 1 ? "" : "s", b->part_bytes,
	       nvme.io.size);
}

/* ---- AHCI ------------------------------------------------------------- */

static void ahci_submit(struct bench *b, unsigned int s, uint64_t i)
{
	uint64_t lba = next_offset(b, i) / AHCI_SECTOR;
	uint32_t count = (uint32_t)(b->bs / AHCI_SECTOR);
	struct ahci_seg seg = {virt_to_phys(b->data[s]), (uint32_t)b->bs};
	struct ahci_cmd c;

	if (b->ncq)
		ahci_ncq_cmd(&c, false, lba, count, s);
	else
		ahci_rw_cmd(&c, false, lba, count);
	if (ahci_cmd_build(b->port, s, &c, &seg, 1))
		bench_fail();
}

static void ahci_loop(void *arg)
{
	struct bench *b = arg;
	struct ahci_port *p = b->port;
	uint64_t submitted = 0, completed = 0, idle = 0;
	uint32_t inflight = 0, issue = 0, busy, done;
	unsigned int s, k;

	for (s = 0; s < b->qd && submitted < b->n; s++) {
		ahci_submit(b, s, submitted++);
		inflight |= 1u << s;
	}
	ahci_cmd_issue(p, inflight, b->ncq);
	while (completed < b->n) {
		busy = ahci_port_read(p, b->ncq ? AHCI_PX_SACT : AHCI_PX_CI);
		done = inflight & ~busy;
		if (done && b->ncq)
			done &= ~ahci_port_read(p, AHCI_PX_CI);
		if (!done) {
			if ((++idle & 255) == 0 &&
			    (ahci_port_read(p, AHCI_PX_IS) & AHCI_PX_IS_ERRORS))
				bench_fail();
			for (k = 0; k < POLL_PAUSE; k++)
				cpu_relax();
			continue;
		}
		if (!b->ncq && (ahci_d2h_status(p) & 1))
			bench_fail();
		issue = 0;
		for (s = 0; s < b->qd; s++) {
			if (!(done & (1u << s)))
				continue;
			inflight &= ~(1u << s);
			completed++;
			if (submitted < b->n) {
				ahci_submit(b, s, submitted++);
				issue |= 1u << s;
			}
		}
		if (issue) {
			inflight |= issue;
			ahci_cmd_issue(p, issue, b->ncq);
		}
	}
	if (ahci_port_read(p, AHCI_PX_IS) & AHCI_PX_IS_ERRORS)
		bench_fail();
	exit_mmio(GUEST_EXIT_PASS);
}

static void ahci_setup(struct bench *b)
{
	int rc;

	if (ahci_find(0, &hba))
		guest_fail("no AHCI controller on bus 0");
	if ((rc = ahci_init(&hba, false)))
		guest_fail("AHCI set-up: %d", rc);
	b->port = ahci_port_of_type(&hba, AHCI_DEV_ATA, 0);
	if (!b->port)
		guest_fail("no SATA disk");
	if ((rc = ahci_identify(b->port)))
		guest_fail("IDENTIFY DEVICE: %d", rc);
	b->ncq = b->qd > 1;
	if (b->ncq && !b->port->ncq)
		guest_fail("qd=%lu needs NCQ, which the disk or HBA lacks",
			   b->qd);
	if (b->qd > hba.nslots || (b->ncq && b->qd > b->port->ncq_depth))
		guest_fail("qd=%lu: the HBA has %u slots, the disk NCQ depth "
			   "%u",
			   b->qd, hba.nslots, b->port->ncq_depth);
	if (b->bs > 65536u * AHCI_SECTOR)
		guest_fail("bs=%lu: at most 32 MiB per command", b->bs);
	b->nblocks = b->port->sectors * AHCI_SECTOR / b->bs;
	printf("storage-bench: AHCI port %u \"%s\", %lu sectors, %s, %u "
	       "slots\n",
	       b->port->num, b->port->model, b->port->sectors,
	       b->ncq ? "NCQ" : "READ DMA EXT", hba.nslots);
}

/* ---- virtio-blk ------------------------------------------------------- */

static int virtio_submit(void *arg, unsigned int s, uint64_t i)
{
	struct bench *b = arg;
	struct vio_seg seg[3];

	b->hdr[s]->type = VIRTIO_BLK_T_IN;
	b->hdr[s]->ioprio = 0;
	b->hdr[s]->sector = next_offset(b, i) / SECTOR;
	*b->status[s] = 0xff;
	seg[0] = (struct vio_seg){virt_to_phys(b->hdr[s]), sizeof(*b->hdr[s]),
				  false};
	seg[1] = (struct vio_seg){virt_to_phys(b->data[s]), (uint32_t)b->bs,
				  true};
	seg[2] = (struct vio_seg){virt_to_phys(b->status[s]), 1, true};
	return vio_submit(b->q, seg, 3);
}

static bool virtio_check(void *arg, unsigned int s, uint32_t len)
{
	struct bench *b = arg;

	return *b->status[s] == VIRTIO_BLK_S_OK && len == b->bs + 1;
}

static void virtio_loop(void *arg)
{
	struct bench *b = arg;

	bench_vio_run(b->q, b->qd, b->n, virtio_submit, virtio_check, b);
}

static void virtio_setup(struct bench *b)
{
	uint32_t size_max = 0;
	uint64_t cap;
	uint8_t *hs;
	unsigned int s;
	int rc;

	if (vio_find(VIRTIO_ID_BLOCK, 0, &vd))
		guest_fail("no virtio block device on bus 0");
	if ((rc = vio_probe(&vd, false, false)))
		guest_fail("virtio probe (modern interface): %d", rc);
	if ((rc = vio_start(&vd, VIRTIO_BIT(VIRTIO_BLK_F_FLUSH) |
					 VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX))))
		guest_fail("virtio feature negotiation: %d", rc);
	if (vd.features & VIRTIO_BIT(VIRTIO_BLK_F_SIZE_MAX))
		size_max = vio_cfg_read(&vd, VIRTIO_BLK_CFG_SIZE_MAX, 4);
	if (size_max && size_max < b->bs)
		guest_fail("bs=%lu is above the device's size_max %u", b->bs,
			   size_max);
	if ((rc = vio_queue_setup(&vd, 0, VIO_QUEUE_MAX)))
		guest_fail("virtio queue set-up: %d", rc);
	b->q = &vd.q[0];
	if (b->qd * 3 > b->q->size)
		guest_fail("qd=%lu does not fit a queue of %u", b->qd,
			   b->q->size);
	hs = dma_zalloc(b->qd * 64, 64);
	if (!hs)
		guest_fail("out of memory");
	for (s = 0; s < b->qd; s++) {
		b->hdr[s] = (struct virtio_blk_hdr *)(hs + 64 * s);
		b->status[s] = hs + 64 * s + 32;
	}
	if ((rc = vio_driver_ok(&vd)))
		guest_fail("virtio DRIVER_OK: status 0x%x",
			   vio_get_status(&vd));
	cap = vio_cfg_read64(&vd, VIRTIO_BLK_CFG_CAPACITY);
	b->nblocks = cap * SECTOR / b->bs;
	printf("storage-bench: virtio-blk at %02x:%02x.%u, %lu sectors, "
	       "queue %u\n",
	       vd.bus, vd.dev, vd.fn, cap, b->q->size);
}

/* ---- common ----------------------------------------------------------- */

static void parse(struct bench *b)
{
	static const char *const devs[] = {"nvme", "ahci", "virtio"};
	static const char *const modes[] = {"seqread", "randread"};

	b->dev = DEV_NVME;
	b->mode = RANDREAD;
	b->qd = 1;
	b->bs = 4096;
	b->n = 1000;
	bench_parse_choice("dev", devs, 3, "nvme, ahci or virtio", &b->dev);
	bench_parse_choice("mode", modes, 2, "seqread or randread", &b->mode);
	bench_parse_sizes(&b->qd, MAX_QD, &b->bs, 4096, MAX_BS,
			  "bs= must be a multiple of 4096, at most 4194304",
			  &b->n);
}

void guest_main(void)
{
	static const char *const dev_name[] = {"nvme", "ahci", "virtio"};
	struct bench *b = &bench;
	void (*loop)(void *);
	unsigned int s;

	parse(b);
	for (s = 0; s < b->qd; s++)
		if (!(b->data[s] = dma_alloc(b->bs, 4096)))
			guest_fail("out of memory for %lu buffers of %lu "
				   "bytes",
				   b->qd, b->bs);
	switch (b->dev) {
	case DEV_NVME:
		nvme_setup(b);
		loop = nvme_loop;
		break;
	case DEV_AHCI:
		ahci_setup(b);
		loop = ahci_loop;
		break;
	default:
		virtio_setup(b);
		loop = virtio_loop;
		break;
	}
	if (b->nblocks == 0)
		guest_fail("the disk is smaller than bs=%lu", b->bs);
	b->lcg = 0x5eed;
	printf("storage-bench: dev=%s mode=%s bs=%lu qd=%lu n=%lu; entering "
	       "ring 3\n",
	       dev_name[b->dev], b->mode == SEQREAD ? "seqread" : "randread",
	       b->bs, b->qd, b->n);
	ring3_enter(loop, b);
}
