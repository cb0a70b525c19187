/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Tests for src/ctl: a real control server on a real event loop (running on
 * a second thread) in a private RUNDIR, driven with ctl_call() and with raw
 * sockets that send hostile input: oversize lines, binary junk, partial
 * writes, silent clients, connection floods, slow readers.  Also the name
 * claim: a live owner (a forked child) refuses a second ctl_open() with its
 * pid in the message, and its directory is reclaimed once it is killed.
 *
 * Threads: the main thread runs the tests; 'loop_thread' runs the event
 * loop and so every handler.  Handlers only touch atomics.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "event/event.h"
#include "tests/tap.h"

#define BIG_LEN (1024 * 1024)

static char rundir[64];
static struct event_loop *loop;
static struct ctl *vm0, *vm1;
static pthread_t loop_thread;
static int handler_calls;

/* ---- helpers ------------------------------------------------------------ */

static char *path_of(const char *name, const char *leaf)
{
	static char buf[4][PATH_MAX];
	static int i;
	char *p = buf[i++ % 4];

	snprintf(p, PATH_MAX, "%s/%s%s%s", rundir, name, leaf ? "/" : "",
		 leaf ? leaf : "");
	return p;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Call 'cmdline' on 'name'; reply text into a static buffer. */
static int call(const char *name, const char *cmdline, int *status, char **text)
{
	static char *buf;
	static size_t len;
	FILE *f;
	int rc;

	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	*status = 12345;
	rc = ctl_call(rundir, name, cmdline, f, status);
	fclose(f);
	*text = buf;
	return rc;
}

/* stderr capture around calls that log. */
static int saved_stderr = -1;
static FILE *capture_file;

static void capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	saved_stderr = dup(STDERR_FILENO);
	dup2(fileno(capture_file), STDERR_FILENO);
}

static char *capture_end(void)
{
	static char buf[4096];
	size_t n;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	rewind(capture_file);
	n = fread(buf, 1, sizeof(buf) - 1, capture_file);
	while (n > 0 && buf[n - 1] == '\n')
		n--;
	buf[n] = '\0';
	fclose(capture_file);
	return buf;
}

static int raw_connect(const char *name)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		 path_of(name, "ctl.sock"));
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return; /* the server may close early */
		p += n;
		len -= (size_t)n;
	}
}

/*
 * Read until EOF (or error) with a 5 s inactivity guard.  Returns the byte
 * count, -1 on timeout (the server hung).
 */
static long raw_read_all(int fd, char *buf, size_t size)
{
	size_t len = 0;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0)
			return -1;
		n = recv(fd, buf + len, size - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == size - 1)
			break;
	}
	buf[len] = '\0';
	return (long)len;
}

/* Send raw bytes on a fresh connection, return the whole reply. */
static char *raw_exchange(const char *name, const void *req, size_t len,
			  bool shut)
{
	static char buf[8192];
	int fd = raw_connect(name);

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	raw_send(fd, req, len);
	if (shut)
		shutdown(fd, SHUT_WR);
	if (raw_read_all(fd, buf, sizeof(buf)) < 0)
		snprintf(buf, sizeof(buf), "TIMEOUT");
	close(fd);
	return buf;
}

