/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A small virtio-pci driver for the test guests (virtio 1.2 §4.1 and the
 * split virtqueue of §2.7).  It finds a function by vendor 0x1af4 and
 * device/subsystem ID, maps the modern interface from the vendor
 * capabilities (or the legacy I/O BAR0 of a transitional device), does
 * reset, ACKNOWLEDGE, DRIVER, feature negotiation with FEATURES_OK, sets up
 * split rings in RAM from dma_alloc(), sets DRIVER_OK, submits chains and
 * polls the used ring.  No interrupts: MSI-X stays disabled, every vector
 * is NO_VECTOR and the avail ring asks for no interrupts.
 *
 * Everything the device returns is checked (capability offsets against
 * the BAR sizes, used ids against the chains in flight) and reported as
 * an error, never trusted blindly.
 *
 * State: the caller's struct vio_dev.  BSP only, no locks.  The hot-path
 * calls (vio_submit, vio_kick on a modern device, vio_get_used) touch only
 * memory and MMIO, so ring-3 code may use them after a ring-0 set-up.
 */
#include "guest.h"

/* Common configuration registers (§4.1.4.3) */
#define COMMON_DFSELECT 0x00
#define COMMON_DF 0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_NUMQ 0x12
#define COMMON_STATUS 0x14
#define COMMON_CFGGEN 0x15
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF 0x1e
#define COMMON_Q_DESC 0x20
#define COMMON_Q_DRIVER 0x28
#define COMMON_Q_DEVICE 0x30
#define COMMON_MIN_LEN 0x38

/* Vendor capability (§4.1.4) */
#define CAP_CFG_TYPE 3
#define CAP_BAR 4
#define CAP_OFFSET 8
#define CAP_LENGTH 12
#define CAP_NOTIFY_MULT 16
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4

/* Legacy I/O registers (§4.1.4.8), MSI-X off */
#define LEG_HOST_FEATURES 0
#define LEG_GUEST_FEATURES 4
#define LEG_QUEUE_PFN 8
#define LEG_QUEUE_NUM 12
#define LEG_QUEUE_SEL 14
#define LEG_QUEUE_NOTIFY 16
#define LEG_STATUS 18
#define LEG_CONFIG 20
#define LEG_ALIGN 4096

#define NO_VECTOR 0xffff
#define FOUR_GIB 0x100000000ull

static inline void barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

static inline void full_fence(void)
{
	__asm__ volatile("mfence" ::: "memory");
}

/* ---- discovery ---------------------------------------------------------- */

static bool is_match(unsigned int dev, unsigned int fn, uint16_t virtio_id,
		     uint16_t *devid)
{
	uint32_t id = pci_cfg_read32(0, dev, fn, 0);
	uint16_t d = (uint16_t)(id >> 16);

	if ((id & 0xffff) != VIRTIO_VENDOR)
		return false;
	*devid = d;
	if (d == 0x1040 + virtio_id)
		return true;
	return d >= 0x1000 && d <= 0x103f &&
	       pci_cfg_read16(0, dev, fn, 0x2e) == virtio_id;
}

int vio_find(uint16_t virtio_id, unsigned int nth, struct vio_dev *vd)
{
	unsigned int dev, fn, nfn;
	uint16_t devid;

	mem_clear(vd, sizeof(*vd));
	for (dev = 0; dev < 32; dev++) {
		if (!pci_func_present(0, dev, 0))
			continue;
		nfn = pci_cfg_read8(0, dev, 0, 0x0e) & 0x80 ? 8 : 1;
		for (fn = 0; fn < nfn; fn++) {
			if (!pci_func_present(0, dev, fn) ||
			    !is_match(dev, fn, virtio_id, &devid))
				continue;
			if (nth--)
				continue;
			vd->bus = 0;
			vd->dev = (uint8_t)dev;
			vd->fn = (uint8_t)fn;
			vd->pci_device = devid;
			vd->virtio_id = virtio_id;
			return 0;
		}
	}
	return -GUEST_ENOENT;
}

