/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * virtio-console (virtio 1.2 §5.3) with multiport: up to 16 named ports,
 * each backed by a UNIX stream socket that khyve creates and listens on.
 * "-s N,virtio-console,name=/path[,name2=/path2...]" (bhyve syntax) fills
 * port.<n>.name / port.<n>.path, n from 0; port n is the guest's port id n.
 *
 * Queues (VIRTIO_CONSOLE_F_MULTIPORT): 0/1 receive/transmit of port 0,
 * 2/3 control receive/transmit, then 2 per further port; max_nr_ports is
 * the highest configured port + 1.  The control protocol: on the driver's
 * DEVICE_READY we announce every port (DEVICE_ADD); on PORT_READY we send
 * PORT_NAME and, if a client is connected, PORT_OPEN(1); a client that
 * connects or goes away sends PORT_OPEN(1)/(0) to the guest; the guest's
 * own PORT_OPEN tells whether a program holds its end open.  A driver
 * without MULTIPORT gets port 0 alone, always open.
 *
 * Data: one client per port at a time (later ones are accepted and closed
 * at once).  Client bytes go to the port's receive queue, read straight
 * into the guest's buffers, only while the guest has the port open (Linux
 * discards data for closed ports) and has buffers posted: when the queue is
 * empty we stop polling the socket (the kernel's buffer pushes back on the
 * client) until the driver kicks that queue.  Guest bytes go to the client
 * with non-blocking sends; when the socket is full the chain stays in hand
 * (not returned to the guest) and the rest is sent on EPOLLOUT, so nothing
 * is lost while a client is connected.  Without a client the guest's bytes
 * are dropped and counted (tx_dropped), as a serial line with no one
 * listening.  A client that hangs up is dropped at once, unless it left
 * bytes and the guest has the port open: those are delivered first (the
 * port stays busy until the guest posts buffers for them).  Malformed control
 * messages (short, unknown events, bad port ids) are ignored with one
 * rate-limited warning; malformed chains or rings outside RAM put the device in
 * DEVICE_NEEDS_RESET.
 *
 * Threads and locks: sockets are watched by the event loop; accept,
 * client reads and disconnects run on the loop thread.  Queue kicks run on
 * the loop thread (ioeventfd) or on a vCPU thread (no ioeventfd); there
 * they may send to the client (non-blocking) and re-arm the client's
 * epoll mask (event_mod_fd), never block.  Reset and DRIVER_OK arrive on a
 * vCPU thread.  'lock' protects all of the softc.  Ring access is further
 * done with the transport's vd.lock held (lock order: lock, then vd.lock;
 * the transport never calls us with vd.lock held), so a concurrent reset
 * or queue re-enable cannot tear a ring down under us.  Work a guest could
 * make unbounded is cut into budgets and continued through event_post().
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "event/event.h"
#include "lib/log.h"
#include "virtio/virtio_pci.h"

#define CON_MAX_PORTS 16
#define CON_QUEUE_SIZE 64
#define CON_NAME_MAX 127
#define CON_CTRL_FIFO 64	   /* device -> driver messages waiting */
#define CON_BYTE_BUDGET (1u << 20) /* per pass, then continue later */
#define CON_CHAIN_BUDGET 256	   /* chains per pass, likewise */
#define CON_RL_MS 10000

struct con;

/* A control message waiting for a control receive buffer. */
struct con_msg {
	uint32_t id;
	uint16_t event, value;
};

struct con_port {
	struct con *con;
	unsigned id;
	bool configured;
	char *name, *path;
	int lfd, cfd; /* listening socket, client (-1: none) */
	struct event *lev, *cev;
	bool bound;	/* we created the socket file */
	dev_t sock_dev; /* ... and this is it (for teardown) */
	ino_t sock_ino;
	uint32_t armed;	      /* epoll mask currently set on cfd */
	bool rx_starved;      /* receive queue was empty: wait for a kick */
	bool guest_ready;     /* PORT_READY(1) seen (or no MULTIPORT) */
	bool guest_open;      /* a guest program has the port open */
	bool peer_gone;	      /* a send failed: the loop will disconnect */
	bool hup;	      /* hung up while we were not reading */
	bool tx_pending;      /* txc holds a chain partly sent */
	bool tx_more;	      /* budget ran out with chains left */
	struct vq_chain *txc; /* transmit chain (configured ports) */
	unsigned tx_seg;      /* send position in txc */
	size_t tx_segoff;
	uint64_t tx_dropped; /* guest bytes dropped (no client) */
	uint64_t refused;    /* clients refused (port busy) */
};

