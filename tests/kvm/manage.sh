#!/usr/bin/env bash
# Managed VMs with tiny guests: `vm run -d`, `vm ls`, `info`, `pause`/`resume` (the guest's console stops
# and goes on growing), `console` (input reaches the guest, Ctrl-A x detaches and the VM runs on), `logs`,
# `kill`, the API's answers to good and bad requests (`vm api`), snapshot and restore, live migration
# between two VMMs, jailed VMMs (--incoming, --restore, the refusals), a foreground VM's --api-socket, a stale
# VM directory, and that nothing is left behind.
set -uo pipefail
cd "$(dirname "$0")/../.."
VIRTUS=${VIRTUS:-build-asan/virtus}
G=${GUESTS:-$(dirname "$VIRTUS")/tests/kvm/guests}
tmp=$(mktemp -d)
export VIRTUS_VM_RUN_DIR=$tmp/vms
cleanup() {
	for d in "$VIRTUS_VM_RUN_DIR"/*/; do
		[ -r "$d/vm.json" ] || continue
		pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$d/vm.json")
		[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=../lib/tap.bash
. tests/lib/tap.bash
# shellcheck source=../lib/stall.sh
. tests/lib/stall.sh

v() { timeout -s KILL 30 "$VIRTUS" "$@"; }
log_size() { stat -c %s "$VIRTUS_VM_RUN_DIR/$1/console.log" 2>/dev/null || echo 0; }
wait_for() { # wait_for SECONDS COMMAND...: until the command succeeds
	local i
	for i in $(seq $(($1 * 10))); do "${@:2}" && return 0; sleep 0.1; done
	return 1
}
grows() { local a; a=$(log_size "$1"); sleep "${2:-0.5}"; [ "$(log_size "$1")" -gt "$a" ]; }
vmm_pid() { sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$VIRTUS_VM_RUN_DIR/$1/vm.json" 2>/dev/null; }
runs() { # runs SECONDS NAME: the VM's console grows within SECONDS; if not, what its VMM is doing ("# " lines)
	wait_for "$1" grows "$2" && return 0
	echo "# $2 stalled: state $(v vm api "$2" GET / 2>&1 | sed -n 's/.*"state": *"\([A-Za-z ]*\)".*/\1/p'), console $(log_size "$2") bytes"
	stall_report "$(vmm_pid "$2")"
	tail -n 5 "$VIRTUS_VM_RUN_DIR/$2/vmm.log" 2>/dev/null | sed 's/^/# vmm.log: /'
	return 1
}

# Detached start: prints the name, returns 0, the VM runs.
out=$(v vm run -d --name t1 --kernel "$G/tick.elf" --cpus 2 --memory 64M 2>"$tmp/err"); rc=$?
if [ $rc -eq 0 ] && [ "$out" = t1 ]; then ok "vm run -d prints the name and returns 0"; else not_ok "vm run -d" "status $rc, out '$out'" "$(cat "$tmp/err")"; fi
if runs 20 t1; then ok "the detached VM's console goes to its log"; else not_ok "the detached VM's console goes to its log" "$(log_size t1) bytes"; fi

v vm ls >"$tmp/ls" 2>&1
if grep -qE '^t1 +Running +2 +64M +[0-9]+s +[0-9]+  .*/t1/api.sock$' "$tmp/ls"; then ok "vm ls: name, state, vCPUs, memory, uptime, pid, API socket"; else not_ok "vm ls" "$(cat "$tmp/ls")"; fi
v vm info t1 >"$tmp/info" 2>&1
if grep -q '^state: *Running' "$tmp/info" && grep -q '^vcpus: *2' "$tmp/info" && grep -q "^kernel: *.*tick.elf" "$tmp/info"; then
	ok "vm info: state and configuration"; else not_ok "vm info" "$(cat "$tmp/info")"; fi
v vm info --json t1 >"$tmp/infoj" 2>&1
if grep -q '"mem_size_mib": *64' "$tmp/infoj" && grep -q '"state": *"Running"' "$tmp/infoj"; then ok "vm info --json: the API's objects"; else not_ok "vm info --json" "$(head -c 400 "$tmp/infoj")"; fi

# Pause: the console stops growing (once what was in flight is logged); resume: it grows again.
v vm pause t1 2>"$tmp/err"; rc=$?
sleep 0.5
a=$(log_size t1); sleep 1.5; b=$(log_size t1)
state=$(v vm api t1 GET / | sed -n 's/.*"state": *"\([A-Za-z]*\)".*/\1/p')
if [ $rc -eq 0 ] && [ "$a" = "$b" ] && [ "$state" = Paused ]; then ok "vm pause: the guest stops (console $a -> $b bytes in 1.5 s), state Paused"
else not_ok "vm pause" "status $rc $(cat "$tmp/err")" "console $a -> $b bytes" "state '$state'"; fi
v vm pause t1; rc=$?
if [ $rc -eq 0 ]; then ok "vm pause of a paused VM succeeds (idempotent)"; else not_ok "vm pause twice" "status $rc"; fi
v vm resume t1; rc=$?
if [ $rc -eq 0 ] && runs 10 t1; then ok "vm resume: the guest goes on"; else not_ok "vm resume" "status $rc, console $(log_size t1) bytes"; fi

# Console: input reaches the guest (it echoes <c>), Ctrl-A x detaches, the VM runs on.
(sleep 1; printf 'k'; sleep 2; printf '\001x') | v vm console t1 >"$tmp/con" 2>"$tmp/conerr"; rc=$?
if [ $rc -eq 0 ] && grep -q '<k>' "$tmp/con"; then ok "vm console: input reaches the guest, output comes back"; else not_ok "vm console" "status $rc" "$(head -c 300 "$tmp/con")" "$(cat "$tmp/conerr")"; fi
if runs 5 t1; then ok "vm console: Ctrl-A x detaches, the VM runs on"; else not_ok "the VM runs on after detach"; fi
if v vm logs t1 | grep -q '<k>'; then ok "vm logs: the console's output"; else not_ok "vm logs"; fi
(sleep 5) | v vm console t1 >/dev/null 2>&1 & first=$!
sleep 1
out=$(v vm console t1 </dev/null 2>&1)
kill $first 2>/dev/null; wait $first 2>/dev/null
if echo "$out" | grep -q 'attached elsewhere'; then ok "vm console: a second client is refused while one is attached"; else not_ok "second console client" "$out"; fi