struct bar_cache {
	bool probed[6];
	int err[6];
	struct pci_bar_info bar[6];
};

static int cached_bar(struct vio_dev *vd, struct bar_cache *bc,
		      unsigned int idx, const struct pci_bar_info **out)
{
	if (!bc->probed[idx]) {
		bc->probed[idx] = true;
		bc->err[idx] = pci_bar_probe(vd->bus, vd->dev, vd->fn, idx,
					     &bc->bar[idx]);
	}
	*out = &bc->bar[idx];
	return bc->err[idx];
}

/*
 * Resolve a vendor capability to an address: the BAR must be a memory
 * BAR, assigned, the window inside it and below 4 GiB.
 */
static int map_cap(struct vio_dev *vd, struct bar_cache *bc, unsigned int c,
		   const char *what, uint32_t min_len, uint64_t *addr,
		   uint32_t *len, bool verbose)
{
	unsigned int b = vd->bus, d = vd->dev, f = vd->fn;
	uint8_t bar_idx = pci_cfg_read8(b, d, f, c + CAP_BAR);
	uint32_t off = pci_cfg_read32(b, d, f, c + CAP_OFFSET);
	uint32_t length = pci_cfg_read32(b, d, f, c + CAP_LENGTH);
	const struct pci_bar_info *bar;
	int rc;

	if (bar_idx > 5) {
		printf("virtio: %s capability names BAR %u\n", what, bar_idx);
		return -GUEST_EINVAL;
	}
	rc = cached_bar(vd, bc, bar_idx, &bar);
	if (rc) {
		printf("virtio: BAR%u of the %s capability: bad (%d)\n",
		       bar_idx, what, rc);
		return rc;
	}
	if (bar->type != PCI_BAR_MEM32 && bar->type != PCI_BAR_MEM64) {
		printf("virtio: %s capability in BAR%u, not a memory BAR\n",
		       what, bar_idx);
		return -GUEST_ENOTSUP;
	}
	if (length < min_len || (uint64_t)off + length > bar->size) {
		printf("virtio: %s window 0x%x+0x%x does not fit BAR%u "
		       "(0x%lx bytes) or is shorter than 0x%x\n",
		       what, off, length, bar_idx, bar->size, min_len);
		return -GUEST_EINVAL;
	}
	if (bar->addr == 0) {
		printf("virtio: BAR%u is not assigned\n", bar_idx);
		return -GUEST_ENODEV;
	}
	if (bar->addr + off + length > FOUR_GIB) {
		printf("virtio: BAR%u at 0x%lx is above 4 GiB; this guest maps "
		       "only the low 4 GiB\n",
		       bar_idx, bar->addr);
		return -GUEST_ERANGE;
	}
	*addr = bar->addr + off;
	*len = length;
	if (verbose)
		printf("virtio:   %-6s BAR%u+0x%04x len 0x%x -> 0x%lx\n", what,
		       bar_idx, off, length, *addr);
	return 0;
}

