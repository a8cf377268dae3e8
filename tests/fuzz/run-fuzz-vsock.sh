#!/usr/bin/env bash
# Build tests/fuzz/fuzz_vsock.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default 30)
# from a small seed corpus (a REQUEST, data, a SHUTDOWN, an RST). Exit status is libFuzzer's: non-zero on a
# finding (crash, leak, undefined behaviour).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
out=build-fuzz
mkdir -p "$out/corpus-vsock"
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -Wall -Wextra -Werror \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-o "$out/fuzz_vsock" tests/fuzz/fuzz_vsock.c src/devices/virtio/vsock.c src/lib/iov.c src/lib/util.c src/lib/err.c src/lib/unixsock.c
# Seeds: flags (15: plausible addresses, type, port 5000, len), nsegs-1, segment length codes, header bytes
# (44: src_cid 3, dst_cid 2, ports, len, type 1, op, flags, buf_alloc 65536, fwd_cnt) and payload.
hdr() { # hdr OP FLAGS: a 44-byte header from guest port 1 to host port 5000
	printf '\x03\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x01\0\0\0\x88\x13\0\0\0\0\0\0\x01\0'"$1"'\0'"$2"'\0\0\0\0\0\x01\0\0\0\0\0'
}
{ printf '\x0f\x00\x2b'; hdr '\x01' '\x00'; } >"$out/corpus-vsock/request"
{ printf '\x0f\x00\x2b'; hdr '\x01' '\x00'; printf '\x0f\x01\x2b\x0f'; hdr '\x05' '\x00'; printf 'hello world, 0123'; } \
	>"$out/corpus-vsock/request-rw"
{ printf '\x0f\x00\x2b'; hdr '\x01' '\x00'; printf '\x0f\x00\x2b'; hdr '\x04' '\x03'; } >"$out/corpus-vsock/request-shutdown"
{ printf '\x0f\x00\x2b'; hdr '\x01' '\x00'; printf '\x0f\x00\x2b'; hdr '\x03' '\x00'; } >"$out/corpus-vsock/request-rst"
exec "$out/fuzz_vsock" -max_total_time="$secs" -max_len=16384 "$out/corpus-vsock"
