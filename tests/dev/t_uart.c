/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device test of the 16550A UART and its backends, through bus_dispatch()
 * on a PIO bus with a recording interrupt sink (no KVM).  Backends are
 * exercised with a pty, pipes, a socketpair and real loopback TCP
 * connections, with an event loop running on a second thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "bus/bus.h"
#include "config/config.h"
#include "core/devmodel.h"
#include "core/layout.h"
#include "hw/uart.h"
#include "hw/uart_backend.h"
#include "lib/log.h"
#include "tests/dev/devenv.h"
#include "tests/tap.h"

/* ---- harness ---- */

/* Read up to 'max' bytes the guest can see, waiting up to 'ms'. */
static size_t guest_read(const struct devenv *env, uint16_t base, uint8_t *buf,
			 size_t max, unsigned ms)
{
	size_t n = 0;
	unsigned waited = 0;

	while (n < max && waited <= ms) {
		if (devenv_inb(env, base + 5) & 0x01) {
			buf[n++] = devenv_inb(env, base);
			continue;
		}
		devenv_sleep_ms(1);
		waited++;
	}
	return n;
}

/* Read exactly n bytes from fd within ms, return how many came. */
static size_t host_read(int fd, uint8_t *buf, size_t n, int ms)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, ms) != 1)
			break;
		r = read(fd, buf + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

#define COM1 COM1_PORT
#define RBR 0
#define IER 1
#define IIR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

/* ---- register tests ---- */

static void test_registers(void)
{
	struct devenv env;
	struct uart_isa *d = NULL;
	int i;

	devenv_init(&env, 0);
	is_int(uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ,
			       "tcp=127.0.0.1:0", "lpc.com1.path", &d),
	       0, "create COM1 with a TCP backend and no event loop");
	if (!d)
		return;
	ok(bus_claimed(env.ctx.pio, COM1) &&
		   bus_claimed(env.ctx.pio, COM1 + 7) &&
		   !bus_claimed(env.ctx.pio, COM1 + 8),
	   "COM1 claims exactly 0x3f8-0x3ff");
	is_int(devenv_inb(&env, COM1 + LSR), 0x60, "LSR at reset: THRE|TEMT");
	is_int(devenv_inb(&env, COM1 + IIR), 0x01,
	       "IIR at reset: no interrupt");
	is_int(devenv_inb(&env, COM1 + IER), 0, "IER at reset");

	/* Divisor latch. */
	devenv_outb(&env, COM1 + LCR, 0x83);
	devenv_outb(&env, COM1 + RBR, 0x01);
	devenv_outb(&env, COM1 + IER, 0x02);
	is_int(devenv_inb(&env, COM1 + RBR), 0x01, "DLL reads back with DLAB");
	is_int(devenv_inb(&env, COM1 + IER), 0x02, "DLM reads back with DLAB");
	is_int(devenv_inb(&env, COM1 + LCR), 0x83, "LCR reads back");
	devenv_outb(&env, COM1 + LCR, 0x03);
	is_int(devenv_inb(&env, COM1 + IER), 0x00,
	       "IER is not DLM without DLAB");
	ok(env.rec.level[COM1_IRQ] == 0, "writing DLM raised no interrupt");
	devenv_outb(&env, COM1 + LCR, 0x80);
	is_int(devenv_inb(&env, COM1 + IER), 0x02,
	       "DLM kept across DLAB toggles");
	devenv_outb(&env, COM1 + LCR, 0x03);

	/* Scratch. */
	devenv_outb(&env, COM1 + SCR, 0xa5);
	is_int(devenv_inb(&env, COM1 + SCR), 0xa5, "scratch register");

	/* Loopback echo. */
	devenv_outb(&env, COM1 + MCR, 0x10);
	devenv_outb(&env, COM1 + RBR, 'A');
	is_int(devenv_inb(&env, COM1 + LSR), 0x61,
	       "loopback: byte received (DR)");
	is_int(devenv_inb(&env, COM1 + RBR), 'A', "loopback echo");
	is_int(devenv_inb(&env, COM1 + LSR), 0x60, "DR clear after reading");

	/* Modem status in loopback. */
	(void)devenv_inb(&env, COM1 + MSR);
	devenv_outb(&env, COM1 + MCR, 0x10 | 0x02);
	is_int(devenv_inb(&env, COM1 + MSR), 0x10 | 0x01,
	       "RTS -> CTS with DCTS");
	is_int(devenv_inb(&env, COM1 + MSR), 0x10, "delta bits clear on read");
	devenv_outb(&env, COM1 + MCR, 0x10 | 0x01 | 0x04 | 0x08);
	is_int(devenv_inb(&env, COM1 + MSR),
	       0x20 | 0x40 | 0x80 | 0x01 | 0x02 | 0x08,
	       "DTR->DSR, OUT1->RI, OUT2->DCD with deltas");
	devenv_outb(&env, COM1 + MCR, 0x10 | 0x01 | 0x08);
	is_int(devenv_inb(&env, COM1 + MSR) & 0x4f, 0x04,
	       "RI falling edge sets TERI");
	devenv_outb(&env, COM1 + MCR, 0x1f | 0xe0);
	is_int(devenv_inb(&env, COM1 + MCR), 0x1f, "MCR keeps only bits 0-4");

	/* FIFO fill and overflow. */
	devenv_outb(&env, COM1 + MCR, 0x10);
	(void)devenv_inb(&env, COM1 + MSR);
	devenv_outb(&env, COM1 + IIR, 0x07);
	is_int(devenv_inb(&env, COM1 + IIR), 0xc1,
	       "FIFO enabled: IIR bits 7:6 set");
	for (i = 0; i < 16; i++)
		devenv_outb(&env, COM1 + RBR, (uint8_t)('a' + i));
	is_int(devenv_inb(&env, COM1 + LSR), 0x61,
	       "16 bytes fit in the FIFO, no overrun");
	devenv_outb(&env, COM1 + RBR, 'X');
	is_int(devenv_inb(&env, COM1 + LSR), 0x63, "17th byte: overrun (OE)");
	is_int(devenv_inb(&env, COM1 + LSR), 0x61, "OE clears on LSR read");
	{
		char got[17] = {0};

		for (i = 0; i < 16; i++)
			got[i] = (char)devenv_inb(&env, COM1 + RBR);
		is_str(got, "abcdefghijklmnop",
		       "FIFO keeps order, drops "
		       "the overflowing byte");
	}
	is_int(devenv_inb(&env, COM1 + LSR), 0x60, "FIFO drained");
	devenv_outb(&env, COM1 + RBR, '1');
	devenv_outb(&env, COM1 + RBR, '2');
	devenv_outb(&env, COM1 + IIR, 0x03); /* reset RX FIFO */
	is_int(devenv_inb(&env, COM1 + LSR), 0x60,
	       "FCR RX reset empties the FIFO");
	devenv_outb(&env, COM1 + IIR, 0x00);
	is_int(devenv_inb(&env, COM1 + IIR), 0x01,
	       "FIFO disabled: IIR bits 7:6 clear");
	devenv_outb(&env, COM1 + RBR, '1');
	devenv_outb(&env, COM1 + RBR, '2');
	is_int(devenv_inb(&env, COM1 + LSR), 0x63,
	       "without FIFO the 2nd byte overruns");
	is_int(devenv_inb(&env, COM1 + RBR), '1',
	       "holding register keeps the first");

	/* Interrupt priorities and the line. */
	devenv_outb(&env, COM1 + IIR, 0x01);
	is_int(env.rec.level[COM1_IRQ], 0, "line low with IER=0");
	devenv_outb(&env, COM1 + IER, 0x02);
	is_int(devenv_inb(&env, COM1 + IIR), 0xc2,
	       "ETBEI 0->1: THRE interrupt");
	is_int(env.rec.level[COM1_IRQ], 0,
	       "reading IIR cleared the THRE source");
	ok(env.rec.rises[COM1_IRQ] >= 1, "the line went high for THRE");
	is_int(devenv_inb(&env, COM1 + IIR), 0xc1,
	       "THRE cleared by the IIR read");
	devenv_outb(&env, COM1 + IER, 0x02);
	is_int(devenv_inb(&env, COM1 + IIR), 0xc1,
	       "rewriting ETBEI=1 does not re-arm");
	devenv_outb(&env, COM1 + IER, 0x00);
	devenv_outb(&env, COM1 + IER, 0x02);
	is_int(devenv_inb(&env, COM1 + IIR), 0xc2,
	       "ETBEI 1->0->1 re-arms THRE");
	devenv_outb(&env, COM1 + IER, 0x0f);
	for (i = 0; i < 17; i++)
		devenv_outb(&env, COM1 + RBR, (uint8_t)i); /* overrun + THRE */
	devenv_outb(&env, COM1 + MCR, 0x10 | 0x02);	   /* modem delta */
	is_int(env.rec.level[COM1_IRQ], 1, "line high with sources pending");
	is_int(devenv_inb(&env, COM1 + IIR), 0xc6,
	       "line status has top priority");
	(void)devenv_inb(&env, COM1 + LSR);
	is_int(devenv_inb(&env, COM1 + IIR), 0xc4, "then received data");
	for (i = 0; i < 16; i++)
		(void)devenv_inb(&env, COM1 + RBR);
	is_int(devenv_inb(&env, COM1 + IIR), 0xc2, "then THR empty");
	is_int(devenv_inb(&env, COM1 + IIR), 0xc0, "then modem status");
	is_int(env.rec.level[COM1_IRQ], 1, "line still high for modem status");
	(void)devenv_inb(&env, COM1 + MSR);
	is_int(devenv_inb(&env, COM1 + IIR), 0xc1, "all sources cleared");
	is_int(env.rec.level[COM1_IRQ], 0, "line low");
	devenv_outb(&env, COM1 + RBR, 'z');
	is_int(devenv_inb(&env, COM1 + IIR), 0xc4, "RX data above THRE");
	is_int(env.rec.level[COM1_IRQ], 1, "line high for RX data");
	(void)devenv_inb(&env, COM1 + RBR);
	is_int(devenv_inb(&env, COM1 + IIR), 0xc2,
	       "THRE left after RX data drained");
	is_int(env.rec.level[COM1_IRQ], 0, "line low after IIR read");

	/* A second UART on the same ISA line (COM3 shares IRQ 4). */
	{
		struct uart_isa *d3 = NULL;

		is_int(uart_isa_create(&env.ctx, "com3", COM3_PORT, COM3_IRQ,
				       "tcp=127.0.0.1:0", "lpc.com3.path", &d3),
		       0, "create COM3 on the shared line");
		devenv_outb(&env, COM3_PORT + IER, 0x01);
		devenv_outb(&env, COM3_PORT + MCR, 0x10);
		devenv_outb(&env, COM3_PORT, 'x');
		devenv_outb(&env, COM1 + RBR, 'y');
		is_int(env.rec.level[COM1_IRQ], 1, "shared line high for both");
		(void)devenv_inb(&env, COM1 + RBR);
		(void)devenv_inb(&env, COM1 + IIR);
		is_int(env.rec.level[COM1_IRQ], 1, "COM3 keeps the line high");
		(void)devenv_inb(&env, COM3_PORT);
		is_int(env.rec.level[COM1_IRQ], 0,
		       "line low when neither pends");
		devenv_outb(&env, COM3_PORT, 'x');
		is_int(env.rec.level[COM1_IRQ], 1,
		       "COM3 alone raises the line");
		uart_isa_destroy(d3);
		is_int(env.rec.level[COM1_IRQ], 0,
		       "destroying COM3 drops its part");
		ok(!bus_claimed(env.ctx.pio, COM3_PORT), "COM3 ports released");
	}

	/* Hostile accesses: odd sizes, ranges crossing the end. */
	{
		uint64_t v = 0;

		devenv_outb(&env, COM1 + MCR, 0x10);
		devenv_outb(&env, COM1 + IER, 0);
		is_int(bus_dispatch(env.ctx.pio, COM1 + 6, 4, false, &v), 0,
		       "4-byte read crossing the end is handled");
		is_int(v >> 16, 0xffff, "bytes past the device read ones");
		v = 0x41;
		is_int(bus_dispatch(env.ctx.pio, COM1, 0, true, &v), 0,
		       "size 0 ignored");
		is_int(bus_dispatch(env.ctx.pio, COM1, 9, false, &v), 0,
		       "size 9 ignored");
		devenv_out(&env, COM1, 2, 0x0041); /* THR 'A', IER 0 */
		is_int(devenv_inb(&env, COM1 + RBR), 'A',
		       "2-byte write is split in bytes");
		devenv_outb(&env, COM1 + LSR, 0x00);
		devenv_outb(&env, COM1 + MSR, 0xff);
		is_int(devenv_inb(&env, COM1 + LSR), 0x60,
		       "LSR writes ignored");
	}
	{
		unsigned seed = 12345, bad = 0;

		for (i = 0; i < 200000; i++) {
			uint64_t v;
			unsigned port, size;

			seed = seed * 1103515245u + 12345u;
			port = COM1 + ((seed >> 8) & 7);
			size = 1u << ((seed >> 12) & 3);
			v = seed * 2654435761u;
			(void)bus_dispatch(env.ctx.pio, port, size,
					   (seed >> 16) & 1, &v);
			if (!(devenv_inb(&env, COM1 + LSR) & 0x20) &&
			    !(devenv_inb(&env, COM1 + LCR) & 0x80))
				bad++;
		}
		is_int(bad, 0, "200000 random accesses: no crash, THRE holds");
	}
	uart_isa_destroy(d);
	is_int(env.rec.level[COM1_IRQ], 0, "line released at destroy");
	ok(!bus_claimed(env.ctx.pio, COM1), "COM1 ports released");
	devenv_fini(&env);
}

