#!/usr/bin/env bash
# Every error case: a clear message naming the field or ID, a non-zero exit, and nothing left behind
# (no state directory, no cgroup, no new mounts, no processes). Errors also reach --log as JSON lines.
. "$(dirname "$0")/lib.bash"
require_root
B=$WORK/bundle
make_bundle "$B" || { echo "not ok 1 - make bundle"; exit 1; }
set_args "$B" sleep 30
cp "$B/config.json" "$WORK/good.json"
LOG=$WORK/log.json

# expect_fail NAME PATTERN ID CMD...: CMD fails, stderr matches PATTERN, nothing is left for ID
expect_fail() {
	local name=$1 pattern=$2 id=$3; shift 3
	local before after procs_before procs_after rc
	before=$(mount_count)
	procs_before=$(pgrep -c -f "$B/rootfs" || true)
	"$@" >"$WORK/out" 2>"$WORK/err" </dev/null
	rc=$?
	after=$(mount_count)
	procs_after=$(pgrep -c -f "$B/rootfs" || true)
	if [ $rc = 0 ]; then
		not_ok "$name: exits non-zero"; return
	fi
	if ! grep -qE -- "$pattern" "$WORK/err"; then
		not_ok "$name: message matches /$pattern/"; diag "$(cat "$WORK/err")"; return
	fi
	if [ -n "$id" ] && ! nothing_left "$id"; then
		not_ok "$name: nothing left behind"; return
	fi
	if [ "$before" != "$after" ] || [ "$procs_before" != "$procs_after" ]; then
		not_ok "$name: no new mounts or processes ($before/$after mounts)"; return
	fi
	ok "$name ($(head -c 150 "$WORK/err"))"
}

reset_config() { cp "$WORK/good.json" "$B/config.json"; }
bad_config() { reset_config; set_config "$B" "$@"; }
create() { "$RT" --root "$ROOT" --log "$LOG" --log-format json create --bundle "$B" "$@"; }

printf '{"ociVersion": "1.0.2", "process": ' >"$B/config.json"
expect_fail "malformed JSON" 'config.json: invalid JSON' e1 create e1
echo '[1, 2]' >"$B/config.json"
expect_fail "top level not an object" 'top level must be an object' e2 create e2
bad_config 'c["ociVersion"] = "2.0.0"'
expect_fail "unsupported ociVersion" "ociVersion: unsupported version '2.0.0'" e3 create e3
bad_config 'c["root"]["path"] = "nope"'
expect_fail "missing rootfs" "root.path: rootfs '.*nope' is not usable" e4 create e4
bad_config 'del c["process"]["args"]'
expect_fail "missing process.args" 'process.args must name the program' e5 create e5
bad_config 'c["process"]["args"] = "sh"'
expect_fail "process.args of the wrong type" 'process.args: expected array, got string' e6 create e6
bad_config 'c["mounts"].append({"destination": "/x", "type": "nfs4", "source": "srv:/"})'
expect_fail "unsupported mount type" "mounts\[7\].type: unsupported mount type 'nfs4'" e7 create e7
bad_config 'c["mounts"].append({"destination": "relative", "type": "tmpfs", "source": "tmpfs"})'
expect_fail "relative mount destination" 'mounts\[7\].destination must be an absolute path' e8 create e8
bad_config 'c["linux"]["namespaces"].append({"type": "time-travel"})'
expect_fail "unknown namespace" "linux.namespaces\[6\].type: unknown namespace type 'time-travel'" e9 create e9
bad_config 'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"]'
bad_config 'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "mount"] + [{"type": "user"}]' \
	'c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 10}]' \
	'c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 10}]'
expect_fail "a user namespace without a mount namespace" "a new 'user' namespace needs a 'mount' namespace" e10 create e10
bad_config 'c["linux"]["namespaces"].append({"type": "user"})'
expect_fail "user namespace without mappings" 'uidMappings and linux.gidMappings are required' e11 create e11
bad_config 'c["process"]["capabilities"]["bounding"].append("CAP_FLY")'
expect_fail "unknown capability" "process.capabilities.bounding\[3\]: unknown capability 'CAP_FLY'" e12 create e12
bad_config 'c["process"]["rlimits"] = [{"type": "RLIMIT_WINGS", "soft": 1, "hard": 1}]'
expect_fail "unknown rlimit" "process.rlimits\[0\].type: unknown rlimit 'RLIMIT_WINGS'" e13 create e13
bad_config 'c["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]'
expect_fail "rlimit soft above hard" 'process.rlimits\[0\]: soft limit 10 exceeds hard limit 5' e14 create e14
bad_config 'c["process"]["args"] = ["/bin/does-not-exist"]'
expect_fail "executable not found" "'/bin/does-not-exist' is not an executable" e15 create e15
bad_config 'c["process"]["args"] = ["nothere"]'
expect_fail "executable not in PATH" "executable 'nothere' not found in PATH" e16 create e16
bad_config 'c["process"]["cwd"] = "relative"'
expect_fail "relative cwd" "process.cwd 'relative' must be an absolute path" e17 create e17
bad_config 'c["process"]["terminal"] = True'
expect_fail "terminal without --console-socket" 'process.terminal is true: --console-socket is required' e18 create e18
bad_config 'c["hooks"] = {"prestart": [{"path": "/bin/false"}]}'
expect_fail "failing prestart hook" 'prestart hook /bin/false failed with exit status 1' e19 create e19
bad_config 'c["hooks"] = {"createContainer": [{"path": "/bin/false"}]}'
expect_fail "failing createContainer hook" 'createContainer hook /bin/false failed' e20 create e20
bad_config 'c["mounts"].append({"destination": "/data", "type": "bind", "source": "/does/not/exist", "options": ["bind"]})'
expect_fail "bind source missing (fails inside the container setup)" "mounts\[7\].source '/does/not/exist'" e21 create e21
bad_config 'c["linux"]["sysctl"] = {"kernel.no_such_knob": "1"}'
expect_fail "unknown sysctl (fails inside the container setup)" 'linux.sysctl: cannot set kernel.no_such_knob' e22 create e22
bad_config 'c["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["not_a_syscall"], "action": "SCMP_ACT_ERRNO"}]}'
expect_fail "bad seccomp profile" 'linux.seccomp' e23 create e23
bad_config 'c["linux"]["resources"] = {"memory": {"limit": "lots"}}'
expect_fail "bad cgroup resources" 'memory' e24 create e24
bad_config 'c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 10}]' \
	'c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 10}]'
