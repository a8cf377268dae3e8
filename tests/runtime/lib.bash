# Shared helpers for the runtime integration tests (sourced, not run: the suite runs tests/runtime/*.sh).
# Every test gets a private --root, a busybox bundle in a temp dir, and TAP output helpers.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RT=${RT:-$TOP/build/virtus-runtime}
WORK=$(mktemp -d /tmp/virtus-rt-test.XXXXXX)
chmod 755 "$WORK" # containers with a user namespace must reach their bundle
ROOT=$WORK/state
N=0
FAILED=0

cleanup_work() {
	local id
	for id in $(ls "$ROOT" 2>/dev/null); do "$RT" --root "$ROOT" delete --force "$id" >/dev/null 2>&1; done
	rm -rf "$WORK"
}
trap cleanup_work EXIT

ok() { N=$((N + 1)); echo "ok $N - $*"; }
not_ok() { N=$((N + 1)); FAILED=1; echo "not ok $N - $*"; }
skip() { N=$((N + 1)); echo "ok $N - $1 # skip $2"; }
diag() { sed 's/^/# /' <<<"$*"; }
# check NAME CMD...: ok if the command succeeds
check() { local name=$1; shift; if "$@"; then ok "$name"; else not_ok "$name"; fi; }
finish() { echo "1..$N"; exit 0; }

require_root() {
	if [ "$(id -u)" != 0 ]; then echo "1..0 # skip needs root"; exit 0; fi
	if [ ! -x "$RT" ]; then echo "not ok 1 - $RT is not built"; exit 1; fi
	if [ ! -x /bin/busybox ] && [ ! -x /usr/bin/busybox ]; then echo "1..0 # skip needs busybox-static"; exit 0; fi
}

rt() { "$RT" --root "$ROOT" "$@"; }

# make_bundle DIR: a busybox rootfs and the default config with a non-terminal process
make_bundle() {
	local b=$1 bb
	bb=$(command -v busybox)
	mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/sys" "$b/rootfs/dev" "$b/rootfs/tmp" "$b/rootfs/etc"
	cp "$bb" "$b/rootfs/bin/busybox"
	local a
	for a in sh ls cat echo id hostname sleep grep mount ps true false touch stat env pwd umask readlink \
		wc head sed ulimit mkdir rm test; do
		ln -sf busybox "$b/rootfs/bin/$a"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$b/rootfs/etc/passwd"
	rm -f "$b/config.json"
	"$RT" spec --bundle "$b" || return 1
	set_config "$b" 'c["process"]["terminal"] = False'
}

# set_config BUNDLE PYTHON...: edit config.json with python statements on the dict `c`
set_config() {
	local b=$1; shift
	python3 - "$b/config.json" "$@" <<'PY'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
for stmt in sys.argv[2:]:
    exec(stmt)
json.dump(c, open(path, "w"), indent=1)
PY
}

# args BUNDLE CMD...: set process.args
set_args() {
	local b=$1; shift
	ARGS_JSON=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@") \
		set_config "$b" "import os; c['process']['args'] = json.loads(os.environ['ARGS_JSON'])"
}

status_of() { rt state "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])' 2>/dev/null; }

mount_count() { wc -l </proc/self/mountinfo; }

# Leftovers after a failed command: state dir, cgroup dirs, processes of a container id.
nothing_left() {
	local id=$1
	[ ! -e "$ROOT/$id" ] || { diag "state dir $ROOT/$id left"; return 1; }
	local d
	for d in /sys/fs/cgroup/*/virtus/"$id" /sys/fs/cgroup/virtus/"$id"; do
		[ ! -e "$d" ] || { diag "cgroup $d left"; return 1; }
	done
	return 0
}

# ---- what the host offers: tests check a feature where it exists and the clear refusal where it does not ----

# cg_layout: v2 (unified at /sys/fs/cgroup), hybrid (v1 controllers plus a cgroup2 mount) or v1
cg_layout() {
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo v2
	elif awk '$9 == "cgroup2" { f = 1 } END { exit !f }' /proc/self/mountinfo; then echo hybrid
	else echo v1; fi
}
# has_v1_controller NAME: a mounted v1 hierarchy carries NAME (mountinfo super options)
has_v1_controller() {
	awk -v c="$1" '$9 == "cgroup" { n = split($NF, o, ","); for (i = 1; i <= n; i++) if (o[i] == c) f = 1 } END { exit !f }' \
		/proc/self/mountinfo
}
# v2_controller NAME: the cgroup v2 root offers NAME
v2_controller() { grep -qw "$1" /sys/fs/cgroup/cgroup.controllers 2>/dev/null; }
# cg_probe_files CONTROLLER FILE...: the first FILE that a fresh child cgroup of CONTROLLER's hierarchy has
# (some files, like BFQ's weights, never show at the root); nothing printed when none exists
cg_probe_files() {
	local ctrl=$1 base d f; shift
	if [ "$(cg_layout)" = v2 ]; then base=/sys/fs/cgroup; v2_controller "$ctrl" || return 1
	else has_v1_controller "$ctrl" || return 1; base=/sys/fs/cgroup/$ctrl; fi
	d=$base/virtus-probe-$$
	mkdir "$d" 2>/dev/null || return 1
	[ "$(cg_layout)" = v2 ] && echo "+$ctrl" >"$base/cgroup.subtree_control" 2>/dev/null
	for f in "$@"; do [ -e "$d/$f" ] && { echo "$f"; break; }; done
	rmdir "$d"
}
# blkio_weight_file: the block I/O weight file a container's cgroup gets here (CFQ or BFQ), or nothing
blkio_weight_file() {
	if [ "$(cg_layout)" = v2 ]; then cg_probe_files io io.bfq.weight io.weight
	else cg_probe_files blkio blkio.weight blkio.bfq.weight; fi
}
# userns_works: an unprivileged user namespace can be made here
userns_works() { unshare -U true 2>/dev/null; }
# apparmor_enabled: the kernel has AppArmor switched on
apparmor_enabled() { [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ]; }
