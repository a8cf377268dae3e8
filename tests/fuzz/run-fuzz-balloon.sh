#!/usr/bin/env bash
# virtio-balloon through virtio-pci (tests/fuzz/fuzz_balloon.c) for N seconds (default 30). madvise is
# wrapped at link time so the target can check every range the balloon releases.
exec "$(dirname "$0")/fuzz-device.sh" balloon "${1:-30}" src/devices/virtio/balloon.c -Wl,--wrap=madvise
