/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The templates vm init writes to VM_DIR/.templates/ (when a file of that
 * name is not there yet), so vm create -t NAME works from any install.
 * They follow vm-bhyve's sample-templates; khyve has no firmware yet, so
 * the Linux ones boot a kernel file directly (loader="kernel") and the
 * UEFI ones (freebsd, windows) are refused by vm start with a message
 * until firmware exists.
 *
 * Threads: constant data only.
 */
#include <stddef.h>

#include "cmd/vm/vm.h"

/* clang-format off */
const struct vm_template vm_templates[] = {
	{"default",
	 "# default: one CPU, 256M, a 20G qcow2 disk and a NIC on the\n"
	 "# \"public\" switch (vm switch create public).  khyve boots the\n"
	 "# kernel file directly: set kernel= (bzImage, PVH ELF or\n"
	 "# multiboot) and, if needed, initrd= and cmdline=.\n"
	 "loader=\"kernel\"\n"
	 "kernel=\"\"\n"
	 "cmdline=\"console=ttyS0\"\n"
	 "cpu=\"1\"\n"
	 "memory=\"256M\"\n"
	 "network0_type=\"virtio-net\"\n"
	 "network0_switch=\"public\"\n"
	 "disk0_type=\"virtio-blk\"\n"
	 "disk0_name=\"disk0.qcow2\"\n"
	 "disk0_size=\"20G\"\n"},
	{"linux",
	 "# linux: a Linux guest booted from a host kernel and initramfs\n"
	 "# (loader=\"kernel\"); the root file system on disk0 (/dev/vda).\n"
	 "loader=\"kernel\"\n"
	 "kernel=\"/boot/vmlinuz\"\n"
	 "initrd=\"/boot/initrd.img\"\n"
	 "cmdline=\"console=ttyS0 root=/dev/vda1 rw\"\n"
	 "cpu=\"2\"\n"
	 "memory=\"1G\"\n"
	 "virt_random=\"yes\"\n"
	 "network0_type=\"virtio-net\"\n"
	 "network0_switch=\"public\"\n"
	 "disk0_type=\"virtio-blk\"\n"
	 "disk0_name=\"disk0.qcow2\"\n"
	 "disk0_size=\"20G\"\n"},
	{"debian",
	 "# debian: install with the netboot installer's kernel and\n"
	 "# initrd (linux and initrd.gz of debian-installer/amd64), e.g.\n"
	 "#   vm install NAME debian-12-amd64-netinst.iso\n"
	 "# then point kernel=/initrd= at the installed system's files.\n"
	 "loader=\"kernel\"\n"
	 "kernel=\"linux\"\n"
	 "initrd=\"initrd.gz\"\n"
	 "cmdline=\"console=ttyS0,115200n8\"\n"
	 "cpu=\"2\"\n"
	 "memory=\"1G\"\n"
	 "virt_random=\"yes\"\n"
	 "network0_type=\"virtio-net\"\n"
	 "network0_switch=\"public\"\n"
	 "disk0_type=\"virtio-blk\"\n"
	 "disk0_name=\"disk0.qcow2\"\n"
	 "disk0_size=\"20G\"\n"},
	{"ubuntu",
	 "# ubuntu: like debian; kernel= and initrd= name the installer's\n"
	 "# (casper/vmlinuz, casper/initrd) or the installed system's files.\n"
	 "loader=\"kernel\"\n"
	 "kernel=\"vmlinuz\"\n"
	 "initrd=\"initrd\"\n"
	 "cmdline=\"console=ttyS0\"\n"
	 "cpu=\"2\"\n"
	 "memory=\"2G\"\n"
	 "virt_random=\"yes\"\n"
	 "network0_type=\"virtio-net\"\n"
	 "network0_switch=\"public\"\n"
	 "disk0_type=\"virtio-blk\"\n"
	 "disk0_name=\"disk0.qcow2\"\n"
	 "disk0_size=\"20G\"\n"},
	{"alpine",
	 "# alpine: the virt flavour's kernel and initramfs\n"
	 "# (boot/vmlinuz-virt, boot/initramfs-virt of the ISO).\n"
	 "loader=\"kernel\"\n"
	 "kernel=\"vmlinuz-virt\"\n"
	 "initrd=\"initramfs-virt\"\n"
	 "cmdline=\"console=ttyS0 modules=loop,squashfs,sd-mod,usb-storage\"\n"
	 "cpu=\"1\"\n"
	 "memory=\"512M\"\n"
	 "network0_type=\"virtio-net\"\n"
	 "network0_switch=\"public\"\n"
	 "disk0_type=\"virtio-blk\"\n"
	 "disk0_name=\"disk0.qcow2\"\n"
	 "disk0_size=\"8G\"\n"},
	{"freebsd",
	 "# freebsd: needs UEFI firmware, which khyve does not have yet\n"
	 "# (vm start says so).  A FreeBSD PVH kernel can be booted with\n"
	 "# loader=\"kernel\" and kernel=\"/path/to/kernel\" instead.\n"
	 "loader=\"uefi\"\n"
	 "cpu=\"1\"\n"
	 "memory=\"512M\"\n"
	 "network0_type=\"virtio-net\"\n"
	 "network0_switch=\"public\"\n"
	 "disk0_type=\"virtio-blk\"\n"
	 "disk0_name=\"disk0.qcow2\"\n"
	 "disk0_size=\"20G\"\n"},
	{"windows",
	 "# windows: needs UEFI firmware and a framebuffer, which khyve does\n"
	 "# not have yet (vm start says so).\n"
	 "loader=\"uefi\"\n"
	 "graphics=\"yes\"\n"
	 "xhci_mouse=\"yes\"\n"
	 "cpu=\"2\"\n"
	 "memory=\"4G\"\n"
	 "utctime=\"no\"\n"
	 "ahci_device_limit=\"8\"\n"
	 "network0_type=\"e1000\"\n"
	 "network0_switch=\"public\"\n"
	 "disk0_type=\"ahci-hd\"\n"
	 "disk0_name=\"disk0.qcow2\"\n"
	 "disk0_size=\"40G\"\n"},
	{NULL, NULL},
};
/* clang-format on */
