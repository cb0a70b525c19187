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
#include "tests/tap.h"

struct rec {
	int level[32];
	int rises[32];
	int exits;
	int status;
	char why[128];
};

static int rec_set_irq(void *opaque, unsigned gsi, int level)
{
	struct rec *r = opaque;

	if (gsi >= 32)
		return -EINVAL;
	if (level && !r->level[gsi])
		r->rises[gsi]++;
	r->level[gsi] = level;
	return 0;
}

static void rec_exit(void *opaque, int status, const char *why)
{
	struct rec *r = opaque;

	r->exits++;
	r->status = status;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
}

static void ctx_init(struct devctx *ctx, struct rec *r)
{
	memset(ctx, 0, sizeof(*ctx));
	memset(r, 0, sizeof(*r));
	if (bus_new(&ctx->pio, "pio") || bus_new(&ctx->mmio, "mmio"))
		abort();
	ctx->irq.set_irq = rec_set_irq;
	ctx->irq.opaque = r;
	ctx->exit = rec_exit;
	ctx->opaque = r;
}

static void ctx_fini(struct devctx *ctx)
{
	bus_free(ctx->pio);
	bus_free(ctx->mmio);
}

static struct devctx *g_ctx;

static uint64_t in(uint16_t port, unsigned size)
{
	uint64_t v = 0;

	(void)bus_dispatch(g_ctx->pio, port, size, false, &v);
	return v;
}

static void out(uint16_t port, unsigned size, uint64_t v)
{
	(void)bus_dispatch(g_ctx->pio, port, size, true, &v);
}

#define DATA PORT_KBD_DATA
#define CMD PORT_KBD_CMD

