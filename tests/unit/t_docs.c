/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The manual pages against the code.  docs/man/khyve_config.5 must have a
 * table row
 *
 *   .It Va NAME Ta FORMAT Ta DEFAULT Ta [description]
 *
 * for every key of keys_global(), keys_pci_generic(), keys_lpc_generic()
 * and of every registered device model (devmodel_next()), with '*' path
 * components written as 'N', a FORMAT that fits the key's type and the
 * schema's DEFAULT (empty when it has none); every such row must name a
 * key the code knows.  docs/man/khyve.8 must have an ".It Fl X" entry for
 * every option letter of khyve's getopt string, and flags_parse() must
 * accept exactly those letters.  The row parser is also fed malformed
 * lines.  Paths are relative to the repository root, where the tests run.
 *
 * Single-threaded.  stderr is redirected to a temporary file while
 * flags_parse() runs, to read its messages.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/flags.h"
#include "config/keys.h"
#include "core/devmodel.h"
#include "tests/tap.h"

#define CONFIG_PAGE "docs/man/khyve_config.5"
#define KHYVE_PAGE "docs/man/khyve.8"
#define FLAGS_SOURCE "src/config/flags.c"
#define ROW_PREFIX ".It Va "
#define ROW_MACRO ".It Va"

/* One ".It Va" table row of khyve_config.5. */
struct row {
	char *name;    /* '*' for 'N' components */
	char *format;  /* second cell */
	char *def;     /* third cell, "" when empty */
	unsigned line; /* 1-based */
	bool used;     /* matched a schema key */
};

struct rows {
	struct row *v;
	size_t n, cap;
};

static void rows_free(struct rows *rs)
{
	size_t i;

	for (i = 0; i < rs->n; i++) {
		free(rs->v[i].name);
		free(rs->v[i].format);
		free(rs->v[i].def);
	}
	free(rs->v);
	memset(rs, 0, sizeof(*rs));
}

/* Append word [w, w+len) to *cell with one blank between words. */
static int cell_add(char **cell, const char *w, size_t len)
{
	size_t old = *cell ? strlen(*cell) : 0;
	char *p = realloc(*cell, old + len + 2);

	if (!p)
		return -ENOMEM;
	if (old)
		p[old++] = ' ';
	memcpy(p + old, w, len);
	p[old + len] = '\0';
	*cell = p;
	return 0;
}

/*
 * Parse one line.  Returns 1 and fills *r for a row, 0 when the line is
 * not a row, -EINVAL for a row with fewer than three cells or a name with
 * a blank in it, -ENOMEM.  Cells are the words between "Ta" macros.
 */
static int row_parse(const char *line, struct row *r)
{
	char *cells[3] = {NULL, NULL, NULL};
	const char *p, *w;
	size_t len, ncell = 0, nwords = 0, i;
	int rc = -EINVAL;

	memset(r, 0, sizeof(*r));
	len = strlen(ROW_MACRO);
	if (strncmp(line, ROW_MACRO, len) != 0 ||
	    (line[len] && !isspace((unsigned char)line[len])))
		return 0;
	for (p = line + len;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '\n')
			break;
		w = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		len = (size_t)(p - w);
		if (len == 2 && strncmp(w, "Ta", 2) == 0) {
			if (ncell == 0 && nwords != 1)
				goto out; /* the name must be one word */
			if (++ncell == 3)
				break; /* the description is not checked */
			nwords = 0;
			continue;
		}
		if (cell_add(&cells[ncell], w, len) < 0) {
			rc = -ENOMEM;
			goto out;
		}
		nwords++;
	}
	if (ncell < 3)
		goto out;
	for (i = 1; i < 3; i++)
		if (!cells[i] && !(cells[i] = strdup(""))) {
			rc = -ENOMEM;
			goto out;
		}
	/* "vcpu.N.cpuset" names schema key "vcpu.*.cpuset" */
	for (i = 0; cells[0][i]; i++)
		if (cells[0][i] == 'N' && (i == 0 || cells[0][i - 1] == '.') &&
		    (cells[0][i + 1] == '.' || cells[0][i + 1] == '\0'))
			cells[0][i] = '*';
	r->name = cells[0];
	r->format = cells[1];
	r->def = cells[2];
	return 1;
out:
	for (i = 0; i < 3; i++)
		free(cells[i]);
	return rc;
}

