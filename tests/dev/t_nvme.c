/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for the NVMe controller without KVM: the test plays the
 * guest driver, programming BAR0 registers and doorbells through the MMIO
 * bus and building queues, commands and PRP lists in the fake guest RAM
 * of vdrv.h's machine.  Covered: PCI identity and registers, enable and
 * the admin queue, Identify (controller, namespace for 512- and
 * 4096-byte LBAs, active list, descriptors), I/O queues, reads and writes
 * with PRP1, PRP1+PRP2, PRP lists (with a chained page), checked against
 * the host image; flush, deallocate, write zeroes, a RAM namespace, many
 * commands in flight with few ioslots, a CQ smaller than the work, MSI-X
 * per queue and INTx, every hostile case we know of, async events, shadow
 * doorbells and their ioeventfds (a fake KVM and a real event loop),
 * controller reset and queue deletion with I/O in flight, shutdown, log
 * pages, features, and option parsing.
 *
 * Threads: the test thread is the guest; block workers (and, in the
 * ioeventfd test, an event-loop thread) post completions concurrently, so
 * completion entries are read with acquire loads and waits are bounded.
 */
#include <endian.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event/event.h"
#include "hw/nvme.h"
#include "tests/dev/diskimg.h"
#include "tests/dev/vdrv.h"
#include "tests/tap.h"

#define SLOT 4
#define IMG_SIZE (16u << 20)
#define AQ_SIZE 32
#define MAXQ 17
#define TIMEOUT (-1)
#define ST(sct, sc) (((sct) << 8) | (sc))
#define MSI_DATA(v) (0x100u + (v))

static char tmpdir[64];

/* ---- interrupt recording (any thread) ---- */

static unsigned msi_hits[64];
static int intx_level[IOAPIC_PINS];

static int rec_msi(void *o, uint64_t addr, uint32_t data)
{
	(void)o;
	(void)addr;
	if (data >= MSI_DATA(0) && data < MSI_DATA(64))
		__atomic_fetch_add(&msi_hits[data - MSI_DATA(0)], 1,
				   __ATOMIC_SEQ_CST);
	return 0;
}

static int rec_irq(void *o, unsigned gsi, int level)
{
	(void)o;
	if (gsi < IOAPIC_PINS)
		__atomic_store_n(&intx_level[gsi], level, __ATOMIC_SEQ_CST);
	return 0;
}

static unsigned hits(unsigned v)
{
	return __atomic_load_n(&msi_hits[v], __ATOMIC_SEQ_CST);
}

/* ---- a fake KVM ioeventfd table ---- */

struct iofd_reg {
	int fd;
	uint64_t addr;
	unsigned len;
};
static struct iofd_reg iofds[64];
static unsigned niofd;
static int iofd_fail_at = -1; /* refuse the registration after this many */

static int fake_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len,
			  bool pio, bool has_match, uint64_t match,
			  bool deassign)
{
	unsigned i;

	(void)opaque;
	(void)match;
	if (pio || has_match)
		return -EINVAL;
	for (i = 0; i < niofd; i++) {
		if (iofds[i].fd == fd && iofds[i].addr == addr) {
			if (!deassign)
				return -EEXIST;
			iofds[i] = iofds[--niofd];
			return 0;
		}
	}
	if (deassign || niofd == 64)
		return -ENOENT;
	if (iofd_fail_at >= 0 && niofd >= (unsigned)iofd_fail_at)
		return -ENOSPC;
	iofds[niofd++] = (struct iofd_reg){fd, addr, len};
	return 0;
}

/* ---- machine and driver state ---- */

struct ioq {
	uint64_t sq, cq;
	unsigned size, cqsize;
	uint16_t sqt, cqh;
	bool phase;
};

struct env {
	struct vdrv_machine m;
	struct event_loop *ev;
	pthread_t loop_thr;
	bool loop_on;
	char path[128];
	int fd;
	uint64_t bar0, msix;
	unsigned msix_cap, gsi;
	uint64_t asq, acq;
	uint16_t asqt, acqh, cid;
	bool aphase;
	struct ioq q[MAXQ];
	uint64_t buf;	/* 4 MiB of data */
	uint64_t lists; /* 64 KiB for PRP lists and DSM ranges */
	uint64_t id;	/* 4 KiB */
};

struct cmd {
	uint32_t dw[16];
};

static uint8_t *gp(struct env *e, uint64_t gpa)
{
	return vdrv_ptr(&e->m, gpa);
}

static bool is_pattern(const uint8_t *p, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] != dimg_pat(off + i))
			return false;
	return true;
}

static void *loop_main(void *arg)
{
	event_loop_run(arg);
	return NULL;
}

/* vdrv_machine_new(), optionally with an event loop and fake ioeventfds
 * installed before the devices are created. */
static int machine_new(struct env *e, const char *const *kv, bool iofd)
{
	struct vdrv_machine *m = &e->m;
	int rc;

	memset(m, 0, sizeof(*m));
	m->exit_status = -1;
	m->ram = aligned_alloc(4096, VDRV_RAM);
	if (!m->ram)
		return -1;
	memset(m->ram, 0, VDRV_RAM);
	gmem_init_fake(&m->mem, m->ram, VDRV_RAM);
	m->cfg = cfg_new();
	for (; *kv; kv += 2)
		cfg_set(m->cfg, kv[0], kv[1]);
	bus_new(&m->ctx.pio, "pio");
	bus_new(&m->ctx.mmio, "mmio");
	m->ctx.mem = &m->mem;
	m->ctx.root = m->cfg;
	m->ctx.irq = (struct irq_sink){
		.set_irq = rec_irq, .msi = rec_msi, .opaque = m};
	m->ctx.opaque = m;
	m->brk = 0x100000;
	if (iofd) {
		if (event_loop_new(&e->ev))
			return -1;
		m->ctx.ev = e->ev;
		m->ctx.ioeventfd = fake_ioeventfd;
	}
	if ((rc = pci_root_new(&m->ctx, &m->root)))
		return rc;
	if ((rc = pci_create_devices(m->root, m->cfg)))
		return rc;
	rc = pci_assign_bars(m->root);
	if (rc == 0 && iofd) {
		rc = pthread_create(&e->loop_thr, NULL, loop_main, e->ev);
		e->loop_on = rc == 0;
	}
	return rc;
}

static uint32_t cfgr(struct env *e, unsigned off, unsigned size)
{
	return pci_cfg_read(e->m.root, 0, SLOT, 0, off, size);
}

static void cfgw(struct env *e, unsigned off, unsigned size, uint32_t v)
{
	pci_cfg_write(e->m.root, 0, SLOT, 0, off, size, v);
}

static uint32_t rd32(struct env *e, unsigned off)
{
	return (uint32_t)vdrv_mmio(&e->m, e->bar0 + off, 4, false, 0);
}

static uint64_t rd64(struct env *e, unsigned off)
{
	return vdrv_mmio(&e->m, e->bar0 + off, 8, false, 0);
}

static void wr32(struct env *e, unsigned off, uint32_t v)
{
	vdrv_mmio(&e->m, e->bar0 + off, 4, true, v);
}

static void wr64(struct env *e, unsigned off, uint64_t v)
{
	vdrv_mmio(&e->m, e->bar0 + off, 8, true, v);
}

/* Program MSI-X vector v (data MSI_DATA(v)) and enable MSI-X. */
static void msix_setup(struct env *e, unsigned nvec)
{
	unsigned v;

	for (v = 0; v < nvec; v++) {
		vdrv_mmio(&e->m, e->msix + 16 * v, 8, true, 0xfee00000ull);
		vdrv_mmio(&e->m, e->msix + 16 * v + 8, 4, true, MSI_DATA(v));
		vdrv_mmio(&e->m, e->msix + 16 * v + 12, 4, true, 0);
	}
	cfgw(e, e->msix_cap + 2, 2, 0x8000);
}

/* 'extra': "key", "value" pairs for pci.0.4.0 (NULL-terminated); 'img'
 * NULL for none (ram= in extra). */
static int env_new_x(struct env *e, const char *img, const char *const *extra,
		     bool iofd)
{
	const char *kv[40];
	char keys[16][64];
	unsigned n = 0, k = 0, c;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	kv[n++] = "pci.0.4.0.device";
	kv[n++] = "nvme";
	if (img) {
		snprintf(e->path, sizeof(e->path), "%s", img);
		kv[n++] = "pci.0.4.0.path";
		kv[n++] = e->path;
		e->fd = open(img, O_RDWR);
	}
	for (; extra && *extra && k < 16; extra += 2, k++) {
		snprintf(keys[k], sizeof(keys[k]), "pci.0.4.0.%s", extra[0]);
		kv[n++] = keys[k];
		kv[n++] = extra[1];
	}
	kv[n] = NULL;
	memset(msi_hits, 0, sizeof(msi_hits));
	memset(intx_level, 0, sizeof(intx_level));
	if (machine_new(e, kv, iofd))
		return -1;
	e->bar0 = (cfgr(e, PCIR_BAR(0), 4) & ~0xfull) |
		  (uint64_t)cfgr(e, PCIR_BAR(1), 4) << 32;
	e->msix = cfgr(e, PCIR_BAR(4), 4) & ~0xfull;
	for (c = cfgr(e, PCIR_CAP_PTR, 1); c; c = cfgr(e, c + 1, 1))
		if (cfgr(e, c, 1) == PCIY_MSIX)
			e->msix_cap = c;
	e->gsi = cfgr(e, PCIR_INTLINE, 1);
	e->asq = vdrv_alloc(&e->m, 4096, 4096);
	e->acq = vdrv_alloc(&e->m, 4096, 4096);
	e->id = vdrv_alloc(&e->m, 4096, 4096);
	e->lists = vdrv_alloc(&e->m, 65536, 4096);
	e->buf = vdrv_alloc(&e->m, 4u << 20, 0x10000);
	return 0;
}

static int env_new(struct env *e, const char *img, const char *const *extra)
{
	return env_new_x(e, img, extra, false);
}

static void env_free(struct env *e)
{
	if (e->loop_on) {
		event_loop_stop(e->ev, 0);
		pthread_join(e->loop_thr, NULL);
	}
	vdrv_machine_free(&e->m);
	if (e->ev)
		event_loop_free(e->ev);
	if (e->fd >= 0)
		close(e->fd);
}

/* Disable, set up the admin queue, enable with 4 KiB << mps pages.
 * Returns CSTS. */
static uint32_t enable(struct env *e, unsigned mps)
{
	wr32(e, NVME_REG_CC, 0);
	memset(gp(e, e->asq), 0, 4096);
	memset(gp(e, e->acq), 0, 4096);
	e->asqt = e->acqh = 0;
	e->aphase = true;
	memset(e->q, 0, sizeof(e->q));
	wr32(e, NVME_REG_AQA, (AQ_SIZE - 1) << 16 | (AQ_SIZE - 1));
	wr64(e, NVME_REG_ASQ, e->asq);
	wr64(e, NVME_REG_ACQ, e->acq);
	wr32(e, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20 | mps << 7);
	return rd32(e, NVME_REG_CSTS);
}

static struct cmd mk(uint8_t opc, uint32_t nsid)
{
	struct cmd c;

	memset(&c, 0, sizeof(c));
	c.dw[0] = opc;
	c.dw[1] = nsid;
	return c;
}

static void set_prp(struct cmd *c, uint64_t p1, uint64_t p2)
{
	c->dw[6] = (uint32_t)p1;
	c->dw[7] = (uint32_t)(p1 >> 32);
	c->dw[8] = (uint32_t)p2;
	c->dw[9] = (uint32_t)(p2 >> 32);
}

