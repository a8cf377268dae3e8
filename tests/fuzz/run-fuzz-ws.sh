#!/usr/bin/env bash
# Build tests/fuzz/fuzz_ws.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default 60) from a
# few seeds (a masked binary frame, a fragmented text message with a ping between, a close, frames with 16- and
# 64-bit lengths). Exit status is libFuzzer's: non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus-ws"
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
	-o "$out/fuzz_ws" tests/fuzz/fuzz_ws.c src/serve/ws.c -lnettle
# byte 0: piece size - 1; then client frames (mask 01 02 03 04)
seed() { printf "$2" > "$out/corpus-ws/$1"; }
seed binary   '\x00''\x82\x83\x01\x02\x03\x04\x60\x60\x60'
seed text     '\x03''\x01\x82\x01\x02\x03\x04\x7a\x20''\x89\x81\x01\x02\x03\x04\x60''\x80\x82\x01\x02\x03\x04\x7a\x7f'
seed close    '\xff''\x88\x82\x01\x02\x03\x04\x02\xea'
seed len16    '\x10''\x82\xfe\x00\x7e\x01\x02\x03\x04'
seed len64    '\x10''\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00\x01\x02\x03\x04'
exec "$out/fuzz_ws" -max_total_time="$secs" -max_len=1024 "$out/corpus-ws"
