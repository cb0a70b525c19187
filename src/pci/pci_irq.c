/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PCI interrupts: INTx routed to IOAPIC pins 16-23, the 64-bit MSI
 * capability, and MSI-X (capability, table and PBA in a memory BAR).
 *
 * MSI-X delivery takes the kernel fast path where there is one: the first
 * time an unmasked vector fires, it gets an eventfd bound to a KVM MSI
 * route (irqfd, through ctx->irq.msi_bind); afterwards a notification is a
 * write(2) on that eventfd from whichever thread completes the work, and
 * the vCPU threads never see it.  Table writes update the route.  Masked
 * vectors set their PBA bit and fire when unmasked (PCI 3.0 §6.8.2).
 *
 * Locks: pd->irq_lock protects the MSI-X shadow table and pending bits and
 * the INTx state; root->intx_lock the per-pin assertion counts (shared
 * lines).  MSI capability registers are read from the config image under
 * irq_lock (config writes hold the root lock, and single dword reads of
 * the image are atomic enough for a message that changes only while the
 * guest has MSI disabled).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/log.h"
#include "pci/pci_priv.h"

#define MSIX_CTRL_ENABLE 0x8000
#define MSIX_CTRL_FMASK 0x4000
#define MSIX_ENTRY_SIZE 16
#define MSI_CTRL_ENABLE 0x0001
#define MSI_CTRL_64BIT 0x0080

/* ---- INTx ---- */

int pci_intx_init(struct pci_dev *pd)
{
	unsigned pin = 1; /* INTA */

	pd->intx_gsi = 16 + ((pd->bus + pd->slot + pin - 1) % 8);
	pci_set8(pd, PCIR_INTPIN, (uint8_t)pin);
	pci_set8(pd, PCIR_INTLINE, (uint8_t)pd->intx_gsi);
	return 0;
}

static void intx_set(struct pci_dev *pd, bool level)
{
	struct pci_bus *root = pd->root;
	unsigned gsi = pd->intx_gsi, before, after;

	pthread_mutex_lock(&root->intx_lock);
	before = root->intx_count[gsi];
	if (level)
		root->intx_count[gsi]++;
	else if (root->intx_count[gsi])
		root->intx_count[gsi]--;
	after = root->intx_count[gsi];
	if (!!before != !!after)
		(void)irq_set(&pd->ctx->irq, gsi, after ? 1 : 0);
	pthread_mutex_unlock(&root->intx_lock);
}

/*
 * The status bit records what the device wants (PCI 3.0: Interrupt Status
 * is independent of INTx Disable); the line is that, unless disabled.
 * irq_lock held.
 */
static void intx_update(struct pci_dev *pd, bool want)
{
	uint16_t st = pci_get16(pd, PCIR_STATUS);
	bool line;

	if (!pd->intx_gsi)
		return;
	line = want && !(pci_get16(pd, PCIR_COMMAND) & PCIM_CMD_INTxDIS);
	pci_set16(pd, PCIR_STATUS,
		  want ? st | PCIM_STATUS_INTxSTATE
		       : st & ~PCIM_STATUS_INTxSTATE);
	if (line != pd->intx_asserted) {
		pd->intx_asserted = line;
		intx_set(pd, line);
	}
}

static bool intx_want(struct pci_dev *pd)
{
	return (pci_get16(pd, PCIR_STATUS) & PCIM_STATUS_INTxSTATE) != 0;
}

void pci_intx_assert(struct pci_dev *pd)
{
	pthread_mutex_lock(&pd->irq_lock);
	intx_update(pd, true);
	pthread_mutex_unlock(&pd->irq_lock);
}

void pci_intx_deassert(struct pci_dev *pd)
{
	pthread_mutex_lock(&pd->irq_lock);
	intx_update(pd, false);
	pthread_mutex_unlock(&pd->irq_lock);
}

struct route_ctx {
	unsigned bus;
	uint8_t *slot, *pin, *gsi;
	unsigned n, max;
	uint8_t seen[PCI_MAX_SLOTS];
};

