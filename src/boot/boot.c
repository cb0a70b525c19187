/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Direct boot entry point (boot.h): opens the kernel, probes its format
 * (bzImage, then PVH ELF, then Multiboot) and hands it to the format
 * loader.  Also owns the helpers every loader shares: bounds-checked
 * reads of the untrusted files, placement checks against guest RAM, the
 * initrd and the command line.
 *
 * Threads: set-up only (main thread, before vCPUs run); no state, no locks.
 */
#include "boot/boot_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/gmem.h"
#include "lib/log.h"

#define FOUR_GIB (4ULL * GIB)

void boot_kernel_err(const struct boot_ctx *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_err("boot.kernel: %s: %s", c->kernel.path, msg);
}

static int file_open(struct boot_file *f, const char *key, const char *path)
{
	struct stat st;
	int rc;

	f->key = key;
	f->path = path;
	/* O_NONBLOCK: a FIFO must not hang us; it is refused below. */
	f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (f->fd < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: %s", key, path);
		return rc;
	}
	if (fstat(f->fd, &st) != 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "%s: %s", key, path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		log_err("%s: %s: not a regular file", key, path);
		rc = -EINVAL;
		goto fail;
	}
	f->size = (uint64_t)st.st_size;
	return 0;
fail:
	close(f->fd);
	f->fd = -1;
	return rc;
}

