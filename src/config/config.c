/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The configuration tree (see config.h for the model).
 *
 * Each node has a name, an optional value (a node with a value is a leaf
 * and never has children) and a singly linked list of children kept in
 * insertion order, so dumps list keys in the order they were first set.
 * Lookups are linear scans: trees hold a few hundred keys at most.
 *
 * Paths are split on '.'.  A component is 1..CFG_MAX_NAME printable
 * characters without '.', '=', '%' or ')' (those would make dumps,
 * "-o path=value" or %(path) references ambiguous), and a tree is at most
 * CFG_MAX_DEPTH levels deep, which bounds recursion and cfg_path().
 *
 * Expansion of %(path) happens in cfg_get() and is cached in the leaf
 * together with the tree's generation counter (kept in the root and bumped
 * on every change), so a stale expansion is never returned.  A pointer
 * returned by cfg_get()/cfg_get_raw() stays valid until the tree changes.
 * Expansion is bounded three ways: 15 levels of nesting (-ELOOP, which is
 * how cycles end), CFG_MAX_REFS references per read and CFG_MAX_EXPANDED
 * bytes of output (-EINVAL), so a hostile file cannot make a read run
 * forever or eat memory.
 *
 * Schema checking (cfg_check) walks leaves in insertion order and reports
 * the first one that no table describes or whose value does not parse.
 * For CFG_INT and CFG_SIZE keys, max == 0 means "no upper bound".
 *
 * Threads: start-up only, main thread; no locks (see config.h).
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

#define CFG_MAX_DEPTH 32
#define CFG_MAX_NAME 127
#define CFG_MAX_NEST 15
#define CFG_MAX_REFS 10000
#define CFG_MAX_EXPANDED (1024 * 1024)
#define CFG_WHY_LEN 512
#define CFG_MAX_LINE (1024 * 1024)
#define MIB (1024ULL * 1024)

struct cfg_node {
	char *name;  /* "" for the root */
	char *value; /* non-NULL: a leaf */
	char *exp;   /* cached expansion of value */
	unsigned long exp_gen;
	unsigned long gen; /* root only: bumped on every change */
	unsigned depth;	   /* 0 for the root */
	struct cfg_node *parent;
	struct cfg_node *child, *last; /* children, insertion order */
	struct cfg_node *next;
};

/* ---- a small growable string ---- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_addn(struct sbuf *b, const char *p, size_t n)
{
	char *ns;
	size_t ncap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap ? b->cap : 64;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		ns = realloc(b->s, ncap);
		if (!ns) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = ncap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *p)
{
	sb_addn(b, p, strlen(p));
}

static void sb_trunc(struct sbuf *b, size_t len)
{
	if (b->s && len <= b->len) {
		b->len = len;
		b->s[len] = '\0';
	}
}

static const char *sb_str(const struct sbuf *b)
{
	return b->s ? b->s : "";
}

static void sb_free(struct sbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

static void why_set(char *why, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void why_set(char *why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, CFG_WHY_LEN, fmt, ap);
	va_end(ap);
}

/* ---- nodes ---- */

static struct cfg_node *node_new(const char *name, size_t len)
{
	struct cfg_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->name = strndup(name, len);
	if (!n->name) {
		free(n);
		return NULL;
	}
	return n;
}

static void node_free(struct cfg_node *n)
{
	struct cfg_node *c, *next;

	if (!n)
		return;
	for (c = n->child; c; c = next) {
		next = c->next;
		node_free(c);
	}
	free(n->name);
	free(n->value);
	free(n->exp);
	free(n);
}

static struct cfg_node *root_of(struct cfg_node *n)
{
	while (n->parent)
		n = n->parent;
	return n;
}

static void tree_changed(struct cfg_node *n)
{
	root_of(n)->gen++;
}

static struct cfg_node *child_find(struct cfg_node *n, const char *name,
				   size_t len)
{
	struct cfg_node *c;

	for (c = n->child; c; c = c->next)
		if (strncmp(c->name, name, len) == 0 && c->name[len] == '\0')
			return c;
	return NULL;
}

