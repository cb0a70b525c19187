/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Key schemas for the top of the tree, the generic PCI and LPC keys, and
 * config_check_all() (see keys.h).  Defaults in the tables are the values
 * the code uses when a key is unset; they feed the docs, nothing reads
 * them at run time.
 *
 * Threads: start-up only; the tables are constant.  No locks.
 */
#include "config/keys.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/devmodel.h"
#include "lib/log.h"

#define MIB (1024ULL * 1024)
#define MAX_VCPUS 65535
#define MAX_DOMAINS 8

/* clang-format off */
#define K_STR(n, d, h) {n, CFG_STRING, d, h, 0, 0, 0}
#define K_BOOL(n, d, h) {n, CFG_BOOL, d, h, 0, 0, 0}
#define K_INT(n, d, h, lo, hi) {n, CFG_INT, d, h, lo, hi, 0}
#define K_SIZE(n, d, h, u, lo) {n, CFG_SIZE, d, h, lo, 0, u}
#define K_NODE(n, h) {n, CFG_NODE, NULL, h, 0, 0, 0}
#define K_END {NULL, CFG_STRING, NULL, NULL, 0, 0, 0}
/* clang-format on */

/* bhyve_config(5), architecture neutral, plus keys bhyve reads. */
static const struct cfg_key keys_common[] = {
	K_STR("name", NULL, "VM name (the vmname operand)"),
	K_INT("cpus", "1", "number of vCPUs", 1, MAX_VCPUS),
	K_INT("sockets", "cpus", "CPU sockets", 1, MAX_VCPUS),
	K_INT("cores", "1", "cores per socket", 1, MAX_VCPUS),
	K_INT("threads", "1", "threads per core", 1, MAX_VCPUS),
	K_STR("vcpu.*.cpuset", NULL, "host CPUs vCPU N may run on (-p)"),
	K_SIZE("domains.*.size", NULL, "memory of NUMA domain N (-n)", MIB,
	       MIB),
	K_STR("domains.*.cpus", NULL, "vCPUs of NUMA domain N (-n)"),
	K_STR("domains.*.domain_policy", NULL,
	      "host memory policy of NUMA domain N (cpuset(1) -n syntax)"),
	K_SIZE("memory.size", "256M", "guest RAM (bare number: MiB)", MIB, MIB),
	K_BOOL("memory.wired", "false", "wire (mlock) guest memory (-S)"),
	K_BOOL("memory.guest_in_core", "false",
	       "include guest memory in core dumps (-C)"),
	K_BOOL("acpi_tables", "true", "build ACPI tables"),
	K_BOOL("acpi_tables_in_memory", "true",
	       "put ACPI tables in guest memory as well as in fw_cfg"),
	K_BOOL("destroy_on_poweroff", "false",
	       "destroy the VM on guest power-off (-D)"),
	K_STR("gdb.address", "localhost", "debug server address (-G)"),
	K_INT("gdb.port", "0", "debug server TCP port, 0 = off (-G)", 0, 65535),
	K_BOOL("gdb.wait", "false", "wait for the debugger before starting"),
	K_STR("keyboard.layout", NULL, "VNC keyboard layout file (-K)"),
	K_BOOL("rtc.use_localtime", "true",
	       "RTC keeps local time; false = UTC (-u)"),
	K_STR("uuid", NULL, "SMBIOS system UUID (-U)"),
	K_BOOL("virtio_msix", "true",
	       "virtio devices use MSI-X; false = single MSI (-W)"),
	K_BOOL("config.dump", "false", "print the configuration and exit"),
	K_STR("bootrom", NULL, "firmware image (-l bootrom)"),
	K_STR("bootvars", NULL, "firmware variable store (-l bootrom)"),
	K_STR("console", NULL, "MMIO console backend (arm64, riscv)"),
	K_BOOL("monitor", "false", "monitor mode (-M)"),
	K_STR("rundir", NULL, "runtime directory (control socket)"),
	K_STR("tpm.type", NULL, "TPM backend: passthru or swtpm"),
	K_STR("tpm.path", NULL, "TPM device or swtpm socket"),
	K_STR("tpm.version", "2.0", "TPM version"),
	K_STR("tpm.intf", "crb", "TPM interface"),
	K_NODE("pci", "PCI functions pci.<bus>.<slot>.<func> (-s)"),
	K_NODE("lpc", "LPC devices (-l)"),
	K_END,
};

