/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Minimal i8042 keyboard controller (see atkbdc.h).  This file owns the
 * controller's status register, output buffer, command byte and output
 * port.  Implemented controller commands:
 *
 *   0x20 read / 0x60 write the command byte
 *   0xa7/0xa8 disable/enable the aux port, 0xad/0xae the keyboard port
 *   0xa9/0xab port tests (0x00 = pass), 0xaa self test (0x55)
 *   0xc0 read input port, 0xd0/0xd1 read/write output port (writing bit 0
 *   low resets the machine), 0xdd/0xdf A20 off/on (recorded only)
 *   0xd2/0xd3 write the keyboard/aux output buffer (loop-back, used by
 *   drivers to test the interrupt lines), 0xd4 write to the aux device
 *   0xf0-0xff pulse output lines: when bit 0 is pulsed (0xfe) the machine
 *   resets -> devctx_exit(0, "reset (keyboard controller)")
 *
 * Bytes written to port 0x60 without a pending command go to the keyboard
 * and are dropped: no PS/2 devices exist yet, so drivers time out and
 * report no keyboard, as on a machine with none plugged in.  The output
 * buffer raises IRQ 1 (keyboard data) or IRQ 12 (aux data) when the
 * command byte enables it; as on ISA we drive the level and let the
 * interrupt controller see the edge.
 *
 * Threads and locks: kbc->mtx covers all state (vCPU threads).
 */
#include "hw/atkbdc.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "bus/bus.h"
#include "core/devmodel.h"
#include "core/irq.h"
#include "core/layout.h"
#include "lib/log.h"

#define STS_OBF 0x01
#define STS_SYS 0x04
#define STS_CMD 0x08 /* last write went to the command port */
#define STS_UNLOCKED 0x10
#define STS_AUXB 0x20

#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40

#define OUTP_RESET 0x01 /* active low */
#define OUTP_A20 0x02

struct atkbdc {
	pthread_mutex_t mtx;
	struct devctx ctx; /* a copy: pio bus, irq sink, exit callback */
	uint8_t status;
	uint8_t out;
	uint8_t ctr;
	uint8_t outport;
	uint8_t pending; /* command waiting for its data byte, or 0 */
	int irq1, irq12;
	bool regd_data, regd_cmd;
};

static void irq_update(struct atkbdc *kbc)
{
	bool full = kbc->status & STS_OBF, aux = kbc->status & STS_AUXB;
	int l1 = full && !aux && (kbc->ctr & CTR_KBDINT);
	int l12 = full && aux && (kbc->ctr & CTR_AUXINT);

	if (l1 != kbc->irq1) {
		kbc->irq1 = l1;
		(void)irq_set(&kbc->ctx.irq, ATKBDC_KBD_IRQ, l1);
	}
	if (l12 != kbc->irq12) {
		kbc->irq12 = l12;
		(void)irq_set(&kbc->ctx.irq, ATKBDC_AUX_IRQ, l12);
	}
}

static void out_put(struct atkbdc *kbc, uint8_t v, bool aux)
{
	kbc->out = v;
	kbc->status |= STS_OBF;
	if (aux)
		kbc->status |= STS_AUXB;
	else
		kbc->status &= (uint8_t)~STS_AUXB;
}

static void reset_machine(struct atkbdc *kbc)
{
	devctx_exit(&kbc->ctx, VM_EXIT_REBOOT, "reset (keyboard controller)");
}

static void command(struct atkbdc *kbc, uint8_t cmd)
{
	kbc->pending = 0;
	switch (cmd) {
	case 0x20:
		out_put(kbc, kbc->ctr, false);
		break;
	case 0x60:
	case 0xd1:
	case 0xd2:
	case 0xd3:
	case 0xd4:
		kbc->pending = cmd;
		break;
	case 0xa7:
		kbc->ctr |= CTR_AUXDIS;
		break;
	case 0xa8:
		kbc->ctr &= (uint8_t)~CTR_AUXDIS;
		break;
	case 0xa9:
	case 0xab:
		out_put(kbc, 0x00, false);
		break;
	case 0xaa:
		out_put(kbc, 0x55, false);
		break;
	case 0xad:
		kbc->ctr |= CTR_KBDDIS;
		break;
	case 0xae:
		kbc->ctr &= (uint8_t)~CTR_KBDDIS;
		break;
	case 0xc0:
		out_put(kbc, 0x00, false);
		break;
	case 0xd0:
		out_put(kbc, kbc->outport, false);
		break;
	case 0xdd:
		kbc->outport &= (uint8_t)~OUTP_A20;
		break;
	case 0xdf:
		kbc->outport |= OUTP_A20;
		break;
	default:
		if (cmd >= 0xf0) {
			if (!(cmd & OUTP_RESET))
				reset_machine(kbc);
			break;
		}
		log_ratelimited(5000, "atkbdc: command 0x%02x ignored", cmd);
		break;
	}
}

