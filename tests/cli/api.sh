#!/usr/bin/env bash
# The VM API before a VM starts, on any host (no KVM needed): `virtus vm run --api-socket PATH` without
# --kernel serves Firecracker's pre-boot resources. Each PUT is checked field by field, GET /vm/config shows
# what was configured, InstanceStart checks the files and KVM (on a host without /dev/kvm it must fail with
# that reason and leave the VM configurable), Kill and SIGTERM end the VMM, and nothing is left behind.
#   VIRTUS=build/virtus tests/cli/api.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
VIRTUS=${VIRTUS:-build/virtus}
tmp=$(mktemp -d)
export VIRTUS_VM_RUN_DIR=$tmp/vms
trap 'for p in $(cat "$tmp"/pids 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
# shellcheck source=../lib/tap.bash
. tests/lib/tap.bash

v() { timeout -s KILL 20 "$VIRTUS" "$@"; }
api_case() { # NAME WANT_STATUS BODY_REGEX METHOD PATH [JSON]
	local name=$1 want=$2 pat=$3; shift 3
	local out rc
	out=$(v vm api p1 "$@" 2>"$tmp/apierr"); rc=$?
	if [ $rc -eq "$want" ] && echo "$out" | grep -qE -- "$pat"; then ok "pre-boot API: $name"
	else not_ok "pre-boot API: $name" "status $rc: $out $(cat "$tmp/apierr")"; fi
}

out=$(v vm run -d --name p1 --api-socket "$tmp/p1.sock" 2>"$tmp/err"); rc=$?
if [ $rc -eq 0 ] && [ "$out" = p1 ] && [ -S "$tmp/p1.sock" ]; then ok "vm run -d --api-socket without --kernel: waits for its configuration"
else not_ok "vm run -d --api-socket" "status $rc: $out $(cat "$tmp/err")"; fi
sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$VIRTUS_VM_RUN_DIR/p1/vm.json" >"$tmp/pids" 2>/dev/null
if [ "$(stat -c %a "$tmp/p1.sock" 2>/dev/null)" = 600 ]; then ok "the API socket is mode 0600"; else not_ok "API socket mode" "$(stat -c %a "$tmp/p1.sock" 2>&1)"; fi
api_case "GET / says Not started" 0 '"state": *"Not started"' GET /
api_case "GET /machine-config: the defaults (1 vCPU, 512 MiB)" 0 '"vcpu_count": *1.*"mem_size_mib": *512' GET /machine-config
api_case "PUT /machine-config" 0 '^$' PUT /machine-config '{"vcpu_count":2,"mem_size_mib":64}'
api_case "PUT /machine-config: vcpu_count out of range" 1 'vcpu_count: expected a whole number from 1 to 255' PUT /machine-config '{"vcpu_count":0,"mem_size_mib":64}'
api_case "PUT /machine-config: a string for a number" 1 'mem_size_mib: expected a whole number' PUT /machine-config '{"vcpu_count":1,"mem_size_mib":"64"}'
api_case "PUT /machine-config: smt is refused" 1 'smt: not supported' PUT /machine-config '{"vcpu_count":1,"mem_size_mib":64,"smt":true}'
api_case "PUT /machine-config: an unknown field" 1 'vcpus: unknown field' PUT /machine-config '{"vcpu_count":1,"mem_size_mib":64,"vcpus":1}'
api_case "the refused changes changed nothing" 0 '"vcpu_count": *2.*"mem_size_mib": *64' GET /machine-config
api_case "PUT /boot-source without kernel_image_path" 1 'kernel_image_path: missing' PUT /boot-source '{"boot_args":"x"}'
api_case "InstanceStart before a boot source" 1 'no boot source' PUT /actions '{"action_type":"InstanceStart"}'
api_case "PUT /boot-source" 0 '^$' PUT /boot-source "{\"kernel_image_path\":\"$tmp/kernel\",\"boot_args\":\"console=ttyS0\"}"
api_case "PUT /drives/ID: the body's drive_id must be the path's" 1 "drive_id: 'other' is not the ID of the path" PUT /drives/root '{"drive_id":"other","path_on_host":"/x"}'
api_case "PUT /drives/ID" 0 '^$' PUT /drives/root "{\"drive_id\":\"root\",\"path_on_host\":\"$tmp/disk.img\",\"is_root_device\":true,\"is_read_only\":true}"
for i in 1 2 3 4 5 6 7; do v vm api p1 PUT /drives/d$i "{\"drive_id\":\"d$i\",\"path_on_host\":\"$tmp/disk$i.img\"}" >/dev/null; done
api_case "PUT /drives/ID: a ninth drive is refused" 1 'at most 8 drives' PUT /drives/d8 "{\"drive_id\":\"d8\",\"path_on_host\":\"$tmp/disk.img\"}"
api_case "PUT /network-interfaces/ID: a bad device name" 1 'host_dev_name: not a network device name' PUT /network-interfaces/eth0 '{"iface_id":"eth0","host_dev_name":"tap,0"}'
api_case "PUT /network-interfaces/ID" 0 '^$' PUT /network-interfaces/eth0 '{"iface_id":"eth0","host_dev_name":"vtap0","guest_mac":"52:54:00:12:34:56"}'
api_case "PUT /vsock: a reserved CID" 1 'guest_cid: expected a whole number from 3' PUT /vsock "{\"guest_cid\":2,\"uds_path\":\"$tmp/v.sock\"}"
api_case "PUT /vsock" 0 '^$' PUT /vsock "{\"guest_cid\":3,\"uds_path\":\"$tmp/v.sock\"}"
api_case "PUT /balloon with amount_mib 0: a balloon with nothing asked yet" 0 '^$' PUT /balloon '{"amount_mib":0}'
api_case "GET /vm/config: that balloon is there, at 0 MiB" 0 '"balloon": *\{ *"amount_mib": *0,' GET /vm/config
api_case "PUT /balloon" 0 '^$' PUT /balloon '{"amount_mib":16,"deflate_on_oom":false,"stats_polling_interval_s":1}'
api_case "GET /vm/config: what was configured" 0 "\"kernel_image_path\": *\"$tmp/kernel\".*\"vcpu_count\": *2.*\"drive_id\": *\"root\", *\"path_on_host\": *\"$tmp/disk.img\", *\"is_root_device\": *true.*\"host_dev_name\": *\"vtap0\", *\"guest_mac\": *\"52:54:00:12:34:56\".*\"guest_cid\": *3.*\"amount_mib\": *16" GET /vm/config
api_case "PATCH /vm before the start" 1 'not available before the microVM starts' PATCH /vm '{"state":"Paused"}'
api_case "an unknown path" 1 'not available before' GET /nope
api_case "InstanceStart with a missing kernel: the file named" 1 "InstanceStart: .*$tmp/kernel" PUT /actions '{"action_type":"InstanceStart"}'
cp "$(dirname "$VIRTUS")/tests/kvm/guests/hello.elf" "$tmp/kernel" 2>/dev/null || cp build/tests/kvm/guests/hello.elf "$tmp/kernel"
api_case "InstanceStart with a missing disk: the file named" 1 "InstanceStart: .*$tmp/disk.img" PUT /actions '{"action_type":"InstanceStart"}'
api_case "after failed starts the VM is still configurable, not started" 0 '"state": *"Not started"' GET /
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
	ok "InstanceStart without KVM: skipped, this host has /dev/kvm (the KVM suite starts VMs through the API)"
