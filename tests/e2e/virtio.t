#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# End-to-end: the virtio-pci devices seen from a guest driver (TAP, run by
# prove).  Boots the guests of tests/guest/ -- pcienum, vrng, vblk, vcons
# -- under khyve with virtio devices on bus 0, and checks their exit
# status, their serial output and, for virtio-blk, the host file the guest
# wrote to.  Skips everything when /dev/kvm cannot be opened read-write or
# $KHYVE_BUILD/khyve is missing; skips the tests of a device khyve does not
# list in `khyve -s help` (and vcons without python3), saying why.
#
# Each run is
#   khyve -c 1 -m 256M -H -P -w -u SLOTS -l com1,stdio -l pc-testdev
#         -o boot.kernel=ELF -o boot.cmdline=CMDLINE vmNAME$$ </dev/null
# under `timeout 60`.  The disk image for vblk is 4096 sectors; sector n
# holds 16 lines "vblk %010d %02d abcdefghijkl\n" (the pattern vblk.c
# checks).  Guest protocol: tests/guest/README.md.
#
# Single-threaded (vcons runs khyve in the background next to a python3
# client); runs are sequential; temporary files removed on exit.

. "$(dirname "$0")/lib.sh"

SECTORS=4096

# gen FIRST LAST TAG: the pattern of sectors FIRST..LAST (TAG 0 as made
# by the test, 1 as written by the guest)
gen() {
	awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN {
		for (s = a; s <= b; s++)
			for (i = 0; i < 16; i++)
				printf "%s %010d %02d %s\n",
				    t ? "wblk" : "vblk", s, i,
				    t ? "written-data" : "abcdefghijkl"
	}'
}

gen 0 $((SECTORS - 1)) 0 >"$tmp/orig.img"

# ---- PCI enumeration -------------------------------------------------------

slots="-s 0,hostbridge -s 3,virtio-rnd"
expect="0:0:0=1275:1275,0:3:0=1af4:1005"
if have_dev virtio-blk; then
	dd if=/dev/zero of="$tmp/enum.img" bs=512 count=8 2>/dev/null
	slots="$slots -s 4,virtio-blk,$tmp/enum.img"
	expect="$expect,0:4:0=1af4:1001"
fi
if have_dev virtio-console; then
	slots="$slots -s 5,virtio-console,port0=$tmp/enum.sock"
	expect="$expect,0:5:0=1af4:1003"
fi
slots="$slots -s 6,virtio-rnd -s 6:1,virtio-rnd -s 31,lpc"
expect="$expect,0:6:0=1af4:1005,0:6:1=1af4:1005,0:31:0=8086:7000"
# shellcheck disable=SC2086 # $slots is a list of words on purpose
run pcienum "pcienum (hostbridge, virtio, multi-function slot, lpc)" 33 \
	"expect=$expect" \
	"cap 0x" "virtio common" "MSI-X" "PASS pcienum" -- $slots
run pcienum "pcienum amd_hostbridge" 33 \
	"expect=0:0:0=1022:7432,0:3:0=1af4:1005,0:31:0=8086:7000" \
	"00:00.0 1022:7432" "PASS pcienum" -- \
	-s 0,amd_hostbridge -s 3,virtio-rnd -s 31,lpc
# the checker must notice a wrong list
run pcienum "pcienum with a wrong list" 35 \
	"expect=0:0:0=1275:1275,0:4:0=1af4:1005,0:31:0=8086:7001" \
	"ERROR: 0:3:0 (1af4:1005) is present but not expected" \
	"ERROR: 0:4:0 (1af4:1005) expected but absent" \
	"ERROR: 0:31:0 is 8086:7000, expected 8086:7001" \
	"FAIL pcienum: 3 mismatches" -- \
	-s 0,hostbridge -s 3,virtio-rnd -s 31,lpc

run pcienum "pcienum with a malformed list" 35 "expect=0:0=1275:1275" \
	"FAIL pcienum: bad expect= entry \"0:0=1275:1275\"" -- \
	-s 0,hostbridge -s 31,lpc

# ---- virtio-rnd ------------------------------------------------------------

for mode in modern legacy; do
	cl=""
	[ "$mode" = legacy ] && cl=legacy
	run vrng "vrng $mode" 33 "$cl" "vrng: 4096 bytes in" \
		"$mode interface" "PASS vrng" -- \
		-s 0,hostbridge -s 3,virtio-rnd -s 31,lpc
done

# ---- virtio-blk ------------------------------------------------------------

