/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Unit tests for the configuration tree (src/config/config.c): tree
 * operations, leaf/node conflicts, %(path) expansion (escapes, cycles,
 * depth and blow-up limits), typed getters with malformed values, dumps,
 * "-o", "-k" files, the legacy option splitter and schema checks.  Error
 * lines are captured from stderr and compared word for word.
 * Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "lib/log.h"
#include "tests/capture.h"
#include "tests/tap.h"

#define MIB (1024ULL * 1024)

/* ---- stderr capture ---- */

static struct capture cap;

/* ---- helpers ---- */

static char *dump_str(struct cfg_node *n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cfg_dump(n, f);
	fclose(f);
	return buf;
}

static char tmpdir[] = "/tmp/t_config.d.XXXXXX";

static const char *write_file(const char *name, const char *text, size_t len)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (!f)
		abort();
	fwrite(text, 1, len, f);
	fclose(f);
	return path;
}

/* ---- tests ---- */

static void test_tree(void)
{
	struct cfg_node *root = cfg_new(), *n, *c;

	ok(root != NULL, "cfg_new");
	is_str(cfg_path(root), "", "root path is empty");
	is_int(cfg_set(root, "a.b.c", "1"), 0, "set a.b.c");
	is_str(cfg_get_raw(root, "a.b.c"), "1", "raw a.b.c");
	is_str(cfg_get(root, "a.b.c"), "1", "get a.b.c");
	n = cfg_find(root, "a.b");
	ok(n != NULL, "find node a.b");
	ok(cfg_find(root, "a.b.c") == NULL, "find on a leaf is NULL");
	ok(cfg_find(root, "a.x") == NULL, "find absent is NULL");
	is_str(cfg_name(n), "b", "name of a.b");
	ok(!cfg_is_leaf(n), "a.b is not a leaf");
	is_str(cfg_path(n), "a.b", "path of a.b");
	is_str(cfg_get(n, "c"), "1", "get relative to a node");

	n = cfg_create(root, "x.y");
	ok(n != NULL, "create x.y");
	ok(cfg_create(root, "x.y") == n, "create again returns the node");
	is_int(cfg_set(n, "k3", "3"), 0, "set relative k3");
	is_int(cfg_set(n, "k1", "1"), 0, "set relative k1");
	is_int(cfg_set(n, "k2", "2"), 0, "set relative k2");
	is_str(cfg_get(root, "x.y.k1"), "1", "relative set visible from root");
	c = cfg_first_child(n);
	is_str(cfg_name(c), "k3", "insertion order 1");
	ok(cfg_is_leaf(c), "k3 is a leaf");
	is_str(cfg_path(c), "x.y.k3", "leaf path");
	c = cfg_next(c);
	is_str(cfg_name(c), "k1", "insertion order 2");
	c = cfg_next(c);
	is_str(cfg_name(c), "k2", "insertion order 3");
	ok(cfg_next(c) == NULL, "end of children");
	is_int(cfg_set(n, "k3", "33"), 0, "overwrite k3");
	is_str(cfg_name(cfg_first_child(n)), "k3", "overwrite keeps order");
	is_str(cfg_get(n, "k3"), "33", "overwritten value");
	ok(cfg_first_child(c) == NULL, "a leaf has no children");

	is_int(cfg_set_default(root, "x.y.k1", "9"), 0, "set_default on set");
	is_str(cfg_get(root, "x.y.k1"), "1", "set_default keeps value");
	is_int(cfg_set_default(root, "x.y.k4", "4"), 0, "set_default unset");
	is_str(cfg_get(root, "x.y.k4"), "4", "set_default sets");

	is_int(cfg_unset(root, "x.y.k1"), 0, "unset leaf");
	ok(cfg_get_raw(root, "x.y.k1") == NULL, "leaf gone");
	is_str(cfg_name(cfg_next(cfg_first_child(n))), "k2",
	       "list relinked after unset");
	is_int(cfg_unset(root, "x.y.k4"), 0, "unset last child");
	is_int(cfg_set(root, "x.y.k5", "5"), 0, "append after removing last");
	is_str(cfg_name(cfg_next(cfg_next(cfg_first_child(n)))), "k5",
	       "appended after k2");
	is_int(cfg_unset(root, "x"), 0, "unset subtree");
	ok(cfg_find(root, "x") == NULL, "subtree gone");
	is_int(cfg_unset(root, "x"), -ENOENT, "unset absent");
	is_int(cfg_unset(root, "a..b"), -ENOENT, "unset bad path");
	ok(cfg_get(root, "nope") == NULL && errno == ENOENT,
	   "get unset: NULL, ENOENT");
	ok(cfg_get_raw(root, "a.b.c.d") == NULL, "raw below a leaf");
	cfg_free(root);
	cfg_free(NULL);
}

