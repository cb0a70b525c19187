/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * 16550A UART (see uart.h).  This file owns two things, kept apart:
 *
 *  1. The register core: RBR/THR, IER, IIR (with the FIFO bits) / FCR,
 *     LCR with the DLAB divisor latch, MCR with loopback, LSR, MSR and SCR,
 *     a 16-byte RX FIFO (1 byte with the FIFO disabled) and the interrupt
 *     logic.  Transmission is instantaneous: a THR write goes straight to
 *     the backend (or into the RX FIFO in loopback), so THRE and TEMT are
 *     always set and a THRE interrupt becomes pending right away.
 *     Interrupt priorities (IIR), highest first: receiver line status
 *     (OE; we never produce PE/FE/BI), received data available (any byte
 *     in the FIFO: the character-timeout interrupt is folded into it, so
 *     data below the trigger level is never stranded), THR empty, modem
 *     status (delta bits).  The THRE interrupt is cleared by reading IIR
 *     while it is the reported source or by writing THR, and re-armed
 *     when IER.ETBEI goes from 0 to 1 (drivers rely on that to start TX).
 *     Outside loopback the modem inputs read DCD, DSR and CTS asserted so
 *     tty opens and CTS flow control never block.
 *
 *  2. The ISA glue: COM1..COM4 as LPC device models ("-l com1,stdio"),
 *     8 I/O ports each, and the ISA interrupt line.  ISA lines are edge
 *     triggered; we drive the line level = "interrupt pending" and the
 *     in-kernel PIC/IOAPIC sees the edges.  COM1/COM3 and COM2/COM4 share
 *     a line, so the line is the OR of every port on it.
 *
 * Threads and locks: uart->mtx serialises register accesses (vCPU
 * threads) and RX pushes (event-loop thread); the interrupt callback and
 * the backend's write run under it.  'isa_lock' protects the list of ISA
 * ports (for the shared-line OR) and is taken after a uart mutex.
 */
#include "hw/uart.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "config/config.h"
#include "core/devmodel.h"
#include "core/irq.h"
#include "core/layout.h"
#include "hw/uart_backend.h"
#include "lib/log.h"

#define UART_FIFO_SIZE 16

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* THR empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK 0x0f

#define IIR_NOPEND 0x01
#define IIR_MLSC 0x00
#define IIR_TXRDY 0x02
#define IIR_RXRDY 0x04
#define IIR_RLS 0x06
#define IIR_FIFO_ON 0xc0

#define FCR_ENABLE 0x01
#define FCR_RXRST 0x02
#define FCR_TXRST 0x04
#define FCR_KEEP 0xc9 /* enable, DMA mode, trigger level */

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_ERRS 0x1e /* OE PE FE BI */
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_DELTA 0x0f
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

struct uart {
	pthread_mutex_t mtx;
	const char *name;
	uart_irq_fn irq;
	void *irq_arg;
	int irq_level;
	struct uart_backend *be;

	uint8_t rxf[UART_FIFO_SIZE];
	unsigned rx_head, rx_count;
	uint8_t rbr_last;
	bool rx_blocked; /* backend paused until we make room */

	uint8_t ier, fcr, lcr, mcr, msr, scr, dll, dlm;
	uint8_t lsr_err;   /* sticky error bits, cleared by an LSR read */
	bool thre_pending; /* THRE interrupt pending */
};

/* ---- the register core ---- */

static unsigned rx_capacity(const struct uart *u)
{
	return (u->fcr & FCR_ENABLE) ? UART_FIFO_SIZE : 1;
}

static void rx_reset(struct uart *u)
{
	u->rx_head = 0;
	u->rx_count = 0;
}

