#!/usr/bin/env bash
# The man pages (docs/man): valid man(7) roff without warnings, and in step with the programs: every
# option a --help prints is in the page, and (for virtus) every option the page names is one the program
# has, so the two cannot drift apart.
#   VIRTUS=build/virtus VIRTUS_RUNTIME=build/virtus-runtime tests/cli/man.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
VIRTUS=${VIRTUS:-build/virtus}
VIRTUS_RUNTIME=${VIRTUS_RUNTIME:-build/virtus-runtime}
# shellcheck source=../lib/tap.bash
. tests/lib/tap.bash

if ! command -v groff >/dev/null; then
	echo "not ok 1 - groff is missing (apt-get install groff-base; scripts/deps installs it)"
	exit 1
fi

render() { groff -man -Tascii -rLL=250n -rHY=0 "$1" 2>/dev/null | col -bx; }
options_in() { grep -oE -- '(^|[^a-zA-Z0-9-])--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }

for page in docs/man/virtus.1 docs/man/virtus-runtime.8; do
	warnings=$(groff -man -ww -z "$page" 2>&1)
	if [ -z "$warnings" ]; then ok "$page: groff -man -ww finds nothing to warn about"
	else not_ok "$page: groff -man -ww warns" "$(head -c 400 <<<"$warnings")"; fi
	if command -v man >/dev/null; then
		warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
		if [ -z "$warnings" ]; then ok "$page: man --warnings -l at 80 columns is clean"
		else not_ok "$page: man --warnings -l at 80 columns" "$(head -c 400 <<<"$warnings")"; fi
	fi
done

# compare NAME HELP_OPTIONS PAGE_OPTIONS EXACT: every help option is in the page; EXACT: and no more.
compare() {
	local missing extra
	missing=$(comm -23 <(echo "$2") <(echo "$3") | tr '\n' ' ')
	extra=$(comm -13 <(echo "$2") <(echo "$3") | tr '\n' ' ')
	if [ -z "$(echo "$2")" ]; then not_ok "$1: --help lists no options at all (is the binary there?)"
	elif [ -n "$missing" ]; then not_ok "$1: options in --help but not in the man page: $missing"
	else ok "$1: every option of --help is in the man page"; fi
	if [ "$4" = EXACT ]; then
		if [ -z "$extra" ]; then ok "$1: every option in the man page is one the program has"
		else not_ok "$1: options in the man page that --help does not list: $extra"; fi
	fi
}

virtus_help=$( { "$VIRTUS" --help; "$VIRTUS" vm run --help; "$VIRTUS" vm probe --help; "$VIRTUS" vm ls --help; "$VIRTUS" build --help
	for c in import ls tag load save rm history inspect; do "$VIRTUS" image $c --help; done
	for c in run ps logs exec stop kill start rm pause unpause inspect diff commit serve; do "$VIRTUS" $c --help; done
	} | options_in)
compare "virtus(1)" "$virtus_help" "$(render docs/man/virtus.1 | options_in)" EXACT
page=$(render docs/man/virtus.1)
for cmd in "vm run" "vm probe" "image" "build" run ps logs exec stop kill start rm pause unpause inspect diff commit serve "help" \
	"version"; do
	if "$VIRTUS" --help | grep -q "^  $cmd " && grep -qE "^ +$cmd( |$)" <<<"$page"; then ok "virtus(1) describes the command '$cmd'"
	else not_ok "virtus(1) describes the command '$cmd' (and virtus --help lists it)"; fi
done

runtime_help=$("$VIRTUS_RUNTIME" --help | options_in)
runtime_page=$(render docs/man/virtus-runtime.8)
compare "virtus-runtime(8)" "$runtime_help" "$(options_in <<<"$runtime_page")" SUBSET
for cmd in $("$VIRTUS_RUNTIME" --help | sed -n 's/^  *\(|\)\{0,1\}//p' | grep -oE '(^|\| )[a-z]+' | grep -oE '[a-z]+' | sort -u); do
	if grep -qE "^ {7}$cmd( |,|$)" <<<"$runtime_page"; then ok "virtus-runtime(8) describes the command '$cmd'"
	else not_ok "virtus-runtime(8) describes the command '$cmd' (virtus-runtime --help lists it)"; fi
done
echo "1..$n"
