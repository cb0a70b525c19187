#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# End-to-end: real network traffic in and out of a guest (TAP, run by
# prove).  The net-echo guest (tests/guest/net-echo.c) runs under khyve
# with a virtio-net and then an e1000 NIC, on two backends:
#
#   tap    a tap in a network namespace made by this test (10.77.0.1/24
#          on the host side, the guest 10.77.0.2): the guest sends a
#          "hello" datagram, which the host receives on a UDP socket and
#          sees on a raw packet socket from the guest's MAC; the host then
#          sends UDP datagrams to the guest's echo port with a normal
#          socket (the kernel resolves the guest by ARP first) and checks
#          the echoes and its neighbour table.
#   slirp  the guest takes its address by DHCP from libslirp (10.0.2.15)
#          and serves UDP and TCP echo ports that the host reaches through
#          hostfwd on 127.0.0.1.
#
# The host side is tests/e2e/net_host.py; each of its "PASS/FAIL" lines is
# one test here.  The tap cases need root, ip(8) and /dev/net/tun and skip
# without them; everything skips without /dev/kvm or python3.  Runs are
# sequential; the namespace and temporary files are removed on exit.

. "$(dirname "$0")/lib.sh"

host=$(dirname "$0")/net_host.py
ns=khyvenet$$
elf=$guestdir/net-echo.elf

cleanup_ns() {
	ip netns del "$ns" 2>/dev/null
}
trap 'cleanup_ns; rm -rf "$tmp"' EXIT

# results FILE WHAT: one TAP line per PASS/FAIL line of net_host.py
results() {
	if ! grep -q '^\(PASS\|FAIL\) ' "$1"; then
		ok 0 "$2: host side produced results"
		sed -e 's/^/#   /' "$1"
		return
	fi
	while IFS= read -r line; do
		case $line in
		PASS\ *) ok 1 "$2: ${line#PASS }" ;;
		FAIL\ *)
			ok 0 "$2: ${line#FAIL }"
			bad=1
			;;
		esac
	done <"$1"
}

# guest_ok WHAT KPID "LINE"...: exit status 33 and the serial lines
guest_ok() {
	what=$1
	kpid=$2
	shift 2
	st=0
	wait "$kpid" || st=$?
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
	check "$what" 33 "$@"
}

khyve_bg() { # NAME CMDLINE SLOT...; output in $tmp/raw
	name=$1
	cmdline=$2
	shift 2
	timeout 120 "$khyve" -c 1 -m 256M -H -P -w -u "$@" -s 31,lpc \
		-l com1,stdio -l pc-testdev -o "boot.kernel=$elf" \
		-o "boot.cmdline=$cmdline" "vm$name$$" </dev/null \
		>"$tmp/raw" 2>&1 &
	kpid=$!
}

# ---- tap in a network namespace ------------------------------------------

tap_case() { # MODEL MAC
	model=$1
	mac=$2
	ip -n "$ns" tuntap add ktap0 mode tap &&
		ip -n "$ns" link set ktap0 up &&
		ip -n "$ns" addr add 10.77.0.1/24 dev ktap0 || {
		ok 0 "$model tap: set up the tap in namespace $ns"
		return
	}
	ip netns exec "$ns" python3 "$host" tap ktap0 10.77.0.2 "$mac" 9999 \
		>"$tmp/host.out" 2>&1 &
	hpid=$!
	sleep 0.3
	kcmd="nic=$(echo "$model" | sed 's/virtio-net/virtio/')"
	kcmd="$kcmd ip=10.77.0.2/24 udp=7 hello=10.77.0.1:9999 timeout=100"
	# shellcheck disable=SC2086
	ip netns exec "$ns" timeout 120 "$khyve" -c 1 -m 256M -H -P -w -u \
		-s 0,hostbridge -s "3,$model,ktap0,mac=$mac" -s 31,lpc \
		-l com1,stdio -l pc-testdev -o "boot.kernel=$elf" \
		-o "boot.cmdline=$kcmd" "vmtap$$" </dev/null >"$tmp/raw" 2>&1 &
	kpid=$!
	wait "$hpid"
	results "$tmp/host.out" "$model tap"
	guest_ok "$model tap: net-echo" "$kpid" "net-echo: ready" \
		"PASS net-echo"
	ip -n "$ns" link del ktap0 2>/dev/null
}

# ---- slirp ---------------------------------------------------------------

free_port() {
	python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_'"$1"')
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

slirp_case() { # MODEL
	model=$1
	up=$(free_port DGRAM)
	tp=$(free_port STREAM)
	kcmd="nic=$(echo "$model" | sed 's/virtio-net/virtio/')"
	kcmd="$kcmd dhcp udp=7 tcp=7 timeout=100"
	khyve_bg slirp "$kcmd" -s 0,hostbridge \
		-s "3,$model,slirp,hostfwd=udp:127.0.0.1:$up-:7;tcp:127.0.0.1:$tp-:7"
	python3 "$host" slirp "$tmp/raw" "$up" "$tp" >"$tmp/host.out" 2>&1
	results "$tmp/host.out" "$model slirp"
	guest_ok "$model slirp: net-echo" "$kpid" "net-echo: ready" \
		"ip 10.0.2.15 (dhcp)" "PASS net-echo"
}

if [ ! -f "$elf" ]; then
	echo "1..0 # SKIP $elf missing"
	exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
	echo "1..0 # SKIP python3 missing (the host end)"
	exit 0
fi

can_tap=1
why=""
if [ "$(id -u)" -ne 0 ]; then
	can_tap=0
	why="tap tests need root"
elif ! command -v ip >/dev/null 2>&1; then
	can_tap=0
	why="ip(8) missing"
elif [ ! -c /dev/net/tun ]; then
	can_tap=0
	why="/dev/net/tun missing"
elif ! ip netns add "$ns" 2>/dev/null; then
	can_tap=0
	why="cannot create a network namespace"
fi

for model in virtio-net e1000; do
	if ! have_dev "$model"; then
		skip 1 "$model not available"
		continue
	fi
	if [ "$can_tap" -eq 1 ]; then
		tap_case "$model" 52:54:00:77:00:02
	else
		skip 1 "$model tap: $why"
	fi
	slirp_case "$model"
done

echo "1..$n"
[ "$failed" -eq 0 ]
