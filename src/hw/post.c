/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * POST port 0x80 (see post.h).  Writes are discarded, reads return all
 * ones (the bus pre-sets them).  No state, no locks.
 */
#include "hw/post.h"

#include <stdbool.h>
#include <stdint.h>

#include "bus/bus.h"
#include "core/devmodel.h"
#include "core/layout.h"

static int post_io(void *opaque, uint64_t off, unsigned size, bool write,
		   uint64_t *val)
{
	(void)opaque;
	(void)off;
	(void)size;
	if (!write)
		*val = ~0ULL;
	return 0;
}

int post_create(struct devctx *ctx)
{
	return bus_register(ctx->pio, PORT_POST, 1, post_io, NULL, "post");
}
