/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The client half of the control socket (see ctl.h): ctl_call() connects to
 * RUNDIR/NAME/ctl.sock, sends one request line and copies the reply.  Used
 * by khyvectl and by tests.
 *
 * Threads: ctl_call() blocks (bounded by CTL_CALL_TIMEOUT_MS per socket
 * operation through SO_SNDTIMEO/SO_RCVTIMEO) and keeps no state, so any
 * thread may call it.  No locks.  ctl_default_rundir() (used when rundir is
 * NULL) is not thread-safe: pass an explicit rundir from threads.
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* Map a connect()/socket error to ctl_call's documented returns. */
static int ctl_call_errno(int err)
{
	switch (err) {
	case ENOENT:
	case ECONNREFUSED: /* a socket left by a killed khyve */
	case ENOTDIR:
		return -ENOENT;
	case EPERM:
	case EACCES:
		return -EACCES;
	case EAGAIN: /* SO_SNDTIMEO/SO_RCVTIMEO expired */
		return -ETIMEDOUT;
	default:
		return -err;
	}
}

static int ctl_call_valid(const char *cmdline)
{
	size_t i;

	if (!cmdline || !cmdline[0])
		return 0;
	for (i = 0; cmdline[i]; i++) {
		unsigned char ch = (unsigned char)cmdline[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return 0;
		if (i + 1 >= CTL_REQ_MAX) /* the newline must fit too */
			return 0;
	}
	return 1;
}

static int ctl_call_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = CTL_CALL_TIMEOUT_MS / 1000,
			     .tv_usec = (CTL_CALL_TIMEOUT_MS % 1000) * 1000};
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* Bounds connect() (unix sockets honour SO_SNDTIMEO), send, recv. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		goto fail;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno != EINTR)
			goto fail;
	}
	return fd;
fail:
	rc = ctl_call_errno(errno);
	close(fd);
	return rc;
}

/* Send the request line.  A server that closed early (it already replied
 * with an error) is not a failure: the reply is read next. */
static int ctl_call_send(int fd, const char *cmdline)
{
	size_t len = strlen(cmdline), off = 0;
	char *buf = malloc(len + 1);

	if (!buf)
		return -ENOMEM;
	memcpy(buf, cmdline, len);
	buf[len++] = '\n';
	while (off < len) {
		ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;

			free(buf);
			if (err == EPIPE || err == ECONNRESET)
				return 0;
			return ctl_call_errno(err);
		}
		off += (size_t)n;
	}
	free(buf);
	(void)shutdown(fd, SHUT_WR);
	return 0;
}

/* recv() with EINTR retried; ECONNRESET after a reply counts as the end. */
static ssize_t ctl_call_recv(int fd, char *buf, size_t len)
{
	ssize_t n;

	do
		n = recv(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == ECONNRESET)
		return 0;
	if (n < 0)
		return ctl_call_errno(errno);
	return n;
}

/* Parse "ok" / "err N" into *status.  0 or -EPROTO. */
static int ctl_call_status(const char *line, int *status)
{
	char *end;
	long v;

	if (strcmp(line, "ok") == 0) {
		*status = 0;
		return 0;
	}
	if (strncmp(line, "err ", 4) != 0 || line[4] < '1' || line[4] > '9')
		return -EPROTO;
	errno = 0;
	v = strtol(line + 4, &end, 10);
	if (errno || *end || v < 1 || v > 4095)
		return -EPROTO;
	*status = -(int)v;
	return 0;
}

static int ctl_call_reply(int fd, FILE *out, int *status)
{
	char buf[4096], line[32];
	size_t llen = 0;
	bool have_status = false;
	ssize_t n;
	int rc;

	while ((n = ctl_call_recv(fd, buf, sizeof(buf))) > 0) {
		char *p = buf;
		size_t len = (size_t)n;

		if (!have_status) {
			char *nl = memchr(buf, '\n', len);
			size_t take = nl ? (size_t)(nl - buf) : len;

			if (llen + take >= sizeof(line))
				return -EPROTO;
			memcpy(line + llen, buf, take);
			llen += take;
			if (!nl)
				continue;
			line[llen] = '\0';
			rc = ctl_call_status(line, status);
			if (rc)
				return rc;
			have_status = true;
			p = nl + 1;
			len -= take + 1;
		}
		if (len && out && fwrite(p, 1, len, out) != len)
			return -EIO;
	}
	if (n < 0)
		return (int)n;
	return have_status ? 0 : -ECONNRESET;
}

int ctl_call(const char *rundir, const char *name, const char *cmdline,
	     FILE *out, int *status)
{
	char path[PATH_MAX];
	int fd, rc, st = 0;

	if (!ctl_call_valid(cmdline))
		return -EINVAL;
	rc = ctl_sock_path(rundir, name, path, sizeof(path));
	if (rc)
		return rc;
	fd = ctl_call_connect(path);
	if (fd < 0)
		return fd;
	rc = ctl_call_send(fd, cmdline);
	if (rc == 0)
		rc = ctl_call_reply(fd, out, &st);
	close(fd);
	if (rc == 0 && status)
		*status = st;
	return rc;
}
