/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The freestanding test-guest library: everything a guest in tests/guest/
 * can call.  A guest defines guest_name[] and guest_main(); the library
 * boots (PVH entry -> long mode, see boot.S), sets up the serial port and
 * the IDT, copies what it needs out of hvm_start_info and calls
 * guest_main() on the boot CPU.  See README.md for the exit protocol.
 *
 * Threads: the BSP, and after smp_start_aps() the APs.  The serial output
 * is serialised by a spinlock (printf and friends are safe from any CPU);
 * everything else is meant to be called from the BSP only unless its
 * comment says otherwise.  Errors are negative GUEST_E* codes.
 */
#ifndef GUEST_GUEST_H
#define GUEST_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "defs.h"

#define __noreturn __attribute__((noreturn))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Error codes (returned negated), values as Linux errno. */
#define GUEST_ENOENT 2
#define GUEST_EIO 5
#define GUEST_E2BIG 7
#define GUEST_ENODEV 19
#define GUEST_EINVAL 22
#define GUEST_ERANGE 34
#define GUEST_ETIMEDOUT 110
#define GUEST_EBADMSG 74 /* bad checksum */

/* ---- provided by each guest ------------------------------------------ */

/* The guest's name, used in the "PASS name" / "FAIL name: why" lines. */
extern const char guest_name[];
/* Called on the BSP once the library is up; must end the VM itself. */
void guest_main(void);

/* ---- start-up information (start.c) ------------------------------------ */

#define E820_MAX 64
#define CMDLINE_MAX 1024

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

struct boot_info {
	bool pvh; /* a valid hvm_start_info was passed */
	uint32_t start_info_pa;
	uint32_t version;
	uint64_t rsdp_pa; /* 0 if the loader gave none */
	char cmdline[CMDLINE_MAX];
	uint32_t nr_e820;	/* entries kept (at most E820_MAX) */
	uint32_t nr_e820_total; /* entries the loader reported */
	struct e820_entry e820[E820_MAX];
};

extern struct boot_info boot_info;

/* Name of an e820 type ("RAM", "reserved", "ACPI", "NVS", ...). */
const char *e820_type_name(uint32_t type);

/*
 * Look up "key=value" in the command line (space separated).  Copies the
 * value into buf (NUL terminated).  Returns its length, -GUEST_ENOENT if
 * the key is absent, -GUEST_E2BIG if it does not fit.
 */
int cmdline_get(const char *key, char *buf, size_t size);
/*
 * Look up "key=N" (decimal, or hex with 0x) in the command line.  Returns
 * 0 and sets *val, -GUEST_ENOENT if absent, -GUEST_EINVAL if malformed.
 */
int cmdline_get_u64(const char *key, uint64_t *val);

/* ---- exceptions (start.c) --------------------------------------------- */

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

/* Load the library's IDT on this CPU (done by the library on every CPU). */
void idt_load(void);
/* Called by the stubs in boot.S: print the frame, FAIL, exit. */
__noreturn void trap_handler(struct trap_frame *tf);

/* ---- serial console (serial.c) ---------------------------------------- */

/* Program COM1 for 115200 8N1, no interrupts. */
void serial_init(void);
/* Write one character (polls LSR.THRE first); '\n' becomes "\r\n". */
void serial_putc(char c);
/* Write a string, under the console lock. */
void puts_nonl(const char *s);
/* printf to COM1 under the console lock: %d %i %u %x %X %p %s %c %%, the
 * l/ll/z length modifiers, a field width, '0' and '-' flags.  Returns the
 * number of characters written. */
int printf(const char *fmt, ...) __printf(1, 2);
int vprintf(const char *fmt, va_list ap);
/* Format into buf (always NUL terminated if size > 0); returns the length
 * the full output would have. */
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
/* Take the console lock without printing (for an exception handler). */
void console_break_lock(void);

/* ---- strings (string.c) ----------------------------------------------- */

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* Does s contain needle? */
bool str_contains(const char *s, const char *needle);
/*
 * Parse an unsigned number (decimal or 0x hex) of exactly len characters.
 * Returns 0, or -GUEST_EINVAL if a character is not a digit,
 * -GUEST_ERANGE on overflow.
 */
int parse_u64(const char *s, size_t len, uint64_t *val);

/* ---- exits (exit.c) ---------------------------------------------------- */

/* Ring 0: write v to DEBUG_EXIT_PORT (VMM status (v << 1) | 1).  If the
 * VM is still running afterwards, triple-fault. */
__noreturn void exit_port(uint32_t v);
/* Any ring: 4-byte write of v to TESTDEV_EXIT_REG; if that did not end the
 * VM, raise an exception with an empty IDT (a triple fault). */
__noreturn void exit_mmio(uint32_t v);
/* Ring 0: load an empty IDT and raise #DE: a triple fault. */
__noreturn void triple_fault(void);
/* Ring 0: print "PASS <name>" and exit with GUEST_EXIT_PASS. */
__noreturn void guest_pass(void);
/* Ring 0: print "FAIL <name>: <why>" and exit with GUEST_EXIT_FAIL. */
__noreturn void guest_fail(const char *fmt, ...) __printf(1, 2);
/* Halt this CPU with interrupts off, forever. */
__noreturn void halt_forever(void);
/* Wait ~1 s (2e9 TSC cycles) for a VMM that acts on a request (reset,
 * power-off) asynchronously, as QEMU does; khyve acts at once. */
void vmm_settle(void);
/* Write 0x06 to port 0xcf9 (PCI reset control: hard reset).  Returns if
 * the VM is still running after a short while. */
void reset_cf9(void);
/*
 * One-way switch to ring 3 (CPL 3, IF = 0, IOPL = 0, empty IDT): call
 * fn(arg) on a ring-3 stack.  If fn returns, exit_mmio(GUEST_EXIT_FAIL).
 * Ring-3 code may only touch memory and MMIO (no port I/O, no printf).
 */
__noreturn void ring3_enter(void (*fn)(void *), void *arg);

/* ---- ACPI (acpi.c) ---------------------------------------------------- */

