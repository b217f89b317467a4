#!/usr/bin/env bash
# Builds what a device run carries (issue 13): the release binary, stripped, alone in device-bin/
# (ignored through .git/info/exclude, so it travels only when `carry` names it), and checks that
# what travels fits — the carried folder at most 20 MB, the repository's own files far under the
# device tool's 64 MiB (at most 16 MiB). Then, with the device tool:
#   run  command: BIN=device-bin/gpushare scripts/device-run.sh h200   carry: ["device-bin"]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
mkdir -p device-bin
strip -o device-bin/gpushare target/release/gpushare
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/device-bin/' "$exclude" 2>/dev/null || echo '/device-bin/' >>"$exclude"
carried=$(du -sb device-bin | cut -f1)
tree=$(git ls-files -z | du --files0-from=- -cb 2>/dev/null | tail -1 | cut -f1)
echo "device-bin: $carried bytes (limit 20000000); tracked files: $tree bytes (limit 16777216)"
[ "$carried" -le 20000000 ] || { echo "error: device-bin is over 20 MB" >&2; exit 1; }
[ "$tree" -le 16777216 ] || { echo "error: the tracked files are over 16 MiB" >&2; exit 1; }
