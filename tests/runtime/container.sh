#!/usr/bin/env bash
# What the container sees: capabilities, hostname, user namespace maps, rlimits, masked and read-only
# paths, mounts, sysctls, user/umask/cwd/env, no_new_privs, oom_score_adj, --no-pivot, a console pty,
# and mount destinations that try to escape through symlinks.
. "$(dirname "$0")/lib.bash"
require_root
B=$WORK/bundle
make_bundle "$B" || { echo "not ok 1 - make bundle"; exit 1; }

# in_container BUNDLE CMD: run sh -c CMD in a fresh container and print its output
in_container() {
	local b=$1 id=t$RANDOM
	set_args "$b" sh -c "$2"
	rt run --bundle "$b" "$id" 2>&1 </dev/null
}

out=$(in_container "$B" 'grep -E "^Cap(Eff|Bnd|Prm|Amb|Inh)" /proc/self/status')
check "capabilities: effective set is the config's (0x20000420)" grep -q 'CapEff:.*0000000020000420' <<<"$out"
check "capabilities: bounding set is the config's" grep -q 'CapBnd:.*0000000020000420' <<<"$out"
set_config "$B" 'c["process"]["capabilities"] = {k: ["CAP_NET_RAW", "CAP_CHOWN"] for k in
  ["bounding", "effective", "permitted", "inheritable", "ambient"]}'
set_config "$B" 'c["process"]["user"] = {"uid": 1000, "gid": 1000}'
out=$(in_container "$B" 'grep -E "^Cap(Eff|Amb|Inh)" /proc/self/status; id -u')
check "capabilities survive the switch to uid 1000 (effective)" grep -q 'CapEff:.*0000000000002001' <<<"$out"
check "capabilities: ambient set raised" grep -q 'CapAmb:.*0000000000002001' <<<"$out"
check "capabilities: inheritable set" grep -q 'CapInh:.*0000000000002001' <<<"$out"
make_bundle "$B" >/dev/null  # reset the config

out=$(in_container "$B" 'hostname; cat /proc/sys/kernel/domainname')
set_config "$B" 'c["hostname"] = "box1"' 'c["domainname"] = "example.org"'
out=$(in_container "$B" 'hostname; cat /proc/sys/kernel/domainname')
check "hostname and domainname are set" [ "$out" = "box1
example.org" ]
check "the host's hostname is unchanged" [ "$(hostname)" != box1 ]

set_config "$B" 'c["process"]["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [3456, 4567], "umask": 63}' \
	'c["process"]["cwd"] = "/tmp"' 'c["process"]["env"] = ["PATH=/bin", "HELLO=world"]'
set_config "$B" 'c["root"]["readonly"] = False'
out=$(in_container "$B" 'echo $(id -u) $(id -g) $(id -G) $(umask) $(pwd) $HELLO')
check "user, groups, umask, cwd, env ($out)" [ "$out" = "1234 2345 2345 3456 4567 0077 /tmp world" ]
make_bundle "$B" >/dev/null

set_config "$B" 'c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654},
  {"type": "RLIMIT_NPROC", "soft": 111, "hard": 222}]'
out=$(in_container "$B" 'ulimit -n; ulimit -Hn; grep "Max processes" /proc/self/limits')
check "rlimits: nofile soft/hard" [ "$(head -2 <<<"$out" | tr '\n' ' ')" = "321 654 " ]
check "rlimits: nproc" grep -qE 'Max processes +111 +222' <<<"$out"

set_config "$B" 'c["process"]["noNewPrivileges"] = True' 'c["process"]["oomScoreAdj"] = 123'
out=$(in_container "$B" 'grep NoNewPrivs /proc/self/status; cat /proc/self/oom_score_adj')
check "noNewPrivileges sets NoNewPrivs" grep -qE 'NoNewPrivs:\s+1' <<<"$out"
check "oomScoreAdj applied" grep -qx 123 <<<"$out"