static void test_conflicts(void)
{
	struct cfg_node *root = cfg_new();
	char deep[200], longname[200];
	int i;

	cfg_set(root, "memory.size", "1G");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_set(root, "memory.size.x", "2"), -EINVAL,
	       "value below a leaf");
	is_str(capture_end(&cap),
	       "khyve: memory.size holds a value, it cannot have children\n",
	       "leaf-in-the-way message");
	capture_begin(&cap, STDERR_FILENO);
	ok(cfg_create(root, "memory.size.x") == NULL, "create below a leaf");
	is_str(capture_end(&cap),
	       "khyve: memory.size holds a value, it cannot have children\n",
	       "create message");
	capture_begin(&cap, STDERR_FILENO);
	ok(cfg_create(root, "memory.size") == NULL, "create on a leaf");
	is_str(capture_end(&cap),
	       "khyve: memory.size holds a value, it cannot have children\n",
	       "create-on-leaf message");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_set(root, "memory", "3"), -EINVAL, "value on a node");
	is_str(capture_end(&cap),
	       "khyve: memory is a configuration node, not a value\n",
	       "node message");
	is_str(cfg_get(root, "memory.size"), "1G", "old value intact");

	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_set(root, "a..b", "1"), -EINVAL, "empty component");
	is_str(capture_end(&cap), "khyve: invalid configuration path 'a..b'\n",
	       "empty component message");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_set(root, ".a", "1"), -EINVAL, "leading dot");
	is_int(cfg_set(root, "a.", "1"), -EINVAL, "trailing dot");
	is_int(cfg_set(root, "", "1"), -EINVAL, "empty path");
	is_int(cfg_set(root, "a b", "1"), -EINVAL, "blank in a name");
	is_int(cfg_set(root, "a=b", "1"), -EINVAL, "'=' in a name");
	is_int(cfg_set(root, "a%b", "1"), -EINVAL, "'%%' in a name");
	is_int(cfg_set(root, "a\tb", "1"), -EINVAL, "tab in a name");
	is_int(cfg_set(root, "ok", NULL), -EINVAL, "NULL value");
	capture_end(&cap);
	ok(cfg_find(root, "a") == NULL, "failed sets created nothing");

	deep[0] = '\0';
	for (i = 0; i < 33; i++)
		strcat(deep, i ? ".d" : "d");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_set(root, deep, "1"), -EINVAL, "33 levels rejected");
	ok(strstr(capture_end(&cap), "more than 32 levels deep") != NULL,
	   "depth message");
	deep[strlen(deep) - 2] = '\0';
	is_int(cfg_set(root, deep, "1"), 0, "32 levels accepted");
	ok(strlen(cfg_path(cfg_find(root, "d.d.d.d.d.d.d.d.d.d.d.d.d.d.d.d."
					  "d.d.d.d.d.d.d.d.d.d.d.d.d.d.d"))) ==
		   61,
	   "deep path");
	memset(longname, 'n', 128);
	longname[128] = '\0';
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_set(root, longname, "1"), -EINVAL, "128-byte name rejected");
	capture_end(&cap);
	longname[127] = '\0';
	is_int(cfg_set(root, longname, "1"), 0, "127-byte name accepted");
	cfg_free(root);
}

