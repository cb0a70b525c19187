/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm autostart: the list of VMs vm startall starts at boot, in order,
 * vm_delay seconds apart (vm-bhyve's vm_list and vm_delay, kept in
 * VM_DIR/.config/system.conf instead of rc.conf), and the systemd unit that
 * runs vm init and vm startall at boot and vm stopall at shutdown.
 *
 *   vm autostart [list]          the list, in start order
 *   vm autostart add NAME...     append VMs
 *   vm autostart remove NAME...  drop VMs
 *   vm autostart unit            print a systemd service for this VM_DIR
 *
 * Threads: single-threaded.  No locks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/vm/vm.h"

static int edit(struct vm_env *env, int argc, char **argv, bool add)
{
	const char *list = conf_get(&env->sys, "vm_list");
	char buf[4096], *copy, *tok, *save = NULL;
	struct vm vm;
	int i, rc;

	snprintf(buf, sizeof(buf), "%s", list ? list : "");
	for (i = 0; i < argc; i++) {
		bool listed = vm_autostart_pos(env, argv[i]) != 0;

		if (add) {
			if ((rc = vm_open(env, argv[i], &vm)))
				return rc;
			vm_close(&vm);
			if (listed) {
				vm_err("%s is already in the autostart list",
				       argv[i]);
				return -EEXIST;
			}
			snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
				 "%s%s", buf[0] ? " " : "", argv[i]);
			if ((rc = conf_set(&env->sys, "vm_list", buf)))
				return rc;
			continue;
		}
		if (!listed) {
			vm_err("%s is not in the autostart list", argv[i]);
			return -ENOENT;
		}
		copy = strdup(buf);
		if (!copy)
			return -ENOMEM;
		buf[0] = '\0';
		for (tok = strtok_r(copy, " \t", &save); tok;
		     tok = strtok_r(NULL, " \t", &save))
			if (strcmp(tok, argv[i]))
				snprintf(buf + strlen(buf),
					 sizeof(buf) - strlen(buf), "%s%s",
					 buf[0] ? " " : "", tok);
		free(copy);
		save = NULL;
		if ((rc = conf_set(&env->sys, "vm_list", buf)))
			return rc;
	}
	return vm_env_save(env);
}

static int list(const struct vm_env *env)
{
	const char *l = conf_get(&env->sys, "vm_list");
	const char *delay = conf_get(&env->sys, "vm_delay");
	char *copy, *tok, *save = NULL;
	unsigned n = 0;

	printf("%-5s %s\n", "ORDER", "NAME");
	if (!l || !(copy = strdup(l)))
		return 0;
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save))
		printf("%-5u %s\n", ++n, tok);
	free(copy);
	printf("(vm_delay: %s s between starts)\n", delay ? delay : "5");
	return 0;
}

static int unit(const struct vm_env *env)
{
	char vm[PATH_MAX + 8];

	snprintf(vm, sizeof(vm), "%s/vm", vm_bindir());
	printf("# khyve-vm.service: start the VMs of %s at boot (vm "
	       "autostart unit)\n"
	       "# Install: vm autostart unit > "
	       "/etc/systemd/system/khyve-vm.service\n"
	       "#          systemctl daemon-reload && systemctl enable "
	       "khyve-vm\n"
	       "[Unit]\n"
	       "Description=khyve virtual machines (vm startall)\n"
	       "Wants=network-online.target\n"
	       "After=network-online.target\n"
	       "\n"
	       "[Service]\n"
	       "Type=oneshot\n"
	       "RemainAfterExit=yes\n"
	       "Environment=VM_DIR=%s\n"
	       "ExecStart=%s init\n"
	       "ExecStart=%s startall\n"
	       "ExecStop=%s stopall\n"
	       "TimeoutStopSec=%u\n"
	       "KillMode=mixed\n"
	       "\n"
	       "[Install]\n"
	       "WantedBy=multi-user.target\n",
	       env->dir, env->dir, vm, vm, vm, VM_STOP_TIMEOUT + 60);
	return 0;
}

int cmd_autostart(struct vm_env *env, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "list"))
		return list(env);
	if (!strcmp(argv[1], "add") && argc > 2)
		return edit(env, argc - 2, argv + 2, true);
	if (!strcmp(argv[1], "remove") && argc > 2)
		return edit(env, argc - 2, argv + 2, false);
	if (!strcmp(argv[1], "unit") && argc == 2)
		return unit(env);
	vm_err("usage: vm autostart [list] | add NAME... | remove NAME... | "
	       "unit");
	return -EINVAL;
}