struct acpi_sdt {
	char sig[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	uint32_t creator_id;
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_gas {
	uint8_t space; /* 0 memory, 1 I/O port */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size; /* 1..4: byte..qword, 0: from bit_width */
	uint64_t address;
} __attribute__((packed));

#define ACPI_MAX_CPUS 256

struct acpi_info {
	uint64_t rsdp_pa;
	uint8_t rsdp_revision;
	const struct acpi_sdt *xsdt; /* NULL if absent or rev 0 */
	const struct acpi_sdt *rsdt;
	const struct acpi_sdt *madt;
	const struct acpi_sdt *fadt;
	const struct acpi_sdt *dsdt;
	const struct acpi_sdt *mcfg;
	unsigned int ntables; /* tables listed in the root */
	unsigned int nbad;    /* listed tables that failed checks */
	uint32_t lapic_pa;    /* from the MADT */
	unsigned int ncpus;   /* enabled CPUs in the MADT */
	uint32_t cpu_apic_id[ACPI_MAX_CPUS];
	unsigned int nioapics;
};

/*
 * Find the RSDP (boot_info.rsdp_pa, else the EBDA and 0xe0000-0xfffff),
 * walk XSDT (or RSDT) and check every table's checksum, find MADT, FADT,
 * DSDT and MCFG and parse the MADT.  verbose prints each step.  Returns 0,
 * -GUEST_ENOENT if there is no RSDP, -GUEST_EBADMSG on a bad checksum of
 * the RSDP/root/MADT/FADT/DSDT, -GUEST_EINVAL on a malformed table.
 */
int acpi_init(struct acpi_info *ai, bool verbose);
/*
 * Validate the table at physical address pa: below 4 GiB, length sane,
 * checksum zero.  Returns the table, or NULL (and *err set) if not.
 */
const struct acpi_sdt *acpi_table_check(uint64_t pa, int *err);
/* Byte sum of len bytes (a valid table sums to 0). */
uint8_t acpi_checksum(const void *p, size_t len);
/* Decode the first element of \_S5 in the DSDT: SLP_TYPa, or -errno. */
int acpi_s5_slp_typ(const struct acpi_info *ai);
/* Power off through ACPI S5 (PM1 control or the HW-reduced sleep control
 * register).  Returns only on failure (-errno). */
int acpi_poweroff(const struct acpi_info *ai, bool verbose);
/* Reset through the FADT reset register.  Returns only on failure. */
int acpi_reset(const struct acpi_info *ai, bool verbose);
/* Read/write a generic address structure (memory or I/O space). */
int acpi_gas_write(const struct acpi_gas *g, uint64_t val);
int acpi_gas_read(const struct acpi_gas *g, uint64_t *val);

/* ---- PCI (pci.c) ------------------------------------------------------ */

/* Configuration mechanism #1 (0xcf8/0xcfc) dword read/write. */
uint32_t pci_cfg_read32(unsigned int bus, unsigned int dev, unsigned int fn,
			unsigned int reg);
void pci_cfg_write32(unsigned int bus, unsigned int dev, unsigned int fn,
		     unsigned int reg, uint32_t val);
/* Print "b:s.f vendor:device class" for every function on bus; returns
 * the number of functions found. */
int pci_list_bus(unsigned int bus);

/* ---- CMOS RTC (rtc.c) ------------------------------------------------- */

struct rtc_time {
	unsigned int year; /* full year, e.g. 2024 */
	unsigned int month, day, hour, min, sec;
	uint8_t reg_b; /* status register B as read */
};

/* Read a CMOS register (index masked to 7 bits). */
uint8_t cmos_read(uint8_t reg);
/*
 * Read the date and time: wait for UIP clear, read, repeat until two reads
 * agree; decode BCD/binary and 12/24 h per register B.  Returns 0,
 * -GUEST_ENODEV if the RTC reads all-ones, -GUEST_ETIMEDOUT if UIP never
 * clears or the reads never agree.
 */
int rtc_read(struct rtc_time *t);
/* Are the fields of t within range? */
bool rtc_time_valid(const struct rtc_time *t);
/* Seconds since 1970-01-01 for a valid t. */
uint64_t rtc_to_epoch(const struct rtc_time *t);
/* Wait until the RTC seconds register changes.  Returns 0, -GUEST_ENODEV
 * if there is no RTC (all-ones), or -GUEST_ETIMEDOUT if max_cycles TSC cycles
 * pass without a change (a safety net only: the wait itself follows the RTC).
 */
int rtc_wait_tick(uint64_t max_cycles);

/* ---- LAPIC and SMP (smp.c) -------------------------------------------- */

/* This CPU's APIC id (from the local APIC). */
uint32_t lapic_id(void);
/* Address of the local APIC (MSR IA32_APIC_BASE). */
uint64_t lapic_base(void);
/*
 * Start every enabled CPU listed in ai (except this one) with
 * INIT-SIPI-SIPI through the trampoline at AP_TRAMPOLINE_PA.  Each AP goes
 * to long mode, loads the IDT, increments smp_checked_in and calls fn with
 * its APIC id (fn may printf), then halts with interrupts off.  APs are
 * started one at a time.  Returns the number of APs that checked in, or
 * -errno (then some may still be starting).
 */
int smp_start_aps(const struct acpi_info *ai, void (*fn)(uint32_t apic_id));
/* Sends one IPI (ICR low word icr) to APIC id dest; 0 or -errno. */
typedef int (*smp_ipi_fn)(uint32_t dest, uint32_t icr);
/*
 * The AP start loop behind smp_start_aps() and smp_start_aps_any(): with
 * the trampoline and fn already in place, start each CPU of ai other than
 * self, one at a time, sending INIT-SIPI-SIPI through ipi (ids above 0xfe
 * are skipped unless x2apic).  Returns the number of APs that checked in,
 * or -errno.
 */
int smp_start_list(const struct acpi_info *ai, uint32_t self, bool x2apic,
		   smp_ipi_fn ipi);
/* APs that reached C code so far. */
extern volatile uint32_t smp_checked_in;

/* ---- CPU helpers -------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* A pointer to physical address pa (identity mapped below 4 GiB).  The asm
 * hides the constant from GCC, which otherwise warns about low addresses. */
static inline uintptr_t pa_ptr(uint64_t pa)
{
	uintptr_t p = (uintptr_t)pa;

	__asm__("" : "+r"(p));
	return p;
}

static inline uint8_t mmio_read8(uint64_t pa)
{
	return *(volatile uint8_t *)pa_ptr(pa);
}

static inline uint16_t mmio_read16(uint64_t pa)
{
	return *(volatile uint16_t *)pa_ptr(pa);
}

static inline uint32_t mmio_read32(uint64_t pa)
{
	return *(volatile uint32_t *)pa_ptr(pa);
}

static inline uint64_t mmio_read64(uint64_t pa)
{
	return *(volatile uint64_t *)pa_ptr(pa);
}

static inline void mmio_write8(uint64_t pa, uint8_t v)
{
	*(volatile uint8_t *)pa_ptr(pa) = v;
}

static inline void mmio_write16(uint64_t pa, uint16_t v)
{
	*(volatile uint16_t *)pa_ptr(pa) = v;
}

static inline void mmio_write32(uint64_t pa, uint32_t v)
{
	*(volatile uint32_t *)pa_ptr(pa) = v;
}

static inline void mmio_write64(uint64_t pa, uint64_t v)
{
	*(volatile uint64_t *)pa_ptr(pa) = v;
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr"
			 :
			 : "c"(msr), "a"((uint32_t)v),
			   "d"((uint32_t)(v >> 32)));
}

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b,
			 uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid"
			 : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
			 : "a"(leaf), "c"(sub));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

