/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for the PCI root without KVM: config space through
 * 0xcf8/0xcfc and ECAM on the buses, hostbridge/amd_hostbridge/lpc
 * identities, multi-function marking, pcireg overrides, read-only bytes,
 * absent functions, and the configuration errors bhyve users know.
 */
#include <errno.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "config/config.h"
#include "core/devmodel.h"
#include "core/layout.h"
#include "pci/pci.h"
#include "tests/tap.h"

struct env {
	struct devctx ctx;
	struct pci_bus *root;
	struct cfg_node *cfg;
};

static int env_new(struct env *e, const char *const *kv)
{
	memset(e, 0, sizeof(*e));
	e->cfg = cfg_new();
	bus_new(&e->ctx.pio, "pio");
	bus_new(&e->ctx.mmio, "mmio");
	e->ctx.root = e->cfg;
	for (; *kv; kv += 2)
		cfg_set(e->cfg, kv[0], kv[1]);
	if (pci_root_new(&e->ctx, &e->root))
		return -1;
	return pci_create_devices(e->root, e->cfg);
}

static void env_free(struct env *e)
{
	pci_root_free(e->root);
	bus_free(e->ctx.pio);
	bus_free(e->ctx.mmio);
	cfg_free(e->cfg);
}

static uint32_t cf8_read(struct env *e, unsigned b, unsigned s, unsigned f,
			 unsigned reg, unsigned size)
{
	uint64_t v = 0x80000000u | b << 16 | s << 11 | f << 8 | (reg & 0xfc);

	bus_dispatch(e->ctx.pio, PORT_PCI_CONF_ADDR, 4, true, &v);
	bus_dispatch(e->ctx.pio, PORT_PCI_CONF_DATA + (reg & 3), size, false,
		     &v);
	return (uint32_t)v;
}

static void cf8_write(struct env *e, unsigned b, unsigned s, unsigned f,
		      unsigned reg, unsigned size, uint32_t val)
{
	uint64_t v = 0x80000000u | b << 16 | s << 11 | f << 8 | (reg & 0xfc);

	bus_dispatch(e->ctx.pio, PORT_PCI_CONF_ADDR, 4, true, &v);
	v = val;
	bus_dispatch(e->ctx.pio, PORT_PCI_CONF_DATA + (reg & 3), size, true,
		     &v);
}

static uint64_t ecam_read(struct env *e, unsigned b, unsigned s, unsigned f,
			  unsigned reg, unsigned size)
{
	uint64_t v;

	bus_dispatch(e->ctx.mmio,
		     PCI_ECAM_BASE + (b << 20 | s << 15 | f << 12 | reg), size,
		     false, &v);
	return v;
}