/* Write a command at 'tail' of a ring, giving it a fresh CID. */
static uint16_t put_cmd(struct env *e, uint64_t ring, uint16_t tail,
			struct cmd *c)
{
	uint16_t cid = ++e->cid;
	unsigned i;

	c->dw[0] = (c->dw[0] & 0xffff) | (uint32_t)cid << 16;
	for (i = 0; i < 16; i++) {
		uint32_t v = htole32(c->dw[i]);

		memcpy(gp(e, ring + 64ull * tail + 4 * i), &v, 4);
	}
	return cid;
}

/* Take a completion if one is there: 1 (out filled) or 0. */
static int cqe_take(struct env *e, uint64_t ring, unsigned size, uint16_t *head,
		    bool *phase, uint32_t out[4])
{
	uint8_t *p = gp(e, ring + 16ull * *head);
	uint32_t dw3 = le32toh(
		__atomic_load_n((uint32_t *)(p + 12), __ATOMIC_ACQUIRE));

	if (((dw3 >> 16) & 1) != *phase)
		return 0;
	memcpy(out, p, 12);
	out[3] = dw3;
	if (++*head == size) {
		*head = 0;
		*phase = !*phase;
	}
	return 1;
}

static int status_of(const uint32_t out[4])
{
	return (int)((out[3] >> 17) & 0x7ff);
}

/* Submit an admin command without waiting; returns the CID. */
static uint16_t admin_submit(struct env *e, struct cmd *c)
{
	uint16_t cid = put_cmd(e, e->asq, e->asqt, c);

	e->asqt = (e->asqt + 1) % AQ_SIZE;
	wr32(e, NVME_SQ_TDBL(0), e->asqt);
	return cid;
}

/* Wait (bounded) for an admin completion.  1 or 0. */
static int admin_reap(struct env *e, uint32_t out[4], int ms)
{
	struct timespec t = {0, 1000000};
	int i;

	for (i = 0; i <= ms; i++) {
		if (cqe_take(e, e->acq, AQ_SIZE, &e->acqh, &e->aphase, out)) {
			wr32(e, NVME_CQ_HDBL(0), e->acqh);
			return 1;
		}
		nanosleep(&t, NULL);
	}
	return 0;
}

/* Run an admin command: its status (SCT << 8 | SC), or TIMEOUT. */
static int admin(struct env *e, struct cmd c, uint32_t *dw0)
{
	uint32_t out[4];
	uint16_t cid = admin_submit(e, &c);

	if (!admin_reap(e, out, 2000) || (out[3] & 0xffff) != cid)
		return TIMEOUT;
	if (dw0)
		*dw0 = out[0];
	return status_of(out);
}

static int identify(struct env *e, unsigned cns, uint32_t nsid)
{
	struct cmd c = mk(NVME_ADM_IDENTIFY, nsid);

	memset(gp(e, e->id), 0xee, 4096);
	set_prp(&c, e->id, 0);
	c.dw[10] = cns;
	return admin(e, c, NULL);
}

static int create_cq(struct env *e, unsigned qid, unsigned size, uint64_t ring,
		     unsigned vec, bool ien)
{
	struct cmd c = mk(NVME_ADM_CREATE_CQ, 0);

	set_prp(&c, ring, 0);
	c.dw[10] = (size - 1) << 16 | qid;
	c.dw[11] = vec << 16 | (ien ? 2u : 0u) | 1u;
	return admin(e, c, NULL);
}

static int create_sq(struct env *e, unsigned qid, unsigned size, uint64_t ring,
		     unsigned cqid)
{
	struct cmd c = mk(NVME_ADM_CREATE_SQ, 0);

	set_prp(&c, ring, 0);
	c.dw[10] = (size - 1) << 16 | qid;
	c.dw[11] = cqid << 16 | 1u;
	return admin(e, c, NULL);
}

static int delete_q(struct env *e, uint8_t opc, unsigned qid)
{
	struct cmd c = mk(opc, 0);

	c.dw[10] = qid;
	return admin(e, c, NULL);
}

/* Create I/O CQ and SQ 'qid' (the SQ on its own CQ). */
static int mkq(struct env *e, unsigned qid, unsigned size, unsigned cqsize,
	       unsigned vec)
{
	struct ioq *q = &e->q[qid];
	int rc;

	q->size = size;
	q->cqsize = cqsize;
	q->cq = vdrv_alloc(&e->m, 16ull * cqsize, 0x10000);
	q->sq = vdrv_alloc(&e->m, 64ull * size, 0x10000);
	q->sqt = q->cqh = 0;
	q->phase = true;
	rc = create_cq(e, qid, cqsize, q->cq, vec, true);
	if (rc == 0)
		rc = create_sq(e, qid, size, q->sq, qid);
	return rc;
}

static uint16_t io_push(struct env *e, unsigned qid, struct cmd *c)
{
	struct ioq *q = &e->q[qid];
	uint16_t cid = put_cmd(e, q->sq, q->sqt, c);

	q->sqt = (uint16_t)((q->sqt + 1) % q->size);
	return cid;
}

static void io_ring(struct env *e, unsigned qid)
{
	wr32(e, NVME_SQ_TDBL(qid), e->q[qid].sqt);
}

/* Wait up to 5 s for a completion on CQ 'qid'; 'ring' writes the head
 * doorbell.  1 or 0. */
static int io_reap(struct env *e, unsigned qid, uint32_t out[4], bool ring)
{
	struct ioq *q = &e->q[qid];
	struct timespec t = {0, 1000000};
	int i;

	for (i = 0; i < 5000; i++) {
		if (cqe_take(e, q->cq, q->cqsize, &q->cqh, &q->phase, out)) {
			if (ring)
				wr32(e, NVME_CQ_HDBL(qid), q->cqh);
			return 1;
		}
		nanosleep(&t, NULL);
	}
	return 0;
}

/* Run one I/O command; its status or TIMEOUT. */
static int io(struct env *e, unsigned qid, struct cmd c)
{
	uint32_t out[4];
	uint16_t cid = io_push(e, qid, &c);

	io_ring(e, qid);
	if (!io_reap(e, qid, out, true) || (out[3] & 0xffff) != cid)
		return TIMEOUT;
	return status_of(out);
}

static struct cmd rw_cmd(uint8_t opc, uint64_t slba, unsigned nlb, uint64_t p1,
			 uint64_t p2)
{
	struct cmd c = mk(opc, 1);

	set_prp(&c, p1, p2);
	c.dw[10] = (uint32_t)slba;
	c.dw[11] = (uint32_t)(slba >> 32);
	c.dw[12] = nlb - 1;
	return c;
}

static int rw(struct env *e, unsigned qid, uint8_t opc, uint64_t slba,
	      unsigned nlb, uint64_t p1, uint64_t p2)
{
	return io(e, qid, rw_cmd(opc, slba, nlb, p1, p2));
}

static void put_u64(struct env *e, uint64_t gpa, uint64_t v)
{
	v = htole64(v);
	memcpy(gp(e, gpa), &v, 8);
}

static uint32_t get_u32(struct env *e, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, gp(e, gpa), 4);
	return le32toh(v);
}

static uint64_t get_u64(struct env *e, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, gp(e, gpa), 8);
	return le64toh(v);
}

static int level(struct env *e)
{
	return __atomic_load_n(&intx_level[e->gsi], __ATOMIC_SEQ_CST);
}

/* A doorbell-buffer entry, shared with the device: atomic access. */
static void db_put(struct env *e, uint64_t gpa, uint32_t v)
{
	__atomic_store_n((uint32_t *)gp(e, gpa), htole32(v), __ATOMIC_SEQ_CST);
}

static uint32_t db_get(struct env *e, uint64_t gpa)
{
	return le32toh(
		__atomic_load_n((uint32_t *)gp(e, gpa), __ATOMIC_SEQ_CST));
}

/* An enabled controller with MSI-X and I/O queue pair 1 (vector 1). */
static int env_ready(struct env *e, const char *img, const char *const *x)
{
	if (env_new(e, img, x))
		return -1;
	msix_setup(e, 17);
	if (!(enable(e, 0) & NVME_CSTS_RDY))
		return -1;
	return mkq(e, 1, 64, 64, 1);
}

/* ---- tests ---- */

static void test_pci(const char *img)
{
	struct env e;
	uint64_t cap;
	uint32_t bar;

	is_int(env_new(&e, img, NULL), 0, "machine with nvme");
	is_int(cfgr(&e, PCIR_VENDOR, 2), NVME_PCI_VENDOR, "vendor fb5d");
	is_int(cfgr(&e, PCIR_DEVICE, 2), NVME_PCI_DEVICE, "device 0a0a");
	is_int(cfgr(&e, PCIR_CLASS, 1), 0x01, "class mass storage");
	is_int(cfgr(&e, PCIR_SUBCLASS, 1), 0x08, "subclass NVM");
	is_int(cfgr(&e, PCIR_PROGIF, 1), 0x02, "prog-if NVMe");
	is_int(cfgr(&e, PCIR_BAR(0), 4) & 0x7, 0x4, "BAR0 is 64-bit memory");
	bar = cfgr(&e, PCIR_BAR(0), 4);
	cfgw(&e, PCIR_BAR(0), 4, 0xffffffff);
	is_int(~(cfgr(&e, PCIR_BAR(0), 4) & ~0xfu) + 1, NVME_BAR0_SIZE,
	       "BAR0 is 16 KiB");
	cfgw(&e, PCIR_BAR(0), 4, bar);
	ok(e.msix_cap != 0, "MSI-X capability");
	is_int((cfgr(&e, e.msix_cap + 2, 2) & 0x7ff) + 1, 17,
	       "17 MSI-X vectors (maxq 16 + admin)");
	is_int(cfgr(&e, e.msix_cap + 4, 4) & 7, NVME_BAR_MSIX,
	       "MSI-X table in BAR4");
	ok(cfgr(&e, PCIR_INTPIN, 1) == 1, "INTA");
	cap = rd64(&e, NVME_REG_CAP);
	is_int(cap & 0xffff, 2047, "CAP.MQES = qsz - 1");
	ok(cap & NVME_CAP_CQR, "CAP.CQR");
	is_int((cap >> 32) & 0xf, 0, "CAP.DSTRD 0");
	ok(cap & NVME_CAP_CSS_NVM, "CAP.CSS NVM");
	ok(((cap >> 24) & 0xff) > 0, "CAP.TO set");
	is_int((cap >> 48) & 0xf, 0, "CAP.MPSMIN 4 KiB");
	is_int((cap >> 52) & 0xf, NVME_MPSMAX, "CAP.MPSMAX");
	is_int(rd32(&e, NVME_REG_CAP) | (uint64_t)rd32(&e, 4) << 32, cap,
	       "CAP reads the same as two dwords");
	is_int(rd32(&e, NVME_REG_VS), 0x10400, "VS 1.4");
	is_int(rd32(&e, NVME_REG_CSTS), 0, "CSTS 0 before enable");
	is_int(vdrv_mmio(&e.m, e.bar0 + NVME_REG_VS + 2, 2, false, 0), 1,
	       "2-byte read of VS major");
	is_int(rd32(&e, NVME_SQ_TDBL(0)), 0, "doorbells read 0");
	wr32(&e, NVME_REG_AQA, 0xffffffff);
	is_int(rd32(&e, NVME_REG_AQA), 0x0fff0fff, "AQA reserved bits clear");
	wr64(&e, NVME_REG_ASQ, 0x123456789abcdefull);
	is_int(rd64(&e, NVME_REG_ASQ), 0x123456789abc000ull,
	       "ASQ low 12 bits reserved");
	vdrv_mmio(&e.m, e.bar0 + NVME_REG_CC, 2, true, NVME_CC_EN);
	is_int(rd32(&e, NVME_REG_CC), 0, "2-byte CC write ignored");
	env_free(&e);
}