/* ---- backends ---- */

static void test_tty_backend(void)
{
	struct devenv env;
	struct uart_isa *d = NULL;
	uint8_t buf[64];
	char *slave;
	int m;

	devenv_init(&env, 0);
	is_int(uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ, "/dev/null",
			       "lpc.com1.path", &d),
	       -ENOTTY, "/dev/null: not a tty");
	is_int(uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ,
			       "/nonexistent/tty", "lpc.com1.path", &d),
	       -ENOENT, "missing path fails with ENOENT");
	is_int(uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ, "/dev/ptmx",
			       "lpc.com1.path", &d),
	       -EINVAL, "/dev/ptmx refused (needs an existing tty)");
	is_int(uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ, "",
			       "lpc.com1.path", &d),
	       -EINVAL, "empty path refused");
	ok(!bus_claimed(env.ctx.pio, COM1), "failed creates left no ports");

	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m) || !(slave = ptsname(m))) {
		ok(1, "# SKIP no pty available");
		devenv_fini(&env);
		return;
	}
	devenv_loop_start(&env);
	is_int(uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ, slave,
			       "lpc.com1.path", &d),
	       0, "pty slave %s accepted", slave);
	if (!d)
		goto out;
	devenv_outb(&env, COM1 + IER, 0x01);
	if (write(m, "hello\n", 6) != 6)
		diag("write to pty master failed");
	{
		size_t n = guest_read(&env, COM1, buf, 6, 2000);

		buf[n] = 0;
		is_str((char *)buf, "hello\n",
		       "input from the pty reaches RBR "
		       "unchanged (raw mode)");
	}
	ok(devenv_rises(&env, COM1_IRQ) >= 1, "RX data raised IRQ 4");
	devenv_outb(&env, COM1, 'o');
	devenv_outb(&env, COM1, 'k');
	devenv_outb(&env, COM1, '\n');
	is_int(host_read(m, buf, 3, 2000), 3, "output reaches the pty");
	ok(!memcmp(buf, "ok\n", 3), "output bytes unchanged");
	/* Backends are closed with the event loop stopped (uart.h). */
	devenv_loop_stop(&env);
	uart_isa_destroy(d);
	d = NULL;
	devenv_loop_start(&env);
	/* The hung-up case: closing the master must not spin or crash. */
	is_int(uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ, slave,
			       "lpc.com1.path", &d),
	       0, "reopen the pty slave");
	close(m);
	m = -1;
	devenv_sleep_ms(50);
	devenv_outb(&env, COM1, 'x');
	ok(1, "writes after hang-up do not block");
