#!/usr/bin/env bash
# virtio-blk through virtio-pci (tests/fuzz/fuzz_blk.c) on a real image file for N seconds (default 30).
exec "$(dirname "$0")/fuzz-device.sh" blk "${1:-30}" src/devices/virtio/blk.c src/devices/virtio/blk_req.c \
	src/block/raw.c src/block/qcow2.c src/block/checkpoint.c src/block/uring.c src/block/pool.c src/block/sync.c src/block/vblk.c \
	src/lib/thread_role.c -luring -lz
