# Part "managed" of the nested suite's job (tests/nested/suite-job.sh sources it in L1 with its helpers):
# Managed VMs: pause and resume, the balloon, vm stop; disks, NICs and CDs changed while the guest runs,
# Managed VMs live in /tmp/mg/vms (the other parts' VMs in the default place: a VMM that a test
# crashes on purpose leaves its directory).
mkdir -p /tmp/mg
export VIRTUS_VM_RUN_DIR=/tmp/mg/vms
# a snapshot of that VM restored and migrated live.
# A managed VM (virtus vm run -d, pause, resume, stop) with the Debian kernel. The guest counts: each turn
# writes "mg-count N" at the start of its disk, then prints it. While paused the count must not move; after
# resume it goes on (no reboot: the same boot keeps counting); `vm stop` presses the ACPI power button, the
# guest's init shuts down (kills the counter, syncs, powers off) and the disk holds the last count printed.
# A console client records the output to the end (the VM's directory, with its log, goes when it ends).
# The VM has a balloon with nothing asked (--balloon 0); its guest first fills and frees 150 MiB of RAM, so
# that the VMM holds it, for the balloon's checks after resume.
mg_cmd='dd if=/dev/zero of=/tmp/fill bs=1M count=150 2>/dev/null; rm -f /tmp/fill; i=0; while true; do i=$((i+1)); echo mg-count $i | dd of=/dev/vda conv=notrunc 2>/dev/null; echo mg-count $i; sleep 0.3; done'
dd if=/dev/zero of=/tmp/mg/disk.img bs=1M count=1 2>/dev/null
timeout 120 virtus vm run -d --name mg1 --kernel guest/vmlinux --initrd guest/initramfs.cpio.gz --memory 256M \
	--balloon 0,stats=1 --disk /tmp/mg/disk.img --cmdline "$base_cmdline virtus.init=\"run:$mg_cmd\"" >/tmp/mg/run.out 2>&1
echo "mg-run-status $? $(head -c 200 /tmp/mg/run.out | tr '\n' ' ')"
sleep 100 | timeout 200 virtus vm console mg1 >/tmp/mg/console 2>&1 &
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
