#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# End-to-end: khyvectl(8) and signals against live VMs (TAP, run by
# prove).  Each run boots the idle guest (tests/guest/idle.c: ACPI mode,
# power-button SCI through the IOAPIC, then "sti; hlt") in the background
# with its serial output in a file, waits (at most ~20 s) for
# "idle: ready", then:
#
#   run 1  --get-stats, --get-all, --get-rip, --get-all on a bad --cpu;
#          a second khyve with the same name is refused (status 4, "vm NAME
#          is already running (pid N)") while the first runs on; the vCPU
#          thread is named vcpu/0 and, with -p 0:1 on a host with two or
#          more CPUs, may only run on host CPU 1; SIGTERM presses the power
#          button: the guest prints "idle: power button", khyve exits 1
#   run 2  khyvectl --destroy: status 1, the runtime dir is gone
#   run 3  khyvectl --force-reset: status 0
#   run 4  khyvectl --force-poweroff: status 1
#   run 5  khyvectl --power-button: the guest powers off through S5 (1)
#   run 6  -S (memory.wired): VmLck in /proc/PID/status covers the guest
#          memory (skipped when the memory cannot be locked)
#
# Skips when /dev/kvm cannot be opened read-write or a binary or the guest
# is missing.  Uses a private KHYVE_RUNDIR (mktemp -d).  Single-threaded;
# every background khyve is killed and the temporary directory removed on
# exit.

set -u

