/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * cpuid: the CPU topology khyve reports, checked on every CPU.  The
 * command line says what to expect: "cpus=N sockets=S cores=C threads=T
 * x2apic=0|1" (sockets defaults to N, cores and threads to 1, x2apic to 0,
 * as bhyve's -c does).  Each CPU (the BSP, then every AP of the MADT,
 * started with INIT-SIPI-SIPI in either APIC mode) checks:
 *
 *   - its APIC id is below N and no other CPU has it (APIC id = vCPU index)
 *   - the APIC mode is x2APIC exactly when x2apic=1
 *   - leaf 1: EBX[31:24] = APIC id, EBX[23:16] = C*T, EDX.HTT set if C*T > 1
 *     (if C*T = 1 a set HTT is only noted),
 *     ECX[31] (hypervisor) set, ECX[21] (x2APIC) = x2apic
 *   - leaf 0xb: subleaf 0 SMT (shift bits(T), T CPUs), subleaf 1 core
 *     (shift bits(T)+bits(C), C*T CPUs), subleaf 2 invalid, EDX = APIC id
 *   - leaf 4: every cache level has EAX[31:26] = 2^bits(C) - 1
 *   - leaves 0x80000008 (ECX: APIC id size, NC) and 0x8000001e (AMD ids)
 *     when the CPU reports them
 *   - leaf 0x40000100: khyve's signature "khyvekhyvekh"
 *
 * and prints one line with its package/core/thread.  Every failed check
 * prints a line with "BAD" in it.  A leaf the CPU does not report is
 * skipped with a note.  PASS when every CPU checked in with no failure and
 * the ids seen are exactly 0..N-1.
 *
 * Threads: all CPUs run check_cpu() (the APs one after another, but each
 * may overlap the next); shared state is atomics and the printf lock.
 */
#include "guest.h"

const char guest_name[] = "cpuid";

struct topo {
	uint64_t cpus, sockets, cores, threads, x2apic;
	unsigned int tbits, cbits, per_pkg;
};

static struct topo want;
static struct acpi_info ai;
static volatile uint32_t nfail, ndone;
static volatile uint32_t id_seen[GUEST_MAX_CPUS];

static unsigned int bits_for(uint64_t n)
{
	unsigned int b = 0;

	while (b < 32 && (1ULL << b) < n)
		b++;
	return b;
}

/* One check: print and count a mismatch. */
static unsigned int expect(uint32_t id, const char *what, uint64_t got,
			   uint64_t exp)
{
	if (got == exp)
		return 0;
	printf("cpuid: APIC id %u: BAD %s is 0x%lx, expected 0x%lx\n", id, what,
	       got, exp);
	return 1;
}

static unsigned int check_leaf1(uint32_t id)
{
	uint32_t a, b, c, d;
	unsigned int bad = 0;

	cpuid(1, 0, &a, &b, &c, &d);
	bad += expect(id, "leaf 1 EBX[31:24] (initial APIC id)", b >> 24,
		      id & 0xff);
	bad += expect(id, "leaf 1 EBX[23:16] (logical CPUs per package)",
		      (b >> 16) & 0xff,
		      want.per_pkg > 255 ? 255 : want.per_pkg);
	/* HTT says EBX[23:16] is valid; with one CPU per package either
	 * value is consistent (some hosts, e.g. PVM, show the host's bit). */
	if (want.per_pkg > 1)
		bad += expect(id, "leaf 1 EDX.HTT", (d >> 28) & 1, 1);
	else if ((d >> 28) & 1 && id == 0)
		printf("cpuid: note: leaf 1 EDX.HTT is set with one CPU per "
		       "package (harmless: EBX[23:16] is 1)\n");
	bad += expect(id, "leaf 1 ECX[31] (hypervisor)", c >> 31, 1);
	bad += expect(id, "leaf 1 ECX[21] (x2APIC)", (c >> 21) & 1,
		      want.x2apic);
	return bad;
}