static void data_write(struct atkbdc *kbc, uint8_t v)
{
	uint8_t cmd = kbc->pending;

	kbc->pending = 0;
	switch (cmd) {
	case 0x60:
		kbc->ctr = v;
		if (v & CTR_SYS)
			kbc->status |= STS_SYS;
		else
			kbc->status &= (uint8_t)~STS_SYS;
		break;
	case 0xd1:
		kbc->outport = v;
		if (!(v & OUTP_RESET))
			reset_machine(kbc);
		break;
	case 0xd2:
		out_put(kbc, v, false);
		break;
	case 0xd3:
		out_put(kbc, v, true);
		break;
	default:
		/* 0xd4 (to the mouse) or plain keyboard data: no device. */
		break;
	}
}

static uint8_t port_access(struct atkbdc *kbc, bool cmdport, bool write,
			   uint8_t v)
{
	if (cmdport && write) {
		kbc->status |= STS_CMD;
		command(kbc, v);
	} else if (write) {
		kbc->status &= (uint8_t)~STS_CMD;
		data_write(kbc, v);
	} else if (cmdport) {
		v = kbc->status;
	} else {
		v = kbc->out;
		kbc->status &= (uint8_t) ~(STS_OBF | STS_AUXB);
	}
	irq_update(kbc);
	return v;
}

static int io(struct atkbdc *kbc, bool cmdport, unsigned size, bool write,
	      uint64_t *val)
{
	uint8_t v;

	if (size == 0 || size > 8)
		return 0;
	/* One byte-wide register per port: a wider access reaches the
	 * register with its low byte; other bytes read as all ones. */
	pthread_mutex_lock(&kbc->mtx);
	v = port_access(kbc, cmdport, write, (uint8_t)*val);
	pthread_mutex_unlock(&kbc->mtx);
	if (!write)
		*val = (*val & ~0xffULL) | v;
	return 0;
}

static int data_io(void *opaque, uint64_t off, unsigned size, bool write,
		   uint64_t *val)
{
	(void)off;
	return io(opaque, false, size, write, val);
}

static int cmd_io(void *opaque, uint64_t off, unsigned size, bool write,
		  uint64_t *val)
{
	(void)off;
	return io(opaque, true, size, write, val);
}

void atkbdc_destroy(struct atkbdc *kbc)
{
	if (!kbc)
		return;
	if (kbc->regd_data)
		(void)bus_unregister(kbc->ctx.pio, PORT_KBD_DATA);
	if (kbc->regd_cmd)
		(void)bus_unregister(kbc->ctx.pio, PORT_KBD_CMD);
	if (kbc->irq1)
		(void)irq_set(&kbc->ctx.irq, ATKBDC_KBD_IRQ, 0);
	if (kbc->irq12)
		(void)irq_set(&kbc->ctx.irq, ATKBDC_AUX_IRQ, 0);
	pthread_mutex_destroy(&kbc->mtx);
	free(kbc);
}

int atkbdc_create(struct devctx *ctx, struct atkbdc **out)
{
	struct atkbdc *kbc = calloc(1, sizeof(*kbc));
	int rc;

	if (!kbc)
		return -ENOMEM;
	pthread_mutex_init(&kbc->mtx, NULL);
	kbc->ctx = *ctx;
	kbc->ctr = CTR_KBDINT | CTR_SYS | CTR_XLATE;
	kbc->status = STS_SYS | STS_UNLOCKED;
	kbc->outport = OUTP_RESET | OUTP_A20;
	rc = bus_register(ctx->pio, PORT_KBD_DATA, 1, data_io, kbc,
			  "atkbdc-data");
	if (rc)
		goto fail;
	kbc->regd_data = true;
	rc = bus_register(ctx->pio, PORT_KBD_CMD, 1, cmd_io, kbc, "atkbdc-cmd");
	if (rc)
		goto fail;
	kbc->regd_cmd = true;
	*out = kbc;
	return 0;
fail:
	atkbdc_destroy(kbc);
	return rc;
}