# The API: Firecracker's shapes, and a clear fault for every bad request, changing nothing.
api_case() { # NAME WANT_STATUS BODY_REGEX METHOD PATH [JSON]
	local name=$1 want=$2 pat=$3; shift 3
	out=$(v vm api t1 "$@" 2>"$tmp/apierr"); local rc=$?
	if [ $rc -eq "$want" ] && echo "$out" | grep -qE -- "$pat"; then ok "API: $name"; else not_ok "API: $name" "status $rc: $out $(cat "$tmp/apierr")"; fi
}
api_case "GET / is Firecracker's InstanceInfo" 0 '"app_name": *"virtus".*"id": *"t1".*"state": *"Running"' GET /
api_case "GET /vm/config has machine-config" 0 '"machine-config": *\{ *"vcpu_count": *2' GET /vm/config
api_case "GET /machine-config" 0 '"mem_size_mib": *64' GET /machine-config
api_case "malformed JSON: 400 saying so" 1 '"fault_message": *"the request body is not JSON' PATCH /vm '{"state":'
api_case "a wrong state: 400 naming the field" 1 'state: .Sleeping. is not' PATCH /vm '{"state":"Sleeping"}'
api_case "a missing field: 400 naming it" 1 'state: missing' PATCH /vm '{}'
api_case "an unknown field: 400 naming it" 1 'statee: unknown field' PATCH /vm '{"state":"Paused","statee":1}'
api_case "an unknown path: 404" 1 'no resource /nope' GET /nope
api_case "a wrong method: 405" 1 'DELETE is not a method of /vm' DELETE /vm
api_case "a pre-boot resource after start: 400" 1 'not supported after starting' PUT /machine-config '{"vcpu_count":1}'
api_case "InstanceStart on a running VM: 400" 1 'already running' PUT /actions '{"action_type":"InstanceStart"}'
api_case "an unknown action: 400" 1 'action_type: .Reboot. is not' PUT /actions '{"action_type":"Reboot"}'
api_case "PATCH /balloon on a VM without a balloon: 400 saying so" 1 'has no balloon device' PATCH /balloon '{"amount_mib":8}'
if runs 5 t1; then ok "API: after the bad requests the VM still runs"; else not_ok "the VM runs after bad requests"; fi

# Snapshot: the VM goes on; the directory holds the state and a sparse memory file.
v vm snapshot t1 "$tmp/snap1" >"$tmp/snap.out" 2>&1; rc=$?
mem_bytes=$(stat -c %s "$tmp/snap1/memory" 2>/dev/null); mem_blocks=$(stat -c %b "$tmp/snap1/memory" 2>/dev/null)
if [ $rc -eq 0 ] && [ -s "$tmp/snap1/state" ] && [ "$mem_bytes" = $((64 << 20)) ] && [ "$((mem_blocks * 512))" -lt $((8 << 20)) ]; then
	ok "vm snapshot: state and a sparse memory file of 64 MiB ($((mem_blocks / 2)) KiB on disk)"
