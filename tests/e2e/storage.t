#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# End-to-end: the AHCI (SATA disk and ATAPI CD), NVMe and qcow2-backed
# disks seen from the guest drivers of tests/guest/ (TAP, run by prove).
# Boots vahci, vatapi, vnvme, vblk and storage-bench under khyve and checks
# their exit status, their serial output and the host files they wrote:
#   - vahci on a raw image (ahci,hd:...,ser=,model= with a CD on the same
#     controller, and the ahci-hd alias), vatapi on an ISO-like file
#     (ahci-cd), vnvme on a raw image (nvme,...,ser=);
#   - the host file afterwards: exactly what the guest wrote (or zeroed),
#     the size unchanged, the ISO untouched;
#   - storage-bench smoke runs (a few hundred requests from ring 3) on
#     each device, NVMe also on a RAM namespace (nvme,ram=);
#   - with qemu-img: vahci and vblk on qcow2 images with unallocated
#     clusters where the guests write, then `qemu-img check` and the
#     contents through `qemu-img convert -O raw` compared with cmp; and
#     storage-bench reading an empty image from `qemu-img create`.
# Skips everything when /dev/kvm cannot be opened read-write or
# $KHYVE_BUILD/khyve is missing; skips the tests of a device khyve does
# not list in `khyve -s help`, and the qcow2 tests without qemu-img or
# while khyve refuses qcow2 images, saying why.
#
# Each run is
#   khyve -c 1 -m 256M -H -P -w -u SLOTS -l com1,stdio -l pc-testdev
#         -o boot.kernel=ELF -o boot.cmdline=CMDLINE vmNAME </dev/null
# under `timeout 60`.  Images: 512-byte sector n holds 16 lines
# "TTTT %010d %02d WWWWWWWWWWWW\n" (tests/guest/lib/blkpat.c); disks are
# 8192 sectors with tag "disk", the CD 400 blocks of 2048 bytes with tag
# "iso9"; the guests write tag "wrtn" ("written-data").  Guest protocol:
# tests/guest/README.md.
#
# Single-threaded; runs are sequential; temporary files removed on exit.

. "$(dirname "$0")/lib.sh"

SECTORS=8192
CD_BLOCKS=400

# gen FIRST LAST TAG WORD: the pattern of sectors FIRST..LAST
gen() {
	awk -v a="$1" -v b="$2" -v t="$3" -v w="$4" 'BEGIN {
		for (s = a; s <= b; s++)
			for (i = 0; i < 16; i++)
				printf "%s %010d %02d %s\n", t, s, i, w
	}'
}

# put IMAGE FIRST LAST TAG WORD: write the pattern into IMAGE
put() {
	gen "$2" "$3" "$4" "$5" >"$tmp/w.bin"
	dd if="$tmp/w.bin" of="$1" bs=512 seek="$2" conv=notrunc 2>/dev/null
}

# zero IMAGE FIRST COUNT: zero COUNT sectors of IMAGE
zero() {
	dd if=/dev/zero of="$1" bs=512 seek="$2" count="$3" conv=notrunc \
		2>/dev/null
}

# show_diff EXPECTED GOT: the first differing bytes and sector
show_diff() {
	echo "# first differences (byte, expected, got; octal):"
	cmp -l "$1" "$2" 2>&1 | head -5 | sed -e 's/^/#   /'
	off=$(cmp "$1" "$2" 2>/dev/null | sed -n 's/.* byte \([0-9]*\),.*/\1/p')
	[ -n "$off" ] || return
	sec=$(((off - 1) / 512))
	echo "# start of sector $sec on the host:"
	od -A d -c -j $((sec * 512)) -N 64 "$2" | sed -e 's/^/#   /'
}

# same WHAT EXPECTED GOT: one ok, cmp of two files
same() {
	if cmp -s "$2" "$3"; then
		ok 1 "$1"
	else
		ok 0 "$1"
		show_diff "$2" "$3"
	fi
}

# size_is WHAT FILE BYTES
size_is() {
	size=$(wc -c <"$2" | tr -d ' ')
	ok "$([ "$size" -eq "$3" ] && echo 1 || echo 0)" \
		"$1: host file still $3 bytes"
}

gen 0 $((SECTORS - 1)) disk abcdefghijkl >"$tmp/orig.img"
gen 0 $((CD_BLOCKS * 4 - 1)) iso9 cdrom-sector >"$tmp/orig.iso"
LAST=$((SECTORS - 1))

# What a disk holds after a vahci run: 64-103 and the last sector written.
cp "$tmp/orig.img" "$tmp/ahci-expect.img"
put "$tmp/ahci-expect.img" 64 103 wrtn written-data
put "$tmp/ahci-expect.img" $LAST $LAST wrtn written-data

