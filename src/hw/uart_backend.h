/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Host side of a UART (bhyve's uart_backend.c): where guest output goes and
 * guest input comes from.  Backends, named as bhyve names them:
 *
 *   stdio            stdin/stdout; stdin's tty is put in raw mode and
 *                    restored at close and at exit
 *   /dev/pts/N ...   an existing tty device (must be a tty)
 *   tcp=ip:port      a listening TCP socket ("tcp=[ipv6]:port"); one
 *                    client at a time, later clients are closed at once;
 *                    output is dropped while no client is connected
 *
 * Output never blocks the vCPU: the fds are non-blocking (or polled before
 * each write when we cannot own a non-blocking file description) and
 * bytes that do not fit are dropped and counted.  Input is read by the
 * event loop into the UART's RX FIFO; when the FIFO is full the fd is
 * paused (event_mod_fd) until the guest drains it.
 *
 * Threads and locks: uart_backend_write() runs on vCPU threads with the
 * uart mutex held; the read/accept callbacks run on the event-loop thread.
 * 'lock' (taken after the uart mutex, never before) protects the TCP
 * client fd, which the loop thread may close while a vCPU writes.
 */
#ifndef KHYVE_HW_UART_BACKEND_H
#define KHYVE_HW_UART_BACKEND_H

#include <stddef.h>
#include <stdint.h>

struct event_loop;
struct uart;
struct uart_backend;

/*
 * Open the backend described by 'path' for UART 'u'.  'key' is the config
 * key used in error messages ("lpc.com1.path: /x: not a tty").  'ev' may
 * be NULL: input is then never read.  Returns 0 or -errno after logging
 * one line.
 */
int uart_backend_open(struct uart *u, struct event_loop *ev, const char *path,
		      const char *key, struct uart_backend **out);
/* Stop watching, close the fds, restore the tty.  NULL is accepted.  Call
 * when the event loop is not running (or from its thread). */
void uart_backend_close(struct uart_backend *be);

/* Send guest output; drops (and counts) what the host cannot take now. */
void uart_backend_write(struct uart_backend *be, const uint8_t *buf, size_t n);
/* The RX FIFO has room again: resume reading (any thread). */
void uart_backend_rx_resume(struct uart_backend *be);

/* Bytes of guest output dropped so far. */
uint64_t uart_backend_dropped(const struct uart_backend *be);
/* TCP backend: the bound port (useful with port 0); else 0. */
uint16_t uart_backend_tcp_port(const struct uart_backend *be);

#endif
