/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Where vm's files live: VM_DIR (the default datastore) and the other
 * datastores listed in VM_DIR/.config/system.conf (vm-bhyve's
 * datastore_list="default name..." and path_NAME="/dir"), finding a VM by
 * name in them, the per-VM run.lock, and the commands vm init, vm
 * datastore, vm get and vm set.
 *
 * VM_DIR is the first of: $VM_DIR; vm_dir="..." in $VM_CONFIG or
 * /etc/khyve/vm.conf; /var/lib/khyve.
 *
 * run.lock: the monitor opens it, takes an exclusive flock(2) for its whole
 * life and writes "PID\nkey=value..." (its pid, then runtime facts such as
 * com1=/dev/pts/3).  A lock held with an empty file is an offline change in
 * progress (snapshot, rollback, destroy, clone), which takes the same lock
 * so no VM starts under it.
 *
 * Threads: single-threaded.  No locks besides run.lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/vm/vm.h"

static int add_ds(struct vm_env *env, const char *name, const char *path)
{
	struct vm_ds *nd = realloc(env->ds, (env->nds + 1) * sizeof(*nd));

	if (!nd)
		return -ENOMEM;
	env->ds = nd;
	snprintf(nd[env->nds].name, sizeof(nd[0].name), "%s", name);
	snprintf(nd[env->nds].path, sizeof(nd[0].path), "%s", path);
	env->nds++;
	return 0;
}

/* vm_dir from the global file, if any, into buf. */
static int global_dir(char *buf, size_t len)
{
	const char *path = getenv("VM_CONFIG");
	struct conf g = {0};
	const char *v;
	int rc;

	if (!path || !*path)
		path = VM_GLOBAL_CONF;
	rc = conf_load(&g, path, true);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	v = conf_get(&g, "vm_dir");
	if (v && *v)
		snprintf(buf, len, "%s", v);
	conf_free(&g);
	return 0;
}

static int load_datastores(struct vm_env *env)
{
	const char *list = conf_get(&env->sys, "datastore_list");
	char *copy, *tok, *save = NULL;
	const char *p;
	int rc = add_ds(env, "default", env->dir);

	if (rc || !list)
		return rc;
	copy = strdup(list);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, " \t", &save); tok && !rc;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (!strcmp(tok, "default"))
			continue;
		p = conf_getf(&env->sys, "path_%s", tok);
		if (!p || *p != '/') {
			vm_warn("%s: datastore %s has no path_%s, ignored",
				env->sysconf, tok, tok);
			continue;
		}
		rc = add_ds(env, tok, p);
	}
	free(copy);
	return rc;
}

int vm_env_load(struct vm_env *env, bool need_init)
{
	char dir[PATH_MAX] = VM_DEFAULT_DIR, cfg[PATH_MAX + 16];
	const char *e = getenv("VM_DIR");
	struct stat st;
	int rc;

	memset(env, 0, sizeof(*env));
	if (e && *e)
		snprintf(dir, sizeof(dir), "%s", e);
	else if ((rc = global_dir(dir, sizeof(dir))))
		return rc;
	if (!strncmp(dir, "zfs:", 4)) {
		vm_err("vm_dir %s: ZFS datastores are not available (use a "
		       "directory)",
		       dir);
		return -ENOTSUP;
	}
	if (dir[0] != '/') {
		char cwd[PATH_MAX];

		if (!getcwd(cwd, sizeof(cwd)) ||
		    vm_fmt(env->dir, sizeof(env->dir), "%s/%s", cwd, dir)) {
			vm_err("VM_DIR %s: cannot make it absolute", dir);
			return -ENAMETOOLONG;
		}
	} else {
		snprintf(env->dir, sizeof(env->dir), "%s", dir);
	}
	while (strlen(env->dir) > 1 && env->dir[strlen(env->dir) - 1] == '/')
		env->dir[strlen(env->dir) - 1] = '\0';
	/* the monitor (cwd /) and children see the same, absolute, VM_DIR */
	setenv("VM_DIR", env->dir, 1);
	if (vm_fmt(env->sysconf, sizeof(env->sysconf), "%s/.config/system.conf",
		   env->dir) ||
	    vm_fmt(cfg, sizeof(cfg), "%s/.config", env->dir)) {
		vm_err("VM_DIR %s: path too long", env->dir);
		return -ENAMETOOLONG;
	}
	if (need_init && (stat(cfg, &st) < 0 || !S_ISDIR(st.st_mode))) {
		vm_err("%s is not a datastore yet (run vm init, or set "
		       "VM_DIR)",
		       env->dir);
		return -ENOENT;
	}
	rc = conf_load(&env->sys, env->sysconf, true);
	if (rc && rc != -ENOENT)
		return rc;
	return load_datastores(env);
}

