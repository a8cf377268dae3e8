#!/usr/bin/env bash
# The life of a detached container: run -d, logs [-f], exec, ps -a states, pause/unpause, stop -t (SIGKILL
# after the time), start again with the same upper dir, inspect, diff, commit, rm [-f].
source "$(dirname "$0")/lib.bash"
require_root

busybox_tar "$WORK/bb.tar"
v image import "$WORK/bb.tar" bb >/dev/null || { echo "not ok 1 - image import"; exit 1; }
N0=(--network none)
state() { v inspect "$1" | jq -r '.[0].State.Status'; }

id=$(v run -d "${N0[@]}" --name web -e GREETING=hi --memory 32M -v "$WORK/data:/data:ro" bb \
	sh -c 'echo "out $GREETING"; echo err >&2; trap "" TERM; while :; do sleep 0.2; done')
check "run -d prints the full id" grep -qE '^[0-9a-f]{64}$' <<<"$id"
check "the container runs after run -d returned" test "$(state web)" = running
sleep 0.5
out=$(v logs web | sort | tr '\n' ' ')
check "logs: stdout and stderr of the detached container ('$out')" test "$out" = "err out hi "
check "ps lists it with its name and Up status" eval 'v ps | grep -E "^${id:0:12} .*Up .* web$" >/dev/null'
check "ps -q prints the short id" test "$(v ps -q)" = "${id:0:12}"

out=$(v exec -e X=1 -w /tmp -u nobody web sh -c 'echo "$X $GREETING $(pwd) $(id -u)"; exit 3')
rc=$?
check "exec: env (its own and the container's), -w, -u, status passed ('$out' rc $rc)" \
	eval '[ "$out" = "1 hi /tmp 65534" ] && [ $rc = 3 ]'
v exec web nosuchcmd 2>/dev/null
check "exec of a missing command: 127" test $? = 127
out=$(v exec web sh -c 'echo x > /data/f' 2>&1)
check "the :ro volume refuses writes in exec too" test $? != 0 -a ! -e "$WORK/data/f"

v pause web >/dev/null
check "pause: inspect says paused" test "$(state web)" = paused
check "pause: ps says (Paused)" eval 'v ps | grep -q "(Paused)"'
pid=$(v inspect web | jq -r '.[0].State.Pid')
frozen=$(cat /sys/fs/cgroup/freezer/virtus/$id/freezer.state 2>/dev/null || grep -o 'frozen [01]' /sys/fs/cgroup/unified/virtus/$id/cgroup.events 2>/dev/null || echo "?")
check "pause: the cgroup is frozen ($frozen)" grep -qE 'FROZEN|frozen 1' <<<"$frozen"
v exec web true 2>/dev/null
check "exec in a paused container is refused" test $? != 0
v unpause web >/dev/null
check "unpause: running again" test "$(state web)" = running

json=$(v inspect web)
check "inspect: Id, Name, Pid, Image, ImageName" \
	eval 'jq -e ".[0] | .Id == \"$id\" and .Name == \"web\" and .State.Pid == $pid and (.Image | startswith(\"sha256:\")) and .ImageName == \"localhost/bb:latest\"" <<<"$json" >/dev/null'
check "inspect: Config.Env, Cmd, HostConfig.Memory, NetworkMode, Mounts" \
	eval 'jq -e ".[0] | (.Config.Env | index(\"GREETING=hi\")) and .Config.Cmd[0] == \"sh\" and .HostConfig.Memory == 33554432 and .HostConfig.NetworkMode == \"none\" and .Mounts[0].Destination == \"/data\" and .Mounts[0].RW == false" <<<"$json" >/dev/null'
out=$(v inspect bb 2>&1)
check "inspect of an image (not a container) describes the image" \
	eval 'jq -e ".[0] | (.Id | length) == 64 and (.RepoTags | index(\"localhost/bb:latest\"))" <<<"$out" >/dev/null'
# An image whose name is also a prefix of a container's id: the name wins, the container's full id still works.
v image tag bb "${id:0:8}" >/dev/null
out=$(v inspect "${id:0:8}" 2>&1)
check "inspect NAME, where NAME is also a prefix of a container's id, describes the image" \
	eval 'jq -e ".[0] | (.Id | length) == 64 and (.RepoTags | index(\"localhost/${id:0:8}:latest\"))" <<<"$out" >/dev/null'
check "... and the container's full id describes the container" \
	eval 'v inspect "$id" | jq -e ".[0].Name == \"web\"" >/dev/null'
