/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bhyve(8)'s command line, mapped onto the configuration tree: the amd64
 * option set (bhyve_optparse), the "-s slot,emulation[,conf]" syntax
 * (pci_parse_slot) and "-l lpcdev[,conf]" (lpc_device_parse).  Every flag
 * only writes keys; nothing is opened or created here.  Error texts are
 * bhyve's, word for word (log_err adds the "khyve: " prefix), because
 * libvirt and scripts grep for them.
 *
 * Flag -> key (bhyve_config(5) names unless marked "khyve"):
 *   -a  x86.x2apic=false          -A  no-op (ACPI tables are always built)
 *   -C  memory.guest_in_core=true -c  cpus, sockets, cores, threads
 *   -D  destroy_on_poweroff=true  -e  x86.strictio=true
 *   -G  [w][addr:]port -> gdb.wait=true, gdb.address, gdb.port
 *   -H  x86.vmexit_on_hlt=true    -h  usage on stderr, FLAGS_EXIT_OK
 *   -I  no-op                     -k  file: path=value lines, in order
 *   -K  keyboard.layout           -m  memory.size (user's string, checked)
 *   -M  monitor=true              -o  path=value
 *   -n  id=N,size=S,cpus=LIST[,domain_policy=P] -> domains.N.{size,cpus,
 *       domain_policy}; bare items after cpus= extend the list
 *       ("cpus=0,2-3"); needs acpi_tables
 *   -P  x86.vmexit_on_pause=true  -p  V:H appends H to vcpu.V.cpuset
 *   -r  restore=FILE (khyve; bhyve keeps it outside the tree)
 *   -S  memory.wired=true         -s  pci.B.S.F.* (see below)
 *   -U  uuid                      -u  rtc.use_localtime=false
 *   -W  virtio_msix=false         -w  x86.strictmsr=false
 *   -x  x86.x2apic=true           -Y  x86.mptable=false
 *   -l  see below                 vmname (the one operand) -> name
 *   -f  [name=]NAME,(string|file)=DATA (khyve keys): fw_cfg names are
 *       paths such as "opt/com.coreos/config" whose dots cannot be tree
 *       components, so item N (0, 1, ... in command-line order, after any
 *       items already in the tree) is stored as
 *         fwcfg.file.N.name=NAME and fwcfg.file.N.string=DATA, or
 *         fwcfg.file.N.file=PATH (read when the VM starts).
 *       NAME is at most 55 bytes and may not repeat.
 *
 * -s B:S:F,emul[,conf] with slot forms "S", "S:F" and "B:S:F" (bus 0-255,
 * slot 0-31, function 0-7) creates node pci.B.S.F with device=<emul> (the
 * target's name for an alias model) and fills it with the model's
 * parse_legacy(node, conf), or cfg_split_opts() when it has none.  Models
 * are DEVMODEL_PCI entries of the registry; "-s help" lists them.
 *
 * -l: "-l help" prints bootrom, com1-com4, tpm, pc-testdev.  A DEVMODEL_LPC
 * model of that name gets parse_legacy(<"lpc" node>, conf).  Otherwise
 * built in: comN,BACKEND -> lpc.comN.path; pc-testdev -> lpc.pc-testdev;
 * bootrom,ROM[,VARS][,k=v...] -> bootrom, bootvars and k=v on the lpc node;
 * tpm,TYPE,PATH[,k=v...] -> tpm.type, tpm.path, tpm.version (default 2.0).
 * As bhyve, lpc.bootrom/lpc.bootvars set with -o/-k are copied to
 * bootrom/bootvars with a deprecation warning.
 *
 * Threads: start-up only (uses getopt's global state).  No locks.
 */
#ifndef KHYVE_CONFIG_FLAGS_H
#define KHYVE_CONFIG_FLAGS_H

#include "config/config.h"

/* flags_parse() result: help was printed, the program should exit 0. */
#define FLAGS_EXIT_OK 1

/*
 * Set bhyve's defaults (bhyve_init_config plus the documented defaults of
 * bhyve_config(5)) in 'root' before any flag is parsed, so a dump shows
 * them and flags override them.  "cpus" is left unset: bhyve derives it
 * from sockets*cores*threads.
 */
void flags_set_defaults(struct cfg_node *root);

/*
 * Parse argv (argv[0] is the program name) into 'root'.  Returns 0 (run
 * the VM), FLAGS_EXIT_OK (-h, "-s help" or "-l help" printed; exit 0) or
 * -EINVAL after printing one error line (main exits 4).  Exactly one
 * operand, the VM name, is required unless "name" was set by -k or -o.
 * Resets getopt (optind = 0) itself, so it may be called more than once.
 */
int flags_parse(struct cfg_node *root, int argc, char **argv);

#endif
