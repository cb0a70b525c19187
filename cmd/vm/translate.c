/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A VM's configuration (vm-bhyve's keys) translated into khyve's command
 * line, which is bhyve's: the same device layout vm-bhyve's vm-run builds
 * (-s 0 host bridge, -s 31 lpc, the install ISO at slot 3, disks from
 * start_slot, then NICs, virtio-rnd, virtio-console, fbuf, xhci,
 * passthru; -l comN for the consoles), with loader="kernel" becoming
 * -o boot.kernel/initrd/cmdline.  Also the key table: every key vm knows,
 * and a warning naming each one it does not.
 *
 * The translation is a pure function of the config (plus the run options:
 * install ISO, console paths), so `vm argv NAME` prints exactly what
 * `vm start` runs and the golden tests in tests/vm/golden check it.
 *
 * Threads: single-threaded.  No locks.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/vm/vm.h"

enum key_class { KEY_USED, KEY_TEMPLATE, KEY_UNSUPPORTED, KEY_UNKNOWN };

/* '#' stands for a number (diskN_type).  A trailing '*' is a prefix. */
/* clang-format off */
static const char *const used_keys[] = {
	"loader", "kernel", "initrd", "cmdline", "cpu", "cpu_sockets",
	"cpu_cores", "cpu_threads", "memory", "wired_memory", "hostbridge",
	"ignore_bad_msr", "utctime", "uuid", "debug", "bhyve_options",
	"comports", "start_slot", "install_slot", "ahci_device_limit",
	"disk#_type", "disk#_name", "disk#_dev", "disk#_opts",
	"network#_type", "network#_switch", "network#_mac", "network#_device",
	"graphics", "graphics_port", "graphics_listen", "graphics_res",
	"graphics_wait", "vnc_password", "xhci_mouse", "virt_random",
	"virt_console#", "passthru#", "stop_timeout", "tags", "description",
	NULL,
};

static const char *const template_keys[] = {"disk#_size", NULL};

/* vm-bhyve keys without a meaning here (yet). */
static const char *const unsupported_keys[] = {
	"priority", "limit_*", "uefi_vars", "bhyveload_*", "grub_*",
	"loader_timeout", "zfs_*", "sound*", "network#_span", "network#_name",
	"prestart", "on_restart", "on_fault", "graphics_vga", "fwcfg",
	"passthru#_options", NULL,
};
/* clang-format on */

static bool key_match(const char *pat, const char *key)
{
	while (*pat) {
		if (*pat == '*' && !pat[1])
			return true;
		if (*pat == '#') {
			if (!isdigit((unsigned char)*key))
				return false;
			while (isdigit((unsigned char)*key))
				key++;
			pat++;
			continue;
		}
		if (*pat != *key)
			return false;
		pat++;
		key++;
	}
	return !*key;
}

static bool in_list(const char *const *list, const char *key)
{
	for (; *list; list++)
		if (key_match(*list, key))
			return true;
	return false;
}

static enum key_class key_class(const char *key)
{
	if (in_list(used_keys, key))
		return KEY_USED;
	if (in_list(template_keys, key))
		return KEY_TEMPLATE;
	if (in_list(unsupported_keys, key))
		return KEY_UNSUPPORTED;
	return KEY_UNKNOWN;
}

unsigned vm_check_keys(const struct vm *vm)
{
	const struct conf *c = &vm->conf;
	unsigned count = 0;
	size_t i, j;

	for (i = 0; i < c->n; i++) {
		const char *k = c->l[i].key;

		if (!k)
			continue;
		for (j = 0; j < i; j++)
			if (c->l[j].key && !strcmp(c->l[j].key, k))
				break;
		if (j < i)
			continue; /* warned already */
		switch (key_class(k)) {
		case KEY_UNKNOWN:
			vm_warn("%s.conf: unknown key \"%s\" (ignored)",
				vm->name, k);
			count++;
			break;
		case KEY_UNSUPPORTED:
			vm_warn("%s.conf: \"%s\" is not supported by khyve "
				"(ignored)",
				vm->name, k);
			count++;
			break;
		default:
			break;
		}
	}
	return count;
}

/* ---- helpers ---- */