v image rm "${id:0:8}" >/dev/null

v rm web >/dev/null 2>&1
check "rm of a running container is refused" test $? != 0 -a "$(state web)" = running

start=$(date +%s%N)
v stop -t 1 web >/dev/null
ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "stop -t 1 of a process that ignores SIGTERM takes about 1 s ($ms ms)" test $ms -ge 900 -a $ms -lt 4000
check "... and it was killed: Exited (137)" eval 'v ps -a | grep -q "Exited (137)"'
check "ps without -a does not list it" test -z "$(v ps -q)"
check "inspect: exited, exit code 137, FinishedAt set" \
	eval 'v inspect web | jq -e ".[0].State | .Status == \"exited\" and .ExitCode == 137 and .Running == false and (.FinishedAt | length) > 0" >/dev/null'
check "the rootfs is unmounted once it stopped" eval '[ -n "$(run_root)" ] && ! grep -q "$(run_root)/containers/$id" /proc/self/mounts'

# Changes: diff lists them, start keeps them, commit turns them into an image.
c=$(v run -d "${N0[@]}" --name changer bb sh -c 'echo new > /tmp/added; echo changed >> /etc/passwd; rm /bin/vi; sleep 30')
sleep 0.5
out=$(v diff changer | tr '\n' ' ')
check "diff: A, C, D ('$out')" eval 'grep -q "A /tmp/added" <<<"$out" && grep -q "C /etc/passwd" <<<"$out" && grep -q "D /bin/vi" <<<"$out" && ! grep -q "A /proc" <<<"$out"'
v stop -t 0 changer >/dev/null
v start changer >/dev/null
check "start: an exited container runs again" test "$(state changer)" = running
check "start: with its own changes still there" test "$(v exec changer cat /tmp/added)" = new
rr=$(run_root)
check "its /etc files and the runtime's state are in the store's run root, on a tmpfs ('$rr')" \
	eval '[ -n "$rr" ] && [ "$(stat -f -c %T "$rr")" = tmpfs ] && [ -d "$rr/runtime/$c" ] &&
		[ "$(v exec changer cat /etc/hosts)" = "$(cat "$rr/containers/$c/hosts")" ]'
check "the mount points the image lacks (/proc, /dev, /sys) are not made in its upper dir" \
	eval '! tar -tf "$WORK/bb.tar" | grep -qE "^(\./)?(proc|dev|sys)/?$" && ! ls "$STORE/containers/$c/upper" | grep -qxE "proc|dev|sys"'
out=$(v commit changer bb-changed 2>&1)
rc=$?
if [ $rc = 0 ]; then
	check "commit paused and resumed the container" test "$(state changer)" = running
	out=$(v run --rm "${N0[@]}" bb-changed sh -c 'cat /tmp/added; test -e /bin/vi || echo vi-gone')
	check "a run of the committed image sees the changes ('$(echo $out)')" test "$(echo $out)" = "new vi-gone"
else
	skip "commit" "the image store cannot commit yet: $out"
fi

out=$(v run -d "${N0[@]}" bb sh -c 'for i in 1 2 3; do echo line$i; sleep 0.3; done')
f=$(timeout 10 "$VIRTUS" --root "$STORE" logs -f "$out" | tr '\n' ' ')
rc=$?
check "logs -f follows until the container exits ('$f', rc $rc)" test "$f" = "line1 line2 line3 " -a $rc = 0

v rm -f changer >/dev/null
check "rm -f of a running container" eval '! v inspect changer >/dev/null 2>&1'
check "... leaves no mount, runtime state or cgroup" \
	eval '! grep -q "$(run_root)/containers/$c" /proc/self/mounts && [ ! -e "$(run_root)/runtime/$c" ] && [ ! -e "$(run_root)/containers/$c" ] && ! ls -d /sys/fs/cgroup/*/virtus/$c 2>/dev/null | grep -q .'
v rm web >/dev/null
check "rm of an exited container" test ! -e "$STORE/containers/$id"
v rm nosuch 2>/dev/null
check "rm of an unknown container: 125" test $? = 125
v stop nosuch 2>/dev/null
check "stop of an unknown container: non-zero" test $? != 0
out=$(v stop --help)
check "stop --help" eval '[ $? = 0 ] && grep -q "^usage: virtus stop" <<<"$out"'
v kill -s NOSUCHSIG "$out" >/dev/null 2>&1
check "kill -s with a bad signal: usage error" test $? = 2
finish
