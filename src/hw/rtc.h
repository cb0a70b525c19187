/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * MC146818 real-time clock and CMOS NVRAM at I/O 0x70/0x71 (bank 0,
 * 128 bytes) and 0x72/0x73 (extended bank, 128 more).  Interrupts on
 * ISA IRQ 8.  bhyve's "-u" (rtc.use_localtime=false) keeps it in UTC.
 *
 * Threads and locks: one mutex per RTC; register accesses come from vCPU
 * threads, timer callbacks from the event-loop thread.
 */
#ifndef KHYVE_HW_RTC_H
#define KHYVE_HW_RTC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct devctx;
struct rtc;

/* CMOS offsets the firmware and the ACPI builder care about. */
#define RTC_CENTURY 0x32 /* FADT.CENTURY points here */
#define RTC_NVRAM_SIZE 256

/*
 * Create the RTC: claim ports 0x70-0x73 on ctx->pio, start the clock from
 * the host time (local time unless 'use_localtime' is false), and fill the
 * memory-size cells from 'lowmem' (RAM below 4 GiB) and 'highmem' (RAM
 * above 4 GiB), in bytes.  Periodic/update/alarm interrupts use timers on
 * ctx->ev when it is set.  Returns 0, -EEXIST (ports taken) or -errno.
 */
int rtc_create(struct devctx *ctx, bool use_localtime, uint64_t lowmem,
	       uint64_t highmem, struct rtc **out);
/* Release the ports and timers and free the RTC.  NULL is accepted. */
void rtc_destroy(struct rtc *rtc);

/* The guest's clock in seconds since the epoch (in the RTC's time zone
 * when it keeps local time), as bhyvectl --get-rtc-time reports it. */
time_t rtc_time_get(struct rtc *rtc);
/* Set the guest's clock (bhyvectl --set-rtc-time). */
void rtc_time_set(struct rtc *rtc, time_t secs);
/* Read/write one CMOS byte at 'off' (0..255).  Returns 0 or -EINVAL. */
int rtc_nvram_read(struct rtc *rtc, unsigned off, uint8_t *val);
int rtc_nvram_write(struct rtc *rtc, unsigned off, uint8_t val);

#endif
