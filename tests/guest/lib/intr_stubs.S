/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Returning interrupt and exception stubs for guests that handle events
 * (see intr.c).  The library's own stubs in boot.S end in trap_handler(),
 * which fails the test; these 256 stubs, 16 bytes apart starting at
 * intr_stubs, save the registers as a struct trap_frame, call
 * intr_dispatch(frame) and return with iretq using the frame as the
 * handler left it (a handler may change the saved RIP or registers).
 * intr_set_handler() points an IDT gate at one of them.
 *
 * Threads: any CPU; the stubs use the interrupted stack only.  No state.
 */
#include "defs.h"
#include "gprs.inc"

	.code64
	.text
	.balign 16
	.globl intr_stubs
intr_stubs:
	.set vec, 0
	.rept 256
	.balign 16
	.set has_error, 0
	.if vec == 8 || vec == 17 || vec == 21 || vec == 29 || vec == 30
	.set has_error, 1
	.endif
	.if vec >= 10 && vec <= 14
	.set has_error, 1
	.endif
	.if has_error == 0
	pushq $0
	.endif
	pushq $vec
	jmp intr_common
	.set vec, vec + 1
	.endr

/*
 * The frame matches struct trap_frame: r15 at the lowest address, then up
 * to rax, the vector and the error code, then what the CPU pushed.  The
 * CPU aligned RSP to 16 bytes before its five pushes; with the error code,
 * the vector and the 15 registers that makes 22 quadwords, so RSP is
 * 16-byte aligned at the call, as the ABI wants.
 */
intr_common:
	PUSH_GPRS
	cld
	movq %rsp, %rdi
	call intr_dispatch
	POP_GPRS
	addq $16, %rsp		/* vector and error code */
	iretq

	.section .note.GNU-stack, "", @progbits