static int probe_modern(struct vio_dev *vd, bool verbose)
{
	unsigned int b = vd->bus, d = vd->dev, f = vd->fn;
	unsigned int found = 0;
	struct bar_cache bc;
	uint32_t len, isr_len;
	uint8_t type, clen;
	int c = 0, rc;

	mem_clear(&bc, sizeof(bc));
	for (;;) {
		c = pci_cap_next(b, d, f, (unsigned int)c);
		if (c < 0) {
			printf("virtio: malformed capability list\n");
			return c;
		}
		if (c == 0)
			break;
		if (pci_cfg_read8(b, d, f, (unsigned int)c) == PCI_CAP_ID_MSIX)
			vd->has_msix = true;
		if (pci_cfg_read8(b, d, f, (unsigned int)c) != PCI_CAP_ID_VNDR)
			continue;
		clen = pci_cfg_read8(b, d, f, (unsigned int)c + 2);
		type = pci_cfg_read8(b, d, f, (unsigned int)c + CAP_CFG_TYPE);
		if (clen < 16) {
			printf("virtio: vendor capability at 0x%x is %u "
			       "bytes\n",
			       c, clen);
			return -GUEST_EINVAL;
		}
		/* The first capability of each type is the one to use. */
		if (type < 1 || type > 4 || (found & (1u << type)))
			continue;
		switch (type) {
		case CAP_COMMON:
			rc = map_cap(vd, &bc, (unsigned int)c, "common",
				     COMMON_MIN_LEN, &vd->common, &len,
				     verbose);
			break;
		case CAP_NOTIFY:
			if (clen < 20) {
				printf("virtio: notify capability is %u "
				       "bytes\n",
				       clen);
				return -GUEST_EINVAL;
			}
			vd->notify_mult = pci_cfg_read32(
				b, d, f, (unsigned int)c + CAP_NOTIFY_MULT);
			rc = map_cap(vd, &bc, (unsigned int)c, "notify", 2,
				     &vd->notify_base, &vd->notify_len,
				     verbose);
			break;
		case CAP_ISR:
			rc = map_cap(vd, &bc, (unsigned int)c, "isr", 1,
				     &vd->isr, &isr_len, verbose);
			break;
		default:
			rc = map_cap(vd, &bc, (unsigned int)c, "device", 0,
				     &vd->devcfg, &vd->devcfg_len, verbose);
			break;
		}
		if (rc)
			return rc;
		found |= 1u << type;
	}
	if (!(found & (1u << CAP_COMMON)) || !(found & (1u << CAP_NOTIFY)) ||
	    !(found & (1u << CAP_ISR))) {
		printf("virtio: %02x:%02x.%u lacks a modern interface "
		       "(capabilities found: 0x%x)\n",
		       b, d, f, found);
		return -GUEST_ENODEV;
	}
	pci_cmd_set(b, d, f, PCI_CMD_MEM | PCI_CMD_MASTER);
	vd->num_queues = mmio_read16(vd->common + COMMON_NUMQ);
	if (verbose)
		printf("virtio:   notify multiplier %u, %u queues\n",
		       vd->notify_mult, vd->num_queues);
	return 0;
}

static int probe_legacy(struct vio_dev *vd, bool verbose)
{
	struct pci_bar_info bar;
	int rc, c = 0;

	if (vd->pci_device < 0x1000 || vd->pci_device > 0x103f) {
		printf("virtio: device 0x%04x is not transitional: no legacy "
		       "interface\n",
		       vd->pci_device);
		return -GUEST_ENODEV;
	}
	rc = pci_bar_probe(vd->bus, vd->dev, vd->fn, 0, &bar);
	if (rc || bar.type != PCI_BAR_IO || bar.size < LEG_CONFIG ||
	    bar.addr == 0 || bar.addr + bar.size > 0x10000) {
		printf("virtio: BAR0 is not a usable legacy I/O BAR "
		       "(type %d, 0x%lx+0x%lx, %d)\n",
		       bar.type, bar.addr, bar.size, rc);
		return -GUEST_ENODEV;
	}
	while ((c = pci_cap_next(vd->bus, vd->dev, vd->fn, (unsigned int)c)) >
	       0)
		if (pci_cfg_read8(vd->bus, vd->dev, vd->fn, (unsigned int)c) ==
		    PCI_CAP_ID_MSIX)
			vd->has_msix = true;
	vd->io = (uint16_t)bar.addr;
	pci_cmd_set(vd->bus, vd->dev, vd->fn, PCI_CMD_IO | PCI_CMD_MASTER);
	if (verbose)
		printf("virtio:   legacy I/O BAR0 at 0x%x (%lu bytes)\n",
		       vd->io, bar.size);
	return 0;
}

