/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Snapshots, rollbacks and clones as O(1) qcow2 overlays, the file
 * equivalent of vm-bhyve's ZFS snapshots and clones.
 *
 *   vm snapshot NAME[@SNAP]  for each qcow2 disk DIR/D.qcow2: the current
 *       image becomes the read-only base D@SNAP.qcow2 (a hard link, then
 *       a fresh overlay renamed over D.qcow2), and the configuration is
 *       copied to DIR/.snapshots/SNAP.conf.  Bases stay valid for good:
 *       nothing writes them again.
 *   vm rollback NAME@SNAP  every disk of the snapshot's configuration gets
 *       a fresh overlay on D@SNAP.qcow2 (the current overlay is dropped),
 *       and the snapshot's configuration comes back.  Later snapshots stay
 *       usable (their bases do not change).
 *   vm clone NAME[@SNAP] NEW  a new VM in the same datastore whose disks
 *       are overlays on NAME's D@SNAP.qcow2 (relative backing names, so the
 *       datastore can move), with a new uuid and new MACs.  Without @SNAP
 *       a snapshot is taken first (NAME must be stopped).
 *
 * snapshot and rollback refuse a running VM (they take run.lock); clone
 * from an existing snapshot works while NAME runs, as the bases are
 * read-only.  Only diskN_dev="file" disks are supported; every step is
 * undone when a later one fails.  Snapshot names are 1-64 characters of
 * [A-Za-z0-9_.+-] (no ':', which QEMU would take for a protocol prefix in
 * a backing name).
 *
 * Threads: single-threaded.  No locks besides run.lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "cmd/vm/vm.h"

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int vm_img_read(const char *path, struct vm_img *img)
{
	unsigned char h[72];
	struct stat st;
	uint64_t off;
	uint32_t len;
	int fd, rc = 0;

	memset(img, 0, sizeof(*img));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	img->size = (uint64_t)st.st_size;
	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    memcmp(h, "QFI\xfb", 4))
		goto out; /* raw */
	img->qcow2 = true;
	img->size = be64(h + 24);
	off = be64(h + 8);
	len = be32(h + 16);
	if (off && len && len < sizeof(img->backing)) {
		if (pread(fd, img->backing, len, (off_t)off) != (ssize_t)len)
			img->backing[0] = '\0';
		else
			img->backing[len] = '\0';
	}
out:
	close(fd);
	return rc;
}

static bool snap_name_ok(const char *s)
{
	return vm_name_ok(s, VM_NAME_MAX, "+");
}

/* One disk taking part in a snapshot operation. */
struct sdisk {
	unsigned idx;
	char cur[PATH_MAX];  /* DIR/D.qcow2 */
	char base[PATH_MAX]; /* DIR/D@SNAP.qcow2 */
	char tmp[PATH_MAX];  /* the overlay being made */
	const char *name;    /* diskN_name */
	bool linked, replaced;
};

/* The disks of conf c (in vm's dir) for snapshot SNAP.  ahci-cd media are
 * skipped; anything but a qcow2 file disk is refused. */
static int collect(const struct vm *vm, const struct conf *c, const char *snap,
		   struct sdisk *d, unsigned *n, bool need_qcow2)
{
	struct vm view = *vm;
	struct vm_img img;
	unsigned i;
	int rc;

