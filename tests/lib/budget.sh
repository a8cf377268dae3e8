# The time a suite may give its next nested-bed boot (sourced; bash). tests/run sets SUITE_END (seconds
# since the epoch) for every suite; a boot is sized to end 45 s before it, so that the suite still reports
# what the boot saw instead of being stopped with nothing said.
# bed_time WANT: prints WANT, or less when SUITE_END is near; false (printing 0) when under 180 s are left.
bed_time() {
	local want=$1 left
	[ -n "${SUITE_END:-}" ] || { echo "$want"; return 0; }
	left=$((SUITE_END - $(date +%s) - 45))
	[ "$left" -lt "$want" ] && want=$left
	[ "$want" -ge 180 ] || { echo 0; return 1; }
	echo "$want"
}
