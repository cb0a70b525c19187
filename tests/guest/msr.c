/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * msr: what an unknown MSR does.  With a #GP handler installed (it records
 * the fault and skips the 2-byte rdmsr/wrmsr by adding 2 to the saved
 * RIP) the guest reads MSR 0x40000200 (or msr=N), writes it, and reads it
 * again.  The command line says what must happen:
 *
 *   expect=gp    every access raises #GP (khyve without -w)
 *   expect=zero  no #GP, reads return 0, the write is dropped (khyve -w)
 *
 * A known MSR (IA32_TSC, 0x10) is read first as a control: it must not
 * fault either way.  PASS when what happened matches.  BSP only; the
 * handler and the main code share two volatile variables.
 */
#include "guest.h"

const char guest_name[] = "msr";

#define DEF_MSR 0x40000200
#define POISON 0xdeadbeefu

static volatile uint32_t nfaults;
static volatile uint64_t fault_error, fault_rip;

static void gp_handler(struct trap_frame *tf)
{
	const uint8_t *ip = (const uint8_t *)(uintptr_t)tf->rip;

	/* Only our own rdmsr (0f 32) / wrmsr (0f 30) may fault. */
	if (ip[0] != 0x0f || (ip[1] != 0x32 && ip[1] != 0x30))
		trap_handler(tf);
	nfaults++;
	fault_error = tf->error;
	fault_rip = tf->rip;
	tf->rip += 2;
}

/* rdmsr with EDX:EAX preset to a poison value; *faulted says whether it
 * raised #GP (then the value is the poison). */
static uint64_t msr_read(uint32_t msr, bool *faulted)
{
	uint32_t before = nfaults, lo, hi;

	__asm__ volatile("rdmsr"
			 : "=a"(lo), "=d"(hi)
			 : "c"(msr), "0"(POISON), "1"(POISON)
			 : "memory");
	*faulted = nfaults != before;
	return (uint64_t)hi << 32 | lo;
}

static bool msr_write(uint32_t msr, uint64_t v)
{
	uint32_t before = nfaults;

	__asm__ volatile("wrmsr"
			 :
			 : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
			 : "memory");
	return nfaults != before;
}

void guest_main(void)
{
	char expect[8];
	uint64_t msr = DEF_MSR, v1, v2;
	bool gp, f1, f2, fw, ft;

	if (cmdline_get("expect", expect, sizeof(expect)) < 0 ||
	    (strcmp(expect, "gp") && strcmp(expect, "zero")))
		guest_fail("the command line needs expect=gp or expect=zero");
	gp = !strcmp(expect, "gp");
	if (cmdline_get_u64("msr", &msr) == -GUEST_EINVAL ||
	    msr > 0xffffffffULL)
		guest_fail("bad msr= on the command line");
	if (intr_set_handler(13, gp_handler))
		guest_fail("cannot install the #GP handler");

	(void)msr_read(0x10, &ft);
	if (ft)
		guest_fail("reading IA32_TSC (0x10) raised #GP");

	v1 = msr_read((uint32_t)msr, &f1);
	printf("msr: rdmsr 0x%lx: %s (value 0x%lx)\n", msr,
	       f1 ? "#GP" : "no fault", v1);
	fw = msr_write((uint32_t)msr, 0x1122334455667788ULL);
	printf("msr: wrmsr 0x%lx <- 0x1122334455667788: %s\n", msr,
	       fw ? "#GP" : "no fault");
	v2 = msr_read((uint32_t)msr, &f2);
	printf("msr: rdmsr 0x%lx again: %s (value 0x%lx)\n", msr,
	       f2 ? "#GP" : "no fault", v2);
	if (nfaults)
		printf("msr: last #GP error code 0x%lx at rip 0x%lx\n",
		       fault_error, fault_rip);

	if (gp) {
		if (!f1 || !fw || !f2)
			guest_fail("expected #GP on every access to MSR 0x%lx",
				   msr);
	} else {
		if (f1 || fw || f2)
			guest_fail("unexpected #GP on MSR 0x%lx", msr);
		if (v1 != 0 || v2 != 0)
			guest_fail("MSR 0x%lx reads 0x%lx then 0x%lx, expected "
				   "0",
				   msr, v1, v2);
	}
	printf("msr: MSR 0x%lx behaves as expect=%s\n", msr, expect);
	guest_pass();
}
