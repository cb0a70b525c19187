/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the PIO/MMIO bus: registration, overlap refusal, lookup
 * at range edges, unclaimed accesses (all-ones reads, counters), removal,
 * and re-registration from inside a handler (the BAR-move case).
 */
#include <errno.h>
#include <stdint.h>

#include "bus/bus.h"
#include "tests/tap.h"

struct rec {
	uint64_t off;
	unsigned size;
	bool write;
	uint64_t val;
	int calls;
};

static int rec_io(void *opaque, uint64_t off, unsigned size, bool write,
		  uint64_t *val)
{
	struct rec *r = opaque;

	r->off = off;
	r->size = size;
	r->write = write;
	r->calls++;
	if (write)
		r->val = *val;
	else
		*val = 0x1122334455667788ULL;
	return 0;
}

static struct bus *g_bus;

/* A handler that moves its own range, as a BAR write does. */
static int move_io(void *opaque, uint64_t off, unsigned size, bool write,
		   uint64_t *val)
{
	(void)opaque;
	(void)off;
	(void)size;
	if (write) {
		bus_unregister(g_bus, 0x5000);
		bus_register(g_bus, (uint64_t)*val, 0x10, move_io, NULL,
			     "moved");
	}
	return 0;
}

int main(void)
{
	struct bus *bus;
	struct rec a = {0}, b = {0};
	struct bus_stats st;
	uint64_t v;

	plan_no_plan();
	is_int(bus_new(&bus, "test"), 0, "bus_new");
	is_int(bus_register(bus, 0x100, 0x10, rec_io, &a, "a"), 0,
	       "register a at 0x100-0x10f");
	is_int(bus_register(bus, 0x200, 0x8, rec_io, &b, "b"), 0,
	       "register b at 0x200-0x207");
	is_int(bus_register(bus, 0x10f, 1, rec_io, &b, "c"), -EEXIST,
	       "overlap at the last byte refused");
	is_int(bus_register(bus, 0xf0, 0x11, rec_io, &b, "d"), -EEXIST,
	       "overlap at the first byte refused");
	is_int(bus_register(bus, 0x300, 0, rec_io, &b, "e"), -EINVAL,
	       "zero length refused");
	is_int(bus_register(bus, ~0ULL - 2, 8, rec_io, &b, "f"), -EINVAL,
	       "wrapping range refused");

	v = 0xabcd;
	is_int(bus_dispatch(bus, 0x10f, 1, true, &v), 0, "write last byte");
	is_int(a.off, 0xf, "handler sees offset within range");
	is_int(a.val, 0xabcd, "handler sees written value");
	is_int(bus_dispatch(bus, 0x100, 2, false, &v), 0, "read first byte");
	is_int(v, 0x7788, "2-byte read truncated to 16 bits");
	is_int(bus_dispatch(bus, 0x207, 4, false, &v), 0, "read in b");
	is_int(b.off, 7, "b offset");

	is_int(bus_dispatch(bus, 0x110, 4, false, &v), -ENOENT,
	       "just past a is unclaimed");
	is_int(v, 0xffffffff, "unclaimed 4-byte read is all ones");
	is_int(bus_dispatch(bus, 0xff, 1, false, &v), -ENOENT,
	       "just before a is unclaimed");
	is_int(v, 0xff, "unclaimed 1-byte read is all ones");
	is_int(bus_dispatch(bus, 0x9999, 8, false, &v), -ENOENT,
	       "far away is unclaimed");
	is_int(v, -1, "unclaimed 8-byte read is all ones");
	bus_get_stats(bus, &st);
	is_int(st.unclaimed, 3, "three unclaimed accesses counted");
	is_int(st.last_unclaimed, 0x9999, "last unclaimed address kept");
	ok(bus_claimed(bus, 0x105) && !bus_claimed(bus, 0x150), "bus_claimed");

	is_int(bus_unregister(bus, 0x100), 0, "unregister a");
	is_int(bus_unregister(bus, 0x100), -ENOENT, "unregister twice");
	is_int(bus_dispatch(bus, 0x100, 1, false, &v), -ENOENT, "a is gone");
	is_int(bus_register(bus, 0x100, 0x10, rec_io, &a, "a2"), 0,
	       "range can be claimed again");

	g_bus = bus;
	is_int(bus_register(bus, 0x5000, 0x10, move_io, NULL, "mover"), 0,
	       "register mover");
	v = 0x6000;
	is_int(bus_dispatch(bus, 0x5004, 4, true, &v), 0,
	       "handler re-registers itself without deadlock");
	ok(!bus_claimed(bus, 0x5004) && bus_claimed(bus, 0x6004),
	   "range moved to 0x6000");
	bus_free(bus);
	return done_testing();
}
