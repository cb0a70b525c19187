/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * pc-testdev: QEMU's PC test device and isa-debug-exit, as bhyve's
 * "-l pc-testdev" offers them to kvm-unit-tests style guests, plus the
 * khyve exit register.  This file owns the LPC model "pc-testdev"
 * (lpc.pc-testdev=true) and these ranges:
 *
 *   I/O 0xe0-0xe3      (TESTDEV_PORT_BASE) a 4-byte scratch register:
 *                      reads return what was written, any width/offset
 *   I/O 0xf4-0xf7      (DEBUG_EXIT_PORT) isa-debug-exit: writing v (of
 *                      the access width) ends the VM with exit status
 *                      (v << 1) | 1, exactly as QEMU's device does, so
 *                      a guest can never produce status 0
 *   I/O 0x2000-0x2017  (TESTDEV_IRQ_PORT) one port per IOAPIC pin: a
 *                      byte write of v sets pin N's level to (v != 0);
 *                      reads return the level last set
 *   MMIO 0xff000000 +64 KiB (TESTDEV_IOMEM_BASE/SIZE) memory that keeps
 *                      what is written (1, 2, 4 or 8 bytes anywhere),
 *                      except the last dword, TESTDEV_EXIT_REG, the khyve
 *                      exit register: a 4-byte write of v there ends the
 *                      VM with status (v << 1) | 1.  Ring-3 test guests,
 *                      which cannot do port I/O, use it instead of 0xf4.
 *                      Other widths just store bytes.
 *
 * QEMU's page-flush port (0xe4) is not implemented.  Accesses that stick
 * out of a range only touch the bytes inside it.
 *
 * Threads and locks: td->mtx covers the scratch bytes, the iomem and the
 * pin levels (vCPU threads).
 */
#include "hw/pctestdev.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "config/config.h"
#include "core/devmodel.h"
#include "core/irq.h"
#include "core/layout.h"
#include "lib/log.h"

#define SCRATCH_LEN 4
#define EXIT_LEN 4
#define EXIT_REG_OFF (TESTDEV_EXIT_REG - TESTDEV_IOMEM_BASE)

struct pctestdev {
	pthread_mutex_t mtx;
	struct devctx ctx; /* a copy: buses, irq sink, exit callback */
	uint8_t scratch[SCRATCH_LEN];
	uint8_t pin[IOAPIC_PINS];
	uint8_t *iomem;
	unsigned regd; /* bit per registered range */
};

enum { R_SCRATCH, R_EXIT, R_IRQ, R_IOMEM };

/* Copy the bytes of an access that fall inside a 'len'-byte buffer. */
static void mem_access(uint8_t *mem, uint64_t len, uint64_t off, unsigned size,
		       bool write, uint64_t *val)
{
	unsigned i;

	if (size == 0 || size > 8)
		return;
	for (i = 0; i < size && off + i < len; i++) {
		unsigned sh = 8 * i;

		if (write) {
			mem[off + i] = (uint8_t)(*val >> sh);
		} else {
			*val &= ~(0xffULL << sh);
			*val |= (uint64_t)mem[off + i] << sh;
		}
	}
}

static uint64_t width_mask(unsigned size)
{
	return size >= 8 ? ~0ULL : (1ULL << (8 * size)) - 1;
}

static void guest_exit(struct pctestdev *td, uint64_t v, const char *why)
{
	devctx_exit(&td->ctx, (int)(uint32_t)((v << 1) | 1), why);
}

static int scratch_io(void *opaque, uint64_t off, unsigned size, bool write,
		      uint64_t *val)
{
	struct pctestdev *td = opaque;

	pthread_mutex_lock(&td->mtx);
	mem_access(td->scratch, SCRATCH_LEN, off, size, write, val);
	pthread_mutex_unlock(&td->mtx);
	return 0;
}

static int exit_io(void *opaque, uint64_t off, unsigned size, bool write,
		   uint64_t *val)
{
	(void)off;
	if (write && size >= 1 && size <= 8)
		guest_exit(opaque, *val & width_mask(size), "isa-debug-exit");
	return 0;
}

static int irq_io(void *opaque, uint64_t off, unsigned size, bool write,
		  uint64_t *val)
{
	struct pctestdev *td = opaque;
	unsigned i;

	if (size == 0 || size > 8)
		return 0;
	pthread_mutex_lock(&td->mtx);
	for (i = 0; i < size && off + i < IOAPIC_PINS; i++) {
		unsigned pin = (unsigned)off + i, sh = 8 * i;

		if (write) {
			td->pin[pin] = ((*val >> sh) & 0xff) != 0;
			(void)irq_set(&td->ctx.irq, pin, td->pin[pin]);
		} else {
			*val &= ~(0xffULL << sh);
			*val |= (uint64_t)td->pin[pin] << sh;
		}
	}
	pthread_mutex_unlock(&td->mtx);
	return 0;
}

