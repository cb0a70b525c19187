/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * PCI root, config mechanisms and instance creation (see pci.h).
 */
#include "pci/pci.h"
#include "pci/pci_priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/layout.h"
#include "lib/log.h"

static struct pci_dev **slot_ptr(struct pci_bus *root, unsigned bus,
				 unsigned slot, unsigned func, bool create)
{
	if (bus >= PCI_MAX_BUSES || slot >= PCI_MAX_SLOTS ||
	    func >= PCI_MAX_FUNCS)
		return NULL;
	if (!root->fn[bus]) {
		if (!create)
			return NULL;
		root->fn[bus] = calloc(PCI_MAX_SLOTS * PCI_MAX_FUNCS,
				       sizeof(struct pci_dev *));
		if (!root->fn[bus])
			return NULL;
	}
	return &root->fn[bus][slot * PCI_MAX_FUNCS + func];
}

struct pci_dev *pci_find(struct pci_bus *root, unsigned bus, unsigned slot,
			 unsigned func)
{
	struct pci_dev **p = slot_ptr(root, bus, slot, func, false);

	return p ? *p : NULL;
}

void pci_set_ids(struct pci_dev *pd, uint16_t vendor, uint16_t device,
		 uint8_t class, uint8_t subclass, uint8_t progif)
{
	pci_set16(pd, PCIR_VENDOR, vendor);
	pci_set16(pd, PCIR_DEVICE, device);
	pci_set8(pd, PCIR_CLASS, class);
	pci_set8(pd, PCIR_SUBCLASS, subclass);
	pci_set8(pd, PCIR_PROGIF, progif);
	pci_set8(pd, PCIR_HDRTYPE, 0);
}

uint32_t pci_cfg_read(struct pci_bus *root, unsigned bus, unsigned slot,
		      unsigned func, unsigned off, unsigned size)
{
	struct pci_dev *pd = pci_find(root, bus, slot, func);
	uint32_t val = 0xffffffffu;
	unsigned i;

	if (size != 1 && size != 2 && size != 4)
		return val;
	if (size < 4)
		val = (1u << (size * 8)) - 1;
	if (!pd || off + size > PCI_CFG_SIZE || (off & (size - 1)))
		return val;
	pthread_mutex_lock(&root->lock);
	if (!pd->model->pci->cfgread ||
	    pd->model->pci->cfgread(pd, off, size, &val) == -ENOENT) {
		val = 0;
		for (i = 0; i < size; i++)
			val |= (uint32_t)pd->cfg[off + i] << (8 * i);
	}
	pthread_mutex_unlock(&root->lock);
	return val;
}

void pci_cfg_write(struct pci_bus *root, unsigned bus, unsigned slot,
		   unsigned func, unsigned off, unsigned size, uint32_t val)
{
	struct pci_dev *pd = pci_find(root, bus, slot, func);
	unsigned i;

	if (!pd || (size != 1 && size != 2 && size != 4) ||
	    off + size > PCI_CFG_SIZE || (off & (size - 1)))
		return;
	pthread_mutex_lock(&root->lock);
	if ((!pd->model->pci->cfgwrite ||
	     pd->model->pci->cfgwrite(pd, off, size, val) == -ENOENT) &&
	    !pci_bar_cfgwrite(pd, off, size, val)) {
		uint16_t old_cmd = pci_get16(pd, PCIR_COMMAND);

		for (i = 0; i < size; i++) {
			uint8_t m = pd->wmask[off + i];
			uint8_t b = (uint8_t)(val >> (8 * i));

			pd->cfg[off + i] =
				(uint8_t)((pd->cfg[off + i] & ~m) | (b & m));
		}
		if (off < PCIR_COMMAND + 2 && off + size > PCIR_COMMAND &&
		    (old_cmd ^ pci_get16(pd, PCIR_COMMAND)) &
			    (PCIM_CMD_PORTEN | PCIM_CMD_MEMEN))
			pci_bars_update(pd);
		pci_irq_cfgwritten(pd, off, size, old_cmd);
	}
	pthread_mutex_unlock(&root->lock);
}

/* Port 0xcf8: the address latch; only dword accesses reach it. */
static int cf8_io(void *opaque, uint64_t off, unsigned size, bool write,
		  uint64_t *val)
{
	struct pci_bus *root = opaque;

	(void)off;
	if (size != 4)
		return 0; /* byte/word accesses: ignored, read all ones */
	if (write)
		__atomic_store_n(&root->cf8, (uint32_t)*val, __ATOMIC_RELAXED);
	else
		*val = __atomic_load_n(&root->cf8, __ATOMIC_RELAXED);
	return 0;
}