KHYVE_BUILD=${KHYVE_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
khyve=$KHYVE_BUILD/khyve
ctl=$KHYVE_BUILD/khyvectl
elf=$KHYVE_BUILD/tests/guest/idle.elf

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
if [ ! -f "$elf" ]; then
	echo "1..0 # SKIP $elf missing (make guests)"
	exit 0
fi

tmp=$(mktemp -d) || exit 1
KHYVE_RUNDIR=$tmp/run
export KHYVE_RUNDIR
unset XDG_RUNTIME_DIR

bg_pid=   # the background `timeout khyve` of the current run
vm_pid=   # khyve's own pid (from its pid file)

# kill_run: end the current run for good: khyve (by its pid file, and as
# the child of our timeout process, in case the pid file is not there
# yet), then the timeout process itself (which reaps khyve); wait for it.
kill_run() {
	if [ -n "$bg_pid" ]; then
		for p in $vm_pid $(ps -o pid= --ppid "$bg_pid" 2>/dev/null); do
			kill -KILL "$p" 2>/dev/null
		done
		# timeout reaps khyve and exits; TERM makes sure it does
		kill -TERM "$bg_pid" 2>/dev/null
		wait "$bg_pid" 2>/dev/null
	fi
	bg_pid=
	vm_pid=
}

cleanup() {
	kill_run
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

n=0
failed=0

ok() { # pass description
	n=$((n + 1))
	if [ "$1" -eq 1 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		failed=$((failed + 1))
	fi
}

skip() { # description reason
	n=$((n + 1))
	echo "ok $n - $1 # SKIP $2"
}

diag_file() { # file
	echo "# --- $1:"
	tr -d '\r' <"$1" | sed -e 's/^/#   /'
}

# alive PID: the process exists and is not a zombie (an exited child
# stays a zombie until we wait for it, and kill -0 succeeds on one).
alive() {
	[ -r "/proc/$1/stat" ] &&
		! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null
}

# start_vm NAME [khyve options...]: boot the idle guest in the background;
# serial output and messages go to $tmp/NAME.out.  Sets bg_pid and, once
# the pid file appears, vm_pid.  Returns 0 when "idle: ready" was printed
# within ~20 s.
start_vm() {
	name=$1
	shift
	out=$tmp/$name.out
	vm_pid=
	: >"$out" # exists before the background shell opens it
	timeout "${GUEST_TIMEOUT:-60}" "$khyve" -c 1 -m 256M -H -P -w -u \
		-s 0,hostbridge -s 31,lpc -l com1,stdio -l pc-testdev \
		-o "boot.kernel=$elf" -o "boot.cmdline=cpus=1" "$@" "$name" \
		</dev/null >"$out" 2>&1 &
	bg_pid=$!
	i=0
	while [ $i -lt 200 ]; do
		if [ -z "$vm_pid" ] && [ -s "$KHYVE_RUNDIR/$name/pid" ]; then
			vm_pid=$(cat "$KHYVE_RUNDIR/$name/pid")
		fi
		if grep -q '^idle: ready' "$out"; then
			[ -n "$vm_pid" ] && return 0
		fi
		alive "$bg_pid" || return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# wait_vm: wait for the current run to end (the timeout bounds it); sets st.
wait_vm() {
	wait "$bg_pid"
	st=$?
	bg_pid=
	vm_pid=
}

# kctl NAME ARGS...: run khyvectl; stdout to $tmp/ctl.out, stderr to
# $tmp/ctl.err, status in cst.
kctl() {
	name=$1
	shift
	timeout 30 "$ctl" --vm="$name" "$@" >"$tmp/ctl.out" 2>"$tmp/ctl.err"
	cst=$?
}

has() { # file fixed-string
	grep -qF -e "$2" "$1" 2>/dev/null
}

# The task id of the thread named vcpu/0 of process $1 (empty if none).
vcpu0_tid() {
	for t in /proc/"$1"/task/*; do
		if [ "$(cat "$t/comm" 2>/dev/null)" = "vcpu/0" ]; then
			echo "${t##*/}"
			return
		fi
	done
}

# ---- run 1: queries, name lock, thread name and pinning, SIGTERM ---------
vm=vmctl-a
ncpu=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
pin=
[ "$ncpu" -ge 2 ] && pin="-p 0:1"
# shellcheck disable=SC2086 # $pin is empty or two words
if start_vm "$vm" $pin; then
	ok 1 "run 1: the idle guest is ready"
	ok "$([ "$(cat "/proc/$vm_pid/comm" 2>/dev/null)" = khyve ] &&
		echo 1 || echo 0)" "run 1: the pid file names a live khyve"

	kctl "$vm" --get-stats
	ok "$([ $cst -eq 0 ] && echo 1 || echo 0)" "--get-stats: exit 0"
	ok "$(has "$tmp/ctl.out" "exits total" && has "$tmp/ctl.out" vcpu0 &&
		echo 1 || echo 0)" "--get-stats: \"vcpu0\" and \"exits total\""
	[ $cst -eq 0 ] || diag_file "$tmp/ctl.err"

	kctl "$vm" --get-all
	ok "$([ $cst -eq 0 ] && echo 1 || echo 0)" "--get-all: exit 0"
	ok "$(grep -q '^rip  *0x[0-9a-f]\{16\}$' "$tmp/ctl.out" &&
		grep -q '^cr0  *0x[0-9a-f]\{16\}$' "$tmp/ctl.out" &&
		echo 1 || echo 0)" "--get-all: rip and cr0 lines"
	# the guest is in long mode with paging: CR0.PG and CR0.PE
	cr0=$(sed -n 's/^cr0  *\(0x[0-9a-f]*\)$/\1/p' "$tmp/ctl.out")
	ok "$([ -n "$cr0" ] && [ $((cr0 & 0x80000001)) -eq $((0x80000001)) ] &&
		echo 1 || echo 0)" "--get-all: CR0 has PG and PE ($cr0)"

	kctl "$vm" --get-rip
	ok "$([ $cst -eq 0 ] &&
		grep -q '^rip\[0\][[:space:]]*0x[0-9a-f]\{16\}$' \
			"$tmp/ctl.out" && echo 1 || echo 0)" \
		"--get-rip: exit 0, one rip[0] line"
	[ $cst -eq 0 ] || diag_file "$tmp/ctl.err"

	kctl "$vm" --cpu=5 --get-all
	ok "$([ $cst -eq 1 ] && has "$tmp/ctl.err" "invalid vcpu" &&
		echo 1 || echo 0)" "--get-all --cpu=5 on a 1-CPU VM: exit 1"

	# The same name again: refused, and the first VM runs on.
	timeout 30 "$khyve" -c 1 -m 64M -s 0,hostbridge -s 31,lpc \
		-o "boot.kernel=$elf" "$vm" </dev/null >"$tmp/dup.out" 2>&1
	dst=$?
	ok "$([ $dst -eq 4 ] && echo 1 || echo 0)" \
		"same name twice: the second khyve exits 4"
	ok "$(has "$tmp/dup.out" "vm $vm is already running (pid $vm_pid)" &&
		echo 1 || echo 0)" "same name twice: \"already running (pid N)\""
	[ $dst -eq 4 ] || diag_file "$tmp/dup.out"
	kctl "$vm"
	ok "$(alive "$vm_pid" && [ $cst -eq 0 ] && echo 1 || echo 0)" \
		"same name twice: the first VM still runs and answers"

	tid=$(vcpu0_tid "$vm_pid")
	ok "$([ -n "$tid" ] && echo 1 || echo 0)" "a thread is named vcpu/0"
	if [ -z "$pin" ]; then
		skip "-p 0:1: vcpu/0 runs on host CPU 1 only" \
			"one host CPU"
	else
		cal=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' \
			"/proc/$vm_pid/task/${tid:-none}/status" 2>/dev/null)
		ok "$([ "$cal" = 1 ] && echo 1 || echo 0)" \
			"-p 0:1: vcpu/0 runs on host CPU 1 only (\"$cal\")"
	fi

	kill -TERM "$vm_pid"
	wait_vm
	ok "$([ $st -eq 1 ] && echo 1 || echo 0)" \
		"SIGTERM: power button, khyve exits 1 (got $st)"
	ok "$(has "$out" "idle: power button" && echo 1 || echo 0)" \
		"SIGTERM: the guest saw the power button"
	ok "$([ ! -e "$KHYVE_RUNDIR/$vm" ] && echo 1 || echo 0)" \
		"SIGTERM: the runtime dir is gone"
	[ $st -eq 1 ] || diag_file "$out"
