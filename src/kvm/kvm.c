/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The Linux KVM implementation of the hypervisor seam (hv.h).  This is the
 * only file in khyve that issues KVM ioctls.
 *
 * What it sets up per VM: the in-kernel PIC, IOAPIC and LAPICs
 * (KVM_CREATE_IRQCHIP) and PIT (KVM_CREATE_PIT2), the TSS and identity-map
 * pages VMX needs below 4 GiB, exit controls for HLT/PAUSE (bhyve's -H/-P),
 * unknown-MSR exits to userspace so x86.strictmsr can be honoured per VM
 * (bhyve's -w), and per vCPU a CPUID table derived from
 * KVM_GET_SUPPORTED_CPUID with a consistent topology (leaves 1, 4, 0xb,
 * 0x1f, 0x80000008, 0x8000001e) and khyve's hypervisor leaf.
 *
 * Threads: hv_vm_* may be called from any thread.  A vCPU's ioctls are made
 * by its own thread only; hv_vcpu_kick() is the exception: it sets
 * immediate_exit in the shared kvm_run page and signals the vCPU thread
 * with SIGUSR2 (an empty handler: the signal only interrupts KVM_RUN).
 */
#include "kvm/hv.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/layout.h"
#include "lib/log.h"

#define KICK_SIGNAL SIGUSR2
#define CPUID_MAX_ENTRIES 256
#define KHYVE_CPUID_LEAF 0x40000100u

#define IRQCHIP_PINS 24
#define MAX_MSI_ROUTES 1024

struct msi_route {
	bool used;
	uint64_t addr;
	uint32_t data;
};

struct hv_vm {
	int kvm_fd;
	int vm_fd;
	int run_size;
	unsigned next_slot;
	struct hv_vm_opts opts;
	bool user_msr;		    /* unknown MSRs exit to userspace */
	struct kvm_cpuid2 *cpuid;   /* supported, filtered per vCPU */
	pthread_mutex_t route_lock; /* msi[] and the kernel routing table */
	struct msi_route msi[MAX_MSI_ROUTES]; /* GSI = IRQCHIP_PINS + i */
};

struct hv_vcpu {
	struct hv_vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_set;
};

static void kick_handler(int sig)
{
	(void)sig;
}

static int install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}

static int vm_ioctl(struct hv_vm *vm, unsigned long req, void *arg)
{
	int rc;

	do
		rc = ioctl(vm->vm_fd, req, arg);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : rc;
}

static int check_ext(struct hv_vm *vm, long cap)
{
	int rc = ioctl(vm->vm_fd >= 0 ? vm->vm_fd : vm->kvm_fd,
		       KVM_CHECK_EXTENSION, cap);

	return rc < 0 ? 0 : rc;
}

static int enable_cap(struct hv_vm *vm, uint32_t cap, uint64_t arg0)
{
	struct kvm_enable_cap ec = {.cap = cap};

	ec.args[0] = arg0;
	return vm_ioctl(vm, KVM_ENABLE_CAP, &ec);
}

static int set_exit_controls(struct hv_vm *vm)
{
	int supported = check_ext(vm, KVM_CAP_X86_DISABLE_EXITS);
	uint64_t flags = 0;

	/* bhyve without -H lets the guest execute HLT natively; without -P
	 * PAUSE does not exit.  Ask KVM for the same when it can. */
	if (!vm->opts.exit_on_hlt)
		flags |= KVM_X86_DISABLE_EXITS_HLT;
	if (!vm->opts.exit_on_pause)
		flags |= KVM_X86_DISABLE_EXITS_PAUSE;
	flags &= (uint64_t)supported;
	if (!flags)
		return 0;
	return enable_cap(vm, KVM_CAP_X86_DISABLE_EXITS, flags);
}

static int get_supported_cpuid(struct hv_vm *vm)
{
	struct kvm_cpuid2 *c;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		int rc = -errno;

		free(c);
		return rc;
	}
	vm->cpuid = c;
	return 0;
}

