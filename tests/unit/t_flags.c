/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for bhyve's command line (src/config/flags.c): a table with
 * every flag of bhyve(8) and the key it must set, bhyve's error texts word
 * for word (stderr is captured), "-s help"/"-l help"/"-h" output (stdout
 * and stderr), -k/-o ordering and the vmname operand.  Three small PCI
 * models and one LPC model are registered here with DEVMODEL_SET so the
 * test does not depend on the real device models.  Single-threaded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/flags.h"
#include "core/devmodel.h"
#include "lib/log.h"
#include "tests/capture.h"
#include "tests/tap.h"

/* ---- test-only device models ---- */

static const struct cfg_key tdev_keys[] = {
	{"path", CFG_STRING, NULL, "a path", 0, 0, 0},
	{"ro", CFG_BOOL, "false", "read-only", 0, 0, 0},
	{"mode", CFG_STRING, NULL, "set by the alias", 0, 0, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static int talias_legacy(struct cfg_node *node, const char *opts)
{
	int rc = cfg_set(node, "mode", "alias");

	return rc < 0 ? rc : cfg_split_opts(node, opts);
}

static int tfail_legacy(struct cfg_node *node, const char *opts)
{
	log_err("%s: t-fail rejects '%s'", cfg_path(node), opts ? opts : "");
	return -EINVAL;
}

static int tlpc_legacy(struct cfg_node *lpc, const char *opts)
{
	return cfg_set(lpc, "t-lpc.opt", opts ? opts : "none");
}

static const struct devmodel t_dev = {
	.name = "t-dev",
	.kind = DEVMODEL_PCI,
	.keys = tdev_keys,
};
DEVMODEL_SET(t_dev);

static const struct devmodel t_alias = {
	.name = "t-alias",
	.kind = DEVMODEL_PCI,
	.alias_of = "t-dev",
	.parse_legacy = talias_legacy,
};
DEVMODEL_SET(t_alias);

static const struct devmodel t_fail = {
	.name = "t-fail",
	.kind = DEVMODEL_PCI,
	.parse_legacy = tfail_legacy,
};
DEVMODEL_SET(t_fail);

static const struct devmodel t_lpc = {
	.name = "t-lpc",
	.kind = DEVMODEL_LPC,
	.parse_legacy = tlpc_legacy,
};
DEVMODEL_SET(t_lpc);

/* ---- fd capture ---- */

static struct capture cap_err;
static struct capture cap_out;

/* ---- running flags_parse ---- */

#define MAX_ARGS 12

/*
 * Run flags_parse on a fresh tree with defaults: argv = khyve args...
 * (NULL-terminated).  Captures stderr into cap_err.buf (and stdout into
 * cap_out.buf).  Returns the tree (caller frees) and *rc.
 */
static struct cfg_node *run(int *rc, const char *const *args)
{
	struct cfg_node *root = cfg_new();
	char *argv[MAX_ARGS + 2];
	int argc = 0, i;

	argv[argc++] = strdup("khyve");
	for (i = 0; args[i] && argc <= MAX_ARGS; i++)
		argv[argc++] = strdup(args[i]);
	argv[argc] = NULL;
	flags_set_defaults(root);
	optind = 0;
	capture_begin(&cap_out, STDOUT_FILENO);
	capture_begin(&cap_err, STDERR_FILENO);
	*rc = flags_parse(root, argc, argv);
	capture_end(&cap_err);
	capture_end(&cap_out);
	for (i = 0; i < argc; i++)
		free(argv[i]);
	return root;
}

static const char *joined(const char *const *args)
{
	static char buf[512];
	size_t len = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; args[i]; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
					i ? " " : "", args[i]);
	return buf;
}

static char kfile[] = "/tmp/t_flags.k.XXXXXX";

/* ---- every flag of bhyve(8) ---- */

struct flag_case {
	const char *args[MAX_ARGS];
	const char *key, *value;
};

static const struct flag_case flag_cases[] = {
	{{"-a", "vm"}, "x86.x2apic", "false"},
	{{"-x", "-a", "vm"}, "x86.x2apic", "false"},
	{{"-A", "vm"}, "acpi_tables", "true"},
	{{"-C", "vm"}, "memory.guest_in_core", "true"},
	{{"-c", "4", "vm"}, "cpus", "4"},
	{{"-c", "4", "vm"}, "sockets", NULL},
	{{"-c", "cpus=4", "vm"}, "cpus", "4"},
	{{"-c", "cpus=4,sockets=2,cores=2,threads=1", "vm"}, "sockets", "2"},
	{{"-c", "cpus=4,sockets=2,cores=2,threads=1", "vm"}, "cores", "2"},
	{{"-c", "cpus=4,sockets=2,cores=2,threads=1", "vm"}, "threads", "1"},
	{{"-c", "cpus=2,sockets=1,cores=2,threads=1", "vm"}, "cpus", "2"},
	{{"-c", "sockets=2,threads=2", "vm"}, "threads", "2"},
	{{"-c", "sockets=2,threads=2", "vm"}, "cpus", NULL},
	{{"-c", "", "vm"}, "cpus", "1"},
	{{"-c", "", "vm"}, "sockets", "1"},
	{{"-c", "65535", "vm"}, "cpus", "65535"},
	{{"-D", "vm"}, "destroy_on_poweroff", "true"},
	{{"-e", "vm"}, "x86.strictio", "true"},
	{{"-f", "opt/com.coreos/config,string=hello,world", "vm"},
	 "fwcfg.file.0.name",
	 "opt/com.coreos/config"},
	{{"-f", "opt/com.coreos/config,string=hello,world", "vm"},
	 "fwcfg.file.0.string",
	 "hello,world"},
	{{"-f", "name=opt/a,file=/tmp/a", "-f", "opt/b,string=", "vm"},
	 "fwcfg.file.0.file",
	 "/tmp/a"},
	{{"-f", "name=opt/a,file=/tmp/a", "-f", "opt/b,string=", "vm"},
	 "fwcfg.file.1.string",
	 ""},
	{{"-o", "fwcfg.file.0.name=x", "-f", "opt/b,string=s", "vm"},
	 "fwcfg.file.1.name",
	 "opt/b"},
	{{"-f",
	  "opt/012345678901234567890123456789012345678901234567890,string=x",
	  "vm"},
	 "fwcfg.file.0.name",
	 "opt/012345678901234567890123456789012345678901234567890"},
	{{"-G", "1234", "vm"}, "gdb.port", "1234"},
	{{"-G", "1234", "vm"}, "gdb.wait", NULL},
	{{"-G", "w127.0.0.1:1234", "vm"}, "gdb.wait", "true"},
	{{"-G", "w127.0.0.1:1234", "vm"}, "gdb.address", "127.0.0.1"},
	{{"-G", "w127.0.0.1:1234", "vm"}, "gdb.port", "1234"},
	{{"-G", "[::1]:5555", "vm"}, "gdb.address", "[::1]"},
	{{"-H", "vm"}, "x86.vmexit_on_hlt", "true"},
	{{"-I", "vm"}, "name", "vm"},
	{{"-K", "de_CH", "vm"}, "keyboard.layout", "de_CH"},
	{{"-l", "com1,stdio", "vm"}, "lpc.com1.path", "stdio"},
	{{"-l", "com2,tcp=127.0.0.1:12345", "vm"},
	 "lpc.com2.path",
	 "tcp=127.0.0.1:12345"},
	{{"-l", "com3,/dev/nmdm0A", "vm"}, "lpc.com3.path", "/dev/nmdm0A"},
	{{"-l", "COM4,/dev/nmdm1A", "vm"}, "lpc.com4.path", "/dev/nmdm1A"},
	{{"-l", "pc-testdev", "vm"}, "lpc.pc-testdev", "true"},
	{{"-l", "bootrom,/fw/CODE.fd", "vm"}, "bootrom", "/fw/CODE.fd"},
	{{"-l", "bootrom,/fw/CODE.fd", "vm"}, "bootvars", NULL},
	{{"-l", "bootrom,/fw/CODE.fd,/fw/VARS.fd", "vm"},
	 "bootvars",
	 "/fw/VARS.fd"},
	{{"-l", "bootrom,/fw/CODE.fd,fwcfg=qemu", "vm"}, "lpc.fwcfg", "qemu"},
	{{"-l", "bootrom,/fw/CODE.fd,fwcfg=qemu", "vm"}, "bootvars", NULL},
	{{"-l", "bootrom,/fw/CODE.fd,/fw/VARS.fd,fwcfg=qemu", "vm"},
	 "lpc.fwcfg",
	 "qemu"},
	{{"-l", "tpm,swtpm,/var/run/swtpm.sock", "vm"}, "tpm.type", "swtpm"},
	{{"-l", "tpm,swtpm,/var/run/swtpm.sock", "vm"},
	 "tpm.path",
	 "/var/run/swtpm.sock"},
	{{"-l", "tpm,swtpm,/var/run/swtpm.sock", "vm"}, "tpm.version", "2.0"},
	{{"-l", "tpm,passthru,/dev/tpm0,version=2.0,intf=crb", "vm"},
	 "tpm.intf",
	 "crb"},
	{{"-l", "t-lpc,hello", "vm"}, "lpc.t-lpc.opt", "hello"},
	{{"-l", "t-lpc", "vm"}, "lpc.t-lpc.opt", "none"},
	{{"-m", "1G", "vm"}, "memory.size", "1G"},
	{{"-m", "214", "vm"}, "memory.size", "214"},
	{{"-m", "512m", "vm"}, "memory.size", "512m"},
	{{"-M", "vm"}, "monitor", "true"},
	{{"-n", "id=0,size=107,cpus=0-3", "vm"}, "domains.0.size", "107"},
	{{"-n", "id=0,size=107,cpus=0-3", "vm"}, "domains.0.cpus", "0-3"},
	{{"-n", "id=1,cpus=0,2-3,domain_policy=prefer:1", "vm"},
	 "domains.1.cpus",
	 "0,2-3"},
	{{"-n", "id=1,cpus=0,2-3,domain_policy=prefer:1", "vm"},
	 "domains.1.domain_policy",
	 "prefer:1"},
	{{"-o", "bios.vendor=LENOVO", "vm"}, "bios.vendor", "LENOVO"},
	{{"-o", "board.version=0B98401 Pro", "vm"},
	 "board.version",
	 "0B98401 Pro"},
	{{"-P", "vm"}, "x86.vmexit_on_pause", "true"},
	{{"-p", "0:3", "vm"}, "vcpu.0.cpuset", "3"},
	{{"-p", "0:1", "-p", "0:3", "-p", "1:0", "vm"}, "vcpu.0.cpuset", "1,3"},
	{{"-p", "0:1", "-p", "0:3", "-p", "1:0", "vm"}, "vcpu.1.cpuset", "0"},
	{{"-r", "/var/snap/vm.ckp", "vm"}, "restore", "/var/snap/vm.ckp"},
	{{"-S", "vm"}, "memory.wired", "true"},
	{{"-s", "3,t-dev", "vm"}, "pci.0.3.0.device", "t-dev"},
	{{"-s", "3:1,t-dev,path=/x,ro", "vm"}, "pci.0.3.1.path", "/x"},
	{{"-s", "3:1,t-dev,path=/x,ro", "vm"}, "pci.0.3.1.ro", "true"},
	{{"-s", "2:3:4,t-dev", "vm"}, "pci.2.3.4.device", "t-dev"},
	{{"-s", "255:31:7,t-dev", "vm"}, "pci.255.31.7.device", "t-dev"},
	{{"-s", "0:0,t-dev", "-s", "0:1,t-dev", "vm"},
	 "pci.0.0.1.device",
	 "t-dev"},
	{{"-s", "4,t-alias,foo=bar", "vm"}, "pci.0.4.0.device", "t-dev"},
	{{"-s", "4,t-alias,foo=bar", "vm"}, "pci.0.4.0.mode", "alias"},
	{{"-s", "4,t-alias,foo=bar", "vm"}, "pci.0.4.0.foo", "bar"},
	{{"-U", "6d5b7d4e-0c7a-4b7e-9d7c-0a0b0c0d0e0f", "vm"},
	 "uuid",
	 "6d5b7d4e-0c7a-4b7e-9d7c-0a0b0c0d0e0f"},
	{{"-u", "vm"}, "rtc.use_localtime", "false"},
	{{"-W", "vm"}, "virtio_msix", "false"},
	{{"-w", "vm"}, "x86.strictmsr", "false"},
	{{"-x", "vm"}, "x86.x2apic", "true"},
	{{"-Y", "vm"}, "x86.mptable", "false"},
	{{"-HP", "-uw", "vm"}, "x86.vmexit_on_pause", "true"},
	{{"-HP", "-uw", "vm"}, "x86.strictmsr", "false"},
	{{"-m2G", "vm"}, "memory.size", "2G"},
	{{"vm"}, "name", "vm"},
	{{"-o", "name=other", "vm"}, "name", "vm"},
	{{"-o", "name=other"}, "name", "other"},
	{{"-o", "lpc.bootrom=/old.fd", "vm"}, "bootrom", "/old.fd"},
	{{"-o", "lpc.bootvars=/old.vars", "vm"}, "bootvars", "/old.vars"},
	{{"-o", "lpc.bootrom=/old.fd", "-o", "bootrom=/new.fd", "vm"},
	 "bootrom",
	 "/new.fd"},
};

static void test_flag_table(void)
{
	struct cfg_node *root;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(flag_cases) / sizeof(flag_cases[0]); i++) {
		const struct flag_case *c = &flag_cases[i];

		root = run(&rc, c->args);
		is_int(rc, 0, "%s: parses", joined(c->args));
		is_str(cfg_get_raw(root, c->key), c->value, "%s: %s",
		       joined(c->args), c->key);
		if (strncmp(c->args[0], "-o", 2) != 0 ||
		    strstr(c->args[1], "lpc.boot") == NULL)
			is_str(cap_err.buf, "", "%s: silent", joined(c->args));
		cfg_free(root);
	}
}

