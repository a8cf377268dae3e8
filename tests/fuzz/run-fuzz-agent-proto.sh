#!/usr/bin/env bash
# Build tests/fuzz/fuzz_agent_proto.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds
# (default 30) from a small seed corpus (a create/start/output/exit conversation, an error, a split frame).
# Exit status is libFuzzer's: non-zero on a finding (crash, leak, undefined behaviour).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
out=build-fuzz
mkdir -p "$out/corpus-agent-proto"
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -Wall -Wextra -Werror $(pkg-config --cflags json-c) \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-o "$out/fuzz_agent_proto" tests/fuzz/fuzz_agent_proto.c src/isolation/agent.c src/isolation/agent_json.c src/lib/util.c src/lib/err.c \
	$(pkg-config --libs json-c)
# frame TYPE PROC PAYLOAD: one frame (little-endian header)
frame() {
	python3 -c 'import struct,sys; p=sys.argv[3].encode(); sys.stdout.buffer.write(struct.pack("<IHH",len(p),int(sys.argv[1]),int(sys.argv[2]))+p)' "$@"
}
{ printf '\x03'; frame 16 0 '{"pid":42}'; frame 17 0 '{"pid":42}'; frame 18 0 'hi'; frame 19 1 'err';
  frame 20 1 '{"status":0}'; frame 20 0 '{"status":143}'; } >"$out/corpus-agent-proto/conversation"
{ printf '\x01'; frame 21 0 '{"message":"no such file"}'; frame 21 9 '{"message":"x"}'; } >"$out/corpus-agent-proto/error"
{ printf '\x01'; frame 18 0 'partial' | head -c 6; } >"$out/corpus-agent-proto/split"
exec "$out/fuzz_agent_proto" -max_total_time="$secs" -max_len=70000 "$out/corpus-agent-proto"
