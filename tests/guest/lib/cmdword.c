/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Bare words on the command line ("wait", "verbose"): cmdline_has_word().
 * start.c's cmdline_get() only finds "key=value" pairs.
 *
 * State: reads boot_info.cmdline only.  No locks.
 */
#include "guest.h"

bool cmdline_has_word(const char *word)
{
	const char *p = boot_info.cmdline;
	size_t wlen = strlen(word), n;

	if (!wlen)
		return false;
	while (*p) {
		while (*p == ' ')
			p++;
		for (n = 0; p[n] && p[n] != ' '; n++)
			;
		if (n == wlen && !strncmp(p, word, wlen))
			return true;
		p += n;
	}
	return false;
}
