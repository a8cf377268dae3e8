#!/usr/bin/env bash
# `virtus serve` from the command line and over the wire (the page itself: the browser suite): usage errors,
# options refused before anything is made, a busy port, a token file others can read, the token's checks, the
# page's security headers, HTTPS and a container's shell over a WebSocket inside TLS, a WebSocket refused
# (bad key, other site's Origin, no token), SIGTERM ending it cleanly.
source "$(dirname "$0")/lib.bash"
require_root
R=$WORK/sroot
serve_bg() { "$VIRTUS" --root "$R" serve "$@" >"$WORK/serve.out" 2>"$WORK/serve.err" & }
serve_url() {
	for _ in $(seq 50); do
		grep -q '^virtus serve: open' "$WORK/serve.out" 2>/dev/null && break
		sleep 0.1
	done
	sed -n 's/^virtus serve: open \(http[^ ]*\) .*/\1/p' "$WORK/serve.out"
}

"$VIRTUS" --root "$R" serve --bogus >/dev/null 2>&1
check "an unknown option: usage error (2)" test $? = 2
"$VIRTUS" --root "$R" serve extra >/dev/null 2>&1
check "an operand: usage error (2)" test $? = 2
out=$("$VIRTUS" --root "$R" serve --listen 127.0.0.1 2>&1); rc=$?
check "--listen without a port: status 1, says what it wants ($out)" eval '[ $rc = 1 ] && grep -q "ADDR:PORT" <<<"$out"'
out=$("$VIRTUS" --root "$R" serve --tls-cert /etc/hostname 2>&1)
check "--tls-cert without --tls-key refused ($out)" grep -q "go together" <<<"$out"
out=$("$VIRTUS" --root "$R" serve --tls-cert "$WORK/none.pem" --tls-key "$WORK/none.pem" 2>&1)
check "a missing certificate named ($out)" grep -q "none.pem" <<<"$out"
check "nothing made by the refusals (no token, no store)" test ! -e "$R"

python3 -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(20)' >"$WORK/busy" &
busy=$!
for _ in $(seq 50); do [ -s "$WORK/busy" ] && break; sleep 0.1; done
out=$("$VIRTUS" --root "$R" serve --listen "127.0.0.1:$(cat "$WORK/busy")" 2>&1); rc=$?
check "a port in use: status 1, named ($out)" eval '[ $rc = 1 ] && grep -q "cannot listen on 127.0.0.1:.*in use" <<<"$out"'
kill $busy

mkdir -p "$WORK/t" && printf '%064d\n' 0 >"$WORK/t/token" && chmod 644 "$WORK/t/token"
out=$("$VIRTUS" --root "$R" serve --token-file "$WORK/t/token" --listen 127.0.0.1:0 2>&1); rc=$?
check "a token file others can read: refused, left as it was ($out)" \
	eval '[ $rc = 1 ] && grep -q "mode 0600" <<<"$out" && [ "$(stat -c %a "$WORK/t/token")" = 644 ]'

busybox_tar "$WORK/bb.tar"
v image import "$WORK/bb.tar" bb >/dev/null || { not_ok "image import"; finish; }
cid=$(v run -d --network none --name web bb sleep 600)
R=$STORE

# plain HTTP: the token, the page's headers, the end on SIGTERM
serve_bg --listen 127.0.0.1:0
pid=$!
url=$(serve_url)
base=${url%%/#token=*} token=${url##*#token=}
check "the URL and its token are printed ($url)" grep -qE '^http://127\.0\.0\.1:[0-9]+/#token=[0-9a-f]{64}$' <<<"$url"
check "the token file is 0600 and holds that token" \
	eval '[ "$(stat -c %a "$STORE/serve/token")" = 600 ] && [ "$(cat "$STORE/serve/token")" = "$token" ]'
hdr=$(curl -s -D - -o /dev/null "$base/")
check "the page: 200 with a Content-Security-Policy and no framing" \
	eval 'grep -q "^HTTP/1.1 200" <<<"$hdr" && grep -qi "^Content-Security-Policy: default-src .self." <<<"$hdr" && grep -qi "^X-Frame-Options: DENY" <<<"$hdr"'
check "GET /api/overview without the token: 401" test "$(curl -s -o /dev/null -w '%{http_code}' "$base/api/overview")" = 401
got=$(curl -s -H "Authorization: Bearer $token" "$base/api/containers")
check "GET /api/containers with it: the container, running" \
	eval 'jq -e ".[0].id == \"$cid\" and .[0].status == \"running\" and .[0].name == \"web\"" <<<"$got" >/dev/null'
got=$(curl -s -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d '{"x":' "$base/api/containers")
check "a malformed body: 400 naming it ($got)" grep -q "not a JSON object" <<<"$got"
kill -TERM $pid
wait $pid
check "SIGTERM ends it with status 0" test $? = 0

# HTTPS, and a shell over a WebSocket inside TLS
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 2 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
serve_bg --listen 127.0.0.1:0 --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
pid=$!
url=$(serve_url)
base=${url%%/#token=*} port=${base##*:}
check "with a certificate the URL is https ($url)" grep -q '^https://' <<<"$url"
check "GET /api/vms over TLS with the token: 200" \
	test "$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$base/api/vms")" = 200
out=$(PYTHONPATH=$TOP/tests/serve timeout 30 python3 - "$port" "$token" <<'PY' 2>&1
import sys, wsclient
port, token = int(sys.argv[1]), sys.argv[2]
ws = wsclient.WebSocket("127.0.0.1", port, f"/api/containers/web/shell?token={token}", tls=True)
assert ws.status == 101, ws.head
ws.read_until(b"# ")
ws.send_binary(b"echo tls-$((20+22))\r")
ws.read_until(b"tls-42")
ws.send_binary(b"exit\r")
while True:
    op, data = ws.recv_frame()
    if op == 8:
        print("closed", int.from_bytes(data[:2], "big"))
        break
for name, headers, path in (("no-token", {}, "/api/containers/web/shell"),
                            ("other-origin", {"Origin": "https://evil.example"}, f"/api/containers/web/shell?token={token}"),
                            ("unknown", {}, f"/api/containers/nosuch/shell?token={token}")):
    print(name, wsclient.WebSocket("127.0.0.1", port, path, headers=headers, tls=True).status)
PY
)
check "a container's shell over a WebSocket in TLS: a command's output, then a normal close" grep -q "^closed 1000" <<<"$out"
check "WebSockets refused: no token 401, another site's page 403, an unknown container 404 ($(tr '\n' ' ' <<<"$out"))" \
	eval 'grep -q "^no-token 401" <<<"$out" && grep -q "^other-origin 403" <<<"$out" && grep -q "^unknown 404" <<<"$out"'
kill -TERM $pid
wait $pid
finish
