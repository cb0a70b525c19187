/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for virtio-console without KVM.  The bhyve option syntax
 * through flags_parse() and the config check; socket set-up (stale, live
 * and foreign files at the socket path) and config errors at init; the
 * multiport handshake driven by the vdrv test driver (DEVICE_READY ->
 * DEVICE_ADD, PORT_READY -> PORT_NAME, clients -> PORT_OPEN(1)/(0));
 * data both ways with host clients on the UNIX sockets, including a guest
 * with no receive buffers (the device stops reading, then resumes on the
 * kick), a client that doesn't read (the chain waits for EPOLLOUT), a second
 * client (refused), a port the guest has closed; hostile control messages
 * and chains; reset; a driver without MULTIPORT on the legacy interface;
 * socket files removed at teardown.
 *
 * Threads: the event loop runs on its own thread (accepts, client reads,
 * EPOLLOUT); the main thread is the guest (its kicks run the device's
 * queue handlers synchronously, as a vCPU without ioeventfd would).  The
 * guest side only polls the used rings, so no locks are needed here.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/flags.h"
#include "config/keys.h"
#include "event/event.h"
#include "tests/dev/vdrv.h"
#include "tests/tap.h"

#define WAIT_MS 3000
#define QSIZE 64
#define Q_CRX VIRTIO_CONSOLE_Q_CTRL_RX
#define Q_CTX VIRTIO_CONSOLE_Q_CTRL_TX

static char dir[64];
static uint64_t bufgpa[VDRV_MAXQ][QSIZE]; /* guest buffer of each head */

/* ---- option syntax ---- */

static struct cfg_node *parse(int *rc, const char *slot)
{
	struct cfg_node *root = cfg_new();
	char *argv[5];
	int i;

	argv[0] = strdup("khyve");
	argv[1] = strdup("-s");
	argv[2] = strdup(slot);
	argv[3] = strdup("vm");
	argv[4] = NULL;
	flags_set_defaults(root);
	*rc = flags_parse(root, 4, argv);
	for (i = 0; i < 4; i++)
		free(argv[i]);
	return root;
}

static void test_parse(void)
{
	static const char *const bad[] = {
		"3,virtio-console",
		"3,virtio-console,",
		"3,virtio-console,noequals",
		"3,virtio-console,=/tmp/x.sock",
		"3,virtio-console,a=",
		"3,virtio-console,a=/tmp/a.sock,",
		"3,virtio-console,a=/tmp/a.sock,,b=/tmp/b.sock",
		"3,virtio-console,a/b=/tmp/a.sock",
		"3,virtio-console,a=/tmp/a.sock,a=/tmp/b.sock",
		"3,virtio-console,a=/tmp/a.sock,b=/tmp/a.sock",
	};
	struct cfg_node *root;
	char opt[1024], key[64];
	unsigned i;
	int rc, n;

	root = parse(&rc, "3,virtio-console,org.khyve.a=/tmp/a.sock");
	is_int(rc, 0, "one port parses");
	is_str(cfg_get(root, "pci.0.3.0.device"), "virtio-console",
	       "device key");
	is_str(cfg_get(root, "pci.0.3.0.port.0.name"), "org.khyve.a",
	       "port.0.name");
	is_str(cfg_get(root, "pci.0.3.0.port.0.path"), "/tmp/a.sock",
	       "port.0.path");
	ok(!cfg_get_raw(root, "pci.0.3.0.port.1.name"), "no port.1");
	is_int(config_check_all(root), 0, "the tree passes the schema");
	cfg_set(root, "pci.0.3.0.port.0.mode", "raw");
	is_int(config_check_all(root), -EINVAL,
	       "an unknown port key is rejected by the schema");
	cfg_free(root);

	root = parse(&rc, "3,virtio-console,a=/tmp/a.sock,b=/tmp/b.sock,"
			  "c=/tmp/x=y.sock");
	is_int(rc, 0, "three ports parse");
	is_str(cfg_get(root, "pci.0.3.0.port.1.name"), "b", "port.1.name");
	is_str(cfg_get(root, "pci.0.3.0.port.2.name"), "c", "port.2.name");
	is_str(cfg_get(root, "pci.0.3.0.port.2.path"), "/tmp/x=y.sock",
	       "a path may hold '='");
	is_int(config_check_all(root), 0, "three ports pass the schema");
	cfg_free(root);

	for (n = 16; n <= 17; n++) {
		int len = snprintf(opt, sizeof(opt), "3,virtio-console");

		for (i = 0; i < (unsigned)n; i++)
			len += snprintf(opt + len, sizeof(opt) - (size_t)len,
					",p%u=/tmp/p%u.sock", i, i);
		root = parse(&rc, opt);
		if (n == 16) {
			is_int(rc, 0, "16 ports parse");
			is_str(cfg_get(root, "pci.0.3.0.port.15.path"),
			       "/tmp/p15.sock", "port.15.path");
		} else {
			ok(rc < 0, "17 ports: error");
			ok(!cfg_find(root, "pci.0.3.0"),
			   "and no half-filled node is left");
		}
		cfg_free(root);
	}

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		root = parse(&rc, bad[i]);
		ok(rc < 0, "'%s': error", bad[i]);
		cfg_free(root);
	}
	n = snprintf(opt, sizeof(opt), "3,virtio-console,a=/");
	for (i = 0; i < 120; i++)
		opt[n++] = 'x';
	opt[n] = '\0';
	root = parse(&rc, opt);
	ok(rc < 0, "socket path longer than sun_path: error");
	cfg_free(root);
	snprintf(key, sizeof(key), "3,virtio-console,%s=/tmp/n.sock", "a\tb");
	root = parse(&rc, key);
	ok(rc < 0, "control character in a name: error");
	cfg_free(root);
}

