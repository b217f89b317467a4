#!/usr/bin/env bash
# Fuzzes one target with AFL++ for EXECS executions (default 1,000,000) and prints its figures.
#   fuzz/run.sh TARGET [EXECS]      TARGET: scenario plain_csv azure2019 azure2021 llm
# Needs `cargo install cargo-afl` (builds AFL++ once). Findings go to fuzz/out/TARGET/
# (ignored by git); a crash is a file under fuzz/out/TARGET/default/crashes/ — reproduce it with
#   cargo afl run --release --bin TARGET < FILE     (or: target/release/TARGET < FILE)
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET [EXECS]}
execs=${2:-1000000}
[ -d "corpus/$target" ] || { echo "no corpus/$target: targets are $(ls corpus | tr '\n' ' ')" >&2; exit 2; }
cargo afl build --release --bin "$target" >/dev/null
out="out/$target"
rm -rf "$out"
mkdir -p out
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_QUIET=1
# -t: 1 s per execution before it counts as a hang; -E: stop after that many executions.
started=$(date +%s)
cargo afl fuzz -i "corpus/$target" -o "$out" -t 1000 -E "$execs" "target/release/$target" >"$out.log" 2>&1 || {
  echo "afl-fuzz failed; see fuzz/$out.log" >&2
  tail -20 "$out.log" >&2
  exit 1
}
stats="$out/default/fuzzer_stats"
get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
echo "$target: $(get execs_done) executions in $(( $(date +%s) - started )) s ($(get execs_per_sec) /s), $(get corpus_count) inputs in the corpus, edges found $(get edges_found) of $(get total_edges), crashes $(get saved_crashes), hangs $(get saved_hangs)"
[ "$(get saved_crashes)" = 0 ]