set_config "$B" 'c["linux"]["maskedPaths"].append("/etc/passwd")'
out=$(in_container "$B" 'cat /etc/passwd | wc -c; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>&1; touch /x 2>&1')
check "masked file reads empty (/etc/passwd)" grep -qx 0 <<<"$(sed -n 1p <<<"$out")"
check "masked directory is empty (/sys/firmware)" grep -qx 0 <<<"$(sed -n 2p <<<"$out")"
check "read-only path refuses writes (/proc/sys)" grep -q 'Read-only' <<<"$(sed -n 3p <<<"$out")"
check "root.readonly: / refuses writes" grep -q 'Read-only' <<<"$(sed -n 4p <<<"$out")"

out=$(in_container "$B" 'cat /proc/self/mountinfo')
check "mountinfo: / is the rootfs (pivot_root)" grep -qE "^[0-9]+ [0-9]+ [^ ]+ [^ ]*/rootfs / ro" <<<"$out"
check "mountinfo: /proc, /dev tmpfs, /dev/pts, /dev/shm, /dev/mqueue, /sys" bash -c '
for m in "/proc .* - proc" "/dev .* - tmpfs" "/dev/pts .* - devpts" "/dev/shm .* - tmpfs" "/dev/mqueue .* - mqueue" "/sys .* - sysfs"; do
	grep -qE "^[0-9]+ [0-9]+ [^ ]+ [^ ]+ $m" <<<"$1" || { echo "# missing $m"; exit 1; }
done' _ "$out"
check "mountinfo: no host paths leak (no /tmp/virtus-rt-test mount points)" bash -c '! awk "{print \$5}" <<<"$1" | grep -q "^/tmp/virtus-rt-test"' _ "$out"
out=$(in_container "$B" 'ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx; echo x > /dev/null && head -c 4 /dev/zero | wc -c')
check "default devices are character devices" [ "$(grep -c '^c' <<<"$out")" = 6 ]
check "default symlinks /dev/fd, /dev/stdin, /dev/ptmx" grep -qx 'pts/ptmx' <<<"$out"
check "/dev/null and /dev/zero work" grep -qx 4 <<<"$out"