int vm_env_save(struct vm_env *env)
{
	return conf_save(&env->sys, env->sysconf);
}

void vm_env_free(struct vm_env *env)
{
	conf_free(&env->sys);
	free(env->ds);
	env->ds = NULL;
	env->nds = 0;
}

const struct vm_ds *vm_env_ds(const struct vm_env *env, const char *name)
{
	size_t i;

	for (i = 0; i < env->nds; i++)
		if (!strcmp(env->ds[i].name, name))
			return &env->ds[i];
	vm_err("datastore %s: no such datastore (vm datastore list)", name);
	return NULL;
}

static int vm_load(const struct vm_ds *ds, const char *name, struct vm *vm,
		   bool quiet)
{
	struct stat st;
	int rc;

	memset(vm, 0, sizeof(*vm));
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->ds = ds;
	if (vm_fmt(vm->dir, sizeof(vm->dir), "%s/%s", ds->path, name) ||
	    vm_fmt(vm->confpath, sizeof(vm->confpath), "%s/%s.conf", vm->dir,
		   name))
		return -ENAMETOOLONG;
	if (stat(vm->confpath, &st) < 0)
		return -ENOENT;
	rc = conf_load(&vm->conf, vm->confpath, quiet);
	if (rc)
		conf_free(&vm->conf);
	return rc;
}

int vm_lookup(const struct vm_env *env, const char *name, struct vm *vm)
{
	size_t i;
	int rc;

	if (!vm_name_ok(name, VM_NAME_MAX, NULL))
		return -EINVAL;
	for (i = 0; i < env->nds; i++) {
		rc = vm_load(&env->ds[i], name, vm, false);
		if (rc != -ENOENT)
			return rc;
	}
	return -ENOENT;
}

int vm_open(const struct vm_env *env, const char *name, struct vm *vm)
{
	int rc;

	if (!vm_name_ok(name, VM_NAME_MAX, NULL)) {
		vm_err("%s: not a valid virtual machine name (1 to %d "
		       "characters from A-Z a-z 0-9 _ . -, not starting with "
		       ". or -)",
		       name, VM_NAME_MAX);
		return -EINVAL;
	}
	rc = vm_lookup(env, name, vm);
	if (rc == -ENOENT)
		vm_err("%s: no such virtual machine", name);
	return rc;
}

void vm_close(struct vm *vm)
{
	conf_free(&vm->conf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the VM directories of one datastore. */
static int ds_names(const struct vm_ds *ds, char ***out, size_t *n)
{
	char **names = NULL, **nn, path[PATH_MAX];
	size_t cnt = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;

	*out = NULL;
	*n = 0;
	d = opendir(ds->path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' ||
		    !vm_name_ok(de->d_name, VM_NAME_MAX, NULL))
			continue;
		if (vm_fmt(path, sizeof(path), "%s/%s/%s.conf", ds->path,
			   de->d_name, de->d_name) ||
		    stat(path, &st) < 0)
			continue;
		nn = realloc(names, (cnt + 1) * sizeof(*nn));
		if (!nn || !(nn[cnt] = strdup(de->d_name))) {
			names = nn ? nn : names;
			break;
		}
		names = nn;
		cnt++;
	}
	closedir(d);
	if (cnt)
		qsort(names, cnt, sizeof(*names), cmp_str);
	*out = names;
	*n = cnt;
	return 0;
}

int vm_foreach(const struct vm_env *env,
	       int (*fn)(const struct vm_env *env, struct vm *vm, void *arg),
	       void *arg)
{
	size_t i, j, n;
	char **names;
	struct vm vm;
	int rc = 0;

	for (i = 0; i < env->nds && !rc; i++) {
		if (ds_names(&env->ds[i], &names, &n))
			continue;
		for (j = 0; j < n; j++) {
			if (!rc &&
			    !vm_load(&env->ds[i], names[j], &vm, false)) {
				rc = fn(env, &vm, arg);
				vm_close(&vm);
			}
			free(names[j]);
		}
		free(names);
	}
	return rc;
}

int vm_path(const struct vm *vm, const char *file, char *buf, size_t len)
{
	if (vm_fmt(buf, len, "%s/%s", vm->dir, file)) {
		vm_err("%s/%s: path too long", vm->dir, file);
		return -ENAMETOOLONG;
	}
	return 0;
}

bool vm_running(const struct vm *vm, pid_t *pid)
{
	char path[PATH_MAX], buf[32];
	ssize_t n;
	int fd;

	if (pid)
		*pid = 0;
	if (vm_fmt(path, sizeof(path), "%s/run.lock", vm->dir))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return false;
	}
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n > 0 && pid) {
		buf[n] = '\0';
		*pid = (pid_t)atoi(buf);
	}
	return true;
}

