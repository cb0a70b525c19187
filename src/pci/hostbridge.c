/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * "hostbridge" and "amd_hostbridge": the PCI host bridge bhyve puts at
 * slot 0 (vendor/device 0x1275/0x1275; the AMD alias reports 0x1022/0x7432).
 * Config space only; no BARs, no interrupts.  No state, no locks.
 */
#include "pci/pci.h"

static const struct cfg_key hostbridge_keys[] = {
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static int hostbridge_init(struct pci_dev *pd, struct cfg_node *node)
{
	(void)node;
	pci_set_ids(pd, 0x1275, 0x1275, PCIC_BRIDGE, PCIS_BRIDGE_HOST, 0);
	return 0;
}

static const struct pci_devops hostbridge_ops = {
	.init = hostbridge_init,
};

static const struct devmodel hostbridge_model = {
	.name = "hostbridge",
	.kind = DEVMODEL_PCI,
	.keys = hostbridge_keys,
	.pci = &hostbridge_ops,
};
DEVMODEL_SET(hostbridge_model);

/* bhyve's alias: a hostbridge node with AMD's IDs as pcireg overrides. */
static int amd_hostbridge_legacy(struct cfg_node *node, const char *opts)
{
	int rc = cfg_set_default(node, "pcireg.vendor", "0x1022");

	if (rc == 0)
		rc = cfg_set_default(node, "pcireg.device", "0x7432");
	if (rc == 0 && opts)
		rc = cfg_split_opts(node, opts);
	return rc;
}

static const struct devmodel amd_hostbridge_model = {
	.name = "amd_hostbridge",
	.kind = DEVMODEL_PCI,
	.alias_of = "hostbridge",
	.keys = hostbridge_keys,
	.parse_legacy = amd_hostbridge_legacy,
	.pci = &hostbridge_ops,
};
DEVMODEL_SET(amd_hostbridge_model);
