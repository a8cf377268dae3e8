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

# run_case NAME WANT_STATUS STDOUT_PATTERN STDERR_PATTERN -- ARGS...: run $VIRTUS ARGS (no stdin, 30 s at
# most) and check its status and both outputs; $tmp/out and $tmp/err keep them for further checks.
run_case() {
	local name=$1 want=$2 out_pat=$3 err_pat=$4
	shift 5
	timeout -s KILL 30 "$VIRTUS" "$@" </dev/null >"$tmp/out" 2>"$tmp/err" # KILL: a hung VMM must not hang the suite
	local rc=$?
	if [ "$rc" -eq "$want" ] && matches "$tmp/out" "$out_pat" && matches "$tmp/err" "$err_pat"; then
		ok "$name"
	else
		not_ok "$name" "status $rc (want $want)" "stdout: $(head -c 300 "$tmp/out")" "stderr: $(head -c 300 "$tmp/err")"
	fi
}
