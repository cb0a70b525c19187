#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# End-to-end: platform behaviour seen from inside a guest (TAP, run by
# prove).  Guests from tests/guest/:
#
#   unclaimed  an unclaimed port reads all ones, an unclaimed MMIO dword in
#              the PCI hole too (PASS, 33); with "wait" it then sleeps and
#              khyvectl --get-stats must count the accesses (per vCPU and
#              per bus, with the last port/address); --power-button and
#              SIGTERM must not end it (it never enabled ACPI events);
#              then --destroy; with
#              -e (x86.strictio) the first port read ends the VM: status 4
#              and an error line naming the port
#   cpuid      the topology of -c 1, -c 2, -c cpus=4,sockets=2,cores=2,
#              threads=1, -c cpus=4,sockets=1,cores=2,threads=2 and of -x
#              (x2APIC mode, APs started through the ICR MSR), checked on
#              every CPU against leaves 1, 0xb, 4, 0x80000008, 0x8000001e,
#              0x40000100 and the APIC id; and a wrong expectation must FAIL
#   msr        an unknown MSR reads 0 and ignores writes with -w, raises #GP
#              without it; the opposite expectation must FAIL
#
# Skips when /dev/kvm cannot be opened read-write or khyve/khyvectl is
# missing.  Uses a private KHYVE_RUNDIR (mktemp -d).  Single-threaded; the
# background khyve is killed and temporary files removed on exit.

set -u

