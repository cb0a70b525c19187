/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The server half of the control socket (see ctl.h): claims RUNDIR/NAME with
 * a locked pid file, listens on RUNDIR/NAME/ctl.sock and serves one request
 * per connection on the VM's event loop.  Also the helpers both halves
 * share: name validation, RUNDIR resolution and socket paths.
 *
 * Threads: everything here runs on the event loop thread (or at start-up
 * before the loop runs); ctl_default_rundir() uses a static buffer.  No
 * locks.  Sockets are non-blocking; each connection has its own input and
 * output buffer, so a slow or silent client never stalls the loop, and an
 * idle timer drops connections that take too long.
 */
#include "ctl/ctl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "event/event.h"
#include "lib/log.h"

struct ctl_cmd {
	char name[CTL_CMD_MAX + 1];
	ctl_cmd_fn fn;
	void *arg;
};

struct ctl_conn {
	struct ctl *ctl;
	struct ctl_conn *prev, *next; /* ctl->conns, oldest first */
	int fd;
	struct event *ev;
	uint64_t deadline_ms;
	bool writing; /* request handled, sending 'out' */
	size_t in_len;
	char in[CTL_REQ_MAX];
	char *out;
	size_t out_len, out_off;
};

struct ctl {
	struct event_loop *loop;
	char *name;
	char *dir;	 /* RUNDIR/NAME */
	char *sock_path; /* RUNDIR/NAME/ctl.sock */
	int dir_fd;
	int lock_fd;
	int listen_fd;
	struct event *listen_ev;
	struct event *timer_ev;
	unsigned idle_ms;
	struct ctl_cmd *cmds;
	size_t ncmds;
	struct ctl_conn *conns, *conns_tail;
	unsigned nconns;
	int busy;	    /* > 0 while a handler runs */
	bool close_pending; /* ctl_close() called from a handler */
};

static const char *const ctl_builtins[] = {"help", "ping"};

/* ---- shared helpers ---------------------------------------------------- */

bool ctl_name_valid(const char *name)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.' || name[0] == '-')
		return false;
	for (i = 0; name[i]; i++) {
		unsigned char c = (unsigned char)name[i];

		if (i >= CTL_NAME_MAX)
			return false;
		if (c >= 0x80 || (!isalnum(c) && !strchr("_.:+@-", c)))
			return false;
	}
	return true;
}

static void ctl_strip_slashes(char *path)
{
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
}

const char *ctl_default_rundir(void)
{
	static char buf[PATH_MAX];
	const char *env = getenv("KHYVE_RUNDIR");

	if (env && env[0])
		snprintf(buf, sizeof(buf), "%s", env);
	else if (geteuid() == 0)
		snprintf(buf, sizeof(buf), "/run/khyve");
	else if ((env = getenv("XDG_RUNTIME_DIR")) && env[0] == '/')
		snprintf(buf, sizeof(buf), "%s/khyve", env);
	else
		snprintf(buf, sizeof(buf), "/tmp/khyve-%u",
			 (unsigned)geteuid());
	ctl_strip_slashes(buf);
	return buf;
}

/* RUNDIR without trailing slashes into buf (PATH_MAX). 0 or -ENAMETOOLONG */
static int ctl_rundir_copy(const char *rundir, char *buf, size_t len)
{
	int n;

	if (!rundir || !rundir[0])
		rundir = ctl_default_rundir();
	n = snprintf(buf, len, "%s", rundir);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	ctl_strip_slashes(buf);
	return 0;
}

int ctl_sock_path(const char *rundir, const char *name, char *buf, size_t len)
{
	struct sockaddr_un sun;
	char dir[PATH_MAX];
	int n, rc;

	if (!ctl_name_valid(name))
		return -EINVAL;
	rc = ctl_rundir_copy(rundir, dir, sizeof(dir));
	if (rc)
		return rc;
	n = snprintf(buf, len, "%s/%s/ctl.sock", dir, name);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* ---- claiming RUNDIR/NAME ---------------------------------------------- */

/* mkdir -p with mode 0700 for the components that are missing. */
static int ctl_mkdirs(const char *path)
{
	char buf[PATH_MAX];
	size_t i, len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		buf[i] = i == len ? '\0' : '/';
	}
	return 0;
}

