#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# khyve benchmarks (not tests).  Everything is compared in ONE run, as
# ratios, because these machines are noisy:
#  (a) start-up: process start -> first serial byte -> exit, and peak RSS,
#      for khyve, QEMU -M microvm and QEMU -M pc booting the same PVH guest
#      (tests/guest/hello.elf); medians of RUNS runs.
#  (b) exit cost: port-I/O exits from ring 0 (pio-loop) and MMIO exits from
#      ring 3 (mmio-loop) per second through khyve's buses vs the bare KVM
#      loop (bench/bare_kvm.c) vs QEMU microvm.  Each rate is computed from
#      two runs with N1 and N2 iterations, (N2-N1)/(t2-t1), so start-up
#      cancels out.
# Usage: bench/run.sh BUILD_DIR   (make bench)
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-15}
N1=${N1:-20000}
N2=${N2:-120000}
G=$B/tests/guest
SPAWN=$B/bench/spawn
BARE=$B/bench/bare_kvm
export KHYVE_RUNDIR=${KHYVE_RUNDIR:-$(mktemp -d)}
QEMU=qemu-system-x86_64

[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "bench: /dev/kvm not usable"; exit 1; }

khyve_cmd() { # guest cmdline
	echo "$B/khyve -c 1 -m 256M -H -P -w -u -s 0,hostbridge -s 31,lpc" \
		"-l com1,stdio -l pc-testdev -o boot.kernel=$G/$1.elf" \
		"-o boot.cmdline=$2 bench$$"
}
qemu_cmd() { # machine guest cmdline
	echo "$QEMU -M $1 -accel kvm -m 256 -nodefaults -no-user-config" \
		"-display none -serial stdio -no-reboot" \
		"-device isa-debug-exit,iobase=0xf4,iosize=4" \
		"-kernel $G/$2.elf -append $3"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*$1=\([-0-9]*\).*/\1/p"; }

# run NAME CMD...: RUNS times, prints medians "first total rss status"
startup() {
	local name=$1; shift
	local f=() t=() r=() st=""
	for _ in $(seq "$RUNS"); do
		local line; line=$($SPAWN "$@")
		f+=("$(echo "$line" | field first_byte_us)")
		t+=("$(echo "$line" | field total_us)")
		r+=("$(echo "$line" | field maxrss_kb)")
		st=$(echo "$line" | field status)
	done
	local mf mt mr
	mf=$(printf '%s\n' "${f[@]}" | median)
	mt=$(printf '%s\n' "${t[@]}" | median)
	mr=$(printf '%s\n' "${r[@]}" | median)
	printf '%-16s first-byte %8.1f ms  total %8.1f ms  peak RSS %8.1f MB  (exit %s)\n' \
		"$name" "$(echo "$mf/1000" | bc -l)" "$(echo "$mt/1000" | bc -l)" \
		"$(echo "$mr/1024" | bc -l)" "$st" >&2
	echo "$mf $mt $mr"
}

ratio() { echo "scale=3; $1 / $2" | bc -l; }

echo "== (a) start-up: hello.elf, median of $RUNS runs" >&2
read -r kf kt kr < <(startup khyve $(khyve_cmd hello x))
read -r mf mt mr < <(startup qemu-microvm $(qemu_cmd microvm hello x))
read -r pf pt pr < <(startup qemu-pc $(qemu_cmd pc hello x))
echo "khyve/microvm: first-byte $(ratio "$kf" "$mf")  total $(ratio "$kt" "$mt")  peak RSS $(ratio "$kr" "$mr")   (targets: start-up <= 0.5, RSS <= 0.15)"
echo "khyve/pc:      first-byte $(ratio "$kf" "$pf")  total $(ratio "$kt" "$pt")  peak RSS $(ratio "$kr" "$pr")"

# rate NAME GUEST CMDFN: exits per second from two iteration counts
rate() {
	local name=$1 guest=$2; shift 2
	local t1 t2 best1=999999999999 best2=999999999999
	for _ in 1 2 3; do
		t1=$($SPAWN $("$@" "$guest" "n=$N1") | field total_us)
		t2=$($SPAWN $("$@" "$guest" "n=$N2") | field total_us)
		[ "$t1" -lt "$best1" ] && best1=$t1
		[ "$t2" -lt "$best2" ] && best2=$t2
	done
	local r; r=$(echo "($N2-$N1)*1000000/($best2-$best1)" | bc)
	printf '%-22s %10d exits/s  (%.2f us/exit)\n' "$name" "$r" \
		"$(echo "($best2-$best1)/($N2-$N1)" | bc -l)" >&2
	echo "$r"
}
kcmd() { khyve_cmd "$1" "$2"; }
bcmd() { echo "$BARE $G/$1.elf $2"; }
qcmd() { qemu_cmd microvm "$1" "$2"; }

echo "== (b) exit cost: $N1 vs $N2 iterations, best of 3" >&2
kp=$(rate "khyve pio (ring 0)" pio-loop kcmd)
bp=$(rate "bare  pio (ring 0)" pio-loop bcmd)
qp=$(rate "qemu  pio (ring 0)" pio-loop qcmd)
km=$(rate "khyve mmio (ring 3)" mmio-loop kcmd)
bm=$(rate "bare  mmio (ring 3)" mmio-loop bcmd)
echo "pio:  bare/khyve time per exit $(ratio "$bp" "$kp") (target <= 1.05)   khyve/qemu rate $(ratio "$kp" "$qp")"
echo "mmio: bare/khyve time per exit $(ratio "$bm" "$km") (target <= 1.05)"

# (c) virtio-blk throughput vs QEMU and the page cache (bench/blk.sh).
"$(dirname "$0")/blk.sh" "$B"
"$(dirname "$0")/storage.sh" "$B"
"$(dirname "$0")/clone.sh" "$B"
# (d) virtio-net pps and throughput over a tap vs QEMU (bench/net.sh).
"$(dirname "$0")/net.sh" "$B"
