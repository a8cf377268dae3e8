#!/usr/bin/env bash
# Spec exactness: a config without a mount namespace (shares the runtime's; the host's mounts untouched),
# memory.kernel / kernelTCP and linux.resources.network applied where the host has them and refused by name
# where not, every poststart/poststop hook runs after a failing one, `start` returns only once the program
# has been exec'd, and process.apparmorProfile applied or refused. TAP output; root only.
source "$(dirname "$0")/lib.bash"
require_root
rt() { timeout 60 "$RT" --root "$ROOT" "$@"; } # a hung runtime fails the script instead of hanging it
pid_of() { rt state "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
wait_stopped() { local i; for i in $(seq 50); do [ "$(status_of "$1")" = stopped ] && return 0; sleep 0.1; done; return 1; }
B=$WORK/bundle
make_bundle "$B" || { echo "not ok 1 - make bundle"; exit 1; }
cp "$B/config.json" "$WORK/good.json"
reset_config() { cp "$WORK/good.json" "$B/config.json"; }
no_ns() { set_config "$B" "c['linux']['namespaces'] = [n for n in c['linux']['namespaces'] if n['type'] != '$1']"; }

# ---- no 'mount' namespace: the runtime's is shared; chroot instead of pivot_root; nothing stays mounted ----
no_ns mount
set_args "$B" sh -c 'readlink /proc/self/ns/mnt; ls /bin/busybox; cat /proc/1/comm'
root_line() { awk '$5 == "/" { $1 = $2 = ""; print }' /proc/self/mountinfo; }
before=$(mount_count) root_before=$(root_line)
out=$(rt run --bundle "$B" nomnt$$ 2>&1); rc=$?
diag "$out"
check "a config without a mount namespace runs (exit $rc)" [ $rc = 0 ]
check "the process is in the runtime's mount namespace" [ "$(sed -n 1p <<<"$out")" = "$(readlink /proc/self/ns/mnt)" ]
check "its root is the bundle's rootfs" [ "$(sed -n 2p <<<"$out")" = /bin/busybox ]
check "the host's mount count is back to $before" [ "$(mount_count)" = "$before" ]
check "the host's / mount is unchanged (no pivot, no propagation change)" [ "$(root_line)" = "$root_before" ]
check "nothing is mounted under the bundle" bash -c '! grep -qF "$0" /proc/self/mountinfo' "$B/rootfs"
set_args "$B" sleep 30
rt create --bundle "$B" nomnt2$$ </dev/null >/dev/null 2>&1 && rt start nomnt2$$
check "while it runs, its /proc is mounted under the rootfs in the shared namespace" \
	grep -qF " $B/rootfs/proc " /proc/self/mountinfo
rt delete --force nomnt2$$
check "delete removes every mount it made in the shared namespace" bash -c '! grep -qF "$0" /proc/self/mountinfo' "$B/rootfs"
check "... and the mount count is back to $before" [ "$(mount_count)" = "$before" ]
set_args "$B" /bin/does-not-exist
rt run --bundle "$B" nomnt3$$ >/dev/null 2>&1
check "a failed create without a mount namespace leaves no mount" [ "$(mount_count)" = "$before" ]
check "... and nothing else" nothing_left nomnt3$$
set_config "$B" 'c["linux"]["rootfsPropagation"] = "rshared"'
set_args "$B" true
out=$(rt run --bundle "$B" nomnt4$$ 2>&1); rc=$?
check "rootfsPropagation without a mount namespace is refused by name" \
	bash -c '[ $0 != 0 ] && grep -q "linux.rootfsPropagation: needs a .mount. namespace" <<<"$1"' $rc "$out"
reset_config

# ---- memory.kernel and memory.kernelTCP ----
# kmem_file_holds FILE: a fresh memory cgroup keeps a 64 MiB value written to FILE (v1; Linux >= 6.1 ignores kmem)
kmem_file_holds() {
	has_v1_controller memory || return 1
	local d=/sys/fs/cgroup/memory/virtus-probe-$$ v
	mkdir "$d" 2>/dev/null || return 1
	echo 67108864 >"$d/$1" 2>/dev/null
	v=$(cat "$d/$1" 2>/dev/null)
	rmdir "$d"
	[ "$v" = 67108864 ]
}
check_kmem() { # FIELD FILE
	local field=$1 file=$2 id=km$RANDOM out rc
	reset_config
	set_config "$B" "c['linux']['resources'] = {'memory': {'$field': 67108864}}"
	set_args "$B" sh -c "cat /proc/self/cgroup >/dev/null; sleep 30"
	out=$(rt run -d --bundle "$B" $id 2>&1 </dev/null); rc=$?
	if kmem_file_holds "$file"; then
		check "memory.$field is applied ($file = 64 MiB)" \
			[ "$(cat /sys/fs/cgroup/memory/virtus/$id/$file 2>/dev/null)" = 67108864 ]
	else
		diag "$out"
		check "memory.$field is refused where $file is missing or ignored" [ $rc != 0 ]
		check "... and the message names linux.resources.memory.$field" \
			grep -q "linux.resources.memory.$field: not supported" <<<"$out"
	fi
	rt delete --force $id >/dev/null 2>&1
	check "nothing left after memory.$field" nothing_left $id
}
check_kmem kernelTCP memory.kmem.tcp.limit_in_bytes
check_kmem kernel memory.kmem.limit_in_bytes
reset_config

# ---- linux.resources.network: net_cls.classid / net_prio.ifpriomap ----
net_config() {
	set_config "$B" 'c["linux"]["resources"] = {"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 7}]}}'
}
net_config
set_args "$B" sleep 30
if [ "$(cg_layout)" != v2 ] && ! has_v1_controller net_cls; then
	out=$(rt run -d --bundle "$B" net$$ 2>&1 </dev/null); rc=$?
	diag "$out"
	check "network.classID is refused where no net_cls hierarchy is mounted" [ $rc != 0 ]
	check "... naming linux.resources.network.classID and the controller" \
		grep -q "linux.resources.network.classID: the host has no cgroup v1 'net_cls' controller" <<<"$out"
	check "nothing left after the refused network section" nothing_left net$$
	# The controllers exist in the kernel but are not mounted here: mount them in a private mount namespace (the
	# runtime finds hierarchies through mountinfo) to check that the values are applied.
	mkdir -p "$WORK/netcg"
	# Opt-in: on this kernel the unmounted hierarchy can outlive the namespace (seen on 6.18), and a hierarchy
	# without a mount breaks containerd's cgroup lookups for every process on the host.
	if [ "${VIRTUS_TEST_MOUNT_NET_CLS:-0}" != 1 ]; then
		out=""; rc=99
	else
	out=$(unshare -m bash -c '
		mount --make-rprivate / && mount -t cgroup -o net_cls,net_prio vtnet "$1" || exit 99
		"$2" --root "$3" run -d --bundle "$4" net2 </dev/null || exit 98
		cat "$1/virtus/net2/net_cls.classid"; grep "^lo " "$1/virtus/net2/net_prio.ifpriomap"
		"$2" --root "$3" delete --force net2; ls -d "$1/virtus/net2" 2>/dev/null
		# an unmounted v1 hierarchy that still has a child cgroup stays alive without a mount, which breaks
		# tools that map /proc/PID/cgroup to mounts (containerd): empty it, then unmount it explicitly
		for i in $(seq 50); do rmdir "$1/virtus" 2>/dev/null; [ -d "$1/virtus" ] || break; sleep 0.1; done
		umount "$1"' \
		_ "$WORK/netcg" "$RT" "$ROOT" "$B" 2>&1); rc=$?
	fi
	if [ $rc = 99 ]; then
		skip "network values applied through net_cls/net_prio" "set VIRTUS_TEST_MOUNT_NET_CLS=1 (mounts a hierarchy), or it cannot be mounted here"
	else
		diag "$out"
		check "with net_cls,net_prio mounted: net_cls.classid is 1048577" [ "$(sed -n 1p <<<"$out")" = 1048577 ]
		check "... and net_prio.ifpriomap has 'lo 7'" [ "$(sed -n 2p <<<"$out")" = "lo 7" ]
		check "... and delete removed the cgroup" [ "$(wc -l <<<"$out")" = 2 ]
	fi
	# the hierarchy must be gone again (no mount, no entry in /proc/self/cgroup); repair it if not
	if grep -q 'net_cls' /proc/self/cgroup && ! has_v1_controller net_cls; then
		not_ok "the test's net_cls,net_prio hierarchy is gone again"
		unshare -m sh -c 'mount --make-rprivate / && mount -t cgroup -o net_cls,net_prio vtnet "$0" && umount "$0"' "$WORK/netcg"
	else
		ok "the test's net_cls,net_prio hierarchy is gone again"
	fi
elif [ "$(cg_layout)" = v2 ]; then
	out=$(rt run -d --bundle "$B" net$$ 2>&1 </dev/null); rc=$?
	check "network is refused on cgroup v2 by name" \
		bash -c '[ $0 != 0 ] && grep -q "linux.resources.network: not supported on cgroup v2" <<<"$1"' $rc "$out"
	check "nothing left after the refused network section" nothing_left net$$
else
	rt run -d --bundle "$B" net$$ </dev/null >/dev/null 2>&1
	d=$(awk '$9 == "cgroup" && $NF ~ /net_cls/ { print $5; exit }' /proc/self/mountinfo)
	check "net_cls.classid is 1048577" [ "$(cat "$d/virtus/net$$/net_cls.classid" 2>/dev/null)" = 1048577 ]
	rt delete --force net$$
fi
reset_config

# ---- poststart and poststop: every hook runs, a warning for each failure ----
H=$WORK/hooks; mkdir -p "$H"
set_config "$B" "c['hooks'] = {k: [{'path': '/bin/false'}, {'path': '/bin/sh', 'args': ['sh', '-c', 'echo ran > $H/' + k]},
	{'path': '/bin/sh', 'args': ['sh', '-c', 'exit 3']}] for k in ['poststart', 'poststop']}"
