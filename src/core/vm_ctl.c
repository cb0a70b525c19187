/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The VM's control-socket commands, what khyvectl(8) talks to: destroy,
 * get-stats, get-all, get-reg, force-reset, force-poweroff, power-button
 * and suspend.  Handlers run on the event-loop thread; register reads ask
 * each vCPU thread for a snapshot (vcpu_get_regs(), bounded wait).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/bus.h"
#include "core/vm.h"
#include "ctl/ctl.h"
#include "hw/pm.h"
#include "kvm/hv.h"
#include "lib/log.h"
#include "vcpu/vcpu.h"

#define REGS_TIMEOUT_MS 1000

static int cmd_destroy(void *arg, const char *args, FILE *out)
{
	struct vm *vm = arg;

	(void)args;
	(void)out; /* bhyvectl --destroy prints nothing */
	vm_request_exit(vm, VM_EXIT_POWEROFF, "destroyed by khyvectl");
	return 0;
}

static int cmd_force_reset(void *arg, const char *args, FILE *out)
{
	(void)args;
	(void)out;
	vm_request_exit(arg, VM_EXIT_REBOOT, "force-reset");
	return 0;
}

static int cmd_force_poweroff(void *arg, const char *args, FILE *out)
{
	(void)args;
	(void)out;
	vm_request_exit(arg, VM_EXIT_POWEROFF, "force-poweroff");
	return 0;
}

static int cmd_power_button(void *arg, const char *args, FILE *out)
{
	struct vm *vm = arg;

	(void)args;
	if (!pm_power_button(vm->pm)) {
		fprintf(out, "the guest has not enabled ACPI power-button "
			     "events\n");
		return -EAGAIN;
	}
	fprintf(out, "power button pressed\n");
	return 0;
}

static int cmd_suspend(void *arg, const char *args, FILE *out)
{
	(void)arg;
	(void)args;
	fprintf(out, "suspend: save/restore is not supported yet\n");
	return -ENOTSUP;
}

static void print_stat(FILE *out, const char *name, uint64_t v)
{
	fprintf(out, "%-40s %llu\n", name, (unsigned long long)v);
}

static int cmd_get_stats(void *arg, const char *args, FILE *out)
{
	struct vm *vm = arg;
	struct vcpu_stats st;
	struct bus_stats bs;
	char name[64];
	unsigned i, r;
	uint64_t total;

	(void)args;
	for (i = 0; i < vm->ncpus; i++) {
		vcpu_get_stats(vm->vcpus[i], &st);
		fprintf(out, "vcpu%u\n", i);
		for (total = 0, r = 0; r < HV_EXIT_NR; r++)
			total += st.exits[r];
		print_stat(out, "exits total", total);
		for (r = 0; r < HV_EXIT_NR; r++) {
			snprintf(name, sizeof(name), "exits %s",
				 hv_exit_name((enum hv_exit_reason)r));
			print_stat(out, name, st.exits[r]);
		}
		print_stat(out, "string I/O exits", st.string_io);
		print_stat(out, "unclaimed I/O port accesses",
			   st.pio_unclaimed);
		print_stat(out, "unclaimed MMIO accesses", st.mmio_unclaimed);
	}
	fprintf(out, "vm\n");
	bus_get_stats(vm->pio, &bs);
	print_stat(out, "pio dispatched", bs.dispatched);
	print_stat(out, "pio unclaimed", bs.unclaimed);
	fprintf(out, "%-40s 0x%llx\n", "pio last unclaimed port",
		(unsigned long long)bs.last_unclaimed);
	bus_get_stats(vm->mmio, &bs);
	print_stat(out, "mmio dispatched", bs.dispatched);
	print_stat(out, "mmio unclaimed", bs.unclaimed);
	fprintf(out, "%-40s 0x%llx\n", "mmio last unclaimed address",
		(unsigned long long)bs.last_unclaimed);
	return 0;
}

static void print_seg(FILE *out, const char *n, const struct hv_seg *s)
{
	fprintf(out,
		"%-6s sel=0x%04x base=0x%016llx limit=0x%08x type=%u "
		"p=%u dpl=%u db=%u s=%u l=%u g=%u\n",
		n, s->sel, (unsigned long long)s->base, s->limit, s->type,
		s->present, s->dpl, s->db, s->s, s->l, s->g);
}

static void print_regs(FILE *out, unsigned id, const struct hv_regs *r)
{
	static const char *const gpr[] = {"rax", "rbx", "rcx",	 "rdx", "rsi",
					  "rdi", "rsp", "rbp",	 "r8",	"r9",
					  "r10", "r11", "r12",	 "r13", "r14",
					  "r15", "rip", "rflags"};
	const uint64_t *v = &r->rax;
	unsigned i;

	fprintf(out, "vcpu%u\n", id);
	for (i = 0; i < sizeof(gpr) / sizeof(gpr[0]); i++)
		fprintf(out, "%-6s 0x%016llx\n", gpr[i],
			(unsigned long long)v[i]);
	fprintf(out,
		"%-6s 0x%016llx\n%-6s 0x%016llx\n%-6s 0x%016llx\n"
		"%-6s 0x%016llx\n%-6s 0x%016llx\n%-6s 0x%016llx\n",
		"cr0", (unsigned long long)r->cr0, "cr2",
		(unsigned long long)r->cr2, "cr3", (unsigned long long)r->cr3,
		"cr4", (unsigned long long)r->cr4, "efer",
		(unsigned long long)r->efer, "dr7", (unsigned long long)r->dr7);
	print_seg(out, "cs", &r->cs);
	print_seg(out, "ds", &r->ds);
	print_seg(out, "es", &r->es);
	print_seg(out, "fs", &r->fs);
	print_seg(out, "gs", &r->gs);
	print_seg(out, "ss", &r->ss);
	print_seg(out, "tr", &r->tr);
	print_seg(out, "ldtr", &r->ldt);
	fprintf(out, "%-6s base=0x%016llx limit=0x%04x\n", "gdtr",
		(unsigned long long)r->gdt_base, r->gdt_limit);
	fprintf(out, "%-6s base=0x%016llx limit=0x%04x\n", "idtr",
		(unsigned long long)r->idt_base, r->idt_limit);
}