struct con {
	struct virtio_dev vd; /* first: pd->softc points here */
	struct virtio_dev_ops ops;
	pthread_mutex_t lock;
	struct event_loop *ev;
	unsigned nports; /* max_nr_ports: highest configured id + 1 */
	struct con_port port[CON_MAX_PORTS];
	uint8_t cfg[VIRTIO_CONSOLE_CFG_SIZE];
	bool multiport;	   /* negotiated (set at DRIVER_OK) */
	bool device_ready; /* DEVICE_READY handled since reset */
	bool ctrl_more;	   /* control transmit budget ran out */
	bool resume_posted;
	struct con_msg fifo[CON_CTRL_FIFO];
	unsigned fifo_head, fifo_len;
	uint64_t ctrl_dropped;
	struct vq_chain chain; /* scratch for rx and control (under lock) */
};

static void port_disconnect(struct con_port *p);
static void tx_run(struct con_port *p);
static void ctrl_guest(struct con *c);

/* ---- ring access ---- */

/* Enter a ring section (c->lock held): the queue if the device is live
 * and the queue enabled, else NULL.  Always pair with ring_end(). */
static struct vq *ring_begin(struct con *c, unsigned qi)
{
	pthread_mutex_lock(&c->vd.lock);
	if (!virtio_pci_live(&c->vd))
		return NULL;
	return virtio_queue_vq(&c->vd, qi);
}

/* Leave it: interrupt the driver for 'qi' if anything was pushed, and
 * mark the device broken for 'bad' (outside the transport lock). */
static void ring_end(struct con *c, unsigned qi, bool pushed, const char *bad)
{
	if (pushed)
		virtio_pci_notify_queue(&c->vd, qi);
	pthread_mutex_unlock(&c->vd.lock);
	if (bad)
		virtio_pci_needs_reset(&c->vd, bad);
}

/* Continue budgeted work later on the loop thread. */
static void con_resume(void *arg, uint32_t events)
{
	struct con *c = arg;
	unsigned i;

	(void)events;
	pthread_mutex_lock(&c->lock);
	c->resume_posted = false;
	if (c->ctrl_more)
		ctrl_guest(c);
	for (i = 0; i < c->nports; i++)
		if (c->port[i].tx_more)
			tx_run(&c->port[i]);
	pthread_mutex_unlock(&c->lock);
}

static void post_resume(struct con *c)
{
	if (c->resume_posted)
		return;
	if (event_post(c->ev, con_resume, c) == 0)
		c->resume_posted = true;
}

/* ---- the client socket's epoll mask ---- */

static bool rx_wanted(const struct con_port *p)
{
	return p->cfd >= 0 && p->guest_open && !p->rx_starved;
}

/* The client is gone and nothing is left for the guest to read: the loop
 * thread must disconnect it. */
static bool must_drop(const struct con_port *p)
{
	return p->peer_gone || (p->hup && !p->guest_open);
}

/*
 * Set the client's mask from the port state.  With nothing wanted the fd
 * is parked with EPOLLONESHOT alone, so a hang-up is reported once and
 * then nothing until we re-arm (no busy loop on EPOLLHUP while we are not
 * reading).  Callable from any thread (epoll_ctl), c->lock held.
 */
static void port_arm(struct con_port *p)
{
	uint32_t want = 0;
	int rc;

	if (p->cfd < 0 || !p->cev)
		return;
	if (must_drop(p))
		want = EPOLLIN | EPOLLOUT; /* wake the loop to disconnect */
	else
		want = (rx_wanted(p) ? EPOLLIN : 0) |
		       (p->tx_pending ? EPOLLOUT : 0);
	if (!want)
		want = EPOLLONESHOT;
	if (want == p->armed)
		return;
	rc = event_mod_fd(p->cev, want);
	if (rc)
		log_ratelimited(CON_RL_MS, "%s: port %u: epoll: %s",
				p->con->vd.pd->name, p->id, strerror(-rc));
	else
		p->armed = want;
}

/* ---- control messages to the driver (control receive queue) ---- */

static size_t ctrl_encode(const struct con *c, const struct con_msg *m,
			  uint8_t *buf)
{
	struct virtio_console_control h = {
		.id = htole32(m->id),
		.event = htole16(m->event),
		.value = htole16(m->value),
	};
	size_t len = sizeof(h);

	memcpy(buf, &h, sizeof(h));
	if (m->event == VIRTIO_CONSOLE_PORT_NAME && m->id < c->nports &&
	    c->port[m->id].name) {
		size_t n = strlen(c->port[m->id].name) + 1; /* with NUL */

		memcpy(buf + len, c->port[m->id].name, n);
		len += n;
	}
	return len;
}

