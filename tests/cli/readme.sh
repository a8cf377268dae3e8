#!/usr/bin/env bash
# The README tells the truth about the programs: its first commands work in a root shell of a fresh machine
# (no sudo, which such a shell may lack), and its synopses name every option the programs' --help lists.
#   VIRTUS=build/virtus VIRTUS_RUNTIME=build/virtus-runtime tests/cli/readme.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
VIRTUS=${VIRTUS:-build/virtus}
VIRTUS_RUNTIME=${VIRTUS_RUNTIME:-build/virtus-runtime}
# shellcheck source=../lib/tap.bash
. tests/lib/tap.bash

# block_after HEADING: the first ``` block after the line HEADING.
block_after() { awk -v h="$1" '$0 == h { f = 1; next } f && /^```/ { if (inb) exit; inb = 1; next } inb { print }' README.md; }
options_in() { grep -oE -- '(^|[^a-zA-Z0-9-])--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }

first=$(block_after "# virtus")
if [ -n "$first" ] && ! grep -qw sudo <<<"$first"; then ok "README's first commands need no sudo"
else not_ok "README's first commands need no sudo" "$first"; fi
for cmd in $(awk '{ print $1 }' <<<"$first"); do
	if [ -x "$cmd" ]; then ok "README's first command $cmd exists and is executable"
	else not_ok "README's first command $cmd exists and is executable"; fi
done

# synopsis NAME HEADING HELP_OPTIONS: every option of --help (but --help itself) is in the synopsis.
synopsis() {
	local missing
	missing=$(comm -23 <(grep -vx -- '--help' <<<"$3") <(block_after "$2" | options_in) | tr '\n' ' ')
	if [ -z "$3" ]; then not_ok "$1: --help lists no options (is the binary there?)"
	elif [ -z "$missing" ]; then ok "$1: the README synopsis names every option of --help"
	else not_ok "$1: options of --help missing from the README synopsis: $missing"; fi
}
synopsis "virtus vm run" "## virtus vm run" "$("$VIRTUS" vm run --help | options_in)"
synopsis "virtus-runtime" "## virtus-runtime" "$("$VIRTUS_RUNTIME" --help | options_in)"
extra=$(comm -13 <( { "$VIRTUS" vm run --help; "$VIRTUS" vm ls --help; } | options_in) <(block_after "## virtus vm run" | options_in) | tr '\n' ' ')
if [ -z "$extra" ]; then ok "virtus vm run: the README synopsis names no option the program lacks"
else not_ok "virtus vm run: the README synopsis names options the program lacks: $extra"; fi
echo "1..$n"
