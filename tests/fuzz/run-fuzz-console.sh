#!/usr/bin/env bash
# virtio-console through virtio-pci (tests/fuzz/fuzz_console.c) for N seconds (default 30).
exec "$(dirname "$0")/fuzz-device.sh" console "${1:-30}" src/devices/virtio/console.c
