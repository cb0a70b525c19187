/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The per-VM monitor, vm-bhyve's run loop for khyve.  One process per
 * running VM (started by vm start, in its own session), holding the VM's
 * run.lock.  It
 *
 *  - creates the VM's taps on their switches (removed when it ends),
 *  - opens a pseudo-terminal per console port (comports) and gives khyve
 *    the slave side (-l comN,/dev/pts/M).  It keeps a slave fd open itself,
 *    so the terminal survives khyve's restarts, reads the master side,
 *    appends the output to comN.log (rotated at 1 MiB) and relays it to the
 *    one client of the UNIX socket comN.sock (vm console), whose input goes
 *    back to the guest.  A client first gets "ok\n" (or "busy\n" when
 *    another client is attached) and the last ~4 KiB of output,
 *  - runs khyve, logs its stderr lines and how it ended in vm.log, and
 *    restarts it when the guest reboots (exit status 0; after a second's
 *    pause if the run was shorter than 2 s, so a reboot loop cannot spin).
 *    Power-off, halt, triple fault, errors and guest exit values stop the
 *    VM, each logged with the exit status,
 *  - serves the signals of run.c: SIGTERM/SIGINT stop (SIGTERM to khyve,
 *    which presses the ACPI power button, again every 5 s for a guest
 *    that was still booting; after stop_timeout seconds khyvectl's
 *    destroy request; 5 s later SIGKILL), SIGUSR1 restart,
 *    SIGUSR2 power off (destroy now), SIGHUP reset (force-reset: the VM
 *    reboots).
 *
 * khyve gets PR_SET_PDEATHSIG(SIGTERM), so a monitor that is killed asks
 * its guest to power off instead of leaving an orphan.
 *
 * Threads: one; a poll(2) loop over a signalfd, khyve's stderr pipe, and
 * per port the pty master, the listening socket and the client.  No
 * locks; all fds are non-blocking where a peer could stall the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd/vm/vm.h"
#include "ctl/ctl.h"

#define RING_KEEP 4096	      /* scrollback sent to a new client */
#define LOG_ROTATE (1u << 20) /* comN.log size before rotation */
#define REPRESS_MS 5000	      /* stop: power button again after this */

struct port {
	unsigned n;	   /* com number */
	int master, slave; /* pty; -1 for stdio (foreground com1) */
	char pts[64];
	int lsock, client, logfd;
	char sock[PATH_MAX];
	char ring[2 * RING_KEEP];
	size_t rlen;
	uint64_t logged;
};

