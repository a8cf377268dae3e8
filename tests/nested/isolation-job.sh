# Job run inside the nested bed's L1 by tests/suite-isolation: VM-isolated containers (virtus run
# --isolation=vm) from a busybox image. Prints "iso NAME VALUE" lines the suite checks; every virtus run has
# a time limit, so a hung guest costs one check, not the suite.
export VIRTUS_ROOT=/var/lib/virtus
limit=${ISO_LIMIT:-120}
say() { echo "iso $*"; }
mkdir -p "$VIRTUS_ROOT" && mount -t tmpfs tmpfs "$VIRTUS_ROOT"

leftovers() { # what a finished container must not leave: VM socket dirs, the VMM's own VM directory
	# (virtus vm ls), helper processes, mounts
	vmdirs=$(( $(ls /run/virtus-vm 2>/dev/null | wc -l) + $(ls /run/virtus-vms 2>/dev/null | wc -l) ))
	procs=$(ps -o args | grep -c -e '^/usr/lib/qemu/virtiofsd' -e '^virtus vm run' -e '^virtiofsd')
	mounts=$(grep -c -e "$VIRTUS_ROOT/containers" -e " /run/virtus-stores/" /proc/mounts) # (rootfs: in the run root)
	echo "$vmdirs dirs, $procs processes, $mounts mounts"
}

wait_log() { # wait_log NAME TEXT: until the container's log has TEXT (60 s)
	i=0
	while [ $i -lt 600 ]; do
		virtus logs "$1" 2>/dev/null | grep -q "$2" && return 0
		i=$((i + 1)); sleep 0.1
	done
	return 1
}

# A small image: busybox, a passwd with an unprivileged user.
img=/tmp/img
mkdir -p $img/bin $img/etc $img/tmp $img/proc $img/sys $img/dev $img/root && chmod 1777 $img/tmp
cp /bin/busybox $img/bin/busybox
for a in sh echo cat ls touch id pwd env nproc awk grep sleep ip uname mount trap true tty dd tr httpd; do ln -sf busybox $img/bin/$a; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >$img/etc/passwd
printf 'root:x:0:\nnogroup:x:65534:\n' >$img/etc/group
(cd $img && tar -cf /tmp/img.tar .)
virtus image import /tmp/img.tar bb:1 >/dev/null 2>/tmp/import.err
say import-status $?
sed 's/^/iso import-err /' /tmp/import.err | head -n 3

# 1. Foreground: output, exit status, the VM's own kernel (vCPUs, RAM), stdin, -v, -e, -w, -u.
mkdir -p /tmp/vol && echo from-host >/tmp/vol/in
echo piped-in | timeout $limit virtus run -i --rm --isolation=vm --network none --cpus 2 --memory 64M \
	-v /tmp/vol:/data -e FOO=bar-env -w /data bb:1 \
	sh -c 'echo hello-vm; echo nproc $(nproc); echo memtotal $(awk "/MemTotal/ {print \$2}" /proc/meminfo);
	       echo stdin $(cat); echo vol $(cat in); echo env $FOO; echo cwd $(pwd); echo from-guest >out;
	       echo pid1 $(cat /proc/1/comm); exit 7' >/tmp/run1.out 2>/tmp/run1.err
say run1-status $?
sed 's/^/iso run1-out /' /tmp/run1.out
sed 's/^/iso run1-err /' /tmp/run1.err | head -n 5
say vol-back "$(cat /tmp/vol/out 2>/dev/null)"
say run1-left "$(leftovers)"
say run1-ctrs "$(virtus ps -a -q | wc -l)"
say host-nproc "$(nproc)"

# 2. Detached: ps, logs, diff, a signal through the agent, rm; user networking.
timeout $limit virtus run -d --isolation=vm --network slirp --name iso1 -u nobody bb:1 \
	sh -c 'trap "echo got-term; exit 42" TERM; echo started uid=$(id -u);
	       ip -4 addr show eth0 | grep -o "inet [0-9./]*"; touch /tmp/newfile; while true; do sleep 1; done' \
	>/tmp/run2.id 2>/tmp/run2.err