static void route_one(void *arg, struct pci_dev *pd)
{
	struct route_ctx *r = arg;
	uint8_t pin = pci_get8(pd, PCIR_INTPIN);

	if (pd->bus != r->bus || !pd->intx_gsi || !pin || r->n >= r->max ||
	    (r->seen[pd->slot] & (1u << pin)))
		return;
	r->seen[pd->slot] |= (uint8_t)(1u << pin);
	r->slot[r->n] = pd->slot;
	r->pin[r->n] = (uint8_t)(pin - 1);
	r->gsi[r->n] = (uint8_t)pd->intx_gsi;
	r->n++;
}

unsigned pci_intx_routes(struct pci_bus *root, unsigned bus, uint8_t *slot,
			 uint8_t *pin, uint8_t *gsi, unsigned max)
{
	struct route_ctx r = {
		.bus = bus, .slot = slot, .pin = pin, .gsi = gsi, .max = max};

	pci_foreach(root, route_one, &r);
	return r.n;
}

/* ---- MSI ---- */

int pci_msi_init(struct pci_dev *pd, unsigned nvec)
{
	uint8_t cap[16] = {PCIY_MSI, 0};
	unsigned mmc = 0, off;
	int rc;

	if (nvec == 0 || nvec > 32 || (nvec & (nvec - 1)))
		return -EINVAL;
	while ((1u << mmc) < nvec)
		mmc++;
	cap[2] = (uint8_t)(MSI_CTRL_64BIT | mmc << 1);
	rc = pci_add_cap(pd, cap, sizeof(cap), &off);
	if (rc)
		return rc;
	pd->msi.cap = off;
	pd->msi.nvec = nvec;
	pd->wmask[off + 2] = 0x71;	       /* enable, MME */
	memset(pd->wmask + off + 4, 0xff, 10); /* address, data */
	pd->wmask[off + 4] = 0xfc;
	return 0;
}

bool pci_msi_enabled(struct pci_dev *pd)
{
	return pd->msi.cap &&
	       (pci_get16(pd, pd->msi.cap + 2) & MSI_CTRL_ENABLE);
}

static int msi_send(struct pci_dev *pd, unsigned vec)
{
	unsigned c = pd->msi.cap;
	unsigned mme = (pci_get16(pd, c + 2) >> 4) & 7;
	uint64_t addr = pci_get32(pd, c + 4) | (uint64_t)pci_get32(pd, c + 8)
						       << 32;
	uint32_t data = pci_get16(pd, c + 12);

	if (vec >= (1u << mme))
		return -EINVAL;
	data = (data & ~((1u << mme) - 1)) | vec;
	return irq_msi(&pd->ctx->irq, addr, data);
}

/* ---- MSI-X ---- */

int pci_msix_init(struct pci_dev *pd, unsigned nvec, unsigned bar,
		  uint64_t table_off, uint64_t pba_off)
{
	uint8_t cap[12] = {PCIY_MSIX, 0};
	uint64_t tlen = (uint64_t)nvec * MSIX_ENTRY_SIZE;
	uint64_t plen = ((nvec + 63) / 64) * 8;
	unsigned i, off;
	int rc;

	if (nvec == 0 || nvec > PCI_MSIX_MAX_VECTORS || bar >= PCI_MAX_BARS ||
	    (pd->bar[bar].type != PCIBAR_MEM32 &&
	     pd->bar[bar].type != PCIBAR_MEM64) ||
	    (table_off & 7) || (pba_off & 7) ||
	    table_off + tlen > pd->bar[bar].size ||
	    pba_off + plen > pd->bar[bar].size ||
	    (table_off < pba_off + plen && pba_off < table_off + tlen))
		return -EINVAL;
	pd->msix.vec = calloc(nvec, sizeof(*pd->msix.vec));
	if (!pd->msix.vec)
		return -ENOMEM;
	for (i = 0; i < nvec; i++)
		pd->msix.vec[i] = (struct pci_msix_vec){
			.ctrl = 1, .efd = -1, .handle = -1};
	cap[2] = (uint8_t)(nvec - 1);
	cap[3] = (uint8_t)((nvec - 1) >> 8);
	cap[4] = (uint8_t)(table_off | bar);
	cap[5] = (uint8_t)(table_off >> 8);
	cap[6] = (uint8_t)(table_off >> 16);
	cap[7] = (uint8_t)(table_off >> 24);
	cap[8] = (uint8_t)(pba_off | bar);
	cap[9] = (uint8_t)(pba_off >> 8);
	cap[10] = (uint8_t)(pba_off >> 16);
	cap[11] = (uint8_t)(pba_off >> 24);
	rc = pci_add_cap(pd, cap, sizeof(cap), &off);
	if (rc) {
		free(pd->msix.vec);
		pd->msix.vec = NULL;
		return rc;
	}
	pd->wmask[off + 3] = 0xc0; /* enable, function mask */
	pd->msix = (struct pci_msix){.nvec = nvec,
				     .cap = off,
				     .bar = bar,
				     .table_off = table_off,
				     .pba_off = pba_off,
				     .vec = pd->msix.vec};
	return 0;
}

