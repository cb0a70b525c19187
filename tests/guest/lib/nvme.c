/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A small NVMe driver for the test guests (NVM Express Base 1.4, PCIe
 * transport).  It finds the controller by class 01/08/02, maps BAR0,
 * disables it, sets up the admin queues (AQA/ASQ/ACQ) in RAM from
 * dma_alloc(), enables it and waits for CSTS.RDY, identifies the
 * controller and the first active namespace, asks for one I/O queue pair
 * (Set Features, Number of Queues) and creates it (CQ with IEN = 0, then
 * SQ).  Completions are found by polling the phase tag; no interrupts.
 * 4 KiB memory pages (CC.MPS = 0); data is described by PRP1/PRP2 or a
 * PRP list of one page.
 *
 * Everything the controller returns is checked: completion command IDs and
 * SQ IDs against what is in flight, SQ head pointers against the queue,
 * the BAR, the doorbell stride, the LBA format.  A command that completes
 * with an error status gives -GUEST_EIO with the status field saved in the
 * controller (nvme_status_str() names it).
 *
 * State: the caller's struct nvme_ctrl.  BSP only, no locks.  Building a
 * command (nvme_rw_cmd, nvme_prp_fill), queueing it (nvme_sq_push), the
 * doorbells (nvme_sq_ring, nvme_cq_ring) and taking completions
 * (nvme_cq_pop) touch only memory and MMIO, so ring-3 code may use them
 * after a ring-0 set-up; everything that waits is ring 0 (it reads the
 * RTC).
 */
#include "guest.h"

/* Controller registers */
#define REG_CAP_LO 0x00
#define REG_CAP_HI 0x04
#define REG_VS 0x08
#define REG_INTMS 0x0c
#define REG_CC 0x14
#define REG_CSTS 0x1c
#define REG_AQA 0x24
#define REG_ASQ 0x28
#define REG_ACQ 0x30
#define REG_DOORBELL 0x1000
#define CC_EN 0x1u
#define CC_IOSQES (6u << 16) /* 64-byte SQ entries */
#define CC_IOCQES (4u << 20) /* 16-byte CQ entries */
#define CSTS_RDY 0x1u
#define CSTS_CFS 0x2u
#define CAP_MQES(c) ((uint32_t)((c)&0xffff))
#define CAP_TO(c) ((uint32_t)(((c) >> 24) & 0xff))
#define CAP_DSTRD(c) ((uint32_t)(((c) >> 32) & 0xf))
#define CAP_CSS_NVM(c) (((c) >> 37) & 1)
#define CAP_MPSMIN(c) ((uint32_t)(((c) >> 48) & 0xf))

#define ADMIN_QSIZE 32
#define PAGE 4096u
#define FOUR_GIB 0x100000000ull
#define FEAT_NUM_QUEUES 0x07

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

/* ---- registers -------------------------------------------------------- */

static uint32_t reg_read(const struct nvme_ctrl *c, unsigned int reg)
{
	return mmio_read32(c->regs + reg);
}

static void reg_write(const struct nvme_ctrl *c, unsigned int reg, uint32_t v)
{
	mmio_write32(c->regs + reg, v);
}

/* 64-bit registers as two dword accesses, low first */
static void reg_write64(const struct nvme_ctrl *c, unsigned int reg, uint64_t v)
{
	reg_write(c, reg, (uint32_t)v);
	reg_write(c, reg + 4, (uint32_t)(v >> 32));
}

static int wait_ready(struct nvme_ctrl *c, bool ready)
{
	unsigned int timeout_s = (CAP_TO(c->cap) + 1) / 2 + 1;
	struct deadline d;
	uint32_t csts;

	deadline_start(&d, timeout_s, 500000000ull, 255);
	for (;;) {
		csts = reg_read(c, REG_CSTS);
		if (csts == 0xffffffffu)
			return -GUEST_ENODEV;
		if (ready && (csts & CSTS_CFS))
			return -GUEST_EIO;
		if (!!(csts & CSTS_RDY) == ready)
			return 0;
		if (deadline_passed(&d))
			return -GUEST_ETIMEDOUT;
	}
}