out:
	devenv_loop_stop(&env);
	uart_isa_destroy(d);
	if (m >= 0)
		close(m);
	devenv_fini(&env);
}

static int tcp_connect(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_tcp_backend(void)
{
	static const char *bad[] = {
		"tcp=",
		"tcp=127.0.0.1",
		"tcp=::1:5",
		"tcp=[::1]5",
		"tcp=127.0.0.1:99999",
		"tcp=127.0.0.1:ab",
		"tcp=[::1:5",
		"tcp=:5",
		"tcp=127.0.0.1:",
		"tcp=300.1.1.1:5",
	};
	struct devenv env;
	struct uart_isa *d = NULL;
	struct uart_backend *be;
	uint8_t buf[128];
	uint16_t port;
	int c1 = -1, c2 = -1, c3 = -1;
	unsigned i;

	devenv_init(&env, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(uart_isa_create(&env.ctx, "com2", COM2_PORT, COM2_IRQ,
				       bad[i], "lpc.com2.path", &d),
		       -EINVAL, "bad spec '%s' refused", bad[i]);
	devenv_loop_start(&env);
	is_int(uart_isa_create(&env.ctx, "com2", COM2_PORT, COM2_IRQ,
			       "tcp=127.0.0.1:0", "lpc.com2.path", &d),
	       0, "tcp=127.0.0.1:0 listens");
	if (!d)
		goto out;
	be = uart_get_backend(uart_isa_core(d));
	port = uart_backend_tcp_port(be);
	ok(port != 0, "bound to ephemeral port %u", port);

	devenv_outb(&env, COM2_PORT, '!');
	is_int(uart_backend_dropped(be), 0,
	       "no client: output silently "
	       "discarded, not counted");
	c1 = tcp_connect(port);
	ok(c1 >= 0, "first client connects");
	devenv_sleep_ms(50);
	for (i = 0; i < 5; i++)
		devenv_outb(&env, COM2_PORT, (uint8_t)("guest"[i]));
	is_int(host_read(c1, buf, 5, 2000), 5, "client receives output");
	ok(!memcmp(buf, "guest", 5), "output bytes intact");

	c2 = tcp_connect(port);
	ok(c2 >= 0, "second client's connect completes (backlog)");
	{
		struct pollfd p = {.fd = c2, .events = POLLIN};
		ssize_t n = -1;

		if (poll(&p, 1, 2000) == 1)
			n = read(c2, buf, sizeof(buf));
		ok(n <= 0, "second client is closed at once");
	}
	/* Flow control: 40 bytes through a 16-byte FIFO. */
	devenv_outb(&env, COM2_PORT + IIR, 0x01);
	for (i = 0; i < 40; i++)
		buf[i] = (uint8_t)(' ' + i);
	is_int(write(c1, buf, 40), 40, "client sends 40 bytes");
	devenv_sleep_ms(100);
	is_int(devenv_inb(&env, COM2_PORT + LSR) & 0x03, 0x01,
	       "FIFO full: data ready and no overrun");
	{
		uint8_t got[64];
		size_t n = guest_read(&env, COM2_PORT, got, 40, 3000);

		is_int(n, 40, "all 40 bytes delivered after the guest drains");
		ok(!memcmp(got, buf, 40), "in order");
		is_int(devenv_inb(&env, COM2_PORT + LSR) & 0x02, 0,
		       "never overran");
	}
	close(c1);
	c1 = -1;
	devenv_sleep_ms(100);
	c3 = tcp_connect(port);
	ok(c3 >= 0, "a new client after the first left");
	devenv_sleep_ms(50);
	devenv_outb(&env, COM2_PORT, 'Z');
	is_int(host_read(c3, buf, 1, 2000), 1, "the new client gets output");
	is_int(write(c3, "q", 1), 1, "new client sends");
	is_int(guest_read(&env, COM2_PORT, buf, 1, 2000), 1,
	       "the new client's input arrives");
	is_int(buf[0], 'q', "right byte");
out:
	devenv_loop_stop(&env);
	uart_isa_destroy(d);
	if (c1 >= 0)
		close(c1);
	if (c2 >= 0)
		close(c2);
	if (c3 >= 0)
		close(c3);
	devenv_fini(&env);
}

static void test_tcp_v6(void)
{
	struct devenv env;
	struct uart_isa *d = NULL;
	int rc;

	devenv_init(&env, 0);
	rc = uart_isa_create(&env.ctx, "com4", COM4_PORT, COM4_IRQ,
			     "tcp=[::1]:0", "lpc.com4.path", &d);
	if (rc == 0)
		ok(uart_backend_tcp_port(uart_get_backend(uart_isa_core(d))),
		   "tcp=[::1]:0 listens");
	else
		ok(1, "# SKIP no IPv6 loopback (%d)", rc);
	uart_isa_destroy(d);
	devenv_fini(&env);
}

/*
 * stdio with stdin/stdout replaced by pipes (stdout first redirected so
 * our TAP output is not mixed in; results are checked after restoring).
 */
static void test_stdio_backend(void)
{
	struct devenv env;
	struct uart_isa *d = NULL, *d2 = NULL;
	int in_p[2], out_p[2], sp[2], save0, save1, rc, rc2;
	uint8_t buf[16];
	size_t n_in = 0, n_out = 0;
	uint64_t dropped = 0, dropped_sock = 0;
	int i;

	devenv_init(&env, 0);
	if (pipe(in_p) || pipe(out_p) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, sp))
		abort();
	devenv_loop_start(&env);
	fflush(stdout);
	save0 = dup(0);
	save1 = dup(1);
	dup2(in_p[0], 0);
	dup2(out_p[1], 1);
	rc = uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ, "stdio",
			     "lpc.com1.path", &d);
	rc2 = uart_isa_create(&env.ctx, "com2", COM2_PORT, COM2_IRQ, "stdio",
			      "lpc.com2.path", &d2);
	if (rc == 0) {
		if (write(in_p[1], "in", 2) != 2)
			abort();
		n_in = guest_read(&env, COM1, buf, 2, 2000);
		devenv_outb(&env, COM1, 'O');
		devenv_outb(&env, COM1, 'K');
		n_out = host_read(out_p[0], buf + 2, 2, 2000);
		/* Fill the pipe: the vCPU must not block. */
		for (i = 0; i < 70000; i++)
			devenv_outb(&env, COM1, 'x');
		dropped = uart_backend_dropped(
			uart_get_backend(uart_isa_core(d)));
		uart_isa_destroy(d);
		d = NULL;
	}
	/* stdout as a socket: no own file description, writes are polled. */
	dup2(sp[0], 1);
	if (uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ, "stdio",
			    "lpc.com1.path", &d) == 0) {
		for (i = 0; i < 400000; i++)
			devenv_outb(&env, COM1, 'y');
		dropped_sock = uart_backend_dropped(
			uart_get_backend(uart_isa_core(d)));
	}
	devenv_loop_stop(&env);
	uart_isa_destroy(d);
	uart_isa_destroy(d2);
	dup2(save0, 0);
	dup2(save1, 1);
	close(save0);
	close(save1);

	is_int(rc, 0, "stdio backend opens");
	is_int(rc2, -EBUSY, "a second stdio user is refused");
	is_int(n_in, 2, "stdin bytes reach the guest");
	ok(!memcmp(buf, "in", 2), "stdin bytes intact");
	is_int(n_out, 2, "guest output reaches stdout");
	ok(!memcmp(buf + 2, "OK", 2), "stdout bytes intact");
	ok(dropped > 0, "full stdout pipe: %llu bytes dropped, no blocking",
	   (unsigned long long)dropped);
	ok(dropped_sock > 0, "full stdout socket: %llu bytes dropped",
	   (unsigned long long)dropped_sock);
	ok(!(fcntl(out_p[1], F_GETFL) & O_NONBLOCK) &&
		   !(fcntl(in_p[0], F_GETFL) & O_NONBLOCK) &&
		   !(fcntl(sp[0], F_GETFL) & O_NONBLOCK),
	   "the shared stdin/stdout descriptions stay blocking");
	for (i = 0; i < 2; i++) {
		close(in_p[i]);
		close(out_p[i]);
		close(sp[i]);
	}
	devenv_fini(&env);
}

