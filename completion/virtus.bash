# bash completion for virtus(1): commands, `vm run` options and their values, `image` subcommands, container
# commands and their options.
# Installed by `make install` as $(PREFIX)/share/bash-completion/completions/virtus.

_virtus_vm_run_options="--kernel --initrd --cmdline --cpus --memory --console --console-device --rng --disk
	--cdrom --net --balloon --vsock --fs --ksm --seccomp --jail --jail-uid --jail-gid --stats --detach --name --api-socket --stop-timeout --restore --incoming --help"
_virtus_vm_verbs="run probe ls info metrics pause resume kill stop snapshot migrate balloon disk cd net console logs api"

_virtus_ctr_commands="run ps logs exec stop kill start rm pause unpause inspect diff commit"

_virtus() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local cmd=${COMP_WORDS[1]-} sub=${COMP_WORDS[2]-}
	COMPREPLY=()
	if [ "$COMP_CWORD" -eq 1 ]; then
		mapfile -t COMPREPLY < <(compgen -W "vm image build $_virtus_ctr_commands serve help version --help --version" -- "$cur")
		return
	fi
	case "$cmd" in
	help)
		case $COMP_CWORD in
		2) mapfile -t COMPREPLY < <(compgen -W "vm" -- "$cur") ;;
		3) [ "$sub" = vm ] && mapfile -t COMPREPLY < <(compgen -W "run probe ls" -- "$cur") ;;
		esac
		return ;;
	vm) ;;
	image) _virtus_image "$cur" "$prev" "$sub"; return ;;
	run|ps|logs|exec|stop|kill|start|rm|pause|unpause|inspect|diff|commit) _virtus_ctr "$cur" "$prev" "$cmd"; return ;;
	build) _virtus_build "$cur" "$prev"; return ;;
	serve)
		case "$prev" in
		--tls-cert|--tls-key|--token-file) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
		--iso-dir) mapfile -t COMPREPLY < <(compgen -d -- "$cur") ;;
		--listen) ;;
		*) mapfile -t COMPREPLY < <(compgen -W "--listen --tls-cert --tls-key --iso-dir --token-file --help" -- "$cur") ;;
		esac
		return ;;
	*) return ;;
	esac
	if [ "$COMP_CWORD" -eq 2 ]; then
		mapfile -t COMPREPLY < <(compgen -W "$_virtus_vm_verbs --help" -- "$cur")
		return
	fi
	case "$sub" in
	probe|ls) mapfile -t COMPREPLY < <(compgen -W "--help" -- "$cur") ;;
	run) _virtus_vm_run "$cur" "$prev" ;;
	info|metrics|pause|resume|kill|stop|snapshot|migrate|balloon|disk|cd|net|console|logs|api)
		# the first argument is a VM's name (info and metrics may take --json first)
		if [ "$COMP_CWORD" -eq 3 ] || { { [ "$sub" = info ] || [ "$sub" = metrics ]; } && [ "$prev" = --json ]; }; then
			local names
			names=$(ls "${VIRTUS_VM_RUN_DIR:-/run/virtus-vms}" 2>/dev/null)
			{ [ "$sub" = info ] || [ "$sub" = metrics ]; } && [ "$COMP_CWORD" -eq 3 ] && names="$names --json"
			mapfile -t COMPREPLY < <(compgen -W "$names" -- "$cur")
		elif [ "$sub" = api ] && [ "$COMP_CWORD" -eq 4 ]; then
			mapfile -t COMPREPLY < <(compgen -W "GET PUT PATCH DELETE" -- "$cur")
		elif [ "$sub" = disk ]; then
			_virtus_vm_disk "$cur" "${COMP_WORDS[4]-}"
		elif [ "$sub" = cd ]; then
			_virtus_vm_cd "$cur" "${COMP_WORDS[4]-}"
		elif [ "$sub" = net ]; then
			case $COMP_CWORD in
			4) mapfile -t COMPREPLY < <(compgen -W "add remove" -- "$cur") ;;
			6) [ "${COMP_WORDS[4]-}" = add ] && mapfile -t COMPREPLY < <(compgen -W "tap=" -- "$cur")
			   [ "${COMP_WORDS[4]-}" = remove ] && mapfile -t COMPREPLY < <(compgen -W "--timeout" -- "$cur") ;;
			esac
		fi ;;
	esac
}

# vm disk NAME add ID PATH [--ro] | remove ID [--timeout SECS] | change ID PATH
_virtus_vm_disk() {
	local cur=$1 op=$2
	case $COMP_CWORD in
	4) mapfile -t COMPREPLY < <(compgen -W "add remove change" -- "$cur") ;;
	6) if [ "$op" = remove ]; then mapfile -t COMPREPLY < <(compgen -W "--timeout" -- "$cur")
	   else mapfile -t COMPREPLY < <(compgen -f -- "$cur"); fi ;;
	7) [ "$op" = add ] && mapfile -t COMPREPLY < <(compgen -W "--ro" -- "$cur") ;;
	esac
}

