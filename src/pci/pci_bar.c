/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PCI BARs: allocation at start-up (largest first, as bhyve's
 * pci_emul_alloc_bar, to limit fragmentation), the BAR registers the
 * guest sizes and moves, and mapping onto the PIO/MMIO buses when decoding
 * is enabled in the command register.
 *
 * Locks: called with the PCI root lock held (config writes from vCPU
 * threads, or start-up).  Bus (un)registration takes only the bus's own
 * lock and never waits for readers, so moving a BAR from inside a config
 * access is safe (see bus.h).  BAR accesses themselves take no PCI lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "lib/log.h"
#include "pci/pci_priv.h"

/* 64-bit BARs up to this size go below 4 GiB, for guests that only map
 * the first 4 GiB (bhyve does the same for small 64-bit BARs). */
#define MEM64_LOW_MAX (32 * MIB)

void pci_set_windows(struct pci_bus *root, uint64_t io_base, uint64_t io_end,
		     uint64_t mem32_base, uint64_t mem32_end,
		     uint64_t mem64_base, uint64_t mem64_end)
{
	root->io = (struct pci_window){io_base, io_end, io_base};
	root->mem32 = (struct pci_window){mem32_base, mem32_end, mem32_base};
	root->mem64 = (struct pci_window){mem64_base, mem64_end, mem64_base};
}

static uint32_t bar_type_bits(const struct pci_bar *bar)
{
	switch (bar->type) {
	case PCIBAR_IO:
		return 0x1;
	case PCIBAR_MEM32:
		return bar->prefetch ? 0x8 : 0x0;
	case PCIBAR_MEM64:
		return bar->prefetch ? 0xc : 0x4;
	default:
		return 0;
	}
}

int pci_bar_alloc(struct pci_dev *pd, unsigned idx, enum pci_bar_type type,
		  uint64_t size, bool prefetch)
{
	struct pci_bar *bar;
	uint64_t s = 1;

	if (idx >= PCI_MAX_BARS || size == 0 ||
	    (type == PCIBAR_MEM64 && idx + 1 >= PCI_MAX_BARS) ||
	    (type != PCIBAR_IO && type != PCIBAR_MEM32 &&
	     type != PCIBAR_MEM64) ||
	    (type == PCIBAR_IO && size > 256) ||
	    (type == PCIBAR_MEM32 && size > GIB) || size > 64 * GIB)
		return -EINVAL;
	while (s < size)
		s <<= 1;
	if (type == PCIBAR_IO && s < 4)
		s = 4;
	if (type != PCIBAR_IO && s < 4096)
		s = 4096; /* one page: no two BARs share a page */
	bar = &pd->bar[idx];
	if (bar->type != PCIBAR_NONE ||
	    (type == PCIBAR_MEM64 && pd->bar[idx + 1].type != PCIBAR_NONE))
		return -EEXIST;
	*bar = (struct pci_bar){.type = type,
				.prefetch = prefetch,
				.size = s,
				.pd = pd,
				.idx = idx};
	pci_set32(pd, PCIR_BAR(idx), bar_type_bits(bar));
	if (type == PCIBAR_MEM64)
		pd->bar[idx + 1] = (struct pci_bar){
			.type = PCIBAR_MEM64_HI, .pd = pd, .idx = idx + 1};
	return 0;
}

/* The bus handler of a mapped BAR. */
static int bar_io(void *opaque, uint64_t off, unsigned size, bool write,
		  uint64_t *val)
{
	struct pci_bar *bar = opaque;
	struct pci_dev *pd = bar->pd;
	const struct pci_devops *ops = pd->model->pci;

	if (pci_msix_bar_access(pd, bar->idx, off, size, write, val))
		return 0;
	if (write) {
		if (ops->barwrite)
			ops->barwrite(pd, bar->idx, off, size, *val);
	} else if (ops->barread) {
		ops->barread(pd, bar->idx, off, size, val);
	}
	return 0;
}

static bool decode_on(const struct pci_dev *pd, const struct pci_bar *bar)
{
	uint16_t cmd = pci_get16(pd, PCIR_COMMAND);

	return bar->type == PCIBAR_IO ? (cmd & PCIM_CMD_PORTEN) != 0
				      : (cmd & PCIM_CMD_MEMEN) != 0;
}

