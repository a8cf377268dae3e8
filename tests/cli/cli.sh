#!/usr/bin/env bash
# `virtus` before it opens /dev/kvm, so this runs on every host (with or without KVM): --help everywhere,
# every bad option value (usage status 2), every bad file (status 1, the message names it), checks made
# before KVM is opened (no "no /dev/kvm" for a missing kernel), nothing left behind (console file, vsock).
#   VIRTUS=build-asan/virtus tests/cli/cli.sh      (default build/virtus)
set -uo pipefail
cd "$(dirname "$0")/../.."
VIRTUS=${VIRTUS:-build/virtus}
G=$(dirname "$VIRTUS")/tests/kvm/guests
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=../lib/tap.bash
. tests/lib/tap.bash



# The last run's stderr does not say "no /dev/kvm": the problem was found before KVM was opened.
before_kvm() {
	if grep -q '/dev/kvm' "$tmp/err"; then not_ok "$1: reported before KVM is opened" "stderr: $(head -c 300 "$tmp/err")"
	else ok "$1: reported before KVM is opened"; fi
}

if [ ! -x "$VIRTUS" ] || [ ! -e "$G/hello.elf" ]; then
	echo "not ok 1 - $VIRTUS or its tiny guests are missing (run make)"
	exit 1
fi

# --help everywhere: usage on stdout, nothing on stderr, status 0.
for args in "--help" "-h" "help" "help vm" "help vm run" "help vm probe" "vm --help" "vm -h" "vm run --help" \
	"vm run -h" "vm probe --help" "vm probe -h"; do
	# shellcheck disable=SC2086
	run_case "virtus $args prints its usage on stdout, status 0" 0 '^usage: virtus' EMPTY -- $args
done
run_case "virtus vm run -h is the vm run usage" 0 '^usage: virtus vm run' EMPTY -- vm run -h
run_case "virtus help vm run is the vm run usage" 0 '^usage: virtus vm run' EMPTY -- help vm run
run_case "virtus alone: usage on stderr, status 2" 2 EMPTY '^usage: virtus' --
run_case "virtus vm alone: usage on stderr, status 2" 2 EMPTY '^usage: virtus vm' -- vm
run_case "unknown command" 2 EMPTY "unknown command 'vm fly'" -- vm fly
run_case "virtus help of an unknown command" 2 EMPTY "unknown command 'fly'" -- help fly
run_case "vm probe with an argument" 2 EMPTY "unexpected argument 'x'" -- vm probe x
run_case "vm disk without an operation" 2 EMPTY 'expected NAME add ID PATH' -- vm disk web1
run_case "vm disk add without a path" 2 EMPTY 'expected NAME add ID PATH' -- vm disk web1 add hp1
run_case "vm disk add with an unknown flag" 2 EMPTY 'expected NAME add ID PATH' -- vm disk web1 add hp1 x.img --rw
run_case "vm disk of an unknown operation" 2 EMPTY 'expected NAME add ID PATH' -- vm disk web1 plug hp1 x.img
run_case "vm disk remove --timeout 0" 2 EMPTY '--timeout wants seconds from 1 to 600' -- vm disk web1 remove hp1 --timeout 0
run_case "unknown option" 2 EMPTY "unknown or incomplete option '--bogus'" -- vm run --bogus

