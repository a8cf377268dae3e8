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
	--net user,hostfwd=tcp:8082-:80,mac=52:54:00:12:34:56 --cmdline "$base_cmdline virtus.init=\"run:$net_cmd\""
run_limit=
kill $fetch_pid 2>/dev/null # done or hopeless once the guest is gone; the suite has a time budget
exit 0