static void test_identify(const char *img, unsigned sectsz)
{
	char ss[8];
	const char *x[] = {"sectsz", ss, NULL};
	struct env e;
	uint8_t *d;
	uint32_t dw0;
	uint8_t eui[8];
	unsigned shift = sectsz == 512 ? 9 : 12;

	snprintf(ss, sizeof(ss), "%u", sectsz);
	is_int(env_new(&e, img, x), 0, "machine (sectsz=%u)", sectsz);
	is_int(enable(&e, 0), NVME_CSTS_RDY, "enabled: CSTS.RDY");
	d = gp(&e, e.id);
	is_int(identify(&e, NVME_CNS_CTRL, 0), 0, "Identify controller");
	is_int(d[0] | d[1] << 8, NVME_PCI_VENDOR, "VID");
	ok(memcmp(d + NVME_IDC_SN, "NVME-4-0            ", 20) == 0,
	   "serial NVME-<slot>-<func>, space padded");
	ok(memcmp(d + NVME_IDC_MN, "bhyve-NVMe", 10) == 0 &&
		   d[NVME_IDC_MN + 39] == ' ',
	   "model bhyve-NVMe");
	is_int(get_u32(&e, e.id + NVME_IDC_NN), 1, "NN 1");
	is_int(d[NVME_IDC_SQES], 0x66, "SQES 64 bytes");
	is_int(d[NVME_IDC_CQES], 0x44, "CQES 16 bytes");
	is_int(d[NVME_IDC_MDTS], NVME_MDTS, "MDTS");
	is_int(get_u32(&e, e.id + NVME_IDC_VER), 0x10400, "VER 1.4");
	ok(d[NVME_IDC_ONCS] & NVME_ONCS_WRITE_ZEROES, "ONCS write zeroes");
	ok((d[NVME_IDC_OACS] | d[NVME_IDC_OACS + 1] << 8) & NVME_OACS_DBBUF,
	   "OACS doorbell buffer config");
	is_int(d[NVME_IDC_AERL], NVME_AER_MAX - 1, "AERL");
	is_int(d[NVME_IDC_VWC] & 1, 1, "volatile write cache present");
	ok(memcmp(d + NVME_IDC_SUBNQN, "nqn.", 4) == 0, "SUBNQN");
	is_int(identify(&e, NVME_CNS_NS, 1), 0, "Identify namespace 1");
	memcpy(eui, d + NVME_IDN_EUI64, 8);
	is_int(get_u64(&e, e.id + NVME_IDN_NSZE), IMG_SIZE >> shift,
	       "NSZE = image / %u", sectsz);
	is_int(get_u64(&e, e.id + NVME_IDN_NCAP), IMG_SIZE >> shift, "NCAP");
	is_int(d[NVME_IDN_NLBAF], 0, "one LBA format");
	is_int(d[NVME_IDN_FLBAS] & 0xf, 0, "format 0 in use");
	is_int((get_u32(&e, e.id + NVME_IDN_LBAF0) >> 16) & 0xff, shift,
	       "LBAF0.LBADS = %u", shift);
	is_int(d[NVME_IDN_NSATTR], 0, "not write protected");
	is_int(identify(&e, NVME_CNS_ACTIVE_NS, 0), 0, "active NS list");
	is_int(get_u32(&e, e.id), 1, "lists NSID 1");
	is_int(get_u32(&e, e.id + 4), 0, "and nothing else");
	is_int(identify(&e, NVME_CNS_ACTIVE_NS, 1), 0, "active NS list > 1");
	is_int(get_u32(&e, e.id), 0, "is empty");
	is_int(identify(&e, NVME_CNS_NS_DESC, 1), 0, "NS descriptors");
	is_int(d[0], NVME_NIDT_EUI64, "EUI-64 descriptor");
	is_int(d[1], 8, "of 8 bytes");
	ok(memcmp(d + 4, eui, 8) == 0 && !dimg_all_bytes(eui, 0, 8),
	   "the namespace's non-zero EUI-64");
	is_int(identify(&e, NVME_CNS_NS, 2), ST(0, 0x0b),
	       "Identify NS 2: invalid namespace");
	is_int(identify(&e, NVME_CNS_NS, 0xffffffff), ST(0, 0x0b),
	       "Identify NS broadcast: invalid namespace");
	is_int(identify(&e, 0x10, 0), ST(0, 0x02), "CNS 0x10: invalid field");
	is_int(identify(&e, NVME_CNS_ACTIVE_NS, 0xfffffffe), ST(0, 0x0b),
	       "active list after 0xfffffffe: invalid namespace");
	{
		struct cmd c = mk(NVME_ADM_GET_FEATURES, 0);

		c.dw[10] = NVME_FEAT_NUM_QUEUES;
		is_int(admin(&e, c, &dw0), 0, "Get Features number of queues");
		is_int(dw0, 15u << 16 | 15u, "16 SQs and 16 CQs");
	}
	env_free(&e);
}

static void test_identify_custom(const char *img)
{
	static const char *const x[] = {
		"ser",	"KHYVE-SER-1", "eui64", "0x0011223344556677",
		"maxq", "4",	       "qsz",	"256",
		NULL};
	struct env e;
	uint8_t *d;
	uint64_t be;

	is_int(env_new(&e, img, x), 0, "machine with ser, eui64, maxq, qsz");
	is_int(enable(&e, 0), NVME_CSTS_RDY, "enabled");
	is_int(rd64(&e, NVME_REG_CAP) & 0xffff, 255, "MQES 255");
	is_int((cfgr(&e, e.msix_cap + 2, 2) & 0x7ff) + 1, 5, "5 vectors");
	d = gp(&e, e.id);
	identify(&e, NVME_CNS_CTRL, 0);
	ok(memcmp(d + NVME_IDC_SN, "KHYVE-SER-1         ", 20) == 0,
	   "ser= is the serial");
	identify(&e, NVME_CNS_NS, 1);
	memcpy(&be, d + NVME_IDN_EUI64, 8);
	is_int(be64toh(be), 0x0011223344556677ull, "eui64= big-endian");
	identify(&e, NVME_CNS_NS_DESC, 1);
	memcpy(&be, d + 4, 8);
	is_int(be64toh(be), 0x0011223344556677ull, "and in the descriptor");
	is_int(create_cq(&e, 5, 16, vdrv_alloc(&e.m, 4096, 4096), 0, true),
	       ST(1, 0x01), "CQ 5 beyond maxq 4: invalid queue identifier");
	is_int(create_cq(&e, 1, 257, vdrv_alloc(&e.m, 8192, 4096), 0, true),
	       ST(1, 0x02), "CQ of 257 entries beyond qsz: invalid size");
	is_int(create_cq(&e, 1, 16, vdrv_alloc(&e.m, 4096, 4096), 5, true),
	       ST(1, 0x08), "vector 5 of 5: invalid interrupt vector");
	env_free(&e);
}

/* Reads and writes with every PRP layout, checked against the file. */
static void test_rw(const char *img, unsigned sectsz)
{
	char ss[8];
	const char *x[] = {"sectsz", ss, NULL};
	struct env e;
	uint64_t b, l, pages[16];
	uint8_t *w = malloc(65536), *r = malloc(65536);
	unsigned i, lb = sectsz, before;
	uint32_t out[4];

	snprintf(ss, sizeof(ss), "%u", sectsz);
	dimg_make(img, IMG_SIZE, dimg_pat);
	if (!w || !r || env_ready(&e, img, x)) {
		ok(0, "set-up for read/write (sectsz=%u)", sectsz);
		free(w);
		free(r);
		return;
	}
	b = e.buf;
	before = hits(1);
	/* PRP1 only */
	is_int(rw(&e, 1, NVME_IO_READ, 8, 4096 / lb, b, 0), 0,
	       "read 4 KiB with PRP1 only (%u)", sectsz);
	ok(is_pattern(gp(&e, b), 8ull * lb, 4096), "data is the image's");
	ok(hits(1) > before, "MSI-X vector 1 fired");
	for (i = 0; i < 65536; i++)
		w[i] = (uint8_t)(i * 13 + sectsz);
	memcpy(gp(&e, b), w, 4096);
	is_int(rw(&e, 1, NVME_IO_WRITE, 16, 4096 / lb, b, 0), 0,
	       "write 4 KiB with PRP1 only");
	ok(dimg_file_is(e.fd, 16ull * lb, w, 4096), "the image has it");
	/* PRP1 with an offset + PRP2 */
	memcpy(gp(&e, b + 0x10800), w + 100, 2048);
	memcpy(gp(&e, b + 0x30000), w + 100 + 2048, 2048);
	is_int(rw(&e, 1, NVME_IO_WRITE, 32, 4096 / lb, b + 0x10800,
		  b + 0x30000),
	       0, "write PRP1 at page offset 0x800 + PRP2");
	ok(dimg_file_is(e.fd, 32ull * lb, w + 100, 4096),
	   "image has both halves");
	memset(gp(&e, b + 0x40000), 0, 0x20000);
	is_int(rw(&e, 1, NVME_IO_READ, 32, 4096 / lb, b + 0x40c00, b + 0x50000),
	       0, "read PRP1 at offset 0xc00 + PRP2");
	ok(memcmp(gp(&e, b + 0x40c00), w + 100, 1024) == 0 &&
		   memcmp(gp(&e, b + 0x50000), w + 100 + 1024, 3072) == 0,
	   "both parts read back");
	/* a PRP list of 15 scattered pages (in reverse order) */
	l = e.lists;
	for (i = 0; i < 16; i++)
		pages[i] = b + 0x100000 + (15 - i) * 0x2000ull;
	for (i = 1; i < 16; i++)
		put_u64(&e, l + 8 * (i - 1), pages[i]);
	for (i = 0; i < 16; i++)
		memcpy(gp(&e, pages[i]), w + 4096 * i, 4096);
	is_int(rw(&e, 1, NVME_IO_WRITE, 64, 65536 / lb, pages[0], l), 0,
	       "write 64 KiB through a PRP list");
	ok(dimg_file_is(e.fd, 64ull * lb, w, 65536), "image has all 16 pages");
	for (i = 0; i < 16; i++)
		memset(gp(&e, pages[i]), 0, 4096);
	is_int(rw(&e, 1, NVME_IO_READ, 64, 65536 / lb, pages[0], l), 0,
	       "read 64 KiB through the list");
	for (i = 0; i < 16; i++)
		memcpy(r + 4096 * i, gp(&e, pages[i]), 4096);
	ok(memcmp(r, w, 65536) == 0, "read back what was written");
	/* a list whose first page holds one data entry, then a chain */
	put_u64(&e, l + 0x1ff0, b + 0x200000);
	put_u64(&e, l + 0x1ff8, l + 0x3000);
	put_u64(&e, l + 0x3000, b + 0x202000);
	put_u64(&e, l + 0x3008, b + 0x204000);
	memcpy(gp(&e, b + 0x1fe000), w, 4096);
	memcpy(gp(&e, b + 0x200000), w + 4096, 4096);
	memcpy(gp(&e, b + 0x202000), w + 8192, 4096);
	memcpy(gp(&e, b + 0x204000), w + 12288, 4096);
	is_int(rw(&e, 1, NVME_IO_WRITE, 256, 16384 / lb, b + 0x1fe000,
		  l + 0x1ff0),
	       0, "write through a chained PRP list");
	ok(dimg_file_is(e.fd, 256ull * lb, w, 16384), "image has the 4 pages");
	/* the largest transfer, MDTS: 2 MiB through a full list page */
	for (i = 0; i < 511; i++)
		put_u64(&e, l + 8 * i, b + 0x1000 * (i + 1));
	is_int(rw(&e, 1, NVME_IO_READ, 0, (2u << 20) / lb, b, l), 0,
	       "read 2 MiB (MDTS)");
	ok(dimg_file_is(e.fd, 0, gp(&e, b), 2u << 20),
	   "all 2 MiB are the image's");
	/* SQ head and SQ id in completions */
	io_push(&e, 1, &(struct cmd){.dw = {NVME_IO_FLUSH, 1}});
	io_ring(&e, 1);
	ok(io_reap(&e, 1, out, true), "flush completes");
	is_int(out[2] & 0xffff, e.q[1].sqt, "SQHD is the consumed tail");
	is_int(out[2] >> 16, 1, "SQID 1");
	is_int(status_of(out), 0, "flush OK");
	env_free(&e);
	free(w);
	free(r);
}

