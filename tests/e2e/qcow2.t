#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# qcow2 interoperability with QEMU and crash consistency, end to end:
#   - images made and written by qemu-img/qemu-io (backing files, chains
#     with relative names, v2, compressed, odd refcount widths, lazy
#     refcounts) read by khyve byte for byte as 'qemu-img convert' does;
#   - images made by khyve-img and written through khyve's block layer
#     pass 'qemu-img check' and 'qemu-img compare' against a raw image
#     that got the same random operations, and QEMU can keep writing them;
#   - a khyve writer killed with SIGKILL at random moments, several times:
#     its commit helper process finishes the metadata commit it was
#     given, if any, and exits; then 'qemu-img check' finds no error and
#     no leak, every 4 KiB block is intact and flushed data survives.
# The helper is $KHYVE_BUILD/tests/unit/t_qcow2_crash (its --base,
# --writer, --verify, --apply and --dump modes).  Prints TAP; skips when
# khyve-img or the helper is not built, or qemu-img is missing (make check
# installs qemu-utils).  Everything happens in a temporary directory.

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${KHYVE_BUILD:-$top/build}
IMG=$B/khyve-img
H=$B/tests/unit/t_qcow2_crash

if [ ! -x "$IMG" ] || [ ! -x "$H" ]; then
	echo "1..0 # SKIP khyve-img or tests/unit/t_qcow2_crash not built"
	exit 0
fi
if ! command -v qemu-img >/dev/null 2>&1 ||
	! command -v qemu-io >/dev/null 2>&1; then
	echo "1..0 # SKIP qemu-img/qemu-io not installed (qemu-utils)"
	exit 0
fi

