/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The POST diagnostic port 0x80: firmware and old kernels write progress
 * codes (and use it as an I/O delay); reads return 0xff.  Stateless.
 */
#ifndef KHYVE_HW_POST_H
#define KHYVE_HW_POST_H

struct devctx;

/* Claim port 0x80 on ctx->pio.  Returns 0, -EEXIST (logged) or -ENOMEM. */
int post_create(struct devctx *ctx);

#endif