static void test_flush_dsm_wz(const char *img)
{
	struct env e;
	struct cmd c;
	uint64_t b;
	bool dsm;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_ready(&e, img, NULL)) {
		ok(0, "set-up for flush/DSM");
		return;
	}
	b = e.buf;
	c = mk(NVME_IO_FLUSH, 1);
	is_int(io(&e, 1, c), 0, "flush NSID 1");
	c = mk(NVME_IO_FLUSH, 0xffffffff);
	is_int(io(&e, 1, c), 0, "flush all namespaces");
	c = mk(NVME_IO_FLUSH, 2);
	is_int(io(&e, 1, c), ST(0, 0x0b), "flush NSID 2: invalid namespace");
	/* write zeroes */
	c = rw_cmd(NVME_IO_WRITE_ZEROES, 100, 16, 0, 0);
	is_int(io(&e, 1, c), 0, "write zeroes 16 LBAs");
	memset(gp(&e, b), 0xee, 8192);
	is_int(rw(&e, 1, NVME_IO_READ, 100, 16, b, b + 4096), 0, "read them");
	ok(dimg_all_bytes(gp(&e, b), 0, 8192), "they read as zeroes");
	{
		uint8_t z[8192];

		memset(z, 0, sizeof(z));
		ok(dimg_file_is(e.fd, 100 * 512, z, sizeof(z)), "image zeroed");
	}
	c = rw_cmd(NVME_IO_WRITE_ZEROES, IMG_SIZE / 512 - 1, 2, 0, 0);
	is_int(io(&e, 1, c), ST(0, 0x80), "write zeroes past the end");
	/* dataset management */
	identify(&e, NVME_CNS_CTRL, 0);
	dsm = gp(&e, e.id)[NVME_IDC_ONCS] & NVME_ONCS_DSM;
	put_u64(&e, e.lists, 0);
	memcpy(gp(&e, e.lists + 4), &(uint32_t){htole32(32)}, 4);
	put_u64(&e, e.lists + 8, 2048);
	memset(gp(&e, e.lists + 16), 0, 16); /* a zero-length range */
	put_u64(&e, e.lists + 24, (uint64_t)1 << 40);
	c = mk(NVME_IO_DSM, 1);
	set_prp(&c, e.lists, 0);
	c.dw[10] = 1; /* two ranges */
	c.dw[11] = 4; /* deallocate */
	if (dsm) {
		is_int(io(&e, 1, c), 0, "deallocate 32 LBAs");
		memset(gp(&e, b), 0xee, 16384);
		put_u64(&e, e.lists + 0x1000, b + 4096);
		put_u64(&e, e.lists + 0x1008, b + 8192);
		put_u64(&e, e.lists + 0x1010, b + 12288);
		is_int(rw(&e, 1, NVME_IO_READ, 2048, 32, b, e.lists + 0x1000),
		       0, "read the deallocated range");
		ok(dimg_all_bytes(gp(&e, b), 0, 16384),
		   "deallocated blocks read as zeroes");
		c.dw[11] = 3; /* hints only */
		is_int(io(&e, 1, c), 0, "DSM with only hints");
		put_u64(&e, e.lists + 8, IMG_SIZE / 512 - 8);
		c.dw[11] = 4;
		is_int(io(&e, 1, c), ST(0, 0x80), "deallocate past the end");
	} else {
		diag("the file system cannot punch holes: DSM not offered");
		is_int(io(&e, 1, c), ST(0, 0x01), "DSM not offered: opcode");
	}
	env_free(&e);
	{
		static const char *const off[] = {"dsm", "disable", NULL};

		if (env_ready(&e, img, off) == 0) {
			identify(&e, NVME_CNS_CTRL, 0);
			ok(!(gp(&e, e.id)[NVME_IDC_ONCS] & NVME_ONCS_DSM),
			   "dsm=disable: ONCS without DSM");
			put_u64(&e, e.lists + 8, 0);
			c.dw[10] = 0;
			is_int(io(&e, 1, c), ST(0, 0x01),
			       "dsm=disable: DSM is an invalid opcode");
		}
		env_free(&e);
	}
	{
		static const char *const on[] = {"dsm", "enable", NULL};

		if (env_ready(&e, img, on) == 0) {
			identify(&e, NVME_CNS_CTRL, 0);
			ok(gp(&e, e.id)[NVME_IDC_ONCS] & NVME_ONCS_DSM,
			   "dsm=enable: ONCS has DSM");
		}
		env_free(&e);
	}
}

static void test_ram(void)
{
	static const char *const x[] = {"ram", "8", NULL};
	static const char *const x512[] = {"ram", "2", "sectsz", "512", NULL};
	struct env e;
	struct cmd c;
	uint64_t b;
	unsigned i;

	if (env_ready(&e, NULL, x)) {
		ok(0, "machine with ram=8");
		env_free(&e);
		return;
	}
	b = e.buf;
	identify(&e, NVME_CNS_NS, 1);
	is_int(get_u64(&e, e.id + NVME_IDN_NSZE), 2048, "8 MiB of 4 KiB LBAs");
	is_int((get_u32(&e, e.id + NVME_IDN_LBAF0) >> 16) & 0xff, 12,
	       "ram= defaults to 4 KiB LBAs");
	is_int(gp(&e, e.id)[NVME_IDN_DLFEAT] & 7, 1,
	       "deallocated blocks read as zeroes");
	identify(&e, NVME_CNS_CTRL, 0);
	ok(gp(&e, e.id)[NVME_IDC_ONCS] & NVME_ONCS_DSM, "DSM offered");
	memset(gp(&e, b), 0x55, 8192);
	is_int(rw(&e, 1, NVME_IO_READ, 10, 2, b, b + 4096), 0, "read");
	ok(dimg_all_bytes(gp(&e, b), 0, 8192), "a new RAM namespace is zeroes");
	for (i = 0; i < 8192; i++)
		gp(&e, b)[i] = (uint8_t)(i * 7);
	is_int(rw(&e, 1, NVME_IO_WRITE, 2047, 1, b, 0), 0, "write last LBA");
	is_int(rw(&e, 1, NVME_IO_WRITE, 10, 2, b, b + 4096), 0, "write 2");
	memset(gp(&e, b + 0x10000), 0, 8192);
	is_int(rw(&e, 1, NVME_IO_READ, 10, 2, b + 0x10000, b + 0x11000), 0,
	       "read back");
	ok(memcmp(gp(&e, b), gp(&e, b + 0x10000), 8192) == 0, "same data");
	is_int(rw(&e, 1, NVME_IO_READ, 2048, 1, b, 0), ST(0, 0x80),
	       "LBA 2048 is out of range");
	c = rw_cmd(NVME_IO_WRITE_ZEROES, 11, 1, 0, 0);
	is_int(io(&e, 1, c), 0, "write zeroes LBA 11");
	rw(&e, 1, NVME_IO_READ, 10, 2, b + 0x10000, b + 0x11000);
	ok(memcmp(gp(&e, b), gp(&e, b + 0x10000), 4096) == 0 &&
		   dimg_all_bytes(gp(&e, b + 0x11000), 0, 4096),
	   "LBA 10 kept, LBA 11 zeroed");
	memset(gp(&e, e.lists), 0, 16);
	memcpy(gp(&e, e.lists + 4), &(uint32_t){htole32(1)}, 4);
	put_u64(&e, e.lists + 8, 10);
	c = mk(NVME_IO_DSM, 1);
	set_prp(&c, e.lists, 0);
	c.dw[11] = 4;
	is_int(io(&e, 1, c), 0, "deallocate LBA 10");
	rw(&e, 1, NVME_IO_READ, 10, 1, b + 0x10000, 0);
	ok(dimg_all_bytes(gp(&e, b + 0x10000), 0, 4096), "LBA 10 reads zeroes");
	c = mk(NVME_IO_FLUSH, 1);
	is_int(io(&e, 1, c), 0, "flush a RAM namespace");
	env_free(&e);
	if (env_ready(&e, NULL, x512) == 0) {
		identify(&e, NVME_CNS_NS, 1);
		is_int(get_u64(&e, e.id + NVME_IDN_NSZE), 4096,
		       "ram=2,sectsz=512: 4096 LBAs");
	}
	env_free(&e);
}

/* 8 KiB LBAs (sectsz=8192): bigger than any host sector. */
static void test_8k(const char *img)
{
	static const char *const x[] = {"sectsz", "8192", NULL};
	static const char *const r[] = {"ram", "1", "sectsz", "8192", NULL};
	struct env e;
	uint64_t b;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_ready(&e, img, x)) {
		ok(0, "set-up with sectsz=8192");
		env_free(&e);
		return;
	}
	b = e.buf;
	identify(&e, NVME_CNS_NS, 1);
	is_int(get_u64(&e, e.id + NVME_IDN_NSZE), IMG_SIZE / 8192,
	       "sectsz=8192: NSZE in 8 KiB LBAs");
	is_int((get_u32(&e, e.id + NVME_IDN_LBAF0) >> 16) & 0xff, 13,
	       "LBADS 13");
	is_int(rw(&e, 1, NVME_IO_READ, 3, 1, b, b + 0x3000), 0,
	       "read one 8 KiB LBA (PRP1 + PRP2)");
	ok(is_pattern(gp(&e, b), 3 * 8192, 4096) &&
		   is_pattern(gp(&e, b + 0x3000), 3 * 8192 + 4096, 4096),
	   "at byte 3 * 8192 of the image");
	memset(gp(&e, b), 0x77, 8192);
	is_int(rw(&e, 1, NVME_IO_WRITE, 5, 1, b, b + 4096), 0, "write LBA 5");
	ok(dimg_file_is(e.fd, 5 * 8192, gp(&e, b), 8192), "the image has it");
	is_int(rw(&e, 1, NVME_IO_READ, IMG_SIZE / 8192, 1, b, b + 4096),
	       ST(0, 0x80), "LBA 2048 out of range");
	env_free(&e);
	if (env_ready(&e, NULL, r) == 0) {
		identify(&e, NVME_CNS_NS, 1);
		is_int(get_u64(&e, e.id + NVME_IDN_NSZE), 128,
		       "ram=1,sectsz=8192: 128 LBAs");
	}
	env_free(&e);
}

