#!/usr/bin/env bash
# The one-call device run (issue 13): on a GPU machine without a Rust toolchain, in one command of
# at most 7 minutes, everything the validation needs —
#   probe → calibrate → the co-location matrix → the quickstart and contention replays under
#   every policy the machine supports (each beside its prediction) → the harness overhead →
#   cleanup — every step under its own timeout, and the results packed after every step into at
#   most 8 files directly under $OUT (one archive with everything, and the key tables and logs),
#   so that a command stopped at its limit still brings back all that was done.
#
#   scripts/device-build.sh                                  # here: build, strip, device-bin/
#   BIN=device-bin/gpushare scripts/device-run.sh h200       # there (the device tool's `run`)
#   EMULATE=1 scripts/device-run.sh dry-run                  # anywhere: no GPU, about 40 s (CI)
#
# Knobs: HORIZON_S and WARMUP_S (each replay's arrivals and warm-up, seconds: the run's length,
# not its load; default 12 and 2), CELL_S (seconds per co-location pair, default 1), OVERHEAD_N
# (invocations per overhead figure, default 100), BUDGET_S (the whole run's limit, default 380:
# a step that would not fit is cut to what is left or skipped, and says so; with the 15 s a
# stopped step may take and the final cleanup, call the device tool with timeout_s = 480 or
# more), ONLY (quickstart or contention),
# SKIP_CALIBRATE=1 (reuse RESULTS/device.toml), RESULTS (where the tables go, default
# reports/validation/LABEL; emulated: out/emulated/LABEL), RAW (the replays' own outputs, default
# out/validation/LABEL), OUT (the pack, default out/device-pack/LABEL; the device tool sets it).
# EMULATE=1 runs the same sequence on the emulated backend with short defaults; its tables say
# they are not measurements and never belong in reports/validation/.
#
# Exit status: 0 when every step that ran succeeded, 1 otherwise (the pack is written either way).
set -uo pipefail
label=${1:?usage: scripts/device-run.sh LABEL}
cd "$(dirname "$0")/.."
bin=${BIN:-device-bin/gpushare}
[ -x "$bin" ] || bin=target/release/gpushare
started=$(date +%s)

if [ -n "${EMULATE:-}" ]; then
  emulate=(--emulate)
  horizon=${HORIZON_S:-2} warmup=${WARMUP_S:-0.5} cell=${CELL_S:-0.05} overhead_n=${OVERHEAD_N:-20}
  budget=${BUDGET_S:-120}
  results=${RESULTS:-out/emulated/$label}
else
  emulate=()
  horizon=${HORIZON_S:-12} warmup=${WARMUP_S:-2} cell=${CELL_S:-1} overhead_n=${OVERHEAD_N:-100}
  budget=${BUDGET_S:-380}
  results=${RESULTS:-reports/validation/$label}
fi
raw=${RAW:-out/validation/$label}
pack=${OUT:-out/device-pack/$label}
log=$results/run.log
steps=$results/steps.tsv
# Nothing of an earlier run is used or packed as this one's (the device profile only with
# SKIP_CALIBRATE).
rm -rf "${raw:?}" "$results/quickstart" "$results/contention"
rm -f "$results"/{probe.json,probe.env,colocation.csv,colocation-kernels.csv,overhead.txt}
[ -n "${SKIP_CALIBRATE:-}" ] || rm -f "$results/device.toml"
mkdir -p "$results" "$raw" "$pack"
find "$pack" -maxdepth 1 -type f -delete
: > "$log"
printf 'step\tstatus\tseconds\n' > "$steps"
failures=0
# This run's own temporary folder: its private MPS daemons' pipes and logs live there, and the
# cleanup reaches those and no other run's.
TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/gpushare-run.XXXXXX")
export TMPDIR

note() { echo "== $*" | tee -a "$log"; }

