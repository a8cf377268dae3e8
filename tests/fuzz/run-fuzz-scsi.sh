#!/usr/bin/env bash
# virtio-scsi and its CD drive through virtio-pci (tests/fuzz/fuzz_scsi.c) on a real ISO file for N seconds
# (default 30).
exec "$(dirname "$0")/fuzz-device.sh" scsi "${1:-30}" src/devices/virtio/scsi.c src/devices/scsi_cd.c
