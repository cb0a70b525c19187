/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The virtio-pci transport, transitional (virtio 1.2 §4.1): the legacy
 * interface in an I/O BAR (what bhyve's guests use) and the modern 1.x
 * capability layout in a memory BAR (what QEMU's guests use), feature
 * negotiation, queue set-up, device status and reset, interrupts (MSI-X
 * per queue, or the ISR with INTx/MSI when MSI-X is off or with -W), and
 * queue notifications through ioeventfd so a kick never returns to user
 * space on the vCPU thread.
 *
 * A device model embeds struct virtio_dev as the FIRST member of its softc
 * (pd->softc), fills a const struct virtio_dev_ops, calls virtio_pci_init()
 * from its PCI init hook and uses virtio_pci_devops' hooks for everything
 * else (its struct pci_devops copies them; see VIRTIO_PCI_DEVOPS).
 *
 * BAR layout: BAR0 legacy I/O (header + device config), BAR1 MSI-X table
 * (0x0) and PBA (0x800), BAR4 modern (64-bit): common config 0x0000, ISR
 * 0x1000, device config 0x2000, notify 0x3000 (4 bytes per queue).
 *
 * Threads and locks: register accesses come from vCPU threads; queue
 * notifications arrive on the event-loop thread (ioeventfd) or, without
 * ioeventfds (device tests), on the vCPU thread; devices complete requests
 * on their own threads.  vd->lock protects the transport state (status,
 * features, selectors, queue configuration).  It is NOT held while the
 * device's queue_notify or reset hooks run, and devices keep their own
 * locks for ring processing.  Interrupt delivery (virtio_pci_notify_queue)
 * is callable from any thread.
 *
 * Reset contract: on a reset the transport first clears the status (so
 * virtio_pci_live() turns false), then calls the device's reset hook,
 * which must return only when no device thread touches a queue any more
 * (take the lock your ring code holds; wait for I/O in flight and drop its
 * completions), and only then resets the queues.  Ring code must check
 * virtio_pci_live() under that same lock.  A device may also hold vd->lock
 * around ring access, but must then not call virtio_pci_config_changed()
 * or virtio_pci_needs_reset() with it held (they take it).
 */
#ifndef KHYVE_VIRTIO_VIRTIO_PCI_H
#define KHYVE_VIRTIO_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pci/pci.h"
#include "virtio/virtio.h"
#include "virtio/vq.h"

struct virtio_dev;
struct event;

struct virtio_dev_ops {
	const char *name;	/* "virtio-blk" */
	uint16_t device_type;	/* VIRTIO_ID_* */
	uint16_t legacy_pci_id; /* VIRTIO_PCI_LEGACY_* */
	uint8_t pci_class, pci_subclass;
	unsigned nqueues;
	uint16_t queue_size; /* maximum (and legacy fixed) size */
	uint64_t features;   /* device-specific + VIRTIO_F_* offered */
	unsigned cfg_size;   /* bytes of device config space */
	/* Guest kicked queue 'q' (enabled).  Event or vCPU thread. */
	void (*queue_notify)(struct virtio_dev *vd, unsigned q);
	/* Device reset (status 0 written, or NEEDS_RESET cleared): stop
	 * using the queues, drop in-flight completions.  vCPU thread. */
	void (*reset)(struct virtio_dev *vd);
	/* Optional: the driver wrote device config (cfg already updated). */
	void (*cfg_write)(struct virtio_dev *vd, unsigned off, unsigned size);
	/* Optional: DRIVER_OK was set (queues are live). */
	void (*driver_ok)(struct virtio_dev *vd);
};

struct virtio_queue {
	struct vq vq;
	struct virtio_dev *vd;
	uint16_t size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, avail, used;
	int kick_fd; /* ioeventfd, -1 without */
	struct event *kick_ev;
};

struct virtio_dev {
	struct pci_dev *pd;
	const struct virtio_dev_ops *ops;
	pthread_mutex_t lock;
	uint8_t *cfg; /* device config bytes (cfg_size), device
			 owned; read by the driver through BARs */
	uint64_t host_features;
	uint64_t guest_features;
	uint32_t dfselect, gfselect;
	uint8_t status;
	uint8_t isr; /* atomic */
	uint8_t cfg_generation;
	uint16_t queue_sel;
	uint16_t msix_config;
	bool modern;   /* the driver used the modern interface */
	bool use_msix; /* virtio_msix (not -W) */
	struct virtio_queue *queues;
	uint64_t notify_base; /* mapped address of the notify region */
	uint16_t legacy_io;   /* mapped I/O BAR base (0 = unmapped) */
};

/*
 * Set up the transport for 'vd' on function 'pd' (called from the model's
 * init hook; pd->softc must already point at the softc embedding 'vd').
 * 'cfg' is the device config buffer of ops->cfg_size bytes.  Reads
 * virtio_msix from the config tree root.  0 or -errno.
 */
int virtio_pci_init(struct virtio_dev *vd, struct pci_dev *pd,
		    const struct virtio_dev_ops *ops, uint8_t *cfg);
/* Release eventfds and queues (teardown). */
void virtio_pci_fini(struct virtio_dev *vd);

/* True when feature 'bit' was negotiated. */
bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit);
/* The queue's ring, ready for vq_pop/vq_push, or NULL when disabled. */
struct vq *virtio_queue_vq(struct virtio_dev *vd, unsigned q);
/* Interrupt the driver for queue 'q' if vq_need_notify() says so (call
 * after vq_push()es).  Any thread. */
void virtio_pci_notify_queue(struct virtio_dev *vd, unsigned q);
/* Tell the driver the device config changed.  Any thread. */
void virtio_pci_config_changed(struct virtio_dev *vd);
/* A malformed request from the guest: set DEVICE_NEEDS_RESET and raise a
 * config interrupt; the device must stop processing until reset.  One
 * rate-limited warning names 'why'.  Any thread. */
void virtio_pci_needs_reset(struct virtio_dev *vd, const char *why);
/* True while the device is live (DRIVER_OK and not NEEDS_RESET). */
bool virtio_pci_live(struct virtio_dev *vd);

/* PCI hooks shared by every virtio model (used in VIRTIO_PCI_DEVOPS). */
void virtio_pci_barread(struct pci_dev *pd, unsigned idx, uint64_t off,
			unsigned size, uint64_t *val);
void virtio_pci_barwrite(struct pci_dev *pd, unsigned idx, uint64_t off,
			 unsigned size, uint64_t val);
void virtio_pci_barmap(struct pci_dev *pd, unsigned idx, bool mapped,
		       uint64_t addr);
int virtio_pci_cfgread(struct pci_dev *pd, unsigned off, unsigned size,
		       uint32_t *val);
int virtio_pci_cfgwrite(struct pci_dev *pd, unsigned off, unsigned size,
			uint32_t val);

#define VIRTIO_PCI_DEVOPS(initfn, finifn)                                      \
	{                                                                      \
		.init = (initfn), .fini = (finifn),                            \
		.cfgread = virtio_pci_cfgread,                                 \
		.cfgwrite = virtio_pci_cfgwrite,                               \
		.barread = virtio_pci_barread,                                 \
		.barwrite = virtio_pci_barwrite, .barmap = virtio_pci_barmap,  \
	}

#endif
