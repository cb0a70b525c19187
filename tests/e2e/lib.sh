#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Shared by the guest e2e scripts (virtio.t, storage.t, guests.t): the
# KVM/binary skip checks, a private temp dir, TAP counters (ok, skip),
# and running a test guest under khyve (boot, check, run).  Sourced, not
# run: prove only runs *.t files.  After sourcing, the caller has
# $khyve, $guestdir, $tmp, $n and $failed.

set -u

KHYVE_BUILD=${KHYVE_BUILD:-$(cd "$(dirname "$0")/../.." && pwd)/build}
khyve=$KHYVE_BUILD/khyve
guestdir=$KHYVE_BUILD/tests/guest

if ! (exec 3<>/dev/kvm) 2>/dev/null; then
	echo "1..0 # SKIP /dev/kvm not usable"
	exit 0
fi
if [ ! -x "$khyve" ]; then
	echo "1..0 # SKIP $khyve missing"
	exit 0
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

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

skip() { # count reason
	i=0
	while [ "$i" -lt "$1" ]; do
		n=$((n + 1))
		echo "ok $n # SKIP $2"
		i=$((i + 1))
	done
}

diag_output() {
	echo "# serial output and messages:"
	sed -e 's/^/#   /' "$tmp/out"
}

have_dev() {
	"$khyve" -s help 2>&1 | grep -qx "$1"
}

# boot NAME CMDLINE SLOT...: run the guest; sets $st, output in $tmp/out
boot() {
	name=$1
	cmdline=$2
	shift 2
	set -- -c 1 -m 256M -H -P -w -u "$@" -l com1,stdio -l pc-testdev \
		-o "boot.kernel=$guestdir/$name.elf" \
		-o "boot.cmdline=$cmdline" "vm$name$$"
	timeout "${GUEST_TIMEOUT:-60}" "$khyve" "$@" </dev/null \
		>"$tmp/raw" 2>&1
	st=$?
	tr -d '\r' <"$tmp/raw" >"$tmp/out"
	return "$st"
}

# check WHAT WANT_STATUS "LINE"...: one ok for the status, one per line
check() {
	what=$1
	want=$2
	shift 2
	bad=0
	if [ "$st" -eq "$want" ]; then
		ok 1 "$what: exit status $want"
	else
		ok 0 "$what: exit status $want"
		echo "# got exit status $st"
		bad=1
	fi
	exc=0
	if grep -q '^EXCEPTION vector' "$tmp/out"; then
		exc=1
	fi
	for line in "$@"; do
		if [ "$exc" -eq 0 ] && grep -qF -e "$line" "$tmp/out"; then
			ok 1 "$what: prints \"$line\""
		else
			ok 0 "$what: prints \"$line\""
			bad=1
		fi
	done
	if [ "$bad" -eq 1 ]; then
		diag_output
	fi
}

# run NAME WHAT WANT CMDLINE "LINE"... -- SLOT...
run() {
	name=$1
	what=$2
	want=$3
	cmdline=$4
	shift 4
	lines=$tmp/lines
	: >"$lines"
	while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
		printf '%s\n' "$1" >>"$lines"
		shift
	done
	[ "$#" -gt 0 ] && shift
	nlines=$(wc -l <"$lines")
	if [ ! -f "$guestdir/$name.elf" ]; then
		ok 0 "$what: $guestdir/$name.elf exists (make guests)"
		skip "$nlines" "$name.elf missing"
		return
	fi
	boot "$name" "$cmdline" "$@"
	# re-read the expected lines as arguments of check
	set --
	while IFS= read -r l; do
		set -- "$@" "$l"
	done <"$lines"
	check "$what" "$want" "$@"
}