static void msleep(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* ---- handlers ----------------------------------------------------------- */

static int h_echo(void *arg, const char *args, FILE *out)
{
	(void)arg;
	__atomic_add_fetch(&handler_calls, 1, __ATOMIC_RELAXED);
	fprintf(out, "[%s]\n", args);
	return 0;
}

static int h_fail(void *arg, const char *args, FILE *out)
{
	(void)arg;
	(void)args;
	fprintf(out, "nope\n");
	return -EOPNOTSUPP;
}

static int h_silent(void *arg, const char *args, FILE *out)
{
	(void)arg;
	(void)args;
	(void)out;
	return -EBUSY;
}

static int h_bogus(void *arg, const char *args, FILE *out)
{
	(void)arg;
	(void)args;
	(void)out;
	return 7; /* contract violation: must become an error */
}

static int h_big(void *arg, const char *args, FILE *out)
{
	int i;

	(void)arg;
	(void)args;
	for (i = 0; i < BIG_LEN / 64; i++)
		fprintf(out, "%063d\n", i);
	return 0;
}

static int h_quit(void *arg, const char *args, FILE *out)
{
	struct ctl **c = arg;

	(void)args;
	fprintf(out, "bye\n");
	ctl_close(*c); /* from inside a handler */
	*c = NULL;
	return 0;
}

static void *loop_main(void *arg)
{
	(void)arg;
	event_loop_run(loop);
	return NULL;
}

/* ---- tests -------------------------------------------------------------- */

static void test_names(void)
{
	char buf[PATH_MAX], longname[CTL_NAME_MAX + 2];

	ok(ctl_name_valid("vm0"), "name vm0 valid");
	ok(ctl_name_valid("a.b_c-d:e+f@g"), "name with punctuation valid");
	ok(!ctl_name_valid(""), "empty name refused");
	ok(!ctl_name_valid(NULL), "NULL name refused");
	ok(!ctl_name_valid("."), "'.' refused");
	ok(!ctl_name_valid(".."), "'..' refused");
	ok(!ctl_name_valid(".hidden"), "leading dot refused");
	ok(!ctl_name_valid("-x"), "leading dash refused");
	ok(!ctl_name_valid("a/b"), "slash refused");
	ok(!ctl_name_valid("a b"), "space refused");
	ok(!ctl_name_valid("a\nb"), "newline refused");
	ok(!ctl_name_valid("caf\xc3\xa9"), "non-ASCII refused");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ok(!ctl_name_valid(longname), "name of %d chars refused",
	   CTL_NAME_MAX + 1);
	longname[CTL_NAME_MAX] = '\0';
	ok(ctl_name_valid(longname), "name of %d chars valid", CTL_NAME_MAX);

	is_int(ctl_sock_path("/r/", "vm", buf, sizeof(buf)), 0,
	       "sock path built");
	is_str(buf, "/r/vm/ctl.sock", "trailing slash of rundir dropped");
	is_int(ctl_sock_path("/r", "../x", buf, sizeof(buf)), -EINVAL,
	       "sock path: bad name");
	memset(buf, 'd', 200);
	buf[0] = '/';
	buf[200] = '\0';
	{
		char p[PATH_MAX];

		is_int(ctl_sock_path(buf, "vm", p, sizeof(p)), -ENAMETOOLONG,
		       "sock path longer than sun_path refused");
		is_int(ctl_sock_path("/r", "vm", p, 8), -ENAMETOOLONG,
		       "sock path longer than the buffer refused");
	}
}

static void test_default_rundir(void)
{
	char want[64];

	setenv("KHYVE_RUNDIR", "/some/where//", 1);
	is_str(ctl_default_rundir(), "/some/where", "$KHYVE_RUNDIR first");
	setenv("KHYVE_RUNDIR", "", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
	if (geteuid() == 0) {
		is_str(ctl_default_rundir(), "/run/khyve",
		       "root: /run/khyve (empty KHYVE_RUNDIR ignored)");
	} else {
		is_str(ctl_default_rundir(), "/run/user/4242/khyve",
		       "user: $XDG_RUNTIME_DIR/khyve");
		setenv("XDG_RUNTIME_DIR", "relative", 1);
		snprintf(want, sizeof(want), "/tmp/khyve-%u",
			 (unsigned)geteuid());
		is_str(ctl_default_rundir(), want,
		       "relative XDG_RUNTIME_DIR ignored: /tmp/khyve-UID");
	}
	unsetenv("KHYVE_RUNDIR");
	unsetenv("XDG_RUNTIME_DIR");
	if (geteuid() != 0) {
		snprintf(want, sizeof(want), "/tmp/khyve-%u",
			 (unsigned)geteuid());
		is_str(ctl_default_rundir(), want, "fallback /tmp/khyve-UID");
	}
}

/* Leave a directory as a SIGKILLed khyve would: pid file and socket. */
static void make_stale(const char *name)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	mkdir(path_of(name, NULL), 0755);
	fd = open(path_of(name, "pid"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, "999999\n", 7) != 7)
			diag("short write");
		close(fd);
	}
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		 path_of(name, "ctl.sock"));
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		diag("bind stale: %s", strerror(errno));
	close(fd);
}