/* Parse an unsigned decimal in [min, max] or fail naming the key. */
static int get_uint(const struct conf *c, const char *key, unsigned def,
		    unsigned min, unsigned max, unsigned *out)
{
	const char *v = conf_get(c, key);
	unsigned long n;
	char *end;

	if (!v || !*v) {
		*out = def;
		return 0;
	}
	errno = 0;
	n = strtoul(v, &end, 10);
	if (!isdigit((unsigned char)*v) || *end || errno || n < min ||
	    n > max) {
		vm_err("%s: \"%s\" is not a number from %u to %u", key, v, min,
		       max);
		return -EINVAL;
	}
	*out = (unsigned)n;
	return 0;
}

static int get_bool(const struct conf *c, const char *key, bool def, bool *out)
{
	const char *v = conf_get(c, key);
	bool ok;

	if (v && !*v)
		v = NULL;
	*out = vm_yes(v, def, &ok);
	if (!ok) {
		vm_err("%s: \"%s\" is not yes or no", key, v);
		return -EINVAL;
	}
	return 0;
}

/* Values that go into a comma-separated khyve option. */
static int opt_safe(const char *key, const char *v)
{
	const char *p;

	for (p = v; *p; p++) {
		if (*p == ',' || (unsigned char)*p < 0x20) {
			vm_err("%s: \"%s\": commas and control characters "
			       "cannot be passed to khyve",
			       key, v);
			return -EINVAL;
		}
	}
	return 0;
}

/* Highest N for which some key "prefixN_..." or "prefixN" exists, or -1. */
static int max_index(const struct conf *c, const char *prefix)
{
	size_t pl = strlen(prefix), i;
	int max = -1;
	long n;
	char *end;

	for (i = 0; i < c->n; i++) {
		const char *k = c->l[i].key;

		if (!k || strncmp(k, prefix, pl) ||
		    !isdigit((unsigned char)k[pl]))
			continue;
		n = strtol(k + pl, &end, 10);
		if ((*end == '_' || !*end) && n > max && n < 1000)
			max = (int)n;
	}
	return max;
}

void vm_nic_mac(const char *seed, unsigned idx, char mac[18])
{
	char buf[512];
	uint64_t h;

	snprintf(buf, sizeof(buf), "%s/nic%u", seed, idx);
	h = vm_hash(buf);
	/* locally administered unicast, "kh" in the second and third byte */
	snprintf(mac, 18, "02:6b:68:%02x:%02x:%02x", (unsigned)(h >> 16) & 0xff,
		 (unsigned)(h >> 8) & 0xff, (unsigned)h & 0xff);
}

static const char *seed_of(const struct vm *vm)
{
	const char *u = conf_get(&vm->conf, "uuid");

	return u && *u ? u : vm->dir;
}

static bool mac_ok(const char *m)
{
	unsigned i;

	if (strlen(m) != 17)
		return false;
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2 ? m[i] != ':' : !isxdigit((unsigned char)m[i]))
			return false;
	}
	return true;
}

int vm_disk_path(const struct vm *vm, unsigned idx, char *buf, size_t len)
{
	const char *name = conf_getf(&vm->conf, "disk%u_name", idx);
	const char *type = conf_getf(&vm->conf, "disk%u_type", idx);
	const char *dev = conf_getf(&vm->conf, "disk%u_dev", idx);
	char key[32];

	if (!name && !type)
		return -ENOENT;
	snprintf(key, sizeof(key), "disk%u_name", idx);
	if (!name || !*name) {
		vm_err("%s: not set (the disk file name)", key);
		return -EINVAL;
	}
	if (opt_safe(key, name))
		return -EINVAL;
	if (!dev || !*dev || !strcmp(dev, "file")) {
		if (name[0] == '/')
			return vm_fmt(buf, len, "%s", name) ? -ENAMETOOLONG : 0;
		if (strstr(name, "..")) {
			vm_err("%s: \"%s\": a file disk lives in the VM's "
			       "directory (use disk%u_dev=\"custom\" for "
			       "other paths)",
			       key, name, idx);
			return -EINVAL;
		}
		return vm_fmt(buf, len, "%s/%s", vm->dir, name) ? -ENAMETOOLONG
								: 0;
	}
	if (!strcmp(dev, "custom"))
		return vm_fmt(buf, len, "%s", name) ? -ENAMETOOLONG : 0;
	if (!strcmp(dev, "zvol") || !strcmp(dev, "sparse-zvol") ||
	    !strcmp(dev, "iscsi")) {
		vm_err("disk%u_dev: \"%s\" is not available on Linux (use "
		       "file, or custom with a block device path)",
		       idx, dev);
		return -ENOTSUP;
	}
	vm_err("disk%u_dev: \"%s\" is not file or custom", idx, dev);
	return -EINVAL;
}