expect_fail "mappings without a user namespace" 'id mappings need a .user. namespace' e25 create e25
bad_config 'c["annotations"] = {"io.virtus.isolation": "hypervisor"}'
expect_fail "an unknown isolation level" "annotations: io.virtus.isolation is 'hypervisor': use vm or container" e26 create e26
bad_config 'c["annotations"] = {"io.virtus.isolation": "vm"}' \
	"c[\"linux\"][\"namespaces\"] = [n for n in c[\"linux\"][\"namespaces\"] if n[\"type\"] != \"ipc\"] + [{\"type\": \"ipc\", \"path\": \"/proc/$$/ns/ipc\"}]"
expect_fail "VM isolation cannot join a host namespace" "linux.namespaces\[5\]: a VM-isolated container cannot join the host's namespace /proc/$$/ns/ipc" e27 create e27
reset_config

check "errors are logged as JSON lines (level, msg, time)" python3 -c "
import json
lines = [json.loads(l) for l in open('$LOG')]
assert len(lines) >= 20, len(lines)
assert all(l['level'] == 'error' and l['msg'] and l['time'] for l in lines)
assert any('rootfs' in l['msg'] for l in lines)"

# bad IDs and states
expect_fail "invalid container ID" "invalid container ID '../x'" "" create ../x
rt create --bundle "$B" dup >/dev/null 2>&1 </dev/null
dup_pid=$(rt state dup | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
expect_fail "duplicate ID" "container 'dup' already exists" "" create dup
check "the duplicate attempt left the first container intact" [ "$(status_of dup)" = created ] 
check "... with the same init" [ "$(rt state dup | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')" = "$dup_pid" ]
expect_fail "pause a created container" "cannot pause container 'dup': it is created" "" rt pause dup
expect_fail "resume a created container" "cannot resume container 'dup': it is created" "" rt resume dup
expect_fail "bad signal name" "unknown signal 'SIGFOO'" "" rt kill dup SIGFOO
expect_fail "bad signal number" "unknown signal '99'" "" rt kill dup 99
rt start dup
expect_fail "start a running container" "cannot start container 'dup': it is running" "" rt start dup
expect_fail "delete a running container without --force" "cannot delete container 'dup': it is running" "" rt delete dup
rt kill dup KILL; for i in $(seq 50); do [ "$(status_of dup)" = stopped ] && break; sleep 0.05; done
expect_fail "kill a stopped container" "cannot kill container 'dup': it is not running" "" rt kill dup
expect_fail "exec in a stopped container" "cannot exec in container 'dup': it is stopped" "" rt exec dup true
expect_fail "start a stopped container" "cannot start container 'dup': it is stopped" "" rt start dup
rt delete dup
expect_fail "state of an unknown container" "container 'ghost' does not exist" "" rt state ghost
expect_fail "start an unknown container" "container 'ghost' does not exist" "" rt start ghost
expect_fail "delete an unknown container" "container 'ghost' does not exist" "" rt delete ghost
expect_fail "unknown command" "unknown command 'frobnicate'" "" rt frobnicate
for c in update events checkpoint restore; do
	expect_fail "$c is refused as not supported (not as unknown)" "'$c' is not supported by virtus-runtime" "" rt $c x
done
expect_fail "unknown option" "unknown option '--frob'" "" rt create --frob x
expect_fail "--systemd-cgroup is refused plainly" 'systemd-cgroup is not supported' sd "$RT" --root "$ROOT" --systemd-cgroup create --bundle "$B" sd
expect_fail "bad --log-format" "log-format 'xml'" "" "$RT" --log-format xml list
rt create --bundle "$B" eu >/dev/null 2>&1 </dev/null && rt start eu
expect_fail "exec with a bad --user" "--user 'bob': expected UID" "" rt exec --user bob eu true
expect_fail "exec of a missing program" "executable 'nothere' not found" "" rt exec eu nothere
rt delete --force eu
check "nothing at all is left under --root" [ -z "$(ls "$ROOT" 2>/dev/null)" ]
finish
