# stall_report PID: what a VMM whose guest stopped making progress is doing. Per thread: name, state, CPU
# ticks (user, system), kernel wait channel and system call; then KVM's counters for the VM (debugfs). Read
# twice a second apart: a vCPU whose ticks and exits move runs, one whose do not waits. POSIX sh (L1 has
# busybox sh), one "# " line per reading.
stall_report() {
	_sr_kvm=
	[ -d /sys/kernel/debug/kvm ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	for _sr_d in /sys/kernel/debug/kvm/"$1"-*; do [ -d "$_sr_d" ] && _sr_kvm=$_sr_d; done
	for _sr_round in 1 2; do
		_sr_line="# vmm $1 threads:"
		for _sr_t in /proc/"$1"/task/*; do
			[ -r "$_sr_t/stat" ] || continue
			_sr_line="$_sr_line | $(cat "$_sr_t/comm" 2>/dev/null) $(cut -d' ' -f3,14,15 "$_sr_t/stat" 2>/dev/null)"
			_sr_line="$_sr_line $(cat "$_sr_t/wchan" 2>/dev/null) sys=$(cut -d' ' -f1 "$_sr_t/syscall" 2>/dev/null)"
		done
		echo "$_sr_line"
		if [ -n "$_sr_kvm" ]; then
			_sr_line="# kvm:"
			for _sr_f in "$_sr_kvm"/*; do
				[ -f "$_sr_f" ] || continue
				_sr_v=$(cat "$_sr_f" 2>/dev/null | head -n1)
				case "$_sr_v" in '' | 0 | *' '*) ;; *) _sr_line="$_sr_line ${_sr_f##*/}=$_sr_v" ;; esac
			done
			echo "$_sr_line"
		fi
		[ "$_sr_round" = 2 ] || sleep 1
	done
	# KVM's exits for a moment (reason and guest RIP), when tracefs can be had
	_sr_tr=/sys/kernel/tracing
	[ -d "$_sr_tr/events" ] || mount -t tracefs nodev "$_sr_tr" 2>/dev/null
	if [ -w "$_sr_tr/events/kvm/kvm_exit/enable" ]; then
		echo >"$_sr_tr/trace"
		echo 1 >"$_sr_tr/events/kvm/kvm_exit/enable"
		sleep 0.2
		echo 0 >"$_sr_tr/events/kvm/kvm_exit/enable"
		grep -v '^#' "$_sr_tr/trace" | sed -n 's/.*kvm_exit: *//p' | head -n 3 | sed 's/^/# exit: /'
		echo "# exit reasons: $(grep -v '^#' "$_sr_tr/trace" | grep -o 'reason [A-Za-z_0-9]*' | sort | uniq -c | tr -s ' \n' ' ')"
	fi
	echo "# load $(cat /proc/loadavg)"
}

# stall_regs STATE_FILE: vCPU 0's general registers from a snapshot's state file, as one "# " line. The file
# (src/lib/state_file.c): a 16-byte header, then sections of a 40-byte header (name in 24 bytes, length at
# 32) and data padded to 8 bytes; "vcpu0.regs" holds struct kvm_regs. busybox's grep has no -b: walk it.
stall_regs() {
	_sr_off=16
	while :; do
		_sr_name=$(dd if="$1" bs=1 skip="$_sr_off" count=24 2>/dev/null | tr -d '\000')
		_sr_len=$(od -A n -t u8 -j $((_sr_off + 32)) -N 8 "$1" 2>/dev/null | tr -d ' ')
		case "$_sr_name:$_sr_len" in
		:* | *: | end:*) echo "# no vCPU registers in $1"; return ;;
		vcpu0.regs:*) break ;;
		esac
		_sr_off=$((_sr_off + 40 + (_sr_len + 7) / 8 * 8))
	done
	set -- $(od -A n -t x8 -j $((_sr_off + 40)) -N 144 "$1")
	echo "# vcpu0 rax=$1 rbx=$2 rcx=$3 rdx=$4 rsi=$5 rdi=$6 rsp=$7 rbp=$8 rip=${17} rflags=${18}"
}
