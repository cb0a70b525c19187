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

#include <pthread.h>
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

#define PCIR_BAR(i) (PCIR_BAR0 + 4 * (i))
#define PCIM_CMD_PORTEN 0x0001
#define PCIM_CMD_MEMEN 0x0002
#define PCIM_CMD_BUSMASTER 0x0004
#define PCIM_CMD_INTxDIS 0x0400
#define PCIM_STATUS_INTxSTATE 0x0008
#define PCIY_MSI 0x05
#define PCIY_VENDOR 0x09
#define PCIY_EXPRESS 0x10
#define PCIY_MSIX 0x11
#define PCI_MAX_BARS 6
#define PCI_MSIX_MAX_VECTORS 2048

struct pci_bus;
struct pci_dev;

enum pci_bar_type {
	PCIBAR_NONE,
	PCIBAR_IO,
	PCIBAR_MEM32,
	PCIBAR_MEM64,	 /* takes this BAR and the next */
	PCIBAR_MEM64_HI, /* the upper half of the previous BAR */
};

struct pci_bar {
	enum pci_bar_type type;
	bool prefetch;
	uint64_t size; /* power of two; 0 = unused */
	uint64_t addr; /* as the guest programmed it */
	bool mapped;   /* registered on a bus at 'mapped_addr' */
	uint64_t mapped_addr;
	struct pci_dev *pd; /* back pointers for the bus handler */
	unsigned idx;
};

/* One MSI-X vector (shadow of the table entry plus the fast path). */
struct pci_msix_vec {
	uint64_t addr;
	uint32_t data;
	uint32_t ctrl; /* bit 0: masked */
	bool pending;
	int efd;    /* irqfd eventfd, -1 until bound */
	int handle; /* irq_sink binding, -1 when unbound */
};

struct pci_msix {
	unsigned nvec;
	unsigned cap; /* config offset of the capability, 0 = none */
	unsigned bar;
	uint64_t table_off, pba_off;
	struct pci_msix_vec *vec;
};

struct pci_msi {
	unsigned cap;  /* 0 = none */
	unsigned nvec; /* power of two, 1..32 */
};

struct pci_dev {
	struct pci_bus *root;
	const struct devmodel *model;
	struct cfg_node *node;
	struct devctx *ctx;
	uint8_t bus, slot, func;
	char name[48]; /* "hostbridge@0:0:0" for messages */
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE];
	void *softc; /* the model's state */
	struct pci_bar bar[PCI_MAX_BARS];
	unsigned cap_last; /* offset of the last capability, 0 none */
	unsigned cap_end;  /* first free byte for capabilities */
	struct pci_msix msix;
	struct pci_msi msi;
	unsigned intx_gsi; /* 0 = no INTx */
	bool intx_asserted;
	/* Serialises interrupt state (MSI-X table, pending bits, INTx)
	 * between vCPU threads and device workers. */
	pthread_mutex_t irq_lock;
};

