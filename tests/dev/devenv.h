/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * devenv: the machine a device test builds a device on, without KVM.  It
 * owns a struct devctx with a PIO and an MMIO bus, a recording interrupt
 * sink and a recording exit hook (struct devenv_rec), optionally an event
 * loop running on its own thread, and the port and MMIO accessors a test
 * uses to play the guest.  Header-only; include it once per test program.
 *
 *   struct devenv env;
 *
 *   devenv_init(&env, 0);                 (or DEVENV_LOOP)
 *   foo_create(&env.ctx, &foo);
 *   devenv_out(&env, PORT, 1, 0x12);
 *   is_int(devenv_in(&env, PORT, 1), ..., "...");
 *   is_int(env.rec.level[IRQ], 1, "...");
 *   devenv_loop_stop(&env);               (if a loop runs: before destroy)
 *   foo_destroy(foo);
 *   devenv_fini(&env);
 *
 * Set-up failures (no memory, no thread) are harness failures, not test
 * results: devenv_init() and devenv_loop_start() then print a TAP
 * "Bail out!" line and end the program.
 *
 * Threads and locks: the test's main thread plays the guest and calls
 * everything here.  The event loop thread, when there is one, runs device
 * callbacks that may raise interrupts or request an exit, so the sink and
 * the exit hook update env->rec under env->lock.  The main thread may read
 * env->rec directly while no loop runs; with a loop it uses
 * devenv_level() and devenv_rises(), which take the lock.
 */
#ifndef KHYVE_TESTS_DEV_DEVENV_H
#define KHYVE_TESTS_DEV_DEVENV_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "core/devmodel.h"
#include "event/event.h"

/* GSIs the recording sink knows; set_irq on a higher one is -EINVAL. */
#define DEVENV_GSIS 32

/* devenv_init() flag: start an event loop thread and set ctx.ev. */
#define DEVENV_LOOP 0x1u

/* What the device under test did to its interrupt lines and exit hook. */
struct devenv_rec {
	int level[DEVENV_GSIS]; /* current level of each GSI */
	int rises[DEVENV_GSIS]; /* low-to-high edges seen on each GSI */
	int exits;		/* exit requests so far */
	int status;		/* status of the last exit request */
	char why[128];		/* its reason ("" when NULL), truncated */
};

struct devenv {
	struct devctx ctx;     /* what the device is created on */
	struct devenv_rec rec; /* interrupts and exits, see above */
	pthread_mutex_t lock;  /* guards rec against the loop thread */
	pthread_t loop_thread; /* runs event_loop_run(ctx.ev) */
	bool loop_running;     /* loop_thread exists and is not joined */
};

/* Print a TAP "Bail out!" line for a failed set-up step and exit. */
static inline void __attribute__((noreturn))
devenv_bail_(const char *what, int err)
{
	printf("Bail out! devenv: %s: %s\n", what, strerror(err));
	fflush(stdout);
	exit(255);
}

/* The interrupt sink: record the level of 'gsi' and count its rising
 * edges.  Returns 0, or -EINVAL for a GSI the record has no room for. */
static inline int devenv_rec_set_irq(void *opaque, unsigned gsi, int level)
{
	struct devenv *env = opaque;
	struct devenv_rec *r = &env->rec;

	if (gsi >= DEVENV_GSIS)
		return -EINVAL;
	pthread_mutex_lock(&env->lock);
	if (level && !r->level[gsi])
		r->rises[gsi]++;
	r->level[gsi] = level;
	pthread_mutex_unlock(&env->lock);
	return 0;
}

/* The exit hook: count the request and keep its status and reason. */
static inline void devenv_rec_exit(void *opaque, int status, const char *why)
{
	struct devenv *env = opaque;
	struct devenv_rec *r = &env->rec;

	pthread_mutex_lock(&env->lock);
	r->exits++;
	r->status = status;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
	pthread_mutex_unlock(&env->lock);
}

static inline void *devenv_loop_main_(void *ev)
{
	(void)event_loop_run(ev);
	return NULL;
}

/* Run the event loop on a new thread (creating it and setting env->ctx.ev
 * the first time; a loop stopped by devenv_loop_stop() runs again).  For
 * a test that creates some devices without a loop first.  Bails out on
 * failure (see the top of the file). */
static inline void devenv_loop_start(struct devenv *env)
{
	int rc;

	if (env->loop_running)
		devenv_bail_("loop_start", EBUSY);
	/* A loop stopped by devenv_loop_stop() runs again (same devices). */
	if (!env->ctx.ev && (rc = event_loop_new(&env->ctx.ev)))
		devenv_bail_("event_loop_new", -rc);
	rc = pthread_create(&env->loop_thread, NULL, devenv_loop_main_,
			    env->ctx.ev);
	if (rc)
		devenv_bail_("pthread_create", rc);
	env->loop_running = true;
}