int vio_probe(struct vio_dev *vd, bool legacy, bool verbose)
{
	vd->legacy = legacy;
	if (verbose)
		printf("virtio: %02x:%02x.%u %04x:%04x (virtio id %u), %s "
		       "interface\n",
		       vd->bus, vd->dev, vd->fn, VIRTIO_VENDOR, vd->pci_device,
		       vd->virtio_id, legacy ? "legacy" : "modern");
	return legacy ? probe_legacy(vd, verbose) : probe_modern(vd, verbose);
}

/* ---- status and features ------------------------------------------------ */

uint8_t vio_get_status(struct vio_dev *vd)
{
	if (vd->legacy)
		return inb((uint16_t)(vd->io + LEG_STATUS));
	return mmio_read8(vd->common + COMMON_STATUS);
}

static void set_status(struct vio_dev *vd, uint8_t st)
{
	if (vd->legacy)
		outb((uint16_t)(vd->io + LEG_STATUS), st);
	else
		mmio_write8(vd->common + COMMON_STATUS, st);
}

int vio_reset(struct vio_dev *vd)
{
	unsigned int i;

	set_status(vd, 0);
	for (i = 0; i < 100000; i++) {
		if (vio_get_status(vd) == 0)
			return 0;
		cpu_relax();
	}
	return -GUEST_ETIMEDOUT;
}

static uint64_t read_offered(struct vio_dev *vd)
{
	uint64_t lo, hi;

	if (vd->legacy)
		return inl((uint16_t)(vd->io + LEG_HOST_FEATURES));
	mmio_write32(vd->common + COMMON_DFSELECT, 0);
	lo = mmio_read32(vd->common + COMMON_DF);
	mmio_write32(vd->common + COMMON_DFSELECT, 1);
	hi = mmio_read32(vd->common + COMMON_DF);
	return lo | hi << 32;
}

int vio_start(struct vio_dev *vd, uint64_t want)
{
	uint8_t st;
	int rc;

	rc = vio_reset(vd);
	if (rc)
		return rc;
	set_status(vd, VIRTIO_STATUS_ACK);
	set_status(vd, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	vd->offered = read_offered(vd);
	if (vd->legacy) {
		vd->features = want & vd->offered & 0xffffffffull;
		outl((uint16_t)(vd->io + LEG_GUEST_FEATURES),
		     (uint32_t)vd->features);
		return 0;
	}
	if (!(vd->offered & VIRTIO_BIT(VIRTIO_F_VERSION_1))) {
		set_status(vd, VIRTIO_STATUS_FAILED);
		return -GUEST_ENOTSUP;
	}
	vd->features = (want | VIRTIO_BIT(VIRTIO_F_VERSION_1)) & vd->offered;
	mmio_write32(vd->common + COMMON_GFSELECT, 0);
	mmio_write32(vd->common + COMMON_GF, (uint32_t)vd->features);
	mmio_write32(vd->common + COMMON_GFSELECT, 1);
	mmio_write32(vd->common + COMMON_GF, (uint32_t)(vd->features >> 32));
	st = VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
	     VIRTIO_STATUS_FEATURES_OK;
	set_status(vd, st);
	if (!(vio_get_status(vd) & VIRTIO_STATUS_FEATURES_OK)) {
		set_status(vd, st | VIRTIO_STATUS_FAILED);
		return -GUEST_EIO;
	}
	mmio_write16(vd->common + COMMON_MSIX, NO_VECTOR);
	return 0;
}

int vio_driver_ok(struct vio_dev *vd)
{
	uint8_t st;

	set_status(vd, (uint8_t)(vio_get_status(vd) | VIRTIO_STATUS_DRIVER_OK));
	st = vio_get_status(vd);
	if (st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED) ||
	    !(st & VIRTIO_STATUS_DRIVER_OK))
		return -GUEST_EIO;
	return 0;
}

