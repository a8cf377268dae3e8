#!/usr/bin/env bash
# Build tests/fuzz/fuzz_virtq.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default 30)
# from a small seed corpus of well-formed rings. Prints one TAP line; the exit status is libFuzzer's
# (non-zero if it found a crash, a leak or undefined behaviour).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
out=build-fuzz
corpus=$out/corpus-virtq
log=$out/fuzz_virtq.log
mkdir -p "$corpus"
src=(tests/fuzz/fuzz_virtq.c src/devices/virtio/queue.c src/vmm/guest_mem.c src/lib/err.c)
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -Wall -Wextra -Werror \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-o "$out/fuzz_virtq" "${src[@]}"

# Seeds, written byte by byte (layout: the comment at the top of fuzz_virtq.c).
seed=""
bytes() { local v x; for v; do printf -v x '\\x%02x' $((v & 255)); seed+=$x; done; }
le16() { bytes $(($1)) $(($1 >> 8)); }
le32() { le16 $(($1 & 0xffff)); le16 $(($1 >> 16)); }
le64() { le32 $(($1 & 0xffffffff)); le32 $(($1 >> 32)); }
desc() { le64 "$1"; le32 "$2"; le16 "$3"; le16 "$4"; } # addr len flags next
zeros() { local i; for ((i = 0; i < $1; i++)); do bytes 0; done; }
write_seed() { printf '%b' "$seed" >"$corpus/$1"; seed=""; }

# One readable buffer in a 1-entry queue: desc@0, avail@16, used@24, data@64.
bytes 0 0; le16 0
desc 64 8 0 0; le16 0; le16 1; le16 0; le16 0; zeros 14; zeros 2; zeros 32
write_seed one-readable

# 4-entry queue with event idx + indirect, starting at ring index $1: a R+W chain, an indirect R+W table,
# a single readable buffer. desc@0, avail@64, used@80, data@128, indirect table@192.
four_entry_seed() {
	local start=$1
	bytes 2 7; le16 "$start"
	desc 128 16 1 1; desc 144 16 2 0; desc 192 32 4 0; desc 160 8 0 0
	local ring=(0 0 0 0) heads=(0 2 3) i
	for i in 0 1 2; do ring[$(((start + i) % 4))]=${heads[$i]}; done
	le16 0; le16 $(((start + 3) & 0xffff)); le16 "${ring[0]}"; le16 "${ring[1]}"; le16 "${ring[2]}"; le16 "${ring[3]}"
	le16 "$start"; zeros 2   # used_event, padding to the 4-aligned used ring
	zeros 38; zeros 10       # used ring, padding to 128
	zeros 64                 # data
	desc 128 8 1 1; desc 136 8 2 0
	zeros 32
}
four_entry_seed 0;     write_seed four-mixed
four_entry_seed 65534; write_seed four-mixed-wrap

# The longest chain accepted: one indirect table of VIRTQ_MAX_SEGS (1024) entries, readable then writable.
# 1-entry queue: desc@0, avail@16, used@24, data@64, table@128.
bytes 0 2; le16 0
desc 128 $((1024 * 16)) 4 0; le16 0; le16 1; le16 0; le16 0; zeros 14; zeros 26; zeros 64
for ((i = 0; i < 1023; i++)); do desc $((64 + i % 32)) 1 $((i < 512 ? 1 : 3)) $((i + 1)); done
desc 96 1 2 0
write_seed max-segments

set +e
"$out/fuzz_virtq" -max_total_time="$secs" -max_len=20000 -artifact_prefix="$out/virtq-" -print_final_stats=1 "$corpus" 2> >(tee "$log" >&2)
rc=$?
set -e
wait
runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
if [ $rc -eq 0 ]; then
	echo "ok 1 - fuzz virtq (${runs:-?} runs, ${speed:-?} exec/s, no crash)"
else
	echo "not ok 1 - fuzz virtq (libFuzzer exit status $rc, log in $log)"
fi
exit $rc