int hv_vm_create(const struct hv_vm_opts *opts, struct hv_vm **out)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	struct hv_vm *vm;
	int rc;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->opts = *opts;
	vm->vm_fd = -1;
	pthread_mutex_init(&vm->route_lock, NULL);
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc,
			  "cannot open /dev/kvm (is KVM enabled "
			  "and are you in the kvm group?)");
		free(vm);
		return rc == -ENOENT ? -ENODEV : rc;
	}
	rc = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (rc != KVM_API_VERSION) {
		log_err("/dev/kvm: unsupported KVM API version %d", rc);
		rc = -ENODEV;
		goto fail;
	}
	if (!check_ext(vm, KVM_CAP_IRQCHIP) || !check_ext(vm, KVM_CAP_PIT2) ||
	    !check_ext(vm, KVM_CAP_IMMEDIATE_EXIT)) {
		log_err("/dev/kvm: the in-kernel irqchip, PIT or "
			"immediate_exit is missing");
		rc = -ENODEV;
		goto fail;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0 || vm->run_size <= 0) {
		rc = -errno;
		log_errno(LOG_ERR, -rc, "/dev/kvm: cannot create a VM");
		goto fail;
	}
	if ((rc = vm_ioctl(vm, KVM_SET_TSS_ADDR, (void *)KVM_TSS_ADDR)) < 0 ||
	    (rc = vm_ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap)) < 0 ||
	    (rc = vm_ioctl(vm, KVM_CREATE_IRQCHIP, NULL)) < 0 ||
	    (rc = vm_ioctl(vm, KVM_CREATE_PIT2, &pit)) < 0) {
		log_errno(LOG_ERR, -rc, "/dev/kvm: platform set-up failed");
		goto fail;
	}
	if ((rc = set_exit_controls(vm)) < 0) {
		log_errno(LOG_ERR, -rc, "/dev/kvm: cannot set HLT/PAUSE exits");
		goto fail;
	}
	if (check_ext(vm, KVM_CAP_X86_USER_SPACE_MSR) &&
	    enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR,
		       KVM_MSR_EXIT_REASON_UNKNOWN) == 0)
		vm->user_msr = true;
	if ((rc = get_supported_cpuid(vm)) < 0) {
		log_errno(LOG_ERR, -rc, "/dev/kvm: KVM_GET_SUPPORTED_CPUID");
		goto fail;
	}
	if ((rc = install_kick_handler()) < 0)
		goto fail;
	*out = vm;
	return 0;
fail:
	hv_vm_destroy(vm);
	return rc;
}

void hv_vm_destroy(struct hv_vm *vm)
{
	if (!vm)
		return;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	free(vm->cpuid);
	pthread_mutex_destroy(&vm->route_lock);
	free(vm);
}

int hv_vm_map(struct hv_vm *vm, uint64_t gpa, uint64_t size, void *host,
	      bool readonly)
{
	struct kvm_userspace_memory_region r = {
		.slot = vm->next_slot,
		.flags = readonly ? KVM_MEM_READONLY : 0,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	int rc = vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r);

	if (rc == 0)
		vm->next_slot++;
	return rc;
}

int hv_vm_set_irq(struct hv_vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level il = {.irq = gsi, .level = level ? 1 : 0};

	return vm_ioctl(vm, KVM_IRQ_LINE, &il);
}

int hv_vm_msi(struct hv_vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};
	int rc = vm_ioctl(vm, KVM_SIGNAL_MSI, &msi);

	return rc < 0 ? rc : 0;
}

int hv_vm_ioeventfd(struct hv_vm *vm, int fd, uint64_t addr, unsigned len,
		    bool pio, bool has_match, uint64_t match, bool deassign)
{
	struct kvm_ioeventfd io = {
		.datamatch = match,
		.addr = addr,
		.len = len,
		.fd = fd,
	};

	if (pio)
		io.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (has_match)
		io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
	if (deassign)
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return vm_ioctl(vm, KVM_IOEVENTFD, &io);
}

int hv_vm_irqfd(struct hv_vm *vm, int fd, unsigned gsi, bool deassign)
{
	struct kvm_irqfd irqfd = {
		.fd = (uint32_t)fd,
		.gsi = gsi,
		.flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0,
	};

	return vm_ioctl(vm, KVM_IRQFD, &irqfd);
}