/* 48 reads with 4 slots; and a CQ too small for the work. */
static void test_inflight(const char *img)
{
	static const char *const x[] = {"ioslots", "4", NULL};
	struct env e;
	uint32_t out[4];
	uint64_t seen = 0;
	unsigned i, n = 0, good = 0, bad_hd = 0;
	uint16_t first;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_ready(&e, img, x)) {
		ok(0, "set-up with ioslots=4");
		env_free(&e);
		return;
	}
	first = e.cid + 1;
	for (i = 0; i < 48; i++) {
		struct cmd c =
			rw_cmd(NVME_IO_READ, 64ull * i, 16, e.buf + 8192ull * i,
			       e.buf + 8192ull * i + 4096);

		io_push(&e, 1, &c);
	}
	io_ring(&e, 1);
	while (n < 48 && io_reap(&e, 1, out, true)) {
		unsigned k = (out[3] & 0xffff) - first;

		n++;
		if (k < 48 && status_of(out) == 0)
			seen |= 1ull << k;
		if ((out[2] & 0xffff) > 48)
			bad_hd++;
	}
	is_int(n, 48, "48 commands through 4 slots all complete");
	is_int(seen, (1ull << 48) - 1, "each exactly once, successfully");
	is_int(bad_hd, 0, "SQ head values stay in the queue");
	for (i = 0; i < 48; i++)
		good += is_pattern(gp(&e, e.buf + 8192ull * i), 64ull * 512 * i,
				   8192);
	is_int(good, 48, "every buffer has its data");
	/* CQ of 4 entries (3 usable) behind a 32-entry SQ */
	e.q[2].size = 32;
	e.q[2].cqsize = 4;
	e.q[2].cq = vdrv_alloc(&e.m, 64, 4096);
	e.q[2].sq = vdrv_alloc(&e.m, 64 * 32, 4096);
	e.q[2].phase = true;
	is_int(create_cq(&e, 2, 4, e.q[2].cq, 2, true), 0, "CQ of 4 entries");
	is_int(create_sq(&e, 2, 32, e.q[2].sq, 2), 0, "SQ of 32 on it");
	for (i = 0; i < 20; i++) {
		struct cmd c = mk(NVME_IO_FLUSH, 1);

		io_push(&e, 2, &c);
	}
	io_ring(&e, 2);
	n = 0;
	while (n < 3 && io_reap(&e, 2, out, false))
		n++;
	is_int(n, 3, "3 completions fit");
	usleep(20000);
	ok(!cqe_take(&e, e.q[2].cq, 4, &e.q[2].cqh, &e.q[2].phase, out),
	   "no fourth before the head moves");
	wr32(&e, NVME_CQ_HDBL(2), e.q[2].cqh);
	while (n < 20 && io_reap(&e, 2, out, true))
		n++;
	is_int(n, 20, "all 20 arrive as the head moves");
	env_free(&e);
}

static void test_irqs(const char *img)
{
	struct env e;
	unsigned q, ok_vec = 0;
	uint32_t out[4];

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_ready(&e, img, NULL)) {
		ok(0, "set-up for interrupts");
		env_free(&e);
		return;
	}
	for (q = 2; q <= 4; q++)
		mkq(&e, q, 16, 16, q + 4);
	for (q = 1; q <= 4; q++) {
		unsigned v = q == 1 ? 1 : q + 4, before = hits(v);

		rw(&e, q, NVME_IO_READ, q, 1, e.buf, 0);
		ok_vec += hits(v) == before + 1;
	}
	is_int(ok_vec, 4, "each CQ raises its own MSI-X vector");
	is_int(hits(0) >= 1, 1, "admin completions on vector 0");
	/* no interrupt when IEN = 0 */
	e.q[5].size = e.q[5].cqsize = 16;
	e.q[5].cq = vdrv_alloc(&e.m, 256, 4096);
	e.q[5].sq = vdrv_alloc(&e.m, 1024, 4096);
	e.q[5].phase = true;
	create_cq(&e, 5, 16, e.q[5].cq, 9, false);
	create_sq(&e, 5, 16, e.q[5].sq, 5);
	rw(&e, 5, NVME_IO_READ, 0, 1, e.buf, 0);
	is_int(hits(9), 0, "IEN 0: no interrupt");
	/* INTx once MSI-X is off */
	cfgw(&e, e.msix_cap + 2, 2, 0);
	io_push(&e, 1, &(struct cmd){.dw = {NVME_IO_FLUSH, 1}});
	io_ring(&e, 1);
	ok(io_reap(&e, 1, out, false), "completion with MSI-X off");
	usleep(2000);
	is_int(level(&e), 1, "INTx asserted while unread");
	wr32(&e, NVME_CQ_HDBL(1), e.q[1].cqh);
	is_int(level(&e), 0, "deasserted when the head catches up");
	wr32(&e, NVME_REG_INTMS, 1);
	io_push(&e, 1, &(struct cmd){.dw = {NVME_IO_FLUSH, 1}});
	io_ring(&e, 1);
	ok(io_reap(&e, 1, out, false), "completion with INTx masked");
	usleep(2000);
	is_int(level(&e), 0, "INTMS masks INTx");
	wr32(&e, NVME_REG_INTMC, 1);
	is_int(level(&e), 1, "INTMC unmasks: asserted");
	is_int(rd32(&e, NVME_REG_INTMS), 0, "INTMS reads the mask");
	wr32(&e, NVME_CQ_HDBL(1), e.q[1].cqh);
	is_int(level(&e), 0, "and deasserted again");
	env_free(&e);
}

static void test_hostile_io(const char *img)
{
	struct env e;
	struct cmd c;
	uint64_t b, l, outside = VDRV_RAM + 0x100000ull;
	unsigned ok_all = 0;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_ready(&e, img, NULL)) {
		ok(0, "set-up for hostile I/O");
		env_free(&e);
		return;
	}
	b = e.buf;
	l = e.lists;
	is_int(rw(&e, 1, NVME_IO_READ, 0, 8, outside, 0), ST(0, 0x04),
	       "PRP1 outside RAM: data transfer error");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 8, VDRV_RAM - 2048, VDRV_RAM),
	       ST(0, 0x04), "PRP2 just past the end of RAM");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 8, b + 2, 0), ST(0, 0x13),
	       "PRP1 not dword aligned: invalid PRP offset");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 16, b, b + 0x1800), ST(0, 0x13),
	       "PRP2 data pointer with an offset: invalid PRP offset");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 16, b, outside), ST(0, 0x04),
	       "PRP2 outside RAM");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 24, b, l + 4), ST(0, 0x13),
	       "misaligned PRP list: invalid PRP offset");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 24, b, outside), ST(0, 0x04),
	       "PRP list outside RAM");
	put_u64(&e, l, b + 0x1000);
	put_u64(&e, l + 8, outside);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 24, b, l), ST(0, 0x04),
	       "PRP list entry outside RAM");
	put_u64(&e, l + 8, b + 0x2004);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 24, b, l), ST(0, 0x13),
	       "PRP list entry with an offset");
	put_u64(&e, l + 0xff8, outside);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 24, b, l + 0xff8), ST(0, 0x04),
	       "PRP list chained beyond its page to outside RAM");
	put_u64(&e, l + 0xff8, l + 0xff8);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 24, b, l + 0xff8), ST(0, 0x04),
	       "PRP list chained to itself ends");
	put_u64(&e, l + 0xff8, l + 0xffc);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 24, b, l + 0xff8), ST(0, 0x13),
	       "misaligned chain pointer");
	is_int(rw(&e, 1, NVME_IO_READ, IMG_SIZE / 512, 1, b, 0), ST(0, 0x80),
	       "LBA at the end: LBA out of range");
	is_int(rw(&e, 1, NVME_IO_WRITE, IMG_SIZE / 512 - 1, 2, b, 0),
	       ST(0, 0x80), "write crossing the end: LBA out of range");
	is_int(rw(&e, 1, NVME_IO_READ, ~0ull, 2, b, 0), ST(0, 0x80),
	       "SLBA + NLB overflowing 64 bits");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 4097, b, l), ST(0, 0x02),
	       "beyond MDTS: invalid field");
	c = rw_cmd(NVME_IO_READ, 0, 1, b, 0);
	c.dw[1] = 0;
	is_int(io(&e, 1, c), ST(0, 0x0b), "NSID 0: invalid namespace");
	c.dw[1] = 2;
	is_int(io(&e, 1, c), ST(0, 0x0b), "NSID 2: invalid namespace");
	c = rw_cmd(NVME_IO_READ, 0, 1, b, 0);
	c.dw[0] |= 1u << 14;
	is_int(io(&e, 1, c), ST(0, 0x02), "SGL (PSDT 01): invalid field");
	c = rw_cmd(NVME_IO_READ, 0, 1, b, 0);
	c.dw[0] |= 1u << 8;
	is_int(io(&e, 1, c), ST(0, 0x02), "fused: invalid field");
	c = mk(0x7f, 1);
	is_int(io(&e, 1, c), ST(0, 0x01), "unknown I/O opcode");
	c = mk(0x04, 1); /* Write Uncorrectable: not offered */
	is_int(io(&e, 1, c), ST(0, 0x01), "Write Uncorrectable: opcode");
	{
		uint32_t out[4];
		uint16_t cid = io_push(&e, 1, &(struct cmd){.dw = {0x7f, 1}});

		io_ring(&e, 1);
		ok(io_reap(&e, 1, out, true) && (out[3] & 0xffff) == cid &&
			   (out[3] >> 31),
		   "errors carry Do Not Retry");
	}
	/* the device still works */
	ok_all = rw(&e, 1, NVME_IO_READ, 0, 8, b, 0) == 0 &&
		 is_pattern(gp(&e, b), 0, 4096);
	ok(ok_all, "good I/O after all that");
	env_free(&e);
}

