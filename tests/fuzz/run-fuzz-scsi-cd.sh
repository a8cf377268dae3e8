#!/usr/bin/env bash
# Build tests/fuzz/fuzz_scsi_cd.c with clang (libFuzzer + ASan + UBSan) and run it for N seconds (default 60)
# from a small seed corpus (INQUIRY, READ(10), READ TOC, GET EVENT STATUS NOTIFICATION, a tray and lock
# sequence). Exit status is libFuzzer's: non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=build-fuzz
mkdir -p "$out/corpus-scsi-cd"
clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
	-o "$out/fuzz_scsi_cd" tests/fuzz/fuzz_scsi_cd.c src/devices/scsi_cd.c src/lib/iov.c src/lib/err.c
# Seeds: state (bit 0 a disc, 1 tray open, 2 locked, 3 unit attention, 4..5 media event), data-in length
# (2 bytes BE), buffer flags (bits 0..1 segments - 1), 3 split bytes; then per command: control (bits 0..1
# host action 2 eject / 3 insert, bit 2 force, bit 3 another LUN), CDB length, CDB.
seed() { printf "$2" > "$out/corpus-scsi-cd/$1"; }
seed inquiry  '\x01\x01\x00\x01\x40\x80\x80''\x00\x06\x12\x00\x00\x00\xff\x00''\x00\x06\x12\x01\x83\x00\xff\x00'
seed read10   '\x01\x18\x00\x02\x55\x80\x80''\x00\x0a\x28\x00\x00\x00\x00\x02\x00\x00\x03\x00'
seed toc      '\x01\x01\x00\x00\x80\x80\x80''\x00\x0a\x43\x02\x00\x00\x00\x00\x00\x00\xff\x00''\x00\x0a\x43\x00\x00\x00\x00\x00\x00\x00\xff\x40'
seed gesn     '\x29\x00\x08\x00\x80\x80\x80''\x00\x0a\x4a\x01\x00\x00\x10\x00\x00\x00\x08\x00''\x00\x06\x00\x00\x00\x00\x00\x00''\x03\x0a\x4a\x01\x00\x00\x10\x00\x00\x00\x08\x00'
seed tray     '\x01\x00\x40\x00\x80\x80\x80''\x00\x06\x1e\x00\x00\x00\x01\x00''\x00\x06\x1b\x00\x00\x00\x02\x00''\x02\x06\x1e\x00\x00\x00\x00\x00''\x06\x06\x1b\x00\x00\x00\x02\x00''\x00\x06\x1b\x00\x00\x00\x03\x00''\x00\x06\x00\x00\x00\x00\x00\x00'
exec "$out/fuzz_scsi_cd" -max_total_time="$secs" -max_len=512 "$out/corpus-scsi-cd"
