#!/usr/bin/env bash
# Build tests/fuzz/fuzz_spec.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default 60)
# from a seed corpus of valid configs. Exit status is libFuzzer's: non-zero if it found a crash.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus"
src=(tests/fuzz/fuzz_spec.c src/runtime/spec.c src/runtime/spec_default.c src/runtime/names.c src/runtime/state.c
	src/lib/err.c src/lib/util.c)
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc $(pkg-config --cflags json-c) -fsanitize=fuzzer,address,undefined \
	-o "$out/fuzz_spec" "${src[@]}" $(pkg-config --libs json-c)
# Seeds: the default spec, and the configs the runtime tests write.
[ -x build/virtus-runtime ] && { d=$(mktemp -d); build/virtus-runtime spec --bundle "$d" && cp "$d/config.json" "$out/corpus/default.json"; rm -rf "$d"; }
exec "$out/fuzz_spec" -max_total_time="$secs" -max_len=65536 "$out/corpus"
