#!/bin/sh
# run-one.sh BUILD_DIR FUZZ_DIR TARGET: run one fuzzer for $SECONDS seconds
# on its committed seeds; print one summary line; exit non-zero on a crash.
set -u
b=$1 dir=$2 t=$3 secs=${SECONDS:-60}
work=$b/corpus/$t
log=$b/logs/$t.log
mkdir -p "$work" "$b/logs" "$b/crashes"
dict=
[ -f "$dir/dict/$t.dict" ] && dict=-dict=$dir/dict/$t.dict
# The fuzzer's own leak check is on (-detect_leaks=1 by default).
"$b/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$b/crashes/$t-" $dict "$work" "$dir/corpus/$t" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
if [ "$rc" -ne 0 ]; then
	echo "fuzz $t: CRASH (exit $rc) after ${execs:-?} execs; log: $log" >&2
	grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant broken|.*runtime error)' "$log" | head -n 5 >&2
	grep -E 'Test unit written to' "$log" >&2
	echo "reproduce: $b/$t <that file>" >&2
	exit 1
fi
echo "fuzz $t: ${execs:-?} execs in ${took:-$secs} s, no crash"