struct mon {
	struct vm *vm;
	const struct vm_runopts *ro;
	struct argv run_args, install_args;
	struct vm_plan plan;
	struct port ports[VM_MAX_COMS];
	unsigned nports;
	bool taps_made[VM_MAX_NICS];
	FILE *log;
	int sfd, errfd, ready_fd, lock_fd;
	char errbuf[2048];
	size_t errlen;
	char lastline[512];
	pid_t child;
	uint64_t child_start;
	unsigned boots;
	bool stopping, restart_req, no_backoff, done;
	int stage;	     /* stop: 0 power button sent, 1 destroy sent */
	uint64_t deadline;   /* stop escalation time, 0: none */
	uint64_t repress_at; /* stop: press the power button again */
	uint64_t restart_at; /* next spawn time */
	int result;	     /* the monitor's exit status */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One timestamped line in vm.log, as vm-bhyve's "Mon DD HH:MM:SS: msg". */
static void mlog(struct mon *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void mlog(struct mon *m, const char *fmt, ...)
{
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	va_list ap;

	if (!m->log)
		return;
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%b %d %H:%M:%S", &tm);
	fprintf(m->log, "%s: ", stamp);
	va_start(ap, fmt);
	vfprintf(m->log, fmt, ap);
	va_end(ap);
	fputc('\n', m->log);
	fflush(m->log);
}

/* Tell vm start (if it still listens) one line. */
static void report(struct mon *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(struct mon *m, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (m->ready_fd < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(m->ready_fd, buf, (size_t)n) != n) {
		close(m->ready_fd); /* vm start is gone: fine */
		m->ready_fd = -1;
	}
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- consoles ---- */

static int port_open(struct mon *m, struct port *p, bool stdio)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[PATH_MAX];
	struct termios tio;
	int rc;

	p->master = p->slave = p->lsock = p->client = p->logfd = -1;
	if ((rc = vm_fmt(path, sizeof(path), "%s/com%u.log", m->vm->dir, p->n)))
		return rc;
	p->logfd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (p->logfd < 0)
		return -errno;
	if (stdio)
		return 0;
	if (openpty(&p->master, &p->slave, NULL, NULL, NULL) < 0)
		return -errno;
	fcntl(p->master, F_SETFD, FD_CLOEXEC);
	fcntl(p->slave, F_SETFD, FD_CLOEXEC);
	set_nonblock(p->master);
	if (tcgetattr(p->slave, &tio) == 0) {
		cfmakeraw(&tio);
		tcsetattr(p->slave, TCSANOW, &tio);
	}
	if (ttyname_r(p->slave, p->pts, sizeof(p->pts)))
		return -ENOTTY;
	if ((rc = vm_fmt(p->sock, sizeof(p->sock), "%s/com%u.sock", m->vm->dir,
			 p->n)))
		return rc;
	if (strlen(p->sock) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, p->sock);
	unlink(p->sock); /* stale: we hold run.lock */
	p->lsock =
		socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p->lsock < 0)
		return -errno;
	if (bind(p->lsock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(p->sock, 0600) < 0 || listen(p->lsock, 4) < 0)
		return -errno;
	return 0;
}

static void port_close(struct port *p)
{
	if (p->client >= 0)
		close(p->client);
	if (p->lsock >= 0) {
		close(p->lsock);
		unlink(p->sock);
	}
	if (p->master >= 0)
		close(p->master);
	if (p->slave >= 0)
		close(p->slave);
	if (p->logfd >= 0)
		close(p->logfd);
	p->client = p->lsock = p->master = p->slave = p->logfd = -1;
}

static void drop_client(struct port *p)
{
	close(p->client);
	p->client = -1;
}

/* Best effort: a slow client loses output rather than stalling the VM. */
static void client_send(struct port *p, const char *buf, size_t n)
{
	ssize_t w;

	while (p->client >= 0 && n) {
		w = send(p->client, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w <= 0) {
			drop_client(p);
			return;
		}
		buf += w;
		n -= (size_t)w;
	}
}

static void log_rotate(struct mon *m, struct port *p)
{
	char a[PATH_MAX], b[PATH_MAX + 4];

	if (vm_fmt(a, sizeof(a), "%s/com%u.log", m->vm->dir, p->n) ||
	    vm_fmt(b, sizeof(b), "%s.0", a))
		return;
	rename(a, b);
	close(p->logfd);
	p->logfd = open(a, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	p->logged = 0;
}

static void port_output(struct mon *m, struct port *p)
{
	char buf[4096];
	ssize_t r;

	for (;;) {
		r = read(p->master, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		if (p->logfd >= 0 && write(p->logfd, buf, (size_t)r) == r) {
			p->logged += (uint64_t)r;
			if (p->logged >= LOG_ROTATE)
				log_rotate(m, p);
		}
		if (p->rlen + (size_t)r > sizeof(p->ring)) {
			size_t keep = RING_KEEP < p->rlen ? RING_KEEP : p->rlen;

			memmove(p->ring, p->ring + p->rlen - keep, keep);
			p->rlen = keep;
		}
		if ((size_t)r <= sizeof(p->ring) - p->rlen) {
			memcpy(p->ring + p->rlen, buf, (size_t)r);
			p->rlen += (size_t)r;
		}
		client_send(p, buf, (size_t)r);
	}
}

static void port_accept(struct port *p)
{
	const char *start, *nl;
	size_t from;
	int fd;

	fd = accept4(p->lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (p->client >= 0) {
		/* a client that went away, not yet noticed, makes room */
		struct pollfd pf = {.fd = p->client, .events = POLLRDHUP};

		if (poll(&pf, 1, 0) == 1 &&
		    (pf.revents & (POLLRDHUP | POLLHUP | POLLERR)))
			drop_client(p);
	}
	if (p->client >= 0) {
		if (send(fd, "busy\n", 5, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* nothing to do: the connection goes anyway */
		}
		close(fd);
		return;
	}
	p->client = fd;
	client_send(p, "ok\n", 3);
	/* the recent output, from a line start */
	from = p->rlen > RING_KEEP ? p->rlen - RING_KEEP : 0;
	start = p->ring + from;
	if (from) {
		nl = memchr(start, '\n', p->rlen - from);
		if (nl)
			start = nl + 1;
	}
	client_send(p, start, (size_t)(p->ring + p->rlen - start));
}

static void port_input(struct port *p)
{
	char buf[1024];
	ssize_t r, w;

	r = recv(p->client, buf, sizeof(buf), MSG_DONTWAIT);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		drop_client(p);
		return;
	}
	w = write(p->master, buf, (size_t)r); /* drops when the guest
						 does not read */
	(void)w;
}

/* ---- khyve ---- */

static void child_stderr(struct mon *m)
{
	char *nl;
	ssize_t r;

	for (;;) {
		r = read(m->errfd, m->errbuf + m->errlen,
			 sizeof(m->errbuf) - m->errlen - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0) {
				close(m->errfd);
				m->errfd = -1;
			}
			break;
		}
		m->errlen += (size_t)r;
		m->errbuf[m->errlen] = '\0';
		while ((nl = strchr(m->errbuf, '\n')) ||
		       m->errlen == sizeof(m->errbuf) - 1) {
			size_t len = nl ? (size_t)(nl - m->errbuf) : m->errlen;

			if (len && m->errbuf[len - 1] == '\r')
				m->errbuf[len - 1] = '\0';
			m->errbuf[len] = '\0';
			if (m->errbuf[0]) {
				mlog(m, "%s", m->errbuf);
				size_t l = strlen(m->errbuf);

				if (l >= sizeof(m->lastline))
					l = sizeof(m->lastline) - 1;
				memcpy(m->lastline, m->errbuf, l);
				m->lastline[l] = '\0';
			}
			len = nl ? len + 1 : len;
			memmove(m->errbuf, m->errbuf + len, m->errlen - len);
			m->errlen -= len;
			m->errbuf[m->errlen] = '\0';
		}
	}
}

static void log_cmdline(struct mon *m, const struct argv *a)
{
	char line[8192] = "";
	size_t i;

	for (i = 0; i < a->n; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
			 "%s%s", i ? " " : "", a->v[i]);
	mlog(m, " [khyve options: %s]", line);
}

static int spawn(struct mon *m)
{
	const struct argv *a = &m->run_args;
	sigset_t none;
	int ep[2] = {-1, -1}, fd;
	pid_t parent = getpid();
	unsigned i;

	if (m->ro->iso && m->boots == 0)
		a = &m->install_args;
	if (!m->ro->foreground && pipe2(ep, O_CLOEXEC) < 0)
		return -errno;
	for (i = 0; i < m->nports; i++)
		if (m->ports[i].slave >= 0)
			tcflush(m->ports[i].slave, TCIFLUSH);
	if (m->boots == 0 || (m->ro->iso && m->boots == 1))
		log_cmdline(m, a);
	fflush(NULL);
	m->child = fork();
	if (m->child < 0) {
		int rc = -errno;

		if (ep[0] >= 0) {
			close(ep[0]);
			close(ep[1]);
		}
		m->child = 0;
		return rc;
	}
	if (m->child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (!m->ro->foreground) {
			fd = open("/dev/null", O_RDONLY);
			if (fd >= 0)
				dup2(fd, 0);
			dup2(ep[1], 1);
			dup2(ep[1], 2);
		}
		execv(a->v[0], a->v);
		fprintf(stderr, "vm: %s: %s\n", a->v[0], strerror(errno));
		_exit(4);
	}
	if (ep[1] >= 0)
		close(ep[1]);
	m->errfd = ep[0];
	if (m->errfd >= 0)
		set_nonblock(m->errfd);
	m->lastline[0] = '\0';
	m->child_start = mono_ms();
	m->boots++;
	mlog(m, "%s khyve (pid %d)", m->boots > 1 ? "restarting" : "starting",
	     (int)m->child);
	report(m, "started %d", (int)m->child);
	return 0;
}

/* How khyve ended, in words (khyve(8) EXIT STATUS). */
static void describe(int st, char *buf, size_t len, int *code)
{
	if (WIFSIGNALED(st)) {
		*code = 128 + WTERMSIG(st);
		snprintf(buf, len, "khyve was killed by signal %d",
			 WTERMSIG(st));
		return;
	}
	*code = WEXITSTATUS(st);
	switch (*code) {
	case 0:
		snprintf(buf, len, "guest rebooted");
		break;
	case 1:
		snprintf(buf, len, "guest powered off");
		break;
	case 2:
		snprintf(buf, len, "guest halted (exit status 2)");
		break;
	case 3:
		snprintf(buf, len, "guest crashed: triple fault (status 3)");
		break;
	case 4:
		snprintf(buf, len, "khyve failed (exit status 4)");
		break;
	default:
		if (*code & 1)
			snprintf(buf, len,
				 "guest exited with status %d (exit "
				 "value %d)",
				 *code, *code >> 1);
		else
			snprintf(buf, len, "khyve exited with status %d",
				 *code);
	}
}

static void child_exit(struct mon *m, int st)
{
	uint64_t ran = mono_ms() - m->child_start;
	char what[128];
	int code;

	if (m->errfd >= 0) {
		child_stderr(m);
		if (m->errfd >= 0)
			close(m->errfd);
		m->errfd = -1;
	}
	m->child = 0;
	describe(st, what, sizeof(what), &code);
	if (m->stopping && m->stage == 1)
		snprintf(what, sizeof(what), "khyve destroyed (status %d)",
			 code);
	if (m->restart_req) {
		mlog(m, "%s; restarting as requested", what);
		m->restart_req = m->stopping = false;
		m->deadline = 0;
		m->restart_at = mono_ms();
		return;
	}
	if (!m->stopping && code == 0) {
		mlog(m, "guest rebooted; restarting");
		m->restart_at = mono_ms();
		if (ran < 2000 && !m->no_backoff)
			m->restart_at += 1000;
		m->no_backoff = false;
		return;
	}
	if (code == 4 && m->lastline[0])
		mlog(m, "%s: %s", what, m->lastline);
	else
		mlog(m, "%s", what);
	m->result = code == 1 || code == 0 || m->stopping ? 0 : 1;
	report(m, "exit %d %s", code,
	       code == 4 && m->lastline[0] ? m->lastline : what);
	if (m->ro->foreground)
		fprintf(stderr, "vm: %s: %s\n", m->vm->name, what);
	m->done = true;
}

static void destroy_child(struct mon *m)
{
	int st = -1;

	if (!m->child)
		return;
	if (ctl_call(NULL, m->vm->name, "destroy", NULL, &st) || st)
		kill(m->child, SIGKILL);
	m->stage = 1;
	m->deadline = mono_ms() + 5000;
}

static void stop(struct mon *m, bool restart)
{
	if (!m->child) {
		if (restart) {
			m->restart_at = mono_ms();
			return;
		}
		m->done = true;
		return;
	}
	if (m->stopping && !restart) {
		destroy_child(m); /* a second stop: no more waiting */
		return;
	}
	m->stopping = true;
	m->restart_req = restart;
	m->stage = 0;
	m->deadline = mono_ms() + (uint64_t)m->plan.stop_timeout * 1000;
	m->repress_at = mono_ms() + REPRESS_MS;
	mlog(m, "%s requested: sending ACPI shutdown",
	     restart ? "restart" : "stop");
	kill(m->child, SIGTERM);
}

/* A guest that was still booting when the button was pressed missed it:
 * press it again now and then until stop_timeout. */
static bool repressing(const struct mon *m)
{
	return m->stopping && m->stage == 0 && m->child;
}

static void on_signal(struct mon *m)
{
	struct signalfd_siginfo si;
	int st = -1;
	pid_t pid;

	while (read(m->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
				if (pid == m->child)
					child_exit(m, st);
			break;
		case SIGTERM:
		case SIGINT:
			stop(m, false);
			break;
		case SIGUSR1:
			stop(m, true);
			break;
		case SIGUSR2:
			mlog(m, "power off requested");
			m->stopping = true;
			if (m->child)
				destroy_child(m);
			else
				m->done = true;
			break;
		case SIGHUP:
			if (!m->child)
				break;
			mlog(m, "reset requested");
			m->no_backoff = true;
			if (ctl_call(NULL, m->vm->name, "force-reset", NULL,
				     &st) ||
			    st)
				kill(m->child, SIGKILL);
			break;
		default:
			break;
		}
	}
}

static void on_deadline(struct mon *m)
{
	if (!m->child) {
		m->deadline = 0;
		return;
	}
	if (m->stage == 0) {
		mlog(m, "the guest did not power off within %u s: destroying",
		     m->plan.stop_timeout);
		destroy_child(m);
	} else {
		mlog(m, "khyve did not exit: killing it");
		kill(m->child, SIGKILL);
		m->deadline = 0;
	}
}

/* ---- set-up and the loop ---- */

static int setup_ports(struct mon *m, struct vm_runopts *ro2, char *err,
		       size_t errlen)
{
	unsigned i;
	int rc;

	for (i = 0; i < m->plan.ncoms; i++) {
		struct port *p = &m->ports[m->nports++];
		bool stdio = m->ro->foreground && i == 0;

		p->n = m->plan.coms[i];
		rc = port_open(m, p, stdio);
		if (rc) {
			snprintf(err, errlen,
				 "%s: com%u: cannot set up the "
				 "console: %s",
				 m->vm->name, p->n, strerror(-rc));
			return rc;
		}
		if (!stdio)
			ro2->com[p->n - 1] = p->pts;
	}
	return 0;
}

static int setup_taps(struct mon *m, char *err, size_t errlen)
{
	unsigned i;
	int rc;

	for (i = 0; i < m->plan.nnics; i++) {
		if (!m->plan.nics[i].own_tap)
			continue;
		rc = vm_tap_create(m->vm, &m->plan.nics[i], err, errlen);
		if (rc)
			return rc;
		m->taps_made[i] = true;
		mlog(m, "network%u: tap %s on switch %s", m->plan.nics[i].idx,
		     m->plan.nics[i].tap, m->plan.nics[i].sw);
	}
	return 0;
}

/* run.lock: "PID\ncomN=/dev/pts/M\nnetworkN=TAP\n". */
static void write_runtime(struct mon *m)
{
	char buf[2048];
	size_t n = 0;
	unsigned i;

	n += (size_t)snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	for (i = 0; i < m->nports && n < sizeof(buf); i++)
		n += (size_t)snprintf(
			buf + n, sizeof(buf) - n, "com%u=%s\n", m->ports[i].n,
			m->ports[i].master >= 0 ? m->ports[i].pts : "stdio");
	for (i = 0; i < m->plan.nnics && n < sizeof(buf); i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				      "network%u=%s\n", m->plan.nics[i].idx,
				      m->plan.nics[i].tap);
	if (n > sizeof(buf))
		n = sizeof(buf);
	if (ftruncate(m->lock_fd, 0) == 0 &&
	    pwrite(m->lock_fd, buf, n, 0) != (ssize_t)n)
		mlog(m, "cannot write run.lock");
}

/* Translate again with the real console paths (and without the ISO). */
static int build_args(struct mon *m, struct vm_runopts *ro2, char *err,
		      size_t errlen)
{
	struct vm_plan p;
	int rc;

	ro2->iso = NULL;
	rc = vm_translate(m->vm, ro2, &p);
	if (!rc) {
		m->run_args = p.args;
		if (m->ro->iso) {
			ro2->iso = m->ro->iso;
			rc = vm_translate(m->vm, ro2, &p);
			if (!rc)
				m->install_args = p.args;
		}
	}
	if (rc)
		snprintf(err, errlen,
			 "%s: the configuration changed while "
			 "starting",
			 m->vm->name);
	return rc;
}

static int setup(struct mon *m, char *err, size_t errlen)
{
	struct vm_runopts ro2 = *m->ro;
	sigset_t set;
	int rc;

	ro2.quiet = true; /* vm start has warned about the keys already */
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	m->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (m->sfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "signalfd: %s", strerror(-rc));
		return rc;
	}
	if ((rc = vm_translate(m->vm, &ro2, &m->plan))) {
		snprintf(err, errlen, "%s: cannot translate the configuration",
			 m->vm->name);
		return rc;
	}
	if ((rc = setup_ports(m, &ro2, err, errlen)) ||
	    (rc = build_args(m, &ro2, err, errlen)) ||
	    (rc = setup_taps(m, err, errlen)))
		return rc;
	write_runtime(m);
	return 0;
}

static void teardown(struct mon *m)
{
	unsigned i;

	for (i = 0; i < m->plan.nnics; i++)
		if (m->taps_made[i])
			vm_tap_destroy(&m->plan.nics[i]);
	for (i = 0; i < m->nports; i++)
		port_close(&m->ports[i]);
	if (m->sfd >= 0)
		close(m->sfd);
	if (m->errfd >= 0)
		close(m->errfd);
	argv_free(&m->run_args);
	argv_free(&m->install_args);
	vm_plan_free(&m->plan);
}

static int poll_timeout(const struct mon *m)
{
	uint64_t now = mono_ms(), t = UINT64_MAX;

	if (m->deadline)
		t = m->deadline;
	if (repressing(m) && m->repress_at < t)
		t = m->repress_at;
	if (!m->child && !m->stopping && m->restart_at < t)
		t = m->restart_at;
	if (t == UINT64_MAX)
		return -1;
	return t <= now ? 0 : (int)(t - now);
}

static void loop(struct mon *m)
{
	struct pollfd pfd[2 + 3 * VM_MAX_COMS];
	int who[2 + 3 * VM_MAX_COMS]; /* port index * 3 + kind */
	unsigned i, n;
	int rc;

	while (!m->done) {
		if (!m->child && !m->stopping && mono_ms() >= m->restart_at) {
			if ((rc = spawn(m))) {
				mlog(m, "cannot run khyve: %s", strerror(-rc));
				report(m, "fail %s: cannot run khyve: %s",
				       m->vm->name, strerror(-rc));
				m->result = 1;
				break;
			}
		}
		if (m->deadline && mono_ms() >= m->deadline)
			on_deadline(m);
		if (repressing(m) && mono_ms() >= m->repress_at) {
			kill(m->child, SIGTERM);
			m->repress_at = mono_ms() + REPRESS_MS;
		}
		n = 0;
		pfd[n] = (struct pollfd){.fd = m->sfd, .events = POLLIN};
		who[n++] = -1;
		if (m->errfd >= 0) {
			pfd[n] = (struct pollfd){.fd = m->errfd,
						 .events = POLLIN};
			who[n++] = -2;
		}
		for (i = 0; i < m->nports; i++) {
			struct port *p = &m->ports[i];
			int fds[3] = {p->master, p->lsock, p->client}, k;

			for (k = 0; k < 3; k++) {
				if (fds[k] < 0)
					continue;
				pfd[n] = (struct pollfd){.fd = fds[k],
							 .events = POLLIN};
				who[n++] = (int)i * 3 + k;
			}
		}
		rc = poll(pfd, n, poll_timeout(m));
		if (rc < 0 && errno != EINTR)
			break;
		for (i = 0; rc > 0 && i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (who[i] == -1)
				on_signal(m);
			else if (who[i] == -2)
				child_stderr(m);
			else if (who[i] % 3 == 0)
				port_output(m, &m->ports[who[i] / 3]);
			else if (who[i] % 3 == 1)
				port_accept(&m->ports[who[i] / 3]);
			else if (m->ports[who[i] / 3].client >= 0)
				port_input(&m->ports[who[i] / 3]);
		}
	}
}

int vm_monitor(struct vm *vm, const struct vm_runopts *ro, int lock_fd,
	       int ready_fd)
{
	struct mon *m = calloc(1, sizeof(*m));
	char path[PATH_MAX], err[512];
	int result;

	if (!m)
		return 1;
	m->vm = vm;
	m->ro = ro;
	m->lock_fd = lock_fd;
	m->ready_fd = ready_fd;
	m->sfd = m->errfd = -1;
	if (!vm_path(vm, "vm.log", path, sizeof(path)))
		m->log = fopen(path, "ae");
	mlog(m, "initialising");
	if (setup(m, err, sizeof(err))) {
		mlog(m, "%s", err);
		report(m, "fail %s", err);
		m->result = 1;
	} else {
		loop(m);
		if (m->child) { /* the loop broke: do not leave khyve */
			kill(m->child, SIGKILL);
			waitpid(m->child, NULL, 0);
		}
	}
	teardown(m);
	mlog(m, "stopped");
	if (m->log)
		fclose(m->log);
	if (m->ready_fd >= 0)
		close(m->ready_fd);
	result = m->result;
	free(m);
	return result;
}
