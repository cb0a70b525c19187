/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the block layer (src/block): block options from the
 * config tree and the legacy "path,opts" form with every malformed value,
 * open errors, sector sizes, read/write round trips with multi-iovec
 * requests at random offsets checked against pread(2), flush ordering,
 * discard and write-zeroes, range and read-only refusals, the image lock,
 * O_DIRECT with misaligned buffers and offsets, the per-byte ordering of
 * overlapping requests, out-of-order completion, the queue limit,
 * blk_close() with requests in flight, the probed-raw sector-0 guard, and
 * a loop block device (root with losetup only).
 *
 * Image files live in /var/tmp (tmpfs may refuse O_DIRECT).  TAP calls
 * are made from the main thread only; done() hooks record, the main
 * thread checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block/blk.h"
#include "block/blk_backend.h"
#include "config/config.h"
#include "lib/log.h"
#include "tests/capture.h"
#include "tests/tap.h"

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define TMPDIR "/var/tmp"

/* ---- stderr capture ---- */

static struct capture cap;

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Exactly one line, containing 'want'. */
static bool one_line_with(const char *s, const char *want)
{
	return count_lines(s) == 1 && strstr(s, want) != NULL;
}

/* Show captured text as TAP comments. */
static void diag_text(const char *s)
{
	const char *nl;

	while (*s) {
		nl = strchr(s, '\n');
		if (!nl)
			nl = s + strlen(s);
		diag("stderr: %.*s", (int)(nl - s), s);
		s = *nl ? nl + 1 : nl;
	}
}

/* ok(): exactly one line on stderr, containing 'want'. */
#define ok_line(err, want, ...)                                                \
	do {                                                                   \
		if (!ok(one_line_with(err, want), __VA_ARGS__))                \
			diag_text(err);                                        \
	} while (0)

/* ---- random numbers (fixed seeds) ---- */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
	rng_state = s ? s : 1;
}

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static uint64_t rng_below(uint64_t n)
{
	return n ? rng() % n : 0;
}

static void rng_fill(uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)rng();
}

/* ---- image files ---- */

static char *img_new(uint64_t size, bool fill)
{
	char *path = strdup(TMPDIR "/t_blk.XXXXXX");
	uint8_t *buf;
	int fd;

	if (!path)
		abort();
	fd = mkstemp(path);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		abort();
	if (fill) {
		buf = malloc(size);
		if (!buf)
			abort();
		rng_fill(buf, size);
		if (pwrite(fd, buf, size, 0) != (ssize_t)size)
			abort();
		free(buf);
	}
	close(fd);
	return path;
}

static void img_del(char *path)
{
	unlink(path);
	free(path);
}

static uint8_t *img_read(const char *path, uint64_t *size)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		abort();
	buf = malloc((size_t)st.st_size + 1);
	if (!buf ||
	    pread(fd, buf, (size_t)st.st_size, 0) != (ssize_t)st.st_size)
		abort();
	close(fd);
	*size = (uint64_t)st.st_size;
	return buf;
}

static struct blk_opts opts_for(const char *path)
{
	struct blk_opts o;

	memset(&o, 0, sizeof(o));
	o.path = path;
	return o;
}

/* ---- requests ---- */

struct group {
	pthread_mutex_t m;
	pthread_cond_t c;
	int done;
};

struct treq {
	struct blk_req r;
	struct group *g;
	int err;
	atomic_int calls;
	struct iovec iov[8];
	uint8_t *data;	 /* write source / read destination */
	uint8_t *expect; /* reads: the model's bytes at submit time */
	uint64_t seq;	 /* completion order */
};

static atomic_uint_fast64_t done_seq;

static void group_init(struct group *g)
{
	pthread_mutex_init(&g->m, NULL);
	pthread_cond_init(&g->c, NULL);
	g->done = 0;
}

static void group_fini(struct group *g)
{
	pthread_cond_destroy(&g->c);
	pthread_mutex_destroy(&g->m);
}

static void treq_done(struct blk_req *r, int err)
{
	struct treq *t = (struct treq *)r;
	struct group *g = t->g;

	t->err = err;
	t->seq = atomic_fetch_add(&done_seq, 1);
	atomic_fetch_add(&t->calls, 1);
	pthread_mutex_lock(&g->m);
	g->done++;
	pthread_cond_broadcast(&g->c);
	pthread_mutex_unlock(&g->m);
}

/* Wait until 'n' requests of the group are done (30 s at most). */
static bool group_wait(struct group *g, int n)
{
	struct timespec ts;
	bool ok = true;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&g->m);
	while (g->done < n && ok)
		ok = pthread_cond_timedwait(&g->c, &g->m, &ts) == 0;
	ok = g->done >= n;
	pthread_mutex_unlock(&g->m);
	return ok;
}

static void treq_set(struct treq *t, struct group *g, enum blk_op op,
		     uint64_t off, uint64_t len)
{
	memset(&t->r, 0, sizeof(t->r));
	t->r.op = op;
	t->r.offset = off;
	t->r.len = len;
	t->r.done = treq_done;
	t->g = g;
	t->err = 1;
	atomic_store(&t->calls, 0);
}

/* Split [buf, buf+len) into 1..8 iovecs at random points. */
static void treq_split(struct treq *t, uint8_t *buf, uint64_t len)
{
	unsigned n = 1 + (unsigned)rng_below(8), i;
	uint64_t pos = 0, k;

	for (i = 0; i < n; i++) {
		k = i == n - 1 ? len - pos : rng_below(len - pos + 1);
		t->iov[i].iov_base = buf + pos;
		t->iov[i].iov_len = k;
		pos += k;
	}
	t->r.iov = t->iov;
	t->r.iovcnt = n;
}

/* Submit one request and wait for it: done()'s error, or submit's. */
static int run(struct blk *b, enum blk_op op, uint64_t off, uint64_t len,
	       struct iovec *iov, unsigned cnt)
{
	struct group g;
	struct treq t;
	int rc;

	group_init(&g);
	treq_set(&t, &g, op, off, len);
	t.r.iov = iov;
	t.r.iovcnt = cnt;
	rc = blk_submit(b, &t.r);
	if (rc == 0) {
		if (!group_wait(&g, 1))
			abort();
		rc = t.err;
		if (atomic_load(&t.calls) != 1)
			rc = -9999;
	}
	group_fini(&g);
	return rc;
}

static int run_buf(struct blk *b, enum blk_op op, uint64_t off, void *buf,
		   size_t len)
{
	struct iovec v = {.iov_base = buf, .iov_len = len};

	return run(b, op, off, len, &v, 1);
}

/* ---- options ---- */

static struct cfg_node *root;

static struct cfg_node *dev_node(const char *const kv[][2])
{
	struct cfg_node *n;
	unsigned i;

	cfg_unset(root, "pci");
	n = cfg_create(root, "pci.0.3.0");
	for (i = 0; kv && kv[i][0]; i++)
		cfg_set(n, kv[i][0], kv[i][1]);
	return n;
}

static void test_opts_valid(void)
{
	static const char *const all[][2] = {
		{"path", "/x/disk.img"},
		{"ro", "true"},
		{"nocache", "on"},
		{"sync", "no"},
		{"direct", "yes"},
		{"sectorsize", "512/4096"},
		{"nodelete", "1"},
		{"format", "raw"},
		{NULL, NULL},
	};
	static const char *const only_path[][2] = {
		{"path", "d.img"},
		{NULL, NULL},
	};
	static const char *const ss[][2] = {
		{"path", "d.img"},
		{"sectorsize", "4096"},
		{NULL, NULL},
	};
	struct blk_opts o;
	struct cfg_node *n;

	n = dev_node(all);
	is_int(blk_opts_from_cfg(n, &o), 0, "opts: every key accepted");
	is_str(o.path, "/x/disk.img", "opts: path");
	ok(o.ro && o.nocache && o.nodelete, "opts: ro, nocache, nodelete");
	ok(o.sync, "opts: direct is an alias of sync");
	is_int(o.lsector, 512, "opts: logical sector");
	is_int(o.psector, 4096, "opts: physical sector");
	is_str(o.format, "raw", "opts: format");

	n = dev_node(only_path);
	is_int(blk_opts_from_cfg(n, &o), 0, "opts: only a path");
	ok(!o.ro && !o.nocache && !o.sync && !o.nodelete && !o.lsector &&
		   !o.psector && !o.format,
	   "opts: defaults");

	n = dev_node(ss);
	is_int(blk_opts_from_cfg(n, &o), 0, "opts: sectorsize=4096");
	ok(o.lsector == 4096 && o.psector == 4096,
	   "opts: one size sets logical and physical");
}

