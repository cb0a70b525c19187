/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ACPI PM block (see pm.h).  This file owns five small register sets:
 *
 *   PM1a_EVT (4 bytes)  status (RW1C) at +0, enable at +2
 *   PM1a_CNT (2 bytes)  SCI_EN (set only through SMI_CMD, as on real
 *                       chipsets), SLP_TYP, SLP_EN.  SLP_EN with
 *                       SLP_TYP == ACPI_S5_SLP_TYP powers off (exit 1);
 *                       other sleep states are not supported: ignored
 *   PM_TMR   (4 bytes)  24-bit counter at 3.579545 MHz from CLOCK_MONOTONIC
 *   SMI_CMD  (0xb2)     ACPI_ENABLE_VAL sets SCI_EN, ACPI_DISABLE_VAL
 *                       clears it
 *   RESET    (0xcf9)    a write with bit 2 (reset CPU) set reboots (exit 0)
 *
 * TMR_STS (bit 23 of the timer toggled) is computed when the status is
 * read or written; no timer raises it asynchronously, so a guest that
 * enables TMR_EN only sees the SCI when it next touches the block (Linux
 * does not use it).  The SCI is a level-triggered line (ACPI_SCI_IRQ)
 * asserted while SCI_EN is set and (status & enable) has an event bit.
 *
 * Threads and locks: pm->mtx covers all state; taken by vCPU threads and
 * by pm_power_button() on the event-loop thread.
 */
#include "hw/pm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "bus/bus.h"
#include "core/devmodel.h"
#include "core/irq.h"
#include "core/layout.h"
#include "lib/log.h"

#define PM1_EVENTS                                                             \
	(PM1_TMR_STS | PM1_GBL_STS | PM1_PWRBTN_STS | PM1_SLPBTN_STS |         \
	 PM1_RTC_STS)
#define CF9_RST_CPU 0x04

struct pm {
	pthread_mutex_t mtx;
	struct devctx ctx; /* a copy: buses, irq sink, exit callback */
	uint16_t sts, en, cnt;
	uint64_t tmr_epoch; /* timer >> 23 when TMR_STS was last updated */
	uint8_t cf9;
	int sci;
	unsigned regd; /* bit i: range i of pm_ranges is registered */
};

static uint64_t pm_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * PM_TIMER_HZ +
	       (uint64_t)ts.tv_nsec * PM_TIMER_HZ / 1000000000ULL;
}

static void tmr_catch_up(struct pm *pm)
{
	uint64_t e = pm_ticks() >> 23;

	if (e != pm->tmr_epoch) {
		pm->tmr_epoch = e;
		pm->sts |= PM1_TMR_STS;
	}
}

static void sci_update(struct pm *pm)
{
	int level = (pm->cnt & PM1_SCI_EN) && (pm->sts & pm->en & PM1_EVENTS);

	if (level != pm->sci) {
		pm->sci = level;
		(void)irq_set(&pm->ctx.irq, ACPI_SCI_IRQ, level);
	}
}

/* Call fn for every byte of an access that falls inside a 'len'-byte
 * register block. */
static void each_byte(struct pm *pm, uint64_t off, unsigned size, bool write,
		      uint64_t *val, unsigned len,
		      void (*fn)(struct pm *, unsigned, bool, uint8_t *))
{
	unsigned i;

	if (size == 0 || size > 8)
		return;
	pthread_mutex_lock(&pm->mtx);
	for (i = 0; i < size && off + i < len; i++) {
		unsigned sh = 8 * i;
		uint8_t b = (uint8_t)(*val >> sh);

		fn(pm, (unsigned)off + i, write, &b);
		if (!write) {
			*val &= ~(0xffULL << sh);
			*val |= (uint64_t)b << sh;
		}
	}
	sci_update(pm);
	pthread_mutex_unlock(&pm->mtx);
}

static void evt_byte(struct pm *pm, unsigned reg, bool write, uint8_t *b)
{
	unsigned sh = 8 * (reg & 1);

	if (reg < 2) {
		tmr_catch_up(pm);
		if (write)
			pm->sts &= (uint16_t) ~((unsigned)*b << sh);
		else
			*b = (uint8_t)(pm->sts >> sh);
	} else if (write) {
		pm->en = (uint16_t)((pm->en & ~(0xffu << sh)) |
				    ((unsigned)*b << sh));
	} else {
		*b = (uint8_t)(pm->en >> sh);
	}
}

