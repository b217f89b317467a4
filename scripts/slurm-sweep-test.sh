#!/usr/bin/env bash
# The README's Slurm-array recipe ("Sweeps and figures") end to end, sized for a small machine:
# writes the array script (array 1-4, --cpus-per-task=1, --jobs 1, --shard ${SLURM_ARRAY_TASK_ID}/4,
# the binary's and the scenario's paths absolute, the shards under a temporary folder), submits
# it with `sbatch --wait`, runs the recipe's `gpushare merge results/shard-* --out results/all &&
# gpushare plot results/all`, and checks that the merged folder is byte-identical, file for file
# (runs.csv, summary.csv, sweep.json, every runs/NNNN/), to what one unsharded `gpushare sweep`
# of the same file writes — what `merge` promises (tests/sweep.rs). Prints the timings.
# Builds nothing: BIN is the binary (default target/release/gpushare).
#   scripts/slurm-local.sh && scripts/slurm-sweep-test.sh && scripts/slurm-local.sh stop
#   DRY_RUN=1 scripts/slurm-sweep-test.sh     # no Slurm: runs the array script's body once per
#                                             # task id with SLURM_ARRAY_TASK_ID set
# Knobs: BIN, SCENARIO (default scenarios/sweeps/policies_vs_load.toml, 90 runs, about 5 s of
# work on one core), SHARDS (default 4), KEEP=1 (keep the temporary folder; its path is printed),
# SLURM_CONF (default /tmp/gpushare-slurm/slurm.conf, scripts/slurm-local.sh's, when it exists).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${BIN:-target/release/gpushare}")
scenario=$(realpath "${SCENARIO:-scenarios/sweeps/policies_vs_load.toml}")
shards=${SHARDS:-4}
[ -x "$bin" ] || { echo "no binary at $bin: cargo build --release first (or set BIN)" >&2; exit 1; }
if [ -z "${SLURM_CONF:-}" ] && [ -f /tmp/gpushare-slurm/slurm.conf ]; then
  export SLURM_CONF=/tmp/gpushare-slurm/slurm.conf
fi
tmp=$(mktemp -d /tmp/gpushare-slurm-sweep.XXXXXX)
if [ -n "${KEEP:-}" ]; then echo "keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f s", b - a }'; }

# The README's script, adapted: fewer tasks and threads, absolute paths, its own folder.
cat > "$tmp/sweep-array.sh" <<EOF
#!/bin/bash
#SBATCH --array=1-$shards --cpus-per-task=1
#SBATCH --job-name=gpushare-sweep --chdir=$tmp --output=$tmp/slurm-%A_%a.out
$bin sweep $scenario --jobs 1 \\
  --shard \${SLURM_ARRAY_TASK_ID}/$shards --out results/shard-\${SLURM_ARRAY_TASK_ID}
EOF
echo "== the array script ($tmp/sweep-array.sh)"
cat "$tmp/sweep-array.sh"

t=$(now)
if [ -n "${DRY_RUN:-}" ]; then
  echo "== dry run: the script's body once per task id, one after the other (no Slurm)"
  for i in $(seq "$shards"); do
    (cd "$tmp" && SLURM_ARRAY_TASK_ID=$i bash "$tmp/sweep-array.sh" > "$tmp/slurm-dry_$i.out" 2>&1)
  done
  how="dry run of $shards tasks"
else
  command -v sbatch >/dev/null || { echo "no sbatch: start scripts/slurm-local.sh, or DRY_RUN=1" >&2; exit 1; }
  if ! scontrol ping >/dev/null 2>&1; then
    echo "Slurm's controller does not answer (SLURM_CONF=${SLURM_CONF:-unset}):" >&2
    scontrol ping >&2 || true
    echo "start one with scripts/slurm-local.sh, or run with DRY_RUN=1" >&2
    exit 1
  fi
  echo "== sbatch --wait (SLURM_CONF=${SLURM_CONF:-default})"
  sbatch --wait "$tmp/sweep-array.sh"
  how="Slurm array of $shards tasks (sbatch --wait)"
fi
shard_time=$(since "$t")
echo "== the tasks' output"
for f in "$tmp"/slurm-*.out; do echo "-- $(basename "$f")"; cat "$f"; done

echo "== merge and plot, as the README's last line"
t=$(now)
(cd "$tmp" && "$bin" merge results/shard-* --out results/all)
merge_time=$(since "$t")
# The comparison comes before `plot`, which adds results/all/figures/.
echo "== the same sweep, unsharded"
t=$(now)
"$bin" sweep "$scenario" --jobs 1 -q --out "$tmp/whole"
whole_time=$(since "$t")

echo "== comparison: merged shards against the unsharded sweep"
files=$(cd "$tmp/whole" && find . -type f | wc -l)
status=0
if cmp "$tmp/whole/runs.csv" "$tmp/results/all/runs.csv"; then
  echo "runs.csv: byte-identical ($(($(wc -l < "$tmp/whole/runs.csv") - 1)) runs, $(wc -c < "$tmp/whole/runs.csv") bytes)"
else
  echo "runs.csv: DIFFERENT"; status=1
fi
if diff -r "$tmp/whole" "$tmp/results/all" > "$tmp/diff.txt"; then
  echo "every file: byte-identical ($files files: runs.csv, summary.csv, sweep.json, runs/NNNN/*)"
else
  echo "the trees DIFFER:"; head -20 "$tmp/diff.txt"; status=1
fi

t=$(now)
(cd "$tmp" && "$bin" plot results/all)
plot_time=$(since "$t")
figures=$(find "$tmp/results/all/figures" -name '*.svg' | wc -l)
echo "plot: $figures SVG figures in results/all/figures"
[ "$figures" -gt 0 ] || status=1

echo "== timings"
echo "shards ($how): $shard_time; merge: $merge_time; plot: $plot_time; unsharded sweep on 1 thread: $whole_time"
[ "$status" -eq 0 ] && echo "PASS" || echo "FAIL"
exit "$status"
