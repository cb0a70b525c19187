/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * triplefault: load an empty IDT and raise #DE.  The #DE cannot be
 * delivered (#GP), nor can that (#DF): the CPU shuts down.  khyve exit
 * status 3.  BSP only.
 */
#include "guest.h"

const char guest_name[] = "triplefault";

void guest_main(void)
{
	printf("triplefault: loading an empty IDT and dividing by zero\n");
	triple_fault();
}
