/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device test of the MC146818 RTC/CMOS through bus_dispatch() with a
 * recording interrupt sink (no KVM): time fields in BCD and binary, 12
 * hour mode, guest time setting, UIP, memory cells, the NMI bit of the
 * index port, the extended bank, flags and interrupts (lazily and with a
 * real event loop), and hostile accesses.
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
#include "hw/rtc.h"
#include "lib/log.h"
#include "tests/dev/devenv.h"
#include "tests/tap.h"

static uint8_t cmos(const struct devenv *env, uint8_t reg)
{
	devenv_outb(env, 0x70, reg);
	return devenv_inb(env, 0x71);
}

static void cmos_w(const struct devenv *env, uint8_t reg, uint8_t v)
{
	devenv_outb(env, 0x70, reg);
	devenv_outb(env, 0x71, v);
}

static int bcd(uint8_t b)
{
	return (b >> 4) * 10 + (b & 15);
}

/* Read the clock as seconds since the epoch (24h BCD mode assumed). */
static time_t read_bcd_time(const struct devenv *env)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	while (cmos(env, 0x0a) & 0x80)
		; /* wait for the update cycle to end */
	tm.tm_sec = bcd(cmos(env, 0));
	tm.tm_min = bcd(cmos(env, 2));
	tm.tm_hour = bcd(cmos(env, 4));
	tm.tm_mday = bcd(cmos(env, 7));
	tm.tm_mon = bcd(cmos(env, 8)) - 1;
	tm.tm_year = bcd(cmos(env, 0x32)) * 100 + bcd(cmos(env, 9)) - 1900;
	return timegm(&tm);
}

/* Set 2024-02-29 23:59:58 with the SET bit, in the current format. */
static void set_leap_time(const struct devenv *env, bool binary)
{
	uint8_t b = cmos(env, 0x0b);

	cmos_w(env, 0x0b, b | 0x80);
	cmos_w(env, 0x00, binary ? 58 : 0x58);
	cmos_w(env, 0x02, binary ? 59 : 0x59);
	cmos_w(env, 0x04, binary ? 23 : 0x23);
	cmos_w(env, 0x07, binary ? 29 : 0x29);
	cmos_w(env, 0x08, binary ? 2 : 0x02);
	cmos_w(env, 0x09, binary ? 24 : 0x24);
	cmos_w(env, 0x32, binary ? 20 : 0x20);
	cmos_w(env, 0x0b, b & 0x7f);
}

static time_t leap_time(void)
{
	struct tm tm = {.tm_sec = 58,
			.tm_min = 59,
			.tm_hour = 23,
			.tm_mday = 29,
			.tm_mon = 1,
			.tm_year = 124};

	return timegm(&tm);
}

