/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device test of pc-testdev (scratch ports, isa-debug-exit, IOAPIC pin
 * ports, iomem and the khyve exit register) through bus_dispatch(), with
 * a recording interrupt sink and exit callback (no KVM); and of its LPC
 * model ("-l pc-testdev" -> lpc.pc-testdev=true).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "config/config.h"
#include "core/devmodel.h"
#include "core/layout.h"
#include "hw/pctestdev.h"
#include "lib/log.h"
#include "tests/dev/devenv.h"
#include "tests/tap.h"

static void test_device(void)
{
	struct devenv env;
	struct pctestdev *td = NULL, *td2 = NULL;
	const uint64_t base = TESTDEV_IOMEM_BASE;
	unsigned i;

	devenv_init(&env, 0);
	is_int(pctestdev_create(&env.ctx, &td), 0, "pctestdev_create");
	if (!td)
		return;
	ok(bus_claimed(env.ctx.pio, 0xe0) && bus_claimed(env.ctx.pio, 0xe3) &&
		   !bus_claimed(env.ctx.pio, 0xe4),
	   "scratch ports 0xe0-0xe3");
	ok(bus_claimed(env.ctx.pio, 0xf4) && bus_claimed(env.ctx.pio, 0xf7),
	   "debug exit 0xf4-0xf7");
	ok(bus_claimed(env.ctx.pio, 0x2000) &&
		   bus_claimed(env.ctx.pio, 0x2017) &&
		   !bus_claimed(env.ctx.pio, 0x2018),
	   "irq ports 0x2000-0x2017");
	ok(bus_claimed(env.ctx.mmio, base) &&
		   bus_claimed(env.ctx.mmio, TESTDEV_EXIT_REG + 3) &&
		   !bus_claimed(env.ctx.mmio, base + TESTDEV_IOMEM_SIZE),
	   "iomem window claimed");

	/* Scratch register. */
	devenv_out(&env, TESTDEV_PORT_BASE, 4, 0x12345678);
	is_int(devenv_in(&env, TESTDEV_PORT_BASE, 4), 0x12345678,
	       "scratch dword");
	is_int(devenv_in(&env, TESTDEV_PORT_BASE + 2, 1), 0x34,
	       "scratch byte 2");
	devenv_out(&env, TESTDEV_PORT_BASE + 1, 2, 0xbeef);
	is_int(devenv_in(&env, TESTDEV_PORT_BASE, 4), 0x12beef78,
	       "unaligned word write");
	devenv_out(&env, TESTDEV_PORT_BASE + 3, 4, 0xaabbccdd);
	is_int(devenv_in(&env, TESTDEV_PORT_BASE, 4), 0xddbeef78,
	       "write crossing the end keeps only the inside byte");
	is_int(devenv_in(&env, TESTDEV_PORT_BASE + 2, 4), 0xffffddbe,
	       "read crossing the end: outside bytes all ones");

	/* isa-debug-exit. */
	devenv_out(&env, DEBUG_EXIT_PORT, 1, 0);
	is_int(env.rec.status, 1, "debug exit 0 -> status 1");
	is_str(env.rec.why, "isa-debug-exit", "reason");
	devenv_out(&env, DEBUG_EXIT_PORT, 1, 1);
	is_int(env.rec.status, 3, "debug exit 1 -> status 3");
	devenv_out(&env, DEBUG_EXIT_PORT, 4, 0x10);
	is_int(env.rec.status, 0x21, "debug exit 0x10 -> status 0x21");
	devenv_out(&env, DEBUG_EXIT_PORT, 2, 0x1ff);
	is_int(env.rec.status, 0x3ff, "word write 0x1ff -> 0x3ff");
	devenv_out(&env, DEBUG_EXIT_PORT, 1, 0x1ff);
	is_int(env.rec.status, 0x1ff, "byte write keeps only the byte (0xff)");
	is_int(env.rec.exits, 5, "five exit requests");
	is_int(devenv_in(&env, DEBUG_EXIT_PORT, 1), 0xff,
	       "debug exit reads all ones");
	is_int(env.rec.exits, 5, "reads do not exit");

	/* IOAPIC pins. */
	devenv_out(&env, TESTDEV_IRQ_PORT + 5, 1, 1);
	is_int(env.rec.level[5], 1, "pin 5 raised");
	is_int(devenv_in(&env, TESTDEV_IRQ_PORT + 5, 1), 1,
	       "pin 5 reads back 1");
	devenv_out(&env, TESTDEV_IRQ_PORT + 5, 1, 0x80);
	is_int(env.rec.level[5], 1, "any non-zero value is high");
	devenv_out(&env, TESTDEV_IRQ_PORT + 5, 1, 0);
	is_int(env.rec.level[5], 0, "pin 5 lowered");
	devenv_out(&env, TESTDEV_IRQ_PORT + 22, 4, 0x01010101);
	ok(env.rec.level[22] == 1 && env.rec.level[23] == 1 &&
		   env.rec.level[24] == 0,
	   "dword write at pin 22 touches pins 22 and 23 only");
	devenv_out(&env, TESTDEV_IRQ_PORT + 22, 2, 0);

	/* iomem. */
	devenv_mmio_write(&env, base, 4, 0xdeadbeef);
	is_int(devenv_mmio_read(&env, base, 4), 0xdeadbeef, "iomem dword");
	is_int(devenv_mmio_read(&env, base + 1, 2), 0xadbe,
	       "iomem unaligned word");
	devenv_mmio_write(&env, base + 0x1001, 8, 0x0102030405060708ULL);
	is_int(devenv_mmio_read(&env, base + 0x1001, 8), 0x0102030405060708LL,
	       "iomem qword");
	is_int(devenv_mmio_read(&env, base + 0x1000, 1), 0,
	       "untouched byte reads 0");
	devenv_mmio_write(&env, TESTDEV_EXIT_REG - 4, 4, 0x11223344);
	is_int(devenv_mmio_read(&env, TESTDEV_EXIT_REG - 4, 4), 0x11223344,
	       "dword below the exit register is memory");
	is_int(env.rec.exits, 5, "no exit yet");
	devenv_mmio_write(&env, TESTDEV_EXIT_REG, 2, 0x5555);
	is_int(env.rec.exits, 5,
	       "2-byte write to the exit register only stores");
	is_int(devenv_mmio_read(&env, TESTDEV_EXIT_REG, 2), 0x5555,
	       "and reads back");
	devenv_mmio_write(&env, TESTDEV_EXIT_REG - 4, 8, 0x0000000700000000ULL);
	is_int(env.rec.exits, 5, "8-byte write covering it only stores");
	devenv_mmio_write(&env, TESTDEV_EXIT_REG + 1, 4, 3);
	is_int(env.rec.exits, 5, "unaligned dword write does not exit");
	devenv_mmio_write(&env, TESTDEV_EXIT_REG, 4, 0);
	is_int(env.rec.exits, 6, "dword write to the exit register exits");
	is_int(env.rec.status, 1, "status (0 << 1) | 1");
	is_str(env.rec.why, "khyve exit register", "reason");
	devenv_mmio_write(&env, TESTDEV_EXIT_REG, 4, 0x42);
	is_int(env.rec.status, 0x85, "status (0x42 << 1) | 1");

	/* Hostile. */
	{
		unsigned seed = 31337;
		uint64_t v = 0;

		is_int(bus_dispatch(env.ctx.mmio, base + TESTDEV_IOMEM_SIZE - 2,
				    8, false, &v),
		       0, "qword read crossing the end of iomem");
		is_int(v >> 16, 0xffffffffffffULL, "outside bytes read ones");
		is_int(bus_dispatch(env.ctx.mmio, base, 0, true, &v), 0,
		       "size 0");
		is_int(bus_dispatch(env.ctx.mmio, base, 32, true, &v), 0,
		       "size 32");
		for (i = 0; i < 200000; i++) {
			uint64_t a;

			seed = seed * 1103515245u + 12345u;
			v = (uint64_t)seed * 0x9e3779b97f4a7c15ULL;
			if ((seed >> 4) & 1) {
				a = base + ((seed >> 8) % TESTDEV_IOMEM_SIZE);
				(void)bus_dispatch(env.ctx.mmio, a,
						   1u << ((seed >> 5) & 3),
						   (seed >> 7) & 1, &v);
			} else {
				static const uint16_t p[] = {0xe0, 0x2000};

				a = p[(seed >> 6) & 1] + ((seed >> 8) & 31);
				if (a >= 0xe0 && a < 0xf0)
					a = 0xe0 + (a & 3);
				(void)bus_dispatch(env.ctx.pio, a,
						   1u << ((seed >> 5) & 3),
						   (seed >> 7) & 1, &v);
			}
		}
		ok(1, "200000 random accesses: no crash");
		devenv_mmio_write(&env, base + 8, 4, 0xcafef00d);
		is_int(devenv_mmio_read(&env, base + 8, 4), 0xcafef00d,
		       "iomem still works");
	}
	is_int(pctestdev_create(&env.ctx, &td2), -EEXIST, "second one refused");
	pctestdev_destroy(td);
	ok(!bus_claimed(env.ctx.pio, 0xe0) &&
		   !bus_claimed(env.ctx.pio, 0x2000) &&
		   !bus_claimed(env.ctx.mmio, base),
	   "ranges released");
	for (i = 0; i < IOAPIC_PINS; i++)
		if (env.rec.level[i])
			break;
	is_int(i, IOAPIC_PINS, "every pin low after destroy");
	devenv_fini(&env);
}