/* ---- errors: exact text on stderr, -EINVAL ---- */

struct err_case {
	const char *args[MAX_ARGS];
	const char *err;
};

static const struct err_case err_cases[] = {
	{{"-m", "12Q", "vm"}, "khyve: invalid memsize '12Q'\n"},
	{{"-m", "0", "vm"}, "khyve: invalid memsize '0'\n"},
	{{"-m", "", "vm"}, "khyve: invalid memsize ''\n"},
	{{"-m", "-1G", "vm"}, "khyve: invalid memsize '-1G'\n"},
	{{"-m", "1.5G", "vm"}, "khyve: invalid memsize '1.5G'\n"},
	{{"-c", "0", "vm"}, "khyve: invalid cpu topology '0'\n"},
	{{"-c", "65536", "vm"}, "khyve: invalid cpu topology '65536'\n"},
	{{"-c", "x", "vm"}, "khyve: invalid cpu topology 'x'\n"},
	{{"-c", "cpus=4,sockets=2", "vm"},
	 "khyve: invalid cpu topology 'cpus=4,sockets=2'\n"},
	{{"-c", "cpus=4,cores=2", "vm"},
	 "khyve: invalid cpu topology 'cpus=4,cores=2'\n"},
	{{"-c", "vcpus=2", "vm"}, "khyve: invalid cpu topology 'vcpus=2'\n"},
	{{"-c", "cpus=2,", "vm"}, "khyve: invalid cpu topology 'cpus=2,'\n"},
	{{"-c", "sockets=256,cores=256", "vm"},
	 "khyve: invalid cpu topology 'sockets=256,cores=256'\n"},
	{{"-c", "cpus=-1", "vm"}, "khyve: invalid cpu topology 'cpus=-1'\n"},
	{{"-p", "x:1", "vm"},
	 "khyve: invalid vcpu pinning configuration 'x:1'\n"},
	{{"-p", "0:", "vm"},
	 "khyve: invalid vcpu pinning configuration '0:'\n"},
	{{"-p", "0", "vm"}, "khyve: invalid vcpu pinning configuration '0'\n"},
	{{"-p", "-1:2", "vm"},
	 "khyve: invalid vcpu pinning configuration '-1:2'\n"},
	{{"-p", "0:1024", "vm"},
	 "khyve: invalid vcpu pinning configuration '0:1024'\n"},
	{{"-p", "0:1:2", "vm"},
	 "khyve: invalid vcpu pinning configuration '0:1:2'\n"},
	{{"-p", "65535:0", "vm"},
	 "khyve: invalid vcpu pinning configuration '65535:0'\n"},
	{{"-o", "novalue", "vm"},
	 "khyve: invalid configuration option 'novalue'\n"},
	{{"-o", "=x", "vm"}, "khyve: invalid configuration option '=x'\n"},
	{{"-o", "memory=1", "vm"},
	 "khyve: invalid configuration option 'memory=1' (memory is a "
	 "configuration node, not a value)\n"},
	{{"-s", "3", "vm"}, "khyve: Invalid PCI slot info field \"3\"\n"},
	{{"-s", "32,t-dev", "vm"},
	 "khyve: Invalid PCI slot info field \"32,t-dev\"\n"},
	{{"-s", "0:8,t-dev", "vm"},
	 "khyve: Invalid PCI slot info field \"0:8,t-dev\"\n"},
	{{"-s", "256:0:0,t-dev", "vm"},
	 "khyve: Invalid PCI slot info field \"256:0:0,t-dev\"\n"},
	{{"-s", "a,t-dev", "vm"},
	 "khyve: Invalid PCI slot info field \"a,t-dev\"\n"},
	{{"-s", ",t-dev", "vm"},
	 "khyve: Invalid PCI slot info field \",t-dev\"\n"},
	{{"-s", "1:2:3:4,t-dev", "vm"},
	 "khyve: Invalid PCI slot info field \"1:2:3:4,t-dev\"\n"},
	{{"-s", "-1,t-dev", "vm"},
	 "khyve: Invalid PCI slot info field \"-1,t-dev\"\n"},
	{{"-s", "3,foo", "vm"},
	 "khyve: pci slot 0:3:0: unknown device \"foo\"\n"},
	{{"-s", "0,foo,a=b", "vm"},
	 "khyve: pci slot 0:0:0: unknown device \"foo\"\n"},
	{{"-s", "1:2:3,", "vm"},
	 "khyve: pci slot 1:2:3: unknown device \"\"\n"},
	{{"-s", "3,t-dev", "-s", "0:3:0,t-alias", "vm"},
	 "khyve: pci slot 0:3:0 already occupied!\n"},
	{{"-s", "3,t-dev", "-s", "3,foo", "vm"},
	 "khyve: pci slot 0:3:0: unknown device \"foo\"\n"},
	{{"-s", "5,t-fail,x", "vm"}, "khyve: pci.0.5.0: t-fail rejects 'x'\n"},
	{{"-s", "5,t-dev,=v", "vm"},
	 "khyve: pci.0.5.0: empty option name in '=v'\n"},
	{{"-l", "com5,stdio", "vm"},
	 "khyve: invalid lpc device configuration 'com5,stdio'\n"},
	{{"-l", "nosuch", "vm"},
	 "khyve: invalid lpc device configuration 'nosuch'\n"},
	{{"-l", "", "vm"}, "khyve: invalid lpc device configuration ''\n"},
	{{"-l", "pc-testdevx", "vm"},
	 "khyve: invalid lpc device configuration 'pc-testdevx'\n"},
	{{"-l", "bootrom", "vm"},
	 "khyve: invalid bootrom option \"bootrom\"\n"},
	{{"-l", "bootrom,", "vm"},
	 "khyve: invalid bootrom option \"bootrom,\"\n"},
	{{"-l", "tpm", "vm"}, "khyve: invalid tpm type \"tpm\"\n"},
	{{"-l", "tpm,swtpm", "vm"}, "khyve: invalid tpm path \"tpm,swtpm\"\n"},
	{{"-G", "w", "vm"}, "khyve: invalid debug server configuration 'w'\n"},
	{{"-G", "host:99999", "vm"},
	 "khyve: invalid debug server configuration 'host:99999'\n"},
	{{"-G", "1.2.3.4:", "vm"},
	 "khyve: invalid debug server configuration '1.2.3.4:'\n"},
	{{"-n", "size=1G", "vm"},
	 "khyve: invalid NUMA configuration 'size=1G'\n"},
	{{"-n", "id=8,size=1G", "vm"},
	 "khyve: invalid NUMA configuration 'id=8,size=1G'\n"},
	{{"-n", "id=0,bogus=1", "vm"},
	 "khyve: invalid NUMA configuration 'id=0,bogus=1'\n"},
	{{"-n", "id=0,cpus=3-1", "vm"},
	 "khyve: invalid NUMA configuration 'id=0,cpus=3-1'\n"},
	{{"-n", "id=0,size=1Q", "vm"},
	 "khyve: invalid NUMA configuration 'id=0,size=1Q'\n"},
	{{"-n", "id=0,7", "vm"},
	 "khyve: invalid NUMA configuration 'id=0,7'\n"},
	{{"-n", "", "vm"}, "khyve: invalid NUMA configuration ''\n"},
	{{"-o", "acpi_tables=false", "-n", "id=0,size=1G", "vm"},
	 "khyve: NUMA emulation requires ACPI\n"},
	{{"-f", "noval", "vm"}, "khyve: invalid fwcfg item 'noval'\n"},
	{{"-f", "opt/a,data=x", "vm"},
	 "khyve: invalid fwcfg item "
	 "'opt/a,data=x'\n"},
	{{"-f", ",string=x", "vm"}, "khyve: invalid fwcfg item ',string=x'\n"},
	{{"-f", "opt/a,file=", "vm"},
	 "khyve: invalid fwcfg item 'opt/a,file='\n"},
	{{"-f",
	  "opt/0123456789012345678901234567890123456789012345678901,string=x",
	  "vm"},
	 "khyve: invalid fwcfg item "
	 "'opt/"
	 "0123456789012345678901234567890123456789012345678901,string=x'\n"},
	{{"-f", "opt/a,string=1", "-f", "name=opt/a,string=2", "vm"},
	 "khyve: invalid fwcfg item 'name=opt/a,string=2'\n"},
	{{"-k", "/nonexistent/khyve.conf", "vm"},
	 "khyve: /nonexistent/khyve.conf: No such file or directory\n"},
	{{"-z", "vm"}, "khyve: invalid option -- 'z' (see khyve -h)\n"},
	{{"-m"}, "khyve: option requires an argument -- 'm'\n"},
	{{"-u"}, "khyve: missing vmname (see khyve -h)\n"},
	{{"vm", "extra"},
	 "khyve: unexpected argument 'extra' after vmname 'vm' (see khyve "
	 "-h)\n"},
	{{"vm", "-m", "1G"},
	 "khyve: unexpected argument '-m' after vmname 'vm' (see khyve -h)\n"},
	{{""}, "khyve: empty vmname\n"},
};

