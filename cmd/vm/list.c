/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm list and vm info.  list prints vm-bhyve's columns (NAME DATASTORE
 * LOADER CPU MEMORY VNC AUTO STATE), -r only running VMs, --json an array
 * of objects with the same facts.  info prints vm-bhyve's per-VM report:
 * state, configuration, NICs (tap, switch, MAC), disks (path, format,
 * sizes, backing image), consoles and snapshots.
 *
 * Threads: single-threaded.  No locks (reads run.lock without locking it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/vm/vm.h"

unsigned vm_autostart_pos(const struct vm_env *env, const char *name)
{
	const char *list = conf_get(&env->sys, "vm_list");
	char *copy, *tok, *save = NULL;
	unsigned pos = 0, i = 0;

	if (!list || !(copy = strdup(list)))
		return 0;
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		i++;
		if (!strcmp(tok, name)) {
			pos = i;
			break;
		}
	}
	free(copy);
	return pos;
}

static const char *loader_of(const struct vm *vm)
{
	const char *l = conf_get(&vm->conf, "loader");

	if (l && *l)
		return l;
	return conf_get(&vm->conf, "kernel") ? "kernel" : "-";
}

static void vnc_of(const struct vm *vm, char *buf, size_t len)
{
	const char *l = conf_get(&vm->conf, "graphics_listen");
	const char *p = conf_get(&vm->conf, "graphics_port");

	if (!vm_yes(conf_get(&vm->conf, "graphics"), false, NULL)) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%s:%s", l && *l ? l : "0.0.0.0",
		 p && *p ? p : "5900");
}

static void cpu_of(const struct vm *vm, char *buf, size_t len)
{
	const char *c = conf_get(&vm->conf, "cpu");
	unsigned s = 1, co = 1, t = 1;
	const char *v;

	if (c && *c) {
		snprintf(buf, len, "%s", c);
		return;
	}
	if ((v = conf_get(&vm->conf, "cpu_sockets")))
		s = (unsigned)atoi(v);
	if ((v = conf_get(&vm->conf, "cpu_cores")))
		co = (unsigned)atoi(v);
	if ((v = conf_get(&vm->conf, "cpu_threads")))
		t = (unsigned)atoi(v);
	snprintf(buf, len, "%u", s * co * t);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

struct list_opts {
	bool running_only, json;
	unsigned count;
};

static int list_one(const struct vm_env *env, struct vm *vm, void *arg)
{
	struct list_opts *o = arg;
	const char *mem = conf_get(&vm->conf, "memory");
	char cpu[16], vnc[80], state[32], autos[24];
	unsigned pos = vm_autostart_pos(env, vm->name);
	bool up;
	pid_t pid;

	up = vm_running(vm, &pid);
	if (o->running_only && !up)
		return 0;
	cpu_of(vm, cpu, sizeof(cpu));
	vnc_of(vm, vnc, sizeof(vnc));
	if (!mem || !*mem)
		mem = "256M";
	if (up && pid > 0)
		snprintf(state, sizeof(state), "Running (%d)", (int)pid);
	else
		snprintf(state, sizeof(state), "%s", up ? "Busy" : "Stopped");
	if (pos)
		snprintf(autos, sizeof(autos), "Yes [%u]", pos);
	else
		snprintf(autos, sizeof(autos), "No");
	if (!o->json) {
		printf("%-15s %-15s %-11s %-6s %-9s %-21s %-8s %s\n", vm->name,
		       vm->ds->name, loader_of(vm), cpu, mem, vnc, autos,
		       state);
		return 0;
	}
	printf("%s\n  {\"name\": ", o->count++ ? "," : "");
	json_str(vm->name);
	printf(", \"datastore\": ");
	json_str(vm->ds->name);
	printf(", \"loader\": ");
	json_str(loader_of(vm));
	printf(", \"cpu\": %d, \"memory\": ", atoi(cpu));
	json_str(mem);
	printf(", \"vnc\": ");
	if (strcmp(vnc, "-"))
		json_str(vnc);
	else
		printf("null");
	printf(", \"autostart\": %s, \"autostart_order\": %u, \"state\": "
	       "\"%s\", \"pid\": ",
	       pos ? "true" : "false", pos,
	       up ? (pid > 0 ? "running" : "busy") : "stopped");
	if (up && pid > 0)
		printf("%d}", (int)pid);
	else
		printf("null}");
	return 0;
}

int cmd_list(struct vm_env *env, int argc, char **argv)
{
	struct list_opts o = {0};
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j"))
			o.json = true;
		else if (!strcmp(argv[i], "-r"))
			o.running_only = true;
		else if (!strcmp(argv[i], "-v"))
			continue; /* accepted: the columns are fixed */
		else {
			vm_err("usage: vm list [-r] [--json]");
			return -EINVAL;
		}
	}
	if (o.json)
		printf("[");
	else
		printf("%-15s %-15s %-11s %-6s %-9s %-21s %-8s %s\n", "NAME",
		       "DATASTORE", "LOADER", "CPU", "MEMORY", "VNC", "AUTO",
		       "STATE");
	rc = vm_foreach(env, list_one, &o);
	if (o.json)
		printf("%s]\n", o.count ? "\n" : "");
	return rc;
}

/* ---- vm info ---- */

static void info_nics(const struct vm *vm)
{
	struct vm_runopts ro = {.quiet = true};
	struct vm_plan plan;
	unsigned i;

	if (vm_translate(vm, &ro, &plan))
		return;
	for (i = 0; i < plan.nnics; i++) {
		const struct vm_nic *n = &plan.nics[i];

		printf("\n  network-interface\n");
		printf("    number: %u\n", n->idx);
		printf("    emulation: %s\n", n->model);
		printf("    virtual-switch: %s\n", n->sw[0] ? n->sw : "-");
		printf("    fixed-mac-address: %s\n",
		       n->fixed_mac ? "yes" : "no");
		printf("    mac: %s\n", n->mac);
		printf("    virtual-port: %s%s\n", n->tap,
		       n->own_tap ? "" : " (network_device)");
	}
	vm_plan_free(&plan);
}

