/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A tiny virtio-pci *driver* for device tests (no KVM): sets up a machine
 * (buses, PCI root, fake guest RAM, recording irq sink), initialises a
 * virtio function through its modern or legacy registers exactly as a
 * guest would, builds split virtqueues in the fake RAM, posts chains and
 * reads the used ring.  Header-only; single-threaded use; include once.
 * A device that needs the event loop gets it through
 * vdrv_machine_new_ev(); the caller runs the loop.
 */
#ifndef KHYVE_TESTS_DEV_VDRV_H
#define KHYVE_TESTS_DEV_VDRV_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "config/config.h"
#include "core/devmodel.h"
#include "core/gmem.h"
#include "core/layout.h"
#include "pci/pci.h"
#include "virtio/virtio.h"

#define VDRV_RAM (32u << 20)
#define VDRV_MAXQ 8

struct vdrv_q {
	uint16_t size;
	uint64_t desc, avail, used;
	uint16_t next_desc, avail_idx, last_used;
};

struct vdrv_machine {
	struct devctx ctx;
	struct gmem mem;
	uint8_t *ram;
	struct pci_bus *root;
	struct cfg_node *cfg;
	uint64_t brk; /* bump allocator in RAM */
	unsigned msi_count;
	uint64_t msi_addr;
	uint32_t msi_data;
	int level[IOAPIC_PINS];
	int exit_status;
};

struct vdrv {
	struct vdrv_machine *m;
	unsigned slot;
	bool legacy;
	uint64_t bar4; /* modern BAR */
	uint64_t io;   /* legacy I/O BAR */
	unsigned notify_mult;
	uint64_t msix_table;
	struct vdrv_q q[VDRV_MAXQ];
};

static int vdrv_set_irq_(void *o, unsigned gsi, int level)
{
	struct vdrv_machine *m = o;

	if (gsi < IOAPIC_PINS)
		m->level[gsi] = level;
	return 0;
}

static int vdrv_msi_(void *o, uint64_t addr, uint32_t data)
{
	struct vdrv_machine *m = o;

	m->msi_count++;
	m->msi_addr = addr;
	m->msi_data = data;
	return 0;
}

static void vdrv_exit_(void *o, int status, const char *why)
{
	(void)why;
	((struct vdrv_machine *)o)->exit_status = status;
}

/*
 * Build a machine from "key", "value" pairs (NULL-terminated) whose
 * devices see event loop 'ev' (NULL: none) in their devctx from the
 * moment they are created.  Returns 0 or -errno (a model's init error);
 * call vdrv_machine_free() either way.
 */
static inline int vdrv_machine_new_ev(struct vdrv_machine *m,
				      const char *const *kv,
				      struct event_loop *ev)
{
	int rc;

	memset(m, 0, sizeof(*m));
	m->exit_status = -1;
	m->ram = aligned_alloc(4096, VDRV_RAM);
	if (!m->ram)
		return -ENOMEM;
	memset(m->ram, 0, VDRV_RAM);
	gmem_init_fake(&m->mem, m->ram, VDRV_RAM);
	m->cfg = cfg_new();
	for (; *kv; kv += 2)
		cfg_set(m->cfg, kv[0], kv[1]);
	bus_new(&m->ctx.pio, "pio");
	bus_new(&m->ctx.mmio, "mmio");
	m->ctx.mem = &m->mem;
	m->ctx.root = m->cfg;
	m->ctx.ev = ev;
	m->ctx.irq = (struct irq_sink){
		.set_irq = vdrv_set_irq_, .msi = vdrv_msi_, .opaque = m};
	m->ctx.exit = vdrv_exit_;
	m->ctx.opaque = m;
	m->brk = 0x100000;
	if ((rc = pci_root_new(&m->ctx, &m->root)))
		return rc;
	if ((rc = pci_create_devices(m->root, m->cfg)))
		return rc;
	return pci_assign_bars(m->root);
}

/* vdrv_machine_new_ev() without an event loop. */
static inline int vdrv_machine_new(struct vdrv_machine *m,
				   const char *const *kv)
{
	return vdrv_machine_new_ev(m, kv, NULL);
}

static inline void vdrv_machine_free(struct vdrv_machine *m)
{
	pci_root_free(m->root);
	bus_free(m->ctx.pio);
	bus_free(m->ctx.mmio);
	cfg_free(m->cfg);
	free(m->ram);
}

/* Bump-allocate 'len' bytes of guest RAM aligned to 'align'. */
static inline uint64_t vdrv_alloc(struct vdrv_machine *m, uint64_t len,
				  uint64_t align)
{
	uint64_t a = (m->brk + align - 1) & ~(align - 1);

	m->brk = a + len;
	return a;
}

static inline void *vdrv_ptr(struct vdrv_machine *m, uint64_t gpa)
{
	return m->ram + gpa;
}

static inline uint64_t vdrv_mmio(struct vdrv_machine *m, uint64_t a,
				 unsigned size, bool write, uint64_t v)
{
	bus_dispatch(m->ctx.mmio, a, size, write, &v);
	return v;
}