	view.conf = *c;
	*n = 0;
	for (i = 0; i < VM_MAX_DISKS; i++) {
		const char *type = conf_getf(c, "disk%u_type", i);
		const char *dev = conf_getf(c, "disk%u_dev", i);
		const char *name = conf_getf(c, "disk%u_name", i);
		struct sdisk *s = &d[*n];
		char stem[PATH_MAX], *dot;

		memset(s, 0, sizeof(*s));
		rc = vm_disk_path(&view, i, s->cur, sizeof(s->cur));
		if (rc == -ENOENT)
			break;
		if (rc)
			return rc;
		if (type && !strcmp(type, "ahci-cd"))
			continue;
		if ((dev && *dev && strcmp(dev, "file")) || name[0] == '/') {
			vm_err("disk%u: snapshots need a diskN_dev=\"file\" "
			       "disk in the VM's directory",
			       i);
			return -ENOTSUP;
		}
		if (need_qcow2 && (vm_img_read(s->cur, &img) || !img.qcow2)) {
			vm_err("disk%u: %s is not a qcow2 image, so it cannot "
			       "be snapshotted",
			       i, s->cur);
			return -ENOTSUP;
		}
		snprintf(stem, sizeof(stem), "%s", s->cur);
		dot = strrchr(stem, '.');
		if (dot && !strcmp(dot, ".qcow2") && !strchr(dot, '/'))
			*dot = '\0';
		else
			dot = NULL;
		if (vm_fmt(s->base, sizeof(s->base), "%s@%s%s", stem, snap,
			   dot ? ".qcow2" : "") ||
		    vm_fmt(s->tmp, sizeof(s->tmp), "%s.new", s->cur))
			return -ENAMETOOLONG;
		s->idx = i;
		s->name = name;
		(*n)++;
	}
	return 0;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* A fresh overlay at d->tmp on d->base (named relative to its dir). */
static int make_overlay(struct sdisk *d)
{
	struct qcow2_create_opts o = {.backing = base_name(d->base),
				      .backing_fmt = "qcow2"};

	unlink(d->tmp);
	return qcow2_create(d->tmp, &o);
}

static int snap_conf_path(const struct vm *vm, const char *snap, char *buf,
			  size_t len)
{
	return vm_fmt(buf, len, "%s/.snapshots/%s.conf", vm->dir, snap);
}

static void undo_snapshot(struct sdisk *d, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		unlink(d[i].tmp);
		if (d[i].replaced) {
			chmod(d[i].base, 0644);
			rename(d[i].base, d[i].cur); /* the original back */
		} else if (d[i].linked) {
			unlink(d[i].base);
		}
	}
}

/* Snapshot a VM whose lock the caller holds. */
static int do_snapshot(const struct vm *vm, const char *snap)
{
	char path[PATH_MAX], dir[PATH_MAX], *text;
	struct sdisk d[VM_MAX_DISKS];
	struct stat st;
	unsigned n, i;
	size_t len;
	int rc;

	if ((rc = snap_conf_path(vm, snap, path, sizeof(path))) ||
	    (rc = vm_fmt(dir, sizeof(dir), "%s/.snapshots", vm->dir)))
		return rc;
	if (stat(path, &st) == 0) {
		vm_err("%s@%s already exists", vm->name, snap);
		return -EEXIST;
	}
	if ((rc = collect(vm, &vm->conf, snap, d, &n, true)))
		return rc;
	for (i = 0; i < n; i++) {
		if (stat(d[i].base, &st) == 0) {
			vm_err("%s already exists", d[i].base);
			return -EEXIST;
		}
	}
	for (i = 0; i < n && !rc; i++) {
		if (link(d[i].cur, d[i].base) < 0) {
			rc = -errno;
			vm_err("%s: %s", d[i].base, strerror(-rc));
			break;
		}
		d[i].linked = true;
		if ((rc = make_overlay(&d[i])))
			break;
		if (rename(d[i].tmp, d[i].cur) < 0) {
			rc = -errno;
			vm_err("%s: %s", d[i].cur, strerror(-rc));
			break;
		}
		d[i].replaced = true;
	}
	if (!rc && (rc = vm_read_file(vm->confpath, &text, &len)) == 0) {
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			rc = -errno;
		if (!rc)
			rc = vm_write_file(path, text, len, 0644);
		free(text);
	}
	if (rc) {
		undo_snapshot(d, n);
		return rc;
	}
	for (i = 0; i < n; i++)
		chmod(d[i].base, 0444); /* bases are never written again */
	return 0;
}

static void auto_name(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(buf, len, "%Y-%m-%d-%H%M%S", &tm);
}