static struct cfg_node *child_add(struct cfg_node *n, const char *name,
				  size_t len)
{
	struct cfg_node *c = node_new(name, len);

	if (!c)
		return NULL;
	c->parent = n;
	c->depth = n->depth + 1;
	if (n->last)
		n->last->next = c;
	else
		n->child = c;
	n->last = c;
	return c;
}

static void child_remove(struct cfg_node *n, struct cfg_node *victim)
{
	struct cfg_node **pp, *prev = NULL;

	for (pp = &n->child; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != victim)
			continue;
		*pp = victim->next;
		if (n->last == victim)
			n->last = prev;
		victim->next = NULL;
		return;
	}
}

static bool name_char_ok(char c)
{
	unsigned char u = (unsigned char)c;

	if (!isgraph(u))
		return false;
	return c != '.' && c != '=' && c != '%' && c != ')';
}

static bool name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > CFG_MAX_NAME)
		return false;
	for (i = 0; i < len; i++)
		if (!name_char_ok(s[i]))
			return false;
	return true;
}

/* Count the components of 'path' and check each one.  -1 when invalid. */
static int path_check(const char *path)
{
	const char *p = path, *dot;
	int count = 0;

	for (;;) {
		dot = strchr(p, '.');
		if (!name_ok(p, dot ? (size_t)(dot - p) : strlen(p)))
			return -1;
		count++;
		if (!dot)
			return count;
		p = dot + 1;
	}
}

/* "<parent path>.<rel>" into b. */
static void full_path(struct sbuf *b, const struct cfg_node *parent,
		      const char *rel)
{
	const char *pp = cfg_path(parent);

	sb_add(b, pp);
	if (*pp && rel && *rel)
		sb_add(b, ".");
	if (rel)
		sb_add(b, rel);
}

/*
 * Walk 'path' below 'n'.  With 'create', missing nodes are added.  Returns
 * the node, or NULL with *err = -ENOENT (absent, or a leaf in the way when
 * not creating), -EINVAL (bad path, or a leaf in the way; 'why' filled) or
 * -ENOMEM.
 */
static struct cfg_node *walk(struct cfg_node *n, const char *path, bool create,
			     int *err, char *why)
{
	const char *p = path, *dot;
	struct cfg_node *c;
	size_t len;
	int count;
	struct sbuf b = {0};

	count = path_check(path);
	if (count < 0) {
		full_path(&b, n, path);
		why_set(why, "invalid configuration path '%s'", sb_str(&b));
		sb_free(&b);
		*err = -EINVAL;
		return NULL;
	}
	if (n->depth + (unsigned)count > CFG_MAX_DEPTH) {
		full_path(&b, n, path);
		why_set(why, "%s: more than %d levels deep", sb_str(&b),
			CFG_MAX_DEPTH);
		sb_free(&b);
		*err = -EINVAL;
		return NULL;
	}
	for (;;) {
		dot = strchr(p, '.');
		len = dot ? (size_t)(dot - p) : strlen(p);
		if (n->value) {
			if (!create) {
				*err = -ENOENT;
				return NULL;
			}
			full_path(&b, n->parent, n->name);
			why_set(why,
				"%s holds a value, it cannot have children",
				sb_str(&b));
			sb_free(&b);
			*err = -EINVAL;
			return NULL;
		}
		c = child_find(n, p, len);
		if (!c) {
			if (!create) {
				*err = -ENOENT;
				return NULL;
			}
			c = child_add(n, p, len);
			if (!c) {
				why_set(why, "out of memory");
				*err = -ENOMEM;
				return NULL;
			}
		}
		n = c;
		if (!dot)
			return n;
		p = dot + 1;
	}
}

/*
 * Set leaf 'path' below 'parent'.  Returns 0, -EINVAL (why filled) or
 * -ENOMEM.  With 'only_unset', an existing value is kept.
 */
static int set_value(struct cfg_node *parent, const char *path,
		     const char *value, bool only_unset, char *why)
{
	struct cfg_node *n;
	char *v;
	int err = 0;
	struct sbuf b = {0};

	if (!value) {
		why_set(why, "no value for '%s'", path);
		return -EINVAL;
	}
	n = walk(parent, path, true, &err, why);
	if (!n)
		return err;
	if (!n->value && n->child) {
		full_path(&b, parent, path);
		why_set(why, "%s is a configuration node, not a value",
			sb_str(&b));
		sb_free(&b);
		return -EINVAL;
	}
	if (n->value && only_unset)
		return 0;
	v = strdup(value);
	if (!v) {
		why_set(why, "out of memory");
		return -ENOMEM;
	}
	free(n->value);
	n->value = v;
	free(n->exp);
	n->exp = NULL;
	tree_changed(n);
	return 0;
}

