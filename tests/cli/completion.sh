#!/usr/bin/env bash
# bash completion (completion/*.bash): sourced in a clean bash, the completion function is called with
# COMP_WORDS/COMP_CWORD set as bash would, and the replies are checked; the option lists are compared with
# the programs' --help so that they cannot drift apart.
#   VIRTUS=build/virtus VIRTUS_RUNTIME=build/virtus-runtime tests/cli/completion.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
VIRTUS=${VIRTUS:-build/virtus}
VIRTUS_RUNTIME=${VIRTUS_RUNTIME:-build/virtus-runtime}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=../lib/tap.bash
. tests/lib/tap.bash

# complete FILE FUNCTION WORDS...: the replies (sorted, one line) for the command line WORDS, the cursor
# on the last word ("" for a new word). Runs in a fresh bash so nothing of this script leaks in.
complete_words() {
	local file=$1 fn=$2
	shift 2
	(cd "$tmp" && bash --norc --noprofile -c '
		file=$1 fn=$2; shift 2
		. "$file" || exit 9
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		"$fn"
		printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " " | sed "s/ $//"
	' bash "$OLDPWD/$file" "$fn" "$@")
}

# expect NAME WANT FILE FUNCTION WORDS...
expect() {
	local name=$1 want=$2 got
	shift 2
	got=$(complete_words "$@")
	if [ "$got" = "$want" ]; then ok "$name"; else not_ok "$name" "want: '$want'" "got:  '$got'"; fi
}

V=completion/virtus.bash R=completion/virtus-runtime.bash
mkdir -p "$tmp/images" && : >"$tmp/images/disk.img" && : >"$tmp/kernel.bz"
expect "virtus <TAB>: the commands" "--help --version build commit diff exec help image inspect kill logs pause ps rm run serve start stop unpause version vm" $V _virtus virtus ""
expect "virtus run --n<TAB>: its options" "--name --network" $V _virtus virtus run --n
expect "virtus run --network <TAB>: the modes" "bridge host none slirp" $V _virtus virtus run --network ""
expect "virtus image <TAB>: the image commands" "--help history import inspect load ls rm save tag" $V _virtus virtus image ""
expect "virtus image save --format <TAB>" "docker-archive oci-archive" $V _virtus virtus image save --format ""
expect "virtus v<TAB>" "version vm" $V _virtus virtus v
expect "virtus vm <TAB>" "--help api balloon cd console disk info kill logs ls metrics migrate net pause probe resume run snapshot stop" $V _virtus virtus vm ""
expect "virtus vm disk web1 <TAB>" "add change remove" $V _virtus virtus vm disk web1 ""
expect "virtus vm disk web1 add hp1 images/<TAB>: a file" "images/disk.img" $V _virtus virtus vm disk web1 add hp1 images/
expect "virtus vm disk web1 add hp1 F <TAB>" "--ro" $V _virtus virtus vm disk web1 add hp1 F ""
expect "virtus vm cd web1 <TAB>" "eject insert" $V _virtus virtus vm cd web1 ""
expect "virtus vm net web1 <TAB>" "add remove" $V _virtus virtus vm net web1 ""
expect "virtus vm net web1 remove lan <TAB>" "--timeout" $V _virtus virtus vm net web1 remove lan ""
expect "virtus vm cd web1 insert images/<TAB>: a file" "images/disk.img" $V _virtus virtus vm cd web1 insert images/
expect "virtus vm cd web1 eject <TAB>" "--force" $V _virtus virtus vm cd web1 eject ""
expect "virtus vm run --cdrom images/<TAB>: a file" "images/disk.img" $V _virtus virtus vm run --cdrom images/
expect "virtus vm disk web1 remove hp1 <TAB>" "--timeout" $V _virtus virtus vm disk web1 remove hp1 ""
expect "virtus help vm <TAB>" "ls probe run" $V _virtus virtus help vm ""
expect "virtus vm run --con<TAB>" "--console --console-device" $V _virtus virtus vm run --con
expect "virtus vm run --console-device <TAB>" "serial virtio" $V _virtus virtus vm run --console-device ""
expect "virtus vm run --console <TAB>: stdio, none and files" "images kernel.bz none stdio" $V _virtus virtus vm run --console ""
expect "virtus vm run --kernel ker<TAB>: a file" "kernel.bz" $V _virtus virtus vm run --kernel ker
expect "virtus vm run --disk images/<TAB>" "images/disk.img" $V _virtus virtus vm run --disk images/
expect "virtus vm run --net <TAB>" "tap= user" $V _virtus virtus vm run --net ""
expect "virtus vm run --cpus <TAB>: nothing to offer" "" $V _virtus virtus vm run --cpus ""
expect "virtus vm probe <TAB>" "--help" $V _virtus virtus vm probe ""
expect "virtus build --<TAB>" "--build-arg --file --help --no-cache --tag" $V _virtus virtus build --
expect "virtus build -f ker<TAB>: a file" "kernel.bz" $V _virtus virtus build -f ker
expect "virtus build -t x <TAB>: the context directory" "images" $V _virtus virtus build -t x ""

options_in() { grep -oE -- '(^|[^a-zA-Z0-9-])--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u | tr '\n' ' ' | sed 's/ $//'; }
want=$("$VIRTUS" vm run --help | options_in)
got=$(complete_words $V _virtus virtus vm run --)
if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "virtus vm run --<TAB> offers exactly the options of 'virtus vm run --help'"
else not_ok "virtus vm run --<TAB> offers exactly the options of 'virtus vm run --help'" "help: '$want'" "completion: '$got'"; fi

mkdir -p "$tmp/state/web1" "$tmp/state/web2" "$tmp/state/db" "$tmp/bundle"
expect "virtus-runtime <TAB>: global options and commands" \
	"$(printf '%s\n' --root --log --log-format --debug --systemd-cgroup --version --help create start state kill delete run exec ps list pause resume spec features version help | sort | tr '\n' ' ' | sed 's/ $//')" \
	$R _virtus_runtime virtus-runtime ""
expect "virtus-runtime --log-format <TAB>" "json text" $R _virtus_runtime virtus-runtime --log-format ""
expect "virtus-runtime --root DIR st<TAB>: the command, not the option's value" "start state" $R _virtus_runtime virtus-runtime --root "$tmp/state" st
expect "virtus-runtime --root DIR kill w<TAB>: container IDs from the state root" "web1 web2" $R _virtus_runtime virtus-runtime --root "$tmp/state" kill w
expect "virtus-runtime create --<TAB>" "--bundle --console-socket --help --no-pivot --pid-file" $R _virtus_runtime virtus-runtime create --
expect "virtus-runtime create --bundle bu<TAB>: a directory" "bundle" $R _virtus_runtime virtus-runtime create --bundle bu
expect "virtus-runtime delete --<TAB>" "--force --help" $R _virtus_runtime virtus-runtime delete --
expect "virtus-runtime list --format <TAB>" "json table" $R _virtus_runtime virtus-runtime list --format ""
want=$("$VIRTUS_RUNTIME" --help | options_in)
offered=$(for c in "" create run exec kill delete ps list spec; do
	# shellcheck disable=SC2086
	complete_words $R _virtus_runtime virtus-runtime $c --; echo; done | tr ' ' '\n' | sort -u | sed '/^$/d')
missing=$(comm -23 <(tr ' ' '\n' <<<"$want") <(echo "$offered") | tr '\n' ' ')
if [ -n "$want" ] && [ -z "$missing" ]; then ok "every option of 'virtus-runtime --help' is offered somewhere"
else not_ok "every option of 'virtus-runtime --help' is offered somewhere" "missing: '$missing'"; fi
echo "1..$n"
