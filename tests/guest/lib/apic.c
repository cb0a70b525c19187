/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Interrupt controllers for guests that take interrupts: the local APIC in
 * either mode (xAPIC through MMIO, x2APIC through MSRs 0x800-0x8ff), the
 * IOAPIC's redirection table, masking the legacy 8259 PICs, and starting
 * the APs when the APIC is already in x2APIC mode (khyve -x), where the
 * MMIO-based smp_start_aps() cannot send IPIs.
 *
 * Threads: the lapic_* calls act on the calling CPU's own APIC and may be
 * used from any CPU; the IOAPIC, PIC and AP start-up calls are for the BSP.
 * No locks (the IOAPIC's index/data pair is not protected: one CPU only).
 * Time-outs use the TSC and assume at least ~1 GHz; they only bound a
 * failure.
 */
#include "guest.h"

#define MSR_APIC_BASE 0x1b
#define APIC_BASE_EXTD (1u << 10)
#define MSR_X2APIC_BASE 0x800
#define MSR_X2APIC_ICR 0x830

#define LAPIC_ID 0x20
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define SVR_ENABLE 0x100
#define ICR_BUSY (1u << 12)

#define IOAPIC_REGSEL 0x00
#define IOAPIC_WIN 0x10
#define IOAPIC_VER 0x01
#define IOAPIC_REDIR 0x10

bool lapic_x2apic_mode(void)
{
	return (rdmsr(MSR_APIC_BASE) & APIC_BASE_EXTD) != 0;
}

uint32_t lapic_read(unsigned int reg)
{
	if (lapic_x2apic_mode())
		return (uint32_t)rdmsr(MSR_X2APIC_BASE + (reg >> 4));
	return mmio_read32(lapic_base() + reg);
}

void lapic_write(unsigned int reg, uint32_t val)
{
	if (lapic_x2apic_mode())
		wrmsr(MSR_X2APIC_BASE + (reg >> 4), val);
	else
		mmio_write32(lapic_base() + reg, val);
}

uint32_t lapic_current_id(void)
{
	uint32_t id = lapic_read(LAPIC_ID);

	/* x2APIC: the whole register is the id; xAPIC: bits 31:24. */
	return lapic_x2apic_mode() ? id : id >> 24;
}

void lapic_enable(uint8_t spurious_vector)
{
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_SVR, SVR_ENABLE | spurious_vector);
}

void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

/* Send an IPI from this CPU; xAPIC waits for the delivery status. */
static int lapic_ipi(uint32_t dest, uint32_t icr)
{
	uint64_t t0;

	if (lapic_x2apic_mode()) {
		wrmsr(MSR_X2APIC_ICR, (uint64_t)dest << 32 | icr);
		return 0;
	}
	lapic_write(LAPIC_ICR_HI, dest << 24);
	lapic_write(LAPIC_ICR_LO, icr);
	t0 = rdtsc();
	while (lapic_read(LAPIC_ICR_LO) & ICR_BUSY) {
		if (rdtsc() - t0 > 1000000000ULL)
			return -GUEST_ETIMEDOUT;
		cpu_relax();
	}
	return 0;
}

int smp_start_aps_any(const struct acpi_info *ai, void (*fn)(uint32_t))
{
	static struct acpi_info none;
	uint32_t self;
	int err;

	if (!lapic_x2apic_mode())
		return smp_start_aps(ai, fn);
	/*
	 * An empty CPU list makes smp_start_aps() only record fn and copy
	 * the trampoline (its MMIO accesses to the APIC page are dropped in
	 * x2APIC mode); the IPIs are sent here through the ICR MSR.
	 */
	err = smp_start_aps(&none, fn);
	if (err < 0)
		return err;
	self = lapic_current_id();
	lapic_enable(0xff);
	return smp_start_list(ai, self, true, lapic_ipi);
}

uint32_t ioapic_read(uint64_t base, unsigned int reg)
{
	mmio_write32(base + IOAPIC_REGSEL, reg);
	return mmio_read32(base + IOAPIC_WIN);
}

void ioapic_write(uint64_t base, unsigned int reg, uint32_t val)
{
	mmio_write32(base + IOAPIC_REGSEL, reg);
	mmio_write32(base + IOAPIC_WIN, val);
}

unsigned int ioapic_pins(uint64_t base)
{
	uint32_t ver = ioapic_read(base, IOAPIC_VER);

	if (ver == 0xffffffff)
		return 0; /* nothing there */
	return ((ver >> 16) & 0xff) + 1;
}

int ioapic_route(uint64_t base, unsigned int pin, uint8_t vector,
		 uint8_t dest_apic, uint32_t flags)
{
	uint32_t lo;

	if (pin >= ioapic_pins(base))
		return -GUEST_ERANGE;
	if (vector < 0x10)
		return -GUEST_EINVAL;
	lo = vector |
	     (flags & (IOAPIC_LEVEL | IOAPIC_ACTIVE_LOW | IOAPIC_MASKED));
	/* Masked while the destination changes; fixed, physical mode. */
	ioapic_write(base, IOAPIC_REDIR + 2 * pin, lo | IOAPIC_MASKED);
	ioapic_write(base, IOAPIC_REDIR + 2 * pin + 1,
		     (uint32_t)dest_apic << 24);
	ioapic_write(base, IOAPIC_REDIR + 2 * pin, lo);
	return 0;
}

uint64_t ioapic_redir(uint64_t base, unsigned int pin)
{
	return (uint64_t)ioapic_read(base, IOAPIC_REDIR + 2 * pin + 1) << 32 |
	       ioapic_read(base, IOAPIC_REDIR + 2 * pin);
}

void pic_mask_all(void)
{
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}