static void test_time(void)
{
	struct devenv env;
	struct rtc *rtc = NULL;
	time_t host, guest;
	int i, uip = 0, total = 0;

	devenv_init(&env, 0);
	is_int(rtc_create(&env.ctx, false, 256 * MIB, 0, &rtc), 0,
	       "rtc_create");
	if (!rtc)
		return;
	ok(bus_claimed(env.ctx.pio, 0x70) && bus_claimed(env.ctx.pio, 0x73),
	   "ports 0x70-0x73 claimed");
	is_int(cmos(&env, 0x0b), 0x02, "register B: 24 hour, BCD");
	is_int(cmos(&env, 0x0a) & 0x7f, 0x26,
	       "register A: normal divider, 1 kHz");
	is_int(cmos(&env, 0x0d), 0x80, "register D: VRT");
	is_int(cmos(&env, 0x0c) & 0x80, 0x00, "register C: IRQF clear");

	host = time(NULL);
	guest = read_bcd_time(&env);
	ok(guest >= host - 1 && guest <= host + 2,
	   "UTC BCD time matches the host (%lld vs %lld)", (long long)guest,
	   (long long)host);
	ok(rtc_time_get(rtc) >= host - 1 && rtc_time_get(rtc) <= host + 2,
	   "rtc_time_get agrees");

	set_leap_time(&env, false);
	is_int(cmos(&env, 0x00), 0x58, "set: seconds (BCD)");
	is_int(cmos(&env, 0x02), 0x59, "set: minutes");
	is_int(cmos(&env, 0x04), 0x23, "set: hours");
	is_int(cmos(&env, 0x06), 0x05, "day of week computed (Thursday)");
	is_int(cmos(&env, 0x07), 0x29, "set: day");
	is_int(cmos(&env, 0x08), 0x02, "set: month");
	is_int(cmos(&env, 0x09), 0x24, "set: year");
	is_int(cmos(&env, 0x32), 0x20, "set: century");
	ok(rtc_time_get(rtc) == leap_time(), "SET write moved the clock");

	/* Binary mode. */
	cmos_w(&env, 0x0b, 0x06);
	set_leap_time(&env, true);
	is_int(cmos(&env, 0x00), 58, "binary seconds");
	is_int(cmos(&env, 0x04), 23, "binary hours");
	is_int(cmos(&env, 0x09), 24, "binary year");
	is_int(cmos(&env, 0x32), 20, "binary century");

	/* 12 hour mode, BCD. */
	cmos_w(&env, 0x0b, 0x00);
	set_leap_time(&env, false); /* 0x23 is not a valid 12h hour: ignored */
	ok(rtc_time_get(rtc) - leap_time() < 3, "invalid 12h hour ignored");
	cmos_w(&env, 0x0b, 0x80);
	cmos_w(&env, 0x04, 0x91); /* 11 PM */
	cmos_w(&env, 0x0b, 0x00);
	is_int(cmos(&env, 0x04), 0x91, "12h: 11 PM reads 0x91");
	cmos_w(&env, 0x0b, 0x02);
	is_int(cmos(&env, 0x04), 0x23, "same time in 24h mode: 0x23");
	cmos_w(&env, 0x0b, 0x80);
	cmos_w(&env, 0x04, 0x12); /* 12 AM */
	cmos_w(&env, 0x0b, 0x00);
	is_int(cmos(&env, 0x04), 0x12, "12h: midnight reads 12 (AM)");
	cmos_w(&env, 0x0b, 0x02);
	is_int(cmos(&env, 0x04), 0x00, "midnight is 00 in 24h mode");
	cmos_w(&env, 0x0b, 0x04);
	is_int(cmos(&env, 0x04), 12, "12h binary midnight: 12");

	/* Writing a field without SET takes effect at once. */
	cmos_w(&env, 0x0b, 0x02);
	set_leap_time(&env, false);
	cmos_w(&env, 0x09, 0x30);
	is_int(cmos(&env, 0x09), 0x30, "year written without SET");
	ok(rtc_time_get(rtc) > leap_time() + 5 * 365 * 86400,
	   "the clock moved to 2030");

	/* Invalid fields and out-of-range years are ignored. */
	set_leap_time(&env, false);
	cmos_w(&env, 0x0b, 0x82);
	cmos_w(&env, 0x00, 0xff);
	cmos_w(&env, 0x0b, 0x02);
	ok(rtc_time_get(rtc) - leap_time() < 3, "bad BCD seconds ignored");
	cmos_w(&env, 0x0b, 0x82);
	cmos_w(&env, 0x00, 0x00);
	cmos_w(&env, 0x08, 0x13);
	cmos_w(&env, 0x0b, 0x02);
	ok(rtc_time_get(rtc) - leap_time() < 3, "month 13 ignored");
	cmos_w(&env, 0x0b, 0x82);
	cmos_w(&env, 0x08, 0x02);
	cmos_w(&env, 0x32, 0x99);
	cmos_w(&env, 0x09, 0x99);
	cmos_w(&env, 0x0b, 0x02);
	ok(rtc_time_get(rtc) - leap_time() < 3, "year 9999 refused");

	/* While SET is held the registers are frozen. */
	set_leap_time(&env, false);
	cmos_w(&env, 0x0b, 0x82);
	devenv_sleep_ms(1100);
	is_int(cmos(&env, 0x00), 0x58, "frozen while SET");
	cmos_w(&env, 0x0b, 0x02);
	devenv_sleep_ms(1100);
	is_int(cmos(&env, 0x00), 0x59, "runs again after SET is cleared");

	/* UIP appears for a short window every second.  Sample until it was
	 * seen twice (a preempted sampler can miss a 244 us window), 6 s
	 * at most. */
	{
		time_t stop = time(NULL) + 6;
		int seen = 0, prev = 0;

		for (i = 0; seen < 2 && time(NULL) < stop; i++) {
			int now = (cmos(&env, 0x0a) & 0x80) != 0;

			total++;
			uip += now;
			if (now && !prev)
				seen++;
			prev = now;
		}
	}
	ok(uip > 0 && uip < total / 20, "UIP set briefly (%d of %d reads)", uip,
	   total);

	rtc_time_set(rtc, leap_time());
	is_int(cmos(&env, 0x00), 0x58, "rtc_time_set");
	rtc_destroy(rtc);
	ok(!bus_claimed(env.ctx.pio, 0x70), "ports released");
	devenv_fini(&env);
}

