/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The VM object and its start-up sequence (see vm.h).  Read top to bottom,
 * vm_create() is the checklist bhyve's main() is: topology and memory from
 * the config, the hypervisor VM, guest RAM, the buses, the always-present
 * platform devices (RTC, PM block, i8042, POST port), the PCI root and the
 * configured PCI/LPC devices, the ACPI and MP tables, the kernel, the
 * vCPUs, the control socket and the signals.
 *
 * Threads: the main thread runs the event loop (control socket, console
 * input, signals, the halt-detection timer).  vCPU threads call
 * vm_request_exit() and vm_vcpu_halted().  'exiting' is an atomic flag; the
 * first vm_request_exit() stores the status and stops the loop.
 */
#include "core/vm.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "bus/bus.h"
#include "core/layout.h"
#include "ctl/ctl.h"
#include "event/event.h"
#include "firmware/e820.h"
#include "firmware/fw.h"
#include "hw/atkbdc.h"
#include "hw/pctestdev.h"
#include "hw/pm.h"
#include "hw/post.h"
#include "hw/rtc.h"
#include "hw/uart.h"
#include "kvm/hv.h"
#include "lib/log.h"
#include "pci/pci.h"
#include "vcpu/vcpu.h"

#define MAX_VCPUS 255
#define HALT_POLL_NS (50 * 1000 * 1000ULL)

static int cfg_u(struct cfg_node *cfg, const char *key, uint64_t def,
		 uint64_t max, unsigned *out)
{
	uint64_t v;
	int rc = cfg_get_u64(cfg, key, def, 0, max, &v);

	if (rc == 0)
		*out = (unsigned)v;
	return rc;
}

/* cpus/sockets/cores/threads with bhyve's rules (calc_topology). */
static int read_topology(struct cfg_node *cfg, struct hv_vm_opts *o)
{
	unsigned cpus, s, c, t;
	int rc;

	if ((rc = cfg_u(cfg, "cores", 1, MAX_VCPUS, &c)) ||
	    (rc = cfg_u(cfg, "threads", 1, MAX_VCPUS, &t)) ||
	    (rc = cfg_u(cfg, "cpus", 0, MAX_VCPUS, &cpus)))
		return rc;
	if (c == 0 || t == 0)
		goto bad;
	if (cfg_get(cfg, "sockets")) {
		if ((rc = cfg_u(cfg, "sockets", 1, MAX_VCPUS, &s)))
			return rc;
	} else {
		s = cpus ? cpus / (c * t) : 1;
	}
	if (cpus == 0)
		cpus = s * c * t;
	if (s == 0 || cpus != s * c * t || cpus > MAX_VCPUS)
		goto bad;
	o->ncpus = cpus;
	o->sockets = s;
	o->cores = c;
	o->threads = t;
	return 0;
bad:
	log_err("invalid cpu topology: cpus=%s sockets=%s cores=%s threads=%s "
		"(cpus must equal sockets*cores*threads, at most %u)",
		cfg_get(cfg, "cpus") ?: "-", cfg_get(cfg, "sockets") ?: "-",
		cfg_get(cfg, "cores") ?: "-", cfg_get(cfg, "threads") ?: "-",
		MAX_VCPUS);
	return -EINVAL;
}

static int read_options(struct vm *vm, struct hv_vm_opts *o)
{
	struct cfg_node *cfg = vm->cfg;
	bool b;
	int rc;

	memset(o, 0, sizeof(*o));
	if ((rc = read_topology(cfg, o)))
		return rc;
	if ((rc = cfg_get_bool(cfg, "x86.vmexit_on_hlt", false,
			       &o->exit_on_hlt)) ||
	    (rc = cfg_get_bool(cfg, "x86.vmexit_on_pause", false,
			       &o->exit_on_pause)) ||
	    (rc = cfg_get_bool(cfg, "x86.x2apic", false, &o->x2apic)) ||
	    (rc = cfg_get_bool(cfg, "x86.strictmsr", true, &o->strict_msr)) ||
	    (rc = cfg_get_bool(cfg, "x86.strictio", false, &vm->strictio)))
		return rc;
	if (cfg_get(cfg, "restore")) {
		log_err("restore: restoring a snapshot (-r) is not supported "
			"yet");
		return -ENOTSUP;
	}
	if (cfg_get(cfg, "gdb.port") && strcmp(cfg_get(cfg, "gdb.port"), "0"))
		log_warn("gdb.port: the debug server (-G) is not implemented "
			 "yet; ignored");
	if ((rc = cfg_get_bool(cfg, "acpi_tables", true, &b)))
		return rc;
	if (!b)
		log_warn("acpi_tables=false: khyve always builds ACPI tables "
			 "for direct-boot guests");
	vm->halt_detect = o->exit_on_hlt;
	vm->ncpus = o->ncpus;
	return 0;
}

