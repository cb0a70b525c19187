/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * MC146818 CMOS RTC reads through ports 0x70/0x71: a consistent snapshot
 * (UIP clear, two equal reads), BCD or binary and 12 or 24 hour decoding
 * per status register B, range checks and conversion to epoch seconds.
 * BSP only (the index/data port pair is not locked).
 */
#include "guest.h"

#define RTC_INDEX 0x70
#define RTC_DATA 0x71
#define REG_SEC 0x00
#define REG_MIN 0x02
#define REG_HOUR 0x04
#define REG_DAY 0x07
#define REG_MONTH 0x08
#define REG_YEAR 0x09
#define REG_A 0x0a
#define REG_B 0x0b
#define REG_CENTURY 0x32
#define A_UIP 0x80
#define B_24H 0x02
#define B_BINARY 0x04

struct raw {
	uint8_t sec, min, hour, day, month, year, century;
};

uint8_t cmos_read(uint8_t reg)
{
	outb(RTC_INDEX, reg & 0x7f);
	return inb(RTC_DATA);
}

static int wait_uip_clear(void)
{
	unsigned int i;

	for (i = 0; i < 1000000; i++)
		if (!(cmos_read(REG_A) & A_UIP))
			return 0;
	return -GUEST_ETIMEDOUT;
}

static void read_raw(struct raw *r)
{
	r->sec = cmos_read(REG_SEC);
	r->min = cmos_read(REG_MIN);
	r->hour = cmos_read(REG_HOUR);
	r->day = cmos_read(REG_DAY);
	r->month = cmos_read(REG_MONTH);
	r->year = cmos_read(REG_YEAR);
	r->century = cmos_read(REG_CENTURY);
}

static unsigned int bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0x0f);
}

int rtc_read(struct rtc_time *t)
{
	struct raw a, b;
	unsigned int tries, hour, century;
	bool pm;
	uint8_t rb;

	for (tries = 0;; tries++) {
		if (tries == 100 || wait_uip_clear())
			return -GUEST_ETIMEDOUT;
		read_raw(&a);
		if (wait_uip_clear())
			return -GUEST_ETIMEDOUT;
		read_raw(&b);
		if (!memcmp(&a, &b, sizeof(a)))
			break;
	}
	rb = cmos_read(REG_B);
	if (rb == 0xff && a.sec == 0xff)
		return -GUEST_ENODEV;
	t->reg_b = rb;
	pm = (a.hour & 0x80) && !(rb & B_24H);
	a.hour &= 0x7f;
	if (rb & B_BINARY) {
		t->sec = a.sec;
		t->min = a.min;
		hour = a.hour;
		t->day = a.day;
		t->month = a.month;
		t->year = a.year;
		century = a.century;
	} else {
		t->sec = bcd(a.sec);
		t->min = bcd(a.min);
		hour = bcd(a.hour);
		t->day = bcd(a.day);
		t->month = bcd(a.month);
		t->year = bcd(a.year);
		century = bcd(a.century);
	}
	if (!(rb & B_24H)) {
		/* 12 h clock: 12 AM is 0, 12 PM is 12 */
		if (hour == 12)
			hour = 0;
		if (pm)
			hour += 12;
	}
	t->hour = hour;
	/* No or nonsense century register: assume 20xx. */
	if (century < 19 || century > 21)
		century = 20;
	t->year += century * 100;
	return 0;
}

static bool leap(unsigned int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned int month_days(unsigned int y, unsigned int m)
{
	static const uint8_t days[12] = {31, 28, 31, 30, 31, 30,
					 31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : days[m - 1];
}

bool rtc_time_valid(const struct rtc_time *t)
{
	return t->year >= 1970 && t->year <= 2199 && t->month >= 1 &&
	       t->month <= 12 && t->day >= 1 &&
	       t->day <= month_days(t->year, t->month) && t->hour < 24 &&
	       t->min < 60 && t->sec < 60;
}

uint64_t rtc_to_epoch(const struct rtc_time *t)
{
	uint64_t days = 0;
	unsigned int y, m;

	for (y = 1970; y < t->year; y++)
		days += leap(y) ? 366 : 365;
	for (m = 1; m < t->month; m++)
		days += month_days(t->year, m);
	days += t->day - 1;
	return ((days * 24 + t->hour) * 60 + t->min) * 60 + t->sec;
}

int rtc_wait_tick(uint64_t max_cycles)
{
	uint8_t s0 = cmos_read(REG_SEC);
	uint64_t t0 = rdtsc();

	if (s0 == 0xff && cmos_read(REG_A) == 0xff)
		return -GUEST_ENODEV;
	while (cmos_read(REG_SEC) == s0)
		if (rdtsc() - t0 > max_cycles)
			return -GUEST_ETIMEDOUT;
	return 0;
}