/* bhyve_config(5), x86. */
static const struct cfg_key keys_x86[] = {
	K_BOOL("x86.mptable", "true", "build an MP table (-Y: false)"),
	K_BOOL("x86.x2apic", "false", "local APIC in x2APIC mode (-x)"),
	K_BOOL("x86.strictio", "false",
	       "exit on an access to an unemulated I/O port (-e)"),
	K_BOOL("x86.strictmsr", "true",
	       "#GP on unemulated MSRs; false = ignore (-w)"),
	K_BOOL("x86.verbosemsr", "false", "log unemulated MSR accesses"),
	K_BOOL("x86.vmexit_on_hlt", "false",
	       "HLT yields the host CPU (in-kernel halt) instead of halting "
	       "natively (-H)"),
	K_BOOL("x86.vmexit_on_pause", "false",
	       "PAUSE loops exit to the hypervisor (KVM pause-loop exiting) "
	       "(-P)"),
	K_END,
};

/* bhyve_config(5), SMBIOS strings. */
static const struct cfg_key keys_smbios[] = {
	K_STR("bios.vendor", "BHYVE", "SMBIOS type 0 vendor"),
	K_STR("bios.version", "14.0", "SMBIOS type 0 version"),
	K_STR("bios.release_date", "10/17/2021", "SMBIOS type 0 date"),
	K_STR("system.family_name", "Virtual Machine", "SMBIOS type 1"),
	K_STR("system.manufacturer", "FreeBSD", "SMBIOS type 1"),
	K_STR("system.product_name", "BHYVE", "SMBIOS type 1"),
	K_STR("system.serial_number", "None", "SMBIOS type 1"),
	K_STR("system.sku", "None", "SMBIOS type 1"),
	K_STR("system.version", "1.0", "SMBIOS type 1"),
	K_STR("board.manufacturer", "FreeBSD", "SMBIOS type 2"),
	K_STR("board.product_name", "BHYVE", "SMBIOS type 2"),
	K_STR("board.version", "1.0", "SMBIOS type 2"),
	K_STR("board.serial_number", "None", "SMBIOS type 2"),
	K_STR("board.asset_tag", "None", "SMBIOS type 2"),
	K_STR("board.location", "None", "SMBIOS type 2"),
	K_STR("chassis.manufacturer", "FreeBSD", "SMBIOS type 3"),
	K_STR("chassis.version", "1.0", "SMBIOS type 3"),
	K_STR("chassis.serial_number", "None", "SMBIOS type 3"),
	K_STR("chassis.asset_tag", "None", "SMBIOS type 3"),
	K_STR("chassis.sku", "None", "SMBIOS type 3"),
	K_END,
};

/* khyve's own keys. */
static const struct cfg_key keys_khyve[] = {
	K_STR("boot.kernel", NULL,
	      "kernel for direct boot (PVH/ELF, bzImage or multiboot)"),
	K_STR("boot.initrd", NULL, "initial ramdisk for direct boot"),
	K_STR("boot.cmdline", NULL, "kernel command line for direct boot"),
	K_STR("restore", NULL, "restore the VM from this snapshot (-r)"),
	K_STR("fwcfg.file.*.name", NULL, "fw_cfg file name (-f)"),
	K_STR("fwcfg.file.*.string", NULL, "fw_cfg file contents (-f)"),
	K_STR("fwcfg.file.*.file", NULL, "host file with the contents (-f)"),
	K_STR("log.level", "info",
	      "most verbose log level: err, warn, "
	      "info or debug"),
	K_BOOL("log.debug", "false", "log debug messages"),
	K_END,
};

static const struct cfg_key *const keys_global_tables[] = {
	keys_common, keys_x86, keys_smbios, keys_khyve, NULL,
};

static const struct cfg_key keys_pci[] = {
	K_STR("device", NULL, "device model (-s slot,MODEL)"),
	K_STR("pcireg.vendor", NULL, "vendor ID override (hex)"),
	K_STR("pcireg.device", NULL, "device ID override (hex)"),
	K_STR("pcireg.revid", NULL, "revision ID override (hex)"),
	K_STR("pcireg.subvendor", NULL, "subsystem vendor override (hex)"),
	K_STR("pcireg.subdevice", NULL, "subsystem ID override (hex)"),
	K_INT("bootindex", NULL, "boot order (fw_cfg bootorder)", 0, 65535),
	K_END,
};