struct cfg_node *cfg_new(void)
{
	return node_new("", 0);
}

void cfg_free(struct cfg_node *root)
{
	node_free(root);
}

struct cfg_node *cfg_find(struct cfg_node *parent, const char *path)
{
	char why[CFG_WHY_LEN];
	struct cfg_node *n;
	int err;

	if (!parent || !path)
		return NULL;
	n = walk(parent, path, false, &err, why);
	if (!n || n->value)
		return NULL;
	return n;
}

struct cfg_node *cfg_create(struct cfg_node *parent, const char *path)
{
	char why[CFG_WHY_LEN];
	struct cfg_node *n;
	int err;

	n = walk(parent, path, true, &err, why);
	if (!n) {
		log_err("%s", why);
		return NULL;
	}
	if (n->value) {
		struct sbuf b = {0};

		full_path(&b, parent, path);
		log_err("%s holds a value, it cannot have children",
			sb_str(&b));
		sb_free(&b);
		return NULL;
	}
	return n;
}

int cfg_set(struct cfg_node *parent, const char *path, const char *value)
{
	char why[CFG_WHY_LEN];
	int rc = set_value(parent, path, value, false, why);

	if (rc < 0)
		log_err("%s", why);
	return rc;
}

int cfg_set_default(struct cfg_node *parent, const char *path,
		    const char *value)
{
	char why[CFG_WHY_LEN];
	int rc = set_value(parent, path, value, true, why);

	if (rc < 0)
		log_err("%s", why);
	return rc;
}

int cfg_unset(struct cfg_node *parent, const char *path)
{
	char why[CFG_WHY_LEN];
	struct cfg_node *n;
	int err;

	if (!parent || !path)
		return -ENOENT;
	n = walk(parent, path, false, &err, why);
	if (!n || n == parent)
		return -ENOENT;
	child_remove(n->parent, n);
	tree_changed(parent);
	node_free(n);
	return 0;
}

const char *cfg_get_raw(struct cfg_node *parent, const char *path)
{
	char why[CFG_WHY_LEN];
	struct cfg_node *n;
	int err;

	if (!parent || !path)
		return NULL;
	n = walk(parent, path, false, &err, why);
	return n ? n->value : NULL;
}

/* ---- %(path) expansion ---- */

struct expand_state {
	struct cfg_node *root;
	struct sbuf out;
	unsigned refs;
	char why[CFG_WHY_LEN];
};

static int expand(struct expand_state *st, const char *v, int depth)
{
	const char *p = v, *pct, *end;
	struct cfg_node *t;
	char *ref;
	int rc, err;

	if (depth > CFG_MAX_NEST) {
		why_set(st->why,
			"references nest deeper than %d levels (a cycle?)",
			CFG_MAX_NEST);
		return -ELOOP;
	}
	while (*p) {
		pct = strchr(p, '%');
		if (!pct) {
			sb_add(&st->out, p);
			break;
		}
		sb_addn(&st->out, p, (size_t)(pct - p));
		if (pct[1] == '%') {
			sb_add(&st->out, "%");
			p = pct + 2;
			continue;
		}
		if (pct[1] != '(') {
			why_set(st->why,
				"stray '%%' in '%s' (write %%%% for a literal "
				"%%)",
				v);
			return -EINVAL;
		}
		end = strchr(pct + 2, ')');
		if (!end) {
			why_set(st->why, "unterminated %%( in '%s'", v);
			return -EINVAL;
		}
		if (++st->refs > CFG_MAX_REFS) {
			why_set(st->why, "more than %d references",
				CFG_MAX_REFS);
			return -ELOOP;
		}
		ref = strndup(pct + 2, (size_t)(end - pct - 2));
		if (!ref)
			return -ENOMEM;
		t = walk(st->root, ref, false, &err, st->why);
		if (!t || !t->value) {
			why_set(st->why,
				t ? "%%(%s) is a configuration node, not a "
				    "value"
				  : "unknown reference %%(%s)",
				ref);
			free(ref);
			return -EINVAL;
		}
		free(ref);
		rc = expand(st, t->value, depth + 1);
		if (rc < 0)
			return rc;
		if (st->out.len > CFG_MAX_EXPANDED) {
			why_set(st->why, "expansion longer than %d bytes",
				CFG_MAX_EXPANDED);
			return -EINVAL;
		}
		p = end + 1;
	}
	return st->out.oom ? -ENOMEM : 0;
}