/* ---- the translation ---- */

struct tr {
	const struct vm *vm;
	const struct vm_runopts *ro;
	struct vm_plan *plan;
	unsigned slot;	   /* next free PCI slot */
	const char *where; /* key that takes the slot, for errors */
};

static int use_model(struct tr *t, const char *key, const char *model)
{
	struct vm_model_use *u;

	if (t->plan->nmodels >=
	    sizeof(t->plan->models) / sizeof(t->plan->models[0]))
		return 0;
	u = &t->plan->models[t->plan->nmodels++];
	snprintf(u->key, sizeof(u->key), "%s", key);
	snprintf(u->model, sizeof(u->model), "%s", model);
	return 0;
}

/* -s SLOT,... with the next slot. */
static int add_dev(struct tr *t, const char *key, const char *model,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int add_dev(struct tr *t, const char *key, const char *model,
		   const char *fmt, ...)
{
	char rest[PATH_MAX * 2];
	va_list ap;

	if (t->slot > 30) {
		vm_err("%s: too many PCI devices (the slots up to 30 are "
		       "taken; lower start_slot or use ahci_device_limit)",
		       key);
		return -ENOSPC;
	}
	va_start(ap, fmt);
	vsnprintf(rest, sizeof(rest), fmt, ap);
	va_end(ap);
	use_model(t, key, model);
	if (argv_add(&t->plan->args, "-s") ||
	    argv_add(&t->plan->args, "%u,%s%s%s", t->slot, model,
		     rest[0] ? "," : "", rest))
		return -ENOMEM;
	t->slot++;
	return 0;
}

static int tr_loader(struct tr *t)
{
	const struct conf *c = &t->vm->conf;
	const char *loader = conf_get(c, "loader");
	const char *kernel = conf_get(c, "kernel");
	const char *keys[] = {"kernel", "initrd", "cmdline"};
	const char *opts[] = {"boot.kernel", "boot.initrd", "boot.cmdline"};
	unsigned i;

	if ((!loader || !*loader) && kernel && *kernel)
		loader = "kernel";
	if (!loader || !*loader) {
		vm_err("loader: not set (use loader=\"kernel\" with "
		       "kernel=\"/path/to/kernel\")");
		return -EINVAL;
	}
	if (!strncmp(loader, "uefi", 4)) {
		vm_err("loader: \"%s\" is not available yet: khyve has no "
		       "UEFI firmware (boot a kernel with loader=\"kernel\")",
		       loader);
		return -ENOTSUP;
	}
	if (!strcmp(loader, "grub") || !strcmp(loader, "bhyveload")) {
		vm_err("loader: \"%s\" is not available in khyve: boot the "
		       "kernel directly with loader=\"kernel\", kernel= and "
		       "initrd=",
		       loader);
		return -ENOTSUP;
	}
	if (strcmp(loader, "kernel")) {
		vm_err("loader: \"%s\" is not a loader (kernel; uefi once "
		       "khyve has firmware)",
		       loader);
		return -EINVAL;
	}
	if (!kernel || !*kernel) {
		vm_err("kernel: not set (loader=\"kernel\" needs "
		       "kernel=\"/path/to/kernel\")");
		return -EINVAL;
	}
	for (i = 0; i < 3; i++) {
		const char *v = conf_get(c, keys[i]);

		if (!v || !*v)
			continue;
		if (i < 2 && v[0] != '/') {
			if (argv_add(&t->plan->args, "-o") ||
			    argv_add(&t->plan->args, "%s=%s/%s", opts[i],
				     t->vm->dir, v))
				return -ENOMEM;
			continue;
		}
		if (argv_add(&t->plan->args, "-o") ||
		    argv_add(&t->plan->args, "%s=%s", opts[i], v))
			return -ENOMEM;
	}
	return 0;
}

static int tr_cpu_mem(struct tr *t)
{
	const struct conf *c = &t->vm->conf;
	unsigned cpu, s, co, th;
	const char *mem = conf_get(c, "memory");
	bool topo = conf_get(c, "cpu_sockets") || conf_get(c, "cpu_cores") ||
		    conf_get(c, "cpu_threads");
	bool wired, msr, utc;
	uint64_t bytes;
	int rc;

	if ((rc = get_uint(c, "cpu", 0, 1, 255, &cpu)) ||
	    (rc = get_uint(c, "cpu_sockets", 1, 1, 255, &s)) ||
	    (rc = get_uint(c, "cpu_cores", 1, 1, 255, &co)) ||
	    (rc = get_uint(c, "cpu_threads", 1, 1, 255, &th)))
		return rc;
	if (topo) {
		if (cpu && cpu != s * co * th) {
			vm_err("cpu: %u is not cpu_sockets x cpu_cores x "
			       "cpu_threads (%u x %u x %u)",
			       cpu, s, co, th);
			return -EINVAL;
		}
		if (s * co * th > 255) {
			vm_err("cpu_sockets x cpu_cores x cpu_threads: more "
			       "than 255 CPUs");
			return -EINVAL;
		}
		rc = argv_add(&t->plan->args, "-c") ||
		     argv_add(&t->plan->args,
			      "%u,sockets=%u,cores=%u,"
			      "threads=%u",
			      s * co * th, s, co, th);
	} else {
		rc = argv_add(&t->plan->args, "-c") ||
		     argv_add(&t->plan->args, "%u", cpu ? cpu : 1);
	}
	if (rc)
		return -ENOMEM;
	if (!mem || !*mem)
		mem = "256M";
	if (vm_parse_size(mem, true, &bytes) || !bytes) {
		vm_err("memory: \"%s\" is not a size (such as 512M or 2G)",
		       mem);
		return -EINVAL;
	}
	if (argv_add(&t->plan->args, "-m") ||
	    argv_add(&t->plan->args, "%s", mem))
		return -ENOMEM;
	if ((rc = get_bool(c, "wired_memory", false, &wired)) ||
	    (rc = get_bool(c, "ignore_bad_msr", true, &msr)) ||
	    (rc = get_bool(c, "utctime", true, &utc)))
		return rc;
	if (max_index(c, "passthru") >= 0)
		wired = true; /* DMA needs the memory pinned, as vm-bhyve */
	if ((wired && argv_add(&t->plan->args, "-S")) ||
	    argv_add(&t->plan->args, "-H") || argv_add(&t->plan->args, "-P") ||
	    (msr && argv_add(&t->plan->args, "-w")) ||
	    (utc && argv_add(&t->plan->args, "-u")))
		return -ENOMEM;
	return 0;
}

static int tr_uuid(struct tr *t)
{
	const char *u = conf_get(&t->vm->conf, "uuid");
	size_t i;

	if (!u || !*u)
		return 0;
	for (i = 0; u[i]; i++)
		if (!isxdigit((unsigned char)u[i]) && u[i] != '-')
			break;
	if (u[i] || i != 36) {
		vm_err("uuid: \"%s\" is not a UUID", u);
		return -EINVAL;
	}
	if (argv_add(&t->plan->args, "-U") || argv_add(&t->plan->args, "%s", u))
		return -ENOMEM;
	return 0;
}

static int tr_platform(struct tr *t)
{
	const char *hb = conf_get(&t->vm->conf, "hostbridge");
	const char *model = "hostbridge";
	unsigned slot;
	int rc;

	if (hb && *hb && !strcmp(hb, "amd"))
		model = "amd_hostbridge";
	else if (hb && *hb && !strcmp(hb, "none"))
		model = NULL;
	else if (hb && *hb && strcmp(hb, "standard") && strcmp(hb, "yes")) {
		vm_err("hostbridge: \"%s\" is not standard, amd or none", hb);
		return -EINVAL;
	}
	if (model && (argv_add(&t->plan->args, "-s") ||
		      argv_add(&t->plan->args, "0,%s", model)))
		return -ENOMEM;
	if (argv_add(&t->plan->args, "-s") ||
	    argv_add(&t->plan->args, "31,lpc"))
		return -ENOMEM;
	if (t->ro->iso) {
		if ((rc = get_uint(&t->vm->conf, "install_slot", 3, 1, 30,
				   &slot)))
			return rc;
		if ((rc = opt_safe("ISO", t->ro->iso)))
			return rc;
		use_model(t, "install ISO", "ahci-cd");
		if (argv_add(&t->plan->args, "-s") ||
		    argv_add(&t->plan->args, "%u,ahci-cd,%s,ro", slot,
			     t->ro->iso))
			return -ENOMEM;
	}
	return 0;
}

/* Count how many consecutive numbered items exist; warn about a gap. */
static int items(const struct conf *c, const char *prefix,
		 bool (*exists)(const struct conf *c, unsigned i))
{
	int max = max_index(c, prefix), i;

	for (i = 0; i <= max; i++) {
		if (!exists(c, (unsigned)i)) {
			vm_warn("%s%d: not defined, so %s%d and later are "
				"ignored (number them from 0 without gaps)",
				prefix, i, prefix, i + 1);
			return i;
		}
	}
	return max + 1;
}

static bool disk_exists(const struct conf *c, unsigned i)
{
	return conf_getf(c, "disk%u_type", i) || conf_getf(c, "disk%u_name", i);
}

static bool nic_exists(const struct conf *c, unsigned i)
{
	return conf_getf(c, "network%u_type", i) ||
	       conf_getf(c, "network%u_switch", i) ||
	       conf_getf(c, "network%u_device", i);
}

static int tr_disks(struct tr *t)
{
	const struct conf *c = &t->vm->conf;
	char key[32], path[PATH_MAX], ports[PATH_MAX * 2] = "", pkey[32] = "";
	unsigned limit, inctl = 0, i;
	int n, rc;

	if ((rc = get_uint(c, "ahci_device_limit", 1, 1, 32, &limit)))
		return rc;
	n = items(c, "disk", disk_exists);
	for (i = 0; i < (unsigned)n; i++) {
		const char *type = conf_getf(c, "disk%u_type", i);
		const char *opts = conf_getf(c, "disk%u_opts", i);
		bool ahci;

		snprintf(key, sizeof(key), "disk%u_type", i);
		if (!type || !*type)
			type = "virtio-blk";
		if (strcmp(type, "virtio-blk") && strcmp(type, "ahci-hd") &&
		    strcmp(type, "ahci-cd") && strcmp(type, "nvme")) {
			vm_err("%s: \"%s\" is not virtio-blk, ahci-hd, ahci-cd "
			       "or nvme",
			       key, type);
			return -EINVAL;
		}
		if ((rc = vm_disk_path(t->vm, i, path, sizeof(path))))
			return rc;
		if (opts && *opts && strchr(" \t", opts[0]))
			opts = NULL;
		ahci = !strncmp(type, "ahci-", 5);
		if (ahci && limit > 1) {
			/* pack AHCI disks per controller, as vm-bhyve */
			snprintf(ports + strlen(ports),
				 sizeof(ports) - strlen(ports), "%s%s:%s%s%s",
				 ports[0] ? "," : "",
				 strcmp(type, "ahci-cd") ? "hd" : "cd", path,
				 opts && *opts ? "," : "",
				 opts && *opts ? opts : "");
			if (!pkey[0])
				snprintf(pkey, sizeof(pkey), "%s", key);
			if (++inctl < limit && i + 1 < (unsigned)n)
				continue;
			rc = add_dev(t, pkey, "ahci", "%s", ports);
			ports[0] = pkey[0] = '\0';
			inctl = 0;
		} else {
			if (ports[0]) { /* close an open AHCI controller */
				rc = add_dev(t, pkey, "ahci", "%s", ports);
				ports[0] = pkey[0] = '\0';
				inctl = 0;
				if (rc)
					return rc;
			}
			rc = add_dev(t, key, type, "%s%s%s", path,
				     opts && *opts ? "," : "",
				     opts && *opts ? opts : "");
		}
		if (rc)
			return rc;
	}
	if (ports[0])
		return add_dev(t, pkey, "ahci", "%s", ports);
	return 0;
}

static bool ifname_ok(const char *s)
{
	return vm_name_ok(s, 15, NULL);
}

static int tr_nics(struct tr *t)
{
	const struct conf *c = &t->vm->conf;
	uint64_t h = vm_hash(seed_of(t->vm));
	char key[32];
	int n, rc;
	unsigned i;

	n = items(c, "network", nic_exists);
	if (n > VM_MAX_NICS) {
		vm_err("network%d_type: at most %d NICs", VM_MAX_NICS,
		       VM_MAX_NICS);
		return -EINVAL;
	}
	for (i = 0; i < (unsigned)n; i++) {
		struct vm_nic *nic = &t->plan->nics[t->plan->nnics];
		const char *type = conf_getf(c, "network%u_type", i);
		const char *sw = conf_getf(c, "network%u_switch", i);
		const char *dev = conf_getf(c, "network%u_device", i);
		const char *mac = conf_getf(c, "network%u_mac", i);

		memset(nic, 0, sizeof(*nic));
		nic->idx = i;
		snprintf(key, sizeof(key), "network%u_type", i);
		if (!type || !*type)
			type = "virtio-net";
		if (strcmp(type, "virtio-net") && strcmp(type, "e1000")) {
			vm_err("%s: \"%s\" is not virtio-net or e1000", key,
			       type);
			return -EINVAL;
		}
		nic->model = !strcmp(type, "e1000") ? "e1000" : "virtio-net";
		if (dev && *dev) {
			if (!ifname_ok(dev)) {
				vm_err("network%u_device: \"%s\" is not an "
				       "interface name",
				       i, dev);
				return -EINVAL;
			}
			snprintf(nic->tap, sizeof(nic->tap), "%s", dev);
		} else if (sw && *sw) {
			if (!vm_name_ok(sw, VM_SWITCH_MAX, NULL)) {
				vm_err("network%u_switch: \"%s\" is not a "
				       "switch name",
				       i, sw);
				return -EINVAL;
			}
			snprintf(nic->sw, sizeof(nic->sw), "%s", sw);
			/* stable per VM (uuid) and NIC, fits IFNAMSIZ */
			snprintf(nic->tap, sizeof(nic->tap), "vmt%08x-%u",
				 (unsigned)(h & 0xffffffffu), i);
			nic->own_tap = true;
		} else {
			vm_err("network%u_switch: not set (name a switch, or "
			       "an existing tap with network%u_device)",
			       i, i);
			return -EINVAL;
		}
		if (mac && *mac) {
			if (!mac_ok(mac)) {
				vm_err("network%u_mac: \"%s\" is not a MAC "
				       "address (xx:xx:xx:xx:xx:xx)",
				       i, mac);
				return -EINVAL;
			}
			snprintf(nic->mac, sizeof(nic->mac), "%s", mac);
			nic->fixed_mac = true;
		} else {
			vm_nic_mac(seed_of(t->vm), i, nic->mac);
		}
		if ((rc = add_dev(t, key, nic->model, "%s,mac=%s", nic->tap,
				  nic->mac)))
			return rc;
		t->plan->nnics++;
	}
	return 0;
}

static int tr_vtcon(struct tr *t)
{
	const struct conf *c = &t->vm->conf;
	char ports[PATH_MAX * 4] = "", key[32];
	int max = max_index(c, "virt_console"), i;
	bool on, ok;

	for (i = 0; i <= max; i++) {
		const char *v = conf_getf(c, "virt_console%d", i);
		char name[64];

		snprintf(key, sizeof(key), "virt_console%d", i);
		if (!v || !*v)
			continue;
		on = vm_yes(v, false, &ok);
		if (ok && !on)
			continue;
		if (ok)
			snprintf(name, sizeof(name), "console%d", i);
		else if (vm_name_ok(v, 63, NULL))
			snprintf(name, sizeof(name), "%s", v);
		else {
			vm_err("%s: \"%s\" is not yes, no or a port name", key,
			       v);
			return -EINVAL;
		}
		snprintf(ports + strlen(ports), sizeof(ports) - strlen(ports),
			 "%s%s=%s/vtcon%d.sock", ports[0] ? "," : "", name,
			 t->vm->dir, i);
	}
	if (!ports[0])
		return 0;
	return add_dev(t, "virt_console0", "virtio-console", "%s", ports);
}

static int tr_extras(struct tr *t)
{
	const struct conf *c = &t->vm->conf;
	const char *listen = conf_get(c, "graphics_listen");
	const char *res = conf_get(c, "graphics_res");
	const char *gwait = conf_get(c, "graphics_wait");
	const char *pw = conf_get(c, "vnc_password");
	bool rnd, gfx, mouse, wait = false, ok;
	unsigned port, w = 800, h = 600;
	int max, i, rc;

	if ((rc = get_bool(c, "virt_random", false, &rnd)) ||
	    (rnd && (rc = add_dev(t, "virt_random", "virtio-rnd", "%s", ""))))
		return rc;
	if ((rc = tr_vtcon(t)))
		return rc;
	if ((rc = get_bool(c, "graphics", false, &gfx)) ||
	    (rc = get_bool(c, "xhci_mouse", false, &mouse)) ||
	    (rc = get_uint(c, "graphics_port", 5900, 1, 65535, &port)))
		return rc;
	if (gfx) {
		if (res && *res &&
		    (sscanf(res, "%ux%u", &w, &h) != 2 || w < 640 || h < 480 ||
		     w > 3840 || h > 2160)) {
			vm_err("graphics_res: \"%s\" is not WIDTHxHEIGHT "
			       "(640x480 to 3840x2160)",
			       res);
			return -EINVAL;
		}
		if (gwait && *gwait && strcmp(gwait, "auto")) {
			wait = vm_yes(gwait, false, &ok);
			if (!ok) {
				vm_err("graphics_wait: \"%s\" is not yes, no "
				       "or auto",
				       gwait);
				return -EINVAL;
			}
		} else if (gwait && !strcmp(gwait, "auto")) {
			wait = t->ro->iso != NULL;
		}
		if ((listen && (rc = opt_safe("graphics_listen", listen))) ||
		    (pw && (rc = opt_safe("vnc_password", pw))))
			return rc;
		rc = add_dev(t, "graphics", "fbuf", "tcp=%s:%u,w=%u,h=%u%s%s%s",
			     listen && *listen ? listen : "0.0.0.0", port, w, h,
			     wait ? ",wait" : "", pw && *pw ? ",password=" : "",
			     pw && *pw ? pw : "");
		if (rc)
			return rc;
	}
	if (mouse && (rc = add_dev(t, "xhci_mouse", "xhci", "tablet")))
		return rc;
	max = max_index(c, "passthru");
	for (i = 0; i <= max; i++) {
		const char *v = conf_getf(c, "passthru%d", i);
		unsigned b, s, f;
		char key[32], tail;

		snprintf(key, sizeof(key), "passthru%d", i);
		if (!v || !*v)
			continue;
		if (sscanf(v, "%u/%u/%u%c", &b, &s, &f, &tail) != 3 ||
		    b > 255 || s > 31 || f > 7) {
			vm_err("%s: \"%s\" is not a host PCI bus/slot/function "
			       "such as 3/0/0",
			       key, v);
			return -EINVAL;
		}
		if ((rc = add_dev(t, key, "passthru", "%u/%u/%u", b, s, f)))
			return rc;
	}
	return 0;
}

static int tr_coms(struct tr *t)
{
	const char *list = conf_get(&t->vm->conf, "comports");
	char *copy, *tok, *save = NULL;
	unsigned n, i;
	int rc = 0;

	copy = strdup(list && *list ? list : "com1");
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, " \t,", &save); tok && !rc;
	     tok = strtok_r(NULL, " \t,", &save)) {
		if (strncmp(tok, "com", 3) || tok[3] < '1' || tok[3] > '4' ||
		    tok[4]) {
			vm_err("comports: \"%s\" is not com1, com2, com3 or "
			       "com4",
			       tok);
			rc = -EINVAL;
			break;
		}
		n = (unsigned)(tok[3] - '0');
		for (i = 0; i < t->plan->ncoms; i++)
			if (t->plan->coms[i] == n)
				break;
		if (i < t->plan->ncoms)
			continue;
		t->plan->coms[t->plan->ncoms++] = n;
	}
	free(copy);
	if (rc)
		return rc;
	for (i = 0; i < t->plan->ncoms; i++) {
		unsigned cn = t->plan->coms[i];
		const char *path = t->ro->com[cn - 1];

		if (t->ro->foreground && cn == t->plan->coms[0])
			path = "stdio";
		if (argv_add(&t->plan->args, "-l") ||
		    argv_add(&t->plan->args, "com%u,%s", cn,
			     path ? path : "<pty>"))
			return -ENOMEM;
	}
	return 0;
}