static unsigned int check_leaf_b(uint32_t id, uint32_t max)
{
	uint32_t a, b, c, d;
	unsigned int bad = 0;

	if (max < 0xb) {
		printf("cpuid: APIC id %u: no leaf 0xb (max basic leaf "
		       "0x%x), skipped\n",
		       id, max);
		return 0;
	}
	cpuid(0xb, 0, &a, &b, &c, &d);
	bad += expect(id, "leaf 0xb.0 EAX (SMT shift)", a & 0x1f, want.tbits);
	bad += expect(id, "leaf 0xb.0 EBX (threads)", b & 0xffff, want.threads);
	bad += expect(id, "leaf 0xb.0 ECX (type SMT, level 0)", c & 0xffff,
		      0x100);
	bad += expect(id, "leaf 0xb.0 EDX (x2APIC id)", d, id);
	cpuid(0xb, 1, &a, &b, &c, &d);
	bad += expect(id, "leaf 0xb.1 EAX (core shift)", a & 0x1f,
		      want.tbits + want.cbits);
	bad += expect(id, "leaf 0xb.1 EBX (CPUs per package)", b & 0xffff,
		      want.per_pkg);
	bad += expect(id, "leaf 0xb.1 ECX (type core, level 1)", c & 0xffff,
		      0x201);
	bad += expect(id, "leaf 0xb.1 EDX (x2APIC id)", d, id);
	cpuid(0xb, 2, &a, &b, &c, &d);
	bad += expect(id, "leaf 0xb.2 ECX[15:8] (type invalid)",
		      (c >> 8) & 0xff, 0);
	bad += expect(id, "leaf 0xb.2 EBX", b & 0xffff, 0);
	return bad;
}

static unsigned int check_leaf4(uint32_t id, uint32_t max)
{
	uint32_t a, b, c, d, sub;
	unsigned int bad = 0;

	if (max < 4) {
		printf("cpuid: APIC id %u: no leaf 4, skipped\n", id);
		return 0;
	}
	for (sub = 0; sub < 16; sub++) {
		cpuid(4, sub, &a, &b, &c, &d);
		if ((a & 0x1f) == 0)
			break;
		bad += expect(id, "leaf 4 EAX[31:26] (cores per package - 1)",
			      a >> 26, (1u << want.cbits) - 1);
	}
	if (sub == 0 && id == 0)
		printf("cpuid: leaf 4 lists no cache levels (nothing to "
		       "check)\n");
	return bad;
}

static unsigned int check_ext(uint32_t id)
{
	uint32_t a, b, c, d, max;
	unsigned int bad = 0;

	cpuid(0x80000000, 0, &max, &b, &c, &d);
	if (max >= 0x80000008) {
		cpuid(0x80000008, 0, &a, &b, &c, &d);
		bad += expect(id, "leaf 0x80000008 ECX[15:12] (APIC id size)",
			      (c >> 12) & 0xf, want.tbits + want.cbits);
		bad += expect(id, "leaf 0x80000008 ECX[7:0] (NC)", c & 0xff,
			      (want.per_pkg - 1) & 0xff);
	}
	if (max >= 0x8000001e) {
		cpuid(0x8000001e, 0, &a, &b, &c, &d);
		bad += expect(id, "leaf 0x8000001e EAX (extended APIC id)", a,
			      id);
		bad += expect(id, "leaf 0x8000001e EBX[15:8] (threads - 1)",
			      (b >> 8) & 0xff, want.threads - 1);
		bad += expect(id, "leaf 0x8000001e EBX[7:0] (core id)",
			      b & 0xff, (id >> want.tbits) & 0xff);
		bad += expect(id, "leaf 0x8000001e ECX[7:0] (node id)",
			      c & 0xff,
			      (id >> (want.tbits + want.cbits)) & 0xff);
	}
	return bad;
}

static unsigned int check_khyve_leaf(uint32_t id)
{
	uint32_t a, sig[3];
	char s[13];

	cpuid(0x40000100, 0, &a, &sig[0], &sig[1], &sig[2]);
	memcpy(s, sig, 12);
	s[12] = '\0';
	if (a >= 0x40000100 && !memcmp(s, "khyvekhyvekh", 12))
		return 0;
	printf("cpuid: APIC id %u: BAD leaf 0x40000100 is 0x%x \"%s\", "
	       "expected \"khyvekhyvekh\"\n",
	       id, a, s);
	return 1;
}

/* The raw leaves the checks look at, for the log (BSP only). */
static void dump_leaves(void)
{
	static const uint32_t leaves[][2] = {
		{0, 0},		 {1, 0},	  {4, 0},
		{0xb, 0},	 {0xb, 1},	  {0xb, 2},
		{0x80000008, 0}, {0x8000001e, 0}, {0x40000000, 0},
		{0x40000100, 0},
	};
	uint32_t a, b, c, d;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(leaves); i++) {
		cpuid(leaves[i][0], leaves[i][1], &a, &b, &c, &d);
		printf("cpuid: leaf 0x%x.%u: eax 0x%08x ebx 0x%08x ecx 0x%08x "
		       "edx 0x%08x\n",
		       leaves[i][0], leaves[i][1], a, b, c, d);
	}
}

