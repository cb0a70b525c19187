/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Polling deadlines for the guest drivers (ahci.c, nvme.c): seconds
 * counted on the RTC, with a spin count as the bound when there is no RTC
 * or it stops.  State: the caller's struct deadline.  Ring 0 (port I/O to
 * the RTC), any CPU, no locks.
 */
#include "guest.h"

void deadline_start(struct deadline *d, unsigned int timeout_s,
		    uint64_t spins_per_s, uint64_t poll_mask)
{
	d->sec = cmos_read(0);
	d->ticks = 0;
	d->limit = timeout_s;
	d->spins = 0;
	d->poll_mask = poll_mask;
	d->max_spins = (uint64_t)(timeout_s + 1) *
		       (d->sec == 0xff ? spins_per_s / 250 : spins_per_s);
}

bool deadline_passed(struct deadline *d)
{
	uint8_t now;

	cpu_relax();
	if (++d->spins > d->max_spins)
		return true;
	if (d->spins & d->poll_mask)
		return false;
	now = cmos_read(0);
	if (now != d->sec && now != 0xff) {
		d->sec = now;
		if (++d->ticks > d->limit)
			return true;
	}
	return false;
}
