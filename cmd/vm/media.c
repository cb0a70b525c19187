/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm iso and vm img: the install media and the disk images kept in a
 * datastore's .iso/ and .img/ directories.  Without an argument they list
 * the files of every datastore; with a path they copy the file in (a
 * progress bar on a terminal, through NAME.part + rename); with a URL they
 * download it with curl(1) or wget(1).  vm img decompresses .xz files
 * with xz(1) and makes images read-only, since vm create -i puts O(1)
 * qcow2 overlays on them.
 *
 * Threads: single-threaded.  No locks.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/vm/vm.h"

int vm_media_find(const struct vm_env *env, const char *sub, const char *arg,
		  char *buf, size_t len)
{
	struct stat st;
	size_t i;

	if (strchr(arg, '/')) {
		if (!realpath(arg, buf) || stat(buf, &st) < 0 ||
		    S_ISDIR(st.st_mode)) {
			vm_err("%s: no such file", arg);
			return -ENOENT;
		}
		(void)len;
		return 0;
	}
	for (i = 0; i < env->nds; i++) {
		if (vm_fmt(buf, len, "%s/%s/%s", env->ds[i].path, sub, arg))
			continue;
		if (stat(buf, &st) == 0 && !S_ISDIR(st.st_mode))
			return 0;
	}
	vm_err("%s: not found in the datastores' %s directories (vm %s lists "
	       "them; or give a path)",
	       arg, sub, sub + 1);
	return -ENOENT;
}

static int list_media(const struct vm_env *env, const char *sub)
{
	char dir[PATH_MAX], path[PATH_MAX * 2], size[32];
	struct dirent *de;
	struct stat st;
	size_t i;
	DIR *d;

	printf("%-15s %-40s %s\n", "DATASTORE", "FILENAME", "SIZE");
	for (i = 0; i < env->nds; i++) {
		if (vm_fmt(dir, sizeof(dir), "%s/%s", env->ds[i].path, sub) ||
		    !(d = opendir(dir)))
			continue;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			printf("%-15s %-40s %s\n", env->ds[i].name, de->d_name,
			       vm_human((uint64_t)st.st_size, size,
					sizeof(size)));
		}
		closedir(d);
	}
	return 0;
}

static int download(const char *url, const char *dst)
{
	char part[PATH_MAX * 2 + 8];
	const char *curl[] = {"curl", "-fL", "--progress-bar", "-o", part,
			      url,    NULL};
	const char *wget[] = {"wget", "-q", "--show-progress", "-O", part,
			      url,    NULL};
	int rc;

	if (vm_fmt(part, sizeof(part), "%s.part", dst))
		return -ENAMETOOLONG;
	/* stderr is the terminal's: the downloader shows its progress */
	rc = vm_run_cmd(curl, NULL, NULL, 0);
	if (rc == -ENOENT)
		rc = vm_run_cmd(wget, NULL, NULL, 0);
	if (rc == -ENOENT) {
		vm_err("%s: neither curl nor wget is installed", url);
		return rc;
	}
	if (rc) {
		unlink(part);
		vm_err("%s: download failed (%s exited with status %d)", url,
		       rc < 0 ? "the downloader" : "curl or wget", rc);
		return -EIO;
	}
	if (rename(part, dst) < 0) {
		rc = -errno;
		unlink(part);
		vm_err("%s: %s", dst, strerror(-rc));
	}
	return rc;
}

static int import(const struct vm_env *env, const char *sub, const char *ds,
		  const char *arg)
{
	const struct vm_ds *d = &env->ds[0];
	char dir[PATH_MAX], dst[PATH_MAX * 2], final[PATH_MAX * 2], err[256];
	const char *base = strrchr(arg, '/') ? strrchr(arg, '/') + 1 : arg;
	bool url = strstr(arg, "://") != NULL, img = !strcmp(sub, ".img");
	struct stat st;
	size_t bl;
	bool xz;
	int rc;

	if (ds && !(d = vm_env_ds(env, ds)))
		return -ENOENT;
	if (!*base || base[0] == '.') {
		vm_err("%s: no file name to store it under", arg);
		return -EINVAL;
	}
	if (vm_fmt(dir, sizeof(dir), "%s/%s", d->path, sub))
		return -ENAMETOOLONG;
	if ((rc = vm_mkdirs(dir, 0755))) {
		vm_err("%s: %s", dir, strerror(-rc));
		return rc;
	}
	snprintf(dst, sizeof(dst), "%s/%s", dir, base);
	snprintf(final, sizeof(final), "%s", dst);
	bl = strlen(dst);
	xz = img && bl > 3 && !strcmp(dst + bl - 3, ".xz");
	if (xz)
		final[bl - 3] = '\0';
	if (stat(dst, &st) == 0 || stat(final, &st) == 0) {
		vm_err("%s already exists", final);
		return -EEXIST;
	}
	rc = url ? download(arg, dst) : vm_copy_file(arg, dst);
	if (rc)
		return rc;
	if (xz) {
		const char *argv[] = {"xz", "-d", dst, NULL};

		rc = vm_run_cmd(argv, NULL, err, sizeof(err));
		if (rc) {
			vm_err("%s: cannot decompress: %s", dst,
			       rc == -ENOENT ? "xz is not installed" : err);
			unlink(dst);
			return -EIO;
		}
	}
	if (img)
		chmod(final, 0444); /* a base for overlays: never written */
	printf("%s\n", final);
	return 0;
}

static int media(struct vm_env *env, const char *sub, int argc, char **argv)
{
	const char *ds = NULL;
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "+d:")) != -1) {
		if (c != 'd')
			goto usage;
		ds = optarg;
	}
	if (optind == argc)
		return list_media(env, sub);
	if (argc - optind != 1)
		goto usage;
	return import(env, sub, ds, argv[optind]);
usage:
	vm_err("usage: vm %s [-d datastore] [path|url]", sub + 1);
	return -EINVAL;
}

int cmd_iso(struct vm_env *env, int argc, char **argv)
{
	return media(env, ".iso", argc, argv);
}

int cmd_img(struct vm_env *env, int argc, char **argv)
{
	return media(env, ".img", argc, argv);
}
