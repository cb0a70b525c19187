#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# make demo: boot the demo guest (tests/guest/demo.c) with a bhyve-style
# command line.  It prints the CPUs it finds in the ACPI MADT, the e820
# map, the PCI devices on bus 0 and the RTC time, then powers off through
# ACPI S5, so khyve exits with status 1 (bhyve's "powered off").
B=${1:-build}
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "demo: /dev/kvm is missing or not accessible; khyve needs KVM" >&2
	exit 4
fi
export KHYVE_RUNDIR=${KHYVE_RUNDIR:-$(mktemp -d)}
set -x
"$B/khyve" -c 2 -m 512M -H -P -w -u -s 0,hostbridge -s 31,lpc \
	-l com1,stdio -o boot.kernel="$B/tests/guest/demo.elf" demo </dev/null
status=$?
set +x
echo "demo: khyve exited with status $status (1 = the guest powered off)"
[ "$status" -eq 1 ]