/* Read every row of 'path'.  0, or -errno; malformed rows are counted. */
static int rows_read(const char *path, struct rows *rs, unsigned *bad)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	struct row r, *grown;
	FILE *f;
	int rc = 0;

	*bad = 0;
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		rc = row_parse(line, &r);
		if (rc == -EINVAL) {
			diag("%s:%u: malformed row: %.*s", path, lineno,
			     (int)strcspn(line, "\n"), line);
			(*bad)++;
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		rc = 0;
		if (rs->n == rs->cap) {
			grown = realloc(rs->v,
					(rs->cap * 2 + 16) * sizeof(*grown));
			if (!grown) {
				free(r.name);
				free(r.format);
				free(r.def);
				rc = -ENOMEM;
				break;
			}
			rs->v = grown;
			rs->cap = rs->cap * 2 + 16;
		}
		r.line = lineno;
		rs->v[rs->n++] = r;
	}
	free(line);
	fclose(f);
	return rc;
}

static bool format_fits(enum cfg_type t, const char *fmt)
{
	switch (t) {
	case CFG_BOOL:
		return strcmp(fmt, "bool") == 0;
	case CFG_INT:
		return strcmp(fmt, "integer") == 0;
	case CFG_SIZE:
		return strcmp(fmt, "size") == 0;
	case CFG_NODE:
		return strcmp(fmt, "node") == 0;
	case CFG_STRING:
		return strcmp(fmt, "string") == 0 || strcmp(fmt, "path") == 0 ||
		       strcmp(fmt, "list") == 0;
	}
	return false;
}

static const char *type_name(enum cfg_type t)
{
	static const char *const names[] = {
		[CFG_STRING] = "string, path or list",
		[CFG_BOOL] = "bool",
		[CFG_INT] = "integer",
		[CFG_SIZE] = "size",
		[CFG_NODE] = "node",
	};

	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

/* One ok line: key k (from 'origin') has rows, and they agree with it. */
static void check_key(struct rows *rs, const struct cfg_key *k,
		      const char *origin)
{
	const char *want = k->def ? k->def : "";
	unsigned found = 0, wrong = 0;
	size_t i;

	for (i = 0; i < rs->n; i++) {
		struct row *r = &rs->v[i];

		if (strcmp(r->name, k->name) != 0)
			continue;
		found++;
		r->used = true;
		if (!format_fits(k->type, r->format)) {
			diag("%s:%u: %s: format '%s', the code's type is %s",
			     CONFIG_PAGE, r->line, k->name, r->format,
			     type_name(k->type));
			wrong++;
		}
		if (strcmp(r->def, want) != 0) {
			diag("%s:%u: %s: default '%s', the code says '%s'",
			     CONFIG_PAGE, r->line, k->name, r->def, want);
			wrong++;
		}
	}
	if (!found)
		diag("%s: no row '" ROW_PREFIX "%s Ta ...' (write '*' as 'N')",
		     CONFIG_PAGE, k->name);
	ok(found && !wrong, "khyve_config.5 documents %s (%s)", k->name,
	   origin);
}

static unsigned check_table(struct rows *rs, const struct cfg_key *t,
			    const char *origin)
{
	unsigned n = 0;

	for (; t && t->name; t++, n++)
		check_key(rs, t, origin);
	return n;
}

static void test_config_page(void)
{
	const struct cfg_key *const *g;
	const struct devmodel *m;
	struct rows rs = {0};
	char origin[96];
	unsigned bad, nkeys = 0, nmodels = 0, stale = 0;
	size_t i;
	int rc;

	rc = rows_read(CONFIG_PAGE, &rs, &bad);
	if (rc < 0) {
		ok(0, "read %s (run from the repository root): %s", CONFIG_PAGE,
		   strerror(-rc));
		rows_free(&rs);
		return;
	}
	ok(rs.n > 0 && bad == 0, "%s: %zu table rows, %u malformed",
	   CONFIG_PAGE, rs.n, bad);

	for (g = keys_global(); *g; g++)
		nkeys += check_table(&rs, *g, "global");
	nkeys += check_table(&rs, keys_pci_generic(), "every PCI function");
	nkeys += check_table(&rs, keys_lpc_generic(), "lpc node");
	for (m = devmodel_next(NULL); m; m = devmodel_next(m)) {
		snprintf(origin, sizeof(origin), "%s model %s",
			 m->kind == DEVMODEL_PCI ? "PCI" : "LPC", m->name);
		nkeys += check_table(&rs, m->keys, origin);
		nmodels++;
	}
	ok(nmodels >= 3 && nkeys >= 50,
	   "walked %u device models and %u keys in all", nmodels, nkeys);

	for (i = 0; i < rs.n; i++) {
		if (rs.v[i].used)
			continue;
		diag("%s:%u: row '%s' names no key the code knows", CONFIG_PAGE,
		     rs.v[i].line, rs.v[i].name);
		stale++;
	}
	ok(stale == 0, "every row of khyve_config.5 names a known key");
	rows_free(&rs);
}

/* ---- khyve.8 and the option letters ---- */

/*
 * khyve's getopt string: FLAGS_OPTSTRING if flags.h exports it, else the
 * "#define FLAGS_OPTSTRING" line of src/config/flags.c.  Returns a
 * malloc'ed string or NULL.
 */
static char *optstring_get(void)
{
#ifdef FLAGS_OPTSTRING
	return strdup(FLAGS_OPTSTRING);
#else
	static const char tag[] = "#define FLAGS_OPTSTRING \"";
	char *line = NULL, *res = NULL, *end;
	size_t cap = 0;
	FILE *f = fopen(FLAGS_SOURCE, "r");

	if (!f)
		return NULL;
	while (!res && getline(&line, &cap, f) >= 0) {
		if (strncmp(line, tag, strlen(tag)) != 0)
			continue;
		end = strchr(line + strlen(tag), '"');
		if (end)
			res = strndup(line + strlen(tag),
				      (size_t)(end - line - strlen(tag)));
	}
	free(line);
	fclose(f);
	return res;
#endif
}

/* Does 'page' have a line ".It Fl X" followed by a blank or the end? */
static bool page_has_flag(const char *page, char letter)
{
	char want[16];
	const char *p;
	size_t len;

	snprintf(want, sizeof(want), ".It Fl %c", letter);
	len = strlen(want);
	for (p = page; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, want, len) == 0 &&
		    (p[len] == ' ' || p[len] == '\n' || p[len] == '\0'))
			return true;
	return false;
}