static void test_expand(void)
{
	struct cfg_node *root = cfg_new();
	char key[32], val[64];
	const char *v;
	int i;

	cfg_set(root, "a", "hello");
	cfg_set(root, "b", "%(a) world");
	cfg_set(root, "c", "100%%");
	cfg_set(root, "d", "%%(a)");
	cfg_set(root, "e", "[%(b)]%(a)");
	cfg_set(root, "dir.base", "/vm");
	cfg_set(root, "dir.disk", "%(dir.base)/disk.img");
	is_str(cfg_get(root, "b"), "hello world", "simple reference");
	is_str(cfg_get(root, "c"), "100%", "%% escape");
	is_str(cfg_get(root, "d"), "%(a)", "%%( is not a reference");
	is_str(cfg_get(root, "e"), "[hello world]hello", "nested references");
	is_str(cfg_get(root, "dir.disk"), "/vm/disk.img",
	       "references are from the root");
	is_str(cfg_get_raw(root, "b"), "%(a) world", "raw is unexpanded");
	cfg_set(root, "a", "bye");
	is_str(cfg_get(root, "b"), "bye world", "cache follows changes");
	is_str(cfg_get(root, "e"), "[bye world]bye", "nested cache follows");
	cfg_unset(root, "a");
	capture_begin(&cap, STDERR_FILENO);
	ok(cfg_get(root, "b") == NULL && errno == EINVAL,
	   "reference to an unset key");
	is_str(capture_end(&cap), "khyve: b: unknown reference %(a)\n",
	       "unknown reference message");
	cfg_set(root, "a", "x");
	is_str(cfg_get(root, "b"), "x world", "works again once set");

	cfg_set(root, "loop1", "%(loop2)");
	cfg_set(root, "loop2", "%(loop1)");
	capture_begin(&cap, STDERR_FILENO);
	ok(cfg_get(root, "loop1") == NULL && errno == ELOOP, "cycle: ELOOP");
	is_str(capture_end(&cap),
	       "khyve: loop1: references nest deeper than 15 levels (a "
	       "cycle?)\n",
	       "cycle message");
	cfg_set(root, "self", "x%(self)");
	capture_begin(&cap, STDERR_FILENO);
	ok(cfg_get(root, "self") == NULL && errno == ELOOP, "self reference");
	capture_end(&cap);

	/* k0 -> k1 -> ... -> k15 is 15 levels: fine; 16 is too deep */
	for (i = 0; i <= 16; i++) {
		snprintf(key, sizeof(key), "chain.k%d", i);
		snprintf(val, sizeof(val), "%%(chain.k%d)", i + 1);
		cfg_set(root, key, i == 16 ? "end" : val);
	}
	cfg_set(root, "chain.k16", "end");
	is_str(cfg_get(root, "chain.k1"), "end", "15 nested references");
	capture_begin(&cap, STDERR_FILENO);
	ok(cfg_get(root, "chain.k0") == NULL && errno == ELOOP,
	   "16 nested references fail");
	capture_end(&cap);

	capture_begin(&cap, STDERR_FILENO);
	cfg_set(root, "bad1", "%(a");
	ok(cfg_get(root, "bad1") == NULL && errno == EINVAL, "unterminated");
	is_str(capture_end(&cap), "khyve: bad1: unterminated %( in '%(a'\n",
	       "unterminated message");
	capture_begin(&cap, STDERR_FILENO);
	cfg_set(root, "bad2", "50%");
	ok(cfg_get(root, "bad2") == NULL && errno == EINVAL, "trailing %%");
	cfg_set(root, "bad3", "%x");
	ok(cfg_get(root, "bad3") == NULL && errno == EINVAL, "stray %%x");
	is_str(capture_end(&cap),
	       "khyve: bad2: stray '%' in '50%' (write %% for a literal %)\n"
	       "khyve: bad3: stray '%' in '%x' (write %% for a literal %)\n",
	       "stray %% messages");
	capture_begin(&cap, STDERR_FILENO);
	cfg_set(root, "bad4", "%(dir)");
	ok(cfg_get(root, "bad4") == NULL && errno == EINVAL,
	   "reference to a node");
	is_str(capture_end(&cap),
	       "khyve: bad4: %(dir) is a configuration node, not "
	       "a value\n",
	       "node reference message");
	capture_begin(&cap, STDERR_FILENO);
	cfg_set(root, "bad5", "%()");
	ok(cfg_get(root, "bad5") == NULL && errno == EINVAL, "empty ref");
	ok(cfg_get(root, "dir") == NULL && errno == EINVAL, "get on a node");
	is_str(capture_end(&cap),
	       "khyve: bad5: unknown reference %()\n"
	       "khyve: dir: is a configuration node, not a value\n",
	       "empty reference and node messages");

	/* 4 references per level, 7 levels: 4^7 reads unless bounded */
	for (i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "bomb.l%d", i);
		if (i == 7)
			snprintf(val, sizeof(val), "x");
		else
			snprintf(val, sizeof(val),
				 "%%(bomb.l%d)%%(bomb.l%d)%%(bomb.l%d)"
				 "%%(bomb.l%d)",
				 i + 1, i + 1, i + 1, i + 1);
		cfg_set(root, key, val);
	}
	capture_begin(&cap, STDERR_FILENO);
	v = cfg_get(root, "bomb.l0");
	ok(v == NULL, "reference explosion is bounded");
	ok(strstr(capture_end(&cap), "more than 10000 references") != NULL,
	   "explosion message");
	is_int(strlen(cfg_get(root, "bomb.l2")), 1024, "4^5 expansion is fine");
	cfg_free(root);
}