/* Addresses that cannot be a real placement: 0, the sizing pattern
 * (top of the space), or the architectural area below 4 GiB. */
static bool addr_usable(const struct pci_bar *bar)
{
	uint64_t end = bar->addr + bar->size - 1;

	if (bar->addr == 0 || end < bar->addr)
		return false;
	if (bar->type == PCIBAR_IO)
		return end <= 0xffff;
	if (bar->addr < HIGHMEM_BASE && end >= IOAPIC_BASE)
		return false;
	return true;
}

static void bar_unmap(struct pci_dev *pd, struct pci_bar *bar)
{
	struct bus *bus = bar->type == PCIBAR_IO ? pd->ctx->pio : pd->ctx->mmio;

	if (!bar->mapped)
		return;
	(void)bus_unregister(bus, bar->mapped_addr);
	bar->mapped = false;
	if (pd->model->pci->barmap)
		pd->model->pci->barmap(pd, bar->idx, false, bar->mapped_addr);
}

static void bar_update(struct pci_dev *pd, struct pci_bar *bar)
{
	struct bus *bus = bar->type == PCIBAR_IO ? pd->ctx->pio : pd->ctx->mmio;
	bool want = decode_on(pd, bar) && addr_usable(bar);

	if (bar->mapped && (!want || bar->mapped_addr != bar->addr))
		bar_unmap(pd, bar);
	if (!want || bar->mapped)
		return;
	if (bus_register(bus, bar->addr, bar->size, bar_io, bar, pd->name)) {
		log_ratelimited(5000,
				"%s: BAR %u at 0x%llx overlaps another "
				"range; not mapped",
				pd->name, bar->idx,
				(unsigned long long)bar->addr);
		return;
	}
	bar->mapped = true;
	bar->mapped_addr = bar->addr;
	if (pd->model->pci->barmap)
		pd->model->pci->barmap(pd, bar->idx, true, bar->addr);
}

void pci_bars_update(struct pci_dev *pd)
{
	unsigned i;

	for (i = 0; i < PCI_MAX_BARS; i++)
		if (pd->bar[i].size)
			bar_update(pd, &pd->bar[i]);
}

void pci_bars_unmap(struct pci_dev *pd)
{
	unsigned i;

	for (i = 0; i < PCI_MAX_BARS; i++)
		if (pd->bar[i].size)
			bar_unmap(pd, &pd->bar[i]);
}

/* Recompute a BAR's address from its register(s) after a write. */
static void bar_from_regs(struct pci_dev *pd, struct pci_bar *bar)
{
	uint64_t lo = pci_get32(pd, PCIR_BAR(bar->idx));

	if (bar->type == PCIBAR_IO)
		bar->addr = lo & ~3ULL;
	else if (bar->type == PCIBAR_MEM32)
		bar->addr = lo & ~0xfULL;
	else
		bar->addr = (lo & ~0xfULL) |
			    (uint64_t)pci_get32(pd, PCIR_BAR(bar->idx + 1))
				    << 32;
}

