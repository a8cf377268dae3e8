# TAP helpers shared by the shell test scripts (sourced; bash). The caller sets VIRTUS (for run_case) and
# makes a scratch directory $tmp.
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

# matches FILE PATTERN: an extended regex found in FILE, EMPTY for an empty file, ANY for anything.
matches() {
	case "$2" in
	EMPTY) [ ! -s "$1" ] ;;
	ANY) true ;;
	*) grep -qE -- "$2" "$1" ;;
	esac
}

# running PID: the process exists and has not exited (a zombie has: it only waits for its status).
running() {
	local state
	state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}

# reap PID SECONDS: wait at most SECONDS for our child PID, then SIGKILL it and give it 10 s more; sets
# reaped_status to its exit status, or to 137 with a "# ... does not end" line when even SIGKILL does not end
# it (a VMM stuck in the kernel: the nested bed's L1 has shown such). Never blocks without a limit, unlike
# `wait` or timeout(1), which wait for the child they killed.
reap() {
	local pid=$1 tenths=$(($2 * 10)) i
	for ((i = 0; i < tenths; i++)); do running "$pid" || break; sleep 0.1; done
	if running "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do running "$pid" || break; sleep 0.1; done
	fi
	if running "$pid"; then
		echo "# process $pid does not end after SIGKILL: state $(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null), wchan $(cat "/proc/$pid/wchan" 2>/dev/null)"
		reaped_status=137
		return
	fi
	wait "$pid"
	reaped_status=$?
}

# run_case NAME WANT_STATUS STDOUT_PATTERN STDERR_PATTERN -- ARGS...: run $VIRTUS ARGS (no stdin, 30 s at
# most, then SIGKILL) and check its status and both outputs; $tmp/out and $tmp/err keep them for further checks.
run_case() {
	local name=$1 want=$2 out_pat=$3 err_pat=$4 pid
	shift 5
	"$VIRTUS" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" &
	pid=$!
	reap "$pid" 30
	local rc=$reaped_status
	if [ "$rc" -eq "$want" ] && matches "$tmp/out" "$out_pat" && matches "$tmp/err" "$err_pat"; then
		ok "$name"
	else
		not_ok "$name" "status $rc (want $want)" "stdout: $(head -c 300 "$tmp/out")" "stderr: $(head -c 300 "$tmp/err")"
	fi
}