struct pci_devops {
	/* Set up the function: IDs, class, BARs, capabilities.  0/-errno. */
	int (*init)(struct pci_dev *pd, struct cfg_node *node);
	/* Optional config-space hooks; -ENOENT = use the image. */
	int (*cfgread)(struct pci_dev *pd, unsigned off, unsigned size,
		       uint32_t *val);
	int (*cfgwrite)(struct pci_dev *pd, unsigned off, unsigned size,
			uint32_t val);
	/* BAR accesses (offset within BAR 'idx'); reads pre-filled with
	 * all ones.  MSI-X table/PBA accesses never reach these. */
	void (*barread)(struct pci_dev *pd, unsigned idx, uint64_t off,
			unsigned size, uint64_t *val);
	void (*barwrite)(struct pci_dev *pd, unsigned idx, uint64_t off,
			 unsigned size, uint64_t val);
	/* BAR 'idx' was mapped at 'addr' (mapped) or unmapped: devices that
	 * put ioeventfds on BAR addresses move them here.  Called with the
	 * PCI root lock held, from a vCPU thread or start-up. */
	void (*barmap)(struct pci_dev *pd, unsigned idx, bool mapped,
		       uint64_t addr);
	/* The guest enabled/disabled MSI-X or changed a vector (optional). */
	void (*irq_changed)(struct pci_dev *pd);
	/* Free the model's state (pd->softc) at teardown (optional). */
	void (*fini)(struct pci_dev *pd);
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
	return (uint32_t)pci_get16(pd, off) | (uint32_t)pci_get16(pd, off + 2)
						      << 16;
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

/*
 * BARs.  A model requests its BARs in init; pci_assign_bars() (after every
 * model's init, largest first as bhyve does, to limit fragmentation) gives
 * them addresses in the I/O, 32-bit and 64-bit windows, programs the BAR
 * registers and enables decoding.  Afterwards the guest may size and move
 * them; moves re-register the range on the bus and call the barmap hook.
 */
int pci_bar_alloc(struct pci_dev *pd, unsigned idx, enum pci_bar_type type,
		  uint64_t size, bool prefetch);
/* Set the windows BARs are allocated from (addresses inclusive). */
void pci_set_windows(struct pci_bus *root, uint64_t io_base, uint64_t io_end,
		     uint64_t mem32_base, uint64_t mem32_end,
		     uint64_t mem64_base, uint64_t mem64_end);
/* Assign every requested BAR, bus by bus so that each bus owns contiguous
 * sub-windows (bhyve describes each bus as its own host bridge).
 * 0, -ENOSPC (window full; logged). */
int pci_assign_bars(struct pci_bus *root);

/* The windows bus 'bus' got (inclusive ends; end < base when empty). */
struct pci_bus_windows {
	uint64_t io_base, io_end;
	uint64_t mem32_base, mem32_end;
	uint64_t mem64_base, mem64_end;
};
/* False when the bus has no function.  When 'bus' is the only populated
 * bus it gets the whole windows. */
bool pci_bus_windows(struct pci_bus *root, unsigned bus,
		     struct pci_bus_windows *w);
/* Populated buses in increasing order; returns how many (up to max). */
unsigned pci_buses(struct pci_bus *root, uint8_t *buses, unsigned max);

/*
 * Capabilities: append 'len' bytes (starting with the id; the next pointer
 * byte is filled in) to the capability list.  *off gets the offset.
 * 0 or -ENOSPC.
 */
int pci_add_cap(struct pci_dev *pd, const uint8_t *cap, unsigned len,
		unsigned *off);

/*
 * Interrupts.  pci_intx_init() gives the function INTA routed to an IOAPIC
 * pin (16-23, by bus and slot, described in the bus's ACPI _PRT and, for
 * bus 0, the MP table).  pci_msi_init() adds a 64-bit MSI capability for 'nvec'
 * vectors (power of two).  pci_msix_init() adds MSI-X with 'nvec' vectors whose
 * table and PBA live in memory BAR 'bar' at the given offsets (the caller
 * allocates the BAR large enough).  All 0 or -errno.
 */
int pci_intx_init(struct pci_dev *pd);
int pci_msi_init(struct pci_dev *pd, unsigned nvec);
int pci_msix_init(struct pci_dev *pd, unsigned nvec, unsigned bar,
		  uint64_t table_off, uint64_t pba_off);
/* MSI-X enabled (and not function-masked) / MSI enabled. */
bool pci_msix_enabled(struct pci_dev *pd);
bool pci_msi_enabled(struct pci_dev *pd);
/*
 * Signal vector 'vec': MSI-X (pending bit if masked), else MSI, else assert
 * INTx (level; the model deasserts when the guest acknowledges).  Any
 * thread.  0, or -EINVAL for a vector the guest did not configure.
 */
int pci_irq_notify(struct pci_dev *pd, unsigned vec);
/* INTx level control (shared lines are counted per GSI).  Any thread. */
void pci_intx_assert(struct pci_dev *pd);
void pci_intx_deassert(struct pci_dev *pd);
/* The INTx routes of bus 'bus' for the firmware tables: fills up to 'max'
 * (slot, pin, gsi) triples; returns how many. */
unsigned pci_intx_routes(struct pci_bus *root, unsigned bus, uint8_t *slot,
			 uint8_t *pin, uint8_t *gsi, unsigned max);

/* The function at b:s:f, or NULL. */
struct pci_dev *pci_find(struct pci_bus *root, unsigned bus, unsigned slot,
			 unsigned func);
/* Call fn for every function, in b:s:f order. */
void pci_foreach(struct pci_bus *root,
		 void (*fn)(void *arg, struct pci_dev *pd), void *arg);

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
