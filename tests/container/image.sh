#!/usr/bin/env bash
# virtus image import/ls/tag/rm/inspect/history/load/save, and interoperability with podman both ways: what
# `podman save` wrote (oci-archive, docker-archive) loads, and what `virtus image save` wrote (both formats)
# loads into podman and runs there with the same files, Env, Entrypoint and Cmd. A damaged archive leaves the
# store as it was; concurrent imports and an rm keep the index whole. podman uses a private storage under
# $WORK and runs under the heavy-work lock.
. "$(dirname "$0")/lib.bash"
require_root

busybox_tar "$WORK/bb.tar"
listing() { (cd "$STORE" && find image layers -path '*/.tmp-*' -prune -o -print | sort; cat image/index.json); }

# --- import, ls, tag, inspect, history, rm ---
id=$(v image import "$WORK/bb.tar" bb 2>&1)
check "image import prints the new image's id ($id)" grep -qE '^[0-9a-f]{64}$' <<<"$id"
diff_id=$(sha256sum "$WORK/bb.tar" | cut -d' ' -f1)
check "the layer is unpacked under layers/<diff id> (the tar's sha256)" test -x "$STORE/layers/$diff_id/bin/busybox"
out=$(v image ls)
check "image ls shows localhost/bb latest and the short id" grep -qE "^localhost/bb +latest +${id:0:12} " <<<"$out"
check "image ls -q prints the short id" [ "$(v image ls -q)" = "${id:0:12}" ]
v image tag bb site:2 && out=$(v image ls)
check "image tag: both names listed" bash -c 'grep -q "^localhost/site  *2 " <<<"$0" && grep -q "^localhost/bb " <<<"$0"' "$out"
info=$(v image inspect site:2)
check "image inspect: Id, RepoTags and RootFS" bash -c 'grep -q "\"Id\": \"$1\"" <<<"$0" && grep -q "localhost/site:2" <<<"$0" &&
	grep -q "sha256:$2" <<<"$0"' "$info" "$id" "$diff_id"
check "image inspect: os linux, an empty Cmd as podman import leaves it" \
	bash -c 'grep -q "\"Os\": \"linux\"" <<<"$0" && ! grep -q "\"Cmd\"" <<<"$0"' "$info"
check "image history names the import" bash -c '"$@" | grep -q "imported from tarball"' _ "$VIRTUS" --root "$STORE" image history bb
out=$(v image rm site:2)
check "image rm of one of two names untags ($out)" grep -q "^Untagged: site:2" <<<"$out"
check "... and the image stays" [ "$(v image ls -q)" = "${id:0:12}" ]
out=$(v image inspect nosuch 2>&1); rc=$?
check "image inspect of an unknown image fails naming it (rc $rc)" bash -c '[ $1 = 1 ] && grep -q "nosuch.*not found" <<<"$0"' "$out" $rc

# an image a container uses is not removed, and the message names the container
mkdir -p "$STORE/containers/c1"
echo "{\"name\":\"web1\",\"image_id\":\"sha256:$id\"}" >"$STORE/containers/c1/container.json"
out=$(v image rm bb 2>&1); rc=$?
check "image rm of an image a container uses fails naming the container (rc $rc)" \
	bash -c '[ $1 != 0 ] && grep -q web1 <<<"$0"' "$out" $rc
check "... and the image is still there" [ "$(v image ls -q)" = "${id:0:12}" ]
rm -rf "$STORE/containers/c1"
out=$(v image rm bb)
check "image rm deletes the image" [ "$out" = "Deleted: $id" ]
check "... its layer directory, layer blob and index entry" bash -c '! test -e "$0/layers/$1" && ! test -e "$0/image/blobs/sha256/$1" &&
	! grep -q digest "$0/image/index.json"' "$STORE" "$diff_id"

# --- usage ---
v image load >/dev/null 2>&1; rc=$?
check "image load without -i is a usage error (exit 2, got $rc)" [ $rc = 2 ]
check "image --help and image save --help print usage" bash -c '"$@" image --help | grep -q "image <command>" &&
	"$@" image save --help | grep -q -- --format' _ "$VIRTUS" --root "$STORE"
v image import "$WORK/nosuch.tar" x >/dev/null 2>&1; rc=$?
check "image import of a missing file fails (rc $rc)" [ $rc = 1 ]

# --- podman interoperability ---
if ! command -v podman >/dev/null; then
	skip "podman interoperability" "podman is not installed"
	finish
fi
PM=(podman --root "$WORK/storage" --runroot "$WORK/run" --tmpdir "$WORK/tmp" --events-backend=file
	--cgroup-manager=cgroupfs)
U=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
mkdir -p "$WORK/tmp"
pm() { flock /tmp/virtus-heavy.lock "${PM[@]}" "$@"; }
cleanup_podman() { "${PM[@]}" rm -a -f -t 0 >/dev/null 2>&1; "${PM[@]}" rmi -a -f >/dev/null 2>&1; cleanup_work; }
trap cleanup_podman EXIT

pm import --change 'ENV FOO=bar' --change 'ENTRYPOINT ["/bin/env"]' --change 'CMD ["-i", "X=1"]' \
	"$WORK/bb.tar" localhost/pbb:1 >/dev/null 2>&1