/* Expanded value of leaf n; NULL with errno set (logged) on error. */
static const char *leaf_get(struct cfg_node *n)
{
	struct expand_state st = {0};
	int rc;

	if (!strchr(n->value, '%'))
		return n->value;
	st.root = root_of(n);
	if (n->exp && n->exp_gen == st.root->gen)
		return n->exp;
	rc = expand(&st, n->value, 0);
	if (rc < 0) {
		sb_free(&st.out);
		if (rc == -ENOMEM)
			log_err("%s: out of memory", cfg_path(n));
		else
			log_err("%s: %s", cfg_path(n), st.why);
		errno = -rc;
		return NULL;
	}
	free(n->exp);
	n->exp = st.out.s ? st.out.s : strdup("");
	if (!n->exp) {
		errno = ENOMEM;
		return NULL;
	}
	n->exp_gen = st.root->gen;
	return n->exp;
}

/* Look up 'path' for reading: the leaf, or NULL with errno set. */
static struct cfg_node *leaf_find(struct cfg_node *parent, const char *path)
{
	char why[CFG_WHY_LEN];
	struct cfg_node *n;
	int err;

	if (!parent || !path) {
		errno = ENOENT;
		return NULL;
	}
	n = walk(parent, path, false, &err, why);
	if (!n) {
		errno = ENOENT;
		return NULL;
	}
	if (!n->value) {
		log_err("%s: is a configuration node, not a value",
			cfg_path(n));
		errno = EINVAL;
		return NULL;
	}
	return n;
}

const char *cfg_get(struct cfg_node *parent, const char *path)
{
	struct cfg_node *n = leaf_find(parent, path);

	return n ? leaf_get(n) : NULL;
}

/* ---- typed values ---- */

int cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "on", "yes", "1"};
	static const char *const no[] = {"false", "off", "no", "0"};
	size_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* strtoull(base 0) over the whole string; no sign, no blanks. */
static int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/*
 * A bare number is in units of 'unit' bytes.  As bhyve's vm_parse_memsize,
 * when the unit is 1 MiB a bare number of 1 MiB or more is taken as bytes
 * ("-m 1073741824" is 1 GiB, not 1 PiB).
 */
int cfg_parse_size(const char *s, uint64_t unit, uint64_t *out)
{
	unsigned long long v;
	unsigned shift;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	if (unit == 0)
		unit = 1;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno)
		return -EINVAL;
	if (*end == '\0') {
		if (unit == MIB && v >= MIB)
			unit = 1;
		if (v > UINT64_MAX / unit)
			return -EINVAL;
		*out = v * unit;
		return 0;
	}
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return -EINVAL;
	}
	if (end[1] != '\0' || v > (UINT64_MAX >> shift))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/*
 * Common part of the typed getters: *v = expanded value, or NULL when the
 * key is unset.  Returns 0 or -errno (already logged).
 */
static int typed_lookup(struct cfg_node *parent, const char *path,
			struct cfg_node **np, const char **v)
{
	struct cfg_node *n = leaf_find(parent, path);

	*v = NULL;
	if (!n)
		return errno == ENOENT ? 0 : -errno;
	*v = leaf_get(n);
	if (!*v)
		return -errno;
	*np = n;
	return 0;
}

int cfg_get_bool(struct cfg_node *parent, const char *path, bool def, bool *out)
{
	struct cfg_node *n = NULL;
	const char *v;
	int rc = typed_lookup(parent, path, &n, &v);

	if (rc < 0)
		return rc;
	if (!v) {
		*out = def;
		return 0;
	}
	if (cfg_parse_bool(v, out) < 0) {
		log_err("%s: invalid bool '%s'", cfg_path(n), v);
		return -EINVAL;
	}
	return 0;
}

