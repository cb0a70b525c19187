/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Virtual switches and the VMs' taps, on Linux bridges through ip(8).
 *
 * A switch NAME is the bridge "vm-NAME" (vm-bhyve's naming), or for
 * -t manual an existing bridge given with -b.  Its settings live in
 * system.conf as vm-bhyve keeps them: switch_list="a b", type_NAME,
 * ports_NAME (host interfaces added with vm switch add), mtu_NAME,
 * addr_NAME, bridge_NAME (manual).  Bridges do not survive a host reboot;
 * vm init re-creates them (vm-bhyve's per-boot vm init).
 *
 * Taps: the monitor creates one persistent tap per NIC before khyve first
 * runs ("vmtXXXXXXXX-N": a hash of the VM's uuid and the NIC number, so
 * the name is stable and fits IFNAMSIZ), plugs it into the switch's
 * bridge with the bridge's MTU, labels it with the alias "vm/NAME/netN",
 * keeps it across guest reboots and deletes it when the VM stops.  khyve
 * opens the existing tap (-s N,virtio-net,TAP).  A stale tap of the same
 * name (left by a killed monitor) is replaced.
 *
 * Threads: single-threaded.  No locks.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/vm/vm.h"

/* Run "ip ARGS..." (NULL-terminated); the reason of a failure in err. */
static int ip(char *err, size_t errlen, ...)
{
	const char *argv[16];
	char dummy[256];
	va_list ap;
	int n = 0, rc;

	argv[n++] = "ip";
	va_start(ap, errlen);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	rc = vm_run_cmd(argv, NULL, err, errlen);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "ip(8) not found (install iproute2)");
		return -ENOENT;
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot run ip: %s", strerror(-rc));
		return rc;
	}
	if (rc) {
		if (!err[0])
			snprintf(err, errlen, "ip %s %s failed", argv[1],
				 argv[2]);
		return -EIO;
	}
	return 0;
}

static bool iface_exists(const char *name)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/class/net/%s", name);
	return stat(path, &st) == 0;
}

static bool is_bridge(const char *name)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/sys/class/net/%s/bridge", name);
	return stat(path, &st) == 0;
}

static bool word_in(const char *list, const char *w)
{
	size_t wl = strlen(w);
	const char *p = list;

	while (p && *p) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, w, wl) && (p[wl] == ' ' || !p[wl]))
			return true;
		p = strchr(p, ' ');
	}
	return false;
}

/* list with w added or removed, into buf. */
static void word_edit(const char *list, const char *w, bool add, char *buf,
		      size_t len)
{
	char *copy = strdup(list ? list : ""), *tok, *save = NULL;

	buf[0] = '\0';
	if (copy) {
		for (tok = strtok_r(copy, " \t", &save); tok;
		     tok = strtok_r(NULL, " \t", &save))
			if (strcmp(tok, w))
				snprintf(buf + strlen(buf), len - strlen(buf),
					 "%s%s", buf[0] ? " " : "", tok);
		free(copy);
	}
	if (add)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
			 buf[0] ? " " : "", w);
}

/* Set or (val NULL/empty) remove the setting PREFIX_SW. */
static int set_key(struct vm_env *env, const char *prefix, const char *sw,
		   const char *val)
{
	char key[64];

	snprintf(key, sizeof(key), "%s_%s", prefix, sw);
	if (!val || !*val) {
		conf_unset(&env->sys, key);
		return 0;
	}
	return conf_set(&env->sys, key, val);
}

void vm_switch_bridge(const char *sw, char *buf, size_t len)
{
	struct vm_env env;
	const char *b = NULL;

	if (!vm_env_load(&env, false)) {
		b = conf_getf(&env.sys, "bridge_%s", sw);
		if (b && *b)
			snprintf(buf, len, "%s", b);
		vm_env_free(&env);
	}
	if (!b || !*b)
		snprintf(buf, len, "vm-%s", sw);
}

bool vm_switch_exists(const char *sw)
{
	char br[32];

	vm_switch_bridge(sw, br, sizeof(br));
	return is_bridge(br);
}

static bool switch_known(const struct vm_env *env, const char *sw)
{
	return word_in(conf_get(&env->sys, "switch_list"), sw);
}