static void test_opts_malformed(void)
{
	static const struct {
		const char *key, *val, *want;
	} bad[] = {
		{"ro", "maybe", "pci.0.3.0.ro"},
		{"nocache", "2", "pci.0.3.0.nocache"},
		{"sync", "yess", "pci.0.3.0.sync"},
		{"direct", "", "pci.0.3.0.direct"},
		{"nodelete", "off!", "pci.0.3.0.nodelete"},
		{"sectorsize", "", "pci.0.3.0.sectorsize"},
		{"sectorsize", "abc", "pci.0.3.0.sectorsize"},
		{"sectorsize", "0", "pci.0.3.0.sectorsize"},
		{"sectorsize", "256", "pci.0.3.0.sectorsize"},
		{"sectorsize", "8192", "pci.0.3.0.sectorsize"},
		{"sectorsize", "513", "pci.0.3.0.sectorsize"},
		{"sectorsize", "1536", "pci.0.3.0.sectorsize"},
		{"sectorsize", "4096/512", "pci.0.3.0.sectorsize"},
		{"sectorsize", "512/", "pci.0.3.0.sectorsize"},
		{"sectorsize", "512/abc", "pci.0.3.0.sectorsize"},
		{"sectorsize", "512/8192", "pci.0.3.0.sectorsize"},
		{"sectorsize", "512/1024/2048", "pci.0.3.0.sectorsize"},
		{"sectorsize", "-512", "pci.0.3.0.sectorsize"},
		{"sectorsize", "+512", "pci.0.3.0.sectorsize"},
		{"sectorsize", " 512", "pci.0.3.0.sectorsize"},
		{"sectorsize", "512 ", "pci.0.3.0.sectorsize"},
		{"sectorsize", "0x200", "pci.0.3.0.sectorsize"},
		{"sectorsize", "512x", "pci.0.3.0.sectorsize"},
		{"sectorsize", "99999999999999999999", "pci.0.3.0.sectorsize"},
		{"format", "vmdk", "pci.0.3.0.format: unknown format 'vmdk'"},
		{"format", "", "pci.0.3.0.format"},
		{"format", "RAW", "pci.0.3.0.format"},
		{"path", "", "pci.0.3.0.path"},
	};
	struct blk_opts o;
	struct cfg_node *n;
	const char *err;
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = dev_node(NULL);
		if (strcmp(bad[i].key, "path") != 0)
			cfg_set(n, "path", "disk.img");
		cfg_set(n, bad[i].key, bad[i].val);
		capture_begin(&cap, STDERR_FILENO);
		rc = blk_opts_from_cfg(n, &o);
		err = capture_end(&cap);
		is_int(rc, -EINVAL, "malformed %s='%s' refused", bad[i].key,
		       bad[i].val);
		ok_line(err, bad[i].want,
			"malformed %s='%s': one line naming it", bad[i].key,
			bad[i].val);
	}

	n = dev_node(NULL);
	capture_begin(&cap, STDERR_FILENO);
	rc = blk_opts_from_cfg(n, &o);
	err = capture_end(&cap);
	is_int(rc, -EINVAL, "no path refused");
	ok_line(err, "pci.0.3.0.path: missing",
		"no path: one line naming pci.0.3.0.path");

	n = dev_node(NULL);
	cfg_set(n, "path", "%(nosuch.key)");
	capture_begin(&cap, STDERR_FILENO);
	rc = blk_opts_from_cfg(n, &o);
	err = capture_end(&cap);
	is_int(rc, -EINVAL, "path with a broken %%() reference refused");
	is_int(count_lines(err), 1, "broken reference: one line");

	n = dev_node(NULL);
	cfg_set(n, "path.x", "1");
	capture_begin(&cap, STDERR_FILENO);
	rc = blk_opts_from_cfg(n, &o);
	err = capture_end(&cap);
	is_int(rc, -EINVAL, "path that is a node refused");
	ok_line(err, "pci.0.3.0.path", "path node: one line naming it");

	n = dev_node(NULL);
	cfg_set(n, "path", "d.img");
	cfg_set(n, "sectorsize.a", "512");
	capture_begin(&cap, STDERR_FILENO);
	rc = blk_opts_from_cfg(n, &o);
	err = capture_end(&cap);
	is_int(rc, -EINVAL, "sectorsize that is a node refused");
	ok_line(err, "pci.0.3.0.sectorsize", "sectorsize node: one line");
}

static void test_legacy(void)
{
	struct blk_opts o;
	struct cfg_node *n;
	const char *err;
	int rc;

	n = dev_node(NULL);
	is_int(blk_parse_legacy(n, "/img/d.img,ro,sectorsize=4096/4096,"
				   "nocache,direct"),
	       0, "legacy: parsed");
	is_str(cfg_get(n, "path"), "/img/d.img", "legacy: first token is path");
	is_str(cfg_get(n, "ro"), "true", "legacy: bare flag is true");
	is_str(cfg_get(n, "sectorsize"), "4096/4096", "legacy: k=v");
	is_int(blk_opts_from_cfg(n, &o), 0, "legacy: options valid");
	ok(o.ro && o.nocache && o.sync && o.lsector == 4096,
	   "legacy: options read back");

	n = dev_node(NULL);
	is_int(blk_parse_legacy(n, "a=b.img"), 0, "legacy: path with '='");
	is_str(cfg_get(n, "path"), "a=b.img", "legacy: '=' kept in path");
	ok(cfg_get_raw(n, "a") == NULL, "legacy: no key from the path");

	n = dev_node(NULL);
	is_int(blk_parse_legacy(n, NULL), 0, "legacy: NULL opts");
	is_int(blk_parse_legacy(n, ""), 0, "legacy: empty opts");
	ok(cfg_get_raw(n, "path") == NULL, "legacy: nothing set");

	n = dev_node(NULL);
	is_int(blk_parse_legacy(n, "d.img,,ro,"), 0,
	       "legacy: empty items skipped");
	is_str(cfg_get(n, "ro"), "true", "legacy: ro after empty item");

	n = dev_node(NULL);
	capture_begin(&cap, STDERR_FILENO);
	rc = blk_parse_legacy(n, "d.img,=x");
	err = capture_end(&cap);
	is_int(rc, -EINVAL, "legacy: empty option name refused");
	is_int(count_lines(err), 1, "legacy: one error line");

	n = dev_node(NULL);
	is_int(blk_parse_legacy(n, "d.img,sectorsize=100"), 0,
	       "legacy: bad value stored");
	capture_begin(&cap, STDERR_FILENO);
	rc = blk_opts_from_cfg(n, &o);
	err = capture_end(&cap);
	is_int(rc, -EINVAL, "legacy: bad value caught when read");
	ok_line(err, "pci.0.3.0.sectorsize",
		"legacy: error names the full key");
}

