#!/usr/bin/env bash
# The cgroup library on a pure cgroup v2 host: this machine is hybrid, so boot a Debian kernel under QEMU
# (TCG, no KVM needed) with a tiny initramfs that mounts cgroup2 at /sys/fs/cgroup and runs the cgroup
# host test (limits in memory.max/cpu.max/pids.max/cpu.weight, the BPF device program, cgroup.freeze,
# destroy) plus the seccomp and pure cgroup unit tests. TAP output; the kernel comes from
# $VIRTUS_TEST_KERNEL or the guest bed's build/guest/vmlinux (skipped when there is none).
set -uo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
KERNEL=${VIRTUS_TEST_KERNEL:-$TOP/build/guest/vmlinux}
TESTS=(test_cgroup_host test_seccomp test_cgroup)

skip_all() { echo "ok 1 - cgroup v2 in a VM # skip $1"; echo "1..1"; exit 0; }
[ -r "$KERNEL" ] || skip_all "no guest kernel ($KERNEL; set VIRTUS_TEST_KERNEL)"
command -v qemu-system-x86_64 >/dev/null || skip_all "no qemu-system-x86_64"
BB=$(command -v busybox) || skip_all "no busybox"
for t in "${TESTS[@]}"; do [ -x "$BUILD/tests/unit/$t" ] || skip_all "$BUILD/tests/unit/$t not built"; done

WORK=$(mktemp -d /tmp/virtus-cgv2.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$WORK"' EXIT
R=$WORK/root
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/t"
cp "$BB" "$R/bin/busybox"
for a in sh mount poweroff cat uname; do ln -s busybox "$R/bin/$a"; done
for t in "${TESTS[@]}"; do
	cp "$BUILD/tests/unit/$t" "$R/t/"
	for l in $(ldd "$BUILD/tests/unit/$t" | awk '/=>/ {print $3} /^\t\// {print $1}'); do
		mkdir -p "$R$(dirname "$l")" && cp -L "$l" "$R$l"
	done
done
cat >"$R/init" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup
echo "# kernel \$(uname -r); cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
cd /t
for t in ${TESTS[*]}; do CMOCKA_MESSAGE_OUTPUT=TAP ./\$t; echo "# exit \$t \$?"; done
echo "# cgroup-v2-vm-done"
poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$WORK/initrd.gz")

# microvm + PVH ELF kernel boots in ~3 s under TCG (TESTBED.md); tsc_early_khz avoids TSC calibration hangs.
timeout 600 qemu-system-x86_64 -accel tcg -cpu max -m 512 -M microvm -nodefaults -no-user-config -nographic \
	-no-reboot -serial stdio -kernel "$KERNEL" -initrd "$WORK/initrd.gz" \
	-append 'console=ttyS0 quiet tsc_early_khz=2445428 mitigations=off nokaslr' >"$WORK/log" 2>&1
tr -d '\r' <"$WORK/log" >"$WORK/clean"
{
	grep -E '^(ok|not ok|# kernel)' "$WORK/clean"
	grep -q 'cgroup2 controllers: .*memory' "$WORK/clean" || echo "not ok - the guest has a cgroup2 root with the memory controller"
	grep -q '^ok [0-9]* - test_v2_public_api' "$WORK/clean" || echo "not ok - test_v2_public_api ran and passed on pure cgroup v2"
	# a test binary that died (a crash, an abort) loses its remaining tests' lines: its status says so
	for t in "${TESTS[@]}"; do
		grep -q "^# exit $t 0\$" "$WORK/clean" ||
			{ echo "not ok - $t exited with status 0 in the VM"; grep -E "^# exit $t" "$WORK/clean"; }
	done
	grep -q cgroup-v2-vm-done "$WORK/clean" || { echo "not ok - the guest finished"; tail -20 "$WORK/clean" | sed 's/^/# /'; }
} | awk '/^(ok|not ok)/ { st = /^not/ ? "not ok" : "ok"; sub(/^(not ok|ok) ?[0-9]* - /, ""); printf "%s %d - vm: %s\n", st, ++n, $0; next }
	{ print } END { printf "1..%d\n", n }'
exit 0
