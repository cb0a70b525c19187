/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * hello: the smallest guest.  Prints a greeting and the command line,
 * then PASS (VMM exit status 33).  BSP only.
 */
#include "guest.h"

const char guest_name[] = "hello";

void guest_main(void)
{
	printf("Hello from khyve guest\n");
	printf("cmdline: \"%s\"\n", boot_info.cmdline);
	guest_pass();
}