VAHCI_LINES="vahci: capacity matches sectors=$SECTORS
vahci: read: sectors 0-7 OK
vahci: read at the end: sectors 8184-8191 OK
vahci: 3-entry PRDT (2,3/3): sectors 1001-1007 OK
vahci: write + read back: sectors 64-95 OK
vahci: FLUSH CACHE EXT OK
vahci: NCQ: 8 queued reads OK
vahci: NCQ write + read back: sectors 96-103 OK
vahci: reads and writes beyond the capacity: errors
vahci: reserved command 0x77: error
vahci: NCQ read at the capacity: error
vahci: the port works after
vahci: final FLUSH CACHE EXT OK
PASS vahci"

# vahci_run WHAT CMDLINE EXTRA_LINES SLOT...: run vahci on $tmp/disk.img
# (a fresh copy of the original), expecting VAHCI_LINES and the
# newline-separated EXTRA_LINES, then check the host file
vahci_run() {
	vwhat=$1
	vcl=$2
	lines=$(printf '%s\n%s\n' "$3" "$VAHCI_LINES" | sed '/^$/d')
	shift 3
	cp "$tmp/orig.img" "$tmp/disk.img"
	save_ifs=$IFS
	IFS='
'
	set -f
	# shellcheck disable=SC2086 # split the lines on purpose
	set -- $lines -- "$@"
	set +f
	IFS=$save_ifs
	run vahci "$vwhat" 33 "sectors=$SECTORS${vcl:+ $vcl}" "$@"
	size_is "$vwhat" "$tmp/disk.img" $((SECTORS * 512))
	same "$vwhat: host file holds what the guest wrote" \
		"$tmp/ahci-expect.img" "$tmp/disk.img"
}

# ---- AHCI: SATA disk and ATAPI CD-ROM ------------------------------------

if have_dev ahci; then
	cp "$tmp/orig.iso" "$tmp/cd.iso"
	vahci_run "vahci (ahci,hd:+cd:, ser=, model=)" \
		"ser=KHYVE-AHCI-01 model=KHYVE-TEST-DISK" \
		"vahci: IDENTIFY serial matches ser=KHYVE-AHCI-01
vahci: IDENTIFY model matches model=KHYVE-TEST-DISK" \
		-s 0,hostbridge \
		-s "4,ahci,hd:$tmp/disk.img,ser=KHYVE-AHCI-01,model=KHYVE-TEST-DISK,cd:$tmp/cd.iso" \
		-s 31,lpc
	vahci_run "vahci (ahci-hd)" "" "" \
		-s 0,hostbridge -s "4,ahci-hd,$tmp/disk.img" -s 31,lpc
	run vatapi "vatapi (ahci-cd)" 33 "blocks=$CD_BLOCKS" \
		"vatapi: IDENTIFY says CD-ROM (type 5)" \
		"vatapi: TEST UNIT READY OK" \
		"vatapi: INQUIRY says CD-ROM" \
		"vatapi: capacity matches blocks=$CD_BLOCKS" \
		"vatapi: READ(10): blocks 0-1 OK" \
		"vatapi: READ(10): blocks 16-16 OK" \
		"vatapi: READ(10) of the last block: blocks 399-399 OK" \
		"vatapi: READ(10) of 64 KiB: blocks 100-131 OK" \
		"vatapi: READ(10) at the capacity: ILLEGAL REQUEST" \
		"vatapi: READ(10) across the capacity: ILLEGAL REQUEST" \
		"vatapi: WRITE(10): refused" \
		"vatapi: the device works after" "PASS vatapi" -- \
		-s 0,hostbridge -s "5,ahci-cd,$tmp/cd.iso" -s 31,lpc
	same "vatapi: the ISO file is untouched" "$tmp/orig.iso" "$tmp/cd.iso"
	run vatapi "vatapi (second port of ahci,hd:+cd:)" 33 \
		"blocks=$CD_BLOCKS" "ahci: port 1:" \
		"vatapi: READ(10) of 64 KiB: blocks 100-131 OK" \
		"PASS vatapi" -- \
		-s 0,hostbridge \
		-s "4,ahci,hd:$tmp/disk.img,cd:$tmp/cd.iso" -s 31,lpc
else
	skip 55 "khyve has no ahci yet"
fi

# ---- NVMe ----------------------------------------------------------------