set_config "$B" 'c["linux"]["devices"] = [{"path": "/dev/vtnull", "type": "c", "major": 1, "minor": 3, "fileMode": 432, "uid": 0, "gid": 6}]'
out=$(in_container "$B" 'stat -c "%F %t:%T %a %u:%g" /dev/vtnull; echo data > /dev/vtnull && echo write-ok')
check "linux.devices: node created with type, numbers, mode and owner ($(head -1 <<<"$out"))" [ "$out" = "character special file 1:3 660 0:6
write-ok" ]
make_bundle "$B" >/dev/null

set_config "$B" 'c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}'
out=$(in_container "$B" 'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced')
check "sysctls set inside the container's namespaces" [ "$out" = "1
1" ]
check "the host's net.ipv4.ip_forward is untouched" [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$(cat /proc/sys/net/ipv4/ip_forward)" ]
make_bundle "$B" >/dev/null

# no runtime descriptor (sync socket, fifo, log, console) reaches the container process
exec 7>"$WORK/leak-probe"
out=$(in_container "$B" 'ls /proc/self/fd | sort -n | tr "\n" " "')
exec 7>&-
check "only stdio reaches the container process (fds: $out)" [ "$out" = "0 1 2 3 " ]
set_args "$B" sleep 30
rt create --bundle "$B" fd1 >/dev/null 2>&1 </dev/null && rt start fd1
out=$(rt exec fd1 sh -c 'ls /proc/self/fd | sort -n | tr "\n" " "' 7>"$WORK/leak-probe")
check "only stdio reaches an exec'd process (fds: $out)" [ "$out" = "0 1 2 3 " ]
rt delete --force fd1

# bind mounts: read-only and read-write, file and directory
mkdir -p "$WORK/share" && echo shared-data >"$WORK/share/f" && echo file-data >"$WORK/single"
set_config "$B" "c['mounts'] += [{'destination': '/mnt/ro', 'type': 'bind', 'source': '$WORK/share', 'options': ['rbind', 'ro']},
  {'destination': '/mnt/rw', 'type': 'bind', 'source': '$WORK/share', 'options': ['bind']},
  {'destination': '/etc/single', 'type': 'none', 'source': '$WORK/single', 'options': ['bind', 'ro']}]"
out=$(in_container "$B" 'cat /mnt/ro/f; touch /mnt/ro/x 2>/dev/null || echo ro-refused; echo new > /mnt/rw/g && echo rw-ok; cat /etc/single')
check "bind mounts: ro refuses writes, rw writes reach the host, a file bind works" [ "$out" = "shared-data
ro-refused
rw-ok
file-data" ]
check "the rw bind wrote to the host directory" [ "$(cat "$WORK/share/g" 2>/dev/null)" = new ]
make_bundle "$B" >/dev/null

# personality, seccomp, rootfsPropagation
set_config "$B" 'c["linux"]["personality"] = {"domain": "LINUX32"}'
out=$(in_container "$B" 'uname -m')
check "personality LINUX32 ($out)" grep -qE '^i[3-6]86$' <<<"$out"
make_bundle "$B" >/dev/null
set_config "$B" 'c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}' \
	'c["root"]["readonly"] = False'
out=$(in_container "$B" 'mkdir /newdir 2>&1; echo still-running')
check "seccomp: the profile denies mkdir with EPERM" grep -q 'Operation not permitted' <<<"$out"
check "seccomp: other syscalls still work" grep -q still-running <<<"$out"
set_config "$B" 'c["process"]["noNewPrivileges"] = False'
out=$(in_container "$B" 'mkdir /newdir 2>&1; grep NoNewPrivs /proc/self/status')
check "seccomp without noNewPrivileges (loaded while privileged)" grep -q 'Operation not permitted' <<<"$out"
make_bundle "$B" >/dev/null
set_config "$B" 'c["linux"]["rootfsPropagation"] = "rshared"'
out=$(in_container "$B" 'grep -E "^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / " /proc/self/mountinfo')
check "rootfsPropagation rshared: / is a shared mount" grep -q 'shared:' <<<"$out"
make_bundle "$B" >/dev/null

# createContainer runs in the container's namespaces before the root switch; startContainer inside
set_config "$B" "c['hooks'] = {'createContainer': [{'path': '/bin/sh', 'args': ['sh', '-c', 'hostname > $WORK/cc.out']}],
  'startContainer': [{'path': '/bin/sh', 'args': ['sh', '-c', 'echo started > /dev/shm/sc']}]}" 'c["hostname"] = "hooked"'
out=$(in_container "$B" 'cat /dev/shm/sc')
check "createContainer hook ran in the container's uts namespace" [ "$(cat "$WORK/cc.out" 2>/dev/null)" = hooked ]
check "startContainer hook ran inside the container before the process" [ "$out" = started ]
make_bundle "$B" >/dev/null

# user namespace with mappings (where the kernel lets us make one)
if ! userns_works; then
	for t in "uid_map written" "gid_map written" "root inside" "the host sees uid 100000" "exec joins it"; do
		skip "user namespace: $t" "this kernel refuses user namespaces (unshare -U failed)"
	done
else
	set_config "$B" 'c["linux"]["namespaces"].append({"type": "user"})' \
		'c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]' \
		'c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]'
	out=$(in_container "$B" 'cat /proc/self/uid_map /proc/self/gid_map; id -u; cat /proc/self/status | grep CapEff')
	check "user namespace: uid_map written" grep -qE '^ +0 +100000 +65536' <<<"$(sed -n 1p <<<"$out")"
	check "user namespace: gid_map written" grep -qE '^ +0 +100000 +65536' <<<"$(sed -n 2p <<<"$out")"
	check "user namespace: root inside" grep -qx 0 <<<"$(sed -n 3p <<<"$out")"
	set_args "$B" sleep 30
	rt create --bundle "$B" u1 >/dev/null 2>&1 </dev/null && rt start u1
	upid=$(rt state u1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
	check "user namespace: the host sees uid 100000" grep -qE "^Uid:\s+100000" /proc/$upid/status
	out=$(rt exec u1 sh -c 'id -u; cat /proc/self/uid_map')
	check "exec joins the user namespace" grep -qE '^ +0 +100000 +65536' <<<"$(sed -n 2p <<<"$out")"
	rt delete --force u1
	make_bundle "$B" >/dev/null
fi

# joining an existing namespace by path
set_args "$B" sleep 30
set_config "$B" 'c["hostname"] = "shared-uts"'
rt create --bundle "$B" n1 >/dev/null 2>&1 </dev/null && rt start n1
npid=$(rt state n1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
make_bundle "$WORK/b2" >/dev/null
set_config "$WORK/b2" "c['linux']['namespaces'] = [n if n['type'] != 'uts' else {'type': 'uts', 'path': '/proc/$npid/ns/uts'} for n in c['linux']['namespaces']]" 'del c["hostname"]'
out=$(in_container "$WORK/b2" 'hostname')
check "namespace joined by path (uts of another container)" [ "$out" = shared-uts ]
rt delete --force n1

# --no-pivot: MS_MOVE + chroot
set_args "$B" sh -c 'ls / | wc -l; cat /proc/self/mountinfo | grep -c " / "'
out=$(rt run --no-pivot --bundle "$B" np1 2>&1 </dev/null)
check "--no-pivot runs the container" [ "$(sed -n 1p <<<"$out")" -gt 3 ]

# a mount destination that is a symlink out of the rootfs stays inside
make_bundle "$B" >/dev/null
mkdir -p "$WORK/outside"
ln -s "$WORK/outside" "$B/rootfs/escape"
ln -s ../../../../../../../.. "$B/rootfs/up"
set_config "$B" 'c["mounts"].append({"destination": "/escape", "type": "tmpfs", "source": "tmpfs"})' \
	"c['mounts'].append({'destination': '/up$WORK/outside2', 'type': 'tmpfs', 'source': 'tmpfs'})"
set_config "$B" 'c["root"]["readonly"] = False'
before=$(mount_count)
out=$(in_container "$B" "grep -c ' $WORK/outside ' /proc/self/mountinfo; grep -c ' $WORK/outside2 ' /proc/self/mountinfo")
check "symlink destination resolved inside the rootfs (mounted at its in-root target)" [ "$out" = "1
1" ]
check "nothing was mounted on the host's $WORK/outside" bash -c "! grep -q ' $WORK/outside' /proc/self/mountinfo"
check "no host directory was created by the escape attempt" [ ! -e "$WORK/outside2" ]
check "host mount table unchanged" [ "$(mount_count)" = "$before" ]
rm -f "$B/rootfs/escape" "$B/rootfs/up"

# terminal: the pty master arrives over the console socket
make_bundle "$B" >/dev/null
set_config "$B" 'c["process"]["terminal"] = True'
set_args "$B" sh -c 'tty; echo term-ok'
python3 - "$WORK/console.sock" "$WORK/console.out" <<'PY' &
import array, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(1); s.settimeout(10)
c, _ = s.accept()
fds = array.array("i")
msg, anc, _, _ = c.recvmsg(256, socket.CMSG_LEN(fds.itemsize))
fds.frombytes(anc[0][2][:fds.itemsize])
out = b""
while True:
    try:
        d = os.read(fds[0], 4096)
    except OSError:
        break
    if not d: break
    out += d
open(sys.argv[2], "wb").write(msg + b"\n" + out)
PY
srv=$!
for i in $(seq 50); do [ -S "$WORK/console.sock" ] && break; sleep 0.05; done
rt run --bundle "$B" --console-socket "$WORK/console.sock" tty1 >/dev/null 2>&1
wait $srv
check "console: the pty master was received and the process wrote to it" grep -q term-ok "$WORK/console.out"
check "console: the process's stdin is a /dev/pts tty" grep -q '^/dev/pts/' "$WORK/console.out"
finish
