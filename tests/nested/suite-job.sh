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
# virtio-console: the guest's console is hvc0 only (no ttyS0 on the command line), so the readiness line and
# the shell's output can only come through virtio-console; the shell's input is a file given to virtus as
# stdin before the guest even booted (held by the device until the driver posts receive buffers).
printf 'echo console-active $(cat /sys/class/tty/console/active)\necho MARK$((6*7)); poweroff -f\n' >/tmp/hvc-input
L2_STDIN=/tmp/hvc-input
export L2_STDIN
virtus_run virtus-hvc --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 \
	--memory 256M --console-device virtio --cmdline "console=hvc0 quiet panic=-1 virtus.init=shell"
unset L2_STDIN

# virtio-balloon: the balloon (128M of 256M) inflates at boot; the guest then unbinds the driver (which
# deflates it), fills 120M of tmpfs and frees it (the VMM's RSS grows), and binds the driver again, which
# inflates the balloon over those freed pages. L1 samples virtus's VmRSS at each step's marker.
balloon_rss() { # balloon_rss OUTFILE: print "l1-balloon-rss STEP KB" when the guest prints "balloon-STEP"
	for step in touched inflated; do
		i=0
		until grep -q "^balloon-$step" "$1" 2>/dev/null || [ $i -ge 600 ]; do sleep 0.2; i=$((i + 1)); done
		pid=$(pidof virtus)
		echo "l1-balloon-rss $step $(awk '/^VmRSS:/ { print $2 }' /proc/${pid%% *}/status 2>/dev/null)"
	done
}
: >/tmp/balloon-out
balloon_rss /tmp/balloon-out >/tmp/balloon-rss &
bal='/sys/bus/virtio/drivers/virtio_balloon'
run_limit=120
virtus_run virtus-balloon --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 \
	--memory 256M --balloon 128M --stats --cmdline "console=ttyS0 quiet panic=-1 virtus.init=\"run:d=\$(basename $bal/virtio*); echo balloon-dev \$d; echo \$d >$bal/unbind; dd if=/dev/zero of=/tmp/fill bs=1M count=120 2>/dev/null; rm /tmp/fill; echo balloon-touched; sleep 3; echo \$d >$bal/bind; sleep 10; echo balloon-inflated; sleep 3\"" \
	| tee /tmp/balloon-out
run_limit=
wait
cat /tmp/balloon-rss
exit 0