/* The MSI-X control word.  Device threads read it without the config
 * lock while a vCPU may write it: single-byte atomic loads, so a reader
 * sees either the old or the new value of each byte. */
static uint16_t msix_ctrl(struct pci_dev *pd)
{
	const uint8_t *p;

	if (!pd->msix.cap)
		return 0;
	p = &pd->cfg[pd->msix.cap + 2];
	return (uint16_t)(__atomic_load_n(&p[0], __ATOMIC_RELAXED) |
			  __atomic_load_n(&p[1], __ATOMIC_RELAXED) << 8);
}

bool pci_msix_enabled(struct pci_dev *pd)
{
	return (msix_ctrl(pd) & MSIX_CTRL_ENABLE) != 0;
}

/* Deliver vector 'v' now (irq_lock held, vector unmasked). */
static int msix_deliver(struct pci_dev *pd, struct pci_msix_vec *v)
{
	const struct irq_sink *s = &pd->ctx->irq;
	uint64_t one = 1;

	if (v->efd < 0 && s->msi_bind) {
		int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

		if (fd >= 0 && s->msi_bind(s->opaque, fd, v->addr, v->data,
					   &v->handle) == 0)
			v->efd = fd;
		else if (fd >= 0)
			close(fd);
	}
	if (v->efd >= 0)
		return write(v->efd, &one, sizeof(one)) == sizeof(one) ? 0
								       : -errno;
	return irq_msi(s, v->addr, v->data);
}

static bool msix_masked(struct pci_dev *pd, const struct pci_msix_vec *v)
{
	return (v->ctrl & 1) || (msix_ctrl(pd) & MSIX_CTRL_FMASK);
}

/* Fire pending vectors that are now unmasked (irq_lock held). */
static void msix_flush_pending(struct pci_dev *pd)
{
	unsigned i;

	if (!pci_msix_enabled(pd))
		return;
	for (i = 0; i < pd->msix.nvec; i++) {
		struct pci_msix_vec *v = &pd->msix.vec[i];

		if (v->pending && !msix_masked(pd, v)) {
			v->pending = false;
			(void)msix_deliver(pd, v);
		}
	}
}

static void table_access(struct pci_dev *pd, uint64_t off, unsigned size,
			 bool write, uint64_t *val)
{
	struct pci_msix_vec *v = &pd->msix.vec[off / MSIX_ENTRY_SIZE];
	unsigned field = (unsigned)(off % MSIX_ENTRY_SIZE);
	uint32_t *f32[4] = {NULL, NULL, &v->data, &v->ctrl};
	uint32_t lo = (uint32_t)v->addr, hi = (uint32_t)(v->addr >> 32);
	bool route_changed = false;

	f32[0] = &lo;
	f32[1] = &hi;
	if ((size != 4 && size != 8) || (field & (size - 1))) {
		log_ratelimited(5000,
				"%s: MSI-X table access of %u bytes at "
				"0x%llx ignored",
				pd->name, size, (unsigned long long)off);
		return;
	}
	if (!write) {
		*val = *f32[field / 4];
		if (size == 8)
			*val |= (uint64_t)*f32[field / 4 + 1] << 32;
		return;
	}
	*f32[field / 4] = (uint32_t)*val;
	if (size == 8)
		*f32[field / 4 + 1] = (uint32_t)(*val >> 32);
	v->ctrl &= 1;
	if (field < 12) {
		route_changed = v->addr != ((uint64_t)hi << 32 | lo) ||
				field == 8 || (size == 8 && field == 4);
		v->addr = (uint64_t)hi << 32 | lo;
	}
	if (route_changed && v->efd >= 0 && pd->ctx->irq.msi_bind)
		(void)pd->ctx->irq.msi_bind(pd->ctx->irq.opaque, v->efd,
					    v->addr, v->data, &v->handle);
	msix_flush_pending(pd);
}

