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
