/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Ending the VM: the isa-debug-exit port (ring 0), the khyve exit register
 * (any ring), a deliberate triple fault, the 0xcf9 reset, PASS/FAIL lines,
 * and the one-way switch to ring 3.  Each exit falls back to a triple
 * fault so that a VM without the device still stops.
 *
 * Threads: any CPU may call these; they never return.  The ring-3 stack is
 * static and used by one CPU only (the one that calls ring3_enter).
 */
#include "guest.h"

static uint8_t ring3_stack[RING3_STACK_SIZE] __attribute__((aligned(16)));

void ring3_jump(void (*fn)(void *), void *arg, uint64_t stack_top);

void triple_fault(void)
{
	static const struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) null_idt = {0, 0};

	__asm__ volatile("lidt %0" : : "m"(null_idt));
	/* #DE with an empty IDT: #GP on delivery, then #DF, then shutdown. */
	__asm__ volatile("xorl %%ecx, %%ecx\n\t"
			 "movl $1, %%eax\n\t"
			 "xorl %%edx, %%edx\n\t"
			 "divl %%ecx"
			 :
			 :
			 : "eax", "ecx", "edx", "memory");
	halt_forever();
}

void exit_port(uint32_t v)
{
	outl(DEBUG_EXIT_PORT, v);
	triple_fault();
}

void exit_mmio(uint32_t v)
{
	uint16_t cs;

	mmio_write32(TESTDEV_EXIT_REG, v);
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	if ((cs & 3) == 0)
		triple_fault();
	/* Ring 3 runs with an empty IDT: #UD ends in a triple fault. */
	for (;;)
		__asm__ volatile("ud2");
}

void guest_pass(void)
{
	printf("PASS %s\n", guest_name);
	exit_port(GUEST_EXIT_PASS);
}

void guest_fail(const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	printf("FAIL %s: %s\n", guest_name, why);
	exit_port(GUEST_EXIT_FAIL);
}

void vmm_settle(void)
{
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < 2000000000ULL)
		cpu_relax();
}

void reset_cf9(void)
{
	outb(0xcf9, 0x06);
	vmm_settle();
}

void ring3_enter(void (*fn)(void *), void *arg)
{
	ring3_jump(fn, arg,
		   (uint64_t)(uintptr_t)(ring3_stack + sizeof(ring3_stack)));
	halt_forever();
}
