/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device test of the ACPI PM block (PM1 event/control, PM timer, SMI_CMD,
 * 0xcf9 reset) through bus_dispatch(), with a recording interrupt sink
 * and a recording exit callback (no KVM).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "core/devmodel.h"
#include "core/layout.h"
#include "hw/pm.h"
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

#define STS PORT_PM1A_EVT
#define EN (PORT_PM1A_EVT + 2)
#define CNT PORT_PM1A_CNT
#define TMR PORT_PM_TMR

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void test_control(void)
{
	struct devctx ctx;
	struct rec r;
	struct pm *pm = NULL;

	ctx_init(&ctx, &r);
	g_ctx = &ctx;
	is_int(pm_create(&ctx, &pm), 0, "pm_create");
	if (!pm)
		return;
	ok(bus_claimed(ctx.pio, STS) && bus_claimed(ctx.pio, CNT + 1) &&
		   bus_claimed(ctx.pio, TMR + 3) &&
		   bus_claimed(ctx.pio, PORT_SMI_CMD) &&
		   bus_claimed(ctx.pio, PORT_RESET_CF9),
	   "PM1a, timer, SMI_CMD and 0xcf9 claimed");
	ok(!bus_claimed(ctx.pio, PORT_PCI_CONF_ADDR) &&
		   !bus_claimed(ctx.pio, 0xcfa),
	   "0xcf8 and 0xcfa left to PCI");
	is_int(in(CNT, 2), 0, "PM1_CNT: ACPI off at reset");

	/* SMI_CMD switches ACPI mode. */
	out(PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);
	is_int(in(CNT, 2) & PM1_SCI_EN, PM1_SCI_EN, "ACPI enable sets SCI_EN");
	out(CNT, 2, 0);
	is_int(in(CNT, 2) & PM1_SCI_EN, PM1_SCI_EN,
	       "SCI_EN cannot be cleared through PM1_CNT");
	out(PORT_SMI_CMD, 1, ACPI_DISABLE_VAL);
	is_int(in(CNT, 2) & PM1_SCI_EN, 0, "ACPI disable clears SCI_EN");
	out(PORT_SMI_CMD, 1, 0x42);
	is_int(in(CNT, 2) & PM1_SCI_EN, 0, "other SMI commands ignored");
	out(PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);

	/* Sleep states. */
	out(CNT, 2, PM1_SCI_EN | (0 << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
	is_int(r.exits, 0, "S0 + SLP_EN: no exit");
	out(CNT, 2, (1 << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
	is_int(r.exits, 0, "S1 + SLP_EN: no exit");
	is_int(in(CNT, 2), PM1_SCI_EN | (1 << PM1_SLP_TYP_SHIFT),
	       "SLP_TYP kept, SLP_EN reads 0");
	out(CNT, 2, ACPI_S5_SLP_TYP << PM1_SLP_TYP_SHIFT);
	is_int(r.exits, 0, "S5 without SLP_EN: no exit");
	out(CNT + 1, 1, (ACPI_S5_SLP_TYP << 2) | 0x20);
	is_int(r.exits, 1, "S5 + SLP_EN (byte write to the high half): exit");
	is_int(r.status, VM_EXIT_POWEROFF, "exit status 1 (power-off)");
	is_str(r.why, "ACPI power-off (S5)", "reason");

	/* 0xcf9. */
	r.exits = 0;
	out(PORT_RESET_CF9, 1, 0x02);
	is_int(r.exits, 0, "0xcf9 = 0x02: no reset");
	is_int(in(PORT_RESET_CF9, 1), 0x02, "0xcf9 reads back");
	out(PORT_RESET_CF9, 1, ACPI_RESET_VAL);
	is_int(r.exits, 1, "0xcf9 = 0x06: reset");
	is_int(r.status, VM_EXIT_REBOOT, "exit status 0 (reboot)");
	is_str(r.why, "reset (0xcf9)", "reason");
	is_int(in(PORT_RESET_CF9, 1) & 0x04, 0, "RST_CPU bit is not kept");

	pm_destroy(pm);
	ok(!bus_claimed(ctx.pio, STS) && !bus_claimed(ctx.pio, PORT_SMI_CMD),
	   "ports released");
	ctx_fini(&ctx);
}

static void test_sci(void)
{
	struct devctx ctx;
	struct rec r;
	struct pm *pm = NULL;

	ctx_init(&ctx, &r);
	g_ctx = &ctx;
	if (pm_create(&ctx, &pm))
		return;
	/* Power button without ACPI: lost, like bhyve. */
	ok(!pm_power_button(pm), "button without ACPI: not delivered");
	is_int(in(STS, 2) & PM1_PWRBTN_STS, 0, "PWRBTN_STS not set");
	is_int(r.level[ACPI_SCI_IRQ], 0, "no SCI");

	/* ACPI on, button event not enabled. */
	out(PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);
	ok(!pm_power_button(pm), "button with PWRBTN_EN clear: "
				 "not delivered");
	is_int(in(STS, 2) & PM1_PWRBTN_STS, PM1_PWRBTN_STS,
	       "but PWRBTN_STS is latched");
	is_int(r.level[ACPI_SCI_IRQ], 0, "and no SCI");
	out(EN, 2, PM1_PWRBTN_EN);
	is_int(in(EN, 2), PM1_PWRBTN_EN, "enable register reads back");
	is_int(r.level[ACPI_SCI_IRQ], 1, "enabling the event raises the SCI");
	out(STS, 2, PM1_PWRBTN_STS);
	is_int(in(STS, 2) & PM1_PWRBTN_STS, 0, "status is write-1-to-clear");
	is_int(r.level[ACPI_SCI_IRQ], 0, "SCI drops with the status");

	/* The normal press. */
	ok(pm_power_button(pm), "button with ACPI and PWRBTN_EN: delivered");
	is_int(r.level[ACPI_SCI_IRQ], 1, "SCI asserted (level)");
	out(STS, 2, 0);
	is_int(r.level[ACPI_SCI_IRQ], 1, "writing 0 clears nothing");
	out(PORT_SMI_CMD, 1, ACPI_DISABLE_VAL);
	is_int(r.level[ACPI_SCI_IRQ], 0, "ACPI off masks the SCI");
	out(PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);
	is_int(r.level[ACPI_SCI_IRQ], 1, "ACPI on again: SCI back");
	out(EN, 2, 0);
	is_int(r.level[ACPI_SCI_IRQ], 0, "event disabled: SCI low");
	out(STS, 4, 0xfffeu << 16); /* status: write 0s; enable: all but TMR */
	is_int(r.level[ACPI_SCI_IRQ], 1,
	       "dword write reaches the enable register");
	is_int(in(STS, 4) >> 16, 0xfffe, "dword read: enable in the high half");
	is_int(in(STS, 4) & PM1_PWRBTN_STS, PM1_PWRBTN_STS,
	       "dword read: status in the low half");
	out(EN + 1, 1, 0);
	is_int(in(EN, 2), 0x00fe, "byte write to the enable high byte");
	is_int(r.level[ACPI_SCI_IRQ], 0, "SCI follows status & enable");
	out(STS, 4, PM1_PWRBTN_STS | 0x00feu << 16);
	is_int(in(STS, 2) & PM1_PWRBTN_STS, 0, "dword write clears status");
	out(EN, 2, 0);
	out(STS, 2, 0xffff);
	pm_destroy(pm);
	ctx_fini(&ctx);
}

static void test_timer(void)
{
	struct devctx ctx;
	struct rec r;
	struct pm *pm = NULL;
	uint64_t a, b;
	struct timespec t0, t1;
	int64_t ns, diff, want;
	unsigned i;

	ctx_init(&ctx, &r);
	g_ctx = &ctx;
	if (pm_create(&ctx, &pm))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	a = in(TMR, 4);
	sleep_ms(20);
	b = in(TMR, 4);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(a <= 0xffffff && b <= 0xffffff, "24-bit counter");
	ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + t1.tv_nsec - t0.tv_nsec;
	diff = (int64_t)((b - a) & 0xffffff);
	want = ns * 3579545LL / 1000000000LL;
	ok(diff > 0 && diff <= want + 4 && diff >= want * 9 / 10,
	   "timer runs at 3.579545 MHz (%lld ticks in %lld ns)",
	   (long long)diff, (long long)ns);
	a = in(TMR, 1);
	ok(a <= 0xff, "byte read of the timer");
	is_int(in(TMR + 3, 1), 0, "top byte of the 24-bit timer reads 0");
	out(TMR, 4, 0);
	ok(((in(TMR, 4) - b) & 0xffffff) < 3579545, "timer writes ignored");

	/* TMR_STS: bit 23 toggles every ~2.34 s. */
	out(STS, 2, PM1_TMR_STS);
	a = in(TMR, 4) >> 23;
	for (i = 0; i < 300 && (in(TMR, 4) >> 23) == a; i++)
		sleep_ms(10);
	is_int(in(STS, 2) & PM1_TMR_STS, PM1_TMR_STS,
	       "TMR_STS after bit 23 toggles");
	out(STS, 2, PM1_TMR_STS);
	is_int(in(STS, 2) & PM1_TMR_STS, 0, "TMR_STS clears");
	out(PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);
	out(EN, 2, PM1_TMR_EN);
	out(STS, 2, PM1_TMR_STS);
	is_int(r.level[ACPI_SCI_IRQ], 0, "no SCI right after clearing");
	pm_destroy(pm);
	ctx_fini(&ctx);
}

static void test_hostile(void)
{
	struct devctx ctx;
	struct rec r;
	struct pm *pm = NULL, *pm2 = NULL;
	unsigned seed = 777, i;
	uint64_t v;

	ctx_init(&ctx, &r);
	g_ctx = &ctx;
	if (pm_create(&ctx, &pm))
		return;
	is_int(pm_create(&ctx, &pm2), -EEXIST, "a second PM block refused");
	v = 0;
	is_int(bus_dispatch(ctx.pio, CNT + 1, 8, false, &v), 0,
	       "8-byte read across the end of PM1_CNT");
	is_int(v >> 8, 0xffffffffffffffULL, "outside bytes read ones");
	is_int(bus_dispatch(ctx.pio, TMR + 2, 4, true, &v), 0,
	       "unaligned timer write");
	is_int(bus_dispatch(ctx.pio, STS, 0, false, &v), 0, "size 0");
	is_int(bus_dispatch(ctx.pio, STS, 16, true, &v), 0, "size 16");
	for (i = 0; i < 200000; i++) {
		static const uint16_t ports[] = {STS, CNT, TMR, PORT_SMI_CMD,
						 PORT_RESET_CF9};
		unsigned p, size;

		seed = seed * 1103515245u + 12345u;
		p = ports[(seed >> 8) % 5] + ((seed >> 12) & 3);
		size = 1u << ((seed >> 16) & 3);
		v = (uint64_t)seed * 0x9e3779b97f4a7c15ULL;
		(void)bus_dispatch(ctx.pio, p, size, (seed >> 20) & 1, &v);
	}
	ok(1, "200000 random accesses: no crash (%d exit requests)", r.exits);
	ok(r.exits > 0, "random writes did reach the exit paths");
	pm_destroy(pm);
	ctx_fini(&ctx);
}

int main(void)
{
	plan_no_plan();
	log_init("t_pm");
	test_control();
	test_sci();
	test_timer();
	test_hostile();
	return done_testing();
}