static void file_close(struct boot_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* pread() all of [off, off+len) or fail; no bounds check against size. */
static int file_pread(const struct boot_file *f, uint64_t off, void *buf,
		      uint64_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		size_t chunk = len > (1U << 30) ? (1U << 30) : (size_t)len;
		ssize_t n = pread(f->fd, p, chunk, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;

			log_errno(LOG_ERR, -rc, "%s: %s", f->key, f->path);
			return rc;
		}
		if (n == 0) {
			log_err("%s: %s: file shrank while being read", f->key,
				f->path);
			return -EIO;
		}
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int boot_file_read(const struct boot_file *f, uint64_t off, void *buf,
		   uint64_t len, const char *what)
{
	if (off > f->size || len > f->size - off) {
		log_err("%s: %s: truncated: %s need %llu bytes at offset "
			"%llu, the file has %llu",
			f->key, f->path, what, (unsigned long long)len,
			(unsigned long long)off, (unsigned long long)f->size);
		return -ENOEXEC;
	}
	return file_pread(f, off, buf, len);
}

int boot_check_kernel_range(const struct boot_ctx *c, uint64_t gpa,
			    uint64_t len, const char *what)
{
	if (gpa < KERNEL_MIN_BASE) {
		boot_kernel_err(c, "%s at 0x%llx is below 1 MiB", what,
				(unsigned long long)gpa);
		return -ENOEXEC;
	}
	if (gpa >= c->low_top || len > c->low_top - gpa ||
	    !gmem_ptr(c->req->mem, gpa, len)) {
		boot_kernel_err(c,
				"%s needs %llu bytes at %#llx, but RAM below "
				"4 GiB ends at %#llx",
				what, (unsigned long long)len,
				(unsigned long long)gpa,
				(unsigned long long)c->low_top);
		return -ENOMEM;
	}
	return 0;
}

int boot_load_kernel_bytes(const struct boot_ctx *c, uint64_t off, uint64_t len,
			   uint64_t gpa, uint64_t zero)
{
	uint8_t *p;
	int rc;

	if (len + zero < len) {
		boot_kernel_err(c, "size overflow");
		return -ENOEXEC;
	}
	p = gmem_ptr(c->req->mem, gpa, len + zero);
	if (!p) {
		boot_kernel_err(c, "%llu bytes at %#llx are not RAM",
				(unsigned long long)(len + zero),
				(unsigned long long)gpa);
		return -ENOMEM;
	}
	rc = boot_file_read(&c->kernel, off, p, len, "segment");
	if (rc)
		return rc;
	memset(p + len, 0, zero);
	return 0;
}

int boot_initrd_load(struct boot_ctx *c, uint64_t max_end)
{
	const struct boot_req *req = c->req;
	struct boot_info *info = c->info;
	struct boot_file f;
	uint64_t top, start;
	void *p;
	int rc;

	info->initrd_start = info->initrd_end = 0;
	if (!req->initrd)
		return 0;
	rc = file_open(&f, "boot.initrd", req->initrd);
	if (rc)
		return rc;
	top = c->low_top < max_end ? c->low_top : max_end;
	if (f.size == 0) {
		log_err("boot.initrd: %s: empty file", f.path);
		rc = -EINVAL;
		goto out;
	}
	start = f.size < top ? (top - f.size) & ~(BOOT_PAGE - 1) : 0;
	if (f.size >= top || start < info->kernel_end ||
	    start < KERNEL_MIN_BASE) {
		log_err("boot.initrd: %s: %llu bytes do not fit between the "
			"kernel end %#llx and %#llx",
			f.path, (unsigned long long)f.size,
			(unsigned long long)info->kernel_end,
			(unsigned long long)top);
		rc = -ENOMEM;
		goto out;
	}
	p = gmem_ptr(req->mem, start, f.size);
	if (!p) {
		log_err("boot.initrd: %s: %llu bytes at %#llx are not RAM",
			f.path, (unsigned long long)f.size,
			(unsigned long long)start);
		rc = -ENOMEM;
		goto out;
	}
	rc = file_pread(&f, 0, p, f.size);
	if (rc)
		goto out;
	info->initrd_start = start;
	info->initrd_end = start + f.size;
out:
	file_close(&f);
	return rc;
}

int boot_cmdline_write(const struct boot_ctx *c, uint64_t max)
{
	const char *s = c->req->cmdline ? c->req->cmdline : "";
	size_t len = strlen(s);
	void *p;

	if (max > BOOT_CMDLINE_MAX - 1)
		max = BOOT_CMDLINE_MAX - 1;
	if (len > max) {
		log_err("boot.cmdline: %zu bytes long, the limit is %llu", len,
			(unsigned long long)max);
		return -E2BIG;
	}
	p = gmem_ptr(c->req->mem, BOOT_CMDLINE_BASE, len + 1);
	if (!p) {
		log_err("boot.cmdline: no RAM at %#llx for the command line",
			(unsigned long long)BOOT_CMDLINE_BASE);
		return -EINVAL;
	}
	memcpy(p, s, len + 1);
	return 0;
}

int boot_scratch_write(const struct boot_ctx *c, uint64_t gpa, const void *buf,
		       size_t len)
{
	if (gpa < BOOT_SCRATCH_BASE || gpa > BOOT_SCRATCH_END ||
	    len > BOOT_SCRATCH_END - gpa ||
	    gmem_write(c->req->mem, gpa, buf, len) != 0) {
		boot_kernel_err(c,
				"no room for %zu bytes of boot data at %#llx",
				len, (unsigned long long)gpa);
		return -EINVAL;
	}
	return 0;
}

/* End of the RAM region at GPA 0, capped at 4 GiB (0 if none). */
static uint64_t low_ram_top(const struct gmem *m)
{
	unsigned i;

	for (i = 0; i < m->nregions && i < GMEM_MAX_REGIONS; i++) {
		if (m->region[i].gpa == 0)
			return m->region[i].size < FOUR_GIB ? m->region[i].size
							    : FOUR_GIB;
	}
	return 0;
}

static int probe_and_load(struct boot_ctx *c)
{
	struct boot_elf elf;
	uint8_t desc[8];
	size_t dlen = sizeof(desc);
	uint64_t entry;
	long hoff;
	int rc;

	if (boot_bzimage_probe(c))
		return boot_bzimage_load(c);
	if (boot_elf_is_elf(c)) {
		rc = boot_elf_parse(c, &elf);
		if (rc)
			return rc;
		rc = boot_elf_find_note(c, &elf, "Xen",
					18 /* XEN_ELFNOTE_PHYS32_ENTRY */, desc,
					&dlen);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			if (dlen != 4 && dlen != 8) {
				boot_kernel_err(c,
						"PVH entry note has %zu "
						"bytes (4 or 8 expected)",
						dlen);
				return -ENOEXEC;
			}
			entry = dlen == 4 ? boot_get32(desc) : boot_get64(desc);
			return boot_pvh_load(c, &elf, entry);
		}
		hoff = boot_mb_find(c);
		if (hoff >= 0)
			return boot_mb_load(c, hoff, &elf);
	} else {
		hoff = boot_mb_find(c);
		if (hoff >= 0)
			return boot_mb_load(c, hoff, NULL);
	}
	boot_kernel_err(c, "not a bzImage, PVH ELF or Multiboot kernel");
	return -ENOEXEC;
}

int boot_load(const struct boot_req *req, struct hv_regs *regs,
	      struct boot_info *info)
{
	struct boot_info scratch_info;
	struct boot_ctx *c;
	int rc;

	if (!req->kernel || !*req->kernel) {
		log_err("boot.kernel: not set");
		return -EINVAL;
	}
	if (!req->mem || (req->ne820 && !req->e820)) {
		log_err("boot.kernel: %s: no guest memory map", req->kernel);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		log_err("boot.kernel: %s: out of memory", req->kernel);
		return -ENOMEM;
	}
	c->req = req;
	c->regs = regs;
	c->info = info ? info : &scratch_info;
	memset(c->info, 0, sizeof(*c->info));
	memset(regs, 0, sizeof(*regs));
	c->low_top = low_ram_top(req->mem);
	rc = file_open(&c->kernel, "boot.kernel", req->kernel);
	if (rc)
		goto out;
	c->headlen = c->kernel.size < sizeof(c->head) ? c->kernel.size
						      : sizeof(c->head);
	rc = file_pread(&c->kernel, 0, c->head, c->headlen);
	if (rc)
		goto out_close;
	rc = probe_and_load(c);
out_close:
	file_close(&c->kernel);
out:
	free(c);
	return rc;
}
