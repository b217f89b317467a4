#!/usr/bin/env bash
# The 1 h engine reference fed from a plain CSV against the same scenario from the Poisson
# generator (BENCHMARKS.md, "Traces: the plain-CSV reader"; issue 16 item 1): instructions in
# `Simulation::run` (callgrind) and wall time (median of 7 alternating runs on one core).
# The CSV holds Poisson arrivals at the reference's rates (100 functions, 1/s each, 1 h),
# drawn by awk with its own seed, so its count differs slightly from the generator's.
#   scripts/bench-csv-reference.sh [BIN]      (BIN defaults to target/release/gpushare)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/gpushare}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
awk 'BEGIN { srand(1); for (f = 0; f < 100; f++) { t = 0; while (1) { t += -log(1 - rand()); if (t >= 3600) break;
  printf "%.6f,fn-%02d\n", t, f } } }' | sort -t, -k1,1g | { echo "time,func"; cat; } > "$dir/ref1h.csv"
sed -e "s|kind = \"poisson\"|kind = \"csv\"\npath = \"$dir/ref1h.csv\"|" -e 's/^rate_per_s = 1.0$//' \
  scenarios/bench/reference_1h.toml > "$dir/ref1h_csv.toml"
for s in scenarios/bench/reference_1h.toml "$dir/ref1h_csv.toml"; do
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$bin" run "$s" --no-invocations --out "$dir/out" -q >/dev/null 2>&1
  ir=$(callgrind_annotate --inclusive=yes "$dir/cg.out" | grep -E 'engine::Simulation::run$' | head -1 | awk '{print $1}' | tr -d ,)
  n=$(grep -o '"arrivals": [0-9]*' "$dir/out/summary.json" | head -1 | grep -o '[0-9]*')
  echo "$s: $ir instructions in Simulation::run, $n invocations, $(( ir / n )) per invocation"
done
for i in $(seq 7); do
  for s in scenarios/bench/reference_1h.toml "$dir/ref1h_csv.toml"; do
    taskset -c 0 "$bin" run "$s" --no-invocations --out "$dir/out" | grep -o 'in [0-9.]* s wall' | sed "s|^|$(basename "$s") |"
  done
done | sort | awk '{ t[$1] = t[$1] " " $3 } END { for (k in t) print k ":" t[k] }'
