/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * UART backends (see uart_backend.h): stdio, a tty device path, and a
 * one-client TCP server.  This file owns the host fds of a UART, the raw
 * mode of the controlling tty (restored at close and at exit) and the
 * "stdio is taken" flag.
 *
 * Non-blocking I/O without disturbing other users of a file: stdin and
 * stdout usually share one open file description with stderr (the
 * terminal), so setting O_NONBLOCK on them would also make our log writes
 * fail with EAGAIN.  Instead a tty or pipe is re-opened through
 * /proc/self/fd/N, which gives us a file description of our own that we
 * make non-blocking.  When that is impossible (sockets, regular files)
 * we keep a dup and poll for POLLOUT before each (single byte) write.
 *
 * Threads and locks: uart_backend_write() runs on vCPU threads with the
 * uart mutex held; every other callback runs on the event-loop thread.
 * be->lock protects the TCP client fd against the loop thread closing it
 * while a vCPU writes; it is taken after the uart mutex.  'stdio_lock'
 * protects the process-wide stdio state.
 */
#include "hw/uart_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "event/event.h"
#include "hw/uart.h"
#include "lib/log.h"

enum be_kind { BE_STDIO, BE_TTY, BE_TCP };

struct uart_backend {
	enum be_kind kind;
	struct uart *uart;
	struct event_loop *ev;
	char *key;  /* config key, for messages */
	char *desc; /* the value, for messages */

	int rfd;     /* input; for TCP the client (-1 when none) */
	int wfd;     /* output; == rfd for tty and TCP */
	bool wguard; /* poll before writing: wfd may block */
	struct event *rx_ev;
	bool rx_paused;	   /* loop thread */
	int resume_posted; /* atomic */

	int lfd; /* TCP listening socket */
	struct event *l_ev;
	uint16_t port;

	pthread_mutex_t lock; /* wfd/rfd of the TCP client */
	uint64_t dropped;     /* atomic */

	bool tty_raw; /* BE_TTY: 'tio' holds the settings to restore */
	struct termios tio;
};

/* ---- stdio / tty state ---- */

static pthread_mutex_t stdio_lock = PTHREAD_MUTEX_INITIALIZER;
static bool stdio_in_use;
static bool stdio_raw;
static bool stdio_atexit_set;
static struct termios stdio_orig;

static void stdio_restore(void)
{
	pthread_mutex_lock(&stdio_lock);
	if (stdio_raw) {
		(void)tcsetattr(STDIN_FILENO, TCSADRAIN, &stdio_orig);
		stdio_raw = false;
		log_set_raw(false);
	}
	pthread_mutex_unlock(&stdio_lock);
}

static void stdio_atexit(void)
{
	stdio_restore();
}

static int tty_make_raw(int fd, struct termios *saved)
{
	struct termios t;

	if (tcgetattr(fd, saved) < 0)
		return -errno;
	t = *saved;
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL; /* never wait for carrier */
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		return -errno;
	return 0;
}

/* Is 'fd' the same terminal as stdin? */
static bool same_tty_as_stdin(int fd)
{
	struct stat a, b;

	if (!isatty(fd) || fstat(STDIN_FILENO, &a) < 0 || fstat(fd, &b) < 0)
		return false;
	return S_ISCHR(a.st_mode) && S_ISCHR(b.st_mode) &&
	       a.st_rdev == b.st_rdev;
}

/* Put stdin's tty in raw mode and remember how to undo it. */
static int stdio_make_raw(void)
{
	int rc;

	pthread_mutex_lock(&stdio_lock);
	rc = tty_make_raw(STDIN_FILENO, &stdio_orig);
	if (rc == 0) {
		stdio_raw = true;
		if (!stdio_atexit_set && atexit(stdio_atexit) == 0)
			stdio_atexit_set = true;
		/* Our log lines now need "\r\n" on that terminal. */
		if (same_tty_as_stdin(STDOUT_FILENO) ||
		    same_tty_as_stdin(STDERR_FILENO))
			log_set_raw(true);
	}
	pthread_mutex_unlock(&stdio_lock);
	return rc;
}