set_args "$B" true
rt run --bundle "$B" hk$$ >/dev/null 2>"$WORK/err"; rc=$?
diag "$(cat "$WORK/err")"
check "the container ran despite failing poststart/poststop hooks" [ $rc = 0 ]
check "the poststart hook after a failing one still ran" [ "$(cat "$H/poststart" 2>/dev/null)" = ran ]
check "the poststop hook after a failing one still ran" [ "$(cat "$H/poststop" 2>/dev/null)" = ran ]
check "one warning line per failing hook (4)" [ "$(grep -c '^virtus-runtime: warning: ' "$WORK/err")" = 4 ]
check "... naming each (exit status 1 and 3)" bash -c 'grep -q "poststart hook /bin/sh failed with exit status 3" "$0" &&
	grep -q "poststop hook /bin/false failed with exit status 1" "$0"' "$WORK/err"
reset_config

# ---- start returns once the program has been exec'd ----
# A startContainer hook holds init for 0.5 s between its release and its execve: start must wait it out.
set_config "$B" "c['hooks'] = {'startContainer': [{'path': '/bin/sleep', 'args': ['sleep', '0.5']}]}"
set_args "$B" sleep 30
rt create --bundle "$B" st$$ </dev/null >/dev/null 2>&1
pid=$(pid_of st$$)
t0=$(date +%s%N)
rt start st$$
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
exe=$(stat -L -c %d:%i /proc/$pid/exe 2>/dev/null)
check "start waited for the startContainer hook and the exec (${ms} ms >= 500)" [ $ms -ge 500 ]
check "when start returns, init already runs the program (not the runtime)" [ "$exe" = "$(stat -L -c %d:%i "$B/rootfs/bin/busybox")" ]
check "... and state says running" [ "$(status_of st$$)" = running ]
rt delete --force st$$
# A signal sent right after start reaches the program. Without a pid namespace the default action applies (the
# kernel ignores SIGTERM with the default action for the init of a pid namespace, whoever sends it).
no_ns pid
ok_count=0
for i in 1 2 3 4 5; do
	rt create --bundle "$B" sk$i$$ </dev/null >/dev/null 2>&1 && rt start sk$i$$ && rt kill sk$i$$ TERM
	wait_stopped sk$i$$ && ok_count=$((ok_count + 1))
	rt delete --force sk$i$$ >/dev/null 2>&1