/* Deliver queued messages into the driver's control receive buffers. */
static void ctrl_flush(struct con *c)
{
	uint8_t buf[sizeof(struct virtio_console_control) + CON_NAME_MAX + 1];
	const char *bad = NULL;
	bool pushed = false;
	struct vq *q;

	if (!c->multiport || !c->fifo_len)
		return;
	q = ring_begin(c, VIRTIO_CONSOLE_Q_CTRL_RX);
	while (q && c->fifo_len) {
		size_t len, n;
		int rc = vq_pop(q, &c->chain);

		if (rc == 0)
			break;
		if (rc < 0) {
			bad = q->err ? q->err : "bad control receive chain";
			break;
		}
		len = ctrl_encode(c, &c->fifo[c->fifo_head], buf);
		n = vq_chain_write(&c->chain, 0, buf, len);
		if (n < len)
			log_ratelimited(CON_RL_MS,
					"%s: control buffer of %u bytes too "
					"small for a %zu-byte message",
					c->vd.pd->name, c->chain.wlen, len);
		vq_push(q, c->chain.head, (uint32_t)n);
		pushed = true;
		c->fifo_head = (c->fifo_head + 1) % CON_CTRL_FIFO;
		c->fifo_len--;
	}
	ring_end(c, VIRTIO_CONSOLE_Q_CTRL_RX, pushed, bad);
}

/* Queue a message for the driver (c->lock held).  Inside a ring section
 * only queue; ctrl_flush() delivers. */
static void ctrl_queue(struct con *c, uint32_t id, uint16_t event,
		       uint16_t value)
{
	struct con_msg *m;

	if (!c->multiport)
		return;
	if (c->fifo_len == CON_CTRL_FIFO) {
		c->ctrl_dropped++;
		log_ratelimited(CON_RL_MS,
				"%s: driver posts no control buffers; "
				"control message dropped",
				c->vd.pd->name);
		return;
	}
	m = &c->fifo[(c->fifo_head + c->fifo_len) % CON_CTRL_FIFO];
	*m = (struct con_msg){.id = id, .event = event, .value = value};
	c->fifo_len++;
}

/* Queue a message and try to deliver it (c->lock held, outside ring
 * sections). */
static void ctrl_send(struct con *c, uint32_t id, uint16_t event,
		      uint16_t value)
{
	ctrl_queue(c, id, event, value);
	ctrl_flush(c);
}

/* ---- control messages from the driver (control transmit queue) ---- */

/* The port a driver message names, or NULL (warned). */
static struct con_port *ctrl_port(struct con *c, uint32_t id, uint16_t event)
{
	if (id < c->nports && c->port[id].configured)
		return &c->port[id];
	log_ratelimited(CON_RL_MS,
			"%s: control event %u for unknown port %u "
			"ignored",
			c->vd.pd->name, event, id);
	return NULL;
}

/* Act on one driver message.  Only queues replies: we are inside the
 * control transmit ring section. */
static void ctrl_handle(struct con *c, const struct virtio_console_control *m,
			bool *flush)
{
	uint32_t id = le32toh(m->id);
	uint16_t event = le16toh(m->event), value = le16toh(m->value);
	struct con_port *p;
	unsigned i;

	switch (event) {
	case VIRTIO_CONSOLE_DEVICE_READY:
		if (value != 1 || c->device_ready) {
			log_ratelimited(CON_RL_MS, "%s: DEVICE_READY(%u) %s",
					c->vd.pd->name, value,
					value != 1 ? "failure reported"
						   : "repeated; ignored");
			break;
		}
		c->device_ready = true;
		for (i = 0; i < c->nports; i++)
			if (c->port[i].configured)
				ctrl_queue(c, i, VIRTIO_CONSOLE_DEVICE_ADD, 0);
		*flush = true;
		break;
	case VIRTIO_CONSOLE_PORT_READY:
		if (!(p = ctrl_port(c, id, event)))
			break;
		if (value != 1) {
			log_ratelimited(CON_RL_MS,
					"%s: the guest could not "
					"add port %u (%s)",
					c->vd.pd->name, id, p->name);
			break;
		}
		p->guest_ready = true;
		ctrl_queue(c, id, VIRTIO_CONSOLE_PORT_NAME, 0);
		if (p->cfd >= 0 && !p->peer_gone)
			ctrl_queue(c, id, VIRTIO_CONSOLE_PORT_OPEN, 1);
		*flush = true;
		break;
	case VIRTIO_CONSOLE_PORT_OPEN:
		if (!(p = ctrl_port(c, id, event)))
			break;
		p->guest_open = value != 0;
		p->rx_starved = false;
		port_arm(p);
		break;
	default:
		log_ratelimited(CON_RL_MS,
				"%s: control event %u (port %u) "
				"from the driver ignored",
				c->vd.pd->name, event, id);
		break;
	}
}

