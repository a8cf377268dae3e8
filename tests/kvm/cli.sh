#!/usr/bin/env bash
# `virtus vm run` end to end with tiny guests: exit statuses, console through pipes, the escape sequence,
# signals, and every bad input the issue names (clear message, non-zero exit, nothing left behind).
set -uo pipefail
cd "$(dirname "$0")/../.."
VIRTUS=${VIRTUS:-build-asan/virtus}
G=$(dirname "$VIRTUS")/tests/kvm/guests
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "#   $l"; done; }

# matches FILE PATTERN: an extended regex found in FILE, or EMPTY for an empty file.
matches() {
	if [ "$2" = EMPTY ]; then [ ! -s "$1" ]; else grep -qE -- "$2" "$1"; fi
}

# run_case NAME WANT_STATUS STDOUT_PATTERN STDERR_PATTERN -- ARGS...
run_case() {
	local name=$1 want=$2 out_pat=$3 err_pat=$4
	shift 5
	timeout 30 "$VIRTUS" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ "$rc" -eq "$want" ] && matches "$tmp/out" "$out_pat" && matches "$tmp/err" "$err_pat"; then
		ok "$name"
	else
		not_ok "$name" "status $rc (want $want)" "stdout: $(head -c 300 "$tmp/out")" "stderr: $(head -c 300 "$tmp/err")"
	fi
}

run_case "poweroff through the ACPI sleep register exits 0" 0 '^virtus-test: hello from the guest$' EMPTY -- vm run --kernel "$G/hello.elf"
run_case "i8042 reset exits 3 and says why" 3 'resetting' 'reboot policy is to exit' -- vm run --kernel "$G/reset.elf"
run_case "a jump to the BIOS reset vector resets (status 3)" 3 'reset vector' 'reboot policy is to exit' -- vm run --kernel "$G/biosreset.elf"
run_case "triple fault exits 4 with a register dump" 4 'triple-fault' 'rip [0-9a-f]{16}' -- vm run --kernel "$G/triple.elf"
if grep -q 'triple fault (KVM_EXIT_SHUTDOWN)' "$tmp/err"; then ok "a triple fault is named as such"; else not_ok "a triple fault is named as such"; fi
run_case "two vCPUs both run" 0 '^smp: 2 cpus up$' EMPTY -- vm run --kernel "$G/smp.elf" --cpus 2 --cmdline 2
run_case "5 GiB of memory: RAM below the MMIO hole and above 4 GiB" 0 'hello from the guest' EMPTY -- vm run --kernel "$G/hello.elf" --memory 5G
run_case "--stats counts exits by reason and device" 0 'hello' 'exit statistics.*|pio +serial +[0-9]+' -- vm run --kernel "$G/hello.elf" --stats
run_case "--console none discards output" 0 EMPTY EMPTY -- vm run --kernel "$G/hello.elf" --console none
run_case "--console FILE" 0 EMPTY EMPTY -- vm run --kernel "$G/hello.elf" --console "$tmp/console.log"
if grep -q 'hello from the guest' "$tmp/console.log"; then ok "--console FILE holds the guest output"; else not_ok "--console FILE holds the guest output"; fi