/* ---- machine with an event loop ---- */

static void *loop_main(void *arg)
{
	event_loop_run(arg);
	return NULL;
}

static char *sock_path(const char *name)
{
	static char paths[8][96];
	static unsigned next;
	char *p = paths[next++ % 8];

	snprintf(p, 96, "%s/%s", dir, name);
	return p;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- host clients ---- */

static int client_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read up to 'len' bytes, waiting at most 'ms' for each part.  Returns
 * bytes read, or -1 on EOF/error before anything arrived. */
static ssize_t client_read(int fd, void *buf, size_t len, int ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		if (poll(&pfd, 1, ms) <= 0)
			break;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return got ? (ssize_t)got : -1;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* True when the peer closed the connection within 'ms'. */
static bool client_eof(int fd, int ms)
{
	char c;

	return client_read(fd, &c, 1, ms) == -1;
}

/* ---- guest side ---- */

static uint16_t post1(struct vdrv *d, unsigned qi, uint64_t gpa, uint32_t len,
		      bool wr)
{
	uint16_t h = vdrv_post(d, qi, 1, &gpa, &len, &wr);

	bufgpa[qi][h] = gpa;
	return h;
}

static uint64_t post_rx(struct vdrv *d, unsigned qi, uint32_t len)
{
	uint64_t gpa = vdrv_alloc(d->m, len, 16);

	memset(vdrv_ptr(d->m, gpa), 0, len);
	post1(d, qi, gpa, len, true);
	return gpa;
}

static uint64_t post_tx(struct vdrv *d, unsigned qi, const void *data,
			uint32_t len)
{
	uint64_t gpa = vdrv_alloc(d->m, len, 16);

	memcpy(vdrv_ptr(d->m, gpa), data, len);
	post1(d, qi, gpa, len, false);
	return gpa;
}

static bool wait_used(struct vdrv *d, unsigned qi, uint32_t *id, uint32_t *len,
		      int ms)
{
	int t;

	for (t = 0; t <= ms; t++) {
		if (vdrv_used(d, qi, id, len))
			return true;
		usleep(1000);
	}
	return false;
}

/* Send a control message; true when the device completed the chain. */
static bool ctrl_tx(struct vdrv *d, uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control m = {id, event, value};
	uint32_t uid, ulen;

	post_tx(d, Q_CTX, &m, sizeof(m));
	return wait_used(d, Q_CTX, &uid, &ulen, WAIT_MS);
}

/*
 * The next device -> driver control message within 'ms': 1 (fills *m and,
 * for PORT_NAME, name), 0 when none came.  Reposts a receive buffer.
 */
static int ctrl_rx(struct vdrv *d, struct virtio_console_control *m, char *name,
		   size_t nlen, int ms)
{
	uint32_t id, len;
	const uint8_t *p;

	if (!wait_used(d, Q_CRX, &id, &len, ms))
		return 0;
	p = vdrv_ptr(d->m, bufgpa[Q_CRX][id]);
	memset(m, 0xff, sizeof(*m));
	if (len >= sizeof(*m))
		memcpy(m, p, sizeof(*m));
	if (name && nlen) {
		size_t n = len > sizeof(*m) ? len - sizeof(*m) : 0;

		if (n >= nlen)
			n = nlen - 1;
		memcpy(name, p + sizeof(*m), n);
		name[n] = '\0';
	}
	post_rx(d, Q_CRX, 256);
	return 1;
}

static bool expect_msg(struct vdrv *d, uint32_t id, uint16_t event,
		       uint16_t value, const char *what)
{
	struct virtio_console_control m;
	int got = ctrl_rx(d, &m, NULL, 0, WAIT_MS);
	bool good =
		got == 1 && m.id == id && m.event == event && m.value == value;

	if (!got)
		diag("no control message");
	else if (!good)
		diag("got id %u event %u value %u", m.id, m.event, m.value);
	return ok(good, "%s", what);
}

static bool needs_reset(struct vdrv *d)
{
	return vdrv_get_status(d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
}

/* Bring the device up: features, all queues, control buffers, DRIVER_OK. */
static void driver_up(struct vdrv *d, unsigned nq, uint64_t features)
{
	unsigned i;

	vdrv_negotiate(d, features);
	for (i = 0; i < nq; i++)
		vdrv_queue(d, i, QSIZE, 0xffff);
	if (nq > Q_CTX)
		for (i = 0; i < 4; i++)
			post_rx(d, Q_CRX, 256);
	vdrv_driver_ok(d);
}

/* ---- the multiport handshake and data ---- */

struct rig {
	struct vdrv_machine m;
	struct vdrv d;
	struct event_loop *ev;
	pthread_t th;
};

static int rig_up(struct rig *r, const char *const *kv)
{
	int rc;

	if (event_loop_new(&r->ev))
		return -1;
	rc = vdrv_machine_new_ev(&r->m, kv, r->ev);
	if (rc)
		return rc;
	return pthread_create(&r->th, NULL, loop_main, r->ev) ? -1 : 0;
}

static void rig_down(struct rig *r)
{
	event_loop_stop(r->ev, 0);
	pthread_join(r->th, NULL);
	vdrv_machine_free(&r->m);
	event_loop_free(r->ev);
}

static void test_handshake(struct rig *r, const char *pa)
{
	struct vdrv *d = &r->d;
	struct virtio_console_control m;
	uint64_t f, cfgbase;
	char name[64];

	is_int(vdrv_probe(d, &r->m, 3, false, true), 0, "probe");
	is_int(vdrv_cfg(d, PCIR_DEVICE, 2), 0x1003, "transitional id 1003");
	is_int(vdrv_cfg(d, PCIR_SUBDEV, 2), VIRTIO_ID_CONSOLE,
	       "subsystem = console");
	is_int(vdrv_cfg(d, PCIR_CLASS, 1), 0x07, "class simple comms");
	f = vdrv_negotiate(d, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
				      VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT) |
				      VIRTIO_BIT(VIRTIO_CONSOLE_F_SIZE) |
				      VIRTIO_BIT(VIRTIO_F_EVENT_IDX));
	ok(f & VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT), "MULTIPORT offered");
	ok(!(f & VIRTIO_BIT(VIRTIO_CONSOLE_F_SIZE)), "SIZE not offered");
	cfgbase = d->bar4 + 0x2000;
	is_int(vdrv_mmio(&r->m, cfgbase + VIRTIO_CONSOLE_CFG_COLS, 2, false, 0),
	       0, "cols 0");
	is_int(vdrv_mmio(&r->m, cfgbase + VIRTIO_CONSOLE_CFG_ROWS, 2, false, 0),
	       0, "rows 0");
	is_int(vdrv_mmio(&r->m, cfgbase + VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, 4,
			 false, 0),
	       3, "max_nr_ports = highest port + 1");
	is_int(vdrv_common(d, VIRTIO_PCI_COMMON_NUMQ, 2, false, 0), 8,
	       "8 queues: 2 per port + control");
	driver_up(d, 8, f);
	ok(vdrv_get_status(d) & VIRTIO_STATUS_DRIVER_OK, "DRIVER_OK");

	ok(ctrl_rx(d, &m, NULL, 0, 50) == 0, "nothing before DEVICE_READY");
	ok(ctrl_tx(d, 0, VIRTIO_CONSOLE_DEVICE_READY, 1), "DEVICE_READY taken");
	expect_msg(d, 0, VIRTIO_CONSOLE_DEVICE_ADD, 0, "DEVICE_ADD port 0");
	expect_msg(d, 2, VIRTIO_CONSOLE_DEVICE_ADD, 0, "DEVICE_ADD port 2");
	ok(ctrl_rx(d, &m, NULL, 0, 50) == 0, "no port 1 (a gap)");
	ctrl_tx(d, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	ok(ctrl_rx(d, &m, NULL, 0, 50) == 0, "repeated DEVICE_READY ignored");

	ctrl_tx(d, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	ok(ctrl_rx(d, &m, name, sizeof(name), WAIT_MS) == 1 &&
		   m.event == VIRTIO_CONSOLE_PORT_NAME && m.id == 0,
	   "PORT_READY(0) -> PORT_NAME(0)");
	is_str(name, "org.khyve.a", "with the port's name");
	ok(ctrl_rx(d, &m, NULL, 0, 50) == 0, "no PORT_OPEN without a client");
	ctrl_tx(d, 2, VIRTIO_CONSOLE_PORT_READY, 1);
	ok(ctrl_rx(d, &m, name, sizeof(name), WAIT_MS) == 1 &&
		   m.event == VIRTIO_CONSOLE_PORT_NAME && m.id == 2,
	   "PORT_READY(2) -> PORT_NAME(2)");
	is_str(name, "b", "named b");
	ok(exists(pa), "socket file created");
}

static void test_data(struct rig *r, const char *pa, const char *pb)
{
	struct vdrv *d = &r->d;
	struct virtio_console_control m;
	uint32_t id, len;
	uint64_t g;
	char buf[64];
	int a, a2, b;

	g = post_rx(d, 0, 64);
	a = client_connect(pa);
	ok(a >= 0, "client connects to port 0");
	expect_msg(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, "-> PORT_OPEN(0, 1)");
	ok(write(a, "hello", 5) == 5, "client writes");
	usleep(100 * 1000);
	ok(!vdrv_used(d, 0, &id, &len), "nothing while the guest port is "
					"closed");
	ctrl_tx(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	ok(wait_used(d, 0, &id, &len, WAIT_MS), "guest opens: data arrives");
	is_int(len, 5, "5 bytes");
	ok(memcmp(vdrv_ptr(&r->m, g), "hello", 5) == 0, "'hello'");

	post_tx(d, 1, "world", 5);
	ok(wait_used(d, 1, &id, &len, WAIT_MS), "guest TX completed");
	is_int(client_read(a, buf, 5, WAIT_MS), 5, "client reads 5 bytes");
	ok(memcmp(buf, "world", 5) == 0, "'world'");

	/* two segments in one chain */
	{
		uint64_t gp[2] = {vdrv_alloc(&r->m, 8, 8),
				  vdrv_alloc(&r->m, 8, 8)};
		uint32_t ln[2] = {3, 3};
		bool wr[2] = {false, false};

		memcpy(vdrv_ptr(&r->m, gp[0]), "foo", 3);
		memcpy(vdrv_ptr(&r->m, gp[1]), "bar", 3);
		vdrv_post(d, 1, 2, gp, ln, wr);
		ok(wait_used(d, 1, &id, &len, WAIT_MS), "2-segment TX done");
		is_int(client_read(a, buf, 6, WAIT_MS), 6, "6 bytes");
		ok(memcmp(buf, "foobar", 6) == 0, "'foobar' in order");
	}

	a2 = client_connect(pa);
	ok(a2 >= 0 && client_eof(a2, WAIT_MS), "a second client is refused");
	if (a2 >= 0)
		close(a2);
	ok(ctrl_rx(d, &m, NULL, 0, 50) == 0, "without a control message");
	post_tx(d, 1, "still", 5);
	is_int(client_read(a, buf, 5, WAIT_MS), 5,
	       "the first client is still served");
	ok(wait_used(d, 1, &id, &len, WAIT_MS), "its chain completed");

	/* no receive buffers: the device stops reading, resumes on kick */
	ok(write(a, "abcdef", 6) == 6, "client writes with no RX buffer");
	usleep(100 * 1000);
	g = post_rx(d, 0, 2);
	ok(wait_used(d, 0, &id, &len, WAIT_MS) && len == 2 &&
		   memcmp(vdrv_ptr(&r->m, g), "ab", 2) == 0,
	   "a 2-byte buffer posted later gets 'ab'");
	g = post_rx(d, 0, 16);
	ok(wait_used(d, 0, &id, &len, WAIT_MS) && len == 4 &&
		   memcmp(vdrv_ptr(&r->m, g), "cdef", 4) == 0,
	   "the next buffer gets 'cdef'");

	/* a client that doesn't read: the chain waits for EPOLLOUT */
	{
		uint32_t big = 2u << 20, i;
		uint8_t *p, *in = malloc(big);
		ssize_t got;

		g = vdrv_alloc(&r->m, big, 4096);
		p = vdrv_ptr(&r->m, g);
		for (i = 0; i < big; i++)
			p[i] = (uint8_t)(i * 7 + i / 4096);
		post1(d, 1, g, big, false);
		usleep(50 * 1000);
		ok(!vdrv_used(d, 1, &id, &len),
		   "2 MiB TX: held while the socket is full");
		got = client_read(a, in, big, WAIT_MS);
		is_int(got, big, "client reads all of it");
		ok(in && memcmp(in, p, big) == 0, "intact and in order");
		ok(wait_used(d, 1, &id, &len, WAIT_MS),
		   "then the chain completes");
		free(in);
	}

	/* guest TX with no client on port 2 is dropped */
	post_tx(d, 7, "lost", 4);
	ok(wait_used(d, 7, &id, &len, WAIT_MS), "TX without a client "
						"completes (dropped)");
	b = client_connect(pb);
	ok(b >= 0, "client connects to port 2");
	expect_msg(d, 2, VIRTIO_CONSOLE_PORT_OPEN, 1, "-> PORT_OPEN(2, 1)");
	ok(client_read(b, buf, 4, 100) == 0, "the dropped bytes never come");

	/* guest closes port 0: client data stays in the socket */
	ctrl_tx(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 0);
	g = post_rx(d, 0, 16);
	ok(write(a, "zz", 2) == 2, "client writes to a closed guest port");
	usleep(100 * 1000);
	ok(!vdrv_used(d, 0, &id, &len), "not delivered");
	close(a);
	expect_msg(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 0,
		   "client hangs up -> PORT_OPEN(0, 0)");
	a = client_connect(pa);
	ok(a >= 0, "a new client is accepted");
	expect_msg(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, "-> PORT_OPEN(0, 1)");
	ok(write(a, "new", 3) == 3, "new client writes");
	ctrl_tx(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	ok(wait_used(d, 0, &id, &len, WAIT_MS) && len == 3 &&
		   memcmp(vdrv_ptr(&r->m, g), "new", 3) == 0,
	   "guest reopens: gets the new client's bytes, not the old ones");
	/* hang-up with bytes the guest has no buffer for yet */
	ok(write(a, "xyz", 3) == 3, "client writes and hangs up");
	close(a);
	usleep(100 * 1000);
	ok(ctrl_rx(d, &m, NULL, 0, 50) == 0, "kept while its bytes are unread");
	g = post_rx(d, 0, 16);
	ok(wait_used(d, 0, &id, &len, WAIT_MS) && len == 3 &&
		   memcmp(vdrv_ptr(&r->m, g), "xyz", 3) == 0,
	   "the guest still gets them");
	expect_msg(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 0,
		   "then EOF -> PORT_OPEN(0, 0)");
	a = client_connect(pa);
	expect_msg(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, "reconnect");
	close(a);
	expect_msg(d, 0, VIRTIO_CONSOLE_PORT_OPEN, 0,
		   "disconnect while open, nothing unread -> PORT_OPEN(0, 0)");
	post_tx(d, 1, "gone", 4);
	ok(wait_used(d, 1, &id, &len, WAIT_MS), "TX after disconnect drops");
	close(b);
	expect_msg(d, 2, VIRTIO_CONSOLE_PORT_OPEN, 0, "port 2 client gone");
	ok(!needs_reset(d), "device still healthy");
}

static void test_hostile(struct rig *r, const char *pb)
{
	struct vdrv *d = &r->d;
	struct virtio_console_control m = {2, VIRTIO_CONSOLE_PORT_READY, 1};
	uint64_t gp[2];
	uint32_t ln[2] = {4, 4}, id, len;
	bool wr[2] = {false, false};
	char name[16];
	int b;

	post_tx(d, Q_CTX, "shrt", 4);
	ok(wait_used(d, Q_CTX, &id, &len, WAIT_MS), "short message consumed");
	ok(ctrl_tx(d, 0, 99, 1), "unknown event consumed");
	ok(ctrl_tx(d, 1, VIRTIO_CONSOLE_PORT_READY, 1),
	   "PORT_READY for the unconfigured port 1 consumed");
	ok(ctrl_tx(d, 7, VIRTIO_CONSOLE_PORT_READY, 1),
	   "PORT_READY beyond max_nr_ports consumed");
	ok(ctrl_tx(d, 0xffffffff, VIRTIO_CONSOLE_PORT_OPEN, 1),
	   "PORT_OPEN for port 0xffffffff consumed");
	ok(ctrl_tx(d, 1000, VIRTIO_CONSOLE_PORT_OPEN, 1),
	   "PORT_OPEN for port 1000 consumed");
	ok(ctrl_tx(d, 0, VIRTIO_CONSOLE_DEVICE_ADD, 0),
	   "DEVICE_ADD from the driver consumed");
	ok(ctrl_tx(d, 0, VIRTIO_CONSOLE_PORT_READY, 0),
	   "PORT_READY(0) failure report consumed");
	gp[0] = vdrv_alloc(&r->m, 16, 16);
	post1(d, Q_CTX, gp[0], 16, true);
	ok(wait_used(d, Q_CTX, &id, &len, WAIT_MS),
	   "write-only control buffer consumed");
	ok(ctrl_rx(d, &m, NULL, 0, 100) == 0, "none of these got a reply");
	ok(!needs_reset(d), "and the device is healthy");

	m = (struct virtio_console_control){2, VIRTIO_CONSOLE_PORT_READY, 1};
	gp[0] = vdrv_alloc(&r->m, 8, 8);
	gp[1] = vdrv_alloc(&r->m, 8, 8);
	memcpy(vdrv_ptr(&r->m, gp[0]), &m, 4);
	memcpy(vdrv_ptr(&r->m, gp[1]), (char *)&m + 4, 4);
	vdrv_post(d, Q_CTX, 2, gp, ln, wr);
	ok(ctrl_rx(d, &m, name, sizeof(name), WAIT_MS) == 1 &&
		   m.event == VIRTIO_CONSOLE_PORT_NAME && m.id == 2,
	   "a message split over two descriptors is understood");

	post_tx(d, 5, "nobody", 6);
	ok(wait_used(d, 5, &id, &len, WAIT_MS),
	   "TX on the unconfigured port's queue is drained");
	post_rx(d, 4, 16);
	ok(!needs_reset(d), "RX buffer on it is harmless");

	/* a chain past the end of RAM: NEEDS_RESET, then recovery */
	post1(d, Q_CTX, VDRV_RAM - 4, 8, false);
	ok(needs_reset(d), "control chain outside RAM: DEVICE_NEEDS_RESET");
	b = client_connect(pb);
	ok(b >= 0, "a client can still connect to a broken device");
	usleep(50 * 1000);
	vdrv_status(d, 0);
	is_int(vdrv_get_status(d), 0, "reset");
	memset(bufgpa, 0, sizeof(bufgpa));
	driver_up(d, 8,
		  VIRTIO_BIT(VIRTIO_F_VERSION_1) |
			  VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT));
	ctrl_tx(d, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_msg(d, 0, VIRTIO_CONSOLE_DEVICE_ADD, 0,
		   "after reset DEVICE_READY announces port 0 again");
	expect_msg(d, 2, VIRTIO_CONSOLE_DEVICE_ADD, 0, "and port 2");
	ctrl_tx(d, 2, VIRTIO_CONSOLE_PORT_READY, 1);
	ok(ctrl_rx(d, &m, name, sizeof(name), WAIT_MS) == 1 &&
		   m.event == VIRTIO_CONSOLE_PORT_NAME,
	   "PORT_NAME(2)");
	expect_msg(d, 2, VIRTIO_CONSOLE_PORT_OPEN, 1,
		   "PORT_OPEN(2, 1) for the client already connected");
	if (b >= 0)
		close(b);
	expect_msg(d, 2, VIRTIO_CONSOLE_PORT_OPEN, 0,
		   "and (2, 0) when it goes");
	vdrv_status(d, 0);
}

static void test_multiport(void)
{
	const char *pa = sock_path("a.sock"), *pb = sock_path("b.sock");
	const char *const kv[] = {
		"pci.0.3.0.device",
		"virtio-console",
		"pci.0.3.0.port.0.name",
		"org.khyve.a",
		"pci.0.3.0.port.0.path",
		pa,
		"pci.0.3.0.port.2.name",
		"b",
		"pci.0.3.0.port.2.path",
		pb,
		NULL,
	};
	struct rig r;

	memset(bufgpa, 0, sizeof(bufgpa));
	if (!ok(rig_up(&r, kv) == 0, "machine with a 2-port console")) {
		vdrv_machine_free(&r.m);
		return;
	}
	test_handshake(&r, pa);
	test_data(&r, pa, pb);
	test_hostile(&r, pb);
	rig_down(&r);
	ok(!exists(pa) && !exists(pb), "teardown removes the socket files");
}

/* A driver without MULTIPORT, on the legacy interface: port 0 alone. */
static void test_single(void)
{
	const char *pa = sock_path("single.sock");
	const char *const kv[] = {
		"pci.0.4.0.device",
		"virtio-console",
		"pci.0.4.0.port.0.name",
		"console",
		"pci.0.4.0.port.0.path",
		pa,
		NULL,
	};
	struct rig r;
	struct vdrv *d = &r.d;
	uint32_t id, len;
	uint64_t g;
	char buf[8];
	int a;

	memset(bufgpa, 0, sizeof(bufgpa));
	if (!ok(rig_up(&r, kv) == 0, "machine with a 1-port console")) {
		vdrv_machine_free(&r.m);
		return;
	}
	vdrv_probe(d, &r.m, 4, true, false);
	driver_up(d, 2, 0);
	g = post_rx(d, 0, 32);
	a = client_connect(pa);
	ok(a >= 0 && write(a, "legacy", 6) == 6, "client connects, writes");
	ok(wait_used(d, 0, &id, &len, WAIT_MS) && len == 6 &&
		   memcmp(vdrv_ptr(&r.m, g), "legacy", 6) == 0,
	   "no MULTIPORT: port 0 is open without a handshake");
	post_tx(d, 1, "out", 3);
	ok(client_read(a, buf, 3, WAIT_MS) == 3 && memcmp(buf, "out", 3) == 0,
	   "and transmits");
	vdrv_pio(&r.m, d->io + VIRTIO_PCI_LEGACY_QUEUE_NOTIFY, 2, true, 3);
	vdrv_pio(&r.m, d->io + VIRTIO_PCI_LEGACY_QUEUE_NOTIFY, 2, true, 0xffff);
	ok(!needs_reset(d), "kicks of control/absent queues ignored");
	close(a);
	vdrv_status(d, 0);
	rig_down(&r);
	ok(!exists(pa), "socket removed");
}

/* ---- socket paths and config errors at init ---- */

static int try_machine(const char *const *kv)
{
	struct vdrv_machine m;
	struct event_loop *ev;
	int rc;

	if (event_loop_new(&ev))
		return -1;
	rc = vdrv_machine_new_ev(&m, kv, ev);
	vdrv_machine_free(&m);
	event_loop_free(ev);
	return rc;
}

static void test_init_errors(void)
{
	const char *p = sock_path("e.sock");
	char longpath[140];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct vdrv_machine m;
	int fd, rc;
	const char *kv[16] = {
		"pci.0.3.0.device",
		"virtio-console",
		"pci.0.3.0.port.0.name",
		"a",
		"pci.0.3.0.port.0.path",
		p,
		NULL,
	};

	/* a regular file in the way is not removed */
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	close(fd);
	ok(try_machine(kv) < 0, "a regular file at the path: error");
	ok(exists(p), "and the file is left alone");
	unlink(p);

	/* a stale socket (bound, nobody listening) is replaced */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	ok(exists(p), "stale socket file present");
	is_int(try_machine(kv), 0, "a stale socket is replaced");
	ok(!exists(p), "and removed at teardown");

	/* a live socket is not stolen */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	listen(fd, 1);
	ok(try_machine(kv) < 0, "a socket someone listens on: error");
	ok(exists(p), "and it stays");
	close(fd);
	unlink(p);

	/* config errors from -o/-k style keys */
	kv[1] = "virtio-console";
	kv[2] = "pci.0.3.0.port.16.name";
	ok(try_machine(kv) < 0, "port.16: error");
	kv[2] = "pci.0.3.0.port.x.name";
	ok(try_machine(kv) < 0, "port.x: error");
	kv[2] = "pci.0.3.0.port.01.name";
	ok(try_machine(kv) < 0, "port.01: error");
	kv[2] = "pci.0.3.0.port.0.name";
	kv[4] = "pci.0.3.0.port.0.nopath";
	ok(try_machine(kv) < 0, "port without a path: error");
	kv[4] = "pci.0.3.0.port.0.path";
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	kv[5] = longpath;
	ok(try_machine(kv) < 0, "path too long for sun_path: error");
	kv[5] = p;
	kv[6] = "pci.0.3.0.port.1.name";
	kv[7] = "a";
	kv[8] = "pci.0.3.0.port.1.path";
	kv[9] = sock_path("f.sock");
	kv[10] = NULL;
	ok(try_machine(kv) < 0, "two ports with one name: error");
	kv[7] = "b";
	kv[9] = p;
	ok(try_machine(kv) < 0, "two ports with one socket: error");
	kv[9] = sock_path("f.sock");
	is_int(try_machine(kv), 0, "two distinct ports: fine");
	ok(!exists(p) && !exists(kv[9]), "both sockets removed");
	kv[2] = NULL;
	ok(try_machine(kv) < 0, "no ports: error");

	/* without an event loop the device refuses to start */
	kv[2] = "pci.0.3.0.port.0.name";
	kv[6] = NULL;
	rc = vdrv_machine_new(&m, kv);
	ok(rc < 0, "no event loop: error");
	vdrv_machine_free(&m);
	ok(!exists(p), "and no socket left behind");
}

int main(void)
{
	plan_no_plan();
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/t_vcon.XXXXXX");
	if (!mkdtemp(dir))
		skip_all("cannot create a temporary directory");
	test_parse();
	test_init_errors();
	test_multiport();
	test_single();
	rmdir(dir);
	return done_testing();
}
