/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Handled interrupts and exceptions: intr_set_handler() points one gate of
 * the library's IDT (the one start.c built, found with sidt) at a returning
 * stub of intr.S and records a C handler for the vector; intr_dispatch()
 * runs it.  A vector without a handler behaves as before: trap_handler()
 * prints the frame and fails the test.  (The interrupt-flag helpers,
 * irq_enable() and friends, are inline in guest.h.)
 *
 * State: handlers[] is written by the BSP before interrupts are enabled and
 * read by any CPU taking an event.  The IDT is shared by all CPUs, so a
 * handler set here applies to every CPU.  No locks.
 */
#include "guest.h"

struct idt_gate {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
} __attribute__((packed));

struct idt_desc {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

extern const char intr_stubs[], isr_stubs[];
void intr_dispatch(struct trap_frame *tf);

static intr_fn volatile handlers[256];

static int idt_set_gate(unsigned int vec, const char *stub)
{
	struct idt_desc d;
	volatile struct idt_gate *g;
	uint64_t h = (uint64_t)(uintptr_t)stub;

	__asm__ volatile("sidt %0" : "=m"(d));
	if ((uint32_t)d.limit + 1 < (vec + 1) * sizeof(*g))
		return -GUEST_ERANGE;
	g = (volatile struct idt_gate *)(uintptr_t)d.base + vec;
	g->type = 0; /* not present while it changes */
	g->off_lo = (uint16_t)h;
	g->sel = GDT_CODE64;
	g->ist = 0;
	g->off_mid = (uint16_t)(h >> 16);
	g->off_hi = (uint32_t)(h >> 32);
	g->zero = 0;
	g->type = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
	return 0;
}

int intr_set_handler(unsigned int vec, intr_fn fn)
{
	if (vec > 255)
		return -GUEST_EINVAL;
	handlers[vec] = fn;
	return idt_set_gate(vec, (fn ? intr_stubs : isr_stubs) + 16 * vec);
}

void intr_dispatch(struct trap_frame *tf)
{
	intr_fn fn = tf->vector < 256 ? handlers[tf->vector] : NULL;

	if (!fn)
		trap_handler(tf);
	fn(tf);
}