static const struct cfg_key keys_lpc[] = {
	K_STR("com1.path", NULL, "COM1 backend (-l com1,BACKEND)"),
	K_STR("com2.path", NULL, "COM2 backend (-l com2,BACKEND)"),
	K_STR("com3.path", NULL, "COM3 backend (-l com3,BACKEND)"),
	K_STR("com4.path", NULL, "COM4 backend (-l com4,BACKEND)"),
	K_BOOL("pc-testdev", "false", "QEMU's PC test device"),
	K_STR("fwcfg", "bhyve", "firmware interface: bhyve or qemu"),
	K_STR("bootrom", NULL, "deprecated: use bootrom"),
	K_STR("bootvars", NULL, "deprecated: use bootvars"),
	K_STR("pcireg.vendor", NULL, "LPC bridge vendor ID (hex or host)"),
	K_STR("pcireg.device", NULL, "LPC bridge device ID (hex or host)"),
	K_STR("pcireg.revid", NULL, "LPC bridge revision (hex or host)"),
	K_STR("pcireg.subvendor", NULL, "subsystem vendor (hex or host)"),
	K_STR("pcireg.subdevice", NULL, "subsystem ID (hex or host)"),
	K_END,
};

const struct cfg_key *const *keys_global(void)
{
	return keys_global_tables;
}

const struct cfg_key *keys_pci_generic(void)
{
	return keys_pci;
}

const struct cfg_key *keys_lpc_generic(void)
{
	return keys_lpc;
}

/* Decimal without leading zeros, at most 'max'.  -1 when not. */
static long node_number(const char *s, unsigned long max)
{
	unsigned long v = 0;
	const char *p;

	if (!s || !*s || (s[0] == '0' && s[1]))
		return -1;
	for (p = s; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return -1;
	}
	return (long)v;
}

/* One decimal number of a CPU list; advances *pp.  -1 when none. */
static long list_number(const char **pp, unsigned long max)
{
	const char *p = *pp;
	unsigned long v = 0;

	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return -1;
		p++;
	}
	*pp = p;
	return (long)v;
}

bool keys_cpulist_ok(const char *list, unsigned long max)
{
	const char *p = list;
	long a, b;

	if (!p || !*p)
		return false;
	for (;;) {
		a = list_number(&p, max);
		if (a < 0)
			return false;
		if (*p == '-') {
			p++;
			b = list_number(&p, max);
			if (b < a)
				return false;
		}
		if (*p == '\0')
			return true;
		if (*p != ',')
			return false;
		p++;
	}
}

/* A top-level name that must be a node is a leaf: say so. */
static int want_node(struct cfg_node *root, const char *name, const char *what)
{
	if (cfg_get_raw(root, name)) {
		log_err("%s: must be a node (%s)", name, what);
		return -EINVAL;
	}
	return 0;
}

/* "pci.B.S.F" node checks: model known, keys valid. */
static int check_pci_function(struct cfg_node *fn)
{
	const struct cfg_key *schemas[4];
	const struct devmodel *m, *target = NULL;
	const char *dev;
	int n = 0;

	dev = cfg_get(fn, "device");
	if (!dev) {
		if (errno != ENOENT)
			return -EINVAL;
		log_err("%s: no device model (set %s.device)", cfg_path(fn),
			cfg_path(fn));
		return -EINVAL;
	}
	m = devmodel_find_kind(dev, DEVMODEL_PCI);
	if (!m) {
		log_err("%s: unknown device model \"%s\"", cfg_path(fn), dev);
		return -EINVAL;
	}
	if (m->alias_of)
		target = devmodel_find_kind(m->alias_of, DEVMODEL_PCI);
	schemas[n++] = keys_pci;
	if (m->keys)
		schemas[n++] = m->keys;
	if (target && target->keys)
		schemas[n++] = target->keys;
	schemas[n] = NULL;
	return cfg_check(fn, schemas);
}

static const unsigned long pci_limit[3] = {255, 31, 7};
static const char *const pci_level[3] = {"bus", "slot", "function"};

/* Children of a pci (level 0), bus (1) or slot (2) node. */
static int check_pci_level(struct cfg_node *n, int level)
{
	struct cfg_node *c;
	int rc = 0;

	for (c = cfg_first_child(n); c; c = cfg_next(c)) {
		if (cfg_is_leaf(c)) {
			log_err("%s: unknown configuration key", cfg_path(c));
			rc = -EINVAL;
		} else if (node_number(cfg_name(c), pci_limit[level]) < 0) {
			log_err("%s: invalid PCI %s number (0-%lu)",
				cfg_path(c), pci_level[level],
				pci_limit[level]);
			rc = -EINVAL;
		} else if (level == 2) {
			if (check_pci_function(c) < 0)
				rc = -EINVAL;
		} else if (check_pci_level(c, level + 1) < 0) {
			rc = -EINVAL;
		}
	}
	return rc;
}