KHYVE_BUILD=${KHYVE_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
khyve=$KHYVE_BUILD/khyve
ctl=$KHYVE_BUILD/khyvectl
guestdir=$KHYVE_BUILD/tests/guest

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "1..0 # SKIP /dev/kvm not usable"
	exit 0
fi
for f in "$khyve" "$ctl"; do
	if [ ! -x "$f" ]; then
		echo "1..0 # SKIP $f missing"
		exit 0
	fi
done

tmp=$(mktemp -d) || exit 1
KHYVE_RUNDIR=$tmp/run
export KHYVE_RUNDIR
unset XDG_RUNTIME_DIR

bg_pid=   # the background `timeout khyve` of the "wait" run

# kill_run: end the background run for good: khyve (the child of our
# timeout process), then the timeout process itself (which reaps khyve);
# wait for it.
kill_run() {
	if [ -n "$bg_pid" ]; then
		for p in $(ps -o pid= --ppid "$bg_pid" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null
		done
		# timeout reaps khyve and exits; TERM makes sure it does
		kill -TERM "$bg_pid" 2>/dev/null
		wait "$bg_pid" 2>/dev/null
	fi
	bg_pid=
}

cleanup() {
	kill_run
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

n=0
failed=0

ok() { # pass description [directive]
	n=$((n + 1))
	if [ "$1" -eq 1 ]; then
		echo "ok $n - $2${3:+ # $3}"
	else
		echo "not ok $n - $2${3:+ # $3}"
		[ -z "${3:-}" ] && failed=$((failed + 1))
	fi
}

diag_out() {
	echo "# serial output and messages:"
	sed -e 's/^/#   /' "$tmp/out"
}

b() { # command...: 1 if it succeeds, else 0
	if "$@"; then echo 1; else echo 0; fi
}

has() { # fixed-string (in $tmp/out)
	grep -qF -e "$1" "$tmp/out"
}

# alive PID: the process exists and is not a zombie (an exited child
# stays a zombie until we wait for it, and kill -0 succeeds on one).
alive() {
	[ -r "/proc/$1/stat" ] &&
		! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null
}

# boot GUEST NAME CMDLINE [khyve options...]: run to the end in the
# foreground (bounded by timeout); output in $tmp/out, status in st.
# Returns 1 (and fails one test) when the guest ELF is missing.
boot() {
	elf=$guestdir/$1.elf
	bname=$2
	bcmd=$3
	shift 3
	if [ ! -f "$elf" ]; then
		ok 0 "$bname: $elf exists (make guests)"
		st=-1
		return 1
	fi
	timeout "${GUEST_TIMEOUT:-60}" "$khyve" -m 256M -H -P -u \
		-s 0,hostbridge -s 31,lpc -l com1,stdio -l pc-testdev \
		-o "boot.kernel=$elf" -o "boot.cmdline=$bcmd" "$@" "$bname" \
		</dev/null >"$tmp/raw" 2>&1
	st=$?
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
	return 0
}

# expect_run DESCRIPTION WANT_STATUS "LINE"...: check status and lines of
# the last boot; dump the output on a failure.
expect_run() {
	what=$1
	want=$2
	shift 2
	bad=0
	ok "$(b [ "$st" -eq "$want" ])" "$what: exit status $want (got $st)"
	[ "$st" -eq "$want" ] || bad=1
	for line in "$@"; do
		if has "$line" && ! has "EXCEPTION vector"; then
			ok 1 "$what: prints \"$line\""
		else
			ok 0 "$what: prints \"$line\""
			bad=1
		fi
	done
	[ $bad -eq 0 ] || diag_out
}

# ---- unclaimed accesses -------------------------------------------------
if boot unclaimed vmunc "cpus=1" -c 1 -w; then
	expect_run "unclaimed" 33 \
		"unclaimed: port 0x1234 reads byte 0xff word 0xffff dword 0xffffffff" \
		"unclaimed: MMIO 0xd0000000 reads 0xffffffff, after a write 0xffffffff" \
		"PASS unclaimed"
fi

if boot unclaimed vmunc-e "cpus=1" -c 1 -w -e; then
	expect_run "unclaimed -e" 4 "unclaimed: reading port 0x1234" \
		"unhandled read of I/O port 0x1234 (x86.strictio)"
	if has "unclaimed: port 0x1234 reads"; then
		ok 0 "unclaimed -e: the guest did not get past the first read"
	else
		ok 1 "unclaimed -e: the guest did not get past the first read"
	fi
fi

# The counters, read while the guest waits.
stat_of() { # "name" -> the number after it in $tmp/stats (first match)
	sed -n "s/^$1  *\([0-9a-fx]*\)\$/\1/p" "$tmp/stats" | head -n 1
}
elf=$guestdir/unclaimed.elf
vm=vmunc-wait
if [ -f "$elf" ]; then
	: >"$tmp/raw" # exists before the background shell opens it
	timeout "${GUEST_TIMEOUT:-60}" "$khyve" -c 1 -m 256M -H -P -w -u \
		-s 0,hostbridge -s 31,lpc -l com1,stdio -l pc-testdev \
		-o "boot.kernel=$elf" -o "boot.cmdline=cpus=1 wait" "$vm" \
		</dev/null >"$tmp/raw" 2>&1 &
	bg_pid=$!
	i=0
	while [ $i -lt 200 ] && ! grep -q '^unclaimed: waiting' "$tmp/raw" &&
		alive "$bg_pid"; do
		sleep 0.1
		i=$((i + 1))
	done
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
	if has "unclaimed: waiting"; then
		ok 1 "unclaimed wait: the guest waits"
		timeout 30 "$ctl" --vm="$vm" --get-stats >"$tmp/stats" 2>&1
		ok "$(b [ $? -eq 0 ])" "unclaimed wait: --get-stats exits 0"
		v=$(stat_of "unclaimed I\/O port accesses")
		ok "$(b [ "${v:-0}" -ge 6 ])" \
			"unclaimed wait: vcpu0 unclaimed I/O port accesses >= 6 (${v:-?})"
		v=$(stat_of "unclaimed MMIO accesses")
		ok "$(b [ "${v:-0}" -ge 3 ])" \
			"unclaimed wait: vcpu0 unclaimed MMIO accesses >= 3 (${v:-?})"
		v=$(stat_of "pio unclaimed")
		ok "$(b [ "${v:-0}" -ge 6 ])" \
			"unclaimed wait: pio unclaimed >= 6 (${v:-?})"
		v=$(stat_of "mmio unclaimed")
		ok "$(b [ "${v:-0}" -ge 3 ])" \
			"unclaimed wait: mmio unclaimed >= 3 (${v:-?})"
		v=$(stat_of "pio last unclaimed port")
		ok "$(b [ "$v" = 0x1234 ])" \
			"unclaimed wait: last unclaimed port 0x1234 ($v)"
		v=$(stat_of "mmio last unclaimed address")
		ok "$(b [ "$v" = 0xd0000000 ])" \
			"unclaimed wait: last unclaimed MMIO 0xd0000000 ($v)"
		# No ACPI mode, no power-button event: refused, VM runs on.
		timeout 30 "$ctl" --vm="$vm" --power-button >"$tmp/pb" 2>&1
		pst=$?
		ok "$(b [ $pst -eq 1 ])" \
			"unclaimed wait: --power-button without ACPI exits 1"
		ok "$(b grep -q 'has not enabled ACPI power-button' "$tmp/pb")" \
			"unclaimed wait: --power-button says why"
		[ $pst -eq 1 ] || sed -e 's/^/#   /' "$tmp/pb"
		vp=$(cat "$KHYVE_RUNDIR/$vm/pid" 2>/dev/null)
		[ -n "$vp" ] && kill -TERM "$vp"
		sleep 0.3
		ok "$(b alive "$bg_pid")" \
			"unclaimed wait: SIGTERM without ACPI leaves the VM running"
		timeout 30 "$ctl" --vm="$vm" --destroy >/dev/null 2>&1
		wait "$bg_pid"
		st=$?
		bg_pid=
		ok "$(b [ $st -eq 1 ])" "unclaimed wait: destroyed (exit 1)"
		[ $st -eq 1 ] || diag_out
	else
		ok 0 "unclaimed wait: the guest waits"
		diag_out
		kill_run
	fi
else
	ok 0 "unclaimed wait: $elf exists (make guests)"
fi

# ---- CPUID topology -----------------------------------------------------
# cpuid_run DESCRIPTION CMDLINE KHYVE_OPTIONS...
cpuid_run() {
	what=$1
	cmd=$2
	shift 2
	boot cpuid vmcpuid "$cmd" "$@" || return
	if [ "$st" -eq 33 ] && has "PASS cpuid"; then
		ok 1 "$what: PASS"
		return
	fi
	ok 0 "$what: PASS (exit status $st)"
	diag_out
}

cpuid_run "cpuid -c 1" "cpus=1" -c 1 -w
cpuid_run "cpuid -c 2" "cpus=2" -c 2 -w
cpuid_run "cpuid -c cpus=4,sockets=2,cores=2,threads=1" \
	"cpus=4 sockets=2 cores=2 threads=1" -c cpus=4,sockets=2,cores=2,threads=1 -w
cpuid_run "cpuid -c cpus=4,sockets=1,cores=2,threads=2" \
	"cpus=4 sockets=1 cores=2 threads=2" -c cpus=4,sockets=1,cores=2,threads=2 -w
cpuid_run "cpuid -x -c 2" "cpus=2 x2apic=1" -x -c 2 -w

# The guest must notice a topology that differs from what it is told.
if boot cpuid vmcpuid "cpus=2 sockets=1 cores=2 threads=1" -c 2 -w; then
	expect_run "cpuid, told 1 socket x 2 cores, given 2 sockets" 35 \
		"leaf 1 EBX[23:16] (logical CPUs per package) is 0x1, expected 0x2" \
		"FAIL cpuid"
fi
if boot cpuid vmcpuid "cpus=1 x2apic=1" -c 1 -w; then
	expect_run "cpuid, told x2APIC, given xAPIC" 35 \
		"x2APIC mode is 0x0, expected 0x1" "FAIL cpuid"
fi

# ---- unknown MSRs -------------------------------------------------------
if boot msr vmmsr "cpus=1 expect=zero" -c 1 -w; then
	expect_run "msr -w" 33 "msr: rdmsr 0x40000200: no fault (value 0x0)" \
		"PASS msr"
fi
if boot msr vmmsr "cpus=1 expect=gp" -c 1; then
	expect_run "msr without -w" 33 "msr: rdmsr 0x40000200: #GP" \
		"msr: wrmsr 0x40000200 <- 0x1122334455667788: #GP" "PASS msr"
fi
if boot msr vmmsr "cpus=1 expect=gp" -c 1 -w; then
	expect_run "msr -w, told to expect #GP" 35 "FAIL msr"
fi
if boot msr vmmsr "cpus=1 expect=zero" -c 1; then
	expect_run "msr without -w, told to expect zero" 35 "FAIL msr"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
