/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Guest RAM allocation and bounds-checked access (see gmem.h).  One
 * anonymous mapping backs all regions: region 0 (GPA 0..lowmem) at offset 0,
 * region 1 (GPA 4 GiB..) right after it.  No locks: read-only after set-up.
 */
#include "core/gmem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "core/layout.h"
#include "lib/log.h"

static void layout(struct gmem *m, uint8_t *host, uint64_t size)
{
	memset(m, 0, sizeof(*m));
	m->size = size;
	m->lowmem = size < LOWMEM_LIMIT ? size : LOWMEM_LIMIT;
	m->highmem = size - m->lowmem;
	m->region[0] = (struct gmem_region){0, m->lowmem, host};
	m->nregions = 1;
	if (m->highmem) {
		m->region[1] = (struct gmem_region){HIGHMEM_BASE, m->highmem,
						    host + m->lowmem};
		m->nregions = 2;
	}
}

int gmem_alloc(struct gmem *m, uint64_t size, bool wired, bool in_core)
{
	void *p;
	int rc;

	if (size < 2 * MIB || size % (2 * MIB) != 0)
		return -EINVAL;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (!in_core)
		(void)madvise(p, size, MADV_DONTDUMP);
	(void)madvise(p, size, MADV_HUGEPAGE);
	(void)madvise(p, size, MADV_DONTFORK);
	if (wired && mlock(p, size) != 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "memory.wired: cannot wire %llu MiB",
			  (unsigned long long)(size / MIB));
		munmap(p, size);
		return rc;
	}
	layout(m, p, size);
	m->map = p;
	m->map_len = size;
	return 0;
}

void gmem_free(struct gmem *m)
{
	if (m->map)
		munmap(m->map, m->map_len);
	memset(m, 0, sizeof(*m));
}

void gmem_init_fake(struct gmem *m, void *buf, uint64_t size)
{
	layout(m, buf, size);
}

void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	unsigned i;

	for (i = 0; i < m->nregions; i++) {
		const struct gmem_region *r = &m->region[i];

		if (gpa >= r->gpa && gpa - r->gpa <= r->size &&
		    len <= r->size - (gpa - r->gpa))
			return r->host + (gpa - r->gpa);
	}
	return NULL;
}

int gmem_read(const struct gmem *m, uint64_t gpa, void *dst, size_t len)
{
	const void *p = gmem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gmem_write(const struct gmem *m, uint64_t gpa, const void *src, size_t len)
{
	void *p = gmem_ptr(m, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}
