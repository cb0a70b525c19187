#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# run-guest-both.sh NAME [khyve args...]
#
# Boot the test guest $KHYVE_BUILD/tests/guest/NAME.elf (default build/)
# under khyve and under QEMU (microvm by default), then print the two
# serial outputs side by side and both exit statuses, so that a behaviour
# difference between khyve and QEMU is visible at a glance.
#
# khyve gets: -c N -m 256M -H -P -w -u -s 0,hostbridge -s 31,lpc
#   -l com1,stdio -l pc-testdev -o boot.kernel=ELF -o boot.cmdline=CMDLINE,
# then the extra args, then the VM name.  A "-c N" among the extra args
# sets the CPU count for both VMMs.
# QEMU gets: -M $QEMU_MACHINE (default microvm,rtc=on) -smp N -m 256
#   -kernel ELF -append CMDLINE, isa-debug-exit at 0xf4 and pc-testdev.
#
# Environment: KHYVE_BUILD (build dir), GUEST_CMDLINE (default "cpus=N"),
# GUEST_TIMEOUT (seconds per run, default 60), QEMU (binary),
# QEMU_MACHINE, QEMU_ACCEL (default kvm if /dev/kvm opens, else tcg),
# COLUMNS (output width, default 160).
#
# Exit statuses: khyve 0 reboot, 1 power-off, 2 halt, 3 triple fault,
# 4 error; both: 33 guest PASS, 35 guest FAIL ((v << 1) | 1 of the exit
# port/register); QEMU with -no-reboot: 0 for power-off, reset and triple
# fault alike; 124: killed by the timeout.
#
# Single-threaded script; temporary files are removed on exit.

set -u

usage() {
	echo "usage: $0 NAME [khyve args...]" >&2
	exit 2
}

[ $# -ge 1 ] || usage
name=$1
shift
case $name in
'' | -* | */*) usage ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
build=${KHYVE_BUILD:-$top/build}
elf=$build/tests/guest/$name.elf
khyve=$build/khyve
qemu=${QEMU:-qemu-system-x86_64}
tmo=${GUEST_TIMEOUT:-60}
width=${COLUMNS:-160}

if [ ! -f "$elf" ]; then
	echo "$0: $elf: no such guest (run make guests)" >&2
	exit 1
fi

# The CPU count: the last -c among the extra args ("-c 2", "-c2",
# "-c cpus=2,sockets=1").
cpus=1
prev=
for a in "$@"; do
	v=
	case $prev in
	-c) v=$a ;;
	esac
	case $a in
	-c?*) v=${a#-c} ;;
	esac
	if [ -n "$v" ]; then
		v=${v#cpus=}
		cpus=${v%%,*}
	fi
	prev=$a
done
case $cpus in
'' | *[!0-9]*)
	echo "$0: cannot read the CPU count from -c" >&2
	exit 2
	;;
esac
cmdline=${GUEST_CMDLINE:-cpus=$cpus}

if [ -z "${QEMU_ACCEL:-}" ]; then
	if (exec 3<>/dev/kvm) 2>/dev/null; then
		QEMU_ACCEL=kvm
	else
		QEMU_ACCEL=tcg
	fi
fi
machine=${QEMU_MACHINE:-microvm,rtc=on}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

describe() { # status vmm
	case $1 in
	33) echo "guest PASS" ;;
	35) echo "guest FAIL" ;;
	124) echo "timeout after ${tmo}s" ;;
	*)
		if [ "$2" = khyve ]; then
			case $1 in
			0) echo "reboot" ;;
			1) echo "power-off" ;;
			2) echo "halt" ;;
			3) echo "triple fault" ;;
			4) echo "error" ;;
			*) echo "?" ;;
			esac
		else
			case $1 in
			0) echo "shutdown, reset or triple fault" ;;
			*) echo "?" ;;
			esac
		fi
		;;
	esac
}

# khyve
if [ -x "$khyve" ]; then
	timeout "$tmo" "$khyve" -c "$cpus" -m 256M -H -P -w -u \
		-s 0,hostbridge -s 31,lpc -l com1,stdio -l pc-testdev \
		-o "boot.kernel=$elf" -o "boot.cmdline=$cmdline" \
		"$@" "vm$name" </dev/null >"$tmp/khyve.raw" 2>&1
	kst=$?
else
	echo "($khyve not built)" >"$tmp/khyve.raw"
	kst=-
fi

# QEMU
timeout "$tmo" "$qemu" -M "$machine" -accel "$QEMU_ACCEL" -smp "$cpus" \
	-m 256 -kernel "$elf" -append "$cmdline" -nodefaults \
	-no-user-config -display none -serial stdio \
	-device isa-debug-exit,iobase=0xf4,iosize=4 -device pc-testdev \
	-no-reboot </dev/null >"$tmp/qemu.raw" 2>&1
qst=$?

tr -d '\r' <"$tmp/khyve.raw" >"$tmp/khyve.txt"
tr -d '\r' <"$tmp/qemu.raw" | grep -v "host doesn't support requested feature" \
	>"$tmp/qemu.txt"

half=$(((width - 3) / 2))
printf "%-${half}.${half}s | %s\n" "khyve ($build/khyve)" \
	"QEMU -M $machine -accel $QEMU_ACCEL"
printf "%-${half}.${half}s | %s\n" "khyve -c $cpus, cmdline \"$cmdline\"" \
	"-smp $cpus, -append \"$cmdline\""
printf '%s\n' "$(printf "%${width}s" '' | tr ' ' '-')"
pr -m -t -w "$width" -S' | ' "$tmp/khyve.txt" "$tmp/qemu.txt" | expand
printf '%s\n' "$(printf "%${width}s" '' | tr ' ' '-')"
if [ "$kst" = - ]; then
	kdesc="not run"
else
	kdesc="$kst ($(describe "$kst" khyve))"
fi
printf "%-${half}.${half}s | %s\n" "khyve exit status $kdesc" \
	"QEMU exit status $qst ($(describe "$qst" qemu))"
exit 0
