/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The VM object: owns the hypervisor VM, guest memory, the buses, the
 * event loop, the devices, the vCPUs and the control socket, and runs the
 * explicit start-up sequence (bhyve's main(): config -> memory -> platform
 * devices -> PCI -> ACPI/MP tables -> kernel -> vCPUs).
 *
 * Threads: vm_create()/vm_run()/vm_destroy() on the main thread, which runs
 * the event loop.  vm_request_exit() may be called from any thread (a vCPU
 * or a device); the first request decides the exit status.
 */
#ifndef KHYVE_CORE_VM_H
#define KHYVE_CORE_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/devmodel.h"
#include "core/gmem.h"

struct hv_vm;
struct vcpu;
struct bus;
struct event_loop;
struct pci_bus;
struct pm;
struct rtc;
struct atkbdc;
struct ctl;

struct vm {
	const char *name;
	struct cfg_node *cfg;
	struct hv_vm *hv;
	struct gmem mem;
	struct bus *pio, *mmio;
	struct event_loop *ev;
	struct devctx ctx;
	struct pci_bus *pci;
	struct pm *pm;
	struct rtc *rtc;
	struct atkbdc *kbd;
	struct ctl *ctl;
	unsigned ncpus;
	struct vcpu **vcpus;
	bool strictio;
	bool halt_detect; /* -H: detect "all halted, IF=0" (exit 2) */
	int exit_status;  /* valid once 'exiting' */
	bool exiting;	  /* atomic */
};

/* Build the whole VM from the checked config tree.  On failure everything
 * is undone and one error line has been printed.  0 or -errno. */
int vm_create(struct cfg_node *cfg, struct vm **out);
/* Start the vCPUs and run until the VM ends; returns bhyve's exit status
 * (0 reboot, 1 power-off, 2 halt, 3 triple fault, 4 error). */
int vm_run(struct vm *vm);
/* Free everything (after vm_run()). */
void vm_destroy(struct vm *vm);

/* End the VM with 'status'; 'why' is logged at info level.  Any thread. */
void vm_request_exit(struct vm *vm, int status, const char *why);
/* Called by a vCPU thread after a halt poll (see vcpu_poll_halt()). */
void vm_vcpu_halted(struct vm *vm);
/* Register the control-socket commands (vm_ctl.c).  0 or -errno. */
int vm_ctl_register(struct vm *vm);
/* True once vm_request_exit() was called. */
bool vm_exiting(const struct vm *vm);

#endif
