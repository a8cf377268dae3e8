#!/usr/bin/env bash
# podman as the client: podman + conmon drive virtus-runtime through create/start/state/kill/delete,
# exec (--process, --detach, --pid-file, console socket), pause/resume. Private podman storage in a
# temp dir. podman here needs --events-backend=file, cgroupfs, and explicit nofile/nproc ulimits (the
# host's hard limits are below podman's defaults and root lacks CAP_SYS_RESOURCE; runc fails the same way).
. "$(dirname "$0")/lib.bash"
require_root
if ! command -v podman >/dev/null; then echo "1..0 # skip podman is not installed"; exit 0; fi
PM=(podman --root "$WORK/storage" --runroot "$WORK/run" --tmpdir "$WORK/tmp" --events-backend=file
	--cgroup-manager=cgroupfs --runtime "$RT")
U=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
mkdir -p "$WORK/tmp"
make_bundle "$WORK/img" >/dev/null
ln -sf busybox "$WORK/img/rootfs/bin/tty"
echo 'root:x:0:' >"$WORK/img/rootfs/etc/group"
tar -C "$WORK/img/rootfs" -cf "$WORK/bb.tar" .
pm() { "${PM[@]}" "$@"; }
cleanup_podman() { pm rm -a -f -t 0 >/dev/null 2>&1; pm rmi -a -f >/dev/null 2>&1; cleanup_work; }
trap cleanup_podman EXIT

check "podman import of a busybox tarball" bash -c '"$@" import "$0" localhost/vt-bb:latest >/dev/null 2>&1' "$WORK/bb.tar" "${PM[@]}"

out=$(pm run --rm "${U[@]}" localhost/vt-bb sh -c 'echo hello-from-podman; exit 5' 2>&1); rc=$?
check "podman run prints the container's output" grep -q hello-from-podman <<<"$out"
check "podman run returns the container's exit status (5)" [ $rc = 5 ]

out=$(pm run --rm "${U[@]}" --memory 64m localhost/vt-bb sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max' 2>&1)
check "podman run --memory 64m: the container sees its own limit ($out)" [ "$out" = 67108864 ]

pm run -d --name d1 "${U[@]}" localhost/vt-bb sleep 60 >/dev/null 2>"$WORK/err"
check "podman run -d" [ "$(pm inspect -f '{{.State.Status}}' d1 2>/dev/null)" = running ]
out=$(pm exec d1 sh -c 'echo exec-ok; cat /proc/1/comm' 2>&1)
check "podman exec runs inside the container" [ "$out" = "exec-ok
sleep" ]
pm exec d1 sh -c 'exit 3'; rc=$?
check "podman exec returns the exit status" [ $rc = 3 ]
pm pause d1 >/dev/null 2>&1
check "podman pause" [ "$(pm inspect -f '{{.State.Status}}' d1 2>/dev/null)" = paused ]
pm unpause d1 >/dev/null 2>&1
check "podman unpause" [ "$(pm inspect -f '{{.State.Status}}' d1 2>/dev/null)" = running ]
check "podman top lists the container's process" bash -c '"$@" top d1 2>/dev/null | grep -q "sleep 60"' _ "${PM[@]}"
pm stop -t 1 d1 >/dev/null 2>&1
check "podman stop" [ "$(pm inspect -f '{{.State.Status}}' d1 2>/dev/null)" = exited ]
pm rm d1 >/dev/null 2>&1
check "podman rm" bash -c '! "$@" inspect d1 >/dev/null 2>&1' _ "${PM[@]}"

out=$(pm run --rm "${U[@]}" --user 1000:1000 localhost/vt-bb sh -c 'echo $(id -u) $(id -g)' 2>&1)
check "podman run --user 1000:1000" [ "$out" = "1000 1000" ]
out=$(pm run --rm "${U[@]}" --read-only localhost/vt-bb sh -c 'touch /x 2>/dev/null && echo root-writable; touch /tmp/y && echo tmp-writable' 2>&1)
check "podman run --read-only: / is read-only, /tmp is a tmpfs" [ "$out" = tmp-writable ]
out=$(pm run --rm -t "${U[@]}" localhost/vt-bb sh -c 'tty' 2>&1 | tr -d '\r')
check "podman run -t: the process has a pty" grep -q '^/dev/pts/' <<<"$out"
pm run -d --name d2 "${U[@]}" localhost/vt-bb sleep 60 >/dev/null 2>&1
out=$(pm exec -t d2 tty 2>&1 | tr -d '\r')
check "podman exec -t: a pty through the console socket" grep -q '^/dev/pts/' <<<"$out"
d2pid=$(pm inspect -f '{{.State.Pid}}' d2 2>/dev/null)
d2cg=$(sed -nE 's/^[0-9]+:pids:(.*)/\1/p; s/^0::(.*)/\1/p' /proc/$d2pid/cgroup 2>/dev/null | head -1)
d2dir=/sys/fs/cgroup/pids$d2cg; [ -f /sys/fs/cgroup/cgroup.controllers ] && d2dir=/sys/fs/cgroup$d2cg
check "the container runs in podman's cgroup ($d2cg)" [ -n "$d2cg" ] && [ "$d2cg" != / ] && [ -d "$d2dir" ]
rm_out=$(pm rm -f -t 0 d2 2>&1); rm_rc=$?
if ! pm inspect d2 >/dev/null 2>&1; then ok "podman rm -f of a running container"
else
	not_ok "podman rm -f of a running container"
	diag "rm status $rm_rc: $rm_out"
	diag "state after: $(pm inspect -f '{{.State.Status}} pid {{.State.Pid}}' d2 2>&1)"
fi
check "its cgroup is gone" [ ! -e "$d2dir" ]
finish
