/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ACPI as a guest sees it: find the RSDP, walk the XSDT (or RSDT) checking
 * every table's checksum, parse the MADT (CPUs, IOAPICs), read the FADT
 * (PM1 control, reset and sleep registers, DSDT), decode \_S5 from the
 * DSDT's AML, and power off or reset through those registers.
 *
 * Everything here reads VMM-provided bytes, so every offset and length is
 * checked before use: a malformed table is reported as an error, never
 * followed blindly.  BSP only; no state besides the caller's acpi_info.
 */
#include "guest.h"

#define RSDP_SIG "RSD PTR "
#define FADT_FLAGS 112
#define FADT_RESET_SUP (1u << 10)
#define FADT_HW_REDUCED (1u << 20)
#define PM1_SCI_EN 0x0001
#define PM1_SLP_EN 0x2000
#define PM1_SLP_TYP_SHIFT 10
#define MAX_TABLE_LEN (16u << 20)

struct rsdp {
	char sig[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
	uint32_t length; /* revision >= 2 from here */
	uint64_t xsdt;
	uint8_t ext_checksum;
	uint8_t reserved[3];
} __attribute__((packed));

static bool pa_ok(uint64_t pa, uint64_t len)
{
	return pa != 0 && pa < (1ULL << 32) && len <= (1ULL << 32) - pa;
}

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *b++);
	return sum;
}

/* Little-endian field of a table, 0 if it lies beyond the table's end. */
static uint64_t field(const struct acpi_sdt *t, uint32_t off, uint32_t size)
{
	const uint8_t *b = (const uint8_t *)t;
	uint64_t v = 0;

	if (off + size > t->length)
		return 0;
	while (size--)
		v = v << 8 | b[off + size];
	return v;
}

/* A GAS of a table, false if it lies beyond the table's end. */
static bool gas_at(const struct acpi_sdt *t, uint32_t off, struct acpi_gas *g)
{
	if (off + sizeof(*g) > t->length)
		return false;
	memcpy(g, (const uint8_t *)t + off, sizeof(*g));
	return true;
}

const struct acpi_sdt *acpi_table_check(uint64_t pa, int *err)
{
	const struct acpi_sdt *t;

	*err = -GUEST_EINVAL;
	if (!pa_ok(pa, sizeof(*t)))
		return NULL;
	t = (const struct acpi_sdt *)(uintptr_t)pa;
	if (t->length < sizeof(*t) || t->length > MAX_TABLE_LEN ||
	    !pa_ok(pa, t->length))
		return NULL;
	*err = -GUEST_EBADMSG;
	if (acpi_checksum(t, t->length))
		return NULL;
	*err = 0;
	return t;
}

static const struct rsdp *rsdp_check(uint64_t pa)
{
	const struct rsdp *r;

	if (!pa_ok(pa, sizeof(*r)))
		return NULL;
	r = (const struct rsdp *)(uintptr_t)pa;
	if (memcmp(r->sig, RSDP_SIG, 8) || acpi_checksum(r, 20))
		return NULL;
	if (r->revision >= 2 &&
	    (r->length < sizeof(*r) || r->length > 4096 ||
	     !pa_ok(pa, r->length) || acpi_checksum(r, r->length)))
		return NULL;
	return r;
}

static const struct rsdp *rsdp_scan(uint64_t start, uint64_t end)
{
	const struct rsdp *r;
	uint64_t pa;

	for (pa = start; pa + 20 <= end; pa += 16)
		if ((r = rsdp_check(pa)))
			return r;
	return NULL;
}

static const struct rsdp *rsdp_find(bool verbose)
{
	const struct rsdp *r;
	uint64_t ebda;

	if (boot_info.rsdp_pa) {
		r = rsdp_check(boot_info.rsdp_pa);
		if (r)
			return r;
		if (verbose)
			printf("ACPI: start_info RSDP 0x%lx is not valid\n",
			       boot_info.rsdp_pa);
	}
	ebda = (uint64_t)mmio_read16(0x40e) << 4;
	if (ebda >= 0x80000 && ebda < 0xa0000) {
		r = rsdp_scan(ebda, ebda + 1024);
		if (r)
			return r;
	}
	return rsdp_scan(0xe0000, 0x100000);
}