int main(void)
{
	static const char *const good[] = {
		"pci.0.0.0.device",
		"hostbridge",
		"pci.0.31.0.device",
		"lpc",
		"pci.0.3.0.device",
		"hostbridge",
		"pci.0.3.2.device",
		"hostbridge",
		"pci.0.3.2.pcireg.vendor",
		"0x1022",
		"pci.0.3.2.pcireg.device",
		"7432",
		"pci.0.3.2.pcireg.revid",
		"5",
		"pci.2.0.0.device",
		"hostbridge",
		NULL,
	};
	static const char *const unknown[] = {"pci.0.3.0.device", "nope", NULL};
	static const char *const lpc_bus1[] = {"pci.1.1.0.device", "lpc", NULL};
	static const char *const two_lpc[] = {"pci.0.1.0.device", "lpc",
					      "pci.0.2.0.device", "lpc", NULL};
	static const char *const bad_reg[] = {"pci.0.1.0.device", "hostbridge",
					      "pci.0.1.0.pcireg.vendor",
					      "0x12345", NULL};
	static const char *const bad_node[] = {"pci.0.x.0.device", "hostbridge",
					       NULL};
	struct env e;
	uint64_t v;

	plan_no_plan();
	is_int(env_new(&e, good), 0, "create hostbridge, lpc, multi-function");
	is_int(cf8_read(&e, 0, 0, 0, 0, 4), 0x12751275,
	       "hostbridge vendor/device via 0xcf8");
	is_int(cf8_read(&e, 0, 0, 0, PCIR_SUBCLASS, 2), 0x0600,
	       "hostbridge class 06/00");
	is_int(cf8_read(&e, 0, 31, 0, 0, 4), 0x70008086,
	       "lpc vendor/device 8086:7000");
	is_int(cf8_read(&e, 0, 31, 0, PCIR_CLASS, 1), 0x06, "lpc class 06");
	is_int(cf8_read(&e, 0, 31, 0, PCIR_SUBCLASS, 1), 0x01,
	       "lpc subclass 01 (ISA)");
	is_int(cf8_read(&e, 0, 3, 2, 0, 4), 0x74321022,
	       "pcireg.vendor/device overrides (hex with and without 0x)");
	is_int(cf8_read(&e, 0, 3, 2, PCIR_REVID, 1), 5, "pcireg.revid");
	is_int(cf8_read(&e, 0, 3, 0, PCIR_HDRTYPE, 1) & 0x80, 0x80,
	       "function 0 of a multi-function slot has the MF bit");
	is_int(cf8_read(&e, 0, 0, 0, PCIR_HDRTYPE, 1) & 0x80, 0,
	       "single-function slot has no MF bit");
	is_int(cf8_read(&e, 0, 3, 1, 0, 4), 0xffffffff,
	       "absent function reads all ones");
	is_int(cf8_read(&e, 0, 5, 0, 0, 2), 0xffff, "absent slot, word read");
	is_int(cf8_read(&e, 2, 0, 0, 0, 4), 0x12751275, "device on bus 2");
	is_int(ecam_read(&e, 0, 31, 0, 0, 4), 0x70008086, "lpc via ECAM");
	is_int(ecam_read(&e, 0, 3, 2, 0, 8),
	       0x0000000074321022ULL |
		       ((uint64_t)cf8_read(&e, 0, 3, 2, 4, 4) << 32),
	       "64-bit ECAM read is two dwords");
	is_int(ecam_read(&e, 7, 0, 0, 0, 4), 0xffffffff,
	       "ECAM absent bus reads all ones");

	cf8_write(&e, 0, 0, 0, 0, 4, 0xdeadbeef);
	is_int(cf8_read(&e, 0, 0, 0, 0, 4), 0x12751275,
	       "vendor/device are read-only");
	cf8_write(&e, 0, 0, 0, PCIR_COMMAND, 2, 0x0007);
	is_int(cf8_read(&e, 0, 0, 0, PCIR_COMMAND, 2), 0x0007,
	       "command register is writable");
	cf8_write(&e, 0, 0, 0, PCIR_INTLINE, 1, 0x0b);
	is_int(cf8_read(&e, 0, 0, 0, PCIR_INTLINE, 1), 0x0b,
	       "interrupt line is writable");
	is_int(cf8_read(&e, 0, 0, 0, 1, 2), 0xffff,
	       "misaligned word read is ignored (all ones)");

	v = 0x0000f800;
	bus_dispatch(e.ctx.pio, PORT_PCI_CONF_ADDR, 4, true, &v);
	bus_dispatch(e.ctx.pio, PORT_PCI_CONF_DATA, 4, false, &v);
	is_int(v, 0xffffffff, "enable bit clear: data port reads all ones");
	bus_dispatch(e.ctx.pio, PORT_PCI_CONF_ADDR, 4, false, &v);
	is_int(v, 0x0000f800, "address latch reads back");
	ok(!bus_claimed(e.ctx.pio, PORT_RESET_CF9),
	   "0xcf9 is left for the reset-control register");
	env_free(&e);

	is_int(env_new(&e, unknown), -EINVAL, "unknown device refused");
	env_free(&e);
	is_int(env_new(&e, lpc_bus1), -EINVAL, "lpc on bus 1 refused");
	env_free(&e);
	is_int(env_new(&e, two_lpc), -EINVAL, "two lpc bridges refused");
	env_free(&e);
	is_int(env_new(&e, bad_reg), -EINVAL, "pcireg.vendor too wide refused");
	env_free(&e);
	is_int(env_new(&e, bad_node), -EINVAL, "pci.0.x.0 is not a slot");
	env_free(&e);
	return done_testing();
}