static void test_hostile_admin(const char *img)
{
	struct env e;
	struct cmd c;
	uint64_t r = 0, outside = VDRV_RAM + 0x100000ull;
	uint32_t dw0;
	unsigned i;

	if (env_ready(&e, img, NULL)) {
		ok(0, "set-up for hostile admin");
		env_free(&e);
		return;
	}
	r = vdrv_alloc(&e.m, 0x10000, 4096);
	is_int(create_cq(&e, 0, 16, r, 0, true), ST(1, 0x01),
	       "create CQ 0: invalid queue identifier");
	is_int(create_cq(&e, 17, 16, r, 0, true), ST(1, 0x01),
	       "create CQ 17 > maxq");
	is_int(create_cq(&e, 1, 16, r, 0, true), ST(1, 0x01),
	       "create existing CQ 1");
	is_int(create_cq(&e, 2, 1, r, 0, true), ST(1, 0x02),
	       "CQ of 1 entry: invalid queue size");
	is_int(create_cq(&e, 2, 4096, r, 0, true), ST(1, 0x02),
	       "CQ beyond MQES: invalid queue size");
	is_int(create_cq(&e, 2, 16, outside, 0, true), ST(0, 0x02),
	       "CQ outside RAM: invalid field");
	is_int(create_cq(&e, 2, 512, VDRV_RAM - 4096, 0, true), ST(0, 0x02),
	       "CQ running off the end of RAM");
	is_int(create_cq(&e, 2, 16, r + 0x100, 0, true), ST(0, 0x02),
	       "misaligned CQ: invalid field");
	is_int(create_cq(&e, 2, 16, r, 17, true), ST(1, 0x08),
	       "vector 17: invalid interrupt vector");
	c = mk(NVME_ADM_CREATE_CQ, 0);
	set_prp(&c, r, 0);
	c.dw[10] = 15u << 16 | 2;
	c.dw[11] = 2; /* not physically contiguous */
	is_int(admin(&e, c, NULL), ST(0, 0x02), "PC 0: invalid field");
	is_int(create_sq(&e, 2, 16, r, 2), ST(1, 0x00),
	       "SQ on a missing CQ: completion queue invalid");
	is_int(create_sq(&e, 2, 16, r, 0), ST(1, 0x00),
	       "SQ on the admin CQ: completion queue invalid");
	is_int(create_sq(&e, 2, 16, r, 300), ST(1, 0x00),
	       "SQ on CQ 300: completion queue invalid");
	is_int(create_sq(&e, 0, 16, r, 1), ST(1, 0x01), "create SQ 0");
	is_int(create_sq(&e, 1, 16, r, 1), ST(1, 0x01), "create SQ 1 again");
	is_int(create_sq(&e, 99, 16, r, 1), ST(1, 0x01), "create SQ 99");
	is_int(create_sq(&e, 2, 16, outside, 1), ST(0, 0x02), "SQ outside RAM");
	is_int(delete_q(&e, NVME_ADM_DELETE_SQ, 0), ST(1, 0x01), "delete SQ 0");
	is_int(delete_q(&e, NVME_ADM_DELETE_SQ, 3), ST(1, 0x01),
	       "delete a missing SQ");
	is_int(delete_q(&e, NVME_ADM_DELETE_SQ, 0xffff), ST(1, 0x01),
	       "delete SQ 65535");
	is_int(delete_q(&e, NVME_ADM_DELETE_CQ, 1), ST(1, 0x0c),
	       "delete a CQ with an SQ: invalid queue deletion");
	is_int(delete_q(&e, NVME_ADM_DELETE_CQ, 0), ST(1, 0x01), "delete CQ 0");
	is_int(delete_q(&e, NVME_ADM_DELETE_CQ, 7), ST(1, 0x01),
	       "delete a missing CQ");
	c = mk(0xc0, 0);
	is_int(admin(&e, c, NULL), ST(0, 0x01), "unknown admin opcode");
	c = mk(NVME_ADM_FORMAT_NVM, 1);
	is_int(admin(&e, c, NULL), ST(0, 0x01), "Format NVM: opcode");
	c = mk(NVME_ADM_IDENTIFY, 0);
	set_prp(&c, outside, 0);
	c.dw[10] = NVME_CNS_CTRL;
	is_int(admin(&e, c, NULL), ST(0, 0x04), "Identify to outside RAM");
	c = mk(NVME_ADM_IDENTIFY, 0);
	set_prp(&c, e.id + 0x800, outside);
	c.dw[10] = NVME_CNS_CTRL;
	is_int(admin(&e, c, NULL), ST(0, 0x04), "Identify PRP2 outside");
	c.dw[0] |= 1u << 15;
	is_int(admin(&e, c, NULL), ST(0, 0x02), "admin with SGL: field");
	c = mk(NVME_ADM_GET_LOG_PAGE, 0);
	set_prp(&c, e.id, 0);
	c.dw[10] = 127u << 16 | 0x70;
	is_int(admin(&e, c, NULL), ST(1, 0x09), "log page 0x70: invalid");
	c.dw[10] = 127u << 16 | NVME_LOG_SMART;
	c.dw[12] = 1024;
	is_int(admin(&e, c, NULL), ST(0, 0x02), "log offset past the end");
	c.dw[12] = 2;
	is_int(admin(&e, c, NULL), ST(0, 0x02), "log offset not dwords");
	c = mk(NVME_ADM_SET_FEATURES, 0);
	c.dw[10] = 0x7e;
	is_int(admin(&e, c, NULL), ST(0, 0x02), "unknown feature");
	c.dw[10] = NVME_FEAT_ARBITRATION | 1u << 31;
	is_int(admin(&e, c, NULL), ST(1, 0x0d), "save: not saveable");
	c.dw[10] = NVME_FEAT_NUM_QUEUES;
	c.dw[11] = 3;
	is_int(admin(&e, c, NULL), ST(0, 0x0c),
	       "number of queues after queues exist: sequence error");
	c.dw[10] = NVME_FEAT_POWER_MGMT;
	c.dw[11] = 1;
	is_int(admin(&e, c, NULL), ST(0, 0x02), "power state 1: field");
	c.dw[10] = NVME_FEAT_INT_VECTOR;
	c.dw[11] = 40;
	is_int(admin(&e, c, NULL), ST(0, 0x02), "vector config for 40");
	c = mk(NVME_ADM_GET_FEATURES, 0);
	c.dw[10] = NVME_FEAT_ARBITRATION | 5u << 8;
	is_int(admin(&e, c, NULL), ST(0, 0x02), "Get Features select 5");
	c = mk(NVME_ADM_ABORT, 0);
	c.dw[10] = 1u << 16 | 1;
	dw0 = 0;
	is_int(admin(&e, c, &dw0), 0, "Abort completes");
	is_int(dw0 & 1, 1, "and says not aborted");
	c = mk(NVME_ADM_DBBUF_CONFIG, 0);
	set_prp(&c, e.lists + 8, e.lists + 0x1000);
	is_int(admin(&e, c, NULL), ST(0, 0x02),
	       "doorbell buffer misaligned: invalid field");
	set_prp(&c, outside, e.lists);
	is_int(admin(&e, c, NULL), ST(0, 0x02), "doorbell buffer outside");
	/* five AERs: the fifth is over the limit */
	for (i = 0; i < NVME_AER_MAX; i++) {
		struct cmd a = mk(NVME_ADM_ASYNC_EVENT, 0);

		admin_submit(&e, &a);
	}
	{
		uint32_t out[4];

		usleep(5000);
		ok(!admin_reap(&e, out, 5), "AERs are held");
	}
	c = mk(NVME_ADM_ASYNC_EVENT, 0);
	is_int(admin(&e, c, NULL), ST(1, 0x05), "fifth AER: limit exceeded");
	is_int(rd32(&e, NVME_REG_CSTS), NVME_CSTS_RDY, "still ready");
	env_free(&e);
}

/* Bad doorbells: ignored, a warning, an async event. */
static void test_doorbells(const char *img)
{
	struct env e;
	struct cmd c;
	uint32_t out[4];
	uint16_t aer;

	if (env_ready(&e, img, NULL)) {
		ok(0, "set-up for doorbells");
		env_free(&e);
		return;
	}
	c = mk(NVME_ADM_ASYNC_EVENT, 0);
	aer = admin_submit(&e, &c);
	wr32(&e, NVME_SQ_TDBL(1), 64);
	ok(admin_reap(&e, out, 100), "SQ tail = size: an async event");
	is_int(out[3] & 0xffff, aer, "completing the AER");
	is_int(out[0],
	       NVME_AE_TYPE_ERROR | NVME_AE_INFO_BAD_DB_VALUE << 8 |
		       NVME_LOG_ERROR << 16,
	       "error event, invalid doorbell value, log page 1");
	c = mk(NVME_ADM_ASYNC_EVENT, 0);
	aer = admin_submit(&e, &c);
	wr32(&e, NVME_SQ_TDBL(5), 1);
	ok(!admin_reap(&e, out, 20), "masked until the log page is read");
	c = mk(NVME_ADM_GET_LOG_PAGE, 0);
	set_prp(&c, e.id, 0);
	c.dw[10] = 15u << 16 | NVME_LOG_ERROR;
	memset(gp(&e, e.id), 0xee, 64);
	is_int(admin(&e, c, NULL), 0, "read the error log");
	ok(dimg_all_bytes(gp(&e, e.id), 0, 64), "an empty error entry");
	wr32(&e, NVME_SQ_TDBL(5), 1);
	ok(admin_reap(&e, out, 100), "missing SQ's doorbell: an event");
	is_int(out[3] & 0xffff, aer, "completing the second AER");
	is_int(out[0],
	       NVME_AE_TYPE_ERROR | NVME_AE_INFO_BAD_DB_REG << 8 |
		       NVME_LOG_ERROR << 16,
	       "invalid doorbell register");
	wr32(&e, NVME_CQ_HDBL(1), 5); /* nothing posted yet */
	wr32(&e, NVME_CQ_HDBL(1), 1000);
	wr32(&e, NVME_SQ_TDBL(200), 1);
	wr32(&e, NVME_SQ_TDBL(0), AQ_SIZE);
	wr32(&e, NVME_CQ_HDBL(0), 7);
	vdrv_mmio(&e.m, e.bar0 + NVME_SQ_TDBL(1), 2, true, 1);
	vdrv_mmio(&e.m, e.bar0 + NVME_SQ_TDBL(1) + 1, 4, true, 1);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 1, e.buf, 0), 0,
	       "queues still work after bad doorbells");
	is_int(identify(&e, NVME_CNS_CTRL, 0), 0, "admin queue too");
	/* doorbell writes before enable / after disable are ignored */
	wr32(&e, NVME_REG_CC, 0);
	wr32(&e, NVME_SQ_TDBL(0), 3);
	wr32(&e, NVME_SQ_TDBL(1), 3);
	is_int(rd32(&e, NVME_REG_CSTS), 0, "disabled controller ignores them");
	env_free(&e);
}

static void test_enable_errors(const char *img)
{
	struct env e;

	if (env_new(&e, img, NULL)) {
		ok(0, "machine");
		return;
	}
	wr32(&e, NVME_REG_AQA, 0);
	wr64(&e, NVME_REG_ASQ, e.asq);
	wr64(&e, NVME_REG_ACQ, e.acq);
	wr32(&e, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	is_int(rd32(&e, NVME_REG_CSTS), NVME_CSTS_CFS,
	       "1-entry admin queues: CFS, not ready");
	wr32(&e, NVME_REG_CC, 0);
	is_int(rd32(&e, NVME_REG_CSTS), 0, "EN 0 clears CFS");
	wr32(&e, NVME_REG_AQA, 0x001f001f);
	wr64(&e, NVME_REG_ASQ, VDRV_RAM + 0x1000ull);
	wr32(&e, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	is_int(rd32(&e, NVME_REG_CSTS), NVME_CSTS_CFS,
	       "admin SQ outside RAM: CFS");
	wr32(&e, NVME_REG_CC, 0);
	wr64(&e, NVME_REG_ASQ, e.asq);
	wr32(&e, NVME_REG_CC, NVME_CC_EN | 5u << 7);
	is_int(rd32(&e, NVME_REG_CSTS), NVME_CSTS_CFS, "MPS 5: CFS");
	wr32(&e, NVME_REG_CC, 0);
	wr32(&e, NVME_REG_CC, NVME_CC_EN | 1u << 4);
	is_int(rd32(&e, NVME_REG_CSTS), NVME_CSTS_CFS, "CSS 1: CFS");
	wr32(&e, NVME_REG_CC, 0);
	is_int(enable(&e, 0), NVME_CSTS_RDY, "a good enable works after");
	/* I/O queues need IOSQES/IOCQES of 64/16 bytes */
	wr32(&e, NVME_REG_CC, 0);
	wr32(&e, NVME_REG_CC, NVME_CC_EN);
	e.asqt = e.acqh = 0;
	e.aphase = true;
	memset(gp(&e, e.acq), 0, 4096);
	is_int(create_cq(&e, 1, 16, e.lists, 1, true), ST(0, 0x02),
	       "CC.IOCQES 0: CQ creation refused");
	env_free(&e);
}

/* 8 KiB pages (CC.MPS 1): PRP offsets and lists follow the page size. */
static void test_mps(const char *img)
{
	struct env e;
	uint64_t b;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_new(&e, img, NULL) || enable(&e, 1) != NVME_CSTS_RDY) {
		ok(0, "enable with 8 KiB pages");
		env_free(&e);
		return;
	}
	msix_setup(&e, 17);
	b = e.buf;
	is_int(mkq(&e, 1, 16, 16, 1), 0, "queues with 8 KiB pages");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 16, b, 0), 0,
	       "8 KiB from PRP1 alone (one page)");
	ok(is_pattern(gp(&e, b), 0, 8192), "data");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 32, b, b + 0x1000), ST(0, 0x13),
	       "PRP2 4 KiB aligned but not 8 KiB: invalid PRP offset");
	memset(gp(&e, b), 0, 0x8000);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 24, b + 0x1000, b + 0x4000), 0,
	       "PRP1 at offset 4 KiB + PRP2");
	ok(is_pattern(gp(&e, b + 0x1000), 0, 4096) &&
		   is_pattern(gp(&e, b + 0x4000), 4096, 8192),
	   "split at the 8 KiB page boundary");
	env_free(&e);
}