static void print_sig(const struct acpi_sdt *t, uint64_t pa)
{
	printf("ACPI:   %c%c%c%c at 0x%08lx len %5u rev %u OEM %c%c%c%c%c%c\n",
	       t->sig[0], t->sig[1], t->sig[2], t->sig[3], pa, t->length,
	       t->revision, t->oem_id[0], t->oem_id[1], t->oem_id[2],
	       t->oem_id[3], t->oem_id[4], t->oem_id[5]);
}

static const char *why(int err)
{
	if (err == -GUEST_EBADMSG)
		return "bad checksum";
	if (err)
		return "bad address or length";
	return "wrong signature";
}

static int madt_parse(struct acpi_info *ai, bool verbose)
{
	const struct acpi_sdt *m = ai->madt;
	const uint8_t *b = (const uint8_t *)m;
	uint32_t off, id, flags;
	uint8_t type, len;

	if (m->length < 44)
		return -GUEST_EINVAL;
	ai->lapic_pa = (uint32_t)field(m, 36, 4);
	for (off = 44; off + 2 <= m->length; off += len) {
		type = b[off];
		len = b[off + 1];
		if (len < 2 || off + len > m->length) {
			if (verbose)
				printf("ACPI: MADT entry at %u: bad length "
				       "%u\n",
				       off, len);
			return -GUEST_EINVAL;
		}
		if (type == 0 && len >= 8) { /* processor local APIC */
			id = b[off + 3];
			flags = (uint32_t)field(m, off + 4, 4);
		} else if (type == 9 && len >= 16) { /* local x2APIC */
			id = (uint32_t)field(m, off + 4, 4);
			flags = (uint32_t)field(m, off + 8, 4);
		} else {
			if (type == 1)
				ai->nioapics++;
			else if (type == 5 && len >= 12 &&
				 field(m, off + 4, 8) < (1ULL << 32))
				ai->lapic_pa = (uint32_t)field(m, off + 4, 8);
			continue;
		}
		if (!(flags & 1))
			continue;
		if (ai->ncpus == ACPI_MAX_CPUS)
			return -GUEST_E2BIG;
		ai->cpu_apic_id[ai->ncpus++] = id;
	}
	return 0;
}

static int check_root(struct acpi_info *ai, const struct acpi_sdt *root,
		      unsigned int esize, bool verbose)
{
	const struct acpi_sdt *t;
	uint64_t pa;
	uint32_t off;
	int err;

	for (off = sizeof(*root); off + esize <= root->length; off += esize) {
		pa = field(root, off, esize);
		ai->ntables++;
		t = acpi_table_check(pa, &err);
		if (!t) {
			ai->nbad++;
			printf("ACPI:   table at 0x%lx: %s\n", pa, why(err));
			continue;
		}
		if (verbose)
			print_sig(t, pa);
		if (!memcmp(t->sig, "APIC", 4) && !ai->madt)
			ai->madt = t;
		else if (!memcmp(t->sig, "FACP", 4) && !ai->fadt)
			ai->fadt = t;
		else if (!memcmp(t->sig, "MCFG", 4) && !ai->mcfg)
			ai->mcfg = t;
	}
	return 0;
}