static void test_bool(void)
{
	static const char *const yes[] = {"true", "TRUE", "On",
					  "yes",  "YES",  "1"};
	static const char *const no[] = {"false", "False", "OFF",
					 "no",	  "nO",	   "0"};
	static const char *const bad[] = {"",	   "maybe", "2", "truee",
					  " true", "true ", "y", "01"};
	struct cfg_node *root = cfg_new();
	bool b;
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		ok(cfg_parse_bool(yes[i], &b) == 0 && b, "bool '%s'", yes[i]);
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		b = true;
		ok(cfg_parse_bool(no[i], &b) == 0 && !b, "bool '%s'", no[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(cfg_parse_bool(bad[i], &b), -EINVAL, "bad bool '%s'",
		       bad[i]);
	is_int(cfg_parse_bool(NULL, &b), -EINVAL, "NULL bool");

	b = false;
	ok(cfg_get_bool(root, "x.flag", true, &b) == 0 && b, "unset -> def");
	cfg_set(root, "x.flag", "maybe");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_get_bool(root, "x.flag", true, &b), -EINVAL, "malformed");
	is_str(capture_end(&cap), "khyve: x.flag: invalid bool 'maybe'\n",
	       "malformed bool message");
	cfg_set(root, "t", "off");
	cfg_set(root, "x.flag", "%(t)");
	b = true;
	ok(cfg_get_bool(root, "x.flag", true, &b) == 0 && !b,
	   "bool through a reference");
	cfg_set(root, "x.flag", "%(nope)");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_get_bool(root, "x.flag", true, &b), -EINVAL,
	       "bool with a bad reference");
	is_str(capture_end(&cap), "khyve: x.flag: unknown reference %(nope)\n",
	       "bad reference logged once");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_get_bool(root, "x", true, &b), -EINVAL, "bool on a node");
	capture_end(&cap);
	cfg_free(root);
}

static void test_u64(void)
{
	static const struct {
		const char *s;
		uint64_t want;
	} good[] = {
		{"0", 0},     {"10", 10}, {"0x10", 16},
		{"0X1f", 31}, {"010", 8}, {"18446744073709551615", UINT64_MAX},
	};
	static const char *const bad[] = {
		"",
		"-1",
		"+1",
		" 1",
		"1 ",
		"08",
		"0x",
		"1k",
		"abc",
		"1.0",
		"18446744073709551616",
	};
	struct cfg_node *root = cfg_new();
	uint64_t v;
	size_t i;
	char msg[128];

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cfg_set(root, "n", good[i].s);
		v = 12345;
		ok(cfg_get_u64(root, "n", 0, 0, UINT64_MAX, &v) == 0 &&
			   v == good[i].want,
		   "u64 '%s'", good[i].s);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg_set(root, "n", bad[i]);
		capture_begin(&cap, STDERR_FILENO);
		is_int(cfg_get_u64(root, "n", 0, 0, UINT64_MAX, &v), -EINVAL,
		       "bad u64 '%s'", bad[i]);
		snprintf(msg, sizeof(msg), "khyve: n: invalid integer '%s'\n",
			 bad[i]);
		is_str(capture_end(&cap), msg, "bad u64 message '%s'", bad[i]);
	}
	cfg_set(root, "n", "11");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_get_u64(root, "n", 0, 1, 10, &v), -EINVAL, "above max");
	is_str(capture_end(&cap),
	       "khyve: n: invalid integer '11' (must be between 1 and 10)\n",
	       "range message");
	cfg_set(root, "n", "0");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_get_u64(root, "n", 5, 1, 10, &v), -EINVAL, "below min");
	capture_end(&cap);
	cfg_set(root, "n", "10");
	ok(cfg_get_u64(root, "n", 0, 1, 10, &v) == 0 && v == 10,
	   "max is inclusive");
	ok(cfg_get_u64(root, "unset", 7, 1, 10, &v) == 0 && v == 7,
	   "unset -> def");
	cfg_free(root);
}

