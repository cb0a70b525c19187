/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * How a device raises interrupts, without knowing whether a kernel irqchip
 * or a test harness is behind it.  The VM installs a sink that forwards to
 * hv_vm_set_irq()/hv_vm_msi(); device tests install one that records.
 *
 * Threads: the callbacks may be called from any thread.
 */
#ifndef KHYVE_CORE_IRQ_H
#define KHYVE_CORE_IRQ_H

#include <stdint.h>

struct irq_sink {
	/* Set line 'gsi' to 'level' (0/1).  Returns 0 or -errno. */
	int (*set_irq)(void *opaque, unsigned gsi, int level);
	/* Send an MSI.  Returns 0 or -errno. */
	int (*msi)(void *opaque, uint64_t addr, uint32_t data);
	/*
	 * Optional kernel fast path (NULL in tests): make a write to eventfd
	 * 'fd' deliver the MSI (addr, data) without user space (KVM GSI
	 * route + irqfd).  *handle is -1 for a new binding, else the value a
	 * previous call stored (the message is then updated).  0 or -errno.
	 */
	int (*msi_bind)(void *opaque, int fd, uint64_t addr, uint32_t data,
			int *handle);
	/* Undo msi_bind for 'fd' / 'handle'. */
	void (*msi_unbind)(void *opaque, int fd, int handle);
	void *opaque;
};

/* Convenience wrappers; a NULL sink is ignored (returns 0). */
static inline int irq_set(const struct irq_sink *s, unsigned gsi, int level)
{
	return s && s->set_irq ? s->set_irq(s->opaque, gsi, level) : 0;
}

/* Pulse an edge-triggered line (assert then deassert). */
static inline int irq_pulse(const struct irq_sink *s, unsigned gsi)
{
	int rc = irq_set(s, gsi, 1);

	return rc ? rc : irq_set(s, gsi, 0);
}

static inline int irq_msi(const struct irq_sink *s, uint64_t addr,
			  uint32_t data)
{
	return s && s->msi ? s->msi(s->opaque, addr, data) : 0;
}

#endif
