/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm(8) helpers: messages, argument vectors, names and sizes, files
 * (recursive mkdir/rm, atomic writes, copies with a progress bar), running
 * helper programs (ip) and finding khyve's binaries.
 *
 * Threads: single-threaded callers only (vm_bindir() keeps a static
 * buffer).  No locks.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/vm/vm.h"

void vm_err(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vm: %s\n", buf);
}

void vm_warn(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vm: warning: %s\n", buf);
}

int vm_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int argv_add(struct argv *a, const char *fmt, ...)
{
	char **nv;
	va_list ap;
	char *s;
	int n;

	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 32;

		nv = realloc(a->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		a->v = nv;
		a->cap = cap;
	}
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
	return 0;
}

void argv_free(struct argv *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

bool vm_yes(const char *s, bool def, bool *ok)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	size_t i;

	if (ok)
		*ok = true;
	if (!s)
		return def;
	for (i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i]))
			return true;
		if (!strcasecmp(s, no[i]))
			return false;
	}
	if (ok)
		*ok = false;
	return def;
}

int vm_parse_size(const char *s, bool mb_default, uint64_t *out)
{
	static const char suffixes[] = "KMGTPE";
	uint64_t v, mul = mb_default ? 1ULL << 20 : 1;
	const char *p;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		p = strchr(suffixes, toupper((unsigned char)*end));
		if (!p || !*p)
			return -EINVAL;
		mul = 1ULL << (10 * (p - suffixes + 1));
		end++;
		if (*end == 'B' || *end == 'b')
			end++;
	}
	if (*end || (v && mul > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

const char *vm_human(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1024 && u < 6) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lluB", (unsigned long long)v);
	else
		snprintf(buf, len, "%.3f%c", d, units[u]);
	return buf;
}

bool vm_name_ok(const char *s, size_t max, const char *extra)
{
	size_t i;

	if (!s || !*s || strlen(s) > max || s[0] == '.' || s[0] == '-')
		return false;
	for (i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '_' && c != '.' && c != '-' &&
		    !(extra && strchr(extra, c)))
			return false;
	}
	return true;
}

int vm_uuid(char *buf)
{
	unsigned char b[16];
	ssize_t n;
	int fd, i;
	char *p = buf;

	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, b, sizeof(b));
	close(fd);
	if (n != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		p += sprintf(p, "%02x", b[i]);
	}
	return 0;
}

uint64_t vm_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

int vm_mkdirs(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	char *p;

	if (vm_fmt(buf, sizeof(buf), "%s", path))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int rmtree_at(int dfd, const char *name)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int fd, rc = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 ? -errno : 0;
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((rc = rmtree_at(fd, de->d_name)))
			break;
	}
	closedir(d);
	if (!rc && unlinkat(dfd, name, AT_REMOVEDIR) < 0)
		rc = -errno;
	return rc;
}

int vm_rmtree(const char *path)
{
	return rmtree_at(AT_FDCWD, path);
}

