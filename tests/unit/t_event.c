/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the event loop: fd readiness, timers, signals, posts from
 * another thread, stop status, and deleting events from callbacks.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "event/event.h"
#include "tests/tap.h"

static struct event_loop *ev;
static int fd_calls, timer_calls, sig_calls, post_calls;
static struct event *fd_ev;

static void on_fd(void *arg, uint32_t events)
{
	int *pfd = arg;
	char c;

	if ((events & EPOLLIN) && read(pfd[0], &c, 1) == 1)
		fd_calls++;
	event_del(fd_ev); /* deleting yourself is allowed */
}

static void on_timer(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
	if (++timer_calls == 3)
		kill(getpid(), SIGUSR1);
}

static void on_signal(void *arg, uint32_t events)
{
	(void)arg;
	(void)events;
	sig_calls++;
	event_loop_stop(ev, 42);
}

static void on_post(void *arg, uint32_t events)
{
	(void)events;
	post_calls += *(int *)arg;
}

static void *poster(void *arg)
{
	static int one = 1;

	(void)arg;
	event_post(ev, on_post, &one);
	return NULL;
}

int main(void)
{
	int pfd[2];
	pthread_t t;

	plan_no_plan();
	is_int(event_loop_new(&ev), 0, "loop created");
	is_int(pipe(pfd), 0, "pipe");
	is_int(event_add_fd(ev, pfd[0], EPOLLIN, on_fd, pfd, &fd_ev), 0,
	       "watch pipe");
	is_int(event_add_timer(ev, 5 * 1000 * 1000, on_timer, NULL, NULL), 0,
	       "5 ms timer");
	is_int(event_add_timer(ev, 0, on_timer, NULL, NULL) < 0, 1,
	       "zero period refused");
	is_int(event_add_signal(ev, SIGUSR1, on_signal, NULL, NULL), 0,
	       "SIGUSR1 through the loop");
	is_int(write(pfd[1], "xy", 2), 2, "write two bytes");
	pthread_create(&t, NULL, poster, NULL);
	is_int(event_loop_run(ev), 42, "stop status returned");
	pthread_join(t, NULL);
	is_int(fd_calls, 1, "fd callback ran once, then deleted itself");
	ok(timer_calls >= 3, "timer fired at least three times (%d)",
	   timer_calls);
	is_int(sig_calls, 1, "signal delivered once");
	is_int(post_calls, 1, "posted callback ran");
	event_loop_stop(ev, 7);
	event_loop_stop(ev, 8);
	is_int(event_loop_run(ev), 7, "first stop wins; loop reusable");
	event_loop_free(ev);
	close(pfd[0]);
	close(pfd[1]);
	return done_testing();
}