/* Ports 0xcfc-0xcff: data window onto the latched dword. */
static int cfc_io(void *opaque, uint64_t off, unsigned size, bool write,
		  uint64_t *val)
{
	struct pci_bus *root = opaque;
	uint32_t a = __atomic_load_n(&root->cf8, __ATOMIC_RELAXED);
	unsigned reg;

	if (!(a & 0x80000000u))
		return 0; /* disabled: reads stay all ones */
	if (off + size > 4)
		return 0;
	reg = (a & 0xfc) + (unsigned)off;
	if (write)
		pci_cfg_write(root, (a >> 16) & 0xff, (a >> 11) & 0x1f,
			      (a >> 8) & 7, reg, size, (uint32_t)*val);
	else
		*val = pci_cfg_read(root, (a >> 16) & 0xff, (a >> 11) & 0x1f,
				    (a >> 8) & 7, reg, size);
	return 0;
}

static int ecam_io(void *opaque, uint64_t off, unsigned size, bool write,
		   uint64_t *val)
{
	struct pci_bus *root = opaque;
	unsigned bus = (unsigned)(off >> 20) & 0xff;
	unsigned slot = (unsigned)(off >> 15) & 0x1f;
	unsigned func = (unsigned)(off >> 12) & 7;
	unsigned reg = (unsigned)off & 0xfff;

	if (size == 8) {
		/* split a 64-bit access in two dwords */
		uint64_t lo = *val & 0xffffffffu, hi = *val >> 32;

		if (write) {
			pci_cfg_write(root, bus, slot, func, reg, 4,
				      (uint32_t)lo);
			pci_cfg_write(root, bus, slot, func, reg + 4, 4,
				      (uint32_t)hi);
		} else {
			*val = pci_cfg_read(root, bus, slot, func, reg, 4) |
			       (uint64_t)pci_cfg_read(root, bus, slot, func,
						      reg + 4, 4)
				       << 32;
		}
		return 0;
	}
	if (write)
		pci_cfg_write(root, bus, slot, func, reg, size, (uint32_t)*val);
	else
		*val = pci_cfg_read(root, bus, slot, func, reg, size);
	return 0;
}

int pci_root_new(struct devctx *ctx, struct pci_bus **out)
{
	struct pci_bus *root = calloc(1, sizeof(*root));
	int rc;

	if (!root)
		return -ENOMEM;
	root->ctx = ctx;
	pthread_mutex_init(&root->lock, NULL);
	pthread_mutex_init(&root->intx_lock, NULL);
	pci_set_windows(root, PCI_IO_BASE, PCI_IO_END - 1, PCI_MMIO32_BASE,
			PCI_MMIO32_END - 1, 0, 0);
	/* 0xcf9 between the two belongs to the reset-control register. */
	rc = bus_register(ctx->pio, PORT_PCI_CONF_ADDR, 1, cf8_io, root,
			  "pci-cf8");
	if (!rc)
		rc = bus_register(ctx->pio, PORT_PCI_CONF_DATA, 4, cfc_io, root,
				  "pci-cfc");
	if (!rc)
		rc = bus_register(ctx->mmio, PCI_ECAM_BASE, PCI_ECAM_SIZE,
				  ecam_io, root, "pci-ecam");
	if (rc) {
		(void)bus_unregister(ctx->pio, PORT_PCI_CONF_ADDR);
		(void)bus_unregister(ctx->pio, PORT_PCI_CONF_DATA);
		pthread_mutex_destroy(&root->lock);
		free(root);
		return rc;
	}
	ctx->pci = root;
	*out = root;
	return 0;
}

void pci_root_free(struct pci_bus *root)
{
	unsigned b, i;

	if (!root)
		return;
	for (b = 0; b < PCI_MAX_BUSES; b++) {
		if (!root->fn[b])
			continue;
		for (i = 0; i < PCI_MAX_SLOTS * PCI_MAX_FUNCS; i++) {
			struct pci_dev *pd = root->fn[b][i];

			if (!pd)
				continue;
			pci_bars_unmap(pd);
			if (pd->model->pci->fini)
				pd->model->pci->fini(pd);
			pci_irq_free(pd);
			pthread_mutex_destroy(&pd->irq_lock);
			free(pd);
		}
		free(root->fn[b]);
	}
	pthread_mutex_destroy(&root->intx_lock);
	pthread_mutex_destroy(&root->lock);
	free(root);
}

