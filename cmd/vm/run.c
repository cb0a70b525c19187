/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Starting and stopping VMs: vm start/install (spawn the monitor, wait
 * until khyve answers on its control socket), vm stop/restart/poweroff/
 * reset (signals to the monitor, which owns khyve), vm startall/stopall
 * (the autostart list, for boot and shutdown).
 *
 * Monitor signals (monitor.c): SIGTERM stop (ACPI power button, destroy
 * after stop_timeout), SIGUSR1 restart (stop, then start again), SIGUSR2
 * power off now, SIGHUP reset now.
 *
 * The start handshake: the monitor writes lines to a pipe, "started PID"
 * for each khyve it runs, "exit STATUS TEXT" when khyve ends for good, or
 * "fail TEXT" when it could not set the VM up.  vm start pings khyve
 * through its control socket (src/ctl) until it answers ("running"), or
 * reports what the pipe said.  Status 4 (khyve's error status) is a failed
 * start, with khyve's own error line.
 *
 * Threads: single-threaded.  No locks besides run.lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmd/vm/vm.h"
#include "ctl/ctl.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Every PCI model the plan uses must be one khyve knows. */
static int check_models(const struct vm_plan *plan)
{
	const char *argv[] = {vm_khyve_path(), "-s", "help", NULL};
	char *out = NULL, line[64], err[256];
	unsigned i;
	int rc;

	if (access(vm_khyve_path(), X_OK) < 0) {
		vm_err("%s: not found (install khyve next to vm, or set "
		       "KHYVE_BIN_DIR)",
		       vm_khyve_path());
		return -ENOENT;
	}
	rc = vm_run_cmd(argv, &out, err, sizeof(err));
	if (rc) {
		vm_err("%s -s help failed: %s", vm_khyve_path(), err);
		free(out);
		return rc < 0 ? rc : -EIO;
	}
	for (i = 0; i < plan->nmodels; i++) {
		snprintf(line, sizeof(line), "\n%s\n", plan->models[i].model);
		if (out && (strstr(out, line) ||
			    !strncmp(out, line + 1, strlen(line + 1))))
			continue;
		vm_err("%s: this khyve (%s) has no %s device yet",
		       plan->models[i].key, vm_khyve_path(),
		       plan->models[i].model);
		free(out);
		return -ENOTSUP;
	}
	free(out);
	return 0;
}

/* Resources the monitor will need must be there before we daemonize. */
static int check_resources(const struct vm *vm, const struct vm_plan *plan)
{
	char path[PATH_MAX];
	unsigned i;

	for (i = 0; i < plan->nnics; i++) {
		const struct vm_nic *nic = &plan->nics[i];

		if (nic->own_tap && !vm_switch_exists(nic->sw)) {
			vm_err("network%u_switch: switch %s does not exist "
			       "(vm switch create %s)",
			       nic->idx, nic->sw, nic->sw);
			return -ENOENT;
		}
	}
	for (i = 0; i < plan->ncoms; i++) {
		if (vm_fmt(path, sizeof(path), "%s/com%u.sock", vm->dir,
			   plan->coms[i]) ||
		    strlen(path) >= 108) {
			vm_err("%s/com%u.sock: path too long for a UNIX "
			       "socket (use a shorter VM_DIR)",
			       vm->dir, plan->coms[i]);
			return -ENAMETOOLONG;
		}
	}
	return 0;
}

/* Read one line from the monitor's pipe, waiting at most ms. */
static int read_line(int fd, char *buf, size_t len, unsigned ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t n = 0;
	ssize_t r;

	while (n + 1 < len) {
		if (poll(&p, 1, (int)ms) <= 0)
			return n ? -EAGAIN : -ETIMEDOUT;
		r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EPIPE;
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = '\0';
	return 0;
}

/* The monitor reported the end: let it finish (release run.lock), so the
 * VM shows as stopped once vm start returns. */
static void wait_monitor_gone(const struct vm *vm, int fd)
{
	uint64_t deadline = mono_ms() + 5000;
	char line[256];

	while (mono_ms() < deadline &&
	       read_line(fd, line, sizeof(line), 100) != -EPIPE)
		;
	while (mono_ms() < deadline && vm_running(vm, NULL))
		sleep_ms(10);
}

/* Wait for the monitor's verdict; 0 when the VM is running (or ran). */
static int wait_started(const struct vm *vm, int fd)
{
	uint64_t deadline = mono_ms() + 60000;
	unsigned started = 0;
	char line[1024];
	int rc, st;

	while (mono_ms() < deadline) {
		rc = read_line(fd, line, sizeof(line), 50);
		if (rc == -EPIPE) {
			vm_err("%s: the monitor exited during start-up (see "
			       "%s/vm.log)",
			       vm->name, vm->dir);
			return -EIO;
		}
		if (rc == 0 && !strncmp(line, "started ", 8) && ++started > 1) {
			/* khyve ran and the guest rebooted: it is up */
			printf("Starting %s\n", vm->name);
			return 0;
		}
		if (rc == 0 && !strncmp(line, "fail ", 5)) {
			wait_monitor_gone(vm, fd);
			vm_err("%s", line + 5);
			return -EIO;
		}
		if (rc == 0 && !strncmp(line, "exit ", 5)) {
			wait_monitor_gone(vm, fd);
			st = atoi(line + 5);
			if (st == 4) {
				const char *msg = strchr(line + 5, ' ');

				vm_err("%s: khyve failed to start: %s",
				       vm->name,
				       msg ? msg + 1 : "(no message)");
				return -EIO;
			}
			printf("Starting %s\n", vm->name);
			vm_warn("%s stopped right away (%s)", vm->name,
				strchr(line + 5, ' ')
					? strchr(line + 5, ' ') + 1
					: line + 5);
			return 0;
		}
		if (ctl_call(NULL, vm->name, "ping", NULL, &st) == 0 &&
		    st == 0) {
			printf("Starting %s\n", vm->name);
			return 0;
		}
	}
	vm_err("%s: khyve did not come up within 60 s (see %s/vm.log)",
	       vm->name, vm->dir);
	return -ETIMEDOUT;
}

/* The double fork: the grandchild runs the monitor, in its own session,
 * with stdio on /dev/null and stderr appended to vm.log. */
static int spawn_monitor(struct vm *vm, const struct vm_runopts *ro,
			 int lock_fd)
{
	char logpath[PATH_MAX];
	int p[2], rc, st, fd;
	pid_t pid;

	if ((rc = vm_path(vm, "vm.log", logpath, sizeof(logpath))))
		return rc;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(p[0]);
		close(p[1]);
		return rc;
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		if (fork() != 0)
			_exit(0);
		fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			close(fd);
		}
		fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		if (chdir("/") < 0)
			_exit(1);
		_exit(vm_monitor(vm, ro, lock_fd, p[1]));
	}
	close(p[1]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	rc = wait_started(vm, p[0]);
	close(p[0]);
	return rc;
}

int vm_start_one(struct vm_env *env, const char *name, const char *iso,
		 bool foreground)
{
	struct vm_runopts ro = {.iso = iso, .foreground = foreground};
	char path[PATH_MAX];
	struct vm_plan plan;
	struct vm vm;
	pid_t pid;
	int rc, fd;

	if ((rc = vm_open(env, name, &vm)))
		return rc;
	if (vm_running(&vm, &pid)) {
		vm_err("%s is already running (pid %d)", name, (int)pid);
		rc = -EALREADY;
		goto out;
	}
	if ((rc = vm_translate(&vm, &ro, &plan)))
		goto out;
	rc = check_models(&plan);
	if (!rc)
		rc = check_resources(&vm, &plan);
	vm_plan_free(&plan);
	if (rc || (rc = vm_path(&vm, "run.lock", path, sizeof(path))))
		goto out;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		vm_err("%s: %s", path, strerror(-rc));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		vm_err("%s is already running or busy", name);
		rc = -EALREADY;
		goto out;
	}
	if (foreground) {
		rc = vm_monitor(&vm, &ro, fd, -1) ? -EIO : 0;
		close(fd);
		goto out;
	}
	rc = spawn_monitor(&vm, &ro, fd);
	close(fd);
out:
	vm_close(&vm);
	return rc;
}