/* ---- discovery -------------------------------------------------------- */

int nvme_find(unsigned int nth, struct nvme_ctrl *c)
{
	uint32_t id;
	int rc;

	mem_clear(c, sizeof(*c));
	rc = pci_find_class(0x010802, nth, &c->dev, &c->fn, &id);
	if (rc)
		return rc;
	c->vendor = (uint16_t)id;
	c->device = (uint16_t)(id >> 16);
	return 0;
}

/* ---- queues ----------------------------------------------------------- */

static int queue_alloc(struct nvme_ctrl *c, struct nvme_queue *q, uint16_t qid,
		       uint16_t size)
{
	q->qid = qid;
	q->size = size;
	q->sq = dma_zalloc((uint64_t)size * NVME_SQE_BYTES, PAGE);
	q->cq = dma_zalloc((uint64_t)size * NVME_CQE_BYTES, PAGE);
	if (!q->sq || !q->cq)
		return -GUEST_ENOSPC;
	q->sq_tail = q->sq_head = q->cq_head = 0;
	q->phase = 1;
	q->sq_db = c->regs + REG_DOORBELL + (2u * qid) * c->db_stride;
	q->cq_db = c->regs + REG_DOORBELL + (2u * qid + 1) * c->db_stride;
	return 0;
}

int nvme_sq_push(struct nvme_queue *q, const struct nvme_sqe *e)
{
	uint16_t next = (uint16_t)((q->sq_tail + 1) % q->size);
	volatile uint64_t *dst;
	const uint64_t *src = (const uint64_t *)e;
	unsigned int i;

	if (next == q->sq_head)
		return -GUEST_ENOSPC;
	dst = (volatile uint64_t *)(q->sq +
				    (uint64_t)q->sq_tail * NVME_SQE_BYTES);
	for (i = 0; i < NVME_SQE_BYTES / 8; i++)
		dst[i] = src[i];
	q->sq_tail = next;
	return 0;
}

void nvme_sq_ring(struct nvme_queue *q)
{
	barrier(); /* x86 keeps stores in order; stop the compiler only */
	mmio_write32(q->sq_db, q->sq_tail);
}

void nvme_cq_ring(struct nvme_queue *q)
{
	mmio_write32(q->cq_db, q->cq_head);
}

int nvme_cq_pop(struct nvme_queue *q, struct nvme_cqe *out)
{
	volatile uint32_t *e =
		(volatile uint32_t *)(q->cq +
				      (uint64_t)q->cq_head * NVME_CQE_BYTES);
	uint32_t dw3 = e[3];
	uint16_t sqhd;

	if (((dw3 >> 16) & 1) != q->phase)
		return 0;
	barrier(); /* the rest of the entry after its phase (x86: ordered) */
	out->dw0 = e[0];
	out->dw1 = e[1];
	out->sqhd = (uint16_t)e[2];
	out->sqid = (uint16_t)(e[2] >> 16);
	out->cid = (uint16_t)dw3;
	out->status = (uint16_t)(dw3 >> 17); /* without the phase bit */
	if (++q->cq_head == q->size) {
		q->cq_head = 0;
		q->phase ^= 1;
	}
	sqhd = out->sqhd;
	if (out->sqid != q->qid || sqhd >= q->size)
		return -GUEST_EPROTO;
	q->sq_head = sqhd;
	return 1;
}

/*
 * Ring 0: submit e on q (cid set here), ring, and wait for its
 * completion.  0, -GUEST_EIO (status saved), -GUEST_EPROTO for a foreign
 * completion, -GUEST_ETIMEDOUT.
 */
static int queue_exec(struct nvme_ctrl *c, struct nvme_queue *q,
		      struct nvme_sqe *e, struct nvme_cqe *out)
{
	struct nvme_cqe cqe;
	struct deadline d;
	uint16_t cid;
	int rc;