void pci_foreach(struct pci_bus *root,
		 void (*fn)(void *arg, struct pci_dev *pd), void *arg)
{
	unsigned b, i;

	for (b = 0; b < PCI_MAX_BUSES; b++) {
		if (!root->fn[b])
			continue;
		for (i = 0; i < PCI_MAX_SLOTS * PCI_MAX_FUNCS; i++)
			if (root->fn[b][i])
				fn(arg, root->fn[b][i]);
	}
}

/* Parse a node name as a decimal number below 'limit'; -1 if it is not. */
static int node_num(const struct cfg_node *n, int limit)
{
	const char *s = cfg_name(n);
	char *end;
	long v;

	if (!*s)
		return -1;
	v = strtol(s, &end, 10);
	if (*end || v < 0 || v >= limit)
		return -1;
	return (int)v;
}

/* pcireg.{vendor,device,revid,subvendor,subdevice} overrides (hex). */
static int apply_pcireg(struct pci_dev *pd)
{
	static const struct {
		const char *key;
		unsigned off, size;
	} regs[] = {
		{"pcireg.vendor", PCIR_VENDOR, 2},
		{"pcireg.device", PCIR_DEVICE, 2},
		{"pcireg.revid", PCIR_REVID, 1},
		{"pcireg.subvendor", PCIR_SUBVEND, 2},
		{"pcireg.subdevice", PCIR_SUBDEV, 2},
	};
	unsigned i;

	for (i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		const char *v = cfg_get(pd->node, regs[i].key);
		unsigned long x;
		char *end;

		if (!v)
			continue;
		if (strcmp(v, "host") == 0) {
			log_err("%s.%s: 'host' is only valid for lpc and "
				"passthru",
				cfg_path(pd->node), regs[i].key);
			return -EINVAL;
		}
		errno = 0;
		x = strtoul(v, &end, 16);
		if (errno || *end || end == v ||
		    x >= (1ul << (8 * regs[i].size))) {
			log_err("%s.%s: invalid value '%s'", cfg_path(pd->node),
				regs[i].key, v);
			return -EINVAL;
		}
		if (regs[i].size == 1)
			pci_set8(pd, regs[i].off, (uint8_t)x);
		else
			pci_set16(pd, regs[i].off, (uint16_t)x);
	}
	return 0;
}

static void default_wmask(struct pci_dev *pd)
{
	pd->wmask[PCIR_COMMAND] = 0xff;
	pd->wmask[PCIR_COMMAND + 1] = 0x07;
	pd->wmask[PCIR_CACHELNSZ] = 0xff;
	pd->wmask[PCIR_LATTIMER] = 0xff;
	pd->wmask[PCIR_INTLINE] = 0xff;
}

static int create_one(struct pci_bus *root, struct cfg_node *node, unsigned b,
		      unsigned s, unsigned f)
{
	const char *dev = cfg_get(node, "device");
	const struct devmodel *m;
	struct pci_dev **slot, *pd;
	int rc;

	if (!dev) {
		log_err("%s: no device= for this slot", cfg_path(node));
		return -EINVAL;
	}
	m = devmodel_find_kind(dev, DEVMODEL_PCI);
	if (!m || !m->pci || !m->pci->init) {
		log_err("pci slot %u:%u:%u: unknown device \"%s\"", b, s, f,
			dev);
		return -EINVAL;
	}
	slot = slot_ptr(root, b, s, f, true);
	if (!slot)
		return -ENOMEM;
	pd = calloc(1, sizeof(*pd));
	if (!pd)
		return -ENOMEM;
	pd->root = root;
	pd->model = m;
	pd->node = node;
	pd->ctx = root->ctx;
	pd->bus = (uint8_t)b;
	pd->slot = (uint8_t)s;
	pd->func = (uint8_t)f;
	snprintf(pd->name, sizeof(pd->name), "%s@%u:%u:%u", m->name, b, s, f);
	pthread_mutex_init(&pd->irq_lock, NULL);
	pd->cap_end = 0x40;
	default_wmask(pd);
	*slot = pd;
	rc = m->pci->init(pd, node);
	if (rc == 0) {
		rc = apply_pcireg(pd);
		if (rc && m->pci->fini)
			m->pci->fini(pd); /* init succeeded: undo it */
	}
	if (rc) {
		*slot = NULL;
		pci_irq_free(pd);
		pthread_mutex_destroy(&pd->irq_lock);
		free(pd);
		return rc;
	}
	return 0;
}

