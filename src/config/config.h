/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The configuration tree (bhyve_config(5) semantics).  A tree of nodes
 * addressed by dotted paths; leaves hold strings.  Every input writes here:
 * "-o path=value", "-k file" (one path=value per line, '#' comments), the
 * sugar flags (-m -> memory.size, -c -> cpus/sockets/cores/threads ...)
 * and the short device syntax "-s 3,virtio-blk,disk.img,ro", which creates
 * node pci.0.3.0 and fills it through the model's legacy parser.
 *
 * Values may reference other values as %(path) (paths from the root, '%%'
 * is a literal '%'); expansion happens on read, nests up to 15 levels and
 * fails (-ELOOP) beyond, so cycles are caught.
 *
 * Stricter than bhyve: a schema (struct cfg_key tables) lists the keys a
 * node may hold with their types; cfg_check() reports the first unknown key
 * or malformed value as one error line naming its full path.
 *
 * Getters never exit: they return -errno and log the full path.  Exiting is
 * main()'s job.
 *
 * Threads: the tree is built and read during start-up on the main thread and
 * is read-only afterwards (getters cache expansions, so do not read it from
 * two threads at once).  No locks.
 */
#ifndef KHYVE_CONFIG_CONFIG_H
#define KHYVE_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct cfg_node;

/* Create an empty root node.  Returns NULL on allocation failure. */
struct cfg_node *cfg_new(void);
/* Free a whole tree (root only). NULL is accepted. */
void cfg_free(struct cfg_node *root);

/* The node at 'path' below 'parent' (NULL if absent or a leaf). */
struct cfg_node *cfg_find(struct cfg_node *parent, const char *path);
/*
 * The node at 'path', creating missing nodes.  Returns NULL and logs when a
 * leaf is in the way ("memory.size.x" when memory.size is a value).
 */
struct cfg_node *cfg_create(struct cfg_node *parent, const char *path);

/*
 * Set leaf 'path' (relative to parent) to 'value', creating nodes.
 * Returns 0, -EINVAL (empty component, or path names a node with children;
 * logs it) or -ENOMEM.
 */
int cfg_set(struct cfg_node *parent, const char *path, const char *value);
/* cfg_set() only when 'path' has no value yet.  Same returns. */
int cfg_set_default(struct cfg_node *parent, const char *path,
		    const char *value);
/* Remove a leaf or a subtree.  Returns 0 or -ENOENT. */
int cfg_unset(struct cfg_node *parent, const char *path);

/* The raw (unexpanded) value of a leaf, or NULL. */
const char *cfg_get_raw(struct cfg_node *parent, const char *path);
/*
 * The expanded value of a leaf, or NULL when unset.  On an expansion error
 * (unknown %(ref), cycle, bad syntax) logs the path and returns NULL with
 * errno set (ENOENT for unset, EINVAL/ELOOP for bad values).
 */
const char *cfg_get(struct cfg_node *parent, const char *path);

/*
 * Typed getters.  When the key is unset, *out = def and 0 is returned.
 * A malformed value logs "<full.path>: invalid <type> 'value'" and returns
 * -EINVAL.  Booleans accept true/false, on/off, yes/no, 1/0 (any case).
 * Integers accept decimal, 0x hex and 0 octal (strtoull rules).
 * Sizes accept a number with an optional K/M/G/T suffix (any case, binary
 * units); a bare number is in units of 'unit' bytes (1 for bytes, 1 MiB for
 * memory.size as bhyve).
 */
int cfg_get_bool(struct cfg_node *parent, const char *path, bool def,
		 bool *out);
int cfg_get_u64(struct cfg_node *parent, const char *path, uint64_t def,
		uint64_t min, uint64_t max, uint64_t *out);
int cfg_get_size(struct cfg_node *parent, const char *path, uint64_t def,
		 uint64_t unit, uint64_t *out);

/* Parse a bool/size string with the rules above.  0 or -EINVAL. */
int cfg_parse_bool(const char *s, bool *out);
int cfg_parse_size(const char *s, uint64_t unit, uint64_t *out);

/* Node introspection, for walking pci.* and for dumps. */
const char *cfg_name(const struct cfg_node *n); /* last component */
bool cfg_is_leaf(const struct cfg_node *n);
struct cfg_node *cfg_first_child(struct cfg_node *n); /* insertion order */
struct cfg_node *cfg_next(struct cfg_node *n);
/* Full dotted path of a node (static buffer per thread; copy it). */
const char *cfg_path(const struct cfg_node *n);

/* Print every leaf as "path=value" (raw values), in insertion order. */
void cfg_dump(struct cfg_node *root, FILE *f);

/*
 * "-o" handling: 'kv' is "path=value".  Returns 0, or -EINVAL after logging
 * "invalid configuration option '<kv>'".
 */
int cfg_parse_option(struct cfg_node *root, const char *kv);
/*
 * "-k" handling: read path=value lines ('#' comments, blank lines and
 * leading/trailing blanks ignored).  Errors name the file and line:
 * "<file>:<line>: ..." Returns 0, -errno (cannot open) or -EINVAL.
 */
int cfg_parse_file(struct cfg_node *root, const char *file);

/*
 * bhyve's generic legacy option splitter: split 'opts' on ',';
 * "name=value" sets node.name, a bare "name" sets node.name=true.
 * Returns 0 or -EINVAL (empty name; logged).
 */
int cfg_split_opts(struct cfg_node *node, const char *opts);

/* ---- schemas ---- */

enum cfg_type {
	CFG_STRING, /* anything */
	CFG_BOOL,   /* cfg_parse_bool */
	CFG_INT,    /* unsigned integer within [min, max] */
	CFG_SIZE,   /* size with suffix (bare number in 'unit' bytes) */
	CFG_NODE,   /* a subtree this table does not describe (skipped) */
};

/*
 * One permitted key.  'name' is a dotted path relative to the node; a '*'
 * component matches any single component ("port.*.path",
 * "vcpu.*.cpuset").  'unit' is for CFG_SIZE.  'def' and 'help' feed the
 * docs and "-s help" style listings.  Tables end with a {NULL} entry.
 */
struct cfg_key {
	const char *name;
	enum cfg_type type;
	const char *def;
	const char *help;
	uint64_t min, max;
	uint64_t unit;
};

/*
 * Check every leaf under 'node' against the tables in 'schemas' (a NULL
 * terminated array of tables).  Leaves whose first component matches a
 * CFG_NODE key are skipped (checked elsewhere).  Reports the first problem
 * as "<full.path>: unknown configuration key" or
 * "<full.path>: invalid value 'v' (<why>)" and returns -EINVAL; else 0.
 */
int cfg_check(struct cfg_node *node, const struct cfg_key *const *schemas);

/* Find the schema entry matching relative path 'name', or NULL. */
const struct cfg_key *cfg_schema_find(const struct cfg_key *const *schemas,
				      const char *name);

#endif