done
check "start then kill TERM at once: the container ends every time ($ok_count/5)" [ $ok_count = 5 ]
reset_config

# ---- process.apparmorProfile ----
set_config "$B" 'c["process"]["apparmorProfile"] = "unconfined"'
set_args "$B" cat /proc/self/attr/current
out=$(rt run --bundle "$B" aa$$ 2>&1); rc=$?
diag "$out"
if apparmor_enabled; then
	check "apparmorProfile 'unconfined' is applied" bash -c '[ $0 = 0 ] && grep -q unconfined <<<"$1"' $rc "$out"
else
	check "apparmorProfile is refused where AppArmor is not enabled" [ $rc != 0 ]
	check "... with a message naming process.apparmorProfile" grep -q "process.apparmorProfile 'unconfined': AppArmor is not enabled" <<<"$out"
	check "nothing left after the refused profile" nothing_left aa$$
	reset_config
	set_args "$B" sleep 30
	rt create --bundle "$B" aa2$$ </dev/null >/dev/null 2>&1 && rt start aa2$$
	out=$(rt exec --apparmor unconfined aa2$$ true 2>&1); rc=$?
	check "exec --apparmor is refused the same way" bash -c '[ $0 != 0 ] && grep -q "AppArmor is not enabled" <<<"$1"' $rc "$out"
	rt delete --force aa2$$
fi
reset_config
finish
