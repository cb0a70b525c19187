/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * khyve(8): one process per guest.  main() is the checklist: parse the
 * bhyve command line into the config tree, dump it if asked, check it
 * against the key schemas, build the VM, run it, and exit with bhyve's
 * status (0 reboot, 1 power-off, 2 halt, 3 triple fault, 4 error).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "config/config.h"
#include "config/flags.h"
#include "config/keys.h"
#include "core/devmodel.h"
#include "core/vm.h"
#include "lib/log.h"

int main(int argc, char **argv)
{
	struct cfg_node *root;
	struct vm *vm;
	bool dump = false, debug = false;
	int rc, status;

	log_init("khyve");
	(void)argv;
	root = cfg_new();
	if (!root)
		fatal(VM_EXIT_ERROR, "out of memory");
	flags_set_defaults(root);
	rc = flags_parse(root, argc, argv);
	if (rc == FLAGS_EXIT_OK)
		return 0;
	if (rc < 0)
		return VM_EXIT_ERROR;
	if (cfg_get_bool(root, "config.dump", false, &dump) < 0)
		return VM_EXIT_ERROR;
	if (dump) {
		/* bhyve exits 1 here; 0 lets scripts chain the dump. */
		cfg_dump(root, stdout);
		return fflush(stdout) == 0 ? 0 : VM_EXIT_ERROR;
	}
	if (config_check_all(root) < 0)
		return VM_EXIT_ERROR;
	if (cfg_get_bool(root, "log.debug", false, &debug) < 0)
		return VM_EXIT_ERROR;
	if (debug)
		log_set_level(LOG_DEBUG);
	if (vm_create(root, &vm) < 0)
		return VM_EXIT_ERROR;
	status = vm_run(vm);
	vm_destroy(vm);
	cfg_free(root);
	return status;
}