/* Set the multi-function bit of function 0 where a slot has several. */
static void mark_multifunction(struct pci_bus *root)
{
	unsigned b, s, f;

	for (b = 0; b < PCI_MAX_BUSES; b++) {
		if (!root->fn[b])
			continue;
		for (s = 0; s < PCI_MAX_SLOTS; s++) {
			struct pci_dev *f0 = pci_find(root, b, s, 0);
			bool multi = false;

			for (f = 1; f < PCI_MAX_FUNCS; f++)
				multi |= pci_find(root, b, s, f) != NULL;
			if (f0 && multi)
				f0->cfg[PCIR_HDRTYPE] |= PCIM_HDRTYPE_MF;
		}
	}
}

struct slot_ref {
	unsigned bsf;
	struct cfg_node *node;
};

static int cmp_slot_ref(const void *a, const void *b)
{
	const struct slot_ref *x = a, *y = b;

	return x->bsf < y->bsf ? -1 : x->bsf > y->bsf;
}

static int bad_node(const struct cfg_node *n)
{
	log_err("%s: not a pci.<bus>.<slot>.<func> node", cfg_path(n));
	return -EINVAL;
}

/* Collect the pci.B.S.F nodes of the tree; -EINVAL on anything else. */
static int collect(struct cfg_node *pci, struct slot_ref **out, unsigned *nout)
{
	struct cfg_node *bn, *sn, *fn;
	struct slot_ref *v = NULL, *nv;
	unsigned n = 0;
	int b, s, f;

	for (bn = cfg_first_child(pci); bn; bn = cfg_next(bn)) {
		if (cfg_is_leaf(bn) || (b = node_num(bn, PCI_MAX_BUSES)) < 0)
			goto bad_bn;
		for (sn = cfg_first_child(bn); sn; sn = cfg_next(sn)) {
			if (cfg_is_leaf(sn) ||
			    (s = node_num(sn, PCI_MAX_SLOTS)) < 0)
				goto bad_sn;
			for (fn = cfg_first_child(sn); fn; fn = cfg_next(fn)) {
				if (cfg_is_leaf(fn) ||
				    (f = node_num(fn, PCI_MAX_FUNCS)) < 0)
					goto bad_fn;
				nv = realloc(v, (n + 1) * sizeof(*v));
				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
				v[n].bsf = (unsigned)(b << 8 | s << 3 | f);
				v[n++].node = fn;
			}
		}
	}
	qsort(v, n, sizeof(*v), cmp_slot_ref);
	*out = v;
	*nout = n;
	return 0;
bad_fn:
	free(v);
	return bad_node(fn);
bad_sn:
	free(v);
	return bad_node(sn);
bad_bn:
	free(v);
	return bad_node(bn);
}

int pci_add_cap(struct pci_dev *pd, const uint8_t *cap, unsigned len,
		unsigned *off)
{
	unsigned at = (pd->cap_end + 3) & ~3u;

	if (len < 2 || at + len > 0x100)
		return -ENOSPC;
	memcpy(pd->cfg + at, cap, len);
	pd->cfg[at + 1] = 0;
	if (pd->cap_last)
		pd->cfg[pd->cap_last + 1] = (uint8_t)at;
	else
		pci_set8(pd, PCIR_CAP_PTR, (uint8_t)at);
	pci_set16(pd, PCIR_STATUS,
		  pci_get16(pd, PCIR_STATUS) | PCIM_STATUS_CAPLIST);
	pd->cap_last = at;
	pd->cap_end = at + len;
	if (off)
		*off = at;
	return 0;
}

int pci_create_devices(struct pci_bus *root, struct cfg_node *cfg)
{
	struct cfg_node *pci = cfg_find(cfg, "pci");
	struct slot_ref *v = NULL;
	unsigned i, n = 0;
	int rc;

	if (!pci)
		return 0;
	rc = collect(pci, &v, &n);
	for (i = 0; rc == 0 && i < n; i++)
		rc = create_one(root, v[i].node, v[i].bsf >> 8,
				(v[i].bsf >> 3) & 0x1f, v[i].bsf & 7);
	free(v);
	if (rc == 0)
		mark_multifunction(root);
	return rc;
}
