#!/usr/bin/env bash
# virtus run: exit statuses, the flags that shape the container (-e -w -u -v --memory --pids-limit --cpus
# --network), -it, --rootfs, --rm, signal forwarding, and bad inputs that must leave nothing behind.
source "$(dirname "$0")/lib.bash"
require_root

ROOTFS=$WORK/rootfs
busybox_rootfs "$ROOTFS"
busybox_tar "$WORK/bb.tar"
v image import "$WORK/bb.tar" bb >/dev/null || { echo "not ok 1 - image import"; exit 1; }
cp -a "$ROOTFS" "$WORK/rootfs.orig"
R=(--rm --network none)

# What a container can leave behind: records, mounts under the store, runtime state, cgroups named by a container
# id, monitor processes. Listed one a line; a test compares the lists before and after (other people's
# containers may come and go in the host's cgroups meanwhile: only new entries count).
leftovers() {
	local rr
	rr=$(run_root)
	{
		ls "$STORE/containers" 2>/dev/null | grep '^[0-9a-f]\{64\}$' | sed 's/^/record /'
		grep -F -e " $STORE/" -e " ${rr:-$STORE}/" /proc/self/mounts | awk '{print "mount " $2}'
		[ -n "$rr" ] && ls "$rr/runtime" "$rr/containers" 2>/dev/null | grep '^[0-9a-f]\{64\}$' | sed 's/^/run root /'
		find /sys/fs/cgroup -maxdepth 3 -path '*/virtus/*' -type d -regextype egrep -regex '.*/[0-9a-f]{64}' 2>/dev/null
	} | sort
}
# new_leftovers BEFORE: what is there now and was not before ("" when nothing).
new_leftovers() { comm -13 <(echo "$1") <(leftovers) | grep . ; }
BASE=$(leftovers)

v run "${R[@]}" bb sh -c 'exit 7'
check "the container's exit status is run's" test $? = 7
v run "${R[@]}" --name k9 bb sleep 60 &
pid=$!
sleep 1
v kill k9 >/dev/null
wait $pid
check "a container killed by SIGKILL: 137" test $? = 137

out=$(v run "${R[@]}" -e FOO=bar -e BAZ -w /tmp -u nobody bb sh -c 'echo "$FOO/$BAZ/$(pwd)/$(id -u):$(id -g)"')
check "-e, -w, -u nobody (name from the image's passwd): '$out'" test "$out" = "bar///tmp/65534:65534"
out=$(BAZ=fromhost v run "${R[@]}" -e BAZ -u 1000:65534 bb sh -c 'echo "$BAZ $(id -u):$(id -g)"')
check "-e KEY takes the caller's value; -u UID:GID: '$out'" test "$out" = "fromhost 1000:65534"
out=$(v run "${R[@]}" bb hostname)
check "the hostname is the short id (12 hex): '$out'" grep -qE '^[0-9a-f]{12}$' <<<"$out"

v run "${R[@]}" -v "$WORK/vol/sub:/data" bb sh -c 'echo written > /data/f'
check "-v creates the host dir and the container writes to it" grep -qx written "$WORK/vol/sub/f"
v run "${R[@]}" -v "$WORK/vol/sub:/data:ro" bb sh -c 'cat /data/f && echo no > /data/g' >/dev/null 2>&1
rc=$?
check "-v :ro: readable, a write is refused (rc $rc)" test $rc != 0 -a ! -e "$WORK/vol/sub/g"

if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
	mem=/sys/fs/cgroup/memory.max pids=/sys/fs/cgroup/pids.max cpu=/sys/fs/cgroup/cpu.max
else
	mem=/sys/fs/cgroup/memory/memory.limit_in_bytes pids=/sys/fs/cgroup/pids/pids.max
	cpu=/sys/fs/cgroup/cpu/cpu.cfs_quota_us
fi
out=$(v run "${R[@]}" --memory 64M --pids-limit 20 --cpus 0.5 bb sh -c "cat $mem $pids $cpu" | tr '\n' ' ')
check "--memory 64M, --pids-limit 20, --cpus 0.5 in the container's cgroup: '$out'" \
	grep -qE '^67108864 20 (50000|50000 100000) $' <<<"$out"

out=$(v run --rm --network none --rootfs "$ROOTFS" sh -c 'echo new > /newfile; rm /bin/vi; cat /newfile')
check "--rootfs: the container sees its own changes" test "$out" = new
check "--rootfs: the directory itself is never modified" diff -r --no-dereference "$ROOTFS" "$WORK/rootfs.orig"
# a --rm container's root overlay is never synced (overlayfs's volatile, where the kernel has it: then on
# both kinds of root alike); one that is kept is an ordinary overlay
root_opts='grep " / / " /proc/self/mountinfo | grep -o volatile || echo synced'
img_rm=$(v run --rm --network none bb sh -c "$root_opts")
rootfs_rm=$(v run --rm --network none --rootfs "$ROOTFS" sh -c "$root_opts")
kept=$(v run --name keep-root --network none bb sh -c "$root_opts"); v rm keep-root >/dev/null
check "--rm --rootfs: the root overlay is like an image's ('$rootfs_rm', '$img_rm')" test "$rootfs_rm" = "$img_rm"
check "a kept container's root overlay is not volatile ('$kept')" test "$kept" = synced