int acpi_init(struct acpi_info *ai, bool verbose)
{
	const struct rsdp *r;
	const struct acpi_sdt *root;
	uint64_t dsdt_pa;
	int err;

	memset(ai, 0, sizeof(*ai));
	r = rsdp_find(verbose);
	if (!r)
		return -GUEST_ENOENT;
	ai->rsdp_pa = (uintptr_t)r;
	ai->rsdp_revision = r->revision;
	if (verbose)
		printf("ACPI: RSDP at 0x%lx rev %u OEM %c%c%c%c%c%c RSDT 0x%x "
		       "XSDT 0x%lx\n",
		       ai->rsdp_pa, r->revision, r->oem_id[0], r->oem_id[1],
		       r->oem_id[2], r->oem_id[3], r->oem_id[4], r->oem_id[5],
		       r->rsdt, r->revision >= 2 ? r->xsdt : 0);
	if (r->rsdt) {
		ai->rsdt = acpi_table_check(r->rsdt, &err);
		if (!ai->rsdt || memcmp(ai->rsdt->sig, "RSDT", 4)) {
			printf("ACPI: RSDT at 0x%x: %s\n", r->rsdt, why(err));
			return err ? err : -GUEST_EINVAL;
		}
	}
	if (r->revision >= 2 && r->xsdt) {
		ai->xsdt = acpi_table_check(r->xsdt, &err);
		if (!ai->xsdt || memcmp(ai->xsdt->sig, "XSDT", 4)) {
			printf("ACPI: XSDT at 0x%lx: %s\n", r->xsdt, why(err));
			return err ? err : -GUEST_EINVAL;
		}
	}
	root = ai->xsdt ? ai->xsdt : ai->rsdt;
	if (!root)
		return -GUEST_ENOENT;
	if (verbose)
		printf("ACPI: walking %s (%u entries)\n",
		       ai->xsdt ? "XSDT" : "RSDT",
		       (root->length - 36) / (ai->xsdt ? 8 : 4));
	check_root(ai, root, ai->xsdt ? 8 : 4, verbose);
	if (ai->fadt) {
		dsdt_pa = field(ai->fadt, 140, 8);
		if (!dsdt_pa)
			dsdt_pa = field(ai->fadt, 40, 4);
		ai->dsdt = acpi_table_check(dsdt_pa, &err);
		if (!ai->dsdt || memcmp(ai->dsdt->sig, "DSDT", 4)) {
			printf("ACPI: DSDT at 0x%lx: %s\n", dsdt_pa, why(err));
			return err ? err : -GUEST_EINVAL;
		}
		if (verbose)
			print_sig(ai->dsdt, dsdt_pa);
	}
	if (ai->madt) {
		err = madt_parse(ai, verbose);
		if (err)
			return err;
	}
	if (ai->nbad)
		return -GUEST_EBADMSG;
	return 0;
}

/* Decode one AML DataRefObject integer at *pos. */
static int aml_integer(const uint8_t *b, uint32_t end, uint32_t *pos,
		       uint64_t *val)
{
	uint32_t p = *pos, n, i;
	uint8_t op;

	if (p >= end)
		return -GUEST_EINVAL;
	op = b[p++];
	switch (op) {
	case 0x00: /* ZeroOp */
	case 0x01: /* OneOp */
		*val = op;
		*pos = p;
		return 0;
	case 0xff: /* OnesOp */
		*val = ~0ULL;
		*pos = p;
		return 0;
	case 0x0a: /* BytePrefix */
		n = 1;
		break;
	case 0x0b: /* WordPrefix */
		n = 2;
		break;
	case 0x0c: /* DWordPrefix */
		n = 4;
		break;
	case 0x0e: /* QWordPrefix */
		n = 8;
		break;
	default:
		return -GUEST_EINVAL;
	}
	if (p + n > end)
		return -GUEST_EINVAL;
	*val = 0;
	for (i = n; i; i--)
		*val = *val << 8 | b[p + i - 1];
	*pos = p + n;
	return 0;
}