# blk_expect: what the disk must hold after a vblk run (from $tmp/out)
blk_expect() {
	cp "$tmp/orig.img" "$tmp/expect.img"
	gen 64 95 1 >"$tmp/w.bin"
	dd if="$tmp/w.bin" of="$tmp/expect.img" bs=512 seek=64 \
		conv=notrunc 2>/dev/null
	gen $((SECTORS - 1)) $((SECTORS - 1)) 1 >"$tmp/w.bin"
	dd if="$tmp/w.bin" of="$tmp/expect.img" bs=512 seek=$((SECTORS - 1)) \
		conv=notrunc 2>/dev/null
	if ! grep -q "DISCARD not offered" "$tmp/out"; then
		dd if=/dev/zero of="$tmp/expect.img" bs=512 seek=128 count=32 \
			conv=notrunc 2>/dev/null
	fi
	if ! grep -q "WRITE_ZEROES not offered" "$tmp/out"; then
		dd if=/dev/zero of="$tmp/expect.img" bs=512 seek=192 count=32 \
			conv=notrunc 2>/dev/null
	fi
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

if have_dev virtio-blk; then
	for mode in modern legacy; do
		cl="sectors=$SECTORS ser=KHYVE-E2E-$mode"
		[ "$mode" = legacy ] && cl="$cl legacy"
		cp "$tmp/orig.img" "$tmp/disk.img"
		run vblk "vblk $mode" 33 "$cl" "$mode interface" \
			"vblk: read: sectors 0-7 OK" \
			"vblk: 3-buffer read (2,3/3): sectors 1001-1007 OK" \
			"vblk: write + read back: sectors 64-95 OK" \
			"vblk: FLUSH OK" \
			"vblk: GET_ID matches ser=KHYVE-E2E-$mode" \
			"vblk: DISCARD: sectors 128-159 read back as zeros" \
			"WRITE_ZEROES: sectors 192-223 read back as zeros" \
			"vblk: reads and writes beyond the capacity: IOERR" \
			"vblk: unknown request type: UNSUPP" "PASS vblk" -- \
			-s 0,hostbridge \
			-s "4,virtio-blk,$tmp/disk.img,ser=KHYVE-E2E-$mode" \
			-s 31,lpc
		blk_expect
		size=$(wc -c <"$tmp/disk.img" | tr -d ' ')
		ok "$([ "$size" -eq $((SECTORS * 512)) ] && echo 1 || echo 0)" \
			"vblk $mode: host file still $((SECTORS * 512)) bytes"
		if cmp -s "$tmp/expect.img" "$tmp/disk.img"; then
			ok 1 "vblk $mode: host file holds what the guest wrote"
		else
			ok 0 "vblk $mode: host file holds what the guest wrote"
			show_diff "$tmp/expect.img" "$tmp/disk.img"
		fi
	done
	# the benchmark guest, briefly (ring 3, polled, khyve exit register)
	cp "$tmp/orig.img" "$tmp/disk.img"
	for args in "randread qd=32 bs=4096 n=2000" \
		"seqwrite qd=2 bs=1048576 n=8" "seqread qd=1 bs=4096 n=100"; do
		run vblk-bench "vblk-bench $args" 33 "mode=$args" \
			"vblk-bench: $args on 00:04.0" \
			"vblk-bench: entering ring 3" -- -s 0,hostbridge \
			-s "4,virtio-blk,$tmp/disk.img" -s 31,lpc
	done
	run vblk-bench "vblk-bench qd=0" 35 "qd=0" \
		"FAIL vblk-bench: qd= must be 1-128" -- \
		-s 0,hostbridge -s "4,virtio-blk,$tmp/disk.img" -s 31,lpc
else
	skip 39 "khyve has no virtio-blk yet"
fi

# ---- virtio-console --------------------------------------------------------

cat >"$tmp/host.py" <<'EOF'
# The host end of the vcons round trip: connect to the port's socket
# (retrying while khyve starts), expect the guest's hello, send a line,
# expect it back upper-cased.  Exit 0 on success.
import socket, sys, time

path, msg = sys.argv[1], sys.argv[2]
deadline = time.time() + 20
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        break
    except OSError:
        s.close()
        if time.time() > deadline:
            print("host: cannot connect to", path)
            sys.exit(1)
        time.sleep(0.05)
s.settimeout(30)
f = s.makefile("rb")
line = f.readline()
print("host: got %r" % line)
if line != b"hello from guest\n":
    sys.exit(1)
s.sendall(msg.encode() + b"\n")
line = f.readline()
print("host: got %r" % line)
sys.exit(0 if line == msg.upper().encode() + b"\n" else 1)
EOF

if ! have_dev virtio-console; then
	skip 5 "khyve has no virtio-console yet"
elif ! command -v python3 >/dev/null 2>&1; then
	skip 5 "python3 missing (the host end of the round trip)"
elif [ ! -f "$guestdir/vcons.elf" ]; then
	ok 0 "vcons: $guestdir/vcons.elf exists (make guests)"
	skip 4 "vcons.elf missing"
else
	sock=$tmp/vcons.sock
	msg="Round trip from the host $$"
	upper=$(printf '%s' "$msg" | tr '[:lower:]' '[:upper:]')
	rt="vcons: the host got the hello and its line back upper-cased"
	boot vcons "timeout=20" -s 0,hostbridge \
		-s "5,virtio-console,port0=$sock" -s 31,lpc &
	kpid=$!
	python3 "$tmp/host.py" "$sock" "$msg" >"$tmp/host.out" 2>&1
	pyst=$?
	wait "$kpid"
	st=$? # boot ran in a subshell; it returns khyve's status
	if [ "$pyst" -eq 0 ]; then
		ok 1 "$rt"
	else
		ok 0 "$rt"
		sed -e 's/^/#   host: /' "$tmp/host.out"
	fi
	check "vcons round trip" 33 "vcons: DEVICE_ADD port 0" \
		"vcons: echoed: $upper" "PASS vcons"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