# step NAME TIMEOUT_S COMMAND…: runs COMMAND under `timeout` (SIGTERM, then SIGKILL 15 s later),
# its output appended to the log, unless less of the budget is left than it needs.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget - ($(date +%s) - started)))
  if [ "$left" -lt 10 ]; then
    note "$name: skipped, the run's budget of ${budget} s is spent"
    printf '%s\tskipped (budget)\t0\n' "$name" >> "$steps"
    return 3
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  note "$name (at most ${limit} s)"
  local t0 rc
  t0=$(date +%s)
  timeout -k 15 "$limit" "$@" >> "$log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" >> "$steps"
  if [ "$rc" -ne 0 ]; then
    failures=$((failures + 1))
    note "$name: failed (exit $rc$([ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo ', timed out'))"
    # A command killed at its limit had no chance to quit its MPS daemon or end its workers.
    { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && reap
  fi
  pack_results
  return "$rc"
}

# Quits this run's leftover private MPS daemons and kills leftover workers.
reap() {
  for p in "$TMPDIR"/gpushare-mps-*/pipe; do
    [ -d "$p" ] || continue
    echo quit | CUDA_MPS_PIPE_DIRECTORY=$p timeout 10 "${GPUSHARE_MPS_CONTROL:-nvidia-cuda-mps-control}" >/dev/null 2>&1 &&
      note "cleanup: told a leftover MPS daemon ($p) to quit"
  done
  pkill -KILL -f -- "$bin replay-worker" 2>/dev/null && note "cleanup: killed leftover workers"
}

# Packs what there is into $pack: the archive and the key files (at most 8 files).
pack_results() {
  tar -czf "$pack/validation-$label.tar.gz.tmp" "$results" "$raw" 2>/dev/null &&
    mv "$pack/validation-$label.tar.gz.tmp" "$pack/validation-$label.tar.gz"
  rm -f "$pack/validation-$label.tar.gz.tmp"
  for f in probe.json device.toml colocation.csv run.log steps.tsv; do
    [ -f "$results/$f" ] && cp "$results/$f" "$pack/$f"
  done
  for s in quickstart contention; do
    [ -f "$results/$s/comparison.md" ] && cp "$results/$s/comparison.md" "$pack/$s-comparison.md"
  done
}

# Whatever happens: no MPS daemon or worker outlives the run, and the results are packed.
cleanup() {
  reap
  note "finished after $(($(date +%s) - started)) s with $failures failed step(s)"
  pack_results
  rm -rf "$TMPDIR"
  local n
  n=$(find "$pack" -maxdepth 1 -type f | wc -l)
  if [ "$n" -gt 8 ]; then
    echo "error: $n files in $pack; the device tool returns 8" >&2
    failures=$((failures + 1))
  fi
  echo "packed $n files into $pack:" && ls -l "$pack"
}
trap 'exit 130' INT TERM
trap 'rc=$?; cleanup; [ "$failures" -eq 0 ] && exit "$rc"; exit 1' EXIT

# 1. What this machine can do (without MPS if the full probe hangs).
step probe 150 "$bin" probe --gpu 0 "${emulate[@]}" --out "$results/probe.json" --env "$results/probe.env" --timeout-s 60 ||
  [ -f "$results/probe.env" ] ||
  step probe-without-mps 90 "$bin" probe --gpu 0 "${emulate[@]}" --no-mps --out "$results/probe.json" \
    --env "$results/probe.env" --timeout-s 60
if [ ! -f "$results/probe.env" ]; then
  note "no probe result: nothing else can run"
  exit 1
fi
# shellcheck disable=SC1091
. "$results/probe.env"
if [ "$PROBE_CONTEXT" != 1 ]; then
  note "no worker context comes up here: nothing else can run (see probe.json)"
  exit 1
fi
no_mps=()
[ "$PROBE_MPS" = 1 ] || no_mps=(--no-mps)
[ "$PROBE_CUBLAS" = 1 ] ||
  note "no cuBLAS loads here (probe.json says where it looked): GEMM-like phases will replay as spin kernels"

# 2. The device profile.
if [ -n "${EMULATE:-}" ]; then
  profile='cluster.gpu="h100-80gb"'
  sizing=()
