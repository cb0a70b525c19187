#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# End-to-end tests of vm(8), the vm-bhyve-style manager (TAP, run by
# prove).  Five parts:
#
#   golden    every tests/vm/golden/NAME.conf through `vm argv`: khyve's
#             argv (NAME.args, warnings in NAME.warn) or the one error line
#             (NAME.err); see tests/vm/README.md.  No KVM needed.
#   offline   the commands that need no guest: init, list (--json),
#             create and its bad input (nothing half-made), datastores,
#             autostart, get/set, edit, iso/img, snapshot/clone/rollback/
#             destroy of stopped VMs and their refusals.  No KVM needed.
#   lifecycle with the idle PVH guest: create -> start -> console output
#             through the pty (and ~. detach, one client at a time) ->
#             refusals while running -> stop (ACPI power button) ->
#             snapshot -> clone -> start the clone -> stop -> rollback ->
#             destroy (refused while a clone exists, then done).
#   monitor   a rebooting guest is restarted; install attaches the ISO
#             for the first run only; a guest that ignores the power
#             button is destroyed after stop_timeout; a guest exit status,
#             a triple fault and a khyve start-up error are reported;
#             startall/stopall follow the autostart list.
#   network   (root and ip(8) only) inside a private network namespace:
#             switch create/add/remove/list/destroy on real bridges and
#             veths, vm init re-creating a bridge, a VM's tap created on
#             its switch at start and removed at stop, and UDP traffic
#             between the host and the net-echo guest through a switch.
#
# The KVM parts skip (lib.sh's skip) when /dev/kvm is unusable.  Uses a
# private VM_DIR and KHYVE_RUNDIR under mktemp -d; every monitor and khyve
# started here is killed and the namespace deleted on exit.

# shellcheck disable=SC2016,SC2034 # cond's code is single-quoted on
# purpose, and the variables it uses are set outside it
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
KHYVE_BUILD=${KHYVE_BUILD:-$top/build}
vm=$KHYVE_BUILD/vm
img=$KHYVE_BUILD/khyve-img
golden=$top/tests/vm/golden

if [ ! -x "$vm" ]; then
	echo "1..0 # SKIP $vm missing"
	exit 0
fi

# lib.sh's TAP helpers.  lib.sh itself exits when KVM is unusable, so it
# is sourced only when KVM works; otherwise only ok() and skip() are taken.
if (exec 3<>/dev/kvm) 2>/dev/null && [ -x "$KHYVE_BUILD/khyve" ]; then
	kvm=1
	# shellcheck source=tests/e2e/lib.sh
	. "$here/lib.sh"
else
	kvm=0
	eval "$(sed -n -e '/^ok() {/,/^}/p' -e '/^skip() {/,/^}/p' \
		"$here/lib.sh")"
	n=0
	failed=0
	tmp=$(mktemp -d) || exit 1
fi

VM_DIR=$tmp/vms
KHYVE_RUNDIR=$tmp/run
export VM_DIR KHYVE_RUNDIR
unset XDG_RUNTIME_DIR KHYVE_BIN_DIR VM_CONFIG
ns=
cpid=

cleanup() {
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null
	for l in "$tmp"/*/*/run.lock; do
		[ -s "$l" ] || continue
		if ! flock -n -s "$l" true 2>/dev/null; then
			kill -KILL "$(head -n 1 "$l")" 2>/dev/null
		fi
	done
	for p in "$tmp"/run/*/pid; do
		[ -s "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null
	done
	[ -n "$ns" ] && ip netns del "$ns" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# V ARGS...: run vm; stdout in $tmp/o, stderr in $tmp/e, status in vst.
V() {
	timeout 60 "$vm" "$@" >"$tmp/o" 2>"$tmp/e"
	vst=$?
}

diag() { # file...
	for f in "$@"; do
		echo "# --- ${f##*/}:"
		tr -d '\r' <"$f" | sed -e 's/^/#   /'
	done
}

# succeeds DESC: the last V exited 0 with nothing on stderr.
succeeds() {
	if [ "$vst" -eq 0 ] && [ ! -s "$tmp/e" ]; then
		ok 1 "$1"
	else
		ok 0 "$1 (status $vst)"
		diag "$tmp/e"
	fi
}

# fails DESC TEXT: the last V failed with exactly one stderr line that
# holds TEXT.
fails() {
	if [ "$vst" -ne 0 ] && [ "$(wc -l <"$tmp/e")" -eq 1 ] &&
		grep -qF -e "$2" "$tmp/e"; then
		ok 1 "$1"
	else
		ok 0 "$1 (status $vst)"
		diag "$tmp/e"
	fi
}

