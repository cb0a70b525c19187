/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The schema of every key khyve understands outside device nodes, and the
 * whole-tree check main() runs after parsing.
 *
 * Global keys are bhyve_config(5)'s (architecture neutral and x86), the
 * keys bhyve reads without documenting them (bootrom, bootvars, tpm.*,
 * domains.*, vcpu.*, monitor, rundir, ...) and khyve's own: boot.kernel,
 * boot.initrd, boot.cmdline (direct boot of a PVH/ELF, bzImage or
 * multiboot kernel), restore, fwcfg.file.N.{name,string,file} (-f) and
 * log.level.  PCI function nodes are checked against their model's keys
 * plus the generic PCI keys; the "lpc" node against the generic LPC keys
 * plus the keys of every DEVMODEL_LPC model.
 *
 * Threads: start-up only.  The tables are constant; no locks.
 */
#ifndef KHYVE_CONFIG_KEYS_H
#define KHYVE_CONFIG_KEYS_H

#include <stdbool.h>

#include "config/config.h"

/* The global key tables (NULL-terminated array), e.g. for the docs test. */
const struct cfg_key *const *keys_global(void);
/* Keys every pci.B.S.F node may hold: device, pcireg.*, bootindex. */
const struct cfg_key *keys_pci_generic(void);
/* Keys of the "lpc" node that no LPC model owns: comN.path, pc-testdev,
 * fwcfg, bootrom, bootvars, pcireg.*. */
const struct cfg_key *keys_lpc_generic(void);

/*
 * Check the whole tree: top-level keys against keys_global(), each
 * pci.B.S.F node against its model (an unknown model is an error naming
 * the node), the lpc node, vcpu.N.cpuset and domains.N.cpus lists and the
 * cpus/sockets/cores/threads topology (bhyve's rules).  Prints one line
 * naming the full path per problem found.  Returns 0 or -EINVAL.
 */
int config_check_all(struct cfg_node *root);

/*
 * Is 'list' a CPU list as bhyve's -p/-n accept it ("0,2,4-7": decimal
 * numbers and ascending ranges, each at most 'max')?
 */
bool keys_cpulist_ok(const char *list, unsigned long max);

#endif
