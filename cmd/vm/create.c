/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm create, vm destroy and vm edit.
 *
 * create copies a template from VM_DIR/.templates into DS/NAME/NAME.conf,
 * adds a fresh uuid, applies -c/-m, and creates the disks the template
 * names: qcow2 (through the library behind khyve-img) when the name ends
 * in .qcow2, else a sparse raw file; -s sets disk0's size (template key
 * diskN_size, default 20G), -i makes disk0 an O(1) overlay on an image
 * from vm img.  Anything that fails removes the new directory again, so
 * nothing is left half-made.
 *
 * destroy refuses a running VM and a VM whose snapshots other VMs are
 * cloned from, asks unless -f, and removes the VM's directory (disk files
 * outside it, diskN_dev="custom" or absolute names, are left alone).
 *
 * Threads: single-threaded.  No locks besides run.lock (destroy).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "block/qcow2.h"
#include "cmd/vm/vm.h"

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

int vm_disk_create(const char *path, uint64_t size, const char *backing)
{
	struct qcow2_create_opts o = {.size = size, .backing = backing};
	int fd, rc;

	if (ends_with(path, ".qcow2"))
		return qcow2_create(path, &o);
	if (backing) {
		vm_err("%s: an image-based disk must be qcow2 (a name ending "
		       "in .qcow2)",
		       path);
		return -EINVAL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
		rc = -errno;
		vm_err("%s: %s", path, strerror(-rc));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		return rc;
	}
	close(fd);
	return 0;
}

struct create_opts {
	const char *ds, *tmpl, *size, *cpu, *mem, *image;
};

/* A relative path from directory 'from' to 'to' when both are in the same
 * datastore ("../.img/x.qcow2"), else 'to' itself. */
static void rel_to(const char *from_dir, const char *ds, const char *to,
		   char *buf, size_t len)
{
	size_t dl = strlen(ds);

	if (!strncmp(to, ds, dl) && to[dl] == '/' &&
	    !strncmp(from_dir, ds, dl) && from_dir[dl] == '/' &&
	    !strchr(from_dir + dl + 1, '/'))
		snprintf(buf, len, "../%s", to + dl + 1);
	else
		snprintf(buf, len, "%s", to);
}

static int create_disks(struct vm *vm, const struct create_opts *o,
			const char *image)
{
	struct conf *c = &vm->conf;
	char path[PATH_MAX], backing[PATH_MAX], key[32];
	uint64_t size, s0 = 0;
	struct stat st;
	unsigned i;
	int rc;

	if (o->size && (vm_parse_size(o->size, false, &s0) || !s0)) {
		vm_err("-s %s: not a size (such as 20G)", o->size);
		return -EINVAL;
	}
	for (i = 0; i < VM_MAX_DISKS; i++) {
		const char *type = conf_getf(c, "disk%u_type", i);
		const char *dev = conf_getf(c, "disk%u_dev", i);
		const char *sz = conf_getf(c, "disk%u_size", i);

		rc = vm_disk_path(vm, i, path, sizeof(path));
		if (rc == -ENOENT)
			break;
		if (rc)
			return rc;
		snprintf(key, sizeof(key), "disk%u_size", i);
		if ((type && !strcmp(type, "ahci-cd")) ||
		    (dev && *dev && strcmp(dev, "file"))) {
			conf_unset(c, key);
			continue; /* media and custom disks are not ours */
		}
		size = 20ULL << 30;
		if (i == 0 && s0)
			size = s0;
		else if (sz && *sz &&
			 (vm_parse_size(sz, false, &size) || !size)) {
			vm_err("%s: \"%s\" is not a size (such as 20G)", key,
			       sz);
			return -EINVAL;
		}
		if (i == 0 && image && !s0)
			size = 0; /* the image's size */
		conf_unset(c, key);
		if (stat(path, &st) == 0) {
			vm_err("disk%u_name: %s already exists", i, path);
			return -EEXIST;
		}
		if (i == 0 && image)
			rel_to(vm->dir, vm->ds->path, image, backing,
			       sizeof(backing));
		rc = vm_disk_create(path, size,
				    i == 0 && image ? backing : NULL);
		if (rc)
			return rc;
	}
	return 0;
}

static int create_conf(const struct vm_env *env, struct vm *vm,
		       const struct create_opts *o)
{
	char path[PATH_MAX], uuid[37];
	uint64_t mem;
	char *end;
	unsigned long cpu;
	int rc;

	if (!vm_name_ok(o->tmpl, VM_NAME_MAX, NULL)) {
		vm_err("-t %s: not a template name", o->tmpl);
		return -EINVAL;
	}
	if (vm_fmt(path, sizeof(path), "%s/.templates/%s.conf", env->dir,
		   o->tmpl))
		return -ENAMETOOLONG;
	rc = conf_load(&vm->conf, path, true);
	if (rc == -ENOENT)
		vm_err("template %s: no such template (%s; vm init writes the "
		       "built-in ones)",
		       o->tmpl, path);
	if (rc)
		return rc;
	if (o->cpu) {
		errno = 0;
		cpu = strtoul(o->cpu, &end, 10);
		if (*end || errno || !cpu || cpu > 255) {
			vm_err("-c %s: not a CPU count from 1 to 255", o->cpu);
			return -EINVAL;
		}
		if ((rc = conf_set(&vm->conf, "cpu", o->cpu)))
			return rc;
	}
	if (o->mem) {
		if (vm_parse_size(o->mem, true, &mem) || !mem) {
			vm_err("-m %s: not a memory size (such as 512M)",
			       o->mem);
			return -EINVAL;
		}
		if ((rc = conf_set(&vm->conf, "memory", o->mem)))
			return rc;
	}
	if ((rc = vm_uuid(uuid)))
		return rc;
	return conf_set(&vm->conf, "uuid", uuid);
}