# check DESC COMMAND...: ok when COMMAND succeeds.
check() {
	d=$1
	shift
	if "$@"; then
		ok 1 "$d"
	else
		ok 0 "$d"
	fi
}

# cond DESC CODE: ok when the shell code CODE, evaluated here, succeeds.
cond() {
	if eval "$2"; then
		ok 1 "$1"
	else
		ok 0 "$1"
	fi
}

has() { # file fixed-string
	grep -qF -e "$2" "$1" 2>/dev/null
}

# wait_for FILE STRING: poll (at most ~20 s) until FILE holds STRING.
wait_for() {
	i=0
	while [ $i -lt 200 ]; do
		has "$1" "$2" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

running() { # NAME: its run.lock is held
	[ -e "$VM_DIR/$1/run.lock" ] &&
		! flock -n -s "$VM_DIR/$1/run.lock" true 2>/dev/null
}

# ---- golden: vm argv -----------------------------------------------------
gvm=$tmp/gold/vms
mkdir -p "$tmp/gold"
VM_DIR=$gvm "$vm" init >/dev/null 2>&1
: >"$gvm/.iso/test.iso"
for conf in "$golden"/*.conf; do
	name=${conf##*/}
	name=${name%.conf}
	mkdir -p "$gvm/$name"
	cp "$conf" "$gvm/$name/$name.conf"
	opts=
	[ -f "$golden/$name.opts" ] && opts=$(cat "$golden/$name.opts")
	# shellcheck disable=SC2086 # opts are words
	VM_DIR=$gvm KHYVE_BIN_DIR=/opt/khyve "$vm" argv $opts "$name" \
		>"$tmp/gout" 2>"$tmp/gerr"
	st=$?
	sed "s|$gvm|@VMDIR@|g" "$tmp/gout" >"$tmp/gout.s"
	sed "s|$gvm|@VMDIR@|g" "$tmp/gerr" >"$tmp/gerr.s"
	if [ "${VM_GOLDEN_UPDATE:-0}" = 1 ]; then
		if [ $st -eq 0 ]; then
			cp "$tmp/gout.s" "$golden/$name.args"
			if [ -s "$tmp/gerr.s" ]; then
				cp "$tmp/gerr.s" "$golden/$name.warn"
			fi
		else
			cp "$tmp/gerr.s" "$golden/$name.err"
		fi
	fi
	if [ -f "$golden/$name.args" ]; then
		want_err=/dev/null
		[ -f "$golden/$name.warn" ] && want_err=$golden/$name.warn
		if [ $st -eq 0 ] && cmp -s "$golden/$name.args" "$tmp/gout.s" &&
			cmp -s "$want_err" "$tmp/gerr.s"; then
			ok 1 "golden $name: khyve argv"
		else
			ok 0 "golden $name: khyve argv (status $st)"
			diff -u "$golden/$name.args" "$tmp/gout.s" |
				sed 's/^/# /'
			diff -u "$want_err" "$tmp/gerr.s" | sed 's/^/# /'
		fi
	elif [ -f "$golden/$name.err" ]; then
		if [ $st -eq 1 ] && [ ! -s "$tmp/gout" ] &&
			cmp -s "$golden/$name.err" "$tmp/gerr.s"; then
			ok 1 "golden $name: one error line, status 1"
		else
			ok 0 "golden $name: one error line, status 1 (got $st)"
			diff -u "$golden/$name.err" "$tmp/gerr.s" | sed 's/^/# /'
		fi
	else
		ok 0 "golden $name: has a .args or .err file"
	fi
done

# ---- offline: commands that need no guest --------------------------------
unset VISUAL
V list
fails "list before init: one line, non-zero" "vm init"
V init
succeeds "init"
cond "init: .templates/default.conf, .iso, .img, .config/system.conf" \
	'[ -f "$VM_DIR/.templates/default.conf" ] && [ -d "$VM_DIR/.iso" ] &&
	 [ -d "$VM_DIR/.img" ] && [ -f "$VM_DIR/.config/system.conf" ]'
V init
succeeds "init again keeps working"
printf '# global settings\nvm_dir="%s"\n' "$tmp/other" >"$tmp/vm.conf"
(unset VM_DIR && VM_CONFIG=$tmp/vm.conf "$vm" init) >/dev/null 2>&1
cond "vm_dir in the global file (VM_CONFIG) picks the datastore" \
	'[ -f "$tmp/other/.templates/default.conf" ]'

V list
check "list: vm-bhyve's columns" grep -q \
	'^NAME  *DATASTORE  *LOADER  *CPU  *MEMORY  *VNC  *AUTO  *STATE$' \
	"$tmp/o"