static void test_schema(void)
{
	static const struct cfg_key vblk_keys[] = {
		BLK_CFG_KEYS,
		{"ser", CFG_STRING, NULL, "serial", 0, 0, 0},
		{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
	};
	static const struct cfg_key ahci_keys[] = {
		BLK_CFG_KEYS_AT("port.*."),
		{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
	};
	const struct cfg_key *const s1[] = {blk_cfg_keys, NULL};
	const struct cfg_key *const s2[] = {vblk_keys, NULL};
	const struct cfg_key *const s3[] = {ahci_keys, NULL};
	static const char *const keys[] = {"path",     "ro",	 "nocache",
					   "sync",     "direct", "sectorsize",
					   "nodelete", "format"};
	struct cfg_node *n;
	const char *err;
	unsigned i;
	int rc;

	n = dev_node(NULL);
	for (i = 0; i < 8; i++)
		cfg_set(n, keys[i],
			strcmp(keys[i], "path") == 0 ||
					strcmp(keys[i], "format") == 0 ||
					strcmp(keys[i], "sectorsize") == 0
				? "512"
				: "true");
	is_int(cfg_check(n, s1), 0, "schema: every block key known");
	cfg_set(n, "ser", "ABC");
	is_int(cfg_check(n, s2), 0, "schema: BLK_CFG_KEYS merges with ser");
	capture_begin(&cap, STDERR_FILENO);
	rc = cfg_check(n, s1);
	err = capture_end(&cap);
	is_int(rc, -EINVAL, "schema: ser unknown to the bare table");
	ok_line(err, "pci.0.3.0.ser", "schema: names the key");

	n = dev_node(NULL);
	cfg_set(n, "port.0.path", "a.img");
	cfg_set(n, "port.1.ro", "true");
	is_int(cfg_check(n, s3), 0, "schema: BLK_CFG_KEYS_AT(port.*.)");
	cfg_set(n, "port.1.ro", "perhaps");
	capture_begin(&cap, STDERR_FILENO);
	rc = cfg_check(n, s3);
	capture_end(&cap);
	is_int(rc, -EINVAL, "schema: bool type checked");
}

/* ---- open ---- */

static int open_capture(const struct blk_opts *o, struct blk **b,
			const char **err)
{
	int rc;

	capture_begin(&cap, STDERR_FILENO);
	rc = blk_open(o, 2, b);
	*err = capture_end(&cap);
	return rc;
}

static void test_open_basic(void)
{
	char *path = img_new(MIB + 1000, true);
	struct blk_opts o = opts_for(path);
	struct stat st;
	struct blk *b;
	unsigned phys;

	stat(path, &st);
	phys = st.st_blksize >= 4096 ? 4096 : 512;
	is_int(blk_open(&o, 0, &b), 0, "open: plain file");
	is_int(blk_size(b), MIB + 1000, "open: size in bytes");
	is_int(blk_lsector(b), 512, "open: logical sector 512");
	is_int(blk_psector(b), phys, "open: physical = fs block");
	ok(!blk_readonly(b), "open: writable");
	ok(blk_can_discard(b), "open: discard available on %s", TMPDIR);
	is_str(blk_format(b), "raw", "open: probed raw");
	is_str(blk_path(b), path, "open: path");
	blk_close(b);

	o.lsector = 4096;
	o.psector = 4096;
	is_int(blk_open(&o, 1, &b), 0, "open: sectorsize 4096");
	ok(blk_lsector(b) == 4096 && blk_psector(b) == 4096, "open: 4096/4096");
	blk_close(b);

	o.lsector = 512;
	o.psector = 0;
	o.nodelete = true;
	o.format = "raw";
	is_int(blk_open(&o, 1, &b), 0, "open: nodelete, format=raw");
	ok(!blk_can_discard(b), "open: nodelete disables discard");
	is_int(blk_psector(b), phys, "open: auto physical >= logical");
	blk_close(b);

	o = opts_for(path);
	o.sync = true;
	is_int(blk_open(&o, BLK_MAX_WORKERS + 10, &b), 0,
	       "open: sync, too many workers clamped");
	blk_close(b);
	blk_close(NULL);
	img_del(path);
}

static void test_open_errors(void)
{
	char *path = img_new(64 * KIB, false);
	char dir[] = TMPDIR "/t_blk.dir.XXXXXX";
	struct blk_opts o = opts_for("/nonexistent/t_blk/disk.img");
	const char *err;
	struct blk *b = (struct blk *)&o;
	uint8_t magic[8] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
	int fd, rc;

	rc = open_capture(&o, &b, &err);
	is_int(rc, -ENOENT, "open: missing file");
	ok(b == NULL, "open: *out cleared on error");
	ok_line(err, "/nonexistent/t_blk/disk.img: No such file",
		"open: missing file named");

	if (!mkdtemp(dir))
		abort();
	o = opts_for(dir);
	o.ro = true;
	rc = open_capture(&o, &b, &err);
	is_int(rc, -EINVAL, "open: directory refused");
	ok_line(err, "not a regular file or block device",
		"open: directory: one line");
	rmdir(dir);

	o = opts_for("/dev/null");
	rc = open_capture(&o, &b, &err);
	is_int(rc, -EINVAL, "open: character device refused");
	ok_line(err, "/dev/null: not a regular file or block device",
		"open: char device: one line");

	o = opts_for(NULL);
	rc = open_capture(&o, &b, &err);
	is_int(rc, -EINVAL, "open: NULL path");
	is_int(count_lines(err), 1, "open: NULL path: one line");

	o = opts_for(path);
	o.lsector = 1000;
	rc = open_capture(&o, &b, &err);
	is_int(rc, -EINVAL, "open: bad logical sector");
	ok_line(err, path, "open: bad sector names the path");
	o.lsector = 4096;
	o.psector = 512;
	rc = open_capture(&o, &b, &err);
	is_int(rc, -EINVAL, "open: physical < logical");
	ok_line(err, "smaller than the logical",
		"open: physical < logical: one line");

	o = opts_for(path);
	o.format = "qcow2";
	rc = open_capture(&o, &b, &err);
	is_int(rc, -EINVAL, "open: format=qcow2 on a raw file");
	ok_line(err, "no qcow2 magic", "open: format=qcow2: one line");
	o.format = "cow";
	rc = open_capture(&o, &b, &err);
	is_int(rc, -EINVAL, "open: unknown format");
	ok_line(err, "unknown format 'cow'", "open: names it");

	fd = open(path, O_WRONLY);
	if (fd < 0 || pwrite(fd, magic, sizeof(magic), 0) != 8)
		abort();
	close(fd);
	o = opts_for(path);
	rc = open_capture(&o, &b, &err);
	is_int(rc, -EINVAL, "open: probed qcow2 magic, bad header refused");
	ok_line(err, "invalid qcow2 header", "open: probed qcow2: one line");
	o.format = "raw";
	rc = open_capture(&o, &b, &err);
	is_int(rc, 0, "open: qcow2 magic with format=raw opens as raw");
	is_int(count_lines(err), 0, "open: no message");
	if (rc == 0)
		blk_close(b);
	img_del(path);
}

/* ---- I/O ---- */

/* Random multi-iovec writes and reads at random byte offsets, each read
 * checked against pread(2) on the file and the model. */
static void roundtrip(const char *what, struct blk_opts *o, uint64_t size,
		      uint64_t maxlen, uint64_t align, unsigned rounds)
{
	struct blk *b;
	uint8_t *model, *wbuf, *rbuf, *fbuf, *file;
	uint64_t off, len, fsize;
	unsigned i, bad_io = 0, bad_cmp = 0, bad_file = 0, bufoff;
	struct treq t;
	struct group g;
	int fd;

	if (blk_open(o, 4, &b) != 0) {
		ok(0, "%s: open", what);
		return;
	}
	model = img_read(o->path, &fsize);
	wbuf = malloc(maxlen + 64);
	rbuf = malloc(maxlen + 64);
	fbuf = malloc(maxlen + 64);
	fd = open(o->path, O_RDONLY);
	if (!wbuf || !rbuf || !fbuf || fd < 0)
		abort();
	group_init(&g);
	for (i = 0; i < rounds; i++) {
		len = 1 + rng_below(maxlen);
		if (align > 1)
			len = (len + align - 1) / align * align;
		if (len > size)
			len = size;
		off = rng_below(size - len + 1);
		if (align > 1)
			off = off / align * align;
		/* Misalign the buffers on purpose now and then. */
		bufoff = (unsigned)rng_below(4) == 0 ? (unsigned)rng_below(64)
						     : 0;
		rng_fill(wbuf + bufoff, len);
		g.done = 0;
		treq_set(&t, &g, BLK_WRITE, off, 0);
		treq_split(&t, wbuf + bufoff, len);
		if (blk_submit(b, &t.r) || !group_wait(&g, 1) || t.err) {
			bad_io++;
			continue;
		}
		memcpy(model + off, wbuf + bufoff, len);
		memset(rbuf, 0xee, maxlen + 64);
		g.done = 0;
		treq_set(&t, &g, BLK_READ, off, 0);
		treq_split(&t, rbuf + bufoff, len);
		if (blk_submit(b, &t.r) || !group_wait(&g, 1) || t.err ||
		    t.r.len != len) {
			bad_io++;
			continue;
		}
		if (memcmp(rbuf + bufoff, model + off, len))
			bad_cmp++;
		if (pread(fd, fbuf, len, (off_t)off) != (ssize_t)len ||
		    memcmp(fbuf, model + off, len))
			bad_file++;
	}
	blk_close(b);
	file = img_read(o->path, &len);
	is_int(bad_io, 0, "%s: %u requests completed with 0", what, rounds * 2);
	is_int(bad_cmp, 0, "%s: reads return what was written", what);
	is_int(bad_file, 0, "%s: pread on the file agrees", what);
	is_int(len, fsize, "%s: file size unchanged", what);
	ok(len == fsize && memcmp(file, model, fsize) == 0,
	   "%s: whole file equals the model", what);
	free(file);
	close(fd);
	group_fini(&g);
	free(model);
	free(wbuf);
	free(rbuf);
	free(fbuf);
}

static void test_roundtrip(void)
{
	char *path = img_new(4 * MIB + 100, true);
	struct blk_opts o = opts_for(path);

	rng_seed(0x5eed1);
	roundtrip("buffered", &o, 4 * MIB + 100, 256 * KIB, 1, 300);
	o.sync = true;
	roundtrip("sync", &o, 4 * MIB + 100, 64 * KIB, 512, 50);
	img_del(path);
}

/* A huge iovec count (beyond IOV_MAX) and empty iovecs. */
static void test_many_iovecs(void)
{
	char *path = img_new(MIB, true);
	struct blk_opts o = opts_for(path);
	enum { N = 3000 };
	struct iovec *v = calloc(N, sizeof(*v));
	uint8_t *src = malloc(N * 16), *dst = malloc(N * 16), *file;
	uint64_t pos = 0, fsize;
	struct blk *b;
	unsigned i;

	if (!v || !src || !dst)
		abort();
	rng_fill(src, N * 16);
	for (i = 0; i < N; i++) {
		v[i].iov_base = src + pos;
		v[i].iov_len = i % 7 == 3 ? 0 : 1 + rng_below(16);
		pos += v[i].iov_len;
	}
	is_int(blk_open(&o, 2, &b), 0, "iovecs: open");
	is_int(run(b, BLK_WRITE, 777, 0, v, N), 0,
	       "iovecs: write of %d iovecs (%llu bytes)", N,
	       (unsigned long long)pos);
	for (i = 0; i < N; i++)
		v[i].iov_base = dst + ((uint8_t *)v[i].iov_base - src);
	is_int(run(b, BLK_READ, 777, 0, v, N), 0, "iovecs: read back");
	ok(memcmp(src, dst, pos) == 0, "iovecs: data matches");
	blk_close(b);
	file = img_read(path, &fsize);
	ok(memcmp(file + 777, src, pos) == 0, "iovecs: file matches");
	free(file);
	free(v);
	free(src);
	free(dst);
	img_del(path);
}

/* Flush: its done() sees every earlier write in the file. */
struct flush_ctx {
	struct treq t;
	const char *path;
	const uint8_t *want;
	uint64_t len;
	int match;
};

static void flush_done(struct blk_req *r, int err)
{
	struct flush_ctx *c = (struct flush_ctx *)r;
	uint8_t *buf = malloc(c->len);
	int fd = open(c->path, O_RDONLY);

	c->match = buf && fd >= 0 &&
		   pread(fd, buf, c->len, 0) == (ssize_t)c->len &&
		   memcmp(buf, c->want, c->len) == 0;
	if (fd >= 0)
		close(fd);
	free(buf);
	treq_done(r, err);
}

static void test_flush(void)
{
	enum { NW = 64, CH = 16 * 1024 };
	char *path = img_new(NW * CH, false);
	struct blk_opts o = opts_for(path);
	static struct treq w[NW];
	struct flush_ctx fc;
	uint8_t *data = malloc(NW * CH);
	struct group g;
	struct blk *b;
	unsigned i, bad = 0;

	if (!data)
		abort();
	rng_seed(77);
	rng_fill(data, NW * CH);
	group_init(&g);
	is_int(blk_open(&o, 4, &b), 0, "flush: open");
	for (i = 0; i < NW; i++) {
		treq_set(&w[i], &g, BLK_WRITE, (uint64_t)i * CH, 0);
		w[i].iov[0].iov_base = data + (size_t)i * CH;
		w[i].iov[0].iov_len = CH;
		w[i].r.iov = w[i].iov;
		w[i].r.iovcnt = 1;
		bad += blk_submit(b, &w[i].r) != 0;
	}
	memset(&fc, 0, sizeof(fc));
	treq_set(&fc.t, &g, BLK_FLUSH, 0, 0);
	fc.t.r.done = flush_done;
	fc.path = path;
	fc.want = data;
	fc.len = NW * CH;
	bad += blk_submit(b, &fc.t.r) != 0;
	ok(bad == 0 && group_wait(&g, NW + 1), "flush: all submitted, done");
	is_int(fc.t.err, 0, "flush: completed with 0");
	ok(fc.match, "flush: every earlier write was in the file first");
	for (i = 0, bad = 0; i < NW; i++)
		bad += w[i].err != 0 || atomic_load(&w[i].calls) != 1;
	is_int(bad, 0, "flush: writes completed once with 0");
	is_int(run(b, BLK_FLUSH, 0, 0, NULL, 0), 0, "flush: alone");
	blk_close(b);
	group_fini(&g);
	free(data);
	img_del(path);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static void test_discard_zeroes(void)
{
	char *path = img_new(8 * MIB, true);
	struct blk_opts o = opts_for(path);
	uint8_t *before, *after, *buf = malloc(4 * MIB);
	uint64_t n;
	struct stat st1, st2;
	struct blk *b;

	if (!buf)
		abort();
	before = img_read(path, &n);
	is_int(blk_open(&o, 2, &b), 0, "discard: open");
	stat(path, &st1);
	is_int(run(b, BLK_DISCARD, MIB, 4 * MIB, NULL, 0), 0, "discard: 4 MiB");
	memset(buf, 0xaa, 4 * MIB);
	is_int(run_buf(b, BLK_READ, MIB, buf, 4 * MIB), 0,
	       "discard: read back");
	ok(all_zero(buf, 4 * MIB), "discard: range reads zeros");
	stat(path, &st2);
	ok(st2.st_blocks + (off_t)(4 * MIB / 512) <= st1.st_blocks,
	   "discard: file sparser (%lld -> %lld blocks)",
	   (long long)st1.st_blocks, (long long)st2.st_blocks);
	is_int(st2.st_size, 8 * MIB, "discard: size kept");

	is_int(run(b, BLK_WRITE_ZEROES, 6 * MIB + 7, 100, NULL, 0), 0,
	       "write-zeroes: 100 bytes at an odd offset");
	is_int(run(b, BLK_WRITE_ZEROES, 7 * MIB, MIB, NULL, 0), 0,
	       "write-zeroes: last MiB");
	is_int(run(b, BLK_DISCARD, 100, 0, NULL, 0), 0, "discard: zero length");
	is_int(run(b, BLK_WRITE_ZEROES, 100, 0, NULL, 0), 0,
	       "write-zeroes: zero length");
	blk_close(b);
	after = img_read(path, &n);
	memset(before + MIB, 0, 4 * MIB);
	memset(before + 6 * MIB + 7, 0, 100);
	memset(before + 7 * MIB, 0, MIB);
	ok(n == 8 * MIB && memcmp(before, after, n) == 0,
	   "discard/write-zeroes: exactly the ranges changed");
	free(after);

	o.nodelete = true;
	is_int(blk_open(&o, 1, &b), 0, "nodelete: open");
	is_int(run(b, BLK_DISCARD, 0, 4096, NULL, 0), -EOPNOTSUPP,
	       "nodelete: discard -> -EOPNOTSUPP");
	is_int(run(b, BLK_WRITE_ZEROES, 0, 4096, NULL, 0), 0,
	       "nodelete: write-zeroes still works");
	blk_close(b);
	free(before);
	free(buf);
	img_del(path);
}

static void test_range(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	uint8_t *before, *after, buf[1024];
	struct iovec huge[2];
	uint64_t n1, n2;
	struct blk *b;

	before = img_read(path, &n1);
	is_int(blk_open(&o, 2, &b), 0, "range: open");
	is_int(run_buf(b, BLK_READ, 64 * KIB - 512, buf, 1024), -EINVAL,
	       "range: read across the end");
	is_int(run_buf(b, BLK_WRITE, 64 * KIB - 512, buf, 1024), -EINVAL,
	       "range: write across the end");
	is_int(run_buf(b, BLK_WRITE, 64 * KIB + 1, buf, 1), -EINVAL,
	       "range: write past the end");
	is_int(run_buf(b, BLK_WRITE, UINT64_MAX - 10, buf, 512), -EINVAL,
	       "range: offset+len wraps");
	is_int(run(b, BLK_DISCARD, 60 * KIB, 8 * KIB, NULL, 0), -EINVAL,
	       "range: discard across the end");
	is_int(run(b, BLK_WRITE_ZEROES, UINT64_MAX, 2, NULL, 0), -EINVAL,
	       "range: write-zeroes wraps");
	huge[0].iov_base = buf;
	huge[0].iov_len = SIZE_MAX / 2 + 1;
	huge[1].iov_base = buf;
	huge[1].iov_len = SIZE_MAX / 2 + 1;
	is_int(run(b, BLK_WRITE, 0, 0, huge, 2), -EINVAL,
	       "range: iovec total overflows");
	is_int(run_buf(b, BLK_READ, 64 * KIB, buf, 0), 0,
	       "range: empty read at the end is fine");
	is_int(run_buf(b, BLK_READ, 64 * KIB - 1024, buf, 1024), 0,
	       "range: read of the last KiB");
	blk_close(b);
	after = img_read(path, &n2);
	ok(n1 == n2 && memcmp(before, after, n1) == 0,
	   "range: the file was not touched");
	free(before);
	free(after);
	img_del(path);
}

static void test_readonly(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	uint8_t buf[512], *before, *after;
	uint64_t n1, n2;
	struct blk *b;

	before = img_read(path, &n1);
	o.ro = true;
	is_int(blk_open(&o, 2, &b), 0, "ro: open");
	ok(blk_readonly(b), "ro: read-only");
	ok(!blk_can_discard(b), "ro: no discard");
	memset(buf, 1, sizeof(buf));
	is_int(run_buf(b, BLK_WRITE, 0, buf, 512), -EROFS, "ro: write");
	is_int(run(b, BLK_DISCARD, 0, 512, NULL, 0), -EROFS, "ro: discard");
	is_int(run(b, BLK_WRITE_ZEROES, 0, 512, NULL, 0), -EROFS,
	       "ro: write-zeroes");
	is_int(run_buf(b, BLK_READ, 512, buf, 512), 0, "ro: read");
	ok(memcmp(buf, before + 512, 512) == 0, "ro: read data");
	is_int(run(b, BLK_FLUSH, 0, 0, NULL, 0), 0, "ro: flush is fine");
	blk_close(b);
	after = img_read(path, &n2);
	ok(n1 == n2 && memcmp(before, after, n1) == 0, "ro: file untouched");
	free(before);
	free(after);
	img_del(path);
}

/*
 * The read-only fallback: as a user, a 0444 file; as root (which ignores
 * modes), a read-only bind mount in a private mount namespace of a child.
 */
static int ro_fallback_child(const char *path)
{
	struct blk_opts o = opts_for(path);
	uint8_t buf[512];
	const char *err;
	struct blk *b;
	int rc, bits = 0;

	rc = open_capture(&o, &b, &err);
	if (rc != 0)
		return 1;
	if (!blk_readonly(b))
		bits |= 2;
	if (!one_line_with(err, "opening read-only"))
		bits |= 4;
	if (run_buf(b, BLK_WRITE, 0, buf, 512) != -EROFS)
		bits |= 8;
	if (run_buf(b, BLK_READ, 0, buf, 512) != 0)
		bits |= 16;
	blk_close(b);
	return bits;
}

static void test_ro_fallback(void)
{
	char dir[] = TMPDIR "/t_blk.ro.XXXXXX";
	char path[sizeof(dir) + 16];
	int fd, status = 0;
	pid_t pid;

	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/disk.img", dir);
	fd = open(path, O_CREAT | O_RDWR, 0644);
	if (fd < 0 || ftruncate(fd, 64 * KIB) < 0)
		abort();
	close(fd);
	if (geteuid() != 0) {
		chmod(path, 0444);
		is_int(ro_fallback_child(path), 0,
		       "ro fallback: 0444 file opens read-only with a warning");
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount(dir, dir, NULL, MS_BIND, NULL) < 0 ||
		    mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY,
			  NULL) < 0)
			_exit(77);
		_exit(ro_fallback_child(path));
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
		ok(0, "ro fallback: child ran");
		goto out;
	}
	if (WEXITSTATUS(status) == 77) {
		ok(1, "# SKIP ro fallback: no private mount namespace as root");
		goto out;
	}
	is_int(WEXITSTATUS(status), 0,
	       "ro fallback: EROFS (read-only bind mount) opens read-only "
	       "with a warning, writes refused, reads work");
out:
	unlink(path);
	rmdir(dir);
}

static void test_lock(void)
{
	char *path = img_new(64 * KIB, false);
	char want[512];
	struct blk_opts o = opts_for(path), ro = opts_for(path);
	struct blk *b1, *b2, *b3;
	const char *err;
	int rc;

	ro.ro = true;
	snprintf(want, sizeof(want), "%s: in use by another process (locked)",
		 path);
	is_int(blk_open(&o, 1, &b1), 0, "lock: first read-write open");
	rc = open_capture(&o, &b2, &err);
	is_int(rc, -EBUSY, "lock: second read-write open refused");
	ok_line(err, want, "lock: message");
	rc = open_capture(&ro, &b2, &err);
	is_int(rc, -EBUSY, "lock: read-only open of a written image refused");
	ok_line(err, want, "lock: same message");
	blk_close(b1);

	is_int(blk_open(&ro, 1, &b1), 0, "lock: read-only open");
	is_int(blk_open(&ro, 1, &b2), 0, "lock: read-only + read-only");
	rc = open_capture(&o, &b3, &err);
	is_int(rc, -EBUSY, "lock: read-write open of a shared image refused");
	ok_line(err, want, "lock: message again");
	blk_close(b1);
	blk_close(b2);
	is_int(blk_open(&o, 1, &b1), 0, "lock: released on close");
	blk_close(b1);
	img_del(path);
}

/* ---- O_DIRECT ---- */

static void test_nocache(void)
{
	char *path = img_new(4 * MIB + 512, true);
	struct blk_opts o = opts_for(path);
	uint8_t *raw, *buf;
	uint64_t fsize;
	const char *err;
	struct blk *b;
	int rc;

	o.nocache = true;
	rc = open_capture(&o, &b, &err);
	if (rc == -EINVAL && strstr(err, "O_DIRECT")) {
		ok(1, "# SKIP nocache: %s refuses O_DIRECT", TMPDIR);
		img_del(path);
		return;
	}
	is_int(rc, 0, "nocache: open with O_DIRECT");
	if (rc)
		return;
	/* A misaligned buffer, offset and length, then the last sector. */
	raw = malloc(3 * MIB + 64);
	buf = raw + 3;
	memset(buf, 0x5a, 3 * MIB);
	is_int(run_buf(b, BLK_WRITE, 4096, buf, 3 * MIB), 0,
	       "nocache: 3 MiB write from an odd address (bounce)");
	is_int(run_buf(b, BLK_WRITE, 512 + 100, buf, 300), 0,
	       "nocache: 300 bytes at an odd offset");
	is_int(run_buf(b, BLK_WRITE, 4 * MIB, buf, 512), 0,
	       "nocache: the last 512 bytes (not a whole fs block)");
	memset(buf, 0, 3 * MIB);
	is_int(run_buf(b, BLK_READ, 4096, buf, 3 * MIB), 0,
	       "nocache: read back to an odd address");
	blk_close(b);
	ok(buf[0] == 0x5a && buf[3 * MIB - 1] == 0x5a, "nocache: data read");
	free(raw);
	raw = img_read(path, &fsize);
	is_int(fsize, 4 * MIB + 512, "nocache: file size unchanged");
	ok(raw[4096] == 0x5a && raw[4096 + 3 * MIB - 1] == 0x5a &&
		   raw[612] == 0x5a && raw[911] == 0x5a &&
		   raw[4 * MIB] == 0x5a && raw[4 * MIB + 511] == 0x5a,
	   "nocache: file holds the data");
	free(raw);

	rng_seed(0xd10);
	roundtrip("nocache 512-aligned", &o, 4 * MIB + 512, 128 * KIB, 512,
		  150);
	roundtrip("nocache any alignment", &o, 4 * MIB + 512, 64 * KIB, 1, 150);
	o.sync = true;
	roundtrip("nocache+sync", &o, 4 * MIB + 512, 64 * KIB, 4096, 30);
	img_del(path);
}

/* ---- a gated test format: I/O at offsets >= GATE_OFF waits ---- */

#define GATE_OFF (32 * KIB)

static struct {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool closed;
	int waiting; /* requests held at the gate now */
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};

static void gate_pass(uint64_t off)
{
	if (off < GATE_OFF)
		return;
	pthread_mutex_lock(&gate.m);
	gate.waiting++;
	pthread_cond_broadcast(&gate.c);
	while (gate.closed)
		pthread_cond_wait(&gate.c, &gate.m);
	gate.waiting--;
	pthread_mutex_unlock(&gate.m);
}

static void gate_set(bool closed)
{
	pthread_mutex_lock(&gate.m);
	gate.closed = closed;
	pthread_cond_broadcast(&gate.c);
	pthread_mutex_unlock(&gate.m);
}

/* Wait (5 s at most) until exactly 'n' requests are held. */
static bool gate_wait_held(int n)
{
	struct timespec ts;
	bool ok_;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&gate.m);
	while (gate.waiting != n &&
	       pthread_cond_timedwait(&gate.c, &gate.m, &ts) == 0)
		;
	ok_ = gate.waiting == n;
	pthread_mutex_unlock(&gate.m);
	return ok_;
}

