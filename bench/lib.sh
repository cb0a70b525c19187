# SPDX-License-Identifier: BSD-2-Clause
#
# Shared by the in-guest benchmark scripts (net.sh): timing a VM run from
# the guest's "entering ring 3" line on the serial port to the VMM's exit,
# the best of RUNS runs, a rate from two runs with N1 and N2 units of work
# ((N2 - N1) / (t2 - t1), so boot and exit costs cancel) and ratios.
# Sourced, not run.  The caller sets $dir (a scratch directory), RUNS, and
# defines "<vmm>_cmd CMDLINE" for each VMM it times; bash >= 5
# (EPOCHREALTIME).

now_us() { echo "${EPOCHREALTIME/./}"; }

# timed VMM CMDLINE: "microseconds status"
timed() {
	local fifo=$dir/serial.$$ t0="" t1 st line pid
	rm -f "$fifo"
	mkfifo "$fifo"
	"${1}_cmd" "$2" >"$fifo" 2>/dev/null </dev/null &
	pid=$!
	while IFS= read -r line; do
		if [ -z "$t0" ] && [[ $line == *"entering ring 3"* ]]; then
			t0=$(now_us)
		fi
	done <"$fifo"
	st=0
	wait "$pid" || st=$?
	t1=$(now_us)
	rm -f "$fifo"
	[ -n "$t0" ] || st="no-ring-3-line"
	echo "$((t1 - ${t0:-$t1})) $st"
}

# best VMM WANT_STATUS CMDLINE: the best time (us) of RUNS runs, or "fail"
best() {
	local vmm=$1 want=$2 cl=$3 t st b=""
	for _ in $(seq "$RUNS"); do
		read -r t st < <(timed "$vmm" "$cl")
		if [ "$st" != "$want" ]; then
			echo "bench: $vmm \"$cl\": exit status $st, expected" \
				"$want" >&2
			echo fail
			return
		fi
		if [ -z "$b" ] || [ "$t" -lt "$b" ]; then
			b=$t
		fi
	done
	echo "$b"
}

# rate2 VMM WANT CMDLINE N1 N2: units per second, or "fail"; CMDLINE
# gets " n=N" appended
rate2() {
	local vmm=$1 want=$2 cl=$3 n1=$4 n2=$5 t1 t2
	t1=$(best "$vmm" "$want" "$cl n=$n1")
	t2=$(best "$vmm" "$want" "$cl n=$n2")
	if [ "$t1" = fail ] || [ "$t2" = fail ]; then
		echo fail
		return
	fi
	if [ "$t2" -le "$t1" ]; then
		echo "bench: $vmm \"$cl\": n=$n2 was not slower than n=$n1" \
			"(noise; raise the N)" >&2
		echo fail
		return
	fi
	echo "($n2 - $n1) * 1000000 / ($t2 - $t1)" | bc -l
}

# ratio A B: A/B with 3 decimals, or n/a
ratio() {
	case "$1:$2" in
	*fail* | :* | *:) echo "n/a" ;;
	*) printf '%.3f' "$(echo "$1 / $2" | bc -l)" ;;
	esac
}