/* RUNDIR exists, is ours (or root's) and nobody else can swap entries. */
static int ctl_check_rundir(const char *rundir)
{
	struct stat st;
	int rc;

	rc = ctl_mkdirs(rundir);
	if (rc) {
		log_errno(LOG_ERR, -rc, "rundir %s", rundir);
		return rc;
	}
	if (stat(rundir, &st) < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "rundir %s", rundir);
		return rc;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("rundir %s: not a directory", rundir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		log_err("rundir %s: owned by uid %u, not by us", rundir,
			(unsigned)st.st_uid);
		return -EPERM;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		log_err("rundir %s: writable by others and not sticky", rundir);
		return -EPERM;
	}
	return 0;
}

/* Open RUNDIR/NAME (creating it) as a directory fd that is ours, 0700. */
static int ctl_open_vmdir(const char *dir)
{
	struct stat st;
	int fd, rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s", dir);
		return rc;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ELOOP || rc == -ENOTDIR)
			log_err("%s: not a directory", dir);
		else if (rc != -ENOENT)
			log_errno(LOG_ERR, -rc, "%s", dir);
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s", dir);
		goto fail;
	}
	if (st.st_uid != geteuid()) {
		log_err("%s: owned by uid %u, not by us", dir,
			(unsigned)st.st_uid);
		rc = -EPERM;
		goto fail;
	}
	if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700) < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s", dir);
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return rc;
}

/* The pid written in a lock holder's pid file, or -1 when unknown. */
static long ctl_read_pid(int fd)
{
	char buf[32];
	int tries;

	/* The holder writes its pid right after locking: allow it ~100ms. */
	for (tries = 0; tries < 20; tries++) {
		ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
		char *end;
		long pid;

		if (n > 0) {
			buf[n] = '\0';
			pid = strtol(buf, &end, 10);
			if (end != buf && pid > 0 &&
			    (*end == '\n' || *end == '\0'))
				return pid;
		}
		usleep(5000);
	}
	return -1;
}

static int ctl_write_pid(int fd, const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	ssize_t w;

	if (ftruncate(fd, 0) < 0)
		goto fail;
	w = pwrite(fd, buf, (size_t)n, 0);
	if (w == n)
		return 0;
	if (w >= 0)
		errno = EIO;
fail:
	w = errno;
	log_errno(LOG_ERR, (int)w, "%s", path);
	return -(int)w;
}

/*
 * Lock RUNDIR/NAME/pid.  The loop handles a racing ctl_close() of the
 * previous owner: it unlinks the pid file and removes the directory while
 * still holding the lock, so a lock taken on an unlinked file, or a
 * directory that vanished, means "start over".
 */
