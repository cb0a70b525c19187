/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * khyvectl(8): bhyvectl(8) for khyve.  Talks to one running VM by name
 * through its control socket RUNDIR/NAME/ctl.sock (src/ctl/ctl.h): each
 * action is one request ("get-stats", "get-reg 0 rip", "destroy", ...)
 * answered by handlers the VM registered.  Actions run in bhyvectl's fixed
 * order (registers, stats, segment registers, reset/poweroff, destroy,
 * suspend), whatever the order on the command line, and the first failure
 * stops the run.
 *
 * Exit status 0 on success, 1 on failure with one line "khyvectl: ...".
 * The VM's reply text is printed as is on stdout.
 *
 * Threads: one.  No locks.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"
#include "lib/log.h"

enum act_kind {
	ACT_PLAIN, /* "cmd" */
	ACT_CPU,   /* "cmd CPU" */
	ACT_REG,   /* "get-reg CPU reg" */
	ACT_FILE,  /* "cmd /abs/file" */
};

struct act {
	const char *opt;  /* long option */
	const char *word; /* command word, or register name for ACT_REG */
	enum act_kind kind;
};

/* In execution order (bhyvectl's). */
static const struct act acts[] = {
	{"get-all", "get-all", ACT_CPU},
	{"get-efer", "efer", ACT_REG},
	{"get-cr0", "cr0", ACT_REG},
	{"get-cr2", "cr2", ACT_REG},
	{"get-cr3", "cr3", ACT_REG},
	{"get-cr4", "cr4", ACT_REG},
	{"get-dr0", "dr0", ACT_REG},
	{"get-dr1", "dr1", ACT_REG},
	{"get-dr2", "dr2", ACT_REG},
	{"get-dr3", "dr3", ACT_REG},
	{"get-dr6", "dr6", ACT_REG},
	{"get-dr7", "dr7", ACT_REG},
	{"get-rsp", "rsp", ACT_REG},
	{"get-rip", "rip", ACT_REG},
	{"get-rax", "rax", ACT_REG},
	{"get-rbx", "rbx", ACT_REG},
	{"get-rcx", "rcx", ACT_REG},
	{"get-rdx", "rdx", ACT_REG},
	{"get-rsi", "rsi", ACT_REG},
	{"get-rdi", "rdi", ACT_REG},
	{"get-rbp", "rbp", ACT_REG},
	{"get-r8", "r8", ACT_REG},
	{"get-r9", "r9", ACT_REG},
	{"get-r10", "r10", ACT_REG},
	{"get-r11", "r11", ACT_REG},
	{"get-r12", "r12", ACT_REG},
	{"get-r13", "r13", ACT_REG},
	{"get-r14", "r14", ACT_REG},
	{"get-r15", "r15", ACT_REG},
	{"get-rflags", "rflags", ACT_REG},
	{"get-stats", "get-stats", ACT_PLAIN},
	{"get-cs", "cs", ACT_REG},
	{"get-ds", "ds", ACT_REG},
	{"get-es", "es", ACT_REG},
	{"get-fs", "fs", ACT_REG},
	{"get-gs", "gs", ACT_REG},
	{"get-ss", "ss", ACT_REG},
	{"get-tr", "tr", ACT_REG},
	{"get-ldtr", "ldtr", ACT_REG},
	{"power-button", "power-button", ACT_PLAIN},
	{"force-reset", "force-reset", ACT_PLAIN},
	{"force-poweroff", "force-poweroff", ACT_PLAIN},
	{"destroy", "destroy", ACT_PLAIN},
	{"suspend", "suspend", ACT_FILE},
};

#define NACTS (sizeof(acts) / sizeof(acts[0]))

enum { OPT_VM = 1000, OPT_CPU, OPT_RUNDIR, OPT_ACT /* + index */ };

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: khyvectl --vm=<vmname>\n"
		   "       [--rundir=<dir>]\n"
		   "       [--cpu=<vcpu_number>]\n");
	for (i = 0; i < NACTS; i++)
		fprintf(f, "       [--%s%s]\n", acts[i].opt,
			acts[i].kind == ACT_FILE ? "=<file>" : "");
	fprintf(f, "       [-h | --help]\n");
}

/* A usage error: one line, exit 1. */
static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fatal(1, "%s (see khyvectl --help)", msg);
}

static unsigned parse_cpu(const char *s)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno || v > 65535)
		usage_error("--cpu=%s: not a vCPU number (0-65535)", s);
	return (unsigned)v;
}

/* --suspend's file, made absolute (the VM may run in another directory). */
static char *parse_file(const char *s)
{
	char cwd[PATH_MAX], *abs;
	size_t i;

	if (!s[0])
		usage_error("--suspend: empty file name");
	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			usage_error("--suspend: control character in the "
				    "file name");
	if (s[0] == '/')
		abs = strdup(s);
	else if (!getcwd(cwd, sizeof(cwd)))
		fatal(1, "--suspend=%s: current directory: %s", s,
		      strerror(errno));
	else if (asprintf(&abs, "%s/%s", cwd, s) < 0)
		abs = NULL;
	if (!abs)
		fatal(1, "out of memory");
	if (strlen(abs) + sizeof("suspend ") >= CTL_REQ_MAX)
		usage_error("--suspend=%s: file name too long", s);
	return abs;
}