static void test_size(void)
{
	static const struct {
		const char *s;
		uint64_t unit, want;
	} good[] = {
		{"256M", MIB, 256 * MIB},
		{"256", MIB, 256 * MIB},
		{"512", 1, 512},
		{"2k", 1, 2048},
		{"2K", MIB, 2048},
		{"1g", 1, 1ULL << 30},
		{"1G", MIB, 1ULL << 30},
		{"3T", 1, 3ULL << 40},
		{"3t", 1, 3ULL << 40},
		{"0x10M", 1, 16 * MIB},
		{"0", MIB, 0},
		{"1048575", MIB, 1048575 * MIB},
		{"1073741824", MIB, 1ULL << 30}, /* bhyve: >= 1 MiB is bytes */
		{"100", 0, 100},
		{"16777215T", 1, 16777215ULL << 40},
	};
	static const char *const bad[] = {
		"",	     "M",
		"-1M",	     "+1M",
		" 1M",	     "1M ",
		"1.5G",	     "1GB",
		"1MiB",	     "1P",
		"1Q",	     "0x",
		"16777216T", "18446744073709551616",
	};
	struct cfg_node *root = cfg_new();
	uint64_t v;
	size_t i;
	char msg[128];

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 1;
		ok(cfg_parse_size(good[i].s, good[i].unit, &v) == 0 &&
			   v == good[i].want,
		   "size '%s' unit %llu", good[i].s,
		   (unsigned long long)good[i].unit);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(cfg_parse_size(bad[i], 1, &v), -EINVAL, "bad size '%s'",
		       bad[i]);
	is_int(cfg_parse_size("17592186044416", 1048576, &v), 0,
	       "large bare byte count");
	is_int(cfg_parse_size("18014398509481984", 1024, &v), -EINVAL,
	       "bare number * unit overflows");
	is_int(cfg_parse_size(NULL, 1, &v), -EINVAL, "NULL size");

	ok(cfg_get_size(root, "memory.size", 256 * MIB, MIB, &v) == 0 &&
		   v == 256 * MIB,
	   "unset -> def");
	cfg_set(root, "memory.size", "2G");
	ok(cfg_get_size(root, "memory.size", 0, MIB, &v) == 0 &&
		   v == 2ULL << 30,
	   "get size 2G");
	cfg_set(root, "memory.size", "lots");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_get_size(root, "memory.size", 0, MIB, &v), -EINVAL,
	       "malformed size");
	snprintf(msg, sizeof(msg), "khyve: memory.size: invalid size 'lots'\n");
	is_str(capture_end(&cap), msg, "malformed size message");
	cfg_free(root);
}

static void test_dump(void)
{
	struct cfg_node *root = cfg_new(), *copy;
	const char *file;
	char *d, *d2;

	cfg_set(root, "name", "vm0");
	cfg_set(root, "memory.size", "1G");
	cfg_set(root, "config.dump", "true");
	cfg_set(root, "cpus", "2");
	cfg_set(root, "memory.wired", "true");
	cfg_set(root, "config.other", "1");
	cfg_set(root, "pci.0.3.0.device", "virtio-blk");
	cfg_set(root, "pci.0.3.0.path", "%(name).img");
	cfg_set(root, "board.version", "0B98401 Pro");
	cfg_set(root, "name", "vm1");
	cfg_create(root, "empty.node");
	d = dump_str(root);
	is_str(d,
	       "name=vm1\n"
	       "memory.size=1G\n"
	       "memory.wired=true\n"
	       "config.other=1\n"
	       "cpus=2\n"
	       "pci.0.3.0.device=virtio-blk\n"
	       "pci.0.3.0.path=%(name).img\n"
	       "board.version=0B98401 Pro\n",
	       "dump: insertion order, raw values, no config.dump");
	free(d);
	d = dump_str(cfg_find(root, "pci.0"));
	is_str(d,
	       "pci.0.3.0.device=virtio-blk\n"
	       "pci.0.3.0.path=%(name).img\n",
	       "dump of a subtree prints full paths");
	free(d);

	/* round trip through a -k file */
	d = dump_str(root);
	file = write_file("roundtrip.conf", d, strlen(d));
	copy = cfg_new();
	is_int(cfg_parse_file(copy, file), 0, "dump parses back");
	d2 = dump_str(copy);
	is_str(d2, d, "round trip gives the same dump");
	is_str(cfg_get(copy, "pci.0.3.0.path"), "vm1.img",
	       "references survive the round trip");
	free(d);
	free(d2);
	cfg_free(copy);
	cfg_free(root);
}