if have_dev nvme; then
	cp "$tmp/orig.img" "$tmp/nvme.img"
	run vnvme "vnvme (nvme, ser=)" 33 \
		"ser=KHYVE-NVME-01 sectors=$SECTORS" \
		"vnvme: Identify serial matches ser=KHYVE-NVME-01" \
		"vnvme: capacity matches sectors=$SECTORS" \
		"vnvme: read of 4 KiB (PRP1): sectors 0-7 OK" \
		"vnvme: read of 8 KiB (PRP1 + PRP2): sectors 8-23 OK" \
		"vnvme: read of 64 KiB (PRP list): sectors 1000-1127 OK" \
		"vnvme: read at page offset 0x200 (PRP list): sectors 300-315 OK" \
		"vnvme: write + read back: sectors 64-95 OK" \
		"vnvme: Flush OK" \
		"vnvme: DSM deallocate: sectors 128-159 read back as zeros" \
		"vnvme: read at the capacity: status 0x080 (LBA Out of Range)" \
		"vnvme: write across the capacity: status 0x080 (LBA Out of Range)" \
		"vnvme: I/O opcode 0x7f: status 0x001" \
		"vnvme: read from namespace 0xdeadbeef: status 0x00b" \
		"vnvme: Create I/O SQ on a missing CQ: status" \
		"vnvme: read after the errors: sectors 0-0 OK" \
		"vnvme: final Flush OK" "PASS vnvme" -- \
		-s 0,hostbridge -s "6,nvme,$tmp/nvme.img,ser=KHYVE-NVME-01" \
		-s 31,lpc
	cp "$tmp/orig.img" "$tmp/nvme-expect.img"
	put "$tmp/nvme-expect.img" 64 95 wrtn written-data
	put "$tmp/nvme-expect.img" $LAST $LAST wrtn written-data
	grep -q "DSM not supported" "$tmp/out" ||
		zero "$tmp/nvme-expect.img" 128 32
	grep -q "Write Zeroes not supported" "$tmp/out" ||
		zero "$tmp/nvme-expect.img" 192 32
	size_is "vnvme" "$tmp/nvme.img" $((SECTORS * 512))
	same "vnvme: host file holds what the guest wrote" \
		"$tmp/nvme-expect.img" "$tmp/nvme.img"
else
	skip 20 "khyve has no nvme yet"
fi

# ---- storage-bench smoke runs (ring 3) -------------------------------------

dd if=/dev/urandom of="$tmp/bench.img" bs=1M count=16 2>/dev/null
# bench WHAT DEV CMDLINE SLOT...
bench() {
	what=$1
	dev=$2
	cl=$3
	shift 3
	run storage-bench "storage-bench $what" 33 "dev=$dev $cl" \
		"storage-bench: dev=$dev" "entering ring 3" -- \
		-s 0,hostbridge "$@" -s 31,lpc
}
if have_dev nvme; then
	bench "nvme randread qd=8" nvme "mode=randread qd=8 n=500" \
		-s "6,nvme,$tmp/bench.img"
	bench "nvme seqread 1 MiB" nvme "mode=seqread bs=1048576 qd=2 n=20" \
		-s "6,nvme,$tmp/bench.img"
	bench "nvme ram=16" nvme "mode=randread qd=4 n=300" \
		-s "6,nvme,ram=16"
else
	skip 9 "khyve has no nvme yet"
fi
if have_dev ahci; then
	bench "ahci randread qd=1" ahci "mode=randread qd=1 n=300" \
		-s "4,ahci-hd,$tmp/bench.img"
	bench "ahci randread qd=8 (NCQ)" ahci "mode=randread qd=8 n=500" \
		-s "4,ahci-hd,$tmp/bench.img"
else
	skip 6 "khyve has no ahci yet"
fi
if have_dev virtio-blk; then
	bench "virtio randread qd=4" virtio "mode=randread qd=4 n=500" \
		-s "4,virtio-blk,$tmp/bench.img"
else
	skip 3 "khyve has no virtio-blk"
fi

# ---- qcow2 images ----------------------------------------------------------

# qcow2_of RAW QCOW2: convert with 4 KiB clusters, so zeroed 8-sector runs
# stay unallocated and the guest's writes must allocate clusters
qcow2_of() {
	rm -f "$2"
	qemu-img convert -q -f raw -O qcow2 -o cluster_size=4096 "$1" "$2"
}

# qcow2_check WHAT QCOW2 EXPECTED_RAW: qemu-img check, then the contents
qcow2_check() {
	if qemu-img check -q "$2" >"$tmp/check.out" 2>&1; then
		ok 1 "$1: qemu-img check is clean"
	else
		ok 0 "$1: qemu-img check is clean"
		sed -e 's/^/#   /' "$tmp/check.out"
	fi
	rm -f "$tmp/back.raw"
	if qemu-img convert -q -f qcow2 -O raw "$2" "$tmp/back.raw" \
		2>"$tmp/check.out"; then
		same "$1: contents (qemu-img convert -O raw) are what the guest wrote" \
			"$3" "$tmp/back.raw"
	else
		ok 0 "$1: contents (qemu-img convert -O raw) are what the guest wrote"
		sed -e 's/^/#   /' "$tmp/check.out"
	fi
}

