/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Internals shared by the network backends of src/net (not for NIC
 * models, which use net_backend.h): the backend object, the helper that
 * watches a frame fd (tap, datagram socket) through the VM event loop, and
 * each backend's open function.
 *
 * Threads: see net_backend.h.  'rx_on' and the fd watch are changed from
 * any thread (event_mod_fd() is thread-safe); the callback fields are set
 * once at open.
 */
#ifndef KHYVE_NET_NET_PRIV_H
#define KHYVE_NET_NET_PRIV_H

#include <stdatomic.h>

#include "net/net_backend.h"

struct event;
struct event_loop;

struct net_backend {
	const struct net_backend_ops *ops;
	void *priv;
	net_rx_cb cb;
	void *opaque;
	/* The NIC's header length; 'native_hdr' backends carry it, for the
	 * others the core strips it on send and zero-fills it on recv. */
	unsigned hdr_len;
	bool native_hdr;
	uint64_t features;
	atomic_bool rx_on;
	/* fd backends (tap, dgram) */
	int fd;
	bool own_fd;
	struct event *watch;
};

/* Watch be->fd for input on 'ev' and call the receive callback (level
 * triggered; paused while rx is disabled).  0 or -errno. */
int net_fd_watch(struct net_backend *be, struct event_loop *ev);
/* Stop watching and close be->fd if owned. */
void net_fd_close(struct net_backend *be);

/* Allocate a backend for 'ops' (priv NULL, fd -1).  NULL on ENOMEM. */
struct net_backend *net_backend_alloc(const struct net_backend_ops *ops,
				      net_rx_cb cb, void *opaque);

/* True when 'fd' is an attached tap (TUNGETIFF works). */
bool net_fd_is_tap(int fd);

/*
 * Backend open functions.  'name' is the "backend" value (for tap the
 * interface name, NULL with an inherited fd >= 0), 'node' the NIC node.
 * Each logs one line on error and returns -errno.
 */
int net_tap_open(struct net_backend **out, struct cfg_node *node,
		 const struct devctx *ctx, const char *name, int fd,
		 net_rx_cb cb, void *opaque);
int net_dgram_open(struct net_backend **out, struct cfg_node *node,
		   const struct devctx *ctx, const char *path, int fd,
		   net_rx_cb cb, void *opaque);
int net_slirp_open(struct net_backend **out, struct cfg_node *node,
		   const struct devctx *ctx, net_rx_cb cb, void *opaque);

#endif
