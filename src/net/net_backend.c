/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The network backend core: choosing a backend from a NIC's config node
 * (bhyve's rules: "backend" names it, "type" is inferred unless given),
 * the generic send/recv wrappers (including the virtio-net header for
 * backends that don't carry one), the fd watch used by tap and datagram
 * backends, MAC addresses (parsing, bhyve's derivation) and the legacy
 * option string of the NIC models.
 *
 * Threads: see net_backend.h.  The fd watch callback runs on the event
 * loop thread; rx_on is atomic so a NIC may pause and resume receive
 * callbacks from any thread (event_mod_fd() is thread-safe).
 */
#include <errno.h>
#include <md5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/devmodel.h"
#include "event/event.h"
#include "lib/log.h"
#include "net/net_priv.h"
#include "virtio/virtio.h"

#define NET_MAX_IOV 1024

struct net_backend *net_backend_alloc(const struct net_backend_ops *ops,
				      net_rx_cb cb, void *opaque)
{
	struct net_backend *be = calloc(1, sizeof(*be));

	if (!be)
		return NULL;
	be->ops = ops;
	be->cb = cb;
	be->opaque = opaque;
	be->fd = -1;
	atomic_init(&be->rx_on, true);
	return be;
}

int net_backend_new(struct net_backend **out,
		    const struct net_backend_ops *ops, void *priv, net_rx_cb cb,
		    void *opaque)
{
	struct net_backend *be = net_backend_alloc(ops, cb, opaque);

	if (!be)
		return -ENOMEM;
	be->priv = priv;
	*out = be;
	return 0;
}

/* "fd:N": the number, or -1 after logging. */
static int parse_fd(const char *backend)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(backend + 3, &end, 10);
	if (errno || end == backend + 3 || *end || v < 0 || v > 65535) {
		log_err("net backend \"%s\": bad file descriptor number",
			backend);
		return -1;
	}
	return (int)v;
}

int net_backend_open(struct net_backend **out, struct cfg_node *node,
		     const struct devctx *ctx, net_rx_cb cb, void *opaque)
{
	const char *backend = cfg_get(node, "backend");
	const char *type = cfg_get(node, "type");
	int fd = -1;

	*out = NULL;
	if (!backend) {
		if (type)
			log_err("%s.type: '%s' set without a backend",
				cfg_path(node), type);
		return type ? -EINVAL : -ENOENT;
	}
	if (!*backend) {
		log_err("%s.backend: empty", cfg_path(node));
		return -EINVAL;
	}
	if (!strncmp(backend, "fd:", 3)) {
		fd = parse_fd(backend);
		if (fd < 0)
			return -EINVAL;
		if (!type)
			type = net_fd_is_tap(fd) ? "tap" : "dgram";
	}
	if (!type) {
		if (!strcmp(backend, "slirp"))
			type = "slirp";
		else if (!strncmp(backend, "unix:", 5))
			type = "dgram";
		else if (!strncmp(backend, "netmap:", 7) ||
			 !strncmp(backend, "vale", 4) ||
			 !strncmp(backend, "netgraph", 8)) {
			log_err("net backend \"%s\": unknown backend type "
				"(netmap and netgraph are FreeBSD-only; use a "
				"tap or slirp)",
				backend);
			return -EINVAL;
		} else
			type = "tap";
	}
	if (!strcmp(type, "tap"))
		return net_tap_open(out, node, ctx, fd >= 0 ? NULL : backend,
				    fd, cb, opaque);
	if (!strcmp(type, "dgram")) {
		const char *path = backend;

		if (fd >= 0)
			path = NULL;
		else if (!strncmp(backend, "unix:", 5))
			path = backend + 5;
		return net_dgram_open(out, node, ctx, path, fd, cb, opaque);
	}
	if (!strcmp(type, "slirp"))
		return net_slirp_open(out, node, ctx, cb, opaque);
	log_err("net backend \"%s\": unknown backend type \"%s\"", backend,
		type);
	return -EINVAL;
}

void net_backend_close(struct net_backend *be)
{
	if (!be)
		return;
	atomic_store(&be->rx_on, false);
	if (be->ops->fini)
		be->ops->fini(be);
	net_fd_close(be);
	free(be);
}

void *net_backend_priv(const struct net_backend *be)
{
	return be->priv;
}

const char *net_backend_type(const struct net_backend *be)
{
	return be->ops->type;
}

/* Copy 'iov' minus its first 'skip' bytes into 'dst' (NET_MAX_IOV). */
static int iov_skip(struct iovec *dst, const struct iovec *iov, int iovcnt,
		    size_t skip)
{
	int i, n = 0;

	for (i = 0; i < iovcnt && n < NET_MAX_IOV; i++) {
		size_t len = iov[i].iov_len;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		dst[n].iov_base = (uint8_t *)iov[i].iov_base + skip;
		dst[n].iov_len = len - skip;
		skip = 0;
		n++;
	}
	return skip ? -1 : n;
}

ssize_t net_backend_send(struct net_backend *be, const struct iovec *iov,
			 int iovcnt)
{
	struct iovec tmp[NET_MAX_IOV];
	ssize_t rc;
	int n;

	if (be->native_hdr || be->hdr_len == 0)
		return be->ops->send(be, iov, iovcnt);
	n = iov_skip(tmp, iov, iovcnt, be->hdr_len);
	if (n < 0)
		return -EINVAL;
	rc = be->ops->send(be, tmp, n);
	return rc < 0 ? rc : rc + be->hdr_len;
}

ssize_t net_backend_recv(struct net_backend *be, const struct iovec *iov,
			 int iovcnt)
{
	struct iovec tmp[NET_MAX_IOV];
	size_t left = be->hdr_len;
	ssize_t rc;
	int i, n;

	if (be->native_hdr || be->hdr_len == 0)
		return be->ops->recv(be, iov, iovcnt);
	n = iov_skip(tmp, iov, iovcnt, be->hdr_len);
	if (n < 0)
		return -EINVAL;
	rc = be->ops->recv(be, tmp, n);
	if (rc <= 0)
		return rc;
	for (i = 0; i < iovcnt && left; i++) {
		size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;

		memset(iov[i].iov_base, 0, k);
		left -= k;
	}
	return rc + be->hdr_len;
}

ssize_t net_backend_peek_len(struct net_backend *be)
{
	ssize_t rc;

	if (!be->ops->peek_len)
		return -ENOTSUP;
	rc = be->ops->peek_len(be);
	if (rc > 0 && !be->native_hdr)
		rc += be->hdr_len;
	return rc;
}

void net_backend_rx_enable(struct net_backend *be, bool on)
{
	atomic_store(&be->rx_on, on);
	if (be->ops->rx_enable)
		be->ops->rx_enable(be, on);
	else if (be->watch)
		event_mod_fd(be->watch, on ? EPOLLIN : 0);
}

uint64_t net_backend_get_cap(const struct net_backend *be)
{
	return be->ops->get_cap ? be->ops->get_cap(be)
				: 0;
}

int net_backend_set_cap(struct net_backend *be, uint64_t features,
			unsigned hdr_len)
{
	int rc = 0;

	if (hdr_len != 0 && hdr_len != VIRTIO_NET_HDR_LEN_LEGACY &&
	    hdr_len != VIRTIO_NET_HDR_LEN)
		return -EINVAL;
	if (features & ~net_backend_get_cap(be))
		return -ENOTSUP;
	if (be->ops->set_cap)
		rc = be->ops->set_cap(be, features, hdr_len);
	if (rc == 0) {
		be->features = features;
		be->hdr_len = hdr_len;
	}
	return rc;
}

unsigned net_backend_hdr_len(const struct net_backend *be)
{
	return be->hdr_len;
}

void net_backend_notify_rx(struct net_backend *be)
{
	if (atomic_load(&be->rx_on) && be->cb)
		be->cb(be->opaque);
}

static void fd_ready(void *arg, uint32_t events)
{
	struct net_backend *be = arg;

	(void)events;
	net_backend_notify_rx(be);
}

int net_fd_watch(struct net_backend *be, struct event_loop *ev)
{
	if (!ev)
		return -ENOTSUP;
	return event_add_fd(ev, be->fd, EPOLLIN, fd_ready, be, &be->watch);
}

void net_fd_close(struct net_backend *be)
{
	if (be->watch) {
		event_del(be->watch);
		be->watch = NULL;
	}
	if (be->fd >= 0 && be->own_fd)
		close(be->fd);
	be->fd = -1;
}

int net_mac_parse(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char sep[5], end;
	int i;

	if (sscanf(s, "%2x%c%2x%c%2x%c%2x%c%2x%c%2x%c", &v[0], &sep[0], &v[1],
		   &sep[1], &v[2], &sep[2], &v[3], &sep[3], &v[4], &sep[4],
		   &v[5], &end) != 11)
		return -EINVAL;
	if (strlen(s) != 17)
		return -EINVAL;
	for (i = 0; i < 5; i++)
		if (sep[i] != sep[0] || (sep[i] != ':' && sep[i] != '-'))
			return -EINVAL;
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	if (mac[0] & 1)
		return -EINVAL; /* multicast */
	if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	return 0;
}

void net_mac_derive(uint8_t mac[6], const char *vmname, unsigned slot,
		    unsigned func)
{
	uint8_t digest[MD5_DIGEST_LENGTH];
	char buf[256];
	MD5_CTX md;

	snprintf(buf, sizeof(buf), "%u-%u-%s", slot, func,
		 vmname ? vmname : "");
	MD5Init(&md);
	MD5Update(&md, (const uint8_t *)buf, strlen(buf));
	MD5Final(digest, &md);
	mac[0] = 0x58;
	mac[1] = 0x9c;
	mac[2] = 0xfc;
	mac[3] = digest[0];
	mac[4] = digest[1];
	mac[5] = digest[2];
}

int net_mac_from_cfg(struct cfg_node *node, const char *vmname,
		     unsigned slot, unsigned func, uint8_t mac[6])
{
	const char *s = cfg_get(node, "mac");

	if (!s) {
		if (errno != ENOENT && errno != 0)
			return -EINVAL; /* cfg_get() logged it */
		net_mac_derive(mac, vmname, slot, func);
		return 0;
	}
	if (net_mac_parse(s, mac)) {
		log_err("%s.mac: invalid MAC address '%s' (need "
			"xx:xx:xx:xx:xx:xx, unicast, not zero)",
			cfg_path(node), s);
		return -EINVAL;
	}
	return 0;
}

int net_parse_legacy(struct cfg_node *node, const char *opts)
{
	size_t n;
	char *first;
	int rc;

	if (!opts || !*opts)
		return 0;
	n = strcspn(opts, ",");
	if (memchr(opts, '=', n))
		return cfg_split_opts(node, opts);
	first = strndup(opts, n);
	if (!first) {
		log_err("out of memory");
		return -ENOMEM;
	}
	rc = cfg_set(node, "backend", first);
	free(first);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s.backend", cfg_path(node));
		return rc;
	}
	return opts[n] ? cfg_split_opts(node, opts + n + 1) : 0;
}