else
	for i in "" 1 2 3 4 5 6 7; do head -c 1048576 /dev/zero >"$tmp/disk$i.img"; done
	v vm api p1 PUT /network-interfaces/eth0 '{"iface_id":"eth0","host_dev_name":"vtap0"}' >/dev/null
	api_case "InstanceStart on a host without /dev/kvm: 400 with that reason" 1 'InstanceStart: .*/dev/kvm' PUT /actions '{"action_type":"InstanceStart"}'
fi
pid=$(cat "$tmp/pids")
v vm kill p1; rc=$?
if [ $rc -eq 0 ] && ! kill -0 "$pid" 2>/dev/null && [ ! -e "$tmp/p1.sock" ] && [ ! -e "$VIRTUS_VM_RUN_DIR/p1" ]; then
	ok "vm kill of an unstarted VM: the VMM ends, its socket and directory go"
else not_ok "kill unstarted" "status $rc" "$(ls -la "$tmp" "$VIRTUS_VM_RUN_DIR" 2>&1)"; fi

"$VIRTUS" vm run --name p2 --api-socket "$tmp/p2.sock" 2>"$tmp/p2.err" & pid=$!
echo $pid >>"$tmp/pids"
for _ in $(seq 50); do [ -S "$tmp/p2.sock" ] && break; sleep 0.1; done
kill -TERM $pid; wait $pid; rc=$?
if [ $rc -eq 130 ] && [ ! -e "$tmp/p2.sock" ] && [ ! -e "$VIRTUS_VM_RUN_DIR/p2" ] && grep -q 'before the VM was started' "$tmp/p2.err"; then
	ok "SIGTERM to an unstarted VMM: status 130, nothing left"
