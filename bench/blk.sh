#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# virtio-blk benchmark (part of `make bench`, called by bench/run.sh):
# the in-guest throughput of khyve's virtio-blk against QEMU's
# virtio-blk-pci (-M pc) and against the host page cache, in one run.
#
# The guest is tests/guest/vblk-bench.elf, the same ELF under both VMMs:
# it sets the device up in ring 0 and runs N requests from ring 3, polling
# the used ring (see the guest's header comment).  Cases: sequential 1 MiB
# reads and writes and 4 KiB random reads, each at queue depth 1 and 32,
# all on one 256 MiB file of random bytes.  Both VMMs use the host page
# cache (QEMU's default cache=writeback; khyve without nocache).  A run is
# timed from the guest's "entering ring 3" line on the serial port to the
# VMM's exit, so the boot (seconds of SeaBIOS under QEMU) stays out; each
# rate comes from two runs with N1 and N2 requests, (N2 - N1) / (t2 - t1),
# so the exit cost cancels too; each time is the best of RUNS runs.  The
# ceiling is the page-cache read rate of the file: `dd bs=1M` to
# /dev/null, the second of two runs.  MB are 10^6 bytes.
#
# Prints MB/s and IOPS per case, then khyve/ceiling for sequential reads
# (target >= 0.9) and khyve/QEMU for 4 KiB random reads (target >= 1.2).
#
# Usage: bench/blk.sh BUILD_DIR
# Environment: RUNS (3); BLK_SEQ_N1/BLK_SEQ_N2 (256/4352 requests of 1 MiB)
# and BLK_RAND_N1/BLK_RAND_N2 (10000/110000 of 4 KiB); BLK_DIR for the
# file (default: a new temporary directory); TIMEOUT per VM run in seconds
# (300).  Needs khyve and the guests (make all) and bash >= 5
# (EPOCHREALTIME); QEMU is optional.  Removes its file on exit.
# Single-threaded: the VM runs are sequential.
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-300}
G=$B/tests/guest
ELF=$G/vblk-bench.elf
QEMU=qemu-system-x86_64
export LC_ALL=C
export KHYVE_RUNDIR=${KHYVE_RUNDIR:-$(mktemp -d)}

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "blk: /dev/kvm not usable"
	exit 1
fi
for f in "$B/khyve" "$ELF"; do
	if [ ! -f "$f" ]; then
		echo "blk: $f missing (make all)"
		exit 1
	fi
done
have_qemu=1
command -v "$QEMU" >/dev/null 2>&1 || have_qemu=0

dir=${BLK_DIR:-$(mktemp -d)}
img=$dir/blk-bench.img
cleanup() {
	rm -f "$img" "$dir/serial"
	[ -n "${BLK_DIR:-}" ] || rmdir "$dir"
}
trap cleanup EXIT

echo "== (c) virtio-blk: vblk-bench.elf on a 256 MiB file, best of $RUNS" >&2
dd if=/dev/urandom of="$img" bs=1M count=256 status=none

# The page-cache ceiling: MB/s of the second of two dd reads.
ceiling() {
	local line bytes secs
	dd if="$img" of=/dev/null bs=1M status=none
	line=$(dd if="$img" of=/dev/null bs=1M 2>&1 | grep 'bytes')
	bytes=${line%% bytes*}
	secs=$(echo "$line" | sed -n 's/.*copied, \([0-9.e+-]*\) s.*/\1/p')
	echo "$bytes / $secs / 1000000" | bc -l
}

# Commands as arrays (the guest command line has spaces).
khyve_cmd() { # cmdline
	timeout "$TIMEOUT" "$B/khyve" -c 1 -m 256M -H -P -w -u \
		-s 0,hostbridge -s "4,virtio-blk,$img" -s 31,lpc \
		-l com1,stdio -l pc-testdev -o "boot.kernel=$ELF" \
		-o "boot.cmdline=$1" "blkbench$$"
}
qemu_cmd() { # cmdline
	timeout "$TIMEOUT" "$QEMU" -M pc -accel kvm -m 256 \
		-nodefaults -no-user-config -display none -serial stdio \
		-no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$ELF" -append "$1" \
		-drive "file=$img,if=none,id=d0,format=raw" \
		-device virtio-blk-pci,drive=d0
}

now_us() { echo "${EPOCHREALTIME/./}"; }

