#!/usr/bin/env bash
# virtio-rng through virtio-pci (tests/fuzz/fuzz_rng.c) for N seconds (default 30).
exec "$(dirname "$0")/fuzz-device.sh" rng "${1:-30}" src/devices/virtio/rng.c
