/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Start-up probe for the benchmarks: runs a command with its stdout on a
 * pipe and reports, as one line of key=value pairs,
 *   first_byte_us  from fork() to the first byte the command writes
 *   total_us       from fork() to its exit
 *   maxrss_kb      its peak resident set size (wait4 rusage)
 *   status         its exit status
 * The command's output is discarded (with -v its stdout is copied to our
 * stderr and its stderr is left alone).
 *
 * Usage: spawn [-v] COMMAND [ARGS...]
 * Single-threaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
	long long t0, first = -1, end;
	struct rusage ru;
	int pfd[2], status, verbose = 0, nul;
	char buf[4096];
	ssize_t n;
	pid_t pid;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = 1;
		argv++;
		argc--;
	}
	if (argc < 2 || pipe(pfd) < 0) {
		fprintf(stderr, "usage: spawn [-v] COMMAND [ARGS...]\n");
		return 2;
	}
	t0 = now_us();
	pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		nul = open("/dev/null", O_RDWR);
		dup2(nul, STDIN_FILENO);
		dup2(pfd[1], STDOUT_FILENO);
		if (!verbose)
			dup2(nul, STDERR_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execvp(argv[1], argv + 1);
		_exit(127);
	}
	close(pfd[1]);
	while ((n = read(pfd[0], buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (first < 0)
			first = now_us() - t0;
		if (verbose && write(STDERR_FILENO, buf, (size_t)n) < 0)
			verbose = 0;
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		return 2;
	end = now_us() - t0;
	printf("first_byte_us=%lld total_us=%lld maxrss_kb=%ld status=%d\n",
	       first, end, ru.ru_maxrss,
	       WIFEXITED(status) ? WEXITSTATUS(status)
				 : 128 + WTERMSIG(status));
	return 0;
}