V create -t nosuch t1
fails "create -t nosuch: one line" "template nosuch: no such template"
cond "create -t nosuch: nothing made" '[ ! -e "$VM_DIR/t1" ]'
V create ../evil
fails "create with a bad name: one line" "not a valid virtual machine name"
V create -s lots t1
fails "create -s lots: one line" "-s lots: not a size"
cond "create -s lots: nothing made" '[ ! -e "$VM_DIR/t1" ]'

# a template whose second disk cannot be made (its file name is taken)
cat >"$VM_DIR/.templates/clash.conf" <<EOF
loader="kernel"
kernel="/boot/vmlinuz"
disk0_name="disk0.qcow2"
disk1_name="$VM_DIR/.templates/default.conf"
EOF
V create -t clash t1
fails "create with a disk that exists: one line" "already exists"
cond "create with a disk that exists: nothing made" '[ ! -e "$VM_DIR/t1" ]'

V create -c 2 -m 128M -s 1G t1
succeeds "create -c 2 -m 128M -s 1G t1 (default template)"
cond "create: cpu, memory and a uuid in t1.conf" \
	'grep -q "^cpu=\"2\"$" "$VM_DIR/t1/t1.conf" &&
	 grep -q "^memory=\"128M\"$" "$VM_DIR/t1/t1.conf" &&
	 grep -q "^uuid=\"[0-9a-f-]\{36\}\"$" "$VM_DIR/t1/t1.conf"'
cond "create: the template-only disk0_size is not kept" \
	'! grep -q disk0_size "$VM_DIR/t1/t1.conf"'
cond "create: disk0.qcow2 is a 1 GiB qcow2" \
	'"$img" info "$VM_DIR/t1/disk0.qcow2" | grep -q "virtual size: 1 GiB"'
cp "$VM_DIR/t1/t1.conf" "$tmp/t1.conf.before"
V create t1
fails "create a duplicate name: one line" "t1 already exists"
check "create a duplicate: the original is unchanged" \
	cmp -s "$tmp/t1.conf.before" "$VM_DIR/t1/t1.conf"

V start nosuch
fails "start a missing VM: one line" "nosuch: no such virtual machine"
V stop nosuch
fails "stop a missing VM: one line" "nosuch: no such virtual machine"
V console t1
fails "console of a stopped VM: one line" "t1 is not running"
V stop t1
fails "stop a stopped VM: one line" "t1 is not running"
V start t1
fails "start without a kernel: one line" "kernel: not set"

V list --json
if command -v python3 >/dev/null 2>&1; then
	check "list --json: valid JSON, t1 stopped with its settings" \
		python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
t = [v for v in d if v["name"] == "t1"][0]
assert t["state"] == "stopped" and t["cpu"] == 2 and t["memory"] == "128M"
assert t["pid"] is None and t["autostart"] is False
' "$tmp/o"
else
	skip 1 "python3 missing"
fi

# edit through $EDITOR; what was written is checked
EDITOR="sed -i -e s/^memory=.*/memory=\"96M\"/ -e \$abogus_key=1" \
	V edit t1
check "edit: the editor's change is saved" \
	grep -q '^memory="96M"$' "$VM_DIR/t1/t1.conf"
check "edit: an unknown key is warned about by name" \
	has "$tmp/e" 'unknown key "bogus_key"'

# datastores
mkdir -p "$tmp/ds2"
V datastore add two "$tmp/ds2"
succeeds "datastore add two"
V datastore add two "$tmp/ds2"
fails "datastore add twice: one line" "datastore two already exists"
V datastore add three "$tmp/nope"
fails "datastore add a missing directory: one line" "not an existing directory"
cat >"$VM_DIR/.templates/small.conf" <<EOF
loader="kernel"
kernel="/boot/vmlinuz"
disk0_name="disk0.qcow2"
disk0_size="16M"
EOF
V create -d two -t small t2
succeeds "create -d two t2"
cond "create -d: the VM is in the second datastore" \
	'[ -f "$tmp/ds2/t2/t2.conf" ] && [ -f "$tmp/ds2/t2/disk0.qcow2" ]'
V list
check "list: t2 in datastore two" grep -q '^t2  *two ' "$tmp/o"
V datastore list
cond "datastore list: default and two" \
	'grep -q "^default " "$tmp/o" && grep -q "^two " "$tmp/o"'

# autostart, get and set
V autostart add t1 t2
succeeds "autostart add t1 t2"
V autostart add t1
fails "autostart add twice: one line" "already in the autostart list"
V list
cond "list: AUTO shows the start order" \
	'grep -q "^t1 .* Yes \[1\] " "$tmp/o" &&
	 grep -q "^t2 .* Yes \[2\] " "$tmp/o"'
