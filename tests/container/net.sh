#!/usr/bin/env bash
# Container networking through `virtus run`: -p published with bridge and slirp (busybox httpd reached at
# 127.0.0.1 and at the host's own address), two bridged containers reaching each other, the host's
# loopback-only services out of a container's reach, none and host, and a taken port that fails the run
# naming the port and leaves nothing behind. Everything of a container (rules, veth, lease) goes with rm -f.
source "$(dirname "$0")/lib.bash"
require_root

busybox_tar "$WORK/bb.tar"
v image import "$WORK/bb.tar" bb >/dev/null || { echo "not ok 1 - image import"; exit 1; }
HOSTADDR=$(ip -4 -o addr show scope global 2>/dev/null | awk '$2 != "virtus0" {sub("/.*", "", $4); print $4; exit}')
P1=28580 P2=28581 P3=28582

# get URL: the page, retried for up to 5 s while the container's httpd starts
get() {
	local i
	for i in $(seq 50); do
		curl -s -m 1 "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
rules_of() { nft list table ip virtus 2>/dev/null | grep -c "virtus:$1\""; }
leases_of() { grep -lx "$1" /run/virtus-net/leases/* 2>/dev/null | wc -l; }
site() { echo "echo site-$1 > /www/index.html && exec httpd -f -p 80 -h /www"; }

for mode in bridge slirp; do
	id=$(v run -d --network $mode -p $P1:80 bb sh -c "mkdir /www && $(site $mode)")
	check "$mode: run -d -p $P1:80 gives an id" test -n "$id"
	out=$(get http://127.0.0.1:$P1/)
	check "$mode: httpd at 127.0.0.1:$P1: '$out'" test "$out" = "site-$mode"
	if [ -n "$HOSTADDR" ]; then
		out=$(get "http://$HOSTADDR:$P1/")
		check "$mode: httpd at the host's address $HOSTADDR:$P1: '$out'" test "$out" = "site-$mode"
	fi
	v run --rm --network $mode -p $P1:80 bb true >"$WORK/err" 2>&1
	rc=$?
	check "$mode: the same port again fails naming it (rc $rc): $(cat "$WORK/err")" \
		grep -q "port $P1/tcp on 0.0.0.0 is already in use" "$WORK/err"
	[ $mode = bridge ] && check "bridge: the container's rules are in table ip virtus" test "$(rules_of "$id")" -ge 2
	v rm -f "$id" >/dev/null
	check "$mode: rm -f frees the port (nothing listens on it)" sh -c "! ss -Hltn 'sport = :$P1' | grep -q ."
	check "$mode: rm -f leaves no rule nor lease of the container" test "$(rules_of "$id")$(leases_of "$id")" = 00
done

# A bridged container's veth goes with it (the kernel destroys the pair with the container's namespace).
vts() { ip -o link show 2>/dev/null | grep -c ': vt[0-9a-f]\{12\}@'; }
before=$(vts)
v run --rm bb true
for _ in $(seq 40); do [ "$(vts)" = "$before" ] && break; sleep 0.05; done
check "run --rm: the container's veth is gone within 2 s ($before before, $(vts) after)" test "$(vts)" = "$before"
id=$(v run -d bb sleep 100)
check "run -d: its veth is on the bridge ($(vts) veths)" test "$(vts)" = $((before + 1))
v rm -f "$id" >/dev/null
for _ in $(seq 40); do [ "$(vts)" = "$before" ] && break; sleep 0.05; done
check "rm -f: its veth is gone within 2 s" test "$(vts)" = "$before"

# Two bridged containers reach each other by address.
a=$(v run -d -p $P2:80 bb sh -c "mkdir /www && $(site a)")
addr=$(v inspect "$a" 2>/dev/null | grep -o '"IPAddress": *"[0-9.]*"' | grep -o '[0-9.]*' | head -1)
get http://127.0.0.1:$P2/ >/dev/null
# (busybox's static wget crashes in its resolver: nc speaks the HTTP instead)
out=$(v run --rm bb sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 $addr 80" 2>&1 | tail -1)
check "a bridged container reaches another at $addr: '$out'" test "$out" = site-a
v rm -f "$a" >/dev/null

# Services bound only to the host's loopback stay out of reach (bridge: via the gateway; slirp: via 10.0.2.2).
busybox nc -l -p $P3 -s 127.0.0.1 >"$WORK/lo.out" 2>/dev/null &
ncpid=$!
sleep 0.2
gw=$(v run --rm bb sh -c "ip route | awk '/default/ {print \$3}'")
v run --rm bb sh -c "echo leak | nc -w 1 $gw $P3" >/dev/null 2>&1
v run --rm --network slirp bb sh -c "echo leak | nc -w 1 10.0.2.2 $P3" >/dev/null 2>&1
check "the host's loopback-only listener got nothing from bridge ($gw) nor slirp" test ! -s "$WORK/lo.out"
kill $ncpid 2>/dev/null
wait $ncpid 2>/dev/null

out=$(v run --rm --network none bb sh -c 'ip -o link | wc -l; ip -o addr show lo | grep -c "127.0.0.1"')
check "none: only lo, and it is up with 127.0.0.1: '$(echo $out)'" test "$(echo $out)" = "1 1"
out=$(v run --rm --network host bb sh -c 'ip -o link | wc -l')
check "host: the host's links ($out)" test "$out" = "$(ip -o link | wc -l)"

# The table's batch is skipped while the table is as virtus last made it (its handle and the handles of the
# rules in guard and postrouting, which the kernel never reuses): a run does not touch it, and one after the
# table or a chain of it was emptied by someone else makes it again.
guard_handle() { nft -a list chain ip virtus guard 2>/dev/null | sed -n 's/.*drop # handle \([0-9]*\)$/\1/p'; }
h1=$(guard_handle)
v run --rm bb true
h2=$(guard_handle)
check "a run with the table intact leaves it alone (guard's rule keeps its handle: $h1 -> $h2)" sh -c "[ -n '$h1' ] && [ '$h1' = '$h2' ]"
nft delete table ip virtus 2>/dev/null
out=$(v run --rm bb sh -c 'echo bridged')
check "a run after the table was deleted: the container runs ('$out')" test "$out" = bridged
check "... and the table is back with its masquerade rule" sh -c "nft list table ip virtus | grep -q 'masquerade'"
nft flush chain ip virtus postrouting
v run --rm bb true
check "a run after postrouting was flushed puts its masquerade rule back" sh -c "nft list chain ip virtus postrouting | grep -q 'masquerade'"

# A taken port: the run fails naming it, and leaves no container, lease, rule or veth.
busybox nc -l -p $P3 >/dev/null 2>&1 &
ncpid=$!
sleep 0.2
before="$(v ps -a -q | wc -l) $(ls /run/virtus-net/leases 2>/dev/null | wc -l)"
v run -d -p $P3:80 bb httpd -f -p 80 >"$WORK/err" 2>&1
rc=$?
after="$(v ps -a -q | wc -l) $(ls /run/virtus-net/leases 2>/dev/null | wc -l)"
check "a taken port fails the run (rc $rc): $(cat "$WORK/err")" \
	sh -c "[ $rc != 0 ] && grep -q 'port $P3/tcp on 0.0.0.0 is already in use' '$WORK/err'"
check "... and leaves no container nor lease ($before -> $after)" test "$before" = "$after"
kill $ncpid 2>/dev/null
wait $ncpid 2>/dev/null
finish
