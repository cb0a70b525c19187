/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bhyve's command line onto the config tree (see flags.h for the mapping).
 * One function per option with an argument to parse; each prints bhyve's
 * error line and returns -EINVAL, and flags_parse() stops at the first
 * error.  getopt runs in POSIX mode ("+"), as bhyve's BSD getopt: the
 * first operand ends the options.
 *
 * Threads: start-up only (getopt's globals).  No locks.
 */
#include "config/flags.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/keys.h"
#include "core/devmodel.h"
#include "lib/log.h"

#define MIB (1024ULL * 1024)
#define MAX_VCPUS 65535
#define MAX_DOMAINS 8
#define FWCFG_MAX_NAME 55
#define KEY_LEN 64

/* bhyve's amd64 option string (with -M, -n, -r), POSIX mode, ':' first so
 * a missing argument is told apart from an unknown option. */
#define FLAGS_OPTSTRING "+:aehuwxACDHIPSWYMk:f:o:p:G:c:s:m:l:K:U:r:n:"

static const char *progname = "khyve";

static void usage(FILE *f)
{
	int w = (int)strlen(progname);

	fprintf(f,
		"Usage: %s [-aCDeHhMPSuWwxY]\n"
		"       %*s [-c [[cpus=]numcpus][,sockets=n][,cores=n]"
		"[,threads=n]]\n"
		"       %*s [-f [name=]name,(string|file)=data] "
		"[-G [w][bind_address:]port]\n"
		"       %*s [-k config_file] [-K layout] [-l lpc] [-m mem]\n"
		"       %*s [-n id=n,size=mem,cpus=list"
		"[,domain_policy=policy]]\n"
		"       %*s [-o var=value] [-p vcpu:hostcpu] [-r file] "
		"[-s pci] [-U uuid] vmname\n"
		"       %s -l help | -s help\n"
		"       -A: create ACPI tables (obsolete, always on)\n"
		"       -a: local apic is in xAPIC mode (deprecated)\n"
		"       -C: include guest memory in core file\n"
		"       -c: number of CPUs and/or topology specification\n"
		"       -D: destroy on power-off\n"
		"       -e: exit on unhandled I/O access\n"
		"       -f: add a QEMU fw_cfg file\n"
		"       -G: start a debug server\n"
		"       -H: vmexit from the guest on HLT\n"
		"       -h: help\n"
		"       -I: present an ioapic (obsolete, always on)\n"
		"       -k: key=value flat config file\n"
		"       -K: PS2 keyboard layout\n"
		"       -l: LPC device configuration\n"
		"       -M: monitor mode\n"
		"       -m: memory size\n"
		"       -n: NUMA domain specification\n"
		"       -o: set config 'var' to 'value'\n"
		"       -P: vmexit from the guest on pause\n"
		"       -p: pin 'vcpu' to 'hostcpu'\n"
		"       -r: path to checkpoint file\n"
		"       -S: guest memory cannot be swapped\n"
		"       -s: <slot,driver,configinfo> PCI slot config\n"
		"       -U: UUID\n"
		"       -u: RTC keeps UTC time\n"
		"       -W: force virtio to use single-vector MSI\n"
		"       -w: ignore unimplemented MSRs\n"
		"       -x: local APIC is in x2APIC mode\n"
		"       -Y: disable MPtable generation\n",
		progname, w, "", w, "", w, "", w, "", w, "", progname);
	fflush(f);
}

void flags_set_defaults(struct cfg_node *root)
{
	static const char *const defaults[][2] = {
		/* bhyve_init_config() */
		{"acpi_tables", "true"},
		{"acpi_tables_in_memory", "true"},
		{"memory.size", "256M"},
		{"x86.strictmsr", "true"},
		{"x86.verbosemsr", "false"},
		{"lpc.fwcfg", "bhyve"},
		/* documented defaults, so a dump shows them */
		{"x86.mptable", "true"},
		{"x86.x2apic", "false"},
		{"x86.strictio", "false"},
		{"x86.vmexit_on_hlt", "false"},
		{"x86.vmexit_on_pause", "false"},
		{"rtc.use_localtime", "true"},
		{"virtio_msix", "true"},
		{"destroy_on_poweroff", "false"},
		{"memory.wired", "false"},
		{"memory.guest_in_core", "false"},
	};
	size_t i;

	for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
		(void)cfg_set(root, defaults[i][0], defaults[i][1]);
}

/* A non-empty prefix of "help" (bhyve: strncmp(arg, "help", len)). */
static bool is_help(const char *arg)
{
	size_t len = strlen(arg);

	return len > 0 && len <= 4 && strncmp(arg, "help", len) == 0;
}

/* strtoul(base 0) over [s, s+len): no sign, no blanks, at most max. */
static int parse_num(const char *s, size_t len, unsigned long max,
		     unsigned long *out)
{
	char buf[32], *end;
	unsigned long v;

	if (len == 0 || len >= sizeof(buf) || !isdigit((unsigned char)*s))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoul(buf, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Decimal digits only (slot numbers): [s, s+len), at most max. */
static int parse_dec(const char *s, size_t len, unsigned long max,
		     unsigned long *out)
{
	unsigned long v = 0;
	size_t i;

	if (len == 0)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
		if (v > max)
			return -EINVAL;
	}
	*out = v;
	return 0;
}

/* cfg_set() with any failure as -EINVAL (cfg_set() logged why). */
static int set_key(struct cfg_node *n, const char *path, const char *value)
{
	return cfg_set(n, path, value) < 0 ? -EINVAL : 0;
}

/* ---- -c ---- */

static int topology_parse(struct cfg_node *root, const char *arg)
{
	static const char *const keys[4] = {"cpus", "sockets", "cores",
					    "threads"};
	const char *val[4] = {NULL, NULL, NULL, NULL};
	unsigned long num[4] = {1, 1, 1, 1};
	char *copy, *cur, *tok, *eq;
	int i, rc = -EINVAL;

	if (*arg == '\0') {
		for (i = 0; i < 4; i++)
			if (cfg_set(root, keys[i], "1") < 0)
				return -EINVAL;
		return 0;
	}
	copy = strdup(arg);
	if (!copy)
		return -ENOMEM;
	cur = copy;
	while ((tok = strsep(&cur, ",")) != NULL) {
		eq = strchr(tok, '=');
		i = 0;
		if (eq) {
			*eq = '\0';
			for (i = 0; i < 4; i++)
				if (strcmp(tok, keys[i]) == 0)
					break;
			if (i == 4)
				goto out;
			tok = eq + 1;
		}
		if (parse_num(tok, strlen(tok), MAX_VCPUS, &num[i]) < 0 ||
		    num[i] == 0)
			goto out;
		val[i] = tok;
	}
	/* bhyve: sockets defaults to cpus, cores and threads to 1 */
	if (!val[1])
		num[1] = num[0];
	if ((unsigned long long)num[1] * num[2] * num[3] > MAX_VCPUS)
		goto out;
	if (val[0] && num[0] != num[1] * num[2] * num[3])
		goto out;
	rc = 0;
	for (i = 0; i < 4 && rc == 0; i++)
		if (val[i])
			rc = set_key(root, keys[i], val[i]);
out:
	free(copy);
	if (rc < 0)
		log_err("invalid cpu topology '%s'", arg);
	return rc < 0 ? -EINVAL : 0;
}

/* ---- -p ---- */

static int pincpu_parse(struct cfg_node *root, const char *arg)
{
	const char *colon = strchr(arg, ':'), *old;
	unsigned long vcpu, pcpu;
	char key[KEY_LEN], *val = NULL;
	int rc = -EINVAL;

	if (colon &&
	    parse_dec(arg, (size_t)(colon - arg), MAX_VCPUS - 1, &vcpu) == 0 &&
	    parse_dec(colon + 1, strlen(colon + 1), CPU_SETSIZE - 1, &pcpu) ==
		    0) {
		snprintf(key, sizeof(key), "vcpu.%lu.cpuset", vcpu);
		old = cfg_get_raw(root, key);
		if (asprintf(&val, "%s%s%lu", old ? old : "", old ? "," : "",
			     pcpu) < 0)
			val = NULL;
		if (val)
			rc = set_key(root, key, val);
		free(val);
	}
	if (rc < 0)
		log_err("invalid vcpu pinning configuration '%s'", arg);
	return rc;
}

/* ---- -G ---- */

static int gdb_parse(struct cfg_node *root, const char *arg)
{
	const char *p = arg, *colon, *port;
	unsigned long num;
	char *addr = NULL;
	int rc = 0;

	if (*p == 'w') {
		rc = set_key(root, "gdb.wait", "true");
		p++;
	}
	colon = strrchr(p, ':');
	port = colon ? colon + 1 : p;
	if (rc == 0 && parse_dec(port, strlen(port), 65535, &num) < 0)
		rc = -EINVAL;
	if (rc == 0 && colon && colon > p) {
		addr = strndup(p, (size_t)(colon - p));
		rc = addr ? set_key(root, "gdb.address", addr) : -EINVAL;
		free(addr);
	}
	if (rc == 0)
		rc = set_key(root, "gdb.port", port);
	if (rc < 0)
		log_err("invalid debug server configuration '%s'", arg);
	return rc;
}

/* ---- -n ---- */

static int numa_parse(struct cfg_node *root, const char *arg)
{
	char *copy, *cur, *tok, *eq, key[KEY_LEN];
	const char *size = NULL, *policy = NULL;
	unsigned long id = MAX_DOMAINS;
	char *cpus = NULL, *grown;
	bool in_cpus = false, acpi = true;
	uint64_t bytes;
	int rc = -EINVAL;

	copy = strdup(arg);
	if (!copy)
		return -ENOMEM;
	cur = copy;
	while ((tok = strsep(&cur, ",")) != NULL) {
		eq = strchr(tok, '=');
		if (!eq && in_cpus && cpus) {
			/* "cpus=0,2-3": the list goes on */
			if (asprintf(&grown, "%s,%s", cpus, tok) < 0)
				goto out;
			free(cpus);
			cpus = grown;
			continue;
		}
		if (!eq)
			goto out;
		*eq++ = '\0';
		in_cpus = false;
		if (strcmp(tok, "id") == 0) {
			if (parse_dec(eq, strlen(eq), MAX_DOMAINS - 1, &id) < 0)
				goto out;
		} else if (strcmp(tok, "size") == 0) {
			if (cfg_parse_size(eq, MIB, &bytes) < 0 || bytes == 0)
				goto out;
			size = eq;
		} else if (strcmp(tok, "cpus") == 0) {
			free(cpus);
			cpus = strdup(eq);
			if (!cpus)
				goto out;
			in_cpus = true;
		} else if (strcmp(tok, "domain_policy") == 0) {
			policy = eq;
		} else {
			goto out;
		}
	}
	if (id >= MAX_DOMAINS ||
	    (cpus && !keys_cpulist_ok(cpus, MAX_VCPUS - 1)))
		goto out;
	rc = 0;
	if (size) {
		snprintf(key, sizeof(key), "domains.%lu.size", id);
		rc = set_key(root, key, size);
	}
	if (rc == 0 && cpus) {
		snprintf(key, sizeof(key), "domains.%lu.cpus", id);
		rc = set_key(root, key, cpus);
	}
	if (rc == 0 && policy) {
		snprintf(key, sizeof(key), "domains.%lu.domain_policy", id);
		rc = set_key(root, key, policy);
	}
out:
	free(cpus);
	free(copy);
	if (rc < 0) {
		log_err("invalid NUMA configuration '%s'", arg);
		return -EINVAL;
	}
	if (cfg_get_bool(root, "acpi_tables", true, &acpi) < 0)
		return -EINVAL;
	if (!acpi) {
		log_err("NUMA emulation requires ACPI");
		return -EINVAL;
	}
	return 0;
}

/* ---- -f ---- */

static int fwcfg_parse(struct cfg_node *root, const char *arg)
{
	const char *name = arg, *comma, *data, *kind;
	struct cfg_node *files, *c;
	char key[KEY_LEN], *nm = NULL;
	unsigned long idx = 0;
	const char *other;
	int rc = -EINVAL;

	if (strncmp(name, "name=", 5) == 0)
		name += 5;
	comma = strchr(name, ',');
	if (!comma || comma == name || comma - name > FWCFG_MAX_NAME)
		goto out;
	data = comma + 1;
	if (strncmp(data, "string=", 7) == 0) {
		kind = "string";
		data += 7;
	} else if (strncmp(data, "file=", 5) == 0) {
		kind = "file";
		data += 5;
		if (!*data)
			goto out;
	} else {
		goto out;
	}
	nm = strndup(name, (size_t)(comma - name));
	if (!nm)
		goto out;
	/* the next free index; a name may appear once */
	files = cfg_find(root, "fwcfg.file");
	for (c = cfg_first_child(files); c; c = cfg_next(c)) {
		other = cfg_get_raw(c, "name");
		if (other && strcmp(other, nm) == 0)
			goto out;
	}
	for (;;) {
		snprintf(key, sizeof(key), "fwcfg.file.%lu", idx);
		if (!cfg_find(root, key) && !cfg_get_raw(root, key))
			break;
		idx++;
	}
	snprintf(key, sizeof(key), "fwcfg.file.%lu.name", idx);
	rc = set_key(root, key, nm);
	if (rc == 0) {
		snprintf(key, sizeof(key), "fwcfg.file.%lu.%s", idx, kind);
		rc = set_key(root, key, data);
	}
out:
	free(nm);
	if (rc < 0)
		log_err("invalid fwcfg item '%s'", arg);
	return rc;
}

/* ---- -s ---- */

static int pci_slot_parse(struct cfg_node *root, const char *arg)
{
	const char *comma, *emul, *conf = NULL, *p, *c1, *c2;
	unsigned long num[3] = {0, 0, 0};
	const struct devmodel *m;
	struct cfg_node *node;
	char *name = NULL, path[KEY_LEN];
	int rc = -EINVAL;

	comma = strchr(arg, ',');
	if (!comma)
		goto usage;
	emul = comma + 1;
	p = strchr(emul, ',');
	if (p)
		conf = p + 1;
	name = p ? strndup(emul, (size_t)(p - emul)) : strdup(emul);
	if (!name)
		return -ENOMEM;
	/* "B:S:F", "S:F" or "S" */
	c1 = memchr(arg, ':', (size_t)(comma - arg));
	c2 = c1 ? memchr(c1 + 1, ':', (size_t)(comma - c1 - 1)) : NULL;
	if (c2) {
		if (parse_dec(arg, (size_t)(c1 - arg), 255, &num[0]) < 0 ||
		    parse_dec(c1 + 1, (size_t)(c2 - c1 - 1), 31, &num[1]) < 0 ||
		    parse_dec(c2 + 1, (size_t)(comma - c2 - 1), 7, &num[2]) < 0)
			goto usage;
	} else if (c1) {
		if (parse_dec(arg, (size_t)(c1 - arg), 31, &num[1]) < 0 ||
		    parse_dec(c1 + 1, (size_t)(comma - c1 - 1), 7, &num[2]) < 0)
			goto usage;
	} else if (parse_dec(arg, (size_t)(comma - arg), 31, &num[1]) < 0) {
		goto usage;
	}
	m = devmodel_find_kind(name, DEVMODEL_PCI);
	if (!m) {
		log_err("pci slot %lu:%lu:%lu: unknown device \"%s\"", num[0],
			num[1], num[2], name);
		goto out;
	}
	snprintf(path, sizeof(path), "pci.%lu.%lu.%lu", num[0], num[1], num[2]);
	if (cfg_find(root, path) || cfg_get_raw(root, path)) {
		log_err("pci slot %lu:%lu:%lu already occupied!", num[0],
			num[1], num[2]);
		goto out;
	}
	node = cfg_create(root, path);
	if (!node)
		goto out;
	rc = cfg_set(node, "device", m->alias_of ? m->alias_of : m->name);
	if (rc == 0)
		rc = m->parse_legacy ? m->parse_legacy(node, conf)
				     : cfg_split_opts(node, conf);
	if (rc < 0) {
		(void)cfg_unset(root, path);
		rc = -EINVAL;
	}
	goto out;
usage:
	log_err("Invalid PCI slot info field \"%s\"", arg);
out:
	free(name);
	return rc;
}

/* ---- -l ---- */

static int lpc_bootrom(struct cfg_node *root, struct cfg_node *lpc,
		       const char *arg, char *opts)
{
	char *rom, *vars;

	rom = opts ? strsep(&opts, ",") : NULL;
	if (!rom || !*rom) {
		log_err("invalid bootrom option \"%s\"", arg);
		return -EINVAL;
	}
	if (cfg_set(root, "bootrom", rom) < 0)
		return -EINVAL;
	vars = opts ? strsep(&opts, ",") : NULL;
	if (!vars)
		return 0;
	if (!strchr(vars, '=')) {
		if (cfg_set(root, "bootvars", vars) < 0)
			return -EINVAL;
	} else if (cfg_split_opts(lpc, vars) < 0) {
		return -EINVAL;
	}
	return cfg_split_opts(lpc, opts) < 0 ? -EINVAL : 0;
}

static int lpc_tpm(struct cfg_node *root, const char *arg, char *opts)
{
	struct cfg_node *tpm;
	char *type, *path;

	type = opts ? strsep(&opts, ",") : NULL;
	if (!type || !*type) {
		log_err("invalid tpm type \"%s\"", arg);
		return -EINVAL;
	}
	path = opts ? strsep(&opts, ",") : NULL;
	if (!path || !*path) {
		log_err("invalid tpm path \"%s\"", arg);
		return -EINVAL;
	}
	tpm = cfg_create(root, "tpm");
	if (!tpm || cfg_set(tpm, "type", type) < 0 ||
	    cfg_set(tpm, "path", path) < 0 || cfg_split_opts(tpm, opts) < 0 ||
	    cfg_set_default(tpm, "version", "2.0") < 0)
		return -EINVAL;
	return 0;
}

static int lpc_device_parse(struct cfg_node *root, const char *arg)
{
	char *copy, *opts, *dev, *p, key[KEY_LEN];
	const struct devmodel *m;
	struct cfg_node *lpc;
	int rc = -EINVAL;

	copy = strdup(arg);
	if (!copy)
		return -ENOMEM;
	opts = copy;
	dev = strsep(&opts, ",");
	for (p = dev; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	lpc = cfg_create(root, "lpc");
	if (!lpc)
		goto out;
	m = *dev ? devmodel_find_kind(dev, DEVMODEL_LPC) : NULL;
	if (m) {
		/* the model logs its own errors */
		rc = m->parse_legacy ? m->parse_legacy(lpc, opts)
				     : cfg_split_opts(lpc, opts);
		rc = rc < 0 ? -EINVAL : 0;
		goto out;
	}
	if (strcmp(dev, "bootrom") == 0) {
		rc = lpc_bootrom(root, lpc, arg, opts);
		goto out;
	}
	if (strcmp(dev, "tpm") == 0) {
		rc = lpc_tpm(root, arg, opts);
		goto out;
	}
	if (strcmp(dev, "pc-testdev") == 0) {
		rc = set_key(lpc, "pc-testdev", "true");
	} else if (strlen(dev) == 4 && strncmp(dev, "com", 3) == 0 &&
		   dev[3] >= '1' && dev[3] <= '4' && opts && *opts) {
		snprintf(key, sizeof(key), "%s.path", dev);
		rc = set_key(lpc, key, opts);
	}
	if (rc < 0)
		log_err("invalid lpc device configuration '%s'", arg);
out:
	free(copy);
	return rc;
}

static void lpc_print_supported_devices(void)
{
	fputs("bootrom\ncom1\ncom2\ncom3\ncom4\ntpm\npc-testdev\n", stdout);
	fflush(stdout);
}

/* ---- the rest ---- */

static int memsize_parse(struct cfg_node *root, const char *arg)
{
	uint64_t bytes;

	if (cfg_parse_size(arg, MIB, &bytes) < 0 || bytes == 0) {
		log_err("invalid memsize '%s'", arg);
		return -EINVAL;
	}
	return set_key(root, "memory.size", arg);
}

static int config_file_parse(struct cfg_node *root, const char *file)
{
	return cfg_parse_file(root, file) < 0 ? -EINVAL : 0;
}

/* bhyve copies the pre-2024 lpc.bootrom/lpc.bootvars to the new keys. */
static int bootrom_compat(struct cfg_node *root)
{
	static const char *const keys[2][2] = {
		{"lpc.bootrom", "bootrom"},
		{"lpc.bootvars", "bootvars"},
	};
	const char *v;
	int i;

	for (i = 0; i < 2; i++) {
		v = cfg_get_raw(root, keys[i][0]);
		if (!v || cfg_get_raw(root, keys[i][1]))
			continue;
		log_warn("%s is deprecated, use '-o %s' instead", keys[i][0],
			 keys[i][1]);
		if (cfg_set(root, keys[i][1], v) < 0)
			return -EINVAL;
	}
	return 0;
}

/* Boolean flags: option letter -> key=value. */
static const struct {
	char opt;
	const char *key, *value;
} bool_flags[] = {
	{'a', "x86.x2apic", "false"},
	{'C', "memory.guest_in_core", "true"},
	{'D', "destroy_on_poweroff", "true"},
	{'e', "x86.strictio", "true"},
	{'H', "x86.vmexit_on_hlt", "true"},
	{'M', "monitor", "true"},
	{'P', "x86.vmexit_on_pause", "true"},
	{'S', "memory.wired", "true"},
	{'u', "rtc.use_localtime", "false"},
	{'W', "virtio_msix", "false"},
	{'w', "x86.strictmsr", "false"},
	{'x', "x86.x2apic", "true"},
	{'Y', "x86.mptable", "false"},
};

/* String flags: option letter -> key=optarg. */
static const struct {
	char opt;
	const char *key;
} str_flags[] = {
	{'K', "keyboard.layout"},
	{'U', "uuid"},
	{'r', "restore"},
};

/* One option.  0, FLAGS_EXIT_OK or -EINVAL (printed). */
static int flag_one(struct cfg_node *root, int c, const char *arg)
{
	size_t i;

	for (i = 0; i < sizeof(bool_flags) / sizeof(bool_flags[0]); i++)
		if (bool_flags[i].opt == c)
			return set_key(root, bool_flags[i].key,
				       bool_flags[i].value);
	for (i = 0; i < sizeof(str_flags) / sizeof(str_flags[0]); i++)
		if (str_flags[i].opt == c)
			return set_key(root, str_flags[i].key, arg);
	switch (c) {
	case 'A': /* obsolete: ACPI tables are always generated */
	case 'I': /* obsolete: the ioapic is always present */
		return 0;
	case 'c':
		return topology_parse(root, arg);
	case 'f':
		return fwcfg_parse(root, arg);
	case 'G':
		return gdb_parse(root, arg);
	case 'h':
		usage(stderr);
		return FLAGS_EXIT_OK;
	case 'k':
		return config_file_parse(root, arg);
	case 'l':
		if (is_help(arg)) {
			lpc_print_supported_devices();
			return FLAGS_EXIT_OK;
		}
		return lpc_device_parse(root, arg) < 0 ? -EINVAL : 0;
	case 'm':
		return memsize_parse(root, arg);
	case 'n':
		return numa_parse(root, arg);
	case 'o':
		return cfg_parse_option(root, arg) < 0 ? -EINVAL : 0;
	case 'p':
		return pincpu_parse(root, arg);
	case 's':
		if (is_help(arg)) {
			devmodel_print(DEVMODEL_PCI, stdout);
			return FLAGS_EXIT_OK;
		}
		return pci_slot_parse(root, arg) < 0 ? -EINVAL : 0;
	default:
		return -EINVAL;
	}
}

int flags_parse(struct cfg_node *root, int argc, char **argv)
{
	const char *slash;
	int c, rc;

	if (argc > 0 && argv[0] && *argv[0]) {
		slash = strrchr(argv[0], '/');
		progname = slash ? slash + 1 : argv[0];
	}
	optind = 0; /* glibc: full re-initialisation */
	opterr = 0;
	while ((c = getopt(argc, argv, FLAGS_OPTSTRING)) != -1) {
		if (c == '?') {
			log_err("invalid option -- '%c' (see %s -h)", optopt,
				progname);
			return -EINVAL;
		}
		if (c == ':') {
			log_err("option requires an argument -- '%c'", optopt);
			return -EINVAL;
		}
		rc = flag_one(root, c, optarg);
		if (rc != 0)
			return rc < 0 ? -EINVAL : rc;
	}
	if (argc - optind > 1) {
		log_err("unexpected argument '%s' after vmname '%s' (see %s "
			"-h)",
			argv[optind + 1], argv[optind], progname);
		return -EINVAL;
	}
	if (argc - optind == 1) {
		if (!*argv[optind]) {
			log_err("empty vmname");
			return -EINVAL;
		}
		if (cfg_set(root, "name", argv[optind]) < 0)
			return -EINVAL;
	} else if (!cfg_get_raw(root, "name")) {
		log_err("missing vmname (see %s -h)", progname);
		return -EINVAL;
	}
	return bootrom_compat(root);
}