static int vm_irq_set(void *opaque, unsigned gsi, int level)
{
	struct vm *vm = opaque;

	return hv_vm_set_irq(vm->hv, gsi, level);
}

static int vm_irq_msi(void *opaque, uint64_t addr, uint32_t data)
{
	struct vm *vm = opaque;

	return hv_vm_msi(vm->hv, addr, data);
}

static int vm_msi_bind(void *opaque, int fd, uint64_t addr, uint32_t data,
		       int *handle)
{
	struct vm *vm = opaque;
	int gsi, rc;

	if (*handle >= 0)
		return hv_vm_msi_route_set(vm->hv, *handle, addr, data);
	gsi = hv_vm_msi_route_alloc(vm->hv, addr, data);
	if (gsi < 0)
		return gsi;
	rc = hv_vm_irqfd(vm->hv, fd, (unsigned)gsi, false);
	if (rc) {
		hv_vm_msi_route_free(vm->hv, gsi);
		return rc;
	}
	*handle = gsi;
	return 0;
}

static void vm_msi_unbind(void *opaque, int fd, int handle)
{
	struct vm *vm = opaque;

	if (handle < 0)
		return;
	(void)hv_vm_irqfd(vm->hv, fd, (unsigned)handle, true);
	(void)hv_vm_msi_route_free(vm->hv, handle);
}

static int vm_ioeventfd(void *opaque, int fd, uint64_t addr, unsigned len,
			bool pio, bool has_match, uint64_t match, bool deassign)
{
	struct vm *vm = opaque;

	return hv_vm_ioeventfd(vm->hv, fd, addr, len, pio, has_match, match,
			       deassign);
}

static void vm_ctx_exit(void *opaque, int status, const char *why)
{
	vm_request_exit(opaque, status, why);
}

bool vm_exiting(const struct vm *vm)
{
	return __atomic_load_n(&vm->exiting, __ATOMIC_ACQUIRE);
}