out=$(v run "${R[@]}" bb ls /sys/class/net | tr '\n' ' ')
check "--network none: only lo ('$out')" test "$out" = "lo "
out=$(v run --rm --network host bb readlink /proc/1/ns/net)
check "--network host: the host's namespace" test "$out" = "$(readlink /proc/self/ns/net)"

# script's stdin stays open meanwhile: its end of input would reach the container as ^D.
out=$(sleep 2 | script -qec "stty rows 33 cols 77; $VIRTUS --root $STORE run -it ${R[*]} bb sh -c 'tty; stty size; exit 5'" /dev/null | tr -d '\r')
rc=$?
check "-it: a terminal with the caller's window size, status passed (rc $rc): $(echo $out)" \
	eval 'grep -q "^/dev/pts/" <<<"$out" && grep -qx "33 77" <<<"$out" && test $rc = 5'

# Not through v(): $! must be virtus itself.
"$VIRTUS" --root "$STORE" run "${R[@]}" bb sh -c 'trap "exit 42" TERM; while :; do sleep 0.1; done' &
pid=$!
sleep 1
kill -TERM $pid
wait $pid
check "a signal to a foreground run reaches the container" test $? = 42
echo hello | v run "${R[@]}" -i bb cat >"$WORK/out"
check "-i passes stdin" grep -qx hello "$WORK/out"
check "without -i the container reads nothing" test -z "$(echo hello | v run "${R[@]}" bb cat)"

# /etc/hosts, /etc/hostname, /etc/resolv.conf: the container's own files, bound over the image's.
out=$(v run "${R[@]}" bb sh -c 'h=$(hostname); cat /etc/hostname; grep -c "^127.0.0.1[[:space:]]localhost $h$" /etc/hosts; grep -cx "::1[[:space:]]localhost" /etc/hosts' | tr '\n' ' ')
check "none: /etc/hostname and /etc/hosts name localhost and the hostname: '$out'" \
	grep -qE '^[0-9a-f]{12} 1 1 $' <<<"$out"
out=$(v run --rm bb sh -c 'ip -4 -o addr show eth0 | awk "{print \$4}" | cut -d/ -f1; hostname; grep -v localhost /etc/hosts' | tr '\n' ' ')
check "bridge: /etc/hosts maps the container's address to its hostname: '$out'" \
	eval 'set -- $out; [ $# = 4 ] && [ "$1" = "$3" ] && [ "$2" = "$4" ]'
out=$(v run --rm --network slirp bb sh -c 'grep -v localhost /etc/hosts')
check "slirp: /etc/hosts has 10.0.2.100 and the hostname: '$out'" grep -qE '^10\.0\.2\.100[[:space:]]+[0-9a-f]{12}$' <<<"$out"

# resolv.conf from a host file of our own (a private mount namespace binds it over the host's).
with_resolv() { # CONTENT ARGS...: run virtus with that as the host's /etc/resolv.conf
	printf "$1" >"$WORK/resolv.host"
	shift
	unshare --mount --propagation private sh -c 'mount --bind "$0" /etc/resolv.conf && exec "$@"' \
		"$WORK/resolv.host" "$VIRTUS" --root "$STORE" "$@"
}
MIXED='search example.com\nnameserver 127.0.0.53\nnameserver 192.0.2.1\noptions edns0\n'
out=$(with_resolv "$MIXED" run "${R[@]}" bb cat /etc/resolv.conf | tr '\n' ' ')
check "resolv.conf: the host's, less its 127.0.0.0/8 nameservers: '$out'" \
	test "$out" = "search example.com nameserver 192.0.2.1 options edns0 "
out=$(with_resolv 'nameserver 127.0.0.53\nsearch lan\n' run --rm --network slirp bb cat /etc/resolv.conf | tr '\n' ' ')
check "resolv.conf, slirp, only a loopback nameserver: slirp's DNS: '$out'" \
	test "$out" = "search lan nameserver 10.0.2.3 "
out=$(with_resolv 'nameserver 127.0.0.53\nsearch lan\n' run "${R[@]}" bb cat /etc/resolv.conf | tr '\n' ' ')
check "resolv.conf, none, only a loopback nameserver: no nameserver: '$out'" test "$out" = "search lan "
out=$(with_resolv 'nameserver 127.0.0.53\nsearch lan\n' run --rm --network host bb cat /etc/resolv.conf | tr '\n' ' ')
check "resolv.conf, host network: the host's as it is: '$out'" test "$out" = "nameserver 127.0.0.53 search lan "

