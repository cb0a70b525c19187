#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# qcow2 clone benchmark (not a test):
#  (a) O(1) clones: the time of 'khyve-img create -b BASE' on a sparse
#      1 GiB and a sparse 100 GiB raw base, median of RUNS runs each, and
#      their ratio (expected ~1.0: an overlay is a header, a refcount
#      table, one refcount block and an L1 table, whatever the base size);
#  (b) read rates through the block layer (bench/blk_rate.c, the path a
#      virtio-blk device takes, no guest): 4 KiB random reads and 1 MiB
#      sequential reads at queue depth QD, raw against a qcow2 holding the
#      same SIZE_MIB of random data (both written through khyve with
#      1 MiB writes, as a guest would fill a disk), both in the page cache
#      and the qcow2 L2 cache warm.  Target: qcow2 >= 0.9x raw.  Each rate is
#      the best of RUNS_RATE runs of SECS seconds, raw and qcow2 runs
#      interleaved; the CPU time per request (all threads) is printed too,
#      as it is far less disturbed by other load on the machine.
# Usage: bench/clone.sh BUILD_DIR
# Environment: RUNS (21), RUNS_RATE (5), SECS (2), QD (32), SIZE_MIB (512),
# BENCH_DIR (default: a new temporary directory under /var/tmp).  Needs
# khyve-img and bench/blk_rate (make all bench-bins).  Single-threaded
# script; removes its files on exit.
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-21}
RUNS_RATE=${RUNS_RATE:-5}
SECS=${SECS:-2}
QD=${QD:-32}
SIZE_MIB=${SIZE_MIB:-512}
IMG=$B/khyve-img
RATE=$B/bench/blk_rate
export LC_ALL=C

for f in "$IMG" "$RATE"; do
	if [ ! -x "$f" ]; then
		echo "clone: $f missing (make all bench-bins)"
		exit 1
	fi
done
dir=${BENCH_DIR:-$(mktemp -d /var/tmp/khyve-clone.XXXXXX)}
cleanup() {
	rm -f "$dir"/base1g.raw "$dir"/base100g.raw "$dir"/clone.qcow2 \
		"$dir"/src.raw "$dir"/data.raw "$dir"/data.qcow2
	[ -n "${BENCH_DIR:-}" ] || rmdir "$dir"
}
trap cleanup EXIT

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# time_create BASE: median microseconds of khyve-img create -b BASE
time_create() {
	local t0 t1
	for _ in $(seq "$RUNS"); do
		rm -f "$dir/clone.qcow2"
		t0=$(date +%s%N)
		"$IMG" create -b "$1" -F raw "$dir/clone.qcow2" >/dev/null
		t1=$(date +%s%N)
		echo $(((t1 - t0) / 1000))
	done | median
}

echo "== (a) clone time: khyve-img create -b, median of $RUNS runs" >&2
truncate -s 1G "$dir/base1g.raw"
truncate -s 100G "$dir/base100g.raw"
t1g=$(time_create "$dir/base1g.raw")
s1g=$(stat -c %s "$dir/clone.qcow2")
t100g=$(time_create "$dir/base100g.raw")
s100g=$(stat -c %s "$dir/clone.qcow2")
printf 'clone of 1 GiB:   %8.0f us  (overlay %d bytes)\n' "$t1g" "$s1g"
printf 'clone of 100 GiB: %8.0f us  (overlay %d bytes)\n' "$t100g" "$s100g"
echo "clone time 100 GiB / 1 GiB: $(ratio "$t100g" "$t1g") (target ~1.0)"

echo "== (b) reads through the block layer: $SIZE_MIB MiB, QD $QD," \
	"best of $RUNS_RATE x ${SECS}s" >&2
# Both images written the same way (1 MiB writes through the block
# layer), so the host file system lays them out alike.
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$dir/src.raw"
truncate -s "${SIZE_MIB}M" "$dir/data.raw"
"$IMG" create "$dir/data.qcow2" "${SIZE_MIB}M" >/dev/null
"$RATE" copy "$dir/src.raw" "$dir/data.raw"
"$RATE" copy "$dir/src.raw" "$dir/data.qcow2"
rm -f "$dir/src.raw"

# rates MODE: RUNS_RATE interleaved runs of raw and qcow2 (so both see the
# same machine load); prints "best_raw best_qcow2 cpu_raw cpu_qcow2" with
# the best rate (iops or mbps) and the lowest CPU microseconds per request.
rates() {
	local field=iops out img
	[ "$1" = seq1m ] && field=mbps
	for _ in $(seq "$RUNS_RATE"); do
		for img in raw qcow2; do
			out=$("$RATE" read "$dir/data.$img" "$1" "$SECS" "$QD")
			echo "$img $(echo "$out" | sed -n "s/.* $field=\([0-9.]*\).*/\1/p")" \
				"$(echo "$out" | sed -n 's/.*cpu_us_per_op=\([0-9.]*\).*/\1/p')"
		done
	done | awk '
		$1 == "raw"   { if ($2 > rr) rr = $2; if (!rc || $3 < rc) rc = $3 }
		$1 == "qcow2" { if ($2 > qr) qr = $2; if (!qc || $3 < qc) qc = $3 }
		END { print rr, qr, rc, qc }'
}
read -r r4 q4 rc4 qc4 < <(rates rand4k)
read -r r1 q1 rc1 qc1 < <(rates seq1m)
printf '4 KiB random read:   raw %10.0f IOPS (%.2f us CPU/op)   qcow2 %10.0f IOPS (%.2f us CPU/op)\n' \
	"$r4" "$rc4" "$q4" "$qc4"
printf '1 MiB sequential:    raw %10.1f MB/s (%.1f us CPU/op)   qcow2 %10.1f MB/s (%.1f us CPU/op)\n' \
	"$r1" "$rc1" "$q1" "$qc1"
echo "qcow2/raw rate: 4 KiB random $(ratio "$q4" "$r4")," \
	"1 MiB sequential $(ratio "$q1" "$r1") (target >= 0.9)"
echo "raw/qcow2 CPU per request: 4 KiB random $(ratio "$rc4" "$qc4")," \
	"1 MiB sequential $(ratio "$rc1" "$qc1") (the same measure, less noisy)"