static void test_errors(void)
{
	struct cfg_node *root;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(err_cases) / sizeof(err_cases[0]); i++) {
		const struct err_case *c = &err_cases[i];

		root = run(&rc, c->args);
		is_int(rc, -EINVAL, "'%s' fails", joined(c->args));
		is_str(cap_err.buf, c->err, "'%s' message", joined(c->args));
		cfg_free(root);
	}
	/* the failed slot leaves nothing behind */
	root = run(&rc, (const char *const[]){"-s", "5,t-fail", "vm", NULL});
	ok(cfg_find(root, "pci.0.5.0") == NULL, "failed -s removes its node");
	cfg_free(root);
	/* the unknown device text exactly as libvirt's probe greps it */
	root = run(&rc, (const char *const[]){"-s", "3,foo", "vm", NULL});
	is_str(cap_err.buf, "khyve: pci slot 0:3:0: unknown device \"foo\"\n",
	       "unknown device text");
	cfg_free(root);
	/* bhyve's probe "-l bootrom" must not say "invalid lpc device" */
	root = run(&rc, (const char *const[]){"-l", "bootrom", NULL});
	ok(strstr(cap_err.buf, "invalid lpc device configuration") == NULL,
	   "-l bootrom probe: no 'invalid lpc device configuration'");
	cfg_free(root);
	/* a com port without a backend is an error (model or built in) */
	root = run(&rc, (const char *const[]){"-l", "com1", "vm", NULL});
	is_int(rc, -EINVAL, "-l com1 without a backend fails");
	ok(strstr(cap_err.buf, "com1") != NULL, "message names com1");
	cfg_free(root);
}