static void test_kbc(void)
{
	struct devctx ctx;
	struct rec r;
	struct atkbdc *kbc = NULL, *kbc2 = NULL;

	ctx_init(&ctx, &r);
	g_ctx = &ctx;
	is_int(atkbdc_create(&ctx, &kbc), 0, "atkbdc_create");
	if (!kbc)
		return;
	ok(bus_claimed(ctx.pio, 0x60) && bus_claimed(ctx.pio, 0x64) &&
		   !bus_claimed(ctx.pio, 0x61),
	   "ports 0x60 and 0x64 claimed, 0x61 left alone");
	is_int(in(CMD, 1) & 0x01, 0, "output buffer empty at reset");
	is_int(in(CMD, 1) & 0x04, 0x04, "system flag set");

	/* Self test. */
	out(CMD, 1, 0xaa);
	is_int(in(CMD, 1) & 0x09, 0x09, "OBF set, last write was a command");
	is_int(r.level[ATKBDC_KBD_IRQ], 1, "IRQ 1 with KBDINT set");
	is_int(in(DATA, 1), 0x55, "self test passes (0x55)");
	is_int(in(CMD, 1) & 0x01, 0, "OBF clear after reading");
	is_int(r.level[ATKBDC_KBD_IRQ], 0, "IRQ 1 low after reading");
	out(CMD, 1, 0xab);
	is_int(in(DATA, 1), 0x00, "keyboard interface test passes");

	/* Command byte. */
	out(CMD, 1, 0x20);
	is_int(in(DATA, 1), 0x45, "command byte at reset");
	out(CMD, 1, 0x60);
	out(DATA, 1, 0x47);
	is_int(in(CMD, 1) & 0x08, 0, "data write clears the command flag");
	out(CMD, 1, 0x20);
	is_int(in(DATA, 1), 0x47, "command byte written with 0x60");
	out(CMD, 1, 0xad);
	out(CMD, 1, 0x20);
	is_int(in(DATA, 1) & 0x10, 0x10, "0xad disables the keyboard");
	out(CMD, 1, 0xae);
	out(CMD, 1, 0x20);
	is_int(in(DATA, 1) & 0x10, 0, "0xae enables it");
	out(CMD, 1, 0xa7);
	out(CMD, 1, 0x20);
	is_int(in(DATA, 1) & 0x20, 0x20, "0xa7 disables the aux port");
	out(CMD, 1, 0xa8);
	out(CMD, 1, 0x20);
	is_int(in(DATA, 1) & 0x20, 0, "0xa8 enables it");
	out(CMD, 1, 0x60);
	out(DATA, 1, 0x40);
	is_int(in(CMD, 1) & 0x04, 0, "system flag follows the command byte");

	/* Loop-back writes and their interrupt lines. */
	out(CMD, 1, 0x60);
	out(DATA, 1, 0x47);
	out(CMD, 1, 0xd2);
	out(DATA, 1, 0x1c);
	is_int(in(CMD, 1) & 0x21, 0x01, "0xd2: keyboard data in the buffer");
	is_int(r.level[ATKBDC_KBD_IRQ], 1, "0xd2 raises IRQ 1");
	is_int(in(DATA, 1), 0x1c, "0xd2 byte read back");
	out(CMD, 1, 0xd3);
	out(DATA, 1, 0x99);
	is_int(in(CMD, 1) & 0x21, 0x21, "0xd3: aux data (AUXB)");
	is_int(r.level[ATKBDC_AUX_IRQ], 1, "0xd3 raises IRQ 12");
	is_int(r.level[ATKBDC_KBD_IRQ], 0, "not IRQ 1");
	is_int(in(DATA, 1), 0x99, "0xd3 byte read back");
	is_int(r.level[ATKBDC_AUX_IRQ], 0, "IRQ 12 low after reading");
	out(CMD, 1, 0x60);
	out(DATA, 1, 0x44);
	out(CMD, 1, 0xaa);
	is_int(r.level[ATKBDC_KBD_IRQ], 0, "no IRQ 1 with KBDINT clear");
	(void)in(DATA, 1);

	/* No devices: keyboard and mouse bytes vanish. */
	out(DATA, 1, 0xff);
	out(CMD, 1, 0xd4);
	out(DATA, 1, 0xf4);
	is_int(in(CMD, 1) & 0x01, 0, "no reply from absent devices");
	is_int(r.exits, 0, "no exit so far");

	/* Output port. */
	out(CMD, 1, 0xd0);
	is_int(in(DATA, 1) & 0x03, 0x03, "output port: reset high, A20 on");
	out(CMD, 1, 0xdd);
	out(CMD, 1, 0xd0);
	is_int(in(DATA, 1) & 0x02, 0, "0xdd: A20 off");
	out(CMD, 1, 0xd1);
	out(DATA, 1, 0xdf);
	is_int(r.exits, 0, "0xd1 with bit 0 set: no reset");
	out(CMD, 1, 0xff);
	is_int(r.exits, 0, "0xff pulses nothing");
	out(CMD, 1, 0xfe);
	is_int(r.exits, 1, "0xfe resets");
	is_int(r.status, VM_EXIT_REBOOT, "exit status 0 (reboot)");
	is_str(r.why, "reset (keyboard controller)", "reason");
	out(CMD, 1, 0xd1);
	out(DATA, 1, 0xde);
	is_int(r.exits, 2, "output port bit 0 low resets too");

	is_int(atkbdc_create(&ctx, &kbc2), -EEXIST,
	       "second controller "
	       "refused");
	/* Hostile. */
	{
		unsigned seed = 99, i, n_before = (unsigned)r.exits;
		uint64_t v = 0;

		is_int(bus_dispatch(ctx.pio, DATA, 4, false, &v), 0,
		       "dword read of 0x60");
		is_int(v >> 8, 0xffffff, "upper bytes read ones");
		is_int(bus_dispatch(ctx.pio, CMD, 0, true, &v), 0, "size 0");
		for (i = 0; i < 100000; i++) {
			seed = seed * 1103515245u + 12345u;
			v = seed >> 7;
			(void)bus_dispatch(
				ctx.pio, (seed >> 3) & 1 ? CMD : DATA,
				1u << ((seed >> 5) & 3), (seed >> 9) & 1, &v);
		}
		ok((unsigned)r.exits > n_before,
		   "100000 random accesses: no crash, resets requested");
		(void)in(DATA, 1);
		out(CMD, 1, 0xaa);
		is_int(in(DATA, 1), 0x55, "still answers its self test");
	}
	atkbdc_destroy(kbc);
	ok(!bus_claimed(ctx.pio, 0x60) && !bus_claimed(ctx.pio, 0x64),
	   "ports released");
	ctx_fini(&ctx);
}

static void test_post(void)
{
	struct devctx ctx;
	struct rec r;
	uint64_t v = 0;

	ctx_init(&ctx, &r);
	g_ctx = &ctx;
	is_int(post_create(&ctx), 0, "post_create");
	ok(bus_claimed(ctx.pio, 0x80) && !bus_claimed(ctx.pio, 0x81),
	   "port 0x80 only");
	out(PORT_POST, 1, 0x12);
	is_int(in(PORT_POST, 1), 0xff, "reads 0xff after a write");
	is_int(bus_dispatch(ctx.pio, PORT_POST, 4, false, &v), 0, "dword");
	is_int(v, 0xffffffff, "dword read all ones");
	is_int(post_create(&ctx), -EEXIST, "second POST port refused");
	ctx_fini(&ctx);
}

int main(void)
{
	plan_no_plan();
	log_init("t_atkbdc");
	test_kbc();
	test_post();
	return done_testing();
}
