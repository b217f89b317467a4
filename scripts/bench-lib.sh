# What the bench-*.sh scripts share (sourced by them, not run): their set-up and figures.

# bench_setup DEFAULT_RUNS [RUNS]: from the repository root, builds the release binary; sets
# `bin` (it), `runs` (RUNS, else DEFAULT_RUNS) and `pin` (the command prefix that pins a run to
# one core, empty without taskset).
bench_setup() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  runs=${2:-$1}
  cargo build --release -q
  bin=target/release/gpushare
  pin=""
  if command -v taskset >/dev/null; then pin="taskset -c 0"; fi
}

# machine [MORE]: prints the machine line: cores and CPU model, then MORE.
machine() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)${1:-}"
}

# median: the median of the numbers on stdin (whitespace-separated; the upper one of an even count).
median() {
  tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'
}