say run2-status $?
sed 's/^/iso run2-err /' /tmp/run2.err | head -n 5
wait_log iso1 started; say run2-started $?
wait_log iso1 inet
virtus logs iso1 | sed 's/^/iso run2-log /'
say run2-ps "$(virtus ps | grep iso1 | grep -o -w -e vm -e container)"
say run2-vmls "$(virtus vm ls | awk '$1 ~ /^ctr-/ { print $2 }')"
say run2-diff "$(virtus diff iso1 | grep newfile)"
# virtus exec in the VM container (through its monitor and the agent): output, stderr and status, the
# container's user by default, then -i, -u, -e, -w, -t, and a missing program.
timeout 60 virtus exec iso1 sh -c 'echo exec-out uid=$(id -u) $(ls /tmp/newfile); echo exec-err >&2; exit 5' \
	>/tmp/exec1.out 2>/tmp/exec1.err
say exec1 "$? $(cat /tmp/exec1.out) / $(cat /tmp/exec1.err)"
echo exec-in | timeout 60 virtus exec -i -u root -e X=y -w /tmp iso1 sh -c 'echo $(cat) $X $(pwd) uid=$(id -u)' \
	>/tmp/exec2.out 2>&1
say exec2 "$? $(cat /tmp/exec2.out)"
timeout 60 virtus exec -t iso1 tty </dev/null >/tmp/exec3.out 2>&1
say exec3 "$? $(tr -d '\r' </tmp/exec3.out)"
timeout 60 virtus exec iso1 /nonexistent >/dev/null 2>/tmp/exec4.err
say exec4 "$? $(head -n1 /tmp/exec4.err)"
virtus kill -s TERM iso1; say run2-kill-status $?
i=0; while [ $i -lt 300 ] && virtus ps | grep -q iso1; do i=$((i + 1)); sleep 0.1; done
say run2-exit "$(virtus inspect iso1 | grep -o '"ExitCode": [0-9]*' | head -n1)"
wait_log iso1 got-term; say run2-got-term $?
virtus rm iso1; say run2-rm-status $?
say run2-left "$(leftovers)"

# 2b. The bridge network (virtus0, a tap, nftables DNAT for -p), as a container's: busybox httpd in the VM
# serves a file with a unique string, fetched from L1 through the published port (at 127.0.0.1 and at L1's
# own address on the bridge, virtus0's) and at the container's address; its tap on virtus0 and its rules
# while it runs, none of them (nor the VM's processes and mounts) after rm -f. (nft: the suite's copy)
ip link set lo up # (L1's init leaves it down: no 127.0.0.1)
net_t0=$(date +%s)
timeout $limit virtus run -d --isolation=vm --network bridge -p 8088:80 --name isonet bb:1 \
	sh -c 'echo vm-bridge-6021 >/tmp/f.txt; echo serving; exec httpd -f -p 80 -h /tmp' >/dev/null 2>/tmp/run8.err