/* One attempt: 0 locked, 1 try again, or -errno (logged). */
static int ctl_lock_once(struct ctl *ctl, const char *path)
{
	struct stat a, b;
	long pid;
	int rc;

	if (ctl->dir_fd < 0) {
		ctl->dir_fd = ctl_open_vmdir(ctl->dir);
		if (ctl->dir_fd == -ENOENT)
			return 1; /* removed between mkdir and open */
		if (ctl->dir_fd < 0)
			return ctl->dir_fd;
	}
	ctl->lock_fd = openat(
		ctl->dir_fd, "pid",
		O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (ctl->lock_fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			return 1; /* the directory was removed */
		log_errno(LOG_ERR, -rc, "%s", path);
		return rc;
	}
	if (flock(ctl->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = -errno;
		if (rc != -EWOULDBLOCK) {
			log_errno(LOG_ERR, -rc, "%s: flock", path);
			return rc;
		}
		pid = ctl_read_pid(ctl->lock_fd);
		if (pid > 0)
			log_err("vm %s is already running (pid %ld)", ctl->name,
				pid);
		else
			log_err("vm %s is already running", ctl->name);
		return -EEXIST;
	}
	if (fstat(ctl->lock_fd, &a) < 0 ||
	    fstatat(ctl->dir_fd, "pid", &b, AT_SYMLINK_NOFOLLOW) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return 1; /* locked a file that was unlinked meanwhile */
	if (!S_ISREG(a.st_mode)) {
		log_err("%s: not a regular file", path);
		return -EINVAL;
	}
	return ctl_write_pid(ctl->lock_fd, path);
}

static int ctl_lock(struct ctl *ctl)
{
	char path[PATH_MAX];
	int tries, rc;

	snprintf(path, sizeof(path), "%s/pid", ctl->dir);
	for (tries = 0; tries < 50; tries++) {
		rc = ctl_lock_once(ctl, path);
		if (rc <= 0)
			return rc;
		if (ctl->lock_fd >= 0)
			close(ctl->lock_fd);
		if (ctl->dir_fd >= 0)
			close(ctl->dir_fd);
		ctl->lock_fd = ctl->dir_fd = -1;
	}
	log_err("%s: could not take the lock (racing starts?)", path);
	return -EAGAIN;
}

/* ---- connections -------------------------------------------------------- */

static uint64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ctl_conn_free(struct ctl_conn *c)
{
	struct ctl *ctl = c->ctl;

	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		ctl->conns_tail = c->prev;
	ctl->nconns--;
	event_del(c->ev);
	close(c->fd);
	free(c->out);
	free(c);
}

/* Send what is pending.  Returns 1 when all is sent, 0 (EAGAIN) or -errno */
static int ctl_conn_flush(struct ctl_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		c->out_off += (size_t)n;
	}
	return 1;
}

/* Queue the reply and start sending it; frees the connection when done. */
static void ctl_conn_reply(struct ctl_conn *c, int rc, char *text, size_t len)
{
	char head[32];
	size_t hlen;
	int done;

	if (rc == 0)
		hlen = (size_t)snprintf(head, sizeof(head), "ok\n");
	else
		hlen = (size_t)snprintf(head, sizeof(head), "err %d\n", -rc);
	c->out = malloc(hlen + len);
	if (!c->out) {
		/* Best effort: the status line alone. */
		(void)send(c->fd, "err 12\n", 7, MSG_NOSIGNAL | MSG_DONTWAIT);
		ctl_conn_free(c);
		return;
	}
	memcpy(c->out, head, hlen);
	if (len)
		memcpy(c->out + hlen, text, len);
	c->out_len = hlen + len;
	c->out_off = 0;
	c->writing = true;
	if (c->ctl->close_pending)
		return; /* ctl_close_now() sends it after removing the dir */
	done = ctl_conn_flush(c);
	if (done != 0 || event_mod_fd(c->ev, EPOLLOUT) < 0)
		ctl_conn_free(c);
}

static void ctl_conn_error(struct ctl_conn *c, int rc, const char *msg)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "%s\n", msg);

	ctl_conn_reply(c, rc, buf, n > 0 ? (size_t)n : 0);
}

static int ctl_cmd_valid(const char *cmd, size_t len)
{
	size_t i;

	if (len == 0 || len > CTL_CMD_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)cmd[i];

		if (!(ch >= 'a' && ch <= 'z') && !(ch >= '0' && ch <= '9') &&
		    ch != '-' && ch != '_')
			return 0;
	}
	return 1;
}

static int ctl_builtin_help(struct ctl *ctl, FILE *out)
{
	const char **names;
	size_t i, j, n = ctl->ncmds + 2;

	names = calloc(n, sizeof(*names));
	if (!names)
		return -ENOMEM;
	names[0] = ctl_builtins[0];
	names[1] = ctl_builtins[1];
	for (i = 0; i < ctl->ncmds; i++)
		names[i + 2] = ctl->cmds[i].name;
	/* insertion sort: a handful of names */
	for (i = 1; i < n; i++) {
		const char *t = names[i];

		for (j = i; j > 0 && strcmp(names[j - 1], t) > 0; j--)
			names[j] = names[j - 1];
		names[j] = t;
	}
	for (i = 0; i < n; i++)
		fprintf(out, "%s\n", names[i]);
	free(names);
	return 0;
}

