#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Storage benchmark (part of `make bench`, called by bench/run.sh): the
# in-guest read throughput of khyve's disks, in one run:
#   - raw vs qcow2 images behind the same device (virtio-blk, and NVMe if
#     khyve has it): target qcow2 >= 0.9x raw;
#   - NVMe vs virtio-blk under khyve;
#   - khyve's NVMe and AHCI vs QEMU's (-M pc) with the same guest.
# The guest is tests/guest/storage-bench.elf (dev=nvme|ahci|virtio): it
# sets the device up in ring 0 and runs N reads from ring 3, polling (see
# its header comment).  Cases: 4 KiB random reads at queue depth 1, and
# 1 MiB sequential reads at queue depth 4, on one 256 MiB file of random
# bytes (and its qcow2 copy, made by qemu-img, fully allocated).  Both
# VMMs use the host page cache.
#
# Each rate comes from two runs with N1 and N2 requests,
# (N2 - N1) / (t2 - t1), so start-up cancels out; t is the time from the
# guest's first serial byte to the VMM's exit (which also drops QEMU's
# firmware time, seconds under this machine's emulated ring 0), the best
# of RUNS runs.  The qcow2 runs are "warm" in that sense: the metadata
# read by the first requests is common to N1 and N2 and cancels out.
# MB are 10^6 bytes.  A case the build lacks (no NVMe or AHCI model, no
# qcow2 backend, no qemu-img or QEMU) is reported and skipped.
#
# Usage: bench/storage.sh BUILD_DIR   Environment: RUNS (3), STORAGE_DIR
# (a new temporary directory), TIMEOUT per VM run in seconds (300),
# RAND_N1/RAND_N2 (2000/50000), SEQ_N1/SEQ_N2 (512/16896).  Needs
# $B/bench/spawn (make bench-bins) and the guests (make guests).  Removes
# its files on exit.
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-3}
TIMEOUT=${TIMEOUT:-300}
G=$B/tests/guest
ELF=$G/storage-bench.elf
SPAWN=$B/bench/spawn
QEMU=qemu-system-x86_64
export LC_ALL=C
export KHYVE_RUNDIR=${KHYVE_RUNDIR:-$(mktemp -d)}

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "storage: /dev/kvm not usable"
	exit 1
fi
for f in "$B/khyve" "$SPAWN" "$ELF"; do
	[ -x "$f" ] || [ -f "$f" ] || {
		echo "storage: $f missing (make all bench-bins guests)"
		exit 1
	}
done
have_qemu=1
command -v "$QEMU" >/dev/null 2>&1 || have_qemu=0
have_qemu_img=1
command -v qemu-img >/dev/null 2>&1 || have_qemu_img=0
have_dev() { "$B/khyve" -s help 2>&1 | grep -qx "$1"; }

dir=${STORAGE_DIR:-$(mktemp -d)}
img=$dir/storage-bench.img
qcow=$dir/storage-bench.qcow2
cleanup() {
	rm -f "$img" "$qcow"
	[ -n "${STORAGE_DIR:-}" ] || rmdir "$dir"
}
trap cleanup EXIT

echo "== (d) storage: storage-bench.elf on a 256 MiB file, best of $RUNS" >&2
dd if=/dev/urandom of="$img" bs=1M count=256 status=none

# khyve_run IMAGE SLOT_DEVICE CMDLINE / qemu_run DEVICE CMDLINE: one run
# under spawn, which prints "first_byte_us=... total_us=... status=..."
# (the guest's dev= follows from the device)
khyve_run() {
	local gdev=nvme
	case $2 in
	virtio-blk) gdev=virtio ;;
	ahci*) gdev=ahci ;;
	esac
	"$SPAWN" timeout "$TIMEOUT" "$B/khyve" -c 1 -m 256M -H -P -w -u \
		-s 0,hostbridge -s "4,$2,$1" -s 31,lpc \
		-l com1,stdio -l pc-testdev -o "boot.kernel=$ELF" \
		-o "boot.cmdline=dev=$gdev $3" "stbench$$"
}
qemu_run() {
	local dev
	case $1 in
	nvme) dev=(-device "nvme,drive=d0,serial=BENCH") ;;
	ahci) dev=(-device "ahci,id=a" -device "ide-hd,drive=d0,bus=a.0") ;;
	esac
	"$SPAWN" timeout "$TIMEOUT" "$QEMU" -M pc -accel kvm -m 256 \
		-nodefaults -no-user-config -display none -serial stdio \
		-no-reboot -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$ELF" -append "dev=$1 $2" \
		-drive "file=$img,if=none,id=d0,format=raw" "${dev[@]}"
}

field() { sed -n "s/.*$1=\([-0-9]*\).*/\1/p"; }

# best WANT_STATUS RUNNER ARGS... (the cmdline last): the best guest
# time in microseconds of RUNS runs, or "fail"
best() {
	local want=$1 line t f st b=""
	shift
	for _ in $(seq "$RUNS"); do
		line=$("$@" | tail -1)
		t=$(echo "$line" | field total_us)
		f=$(echo "$line" | field first_byte_us)
		st=$(echo "$line" | field status)
		if [ "$st" != "$want" ]; then
			echo "storage: $* : exit status $st, expected $want" >&2
			echo fail
			return
		fi
		if [ -n "$f" ] && [ "$f" -ge 0 ] && [ "$f" -le "$t" ]; then
			t=$((t - f))
		fi
		if [ -z "$b" ] || [ "$t" -lt "$b" ]; then
			b=$t
		fi
	done
	echo "$b"
}