	cid = q->next_cid++;
	if (q->next_cid == 0xffff)
		q->next_cid = 0;
	e->cdw0 = (e->cdw0 & 0xffff) | (uint32_t)cid << 16;
	rc = nvme_sq_push(q, e);
	if (rc)
		return rc;
	nvme_sq_ring(q);
	deadline_start(&d, NVME_TIMEOUT_S, 500000000ull, 255);
	while ((rc = nvme_cq_pop(q, &cqe)) == 0)
		if (deadline_passed(&d))
			return -GUEST_ETIMEDOUT;
	nvme_cq_ring(q);
	c->last_status = cqe.status;
	c->last_dw0 = cqe.dw0;
	if (rc < 0 || cqe.cid != cid) {
		printf("nvme: queue %u: completion cid %u sqid %u sqhd %u, "
		       "expected cid %u\n",
		       q->qid, cqe.cid, cqe.sqid, cqe.sqhd, cid);
		return -GUEST_EPROTO;
	}
	if (out)
		*out = cqe;
	if (NVME_SC(cqe.status) || NVME_SCT(cqe.status))
		return -GUEST_EIO;
	return 0;
}

int nvme_admin(struct nvme_ctrl *c, struct nvme_sqe *e, struct nvme_cqe *out)
{
	return queue_exec(c, &c->admin, e, out);
}

int nvme_io(struct nvme_ctrl *c, struct nvme_sqe *e, struct nvme_cqe *out)
{
	return queue_exec(c, &c->io, e, out);
}

/* ---- data pointers ---------------------------------------------------- */

int nvme_prp_fill(struct nvme_sqe *e, uint64_t addr, uint32_t len,
		  uint64_t *list)
{
	uint64_t first = PAGE - (addr & (PAGE - 1)), pa;
	unsigned int n = 0;

	if (len == 0 || (addr & 3) || addr + len > FOUR_GIB)
		return -GUEST_EINVAL;
	e->prp1 = addr;
	e->prp2 = 0;
	if (len <= first)
		return 0;
	pa = addr + first;
	if (len - first <= PAGE) {
		e->prp2 = pa;
		return 0;
	}
	if (!list)
		return -GUEST_EINVAL;
	for (; pa < addr + len; pa += PAGE) {
		if (n == NVME_PRP_LIST_MAX)
			return -GUEST_E2BIG;
		list[n++] = pa;
	}
	e->prp2 = virt_to_phys(list);
	return 0;
}

void nvme_rw_cmd(struct nvme_sqe *e, uint8_t opc, uint32_t nsid, uint64_t lba,
		 uint32_t nlb)
{
	mem_clear(e, sizeof(*e));
	e->cdw0 = opc;
	e->nsid = nsid;
	e->cdw10 = (uint32_t)lba;
	e->cdw11 = (uint32_t)(lba >> 32);
	e->cdw12 = (nlb - 1) & 0xffff;
}

/* ---- set-up ----------------------------------------------------------- */

static void id_string(const uint8_t *p, unsigned int n, char *out)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		out[i] = (char)p[i];
	out[n] = 0;
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == 0))
		out[--n] = 0;
}

int nvme_identify(struct nvme_ctrl *c, uint32_t cns, uint32_t nsid, void *buf)
{
	struct nvme_sqe e;

	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_ADM_IDENTIFY;
	e.nsid = nsid;
	e.prp1 = virt_to_phys(buf);
	e.cdw10 = cns;
	return nvme_admin(c, &e, NULL);
}

