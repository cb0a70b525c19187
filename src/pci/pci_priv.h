/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Internals shared by the PCI core files (pci.c: config space and
 * instances; pci_bar.c: BAR allocation and mapping; pci_irq.c: INTx, MSI,
 * MSI-X).  Not for device models.
 */
#ifndef KHYVE_PCI_PCI_PRIV_H
#define KHYVE_PCI_PCI_PRIV_H

#include "core/layout.h"
#include "pci/pci.h"

struct pci_window {
	uint64_t base, end, next; /* end inclusive; next = first free */
};

/* What pci_assign_bars() gave one bus (inclusive; lo > hi = none). */
struct pci_bus_res {
	bool used;
	uint64_t io_lo, io_hi, m32_lo, m32_hi, m64_lo, m64_hi;
};

struct pci_bus {
	struct devctx *ctx;
	pthread_mutex_t lock; /* config space, BAR mapping */
	uint32_t cf8;	      /* the address latch */
	/* Sparse: one table of functions per bus that has any. */
	struct pci_dev **fn[PCI_MAX_BUSES];
	struct pci_window io, mem32, mem64;
	struct pci_bus_res res[PCI_MAX_BUSES];
	pthread_mutex_t intx_lock; /* intx_count */
	unsigned intx_count[IOAPIC_PINS];
};

/* pci_bar.c: a BAR register was written; returns true if [off, off+size)
 * touched BAR registers (then the write is fully handled). */
bool pci_bar_cfgwrite(struct pci_dev *pd, unsigned off, unsigned size,
		      uint32_t val);
/* pci_bar.c: (re)map every BAR after a command-register change. */
void pci_bars_update(struct pci_dev *pd);
/* pci_bar.c: unmap all BARs (teardown). */
void pci_bars_unmap(struct pci_dev *pd);

/* pci_irq.c: a config write landed in [off, off+size): react to MSI-X
 * control and INTx-disable changes (called after the image is updated). */
void pci_irq_cfgwritten(struct pci_dev *pd, unsigned off, unsigned size,
			uint16_t old_cmd);
/* pci_irq.c: MSI-X table/PBA access inside BAR 'idx'; returns true if
 * the access hit the table or PBA. */
bool pci_msix_bar_access(struct pci_dev *pd, unsigned idx, uint64_t off,
			 unsigned size, bool write, uint64_t *val);
/* pci_irq.c: release eventfds and kernel bindings. */
void pci_irq_free(struct pci_dev *pd);

#endif
