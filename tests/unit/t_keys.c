/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the key schemas and config_check_all()
 * (src/config/keys.c): a full valid tree passes silently; unknown global,
 * PCI and LPC keys, malformed bools/ints/sizes, bad PCI addresses, unknown
 * models, CPU lists and topologies are rejected with one line naming the
 * full path.  Test-only models are registered here with DEVMODEL_SET.
 * Single-threaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/flags.h"
#include "config/keys.h"
#include "core/devmodel.h"
#include "lib/log.h"
#include "tests/capture.h"
#include "tests/tap.h"

/* ---- test-only models ---- */

static const struct cfg_key tk_dev_keys[] = {
	{"path", CFG_STRING, NULL, "backing file", 0, 0, 0},
	{"ro", CFG_BOOL, "false", "read-only", 0, 0, 0},
	{"queues", CFG_INT, "1", "queue count", 1, 16, 0},
	{"port.*.path", CFG_STRING, NULL, "port backend", 0, 0, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static const struct cfg_key tk_alias_keys[] = {
	{"mode", CFG_STRING, NULL, "set by the alias", 0, 0, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static const struct cfg_key tk_lpc_keys[] = {
	{"tk.opt", CFG_STRING, NULL, "an LPC model's key", 0, 0, 0},
	{"tk.on", CFG_BOOL, "false", "an LPC model's bool", 0, 0, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static const struct devmodel tk_dev = {
	.name = "tk-dev",
	.kind = DEVMODEL_PCI,
	.keys = tk_dev_keys,
};
DEVMODEL_SET(tk_dev);

static const struct devmodel tk_alias = {
	.name = "tk-alias",
	.kind = DEVMODEL_PCI,
	.alias_of = "tk-dev",
	.keys = tk_alias_keys,
};
DEVMODEL_SET(tk_alias);

static const struct devmodel tk_lpc = {
	.name = "tk-lpc",
	.kind = DEVMODEL_LPC,
	.keys = tk_lpc_keys,
};
DEVMODEL_SET(tk_lpc);

/* ---- stderr capture ---- */

static struct capture cap;

/* ---- a full valid tree ---- */

static const char *const valid_keys[][2] = {
	{"name", "vm0"},
	{"cpus", "4"},
	{"sockets", "2"},
	{"cores", "2"},
	{"threads", "1"},
	{"vcpu.0.cpuset", "0-3,5"},
	{"vcpu.3.cpuset", "1023"},
	{"domains.0.size", "1G"},
	{"domains.0.cpus", "0-1"},
	{"domains.1.size", "1024"},
	{"domains.1.cpus", "2,3"},
	{"domains.1.domain_policy", "prefer:1"},
	{"memory.size", "2G"},
	{"gdb.port", "1234"},
	{"gdb.address", "127.0.0.1"},
	{"gdb.wait", "yes"},
	{"keyboard.layout", "de"},
	{"uuid", "6d5b7d4e-0c7a-4b7e-9d7c-0a0b0c0d0e0f"},
	{"config.dump", "false"},
	{"bootrom", "/fw/CODE.fd"},
	{"bootvars", "/fw/VARS.fd"},
	{"console", "stdio"},
	{"monitor", "true"},
	{"rundir", "/run/khyve"},
	{"tpm.type", "swtpm"},
	{"tpm.path", "/run/swtpm.sock"},
	{"tpm.version", "2.0"},
	{"tpm.intf", "crb"},
	{"bios.vendor", "LENOVO"},
	{"bios.version", "14.1"},
	{"bios.release_date", "11/24/2025"},
	{"system.family_name", "fam"},
	{"system.manufacturer", "Fedora"},
	{"system.product_name", "Virt-Manager"},
	{"system.serial_number", "xxx-yyy-zzz"},
	{"system.sku", "0000"},
	{"system.version", "0.9.4"},
	{"board.manufacturer", "LENOVO"},
	{"board.product_name", "20BE0061MC"},
	{"board.version", "0B98401 Pro"},
	{"board.serial_number", "W1KS427111E"},
	{"board.asset_tag", "Asset Tag"},
	{"board.location", "Nowhere"},
	{"chassis.manufacturer", "Dell Inc."},
	{"chassis.version", "2.12"},
	{"chassis.serial_number", "65X0XF2"},
	{"chassis.asset_tag", "40000101"},
	{"chassis.sku", "Type3Sku1"},
	{"x86.verbosemsr", "on"},
	{"boot.kernel", "/boot/vmlinuz"},
	{"boot.initrd", "/boot/initrd.img"},
	{"boot.cmdline", "console=ttyS0 root=/dev/vda"},
	{"restore", "/var/snap/vm0"},
	{"fwcfg.file.0.name", "opt/com.coreos/config"},
	{"fwcfg.file.0.string", "{}"},
	{"fwcfg.file.1.name", "opt/x"},
	{"fwcfg.file.1.file", "/etc/x"},
	{"log.level", "debug"},
	{"log.debug", "true"},
	{"pci.0.0.0.device", "tk-dev"},
	{"pci.0.0.0.path", "%(name).img"},
	{"pci.0.0.0.ro", "true"},
	{"pci.0.0.0.queues", "16"},
	{"pci.0.0.0.port.0.path", "/tmp/p0"},
	{"pci.0.0.0.pcireg.vendor", "0x1af4"},
	{"pci.0.0.0.pcireg.device", "1001"},
	{"pci.0.0.0.pcireg.revid", "1"},
	{"pci.0.0.0.pcireg.subvendor", "0"},
	{"pci.0.0.0.pcireg.subdevice", "0"},
	{"pci.0.0.0.bootindex", "1"},
	{"pci.0.4.0.device", "tk-alias"},
	{"pci.0.4.0.mode", "alias"},
	{"pci.0.4.0.path", "/x"},
	{"pci.255.31.7.device", "tk-dev"},
	{"lpc.com1.path", "stdio"},
	{"lpc.com4.path", "tcp=127.0.0.1:4444"},
	{"lpc.pc-testdev", "true"},
	{"lpc.fwcfg", "qemu"},
	{"lpc.pcireg.vendor", "host"},
	{"lpc.tk.opt", "hello"},
	{"lpc.tk.on", "0"},
};

static struct cfg_node *valid_tree(void)
{
	struct cfg_node *root = cfg_new();
	size_t i;

	flags_set_defaults(root);
	for (i = 0; i < sizeof(valid_keys) / sizeof(valid_keys[0]); i++)
		if (cfg_set(root, valid_keys[i][0], valid_keys[i][1]) < 0)
			diag("cannot set %s", valid_keys[i][0]);
	return root;
}

static void test_valid(void)
{
	struct cfg_node *root = valid_tree();

	capture_begin(&cap, STDERR_FILENO);
	is_int(config_check_all(root), 0, "a full valid tree passes");
	is_str(capture_end(&cap), "", "and prints nothing");
	cfg_free(root);

	root = cfg_new();
	capture_begin(&cap, STDERR_FILENO);
	is_int(config_check_all(root), 0, "an empty tree passes");
	is_str(capture_end(&cap), "", "silently");
	cfg_free(root);
}

/* ---- rejections ---- */

struct bad_case {
	const char *key, *value; /* set on a valid tree (NULL: unset key) */
	const char *err;
};

static const struct bad_case bad_cases[] = {
	{"bogus", "1", "khyve: bogus: unknown configuration key\n"},
	{"memory.sizee", "1G",
	 "khyve: memory.sizee: unknown configuration "
	 "key\n"},
	{"x86.bogus", "true", "khyve: x86.bogus: unknown configuration key\n"},
	{"gdb.foo", "1", "khyve: gdb.foo: unknown configuration key\n"},
	{"x86.strictmsr", "maybe",
	 "khyve: x86.strictmsr: invalid value 'maybe' (not a boolean)\n"},
	{"acpi_tables", "",
	 "khyve: acpi_tables: invalid value '' (not a "
	 "boolean)\n"},
	{"cpus", "abc", "khyve: cpus: invalid value 'abc' (not an integer)\n"},
	{"cpus", "-4", "khyve: cpus: invalid value '-4' (not an integer)\n"},
	{"cpus", "0",
	 "khyve: cpus: invalid value '0' (must be between 1 and 65535)\n"},
	{"gdb.port", "70000",
	 "khyve: gdb.port: invalid value '70000' (must be between 0 and "
	 "65535)\n"},
	{"memory.size", "lots",
	 "khyve: memory.size: invalid value 'lots' (not a size)\n"},
	{"memory.size", "512K",
	 "khyve: memory.size: invalid value '512K' (must be between 1048576 "
	 "and 18446744073709551615)\n"},
	{"domains.0.size", "1x",
	 "khyve: domains.0.size: invalid value '1x' (not a size)\n"},
	{"uuid", "%(nope)", "khyve: uuid: unknown reference %(nope)\n"},
	{"pci.0.0.0.bogus", "1",
	 "khyve: pci.0.0.0.bogus: unknown configuration key\n"},
	{"pci.0.0.0.port.0.speed", "1",
	 "khyve: pci.0.0.0.port.0.speed: unknown configuration key\n"},
	{"pci.0.0.0.ro", "perhaps",
	 "khyve: pci.0.0.0.ro: invalid value 'perhaps' (not a boolean)\n"},
	{"pci.0.0.0.queues", "17",
	 "khyve: pci.0.0.0.queues: invalid value '17' (must be between 1 "
	 "and 16)\n"},
	{"pci.0.0.0.bootindex", "first",
	 "khyve: pci.0.0.0.bootindex: invalid value 'first' (not an "
	 "integer)\n"},
	{"pci.0.0.0.mode", "x",
	 "khyve: pci.0.0.0.mode: unknown configuration key\n"},
	{"pci.0.4.0.other", "1",
	 "khyve: pci.0.4.0.other: unknown configuration key\n"},
	{"pci.0.5.0.device", "nosuch",
	 "khyve: pci.0.5.0: unknown device model \"nosuch\"\n"},
	{"pci.0.5.0.device", "tk-lpc",
	 "khyve: pci.0.5.0: unknown device model \"tk-lpc\"\n"},
	{"pci.0.6.0.path", "/x",
	 "khyve: pci.0.6.0: no device model (set pci.0.6.0.device)\n"},
	{"pci.0.7.0.device", "%(nope)",
	 "khyve: pci.0.7.0.device: unknown reference %(nope)\n"},
	{"pci.0.32.0.device", "tk-dev",
	 "khyve: pci.0.32: invalid PCI slot number (0-31)\n"},
	{"pci.256.0.0.device", "tk-dev",
	 "khyve: pci.256: invalid PCI bus number (0-255)\n"},
	{"pci.0.1.8.device", "tk-dev",
	 "khyve: pci.0.1.8: invalid PCI function number (0-7)\n"},
	{"pci.00.1.0.device", "tk-dev",
	 "khyve: pci.00: invalid PCI bus number (0-255)\n"},
	{"pci.0.x.0.device", "tk-dev",
	 "khyve: pci.0.x: invalid PCI slot number (0-31)\n"},
	{"pci.0.1", "x", "khyve: pci.0.1: unknown configuration key\n"},
	{"pci.0.1.0", "x", "khyve: pci.0.1.0: unknown configuration key\n"},
	{"pci.1", "x", "khyve: pci.1: unknown configuration key\n"},
	{"lpc.com5.path", "x",
	 "khyve: lpc.com5.path: unknown configuration "
	 "key\n"},
	{"lpc.pc-testdev", "maybe",
	 "khyve: lpc.pc-testdev: invalid value 'maybe' (not a boolean)\n"},
	{"lpc.tk.on", "2",
	 "khyve: lpc.tk.on: invalid value '2' (not a "
	 "boolean)\n"},
	{"vcpu.0.cpuset", "0-",
	 "khyve: vcpu.0.cpuset: invalid value '0-' (not a CPU list such as "
	 "0,2,4-7)\n"},
	{"vcpu.0.cpuset", "1024",
	 "khyve: vcpu.0.cpuset: invalid value '1024' (not a CPU list such "
	 "as 0,2,4-7)\n"},
	{"vcpu.x.cpuset", "1", "khyve: vcpu.x: invalid index (0-65534)\n"},
	{"vcpu.0.bogus", "1",
	 "khyve: vcpu.0.bogus: unknown configuration "
	 "key\n"},
	{"domains.8.cpus", "0", "khyve: domains.8: invalid index (0-7)\n"},
	{"domains.1.cpus", "3,1-",
	 "khyve: domains.1.cpus: invalid value "
	 "'3,1-' (not a CPU list such as "
	 "0,2,4-7)\n"},
	{"sockets", "1",
	 "khyve: cpus: topology (1 sockets, 2 cores, 1 threads) does not "
	 "match 4 vCPUs\n"},
	{"threads", "65535",
	 "khyve: cpus: computed number of vCPUs too high: 262140\n"},
	{"threads", "3",
	 "khyve: cpus: topology (2 sockets, 2 cores, 3 threads) does not "
	 "match 4 vCPUs\n"},
	{"cpus", NULL, NULL}, /* sockets*cores*threads = 4: fine */
};

static void test_rejects(void)
{
	struct cfg_node *root;
	size_t i;

	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];

		root = valid_tree();
		if (c->value)
			cfg_set(root, c->key, c->value);
		else
			cfg_unset(root, c->key);
		capture_begin(&cap, STDERR_FILENO);
		is_int(config_check_all(root), c->err ? -EINVAL : 0,
		       "%s=%s: %s", c->key, c->value ? c->value : "(unset)",
		       c->err ? "rejected" : "accepted");
		is_str(capture_end(&cap), c->err ? c->err : "",
		       "%s=%s: message", c->key,
		       c->value ? c->value : "(unset)");
		cfg_free(root);
	}

	/* one line per problem, in different parts of the tree */
	root = valid_tree();
	cfg_set(root, "bogus", "1");
	cfg_set(root, "pci.0.0.0.bogus", "1");
	cfg_set(root, "lpc.bogus", "1");
	cfg_set(root, "vcpu.1.cpuset", "x");
	capture_begin(&cap, STDERR_FILENO);
	is_int(config_check_all(root), -EINVAL, "several problems");
	is_str(capture_end(&cap),
	       "khyve: bogus: unknown configuration key\n"
	       "khyve: vcpu.1.cpuset: invalid value 'x' (not a CPU list such "
	       "as 0,2,4-7)\n"
	       "khyve: pci.0.0.0.bogus: unknown configuration key\n"
	       "khyve: lpc.bogus: unknown configuration key\n",
	       "one line each, naming the full path");
	cfg_free(root);

	/* "pci" and "lpc" must be nodes */
	root = cfg_new();
	cfg_set(root, "pci", "1");
	cfg_set(root, "lpc", "1");
	capture_begin(&cap, STDERR_FILENO);
	is_int(config_check_all(root), -EINVAL, "pci and lpc as values");
	is_str(capture_end(&cap),
	       "khyve: pci: must be a node (pci.<bus>.<slot>.<func>)\n"
	       "khyve: lpc: must be a node (lpc.<device>...)\n",
	       "pci/lpc leaf messages");
	cfg_free(root);
}

/* ---- the tables themselves ---- */

static void test_tables(void)
{
	const struct cfg_key *const *g = keys_global();
	const struct cfg_key *k, *k2;
	size_t t, t2, count = 0;
	bool help = true, unique = true;

	for (t = 0; g[t]; t++)
		for (k = g[t]; k->name; k++) {
			count++;
			if (!k->help || !*k->help)
				help = false;
			for (t2 = t; g[t2]; t2++)
				for (k2 = t2 == t ? k + 1 : g[t2]; k2->name;
				     k2++)
					if (strcmp(k->name, k2->name) == 0)
						unique = false;
		}
	ok(count > 60, "global tables hold %zu keys", count);
	ok(help, "every global key has help text");
	ok(unique, "global key names are unique");
	k = cfg_schema_find(g, "pci.0.3.0.device");
	ok(k && k->type == CFG_NODE, "pci is a node entry");
	k = cfg_schema_find(g, "lpc.com1.path");
	ok(k && k->type == CFG_NODE, "lpc is a node entry");
	k = cfg_schema_find(g, "memory.size");
	ok(k && k->type == CFG_SIZE && k->unit == 1024 * 1024,
	   "memory.size is a size in MiB");
	ok(cfg_schema_find(g, "boot.kernel") != NULL, "boot.kernel");
	ok(cfg_schema_find(g, "fwcfg.file.7.string") != NULL, "fwcfg files");
	ok(cfg_schema_find(g, "vcpu.12.cpuset") != NULL, "vcpu.N.cpuset");
	for (k = keys_pci_generic(); k->name; k++)
		ok(k->help != NULL, "pci key %s documented", k->name);
	for (k = keys_lpc_generic(); k->name; k++)
		ok(k->help != NULL, "lpc key %s documented", k->name);
}

static void test_cpulist(void)
{
	static const char *const good[] = {"0",	   "0,2,4-7", "1-1",
					   "1023", "0-1023",  "5,3"};
	static const char *const bad[] = {"",	 ",",  "0,",  ",0",    "-1",
					  "3-1", "a",  "0-",  "1024",  "0--2",
					  " 1",	 "1 ", "0x1", "1-2-3", NULL};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ok(keys_cpulist_ok(good[i], 1023), "cpu list '%s'", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ok(!keys_cpulist_ok(bad[i], 1023), "bad cpu list '%s'",
		   bad[i] ? bad[i] : "(null)");
}

int main(void)
{
	plan_no_plan();
	log_init("khyve");
	test_valid();
	test_rejects();
	test_tables();
	test_cpulist();
	return done_testing();
}
