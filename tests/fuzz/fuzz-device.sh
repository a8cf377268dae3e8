#!/usr/bin/env bash
# Shared by tests/fuzz/run-fuzz-{console,balloon,rng}.sh: build one device fuzz target (fuzz_DEV.c +
# fuzz_ring.h, the transport and the device's own source) with clang, libFuzzer, ASan and UBSan; write its
# seeds (ring_seeds.py); run it for N seconds with final stats; print one TAP line.
# Usage: tests/fuzz/fuzz-device.sh DEV SECONDS DEVICE_SOURCE [MORE_SOURCES_AND_LIBS...]
# Exit status is libFuzzer's: non-zero if it found a crash, a leak, undefined behaviour or a failed check.
set -euo pipefail
cd "$(dirname "$0")/../.."
dev=$1 secs=$2 dev_src=$3
shift 3
out=build-fuzz
corpus=$out/corpus-$dev
log=$out/fuzz_$dev.log
mkdir -p "$corpus"
src=(tests/fuzz/fuzz_"$dev".c "$dev_src" src/devices/virtio/pci.c src/devices/virtio/pass.c src/devices/pci.c src/devices/virtio/queue.c
	src/lib/state_file.c src/vmm/guest_mem.c src/lib/iov.c src/lib/err.c src/lib/termsafe.c src/lib/util.c)
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -Wall -Wextra -Werror \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-o "$out/fuzz_$dev" "${src[@]}" "$@" -lpthread
python3 tests/fuzz/ring_seeds.py "$dev" "$corpus"
set +e
"$out/fuzz_$dev" -max_total_time="$secs" -max_len=8192 -artifact_prefix="$out/$dev-" -print_final_stats=1 \
	"$corpus" 2> >(tee "$log" >&2)
rc=$?
set -e
wait
runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1 || true)
if [ $rc -eq 0 ]; then
	echo "ok 1 - fuzz $dev (${runs:-?} runs, ${speed:-?} exec/s, ${cov:-cov ?}, no finding)"
else
	echo "not ok 1 - fuzz $dev (libFuzzer exit status $rc, log in $log)"
fi
exit $rc