/*
 * A descriptor for 'fd' with a file description of its own, non-blocking
 * (see the file comment).  *guard is set when we only got a plain dup.
 */
static int reopen_nonblock(int fd, int flags, bool *guard)
{
	struct stat st;
	char p[32];
	int nfd;

	if (fstat(fd, &st) == 0 &&
	    (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		nfd = open(p, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (nfd >= 0) {
			*guard = false;
			return nfd;
		}
	}
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return -errno;
	*guard = true;
	return nfd;
}

/* ---- output ---- */

static size_t write_some(struct uart_backend *be, int fd, const uint8_t *buf,
			 size_t n)
{
	size_t done = 0;
	ssize_t w;

	while (done < n) {
		size_t chunk = n - done;

		if (be->wguard) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};

			if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))
				break;
			chunk = 1; /* POLLOUT promises room for one byte */
		}
		if (be->kind == BE_TCP)
			w = send(fd, buf + done, chunk,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			w = write(fd, buf + done, chunk);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	return done;
}

void uart_backend_write(struct uart_backend *be, const uint8_t *buf, size_t n)
{
	size_t done = 0;

	if (!be || n == 0)
		return;
	if (be->kind == BE_TCP) {
		pthread_mutex_lock(&be->lock);
		if (be->wfd >= 0)
			done = write_some(be, be->wfd, buf, n);
		else
			done = n; /* no client: output goes nowhere */
		pthread_mutex_unlock(&be->lock);
	} else {
		done = write_some(be, be->wfd, buf, n);
	}
	if (done < n) {
		__atomic_fetch_add(&be->dropped, n - done, __ATOMIC_RELAXED);
		log_ratelimited(10000,
				"%s: %s: output dropped (host side not "
				"keeping up)",
				be->key, be->desc);
	}
}

uint64_t uart_backend_dropped(const struct uart_backend *be)
{
	return __atomic_load_n(&be->dropped, __ATOMIC_RELAXED);
}

uint16_t uart_backend_tcp_port(const struct uart_backend *be)
{
	return be->kind == BE_TCP ? be->port : 0;
}

/* ---- input ---- */

static void tcp_drop_client(struct uart_backend *be)
{
	int fd;

	event_del(be->rx_ev);
	be->rx_ev = NULL;
	be->rx_paused = false;
	pthread_mutex_lock(&be->lock);
	fd = be->rfd;
	be->rfd = be->wfd = -1;
	pthread_mutex_unlock(&be->lock);
	if (fd >= 0)
		close(fd);
}

/* The input side hung up or failed: stop watching it for good. */
static void rx_gone(struct uart_backend *be)
{
	if (be->kind == BE_TCP) {
		tcp_drop_client(be);
		return;
	}
	log_debug("%s: %s: end of input", be->key, be->desc);
	event_del(be->rx_ev);
	be->rx_ev = NULL;
	be->rx_paused = false;
}