static void test_option(void)
{
	struct cfg_node *root = cfg_new();

	is_int(cfg_parse_option(root, "a.b=c"), 0, "-o a.b=c");
	is_str(cfg_get(root, "a.b"), "c", "-o value");
	is_int(cfg_parse_option(root, "x=b=c"), 0, "-o with '=' in value");
	is_str(cfg_get(root, "x"), "b=c", "value keeps '='");
	is_int(cfg_parse_option(root, "e="), 0, "-o empty value");
	is_str(cfg_get(root, "e"), "", "empty value");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_parse_option(root, "novalue"), -EINVAL, "-o without '='");
	is_int(cfg_parse_option(root, "=x"), -EINVAL, "-o without path");
	is_int(cfg_parse_option(root, "a.b.c=1"), -EINVAL, "-o below a leaf");
	is_int(cfg_parse_option(root, "a=1"), -EINVAL, "-o on a node");
	is_int(cfg_parse_option(root, "a..b=1"), -EINVAL, "-o bad path");
	is_str(capture_end(&cap),
	       "khyve: invalid configuration option 'novalue'\n"
	       "khyve: invalid configuration option '=x'\n"
	       "khyve: invalid configuration option 'a.b.c=1' (a.b holds a "
	       "value, it cannot have children)\n"
	       "khyve: invalid configuration option 'a=1' (a is a "
	       "configuration node, not a value)\n"
	       "khyve: invalid configuration option 'a..b=1' (invalid "
	       "configuration path 'a..b')\n",
	       "-o error messages");
	cfg_free(root);
}

static void test_file(void)
{
	static const char good[] = "# a comment\n"
				   "\n"
				   "   \t\n"
				   "name=vm0\n"
				   "  memory.size = 512M  \n"
				   "uuid=  \n"
				   "\t# indented comment\n"
				   "pci.0.3.0.device=virtio-net\r\n"
				   "pci.0.3.0.backend=tap0\n"
				   "password=a#b=c\n"
				   "name=vm1"; /* no final newline */
	static const char bad_line[] = "a=1\n\nthis is not a pair\nb=2\n";
	static const char bad_path[] = "a=1\na.b=2\n";
	static const char nul[] = "a=1\nb=\0x\n";
	struct cfg_node *root = cfg_new();
	const char *file;
	char msg[512];

	file = write_file("good.conf", good, sizeof(good) - 1);
	is_int(cfg_parse_file(root, file), 0, "-k file parses");
	is_str(cfg_get(root, "name"), "vm1", "later line wins");
	is_str(cfg_get(root, "memory.size"), "512M", "blanks trimmed");
	is_str(cfg_get(root, "uuid"), "", "empty value");
	is_str(cfg_get(root, "pci.0.3.0.device"), "virtio-net", "CRLF line");
	is_str(cfg_get(root, "password"), "a#b=c", "'#' and '=' in a value");
	is_str(cfg_name(cfg_first_child(root)), "name", "file order kept");

	file = write_file("bad.conf", bad_line, sizeof(bad_line) - 1);
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_parse_file(root, file), -EINVAL, "line without '='");
	snprintf(msg, sizeof(msg),
		 "khyve: %s:3: expected path=value, got 'this is not a "
		 "pair'\n",
		 file);
	is_str(capture_end(&cap), msg, "file:line message");
	ok(cfg_get_raw(root, "b") == NULL, "parsing stops at the error");

	file = write_file("path.conf", bad_path, sizeof(bad_path) - 1);
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_parse_file(root, file), -EINVAL, "leaf in the way");
	snprintf(msg, sizeof(msg),
		 "khyve: %s:2: a holds a value, it cannot have children\n",
		 file);
	is_str(capture_end(&cap), msg, "leaf-in-the-way file message");

	file = write_file("eq.conf", "=v\n", 3);
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_parse_file(root, file), -EINVAL, "line without a path");
	snprintf(msg, sizeof(msg),
		 "khyve: %s:1: expected path=value, got '=v'\n", file);
	is_str(capture_end(&cap), msg, "empty path message");

	file = write_file("nul.conf", nul, sizeof(nul) - 1);
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_parse_file(root, file), -EINVAL, "NUL byte");
	snprintf(msg, sizeof(msg), "khyve: %s:2: NUL byte in line\n", file);
	is_str(capture_end(&cap), msg, "NUL byte message");

	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_parse_file(root, "/nonexistent/khyve.conf"), -ENOENT,
	       "missing file");
	is_str(capture_end(&cap),
	       "khyve: /nonexistent/khyve.conf: No such file or directory\n",
	       "missing file message");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_parse_file(root, tmpdir), -EISDIR, "a directory");
	snprintf(msg, sizeof(msg), "khyve: %s: Is a directory\n", tmpdir);
	is_str(capture_end(&cap), msg, "directory message");

	/* a line of exactly 1 MiB is fine, one byte more is not */
	{
		size_t max = 1024 * 1024;
		char *big = malloc(max + 2);

		memset(big, 'b', max + 1);
		memcpy(big, "a=", 2);
		big[max] = '\n';
		file = write_file("max.conf", big, max + 1);
		is_int(cfg_parse_file(root, file), 0, "1 MiB line accepted");
		is_int((long long)strlen(cfg_get(root, "a")),
		       (long long)max - 2, "1 MiB line value");
		big[max] = 'b';
		big[max + 1] = '\n';
		file = write_file("long.conf", big, max + 2);
		capture_begin(&cap, STDERR_FILENO);
		is_int(cfg_parse_file(root, file), -EINVAL, "longer line");
		snprintf(msg, sizeof(msg),
			 "khyve: %s:1: line longer than 1048576 bytes\n", file);
		is_str(capture_end(&cap), msg, "long line message");
		free(big);
	}
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_parse_file(root, "/dev/zero"), -EINVAL,
	       "/dev/zero: bounded, not an endless read");
	is_str(capture_end(&cap),
	       "khyve: /dev/zero:1: line longer than 1048576 bytes\n",
	       "/dev/zero message");

	file = write_file("empty.conf", "", 0);
	is_int(cfg_parse_file(root, file), 0, "empty file");
	cfg_free(root);
}