static int gate_held(void)
{
	int n;

	pthread_mutex_lock(&gate.m);
	n = gate.waiting;
	pthread_mutex_unlock(&gate.m);
	return n;
}

static const struct blk_backend_ops gate_ops;

static int gate_probe(const uint8_t *hdr, size_t n)
{
	(void)hdr;
	(void)n;
	return 0; /* only by format=t-gate */
}

static int gate_open(struct blk_backend **out, struct blk_file *f,
		     const struct blk_opts *o)
{
	struct blk_backend *be = calloc(1, sizeof(*be));

	(void)o;
	if (!be)
		return -ENOMEM;
	be->ops = &gate_ops;
	be->file = f;
	be->lock_align = 1;
	be->can_discard = blk_file_can_discard(f);
	*out = be;
	return 0;
}

static int gate_preadv(struct blk_backend *be, const struct iovec *iov,
		       unsigned cnt, uint64_t off)
{
	gate_pass(off);
	return blk_file_preadv(be->file, iov, cnt, off);
}

static int gate_pwritev(struct blk_backend *be, const struct iovec *iov,
			unsigned cnt, uint64_t off)
{
	gate_pass(off);
	return blk_file_pwritev(be->file, iov, cnt, off);
}

static int gate_flush(struct blk_backend *be)
{
	return blk_file_flush(be->file);
}