/* Process the control transmit queue (c->lock held). */
static void ctrl_guest(struct con *c)
{
	struct virtio_console_control m;
	const char *bad = NULL;
	bool pushed = false, flush = false;
	unsigned n = 0;
	struct vq *q;

	c->ctrl_more = false;
	if (!c->multiport)
		return;
	q = ring_begin(c, VIRTIO_CONSOLE_Q_CTRL_TX);
	while (q) {
		int rc;

		if (n++ == CON_CHAIN_BUDGET) {
			c->ctrl_more = true;
			post_resume(c);
			break;
		}
		rc = vq_pop(q, &c->chain);
		if (rc == 0)
			break;
		if (rc < 0) {
			bad = q->err ? q->err : "bad control transmit chain";
			break;
		}
		if (vq_chain_read(&c->chain, 0, &m, sizeof(m)) < sizeof(m))
			log_ratelimited(CON_RL_MS,
					"%s: short control message "
					"(%u bytes) ignored",
					c->vd.pd->name, c->chain.rlen);
		else
			ctrl_handle(c, &m, &flush);
		vq_push(q, c->chain.head, 0);
		pushed = true;
	}
	ring_end(c, VIRTIO_CONSOLE_Q_CTRL_TX, pushed, bad);
	/* replies were only queued inside the section */
	if (flush)
		ctrl_flush(c);
}

/* ---- data: client -> guest ---- */

