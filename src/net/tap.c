/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The tap network backend: a Linux tap interface opened through
 * /dev/net/tun (bhyve opens /dev/tapN).  Any interface name works
 * ("tap0", "vm-web0"); a missing one is an error unless the NIC's node
 * says create=true, in which case the tap is created for this process and
 * disappears when it exits.  bridge=BR adds the tap to a Linux bridge.
 * The interface is brought up, as bhyve does.  "fd:N" adopts a tap a
 * privileged parent opened.
 *
 * The tap always carries a virtio-net header (IFF_VNET_HDR): checksum and
 * TSO/UFO offloads pass through it in both directions, and with
 * TUNSETOFFLOAD the kernel hands us unsegmented frames.  A NIC without
 * headers (e1000: hdr_len 0) gets bare frames; the 10-byte header is
 * added and removed here.
 *
 * Threads: receive readiness through the VM event loop (net_fd_watch);
 * send and recv are one non-blocking writev/readv each, callable from the
 * NIC's threads; set_cap from any thread.  No lock: the fd is fixed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/devmodel.h"
#include "lib/log.h"
#include "net/net_priv.h"
#include "virtio/virtio.h"

#define TAP_MAX_IOV 1024

struct tap {
	char name[IFNAMSIZ];
	unsigned kern_hdr; /* vnet header size the kernel uses */
	uint64_t cap;	   /* VIRTIO_NET_F_* the tap can carry */
};

bool net_fd_is_tap(int fd)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	return ioctl(fd, TUNGETIFF, &ifr) == 0 && (ifr.ifr_flags & IFF_TAP);
}

static ssize_t tap_send(struct net_backend *be, const struct iovec *iov,
			int iovcnt)
{
	struct tap *t = be->priv;
	struct virtio_net_hdr hdr;
	struct iovec tmp[TAP_MAX_IOV + 1];
	ssize_t n;

	if (be->hdr_len == 0) {
		/* bare frame from the NIC: give the kernel a null header */
		if (iovcnt > TAP_MAX_IOV)
			return -EINVAL;
		memset(&hdr, 0, sizeof(hdr));
		tmp[0].iov_base = &hdr;
		tmp[0].iov_len = t->kern_hdr;
		memcpy(tmp + 1, iov, (size_t)iovcnt * sizeof(*iov));
		iov = tmp;
		iovcnt++;
	}
	n = writev(be->fd, iov, iovcnt);
	if (n < 0)
		return -errno;
	return be->hdr_len == 0 ? n - (ssize_t)t->kern_hdr : n;
}

static ssize_t tap_recv(struct net_backend *be, const struct iovec *iov,
			int iovcnt)
{
	struct tap *t = be->priv;
	struct virtio_net_hdr hdr;
	struct iovec tmp[TAP_MAX_IOV + 1];
	size_t cap = 0;
	ssize_t n;
	int i;

	if (be->hdr_len == 0) {
		if (iovcnt > TAP_MAX_IOV)
			iovcnt = TAP_MAX_IOV;
		tmp[0].iov_base = &hdr;
		tmp[0].iov_len = t->kern_hdr;
		memcpy(tmp + 1, iov, (size_t)iovcnt * sizeof(*iov));
		iov = tmp;
		iovcnt++;
	}
	for (;;) {
		n = readv(be->fd, iov, iovcnt);
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	}
	/* a frame longer than the buffers is cut to them */
	for (i = 0; i < iovcnt; i++)
		cap += iov[i].iov_len;
	if ((size_t)n > cap)
		n = (ssize_t)cap;
	if (be->hdr_len == 0)
		n = n > (ssize_t)t->kern_hdr ? n - (ssize_t)t->kern_hdr : 0;
	return n;
}

static uint64_t tap_get_cap(const struct net_backend *be)
{
	return ((struct tap *)be->priv)->cap;
}