void vm_request_exit(struct vm *vm, int status, const char *why)
{
	bool expected = false;

	if (!__atomic_compare_exchange_n(&vm->exiting, &expected, true, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	vm->exit_status = status;
	if (why)
		log_debug("vm %s: exit %d (%s)", vm->name, status, why);
	event_loop_stop(vm->ev, status);
}

void vm_vcpu_halted(struct vm *vm)
{
	unsigned i;

	for (i = 0; i < vm->ncpus; i++)
		if (!vcpu_is_halted(vm->vcpus[i]))
			return;
	vm_request_exit(vm, VM_EXIT_HALT,
			"every vCPU halted with interrupts disabled");
}

static int map_memory(struct vm *vm)
{
	struct cfg_node *cfg = vm->cfg;
	uint64_t size;
	bool wired, in_core;
	unsigned i;
	int rc;

	if ((rc = cfg_get_size(cfg, "memory.size", 256 * MIB, MIB, &size)) ||
	    (rc = cfg_get_bool(cfg, "memory.wired", false, &wired)) ||
	    (rc = cfg_get_bool(cfg, "memory.guest_in_core", false, &in_core)))
		return rc;
	size = (size + 2 * MIB - 1) & ~(2 * MIB - 1);
	if (size < 2 * MIB || size > 4096 * GIB) {
		log_err("memory.size: %s is out of range (2M to 4T)",
			cfg_get(cfg, "memory.size"));
		return -EINVAL;
	}
	rc = gmem_alloc(&vm->mem, size, wired, in_core);
	if (rc) {
		log_errno(LOG_ERR, -rc, "memory.size: cannot allocate %llu MiB",
			  (unsigned long long)(size / MIB));
		return rc;
	}
	for (i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *r = &vm->mem.region[i];

		rc = hv_vm_map(vm->hv, r->gpa, r->size, r->host, false);
		if (rc) {
			log_errno(LOG_ERR, -rc, "cannot map guest memory");
			return rc;
		}
	}
	return 0;
}

static void find_lpc(void *arg, struct pci_dev *pd);

/* bhyve creates LPC devices only with the bridge; say so when they would
 * be silently missing. */
static void warn_orphan_lpc(struct vm *vm)
{
	struct cfg_node *lpc = cfg_find(vm->cfg, "lpc");
	uint8_t slot = 0;

	pci_foreach(vm->pci, find_lpc, &slot);
	if (!slot && lpc && cfg_first_child(lpc))
		log_warn("lpc: LPC devices (-l) are configured but there is "
			 "no LPC bridge (-s 31,lpc); they are not created");
}

/* The 64-bit PCI window: the first 1 GiB boundary above high RAM. */
static uint64_t mmio64_base(const struct vm *vm)
{
	return (HIGHMEM_BASE + vm->mem.highmem + GIB - 1) & ~(GIB - 1);
}

static int create_platform(struct vm *vm)
{
	bool localtime;
	int rc;

	if ((rc = cfg_get_bool(vm->cfg, "rtc.use_localtime", true, &localtime)))
		return rc;
	if ((rc = rtc_create(&vm->ctx, localtime, vm->mem.lowmem,
			     vm->mem.highmem, &vm->rtc)) ||
	    (rc = pm_create(&vm->ctx, &vm->pm)) ||
	    (rc = atkbdc_create(&vm->ctx, &vm->kbd)) ||
	    (rc = post_create(&vm->ctx)))
		return rc;
	if ((rc = pci_root_new(&vm->ctx, &vm->pci)))
		return rc;
	pci_set_windows(vm->pci, PCI_IO_BASE, PCI_IO_END - 1, PCI_MMIO32_BASE,
			PCI_MMIO32_END - 1, mmio64_base(vm),
			mmio64_base(vm) + PCI_MMIO64_SIZE - 1);
	if ((rc = pci_create_devices(vm->pci, vm->cfg)))
		return rc;
	warn_orphan_lpc(vm);
	return pci_assign_bars(vm->pci);
}

/* The slot of the LPC bridge (0: none; slot 0 is the host bridge's). */
static void find_lpc(void *arg, struct pci_dev *pd)
{
	if (strcmp(pd->model->name, "lpc") == 0)
		*(uint8_t *)arg = pd->slot;
}

/* The INTx routes of one bus as firmware-table entries. */
static unsigned bus_intx(struct vm *vm, unsigned bus, struct fw_pci_intx *out)
{
	uint8_t slot[FW_MAX_INTX], pin[FW_MAX_INTX], gsi[FW_MAX_INTX];
	unsigned i,
		n = pci_intx_routes(vm->pci, bus, slot, pin, gsi, FW_MAX_INTX);

	for (i = 0; i < n; i++)
		out[i] = (struct fw_pci_intx){slot[i], pin[i], gsi[i]};
	return n;
}

/* Bus 0 is PC00; every other populated bus becomes a root bridge of its
 * own, as bhyve describes them.  Arrays are sized by the caller. */
static void describe_pci(struct vm *vm, struct fw_platform *p,
			 struct fw_pci_intx (*intx)[FW_MAX_INTX],
			 struct fw_pci_root *roots)
{
	uint8_t buses[PCI_MAX_BUSES];
	struct pci_bus_windows w;
	unsigned i, n = pci_buses(vm->pci, buses, PCI_MAX_BUSES);

	p->pci = true;
	p->ecam_base = PCI_ECAM_BASE;
	p->bus_start = 0;
	p->bus_end = 255;
	p->pci_io_base = PCI_IO_BASE;
	p->pci_io_end = PCI_IO_END - 1;
	p->mmio32_base = PCI_MMIO32_BASE;
	p->mmio32_end = PCI_MMIO32_END - 1;
	p->mmio64_base = mmio64_base(vm);
	p->mmio64_end = p->mmio64_base + PCI_MMIO64_SIZE - 1;
	p->intx = intx[0];
	p->nintx = bus_intx(vm, 0, intx[0]);
	for (i = 0; i < n; i++) {
		struct fw_pci_root *r;

		if (buses[i] == 0) {
			if (n > 1 && pci_bus_windows(vm->pci, 0, &w)) {
				p->pci_io_base = (uint16_t)w.io_base;
				p->pci_io_end = (uint16_t)w.io_end;
				p->mmio32_base = w.mem32_base;
				p->mmio32_end = w.mem32_end;
				p->mmio64_base = w.mem64_base;
				p->mmio64_end = w.mem64_end;
			}
			continue;
		}
		if (p->nroots == 0)
			p->bus_end = (uint8_t)(buses[i] - 1);
		r = &roots[p->nroots];
		pci_bus_windows(vm->pci, buses[i], &w);
		*r = (struct fw_pci_root){
			.bus = buses[i],
			.io_base = (uint16_t)w.io_base,
			.io_end = (uint16_t)w.io_end,
			.mmio32_base = w.mem32_base,
			.mmio32_end = w.mem32_end,
			.mmio64_base = w.mem64_base,
			.mmio64_end = w.mem64_end,
			.intx = intx[p->nroots + 1],
		};
		r->nintx = bus_intx(vm, buses[i], intx[p->nroots + 1]);
		p->nroots++;
	}
	p->roots = roots;
}

static int build_tables(struct vm *vm, uint64_t *rsdp)
{
	struct fw_pci_intx(*intx)[FW_MAX_INTX];
	struct fw_pci_root *roots;
	struct fw_uart uarts[4];
	uint16_t ports[4];
	uint8_t irqs[4];
	struct fw_platform p;
	uint8_t lpc_slot = 0;
	int i, n = 0, rc;

	intx = calloc(PCI_MAX_BUSES, sizeof(*intx));
	roots = calloc(PCI_MAX_BUSES, sizeof(*roots));
	if (!intx || !roots) {
		rc = -ENOMEM;
		goto out;
	}
	memset(&p, 0, sizeof(p));
	p.ncpus = vm->ncpus;
	(void)cfg_get_bool(vm->cfg, "x86.x2apic", false, &p.x2apic);
	(void)cfg_get_bool(vm->cfg, "x86.mptable", true, &p.mptable);
	p.mem = &vm->mem;
	describe_pci(vm, &p, intx, roots);
	pci_foreach(vm->pci, find_lpc, &lpc_slot);
	p.lpc_slot = lpc_slot;
	if (lpc_slot) {
		n = uart_lpc_ports(cfg_find(vm->cfg, "lpc"), ports, irqs, 4);
		for (i = 0; i < n; i++)
			uarts[i] = (struct fw_uart){.port = ports[i],
						    .irq = irqs[i],
						    .uid = (uint8_t)(i + 1)};
	}
	p.uarts = uarts;
	p.nuarts = n > 0 ? (unsigned)n : 0;
	rc = fw_build_tables(&vm->mem, &p, rsdp);
out:
	free(intx);
	free(roots);
	return rc;
}

static int load_kernel(struct vm *vm, uint64_t rsdp, struct hv_regs *regs)
{
	struct e820_entry map[E820_MAX];
	struct boot_req req;
	struct boot_info info;
	int n;

	memset(&req, 0, sizeof(req));
	req.kernel = cfg_get(vm->cfg, "boot.kernel");
	if (!req.kernel) {
		log_err("no boot source: set -o boot.kernel=FILE (firmware "
			"boot with -l bootrom is not supported yet)");
		return -EINVAL;
	}
	req.initrd = cfg_get(vm->cfg, "boot.initrd");
	req.cmdline = cfg_get(vm->cfg, "boot.cmdline");
	req.mem = &vm->mem;
	n = e820_build(&vm->mem, map, E820_MAX);
	if (n < 0)
		return n;
	req.e820 = map;
	req.ne820 = (unsigned)n;
	req.rsdp = rsdp;
	memset(regs, 0, sizeof(*regs));
	return boot_load(&req, regs, &info);
}

static int create_vcpus(struct vm *vm, const struct hv_regs *bsp)
{
	unsigned i;
	int rc;

	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (i = 0; i < vm->ncpus; i++) {
		rc = vcpu_create(vm, i, &vm->vcpus[i]);
		if (rc)
			return rc;
	}
	rc = vcpu_set_regs(vm->vcpus[0], bsp);
	if (rc)
		log_errno(LOG_ERR, -rc, "vcpu0: cannot set boot registers");
	return rc;
}

static void on_sigterm(void *arg, uint32_t events)
{
	struct vm *vm = arg;

	(void)events;
	if (!pm_power_button(vm->pm))
		log_info("SIGTERM: ACPI power button pressed, but the guest "
			 "has not enabled ACPI power-button events");
}

static int setup_signals(struct vm *vm)
{
	int rc = event_add_signal(vm->ev, SIGTERM, on_sigterm, vm, NULL);

	/* vCPU threads and devices must not see SIGPIPE from a console
	 * peer that went away. */
	signal(SIGPIPE, SIG_IGN);
	return rc;
}

int vm_create(struct cfg_node *cfg, struct vm **out)
{
	struct hv_vm_opts opts;
	struct hv_regs bsp;
	uint64_t rsdp = 0;
	const char *rundir;
	struct vm *vm;
	int rc;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->cfg = cfg;
	vm->name = cfg_get(cfg, "name");
	if (!vm->name) {
		log_err("no VM name given");
		rc = -EINVAL;
		goto fail;
	}
	if ((rc = read_options(vm, &opts)))
		goto fail;
	if ((rc = event_loop_new(&vm->ev)))
		goto fail;
	rundir = cfg_get(cfg, "rundir");
	if ((rc = ctl_open(vm->ev, rundir ? rundir : ctl_default_rundir(),
			   vm->name, &vm->ctl)))
		goto fail;
	if ((rc = hv_vm_create(&opts, &vm->hv)))
		goto fail;
	if ((rc = map_memory(vm)))
		goto fail;
	if ((rc = bus_new(&vm->pio, "pio")) ||
	    (rc = bus_new(&vm->mmio, "mmio")))
		goto fail;
	vm->ctx = (struct devctx){
		.pio = vm->pio,
		.mmio = vm->mmio,
		.mem = &vm->mem,
		.irq = {.set_irq = vm_irq_set,
			.msi = vm_irq_msi,
			.msi_bind = vm_msi_bind,
			.msi_unbind = vm_msi_unbind,
			.opaque = vm},
		.ioeventfd = vm_ioeventfd,
		.ev = vm->ev,
		.root = cfg,
		.exit = vm_ctx_exit,
		.opaque = vm,
		.vm_name = vm->name,
	};
	if ((rc = setup_signals(vm)))
		goto fail;
	if ((rc = create_platform(vm)))
		goto fail;
	if ((rc = build_tables(vm, &rsdp))) {
		log_errno(LOG_ERR, -rc, "cannot build the ACPI/MP tables");
		goto fail;
	}
	if ((rc = load_kernel(vm, rsdp, &bsp)))
		goto fail;
	if ((rc = create_vcpus(vm, &bsp)))
		goto fail;
	if ((rc = vm_ctl_register(vm)))
		goto fail;
	*out = vm;
	return 0;
fail:
	vm_destroy(vm);
	return rc;
}

static void on_halt_timer(void *arg, uint32_t events)
{
	struct vm *vm = arg;
	unsigned i;

	(void)events;
	for (i = 0; i < vm->ncpus; i++)
		vcpu_poll_halt(vm->vcpus[i]);
}

int vm_run(struct vm *vm)
{
	char key[32];
	unsigned i;
	int rc, status;

	if (vm->halt_detect &&
	    (rc = event_add_timer(vm->ev, HALT_POLL_NS, on_halt_timer, vm,
				  NULL)) < 0) {
		log_errno(LOG_ERR, -rc, "cannot create the halt timer");
		return VM_EXIT_ERROR;
	}
	for (i = 0; i < vm->ncpus; i++) {
		snprintf(key, sizeof(key), "vcpu.%u.cpuset", i);
		rc = vcpu_start(vm->vcpus[i], cfg_get(vm->cfg, key));
		if (rc) {
			vm_request_exit(vm, VM_EXIT_ERROR, "vCPU start failed");
			break;
		}
	}
	status = event_loop_run(vm->ev);
	if (!vm_exiting(vm))
		vm_request_exit(vm, status, NULL);
	for (i = 0; i < vm->ncpus; i++)
		vcpu_stop(vm->vcpus[i]);
	return vm->exit_status;
}

void vm_destroy(struct vm *vm)
{
	unsigned i;

	if (!vm)
		return;
	if (vm->vcpus) {
		for (i = 0; i < vm->ncpus; i++) {
			vcpu_stop(vm->vcpus[i]);
			vcpu_destroy(vm->vcpus[i]);
		}
		free(vm->vcpus);
	}
	if (vm->ctl)
		ctl_close(vm->ctl);
	/* Devices go while the loop is stopped, before buses and loop. */
	uart_lpc_release();
	pctestdev_lpc_release();
	rtc_destroy(vm->rtc);
	pm_destroy(vm->pm);
	atkbdc_destroy(vm->kbd);
	pci_root_free(vm->pci);
	hv_vm_destroy(vm->hv);
	gmem_free(&vm->mem);
	bus_free(vm->pio);
	bus_free(vm->mmio);
	if (vm->ev)
		event_loop_free(vm->ev);
	free(vm);
}