else not_ok "vm snapshot" "status $rc: $(cat "$tmp/snap.out")" "memory ${mem_bytes:-none} bytes, ${mem_blocks:-none} blocks"; fi
state=$(v vm api t1 GET / | sed -n 's/.*"state": *"\([A-Za-z]*\)".*/\1/p')
if [ "$state" = Running ] && runs 5 t1; then ok "vm snapshot: the VM runs on after it"; else not_ok "running after snapshot" "state '$state'"; fi
out=$(v vm snapshot t1 "$tmp/snap1" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'new directory'; then ok "vm snapshot into an existing directory is refused"; else not_ok "snapshot into existing dir" "status $rc: $out"; fi
api_case "PUT /snapshot/create of a running VM: 400" 1 'must be paused' PUT /snapshot/create "{\"snapshot_path\":\"$tmp/x.state\",\"mem_file_path\":\"$tmp/x.mem\"}"
api_case "PUT /snapshot/create: a Diff snapshot is refused" 1 "snapshot_type: 'Diff' is not supported" PUT /snapshot/create "{\"snapshot_type\":\"Diff\",\"snapshot_path\":\"$tmp/x.state\",\"mem_file_path\":\"$tmp/x.mem\"}"
if [ ! -e "$tmp/x.state" ] && [ ! -e "$tmp/x.mem" ]; then ok "refused snapshots leave no files"; else not_ok "refused snapshots left files"; fi

# Names: a second VM of a running VM's name is refused, an unknown name is an error.
out=$(v vm run -d --name t1 --kernel "$G/tick.elf" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "a VM named 't1' is already running"; then ok "a second VM named t1 is refused"; else not_ok "second t1" "status $rc: $out"; fi
out=$(v vm pause nosuch 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "no VM named 'nosuch'"; then ok "an unknown VM name is an error"; else not_ok "unknown VM" "status $rc: $out"; fi

# Kill: the VMM ends, its directory goes.
pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$VIRTUS_VM_RUN_DIR/t1/vm.json")
v vm kill t1; rc=$?
if [ $rc -eq 0 ] && ! kill -0 "$pid" 2>/dev/null && [ ! -e "$VIRTUS_VM_RUN_DIR/t1" ]; then ok "vm kill: the VMM ends and its directory is gone"
else not_ok "vm kill" "status $rc, pid $pid alive: $(kill -0 "$pid" 2>/dev/null && echo yes)" "$(ls "$VIRTUS_VM_RUN_DIR" 2>&1)"; fi

# Restore: a snapshot taken with --stop (the VM ends) continues in a new VMM: the console goes on without a
# new boot banner; the machine's shape comes from the snapshot and a --cpus that differs is refused.
v vm run -d --name t5 --kernel "$G/tick.elf" --cpus 2 --memory 32M >/dev/null 2>&1
runs 20 t5
v vm snapshot --stop t5 "$tmp/snap5" >"$tmp/snap.out" 2>&1; rc=$?
if [ $rc -eq 0 ] && [ ! -e "$VIRTUS_VM_RUN_DIR/t5" ]; then ok "vm snapshot --stop: the snapshot is taken and the VM ends"; else not_ok "snapshot --stop" "status $rc: $(cat "$tmp/snap.out")"; fi
out=$(v vm run -d --name t5r --restore "$tmp/snap5" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$out" = t5r ] && runs 20 t5r; then ok "vm run --restore: the restored VM runs (its console grows)"; else not_ok "restore" "status $rc: $out"; fi
sleep 1
banners=$(v vm logs t5r | grep -c 'tick: start')
if [ "$banners" = 0 ]; then ok "vm run --restore: the guest goes on where it was (no boot banner)"; else not_ok "restored guest rebooted" "$banners banners"; fi
v vm info t5r >"$tmp/info"
if grep -q '^vcpus: *2' "$tmp/info" && grep -q '^memory: *32 MiB' "$tmp/info"; then ok "vm run --restore: the snapshot's 2 vCPUs and 32 MiB"; else not_ok "restored shape" "$(cat "$tmp/info")"; fi
(sleep 1; printf 'r'; sleep 2; printf '\001x') | v vm console t5r >"$tmp/con" 2>&1
if grep -q '<r>' "$tmp/con"; then ok "vm run --restore: the restored serial port takes input"; else not_ok "restored console input" "$(head -c 200 "$tmp/con")"; fi
v vm kill t5r
out=$(v vm run --restore "$tmp/snap5" --cpus 1 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'has 2 vCPUs, --cpus says 1'; then ok "vm run --restore with another --cpus is refused"; else not_ok "restore --cpus mismatch" "status $rc: $out"; fi
out=$(v vm run --restore "$tmp/snap5" --kernel "$G/tick.elf" 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q 'drop --kernel'; then ok "vm run --restore with --kernel is a usage error"; else not_ok "restore --kernel" "status $rc: $out"; fi
mkdir -p "$tmp/notsnap" && echo junk >"$tmp/notsnap/state"
out=$(v vm run --restore "$tmp/notsnap" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'not a virtus snapshot state file'; then ok "vm run --restore of a directory that is no snapshot: a clear error"; else not_ok "restore junk" "status $rc: $out"; fi
head -c 100 "$tmp/snap5/state" >"$tmp/notsnap/state"
out=$(v vm run --restore "$tmp/notsnap" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'cut short\|runs past the end of the file'; then ok "vm run --restore of a truncated state file: a clear error"; else not_ok "restore truncated" "status $rc: $out"; fi
# A VM with a virtio device (rng on PCI): the snapshot holds its configuration, so the restore alone builds
# it again; a restore told of another device kind is refused naming both.
v vm run -d --name t6 --kernel "$G/tick.elf" --rng --memory 32M >/dev/null 2>&1
runs 20 t6
out=$(v vm snapshot --stop t6 "$tmp/snap6" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ -s "$tmp/snap6/state" ]; then ok "vm snapshot of a VM with a virtio device (rng)"; else not_ok "snapshot with PCI" "status $rc: $out"; fi
out=$(v vm run -d --name t6r --restore "$tmp/snap6" 2>&1); rc=$?
if [ $rc -eq 0 ] && runs 20 t6r && v vm api t6r GET /vm/config | grep -q '"vcpu_count": *1'; then
	ok "vm run --restore builds the snapshot's devices from the snapshot (no device options)"
else not_ok "restore with PCI" "status $rc: $out"; fi
v vm kill t6r
# The balloon's target changed while the VM runs (the tiny guest has no driver: what is checked is the
# VMM's side): `vm balloon`, the API's answers, refusals that change nothing, and a snapshot that keeps it.
bal_field() { v vm balloon "$1" | sed -n "s/^$2 //p"; }
v vm run -d --name t8 --kernel "$G/tick.elf" --balloon 0,stats=0 --memory 32M >/dev/null 2>&1
runs 20 t8
if [ "$(bal_field t8 target_mib) $(bal_field t8 actual_mib)" = "0 0" ]; then ok "vm balloon: a --balloon 0 VM's target and actual are 0"; else not_ok "vm balloon 0" "$(v vm balloon t8 2>&1)"; fi
out=$(v vm balloon t8 8M 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(bal_field t8 target_mib)" = 8 ] && v vm api t8 GET /balloon | grep -q '"amount_mib": *8,' &&
	v vm api t8 GET /vm/config | grep -q '"balloon": *{ *"amount_mib": *8,'; then
	ok "vm balloon t8 8M: the target is 8 MiB (GET /balloon/statistics, GET /balloon, GET /vm/config)"
else not_ok "vm balloon 8M" "status $rc: $out" "$(v vm balloon t8 2>&1 | tr '\n' ' ')"; fi
out=$(v vm balloon t8 0 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(bal_field t8 target_mib)" = 0 ] && v vm balloon t8 8M; then ok "vm balloon t8 0: the target is 0 again"; else not_ok "vm balloon 0" "status $rc: $out"; fi
out=$(v vm api t8 PATCH /balloon '{"amount_mib":32}' 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'not smaller than the VM.s memory (32 MiB)' && [ "$(bal_field t8 target_mib)" = 8 ]; then
	ok "API: PATCH /balloon of the whole memory: 400, the target unchanged"
else not_ok "PATCH /balloon too big" "status $rc: $out"; fi
out=$(v vm api t8 PATCH /balloon/statistics '{"stats_polling_interval_s":2}' 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'statistics are off'; then ok "API: PATCH /balloon/statistics without statistics: 400"; else not_ok "PATCH stats interval" "status $rc: $out"; fi
out=$(v vm balloon t8 1536K 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q 'whole MiB'; then ok "vm balloon with a size that is not whole MiB: a usage error"; else not_ok "vm balloon 1536K" "status $rc: $out"; fi
v vm snapshot --stop t8 "$tmp/snap8" >/dev/null 2>&1
out=$(v vm run -d --name t8r --restore "$tmp/snap8" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(bal_field t8r target_mib)" = 8 ] && v vm api t8r GET /vm/config | grep -q '"amount_mib": *8,'; then
	ok "vm run --restore: the balloon's changed target (8 MiB) comes with the snapshot"
else not_ok "restore keeps the balloon target" "status $rc: $out" "$(v vm balloon t8r 2>&1 | tr '\n' ' ')"; fi
v vm kill t8r
# A disk given a new image while the VM runs (PATCH /drives/ID): the VM's configuration names the new image,
# the old one is let go (another VM can open it for writing), bad requests change nothing, and a snapshot
# freezes the new image.
head -c 1048576 /dev/zero >"$tmp/d9a.img"; head -c 2097152 /dev/zero >"$tmp/d9b.img"; mkdir -p "$tmp/d9dir"
v vm run -d --name t9 --kernel "$G/tick.elf" --memory 32M --disk "$tmp/d9a.img" >/dev/null 2>&1
runs 20 t9
out=$(v vm disk t9 change vdz "$tmp/d9b.img" 2>&1); rc=$?
out2=$(v vm disk t9 change vda "$tmp/d9dir" 2>&1); rc2=$?
out3=$(v vm disk t9 change vda "$tmp/d9a.img" 2>&1); rc3=$?
if [ "$rc $rc2 $rc3" = "1 1 1" ] && echo "$out" | grep -q "no drive 'vdz'" && echo "$out2" | grep -qi 'is a directory' &&
	echo "$out3" | grep -q "already this disk's image" && v vm api t9 GET /vm/config | grep -q "\"path_on_host\": *\"$tmp/d9a.img\""; then
	ok "vm disk change: an unknown drive, a directory, the disk's own image: refused, the disk unchanged"
else not_ok "vm disk change refusals" "$rc: $out" "$rc2: $out2" "$rc3: $out3"; fi
virtus_abs=$(realpath "$VIRTUS")
out=$(cd "$tmp" && timeout -s KILL 30 "$virtus_abs" vm disk t9 change vda d9b.img 2>&1); rc=$?
if [ $rc -eq 0 ] && v vm api t9 GET /vm/config | grep -q "\"drive_id\": *\"vda\", *\"path_on_host\": *\"$tmp/d9b.img\"" && runs 5 t9; then
	ok "vm disk t9 change vda IMAGE (a relative path): the VM runs on, its configuration names the new image"
else not_ok "vm disk change" "status $rc: $out" "$(v vm api t9 GET /vm/config 2>&1)"; fi
# Counters (GET /metrics): uptime, vCPU exits (the tick guest exits at every tick: the total grows), the disk
# by its drive ID with its queue; the tick guest has no virtio driver, so no request and no kick.
v vm metrics t9 >"$tmp/metrics1" 2>&1; rc=$?
sleep 1; v vm metrics t9 >"$tmp/metrics2" 2>&1
e1=$(sed -n 's/^vcpu_exits.total //p' "$tmp/metrics1"); e2=$(sed -n 's/^vcpu_exits.total //p' "$tmp/metrics2")
if [ $rc -eq 0 ] && [[ "$e1" =~ ^[0-9]+$ ]] && [[ "$e2" =~ ^[0-9]+$ ]] && [ "$e2" -gt "$e1" ] && grep -q '^uptime_ms [1-9]' "$tmp/metrics1" &&
	grep -q '^vda.kind virtio-blk$' "$tmp/metrics1" && grep -q '^vda.read_ops 0$' "$tmp/metrics1" && grep -q '^vda.q0.kicks 0$' "$tmp/metrics1"; then
	ok "vm metrics: uptime, vCPU exits growing ($e1 -> $e2), the disk's counters under its drive ID"
else not_ok "vm metrics" "status $rc, exits '$e1' -> '$e2'" "$(head -n 20 "$tmp/metrics1")"; fi
v vm metrics --json t9 >"$tmp/metricsj" 2>&1
if grep -q '"id": *"vda"' "$tmp/metricsj" && grep -q '"kind": *"virtio-blk"' "$tmp/metricsj" && grep -q '"write_bytes": *0' "$tmp/metricsj"; then
	ok "vm metrics --json: GET /metrics's object"; else not_ok "vm metrics --json" "$(head -c 400 "$tmp/metricsj")"; fi
out=$(v vm run -d --name t9b --kernel "$G/tick.elf" --memory 32M --disk "$tmp/d9a.img" 2>&1); rc=$?
if [ $rc -eq 0 ]; then ok "vm disk change: the old image is let go (another VM opens it for writing)"; else not_ok "old image still locked" "status $rc: $out"; fi
v vm kill t9b >/dev/null 2>&1
ino=$(stat -c %i "$tmp/d9b.img")
v vm snapshot --stop t9 "$tmp/snap9" >/dev/null 2>&1
if [ "$(stat -c %i "$tmp/snap9/disk0.raw" 2>/dev/null)" = "$ino" ]; then
	ok "vm snapshot after vm disk change: the new image (2 MiB) is the one frozen"
else not_ok "snapshot after change" "$(ls -l "$tmp/snap9" 2>&1 | tr '\n' ' ')"; fi
# Disks plugged in and removed while the VM runs (ACPI PCI hot-plug). The tiny guest has no ACPI: it never
# scans a slot nor lets go of a disk, so these checks are the VMM's side (the Debian guest's is in the nested
# suite): the configuration, the bad requests (each changing nothing), a removal the guest never agrees to
# (times out, the disk stays), and a snapshot that keeps the plugged-in disk.
head -c 1048576 /dev/zero >"$tmp/d10a.img"; head -c 3145728 /dev/zero >"$tmp/d10b.img"; head -c 1048576 /dev/zero >"$tmp/d10c.img"
drive_ids() { v vm api "$1" GET /vm/config | tr ',' '\n' | sed -n 's/.*"drive_id": *"\([^"]*\)".*/\1/p' | tr '\n' ' '; }
v vm run -d --name t10 --kernel "$G/tick.elf" --memory 32M --disk "$tmp/d10a.img" >/dev/null 2>&1
runs 20 t10
out=$(v vm disk t10 add hp1 "$tmp/d10b.img" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(drive_ids t10)" = "vda hp1 " ] && v vm api t10 GET /drives/hp1 | grep -q '"state": *"attached"' && runs 5 t10; then
	ok "vm disk add: the disk is plugged in, the VM's configuration lists it, the VM runs on"
else not_ok "vm disk add" "status $rc: $out" "$(drive_ids t10)"; fi
o1=$(v vm disk t10 add hp1 "$tmp/d10c.img" 2>&1); r1=$?
o2=$(v vm disk t10 add hp2 "$tmp/missing.img" 2>&1); r2=$?
o3=$(v vm disk t10 add 'bad/id' "$tmp/d10c.img" 2>&1); r3=$?
o4=$(v vm disk t10 add hp3 "$tmp/d10a.img" 2>&1); r4=$?
o5=$(v vm api t10 PUT /drives/hp4 "{\"drive_id\":\"hp4\",\"path_on_host\":\"$tmp/d10c.img\",\"is_root_device\":true}" 2>&1); r5=$?
if [ "$r1 $r2 $r3 $r4 $r5" = "1 1 1 1 1" ] && echo "$o1" | grep -q "drive 'hp1' exists" && echo "$o2" | grep -q 'No such file' &&
	echo "$o3" | grep -q "letters, digits" && echo "$o4" | grep -q "is the image of this VM's drive vda" && echo "$o5" | grep -q 'cannot be its root device' &&
	[ "$(drive_ids t10)" = "vda hp1 " ]; then
	ok "vm disk add: an ID in use, a missing image, a bad ID, the VM's own disk's image, a root device: refused, nothing changed"
else not_ok "vm disk add refusals" "$r1: $o1" "$r2: $o2" "$r3: $o3" "$r4: $o4" "$r5: $o5" "$(drive_ids t10)"; fi
out=$(v vm disk t10 remove hp1 --timeout 1 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'did not let go of drive hp1 within 1 s' && [ "$(drive_ids t10)" = "vda hp1 " ] && runs 5 t10; then
	ok "vm disk remove: a guest that never lets go (no ACPI): times out with a message, the disk stays"
else not_ok "vm disk remove timeout" "status $rc: $out" "$(drive_ids t10)"; fi
o1=$(v vm disk t10 remove hpx 2>&1); r1=$?
v vm api t10 DELETE /drives/hp1 '{"timeout_s": 3}' >/dev/null 2>&1
o2=$(v vm api t10 DELETE /drives/vda 2>&1); r2=$?
o3=$(v vm api t10 PUT /snapshot/create "{\"snapshot_path\":\"$tmp/s10x\",\"mem_file_path\":\"$tmp/m10x\"}" 2>&1); r3=$?
o4=$(v vm api t10 DELETE /drives/hp1 '{"timeout_s": 0}' 2>&1); r4=$?
if [ "$r1 $r2 $r3 $r4" = "1 1 1 1" ] && echo "$o1" | grep -q "no drive 'hpx'" && echo "$o2" | grep -q "'hp1' is being removed" &&
	echo "$o3" | grep -q "being removed" && echo "$o4" | grep -q 'timeout_s'; then
	ok "API: DELETE /drives/ID of an unknown drive, a second removal, a snapshot during a removal, a bad timeout: refused"
else not_ok "DELETE /drives refusals" "$r1: $o1" "$r2: $o2" "$r3: $o3" "$r4: $o4"; fi
sleep 3
v vm snapshot --stop t10 "$tmp/snap10" >/dev/null 2>&1
out=$(v vm run -d --name t10r --restore "$tmp/snap10" 2>&1); rc=$?
# (the first disk's ID after a restore is its serial: the snapshot froze its image and kept the serial)
if [ $rc -eq 0 ] && [ "$(drive_ids t10r | awk '{ print NF, $2 }')" = "2 hp1" ] && grep -aq '"pci_slot":2' "$tmp/snap10/state" && runs 5 t10r; then
	ok "vm snapshot/--restore: the plugged-in disk comes back, in the same PCI slot"
else not_ok "restore with a plugged-in disk" "status $rc: $out" "$(drive_ids t10r)" "$(grep -ao '"disks":[^]]*]' "$tmp/snap10/state" 2>&1)"; fi
# and a live migration of it: the destination builds the disk from the source's configuration, in the slot
# the guest knows it in (the device state is checked against it)
v vm run -d --name t10m --incoming "unix:$tmp/mig10.sock" >/dev/null 2>&1
out=$(v vm migrate t10r "unix:$tmp/mig10.sock" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(drive_ids t10m | awk '{ print NF, $2 }')" = "2 hp1" ] && runs 5 t10m; then
	ok "vm migrate: the plugged-in disk moves with the VM, in the same PCI slot"
else not_ok "migrate with a plugged-in disk" "status $rc: $out" "$(drive_ids t10m 2>&1)"; fi
v vm kill t10m
v vm kill t10r >/dev/null 2>&1
# Firecracker's way: a VMM started with only --api-socket loads the snapshot through the API, paused until
# told to resume; a memory backend it does not have is refused first, changing nothing.
v vm run -d --name ld --api-socket "$tmp/ld.sock" >/dev/null 2>&1
out=$(v vm api ld PUT /snapshot/load "{\"snapshot_path\":\"$tmp/snap6/state\",\"mem_backend\":{\"backend_path\":\"$tmp/snap6/memory\",\"backend_type\":\"Uffd\"}}" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "backend_type: 'Uffd' is not supported"; then ok "API: PUT /snapshot/load with another memory backend: 400"; else not_ok "snapshot/load Uffd" "status $rc: $out"; fi
out=$(v vm api ld PUT /snapshot/load "{\"snapshot_path\":\"$tmp/snap6/state\",\"mem_backend\":{\"backend_path\":\"$tmp/snap6/memory\",\"backend_type\":\"File\"},\"resume_vm\":false}" 2>&1); rc=$?
sleep 1
state=$(v vm api ld GET / | sed -n 's/.*"state": *"\([A-Za-z]*\)".*/\1/p')
if [ $rc -eq 0 ] && [ "$state" = Paused ] && ! grows ld 1; then ok "API: PUT /snapshot/load (resume_vm false): the snapshot's VM, paused"; else not_ok "snapshot/load" "status $rc: $out" "state '$state'"; fi
v vm resume ld
if runs 20 ld && [ "$(v vm logs ld | grep -c 'tick: start')" = 0 ]; then ok "API: the loaded VM resumes where the snapshot was"; else not_ok "loaded VM resumes"; fi
v vm kill ld
out=$(v vm run --restore "$tmp/snap6" --balloon 4M 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'virtio-balloon'; then ok "vm run --restore with another device: refused naming it"; else not_ok "restore with another device" "status $rc: $out"; fi

# Disk checkpoints: a snapshot freezes a writable disk in DIR (a hard link) and the VM goes on in a new qcow2
# overlay at the disk's path; a second snapshot chains; a restore is refused while the VM holds the disk,
# and once it is gone puts the disk back as an overlay over the first checkpoint's layer.
backing_of() { head -c 4096 "$1" | tr '\000' '\n' | grep -ao "$tmp/snap7.*" | head -n1; }
head -c 1048576 /dev/urandom >"$tmp/d7.img"
ino=$(stat -c %i "$tmp/d7.img")
v vm run -d --name t7 --kernel "$G/tick.elf" --memory 32M --disk "$tmp/d7.img" >/dev/null 2>&1
runs 20 t7
v vm pause t7
out=$(v vm api t7 PUT /snapshot/create '{"snapshot_path":"rel7.state","mem_file_path":"rel7.mem"}' 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'must be absolute' && [ "$(head -c 4 "$tmp/d7.img" | od -An -c | tr -d ' ')" != 'QFI373' ] &&
   [ "$(ls "$tmp" | grep -c -e '^d7.img.checkpoint-' -e 'rel7')" = 0 ]; then
	ok "API: a snapshot of a VM with a writable disk needs an absolute path (400); the disk and files are left as they were"
else not_ok "snapshot relative path" "status $rc: $out"; fi
v vm resume t7
out=$(v vm snapshot t7 "$tmp/snap7" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(stat -c %i "$tmp/snap7/disk0.raw" 2>/dev/null)" = "$ino" ] && [ "$(head -c 3 "$tmp/d7.img")" = QFI ] &&
   [ "$(backing_of "$tmp/d7.img")" = "$tmp/snap7/disk0.raw" ] && runs 5 t7; then
	ok "vm snapshot: the raw disk is kept as DIR/disk0.raw (the same file), the VM runs on in a qcow2 overlay over it"
else not_ok "disk checkpoint" "status $rc: $out" "$(ls "$tmp/snap7" 2>&1)" "backing '$(backing_of "$tmp/d7.img")'"; fi
out=$(v vm snapshot t7 "$tmp/snap7b" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(backing_of "$tmp/snap7b/disk0.qcow2")" = "$tmp/snap7/disk0.raw" ] &&
   [ "$(backing_of "$tmp/d7.img")" = "$tmp/snap7b/disk0.qcow2" ]; then
	ok "vm snapshot again: the overlay is frozen as DIR/disk0.qcow2, the chain grows by one"
else not_ok "second disk checkpoint" "status $rc: $out" "backing '$(backing_of "$tmp/d7.img")'"; fi
out=$(v vm run -d --name t7r --restore "$tmp/snap7" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'in use by a running VM' && [ ! -e "$VIRTUS_VM_RUN_DIR/t7r" ] &&
   [ "$(backing_of "$tmp/d7.img")" = "$tmp/snap7b/disk0.qcow2" ]; then
	ok "vm run --restore while the VM holds the disk: refused, the disk untouched, nothing left"
else not_ok "restore over a disk in use" "status $rc: $out"; fi
v vm kill t7
out=$(v vm run -d --name t7r --restore "$tmp/snap7" 2>&1); rc=$?
if [ $rc -eq 0 ] && runs 20 t7r && [ "$(backing_of "$tmp/d7.img")" = "$tmp/snap7/disk0.raw" ] &&
   [ "$(stat -c %i "$tmp/snap7/disk0.raw")" = "$ino" ] && [ "$(backing_of "$tmp/snap7b/disk0.qcow2")" = "$tmp/snap7/disk0.raw" ]; then
	ok "vm run --restore: the disk becomes a new overlay over the checkpoint's layer, the other checkpoint kept"
else not_ok "restore with a disk checkpoint" "status $rc: $out" "backing '$(backing_of "$tmp/d7.img")'"; fi
v vm kill t7r

# Live migration between two VMMs: the tick guest (2 vCPUs, rng on PCI) moves to a VMM waiting with
# --incoming; the source ends, the destination's console goes on without a new boot and takes input. Then
# over TCP, and the failures: nobody listening, a destination that refuses the machine (the source goes on).
v vm run -d --name m1 --kernel "$G/tick.elf" --cpus 2 --memory 32M --rng >/dev/null 2>&1
runs 20 m1
out=$(v vm run -d --name m2 --incoming "unix:$tmp/mig.sock" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$out" = m2 ] && [ -S "$tmp/mig.sock" ]; then ok "vm run -d --incoming: listens and returns with the name"; else not_ok "incoming" "status $rc: $out"; fi
if v vm api m2 GET / | grep -q '"state": *"Waiting for migration"'; then ok "a VMM waiting for a migration says so on its API"; else not_ok "waiting state" "$(v vm api m2 GET / 2>&1)"; fi
m1pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$VIRTUS_VM_RUN_DIR/m1/vm.json")
v vm migrate m1 "unix:$tmp/mig.sock" >"$tmp/mig.out" 2>"$tmp/mig.err"; rc=$?
if [ $rc -eq 0 ] && grep -q '^m1 migrated to unix:.* in [0-9]* ms (paused [0-9]* ms' "$tmp/mig.out"; then ok "vm migrate: completes and says so ($(cat "$tmp/mig.out"))"
else not_ok "vm migrate" "status $rc: $(cat "$tmp/mig.out" "$tmp/mig.err")"; fi
if wait_for 10 sh -c "! kill -0 $m1pid 2>/dev/null" && [ ! -e "$VIRTUS_VM_RUN_DIR/m1" ]; then ok "vm migrate: the source VMM ends, its directory goes"; else not_ok "source left" "$(ls "$VIRTUS_VM_RUN_DIR")"; fi
if runs 20 m2 && [ "$(v vm logs m2 | grep -c 'tick: start')" = 0 ]; then ok "vm migrate: the guest goes on at the destination (no boot banner)"
else not_ok "destination guest" "$(v vm logs m2 | tail -c 200)"; fi
v vm info m2 >"$tmp/info"
if grep -q '^vcpus: *2' "$tmp/info" && grep -q '^memory: *32 MiB' "$tmp/info" && v vm api m2 GET /vm/config >/dev/null; then ok "vm migrate: the destination has the source's 2 vCPUs and 32 MiB"; else not_ok "destination shape" "$(cat "$tmp/info")"; fi
(sleep 1; printf 'm'; sleep 2; printf '\001x') | v vm console m2 >"$tmp/con" 2>&1
# what a stalled destination was doing (seen once in a few runs: the guest stopped printing after a while)
if grep -q '<m>' "$tmp/con"; then ok "vm migrate: the destination's serial port takes input"; else not_ok "migrated console input" "$(head -c 200 "$tmp/con")" "$(stall_report "$(vmm_pid m2)")"; fi
if [ ! -e "$tmp/mig.sock" ]; then ok "vm run --incoming: its socket is gone once the migration arrived"; else not_ok "incoming socket left"; fi
out=$(v vm migrate m2 "unix:$tmp/nobody.sock" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'cannot connect' && runs 5 m2; then ok "vm migrate to nowhere: a clear error, the VM goes on"; else not_ok "migrate to nowhere" "status $rc: $out"; fi
# A destination that breaks off half-way (it reads 20 KB, then hangs up; it ends by itself): python3 on a
# host, the vsock tool (tests/suite-kvm gives it) in L1.
broken_destination() {
	if command -v python3 >/dev/null; then
		python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); s.settimeout(20); c, _ = s.accept(); n = 0
while n < 20000:
    b = c.recv(4096)
    if not b: break
    n += len(b)
c.close()' "$1" &
	elif [ -x "${VSOCK_TOOL:-}" ]; then
		{ sleep 15 | "$VSOCK_TOOL" unix-listen "$1" 2>/dev/null | head -c 20000 >/dev/null; } &
	else
		return 1
	fi
	wait_for 5 test -S "$1"
}
if broken_destination "$tmp/half.sock"; then
	out=$(v vm migrate m2 "unix:$tmp/half.sock" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q 'failed; it goes on here' && runs 5 m2 &&
	   [ "$(v vm api m2 GET / | sed -n 's/.*"state": *"\([A-Za-z]*\)".*/\1/p')" = Running ]; then
		ok "vm migrate to a destination that breaks off half-way: fails, the source goes on"
	else not_ok "half-way failure" "status $rc: $out"; fi
else not_ok "half-way failure" "neither python3 nor the vsock tool (VSOCK_TOOL) to play a broken destination"; fi
v vm run -d --name m3 --incoming "unix:$tmp/mig3.sock" --memory 64M >/dev/null 2>&1
out=$(v vm migrate m2 "unix:$tmp/mig3.sock" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'refused the VM: .*32 MiB, --memory says 64 MiB' && runs 5 m2 &&
   [ "$(v vm api m2 GET / | sed -n 's/.*"state": *"\([A-Za-z]*\)".*/\1/p')" = Running ]; then
	ok "vm migrate to a destination of another machine: refused with its reason, the source goes on"
else not_ok "incompatible destination" "status $rc: $out"; fi
if wait_for 10 test ! -e "$VIRTUS_VM_RUN_DIR/m3"; then ok "the refusing destination ends, nothing left"; else not_ok "m3 left"; fi
port=$((20000 + RANDOM % 20000))
ip link show lo 2>/dev/null | grep -q 'state UP\|,UP' || ip link set lo up 2>/dev/null # the nested bed's L1 starts without it
v vm run -d --name m4 --incoming "tcp:127.0.0.1:$port" >/dev/null 2>&1
out=$(v vm migrate --downtime 100 m2 "tcp:127.0.0.1:$port" 2>&1); rc=$?
if [ $rc -eq 0 ] && runs 20 m4 && [ ! -e "$VIRTUS_VM_RUN_DIR/m2" ]; then ok "vm migrate over TCP"; else not_ok "migrate over tcp" "status $rc: $out"; fi
v vm run -d --name m5 --incoming "unix:$tmp/mig5.sock" >/dev/null 2>&1
v vm kill m5 2>"$tmp/kill.err"; rc=$?
if [ $rc -eq 0 ] && [ ! -s "$tmp/kill.err" ] && [ ! -e "$tmp/mig5.sock" ] && [ ! -e "$VIRTUS_VM_RUN_DIR/m5" ]; then
	ok "vm kill of a VMM waiting for a migration: through its API, nothing left"
else not_ok "kill waiting" "status $rc: $(cat "$tmp/kill.err")" "$(ls "$tmp" "$VIRTUS_VM_RUN_DIR" 2>&1)"; fi
api_m() { v vm api m4 "$@" 2>&1; }
out=$(api_m PUT /migrate '{"downtime_ms":5}'); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'destination_url: missing'; then ok "API: PUT /migrate without a destination: 400 naming it"; else not_ok "migrate no url" "$out"; fi
out=$(api_m PUT /migrate '{"destination_url":"ftp:x","downtime_ms":5}'); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'expected tcp:HOST:PORT or unix:PATH'; then ok "API: PUT /migrate to a URL of another kind: 400"; else not_ok "migrate ftp" "$out"; fi
out=$(api_m PUT /migrate '{"destination_url":"tcp:some.host:1"}'); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'is not an IP address'; then ok "API: PUT /migrate to a host name: 400 (the VMM resolves no names)"; else not_ok "migrate name" "$out"; fi
out=$(api_m PUT /migrate '{"destination_url":"unix:/x","downtime_ms":0}'); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'downtime_ms: expected a whole number from 1'; then ok "API: PUT /migrate with downtime_ms 0: 400"; else not_ok "migrate downtime 0" "$out"; fi
if api_m GET /migrate | grep -q '"state": *"failed"\|"state": *"none"'; then ok "API: GET /migrate answers"; else not_ok "GET /migrate" "$(api_m GET /migrate)"; fi
v vm kill m4

# A jailed VMM (--jail; root only): it takes a migration (--incoming: its jail keeps the host's network,
# where it listens) and goes on as uid 65534, leaving no socket; `vm snapshot` hands it the files on its
# handoff socket; what it cannot reach from its jail is refused with the reason and changes nothing (a path
# through the API, a writable disk's checkpoint, a unix: destination, tcp: from a jail with a network of its
# own); over TCP it migrates out; and a jailed VMM restores the jailed VMM's snapshot.
jailed_uid() { # NAME: the uid of the jailed VMM (the child of the supervisor vm.json names; no pgrep -P in L1)
	local sup status
	sup=$(vmm_pid "$1") && [ -n "$sup" ] || return 0
	status=$(grep -l "^PPid:[[:space:]]*$sup\$" /proc/[0-9]*/status 2>/dev/null | head -n1)
	[ -n "$status" ] && awk '/^Uid:/ { print $2 }' "$status"
}
if [ "$(id -u)" = 0 ]; then
	v vm run -d --name j1 --kernel "$G/tick.elf" --memory 32M >/dev/null 2>&1
	runs 20 j1
	out=$(v vm run -d --name j2 --jail --incoming "unix:$tmp/migj.sock" 2>&1); rc=$?
	out2=$(v vm migrate j1 "unix:$tmp/migj.sock" 2>&1); rc2=$?
	if [ $rc -eq 0 ] && [ $rc2 -eq 0 ] && runs 20 j2 && [ "$(jailed_uid j2)" = 65534 ] && [ ! -e "$tmp/migj.sock" ]; then
		ok "vm run --jail --incoming: the VM arrives in a jailed VMM (uid 65534) and runs, no socket left"
	else not_ok "jailed incoming" "status $rc: $out; migrate $rc2: $out2; uid $(jailed_uid j2)"; fi
	out=$(v vm snapshot j2 "$tmp/snapj" 2>&1); rc=$?
	if [ $rc -eq 0 ] && [ -s "$tmp/snapj/state" ] && [ -e "$tmp/snapj/memory" ] && [ -S "$VIRTUS_VM_RUN_DIR/j2/handoff.sock" ] &&
	   runs 10 j2; then
		ok "vm snapshot of a jailed VMM: handed the files on its handoff socket, it writes them; the VM goes on"
	else not_ok "jailed snapshot" "status $rc: $out" "$(ls -la "$tmp/snapj" "$VIRTUS_VM_RUN_DIR/j2" 2>&1)"; fi
	out=$(v vm api j2 PUT /snapshot/create "{\"snapshot_path\":\"$tmp/sj/state\",\"mem_file_path\":\"$tmp/sj/memory\"}" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q 'the VMM is jailed (--jail): it cannot create files on the host by path'; then
		ok "API: PUT /snapshot/create on a jailed VMM: 400 with the reason (paths are not reachable from the jail)"
	else not_ok "jailed PUT snapshot" "status $rc: $out"; fi
	out=$(v vm migrate j2 "unix:$tmp/nowhere.sock" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q 'jailed (--jail) and reaches no host path' && runs 10 j2; then
		ok "vm migrate of a jailed VMM to unix:PATH: refused with the reason, the VM goes on"
	else not_ok "jailed migrate unix" "status $rc: $out"; fi
	port=$((20000 + RANDOM % 20000))
	v vm run -d --name j3 --incoming "tcp:127.0.0.1:$port" >/dev/null 2>&1
	out=$(v vm migrate j2 "tcp:127.0.0.1:$port" 2>&1); rc=$?
	if [ $rc -eq 0 ] && runs 20 j3 && wait_for 10 test ! -e "$VIRTUS_VM_RUN_DIR/j2"; then
		ok "vm migrate out of a jailed VMM over TCP: the VM goes on at the destination, the jail ends"
	else not_ok "jailed migrate tcp" "status $rc: $out"; fi
	v vm kill j3
	out=$(v vm run -d --name j4 --jail --restore "$tmp/snapj" 2>&1); rc=$?
	if [ $rc -eq 0 ] && runs 20 j4 && [ "$(jailed_uid j4)" = 65534 ] && [ "$(v vm logs j4 | grep -c 'tick: start')" = 0 ]; then
		ok "vm run --jail --restore: the jailed VMM's snapshot goes on in another jailed VMM (no new boot)"
	else not_ok "jailed restore" "status $rc: $out; uid $(jailed_uid j4)"; fi
	v vm kill j4
	v vm run -d --name j6 --kernel "$G/tick.elf" --memory 32M --vsock "3,$tmp/vj.sock" >/dev/null 2>&1
	v vm run -d --name j7 --jail --incoming "unix:$tmp/migj7.sock" >/dev/null 2>&1
	out=$(v vm migrate j6 "unix:$tmp/migj7.sock" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q 'a jailed destination needs --vsock CID,PATH on its command line' &&
	   runs 10 j6 && wait_for 10 test ! -e "$VIRTUS_VM_RUN_DIR/j7" && [ ! -e "$tmp/migj7.sock" ]; then
		ok "vm migrate of a VM with vsock to a jailed --incoming without --vsock: refused with the reason, the source goes on"
	else not_ok "jailed incoming vsock" "status $rc: $out"; fi
	v vm kill j6
	head -c 1048576 /dev/zero >"$tmp/jd.raw"
	v vm run -d --name j5 --jail --kernel "$G/tick.elf" --memory 32M --disk "$tmp/jd.raw" >/dev/null 2>&1
	out=$(v vm snapshot j5 "$tmp/snapj5" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q 'disk 1 is writable' && [ ! -e "$tmp/snapj5" ] && runs 10 j5; then
		ok "vm snapshot of a jailed VMM with a writable disk: refused with the reason, no directory, the VM goes on"
	else not_ok "jailed snapshot with a disk" "status $rc: $out" "$(ls -la "$tmp/snapj5" 2>&1)"; fi
	out=$(v vm migrate j5 "tcp:127.0.0.1:$port" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q 'network namespace of its own' && runs 10 j5; then
		ok "vm migrate of a jailed VMM with a network of its own (no --net): refused with the reason, the VM goes on"
	else not_ok "jailed migrate own netns" "status $rc: $out"; fi
	v vm kill j5
	if [ -z "$(ls "$VIRTUS_VM_RUN_DIR" 2>/dev/null)" ] && [ -z "$(ls -A /run/virtus 2>/dev/null | grep '^vm-')" ]; then
		ok "jailed VMMs: nothing left (VM directories, jail directories)"
	else not_ok "jail leftovers" "$(ls "$VIRTUS_VM_RUN_DIR" /run/virtus 2>&1)"; fi
else
	for t in "vm run --jail --incoming" "vm snapshot of a jailed VMM" "API: PUT /snapshot/create on a jailed VMM" \
		"vm snapshot of a jailed VMM with a writable disk" "vm migrate of a jailed VMM to unix:PATH" \
		"vm migrate out of a jailed VMM over TCP" "vm run --jail --restore" "vm migrate to a jailed --incoming without --vsock" \
		"vm migrate of a jailed VMM with a network of its own" \
		"jailed VMMs: nothing left"; do
		n=$((n + 1)); echo "ok $n - $t # skip needs root"
	done
fi

# A VM configured and started through the API (Firecracker's way): --api-socket without --kernel.
out=$(v vm run -d --name pre --api-socket "$tmp/pre.sock" 2>&1); rc=$?
v vm api pre PUT /boot-source "{\"kernel_image_path\":\"$PWD/$G/tick.elf\"}" >/dev/null &&
	v vm api pre PUT /machine-config '{"vcpu_count":2,"mem_size_mib":32}' >/dev/null
cfg_rc=$?
v vm api pre PUT /actions '{"action_type":"InstanceStart"}' >"$tmp/start.out" 2>&1; start_rc=$?
state=$(v vm api pre GET / | sed -n 's/.*"state": *"\([A-Za-z ]*\)".*/\1/p')
if [ $rc -eq 0 ] && [ $cfg_rc -eq 0 ] && [ $start_rc -eq 0 ] && [ "$state" = Running ] && runs 20 pre; then
	ok "configured through the API, InstanceStart starts the VM (state Running, console grows)"
else not_ok "pre-boot start" "run $rc, configure $cfg_rc, start $start_rc: $(cat "$tmp/start.out")" "state '$state'"; fi
v vm info pre >"$tmp/info"
if grep -q '^vcpus: *2' "$tmp/info" && grep -q '^memory: *32 MiB' "$tmp/info"; then ok "the started VM has the configured 2 vCPUs and 32 MiB"; else not_ok "pre-boot shape" "$(cat "$tmp/info")"; fi
out=$(v vm api pre PUT /actions '{"action_type":"InstanceStart"}' 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'already running'; then ok "a second InstanceStart: 400, already running"; else not_ok "second InstanceStart" "status $rc: $out"; fi
v vm kill pre
if [ ! -e "$tmp/pre.sock" ] && [ ! -e "$VIRTUS_VM_RUN_DIR/pre" ]; then ok "the API-started VM killed: nothing left"; else not_ok "pre left" "$(ls -la "$tmp/pre.sock" "$VIRTUS_VM_RUN_DIR/pre" 2>&1)"; fi

# A foreground VM serves the API too: on --api-socket; a Kill through it ends the run with status 130.
sleep 30 | "$VIRTUS" vm run --name fg --api-socket "$tmp/fg.sock" --kernel "$G/tick.elf" >"$tmp/fg.out" 2>&1 & fgpid=$!
wait_for 20 test -S "$tmp/fg.sock"
out=$(v vm api fg GET / 2>&1)
if echo "$out" | grep -q '"id": *"fg"'; then ok "a foreground VM answers on --api-socket"; else not_ok "foreground --api-socket" "$out"; fi
v vm kill fg; wait $fgpid; rc=$?
if [ $rc -eq 130 ] && [ ! -e "$tmp/fg.sock" ] && [ ! -e "$VIRTUS_VM_RUN_DIR/fg" ]; then ok "a Kill through the API ends the foreground run (130), its sockets gone"
else not_ok "foreground kill" "status $rc" "$(ls -la "$tmp" "$VIRTUS_VM_RUN_DIR" 2>&1)"; fi

# A VMM killed with SIGKILL leaves a stale directory: vm ls drops it, the name is free again.
v vm run -d --name t2 --kernel "$G/tick.elf" >/dev/null 2>&1
pid=$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$VIRTUS_VM_RUN_DIR/t2/vm.json" 2>/dev/null)
kill -9 "$pid" 2>/dev/null; wait_for 5 sh -c "! kill -0 $pid 2>/dev/null"
v vm ls >"$tmp/ls"
if ! grep -q '^t2 ' "$tmp/ls" && [ ! -e "$VIRTUS_VM_RUN_DIR/t2" ]; then ok "vm ls removes a dead VM's directory"; else not_ok "stale t2" "$(cat "$tmp/ls")"; fi
out=$(v vm run -d --name t2 --kernel "$G/tick.elf" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$out" = t2 ]; then ok "the name of a dead VM can be used again"; else not_ok "reuse t2" "status $rc: $out"; fi
v vm kill t2

# A detached VM that cannot start: the error shows, nothing is left.
out=$(v vm run -d --name t3 --kernel "$G/hello.elf" --vsock "3,$tmp/nodir/v.sock" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q 'nodir' && [ ! -e "$VIRTUS_VM_RUN_DIR/t3" ]; then ok "a detached VM that cannot start: its error, status 1, nothing left"
else not_ok "detached failure" "status $rc: $out" "$(ls "$VIRTUS_VM_RUN_DIR" 2>&1)"; fi
# A detached VM whose guest powers off removes its directory.
v vm run -d --name t4 --kernel "$G/hello.elf" >/dev/null 2>&1
if wait_for 10 test ! -e "$VIRTUS_VM_RUN_DIR/t4"; then ok "a detached VM that powers off leaves nothing behind"; else not_ok "t4 left" "$(ls -la "$VIRTUS_VM_RUN_DIR/t4" 2>&1)"; fi

left=$(ls "$VIRTUS_VM_RUN_DIR" 2>/dev/null | wc -l)
if [ "$left" = 0 ]; then ok "at the end: no VM directory left"; else not_ok "VM directories left" "$(ls "$VIRTUS_VM_RUN_DIR")"; fi
echo "1..$n"