static void test_lpc_model(void)
{
	struct cfg_node *root = cfg_new(), *lpc;
	const struct devmodel *m =
		devmodel_find_kind("pc-testdev", DEVMODEL_LPC);
	struct devenv env;

	devenv_init(&env, 0);
	lpc = cfg_create(root, "lpc");
	ok(m && m->parse_legacy && m->lpc_init, "pc-testdev is an LPC model");
	if (!m || !lpc)
		goto out;
	is_int(m->lpc_init(&env.ctx, lpc), 0, "not configured: nothing");
	ok(!bus_claimed(env.ctx.pio, DEBUG_EXIT_PORT), "no ports");
	is_int(m->parse_legacy(lpc, "junk"), -EINVAL, "options refused");
	is_int(m->parse_legacy(lpc, NULL), 0, "-l pc-testdev");
	is_str(cfg_get(root, "lpc.pc-testdev"), "true",
	       "sets lpc.pc-testdev=true");
	is_int(m->lpc_init(&env.ctx, lpc), 0, "lpc_init creates it");
	ok(bus_claimed(env.ctx.pio, DEBUG_EXIT_PORT),
	   "debug exit port present");
	devenv_out(&env, DEBUG_EXIT_PORT, 1, 2);
	is_int(env.rec.status, 5, "and works");
	is_int(m->lpc_init(&env.ctx, lpc), -EEXIST, "a second one refused");
	pctestdev_lpc_release();
	ok(!bus_claimed(env.ctx.pio, DEBUG_EXIT_PORT), "released");
	cfg_set(lpc, "pc-testdev", "maybe");
	is_int(m->lpc_init(&env.ctx, lpc), -EINVAL, "bad boolean refused");
	cfg_set(lpc, "pc-testdev", "off");
	is_int(m->lpc_init(&env.ctx, lpc), 0, "false: nothing");
	ok(!bus_claimed(env.ctx.pio, DEBUG_EXIT_PORT), "not created");
out:
	cfg_free(root);
	devenv_fini(&env);
}

int main(void)
{
	plan_no_plan();
	log_init("t_pctestdev");
	test_device();
	test_lpc_model();
	return done_testing();
}
