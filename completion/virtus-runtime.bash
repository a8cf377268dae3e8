# bash completion for virtus-runtime(8): global options, commands, each command's options and values,
# and container IDs from the state root (--root, default /run/virtus-runtime).
# Installed by `make install` as $(PREFIX)/share/bash-completion/completions/virtus-runtime.

_virtus_runtime_commands="create start state kill delete run exec ps list pause resume spec features version help"
_virtus_runtime_globals="--root --log --log-format --debug --systemd-cgroup --version --help"

# The options of one command.
_virtus_runtime_options() {
	case "$1" in
	create) echo "--bundle --pid-file --console-socket --no-pivot" ;;
	run) echo "--bundle --pid-file --console-socket --detach --keep --no-pivot" ;;
	exec) echo "--process --tty --console-socket --pid-file --detach --cwd --env --user" ;;
	kill) echo "--all" ;;
	delete) echo "--force" ;;
	ps|list) echo "--format" ;;
	spec) echo "--bundle" ;;
	esac
}

_virtus_runtime() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
	local root=/run/virtus-runtime cmd="" i
	COMPREPLY=()
	# The command is the first word that is neither a global option nor its value.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		--root) root=${COMP_WORDS[i + 1]-$root}; i=$((i + 1)) ;;
		--log|--log-format) i=$((i + 1)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	case "$prev" in
	--root|--bundle|--cwd) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
	--log|--pid-file|--process|--console-socket) mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
	--log-format) mapfile -t COMPREPLY < <(compgen -W "text json" -- "$cur"); return ;;
	--format) mapfile -t COMPREPLY < <(compgen -W "json table" -- "$cur"); return ;;
	--env|--user) return ;;
	esac
	if [ -z "$cmd" ]; then
		mapfile -t COMPREPLY < <(compgen -W "$_virtus_runtime_globals $_virtus_runtime_commands" -- "$cur")
		return
	fi
	if [[ "$cur" == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_virtus_runtime_options "$cmd") --help" -- "$cur")
		return
	fi
	case "$cmd" in
	start|state|kill|delete|exec|ps|pause|resume|create|run)
		local ids
		ids=$(ls "$root" 2>/dev/null)
		mapfile -t COMPREPLY < <(compgen -W "$ids" -- "$cur") ;;
	esac
}

complete -o filenames -F _virtus_runtime virtus-runtime
