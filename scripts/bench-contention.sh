#!/usr/bin/env bash
# Contention benchmark (BENCHMARKS.md): k MPS clients per GPU, each busy, on 8 A100s
# (scenarios/bench/mps_colocation.toml), for k = 1, 10, 40. Prints, per k, the median wall-clock
# speed over RUNS runs of 60 simulated seconds pinned to one core, and (with valgrind) the
# instructions per completion in Simulation::run over 5 simulated seconds — the stable figure.
# Usage: scripts/bench-contention.sh [RUNS]   (default 5)
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
bench_setup 5 "$@"
machine
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for k in 1 10 40; do
  sets=(--set "functions[0].count=$((8 * k))" --set "policy.active_thread_percentage=$(awk -v k="$k" 'BEGIN { print 100 / k }')")
  speeds=()
  for _ in $(seq "$runs"); do
    line=$($pin "$bin" run scenarios/bench/mps_colocation.toml --no-invocations --out "$out/run" "${sets[@]}" | grep '^performance')
    speeds+=("$(echo "$line" | grep -oE '[0-9.]+ M invocations/s' | awk '{print $1}')")
  done
  median=$(echo "${speeds[@]}" | median)
  per=""
  if command -v valgrind >/dev/null; then
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" run scenarios/bench/mps_colocation.toml \
      --no-invocations --out "$out/cgrun" --set simulation.horizon_s=5 "${sets[@]}" >"$out/cg.txt" 2>/dev/null
    done_n=$(grep -oE '= [0-9]+ completed' "$out/cg.txt" | awk '{print $2}')
    instr=$(callgrind_annotate --inclusive=yes "$out/cg" 2>/dev/null | grep -E 'engine::Simulation::run( \[|$)' | head -1 | awk '{gsub(",", "", $1); print $1}')
    per=$(awk -v i="$instr" -v n="$done_n" 'BEGIN { printf "%.0f", i / n }')
  fi
  echo "k = $k clients per GPU: median ${median} M invocations/s over $runs runs; ${per:-n/a} instructions per completion"
done