/* Fill the port's receive buffers from the client (loop thread). */
static void port_rx(struct con_port *p)
{
	struct con *c = p->con;
	unsigned qi = VIRTIO_CONSOLE_Q_RX(p->id);
	struct vq_chain *ch = &c->chain;
	const char *bad = NULL;
	bool pushed = false, eof = false;
	size_t total = 0;
	struct vq *q;

	q = ring_begin(c, qi);
	if (!q)
		p->rx_starved = true; /* not live: wait for DRIVER_OK/kick */
	while (q && total < CON_BYTE_BUDGET) {
		int rc = vq_pop(q, ch);
		ssize_t n;

		if (rc == 0) {
			p->rx_starved = true;
			break;
		}
		if (rc < 0) {
			bad = q->err ? q->err : "bad receive chain";
			break;
		}
		if (ch->nw == 0) {
			log_ratelimited(CON_RL_MS,
					"%s: port %u: receive "
					"buffer not writable",
					c->vd.pd->name, p->id);
			vq_push(q, ch->head, 0);
			pushed = true;
			continue;
		}
		n = readv(p->cfd, ch->iov + ch->nr, (int)ch->nw);
		if (n > 0) {
			vq_push(q, ch->head, (uint32_t)n);
			pushed = true;
			total += (size_t)n;
			continue;
		}
		vq_unpop(q, 1);
		if (n == 0 ||
		    (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			eof = true;
		break;
	}
	ring_end(c, qi, pushed, bad);
	if (eof)
		port_disconnect(p);
}

/* ---- data: guest -> client ---- */

/* Send the rest of txc.  1 all sent, 0 would block, -1 client gone. */
static int tx_send(struct con_port *p)
{
	const struct vq_chain *t = p->txc;

	while (p->tx_seg < t->nr) {
		const struct iovec *v = &t->iov[p->tx_seg];
		ssize_t n;

		if (p->tx_segoff >= v->iov_len) {
			p->tx_seg++;
			p->tx_segoff = 0;
			continue;
		}
		n = send(p->cfd, (const char *)v->iov_base + p->tx_segoff,
			 v->iov_len - p->tx_segoff,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		p->tx_segoff += (size_t)n;
	}
	return 1;
}

/* Bytes of txc not sent yet. */
static uint64_t tx_left(const struct con_port *p)
{
	const struct vq_chain *t = p->txc;
	uint64_t left = 0;
	unsigned i;

	for (i = p->tx_seg; i < t->nr; i++)
		left += t->iov[i].iov_len - (i == p->tx_seg ? p->tx_segoff : 0);
	return left;
}

/*
 * Move the port's transmit queue to the client (c->lock held, any
 * thread).  Keeps a chain the socket can't take yet in txc and waits for
 * EPOLLOUT; drops the data when there is no client.
 */
static void tx_run(struct con_port *p)
{
	struct con *c = p->con;
	unsigned qi = VIRTIO_CONSOLE_Q_TX(p->id);
	struct vq_chain *t = p->txc ? p->txc : &c->chain;
	bool pushed = false, connected;
	const char *bad = NULL;
	uint64_t total = 0;
	unsigned n = 0;
	struct vq *q;
	int rc;

	p->tx_more = false;
	q = ring_begin(c, qi);
	if (!q)
		goto out;
	connected = p->cfd >= 0 && !p->peer_gone;
	if (p->tx_pending) {
		rc = connected ? tx_send(p) : -1;
		if (rc == 0)
			goto out;
		if (rc < 0) {
			p->tx_dropped += tx_left(p);
			p->peer_gone = p->cfd >= 0;
		}
		p->tx_pending = false;
		vq_push(q, t->head, 0);
		pushed = true;
	}
	for (;;) {
		if (n++ == CON_CHAIN_BUDGET || total >= CON_BYTE_BUDGET) {
			p->tx_more = true;
			post_resume(c);
			break;
		}
		rc = vq_pop(q, t);
		if (rc == 0)
			break;
		if (rc < 0) {
			bad = q->err ? q->err : "bad transmit chain";
			break;
		}
		total += t->rlen;
		connected = p->cfd >= 0 && !p->peer_gone;
		if (!connected) {
			p->tx_dropped += t->rlen;
		} else {
			p->tx_seg = 0;
			p->tx_segoff = 0;
			rc = tx_send(p);
			if (rc == 0) {
				p->tx_pending = true;
				break;
			}
			if (rc < 0) {
				p->tx_dropped += tx_left(p);
				p->peer_gone = true;
			}
		}
		vq_push(q, t->head, 0);
		pushed = true;
	}
out:
	ring_end(c, qi, pushed, bad);
	port_arm(p);
}

/* ---- client sockets (loop thread) ---- */

/* Drop the client: close it, give back a half-sent chain, tell the guest.
 * Loop thread (it deletes the event), c->lock held. */
static void port_disconnect(struct con_port *p)
{
	struct con *c = p->con;

	if (p->cfd < 0)
		return;
	event_del(p->cev);
	p->cev = NULL;
	close(p->cfd);
	p->cfd = -1;
	p->armed = 0;
	p->peer_gone = p->hup = false;
	log_debug("%s: port %u (%s): client disconnected", c->vd.pd->name,
		  p->id, p->name);
	if (p->guest_ready)
		ctrl_send(c, p->id, VIRTIO_CONSOLE_PORT_OPEN, 0);
	/* a half-sent chain and whatever queued behind it are dropped */
	tx_run(p);
}

/* Bytes the client sent that we have not read (0 on error). */
static int unread(const struct con_port *p)
{
	int n = 0;

	if (ioctl(p->cfd, FIONREAD, &n) < 0)
		return 0;
	return n;
}

static void on_client(void *arg, uint32_t events)
{
	struct con_port *p = arg;
	struct con *c = p->con;

	pthread_mutex_lock(&c->lock);
	if (p->cfd < 0)
		goto out;
	if ((events & EPOLLOUT) && !must_drop(p))
		tx_run(p);
	if (p->cfd >= 0 && !must_drop(p) && (events & (EPOLLIN | EPOLLHUP))) {
		if (rx_wanted(p))
			port_rx(p); /* reads to EOF on a hang-up */
		else if (events & EPOLLHUP)
			p->hup = true;
	}
	/* a hung-up client is kept only for bytes the guest will read */
	if (p->cfd >= 0 && p->hup && !must_drop(p) && unread(p) == 0)
		p->peer_gone = true;
	if (p->cfd >= 0 && (must_drop(p) || (events & EPOLLERR)))
		port_disconnect(p);
	else if (p->cfd >= 0)
		port_arm(p);
out:
	pthread_mutex_unlock(&c->lock);
}

static void on_accept(void *arg, uint32_t events)
{
	struct con_port *p = arg;
	struct con *c = p->con;
	uint32_t want;
	int fd, rc;

	(void)events;
	fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	pthread_mutex_lock(&c->lock);
	if (p->cfd >= 0) {
		p->refused++;
		pthread_mutex_unlock(&c->lock);
		close(fd);
		log_ratelimited(CON_RL_MS,
				"%s: port %u (%s): already has a "
				"client; connection refused",
				c->vd.pd->name, p->id, p->name);
		return;
	}
	p->cfd = fd;
	p->rx_starved = p->hup = p->peer_gone = false;
	want = rx_wanted(p) ? EPOLLIN : EPOLLONESHOT;
	rc = event_add_fd(c->ev, fd, want, on_client, p, &p->cev);
	if (rc) {
		p->cfd = -1;
		pthread_mutex_unlock(&c->lock);
		close(fd);
		log_errno(LOG_WARN, -rc, "%s: port %u: cannot watch client",
			  c->vd.pd->name, p->id);
		return;
	}
	p->armed = want;
	log_debug("%s: port %u (%s): client connected", c->vd.pd->name, p->id,
		  p->name);
	if (p->guest_ready)
		ctrl_send(c, p->id, VIRTIO_CONSOLE_PORT_OPEN, 1);
	pthread_mutex_unlock(&c->lock);
}

/* ---- virtio hooks ---- */

static void con_notify(struct virtio_dev *vd, unsigned qi)
{
	struct con *c = (struct con *)vd;
	struct con_port *p;
	unsigned id;

	pthread_mutex_lock(&c->lock);
	if (qi == VIRTIO_CONSOLE_Q_CTRL_RX || qi == VIRTIO_CONSOLE_Q_CTRL_TX) {
		if (qi == VIRTIO_CONSOLE_Q_CTRL_RX)
			ctrl_flush(c);
		else
			ctrl_guest(c);
		goto out;
	}
	id = qi < 2 ? 0 : (qi - 2) / 2;
	if (id >= c->nports || (id > 0 && !c->multiport))
		goto out;
	p = &c->port[id];
	if (qi == VIRTIO_CONSOLE_Q_RX(id)) {
		p->rx_starved = false; /* new buffers: read the client again */
		port_arm(p);
	} else {
		tx_run(p);
	}
out:
	pthread_mutex_unlock(&c->lock);
}

static void con_driver_ok(struct virtio_dev *vd)
{
	struct con *c = (struct con *)vd;
	unsigned i;

	pthread_mutex_lock(&c->lock);
	c->multiport = virtio_has_feature(vd, VIRTIO_CONSOLE_F_MULTIPORT);
	for (i = 0; i < c->nports; i++) {
		struct con_port *p = &c->port[i];

		if (!c->multiport && i == 0)
			p->guest_ready = p->guest_open = true;
		p->rx_starved = false;
		port_arm(p);
		if (c->multiport || i == 0)
			tx_run(p);
	}
	ctrl_guest(c);
	ctrl_flush(c);
	pthread_mutex_unlock(&c->lock);
}

static void con_reset(struct virtio_dev *vd)
{
	struct con *c = (struct con *)vd;
	unsigned i;

	pthread_mutex_lock(&c->lock);
	c->multiport = false;
	c->device_ready = false;
	c->ctrl_more = false;
	c->fifo_head = c->fifo_len = 0;
	for (i = 0; i < c->nports; i++) {
		struct con_port *p = &c->port[i];

		if (p->tx_pending)
			p->tx_dropped += tx_left(p); /* the ring is gone */
		p->tx_pending = p->tx_more = false;
		p->guest_ready = p->guest_open = false;
		p->rx_starved = false;
		port_arm(p);
	}
	pthread_mutex_unlock(&c->lock);
}

static const struct virtio_dev_ops con_ops_template = {
	.name = "virtio-console",
	.device_type = VIRTIO_ID_CONSOLE,
	.legacy_pci_id = VIRTIO_PCI_LEGACY_CONSOLE,
	.pci_class = 0x07, /* simple communications: as bhyve and QEMU */
	.pci_subclass = 0x80,
	.queue_size = CON_QUEUE_SIZE,
	.features = VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT) |
		    VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
		    VIRTIO_BIT(VIRTIO_F_EVENT_IDX),
	.cfg_size = VIRTIO_CONSOLE_CFG_SIZE,
	.queue_notify = con_notify,
	.reset = con_reset,
	.driver_ok = con_driver_ok,
};

/* ---- configuration ---- */

/* A port name the guest can use as a device name.  0 or -EINVAL (logged,
 * naming 'what'). */
static int check_name(const char *what, const char *name)
{
	const unsigned char *s;

	if (!*name) {
		log_err("%s: empty port name", what);
		return -EINVAL;
	}
	if (strlen(name) > CON_NAME_MAX) {
		log_err("%s: port name longer than %d bytes", what,
			CON_NAME_MAX);
		return -EINVAL;
	}
	for (s = (const unsigned char *)name; *s; s++) {
		if (*s < 0x20 || *s == 0x7f || *s == '/') {
			log_err("%s: port name '%s' has a '/' or a control "
				"character",
				what, name);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_path(const char *what, const char *path)
{
	struct sockaddr_un sa;

	if (!*path) {
		log_err("%s: empty socket path", what);
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_err("%s: socket path longer than %zu bytes: %s", what,
			sizeof(sa.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* "port number": decimal 0..15 without leading zeros, or -1. */
static int port_number(const char *s)
{
	if (s[0] >= '0' && s[0] <= '9' && !s[1])
		return s[0] - '0';
	if (s[0] == '1' && s[1] >= '0' && s[1] <= '5' && !s[2])
		return 10 + s[1] - '0';
	return -1;
}

/* Check port.<n> node 'n' and take it into c->port[].  0 or -errno. */
static int read_port(struct con *c, struct cfg_node *n)
{
	char base[128], wname[160], wpath[160];
	const char *name, *path;
	struct con_port *p;
	unsigned i;
	int id, rc;

	snprintf(base, sizeof(base), "%s", cfg_path(n));
	snprintf(wname, sizeof(wname), "%s.name", base);
	snprintf(wpath, sizeof(wpath), "%s.path", base);
	id = port_number(cfg_name(n));
	if (id < 0 || cfg_is_leaf(n)) {
		log_err("%s: not a port: ports are port.0 to port.%d, each "
			"with .name and .path",
			base, CON_MAX_PORTS - 1);
		return -EINVAL;
	}
	name = cfg_get(n, "name");
	path = cfg_get(n, "path");
	if (!name || !path) {
		log_err("%s: not set", name ? wpath : wname);
		return -EINVAL;
	}
	if ((rc = check_name(wname, name)) || (rc = check_path(wpath, path)))
		return rc;
	for (i = 0; i < CON_MAX_PORTS; i++) {
		const struct con_port *o = &c->port[i];

		if (o->configured && strcmp(o->name, name) == 0) {
			log_err("%s: '%s' is also the name of port %u", wname,
				name, i);
			return -EINVAL;
		}
		if (o->configured && strcmp(o->path, path) == 0) {
			log_err("%s: '%s' is also the socket of port %u", wpath,
				path, i);
			return -EINVAL;
		}
	}
	p = &c->port[id];
	p->name = strdup(name);
	p->path = strdup(path);
	if (!p->name || !p->path)
		return -ENOMEM;
	p->configured = true;
	if ((unsigned)id + 1 > c->nports)
		c->nports = (unsigned)id + 1;
	return 0;
}

/* Read every port.<n> of the device's node.  0 or -errno (logged). */
static int read_ports(struct con *c, struct cfg_node *node)
{
	struct cfg_node *ports = cfg_find(node, "port"), *n;
	int rc;

	for (n = ports ? cfg_first_child(ports) : NULL; n; n = cfg_next(n))
		if ((rc = read_port(c, n)))
			return rc;
	if (!c->nports) {
		log_err("%s: no ports configured (port.<n>.name and "
			"port.<n>.path)",
			cfg_path(node));
		return -EINVAL;
	}
	return 0;
}

/* A leftover socket at 'path' is removed; a live one or any other file
 * is an error.  0 or -errno (logged). */
static int clear_stale(struct con_port *p, const struct sockaddr_un *sa)
{
	const char *dev = p->con->vd.pd->name;
	struct stat st;
	int fd, rc, err;

	if (lstat(p->path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: port %s: %s", dev, p->name,
			  p->path);
		return rc;
	}
	if (!S_ISSOCK(st.st_mode)) {
		log_err("%s: port %s: %s exists and is not a socket", dev,
			p->name, p->path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	err = errno;
	close(fd);
	if (rc == 0 || err != ECONNREFUSED) {
		log_err("%s: port %s: socket %s is in use", dev, p->name,
			p->path);
		return -EADDRINUSE;
	}
	if (unlink(p->path) < 0 && errno != ENOENT) {
		rc = -errno;
		log_errno(LOG_ERR, -rc,
			  "%s: port %s: cannot remove stale "
			  "socket %s",
			  dev, p->name, p->path);
		return rc;
	}
	return 0;
}

/* Create, bind and watch the port's listening socket.  0 or -errno. */
static int port_listen(struct con_port *p)
{
	struct con *c = p->con;
	const char *dev = c->vd.pd->name;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int rc;

	memcpy(sa.sun_path, p->path, strlen(p->path) + 1); /* checked */
	if ((rc = clear_stale(p, &sa)))
		return rc;
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->lfd < 0) {
		rc = -errno;
		goto fail;
	}
	if (bind(p->lfd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto fail;
	}
	if (stat(p->path, &st) == 0) {
		p->bound = true;
		p->sock_dev = st.st_dev;
		p->sock_ino = st.st_ino;
	}
	if (listen(p->lfd, 4) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = event_add_fd(c->ev, p->lfd, EPOLLIN, on_accept, p, &p->lev);
	if (rc)
		goto fail;
	return 0;
fail:
	log_errno(LOG_ERR, -rc, "%s: port %s: cannot listen on %s", dev,
		  p->name, p->path);
	return rc;
}

/* Remove our socket file, unless someone replaced it meanwhile. */
static void port_unlink(struct con_port *p)
{
	struct stat st;

	if (!p->bound)
		return;
	if (lstat(p->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == p->sock_dev && st.st_ino == p->sock_ino)
		(void)unlink(p->path);
	p->bound = false;
}

static void con_free(struct con *c)
{
	unsigned i;

	for (i = 0; i < CON_MAX_PORTS; i++) {
		struct con_port *p = &c->port[i];

		if (p->cev)
			event_del(p->cev);
		if (p->cfd >= 0)
			close(p->cfd);
		if (p->lev)
			event_del(p->lev);
		if (p->lfd >= 0)
			close(p->lfd);
		port_unlink(p);
		if (p->configured)
			log_debug("%s: port %u (%s): %llu bytes dropped, %llu "
				  "clients refused",
				  c->vd.pd ? c->vd.pd->name : "virtio-console",
				  i, p->name, (unsigned long long)p->tx_dropped,
				  (unsigned long long)p->refused);
		free(p->name);
		free(p->path);
		free(p->txc);
	}
	virtio_pci_fini(&c->vd);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int con_init(struct pci_dev *pd, struct cfg_node *node)
{
	struct con *c = calloc(1, sizeof(*c));
	uint32_t max;
	unsigned i;
	int rc;

	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->ev = pd->ctx->ev;
	c->vd.pd = pd;
	for (i = 0; i < CON_MAX_PORTS; i++) {
		c->port[i].con = c;
		c->port[i].id = i;
		c->port[i].lfd = c->port[i].cfd = -1;
	}
	if ((rc = read_ports(c, node)))
		goto fail;
	if (!c->ev) {
		log_err("%s: needs the event loop", pd->name);
		rc = -EINVAL;
		goto fail;
	}
	for (i = 0; i < c->nports; i++) {
		if (c->port[i].configured &&
		    !(c->port[i].txc = malloc(sizeof(struct vq_chain)))) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	c->ops = con_ops_template;
	c->ops.nqueues = 2 * (c->nports + 1);
	max = htole32(c->nports);
	memcpy(c->cfg + VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, &max, sizeof(max));
	pd->softc = c;
	rc = virtio_pci_init(&c->vd, pd, &c->ops, c->cfg);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: cannot set up", pd->name);
		goto fail;
	}
	for (i = 0; i < c->nports; i++)
		if (c->port[i].configured && (rc = port_listen(&c->port[i])))
			goto fail;
	return 0;
fail:
	pd->softc = NULL;
	con_free(c);
	return rc;
}

static void con_fini(struct pci_dev *pd)
{
	struct con *c = pd->softc;

	if (!c)
		return;
	con_free(c);
	pd->softc = NULL;
}

static const struct pci_devops con_pci = VIRTIO_PCI_DEVOPS(con_init, con_fini);

static const struct cfg_key con_keys[] = {
	{"port.*.name", CFG_STRING, NULL,
	 "name of guest port N (/dev/virtio-ports/NAME in Linux)", 0, 0, 0},
	{"port.*.path", CFG_STRING, NULL,
	 "UNIX socket khyve listens on for port N", 0, 0, 0},
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

/* "name=/path[,name=/path...]" -> port.<i>.name / port.<i>.path */
static int con_legacy(struct cfg_node *node, const char *opts)
{
	char *copy, *tok, *rest, *names[CON_MAX_PORTS], *paths[CON_MAX_PORTS];
	char key[32];
	unsigned n = 0, i;
	int rc = 0;

	if (!opts || !*opts) {
		log_err("virtio-console: no ports given "
			"(expected name=/path[,name=/path...])");
		return -EINVAL;
	}
	copy = strdup(opts);
	if (!copy)
		return -ENOMEM;
	for (rest = copy; rc == 0 && (tok = strsep(&rest, ",")); n++) {
		char *eq = strchr(tok, '=');

		if (!eq || eq == tok) {
			log_err("virtio-console: invalid port '%s' "
				"(expected name=/path)",
				tok);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		if (n == CON_MAX_PORTS) {
			log_err("virtio-console: more than %d ports",
				CON_MAX_PORTS);
			rc = -EINVAL;
			break;
		}
		names[n] = tok;
		paths[n] = eq + 1;
		if ((rc = check_name("virtio-console", tok)) ||
		    (rc = check_path("virtio-console", eq + 1)))
			break;
		for (i = 0; i < n; i++) {
			if (strcmp(names[i], tok) == 0 ||
			    strcmp(paths[i], eq + 1) == 0) {
				log_err("virtio-console: duplicate port %s "
					"'%s'",
					strcmp(names[i], tok) == 0 ? "name"
								   : "path",
					strcmp(names[i], tok) == 0 ? tok
								   : eq + 1);
				rc = -EINVAL;
				break;
			}
		}
		if (rc)
			break;
		snprintf(key, sizeof(key), "port.%u.name", n);
		if ((rc = cfg_set(node, key, tok)))
			break;
		snprintf(key, sizeof(key), "port.%u.path", n);
		if ((rc = cfg_set(node, key, eq + 1)))
			break;
	}
	free(copy);
	return rc < 0 ? -EINVAL : 0;
}

static const struct devmodel con_model = {
	.name = "virtio-console",
	.kind = DEVMODEL_PCI,
	.keys = con_keys,
	.parse_legacy = con_legacy,
	.pci = &con_pci,
};
DEVMODEL_SET(con_model);
