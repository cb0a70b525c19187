/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Naming and control of running VMs: khyve's analog of FreeBSD's
 * /dev/vmm/NAME, used by khyvectl(8) the way bhyvectl(8) uses /dev/vmm.
 *
 * Every running VM owns a runtime directory RUNDIR/NAME/ (mode 0700) with
 *
 *   pid        the khyve pid in decimal; the file is flock()ed exclusively
 *              for the VM's whole lifetime.  A second khyve with the same
 *              name is refused ("vm NAME is already running (pid N)").  A
 *              directory whose lock is not held was left by a killed process
 *              and is reclaimed silently.
 *   ctl.sock   a UNIX stream socket (mode 0600) served on the VM's main event
 *              loop (src/event/event.h).
 *
 * RUNDIR is, first match wins:
 *   1. the VM's config key `rundir` (bhyve/libvirt key; the VM code passes
 *      it to ctl_open(), khyvectl has --rundir=DIR),
 *   2. $KHYVE_RUNDIR (when set and not empty),
 *   3. /run/khyve when running as root (effective uid 0),
 *   4. $XDG_RUNTIME_DIR/khyve (when set to an absolute path),
 *   5. /tmp/khyve-UID (UID: the effective uid).
 * Missing directories are created with mode 0700.  RUNDIR must be owned by
 * the caller or root and, when others may write to it, be sticky (so the
 * /tmp fallback cannot be hijacked); RUNDIR/NAME must be a real directory
 * owned by the caller.
 *
 * VM names: 1..CTL_NAME_MAX characters from [A-Za-z0-9_.:+@-], not starting
 * with '.' or '-'.  The socket path must fit sockaddr_un (about 107 bytes);
 * a longer RUNDIR fails with -ENAMETOOLONG.
 *
 * Wire protocol (one request per connection, all text):
 *   client -> server   "COMMAND[ ARGS]\n"  at most CTL_REQ_MAX bytes with the
 *                      newline; no NUL or control bytes except TAB; a
 *                      trailing "\r" is dropped; end of file also ends the
 *                      line.  COMMAND is [a-z0-9_-]{1,CTL_CMD_MAX}; ARGS is
 *                      the rest after the blanks that follow it.
 *   server -> client   "ok\n" or "err ERRNO\n" (ERRNO a positive decimal
 *                      Linux errno), then the reply text (any bytes), then
 *                      the server closes the connection.
 * Built-in commands: "ping" (reply "pong\n") and "help" (the registered
 * command names, one per line, sorted).  An unknown command gets
 * "err ENOSYS" and a message naming it.  A request that is too long gets
 * "err EMSGSIZE", one holding junk "err EINVAL"; either way the connection
 * is closed.  A connection that has not finished within the idle timeout
 * (default CTL_IDLE_MS) is dropped;
 * when CTL_MAX_CONNS connections are open the oldest one still reading its
 * request is dropped to make room, so idle clients cannot lock others out.
 *
 * The lock lives on an open file description: a child forked without exec
 * shares it and keeps the name claimed until it exits (the fds are
 * O_CLOEXEC, so exec drops them).
 *
 * Threads: the server side (ctl_open, ctl_register, ctl_close and every
 * handler) runs on the event loop's thread, or during start-up before the
 * loop runs.  No locks.  All socket I/O is non-blocking and buffered per
 * connection; handlers run synchronously and must not block longer than a
 * few milliseconds.  The client side (ctl_call) is a blocking call usable
 * from any thread of any program; it shares no state.
 */
#ifndef KHYVE_CTL_CTL_H
#define KHYVE_CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct ctl;
struct event_loop;

#define CTL_NAME_MAX 64		  /* longest VM name */
#define CTL_CMD_MAX 32		  /* longest command word */
#define CTL_REQ_MAX 4096	  /* longest request line, newline included */
#define CTL_MAX_CONNS 16	  /* connections served at once */
#define CTL_IDLE_MS 10000	  /* drop a connection after this long */
#define CTL_CALL_TIMEOUT_MS 30000 /* ctl_call gives up after this long */

/*
 * Command handler.  'args' is the text after the command word (may be "",
 * never NULL); write the reply text to 'out'.  Return 0 (status "ok") or
 * -errno (status "err"; the text is the message, strerror() when empty).
 */
typedef int (*ctl_cmd_fn)(void *arg, const char *args, FILE *out);

/*
 * Claim RUNDIR/NAME for this process and start serving ctl.sock on 'ev'.
 * 'rundir' NULL or "" means ctl_default_rundir().  Returns 0 and *out, or
 * -EEXIST when a live khyve holds the name (logs "vm NAME is already running
 * (pid N)"), -EINVAL for a bad name, -ENAMETOOLONG, or another -errno; every
 * failure logs one line naming the path.
 */
int ctl_open(struct event_loop *ev, const char *rundir, const char *name,
	     struct ctl **out);

/*
 * Serve command 'cmd' with fn(arg, ...).  Returns 0, -EINVAL (bad command
 * word), -EEXIST (already registered, built-ins included) or -ENOMEM.
 */
int ctl_register(struct ctl *ctl, const char *cmd, ctl_cmd_fn fn, void *arg);

/* Drop connections after 'ms' milliseconds (0: CTL_IDLE_MS).  For tests. */
void ctl_set_idle_timeout(struct ctl *ctl, unsigned ms);

/*
 * Stop serving: pending replies get one last non-blocking write, every
 * connection is closed, and the socket, the pid file and RUNDIR/NAME are
 * removed before the lock is released.  NULL is accepted.
 */
void ctl_close(struct ctl *ctl);

/*
 * The default RUNDIR (rules 2-5 above) in a static buffer: not thread-safe,
 * call it during start-up.  Never NULL.
 */
const char *ctl_default_rundir(void);

/* True when 'name' is a valid VM name (rules above). */
bool ctl_name_valid(const char *name);

/*
 * Write "RUNDIR/NAME/ctl.sock" to buf (rundir NULL or "": the default).
 * Returns 0, -EINVAL (bad name) or -ENAMETOOLONG (does not fit 'len' or a
 * sockaddr_un).
 */
int ctl_sock_path(const char *rundir, const char *name, char *buf, size_t len);

/*
 * Client: send 'cmdline' ("command args", no newline) to VM 'name' and copy
 * the reply text to 'out' (may be NULL to discard).  *status gets 0 for
 * "ok" or -ERRNO for "err ERRNO".  Returns 0 when a reply was received, or
 * -ENOENT (no such VM: no socket, or nobody listening on it), -EINVAL (bad
 * name, or cmdline empty/holding a newline or control byte), -ENAMETOOLONG,
 * -EACCES, -ETIMEDOUT (no reply within CTL_CALL_TIMEOUT_MS), -EPROTO
 * (malformed status line), -ECONNRESET (closed before a status line) or
 * another -errno.  Logs nothing: the caller reports.  SIGPIPE is avoided.
 */
int ctl_call(const char *rundir, const char *name, const char *cmdline,
	     FILE *out, int *status);

#endif
