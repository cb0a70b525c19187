/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The hypervisor seam.  Everything above this header is independent of the
 * kernel interface; src/kvm/kvm.c implements it with Linux KVM ioctls and is
 * the only file in khyve that issues them.  A FreeBSD vmm.ko or a
 * Hypervisor.framework backend would implement the same functions.
 *
 * Objects: one struct hv_vm per guest, one struct hv_vcpu per vCPU.
 * Threads: hv_vm_* calls may come from any thread (the kernel serialises
 * them).  hv_vcpu_* calls other than hv_vcpu_kick() must come from the
 * vCPU's own thread (KVM's vCPU ioctls block while KVM_RUN runs).
 */
#ifndef KHYVE_KVM_HV_H
#define KHYVE_KVM_HV_H

#include <stdbool.h>
#include <stdint.h>

struct hv_vm;
struct hv_vcpu;

/* Machine options fixed at VM creation. */
struct hv_vm_opts {
	bool exit_on_hlt;   /* x86.vmexit_on_hlt: HLT yields the host CPU */
	bool exit_on_pause; /* x86.vmexit_on_pause: pause-loop exiting */
	bool x2apic;	    /* x86.x2apic */
	bool strict_msr;    /* x86.strictmsr: #GP on unknown MSRs */
	unsigned ncpus;
	unsigned sockets, cores, threads;
};

enum hv_exit_reason {
	HV_EXIT_IO,	  /* port I/O: io */
	HV_EXIT_MMIO,	  /* MMIO: mmio */
	HV_EXIT_HLT,	  /* HLT with no in-kernel wake-up source */
	HV_EXIT_SHUTDOWN, /* triple fault */
	HV_EXIT_RESET,	  /* platform reset requested through the kernel */
	HV_EXIT_POWEROFF, /* platform power-off requested through the kernel */
	HV_EXIT_INTR,	  /* KVM_RUN interrupted (kick or signal) */
	HV_EXIT_FAIL,  /* entry failure or internal error: 'raw' says which */
	HV_EXIT_OTHER, /* anything else: 'raw' is the backend's code */
	HV_EXIT_NR
};

struct hv_exit {
	enum hv_exit_reason reason;
	uint32_t raw;	   /* backend exit code (KVM_EXIT_*) */
	uint32_t suberror; /* for HV_EXIT_FAIL */
	union {
		struct {
			uint16_t port;
			uint8_t size; /* 1, 2, 4 */
			bool write;
			uint32_t count; /* >1 for rep ins/outs */
			uint8_t *data;	/* count*size bytes, in place */
		} io;
		struct {
			uint64_t gpa;
			uint8_t size; /* 1..8 */
			bool write;
			uint8_t *data; /* in place */
		} mmio;
	};
};

/* General and control registers (for boot set-up and --get-all). */
struct hv_seg {
	uint64_t base;
	uint32_t limit;
	uint16_t sel;
	uint8_t type, present, dpl, db, s, l, g, avl;
};

struct hv_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer;
	struct hv_seg cs, ds, es, fs, gs, ss, tr, ldt;
	uint64_t gdt_base, idt_base;
	uint16_t gdt_limit, idt_limit;
	uint64_t dr0, dr1, dr2, dr3, dr6, dr7;
	uint64_t apic_base;
};

/* vCPU run state as the kernel sees it. */
enum hv_mp_state {
	HV_MP_RUNNABLE,
	HV_MP_HALTED,
	HV_MP_WAIT_SIPI, /* AP waiting for INIT/SIPI */
	HV_MP_OTHER,
};

/*
 * Open the hypervisor and create an empty VM with the in-kernel interrupt
 * controllers (PIC, IOAPIC, LAPIC) and PIT.  When the hypervisor is missing
 * or unusable, logs one line saying why and returns -ENODEV/-errno.
 */
int hv_vm_create(const struct hv_vm_opts *opts, struct hv_vm **out);
/* Destroy the VM and close everything.  NULL is accepted. */
void hv_vm_destroy(struct hv_vm *vm);

/* Map host memory at a guest-physical range.  Returns 0 or -errno. */
int hv_vm_map(struct hv_vm *vm, uint64_t gpa, uint64_t size, void *host,
	      bool readonly);
/* Drive interrupt line 'gsi' (IOAPIC pin / PIC irq).  0 or -errno. */
int hv_vm_set_irq(struct hv_vm *vm, unsigned gsi, int level);
/* Inject one MSI message.  0 or -errno. */
int hv_vm_msi(struct hv_vm *vm, uint64_t addr, uint32_t data);
/*
 * Ask the kernel to signal 'fd' (an eventfd) on a guest write to
 * [addr, addr+len) of PIO or MMIO, optionally only when the value equals
 * 'match'.  'deassign' removes it.  0 or -errno.
 */
int hv_vm_ioeventfd(struct hv_vm *vm, int fd, uint64_t addr, unsigned len,
		    bool pio, bool has_match, uint64_t match, bool deassign);
/* Route eventfd 'fd' to interrupt 'gsi' in the kernel.  0 or -errno. */
int hv_vm_irqfd(struct hv_vm *vm, int fd, unsigned gsi, bool deassign);
/*
 * MSI routes: allocate a GSI (above the irqchip pins) that delivers the
 * MSI message (addr, data), for use with hv_vm_irqfd().  Returns the GSI
 * (>= 0) or -errno.  _set changes the message of an allocated GSI, _free
 * releases it.  0 or -errno.
 */
int hv_vm_msi_route_alloc(struct hv_vm *vm, uint64_t addr, uint32_t data);
int hv_vm_msi_route_set(struct hv_vm *vm, int gsi, uint64_t addr,
			uint32_t data);
int hv_vm_msi_route_free(struct hv_vm *vm, int gsi);

/* Create vCPU 'id' (0 is the BSP).  Returns 0 or -errno. */
int hv_vcpu_create(struct hv_vm *vm, unsigned id, struct hv_vcpu **out);
/* Free a vCPU. */
void hv_vcpu_destroy(struct hv_vcpu *vcpu);
/* Program CPUID (topology from the VM options) and MSRs.  0 or -errno. */
int hv_vcpu_init_cpu(struct hv_vcpu *vcpu);

/*
 * Enter the guest until the next exit and describe it in *ex.  For I/O and
 * MMIO reads the caller fills ex->io.data/ex->mmio.data before the next
 * call.  Returns 0, or -errno on a failure of the call itself.
 */
int hv_vcpu_run(struct hv_vcpu *vcpu, struct hv_exit *ex);
/*
 * Make the vCPU leave (or not enter) the guest soon with HV_EXIT_INTR.
 * Safe from any thread, async-signal-safe.
 */
void hv_vcpu_kick(struct hv_vcpu *vcpu);
/* Clear a pending kick before the next run (vCPU thread). */
void hv_vcpu_clear_kick(struct hv_vcpu *vcpu);

/* Read / write all registers.  0 or -errno. */
int hv_vcpu_get_regs(struct hv_vcpu *vcpu, struct hv_regs *r);
int hv_vcpu_set_regs(struct hv_vcpu *vcpu, const struct hv_regs *r);
/* Run state.  0 or -errno. */
int hv_vcpu_get_mp_state(struct hv_vcpu *vcpu, enum hv_mp_state *st);

/* Name of an exit reason for statistics ("io", "mmio", ...). */
const char *hv_exit_name(enum hv_exit_reason r);

#endif
