/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The main event loop (see event.h).  epoll over plain fds, timerfds and
 * signalfds; an eventfd wakes the loop for posted callbacks and stop.
 *
 * Locks: 'post_lock' protects the queue of posted callbacks and the stop
 * flag/status (written by any thread).  Everything else belongs to the loop
 * thread.  Events deleted while a batch of epoll results is being processed
 * are marked dead and freed after the batch, so a callback may delete any
 * event (including its own).
 */
#include "event/event.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

enum ev_kind { EV_FD, EV_TIMER, EV_SIGNAL };

struct event {
	struct event_loop *loop;
	enum ev_kind kind;
	int fd;
	bool owns_fd;
	bool dead;
	event_fn fn;
	void *arg;
	struct event *dead_next;
	struct event *prev, *next; /* live events of the loop */
};

struct post {
	event_fn fn;
	void *arg;
	struct post *next;
};

struct event_loop {
	int epfd;
	int wakefd;
	pthread_mutex_t post_lock;
	struct post *posts, **posts_tail;
	bool stop;
	int status;
	struct event *dead; /* freed after each batch */
	struct event *live; /* every event not deleted */
};

int event_loop_new(struct event_loop **out)
{
	struct event_loop *ev = calloc(1, sizeof(*ev));
	struct epoll_event ee = {.events = EPOLLIN};
	int rc;

	if (!ev)
		return -ENOMEM;
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	ev->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev->epfd < 0 || ev->wakefd < 0) {
		rc = -errno;
		goto fail;
	}
	ee.data.ptr = NULL; /* the wake fd */
	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, ev->wakefd, &ee) < 0) {
		rc = -errno;
		goto fail;
	}
	pthread_mutex_init(&ev->post_lock, NULL);
	ev->posts_tail = &ev->posts;
	*out = ev;
	return 0;
fail:
	if (ev->epfd >= 0)
		close(ev->epfd);
	if (ev->wakefd >= 0)
		close(ev->wakefd);
	free(ev);
	return rc;
}

static void reap(struct event_loop *ev)
{
	struct event *e;

	while ((e = ev->dead)) {
		ev->dead = e->dead_next;
		free(e);
	}
}

void event_loop_free(struct event_loop *ev)
{
	struct post *p;

	if (!ev)
		return;
	while (ev->live)
		event_del(ev->live);
	reap(ev);
	while ((p = ev->posts)) {
		ev->posts = p->next;
		free(p);
	}
	close(ev->epfd);
	close(ev->wakefd);
	pthread_mutex_destroy(&ev->post_lock);
	free(ev);
}

static int add(struct event_loop *ev, enum ev_kind kind, int fd, bool owns,
	       uint32_t events, event_fn fn, void *arg, struct event **out)
{
	struct event *e = calloc(1, sizeof(*e));
	struct epoll_event ee = {.events = events};

	if (!e)
		return -ENOMEM;
	*e = (struct event){.loop = ev,
			    .kind = kind,
			    .fd = fd,
			    .owns_fd = owns,
			    .fn = fn,
			    .arg = arg};
	ee.data.ptr = e;
	if (epoll_ctl(ev->epfd, EPOLL_CTL_ADD, fd, &ee) < 0) {
		int rc = -errno;

		free(e);
		return rc;
	}
	e->next = ev->live;
	if (ev->live)
		ev->live->prev = e;
	ev->live = e;
	if (out)
		*out = e;
	return 0;
}

int event_add_fd(struct event_loop *ev, int fd, uint32_t events, event_fn fn,
		 void *arg, struct event **out)
{
	return add(ev, EV_FD, fd, false, events, fn, arg, out);
}

int event_mod_fd(struct event *e, uint32_t events)
{
	struct epoll_event ee = {.events = events, .data.ptr = e};

	if (epoll_ctl(e->loop->epfd, EPOLL_CTL_MOD, e->fd, &ee) < 0)
		return -errno;
	return 0;
}