int vm_read_file(const char *path, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf, *nb;
	ssize_t r;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(cap);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		if (n + 1 >= cap) {
			if (cap >= (16u << 20)) {
				free(buf);
				close(fd);
				return -EFBIG;
			}
			nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			free(buf);
			close(fd);
			return (int)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int vm_write_file(const char *path, const char *data, size_t len, mode_t m)
{
	char tmp[PATH_MAX];
	int fd, rc;

	if (vm_fmt(tmp, sizeof(tmp), "%s.tmp", path)) {
		vm_err("%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, m);
	if (fd < 0) {
		rc = -errno;
		vm_err("%s: %s", tmp, strerror(-rc));
		return rc;
	}
	rc = write_all(fd, data, len);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc) {
		vm_err("%s: %s", path, strerror(-rc));
		unlink(tmp);
	}
	return rc;
}

/* One progress line: "name  [#####-----]  45%  1.2G/2.6G". */
static void progress(const char *name, uint64_t done, uint64_t total)
{
	char a[32], b[32], bar[31];
	unsigned pct = total ? (unsigned)(done * 100 / total) : 100;
	unsigned fill = pct * 30 / 100, i;

	for (i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[30] = '\0';
	fprintf(stderr, "\r%-24.24s [%s] %3u%% %s/%s ", name, bar, pct,
		vm_human(done, a, sizeof(a)), vm_human(total, b, sizeof(b)));
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Copy len bytes from in to out; copy_file_range, else read/write. */
static int copy_fds(int in, int out, const char *name, uint64_t total)
{
	static char buf[1 << 20];
	bool bar = isatty(2), use_cfr = true;
	uint64_t done = 0, last = 0;
	ssize_t r;
	int rc;

	if (bar)
		progress(name, 0, total);
	for (;;) {
		if (use_cfr) {
			r = copy_file_range(in, NULL, out, NULL, 8u << 20, 0);
			if (r < 0 && (errno == EXDEV || errno == ENOSYS ||
				      errno == EINVAL || errno == EOPNOTSUPP)) {
				use_cfr = false;
				continue;
			}
		} else {
			r = read(in, buf, sizeof(buf));
			if (r > 0 && (rc = write_all(out, buf, (size_t)r)))
				return rc;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += (uint64_t)r;
		if (bar && now_ms() - last >= 200) {
			last = now_ms();
			progress(name, done, total > done ? total : done);
		}
	}
	if (bar) {
		progress(name, done, done);
		fputc('\n', stderr);
	}
	return 0;
}

int vm_copy_file(const char *src, const char *dst)
{
	char tmp[PATH_MAX];
	const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
	struct stat st;
	int in, out, rc;

	if (vm_fmt(tmp, sizeof(tmp), "%s.part", dst)) {
		vm_err("%s: path too long", dst);
		return -ENAMETOOLONG;
	}
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		rc = -errno;
		vm_err("%s: %s", src, strerror(-rc));
		if (in >= 0)
			close(in);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		vm_err("%s: not a regular file", src);
		close(in);
		return -EINVAL;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		rc = -errno;
		vm_err("%s: %s", tmp, strerror(-rc));
		close(in);
		return rc;
	}
	rc = copy_fds(in, out, base, (uint64_t)st.st_size);
	if (!rc && fsync(out) < 0)
		rc = -errno;
	if (close(out) < 0 && !rc)
		rc = -errno;
	close(in);
	if (!rc && rename(tmp, dst) < 0)
		rc = -errno;
	if (rc) {
		vm_err("copying %s to %s: %s", src, dst, strerror(-rc));
		unlink(tmp);
	}
	return rc;
}

bool vm_confirm(const char *fmt, ...)
{
	char line[64];
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputs(" (y/n)? ", stdout);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		fputc('\n', stdout);
		return false;
	}
	return line[0] == 'y' || line[0] == 'Y';
}

/* Keep the last line of captured stderr text in err. */
static void last_line(const char *text, size_t n, char *err, size_t errlen)
{
	const char *end = text + n, *start;

	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	start = end;
	while (start > text && start[-1] != '\n')
		start--;
	snprintf(err, errlen, "%.*s", (int)(end - start), start);
}

/* A growable byte buffer for a child's output. */
struct buf {
	char *p;
	size_t n, cap;
};

/* Read what fd has into b; returns false at end of file or error. */
static bool buf_read(struct buf *b, int fd)
{
	ssize_t r;
	char *np;

	if (b->n + 4096 + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8192;

		np = realloc(b->p, cap);
		if (!np)
			return false;
		b->p = np;
		b->cap = cap;
	}
	do {
		r = read(fd, b->p + b->n, b->cap - b->n - 1);
	} while (r < 0 && errno == EINTR);
	if (r <= 0)
		return false;
	b->n += (size_t)r;
	b->p[b->n] = '\0';
	return true;
}

static void exec_sbin(char *argv[])
{
	static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin",
					   "/bin"};
	char path[PATH_MAX];
	size_t i;

	execvp(argv[0], argv);
	if (strchr(argv[0], '/'))
		return;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dirs[i], argv[0]);
		execv(path, argv);
	}
}

static void close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	p[0] = p[1] = -1;
}

