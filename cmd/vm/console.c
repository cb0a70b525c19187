/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm console NAME [comN]: attach the terminal to a running VM's serial
 * console.  The monitor (monitor.c) owns the pseudo-terminal khyve's UART
 * writes to and relays it through DIR/NAME/comN.sock; this client connects
 * there, reads the monitor's "ok" (or "busy": one client at a time), puts
 * a terminal stdin in raw mode and copies bytes both ways.  As in cu(1),
 * "~." at the start of a line detaches and "~~" sends one "~".  When stdin
 * ends (not a terminal), output keeps flowing until the VM stops or the
 * client is killed; when the VM stops, the monitor closes the socket and
 * the client exits with status 0.
 *
 * Threads: one, a poll(2) loop.  No locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "cmd/vm/vm.h"

static struct termios saved_tio;
static bool tio_saved;

static void tty_restore(void)
{
	if (tio_saved)
		tcsetattr(0, TCSAFLUSH, &saved_tio);
	tio_saved = false;
}

static void on_fatal(int sig)
{
	tty_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void tty_raw(void)
{
	struct termios tio;

	if (!isatty(0) || tcgetattr(0, &saved_tio) < 0)
		return;
	tio = saved_tio;
	cfmakeraw(&tio);
	if (tcsetattr(0, TCSAFLUSH, &tio) < 0)
		return;
	tio_saved = true;
	atexit(tty_restore);
	signal(SIGTERM, on_fatal);
	signal(SIGHUP, on_fatal);
}

static int write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int connect_port(const struct vm *vm, unsigned com)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[PATH_MAX], hello[8];
	size_t n = 0;
	ssize_t r;
	int fd;

	if (vm_fmt(path, sizeof(path), "%s/com%u.sock", vm->dir, com) ||
	    strlen(path) >= sizeof(sa.sun_path)) {
		vm_err("%s/com%u.sock: path too long", vm->dir, com);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		vm_err("%s: cannot connect to the console (%s): %s", vm->name,
		       path, strerror(errno));
		close(fd);
		return -ECONNREFUSED;
	}
	while (n < sizeof(hello) - 1) {
		r = read(fd, hello + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || hello[n] == '\n')
			break;
		n++;
	}
	hello[n] = '\0';
	if (strcmp(hello, "ok")) {
		if (!strcmp(hello, "busy"))
			vm_err("%s: com%u is in use by another vm console",
			       vm->name, com);
		else
			vm_err("%s: the console did not answer", vm->name);
		close(fd);
		return -EBUSY;
	}
	return fd;
}

/* Input filter with cu's escapes; returns true to detach. */
struct esc {
	bool line_start, tilde;
};

static bool filter(struct esc *e, const char *in, size_t n, char *out,
		   size_t *outn)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		char c = in[i];

		if (e->tilde) {
			e->tilde = false;
			if (c == '.') {
				*outn = o;
				return true;
			}
			if (c != '~')
				out[o++] = '~';
			out[o++] = c;
		} else if (e->line_start && c == '~') {
			e->tilde = true;
			continue;
		} else {
			out[o++] = c;
		}
		e->line_start = c == '\r' || c == '\n';
	}
	*outn = o;
	return false;
}

static int relay(const struct vm *vm, int sock)
{
	struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
			      {.fd = 0, .events = POLLIN}};
	struct esc e = {.line_start = true};
	char buf[4096], out[8192];
	bool in_open = true;
	size_t on;
	ssize_t r;

	for (;;) {
		if (poll(p, in_open ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents) {
			r = read(sock, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				tty_restore();
				fprintf(stderr,
					"\nvm: %s stopped, console "
					"closed\n",
					vm->name);
				return 0;
			}
			if (write_all(1, buf, (size_t)r))
				return -EIO;
		}
		if (in_open && p[1].revents) {
			r = read(0, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				in_open = false; /* keep showing output */
				continue;
			}
			if (filter(&e, buf, (size_t)r, out, &on)) {
				if (on)
					write_all(sock, out, on);
				tty_restore();
				fprintf(stderr, "\nvm: detached from %s\n",
					vm->name);
				return 0;
			}
			if (on && write_all(sock, out, on))
				return 0; /* the VM went away */
		}
	}
}

int cmd_console(struct vm_env *env, int argc, char **argv)
{
	char key[8], val[128];
	unsigned com = 1;
	struct vm vm;
	int fd, rc;

	if (argc < 2 || argc > 3) {
		vm_err("usage: vm console NAME [com1|com2|com3|com4]");
		return -EINVAL;
	}
	if (argc == 3) {
		if (strncmp(argv[2], "com", 3) || argv[2][3] < '1' ||
		    argv[2][3] > '4' || argv[2][4]) {
			vm_err("%s: not com1, com2, com3 or com4", argv[2]);
			return -EINVAL;
		}
		com = (unsigned)(argv[2][3] - '0');
	}
	if ((rc = vm_open(env, argv[1], &vm)))
		return rc;
	if (!vm_running(&vm, NULL)) {
		vm_err("%s is not running", vm.name);
		rc = -ESRCH;
		goto out;
	}
	snprintf(key, sizeof(key), "com%u", com);
	if (vm_runtime_get(&vm, key, val, sizeof(val))) {
		vm_err("%s has no com%u console (see comports)", vm.name, com);
		rc = -ENOENT;
		goto out;
	}
	if (!strcmp(val, "stdio")) {
		vm_err("%s: com%u is the terminal of vm start -f", vm.name,
		       com);
		rc = -EBUSY;
		goto out;
	}
	fd = connect_port(&vm, com);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	if (isatty(0))
		fprintf(stderr,
			"vm: connected to %s (%s); type ~. to "
			"detach\r\n",
			vm.name, key);
	tty_raw();
	rc = relay(&vm, fd);
	tty_restore();
	close(fd);
out:
	vm_close(&vm);
	return rc;
}
