#!/usr/bin/env bash
# cgroup limits seen from the host side, device denial inside the container, pause/resume through the
# freezer, and nothing left behind after delete or after a rejected config. TAP output; root only.
source "$(dirname "$0")/lib.bash"
require_root

# The container's directory in one v1 controller (or the v2 tree).
cg_dir() { # ID CONTROLLER
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo "/sys/fs/cgroup/virtus/$1"; else echo "/sys/fs/cgroup/$2/virtus/$1"; fi
}
cg_value() { cat "$(cg_dir "$1" "$2")/$3" 2>/dev/null; }
v2() { [ -f /sys/fs/cgroup/cgroup.controllers ]; }
# A hung runtime must fail this script, not hang the suite.
rt() { timeout 60 "$RT" --root "$ROOT" "$@"; }

# A real block device for the device-cgroup and throttle checks (the first disk lsblk lists).
disk=$(lsblk -ndo MAJ:MIN,TYPE 2>/dev/null | awk '$2 == "disk" { print $1; exit }' | tr -d ' ')
throttle=""
has_blkio() { if [ "$(cg_layout)" = v2 ]; then v2_controller io; else has_v1_controller blkio; fi; }
[ -n "$disk" ] && has_blkio && throttle="'throttleReadBpsDevice': [{'major': ${disk%:*}, 'minor': ${disk#*:}, 'rate': 1048576}]"
# An I/O weight needs CFQ or BFQ (blkio.weight / blkio.bfq.weight, io.weight / io.bfq.weight): many kernels have
# neither. Ask for it only where the host offers it; elsewhere the refusal itself is checked below.
weight_file=$(blkio_weight_file)
diag "host: cgroup $(cg_layout); block I/O weight file: ${weight_file:-none}; disk: ${disk:-none}"
weight=""
[ -n "$weight_file" ] && weight="'weight': 300,"

B=$WORK/bundle
make_bundle "$B" || { echo "not ok 1 - make bundle"; exit 1; }
set_args "$B" sleep 60
set_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": 67108864, "reservation": 33554432,
	"disableOOMKiller": True}, "pids": {"limit": 20}, "blockIO": {'"$weight$throttle"'},
	"cpu": {"shares": 512, "quota": 50000, "period": 100000},
	"devices": [{"allow": False, "access": "rwm"}]}'

# ---- limits, from the host side, while the container runs ----
id=cglimits$$
if rt create --bundle "$B" "$id" && rt start "$id"; then ok "create+start with limits"; else not_ok "create+start with limits"; fi
if v2; then
	check "memory.max is 64 MiB" test "$(cg_value "$id" "" memory.max)" = 67108864
	check "pids.max is 20" test "$(cg_value "$id" "" pids.max)" = 20
	check "cpu.max is 50000 100000" test "$(cg_value "$id" "" cpu.max)" = "50000 100000"
	check "cpu.weight from shares 512" test "$(cg_value "$id" "" cpu.weight)" = 20
else
	check "memory.limit_in_bytes is 64 MiB" test "$(cg_value "$id" memory memory.limit_in_bytes)" = 67108864
	check "pids.max is 20" test "$(cg_value "$id" pids pids.max)" = 20
	check "cpu.cfs_quota_us is 50000" test "$(cg_value "$id" cpu cpu.cfs_quota_us)" = 50000
	check "cpu.shares is 512" test "$(cg_value "$id" cpu cpu.shares)" = 512
	check "memory.soft_limit_in_bytes is 32 MiB" test "$(cg_value "$id" memory memory.soft_limit_in_bytes)" = 33554432
	check "memory.oom_control has oom_kill_disable 1" grep -qx 'oom_kill_disable 1' "$(cg_dir "$id" memory)/memory.oom_control"
	if [ -n "$weight_file" ]; then
		check "blkio weight 300 ($weight_file)" grep -qw 300 "$(cg_dir "$id" blkio)/$weight_file"
	fi
	if [ -n "$disk" ]; then
		[ -n "$throttle" ] && check "blkio.throttle.read_bps_device has $disk 1048576" grep -qx "$disk 1048576" "$(cg_dir "$id" blkio)/blkio.throttle.read_bps_device"
	fi
	check "devices.list has no 'a *:* rwm'" bash -c "! grep -qx 'a \*:\* rwm' $(cg_dir "$id" devices)/devices.list"