/*
 * KVM_SET_GSI_ROUTING replaces the whole table, so it is rebuilt every
 * time: KVM's default irqchip routes (GSI 0-15 to the PICs and the IOAPIC,
 * 16-23 to the IOAPIC) plus the allocated MSI routes.  route_lock held.
 */
static int commit_routes(struct hv_vm *vm)
{
	struct kvm_irq_routing *t;
	struct kvm_irq_routing_entry *e;
	unsigned i, n = 0;
	int rc;

	t = calloc(1, sizeof(*t) + (16 + IRQCHIP_PINS + MAX_MSI_ROUTES) *
					   sizeof(t->entries[0]));
	if (!t)
		return -ENOMEM;
	for (i = 0; i < IRQCHIP_PINS; i++) {
		if (i < 16) {
			e = &t->entries[n++];
			e->gsi = i;
			e->type = KVM_IRQ_ROUTING_IRQCHIP;
			e->u.irqchip.irqchip = i < 8 ? KVM_IRQCHIP_PIC_MASTER
						     : KVM_IRQCHIP_PIC_SLAVE;
			e->u.irqchip.pin = i % 8;
		}
		e = &t->entries[n++];
		e->gsi = i;
		e->type = KVM_IRQ_ROUTING_IRQCHIP;
		e->u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		e->u.irqchip.pin = i;
	}
	for (i = 0; i < MAX_MSI_ROUTES; i++) {
		if (!vm->msi[i].used)
			continue;
		e = &t->entries[n++];
		e->gsi = IRQCHIP_PINS + i;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)vm->msi[i].addr;
		e->u.msi.address_hi = (uint32_t)(vm->msi[i].addr >> 32);
		e->u.msi.data = vm->msi[i].data;
	}
	t->nr = n;
	rc = vm_ioctl(vm, KVM_SET_GSI_ROUTING, t);
	free(t);
	return rc < 0 ? rc : 0;
}

int hv_vm_msi_route_alloc(struct hv_vm *vm, uint64_t addr, uint32_t data)
{
	unsigned i;
	int rc = -ENOSPC;

	pthread_mutex_lock(&vm->route_lock);
	for (i = 0; i < MAX_MSI_ROUTES; i++) {
		if (vm->msi[i].used)
			continue;
		vm->msi[i] = (struct msi_route){true, addr, data};
		rc = commit_routes(vm);
		if (rc)
			vm->msi[i].used = false;
		else
			rc = (int)(IRQCHIP_PINS + i);
		break;
	}
	pthread_mutex_unlock(&vm->route_lock);
	return rc;
}

static struct msi_route *route_of(struct hv_vm *vm, int gsi)
{
	if (gsi < IRQCHIP_PINS || gsi >= IRQCHIP_PINS + MAX_MSI_ROUTES ||
	    !vm->msi[gsi - IRQCHIP_PINS].used)
		return NULL;
	return &vm->msi[gsi - IRQCHIP_PINS];
}

int hv_vm_msi_route_set(struct hv_vm *vm, int gsi, uint64_t addr, uint32_t data)
{
	struct msi_route *r;
	int rc = -ENOENT;

	pthread_mutex_lock(&vm->route_lock);
	if ((r = route_of(vm, gsi))) {
		r->addr = addr;
		r->data = data;
		rc = commit_routes(vm);
	}
	pthread_mutex_unlock(&vm->route_lock);
	return rc;
}

int hv_vm_msi_route_free(struct hv_vm *vm, int gsi)
{
	struct msi_route *r;
	int rc = -ENOENT;

	pthread_mutex_lock(&vm->route_lock);
	if ((r = route_of(vm, gsi))) {
		r->used = false;
		rc = commit_routes(vm);
	}
	pthread_mutex_unlock(&vm->route_lock);
	return rc;
}