# vm cd NAME [insert ISO [--force] | eject [--force]]
_virtus_vm_cd() {
	local cur=$1 op=$2
	case $COMP_CWORD in
	4) mapfile -t COMPREPLY < <(compgen -W "insert eject" -- "$cur") ;;
	5) if [ "$op" = insert ]; then mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	   else mapfile -t COMPREPLY < <(compgen -W "--force" -- "$cur"); fi ;;
	6) [ "$op" = insert ] && mapfile -t COMPREPLY < <(compgen -W "--force" -- "$cur") ;;
	esac
}

# The value of the option before the cursor, else the options themselves.
_virtus_vm_run() {
	local cur=$1 prev=$2
	case "$prev" in
	--kernel|--initrd|--disk|--cdrom) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	--console) mapfile -t COMPREPLY < <(compgen -W "stdio none" -- "$cur"; compgen -f -- "$cur"); return ;;
	--console-device) mapfile -t COMPREPLY < <(compgen -W "serial virtio" -- "$cur"); return ;;
	--net) mapfile -t COMPREPLY < <(compgen -W "user tap=" -- "$cur"); return ;;
	--seccomp) mapfile -t COMPREPLY < <(compgen -W "on off log" -- "$cur"); return ;;
	--api-socket|--restore) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	--cmdline|--cpus|--memory|--balloon|--vsock|--fs|--jail-uid|--jail-gid|--name|--stop-timeout|--incoming) return ;;
	esac
	# shellcheck disable=SC2086
	mapfile -t COMPREPLY < <(compgen -W "$(echo $_virtus_vm_run_options)" -- "$cur")
}

# virtus build: -f takes a file, -t and --build-arg a value, else options or the context directory.
_virtus_build() {
	local cur=$1 prev=$2
	case "$prev" in
	-f|--file) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	-t|--tag|--build-arg) return ;;
	esac
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "--tag --file --build-arg --no-cache --help" -- "$cur")
	else
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
	fi
}

# `virtus image SUB ...`: the subcommands, then their options (files for import, load -i, save -o).
_virtus_image() {
	local cur=$1 prev=$2 sub=$3
	if [ "$COMP_CWORD" -eq 2 ]; then
		mapfile -t COMPREPLY < <(compgen -W "import ls tag load save rm history inspect --help" -- "$cur")
		return
	fi
	case "$prev" in
	-i|--input|-o|--output) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	--format) mapfile -t COMPREPLY < <(compgen -W "oci-archive docker-archive" -- "$cur"); return ;;
	esac
	case "$sub" in
	import) mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
	ls) mapfile -t COMPREPLY < <(compgen -W "--quiet --no-trunc --help" -- "$cur") ;;
	load) mapfile -t COMPREPLY < <(compgen -W "--input --help" -- "$cur") ;;
	save) mapfile -t COMPREPLY < <(compgen -W "--output --format --help" -- "$cur") ;;
	history) mapfile -t COMPREPLY < <(compgen -W "--no-trunc --help" -- "$cur") ;;
	*) mapfile -t COMPREPLY < <(compgen -W "--help" -- "$cur") ;;
	esac
}

# Container commands: option values where they are known, else the command's options.
_virtus_ctr() {
	local cur=$1 prev=$2 cmd=$3 opts="--help"
	case "$prev" in
	--network) mapfile -t COMPREPLY < <(compgen -W "bridge slirp none host" -- "$cur"); return ;;
	--isolation) mapfile -t COMPREPLY < <(compgen -W "container vm" -- "$cur"); return ;;
	--rootfs) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
	-s|--signal) mapfile -t COMPREPLY < <(compgen -W "TERM KILL INT HUP QUIT USR1 USR2" -- "$cur"); return ;;
	esac
	case "$cmd" in
	run) opts="--detach --name --rm --interactive --tty --env --workdir --user --volume --publish --network
		--memory --cpus --pids-limit --entrypoint --rootfs --isolation --help" ;;
	ps) opts="--all --quiet --help" ;;
	logs) opts="--follow --help" ;;
	exec) opts="--interactive --tty --env --workdir --user --help" ;;
	stop) opts="--time --help" ;;
	kill) opts="--signal --help" ;;
	rm) opts="--force --help" ;;
	esac
	[[ $cur == -* ]] || return
	# shellcheck disable=SC2086
	mapfile -t COMPREPLY < <(compgen -W "$(echo $opts)" -- "$cur")
}

complete -o filenames -F _virtus virtus
