#!/usr/bin/env bash
# The VM-isolation agent without a VM: `virtus-agent --listen unix:` on a busybox rootfs, driven through the
# host client (src/isolation/agent.h) by tests/agent/agent_driver, which prints the process's output and
# exits with the status the agent reported. Covers output, exit codes, stdin, signals, exec beside init,
# ptys and their size, a refused spec, env/cwd/user, shutdown.
. "$(dirname "$0")/lib.bash"
require_root
build=$(dirname "$VIRTUS")
AGENT=$build/virtus-agent
DRIVER=$build/tests/agent/agent_driver
for f in "$AGENT" "$DRIVER"; do
	[ -x "$f" ] || { echo "not ok 1 - $f is not built"; exit 1; }
done

busybox_rootfs "$WORK/rootfs"
mkdir -p "$WORK/rootfs/proc" "$WORK/rootfs/sys" "$WORK/rootfs/dev"
SOCK=$WORK/agent.sock
"$AGENT" --listen "unix:$SOCK" --rootfs "$WORK/rootfs" --state "$WORK/state" 2>"$WORK/agent.err" &
agent_pid=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done

# drive ARGS...: run the driver (bounded), $out = stdout, $errout = stderr, $rc = its exit status
drive() {
	out=$(timeout 30 "$DRIVER" "$SOCK" "$@" 2>"$WORK/drive.err"); rc=$?
	errout=$(cat "$WORK/drive.err")
}
expect() { # NAME EXPECTED-OUT EXPECTED-RC
	if [ "$out" = "$2" ] && [ "$rc" = "$3" ]; then ok "$1"; else
		not_ok "$1" "out: $(printf %q "$out") rc: $rc (expected $(printf %q "$2") rc $3)" "stderr: $errout"; fi
}

drive -- echo hi
expect "echo hi: stdout 'hi', exit 0" "hi" 0
[ "$(timeout 30 "$DRIVER" "$SOCK" -- echo hi | od -An -c | tr -s ' ')" = " h i \n" ] &&
	ok "echo hi: exactly 'hi\\n'" || not_ok "echo hi: exactly 'hi\\n'"

drive -- sh -c 'exit 3'
expect "exit 3 is status 3" "" 3

drive -- sh -c 'echo out; echo err >&2'
expect "stderr relayed apart from stdout" "out" 0
[ "$errout" = "err" ] && ok "stderr is 'err'" || not_ok "stderr is 'err'" "got: $errout"

drive --stdin $'line one\nline two\n' -- cat
expect "stdin relayed to cat, EOF ends it" $'line one\nline two' 0

big=$(head -c 100000 /dev/zero | tr '\0' x)
drive --exec --stdin "$big" --term-after 500 -- sleep 100
expect "stdin a process does not read never stalls the agent (SIGTERM still delivered)" "" 143
drive --stdin "$big" -- wc -c
expect "100000 bytes of stdin arrive whole" "100000" 0

drive -- cat
expect "without stdin the process reads /dev/null" "" 0

drive --no-pidns --term-after 300 -- sleep 100
expect "SIGTERM to init sleep 100: 128+15" "" 143

drive --exec --term-after 300 -- sleep 100
expect "SIGTERM to an exec'd sleep 100: 128+15" "" 143

drive --exec -- sh -c 'ps -o pid,comm | grep -x " *1 sleep" | wc -l'
expect "exec beside the running init: init (sleep) is pid 1 in its pid namespace" "1" 0

drive --tty 33x101 -- sh -c 'tty; stty size'
out=$(tr -d '\r' <<<"$out")
if [[ $out =~ ^/dev/pts/[0-9]+$'\n'"33 101"$ ]] && [ "$rc" = 0 ]; then ok "init with a tty: /dev/pts/N, 33 rows x 101 cols"
else not_ok "init with a tty" "out: $(printf %q "$out") rc $rc" "$errout"; fi