bool pci_bar_cfgwrite(struct pci_dev *pd, unsigned off, unsigned size,
		      uint32_t val)
{
	unsigned reg, idx, i;
	uint32_t old, nv, mask;
	struct pci_bar *bar;

	if (off + size <= PCIR_BAR(0) || off >= PCIR_BAR(PCI_MAX_BARS))
		return false;
	if ((pci_get8(pd, PCIR_HDRTYPE) & 0x7f) != 0)
		return false; /* bridges are not modelled */
	reg = off & ~3u;
	idx = (reg - PCIR_BAR(0)) / 4;
	old = pci_get32(pd, reg);
	nv = old;
	for (i = 0; i < size; i++) {
		unsigned sh = 8 * ((off & 3) + i);

		nv = (nv & ~(0xffu << sh)) | (((val >> (8 * i)) & 0xff) << sh);
	}
	bar = &pd->bar[idx];
	switch (bar->type) {
	case PCIBAR_NONE:
		return true; /* unimplemented BARs read as zero */
	case PCIBAR_IO:
	case PCIBAR_MEM32:
	case PCIBAR_MEM64:
		mask = (uint32_t) ~(bar->size - 1);
		if (bar->type == PCIBAR_IO) /* flag bits 1:0 (I/O BARs can
					       be as small as 4 bytes) */
			nv = (nv & mask & ~3u) | 1u;
		else
			nv = (nv & mask & ~0xfu) | bar_type_bits(bar);
		break;
	case PCIBAR_MEM64_HI:
		bar = &pd->bar[idx - 1];
		mask = bar->size >= (1ULL << 32)
			       ? (uint32_t) ~((bar->size - 1) >> 32)
			       : 0xffffffffu;
		nv &= mask;
		break;
	}
	pci_set32(pd, reg, nv);
	bar_from_regs(pd, bar);
	bar_update(pd, bar);
	return true;
}

struct bar_ref {
	struct pci_dev *pd;
	unsigned idx;
	uint64_t size;
};

/* By bus, then largest first. */
static int cmp_bar_ref(const void *a, const void *b)
{
	const struct bar_ref *x = a, *y = b;

	if (x->pd->bus != y->pd->bus)
		return x->pd->bus < y->pd->bus ? -1 : 1;
	return x->size > y->size ? -1 : x->size < y->size;
}

struct collect_ctx {
	struct bar_ref *v;
	unsigned n, cap;
	int rc;
};

static void collect_bars(void *arg, struct pci_dev *pd)
{
	struct collect_ctx *c = arg;
	unsigned i;

	pd->root->res[pd->bus].used = true;
	for (i = 0; i < PCI_MAX_BARS; i++) {
		struct bar_ref *nv;

		if (!pd->bar[i].size || pd->bar[i].type == PCIBAR_MEM64_HI)
			continue;
		if (c->n == c->cap) {
			c->cap = c->cap ? 2 * c->cap : 16;
			nv = realloc(c->v, c->cap * sizeof(*nv));
			if (!nv) {
				c->rc = -ENOMEM;
				return;
			}
			c->v = nv;
		}
		c->v[c->n++] = (struct bar_ref){pd, i, pd->bar[i].size};
	}
}

/* Find room for 'size' bytes in 'w', skipping ranges already on 'bus'. */
static int window_take(struct pci_window *w, struct bus *bus, uint64_t size,
		       uint64_t *addr)
{
	uint64_t a = (w->next + size - 1) & ~(size - 1);

	for (; a >= w->next && a + size - 1 <= w->end && a + size - 1 >= a;
	     a += size) {
		uint64_t p;
		bool busy = false;

		/* I/O windows may hold fixed ports (pc-testdev at 0x2000):
		 * probe each port; memory windows are free of fixed ranges
		 * but a stride probe is cheap. */
		for (p = a; p < a + size && !busy; p += size > 4096 ? 4096 : 1)
			busy = bus_claimed(bus, p);
		if (busy)
			continue;
		*addr = a;
		w->next = a + size;
		return 0;
	}
	return -ENOSPC;
}

/* Bus boundaries inside the windows, so that each bus's part can be
 * described on its own (I/O in 4 KiB, memory in 1 MiB steps). */
#define BUS_IO_ALIGN 0x1000ULL
#define BUS_MEM_ALIGN (1ULL << 20)

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Start a bus: align the windows and remember where its part begins. */
static void bus_begin(struct pci_bus *root, unsigned bus)
{
	struct pci_bus_res *r = &root->res[bus];

	root->io.next = align_up(root->io.next, BUS_IO_ALIGN);
	root->mem32.next = align_up(root->mem32.next, BUS_MEM_ALIGN);
	root->mem64.next = align_up(root->mem64.next, BUS_MEM_ALIGN);
	r->io_lo = root->io.next;
	r->m32_lo = root->mem32.next;
	r->m64_lo = root->mem64.next;
}

