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

#endif