static int tr_tail(struct tr *t)
{
	const struct conf *c = &t->vm->conf;
	const char *opts = conf_get(c, "bhyve_options");
	char *copy, *tok, *save = NULL;
	bool debug;
	int rc;

	if ((rc = get_bool(c, "debug", false, &debug)))
		return rc;
	if (debug && (argv_add(&t->plan->args, "-o") ||
		      argv_add(&t->plan->args, "log.debug=true")))
		return -ENOMEM;
	if (opts && *opts) {
		copy = strdup(opts);
		if (!copy)
			return -ENOMEM;
		for (tok = strtok_r(copy, " \t", &save); tok;
		     tok = strtok_r(NULL, " \t", &save)) {
			if (argv_add(&t->plan->args, "%s", tok)) {
				free(copy);
				return -ENOMEM;
			}
		}
		free(copy);
	}
	return argv_add(&t->plan->args, "%s", t->vm->name) ? -ENOMEM : 0;
}

int vm_translate(const struct vm *vm, const struct vm_runopts *ro,
		 struct vm_plan *plan)
{
	struct tr t = {.vm = vm, .ro = ro, .plan = plan};
	int rc;

	memset(plan, 0, sizeof(*plan));
	if (!ro->quiet)
		vm_check_keys(vm);
	if ((rc = get_uint(&vm->conf, "stop_timeout", VM_STOP_TIMEOUT, 1, 3600,
			   &plan->stop_timeout)) ||
	    (rc = get_uint(&vm->conf, "start_slot", 4, 1, 30, &t.slot)))
		goto fail;
	if (argv_add(&plan->args, "%s", vm_khyve_path())) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = tr_cpu_mem(&t)) || (rc = tr_uuid(&t)) ||
	    (rc = tr_platform(&t)) || (rc = tr_disks(&t)) ||
	    (rc = tr_nics(&t)) || (rc = tr_extras(&t)) || (rc = tr_coms(&t)) ||
	    (rc = tr_loader(&t)) || (rc = tr_tail(&t)))
		goto fail;
	return 0;
