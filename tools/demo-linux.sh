#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# make demo-linux: boot Debian's kernel with a generated busybox initramfs
# to a shell on com1 (stdio).  For hosts with VT-x or AMD-V.
#
# The kernel is /boot/vmlinuz-* when present (or $KERNEL), otherwise
# Debian's linux-image-cloud-amd64 is fetched with apt-get download and
# unpacked under BUILD/linux (never installed).  The initramfs holds
# busybox-static and an /init that mounts /proc, /sys and /dev and starts
# a shell on ttyS0.
#
# On the nested "PVM" KVM of the project's build machines (kvm_pvm loaded,
# no vmx/svm) guest ring-0 code is emulated and stock kernels cannot boot;
# this script then prepares everything, says so and exits 1 instead of
# hanging.  FORCE=1 tries anyway (with a 120 s timeout).
set -eu
B=${1:-build}
W=$B/linux
mkdir -p "$W"

find_kernel() {
	if [ -n "${KERNEL:-}" ]; then echo "$KERNEL"; return; fi
	k=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -n "$k" ]; then echo "$k"; return; fi
	k=$(ls "$W"/root/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -n "$k" ]; then echo "$k"; return; fi
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-/ { print $2; exit }')
	[ -n "$pkg" ] || { echo "demo-linux: no kernel in /boot and no" \
		"linux-image-cloud-amd64 in apt (run apt-get update)" >&2; exit 4; }
	echo "demo-linux: fetching $pkg (apt-get download, not installed)" >&2
	(cd "$W" && apt-get download -qq "$pkg" >/dev/null)
	dpkg-deb -x "$W"/"$pkg"_*.deb "$W/root"
	ls "$W"/root/boot/vmlinuz-* | sort -V | tail -n 1
}

make_initramfs() {
	bb=/bin/busybox
	[ -x "$bb" ] || { echo "demo-linux: busybox-static is missing" >&2; exit 4; }
	rm -rf "$W/initramfs"
	mkdir -p "$W/initramfs/bin" "$W/initramfs/proc" "$W/initramfs/sys" \
		"$W/initramfs/dev"
	cp "$bb" "$W/initramfs/bin/busybox"
	for a in sh mount echo cat ls uname poweroff reboot setsid cttyhack; do
		ln -sf busybox "$W/initramfs/bin/$a"
	done
	cat >"$W/initramfs/init" <<'INIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "khyve demo-linux: $(uname -sr), $(grep -c ^processor /proc/cpuinfo) CPUs"
echo "type 'poweroff -f' to end the VM"
exec setsid cttyhack sh
INIT
	chmod 755 "$W/initramfs/init"
	(cd "$W/initramfs" && find . | cpio -o -H newc --quiet) | gzip -9 >"$W/initramfs.gz"
}

kernel=$(find_kernel)
make_initramfs
echo "demo-linux: kernel $kernel, initramfs $W/initramfs.gz"

if [ -d /sys/module/kvm_pvm ] || ! grep -qE '\b(vmx|svm)\b' /proc/cpuinfo; then
	echo "demo-linux: this host's /dev/kvm is the nested PVM flavour" \
	     "(kvm_pvm, no VT-x/AMD-V): guest ring-0 code is emulated and a" \
	     "stock Linux kernel cannot boot here.  Run 'make demo-linux' on a" \
	     "host with VT-x or AMD-V (or FORCE=1 to try anyway)." >&2
	[ "${FORCE:-0}" = 1 ] || exit 1
	T="timeout 120"
else
	T=""
fi
export KHYVE_RUNDIR=${KHYVE_RUNDIR:-$(mktemp -d)}
# shellcheck disable=SC2086
exec $T "$B/khyve" -c 2 -m 1G -H -P -w -u -s 0,hostbridge -s 31,lpc \
	-l com1,stdio -o boot.kernel="$kernel" -o boot.initrd="$W/initramfs.gz" \
	-o boot.cmdline="console=ttyS0 earlyprintk=serial rdinit=/init" linux