static void rx_cb(void *arg, uint32_t events)
{
	struct uart_backend *be = arg;
	uint8_t buf[64];
	size_t room = uart_rx_room(be->uart);
	ssize_t n;

	if (room == 0) {
		/* A hang-up is reported even with an empty mask; treat it
		 * as the end of input rather than spin on it. */
		if (events & (EPOLLHUP | EPOLLERR)) {
			rx_gone(be);
			return;
		}
		if (event_mod_fd(be->rx_ev, 0) == 0)
			be->rx_paused = true;
		return;
	}
	if (room > sizeof(buf))
		room = sizeof(buf);
	n = read(be->rfd, buf, room);
	if (n > 0) {
		/* Only this thread adds bytes and the guest only frees room,
		 * so everything fits. */
		(void)uart_rx_push(be->uart, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	rx_gone(be); /* EOF, or EIO on a hung-up tty */
}

static void resume_cb(void *arg, uint32_t events)
{
	struct uart_backend *be = arg;

	(void)events;
	__atomic_store_n(&be->resume_posted, 0, __ATOMIC_RELEASE);
	if (be->rx_ev && be->rx_paused && event_mod_fd(be->rx_ev, EPOLLIN) == 0)
		be->rx_paused = false;
}

void uart_backend_rx_resume(struct uart_backend *be)
{
	if (!be || !be->ev)
		return;
	if (__atomic_exchange_n(&be->resume_posted, 1, __ATOMIC_ACQ_REL))
		return;
	if (event_post(be->ev, resume_cb, be) < 0)
		__atomic_store_n(&be->resume_posted, 0, __ATOMIC_RELEASE);
}

/* Start reading 'be->rfd'.  An fd epoll cannot watch (a regular file,
 * /dev/null) simply gives no input. */
static int watch_input(struct uart_backend *be)
{
	int rc;

	if (!be->ev)
		return 0;
	rc = event_add_fd(be->ev, be->rfd, EPOLLIN, rx_cb, be, &be->rx_ev);
	if (rc == -EPERM) {
		log_debug("%s: %s: input cannot be polled; ignoring it",
			  be->key, be->desc);
		return 0;
	}
	if (rc)
		log_errno(LOG_ERR, -rc, "%s: %s: cannot watch input", be->key,
			  be->desc);
	return rc;
}

/* ---- stdio ---- */

static int open_stdio(struct uart_backend *be)
{
	bool guard;
	int rc;

	pthread_mutex_lock(&stdio_lock);
	if (stdio_in_use) {
		pthread_mutex_unlock(&stdio_lock);
		log_err("%s: stdio: already used by another device", be->key);
		return -EBUSY;
	}
	stdio_in_use = true;
	pthread_mutex_unlock(&stdio_lock);

	rc = reopen_nonblock(STDIN_FILENO, O_RDONLY, &guard);
	if (rc >= 0) {
		be->rfd = rc;
		rc = reopen_nonblock(STDOUT_FILENO, O_WRONLY, &be->wguard);
	}
	if (rc >= 0) {
		be->wfd = rc;
		rc = 0;
		if (isatty(STDIN_FILENO))
			rc = stdio_make_raw();
	}
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: stdio", be->key);
		goto fail;
	}
	rc = watch_input(be);
	if (rc)
		goto fail;
	return 0;
fail:
	stdio_restore();
	pthread_mutex_lock(&stdio_lock);
	stdio_in_use = false;
	pthread_mutex_unlock(&stdio_lock);
	return rc;
}

/* ---- tty device ---- */

static int open_tty(struct uart_backend *be, const char *path)
{
	char *real;
	int fd, rc;

	real = realpath(path, NULL);
	if (real &&
	    (!strcmp(real, "/dev/ptmx") || !strcmp(real, "/dev/pts/ptmx"))) {
		free(real);
		log_err("%s: %s: a pty master; give an existing tty such as "
			"/dev/pts/N",
			be->key, path);
		return -EINVAL;
	}
	free(real);
	fd = open(path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: %s", be->key, path);
		return rc;
	}
	if (!isatty(fd)) {
		close(fd);
		log_err("%s: %s: not a tty", be->key, path);
		return -ENOTTY;
	}
	be->rfd = be->wfd = fd;
	rc = tty_make_raw(fd, &be->tio);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: %s: cannot set raw mode", be->key,
			  path);
		goto fail;
	}
	be->tty_raw = true;
	rc = watch_input(be);
	if (rc)
		goto fail;
	return 0;
fail:
	if (be->tty_raw)
		(void)tcsetattr(fd, TCSANOW, &be->tio);
	be->tty_raw = false;
	close(fd);
	be->rfd = be->wfd = -1;
	return rc;
}

/* ---- TCP ---- */