# rate CASE WANT RUNNER ARGS...: requests per second, or "fail".  CASE is
# rand or seq; the runner gets the guest command line as its last argument.
rate() {
	local c=$1 want=$2 cl n1 n2 t1 t2
	shift 2
	if [ "$c" = rand ]; then
		cl="mode=randread bs=4096 qd=1"
		n1=${RAND_N1:-2000}
		n2=${RAND_N2:-50000}
	else
		cl="mode=seqread bs=1048576 qd=4"
		n1=${SEQ_N1:-512}
		n2=${SEQ_N2:-16896}
	fi
	t1=$(best "$want" "$@" "$cl n=$n1")
	t2=$(best "$want" "$@" "$cl n=$n2")
	if [ "$t1" = fail ] || [ "$t2" = fail ]; then
		echo fail
		return
	fi
	if [ "$t2" -le "$t1" ]; then
		echo "storage: $* $cl: n=$n2 took ${t2} us, n=$n1 ${t1} us;" \
			"raise the counts" >&2
		echo fail
		return
	fi
	echo "($n2 - $n1) * 1000000 / ($t2 - $t1)" | bc -l
}

bs_of() { [ "$1" = rand ] && echo 4096 || echo 1048576; }

show() { # label case iops
	if [ "$3" = fail ]; then
		printf '%-34s %12s\n' "$1" "failed" >&2
		return
	fi
	printf '%-34s %10.1f MB/s %10.0f IOPS\n' "$1" \
		"$(echo "$3 * $(bs_of "$2") / 1000000" | bc -l)" "$3" >&2
}

ratio() {
	case "$1:$2" in
	*fail* | :* | *:) echo "n/a" ;;
	*) printf '%.3f' "$(echo "$1 / $2" | bc -l)" ;;
	esac
}

declare -A R
# measure KEY LABEL WANT RUNNER ARGS...: both cases
measure() {
	local key=$1 label=$2 want=$3 c
	shift 3
	for c in rand seq; do
		R[$key.$c]=$(rate "$c" "$want" "$@")
		show "$label $c" "$c" "${R[$key.$c]}"
	done
}
skipped() { printf '%-34s %12s\n' "$1" "skipped: $2" >&2; }

# the qcow2 copy, if qemu-img exists and khyve opens qcow2 images
qcow_ok=0
if [ "$have_qemu_img" -eq 0 ]; then
	qcow_why="qemu-img missing"
else
	qemu-img convert -q -f raw -O qcow2 "$img" "$qcow"
	probe=$("$SPAWN" timeout 60 "$B/khyve" -c 1 -m 256M -H -P -w -u \
		-s 0,hostbridge -s "4,virtio-blk,$qcow" -s 31,lpc \
		-l com1,stdio -l pc-testdev -o "boot.kernel=$G/hello.elf" \
		"stprobe$$" | tail -1 | field status)
	if [ "$probe" = 33 ]; then
		qcow_ok=1
	else
		qcow_why="khyve does not open qcow2 images (status $probe)"
	fi
fi

measure kv.raw "khyve virtio-blk raw" 33 khyve_run "$img" virtio-blk
if [ "$qcow_ok" -eq 1 ]; then
	measure kv.qcow "khyve virtio-blk qcow2" 33 khyve_run "$qcow" \
		virtio-blk
else
	skipped "khyve virtio-blk qcow2" "$qcow_why"
fi
if have_dev nvme; then
	measure kn.raw "khyve nvme raw" 33 khyve_run "$img" nvme
	if [ "$qcow_ok" -eq 1 ]; then
		measure kn.qcow "khyve nvme qcow2" 33 khyve_run "$qcow" nvme
	fi
else
	skipped "khyve nvme" "no nvme model"
fi
if have_dev ahci; then
	measure ka.raw "khyve ahci raw" 33 khyve_run "$img" ahci-hd
else
	skipped "khyve ahci" "no ahci model"
fi
if [ "$have_qemu" -eq 1 ]; then
	# no exit register under QEMU: the guest ends by a triple fault (0)
	measure qn "qemu nvme raw" 0 qemu_run nvme
	measure qa "qemu ahci raw" 0 qemu_run ahci
else
	skipped "qemu" "$QEMU missing"
fi

for c in rand seq; do
	name="4K random read qd=1"
	[ "$c" = seq ] && name="1M sequential read qd=4"
	echo "storage $name:" \
		"qcow2/raw virtio $(ratio "${R[kv.qcow.$c]:-}" "${R[kv.raw.$c]}")" \
		"nvme $(ratio "${R[kn.qcow.$c]:-}" "${R[kn.raw.$c]:-}")" \
		"(target >= 0.9)   khyve nvme/virtio" \
		"$(ratio "${R[kn.raw.$c]:-}" "${R[kv.raw.$c]}")" \
		"  khyve/qemu nvme $(ratio "${R[kn.raw.$c]:-}" "${R[qn.$c]:-}")" \
		"ahci $(ratio "${R[ka.raw.$c]:-}" "${R[qa.$c]:-}")"
done
