/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vm(8), the vm-bhyve-style manager: what the subcommand files share.
 *
 * A datastore is a directory; each VM is a subdirectory NAME/ holding
 * NAME.conf (vm-bhyve's key="value" lines), its disks, vm.log (the monitor's
 * log), comN.log (console output) and, while it runs, run.lock (the
 * monitor's pid, flock()ed exclusively for the monitor's life) and
 * comN.sock (console sockets).  The default datastore (VM_DIR) also holds
 * .templates/, .iso/, .img/ and .config/system.conf (datastores, switches,
 * autostart list).
 *
 * Files: main.c (dispatch), util.c (strings, processes, files), conf.c (the
 * key="value" format), datastore.c (VM_DIR, datastores, VM lookup, locks,
 * init, get/set), templates.c (built-in templates), translate.c (config ->
 * khyve argv, key checks), create.c (create, destroy, edit), run.c (start,
 * stop, ...), monitor.c (the per-VM monitor process), console.c (the
 * console client), list.c (list, info), snapshot.c (snapshot, rollback,
 * clone), switch.c (switches and taps), media.c (iso, img), autostart.c.
 *
 * Threads: every vm process is single-threaded.  No locks besides the
 * per-VM run.lock file lock.
 *
 * Conventions: functions return 0 or -errno; user errors are one line on
 * stderr ("vm: ...") printed where they are detected, so callers only
 * propagate the status.  Only main.c exits.
 *
 * Subcommands: every cmd_NAME(env, argc, argv) below runs "vm NAME ...",
 * with argv[0] the command word and env loaded by main.c; it prints its
 * results on stdout and returns 0, or -errno after one error line.  vm(8)
 * documents each one.
 */
#ifndef KHYVE_CMD_VM_VM_H
#define KHYVE_CMD_VM_VM_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define VM_NAME_MAX 64	 /* longest VM, snapshot or datastore name */
#define VM_SWITCH_MAX 12 /* "vm-" + name must fit IFNAMSIZ - 1 */
#define VM_MAX_DISKS 32	 /* diskN, N < this */
#define VM_MAX_NICS 16	 /* networkN, N < this */
#define VM_MAX_COMS 4	 /* com1..com4 */
#define VM_DEFAULT_DIR "/var/lib/khyve"
#define VM_GLOBAL_CONF "/etc/khyve/vm.conf"
#define VM_STOP_TIMEOUT 30 /* seconds before vm stop destroys the VM */

/* ---- util.c ---- */

/* A growable NULL-terminated argument vector. */
struct argv {
	char **v;
	size_t n, cap;
};