/* ---- help ---- */

static void test_help(void)
{
	static const char *const flags = "aACcDefGHhIkKlMmnoPpSsrUuWwxY";
	struct cfg_node *root;
	const char *p, *prev;
	char line[16], *copy, *tok;
	bool sorted;
	int rc;

	root = run(&rc, (const char *const[]){"-h", NULL});
	is_int(rc, FLAGS_EXIT_OK, "-h: FLAGS_EXIT_OK");
	ok(strncmp(cap_err.buf, "Usage: khyve [", 14) == 0,
	   "-h: usage on stderr");
	is_str(cap_out.buf, "", "-h: nothing on stdout");
	ok(strstr(cap_err.buf, "       -u: RTC keeps UTC time\n") != NULL,
	   "-h: libvirt's '-u:' line");
	ok(strstr(cap_err.buf, "       -c: number of CPUs and/or topology "
			       "specification\n") != NULL,
	   "-h: the -c line");
	ok(strstr(cap_err.buf, "-c vcpus") == NULL,
	   "-h: no '-c vcpus' (libvirt: CPU topology supported)");
	for (p = flags; *p; p++) {
		snprintf(line, sizeof(line), "\n       -%c: ", *p);
		ok(strstr(cap_err.buf, line) != NULL, "-h lists -%c", *p);
	}
	cfg_free(root);

	root = run(&rc, (const char *const[]){"-h", "-m", "bad", NULL});
	is_int(rc, FLAGS_EXIT_OK, "-h stops parsing");
	cfg_free(root);

	root = run(&rc, (const char *const[]){"-l", "help", NULL});
	is_int(rc, FLAGS_EXIT_OK, "-l help: FLAGS_EXIT_OK");
	is_str(cap_out.buf,
	       "bootrom\ncom1\ncom2\ncom3\ncom4\ntpm\npc-testdev\n",
	       "-l help lists exactly bhyve's LPC devices");
	is_str(cap_err.buf, "", "-l help: nothing on stderr");
	cfg_free(root);
	root = run(&rc, (const char *const[]){"-l", "he", NULL});
	is_int(rc, FLAGS_EXIT_OK, "-l he (a prefix of help)");
	cfg_free(root);

	root = run(&rc, (const char *const[]){"-s", "help", NULL});
	is_int(rc, FLAGS_EXIT_OK, "-s help: FLAGS_EXIT_OK");
	ok(strstr(cap_out.buf, "t-alias\nt-dev\nt-fail\n") != NULL,
	   "-s help lists the test models, sorted");
	ok(strstr(cap_out.buf, "t-lpc") == NULL, "-s help: no LPC models");
	sorted = true;
	copy = strdup(cap_out.buf);
	prev = "";
	for (tok = strtok(copy, "\n"); tok; tok = strtok(NULL, "\n")) {
		if (strcmp(prev, tok) > 0)
			sorted = false;
		prev = tok;
	}
	free(copy);
	ok(sorted, "-s help output is sorted");
	cfg_free(root);
	root = run(&rc, (const char *const[]){"-s", "h", NULL});
	is_int(rc, FLAGS_EXIT_OK, "-s h (a prefix of help)");
	cfg_free(root);
}