/* The TUN_F_* offloads the kernel may hand us for these features. */
static unsigned tun_offloads(uint64_t f)
{
	unsigned o = 0;

	if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM)) {
		o |= TUN_F_CSUM;
		if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4))
			o |= TUN_F_TSO4;
		if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6))
			o |= TUN_F_TSO6;
		if ((f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN)) &&
		    (o & (TUN_F_TSO4 | TUN_F_TSO6)))
			o |= TUN_F_TSO_ECN;
		if (f & VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO))
			o |= TUN_F_UFO;
	}
	return o;
}

static int tap_set_cap(struct net_backend *be, uint64_t features,
		       unsigned hdr_len)
{
	struct tap *t = be->priv;
	int sz = hdr_len ? (int)hdr_len : VIRTIO_NET_HDR_LEN_LEGACY;
	unsigned off = hdr_len ? tun_offloads(features) : 0;

	if (ioctl(be->fd, TUNSETVNETHDRSZ, &sz) < 0)
		return -errno;
	t->kern_hdr = (unsigned)sz;
	if (ioctl(be->fd, TUNSETOFFLOAD, (unsigned long)off) < 0)
		return -errno;
	return 0;
}

static void tap_fini(struct net_backend *be)
{
	free(be->priv);
	be->priv = NULL;
}

static const struct net_backend_ops tap_ops = {
	.type = "tap",
	.send = tap_send,
	.recv = tap_recv,
	.get_cap = tap_get_cap,
	.set_cap = tap_set_cap,
	.fini = tap_fini,
};

/* What the kernel accepts: probe TUNSETOFFLOAD, then reset it to none. */
static uint64_t tap_probe_cap(int fd)
{
	uint64_t cap = VIRTIO_BIT(VIRTIO_NET_F_CSUM) |
		       VIRTIO_BIT(VIRTIO_NET_F_GUEST_CSUM);

	if (ioctl(fd, TUNSETOFFLOAD,
		  (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 |
				  TUN_F_TSO_ECN)) == 0)
		cap |= VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO4) |
		       VIRTIO_BIT(VIRTIO_NET_F_HOST_TSO6) |
		       VIRTIO_BIT(VIRTIO_NET_F_HOST_ECN) |
		       VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO4) |
		       VIRTIO_BIT(VIRTIO_NET_F_GUEST_TSO6) |
		       VIRTIO_BIT(VIRTIO_NET_F_GUEST_ECN);
	if (ioctl(fd, TUNSETOFFLOAD,
		  (unsigned long)(TUN_F_CSUM | TUN_F_UFO)) == 0)
		cap |= VIRTIO_BIT(VIRTIO_NET_F_HOST_UFO) |
		       VIRTIO_BIT(VIRTIO_NET_F_GUEST_UFO);
	ioctl(fd, TUNSETOFFLOAD, 0UL);
	return cap;
}

/* Bring 'name' up and optionally enslave it to 'bridge'.  0 or -errno. */
static int tap_link_setup(const char *name, const char *bridge)
{
	struct ifreq ifr;
	int s, rc = 0;
	unsigned idx;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: cannot read the link flags",
			  name);
		goto out;
	}
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
			rc = -errno;
			log_errno(LOG_ERR, -rc, "%s: cannot bring the link up",
				  name);
			goto out;
		}
	}
	if (bridge) {
		idx = 0;
		if (ioctl(s, SIOCGIFINDEX, &ifr) == 0)
			idx = (unsigned)ifr.ifr_ifindex;
		memset(&ifr, 0, sizeof(ifr));
		snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", bridge);
		ifr.ifr_ifindex = (int)idx;
		if (!idx || ioctl(s, SIOCBRADDIF, &ifr) < 0) {
			rc = -errno;
			if (rc == -ENODEV || rc == -EOPNOTSUPP)
				log_err("%s: no such bridge (for tap %s)",
					bridge, name);
			else
				log_errno(LOG_ERR, -rc,
					  "%s: cannot add tap %s", bridge,
					  name);
			goto out;
		}
	}