static const char *bridge_of(const struct vm_env *env, const char *sw,
			     char *buf, size_t len)
{
	const char *b = conf_getf(&env->sys, "bridge_%s", sw);

	if (b && *b)
		snprintf(buf, len, "%s", b);
	else
		snprintf(buf, len, "vm-%s", sw);
	return buf;
}

/* Bring up a standard switch's bridge with its settings and ports. */
static int bridge_up(const struct vm_env *env, const char *sw, bool *made)
{
	const char *mtu = conf_getf(&env->sys, "mtu_%s", sw);
	const char *addr = conf_getf(&env->sys, "addr_%s", sw);
	const char *ports = conf_getf(&env->sys, "ports_%s", sw);
	char br[32], err[256], *copy, *tok, *save = NULL;
	int rc;

	bridge_of(env, sw, br, sizeof(br));
	*made = false;
	if (!iface_exists(br)) {
		if ((rc = ip(err, sizeof(err), "link", "add", br, "type",
			     "bridge", NULL))) {
			vm_err("switch %s: cannot create bridge %s: %s", sw, br,
			       err);
			return rc;
		}
		*made = true;
	} else if (!is_bridge(br)) {
		vm_err("switch %s: %s exists and is not a bridge", sw, br);
		return -EEXIST;
	}
	if (mtu && *mtu &&
	    (rc = ip(err, sizeof(err), "link", "set", "dev", br, "mtu", mtu,
		     NULL))) {
		vm_err("switch %s: mtu %s: %s", sw, mtu, err);
		return rc;
	}
	if (addr && *addr && *made &&
	    (rc = ip(err, sizeof(err), "addr", "add", addr, "dev", br, NULL))) {
		vm_err("switch %s: address %s: %s", sw, addr, err);
		return rc;
	}
	if ((rc = ip(err, sizeof(err), "link", "set", "dev", br, "up", NULL))) {
		vm_err("switch %s: cannot bring %s up: %s", sw, br, err);
		return rc;
	}
	if (!ports || !*ports || !(copy = strdup(ports)))
		return 0;
	for (tok = strtok_r(copy, " \t", &save); tok && !rc;
	     tok = strtok_r(NULL, " \t", &save)) {
		rc = ip(err, sizeof(err), "link", "set", "dev", tok, "master",
			br, NULL);
		if (!rc)
			rc = ip(err, sizeof(err), "link", "set", "dev", tok,
				"up", NULL);
		if (rc)
			vm_err("switch %s: cannot add %s: %s", sw, tok, err);
	}
	free(copy);
	return rc;
}

static int sw_create(struct vm_env *env, int argc, char **argv)
{
	const char *type = "standard", *iface = NULL, *mtu = NULL;
	const char *addr = NULL, *bridge = NULL, *sw;
	char list[4096], ports[64] = "";
	bool made = false;
	int c, rc;

	optind = 1;
	while ((c = getopt(argc, argv, "+t:i:m:a:b:n:p")) != -1) {
		switch (c) {
		case 't':
			type = optarg;
			break;
		case 'i':
			iface = optarg;
			break;
		case 'm':
			mtu = optarg;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'b':
			bridge = optarg;
			break;
		case 'n':
			vm_err("switch create -n: VLANs are not supported yet");
			return -ENOTSUP;
		case 'p':
			vm_err("switch create -p: private switches are not "
			       "supported yet");
			return -ENOTSUP;
		default:
			goto usage;
		}
	}
	if (argc - optind != 1)
		goto usage;
	sw = argv[optind];
	if (!vm_name_ok(sw, VM_SWITCH_MAX, NULL) || strchr(sw, '.')) {
		vm_err("switch %s: not a valid switch name (1 to %d characters "
		       "from A-Z a-z 0-9 _ -)",
		       sw, VM_SWITCH_MAX);
		return -EINVAL;
	}
	if (switch_known(env, sw)) {
		vm_err("switch %s already exists", sw);
		return -EEXIST;
	}
	if (strcmp(type, "standard") && strcmp(type, "manual")) {
		vm_err("switch create -t %s: only standard and manual switches "
		       "exist on Linux",
		       type);
		return -ENOTSUP;
	}
	if (!strcmp(type, "manual") != !!bridge) {
		vm_err("switch %s: -b BRIDGE goes with -t manual (and only "
		       "with it)",
		       sw);
		return -EINVAL;
	}
	if (bridge && !is_bridge(bridge)) {
		vm_err("switch %s: %s is not an existing bridge", sw, bridge);
		return -ENOENT;
	}
	if (iface && !iface_exists(iface)) {
		vm_err("switch %s: %s: no such interface", sw, iface);
		return -ENOENT;
	}
	if (mtu && (atoi(mtu) < 68 || atoi(mtu) > 65535)) {
		vm_err("switch %s: -m %s is not an MTU", sw, mtu);
		return -EINVAL;
	}
	if (iface)
		snprintf(ports, sizeof(ports), "%s", iface);
	word_edit(conf_get(&env->sys, "switch_list"), sw, true, list,
		  sizeof(list));
	if ((rc = conf_set(&env->sys, "switch_list", list)) ||
	    (rc = set_key(env, "type", sw, type)) ||
	    (rc = set_key(env, "bridge", sw, bridge)) ||
	    (rc = set_key(env, "ports", sw, ports)) ||
	    (rc = set_key(env, "mtu", sw, mtu)) ||
	    (rc = set_key(env, "addr", sw, addr)))
		return rc;
	if (!bridge && (rc = bridge_up(env, sw, &made))) {
		char br[32], err[256];

		if (made)
			ip(err, sizeof(err), "link", "del",
			   bridge_of(env, sw, br, sizeof(br)), NULL);
		return rc;
	}
	return vm_env_save(env);
usage:
	vm_err("usage: vm switch create [-t standard|manual] [-b bridge] "
	       "[-i interface] [-m mtu] [-a address/len] NAME");
	return -EINVAL;
}