V autostart remove t1
V get vm_list
check "autostart remove t1: vm_list=t2" grep -qx 'vm_list=t2' "$tmp/o"
V set vm_delay=0
V get all
check "set vm_delay=0, get all" grep -qx 'vm_delay=0' "$tmp/o"
V set 'bad key=1'
fails "set with a bad setting name: one line" "not a valid setting name"
V autostart unit
cond "autostart unit: vm init/startall/stopall for this VM_DIR" \
	'grep -qx "ExecStart=$KHYVE_BUILD/vm startall" "$tmp/o" &&
	 grep -qx "ExecStop=$KHYVE_BUILD/vm stopall" "$tmp/o" &&
	 grep -qx "Environment=VM_DIR=$VM_DIR" "$tmp/o"'

# media: iso and img, and create -i on an image (an O(1) overlay)
truncate -s 3M "$tmp/tools.iso"
if command -v script >/dev/null 2>&1; then
	script -qec "$vm iso $tmp/tools.iso" /dev/null >"$tmp/o" 2>&1
	vst=$?
	cond "iso PATH on a terminal: copied, with a progress bar" \
		'[ $vst -eq 0 ] && grep -q "100%" "$tmp/o" &&
		 cmp -s "$tmp/tools.iso" "$VM_DIR/.iso/tools.iso"'
else
	V iso "$tmp/tools.iso"
	check "iso PATH: copied" cmp -s "$tmp/tools.iso" \
		"$VM_DIR/.iso/tools.iso"
fi
V iso "$tmp/tools.iso"
fails "iso PATH again: one line" "already exists"
V iso
check "iso: lists tools.iso" grep -q '^default  *tools.iso ' "$tmp/o"
"$img" create "$tmp/base.qcow2" 32M >/dev/null 2>&1
V img "$tmp/base.qcow2"
ist=$vst
V create -t small -i base.qcow2 t3
cond "img PATH, then create -i: disk0 overlays ../.img/base.qcow2" \
	'[ $ist -eq 0 ] && [ $vst -eq 0 ] &&
	 "$img" info "$VM_DIR/t3/disk0.qcow2" |
		grep -qx "backing file: ../.img/base.qcow2"'
V create -t small -i nosuch.qcow2 t5
fails "create -i with a missing image: one line" "nosuch.qcow2: not found"
cond "create -i refused: nothing made" '[ ! -e "$VM_DIR/t5" ]'

# snapshots and clones of stopped VMs, and their refusals
cat >"$VM_DIR/.templates/raw.conf" <<EOF
loader="kernel"
kernel="/boot/vmlinuz"
disk0_name="disk0.img"
disk0_size="8M"
EOF
V create -t raw r0
V snapshot r0@s
fails "snapshot of a raw disk: one line" "is not a qcow2 image"
cond "snapshot refused: nothing made" \
	'[ ! -e "$VM_DIR/r0/.snapshots/s.conf" ] &&
	 [ ! -e "$VM_DIR/r0/disk0@s.img" ]'
V snapshot t1@bad:name
fails "snapshot with a bad name: one line" "not a valid snapshot name"
V snapshot t1@s1
succeeds "snapshot t1@s1 (stopped)"
V snapshot t1@s1
fails "snapshot t1@s1 again: one line" "t1@s1 already exists"
V rollback t1@nope
fails "rollback to a missing snapshot: one line" "t1@nope: no such snapshot"
V rollback t1
fails "rollback without @snapshot: one line" "usage: vm rollback"
V clone t1@s1 t2
fails "clone onto an existing name: one line" "t2 already exists"
V clone t1@nope t9
fails "clone of a missing snapshot: one line" "t1@nope: no such snapshot"
cond "clone refused: nothing made" '[ ! -e "$VM_DIR/t9" ]'
V clone t1 t4
cond "clone without @snap: a snapshot is taken, the clone made" \
	'[ $vst -eq 0 ] && grep -q "^Created snapshot t1@" "$tmp/o" &&
	 [ -f "$VM_DIR/t4/t4.conf" ]'
V destroy -f t1
fails "destroy a VM that has clones: one line" "has clones that use its disks"
check "destroy refused: t1 is still there" test -f "$VM_DIR/t1/t1.conf"
echo n >"$tmp/in"
V destroy t4 <"$tmp/in"
cond "destroy answered n: kept" '[ $vst -ne 0 ] && [ -f "$VM_DIR/t4/t4.conf" ]'
echo y >"$tmp/in"
V destroy t4 <"$tmp/in"
cond "destroy answered y: removed" '[ $vst -eq 0 ] && [ ! -e "$VM_DIR/t4" ]'
V snapshot -l t1
check "snapshot -l lists t1@s1" grep -q '^t1@s1 ' "$tmp/o"