pid=$(pm image inspect localhost/pbb:1 --format '{{.Id}}' 2>/dev/null)
pm save --format oci-archive -o "$WORK/p-oci.tar" localhost/pbb:1 >/dev/null 2>&1
pm save --format docker-archive -o "$WORK/p-docker.tar" localhost/pbb:1 >/dev/null 2>&1
pm rmi localhost/pbb:1 >/dev/null 2>&1
for f in oci docker; do
	out=$(v image load -i "$WORK/p-$f.tar" 2>&1)
	check "image load of podman's $f-archive prints the name ($out)" [ "$out" = "Loaded image: localhost/pbb:1" ]
	info=$(v image inspect pbb:1)
	check "... same image id as podman's, Env/Entrypoint/Cmd kept" bash -c 'grep -q "\"Id\": \"$1\"" <<<"$0" &&
		grep -q FOO=bar <<<"$0" && grep -q "/bin/env" <<<"$0" && grep -q "X=1" <<<"$0"' "$info" "$pid"
	[ $f = oci ] && v image rm pbb:1 >/dev/null
done

# what virtus saved, podman loads and runs
want=$(cat "$WORK/bb.tar" | tar -xOf - ./etc/passwd)
for f in oci-archive docker-archive; do
	v image save --format $f -o "$WORK/v-$f.tar" pbb:1
	out=$(pm load -i "$WORK/v-$f.tar" 2>&1 | tail -1)
	check "podman load of virtus's $f ($out)" [ "$out" = "Loaded image: localhost/pbb:1" ]
	got=$(pm run --rm --runtime runc "${U[@]}" --entrypoint cat localhost/pbb:1 /etc/passwd 2>&1)
	check "podman runs it: /etc/passwd is the same" [ "$got" = "$want" ]
	cfg=$(pm image inspect localhost/pbb:1 --format '{{.Id}} {{.Config.Env}} {{.Config.Entrypoint}} {{.Config.Cmd}}' 2>&1)
	check "podman sees the same id, Env, Entrypoint and Cmd ($cfg)" [ "$cfg" = "$pid [FOO=bar] [/bin/env] [-i X=1]" ]
	pm rmi -f localhost/pbb:1 >/dev/null 2>&1
done
layer=$(tar -xOf "$WORK/v-oci-archive.tar" manifest.json | grep -oE 'blobs/sha256/[0-9a-f]{64}"\]' | tr -d '"]')
check "saved layers are gzip-compressed" bash -c 'tar -xOf "$0" "$1" | gzip -t' "$WORK/v-oci-archive.tar" "$layer"

# --- damaged archives leave the store unchanged ---
v image rm pbb:1 >/dev/null
before=$(listing)
size=$(stat -c %s "$WORK/p-oci.tar")
head -c $((size / 2)) "$WORK/p-oci.tar" >"$WORK/trunc.tar"
out=$(v image load -i "$WORK/trunc.tar" 2>&1); rc=$?
check "a truncated archive is refused (rc $rc: $out)" bash -c '[ $1 = 1 ] && grep -qi "truncated\|damaged" <<<"$0"' "$out" $rc
check "... and leaves the store unchanged" [ "$(listing)" = "$before" ]
cp "$WORK/p-docker.tar" "$WORK/corrupt.tar"
off=$(grep -obUaP 'bin/busybox' "$WORK/corrupt.tar" | head -1 | cut -d: -f1)
printf 'CORRUPTCORRUPT' | dd of="$WORK/corrupt.tar" bs=1 seek=$((off + 20000)) conv=notrunc 2>/dev/null
out=$(v image load -i "$WORK/corrupt.tar" 2>&1); rc=$?
check "an archive with a corrupt layer is refused (rc $rc: $out)" bash -c '[ $1 = 1 ] && grep -q "corrupt" <<<"$0"' "$out" $rc
after=$(listing)
check "... and leaves the store unchanged" [ "$after" = "$before" ]
[ "$after" = "$before" ] || diag "$(diff <(echo "$before") <(echo "$after"))"
check "... with no temporary files left" bash -c '[ -z "$(ls -A "$0/tmp" "$0/image/blobs" | grep -v "^sha256$\|^$\|:$")" ]' "$STORE"

# --- concurrent imports and rm keep the index whole ---
gzip -c "$WORK/bb.tar" >"$WORK/bb.tar.gz"
rc=0
for round in 1 2 3; do
	v image import "$WORK/bb.tar" victim >/dev/null
	v image import "$WORK/bb.tar.gz" a$round >/dev/null & p1=$!
	v image import "$WORK/bb.tar" b$round >/dev/null & p2=$!
	v image rm victim >/dev/null & p3=$!
	wait $p1 || rc=1; wait $p2 || rc=1; wait $p3 || rc=1
done
out=$(v image ls)
check "concurrent import x2 and rm, 3 rounds, succeed (rc $rc)" [ $rc = 0 ]
check "... the index names a1..a3 and b1..b3, not victim" bash -c 'for n in a1 a2 a3 b1 b2 b3; do
	grep -q "^localhost/$n " <<<"$0" || exit 1; done; ! grep -q victim <<<"$0"' "$out"
check "... and every index entry's manifest is in the store" bash -c 'for d in $(grep -oE "sha256:[0-9a-f]{64}" "$0/image/index.json"); do
	test -f "$0/image/blobs/sha256/${d#sha256:}" || exit 1; done' "$STORE"
finish
