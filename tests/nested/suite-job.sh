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
	--cmdline "$base_cmdline virtus.init=\"run:echo run-marker-\$((6*7)); exit 5\""
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
# virtio-net with user networking (--net user): the guest leases an address by DHCP, fetches a file from an
# HTTP server in L1 (10.0.2.2 is L1's loopback through slirp), and serves a page that L1 fetches through a
# port forward. One boot; every check prints one "net-..." marker line.
ip link set lo up 2>/dev/null
mkdir -p /tmp/www-l1 && echo "l1-payload-31337" >/tmp/www-l1/f.txt
httpd -p 127.0.0.1:8081 -h /tmp/www-l1
rm -f /tmp/fwd.out
( for i in $(seq 90); do timeout 5 wget -q -O /tmp/fwd.out http://127.0.0.1:8082/ 2>/dev/null && break; sleep 1; done
  echo "net-l1-fetch $(cat /tmp/fwd.out 2>/dev/null)" ) &
fetch_pid=$!
net_cmd=$(cat <<'EOF'
ip link set lo up; ip link set eth0 up; echo net-mac $(cat /sys/class/net/eth0/address);
printf '#!/bin/sh\n[ x$1 = xbound ] || exit 0\nip addr add $ip/$mask dev $interface\nip route add default via $router\necho net-lease $ip router=$router dns=$dns\n' >/tmp/dh; chmod +x /tmp/dh;
udhcpc -i eth0 -n -q -t 5 -s /tmp/dh;
echo net-fetch $(timeout 20 wget -q -O - http://10.0.2.2:8081/f.txt);
mkdir /tmp/www; echo guest-page-4242 >/tmp/www/index.html; httpd -f -v -p 80 -h /tmp/www 2>/tmp/hl &
for i in $(seq 60); do grep -q response:200 /tmp/hl && break; sleep 1; done; sleep 1; echo net-served $(grep -c response:200 /tmp/hl)
EOF
)
net_cmd=$(echo "$net_cmd" | tr '\n' ' ')
run_limit=120
virtus_run virtus-net --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M --stats \
	--net user,hostfwd=tcp:8082-:80,mac=52:54:00:12:34:56,host-loopback=on --cmdline "$base_cmdline virtus.init=\"run:$net_cmd\""
run_limit=
kill $fetch_pid 2>/dev/null # done or hopeless once the guest is gone; the suite has a time budget
# virtio-net on a tap (--net tap=tap0): L1 makes a persistent tap (tunctl, like `ip tuntap add`) with
# 192.168.77.1/24; the guest sets 192.168.77.2 statically, prints the virtio features it negotiated, fetches
# a small file and 8 MiB from L1's httpd (md5), and serves a page and 8 MiB that L1 fetches (md5). One boot;
# a second --net (user) shows up as eth1 with the second default MAC. busybox httpd logs "response:200" when
# it sends the headers, so the guest stays up until L1's third request (/done, after the 8 MiB), not the second.
tunctl -t tap0 >/dev/null && ip addr add 192.168.77.1/24 dev tap0 && ip link set tap0 up
mkdir -p /tmp/www-tap && echo "l1-tap-payload-271" >/tmp/www-tap/f.txt
head -c 8388608 /dev/urandom >/tmp/www-tap/big
echo "tap-l1-big-md5 $(md5sum </tmp/www-tap/big | cut -d' ' -f1)"
httpd -p 192.168.77.1:8091 -h /tmp/www-tap
rm -f /tmp/tap-page /tmp/tap-big
( for i in $(seq 150); do timeout 5 wget -q -O /tmp/tap-page http://192.168.77.2/index.html 2>/dev/null && break; sleep 1; done
  echo "tap-l1-fetch $(cat /tmp/tap-page 2>/dev/null)"
  timeout 120 wget -q -O /tmp/tap-big http://192.168.77.2/big 2>/dev/null
  echo "tap-l1-got-guest-big-md5 $(md5sum </tmp/tap-big | cut -d' ' -f1)"
  timeout 30 wget -q -O /dev/null http://192.168.77.2/done 2>/dev/null ) & # tells the guest L1 has it all
tap_fetch_pid=$!
tap_cmd=$(cat <<'EOF'
ip link set lo up; ip link set eth0 up; ip addr add 192.168.77.2/24 dev eth0; echo tap-mac $(cat /sys/class/net/eth0/address);
echo tap-features $(cat /sys/class/net/eth0/device/features); echo tap-eth1-mac $(cat /sys/class/net/eth1/address);
ip link set eth1 up; ip addr add 10.0.2.15/24 dev eth1; timeout 15 wget -q -O /tmp/lo http://10.0.2.2:8081/f.txt; echo tap-user-loopback-status $? $(cat /tmp/lo 2>/dev/null);
echo tap-fetch $(timeout 30 wget -q -O - http://192.168.77.1:8091/f.txt);
echo tap-guest-got-l1-big-md5 $(timeout 120 wget -q -O - http://192.168.77.1:8091/big | md5sum | cut -c1-32);
mkdir /tmp/www; echo guest-tap-page-77 >/tmp/www/index.html; echo done >/tmp/www/done; head -c 8388608 /dev/urandom >/tmp/www/big;
echo tap-guest-big-md5 $(md5sum </tmp/www/big | cut -c1-32); httpd -f -v -p 80 -h /tmp/www 2>/tmp/hl &
for i in $(seq 200); do [ $(grep -c response:200 /tmp/hl) -ge 3 ] && break; sleep 1; done; echo tap-served $(grep -c response:200 /tmp/hl)
EOF
)
tap_cmd=$(echo "$tap_cmd" | tr '\n' ' ')
echo "tap-cmdline-length ${#tap_cmd}"
run_limit=240
virtus_run virtus-tap --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M --stats \
	--net tap=tap0 --net user --cmdline "$base_cmdline virtus.init=\"run:$tap_cmd\""
run_limit=
wait $tap_fetch_pid 2>/dev/null
# virtio-vsock (--vsock 3,/tmp/v.sock), one L2 boot; the static `vsock` tool (guest/tools/vsock.c) is both
# the guest side (AF_VSOCK) and L1's side (Unix sockets: L1's busybox nc has none), shipped by the suite.
# host -> guest: the guest listens on 5000, L1 connects through /tmp/v.sock with "CONNECT 5000" (retrying
# until the guest listens); guest -> host: L1 listens on /tmp/v.sock_6000, the guest connects to 2:6000.
# Each side sends 1 MiB of random bytes and prints the md5 of what it sent and of what it received.
# Then the guest connects to port 6001, where nobody listens: that must fail.
chmod +x ./vsock 2>/dev/null
mkdir -p /tmp/vs && head -c 1048576 /dev/urandom >/tmp/vs/l1-a && head -c 1048576 /dev/urandom >/tmp/vs/l1-b
echo "vsock-l1-sent-a $(md5sum </tmp/vs/l1-a | cut -c1-32)"
echo "vsock-l1-sent-b $(md5sum </tmp/vs/l1-b | cut -c1-32)"
rm -f /tmp/v.sock /tmp/v.sock_6000
./vsock unix-listen /tmp/v.sock_6000 </tmp/vs/l1-b >/tmp/vs/got-b 2>/tmp/vs/listen-b.err &
listen_pid=$!
( for i in $(seq 240); do
	./vsock unix-connect /tmp/v.sock "CONNECT 5000" </tmp/vs/l1-a >/tmp/vs/got-a 2>/tmp/vs/connect-a.err && break
	sleep 0.5
  done
  echo "vsock-l1-connect-a $(head -n1 /tmp/vs/connect-a.err | cut -d' ' -f1) tries=$i" ) >/tmp/vs/connect-a.out &
connect_pid=$!
vsock_cmd=$(cat <<'EOG'
for d in /sys/bus/virtio/devices/*; do [ $(cat $d/device) = 0x0013 ] && echo vsock-driver $(basename $(readlink $d/driver)); done;
vsock connect 2 6001 </dev/null 2>/tmp/e; echo vsock-refused-status $? $(cat /tmp/e);
head -c 1048576 /dev/urandom >/tmp/gb; echo vsock-guest-sent-b $(md5sum </tmp/gb | cut -c1-32);
vsock connect 2 6000 </tmp/gb >/tmp/gotb; echo vsock-guest-connect-status $?; echo vsock-guest-got-b $(md5sum </tmp/gotb | cut -c1-32);
head -c 1048576 /dev/urandom >/tmp/ga; echo vsock-guest-sent-a $(md5sum </tmp/ga | cut -c1-32);
vsock listen 5000 </tmp/ga >/tmp/gota 2>/dev/null; echo vsock-guest-listen-status $?; echo vsock-guest-got-a $(md5sum </tmp/gota | cut -c1-32)
EOG
)
vsock_cmd=$(echo "$vsock_cmd" | tr '\n' ' ')
run_limit=180
virtus_run virtus-vsock --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --cpus 1 --memory 256M --stats \
	--vsock 3,/tmp/v.sock --cmdline "$base_cmdline virtus.init=\"run:$vsock_cmd\""
run_limit=
kill $connect_pid $listen_pid 2>/dev/null
wait $connect_pid $listen_pid 2>/dev/null
cat /tmp/vs/connect-a.out 2>/dev/null
echo "vsock-l1-got-a $(md5sum </tmp/vs/got-a | cut -c1-32)"
echo "vsock-l1-got-b $(md5sum </tmp/vs/got-b | cut -c1-32)"
rm -f /tmp/v.sock_6000
echo "vsock-l1-path-left $([ -e /tmp/v.sock ] && echo yes || echo no)"

# A managed VM (virtus vm run -d, pause, resume, stop) with the Debian kernel. The guest counts: each turn
# writes "mg-count N" at the start of its disk, then prints it. While paused the count must not move; after
# resume it goes on (no reboot: the same boot keeps counting); `vm stop` presses the ACPI power button, the
# guest's init shuts down (kills the counter, syncs, powers off) and the disk holds the last count printed.
# A console client records the output to the end (the VM's directory, with its log, goes when it ends).
# The VM has a balloon with nothing asked (--balloon 0); its guest first fills and frees 150 MiB of RAM, so
# that the VMM holds it, for the balloon's checks after resume.
mkdir -p /tmp/mg
export VIRTUS_VM_RUN_DIR=/tmp/mg/vms
mg_cmd='dd if=/dev/zero of=/tmp/fill bs=1M count=150 2>/dev/null; rm -f /tmp/fill; i=0; while true; do i=$((i+1)); echo mg-count $i | dd of=/dev/vda conv=notrunc 2>/dev/null; echo mg-count $i; sleep 0.3; done'
dd if=/dev/zero of=/tmp/mg/disk.img bs=1M count=1 2>/dev/null
timeout 120 virtus vm run -d --name mg1 --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --memory 256M \
	--balloon 0,stats=1 --disk /tmp/mg/disk.img --cmdline "$base_cmdline virtus.init=\"run:$mg_cmd\"" >/tmp/mg/run.out 2>&1
echo "mg-run-status $? $(head -c 200 /tmp/mg/run.out | tr '\n' ' ')"
sleep 100 | timeout 200 virtus vm console mg1 >/tmp/mg/console 2>&1 &
# The console log's complete lines: its last line may be cut mid-write ("mg-count 1" of "mg-count 15"), and a
# count read from it once ended a wait at once and made a counting guest look stalled.
log_lines() {
	virtus vm logs "$1" 2>/dev/null | tr -d '\r' >/tmp/log-lines
	if [ -n "$(tail -c 1 /tmp/log-lines)" ]; then sed '$d' /tmp/log-lines; else cat /tmp/log-lines; fi
}
mg_last() { log_lines mg1 | sed -n 's/^mg-count \([0-9][0-9]*\).*/\1/p' | tail -n1; }
mg_wait() { # mg_wait SECONDS MIN: until the count reaches MIN (one reading per turn)
	local i=0 c
	while :; do
		c=$(mg_last)
		[ -n "$c" ] && [ "$c" -ge "$2" ] 2>/dev/null && return 0
		[ $i -ge $(($1 * 5)) ] && return 1
		i=$((i + 1)); sleep 0.2
	done
}
# a count that does not reach 3: what the VMM's threads and KVM do (tests/lib/stall.sh), for the suite to quote
if ! mg_wait 90 3; then
	[ -f stall.sh ] && . ./stall.sh && stall_report "$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' /tmp/mg/vms/mg1/vm.json)" | sed 's/^# /mg-stall /'
	dmesg | tail -n 8 | sed 's/^/mg-stall dmesg /'
fi
echo "mg-counting $(mg_last)"
virtus vm pause mg1; echo "mg-pause-status $?"
echo "mg-state-paused $(virtus vm api mg1 GET / | sed -n 's/.*"state": *"\([A-Za-z]*\)".*/\1/p')"
sleep 1; a=$(mg_last); sleep 3; b=$(mg_last)
echo "mg-paused $a $b"
virtus vm resume mg1; echo "mg-resume-status $?"
mg_wait 30 $((b + 3)); echo "mg-resumed $(mg_last) after $b"
echo "mg-boots $(virtus vm logs mg1 | grep -c 'virtus-guest: ready')"
# The balloon changed while the guest runs: asked for 128 MiB, Debian's driver gives it and the VMM frees
# it (its RSS falls); asked for 0, the guest takes it all back and counts on.
balloon_field() { virtus vm balloon "$1" 2>/dev/null | sed -n "s/^$2 //p"; }
balloon_wait() { # balloon_wait VM MIB: until the guest has given MIB (60 s)
	i=0; until [ "$(balloon_field "$1" actual_mib)" = "$2" ] || [ $i -ge 300 ]; do i=$((i + 1)); sleep 0.2; done
}
mg_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' /tmp/mg/vms/mg1/vm.json)/status" 2>/dev/null; }
echo "mg-balloon-before $(balloon_field mg1 actual_mib) $(mg_rss)"
virtus vm balloon mg1 128M; echo "mg-balloon-set-status $?"
balloon_wait mg1 128; echo "mg-balloon-inflated $(balloon_field mg1 actual_mib) $(mg_rss) $(balloon_field mg1 target_mib)"
virtus vm balloon mg1 0; balloon_wait mg1 0; echo "mg-balloon-deflated $(balloon_field mg1 actual_mib)"
c=$(mg_last)
if ! mg_wait 30 $((c + 3)); then # what the guest last said and what the VMM and KVM do, for the suite to quote
	virtus vm logs mg1 | tr -d '\r' | grep -av '^mg-count' | tail -n 12 | sed 's/^/mg-stall console /'
	[ -f stall.sh ] && . ./stall.sh && stall_report "$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' /tmp/mg/vms/mg1/vm.json)" | sed 's/^# /mg-stall /'
fi
echo "mg-balloon-counting $(mg_last) after $c"
virtus vm api mg1 PATCH /balloon/statistics '{"stats_polling_interval_s": 2}' >/dev/null
echo "mg-balloon-interval $? $(virtus vm api mg1 GET /balloon | sed -n 's/.*"stats_polling_interval_s": *\([0-9]*\).*/\1/p')"
virtus vm stop -t 60 mg1 2>/tmp/mg/stop.err; echo "mg-stop-status $? $(head -c 200 /tmp/mg/stop.err | tr '\n' ' ')"
sleep 1
echo "mg-console-shutdown $(tr -d '\r' </tmp/mg/console | grep -c 'power button: shutting down')"
echo "mg-console-last $(tr -d '\r' </tmp/mg/console | sed -n 's/^mg-count \([0-9][0-9]*\).*/\1/p' | tail -n1)"
echo "mg-disk $(head -c 32 /tmp/mg/disk.img | tr -d '\000' | sed -n 's/^mg-count \([0-9][0-9]*\).*/\1/p' | head -n1)"
echo "mg-left $(ls /tmp/mg/vms 2>/dev/null | wc -l)"

# A disk given a new image while the guest runs (vm disk change): each turn the guest drops its page cache
# and prints its disk's size in sectors and first 9 bytes. After the change it must see the new image's
# size and data, in the same boot.
# Then disks plugged in and removed (ACPI PCI hot-plug): each turn the guest also lists its disks after vda
# with their serials and first 9 bytes ('hp-list', no double quotes: the command is in the kernel's command line).
printf dc-disk-A >/tmp/mg/dc-a.img; truncate -s 1M /tmp/mg/dc-a.img
printf dc-disk-B >/tmp/mg/dc-b.img; truncate -s 2M /tmp/mg/dc-b.img
printf hp-disk-1 >/tmp/mg/hp-1.img; truncate -s 1M /tmp/mg/hp-1.img
printf hp-disk-2 >/tmp/mg/hp-2.img; truncate -s 3M /tmp/mg/hp-2.img
# And network interfaces plugged in (vm net): each turn it lists them with their MACs, eth0 pinging L1 at
# 192.168.78.1 over its tap ('nh-list').
# And a CD drive (--cdrom): each turn the guest mounts its disc, prints hello.txt and unmounts it, except a disc
# with a file 'hold', which it keeps mounted (the tray locked).
dc_cmd='mkdir -p /mnt; while true; do echo 1 >/proc/sys/vm/drop_caches; echo dc-read $(cat /sys/block/vda/size) $(head -c 9 /dev/vda); l=; for d in /sys/block/vd[b-z]; do [ -e $d ] && l=$l,${d##*/}:$(cat $d/serial):$(head -c 9 /dev/${d##*/}); done; echo hp-list ${l:-none}; l=; for n in /sys/class/net/eth*; do [ -e $n ] || continue; i=${n##*/}; ip link set $i up; p=no; [ $i = eth0 ] && ip addr add 192.168.78.2/24 dev eth0 2>/dev/null; [ $i = eth0 ] && ping -c1 -W1 192.168.78.1 >/dev/null 2>&1 && p=ok; l=$l,$i:$(cat $n/address):$p; done; echo nh-list ${l:-none}; if [ -e /mnt/hold ] || mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/null; then echo cd-read $(cat /mnt/hello.txt 2>/dev/null || echo unreadable); [ -e /mnt/hold ] || umount /mnt; else echo cd-read none; fi; sleep 0.3; done'
timeout 120 virtus vm run -d --name dc1 --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --memory 256M \
	--disk /tmp/mg/dc-a.img --cdrom cd-1.iso --cmdline "$base_cmdline virtus.init=\"run:$dc_cmd\"" >/tmp/mg/dc-run.out 2>&1
echo "dc-run-status $? $(head -c 200 /tmp/mg/dc-run.out | tr '\n' ' ')"
dc_last() { log_lines dc1 | sed -n 's/^dc-read \([0-9]* [a-zA-Z-]*\).*/\1/p' | tail -n1; }
dc_wait() { i=0; until [ "$(dc_last)" = "$1" ] || [ $i -ge 300 ]; do i=$((i + 1)); sleep 0.2; done; }
dc_wait "2048 dc-disk-A"; echo "dc-before $(dc_last)"
virtus vm disk dc1 change vda /tmp/mg/dc-b.img; echo "dc-change-status $?"
dc_wait "4096 dc-disk-B"; echo "dc-after $(dc_last)"
hp_last() { log_lines dc1 | sed -n 's/^hp-list //p' | tail -n1; }
uptime_ms() { local u; read -r u _ </proc/uptime; echo $((${u%.*} * 1000 + 10#${u#*.} * 10)); }
hp_wait() { # hp_wait WANT: until the guest lists WANT (30 s); prints the milliseconds it took (a 0.2 s poll)
	local i=0 t0; t0=$(uptime_ms)
	until [ "$(hp_last)" = "$1" ] || [ $i -ge 150 ]; do i=$((i + 1)); sleep 0.2; done
	echo $(($(uptime_ms) - t0))
}
hp_drives() { virtus vm api dc1 GET /vm/config | tr ',' '\n' | sed -n 's/.*"drive_id": *"\([^"]*\)".*/\1/p' | tr '\n' ' '; }
virtus vm disk dc1 add hp1 /tmp/mg/hp-1.img; echo "hp-add-status $?"
ms=$(hp_wait ",vdb:hp1:hp-disk-1"); echo "hp-added $(hp_last) ms=$ms"
echo "hp-drives-added $(hp_drives)"
virtus vm disk dc1 remove hp1 2>/tmp/mg/hp-rm.err; echo "hp-remove-status $? $(head -c 200 /tmp/mg/hp-rm.err | tr '\n' ' ')"
ms=$(hp_wait "none"); echo "hp-removed $(hp_last) ms=$ms"
echo "hp-drives-removed $(hp_drives)"
virtus vm api dc1 GET /drives/hp1 >/dev/null 2>&1; echo "hp-get-removed $?"
# the second one a qcow2 image: its I/O runs on a worker pool, whose threads the confined VMM starts now
qemu-img convert -f raw -O qcow2 /tmp/mg/hp-2.img /tmp/mg/hp-2.qcow2
virtus vm disk dc1 add hp2 /tmp/mg/hp-2.qcow2 --ro; echo "hp-add2-status $?"
ms=$(hp_wait ",vdb:hp2:hp-disk-2"); echo "hp-added2 $(hp_last) ms=$ms"
echo "hp-ro $(virtus vm api dc1 GET /drives/hp2 | sed -n 's/.*"is_read_only": *\([a-z]*\).*/\1/p')"
echo "dc-still $(dc_last)"
echo "dc-boots $(virtus vm logs dc1 | grep -c 'virtus-guest: ready')"
# The CD drive: the disc given at start is read, another is swapped in and read in the same boot, the drive
# emptied, then a disc the guest keeps mounted: its eject is refused until --force (after the restore below).
cd_last() { log_lines dc1 | sed -n 's/^cd-read //p' | tail -n1; }
cd_wait() { # cd_wait WANT: until the guest reads WANT (30 s); prints the milliseconds it took (a 0.2 s poll)
	local i=0 t0; t0=$(uptime_ms)
	until [ "$(cd_last)" = "$1" ] || [ $i -ge 150 ]; do i=$((i + 1)); sleep 0.2; done
	echo $(($(uptime_ms) - t0))
}
cd_wait cd-disc-one >/dev/null; echo "cd-first $(cd_last)"
echo "cd-iso3 $(pwd)/cd-3.iso"
virtus vm cd dc1 insert cd-2.iso; echo "cd-insert-status $?"
ms=$(cd_wait cd-disc-two); echo "cd-swapped $(cd_last) ms=$ms"
virtus vm cd dc1 eject; echo "cd-eject-status $?"
cd_wait none >/dev/null; echo "cd-emptied $(cd_last) $(virtus vm cd dc1 | head -n1 | tr -s ' ')"
virtus vm cd dc1 insert cd-3.iso; echo "cd-insert3-status $?"
cd_wait cd-disc-three >/dev/null; sleep 1; echo "cd-held $(cd_last) $(virtus vm cd dc1 | sed -n 's/^tray: *//p')"
virtus vm cd dc1 eject 2>/tmp/mg/cd-eject.err; echo "cd-locked-eject $? $(grep -c 'locked' /tmp/mg/cd-eject.err) $(virtus vm cd dc1 | head -n1 | tr -s ' ')"
virtus vm api dc1 GET /cdrom | tr -d ' \n' | sed 's/^/cd-api /'; echo
# Network interfaces plugged in and removed: lan on the tap hptap0 (the VMM makes it), which L1 then
# addresses, and wan (hptap1), removed again; its tap goes with it. lan stays for the snapshot below.
nh_last() { log_lines dc1 | sed -n 's/^nh-list //p' | tail -n1; }
nh_wait() { # nh_wait WANT: until the guest lists WANT (30 s); prints the milliseconds it took
	local i=0 t0; t0=$(uptime_ms)
	until [ "$(nh_last)" = "$1" ] || [ $i -ge 150 ]; do i=$((i + 1)); sleep 0.2; done
	echo $(($(uptime_ms) - t0))
}
virtus vm net dc1 add lan tap=hptap0; echo "nh-add-status $?"
ip link set hptap0 address 02:00:00:00:78:01 && ip addr add 192.168.78.1/24 dev hptap0 && ip link set hptap0 up
nh_mac=$(virtus vm api dc1 GET /network-interfaces/lan | sed -n 's/.*mac=\([0-9a-f:]*\).*/\1/p')
echo "nh-mac $nh_mac"
ms=$(nh_wait ",eth0:$nh_mac:ok"); echo "nh-added $(nh_last) ms=$ms"
# The VM's counters (vm metrics): the guest has read its disk and pinged over lan by now.
virtus vm metrics dc1 >/tmp/mg/metrics 2>&1; echo "mt-status $?"
echo "mt-values $(grep -E '^(vda[.]read_ops|vda[.]read_bytes|vda[.]q0[.]kicks|vda[.]q0[.]interrupts|lan[.]tx_frames|lan[.]rx_frames|vcpu_exits[.]total) ' /tmp/mg/metrics | sort | tr '\n' ' ')"
virtus vm net dc1 add wan tap=hptap1; echo "nh-add2-status $?"
nh_mac2=$(virtus vm api dc1 GET /network-interfaces/wan | sed -n 's/.*mac=\([0-9a-f:]*\).*/\1/p')
nh_wait ",eth0:$nh_mac:ok,eth1:$nh_mac2:no" >/dev/null; echo "nh-two $(nh_last | sed "s/$nh_mac2/MAC2/; s/$nh_mac/MAC/")"
virtus vm net dc1 add lan tap=hptap2 2>/tmp/mg/nh-dup.err; echo "nh-dup $? $(grep -c exists /tmp/mg/nh-dup.err)"
virtus vm net dc1 add x user 2>/tmp/mg/nh-user.err; echo "nh-user $? $(grep -c 'only a tap' /tmp/mg/nh-user.err)"
virtus vm net dc1 remove wan 2>/tmp/mg/nh-rm.err; echo "nh-remove-status $? $(head -c 200 /tmp/mg/nh-rm.err | tr '\n' ' ')"
nh_wait ",eth0:$nh_mac:ok" >/dev/null; echo "nh-removed $(nh_last | sed "s/$nh_mac/MAC/") tap=$([ -e /sys/class/net/hptap1 ] && echo left || echo gone)"
echo "nh-ifaces $(virtus vm api dc1 GET /vm/config | tr ',' '\n' | sed -n 's/.*"iface_id": *"\([^"]*\)".*/\1/p' | tr '\n' ' ')"
# A disk plugged in while the VM is paused: the guest has not read the news (PCIU) when the snapshot below is
# taken, so only the hot-plug registers in the snapshot can tell the restored guest of hp3.
printf hp-disk-3 >/tmp/mg/hp-3.img; truncate -s 1M /tmp/mg/hp-3.img
virtus vm pause dc1 && virtus vm disk dc1 add hp3 /tmp/mg/hp-3.img; echo "hp-add-paused-status $?"
# A snapshot of the VM with the plugged-in disks (hp2 in slot 2, where hp1 was), restored: the same boot goes
# on with the same disks, hp2 where it was (its slot and ID come from the snapshot's configuration).
timeout 120 virtus vm snapshot --stop dc1 /tmp/mg/hp-snap >/tmp/mg/hp-snap.out 2>&1
echo "hp-snapshot-status $? $(head -c 200 /tmp/mg/hp-snap.out | tr '\n' ' ')"
timeout 60 virtus vm run -d --name dc2 --restore /tmp/mg/hp-snap >/tmp/mg/hp-restore.out 2>&1
echo "hp-restore-status $? $(head -c 200 /tmp/mg/hp-restore.out | tr '\n' ' ')"
hp_last() { log_lines dc2 | sed -n 's/^hp-list //p' | tail -n1; }
dc_last() { log_lines dc2 | sed -n 's/^dc-read \([0-9]* [a-zA-Z-]*\).*/\1/p' | tail -n1; }
hp_wait ",vdb:hp2:hp-disk-2,vdc:hp3:hp-disk-3" >/dev/null
i=0; until [ -n "$(dc_last)" ] || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.2; done
echo "hp-restored $(hp_last) $(dc_last) boots=$(virtus vm logs dc2 | grep -c 'virtus-guest: ready')"
echo "hp-restored-drives $(virtus vm api dc2 GET /vm/config | tr ',' '\n' | sed -n 's/.*"drive_id": *"\([^"]*\)".*/\1/p' | tr '\n' ' ')"
# the interface plugged in is there with its MAC (on a new hptap0: the first went with dc1's VMM; L1 gives
# both the same MAC, as a host's bridge keeps its own, so the guest's ARP entry stays right)
ip link set hptap0 address 02:00:00:00:78:01 && ip addr add 192.168.78.1/24 dev hptap0 && ip link set hptap0 up
nh_last() { log_lines dc2 | sed -n 's/^nh-list //p' | tail -n1; }
nh_wait ",eth0:$nh_mac:ok" >/dev/null; echo "nh-restored $(nh_last | sed "s/$nh_mac/MAC/") $(virtus vm api dc2 GET /network-interfaces/lan | grep -c "mac=$nh_mac")"
# the disc inserted while the VM ran is in the restored VM's drive, still locked by the guest, which reads it
cd_last() { log_lines dc2 | sed -n 's/^cd-read //p' | tail -n1; }
cd_wait cd-disc-three >/dev/null
echo "cd-restored $(cd_last) $(virtus vm cd dc2 | tr -s ' \n' ' ')"
# The same VM migrated live (its plugged-in disks and interface, its locked disc): the destination's --net
# gives the interface another tap (hptap0 is the source's until it ends); the interface keeps its ID, slot
# and MAC, and L1 moves its address to the new tap.
timeout 60 virtus vm run -d --name dc3 --incoming unix:/tmp/mg/dc.sock --net tap=hptap3 >/tmp/mg/dm-in.out 2>&1
echo "dm-incoming-status $? $(head -c 200 /tmp/mg/dm-in.out | tr '\n' ' ')"
timeout 200 virtus vm migrate dc2 unix:/tmp/mg/dc.sock >/tmp/mg/dm.out 2>/tmp/mg/dm.err
echo "dm-migrate-status $? $(tail -n 2 /tmp/mg/dm.err | tr '\n' ' ')"
ip link set hptap3 address 02:00:00:00:78:01 && ip addr add 192.168.78.1/24 dev hptap3 && ip link set hptap3 up
hp_last() { log_lines dc3 | sed -n 's/^hp-list //p' | tail -n1; }
nh_last() { log_lines dc3 | sed -n 's/^nh-list //p' | tail -n1; }
cd_last() { log_lines dc3 | sed -n 's/^cd-read //p' | tail -n1; }
# each waited for: dc3's log begins where the migration found the guest, often in the middle of a line
# (its first 'hp-list' may be the source's), and a turn's lines arrive one by one
hp_wait ",vdb:hp2:hp-disk-2,vdc:hp3:hp-disk-3" >/dev/null
nh_wait ",eth0:$nh_mac:ok" >/dev/null
cd_wait cd-disc-three >/dev/null
echo "dm-after $(hp_last) $(nh_last | sed "s/$nh_mac/MAC/") $(cd_last) boots=$(virtus vm logs dc3 | grep -c 'virtus-guest: ready')"
echo "dm-config $(virtus vm api dc3 GET /network-interfaces/lan | grep -c "mac=$nh_mac") $(virtus vm cd dc3 | tr -s ' \n' ' ')"
echo "dm-source-left $(ls /tmp/mg/vms | grep -c '^dc2$') tap=$([ -e /sys/class/net/hptap0 ] && echo left || echo gone)"
virtus vm cd dc3 eject >/dev/null 2>&1; echo "cd-restored-eject $?"
virtus vm cd dc3 eject --force; echo "cd-forced-eject $? $(virtus vm cd dc3 | head -n1 | tr -s ' ')"
timeout 30 virtus vm kill dc3 >/dev/null 2>&1
timeout 30 virtus vm kill dc2 >/dev/null 2>&1
timeout 30 virtus vm kill dc1 >/dev/null 2>&1

# Snapshot, kill, restore with the Debian kernel and every kind of snapshottable device: the guest counts
# with its uptime and 16 bytes from /dev/hwrng, and writes the count to its disk (fsync); it serves
# "sn-vsock-hello" on vsock port 5000 and holds a connection L1 made to port 5001. The snapshot is taken
# with --stop (the VMM ends), a new VMM restores it with the snapshot's devices (its vsock socket elsewhere). The
# count must go on from where it was (no reboot: no second readiness line), the uptime must neither go
# backwards nor jump over the time between, the disk and the rng keep working, the held vsock connection is
# reset (the transport-reset event) and a new one is served. A restore whose disk is read-only (another
# device than the snapshot's) is refused.
sn_cmd='(sleep 600 | { vsock listen 5001 >/dev/null 2>&1; echo sn-held-ended $?; }) & (while true; do echo sn-vsock-hello | vsock listen 5000 2>/dev/null; done) & i=0; while true; do i=$((i+1)); echo sn-count $i $(cut -d. -f1 /proc/uptime) $(head -c 16 /dev/hwrng | wc -c); echo sn-disk $i | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null; sleep 0.3; done'
dd if=/dev/zero of=/tmp/mg/sn-disk.img bs=1M count=1 2>/dev/null
timeout 120 virtus vm run -d --name sn1 --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --memory 256M \
	--rng --net user --disk /tmp/mg/sn-disk.img --vsock 3,/tmp/mg/sn1.sock \
	--cmdline "$base_cmdline virtus.init=\"run:$sn_cmd\"" >/tmp/mg/sn-run.out 2>&1
echo "sn-run-status $? $(head -c 300 /tmp/mg/sn-run.out | tr '\n' ' ')"
sleep 100 | timeout 200 virtus vm console sn1 >/tmp/mg/sn-console 2>&1 &
sn_last() { log_lines "$1" | sed -n 's/^sn-count \([0-9][0-9 ]*[0-9]\).*/\1/p' | tail -n1; }
i=0; until [ "$(sn_last sn1 | cut -d' ' -f1)" -ge 3 ] 2>/dev/null || [ $i -ge 450 ]; do i=$((i + 1)); sleep 0.2; done
sleep 200 | timeout 100 ./vsock unix-connect /tmp/mg/sn1.sock "CONNECT 5001" >/dev/null 2>/tmp/mg/sn-held.err &
sleep 2
echo "sn-held-before $(head -n1 /tmp/mg/sn-held.err | cut -d' ' -f1) $(virtus vm logs sn1 | grep -c '^sn-held-ended')"
timeout 120 virtus vm snapshot --stop sn1 /tmp/mg/snap >/tmp/mg/snap.out 2>&1
echo "sn-snapshot-status $? $(tr '\n' ' ' </tmp/mg/snap.out)"
sleep 1
echo "sn-before $(tr -d '\r' </tmp/mg/sn-console | sed -n 's/^sn-count \([0-9][0-9 ]*[0-9]\).*/\1/p' | tail -n1)"
timeout 60 virtus vm run -d --name sn3 --restore /tmp/mg/snap --disk /tmp/mg/sn-disk.img,ro \
	--vsock 3,/tmp/mg/sn3.sock >/tmp/mg/sn-bad.out 2>&1
echo "sn-readonly-disk-status $? $(ls /tmp/mg/vms | grep -c sn3) $(tr '\n' ' ' </tmp/mg/sn-bad.out)"
# at least 9 s of wall clock between the snapshot and the restore: a guest clock that jumped over them shows
sleep 8
# the other devices (rng, net, the disk) come from the snapshot
timeout 60 virtus vm run -d --name sn2 --restore /tmp/mg/snap --vsock 3,/tmp/mg/sn2.sock >/tmp/mg/sn-restore.out 2>&1
echo "sn-restore-status $? $(tr '\n' ' ' </tmp/mg/sn-restore.out)"
i=0; until [ "$(log_lines sn2 | grep -c '^sn-count')" -ge 3 ] || [ $i -ge 150 ]; do i=$((i + 1)); sleep 0.2; done
echo "sn-after $(virtus vm logs sn2 | tr -d '\r' | sed -n 's/^sn-count \([0-9][0-9 ]*[0-9]\).*/\1/p' | head -n1)"
echo "sn-after-last $(sn_last sn2)"
echo "sn-after-boots $(virtus vm logs sn2 | grep -c 'virtus-guest: ready')"
echo "sn-held-after $(virtus vm logs sn2 | tr -d '\r' | sed -n 's/^sn-held-ended //p' | head -n1)"
for i in 1 2 3 4 5; do
	timeout 10 ./vsock unix-connect /tmp/mg/sn2.sock "CONNECT 5000" </dev/null >/tmp/mg/sn-hello 2>/dev/null && break
	sleep 0.5
done
echo "sn-vsock-new $(head -n1 /tmp/mg/sn-hello)"
echo "sn-memory-kb $(du -k /tmp/mg/snap/memory | cut -f1) of $(($(stat -c %s /tmp/mg/snap/memory) / 1024))"
timeout 60 virtus vm stop -t 30 sn2; echo "sn-stop-status $?"
# the snapshot froze the disk (/tmp/mg/snap/disk0.raw); the restored guest wrote into a new qcow2 overlay
qemu-img convert -O raw /tmp/mg/sn-disk.img /tmp/mg/sn-disk.raw
echo "sn-disk-after $(head -c 32 /tmp/mg/sn-disk.raw | tr -d '\000' | sed -n 's/^sn-disk //p' | head -n1)"
echo "sn-disk-chain $(qemu-img info /tmp/mg/sn-disk.img | sed -n 's/^backing file: //p') $(qemu-img info /tmp/mg/sn-disk.img | sed -n 's/^file format: //p')"
echo "sn-left $(ls /tmp/mg/vms 2>/dev/null | wc -l)"
rm -f /tmp/mg/sn-disk.raw
# A checkpoint that covers the disk (qcow2, ext4): the guest writes A.txt and waits on vsock port 5002;
# `vm snapshot` (the VM goes on) freezes the disk; "go" makes the guest delete A and write B; the VM is
# killed. Restoring the snapshot must bring back the disk of the checkpoint with the memory of it: "check"
# makes the restored guest list its files and unmount, then L1 finds A and not B on the disk, and e2fsck
# finds it clean; the checkpoint's layer is not written by the restored VM.
mkdir -p /tmp/ck && cp base.qcow2 /tmp/ck/ck.qcow2
ck_cmd='mkdir -p /a; mount -t ext4 /dev/vda /a && echo ck-A >/a/A.txt && sync && echo ck-a-written; while true; do c=$(vsock listen 5002 </dev/null 2>/dev/null); case $c in go*) rm /a/A.txt; echo ck-B >/a/B.txt; sync; echo ck-b-written;; check*) echo ck-files $(cd /a && ls *.txt); umount /a; echo ck-umount $?;; esac; done'
ck_wait() { # ck_wait VM LINE: until the VM's log has LINE (30 s)
	i=0; until log_lines "$1" | grep -q "^$2" || [ $i -ge 150 ]; do i=$((i + 1)); sleep 0.2; done
}
ck_send() { # ck_send SOCKET WORD: to the guest's port 5002
	for i in 1 2 3 4 5; do
		echo "$2" | timeout 10 ./vsock unix-connect "$1" "CONNECT 5002" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}
timeout 120 virtus vm run -d --name ck1 --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --memory 256M \
	--disk /tmp/ck/ck.qcow2 --vsock 3,/tmp/ck/ck1.sock --cmdline "$base_cmdline virtus.init=\"run:$ck_cmd\"" >/tmp/ck/run.out 2>&1
echo "ck-run-status $? $(head -c 300 /tmp/ck/run.out | tr '\n' ' ')"
ck_wait ck1 ck-a-written
timeout 60 virtus vm snapshot ck1 /tmp/ck/snap >/tmp/ck/snap.out 2>&1
echo "ck-snapshot-status $? $(tr '\n' ' ' </tmp/ck/snap.out)"
echo "ck-snap-files $(ls /tmp/ck/snap | tr '\n' ' ')"
ck_send /tmp/ck/ck1.sock go; ck_wait ck1 ck-b-written
echo "ck-b-written $(virtus vm logs ck1 | tr -d '\r' | grep -c '^ck-b-written')"
timeout 30 virtus vm kill ck1 >/dev/null 2>&1; sleep 1
echo "ck-chain $(qemu-img info /tmp/ck/ck.qcow2 | sed -n 's/^backing file: //p')"
qemu-img convert -O raw /tmp/ck/ck.qcow2 /tmp/ck/killed.raw && e2fsck -fy /tmp/ck/killed.raw >/dev/null 2>&1
echo "ck-killed-files $(debugfs -R 'ls /' /tmp/ck/killed.raw 2>/dev/null | tr -s ' \n' '\n\n' | grep '\.txt$' | sort | tr '\n' ' ' | sed 's/ $//')"
rm -f /tmp/ck/killed.raw
echo "ck-layer-md5-before $(md5sum </tmp/ck/snap/disk0.qcow2 | cut -d' ' -f1)"
timeout 60 virtus vm run -d --name ck2 --restore /tmp/ck/snap --vsock 3,/tmp/ck/ck2.sock >/tmp/ck/restore.out 2>&1
echo "ck-restore-status $? $(tr '\n' ' ' </tmp/ck/restore.out)"
ck_send /tmp/ck/ck2.sock check; ck_wait ck2 ck-umount
echo "ck-guest $(log_lines ck2 | sed -n 's/^ck-files //p' | tail -n1) umount $(log_lines ck2 | sed -n 's/^ck-umount //p' | tail -n1)"
timeout 30 virtus vm kill ck2 >/dev/null 2>&1; sleep 1
qemu-img convert -O raw /tmp/ck/ck.qcow2 /tmp/ck/restored.raw
echo "ck-fsck-status $(e2fsck -fn /tmp/ck/restored.raw >/tmp/ck/fsck.out 2>&1; echo $?)"
head -n 5 /tmp/ck/fsck.out
echo "ck-disk-files $(debugfs -R 'ls /' /tmp/ck/restored.raw 2>/dev/null | tr -s ' \n' '\n\n' | grep '\.txt$' | sort | tr '\n' ' ' | sed 's/ $//')"
echo "ck-disk-a $(debugfs -R 'cat /A.txt' /tmp/ck/restored.raw 2>/dev/null)"
echo "ck-layer-md5-after $(md5sum </tmp/ck/snap/disk0.qcow2 | cut -d' ' -f1)"
echo "ck-left $(ls /tmp/mg/vms 2>/dev/null | wc -l) $(ls /tmp/ck | grep -c -e checkpoint- -e restore-)"
rm -rf /tmp/ck
# Live migration between two virtus processes with the Debian kernel and every kind of migratable device:
# the guest counts with 16 bytes from /dev/hwrng, writes the count to its disk, keeps 8 MiB of random bytes
# whose md5 it prints each turn (memory must arrive intact) and dirties 4 MiB more each turn (so the pre-copy
# has pages to chase); it serves vsock port 5000 and holds an L1 connection on 5001. The destination waits
# with --incoming and only its own vsock socket (the other devices come with the stream).
mi_cmd='head -c 8388608 /dev/urandom >/tmp/keep; (sleep 600 | { vsock listen 5001 >/dev/null 2>&1; echo mi-held-ended $?; }) & (while true; do echo mi-vsock-hello | vsock listen 5000 2>/dev/null; done) & i=0; while true; do i=$((i+1)); echo mi-count $i $(head -c 16 /dev/hwrng | wc -c) $(md5sum </tmp/keep | cut -c1-8); echo mi-disk $i | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null; head -c 4194304 /dev/urandom >/tmp/dirty; sleep 0.3; done'
dd if=/dev/zero of=/tmp/mg/mi-disk.img bs=1M count=1 2>/dev/null
timeout 120 virtus vm run -d --name mi1 --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --memory 256M \
	--rng --net user --balloon 0 --disk /tmp/mg/mi-disk.img --vsock 3,/tmp/mg/mi1.sock \
	--cmdline "$base_cmdline virtus.init=\"run:$mi_cmd\"" >/tmp/mg/mi-run.out 2>&1
echo "mi-run-status $? $(head -c 300 /tmp/mg/mi-run.out | tr '\n' ' ')"
mi_last() { log_lines "$1" | sed -n 's/^mi-count \([0-9a-f][0-9a-f ]*[0-9a-f]\).*/\1/p' | tail -n1; }
i=0; until [ "$(mi_last mi1 | cut -d' ' -f1)" -ge 3 ] 2>/dev/null || [ $i -ge 450 ]; do i=$((i + 1)); sleep 0.2; done
echo "mi-before $(mi_last mi1)"
virtus vm balloon mi1 64M; balloon_wait mi1 64; echo "mi-balloon-before $(balloon_field mi1 actual_mib)"
sleep 200 | timeout 100 ./vsock unix-connect /tmp/mg/mi1.sock "CONNECT 5001" >/dev/null 2>/tmp/mg/mi-held.err &
sleep 1
timeout 60 virtus vm run -d --name mi2 --incoming unix:/tmp/mg/mi.sock --vsock 3,/tmp/mg/mi2.sock >/tmp/mg/mi-in.out 2>&1
echo "mi-incoming-status $? $(tr '\n' ' ' </tmp/mg/mi-in.out)"
timeout 200 virtus vm migrate mi1 unix:/tmp/mg/mi.sock >/tmp/mg/mi.out 2>/tmp/mg/mi.err
echo "mi-migrate-status $? $(tr '\n' ' ' </tmp/mg/mi.out) $(tail -n 3 /tmp/mg/mi.err | tr '\n' ' ')"
echo "mi-migrate-line $(sed -n 's/.* in \([0-9]*\) ms (paused \([0-9]*\) ms; \([0-9.]*\) MiB sent in \([0-9]*\) passes).*/\1 \2 \3 \4/p' /tmp/mg/mi.out)"
sleep 1
echo "mi-source-left $(ls /tmp/mg/vms | grep -c '^mi1$')"
i=0; until [ "$(log_lines mi2 | grep -c '^mi-count')" -ge 3 ] || [ $i -ge 150 ]; do i=$((i + 1)); sleep 0.2; done
echo "mi-after $(virtus vm logs mi2 | tr -d '\r' | sed -n 's/^mi-count \([0-9a-f][0-9a-f ]*[0-9a-f]\).*/\1/p' | head -n1)"
echo "mi-after-last $(mi_last mi2)"
echo "mi-after-boots $(virtus vm logs mi2 | grep -c 'virtus-guest: ready')"
echo "mi-balloon-after $(balloon_field mi2 target_mib) $(balloon_field mi2 actual_mib)"
echo "mi-held-after $(virtus vm logs mi2 | tr -d '\r' | sed -n 's/^mi-held-ended //p' | head -n1)"
for i in 1 2 3 4 5; do
	timeout 10 ./vsock unix-connect /tmp/mg/mi2.sock "CONNECT 5000" </dev/null >/tmp/mg/mi-hello 2>/dev/null && break
	sleep 0.5
done
echo "mi-vsock-new $(head -n1 /tmp/mg/mi-hello)"
timeout 60 virtus vm stop -t 30 mi2; echo "mi-stop-status $?"
echo "mi-disk-after $(head -c 32 /tmp/mg/mi-disk.img | tr -d '\000' | sed -n 's/^mi-disk //p' | head -n1)"
echo "mi-left $(ls /tmp/mg/vms 2>/dev/null | wc -l)"
exit 0
