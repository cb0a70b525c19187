/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The PCI root: configuration space through ports 0xcf8/0xcfc (mechanism
 * #1) and the ECAM window (PCI_ECAM_BASE, described by the ACPI MCFG), the
 * function table of each bus, and the glue that creates device instances
 * from the config tree's pci.B.S.F nodes.
 *
 * Each function has a 4 KiB config space image plus a write mask: bytes
 * with mask bits set are guest-writable, the rest are read-only.  A model
 * may intercept config accesses with its cfgread/cfgwrite hooks (return
 * -ENOENT to fall back to the image).
 *
 * Threads and locks: config accesses come from vCPU threads; 'lock' in the
 * root serialises them (and the CF8 address latch) so models' config hooks
 * never run concurrently.  The device table is built at start-up and not
 * changed afterwards.
 */
#ifndef KHYVE_PCI_PCI_H
#define KHYVE_PCI_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "core/devmodel.h"

#define PCI_MAX_BUSES 256
#define PCI_MAX_SLOTS 32
#define PCI_MAX_FUNCS 8
#define PCI_CFG_SIZE 4096

/* Standard config-space offsets and values used by the models. */
#define PCIR_VENDOR 0x00
#define PCIR_DEVICE 0x02
#define PCIR_COMMAND 0x04
#define PCIR_STATUS 0x06
#define PCIR_REVID 0x08
#define PCIR_PROGIF 0x09
#define PCIR_SUBCLASS 0x0a
#define PCIR_CLASS 0x0b
#define PCIR_CACHELNSZ 0x0c
#define PCIR_LATTIMER 0x0d
#define PCIR_HDRTYPE 0x0e
#define PCIR_BAR0 0x10
#define PCIR_SUBVEND 0x2c
#define PCIR_SUBDEV 0x2e
#define PCIR_CAP_PTR 0x34
#define PCIR_INTLINE 0x3c
#define PCIR_INTPIN 0x3d
#define PCIM_HDRTYPE_MF 0x80
#define PCIM_STATUS_CAPLIST 0x0010
#define PCIC_BRIDGE 0x06
#define PCIS_BRIDGE_HOST 0x00
#define PCIS_BRIDGE_ISA 0x01

struct pci_bus;

struct pci_dev {
	struct pci_bus *root;
	const struct devmodel *model;
	struct cfg_node *node;
	struct devctx *ctx;
	uint8_t bus, slot, func;
	char name[48];             /* "hostbridge@0:0:0" for messages */
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];
	void *softc;               /* the model's state */
};

struct pci_devops {
	/* Set up the function: IDs, class, BARs, capabilities.  0/-errno. */
	int (*init)(struct pci_dev *pd, struct cfg_node *node);
	/* Optional config-space hooks; -ENOENT = use the image. */
	int (*cfgread)(struct pci_dev *pd, unsigned off, unsigned size,
		       uint32_t *val);
	int (*cfgwrite)(struct pci_dev *pd, unsigned off, unsigned size,
			uint32_t val);
};

/* Config-image accessors (little-endian, bounds checked by the caller). */
static inline uint8_t pci_get8(const struct pci_dev *pd, unsigned off)
{
	return pd->cfg[off];
}

static inline uint16_t pci_get16(const struct pci_dev *pd, unsigned off)
{
	return (uint16_t)(pd->cfg[off] | pd->cfg[off + 1] << 8);
}

static inline uint32_t pci_get32(const struct pci_dev *pd, unsigned off)
{
	return (uint32_t)pci_get16(pd, off) |
	       (uint32_t)pci_get16(pd, off + 2) << 16;
}

static inline void pci_set8(struct pci_dev *pd, unsigned off, uint8_t v)
{
	pd->cfg[off] = v;
}

static inline void pci_set16(struct pci_dev *pd, unsigned off, uint16_t v)
{
	pd->cfg[off] = (uint8_t)v;
	pd->cfg[off + 1] = (uint8_t)(v >> 8);
}

static inline void pci_set32(struct pci_dev *pd, unsigned off, uint32_t v)
{
	pci_set16(pd, off, (uint16_t)v);
	pci_set16(pd, off + 2, (uint16_t)(v >> 16));
}

/* Set vendor, device, class/subclass/prog-if and header type 0. */
void pci_set_ids(struct pci_dev *pd, uint16_t vendor, uint16_t device,
		 uint8_t class, uint8_t subclass, uint8_t progif);

/*
 * Create the PCI root and register the config mechanisms on ctx's buses
 * (0xcf8/0xcfc on pio, ECAM on mmio).  Returns 0 or -errno.
 */
int pci_root_new(struct devctx *ctx, struct pci_bus **out);
/* Free the root and its functions (not the models' resources). */
void pci_root_free(struct pci_bus *root);

/*
 * Create an instance for every pci.B.S.F node of the config tree 'root'
 * (in bus/slot/function order), run the models' init hooks, apply the
 * pcireg.* overrides and mark multi-function slots.  Errors name the node
 * ("pci.0.3.0: ...").  Returns 0 or -errno.
 */
int pci_create_devices(struct pci_bus *root, struct cfg_node *cfg);

/* The function at b:s:f, or NULL. */
struct pci_dev *pci_find(struct pci_bus *root, unsigned bus, unsigned slot,
			 unsigned func);
/* Call fn for every function, in b:s:f order. */
void pci_foreach(struct pci_bus *root, void (*fn)(void *arg,
						   struct pci_dev *pd),
		 void *arg);

/*
 * Config access as the guest sees it (also used by device tests).  Reads
 * of absent functions return all ones; offsets beyond the 4 KiB space or
 * misaligned accesses are ignored (reads all ones).
 */
uint32_t pci_cfg_read(struct pci_bus *root, unsigned bus, unsigned slot,
		      unsigned func, unsigned off, unsigned size);
void pci_cfg_write(struct pci_bus *root, unsigned bus, unsigned slot,
		   unsigned func, unsigned off, unsigned size, uint32_t val);

#endif