/* Atomic add returning the old value (lock xadd). */
static inline uint32_t atomic_fetch_add32(volatile uint32_t *p, uint32_t v)
{
	__asm__ volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

/* Atomic exchange (xchg, implicitly locked). */
static inline uint32_t atomic_xchg32(volatile uint32_t *p, uint32_t v)
{
	__asm__ volatile("xchgl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

/* ---- handled interrupts and exceptions (intr.c, intr_stubs.S) ---------------- */

/* A handler gets the saved frame; it may change it (e.g. tf->rip) and
 * returns to the interrupted code with iretq. */
typedef void (*intr_fn)(struct trap_frame *tf);

/*
 * Route vector vec (0-255) of the shared IDT, on every CPU, to fn through a
 * returning stub; fn == NULL restores the library's failing handler.
 * Set handlers before enabling interrupts.  Returns 0, -GUEST_EINVAL for a
 * bad vector, -GUEST_ERANGE if the loaded IDT is too short.
 */
int intr_set_handler(unsigned int vec, intr_fn fn);

static inline void irq_enable(void)
{
	__asm__ volatile("sti" ::: "memory");
}

static inline void irq_disable(void)
{
	__asm__ volatile("cli" ::: "memory");
}

/* Enable interrupts and halt until one arrives (sti's one-instruction
 * shadow covers the hlt, so no wake-up is lost); interrupts stay on. */
static inline void cpu_wait_irq(void)
{
	__asm__ volatile("sti; hlt" ::: "memory");
}

/* ---- interrupt controllers (apic.c) ------------------------------------ */

#define IOAPIC_ACTIVE_LOW (1u << 13)
#define IOAPIC_LEVEL (1u << 15)
#define IOAPIC_MASKED (1u << 16)

/* Is this CPU's local APIC in x2APIC mode (IA32_APIC_BASE.EXTD)? */
bool lapic_x2apic_mode(void);
/* Read/write a local APIC register by its xAPIC offset (0x20 ID, 0x80
 * TPR, 0xb0 EOI, 0xf0 SVR, ...): MMIO in xAPIC mode, the MSR 0x800 +
 * offset/16 in x2APIC mode. */
uint32_t lapic_read(unsigned int reg);
void lapic_write(unsigned int reg, uint32_t val);
/* This CPU's APIC id in either mode (lapic_id() is xAPIC only). */
uint32_t lapic_current_id(void);
/* Software-enable this CPU's APIC with the given spurious vector, TPR 0. */
void lapic_enable(uint8_t spurious_vector);
/* End of interrupt for the vector being serviced on this CPU. */
void lapic_eoi(void);
/*
 * smp_start_aps() that also works when the APIC is in x2APIC mode (the
 * IPIs then go through the ICR MSR; fn gets a meaningless id there, so it
 * should call lapic_current_id()).  Returns what smp_start_aps() does.
 */
int smp_start_aps_any(const struct acpi_info *ai, void (*fn)(uint32_t));

/* IOAPIC at physical address base: indirect register access. */
uint32_t ioapic_read(uint64_t base, unsigned int reg);
void ioapic_write(uint64_t base, unsigned int reg, uint32_t val);
/* Number of redirection entries, 0 if nothing answers at base. */
unsigned int ioapic_pins(uint64_t base);
/*
 * Program redirection entry pin: vector (>= 0x10), fixed delivery,
 * physical destination dest_apic, flags IOAPIC_LEVEL / IOAPIC_ACTIVE_LOW /
 * IOAPIC_MASKED.  Returns 0, -GUEST_ERANGE for a pin the IOAPIC does not
 * have, -GUEST_EINVAL for a reserved vector.
 */
int ioapic_route(uint64_t base, unsigned int pin, uint8_t vector,
		 uint8_t dest_apic, uint32_t flags);
/* The 64-bit redirection entry of pin, as read back. */
uint64_t ioapic_redir(uint64_t base, unsigned int pin);
/* Mask every line of both 8259 PICs (OCW1 0xff to ports 0x21 and 0xa1). */
void pic_mask_all(void);

/* ---- ACPI events (acpi_pm.c) ------------------------------------------- */

#define ACPI_PM1_TMR_STS 0x0001
#define ACPI_PM1_PWRBTN_STS 0x0100 /* also PWRBTN_EN in the enable reg */
#define ACPI_PM1_SCI_EN 0x0001     /* in PM1_CNT */
/* MPS INTI flags of a MADT interrupt source override */
#define ACPI_INTI_POLARITY(f) ((f) & 3) /* 0 bus default, 1 high, 3 low */
#define ACPI_INTI_TRIGGER(f) (((f) >> 2) & 3) /* 0 bus, 1 edge, 3 level */

/* The FADT's fixed-hardware I/O ports. */
struct acpi_pm {
	uint16_t sci_irq;
	uint16_t smi_cmd; /* 0: ACPI mode is always on */
	uint8_t acpi_enable, acpi_disable;
	uint16_t pm1a_sts, pm1a_en, pm1a_cnt;
};

/* Fill pm from the FADT.  Returns 0, -GUEST_ENOENT without a FADT,
 * -GUEST_EINVAL if a field is missing or out of range. */
int acpi_pm_get(const struct acpi_info *ai, struct acpi_pm *pm);
/* Enter ACPI mode (ACPI_ENABLE to SMI_CMD) unless SCI_EN is already set,
 * and wait for SCI_EN.  Returns 0, -GUEST_ENODEV if there is no way to,
 * -GUEST_ETIMEDOUT if SCI_EN never comes on. */
int acpi_pm_enable(const struct acpi_pm *pm);
/* The idx-th IOAPIC of the MADT: address and first GSI.  0 or
 * -GUEST_ENOENT. */
int acpi_madt_ioapic(const struct acpi_info *ai, unsigned int idx,
		     uint32_t *pa, uint32_t *gsi_base);
/* The MADT's interrupt source override for ISA irq: GSI and INTI flags.
 * 0, or -GUEST_ENOENT if there is none (then GSI = irq, ISA defaults). */
int acpi_madt_irq_override(const struct acpi_info *ai, uint8_t irq,
			   uint32_t *gsi, uint16_t *flags);

/* ---- command-line words (cmdword.c) ------------------------------------ */

/* Is word a whole space-separated token of the command line (not a
 * key=value pair)? */
bool cmdline_has_word(const char *word);

/* ---- PCI functions, BARs and capabilities (pcidev.c) ------------------- */

#define GUEST_ENOSPC 28
#define GUEST_EPROTO 71 /* the device broke the protocol */
#define GUEST_ENOTSUP 95

#define PCI_CMD_IO 0x0001
#define PCI_CMD_MEM 0x0002
#define PCI_CMD_MASTER 0x0004
#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

enum pci_bar_type { PCI_BAR_NONE, PCI_BAR_IO, PCI_BAR_MEM32, PCI_BAR_MEM64 };

struct pci_bar_info {
	enum pci_bar_type type;
	bool prefetch;
	uint64_t addr; /* as programmed */
	uint64_t size; /* from sizing; 0 for PCI_BAR_NONE */
};

/* Sized configuration reads and writes (mechanism #1); reg is the byte
 * offset, aligned to the access size. */
uint8_t pci_cfg_read8(unsigned int bus, unsigned int dev, unsigned int fn,
		      unsigned int reg);
uint16_t pci_cfg_read16(unsigned int bus, unsigned int dev, unsigned int fn,
			unsigned int reg);
void pci_cfg_write8(unsigned int bus, unsigned int dev, unsigned int fn,
		    unsigned int reg, uint8_t val);
void pci_cfg_write16(unsigned int bus, unsigned int dev, unsigned int fn,
		     unsigned int reg, uint16_t val);
/* Is a function present (vendor ID neither 0xffff nor 0)? */
bool pci_func_present(unsigned int bus, unsigned int dev, unsigned int fn);
/*
 * The capability after the one at prev (prev 0: the first), walking the
 * list of a function whose status register has the capability bit.
 * Returns its config offset, 0 at the end of the list, -GUEST_EINVAL for
 * a pointer into the header or a list longer than 48 entries (a loop).
 */
int pci_cap_next(unsigned int bus, unsigned int dev, unsigned int fn,
		 unsigned int prev);
/* The first capability with ID id: its offset, -GUEST_ENOENT if absent,
 * or pci_cap_next()'s error. */
int pci_cap_find(unsigned int bus, unsigned int dev, unsigned int fn,
		 uint8_t id);
/*
 * The nth function (from 0) on bus 0 whose class/subclass/prog-if is
 * class_code (0xCCSSPP): its device, function and vendor/device ID word.
 * 0 or -GUEST_ENOENT.
 */
int pci_find_class(uint32_t class_code, unsigned int nth, uint8_t *dev,
		   uint8_t *fn, uint32_t *id);
/*
 * Probe memory BAR idx, check it lies below 4 GiB with at least min_size
 * bytes, and turn on memory decoding and bus mastering.  name prefixes the
 * one error line.  Returns 0 with *addr and *size set, or -errno.
 */
int pci_bar_map_mem(unsigned int bus, unsigned int dev, unsigned int fn,
		    unsigned int idx, uint64_t min_size, const char *name,
		    uint64_t *addr, uint64_t *size);

/* ---- polling deadlines (deadline.c) ------------------------------------ */

/*
 * A deadline in RTC seconds; without an RTC (reads 0xff) a spin count is
 * the limit.  Each step is one poll, so the spin count also bounds the
 * wait if the RTC stops.
 */
struct deadline {
	uint8_t sec;
	unsigned int ticks, limit;
	uint64_t spins, max_spins, poll_mask;
};

/* Start a deadline of timeout_s seconds: about spins_per_s polls a second
 * (a 250th of that without an RTC); the RTC is read every poll_mask + 1
 * polls.  Ring 0. */
void deadline_start(struct deadline *d, unsigned int timeout_s,
		    uint64_t spins_per_s, uint64_t poll_mask);
/* One poll step (a pause); true once the deadline has passed. */
bool deadline_passed(struct deadline *d);
/*
 * Decode and size BAR idx (0-5) of a type-0 function: address, type and
 * size (the BAR is written with all-ones with decoding off, then
 * restored).  Returns 0, -GUEST_EINVAL for a bad idx or a 64-bit BAR in
 * slot 5, -GUEST_EIO for an invalid size mask.
 */
int pci_bar_probe(unsigned int bus, unsigned int dev, unsigned int fn,
		  unsigned int idx, struct pci_bar_info *bar);
/* Set bits in the command register (PCI_CMD_*). */
void pci_cmd_set(unsigned int bus, unsigned int dev, unsigned int fn,
		 uint16_t bits);

/* ---- memory for device rings and buffers (dmamem.c) ------------------- */

/*
 * Allocate size bytes of RAM aligned to align (a power of two) from the
 * e820 RAM above the guest image and below 4 GiB; never freed.  The
 * memory is NOT cleared.  Returns NULL when it does not fit.  BSP only.
 */
void *dma_alloc(uint64_t size, uint64_t align);
/* dma_alloc() and clear it (mem_clear). */
void *dma_zalloc(uint64_t size, uint64_t align);
/* Bytes still free in the current RAM range. */
uint64_t dma_free_bytes(void);
/* Clear n bytes with rep stos (one instruction, cheap in emulated ring 0). */
void mem_clear(void *p, size_t n);
/* Physical address of a pointer (the guests run identity mapped). */
static inline uint64_t virt_to_phys(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* ---- virtio-pci driver (virtio.c) ------------------------------------- */

/* Constants from the virtio 1.2 specification (guest side, independent of
 * khyve's src/virtio/virtio.h on purpose).  Feature bits are numbers. */
#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

#define VIRTIO_STATUS_ACK 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_BIT(n) (1ULL << (n))
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

/* virtio-blk (§5.2) */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_CFG_CAPACITY 0 /* le64, 512-byte sectors */
#define VIRTIO_BLK_CFG_SIZE_MAX 8
#define VIRTIO_BLK_CFG_SEG_MAX 12
#define VIRTIO_BLK_CFG_BLK_SIZE 20
#define VIRTIO_BLK_ID_BYTES 20

struct virtio_blk_hdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct virtio_blk_range { /* DISCARD / WRITE_ZEROES payload */
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* virtio-console (§5.3) */
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1
#define VIRTIO_CONSOLE_CFG_MAX_NR_PORTS 4 /* le32 */
#define VIRTIO_CONSOLE_DEVICE_READY 0
#define VIRTIO_CONSOLE_DEVICE_ADD 1
#define VIRTIO_CONSOLE_DEVICE_REMOVE 2
#define VIRTIO_CONSOLE_PORT_READY 3
#define VIRTIO_CONSOLE_CONSOLE_PORT 4
#define VIRTIO_CONSOLE_RESIZE 5
#define VIRTIO_CONSOLE_PORT_OPEN 6
#define VIRTIO_CONSOLE_PORT_NAME 7

struct virtio_console_ctrl {
	uint32_t id;
	uint16_t event;
	uint16_t value;
};

#define VIO_MAX_QUEUES 8
#define VIO_QUEUE_MAX 256 /* largest ring the driver sets up */

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vio_dev;

struct vio_queue {
	struct vio_dev *vd;
	uint16_t index;
	uint16_t size;		  /* 0: not set up */
	volatile struct virtq_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint32_t *used;  /* flags|idx, then (id, len) pairs */
	uint64_t notify;	  /* modern notify address */
	uint16_t free_head, num_free;
	uint16_t avail_idx, last_used;
	uint16_t chain_len[VIO_QUEUE_MAX]; /* by head; 0: not in flight */
	uint64_t kicks;			   /* notifications sent */
};

struct vio_dev {
	uint8_t bus, dev, fn;
	uint16_t pci_device;   /* PCI device ID */
	uint16_t virtio_id;
	bool legacy;	       /* driving the legacy I/O interface */
	bool has_msix;
	uint16_t io;	       /* legacy BAR0 base */
	uint64_t common, isr, devcfg, notify_base; /* modern, mapped */
	uint32_t devcfg_len, notify_len, notify_mult;
	uint16_t num_queues;   /* modern: from the common config */
	uint64_t offered, features;
	struct vio_queue q[VIO_MAX_QUEUES];
};

/* One buffer of a chain: physical address, length, device-writable? */
struct vio_seg {
	uint64_t addr;
	uint32_t len;
	bool write;
};

/*
 * Find the nth (0-based) virtio function of type virtio_id on bus 0:
 * vendor 0x1af4 and device 0x1040 + id, or a transitional ID 0x1000-0x103f
 * with subsystem device id.  Fills bus/dev/fn/IDs of vd (rest cleared).
 * Returns 0 or -GUEST_ENOENT.
 */
int vio_find(uint16_t virtio_id, unsigned int nth, struct vio_dev *vd);
/*
 * Map the function found by vio_find: modern (legacy false) from the
 * vendor capabilities (common, notify, ISR, device config; checked against
 * the BAR sizes, below 4 GiB), or the legacy I/O BAR0.  Enables decoding
 * and bus mastering; MSI-X stays off.  verbose prints what it finds.
 * Returns 0, -GUEST_ENODEV if the interface is missing, -GUEST_ERANGE if
 * a BAR is above 4 GiB, -GUEST_EINVAL for a malformed capability.
 */
int vio_probe(struct vio_dev *vd, bool legacy, bool verbose);
/*
 * Reset, ACKNOWLEDGE, DRIVER, then negotiate: accept want & offered
 * (modern: VERSION_1 is required and always accepted; legacy: the low 32
 * bits), FEATURES_OK and check it stuck.  Sets vd->offered and
 * vd->features.  Returns 0, -GUEST_ENOTSUP without VERSION_1,
 * -GUEST_EIO if the device refuses the features (status FAILED is set),
 * -GUEST_ETIMEDOUT if the reset does not complete.
 */
int vio_start(struct vio_dev *vd, uint64_t want);
/*
 * Set up queue qi with at most max entries (power of two, <=
 * VIO_QUEUE_MAX; legacy: the device's fixed size, which must fit) in
 * freshly allocated, cleared RAM; no MSI-X vector, interrupts suppressed.
 * Returns 0, -GUEST_ENOENT if the device has no such queue, -GUEST_ERANGE
 * if its size does not fit, -GUEST_ENOSPC without memory.
 */
int vio_queue_setup(struct vio_dev *vd, unsigned int qi, uint16_t max);
/* Set DRIVER_OK.  Returns 0, or -GUEST_EIO if the device reports
 * NEEDS_RESET or FAILED afterwards. */
int vio_driver_ok(struct vio_dev *vd);
/* Device status register. */
uint8_t vio_get_status(struct vio_dev *vd);
/* Write 0 to the status register and wait for it to read 0. */
int vio_reset(struct vio_dev *vd);
/* Device-specific config read of 1, 2, 4 bytes at off (modern: the device
 * config capability; legacy: after the 20-byte header). */
uint32_t vio_cfg_read(struct vio_dev *vd, unsigned int off,
		      unsigned int size);
/* 64-bit config field, read consistently (config generation). */
uint64_t vio_cfg_read64(struct vio_dev *vd, unsigned int off);
/*
 * Put a chain of n buffers on the available ring (no notification).
 * Returns the head descriptor index, or -GUEST_ENOSPC if fewer than n
 * descriptors are free, -GUEST_EINVAL for n == 0.  Ring-3 safe (memory
 * only).
 */
int vio_submit(struct vio_queue *q, const struct vio_seg *seg, unsigned int n);
/* Notify the device about new buffers, unless it set NO_NOTIFY.  Modern:
 * one 16-bit MMIO write (ring-3 safe); legacy: port I/O (ring 0 only). */
void vio_kick(struct vio_queue *q);
/*
 * Take the next used element: returns 1 (*head and *len set, its
 * descriptors freed), 0 if there is none, -GUEST_EPROTO if the device
 * returned an id that is not the head of a chain in flight.  Ring-3 safe.
 */
int vio_get_used(struct vio_queue *q, uint16_t *head, uint32_t *len);
/*
 * Ring 0: poll for the next used element for at most timeout_s seconds
 * (RTC seconds; a loop count if there is no RTC).  Returns 0,
 * -GUEST_ETIMEDOUT, or vio_get_used()'s error.
 */
int vio_wait_used(struct vio_queue *q, uint16_t *head, uint32_t *len,
		  unsigned int timeout_s);
/*
 * Ring 0: submit a chain, kick, and wait until the device returns it.
 * Returns 0 (*len = bytes written by the device, may be NULL),
 * -GUEST_EPROTO if a different chain came back, or the errors above.
 */
int vio_transfer(struct vio_queue *q, const struct vio_seg *seg,
		 unsigned int n, uint32_t *len, unsigned int timeout_s);

/* ---- storage test pattern (blkpat.c) ---------------------------------- */

#define BLKPAT_SECTOR 512

/*
 * Fill the 512-byte sector at buf with the pattern of sector number
 * sector: 16 lines "TTTT %010u %02u WWWWWWWWWWWW\n" with the 4-character
 * tag and the 12-character word (see blkpat.c).  Ring-3 safe.
 */
void blkpat_fill(void *buf, uint64_t sector, const char *tag,
		 const char *word);
/*
 * Compare count sectors at buf with the pattern from sector first on.
 * Returns 0, or -GUEST_EBADMSG with the first differing sector and byte
 * offset in *bad_sector and *bad_byte.
 */
int blkpat_check(const void *buf, uint64_t first, unsigned int count,
		 const char *tag, const char *word, uint64_t *bad_sector,
		 unsigned int *bad_byte);
/* Offset of the first differing byte of a and b, n if they are equal
 * (one rep cmpsb). */
size_t blk_mismatch(const void *a, const void *b, size_t n);
/* Offset of the first non-zero byte of p, n if all are zero. */
size_t blk_nonzero(const void *p, size_t n);

/* ---- AHCI driver (ahci.c) --------------------------------------------- */

#define AHCI_MAX_PORTS 32
#define AHCI_MAX_SLOTS 32
#define AHCI_PRDT_MAX 16 /* PRDT entries per command table */
#define AHCI_SECTOR 512
#define ATAPI_SECTOR 2048
#define AHCI_TIMEOUT_S 10
#define AHCI_SCRATCH_BYTES 512
#define AHCI_CAP_SNCQ (1u << 30)

/* Port registers (offsets in the port's 0x80-byte block) */
#define AHCI_PX_IS 0x10
#define AHCI_PX_IE 0x14
#define AHCI_PX_CMD 0x18
#define AHCI_PX_TFD 0x20
#define AHCI_PX_SIG 0x24
#define AHCI_PX_SSTS 0x28
#define AHCI_PX_SACT 0x34
#define AHCI_PX_CI 0x38
#define AHCI_PX_IS_ERRORS 0x78000000u /* TFES HBFS HBDS IFS */
#define AHCI_RFIS_D2H 0x40 /* D2H register FIS in the received-FIS area */

/* ATA commands (ATA8-ACS) */
#define ATA_READ_DMA_EXT 0x25
#define ATA_WRITE_DMA_EXT 0x35
#define ATA_READ_FPDMA 0x60
#define ATA_WRITE_FPDMA 0x61
#define ATA_PACKET 0xa0
#define ATA_IDENTIFY_PACKET 0xa1
#define ATA_FLUSH_CACHE_EXT 0xea
#define ATA_IDENTIFY 0xec
/* SCSI/MMC commands carried by PACKET */
#define SCSI_TEST_UNIT_READY 0x00
#define SCSI_REQUEST_SENSE 0x03
#define SCSI_INQUIRY 0x12
#define SCSI_READ_CAPACITY 0x25
#define SCSI_READ10 0x28
#define SCSI_SENSE_NOT_READY 2
#define SCSI_SENSE_ILLEGAL_REQUEST 5
#define SCSI_SENSE_UNIT_ATTENTION 6

enum ahci_dev_type {
	AHCI_DEV_NONE,
	AHCI_DEV_ATA,
	AHCI_DEV_ATAPI,
	AHCI_DEV_UNKNOWN,
};

struct ahci_hba;

struct ahci_port {
	struct ahci_hba *hba;
	unsigned int num;
	uint64_t regs;		/* MMIO address of the port's registers */
	enum ahci_dev_type type;
	uint32_t sig;		/* PxSIG at detection */
	volatile uint32_t *cl;	/* command list: a header of 8 dwords per slot */
	volatile uint8_t *rfis; /* received-FIS area */
	volatile uint8_t *ct[AHCI_MAX_SLOTS]; /* command tables */
	uint8_t *scratch;	/* AHCI_SCRATCH_BYTES of DMA memory */
	/* from IDENTIFY (DEVICE or PACKET DEVICE) */
	uint16_t *ident;	/* the 256 words */
	char serial[21], fwrev[9], model[41];
	uint64_t sectors;	/* ATA: capacity in 512-byte sectors */
	bool lba48, ncq;
	unsigned int ncq_depth;
	/* the last error: PxTFD (status | error << 8), PxIS, PxSERR */
	uint32_t err_tfd, err_is, err_serr;
	unsigned int errors;
	bool stuck;		/* recovery failed; commands give -EIO */
	uint8_t sense_key, sense_asc, sense_ascq; /* ATAPI, last failure */
};

struct ahci_hba {
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
	uint64_t abar, abar_size;
	uint32_t cap, cap2, pi, vs;
	unsigned int nports, nslots; /* from CAP */
	struct ahci_port port[AHCI_MAX_PORTS];
};

/* A command as ahci_cmd_build() puts it in a register H2D FIS. */
struct ahci_cmd {
	uint8_t command;
	uint8_t device;
	uint16_t features;
	uint16_t count;
	uint64_t lba;	 /* 48 bits */
	bool write;	 /* data flows to the device */
	bool atapi;	 /* PACKET: cdb goes into the ACMD area */
	uint8_t cdb[16];
};

/* One PRDT entry: physical address and an even byte count <= 4 MiB. */
struct ahci_seg {
	uint64_t addr;
	uint32_t len;
};

/* Find the nth AHCI function (class 01/06/01) on bus 0; clears h and sets
 * its address and IDs.  Returns 0 or -GUEST_ENOENT. */
int ahci_find(unsigned int nth, struct ahci_hba *h);
/*
 * Map ABAR (BAR5, below 4 GiB), enable memory decoding and bus mastering,
 * reset the HBA, set GHC.AE, and set up every implemented port (command
 * list, FIS area, command tables, FIS receive, detection by PxSSTS and
 * PxSIG, start).  verbose prints what it finds.  Returns 0, -GUEST_ERANGE
 * or -GUEST_ENODEV for an unusable ABAR/no ports, -GUEST_ETIMEDOUT if the
 * reset or a port stop does not complete, -GUEST_ENOSPC without memory.
 */
int ahci_init(struct ahci_hba *h, bool verbose);
/* "SATA disk", "ATAPI", ... */
const char *ahci_dev_type_name(enum ahci_dev_type t);
/* The nth port with a device of type t, or NULL. */
struct ahci_port *ahci_port_of_type(struct ahci_hba *h, enum ahci_dev_type t,
				    unsigned int nth);
/* Port register access (AHCI_PX_*).  Ring-3 safe. */
uint32_t ahci_port_read(const struct ahci_port *p, unsigned int reg);
void ahci_port_write(const struct ahci_port *p, unsigned int reg, uint32_t v);
/*
 * Put command c with the data segments into slot's header and table (no
 * issue).  Ring-3 safe.  Returns 0, or -GUEST_EINVAL for a bad slot, more
 * than AHCI_PRDT_MAX segments, or an odd, empty or too long segment.
 */
int ahci_cmd_build(struct ahci_port *p, unsigned int slot,
		   const struct ahci_cmd *c, const struct ahci_seg *seg,
		   unsigned int nseg);
/* Issue the slots in mask: PxSACT first for NCQ, then PxCI.  Ring-3 safe. */
void ahci_cmd_issue(struct ahci_port *p, uint32_t mask, bool ncq);
/* Bytes the HBA transferred for slot (PRDBC of its header). */
uint32_t ahci_cmd_prdbc(const struct ahci_port *p, unsigned int slot);
/* The status byte of the last D2H register FIS in the received-FIS area
 * (RAM, so no exit; ERR is bit 0).  Ring-3 safe. */
uint8_t ahci_d2h_status(const struct ahci_port *p);
/*
 * Ring 0: wait until the slots in mask are done (PxCI, and PxSACT for
 * NCQ).  Returns 0, -GUEST_EIO on an error (PxIS error bits or
 * PxTFD.ERR; saved in err_*, port recovered), -GUEST_ETIMEDOUT.
 */
int ahci_cmd_wait(struct ahci_port *p, uint32_t mask, bool ncq,
		  unsigned int timeout_s);
/* Ring 0: build c in slot 0, issue it and wait (AHCI_TIMEOUT_S).
 * Returns what ahci_cmd_build() or ahci_cmd_wait() does. */
int ahci_exec(struct ahci_port *p, const struct ahci_cmd *c,
	      const struct ahci_seg *seg, unsigned int nseg);
/*
 * IDENTIFY DEVICE (disk) or IDENTIFY PACKET DEVICE (ATAPI): fills ident,
 * serial, fwrev, model and, for a disk, sectors, lba48, ncq, ncq_depth
 * (NCQ only if the HBA has CAP.SNCQ too).  Returns 0, -GUEST_ENODEV
 * without a device, or ahci_exec()'s error.
 */
int ahci_identify(struct ahci_port *p);
/* Fill c with READ/WRITE DMA EXT (count 0 means 65536 sectors). */
void ahci_rw_cmd(struct ahci_cmd *c, bool write, uint64_t lba,
		 uint32_t count);
/* Fill c with READ/WRITE FPDMA QUEUED of count sectors under tag. */
void ahci_ncq_cmd(struct ahci_cmd *c, bool write, uint64_t lba,
		  uint32_t count, unsigned int tag);
/* Ring 0: READ/WRITE DMA EXT of count (1-65536) sectors at lba into or
 * from buf (contiguous).  Returns 0, -GUEST_EINVAL, or ahci_exec()'s. */
int ahci_rw(struct ahci_port *p, bool write, uint64_t lba, uint32_t count,
	    void *buf);
/* Ring 0: FLUSH CACHE EXT.  Returns 0 or ahci_exec()'s error. */
int ahci_flush(struct ahci_port *p);
/*
 * Ring 0: one PACKET command (DMA if len > 0) with a cdb of cdb_len <= 16
 * bytes and len (even) bytes of data in.  On CHECK CONDITION returns
 * -GUEST_EIO with the sense key of the task file in sense_key.
 */
int atapi_packet(struct ahci_port *p, const uint8_t *cdb, unsigned int cdb_len,
		 void *buf, uint32_t len);
/* Ring 0: REQUEST SENSE: key, ASC, ASCQ.  0 or atapi_packet()'s error. */
int atapi_request_sense(struct ahci_port *p, uint8_t *key, uint8_t *asc,
			uint8_t *ascq);
/*
 * Ring 0: TEST UNIT READY, INQUIRY (len bytes into buf), READ CAPACITY(10)
 * and READ(10) of 2048-byte blocks (at most 4 MiB).  Each is repeated
 * after a UNIT ATTENTION (up to 4 times); on a failure the sense from
 * REQUEST SENSE is in sense_key/asc/ascq.  Return 0, -GUEST_EIO,
 * -GUEST_EINVAL or -GUEST_ETIMEDOUT.
 */
int atapi_test_unit_ready(struct ahci_port *p);
int atapi_inquiry(struct ahci_port *p, uint8_t *buf, uint32_t len);
int atapi_read_capacity(struct ahci_port *p, uint32_t *last_lba,
			uint32_t *block_len);
int atapi_read10(struct ahci_port *p, uint32_t lba, uint16_t blocks,
		 void *buf);

/* ---- NVMe driver (nvme.c) --------------------------------------------- */

#define NVME_SQE_BYTES 64
#define NVME_CQE_BYTES 16
#define NVME_TIMEOUT_S 10
#define NVME_PRP_LIST_MAX 512 /* entries of the one-page PRP list */
#define NVME_MAX_XFER (1u << 20) /* largest nvme_rw(), MDTS permitting */

/* Admin and NVM command set opcodes, Identify CNS values */
#define NVME_ADM_DELETE_SQ 0x00
#define NVME_ADM_CREATE_SQ 0x01
#define NVME_ADM_DELETE_CQ 0x04
#define NVME_ADM_CREATE_CQ 0x05
#define NVME_ADM_IDENTIFY 0x06
#define NVME_ADM_SET_FEATURES 0x09
#define NVME_ADM_GET_FEATURES 0x0a
#define NVME_CMD_FLUSH 0x00
#define NVME_CMD_WRITE 0x01
#define NVME_CMD_READ 0x02
#define NVME_CMD_WRITE_ZEROES 0x08
#define NVME_CMD_DSM 0x09
#define NVME_CNS_NS 0x00
#define NVME_CNS_CTRL 0x01
#define NVME_CNS_NS_LIST 0x02
#define NVME_ONCS_DSM (1u << 2)
#define NVME_ONCS_WRITE_ZEROES (1u << 3)

/* The status field of a completion (phase tag removed): SC and SCT. */
#define NVME_SC(s) ((unsigned int)(s) & 0xff)
#define NVME_SCT(s) (((unsigned int)(s) >> 8) & 7)
#define NVME_SC_LBA_RANGE 0x80 /* generic "LBA Out of Range" */

struct nvme_sqe {
	uint32_t cdw0; /* opcode | flags << 8 | command id << 16 */
	uint32_t nsid;
	uint32_t cdw2, cdw3;
	uint64_t mptr;
	uint64_t prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

struct nvme_cqe {
	uint32_t dw0, dw1;
	uint16_t sqhd, sqid, cid;
	uint16_t status; /* without the phase tag */
};

struct nvme_queue {
	uint16_t qid, size;
	volatile uint8_t *sq, *cq;
	uint64_t sq_db, cq_db; /* doorbell addresses */
	uint16_t sq_tail, sq_head, cq_head;
	uint8_t phase;
	uint16_t next_cid;
};

struct nvme_ctrl {
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
	uint64_t regs, regs_size; /* BAR0 */
	uint64_t cap;
	uint32_t vs, db_stride;
	struct nvme_queue admin, io;
	uint8_t *id_ctrl, *id_ns; /* Identify data, 4 KiB each */
	uint64_t *prp_list;	  /* one page, for the ring-0 calls */
	char serial[21], model[41], fwrev[9];
	uint8_t mdts, vwc, nlbaf, dlfeat;
	uint16_t oncs;
	uint32_t nn, nsid, lba_size, max_xfer, queues_granted;
	uint64_t nsze; /* namespace size in blocks */
	uint16_t last_status; /* of the last ring-0 command */
	uint32_t last_dw0;
};

/* Find the nth NVMe function (class 01/08/02) on bus 0; clears c and sets
 * its address and IDs.  Returns 0 or -GUEST_ENOENT. */
int nvme_find(unsigned int nth, struct nvme_ctrl *c);
/*
 * Map BAR0, disable the controller, set up the admin queues, enable it,
 * identify the controller and the first active namespace, and create I/O
 * queue pair 1 with io_qsize entries (clamped to 2..min(MQES+1, 256)),
 * IEN = 0.  verbose prints what it finds.  Returns 0, -GUEST_ERANGE for
 * an unusable BAR, -GUEST_ENOTSUP for a controller this driver cannot
 * drive (no 4 KiB pages, metadata, odd entry sizes), -GUEST_ETIMEDOUT,
 * -GUEST_EIO (a command failed, last_status says why), -GUEST_ENOSPC.
 */
int nvme_init(struct nvme_ctrl *c, uint16_t io_qsize, bool verbose);
/* Ring 0: Identify with cns/nsid into the 4 KiB buffer buf.  Returns 0 or
 * nvme_admin()'s error. */
int nvme_identify(struct nvme_ctrl *c, uint32_t cns, uint32_t nsid, void *buf);
/*
 * Ring 0: run e (its command id is set here) on the admin or the I/O
 * queue and wait for the completion (copied to *out if not NULL; status
 * and dw0 also in last_status/last_dw0).  Returns 0, -GUEST_EIO for an
 * error status, -GUEST_EPROTO for a completion that does not match,
 * -GUEST_ENOSPC if the queue is full, -GUEST_ETIMEDOUT.
 */
int nvme_admin(struct nvme_ctrl *c, struct nvme_sqe *e, struct nvme_cqe *out);
int nvme_io(struct nvme_ctrl *c, struct nvme_sqe *e, struct nvme_cqe *out);
/* Clear e and fill a Read/Write/Write Zeroes-style command: opcode, nsid,
 * SLBA, nlb (1-65536) blocks.  Ring-3 safe. */
void nvme_rw_cmd(struct nvme_sqe *e, uint8_t opc, uint32_t nsid,
		 uint64_t lba, uint32_t nlb);
/*
 * Describe len bytes at physical addr with PRP1/PRP2, using list (a
 * 4 KiB-aligned page of NVME_PRP_LIST_MAX entries) when more than two
 * pages are touched.  Ring-3 safe.  Returns 0, -GUEST_EINVAL (empty,
 * unaligned, above 4 GiB, list needed but NULL), -GUEST_E2BIG.
 */
int nvme_prp_fill(struct nvme_sqe *e, uint64_t addr, uint32_t len,
		  uint64_t *list);
/* Copy e to the tail of q and advance the tail (no doorbell).  Ring-3
 * safe.  Returns 0 or -GUEST_ENOSPC if the queue is full. */
int nvme_sq_push(struct nvme_queue *q, const struct nvme_sqe *e);
/* Write the SQ tail / CQ head doorbell.  Ring-3 safe. */
void nvme_sq_ring(struct nvme_queue *q);
void nvme_cq_ring(struct nvme_queue *q);
/*
 * Take the next completion of q if its phase tag is current (the head
 * doorbell is not written).  Ring-3 safe.  Returns 1 (*out set), 0 if
 * there is none, -GUEST_EPROTO for a wrong SQ ID or SQ head.
 */
int nvme_cq_pop(struct nvme_queue *q, struct nvme_cqe *out);
/* Ring 0 helpers on the I/O queue: Read/Write nlb blocks (at most
 * max_xfer bytes) from/into buf, Flush, Write Zeroes, DSM deallocate of
 * one range.  Return 0, -GUEST_EINVAL, or nvme_io()'s error. */
int nvme_rw(struct nvme_ctrl *c, bool write, uint64_t lba, uint32_t nlb,
	    void *buf);
int nvme_flush(struct nvme_ctrl *c);
int nvme_write_zeroes(struct nvme_ctrl *c, uint64_t lba, uint32_t nlb);
int nvme_dsm_deallocate(struct nvme_ctrl *c, uint64_t lba, uint32_t nlb);
/* A name for a status field: "LBA Out of Range", ... */
const char *nvme_status_str(uint16_t status);

/* ---- benchmark scaffolding (bench.c) ---------------------------------- */

/* Ring 3: write GUEST_EXIT_FAIL to the exit register and spin (so under
 * QEMU, which has no exit register, a failure is a timeout). */
__noreturn void bench_fail(void);
/* Any ring: the block (0 to nblocks - 1) of request i: i modulo nblocks,
 * or, when random, the next value of the fixed LCG in *lcg. */
uint64_t bench_next_block(uint64_t *lcg, bool random, uint64_t i,
			  uint64_t nblocks);
/*
 * Ring 0: key=NAME from the command line, one of the count names, sets
 * *val to its index; *val is left alone without key.  A value not in the
 * list fails the guest with "key=NAME: want <want>", a malformed one with
 * "bad key=".
 */
void bench_parse_choice(const char *key, const char *const *names,
			unsigned int count, const char *want,
			unsigned int *val);
/*
 * Ring 0: qd=, bs= and n= from the command line (the values passed in are
 * the defaults).  qd must be 1 to max_qd, bs a non-zero multiple of
 * bs_align and at most bs_max (else the guest fails with bs_err), n
 * non-zero.
 */
void bench_parse_sizes(uint64_t *qd, uint64_t max_qd, uint64_t *bs,
		       uint64_t bs_align, uint64_t bs_max, const char *bs_err,
		       uint64_t *n);

/*
 * Ring 3: run n virtio requests on q with up to qd (at most 256) in
 * flight, polling the used ring and kicking after new submissions.
 * submit(arg, s, i) queues request i in slot s and returns its chain head
 * or -errno; check(arg, s, len) says whether the completion of slot s
 * with used length len is good.  Ends with exit_mmio(GUEST_EXIT_PASS), or
 * bench_fail() on any error.
 */
__noreturn void bench_vio_run(struct vio_queue *q, uint64_t qd, uint64_t n,
			      int (*submit)(void *arg, unsigned int s,
					    uint64_t i),
			      bool (*check)(void *arg, unsigned int s,
					    uint32_t len),
			      void *arg);

#endif