# Bad option values: usage errors (2), found before any file or KVM is looked at.
long=$(head -c 5000 /dev/zero | tr '\0' x)
run_case "--cmdline of 5000 bytes (PVH default guest) is refused" 2 EMPTY 'at most 2047 bytes \(COMMAND_LINE_SIZE 2048' -- vm run --cmdline "console=ttyS0 x=$long"
run_case "--cmdline of 5000 bytes with a bzImage is refused the same way" 2 EMPTY 'at most 2047 bytes' -- vm run --kernel "$tmp/any.bz" --cmdline "console=ttyS0 x=$long"
run_case "--cmdline of 2048 bytes is refused" 2 EMPTY 'this one has 2048' -- vm run --kernel "$G/hello.elf" --cmdline "$(head -c 2048 /dev/zero | tr '\0' y)"
run_case "--cpus 0" 2 EMPTY "--cpus must be from 1 to 255, got '0'" -- vm run --kernel "$tmp/nope" --cpus 0
run_case "--cpus 256 (beyond xAPIC IDs)" 2 EMPTY "--cpus must be from 1 to 255, got '256'" -- vm run --kernel "$tmp/nope" --cpus 256
run_case "--cpus not a number" 2 EMPTY 'whole number' -- vm run --cpus two
run_case "--memory 0" 2 EMPTY 'must be greater than zero' -- vm run --memory 0
run_case "--memory junk" 2 EMPTY "invalid size '12X'" -- vm run --memory 12X
run_case "--memory below the minimum" 2 EMPTY "at least 4M .* got '1M'" -- vm run --kernel "$tmp/nope" --memory 1M
run_case "--balloon with a bad stats interval" 2 EMPTY "--balloon: expected stats=SECONDS \\(0..3600\\) after the size, got 'stats=often'" -- vm run --balloon 64M,stats=often
run_case "--balloon 0 (a balloon with nothing asked yet) is accepted: the missing kernel is the error" 1 EMPTY "kernel: cannot open $tmp/nope" -- vm run --kernel "$tmp/nope" --balloon 0,stats=1
run_case "--balloon with an unknown option" 2 EMPTY "--balloon: expected stats=SECONDS .* got 'fast'" -- vm run --balloon 64M,fast
run_case "--vsock CID 2 (the host) is refused" 2 EMPTY "CID must be a number from 3 to 4294967294, got '2'" -- vm run --vsock "2,$tmp/v.sock"
run_case "--vsock CID above 0xfffffffe is refused" 2 EMPTY "CID must be .*got '4294967295'" -- vm run --vsock "4294967295,$tmp/v.sock"
run_case "--vsock without a path" 2 EMPTY "wants CID,PATH, got '3'" -- vm run --vsock 3
run_case "--vsock with an empty path" 2 EMPTY "socket path is empty" -- vm run --vsock 3,
run_case "--vsock path too long for sun_path with its _PORT suffix" 2 EMPTY "too long \\(at most 96 bytes" -- vm run --vsock "3,$tmp/${long:0:100}"

# Bad files: status 1, the message names the file, and it comes before KVM.
printf '#!/bin/sh\necho not a kernel\n' >"$tmp/script"
python3 - "$tmp/tiny.bz" "$tmp/short.bz" <<'PY'
import struct, sys
def bzimage(cmdline_size, syssize):
    img = bytearray(5 * 512 + 4096)
    img[0x1f1] = 4
    struct.pack_into('<I', img, 0x1f4, syssize)     # protected-mode code, 16-byte units
    struct.pack_into('<H', img, 0x1fe, 0xaa55)
    img[0x201] = 0x66
    img[0x202:0x206] = b'HdrS'
    struct.pack_into('<H', img, 0x206, 0x20f)
    struct.pack_into('<H', img, 0x236, 1)           # XLF_KERNEL_64
    struct.pack_into('<I', img, 0x238, cmdline_size)
    struct.pack_into('<I', img, 0x22c, 0x37ffffff)
    struct.pack_into('<I', img, 0x260, 0x100000)
    return img