say net-status $?
sed 's/^/iso net-err /' /tmp/run8.err | head -n 5
wait_log isonet serving; say net-up $?
net_id=$(virtus inspect isonet | sed -n 's/.*"Id": "\([0-9a-f]*\)".*/\1/p' | head -n1)
net_ip=$(virtus inspect isonet | sed -n 's/.*"IPAddress": "\([0-9.]*\)".*/\1/p' | head -n1)
net_gw=$(ip -4 -o addr show dev virtus0 2>/dev/null | awk '{ sub("/.*", "", $4); print $4 }')
fetch() { # fetch HOST:PORT: the file, or "none" after 30 tries (timeout, as busybox 1.35 wget -T segfaults)
	n=0
	while [ $n -lt 30 ]; do
		timeout 5 wget -q -O /tmp/fetched "http://$1/f.txt" 2>/dev/null && { cat /tmp/fetched; return; }
		n=$((n + 1)); sleep 0.5
	done
	echo none
}
say net-ctr "${net_ip:-no-address} $(fetch "${net_ip:-none}:80")"
say net-lo "$(fetch 127.0.0.1:8088)"
say net-gw "${net_gw:-no-virtus0} $(fetch "${net_gw:-none}:8088")"
net_rules() { nft list table ip virtus 2>/dev/null | grep -e "virtus:${net_id:-none}" -e "${net_ip:-none}[^0-9]" | grep -c .; }
net_taps() { # the bridge's ports that are taps, and every vt* link left
	for t in $(ls /sys/class/net/virtus0/brif 2>/dev/null); do [ -e /sys/class/net/$t/tun_flags ] && echo tap; done | grep -c .
	ls /sys/class/net | grep -c '^vt'
}
say net-running "$(net_rules) rules, $(net_taps | tr '\n' ' ')taps/links, dnat $(nft list table ip virtus 2>/dev/null | grep -c "dport 8088 dnat to ${net_ip:-none}:80 ")"
virtus rm -f isonet >/dev/null; say net-rm $?
say net-left "$(net_rules) rules, $(net_taps | tr '\n' ' ')taps/links, $(leftovers)"
say net-secs $(( $(date +%s) - net_t0 ))

# 3. The VMM killed from the host: the container is reported exited (137), everything released.
timeout $limit virtus run -d --isolation=vm --network none --name iso2 bb:1 sh -c 'echo up; sleep 1000' \
	>/dev/null 2>/tmp/run3.err
say run3-status $?
wait_log iso2 up; say run3-up $?
vmm=$(virtus inspect iso2 | sed -n 's/.*"Pid": \([0-9]*\).*/\1/p' | head -n1)
say run3-vmm-comm "$(cat /proc/$vmm/comm 2>/dev/null)"
kill -9 "$vmm"
i=0; while [ $i -lt 300 ] && virtus ps | grep -q iso2; do i=$((i + 1)); sleep 0.1; done
say run3-exit "$(virtus inspect iso2 | grep -o '"ExitCode": [0-9]*' | head -n1)"
virtus rm iso2
say run3-left "$(leftovers)"

# 3b. The agent's heartbeat (VIRTUS_AGENT_TIMEOUT=10): a quiet container lives on (pings answered), a paused
# one too; a VMM that stops answering (SIGSTOP from outside virtus: as good as hung) is ended after 10 s:
# exited 255, said in vmm.log, nothing left behind.
VIRTUS_AGENT_TIMEOUT=10 timeout $limit virtus run -d --isolation=vm --network none --name iso3 bb:1 \
	sh -c 'echo up; sleep 1000' >/dev/null 2>/tmp/run6.err
say hb-status $?
wait_log iso3 up; say hb-up $?
sleep 14; say hb-quiet "$(virtus ps | grep -c iso3)"
virtus pause iso3; sleep 14; virtus unpause iso3; sleep 1
say hb-paused "$(virtus ps | grep iso3 | grep -c Up)"
vmm=$(virtus inspect iso3 | sed -n 's/.*"Pid": \([0-9]*\).*/\1/p' | head -n1)
id=$(virtus inspect iso3 | sed -n 's/.*"Id": "\([0-9a-f]*\)".*/\1/p' | head -n1)
kill -STOP "$vmm"; t0=$(date +%s)
i=0; while [ $i -lt 400 ] && virtus ps | grep -q iso3; do i=$((i + 1)); sleep 0.1; done
say hb-secs $(( $(date +%s) - t0 ))
say hb-exit "$(virtus inspect iso3 | grep -o '"ExitCode": [0-9]*' | head -n1)"
say hb-log "$(grep -o "agent did not answer for 10 s" "$VIRTUS_ROOT/containers/$id/vmm.log")"
virtus rm iso3
say hb-left "$(leftovers)"

