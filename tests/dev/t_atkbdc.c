/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device test of the minimal i8042 keyboard controller and the POST port
 * through bus_dispatch(), with a recording interrupt sink and exit
 * callback (no KVM).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/devmodel.h"
#include "core/layout.h"
#include "hw/atkbdc.h"
#include "hw/post.h"
#include "lib/log.h"
#include "tests/dev/devenv.h"
#include "tests/tap.h"

#define DATA PORT_KBD_DATA
#define CMD PORT_KBD_CMD

static void test_kbc(void)
{
	struct devenv env;
	struct atkbdc *kbc = NULL, *kbc2 = NULL;

	devenv_init(&env, 0);
	is_int(atkbdc_create(&env.ctx, &kbc), 0, "atkbdc_create");
	if (!kbc)
		return;
	ok(bus_claimed(env.ctx.pio, 0x60) && bus_claimed(env.ctx.pio, 0x64) &&
		   !bus_claimed(env.ctx.pio, 0x61),
	   "ports 0x60 and 0x64 claimed, 0x61 left alone");
	is_int(devenv_in(&env, CMD, 1) & 0x01, 0,
	       "output buffer empty at reset");
	is_int(devenv_in(&env, CMD, 1) & 0x04, 0x04, "system flag set");

	/* Self test. */
	devenv_out(&env, CMD, 1, 0xaa);
	is_int(devenv_in(&env, CMD, 1) & 0x09, 0x09,
	       "OBF set, last write was a command");
	is_int(env.rec.level[ATKBDC_KBD_IRQ], 1, "IRQ 1 with KBDINT set");
	is_int(devenv_in(&env, DATA, 1), 0x55, "self test passes (0x55)");
	is_int(devenv_in(&env, CMD, 1) & 0x01, 0, "OBF clear after reading");
	is_int(env.rec.level[ATKBDC_KBD_IRQ], 0, "IRQ 1 low after reading");
	devenv_out(&env, CMD, 1, 0xab);
	is_int(devenv_in(&env, DATA, 1), 0x00,
	       "keyboard interface test passes");

	/* Command byte. */
	devenv_out(&env, CMD, 1, 0x20);
	is_int(devenv_in(&env, DATA, 1), 0x45, "command byte at reset");
	devenv_out(&env, CMD, 1, 0x60);
	devenv_out(&env, DATA, 1, 0x47);
	is_int(devenv_in(&env, CMD, 1) & 0x08, 0,
	       "data write clears the command flag");
	devenv_out(&env, CMD, 1, 0x20);
	is_int(devenv_in(&env, DATA, 1), 0x47,
	       "command byte written with 0x60");
	devenv_out(&env, CMD, 1, 0xad);
	devenv_out(&env, CMD, 1, 0x20);
	is_int(devenv_in(&env, DATA, 1) & 0x10, 0x10,
	       "0xad disables the keyboard");
	devenv_out(&env, CMD, 1, 0xae);
	devenv_out(&env, CMD, 1, 0x20);
	is_int(devenv_in(&env, DATA, 1) & 0x10, 0, "0xae enables it");
	devenv_out(&env, CMD, 1, 0xa7);
	devenv_out(&env, CMD, 1, 0x20);
	is_int(devenv_in(&env, DATA, 1) & 0x20, 0x20,
	       "0xa7 disables the aux port");
	devenv_out(&env, CMD, 1, 0xa8);
	devenv_out(&env, CMD, 1, 0x20);
	is_int(devenv_in(&env, DATA, 1) & 0x20, 0, "0xa8 enables it");
	devenv_out(&env, CMD, 1, 0x60);
	devenv_out(&env, DATA, 1, 0x40);
	is_int(devenv_in(&env, CMD, 1) & 0x04, 0,
	       "system flag follows the command byte");

	/* Loop-back writes and their interrupt lines. */
	devenv_out(&env, CMD, 1, 0x60);
	devenv_out(&env, DATA, 1, 0x47);
	devenv_out(&env, CMD, 1, 0xd2);
	devenv_out(&env, DATA, 1, 0x1c);
	is_int(devenv_in(&env, CMD, 1) & 0x21, 0x01,
	       "0xd2: keyboard data in the buffer");
	is_int(env.rec.level[ATKBDC_KBD_IRQ], 1, "0xd2 raises IRQ 1");
	is_int(devenv_in(&env, DATA, 1), 0x1c, "0xd2 byte read back");
	devenv_out(&env, CMD, 1, 0xd3);
	devenv_out(&env, DATA, 1, 0x99);
	is_int(devenv_in(&env, CMD, 1) & 0x21, 0x21, "0xd3: aux data (AUXB)");
	is_int(env.rec.level[ATKBDC_AUX_IRQ], 1, "0xd3 raises IRQ 12");
	is_int(env.rec.level[ATKBDC_KBD_IRQ], 0, "not IRQ 1");
	is_int(devenv_in(&env, DATA, 1), 0x99, "0xd3 byte read back");
	is_int(env.rec.level[ATKBDC_AUX_IRQ], 0, "IRQ 12 low after reading");
	devenv_out(&env, CMD, 1, 0x60);
	devenv_out(&env, DATA, 1, 0x44);
	devenv_out(&env, CMD, 1, 0xaa);
	is_int(env.rec.level[ATKBDC_KBD_IRQ], 0, "no IRQ 1 with KBDINT clear");
	(void)devenv_in(&env, DATA, 1);

	/* No devices: keyboard and mouse bytes vanish. */
	devenv_out(&env, DATA, 1, 0xff);
	devenv_out(&env, CMD, 1, 0xd4);
	devenv_out(&env, DATA, 1, 0xf4);
	is_int(devenv_in(&env, CMD, 1) & 0x01, 0,
	       "no reply from absent devices");
	is_int(env.rec.exits, 0, "no exit so far");

	/* Output port. */
	devenv_out(&env, CMD, 1, 0xd0);
	is_int(devenv_in(&env, DATA, 1) & 0x03, 0x03,
	       "output port: reset high, A20 on");
	devenv_out(&env, CMD, 1, 0xdd);
	devenv_out(&env, CMD, 1, 0xd0);
	is_int(devenv_in(&env, DATA, 1) & 0x02, 0, "0xdd: A20 off");
	devenv_out(&env, CMD, 1, 0xd1);
	devenv_out(&env, DATA, 1, 0xdf);
	is_int(env.rec.exits, 0, "0xd1 with bit 0 set: no reset");
	devenv_out(&env, CMD, 1, 0xff);
	is_int(env.rec.exits, 0, "0xff pulses nothing");
	devenv_out(&env, CMD, 1, 0xfe);
	is_int(env.rec.exits, 1, "0xfe resets");
	is_int(env.rec.status, VM_EXIT_REBOOT, "exit status 0 (reboot)");
	is_str(env.rec.why, "reset (keyboard controller)", "reason");
	devenv_out(&env, CMD, 1, 0xd1);
	devenv_out(&env, DATA, 1, 0xde);
	is_int(env.rec.exits, 2, "output port bit 0 low resets too");

	is_int(atkbdc_create(&env.ctx, &kbc2), -EEXIST,
	       "second controller "
	       "refused");
	/* Hostile. */
	{
		unsigned seed = 99, i, n_before = (unsigned)env.rec.exits;
		uint64_t v = 0;

		is_int(bus_dispatch(env.ctx.pio, DATA, 4, false, &v), 0,
		       "dword read of 0x60");
		is_int(v >> 8, 0xffffff, "upper bytes read ones");
		is_int(bus_dispatch(env.ctx.pio, CMD, 0, true, &v), 0,
		       "size 0");
		for (i = 0; i < 100000; i++) {
			seed = seed * 1103515245u + 12345u;
			v = seed >> 7;
			(void)bus_dispatch(
				env.ctx.pio, (seed >> 3) & 1 ? CMD : DATA,
				1u << ((seed >> 5) & 3), (seed >> 9) & 1, &v);
		}
		ok((unsigned)env.rec.exits > n_before,
		   "100000 random accesses: no crash, resets requested");
		(void)devenv_in(&env, DATA, 1);
		devenv_out(&env, CMD, 1, 0xaa);
		is_int(devenv_in(&env, DATA, 1), 0x55,
		       "still answers its self test");
	}
	atkbdc_destroy(kbc);
	ok(!bus_claimed(env.ctx.pio, 0x60) && !bus_claimed(env.ctx.pio, 0x64),
	   "ports released");
	devenv_fini(&env);
}

static void test_post(void)
{
	struct devenv env;
	uint64_t v = 0;

	devenv_init(&env, 0);
	is_int(post_create(&env.ctx), 0, "post_create");
	ok(bus_claimed(env.ctx.pio, 0x80) && !bus_claimed(env.ctx.pio, 0x81),
	   "port 0x80 only");
	devenv_out(&env, PORT_POST, 1, 0x12);
	is_int(devenv_in(&env, PORT_POST, 1), 0xff, "reads 0xff after a write");
	is_int(bus_dispatch(env.ctx.pio, PORT_POST, 4, false, &v), 0, "dword");
	is_int(v, 0xffffffff, "dword read all ones");
	is_int(post_create(&env.ctx), -EEXIST, "second POST port refused");
	devenv_fini(&env);
}

int main(void)
{
	plan_no_plan();
	log_init("t_atkbdc");
	test_kbc();
	test_post();
	return done_testing();
}
