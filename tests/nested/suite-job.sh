# Job run inside the nested bed's L1 by tests/suite-nested: boots L2 guests, one l2-result line each.
# A QEMU reference boot first tells a broken bed or guest apart from a broken virtus.
limit=${L2_LIMIT:-60}
base_cmdline="console=ttyS0 quiet panic=-1"

l2-run qemu-ref "$limit" qemu-system-x86_64 -accel kvm -M microvm -m 256 -smp 1 -nodefaults -no-user-config \
	-nographic -no-reboot -serial stdio -kernel guest/vmlinux -initrd guest/initramfs.cpio.gz \
	-append "$base_cmdline virtus.init=poweroff"

if ! command -v virtus >/dev/null; then
	echo "l2-novmm"
	exit 0
fi

timeouts=0
virtus_run() { # virtus_run TAG ARGS...: stop trying after two timeouts, the suite has a time budget
	tag=$1; shift
	if [ "$timeouts" -ge 2 ]; then
		echo "l2-result tag=$tag status=notrun ready_ms=none total_ms=0 nproc=none memtotal_kb=none"
		return
	fi
	l2-run "$tag" "${run_limit:-$limit}" virtus vm run --console stdio "$@" | tee /tmp/last-run
	grep -q "^l2-result tag=$tag status=timeout" /tmp/last-run && timeouts=$((timeouts + 1))
}

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
virtus_run virtus-run-cmd --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M \
	--cmdline "$base_cmdline virtus.init=\"run:echo run-marker-\$((6*7)); exit 5\""
# No --kernel/--initrd: the default guest from <dir of virtus>/guest/ (a serial line cannot carry an
# EOF, so the default shell would wait forever: ask for poweroff).
virtus_run virtus-default --cmdline "$base_cmdline virtus.init=poweroff"
# virtio-rng on PCI (--rng): the guest finds 1af4:1044, hw_random picks it, /dev/hwrng gives data, and
# --stats shows the kicks arriving by ioeventfd (none trapped) while the BAR sees only setup accesses.
virtus_run virtus-rng --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M --rng --stats \
	--cmdline "$base_cmdline virtus.init=\"run:for d in /sys/bus/pci/devices/*; do echo pci-dev \$(cat \$d/vendor):\$(cat \$d/device); done; echo rng-current \$(cat /sys/class/misc/hw_random/rng_current); echo hwrng-bytes \$(head -c 4096 /dev/hwrng | wc -c); echo hwrng-64k \$(head -c 65536 /dev/hwrng | wc -c)\""
exit 0