else
	ok 0 "run 1: the idle guest is ready"
	diag_file "$out"
	kill_run
fi

# ---- runs 2-5: one control action each --------------------------------
# ctl_run NAME ACTION WANT_STATUS DESCRIPTION
ctl_run() {
	if ! start_vm "$1"; then
		ok 0 "$4: the idle guest is ready"
		diag_file "$out"
		kill_run
		return
	fi
	kctl "$1" "$2"
	ok "$([ $cst -eq 0 ] && echo 1 || echo 0)" "$4: khyvectl $2 exits 0"
	[ $cst -eq 0 ] || diag_file "$tmp/ctl.err"
	wait_vm
	ok "$([ $st -eq "$3" ] && echo 1 || echo 0)" \
		"$4: khyve exits $3 (got $st)"
	ok "$([ ! -e "$KHYVE_RUNDIR/$1" ] && echo 1 || echo 0)" \
		"$4: the runtime dir is gone"
	[ $st -eq "$3" ] || diag_file "$out"
}

ctl_run vmctl-b --destroy 1 "destroy"
ctl_run vmctl-c --force-reset 0 "force-reset"
ctl_run vmctl-d --force-poweroff 1 "force-poweroff"
ctl_run vmctl-e --power-button 1 "power-button"
ok "$(has "$tmp/ctl.out" "power button pressed" && echo 1 || echo 0)" \
	"power-button: khyvectl says \"power button pressed\""
ok "$(has "$tmp/vmctl-e.out" "idle: power button" &&
	has "$tmp/vmctl-e.out" "ACPI: S5" && echo 1 || echo 0)" \
	"power-button: the guest powered off through S5"

# ---- run 6: wired memory ------------------------------------------------
vm=vmctl-f
if start_vm "$vm" -S; then
	lck=$(sed -n 's/^VmLck:[[:space:]]*\([0-9]*\) kB$/\1/p' \
		"/proc/$vm_pid/status")
	ok "$([ "${lck:-0}" -ge 262144 ] && echo 1 || echo 0)" \
		"-S: VmLck ${lck:-?} kB covers the 256 MiB of guest memory"
	kctl "$vm" --destroy
	wait_vm
	ok "$([ $st -eq 1 ] && echo 1 || echo 0)" "-S: destroyed (exit 1)"
elif grep -q 'memory.wired: cannot wire' "$out"; then
	kill_run
	skip "-S: VmLck covers the guest memory" \
		"cannot lock memory here (RLIMIT_MEMLOCK)"
else
	ok 0 "-S: the idle guest is ready"
	diag_file "$out"
	kill_run
fi

echo "1..$n"
[ "$failed" -eq 0 ]