/* Stop the event loop and join its thread; env->ctx.ev stays valid (not
 * running) so devices can still be destroyed.  Does nothing when no loop
 * runs. */
static inline void devenv_loop_stop(struct devenv *env)
{
	if (!env->loop_running)
		return;
	event_loop_stop(env->ctx.ev, 0);
	pthread_join(env->loop_thread, NULL);
	env->loop_running = false;
}

/* Build an empty machine: both buses, the recording sink and exit hook,
 * and with DEVENV_LOOP a running event loop.  Bails out on failure. */
static inline void devenv_init(struct devenv *env, unsigned flags)
{
	int rc;

	memset(env, 0, sizeof(*env));
	rc = pthread_mutex_init(&env->lock, NULL);
	if (rc)
		devenv_bail_("pthread_mutex_init", rc);
	rc = bus_new(&env->ctx.pio, "pio");
	if (!rc)
		rc = bus_new(&env->ctx.mmio, "mmio");
	if (rc)
		devenv_bail_("bus_new", -rc);
	env->ctx.irq.set_irq = devenv_rec_set_irq;
	env->ctx.irq.opaque = env;
	env->ctx.exit = devenv_rec_exit;
	env->ctx.opaque = env;
	if (flags & DEVENV_LOOP)
		devenv_loop_start(env);
}

/* Stop the loop if it still runs, free it and the buses.  Devices on the
 * buses must have been destroyed. */
static inline void devenv_fini(struct devenv *env)
{
	devenv_loop_stop(env);
	if (env->ctx.ev)
		event_loop_free(env->ctx.ev);
	env->ctx.ev = NULL;
	bus_free(env->ctx.pio);
	bus_free(env->ctx.mmio);
	env->ctx.pio = env->ctx.mmio = NULL;
	pthread_mutex_destroy(&env->lock);
}

/* Read one cell of env->rec ('cells' is one of its arrays) under the lock;
 * 0 for a GSI out of range. */
static inline int devenv_rec_cell_(struct devenv *env, const int *cells,
				   unsigned gsi)
{
	int v;

	if (gsi >= DEVENV_GSIS)
		return 0;
	pthread_mutex_lock(&env->lock);
	v = cells[gsi];
	pthread_mutex_unlock(&env->lock);
	return v;
}

/* Current level of 'gsi', safe while the loop thread runs. */
static inline int devenv_level(struct devenv *env, unsigned gsi)
{
	return devenv_rec_cell_(env, env->rec.level, gsi);
}

/* Rising edges seen on 'gsi', safe while the loop thread runs. */
static inline int devenv_rises(struct devenv *env, unsigned gsi)
{
	return devenv_rec_cell_(env, env->rec.rises, gsi);
}

/* One guest access on 'bus'; returns what a read got (all ones where
 * nothing answers, as bus_dispatch() fills it) or, for a write, 'v'. */
static inline uint64_t devenv_access_(struct bus *bus, uint64_t addr,
				      unsigned size, bool write, uint64_t v)
{
	(void)bus_dispatch(bus, addr, size, write, &v);
	return v;
}

/* Guest port read of 'size' bytes at 'port'. */
static inline uint64_t devenv_in(const struct devenv *env, uint16_t port,
				 unsigned size)
{
	return devenv_access_(env->ctx.pio, port, size, false, 0);
}

/* Guest port write of the low 'size' bytes of 'v' at 'port'. */
static inline void devenv_out(const struct devenv *env, uint16_t port,
			      unsigned size, uint64_t v)
{
	(void)devenv_access_(env->ctx.pio, port, size, true, v);
}

/* One-byte devenv_in(). */
static inline uint8_t devenv_inb(const struct devenv *env, uint16_t port)
{
	return (uint8_t)devenv_in(env, port, 1);
}

/* One-byte devenv_out(). */
static inline void devenv_outb(const struct devenv *env, uint16_t port,
			       uint8_t v)
{
	devenv_out(env, port, 1, v);
}

/* Guest MMIO read of 'size' bytes at 'gpa'. */
static inline uint64_t devenv_mmio_read(const struct devenv *env, uint64_t gpa,
					unsigned size)
{
	return devenv_access_(env->ctx.mmio, gpa, size, false, 0);
}

/* Guest MMIO write of the low 'size' bytes of 'v' at 'gpa'. */
static inline void devenv_mmio_write(const struct devenv *env, uint64_t gpa,
				     unsigned size, uint64_t v)
{
	(void)devenv_access_(env->ctx.mmio, gpa, size, true, v);
}

/* Sleep 'ms' milliseconds (device timers, backend threads). */
static inline void devenv_sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

#endif