static void test_split(void)
{
	struct cfg_node *root = cfg_new(), *n = cfg_create(root, "pci.0.3.0");

	is_int(cfg_split_opts(n, "a=1,b,c=x=y,,d.e=2,"), 0, "split");
	is_str(cfg_get(n, "a"), "1", "name=value");
	is_str(cfg_get(n, "b"), "true", "bare name is true");
	is_str(cfg_get(n, "c"), "x=y", "value keeps '='");
	is_str(cfg_get(n, "d.e"), "2", "dotted name nests");
	is_str(cfg_get(n, "f"), NULL, "nothing else");
	is_int(cfg_split_opts(n, NULL), 0, "NULL options");
	is_int(cfg_split_opts(n, ""), 0, "empty options");
	is_int(cfg_split_opts(n, "a=9"), 0, "later value wins");
	is_str(cfg_get(n, "a"), "9", "overwritten");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_split_opts(n, "x=1,=v"), -EINVAL, "empty name");
	is_str(capture_end(&cap),
	       "khyve: pci.0.3.0: empty option name in 'x=1,=v'\n",
	       "empty name message");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_split_opts(n, "a.b=1"), -EINVAL, "name below a leaf");
	is_str(capture_end(&cap),
	       "khyve: pci.0.3.0.a holds a value, it cannot have children\n",
	       "full path in the split error");
	cfg_free(root);
}

