# Part "network" of the nested suite's job (tests/nested/suite-job.sh sources it in L1 with its helpers):
# virtio-net with user networking and on a tap, virtio-vsock.
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
