#!/usr/bin/env bash
# Lifecycle: create -> created -> start -> running -> pause/resume -> kill -> stopped -> delete, run,
# exec, list/ps/state output, pid file, hooks, spec/features/--version. Each command is a fresh process.
. "$(dirname "$0")/lib.bash"
require_root
B=$WORK/bundle
make_bundle "$B" || { echo "not ok 1 - make bundle"; exit 1; }

# run: output and exit status come from the container
set_args "$B" sh -c 'echo out-from-container; exit 7'
out=$(rt run --bundle "$B" r1 2>&1); rc=$?
check "run prints the container's output" grep -q out-from-container <<<"$out"
check "run exits with the container's status (7)" [ "$rc" = 7 ]
check "run deletes the container afterwards" nothing_left r1

# run forwards signals to the container; run -d returns once it is running
set_args "$B" sh -c 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.1; done'
"$RT" --root "$ROOT" run --bundle "$B" r2 >"$WORK/r2.out" 2>&1 &
runpid=$!
for i in $(seq 100); do grep -q ready "$WORK/r2.out" 2>/dev/null && break; sleep 0.05; done
kill -TERM $runpid
wait $runpid; rc=$?
check "run forwards SIGTERM to the container (it trapped it)" grep -q got-term "$WORK/r2.out"
check "... and exits with the container's status 0" [ $rc = 0 ]
check "... and deletes it" nothing_left r2
set_args "$B" sleep 30
rt run -d --bundle "$B" r3 >/dev/null 2>&1 </dev/null
check "run -d leaves the container running" [ "$(status_of r3)" = running ]
rt delete --force r3

# run with process.terminal and no --console-socket: the runtime relays its stdio to the pty
set_config "$B" 'c["process"]["terminal"] = True'
set_args "$B" sh
out=$(printf 'tty; echo hi-$((1+2))\nexit 3\n' | timeout 20 "$RT" --root "$ROOT" run --bundle "$B" tty1 2>&1 | tr -d '\r'); rc=$?
check "run with a terminal: the shell runs on a pty" grep -qx '/dev/pts/[0-9]*' <<<"$out"
check "run with a terminal: input relayed, output relayed" grep -qx 'hi-3' <<<"$out"
check "run with a terminal: exit status 3 comes back" [ $rc = 3 ]
check "run with a terminal: nothing left" nothing_left tty1
set_config "$B" 'c["process"]["terminal"] = False'