static void cnt_write(struct pm *pm, uint16_t v)
{
	unsigned typ = (v & PM1_SLP_TYP_MASK) >> PM1_SLP_TYP_SHIFT;

	pm->cnt = (uint16_t)((pm->cnt & PM1_SCI_EN) |
			     (v & ~(PM1_SLP_EN | PM1_SCI_EN)));
	if (!(v & PM1_SLP_EN))
		return;
	if (typ == ACPI_S5_SLP_TYP) {
		devctx_exit(&pm->ctx, VM_EXIT_POWEROFF, "ACPI power-off (S5)");
		return;
	}
	log_ratelimited(5000,
			"pm: sleep type %u requested; only S5 is "
			"supported, ignored",
			typ);
}

static void cnt_byte(struct pm *pm, unsigned reg, bool write, uint8_t *b)
{
	unsigned sh = 8 * reg;

	if (!write) {
		*b = (uint8_t)(pm->cnt >> sh);
		return;
	}
	cnt_write(pm, (uint16_t)((pm->cnt & ~(0xffu << sh)) |
				 ((unsigned)*b << sh)));
}

static void tmr_byte(struct pm *pm, unsigned reg, bool write, uint8_t *b)
{
	(void)pm;
	if (!write)
		*b = (uint8_t)((pm_ticks() & 0xffffff) >> (8 * reg));
}

static void smi_byte(struct pm *pm, unsigned reg, bool write, uint8_t *b)
{
	(void)reg;
	if (!write) {
		*b = 0;
		return;
	}
	if (*b == ACPI_ENABLE_VAL)
		pm->cnt |= PM1_SCI_EN;
	else if (*b == ACPI_DISABLE_VAL)
		pm->cnt &= (uint16_t)~PM1_SCI_EN;
}

static void cf9_byte(struct pm *pm, unsigned reg, bool write, uint8_t *b)
{
	(void)reg;
	if (!write) {
		*b = pm->cf9;
		return;
	}
	pm->cf9 = *b & (uint8_t)~CF9_RST_CPU;
	if (*b & CF9_RST_CPU)
		devctx_exit(&pm->ctx, VM_EXIT_REBOOT, "reset (0xcf9)");
}

#define PM_HANDLER(name, len)                                                  \
	static int name##_io(void *opaque, uint64_t off, unsigned size,        \
			     bool write, uint64_t *val)                        \
	{                                                                      \
		each_byte(opaque, off, size, write, val, len, name##_byte);    \
		return 0;                                                      \
	}

PM_HANDLER(evt, 4)
PM_HANDLER(cnt, 2)
PM_HANDLER(tmr, 4)
PM_HANDLER(smi, 1)
PM_HANDLER(cf9, 1)

static const struct pm_range {
	uint16_t port;
	uint8_t len;
	bus_io_fn fn;
	const char *name;
} pm_ranges[] = {
	{PORT_PM1A_EVT, 4, evt_io, "pm1a-evt"},
	{PORT_PM1A_CNT, 2, cnt_io, "pm1a-cnt"},
	{PORT_PM_TMR, 4, tmr_io, "pm-tmr"},
	{PORT_SMI_CMD, 1, smi_io, "smi-cmd"},
	{PORT_RESET_CF9, 1, cf9_io, "reset-cf9"},
};

#define PM_NRANGES (sizeof(pm_ranges) / sizeof(pm_ranges[0]))

void pm_destroy(struct pm *pm)
{
	unsigned i;

	if (!pm)
		return;
	for (i = 0; i < PM_NRANGES; i++)
		if (pm->regd & (1u << i))
			(void)bus_unregister(pm->ctx.pio, pm_ranges[i].port);
	if (pm->sci)
		(void)irq_set(&pm->ctx.irq, ACPI_SCI_IRQ, 0);
	pthread_mutex_destroy(&pm->mtx);
	free(pm);
}

int pm_create(struct devctx *ctx, struct pm **out)
{
	struct pm *pm = calloc(1, sizeof(*pm));
	unsigned i;
	int rc;

	if (!pm)
		return -ENOMEM;
	pthread_mutex_init(&pm->mtx, NULL);
	pm->ctx = *ctx;
	pm->tmr_epoch = pm_ticks() >> 23;
	for (i = 0; i < PM_NRANGES; i++) {
		rc = bus_register(ctx->pio, pm_ranges[i].port, pm_ranges[i].len,
				  pm_ranges[i].fn, pm, pm_ranges[i].name);
		if (rc) {
			pm_destroy(pm);
			return rc;
		}
		pm->regd |= 1u << i;
	}
	*out = pm;
	return 0;
}

bool pm_power_button(struct pm *pm)
{
	bool delivered;

	pthread_mutex_lock(&pm->mtx);
	if (!(pm->cnt & PM1_SCI_EN)) {
		pthread_mutex_unlock(&pm->mtx);
		return false;
	}
	pm->sts |= PM1_PWRBTN_STS;
	sci_update(pm);
	delivered = (pm->en & PM1_PWRBTN_EN) != 0;
	pthread_mutex_unlock(&pm->mtx);
	return delivered;
}