fail:
	vm_plan_free(plan);
	return rc;
}

void vm_plan_free(struct vm_plan *plan)
{
	argv_free(&plan->args);
}

/* vm argv [-i ISO] NAME: print khyve's argv, one argument per line. */
int cmd_argv(struct vm_env *env, int argc, char **argv)
{
	struct vm_runopts ro = {0};
	char iso[PATH_MAX];
	struct vm_plan plan;
	struct vm vm;
	size_t i;
	int c, rc;

	optind = 1;
	while ((c = getopt(argc, argv, "+i:")) != -1) {
		if (c != 'i') {
			vm_err("usage: vm argv [-i iso] NAME");
			return -EINVAL;
		}
		if ((rc = vm_media_find(env, ".iso", optarg, iso, sizeof(iso))))
			return rc;
		ro.iso = iso;
	}
	if (argc - optind != 1) {
		vm_err("usage: vm argv [-i iso] NAME");
		return -EINVAL;
	}
	if ((rc = vm_open(env, argv[optind], &vm)))
		return rc;
	rc = vm_translate(&vm, &ro, &plan);
	vm_close(&vm);
	if (rc)
		return rc;
	for (i = 0; i < plan.args.n; i++)
		printf("%s\n", plan.args.v[i]);
	vm_plan_free(&plan);
	return 0;
}