open(sys.argv[1], 'wb').write(bzimage(64, 4096 // 16))
open(sys.argv[2], 'wb').write(bzimage(2047, 1 << 20))   # says 16 MiB of code, has 4 KiB: truncated
PY
head -c 4130 "$G/hello.elf" >"$tmp/short.elf"
truncate -s 64M "$tmp/big.initrd"
truncate -s 1M "$tmp/disk.img"
run_case "missing kernel" 1 EMPTY 'kernel: cannot open .*/nope: No such file' -- vm run --kernel "$tmp/nope"
before_kvm "missing kernel"
run_case "kernel is a directory" 1 EMPTY 'is not a regular file' -- vm run --kernel "$tmp"
run_case "kernel is neither bzImage nor ELF" 1 EMPTY 'script: kernel is neither a bzImage .* nor an ELF' -- vm run --kernel "$tmp/script"
run_case "a truncated bzImage is refused, naming the file" 1 EMPTY 'short.bz: bzImage is truncated: its header describes 16779776 bytes' -- vm run --kernel "$tmp/short.bz"
before_kvm "a truncated bzImage"
if [ -r build/guest/bzImage ]; then
	head -c 100000 build/guest/bzImage >"$tmp/debian-100k.bz"
	run_case "the default guest's bzImage cut to 100,000 bytes is refused (status 1, not a triple fault)" 1 EMPTY 'debian-100k.bz: bzImage is truncated.*the file has 100000' -- vm run --kernel "$tmp/debian-100k.bz"
else
	ok "the default guest's bzImage cut to 100,000 bytes # skip no build/guest/bzImage (guest/build)"
fi
run_case "a truncated ELF vmlinux is refused, naming the file" 1 EMPTY 'short.elf: ELF kernel segment 1 lies outside the file' -- vm run --kernel "$tmp/short.elf"
run_case "command line longer than this bzImage accepts" 1 EMPTY 'tiny.bz: command line is 100 bytes; this kernel accepts at most 64' -- vm run --kernel "$tmp/tiny.bz" --cmdline "console=ttyS0 ${long:0:86}"
before_kvm "command line longer than this bzImage accepts"
run_case "missing initrd" 1 EMPTY "initrd $tmp/nope: cannot open: No such file" -- vm run --kernel "$G/hello.elf" --initrd "$tmp/nope"
run_case "initrd larger than memory" 1 EMPTY 'initrd .*big.initrd is larger than guest memory \(32 MiB\)' -- vm run --kernel "$G/hello.elf" --initrd "$tmp/big.initrd" --memory 32M
run_case "missing disk" 1 EMPTY "--disk $tmp/nodisk: cannot open: No such file" -- vm run --kernel "$G/hello.elf" --disk "$tmp/nodisk"
before_kvm "missing disk"
run_case "the same disk twice is named as such" 1 EMPTY "--disk $tmp/disk.img is the same file as --disk $tmp/disk.img \\(disk 1\\)" -- vm run --kernel "$G/hello.elf" --disk "$tmp/disk.img" --disk "$tmp/disk.img"
ln -s disk.img "$tmp/alias.img"
run_case "the same disk under two names (read-only too)" 1 EMPTY "alias.img is the same file as --disk $tmp/disk.img" -- vm run --kernel "$G/hello.elf" --disk "$tmp/disk.img,ro" --disk "$tmp/alias.img,ro"
run_case "missing CD image" 1 EMPTY "--cdrom: $tmp/nocd.iso: No such file" -- vm run --kernel "$G/hello.elf" --cdrom "$tmp/nocd.iso"
before_kvm "missing CD image"
head -c 100 /dev/zero >"$tmp/tiny.iso"
run_case "a CD image smaller than one block" 1 EMPTY "tiny.iso: not a CD image: smaller than one 2048-byte block" -- vm run --kernel "$G/hello.elf" --cdrom="$tmp/tiny.iso"
run_case "a directory as the CD image" 1 EMPTY "--cdrom: $tmp: is a directory, not a CD image" -- vm run --kernel "$G/hello.elf" --cdrom "$tmp"
run_case "--cdrom twice" 2 EMPTY "--cdrom: one CD drive per VM" -- vm run --kernel "$G/hello.elf" --cdrom --cdrom "$tmp/tiny.iso"
run_case "--cdrom with an empty path" 2 EMPTY "--cdrom: an empty path" -- vm run --kernel "$G/hello.elf" --cdrom=
run_case "vm cd with an unknown verb" 2 EMPTY "expected NAME \\[insert ISO" -- vm cd web1 open
run_case "vm cd insert without an ISO" 2 EMPTY "expected NAME \\[insert ISO" -- vm cd web1 insert
run_case "vm cd eject with an unknown flag" 2 EMPTY "expected NAME \\[insert ISO" -- vm cd web1 eject --now
run_case "vm net without an operation" 2 EMPTY 'expected NAME add ID tap=TAP' -- vm net web1
run_case "vm net add without a spec" 2 EMPTY 'expected NAME add ID tap=TAP' -- vm net web1 add lan
run_case "vm net remove --timeout 0" 2 EMPTY '--timeout wants seconds from 1 to 600' -- vm net web1 remove lan --timeout 0
run_case "vm cd of a VM that does not exist" 1 EMPTY "no VM named 'nosuchvm'" -- vm cd nosuchvm
host_kib=$(awk '/^(MemTotal|SwapTotal):/ { t += $2 } END { print t }' /proc/meminfo)
if [ "$(cat /proc/sys/vm/overcommit_memory)" != 1 ] && [ "$host_kib" -lt $((1 << 30)) ]; then
	run_case "--memory 1T on a smaller host" 1 EMPTY '--memory 1048576 MiB is more than this host has \([0-9]+ MiB of RAM' -- vm run --kernel "$G/hello.elf" --memory 1T
	before_kvm "--memory 1T"
else
	ok "--memory 1T on a smaller host # skip overcommit_memory=1 lets any size be mapped, or the host has 1T"
fi
echo keep >"$tmp/regular"
run_case "--vsock PATH is a regular file" 1 EMPTY "regular exists and is not a socket; not touching it" -- vm run --kernel "$G/hello.elf" --vsock "3,$tmp/regular"
if [ "$(cat "$tmp/regular")" = keep ]; then ok "--vsock leaves an existing regular file untouched"; else not_ok "--vsock leaves an existing regular file untouched"; fi
run_case "--vsock with a missing kernel fails" 1 EMPTY 'cannot open .*/nope' -- vm run --kernel "$tmp/nope" --vsock "3,$tmp/v.sock"
if [ ! -e "$tmp/v.sock" ]; then ok "--vsock PATH not left behind when the VM cannot start"; else not_ok "--vsock PATH not left behind when the VM cannot start"; fi

# The default guest: where virtus looks, named when nothing is there.
mkdir -p "$tmp/inst/bin"
cp "$VIRTUS" "$tmp/inst/bin/virtus"
VIRTUS=$tmp/inst/bin/virtus run_case "no default guest: both places next to the binary are named" 1 EMPTY "no default guest in $tmp/inst/bin/guest or $tmp/inst/lib/virtus/guest .*guest/build" -- vm run
VIRTUS_GUEST_DIR=$tmp/none run_case "VIRTUS_GUEST_DIR without a guest" 1 EMPTY "no default guest in $tmp/none \\(" -- vm run

# --console FILE: an existing file is emptied only when the VM starts; a new one is not left behind.
# (--vsock in a missing directory fails inside VM creation, after the console is opened, with or without KVM.)
echo keep >"$tmp/console.log"
run_case "--console FILE: the VM cannot start" 1 EMPTY 'virtus: ' -- vm run --kernel "$G/hello.elf" --console "$tmp/console.log" --vsock "3,$tmp/nodir/v.sock"
if [ "$(cat "$tmp/console.log")" = keep ]; then ok "--console FILE: an existing file is untouched when the VM cannot start"
else not_ok "--console FILE: an existing file is untouched when the VM cannot start" "now: $(head -c 100 "$tmp/console.log")"; fi
run_case "--console FILE with a missing kernel" 1 EMPTY 'cannot open' -- vm run --kernel "$tmp/nope" --console "$tmp/left.log"
run_case "--console FILE: the VM cannot start after the console is opened" 1 EMPTY 'virtus: ' -- vm run --kernel "$G/hello.elf" --console "$tmp/left.log" --vsock "3,$tmp/nodir/v.sock"
if [ ! -e "$tmp/left.log" ]; then ok "no console file left behind"; else not_ok "no console file left behind"; fi
run_case "unwritable console file" 1 EMPTY '--console /nonexistent/x.log: No such file' -- vm run --kernel "$G/hello.elf" --console /nonexistent/x.log

# --cmdline without console=: one warning line saying what to add (none with --console none). The run
# goes on: on a host without KVM it then stops at /dev/kvm, on one with KVM the tiny guest powers off.
"$VIRTUS" vm run --kernel "$G/hello.elf" --cmdline "quiet" </dev/null >/dev/null 2>"$tmp/err"
if [ "$(grep -c 'warning' "$tmp/err")" = 1 ] && grep -q 'warning: --cmdline has no console= option.*add console=ttyS0$' "$tmp/err"; then
	ok "--cmdline without console= warns in one line, naming console=ttyS0"
else not_ok "--cmdline without console= warns in one line, naming console=ttyS0" "stderr: $(head -c 300 "$tmp/err")"; fi
"$VIRTUS" vm run --kernel "$G/hello.elf" --cmdline "quiet" --console-device virtio </dev/null >/dev/null 2>"$tmp/err"
if grep -q 'add console=hvc0$' "$tmp/err"; then ok "--console-device virtio: the warning names console=hvc0"
else not_ok "--console-device virtio: the warning names console=hvc0" "stderr: $(head -c 300 "$tmp/err")"; fi
for quiet in "--cmdline console=ttyS0" "--cmdline quiet --console none" ""; do
	# shellcheck disable=SC2086
	"$VIRTUS" vm run --kernel "$G/hello.elf" $quiet </dev/null >/dev/null 2>"$tmp/err"
	if grep -q warning "$tmp/err"; then not_ok "no warning with '${quiet:-the default command line}'" "stderr: $(head -c 300 "$tmp/err")"
	else ok "no warning with '${quiet:-the default command line}'"; fi
done
echo "1..$n"