/* ---- ordering: -k, -o, sugar flags, operand ---- */

static void test_order(void)
{
	struct cfg_node *root;
	FILE *f;
	int rc, fd;

	fd = mkstemp(kfile);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		ok(0, "temporary -k file");
		return;
	}
	fputs("# a config file\nmemory.size=1G\nname=fromfile\ncpus=2\n", f);
	fclose(f);

	root = run(&rc, (const char *const[]){"-o", "memory.size=2G", "-k",
					      kfile, "vm", NULL});
	is_int(rc, 0, "-o then -k");
	is_str(cfg_get(root, "memory.size"), "1G", "-k after -o wins");
	is_str(cfg_get(root, "name"), "vm", "operand beats the file");
	cfg_free(root);

	root = run(&rc, (const char *const[]){"-k", kfile, "-o",
					      "memory.size=2G", "vm", NULL});
	is_str(cfg_get(root, "memory.size"), "2G", "-o after -k wins");
	cfg_free(root);

	root = run(&rc, (const char *const[]){"-k", kfile, "-m", "4G", NULL});
	is_int(rc, 0, "name from -k: no operand needed");
	is_str(cfg_get(root, "memory.size"), "4G", "-m after -k wins");
	is_str(cfg_get(root, "name"), "fromfile", "name from the file");
	cfg_free(root);

	root = run(&rc,
		   (const char *const[]){"-m", "4G", "-k", kfile, "vm", NULL});
	is_str(cfg_get(root, "memory.size"), "1G", "-k after -m wins");
	cfg_free(root);

	root = run(&rc, (const char *const[]){"-c", "4", "-o", "cpus=8", "vm",
					      NULL});
	is_str(cfg_get(root, "cpus"), "8", "-o after -c wins");
	cfg_free(root);

	root = run(&rc,
		   (const char *const[]){"-u", "-o", "rtc.use_localtime=true",
					 "vm", NULL});
	is_str(cfg_get(root, "rtc.use_localtime"), "true", "-o after -u");
	cfg_free(root);

	root = run(&rc, (const char *const[]){"-o", "lpc.bootrom=/old.fd", "vm",
					      NULL});
	is_str(cap_err.buf,
	       "khyve: lpc.bootrom is deprecated, use '-o bootrom' instead\n",
	       "lpc.bootrom deprecation warning (bhyve's)");
	cfg_free(root);
	unlink(kfile);
}