static int sw_port(struct vm_env *env, const char *sw, const char *iface,
		   bool add)
{
	const char *ports = conf_getf(&env->sys, "ports_%s", sw);
	char br[32], err[256], list[1024];
	int rc;

	if (!switch_known(env, sw)) {
		vm_err("switch %s: no such switch", sw);
		return -ENOENT;
	}
	if (!vm_name_ok(iface, 15, NULL) || !iface_exists(iface)) {
		vm_err("%s: no such interface", iface);
		return -ENOENT;
	}
	if (add == word_in(ports, iface)) {
		vm_err("switch %s: %s is %s", sw, iface,
		       add ? "already a member" : "not a member");
		return add ? -EEXIST : -ENOENT;
	}
	bridge_of(env, sw, br, sizeof(br));
	if (add)
		rc = ip(err, sizeof(err), "link", "set", "dev", iface, "master",
			br, NULL);
	else
		rc = ip(err, sizeof(err), "link", "set", "dev", iface,
			"nomaster", NULL);
	if (!rc && add)
		rc = ip(err, sizeof(err), "link", "set", "dev", iface, "up",
			NULL);
	if (rc) {
		vm_err("switch %s: %s %s: %s", sw, add ? "add" : "remove",
		       iface, err);
		return rc;
	}
	word_edit(ports, iface, add, list, sizeof(list));
	if ((rc = set_key(env, "ports", sw, list)))
		return rc;
	return vm_env_save(env);
}

static int sw_destroy(struct vm_env *env, const char *sw)
{
	const char *type = conf_getf(&env->sys, "type_%s", sw);
	char br[32], err[256], list[4096];
	int rc;

	if (!switch_known(env, sw)) {
		vm_err("switch %s: no such switch", sw);
		return -ENOENT;
	}
	bridge_of(env, sw, br, sizeof(br));
	if ((!type || strcmp(type, "manual")) && iface_exists(br) &&
	    (rc = ip(err, sizeof(err), "link", "del", br, NULL))) {
		vm_err("switch %s: cannot delete bridge %s: %s", sw, br, err);
		return rc;
	}
	word_edit(conf_get(&env->sys, "switch_list"), sw, false, list,
		  sizeof(list));
	if ((rc = conf_set(&env->sys, "switch_list", list)))
		return rc;
	set_key(env, "type", sw, NULL);
	set_key(env, "bridge", sw, NULL);
	set_key(env, "ports", sw, NULL);
	set_key(env, "mtu", sw, NULL);
	set_key(env, "addr", sw, NULL);
	return vm_env_save(env);
}