/* ---- device configuration ------------------------------------------------ */

uint32_t vio_cfg_read(struct vio_dev *vd, unsigned int off, unsigned int size)
{
	uint16_t port = (uint16_t)(vd->io + LEG_CONFIG + off);

	if (vd->legacy) {
		if (size == 1)
			return inb(port);
		if (size == 2)
			return inw(port);
		return inl(port);
	}
	if ((uint64_t)off + size > vd->devcfg_len || !vd->devcfg)
		return 0xffffffffu;
	if (size == 1)
		return mmio_read8(vd->devcfg + off);
	if (size == 2)
		return mmio_read16(vd->devcfg + off);
	return mmio_read32(vd->devcfg + off);
}

uint64_t vio_cfg_read64(struct vio_dev *vd, unsigned int off)
{
	uint64_t lo, hi, v = 0;
	unsigned int tries;
	uint8_t gen;

	for (tries = 0; tries < 100; tries++) {
		gen = vd->legacy ? 0 : mmio_read8(vd->common + COMMON_CFGGEN);
		lo = vio_cfg_read(vd, off, 4);
		hi = vio_cfg_read(vd, off + 4, 4);
		v = lo | hi << 32;
		if (vd->legacy) {
			/* no generation counter: read until stable */
			if ((vio_cfg_read(vd, off, 4) |
			     (uint64_t)vio_cfg_read(vd, off + 4, 4) << 32) == v)
				break;
		} else if (gen == mmio_read8(vd->common + COMMON_CFGGEN)) {
			break;
		}
	}
	return v;
}

/* ---- queues -------------------------------------------------------------- */

static void queue_init_common(struct vio_queue *q)
{
	uint16_t i;

	for (i = 0; i < q->size; i++)
		q->desc[i].next = (uint16_t)(i + 1);
	q->free_head = 0;
	q->num_free = q->size;
	q->avail_idx = 0;
	q->last_used = 0;
	q->kicks = 0;
	mem_clear(q->chain_len, sizeof(q->chain_len));
	/* We poll: ask for no interrupts (§2.7.7). */
	q->avail[0] = VIRTQ_AVAIL_F_NO_INTERRUPT;
}

static uint16_t pow2_floor(uint16_t v)
{
	uint16_t p = 1;

	while ((uint16_t)(p << 1) && (uint16_t)(p << 1) <= v)
		p = (uint16_t)(p << 1);
	return p;
}

static int setup_legacy(struct vio_dev *vd, struct vio_queue *q,
			unsigned int qi)
{
	uint16_t size;
	uint64_t ring_len, used_off;
	uint8_t *base;

	outw((uint16_t)(vd->io + LEG_QUEUE_SEL), (uint16_t)qi);
	size = inw((uint16_t)(vd->io + LEG_QUEUE_NUM));
	if (size == 0)
		return -GUEST_ENOENT;
	if (size > VIO_QUEUE_MAX || (size & (size - 1))) {
		printf("virtio: legacy queue %u has %u entries (this driver "
		       "takes powers of two up to %u)\n",
		       qi, size, VIO_QUEUE_MAX);
		return -GUEST_ERANGE;
	}
	used_off = (16ull * size + 6 + 2ull * size + LEG_ALIGN - 1) &
		   ~(uint64_t)(LEG_ALIGN - 1);
	ring_len = used_off + 6 + 8ull * size;
	base = dma_zalloc(ring_len, LEG_ALIGN);
	if (!base)
		return -GUEST_ENOSPC;
	q->size = size;
	q->desc = (volatile struct virtq_desc *)base;
	q->avail = (volatile uint16_t *)(base + 16ull * size);
	q->used = (volatile uint32_t *)(base + used_off);
	queue_init_common(q);
	outl((uint16_t)(vd->io + LEG_QUEUE_PFN),
	     (uint32_t)(virt_to_phys(base) >> 12));
	if (inl((uint16_t)(vd->io + LEG_QUEUE_PFN)) !=
	    (uint32_t)(virt_to_phys(base) >> 12)) {
		printf("virtio: legacy queue %u PFN did not stick\n", qi);
		q->size = 0;
		return -GUEST_EIO;
	}
	return 0;
}

