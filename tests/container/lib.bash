# Shared helpers for the image and container tests (sourced; the suite runs tests/container/*.sh).
# Every test gets a private store (virtus --root $STORE), a scratch dir $WORK, busybox images, TAP helpers.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VIRTUS=${VIRTUS:-$TOP/build/virtus}
WORK=$(mktemp -d /tmp/virtus-ctr-test.XXXXXX)
chmod 755 "$WORK"
STORE=$WORK/store
N=0

cleanup_work() {
	local c
	# Containers first (they hold mounts, cgroups, veths), then the store.
	for c in $("$VIRTUS" --root "$STORE" ps -a -q 2>/dev/null); do
		"$VIRTUS" --root "$STORE" rm -f "$c" >/dev/null 2>&1
	done
	grep -F " $WORK/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
	local rr
	rr=$(run_root)
	if [ -n "$rr" ]; then
		grep -F " $rr/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
		rm -rf "$rr"
	fi
	rm -rf "$WORK"
}
trap cleanup_work EXIT

ok() { N=$((N + 1)); echo "ok $N - $*"; }
not_ok() { N=$((N + 1)); echo "not ok $N - $1"; shift; local l; for l in "$@"; do echo "#   $l"; done; }
skip() { N=$((N + 1)); echo "ok $N - $1 # skip $2"; }
diag() { sed 's/^/# /' <<<"$*"; }
# check NAME CMD...: ok if the command succeeds
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
finish() { echo "1..$N"; exit 0; }

require_root() {
	if [ "$(id -u)" != 0 ]; then echo "1..0 # skip needs root"; exit 0; fi
	if [ ! -x "$VIRTUS" ]; then echo "not ok 1 - $VIRTUS is not built"; exit 1; fi
	if ! command -v busybox >/dev/null; then echo "not ok 1 - busybox-static is missing (scripts/deps)"; exit 1; fi
}

v() { "$VIRTUS" --root "$STORE" "$@"; }
# The store's run root, where virtus keeps what lasts only while containers run (their /etc files in
# containers/, the runtime's state in runtime/): the dir under /run/virtus-stores whose "store" link names $STORE.
run_root() {
	local d real
	real=$(realpath -m "$STORE")
	for d in /run/virtus-stores/*/; do
		[ "$(readlink "${d}store" 2>/dev/null)" = "$real" ] && { echo "${d%/}"; return; }
	done
}

# busybox_rootfs DIR: a tiny root file system (busybox and its applets, /etc/passwd and group).
busybox_rootfs() {
	local r=$1 a
	mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root"
	cp "$(command -v busybox)" "$r/bin/busybox"
	for a in $("$r/bin/busybox" --list); do
		[ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
	chmod 1777 "$r/tmp"
}

# busybox_tar FILE: that root file system as a tarball (numeric owners).
busybox_tar() {
	local d
	d=$(mktemp -d "$WORK/bb.XXXXXX")
	busybox_rootfs "$d"
	tar --numeric-owner -C "$d" -cf "$1" . && rm -rf "$d"
}
