#!/usr/bin/env bash
# Offline Sigma hunt benchmark of the shipped binary: builds `mimamori` in
# release (`cargo build --release --bin mimamori`, from the workspace root)
# and times what a user types,
#   mimamori hunt --rules RULES_DIR --format jsonl INPUT > hits.jsonl
# (all SigmaHQ rules over the EVTX attack samples by default), RUNS times
# under /usr/bin/time -v. Reports wall time, CPU (user+sys), peak RSS and the
# detection count per run, the load average, the binary's own summary lines,
# then the SigmaHQ regression check over sigma/regression_data (through the
# same binary) when its script is present.
#
# The `hunt` example of mimamori-detect is kept for profiling the library
# alone (perf, massif); its figures are not the product's and this script
# does not use it.
#
# usage: bench/hunt.sh [RULES_DIR] [INPUT] [RUNS=3]
#   MIMAMORI_CORPORA=DIR        the corpora (default ../shared/corpora); the
#                               regression check is DIR/../bench/sigma/regression_check.py
#   MIMAMORI=/path/to/mimamori  time that binary instead of building one
#   THREADS=N                   pass --threads N (default: one per core)
set -euo pipefail
cd "$(dirname "$0")/.."
CORPORA=${MIMAMORI_CORPORA:-../shared/corpora}
RULES=${1:-$CORPORA/sigma/rules}
INPUT=${2:-$CORPORA/evtx/attack-samples}
RUNS=${3:-3}
if [ -z "${MIMAMORI:-}" ]; then
  cargo build --release -q --bin mimamori
  MIMAMORI=${CARGO_TARGET_DIR:-target}/release/mimamori
fi
EXTRA=()
[ -n "${THREADS:-}" ] && EXTRA=(--threads "$THREADS")
"$MIMAMORI" --version
OUT=$(mktemp)
trap 'rm -f "$OUT" "$OUT.err" "$OUT.reg" "$OUT.time"' EXIT
WALLS=()
for i in $(seq 1 "$RUNS"); do
  /usr/bin/time -v -o "$OUT.time" "$MIMAMORI" hunt --rules "$RULES" --format jsonl "${EXTRA[@]}" \
    "$INPUT" > "$OUT" 2> "$OUT.err"
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT.time")
  cpu=$(awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$OUT.time")
  echo "run $i: wall ${wall}, CPU ${cpu} s, peak RSS $((rss / 1024)) MB, $(wc -l < "$OUT") detections, $(wc -l < "$OUT.err") stderr lines"
  WALLS+=("$(echo "$wall" | awk -F: '{print $(NF-1) * 60 + $NF}')")
done
# The machine is shared: the minimum is the run least disturbed by others.
printf '%s\n' "${WALLS[@]}" | sort -n | awk '{a[NR] = $1} END {printf "wall: min %.2f s, median %.2f s over %d runs\n", a[1], a[int((NR + 1) / 2)], NR}'
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "stderr of the last run:"
sed 's/^/  /' "$OUT.err"
CHECK=${SIGMA_CHECK:-$CORPORA/../bench/sigma/regression_check.py}
if [ -f "$CHECK" ]; then
  "$MIMAMORI" hunt --rules "$CORPORA/sigma/rules" --rules "$CORPORA/sigma/rules-extra" \
    --format jsonl --quiet "$CORPORA/sigma/regression_data" > "$OUT.reg" 2>/dev/null
  python3 "$CHECK" "$CORPORA/sigma" "$OUT.reg"
fi