static void write_addr(struct vio_dev *vd, unsigned int reg,
		       const volatile void *p)
{
	uint64_t a = virt_to_phys(p);

	mmio_write32(vd->common + reg, (uint32_t)a);
	mmio_write32(vd->common + reg + 4, (uint32_t)(a >> 32));
}

static int setup_modern(struct vio_dev *vd, struct vio_queue *q,
			unsigned int qi, uint16_t max)
{
	uint16_t size, noff;
	uint64_t where;

	if (qi >= vd->num_queues)
		return -GUEST_ENOENT;
	mmio_write16(vd->common + COMMON_Q_SELECT, (uint16_t)qi);
	size = mmio_read16(vd->common + COMMON_Q_SIZE);
	if (size == 0)
		return -GUEST_ENOENT;
	if (size > max)
		size = max;
	size = pow2_floor(size);
	q->desc = dma_zalloc(16ull * size, 4096);
	q->avail = dma_zalloc(6 + 2ull * size, 64);
	q->used = dma_zalloc(6 + 8ull * size, 64);
	if (!q->desc || !q->avail || !q->used)
		return -GUEST_ENOSPC;
	noff = mmio_read16(vd->common + COMMON_Q_NOFF);
	where = (uint64_t)noff * vd->notify_mult;
	if (where + 2 > vd->notify_len) {
		printf("virtio: queue %u notify offset %u x %u is outside the "
		       "notify window (0x%x)\n",
		       qi, noff, vd->notify_mult, vd->notify_len);
		return -GUEST_EINVAL;
	}
	q->notify = vd->notify_base + where;
	q->size = size;
	queue_init_common(q);
	mmio_write16(vd->common + COMMON_Q_SIZE, size);
	mmio_write16(vd->common + COMMON_Q_MSIX, NO_VECTOR);
	write_addr(vd, COMMON_Q_DESC, q->desc);
	write_addr(vd, COMMON_Q_DRIVER, q->avail);
	write_addr(vd, COMMON_Q_DEVICE, q->used);
	mmio_write16(vd->common + COMMON_Q_ENABLE, 1);
	if (mmio_read16(vd->common + COMMON_Q_ENABLE) != 1 ||
	    mmio_read16(vd->common + COMMON_Q_SIZE) != size) {
		printf("virtio: queue %u did not enable\n", qi);
		q->size = 0;
		return -GUEST_EIO;
	}
	return 0;
}

int vio_queue_setup(struct vio_dev *vd, unsigned int qi, uint16_t max)
{
	struct vio_queue *q;

	if (qi >= VIO_MAX_QUEUES || max == 0)
		return -GUEST_EINVAL;
	q = &vd->q[qi];
	mem_clear(q, sizeof(*q));
	q->vd = vd;
	q->index = (uint16_t)qi;
	if (max > VIO_QUEUE_MAX)
		max = VIO_QUEUE_MAX;
	return vd->legacy ? setup_legacy(vd, q, qi)
			  : setup_modern(vd, q, qi, max);
}

/* ---- requests ------------------------------------------------------------ */