drive --exec --tty 40x120 -- sh -c 'tty; stty size; exit 5'
out=$(tr -d '\r' <<<"$out")
if [[ $out =~ ^/dev/pts/[0-9]+$'\n'"40 120"$ ]] && [ "$rc" = 5 ]; then ok "exec with a tty: /dev/pts/N, 40x120, status 5"
else not_ok "exec with a tty" "out: $(printf %q "$out") rc $rc" "$errout"; fi

drive --exec --tty 40x120 --resize 25x70 -- sh -c 'sleep 0.5; stty size'
out=$(tr -d '\r' <<<"$out")
expect "resize reaches the process's pty" "25 70" 0

drive --bad-spec-first -- echo after
expect "after a refused spec the same connection still runs a container" "after" 0
grep -q '^refused: create: process.args' <<<"$errout" && ok "a malformed spec is refused with the runtime's reason" ||
	not_ok "a malformed spec is refused" "$errout"

drive --env FOO=bar --cwd /tmp --user 65534:65534 -- sh -c 'echo $FOO; pwd; id -u; id -g'
expect "env, cwd and user from the spec" $'bar\n/tmp\n65534\n65534' 0

drive --exec --env X=y --cwd /etc --user 65534:65534 -- sh -c 'echo $X $(pwd) $(id -u)'
expect "env, cwd and user of an exec process" "y /etc 65534" 0

mkdir -p "$WORK/rootfs/mnt"
drive --bind /etc:/mnt -- ls /mnt
expect "a bind mount of a host path is dropped (the host binds it into the shared tree)" "" 0
drive --bind /etc:/mnt -- sh -c 'readlink /proc/self/ns/net; readlink /proc/self/ns/uts'
if [ "$(head -n1 <<<"$out")" = "$(readlink /proc/self/ns/net)" ] && [ "$(tail -n1 <<<"$out")" != "$(readlink /proc/self/ns/uts)" ]
then ok "no network namespace of its own (the VM's network is the container's), the other namespaces kept"
else not_ok "network namespace dropped, others kept" "$out"; fi

drive -- /no/such/program
[ "$rc" = 124 ] && grep -q "not an executable" <<<"$errout" && ok "a missing program is an error, not a crash" ||
	not_ok "a missing program" "rc $rc: $errout"

# A frame the agent cannot accept (oversize length): it drops the connection and keeps serving.
python3 - "$SOCK" <<'PY' && ok "a garbage frame closes that connection" || not_ok "a garbage frame closes that connection"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
s.sendall(struct.pack('<IHH', 0x7fffffff, 1, 0))
sys.exit(0 if s.recv(100) == b'' else 1)
PY
drive -- echo still
expect "the agent still serves after a garbage frame" "still" 0

# `virtus exec`'s channel to a VM container's monitor (src/container/vm_exec.c), without a VM: the driver
# plays the monitor on the same agent (an init `sleep 1000` with CTR=from-ctr in its env), the client is
# what `virtus exec` runs. The full path, through a real VM, is in the isolation suite.
mkdir -p "$WORK/ctr"
timeout 120 "$DRIVER" "$SOCK" --env CTR=from-ctr --serve-execs "$WORK/ctr" -- sleep 1000 >"$WORK/serve.out" 2>"$WORK/serve.err" &
serve_pid=$!
for _ in $(seq 100); do grep -q serving "$WORK/serve.out" && break; sleep 0.1; done
client() { # client ARGS...: $out, $errout, $rc of an exec through the channel
	out=$(timeout 30 "$DRIVER" --exec-client "$WORK/ctr" "$@" 2>"$WORK/drive.err"); rc=$?
	errout=$(cat "$WORK/drive.err")
}
[ "$(stat -c %a "$WORK/ctr/exec.sock" 2>/dev/null)" = 600 ] && ok "exec channel: the monitor's socket is mode 0600" ||
	not_ok "exec channel: the monitor's socket is mode 0600" "$(ls -l "$WORK/ctr")" "$(cat "$WORK/serve.err")"