static void test_localtime(void)
{
	struct devenv env;
	struct rtc *rtc = NULL;
	struct tm tm;
	time_t now = time(NULL);

	devenv_init(&env, 0);
	setenv("TZ", "EST5", 1);
	tzset();
	localtime_r(&now, &tm);
	is_int(rtc_create(&env.ctx, true, 256 * MIB, 0, &rtc), 0,
	       "rtc_create with local time");
	if (rtc) {
		time_t g = read_bcd_time(&env);
		time_t want = now - 5 * 3600;

		ok(g >= want - 1 && g <= want + 2,
		   "local time (TZ=EST5) is UTC-5");
		rtc_destroy(rtc);
	}
	unsetenv("TZ");
	tzset();
	devenv_fini(&env);
}

static void check_mem(uint64_t low, uint64_t high, unsigned ext, unsigned m16,
		      unsigned hi, const char *what)
{
	struct devenv env;
	struct rtc *rtc = NULL;

	devenv_init(&env, 0);
	if (rtc_create(&env.ctx, false, low, high, &rtc)) {
		ok(0, "%s: rtc_create", what);
		devenv_fini(&env);
		return;
	}
	is_int(cmos(&env, 0x15) | cmos(&env, 0x16) << 8, 640, "%s: base memory",
	       what);
	is_int(cmos(&env, 0x17) | cmos(&env, 0x18) << 8, ext,
	       "%s: extended (0x17)", what);
	is_int(cmos(&env, 0x30) | cmos(&env, 0x31) << 8, ext,
	       "%s: extended (0x30)", what);
	is_int(cmos(&env, 0x34) | cmos(&env, 0x35) << 8, m16, "%s: above 16M",
	       what);
	is_int(cmos(&env, 0x5b) | cmos(&env, 0x5c) << 8 |
		       cmos(&env, 0x5d) << 16,
	       hi, "%s: above 4G", what);
	rtc_destroy(rtc);
	devenv_fini(&env);
}