bool pci_msix_bar_access(struct pci_dev *pd, unsigned idx, uint64_t off,
			 unsigned size, bool write, uint64_t *val)
{
	struct pci_msix *m = &pd->msix;
	uint64_t tlen, plen;

	if (!m->cap || idx != m->bar)
		return false;
	tlen = (uint64_t)m->nvec * MSIX_ENTRY_SIZE;
	plen = ((m->nvec + 63) / 64) * 8;
	if (off >= m->table_off && off < m->table_off + tlen) {
		pthread_mutex_lock(&pd->irq_lock);
		table_access(pd, off - m->table_off, size, write, val);
		pthread_mutex_unlock(&pd->irq_lock);
		return true;
	}
	if (off >= m->pba_off && off < m->pba_off + plen) {
		uint64_t base = (off - m->pba_off) * 8, bits = 0;
		unsigned i;

		if (write)
			return true; /* the PBA is read-only */
		pthread_mutex_lock(&pd->irq_lock);
		for (i = 0; i < size * 8 && base + i < m->nvec; i++)
			if (m->vec[base + i].pending)
				bits |= 1ULL << i;
		pthread_mutex_unlock(&pd->irq_lock);
		*val = bits;
		return true;
	}
	return false;
}

void pci_irq_cfgwritten(struct pci_dev *pd, unsigned off, unsigned size,
			uint16_t old_cmd)
{
	bool touched_msix = pd->msix.cap && off < pd->msix.cap + 4 &&
			    off + size > pd->msix.cap + 2;
	bool touched_msi = pd->msi.cap && off < pd->msi.cap + 16 &&
			   off + size > pd->msi.cap;
	bool touched_cmd = off < PCIR_COMMAND + 2 && off + size > PCIR_COMMAND;

	if (!touched_msix && !touched_msi && !touched_cmd)
		return;
	pthread_mutex_lock(&pd->irq_lock);
	if (touched_msix)
		msix_flush_pending(pd);
	if (touched_cmd &&
	    ((old_cmd ^ pci_get16(pd, PCIR_COMMAND)) & PCIM_CMD_INTxDIS))
		intx_update(pd, intx_want(pd));
	pthread_mutex_unlock(&pd->irq_lock);
	if ((touched_msix || touched_msi) && pd->model->pci->irq_changed)
		pd->model->pci->irq_changed(pd);
}

int pci_irq_notify(struct pci_dev *pd, unsigned vec)
{
	int rc = 0;

	pthread_mutex_lock(&pd->irq_lock);
	if (pci_msix_enabled(pd)) {
		struct pci_msix_vec *v;

		if (vec >= pd->msix.nvec) {
			rc = -EINVAL;
		} else {
			v = &pd->msix.vec[vec];
			if (msix_masked(pd, v))
				v->pending = true;
			else
				rc = msix_deliver(pd, v);
		}
	} else if (pci_msi_enabled(pd)) {
		rc = msi_send(pd, vec);
	} else if (pd->intx_gsi) {
		intx_update(pd, true);
	}
	pthread_mutex_unlock(&pd->irq_lock);
	return rc;
}

void pci_irq_free(struct pci_dev *pd)
{
	const struct irq_sink *s = &pd->ctx->irq;
	unsigned i;

	for (i = 0; pd->msix.vec && i < pd->msix.nvec; i++) {
		struct pci_msix_vec *v = &pd->msix.vec[i];

		if (v->efd < 0)
			continue;
		if (s->msi_unbind)
			s->msi_unbind(s->opaque, v->efd, v->handle);
		close(v->efd);
	}
	free(pd->msix.vec);
	pd->msix.vec = NULL;
	if (pd->intx_asserted)
		intx_set(pd, false);
}