static void test_schema(void)
{
	static const struct cfg_key t1[] = {
		{"name", CFG_STRING, NULL, "a name", 0, 0, 0},
		{"flag", CFG_BOOL, "false", "a flag", 0, 0, 0},
		{"n", CFG_INT, "1", "a number", 1, 10, 0},
		{"big", CFG_INT, NULL, "no upper bound", 0, 0, 0},
		{"sz", CFG_SIZE, "1M", "a size", MIB, 0, MIB},
		{"port.*.path", CFG_STRING, NULL, "port path", 0, 0, 0},
		{"sub", CFG_NODE, NULL, "checked elsewhere", 0, 0, 0},
		{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
	};
	static const struct cfg_key t2[] = {
		{"extra.*", CFG_BOOL, NULL, "from a second table", 0, 0, 0},
		{NULL, CFG_STRING, NULL, NULL, 0, 0, 0},
	};
	static const struct cfg_key *const schemas[] = {t1, t2, NULL};
	struct cfg_node *root = cfg_new(), *n = cfg_create(root, "dev");
	const struct cfg_key *k;

	k = cfg_schema_find(schemas, "port.3.path");
	ok(k && strcmp(k->name, "port.*.path") == 0, "wildcard match");
	ok(cfg_schema_find(schemas, "port.path") == NULL,
	   "wildcard needs a component");
	ok(cfg_schema_find(schemas, "port.1.path.x") == NULL,
	   "no prefix match for values");
	k = cfg_schema_find(schemas, "sub.a.b");
	ok(k && k->type == CFG_NODE, "node entry matches a prefix");
	k = cfg_schema_find(schemas, "extra.q");
	ok(k && k == &t2[0], "second table");
	ok(cfg_schema_find(schemas, "nam") == NULL, "no partial names");
	ok(cfg_schema_find(NULL, "name") == NULL, "NULL schemas");

	cfg_set(n, "name", "x");
	cfg_set(n, "flag", "on");
	cfg_set(n, "n", "10");
	cfg_set(n, "big", "18446744073709551615");
	cfg_set(n, "sz", "%(dev.n)M");
	cfg_set(n, "port.0.path", "/a");
	cfg_set(n, "port.1.path", "/b");
	cfg_set(n, "sub.whatever.deep", "anything");
	cfg_set(n, "extra.z", "no");
	is_int(cfg_check(n, schemas), 0, "valid node passes");

	cfg_set(n, "port.1.speed", "9600");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_check(n, schemas), -EINVAL, "unknown key");
	is_str(capture_end(&cap),
	       "khyve: dev.port.1.speed: unknown configuration key\n",
	       "unknown key names the full path");
	cfg_unset(n, "port.1.speed");

	cfg_set(n, "flag", "maybe");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_check(n, schemas), -EINVAL, "bad bool");
	is_str(capture_end(&cap),
	       "khyve: dev.flag: invalid value 'maybe' (not a boolean)\n",
	       "bad bool message");
	cfg_set(n, "flag", "yes");

	cfg_set(n, "n", "11");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_check(n, schemas), -EINVAL, "int out of range");
	is_str(capture_end(&cap),
	       "khyve: dev.n: invalid value '11' (must be between 1 and 10)\n",
	       "range message");
	cfg_set(n, "n", "ten");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_check(n, schemas), -EINVAL, "int malformed");
	is_str(capture_end(&cap),
	       "khyve: dev.n: invalid value 'ten' (not an integer)\n",
	       "integer message");
	cfg_set(n, "n", "2");

	cfg_set(n, "sz", "1K");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_check(n, schemas), -EINVAL, "size below min");
	is_str(capture_end(&cap),
	       "khyve: dev.sz: invalid value '1K' (must be between 1048576 "
	       "and 18446744073709551615)\n",
	       "size range message");
	cfg_set(n, "sz", "big");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_check(n, schemas), -EINVAL, "size malformed");
	is_str(capture_end(&cap),
	       "khyve: dev.sz: invalid value 'big' (not a size)\n",
	       "size message");
	cfg_set(n, "sz", "%(nope)");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_check(n, schemas), -EINVAL, "bad reference");
	is_str(capture_end(&cap), "khyve: dev.sz: unknown reference %(nope)\n",
	       "reference error reported once");
	cfg_set(n, "sz", "4M");

	cfg_set(n, "extra.q.r", "1");
	capture_begin(&cap, STDERR_FILENO);
	is_int(cfg_check(n, schemas), -EINVAL, "wildcard is one component");
	is_str(capture_end(&cap),
	       "khyve: dev.extra.q.r: unknown configuration key\n",
	       "deep key under wildcard");
	cfg_unset(n, "extra.q");
	is_int(cfg_check(n, schemas), 0, "valid again");
	is_int(cfg_check(NULL, schemas), 0, "NULL node");
	cfg_free(root);
}

int main(void)
{
	plan_no_plan();
	log_init("khyve");
	if (!mkdtemp(tmpdir))
		skip_all("cannot create a temporary directory");
	test_tree();
	test_conflicts();
	test_expand();
	test_bool();
	test_u64();
	test_size();
	test_dump();
	test_option();
	test_file();
	test_split();
	test_schema();
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			diag("could not remove %s", tmpdir);
	}
	return done_testing();
}