static int gate_discard(struct blk_backend *be, uint64_t off, uint64_t len)
{
	gate_pass(off);
	return blk_file_discard(be->file, off, len);
}

static int gate_zeroes(struct blk_backend *be, uint64_t off, uint64_t len)
{
	gate_pass(off);
	return blk_file_write_zeroes(be->file, off, len);
}

static uint64_t gate_size(struct blk_backend *be)
{
	return be->file->size;
}

static void gate_close(struct blk_backend *be)
{
	free(be);
}

static const struct blk_backend_ops gate_ops = {
	.name = "t-gate",
	.probe = gate_probe,
	.open = gate_open,
	.preadv = gate_preadv,
	.pwritev = gate_pwritev,
	.flush = gate_flush,
	.discard = gate_discard,
	.write_zeroes = gate_zeroes,
	.size = gate_size,
	.close = gate_close,
};
BLK_FORMAT_SET(gate_ops);

static bool t_done(struct treq *t)
{
	return atomic_load(&t->calls) != 0;
}

static void treq_buf(struct treq *t, struct group *g, enum blk_op op,
		     uint64_t off, uint8_t *buf, size_t len)
{
	treq_set(t, g, op, off, 0);
	t->iov[0].iov_base = buf;
	t->iov[0].iov_len = len;
	t->r.iov = t->iov;
	t->r.iovcnt = 1;
}