static int do_create(const struct vm_env *env, const char *name,
		     const struct create_opts *o)
{
	char image[PATH_MAX];
	const struct vm_ds *ds = &env->ds[0];
	struct vm vm, other;
	int rc;

	if (!vm_name_ok(name, VM_NAME_MAX, NULL)) {
		vm_err("%s: not a valid virtual machine name (1 to %d "
		       "characters from A-Z a-z 0-9 _ . -, not starting with "
		       ". or -)",
		       name, VM_NAME_MAX);
		return -EINVAL;
	}
	if (vm_lookup(env, name, &other) != -ENOENT) {
		vm_close(&other);
		vm_err("%s already exists", name);
		return -EEXIST;
	}
	if (o->ds && !(ds = vm_env_ds(env, o->ds)))
		return -ENOENT;
	if (o->image &&
	    (rc = vm_media_find(env, ".img", o->image, image, sizeof(image))))
		return rc;
	memset(&vm, 0, sizeof(vm));
	snprintf(vm.name, sizeof(vm.name), "%s", name);
	vm.ds = ds;
	if (vm_fmt(vm.dir, sizeof(vm.dir), "%s/%s", ds->path, name) ||
	    vm_fmt(vm.confpath, sizeof(vm.confpath), "%s/%s.conf", vm.dir,
		   name)) {
		vm_err("%s/%s: path too long", ds->path, name);
		return -ENAMETOOLONG;
	}
	if ((rc = create_conf(env, &vm, o)))
		goto out;
	if (mkdir(vm.dir, 0755) < 0) {
		rc = -errno;
		vm_err("%s: %s", vm.dir, strerror(-rc));
		goto out;
	}
	if ((rc = create_disks(&vm, o, o->image ? image : NULL)) ||
	    (rc = conf_save(&vm.conf, vm.confpath)))
		vm_rmtree(vm.dir); /* nothing half-made */
out:
	vm_close(&vm);
	return rc;
}

int cmd_create(struct vm_env *env, int argc, char **argv)
{
	struct create_opts o = {.tmpl = "default"};
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+d:t:s:c:m:i:")) != -1) {
		switch (c) {
		case 'd':
			o.ds = optarg;
			break;
		case 't':
			o.tmpl = optarg;
			break;
		case 's':
			o.size = optarg;
			break;
		case 'c':
			o.cpu = optarg;
			break;
		case 'm':
			o.mem = optarg;
			break;
		case 'i':
			o.image = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind != 1)
		goto usage;
	return do_create(env, argv[optind], &o);
usage:
	vm_err("usage: vm create [-d datastore] [-t template] [-s size] "
	       "[-c cpus] [-m memory] [-i image] NAME");
	return -EINVAL;
}

/* Drop 'name' from the autostart list. */
static int autostart_forget(struct vm_env *env, const char *name)
{
	const char *list = conf_get(&env->sys, "vm_list");
	char buf[4096] = "", *copy, *tok, *save = NULL;
	bool found = false;

	if (!list)
		return 0;
	copy = strdup(list);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (!strcmp(tok, name)) {
			found = true;
			continue;
		}
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
			 buf[0] ? " " : "", tok);
	}
	free(copy);
	if (!found)
		return 0;
	if (conf_set(&env->sys, "vm_list", buf))
		return -ENOMEM;
	return vm_env_save(env);
}

int cmd_destroy(struct vm_env *env, int argc, char **argv)
{
	char clones[1024];
	bool force = false;
	struct vm vm;
	int c, fd, rc;

	optind = 1;
	while ((c = getopt(argc, argv, "+f")) != -1) {
		if (c != 'f') {
			vm_err("usage: vm destroy [-f] NAME");
			return -EINVAL;
		}
		force = true;
	}
	if (argc - optind != 1) {
		vm_err("usage: vm destroy [-f] NAME");
		return -EINVAL;
	}
	if ((rc = vm_open(env, argv[optind], &vm)))
		return rc;
	fd = vm_lock_offline(&vm);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	if ((rc = vm_clones_of(env, &vm, clones, sizeof(clones))))
		goto unlock;
	if (clones[0]) {
		vm_err("%s has clones that use its disks: %s (destroy them "
		       "first)",
		       vm.name, clones);
		rc = -EBUSY;
		goto unlock;
	}
	if (!force &&
	    !vm_confirm("Are you sure you want to completely remove %s",
			vm.name)) {
		rc = -ECANCELED;
		goto unlock;
	}
	rc = vm_rmtree(vm.dir);
	if (rc)
		vm_err("%s: %s", vm.dir, strerror(-rc));
	else
		rc = autostart_forget(env, vm.name);
unlock:
	close(fd);
out:
	vm_close(&vm);
	return rc;
}

int cmd_edit(struct vm_env *env, int argc, char **argv)
{
	struct vm vm, after;
	int st, rc;
	pid_t pid;

	if (argc != 2) {
		vm_err("usage: vm edit NAME");
		return -EINVAL;
	}
	if ((rc = vm_open(env, argv[1], &vm)))
		return rc;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		vm_close(&vm);
		return rc;
	}
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "${VISUAL:-${EDITOR:-vi}} \"$1\"",
		      "sh", vm.confpath, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			break;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		vm_err("the editor failed; %s may be unchanged", vm.confpath);
		vm_close(&vm);
		return -EIO;
	}
	/* check what was written: parse errors and unknown keys */
	rc = vm_open(env, vm.name, &after);
	if (!rc) {
		vm_check_keys(&after);
		vm_close(&after);
	}
	vm_close(&vm);
	return rc;
}
