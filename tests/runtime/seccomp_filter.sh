#!/usr/bin/env bash
# linux.seccomp in real containers: ERRNO rules (default and custom errno), argument filters, a
# KILL_PROCESS rule, the filter with and without noNewPrivileges, and a rejected profile that names its
# field and leaves nothing behind. TAP output; root only.
source "$(dirname "$0")/lib.bash"
require_root
rt() { timeout 60 "$RT" --root "$ROOT" "$@"; } # a hung runtime fails the script instead of hanging it

B=$WORK/bundle
make_bundle "$B" || { echo "not ok 1 - make bundle"; exit 1; }
ln -sf busybox "$B/rootfs/bin/uname"

seccomp() { set_config "$B" "c['linux']['seccomp'] = $1"; }

# ---- ERRNO rules ----
seccomp '{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
	"syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
	             {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}'
set_args "$B" sh -c 'mkdir /tmp/x; echo "mkdir=$?"; rmdir /tmp; echo "rmdir=$?"; ls / >/dev/null; echo "ls=$?"'
out=$(rt run --bundle "$B" sc1$$ 2>&1)
diag "$out"
check "mkdir is refused" grep -q 'mkdir=1' <<<"$out"
check "with EPERM (the default errnoRet)" grep -q "can't create directory '/tmp/x': Operation not permitted" <<<"$out"
check "rmdir gets the custom errnoRet ENOSYS" grep -q 'Function not implemented' <<<"$out"
check "other syscalls still work" grep -q 'ls=0' <<<"$out"

# ---- argument filter: kill(pid, SIGKILL) refused, kill(pid, SIGTERM) allowed ----
seccomp '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO",
	"args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]}'
set_args "$B" sh -c 'sleep 30 & p=$!; kill -9 $p; echo "k9=$?"; kill -15 $p; echo "k15=$?"; wait'
out=$(rt run --bundle "$B" sc2$$ 2>&1)
diag "$out"
check "kill -9 is refused by the argument rule" grep -q 'k9=1' <<<"$out"
check "kill -15 passes the same rule" grep -q 'k15=0' <<<"$out"

# ---- KILL_PROCESS ----
seccomp '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}'
set_args "$B" /bin/uname
rt run --bundle "$B" sc3$$ >/dev/null 2>&1; rc=$?
check "uname is killed by SIGSYS (status $rc = 128+31)" test "$rc" = 159
rt delete --force sc3$$ >/dev/null 2>&1

# ---- without noNewPrivileges the filter is loaded while the runtime still holds CAP_SYS_ADMIN ----
seccomp '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}'
set_config "$B" 'c["process"]["noNewPrivileges"] = False'
set_args "$B" sh -c 'mkdir /tmp/y; echo "mkdir=$?"; grep NoNewPrivs /proc/self/status'
out=$(rt run --bundle "$B" sc4$$ 2>&1)
diag "$out"
check "filter applies without no_new_privs" grep -q 'mkdir=1' <<<"$out"
check "and no_new_privs stays off" grep -qE 'NoNewPrivs:\s+0' <<<"$out"
set_config "$B" 'c["process"]["noNewPrivileges"] = True'

# ---- a bad profile is refused up front ----
seccomp '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getcwd", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"}]}'
set_args "$B" true
out=$(rt run --bundle "$B" sc5$$ 2>&1); rc=$?
diag "$out"
check "unknown syscall name fails the run" test "$rc" -ne 0
check "the error names linux.seccomp.syscalls[0].names[1]" grep -qF "linux.seccomp.syscalls[0].names[1]: unknown syscall 'no_such_syscall'" <<<"$out"
check "nothing left after the rejected profile" nothing_left sc5$$

seccomp '{"defaultAction": "SCMP_ACT_NOTIFY"}'
out=$(rt run --bundle "$B" sc6$$ 2>&1); rc=$?
check "SCMP_ACT_NOTIFY is refused with a clear error" bash -c "[ $rc -ne 0 ] && grep -q 'SCMP_ACT_NOTIFY is not supported' <<<'$out'"
check "nothing left after the NOTIFY profile" nothing_left sc6$$

finish