static int identify_all(struct nvme_ctrl *c, bool verbose)
{
	const uint8_t *id = c->id_ctrl, *ns = c->id_ns;
	const uint32_t *list;
	uint8_t flbas, lbads;
	unsigned int i;
	int rc;

	if ((rc = nvme_identify(c, NVME_CNS_CTRL, 0, c->id_ctrl))) {
		printf("nvme: Identify Controller: %s\n",
		       nvme_status_str(c->last_status));
		return rc;
	}
	id_string(id + 4, 20, c->serial);
	id_string(id + 24, 40, c->model);
	id_string(id + 64, 8, c->fwrev);
	c->mdts = id[77];
	c->nn = (uint32_t)id[516] | (uint32_t)id[517] << 8 |
		(uint32_t)id[518] << 16 | (uint32_t)id[519] << 24;
	c->oncs = (uint16_t)(id[520] | id[521] << 8);
	c->vwc = id[525];
	if ((id[512] & 0xf) > 6 || (id[512] >> 4) < 6 || (id[513] & 0xf) > 4 ||
	    (id[513] >> 4) < 4) {
		printf("nvme: SQES 0x%02x / CQES 0x%02x do not allow 64/16-"
		       "byte entries\n",
		       id[512], id[513]);
		return -GUEST_ENOTSUP;
	}
	/* the transfer limit: MDTS in minimum pages, 0 = none */
	c->max_xfer = NVME_MAX_XFER;
	if (c->mdts && c->mdts < 20 &&
	    (PAGE << c->mdts) < (uint64_t)c->max_xfer)
		c->max_xfer = PAGE << c->mdts;
	if (verbose)
		printf("nvme: controller \"%s\" serial \"%s\" firmware \"%s\", "
		       "VID %04x, %u namespace(s), MDTS %u, ONCS 0x%x, VWC "
		       "0x%x\n",
		       c->model, c->serial, c->fwrev,
		       (unsigned int)(id[0] | id[1] << 8), c->nn, c->mdts,
		       c->oncs, c->vwc);
	/* the first active namespace */
	c->nsid = 0;
	if (!nvme_identify(c, NVME_CNS_NS_LIST, 0, c->id_ns)) {
		list = (const uint32_t *)c->id_ns;
		c->nsid = list[0];
	}
	if (c->nsid == 0 && c->nn > 0)
		c->nsid = 1;
	if (c->nsid == 0) {
		printf("nvme: no namespace\n");
		return -GUEST_ENODEV;
	}
	if ((rc = nvme_identify(c, NVME_CNS_NS, c->nsid, c->id_ns))) {
		printf("nvme: Identify Namespace %u: %s\n", c->nsid,
		       nvme_status_str(c->last_status));
		return rc;
	}
	c->nsze = 0;
	for (i = 0; i < 8; i++)
		c->nsze |= (uint64_t)ns[i] << (8 * i);
	c->nlbaf = ns[25];
	flbas = ns[26] & 0xf;
	c->dlfeat = ns[33];
	if (flbas > c->nlbaf) {
		printf("nvme: FLBAS %u beyond NLBAF %u\n", flbas, c->nlbaf);
		return -GUEST_EPROTO;
	}
	lbads = ns[128 + 4 * flbas + 2];
	if (lbads < 9 || lbads > 12) {
		printf("nvme: LBA data size 2^%u not supported here\n", lbads);
		return -GUEST_ENOTSUP;
	}
	if (ns[128 + 4 * flbas] | ns[128 + 4 * flbas + 1]) {
		printf("nvme: LBA format %u has metadata\n", flbas);
		return -GUEST_ENOTSUP;
	}
	c->lba_size = 1u << lbads;
	if (verbose)
		printf("nvme: namespace %u: %lu blocks of %u bytes, DLFEAT "
		       "0x%x\n",
		       c->nsid, c->nsze, c->lba_size, c->dlfeat);
	return 0;
}

static int create_io_queues(struct nvme_ctrl *c, uint16_t qsize)
{
	struct nvme_sqe e;
	int rc;

	/* one SQ and one CQ (0-based counts) */
	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_ADM_SET_FEATURES;
	e.cdw10 = FEAT_NUM_QUEUES;
	e.cdw11 = 0;
	if ((rc = nvme_admin(c, &e, NULL))) {
		printf("nvme: Set Features (Number of Queues): %s\n",
		       nvme_status_str(c->last_status));
		return rc;
	}
	c->queues_granted = c->last_dw0;
	if ((rc = queue_alloc(c, &c->io, 1, qsize)))
		return rc;
	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_ADM_CREATE_CQ;
	e.prp1 = virt_to_phys(c->io.cq);
	e.cdw10 = (uint32_t)(qsize - 1) << 16 | 1;
	e.cdw11 = 1; /* physically contiguous, IEN = 0 */
	if ((rc = nvme_admin(c, &e, NULL))) {
		printf("nvme: Create I/O CQ 1: %s\n",
		       nvme_status_str(c->last_status));
		return rc;
	}
	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_ADM_CREATE_SQ;
	e.prp1 = virt_to_phys(c->io.sq);
	e.cdw10 = (uint32_t)(qsize - 1) << 16 | 1;
	e.cdw11 = 1u << 16 | 1; /* CQ 1, physically contiguous */
	if ((rc = nvme_admin(c, &e, NULL))) {
		printf("nvme: Create I/O SQ 1: %s\n",
		       nvme_status_str(c->last_status));
		return rc;
	}
	return 0;
}