static char *file_read(const char *path)
{
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	char *grown;
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			grown = realloc(buf, cap + 65536);
			if (!grown) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = grown;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/*
 * Run flags_parse() on "khyve -X /nonexistent/t_docs vm" and tell whether
 * getopt took X as an option (its message is not "invalid option").
 */
static bool flag_accepted(char letter)
{
	char opt[3] = {'-', letter, '\0'};
	char arg[] = "/nonexistent/t_docs", name[] = "vm", prog[] = "khyve";
	char *argv[] = {prog, opt, arg, name, NULL};
	char want[32], *msg = NULL;
	struct cfg_node *root;
	bool accepted = false;
	FILE *tmp;
	int saved;

	root = cfg_new();
	tmp = tmpfile();
	if (!root || !tmp)
		goto out;
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	if (saved < 0)
		goto out;
	if (dup2(fileno(tmp), STDERR_FILENO) < 0) {
		close(saved);
		goto out;
	}
	(void)flags_parse(root, 4, argv);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	fflush(tmp);
	rewind(tmp);
	msg = calloc(1, 4096);
	if (msg && fread(msg, 1, 4095, tmp) < 4096) {
		snprintf(want, sizeof(want), "invalid option -- '%c'", letter);
		accepted = strstr(msg, want) == NULL;
	}
out:
	free(msg);
	if (tmp)
		fclose(tmp);
	cfg_free(root);
	return accepted;
}

static void test_option_letters(void)
{
	char *opts = optstring_get(), *page = file_read(KHYVE_PAGE);
	unsigned letters = 0, extra = 0;
	const char *p;
	int c;

	ok(opts != NULL, "khyve's getopt string (from %s)", FLAGS_SOURCE);
	ok(page != NULL, "read %s (run from the repository root)", KHYVE_PAGE);
	if (!opts || !page)
		goto out;
	for (p = opts; *p; p++) {
		if (!isalnum((unsigned char)*p))
			continue;
		letters++;
		if (!page_has_flag(page, *p))
			diag("%s: no '.It Fl %c' entry", KHYVE_PAGE, *p);
		if (!flag_accepted(*p))
			diag("flags_parse() refuses -%c", *p);
		ok(page_has_flag(page, *p) && flag_accepted(*p),
		   "khyve.8 documents -%c (and flags_parse() accepts it)", *p);
	}
	ok(letters >= 25, "%u option letters in '%s'", letters, opts);
	for (c = 0; c < 128; c++) {
		if (!isalnum(c) || strchr(opts, c))
			continue;
		if (flag_accepted((char)c)) {
			diag("flags_parse() accepts -%c, which the getopt "
			     "string of %s lacks",
			     c, FLAGS_SOURCE);
			extra++;
		}
	}
	ok(extra == 0, "flags_parse() refuses every other letter");
out:
	free(opts);
	free(page);
}

/*
 * Does 'page' have a line starting with 'macro' (".It Cm") whose words,
 * commas aside, include 'name'?
 */
static bool page_lists(const char *page, const char *macro, const char *name)
{
	size_t mlen = strlen(macro), nlen = strlen(name);
	const char *p, *w;

	for (p = page; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, macro, mlen) != 0 || p[mlen] != ' ')
			continue;
		for (w = p + mlen; *w && *w != '\n'; w++)
			if ((w[-1] == ' ' || w[-1] == '\t') &&
			    strncmp(w, name, nlen) == 0 &&
			    (w[nlen] == ' ' || w[nlen] == '\n' ||
			     w[nlen] == '\0'))
				return true;
	}
	return false;
}