/* stdio whose stdin is a tty: raw mode while open, restored at close. */
static void test_stdio_raw(void)
{
	struct devenv env;
	struct uart_isa *d = NULL;
	struct termios before, during, after;
	char *slave;
	int m, s, save0, rc;

	devenv_init(&env, 0);
	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m) || !(slave = ptsname(m)) ||
	    (s = open(slave, O_RDWR | O_NOCTTY)) < 0) {
		ok(1, "# SKIP no pty available");
		devenv_fini(&env);
		return;
	}
	save0 = dup(0);
	dup2(s, 0);
	tcgetattr(0, &before);
	rc = uart_isa_create(&env.ctx, "com1", COM1, COM1_IRQ, "stdio",
			     "lpc.com1.path", &d);
	tcgetattr(0, &during);
	uart_isa_destroy(d);
	tcgetattr(0, &after);
	dup2(save0, 0);
	close(save0);
	is_int(rc, 0, "stdio on a tty opens");
	ok(before.c_lflag & ICANON, "the tty starts in canonical mode");
	ok(!(during.c_lflag & (ICANON | ECHO | ISIG)) &&
		   !(during.c_oflag & OPOST),
	   "raw mode while the backend is open");
	ok(after.c_lflag == before.c_lflag && after.c_oflag == before.c_oflag &&
		   after.c_iflag == before.c_iflag,
	   "settings restored at close");
	close(s);
	close(m);
	devenv_fini(&env);
}

