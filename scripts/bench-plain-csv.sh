#!/usr/bin/env bash
# The plain-CSV reader's cost per row (BENCHMARKS.md, "Traces: the plain-CSV reader"):
# instructions counted by callgrind for a `null`-policy run fed 100,000 and then 200,000 rows,
# and the same for the Poisson generator. Needs valgrind.
#   scripts/bench-plain-csv.sh [BIN]      (BIN defaults to target/release/gpushare)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/gpushare}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
functions=$(for i in $(seq 0 99); do printf '[[functions]]\nname = "f%d"\nprofile = "kaas-resnet50"\n\n' "$i"; done)
scenario() { # NAME HORIZON WORKLOAD
  printf 'name = "%s"\n[simulation]\nseed = 1\nhorizon_s = %s\n\n[cluster]\nnodes = 1\ngpus_per_node = 8\ngpu = "a100-40gb"\n\n%s\n[workload]\n%s\n\n[policy]\nname = "null"\n' \
    "$1" "$2" "$functions" "$3" > "$dir/$1.toml"
}
ir() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" run "$dir/$1.toml" --no-invocations --out "$dir/out" -q 2>&1 |
  grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'; }
for rows in 100000 200000; do
  # Exponential gaps at 300 per second over 100 functions, durations 10-200 ms (awk's own seed).
  awk -v n="$rows" 'BEGIN { srand(1); print "time,func,duration"; t = 0;
    for (i = 0; i < n; i++) { t += -log(1 - rand()) / 300; printf "%.6f,f%d,%.6f\n", t, int(rand() * 100), 0.01 + rand() * 0.19 } }' > "$dir/rows$rows.csv"
  scenario "csv$rows" 100000 "kind = \"csv\"
path = \"rows$rows.csv\""
done
scenario poisson100000 333.33 'kind = "poisson"
rate_per_s = 3.0'
scenario poisson200000 666.67 'kind = "poisson"
rate_per_s = 3.0'
arrivals() { grep -o '"arrivals": [0-9]*' "$dir/out/summary.json" | head -1 | grep -o '[0-9]*'; }
for kind in csv poisson; do
  a=$(ir "${kind}100000"); na=$(arrivals)
  b=$(ir "${kind}200000"); nb=$(arrivals)
  echo "$kind: $(( (b - a) / (nb - na) )) instructions per arrival (read + null simulation; $na and $nb arrivals)"
done