static int iomem_io(void *opaque, uint64_t off, unsigned size, bool write,
		    uint64_t *val)
{
	struct pctestdev *td = opaque;

	if (write && size == 4 && off == EXIT_REG_OFF) {
		guest_exit(td, *val & 0xffffffffULL, "khyve exit register");
		return 0;
	}
	pthread_mutex_lock(&td->mtx);
	mem_access(td->iomem, TESTDEV_IOMEM_SIZE, off, size, write, val);
	pthread_mutex_unlock(&td->mtx);
	return 0;
}

void pctestdev_destroy(struct pctestdev *td)
{
	unsigned i;

	if (!td)
		return;
	if (td->regd & (1u << R_SCRATCH))
		(void)bus_unregister(td->ctx.pio, TESTDEV_PORT_BASE);
	if (td->regd & (1u << R_EXIT))
		(void)bus_unregister(td->ctx.pio, DEBUG_EXIT_PORT);
	if (td->regd & (1u << R_IRQ))
		(void)bus_unregister(td->ctx.pio, TESTDEV_IRQ_PORT);
	if (td->regd & (1u << R_IOMEM))
		(void)bus_unregister(td->ctx.mmio, TESTDEV_IOMEM_BASE);
	for (i = 0; i < IOAPIC_PINS; i++)
		if (td->pin[i])
			(void)irq_set(&td->ctx.irq, i, 0);
	free(td->iomem);
	pthread_mutex_destroy(&td->mtx);
	free(td);
}

int pctestdev_create(struct devctx *ctx, struct pctestdev **out)
{
	struct pctestdev *td = calloc(1, sizeof(*td));
	int rc;

	if (!td)
		return -ENOMEM;
	pthread_mutex_init(&td->mtx, NULL);
	td->ctx = *ctx;
	td->iomem = calloc(1, TESTDEV_IOMEM_SIZE);
	if (!td->iomem) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = bus_register(ctx->pio, TESTDEV_PORT_BASE, SCRATCH_LEN, scratch_io,
			  td, "pc-testdev");
	if (rc)
		goto fail;
	td->regd |= 1u << R_SCRATCH;
	rc = bus_register(ctx->pio, DEBUG_EXIT_PORT, EXIT_LEN, exit_io, td,
			  "isa-debug-exit");
	if (rc)
		goto fail;
	td->regd |= 1u << R_EXIT;
	rc = bus_register(ctx->pio, TESTDEV_IRQ_PORT, IOAPIC_PINS, irq_io, td,
			  "pc-testdev-irq");
	if (rc)
		goto fail;
	td->regd |= 1u << R_IRQ;
	rc = bus_register(ctx->mmio, TESTDEV_IOMEM_BASE, TESTDEV_IOMEM_SIZE,
			  iomem_io, td, "pc-testdev-iomem");
	if (rc)
		goto fail;
	td->regd |= 1u << R_IOMEM;
	*out = td;
	return 0;
fail:
	pctestdev_destroy(td);
	return rc;
}

/* ---- LPC model ---- */

static struct pctestdev *lpc_testdev;

static int pctestdev_parse(struct cfg_node *lpc, const char *opts)
{
	if (opts && *opts) {
		log_err("lpc.pc-testdev: unexpected options '%s' (pc-testdev "
			"takes none)",
			opts);
		return -EINVAL;
	}
	return cfg_set(lpc, "pc-testdev", "true");
}

static int pctestdev_lpc_init(struct devctx *ctx, struct cfg_node *lpc)
{
	bool on = false;
	int rc;

	if (!lpc)
		return 0;
	rc = cfg_get_bool(lpc, "pc-testdev", false, &on);
	if (rc || !on)
		return rc;
	if (lpc_testdev) {
		log_err("lpc.pc-testdev: already created");
		return -EEXIST;
	}
	return pctestdev_create(ctx, &lpc_testdev);
}

void pctestdev_lpc_release(void)
{
	pctestdev_destroy(lpc_testdev);
	lpc_testdev = NULL;
}

static const struct cfg_key pctestdev_keys[] = {
	{.name = "pc-testdev",
	 .type = CFG_BOOL,
	 .def = "false",
	 .help = "QEMU pc-testdev + isa-debug-exit + khyve exit register"},
	{.name = NULL},
};

static const struct devmodel pctestdev_model = {
	.name = "pc-testdev",
	.kind = DEVMODEL_LPC,
	.keys = pctestdev_keys,
	.parse_legacy = pctestdev_parse,
	.lpc_init = pctestdev_lpc_init,
};
DEVMODEL_SET(pctestdev_model);
