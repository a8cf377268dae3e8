# Part "snapshot" of the nested suite's job (tests/nested/suite-job.sh sources it in L1 with its helpers):
# Snapshot and restore, a checkpoint that covers a qcow2 disk, live migration.
# Managed VMs live in /tmp/mg/vms (the other parts' VMs in the default place: a VMM that a test
# crashes on purpose leaves its directory).
mkdir -p /tmp/mg
# vsock_hello SOCKET OUT: what the guest serves on vsock port 5000, into OUT (five tries: it may be listening
# again only a moment later)
vsock_hello() {
	for i in 1 2 3 4 5; do
		timeout 10 ./vsock unix-connect "$1" "CONNECT 5000" </dev/null >"$2" 2>/dev/null && break
		sleep 0.5
	done
}
export VIRTUS_VM_RUN_DIR=/tmp/mg/vms
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
vsock_hello /tmp/mg/sn2.sock /tmp/mg/sn-hello
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
vsock_hello /tmp/mg/mi2.sock /tmp/mg/mi-hello
echo "mi-vsock-new $(head -n1 /tmp/mg/mi-hello)"
timeout 60 virtus vm stop -t 30 mi2; echo "mi-stop-status $?"
echo "mi-disk-after $(head -c 32 /tmp/mg/mi-disk.img | tr -d '\000' | sed -n 's/^mi-disk //p' | head -n1)"
echo "mi-left $(ls /tmp/mg/vms 2>/dev/null | wc -l)"