static int s5_decode(const struct acpi_info *ai, uint64_t *typa, uint64_t *typb)
{
	const struct acpi_sdt *d = ai->dsdt;
	const uint8_t *b = (const uint8_t *)d;
	uint32_t i, p, end, nlen;
	uint8_t nelem;
	int err;

	if (!d)
		return -GUEST_ENOENT;
	end = d->length;
	for (i = sizeof(*d); i + 4 <= end; i++) {
		if (memcmp(b + i, "_S5_", 4))
			continue;
		/* NameOp, optionally a root or parent prefix */
		if (!(b[i - 1] == 0x08 ||
		      ((b[i - 1] == '\\' || b[i - 1] == '^') &&
		       b[i - 2] == 0x08)))
			continue;
		p = i + 4;
		if (p >= end || b[p] != 0x12) /* PackageOp */
			continue;
		p++;
		if (p >= end)
			return -GUEST_EINVAL;
		nlen = b[p] >> 6; /* PkgLength: extra bytes */
		p += 1 + nlen;
		if (p >= end)
			return -GUEST_EINVAL;
		nelem = b[p++];
		if (nelem < 1)
			return -GUEST_EINVAL;
		err = aml_integer(b, end, &p, typa);
		if (err)
			return err;
		*typb = *typa;
		if (nelem >= 2 && aml_integer(b, end, &p, typb))
			*typb = *typa;
		return 0;
	}
	return -GUEST_ENOENT;
}

int acpi_s5_slp_typ(const struct acpi_info *ai)
{
	uint64_t a, b;
	int err;

	err = s5_decode(ai, &a, &b);
	if (err)
		return err;
	return a > 7 ? -GUEST_ERANGE : (int)a;
}

static unsigned int gas_width(const struct acpi_gas *g)
{
	if (g->access_size >= 1 && g->access_size <= 4)
		return 8u << (g->access_size - 1);
	if (g->bit_width == 16 || g->bit_width == 32 || g->bit_width == 64)
		return g->bit_width;
	return 8;
}

int acpi_gas_write(const struct acpi_gas *g, uint64_t val)
{
	unsigned int w = gas_width(g);

	if (g->space == 1) {
		if (g->address > 0xffff || w == 64)
			return -GUEST_EINVAL;
		if (w == 8)
			outb((uint16_t)g->address, (uint8_t)val);
		else if (w == 16)
			outw((uint16_t)g->address, (uint16_t)val);
		else
			outl((uint16_t)g->address, (uint32_t)val);
		return 0;
	}
	if (g->space != 0 || !pa_ok(g->address, w / 8))
		return -GUEST_EINVAL;
	if (w == 8)
		mmio_write8(g->address, (uint8_t)val);
	else if (w == 16)
		mmio_write16(g->address, (uint16_t)val);
	else if (w == 32)
		mmio_write32(g->address, (uint32_t)val);
	else
		mmio_write64(g->address, val);
	return 0;
}

int acpi_gas_read(const struct acpi_gas *g, uint64_t *val)
{
	unsigned int w = gas_width(g);

	if (g->space == 1) {
		if (g->address > 0xffff || w == 64)
			return -GUEST_EINVAL;
		if (w == 8)
			*val = inb((uint16_t)g->address);
		else if (w == 16)
			*val = inw((uint16_t)g->address);
		else
			*val = inl((uint16_t)g->address);
		return 0;
	}
	if (g->space != 0 || !pa_ok(g->address, w / 8))
		return -GUEST_EINVAL;
	if (w == 8)
		*val = mmio_read8(g->address);
	else if (w == 16)
		*val = mmio_read16(g->address);
	else if (w == 32)
		*val = mmio_read32(g->address);
	else
		*val = mmio_read64(g->address);
	return 0;
}

/* The PM1x control register as a GAS: X_PM1x_CNT_BLK, else the port. */
static bool pm1_cnt(const struct acpi_sdt *f, bool b_block, struct acpi_gas *g)
{
	uint64_t port = field(f, b_block ? 68 : 64, 4);

	if (gas_at(f, b_block ? 184 : 172, g) && g->address)
		return true;
	if (!port)
		return false;
	memset(g, 0, sizeof(*g));
	g->space = 1;
	g->bit_width = 16;
	g->access_size = 2;
	g->address = port;
	return true;
}

