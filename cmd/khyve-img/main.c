/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * khyve-img(8): a small image tool for khyve's disk formats, not a
 * qemu-img clone.  Three commands:
 *
 *   create [-f qcow2] [-b backing [-F fmt]] [-o cluster_size=N] file [size]
 *       a new qcow2 image, or an O(1) overlay (clone) on 'backing';
 *   info file
 *       format, virtual size, cluster size and the whole backing chain;
 *   check [-r leaks|all] file
 *       recount the qcow2 refcounts, optionally repairing leaks.
 *
 * Exit status: 0 success; 1 failure, with one line "khyve-img: ...".  check
 * follows qemu-img: 2 when errors (corruption) were found, 3 when only
 * leaks remain.  The work is done by src/block/qcow2.c (qcow2.h).
 *
 * Threads: one.  No locks (the image lock is taken by the library).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/qcow2.h"
#include "lib/log.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: khyve-img create [-f qcow2] [-b backing [-F fmt]] "
		     "[-o cluster_size=N] file [size]\n"
		     "       khyve-img info file\n"
		     "       khyve-img check [-r leaks|all] file\n"
		     "       khyve-img -h\n");
}

/* "123", "10G", "1.5T" is not accepted: an integer with an optional
 * binary suffix (k, K, M, G, T, P, E; b or none = bytes). */
static int parse_size(const char *s, uint64_t *out)
{
	static const char suffixes[] = "KMGTPE";
	const char *p;
	uint64_t v = 0, mul = 1;
	char *end;

	if (!*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end == 'b' || *end == 'B') {
		end++;
	} else if (*end) {
		p = strchr(suffixes, *end == 'k' ? 'K' : *end);
		if (!p)
			return -EINVAL;
		mul = 1ULL << (10 * (p - suffixes + 1));
		end++;
	}
	if (*end || (v && mul > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* "1.00 GiB" style, for humans. */
static const char *human(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = {"B",   "KiB", "MiB", "GiB",
					    "TiB", "PiB", "EiB"};
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " B", v);
	else
		snprintf(buf, len, "%.3g %s", d, units[u]);
	return buf;
}

static int cmd_create(int argc, char **argv)
{
	struct qcow2_create_opts o;
	const char *fmt = "qcow2";
	uint64_t cs;
	int c;

	memset(&o, 0, sizeof(o));
	optind = 1;
	while ((c = getopt(argc, argv, "f:b:F:o:h")) != -1) {
		switch (c) {
		case 'f':
			fmt = optarg;
			break;
		case 'b':
			o.backing = optarg;
			break;
		case 'F':
			o.backing_fmt = optarg;
			break;
		case 'o':
			if (strncmp(optarg, "cluster_size=", 13) ||
			    parse_size(optarg + 13, &cs) < 0 || cs < 512 ||
			    cs > (2U << 20) || (cs & (cs - 1))) {
				log_err("-o %s: only cluster_size=N (a power "
					"of 2 from 512 to 2M) is supported",
					optarg);
				return 1;
			}
			o.cluster_bits = (unsigned)__builtin_ctzll(cs);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (strcmp(fmt, "qcow2") != 0) {
		log_err("-f %s: only qcow2 images can be created (a raw "
			"image is a plain file: truncate(1))",
			fmt);
		return 1;
	}
	if (optind >= argc || argc - optind > 2) {
		usage(stderr);
		return 1;
	}
	if (argc - optind == 2 && parse_size(argv[optind + 1], &o.size) < 0) {
		log_err("invalid size '%s' (bytes, or with a suffix K, M, G, "
			"T, P or E)",
			argv[optind + 1]);
		return 1;
	}
	if (argc - optind == 1 && !o.backing) {
		log_err("%s: a size is needed without a backing file",
			argv[optind]);
		return 1;
	}
	return qcow2_create(argv[optind], &o) < 0 ? 1 : 0;
}

static void print_layer(const struct qcow2_layer *l)
{
	char h[32];

	printf("image: %s\n", l->path);
	printf("file format: %s\n", l->format);
	printf("virtual size: %s (%" PRIu64 " bytes)\n",
	       human(l->virtual_size, h, sizeof(h)), l->virtual_size);
	printf("file size: %s (%" PRIu64 " bytes)\n",
	       human(l->file_size, h, sizeof(h)), l->file_size);
	if (strcmp(l->format, "qcow2") != 0)
		return;
	printf("cluster size: %" PRIu32 "\n", l->cluster_size);
	printf("qcow2 version: %u\n", l->version);
	printf("refcount bits: %u\n", l->refcount_bits);
	printf("cleanly closed: %s\n", l->dirty ? "no" : "yes");
	if (l->backing)
		printf("backing file: %s\n", l->backing);
	if (l->backing_fmt)
		printf("backing file format: %s\n", l->backing_fmt);
}

static int cmd_info(int argc, char **argv)
{
	struct qcow2_layer *v;
	unsigned n, i;

	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		return 1;
	}
	if (qcow2_info(argv[1], &v, &n) < 0)
		return 1;
	for (i = 0; i < n; i++) {
		if (i)
			printf("\n");
		print_layer(&v[i]);
	}
	qcow2_info_free(v, n);
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	struct qcow2_check_result r;
	bool repair = false;
	int c;

	optind = 1;
	while ((c = getopt(argc, argv, "r:h")) != -1) {
		switch (c) {
		case 'r':
			if (strcmp(optarg, "leaks") && strcmp(optarg, "all")) {
				log_err("-r %s: leaks or all", optarg);
				return 1;
			}
			repair = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return 1;
	}
	if (qcow2_check(argv[optind], repair, &r) < 0)
		return 1;
	if (r.leaks_fixed)
		printf("Repaired %" PRIu64 " leaked clusters.\n",
		       r.leaks_fixed);
	if (r.errors)
		printf("%" PRIu64 " errors were found on the image.\n",
		       r.errors);
	if (r.leaks > r.leaks_fixed)
		printf("%" PRIu64 " leaked clusters were found on the image.\n",
		       r.leaks - r.leaks_fixed);
	if (!r.errors && r.leaks == r.leaks_fixed)
		printf("No errors were found on the image.\n");
	printf("%" PRIu64 "/%" PRIu64 " clusters referenced\n", r.referenced,
	       r.clusters);
	if (r.errors)
		return 2;
	return r.leaks > r.leaks_fixed ? 3 : 0;
}

int main(int argc, char **argv)
{
	log_init("khyve-img");
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "create"))
		return cmd_create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc - 1, argv + 1);
	log_err("unknown command '%s' (create, info, check)", argv[1]);
	return 1;
}
