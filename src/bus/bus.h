/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PIO and MMIO range registry and dispatch.  A bus is a sorted array of
 * non-overlapping ranges; a vCPU exit looks its address up with a binary
 * search and calls the owner's handler with the offset inside the range.
 *
 * Threads and locks: bus_dispatch() runs on vCPU threads (and on the test
 * harness) without taking any lock: it reads an immutable snapshot of the
 * range array through an atomic pointer.  bus_register()/bus_unregister()
 * (start-up, BAR moves from a config-space write) take the bus mutex, build
 * a new snapshot and publish it.  Old snapshots are kept until bus_free(),
 * so a vCPU still walking one never touches freed memory and a handler may
 * itself (un)register ranges (an ECAM write moving a BAR) without deadlock:
 * the hazard bhyve's mem.c and kvmtool's mmio.c document.  BAR moves are
 * rare, so the retired snapshots cost little.
 */
#ifndef KHYVE_BUS_BUS_H
#define KHYVE_BUS_BUS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * A range handler.  'off' is the offset from the range base, 'size' is 1, 2,
 * 4 or 8.  On a read the handler stores the value in *val (the caller set
 * it to all ones first); on a write *val holds the value.  Returns 0, or
 * -errno when the access fails (the access is then treated as unclaimed).
 */
typedef int (*bus_io_fn)(void *opaque, uint64_t off, unsigned size, bool write,
			 uint64_t *val);

struct bus;

/* Statistics of one bus (all counters monotonic). */
struct bus_stats {
	uint64_t dispatched;	 /* accesses handled by a range */
	uint64_t unclaimed;	 /* accesses no range claimed */
	uint64_t last_unclaimed; /* address of the most recent one */
};

/* Create an empty bus called 'name' ("pio", "mmio"). Returns 0 or -ENOMEM. */
int bus_new(struct bus **out, const char *name);
/* Free a bus and every snapshot it kept.  NULL is accepted. */
void bus_free(struct bus *bus);

/*
 * Claim [base, base+len) for fn/opaque.  'name' (kept by pointer) labels the
 * range in messages.  Returns 0, -EINVAL (len 0 or wrap), -EEXIST (overlaps
 * a registered range; logs both names) or -ENOMEM.
 */
int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn,
		 void *opaque, const char *name);
/* Release the range that starts at 'base'.  Returns 0 or -ENOENT. */
int bus_unregister(struct bus *bus, uint64_t base);

/*
 * Deliver one access.  Returns 0 when a range handled it, -ENOENT when
 * none claims 'addr' (reads then return all ones in *val; the unclaimed
 * counter is bumped), or the handler's -errno.
 */
int bus_dispatch(struct bus *bus, uint64_t addr, unsigned size, bool write,
		 uint64_t *val);

/* True when some range contains 'addr'. */
bool bus_claimed(struct bus *bus, uint64_t addr);

/* Copy the bus counters into *st. */
void bus_get_stats(struct bus *bus, struct bus_stats *st);

/* Call fn for each registered range in address order (for dumps/tests). */
void bus_foreach(struct bus *bus,
		 void (*fn)(void *arg, uint64_t base, uint64_t len,
			    const char *name),
		 void *arg);

#endif