out:
	close(s);
	return rc;
}

/* Does /sys/class/net/NAME exist, and is it a tun/tap? */
static int tap_exists(const char *name, bool *is_tun)
{
	char path[96];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	if (stat(path, &st))
		return 0;
	snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", name);
	*is_tun = stat(path, &st) == 0;
	return 1;
}

static int tap_attach(const char *name, bool create)
{
	struct ifreq ifr;
	bool is_tun = false;
	int fd, rc;

	if (!tap_exists(name, &is_tun)) {
		if (!create) {
			log_err("%s: no such tap interface (create it with "
				"\"ip tuntap add %s mode tap\", or set "
				"create=true)",
				name, name);
			return -ENODEV;
		}
	} else if (!is_tun) {
		log_err("%s: not a tap interface", name);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: cannot open /dev/net/tun", name);
		return rc;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		rc = -errno;
		if (rc == -EBUSY)
			log_err("%s: in use by another process", name);
		else if (rc == -EPERM)
			log_err("%s: permission denied (needs CAP_NET_ADMIN, "
				"or a tap created for this user with \"ip "
				"tuntap add %s mode tap user USER\")",
				name, name);
		else if (rc == -EINVAL && is_tun)
			log_err("%s: a tun (layer 3) device, not a tap", name);
		else
			log_errno(LOG_ERR, -rc, "%s: cannot attach", name);
		close(fd);
		return rc;
	}
	return fd;
}

int net_tap_open(struct net_backend **out, struct cfg_node *node,
		 const struct devctx *ctx, const char *name, int fd,
		 net_rx_cb cb, void *opaque)
{
	struct net_backend *be;
	struct ifreq ifr;
	const char *bridge = cfg_get(node, "bridge");
	bool create = false;
	struct tap *t;
	int rc, sz = VIRTIO_NET_HDR_LEN_LEGACY;

	rc = cfg_get_bool(node, "create", false, &create);
	if (rc)
		return rc;
	if (name && (strlen(name) >= IFNAMSIZ || strchr(name, '/'))) {
		log_err("net backend \"%s\": not a valid interface name "
			"(at most %d characters, no '/')",
			name, IFNAMSIZ - 1);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	be = net_backend_alloc(&tap_ops, cb, opaque);
	if (!t || !be) {
		free(t);
		free(be);
		return -ENOMEM;
	}
	be->priv = t;
	be->native_hdr = true;
	if (name) {
		rc = tap_attach(name, create);
		if (rc < 0)
			goto fail;
		be->fd = rc;
		be->own_fd = true;
		snprintf(t->name, sizeof(t->name), "%s", name);
	} else {
		memset(&ifr, 0, sizeof(ifr));
		if (ioctl(fd, TUNGETIFF, &ifr) < 0 ||
		    !(ifr.ifr_flags & IFF_VNET_HDR)) {
			log_err("net backend \"fd:%d\": the tap must be opened "
				"with IFF_VNET_HDR",
				fd);
			rc = -EINVAL;
			goto fail;
		}
		be->fd = fd;
		snprintf(t->name, sizeof(t->name), "%s", ifr.ifr_name);
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
			rc = -errno;
			goto fail;
		}
	}
	if (ioctl(be->fd, TUNSETVNETHDRSZ, &sz) < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: cannot set the vnet header size",
			  t->name);
		goto fail;
	}
	t->kern_hdr = (unsigned)sz;
	t->cap = tap_probe_cap(be->fd);
	rc = tap_link_setup(t->name, bridge);
	if (rc)
		goto fail;
	rc = net_fd_watch(be, ctx ? ctx->ev : NULL);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: cannot watch the tap", t->name);
		goto fail;
	}
	*out = be;
	return 0;
fail:
	net_backend_close(be);
	return rc;
}
