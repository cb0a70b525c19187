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
#include "tests/dev/devenv.h"
#include "tests/tap.h"

#define STS PORT_PM1A_EVT
#define EN (PORT_PM1A_EVT + 2)
#define CNT PORT_PM1A_CNT
#define TMR PORT_PM_TMR

static void test_control(void)
{
	struct devenv env;
	struct pm *pm = NULL;

	devenv_init(&env, 0);
	is_int(pm_create(&env.ctx, &pm), 0, "pm_create");
	if (!pm)
		return;
	ok(bus_claimed(env.ctx.pio, STS) && bus_claimed(env.ctx.pio, CNT + 1) &&
		   bus_claimed(env.ctx.pio, TMR + 3) &&
		   bus_claimed(env.ctx.pio, PORT_SMI_CMD) &&
		   bus_claimed(env.ctx.pio, PORT_RESET_CF9),
	   "PM1a, timer, SMI_CMD and 0xcf9 claimed");
	ok(!bus_claimed(env.ctx.pio, PORT_PCI_CONF_ADDR) &&
		   !bus_claimed(env.ctx.pio, 0xcfa),
	   "0xcf8 and 0xcfa left to PCI");
	is_int(devenv_in(&env, CNT, 2), 0, "PM1_CNT: ACPI off at reset");

	/* SMI_CMD switches ACPI mode. */
	devenv_out(&env, PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);
	is_int(devenv_in(&env, CNT, 2) & PM1_SCI_EN, PM1_SCI_EN,
	       "ACPI enable sets SCI_EN");
	devenv_out(&env, CNT, 2, 0);
	is_int(devenv_in(&env, CNT, 2) & PM1_SCI_EN, PM1_SCI_EN,
	       "SCI_EN cannot be cleared through PM1_CNT");
	devenv_out(&env, PORT_SMI_CMD, 1, ACPI_DISABLE_VAL);
	is_int(devenv_in(&env, CNT, 2) & PM1_SCI_EN, 0,
	       "ACPI disable clears SCI_EN");
	devenv_out(&env, PORT_SMI_CMD, 1, 0x42);
	is_int(devenv_in(&env, CNT, 2) & PM1_SCI_EN, 0,
	       "other SMI commands ignored");
	devenv_out(&env, PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);

	/* Sleep states. */
	devenv_out(&env, CNT, 2,
		   PM1_SCI_EN | (0 << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
	is_int(env.rec.exits, 0, "S0 + SLP_EN: no exit");
	devenv_out(&env, CNT, 2, (1 << PM1_SLP_TYP_SHIFT) | PM1_SLP_EN);
	is_int(env.rec.exits, 0, "S1 + SLP_EN: no exit");
	is_int(devenv_in(&env, CNT, 2), PM1_SCI_EN | (1 << PM1_SLP_TYP_SHIFT),
	       "SLP_TYP kept, SLP_EN reads 0");
	devenv_out(&env, CNT, 2, ACPI_S5_SLP_TYP << PM1_SLP_TYP_SHIFT);
	is_int(env.rec.exits, 0, "S5 without SLP_EN: no exit");
	devenv_out(&env, CNT + 1, 1, (ACPI_S5_SLP_TYP << 2) | 0x20);
	is_int(env.rec.exits, 1,
	       "S5 + SLP_EN (byte write to the high half): exit");
	is_int(env.rec.status, VM_EXIT_POWEROFF, "exit status 1 (power-off)");
	is_str(env.rec.why, "ACPI power-off (S5)", "reason");

	/* 0xcf9. */
	env.rec.exits = 0;
	devenv_out(&env, PORT_RESET_CF9, 1, 0x02);
	is_int(env.rec.exits, 0, "0xcf9 = 0x02: no reset");
	is_int(devenv_in(&env, PORT_RESET_CF9, 1), 0x02, "0xcf9 reads back");
	devenv_out(&env, PORT_RESET_CF9, 1, ACPI_RESET_VAL);
	is_int(env.rec.exits, 1, "0xcf9 = 0x06: reset");
	is_int(env.rec.status, VM_EXIT_REBOOT, "exit status 0 (reboot)");
	is_str(env.rec.why, "reset (0xcf9)", "reason");
	is_int(devenv_in(&env, PORT_RESET_CF9, 1) & 0x04, 0,
	       "RST_CPU bit is not kept");

	pm_destroy(pm);
	ok(!bus_claimed(env.ctx.pio, STS) &&
		   !bus_claimed(env.ctx.pio, PORT_SMI_CMD),
	   "ports released");
	devenv_fini(&env);
}

static void test_sci(void)
{
	struct devenv env;
	struct pm *pm = NULL;

	devenv_init(&env, 0);
	if (pm_create(&env.ctx, &pm))
		return;
	/* Power button without ACPI: lost, like bhyve. */
	ok(!pm_power_button(pm), "button without ACPI: not delivered");
	is_int(devenv_in(&env, STS, 2) & PM1_PWRBTN_STS, 0,
	       "PWRBTN_STS not set");
	is_int(env.rec.level[ACPI_SCI_IRQ], 0, "no SCI");

	/* ACPI on, button event not enabled. */
	devenv_out(&env, PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);
	ok(!pm_power_button(pm), "button with PWRBTN_EN clear: "
				 "not delivered");
	is_int(devenv_in(&env, STS, 2) & PM1_PWRBTN_STS, PM1_PWRBTN_STS,
	       "but PWRBTN_STS is latched");
	is_int(env.rec.level[ACPI_SCI_IRQ], 0, "and no SCI");
	devenv_out(&env, EN, 2, PM1_PWRBTN_EN);
	is_int(devenv_in(&env, EN, 2), PM1_PWRBTN_EN,
	       "enable register reads back");
	is_int(env.rec.level[ACPI_SCI_IRQ], 1,
	       "enabling the event raises the SCI");
	devenv_out(&env, STS, 2, PM1_PWRBTN_STS);
	is_int(devenv_in(&env, STS, 2) & PM1_PWRBTN_STS, 0,
	       "status is write-1-to-clear");
	is_int(env.rec.level[ACPI_SCI_IRQ], 0, "SCI drops with the status");

	/* The normal press. */
	ok(pm_power_button(pm), "button with ACPI and PWRBTN_EN: delivered");
	is_int(env.rec.level[ACPI_SCI_IRQ], 1, "SCI asserted (level)");
	devenv_out(&env, STS, 2, 0);
	is_int(env.rec.level[ACPI_SCI_IRQ], 1, "writing 0 clears nothing");
	devenv_out(&env, PORT_SMI_CMD, 1, ACPI_DISABLE_VAL);
	is_int(env.rec.level[ACPI_SCI_IRQ], 0, "ACPI off masks the SCI");
	devenv_out(&env, PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);
	is_int(env.rec.level[ACPI_SCI_IRQ], 1, "ACPI on again: SCI back");
	devenv_out(&env, EN, 2, 0);
	is_int(env.rec.level[ACPI_SCI_IRQ], 0, "event disabled: SCI low");
	devenv_out(&env, STS, 4,
		   0xfffeu << 16); /* status: write 0s; enable: all but TMR */
	is_int(env.rec.level[ACPI_SCI_IRQ], 1,
	       "dword write reaches the enable register");
	is_int(devenv_in(&env, STS, 4) >> 16, 0xfffe,
	       "dword read: enable in the high half");
	is_int(devenv_in(&env, STS, 4) & PM1_PWRBTN_STS, PM1_PWRBTN_STS,
	       "dword read: status in the low half");
	devenv_out(&env, EN + 1, 1, 0);
	is_int(devenv_in(&env, EN, 2), 0x00fe,
	       "byte write to the enable high byte");
	is_int(env.rec.level[ACPI_SCI_IRQ], 0, "SCI follows status & enable");
	devenv_out(&env, STS, 4, PM1_PWRBTN_STS | 0x00feu << 16);
	is_int(devenv_in(&env, STS, 2) & PM1_PWRBTN_STS, 0,
	       "dword write clears status");
	devenv_out(&env, EN, 2, 0);
	devenv_out(&env, STS, 2, 0xffff);
	pm_destroy(pm);
	devenv_fini(&env);
}

static void test_timer(void)
{
	struct devenv env;
	struct pm *pm = NULL;
	uint64_t a, b;
	struct timespec t0, t1;
	int64_t ns, diff, want;
	unsigned i;

	devenv_init(&env, 0);
	if (pm_create(&env.ctx, &pm))
		return;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	a = devenv_in(&env, TMR, 4);
	devenv_sleep_ms(20);
	b = devenv_in(&env, TMR, 4);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(a <= 0xffffff && b <= 0xffffff, "24-bit counter");
	ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + t1.tv_nsec - t0.tv_nsec;
	diff = (int64_t)((b - a) & 0xffffff);
	want = ns * 3579545LL / 1000000000LL;
	ok(diff > 0 && diff <= want + 4 && diff >= want * 9 / 10,
	   "timer runs at 3.579545 MHz (%lld ticks in %lld ns)",
	   (long long)diff, (long long)ns);
	a = devenv_in(&env, TMR, 1);
	ok(a <= 0xff, "byte read of the timer");
	is_int(devenv_in(&env, TMR + 3, 1), 0,
	       "top byte of the 24-bit timer reads 0");
	devenv_out(&env, TMR, 4, 0);
	ok(((devenv_in(&env, TMR, 4) - b) & 0xffffff) < 3579545,
	   "timer writes ignored");

	/* TMR_STS: bit 23 toggles every ~2.34 s. */
	devenv_out(&env, STS, 2, PM1_TMR_STS);
	a = devenv_in(&env, TMR, 4) >> 23;
	for (i = 0; i < 300 && (devenv_in(&env, TMR, 4) >> 23) == a; i++)
		devenv_sleep_ms(10);
	is_int(devenv_in(&env, STS, 2) & PM1_TMR_STS, PM1_TMR_STS,
	       "TMR_STS after bit 23 toggles");
	devenv_out(&env, STS, 2, PM1_TMR_STS);
	is_int(devenv_in(&env, STS, 2) & PM1_TMR_STS, 0, "TMR_STS clears");
	devenv_out(&env, PORT_SMI_CMD, 1, ACPI_ENABLE_VAL);
	devenv_out(&env, EN, 2, PM1_TMR_EN);
	devenv_out(&env, STS, 2, PM1_TMR_STS);
	is_int(env.rec.level[ACPI_SCI_IRQ], 0, "no SCI right after clearing");
	pm_destroy(pm);
	devenv_fini(&env);
}

static void test_hostile(void)
{
	struct devenv env;
	struct pm *pm = NULL, *pm2 = NULL;
	unsigned seed = 777, i;
	uint64_t v;

	devenv_init(&env, 0);
	if (pm_create(&env.ctx, &pm))
		return;
	is_int(pm_create(&env.ctx, &pm2), -EEXIST, "a second PM block refused");
	v = 0;
	is_int(bus_dispatch(env.ctx.pio, CNT + 1, 8, false, &v), 0,
	       "8-byte read across the end of PM1_CNT");
	is_int(v >> 8, 0xffffffffffffffULL, "outside bytes read ones");
	is_int(bus_dispatch(env.ctx.pio, TMR + 2, 4, true, &v), 0,
	       "unaligned timer write");
	is_int(bus_dispatch(env.ctx.pio, STS, 0, false, &v), 0, "size 0");
	is_int(bus_dispatch(env.ctx.pio, STS, 16, true, &v), 0, "size 16");
	for (i = 0; i < 200000; i++) {
		static const uint16_t ports[] = {STS, CNT, TMR, PORT_SMI_CMD,
						 PORT_RESET_CF9};
		unsigned p, size;

		seed = seed * 1103515245u + 12345u;
		p = ports[(seed >> 8) % 5] + ((seed >> 12) & 3);
		size = 1u << ((seed >> 16) & 3);
		v = (uint64_t)seed * 0x9e3779b97f4a7c15ULL;
		(void)bus_dispatch(env.ctx.pio, p, size, (seed >> 20) & 1, &v);
	}
	ok(1, "200000 random accesses: no crash (%d exit requests)",
	   env.rec.exits);
	ok(env.rec.exits > 0, "random writes did reach the exit paths");
	pm_destroy(pm);
	devenv_fini(&env);
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
