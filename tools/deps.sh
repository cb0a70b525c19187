#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Install the Debian packages khyve's build and tests need, only when one is
# missing (idempotent and quiet).  'check' is what make check/demo call.
set -e
PKGS="gcc make libc6-dev linux-libc-dev pkg-config perl qemu-system-x86 \
busybox-static cpio bc"
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
