/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * khyve(8): one process per guest.  main() is the checklist: parse the
 * bhyve command line into the config tree, dump it if asked, check it
 * against the key schemas, build the VM, run it, and exit with bhyve's
 * status (0 reboot, 1 power-off, 2 halt, 3 triple fault, 4 error).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config/config.h"
#include "config/flags.h"
#include "config/keys.h"
#include "core/devmodel.h"
#include "core/vm.h"
#include "lib/log.h"

/* Parse and check the command line into 'root'.  Returns -1 to go on and
 * run the VM, else the status to exit with. */
static int configure(struct cfg_node *root, int argc, char **argv)
{
	bool dump = false, debug = false;
	int rc;

	flags_set_defaults(root);
	rc = flags_parse(root, argc, argv);
	if (rc == FLAGS_EXIT_OK)
		return 0;
	if (rc < 0 || cfg_get_bool(root, "config.dump", false, &dump) < 0)
		return VM_EXIT_ERROR;
	/* Checked before a dump too, so a dump is always a valid -k file. */
	if (config_check_all(root) < 0)
		return VM_EXIT_ERROR;
	if (dump) {
		/* bhyve exits 1 here; 0 lets scripts chain the dump. */
		cfg_dump(root, stdout);
		return fflush(stdout) == 0 ? 0 : VM_EXIT_ERROR;
	}
	if (cfg_get_bool(root, "log.debug", false, &debug) < 0)
		return VM_EXIT_ERROR;
	if (debug)
		log_set_level(LOG_DEBUG);
	return -1;
}

/* Make sure fds 0-2 exist, so no device fd (epoll, sockets) lands on
 * them and "-l com1,stdio" means what it says. */
static void open_std_fds(void)
{
	int fd;

	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

int main(int argc, char **argv)
{
	struct cfg_node *root;
	struct vm *vm;
	int status;

	open_std_fds();
	log_init("khyve");
	root = cfg_new();
	if (!root)
		fatal(VM_EXIT_ERROR, "out of memory");
	status = configure(root, argc, argv);
	if (status < 0) {
		if (vm_create(root, &vm) < 0) {
			status = VM_EXIT_ERROR;
		} else {
			status = vm_run(vm);
			vm_destroy(vm);
		}
	}
	cfg_free(root);
	return status;
}