# 3c. Foreground output nobody reads (a fifo held open, not read): the monitor goes on serving (an exec
# answers), init waits for the reader (the agent stops reading it), and every byte arrives once it reads.
mkfifo /tmp/slow.fifo
exec 7<>/tmp/slow.fifo
timeout $limit virtus run --isolation=vm --network none --name iso4 bb:1 \
	sh -c 'dd if=/dev/zero bs=10000 count=300 2>/dev/null | tr "\0" x; echo; echo end-of-output; sleep 1000' \
	>/tmp/slow.fifo 2>/tmp/run7.err &
run7=$!
wait_log iso4 xxxx; say slow-up $?
sleep 3
timeout 30 virtus exec iso4 echo exec-while-unread >/tmp/exec5.out 2>&1
say slow-exec "$? $(cat /tmp/exec5.out)"
say slow-held "$(virtus logs iso4 | grep -c end-of-output)"
cat <&7 >/tmp/slow.out & reader=$!
i=0; while [ $i -lt 600 ] && ! grep -q end-of-output /tmp/slow.out; do i=$((i + 1)); sleep 0.1; done
say slow-bytes "$(tr -cd x </tmp/slow.out | wc -c) $(grep -c end-of-output /tmp/slow.out)"
virtus rm -f iso4 >/dev/null
wait $run7
kill $reader; exec 7<&-
sed 's/^/iso run7-err /' /tmp/run7.err | head -n 3
say slow-left "$(leftovers)"

# 4. Bad input: a command that does not exist in the image (127), and --network host (refused, 125).
timeout $limit virtus run --rm --isolation=vm --network none bb:1 /nonexistent >/dev/null 2>/tmp/run4.err
say run4-status $?
sed 's/^/iso run4-err /' /tmp/run4.err | head -n 3
virtus run --rm --isolation=vm --network host bb:1 true 2>/tmp/run5.err
say run5-status $?
sed 's/^/iso run5-err /' /tmp/run5.err | head -n 3

# 5. Through the OCI runtime: a bundle whose config.json has the annotation io.virtus.isolation=vm. `run` in
# the foreground (exit status, output, stdin, the VM's size from linux.resources, a terminal), then the
# create/start/state/exec/pause/resume/kill/delete cycle that podman and containerd drive, and delete -f.
# (-k: the runtime's exec and run forward SIGTERM to the container instead of ending)
rt() { timeout -k 10 $limit /opt/virtus/virtus-runtime --root /run/oci-rt "$@"; }
oci_config() { # oci_config TERMINAL ARGS-JSON: config.json of the bundle /tmp/oci
	cat >/tmp/oci/config.json <<JSON
{"ociVersion": "1.0.2",
 "process": {"terminal": $1, "user": {"uid": 0, "gid": 0}, "args": $2, "cwd": "/",
	     "env": ["PATH=/bin", "FOO=oci-env"]},
 "root": {"path": "rootfs"}, "hostname": "ocivm",
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
	    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
	    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666"]}],
 "annotations": {"io.virtus.isolation": "vm"},
 "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}],
	   "resources": {"memory": {"limit": 67108864}, "cpu": {"quota": 100000, "period": 100000}}}}