cp -a "$WORK/rootfs.orig" "$WORK/rootfs-etc"
echo "10.1.1.1 image-hosts" >"$WORK/rootfs-etc/etc/hosts"
out=$(v run --network none --name etcw --rootfs "$WORK/rootfs-etc" sh -c 'echo 10.2.2.2 added >> /etc/hosts && echo x > /etc/resolv.conf && grep -c image-hosts /etc/hosts; grep -c added /etc/hosts; cat /etc/resolv.conf')
etcw=$(v inspect etcw | jq -r '.[0].Id')
check "/etc/hosts and resolv.conf are writable in the container, the image's never shows: $(echo $out)" \
	test "$(echo $out)" = "0 1 x"
check "the image's /etc/hosts and the upper dir are untouched" \
	eval 'grep -qx "10.1.1.1 image-hosts" "$WORK/rootfs-etc/etc/hosts" && [ ! -e "$STORE/containers/$etcw/upper/etc/hosts" ]'
v rm etcw >/dev/null

out=$(v run "${R[@]}" -u nobody -w /made/here bb sh -c 'echo "$(pwd) $(stat -c %u:%g .)"')
rc=$?
check "-w to a directory the image lacks: made, owned by root (rc $rc): '$out'" test "$out" = "/made/here 0:0"

# A foreground run: its output reaches the caller unchanged and stays in the log.
out=$(v run --network none --name fg bb sh -c 'echo out; echo err >&2; exit 4' 2>"$WORK/fg.err")
rc=$?
check "foreground: stdout and stderr apart, status passed (rc $rc)" \
	eval '[ "$out" = out ] && [ "$(cat "$WORK/fg.err")" = err ] && [ $rc = 4 ]'
check "foreground: logs shows the output afterwards" test "$(v logs fg | sort | tr '\n' ' ')" = "err out "
v rm fg >/dev/null
sum=$(v run "${R[@]}" bb seq 1 200000 | md5sum)
check "foreground: a large output arrives whole" test "$sum" = "$(seq 1 200000 | md5sum)"
v run --network none --name fgh bb sh -c 'seq 1 200000; exit 3' | head -1 >/dev/null
rc=${PIPESTATUS[0]}
check "foreground: a caller that stops reading still gets the status ($rc) and a full log" \
	eval '[ $rc = 3 ] && [ "$(v logs fgh | wc -l)" = 200000 ]'
v rm fgh >/dev/null
sleep 2 | script -qec "$VIRTUS --root $STORE run -t --network none --name fgt bb sh -c 'echo in-tty'" /dev/null >"$WORK/tty.out"
out=$(v logs fgt | tr -d '\r')
check "foreground with -t: relayed and in the log too: '$out'" \
	eval '[ "$out" = in-tty ] && grep -q in-tty "$WORK/tty.out"'
v rm fgt >/dev/null

check "--rm and successful runs leave nothing behind" test -z "$(new_leftovers "$BASE")"

# Bad inputs: a clear message, the right status, nothing left.
expect() { # NAME STATUS PATTERN ARGS...
	local name=$1 want=$2 pat=$3 out rc
	shift 3
	out=$(v "$@" 2>&1)
	rc=$?
	if [ $rc = "$want" ] && grep -qiE "$pat" <<<"$out" && [ -z "$(new_leftovers "$BASE")" ]; then
		ok "$name"
	else
		not_ok "$name" "rc $rc (want $want)" "$(head -3 <<<"$out")" "left behind: $(new_leftovers "$BASE" | head -5)"
	fi
}
expect "unknown image: 125" 125 "nosuchimage" run "${R[@]}" nosuchimage true
expect "command not found in the image: 127" 127 "not found" run "${R[@]}" bb nosuchcmd
expect "a missing path: 127" 127 "not an executable" run "${R[@]}" bb /no/such
expect "a command that is not executable: 126" 126 "not an executable" run "${R[@]}" bb /etc/passwd
expect "bad --memory: 125" 125 "memory" run "${R[@]}" --memory lots bb true
expect "bad --cpus: 125" 125 "cpus" run "${R[@]}" --cpus -1 bb true
expect "bad -p: 125" 125 "port" run --rm -p 99999:80 bb true
expect "relative -v: 125" 125 "absolute" run "${R[@]}" -v rel:/data bb true
expect "unknown user: 125" 125 "nosuchuser" run "${R[@]}" -u nosuchuser bb true
expect "bad --network: 125" 125 "network|mode" run --rm --network wifi bb true
expect "unknown option: usage error 2" 2 "usage" run --frobnicate bb true
expect "no image: usage" 125 "image" run
expect "bad name: 125" 125 "name" run "${R[@]}" --name 'a b' bb true
v run -d --network none --name taken bb sleep 30 >/dev/null
BASE2=$(leftovers)
out=$(v run "${R[@]}" --name taken bb true 2>&1)
rc=$?
check "a name in use: 125 naming the container, nothing left" \
	eval '[ $rc = 125 ] && grep -q "already in use" <<<"$out" && [ -z "$(new_leftovers "$BASE2")" ]'
v rm -f taken >/dev/null
check "rm -f leaves nothing" test -z "$(new_leftovers "$BASE")"

out=$(v run --help)
check "run --help: usage on stdout, status 0" eval '[ $? = 0 ] && grep -q "^usage: virtus run" <<<"$out"'
finish
