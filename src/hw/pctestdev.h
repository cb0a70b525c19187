/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * QEMU's pc-testdev and isa-debug-exit, plus the khyve exit register:
 * the test device of kvm-unit-tests style guests ("-l pc-testdev", key
 * lpc.pc-testdev).  See pctestdev.c for the register map.
 *
 * Threads and locks: one mutex per instance (vCPU threads).
 */
#ifndef KHYVE_HW_PCTESTDEV_H
#define KHYVE_HW_PCTESTDEV_H

struct devctx;
struct pctestdev;

/*
 * Create the device and claim its ports and its MMIO window.  Returns 0,
 * -EEXIST (a range is taken; logged) or -ENOMEM.
 */
int pctestdev_create(struct devctx *ctx, struct pctestdev **out);
/* Release the ranges and free the device.  NULL is accepted. */
void pctestdev_destroy(struct pctestdev *td);
/* Destroy the instance lpc_init created, if any (shutdown, tests). */
void pctestdev_lpc_release(void);

#endif
