#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# virtio-net benchmark (part of `make bench`, called by bench/run.sh):
# packets per second and throughput over a tap, khyve's virtio-net against
# QEMU's virtio-net-pci (-M pc, user-space datapath: there is no vhost on
# these machines), with the same guest, in one run.
#
# The guest is tests/guest/net-bench.elf: it sets the device up in ring 0
# and then sends or receives N frames from ring 3, polling the rings (see
# the guest's header comment).  Cases:
#   tx 64 B, tx 1500 B, tx 64 KiB TSO     guest -> host
#   rx 64 B, rx 1500 B, rx 64 KiB TSO     host -> guest
# The tap lives in a network namespace made here, without an address;
# transmitted frames go to a unicast MAC nobody has, so the host drops
# them at once.  For rx, bench/net_blast sends frames into the tap (to the
# guest's MAC) as fast as it can for the whole run; the guest counts N
# packets, or for rx 64 KiB TSO N bytes (the tap may hand over whole 64
# KiB packets or segments, depending on what the VMM asked for).
# Timing as bench/blk.sh: from the guest's "entering ring 3" line to the
# VMM's exit, the rate from two runs with N1 and N2 frames, the best of
# RUNS runs each.  MB are 10^6 bytes of frame (Ethernet header included).
#
# Prints pps and MB/s per case and VMM, then khyve/QEMU per case (target
# >= 1.2).
#
# Usage: bench/net.sh BUILD_DIR
# Environment: RUNS (2); NET_N1/NET_N2 frames for 64/1500 B (200000/
# 1200000) and NET_TSO_N1/NET_TSO_N2 for 64 KiB (20000/120000); TIMEOUT
# per VM run in seconds (120).  Needs root, ip(8), khyve, the guests and
# bench bins (make all bench-bins), bash >= 5; QEMU is optional.
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-2}
TIMEOUT=${TIMEOUT:-120}
ELF=$B/tests/guest/net-bench.elf
BLAST=$B/bench/net_blast
QEMU=qemu-system-x86_64
MAC=52:54:00:12:34:56
export LC_ALL=C
export KHYVE_RUNDIR=${KHYVE_RUNDIR:-$(mktemp -d)}
. "$(dirname "$0")/lib.sh"

if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	echo "net: /dev/kvm not usable"
	exit 1
fi
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null; then
	echo "net: needs root and ip(8) (a tap in a network namespace)"
	exit 1
fi
for f in "$B/khyve" "$ELF" "$BLAST"; do
	if [ ! -f "$f" ]; then
		echo "net: $f missing (make all bench-bins)"
		exit 1
	fi
done
have_qemu=1
command -v "$QEMU" >/dev/null 2>&1 || have_qemu=0

dir=$(mktemp -d)
ns=khnetbench$$
tap=khb0
bpid=""
cleanup() {
	[ -z "$bpid" ] || kill "$bpid" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" tuntap add "$tap" mode tap
ip -n "$ns" link set "$tap" up
# no IPv6 chatter from the host side into the guest's counts
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 || true

khyve_cmd() { # cmdline
	ip netns exec "$ns" timeout -s KILL "$TIMEOUT" "$B/khyve" -c 1 -m 256M -H -P \
		-w -u -s 0,hostbridge -s "3,virtio-net,$tap,mac=$MAC" \
		-s 31,lpc -l com1,stdio -l pc-testdev -o "boot.kernel=$ELF" \
		-o "boot.cmdline=$1" "netbench$$"
}
qemu_cmd() { # cmdline
	ip netns exec "$ns" timeout -s KILL "$TIMEOUT" "$QEMU" -M pc -accel kvm \
		-m 256 -nodefaults -no-user-config -display none \
		-serial stdio -no-reboot \
		-device isa-debug-exit,iobase=0xf4,iosize=4 \
		-kernel "$ELF" -append "$1" \
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no,vhost=off" \
		-device "virtio-net-pci,netdev=n0,mac=$MAC"
}

blast_start() { # size [tso]
	ip netns exec "$ns" "$BLAST" "$tap" "$MAC" "$@" >"$dir/blast" &
	bpid=$!
}
blast_stop() {
	kill "$bpid" 2>/dev/null || true
	wait "$bpid" 2>/dev/null || true
	bpid=""
}

n1=${NET_N1:-200000}
n2=${NET_N2:-1200000}
t1=${NET_TSO_N1:-20000}
t2=${NET_TSO_N2:-120000}
# name|direction|size|guest words|n1|n2
D=dmac=02:00:00:00:00:01
cases="tx64|tx|64|size=64 $D|$n1|$n2
tx1500|tx|1500|size=1500 $D|$n1|$n2
tx64k-tso|tx|65536|size=65536 tso $D|$t1|$t2
rx64|rx|64||$n1|$n2
rx1500|rx|1500||$n1|$n2
rx64k-tso|rx|1|tso bytes|$((t1 * 65536))|$((t2 * 65536))"

# NET_CASES="rx64 rx1500": only these cases
if [ -n "${NET_CASES:-}" ]; then
	cases=$(echo "$cases" | grep -E "^($(echo "$NET_CASES" | tr ' ' '|'))\|")
fi

echo "== (d) virtio-net over a tap: net-bench.elf, best of $RUNS" >&2
declare -A R
while IFS='|' read -r name dirn size words a b; do
	for vmm in khyve qemu; do
		if [ "$vmm" = qemu ] && [ "$have_qemu" -eq 0 ]; then
			R[$vmm.$name]=fail
			continue
		fi
		want=33
		[ "$vmm" = qemu ] && want=0 # triple fault, see net-bench.c
		if [ "$dirn" = rx ]; then
			if [ "$name" = rx64k-tso ]; then
				blast_start 65536 tso
			else
				blast_start "$size"
			fi
		fi
		R[$vmm.$name]=$(rate2 "$vmm" "$want" "mode=$dirn $words" "$a" "$b")
		[ "$dirn" = rx ] && blast_stop
		r=${R[$vmm.$name]}
		if [ "$r" = fail ]; then
			printf '%-22s %-6s %12s\n' "$name" "$vmm" failed >&2
		elif [ "$size" = 1 ]; then # the guest counted bytes
			printf '%-22s %-6s %16s %10.1f MB/s\n' "$name" \
				"$vmm" "" "$(echo "$r / 1000000" | bc -l)" >&2
		else
			printf '%-22s %-6s %12.0f pps %10.1f MB/s\n' "$name" \
				"$vmm" "$r" "$(echo "$r * $size / 1000000" | bc -l)" >&2
		fi
	done
	echo "net $name: khyve/qemu $(ratio "${R[khyve.$name]}" "${R[qemu.$name]}") (target >= 1.2)"
done <<<"$cases"