int vio_submit(struct vio_queue *q, const struct vio_seg *seg, unsigned int n)
{
	uint16_t head, idx, mask = (uint16_t)(q->size - 1);
	volatile struct virtq_desc *d;
	unsigned int k;

	if (n == 0 || q->size == 0)
		return -GUEST_EINVAL;
	if (n > q->num_free)
		return -GUEST_ENOSPC;
	head = idx = q->free_head;
	for (k = 0; k < n; k++) {
		d = &q->desc[idx];
		d->addr = seg[k].addr;
		d->len = seg[k].len;
		d->flags = (uint16_t)((seg[k].write ? VIRTQ_DESC_F_WRITE : 0) |
				      (k + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
		/* d->next already links to the next free descriptor */
		idx = (uint16_t)(d->next & mask);
	}
	q->free_head = idx;
	q->num_free = (uint16_t)(q->num_free - n);
	q->chain_len[head] = (uint16_t)n;
	q->avail[2 + (q->avail_idx & mask)] = head;
	barrier(); /* x86 keeps stores in order; stop the compiler only */
	q->avail_idx++;
	q->avail[1] = q->avail_idx;
	return head;
}

void vio_kick(struct vio_queue *q)
{
	/* The idx store must be visible before we look at the flags, or
	 * the device may go idle between the two (store-load order). */
	full_fence();
	if ((uint16_t)q->used[0] & VIRTQ_USED_F_NO_NOTIFY)
		return;
	q->kicks++;
	if (q->vd->legacy)
		outw((uint16_t)(q->vd->io + LEG_QUEUE_NOTIFY), q->index);
	else
		mmio_write16(q->notify, q->index);
}

int vio_get_used(struct vio_queue *q, uint16_t *head, uint32_t *len)
{
	uint16_t idx, mask = (uint16_t)(q->size - 1), slot, i, n, k;
	uint32_t id;

	idx = (uint16_t)(q->used[0] >> 16);
	if (idx == q->last_used)
		return 0;
	if ((uint16_t)(idx - q->last_used) > q->size)
		return -GUEST_EPROTO;
	barrier(); /* read the element after the index (x86: loads ordered) */
	slot = q->last_used & mask;
	id = q->used[1 + 2 * slot];
	*len = q->used[2 + 2 * slot];
	if (id >= q->size || q->chain_len[id] == 0)
		return -GUEST_EPROTO;
	n = q->chain_len[id];
	i = (uint16_t)id;
	for (k = 1; k < n; k++)
		i = (uint16_t)(q->desc[i].next & mask);
	q->desc[i].next = q->free_head;
	q->free_head = (uint16_t)id;
	q->num_free = (uint16_t)(q->num_free + n);
	q->chain_len[id] = 0;
	q->last_used++;
	*head = (uint16_t)id;
	return 1;
}

int vio_wait_used(struct vio_queue *q, uint16_t *head, uint32_t *len,
		  unsigned int timeout_s)
{
	uint8_t sec = cmos_read(0), now;
	uint64_t spins = 0, max_spins;
	unsigned int ticks = 0;
	int rc;

	/* The RTC is the clock; a spin count is the limit only without one
	 * (and a safety net if it stops). */
	max_spins = (uint64_t)(timeout_s + 1) *
		    (sec == 0xff ? 2000000ull : 500000000ull);

	for (;;) {
		rc = vio_get_used(q, head, len);
		if (rc)
			return rc < 0 ? rc : 0;
		cpu_relax();
		if ((++spins & 255) != 0)
			continue;
		now = cmos_read(0);
		if (now != sec && now != 0xff) {
			sec = now;
			if (++ticks > timeout_s)
				return -GUEST_ETIMEDOUT;
		}
		if (spins > max_spins)
			return -GUEST_ETIMEDOUT;
	}
}

int vio_transfer(struct vio_queue *q, const struct vio_seg *seg, unsigned int n,
		 uint32_t *len, unsigned int timeout_s)
{
	uint32_t l = 0;
	uint16_t got;
	int head, rc;

	head = vio_submit(q, seg, n);
	if (head < 0)
		return head;
	vio_kick(q);
	rc = vio_wait_used(q, &got, &l, timeout_s);
	if (rc)
		return rc;
	if (got != head)
		return -GUEST_EPROTO;
	if (len)
		*len = l;
	return 0;
}