# ---- lifecycle with the idle guest ---------------------------------------
guestdir=$KHYVE_BUILD/tests/guest
nlife=35
if [ $kvm -eq 0 ]; then
	skip $nlife "/dev/kvm not usable"
elif [ ! -f "$guestdir/idle.elf" ]; then
	skip $nlife "$guestdir/idle.elf missing (make guests)"
else
	cat >"$VM_DIR/.templates/idle.conf" <<EOF
loader="kernel"
kernel="$guestdir/idle.elf"
cmdline="cpus=1"
memory="64M"
disk0_type="virtio-blk"
disk0_name="disk0.qcow2"
disk0_size="64M"
bhyve_options="-l pc-testdev"
EOF
	V create -t idle vm1
	succeeds "lifecycle: create vm1"
	V start vm1
	cond "start vm1: \"Starting vm1\", status 0" \
		'[ $vst -eq 0 ] && grep -qx "Starting vm1" "$tmp/o"'
	[ $vst -eq 0 ] || diag "$tmp/e" "$VM_DIR/vm1/vm.log"
	check "start: the monitor holds run.lock" running vm1
	V list
	check "list: vm1 Running (PID)" grep -q '^vm1 .* Running ([0-9]*)$' \
		"$tmp/o"
	pts=$(sed -n 's/^com1=//p' "$VM_DIR/vm1/run.lock")
	cond "com1 is a pseudo-terminal ($pts)" \
		'case "$pts" in /dev/pts/*) [ -c "$pts" ] ;; *) false ;; esac'
	V info vm1
	cond "info: running, console on the pty" \
		'grep -q "^  state: running (" "$tmp/o" &&
		 grep -q "console: com1 on $pts" "$tmp/o"'
	"$vm" console vm1 </dev/null >"$tmp/cons1" 2>&1 &
	cpid=$!
	check "console: the guest's output arrives through the pty" \
		wait_for "$tmp/cons1" "idle: ready"
	printf '~.' >"$tmp/in"
	V console vm1 <"$tmp/in"
	fails "a second console client: one line" "in use by another vm console"
	kill "$cpid" 2>/dev/null
	wait "$cpid" 2>/dev/null
	cpid=
	printf 'x~.' >"$tmp/in"
	timeout 1 "$vm" console vm1 <"$tmp/in" >/dev/null 2>&1
	tst=$?
	cond "console: ~. after other input on a line does not detach" \
		'[ $tst -eq 124 ]'
	printf '\r~.' >"$tmp/in"
	V console vm1 <"$tmp/in"
	cond "console: ~. at a line start detaches (status 0)" \
		'[ $vst -eq 0 ] && grep -q "detached from vm1" "$tmp/e"'
	V start vm1
	fails "start while running: one line" "vm1 is already running"
	V snapshot vm1@s1
	fails "snapshot while running: one line" "vm1 is running"
	cond "snapshot refused: nothing made" \
		'[ ! -e "$VM_DIR/vm1/disk0@s1.qcow2" ] &&
		 [ ! -e "$VM_DIR/vm1/.snapshots/s1.conf" ]'
	V rollback vm1@s1
	fails "rollback while running: one line" "vm1 is running"
	V destroy -f vm1
	fails "destroy while running: one line" "vm1 is running"
	check "destroy refused: vm1 is intact" test -f "$VM_DIR/vm1/vm1.conf"
	V stop vm1
	cond "stop vm1: ACPI shutdown, status 0, stopped" \
		'[ $vst -eq 0 ] && grep -qx "Sending ACPI shutdown to vm1" \
			"$tmp/o" && ! running vm1'
	check "stop: the guest saw the power button (com1.log)" \
		has "$VM_DIR/vm1/com1.log" "idle: power button"
	check "stop: vm.log says the guest powered off" \
		has "$VM_DIR/vm1/vm.log" "guest powered off"
	cond "stop: no khyve run directory, no console socket left" \
		'[ ! -e "$KHYVE_RUNDIR/vm1" ] && [ ! -e "$VM_DIR/vm1/com1.sock" ]'
	V snapshot vm1@s1
	succeeds "snapshot vm1@s1"
	cond "snapshot: disk0.qcow2 is an overlay on read-only disk0@s1.qcow2" \
		'"$img" info "$VM_DIR/vm1/disk0.qcow2" |
			grep -qx "backing file: disk0@s1.qcow2" &&
		 [ "$(stat -c %a "$VM_DIR/vm1/disk0@s1.qcow2")" = 444 ]'
	V clone vm1@s1 vm2
	succeeds "clone vm1@s1 vm2"
	check "clone: vm2's disk overlays ../vm1/disk0@s1.qcow2" sh -c \
		"'$img' info '$VM_DIR/vm2/disk0.qcow2' |
			grep -qx 'backing file: ../vm1/disk0@s1.qcow2'"
	u1=$(sed -n 's/^uuid="\(.*\)"$/\1/p' "$VM_DIR/vm1/vm1.conf")
	u2=$(sed -n 's/^uuid="\(.*\)"$/\1/p' "$VM_DIR/vm2/vm2.conf")
	cond "clone: a new uuid" '[ -n "$u2" ] && [ "$u1" != "$u2" ]'
	V start vm2
	cond "start the clone" '[ $vst -eq 0 ]'
	"$vm" console vm2 </dev/null >"$tmp/cons2" 2>&1 &
	cpid=$!
	check "clone's console: the guest is ready" \
		wait_for "$tmp/cons2" "idle: ready"
	V stop vm2
	cond "stop the clone" '[ $vst -eq 0 ] && ! running vm2'
	wait "$cpid" 2>/dev/null
	cpid=
	check "console client: ends when the VM stops" \
		has "$tmp/cons2" "vm2 stopped, console closed"
	ino1=$(stat -c %i "$VM_DIR/vm1/disk0.qcow2")
	EDITOR="sed -i s/^memory=.*/memory=\"32M\"/" V edit vm1
	V rollback vm1@s1
	succeeds "rollback vm1@s1"
	ino2=$(stat -c %i "$VM_DIR/vm1/disk0.qcow2")
	cond "rollback: a fresh overlay on disk0@s1.qcow2" \
		'[ "$ino1" != "$ino2" ] &&
		 "$img" info "$VM_DIR/vm1/disk0.qcow2" |
			grep -qx "backing file: disk0@s1.qcow2"'
	check "rollback: the snapshot's configuration is back" \
		grep -q '^memory="64M"$' "$VM_DIR/vm1/vm1.conf"
	V destroy -f vm1
	fails "destroy vm1 while clone vm2 exists: one line" "has clones"
	V destroy -f vm2
	succeeds "destroy vm2"
	V destroy -f vm1
	cond "destroy vm1: gone" '[ $vst -eq 0 ] && [ ! -e "$VM_DIR/vm1" ]'