int cfg_get_u64(struct cfg_node *parent, const char *path, uint64_t def,
		uint64_t min, uint64_t max, uint64_t *out)
{
	struct cfg_node *n = NULL;
	const char *v;
	uint64_t x;
	int rc = typed_lookup(parent, path, &n, &v);

	if (rc < 0)
		return rc;
	if (!v) {
		*out = def;
		return 0;
	}
	if (parse_u64(v, &x) < 0) {
		log_err("%s: invalid integer '%s'", cfg_path(n), v);
		return -EINVAL;
	}
	if (x < min || x > max) {
		log_err("%s: invalid integer '%s' (must be between %llu and "
			"%llu)",
			cfg_path(n), v, (unsigned long long)min,
			(unsigned long long)max);
		return -EINVAL;
	}
	*out = x;
	return 0;
}

int cfg_get_size(struct cfg_node *parent, const char *path, uint64_t def,
		 uint64_t unit, uint64_t *out)
{
	struct cfg_node *n = NULL;
	const char *v;
	int rc = typed_lookup(parent, path, &n, &v);

	if (rc < 0)
		return rc;
	if (!v) {
		*out = def;
		return 0;
	}
	if (cfg_parse_size(v, unit, out) < 0) {
		log_err("%s: invalid size '%s'", cfg_path(n), v);
		return -EINVAL;
	}
	return 0;
}

/* ---- introspection ---- */

const char *cfg_name(const struct cfg_node *n)
{
	return n ? n->name : NULL;
}

bool cfg_is_leaf(const struct cfg_node *n)
{
	return n && n->value;
}

struct cfg_node *cfg_first_child(struct cfg_node *n)
{
	return n ? n->child : NULL;
}

struct cfg_node *cfg_next(struct cfg_node *n)
{
	return n ? n->next : NULL;
}

const char *cfg_path(const struct cfg_node *n)
{
	static __thread char buf[CFG_MAX_DEPTH * (CFG_MAX_NAME + 1) + 1];
	const struct cfg_node *chain[CFG_MAX_DEPTH + 1];
	size_t len = 0, nl;
	int count = 0, i;

	buf[0] = '\0';
	for (; n && n->parent && count <= CFG_MAX_DEPTH; n = n->parent)
		chain[count++] = n;
	for (i = count - 1; i >= 0; i--) {
		nl = strlen(chain[i]->name);
		if (len + nl + 2 > sizeof(buf))
			break;
		if (len)
			buf[len++] = '.';
		memcpy(buf + len, chain[i]->name, nl);
		len += nl;
		buf[len] = '\0';
	}
	return buf;
}

/* ---- dump, -o, -k, legacy options ---- */

static void dump_node(struct cfg_node *n, struct sbuf *prefix, FILE *f)
{
	struct cfg_node *c;
	size_t mark;

	for (c = n->child; c; c = c->next) {
		mark = prefix->len;
		if (prefix->len)
			sb_add(prefix, ".");
		sb_add(prefix, c->name);
		if (c->value) {
			if (strcmp(sb_str(prefix), "config.dump") != 0)
				fprintf(f, "%s=%s\n", sb_str(prefix), c->value);
		} else {
			dump_node(c, prefix, f);
		}
		sb_trunc(prefix, mark);
	}
}

/*
 * Leaves are printed with their full path from the root; the key
 * "config.dump" is left out so that a dump fed back with -k does not dump
 * again.
 */
void cfg_dump(struct cfg_node *root, FILE *f)
{
	struct sbuf prefix = {0};

	if (!root)
		return;
	sb_add(&prefix, cfg_path(root));
	dump_node(root, &prefix, f);
	sb_free(&prefix);
	fflush(f);
}

