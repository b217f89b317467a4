#!/usr/bin/env bash
# Engine benchmark (BENCHMARKS.md): runs the reference scenarios RUNS times each on one core and
# prints min / median / max wall time, invocations per second and peak resident memory.
# Usage: scripts/bench-engine.sh [RUNS]   (default 7)
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
bench_setup 7 "$@"
machine ", $(free -g | awk '/Mem:/ {print $2}') GiB"
for scenario in scenarios/bench/reference_1h.toml scenarios/bench/reference_24h.toml; do
  out=$(mktemp -d)
  walls=(); rss=0; n=0
  for _ in $(seq "$runs"); do
    line=$($pin "$bin" run "$scenario" --no-invocations --out "$out" | grep '^performance')
    n=$(echo "$line" | awk '{print $2}')
    walls+=("$(echo "$line" | grep -oE 'in [0-9.]+ s' | awk '{print $2}')")
    r=$(echo "$line" | grep -oE 'peak RSS [0-9]+' | awk '{print $3}')
    [ "$r" -gt "$rss" ] && rss=$r
  done
  rm -rf "$out"
  sorted=$(printf '%s\n' "${walls[@]}" | sort -g)
  min=$(echo "$sorted" | head -1); max=$(echo "$sorted" | tail -1)
  med=$(echo "$sorted" | median)
  awk -v s="$scenario" -v n="$n" -v a="$min" -v m="$med" -v b="$max" -v r="$rss" -v k="$runs" 'BEGIN {
    printf "%s: %d invocations; wall min %.3f / median %.3f / max %.3f s over %d runs; median %.2f M invocations/s (best %.2f); peak RSS %d MiB\n",
      s, n, a, m, b, k, n / m / 1e6, n / a / 1e6, r }'
done