/* Every device model is listed in both pages (".It Cm" / ".It Li"). */
static void test_model_names(void)
{
	char *man8 = file_read(KHYVE_PAGE), *man5 = file_read(CONFIG_PAGE);
	const struct devmodel *m;
	bool in8, in5;

	ok(man8 && man5, "read both pages");
	if (!man8 || !man5)
		goto out;
	for (m = devmodel_next(NULL); m; m = devmodel_next(m)) {
		in8 = page_lists(man8, ".It Cm", m->name);
		/* LPC devices live in the lpc node's table of khyve_config.5 */
		in5 = m->kind != DEVMODEL_PCI ||
		      page_lists(man5, ".It Li", m->name);
		if (!in8)
			diag("%s: no '.It Cm %s' entry", KHYVE_PAGE, m->name);
		if (!in5)
			diag("%s: no '.It Li %s' entry", CONFIG_PAGE, m->name);
		ok(in8 && in5, "the pages list the %s model %s",
		   m->kind == DEVMODEL_PCI ? "PCI" : "LPC", m->name);
	}
out:
	free(man8);
	free(man5);
}

/* ---- the row parser on hostile lines ---- */

static void test_row_parser(void)
{
	static const char *const bad[] = {
		".It Va",
		".It Va ",
		".It Va name",
		".It Va name Ta string",
		".It Va name Ta string Ta",
		".It Va two words Ta string Ta Ta",
		".It Va Ta string Ta Ta",
		".It Va \t\t Ta Ta Ta",
	};
	static const char *const not_rows[] = {
		"",
		".It Sy Name Ta Sy Format Ta Sy Default Ta",
		".It Vax Ta string Ta Ta",
		" .It Va name Ta string Ta Ta",
		".\\\" .It Va name",
	};
	struct row r;
	char *huge;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is_int(row_parse(bad[i], &r), -EINVAL, "malformed row '%s'",
		       bad[i]);
	for (i = 0; i < sizeof(not_rows) / sizeof(not_rows[0]); i++)
		is_int(row_parse(not_rows[i], &r), 0, "not a row: '%s'",
		       not_rows[i]);

	rc = row_parse(".It Va system.family_name Ta string Ta Virtual "
		       "Machine Ta\n",
		       &r);
	ok(rc == 1 && strcmp(r.def, "Virtual Machine") == 0 &&
		   strcmp(r.format, "string") == 0,
	   "a default of two words is one cell");
	if (rc == 1) {
		free(r.name);
		free(r.format);
		free(r.def);
	}

	rc = row_parse(".It Va fwcfg.file.N.name Ta string Ta Ta descr Ta x",
		       &r);
	ok(rc == 1 && strcmp(r.name, "fwcfg.file.*.name") == 0 &&
		   strcmp(r.def, "") == 0,
	   "N components become '*', an empty default is \"\"");
	if (rc == 1) {
		free(r.name);
		free(r.format);
		free(r.def);
	}

	rc = row_parse(".It Va NaN.NN.N Ta node Ta Ta", &r);
	ok(rc == 1 && strcmp(r.name, "NaN.NN.*") == 0,
	   "only whole 'N' components are wildcards");
	if (rc == 1) {
		free(r.name);
		free(r.format);
		free(r.def);
	}

	/* a 1 MiB line: one huge default cell */
	huge = malloc(1 << 20);
	if (huge) {
		memset(huge, 'x', (1 << 20) - 1);
		huge[(1 << 20) - 1] = '\0';
		memcpy(huge, ".It Va k Ta size Ta ", 20);
		memcpy(huge + (1 << 20) - 4, " Ta", 3);
		rc = row_parse(huge, &r);
		ok(rc == 1 && strlen(r.def) == (1 << 20) - 24,
		   "a 1 MiB row parses");
		if (rc == 1) {
			free(r.name);
			free(r.format);
			free(r.def);
		}
		free(huge);
	}
}

int main(void)
{
	plan_no_plan();
	test_row_parser();
	test_config_page();
	test_option_letters();
	test_model_names();
	return done_testing();
}