qcow2_skip=""
if ! command -v qemu-img >/dev/null 2>&1; then
	qcow2_skip="qemu-img missing"
elif ! have_dev virtio-blk; then
	qcow2_skip="khyve has no virtio-blk"
else
	qemu-img create -q -f qcow2 "$tmp/probe.qcow2" 1M
	boot hello "" -s 0,hostbridge -s "4,virtio-blk,$tmp/probe.qcow2" \
		-s 31,lpc
	if [ "$st" -ne 33 ]; then
		qcow2_skip="khyve does not open qcow2 images yet"
		sed -n '1s/^/# /p' "$tmp/out"
	fi
fi

if [ -n "$qcow2_skip" ]; then
	skip 21 "$qcow2_skip"
else
	# vblk (see virtio.t) on qcow2: its pattern, 4096 sectors, the
	# sectors it writes (64-95, the last) and zeroes (128-159, 192-223)
	# unallocated to begin with
	VS=4096
	gen 0 $((VS - 1)) vblk abcdefghijkl >"$tmp/vblk.raw"
	zero "$tmp/vblk.raw" 64 32
	zero "$tmp/vblk.raw" 128 32
	zero "$tmp/vblk.raw" 192 32
	qcow2_of "$tmp/vblk.raw" "$tmp/vblk.qcow2"
	# the guest checks only the sectors it reads; fill the holes it
	# does not read in the expectation as the guest leaves them
	run vblk "vblk on qcow2" 33 "sectors=$VS ser=KHYVE-QCOW2" \
		"vblk: read: sectors 0-7 OK" \
		"vblk: write + read back: sectors 64-95 OK" \
		"vblk: FLUSH OK" "vblk: reads and writes beyond the capacity: IOERR" \
		"PASS vblk" -- \
		-s 0,hostbridge \
		-s "4,virtio-blk,$tmp/vblk.qcow2,ser=KHYVE-QCOW2" -s 31,lpc
	cp "$tmp/vblk.raw" "$tmp/vblk-expect.raw"
	gen 64 95 wblk written-data >"$tmp/w.bin"
	dd if="$tmp/w.bin" of="$tmp/vblk-expect.raw" bs=512 seek=64 \
		conv=notrunc 2>/dev/null
	gen $((VS - 1)) $((VS - 1)) wblk written-data >"$tmp/w.bin"
	dd if="$tmp/w.bin" of="$tmp/vblk-expect.raw" bs=512 \
		seek=$((VS - 1)) conv=notrunc 2>/dev/null
	qcow2_check "vblk on qcow2" "$tmp/vblk.qcow2" "$tmp/vblk-expect.raw"

	# reads of never-written clusters of an image from `qemu-img create`
	qemu-img create -q -f qcow2 "$tmp/empty.qcow2" 64M
	run storage-bench "storage-bench on an empty qcow2 (qemu-img create)" \
		33 "dev=virtio mode=randread qd=4 n=300" "entering ring 3" -- \
		-s 0,hostbridge -s "4,virtio-blk,$tmp/empty.qcow2" -s 31,lpc
	if qemu-img check -q "$tmp/empty.qcow2" >"$tmp/check.out" 2>&1; then
		ok 1 "empty qcow2: qemu-img check is clean after the run"
	else
		ok 0 "empty qcow2: qemu-img check is clean after the run"
		sed -e 's/^/#   /' "$tmp/check.out"
	fi

	if have_dev ahci; then
		# vahci on qcow2: sectors 64-103 unallocated at first
		cp "$tmp/orig.img" "$tmp/ahci.raw"
		zero "$tmp/ahci.raw" 64 40
		qcow2_of "$tmp/ahci.raw" "$tmp/ahci.qcow2"
		run vahci "vahci on qcow2" 33 "sectors=$SECTORS" \
			"vahci: read: sectors 0-7 OK" \
			"vahci: write + read back: sectors 64-95 OK" \
			"vahci: NCQ write + read back: sectors 96-103 OK" \
			"vahci: FLUSH CACHE EXT OK" \
			"vahci: reads and writes beyond the capacity: errors" \
			"vahci: final FLUSH CACHE EXT OK" "PASS vahci" -- \
			-s 0,hostbridge -s "4,ahci-hd,$tmp/ahci.qcow2" -s 31,lpc
		qcow2_check "vahci on qcow2" "$tmp/ahci.qcow2" \
			"$tmp/ahci-expect.img"
	else
		skip 9 "khyve has no ahci yet"
	fi
fi

echo "1..$n"
[ "$failed" -eq 0 ]
