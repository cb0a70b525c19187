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

diag_output() {
	echo "# serial output and messages:"
	sed -e 's/^/#   /' "$tmp/out"
}

# run NAME CPUS EXPECTED_STATUS EXTRA_CMDLINE "LINE" ["LINE"...]
# Each LINE is a fixed string that must appear in the output.
run() {
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
	bad=0
	if [ "$st" -eq "$want" ]; then
		ok 1 "$what: exit status $want"
	else
		ok 0 "$what: exit status $want"
		echo "# got exit status $st"
		bad=1
	fi
	exc=0
	if grep -q '^EXCEPTION vector' "$tmp/out"; then
		exc=1
	fi
	for line in "$@"; do
		if [ "$exc" -eq 0 ] && grep -qF -e "$line" "$tmp/out"; then
			ok 1 "$what: prints \"$line\""
		else
			ok 0 "$what: prints \"$line\""
			bad=1
		fi
	done
	if [ "$bad" -eq 1 ]; then
		diag_output
	fi
}

run hello 1 33 "hello=world" "Hello from khyve guest" \
	'cmdline: "cpus=1 hello=world"' "PASS hello"
run smp 2 33 "" "smp: AP with APIC id" "PASS smp"
run rtc 1 33 "" "PASS rtc"
run acpi 1 33 "" "PASS acpi"
run acpi 2 33 "" "PASS acpi"
run halt 2 2 "" "halt: all 2 CPUs halting"
run triplefault 1 3 "" "triplefault: loading an empty IDT"
run poweroff 1 1 "" "poweroff: entering ACPI S5"
run reset 1 0 "" "reset: writing 0x06 to port 0xcf9"
run ring3 1 33 "" "ring3: entering ring 3"
run demo 2 1 "" "== CPUs (ACPI MADT)" "CPU 1: APIC id" \
	"== Memory map" "  00:00.0 " "  00:1f.0 " "== Real-time clock" \
	"ACPI: S5: SLP_TYP"
run pio-loop 1 33 "n=1000" "PASS pio-loop"
run mmio-loop 1 33 "n=1000" "mmio-loop: 1000 MMIO writes"
run libtest 1 33 "" "libtest: " "PASS libtest"

echo "1..$n"
[ "$failed" -eq 0 ]
