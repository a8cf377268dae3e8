#!/usr/bin/env bash
# Build tests/fuzz/fuzz_blk_req.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default 60)
# from a small seed corpus (a read, a write, a discard). Exit status is libFuzzer's: non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus-blk-req"
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
	-o "$out/fuzz_blk_req" tests/fuzz/fuzz_blk_req.c src/devices/virtio/blk_req.c src/lib/iov.c
# Seeds: nread, nwrite, 4 limit bytes, segment length codes, then the bytes.
seed() { printf "$2" > "$out/corpus-blk-req/$1"; }
seed read    '\x01\x02\x04\x14\x01\x10\x0f\xc7\x00''\x00\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00'
seed write   '\x02\x01\x04\x14\x01\x10\x0f\xc7\x00''\x01\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00'
seed discard '\x02\x01\x04\x14\x01\x10\x0f\x0f\x00''\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00''\x08\x00\x00\x00\x00\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00'
exec "$out/fuzz_blk_req" -max_total_time="$secs" -max_len=8192 "$out/corpus-blk-req"