static void check_cpu(void)
{
	uint32_t id = lapic_current_id(), max, b, c, d;
	bool x2 = lapic_x2apic_mode();
	unsigned int bad = 0;

	if (id >= want.cpus || id >= GUEST_MAX_CPUS) {
		printf("cpuid: APIC id %u: BAD id, not below cpus=%lu\n", id,
		       want.cpus);
		bad++;
	} else if (atomic_xchg32(&id_seen[id], 1)) {
		printf("cpuid: APIC id %u: BAD id, seen on two CPUs\n", id);
		bad++;
	}
	bad += expect(id, "x2APIC mode", x2, want.x2apic);
	cpuid(0, 0, &max, &b, &c, &d);
	bad += check_leaf1(id);
	bad += check_leaf_b(id, max);
	bad += check_leaf4(id, max);
	bad += check_ext(id);
	bad += check_khyve_leaf(id);
	printf("cpuid: CPU with APIC id %u (%s): package %u core %u thread "
	       "%u: %s\n",
	       id, x2 ? "x2APIC" : "xAPIC", id >> (want.tbits + want.cbits),
	       (id >> want.tbits) & ((1u << want.cbits) - 1),
	       id & ((1u << want.tbits) - 1), bad ? "FAILED" : "ok");
	if (bad)
		atomic_fetch_add32(&nfail, bad);
	atomic_fetch_add32(&ndone, 1);
}

static void ap_check(uint32_t apic_id)
{
	(void)apic_id; /* meaningless in x2APIC mode: ask the APIC */
	check_cpu();
}

static uint64_t topo_key(const char *key, uint64_t def)
{
	uint64_t v;
	int err = cmdline_get_u64(key, &v);

	if (err == -GUEST_ENOENT)
		return def;
	if (err || v == 0 || v > GUEST_MAX_CPUS)
		guest_fail("bad %s= on the command line", key);
	return v;
}

static void parse_topology(void)
{
	uint64_t x2 = 0;
	int err;

	want.cpus = topo_key("cpus", 1);
	want.sockets = topo_key("sockets", want.cpus);
	want.cores = topo_key("cores", 1);
	want.threads = topo_key("threads", 1);
	err = cmdline_get_u64("x2apic", &x2);
	if ((err && err != -GUEST_ENOENT) || x2 > 1)
		guest_fail("bad x2apic= on the command line");
	want.x2apic = x2;
	if (want.sockets * want.cores * want.threads != want.cpus)
		guest_fail("command line: sockets*cores*threads != cpus");
	want.tbits = bits_for(want.threads);
	want.cbits = bits_for(want.cores);
	want.per_pkg = (unsigned int)(want.cores * want.threads);
	printf("cpuid: expecting %lu CPUs: %lu sockets x %lu cores x %lu "
	       "threads, %s\n",
	       want.cpus, want.sockets, want.cores, want.threads,
	       want.x2apic ? "x2APIC" : "xAPIC");
}

void guest_main(void)
{
	uint64_t t0;
	unsigned int i;
	int err, n;

	parse_topology();
	err = acpi_init(&ai, false);
	if (err || !ai.madt)
		guest_fail("no usable ACPI MADT (%d)", err);
	if (ai.ncpus != want.cpus)
		guest_fail("the MADT lists %u CPUs, expected %lu", ai.ncpus,
			   want.cpus);
	dump_leaves();
	check_cpu();
	n = smp_start_aps_any(&ai, ap_check);
	if (n < 0)
		guest_fail("starting the APs failed (%d)", n);
	t0 = rdtsc();
	while (ndone < (uint32_t)n + 1) {
		if (rdtsc() - t0 > 20000000000ULL)
			guest_fail("only %u of %d CPUs reported", ndone, n + 1);
		cpu_relax();
	}
	if ((uint64_t)n + 1 != want.cpus)
		guest_fail("%d CPUs running, expected %lu", n + 1, want.cpus);
	for (i = 0; i < want.cpus; i++)
		if (!id_seen[i])
			guest_fail("no CPU has APIC id %u", i);
	if (nfail)
		guest_fail("%u check(s) failed", nfail);
	printf("cpuid: all %lu CPUs agree with the topology\n", want.cpus);
	guest_pass();
}
