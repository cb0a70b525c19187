/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The device-model registry: a linker set of struct devmodel, as bhyve's
 * PCI_EMUL_SET.  Each model file ends with DEVMODEL_SET(model); the
 * registry walks the __start_/__stop_ range of section "khyve_devmodels".
 * Models are registered as *types*; instances are created only from the
 * config tree (pci.B.S.F nodes, lpc.* keys).
 *
 * A model receives a struct devctx (what a device may touch: buses, guest
 * memory, interrupts, the event loop, power requests) and only its own
 * config node.  That is also what device tests build, with plain memory as
 * guest RAM and a recording irq sink.
 *
 * Threads: the registry is immutable (built by the linker).
 */
#ifndef KHYVE_CORE_DEVMODEL_H
#define KHYVE_CORE_DEVMODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/irq.h"

struct bus;
struct gmem;
struct event_loop;
struct pci_dev;
struct pci_bus;

/* bhyve's exit statuses; a device ends the VM with one of these (the
 * pc-testdev debug-exit port uses any value, as QEMU's isa-debug-exit). */
enum vm_exit_status {
	VM_EXIT_REBOOT = 0,
	VM_EXIT_POWEROFF = 1,
	VM_EXIT_HALT = 2,
	VM_EXIT_TRIPLEFAULT = 3,
	VM_EXIT_ERROR = 4,
};

struct devctx {
	struct bus *pio;
	struct bus *mmio;
	const struct gmem *mem;
	struct irq_sink irq;
	struct event_loop *ev; /* NULL in tests without a loop */
	struct pci_bus *pci;   /* the PCI root, for models that need it */
	struct cfg_node *root; /* whole tree: only for platform glue (lpc) */
	/*
	 * Optional kernel fast path (NULL in tests): signal eventfd 'fd' on
	 * a guest write of 'len' bytes at 'addr' (port I/O when 'pio'),
	 * only when the value equals 'match' if 'has_match'; 'deassign'
	 * removes it.  0 or -errno.
	 */
	int (*ioeventfd)(void *opaque, int fd, uint64_t addr, unsigned len,
			 bool pio, bool has_match, uint64_t match,
			 bool deassign);
	/* End the VM with exit status 'status' ('why' for the log, may be
	 * NULL).  Any thread; the first request wins; returns at once. */
	void (*exit)(void *opaque, int status, const char *why);
	void *opaque;
	const char *vm_name;
};

/* Ask for the VM to end; safe with a NULL ctx->exit (tests). */
static inline void devctx_exit(const struct devctx *ctx, int status,
			       const char *why)
{
	if (ctx && ctx->exit)
		ctx->exit(ctx->opaque, status, why);
}

enum devmodel_kind {
	DEVMODEL_PCI, /* "-s slot,name": instances from pci.B.S.F nodes */
	DEVMODEL_LPC, /* "-l name[,conf]": an LPC device.  Its hooks get
			 the "lpc" node and own their part of it
			 (lpc.com1.*, lpc.pc-testdev). */
};

/* PCI-specific hooks, see src/pci/pci.h. */
struct pci_devops;

struct devmodel {
	const char *name;
	enum devmodel_kind kind;
	/* For an alias ("amd_hostbridge", "ahci-hd"): the model whose node
	 * this one creates; parse_legacy sets the extra keys. */
	const char *alias_of;
	/* Keys the model's node may hold (NULL-terminated table).  Generic
	 * PCI keys (device, pcireg.*, bootindex) are added by the PCI core. */
	const struct cfg_key *keys;
	/* Fill 'node' from the short option string (may be NULL).  NULL hook
	 * = cfg_split_opts().  For LPC models 'node' is the "lpc" node and
	 * opts is what follows "name," in "-l name,opts".
	 * Returns 0 or -EINVAL after logging. */
	int (*parse_legacy)(struct cfg_node *node, const char *opts);
	/* PCI models: device hooks (init, config/BAR access, dsdt). */
	const struct pci_devops *pci;
	/* LPC models: create the device if the "lpc" node configures it
	 * (else do nothing and return 0).  0 or -errno after logging. */
	int (*lpc_init)(struct devctx *ctx, struct cfg_node *lpc);
};

#define DEVMODEL_SET(m)                                                        \
	static const struct devmodel *const devmodel_ptr_##m                   \
		__attribute__((used, retain, section("khyve_devmodels"))) =    \
			&(m)

/* The model called 'name' (any kind), or NULL. */
const struct devmodel *devmodel_find(const char *name);
/* The model called 'name' of the given kind, or NULL. */
const struct devmodel *devmodel_find_kind(const char *name,
					  enum devmodel_kind kind);
/* Iterate: pass NULL to get the first; returns NULL after the last. */
const struct devmodel *devmodel_next(const struct devmodel *prev);
/* Print the names of all models of 'kind', one per line, sorted. */
void devmodel_print(enum devmodel_kind kind, void *file);

#endif
