#!/usr/bin/env bash
# containerd as the client: a private containerd (own root, state, socket; no CRI) whose runc v2 shim
# (containerd-shim-runc-v2) drives virtus-runtime through `ctr run --runc-binary`: run --rm with output and exit
# status, -t (console socket), a detached task with exec (-t too)/ps/pause/resume/kill/delete, a --memory-limit
# checked in the host's cgroup.
# Also the v1 shim with the binary named in containerd's config. The image is a busybox OCI archive built here
# (no network). cgroupfs: ctr leaves the shim's SystemdCgroup false (no systemd on this host).
. "$(dirname "$0")/lib.bash"
require_root
for tool in containerd ctr containerd-shim-runc-v2; do
	if ! command -v $tool >/dev/null; then echo "1..0 # skip $tool is not installed"; exit 0; fi
done
NS=vt-test-$$               # containerd namespace: also names the shim's runtime root and the cgroup parent
SOCK=$WORK/containerd.sock
IMG=localhost/vt-bb:latest
# The shim keeps its sockets, fifos and the runtime's --root under containerd's default state dir, whatever
# --state says: remember what existed so cleanup removes only what this test made.
RUN_DIR=/run/containerd
RUNC_ROOT=$RUN_DIR/runc/$NS
V1_ROOT=$WORK/v1-root
[ -e $RUN_DIR ] && RUN_DIR_EXISTED=1 || RUN_DIR_EXISTED=0
CTD_PID=

# Bounded, so that a runtime that hangs fails the test instead of blocking the suite.
ctr_() { timeout 20 ctr --address "$SOCK" --namespace "$NS" "$@"; }
# The host's cgroup layout decides where a controller's files are: v1 per controller, or unified v2.
CG_V2=0
[ -f /sys/fs/cgroup/cgroup.controllers ] && CG_V2=1
# cgroup_dir PID CONTROLLER: the directory of PID's cgroup for CONTROLLER
cgroup_dir() {
	local path
	if [ $CG_V2 = 1 ]; then
		path=$(sed -nE 's/^0::(.*)/\1/p' /proc/"$1"/cgroup 2>/dev/null) && echo "/sys/fs/cgroup$path"
	else
		path=$(sed -nE "s/^[0-9]+:([^:]*,)?$2(,[^:]*)?:(.*)/\\3/p" /proc/"$1"/cgroup 2>/dev/null) &&
			echo "/sys/fs/cgroup/$2$path"
	fi
}
# frozen DIR: the cgroup is frozen (v1 freezer.state, v2 cgroup.freeze)
frozen() { [ "$(cat "$1/freezer.state" 2>/dev/null)" = FROZEN ] || [ "$(cat "$1/cgroup.freeze" 2>/dev/null)" = 1 ]; }
# memory_limit DIR: v1 memory.limit_in_bytes or v2 memory.max
memory_limit() { cat "$1/memory.limit_in_bytes" 2>/dev/null || cat "$1/memory.max" 2>/dev/null; }