JSON
}
oci_left() { echo "$(leftovers) $(ls /run/oci-rt 2>/dev/null | wc -l) states"; }
# (the runtime puts every container in a cgroup; L1 mounts no cgroup file system of its own)
grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || { mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup; }
say oci-cgroup2 $?
mkdir -p /tmp/oci && cp -a $img /tmp/oci/rootfs
oci_config false '["sh", "-c", "echo oci-hello $FOO $(hostname); echo nproc $(nproc); echo memtotal $(awk \"/MemTotal/ {print \\$2}\" /proc/meminfo); echo stdin $(cat); exit 7"]'
echo oci-piped | rt run --bundle /tmp/oci oci1 >/tmp/oci1.out 2>/tmp/oci1.err
say oci1-status $?
sed 's/^/iso oci1-out /' /tmp/oci1.out
sed 's/^/iso oci1-err /' /tmp/oci1.err | head -n 5
say oci1-left "$(oci_left)"
oci_config true '["sh", "-c", "tty; exit 3"]'
rt run --bundle /tmp/oci oci-tty </dev/null >/tmp/oci-tty.out 2>&1
say oci-tty "$? $(tr -d '\r' </tmp/oci-tty.out | tr '\n' ' ')"
oci_config false '["sh", "-c", "trap \"echo oci-term; exit 43\" TERM; echo ready; while true; do sleep 1; done"]'
rt create --bundle /tmp/oci --pid-file /tmp/oci2.pid oci2 </dev/null >/tmp/oci2.out 2>/tmp/oci2.err
say oci2-create "$? $(head -n 2 /tmp/oci2.err | tr '\n' ' ')"
state() { rt state "$1" 2>/dev/null | grep -o '"status": *"[a-z]*"' | cut -d'"' -f4; }
pid=$(cat /tmp/oci2.pid 2>/dev/null)
say oci2-created "$(state oci2) $(rt state oci2 | grep -c "\"pid\": *${pid:-x},") $(cat /proc/${pid:-x}/comm 2>/dev/null)"
rt start oci2; say oci2-start "$? $(state oci2)"
i=0; while [ $i -lt 300 ] && ! grep -q ready /tmp/oci2.out; do i=$((i + 1)); sleep 0.1; done
say oci2-ready "$(grep -c ready /tmp/oci2.out)"
rt exec oci2 sh -c 'echo exec-out $FOO $(cat /proc/1/comm); echo exec-err >&2; exit 5' </dev/null >/tmp/oci2-exec.out 2>&1
say oci2-exec "$? $(cat /tmp/oci2-exec.out | tr '\n' ' ')"
say oci2-ps "$(rt ps oci2 | grep -c -e virtiofsd -e virtus)"
rt pause oci2; say oci2-pause "$? $(state oci2)"
sleep 2
rt resume oci2; say oci2-resume "$? $(state oci2)"
rt exec oci2 echo after-resume </dev/null >/tmp/oci2-exec2.out 2>&1
say oci2-exec2 "$? $(cat /tmp/oci2-exec2.out)"
rt kill oci2 TERM; say oci2-kill $?
i=0; while [ $i -lt 300 ] && [ "$(state oci2)" != stopped ]; do i=$((i + 1)); sleep 0.1; done
say oci2-stopped "$(state oci2) $(grep -c oci-term /tmp/oci2.out)"
rt delete oci2; say oci2-delete $?
say oci2-left "$(oci_left)"
rt create --bundle /tmp/oci oci3 </dev/null >/dev/null 2>&1 && rt start oci3
rt delete oci3 2>/dev/null; say oci3-delete-running $?
rt delete -f oci3; say oci3-delete-force $?
say oci3-left "$(oci_left)"
# The network namespace a caller prepared (podman's: a veth with the container's address, made here by
# veth_netns since L1 has no iproute2), carried into the VM: the container fetches a file from L1's httpd on the
# veth's peer, with the veth's address and MAC; the run's end takes the tap and the redirects away.
unshare -n sleep 1000 &
hold=$!
i=0; while [ $i -lt 50 ] && [ "$(readlink /proc/$hold/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do i=$((i + 1)); sleep 0.1; done
/opt/virtus/veth_netns $hold vh-oci 10.77.0.1 10.77.0.2 24 2>/tmp/ocinet-veth.err
say ocinet-veth "$? $(head -n 1 /tmp/ocinet-veth.err)"
mkdir -p /tmp/www-oci && echo oci-net-31337 >/tmp/www-oci/f.txt && httpd -p 10.77.0.1:8090 -h /tmp/www-oci
oci_config false '["sh", "-c", "echo fetched $(busybox wget -q -O - http://10.77.0.1:8090/f.txt); echo addr $(ip -4 -o addr show dev eth0 | awk \"{print \\$4}\"); echo mac $(ip -o link show dev eth0 | grep -o \"link/ether [0-9a-f:]*\")"]'
sed -i "s|{\"type\": \"network\"}|{\"type\": \"network\", \"path\": \"/proc/$hold/ns/net\"}|" /tmp/oci/config.json
rt run --bundle /tmp/oci ocinet </dev/null >/tmp/ocinet.out 2>/tmp/ocinet.err
say ocinet-status $?
sed 's/^/iso ocinet-out /' /tmp/ocinet.out
sed 's/^/iso ocinet-err /' /tmp/ocinet.err | head -n 5
say ocinet-l1-mac "$(nsenter -t $hold -n ip -o link show dev eth0 | grep -o 'link/ether [0-9a-f:]*')"
say ocinet-left "$(nsenter -t $hold -n ip -o link | grep -c '^[0-9]*: virtus-vm0[:@]') $(nsenter -t $hold -n tc qdisc show | grep -c ingress) $(oci_left)"
# the same namespace, the shim killed (SIGKILL): delete takes the tap and the redirect away all the same.
# (The taps are counted by their own name: ip names eth0's peer, in L1, by its index looked up here, so a
# line "eth0@virtus-vm0" appears when that index is the tap's.)
oci_config false '["sh", "-c", "echo up; sleep 1000"]'
sed -i "s|{\"type\": \"network\"}|{\"type\": \"network\", \"path\": \"/proc/$hold/ns/net\"}|" /tmp/oci/config.json
rt create --bundle /tmp/oci --pid-file /tmp/ocinetk.pid ocinetk </dev/null >/dev/null 2>/tmp/ocinetk.err && rt start ocinetk
say ocinetk-start "$? $(nsenter -t $hold -n ip -o link | grep -c '^[0-9]*: virtus-vm0[:@]') $(head -n 1 /tmp/ocinetk.err)"
kill -9 "$(cat /tmp/ocinetk.pid)"
i=0; while [ $i -lt 100 ] && [ "$(state ocinetk)" != stopped ]; do i=$((i + 1)); sleep 0.1; done
rt delete -f ocinetk; say ocinetk-delete $?
say ocinetk-left "$(nsenter -t $hold -n ip -o link | grep -c '^[0-9]*: virtus-vm0[:@]') $(nsenter -t $hold -n tc qdisc show | grep -c ingress) $(oci_left)"
kill $hold

# podman (with conmon) driving the runtime unchanged, the annotation asking for the VM (Debian's podman, copied
# into L1 by the suite): run with its exit status, then run -d, logs, exec, stop and rm of a detached one.
mkdir -p /dev/shm && { grep -q ' /dev/shm ' /proc/mounts || mount -t tmpfs shm /dev/shm; } # (podman's locks)
mkdir -p /etc/containers /tmp/pm-tmp /var/tmp
echo '{"default": [{"type": "insecureAcceptAnything"}]}' >/etc/containers/policy.json
pm() { HOME=/root timeout -k 10 $limit podman --root /var/lib/pm --runroot /run/pm --tmpdir /tmp/pm-tmp \
	--events-backend=file --cgroup-manager=cgroupfs --conmon /usr/bin/conmon --storage-driver overlay \
	--runtime /opt/virtus/virtus-runtime "$@"; }
say pm-l1-memtotal "$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
(cd $img && tar -cf /tmp/pm-img.tar .) && pm import /tmp/pm-img.tar localhost/bb >/dev/null 2>/tmp/pm-import.err
say pm-import "$?"
sed 's/^/iso pm-import-err /' /tmp/pm-import.err | tail -n 3
VM='--annotation io.virtus.isolation=vm'
pm run --rm --network none $VM localhost/bb sh -c 'echo pm-hello memtotal $(awk "/MemTotal/ {print \$2}" /proc/meminfo); exit 7' \
	</dev/null >/tmp/pm-run.out 2>/tmp/pm-run.err
say pm-run-status $?
sed 's/^/iso pm-run-out /' /tmp/pm-run.out
sed 's/^/iso pm-run-err /' /tmp/pm-run.err | head -n 5
pm run -d --name pmd --network none $VM localhost/bb sh -c 'echo pm-up; sleep 1000' </dev/null >/dev/null 2>/tmp/pm-d.err
say pm-d "$? $(head -n 1 /tmp/pm-d.err)"
i=0; while [ $i -lt 300 ] && ! pm logs pmd 2>/dev/null | grep -q pm-up; do i=$((i + 1)); sleep 0.1; done
say pm-logs "$(pm logs pmd 2>&1 | tr -d '\r' | head -n 1)"
say pm-ps "$(pm ps --format '{{.Names}} {{.Status}}' 2>&1 | grep -c '^pmd Up')"
pm exec pmd sh -c 'echo exec-ok memtotal $(awk "/MemTotal/ {print \$2}" /proc/meminfo); exit 4' </dev/null >/tmp/pm-exec.out 2>&1
say pm-exec "$(tr -d '\r' </tmp/pm-exec.out | tr '\n' ' ')$?"
pm stop -t 2 pmd >/dev/null 2>&1; say pm-stop "$? $(pm inspect --format '{{.State.Status}}' pmd 2>&1)"
pm rm pmd >/dev/null 2>&1; say pm-rm $?
say pm-left "$(leftovers) $(pm ps -a -q | wc -l)"
pm rmi -a -f >/dev/null 2>&1

# containerd's runc v2 shim driving the runtime (ctr run --runc-binary), the annotation asking for the VM; the
# image is the OCI archive the suite made (/work/bb.oci.tar), and its config (/work/ctd.toml).
mkdir -p /var/lib/ctd /run/ctd && mount -t tmpfs tmpfs /var/lib/ctd
containerd --config /work/ctd.toml >/tmp/ctd.log 2>&1 &
ctd=$!
ctr_() { timeout -k 10 $limit ctr --address /run/ctd/sock --namespace vt "$@"; }
i=0; while [ $i -lt 300 ] && ! ctr_ version >/dev/null 2>&1; do i=$((i + 1)); sleep 0.1; done
ctr_ images import /work/bb.oci.tar >/tmp/ctd-import.out 2>&1
say ctd-import "$? $(ctr_ images ls -q 2>&1 | head -n 1)"
CVM='--runc-binary /opt/virtus/virtus-runtime --annotation io.virtus.isolation=vm'
ctr_ run --rm $CVM localhost/vt-bb:latest c1 sh -c 'echo ctd-hello memtotal $(awk "/MemTotal/ {print \$2}" /proc/meminfo); exit 7' \
	</dev/null >/tmp/ctd-run.out 2>&1
say ctd-run-status $?
sed 's/^/iso ctd-run-out /' /tmp/ctd-run.out | head -n 5
ctr_ run -d $CVM localhost/vt-bb:latest c2 sh -c 'echo up; sleep 1000' </dev/null >/dev/null 2>/tmp/ctd-d.err
say ctd-d "$? $(head -n 1 /tmp/ctd-d.err)"
task_status() { ctr_ task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
ctr_ task exec --exec-id e1 c2 sh -c 'echo exec-ok memtotal $(awk "/MemTotal/ {print \$2}" /proc/meminfo); exit 4' \
	</dev/null >/tmp/ctd-exec.out 2>&1
say ctd-exec "$(tr -d '\r' </tmp/ctd-exec.out | tr '\n' ' ')$? $(task_status c2)"
ctr_ task kill -s SIGKILL c2
i=0; while [ $i -lt 300 ] && [ "$(task_status c2)" != STOPPED ]; do i=$((i + 1)); sleep 0.1; done
say ctd-kill "$(task_status c2)"
ctr_ task delete c2 >/dev/null 2>&1; ctr_ containers rm c2 >/dev/null 2>&1
say ctd-left "$(leftovers) $(ctr_ task ls -q | wc -l) $(ctr_ containers ls -q | wc -l)"
kill $ctd; wait $ctd 2>/dev/null

say final-left "$(leftovers)"
say final-ctrs "$(virtus ps -a -q | wc -l)"