static inline uint64_t vdrv_pio(struct vdrv_machine *m, uint64_t a,
				unsigned size, bool write, uint64_t v)
{
	bus_dispatch(m->ctx.pio, a, size, write, &v);
	return v;
}

static inline uint32_t vdrv_cfg(struct vdrv *d, unsigned off, unsigned size)
{
	return pci_cfg_read(d->m->root, 0, d->slot, 0, off, size);
}

static inline void vdrv_cfgw(struct vdrv *d, unsigned off, unsigned size,
			     uint32_t v)
{
	pci_cfg_write(d->m->root, 0, d->slot, 0, off, size, v);
}

/* Modern common-config register access. */
static inline uint64_t vdrv_common(struct vdrv *d, unsigned off, unsigned size,
				   bool write, uint64_t v)
{
	return vdrv_mmio(d->m, d->bar4 + off, size, write, v);
}

static inline void vdrv_status(struct vdrv *d, uint8_t st)
{
	if (d->legacy)
		vdrv_pio(d->m, d->io + VIRTIO_PCI_LEGACY_STATUS, 1, true, st);
	else
		vdrv_common(d, VIRTIO_PCI_COMMON_STATUS, 1, true, st);
}

static inline uint8_t vdrv_get_status(struct vdrv *d)
{
	if (d->legacy)
		return (uint8_t)vdrv_pio(d->m, d->io + VIRTIO_PCI_LEGACY_STATUS,
					 1, false, 0);
	return (uint8_t)vdrv_common(d, VIRTIO_PCI_COMMON_STATUS, 1, false, 0);
}

/* Find the modern BAR from the vendor capabilities; enable MSI-X when
 * 'msix'.  Returns 0 or -1. */
static inline int vdrv_probe(struct vdrv *d, struct vdrv_machine *m,
			     unsigned slot, bool legacy, bool msix)
{
	unsigned c;

	memset(d, 0, sizeof(*d));
	d->m = m;
	d->slot = slot;
	d->legacy = legacy;
	if (vdrv_cfg(d, PCIR_VENDOR, 2) != VIRTIO_PCI_VENDOR)
		return -1;
	d->io = vdrv_cfg(d, PCIR_BAR(0), 4) & ~3u;
	d->bar4 = (vdrv_cfg(d, PCIR_BAR(4), 4) & ~0xfull) |
		  (uint64_t)vdrv_cfg(d, PCIR_BAR(5), 4) << 32;
	for (c = vdrv_cfg(d, PCIR_CAP_PTR, 1); c; c = vdrv_cfg(d, c + 1, 1)) {
		if (vdrv_cfg(d, c, 1) == VIRTIO_PCI_CAP_VNDR &&
		    vdrv_cfg(d, c + 3, 1) == VIRTIO_PCI_CAP_NOTIFY_CFG)
			d->notify_mult = vdrv_cfg(d, c + 16, 4);
		if (vdrv_cfg(d, c, 1) == PCIY_MSIX && msix) {
			d->msix_table = vdrv_cfg(d, PCIR_BAR(1), 4) & ~0xfu;
			vdrv_cfgw(d, c + 2, 2, 0x8000);
		}
	}
	return 0;
}

/* Program MSI-X vector 'v' (unmasked) to deliver 'data' to the LAPIC. */
static inline void vdrv_msix_vec(struct vdrv *d, unsigned v, uint32_t data)
{
	vdrv_mmio(d->m, d->msix_table + 16 * v, 8, true, 0xfee00000ull);
	vdrv_mmio(d->m, d->msix_table + 16 * v + 8, 4, true, data);
	vdrv_mmio(d->m, d->msix_table + 16 * v + 12, 4, true, 0);
}

/* Reset, ACK, DRIVER, negotiate 'want' (returns the accepted set). */
static inline uint64_t vdrv_negotiate(struct vdrv *d, uint64_t want)
{
	uint64_t have;

	vdrv_status(d, 0);
	vdrv_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
	vdrv_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	if (d->legacy) {
		have = vdrv_pio(d->m, d->io, 4, false, 0);
		vdrv_pio(d->m, d->io + 4, 4, true, (uint32_t)(have & want));
		return have & want;
	}
	vdrv_common(d, VIRTIO_PCI_COMMON_DFSELECT, 4, true, 0);
	have = vdrv_common(d, VIRTIO_PCI_COMMON_DF, 4, false, 0);
	vdrv_common(d, VIRTIO_PCI_COMMON_DFSELECT, 4, true, 1);
	have |= vdrv_common(d, VIRTIO_PCI_COMMON_DF, 4, false, 0) << 32;
	want &= have;
	vdrv_common(d, VIRTIO_PCI_COMMON_GFSELECT, 4, true, 0);
	vdrv_common(d, VIRTIO_PCI_COMMON_GF, 4, true, (uint32_t)want);
	vdrv_common(d, VIRTIO_PCI_COMMON_GFSELECT, 4, true, 1);
	vdrv_common(d, VIRTIO_PCI_COMMON_GF, 4, true, want >> 32);
	vdrv_status(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			       VIRTIO_STATUS_FEATURES_OK);
	return want;
}

