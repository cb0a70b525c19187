/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vCPU threads: one named thread ("vcpu/N") per vCPU running the KVM_RUN
 * loop and dispatching exits through a table indexed by exit reason
 * (bhyve's vmexit_handlers[]).  Port and MMIO exits go to the buses;
 * triple faults, resets and failures end the VM with bhyve's statuses.
 *
 * Requests from other threads (stop, "report your registers", "check
 * whether you are halted") are flags in the vcpu plus a kick that makes
 * KVM_RUN return; the vCPU thread services them between runs.
 *
 * Locks: 'lock'/'cond' protect the register mailbox; counters are atomics.
 */
#ifndef KHYVE_VCPU_VCPU_H
#define KHYVE_VCPU_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm/hv.h"

struct vm;
struct vcpu;

/* Per-vCPU exit statistics (monotonic counters). */
struct vcpu_stats {
	uint64_t exits[HV_EXIT_NR];
	uint64_t pio_unclaimed;
	uint64_t mmio_unclaimed;
	uint64_t string_io; /* rep ins/outs exits */
};

/* Create vCPU 'id' of 'vm' (not started).  0 or -errno. */
int vcpu_create(struct vm *vm, unsigned id, struct vcpu **out);
/* Set the initial registers (BSP after a direct boot).  0 or -errno.
 * Call before vcpu_start(). */
int vcpu_set_regs(struct vcpu *v, const struct hv_regs *regs);
/* Start the thread; 'cpuset' (may be NULL) is a "0,2-3" host CPU list
 * to pin it to (vcpu.N.cpuset).  0 or -errno. */
int vcpu_start(struct vcpu *v, const char *cpuset);
/* Ask the thread to stop and wait for it.  Safe on a never-started vcpu. */
void vcpu_stop(struct vcpu *v);
/* Free a stopped vcpu. */
void vcpu_destroy(struct vcpu *v);

/* Ask the vCPU whether it is halted with interrupts off (for exit 2);
 * the answer arrives later through vm_vcpu_halted(). Any thread. */
void vcpu_poll_halt(struct vcpu *v);
/* Last known halted-with-interrupts-off state. */
bool vcpu_is_halted(const struct vcpu *v);

/* Fetch the registers from the vCPU thread, waiting up to 'timeout_ms'.
 * Any thread except the vCPU's own.  0, -ETIMEDOUT or -errno. */
int vcpu_get_regs(struct vcpu *v, struct hv_regs *out, unsigned timeout_ms);
/* Copy the counters. */
void vcpu_get_stats(const struct vcpu *v, struct vcpu_stats *st);
unsigned vcpu_id(const struct vcpu *v);

/* Parse a host CPU list ("0,2-3") into a cpu_set_t-sized mask.  0/-EINVAL. */
int vcpu_parse_cpuset(const char *s, void *cpuset, unsigned max_cpus);

#endif