# create / start / state
set_args "$B" sleep 30
rt create --bundle "$B" --pid-file "$WORK/pid" c1 >/dev/null 2>&1 </dev/null
check "create succeeds" [ $? = 0 ]
check "state after create is created" [ "$(status_of c1)" = created ]
pid=$(rt state c1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
check "pid file holds the init pid" [ "$(cat "$WORK/pid" 2>/dev/null)" = "$pid" ]
check "init is alive and waiting before start" [ -d "/proc/$pid" ]
check "the process has not exec'd before start" [ "$(readlink /proc/$pid/exe)" != "$(readlink -f "$B/rootfs/bin/busybox")" ]
rt start c1
check "start succeeds" [ $? = 0 ]
check "state after start is running" [ "$(status_of c1)" = running ]
check "start on a running container fails" bash -c "! '$RT' --root '$ROOT' start c1 2>/dev/null"
check "init now runs the container's program" [ "$(cat /proc/$pid/comm)" = sleep ]
state=$(rt state c1)
check "state JSON has ociVersion, id, bundle" python3 -c "
import json,sys; s=json.loads(sys.argv[1]); assert s['ociVersion'].startswith('1.') and s['id']=='c1' and s['bundle']=='$B'" "$state"

# list / ps
check "list --format json shows c1 running" python3 -c "
import json,sys; l=json.loads(sys.argv[1]); assert [e['status'] for e in l if e['id']=='c1']==['running']" "$(rt list --format json)"
check "list table has a header and c1" bash -c "'$RT' --root '$ROOT' list | grep -q '^c1 .*running'"
check "ps --format json lists the init pid" python3 -c "
import json,sys; assert $pid in json.loads(sys.argv[1])" "$(rt ps --format json c1)"

# exec
out=$(rt exec c1 sh -c 'echo exec-ok; cat /proc/1/comm' 2>&1)
check "exec runs in the container (sees its pid 1)" [ "$out" = "exec-ok
sleep" ]
rt exec c1 sh -c 'exit 3'; rc=$?
check "exec returns the process's exit status" [ $rc = 3 ]
out=$(rt exec --env FOO=bar --cwd /tmp --user 1000:1000 c1 sh -c 'echo $FOO $(pwd) $(id -u) $(id -g)')
check "exec --env --cwd --user" [ "$out" = "bar /tmp 1000 1000" ]
cat >"$WORK/proc.json" <<'J'
{"args": ["sh", "-c", "echo from-process-file > /dev/shm/pf; sleep 5"], "cwd": "/", "env": ["PATH=/bin"],
 "user": {"uid": 0, "gid": 0}}
J
rt exec --process "$WORK/proc.json" --detach --pid-file "$WORK/execpid" c1
check "exec --process --detach returns at once with a pid file" [ -s "$WORK/execpid" ]
sleep 0.3
check "the detached process ran" [ "$(rt exec c1 cat /dev/shm/pf)" = from-process-file ]

# pause / resume
rt pause c1
check "pause: state is paused" [ "$(status_of c1)" = paused ]
check "pause: init is frozen" grep -q 'State:.*[DS]' /proc/$pid/status
check "pause twice fails" bash -c "! '$RT' --root '$ROOT' pause c1 2>/dev/null"
rt resume c1
check "resume: state is running" [ "$(status_of c1)" = running ]

# kill by name and number
check "delete without --force refuses a running container" bash -c "! '$RT' --root '$ROOT' delete c1 2>/dev/null"
rt kill c1 SIGKILL
for i in $(seq 50); do [ "$(status_of c1)" = stopped ] && break; sleep 0.05; done
check "kill SIGKILL stops it" [ "$(status_of c1)" = stopped ]
check "state of a stopped container reports pid 0" python3 -c "
import json,sys; assert json.loads(sys.argv[1])['pid']==0" "$(rt state c1)"
rt delete c1
check "delete removes a stopped container" nothing_left c1
check "state of a deleted container fails" bash -c "! '$RT' --root '$ROOT' state c1 >/dev/null 2>&1"

set_args "$B" sh -c 'trap "exit 0" TERM; sleep 30 & wait'
rt create --bundle "$B" ct >/dev/null 2>&1 </dev/null && rt start ct
sleep 0.2
rt kill ct TERM
for i in $(seq 50); do [ "$(status_of ct)" = stopped ] && break; sleep 0.05; done
check "kill TERM reaches a process that handles it" [ "$(status_of ct)" = stopped ]
rt delete ct

set_args "$B" sleep 30
rt create --bundle "$B" c2 >/dev/null 2>&1 </dev/null && rt start c2
rt kill c2 9
for i in $(seq 50); do [ "$(status_of c2)" = stopped ] && break; sleep 0.05; done
check "kill 9 stops it" [ "$(status_of c2)" = stopped ]
rt delete c2

rt create --bundle "$B" c3 >/dev/null 2>&1 </dev/null && rt start c3
rt delete --force c3
check "delete --force removes a running container" nothing_left c3
rt create --bundle "$B" c4 >/dev/null 2>&1 </dev/null
p4=$(rt state c4 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
out=$(rt delete c4 2>&1); rc=$?
check "delete of a created container without --force fails (the spec's MUST)" [ $rc != 0 ]
check "... saying it is created" grep -q "cannot delete container 'c4': it is created" <<<"$out"
check "... and leaves it created" [ "$(status_of c4)" = created ]
rt delete --force c4
check "delete --force of a created container kills its init" bash -c "! [ -d /proc/$p4 ] || grep -q 'State:.*Z' /proc/$p4/status"
check "... and removes it" nothing_left c4
check "delete --force of an unknown container succeeds (runc-compatible)" rt delete --force never-existed

set_args "$B" sleep 30
rt create --bundle "$B" c6 >/dev/null 2>&1 </dev/null && rt start c6 && rt pause c6
rt delete --force c6
check "delete --force removes a paused container" nothing_left c6
"$RT" --root "$WORK/deep/er/root" run --bundle "$B" -d c7 >/dev/null 2>&1 </dev/null
check "--root is created with its parents" [ "$("$RT" --root "$WORK/deep/er/root" state c7 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')" = running ]
"$RT" --root "$WORK/deep/er/root" delete --force c7

# kill --all reaches every process in the cgroup
set_config "$B" 'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]'
set_args "$B" sh -c 'sleep 30 & sleep 30'
rt create --bundle "$B" c5 >/dev/null 2>&1 </dev/null && rt start c5
sleep 0.2
n=$(rt ps --format json c5 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "ps sees both processes without a pid namespace" [ "$n" -ge 2 ]
rt kill --all c5 KILL
sleep 0.3
n=$(rt ps --format json c5 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "kill --all empties the cgroup" [ "$n" = 0 ]
rt delete --force c5

# hooks: every kind runs, with the state on stdin
make_bundle "$WORK/hb" >/dev/null
H=$WORK/hooks; mkdir -p "$H"
cat >"$WORK/hook.sh" <<HOOK
#!/bin/sh
cat > "$H/\$1.json"
HOOK
chmod +x "$WORK/hook.sh"
set_config "$WORK/hb" "c['hooks'] = {k: [{'path': '$WORK/hook.sh', 'args': ['hook.sh', k]}] for k in
  ['prestart', 'createRuntime', 'poststart', 'poststop']}"
set_args "$WORK/hb" true
rt run --bundle "$WORK/hb" h1 >/dev/null 2>&1
for k in prestart createRuntime poststart poststop; do
	check "hook $k ran with the state on stdin" python3 -c "
import json; s=json.load(open('$H/$k.json')); assert s['id']=='h1' and s['bundle']=='$WORK/hb'"
done
check "prestart hook saw a pid" python3 -c "import json; assert json.load(open('$H/prestart.json'))['pid'] > 0"
set_config "$WORK/hb" "c['hooks'] = {'createRuntime': [{'path': '/bin/sleep', 'args': ['sleep', '5'], 'timeout': 1}]}"
start=$(date +%s%N)
rt run --bundle "$WORK/hb" h2 >/dev/null 2>"$WORK/err"
rc=$?; ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "a hook past its timeout fails the create" [ $rc != 0 ]
check "the error names the timeout" grep -q 'timed out after 1 s' "$WORK/err"
check "the timeout is enforced (${ms} ms < 3000)" [ $ms -lt 3000 ]
check "nothing left by the failed hook" nothing_left h2
set_config "$WORK/hb" "c['hooks'] = {'poststart': [{'path': '/bin/false'}], 'poststop': [{'path': '/bin/false'}]}"
set_args "$WORK/hb" sh -c 'sleep 0.2; exit 4'
rt run --bundle "$WORK/hb" h3 >/dev/null 2>"$WORK/err"; rc=$?
check "failing poststart/poststop hooks are warnings: the container still ran (exit 4)" [ $rc = 4 ]
check "... and the warnings name the hooks" bash -c "grep -q 'warning: .*poststart hook /bin/false failed' '$WORK/err' && grep -q 'warning: .*poststop hook /bin/false failed' '$WORK/err'"
check "... and nothing is left" nothing_left h3

# spec / features / version
mkdir -p "$WORK/spec"
rt spec --bundle "$WORK/spec"
check "spec writes a valid config.json" python3 -c "
import json; c=json.load(open('$WORK/spec/config.json')); assert c['root']['path']=='rootfs' and c['process']['args']"
check "spec refuses to overwrite" bash -c "! '$RT' spec --bundle '$WORK/spec' 2>/dev/null"
check "features is OCI features JSON" python3 -c "
import json,sys; f=json.loads(sys.argv[1]); assert 'mount' in f['linux']['namespaces'] and 'CAP_SYS_ADMIN' in f['linux']['capabilities']" "$(rt features)"
check "--version names the runtime and spec" bash -c "'$RT' --version | grep -q '^virtus-runtime version' && '$RT' --version | grep -q '^spec: 1\.'"
finish
