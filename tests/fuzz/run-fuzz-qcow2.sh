#!/usr/bin/env bash
# Build tests/fuzz/fuzz_qcow2.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default 60)
# from seed images that qemu-img makes (plain, version 2, 512-byte clusters, 1-bit refcounts, compressed
# data, an internal snapshot, a backing file). Exit status is libFuzzer's: non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
corpus=$out/corpus-qcow2
mkdir -p "$corpus"
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
	-o "$out/fuzz_qcow2" tests/fuzz/fuzz_qcow2.c src/block/qcow2.c src/lib/iov.c src/lib/err.c src/lib/util.c -lz -lpthread
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 65536 /dev/urandom >"$tmp/data.raw"
seed() { # NAME qemu-img-args...
	local name=$1; shift
	qemu-img "$@" >/dev/null && cp "$tmp/s.qcow2" "$corpus/$name"
	rm -f "$tmp/s.qcow2"
}
seed plain   create -q -f qcow2 -o cluster_size=512 "$tmp/s.qcow2" 1M
seed v2      create -q -f qcow2 -o cluster_size=512,compat=0.10 "$tmp/s.qcow2" 1M
seed ref1    create -q -f qcow2 -o cluster_size=512,refcount_bits=1 "$tmp/s.qcow2" 1M
seed data    convert -q -f raw -O qcow2 -o cluster_size=512 "$tmp/data.raw" "$tmp/s.qcow2"
seed zlib    convert -q -c -f raw -O qcow2 -o cluster_size=4096 "$tmp/data.raw" "$tmp/s.qcow2"
qemu-img convert -q -f raw -O qcow2 -o cluster_size=512 "$tmp/data.raw" "$tmp/s.qcow2" && \
	qemu-img snapshot -c s1 "$tmp/s.qcow2" && cp "$tmp/s.qcow2" "$corpus/snapshot" && rm -f "$tmp/s.qcow2"
seed backing create -q -f qcow2 -u -b base.qcow2 -F qcow2 -o cluster_size=512 "$tmp/s.qcow2" 1M
exec "$out/fuzz_qcow2" -max_total_time="$secs" -max_len=200000 -timeout=10 "$corpus"
