#!/usr/bin/env bash
# Sweep memory benchmark (BENCHMARKS.md): sweeps of a tiny scenario (one client on one GPU, the
# exclusive policy, a 1 s horizon) with 10^3, 10^4 and 10^5 runs (100 or 1000 points of a
# rate axis × 10 or 100 seeds); prints each sweep's peak resident memory (/usr/bin/time's %M)
# and wall time, for this tree's binary and, if given, another one (e.g. one built before the
# change), and checks that both write the same files. Each run writes its own folder (about 20 KB,
# 5 files): 10^5 runs take about 2 GB under a temporary folder, removed as it goes.
# A last line plans 10^6 runs (1000 points × 1000 seeds) and runs shard 1 of 100 of them, for
# a plan of a million runs without a million runs' folders.
# Usage: scripts/bench-sweep-memory.sh [BEFORE_BINARY] [JOBS]   (JOBS default 2)
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"
before=${1:-}
if [ -n "$before" ]; then before=$(realpath "$before"); fi
jobs=${2:-2}
bench_setup 1
after=$(realpath "$bin")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/tiny.toml" <<'EOF'
name = "bench-tiny"
[simulation]
seed = 1
horizon_s = 1.0
[cluster]
nodes = 1
gpus_per_node = 1
gpu = "a100-80gb"
[[functions]]
name = "c"
profile = "kaas-resnet50"
count = 1
rate_per_s = 10.0
[workload]
kind = "poisson"
[policy]
name = "exclusive"
EOF
machine ", $(df -h "$tmp" | awk 'NR == 2 {print $4}') free under $tmp"

# sweep NAME BINARY POINTS SEEDS [MORE…]: runs the sweep into $tmp/NAME; prints "KiB seconds".
sweep() {
  local name=$1 b=$2 points=$3 seeds=$4
  shift 4
  /usr/bin/time -f "%M %e" -o "$tmp/time" "$b" sweep "$tmp/tiny.toml" -q -j "$jobs" --seeds "$seeds" \
    --axis "functions[0].rate_per_s=$(seq -s, 1 "$points")" --out "$tmp/$name" "$@" > /dev/null
  cat "$tmp/time"
}

printf '%-9s %-7s %-6s %14s %10s  %s\n' runs points seeds "peak RSS KiB" "wall s" binary
for size in "1000 100 10" "10000 1000 10" "100000 1000 100"; do
  read -r runs points seeds <<< "$size"
  read -r kib s <<< "$(sweep after "$after" "$points" "$seeds")"
  printf '%-9s %-7s %-6s %14s %10s  %s\n' "$runs" "$points" "$seeds" "$kib" "$s" after
  if [ -n "$before" ]; then
    read -r kib s <<< "$(sweep before "$before" "$points" "$seeds")"
    same=$(diff -r -q "$tmp/before" "$tmp/after" > /dev/null && echo "same files" || echo "FILES DIFFER")
    printf '%-9s %-7s %-6s %14s %10s  %s\n' "$runs" "$points" "$seeds" "$kib" "$s" "before ($same)"
  fi
  rm -rf "$tmp/before" "$tmp/after"
done
read -r kib s <<< "$(sweep shard "$after" 1000 1000 --shard 1/100)"
printf '%-9s %-7s %-6s %14s %10s  %s\n' 1000000 1000 1000 "$kib" "$s" "after, shard 1/100 (10000 runs)"