/* Run one command; the reply text goes to 'out'.  0 or -errno. */
static int ctl_run(struct ctl *ctl, const char *cmd, const char *args,
		   FILE *out)
{
	size_t i;
	int rc;

	if (strcmp(cmd, "ping") == 0) {
		fputs("pong\n", out);
		return 0;
	}
	if (strcmp(cmd, "help") == 0)
		return ctl_builtin_help(ctl, out);
	for (i = 0; i < ctl->ncmds; i++) {
		if (strcmp(ctl->cmds[i].name, cmd) != 0)
			continue;
		ctl->busy++;
		rc = ctl->cmds[i].fn(ctl->cmds[i].arg, args, out);
		ctl->busy--;
		if (rc > 0 || rc < -4095) {
			log_warn("ctl: handler of '%s' returned %d", cmd, rc);
			rc = -EIO;
		}
		return rc;
	}
	fprintf(out, "unknown command '%s' (try 'help')\n", cmd);
	return -ENOSYS;
}

static void ctl_close_now(struct ctl *ctl);

/* A whole request line is in c->in[0..len). Validate, run, reply. */
static void ctl_conn_request(struct ctl_conn *c, size_t len)
{
	struct ctl *ctl = c->ctl;
	char *line = c->in, *args, *text = NULL;
	size_t cmdlen, i, tlen = 0;
	FILE *out;
	int rc;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			ctl_conn_error(c, -EINVAL,
				       "request holds control characters");
			return;
		}
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	line[len] = '\0'; /* len < CTL_REQ_MAX: the newline's slot or EOF */
	cmdlen = strcspn(line, " \t");
	if (!ctl_cmd_valid(line, cmdlen)) {
		ctl_conn_error(c, -EINVAL,
			       len ? "malformed command word"
				   : "empty request");
		return;
	}
	args = line + cmdlen;
	if (*args)
		*args++ = '\0';
	args += strspn(args, " \t");

	out = open_memstream(&text, &tlen);
	if (!out) {
		ctl_conn_error(c, -ENOMEM, "out of memory");
		return;
	}
	rc = ctl_run(ctl, line, args, out);
	if (fclose(out) != 0 && rc == 0)
		rc = -ENOMEM;
	if (rc < 0 && tlen == 0) {
		free(text);
		text = NULL;
		ctl_conn_error(c, rc, strerror(-rc));
	} else {
		ctl_conn_reply(c, rc, text, tlen);
	}
	free(text);
	/* 'c' may be gone now. */
	if (ctl->close_pending && ctl->busy == 0)
		ctl_close_now(ctl);
}

/* Read what is there; act on a complete line, overflow or end of file. */
static void ctl_conn_read(struct ctl_conn *c)
{
	for (;;) {
		size_t room = sizeof(c->in) - c->in_len;
		char *nl;
		ssize_t n;

		if (room == 0) {
			ctl_conn_error(c, -EMSGSIZE, "request too long");
			return;
		}
		n = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			ctl_conn_free(c);
			return;
		}
		if (n == 0) {
			if (c->in_len == 0) {
				ctl_conn_free(c);
				return;
			}
			ctl_conn_request(c, c->in_len);
			return;
		}
		nl = memchr(c->in + c->in_len, '\n', (size_t)n);
		c->in_len += (size_t)n;
		if (nl) {
			ctl_conn_request(c, (size_t)(nl - c->in));
			return;
		}
	}
}

static void ctl_conn_cb(void *arg, uint32_t events)
{
	struct ctl_conn *c = arg;
	int rc;

	if (!c->writing) {
		ctl_conn_read(c);
		return;
	}
	rc = ctl_conn_flush(c);
	if (rc != 0 || (events & (EPOLLERR | EPOLLHUP)))
		ctl_conn_free(c);
}

static void ctl_timer_cb(void *arg, uint32_t events)
{
	struct ctl *ctl = arg;
	struct ctl_conn *c, *next;
	uint64_t now = ctl_now_ms();

	(void)events;
	for (c = ctl->conns; c; c = next) {
		next = c->next;
		if (now >= c->deadline_ms) {
			log_debug("ctl %s: dropping a connection (timeout)",
				  ctl->name);
			ctl_conn_free(c);
		}
	}
	if (!ctl->conns) {
		event_del(ctl->timer_ev); /* safe from its own callback */
		ctl->timer_ev = NULL;
	}
}

