#!/usr/bin/env bash
# Sweep benchmark (BENCHMARKS.md): the bundled sweep (scenarios/sweeps/policies_vs_load.toml,
# 90 runs) on 1 and on 2 threads, RUNS times each, alternating; prints the median wall time of
# each and the speed-up.
# Usage: scripts/bench-sweep.sh [RUNS]   (default 5)
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
bench_setup 5 "$@"
scenario=scenarios/sweeps/policies_vs_load.toml
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
machine
declare -A walls
for _ in $(seq "$runs"); do
  for j in 1 2; do
    start=$(date +%s.%N)
    "$bin" sweep "$scenario" -q -j "$j" --out "$out/j$j" > /dev/null
    end=$(date +%s.%N)
    walls[$j]+="$(echo "$end - $start" | bc) "
  done
done
m1=$(echo "${walls[1]}" | median)
m2=$(echo "${walls[2]}" | median)
cmp -s "$out/j1/runs.csv" "$out/j2/runs.csv" && same="identical" || same="DIFFERENT"
awk -v a="$m1" -v b="$m2" -v n="$runs" -v s="$same" 'BEGIN {
  printf "sweep of 90 runs: median %.3f s on 1 thread, %.3f s on 2 threads over %d runs each: speed-up %.2fx (runs.csv %s)\n", a, b, n, a / b, s }'
