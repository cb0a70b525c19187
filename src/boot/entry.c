/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The CPU state a directly booted kernel starts in: the BSP's registers
 * (flat 32-bit protected mode for PVH and Multiboot, 64-bit long mode for
 * bzImage), the GDT whose descriptors match the hidden segment state we
 * hand to the hypervisor, and the 4 GiB identity map for long mode.
 *
 * The GDT (at BOOT_GDT_GPA, limit 0x2f):
 *   0x00 null   0x08 null   0x10 code (32-bit or 64-bit)   0x18 data
 *   0x20 TSS (busy, base 0, limit 0x67; 16 bytes in long mode)
 * VMX refuses to enter with an unusable TR, hence the TSS; its base 0
 * follows the PVH ABI ("a 32-bit TSS with base 0 and limit 0x67").
 *
 * Threads: set-up only; no state.
 */
#include "boot/boot_int.h"

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define SEG_TYPE_CODE_RX_A 0xb /* execute/read, accessed */
#define SEG_TYPE_DATA_RW_A 0x3 /* read/write, accessed */
#define SEG_TYPE_TSS_BUSY 0xb  /* 32-bit / 64-bit busy TSS */
#define SEG_TYPE_LDT 0x2

#define PTE_P (1ULL << 0)
#define PTE_RW (1ULL << 1)
#define PTE_PS (1ULL << 7)

uint64_t boot_seg_desc(const struct hv_seg *s)
{
	uint32_t limit = s->g ? s->limit >> 12 : s->limit;
	uint64_t d = 0;

	d |= (uint64_t)(limit & 0xffff);
	d |= (s->base & 0xffffffULL) << 16;
	d |= (uint64_t)(s->type & 0xf) << 40;
	d |= (uint64_t)(s->s & 1) << 44;
	d |= (uint64_t)(s->dpl & 3) << 45;
	d |= (uint64_t)(s->present & 1) << 47;
	d |= (uint64_t)((limit >> 16) & 0xf) << 48;
	d |= (uint64_t)(s->avl & 1) << 52;
	d |= (uint64_t)(s->l & 1) << 53;
	d |= (uint64_t)(s->db & 1) << 54;
	d |= (uint64_t)(s->g & 1) << 55;
	d |= ((s->base >> 24) & 0xffULL) << 56;
	return d;
}

int boot_gdt_write(const struct boot_ctx *c, const struct hv_regs *r)
{
	uint8_t gdt[BOOT_GDT_ENTRIES * 8];

	memset(gdt, 0, sizeof(gdt));
	boot_put64(gdt + BOOT_SEL_CODE, boot_seg_desc(&r->cs));
	boot_put64(gdt + BOOT_SEL_DATA, boot_seg_desc(&r->ds));
	boot_put64(gdt + BOOT_SEL_TSS, boot_seg_desc(&r->tr));
	/* Upper half of the 16-byte long-mode TSS descriptor: base 63:32. */
	boot_put64(gdt + BOOT_SEL_TSS + 8, r->tr.base >> 32);
	return boot_scratch_write(c, BOOT_GDT_GPA, gdt, sizeof(gdt));
}

int boot_pagetables_write(const struct boot_ctx *c)
{
	uint8_t page[BOOT_PAGE];
	unsigned i, j;
	int rc;

	memset(page, 0, sizeof(page));
	boot_put64(page, BOOT_PDPT_GPA | PTE_P | PTE_RW);
	rc = boot_scratch_write(c, BOOT_PML4_GPA, page, sizeof(page));
	if (rc)
		return rc;
	memset(page, 0, sizeof(page));
	for (i = 0; i < 4; i++)
		boot_put64(page + 8 * i,
			   (BOOT_PD_GPA + i * BOOT_PAGE) | PTE_P | PTE_RW);
	rc = boot_scratch_write(c, BOOT_PDPT_GPA, page, sizeof(page));
	if (rc)
		return rc;
	for (i = 0; i < 4; i++) {
		for (j = 0; j < 512; j++)
			boot_put64(page + 8 * j,
				   ((uint64_t)i * GIB + (uint64_t)j * 2 * MIB) |
					   PTE_P | PTE_RW | PTE_PS);
		rc = boot_scratch_write(c, BOOT_PD_GPA + i * BOOT_PAGE, page,
					sizeof(page));
		if (rc)
			return rc;
	}
	return 0;
}

static struct hv_seg flat_seg(uint16_t sel, uint8_t type)
{
	struct hv_seg s = {
		.base = 0,
		.limit = 0xffffffff,
		.sel = sel,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = 1,
		.s = 1,
		.l = 0,
		.g = 1,
	};

	return s;
}

/* Everything both entry modes share: GPRs zero, data segments, TR, LDTR. */
static void regs_common(struct hv_regs *r)
{
	struct hv_seg data = flat_seg(BOOT_SEL_DATA, SEG_TYPE_DATA_RW_A);

	memset(r, 0, sizeof(*r));
	r->rflags = 0x2;
	r->ds = r->es = r->fs = r->gs = r->ss = data;
	r->tr = (struct hv_seg){.base = 0,
				.limit = 0x67,
				.sel = BOOT_SEL_TSS,
				.type = SEG_TYPE_TSS_BUSY,
				.present = 1};
	r->ldt = (struct hv_seg){.type = SEG_TYPE_LDT, .present = 0};
	r->gdt_base = BOOT_GDT_GPA;
	r->gdt_limit = BOOT_GDT_ENTRIES * 8 - 1;
	r->idt_base = 0;
	r->idt_limit = 0;
	r->dr6 = 0xffff0ff0;
	r->dr7 = 0x400;
	/* 0: leave IA32_APIC_BASE as the hypervisor layer set it (x2APIC). */
	r->apic_base = 0;
}

void boot_regs_prot32(struct hv_regs *r, uint32_t entry)
{
	regs_common(r);
	r->cs = flat_seg(BOOT_SEL_CODE, SEG_TYPE_CODE_RX_A);
	r->rip = entry;
	r->cr0 = CR0_PE | CR0_ET;
}

void boot_regs_long64(struct hv_regs *r, uint64_t entry)
{
	regs_common(r);
	r->cs = flat_seg(BOOT_SEL_CODE, SEG_TYPE_CODE_RX_A);
	r->cs.l = 1;
	r->cs.db = 0;
	r->rip = entry;
	r->cr0 = CR0_PE | CR0_ET | CR0_PG;
	r->cr3 = BOOT_PML4_GPA;
	r->cr4 = CR4_PAE;
	r->efer = EFER_LME | EFER_LMA;
}
