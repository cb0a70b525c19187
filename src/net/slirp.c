/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The slirp network backend: user-mode networking through libslirp, with
 * bhyve's network (10.0.2.0/24, host 10.0.2.2, DNS 10.0.2.3, DHCP from
 * 10.0.2.15).  Keys of the NIC's node: hostfwd=proto:[haddr]:hport-
 * [gaddr]:gport[;rule...] (tcp or udp, IPv4; haddr defaults to any,
 * gaddr to 10.0.2.15) and open (let the guest open outbound connections;
 * without it the network is "restricted": the guest reaches only the
 * forwarded ports' peers and slirp's own DHCP/DNS, as in bhyve; the
 * filter is ours, see restricted_drop()).
 *
 * libslirp is not thread-safe, so every call into it happens on one
 * thread owned by this backend, which polls slirp's sockets, runs its
 * timers and takes the guest's frames from a queue.  Frames for the guest
 * go into a bounded receive queue and the NIC's callback runs on that
 * thread.  bhyve runs slirp in a separate sandboxed process; here it is a
 * thread of the VMM.
 *
 * Locks: 'lock' protects both frame queues and the rx_kick flag; it is
 * never held while calling libslirp or the NIC.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <slirp/libslirp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/devmodel.h"
#include "lib/log.h"
#include "net/net_priv.h"

#define SLIRP_QUEUE_MAX 512	    /* frames per direction */
#define SLIRP_FRAME_MAX (65536 + 64) /* largest frame accepted */

struct frame {
	struct frame *next;
	size_t len;
	uint8_t data[];
};

struct fqueue {
	struct frame *head, *tail;
	unsigned n;
};

struct stimer {
	struct stimer *next;
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms; /* -1: not armed */
};

struct sl {
	struct net_backend *be;
	Slirp *slirp;
	pthread_t thread;
	bool started;
	int wake_fd;
	atomic_bool stop;
	pthread_mutex_t lock;
	struct fqueue tx, rx;
	bool rx_kick;
	struct stimer *timers; /* slirp thread only */
	struct pollfd *pfd;    /* slirp thread only */
	unsigned npfd, cap;
	unsigned long dropped;
	/* restricted mode (no "open"): see restricted_drop() */
	bool restricted;
	unsigned nfwd_udp;
	struct {
		uint32_t addr; /* network order */
		uint16_t port; /* host order */
	} fwd_udp[16];
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fq_push(struct fqueue *q, struct frame *f)
{
	f->next = NULL;
	if (q->tail)
		q->tail->next = f;
	else
		q->head = f;
	q->tail = f;
	q->n++;
}

static struct frame *fq_pop(struct fqueue *q)
{
	struct frame *f = q->head;

