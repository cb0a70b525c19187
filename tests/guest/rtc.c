/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * rtc: read the CMOS RTC, wait for two ticks of its seconds register
 * (about one second, timed by the RTC itself), read again; check that the
 * fields are in range and that the time advanced by 1-2 seconds.  Then
 * switch status register B through the four formats (BCD or binary,
 * 24 or 12 hour), check that each reads the same time, and restore it.
 * BSP only.
 */
#include "guest.h"

const char guest_name[] = "rtc";

#define TICK_TIMEOUT 20000000000ULL /* TSC cycles: a safety net only */

static void show(const char *what, const struct rtc_time *t)
{
	printf("rtc: %s %04u-%02u-%02u %02u:%02u:%02u (reg B 0x%02x: %s, %s)\n",
	       what, t->year, t->month, t->day, t->hour, t->min, t->sec,
	       t->reg_b, t->reg_b & 0x04 ? "binary" : "BCD",
	       t->reg_b & 0x02 ? "24 h" : "12 h");
}

static const struct {
	uint8_t bits;
	const char *name;
} formats[] = {
	{0x02, "BCD, 24 h"},
	{0x06, "binary, 24 h"},
	{0x00, "BCD, 12 h"},
	{0x04, "binary, 12 h"},
};

static void check_formats(uint64_t ref)
{
	uint8_t orig = cmos_read(0x0b), hour;
	struct rtc_time t;
	unsigned int i;
	uint64_t e;
	int err;

	for (i = 0; i < ARRAY_SIZE(formats); i++) {
		outb(0x70, 0x0b);
		outb(0x71, (uint8_t)((orig & ~0x06) | formats[i].bits));
		err = rtc_read(&t);
		hour = cmos_read(0x04);
		if (err || !rtc_time_valid(&t))
			break;
		e = rtc_to_epoch(&t);
		printf("rtc: %-12s %02u:%02u:%02u (hour register 0x%02x)\n",
		       formats[i].name, t.hour, t.min, t.sec, hour);
		if (e < ref || e > ref + 3)
			break;
		/* 12 h: the PM flag must match the 24 h hour */
		if (!(formats[i].bits & 0x02) &&
		    !!(hour & 0x80) != (t.hour >= 12))
			break;
	}
	outb(0x70, 0x0b);
	outb(0x71, orig);
	if (i < ARRAY_SIZE(formats))
		guest_fail("register B format %s reads wrong (%d)",
			   formats[i].name, err);
}

void guest_main(void)
{
	struct rtc_time t1, t2;
	uint64_t e1, e2;
	int err;

	printf("rtc: waiting for a seconds tick\n");
	err = rtc_wait_tick(TICK_TIMEOUT);
	if (err == -GUEST_ENODEV)
		guest_fail("no RTC (port 0x71 reads all-ones)");
	if (err)
		guest_fail("RTC seconds do not advance (%d)", err);
	err = rtc_read(&t1);
	if (err)
		guest_fail("first read failed (%d)", err);
	show("first ", &t1);
	if (!rtc_time_valid(&t1))
		guest_fail("first read out of range");
	err = rtc_wait_tick(TICK_TIMEOUT);
	if (err)
		guest_fail("RTC seconds stopped (%d)", err);
	err = rtc_read(&t2);
	if (err)
		guest_fail("second read failed (%d)", err);
	show("second", &t2);
	if (!rtc_time_valid(&t2))
		guest_fail("second read out of range");
	e1 = rtc_to_epoch(&t1);
	e2 = rtc_to_epoch(&t2);
	printf("rtc: advanced by %ld s\n", (int64_t)(e2 - e1));
	if (e2 < e1 + 1 || e2 > e1 + 2)
		guest_fail("time advanced by %ld s, expected 1-2",
			   (int64_t)(e2 - e1));
	check_formats(e2);
	guest_pass();
}