static int sw_list(const struct vm_env *env, const char *only)
{
	const char *list = conf_get(&env->sys, "switch_list");
	char *copy, *tok, *save = NULL, br[32];

	printf("%-12s %-9s %-15s %-18s %-7s %-6s %-4s %s\n", "NAME", "TYPE",
	       "IFACE", "ADDRESS", "PRIVATE", "MTU", "VLAN", "PORTS");
	if (!list || !(copy = strdup(list)))
		return 0;
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		const char *type = conf_getf(&env->sys, "type_%s", tok);
		const char *addr = conf_getf(&env->sys, "addr_%s", tok);
		const char *mtu = conf_getf(&env->sys, "mtu_%s", tok);
		const char *ports = conf_getf(&env->sys, "ports_%s", tok);

		if (only && strcmp(only, tok))
			continue;
		bridge_of(env, tok, br, sizeof(br));
		printf("%-12s %-9s %-15s %-18s %-7s %-6s %-4s %s%s\n", tok,
		       type ? type : "standard", br, addr && *addr ? addr : "-",
		       "no", mtu && *mtu ? mtu : "-", "-",
		       ports && *ports ? ports : "-",
		       is_bridge(br) ? "" : "  (bridge missing: vm init)");
	}
	free(copy);
	return 0;
}

int vm_switch_restore(struct vm_env *env)
{
	const char *list = conf_get(&env->sys, "switch_list");
	char *copy, *tok, *save = NULL;
	bool made;
	int rc = 0;

	if (!list || !(copy = strdup(list)))
		return 0;
	for (tok = strtok_r(copy, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		const char *type = conf_getf(&env->sys, "type_%s", tok);

		if (type && !strcmp(type, "manual"))
			continue;
		if (bridge_up(env, tok, &made))
			rc = -EIO;
	}
	free(copy);
	return rc;
}

int cmd_switch(struct vm_env *env, int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "list"))
		return sw_list(env, NULL);
	if (!strcmp(argv[1], "info"))
		return sw_list(env, argc > 2 ? argv[2] : NULL);
	if (!strcmp(argv[1], "create"))
		return sw_create(env, argc - 1, argv + 1);
	if (!strcmp(argv[1], "add") && argc == 4)
		return sw_port(env, argv[2], argv[3], true);
	if (!strcmp(argv[1], "remove") && argc == 4)
		return sw_port(env, argv[2], argv[3], false);
	if (!strcmp(argv[1], "destroy") && argc == 3)
		return sw_destroy(env, argv[2]);
	vm_err("usage: vm switch list | info [NAME] | create [options] NAME | "
	       "add NAME IFACE | remove NAME IFACE | destroy NAME");
	return -EINVAL;
}

int vm_tap_create(const struct vm *vm, const struct vm_nic *nic, char *err,
		  size_t errlen)
{
	char br[32], mtu[16] = "", alias[VM_NAME_MAX + 16], why[256];
	char path[64], *text;
	int rc;

	vm_switch_bridge(nic->sw, br, sizeof(br));
	if (!is_bridge(br)) {
		snprintf(err, errlen,
			 "network%u_switch: switch %s does not "
			 "exist (vm switch create %s)",
			 nic->idx, nic->sw, nic->sw);
		return -ENOENT;
	}
	snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", br);
	if (!vm_read_file(path, &text, NULL)) {
		snprintf(mtu, sizeof(mtu), "%.*s", (int)strcspn(text, "\n"),
			 text);
		free(text);
	}
	if (iface_exists(nic->tap))
		ip(NULL, 0, "link", "del", nic->tap, NULL); /* stale */
	snprintf(alias, sizeof(alias), "vm/%s/net%u", vm->name, nic->idx);
	rc = ip(why, sizeof(why), "tuntap", "add", "dev", nic->tap, "mode",
		"tap", "vnet_hdr", NULL);
	if (!rc)
		rc = ip(why, sizeof(why), "link", "set", "dev", nic->tap,
			"master", br, "alias", alias, NULL);
	if (!rc && mtu[0])
		rc = ip(why, sizeof(why), "link", "set", "dev", nic->tap, "mtu",
			mtu, NULL);
	if (!rc)
		rc = ip(why, sizeof(why), "link", "set", "dev", nic->tap, "up",
			NULL);
	if (rc) {
		snprintf(err, errlen,
			 "network%u: cannot set up tap %s on "
			 "switch %s: %s",
			 nic->idx, nic->tap, nic->sw, why);
		ip(NULL, 0, "link", "del", nic->tap, NULL);
	}
	return rc;
}

void vm_tap_destroy(const struct vm_nic *nic)
{
	if (iface_exists(nic->tap))
		ip(NULL, 0, "link", "del", nic->tap, NULL);
}
