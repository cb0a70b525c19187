/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The vCPU run loop (see vcpu.h).  Exit handlers are a table indexed by
 * enum hv_exit_reason.  Handlers run on the vCPU thread and must not block
 * for long: device handlers reached through the buses only queue work.
 */
#include "vcpu/vcpu.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "core/devmodel.h"
#include "core/vm.h"
#include "lib/log.h"

enum {
	REQ_STOP = 1u << 0,
	REQ_REGS = 1u << 1,
	REQ_HALT_POLL = 1u << 2,
};

struct vcpu {
	struct vm *vm;
	unsigned id;
	struct hv_vcpu *hv;
	pthread_t thread;
	bool started;
	unsigned req;	      /* atomic REQ_* */
	bool halted;	      /* atomic: halted with interrupts off */
	struct vcpu_stats st; /* atomic counters */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct hv_regs regs; /* mailbox for REQ_REGS */
	int regs_rc;
	unsigned regs_gen; /* bumped when the mailbox is filled */
	cpu_set_t cpuset;
	bool pinned;
};

typedef bool (*exit_fn)(struct vcpu *v, struct hv_exit *ex);

static void count(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static void dump_regs(struct vcpu *v)
{
	struct hv_regs r;

	if (hv_vcpu_get_regs(v->hv, &r) != 0)
		return;
	log_err("vcpu%u: rip=0x%llx rsp=0x%llx rflags=0x%llx cr0=0x%llx "
		"cr3=0x%llx cr4=0x%llx efer=0x%llx cs=0x%x",
		v->id, (unsigned long long)r.rip, (unsigned long long)r.rsp,
		(unsigned long long)r.rflags, (unsigned long long)r.cr0,
		(unsigned long long)r.cr3, (unsigned long long)r.cr4,
		(unsigned long long)r.efer, r.cs.sel);
}

static uint64_t load_le(const uint8_t *p, unsigned size)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < size; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void store_le(uint8_t *p, unsigned size, uint64_t v)
{
	unsigned i;

	for (i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static bool exit_io(struct vcpu *v, struct hv_exit *ex)
{
	struct vm *vm = v->vm;
	unsigned size = ex->io.size, i;
	uint8_t *data = ex->io.data;
	uint64_t val;
	int rc;

	if (ex->io.count > 1)
		count(&v->st.string_io);
	for (i = 0; i < ex->io.count; i++, data += size) {
		val = ex->io.write ? load_le(data, size) : 0;
		rc = bus_dispatch(vm->pio, ex->io.port, size, ex->io.write,
				  &val);
		if (rc == -ENOENT) {
			count(&v->st.pio_unclaimed);
			if (vm->strictio) {
				char why[64];

				snprintf(why, sizeof(why),
					 "unhandled %s of I/O port 0x%x "
					 "(x86.strictio)",
					 ex->io.write ? "write" : "read",
					 ex->io.port);
				log_err("vcpu%u: %s", v->id, why);
				vm_request_exit(vm, VM_EXIT_ERROR, why);
				return false;
			}
		}
		if (!ex->io.write)
			store_le(data, size, val);
	}
	return true;
}

static bool exit_mmio(struct vcpu *v, struct hv_exit *ex)
{
	unsigned size = ex->mmio.size;
	uint64_t val;
	int rc;

	if (size == 0 || size > 8) {
		log_ratelimited(5000,
				"vcpu%u: MMIO access of %u bytes at "
				"0x%llx ignored",
				v->id, size, (unsigned long long)ex->mmio.gpa);
		return true;
	}
	val = ex->mmio.write ? load_le(ex->mmio.data, size) : 0;
	rc = bus_dispatch(v->vm->mmio, ex->mmio.gpa, size, ex->mmio.write,
			  &val);
	if (rc == -ENOENT)
		count(&v->st.mmio_unclaimed);
	if (!ex->mmio.write)
		store_le(ex->mmio.data, size, val);
	return true;
}

static bool exit_shutdown(struct vcpu *v, struct hv_exit *ex)
{
	(void)ex;
	log_info("vcpu%u: triple fault", v->id);
	dump_regs(v);
	vm_request_exit(v->vm, VM_EXIT_TRIPLEFAULT, "triple fault");
	return false;
}

static bool exit_reset(struct vcpu *v, struct hv_exit *ex)
{
	(void)ex;
	vm_request_exit(v->vm, VM_EXIT_REBOOT, "reset");
	return false;
}

static bool exit_poweroff(struct vcpu *v, struct hv_exit *ex)
{
	(void)ex;
	vm_request_exit(v->vm, VM_EXIT_POWEROFF, "power-off");
	return false;
}

static bool exit_hlt(struct vcpu *v, struct hv_exit *ex)
{
	(void)ex;
	/* Only without an in-kernel LAPIC; treat as a halt poll. */
	__atomic_or_fetch(&v->req, REQ_HALT_POLL, __ATOMIC_SEQ_CST);
	return true;
}

static bool exit_intr(struct vcpu *v, struct hv_exit *ex)
{
	(void)v;
	(void)ex;
	return true; /* requests are serviced at the top of the loop */
}

static bool exit_fail(struct vcpu *v, struct hv_exit *ex)
{
	char why[96];

	snprintf(why, sizeof(why), "vcpu%u: %s (exit %u, code 0x%x)", v->id,
		 ex->reason == HV_EXIT_FAIL ? "hypervisor failure"
					    : "unexpected exit",
		 ex->raw, ex->suberror);
	log_err("%s", why);
	dump_regs(v);
	vm_request_exit(v->vm, VM_EXIT_ERROR, why);
	return false;
}

static const exit_fn exit_handlers[HV_EXIT_NR] = {
	[HV_EXIT_IO] = exit_io,	      [HV_EXIT_MMIO] = exit_mmio,
	[HV_EXIT_HLT] = exit_hlt,     [HV_EXIT_SHUTDOWN] = exit_shutdown,
	[HV_EXIT_RESET] = exit_reset, [HV_EXIT_POWEROFF] = exit_poweroff,
	[HV_EXIT_INTR] = exit_intr,   [HV_EXIT_FAIL] = exit_fail,
	[HV_EXIT_OTHER] = exit_fail,
};

static void service_halt_poll(struct vcpu *v)
{
	enum hv_mp_state st;
	struct hv_regs r;
	bool halted = false;

	if (hv_vcpu_get_mp_state(v->hv, &st) == 0) {
		if (st == HV_MP_WAIT_SIPI)
			halted = true; /* never started: counts as halted */
		else if (st == HV_MP_HALTED && hv_vcpu_get_regs(v->hv, &r) == 0)
			halted = !(r.rflags & 0x200);
	}
	__atomic_store_n(&v->halted, halted, __ATOMIC_RELEASE);
	if (halted)
		vm_vcpu_halted(v->vm);
}

static void service_regs(struct vcpu *v)
{
	pthread_mutex_lock(&v->lock);
	v->regs_rc = hv_vcpu_get_regs(v->hv, &v->regs);
	v->regs_gen++;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

/* Handle pending requests; returns false when the thread must stop. */
static bool service(struct vcpu *v)
{
	unsigned req = __atomic_exchange_n(&v->req, 0, __ATOMIC_SEQ_CST);

	if (req & REQ_REGS)
		service_regs(v);
	if (req & REQ_HALT_POLL)
		service_halt_poll(v);
	return !(req & REQ_STOP) && !vm_exiting(v->vm);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct hv_exit ex;
	char name[16];
	int rc;

	snprintf(name, sizeof(name), "vcpu/%u", v->id);
	pthread_setname_np(pthread_self(), name);
	if (v->pinned &&
	    (rc = pthread_setaffinity_np(pthread_self(), sizeof(v->cpuset),
					 &v->cpuset)) != 0)
		log_errno(LOG_WARN, rc, "vcpu.%u.cpuset: cannot pin", v->id);
	for (;;) {
		hv_vcpu_clear_kick(v->hv);
		if (!service(v))
			break;
		rc = hv_vcpu_run(v->hv, &ex);
		if (rc < 0) {
			log_errno(LOG_ERR, -rc, "vcpu%u: KVM_RUN", v->id);
			vm_request_exit(v->vm, VM_EXIT_ERROR, "KVM_RUN failed");
			break;
		}
		count(&v->st.exits[ex.reason]);
		if (!exit_handlers[ex.reason](v, &ex))
			break;
	}
	/* Answer a register request that raced with the stop. */
	service_regs(v);
	return NULL;
}

int vcpu_create(struct vm *vm, unsigned id, struct vcpu **out)
{
	struct vcpu *v = calloc(1, sizeof(*v));
	int rc;

	if (!v)
		return -ENOMEM;
	v->vm = vm;
	v->id = id;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	rc = hv_vcpu_create(vm->hv, id, &v->hv);
	if (rc == 0)
		rc = hv_vcpu_init_cpu(v->hv);
	if (rc) {
		log_errno(LOG_ERR, -rc, "vcpu%u: cannot create", id);
		vcpu_destroy(v);
		return rc;
	}
	*out = v;
	return 0;
}

int vcpu_set_regs(struct vcpu *v, const struct hv_regs *regs)
{
	return hv_vcpu_set_regs(v->hv, regs);
}

int vcpu_parse_cpuset(const char *s, void *mask, unsigned max_cpus)
{
	cpu_set_t *set = mask;
	const char *p = s;
	char *end;

	CPU_ZERO(set);
	if (!*p)
		return -EINVAL;
	while (*p) {
		unsigned long a, b;

		errno = 0;
		a = strtoul(p, &end, 10);
		if (end == p || errno)
			return -EINVAL;
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtoul(p, &end, 10);
			if (end == p || errno || b < a)
				return -EINVAL;
		}
		if (b >= max_cpus || b >= CPU_SETSIZE)
			return -EINVAL;
		for (; a <= b; a++)
			CPU_SET(a, set);
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		p = end;
	}
	return 0;
}

int vcpu_start(struct vcpu *v, const char *cpuset)
{
	int rc;

	if (cpuset) {
		if (vcpu_parse_cpuset(cpuset, &v->cpuset, CPU_SETSIZE) < 0) {
			log_err("vcpu.%u.cpuset: invalid host CPU list '%s'",
				v->id, cpuset);
			return -EINVAL;
		}
		v->pinned = true;
	}
	rc = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (rc)
		return -rc;
	v->started = true;
	return 0;
}

static void request(struct vcpu *v, unsigned req)
{
	__atomic_or_fetch(&v->req, req, __ATOMIC_SEQ_CST);
	hv_vcpu_kick(v->hv);
}

void vcpu_stop(struct vcpu *v)
{
	if (!v || !v->started)
		return;
	request(v, REQ_STOP);
	pthread_join(v->thread, NULL);
	v->started = false;
}

void vcpu_destroy(struct vcpu *v)
{
	if (!v)
		return;
	hv_vcpu_destroy(v->hv);
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

void vcpu_poll_halt(struct vcpu *v)
{
	request(v, REQ_HALT_POLL);
}

bool vcpu_is_halted(const struct vcpu *v)
{
	return __atomic_load_n(&v->halted, __ATOMIC_ACQUIRE);
}

int vcpu_get_regs(struct vcpu *v, struct hv_regs *out, unsigned timeout_ms)
{
	struct timespec ts;
	unsigned gen;
	int rc = 0;

	if (!v->started)
		return hv_vcpu_get_regs(v->hv, out);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&v->lock);
	gen = v->regs_gen;
	request(v, REQ_REGS);
	while (v->regs_gen == gen && rc == 0)
		rc = pthread_cond_timedwait(&v->cond, &v->lock, &ts);
	if (v->regs_gen != gen) {
		*out = v->regs;
		rc = v->regs_rc;
	} else {
		rc = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

void vcpu_get_stats(const struct vcpu *v, struct vcpu_stats *st)
{
	const uint64_t *src = (const uint64_t *)&v->st;
	uint64_t *dst = (uint64_t *)st;
	size_t i;

	for (i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

unsigned vcpu_id(const struct vcpu *v)
{
	return v->id;
}
