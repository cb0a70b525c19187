#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Install the Debian packages a make target needs, only when one is missing
# (idempotent and quiet).  Usage: tools/deps.sh check|demo|demo-linux|bench
#   check       build + tests (acpica-tools lets t_acpi disassemble the
#               tables with iasl; socat/python3 drive the socket tests)
#   demo        build only
#   demo-linux  + busybox-static and cpio for the initramfs
#   bench       + QEMU (the side-by-side peer) and bc
set -e
BASE="gcc make libc6-dev linux-libc-dev pkg-config perl zlib1g-dev libslirp-dev libmd-dev"
case "${1:-check}" in
check) PKGS="$BASE acpica-tools python3 qemu-utils iproute2 tcpdump" ;;
demo) PKGS="$BASE" ;;
demo-linux) PKGS="$BASE busybox-static cpio" ;;
bench) PKGS="$BASE qemu-system-x86 bc iproute2" ;;
*) echo "usage: $0 check|demo|demo-linux|bench" >&2; exit 2 ;;
esac
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing (run as root to install)" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends $missing >/dev/null
