/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Device tests for the virtio-pci transport and virtio-rnd without KVM:
 * identity and capabilities, modern and legacy initialisation, feature
 * negotiation (VERSION_1 required on the modern interface), requests with
 * MSI-X and with INTx+ISR, the PCI-config access window, and hostile
 * drivers (rings outside RAM, a descriptor loop, a buffer outside RAM) that
 * must end in DEVICE_NEEDS_RESET, never a crash, and recover on reset.
 */
#include "tests/dev/vdrv.h"
#include "tests/tap.h"

static int all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_modern(struct vdrv_machine *m)
{
	struct vdrv d;
	uint64_t f, buf = vdrv_alloc(m, 4096, 4096);
	uint64_t gpa[1] = {buf};
	uint32_t len[1] = {256}, id, ulen;
	bool wr[1] = {true};
	unsigned c, types = 0;

	is_int(vdrv_probe(&d, m, 3, false, true), 0, "modern: probe");
	is_int(vdrv_cfg(&d, PCIR_DEVICE, 2), 0x1005, "transitional id 1005");
	is_int(vdrv_cfg(&d, PCIR_SUBDEV, 2), VIRTIO_ID_RNG, "subsystem = 4");
	is_int(vdrv_cfg(&d, PCIR_REVID, 1), 0, "revision 0 (transitional)");
	for (c = vdrv_cfg(&d, PCIR_CAP_PTR, 1); c; c = vdrv_cfg(&d, c + 1, 1))
		if (vdrv_cfg(&d, c, 1) == VIRTIO_PCI_CAP_VNDR)
			types |= 1u << vdrv_cfg(&d, c + 3, 1);
	is_int(types, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 5),
	       "common, notify, ISR and PCI-cfg capabilities (no device cfg)");
	ok(d.bar4 >= PCI_MMIO32_BASE && d.bar4 < PCI_MMIO32_END,
	   "small 64-bit modern BAR placed below 4 GiB");

	/* a modern driver that refuses VERSION_1 can't set FEATURES_OK */
	f = vdrv_negotiate(&d, 0);
	ok(!(vdrv_get_status(&d) & VIRTIO_STATUS_FEATURES_OK),
	   "FEATURES_OK refused without VERSION_1");
	f = vdrv_negotiate(&d, VIRTIO_BIT(VIRTIO_F_VERSION_1) |
				       VIRTIO_BIT(VIRTIO_F_EVENT_IDX) |
				       VIRTIO_BIT(63));
	is_int(f,
	       VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_F_EVENT_IDX),
	       "offered features intersected");
	ok(vdrv_get_status(&d) & VIRTIO_STATUS_FEATURES_OK,
	   "FEATURES_OK accepted");
	is_int(vdrv_common(&d, VIRTIO_PCI_COMMON_NUMQ, 2, false, 0), 1,
	       "one queue");
	vdrv_common(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, true, 0);
	is_int(vdrv_common(&d, VIRTIO_PCI_COMMON_Q_SIZE, 2, false, 0), 64,
	       "max queue size 64");
	vdrv_msix_vec(&d, 1, 0x41);
	vdrv_queue(&d, 0, 16, 1);
	is_int(vdrv_common(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, false, 0), 1,
	       "queue enabled");
	vdrv_driver_ok(&d);
	m->msi_count = 0;
	vdrv_post(&d, 0, 1, gpa, len, wr);
	is_int(vdrv_used(&d, 0, &id, &ulen), 1, "request completed");
	is_int(id, 0, "used id = head");
	is_int(ulen, 256, "256 bytes written");
	ok(!all_zero(vdrv_ptr(m, buf), 256), "buffer holds random bytes");
	ok(all_zero(vdrv_ptr(m, buf + 256), 256), "nothing past the buffer");
	is_int(m->msi_count, 1, "MSI-X vector 1 fired");
	is_int(m->msi_data, 0x41, "with its data");

	/* a buffer outside guest RAM */
	gpa[0] = VDRV_RAM - 16;
	len[0] = 64;
	vdrv_post(&d, 0, 1, gpa, len, wr);
	ok(vdrv_get_status(&d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET,
	   "buffer past RAM: DEVICE_NEEDS_RESET");
	is_int(vdrv_used(&d, 0, &id, &ulen), 0, "nothing completed");
	gpa[0] = buf;
	vdrv_post(&d, 0, 1, gpa, len, wr);
	is_int(vdrv_used(&d, 0, &id, &ulen), 0,
	       "a broken device ignores kicks until reset");
	vdrv_status(&d, 0);
	is_int(vdrv_get_status(&d), 0, "reset clears NEEDS_RESET");
	vdrv_negotiate(&d, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	vdrv_queue(&d, 0, 16, 1);
	vdrv_driver_ok(&d);
	vdrv_post(&d, 0, 1, gpa, len, wr);
	is_int(vdrv_used(&d, 0, &id, &ulen), 1, "works again after reset");

	/* a descriptor loop */
	vdrv_desc(&d, 0, 5, buf, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 6);
	vdrv_desc(&d, 0, 6, buf, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 5);
	vdrv_publish(&d, 0, 5, true);
	ok(vdrv_get_status(&d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET,
	   "descriptor loop: DEVICE_NEEDS_RESET");

	/* rings outside RAM */
	vdrv_status(&d, 0);
	vdrv_negotiate(&d, VIRTIO_BIT(VIRTIO_F_VERSION_1));
	vdrv_common(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, true, 0);
	vdrv_common(&d, VIRTIO_PCI_COMMON_Q_DESCLO, 4, true, 0xfffff000);
	vdrv_common(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, true, 1);
	is_int(vdrv_common(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, false, 0), 0,
	       "ring outside RAM: queue stays disabled");
	ok(vdrv_get_status(&d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET,
	   "and the device needs reset");
	vdrv_common(&d, VIRTIO_PCI_COMMON_Q_SELECT, 2, true, 7);
	vdrv_common(&d, VIRTIO_PCI_COMMON_Q_ENABLE, 2, true, 1);
	vdrv_mmio(m, d.bar4 + 0x3000 + 7 * 4, 2, true, 7);
	vdrv_mmio(m, d.bar4 + 0x3ffe, 2, true, 0xffff);
	ok(1, "selecting/kicking nonexistent queues is harmless");
	vdrv_status(&d, 0);
}

static void test_legacy(struct vdrv_machine *m)
{
	struct vdrv d;
	uint64_t buf = vdrv_alloc(m, 4096, 4096);
	uint64_t gpa[2] = {buf, buf + 100};
	uint32_t len[2] = {100, 28}, id, ulen;
	bool wr[2] = {true, true};
	struct pci_dev *pd;
	unsigned gsi;

	is_int(vdrv_probe(&d, m, 4, true, false), 0, "legacy: probe");
	pd = pci_find(m->root, 0, 4, 0);
	gsi = pd->intx_gsi;
	ok(gsi >= 16 && gsi < 24, "INTx routed to an IOAPIC pin (%u)", gsi);
	is_int(vdrv_negotiate(&d, 0xffffffff) >> 32, 0,
	       "legacy sees only the low 32 feature bits");
	vdrv_queue(&d, 0, 0, 0xffff);
	is_int(d.q[0].size, 64, "legacy queue size is fixed (64)");
	vdrv_driver_ok(&d);
	vdrv_post(&d, 0, 2, gpa, len, wr);
	is_int(vdrv_used(&d, 0, &id, &ulen), 1, "legacy request completed");
	is_int(ulen, 128, "two segments filled");
	is_int(m->level[gsi], 1, "INTx asserted");
	is_int(vdrv_pio(m, d.io + VIRTIO_PCI_LEGACY_ISR, 1, false, 0), 1,
	       "ISR says queue interrupt");
	is_int(m->level[gsi], 0, "reading ISR deasserts INTx");
	is_int(vdrv_pio(m, d.io + VIRTIO_PCI_LEGACY_ISR, 1, false, 0), 0,
	       "ISR read clears it");
	vdrv_pio(m, d.io + VIRTIO_PCI_LEGACY_QUEUE_SEL, 2, true, 0);
	vdrv_pio(m, d.io + VIRTIO_PCI_LEGACY_QUEUE_PFN, 4, true, 0xfffff);
	ok(vdrv_get_status(&d) & VIRTIO_STATUS_DEVICE_NEEDS_RESET,
	   "legacy PFN outside RAM: DEVICE_NEEDS_RESET");
	vdrv_status(&d, 0);
}

static void test_pcicfg(struct vdrv_machine *m)
{
	struct vdrv d;
	unsigned c;

	vdrv_probe(&d, m, 3, false, false);
	for (c = vdrv_cfg(&d, PCIR_CAP_PTR, 1); c; c = vdrv_cfg(&d, c + 1, 1))
		if (vdrv_cfg(&d, c, 1) == VIRTIO_PCI_CAP_VNDR &&
		    vdrv_cfg(&d, c + 3, 1) == VIRTIO_PCI_CAP_PCI_CFG)
			break;
	ok(c != 0, "PCI-cfg access capability present");
	vdrv_cfgw(&d, c + 4, 1, 4);			 /* BAR 4 */
	vdrv_cfgw(&d, c + 8, 4, VIRTIO_PCI_COMMON_NUMQ); /* offset */
	vdrv_cfgw(&d, c + 12, 4, 2);			 /* length */
	is_int(vdrv_cfg(&d, c + 16, 4) & 0xffff, 1,
	       "num_queues read through the config window");
	vdrv_cfgw(&d, c + 8, 4, VIRTIO_PCI_COMMON_STATUS);
	vdrv_cfgw(&d, c + 12, 4, 1);
	vdrv_cfgw(&d, c + 16, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	is_int(vdrv_get_status(&d), VIRTIO_STATUS_ACKNOWLEDGE,
	       "status written through the config window");
	vdrv_cfgw(&d, c + 12, 4, 3);
	vdrv_cfg(&d, c + 16, 4);
	ok(1, "odd window length ignored");
	vdrv_status(&d, 0);
}

int main(void)
{
	static const char *const kv[] = {
		"pci.0.3.0.device", "virtio-rnd", "pci.0.4.0.device",
		"virtio-rnd",	    NULL,
	};
	static const char *const kv_msi[] = {
		"pci.0.3.0.device", "virtio-rnd", "virtio_msix", "false", NULL,
	};
	struct vdrv_machine m;
	struct vdrv d;
	unsigned c, msix = 0, msi = 0;

	plan_no_plan();
	is_int(vdrv_machine_new(&m, kv), 0, "machine with two virtio-rnd");
	test_modern(&m);
	test_legacy(&m);
	test_pcicfg(&m);
	vdrv_machine_free(&m);

	is_int(vdrv_machine_new(&m, kv_msi), 0, "virtio_msix=false (-W)");
	vdrv_probe(&d, &m, 3, false, false);
	for (c = vdrv_cfg(&d, PCIR_CAP_PTR, 1); c; c = vdrv_cfg(&d, c + 1, 1)) {
		msix |= vdrv_cfg(&d, c, 1) == PCIY_MSIX;
		msi |= vdrv_cfg(&d, c, 1) == PCIY_MSI;
	}
	ok(!msix && msi, "-W: MSI capability instead of MSI-X");
	vdrv_machine_free(&m);
	return done_testing();
}
