/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The transitional virtio-pci transport (see virtio_pci.h for the layout,
 * threads and locks).  Spec references are to virtio 1.2.
 */
#include "virtio/virtio_pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event/event.h"
#include "lib/log.h"

#define BAR_LEGACY 0
#define BAR_MSIX 1
#define BAR_MODERN 4
#define MODERN_COMMON 0x0000
#define MODERN_ISR 0x1000
#define MODERN_DEVICE 0x2000
#define MODERN_NOTIFY 0x3000
#define MODERN_SIZE 0x4000
#define NOTIFY_MULT 4
#define MSIX_PBA_OFF 0x800

static struct virtio_dev *vd_of(struct pci_dev *pd)
{
	return pd->softc;
}

bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit)
{
	return (vd->guest_features & VIRTIO_BIT(bit)) != 0;
}

bool virtio_pci_live(struct virtio_dev *vd)
{
	uint8_t st = __atomic_load_n(&vd->status, __ATOMIC_ACQUIRE);

	return (st & VIRTIO_STATUS_DRIVER_OK) &&
	       !(st & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

struct vq *virtio_queue_vq(struct virtio_dev *vd, unsigned q)
{
	if (q >= vd->ops->nqueues || !vd->queues[q].enabled)
		return NULL;
	return &vd->queues[q].vq;
}

/* ---- interrupts ---- */

static void raise_isr(struct virtio_dev *vd, uint8_t bit, uint16_t vector)
{
	struct pci_dev *pd = vd->pd;

	if (pci_msix_enabled(pd)) {
		if (vector != VIRTIO_MSI_NO_VECTOR)
			(void)pci_irq_notify(pd, vector);
		return;
	}
	__atomic_or_fetch(&vd->isr, bit, __ATOMIC_SEQ_CST);
	(void)pci_irq_notify(pd, 0);
}

void virtio_pci_notify_queue(struct virtio_dev *vd, unsigned q)
{
	struct virtio_queue *vq;

	if (q >= vd->ops->nqueues)
		return;
	vq = &vd->queues[q];
	if (!vq->enabled || !vq_need_notify(&vq->vq))
		return;
	raise_isr(vd, VIRTIO_PCI_ISR_QUEUE,
		  __atomic_load_n(&vq->msix_vector, __ATOMIC_RELAXED));
}

void virtio_pci_config_changed(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	vd->cfg_generation++;
	pthread_mutex_unlock(&vd->lock);
	raise_isr(vd, VIRTIO_PCI_ISR_CONFIG,
		  __atomic_load_n(&vd->msix_config, __ATOMIC_RELAXED));
}

void virtio_pci_needs_reset(struct virtio_dev *vd, const char *why)
{
	uint8_t old =
		__atomic_fetch_or(&vd->status, VIRTIO_STATUS_DEVICE_NEEDS_RESET,
				  __ATOMIC_SEQ_CST);

	if (old & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	log_ratelimited(10000, "%s: %s; device needs reset", vd->pd->name, why);
	virtio_pci_config_changed(vd);
}

/* ---- reset, status, features, queues ---- */

/*
 * Device reset (status 0).  Order matters: first make the device not live
 * (its threads check virtio_pci_live() and stop), then let it quiesce (the
 * reset hook waits for work in flight and drops completions), and only
 * then tear the queue state down, so no device thread can see a queue
 * half reset.
 */
static void do_reset(struct virtio_dev *vd)
{
	unsigned i;

	__atomic_store_n(&vd->status, 0, __ATOMIC_SEQ_CST);
	if (vd->ops->reset)
		vd->ops->reset(vd);
	pthread_mutex_lock(&vd->lock);
	vd->guest_features = 0;
	vd->dfselect = vd->gfselect = 0;
	vd->queue_sel = 0;
	vd->msix_config = VIRTIO_MSI_NO_VECTOR;
	vd->modern = false;
	for (i = 0; i < vd->ops->nqueues; i++) {
		struct virtio_queue *q = &vd->queues[i];

		q->enabled = false;
		vq_reset(&q->vq);
		q->size = vd->ops->queue_size;
		q->msix_vector = VIRTIO_MSI_NO_VECTOR;
		q->desc = q->avail = q->used = 0;
	}
	pthread_mutex_unlock(&vd->lock);
	__atomic_store_n(&vd->isr, 0, __ATOMIC_SEQ_CST);
	pci_intx_deassert(vd->pd);
}

/* vd->lock held.  Returns false (after needs-reset) when the rings are
 * not in guest RAM. */
static bool queue_enable(struct virtio_dev *vd, struct virtio_queue *q)
{
	int rc = vq_enable(&q->vq, vd->pd->ctx->mem, q->size, q->desc, q->avail,
			   q->used, virtio_has_feature(vd, VIRTIO_F_EVENT_IDX),
			   virtio_has_feature(vd, VIRTIO_F_INDIRECT_DESC));

	q->enabled = rc == 0;
	return rc == 0;
}

static void set_status(struct virtio_dev *vd, uint8_t val)
{
	uint8_t old;
	bool driver_ok = false;

	if (val == 0) {
		do_reset(vd);
		return;
	}
	pthread_mutex_lock(&vd->lock);
	old = vd->status;
	if ((val & VIRTIO_STATUS_FEATURES_OK) &&
	    !(old & VIRTIO_STATUS_FEATURES_OK) && vd->modern &&
	    !virtio_has_feature(vd, VIRTIO_F_VERSION_1))
		val &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK; /* §4.1.4.3.2 */
	/* NEEDS_RESET is the device's to set; the driver can't clear it */
	val = (uint8_t)((val & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
			(old & VIRTIO_STATUS_DEVICE_NEEDS_RESET));
	__atomic_store_n(&vd->status, val, __ATOMIC_SEQ_CST);
	driver_ok = (val & VIRTIO_STATUS_DRIVER_OK) &&
		    !(old & VIRTIO_STATUS_DRIVER_OK);
	pthread_mutex_unlock(&vd->lock);
	if (driver_ok && vd->ops->driver_ok)
		vd->ops->driver_ok(vd);
}

static void queue_kick(struct virtio_dev *vd, uint64_t q)
{
	if (q < vd->ops->nqueues && vd->queues[q].enabled &&
	    virtio_pci_live(vd))
		vd->ops->queue_notify(vd, (unsigned)q);
}

/* ---- device config space ---- */

static uint64_t cfg_read(struct virtio_dev *vd, uint64_t off, unsigned size)
{
	uint64_t v = 0;
	unsigned i;

	pthread_mutex_lock(&vd->lock);
	for (i = 0; i < size && off + i < vd->ops->cfg_size; i++)
		v |= (uint64_t)vd->cfg[off + i] << (8 * i);
	pthread_mutex_unlock(&vd->lock);
	return v;
}

static void cfg_write(struct virtio_dev *vd, uint64_t off, unsigned size,
		      uint64_t val)
{
	unsigned i;

	if (off >= vd->ops->cfg_size || !vd->ops->cfg_write)
		return; /* read-only config: writes ignored */
	pthread_mutex_lock(&vd->lock);
	for (i = 0; i < size && off + i < vd->ops->cfg_size; i++)
		vd->cfg[off + i] = (uint8_t)(val >> (8 * i));
	pthread_mutex_unlock(&vd->lock);
	vd->ops->cfg_write(vd, (unsigned)off, size);
}

/* ---- legacy interface (virtio 1.2 §4.1.4.8) ---- */

static unsigned legacy_hdr_len(struct virtio_dev *vd)
{
	return pci_msix_enabled(vd->pd) ? 24 : 20;
}

static void legacy_set_pfn(struct virtio_dev *vd, uint32_t pfn)
{
	struct virtio_queue *q;
	uint64_t base;

	if (vd->queue_sel >= vd->ops->nqueues)
		return;
	q = &vd->queues[vd->queue_sel];
	if (pfn == 0) {
		q->enabled = false;
		vq_reset(&q->vq);
		return;
	}
	base = (uint64_t)pfn << VIRTIO_LEGACY_PFN_SHIFT;
	q->size = vd->ops->queue_size;
	q->desc = base;
	q->avail = base + VIRTQ_DESC_SIZE(q->size);
	q->used = (q->avail + VIRTQ_AVAIL_SIZE(q->size) +
		   VIRTIO_LEGACY_QUEUE_ALIGN - 1) &
		  ~(uint64_t)(VIRTIO_LEGACY_QUEUE_ALIGN - 1);
	if (!queue_enable(vd, q)) {
		pthread_mutex_unlock(&vd->lock);
		virtio_pci_needs_reset(vd, "legacy queue outside guest RAM");
		pthread_mutex_lock(&vd->lock);
	}
}

static void legacy_read(struct virtio_dev *vd, uint64_t off, unsigned size,
			uint64_t *val)
{
	unsigned hdr = legacy_hdr_len(vd);
	struct virtio_queue *q;

	if (off >= hdr) {
		*val = cfg_read(vd, off - hdr, size);
		return;
	}
	pthread_mutex_lock(&vd->lock);
	q = vd->queue_sel < vd->ops->nqueues ? &vd->queues[vd->queue_sel]
					     : NULL;
	switch (off) {
	case VIRTIO_PCI_LEGACY_HOST_FEATURES:
		*val = (uint32_t)vd->host_features;
		break;
	case VIRTIO_PCI_LEGACY_GUEST_FEATURES:
		*val = (uint32_t)vd->guest_features;
		break;
	case VIRTIO_PCI_LEGACY_QUEUE_PFN:
		*val = q && q->enabled ? q->desc >> VIRTIO_LEGACY_PFN_SHIFT : 0;
		break;
	case VIRTIO_PCI_LEGACY_QUEUE_NUM:
		*val = q ? vd->ops->queue_size : 0;
		break;
	case VIRTIO_PCI_LEGACY_QUEUE_SEL:
		*val = vd->queue_sel;
		break;
	case VIRTIO_PCI_LEGACY_STATUS:
		*val = vd->status;
		break;
	case VIRTIO_PCI_LEGACY_ISR:
		*val = __atomic_exchange_n(&vd->isr, 0, __ATOMIC_SEQ_CST);
		pci_intx_deassert(vd->pd);
		break;
	case VIRTIO_PCI_LEGACY_CONFIG_VECTOR:
		*val = vd->msix_config;
		break;
	case VIRTIO_PCI_LEGACY_QUEUE_VECTOR:
		*val = q ? q->msix_vector : VIRTIO_MSI_NO_VECTOR;
		break;
	default:
		*val = 0;
		break;
	}
	pthread_mutex_unlock(&vd->lock);
}

static void legacy_write(struct virtio_dev *vd, uint64_t off, unsigned size,
			 uint64_t val)
{
	unsigned hdr = legacy_hdr_len(vd);
	struct virtio_queue *q;

	if (off >= hdr) {
		cfg_write(vd, off - hdr, size, val);
		return;
	}
	if (off == VIRTIO_PCI_LEGACY_STATUS) {
		set_status(vd, (uint8_t)val);
		return;
	}
	if (off == VIRTIO_PCI_LEGACY_QUEUE_NOTIFY) {
		queue_kick(vd, val & 0xffff);
		return;
	}
	pthread_mutex_lock(&vd->lock);
	q = vd->queue_sel < vd->ops->nqueues ? &vd->queues[vd->queue_sel]
					     : NULL;
	switch (off) {
	case VIRTIO_PCI_LEGACY_GUEST_FEATURES:
		vd->guest_features = (uint32_t)val & vd->host_features;
		break;
	case VIRTIO_PCI_LEGACY_QUEUE_PFN:
		legacy_set_pfn(vd, (uint32_t)val);
		break;
	case VIRTIO_PCI_LEGACY_QUEUE_SEL:
		vd->queue_sel = (uint16_t)val;
		break;
	case VIRTIO_PCI_LEGACY_CONFIG_VECTOR:
		vd->msix_config = (uint16_t)val;
		break;
	case VIRTIO_PCI_LEGACY_QUEUE_VECTOR:
		if (q)
			q->msix_vector = (uint16_t)val;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&vd->lock);
}

/* ---- modern common configuration (§4.1.4.3) ---- */

static void common_read(struct virtio_dev *vd, uint64_t off, unsigned size,
			uint64_t *val)
{
	struct virtio_queue *q;
	uint64_t v = 0;

	pthread_mutex_lock(&vd->lock);
	q = vd->queue_sel < vd->ops->nqueues ? &vd->queues[vd->queue_sel]
					     : NULL;
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		v = vd->dfselect;
		break;
	case VIRTIO_PCI_COMMON_DF:
		v = vd->dfselect < 2 ? (uint32_t)(vd->host_features >>
						  (32 * vd->dfselect))
				     : 0;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		v = vd->gfselect;
		break;
	case VIRTIO_PCI_COMMON_GF:
		v = vd->gfselect < 2 ? (uint32_t)(vd->guest_features >>
						  (32 * vd->gfselect))
				     : 0;
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		v = vd->msix_config;
		break;
	case VIRTIO_PCI_COMMON_NUMQ:
		v = vd->ops->nqueues;
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		v = vd->status;
		break;
	case VIRTIO_PCI_COMMON_CFGGEN:
		v = vd->cfg_generation;
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		v = vd->queue_sel;
		break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		v = q ? q->size : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		v = q ? q->msix_vector : VIRTIO_MSI_NO_VECTOR;
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		v = q ? q->enabled : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_NOFF:
		v = q ? vd->queue_sel : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		v = q ? q->desc >> (off == VIRTIO_PCI_COMMON_Q_DESCHI ? 32 : 0)
		      : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		v = q ? q->avail >> (off == VIRTIO_PCI_COMMON_Q_AVAILHI ? 32
									: 0)
		      : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		v = q ? q->used >> (off == VIRTIO_PCI_COMMON_Q_USEDHI ? 32 : 0)
		      : 0;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&vd->lock);
	*val = size >= 8 ? v : v & ((1ULL << (8 * size)) - 1);
}

static void set_addr_half(uint64_t *a, bool hi, uint64_t val)
{
	if (hi)
		*a = (*a & 0xffffffffULL) | (uint64_t)(uint32_t)val << 32;
	else
		*a = (*a & ~0xffffffffULL) | (uint32_t)val;
}

static void common_write(struct virtio_dev *vd, uint64_t off, unsigned size,
			 uint64_t val)
{
	struct virtio_queue *q;
	bool bad_ring = false;

	(void)size;
	if (off == VIRTIO_PCI_COMMON_STATUS) {
		vd->modern = true;
		set_status(vd, (uint8_t)val);
		return;
	}
	pthread_mutex_lock(&vd->lock);
	vd->modern = true;
	q = vd->queue_sel < vd->ops->nqueues ? &vd->queues[vd->queue_sel]
					     : NULL;
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vd->dfselect = (uint32_t)val;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vd->gfselect = (uint32_t)val;
		break;
	case VIRTIO_PCI_COMMON_GF:
		if (vd->gfselect < 2 &&
		    !(vd->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned sh = 32 * vd->gfselect;

			vd->guest_features &= ~(0xffffffffULL << sh);
			vd->guest_features |= ((uint64_t)(uint32_t)val << sh) &
					      vd->host_features;
		}
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		vd->msix_config = (uint16_t)val;
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vd->queue_sel = (uint16_t)val;
		break;
	default:
		if (!q || q->enabled)
			break; /* queue fields are frozen once enabled */
		switch (off) {
		case VIRTIO_PCI_COMMON_Q_SIZE:
			if (val >= 1 && val <= vd->ops->queue_size)
				q->size = (uint16_t)val;
			break;
		case VIRTIO_PCI_COMMON_Q_MSIX:
			q->msix_vector = (uint16_t)val;
			break;
		case VIRTIO_PCI_COMMON_Q_ENABLE:
			if (val == 1)
				bad_ring = !queue_enable(vd, q);
			break;
		case VIRTIO_PCI_COMMON_Q_DESCLO:
		case VIRTIO_PCI_COMMON_Q_DESCHI:
			set_addr_half(&q->desc,
				      off == VIRTIO_PCI_COMMON_Q_DESCHI, val);
			break;
		case VIRTIO_PCI_COMMON_Q_AVAILLO:
		case VIRTIO_PCI_COMMON_Q_AVAILHI:
			set_addr_half(&q->avail,
				      off == VIRTIO_PCI_COMMON_Q_AVAILHI, val);
			break;
		case VIRTIO_PCI_COMMON_Q_USEDLO:
		case VIRTIO_PCI_COMMON_Q_USEDHI:
			set_addr_half(&q->used,
				      off == VIRTIO_PCI_COMMON_Q_USEDHI, val);
			break;
		default:
			break;
		}
		break;
	}
	/* The MSI-X vector register must read back NO_VECTOR when the
	 * device can't use it (§4.1.5.1.2) */
	if (q && off == VIRTIO_PCI_COMMON_Q_MSIX && q->msix_vector != 0xffff &&
	    (!vd->pd->msix.cap || q->msix_vector >= vd->pd->msix.nvec))
		q->msix_vector = VIRTIO_MSI_NO_VECTOR;
	if (off == VIRTIO_PCI_COMMON_MSIX && vd->msix_config != 0xffff &&
	    (!vd->pd->msix.cap || vd->msix_config >= vd->pd->msix.nvec))
		vd->msix_config = VIRTIO_MSI_NO_VECTOR;
	pthread_mutex_unlock(&vd->lock);
	if (bad_ring)
		virtio_pci_needs_reset(vd, "queue rings outside guest RAM");
}

/* ---- BAR hooks ---- */

void virtio_pci_barread(struct pci_dev *pd, unsigned idx, uint64_t off,
			unsigned size, uint64_t *val)
{
	struct virtio_dev *vd = vd_of(pd);

	if (idx == BAR_LEGACY) {
		legacy_read(vd, off, size, val);
	} else if (idx == BAR_MODERN) {
		if (off < MODERN_ISR) {
			common_read(vd, off, size, val);
		} else if (off < MODERN_DEVICE) {
			*val = off == MODERN_ISR
				       ? __atomic_exchange_n(&vd->isr, 0,
							     __ATOMIC_SEQ_CST)
				       : 0;
			if (off == MODERN_ISR)
				pci_intx_deassert(pd);
		} else if (off < MODERN_NOTIFY) {
			*val = cfg_read(vd, off - MODERN_DEVICE, size);
		} else {
			*val = 0;
		}
	}
}

void virtio_pci_barwrite(struct pci_dev *pd, unsigned idx, uint64_t off,
			 unsigned size, uint64_t val)
{
	struct virtio_dev *vd = vd_of(pd);

	if (idx == BAR_LEGACY) {
		legacy_write(vd, off, size, val);
	} else if (idx == BAR_MODERN) {
		if (off < MODERN_ISR)
			common_write(vd, off, size, val);
		else if (off >= MODERN_DEVICE && off < MODERN_NOTIFY)
			cfg_write(vd, off - MODERN_DEVICE, size, val);
		else if (off >= MODERN_NOTIFY)
			queue_kick(vd, (off - MODERN_NOTIFY) / NOTIFY_MULT);
	}
}

/* Move the kick ioeventfds with the BARs (PCI root lock held). */
void virtio_pci_barmap(struct pci_dev *pd, unsigned idx, bool mapped,
		       uint64_t addr)
{
	struct virtio_dev *vd = vd_of(pd);
	struct devctx *ctx = pd->ctx;
	unsigned q;

	if (!ctx->ioeventfd || (idx != BAR_LEGACY && idx != BAR_MODERN))
		return;
	for (q = 0; q < vd->ops->nqueues; q++) {
		int fd = vd->queues[q].kick_fd;

		if (fd < 0)
			continue;
		if (idx == BAR_LEGACY)
			(void)ctx->ioeventfd(
				ctx->opaque, fd,
				addr + VIRTIO_PCI_LEGACY_QUEUE_NOTIFY, 2, true,
				true, q, !mapped);
		else
			(void)ctx->ioeventfd(ctx->opaque, fd,
					     addr + MODERN_NOTIFY +
						     q * NOTIFY_MULT,
					     2, false, false, 0, !mapped);
	}
}

/* ---- the PCI configuration access capability (§4.1.4.9) ---- */

static unsigned pcicfg_cap(struct pci_dev *pd)
{
	unsigned c;

	for (c = pci_get8(pd, PCIR_CAP_PTR); c; c = pci_get8(pd, c + 1))
		if (pci_get8(pd, c) == VIRTIO_PCI_CAP_VNDR &&
		    pci_get8(pd, c + VIRTIO_PCI_CAP_OFF_CFG_TYPE) ==
			    VIRTIO_PCI_CAP_PCI_CFG)
			return c;
	return 0;
}

static bool pcicfg_window(struct pci_dev *pd, unsigned off, unsigned size,
			  unsigned *bar, uint32_t *boff, unsigned *len)
{
	unsigned c = pcicfg_cap(pd);

	if (!c || off < c + VIRTIO_PCI_CFG_CAP_OFF_DATA ||
	    off + size > c + VIRTIO_PCI_CAP_LEN + 4)
		return false;
	*bar = pci_get8(pd, c + VIRTIO_PCI_CAP_OFF_BAR);
	*boff = pci_get32(pd, c + VIRTIO_PCI_CAP_OFF_OFFSET);
	*len = pci_get32(pd, c + VIRTIO_PCI_CAP_OFF_LENGTH);
	return true;
}

int virtio_pci_cfgread(struct pci_dev *pd, unsigned off, unsigned size,
		       uint32_t *val)
{
	unsigned bar, len;
	uint32_t boff;
	uint64_t v = ~0ULL;

	if (!pcicfg_window(pd, off, size, &bar, &boff, &len))
		return -ENOENT;
	if ((len == 1 || len == 2 || len == 4) &&
	    (bar == BAR_MODERN || bar == BAR_LEGACY))
		virtio_pci_barread(pd, bar, boff, len, &v);
	*val = (uint32_t)v;
	return 0;
}

int virtio_pci_cfgwrite(struct pci_dev *pd, unsigned off, unsigned size,
			uint32_t val)
{
	unsigned bar, len;
	uint32_t boff;

	if (!pcicfg_window(pd, off, size, &bar, &boff, &len))
		return -ENOENT;
	if ((len == 1 || len == 2 || len == 4) &&
	    (bar == BAR_MODERN || bar == BAR_LEGACY))
		virtio_pci_barwrite(pd, bar, boff, len, val);
	return 0;
}

/* ---- set-up ---- */

static void on_kick(void *arg, uint32_t events)
{
	struct virtio_queue *q = arg;
	struct virtio_dev *vd;
	uint64_t n;

	(void)events;
	if (read(q->kick_fd, &n, sizeof(n)) != sizeof(n))
		return;
	vd = q->vd;
	queue_kick(vd, (uint64_t)(q - vd->queues));
}

static int add_vcap(struct pci_dev *pd, uint8_t type, uint8_t bar, uint32_t off,
		    uint32_t len, unsigned extra_len, uint32_t extra,
		    unsigned *at)
{
	uint8_t cap[24] = {VIRTIO_PCI_CAP_VNDR, 0};
	unsigned n = VIRTIO_PCI_CAP_LEN + extra_len;

	cap[VIRTIO_PCI_CAP_OFF_LEN] = (uint8_t)n;
	cap[VIRTIO_PCI_CAP_OFF_CFG_TYPE] = type;
	cap[VIRTIO_PCI_CAP_OFF_BAR] = bar;
	memcpy(cap + VIRTIO_PCI_CAP_OFF_OFFSET, &off, 4);
	memcpy(cap + VIRTIO_PCI_CAP_OFF_LENGTH, &len, 4);
	memcpy(cap + VIRTIO_PCI_CAP_LEN, &extra, 4);
	return pci_add_cap(pd, cap, n, at);
}

static int add_caps(struct virtio_dev *vd)
{
	struct pci_dev *pd = vd->pd;
	unsigned at;
	int rc;

	if ((rc = add_vcap(pd, VIRTIO_PCI_CAP_COMMON_CFG, BAR_MODERN,
			   MODERN_COMMON, VIRTIO_PCI_COMMON_CFG_SIZE, 0, 0,
			   NULL)) ||
	    (rc = add_vcap(pd, VIRTIO_PCI_CAP_ISR_CFG, BAR_MODERN, MODERN_ISR,
			   1, 0, 0, NULL)) ||
	    (vd->ops->cfg_size &&
	     (rc = add_vcap(pd, VIRTIO_PCI_CAP_DEVICE_CFG, BAR_MODERN,
			    MODERN_DEVICE, vd->ops->cfg_size, 0, 0, NULL))) ||
	    (rc = add_vcap(pd, VIRTIO_PCI_CAP_NOTIFY_CFG, BAR_MODERN,
			   MODERN_NOTIFY, vd->ops->nqueues * NOTIFY_MULT, 4,
			   NOTIFY_MULT, NULL)) ||
	    (rc = add_vcap(pd, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 0, 4, 0, &at)))
		return rc;
	/* bar, offset, length and data of the access window are writable */
	pd->wmask[at + VIRTIO_PCI_CAP_OFF_BAR] = 0xff;
	memset(pd->wmask + at + VIRTIO_PCI_CAP_OFF_OFFSET, 0xff, 12);
	return 0;
}

int virtio_pci_init(struct virtio_dev *vd, struct pci_dev *pd,
		    const struct virtio_dev_ops *ops, uint8_t *cfg)
{
	unsigned i, iosize = 32;
	int rc;

	if (ops->nqueues == 0 ||
	    ops->nqueues * NOTIFY_MULT > MODERN_SIZE - MODERN_NOTIFY ||
	    ops->cfg_size > MODERN_NOTIFY - MODERN_DEVICE ||
	    ops->queue_size == 0 || ops->queue_size > VIRTQ_MAX_SIZE)
		return -EINVAL;
	vd->pd = pd;
	vd->ops = ops;
	vd->cfg = cfg;
	vd->host_features = ops->features | VIRTIO_BIT(VIRTIO_F_VERSION_1);
	vd->msix_config = VIRTIO_MSI_NO_VECTOR;
	pthread_mutex_init(&vd->lock, NULL);
	vd->queues = calloc(ops->nqueues, sizeof(*vd->queues));
	if (!vd->queues)
		return -ENOMEM;
	for (i = 0; i < ops->nqueues; i++) {
		vd->queues[i].size = ops->queue_size;
		vd->queues[i].msix_vector = VIRTIO_MSI_NO_VECTOR;
		vd->queues[i].kick_fd = -1;
		vd->queues[i].vd = vd;
	}
	if ((rc = cfg_get_bool(pd->ctx->root, "virtio_msix", true,
			       &vd->use_msix)))
		return rc;
	pci_set_ids(pd, VIRTIO_PCI_VENDOR, ops->legacy_pci_id, ops->pci_class,
		    ops->pci_subclass, 0);
	pci_set16(pd, PCIR_SUBVEND, VIRTIO_PCI_VENDOR);
	pci_set16(pd, PCIR_SUBDEV, ops->device_type);
	while (iosize < 24 + ops->cfg_size)
		iosize <<= 1;
	if ((rc = pci_bar_alloc(pd, BAR_LEGACY, PCIBAR_IO, iosize, false)) ||
	    (rc = pci_bar_alloc(pd, BAR_MODERN, PCIBAR_MEM64, MODERN_SIZE,
				true)))
		return rc;
	if (vd->use_msix) {
		if ((rc = pci_bar_alloc(pd, BAR_MSIX, PCIBAR_MEM32, 4096,
					false)) ||
		    (rc = pci_msix_init(pd, ops->nqueues + 1, BAR_MSIX, 0,
					MSIX_PBA_OFF)))
			return rc;
	} else if ((rc = pci_msi_init(pd, 1))) {
		return rc;
	}
	if ((rc = add_caps(vd)) || (rc = pci_intx_init(pd)))
		return rc;
	/* Kicks: an eventfd per queue that the kernel signals (ioeventfd)
	 * and the event loop reads.  Without both (device tests), kicks are
	 * plain register writes handled on the vCPU thread. */
	if (pd->ctx->ioeventfd && pd->ctx->ev) {
		for (i = 0; i < ops->nqueues; i++) {
			struct virtio_queue *q = &vd->queues[i];

			q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
			if (q->kick_fd < 0)
				return -errno;
			rc = event_add_fd(pd->ctx->ev, q->kick_fd, EPOLLIN,
					  on_kick, q, &q->kick_ev);
			if (rc)
				return rc;
		}
	}
	return 0;
}

void virtio_pci_fini(struct virtio_dev *vd)
{
	unsigned i;

	if (!vd->queues)
		return;
	for (i = 0; i < vd->ops->nqueues; i++) {
		if (vd->queues[i].kick_ev)
			event_del(vd->queues[i].kick_ev);
		if (vd->queues[i].kick_fd >= 0)
			close(vd->queues[i].kick_fd);
	}
	free(vd->queues);
	vd->queues = NULL;
	pthread_mutex_destroy(&vd->lock);
}