tmp=$(mktemp -d /var/tmp/khyve-qcow2.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
cd "$tmp" || exit 1

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
# check NAME CMD...: pass when CMD succeeds, else show its output
# (the output also goes to stderr, which prove shows without -v)
check() {
	_what=$1
	shift
	if "$@" >check.out 2>&1; then
		pass "$_what"
	else
		fail "$_what"
		sed 's/^/# /' check.out | tee /dev/stderr
	fi
}
# The guest contents read by khyve equal what qemu-img reads.
same_as_qemu() {
	"$H" --dump "$1" >ours.bin &&
		qemu-img convert -O raw "$1" theirs.bin &&
		cmp ours.bin theirs.bin
}
# Random number in [0, $1) (POSIX sh has no $RANDOM).
rnd() {
	awk -v m="$1" -v s="$$$n$2" 'BEGIN { srand(s); print int(rand() * m) }'
}

# ---- images made by QEMU, read (and written) by khyve ----

"$H" --base base.raw 8 >/dev/null || exit 1
qemu-img create -q -f qcow2 -b base.raw -F raw q1.qcow2 12M
qemu-io -c "write -P 0xab 1M 300k" -c "write -P 0xcd 9M 64k" \
	-c "write -z 2M 128k" -c "discard 3M 64k" q1.qcow2 >/dev/null
check "qemu overlay on raw: khyve reads what qemu-img reads" \
	same_as_qemu q1.qcow2
check "khyve-img info shows the backing file" \
	sh -c "'$IMG' info q1.qcow2 | grep -q '^backing file: base.raw$'"

mkdir -p d1/d2
qemu-img create -q -f qcow2 -b ../base.raw -F raw d1/mid.qcow2
qemu-io -c "write -P 0x11 5M 100k" d1/mid.qcow2 >/dev/null
qemu-img create -q -f qcow2 -b ../mid.qcow2 -F qcow2 d1/d2/top.qcow2
qemu-io -c "write -P 0x22 5M 10k" -c "write -P 0x33 7M 1k" \
	d1/d2/top.qcow2 >/dev/null
check "chain with relative names: khyve reads it from another directory" \
	sh -c "cd / && '$H' --dump '$tmp/d1/d2/top.qcow2' >'$tmp/ours.bin' &&
		cd '$tmp' && qemu-img convert -O raw d1/d2/top.qcow2 theirs.bin &&
		cmp ours.bin theirs.bin"

for opts in compat=0.10 refcount_bits=1 refcount_bits=64 \
	lazy_refcounts=on cluster_size=4k cluster_size=2M; do
	rm -f o.qcow2
	qemu-img create -q -f qcow2 -o "$opts" -b base.raw -F raw o.qcow2 16M
	qemu-io -c "write -P 0x5a 100k 200k" o.qcow2 >/dev/null
	check "qemu image ($opts): khyve reads it" same_as_qemu o.qcow2
	cp base.raw ref.raw
	truncate -s 16M ref.raw
	qemu-io -f raw -c "write -P 0x5a 100k 200k" ref.raw >/dev/null
	"$H" --apply o.qcow2 qcow2 7 1500 >out.txt 2>&1 &&
		"$H" --apply ref.raw raw 7 1500 >>out.txt 2>&1
	check "qemu image ($opts): khyve writes it" test $? -eq 0
	check "qemu image ($opts): qemu-img check after khyve" \
		qemu-img check o.qcow2
	check "qemu image ($opts): equal to the raw twin" \
		qemu-img compare -q -f qcow2 -F raw o.qcow2 ref.raw
done

qemu-img convert -c -O qcow2 base.raw comp.qcow2
check "compressed image: khyve reads it" same_as_qemu comp.qcow2
cp base.raw ref.raw
"$H" --apply comp.qcow2 qcow2 9 800 >out.txt 2>&1 &&
	"$H" --apply ref.raw raw 9 800 >>out.txt 2>&1
check "compressed image: khyve writes over compressed clusters" \
	test $? -eq 0
check "compressed image: qemu-img check after khyve" \
	qemu-img check comp.qcow2
check "compressed image: equal to the raw twin" \
	qemu-img compare -q -f qcow2 -F raw comp.qcow2 ref.raw

# ---- images made and written by khyve, judged by QEMU ----

for case in "plain:" "backed:-b base.raw -F raw" \
	"small clusters:-o cluster_size=512 -b base.raw" \
	"large clusters:-o cluster_size=2M"; do
	name=${case%%:*}
	args=${case#*:}
	rm -f k.qcow2 ref.raw
	# shellcheck disable=SC2086
	"$IMG" create $args k.qcow2 24M >out.txt 2>&1
	check "khyve-img create ($name)" test $? -eq 0
	check "khyve-img create ($name): qemu-img check" qemu-img check k.qcow2
	case $args in
	*base.raw*) cp base.raw ref.raw ;;
	esac
	truncate -s 24M ref.raw
	"$H" --apply k.qcow2 qcow2 3 2500 >out.txt 2>&1 &&
		"$H" --apply ref.raw raw 3 2500 >>out.txt 2>&1
	check "khyve writes ($name)" test $? -eq 0
	check "khyve-written ($name): qemu-img check, no errors or leaks" \
		qemu-img check k.qcow2
	check "khyve-written ($name): qemu-img compare with the raw twin" \
		qemu-img compare -q -f qcow2 -F raw k.qcow2 ref.raw
	qemu-io -c "write -P 0x77 4M 1M" k.qcow2 >/dev/null
	qemu-io -f raw -c "write -P 0x77 4M 1M" ref.raw >/dev/null
	check "khyve-written ($name): qemu writes on, khyve reads it" \
		sh -c "'$H' --dump k.qcow2 | cmp - ref.raw"
done

check "khyve-img info: version, cluster size, clean" \
	sh -c "'$IMG' info k.qcow2 | grep -q '^cluster size: 2097152$' &&
		'$IMG' info k.qcow2 | grep -q '^cleanly closed: yes$'"
"$IMG" create -b missing.raw bad.qcow2 >err.txt 2>&1
rc=$?
check "khyve-img create: a missing backing file is one error line" \
	sh -c "test $rc -eq 1 && test \$(wc -l <err.txt) -eq 1 &&
		grep -q 'missing.raw' err.txt && test ! -e bad.qcow2"

# ---- crash consistency ----

# The commit helper of writer $1 (its child named khyve-qcow2), if any.
helper_of() {
	for _f in /proc/[0-9]*/stat; do
		read -r _pid _comm _state _ppid _rest 2>/dev/null <"$_f" ||
			continue
		if [ "$_comm" = "(khyve-qcow2)" ] && [ "$_ppid" = "$1" ]; then
			echo "$_pid"
		fi
	done
}
# Wait up to 10 s until process $1 is gone (or a zombie); 1 on timeout.
gone() {
	_i=0
	while [ $_i -lt 1000 ]; do
		_st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0
		case $_st in
		"" | Z) return 0 ;;
		esac
		sleep 0.01
		_i=$((_i + 1))
	done
	return 1
}

rounds=${QCOW2_CRASH_ROUNDS:-8}
"$IMG" create -b base.raw -F raw -o cluster_size=4096 crash.qcow2 1G \
	>/dev/null
hits=0
r=0
while [ $r -lt "$rounds" ]; do
	r=$((r + 1))
	"$H" --writer crash.qcow2 "$r" &
	pid=$!
	ms=$((50 + $(rnd 450 "$r")))
	sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	helper=$(helper_of "$pid")
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	st=$?
	# 137 = killed by SIGKILL; anything else: the writer failed first
	check "crash $r: the writer was killed while running (status $st)" \
		test "$st" -eq 137
	nh=$(echo "$helper" | wc -w)
	check "crash $r: the writer had one commit helper ($helper)" \
		test "$nh" -eq 1
	# It finishes the commit it was given, if any, then exits.
	check "crash $r: the helper exits by itself" gone "${helper:-0}"
	dirty=$(od -An -tu1 -j79 -N1 crash.qcow2 | tr -d ' ')
	[ $((dirty % 2)) -eq 1 ] && hits=$((hits + 1))
	check "crash $r: qemu-img check: no errors, no leaks" \
		qemu-img check crash.qcow2
	check "crash $r: every block intact, flushed writes kept" \
		"$H" --verify crash.qcow2
done
echo "# $hits of $rounds kills left the dirty bit set (a flush about to" \
	"commit; no leaks)"
check "after the crashes: qemu-img and khyve read the same" \
	same_as_qemu crash.qcow2

echo "1..$n"
[ "$failed" -eq 0 ]