	if (f) {
		q->head = f->next;
		if (!q->head)
			q->tail = NULL;
		q->n--;
	}
	return f;
}

static void fq_free(struct fqueue *q)
{
	struct frame *f;

	while ((f = fq_pop(q)))
		free(f);
}

static void wake(struct sl *s)
{
	uint64_t one = 1;

	if (write(s->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_ratelimited(10000, "slirp: wake-up failed: %s",
				strerror(errno));
}

/* ---- libslirp callbacks (slirp thread) ---- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct sl *s = opaque;
	struct frame *f;
	bool full;

	pthread_mutex_lock(&s->lock);
	full = s->rx.n >= SLIRP_QUEUE_MAX;
	pthread_mutex_unlock(&s->lock);
	if (full || len > SLIRP_FRAME_MAX) {
		s->dropped++; /* TCP retransmits; UDP is lossy anyway */
		return (ssize_t)len;
	}
	f = malloc(sizeof(*f) + len);
	if (!f)
		return (ssize_t)len;
	f->len = len;
	memcpy(f->data, buf, len);
	pthread_mutex_lock(&s->lock);
	fq_push(&s->rx, f);
	pthread_mutex_unlock(&s->lock);
	net_backend_notify_rx(s->be);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	log_ratelimited(10000, "slirp: guest error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return now_ns();
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque,
				 void *opaque)
{
	struct sl *s = opaque;
	struct stimer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->id = id;
	t->cb_opaque = cb_opaque;
	t->expire_ms = -1;
	t->next = s->timers;
	s->timers = t;
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct sl *s = opaque;
	struct stimer **pp;

	for (pp = &s->timers; *pp; pp = &(*pp)->next)
		if (*pp == timer) {
			*pp = ((struct stimer *)timer)->next;
			free(timer);
			return;
		}
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	(void)opaque;
	if (timer)
		((struct stimer *)timer)->expire_ms = expire_ms;
}

static void cb_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	wake(opaque);
}

static const SlirpCb slirp_cbs = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_poll_fd,
	.unregister_poll_fd = cb_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

static int add_poll(int fd, int events, void *opaque)
{
	struct sl *s = opaque;
	struct pollfd *p;
	short ev = 0;

	if (s->npfd == s->cap) {
		unsigned ncap = s->cap ? s->cap * 2 : 32;

		p = realloc(s->pfd, ncap * sizeof(*p));
		if (!p)
			return -1;
		s->pfd = p;
		s->cap = ncap;
	}
	if (events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	s->pfd[s->npfd].fd = fd;
	s->pfd[s->npfd].events = ev;
	s->pfd[s->npfd].revents = 0;
	return (int)s->npfd++;
}

static int get_revents(int idx, void *opaque)
{
	struct sl *s = opaque;
	short r;
	int ev = 0;

	if (idx < 0 || (unsigned)idx >= s->npfd)
		return 0;
	r = s->pfd[idx].revents;
	if (r & POLLIN)
		ev |= SLIRP_POLL_IN;
	if (r & POLLOUT)
		ev |= SLIRP_POLL_OUT;
	if (r & POLLPRI)
		ev |= SLIRP_POLL_PRI;
	if (r & POLLERR)
		ev |= SLIRP_POLL_ERR;
	if (r & POLLHUP)
		ev |= SLIRP_POLL_HUP;
	return ev;
}

/* Feed the guest's frames to slirp; kick the NIC if it asked. */
static void drain(struct sl *s)
{
	struct fqueue q;
	struct frame *f;
	bool kick;

	pthread_mutex_lock(&s->lock);
	q = s->tx;
	memset(&s->tx, 0, sizeof(s->tx));
	kick = s->rx_kick && s->rx.n > 0;
	s->rx_kick = false;
	pthread_mutex_unlock(&s->lock);
	while ((f = fq_pop(&q))) {
		slirp_input(s->slirp, f->data, (int)f->len);
		free(f);
	}
	if (kick)
		net_backend_notify_rx(s->be);
}

static void run_timers(struct sl *s, uint32_t *timeout)
{
	int64_t now = now_ns() / 1000000;
	struct stimer *t;
	bool again = true;

	while (again) { /* a handler may free or re-arm timers */
		again = false;
		for (t = s->timers; t; t = t->next) {
			if (t->expire_ms < 0)
				continue;
			if (t->expire_ms <= now) {
				t->expire_ms = -1;
				slirp_handle_timer(s->slirp, t->id,
						   t->cb_opaque);
				again = true;
				break;
			}
			if ((uint64_t)(t->expire_ms - now) < *timeout)
				*timeout = (uint32_t)(t->expire_ms - now);
		}
	}
}

static void *slirp_thread(void *arg)
{
	struct sl *s = arg;
	uint64_t v;
	int rc;

	pthread_setname_np(pthread_self(), "slirp");
	while (!atomic_load(&s->stop)) {
		uint32_t timeout = 1000;

		drain(s);
		run_timers(s, &timeout);
		s->npfd = 0;
		add_poll(s->wake_fd, SLIRP_POLL_IN, s);
		slirp_pollfds_fill(s->slirp, &timeout, add_poll, s);
		rc = poll(s->pfd, s->npfd, (int)timeout);
		if (rc > 0 && (s->pfd[0].revents & POLLIN))
			(void)!read(s->wake_fd, &v, sizeof(v));
		slirp_pollfds_poll(s->slirp, rc < 0, get_revents, s);
	}
	return NULL;
}

/*
 * bhyve's restricted slirp network: the guest may answer but not open
 * connections.  libslirp's own "restricted" flag also drops the guest's
 * replies on forwarded UDP ports, so slirp runs unrestricted and this
 * filter drops, from the guest: TCP SYNs (without ACK) except DNS to
 * 10.0.2.3; UDP except DHCP, DNS to 10.0.2.3 and datagrams from a
 * forwarded guest address:port; ICMP beyond 10.0.2.0/24.  Frames that
 * are not IPv4 (ARP) pass.  True = drop.
 */
static bool restricted_drop(const struct sl *s, const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + 14, *l4;
	uint32_t src, dst;
	uint16_t sport, dport;
	unsigned ihl, i;

	if (len < 14 || f[12] != 0x08 || f[13] != 0x00)
		return false; /* ARP and the rest: slirp checks them */
	if (len < 34)
		return true;
	ihl = (ip[0] & 0xf) * 4u;
	if ((ip[0] >> 4) != 4 || ihl < 20 || len < 14 + ihl + 8)
		return true;
	l4 = ip + ihl;
	memcpy(&src, ip + 12, 4);
	memcpy(&dst, ip + 16, 4);
	sport = (uint16_t)(l4[0] << 8 | l4[1]);
	dport = (uint16_t)(l4[2] << 8 | l4[3]);
	switch (ip[9]) {
	case 6: /* TCP */
		if (len < 14 + ihl + 14)
			return true;
		if ((l4[13] & 0x12) != 0x02) /* not a bare SYN */
			return false;
		return !(dst == htonl(0x0a000203) && dport == 53);
	case 17: /* UDP */
		if (dport == 67 || (dst == htonl(0x0a000203) && dport == 53))
			return false;
		for (i = 0; i < s->nfwd_udp; i++)
			if (s->fwd_udp[i].port == sport &&
			    s->fwd_udp[i].addr == src)
				return false;
		return true;
	case 1: /* ICMP */
		return (ntohl(dst) & 0xffffff00u) != 0x0a000200u;
	default:
		return true;
	}
}

/* ---- backend ops (NIC threads) ---- */

static ssize_t sl_send(struct net_backend *be, const struct iovec *iov,
		       int iovcnt)
{
	struct sl *s = be->priv;
	struct frame *f;
	size_t len = 0, off = 0;
	int i;

	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (len > SLIRP_FRAME_MAX || len < 14)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	i = s->tx.n >= SLIRP_QUEUE_MAX;
	pthread_mutex_unlock(&s->lock);
	if (i)
		return -EAGAIN;
	f = malloc(sizeof(*f) + len);
	if (!f)
		return -ENOMEM;
	f->len = len;
	for (i = 0; i < iovcnt; i++) {
		memcpy(f->data + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	if (s->restricted && restricted_drop(s, f->data, len)) {
		free(f);
		return (ssize_t)len; /* like a firewall: silently */
	}
	pthread_mutex_lock(&s->lock);
	fq_push(&s->tx, f);
	pthread_mutex_unlock(&s->lock);
	wake(s);
	return (ssize_t)len;
}

static ssize_t sl_recv(struct net_backend *be, const struct iovec *iov,
		       int iovcnt)
{
	struct sl *s = be->priv;
	struct frame *f;
	size_t off = 0;
	int i;

	pthread_mutex_lock(&s->lock);
	f = fq_pop(&s->rx);
	pthread_mutex_unlock(&s->lock);
	if (!f)
		return 0;
	for (i = 0; i < iovcnt && off < f->len; i++) {
		size_t k = f->len - off;

		if (k > iov[i].iov_len)
			k = iov[i].iov_len;
		memcpy(iov[i].iov_base, f->data + off, k);
		off += k;
	}
	free(f);
	return (ssize_t)off;
}

static ssize_t sl_peek_len(struct net_backend *be)
{
	struct sl *s = be->priv;
	ssize_t n;

	pthread_mutex_lock(&s->lock);
	n = s->rx.head ? (ssize_t)s->rx.head->len : 0;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void sl_rx_enable(struct net_backend *be, bool on)
{
	struct sl *s = be->priv;

	if (!on)
		return;
	pthread_mutex_lock(&s->lock);
	s->rx_kick = true;
	pthread_mutex_unlock(&s->lock);
	wake(s);
}

static void sl_fini(struct net_backend *be)
{
	struct sl *s = be->priv;
	struct stimer *t;

	if (!s)
		return;
	if (s->started) {
		atomic_store(&s->stop, true);
		wake(s);
		pthread_join(s->thread, NULL);
	}
	if (s->slirp)
		slirp_cleanup(s->slirp);
	while ((t = s->timers)) {
		s->timers = t->next;
		free(t);
	}
	fq_free(&s->tx);
	fq_free(&s->rx);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_mutex_destroy(&s->lock);
	free(s->pfd);
	free(s);
	be->priv = NULL;
}

static const struct net_backend_ops slirp_ops = {
	.type = "slirp",
	.send = sl_send,
	.recv = sl_recv,
	.peek_len = sl_peek_len,
	.rx_enable = sl_rx_enable,
	.fini = sl_fini,
};

/* "[addr]:port" at *p (up to 'stop'); advances *p.  0 or -EINVAL. */
static int parse_addr_port(const char **p, char stop, struct in_addr def,
			   struct in_addr *addr, int *port)
{
	const char *colon = strchr(*p, ':');
	const char *end;
	char buf[32];
	size_t n;
	long v;
	char *e;

	if (!colon)
		return -EINVAL;
	n = (size_t)(colon - *p);
	if (n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, *p, n);
	buf[n] = 0;
	if (n == 0)
		*addr = def;
	else if (inet_pton(AF_INET, buf, addr) != 1)
		return -EINVAL;
	end = stop ? strchr(colon + 1, stop) : colon + 1 + strlen(colon + 1);
	if (!end || end == colon + 1)
		return -EINVAL;
	v = strtol(colon + 1, &e, 10);
	if (e != end || v < 1 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	*p = stop ? end + 1 : end;
	return 0;
}

/* Add one "proto:[haddr]:hport-[gaddr]:gport" rule.  0 or -errno. */
static int add_rule(struct sl *s, const char *key, const char *rule)
{
	struct in_addr any = {.s_addr = htonl(INADDR_ANY)}, guest, haddr,
		       gaddr;
	const char *p = rule;
	int udp, hport, gport;

	inet_pton(AF_INET, "10.0.2.15", &guest);
	if (!strncmp(p, "tcp:", 4))
		udp = 0;
	else if (!strncmp(p, "udp:", 4))
		udp = 1;
	else
		goto bad;
	p += 4;
	if (parse_addr_port(&p, '-', any, &haddr, &hport) ||
	    parse_addr_port(&p, 0, guest, &gaddr, &gport) || *p)
		goto bad;
	if (udp && s->nfwd_udp == sizeof(s->fwd_udp) / sizeof(s->fwd_udp[0])) {
		log_err("%s: at most %zu udp forwards", key,
			sizeof(s->fwd_udp) / sizeof(s->fwd_udp[0]));
		return -EINVAL;
	}
	if (slirp_add_hostfwd(s->slirp, udp, haddr, hport, gaddr, gport) <
	    0) {
		log_err("%s: cannot forward %s port %d (in use?)", key,
			udp ? "udp" : "tcp", hport);
		return -EADDRINUSE;
	}
	if (udp) {
		s->fwd_udp[s->nfwd_udp].addr = gaddr.s_addr;
		s->fwd_udp[s->nfwd_udp].port = (uint16_t)gport;
		s->nfwd_udp++;
	}
	return 0;
bad:
	log_err("%s: invalid rule '%s' (need tcp|udp:[hostaddr]:hostport-"
		"[guestaddr]:guestport)",
		key, rule);
	return -EINVAL;
}

static int add_hostfwd(struct sl *s, struct cfg_node *node)
{
	const char *v = cfg_get(node, "hostfwd");
	char key[160], *copy, *rule, *save = NULL;
	int rc = 0;

	if (!v)
		return 0;
	snprintf(key, sizeof(key), "%s.hostfwd", cfg_path(node));
	copy = strdup(v);
	if (!copy)
		return -ENOMEM;
	for (rule = strtok_r(copy, ";", &save); rule && !rc;
	     rule = strtok_r(NULL, ";", &save))
		rc = add_rule(s, key, rule);
	free(copy);
	return rc;
}

int net_slirp_open(struct net_backend **out, struct cfg_node *node,
		   const struct devctx *ctx, net_rx_cb cb, void *opaque)
{
	SlirpConfig cfg;
	struct net_backend *be;
	struct sl *s;
	bool open_net = false;
	int rc;

	(void)ctx;
	rc = cfg_get_bool(node, "open", false, &open_net);
	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	be = net_backend_alloc(&slirp_ops, cb, opaque);
	if (!s || !be) {
		free(s);
		free(be);
		return -ENOMEM;
	}
	s->be = be;
	s->wake_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	be->priv = s;
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wake_fd < 0) {
		rc = -errno;
		goto fail;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = 4;
	cfg.restricted = 0; /* see restricted_drop() */
	s->restricted = !open_net;
	cfg.in_enabled = true;
	inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
	inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
	cfg.vhostname = ctx && ctx->vm_name ? ctx->vm_name : NULL;
	s->slirp = slirp_new(&cfg, &slirp_cbs, s);
	if (!s->slirp) {
		log_err("%s: slirp: cannot start user networking",
			cfg_path(node));
		rc = -ENOMEM;
		goto fail;
	}
	rc = add_hostfwd(s, node);
	if (rc)
		goto fail;
	rc = pthread_create(&s->thread, NULL, slirp_thread, s);
	if (rc) {
		rc = -rc;
		log_errno(LOG_ERR, -rc, "slirp: cannot start its thread");
		goto fail;
	}
	s->started = true;
	*out = be;
	return 0;
fail:
	net_backend_close(be);
	return rc;
}