cleanup_containerd() {
	local id c
	if [ -n "$CTD_PID" ]; then
		for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task kill -s SIGKILL "$id" >/dev/null 2>&1; done
		sleep 0.2
		for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task delete -f "$id" >/dev/null 2>&1; done
		for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$id" >/dev/null 2>&1; done
		ctr_ images rm "$IMG" >/dev/null 2>&1
		ctr_ namespaces rm "$NS" >/dev/null 2>&1
		kill "$CTD_PID" 2>/dev/null
		wait "$CTD_PID" 2>/dev/null
		# a shim outlives containerd by design: end this namespace's shims, if a failure left any
		for c in $(pgrep -f "containerd-shim.* -namespace $NS "); do kill -9 "$c" 2>/dev/null; done
	fi
	for c in "$RUNC_ROOT" "$V1_ROOT/$NS"; do
		for id in $(ls "$c" 2>/dev/null); do "$RT" --root "$c" delete --force "$id" >/dev/null 2>&1; done
	done
	# containerd's overlay snapshots are mounted under its root: unmount anything left below $WORK
	for c in $(awk -v w="$WORK" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
		umount -l "$c" 2>/dev/null
	done
	rmdir "$RUNC_ROOT" /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/"$NS" 2>/dev/null
	if [ $RUN_DIR_EXISTED = 0 ]; then
		rmdir $RUN_DIR/runc $RUN_DIR/fifo $RUN_DIR/s $RUN_DIR 2>/dev/null
	fi
	cleanup_work
}
trap cleanup_containerd EXIT

# A busybox OCI image archive (oci-layout, index.json, blobs) for `ctr images import`.
make_image_archive() {
	local out=$1
	# only the bundle's rootfs is used: the image does not depend on the runtime under test
	make_bundle "$WORK/img" >/dev/null 2>&1
	[ -x "$WORK/img/rootfs/bin/busybox" ] || return 1
	ln -sf busybox "$WORK/img/rootfs/bin/tty"
	tar -C "$WORK/img/rootfs" -cf "$WORK/layer.tar" . || return 1
	"$(dirname "${BASH_SOURCE[0]}")/../lib/oci-archive" "$WORK/layer.tar" "$out" "$IMG"
}

write_config() {
	{
		"$(dirname "${BASH_SOURCE[0]}")/../lib/containerd-config" "$WORK/ctd-root" "$WORK/ctd-state" "$SOCK"
		cat <<EOF
# The binary chosen in containerd's own config: only the v1 shim (containerd-shim) reads one there; the v2
# shim takes BinaryName from the client (ctr --runc-binary) or from the CRI plugin's runtime options.
[plugins."io.containerd.runtime.v1.linux"]
  runtime = "$RT"
  runtime_root = "$V1_ROOT"
EOF
	} >"$WORK/containerd.toml"
}

start_containerd() {
	containerd --config "$WORK/containerd.toml" >"$WORK/containerd.log" 2>&1 &
	CTD_PID=$!
	local i
	for i in $(seq 100); do
		ctr --address "$SOCK" version >/dev/null 2>&1 && return 0
		kill -0 "$CTD_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# checkd DIAG NAME CMD...: like check, and on failure DIAG goes out as TAP comments
checkd() {
	local d=$1 name=$2; shift 2
	if "$@"; then ok "$name"; else not_ok "$name"; diag "$d"; fi
}

task_status() { ctr_ task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
task_pid() { ctr_ task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $2 }'; }

# status_under ROOT ID: the container's status as virtus-runtime sees it with that --root
status_under() {
	"$RT" --root "$1" state "$2" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null
}

# wait_status ID STATUS: up to 5 s
wait_status() {
	local i
	for i in $(seq 50); do [ "$(task_status "$1")" = "$2" ] && return 0; sleep 0.1; done
	return 1
}

write_config
if ! start_containerd; then
	reason=$(grep -m1 -iE 'level=(fatal|error)' "$WORK/containerd.log" | head -c 300)
	skip "containerd" "containerd did not start here: ${reason:-no socket after 10 s}"
	finish
fi
ok "a private containerd starts (own root, state and socket)"

make_image_archive "$WORK/bb.oci.tar"
ctr_ images import "$WORK/bb.oci.tar" >"$WORK/import.log" 2>&1
checkd "$(cat "$WORK/import.log")" "ctr images import of a busybox OCI archive" bash -c 'grep -qx "$0" <<<"$1"' "$IMG" "$(ctr_ images ls -q 2>/dev/null)"

RUN=(ctr_ run --runc-binary "$RT")

out=$("${RUN[@]}" --rm "$IMG" r1 sh -c 'echo hello-from-containerd; echo pid $$; cat /proc/1/comm; true' 2>&1)
checkd "$out" "ctr run --rm prints the container's output" [ "$out" = "hello-from-containerd
pid 1
sh" ]

"${RUN[@]}" --rm "$IMG" r2 sh -c 'exit 3' >/dev/null 2>&1; rc=$?
check "ctr run --rm returns the container's exit status (3)" [ $rc = 3 ]

# -t: the shim hands virtus-runtime a --console-socket; script(1) gives ctr the terminal it wants
out=$(timeout 20 script -qec "ctr --address $SOCK --namespace $NS run --runc-binary $RT -t --rm $IMG t1 sh -c 'tty; exit 6'" /dev/null \
	</dev/null 2>&1 | tr -d '\r'); rc=$?
# (ctr echoes a NUL, shown as ^@, before the output, with runc as well)
checkd "$out" "ctr run -t: the process has a pty" grep -qE '^(\^@)?/dev/pts/[0-9]+$' <<<"$out"
check "ctr run -t: the exit status (6)" [ $rc = 6 ]

"${RUN[@]}" -d "$IMG" d1 sleep 60 >/dev/null 2>"$WORK/err"
checkd "$(cat "$WORK/err")" "ctr run -d: the task is RUNNING" wait_status d1 RUNNING
check "the shim drives virtus-runtime with --root $RUNC_ROOT" [ "$(status_under "$RUNC_ROOT" d1)" = running ]
d1pid=$(task_pid d1)

out=$(ctr_ task exec --exec-id e1 d1 sh -c 'echo exec-ok; cat /proc/1/comm' 2>&1)
checkd "$out" "ctr task exec runs inside the container" [ "$out" = "exec-ok
sleep" ]
ctr_ task exec --exec-id e2 d1 sh -c 'exit 4' >/dev/null 2>&1; rc=$?
check "ctr task exec returns the exit status (4)" [ $rc = 4 ]

out=$(timeout 20 script -qec "ctr --address $SOCK --namespace $NS task exec -t --exec-id e3 d1 tty" /dev/null \
	</dev/null 2>&1 | tr -d '\r')
checkd "$out" "ctr task exec -t: the process has a pty" grep -qE '^(\^@)?/dev/pts/[0-9]+$' <<<"$out"

out=$(ctr_ task ps d1 2>&1)
checkd "$out" "ctr task ps lists the task's process ($d1pid)" bash -c 'awk "NR > 1 { print \$1 }" <<<"$0" | grep -qx "$1"' \
	"$out" "$d1pid"

ctr_ task pause d1 >/dev/null 2>&1
check "ctr task pause: PAUSED" wait_status d1 PAUSED
d1freezer=$(cgroup_dir "$d1pid" freezer)
check "its cgroup is frozen ($d1freezer)" frozen "$d1freezer"
ctr_ task resume d1 >/dev/null 2>&1
check "ctr task resume: RUNNING" wait_status d1 RUNNING

ctr_ task kill -s SIGKILL d1 >/dev/null 2>&1
check "ctr task kill -s SIGKILL: STOPPED" wait_status d1 STOPPED
check "the container's process is gone" bash -c '! kill -0 "$0" 2>/dev/null' "$d1pid"
out=$(ctr_ task delete d1 2>&1)
checkd "$out" "ctr task delete reports exit code 137" grep -q 'exit code 137' <<<"$out"
check "virtus-runtime's state for d1 is gone" [ ! -e "$RUNC_ROOT/d1" ]
ctr_ containers rm d1 >/dev/null 2>&1

limit=$((64 * 1024 * 1024))
"${RUN[@]}" -d --memory-limit $limit "$IMG" m1 sleep 60 >/dev/null 2>"$WORK/err"
wait_status m1 RUNNING
m1pid=$(task_pid m1)
m1dir=$(cgroup_dir "$m1pid" memory)
m1cg=${m1dir#/sys/fs/cgroup}; m1cg=${m1cg#/memory}
checkd "$(cat "$WORK/err")" "ctr run --memory-limit: the container is in cgroup $m1cg" [ "$m1cg" = "/$NS/m1" ]
check "its memory limit is $limit on the host" [ "$(memory_limit "$m1dir")" = $limit ]
ctr_ task kill -s SIGKILL m1 >/dev/null 2>&1
wait_status m1 STOPPED
ctr_ task delete m1 >/dev/null 2>&1
ctr_ containers rm m1 >/dev/null 2>&1
check "after delete its cgroups are gone" bash -c '! ls -d /sys/fs/cgroup/*/"$0"/m1 /sys/fs/cgroup/"$0"/m1 2>/dev/null | grep -q .' "$NS"

# The v1 shim (containerd-shim), with virtus-runtime named by containerd's config (no --runc-binary)
if ! command -v containerd-shim >/dev/null; then
	skip "v1 shim" "containerd-shim is not installed"
else
	V1=(ctr_ run --runtime io.containerd.runtime.v1.linux)
	out=$("${V1[@]}" --rm "$IMG" v1 sh -c 'echo hello-from-the-v1-shim; exit 5' 2>&1); rc=$?
	checkd "$out" "v1 shim (runtime = virtus-runtime in containerd's config): ctr run --rm output" \
		grep -qx hello-from-the-v1-shim <<<"$out"
	check "v1 shim: the exit status (5)" [ $rc = 5 ]
	"${V1[@]}" -d "$IMG" v1d sleep 60 >/dev/null 2>"$WORK/err"
	wait_status v1d RUNNING
	checkd "$(cat "$WORK/err")" "v1 shim: the container is virtus-runtime's, under runtime_root" \
		[ "$(status_under "$V1_ROOT/$NS" v1d)" = running ]
	ctr_ task kill -s SIGKILL v1d >/dev/null 2>&1
	check "v1 shim: ctr task kill -s SIGKILL: STOPPED" wait_status v1d STOPPED
	ctr_ task delete v1d >/dev/null 2>&1
	ctr_ containers rm v1d >/dev/null 2>&1
	check "v1 shim: no container state left under runtime_root" bash -c '[ -z "$(ls -A "$0" 2>/dev/null)" ]' "$V1_ROOT/$NS"
fi

check "no tasks or containers are left in containerd" [ -z "$(ctr_ task ls -q 2>&1)$(ctr_ containers ls -q 2>&1)" ]
check "no container state is left under virtus-runtime's --root ($RUNC_ROOT)" \
	bash -c '[ -z "$(ls -A "$0" 2>/dev/null)" ]' "$RUNC_ROOT"
# no_shim_left: none after up to 2 s (a shim exits shortly after its last task is deleted)
no_shim_left() {
	local i
	for i in $(seq 20); do pgrep -f "containerd-shim.* -namespace $NS " >/dev/null || return 0; sleep 0.1; done
	return 1
}
check "no shim is left for this namespace" no_shim_left
finish
