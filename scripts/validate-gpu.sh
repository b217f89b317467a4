#!/usr/bin/env bash
# The real-GPU validation (issue 7): calibrate GPU 0, then for each validation scenario and each
# policy the machine supports, simulate (the prediction) and replay (the measurement), and set
# them side by side. Everything it measures lands under reports/validation/LABEL/.
#
#   scripts/validate-gpu.sh LABEL                 # e.g. h100-sxm
#   BIN=path/to/gpushare ONLY=quickstart scripts/validate-gpu.sh LABEL
#
# BIN: the gpushare binary (default target/release/gpushare; the machine needs no Rust
# toolchain). ONLY: one scenario (quickstart or contention). SKIP_CALIBRATE=1 reuses
# reports/validation/LABEL/device.toml. TIME_SCALE: replay (and simulate) arrivals that many
# times faster (default 1: each replay lasts the scenario's 60 s). EMULATE=1: no GPU, no
# calibration, the emulated backend (a dry run of this script; its tables are not measurements).
# NO_OVERHEAD=1 skips the closing harness-overhead benchmark.
set -euo pipefail
label=${1:?usage: scripts/validate-gpu.sh LABEL}
bin=${BIN:-target/release/gpushare}
scale=${TIME_SCALE:-1}
cd "$(dirname "$0")/.."
dir=reports/validation/$label
mkdir -p "$dir"

emulate=()
if [ -n "${EMULATE:-}" ]; then
  emulate=(--emulate)
  profile="cluster.gpu=\"h100-80gb\""
else
  if [ -z "${SKIP_CALIBRATE:-}" ]; then
    "$bin" calibrate --gpu 0 --out "$dir/device.toml" 2>&1 | tee "$dir/calibrate.log"
  fi
  # Scenario files resolve the profile beside themselves (scenarios/validation/).
  profile="cluster.gpu={ profile = \"../../$dir/device.toml\" }"
fi

policy_table() {
  local pool='keep_alive_s = 100000.0, max_instances = 1, prewarm = true'
  case $1 in
    exclusive|time-sharing|sage) echo "{ name = \"$1\", $pool }" ;;
    mps) echo "{ name = \"mps\", $pool, active_thread_percentage = 50, max_sm_sum = 2.0 }" ;;
    kaas) echo '{ name = "kaas" }' ;;
  esac
}

for scenario in ${ONLY:-quickstart contention}; do
  case $scenario in
    quickstart) policies="exclusive time-sharing mps kaas sage" ;;
    contention) policies="time-sharing mps kaas sage" ;;  # exclusive needs four GPUs
  esac
  out=out/validation/$label/$scenario
  rm -rf "$out"
  : > "$dir/$scenario.log"
  for p in $policies; do
    table=$(policy_table "$p")
    set -- --set "$profile" --set "simulation.load_scale=$scale" \
      --set "simulation.horizon_s=$(awk "BEGIN{print 60/$scale}")" --set "simulation.warmup_s=$(awk "BEGIN{print 5/$scale}")"
    echo "== $scenario / $p" | tee -a "$dir/$scenario.log"
    "$bin" run "scenarios/validation/$scenario.toml" "$@" --set "policy=$table" --out "$out/sim/$p" -q
    if ! "$bin" replay "scenarios/validation/$scenario.toml" "$@" "${emulate[@]}" --policy "$table" --out "$out/replay/$p" >>"$dir/$scenario.log" 2>&1; then
      echo "$p: not replayed on this machine (see $dir/$scenario.log)" | tee -a "$dir/$scenario.log"
      rm -rf "$out/replay/$p"
    fi
  done
  "$bin" compare "$out/sim" "$out/replay" --out "$dir/$scenario"
  # Keep each replay's own report beside the tables.
  for r in "$out"/replay/*/; do
    p=$(basename "$r")
    cp "$r/replay.json" "$dir/$scenario/replay-$p.json"
    cp "$r/summary.json" "$dir/$scenario/summary-$p.json"
  done
done
if [ -n "${NO_OVERHEAD:-}" ]; then
  exit 0
fi
if [ -n "${EMULATE:-}" ]; then
  cal=(--emulate)
else
  cal=(--calibration "$dir/device.toml")
fi
: > "$dir/overhead.txt"
for f in kaas-resnet50 kaas-cgemm kaas-jacobi; do
  "$bin" replay-overhead --gpu 0 "${cal[@]}" --function "$f" --n 200 | tee -a "$dir/overhead.txt"
done