static int ctl_timer_start(struct ctl *ctl)
{
	uint64_t period = ctl->idle_ms / 4;

	if (ctl->timer_ev)
		return 0;
	if (period < 10)
		period = 10;
	if (period > 1000)
		period = 1000;
	return event_add_timer(ctl->loop, period * 1000000ULL, ctl_timer_cb,
			       ctl, &ctl->timer_ev);
}

/* Make room for one more connection: drop the oldest one still reading. */
static bool ctl_evict(struct ctl *ctl)
{
	struct ctl_conn *c;

	for (c = ctl->conns; c; c = c->next) {
		if (!c->writing) {
			log_ratelimited(5000,
					"ctl %s: too many connections, "
					"dropping the oldest",
					ctl->name);
			ctl_conn_free(c);
			return true;
		}
	}
	return false;
}

static void ctl_accept_one(struct ctl *ctl, int fd)
{
	struct ctl_conn *c;

	if (ctl->nconns >= CTL_MAX_CONNS && !ctl_evict(ctl)) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->ctl = ctl;
	c->fd = fd;
	c->deadline_ms = ctl_now_ms() + ctl->idle_ms;
	if (event_add_fd(ctl->loop, fd, EPOLLIN, ctl_conn_cb, c, &c->ev) < 0)
		goto fail;
	c->prev = ctl->conns_tail;
	if (ctl->conns_tail)
		ctl->conns_tail->next = c;
	else
		ctl->conns = c;
	ctl->conns_tail = c;
	ctl->nconns++;
	if (ctl_timer_start(ctl) < 0)
		log_ratelimited(5000, "ctl %s: cannot start the idle timer",
				ctl->name);
	return;
fail:
	log_ratelimited(5000, "ctl %s: out of memory for a connection",
			ctl->name);
	free(c);
	close(fd);
}

static void ctl_accept_cb(void *arg, uint32_t events)
{
	struct ctl *ctl = arg;
	int i;

	(void)events;
	/* A bounded batch, so a connect storm cannot hog the loop. */
	for (i = 0; i < CTL_MAX_CONNS; i++) {
		int fd = accept4(ctl->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				log_ratelimited(5000, "ctl %s: accept: %s",
						ctl->name, strerror(errno));
				/* free a descriptor for the next round */
				ctl_evict(ctl);
			}
			return;
		}
		ctl_accept_one(ctl, fd);
	}
}

/* ---- public API ---------------------------------------------------------- */

static int ctl_listen(struct ctl *ctl)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int rc;

	if (unlinkat(ctl->dir_fd, "ctl.sock", 0) < 0 && errno != ENOENT) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s", ctl->sock_path);
		return rc;
	}
	ctl->listen_fd =
		socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->listen_fd < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: socket", ctl->sock_path);
		return rc;
	}
	memcpy(sun.sun_path, ctl->sock_path, strlen(ctl->sock_path) + 1);
	if (bind(ctl->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    fchmodat(ctl->dir_fd, "ctl.sock", 0600, 0) < 0 ||
	    listen(ctl->listen_fd, CTL_MAX_CONNS) < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s", ctl->sock_path);
		return rc;
	}
	rc = event_add_fd(ctl->loop, ctl->listen_fd, EPOLLIN, ctl_accept_cb,
			  ctl, &ctl->listen_ev);
	if (rc)
		log_errno(LOG_ERR, -rc, "%s: event loop", ctl->sock_path);
	return rc;
}

int ctl_open(struct event_loop *ev, const char *rundir, const char *name,
	     struct ctl **out)
{
	char rd[PATH_MAX], path[PATH_MAX];
	struct ctl *ctl;
	int rc;

	if (!ctl_name_valid(name)) {
		log_err("vm name '%s' is not valid (1-%d of A-Z a-z 0-9 "
			"_ . : + @ -, not starting with '.' or '-')",
			name ? name : "", CTL_NAME_MAX);
		return -EINVAL;
	}
	rc = ctl_rundir_copy(rundir, rd, sizeof(rd));
	if (rc == 0)
		rc = ctl_sock_path(rd, name, path, sizeof(path));
	if (rc) {
		log_err("vm %s: rundir %s: path of the control socket is too "
			"long",
			name, rd);
		return rc;
	}
	rc = ctl_check_rundir(rd);
	if (rc)
		return rc;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->loop = ev;
	ctl->dir_fd = ctl->lock_fd = ctl->listen_fd = -1;
	ctl->idle_ms = CTL_IDLE_MS;
	ctl->name = strdup(name);
	ctl->sock_path = strdup(path);
	ctl->dir = strdup(path);
	if (!ctl->name || !ctl->sock_path || !ctl->dir) {
		rc = -ENOMEM;
		goto fail;
	}
	*strrchr(ctl->dir, '/') = '\0';