fi

# ---- monitor: reboot, stop timeout, exit statuses ------------------------
# guest_vm NAME GUEST CMDLINE [KEY="VALUE"...]: a VM booting GUEST.elf;
# later keys win over earlier ones, as in sh.
guest_vm() {
	gname=$1
	gelf=$guestdir/$2.elf
	gcmd=$3
	shift 3
	mkdir -p "$VM_DIR/$gname"
	{
		echo "loader=\"kernel\""
		echo "kernel=\"$gelf\""
		echo "cmdline=\"$gcmd\""
		echo "memory=\"64M\""
		echo "bhyve_options=\"-l pc-testdev\""
		for kv in "$@"; do
			echo "$kv"
		done
	} >"$VM_DIR/$gname/$gname.conf"
}

nmon=16
if [ $kvm -eq 0 ]; then
	skip $nmon "/dev/kvm not usable"
elif [ ! -f "$guestdir/reset.elf" ] || [ ! -f "$guestdir/unclaimed.elf" ] ||
	[ ! -f "$guestdir/hello.elf" ] || [ ! -f "$guestdir/triplefault.elf" ]
then
	skip $nmon "reset, unclaimed, hello or triplefault.elf missing (make guests)"
else
	guest_vm rb reset ""
	V start rb
	i=0
	while [ $i -lt 100 ] &&
		[ "$(grep -c 'khyve (pid' "$VM_DIR/rb/vm.log")" -lt 2 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	check "a guest reboot (exit 0): the monitor restarts khyve" \
		has "$VM_DIR/rb/vm.log" "guest rebooted; restarting"
	check "the restart is logged with the new pid" \
		has "$VM_DIR/rb/vm.log" "restarting khyve (pid"
	V poweroff -f rb
	cond "poweroff -f: stopped at once, no restart" \
		'[ $vst -eq 0 ] && ! running rb &&
		 grep -q "power off requested" "$VM_DIR/rb/vm.log"'

	# install: the ISO is attached for the first run only
	guest_vm inst reset ""
	V install inst tools.iso
	i=0
	while [ $i -lt 100 ] &&
		[ "$(grep -c 'khyve options' "$VM_DIR/inst/vm.log")" -lt 2 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	V poweroff -f inst
	grep 'khyve options' "$VM_DIR/inst/vm.log" >"$tmp/runs"
	cond "install: the first run has the ISO at slot 3 (ahci-cd)" \
		'head -n 1 "$tmp/runs" |
			grep -qF " -s 3,ahci-cd,$VM_DIR/.iso/tools.iso,ro "'
	cond "install: after the guest reboots, it runs without the ISO" \
		'[ "$(wc -l <"$tmp/runs")" -ge 2 ] &&
		 ! sed -n 2p "$tmp/runs" | grep -q ahci-cd'
	V install inst nosuch.iso
	fails "install with a missing ISO: one line" "nosuch.iso: not found"

	guest_vm deaf unclaimed "wait" 'stop_timeout="1"'
	V start deaf
	wait_for "$VM_DIR/deaf/com1.log" "unclaimed: waiting"
	V stop deaf
	cond "stop a guest that ignores the power button: stopped" \
		'[ $vst -eq 0 ] && ! running deaf'
	check "stop: destroyed after stop_timeout, logged" \
		has "$VM_DIR/deaf/vm.log" "did not power off within 1 s: destroying"
	check "stop: vm.log says khyve was destroyed" \
		has "$VM_DIR/deaf/vm.log" "khyve destroyed"

	guest_vm hi hello ""
	V start hi
	cond "a guest that exits at once: start succeeds" '[ $vst -eq 0 ]'
	i=0
	while [ $i -lt 50 ] && running hi; do
		sleep 0.1
		i=$((i + 1))
	done
	check "vm.log: the guest's exit status is logged" \
		has "$VM_DIR/hi/vm.log" "guest exited with status 33"

	guest_vm tf triplefault ""
	V start tf
	i=0
	while [ $i -lt 50 ] && ! has "$VM_DIR/tf/vm.log" stopped; do
		sleep 0.1
		i=$((i + 1))
	done
	check "a crash is logged with its exit status" \
		has "$VM_DIR/tf/vm.log" "guest crashed: triple fault (status 3)"

	# boot-time start and shutdown of the autostart list
	guest_vm sa1 idle "cpus=1"
	guest_vm sa2 idle "cpus=1"
	"$vm" set vm_list="sa1 sa2" vm_delay=0 >/dev/null 2>&1
	V startall
	cond "startall: every VM of vm_list runs" \
		'[ $vst -eq 0 ] && running sa1 && running sa2'
	# the power button works once the guests have enabled ACPI
	wait_for "$VM_DIR/sa1/com1.log" "idle: ready"
	wait_for "$VM_DIR/sa2/com1.log" "idle: ready"
	V stopall
	cond "stopall: all stopped, each with an ACPI shutdown" \
		'[ $vst -eq 0 ] && ! running sa1 && ! running sa2 &&
		 grep -q "guest powered off" "$VM_DIR/sa1/vm.log" &&
		 grep -q "guest powered off" "$VM_DIR/sa2/vm.log"'
	"$vm" set vm_list="" >/dev/null 2>&1

	guest_vm broken hello "" 'kernel="/nonexistent/kernel"'
	V start broken
	fails "khyve start-up error: one line with khyve's reason" \
		"khyve failed to start: khyve: boot.kernel"
	cond "khyve start-up error: not running, logged" \
		'! running broken && grep -q "khyve failed (exit status 4)" \
			"$VM_DIR/broken/vm.log"'
fi

# ---- network: switches and taps in a private namespace -------------------
nnet=20
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null 2>&1; then
	skip $nnet "needs root and ip(8)"
elif ! ip netns add "khyve-vmtest-$$" 2>/dev/null; then
	skip $nnet "cannot create a network namespace"
else
	ns=khyve-vmtest-$$
	N() { # vm inside the namespace; like V
		timeout 60 ip netns exec "$ns" "$vm" "$@" >"$tmp/o" 2>"$tmp/e"
		vst=$?
	}
	nip() { # ip inside the namespace
		ip netns exec "$ns" ip "$@" 2>/dev/null
	}
	N switch create public
	succeeds "switch create public"
	cond "the bridge vm-public exists and is up" \
		'nip -d link show vm-public | grep -q bridge &&
		 nip link show vm-public | grep -q ",UP"'
	N switch create public
	fails "switch create twice: one line" "switch public already exists"
	N switch create bad.name
	fails "switch create with a bad name: one line" "not a valid switch name"
	nip link add kvt-a type veth peer name kvt-b
	N switch add public kvt-a
	cond "switch add public kvt-a: a port of vm-public" \
		'[ $vst -eq 0 ] && nip link show master vm-public | grep -q kvt-a'
	N switch add public nosuch0
	fails "switch add of a missing interface: one line" "no such interface"
	N switch list
	check "switch list: public, vm-public, port kvt-a" \
		grep -q '^public  *standard  *vm-public .* kvt-a$' "$tmp/o"
	N switch remove public kvt-a
	cond "switch remove: kvt-a leaves the bridge" \
		'[ $vst -eq 0 ] && ! nip link show master vm-public | grep -q kvt-a'
	N switch create -m 9000 -a 10.99.0.1/24 -i kvt-b lan
	cond "switch create -m -a -i: MTU, address and port" \
		'nip addr show vm-lan | grep -q "mtu 9000" &&
		 nip addr show vm-lan | grep -q "inet 10.99.0.1/24" &&
		 nip link show master vm-lan | grep -q kvt-b'
	nip link del vm-lan
	N init
	cond "init re-creates a missing bridge with its port and address" \
		'nip link show master vm-lan | grep -q kvt-b &&
		 nip addr show vm-lan | grep -q "inet 10.99.0.1/24"'
	N switch destroy lan
	cond "switch destroy: the bridge is gone" \
		'[ $vst -eq 0 ] && ! nip link show vm-lan >/dev/null'

	# a VM with a NIC on public: its tap lives while the VM runs
	if [ $kvm -eq 1 ] && [ -f "$guestdir/idle.elf" ] &&
		"$KHYVE_BUILD/khyve" -s help 2>/dev/null | grep -qx virtio-net
	then
		guest_vm net1 idle "cpus=1" 'network0_switch="public"'
		guest_vm net2 idle "cpus=1" 'network0_switch="nosw"'
		N start net2
		fails "start with a missing switch: one line" \
			"switch nosw does not exist"
		N start net1
		cond "start net1 with a NIC on public" '[ $vst -eq 0 ]'
		[ $vst -eq 0 ] || diag "$tmp/e" "$VM_DIR/net1/vm.log"
		tap=$(sed -n 's/^network0=//p' "$VM_DIR/net1/run.lock")
		cond "the tap ($tap) is up on vm-public, labelled vm/net1/net0" \
			'[ -n "$tap" ] &&
			 nip -d link show "$tap" | grep -q "master vm-public" &&
			 nip link show "$tap" | grep -q "alias vm/net1/net0" &&
			 nip link show "$tap" | grep -q ",UP"'
		N stop net1
		cond "stop: the tap is removed" \
			'[ $vst -eq 0 ] && [ -n "$tap" ] &&
			 ! nip link show "$tap" >/dev/null'
	else
		skip 4 "needs /dev/kvm, idle.elf and khyve's virtio-net"
	fi

	# traffic: the net-echo guest on a switch with a host address
	if [ $kvm -eq 0 ] || [ ! -f "$guestdir/net-echo.elf" ] ||
		! command -v python3 >/dev/null 2>&1 ||
		! "$KHYVE_BUILD/khyve" -s help 2>/dev/null |
		grep -qx virtio-net; then
		skip 3 "needs /dev/kvm, net-echo.elf, python3 and virtio-net"
	else
		N switch create -a 10.78.0.1/24 data
		guest_vm echo1 net-echo "ip=10.78.0.2/24 udp=7 timeout=30" \
			'network0_switch="data"'
		N start echo1
		wait_for "$VM_DIR/echo1/com1.log" "net-echo: ready"
		ip netns exec "$ns" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
d = b""
for i in range(10):
    s.sendto(b"hello through vm-data", ("10.78.0.2", 7))
    try:
        d = s.recvfrom(100)[0]
        break
    except socket.timeout:
        pass
s.sendto(b"quit", ("10.78.0.2", 7))
assert d == b"hello through vm-data", d
' >"$tmp/py" 2>&1
		pst=$?
		cond "a UDP echo from the guest through the switch and its tap" \
			'[ $pst -eq 0 ]'
		[ $pst -eq 0 ] || diag "$tmp/py" "$VM_DIR/echo1/com1.log"
		i=0
		while [ $i -lt 100 ] && running echo1; do
			sleep 0.1
			i=$((i + 1))
		done
		check "the guest quit (PASS): vm.log has exit status 33" \
			has "$VM_DIR/echo1/vm.log" "guest exited with status 33"
		etap=$(sed -n 's/^network0=//p' "$VM_DIR/echo1/run.lock")
		cond "the guest stopped by itself: its tap is gone" \
			'! running echo1 && [ -n "$etap" ] &&
			 ! nip link show "$etap" >/dev/null'
		N switch destroy data
	fi
	N switch destroy public
	succeeds "switch destroy public"
	N switch destroy public
	fails "switch destroy of a missing switch: one line" "no such switch"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
