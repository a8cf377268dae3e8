#!/usr/bin/env bash
# The command line as a newcomer and runc's clients use it: --help/-h on every command (exit 0), `help` and
# `version`, options after the positionals (`kill ID SIGNAL --all`, `delete ID --force`), flags that used to be
# accepted and ignored now either work or are refused, runc commands this runtime lacks refused as "not
# supported". TAP output; root only (kill/delete need a container).
source "$(dirname "$0")/lib.bash"
require_root
rt() { timeout 60 "$RT" --root "$ROOT" "$@"; }

for c in create start run state kill delete exec ps list pause resume spec features; do
	out=$(rt $c --help 2>&1); rc=$?
	check "$c --help prints its usage and exits 0" bash -c '[ $0 = 0 ] && grep -q "^usage: virtus-runtime $1" <<<"$2"' $rc $c "$out"
done
out=$(rt kill -h 2>&1); rc=$?
check "kill -h too" bash -c '[ $0 = 0 ] && grep -q "^usage: virtus-runtime kill" <<<"$1"' $rc "$out"
out=$(rt help 2>&1); rc=$?
check "help lists the commands, exit 0" bash -c '[ $0 = 0 ] && grep -q "^  exec " <<<"$1"' $rc "$out"
out=$(rt help delete 2>&1); rc=$?
check "help delete shows delete's usage" bash -c '[ $0 = 0 ] && grep -q "usage: virtus-runtime delete \[--force\] ID" <<<"$1"' $rc "$out"
out=$(rt version 2>&1); rc=$?
check "version prints the version, exit 0" bash -c '[ $0 = 0 ] && grep -q "^virtus-runtime version" <<<"$1"' $rc "$out"
for c in update events checkpoint restore; do
	out=$(rt $c x 2>&1); rc=$?
	check "$c says not supported (exit $rc)" bash -c '[ $0 = 1 ] && grep -q "is not supported by virtus-runtime" <<<"$1"' $rc "$out"
done
mkdir -p "$WORK/sp"
out=$(rt spec --rootless --bundle "$WORK/sp" 2>&1); rc=$?
check "spec --rootless is refused, not ignored" bash -c '[ $0 != 0 ] && grep -q "spec --rootless is not supported" <<<"$1"' $rc "$out"
check "... and writes no config.json" [ ! -e "$WORK/sp/config.json" ]

B=$WORK/bundle
make_bundle "$B" || { echo "not ok - make bundle"; finish; }
set_config "$B" 'c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "pid"]'
set_args "$B" sh -c 'sleep 30 & sleep 30'
rt create --bundle "$B" o1 </dev/null >/dev/null 2>&1 && rt start o1
sleep 0.2
rt kill o1 KILL --all; rc=$?
check "kill ID SIGNAL --all (options after the positionals) is accepted" [ $rc = 0 ]
sleep 0.3
n=$(rt ps --format json o1 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "... and reached every process" [ "$n" = 0 ]
rt delete o1 --force; rc=$?
check "delete ID --force is accepted" [ $rc = 0 ]
check "... and removed the container" nothing_left o1
set_args "$B" sleep 30
rt run -d --bundle "$B" o2 </dev/null >/dev/null 2>&1
out=$(rt exec o2 sh -c 'echo "$@"' _ --force --help 2>&1)
check "exec keeps the command's own options (--force --help reach it)" [ "$out" = "--force --help" ]
out=$(rt create --apparmor x --bundle "$B" o3 2>&1); rc=$?
check "--apparmor outside exec is refused" bash -c '[ $0 = 2 ] && grep -q "apply to exec only" <<<"$1"' $rc "$out"
rt delete --force o2
set_args "$B" sh -c 'exit 6'
rt run --keep --bundle "$B" o4 </dev/null >/dev/null 2>&1; rc=$?
check "run --keep returns the status (6)" [ $rc = 6 ]
check "... and leaves the stopped container" [ "$(status_of o4)" = stopped ]
rt delete o4
check "which delete then removes" nothing_left o4
finish
