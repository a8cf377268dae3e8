# Part "devices" of the nested suite's job (tests/nested/suite-job.sh sources it in L1 with its helpers):
# virtio devices, one L2 boot each: rng, console, balloon, blk, blk at random offsets, qcow2.
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
# inflates the balloon over those freed pages. L1 samples virtus's VmRSS at each step's marker. The stats
# queue refreshes every second (stats=1): --stats shows the guest's latest memory statistics, compared with
# the guest's own MemFree at the end (the rebind also exercises a device reset with a stats buffer held).
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
	--memory 256M --balloon 128M,stats=1 --stats --cmdline "console=ttyS0 quiet panic=-1 virtus.init=\"run:d=\$(basename $bal/virtio*); echo balloon-dev \$d; echo \$d >$bal/unbind; dd if=/dev/zero of=/tmp/fill bs=1M count=120 2>/dev/null; rm /tmp/fill; echo balloon-touched; sleep 3; echo \$d >$bal/bind; sleep 10; echo balloon-inflated; sleep 3; set -- \$(grep MemFree /proc/meminfo); echo balloon-memfree-kb \$2\"" \
	| tee /tmp/balloon-out
run_limit=
wait
cat /tmp/balloon-rss
# virtio-blk (--disk), one L2 boot: vda read-write (the guest writes a pattern; the host wrote another one
# at 8 MiB that the guest reads; the guest discards 12..16 MiB), vdb read-only, vdc ext4 made on the host
# (tests/suite-nested ships it). The images live on a tmpfs so hole punching shows in stat's block count.
mkdir -p blk && mount -t tmpfs tmpfs blk
blk_pattern() { yes virtus-blk-pattern-0123456789abcdef | head -c 1048576; }
dd if=/dev/zero of=blk/rw.img bs=1M count=16 2>/dev/null
head -c 1048576 /dev/urandom >blk/host-pattern
dd if=blk/host-pattern of=blk/rw.img bs=1M seek=8 conv=notrunc 2>/dev/null
head -c 1048576 /dev/urandom >blk/ro.img
[ -f disk-ext4.img ] && cp disk-ext4.img blk/ext4.img
echo "blk-host-pattern-md5 $(md5sum <blk/host-pattern | cut -d' ' -f1)"
echo "blk-ro-md5-before $(md5sum <blk/ro.img | cut -d' ' -f1)"
echo "blk-rw-blocks-before $(stat -c %b blk/rw.img)"
virtus_run virtus-blk --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M --stats \
	--disk blk/rw.img,id=virtus-rw-1 --disk blk/ro.img,ro,id=virtus-ro-2 --disk blk/ext4.img \
	--cmdline "$base_cmdline virtus.init=\"run:for b in vda vdb vdc; do echo blk-serial-\$b \$(cat /sys/block/\$b/serial); done; echo blk-ro-flag \$(cat /sys/block/vdb/ro); yes virtus-blk-pattern-0123456789abcdef | head -c 1048576 | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null; echo blk-write-status \$?; sync; echo blk-read-md5 \$(dd if=/dev/vda bs=1M skip=8 count=1 2>/dev/null | md5sum | cut -c1-32); dd if=/dev/zero of=/dev/vdb bs=4k count=1 conv=fsync 2>/dev/null; echo blk-ro-open-status \$?; blockdev --setrw /dev/vdb; dd if=/dev/zero of=/dev/vdb bs=4k count=1 oflag=direct 2>/tmp/e; echo blk-ro-direct-status \$?; echo blk-ro-direct-err \$(cat /tmp/e); mkdir -p /mnt; mount -t ext4 -o ro /dev/vdc /mnt && echo blk-ext4-file \$(cat /mnt/hello.txt); umount /mnt; blkdiscard -o 12582912 -l 4194304 /dev/vda; echo blk-discard-status \$?\""
sync
echo "blk-rw-blocks-after $(stat -c %b blk/rw.img)"
blk_pattern >blk/expect
dd if=blk/rw.img of=blk/got bs=1M count=1 2>/dev/null
echo "blk-host-sees-guest-pattern $(cmp blk/expect blk/got >/dev/null 2>&1 && echo same || echo differs)"
echo "blk-ro-md5-after $(md5sum <blk/ro.img | cut -d' ' -f1)"
umount blk
# virtio-blk at random offsets (guest/tools/blkbench verify): every 4 KiB block of blkverify.img (made on the
# host by tests/suite-nested) starts with its block number as le64; the guest reads 2000 random blocks with
# one request in flight, then 2000 with eight, and any block that is not the one asked for fails loudly.
if [ -f blkverify.img ]; then
	virtus_run virtus-blkverify --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M \
		--disk blkverify.img,ro --cmdline "$base_cmdline virtus.init=\"run:blkbench verify /dev/vda --qd 1 --count 2000 --seed 1; echo blkverify-qd1-status \$?; blkbench verify /dev/vda --qd 8 --count 2000 --seed 2; echo blkverify-qd8-status \$?\""
fi
# qcow2 (--disk IMAGE.qcow2), one L2 boot: vda is site.qcow2, an overlay qemu-img made over base.qcow2 (an
# ext4 file system with hello.txt, made by tests/suite-nested); the guest reads the base's file, writes an
# 8 MiB file, writes and deletes 4 MiB and runs fstrim. vdb is base.qcow2 again with a throwaway overlay,
# written by the guest. Then L1 checks the images with qemu-img, e2fsck and debugfs (shipped by the suite).
if [ -f base.qcow2 ] && [ -f site.qcow2 ]; then
	mkdir -p q && mount -t tmpfs tmpfs q && cp base.qcow2 site.qcow2 q/
	echo "q-base-md5-before $(md5sum <q/base.qcow2 | cut -d' ' -f1)"
	virtus_run virtus-qcow2 --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M \
		--disk q/site.qcow2 --disk q/base.qcow2,overlay \
		--cmdline "$base_cmdline virtus.init=\"run:mkdir -p /a /b; mount -t ext4 /dev/vda /a && echo q-hello \$(cat /a/hello.txt); head -c 8388608 /dev/urandom >/a/new.bin; echo q-new-md5 \$(md5sum </a/new.bin | cut -c1-32); dd if=/dev/urandom of=/a/gone.bin bs=1M count=4 2>/dev/null; sync; rm /a/gone.bin; sync; fstrim /a; echo q-fstrim-status \$?; umount /a; echo q-umount-status \$?; mount -t ext4 /dev/vdb /b && echo overlay-only >/b/ov.txt && sync && echo q-overlay-read \$(cat /b/ov.txt); umount /b\""
	echo "q-check-status $(qemu-img check -q q/site.qcow2 >/tmp/q-check 2>&1; echo $?)"
	head -n 5 /tmp/q-check
	qemu-img convert -O raw q/site.qcow2 /tmp/site.raw
	echo "q-fsck-status $(e2fsck -fn /tmp/site.raw >/dev/null 2>&1; echo $?)"
	echo "q-l1-new-md5 $(debugfs -R 'cat /new.bin' /tmp/site.raw 2>/dev/null | md5sum | cut -d' ' -f1)"
	echo "q-site-kb $(du -k q/site.qcow2 | cut -f1)"
	echo "q-base-md5-after $(md5sum <q/base.qcow2 | cut -d' ' -f1)"
	rm -f /tmp/site.raw
	umount q
fi