else not_ok "SIGTERM unstarted" "status $rc: $(cat "$tmp/p2.err")"; fi
out=$(v vm run --jail --api-socket "$tmp/p3.sock" 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q -- '--jail needs the VM configured on the command line' && [ ! -e "$tmp/p3.sock" ]; then
	ok "--jail with a VM configured through the API is a usage error"
else not_ok "--jail preboot" "status $rc: $out"; fi
# The VM directory root: one others may write to is refused (it would hold this user's sockets), before
# anything is made in it; a user other than root keeps its VMs in its own runtime directory, not /run's.
mkdir -m 777 "$tmp/open"; chmod 777 "$tmp/open"
out=$(VIRTUS_VM_RUN_DIR=$tmp/open v vm run --name r1 --api-socket "$tmp/r1.sock" 2>&1); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "$tmp/open is not a directory of this user that only it may write to" &&
   [ -z "$(ls -A "$tmp/open")" ] && [ ! -e "$tmp/r1.sock" ]; then ok "a VM directory root others may write to is refused, nothing made"
else not_ok "a VM directory root others may write to" "status $rc: $out" "$(ls -A "$tmp/open")"; fi
if [ "$(id -u)" = 0 ] && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
	mkdir "$tmp/xdg" && chown 65534:65534 "$tmp/xdg" && chmod 755 "$tmp"
	cp "$(dirname "$VIRTUS")/tests/kvm/guests/hello.elf" "$tmp/hello.elf" && chmod 644 "$tmp/hello.elf"
	# (copies: the checkout may be in a directory that uid 65534 cannot enter)
	cp "$VIRTUS" "$tmp/virtus" && chmod 755 "$tmp/virtus"
	out=$(env -u VIRTUS_VM_RUN_DIR XDG_RUNTIME_DIR="$tmp/xdg" setpriv --reuid=65534 --regid=65534 --clear-groups \
		timeout -s KILL 20 "$tmp/virtus" vm run --kernel "$tmp/hello.elf" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -Eq 'no permission to open /dev/kvm|no /dev/kvm' &&
	   [ -d "$tmp/xdg/virtus-vms" ] && [ -z "$(ls -A "$tmp/xdg/virtus-vms")" ]; then
		ok "another user's VMs live in its XDG_RUNTIME_DIR (reaches /dev/kvm's check, leaves no VM directory)"
	else not_ok "another user's VM directory root" "status $rc: $out" "$(ls -lR "$tmp/xdg" 2>&1)"; fi
fi
# vm migrate follows GET /migrate; the source's last pass is one step of its control loop, so its API may
# be silent for as long as the destination takes to answer (up to 60 s): a VMM (here a stand-in) that does not
# answer one GET within the client's 5 s is waited for, and the migration's end is reported.
mkdir -p "$VIRTUS_VM_RUN_DIR/fake"
python3 - "$tmp/fake.sock" <<'PY' &
import json, socket, sys, time
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1]); srv.listen(8)
gets = 0
while gets < 2:
    c, _ = srv.accept()
    head = b""
    while b"\r\n\r\n" not in head:
        head += c.recv(4096)
    line = head.split(b"\r\n")[0].decode()
    if line.startswith("PUT"):
        c.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    else:
        gets += 1
        if gets == 1:
            time.sleep(7)   # the last pass: no answer within the client's 5 s
        body = json.dumps({"state": "completed", "total_ms": 9, "downtime_ms": 7001, "sent_mib": "1", "pass": 1}).encode()
        try:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
    c.close()
PY
fake=$!
echo $fake >>"$tmp/pids"
for _ in $(seq 50); do [ -S "$tmp/fake.sock" ] && break; sleep 0.1; done
printf '{"pid": %d, "api_socket": "%s", "detached": true, "started": 0}\n' "$fake" "$tmp/fake.sock" >"$VIRTUS_VM_RUN_DIR/fake/vm.json"
out=$(timeout -s KILL 60 "$VIRTUS" vm migrate fake "unix:$tmp/dest.sock" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q '^fake migrated to unix:.* (paused 7001 ms'; then
	ok "vm migrate waits for a source whose API is silent during the last pass (7 s), and reports the end"
else not_ok "vm migrate with a silent last pass" "status $rc: $out"; fi
kill "$fake" 2>/dev/null
rm -rf "$VIRTUS_VM_RUN_DIR/fake"
left=$(ls "$VIRTUS_VM_RUN_DIR" 2>/dev/null | wc -l)
if [ "$left" = 0 ]; then ok "at the end: no VM directory left"; else not_ok "VM directories left" "$(ls "$VIRTUS_VM_RUN_DIR")"; fi
echo "1..$n"