static void info_disks(const struct vm *vm)
{
	char path[PATH_MAX], a[32], b[32];
	struct vm_img img;
	struct stat st;
	unsigned i;

	for (i = 0; i < VM_MAX_DISKS; i++) {
		const char *type = conf_getf(&vm->conf, "disk%u_type", i);
		const char *dev = conf_getf(&vm->conf, "disk%u_dev", i);
		const char *opts = conf_getf(&vm->conf, "disk%u_opts", i);

		if (vm_disk_path(vm, i, path, sizeof(path)))
			break;
		printf("\n  virtual-disk\n");
		printf("    number: %u\n", i);
		printf("    device-type: %s\n", dev && *dev ? dev : "file");
		printf("    emulation: %s\n",
		       type && *type ? type : "virtio-blk");
		printf("    options: %s\n", opts && *opts ? opts : "-");
		printf("    system-path: %s\n", path);
		if (stat(path, &st) < 0) {
			printf("    status: missing\n");
			continue;
		}
		if (vm_img_read(path, &img) == 0) {
			printf("    format: %s\n", img.qcow2 ? "qcow2" : "raw");
			printf("    bytes-size: %llu (%s)\n",
			       (unsigned long long)img.size,
			       vm_human(img.size, a, sizeof(a)));
			if (img.backing[0])
				printf("    backing-image: %s\n", img.backing);
		}
		printf("    bytes-used: %llu (%s)\n",
		       (unsigned long long)st.st_blocks * 512,
		       vm_human((uint64_t)st.st_blocks * 512, b, sizeof(b)));
	}
}

static void info_snapshots(const struct vm *vm)
{
	char dir[PATH_MAX];
	struct stat st;

	if (vm_fmt(dir, sizeof(dir), "%s/.snapshots", vm->dir) ||
	    stat(dir, &st) < 0)
		return;
	printf("\n  snapshots\n");
	vm_snapshot_list(vm, "    ");
}

static void info_consoles(const struct vm *vm)
{
	char key[8], val[128];
	unsigned i;

	for (i = 1; i <= VM_MAX_COMS; i++) {
		snprintf(key, sizeof(key), "com%u", i);
		if (!vm_runtime_get(vm, key, val, sizeof(val)))
			printf("  console: %s on %s (vm console %s%s%s)\n", key,
			       val, vm->name, i > 1 ? " " : "",
			       i > 1 ? key : "");
	}
}

/* Resident memory of khyve (the monitor's child), from /proc. */
static void info_rss(pid_t monitor)
{
	char path[64], *text = NULL, *p;
	char kids[256];
	pid_t child;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)monitor,
		 (int)monitor);
	if (vm_read_file(path, &text, NULL))
		return;
	snprintf(kids, sizeof(kids), "%s", text);
	free(text);
	child = (pid_t)atoi(kids);
	if (child <= 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)child);
	if (vm_read_file(path, &text, NULL))
		return;
	p = strstr(text, "VmRSS:");
	if (p) {
		p += 6;
		while (*p == ' ' || *p == '\t')
			p++;
		printf("  khyve-pid: %d\n", (int)child);
		printf("  memory-resident: %.*s\n", (int)strcspn(p, "\n"), p);
	}
	free(text);
}

static int info_one(const struct vm_env *env, struct vm *vm)
{
	const char *uuid = conf_get(&vm->conf, "uuid");
	const char *mem = conf_get(&vm->conf, "memory");
	char cpu[16], vnc[80];
	unsigned pos = vm_autostart_pos(env, vm->name);
	pid_t pid;
	bool up = vm_running(vm, &pid);

	cpu_of(vm, cpu, sizeof(cpu));
	vnc_of(vm, vnc, sizeof(vnc));
	printf("------------------------\n");
	printf("Virtual Machine: %s\n", vm->name);
	printf("------------------------\n");
	if (up && pid > 0)
		printf("  state: running (%d)\n", (int)pid);
	else
		printf("  state: %s\n", up ? "busy" : "stopped");
	printf("  datastore: %s\n", vm->ds->name);
	printf("  path: %s\n", vm->dir);
	printf("  loader: %s\n", loader_of(vm));
	printf("  uuid: %s\n", uuid && *uuid ? uuid : "-");
	printf("  cpu: %s\n", cpu);
	printf("  memory: %s\n", mem && *mem ? mem : "256M");
	printf("  vnc: %s\n", vnc);
	if (pos)
		printf("  autostart: yes [%u]\n", pos);
	else
		printf("  autostart: no\n");
	if (up && pid > 0) {
		info_rss(pid);
		info_consoles(vm);
	}
	info_nics(vm);
	info_disks(vm);
	info_snapshots(vm);
	printf("\n");
	return 0;
}

static int info_cb(const struct vm_env *env, struct vm *vm, void *arg)
{
	(void)arg;
	return info_one(env, vm);
}

int cmd_info(struct vm_env *env, int argc, char **argv)
{
	struct vm vm;
	int i, rc = 0;

	if (argc < 2)
		return vm_foreach(env, info_cb, NULL);
	for (i = 1; i < argc; i++) {
		if (vm_open(env, argv[i], &vm)) {
			rc = -ENOENT;
			continue;
		}
		info_one(env, &vm);
		vm_close(&vm);
	}
	return rc;
}