client -- sh -c 'echo out; echo err >&2; exit 6'
expect "exec channel: stdout, stderr apart, exit status 6" "out" 6
[ "$errout" = err ] && ok "exec channel: stderr is 'err'" || not_ok "exec channel: stderr is 'err'" "got: $errout"
client --env X=1 --cwd /tmp --user 65534:65534 -- sh -c 'echo $CTR $X $(pwd) $(id -u):$(id -g)'
expect "exec channel: the container's env plus the exec's, its cwd and user" "from-ctr 1 /tmp 65534:65534" 0
out=$(printf 'line one\nline two\n' | timeout 30 "$DRIVER" --exec-client "$WORK/ctr" -i -- cat 2>&1); rc=$?
expect "exec channel: -i relays stdin, its EOF ends cat" $'line one\nline two' 0
out=$(printf 'unread\n' | timeout 30 "$DRIVER" --exec-client "$WORK/ctr" -- cat 2>&1); rc=$?
expect "exec channel: without -i the process reads /dev/null" "" 0
client -t -- sh -c 'tty; exit 3'
out=$(tr -d '\r' <<<"$out")
[[ $out =~ ^/dev/pts/[0-9]+$ ]] && [ "$rc" = 3 ] && ok "exec channel: -t gives the process a pty, status 3" ||
	not_ok "exec channel: -t gives the process a pty" "out: $(printf %q "$out") rc $rc" "$errout"
client -- /no/such/program
[ "$rc" -ge 125 ] && grep -q "not an executable" <<<"$errout" && ok "exec channel: a missing program is the runtime's error (status $rc)" ||
	not_ok "exec channel: a missing program" "rc $rc: $errout"
printf 'not a program\n' >"$WORK/rootfs/notexec"; chmod 644 "$WORK/rootfs/notexec"
client -- /notexec
[ "$rc" = 126 ] && ok "exec channel: a file that cannot run is status 126" || not_ok "exec channel: a file that cannot run is 126" "rc $rc: $errout"
client -- sh -c 'exit 300'
expect "exec channel: status 300 & 255 = 44" "" 44
timeout 30 "$DRIVER" --exec-client "$WORK/ctr" -- sh -c 'sleep 2; echo first' >"$WORK/first.out" 2>&1 &
first=$!
client -- echo second
expect "exec channel: a second exec runs while the first does" "second" 0
wait $first; rc=$?; out=$(cat "$WORK/first.out")
expect "exec channel: ... and the first finishes" "first" 0
timeout 30 "$DRIVER" --exec-client "$WORK/ctr" -- sh -c 'trap "echo got-term; exit 9" TERM; echo ready; while true; do sleep 0.1; done' \
	>"$WORK/term.out" 2>&1 &
term=$!
for _ in $(seq 50); do grep -q ready "$WORK/term.out" && break; sleep 0.1; done
kill -TERM $term; wait $term; rc=$?; out=$(grep -v ready "$WORK/term.out")
expect "exec channel: SIGTERM to the client reaches the process" "got-term" 9
"$DRIVER" --exec-client "$WORK/ctr" -- sleep 77 >/dev/null 2>&1 &   # no timeout(1): $! must be the client
gone=$!
for _ in $(seq 50); do pgrep -f '^sleep 77$' >/dev/null && break; sleep 0.1; done
kill -9 $gone; wait $gone 2>/dev/null
for _ in $(seq 50); do pgrep -f '^sleep 77$' >/dev/null || break; sleep 0.1; done
pgrep -f '^sleep 77$' >/dev/null && not_ok "exec channel: a client that dies takes its process with it" ||
	ok "exec channel: a client that dies takes its process with it"
client -- echo after
expect "exec channel: the monitor serves on after a client died" "after" 0
python3 - "$WORK/ctr/exec.sock" <<'PY' && ok "exec channel: a request without descriptors is refused with a message" || not_ok "exec channel: a request without descriptors"
import socket, sys, json
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET); s.connect(sys.argv[1]); s.settimeout(10)
s.send(json.dumps({"args": ["true"]}).encode())
sys.exit(0 if b'stdin, stdout and stderr' in s.recv(1000) else 1)
PY
# A client whose stdout nobody reads holds up its own process only (the monitor queues its output, then has
# the agent stop reading it): another exec runs meanwhile, and once the reader reads, every byte arrives.
mkfifo "$WORK/slow"
"$DRIVER" --exec-client "$WORK/ctr" -- sh -c 'head -c 3000000 /dev/zero | tr "\0" x; echo; echo done-slow' \
	>"$WORK/slow" 2>/dev/null &