else
  if [ -z "${SKIP_CALIBRATE:-}" ]; then
    step calibrate 180 "$bin" calibrate --gpu 0 "${no_mps[@]}" --out "$results/device.toml" || true
  fi
  if [ ! -f "$results/device.toml" ]; then
    note "no device profile: nothing else can run"
    exit 1
  fi
  # Scenario files resolve a relative profile path beside themselves (scenarios/validation/).
  case $results in
    /*) profile="cluster.gpu={ profile = \"$results/device.toml\" }" ;;
    *) profile="cluster.gpu={ profile = \"../../$results/device.toml\" }" ;;
  esac
  sizing=(--calibration "$results/device.toml")
fi

policy_table() {
  local pool='keep_alive_s = 100000.0, max_instances = 1, prewarm = true'
  case $1 in
    exclusive | time-sharing | sage) echo "{ name = \"$1\", $pool }" ;;
    mps) echo "{ name = \"mps\", $pool, active_thread_percentage = 50, max_sm_sum = 2.0 }" ;;
    kaas) echo '{ name = "kaas" }' ;;
  esac
}

# 3. The co-location matrix (about 90 s on a GPU at CELL_S=1), before the replays so that the
# budget never cuts it.
step colocate 180 "$bin" colocate --gpu 0 "${sizing[@]}" "${emulate[@]}" "${no_mps[@]}" --label "$label" \
  --cell-s "$cell" --out "$results"

# 4. Each scenario under each policy the machine supports: the prediction, then the measurement.
for scenario in ${ONLY:-quickstart contention}; do
  case $scenario in
    quickstart) policies="exclusive time-sharing mps kaas sage" ;;
    contention) policies="time-sharing mps kaas sage" ;; # exclusive needs four GPUs
  esac
  rm -rf "${raw:?}/$scenario"
  for p in $policies; do
    if [ "$p" = mps ] && [ "$PROBE_MPS" != 1 ]; then
      note "$scenario/$p: skipped, no MPS here (probe.json says why)"
      continue
    fi
    if [ "$p" = time-sharing ] && [ "$PROBE_TIME_SLICING" != 1 ]; then
      note "$scenario/$p: skipped, processes cannot share the GPU here (probe.json says why)"
      continue
    fi
    table=$(policy_table "$p")
    knobs=(--set "$profile" --set "simulation.horizon_s=$horizon" --set "simulation.warmup_s=$warmup" --set "policy=$table")
    step "$scenario/$p/predict" 60 "$bin" run "scenarios/validation/$scenario.toml" "${knobs[@]}" --out "$raw/$scenario/sim/$p" -q ||
      continue
    # The limit leaves room for the workers' 120 s set-up timeout to speak first.
    if ! step "$scenario/$p/replay" "$(awk "BEGIN{print int($horizon + $warmup + 150)}")" "$bin" replay \
      "scenarios/validation/$scenario.toml" --set "$profile" --set "simulation.horizon_s=$horizon" \
      --set "simulation.warmup_s=$warmup" "${emulate[@]}" --policy "$table" --out "$raw/$scenario/replay/$p"; then
      # Kept (its replay.json says why it stopped) but out of the comparison.
      mkdir -p "$raw/$scenario/failed"
      [ -d "$raw/$scenario/replay/$p" ] && mv "$raw/$scenario/replay/$p" "$raw/$scenario/failed/$p"
    fi
  done
  if [ -d "$raw/$scenario/replay" ]; then
    step "$scenario/compare" 30 "$bin" replay-compare "$raw/$scenario/sim" "$raw/$scenario/replay" --out "$results/$scenario"
    for r in "$raw/$scenario"/replay/*/; do
      p=$(basename "$r")
      cp "$r/replay.json" "$results/$scenario/replay-$p.json" 2>/dev/null
      cp "$r/summary.json" "$results/$scenario/summary-$p.json" 2>/dev/null
    done
  fi
done

# 5. What the harness adds to an invocation.
: > "$results/overhead.txt"
for f in kaas-resnet50 kaas-cgemm kaas-jacobi; do
  step "overhead/$f" 60 bash -c 'set -o pipefail; "$@" | tee -a "'"$results/overhead.txt"'"' _ \
    "$bin" replay-overhead --gpu 0 "${sizing[@]}" "${emulate[@]}" --function "$f" --n "$overhead_n"
done
exit 0