static void test_nvram(void)
{
	struct devenv env;
	struct rtc *rtc = NULL;
	uint8_t v = 0;
	uint64_t x;
	int i;

	check_mem(256 * MIB, 0, 0xffff, 0x0f00, 0, "256M");
	check_mem(3 * GIB, 1 * GIB, 0xffff, 0xbf00, 0x4000, "4G");
	check_mem(3 * GIB, 5 * GIB, 0xffff, 0xbf00, 0x14000, "8G");
	check_mem(8 * MIB, 0, 7 * 1024, 0, 0, "8M");

	devenv_init(&env, 0);
	if (rtc_create(&env.ctx, false, 256 * MIB, 0, &rtc))
		return;
	devenv_outb(&env, 0x70, 0x80 | 0x40);
	devenv_outb(&env, 0x71, 0x5a);
	devenv_outb(&env, 0x70, 0x40);
	is_int(devenv_inb(&env, 0x71), 0x5a,
	       "NMI-mask bit of the index is ignored");
	is_int(devenv_inb(&env, 0x70), 0x40,
	       "index port reads back without bit 7");
	devenv_outb(&env, 0x70, 0x8a);
	is_int(devenv_inb(&env, 0x71) & 0x7f, 0x26, "0x8a selects register A");
	devenv_outb(&env, 0x72, 0x90); /* bit 7 ignored: byte 0x80 + 0x10 */
	devenv_outb(&env, 0x73, 0xa7);
	is_int(rtc_nvram_read(rtc, 0x90, &v), 0, "rtc_nvram_read");
	is_int(v, 0xa7, "extended bank byte 0x90");
	is_int(rtc_nvram_write(rtc, 0xff, 0x11), 0, "rtc_nvram_write");
	devenv_outb(&env, 0x72, 0x7f);
	is_int(devenv_inb(&env, 0x73), 0x11, "extended bank byte 0xff");
	is_int(rtc_nvram_read(rtc, 256, &v), -EINVAL, "offset 256 refused");
	is_int(rtc_nvram_write(rtc, 999, 1), -EINVAL, "offset 999 refused");
	cmos_w(&env, 0x0d, 0x00);
	is_int(cmos(&env, 0x0d), 0x80, "register D is read-only");
	cmos_w(&env, 0x0c, 0xff);
	is_int(cmos(&env, 0x0c) & 0x0f, 0, "register C is read-only");

	/* A 16-bit write to 0x70 is index + data. */
	x = 0x3345;
	(void)bus_dispatch(env.ctx.pio, 0x70, 2, true, &x);
	is_int(cmos(&env, 0x45), 0x33, "word write: index then data");
	x = 0;
	(void)bus_dispatch(env.ctx.pio, 0x71, 4, false, &x);
	is_int(x & 0xff, 0x33, "dword read at 0x71 reads the data port");
	is_int(x >> 8, 0xffffff, "bytes past the range read ones");

	/* Hostile: random accesses (keep the clock sane afterwards). */
	{
		unsigned seed = 4242;

		for (i = 0; i < 200000; i++) {
			uint64_t val;
			unsigned port, size;

			seed = seed * 1103515245u + 12345u;
			port = 0x70 + ((seed >> 9) & 3);
			size = 1u + ((seed >> 13) % 9);
			val = (uint64_t)seed * 2654435761u;
			(void)bus_dispatch(env.ctx.pio, port, size,
					   (seed >> 20) & 1, &val);
		}
		ok(1, "200000 random accesses, sizes 1..9: no crash");
	}
	rtc_destroy(rtc);
	devenv_fini(&env);
}

static void test_flags_lazy(void)
{
	struct devenv env;
	struct rtc *rtc = NULL;
	uint8_t c;

	devenv_init(&env, 0);
	if (rtc_create(&env.ctx, false, 256 * MIB, 0, &rtc))
		return;
	(void)cmos(&env, 0x0c);
	cmos_w(&env, 0x0a, 0x23); /* 8192 Hz */
	devenv_sleep_ms(5);
	c = cmos(&env, 0x0c);
	is_int(c & 0xc0, 0x40, "PF set without PIE; IRQF clear");
	is_int(env.rec.level[RTC_IRQ], 0, "no interrupt without PIE");
	cmos_w(&env, 0x0b, 0x02 | 0x40);
	devenv_sleep_ms(5);
	(void)cmos(&env, 0x0a);
	is_int(env.rec.level[RTC_IRQ], 1, "PIE: IRQ 8 raised");
	c = cmos(&env, 0x0c);
	is_int(c & 0xc0, 0xc0, "register C: IRQF|PF");
	is_int(env.rec.level[RTC_IRQ], 0, "reading C lowers IRQ 8");
	cmos_w(&env, 0x0a, 0x20); /* rate 0: no periodic */
	(void)cmos(&env, 0x0c);
	devenv_sleep_ms(5);
	is_int(cmos(&env, 0x0c) & 0x40, 0, "RS=0: no PF");

	/* Update-ended flag after a second boundary. */
	cmos_w(&env, 0x0b, 0x02);
	(void)cmos(&env, 0x0c);
	devenv_sleep_ms(1050);
	c = cmos(&env, 0x0c);
	is_int(c & 0x90, 0x10, "UF set after a second, IRQF clear (no UIE)");
	/* Enabling UIE with UF pending raises IRQF at once. */
	devenv_sleep_ms(1050);
	cmos_w(&env, 0x0b, 0x12);
	is_int(env.rec.level[RTC_IRQ], 1, "UIE with UF pending raises IRQ 8");
	cmos_w(&env, 0x0b, 0x92);
	is_int(cmos(&env, 0x0b) & 0x10, 0, "SET clears UIE");
	cmos_w(&env, 0x0b, 0x02);
	(void)cmos(&env, 0x0c);
	is_int(env.rec.level[RTC_IRQ], 0, "IRQ 8 low after C");

	/* Alarm with "don't care" everywhere fires every second. */
	cmos_w(&env, 0x01, 0xc0);
	cmos_w(&env, 0x03, 0xff);
	cmos_w(&env, 0x05, 0xc5);
	cmos_w(&env, 0x0b, 0x22);
	devenv_sleep_ms(1050);
	(void)cmos(&env, 0x0a);
	c = cmos(&env, 0x0c);
	is_int(c & 0xa0, 0xa0, "alarm (don't-care fields): AF and IRQF");
	cmos_w(&env, 0x01, 0x77); /* second 77 never matches */
	devenv_sleep_ms(1050);
	c = cmos(&env, 0x0c);
	is_int(c & 0xa0, 0, "non-matching alarm: no AF");
	rtc_destroy(rtc);
	devenv_fini(&env);
}