static void accept_cb(void *arg, uint32_t events)
{
	struct uart_backend *be = arg;
	int fd, one = 1;

	(void)events;
	fd = accept4(be->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (be->rfd >= 0) {
		close(fd); /* one client at a time */
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (event_add_fd(be->ev, fd, EPOLLIN, rx_cb, be, &be->rx_ev) < 0) {
		close(fd);
		return;
	}
	be->rx_paused = false;
	pthread_mutex_lock(&be->lock);
	be->rfd = be->wfd = fd;
	pthread_mutex_unlock(&be->lock);
}

/* Split "tcp=host:port" / "tcp=[v6]:port".  0 or -EINVAL. */
static int tcp_split(const char *spec, char *host, size_t hostsz, char *port,
		     size_t portsz)
{
	const char *s = spec + 4, *hend, *p;
	size_t hlen;

	if (*s == '[') {
		hend = strchr(s, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		s++;
		p = hend + 2;
	} else {
		hend = strrchr(s, ':');
		if (!hend || memchr(s, ':', (size_t)(hend - s)))
			return -EINVAL; /* none, or a bare IPv6 address */
		p = hend + 1;
	}
	hlen = (size_t)(hend - s);
	if (hlen == 0 || hlen >= hostsz || !*p || strlen(p) >= portsz ||
	    strspn(p, "0123456789") != strlen(p) ||
	    strtoul(p, NULL, 10) > 65535)
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	strcpy(port, p);
	return 0;
}

static int open_tcp(struct uart_backend *be, const char *spec)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICHOST |
					     AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[8];
	int fd = -1, one = 1, rc;

	if (tcp_split(spec, host, sizeof(host), port, sizeof(port))) {
		log_err("%s: %s: expected tcp=ip:port or tcp=[ipv6]:port",
			be->key, spec);
		return -EINVAL;
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		log_err("%s: %s: %s", be->key, spec, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: %s", be->key, spec);
		goto fail;
	}
	be->port = ntohs(ss.ss_family == AF_INET6
				 ? ((struct sockaddr_in6 *)&ss)->sin6_port
				 : ((struct sockaddr_in *)&ss)->sin_port);
	be->lfd = fd;
	if (be->ev) {
		rc = event_add_fd(be->ev, fd, EPOLLIN, accept_cb, be,
				  &be->l_ev);
		if (rc) {
			log_errno(LOG_ERR, -rc, "%s: %s: cannot watch socket",
				  be->key, spec);
			be->lfd = -1;
			goto fail;
		}
	}
	freeaddrinfo(ai);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

/* ---- open / close ---- */

int uart_backend_open(struct uart *u, struct event_loop *ev, const char *path,
		      const char *key, struct uart_backend **out)
{
	struct uart_backend *be;
	int rc;

	if (!path || !*path) {
		log_err("%s: empty value (expected stdio, a tty path or "
			"tcp=ip:port)",
			key);
		return -EINVAL;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	be->uart = u;
	be->ev = ev;
	be->rfd = be->wfd = be->lfd = -1;
	pthread_mutex_init(&be->lock, NULL);
	be->key = strdup(key);
	be->desc = strdup(path);
	if (!be->key || !be->desc) {
		rc = -ENOMEM;
		goto fail;
	}
	if (!strcmp(path, "stdio")) {
		be->kind = BE_STDIO;
		rc = open_stdio(be);
	} else if (!strncmp(path, "tcp=", 4)) {
		be->kind = BE_TCP;
		rc = open_tcp(be, path);
	} else {
		be->kind = BE_TTY;
		rc = open_tty(be, path);
	}
	if (rc)
		goto fail;
	*out = be;
	return 0;
fail:
	if (be->rfd >= 0)
		close(be->rfd);
	if (be->wfd >= 0 && be->wfd != be->rfd)
		close(be->wfd);
	pthread_mutex_destroy(&be->lock);
	free(be->key);
	free(be->desc);
	free(be);
	return rc;
}

void uart_backend_close(struct uart_backend *be)
{
	if (!be)
		return;
	event_del(be->rx_ev);
	event_del(be->l_ev);
	if (be->kind == BE_TTY && be->tty_raw)
		(void)tcsetattr(be->rfd, TCSADRAIN, &be->tio);
	if (be->rfd >= 0)
		close(be->rfd);
	if (be->wfd >= 0 && be->wfd != be->rfd)
		close(be->wfd);
	if (be->lfd >= 0)
		close(be->lfd);
	if (be->kind == BE_STDIO) {
		stdio_restore();
		pthread_mutex_lock(&stdio_lock);
		stdio_in_use = false;
		pthread_mutex_unlock(&stdio_lock);
	}
	pthread_mutex_destroy(&be->lock);
	free(be->key);
	free(be->desc);
	free(be);
}