/* Parse an optional vCPU number; -1 when absent. */
static int parse_cpu(const struct vm *vm, const char *s, int *cpu,
		     const char **rest, FILE *out)
{
	char *end;
	long v;

	while (*s == ' ')
		s++;
	if (!*s) {
		*cpu = -1;
		*rest = s;
		return 0;
	}
	v = strtol(s, &end, 10);
	if (end == s || v < 0 || v >= (long)vm->ncpus ||
	    (*end && *end != ' ')) {
		fprintf(out, "invalid vcpu '%s' (the VM has %u)\n", s,
			vm->ncpus);
		return -EINVAL;
	}
	*cpu = (int)v;
	*rest = end;
	return 0;
}

static int cmd_get_all(void *arg, const char *args, FILE *out)
{
	struct vm *vm = arg;
	struct hv_regs r;
	const char *rest;
	unsigned i;
	int cpu, rc;

	if ((rc = parse_cpu(vm, args, &cpu, &rest, out)))
		return rc;
	for (i = 0; i < vm->ncpus; i++) {
		if (cpu >= 0 && (unsigned)cpu != i)
			continue;
		rc = vcpu_get_regs(vm->vcpus[i], &r, REGS_TIMEOUT_MS);
		if (rc) {
			fprintf(out, "vcpu%u: cannot read registers: %s\n", i,
				strerror(-rc));
			return rc;
		}
		print_regs(out, i, &r);
	}
	return 0;
}

static int reg_value(const struct hv_regs *r, const char *name, uint64_t *v)
{
	static const struct {
		const char *name;
		size_t off;
	} regs[] = {
#define R(n) {#n, offsetof(struct hv_regs, n)}
		R(rax), R(rbx), R(rcx), R(rdx), R(rsi),	 R(rdi),
		R(rsp), R(rbp), R(r8),	R(r9),	R(r10),	 R(r11),
		R(r12), R(r13), R(r14), R(r15), R(rip),	 R(rflags),
		R(cr0), R(cr2), R(cr3), R(cr4), R(efer), R(dr0),
		R(dr1), R(dr2), R(dr3), R(dr6), R(dr7),
#undef R
	};
	static const struct {
		const char *name;
		size_t off;
	} segs[] = {
#define S(n, f) {#n, offsetof(struct hv_regs, f)}
		S(cs, cs), S(ds, ds), S(es, es), S(fs, fs),
		S(gs, gs), S(ss, ss), S(tr, tr), S(ldtr, ldt),
#undef S
	};
	const struct hv_seg *seg;
	unsigned i;

	for (i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		if (strcmp(regs[i].name, name) == 0) {
			memcpy(v, (const char *)r + regs[i].off, sizeof(*v));
			return 0;
		}
	}
	for (i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
		if (strcmp(segs[i].name, name) == 0) {
			seg = (const struct hv_seg *)((const char *)r +
						      segs[i].off);
			*v = seg->sel;
			return 0;
		}
	}
	return -EINVAL;
}

static int cmd_get_reg(void *arg, const char *args, FILE *out)
{
	struct vm *vm = arg;
	struct hv_regs r;
	const char *rest;
	uint64_t v;
	int cpu, rc;

	if ((rc = parse_cpu(vm, args, &cpu, &rest, out)))
		return rc;
	while (*rest == ' ')
		rest++;
	if (cpu < 0)
		cpu = 0;
	rc = vcpu_get_regs(vm->vcpus[cpu], &r, REGS_TIMEOUT_MS);
	if (rc) {
		fprintf(out, "vcpu%d: cannot read registers: %s\n", cpu,
			strerror(-rc));
		return rc;
	}
	if (reg_value(&r, rest, &v)) {
		fprintf(out, "unknown register '%s'\n", rest);
		return -EINVAL;
	}
	fprintf(out, "%s[%d]\t0x%016llx\n", rest, cpu, (unsigned long long)v);
	return 0;
}

int vm_ctl_register(struct vm *vm)
{
	static const struct {
		const char *name;
		ctl_cmd_fn fn;
	} cmds[] = {
		{"destroy", cmd_destroy},
		{"get-stats", cmd_get_stats},
		{"get-all", cmd_get_all},
		{"get-reg", cmd_get_reg},
		{"force-reset", cmd_force_reset},
		{"force-poweroff", cmd_force_poweroff},
		{"power-button", cmd_power_button},
		{"suspend", cmd_suspend},
	};
	unsigned i;
	int rc;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		rc = ctl_register(vm->ctl, cmds[i].name, cmds[i].fn, vm);
		if (rc)
			return rc;
	}
	return 0;
}
