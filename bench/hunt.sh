#!/usr/bin/env bash
# Offline Sigma hunt benchmark: all SigmaHQ rules over the EVTX attack
# samples, through `mimamori_detect::cli::run_hunt` (the code behind
# `mimamori hunt`) built in release as the `hunt` example, so the server
# binary (DataFusion) need not be built. Reports wall time, peak RSS
# (/usr/bin/time -v) and the detection count per run, then the SigmaHQ
# regression check over sigma/regression_data when its script is present.
#
# usage: bench/hunt.sh [RULES_DIR] [INPUT] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
CORPORA=${MIMAMORI_CORPORA:-../shared/corpora}
RULES=${1:-$CORPORA/sigma/rules}
INPUT=${2:-$CORPORA/evtx/attack-samples}
RUNS=${3:-3}
cargo build --release -q -p mimamori-detect --example hunt
BIN=${CARGO_TARGET_DIR:-target}/release/examples/hunt
OUT=$(mktemp)
trap 'rm -f "$OUT" "$OUT.err" "$OUT.reg"' EXIT
WALLS=()
for i in $(seq 1 "$RUNS"); do
  /usr/bin/time -v "$BIN" --quiet --rules "$RULES" "$INPUT" > "$OUT" 2> "$OUT.err"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT.err")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT.err")
  echo "run $i: wall ${wall}, peak RSS $((rss / 1024)) MB, $(wc -l < "$OUT") detections"
  WALLS+=("$(echo "$wall" | awk -F: '{print $(NF-1) * 60 + $NF}')")
done
# The machine is shared: the minimum is the run least disturbed by others.
printf '%s\n' "${WALLS[@]}" | sort -n | awk '{a[NR] = $1} END {printf "wall: min %.2f s, median %.2f s over %d runs\n", a[1], a[int((NR + 1) / 2)], NR}'
echo "load average during the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -E '^(rules|hunt):' "$OUT.err"
CHECK=../shared/bench/sigma/regression_check.py
if [ -f "$CHECK" ]; then
  "$BIN" --quiet --rules "$CORPORA/sigma/rules" --rules "$CORPORA/sigma/rules-extra" \
    "$CORPORA/sigma/regression_data" > "$OUT.reg" 2>/dev/null
  python3 "$CHECK" "$CORPORA/sigma" "$OUT.reg"
fi
