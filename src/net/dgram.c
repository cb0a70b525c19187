/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The "dgram" network backend: frames as messages on a UNIX datagram (or
 * seqpacket) socket, one Ethernet frame per message, no vnet header.  It
 * is the cheap VDE-style link: "backend=unix:/path" connects to a peer's
 * bound socket (a switch, another VM's relay, a test), "backend=fd:N"
 * uses an inherited socket (one end of a socketpair from a parent or a
 * device test).
 *
 * Threads: receive readiness through the VM event loop (net_fd_watch);
 * send and recv are single non-blocking syscalls, callable from the NIC's
 * threads.  No state besides the fd, so no lock.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/devmodel.h"
#include "lib/log.h"
#include "net/net_priv.h"

/* msghdr wants a mutable iovec pointer; sendmsg/recvmsg don't write it. */
static struct iovec *iov_mut(const struct iovec *iov)
{
	struct iovec *v;

	memcpy(&v, &iov, sizeof(v));
	return v;
}

static ssize_t dgram_send(struct net_backend *be, const struct iovec *iov,
			  int iovcnt)
{
	struct msghdr m = {.msg_iov = iov_mut(iov),
			   .msg_iovlen = (size_t)iovcnt};
	ssize_t n = sendmsg(be->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);

	return n < 0 ? -errno : n;
}

static ssize_t dgram_recv(struct net_backend *be, const struct iovec *iov,
			  int iovcnt)
{
	struct msghdr m = {.msg_iov = iov_mut(iov),
			   .msg_iovlen = (size_t)iovcnt};
	ssize_t n;

	for (;;) {
		n = recvmsg(be->fd, &m, MSG_DONTWAIT);
		if (n >= 0)
			return n; /* truncated frames: the rest is dropped */
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	}
}

static ssize_t dgram_peek_len(struct net_backend *be)
{
	char c;
	ssize_t n = recv(be->fd, &c, 1, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);

	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
}

static const struct net_backend_ops dgram_ops = {
	.type = "dgram",
	.send = dgram_send,
	.recv = dgram_recv,
	.peek_len = dgram_peek_len,
};

static int dgram_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("net backend \"unix:%s\": path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* autobind an abstract address so the peer can answer */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa_family_t)) ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "net backend \"unix:%s\"", path);
		close(fd);
		return rc;
	}
	return fd;
}

int net_dgram_open(struct net_backend **out, struct cfg_node *node,
		   const struct devctx *ctx, const char *path, int fd,
		   net_rx_cb cb, void *opaque)
{
	struct net_backend *be;
	int type = 0, rc;
	socklen_t len = sizeof(type);

	(void)node;
	if (fd < 0) {
		fd = dgram_connect(path);
		if (fd < 0)
			return fd;
	} else if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) ||
		   (type != SOCK_DGRAM && type != SOCK_SEQPACKET)) {
		log_err("net backend \"fd:%d\": not a tap or a datagram "
			"socket",
			fd);
		return -EINVAL;
	}
	be = net_backend_alloc(&dgram_ops, cb, opaque);
	if (!be) {
		if (path)
			close(fd);
		return -ENOMEM;
	}
	be->fd = fd;
	be->own_fd = path != NULL;
	rc = net_fd_watch(be, ctx ? ctx->ev : NULL);
	if (rc) {
		log_errno(LOG_ERR, -rc, "net backend \"%s%s\": cannot watch",
			  path ? "unix:" : "fd", path ? path : "");
		net_backend_close(be);
		return rc;
	}
	*out = be;
	return 0;
}
