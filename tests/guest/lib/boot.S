/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Guest boot code: the PVH ELF note, the 32-bit PVH entry point, the switch
 * to long mode (shared by the BSP and the APs), the AP real-mode trampoline
 * (copied below 1 MiB by smp.c), the 256 exception/interrupt stubs and the
 * one-way jump to ring 3.
 *
 * The GDT and the identity page tables (4 GiB in 2 MiB pages, user
 * accessible, the top GiB uncached) are built at assembly time so that no
 * ring-0 loop is needed to create them (ring-0 code is emulated on PVM).
 * State: ap_ticket is taken with lock xadd by each AP for its stack slot;
 * everything else here is written once by the BSP before any AP starts.
 */
#include "defs.h"
#include "gprs.inc"

/*
 * XEN_ELFNOTE_PHYS32_ENTRY (18): the 32-bit physical entry point.  QEMU
 * reads an 8-byte descriptor from ELF64 files, so an empty note (12 zero
 * bytes) follows: it makes the upper half zero and is skipped by loaders
 * that walk the notes.
 */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4			/* namesz */
	.long 4			/* descsz */
	.long 18		/* type: XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_entry32
	.long 0, 0, 0		/* empty terminating note */

/* ------------------------------------------------------------------ */
	.section .text.boot, "ax"
	.code32
	.globl pvh_entry32
pvh_entry32:
	/* PVH: protected mode, paging off, EBX = hvm_start_info. */
	cli
	cld
	movl %ebx, %esi
	lgdtl gdt_desc
	ljmpl $GDT_CODE32, $1f
1:	movl $GDT_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movl $boot_stack_top, %esp
	/* Zero .bss (the stacks live in .stacks, which is not cleared). */
	movl $__bss_start, %edi
	movl $__bss_end, %ecx
	subl %edi, %ecx
	shrl $2, %ecx
	xorl %eax, %eax
	rep stosl
	movl %esi, boot_start_info
	xorl %ebp, %ebp		/* BSP */
	jmp long_mode32

	/* APs arrive here from the trampoline with the GDT loaded. */
	.globl ap_entry32
ap_entry32:
	movl $GDT_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	movl $1, %ebp		/* AP */

long_mode32:
	movl $pml4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	orl $(CR0_PG | CR0_PE), %eax
	movl %eax, %cr0
	ljmpl $GDT_CODE64, $long_mode64

	.code64
long_mode64:
	movl $GDT_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	testl %ebp, %ebp
	jnz 2f
	movq $boot_stack_top, %rsp
	movl boot_start_info(%rip), %edi
	xorl %ebp, %ebp
	call guest_start
	jmp halt_forever

	/* AP: take a stack slot, then call ap_start() in C. */
2:	movl $1, %eax
	lock xaddl %eax, ap_ticket(%rip)
	cmpl $(GUEST_MAX_CPUS - 1), %eax
	jae halt_forever
	incl %eax
	shll $AP_STACK_SHIFT, %eax
	leaq ap_stacks(%rip), %rsp
	addq %rax, %rsp
	xorl %ebp, %ebp
	call ap_start
	/* fall through */

	.globl halt_forever
halt_forever:
	cli
	hlt
	jmp halt_forever

/* ------------------------------------------------------------------ */
/*
 * AP trampoline, copied to AP_TRAMPOLINE_PA (SIPI vector 0x30): real mode
 * with CS = 0x3000, IP = 0.  Load our GDT (its descriptor is inside the
 * copy) and far-jump to ap_entry32 at its absolute address.
 */
	.code16
	.globl ap_trampoline, ap_trampoline_end
ap_trampoline:
	cli
	cld
	movw %cs, %ax
	movw %ax, %ds
	lgdtl (ap_gdt_desc - ap_trampoline)
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $GDT_CODE32, $ap_entry32
	.balign 4
ap_gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt
ap_trampoline_end:

/* ------------------------------------------------------------------ */
	.code64
	.text
/*
 * void ring3_jump(void (*fn)(void *), void *arg, uint64_t stack_top)
 * One way to CPL 3: load an empty IDT (so that any exception in ring 3
 * ends in a triple fault, which is also what PVM does), then iretq to
 * ring3_start with IF = 0 and IOPL = 0.
 */
	.globl ring3_jump
ring3_jump:
	lidt idt_null_desc(%rip)
	movq %rdi, %rbx
	movq %rsi, %rdi
	pushq $(GDT_UDATA | 3)		/* ss */
	pushq %rdx			/* rsp */
	pushq $0x2			/* rflags */
	pushq $(GDT_UCODE64 | 3)	/* cs */
	leaq ring3_start(%rip), %rax
	pushq %rax			/* rip */
	iretq
ring3_start:
	call *%rbx
	movl $GUEST_EXIT_FAIL, %edi
	call exit_mmio
1:	ud2
	jmp 1b

/*
 * Exception and interrupt stubs: 256 of them, 16 bytes apart starting at
 * isr_stubs.  Each pushes a zero error code when the CPU does not, then
 * its vector, and jumps to isr_common, which saves the registers and calls
 * trap_handler(struct trap_frame *) (it does not return).
 */
	.balign 16
	.globl isr_stubs
isr_stubs:
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
	jmp isr_common
	.set vec, vec + 1
	.endr

isr_common:
	PUSH_GPRS
	movq %rsp, %rdi
	call trap_handler
	jmp halt_forever

/* ------------------------------------------------------------------ */
	.data
	.balign 16
	.globl gdt, gdt_end
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff	/* 0x08 code32 */
	.quad 0x00cf92000000ffff	/* 0x10 data */
	.quad 0x00af9a000000ffff	/* 0x18 code64 */
	.quad 0x00cff2000000ffff	/* 0x20 user data, DPL 3 */
	.quad 0x00affa000000ffff	/* 0x28 user code64, DPL 3 */
gdt_end:

	.balign 16
	.word 0, 0, 0
gdt_desc:
	.word gdt_end - gdt - 1
	.quad gdt

	.balign 16
	.word 0, 0, 0
idt_null_desc:
	.word 0
	.quad 0

	.balign 4
	.globl boot_start_info, ap_ticket
boot_start_info:
	.long 0
ap_ticket:
	.long 0

/* Identity map of 0-4 GiB: PML4 -> PDPT -> 4 page directories. */
	.section .data.pagetables, "aw"
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + 0x7		/* present, writable, user */
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x7
	.quad pd + 0x1000 + 0x7
	.quad pd + 0x2000 + 0x7
	.quad pd + 0x3000 + 0x7
	.fill 508, 8, 0
pd:
	.set pg, 0
	.rept 2048
	.if pg >= 1536
	.quad (pg << 21) | 0x9f		/* P RW US PWT PCD PS: MMIO GiB */
	.else
	.quad (pg << 21) | 0x87		/* P RW US PS */
	.endif
	.set pg, pg + 1
	.endr

/* Stacks: not cleared at boot. */
	.section .stacks, "aw", @nobits
	.balign 16
boot_stack:
	.skip BOOT_STACK_SIZE
boot_stack_top:
	.globl ap_stacks
	.balign 16
ap_stacks:
	.skip GUEST_MAX_CPUS << AP_STACK_SHIFT

	.section .note.GNU-stack, "", @progbits
