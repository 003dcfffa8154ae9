#!/bin/sh
# tools/fuzz.sh FUZZER [SECONDS] - runs a libFuzzer target for a bounded
# time (default 30 s) from the corpus in test/fuzz/corpus/ (new inputs go
# to a scratch directory, not into the repository) and prints one line:
# executions, coverage (edges, features) and corpus size. Fails when the
# fuzzer found a crash, a leak or undefined behaviour.
set -u
fuzzer=$1
secs=${2:-30}
cd "$(dirname "$0")/.." || exit 2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$fuzzer" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$work/" \
    "$work" test/fuzz/corpus >"$work/log" 2>&1
status=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
last=$(grep -E '^#[0-9]+' "$work/log" | tail -n 1)
cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/log"
    echo "fuzz: $(basename "$fuzzer") FAILED after ${execs:-?} executions (status $status)"
    exit 1
fi
echo "fuzz: $(basename "$fuzzer"): ${execs:-?} executions in ${secs} s, coverage ${cov:-?} edges" \
    "(${ft:-?} features), corpus ${corp:-?}; nothing found"
