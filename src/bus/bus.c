/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PIO/MMIO range registry (see bus.h for the design).  A snapshot is an
 * immutable array of ranges sorted by base; readers load the current
 * snapshot with an acquire load and binary-search it.  Writers serialise on
 * bus->lock, copy the array with the change applied, publish it with a
 * release store and push the old one on a retired list freed by bus_free().
 */
#include "bus/bus.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

struct bus_range {
	uint64_t base;
	uint64_t end; /* inclusive */
	bus_io_fn fn;
	void *opaque;
	const char *name;
};

struct bus_snap {
	struct bus_snap *retired_next;
	unsigned n;
	struct bus_range r[];
};

struct bus {
	const char *name;
	pthread_mutex_t lock;
	struct bus_snap *cur;	  /* atomic */
	struct bus_snap *retired; /* under lock */
	uint64_t dispatched;	  /* atomic */
	uint64_t unclaimed;	  /* atomic */
	uint64_t last_unclaimed;  /* atomic */
};

static struct bus_snap *snap_alloc(unsigned n)
{
	struct bus_snap *s = calloc(1, sizeof(*s) + n * sizeof(s->r[0]));

	if (s)
		s->n = n;
	return s;
}

int bus_new(struct bus **out, const char *name)
{
	struct bus *bus = calloc(1, sizeof(*bus));

	if (!bus)
		return -ENOMEM;
	bus->cur = snap_alloc(0);
	if (!bus->cur) {
		free(bus);
		return -ENOMEM;
	}
	bus->name = name;
	pthread_mutex_init(&bus->lock, NULL);
	*out = bus;
	return 0;
}

void bus_free(struct bus *bus)
{
	struct bus_snap *s, *next;

	if (!bus)
		return;
	for (s = bus->retired; s; s = next) {
		next = s->retired_next;
		free(s);
	}
	free(bus->cur);
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

static void publish(struct bus *bus, struct bus_snap *ns)
{
	struct bus_snap *old = bus->cur;

	__atomic_store_n(&bus->cur, ns, __ATOMIC_RELEASE);
	old->retired_next = bus->retired;
	bus->retired = old;
}

int bus_register(struct bus *bus, uint64_t base, uint64_t len, bus_io_fn fn,
		 void *opaque, const char *name)
{
	struct bus_snap *cur, *ns;
	uint64_t end;
	unsigned i, pos;

	if (len == 0 || base + len - 1 < base || !fn)
		return -EINVAL;
	end = base + len - 1;
	pthread_mutex_lock(&bus->lock);
	cur = bus->cur;
	for (pos = 0; pos < cur->n && cur->r[pos].base < base; pos++)
		;
	for (i = 0; i < cur->n; i++) {
		if (cur->r[i].base <= end && base <= cur->r[i].end) {
			log_err("%s: %s at 0x%llx-0x%llx overlaps %s at "
				"0x%llx-0x%llx",
				bus->name, name, (unsigned long long)base,
				(unsigned long long)end, cur->r[i].name,
				(unsigned long long)cur->r[i].base,
				(unsigned long long)cur->r[i].end);
			pthread_mutex_unlock(&bus->lock);
			return -EEXIST;
		}
	}
	ns = snap_alloc(cur->n + 1);
	if (!ns) {
		pthread_mutex_unlock(&bus->lock);
		return -ENOMEM;
	}
	memcpy(ns->r, cur->r, pos * sizeof(ns->r[0]));
	ns->r[pos] = (struct bus_range){base, end, fn, opaque, name};
	memcpy(ns->r + pos + 1, cur->r + pos,
	       (cur->n - pos) * sizeof(ns->r[0]));
	publish(bus, ns);
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

int bus_unregister(struct bus *bus, uint64_t base)
{
	struct bus_snap *cur, *ns;
	unsigned i;

	pthread_mutex_lock(&bus->lock);
	cur = bus->cur;
	for (i = 0; i < cur->n && cur->r[i].base != base; i++)
		;
	if (i == cur->n) {
		pthread_mutex_unlock(&bus->lock);
		return -ENOENT;
	}
	ns = snap_alloc(cur->n - 1);
	if (!ns) {
		pthread_mutex_unlock(&bus->lock);
		return -ENOMEM;
	}
	memcpy(ns->r, cur->r, i * sizeof(ns->r[0]));
	memcpy(ns->r + i, cur->r + i + 1, (cur->n - i - 1) * sizeof(ns->r[0]));
	publish(bus, ns);
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

static const struct bus_range *lookup(const struct bus_snap *s, uint64_t addr)
{
	unsigned lo = 0, hi = s->n;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct bus_range *r = &s->r[mid];

		if (addr < r->base)
			hi = mid;
		else if (addr > r->end)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

int bus_dispatch(struct bus *bus, uint64_t addr, unsigned size, bool write,
		 uint64_t *val)
{
	const struct bus_snap *s = __atomic_load_n(&bus->cur, __ATOMIC_ACQUIRE);
	const struct bus_range *r = lookup(s, addr);
	int rc;

	if (!write)
		*val = size >= 8 ? ~0ULL : (1ULL << (size * 8)) - 1;
	if (!r) {
		__atomic_fetch_add(&bus->unclaimed, 1, __ATOMIC_RELAXED);
		__atomic_store_n(&bus->last_unclaimed, addr, __ATOMIC_RELAXED);
		return -ENOENT;
	}
	rc = r->fn(r->opaque, addr - r->base, size, write, val);
	__atomic_fetch_add(&bus->dispatched, 1, __ATOMIC_RELAXED);
	if (!write && size < 8)
		*val &= (1ULL << (size * 8)) - 1;
	return rc;
}

bool bus_claimed(struct bus *bus, uint64_t addr)
{
	return lookup(__atomic_load_n(&bus->cur, __ATOMIC_ACQUIRE), addr) !=
	       NULL;
}

void bus_get_stats(struct bus *bus, struct bus_stats *st)
{
	st->dispatched = __atomic_load_n(&bus->dispatched, __ATOMIC_RELAXED);
	st->unclaimed = __atomic_load_n(&bus->unclaimed, __ATOMIC_RELAXED);
	st->last_unclaimed =
		__atomic_load_n(&bus->last_unclaimed, __ATOMIC_RELAXED);
}

void bus_foreach(struct bus *bus,
		 void (*fn)(void *arg, uint64_t base, uint64_t len,
			    const char *name),
		 void *arg)
{
	const struct bus_snap *s = __atomic_load_n(&bus->cur, __ATOMIC_ACQUIRE);
	unsigned i;

	for (i = 0; i < s->n; i++)
		fn(arg, s->r[i].base, s->r[i].end - s->r[i].base + 1,
		   s->r[i].name);
}
