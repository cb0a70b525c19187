/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A minimal i8042 keyboard controller at I/O 0x60 (data) and 0x64
 * (status/command): enough for guests to probe it, to run its self test
 * and to reboot through it (command 0xfe, the classic PC reset).  No PS/2
 * keyboard or mouse sits behind it yet.
 *
 * Threads and locks: one mutex per instance; accesses come from vCPU
 * threads.
 */
#ifndef KHYVE_HW_ATKBDC_H
#define KHYVE_HW_ATKBDC_H

struct devctx;
struct atkbdc;

/* ISA interrupt lines of the two ports. */
#define ATKBDC_KBD_IRQ 1
#define ATKBDC_AUX_IRQ 12

/*
 * Create the controller and claim ports 0x60 and 0x64 on ctx->pio.
 * Returns 0, -EEXIST (a port is taken; logged) or -ENOMEM.
 */
int atkbdc_create(struct devctx *ctx, struct atkbdc **out);
/* Release the ports and free the controller.  NULL is accepted. */
void atkbdc_destroy(struct atkbdc *kbc);

#endif
