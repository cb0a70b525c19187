/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The main event loop (bhyve's mevent): one epoll instance run by the main
 * thread.  It watches file descriptors (console, control socket), timers
 * (timerfd) and signals (signalfd), and runs callbacks posted from other
 * threads.  Callbacks run on the loop thread only and must not block.
 *
 * Threads: event_loop_run() on one thread.  event_post() and
 * event_loop_stop() are safe from any thread (they write an eventfd), and
 * so is event_mod_fd() (one epoll_ctl).  event_add*()/event_del() are for
 * the loop thread or start-up.  The epoll mask may include EPOLLONESHOT
 * (re-arm with event_mod_fd()).
 */
#ifndef KHYVE_EVENT_EVENT_H
#define KHYVE_EVENT_EVENT_H

#include <stdint.h>

struct event_loop;
struct event;

/* Callback: 'events' is the epoll mask (EPOLLIN...), or 0 for posts. */
typedef void (*event_fn)(void *arg, uint32_t events);

/* Create a loop.  Returns 0 or -errno. */
int event_loop_new(struct event_loop **out);
/* Free a loop that is not running; closes nothing the caller owns. */
void event_loop_free(struct event_loop *ev);

/* Watch 'fd' for 'events' (EPOLLIN/EPOLLOUT).  Returns 0 or -errno. */
int event_add_fd(struct event_loop *ev, int fd, uint32_t events, event_fn fn,
		 void *arg, struct event **out);
/* Change the mask of a watched fd.  Returns 0 or -errno. */
int event_mod_fd(struct event *e, uint32_t events);
/* Periodic timer every 'period_ns' (first after one period). 0/-errno. */
int event_add_timer(struct event_loop *ev, uint64_t period_ns, event_fn fn,
		    void *arg, struct event **out);
/* Deliver 'signo' through the loop (blocks it in the calling thread: call
 * before creating other threads so they inherit the mask).  0/-errno. */
int event_add_signal(struct event_loop *ev, int signo, event_fn fn, void *arg,
		     struct event **out);
/* Stop watching and free the event (the fd itself is not closed). */
void event_del(struct event *e);

/* Run fn(arg, 0) on the loop thread soon.  Any thread.  0 or -ENOMEM. */
int event_post(struct event_loop *ev, event_fn fn, void *arg);

/* Run until event_loop_stop().  Returns the status given to stop. */
int event_loop_run(struct event_loop *ev);
/* Make event_loop_run() return 'status'.  Any thread; first call wins. */
void event_loop_stop(struct event_loop *ev, int status);

#endif