static void test_dbbuf(const char *img, bool iofd)
{
	struct env e;
	struct cmd c;
	uint64_t sh, ei;
	uint32_t out[4];
	unsigned i, regs;
	int kfd = -1;

	dimg_make(img, IMG_SIZE, dimg_pat);
	niofd = 0;
	if (env_new_x(&e, img, NULL, iofd) || (msix_setup(&e, 17), 0) ||
	    enable(&e, 0) != NVME_CSTS_RDY || mkq(&e, 1, 16, 16, 1)) {
		ok(0, "set-up for shadow doorbells");
		env_free(&e);
		return;
	}
	is_int(niofd, 0, "no ioeventfd before the doorbell buffer");
	sh = vdrv_alloc(&e.m, 4096, 4096);
	ei = vdrv_alloc(&e.m, 4096, 4096);
	memset(gp(&e, sh), 0xff, 4096);
	memset(gp(&e, ei), 0xff, 4096);
	c = mk(NVME_ADM_DBBUF_CONFIG, 0);
	set_prp(&c, sh, ei);
	is_int(admin(&e, c, NULL), 0, "Doorbell Buffer Config");
	is_int(db_get(&e, sh + 8), 0, "shadow SQ 1 tail starts at ours");
	is_int(db_get(&e, ei + 8), 0, "EventIdx SQ 1 too");
	if (iofd) {
		regs = 0;
		for (i = 0; i < niofd; i++) {
			regs += iofds[i].len == 4 &&
				iofds[i].addr >= e.bar0 + NVME_SQ_TDBL(1) &&
				iofds[i].addr <= e.bar0 + NVME_SQ_TDBL(16) &&
				(iofds[i].addr - e.bar0) % 8 == 0;
			if (iofds[i].addr == e.bar0 + NVME_SQ_TDBL(1))
				kfd = iofds[i].fd;
		}
		is_int(regs, 16, "16 SQ tail doorbells are ioeventfds");
		ok(kfd >= 0, "SQ 1's among them");
	}
	mkq(&e, 2, 16, 16, 2);
	is_int(db_get(&e, sh + 16), 0, "a new SQ's shadow entry is reset");
	/* a submission through the shadow */
	c = rw_cmd(NVME_IO_READ, 3, 1, e.buf, 0);
	io_push(&e, 1, &c);
	db_put(&e, sh + 8, e.q[1].sqt);
	if (iofd) {
		uint64_t one = 1;

		ok(write(kfd, &one, 8) == 8, "the 'guest' rings (eventfd)");
	} else {
		wr32(&e, NVME_SQ_TDBL(1), 0xdead); /* value from shadow */
	}
	ok(io_reap(&e, 1, out, false), "the command ran");
	is_int(status_of(out), 0, "successfully");
	ok(is_pattern(gp(&e, e.buf), 3 * 512, 512), "data");
	is_int(db_get(&e, ei + 8), e.q[1].sqt, "EventIdx moved to the tail");
	db_put(&e, sh + 12, e.q[1].cqh);
	wr32(&e, NVME_CQ_HDBL(1), e.q[1].cqh);
	/* two more, published in the shadow before one doorbell */
	for (i = 0; i < 2; i++) {
		c = rw_cmd(NVME_IO_READ, 4 + i, 1, e.buf + 4096 * i, 0);
		io_push(&e, 1, &c);
		db_put(&e, sh + 8, e.q[1].sqt);
	}
	wr32(&e, NVME_SQ_TDBL(1), 1); /* with ioeventfd: a plain write */
	ok(io_reap(&e, 1, out, true) && io_reap(&e, 1, out, true), "both ran");
	/* a shadow tail beyond the queue: ignored */
	db_put(&e, sh + 8, 99);
	wr32(&e, NVME_SQ_TDBL(1), 99);
	db_put(&e, sh + 8, e.q[1].sqt);
	c = rw_cmd(NVME_IO_READ, 0, 1, e.buf, 0);
	io_push(&e, 2, &c);
	io_ring(&e, 2);
	usleep(20000);
	ok(!cqe_take(&e, e.q[2].cq, 16, &e.q[2].cqh, &e.q[2].phase, out),
	   "SQ 2's doorbell without a shadow tail update runs nothing");
	db_put(&e, sh + 16, e.q[2].sqt);
	io_ring(&e, 2);
	ok(io_reap(&e, 2, out, true), "it runs once the shadow has it");
	/* reset: shadow doorbells and their ioeventfds go away */
	wr32(&e, NVME_REG_CC, 0);
	is_int(niofd, 0, "reset removes the ioeventfds");
	is_int(enable(&e, 0), NVME_CSTS_RDY, "re-enabled");
	mkq(&e, 1, 16, 16, 1);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 1, e.buf, 0), 0,
	       "plain doorbells again after reset");
	env_free(&e);
}

/* KVM refusing an ioeventfd: all are rolled back, MMIO doorbells work. */
static void test_dbbuf_iofd_fail(const char *img)
{
	struct env e;
	struct cmd c;
	uint64_t sh, ei;
	uint32_t out[4];

	niofd = 0;
	iofd_fail_at = 3;
	if (env_new_x(&e, img, NULL, true) || (msix_setup(&e, 17), 0) ||
	    enable(&e, 0) != NVME_CSTS_RDY || mkq(&e, 1, 16, 16, 1)) {
		ok(0, "set-up for a failing ioeventfd");
		env_free(&e);
		iofd_fail_at = -1;
		return;
	}
	sh = vdrv_alloc(&e.m, 4096, 4096);
	ei = vdrv_alloc(&e.m, 4096, 4096);
	c = mk(NVME_ADM_DBBUF_CONFIG, 0);
	set_prp(&c, sh, ei);
	is_int(admin(&e, c, NULL), 0, "Doorbell Buffer Config still works");
	is_int(niofd, 0, "the 3 registered ioeventfds were rolled back");
	c = rw_cmd(NVME_IO_READ, 1, 1, e.buf, 0);
	io_push(&e, 1, &c);
	db_put(&e, sh + 8, e.q[1].sqt);
	wr32(&e, NVME_SQ_TDBL(1), e.q[1].sqt);
	ok(io_reap(&e, 1, out, true) && status_of(out) == 0,
	   "I/O through the shadow and an MMIO doorbell");
	env_free(&e);
	iofd_fail_at = -1;
}

/* Reset (CC.EN 1 -> 0) with I/O in flight. */
static void test_reset_inflight(const char *img, long delay_us)
{
	static const char *const x[] = {"ioslots", "32", NULL};
	uint8_t before[16 * 64];
	struct env e;
	uint32_t out[4];
	unsigned i, done = 0;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_new(&e, img, x) || (msix_setup(&e, 17), 0) ||
	    enable(&e, 0) != NVME_CSTS_RDY || mkq(&e, 1, 64, 64, 1)) {
		ok(0, "set-up for reset");
		env_free(&e);
		return;
	}
	for (i = 0; i < 32; i++) {
		struct cmd c;
		unsigned k;

		for (k = 0; k < 32; k++)
			put_u64(&e, e.lists + 256ull * i + 8 * k,
				e.buf + 131072ull * i + 4096ull * (k + 1));
		c = i % 4 ? rw_cmd(NVME_IO_READ, 256ull * i, 256,
				   e.buf + 131072ull * i, e.lists + 256ull * i)
			  : mk(NVME_IO_FLUSH, 1);
		io_push(&e, 1, &c);
	}
	io_ring(&e, 1);
	nanosleep(&(struct timespec){0, delay_us * 1000}, NULL);
	wr32(&e, NVME_REG_CC, 0); /* returns once in-flight I/O drained */
	is_int(rd32(&e, NVME_REG_CSTS) & NVME_CSTS_RDY, 0, "RDY clears");
	memcpy(before, gp(&e, e.q[1].cq), sizeof(before));
	usleep(50000);
	ok(memcmp(before, gp(&e, e.q[1].cq), sizeof(before)) == 0,
	   "no completion written after the reset returned");
	while (cqe_take(&e, e.q[1].cq, 64, &e.q[1].cqh, &e.q[1].phase, out))
		done++;
	ok(done <= 32, "at most one completion per command");
	diag("%u of 32 completed before the reset (after %ld us)", done,
	     delay_us);
	wr32(&e, NVME_SQ_TDBL(1), 1);
	is_int(rd32(&e, NVME_REG_CSTS), 0, "doorbells of a reset queue: no");
	is_int(enable(&e, 0), NVME_CSTS_RDY, "enable again");
	is_int(mkq(&e, 1, 64, 64, 1), 0, "queue ids are free again");
	is_int(rw(&e, 1, NVME_IO_READ, 8, 8, e.buf, 0), 0,
	       "the device works after the reset");
	ok(is_pattern(gp(&e, e.buf), 4096, 4096), "with the right data");
	wr32(&e, NVME_REG_CC, 0);
	wr32(&e, NVME_REG_CC, 0);
	is_int(rd32(&e, NVME_REG_CSTS), 0, "idle resets too");
	env_free(&e);
}

/* Delete an SQ with I/O in flight, then its CQ. */
static void test_delete_inflight(const char *img)
{
	static const char *const x[] = {"ioslots", "16", NULL};
	struct env e;
	unsigned i;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_ready(&e, img, x)) {
		ok(0, "set-up for queue deletion");
		env_free(&e);
		return;
	}
	for (i = 0; i < 16; i++) {
		struct cmd c =
			rw_cmd(NVME_IO_READ, 16ull * i, 16, e.buf + 8192ull * i,
			       e.buf + 8192ull * i + 4096);

		io_push(&e, 1, &c);
	}
	io_ring(&e, 1);
	is_int(delete_q(&e, NVME_ADM_DELETE_SQ, 1), 0,
	       "delete SQ 1 with reads in flight");
	is_int(delete_q(&e, NVME_ADM_DELETE_CQ, 1), 0, "then its CQ");
	wr32(&e, NVME_SQ_TDBL(1), 1);
	is_int(mkq(&e, 1, 16, 16, 1), 0, "recreate queue pair 1");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 1, e.buf, 0), 0, "and use it");
	env_free(&e);
}