static int start_usage(const char *cmd)
{
	if (!strcmp(cmd, "install"))
		vm_err("usage: vm install [-f] NAME ISO");
	else
		vm_err("usage: vm start [-f] NAME...");
	return -EINVAL;
}

int cmd_start(struct vm_env *env, int argc, char **argv)
{
	bool fg = false;
	int c, i, rc = 0, r;

	optind = 1;
	while ((c = getopt(argc, argv, "+fi")) != -1) {
		if (c == 'f')
			fg = true;
		else if (c != 'i') /* vm-bhyve's interactive: our default */
			return start_usage("start");
	}
	if (optind >= argc || (fg && argc - optind != 1))
		return start_usage("start");
	for (i = optind; i < argc; i++)
		if ((r = vm_start_one(env, argv[i], NULL, fg)) && !rc)
			rc = r;
	return rc;
}

int cmd_install(struct vm_env *env, int argc, char **argv)
{
	char iso[PATH_MAX];
	bool fg = false;
	int c, rc;

	optind = 1;
	while ((c = getopt(argc, argv, "+fi")) != -1) {
		if (c == 'f')
			fg = true;
		else if (c != 'i')
			return start_usage("install");
	}
	if (argc - optind != 2)
		return start_usage("install");
	if ((rc = vm_media_find(env, ".iso", argv[optind + 1], iso,
				sizeof(iso))))
		return rc;
	return vm_start_one(env, argv[optind], iso, fg);
}

