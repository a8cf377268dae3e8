#!/usr/bin/env bash
# Build tests/fuzz/fuzz_serve_request.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default
# 60) from seeds for the routes (lists, each action with a body, terminals, a migration). Exit status is
# libFuzzer's: non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus-serve-request"
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -I/usr/include/json-c -fsanitize=fuzzer,address,undefined \
	-o "$out/fuzz_serve_request" tests/fuzz/fuzz_serve_request.c src/serve/handle.c src/serve/actions.c \
	src/serve/auth.c src/cli/vm_state.c src/lib/util.c src/lib/err.c -ljson-c -lpthread
# byte 0: method (0 GET, 1 POST, 3 DELETE) | 8 upgrade | 16 the token; then the path, NUL, the body
seed() { printf "$2" > "$out/corpus-serve-request/$1"; }
seed overview '\x10/api/overview\x00'
seed run      '\x11/api/containers\x00{"image":"bb","command":["sh","-c","x"],"ports":["1:2"],"isolation":"vm"}'
seed cdrom    '\x11/api/vms/web1/cdrom\x00{"iso":"a.iso","force":true}'
seed disk     '\x13/api/vms/web1/disks/data\x00'
seed restore  '\x11/api/vms\x00{"name":"w","restore":"/s"}'
seed migrate  '\x11/api/vms/web1/migrate\x00{"to":"http://h:1/#token=0000000000000000000000000000000000000000000000000000000000000000","port":9}'
seed term     '\x18/api/vms/web1/console\x00'
seed page     '\x00/vendor/xterm.js\x00'
exec "$out/fuzz_serve_request" -max_total_time="$secs" -max_len=2048 "$out/corpus-serve-request"
