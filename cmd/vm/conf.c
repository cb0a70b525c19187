/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm-bhyve's configuration files: one key="value" per line, as sh(1)
 * would read them, with '#' comments and blank lines.  Values are
 * double-quoted (backslash escapes \" \\ \$ \` inside), single-quoted, or
 * a bare word.  The later of two lines setting a key wins, as in sh.
 *
 * Edits keep comments and the order of lines: conf_set() replaces a key's
 * line in place, new keys are appended.  Saving writes key="value" with
 * the quoting above, through a temporary file and rename(2).
 *
 * Threads: none shared; a struct conf belongs to its caller.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/vm/vm.h"

static int push(struct conf *c, char *raw, char *key, char *val)
{
	struct conf_line *nl;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;

		nl = realloc(c->l, cap * sizeof(*nl));
		if (!nl) {
			free(raw);
			free(key);
			free(val);
			return -ENOMEM;
		}
		c->l = nl;
		c->cap = cap;
	}
	c->l[c->n++] = (struct conf_line){raw, key, val};
	return 0;
}

static bool key_char(char ch, bool first)
{
	return ch == '_' || isalpha((unsigned char)ch) ||
	       (!first && isdigit((unsigned char)ch));
}

/* Parse the value at p (after '='): quoted or bare.  *val malloc'd. */
static int parse_value(const char *p, char **val)
{
	size_t n = strlen(p);
	char *out = malloc(n + 1), *o = out;
	char q = 0;

	if (!out)
		return -ENOMEM;
	if (*p == '"' || *p == '\'')
		q = *p++;
	while (*p) {
		if (q == '"' && *p == '\\' && p[1] && strchr("\"\\$`", p[1])) {
			*o++ = p[1];
			p += 2;
			continue;
		}
		if (q && *p == q)
			break;
		if (!q && (isspace((unsigned char)*p) || *p == '#'))
			break;
		if (!q && strchr("\"'`$\\;&|<>()", *p))
			goto bad; /* shell syntax we do not evaluate */
		*o++ = *p++;
	}
	if (q) {
		if (*p != q)
			goto bad;
		p++;
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p && *p != '#')
		goto bad;
	*o = '\0';
	*val = out;
	return 0;
bad:
	free(out);
	return -EINVAL;
}

static int parse_line(struct conf *c, const char *line, const char *what,
		      unsigned lineno)
{
	const char *p = line, *k;
	char *key, *val, *raw;
	int rc;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p || *p == '#') {
		raw = strdup(line);
		return raw ? push(c, raw, NULL, NULL) : -ENOMEM;
	}
	if (!strncmp(p, "export ", 7))
		p += 7;
	k = p;
	if (!key_char(*p, true))
		goto bad;
	while (key_char(*p, false))
		p++;
	if (*p != '=')
		goto bad;
	key = strndup(k, (size_t)(p - k));
	if (!key)
		return -ENOMEM;
	rc = parse_value(p + 1, &val);
	if (rc == -ENOMEM) {
		free(key);
		return rc;
	}
	if (rc) {
		free(key);
		goto bad;
	}
	return push(c, NULL, key, val);
bad:
	vm_err("%s:%u: cannot parse \"%s\" (expected key=\"value\")", what,
	       lineno, line);
	return -EINVAL;
}

int conf_parse(struct conf *c, const char *text, const char *what)
{
	const char *p = text, *nl;
	unsigned lineno = 0;
	char *line;
	int rc;

	while (*p) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		line = strndup(p, (size_t)(nl - p));
		if (!line)
			return -ENOMEM;
		if (*line && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = '\0';
		rc = parse_line(c, line, what, ++lineno);
		free(line);
		if (rc)
			return rc;
		p = *nl ? nl + 1 : nl;
	}
	return 0;
}

int conf_load(struct conf *c, const char *path, bool quiet_missing)
{
	size_t len;
	char *text;
	int rc;

	rc = vm_read_file(path, &text, &len);
	if (rc) {
		if (rc != -ENOENT || !quiet_missing)
			vm_err("%s: %s", path, strerror(-rc));
		return rc;
	}
	if (strlen(text) != len) {
		vm_err("%s: holds NUL bytes, not a configuration file", path);
		free(text);
		return -EINVAL;
	}
	rc = conf_parse(c, text, path);
	free(text);
	return rc;
}

const char *conf_get(const struct conf *c, const char *key)
{
	size_t i = c->n;

	while (i--)
		if (c->l[i].key && !strcmp(c->l[i].key, key))
			return c->l[i].val;
	return NULL;
}

const char *conf_getf(const struct conf *c, const char *fmt, ...)
{
	char key[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(key, sizeof(key), fmt, ap);
	va_end(ap);
	return conf_get(c, key);
}

static void line_free(struct conf_line *l)
{
	free(l->raw);
	free(l->key);
	free(l->val);
}

int conf_set(struct conf *c, const char *key, const char *val)
{
	size_t i, last = c->n;
	char *v = strdup(val);

	if (!v)
		return -ENOMEM;
	for (i = 0; i < c->n; i++)
		if (c->l[i].key && !strcmp(c->l[i].key, key))
			last = i;
	if (last < c->n) {
		free(c->l[last].val);
		c->l[last].val = v;
		/* drop earlier duplicates so the file has one line */
		for (i = last; i-- > 0;) {
			if (c->l[i].key && !strcmp(c->l[i].key, key)) {
				line_free(&c->l[i]);
				memmove(&c->l[i], &c->l[i + 1],
					(c->n - i - 1) * sizeof(c->l[0]));
				c->n--;
			}
		}
		return 0;
	}
	{
		char *k = strdup(key);

		if (!k) {
			free(v);
			return -ENOMEM;
		}
		return push(c, NULL, k, v);
	}
}

void conf_unset(struct conf *c, const char *key)
{
	size_t i = 0;

	while (i < c->n) {
		if (c->l[i].key && !strcmp(c->l[i].key, key)) {
			line_free(&c->l[i]);
			memmove(&c->l[i], &c->l[i + 1],
				(c->n - i - 1) * sizeof(c->l[0]));
			c->n--;
		} else {
			i++;
		}
	}
}

char *conf_text(const struct conf *c)
{
	size_t i, len = 1;
	char *out, *o;
	const char *s;

	for (i = 0; i < c->n; i++) {
		if (c->l[i].raw)
			len += strlen(c->l[i].raw) + 1;
		else
			len += strlen(c->l[i].key) + 2 * strlen(c->l[i].val) +
			       5;
	}
	out = malloc(len);
	if (!out)
		return NULL;
	o = out;
	for (i = 0; i < c->n; i++) {
		if (c->l[i].raw) {
			o += sprintf(o, "%s\n", c->l[i].raw);
			continue;
		}
		o += sprintf(o, "%s=\"", c->l[i].key);
		for (s = c->l[i].val; *s; s++) {
			if (strchr("\"\\$`", *s))
				*o++ = '\\';
			*o++ = *s;
		}
		*o++ = '"';
		*o++ = '\n';
	}
	*o = '\0';
	return out;
}

int conf_save(const struct conf *c, const char *path)
{
	char *text = conf_text(c);
	int rc;

	if (!text) {
		vm_err("%s: out of memory", path);
		return -ENOMEM;
	}
	rc = vm_write_file(path, text, strlen(text), 0644);
	free(text);
	return rc;
}

void conf_free(struct conf *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		line_free(&c->l[i]);
	free(c->l);
	memset(c, 0, sizeof(*c));
}
