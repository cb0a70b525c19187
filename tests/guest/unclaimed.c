/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * unclaimed: accesses that no device claims.  Reads port 0x1234 (or
 * port=N) as a byte, a word and a dword and expects all ones, writes all
 * three sizes, then reads, writes and reads again a dword of MMIO in the
 * PCI hole at 0xd0000000 (or mmio=N) and expects all ones each time.
 * Prints what it saw and the number of accesses it made, then PASS.  With
 * "wait" on the command line it prints "unclaimed: waiting" instead of
 * passing and sleeps with interrupts on (8259s masked), so that a test
 * can read khyve's counters with khyvectl and end it.
 *
 * Under khyve -e (x86.strictio) the first port read ends the VM with
 * status 4.  BSP only.
 */
#include "guest.h"

const char guest_name[] = "unclaimed";

#define DEF_PORT 0x1234
#define DEF_MMIO 0xd0000000ULL

void guest_main(void)
{
	uint64_t port = DEF_PORT, mmio = DEF_MMIO;
	uint32_t l, m1, m2;
	uint16_t w;
	uint8_t b;
	bool ok = true;

	if (cmdline_get_u64("port", &port) == -GUEST_EINVAL || port > 0xfffc)
		guest_fail("bad port= on the command line");
	if (cmdline_get_u64("mmio", &mmio) == -GUEST_EINVAL ||
	    mmio >= (1ULL << 32) - 4 || (mmio & 3))
		guest_fail("bad mmio= on the command line");

	printf("unclaimed: reading port 0x%lx\n", port);
	b = inb((uint16_t)port);
	w = inw((uint16_t)port);
	l = inl((uint16_t)port);
	printf("unclaimed: port 0x%lx reads byte 0x%x word 0x%x dword 0x%x\n",
	       port, b, w, l);
	ok = b == 0xff && w == 0xffff && l == 0xffffffff;
	outb((uint16_t)port, 0x5a);
	outw((uint16_t)port, 0x5a5a);
	outl((uint16_t)port, 0x5a5a5a5a);
	printf("unclaimed: wrote a byte, a word and a dword to port 0x%lx\n",
	       port);

	m1 = mmio_read32(mmio);
	mmio_write32(mmio, 0x12345678);
	m2 = mmio_read32(mmio);
	printf("unclaimed: MMIO 0x%lx reads 0x%x, after a write 0x%x\n", mmio,
	       m1, m2);
	if (m1 != 0xffffffff || m2 != 0xffffffff)
		ok = false;
	printf("unclaimed: 6 port accesses, 3 MMIO accesses\n");
	if (!ok)
		guest_fail("an unclaimed read did not return all ones");
	printf("unclaimed: all unclaimed reads returned all ones\n");
	if (!cmdline_has_word("wait"))
		guest_pass();
	pic_mask_all();
	printf("unclaimed: waiting\n");
	for (;;)
		cpu_wait_irq();
}