fi
pid=$(rt state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
if v2; then procs=$(cg_dir "$id" "")/cgroup.procs; else procs=$(cg_dir "$id" memory)/cgroup.procs; fi
check "init pid $pid is in the cgroup" grep -qx "$pid" "$procs"

# ---- pause / resume ----
if rt pause "$id"; then ok "pause"; else not_ok "pause"; fi
if v2; then
	check "cgroup frozen" grep -qx 'frozen 1' "$(cg_dir "$id" "")/cgroup.events"
else
	check "freezer.state FROZEN" test "$(cg_value "$id" freezer freezer.state)" = FROZEN
fi
check "state says paused" test "$(status_of "$id")" = paused
if rt resume "$id"; then ok "resume"; else not_ok "resume"; fi
if v2; then
	check "cgroup thawed" grep -qx 'frozen 0' "$(cg_dir "$id" "")/cgroup.events"
else
	check "freezer.state THAWED" test "$(cg_value "$id" freezer freezer.state)" = THAWED
fi
check "state says running" test "$(status_of "$id")" = running

# ---- delete ----
rt kill "$id" KILL >/dev/null 2>&1
for _ in $(seq 50); do [ "$(status_of "$id")" = stopped ] && break; sleep 0.1; done
if rt delete "$id"; then ok "delete"; else not_ok "delete"; fi
check "no cgroup directory left after delete" nothing_left "$id"

# ---- devices: a block device node inside the rootfs ----
if [ -z "$disk" ]; then
	skip "block device access denied" "no block device"
	skip "block device access allowed by a rule" "no block device"
else
	maj=${disk%:*} min=${disk#*:}
	mknod "$B/rootfs/tmp/disk" b "$maj" "$min"
	set_args "$B" sh -c 'head -c1 /tmp/disk >/dev/null; echo "disk=$?"; head -c1 /dev/null; echo "null=$?"'
	out=$(rt run --bundle "$B" dev1$$ 2>&1)
	diag "$out"
	check "reading block device $disk is denied" grep -q 'disk=1' <<<"$out"
	check "the denial is the device cgroup's EPERM" grep -qi 'not permitted' <<<"$out"
	check "/dev/null still works" grep -q 'null=0' <<<"$out"
	rt delete dev1$$ >/dev/null 2>&1
	set_config "$B" "c['linux']['resources']['devices'].append({'allow': True, 'type': 'b', 'major': $maj, 'minor': $min, 'access': 'r'})"
	out=$(rt run --bundle "$B" dev2$$ 2>&1)
	check "a later allow rule grants the read" grep -q 'disk=0' <<<"$out"
	rt delete dev2$$ >/dev/null 2>&1
	rm -f "$B/rootfs/tmp/disk"
fi

# ---- a rejected config leaves nothing ----
set_args "$B" true
set_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": "lots"}}'
id=cgbad$$
out=$(rt run --bundle "$B" "$id" 2>&1); rc=$?
diag "$out"
check "bad memory.limit fails" test "$rc" -ne 0
check "the error names linux.resources.memory.limit" grep -q 'linux.resources.memory.limit' <<<"$out"
check "nothing left after the rejected config" nothing_left "$id"

set_config "$B" 'c["linux"]["resources"] = {"cpu": {"cpus": "4095"}}'
id=cgbad2$$
out=$(rt run --bundle "$B" "$id" 2>&1); rc=$?
diag "$out"
check "cpuset the kernel refuses fails" test "$rc" -ne 0
check "the error names linux.resources.cpu.cpus" grep -q 'linux.resources.cpu.cpus' <<<"$out"
check "nothing left after the kernel refused a value" nothing_left "$id"

# ---- the container sees its own cgroup at /sys/fs/cgroup (v1: per controller; v2: the cgroup namespace) ----
set_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": 67108864}, "pids": {"limit": 50}}'
if v2; then
	set_args "$B" sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; echo 1 > /sys/fs/cgroup/pids.max 2>/dev/null || echo write-refused'
else
	set_args "$B" sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; grep -c . /sys/fs/cgroup/memory/cgroup.procs; echo 1 > /sys/fs/cgroup/pids/pids.max 2>/dev/null || echo write-refused'
fi
out=$(rt run --bundle "$B" cgview$$ 2>&1)
diag "$out"
check "inside: the memory limit file shows the container's 64 MiB (67108864)" [ "$(sed -n 1p <<<"$out")" = 67108864 ]
check "inside: pids.max shows the container's 50" [ "$(sed -n 2p <<<"$out")" = 50 ]
if ! v2; then
	check "inside: the memory cgroup holds only the container's processes" [ "$(sed -n 3p <<<"$out")" -le 3 ]
fi
check "inside: the cgroup files are read-only" grep -qx write-refused <<<"$out"
check "nothing left after the cgroup view run" nothing_left cgview$$

# ---- blockIO.weight: applied where the kernel has an I/O weight, refused by name where it has none ----
set_config "$B" 'c["linux"]["resources"] = {"blockIO": {"weight": 300}}'
out=$(rt run --bundle "$B" cgw$$ 2>&1); rc=$?
diag "$out"
if [ -n "$weight_file" ]; then
	check "blockIO.weight is accepted ($weight_file exists here)" test "$rc" = 0
else
	check "blockIO.weight is refused on a kernel without CFQ/BFQ weights" test "$rc" -ne 0
	check "the refusal names linux.resources.blockIO.weight and why" \
		grep -q 'linux.resources.blockIO.weight: the kernel offers neither' <<<"$out"
fi
check "nothing left after the blockIO.weight run" nothing_left cgw$$

# ---- memory.limit is enforced: a 64 MiB buffer in a 16 MiB (no swap) cgroup is OOM-killed ----
set_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": 16777216, "swap": 16777216}}'
set_args "$B" sh -c 'dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo "dd=$?"'
out=$(rt run --bundle "$B" cgoom$$ 2>&1)
diag "$out"
check "dd of a 64 MiB block is killed (status 137)" grep -q 'dd=137' <<<"$out"
rt delete --force cgoom$$ >/dev/null 2>&1
set_args "$B" sh -c 'dd if=/dev/zero of=/dev/null bs=4M count=1 2>/dev/null; echo "dd=$?"'
out=$(rt run --bundle "$B" cgoom2$$ 2>&1)
check "a 4 MiB block fits" grep -q 'dd=0' <<<"$out"
rt delete --force cgoom2$$ >/dev/null 2>&1

# ---- the OOM killer during setup is reported as such, with the limit and the peak ----
set_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": 16777216, "swap": 16777216}}' \
	'c["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1"]}]}'
set_args "$B" true
out=$(rt run --bundle "$B" cgoom3$$ 2>&1); rc=$?
diag "$out"
check "a setup step killed by the OOM killer fails the create" [ $rc != 0 ]
check "... and the message says it was killed for lack of memory" grep -q 'killed for lack of memory during setup' <<<"$out"
check "... naming the limit (16777216 bytes)" grep -q 'linux.resources.memory.limit: 16777216 bytes' <<<"$out"
check "nothing left after the OOM during setup" nothing_left cgoom3$$
set_config "$B" 'c.pop("hooks", None)'
# init itself in a cgroup too small for its setup: the same message, when the kernel kills it there
set_config "$B" 'c["linux"]["resources"] = {"memory": {"limit": 1048576, "swap": 1048576}}'
out=$(rt run --bundle "$B" cgoom4$$ 2>&1); rc=$?
diag "1 MiB for the whole setup (exit $rc): $out"
if [ $rc != 0 ] && grep -q 'exited during setup' <<<"$out"; then
	check "init killed during setup is reported as killed for lack of memory" grep -q 'killed for lack of memory' <<<"$out"
fi
check "nothing left after the 1 MiB run" nothing_left cgoom4$$

# ---- pids.max is enforced ----
set_config "$B" 'c["linux"]["resources"] = {"pids": {"limit": 5}}'
set_args "$B" sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo done'
out=$(rt run --bundle "$B" cgpids$$ 2>&1)
diag "$out"
check "forking past pids.max fails inside the container" grep -qiE 'resource temporarily unavailable|can.t fork' <<<"$out"
rt delete --force cgpids$$ >/dev/null 2>&1

finish