/*
 * With a write held at the gate: overlapping requests wait (they never
 * reach the backend), others run and complete before it, FLUSH waits.
 */
static void test_gated_order(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	static struct treq w1, w2, w3, r1, r2, r3, f, z;
	static uint8_t b_w1[4096], b_w2[100], b_w3[10], b_r1[100], b_r2[512],
		b_r3[512];
	uint8_t *file, *model;
	uint64_t n;
	struct group g;
	struct blk *b;

	group_init(&g);
	o.format = "t-gate";
	is_int(blk_open(&o, 4, &b), 0, "gated: open a test format");
	if (!b)
		return;
	model = img_read(path, &n);
	memset(b_w1, 0x11, sizeof(b_w1));
	memset(b_w2, 0x22, sizeof(b_w2));
	memset(b_w3, 0x33, sizeof(b_w3));
	gate_set(true);
	treq_buf(&w1, &g, BLK_WRITE, GATE_OFF, b_w1, sizeof(b_w1));
	blk_submit(b, &w1.r);
	ok(gate_wait_held(1), "gated: W1 held in the backend");
	treq_buf(&r1, &g, BLK_READ, GATE_OFF + 1000, b_r1, sizeof(b_r1));
	blk_submit(b, &r1.r);
	treq_buf(&r2, &g, BLK_READ, 0, b_r2, sizeof(b_r2));
	blk_submit(b, &r2.r);
	treq_buf(&w2, &g, BLK_WRITE, 1000, b_w2, sizeof(b_w2));
	blk_submit(b, &w2.r);
	treq_set(&f, &g, BLK_FLUSH, 0, 0);
	blk_submit(b, &f.r);
	treq_buf(&w3, &g, BLK_WRITE, GATE_OFF + 4000, b_w3, sizeof(b_w3));
	blk_submit(b, &w3.r);
	treq_set(&z, &g, BLK_WRITE_ZEROES, GATE_OFF + 4090, 20);
	blk_submit(b, &z.r);
	treq_buf(&r3, &g, BLK_READ, GATE_OFF + 8192, b_r3, sizeof(b_r3));
	blk_submit(b, &r3.r);
	ok(group_wait(&g, 2), "gated: R2 and W2 (no overlap) complete");
	ok(t_done(&r2) && t_done(&w2), "gated: ... before the held W1");
	ok(gate_wait_held(2), "gated: R3 (gated, no overlap) runs");
	usleep(100 * 1000);
	is_int(gate_held(), 2, "gated: R1, W3 and ZEROES never reached it");
	ok(!t_done(&w1) && !t_done(&r1) && !t_done(&w3) && !t_done(&z),
	   "gated: the overlapping requests wait for W1");
	ok(!t_done(&f), "gated: FLUSH waits for the earlier write");
	gate_set(false);
	ok(group_wait(&g, 8), "gated: everything completes once opened");
	ok(w1.err == 0 && r1.err == 0 && w3.err == 0 && z.err == 0 &&
		   f.err == 0 && r3.err == 0,
	   "gated: all with 0");
	ok(memcmp(b_r1, b_w1, sizeof(b_r1)) == 0, "gated: R1 saw W1's data");
	blk_close(b);
	memcpy(model + GATE_OFF, b_w1, sizeof(b_w1));
	memcpy(model + 1000, b_w2, sizeof(b_w2));
	memcpy(model + GATE_OFF + 4000, b_w3, sizeof(b_w3));
	memset(model + GATE_OFF + 4090, 0, 20);
	file = img_read(path, &n);
	ok(memcmp(file, model, n) == 0, "gated: file in submission order");
	free(file);
	free(model);
	group_fini(&g);
	img_del(path);
}

struct closer {
	struct blk *b;
	atomic_bool returned;
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	blk_close(c->b);
	atomic_store(&c->returned, true);
	return NULL;
}

/* blk_close() waits for a held request; submissions meanwhile fail. */
static void test_gated_close(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	static struct treq w, late;
	static uint8_t buf[512], rbuf[64];
	struct closer c;
	struct group g;
	pthread_t th;
	int rc = 0, tries;

	group_init(&g);
	o.format = "t-gate";
	is_int(blk_open(&o, 2, &c.b), 0, "gated close: open");
	if (!c.b)
		return;
	atomic_store(&c.returned, false);
	gate_set(true);
	treq_buf(&w, &g, BLK_WRITE, GATE_OFF, buf, sizeof(buf));
	blk_submit(c.b, &w.r);
	ok(gate_wait_held(1), "gated close: a write is held");
	pthread_create(&th, NULL, closer_main, &c);
	/* Until blk_close() has started, a submission is still accepted
	 * (an ungated one completes); then -ESHUTDOWN. */
	for (tries = 0; tries < 2000; tries++) {
		treq_buf(&late, &g, BLK_READ, 0, rbuf, sizeof(rbuf));
		rc = blk_submit(c.b, &late.r);
		if (rc != 0)
			break;
		while (!t_done(&late))
			usleep(100);
		usleep(1000);
	}
	is_int(rc, -ESHUTDOWN, "gated close: submit during close refused");
	usleep(50 * 1000);
	ok(!atomic_load(&c.returned), "gated close: waits for the held write");
	gate_set(false);
	pthread_join(th, NULL);
	ok(atomic_load(&c.returned) && t_done(&w) && w.err == 0,
	   "gated close: returned after the write completed");
	group_fini(&g);
	img_del(path);
}

/* ---- ordering ---- */

/*
 * Many requests at once over a small region: writes, reads, discards and
 * write-zeroes with overlapping ranges.  The final file must equal the
 * requests applied in submission order, and each read must see the
 * model as it was when the read was submitted.
 */
static void ordering(const char *what, struct blk_opts *o, unsigned nreq)
{
	enum { REGION = 64 * 1024 };
	struct treq *t = calloc(nreq, sizeof(*t));
	uint8_t *model, *file;
	uint64_t fsize, off, len, n;
	unsigned i, bad_sub = 0, bad_err = 0, bad_read = 0, bad_calls = 0;
	unsigned kind;
	struct group g;
	struct blk *b;

	if (!t)
		abort();
	group_init(&g);
	if (blk_open(o, 4, &b) != 0) {
		ok(0, "%s: open", what);
		return;
	}
	model = img_read(o->path, &fsize);
	for (i = 0; i < nreq; i++) {
		kind = (unsigned)rng_below(20);
		len = 1 + rng_below(8192);
		off = rng_below(REGION - len);
		if (o->nocache && rng_below(2)) {
			off &= ~511ULL;
			len = (len + 511) & ~511ULL;
		}
		if (kind < 12) {
			treq_set(&t[i], &g, BLK_WRITE, off, 0);
			t[i].data = malloc(len);
			rng_fill(t[i].data, len);
			treq_split(&t[i], t[i].data, len);
			memcpy(model + off, t[i].data, len);
		} else if (kind < 17) {
			treq_set(&t[i], &g, BLK_READ, off, 0);
			t[i].data = malloc(len);
			t[i].expect = malloc(len);
			memcpy(t[i].expect, model + off, len);
			treq_split(&t[i], t[i].data, len);
		} else if (kind < 18) {
			treq_set(&t[i], &g, BLK_DISCARD, off, len);
			memset(model + off, 0, len);
		} else if (kind < 19) {
			treq_set(&t[i], &g, BLK_WRITE_ZEROES, off, len);
			memset(model + off, 0, len);
		} else {
			treq_set(&t[i], &g, BLK_FLUSH, 0, 0);
		}
		bad_sub += blk_submit(b, &t[i].r) != 0;
	}
	ok(bad_sub == 0 && group_wait(&g, (int)nreq),
	   "%s: %u requests submitted at once and done", what, nreq);
	blk_close(b);
	for (i = 0; i < nreq; i++) {
		bad_err += t[i].err != 0;
		bad_calls += atomic_load(&t[i].calls) != 1;
		n = t[i].r.len;
		if (t[i].expect && memcmp(t[i].data, t[i].expect, n))
			bad_read++;
		free(t[i].data);
		free(t[i].expect);
	}
	is_int(bad_err, 0, "%s: all completed with 0", what);
	is_int(bad_calls, 0, "%s: done() called once each", what);
	is_int(bad_read, 0, "%s: reads saw the writes submitted before", what);
	file = img_read(o->path, &n);
	ok(n == fsize && memcmp(file, model, n) == 0,
	   "%s: file equals the requests applied in submit order", what);
	free(file);
	free(model);
	free(t);
	group_fini(&g);
}