int vm_runtime_get(const struct vm *vm, const char *key, char *buf, size_t len)
{
	char path[PATH_MAX], *text, *line, *save = NULL;
	size_t kl = strlen(key);
	int rc;

	if (!vm_running(vm, NULL))
		return -ESRCH;
	if ((rc = vm_fmt(path, sizeof(path), "%s/run.lock", vm->dir)))
		return rc;
	if ((rc = vm_read_file(path, &text, NULL)))
		return rc;
	rc = -ENOENT;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, key, kl) && line[kl] == '=') {
			snprintf(buf, len, "%s", line + kl + 1);
			rc = 0;
			break;
		}
	}
	free(text);
	return rc;
}

int vm_lock_offline(const struct vm *vm)
{
	char path[PATH_MAX];
	pid_t pid;
	int fd, rc;

	if ((rc = vm_path(vm, "run.lock", path, sizeof(path))))
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		vm_err("%s: %s", path, strerror(-rc));
		return rc;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		if (vm_running(vm, &pid) && pid > 0)
			vm_err("%s is running (pid %d); stop it first",
			       vm->name, (int)pid);
		else
			vm_err("%s is busy (another vm command holds it)",
			       vm->name);
		return -EBUSY;
	}
	if (ftruncate(fd, 0) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* ---- vm init ---- */

static int write_templates(const struct vm_env *env)
{
	char path[PATH_MAX];
	const struct vm_template *t;
	struct stat st;
	int rc;

	for (t = vm_templates; t->name; t++) {
		if (vm_fmt(path, sizeof(path), "%s/.templates/%s.conf",
			   env->dir, t->name))
			return -ENAMETOOLONG;
		if (stat(path, &st) == 0)
			continue; /* keep the user's edits */
		rc = vm_write_file(path, t->text, strlen(t->text), 0644);
		if (rc)
			return rc;
	}
	return 0;
}

int cmd_init(struct vm_env *env, int argc, char **argv)
{
	static const char *const subdirs[] = {".config", ".templates", ".iso",
					      ".img"};
	char path[PATH_MAX];
	struct stat st;
	size_t i;
	int rc;

	(void)argv;
	if (argc > 1) {
		vm_err("usage: vm init");
		return -EINVAL;
	}
	for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if (vm_fmt(path, sizeof(path), "%s/%s", env->dir, subdirs[i]))
			return -ENAMETOOLONG;
		rc = vm_mkdirs(path, 0755);
		if (rc) {
			vm_err("%s: %s", path, strerror(-rc));
			return rc;
		}
	}
	if ((rc = write_templates(env)))
		return rc;
	if (stat(env->sysconf, &st) < 0 && (rc = vm_env_save(env)))
		return rc;
	return vm_switch_restore(env);
}

/* ---- vm datastore ---- */

static int ds_list(const struct vm_env *env)
{
	size_t i;

	printf("%-15s %-11s %s\n", "NAME", "TYPE", "PATH");
	for (i = 0; i < env->nds; i++)
		printf("%-15s %-11s %s\n", env->ds[i].name, "directory",
		       env->ds[i].path);
	return 0;
}

/* datastore_list without/with 'name'. */
static int ds_list_edit(struct vm_env *env, const char *name, bool add)
{
	const char *list = conf_get(&env->sys, "datastore_list");
	char buf[4096] = "", *copy, *tok, *save = NULL;
	int rc;

	copy = strdup(list ? list : "default");
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (!strcmp(tok, name))
			continue;
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
			 buf[0] ? " " : "", tok);
	}
	free(copy);
	if (add)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s",
			 buf[0] ? " " : "", name);
	rc = conf_set(&env->sys, "datastore_list", buf);
	return rc;
}

