#!/usr/bin/env bash
# Runtime benchmark: virtus-runtime vs crun vs runc on the same busybox bundle running /bin/true.
#   bench/runtime.sh [RUNS]        (root; default 30 alternating rounds)
# crun refuses a hybrid cgroup host unless the v2 mount is hidden, so ALL runtimes run inside one private
# mount namespace with /sys/fs/cgroup/unified unmounted: every runtime sees the same (v1) cgroup layout.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${1:-30}
VIRTUS=${VIRTUS_RUNTIME:-$TOP/build/virtus-runtime}

if [ -z "${VIRTUS_BENCH_INNER:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "bench/runtime.sh: needs root" >&2; exit 1; }
	[ -x "$VIRTUS" ] || { echo "bench/runtime.sh: $VIRTUS is not built (make)" >&2; exit 1; }
	for t in crun runc busybox python3; do
		command -v "$t" >/dev/null || { echo "bench/runtime.sh: $t missing (scripts/deps)" >&2; exit 1; }
	done
	exec env VIRTUS_BENCH_INNER=1 unshare --mount --propagation private "$0" "$@"
fi

# ---- inside the private mount namespace ----
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
WORK=$(mktemp -d /tmp/virtus-bench-rt.XXXXXX)
cleanup() { # containers an interrupted run left behind, then the scratch directory
	local name bin id
	for name in virtus crun runc; do
		case $name in virtus) bin=$VIRTUS ;; *) bin=$(command -v $name) ;; esac
		for id in $(ls "$WORK/state/$name" 2>/dev/null); do
			"$bin" --root "$WORK/state/$name" delete --force "$id" >/dev/null 2>&1 || true
		done
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
B=$WORK/bundle
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp" "$B/rootfs/etc"
cp "$(command -v busybox)" "$B/rootfs/bin/busybox"
ln -s busybox "$B/rootfs/bin/true"
ln -s busybox "$B/rootfs/bin/sh"
# One config for all three: virtus-runtime's default spec, no terminal, /bin/true, a few real limits so
# every runtime does its cgroup work (devices, memory, pids).
"$VIRTUS" spec --bundle "$B"
python3 - "$B/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["linux"]["resources"] = {"devices": [{"allow": False, "access": "rwm"}],
                           "memory": {"limit": 268435456}, "pids": {"limit": 100}}
json.dump(c, open(p, "w"), indent=1)
PY
mkdir -p "$WORK/state"
echo "# $(uname -r), $(nproc) CPUs; crun $(crun --version | head -1 | awk '{print $3}'), runc $(runc --version | head -1 | awk '{print $3}')"
echo "# cgroups as the runtimes see them: $(awk '$3 ~ /^cgroup/ {print $2}' /proc/self/mounts | tr '\n' ' ')"
python3 "$TOP/bench/runtime_bench.py" --bundle "$B" --runs "$RUNS" --state "$WORK/state" \
	"virtus=$VIRTUS" "crun=$(command -v crun)" "runc=$(command -v runc)"