/* Reply text as one line: trailing newlines cut, others become "; ". */
static void one_line(char *text)
{
	size_t len = strlen(text);
	char *p;

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	for (p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

/* Send one request; print the reply.  0, or exits 1 on failure. */
static void run(const char *rundir, const char *vm, const char *cmdline,
		bool quiet)
{
	char path[PATH_MAX], *text = NULL;
	size_t len = 0;
	FILE *f;
	int rc, status = 0;

	rc = ctl_sock_path(rundir, vm, path, sizeof(path));
	if (rc == -ENAMETOOLONG)
		fatal(1, "vm %s: socket path under %s is too long", vm,
		      rundir ? rundir : ctl_default_rundir());
	f = open_memstream(&text, &len);
	if (!f)
		fatal(1, "out of memory");
	rc = ctl_call(rundir, vm, cmdline, f, &status);
	if (fclose(f) != 0)
		fatal(1, "out of memory");
	switch (rc) {
	case 0:
		break;
	case -ENOENT:
		fatal(1, "vm %s: no such VM (%s)", vm, path);
	case -ETIMEDOUT:
		fatal(1, "vm %s: no reply within %d s (%s)", vm,
		      CTL_CALL_TIMEOUT_MS / 1000, path);
	case -EPROTO:
		fatal(1, "vm %s: malformed reply (%s)", vm, path);
	case -ECONNRESET:
		fatal(1, "vm %s: connection closed before a reply (%s)", vm,
		      path);
	default:
		fatal(1, "vm %s: %s: %s", vm, path, strerror(-rc));
	}
	if (status < 0) {
		char word[CTL_CMD_MAX + 1];

		snprintf(word, sizeof(word), "%.*s", (int)strcspn(cmdline, " "),
			 cmdline);
		one_line(text);
		fatal(1, "vm %s: %s: %s", vm, word,
		      text[0] ? text : strerror(-status));
	}
	if (!quiet && len > 0 && fwrite(text, 1, len, stdout) != len)
		fatal(1, "stdout: %s", strerror(errno));
	free(text);
}

int main(int argc, char **argv)
{
	struct option opts[NACTS + 5];
	bool want[NACTS] = {false};
	const char *vm = NULL, *rundir = NULL;
	char *file = NULL;
	unsigned cpu = 0;
	bool any = false;
	size_t i;
	int ch;

	log_init("khyvectl");
	opts[0] = (struct option){"vm", required_argument, NULL, OPT_VM};
	opts[1] = (struct option){"cpu", required_argument, NULL, OPT_CPU};
	opts[2] =
		(struct option){"rundir", required_argument, NULL, OPT_RUNDIR};
	opts[3] = (struct option){"help", no_argument, NULL, 'h'};
	for (i = 0; i < NACTS; i++)
		opts[4 + i] = (struct option){acts[i].opt,
					      acts[i].kind == ACT_FILE
						      ? required_argument
						      : no_argument,
					      NULL, OPT_ACT + (int)i};
	opts[4 + NACTS] = (struct option){NULL, 0, NULL, 0};

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_VM:
			vm = optarg;
			break;
		case OPT_CPU:
			cpu = parse_cpu(optarg);
			break;
		case OPT_RUNDIR:
			if (!optarg[0])
				usage_error("--rundir: empty directory");
			rundir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			usage_error("option %s needs a value",
				    argv[optind - 1]);
		case '?':
			if (strncmp(argv[optind - 1], "--", 2) == 0)
				usage_error("bad option %s", argv[optind - 1]);
			usage_error("unknown option -%c", optopt);
		default:
			i = (size_t)(ch - OPT_ACT);
			want[i] = true;
			any = true;
			if (acts[i].kind == ACT_FILE) {
				free(file);
				file = parse_file(optarg);
			}
			break;
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!vm)
		usage_error("missing --vm=NAME");
	if (!ctl_name_valid(vm))
		usage_error("--vm=%s: not a valid VM name", vm);

	if (!any) {
		/* Like bhyvectl --vm=NAME alone: succeed iff the VM exists. */
		run(rundir, vm, "ping", true);
		return 0;
	}
	if (want[0])
		for (i = 0; i < NACTS; i++)
			if (strcmp(acts[i].opt, "get-stats") == 0)
				want[i] = true;
	for (i = 0; i < NACTS; i++) {
		char line[CTL_REQ_MAX];

		if (!want[i])
			continue;
		/* as in bhyvectl, get-all is every register plus the stats:
		 * the VM's "get-all" prints the registers */
		if (want[0] && acts[i].kind == ACT_REG)
			continue;
		switch (acts[i].kind) {
		case ACT_PLAIN:
			snprintf(line, sizeof(line), "%s", acts[i].word);
			break;
		case ACT_CPU:
			snprintf(line, sizeof(line), "%s %u", acts[i].word,
				 cpu);
			break;
		case ACT_REG:
			snprintf(line, sizeof(line), "get-reg %u %s", cpu,
				 acts[i].word);
			break;
		case ACT_FILE:
			snprintf(line, sizeof(line), "%s %s", acts[i].word,
				 file);
			break;
		}
		run(rundir, vm, line, false);
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		fatal(1, "stdout: %s", strerror(errno));
	free(file);
	return 0;
}