/* Allocate and enable queue 'qi' with 'size' entries (legacy: the device's
 * fixed size) and MSI-X vector 'vec' (0xffff for none). */
static inline void vdrv_queue(struct vdrv *d, unsigned qi, uint16_t size,
			      uint16_t vec)
{
	struct vdrv_q *q = &d->q[qi];

	memset(q, 0, sizeof(*q));
	if (d->legacy) {
		uint64_t base;

		vdrv_pio(d->m, d->io + VIRTIO_PCI_LEGACY_QUEUE_SEL, 2, true,
			 qi);
		size = (uint16_t)vdrv_pio(
			d->m, d->io + VIRTIO_PCI_LEGACY_QUEUE_NUM, 2, false, 0);
		base = vdrv_alloc(d->m, 3 * 4096 + 18 * (uint64_t)size, 4096);
		q->size = size;
		q->desc = base;
		q->avail = base + 16ull * size;
		q->used = (q->avail + 6 + 2ull * size + 4095) & ~4095ull;
		if (vec != 0xffff)
			vdrv_pio(d->m, d->io + VIRTIO_PCI_LEGACY_QUEUE_VECTOR,
				 2, true, vec);
		vdrv_pio(d->m, d->io + VIRTIO_PCI_LEGACY_QUEUE_PFN, 4, true,
			 base >> 12);
		return;
	}
	q->size = size;
	q->desc = vdrv_alloc(d->m, 16ull * size, 16);
	q->avail = vdrv_alloc(d->m, 6 + 2ull * size, 2);
	q->used = vdrv_alloc(d->m, 6 + 8ull * size, 4);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_SELECT, 2, true, qi);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_SIZE, 2, true, size);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_MSIX, 2, true, vec);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, true, q->desc);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_DESCHI, 4, true, q->desc >> 32);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, true, q->avail);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, true, q->avail >> 32);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_USEDLO, 4, true, q->used);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_USEDHI, 4, true, q->used >> 32);
	vdrv_common(d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, true, 1);
}

static inline void vdrv_driver_ok(struct vdrv *d)
{
	vdrv_status(d, (uint8_t)(vdrv_get_status(d) | VIRTIO_STATUS_DRIVER_OK));
}

/* Write descriptor 'i' of queue 'qi'. */
static inline void vdrv_desc(struct vdrv *d, unsigned qi, uint16_t i,
			     uint64_t addr, uint32_t len, uint16_t flags,
			     uint16_t next)
{
	uint8_t *p = vdrv_ptr(d->m, d->q[qi].desc + 16ull * i);

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

/* Publish head 'head' on the avail ring and kick (unless !kick). */
static inline void vdrv_publish(struct vdrv *d, unsigned qi, uint16_t head,
				bool kick)
{
	struct vdrv_q *q = &d->q[qi];
	uint16_t *avail = vdrv_ptr(d->m, q->avail);

	avail[2 + q->avail_idx % q->size] = head;
	__atomic_store_n(&avail[1], (uint16_t)(q->avail_idx + 1),
			 __ATOMIC_RELEASE);
	q->avail_idx++;
	if (!kick)
		return;
	if (d->legacy)
		vdrv_pio(d->m, d->io + VIRTIO_PCI_LEGACY_QUEUE_NOTIFY, 2, true,
			 qi);
	else
		vdrv_mmio(d->m, d->bar4 + 0x3000 + qi * d->notify_mult, 2, true,
			  qi);
}

/*
 * Post a chain of 'n' segments (gpa, len, writable) starting at a free
 * descriptor and kick.  Returns the head.
 */
static inline uint16_t vdrv_post(struct vdrv *d, unsigned qi, unsigned n,
				 const uint64_t *gpa, const uint32_t *len,
				 const bool *wr)
{
	struct vdrv_q *q = &d->q[qi];
	uint16_t head = q->next_desc, i;

	for (i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((head + i) % q->size);
		uint16_t next = (uint16_t)((head + i + 1) % q->size);

		vdrv_desc(d, qi, idx, gpa[i], len[i],
			  (uint16_t)(((unsigned)i + 1 < n ? VIRTQ_DESC_F_NEXT
							  : 0) |
				     (wr[i] ? VIRTQ_DESC_F_WRITE : 0)),
			  next);
	}
	q->next_desc = (uint16_t)((head + n) % q->size);
	vdrv_publish(d, qi, head, true);
	return head;
}

/* Take the next used element: 1 (id and len filled), or 0 when none. */
static inline int vdrv_used(struct vdrv *d, unsigned qi, uint32_t *id,
			    uint32_t *len)
{
	struct vdrv_q *q = &d->q[qi];
	uint8_t *u = vdrv_ptr(d->m, q->used);
	uint16_t idx = __atomic_load_n((uint16_t *)(u + 2), __ATOMIC_ACQUIRE);
	uint8_t *e;

	if (idx == q->last_used)
		return 0;
	e = u + 4 + 8 * (q->last_used % q->size);
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
	q->last_used++;
	return 1;
}

#endif