# timed VMM CMDLINE: "microseconds status", timed from the guest's
# "entering ring 3" line on the serial port to the VMM's exit, so the boot
# (seconds of SeaBIOS under QEMU, with its jitter) stays out of it.
timed() {
	local fifo=$dir/serial t0="" t1 st line pid
	rm -f "$fifo"
	mkfifo "$fifo"
	"${1}_cmd" "$2" >"$fifo" 2>/dev/null </dev/null &
	pid=$!
	while IFS= read -r line; do
		if [ -z "$t0" ] && [[ $line == *"entering ring 3"* ]]; then
			t0=$(now_us)
		fi
	done <"$fifo"
	st=0
	wait "$pid" || st=$?
	t1=$(now_us)
	rm -f "$fifo"
	[ -n "$t0" ] || st="no-ring-3-line"
	echo "$((t1 - ${t0:-$t1})) $st"
}

# best VMM WANT_STATUS CMDLINE: the best time (us) of RUNS runs, or "fail"
best() {
	local vmm=$1 want=$2 cl=$3 t st b=""
	for _ in $(seq "$RUNS"); do
		read -r t st < <(timed "$vmm" "$cl")
		if [ "$st" != "$want" ]; then
			echo "blk: $vmm \"$cl\": exit status $st, expected" \
				"$want" >&2
			echo fail
			return
		fi
		if [ -z "$b" ] || [ "$t" -lt "$b" ]; then
			b=$t
		fi
	done
	echo "$b"
}

# rate VMM WANT MODE QD BS N1 N2: requests per second, or "fail"
rate() {
	local vmm=$1 want=$2 mode=$3 qd=$4 bs=$5 n1=$6 n2=$7 t1 t2
	t1=$(best "$vmm" "$want" "mode=$mode qd=$qd bs=$bs n=$n1")
	t2=$(best "$vmm" "$want" "mode=$mode qd=$qd bs=$bs n=$n2")
	if [ "$t1" = fail ] || [ "$t2" = fail ]; then
		echo fail
		return
	fi
	if [ "$t2" -le "$t1" ]; then
		echo "blk: $vmm $mode qd=$qd: n=$n2 was not slower than" \
			"n=$n1 (noise; raise the N)" >&2
		echo fail
		return
	fi
	echo "($n2 - $n1) * 1000000 / ($t2 - $t1)" | bc -l
}

ratio() {
	case "$1:$2" in
	*fail* | :* | *:) echo "n/a" ;;
	*) printf '%.3f' "$(echo "$1 / $2" | bc -l)" ;;
	esac
}

show() { # label iops bs
	if [ "$2" = fail ]; then
		printf '%-30s %12s\n' "$1" "failed" >&2
		return
	fi
	printf '%-30s %10.1f MB/s %10.0f IOPS\n' "$1" \
		"$(echo "$2 * $3 / 1000000" | bc -l)" "$2" >&2
}

declare -A R
cases="seqread:1048576:${BLK_SEQ_N1:-256}:${BLK_SEQ_N2:-4352}
seqwrite:1048576:${BLK_SEQ_N1:-256}:${BLK_SEQ_N2:-4352}
randread:4096:${BLK_RAND_N1:-10000}:${BLK_RAND_N2:-110000}"

ceil=$(ceiling)
printf '%-30s %10.1f MB/s\n' "page cache (dd bs=1M)" "$ceil" >&2
for vmm in khyve qemu; do
	if [ "$vmm" = qemu ] && [ "$have_qemu" -eq 0 ]; then
		echo "blk: $QEMU missing, QEMU cases skipped" >&2
		continue
	fi
	want=33
	[ "$vmm" = qemu ] && want=0 # triple fault, see vblk-bench.c
	while IFS=: read -r mode bs n1 n2; do
		for qd in 1 32; do
			r=$(rate "$vmm" "$want" "$mode" "$qd" "$bs" "$n1" "$n2")
			R[$vmm.$mode.$qd]=$r
			show "$vmm $mode bs=$bs qd=$qd" "$r" "$bs"
		done
	done <<<"$cases"
done

mbs() { # iops bs
	case "$1" in
	fail | "") echo fail ;;
	*) echo "$1 * $2 / 1000000" | bc -l ;;
	esac
}
for qd in 1 32; do
	kseq=$(mbs "${R[khyve.seqread.$qd]}" 1048576)
	krand=${R[khyve.randread.$qd]}
	qrand=${R[qemu.randread.$qd]:-}
	kwr=${R[khyve.seqwrite.$qd]}
	qwr=${R[qemu.seqwrite.$qd]:-}
	echo "blk qd=$qd: seq read khyve/ceiling $(ratio "$kseq" "$ceil")" \
		"(target >= 0.9)   4K random read khyve/qemu" \
		"$(ratio "$krand" "$qrand") (target >= 1.2)   seq write" \
		"khyve/qemu $(ratio "$kwr" "$qwr")"
done
