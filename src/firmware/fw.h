/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The platform description the firmware-table builders work from, and the
 * one entry point that writes every table (ACPI, and the Intel MP table
 * unless x86.mptable=false) into guest RAM at [FW_TABLES_BASE,
 * FW_TABLES_END) (core/layout.h), where Linux scans for the RSDP and the
 * MP floating pointer.  There is no BIOS: these tables are all a guest
 * kernel learns about CPUs, interrupt routing and the PCI root.
 *
 * Also the small staging area the builders share (struct fw_area): the
 * tables are composed in host memory and copied into the guest only when
 * all of them fit, so a failure leaves guest RAM untouched.
 *
 * Threads: called once from the main thread before any vCPU runs; no
 * state, no locks.
 */
#ifndef KHYVE_FIRMWARE_FW_H
#define KHYVE_FIRMWARE_FW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gmem;
struct aml;

/* An ISA 16550 (COM1..4): ACPI PNP0501 device and MP/MADT routing. */
struct fw_uart {
	uint16_t port; /* base of the 8-port block */
	uint8_t irq;   /* ISA IRQ 0-15 */
	uint8_t uid;   /* _UID, 1 for COM1 */
};

/* One legacy interrupt route of a device on PCI bus 0 (a _PRT entry). */
struct fw_pci_intx {
	uint8_t slot; /* device number 0-31 */
	uint8_t pin;  /* 0=INTA .. 3=INTD */
	uint8_t gsi;  /* I/O APIC input */
};

/*
 * A further PCI root bridge (bhyve describes each populated bus other
 * than 0 as its own host bridge): Device (PCxx) with _BBN = bus, its own
 * windows (inclusive ends; empty when end <= base) and _PRT.
 */
struct fw_pci_root {
	uint8_t bus;
	uint16_t io_base, io_end;
	uint64_t mmio32_base, mmio32_end;
	uint64_t mmio64_base, mmio64_end;
	const struct fw_pci_intx *intx;
	unsigned nintx;
};

/*
 * What the guest is told about the machine.  Every "end" field is the
 * LAST address of its range (inclusive, like bus_end), so the I/O window
 * can reach 0xffff in 16 bits.  A window with end <= base is empty (so a
 * zeroed window is absent).
 */
struct fw_platform {
	unsigned ncpus;		/* local APIC ids 0..ncpus-1 */
	bool x2apic;		/* MADT x2APIC entries for every CPU */
	const struct gmem *mem; /* may be NULL; unused for now (SRAT) */
	bool mptable;		/* write an MP table too */

	bool pci;		    /* false: no PCI root, no MCFG at all */
	uint64_t ecam_base;	    /* ECAM address of bus 0 (MCFG) */
	uint8_t bus_start, bus_end; /* root bus range, inclusive */
	uint16_t pci_io_base, pci_io_end; /* I/O BAR window [base, end] */
	uint64_t mmio32_base, mmio32_end; /* 32-bit BAR window [base, end] */
	uint64_t mmio64_base, mmio64_end; /* 64-bit BAR window [base, end] */
	const struct fw_pci_intx *intx;	  /* at most FW_MAX_INTX */
	unsigned nintx;
	uint8_t lpc_slot; /* PCI slot of the LPC bridge; 0: none */
	/* Further root bridges, buses in increasing order, all above
	 * bus_end (which then stops below the first of them). */
	const struct fw_pci_root *roots;
	unsigned nroots;

	const struct fw_uart *uarts; /* at most FW_MAX_UARTS */
	unsigned nuarts;

	/*
	 * Optional: called with the DSDT builder positioned inside
	 * Device (\_SB.PC00) (inside Scope (\_SB) when !pci) so device
	 * models can add their own Device() objects.  Returns 0 or -errno.
	 */
	int (*dsdt_hook)(struct aml *aml, void *opaque);
	void *dsdt_opaque;
};

#define FW_MAX_UARTS 9
#define FW_MAX_INTX (32 * 4) /* every pin of every slot on a bus */
#define FW_MAX_ROOTS 255

/*
 * The I/O APIC id the tables (and the I/O APIC model) use: ncpus, kept
 * below the broadcast id 0xff when there are that many CPUs.
 */
static inline uint8_t fw_ioapic_id(unsigned ncpus)
{
	return ncpus < 0xfe ? (uint8_t)ncpus : 0xfe;
}

/* The last bus any root bridge decodes (for MCFG and the ECAM reserve). */
static inline uint8_t fw_last_bus(const struct fw_platform *p)
{
	return p->nroots ? p->roots[p->nroots - 1].bus : p->bus_end;
}

/*
 * Build all tables into guest RAM; *rsdp_gpa gets the RSDP address.
 * Returns 0, -EINVAL (bad platform description: no CPUs, bad window or
 * bus range, too many UARTs), -EFAULT ([FW_TABLES_BASE, FW_TABLES_END)
 * is not guest RAM), -ENOMEM, or -ENOSPC if the tables do not fit.
 */
int fw_build_tables(const struct gmem *mem, const struct fw_platform *p,
		    uint64_t *rsdp_gpa);

/*
 * Check 'p' is self-consistent: at least one CPU, at most FW_MAX_UARTS
 * UARTs with ISA IRQs, arrays present when counted, and with a PCI root
 * a sane bus range, I/O window inside 0xd00-0xffff, 32-bit window below
 * 4 GiB, at most FW_MAX_INTX INTx routes with slots < 32 and pins < 4.
 * Returns 0 or -EINVAL; *why (if not NULL) gets a short reason or NULL.
 */
int fw_platform_check(const struct fw_platform *p, const char **why);

/*
 * The staging area shared by the ACPI and MP builders: 'size' zeroed host
 * bytes standing for guest addresses [gpa, gpa + size).
 */
struct fw_area {
	uint8_t *buf;
	uint64_t gpa;
	size_t size;
	size_t used;
};

/*
 * Take 'len' zeroed bytes at the first 'align'-aligned (power of two)
 * address at or above both the cursor and 'min_gpa'.  Returns the host
 * pointer (and *gpa) or NULL when they do not fit.
 */
uint8_t *fw_area_alloc(struct fw_area *a, size_t len, size_t align,
		       uint64_t min_gpa, uint64_t *gpa);

/* The byte that makes the bytes of [p, p+len) sum to zero with it. */
uint8_t fw_checksum(const void *p, size_t len);

/* Little-endian stores into table bytes. */
static inline void fw_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void fw_put32(uint8_t *p, uint32_t v)
{
	fw_put16(p, (uint16_t)v);
	fw_put16(p + 2, (uint16_t)(v >> 16));
}

static inline void fw_put64(uint8_t *p, uint64_t v)
{
	fw_put32(p, (uint32_t)v);
	fw_put32(p + 4, (uint32_t)(v >> 32));
}

#endif
