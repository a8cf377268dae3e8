#!/usr/bin/env bash
# make install with PREFIX and DESTDIR: the tree it makes, the installed programs run, and the installed
# virtus finds the installed default guest (<bindir>/../lib/virtus/guest). The guest installed here is a
# stand-in whose "kernel" is refused by name before KVM is opened, so this runs on every host.
set -uo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=../lib/tap.bash
. tests/lib/tap.bash

mkdir -p "$tmp/guest"
printf 'not a kernel\n' >"$tmp/guest/vmlinux"
printf 'not an initramfs\n' >"$tmp/guest/initramfs.cpio.gz"
root=$tmp/root
if make -s install DESTDIR="$root" PREFIX=/usr GUEST="$tmp/guest" >"$tmp/make.out" 2>&1; then ok "make install DESTDIR=... PREFIX=/usr"
else not_ok "make install DESTDIR=... PREFIX=/usr" "$(tail -n 5 "$tmp/make.out")"; fi

for f in bin/virtus bin/virtus-runtime share/man/man1/virtus.1 share/man/man8/virtus-runtime.8 \
	share/bash-completion/completions/virtus share/bash-completion/completions/virtus-runtime \
	lib/virtus/guest/vmlinux lib/virtus/guest/initramfs.cpio.gz lib/virtus/libvirtus-store.so lib/virtus/virtus-agent; do
	if [ -f "$root/usr/$f" ]; then ok "installed: /usr/$f"; else not_ok "installed: /usr/$f"; fi
done
for f in bin/virtus bin/virtus-runtime lib/virtus/virtus-agent; do
	if [ -x "$root/usr/$f" ]; then ok "/usr/$f is executable"; else not_ok "/usr/$f is executable"; fi
done
stray=$(cd "$root" && find . -mindepth 1 -maxdepth 1 ! -name usr)
if [ -z "$stray" ]; then ok "nothing installed outside PREFIX"; else not_ok "nothing installed outside PREFIX" "$stray"; fi

out=$("$root/usr/bin/virtus" vm run --help 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q '^usage: virtus vm run' <<<"$out"; then ok "the installed virtus vm run --help works"
else not_ok "the installed virtus vm run --help works" "status $rc: $(head -c 200 <<<"$out")"; fi
# The image and container commands come from the installed lib/virtus/libvirtus-store.so (and only from
# there: the build tree's copy is not next to the installed binary).
out=$("$root/usr/bin/virtus" --root "$tmp/store" image ls 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q '^REPOSITORY' <<<"$out"; then ok "the installed virtus loads its image commands from /usr/lib/virtus"
else not_ok "the installed virtus loads its image commands from /usr/lib/virtus" "status $rc: $(head -c 300 <<<"$out")"; fi
mv "$root/usr/lib/virtus/libvirtus-store.so" "$tmp/moved.so"
out=$("$root/usr/bin/virtus" --root "$tmp/store" image ls 2>&1); rc=$?
if [ $rc -eq 125 ] && grep -q 'need libvirtus-store.so' <<<"$out"; then ok "without libvirtus-store.so: a clear message and status 125"
else not_ok "without libvirtus-store.so: a clear message and status 125" "status $rc: $(head -c 300 <<<"$out")"; fi
mv "$tmp/moved.so" "$root/usr/lib/virtus/libvirtus-store.so"
out=$("$root/usr/bin/virtus-runtime" --version 2>&1); rc=$?
if [ $rc -eq 0 ]; then ok "the installed virtus-runtime --version works"; else not_ok "the installed virtus-runtime --version works" "status $rc: $out"; fi

# The installed guest is found next to the installed binary: its "kernel" is read and refused by name.
out=$(env -u VIRTUS_GUEST_DIR "$root/usr/bin/virtus" vm run </dev/null 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "$root/usr/lib/virtus/guest/vmlinux: kernel is neither a bzImage" <<<"$out"; then
	ok "the installed virtus finds the installed default guest in <bindir>/../lib/virtus/guest"
else not_ok "the installed virtus finds the installed default guest in <bindir>/../lib/virtus/guest" "status $rc: $out"; fi
rm -rf "$root/usr/lib/virtus/guest"
out=$(env -u VIRTUS_GUEST_DIR "$root/usr/bin/virtus" vm run </dev/null 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "no default guest in $root/usr/bin/guest or $root/usr/lib/virtus/guest" <<<"$out"; then
	ok "without an installed guest, the message names where virtus looked"
else not_ok "without an installed guest, the message names where virtus looked" "status $rc: $out"; fi

if command -v man >/dev/null && MANWIDTH=80 man -l "$root/usr/share/man/man1/virtus.1" 2>/dev/null | grep -q 'virtus - run a Linux kernel'; then
	ok "the installed virtus(1) renders"
else not_ok "the installed virtus(1) renders"; fi
out=$(bash --norc --noprofile -c ". '$root/usr/share/bash-completion/completions/virtus' && complete -p virtus" 2>&1)
if grep -q -- '-F _virtus virtus' <<<"$out"; then ok "the installed completion registers for virtus"
else not_ok "the installed completion registers for virtus" "$out"; fi

if make -s uninstall DESTDIR="$root" PREFIX=/usr >"$tmp/make.out" 2>&1 && [ -z "$(find "$root" -type f)" ]; then
	ok "make uninstall removes every installed file"
else not_ok "make uninstall removes every installed file" "$(find "$root" -type f | head -n 5)"; fi
echo "1..$n"