	rc = ctl_lock(ctl);
	if (rc)
		goto fail;
	rc = ctl_listen(ctl);
	if (rc)
		goto fail_owned;
	*out = ctl;
	return 0;

fail_owned:
	ctl_close_now(ctl); /* we own the directory: leave nothing behind */
	return rc;
fail:
	if (ctl->lock_fd >= 0)
		close(ctl->lock_fd);
	if (ctl->dir_fd >= 0)
		close(ctl->dir_fd);
	free(ctl->name);
	free(ctl->sock_path);
	free(ctl->dir);
	free(ctl);
	return rc;
}

int ctl_register(struct ctl *ctl, const char *cmd, ctl_cmd_fn fn, void *arg)
{
	struct ctl_cmd *cmds;
	size_t i, len;

	if (!ctl || !cmd || !fn)
		return -EINVAL;
	len = strlen(cmd);
	if (!ctl_cmd_valid(cmd, len))
		return -EINVAL;
	for (i = 0; i < sizeof(ctl_builtins) / sizeof(ctl_builtins[0]); i++)
		if (strcmp(ctl_builtins[i], cmd) == 0)
			return -EEXIST;
	for (i = 0; i < ctl->ncmds; i++)
		if (strcmp(ctl->cmds[i].name, cmd) == 0)
			return -EEXIST;
	cmds = realloc(ctl->cmds, (ctl->ncmds + 1) * sizeof(*cmds));
	if (!cmds)
		return -ENOMEM;
	ctl->cmds = cmds;
	memcpy(cmds[ctl->ncmds].name, cmd, len + 1);
	cmds[ctl->ncmds].fn = fn;
	cmds[ctl->ncmds].arg = arg;
	ctl->ncmds++;
	return 0;
}

void ctl_set_idle_timeout(struct ctl *ctl, unsigned ms)
{
	ctl->idle_ms = ms ? ms : CTL_IDLE_MS;
	if (ctl->timer_ev) {
		/* restart it with the new period */
		event_del(ctl->timer_ev);
		ctl->timer_ev = NULL;
		if (ctl->conns && ctl_timer_start(ctl) < 0)
			log_warn("ctl %s: cannot restart the idle timer",
				 ctl->name);
	}
}

/*
 * Order matters: the name disappears (socket, pid file, directory) while
 * the lock is held and before clients see their connection end, so a
 * client that got its reply finds the VM gone, and a new khyve taking the
 * name never races with our unlinks.
 */
static void ctl_close_now(struct ctl *ctl)
{
	event_del(ctl->timer_ev);
	event_del(ctl->listen_ev);
	if (ctl->listen_fd >= 0)
		close(ctl->listen_fd);
	if (ctl->dir_fd >= 0) {
		(void)unlinkat(ctl->dir_fd, "ctl.sock", 0);
		(void)unlinkat(ctl->dir_fd, "pid", 0);
		(void)rmdir(ctl->dir);
		close(ctl->dir_fd);
	}
	while (ctl->conns) {
		struct ctl_conn *c = ctl->conns;

		if (c->writing)
			(void)ctl_conn_flush(c); /* one last try */
		ctl_conn_free(c);
	}
	if (ctl->lock_fd >= 0)
		close(ctl->lock_fd);
	free(ctl->cmds);
	free(ctl->name);
	free(ctl->sock_path);
	free(ctl->dir);
	free(ctl);
}

void ctl_close(struct ctl *ctl)
{
	if (!ctl)
		return;
	if (ctl->busy) {
		/* From inside a handler: finish once the reply is queued. */
		ctl->close_pending = true;
		return;
	}
	ctl_close_now(ctl);
}
