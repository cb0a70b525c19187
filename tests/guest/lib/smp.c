/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Local APIC access and AP start-up.  smp_start_aps() copies the real-mode
 * trampoline from boot.S to AP_TRAMPOLINE_PA and sends INIT-SIPI-SIPI to
 * each CPU of the MADT, one at a time, waiting for it to check in.  The AP
 * runs the trampoline -> ap_entry32 -> long mode -> ap_start() here.
 *
 * Threads: smp_start_aps() on the BSP; ap_start() on each AP.  Shared
 * state: ap_fn (written by the BSP before the SIPI), smp_checked_in
 * (lock xadd by each AP, read by the BSP).  Timeouts use the TSC and
 * assume at least ~1 GHz; they only bound a failure.
 */
#include "guest.h"

#define MSR_APIC_BASE 0x1b
#define LAPIC_ID 0x20
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_BUSY (1u << 12)
#define ICR_INIT 0x00004500 /* INIT, level assert */
#define ICR_SIPI 0x00004600

extern const char ap_trampoline[], ap_trampoline_end[];
void ap_start(void);

volatile uint32_t smp_checked_in;
static void (*volatile ap_fn)(uint32_t apic_id);

uint64_t lapic_base(void)
{
	return rdmsr(MSR_APIC_BASE) & 0xffffff000ULL;
}

static uint64_t lapic_pa = 0xfee00000;

uint32_t lapic_id(void)
{
	return mmio_read32(lapic_pa + LAPIC_ID) >> 24;
}

static void tsc_delay(uint64_t cycles)
{
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < cycles)
		cpu_relax();
}

static int lapic_send_ipi(uint32_t dest, uint32_t icr)
{
	uint64_t t0;

	mmio_write32(lapic_pa + LAPIC_ICR_HI, dest << 24);
	mmio_write32(lapic_pa + LAPIC_ICR_LO, icr);
	t0 = rdtsc();
	while (mmio_read32(lapic_pa + LAPIC_ICR_LO) & ICR_BUSY) {
		if (rdtsc() - t0 > 1000000000ULL)
			return -GUEST_ETIMEDOUT;
		cpu_relax();
	}
	return 0;
}

void ap_start(void)
{
	uint32_t id;

	idt_load();
	id = lapic_id();
	atomic_fetch_add32(&smp_checked_in, 1);
	if (ap_fn)
		ap_fn(id);
	halt_forever();
}

/* INIT-SIPI-SIPI to one AP through ipi(), then wait for it to check in. */
static int start_one(uint32_t id, uint32_t want, smp_ipi_fn ipi)
{
	uint32_t vec = AP_TRAMPOLINE_PA >> 12;
	uint64_t t0;
	int err;

	err = ipi(id, ICR_INIT);
	if (!err) {
		tsc_delay(10000000); /* ~10 ms */
		err = ipi(id, ICR_SIPI | vec);
	}
	if (!err) {
		tsc_delay(200000); /* ~200 us */
		if (smp_checked_in < want)
			err = ipi(id, ICR_SIPI | vec);
	}
	if (err)
		return err;
	t0 = rdtsc();
	while (smp_checked_in < want) {
		if (rdtsc() - t0 > 20000000000ULL)
			return -GUEST_ETIMEDOUT;
		cpu_relax();
	}
	return 0;
}

int smp_start_list(const struct acpi_info *ai, uint32_t self, bool x2apic,
		   smp_ipi_fn ipi)
{
	uint32_t n = smp_checked_in;
	unsigned int i;
	int err;

	for (i = 0; i < ai->ncpus; i++) {
		if (ai->cpu_apic_id[i] == self)
			continue;
		if (!x2apic && ai->cpu_apic_id[i] > 0xfe) {
			printf("smp: APIC id %u needs x2APIC, skipped\n",
			       ai->cpu_apic_id[i]);
			continue;
		}
		if (n + 1 >= GUEST_MAX_CPUS) {
			printf("smp: more than %u CPUs, rest skipped\n",
			       GUEST_MAX_CPUS);
			break;
		}
		err = start_one(ai->cpu_apic_id[i], n + 1, ipi);
		if (err) {
			printf("smp: %s id %u did not start (%d)\n",
			       x2apic ? "x2APIC" : "APIC", ai->cpu_apic_id[i],
			       err);
			return err;
		}
		n++;
	}
	return (int)smp_checked_in;
}

int smp_start_aps(const struct acpi_info *ai, void (*fn)(uint32_t apic_id))
{
	size_t len = (size_t)(ap_trampoline_end - ap_trampoline);
	uint32_t self;

	if (ai->lapic_pa)
		lapic_pa = ai->lapic_pa;
	self = lapic_id();
	/* Software-enable our APIC (spurious vector 0xff). */
	mmio_write32(lapic_pa + LAPIC_SVR, 0x1ff);
	memcpy((void *)(uintptr_t)AP_TRAMPOLINE_PA, ap_trampoline, len);
	ap_fn = fn;
	return smp_start_list(ai, self, false, lapic_send_ipi);
}