/* The child: its stdout/stderr to the pipes (when wanted), then exec; an
 * exec failure is reported as errno on the status pipe. */
static void child_exec(char **argv, int o[2], int e[2], int x[2])
{
	int err;

	if (o[1] >= 0)
		dup2(o[1], 1);
	if (e[1] >= 0)
		dup2(e[1], 2);
	exec_sbin(argv);
	err = errno;
	if (write(x[1], &err, sizeof(err)) < 0)
		_exit(127);
	_exit(127);
}

static int run_cmd(char **argv, char **out, char *err, size_t errlen)
{
	int o[2] = {-1, -1}, e[2] = {-1, -1}, x[2] = {-1, -1}, st, rc, xerr;
	struct buf ob = {0}, eb = {0};
	struct pollfd pf[2];
	pid_t pid;
	ssize_t r;

	if (pipe2(x, O_CLOEXEC) < 0 || (out && pipe2(o, O_CLOEXEC) < 0) ||
	    (err && pipe2(e, O_CLOEXEC) < 0)) {
		rc = -errno;
		close_pair(x);
		close_pair(o);
		close_pair(e);
		return rc;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		child_exec(argv, o, e, x);
	rc = pid < 0 ? -errno : 0;
	close(x[1]);
	if (o[1] >= 0)
		close(o[1]);
	if (e[1] >= 0)
		close(e[1]);
	o[1] = e[1] = x[1] = -1;
	/* both pipes at once, so a chatty child cannot block on either */
	while (!rc && (o[0] >= 0 || e[0] >= 0)) {
		pf[0] = (struct pollfd){.fd = o[0], .events = POLLIN};
		pf[1] = (struct pollfd){.fd = e[0], .events = POLLIN};
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents && !buf_read(&ob, o[0])) {
			close(o[0]);
			o[0] = -1;
		}
		if (pf[1].revents && !buf_read(&eb, e[0])) {
			close(e[0]);
			e[0] = -1;
		}
	}
	close_pair(o);
	close_pair(e);
	if (rc) {
		close(x[0]);
		return rc;
	}
	do {
		r = read(x[0], &xerr, sizeof(xerr));
	} while (r < 0 && errno == EINTR);
	close(x[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (r == (ssize_t)sizeof(xerr)) {
		free(ob.p);
		free(eb.p);
		return -xerr; /* could not run it: -ENOENT when missing */
	}
	rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	if (err && errlen) {
		err[0] = '\0';
		if (eb.p && rc)
			last_line(eb.p, eb.n, err, errlen);
	}
	free(eb.p);
	if (out)
		*out = ob.p ? ob.p : strdup("");
	else
		free(ob.p);
	return rc;
}

/* A mutable copy of argv for exec. */
static char **argv_dup(const char *const argv[])
{
	size_t n = 0, i;
	char **v;

	while (argv[n])
		n++;
	v = calloc(n + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (i = 0; i < n; i++) {
		if (!(v[i] = strdup(argv[i]))) {
			while (i--)
				free(v[i]);
			free(v);
			return NULL;
		}
	}
	return v;
}

static void argv_release(char **v)
{
	size_t i;

	for (i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

int vm_run_cmd(const char *const argv[], char **out, char *err, size_t errlen)
{
	char **v = argv_dup(argv);
	int rc;

	if (!v)
		return -ENOMEM;
	rc = run_cmd(v, out, err, errlen);
	argv_release(v);
	return rc;
}

const char *vm_bindir(void)
{
	static char dir[PATH_MAX];
	const char *env = getenv("KHYVE_BIN_DIR");
	ssize_t n;
	char *slash;

	if (dir[0])
		return dir;
	if (env && *env) {
		snprintf(dir, sizeof(dir), "%s", env);
		return dir;
	}
	n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
	if (n <= 0) {
		snprintf(dir, sizeof(dir), ".");
		return dir;
	}
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	return dir;
}

const char *vm_khyve_path(void)
{
	static char path[PATH_MAX + 8];

	if (!path[0])
		snprintf(path, sizeof(path), "%s/khyve", vm_bindir());
	return path;
}
