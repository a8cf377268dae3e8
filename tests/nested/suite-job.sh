# Job run inside the nested bed's L1 by tests/suite-nested: boots L2 guests, one l2-result line each.
# A QEMU reference boot first tells a broken bed or guest apart from a broken virtus.
# The work comes in parts (tests/nested/part-NAME.sh, run in the order the file 'parts' lists, default all),
# each between "nested-bed: part NAME begins" and "... done": a suite whose L1 hung or died boots another
# that goes on from the first part left unfinished. A part needs only the helpers below, never another part.
limit=${L2_LIMIT:-60}
base_cmdline="console=ttyS0 quiet panic=-1"

if ! command -v virtus >/dev/null; then
	echo "l2-novmm"
	exit 0
fi

timeouts=0
virtus_run() { # virtus_run TAG ARGS...: stop trying after two timeouts, the suite has a time budget
	tag=$1; shift
	if [ "$timeouts" -ge 2 ]; then
		echo "l2-result tag=$tag status=notrun ready_ms=none total_ms=0 nproc=none memtotal_kb=none"
		return
	fi
	l2-run "$tag" "${run_limit:-$limit}" virtus vm run --console stdio "$@" | tee /tmp/last-run
	grep -q "^l2-result tag=$tag status=timeout" /tmp/last-run && timeouts=$((timeouts + 1))
}

# The console log's complete lines: its last line may be cut mid-write ("mg-count 1" of "mg-count 15"), and a
# count read from it once ended a wait at once and made a counting guest look stalled.
log_lines() {
	virtus vm logs "$1" 2>/dev/null | tr -d '\r' >/tmp/log-lines
	if [ -n "$(tail -c 1 /tmp/log-lines)" ]; then sed '$d' /tmp/log-lines; else cat /tmp/log-lines; fi
}
# A managed VM's balloon as `virtus vm balloon` reports it.
balloon_field() { virtus vm balloon "$1" 2>/dev/null | sed -n "s/^$2 //p"; }
balloon_wait() { # balloon_wait VM MIB: until the guest has given MIB (60 s)
	i=0; until [ "$(balloon_field "$1" actual_mib)" = "$2" ] || [ $i -ge 300 ]; do i=$((i + 1)); sleep 0.2; done
}

for part in $(cat parts 2>/dev/null || echo boot devices network managed snapshot); do
	echo "nested-bed: part $part begins"
	. "./part-$part.sh"
	echo "nested-bed: part $part done"
done
echo "nested-bed: done"
exit 0