/* Seconds vm stop waits for: the VM's stop_timeout plus slack. */
static unsigned stop_wait(const struct vm *vm)
{
	const char *v = conf_get(&vm->conf, "stop_timeout");
	long t = v ? strtol(v, NULL, 10) : 0;

	if (t <= 0 || t > 3600)
		t = VM_STOP_TIMEOUT;
	return (unsigned)t + 15;
}

/* Send sig to the monitor of a running VM. */
static int signal_vm(struct vm_env *env, const char *name, int sig,
		     struct vm *vm)
{
	pid_t pid;
	int rc;

	if ((rc = vm_open(env, name, vm)))
		return rc;
	if (!vm_running(vm, &pid) || pid <= 0) {
		vm_err("%s is not running", name);
		vm_close(vm);
		return -ESRCH;
	}
	if (kill(pid, sig) < 0) {
		rc = -errno;
		vm_err("%s: cannot signal its monitor (pid %d): %s", name,
		       (int)pid, strerror(-rc));
		vm_close(vm);
		return rc;
	}
	return 0;
}

static int wait_stopped(const struct vm *vm, unsigned secs)
{
	uint64_t deadline = mono_ms() + (uint64_t)secs * 1000;

	while (vm_running(vm, NULL)) {
		if (mono_ms() >= deadline) {
			vm_err("%s did not stop within %u s", vm->name, secs);
			return -ETIMEDOUT;
		}
		sleep_ms(50);
	}
	return 0;
}

int vm_stop_one(struct vm_env *env, const char *name, bool wait)
{
	struct vm vm;
	int rc;

	if ((rc = signal_vm(env, name, SIGTERM, &vm)))
		return rc;
	printf("Sending ACPI shutdown to %s\n", name);
	fflush(stdout);
	if (wait)
		rc = wait_stopped(&vm, stop_wait(&vm));
	vm_close(&vm);
	return rc;
}

/* Signal every named VM, then wait for each. */
static int stop_many(struct vm_env *env, char **names, int n, bool wait)
{
	struct vm *vms = calloc((size_t)n, sizeof(*vms));
	bool *sent = calloc((size_t)n, sizeof(*sent));
	int i, rc = 0, r;

	if (!vms || !sent) {
		free(vms);
		free(sent);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		r = signal_vm(env, names[i], SIGTERM, &vms[i]);
		if (r) {
			rc = rc ? rc : r;
			continue;
		}
		sent[i] = true;
		printf("Sending ACPI shutdown to %s\n", names[i]);
	}
	fflush(stdout);
	for (i = 0; i < n; i++) {
		if (!sent[i])
			continue;
		if (wait && (r = wait_stopped(&vms[i], stop_wait(&vms[i]))))
			rc = rc ? rc : r;
		vm_close(&vms[i]);
	}
	free(vms);
	free(sent);
	return rc;
}

