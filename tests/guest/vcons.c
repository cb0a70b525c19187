/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vcons: a round trip through a virtio console port (virtio 1.2 §5.3,
 * MULTIPORT), polled, ring 0.  The guest negotiates MULTIPORT, sets up
 * the control queues and the receive/transmit queues of port N ("port=N",
 * default 0; N <= 2), posts receive buffers, sets DRIVER_OK and does the
 * multiport handshake: DEVICE_READY, then for every DEVICE_ADD a
 * PORT_READY, and for its port a PORT_OPEN(1) of its own.  It waits for
 * the device's PORT_OPEN(1) (a host program connected), sends
 * "hello from guest\n", reads one line from the host, sends it back
 * upper-cased and reports PASS.  Control messages are checked (length,
 * known events, port ids below max_nr_ports).  "timeout=S" (default 30)
 * bounds the whole exchange in RTC seconds.
 * BSP only.
 */
#include "guest.h"

const char guest_name[] = "vcons";

#define Q_CTRL_RX 2
#define Q_CTRL_TX 3
#define CTRL_BUFS 16
#define CTRL_BUF_LEN 256
#define RX_BUFS 8
#define RX_BUF_LEN 128
#define LINE_MAX 256
#define HELLO "hello from guest\n"

static struct vio_dev vd;
static unsigned int port, q_rx, q_tx, max_ports;
static uint8_t *ctrl_buf[CTRL_BUFS], *rx_buf[RX_BUFS];
static struct virtio_console_ctrl *ctrl_out;
static uint8_t *tx_buf;
static char line[LINE_MAX];
static unsigned int line_len;
static bool port_added, host_open, said_hello, done;

static void post_rx(unsigned int qi, uint8_t *b, uint32_t len)
{
	struct vio_seg s = {virt_to_phys(b), len, true};
	int rc = vio_submit(&vd.q[qi], &s, 1);

	if (rc < 0)
		guest_fail("posting a receive buffer on queue %u: %d", qi, rc);
}

/* Find which buffer a used head belongs to (we post one per chain). */
static uint8_t *buf_of(unsigned int qi, uint16_t head)
{
	return (uint8_t *)pa_ptr(vd.q[qi].desc[head].addr);
}

static void ctrl_send(uint32_t id, uint16_t event, uint16_t value)
{
	struct vio_seg s = {virt_to_phys(ctrl_out), sizeof(*ctrl_out), false};
	int rc;

	ctrl_out->id = id;
	ctrl_out->event = event;
	ctrl_out->value = value;
	rc = vio_transfer(&vd.q[Q_CTRL_TX], &s, 1, NULL, 10);
	if (rc)
		guest_fail("control message %u for port %u: %d", event, id, rc);
}

static void send_data(const char *s, size_t len)
{
	struct vio_seg seg = {virt_to_phys(tx_buf), (uint32_t)len, false};
	int rc;

	memcpy(tx_buf, s, len);
	rc = vio_transfer(&vd.q[q_tx], &seg, 1, NULL, 10);
	if (rc)
		guest_fail("sending %zu bytes: %d", len, rc);
}

static void handle_ctrl(const uint8_t *b, uint32_t len)
{
	struct virtio_console_ctrl m;
	char name[64];
	uint32_t i;

	if (len < sizeof(m))
		guest_fail("control message of %u bytes", len);
	if (len > CTRL_BUF_LEN)
		guest_fail("control message of %u bytes in a %u-byte buffer",
			   len, CTRL_BUF_LEN);
	memcpy(&m, b, sizeof(m));
	if (m.id >= max_ports && m.event != VIRTIO_CONSOLE_DEVICE_READY)
		guest_fail("control event %u for port %u (max_nr_ports %u)",
			   m.event, m.id, max_ports);
	switch (m.event) {
	case VIRTIO_CONSOLE_DEVICE_ADD:
		printf("vcons: DEVICE_ADD port %u\n", m.id);
		if (m.id == port)
			port_added = true;
		ctrl_send(m.id, VIRTIO_CONSOLE_PORT_READY, 1);
		if (m.id == port)
			ctrl_send(m.id, VIRTIO_CONSOLE_PORT_OPEN, 1);
		break;
	case VIRTIO_CONSOLE_DEVICE_REMOVE:
		printf("vcons: DEVICE_REMOVE port %u\n", m.id);
		if (m.id == port)
			guest_fail("our port was removed");
		break;
	case VIRTIO_CONSOLE_CONSOLE_PORT:
		printf("vcons: port %u is a console\n", m.id);
		break;
	case VIRTIO_CONSOLE_RESIZE:
		printf("vcons: RESIZE port %u\n", m.id);
		break;
	case VIRTIO_CONSOLE_PORT_OPEN:
		printf("vcons: PORT_OPEN port %u value %u\n", m.id, m.value);
		if (m.id == port)
			host_open = m.value != 0;
		break;
	case VIRTIO_CONSOLE_PORT_NAME:
		for (i = 0; i + sizeof(m) < len && i + 1 < sizeof(name); i++)
			name[i] = (char)b[sizeof(m) + i];
		name[i] = 0;
		printf("vcons: PORT_NAME port %u \"%s\"\n", m.id, name);
		break;
	default:
		guest_fail("unknown control event %u (port %u, value %u)",
			   m.event, m.id, m.value);
	}
}

