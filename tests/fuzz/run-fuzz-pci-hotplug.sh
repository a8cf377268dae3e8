#!/usr/bin/env bash
# Build tests/fuzz/fuzz_pci_hotplug.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default
# 60). Exit status is libFuzzer's: non-zero if it found a crash or a broken invariant.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus-pci-hotplug"
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined -o "$out/fuzz_pci_hotplug" \
	tests/fuzz/fuzz_pci_hotplug.c src/devices/pci_hotplug.c
exec "$out/fuzz_pci_hotplug" -max_total_time="$secs" -max_len=4096 "$out/corpus-pci-hotplug"