/* Split "NAME@SNAP"; snap is NULL without '@'. */
static int split(const char *arg, char *name, size_t nlen, const char **snap)
{
	const char *at = strchr(arg, '@');

	*snap = NULL;
	if (!at)
		return vm_fmt(name, nlen, "%s", arg) ? -EINVAL : 0;
	if ((size_t)(at - arg) >= nlen)
		return -EINVAL;
	snprintf(name, nlen, "%.*s", (int)(at - arg), arg);
	*snap = at + 1;
	if (!snap_name_ok(*snap)) {
		vm_err("%s: not a valid snapshot name (1 to %d characters "
		       "from A-Z a-z 0-9 _ . + -)",
		       *snap, VM_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

void vm_snapshot_list(const struct vm *vm, const char *indent)
{
	char dir[PATH_MAX], path[PATH_MAX * 2], when[32];
	struct dirent *de;
	struct stat st;
	struct tm tm;
	DIR *d;

	if (vm_fmt(dir, sizeof(dir), "%s/.snapshots", vm->dir) ||
	    !(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l < 6 || strcmp(de->d_name + l - 5, ".conf"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) < 0)
			continue;
		localtime_r(&st.st_mtime, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		printf("%s%s@%.*s  %s\n", indent, vm->name, (int)(l - 5),
		       de->d_name, when);
	}
	closedir(d);
}

int cmd_snapshot(struct vm_env *env, int argc, char **argv)
{
	char name[VM_NAME_MAX + 1], autosnap[32];
	const char *snap;
	bool list = false;
	struct vm vm;
	int c, fd, rc;

	optind = 1;
	while ((c = getopt(argc, argv, "+lf")) != -1) {
		if (c == 'l')
			list = true;
		else if (c != 'f') /* vm-bhyve's -f: we never need it */
			goto usage;
	}
	if (argc - optind != 1)
		goto usage;
	if ((rc = split(argv[optind], name, sizeof(name), &snap)))
		return rc;
	if ((rc = vm_open(env, name, &vm)))
		return rc;
	if (list) {
		vm_snapshot_list(&vm, "");
		vm_close(&vm);
		return 0;
	}
	if (!snap) {
		auto_name(autosnap, sizeof(autosnap));
		snap = autosnap;
	}
	fd = vm_lock_offline(&vm);
	if (fd < 0) {
		vm_close(&vm);
		return fd;
	}
	rc = do_snapshot(&vm, snap);
	close(fd);
	vm_close(&vm);
	return rc;
usage:
	vm_err("usage: vm snapshot [-l] NAME[@SNAPSHOT]");
	return -EINVAL;
}

static int load_snap(const struct vm *vm, const char *snap, struct conf *c)
{
	char path[PATH_MAX];
	int rc;

	if ((rc = snap_conf_path(vm, snap, path, sizeof(path))))
		return rc;
	rc = conf_load(c, path, true);
	if (rc == -ENOENT)
		vm_err("%s@%s: no such snapshot", vm->name, snap);
	return rc;
}

static int do_rollback(const struct vm *vm, const char *snap)
{
	char path[PATH_MAX], *text;
	struct sdisk d[VM_MAX_DISKS];
	struct conf c = {0};
	struct stat st;
	unsigned n, i;
	size_t len;
	int rc;

	if ((rc = load_snap(vm, snap, &c)))
		return rc;
	rc = collect(vm, &c, snap, d, &n, false);
	conf_free(&c);
	if (rc)
		return rc;
	for (i = 0; i < n && !rc; i++) {
		if (stat(d[i].base, &st) < 0) {
			vm_err("%s: missing, cannot roll back disk%u",
			       d[i].base, d[i].idx);
			rc = -ENOENT;
			break;
		}
		rc = make_overlay(&d[i]);
	}
	if (!rc && (rc = snap_conf_path(vm, snap, path, sizeof(path))) == 0)
		rc = vm_read_file(path, &text, &len);
	if (rc) {
		for (i = 0; i < n; i++)
			unlink(d[i].tmp);
		return rc;
	}
	for (i = 0; i < n; i++) {
		if (rename(d[i].tmp, d[i].cur) < 0) {
			rc = -errno;
			vm_err("%s: %s", d[i].cur, strerror(-rc));
		}
	}
	if (!rc)
		rc = vm_write_file(vm->confpath, text, len, 0644);
	free(text);
	return rc;
}

int cmd_rollback(struct vm_env *env, int argc, char **argv)
{
	char name[VM_NAME_MAX + 1];
	const char *snap;
	struct vm vm;
	int fd, rc;

	if (argc == 3 && !strcmp(argv[1], "-r")) { /* vm-bhyve's -r: */
		argv++;				   /* later snapshots */
		argc--;				   /* stay valid here */
	}
	if (argc != 2 || !strchr(argv[1], '@')) {
		vm_err("usage: vm rollback NAME@SNAPSHOT");
		return -EINVAL;
	}
	if ((rc = split(argv[1], name, sizeof(name), &snap)))
		return rc;
	if ((rc = vm_open(env, name, &vm)))
		return rc;
	fd = vm_lock_offline(&vm);
	if (fd < 0) {
		vm_close(&vm);
		return fd;
	}
	rc = do_rollback(&vm, snap);
	close(fd);
	vm_close(&vm);
	return rc;
}

/* The clone's config: the snapshot's, new uuid, MACs and media paths. */
static int clone_conf(const struct vm *src, struct conf *c)
{
	char key[32], path[PATH_MAX], uuid[37];
	unsigned i;
	int rc;

	if ((rc = vm_uuid(uuid)) || (rc = conf_set(c, "uuid", uuid)))
		return rc;
	for (i = 0; i < VM_MAX_NICS; i++) {
		snprintf(key, sizeof(key), "network%u_mac", i);
		conf_unset(c, key);
	}
	for (i = 0; i < VM_MAX_DISKS; i++) {
		const char *type = conf_getf(c, "disk%u_type", i);
		const char *name = conf_getf(c, "disk%u_name", i);

		if (!type || strcmp(type, "ahci-cd") || !name || name[0] == '/')
			continue;
		/* a relative ISO stays the source's file */
		snprintf(key, sizeof(key), "disk%u_name", i);
		if (vm_fmt(path, sizeof(path), "%s/%s", src->dir, name) ||
		    (rc = conf_set(c, key, path)))
			return -ENAMETOOLONG;
	}
	return 0;
}

/* "../" per directory level of 'name' below the VM dir, then SRC/base. */
static int clone_backing(const struct vm *src, const struct sdisk *d, char *buf,
			 size_t len)
{
	char rel[PATH_MAX] = "../", sub[PATH_MAX];
	const char *p;

	for (p = d->name; (p = strchr(p, '/')); p++)
		snprintf(rel + strlen(rel), sizeof(rel) - strlen(rel), "../");
	snprintf(sub, sizeof(sub), "%s", d->name);
	if (strchr(sub, '/'))
		*strrchr(sub, '/') = '\0';
	else
		sub[0] = '\0';
	return vm_fmt(buf, len, "%s%s/%s%s%s", rel, src->name, sub,
		      sub[0] ? "/" : "", base_name(d->base))
		       ? -ENAMETOOLONG
		       : 0;
}

static int make_clone(const struct vm *src, const char *snap,
		      const char *newname)
{
	char dir[PATH_MAX], path[PATH_MAX * 2], backing[PATH_MAX];
	struct sdisk d[VM_MAX_DISKS];
	struct conf c = {0};
	struct stat st;
	unsigned n, i;
	int rc;

	if ((rc = load_snap(src, snap, &c)))
		return rc;
	if ((rc = collect(src, &c, snap, d, &n, false)))
		goto out;
	if (vm_fmt(dir, sizeof(dir), "%s/%s", src->ds->path, newname)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	if (mkdir(dir, 0755) < 0) {
		rc = -errno;
		vm_err("%s: %s", dir, strerror(-rc));
		goto out;
	}
	for (i = 0; i < n && !rc; i++) {
		struct qcow2_create_opts o = {.backing_fmt = "qcow2"};

		if (stat(d[i].base, &st) < 0) {
			vm_err("%s: missing, cannot clone disk%u", d[i].base,
			       d[i].idx);
			rc = -ENOENT;
			break;
		}
		if ((rc = clone_backing(src, &d[i], backing,
					sizeof(backing))) ||
		    (rc = vm_fmt(path, sizeof(path), "%s/%s", dir, d[i].name)
				  ? -ENAMETOOLONG
				  : 0))
			break;
		if (strchr(d[i].name, '/')) {
			char sub[PATH_MAX * 2];

			snprintf(sub, sizeof(sub), "%s", path);
			*strrchr(sub, '/') = '\0';
			if ((rc = vm_mkdirs(sub, 0755)))
				break;
		}
		o.backing = backing;
		rc = qcow2_create(path, &o);
	}
	if (!rc && !(rc = clone_conf(src, &c))) {
		if (vm_fmt(path, sizeof(path), "%s/%s.conf", dir, newname))
			rc = -ENAMETOOLONG;
		else
			rc = conf_save(&c, path);
	}
	if (rc)
		vm_rmtree(dir); /* nothing half-made */
out:
	conf_free(&c);
	return rc;
}

int cmd_clone(struct vm_env *env, int argc, char **argv)
{
	char name[VM_NAME_MAX + 1], autosnap[32];
	const char *snap;
	struct vm src, other;
	int fd, rc;

	if (argc != 3) {
		vm_err("usage: vm clone NAME[@SNAPSHOT] NEWNAME");
		return -EINVAL;
	}
	if ((rc = split(argv[1], name, sizeof(name), &snap)))
		return rc;
	if (!vm_name_ok(argv[2], VM_NAME_MAX, NULL)) {
		vm_err("%s: not a valid virtual machine name", argv[2]);
		return -EINVAL;
	}
	if (vm_lookup(env, argv[2], &other) != -ENOENT) {
		vm_close(&other);
		vm_err("%s already exists", argv[2]);
		return -EEXIST;
	}
	if ((rc = vm_open(env, name, &src)))
		return rc;
	if (!snap) {
		auto_name(autosnap, sizeof(autosnap));
		snap = autosnap;
		fd = vm_lock_offline(&src);
		if (fd < 0) {
			vm_close(&src);
			return fd;
		}
		rc = do_snapshot(&src, snap);
		close(fd);
		if (rc) {
			vm_close(&src);
			return rc;
		}
		printf("Created snapshot %s@%s\n", name, snap);
	}
	rc = make_clone(&src, snap, argv[2]);
	vm_close(&src);
	return rc;
}

/* Does the backing chain of 'path' enter directory 'dir' (a realpath)? */
static bool chain_enters(const char *path, const char *dir)
{
	char cur[PATH_MAX], next[PATH_MAX * 2], real[PATH_MAX];
	size_t dl = strlen(dir);
	struct vm_img img;
	int depth;

	snprintf(cur, sizeof(cur), "%s", path);
	for (depth = 0; depth < 32; depth++) {
		if (vm_img_read(cur, &img) || !img.qcow2 || !img.backing[0])
			return false;
		if (img.backing[0] == '/') {
			snprintf(next, sizeof(next), "%s", img.backing);
		} else {
			char d[PATH_MAX];

			snprintf(d, sizeof(d), "%s", cur);
			snprintf(next, sizeof(next), "%s/%s", dirname(d),
				 img.backing);
		}
		if (!realpath(next, real))
			return false;
		if (!strncmp(real, dir, dl) && real[dl] == '/')
			return true;
		snprintf(cur, sizeof(cur), "%s", real);
	}
	return false;
}

struct clones {
	const struct vm *of;
	char real[PATH_MAX];
	char *buf;
	size_t len;
};

static int find_clones(const struct vm_env *env, struct vm *vm, void *arg)
{
	struct clones *cl = arg;
	char path[PATH_MAX];
	unsigned i;

	(void)env;
	if (!strcmp(vm->dir, cl->of->dir))
		return 0;
	for (i = 0; i < VM_MAX_DISKS; i++) {
		int rc = vm_disk_path(vm, i, path, sizeof(path));

		if (rc == -ENOENT)
			break;
		if (rc)
			continue;
		if (chain_enters(path, cl->real)) {
			snprintf(cl->buf + strlen(cl->buf),
				 cl->len - strlen(cl->buf), "%s%s",
				 cl->buf[0] ? " " : "", vm->name);
			break;
		}
	}
	return 0;
}

int vm_clones_of(const struct vm_env *env, const struct vm *vm, char *buf,
		 size_t len)
{
	struct clones cl = {.of = vm, .buf = buf, .len = len};

	buf[0] = '\0';
	if (!realpath(vm->dir, cl.real))
		return -errno;
	return vm_foreach(env, find_clones, &cl);
}
