/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The device-model registry (see devmodel.h): a read-only walk over the
 * pointers that DEVMODEL_SET() places in the "khyve_devmodels" section.
 * The linker defines __start_/__stop_ symbols around that section; they
 * are declared weak and hidden here so that a binary without any model
 * (a unit test) still links and sees an empty set.
 *
 * Threads: the set is immutable; every function may be called from any
 * thread.  No locks.
 */
#include "core/devmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct devmodel *const __start_khyve_devmodels[]
	__attribute__((weak, visibility("hidden")));
extern const struct devmodel *const __stop_khyve_devmodels[]
	__attribute__((weak, visibility("hidden")));

static size_t devmodel_count(void)
{
	if (!__start_khyve_devmodels || !__stop_khyve_devmodels)
		return 0;
	return (size_t)(__stop_khyve_devmodels - __start_khyve_devmodels);
}

const struct devmodel *devmodel_next(const struct devmodel *prev)
{
	size_t i, n = devmodel_count();

	if (!prev)
		return n ? __start_khyve_devmodels[0] : NULL;
	for (i = 0; i + 1 < n; i++)
		if (__start_khyve_devmodels[i] == prev)
			return __start_khyve_devmodels[i + 1];
	return NULL;
}

const struct devmodel *devmodel_find(const char *name)
{
	size_t i, n = devmodel_count();

	if (!name)
		return NULL;
	for (i = 0; i < n; i++)
		if (strcmp(__start_khyve_devmodels[i]->name, name) == 0)
			return __start_khyve_devmodels[i];
	return NULL;
}

const struct devmodel *devmodel_find_kind(const char *name,
					  enum devmodel_kind kind)
{
	const struct devmodel *m;
	size_t i, n = devmodel_count();

	if (!name)
		return NULL;
	for (i = 0; i < n; i++) {
		m = __start_khyve_devmodels[i];
		if (m->kind == kind && strcmp(m->name, name) == 0)
			return m;
	}
	return NULL;
}

static int devmodel_name_cmp(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;

	return strcmp(*x, *y);
}

void devmodel_print(enum devmodel_kind kind, void *file)
{
	size_t i, k = 0, n = devmodel_count();
	const char **names;
	FILE *f = file;

	if (!f || n == 0)
		return;
	names = calloc(n, sizeof(*names));
	if (!names)
		return;
	for (i = 0; i < n; i++)
		if (__start_khyve_devmodels[i]->kind == kind)
			names[k++] = __start_khyve_devmodels[i]->name;
	qsort(names, k, sizeof(*names), devmodel_name_cmp);
	for (i = 0; i < k; i++)
		fprintf(f, "%s\n", names[i]);
	fflush(f);
	free(names);
}