/* ---- defaults ---- */

static void test_defaults(void)
{
	struct cfg_node *root = cfg_new();
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	flags_set_defaults(root);
	cfg_dump(root, f);
	fclose(f);
	is_str(buf,
	       "acpi_tables=true\n"
	       "acpi_tables_in_memory=true\n"
	       "memory.size=256M\n"
	       "memory.wired=false\n"
	       "memory.guest_in_core=false\n"
	       "x86.strictmsr=true\n"
	       "x86.verbosemsr=false\n"
	       "x86.mptable=true\n"
	       "x86.x2apic=false\n"
	       "x86.strictio=false\n"
	       "x86.vmexit_on_hlt=false\n"
	       "x86.vmexit_on_pause=false\n"
	       "lpc.fwcfg=bhyve\n"
	       "rtc.use_localtime=true\n"
	       "virtio_msix=true\n"
	       "destroy_on_poweroff=false\n",
	       "defaults");
	ok(cfg_get_raw(root, "cpus") == NULL, "cpus left to the topology");
	free(buf);
	cfg_free(root);
}

/* flags_parse may run twice in one process (getopt is re-initialised). */
static void test_reentry(void)
{
	struct cfg_node *root;
	int rc;

	/* stop inside an option group: getopt keeps a pointer into argv */
	root = run(&rc, (const char *const[]){"-hS", "a", NULL});
	is_int(rc, FLAGS_EXIT_OK, "first parse stops at -h");
	cfg_free(root);
	root = run(&rc, (const char *const[]){"-m", "2G", "b", NULL});
	is_int(rc, 0, "second parse");
	is_str(cfg_get(root, "memory.size"), "2G", "second parse -m");
	is_str(cfg_get(root, "memory.wired"), "false", "no state carried");
	is_str(cfg_get(root, "name"), "b", "second parse name");
	cfg_free(root);
}

int main(void)
{
	plan_no_plan();
	log_init("khyve");
	test_defaults();
	test_flag_table();
	test_errors();
	test_help();
	test_order();
	test_reentry();
	return done_testing();
}
