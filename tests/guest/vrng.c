/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * vrng: reads 4 KiB from the first virtio entropy device (virtio 1.2
 * §5.4) through the modern interface, or the legacy one with "legacy" on
 * the command line, in requests of 512 bytes, polled.  Checks that every
 * request is answered with 1-512 bytes, and that the data look random: not
 * all zero, not one repeated byte, at least 200 distinct byte values and
 * a count of one-bits within 6 sigma of half.  PASS/FAIL per the kit.
 * BSP only, ring 0.
 */
#include "guest.h"

const char guest_name[] = "vrng";

#define TOTAL 4096
#define CHUNK 512
#define TIMEOUT_S 10

static struct vio_dev vd;

static void check_random(const uint8_t *b)
{
	static uint8_t seen[256];
	unsigned int i, distinct = 0, ones = 0, same = 0;
	uint8_t v;

	for (i = 0; i < TOTAL; i++) {
		v = b[i];
		if (!seen[v]++)
			distinct++;
		for (; v; v &= (uint8_t)(v - 1))
			ones++;
		v = b[i];
		if (v == b[0])
			same++;
	}
	printf("vrng: first bytes %02x %02x %02x %02x %02x %02x %02x %02x, "
	       "%u distinct values, %u one-bits of %u\n",
	       b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], distinct, ones,
	       TOTAL * 8);
	if (same == TOTAL)
		guest_fail("all %u bytes are 0x%02x", TOTAL, b[0]);
	if (distinct < 200)
		guest_fail("only %u distinct byte values", distinct);
	/* mean 16384, sigma sqrt(32768)/2 = 90.5 */
	if (ones < 16384 - 543 || ones > 16384 + 543)
		guest_fail("%u one-bits in %u (expected about half)", ones,
			   TOTAL * 8);
}

void guest_main(void)
{
	bool legacy = cmdline_has_word("legacy");
	unsigned int got = 0, reqs = 0;
	struct vio_seg seg;
	uint8_t *buf;
	uint32_t len;
	int rc;

	printf("vrng: looking for virtio-rng (%s interface)\n",
	       legacy ? "legacy" : "modern");
	if (vio_find(VIRTIO_ID_RNG, 0, &vd))
		guest_fail("no virtio entropy device on bus 0");
	if ((rc = vio_probe(&vd, legacy, true)))
		guest_fail("probe: %d", rc);
	if ((rc = vio_start(&vd, 0)))
		guest_fail("feature negotiation: %d", rc);
	printf("vrng: features offered 0x%lx, accepted 0x%lx\n", vd.offered,
	       vd.features);
	if ((rc = vio_queue_setup(&vd, 0, 64)))
		guest_fail("queue set-up: %d", rc);
	if ((rc = vio_driver_ok(&vd)))
		guest_fail("DRIVER_OK: status 0x%x", vio_get_status(&vd));
	printf("vrng: queue 0 has %u entries; reading %u bytes\n", vd.q[0].size,
	       TOTAL);
	buf = dma_zalloc(TOTAL, 4096);
	if (!buf)
		guest_fail("no memory for the buffer");
	while (got < TOTAL) {
		seg.addr = virt_to_phys(buf + got);
		seg.len = CHUNK;
		seg.write = true;
		rc = vio_transfer(&vd.q[0], &seg, 1, &len, TIMEOUT_S);
		if (rc)
			guest_fail("request %u: %d", reqs, rc);
		if (len > CHUNK)
			guest_fail(
				"device wrote %u bytes into a %u-byte buffer",
				len, CHUNK);
		if (len == 0 && ++reqs > 64)
			guest_fail("the device keeps returning empty buffers");
		got += len;
		reqs++;
	}
	printf("vrng: %u bytes in %u requests, %lu notifications\n", got, reqs,
	       vd.q[0].kicks);
	check_random(buf);
	if (vio_get_status(&vd) &
	    (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		guest_fail("device status 0x%x", vio_get_status(&vd));
	guest_pass();
}