/* End a bus: its part ends at the next boundary. */
static void bus_end(struct pci_bus *root, unsigned bus)
{
	struct pci_bus_res *r = &root->res[bus];

	r->io_hi = align_up(root->io.next, BUS_IO_ALIGN) - 1;
	r->m32_hi = align_up(root->mem32.next, BUS_MEM_ALIGN) - 1;
	r->m64_hi = align_up(root->mem64.next, BUS_MEM_ALIGN) - 1;
}

unsigned pci_buses(struct pci_bus *root, uint8_t *buses, unsigned max)
{
	unsigned b, n = 0;

	for (b = 0; b < PCI_MAX_BUSES && n < max; b++)
		if (root->res[b].used)
			buses[n++] = (uint8_t)b;
	return n;
}

bool pci_bus_windows(struct pci_bus *root, unsigned bus,
		     struct pci_bus_windows *w)
{
	const struct pci_bus_res *r;
	uint8_t all[2];

	if (bus >= PCI_MAX_BUSES || !root->res[bus].used)
		return false;
	if (pci_buses(root, all, 2) == 1) {
		*w = (struct pci_bus_windows){
			root->io.base,	 root->io.end,	   root->mem32.base,
			root->mem32.end, root->mem64.base, root->mem64.end};
		return true;
	}
	r = &root->res[bus];
	*w = (struct pci_bus_windows){r->io_lo,	 r->io_hi,  r->m32_lo,
				      r->m32_hi, r->m64_lo, r->m64_hi};
	return true;
}

int pci_assign_bars(struct pci_bus *root)
{
	struct collect_ctx c = {0};
	unsigned i, b, cur = PCI_MAX_BUSES;
	int rc = 0;

	pci_foreach(root, collect_bars, &c);
	if (c.rc)
		return c.rc;
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), cmp_bar_ref);
	for (b = 0; b < PCI_MAX_BUSES; b++) {
		bool has_bars = false;

		if (!root->res[b].used)
			continue;
		for (i = 0; i < c.n; i++)
			has_bars |= c.v[i].pd->bus == b;
		if (!has_bars) { /* functions without BARs: empty windows */
			root->res[b].io_lo = root->res[b].m32_lo = 1;
			root->res[b].m64_lo = 1;
		}
	}
	for (i = 0; i < c.n && rc == 0; i++) {
		struct pci_dev *pd = c.v[i].pd;
		struct pci_bar *bar = &pd->bar[c.v[i].idx];
		struct pci_window *w;
		struct bus *bus = pd->ctx->mmio;
		uint64_t addr = 0;

		if (pd->bus != cur) {
			if (cur < PCI_MAX_BUSES)
				bus_end(root, cur);
			cur = pd->bus;
			bus_begin(root, cur);
		}

		if (bar->type == PCIBAR_IO) {
			w = &root->io;
			bus = pd->ctx->pio;
		} else if (bar->type == PCIBAR_MEM32 ||
			   bar->size <= MEM64_LOW_MAX) {
			w = &root->mem32;
		} else {
			w = &root->mem64;
		}
		rc = window_take(w, bus, bar->size, &addr);
		if (rc) {
			log_err("%s: no room for BAR %u (%llu bytes) in the "
				"PCI %s window",
				pd->name, bar->idx,
				(unsigned long long)bar->size,
				bar->type == PCIBAR_IO ? "I/O" : "memory");
			break;
		}
		pci_set32(pd, PCIR_BAR(bar->idx),
			  (uint32_t)addr | bar_type_bits(bar));
		if (bar->type == PCIBAR_MEM64)
			pci_set32(pd, PCIR_BAR(bar->idx + 1),
				  (uint32_t)(addr >> 32));
		bar->addr = addr;
		pci_set16(pd, PCIR_COMMAND,
			  pci_get16(pd, PCIR_COMMAND) |
				  (bar->type == PCIBAR_IO ? PCIM_CMD_PORTEN
							  : PCIM_CMD_MEMEN));
	}
	if (cur < PCI_MAX_BUSES)
		bus_end(root, cur);
	for (i = 0; i < c.n && rc == 0; i++)
		bar_update(c.v[i].pd, &c.v[i].pd->bar[c.v[i].idx]);
	free(c.v);
	return rc;
}
