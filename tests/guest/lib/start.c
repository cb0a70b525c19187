/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * C start-up of the guest library: guest_start() (called by boot.S on the
 * BSP) copies what it needs out of the PVH hvm_start_info (command line,
 * e820 map, RSDP address) into boot_info, installs the IDT and calls
 * guest_main(); ap_start() is the AP counterpart (see smp.c).  Also the
 * exception handler and the command-line lookups.
 *
 * State: boot_info is written by the BSP before anything else runs and
 * only read afterwards; the IDT is built once by the BSP and loaded on
 * every CPU.  No locks.
 */
#include "guest.h"

#define HVM_START_MAGIC 0x336ec578

/* The PVH start info, version 1 layout (xen/include/public/arch-x86/hvm). */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr; /* version >= 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
} __attribute__((packed));

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
} __attribute__((packed));

struct idt_entry {
	uint16_t off_lo;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off_mid;
	uint32_t off_hi;
	uint32_t zero;
} __attribute__((packed));

struct boot_info boot_info;

static struct idt_entry idt[256] __attribute__((aligned(16)));
extern const char isr_stubs[];

/* Below 4 GiB everything is identity mapped; refuse anything else. */
static bool pa_mapped(uint64_t pa, uint64_t len)
{
	return pa < (1ULL << 32) && len <= (1ULL << 32) - pa;
}

static void boot_parse_start_info(uint32_t pa)
{
	const struct hvm_start_info *si;
	const struct hvm_memmap_entry *mm;
	const char *cl;
	uint32_t i, n;

	boot_info.start_info_pa = pa;
	if (pa == 0 || !pa_mapped(pa, sizeof(*si)))
		return;
	si = (const struct hvm_start_info *)(uintptr_t)pa;
	if (si->magic != HVM_START_MAGIC)
		return;
	boot_info.pvh = true;
	boot_info.version = si->version;
	boot_info.rsdp_pa = si->rsdp_paddr;
	if (si->cmdline_paddr && pa_mapped(si->cmdline_paddr, 1)) {
		cl = (const char *)(uintptr_t)si->cmdline_paddr;
		for (i = 0; i < CMDLINE_MAX - 1 &&
			    pa_mapped(si->cmdline_paddr + i, 1) && cl[i];
		     i++)
			boot_info.cmdline[i] = cl[i];
		boot_info.cmdline[i] = '\0';
	}
	if (si->version < 1 || !si->memmap_paddr)
		return;
	n = si->memmap_entries;
	boot_info.nr_e820_total = n;
	if (n > E820_MAX)
		n = E820_MAX;
	if (!pa_mapped(si->memmap_paddr, (uint64_t)n * sizeof(*mm)))
		return;
	mm = (const struct hvm_memmap_entry *)(uintptr_t)si->memmap_paddr;
	for (i = 0; i < n; i++) {
		boot_info.e820[i].addr = mm[i].addr;
		boot_info.e820[i].size = mm[i].size;
		boot_info.e820[i].type = mm[i].type;
	}
	boot_info.nr_e820 = n;
}

const char *e820_type_name(uint32_t type)
{
	switch (type) {
	case 1:
		return "RAM";
	case 2:
		return "reserved";
	case 3:
		return "ACPI";
	case 4:
		return "NVS";
	case 5:
		return "unusable";
	case 7:
		return "PMEM";
	default:
		return "unknown";
	}
}

static void idt_init(void)
{
	uint64_t h;
	unsigned int i;

	for (i = 0; i < 256; i++) {
		h = (uint64_t)(uintptr_t)isr_stubs + 16 * i;
		idt[i].off_lo = (uint16_t)h;
		idt[i].sel = GDT_CODE64;
		idt[i].ist = 0;
		idt[i].type = 0x8e; /* present, DPL 0, interrupt gate */
		idt[i].off_mid = (uint16_t)(h >> 16);
		idt[i].off_hi = (uint32_t)(h >> 32);
		idt[i].zero = 0;
	}
}

void idt_load(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) d = {sizeof(idt) - 1, (uintptr_t)idt};

	__asm__ volatile("lidt %0" : : "m"(d));
}

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "#15",
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23",
	"#24", "#25", "#26", "#27", "#HV", "#VC", "#SX", "#31",
};

void trap_handler(struct trap_frame *tf)
{
	uint64_t cr2;

	console_break_lock();
	printf("\nEXCEPTION vector %lu (%s) error 0x%lx on APIC %u\n",
	       tf->vector, tf->vector < 32 ? exc_names[tf->vector] : "irq",
	       tf->error, lapic_id());
	printf("  rip 0x%016lx cs 0x%lx rflags 0x%lx rsp 0x%016lx ss 0x%lx\n",
	       tf->rip, tf->cs, tf->rflags, tf->rsp, tf->ss);
	if (tf->vector == 14) {
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		printf("  cr2 0x%016lx\n", cr2);
	}
	printf("  rax 0x%lx rbx 0x%lx rcx 0x%lx rdx 0x%lx\n", tf->rax, tf->rbx,
	       tf->rcx, tf->rdx);
	printf("  rsi 0x%lx rdi 0x%lx rbp 0x%lx\n", tf->rsi, tf->rdi, tf->rbp);
	guest_fail("exception %lu at rip 0x%lx", tf->vector, tf->rip);
}

void guest_start(uint32_t start_info_pa);

void guest_start(uint32_t start_info_pa)
{
	serial_init();
	idt_init();
	idt_load();
	boot_parse_start_info(start_info_pa);
	printf("guest %s: ", guest_name);
	if (boot_info.pvh)
		printf("PVH start_info v%u at 0x%x, cmdline \"%s\"\n",
		       boot_info.version, start_info_pa, boot_info.cmdline);
	else
		printf("no PVH start_info (ebx 0x%x)\n", start_info_pa);
	guest_main();
	guest_fail("guest_main returned");
}

static const char *cmdline_find(const char *key, size_t *vlen)
{
	const char *p = boot_info.cmdline;
	size_t klen = strlen(key), n;

	while (*p) {
		while (*p == ' ')
			p++;
		for (n = 0; p[n] && p[n] != ' '; n++)
			;
		if (n > klen && p[klen] == '=' && !strncmp(p, key, klen)) {
			*vlen = n - klen - 1;
			return p + klen + 1;
		}
		p += n;
	}
	return NULL;
}

int cmdline_get(const char *key, char *buf, size_t size)
{
	const char *v;
	size_t len;

	v = cmdline_find(key, &len);
	if (!v)
		return -GUEST_ENOENT;
	if (len >= size)
		return -GUEST_E2BIG;
	memcpy(buf, v, len);
	buf[len] = '\0';
	return (int)len;
}

int cmdline_get_u64(const char *key, uint64_t *val)
{
	const char *v;
	size_t len;

	v = cmdline_find(key, &len);
	if (!v)
		return -GUEST_ENOENT;
	return parse_u64(v, len, val) ? -GUEST_EINVAL : 0;
}
