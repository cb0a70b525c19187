#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# End-to-end: boot each test guest of tests/guest/ under khyve and check
# its exit status and its serial output (TAP, run by prove).  Skips when
# /dev/kvm cannot be opened read-write or $KHYVE_BUILD/khyve is missing.
#
# Each run is
#   khyve -c N -m 256M -H -P -w -u -s 0,hostbridge -s 31,lpc
#         -l com1,stdio -l pc-testdev -o boot.kernel=ELF
#         -o boot.cmdline="cpus=N [extra]" vmNAME </dev/null
# under `timeout 60`, and gives one "ok" line for the exit status and one
# per expected line of output; a run whose output shows an exception also
# fails its output checks.  Guest protocol: tests/guest/README.md.
#
# Single-threaded; runs are sequential; temporary files removed on exit.

. "$(dirname "$0")/lib.sh"

# guest NAME CPUS EXPECTED_STATUS EXTRA_CMDLINE "LINE" ["LINE"...]
# Boots NAME with CPUS vCPUs; each LINE is a fixed string that must
# appear in the output (checked by lib.sh's check).
guest() {
	name=$1
	cpus=$2
	want=$3
	extra=$4
	shift 4
	elf=$guestdir/$name.elf
	cmdline="cpus=$cpus${extra:+ $extra}"
	what="$name -c $cpus"
	if [ ! -f "$elf" ]; then
		ok 0 "$what: exit status $want"
		echo "# $elf missing (make guests)"
		for line in "$@"; do
			ok 0 "$what: prints \"$line\""
		done
		return
	fi
	timeout "${GUEST_TIMEOUT:-60}" "$khyve" -c "$cpus" -m 256M -H -P -w -u \
		-s 0,hostbridge -s 31,lpc -l com1,stdio -l pc-testdev \
		-o "boot.kernel=$elf" -o "boot.cmdline=$cmdline" \
		"vm$name" </dev/null >"$tmp/raw" 2>&1
	st=$?
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
	check "$what" "$want" "$@"
}

guest hello 1 33 "hello=world" "Hello from khyve guest" \
	'cmdline: "cpus=1 hello=world"' "PASS hello"
guest smp 2 33 "" "smp: AP with APIC id" "PASS smp"
guest rtc 1 33 "" "PASS rtc"
guest acpi 1 33 "" "PASS acpi"
guest acpi 2 33 "" "PASS acpi"
guest halt 2 2 "" "halt: all 2 CPUs halting"
guest triplefault 1 3 "" "triplefault: loading an empty IDT"
guest poweroff 1 1 "" "poweroff: entering ACPI S5"
guest reset 1 0 "" "reset: writing 0x06 to port 0xcf9"
guest ring3 1 33 "" "ring3: entering ring 3"
guest demo 2 1 "" "== CPUs (ACPI MADT)" "CPU 1: APIC id" \
	"== Memory map" "  00:00.0 " "  00:1f.0 " "== Real-time clock" \
	"ACPI: S5: SLP_TYP"
guest pio-loop 1 33 "n=1000" "PASS pio-loop"
guest mmio-loop 1 33 "n=1000" "mmio-loop: 1000 MMIO writes"
guest libtest 1 33 "" "libtest: " "PASS libtest"

echo "1..$n"
[ "$failed" -eq 0 ]