int cfg_parse_option(struct cfg_node *root, const char *kv)
{
	char why[CFG_WHY_LEN];
	const char *eq = kv ? strchr(kv, '=') : NULL;
	char *path;
	int rc;

	if (!eq || eq == kv) {
		log_err("invalid configuration option '%s'", kv ? kv : "");
		return -EINVAL;
	}
	path = strndup(kv, (size_t)(eq - kv));
	if (!path) {
		log_err("out of memory");
		return -ENOMEM;
	}
	rc = set_value(root, path, eq + 1, false, why);
	free(path);
	if (rc == -ENOMEM) {
		log_err("out of memory");
		return rc;
	}
	if (rc < 0) {
		log_err("invalid configuration option '%s' (%s)", kv, why);
		return -EINVAL;
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* One "path=value" line of a -k file (already trimmed, not blank). */
static int parse_line(struct cfg_node *root, const char *file, unsigned lineno,
		      char *line)
{
	char why[CFG_WHY_LEN];
	char *eq = strchr(line, '='), *path, *value;
	int rc;

	if (!eq) {
		log_err("%s:%u: expected path=value, got '%s'", file, lineno,
			line);
		return -EINVAL;
	}
	*eq = '\0';
	path = trim(line);
	value = eq + 1;
	while (isspace((unsigned char)*value))
		value++;
	if (!*path) {
		log_err("%s:%u: expected path=value, got '=%s'", file, lineno,
			value);
		return -EINVAL;
	}
	rc = set_value(root, path, value, false, why);
	if (rc < 0) {
		log_err("%s:%u: %s", file, lineno, why);
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	return 0;
}

/*
 * Read one line of at most CFG_MAX_LINE bytes into buf (NUL-terminated,
 * newline dropped).  Returns 1 (a line), 0 (end of file), -E2BIG (longer:
 * the rest is not read, so an endless line cannot eat memory), -EINVAL (a
 * NUL byte) or -errno (read error).
 */
static int read_line(FILE *f, char *buf)
{
	size_t len = 0;
	bool nul = false;
	int c;

	errno = 0;
	while ((c = getc(f)) != EOF && c != '\n') {
		if (len == CFG_MAX_LINE)
			return -E2BIG;
		if (c == '\0')
			nul = true;
		buf[len++] = (char)c;
	}
	buf[len] = '\0';
	if (c == EOF && ferror(f))
		return errno ? -errno : -EIO;
	if (c == EOF && len == 0)
		return 0;
	return nul ? -EINVAL : 1;
}

/*
 * Blanks around '=' are dropped too ("key = value" is key=value); values
 * may be empty.  A line holding a NUL byte or longer than CFG_MAX_LINE
 * bytes is an error.
 */
int cfg_parse_file(struct cfg_node *root, const char *file)
{
	unsigned lineno = 0;
	char *buf, *line;
	FILE *f;
	int rc, e;

	f = fopen(file, "r");
	if (!f) {
		e = errno;
		log_errno(LOG_ERR, e, "%s", file);
		return -e;
	}
	buf = malloc(CFG_MAX_LINE + 1);
	if (!buf) {
		fclose(f);
		log_err("%s: out of memory", file);
		return -ENOMEM;
	}
	for (;;) {
		rc = read_line(f, buf);
		if (rc == 0)
			break;
		lineno++;
		if (rc == -E2BIG) {
			log_err("%s:%u: line longer than %d bytes", file,
				lineno, CFG_MAX_LINE);
			rc = -EINVAL;
			break;
		}
		if (rc == -EINVAL) {
			log_err("%s:%u: NUL byte in line", file, lineno);
			break;
		}
		if (rc < 0) {
			log_errno(LOG_ERR, -rc, "%s", file);
			break;
		}
		line = trim(buf);
		if (*line == '\0' || *line == '#')
			continue;
		rc = parse_line(root, file, lineno, line);
		if (rc < 0)
			break;
	}
	free(buf);
	fclose(f);
	return rc < 0 ? rc : 0;
}

/*
 * Empty items (",,", a trailing ',') are skipped; "=value" (an empty name)
 * is an error.
 */
int cfg_split_opts(struct cfg_node *node, const char *opts)
{
	char why[CFG_WHY_LEN];
	char *copy, *cur, *tok, *eq;
	const char *value;
	int rc = 0;

	if (!opts || !*opts)
		return 0;
	copy = strdup(opts);
	if (!copy) {
		log_err("out of memory");
		return -ENOMEM;
	}
	cur = copy;
	while ((tok = strsep(&cur, ",")) != NULL) {
		if (*tok == '\0')
			continue;
		eq = strchr(tok, '=');
		value = "true";
		if (eq) {
			*eq = '\0';
			value = eq + 1;
		}
		if (*tok == '\0') {
			log_err("%s: empty option name in '%s'", cfg_path(node),
				opts);
			rc = -EINVAL;
			break;
		}
		rc = set_value(node, tok, value, false, why);
		if (rc < 0) {
			log_err("%s", why);
			break;
		}
	}
	free(copy);
	return rc;
}

/* ---- schemas ---- */

/*
 * Does pattern 'pat' (components, '*' matches one) match 'name'?  With
 * 'prefix', 'pat' may match only the leading components of 'name'.
 */
static bool pattern_match(const char *pat, const char *name, bool prefix)
{
	const char *pe, *ne;
	size_t pl, nl;

	for (;;) {
		pe = strchr(pat, '.');
		ne = strchr(name, '.');
		pl = pe ? (size_t)(pe - pat) : strlen(pat);
		nl = ne ? (size_t)(ne - name) : strlen(name);
		if (!(pl == 1 && pat[0] == '*') &&
		    (pl != nl || strncmp(pat, name, pl) != 0))
			return false;
		if (!pe)
			return !ne || prefix;
		if (!ne)
			return false;
		pat = pe + 1;
		name = ne + 1;
	}
}

const struct cfg_key *cfg_schema_find(const struct cfg_key *const *schemas,
				      const char *name)
{
	const struct cfg_key *k;
	size_t i;

	if (!schemas || !name)
		return NULL;
	for (i = 0; schemas[i]; i++)
		for (k = schemas[i]; k->name; k++)
			if (pattern_match(k->name, name, k->type == CFG_NODE))
				return k;
	return NULL;
}

/* Is value v acceptable for key k?  Fills why when not. */
static bool value_ok(const struct cfg_key *k, const char *v, char *why)
{
	uint64_t x, max;
	bool b;

	max = k->max ? k->max : UINT64_MAX;
	switch (k->type) {
	case CFG_BOOL:
		if (cfg_parse_bool(v, &b) < 0) {
			why_set(why, "not a boolean");
			return false;
		}
		return true;
	case CFG_INT:
		if (parse_u64(v, &x) < 0) {
			why_set(why, "not an integer");
			return false;
		}
		break;
	case CFG_SIZE:
		if (cfg_parse_size(v, k->unit, &x) < 0) {
			why_set(why, "not a size");
			return false;
		}
		break;
	default:
		return true;
	}
	if (x < k->min || x > max) {
		why_set(why, "must be between %llu and %llu",
			(unsigned long long)k->min, (unsigned long long)max);
		return false;
	}
	return true;
}

static int check_node(struct cfg_node *n, struct sbuf *rel,
		      const struct cfg_key *const *schemas)
{
	char why[CFG_WHY_LEN];
	const struct cfg_key *k;
	struct cfg_node *c;
	const char *v;
	size_t mark;
	int rc = 0;

	for (c = n->child; c && rc == 0; c = c->next) {
		mark = rel->len;
		if (rel->len)
			sb_add(rel, ".");
		sb_add(rel, c->name);
		if (rel->oom) {
			rc = -ENOMEM;
			break;
		}
		k = cfg_schema_find(schemas, sb_str(rel));
		if (k && k->type == CFG_NODE) {
			/* described elsewhere */
		} else if (!c->value) {
			rc = check_node(c, rel, schemas);
		} else if (!k) {
			log_err("%s: unknown configuration key", cfg_path(c));
			rc = -EINVAL;
		} else if (!(v = leaf_get(c))) {
			rc = -EINVAL;
		} else if (!value_ok(k, v, why)) {
			log_err("%s: invalid value '%s' (%s)", cfg_path(c), v,
				why);
			rc = -EINVAL;
		}
		sb_trunc(rel, mark);
	}
	return rc;
}

int cfg_check(struct cfg_node *node, const struct cfg_key *const *schemas)
{
	struct sbuf rel = {0};
	int rc;

	if (!node)
		return 0;
	rc = check_node(node, &rel, schemas);
	sb_free(&rel);
	return rc < 0 ? -EINVAL : 0;
}