# 100 clean exits in a row with two vCPUs: stopping must never hang or lose the status.
fails=0
start=$(date +%s%N)
for i in $(seq 100); do
	out=$(timeout 10 "$VIRTUS" vm run --kernel "$G/smp.elf" --cpus 2 --cmdline 2 </dev/null 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || [ "$out" != "smp: 2 cpus up" ]; then fails=$((fails + 1)); echo "# run $i: status $rc: $out"; fi
done
ms=$(( ($(date +%s%N) - start) / 1000000 ))
if [ $fails -eq 0 ]; then ok "2 vCPUs: 100 runs in a row exit cleanly (${ms} ms)"; else not_ok "2 vCPUs: 100 runs in a row" "$fails failed"; fi

# Console input through a pipe, and the escape sequence.
out=$(printf 'abcq' | timeout 20 "$VIRTUS" vm run --kernel "$G/echo.elf" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$out" = "echo> abcq" ]; then ok "piped stdin reaches the guest"; else not_ok "piped stdin reaches the guest" "status $rc, output '$out'"; fi
out=$( (printf 'a\001\001b'; sleep 1; printf '\001xzzz') | timeout 20 "$VIRTUS" vm run --kernel "$G/echo.elf" 2>"$tmp/err"); rc=$?
if [ $rc -eq 130 ] && [ "$out" = "$(printf 'echo> a\001b')" ]; then ok "Ctrl-A Ctrl-A sends Ctrl-A, Ctrl-A x quits (status 130)"; else not_ok "escape sequence" "status $rc, output '$(printf '%q' "$out")'"; fi
(sleep 10 | timeout 20 "$VIRTUS" vm run --kernel "$G/echo.elf" >/dev/null 2>&1) & pid=$!
sleep 0.5
pkill -TERM -f "$G/echo.elf" 
wait $pid; rc=$?
if [ $rc -eq 130 ]; then ok "SIGTERM stops the VM (status 130)"; else not_ok "SIGTERM stops the VM" "status $rc"; fi

# Bad input.
printf '#!/bin/sh\necho not a kernel\n' > "$tmp/script"
# A tiny bzImage header (no code): 64-bit boot protocol 2.15, cmdline_size 64. Plain shell, no python:
# this script also runs inside the nested bed's L1.
poke() { # poke FILE OFFSET PRINTF-BYTES: write bytes at OFFSET, leaving the rest
	printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
head -c $((5 * 512 + 4096)) /dev/zero >"$tmp/tiny.bz"
poke "$tmp/tiny.bz" $((0x1f1)) '\004'                  # setup_sects
poke "$tmp/tiny.bz" $((0x1fe)) '\125\252'              # boot flag 0xaa55
poke "$tmp/tiny.bz" $((0x201)) '\146HdrS\017\002'      # jump, "HdrS", version 0x20f
poke "$tmp/tiny.bz" $((0x22c)) '\377\377\377\067'      # initrd_addr_max 0x37ffffff
poke "$tmp/tiny.bz" $((0x236)) '\001\000\100\000\000\000' # XLF_KERNEL_64, cmdline_size 64
poke "$tmp/tiny.bz" $((0x260)) '\000\000\020\000'      # init_size 0x100000
truncate -s 64M "$tmp/big.initrd"
long=$(printf 'x%.0s' $(seq 100))
run_case "missing kernel" 1 EMPTY 'cannot open .*/nope: No such file' -- vm run --kernel "$tmp/nope"
run_case "kernel is a directory" 1 EMPTY 'is not a regular file' -- vm run --kernel "$tmp"
run_case "kernel is neither bzImage nor ELF" 1 EMPTY 'neither a bzImage .* nor an ELF' -- vm run --kernel "$tmp/script"
run_case "initrd larger than memory" 1 EMPTY 'initrd .* larger than guest memory' -- vm run --kernel "$G/hello.elf" --initrd "$tmp/big.initrd" --memory 32M
run_case "command line longer than the kernel accepts" 1 EMPTY 'command line is 100 bytes; this kernel accepts at most 64' -- vm run --kernel "$tmp/tiny.bz" --cmdline "$long"
run_case "--memory 0" 2 EMPTY 'must be greater than zero' -- vm run --kernel "$G/hello.elf" --memory 0
run_case "--memory junk" 2 EMPTY "invalid size '12X'" -- vm run --kernel "$G/hello.elf" --memory 12X
run_case "--memory larger than the host can map" 1 EMPTY 'cannot map 16777216 MiB of guest memory' -- vm run --kernel "$G/hello.elf" --memory 16T
run_case "--memory below the minimum" 1 EMPTY 'at least 4 MiB' -- vm run --kernel "$G/hello.elf" --memory 1M
run_case "--cpus 0" 1 EMPTY 'at least 1' -- vm run --kernel "$G/hello.elf" --cpus 0
run_case "--cpus above KVM's limit" 1 EMPTY "exceeds (this host's KVM limit|virtus' limit)" -- vm run --kernel "$G/hello.elf" --cpus 4096
run_case "--cpus not a number" 2 EMPTY 'whole number' -- vm run --kernel "$G/hello.elf" --cpus two
run_case "--balloon SIZE,stats=S: --stats has a guest statistics section (empty for a guest without a driver)" 0 'hello from the guest' 'virtio-balloon: guest memory statistics: 0 updates' -- vm run --kernel "$G/hello.elf" --balloon 4M,stats=1 --stats
run_case "--balloon with a bad stats interval" 2 EMPTY "--balloon: expected stats=SECONDS \\(0..3600\\) after the size, got 'stats=often'" -- vm run --kernel "$G/hello.elf" --balloon 64M,stats=often
run_case "--balloon with an unknown option" 2 EMPTY "--balloon: expected stats=SECONDS .* got 'fast'" -- vm run --kernel "$G/hello.elf" --balloon 64M,fast
run_case "unknown option" 2 EMPTY "unknown or incomplete option '--bogus'" -- vm run --bogus
run_case "unknown command" 2 EMPTY "unknown command 'vm fly'" -- vm fly
run_case "missing default guest is explained" 1 EMPTY 'no default guest in .*guest/build' -- vm run
VIRTUS_GUEST_DIR=$tmp/none run_case "VIRTUS_GUEST_DIR without a guest" 1 EMPTY "no default guest in $tmp/none" -- vm run
run_case "a console file is not left behind when the VM cannot start" 1 EMPTY 'cannot open' -- vm run --kernel "$tmp/nope" --console "$tmp/left.log"
if [ ! -e "$tmp/left.log" ]; then ok "no console file left behind"; else not_ok "no console file left behind"; fi
run_case "unwritable console file" 1 EMPTY '--console /nonexistent/x.log: No such file' -- vm run --kernel "$G/hello.elf" --console /nonexistent/x.log

# --vsock: bad CIDs and paths are refused before anything is created; an existing file that is not a socket
# is left alone; the listening socket exists (mode 0600) while the VM runs and is gone after it.
echo keep >"$tmp/regular"
run_case "--vsock CID 2 (the host) is refused" 2 EMPTY "CID must be a number from 3 to 4294967294, got '2'" -- vm run --kernel "$G/hello.elf" --vsock "2,$tmp/v.sock"
run_case "--vsock CID above 0xfffffffe is refused" 2 EMPTY "CID must be .*got '4294967295'" -- vm run --kernel "$G/hello.elf" --vsock "4294967295,$tmp/v.sock"
run_case "--vsock without a path" 2 EMPTY "wants CID,PATH, got '3'" -- vm run --kernel "$G/hello.elf" --vsock 3
run_case "--vsock with an empty path" 2 EMPTY "socket path is empty" -- vm run --kernel "$G/hello.elf" --vsock 3,
run_case "--vsock path too long for sun_path with its _PORT suffix" 2 EMPTY "too long \\(at most 96 bytes" -- vm run --kernel "$G/hello.elf" --vsock "3,$tmp/$long"
run_case "--vsock PATH is a regular file" 1 EMPTY "regular exists and is not a socket; not touching it" -- vm run --kernel "$G/hello.elf" --vsock "3,$tmp/regular"
if [ "$(cat "$tmp/regular")" = keep ]; then ok "--vsock leaves an existing regular file untouched"; else not_ok "--vsock leaves an existing regular file untouched"; fi
run_case "--vsock with a missing kernel fails" 1 EMPTY 'cannot open .*/nope' -- vm run --kernel "$tmp/nope" --vsock "3,$tmp/v.sock"
if [ ! -e "$tmp/v.sock" ]; then ok "--vsock PATH not left behind when the VM cannot start"; else not_ok "--vsock PATH not left behind when the VM cannot start"; fi
run_case "--vsock: the VM runs and exits 0" 0 'hello from the guest' EMPTY -- vm run --kernel "$G/hello.elf" --vsock "3,$tmp/v.sock"
if [ ! -e "$tmp/v.sock" ]; then ok "--vsock PATH removed after the run"; else not_ok "--vsock PATH removed after the run"; fi
"$VIRTUS" vm run --kernel "$G/echo.elf" --vsock "3,$tmp/v.sock" < <(sleep 10) >/dev/null 2>"$tmp/vs.err" & pid=$!
for _ in $(seq 50); do [ -S "$tmp/v.sock" ] && break; sleep 0.1; done
mode=$(stat -c %a "$tmp/v.sock" 2>/dev/null)
run_case "--vsock PATH in use by a running VM is refused" 1 EMPTY "v.sock is in use by a running program" -- vm run --kernel "$G/hello.elf" --vsock "3,$tmp/v.sock"
kill -TERM $pid
wait $pid; rc=$?
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
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
	cp "$G/hello.elf" "$tmp/hello.elf"; chmod 755 "$tmp"; chmod 644 "$tmp/hello.elf"
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$VIRTUS" vm run --kernel "$tmp/hello.elf" 2>&1); rc=$?
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