slow=$!
exec 7<"$WORK/slow"   # the reader: there, but not reading
sleep 1
# (to a file: a command substitution would wait for the monitor's copy of its pipe if the monitor were stuck)
timeout -k 5 20 "$DRIVER" --exec-client "$WORK/ctr" -- echo beside >"$WORK/beside.out" 2>&1; rc=$?
out=$(cat "$WORK/beside.out")
expect "exec channel: a process whose output is not read holds up no other exec" "beside" 0
got=$(timeout -k 5 60 cat <&7 | wc -c); exec 7<&-
wait $slow; slow_rc=$?
[ "$got $slow_rc" = "3000011 0" ] && ok "exec channel: ... and all its 3000011 bytes arrive once read, status 0" ||
	not_ok "exec channel: the unread output arrives once read" "got $got bytes, status $slow_rc"
kill -TERM $serve_pid; wait $serve_pid
[ ! -e "$WORK/ctr/exec.sock" ] && ok "exec channel: the socket goes with the monitor" || not_ok "exec channel: the socket goes with the monitor"
client -- true
[ "$rc" = 125 ] && grep -q "cannot reach the container's monitor" <<<"$errout" && ok "exec channel: no monitor is a clear error (125)" ||
	not_ok "exec channel: no monitor is a clear error" "rc $rc: $errout"

# The heartbeat (agent_heartbeat, as a VM container's monitor runs it): pings keep a quiet agent alive; a
# stopped one is dead once the silence reaches its limit.
drive --heartbeat 200:1000 -- sh -c 'sleep 2.5; echo awake'
expect "heartbeat: a process silent for 2.5 s with a 1 s limit: the agent answers pings, no false death" "awake" 0
timeout 30 "$DRIVER" "$SOCK" --heartbeat 200:1000 -- sleep 21 >/dev/null 2>"$WORK/hb.err" &
hb=$!
for _ in $(seq 50); do pgrep -f '^sleep 21$' >/dev/null && break; sleep 0.1; done
kill -STOP $agent_pid
start=$(date +%s%N); wait $hb; rc=$?; ms=$(( ($(date +%s%N) - start) / 1000000 ))
kill -CONT $agent_pid
if [ "$rc" = 124 ] && grep -q 'the agent did not answer for 1000 ms' "$WORK/hb.err" && [ "$ms" -lt 5000 ]; then
	ok "heartbeat: a stopped agent is dead after its 1 s limit (status 124 in ${ms} ms)"
else
	not_ok "heartbeat: a stopped agent is dead after its limit" "rc $rc after ${ms} ms: $(cat "$WORK/hb.err")"
fi
for _ in $(seq 50); do pgrep -f '^sleep 21$' >/dev/null || break; sleep 0.1; done
pgrep -f '^sleep 21$' >/dev/null && not_ok "heartbeat: the dead connection's process is gone once the agent runs again" ||
	ok "heartbeat: the dead connection's process is gone once the agent runs again"

kill -0 $agent_pid 2>/dev/null && ok "the agent is still running" || not_ok "the agent is still running" "$(cat "$WORK/agent.err")"
timeout 10 "$DRIVER" "$SOCK" --shutdown && ok "shutdown closes the connection" || not_ok "shutdown"
for _ in $(seq 50); do kill -0 $agent_pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $agent_pid 2>/dev/null; then kill $agent_pid; not_ok "the agent exits on shutdown"; else
	wait $agent_pid; [ $? = 0 ] && ok "the agent exits 0 on shutdown" || not_ok "the agent exits 0 on shutdown"; fi
[ -z "$(ls "$WORK/state/rt" 2>/dev/null)" ] && ok "no container left in the runtime's state" ||
	not_ok "no container left" "$(ls "$WORK/state/rt")"
finish
