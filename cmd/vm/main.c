/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm(8): the vm-bhyve-style manager for khyve.  This file parses the
 * command word and dispatches to the subcommand files (see vm.h for the
 * map); every subcommand returns 0 or -errno after printing its own error
 * line, and the process exits 0 or 1.
 *
 * Threads: single-threaded.  No locks.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/vm/vm.h"
#include "lib/log.h"

#define VM_VERSION "0.1"

struct vm_cmd {
	const char *name;
	int (*fn)(struct vm_env *env, int argc, char **argv);
	bool need_init; /* the datastore must exist */
};

static const struct vm_cmd cmds[] = {
	{"init", cmd_init, false},
	{"datastore", cmd_datastore, true},
	{"get", cmd_get, true},
	{"set", cmd_set, true},
	{"switch", cmd_switch, true},
	{"list", cmd_list, true},
	{"info", cmd_info, true},
	{"create", cmd_create, true},
	{"destroy", cmd_destroy, true},
	{"edit", cmd_edit, true},
	{"configure", cmd_edit, true},
	{"install", cmd_install, true},
	{"start", cmd_start, true},
	{"stop", cmd_stop, true},
	{"restart", cmd_restart, true},
	{"poweroff", cmd_poweroff, true},
	{"reset", cmd_reset, true},
	{"startall", cmd_startall, true},
	{"stopall", cmd_stopall, true},
	{"console", cmd_console, true},
	{"snapshot", cmd_snapshot, true},
	{"rollback", cmd_rollback, true},
	{"clone", cmd_clone, true},
	{"iso", cmd_iso, true},
	{"img", cmd_img, true},
	{"image", cmd_img, true},
	{"autostart", cmd_autostart, true},
	{"argv", cmd_argv, true},
	{NULL, NULL, false},
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vm [-f] <command> [args]\n"
		"  version | init | set SETTING=VALUE... | get all|SETTING...\n"
		"  switch list | info [name] | create [-t type] [-b bridge] "
		"[-i iface] [-m mtu] [-a addr] name\n"
		"         | add name iface | remove name iface | destroy name\n"
		"  datastore list | add name path | remove name\n"
		"  list [-r] [--json] | info [name...]\n"
		"  create [-d datastore] [-t template] [-s size] [-c cpus] "
		"[-m memory] [-i image] name\n"
		"  install [-f] name iso | start [-f] name... | stop name...\n"
		"  restart name | poweroff [-f] name | reset [-f] name\n"
		"  startall | stopall | autostart [list] | add name... | "
		"remove name... | unit\n"
		"  console name [com1|com2|com3|com4]\n"
		"  edit name | destroy [-f] name | argv [-i iso] name\n"
		"  snapshot [-l] name[@snap] | rollback name@snap | "
		"clone name[@snap] new\n"
		"  iso [-d datastore] [path|url] | img [-d datastore] "
		"[path|url]\n");
}

int main(int argc, char **argv)
{
	const struct vm_cmd *c;
	struct vm_env env;
	int rc;

	log_init("vm");
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "-f")) {
		/* vm-bhyve's "vm -f": always foreground; only for start */
		argv++;
		argc--;
		if (argc > 1 && (!strcmp(argv[1], "start") ||
				 !strcmp(argv[1], "install"))) {
			static char *fargv[64], fflag[] = "-f";
			int i, n = 0;

			fargv[n++] = argv[0];
			fargv[n++] = argv[1];
			fargv[n++] = fflag;
			for (i = 2; i < argc && n < 63; i++)
				fargv[n++] = argv[i];
			fargv[n] = NULL;
			argv = fargv;
			argc = n;
		}
	}
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "usage") ||
	    !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 1 : 0;
	}
	if (!strcmp(argv[1], "version")) {
		printf("vm %s (khyve)\n", VM_VERSION);
		return 0;
	}
	for (c = cmds; c->name; c++)
		if (!strcmp(c->name, argv[1]))
			break;
	if (!c->name) {
		vm_err("%s: unknown command (vm help lists them)", argv[1]);
		return 1;
	}
	if (vm_env_load(&env, c->need_init))
		return 1;
	rc = c->fn(&env, argc - 1, argv + 1);
	vm_env_free(&env);
	fflush(stdout);
	return rc ? 1 : 0;
}
