/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ACPI fixed hardware (bhyve's pm.c): the PM1a event and control blocks,
 * the PM timer, the SMI command port that switches ACPI mode on and off,
 * and the 0xcf9 reset control register.  Addresses are in core/layout.h
 * (PORT_PM1A_EVT, PORT_PM1A_CNT, PORT_PM_TMR, PORT_SMI_CMD,
 * PORT_RESET_CF9); the FADT must describe the same ones.
 *
 * Threads and locks: one mutex per instance; register accesses come from
 * vCPU threads, pm_power_button() from the event-loop thread (SIGTERM).
 */
#ifndef KHYVE_HW_PM_H
#define KHYVE_HW_PM_H

#include <stdbool.h>
#include <stdint.h>

struct devctx;
struct pm;

/* PM1 status/enable bits (ACPI 6.5 §4.8.3.1). */
#define PM1_TMR_STS 0x0001
#define PM1_BM_STS 0x0010
#define PM1_GBL_STS 0x0020
#define PM1_PWRBTN_STS 0x0100
#define PM1_SLPBTN_STS 0x0200
#define PM1_RTC_STS 0x0400
#define PM1_WAK_STS 0x8000
#define PM1_TMR_EN PM1_TMR_STS
#define PM1_GBL_EN PM1_GBL_STS
#define PM1_PWRBTN_EN PM1_PWRBTN_STS
#define PM1_SLPBTN_EN PM1_SLPBTN_STS
#define PM1_RTC_EN PM1_RTC_STS
/* PM1 control bits. */
#define PM1_SCI_EN 0x0001
#define PM1_SLP_TYP_SHIFT 10
#define PM1_SLP_TYP_MASK 0x1c00
#define PM1_SLP_EN 0x2000

#define PM_TIMER_HZ 3579545ULL

/*
 * Create the ACPI PM block and claim its ports on ctx->pio.  Returns 0,
 * -EEXIST (a port is taken; logged) or -ENOMEM.
 */
int pm_create(struct devctx *ctx, struct pm **out);
/* Release the ports and free the block.  NULL is accepted. */
void pm_destroy(struct pm *pm);

/*
 * Press the power button (what SIGTERM does, as in bhyve).  Sets
 * PWRBTN_STS and raises the SCI when the guest has enabled ACPI (SCI_EN);
 * without SCI_EN the press is lost, as in bhyve.  Returns true when the
 * press reached the guest as an SCI (SCI_EN and PWRBTN_EN both set).
 */
bool pm_power_button(struct pm *pm);

#endif
