/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * "lpc": the PCI-ISA bridge (Intel 0x8086/0x7000, as bhyve) that carries
 * the LPC devices configured with "-l": com1-com4 and pc-testdev (their
 * models register as DEVMODEL_LPC and are created here from the "lpc"
 * node).  bhyve's bootrom and TPM are not emulated yet: asking for them is
 * an error that says so.  Only one bridge, only on bus 0 (bhyve's rules).
 * Start-up only; no locks.
 */
#include "pci/pci.h"

#include <errno.h>
#include <string.h>

#include "lib/log.h"

static const struct cfg_key lpc_keys[] = {
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static const struct devmodel lpc_model;

static void count_lpc(void *arg, struct pci_dev *pd)
{
	if (pd->model == &lpc_model)
		(*(unsigned *)arg)++;
}

static int lpc_check_unsupported(struct cfg_node *root)
{
	const char *fwcfg;

	if (cfg_get(root, "bootrom") || cfg_get(root, "lpc.bootrom")) {
		log_err("bootrom: firmware boot is not supported by khyve yet; "
			"boot a kernel with -o boot.kernel=FILE");
		return -ENOTSUP;
	}
	if (cfg_get(root, "tpm.type") || cfg_get(root, "tpm.path")) {
		log_err("tpm: TPM emulation is not supported by khyve yet");
		return -ENOTSUP;
	}
	fwcfg = cfg_get(root, "lpc.fwcfg");
	if (fwcfg && strcmp(fwcfg, "bhyve") != 0 &&
	    strcmp(fwcfg, "qemu") != 0) {
		log_err("lpc.fwcfg: invalid value '%s' (bhyve or qemu)", fwcfg);
		return -EINVAL;
	}
	if (fwcfg && strcmp(fwcfg, "qemu") == 0)
		log_warn("lpc.fwcfg=qemu: QEMU fw_cfg is not emulated yet; "
			 "ignored");
	return 0;
}

static int lpc_init(struct pci_dev *pd, struct cfg_node *node)
{
	struct cfg_node *lpc;
	const struct devmodel *m;
	unsigned nlpc = 0;
	int rc;

	(void)node;
	if (pd->bus != 0) {
		log_err("LPC bridge can be present only on bus 0.");
		return -EINVAL;
	}
	pci_foreach(pd->root, count_lpc, &nlpc);
	if (nlpc > 1) { /* this one is already in the table */
		log_err("Only one LPC bridge is allowed.");
		return -EINVAL;
	}
	rc = lpc_check_unsupported(pd->ctx->root);
	if (rc)
		return rc;
	pci_set_ids(pd, 0x8086, 0x7000, PCIC_BRIDGE, PCIS_BRIDGE_ISA, 0);
	lpc = cfg_create(pd->ctx->root, "lpc");
	if (!lpc)
		return -EINVAL;
	for (m = devmodel_next(NULL); m; m = devmodel_next(m)) {
		if (m->kind != DEVMODEL_LPC || !m->lpc_init)
			continue;
		rc = m->lpc_init(pd->ctx, lpc);
		if (rc)
			return rc;
	}
	return 0;
}

static const struct pci_devops lpc_ops = {
	.init = lpc_init,
};

static const struct devmodel lpc_model = {
	.name = "lpc",
	.kind = DEVMODEL_PCI,
	.keys = lpc_keys,
	.pci = &lpc_ops,
};
DEVMODEL_SET(lpc_model);