static void test_timers(void)
{
	struct devenv env;
	struct rtc *rtc = NULL;
	int i, before;

	devenv_init(&env, DEVENV_LOOP);
	is_int(rtc_create(&env.ctx, false, 256 * MIB, 0, &rtc), 0,
	       "rtc_create with an event loop");
	if (!rtc)
		goto out;
	/* Update-ended interrupt: no register access needed. */
	cmos_w(&env, 0x0b, 0x12);
	for (i = 0; i < 150 && devenv_rises(&env, RTC_IRQ) == 0; i++)
		devenv_sleep_ms(10);
	ok(devenv_rises(&env, RTC_IRQ) >= 1, "UIE: IRQ 8 from the timer");
	is_int(cmos(&env, 0x0c) & 0x90, 0x90, "register C: IRQF|UF");
	/* Periodic interrupt at 64 Hz: count edges while acking. */
	cmos_w(&env, 0x0b, 0x02);
	(void)cmos(&env, 0x0c);
	cmos_w(&env, 0x0a, 0x2a); /* RS=10: 64 Hz */
	cmos_w(&env, 0x0b, 0x42);
	before = devenv_rises(&env, RTC_IRQ);
	for (i = 0; i < 50; i++) {
		int n = devenv_rises(&env, RTC_IRQ);

		devenv_sleep_ms(5);
		if (devenv_rises(&env, RTC_IRQ) != n)
			(void)cmos(&env, 0x0c); /* ack */
	}
	(void)cmos(&env, 0x0c);
	ok(devenv_rises(&env, RTC_IRQ) - before >= 5,
	   "PIE at 64 Hz: %d interrupts in ~250 ms",
	   devenv_rises(&env, RTC_IRQ) - before);
	cmos_w(&env, 0x0b, 0x02);
	(void)cmos(&env, 0x0c);
	before = devenv_rises(&env, RTC_IRQ);
	devenv_sleep_ms(100);
	is_int(devenv_rises(&env, RTC_IRQ), before,
	       "no interrupts once disabled");
out:
	devenv_loop_stop(&env);
	rtc_destroy(rtc);
	devenv_fini(&env);
}

static void test_conflict(void)
{
	struct devenv env;
	struct rtc *a = NULL, *b = NULL;

	devenv_init(&env, 0);
	is_int(rtc_create(&env.ctx, false, 0, 0, &a), 0, "first RTC");
	is_int(rtc_create(&env.ctx, false, 0, 0, &b), -EEXIST,
	       "second RTC on the same ports refused");
	ok(b == NULL, "no object on failure");
	rtc_destroy(a);
	devenv_fini(&env);
}

int main(void)
{
	plan_no_plan();
	log_init("t_rtc");
	test_time();
	test_localtime();
	test_nvram();
	test_flags_lazy();
	test_timers();
	test_conflict();
	return done_testing();
}
