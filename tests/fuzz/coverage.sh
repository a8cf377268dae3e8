#!/usr/bin/env bash
# Line/branch coverage of a device fuzz target's corpus (after run-fuzz-DEV.sh has grown it): rebuilds the
# target with clang source-based coverage, replays build-fuzz/corpus-DEV once, prints llvm-cov's report
# for the device and the transport/queue code it reaches.
# Usage: tests/fuzz/coverage.sh console|balloon|rng
set -euo pipefail
cd "$(dirname "$0")/../.."
dev=$1
case $dev in
console) dev_src=src/devices/virtio/console.c; extra=() ;;
balloon) dev_src=src/devices/virtio/balloon.c; extra=(-Wl,--wrap=madvise) ;;
rng) dev_src=src/devices/virtio/rng.c; extra=() ;;
*) echo "coverage.sh: unknown target '$dev' (console, balloon or rng)" >&2; exit 2 ;;
esac
out=build-fuzz/cov-$dev
mkdir -p "$out"
src=(tests/fuzz/fuzz_"$dev".c "$dev_src" src/devices/virtio/pci.c src/devices/pci.c src/devices/virtio/queue.c
	src/vmm/guest_mem.c src/lib/err.c)
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping \
	"${extra[@]+"${extra[@]}"}" -o "$out/fuzz_$dev" "${src[@]}" -lpthread
LLVM_PROFILE_FILE="$out/cov.profraw" "$out/fuzz_$dev" -runs=0 "build-fuzz/corpus-$dev" 2>/dev/null
llvm-profdata merge -sparse "$out/cov.profraw" -o "$out/cov.profdata"
llvm-cov report "$out/fuzz_$dev" -instr-profile="$out/cov.profdata" "$dev_src" src/devices/virtio/queue.c \
	src/devices/virtio/pci.c
