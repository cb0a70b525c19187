#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Golden tests of the command line and the config tree (vmd's regress
# config tests, for khyve).  For each tests/config/NAME.args, which holds
# one argument per line, run
#
#     $KHYVE_BUILD/khyve <args> -o config.dump=1 vmname
#
# from the top of the tree (so args may name files as tests/config/...):
#   NAME.ok   exit 0 and stdout equal to NAME.ok.  When NAME.ok is a dump
#             (it has the line name=vmname) it is also fed back with -k and
#             must come out unchanged: dump -> -k -> the same dump.
#   NAME.err  exit 4 and stderr equal to NAME.err.
# Needs no KVM: khyve stops after dumping or after the error.  Prints TAP;
# skips when khyve has not been built.  No state outside a temp directory.

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
dir=$top/tests/config
khyve=${KHYVE_BUILD:-$top/build}/khyve

if [ ! -x "$khyve" ]; then
	echo "1..0 # SKIP khyve not built"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/khyve-config.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

n=0
failed=0

pass() {
	n=$((n + 1))
	echo "ok $n - $1"
}

fail() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
}

# Show a file as TAP diagnostics.
show() {
	sed 's/^/# /' "$1"
}

# Compare expected file $1 with actual output $2 for test $3 (exit $4,
# wanted exit $5; stderr in $6).
check() {
	if [ "$4" -eq "$5" ] && cmp -s "$1" "$2"; then
		pass "$3"
	else
		fail "$3 (exit $4, want $5)"
		diff -u "$1" "$2" | sed "s/^/# /"
		show "$6"
	fi
}

cd "$top" || exit 1
for args in "$dir"/*.args; do
	[ -e "$args" ] || continue
	name=$(basename "$args" .args)
	set --
	while IFS= read -r line || [ -n "$line" ]; do
		set -- "$@" "$line"
	done <"$args"
	"$khyve" "$@" -o config.dump=1 vmname >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ -f "$dir/$name.ok" ]; then
		check "$dir/$name.ok" "$tmp/out" "$name" "$rc" 0 "$tmp/err"
		if grep -qx 'name=vmname' "$dir/$name.ok"; then
			"$khyve" -k "$tmp/out" -o config.dump=1 vmname \
				>"$tmp/out2" 2>"$tmp/err2"
			check "$dir/$name.ok" "$tmp/out2" \
				"$name: dump -> -k -> same dump" "$?" 0 \
				"$tmp/err2"
		fi
	elif [ -f "$dir/$name.err" ]; then
		check "$dir/$name.err" "$tmp/err" "$name" "$rc" 4 "$tmp/err"
	else
		fail "$name: neither $name.ok nor $name.err exists"
	fi
done

echo "1..$n"
[ "$failed" -eq 0 ]