static void test_shutdown_features_logs(const char *img)
{
	struct env e;
	struct cmd c;
	uint32_t dw0 = 0;
	uint8_t *d;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_ready(&e, img, NULL)) {
		ok(0, "set-up for features");
		env_free(&e);
		return;
	}
	d = gp(&e, e.id);
	c = mk(NVME_ADM_GET_FEATURES, 0);
	c.dw[10] = NVME_FEAT_VOLATILE_WC;
	is_int(admin(&e, c, &dw0), 0, "get write cache");
	is_int(dw0, 1, "enabled by default");
	c = mk(NVME_ADM_SET_FEATURES, 0);
	c.dw[10] = NVME_FEAT_VOLATILE_WC;
	c.dw[11] = 0;
	is_int(admin(&e, c, NULL), 0, "turn it off");
	c = mk(NVME_ADM_GET_FEATURES, 0);
	c.dw[10] = NVME_FEAT_VOLATILE_WC;
	admin(&e, c, &dw0);
	is_int(dw0, 0, "now off");
	memset(gp(&e, e.buf), 0x3c, 4096);
	is_int(rw(&e, 1, NVME_IO_READ, 0, 8, e.buf + 8192, 0), 0, "a read");
	is_int(rw(&e, 1, NVME_IO_WRITE, 40, 8, e.buf, 0), 0,
	       "a write-through write");
	ok(dimg_file_is(e.fd, 40 * 512, gp(&e, e.buf), 4096),
	   "reached the image");
	c = rw_cmd(NVME_IO_WRITE, 48, 8, e.buf, 0);
	c.dw[12] |= 1u << 30;
	is_int(io(&e, 1, c), 0, "a FUA write");
	c = mk(NVME_ADM_SET_FEATURES, 0);
	c.dw[10] = NVME_FEAT_INT_COALESCING;
	c.dw[11] = 0x0a05;
	is_int(admin(&e, c, NULL), 0, "interrupt coalescing accepted");
	c.dw[10] = NVME_FEAT_ASYNC_EVENT;
	c.dw[11] = 0x1ff;
	is_int(admin(&e, c, NULL), 0, "async event config accepted");
	c = mk(NVME_ADM_GET_FEATURES, 0);
	c.dw[10] = NVME_FEAT_ASYNC_EVENT;
	admin(&e, c, &dw0);
	is_int(dw0, 0x1ff, "and kept");
	c.dw[10] = NVME_FEAT_ASYNC_EVENT | 1u << 8;
	admin(&e, c, &dw0);
	is_int(dw0, 0, "default 0");
	c.dw[10] = NVME_FEAT_ASYNC_EVENT | 3u << 8;
	admin(&e, c, &dw0);
	is_int(dw0, 4, "capabilities: changeable");
	/* logs */
	c = mk(NVME_ADM_GET_LOG_PAGE, 0);
	set_prp(&c, e.id, 0);
	c.dw[10] = 127u << 16 | NVME_LOG_SMART;
	is_int(admin(&e, c, NULL), 0, "SMART log");
	is_int(d[3], 100, "available spare 100%%");
	ok(get_u64(&e, e.id + 32) > 0, "data units read counted");
	ok(get_u64(&e, e.id + 48) > 0, "data units written counted");
	ok(get_u64(&e, e.id + 64) >= 1, "read commands counted");
	is_int(get_u64(&e, e.id + 80), 2, "two write commands");
	c.dw[10] = 127u << 16 | NVME_LOG_FW_SLOT;
	is_int(admin(&e, c, NULL), 0, "firmware slot log");
	is_int(d[0], 1, "slot 1 active");
	ok(memcmp(d + 8, "1.0     ", 8) == 0, "revision in slot 1");
	c.dw[10] = 1u << 16 | NVME_LOG_FW_SLOT;
	c.dw[12] = 8;
	memset(d, 0xee, 16);
	is_int(admin(&e, c, NULL), 0, "8 bytes at offset 8");
	ok(memcmp(d, "1.0     ", 8) == 0 && d[8] == 0xee, "just those");
	/* shutdown notification */
	wr32(&e, NVME_REG_CC, rd32(&e, NVME_REG_CC) | 1u << 14);
	is_int(rd32(&e, NVME_REG_CSTS) & NVME_CSTS_SHST_MASK,
	       NVME_CSTS_SHST_DONE, "shutdown complete");
	wr32(&e, NVME_REG_CC, 0);
	is_int(rd32(&e, NVME_REG_CSTS), 0, "disabled after shutdown");
	env_free(&e);
}

static void test_ro(const char *img)
{
	static const char *const x[] = {"ro", "true", NULL};
	struct env e;
	struct cmd c;

	dimg_make(img, IMG_SIZE, dimg_pat);
	if (env_ready(&e, img, x)) {
		ok(0, "set-up read-only");
		env_free(&e);
		return;
	}
	identify(&e, NVME_CNS_NS, 1);
	is_int(gp(&e, e.id)[NVME_IDN_NSATTR] & 1, 1, "NSATTR write protected");
	is_int(rw(&e, 1, NVME_IO_WRITE, 0, 1, e.buf, 0), ST(0, 0x20),
	       "write: namespace is write protected");
	c = rw_cmd(NVME_IO_WRITE_ZEROES, 0, 1, 0, 0);
	is_int(io(&e, 1, c), ST(0, 0x20), "write zeroes too");
	is_int(rw(&e, 1, NVME_IO_READ, 0, 1, e.buf, 0), 0, "reads work");
	ok(is_pattern(gp(&e, e.buf), 0, 512), "and the image is unchanged");
	env_free(&e);
}

static void test_legacy_opts(void)
{
	const struct devmodel *m = devmodel_find("nvme");
	struct cfg_node *root = cfg_new(), *n;
	const struct cfg_key *const sch[] = {m ? m->keys : NULL, NULL};
	static const char *const keys[] = {
		"ram",	 "maxq", "qsz",	 "ioslots", "sectsz", "ser",
		"eui64", "dsm",	 "path", "nocache", NULL};
	unsigned i, have = 0;

	ok(m && m->parse_legacy, "nvme model registered");
	if (!m || !root)
		return;
	n = cfg_create(root, "pci.0.4.0");
	is_int(m->parse_legacy(n, "/x/disk.img,maxq=4,qsz=64,ioslots=2,"
				  "sectsz=4096,ser=ABC,eui64=0x12,dsm=enable,"
				  "ro"),
	       0, "path and all keys parsed");
	is_str(cfg_get_raw(n, "path"), "/x/disk.img", "path");
	is_str(cfg_get_raw(n, "maxq"), "4", "maxq");
	is_str(cfg_get_raw(n, "qsz"), "64", "qsz");
	is_str(cfg_get_raw(n, "ioslots"), "2", "ioslots");
	is_str(cfg_get_raw(n, "sectsz"), "4096", "sectsz");
	is_str(cfg_get_raw(n, "ser"), "ABC", "ser");
	is_str(cfg_get_raw(n, "eui64"), "0x12", "eui64");
	is_str(cfg_get_raw(n, "dsm"), "enable", "dsm");
	is_str(cfg_get_raw(n, "ro"), "true", "ro");
	n = cfg_create(root, "pci.0.5.0");
	is_int(m->parse_legacy(n, "ram=64,maxq=2"), 0, "ram= form");
	is_str(cfg_get_raw(n, "ram"), "64", "ram");
	is_str(cfg_get_raw(n, "maxq"), "2", "and options after it");
	ok(cfg_get_raw(n, "path") == NULL, "no path");
	n = cfg_create(root, "pci.0.6.0");
	is_int(m->parse_legacy(n, "ram=16"), 0, "ram= alone");
	is_str(cfg_get_raw(n, "ram"), "16", "ram 16");
	ok(m->parse_legacy(cfg_create(root, "pci.0.7.0"), "/x/d.img,ser") < 0,
	   "bare ser refused");
	ok(m->parse_legacy(cfg_create(root, "pci.0.8.0"), "ram=8,maxq") < 0,
	   "bare maxq refused");
	is_int(m->parse_legacy(cfg_create(root, "pci.0.9.0"), NULL), 0,
	       "no options");
	for (i = 0; keys[i]; i++)
		have += cfg_schema_find(sch, keys[i]) != NULL;
	is_int(have, 10, "schema has nvme and block keys");
	cfg_free(root);
}

/* Each value must make machine creation fail. */
static void test_config_errors(const char *img)
{
	static const char *const bad[][2] = {
		{"maxq", "0"},	      {"maxq", "x"},	   {"qsz", "1"},
		{"qsz", "65537"},     {"ioslots", "0"},	   {"ioslots", "65"},
		{"sectsz", "1000"},   {"sectsz", "16384"}, {"dsm", "maybe"},
		{"eui64", "xyz"},     {"eui64", "0x1g"},   {"eui64", "-1"},
		{"ser", "A\tB"},      {"ram", "1"},	   {"sectorsize", "3"},
		{"nocache", "maybe"},
	};
	char missing[160];
	struct env e;
	unsigned i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *x[] = {bad[i][0], bad[i][1], NULL};

		ok(env_new(&e, img, x) != 0, "%s=%s refused", bad[i][0],
		   bad[i][1]);
		env_free(&e);
	}
	{
		static const char *const r0[] = {"ram", "0", NULL};
		static const char *const rbig[] = {"ram", "99999999", NULL};
		static const char *const q32[] = {"maxq", "32", NULL};

		ok(env_new(&e, NULL, r0) != 0, "ram=0 refused");
		env_free(&e);
		ok(env_new(&e, NULL, rbig) != 0, "ram beyond 1 TiB refused");
		env_free(&e);
		is_int(env_new(&e, img, q32), 0, "maxq=32 is clamped (bhyve)");
		is_int((cfgr(&e, e.msix_cap + 2, 2) & 0x7ff) + 1, 17,
		       "to 16 queues");
		env_free(&e);
	}
	snprintf(missing, sizeof(missing), "%s/nope.img", tmpdir);
	ok(env_new(&e, missing, NULL) != 0, "missing image refused");
	env_free(&e);
	ok(env_new(&e, NULL, NULL) != 0, "neither path nor ram refused");
	env_free(&e);
}

int main(void)
{
	char img[128];

	plan_no_plan();
	dimg_tmpdir(tmpdir, sizeof(tmpdir), "t_nvme");
	snprintf(img, sizeof(img), "%s/disk.img", tmpdir);
	if (dimg_make(img, IMG_SIZE, dimg_pat))
		skip_all("cannot create the image");

	test_legacy_opts();
	test_pci(img);
	test_identify(img, 512);
	test_identify(img, 4096);
	test_identify_custom(img);
	test_rw(img, 512);
	test_rw(img, 4096);
	test_flush_dsm_wz(img);
	test_ram();
	test_8k(img);
	test_inflight(img);
	test_irqs(img);
	test_hostile_io(img);
	test_hostile_admin(img);
	test_doorbells(img);
	test_enable_errors(img);
	test_mps(img);
	test_dbbuf(img, false);
	test_dbbuf(img, true);
	test_dbbuf_iofd_fail(img);
	test_reset_inflight(img, 0);
	test_reset_inflight(img, 300);
	test_delete_inflight(img);
	test_shutdown_features_logs(img);
	test_ro(img);
	test_config_errors(img);

	unlink(img);
	rmdir(tmpdir);
	return done_testing();
}
