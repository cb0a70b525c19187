/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The "bare KVM loop" of the exit-cost benchmark: loads a PVH guest ELF
 * exactly as khyve does (same loader, same memory layout) and runs vCPU 0
 * in the thinnest loop possible: KVM_RUN, look at the exit, answer port
 * and MMIO reads with all ones, stop at the debug-exit port (0xf4) or the
 * khyve exit register.  No bus, no devices, no statistics, no event loop:
 * the difference to khyve is the cost of khyve's dispatch.
 *
 * Usage: bare_kvm GUEST.elf [cmdline]   (exit status as khyve's pc-testdev)
 * Single-threaded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "core/gmem.h"
#include "core/layout.h"
#include "firmware/e820.h"
#include "kvm/hv.h"
#include "lib/log.h"

int main(int argc, char **argv)
{
	struct hv_vm_opts o = {.exit_on_hlt = true,
			       .exit_on_pause = true,
			       .strict_msr = false,
			       .ncpus = 1,
			       .sockets = 1,
			       .cores = 1,
			       .threads = 1};
	struct e820_entry map[E820_MAX];
	struct boot_req req = {0};
	struct boot_info info;
	struct hv_regs regs;
	struct hv_vcpu *cpu;
	struct hv_vm *vm;
	struct gmem mem;
	struct hv_exit ex;
	unsigned long long exits = 0;
	int n;

	log_init("bare_kvm");
	if (argc < 2) {
		fprintf(stderr, "usage: bare_kvm GUEST.elf [cmdline]\n");
		return 4;
	}
	if (hv_vm_create(&o, &vm) ||
	    gmem_alloc(&mem, 256 * MIB, false, false) ||
	    hv_vm_map(vm, 0, mem.lowmem, mem.region[0].host, false))
		return 4;
	n = e820_build(&mem, map, E820_MAX);
	req.kernel = argv[1];
	req.cmdline = argc > 2 ? argv[2] : NULL;
	req.mem = &mem;
	req.e820 = map;
	req.ne820 = n > 0 ? (unsigned)n : 0;
	if (boot_load(&req, &regs, &info) || hv_vcpu_create(vm, 0, &cpu) ||
	    hv_vcpu_init_cpu(cpu) || hv_vcpu_set_regs(cpu, &regs))
		return 4;
	for (;;) {
		if (hv_vcpu_run(cpu, &ex))
			return 4;
		exits++;
		switch (ex.reason) {
		case HV_EXIT_IO:
			if (ex.io.write && ex.io.port == DEBUG_EXIT_PORT) {
				uint32_t v;

				memcpy(&v, ex.io.data, 4);
				fprintf(stderr, "bare_kvm: %llu exits\n",
					exits);
				return (int)((v << 1) | 1) & 0xff;
			}
			if (ex.io.write && ex.io.port == COM1_PORT)
				fputc(ex.io.data[0], stdout);
			else if (!ex.io.write)
				memset(ex.io.data, 0xff,
				       (size_t)ex.io.size * ex.io.count);
			break;
		case HV_EXIT_MMIO:
			if (ex.mmio.write && ex.mmio.gpa == TESTDEV_EXIT_REG) {
				uint32_t v;

				memcpy(&v, ex.mmio.data, 4);
				fprintf(stderr, "bare_kvm: %llu exits\n",
					exits);
				return (int)((v << 1) | 1) & 0xff;
			}
			if (!ex.mmio.write)
				memset(ex.mmio.data, 0xff, ex.mmio.size);
			break;
		case HV_EXIT_INTR:
			break;
		case HV_EXIT_SHUTDOWN:
			return 3;
		default:
			fprintf(stderr, "bare_kvm: exit %s\n",
				hv_exit_name(ex.reason));
			return 4;
		}
	}
}