/* ---- LPC models ---- */

static void test_lpc_models(void)
{
	struct cfg_node *root = cfg_new(), *lpc;
	const struct devmodel *m;
	struct devenv env;
	uint16_t ports[4];
	uint8_t irqs[4];
	int n;

	devenv_init(&env, 0);
	lpc = cfg_create(root, "lpc");
	m = devmodel_find_kind("com1", DEVMODEL_LPC);
	ok(m && m->parse_legacy && m->lpc_init, "com1 is an LPC model");
	ok(devmodel_find_kind("com4", DEVMODEL_LPC) != NULL, "com4 exists");
	if (!m || !lpc)
		goto out;
	is_int(m->parse_legacy(lpc, ""), -EINVAL, "-l com1, (empty) refused");
	is_int(m->parse_legacy(lpc, NULL), -EINVAL, "-l com1 refused");
	is_int(m->parse_legacy(lpc, "tcp=127.0.0.1:0"), 0, "-l com1,tcp=...");
	is_str(cfg_get(root, "lpc.com1.path"), "tcp=127.0.0.1:0",
	       "sets lpc.com1.path");
	is_int(devmodel_find_kind("com3", DEVMODEL_LPC)
		       ->parse_legacy(lpc, "tcp=127.0.0.1:0"),
	       0, "-l com3,tcp=...");
	n = uart_lpc_ports(lpc, ports, irqs, 4);
	is_int(n, 2, "two COM ports listed for ACPI");
	ok(n == 2 && ports[0] == 0x3f8 && irqs[0] == 4 && ports[1] == 0x3e8 &&
		   irqs[1] == 4,
	   "COM1 0x3f8/4 and COM3 0x3e8/4");
	is_int(uart_lpc_ports(lpc, ports, irqs, 1), 1, "max respected");
	is_int(uart_lpc_ports(NULL, ports, irqs, 4), 0, "no lpc node: none");
	is_int(m->lpc_init(&env.ctx, lpc), 0, "lpc_init creates COM1");
	ok(bus_claimed(env.ctx.pio, 0x3f8), "COM1 at 0x3f8");
	is_int(m->lpc_init(&env.ctx, lpc), -EEXIST, "a second COM1 refused");
	is_int(devmodel_find_kind("com2", DEVMODEL_LPC)
		       ->lpc_init(&env.ctx, lpc),
	       0, "com2 unconfigured: nothing");
	ok(!bus_claimed(env.ctx.pio, 0x2f8), "COM2 not created");
	cfg_set(lpc, "com2.path", "/dev/null");
	is_int(devmodel_find_kind("com2", DEVMODEL_LPC)
		       ->lpc_init(&env.ctx, lpc),
	       -ENOTTY, "com2 with a bad path fails");
	uart_lpc_release();
	ok(!bus_claimed(env.ctx.pio, 0x3f8), "released");
	is_int(m->lpc_init(&env.ctx, lpc), 0, "COM1 can be created again");
	uart_lpc_release();
out:
	cfg_free(root);
	devenv_fini(&env);
}

int main(void)
{
	plan_no_plan();
	log_init("t_uart");
	test_registers();
	test_tty_backend();
	test_tcp_backend();
	test_tcp_v6();
	test_stdio_backend();
	test_stdio_raw();
	test_lpc_models();
	return done_testing();
}
