#!/usr/bin/env bash
# `virtus vm run` end to end with tiny guests: exit statuses, console through pipes, the escape sequence,
# signals, and the bad inputs only a running VM meets (clear message, non-zero exit, nothing left behind).
# Bad input found before /dev/kvm is opened is checked on every host by tests/cli/cli.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
VIRTUS=${VIRTUS:-build-asan/virtus}
G=$(dirname "$VIRTUS")/tests/kvm/guests
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=../lib/tap.bash
. tests/lib/tap.bash
# shellcheck source=../lib/stall.sh
. tests/lib/stall.sh



run_case "poweroff through the ACPI sleep register exits 0" 0 '^virtus-test: hello from the guest$' EMPTY -- vm run --kernel "$G/hello.elf"
run_case "i8042 reset exits 3 and says why" 3 'resetting' 'reboot policy is to exit' -- vm run --kernel "$G/reset.elf"
run_case "a jump to the BIOS reset vector resets (status 3)" 3 'reset vector' 'reboot policy is to exit' -- vm run --kernel "$G/biosreset.elf"
run_case "triple fault exits 4 with a register dump" 4 'triple-fault' 'rip [0-9a-f]{16}' -- vm run --kernel "$G/triple.elf"
if grep -q 'triple fault (KVM_EXIT_SHUTDOWN)' "$tmp/err"; then ok "a triple fault is named as such"; else not_ok "a triple fault is named as such"; fi
run_case "two vCPUs both run" 0 '^smp: 2 cpus up$' EMPTY -- vm run --kernel "$G/smp.elf" --cpus 2 --cmdline "2 console=ttyS0"
run_case "5 GiB of memory: RAM below the MMIO hole and above 4 GiB" 0 'hello from the guest' EMPTY -- vm run --kernel "$G/hello.elf" --memory 5G
run_case "--stats counts exits by reason and device" 0 'hello' 'exit statistics.*|pio +serial +[0-9]+' -- vm run --kernel "$G/hello.elf" --stats
run_case "--console none discards output" 0 EMPTY EMPTY -- vm run --kernel "$G/hello.elf" --console none
run_case "--console FILE" 0 EMPTY EMPTY -- vm run --kernel "$G/hello.elf" --console "$tmp/console.log"
if grep -q 'hello from the guest' "$tmp/console.log"; then ok "--console FILE holds the guest output"; else not_ok "--console FILE holds the guest output"; fi