/* Append a copy of s (printf format).  Returns 0 or -ENOMEM. */
int argv_add(struct argv *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Free every string and the vector. */
void argv_free(struct argv *a);

/* Print "vm: msg" on stderr (one line). */
void vm_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "vm: warning: msg" on stderr. */
void vm_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* snprintf that reports truncation: 0 or -ENAMETOOLONG. */
int vm_fmt(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* True for yes/true/on/1 (case-insensitive); *ok false when s is neither a
 * yes nor a no word.  NULL is 'def'. */
bool vm_yes(const char *s, bool def, bool *ok);
/* Parse a size "512M", "20G", "1048576" (bytes without suffix unless
 * 'mb_default').  Returns 0 or -EINVAL. */
int vm_parse_size(const char *s, bool mb_default, uint64_t *out);
/* "1.50G" style, for humans, into buf. */
const char *vm_human(uint64_t v, char *buf, size_t len);
/* True when s is a valid name: 1..max chars of [A-Za-z0-9_.-] plus the
 * characters in 'extra', not starting with '.' or '-'. */
bool vm_name_ok(const char *s, size_t max, const char *extra);
/* A fresh random UUID (lower-case, 36 chars) into buf[37].  0 or -errno. */
int vm_uuid(char *buf);
/* FNV-1a 64-bit hash of s. */
uint64_t vm_hash(const char *s);

/* mkdir -p with 'mode' for the missing components.  0 or -errno. */
int vm_mkdirs(const char *path, mode_t mode);
/* rm -rf of a directory tree (does not follow symlinks).  0 or -errno. */
int vm_rmtree(const char *path);
/* Read a whole small file (NUL-terminated, malloc'd).  0 or -errno. */
int vm_read_file(const char *path, char **out, size_t *len);
/* Write 'data' to path through path.tmp + rename.  0 or -errno (logged). */
int vm_write_file(const char *path, const char *data, size_t len, mode_t m);
/* Copy src to dst (through dst.part + rename) with a progress bar on a
 * terminal stderr.  0 or -errno (logged). */
int vm_copy_file(const char *src, const char *dst);
/* Ask "prompt (y/n)? " on stdin; true for an answer starting with y. */
bool vm_confirm(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Run argv (argv[0] looked up in PATH, then /usr/sbin, /sbin, /usr/bin,
 * /bin), wait for it.  Its stdout goes to *out (malloc'd; out NULL: our
 * stdout).  With 'err', its stderr is captured and, on failure, its last
 * line put in err ('errlen' bytes); without, it goes to our stderr.
 * Returns the exit status (>= 0), or -errno when it could not run
 * (-ENOENT: not found).
 */
int vm_run_cmd(const char *const argv[], char **out, char *err, size_t errlen);

/* The directory of khyve, khyvectl and khyve-img: $KHYVE_BIN_DIR, else
 * the directory of /proc/self/exe.  Static buffer. */
const char *vm_bindir(void);
/* Full path of the khyve binary (vm_bindir()/khyve). */
const char *vm_khyve_path(void);

/* ---- conf.c: vm-bhyve's key="value" files ---- */

struct conf_line {
	char *raw; /* the line as read (comments, blanks), or NULL */
	char *key; /* NULL for comments and blank lines */
	char *val;
};

struct conf {
	struct conf_line *l;
	size_t n, cap;
};

/* Parse text into c (empty first).  Errors name 'what' and the line:
 * "what:3: cannot parse ...".  Returns 0 or -EINVAL/-ENOMEM. */
int conf_parse(struct conf *c, const char *text, const char *what);
/* Read and parse a file; a missing file is -ENOENT (logged unless
 * 'quiet_missing').  Returns 0 or -errno. */
int conf_load(struct conf *c, const char *path, bool quiet_missing);
/* The value of the last line setting key, or NULL. */
const char *conf_get(const struct conf *c, const char *key);
/* conf_get with a printf-formatted key. */
const char *conf_getf(const struct conf *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Set key (replace its last line, drop earlier ones, or append).  0 or
 * -ENOMEM. */
int conf_set(struct conf *c, const char *key, const char *val);
/* Remove every line setting key. */
void conf_unset(struct conf *c, const char *key);
/* The file text (malloc'd), values quoted as key="value". */
char *conf_text(const struct conf *c);
/* Write the file atomically.  0 or -errno (logged). */
int conf_save(const struct conf *c, const char *path);
/* Free all lines; c is empty afterwards and can be reused. */
void conf_free(struct conf *c);

/* ---- datastore.c ---- */

struct vm_ds {
	char name[VM_NAME_MAX + 1];
	char path[PATH_MAX];
};

/* Everything a command needs to find things. */
struct vm_env {
	char dir[PATH_MAX]; /* the default datastore (VM_DIR) */
	char sysconf[PATH_MAX];
	struct conf sys; /* dir/.config/system.conf */
	struct vm_ds *ds;
	size_t nds; /* ds[0] is "default" */
};

/* One VM: where it lives and its configuration. */
struct vm {
	char name[VM_NAME_MAX + 1];
	const struct vm_ds *ds;
	char dir[PATH_MAX];
	char confpath[PATH_MAX];
	struct conf conf;
};

/*
 * Find VM_DIR ($VM_DIR, vm_dir= in /etc/khyve/vm.conf or $VM_CONFIG,
 * else /var/lib/khyve) and load its system.conf.  With 'need_init' a
 * missing VM_DIR is an error ("run vm init").  Returns 0 or -errno.
 */
int vm_env_load(struct vm_env *env, bool need_init);
/* Save system.conf.  0 or -errno. */
int vm_env_save(struct vm_env *env);
void vm_env_free(struct vm_env *env);
/* The datastore called 'name' or NULL (logged). */
const struct vm_ds *vm_env_ds(const struct vm_env *env, const char *name);

/* Find VM 'name' in any datastore and load its config.  -ENOENT ("NAME:
 * no such virtual machine") or another -errno, logged. */
int vm_open(const struct vm_env *env, const char *name, struct vm *vm);
/* Like vm_open, quietly; -ENOENT when absent. */
int vm_lookup(const struct vm_env *env, const char *name, struct vm *vm);
void vm_close(struct vm *vm);
/* Call fn for every VM of every datastore (sorted per datastore); stops
 * at the first non-zero return, which it returns. */
int vm_foreach(const struct vm_env *env,
	       int (*fn)(const struct vm_env *env, struct vm *vm, void *arg),
	       void *arg);

/* Path of a file in the VM dir: dir/file.  0 or -ENAMETOOLONG. */
int vm_path(const struct vm *vm, const char *file, char *buf, size_t len);

/* True when the monitor runs; *pid gets its pid (or 0). */
bool vm_running(const struct vm *vm, pid_t *pid);
/* Read a runtime value ("com1", ...) the monitor wrote to run.lock. */
int vm_runtime_get(const struct vm *vm, const char *key, char *buf, size_t len);
/* Take the VM's lock for an offline change (snapshot, rollback, destroy):
 * returns an fd to close when done, or -EBUSY ("NAME is running") or
 * another -errno, logged. */
int vm_lock_offline(const struct vm *vm);

/* vm init, vm datastore, vm get, vm set */
int cmd_init(struct vm_env *env, int argc, char **argv);
int cmd_datastore(struct vm_env *env, int argc, char **argv);
int cmd_get(struct vm_env *env, int argc, char **argv);
int cmd_set(struct vm_env *env, int argc, char **argv);

/* ---- templates.c ---- */

struct vm_template {
	const char *name;
	const char *text;
};
/* The built-in templates, NULL-terminated. */
extern const struct vm_template vm_templates[];

/* ---- translate.c ---- */

struct vm_nic {
	unsigned idx;
	const char *model;	    /* "virtio-net", "e1000" */
	char sw[VM_SWITCH_MAX + 1]; /* switch name, or "" */
	char tap[24];		    /* interface khyve opens (< 16) */
	bool own_tap;		    /* created and removed by the monitor */
	char mac[18];
	bool fixed_mac;
};

struct vm_model_use {
	char key[40];	/* config key that asked for it */
	char model[24]; /* PCI model name */
};

/* What starting a VM needs besides its argv. */
struct vm_plan {
	struct argv args;
	struct vm_nic nics[VM_MAX_NICS];
	unsigned nnics;
	unsigned coms[VM_MAX_COMS]; /* com numbers (1..4) */
	unsigned ncoms;
	struct vm_model_use models[40];
	unsigned nmodels;
	unsigned stop_timeout; /* seconds */
};

/* Runtime choices for the translation. */
struct vm_runopts {
	const char *iso;	      /* install: the ISO to attach, or NULL */
	bool foreground;	      /* com1 on stdio */
	const char *com[VM_MAX_COMS]; /* pty path per com, NULL: "<pty>" */
	bool quiet;		      /* no warnings about unknown keys */
};

/*
 * Translate vm's configuration into khyve's command line (plan->args,
 * argv[0] = the khyve binary) and the resources the monitor must set up.
 * Unknown keys are warned about by name.  Returns 0, or -EINVAL after one
 * line naming the key.
 */
int vm_translate(const struct vm *vm, const struct vm_runopts *ro,
		 struct vm_plan *plan);
void vm_plan_free(struct vm_plan *plan);
/* Warn about keys vm does not know (once per key).  Returns the count. */
unsigned vm_check_keys(const struct vm *vm);
/* The MAC vm gives NIC idx of a VM with this uuid (stable). */
void vm_nic_mac(const char *seed, unsigned idx, char mac[18]);
/* The disk file of diskN: 0 and path, -ENOENT if there is no diskN, or
 * -EINVAL (logged) for a bad entry. */
int vm_disk_path(const struct vm *vm, unsigned idx, char *buf, size_t len);

/* vm argv */
int cmd_argv(struct vm_env *env, int argc, char **argv);

/* ---- create.c ---- */
int cmd_create(struct vm_env *env, int argc, char **argv);
int cmd_destroy(struct vm_env *env, int argc, char **argv);
int cmd_edit(struct vm_env *env, int argc, char **argv);
/* Create a disk image: qcow2 when the name ends in .qcow2 (an overlay on
 * 'backing' when not NULL), else a sparse raw file.  0 or -errno. */
int vm_disk_create(const char *path, uint64_t size, const char *backing);

/* ---- run.c ---- */
int cmd_start(struct vm_env *env, int argc, char **argv);
int cmd_install(struct vm_env *env, int argc, char **argv);
int cmd_stop(struct vm_env *env, int argc, char **argv);
int cmd_restart(struct vm_env *env, int argc, char **argv);
int cmd_poweroff(struct vm_env *env, int argc, char **argv);
int cmd_reset(struct vm_env *env, int argc, char **argv);
int cmd_startall(struct vm_env *env, int argc, char **argv);
int cmd_stopall(struct vm_env *env, int argc, char **argv);
/* Start one VM (the monitor in the background, or in the foreground).
 * 0 or -errno (logged). */
int vm_start_one(struct vm_env *env, const char *name, const char *iso,
		 bool foreground);
/* Stop one VM and wait for it.  0 or -errno (logged). */
int vm_stop_one(struct vm_env *env, const char *name, bool wait);

/* ---- monitor.c ---- */

/*
 * Run the monitor for vm (already translated into plan): set up taps and
 * ptys, run khyve, restart it on reboot, relay consoles, until the VM
 * stops.  'ready_fd' (or -1) gets one status line for the starting vm
 * process.  'lock_fd' is run.lock, already locked.  Returns the exit status
 * for the monitor process.
 */
int vm_monitor(struct vm *vm, const struct vm_runopts *ro, int lock_fd,
	       int ready_fd);

/* ---- console.c ---- */
int cmd_console(struct vm_env *env, int argc, char **argv);

/* ---- list.c ---- */
int cmd_list(struct vm_env *env, int argc, char **argv);
int cmd_info(struct vm_env *env, int argc, char **argv);
/* Autostart position (1-based) of 'name' in vm_list, 0 if not listed. */
unsigned vm_autostart_pos(const struct vm_env *env, const char *name);

/* ---- snapshot.c ---- */
int cmd_snapshot(struct vm_env *env, int argc, char **argv);
int cmd_rollback(struct vm_env *env, int argc, char **argv);
int cmd_clone(struct vm_env *env, int argc, char **argv);
/* Names of the VMs whose disks are overlays on files of 'vm' (clones),
 * space-separated into buf ("" when none).  0 or -errno. */
int vm_clones_of(const struct vm_env *env, const struct vm *vm, char *buf,
		 size_t len);

/* Print NAME@SNAP and its date per snapshot, each line after 'indent'. */
void vm_snapshot_list(const struct vm *vm, const char *indent);

/* One qcow2 header as vm needs it (no locks taken). */
struct vm_img {
	bool qcow2;
	uint64_t size;		/* virtual size */
	char backing[PATH_MAX]; /* stored backing name, or "" */
};
/* Read an image's header.  0 or -errno (quiet). */
int vm_img_read(const char *path, struct vm_img *img);

/* ---- switch.c ---- */
int cmd_switch(struct vm_env *env, int argc, char **argv);
/* Re-create the configured switches (vm init). */
int vm_switch_restore(struct vm_env *env);
/* The bridge of switch sw: bridge_SW (manual switches) or vm-SW. */
void vm_switch_bridge(const char *sw, char *buf, size_t len);
/* True when the bridge of switch sw exists. */
bool vm_switch_exists(const char *sw);
/* Create tap 'nic->tap' and plug it into its switch; on failure the reason
 * is put in err.  Remove it again with vm_tap_destroy.  0 or -errno. */
int vm_tap_create(const struct vm *vm, const struct vm_nic *nic, char *err,
		  size_t errlen);
void vm_tap_destroy(const struct vm_nic *nic);

/* ---- media.c ---- */
int cmd_iso(struct vm_env *env, int argc, char **argv);
int cmd_img(struct vm_env *env, int argc, char **argv);
/* Resolve an ISO or image argument: a path, or a name in DS/.iso (.img) of
 * any datastore.  0 or -ENOENT (logged). */
int vm_media_find(const struct vm_env *env, const char *sub, const char *arg,
		  char *buf, size_t len);

/* ---- autostart.c ---- */
int cmd_autostart(struct vm_env *env, int argc, char **argv);

#endif