int nvme_init(struct nvme_ctrl *c, uint16_t io_qsize, bool verbose)
{
	uint32_t mqes;
	int rc;

	rc = pci_bar_map_mem(c->bus, c->dev, c->fn, 0, 0x2000, "nvme: BAR0",
			     &c->regs, &c->regs_size);
	if (rc)
		return rc;
	c->cap = reg_read(c, REG_CAP_LO) | (uint64_t)reg_read(c, REG_CAP_HI)
						   << 32;
	c->vs = reg_read(c, REG_VS);
	c->db_stride = 4u << CAP_DSTRD(c->cap);
	mqes = CAP_MQES(c->cap) + 1;
	if (verbose)
		printf("nvme: %02x:%02x.%u %04x:%04x BAR0 0x%lx, NVMe "
		       "%u.%u.%u, "
		       "CAP 0x%016lx (MQES %u, TO %u, DSTRD %u)\n",
		       c->bus, c->dev, c->fn, c->vendor, c->device, c->regs,
		       c->vs >> 16, (c->vs >> 8) & 0xff, c->vs & 0xff, c->cap,
		       mqes, CAP_TO(c->cap), CAP_DSTRD(c->cap));
	if (c->cap == 0xffffffffffffffffull || !CAP_CSS_NVM(c->cap) ||
	    CAP_MPSMIN(c->cap) != 0) {
		printf("nvme: CAP 0x%lx: no NVM command set or no 4 KiB "
		       "pages\n",
		       c->cap);
		return -GUEST_ENOTSUP;
	}
	if (REG_DOORBELL + 4u * c->db_stride > c->regs_size) {
		printf("nvme: doorbells beyond BAR0\n");
		return -GUEST_ERANGE;
	}
	if (io_qsize < 2 || io_qsize > mqes)
		io_qsize = (uint16_t)(mqes < 256 ? mqes : 256);

	/* disable, admin queues, enable */
	reg_write(c, REG_CC, reg_read(c, REG_CC) & ~CC_EN);
	if ((rc = wait_ready(c, false))) {
		printf("nvme: CSTS.RDY does not clear (0x%x)\n",
		       reg_read(c, REG_CSTS));
		return rc;
	}
	if ((rc = queue_alloc(c, &c->admin, 0, ADMIN_QSIZE)))
		return rc;
	c->id_ctrl = dma_zalloc(PAGE, PAGE);
	c->id_ns = dma_zalloc(PAGE, PAGE);
	c->prp_list = dma_zalloc(PAGE, PAGE);
	if (!c->id_ctrl || !c->id_ns || !c->prp_list)
		return -GUEST_ENOSPC;
	reg_write(c, REG_INTMS, 0xffffffffu);
	reg_write(c, REG_AQA, (ADMIN_QSIZE - 1) << 16 | (ADMIN_QSIZE - 1));
	reg_write64(c, REG_ASQ, virt_to_phys(c->admin.sq));
	reg_write64(c, REG_ACQ, virt_to_phys(c->admin.cq));
	reg_write(c, REG_CC, CC_IOSQES | CC_IOCQES | CC_EN);
	if ((rc = wait_ready(c, true))) {
		printf("nvme: the controller does not become ready (CSTS "
		       "0x%x)\n",
		       reg_read(c, REG_CSTS));
		return rc;
	}
	if ((rc = identify_all(c, verbose)))
		return rc;
	if ((rc = create_io_queues(c, io_qsize)))
		return rc;
	if (verbose)
		printf("nvme: I/O queue pair 1 of %u entries (granted %u SQs, "
		       "%u CQs)\n",
		       io_qsize, (c->queues_granted & 0xffff) + 1,
		       (c->queues_granted >> 16) + 1);
	return 0;
}

