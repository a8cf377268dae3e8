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
