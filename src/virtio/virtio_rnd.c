/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * virtio-rnd (virtio entropy device, virtio 1.2 §5.4): one request queue;
 * every writable buffer the driver posts is filled from the host's
 * getrandom(2) and returned.  "-s N,virtio-rnd" (no options).
 *
 * Threads and locks: kicks arrive on the event-loop thread (ioeventfd) or
 * a vCPU thread (no ioeventfd); reset on a vCPU thread.  'lock' serialises
 * ring processing against reset.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "lib/log.h"
#include "virtio/virtio_pci.h"

#define RND_QUEUE_SIZE 64
#define RND_MAX_PER_KICK (1u << 20) /* bytes; the rest waits for a kick */

struct rnd {
	struct virtio_dev vd; /* first: pd->softc points here */
	pthread_mutex_t lock;
	struct vq_chain chain;
};

static int fill(struct vq_chain *c)
{
	unsigned i;

	for (i = c->nr; i < c->nr + c->nw; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t left = c->iov[i].iov_len;

		while (left > 0) {
			ssize_t n = getrandom(p, left, 0);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			p += n;
			left -= (size_t)n;
		}
	}
	return 0;
}

static void rnd_notify(struct virtio_dev *vd, unsigned qi)
{
	struct rnd *r = (struct rnd *)vd;
	struct vq *q;
	uint64_t total = 0;
	int rc;

	pthread_mutex_lock(&r->lock);
	q = virtio_queue_vq(vd, qi);
	while (q && virtio_pci_live(vd) && total < RND_MAX_PER_KICK) {
		rc = vq_pop(q, &r->chain);
		if (rc == 0)
			break;
		if (rc < 0) {
			virtio_pci_needs_reset(vd,
					       q->err ? q->err : "bad chain");
			break;
		}
		if (fill(&r->chain)) {
			log_ratelimited(10000, "%s: getrandom failed",
					vd->pd->name);
			vq_push(q, r->chain.head, 0);
			continue;
		}
		vq_push(q, r->chain.head, r->chain.wlen);
		total += r->chain.wlen;
	}
	pthread_mutex_unlock(&r->lock);
	if (q)
		virtio_pci_notify_queue(vd, qi);
}

static void rnd_reset(struct virtio_dev *vd)
{
	struct rnd *r = (struct rnd *)vd;

	pthread_mutex_lock(&r->lock); /* wait for a kick in progress */
	pthread_mutex_unlock(&r->lock);
}

static const struct virtio_dev_ops rnd_ops = {
	.name = "virtio-rnd",
	.device_type = VIRTIO_ID_RNG,
	.legacy_pci_id = VIRTIO_PCI_LEGACY_RNG,
	.pci_class = 0xff, /* other: as bhyve and QEMU */
	.pci_subclass = 0,
	.nqueues = 1,
	.queue_size = RND_QUEUE_SIZE,
	.features = VIRTIO_BIT(VIRTIO_F_INDIRECT_DESC) |
		    VIRTIO_BIT(VIRTIO_F_EVENT_IDX),
	.cfg_size = 0,
	.queue_notify = rnd_notify,
	.reset = rnd_reset,
};

static int rnd_init(struct pci_dev *pd, struct cfg_node *node)
{
	struct rnd *r = calloc(1, sizeof(*r));
	int rc;

	(void)node;
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	pd->softc = r;
	rc = virtio_pci_init(&r->vd, pd, &rnd_ops, NULL);
	if (rc) {
		log_errno(LOG_ERR, -rc, "%s: cannot set up", pd->name);
		virtio_pci_fini(&r->vd);
		pthread_mutex_destroy(&r->lock);
		pd->softc = NULL;
		free(r);
	}
	return rc;
}

static void rnd_fini(struct pci_dev *pd)
{
	struct rnd *r = pd->softc;

	if (!r)
		return;
	virtio_pci_fini(&r->vd);
	pthread_mutex_destroy(&r->lock);
	free(r);
	pd->softc = NULL;
}

static const struct pci_devops rnd_pci = VIRTIO_PCI_DEVOPS(rnd_init, rnd_fini);

static const struct cfg_key rnd_keys[] = {
	{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
};

static int rnd_legacy(struct cfg_node *node, const char *opts)
{
	(void)node;
	if (opts && *opts) {
		log_err("virtio-rnd: unexpected options '%s'", opts);
		return -EINVAL;
	}
	return 0;
}

static const struct devmodel rnd_model = {
	.name = "virtio-rnd",
	.kind = DEVMODEL_PCI,
	.keys = rnd_keys,
	.parse_legacy = rnd_legacy,
	.pci = &rnd_pci,
};
DEVMODEL_SET(rnd_model);
