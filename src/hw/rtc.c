/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * MC146818 RTC + CMOS (see rtc.h).  This file owns the guest's wall clock,
 * the 256 CMOS bytes and the RTC interrupt (IRQ 8).
 *
 * The clock.  At creation we read the host's CLOCK_REALTIME once (shifted
 * by the local UTC offset unless rtc.use_localtime=false) and from then on
 * advance it with CLOCK_MONOTONIC, as bhyve's in-kernel vrtc does, so host
 * clock steps do not move the guest's clock.  "Display time" below means
 * seconds since the epoch read in the RTC's own zone, which is what the
 * registers show; gmtime_r()/timegm() convert it without any time zone.
 * A guest sets the time by writing the time registers, normally with the
 * SET bit of register B held: while SET is 1 the registers are frozen,
 * and when SET is cleared the written fields become the time, with the
 * next second starting at that moment.  A time register written while
 * SET is 0 takes effect at once.  Invalid fields (bad BCD, month 13) are
 * ignored with a rate-limited warning.
 *
 * Register A: UIP reads 1 during the last 244 us of every second (the
 * update cycle the guest must avoid); DV is stored but the clock always
 * runs; RS selects the periodic rate.  Register B: SET, PIE, AIE, UIE,
 * SQWE (ignored), DM (binary/BCD), 24/12 hour mode, DSE (ignored).
 * Register C: IRQF/PF/AF/UF, cleared by reading.  Register D: VRT.
 *
 * Flags are computed lazily: on every access (and on each timer tick) we
 * look at which periodic and second boundaries the clock crossed since the
 * last look.  When PIE, or UIE/AIE, is enabled and an event loop exists, a
 * timerfd aligned on those boundaries makes the interrupt arrive on time.
 * IRQ 8 is an ISA (edge) line: we drive its level = IRQF.
 *
 * CMOS memory cells as bhyve and PC firmware expect: 0x15/0x16 base memory
 * (640 KB), 0x17/0x18 and 0x30/0x31 extended memory in KB (max 0xffff),
 * 0x34/0x35 memory between 16 MiB and 4 GiB in 64 KiB units, 0x5b-0x5d
 * memory above 4 GiB in 64 KiB units; century at 0x32.
 *
 * Threads and locks: rtc->mtx covers all state; taken by vCPU threads
 * (port accesses), the event-loop thread (timers) and ctl requests.
 */
#include "hw/rtc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bus/bus.h"
#include "core/devmodel.h"
#include "core/irq.h"
#include "core/layout.h"
#include "event/event.h"
#include "lib/log.h"

#define NSEC 1000000000LL
#define UIP_NS 244000LL

enum {
	R_SEC = 0x00,
	R_SEC_ALARM = 0x01,
	R_MIN = 0x02,
	R_MIN_ALARM = 0x03,
	R_HOUR = 0x04,
	R_HOUR_ALARM = 0x05,
	R_WDAY = 0x06,
	R_MDAY = 0x07,
	R_MON = 0x08,
	R_YEAR = 0x09,
	R_A = 0x0a,
	R_B = 0x0b,
	R_C = 0x0c,
	R_D = 0x0d,
	R_BASEMEM_LO = 0x15,
	R_EXTMEM_LO = 0x17,
	R_EXTMEM2_LO = 0x30,
	R_MEM16M_LO = 0x34,
	R_MEM4G_LO = 0x5b,
};

#define A_UIP 0x80
#define A_RS 0x0f
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_DM 0x04 /* 1 = binary */
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10
#define C_FLAGS 0x70 /* same bit positions as B's PIE/AIE/UIE */
#define D_VRT 0x80
#define ALARM_ANY 0xc0
/* Times the clock accepts, in seconds from the epoch (about 1716..2223),
 * so that nanosecond arithmetic never overflows. */
#define T_LIMIT 8000000000LL

struct rtc {
	pthread_mutex_t mtx;
	struct bus *pio;
	struct irq_sink irq;
	struct event_loop *ev;
	uint8_t idx;  /* bank 0 index (NMI-mask bit dropped) */
	uint8_t xidx; /* extended bank index */
	uint8_t ram[RTC_NVRAM_SIZE];
	int64_t base_ns; /* display time at mono0 + guest adjustments */
	int64_t mono0;
	int64_t last_ns; /* display time of the last flag look */
	int irq_level;
	int tfd[2]; /* timerfds: periodic, update; -1 when none */
	struct event *tev[2];
	bool ports_a, ports_b;
};