static void test_ordering(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	unsigned round;

	rng_seed(0x0bde);
	for (round = 0; round < 5; round++)
		ordering("ordering", &o, 300);
	img_del(path);
}

/* Same with O_DIRECT (misaligned requests exercise the widened ranges). */
static void test_ordering_nocache(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	struct blk *b;
	const char *err;

	o.nocache = true;
	if (open_capture(&o, &b, &err) != 0) {
		ok(1, "# SKIP ordering nocache: O_DIRECT refused");
		img_del(path);
		return;
	}
	blk_close(b);
	rng_seed(0xd1ec7);
	ordering("ordering nocache", &o, 300);
	ordering("ordering nocache", &o, 300);
	img_del(path);
}

/* Out of order: A's done() waits for B's, B submitted after A. */
struct ooo {
	struct treq t;
	pthread_mutex_t m;
	pthread_cond_t c;
	bool b_done;
	bool a_saw_b;
};

static struct ooo ooo_a, ooo_b;

static void ooo_a_done(struct blk_req *r, int err)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	pthread_mutex_lock(&ooo_a.m);
	while (!ooo_a.b_done &&
	       pthread_cond_timedwait(&ooo_a.c, &ooo_a.m, &ts) == 0)
		;
	ooo_a.a_saw_b = ooo_a.b_done;
	pthread_mutex_unlock(&ooo_a.m);
	treq_done(r, err);
}

static void ooo_b_done(struct blk_req *r, int err)
{
	treq_done(r, err);
	pthread_mutex_lock(&ooo_a.m);
	ooo_a.b_done = true;
	pthread_cond_broadcast(&ooo_a.c);
	pthread_mutex_unlock(&ooo_a.m);
}

static void test_out_of_order(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	uint8_t a[512], bb[512];
	struct group g;
	struct blk *b;

	group_init(&g);
	pthread_mutex_init(&ooo_a.m, NULL);
	pthread_cond_init(&ooo_a.c, NULL);
	is_int(blk_open(&o, 2, &b), 0, "out of order: open, 2 workers");
	treq_set(&ooo_a.t, &g, BLK_READ, 0, 0);
	ooo_a.t.r.done = ooo_a_done;
	ooo_a.t.iov[0].iov_base = a;
	ooo_a.t.iov[0].iov_len = sizeof(a);
	ooo_a.t.r.iov = ooo_a.t.iov;
	ooo_a.t.r.iovcnt = 1;
	treq_set(&ooo_b.t, &g, BLK_WRITE, 4096, 0);
	ooo_b.t.r.done = ooo_b_done;
	ooo_b.t.iov[0].iov_base = bb;
	ooo_b.t.iov[0].iov_len = sizeof(bb);
	ooo_b.t.r.iov = ooo_b.t.iov;
	ooo_b.t.r.iovcnt = 1;
	memset(bb, 3, sizeof(bb));
	is_int(blk_submit(b, &ooo_a.t.r), 0, "out of order: submit A");
	is_int(blk_submit(b, &ooo_b.t.r), 0, "out of order: submit B");
	ok(group_wait(&g, 2), "out of order: both done");
	ok(ooo_a.a_saw_b, "out of order: B completed while A's done() ran");
	ok(ooo_b.t.seq < ooo_a.t.seq, "out of order: B finished first");
	blk_close(b);
	group_fini(&g);
	img_del(path);
}

/* Queue limit: one worker held in a done() hook, then BLK_MAXREQ more. */
static pthread_mutex_t hold_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_c = PTHREAD_COND_INITIALIZER;
static bool hold_entered, hold_release;

static void hold_done(struct blk_req *r, int err)
{
	pthread_mutex_lock(&hold_m);
	hold_entered = true;
	pthread_cond_broadcast(&hold_c);
	while (!hold_release)
		pthread_cond_wait(&hold_c, &hold_m);
	pthread_mutex_unlock(&hold_m);
	treq_done(r, err);
}

static void test_queue_full(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	struct treq *t = calloc(BLK_MAXREQ + 2, sizeof(*t));
	uint8_t buf[512];
	unsigned i, bad = 0, calls = 0;
	struct group g;
	struct blk *b;

	if (!t)
		abort();
	group_init(&g);
	is_int(blk_open(&o, 1, &b), 0, "queue: open, one worker");
	treq_set(&t[0], &g, BLK_READ, 0, 0);
	t[0].r.done = hold_done;
	t[0].iov[0].iov_base = buf;
	t[0].iov[0].iov_len = sizeof(buf);
	t[0].r.iov = t[0].iov;
	t[0].r.iovcnt = 1;
	is_int(blk_submit(b, &t[0].r), 0, "queue: first request");
	pthread_mutex_lock(&hold_m);
	while (!hold_entered)
		pthread_cond_wait(&hold_c, &hold_m);
	pthread_mutex_unlock(&hold_m);
	for (i = 1; i <= BLK_MAXREQ; i++) {
		treq_set(&t[i], &g, BLK_FLUSH, 0, 0);
		bad += blk_submit(b, &t[i].r) != 0;
	}
	is_int(bad, 0, "queue: %d more accepted while the worker is busy",
	       BLK_MAXREQ);
	treq_set(&t[i], &g, BLK_FLUSH, 0, 0);
	is_int(blk_submit(b, &t[i].r), -EAGAIN, "queue: one more: -EAGAIN");
	pthread_mutex_lock(&hold_m);
	hold_release = true;
	pthread_cond_broadcast(&hold_c);
	pthread_mutex_unlock(&hold_m);
	ok(group_wait(&g, BLK_MAXREQ + 1), "queue: all complete");
	is_int(blk_submit(b, &t[i].r), 0, "queue: accepted again");
	ok(group_wait(&g, BLK_MAXREQ + 2), "queue: and done");
	for (i = 0; i <= BLK_MAXREQ + 1; i++)
		calls += (unsigned)atomic_load(&t[i].calls);
	is_int(calls, BLK_MAXREQ + 2, "queue: every done() exactly once");
	blk_close(b);
	free(t);
	group_fini(&g);
	img_del(path);
}

/* blk_close() with requests queued and running waits for all of them. */
static void test_close_inflight(void)
{
	enum { N = 600 };
	char *path = img_new(MIB, true);
	struct blk_opts o = opts_for(path);
	struct treq *t = calloc(N, sizeof(*t));
	uint8_t *model, *file;
	uint64_t fsize, n, off, len;
	unsigned i, bad = 0, calls = 0;
	struct group g;
	struct blk *b;

	if (!t)
		abort();
	group_init(&g);
	rng_seed(0xc105e);
	model = img_read(path, &fsize);
	is_int(blk_open(&o, 3, &b), 0, "close: open");
	for (i = 0; i < N; i++) {
		len = 1 + rng_below(32 * KIB);
		off = rng_below(MIB - len);
		treq_set(&t[i], &g, BLK_WRITE, off, 0);
		t[i].data = malloc(len);
		rng_fill(t[i].data, len);
		treq_split(&t[i], t[i].data, len);
		memcpy(model + off, t[i].data, len);
		bad += blk_submit(b, &t[i].r) != 0;
	}
	blk_close(b);
	is_int(bad, 0, "close: %d writes submitted", N);
	is_int(g.done, N, "close: returned after every done()");
	for (i = 0; i < N; i++) {
		calls += atomic_load(&t[i].calls) == 1 && t[i].err == 0;
		free(t[i].data);
	}
	is_int(calls, N, "close: each completed once with 0");
	file = img_read(path, &n);
	ok(n == fsize && memcmp(file, model, n) == 0,
	   "close: file equals the writes in order");
	free(file);
	free(model);
	free(t);
	group_fini(&g);
	img_del(path);
}