int cmd_stop(struct vm_env *env, int argc, char **argv)
{
	if (argc < 2) {
		vm_err("usage: vm stop NAME...");
		return -EINVAL;
	}
	return stop_many(env, argv + 1, argc - 1, true);
}

int cmd_restart(struct vm_env *env, int argc, char **argv)
{
	struct vm vm;
	int rc;

	if (argc != 2) {
		vm_err("usage: vm restart NAME");
		return -EINVAL;
	}
	if ((rc = signal_vm(env, argv[1], SIGUSR1, &vm)))
		return rc;
	printf("Restarting %s\n", argv[1]);
	vm_close(&vm);
	return 0;
}

/* vm poweroff [-f] NAME, vm reset [-f] NAME */
static int forced(struct vm_env *env, int argc, char **argv, int sig,
		  const char *what)
{
	bool force = false;
	struct vm vm;
	int c, rc;

	optind = 1;
	while ((c = getopt(argc, argv, "+f")) != -1) {
		if (c != 'f')
			goto usage;
		force = true;
	}
	if (argc - optind != 1)
		goto usage;
	if (!force &&
	    !vm_confirm("Are you sure you want to forcefully %s %s",
			sig == SIGUSR2 ? "power off" : "reset", argv[optind]))
		return -ECANCELED;
	if ((rc = signal_vm(env, argv[optind], sig, &vm)))
		return rc;
	if (sig == SIGUSR2)
		rc = wait_stopped(&vm, 15);
	vm_close(&vm);
	return rc;
usage:
	vm_err("usage: vm %s [-f] NAME", what);
	return -EINVAL;
}

int cmd_poweroff(struct vm_env *env, int argc, char **argv)
{
	return forced(env, argc, argv, SIGUSR2, "poweroff");
}

int cmd_reset(struct vm_env *env, int argc, char **argv)
{
	return forced(env, argc, argv, SIGHUP, "reset");
}

int cmd_startall(struct vm_env *env, int argc, char **argv)
{
	const char *list = conf_get(&env->sys, "vm_list");
	const char *delay = conf_get(&env->sys, "vm_delay");
	char *copy, *tok, *save = NULL;
	long d = delay ? strtol(delay, NULL, 10) : 5;
	bool first = true;
	int rc = 0, r;

	(void)argv;
	if (argc != 1) {
		vm_err("usage: vm startall");
		return -EINVAL;
	}
	if (!list || !*list)
		return 0;
	if (d < 0 || d > 3600)
		d = 5;
	copy = strdup(list);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		struct vm vm;
		bool up;

		if (vm_open(env, tok, &vm)) {
			rc = rc ? rc : -ENOENT;
			continue;
		}
		up = vm_running(&vm, NULL);
		vm_close(&vm);
		if (up)
			continue;
		if (!first && d)
			sleep_ms((unsigned)d * 1000);
		first = false;
		if ((r = vm_start_one(env, tok, NULL, false)) && !rc)
			rc = r;
	}
	free(copy);
	return rc;
}

struct running {
	char **names;
	int n;
};

static int collect_running(const struct vm_env *env, struct vm *vm, void *arg)
{
	struct running *r = arg;
	char **nn;

	(void)env;
	if (!vm_running(vm, NULL))
		return 0;
	nn = realloc(r->names, (size_t)(r->n + 1) * sizeof(*nn));
	if (!nn)
		return -ENOMEM;
	r->names = nn;
	r->names[r->n] = strdup(vm->name);
	if (!r->names[r->n])
		return -ENOMEM;
	r->n++;
	return 0;
}

int cmd_stopall(struct vm_env *env, int argc, char **argv)
{
	struct running r = {0};
	int rc, i;

	(void)argv;
	if (argc != 1) {
		vm_err("usage: vm stopall");
		return -EINVAL;
	}
	rc = vm_foreach(env, collect_running, &r);
	if (!rc && r.n)
		rc = stop_many(env, r.names, r.n, true);
	for (i = 0; i < r.n; i++)
		free(r.names[i]);
	free(r.names);
	return rc;
}