/* Queue one byte; sets OE and drops it when the FIFO is full. */
static bool rx_put(struct uart *u, uint8_t b)
{
	if (u->rx_count >= rx_capacity(u)) {
		u->lsr_err |= LSR_OE;
		return false;
	}
	u->rxf[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = b;
	u->rx_count++;
	return true;
}

static uint8_t rx_get(struct uart *u)
{
	if (u->rx_count == 0)
		return u->rbr_last;
	u->rbr_last = u->rxf[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
	u->rx_count--;
	return u->rbr_last;
}

static size_t rx_room_locked(struct uart *u)
{
	if (u->mcr & MCR_LOOP)
		return 0; /* input is disconnected in loopback: hold it */
	return rx_capacity(u) - u->rx_count;
}

/* If the backend was paused on a full FIFO and there is room, resume it. */
static void rx_maybe_resume(struct uart *u)
{
	if (u->rx_blocked && u->be && rx_room_locked(u) > 0) {
		u->rx_blocked = false;
		uart_backend_rx_resume(u->be);
	}
}

/* The modem inputs as the MCR outputs make them. */
static uint8_t modem_lines(uint8_t mcr)
{
	uint8_t msr = 0;

	if (!(mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	if (mcr & MCR_RTS)
		msr |= MSR_CTS;
	if (mcr & MCR_DTR)
		msr |= MSR_DSR;
	if (mcr & MCR_OUT1)
		msr |= MSR_RI;
	if (mcr & MCR_OUT2)
		msr |= MSR_DCD;
	return msr;
}

static void msr_update(struct uart *u)
{
	uint8_t old = u->msr, lines = modem_lines(u->mcr);
	uint8_t delta = old & MSR_DELTA;
	uint8_t changed = (uint8_t)(old ^ lines);

	if (changed & MSR_CTS)
		delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		delta |= MSR_DDSR;
	if (changed & MSR_DCD)
		delta |= MSR_DDCD;
	if ((old & MSR_RI) && !(lines & MSR_RI))
		delta |= MSR_TERI; /* trailing edge of RI */
	u->msr = lines | delta;
}

/* The highest-priority pending interrupt, as IIR bits 3:0. */
static uint8_t intr_reason(const struct uart *u)
{
	if ((u->ier & IER_ELSI) && (u->lsr_err & LSR_ERRS))
		return IIR_RLS;
	if ((u->ier & IER_ERBFI) && u->rx_count > 0)
		return IIR_RXRDY;
	if ((u->ier & IER_ETBEI) && u->thre_pending)
		return IIR_TXRDY;
	if ((u->ier & IER_EDSSI) && (u->msr & MSR_DELTA))
		return IIR_MLSC;
	return IIR_NOPEND;
}

static void irq_update(struct uart *u)
{
	int level = intr_reason(u) != IIR_NOPEND;

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (u->irq)
		u->irq(u->irq_arg, level);
}

int uart_new(const char *name, uart_irq_fn irq, void *irq_arg,
	     struct uart **out)
{
	struct uart *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->mtx, NULL);
	u->name = name;
	u->irq = irq;
	u->irq_arg = irq_arg;
	u->dll = 0x0c; /* 9600 baud, a conventional power-on value */
	u->msr = modem_lines(0);
	*out = u;
	return 0;
}

int uart_open_backend(struct uart *u, struct event_loop *ev, const char *path,
		      const char *key)
{
	struct uart_backend *be;
	int rc;

	if (u->be) {
		log_err("%s: %s: a backend is already attached", key, path);
		return -EBUSY;
	}
	rc = uart_backend_open(u, ev, path, key, &be);
	if (rc)
		return rc;
	pthread_mutex_lock(&u->mtx);
	u->be = be;
	pthread_mutex_unlock(&u->mtx);
	return 0;
}

struct uart_backend *uart_get_backend(struct uart *u)
{
	return u->be;
}

void uart_free(struct uart *u)
{
	struct uart_backend *be;

	if (!u)
		return;
	pthread_mutex_lock(&u->mtx);
	be = u->be;
	u->be = NULL;
	pthread_mutex_unlock(&u->mtx);
	uart_backend_close(be);
	pthread_mutex_destroy(&u->mtx);
	free(u);
}

static void thr_write(struct uart *u, uint8_t b)
{
	if (u->mcr & MCR_LOOP)
		(void)rx_put(u, b);
	else if (u->be)
		uart_backend_write(u->be, &b, 1);
	/* The byte left at once: THR is empty again. */
	u->thre_pending = true;
}

static void fcr_write(struct uart *u, uint8_t val)
{
	if (!(val & FCR_ENABLE)) {
		if (u->fcr & FCR_ENABLE)
			rx_reset(u);
		u->fcr = 0;
		return;
	}
	if (!(u->fcr & FCR_ENABLE) || (val & FCR_RXRST))
		rx_reset(u);
	/* FCR_TXRST: nothing is ever queued for transmission. */
	u->fcr = val & FCR_KEEP;
}

static void mcr_write(struct uart *u, uint8_t val)
{
	u->mcr = val & MCR_MASK;
	msr_update(u);
}

uint8_t uart_read_reg(struct uart *u, unsigned reg)
{
	uint8_t v = 0xff, reason;

	pthread_mutex_lock(&u->mtx);
	switch (reg) {
	case UART_RBR_THR:
		v = (u->lcr & LCR_DLAB) ? u->dll : rx_get(u);
		break;
	case UART_IER:
		v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
		break;
	case UART_IIR_FCR:
		reason = intr_reason(u);
		if (reason == IIR_TXRDY)
			u->thre_pending = false;
		v = reason | ((u->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0);
		break;
	case UART_LCR:
		v = u->lcr;
		break;
	case UART_MCR:
		v = u->mcr;
		break;
	case UART_LSR:
		v = LSR_THRE | LSR_TEMT | u->lsr_err;
		if (u->rx_count > 0)
			v |= LSR_DR;
		u->lsr_err = 0;
		break;
	case UART_MSR:
		v = u->msr;
		u->msr &= (uint8_t)~MSR_DELTA;
		break;
	case UART_SCR:
		v = u->scr;
		break;
	default:
		break;
	}
	irq_update(u);
	rx_maybe_resume(u);
	pthread_mutex_unlock(&u->mtx);
	return v;
}

void uart_write_reg(struct uart *u, unsigned reg, uint8_t val)
{
	pthread_mutex_lock(&u->mtx);
	switch (reg) {
	case UART_RBR_THR:
		if (u->lcr & LCR_DLAB)
			u->dll = val;
		else
			thr_write(u, val);
		break;
	case UART_IER:
		if (u->lcr & LCR_DLAB) {
			u->dlm = val;
			break;
		}
		/* Enabling the THRE interrupt while THR is empty (always)
		 * makes it pending. */
		if (!(u->ier & IER_ETBEI) && (val & IER_ETBEI))
			u->thre_pending = true;
		u->ier = val & IER_MASK;
		break;
	case UART_IIR_FCR:
		fcr_write(u, val);
		break;
	case UART_LCR:
		u->lcr = val;
		break;
	case UART_MCR:
		mcr_write(u, val);
		break;
	case UART_SCR:
		u->scr = val;
		break;
	default:
		/* LSR and MSR are read-only (factory test writes ignored). */
		break;
	}
	irq_update(u);
	rx_maybe_resume(u);
	pthread_mutex_unlock(&u->mtx);
}

size_t uart_rx_push(struct uart *u, const uint8_t *buf, size_t n)
{
	size_t room, i;

	pthread_mutex_lock(&u->mtx);
	room = rx_room_locked(u);
	if (room > n)
		room = n;
	for (i = 0; i < room; i++)
		(void)rx_put(u, buf[i]);
	if (room < n || rx_room_locked(u) == 0)
		u->rx_blocked = true;
	irq_update(u);
	pthread_mutex_unlock(&u->mtx);
	return room;
}

size_t uart_rx_room(struct uart *u)
{
	size_t room;

	pthread_mutex_lock(&u->mtx);
	room = rx_room_locked(u);
	if (room == 0)
		u->rx_blocked = true;
	pthread_mutex_unlock(&u->mtx);
	return room;
}

/* ---- ISA glue ---- */

struct uart_isa {
	struct uart *u;
	struct bus *pio;
	struct irq_sink irq;
	const char *name;
	uint16_t port;
	unsigned gsi;
	int level;
	struct uart_isa *next; /* isa_list, under isa_lock */
};

static pthread_mutex_t isa_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uart_isa *isa_list;

static bool same_line(const struct uart_isa *a, const struct uart_isa *b)
{
	return a->gsi == b->gsi && a->irq.set_irq == b->irq.set_irq &&
	       a->irq.opaque == b->irq.opaque;
}

/* The OR of the interrupt outputs of every port sharing d's line. */
static int isa_line_level(const struct uart_isa *d)
{
	const struct uart_isa *p;

	for (p = isa_list; p; p = p->next)
		if (same_line(p, d) && p->level)
			return 1;
	return 0;
}

static void isa_set_level(struct uart_isa *d, int level)
{
	int before, after;

	pthread_mutex_lock(&isa_lock);
	before = isa_line_level(d);
	d->level = level;
	after = isa_line_level(d);
	if (before != after)
		(void)irq_set(&d->irq, d->gsi, after);
	pthread_mutex_unlock(&isa_lock);
}

static void isa_irq(void *arg, int level)
{
	isa_set_level(arg, level);
}

/* 8 byte-wide registers; wider accesses are split as the ISA bus does. */
static int isa_io(void *opaque, uint64_t off, unsigned size, bool write,
		  uint64_t *val)
{
	struct uart_isa *d = opaque;
	unsigned i;

	if (size == 0 || size > 8)
		return 0;
	for (i = 0; i < size && off + i < UART_NREGS; i++) {
		unsigned reg = (unsigned)off + i, sh = 8 * i;

		if (write) {
			uart_write_reg(d->u, reg, (uint8_t)(*val >> sh));
		} else {
			*val &= ~(0xffULL << sh);
			*val |= (uint64_t)uart_read_reg(d->u, reg) << sh;
		}
	}
	return 0;
}

int uart_isa_create(struct devctx *ctx, const char *name, uint16_t port,
		    unsigned irq, const char *path, const char *key,
		    struct uart_isa **out)
{
	struct uart_isa *d = calloc(1, sizeof(*d));
	int rc;

	if (!d)
		return -ENOMEM;
	d->pio = ctx->pio;
	d->irq = ctx->irq;
	d->name = name;
	d->port = port;
	d->gsi = irq;
	rc = uart_new(name, isa_irq, d, &d->u);
	if (rc)
		goto fail_free;
	rc = uart_open_backend(d->u, ctx->ev, path, key);
	if (rc)
		goto fail_uart;
	rc = bus_register(ctx->pio, port, UART_NREGS, isa_io, d, name);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: cannot claim ports 0x%x-0x%x",
			  name, port, port + UART_NREGS - 1);
		goto fail_uart;
	}
	pthread_mutex_lock(&isa_lock);
	d->next = isa_list;
	isa_list = d;
	pthread_mutex_unlock(&isa_lock);
	*out = d;
	return 0;
fail_uart:
	uart_free(d->u);
fail_free:
	free(d);
	return rc;
}

void uart_isa_destroy(struct uart_isa *d)
{
	struct uart_isa **pp;
	int before;

	if (!d)
		return;
	(void)bus_unregister(d->pio, d->port);
	uart_free(d->u); /* no more interrupt callbacks after this */
	pthread_mutex_lock(&isa_lock);
	before = isa_line_level(d);
	for (pp = &isa_list; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	}
	if (before && !isa_line_level(d))
		(void)irq_set(&d->irq, d->gsi, 0);
	pthread_mutex_unlock(&isa_lock);
	free(d);
}

struct uart *uart_isa_core(struct uart_isa *d)
{
	return d->u;
}

/* ---- LPC device models com1..com4 ---- */

struct com_def {
	const char *name;
	const char *key; /* relative to the lpc node */
	const char *full_key;
	uint16_t port;
	uint8_t irq;
};

static const struct com_def com_defs[4] = {
	{"com1", "com1.path", "lpc.com1.path", COM1_PORT, COM1_IRQ},
	{"com2", "com2.path", "lpc.com2.path", COM2_PORT, COM2_IRQ},
	{"com3", "com3.path", "lpc.com3.path", COM3_PORT, COM3_IRQ},
	{"com4", "com4.path", "lpc.com4.path", COM4_PORT, COM4_IRQ},
};

static struct uart_isa *lpc_coms[4];

static int com_parse(unsigned unit, struct cfg_node *lpc, const char *opts)
{
	const struct com_def *c = &com_defs[unit];

	if (!opts || !*opts) {
		log_err("%s: missing backend for '-l %s' (stdio, a tty path "
			"or tcp=ip:port)",
			c->full_key, c->name);
		return -EINVAL;
	}
	return cfg_set(lpc, c->key, opts);
}

static int com_init(unsigned unit, struct devctx *ctx, struct cfg_node *lpc)
{
	const struct com_def *c = &com_defs[unit];
	const char *path;

	if (!lpc)
		return 0;
	path = cfg_get(lpc, c->key);
	if (!path) {
		if (cfg_get_raw(lpc, c->key))
			return -EINVAL; /* bad %(ref): cfg_get logged it */
		return 0;
	}
	if (!*path) {
		log_err("%s: empty value (expected stdio, a tty path or "
			"tcp=ip:port)",
			c->full_key);
		return -EINVAL;
	}
	if (lpc_coms[unit]) {
		log_err("%s: %s already exists", c->full_key, c->name);
		return -EEXIST;
	}
	return uart_isa_create(ctx, c->name, c->port, c->irq, path, c->full_key,
			       &lpc_coms[unit]);
}

int uart_lpc_ports(struct cfg_node *lpc, uint16_t *ports, uint8_t *irqs,
		   unsigned max)
{
	unsigned i, n = 0;

	if (!lpc)
		return 0;
	for (i = 0; i < 4 && n < max; i++) {
		const char *v = cfg_get_raw(lpc, com_defs[i].key);

		if (!v || !*v)
			continue;
		ports[n] = com_defs[i].port;
		irqs[n] = com_defs[i].irq;
		n++;
	}
	return (int)n;
}

void uart_lpc_release(void)
{
	unsigned i;

	for (i = 0; i < 4; i++) {
		uart_isa_destroy(lpc_coms[i]);
		lpc_coms[i] = NULL;
	}
}

#define COM_MODEL(n)                                                           \
	static const struct cfg_key com##n##_keys[] = {                        \
		{.name = "com" #n ".path",                                     \
		 .type = CFG_STRING,                                           \
		 .help = "COM" #n " backend: stdio, a tty path or "            \
			 "tcp=ip:port"},                                       \
		{.name = NULL},                                                \
	};                                                                     \
	static int com##n##_parse(struct cfg_node *lpc, const char *opts)      \
	{                                                                      \
		return com_parse(n - 1, lpc, opts);                            \
	}                                                                      \
	static int com##n##_init(struct devctx *ctx, struct cfg_node *lpc)     \
	{                                                                      \
		return com_init(n - 1, ctx, lpc);                              \
	}                                                                      \
	static const struct devmodel com##n##_model = {                        \
		.name = "com" #n,                                              \
		.kind = DEVMODEL_LPC,                                          \
		.keys = com##n##_keys,                                         \
		.parse_legacy = com##n##_parse,                                \
		.lpc_init = com##n##_init,                                     \
	};                                                                     \
	DEVMODEL_SET(com##n##_model)

COM_MODEL(1);
COM_MODEL(2);
COM_MODEL(3);
COM_MODEL(4);