static void test_drain_and_submit_errors(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	static struct treq t[40];
	static uint8_t buf[40][4096];
	struct blk_req r;
	struct group g;
	struct blk *b;
	unsigned i;

	group_init(&g);
	is_int(blk_open(&o, 2, &b), 0, "drain: open");
	for (i = 0; i < 40; i++) {
		treq_set(&t[i], &g, i % 2 ? BLK_READ : BLK_WRITE_ZEROES,
			 (uint64_t)(i % 16) * 4096, 4096);
		t[i].iov[0].iov_base = buf[i];
		t[i].iov[0].iov_len = sizeof(buf[i]);
		t[i].r.iov = t[i].iov;
		t[i].r.iovcnt = 1;
		blk_submit(b, &t[i].r);
	}
	blk_drain(b);
	is_int(g.done, 40, "drain: returns when all are done");
	blk_drain(b);
	ok(1, "drain: on an idle image returns");

	memset(&r, 0, sizeof(r));
	r.op = BLK_READ;
	is_int(blk_submit(b, &r), -EINVAL, "submit: no done hook");
	r.done = treq_done;
	r.op = (enum blk_op)99;
	is_int(blk_submit(b, &r), -EINVAL, "submit: unknown op");
	r.op = BLK_READ;
	r.iovcnt = 3;
	is_int(blk_submit(b, &r), -EINVAL, "submit: iovcnt without iov");
	is_int(blk_submit(NULL, &r), -EINVAL, "submit: NULL image");
	blk_close(b);
	group_fini(&g);
	img_del(path);
}

/* Reads past a file that shrank under us are zeros, not errors. */
static void test_eof_zero_fill(void)
{
	char *path = img_new(64 * KIB, true);
	struct blk_opts o = opts_for(path);
	uint8_t buf[8192];
	struct blk *b;

	is_int(blk_open(&o, 1, &b), 0, "eof: open");
	if (truncate(path, 60 * KIB) < 0)
		abort();
	memset(buf, 0xff, sizeof(buf));
	is_int(run_buf(b, BLK_READ, 56 * KIB, buf, 8192), 0,
	       "eof: read across the new end");
	ok(!all_zero(buf, 4096) && all_zero(buf + 4096, 4096),
	   "eof: bytes past the end read as zeros");
	blk_close(b);
	img_del(path);
}

/* A probed raw image refuses a guest writing a qcow2 signature at 0. */
static void test_hdr_guard(void)
{
	char *path = img_new(64 * KIB, false);
	struct blk_opts o = opts_for(path);
	uint8_t sec[512];
	const char *err;
	struct blk *b;
	int rc;

	memset(sec, 0, sizeof(sec));
	memcpy(sec, "QFI\xfb", 4);
	is_int(blk_open(&o, 1, &b), 0, "guard: open (probed)");
	capture_begin(&cap, STDERR_FILENO);
	rc = run_buf(b, BLK_WRITE, 0, sec, sizeof(sec));
	err = capture_end(&cap);
	is_int(rc, -EPERM, "guard: qcow2 magic at 0 refused");
	ok_line(err, "qcow2 signature", "guard: warned");
	is_int(run_buf(b, BLK_WRITE, 512, sec, sizeof(sec)), 0,
	       "guard: the magic elsewhere is fine");
	sec[0] = 'X';
	is_int(run_buf(b, BLK_WRITE, 0, sec, sizeof(sec)), 0,
	       "guard: other data at 0 is fine");
	blk_close(b);
	o.format = "raw";
	sec[0] = 'Q';
	is_int(blk_open(&o, 1, &b), 0, "guard: open with format=raw");
	is_int(run_buf(b, BLK_WRITE, 0, sec, sizeof(sec)), 0,
	       "guard: explicit raw allows it");
	blk_close(b);
	img_del(path);
}

/* Worker threads exist and carry their names. */
static void test_thread_names(void)
{
	char *path = img_new(4096, false);
	struct blk_opts o = opts_for(path);
	char cmd[128], line[64];
	unsigned count = 0;
	struct blk *b;
	FILE *p;

	is_int(blk_open(&o, 3, &b), 0, "threads: open with 3 workers");
	snprintf(cmd, sizeof(cmd), "cat /proc/%d/task/*/comm", (int)getpid());
	p = popen(cmd, "r");
	while (p && fgets(line, sizeof(line), p)) {
		if (strncmp(line, "blk", 3) == 0 && strstr(line, "/io"))
			count++;
	}
	if (p)
		pclose(p);
	is_int(count, 3, "threads: three blk<N>/io<i> threads");
	blk_close(b);
	img_del(path);
}

/* ---- loop block device (root + losetup) ---- */

static bool sh_out(const char *cmd, char *out, size_t n)
{
	FILE *p = popen(cmd, "r");
	bool ok_ = false;

	if (!p)
		return false;
	if (fgets(out, (int)n, p)) {
		out[strcspn(out, "\n")] = '\0';
		ok_ = out[0] != '\0';
	}
	return pclose(p) == 0 && ok_;
}

static void loop_detach(const char *dev)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "losetup -d %s 2>/dev/null", dev);
	if (system(cmd) != 0)
		diag("losetup -d %s failed", dev);
}

static void test_loop(void)
{
	char *path = img_new(16 * MIB, true);
	char cmd[256], dev[64];
	struct blk_opts o;
	uint8_t *buf, *chk;
	struct blk *b;

	if (geteuid() != 0) {
		ok(1, "# SKIP loop: not root");
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", path);
	if (!sh_out(cmd, dev, sizeof(dev))) {
		ok(1, "# SKIP loop: losetup does not work here");
		goto out;
	}
	buf = malloc(MIB + 64);
	chk = malloc(MIB);
	o = opts_for(dev);
	is_int(blk_open(&o, 2, &b), 0, "loop: open %s", dev);
	if (b) {
		is_int(blk_size(b), 16 * MIB, "loop: BLKGETSIZE64");
		is_int(blk_lsector(b), 512, "loop: BLKSSZGET");
		rng_fill(buf, MIB);
		is_int(run_buf(b, BLK_WRITE, 3 * MIB, buf, MIB), 0,
		       "loop: write");
		is_int(run_buf(b, BLK_READ, 3 * MIB, chk, MIB), 0,
		       "loop: read");
		ok(memcmp(buf, chk, MIB) == 0, "loop: round trip");
		is_int(run(b, BLK_WRITE_ZEROES, 3 * MIB, 64 * KIB, NULL, 0), 0,
		       "loop: write-zeroes");
		is_int(run_buf(b, BLK_READ, 3 * MIB, chk, 64 * KIB), 0,
		       "loop: read zeros");
		ok(all_zero(chk, 64 * KIB), "loop: zeros");
		if (blk_can_discard(b))
			is_int(run(b, BLK_DISCARD, 4 * MIB, MIB, NULL, 0), 0,
			       "loop: BLKDISCARD");
		else
			ok(1, "# SKIP loop: no discard on this loop device");
		is_int(run(b, BLK_FLUSH, 0, 0, NULL, 0), 0, "loop: flush");
		is_int(run_buf(b, BLK_READ, 16 * MIB - 512, chk, 1024), -EINVAL,
		       "loop: beyond the end");
		blk_close(b);
	}
	o.nocache = true;
	is_int(blk_open(&o, 2, &b), 0, "loop: open with O_DIRECT");
	if (b) {
		memset(buf + 1, 0x77, MIB);
		is_int(run_buf(b, BLK_WRITE, 5 * MIB + 512, buf + 1, MIB), 0,
		       "loop: O_DIRECT write, odd buffer");
		is_int(run_buf(b, BLK_READ, 5 * MIB + 512, chk, MIB), 0,
		       "loop: O_DIRECT read");
		ok(chk[0] == 0x77 && chk[MIB - 1] == 0x77, "loop: data");
		is_int(run_buf(b, BLK_WRITE, 7, buf + 1, 10), 0,
		       "loop: O_DIRECT 10 bytes at offset 7 (buffered path)");
		blk_close(b);
	}
	loop_detach(dev);
	snprintf(cmd, sizeof(cmd),
		 "losetup -f --show --sector-size 4096 %s 2>/dev/null", path);
	if (sh_out(cmd, dev, sizeof(dev))) {
		o = opts_for(dev);
		is_int(blk_open(&o, 1, &b), 0, "loop 4k: open");
		if (b) {
			is_int(blk_lsector(b), 4096,
			       "loop 4k: logical sector from the device");
			is_int(blk_psector(b), 4096, "loop 4k: physical");
			blk_close(b);
		}
		loop_detach(dev);
	} else {
		ok(1, "# SKIP loop: no --sector-size");
	}
	free(buf);
	free(chk);
out:
	img_del(path);
}

int main(void)
{
	plan_no_plan();
	log_init("khyve");
	root = cfg_new();
	if (!root)
		abort();

	test_opts_valid();
	test_opts_malformed();
	test_legacy();
	test_schema();
	test_open_basic();
	test_open_errors();
	test_roundtrip();
	test_many_iovecs();
	test_flush();
	test_discard_zeroes();
	test_range();
	test_readonly();
	test_ro_fallback();
	test_lock();
	test_nocache();
	test_ordering();
	test_ordering_nocache();
	test_out_of_order();
	test_gated_order();
	test_gated_close();
	test_queue_full();
	test_close_inflight();
	test_drain_and_submit_errors();
	test_eof_zero_fill();
	test_hdr_guard();
	test_thread_names();
	test_loop();

	cfg_free(root);
	return done_testing();
}