static void acpi_enable(const struct acpi_info *ai, const struct acpi_gas *cnt,
			bool verbose)
{
	uint32_t smi_cmd = (uint32_t)field(ai->fadt, 48, 4);
	uint8_t enable = (uint8_t)field(ai->fadt, 52, 1);
	uint64_t v = 0;
	unsigned int i;

	if (acpi_gas_read(cnt, &v) || (v & PM1_SCI_EN) || !smi_cmd ||
	    smi_cmd > 0xffff || !enable)
		return;
	if (verbose)
		printf("ACPI: enabling ACPI mode (0x%x -> port 0x%x)\n", enable,
		       smi_cmd);
	outb((uint16_t)smi_cmd, enable);
	for (i = 0; i < 10000; i++)
		if (!acpi_gas_read(cnt, &v) && (v & PM1_SCI_EN))
			return;
}

int acpi_poweroff(const struct acpi_info *ai, bool verbose)
{
	struct acpi_gas cnt, cntb, sleep;
	uint64_t typa, typb, v, vb;
	bool has_b;
	uint32_t flags;
	int err;

	if (!ai->fadt)
		return -GUEST_ENOENT;
	err = s5_decode(ai, &typa, &typb);
	if (err) {
		printf("ACPI: no usable \\_S5 in the DSDT (%d)\n", err);
		return err;
	}
	flags = (uint32_t)field(ai->fadt, FADT_FLAGS, 4);
	if ((flags & FADT_HW_REDUCED) || !pm1_cnt(ai->fadt, false, &cnt)) {
		if (!gas_at(ai->fadt, 244, &sleep) || !sleep.address)
			return -GUEST_ENODEV;
		v = (typa & 7) << 2 | 0x20; /* SLP_TYP, SLP_EN */
		if (verbose)
			printf("ACPI: S5: SLP_TYP %lu -> sleep control "
			       "register 0x%lx (%s)\n",
			       typa, sleep.address,
			       sleep.space ? "I/O" : "MMIO");
		err = acpi_gas_write(&sleep, v);
		if (err)
			return err;
		vmm_settle();
		return -GUEST_EIO;
	}
	acpi_enable(ai, &cnt, verbose);
	if (verbose)
		printf("ACPI: S5: SLP_TYP %lu -> PM1a_CNT 0x%lx (%s)\n", typa,
		       cnt.address, cnt.space ? "I/O" : "MMIO");
	err = acpi_gas_read(&cnt, &v);
	if (err)
		return err;
	v &= ~(uint64_t)(PM1_SLP_EN | 7 << PM1_SLP_TYP_SHIFT);
	v |= (typa & 7) << PM1_SLP_TYP_SHIFT;
	has_b = pm1_cnt(ai->fadt, true, &cntb);
	vb = (typb & 7) << PM1_SLP_TYP_SHIFT;
	/* As an OS does: SLP_TYP first, then SLP_TYP | SLP_EN. */
	err = acpi_gas_write(&cnt, v);
	if (!err && has_b)
		err = acpi_gas_write(&cntb, vb);
	if (!err)
		err = acpi_gas_write(&cnt, v | PM1_SLP_EN);
	if (!err && has_b)
		err = acpi_gas_write(&cntb, vb | PM1_SLP_EN);
	if (err)
		return err;
	vmm_settle();
	return -GUEST_EIO;
}

int acpi_reset(const struct acpi_info *ai, bool verbose)
{
	struct acpi_gas reg;
	uint32_t flags;
	uint8_t val;
	int err;

	if (!ai->fadt)
		return -GUEST_ENOENT;
	flags = (uint32_t)field(ai->fadt, FADT_FLAGS, 4);
	if (!gas_at(ai->fadt, 116, &reg) || !reg.address ||
	    ai->fadt->length < 129)
		return -GUEST_ENODEV;
	val = (uint8_t)field(ai->fadt, 128, 1);
	if (verbose)
		printf("ACPI: reset: 0x%x -> %s 0x%lx%s\n", val,
		       reg.space ? "port" : "MMIO", reg.address,
		       flags & FADT_RESET_SUP ? ""
					      : " (RESET_REG_SUP not set)");
	err = acpi_gas_write(&reg, val);
	if (err)
		return err;
	vmm_settle();
	return -GUEST_EIO;
}
