# Part "boot" of the nested suite's job (tests/nested/suite-job.sh sources it in L1 with its helpers):
# The reference boot under QEMU, then virtus booting the Debian kernel: bzImage and PVH, 1 and 2 vCPUs,
# ACPI reboot, a jailed run, the sandbox, the default guest.
l2-run qemu-ref "$limit" qemu-system-x86_64 -accel kvm -M microvm -m 256 -smp 1 -nodefaults -no-user-config \
	-nographic -no-reboot -serial stdio -kernel guest/vmlinux -initrd guest/initramfs.cpio.gz \
	-append "$base_cmdline virtus.init=poweroff"


for kernel in bzImage vmlinux; do
	for cpus in 1 2; do
		virtus_run "virtus-$kernel-$cpus" --kernel "guest/$kernel" --initrd guest/initramfs.cpio.gz \
			--cpus "$cpus" --memory 256M --cmdline "$base_cmdline virtus.init=poweroff"
	done
done
# reboot=acpi: the FADT reset register. Without it, Linux on a hardware-reduced ACPI machine picks the
# EFI method first (and, without EFI, hangs: seen under qemu -M microvm too); a boot after the
# readiness line takes a few seconds, so a short limit is enough there.
virtus_run virtus-reboot-acpi --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M \
	--cmdline "$base_cmdline reboot=acpi virtus.init=reboot"
run_limit=30
virtus_run virtus-reboot --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M \
	--cmdline "$base_cmdline virtus.init=reboot"
run_limit=
# The run:<cmd> boot runs jailed (--jail): L1 mounts v1 cgroup hierarchies like a hybrid host's, then looks at
# the VMM while it runs (ids, capabilities, PID namespace, root, cgroup, seccomp) and checks afterwards that
# neither the jail directory nor the cgroups are left.
mkdir -p /sys/fs/cgroup && mount -t tmpfs cgroup /sys/fs/cgroup
for c in memory pids cpu; do mkdir -p /sys/fs/cgroup/$c && mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c; done
jail_watch() { # print what L1 sees of the jailed VMM (the virtus process whose uid is 65534)
	i=0
	while [ $i -lt 200 ]; do
		for p in $(pidof virtus); do
			grep -q '^Uid:[[:space:]]*65534' /proc/$p/status 2>/dev/null || continue
			sleep 1 # the main thread confines itself once the vCPUs run
			echo "jail-ids $(awk '/^Uid:/ { u = $2 } /^Gid:/ { g = $2 } END { print u "/" g }' /proc/$p/status)"
			echo "jail-capeff $(awk '/^CapEff:/ { print $2 }' /proc/$p/status)"
			echo "jail-nspid $(awk '/^NSpid:/ { print $3 }' /proc/$p/status)"
			echo "jail-root-entries $(ls -A /proc/$p/root | wc -l) $(awk '$5 == "/" { for (i = 7; i < NF; i++) if ($i == "-") print $(i + 1) }' /proc/$p/mountinfo)"
			echo "jail-netns $([ "$(readlink /proc/$p/ns/net)" = "$(readlink /proc/self/ns/net)" ] && echo host || echo own)"
			echo "jail-cgroup $(sed -n 's/^[0-9]*:memory://p' /proc/$p/cgroup)"
			echo "jail-seccomp-threads $(grep -l '^Seccomp:[[:space:]]*2' /proc/$p/task/*/status | wc -l) of $(ls /proc/$p/task | wc -l)"
			return
		done
		sleep 0.1; i=$((i + 1))
	done
	echo "jail-ids none"
}
jail_watch >/tmp/jail-watch &
virtus_run virtus-run-cmd --jail --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M \
	--cmdline "$base_cmdline virtus.init=\"run:echo run-marker-\$((6*7)); echo run-tsc-deadline \$(grep -cw tsc_deadline_timer /proc/cpuinfo); exit 5\""
wait
cat /tmp/jail-watch
echo "jail-left $(ls -A /run/virtus 2>/dev/null | wc -l) dirs, $(ls -d /sys/fs/cgroup/*/virtus 2>/dev/null | wc -l) cgroups"
# bad input never leaves anything behind either: a missing kernel (status 1), uid 0 (usage, status 2)
virtus vm run --jail --kernel /nonexistent --memory 64M >/dev/null 2>/tmp/jail-err; echo "jail-bad-kernel-status $?"
echo "jail-bad-kernel-msg $(head -n1 /tmp/jail-err)"
virtus vm run --jail --jail-uid 0 --kernel guest/vmlinux >/dev/null 2>/tmp/jail-err; echo "jail-bad-uid-status $?"
echo "jail-bad-uid-msg $(head -n1 /tmp/jail-err)"
echo "jail-bad-left $(ls -A /run/virtus 2>/dev/null | wc -l) dirs, $(ls -d /sys/fs/cgroup/*/virtus 2>/dev/null | wc -l) cgroups"
# The sandbox: a forbidden call from the device thread (the test-only trigger) stops a real VMM with SIGSYS
VIRTUS_SANDBOX_TEST_VIOLATION=device l2-run virtus-sandbox-kill 30 virtus vm run --console stdio --rng \
	--kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --memory 256M --cmdline "$base_cmdline virtus.init=poweroff"
# No --kernel/--initrd: the default guest from <dir of virtus>/guest/ (a serial line cannot carry an
# EOF, so the default shell would wait forever: ask for poweroff).
virtus_run virtus-default --cmdline "$base_cmdline virtus.init=poweroff"
