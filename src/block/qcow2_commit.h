/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Metadata commit plans of the qcow2 backend, executed by a helper
 * process that survives the VMM (see "METADATA AND CRASH SAFETY" at the
 * top of qcow2.c for why).
 *
 * qcow2.c builds each commit as a plan, a list of operations (write these
 * bytes at this file offset; fdatasync), in an area of shared memory, and
 * hands the whole plan over in one message.  The helper, a child process
 * forked when a writable image is opened, executes every operation of a
 * plan in order and answers with 0 or -errno.  Once a plan is handed over
 * it is executed in full even if the VMM is killed; a plan never handed
 * over writes nothing.  Plans are idempotent (absolute bytes at absolute
 * offsets), so when the helper is gone the VMM runs the same plan again
 * itself; without a helper (fork failed, or disabled for tests) plans run
 * in-process, with the old crash window (one warning).
 *
 * Threads and locks: none inside.  One plan at a time per commit object;
 * the caller (qcow2.c, under its image lock) serialises every call.  The
 * helper process is single-threaded and makes only async-signal-safe
 * calls (it is forked from a multi-threaded VMM).
 */
#ifndef KHYVE_BLOCK_QCOW2_COMMIT_H
#define KHYVE_BLOCK_QCOW2_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "block/blk_backend.h"

struct qcow2_commit;

/*
 * A commit object for the writable file 'f' (which must outlive it).
 * 'helper': fork the helper process (unless qcow2_commit_set_helper(false)
 * turned helpers off); if that fails, plans run in-process after one
 * warning naming f->path.  Returns 0 or -ENOMEM/-errno (no shared memory).
 */
int qcow2_commit_open(struct qcow2_commit **out, const struct blk_file *f,
		      bool helper);
/* End the helper (no plan may be pending: every submit was waited for),
 * reap it and free everything.  NULL is a no-op. */
void qcow2_commit_close(struct qcow2_commit *c);

/* Append "write 'len' bytes of 'buf' at file offset 'off'" to the plan
 * being built (the bytes are copied).  0 or -ENOMEM/-EFBIG. */
int qcow2_commit_write(struct qcow2_commit *c, const void *buf, size_t len,
		       uint64_t off);
/* Append "fdatasync the file" (unless the plan ends with one already).
 * 0 or -ENOMEM. */
int qcow2_commit_sync(struct qcow2_commit *c);
/* Throw the plan being built away (nothing of it is written). */
void qcow2_commit_abort(struct qcow2_commit *c);
/* Is the plan being built empty? */
bool qcow2_commit_empty(const struct qcow2_commit *c);

/*
 * Hand the plan over to the helper (or run it, in-process).  From here
 * on it is executed in full whatever happens to the caller.  0 or -errno;
 * every submit is followed by one qcow2_commit_wait().
 */
int qcow2_commit_submit(struct qcow2_commit *c);
/*
 * Wait until the submitted plan has been executed and start a new, empty
 * one.  Returns the plan's result: 0, or the -errno of the first write or
 * sync that failed (the rest of the plan was not executed).
 */
int qcow2_commit_wait(struct qcow2_commit *c);
/* qcow2_commit_submit() then qcow2_commit_wait(); an empty plan costs
 * nothing. */
int qcow2_commit_run(struct qcow2_commit *c);

/* The helper's process id, or 0 when plans run in-process. */
pid_t qcow2_commit_helper_pid(const struct qcow2_commit *c);
/*
 * For tests and benchmarks: whether qcow2_commit_open() forks helpers
 * from now on (the default is true).  Process-wide.
 */
void qcow2_commit_set_helper(bool on);

#endif