static int ds_add(struct vm_env *env, const char *name, const char *path)
{
	char real[PATH_MAX], key[VM_NAME_MAX + 8];
	struct stat st;
	int rc;

	if (!vm_name_ok(name, VM_NAME_MAX, NULL) || !strcmp(name, "default")) {
		vm_err("datastore %s: not a valid datastore name", name);
		return -EINVAL;
	}
	if (conf_getf(&env->sys, "path_%s", name)) {
		vm_err("datastore %s already exists", name);
		return -EEXIST;
	}
	if (!strncmp(path, "zfs:", 4)) {
		vm_err("%s: ZFS datastores are not available (use a "
		       "directory)",
		       path);
		return -ENOTSUP;
	}
	if (!realpath(path, real) || stat(real, &st) < 0 ||
	    !S_ISDIR(st.st_mode)) {
		vm_err("%s: not an existing directory", path);
		return -ENOENT;
	}
	snprintf(key, sizeof(key), "path_%s", name);
	if ((rc = ds_list_edit(env, name, true)) ||
	    (rc = conf_set(&env->sys, key, real)))
		return rc;
	return vm_env_save(env);
}

static int ds_remove(struct vm_env *env, const char *name)
{
	char key[VM_NAME_MAX + 8];
	int rc;

	if (!strcmp(name, "default")) {
		vm_err("the default datastore cannot be removed");
		return -EINVAL;
	}
	snprintf(key, sizeof(key), "path_%s", name);
	if (!conf_get(&env->sys, key)) {
		vm_err("datastore %s: no such datastore", name);
		return -ENOENT;
	}
	conf_unset(&env->sys, key);
	if ((rc = ds_list_edit(env, name, false)))
		return rc;
	return vm_env_save(env);
}

int cmd_datastore(struct vm_env *env, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "list"))
		return ds_list(env);
	if (!strcmp(argv[1], "add") && argc == 4)
		return ds_add(env, argv[2], argv[3]);
	if (!strcmp(argv[1], "remove") && argc == 3)
		return ds_remove(env, argv[2]);
	vm_err("usage: vm datastore list | add NAME PATH | remove NAME");
	return -EINVAL;
}

/* ---- vm get / vm set: the settings in system.conf ---- */

int cmd_get(struct vm_env *env, int argc, char **argv)
{
	const char *v;
	size_t i;
	int k;

	if (argc < 2) {
		vm_err("usage: vm get all | SETTING...");
		return -EINVAL;
	}
	if (!strcmp(argv[1], "all")) {
		for (i = 0; i < env->sys.n; i++)
			if (env->sys.l[i].key &&
			    conf_get(&env->sys, env->sys.l[i].key) ==
				    env->sys.l[i].val)
				printf("%s=%s\n", env->sys.l[i].key,
				       env->sys.l[i].val);
		return 0;
	}
	for (k = 1; k < argc; k++) {
		v = conf_get(&env->sys, argv[k]);
		printf("%s=%s\n", argv[k], v ? v : "");
	}
	return 0;
}

int cmd_set(struct vm_env *env, int argc, char **argv)
{
	char key[64];
	const char *eq, *p;
	int k, rc;

	if (argc < 2) {
		vm_err("usage: vm set SETTING=VALUE...");
		return -EINVAL;
	}
	for (k = 1; k < argc; k++) {
		eq = strchr(argv[k], '=');
		if (!eq || eq == argv[k] ||
		    (size_t)(eq - argv[k]) >= sizeof(key)) {
			vm_err("%s: expected SETTING=VALUE", argv[k]);
			return -EINVAL;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[k]),
			 argv[k]);
		for (p = key; *p; p++)
			if (!(*p == '_' || (*p >= 'a' && *p <= 'z') ||
			      (*p >= 'A' && *p <= 'Z') ||
			      (p != key && *p >= '0' && *p <= '9')))
				break;
		if (*p) {
			vm_err("%s: not a valid setting name", key);
			return -EINVAL;
		}
		for (p = eq + 1; *p; p++)
			if ((unsigned char)*p < 0x20) {
				vm_err("%s: control characters in the value",
				       key);
				return -EINVAL;
			}
		if ((rc = conf_set(&env->sys, key, eq + 1)))
			return rc;
	}
	return vm_env_save(env);
}