static void handle_rx(const uint8_t *b, uint32_t len)
{
	uint32_t i, j;
	char c;

	if (len > RX_BUF_LEN)
		guest_fail("%u bytes in a %u-byte receive buffer", len,
			   RX_BUF_LEN);
	if (!said_hello && len)
		guest_fail("data from the host before our hello");
	for (i = 0; i < len && !done; i++) {
		c = (char)b[i];
		if (line_len + 1 >= LINE_MAX)
			guest_fail("line from the host longer than %u bytes",
				   LINE_MAX);
		line[line_len++] = c;
		if (c != '\n')
			continue;
		line[line_len] = 0;
		printf("vcons: host sent %u bytes: %s", line_len, line);
		for (j = 0; j < line_len; j++)
			if (line[j] >= 'a' && line[j] <= 'z')
				line[j] = (char)(line[j] - 'a' + 'A');
		send_data(line, line_len);
		printf("vcons: echoed: %s", line);
		done = true;
	}
}

static void poll_queue(unsigned int qi, uint32_t buf_len)
{
	uint16_t head;
	uint32_t len;
	uint8_t *b;
	int rc;

	while ((rc = vio_get_used(&vd.q[qi], &head, &len)) > 0) {
		b = buf_of(qi, head);
		if (qi == Q_CTRL_RX)
			handle_ctrl(b, len);
		else
			handle_rx(b, len);
		post_rx(qi, b, buf_len);
		vio_kick(&vd.q[qi]);
	}
	if (rc < 0)
		guest_fail("queue %u: bad used element (%d)", qi, rc);
}

static void setup(void)
{
	unsigned int i;
	int rc;

	if (vio_find(VIRTIO_ID_CONSOLE, 0, &vd))
		guest_fail("no virtio console on bus 0");
	if ((rc = vio_probe(&vd, cmdline_has_word("legacy"), true)))
		guest_fail("probe: %d", rc);
	if ((rc = vio_start(&vd, VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT))))
		guest_fail("feature negotiation: %d", rc);
	printf("vcons: features offered 0x%lx, accepted 0x%lx\n", vd.offered,
	       vd.features);
	if (!(vd.features & VIRTIO_BIT(VIRTIO_CONSOLE_F_MULTIPORT)))
		guest_fail("the device does not offer MULTIPORT");
	max_ports = vio_cfg_read(&vd, VIRTIO_CONSOLE_CFG_MAX_NR_PORTS, 4);
	printf("vcons: max_nr_ports %u, using port %u (queues %u/%u)\n",
	       max_ports, port, q_rx, q_tx);
	if (max_ports == 0 || max_ports > 0x8000)
		guest_fail("max_nr_ports %u", max_ports);
	if (port >= max_ports)
		guest_fail("port %u >= max_nr_ports %u", port, max_ports);
	if ((rc = vio_queue_setup(&vd, q_rx, 64)) ||
	    (rc = vio_queue_setup(&vd, q_tx, 64)) ||
	    (rc = vio_queue_setup(&vd, Q_CTRL_RX, 64)) ||
	    (rc = vio_queue_setup(&vd, Q_CTRL_TX, 64)))
		guest_fail("queue set-up: %d", rc);
	ctrl_out = dma_zalloc(sizeof(*ctrl_out), 64);
	tx_buf = dma_zalloc(LINE_MAX, 64);
	if (!ctrl_out || !tx_buf)
		guest_fail("out of memory");
	for (i = 0; i < CTRL_BUFS; i++) {
		ctrl_buf[i] = dma_zalloc(CTRL_BUF_LEN, 64);
		if (!ctrl_buf[i])
			guest_fail("out of memory");
		post_rx(Q_CTRL_RX, ctrl_buf[i], CTRL_BUF_LEN);
	}
	for (i = 0; i < RX_BUFS; i++) {
		rx_buf[i] = dma_zalloc(RX_BUF_LEN, 64);
		if (!rx_buf[i])
			guest_fail("out of memory");
		post_rx(q_rx, rx_buf[i], RX_BUF_LEN);
	}
	if ((rc = vio_driver_ok(&vd)))
		guest_fail("DRIVER_OK: status 0x%x", vio_get_status(&vd));
	vio_kick(&vd.q[Q_CTRL_RX]);
	vio_kick(&vd.q[q_rx]);
}

void guest_main(void)
{
	uint64_t timeout = 30, p = 0;
	unsigned int ticks = 0;
	uint8_t sec, now;

	if (cmdline_get_u64("port", &p) == -GUEST_EINVAL || p > 2)
		guest_fail("bad port= (0-2)");
	if (cmdline_get_u64("timeout", &timeout) == -GUEST_EINVAL)
		guest_fail("bad timeout=");
	port = (unsigned int)p;
	q_rx = port == 0 ? 0 : 2 + 2 * port;
	q_tx = q_rx + 1;
	printf("vcons: virtio console round trip on port %u\n", port);
	setup();
	ctrl_send(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	printf("vcons: DEVICE_READY sent, waiting for the host\n");
	sec = cmos_read(0);
	while (!done) {
		poll_queue(Q_CTRL_RX, CTRL_BUF_LEN);
		if (port_added && host_open && !said_hello) {
			send_data(HELLO, sizeof(HELLO) - 1);
			said_hello = true;
			printf("vcons: sent \"hello from guest\"\n");
		}
		poll_queue(q_rx, RX_BUF_LEN);
		now = cmos_read(0);
		if (now != sec) {
			sec = now;
			if (++ticks > timeout)
				guest_fail(
					"timeout: port %s, host %s, hello %s",
					port_added ? "added" : "not added",
					host_open ? "connected" : "absent",
					said_hello ? "sent" : "not sent");
		}
	}
	if (vio_get_status(&vd) &
	    (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		guest_fail("device status 0x%x", vio_get_status(&vd));
	guest_pass();
}