int hv_vcpu_create(struct hv_vm *vm, unsigned id, struct hv_vcpu **out)
{
	struct hv_vcpu *v = calloc(1, sizeof(*v));
	int rc;

	if (!v)
		return -ENOMEM;
	v->vm = vm;
	v->id = id;
	v->fd = vm_ioctl(vm, KVM_CREATE_VCPU, (void *)(uintptr_t)id);
	if (v->fd < 0) {
		rc = v->fd;
		free(v);
		return rc;
	}
	v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		rc = -errno;
		close(v->fd);
		free(v);
		return rc;
	}
	*out = v;
	return 0;
}

void hv_vcpu_destroy(struct hv_vcpu *v)
{
	if (!v)
		return;
	munmap(v->run, (size_t)v->vm->run_size);
	close(v->fd);
	free(v);
}

static int vcpu_ioctl(struct hv_vcpu *v, unsigned long req, void *arg)
{
	int rc;

	do
		rc = ioctl(v->fd, req, arg);
	while (rc < 0 && errno == EINTR);
	return rc < 0 ? -errno : rc;
}

/* -x: the local APIC starts in x2APIC mode (IA32_APIC_BASE.EXTD). */
static int set_x2apic_mode(struct hv_vcpu *v)
{
	struct kvm_sregs ks;
	int rc = vcpu_ioctl(v, KVM_GET_SREGS, &ks);

	if (rc < 0)
		return rc;
	ks.apic_base |= (1u << 11) | (1u << 10); /* EN | EXTD */
	return vcpu_ioctl(v, KVM_SET_SREGS, &ks);
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static void set_vendor_leaf(struct kvm_cpuid_entry2 *e, const char sig[12])
{
	memcpy(&e->ebx, sig, 4);
	memcpy(&e->ecx, sig + 4, 4);
	memcpy(&e->edx, sig + 8, 4);
}

/* Adjust one supported-CPUID entry for vCPU 'id' with the VM topology. */
static void patch_cpuid(const struct hv_vm *vm, unsigned id,
			struct kvm_cpuid_entry2 *e)
{
	const struct hv_vm_opts *o = &vm->opts;
	unsigned tbits = bits_for(o->threads), cbits = bits_for(o->cores);
	unsigned per_pkg = o->cores * o->threads;

	switch (e->function) {
	case 1:
		e->ebx = (e->ebx & 0x0000ffffu) | (id << 24) |
			 ((per_pkg > 255 ? 255 : per_pkg) << 16);
		if (per_pkg > 1)
			e->edx |= 1u << 28; /* HTT: ebx[23:16] is valid */
		else
			e->edx &= ~(1u << 28);
		e->ecx |= 1u << 31; /* running under a hypervisor */
		if (!o->x2apic)
			e->ecx &= ~(1u << 21);
		break;
	case 4:
		if ((e->eax & 0x1f) == 0)
			break; /* no more cache levels */
		e->eax &= 0x3fffu;
		e->eax |= (uint32_t)((1u << cbits) - 1) << 26;
		/* caches up to L2 are per core, L3 per package */
		if (((e->eax >> 5) & 7) <= 2)
			e->eax |= (uint32_t)((1u << tbits) - 1) << 14;
		else
			e->eax |= (uint32_t)((1u << (tbits + cbits)) - 1) << 14;
		break;
	case 0xb:
	case 0x1f:
		e->edx = id;
		if (e->index == 0) {
			e->eax = tbits;
			e->ebx = o->threads;
			e->ecx = (1u << 8) | 0;
		} else if (e->index == 1) {
			e->eax = tbits + cbits;
			e->ebx = per_pkg;
			e->ecx = (2u << 8) | 1;
		} else {
			e->eax = 0;
			e->ebx = 0;
			e->ecx = e->index;
		}
		break;
	case 0x80000008:
		e->ecx = (e->ecx & ~0xf0ffu) | ((tbits + cbits) << 12) |
			 ((per_pkg - 1) & 0xff);
		break;
	case 0x8000001e:
		e->eax = id;
		e->ebx = ((o->threads - 1) << 8) | ((id >> tbits) & 0xff);
		e->ecx = id >> (tbits + cbits);
		break;
	default:
		break;
	}
}

/* Add leaf 0xb subleaves 0 and 1 when KVM's table lacks them (some hosts
 * report none or only subleaf 0) and the guest may read them (max basic
 * leaf >= 0xb).  patch_cpuid() fills them in.  'c' has room. */
static void add_topology_leaves(struct kvm_cpuid2 *c)
{
	bool have[2] = {false, false};
	uint32_t max_basic = 0;
	unsigned i, sub;

	for (i = 0; i < c->nent; i++) {
		if (c->entries[i].function == 0)
			max_basic = c->entries[i].eax;
		if (c->entries[i].function == 0xb && c->entries[i].index < 2)
			have[c->entries[i].index] = true;
	}
	if (max_basic < 0xb)
		return;
	for (sub = 0; sub < 2; sub++) {
		struct kvm_cpuid_entry2 *e;

		if (have[sub])
			continue;
		e = &c->entries[c->nent++];
		memset(e, 0, sizeof(*e));
		e->function = 0xb;
		e->index = sub;
		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
	}
}

int hv_vcpu_init_cpu(struct hv_vcpu *v)
{
	const struct kvm_cpuid2 *sup = v->vm->cpuid;
	struct kvm_cpuid2 *c;
	struct kvm_cpuid_entry2 *e;
	unsigned i;
	int rc;

	c = calloc(1, sizeof(*c) + (sup->nent + 3) * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	memcpy(c->entries, sup->entries, sup->nent * sizeof(c->entries[0]));
	c->nent = sup->nent;
	add_topology_leaves(c);
	for (i = 0; i < c->nent; i++)
		patch_cpuid(v->vm, v->id, &c->entries[i]);
	/* khyve's own hypervisor leaf, after KVM's (Linux finds KVM first
	 * and keeps using kvmclock; tools can look for "khyvekhyvekh"). */
	e = &c->entries[c->nent++];
	memset(e, 0, sizeof(*e));
	e->function = KHYVE_CPUID_LEAF;
	e->eax = KHYVE_CPUID_LEAF;
	set_vendor_leaf(e, "khyvekhyvekh");
	rc = vcpu_ioctl(v, KVM_SET_CPUID2, c);
	free(c);
	if (rc < 0)
		return rc;
	return v->vm->opts.x2apic ? set_x2apic_mode(v) : 0;
}

static void seg_from_kvm(struct hv_seg *h, const struct kvm_segment *k)
{
	*h = (struct hv_seg){.base = k->base,
			     .limit = k->limit,
			     .sel = k->selector,
			     .type = k->type,
			     .present = k->present,
			     .dpl = k->dpl,
			     .db = k->db,
			     .s = k->s,
			     .l = k->l,
			     .g = k->g,
			     .avl = k->avl};
}

static void seg_to_kvm(struct kvm_segment *k, const struct hv_seg *h)
{
	memset(k, 0, sizeof(*k));
	k->base = h->base;
	k->limit = h->limit;
	k->selector = h->sel;
	k->type = h->type;
	k->present = h->present;
	k->dpl = h->dpl;
	k->db = h->db;
	k->s = h->s;
	k->l = h->l;
	k->g = h->g;
	k->avl = h->avl;
	k->unusable = !h->present;
}

int hv_vcpu_get_regs(struct hv_vcpu *v, struct hv_regs *r)
{
	struct kvm_regs kr;
	struct kvm_sregs ks;
	struct kvm_debugregs kd;
	int rc;

	if ((rc = vcpu_ioctl(v, KVM_GET_REGS, &kr)) < 0 ||
	    (rc = vcpu_ioctl(v, KVM_GET_SREGS, &ks)) < 0)
		return rc;
	memset(r, 0, sizeof(*r));
	r->rax = kr.rax, r->rbx = kr.rbx, r->rcx = kr.rcx, r->rdx = kr.rdx;
	r->rsi = kr.rsi, r->rdi = kr.rdi, r->rsp = kr.rsp, r->rbp = kr.rbp;
	r->r8 = kr.r8, r->r9 = kr.r9, r->r10 = kr.r10, r->r11 = kr.r11;
	r->r12 = kr.r12, r->r13 = kr.r13, r->r14 = kr.r14, r->r15 = kr.r15;
	r->rip = kr.rip, r->rflags = kr.rflags;
	r->cr0 = ks.cr0, r->cr2 = ks.cr2, r->cr3 = ks.cr3, r->cr4 = ks.cr4;
	r->cr8 = ks.cr8, r->efer = ks.efer, r->apic_base = ks.apic_base;
	seg_from_kvm(&r->cs, &ks.cs);
	seg_from_kvm(&r->ds, &ks.ds);
	seg_from_kvm(&r->es, &ks.es);
	seg_from_kvm(&r->fs, &ks.fs);
	seg_from_kvm(&r->gs, &ks.gs);
	seg_from_kvm(&r->ss, &ks.ss);
	seg_from_kvm(&r->tr, &ks.tr);
	seg_from_kvm(&r->ldt, &ks.ldt);
	r->gdt_base = ks.gdt.base, r->gdt_limit = ks.gdt.limit;
	r->idt_base = ks.idt.base, r->idt_limit = ks.idt.limit;
	if (vcpu_ioctl(v, KVM_GET_DEBUGREGS, &kd) == 0) {
		r->dr0 = kd.db[0];
		r->dr1 = kd.db[1];
		r->dr2 = kd.db[2];
		r->dr3 = kd.db[3];
		r->dr6 = kd.dr6;
		r->dr7 = kd.dr7;
	}
	return 0;
}

int hv_vcpu_set_regs(struct hv_vcpu *v, const struct hv_regs *r)
{
	struct kvm_regs kr;
	struct kvm_sregs ks;
	int rc;

	if ((rc = vcpu_ioctl(v, KVM_GET_SREGS, &ks)) < 0)
		return rc;
	memset(&kr, 0, sizeof(kr));
	kr.rax = r->rax, kr.rbx = r->rbx, kr.rcx = r->rcx, kr.rdx = r->rdx;
	kr.rsi = r->rsi, kr.rdi = r->rdi, kr.rsp = r->rsp, kr.rbp = r->rbp;
	kr.r8 = r->r8, kr.r9 = r->r9, kr.r10 = r->r10, kr.r11 = r->r11;
	kr.r12 = r->r12, kr.r13 = r->r13, kr.r14 = r->r14, kr.r15 = r->r15;
	kr.rip = r->rip, kr.rflags = r->rflags | 2;
	ks.cr0 = r->cr0, ks.cr2 = r->cr2, ks.cr3 = r->cr3, ks.cr4 = r->cr4;
	ks.cr8 = r->cr8, ks.efer = r->efer;
	if (r->apic_base)
		ks.apic_base = r->apic_base;
	seg_to_kvm(&ks.cs, &r->cs);
	seg_to_kvm(&ks.ds, &r->ds);
	seg_to_kvm(&ks.es, &r->es);
	seg_to_kvm(&ks.fs, &r->fs);
	seg_to_kvm(&ks.gs, &r->gs);
	seg_to_kvm(&ks.ss, &r->ss);
	seg_to_kvm(&ks.tr, &r->tr);
	seg_to_kvm(&ks.ldt, &r->ldt);
	ks.gdt.base = r->gdt_base, ks.gdt.limit = r->gdt_limit;
	ks.idt.base = r->idt_base, ks.idt.limit = r->idt_limit;
	if ((rc = vcpu_ioctl(v, KVM_SET_SREGS, &ks)) < 0)
		return rc;
	return vcpu_ioctl(v, KVM_SET_REGS, &kr);
}

int hv_vcpu_get_mp_state(struct hv_vcpu *v, enum hv_mp_state *st)
{
	struct kvm_mp_state mp;
	int rc = vcpu_ioctl(v, KVM_GET_MP_STATE, &mp);

	if (rc < 0)
		return rc;
	switch (mp.mp_state) {
	case KVM_MP_STATE_RUNNABLE:
		*st = HV_MP_RUNNABLE;
		break;
	case KVM_MP_STATE_HALTED:
		*st = HV_MP_HALTED;
		break;
	case KVM_MP_STATE_UNINITIALIZED:
	case KVM_MP_STATE_INIT_RECEIVED:
	case KVM_MP_STATE_SIPI_RECEIVED:
		*st = HV_MP_WAIT_SIPI;
		break;
	default:
		*st = HV_MP_OTHER;
		break;
	}
	return 0;
}

/* Unknown MSR: bhyve's x86.strictmsr injects #GP; -w reads 0, drops writes. */
static void handle_msr(struct hv_vcpu *v, bool write)
{
	struct kvm_run *run = v->run;

	if (v->vm->opts.strict_msr) {
		run->msr.error = 1;
	} else {
		run->msr.error = 0;
		if (!write)
			run->msr.data = 0;
	}
	log_ratelimited(5000, "vcpu%u: unknown MSR 0x%x %s%s", v->id,
			run->msr.index, write ? "write" : "read",
			v->vm->opts.strict_msr ? " (#GP injected)" : "");
}

int hv_vcpu_run(struct hv_vcpu *v, struct hv_exit *ex)
{
	struct kvm_run *run = v->run;
	int rc;

	if (!v->thread_set) {
		v->thread = pthread_self();
		__atomic_store_n(&v->thread_set, true, __ATOMIC_RELEASE);
	}
again:
	rc = ioctl(v->fd, KVM_RUN, 0);
	memset(ex, 0, sizeof(*ex));
	if (rc < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			ex->reason = HV_EXIT_INTR;
			return 0;
		}
		return -errno;
	}
	ex->raw = run->exit_reason;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		ex->reason = HV_EXIT_IO;
		ex->io.port = run->io.port;
		ex->io.size = run->io.size;
		ex->io.write = run->io.direction == KVM_EXIT_IO_OUT;
		ex->io.count = run->io.count;
		ex->io.data = (uint8_t *)run + run->io.data_offset;
		break;
	case KVM_EXIT_MMIO:
		ex->reason = HV_EXIT_MMIO;
		ex->mmio.gpa = run->mmio.phys_addr;
		ex->mmio.size = (uint8_t)run->mmio.len;
		ex->mmio.write = run->mmio.is_write;
		ex->mmio.data = run->mmio.data;
		break;
	case KVM_EXIT_HLT:
		ex->reason = HV_EXIT_HLT;
		break;
	case KVM_EXIT_SHUTDOWN:
		ex->reason = HV_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		ex->suberror = run->system_event.type;
		ex->reason =
			run->system_event.type == KVM_SYSTEM_EVENT_RESET
				? HV_EXIT_RESET
			: run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN
				? HV_EXIT_POWEROFF
				: HV_EXIT_OTHER;
		break;
	case KVM_EXIT_INTR:
		ex->reason = HV_EXIT_INTR;
		break;
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		handle_msr(v, run->exit_reason == KVM_EXIT_X86_WRMSR);
		goto again;
	case KVM_EXIT_FAIL_ENTRY:
		ex->reason = HV_EXIT_FAIL;
		ex->suberror =
			(uint32_t)run->fail_entry.hardware_entry_failure_reason;
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		ex->reason = HV_EXIT_FAIL;
		ex->suberror = run->internal.suberror;
		break;
	default:
		ex->reason = HV_EXIT_OTHER;
		break;
	}
	return 0;
}

void hv_vcpu_kick(struct hv_vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&v->thread_set, __ATOMIC_ACQUIRE))
		pthread_kill(v->thread, KICK_SIGNAL);
}

void hv_vcpu_clear_kick(struct hv_vcpu *v)
{
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

const char *hv_exit_name(enum hv_exit_reason r)
{
	static const char *const names[HV_EXIT_NR] = {
		[HV_EXIT_IO] = "io",	   [HV_EXIT_MMIO] = "mmio",
		[HV_EXIT_HLT] = "hlt",	   [HV_EXIT_SHUTDOWN] = "shutdown",
		[HV_EXIT_RESET] = "reset", [HV_EXIT_POWEROFF] = "poweroff",
		[HV_EXIT_INTR] = "intr",   [HV_EXIT_FAIL] = "fail",
		[HV_EXIT_OTHER] = "other",
	};

	return (unsigned)r < HV_EXIT_NR ? names[r] : "?";
}
