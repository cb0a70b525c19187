/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A 16550A UART: the register core (struct uart), usable behind any
 * transport, and the ISA glue that puts COM1..COM4 on the LPC bus
 * ("-l comN,backend", keys lpc.comN.path).  A PCI "uart" model can reuse
 * the core through uart_new()/uart_read_reg()/uart_write_reg() with its
 * own interrupt callback.
 *
 * Threads and locks: each struct uart has one mutex.  Register accesses
 * come from vCPU threads; received bytes come from the event-loop thread
 * through the backend (uart_backend.h).  The interrupt callback and the
 * backend's write are called with the uart mutex held.
 */
#ifndef KHYVE_HW_UART_H
#define KHYVE_HW_UART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cfg_node;
struct devctx;
struct event_loop;
struct uart;
struct uart_backend;

/* 16550 register offsets (DLAB=0 / DLAB=1 where they differ). */
enum uart_reg {
	UART_RBR_THR = 0, /* DLL when LCR.DLAB */
	UART_IER = 1,	  /* DLM when LCR.DLAB */
	UART_IIR_FCR = 2,
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
	UART_NREGS = 8,
};

/* Interrupt output callback: 'level' is 1 while an interrupt is pending. */
typedef void (*uart_irq_fn)(void *arg, int level);

/*
 * Create a UART core called 'name' (kept by pointer; used in messages).
 * 'irq' (may be NULL) is told every change of the interrupt output.
 * Returns 0 or -ENOMEM.
 */
int uart_new(const char *name, uart_irq_fn irq, void *irq_arg,
	     struct uart **out);

/*
 * Open the backend named by 'path' ("stdio", a tty path, "tcp=ip:port")
 * and attach it; 'key' names the config key in error messages
 * ("lpc.com1.path").  'ev' may be NULL (no input is read then).
 * Returns 0 or -errno after logging one line.
 */
int uart_open_backend(struct uart *u, struct event_loop *ev, const char *path,
		      const char *key);

/* The attached backend, or NULL. */
struct uart_backend *uart_get_backend(struct uart *u);

/* Detach and close the backend (if any), then free the core.  NULL ok. */
void uart_free(struct uart *u);

/* Guest register read of 'reg' (0..7; others read 0xff). */
uint8_t uart_read_reg(struct uart *u, unsigned reg);
/* Guest register write of 'reg' (0..7; others are ignored). */
void uart_write_reg(struct uart *u, unsigned reg, uint8_t val);

/*
 * Backend side: queue received bytes.  Returns how many were taken (the
 * rest did not fit).  When it returns less than 'n' or uart_rx_room() is
 * 0, the backend must stop reading: the core calls
 * uart_backend_rx_resume() once the guest has made room.
 */
size_t uart_rx_push(struct uart *u, const uint8_t *buf, size_t n);
/* Free RX FIFO space (0 also while in loopback mode); when 0 the core
 * remembers to call uart_backend_rx_resume() later. */
size_t uart_rx_room(struct uart *u);

/* ---- ISA glue (COM1..COM4 on the LPC bus) ---- */

struct uart_isa;

/*
 * Create an ISA 16550 called 'name' at I/O 'port' (8 ports) raising ISA
 * 'irq', with backend 'path' ('key' for messages).  Returns 0, -EEXIST
 * (ports taken), or -errno after logging.
 */
int uart_isa_create(struct devctx *ctx, const char *name, uint16_t port,
		    unsigned irq, const char *path, const char *key,
		    struct uart_isa **out);
/* Unregister the ports and free the device.  NULL is accepted. */
void uart_isa_destroy(struct uart_isa *d);
/* The core behind an ISA UART (for tests and statistics). */
struct uart *uart_isa_core(struct uart_isa *d);

/*
 * List the COM ports configured under the "lpc" node (lpc.comN.path set),
 * in COM1..COM4 order, for the ACPI builder.  Fills up to 'max' entries of
 * ports[]/irqs[] and returns how many; 'lpc' may be NULL (returns 0).
 */
int uart_lpc_ports(struct cfg_node *lpc, uint16_t *ports, uint8_t *irqs,
		   unsigned max);

/* Destroy every COM port lpc_init created (orderly shutdown, tests). */
void uart_lpc_release(void);

#endif
