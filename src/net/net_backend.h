/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The network backend interface (bhyve's net_backends.h analogue): what a
 * NIC model (virtio-net, e1000) uses to move Ethernet frames to and from
 * the host.  Backends: "tap" (a Linux tap through /dev/net/tun, carrying
 * the virtio-net header for offloads), "slirp" (user-mode networking
 * through libslirp).  The backend is chosen from the NIC's config node as
 * bhyve does: key "backend" (the first token of the legacy option string),
 * with "type" inferred from it unless given:
 *   tap0, mytap, any name   tap (type tap)
 *   slirp                   libslirp user networking (type slirp)
 *   unix:/path              a UNIX datagram socket, one frame per
 *                           message (type dgram; cheap VDE-style link)
 *   fd:N                    an inherited open fd: a tap (type tap) or a
 *                           datagram/seqpacket socket (type dgram), so a
 *                           privileged parent can hand the NIC its link
 *
 * Frames: net_backend_send() and net_backend_recv() move one frame each.
 * When the NIC has set a vnet header length with net_backend_set_cap(),
 * every frame starts with a struct virtio_net_hdr of that length (10 or 12
 * bytes), in both directions; otherwise frames are bare Ethernet.
 *
 * Threads: the receive callback runs on the backend's thread (the VM event
 * loop for tap, the slirp thread for slirp) whenever frames may be waiting;
 * the NIC then calls net_backend_recv() (from that thread or its own) until
 * it returns 0.  net_backend_send() may be called from any one thread at a
 * time (the NIC's transmit context).  net_backend_recv() likewise from one
 * thread at a time.  rx_enable/get_cap/set_cap from any thread.
 */
#ifndef KHYVE_NET_NET_BACKEND_H
#define KHYVE_NET_NET_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "config/config.h"

struct devctx;
struct net_backend;

/* Frames may be waiting: call net_backend_recv() until it returns 0. */
typedef void (*net_rx_cb)(void *opaque);

/*
 * A backend implementation.  Tests and special backends may supply their
 * own through net_backend_new().  All hooks but init/fini get the backend;
 * its private data is net_backend_priv(be).
 */
struct net_backend_ops {
	const char *type; /* "tap", "slirp", "dgram" */
	/* Send one frame (with the vnet header if one is set).  Returns the
	 * bytes taken, or -errno (-EAGAIN: dropped, host side full). */
	ssize_t (*send)(struct net_backend *be, const struct iovec *iov,
			int iovcnt);
	/* Receive one frame into iov.  Returns its length (a frame longer
	 * than the iov is truncated to it and the rest dropped), 0 when
	 * none is waiting, or -errno. */
	ssize_t (*recv)(struct net_backend *be, const struct iovec *iov,
			int iovcnt);
	/* Optional: length of the next frame without taking it, 0 if none,
	 * -ENOTSUP if the backend can't tell cheaply. */
	ssize_t (*peek_len)(struct net_backend *be);
	/* Optional: stop (false) or restart (true) receive callbacks. */
	void (*rx_enable)(struct net_backend *be, bool on);
	/* Optional: offloads the backend can carry, as VIRTIO_NET_F_* bits
	 * (checksum, TSO/UFO, MRG_RXBUF-independent).  Default 0. */
	uint64_t (*get_cap)(const struct net_backend *be);
	/* Optional: use these negotiated VIRTIO_NET_F_* offloads and a vnet
	 * header of 'hdr_len' bytes (0 = none).  0 or -errno. */
	int (*set_cap)(struct net_backend *be, uint64_t features,
		       unsigned hdr_len);
	/* Optional: release the private data. */
	void (*fini)(struct net_backend *be);
};

/*
 * The config keys a NIC's node may hold for its backend: backend, type,
 * hostfwd, open (slirp), create, bridge (tap).  Put NET_BACKEND_CFG_KEYS
 * in the model's key table; "mac" and "mtu" are the model's own.
 */
/* clang-format off */
#define NET_BACKEND_CFG_KEYS                                                   \
	{"backend", CFG_STRING, NULL, "host side: a tap name (tap0, any "     \
	 "name) or slirp", 0, 0, 0},                                           \
	{"type", CFG_STRING, NULL, "backend type: tap, slirp or dgram "       \
	 "(default: from backend)", 0, 0, 0},                                  \
	{"hostfwd", CFG_STRING, NULL, "slirp: proto:[haddr]:hport-[gaddr]:"   \
	 "gport[;rule...]", 0, 0, 0},                                          \
	{"open", CFG_BOOL, "false", "slirp: allow outbound connections",      \
	 0, 0, 0},                                                             \
	{"create", CFG_BOOL, "false", "tap: create the tap if it does not "   \
	 "exist (removed again on exit)", 0, 0, 0},                            \
	{"bridge", CFG_STRING, NULL, "tap: add the tap to this Linux bridge", \
	 0, 0, 0}
/* clang-format on */

/*
 * Open the backend that 'node' (the NIC's config node) names.  'ctx'
 * gives the event loop and VM name; 'cb(opaque)' is the receive callback.
 * Errors are one logged line naming the key or interface:
 *   "net backend \"foo\": unknown backend type" (bhyve's wording style),
 *   "tap0: no such tap interface (create it with ...)".
 * Returns 0 and *out, or -errno.  A node without "backend" is -ENOENT
 * with nothing logged (the NIC then has no link).
 */
int net_backend_open(struct net_backend **out, struct cfg_node *node,
		     const struct devctx *ctx, net_rx_cb cb, void *opaque);

/* Wrap custom 'ops' with private data 'priv' (tests, special backends).
 * Returns 0 and *out, or -ENOMEM. */
int net_backend_new(struct net_backend **out,
		    const struct net_backend_ops *ops, void *priv, net_rx_cb cb,
		    void *opaque);

/* Stop callbacks, close host resources and free.  NULL is accepted. */
void net_backend_close(struct net_backend *be);

/* The private data given to net_backend_new() or set by the backend. */
void *net_backend_priv(const struct net_backend *be);
/* The backend type ("tap", "slirp", or the custom ops' type). */
const char *net_backend_type(const struct net_backend *be);

/* Send one frame; see struct net_backend_ops.send.  Bytes or -errno. */
ssize_t net_backend_send(struct net_backend *be, const struct iovec *iov,
			 int iovcnt);
/* Receive one frame; see ops.recv.  Length, 0 when none, or -errno. */
ssize_t net_backend_recv(struct net_backend *be, const struct iovec *iov,
			 int iovcnt);
/* Length of the next frame, 0 if none, -ENOTSUP if unknown. */
ssize_t net_backend_peek_len(struct net_backend *be);
/* Stop (false) or restart (true) receive callbacks; after a restart the
 * callback runs soon, on the backend's thread (never inside this call), if
 * frames are waiting.  The NIC stops them while the guest has posted no
 * receive buffers.  Any thread. */
void net_backend_rx_enable(struct net_backend *be, bool on);
/* VIRTIO_NET_F_* offload bits the backend can carry (0 for slirp). */
uint64_t net_backend_get_cap(const struct net_backend *be);
/* Use 'features' (a subset of get_cap) and a vnet header of 'hdr_len'
 * bytes (0, 10 or 12).  0 or -errno. */
int net_backend_set_cap(struct net_backend *be, uint64_t features,
			unsigned hdr_len);
/* The vnet header length set by net_backend_set_cap() (0 if none). */
unsigned net_backend_hdr_len(const struct net_backend *be);
/* Call the receive callback (backends use this from their thread). */
void net_backend_notify_rx(struct net_backend *be);

/*
 * Parse "xx:xx:xx:xx:xx:xx" (also '-' separated) into mac.  0, or
 * -EINVAL for a malformed, multicast or all-zero address.
 */
int net_mac_parse(const char *s, uint8_t mac[6]);
/*
 * bhyve's default MAC: OUI 58:9c:fc and the first three bytes of the MD5
 * of "<slot>-<func>-<vmname>".  Stable across runs.
 */
void net_mac_derive(uint8_t mac[6], const char *vmname, unsigned slot,
		    unsigned func);
/*
 * The NIC's MAC: key "mac" of 'node' when set (an error line naming the
 * key for a bad one), else net_mac_derive().  0 or -EINVAL.
 */
int net_mac_from_cfg(struct cfg_node *node, const char *vmname,
		     unsigned slot, unsigned func, uint8_t mac[6]);

/*
 * Legacy option string of a NIC ("tap0,mac=..,mtu=..", "slirp,hostfwd=
 * tcp::2222-:22,open"): the first token is "backend" unless it has '=';
 * a bare "open" means open=true.  For the models' parse_legacy hooks.
 * 0 or -EINVAL after logging.
 */
int net_parse_legacy(struct cfg_node *node, const char *opts);

#endif
