#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Build the libFuzzer harnesses in tests/fuzz/ with clang (ASan + UBSan).
# Not part of `make check`.  Prints a reason and exits 0 when the compiler
# lacks -fsanitize=fuzzer.
#
#   tests/fuzz/build.sh [outdir]          (default outdir: build-fuzz)
#   build-fuzz/vq_fuzz -max_total_time=60 [corpus-dir]
#
# Environment: CLANG (default clang).
set -eu

cd "$(dirname "$0")/../.."
out=${1:-build-fuzz}
cc=${CLANG:-clang}

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)\n{ (void)d; (void)n; return 0; }\n' \
	>"$probe/p.c"
if ! "$cc" -fsanitize=fuzzer -o "$probe/p" "$probe/p.c" >/dev/null 2>&1; then
	echo "fuzz: $cc does not support -fsanitize=fuzzer; nothing built"
	exit 0
fi

mkdir -p "$out"
flags="-std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -I. -Wall -Wextra
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"

# shellcheck disable=SC2086 # flags is a word list on purpose
"$cc" $flags -o "$out/vq_fuzz" tests/fuzz/vq_fuzz.c src/virtio/vq.c \
	src/core/gmem.c src/lib/log.c
echo "fuzz: built $out/vq_fuzz"