static int check_pci(struct cfg_node *root)
{
	struct cfg_node *pci = cfg_find(root, "pci");

	if (!pci)
		return want_node(root, "pci", "pci.<bus>.<slot>.<func>");
	return check_pci_level(pci, 0);
}

static int check_lpc(struct cfg_node *root)
{
	const struct cfg_key **schemas;
	const struct devmodel *m;
	struct cfg_node *lpc;
	size_t n = 1;
	int rc;

	lpc = cfg_find(root, "lpc");
	if (!lpc)
		return want_node(root, "lpc", "lpc.<device>...");
	for (m = devmodel_next(NULL); m; m = devmodel_next(m))
		n++;
	schemas = calloc(n + 1, sizeof(*schemas));
	if (!schemas) {
		log_err("out of memory");
		return -ENOMEM;
	}
	n = 0;
	schemas[n++] = keys_lpc;
	for (m = devmodel_next(NULL); m; m = devmodel_next(m))
		if (m->kind == DEVMODEL_LPC && m->keys)
			schemas[n++] = m->keys;
	schemas[n] = NULL;
	rc = cfg_check(lpc, (const struct cfg_key *const *)schemas);
	free(schemas);
	return rc;
}

/* "<key>.N.<list>" nodes: N numeric, the list a CPU list. */
static int check_lists(struct cfg_node *root, const char *top,
		       unsigned long max_id, const char *list,
		       unsigned long max_cpu)
{
	struct cfg_node *node = cfg_find(root, top), *c;
	const char *v;
	int rc = 0;

	if (!node)
		return 0;
	for (c = cfg_first_child(node); c; c = cfg_next(c)) {
		if (node_number(cfg_name(c), max_id) < 0) {
			log_err("%s: invalid index (0-%lu)", cfg_path(c),
				max_id);
			rc = -EINVAL;
			continue;
		}
		if (cfg_is_leaf(c))
			continue; /* reported by the schema check */
		v = cfg_get(c, list);
		if (!v) {
			if (errno != ENOENT)
				rc = -EINVAL;
			continue;
		}
		if (!keys_cpulist_ok(v, max_cpu)) {
			log_err("%s.%s: invalid value '%s' (not a CPU list "
				"such as 0,2,4-7)",
				cfg_path(c), list, v);
			rc = -EINVAL;
		}
	}
	return rc;
}

/* bhyve's calc_topology(): sockets * cores * threads must equal cpus. */
static int check_topology(struct cfg_node *root)
{
	uint64_t cpus, sockets, cores, threads, n;
	bool explicit_cpus = cfg_get_raw(root, "cpus") != NULL;

	if (cfg_get_u64(root, "cpus", 1, 1, MAX_VCPUS, &cpus) < 0 ||
	    cfg_get_u64(root, "cores", 1, 1, MAX_VCPUS, &cores) < 0 ||
	    cfg_get_u64(root, "threads", 1, 1, MAX_VCPUS, &threads) < 0 ||
	    cfg_get_u64(root, "sockets", cpus, 1, MAX_VCPUS, &sockets) < 0)
		return -EINVAL;
	n = sockets * cores * threads;
	if (n > MAX_VCPUS) {
		log_err("cpus: computed number of vCPUs too high: %llu",
			(unsigned long long)n);
		return -EINVAL;
	}
	if (explicit_cpus && n != cpus) {
		log_err("cpus: topology (%llu sockets, %llu cores, %llu "
			"threads) does not match %llu vCPUs",
			(unsigned long long)sockets, (unsigned long long)cores,
			(unsigned long long)threads, (unsigned long long)cpus);
		return -EINVAL;
	}
	return 0;
}

int config_check_all(struct cfg_node *root)
{
	int rc = 0;

	if (cfg_check(root, keys_global()) < 0)
		rc = -EINVAL;
	else if (check_topology(root) < 0)
		rc = -EINVAL;
	if (check_lists(root, "vcpu", MAX_VCPUS - 1, "cpuset",
			CPU_SETSIZE - 1) < 0)
		rc = -EINVAL;
	if (check_lists(root, "domains", MAX_DOMAINS - 1, "cpus",
			MAX_VCPUS - 1) < 0)
		rc = -EINVAL;
	if (check_pci(root) < 0)
		rc = -EINVAL;
	if (check_lpc(root) < 0)
		rc = -EINVAL;
	return rc;
}