static void test_open(void)
{
	struct stat st;
	char buf[64], *err;
	int fd, rc;
	ssize_t n;

	make_stale("vm0");
	ok(exists(path_of("vm0", "ctl.sock")), "stale socket prepared");
	is_int(ctl_call(rundir, "vm0", "ping", NULL, NULL), -ENOENT,
	       "stale socket (nobody listening) is 'no such VM'");

	capture_begin();
	rc = ctl_open(loop, rundir, "vm0", &vm0);
	err = capture_end();
	is_int(rc, 0, "ctl_open reclaims a stale directory");
	is_str(err, "", "reclaim is silent");
	if (rc)
		exit(1);
	ok(stat(path_of("vm0", NULL), &st) == 0 && (st.st_mode & 07777) == 0700,
	   "vm directory is mode 0700");
	ok(stat(path_of("vm0", "ctl.sock"), &st) == 0 && S_ISSOCK(st.st_mode) &&
		   (st.st_mode & 07777) == 0600,
	   "ctl.sock is a socket, mode 0600");
	fd = open(path_of("vm0", "pid"), O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	is_int(atol(buf), getpid(), "pid file holds our pid");

	is_int(ctl_register(vm0, "echo", h_echo, NULL), 0, "register echo");
	is_int(ctl_register(vm0, "fail", h_fail, NULL), 0, "register fail");
	is_int(ctl_register(vm0, "silent", h_silent, NULL), 0,
	       "register silent");
	is_int(ctl_register(vm0, "bogus", h_bogus, NULL), 0, "register bogus");
	is_int(ctl_register(vm0, "big", h_big, NULL), 0, "register big");
	is_int(ctl_register(vm0, "echo", h_echo, NULL), -EEXIST,
	       "duplicate command refused");
	is_int(ctl_register(vm0, "ping", h_echo, NULL), -EEXIST,
	       "built-in ping cannot be replaced");
	is_int(ctl_register(vm0, "help", h_echo, NULL), -EEXIST,
	       "built-in help cannot be replaced");
	is_int(ctl_register(vm0, "Bad Cmd", h_echo, NULL), -EINVAL,
	       "bad command word refused");
	is_int(ctl_register(vm0, "", h_echo, NULL), -EINVAL,
	       "empty command word refused");
	is_int(ctl_register(vm0, "a-very-long-command-name-of-more-than-32",
			    h_echo, NULL),
	       -EINVAL, "over-long command word refused");
	ctl_set_idle_timeout(vm0, 800);

	capture_begin();
	rc = ctl_open(loop, rundir, "vm1", &vm1);
	capture_end();
	is_int(rc, 0, "ctl_open on a fresh name");
	if (rc)
		exit(1);
	is_int(ctl_register(vm1, "quit", h_quit, &vm1), 0, "register quit");
}

static void test_refusals(void)
{
	char longdir[300], *err;
	struct ctl *c = NULL;
	int rc;

	capture_begin();
	rc = ctl_open(loop, rundir, "vm0", &c);
	err = capture_end();
	is_int(rc, -EEXIST, "second ctl_open of a running name refused");
	{
		char want[128];

		snprintf(want, sizeof(want),
			 "vm vm0 is already running (pid %ld)", (long)getpid());
		ok(strstr(err, want) != NULL, "message names the pid: %s", err);
	}
	ok(exists(path_of("vm0", "ctl.sock")),
	   "refused open left the owner's socket alone");

	capture_begin();
	rc = ctl_open(loop, rundir, "../escape", &c);
	err = capture_end();
	is_int(rc, -EINVAL, "bad VM name refused");
	ok(strstr(err, "not valid") != NULL, "bad name: one line: %s", err);

	snprintf(longdir, sizeof(longdir), "%s/", rundir);
	memset(longdir + strlen(longdir), 'l', 150);
	longdir[strlen(rundir) + 151] = '\0';
	capture_begin();
	rc = ctl_open(loop, longdir, "vm", &c);
	err = capture_end();
	is_int(rc, -ENAMETOOLONG, "rundir too long for sockaddr_un refused");
	ok(strstr(err, "too long") != NULL, "too long: message: %s", err);

	/* RUNDIR/NAME as a symlink to elsewhere must not be followed. */
	if (symlink("/tmp", path_of("evil", NULL)) == 0) {
		capture_begin();
		rc = ctl_open(loop, rundir, "evil", &c);
		err = capture_end();
		ok(rc < 0, "symlinked vm directory refused (%d)", rc);
		ok(strstr(err, "not a directory") != NULL,
		   "symlink: message: %s", err);
		unlink(path_of("evil", NULL));
	}

	/* A world-writable, non-sticky RUNDIR is refused. */
	{
		char open_dir[PATH_MAX];

		snprintf(open_dir, sizeof(open_dir), "%s/open", rundir);
		mkdir(open_dir, 0700);
		chmod(open_dir, 0777);
		capture_begin();
		rc = ctl_open(loop, open_dir, "vm", &c);
		err = capture_end();
		is_int(rc, -EPERM, "world-writable rundir refused");
		ok(strstr(err, "writable by others") != NULL,
		   "world-writable: message: %s", err);
		chmod(open_dir, 01777);
		capture_begin();
		rc = ctl_open(loop, open_dir, "vm", &c);
		capture_end();
		is_int(rc, 0, "sticky world-writable rundir accepted");
		ctl_close(c);
		ok(!exists(open_dir) || rmdir(open_dir) == 0,
		   "ctl_close left the sticky rundir empty");
	}

	/* A RUNDIR that does not exist yet is created (mkdir -p, 0700). */
	{
		char deep[PATH_MAX];
		struct stat st;

		snprintf(deep, sizeof(deep), "%s/new/deeper", rundir);
		capture_begin();
		rc = ctl_open(loop, deep, "vm", &c);
		capture_end();
		is_int(rc, 0, "missing rundir created");
		ok(stat(deep, &st) == 0 && (st.st_mode & 07777) == 0700,
		   "created rundir is 0700");
		ctl_close(c);
		rmdir(deep);
		snprintf(deep, sizeof(deep), "%s/new", rundir);
		rmdir(deep);
	}
}

/*
 * A real second process owns "vm2": we are refused with its pid; once it
 * is SIGKILLed its leftovers are reclaimed silently.
 */
static void test_other_process(void)
{
	int to_child[2], from_child[2], rc, wst;
	struct ctl *c = NULL;
	char want[128], *err, ch;
	pid_t pid;

	if (pipe(to_child) < 0 || pipe(from_child) < 0) {
		ok(0, "pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		struct event_loop *ev;
		struct ctl *mine;

		close(to_child[1]);
		close(from_child[0]);
		if (event_loop_new(&ev) || ctl_open(ev, rundir, "vm2", &mine))
			_exit(1);
		if (write(from_child[1], "r", 1) != 1)
			_exit(1);
		/* wait to be killed */
		while (read(to_child[0], &ch, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(to_child[0]);
	close(from_child[1]);
	ok(pid > 0 && read(from_child[0], &ch, 1) == 1, "child owns vm2");

	capture_begin();
	rc = ctl_open(loop, rundir, "vm2", &c);
	err = capture_end();
	is_int(rc, -EEXIST, "name held by another process refused");
	snprintf(want, sizeof(want), "vm vm2 is already running (pid %ld)",
		 (long)pid);
	ok(strstr(err, want) != NULL, "message names the child's pid: %s", err);

	kill(pid, SIGKILL);
	waitpid(pid, &wst, 0);
	close(to_child[1]);
	close(from_child[0]);
	ok(exists(path_of("vm2", "ctl.sock")) && exists(path_of("vm2", "pid")),
	   "killed owner left its directory behind");
	capture_begin();
	rc = ctl_open(loop, rundir, "vm2", &c);
	err = capture_end();
	is_int(rc, 0, "directory of a killed owner reclaimed");
	is_str(err, "", "silently");
	ctl_close(c);
	ok(!exists(path_of("vm2", NULL)), "and removed by ctl_close");
}

/*
 * Several processes fight over one name, each claiming and releasing it in
 * a loop: at no time may two hold it (checked with an O_EXCL marker), even
 * though ctl_close() unlinks the pid file and removes the directory.
 */
static void race_child(int seconds_ms)
{
	char marker[PATH_MAX];
	struct event_loop *ev;
	uint64_t end;
	struct timespec ts;
	int wins = 0, fd, null;

	null = open("/dev/null", O_WRONLY);
	dup2(null, STDERR_FILENO);
	snprintf(marker, sizeof(marker), "%s/race.owner", rundir);
	if (event_loop_new(&ev))
		_exit(2);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
	      (uint64_t)seconds_ms;
	for (;;) {
		struct ctl *c;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((uint64_t)ts.tv_sec * 1000 +
			    (uint64_t)ts.tv_nsec / 1000000 >=
		    end)
			break;
		if (ctl_open(ev, rundir, "race", &c) != 0)
			continue;
		fd = open(marker, O_CREAT | O_EXCL | O_WRONLY, 0600);
		if (fd < 0)
			_exit(1); /* someone else holds the name too */
		close(fd);
		wins++;
		unlink(marker);
		ctl_close(c);
	}
	_exit(wins > 0 ? 0 : 3);
}

static void test_race(void)
{
	pid_t kids[6];
	int i, st, bad = 0, none = 0;

	for (i = 0; i < 6; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			race_child(700);
	}
	for (i = 0; i < 6; i++) {
		if (kids[i] < 0 || waitpid(kids[i], &st, 0) < 0 ||
		    !WIFEXITED(st)) {
			bad++;
			continue;
		}
		if (WEXITSTATUS(st) == 1 || WEXITSTATUS(st) == 2)
			bad++;
		if (WEXITSTATUS(st) == 3)
			none++;
	}
	is_int(bad, 0, "6 processes racing for one name: never two owners");
	ok(none < 6, "... and the name changed hands (%d never won)", none);
	ok(!exists(path_of("race", NULL)), "... and nothing is left behind");
}

static void test_calls(void)
{
	char *text, help_want[128];
	int st, rc;

	is_int(call("vm0", "ping", &st, &text), 0, "ping: call ok");
	is_int(st, 0, "ping: status ok");
	is_str(text, "pong\n", "ping: pong");

	is_int(call("vm0", "echo  hello   world \t ", &st, &text), 0,
	       "echo: call ok");
	is_int(st, 0, "echo: status ok");
	is_str(text, "[hello   world]\n",
	       "echo: args start after the blanks, trailing blanks cut");

	is_int(call("vm0", "echo", &st, &text), 0, "echo no args: call ok");
	is_str(text, "[]\n", "echo no args: args is \"\"");

	is_int(call("vm0", "echo\tx", &st, &text), 0, "tab separator: ok");
	is_str(text, "[x]\n", "tab separator: args");

	is_int(call("vm0", "fail", &st, &text), 0, "fail: call ok");
	is_int(st, -EOPNOTSUPP, "fail: error status is the handler's");
	is_str(text, "nope\n", "fail: message is the handler's text");

	is_int(call("vm0", "silent", &st, &text), 0, "silent: call ok");
	is_int(st, -EBUSY, "silent: status");
	{
		char want[128];

		snprintf(want, sizeof(want), "%s\n", strerror(EBUSY));
		is_str(text, want, "silent: strerror() as the message");
	}

	capture_begin();
	rc = call("vm0", "bogus", &st, &text);
	ok(strstr(capture_end(), "handler of 'bogus' returned 7") != NULL,
	   "bogus: the VM logs the contract violation");
	is_int(rc, 0, "bogus: call ok");
	is_int(st, -EIO, "handler returning > 0 gives EIO");

	is_int(call("vm0", "nosuchcmd arg", &st, &text), 0, "unknown: call ok");
	is_int(st, -ENOSYS, "unknown: ENOSYS");
	ok(strstr(text, "unknown command 'nosuchcmd'") != NULL,
	   "unknown: message names it: %s", text);

	is_int(call("vm0", "help", &st, &text), 0, "help: call ok");
	snprintf(help_want, sizeof(help_want),
		 "big\nbogus\necho\nfail\nhelp\nping\nsilent\n");
	is_str(text, help_want, "help lists commands, sorted");

	is_int(call("vm1", "ping", &st, &text), 0, "second VM on the loop");
	is_int(call("nosuch", "ping", &st, &text), -ENOENT,
	       "no such VM: -ENOENT");
	is_int(call("../vm0", "ping", &st, &text), -EINVAL,
	       "client: bad name refused");
	is_int(call("vm0", "", &st, &text), -EINVAL,
	       "client: empty command refused");
	is_int(call("vm0", "ping\nping", &st, &text), -EINVAL,
	       "client: newline in command refused");
	{
		char *huge = malloc(CTL_REQ_MAX + 10);

		memset(huge, 'a', CTL_REQ_MAX + 9);
		huge[CTL_REQ_MAX + 9] = '\0';
		rc = call("vm0", huge, &st, &text);
		is_int(rc, -EINVAL, "client: over-long command refused");
		memcpy(huge, "echo ", 5);
		huge[CTL_REQ_MAX - 1] = '\0'; /* exactly fits with '\n' */
		rc = call("vm0", huge, &st, &text);
		is_int(rc, 0, "request of exactly CTL_REQ_MAX bytes: ok");
		is_int(st, 0, "... status ok");
		is_int(text ? (long)strlen(text) : 0, CTL_REQ_MAX - 6 + 3,
		       "... args intact");
		free(huge);
	}
}

static void test_hostile(void)
{
	static char big[BIG_LEN + 8192];
	char junk[100000], tail[80], *r;
	int fds[40], fd, i, st, good, rc;
	long n;

	memset(junk, 'a', sizeof(junk));
	r = raw_exchange("vm0", junk, sizeof(junk), false);
	is_str(r, "err 90\nrequest too long\n",
	       "100 kB without newline: EMSGSIZE and closed");

	r = raw_exchange("vm0", "pi\0ng\n", 6, false);
	is_str(r, "err 22\nrequest holds control characters\n",
	       "NUL in request: EINVAL");
	r = raw_exchange("vm0", "\x01\x02\xff\xfegarbage\n", 12, false);
	is_str(r, "err 22\nrequest holds control characters\n",
	       "binary junk: EINVAL");
	r = raw_exchange("vm0", "\xff\xfe\x80\n", 4, false);
	is_str(r, "err 22\nmalformed command word\n",
	       "high bytes as command: EINVAL");
	r = raw_exchange("vm0", "\n", 1, false);
	is_str(r, "err 22\nempty request\n", "empty line: EINVAL");
	r = raw_exchange("vm0", "   \t\n", 5, false);
	is_str(r, "err 22\nempty request\n", "blank line: EINVAL");
	r = raw_exchange("vm0", "PING\n", 5, false);
	is_str(r, "err 22\nmalformed command word\n",
	       "upper-case command: EINVAL");
	r = raw_exchange("vm0", "ping\r\n", 6, false);
	is_str(r, "ok\npong\n", "CRLF accepted");
	r = raw_exchange("vm0", "ping", 4, true);
	is_str(r, "ok\npong\n", "no newline, then EOF: served");
	r = raw_exchange("vm0", "ping\nhelp\nJUNK\x00\x01", 16, false);
	is_str(r, "ok\npong\n", "only the first line is served");
	r = raw_exchange("vm0", "", 0, true);
	is_str(r, "", "connect and EOF: closed without reply");

	/* Partial writes: the line arrives in pieces. */
	fd = raw_connect("vm0");
	raw_send(fd, "ec", 2);
	msleep(30);
	raw_send(fd, "ho pie", 6);
	msleep(30);
	raw_send(fd, "ces\n", 4);
	n = raw_read_all(fd, big, sizeof(big));
	close(fd);
	ok(n > 0 && strcmp(big, "ok\n[pieces]\n") == 0,
	   "request in three partial writes: served");

	/* A silent client does not block others, and is dropped later. */
	fd = raw_connect("vm0");
	ok(fd >= 0, "silent client connected");
	is_int(call("vm0", "ping", &st, &r), 0,
	       "ping served while a silent client is connected");
	is_int(st, 0, "... status ok");
	n = raw_read_all(fd, big, sizeof(big));
	is_int(n, 0, "silent client dropped after the idle timeout");
	close(fd);

	/* A client that trickles bytes forever is dropped too. */
	fd = raw_connect("vm0");
	for (i = 0; i < 100; i++) {
		if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
			break;
		msleep(20);
	}
	ok(i < 100, "trickling client dropped (after %d bytes)", i);
	close(fd);

	/* A flood of idle connections cannot lock out a real client. */
	capture_begin();
	for (i = 0; i < 40; i++)
		fds[i] = raw_connect("vm0");
	rc = call("vm0", "ping", &st, &r);
	ok(strstr(capture_end(), "too many connections") != NULL,
	   "flood: one rate-limited warning");
	is_int(rc, 0, "ping served with 40 idle connections open");
	is_int(st, 0, "... status ok");
	for (i = 0; i < 40; i++)
		if (fds[i] >= 0)
			close(fds[i]);

	/* Closing right after connecting, or mid-request, is harmless. */
	for (i = 0; i < 20; i++) {
		fd = raw_connect("vm0");
		if (i & 1)
			raw_send(fd, "ech", 3);
		close(fd);
	}
	/* A reader that never reads a big reply does not block the loop. */
	fd = raw_connect("vm0");
	raw_send(fd, "big\n", 4);
	msleep(50);
	is_int(call("vm0", "ping", &st, &r), 0,
	       "ping served while a 1 MiB reply is stuck");
	n = raw_read_all(fd, big, sizeof(big));
	close(fd);
	is_int(n, 3 + BIG_LEN, "slow reader gets the whole 1 MiB reply");
	snprintf(tail, sizeof(tail), "%063d\n", BIG_LEN / 64 - 1);
	good = n == 3 + BIG_LEN && strncmp(big, "ok\n", 3) == 0 &&
	       strcmp(big + 3 + BIG_LEN - 64, tail) == 0;
	ok(good, "... and it is intact");
	/* A reader that goes away mid-reply is harmless. */
	fd = raw_connect("vm0");
	raw_send(fd, "big\n", 4);
	msleep(20);
	close(fd);

	is_int(call("vm0", "ping", &st, &r), 0, "server still alive");
	is_str(r, "pong\n", "... and answering");
}

static void test_close(void)
{
	char *text;
	int st;

	/* ctl_close() from inside a handler: the reply still arrives. */
	is_int(call("vm1", "quit", &st, &text), 0, "quit: call ok");
	is_int(st, 0, "quit: status ok");
	is_str(text, "bye\n", "quit: reply sent despite ctl_close in handler");
	ok(!exists(path_of("vm1", NULL)),
	   "ctl_close from a handler removed the directory");
	is_int(call("vm1", "ping", &st, &text), -ENOENT,
	       "closed VM is no such VM");

	event_loop_stop(loop, 0);
	pthread_join(loop_thread, NULL);
	ctl_close(vm0);
	ok(!exists(path_of("vm0", "ctl.sock")), "ctl_close removed ctl.sock");
	ok(!exists(path_of("vm0", "pid")), "ctl_close removed the pid file");
	ok(!exists(path_of("vm0", NULL)), "ctl_close removed the directory");
	is_int(call("vm0", "ping", &st, &text), -ENOENT,
	       "after ctl_close: no such VM");
	ctl_close(NULL);
	ok(1, "ctl_close(NULL) is a no-op");
	event_loop_free(loop);
}

int main(void)
{
	plan_no_plan();
	signal(SIGPIPE, SIG_IGN);
	snprintf(rundir, sizeof(rundir), "/tmp/t_ctl.XXXXXX");
	if (!mkdtemp(rundir))
		skip_all("mkdtemp failed");
	if (event_loop_new(&loop) != 0)
		skip_all("no event loop");

	test_names();
	test_default_rundir();
	test_other_process(); /* forks: before the loop thread exists */
	test_race();
	test_open();
	test_refusals();
	if (pthread_create(&loop_thread, NULL, loop_main, NULL) != 0)
		skip_all("pthread_create");
	test_calls();
	test_hostile();
	test_close();

	ok(rmdir(rundir) == 0, "rundir left empty");
	return done_testing();
}