int event_add_timer(struct event_loop *ev, uint64_t period_ns, event_fn fn,
		    void *arg, struct event **out)
{
	struct itimerspec its = {0};
	int fd, rc;

	if (period_ns == 0)
		return -EINVAL;
	fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	its.it_interval.tv_sec = (time_t)(period_ns / 1000000000ULL);
	its.it_interval.tv_nsec = (long)(period_ns % 1000000000ULL);
	its.it_value = its.it_interval;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = add(ev, EV_TIMER, fd, true, EPOLLIN, fn, arg, out);
	if (rc)
		close(fd);
	return rc;
}

int event_add_signal(struct event_loop *ev, int signo, event_fn fn, void *arg,
		     struct event **out)
{
	sigset_t set;
	int fd, rc;

	sigemptyset(&set);
	sigaddset(&set, signo);
	rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (rc)
		return -rc;
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	rc = add(ev, EV_SIGNAL, fd, true, EPOLLIN, fn, arg, out);
	if (rc)
		close(fd);
	return rc;
}

void event_del(struct event *e)
{
	struct event_loop *ev;

	if (!e || e->dead)
		return;
	ev = e->loop;
	(void)epoll_ctl(ev->epfd, EPOLL_CTL_DEL, e->fd, NULL);
	if (e->owns_fd)
		close(e->fd);
	if (e->prev)
		e->prev->next = e->next;
	else
		ev->live = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->dead = true;
	e->dead_next = ev->dead;
	ev->dead = e;
}

static void wake(struct event_loop *ev)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(ev->wakefd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
}

int event_post(struct event_loop *ev, event_fn fn, void *arg)
{
	struct post *p = malloc(sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&ev->post_lock);
	*ev->posts_tail = p;
	ev->posts_tail = &p->next;
	pthread_mutex_unlock(&ev->post_lock);
	wake(ev);
	return 0;
}

void event_loop_stop(struct event_loop *ev, int status)
{
	pthread_mutex_lock(&ev->post_lock);
	if (!ev->stop) {
		ev->stop = true;
		ev->status = status;
	}
	pthread_mutex_unlock(&ev->post_lock);
	wake(ev);
}

/* Run the posted callbacks; returns true when the loop must stop. */
static bool run_posts(struct event_loop *ev)
{
	struct post *p, *list;
	uint64_t cnt;
	bool stop;

	while (read(ev->wakefd, &cnt, sizeof(cnt)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&ev->post_lock);
	list = ev->posts;
	ev->posts = NULL;
	ev->posts_tail = &ev->posts;
	pthread_mutex_unlock(&ev->post_lock);
	while ((p = list)) {
		list = p->next;
		p->fn(p->arg, 0);
		free(p);
	}
	pthread_mutex_lock(&ev->post_lock);
	stop = ev->stop;
	pthread_mutex_unlock(&ev->post_lock);
	return stop;
}

static void drain(struct event *e)
{
	uint8_t buf[sizeof(struct signalfd_siginfo)];
	ssize_t n;

	if (e->kind == EV_FD)
		return;
	do
		n = read(e->fd, buf,
			 e->kind == EV_TIMER ? sizeof(uint64_t) : sizeof(buf));
	while (n < 0 && errno == EINTR);
}

int event_loop_run(struct event_loop *ev)
{
	struct epoll_event evs[16];
	int n, i;

	for (;;) {
		if (run_posts(ev))
			break;
		n = epoll_wait(ev->epfd, evs, 16, -1);
		if (n < 0 && errno != EINTR)
			return -errno;
		for (i = 0; i < n; i++) {
			struct event *e = evs[i].data.ptr;

			if (!e || e->dead)
				continue; /* wake fd: handled by run_posts */
			drain(e);
			e->fn(e->arg, evs[i].events);
		}
		reap(ev);
	}
	reap(ev);
	pthread_mutex_lock(&ev->post_lock);
	ev->stop = false;
	n = ev->status;
	pthread_mutex_unlock(&ev->post_lock);
	return n;
}