enum { T_PERIODIC, T_UPDATE };

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t now_ns(const struct rtc *rtc)
{
	return rtc->base_ns + (mono_ns() - rtc->mono0);
}

/* Periodic interrupt period for register A's RS field, 0 = off. */
static int64_t period_ns(uint8_t a)
{
	unsigned rs = a & A_RS;

	if (rs == 0)
		return 0;
	if (rs < 3)
		rs += 7; /* 1 and 2 repeat rates 8 and 9 */
	return ((int64_t)1 << (rs - 1)) * NSEC / 32768;
}

static uint8_t enc(const struct rtc *rtc, int v)
{
	if (rtc->ram[R_B] & B_DM)
		return (uint8_t)v;
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

static bool dec(const struct rtc *rtc, uint8_t b, int *v)
{
	if (rtc->ram[R_B] & B_DM) {
		*v = b;
		return true;
	}
	if ((b & 0x0f) > 9 || (b >> 4) > 9)
		return false;
	*v = (b >> 4) * 10 + (b & 0x0f);
	return true;
}

/* Render display time 't' (seconds) into the time registers. */
static void render(struct rtc *rtc, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	int h, year;

	if (!gmtime_r(&tt, &tm))
		return;
	year = tm.tm_year + 1900;
	rtc->ram[R_SEC] = enc(rtc, tm.tm_sec);
	rtc->ram[R_MIN] = enc(rtc, tm.tm_min);
	if (rtc->ram[R_B] & B_24H) {
		rtc->ram[R_HOUR] = enc(rtc, tm.tm_hour);
	} else {
		h = tm.tm_hour % 12 ? tm.tm_hour % 12 : 12;
		rtc->ram[R_HOUR] = enc(rtc, h) | (tm.tm_hour >= 12 ? 0x80 : 0);
	}
	rtc->ram[R_WDAY] = enc(rtc, tm.tm_wday + 1);
	rtc->ram[R_MDAY] = enc(rtc, tm.tm_mday);
	rtc->ram[R_MON] = enc(rtc, tm.tm_mon + 1);
	rtc->ram[R_YEAR] = enc(rtc, year % 100);
	rtc->ram[RTC_CENTURY] = enc(rtc, (year / 100) % 100);
}

static void render_now(struct rtc *rtc)
{
	render(rtc, floordiv(now_ns(rtc), NSEC));
}

/* Decode the time registers; false when a field is invalid. */
static bool parse_regs(const struct rtc *rtc, int64_t *out)
{
	int sec, min, hour, mday, mon, year, cent;
	uint8_t hb = rtc->ram[R_HOUR];
	struct tm tm;
	bool pm = false;

	if (!(rtc->ram[R_B] & B_24H)) {
		pm = hb & 0x80;
		hb &= 0x7f;
	}
	if (!dec(rtc, rtc->ram[R_SEC], &sec) ||
	    !dec(rtc, rtc->ram[R_MIN], &min) || !dec(rtc, hb, &hour) ||
	    !dec(rtc, rtc->ram[R_MDAY], &mday) ||
	    !dec(rtc, rtc->ram[R_MON], &mon) ||
	    !dec(rtc, rtc->ram[R_YEAR], &year) ||
	    !dec(rtc, rtc->ram[RTC_CENTURY], &cent))
		return false;
	if (!(rtc->ram[R_B] & B_24H)) {
		if (hour < 1 || hour > 12)
			return false;
		hour = hour % 12 + (pm ? 12 : 0);
	}
	if (sec > 59 || min > 59 || hour > 23 || mday < 1 || mday > 31 ||
	    mon < 1 || mon > 12 || year > 99 || cent > 99)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_sec = sec;
	tm.tm_min = min;
	tm.tm_hour = hour;
	tm.tm_mday = mday;
	tm.tm_mon = mon - 1;
	tm.tm_year = cent * 100 + year - 1900;
	*out = (int64_t)timegm(&tm);
	return *out > -T_LIMIT && *out < T_LIMIT;
}

static void irq_update(struct rtc *rtc)
{
	int level = (rtc->ram[R_C] & C_IRQF) != 0;

	if (level != rtc->irq_level) {
		rtc->irq_level = level;
		(void)irq_set(&rtc->irq, RTC_IRQ, level);
	}
}

static bool alarm_matches(struct rtc *rtc)
{
	static const uint8_t pairs[3][2] = {{R_SEC_ALARM, R_SEC},
					    {R_MIN_ALARM, R_MIN},
					    {R_HOUR_ALARM, R_HOUR}};
	unsigned i;

	for (i = 0; i < 3; i++) {
		uint8_t a = rtc->ram[pairs[i][0]];

		if ((a & ALARM_ANY) != ALARM_ANY && a != rtc->ram[pairs[i][1]])
			return false;
	}
	return true;
}

/* Set the flags for the boundaries crossed since the last look. */
static void catch_up(struct rtc *rtc)
{
	int64_t now = now_ns(rtc), p = period_ns(rtc->ram[R_A]);
	uint8_t c = rtc->ram[R_C];

	if (p && floordiv(now, p) != floordiv(rtc->last_ns, p))
		c |= C_PF;
	if (!(rtc->ram[R_B] & B_SET) &&
	    floordiv(now, NSEC) != floordiv(rtc->last_ns, NSEC)) {
		c |= C_UF;
		render(rtc, floordiv(now, NSEC));
		if (alarm_matches(rtc))
			c |= C_AF;
	}
	if (c & rtc->ram[R_B] & C_FLAGS)
		c |= C_IRQF;
	rtc->ram[R_C] = c;
	rtc->last_ns = now;
	irq_update(rtc);
}

/* Arm timer 'which' on boundaries of 'period' display-time ns, or stop it
 * when period is 0. */
static void timer_arm(struct rtc *rtc, int which, int64_t period)
{
	struct itimerspec its = {0};
	int64_t next, mono;

	if (rtc->tfd[which] < 0)
		return;
	if (period > 0) {
		next = (floordiv(now_ns(rtc), period) + 1) * period;
		mono = next - rtc->base_ns + rtc->mono0;
		its.it_value.tv_sec = (time_t)(mono / NSEC);
		its.it_value.tv_nsec = (long)(mono % NSEC);
		its.it_interval.tv_sec = (time_t)(period / NSEC);
		its.it_interval.tv_nsec = (long)(period % NSEC);
	}
	(void)timerfd_settime(rtc->tfd[which], TFD_TIMER_ABSTIME, &its, NULL);
}

static void timers_update(struct rtc *rtc)
{
	uint8_t b = rtc->ram[R_B];

	timer_arm(rtc, T_PERIODIC, (b & B_PIE) ? period_ns(rtc->ram[R_A]) : 0);
	timer_arm(rtc, T_UPDATE,
		  ((b & (B_UIE | B_AIE)) && !(b & B_SET)) ? NSEC : 0);
}

static void timer_cb(void *arg, uint32_t events)
{
	struct rtc *rtc = arg;
	uint64_t n;
	int i;

	(void)events;
	for (i = 0; i < 2; i++)
		while (read(rtc->tfd[i], &n, sizeof(n)) > 0)
			;
	pthread_mutex_lock(&rtc->mtx);
	catch_up(rtc);
	pthread_mutex_unlock(&rtc->mtx);
}

/* Make display time 't' (ns) the clock's current value. */
static void set_now(struct rtc *rtc, int64_t t)
{
	rtc->base_ns += t - now_ns(rtc);
	rtc->last_ns = t;
	timers_update(rtc);
}

static void apply_regs(struct rtc *rtc)
{
	int64_t t;

	if (!parse_regs(rtc, &t)) {
		log_ratelimited(5000,
				"rtc: guest wrote an invalid time "
				"(%02x-%02x-%02x %02x:%02x:%02x); "
				"ignored",
				rtc->ram[R_YEAR], rtc->ram[R_MON],
				rtc->ram[R_MDAY], rtc->ram[R_HOUR],
				rtc->ram[R_MIN], rtc->ram[R_SEC]);
		return;
	}
	set_now(rtc, t * NSEC);
}

static bool is_time_reg(unsigned r)
{
	return r == R_SEC || r == R_MIN || r == R_HOUR || r == R_WDAY ||
	       r == R_MDAY || r == R_MON || r == R_YEAR || r == RTC_CENTURY;
}

static uint8_t reg_read(struct rtc *rtc, unsigned r)
{
	uint8_t v;
	int64_t frac;

	if (is_time_reg(r) && !(rtc->ram[R_B] & B_SET))
		render_now(rtc);
	switch (r) {
	case R_A:
		v = rtc->ram[R_A] & (uint8_t)~A_UIP;
		frac = now_ns(rtc);
		frac -= floordiv(frac, NSEC) * NSEC;
		if (!(rtc->ram[R_B] & B_SET) && frac >= NSEC - UIP_NS)
			v |= A_UIP;
		return v;
	case R_C:
		v = rtc->ram[R_C];
		rtc->ram[R_C] = 0;
		irq_update(rtc);
		return v;
	case R_D:
		return D_VRT;
	default:
		return rtc->ram[r];
	}
}

static void reg_b_write(struct rtc *rtc, uint8_t val)
{
	uint8_t old = rtc->ram[R_B];

	if (val & B_SET)
		val &= (uint8_t)~B_UIE; /* SET clears UIE */
	rtc->ram[R_B] = val;
	if ((val & B_SET) && !(old & B_SET))
		render_now(rtc); /* freeze the registers */
	else if (!(val & B_SET) && (old & B_SET))
		apply_regs(rtc);
	if (rtc->ram[R_C] & rtc->ram[R_B] & C_FLAGS)
		rtc->ram[R_C] |= C_IRQF;
	irq_update(rtc);
	timers_update(rtc);
}

static void reg_write(struct rtc *rtc, unsigned r, uint8_t val)
{
	if (is_time_reg(r)) {
		if (rtc->ram[R_B] & B_SET) {
			rtc->ram[r] = val;
			return;
		}
		render_now(rtc);
		rtc->ram[r] = val;
		apply_regs(rtc);
		return;
	}
	switch (r) {
	case R_A:
		rtc->ram[R_A] = val & (uint8_t)~A_UIP;
		timers_update(rtc);
		break;
	case R_B:
		reg_b_write(rtc, val);
		break;
	case R_C:
	case R_D:
		break; /* read-only */
	default:
		rtc->ram[r] = val;
		break;
	}
}

/* Ports 0x70/0x71 (bank 0) or 0x72/0x73 (extended bank), byte-wide. */
static void port_access(struct rtc *rtc, bool ext, unsigned port, bool write,
			uint8_t *v)
{
	uint8_t *idx = ext ? &rtc->xidx : &rtc->idx;
	unsigned r;

	if (port == 0) {
		if (write)
			*idx = *v & 0x7f; /* bit 7 masks NMI: ignored */
		else
			*v = *idx;
		return;
	}
	r = ext ? 0x80u + *idx : *idx;
	catch_up(rtc);
	if (write)
		reg_write(rtc, r, *v);
	else
		*v = reg_read(rtc, r);
}

static int io(struct rtc *rtc, bool ext, uint64_t off, unsigned size,
	      bool write, uint64_t *val)
{
	unsigned i;

	if (size == 0 || size > 8)
		return 0;
	pthread_mutex_lock(&rtc->mtx);
	for (i = 0; i < size && off + i < 2; i++) {
		unsigned sh = 8 * i;
		uint8_t b = (uint8_t)(*val >> sh);

		port_access(rtc, ext, (unsigned)off + i, write, &b);
		if (!write) {
			*val &= ~(0xffULL << sh);
			*val |= (uint64_t)b << sh;
		}
	}
	pthread_mutex_unlock(&rtc->mtx);
	return 0;
}

static int io_bank0(void *opaque, uint64_t off, unsigned size, bool write,
		    uint64_t *val)
{
	return io(opaque, false, off, size, write, val);
}

static int io_bank1(void *opaque, uint64_t off, unsigned size, bool write,
		    uint64_t *val)
{
	return io(opaque, true, off, size, write, val);
}

static void put16(uint8_t *p, uint64_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void nvram_memory(struct rtc *rtc, uint64_t lowmem, uint64_t highmem)
{
	uint64_t ext, m16, hi;

	put16(&rtc->ram[R_BASEMEM_LO], 640);
	ext = lowmem > MIB ? (lowmem - MIB) / KIB : 0;
	if (ext > 0xffff)
		ext = 0xffff;
	put16(&rtc->ram[R_EXTMEM_LO], ext);
	put16(&rtc->ram[R_EXTMEM2_LO], ext);
	m16 = lowmem > 16 * MIB ? (lowmem - 16 * MIB) / (64 * KIB) : 0;
	if (m16 > 0xffff)
		m16 = 0xffff;
	put16(&rtc->ram[R_MEM16M_LO], m16);
	hi = highmem / (64 * KIB);
	if (hi > 0xffffff)
		hi = 0xffffff;
	rtc->ram[R_MEM4G_LO] = (uint8_t)hi;
	rtc->ram[R_MEM4G_LO + 1] = (uint8_t)(hi >> 8);
	rtc->ram[R_MEM4G_LO + 2] = (uint8_t)(hi >> 16);
}

static int64_t host_display_ns(bool use_localtime)
{
	struct timespec ts;
	struct tm tm;
	int64_t t;

	clock_gettime(CLOCK_REALTIME, &ts);
	t = (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
	if (use_localtime && localtime_r(&ts.tv_sec, &tm))
		t += (int64_t)tm.tm_gmtoff * NSEC;
	return t;
}

static int timers_create(struct rtc *rtc)
{
	int i, rc;

	for (i = 0; i < 2; i++) {
		rtc->tfd[i] = timerfd_create(CLOCK_MONOTONIC,
					     TFD_NONBLOCK | TFD_CLOEXEC);
		if (rtc->tfd[i] < 0)
			return -errno;
		rc = event_add_fd(rtc->ev, rtc->tfd[i], EPOLLIN, timer_cb, rtc,
				  &rtc->tev[i]);
		if (rc)
			return rc;
	}
	return 0;
}

void rtc_destroy(struct rtc *rtc)
{
	int i;

	if (!rtc)
		return;
	if (rtc->ports_a)
		(void)bus_unregister(rtc->pio, PORT_RTC);
	if (rtc->ports_b)
		(void)bus_unregister(rtc->pio, PORT_RTC + 2);
	for (i = 0; i < 2; i++) {
		event_del(rtc->tev[i]);
		if (rtc->tfd[i] >= 0)
			close(rtc->tfd[i]);
	}
	if (rtc->irq_level)
		(void)irq_set(&rtc->irq, RTC_IRQ, 0);
	pthread_mutex_destroy(&rtc->mtx);
	free(rtc);
}

int rtc_create(struct devctx *ctx, bool use_localtime, uint64_t lowmem,
	       uint64_t highmem, struct rtc **out)
{
	struct rtc *rtc = calloc(1, sizeof(*rtc));
	int rc;

	if (!rtc)
		return -ENOMEM;
	pthread_mutex_init(&rtc->mtx, NULL);
	rtc->pio = ctx->pio;
	rtc->irq = ctx->irq;
	rtc->ev = ctx->ev;
	rtc->tfd[0] = rtc->tfd[1] = -1;
	rtc->ram[R_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	rtc->ram[R_B] = B_24H;
	rtc->ram[R_D] = D_VRT;
	nvram_memory(rtc, lowmem, highmem);
	rtc->mono0 = mono_ns();
	rtc->base_ns = host_display_ns(use_localtime);
	rtc->last_ns = rtc->base_ns;
	render_now(rtc);
	if (rtc->ev) {
		rc = timers_create(rtc);
		if (rc) {
			log_errno(LOG_ERR, -rc, "rtc: cannot create timers");
			goto fail;
		}
	}
	rc = bus_register(ctx->pio, PORT_RTC, 2, io_bank0, rtc, "rtc");
	if (rc)
		goto fail;
	rtc->ports_a = true;
	rc = bus_register(ctx->pio, PORT_RTC + 2, 2, io_bank1, rtc, "rtc-ext");
	if (rc)
		goto fail;
	rtc->ports_b = true;
	*out = rtc;
	return 0;
fail:
	rtc_destroy(rtc);
	return rc;
}

time_t rtc_time_get(struct rtc *rtc)
{
	time_t t;

	pthread_mutex_lock(&rtc->mtx);
	t = (time_t)floordiv(now_ns(rtc), NSEC);
	pthread_mutex_unlock(&rtc->mtx);
	return t;
}

void rtc_time_set(struct rtc *rtc, time_t secs)
{
	if (secs >= T_LIMIT)
		secs = T_LIMIT - 1;
	if (secs <= -T_LIMIT)
		secs = -T_LIMIT + 1;
	pthread_mutex_lock(&rtc->mtx);
	set_now(rtc, (int64_t)secs * NSEC);
	pthread_mutex_unlock(&rtc->mtx);
}

int rtc_nvram_read(struct rtc *rtc, unsigned off, uint8_t *val)
{
	if (off >= RTC_NVRAM_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&rtc->mtx);
	*val = (off < 0x0e && off != R_C) ? reg_read(rtc, off) : rtc->ram[off];
	pthread_mutex_unlock(&rtc->mtx);
	return 0;
}

int rtc_nvram_write(struct rtc *rtc, unsigned off, uint8_t val)
{
	if (off >= RTC_NVRAM_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&rtc->mtx);
	reg_write(rtc, off, val);
	pthread_mutex_unlock(&rtc->mtx);
	return 0;
}