# 100 clean exits in a row with two vCPUs: stopping must never hang or lose the status.
now_ms() { # busybox's date (the nested bed's L1) has no %N: whole seconds there
	local t
	t=$(date +%s%N)
	case "$t" in *N) echo $(($(date +%s) * 1000)) ;; *) echo $((t / 1000000)) ;; esac
}
fails=0
start=$(now_ms)
for i in $(seq "${KVM_SMP_RUNS:-100}"); do
	out=$(timeout -s KILL 10 "$VIRTUS" vm run --kernel "$G/smp.elf" --cpus 2 --cmdline "2 console=ttyS0" </dev/null 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || [ "$out" != "smp: 2 cpus up" ]; then fails=$((fails + 1)); echo "# run $i: status $rc: $out"; fi
done
ms=$(($(now_ms) - start))
if [ $fails -eq 0 ]; then ok "2 vCPUs: ${KVM_SMP_RUNS:-100} runs in a row exit cleanly (${ms} ms)"; else not_ok "2 vCPUs: ${KVM_SMP_RUNS:-100} runs in a row" "$fails failed"; fi

# Console input through a pipe, and the escape sequence.
out=$(printf 'abcq' | timeout 20 "$VIRTUS" vm run --kernel "$G/echo.elf" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$out" = "echo> abcq" ]; then ok "piped stdin reaches the guest"; else not_ok "piped stdin reaches the guest" "status $rc, output '$out'"; fi
out=$( (printf 'a\001\001b'; sleep 1; printf '\001xzzz') | timeout 20 "$VIRTUS" vm run --kernel "$G/echo.elf" 2>"$tmp/err"); rc=$?
if [ $rc -eq 130 ] && [ "$out" = "$(printf 'echo> a\001b')" ]; then ok "Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A x quits (status 130)"; else not_ok "escape sequence" "status $rc, output '$(printf '%q' "$out")'"; fi
# $! of a pipeline is its last command: virtus itself (no pkill needed; busybox, in the bed's L1, has none).
# SIGTERM presses the power button; this guest has no ACPI, so the VM stops after --stop-timeout.
sigterm_case() { # NAME STOP_TIMEOUT STDERR_REGEX
	sleep 20 | "$VIRTUS" vm run --kernel "$G/echo.elf" --stop-timeout "$2" >"$tmp/term.out" 2>&1 & pid=$!
	for _ in $(seq 100); do grep -q 'echo>' "$tmp/term.out" 2>/dev/null && break; sleep 0.1; done # the guest runs
	kill -TERM $pid
	reap $pid 30; rc=$reaped_status
	if [ $rc -eq 130 ] && grep -Eq "$3" "$tmp/term.out"; then ok "$1"; else not_ok "$1" "status $rc: $(cat "$tmp/term.out")"; fi
}
sigterm_case "SIGTERM with --stop-timeout 1: power button, then the VM stops (status 130)" 1 'did not power off within 1 s'
sigterm_case "SIGTERM with --stop-timeout 0 stops the VM at once (status 130)" 0 'stopped from the host'
if ! grep -q 'power button' "$tmp/term.out"; then ok "--stop-timeout 0: no power button"; else not_ok "--stop-timeout 0: no power button" "$(cat "$tmp/term.out")"; fi

run_case "--balloon SIZE,stats=S: --stats has a guest statistics section (empty for a guest without a driver)" 0 'hello from the guest' 'virtio-balloon: guest memory statistics: 0 updates' -- vm run --kernel "$G/hello.elf" --balloon 4M,stats=1 --stats

# Bad input.
run_case "a console file is not left behind when the VM cannot start" 1 EMPTY 'nodir/v.sock' -- vm run --kernel "$G/hello.elf" --console "$tmp/left.log" --vsock "3,$tmp/nodir/v.sock"
if [ ! -e "$tmp/left.log" ]; then ok "no console file left behind"; else not_ok "no console file left behind"; fi
head -c 300 /dev/zero | tr "\\0" k >"$tmp/kept.log" # longer than the guest's line: an overwrite alone would leave a tail
run_case "--console FILE: the VM runs" 0 EMPTY EMPTY -- vm run --kernel "$G/hello.elf" --console "$tmp/kept.log"
if [ "$(cat "$tmp/kept.log")" = "virtus-test: hello from the guest" ]; then ok "--console FILE is emptied when the VM starts"; else not_ok "--console FILE is emptied when the VM starts" "$(head -c 200 "$tmp/kept.log")"; fi

# --vsock: the listening socket exists (mode 0600) while the VM runs and is gone after it (bad CIDs and
# paths: tests/cli/cli.sh).
run_case "--vsock: the VM runs and exits 0" 0 'hello from the guest' EMPTY -- vm run --kernel "$G/hello.elf" --vsock "3,$tmp/v.sock"
if [ ! -e "$tmp/v.sock" ]; then ok "--vsock PATH removed after the run"; else not_ok "--vsock PATH removed after the run"; fi
"$VIRTUS" vm run --kernel "$G/echo.elf" --vsock "3,$tmp/v.sock" < <(sleep 10) >/dev/null 2>"$tmp/vs.err" & pid=$!
for _ in $(seq 50); do [ -S "$tmp/v.sock" ] && break; sleep 0.1; done
mode=$(stat -c %a "$tmp/v.sock" 2>/dev/null)
run_case "--vsock PATH in use by a running VM is refused" 1 EMPTY "v.sock is in use by a running program" -- vm run --kernel "$G/hello.elf" --vsock "3,$tmp/v.sock"
kill -TERM $pid
# a VMM that does not end (twice in 6 runs in the bed, never on a host) fails with what its threads do
for _ in $(seq 300); do running $pid || break; sleep 0.1; done
if running $pid; then
	echo "# vsock stalled: still running 30 s after SIGTERM"
	stall_report $pid
fi
reap $pid 0; rc=$reaped_status
if [ "$mode" = 600 ]; then ok "--vsock PATH is a socket with mode 0600 while the VM runs"; else not_ok "--vsock PATH is a socket with mode 0600 while the VM runs" "mode '${mode:-none}'"; fi
if [ $rc -eq 130 ] && [ ! -e "$tmp/v.sock" ]; then ok "--vsock PATH removed after SIGTERM"; else not_ok "--vsock PATH removed after SIGTERM" "status $rc, $(ls -l "$tmp/v.sock" 2>&1)"; fi
make_stale_socket() { # a Unix socket file nobody listens on: python3 on a host, the vsock tool in L1
	if command -v python3 >/dev/null; then
		python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$1"
	elif [ -x "${VSOCK_TOOL:-}" ]; then
		"$VSOCK_TOOL" unix-listen "$1" </dev/null >/dev/null 2>&1 & local p=$!
		for _ in $(seq 50); do [ -S "$1" ] && break; sleep 0.1; done
		kill -9 $p; wait $p 2>/dev/null
	fi
}
make_stale_socket "$tmp/stale.sock"
run_case "--vsock replaces a stale socket nobody listens on" 0 'hello from the guest' EMPTY -- vm run --kernel "$G/hello.elf" --vsock "3,$tmp/stale.sock"
if [ ! -e "$tmp/stale.sock" ]; then ok "--vsock stale socket replaced and removed after the run"; else not_ok "--vsock stale socket replaced and removed after the run"; fi

if command -v unshare >/dev/null; then
	out=$(unshare -m sh -c "mount -t tmpfs none /dev && '$VIRTUS' vm run --kernel '$G/hello.elf'" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q 'no /dev/kvm'; then ok "no /dev/kvm"; else not_ok "no /dev/kvm" "status $rc: $out"; fi
fi
# (util-linux setpriv: busybox's, in the nested bed's L1, cannot change uids)
if [ "$(id -u)" = 0 ] && setpriv --reuid=0 --regid=0 --clear-groups true 2>/dev/null; then
	cp "$G/hello.elf" "$tmp/hello.elf"; chmod 755 "$tmp"; chmod 644 "$tmp/hello.elf"
	mkdir "$tmp/xdg" && chown 65534:65534 "$tmp/xdg" # its VM directories (not /run's, which is root's)
	cp "$VIRTUS" "$tmp/virtus" && chmod 755 "$tmp/virtus" # (the checkout may be closed to uid 65534)
	out=$(XDG_RUNTIME_DIR=$tmp/xdg setpriv --reuid=65534 --regid=65534 --clear-groups "$tmp/virtus" vm run --kernel "$tmp/hello.elf" 2>&1); rc=$?
	if [ $rc -eq 1 ] && echo "$out" | grep -q 'no permission to open /dev/kvm'; then ok "no permission on /dev/kvm"; else not_ok "no permission on /dev/kvm" "status $rc: $out"; fi
fi

out=$("$VIRTUS" vm probe); rc=$?
if { [ $rc -eq 0 ] && echo "$out" | grep -q 'natively: Linux guests can boot'; } ||
   { [ $rc -eq 1 ] && echo "$out" | grep -q 'cannot run guest kernel code natively'; }; then
	ok "vm probe says what this host's KVM can do (status $rc)"
else
	not_ok "vm probe" "status $rc: $out"
fi
echo "1..$n"