/* ---- I/O -------------------------------------------------------------- */

int nvme_rw(struct nvme_ctrl *c, bool write, uint64_t lba, uint32_t nlb,
	    void *buf)
{
	uint64_t bytes = (uint64_t)nlb * c->lba_size;
	struct nvme_sqe e;
	int rc;

	if (nlb == 0 || nlb > 65536 || bytes > c->max_xfer)
		return -GUEST_EINVAL;
	nvme_rw_cmd(&e, write ? NVME_CMD_WRITE : NVME_CMD_READ, c->nsid, lba,
		    nlb);
	rc = nvme_prp_fill(&e, virt_to_phys(buf), (uint32_t)bytes, c->prp_list);
	if (rc)
		return rc;
	return nvme_io(c, &e, NULL);
}

int nvme_flush(struct nvme_ctrl *c)
{
	struct nvme_sqe e;

	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_CMD_FLUSH;
	e.nsid = c->nsid;
	return nvme_io(c, &e, NULL);
}

int nvme_write_zeroes(struct nvme_ctrl *c, uint64_t lba, uint32_t nlb)
{
	struct nvme_sqe e;

	if (nlb == 0 || nlb > 65536)
		return -GUEST_EINVAL;
	nvme_rw_cmd(&e, NVME_CMD_WRITE_ZEROES, c->nsid, lba, nlb);
	return nvme_io(c, &e, NULL);
}

int nvme_dsm_deallocate(struct nvme_ctrl *c, uint64_t lba, uint32_t nlb)
{
	struct nvme_sqe e;
	uint32_t *r = (uint32_t *)c->prp_list; /* one 16-byte range */

	mem_clear(r, 16);
	r[1] = nlb;
	r[2] = (uint32_t)lba;
	r[3] = (uint32_t)(lba >> 32);
	mem_clear(&e, sizeof(e));
	e.cdw0 = NVME_CMD_DSM;
	e.nsid = c->nsid;
	e.prp1 = virt_to_phys(r);
	e.cdw10 = 0;	   /* one range */
	e.cdw11 = 1u << 2; /* AD: deallocate */
	return nvme_io(c, &e, NULL);
}

const char *nvme_status_str(uint16_t status)
{
	unsigned int sct = NVME_SCT(status), sc = NVME_SC(status);

	if (sct == 0) {
		switch (sc) {
		case 0x00:
			return "Successful Completion";
		case 0x01:
			return "Invalid Command Opcode";
		case 0x02:
			return "Invalid Field in Command";
		case 0x03:
			return "Command ID Conflict";
		case 0x04:
			return "Data Transfer Error";
		case 0x06:
			return "Internal Error";
		case 0x07:
			return "Command Abort Requested";
		case 0x0b:
			return "Invalid Namespace or Format";
		case 0x0c:
			return "Command Sequence Error";
		case 0x13:
			return "PRP Offset Invalid";
		case 0x80:
			return "LBA Out of Range";
		case 0x81:
			return "Capacity Exceeded";
		case 0x82:
			return "Namespace Not Ready";
		default:
			return "generic status";
		}
	}
	if (sct == 1) {
		switch (sc) {
		case 0x00:
			return "Completion Queue Invalid";
		case 0x01:
			return "Invalid Queue Identifier";
		case 0x02:
			return "Invalid Queue Size";
		case 0x08:
			return "Invalid Queue Deletion";
		case 0x80:
			return "Conflicting Attributes";
		case 0x82:
			return "Attempted Write to Read Only Range";
		default:
			return "command-specific status";
		}
	}
	if (sct == 2)
		return "media or data integrity error";
	return "vendor or reserved status type";
}
