#!/usr/bin/env bash
# Offline Sigma hunt side by side with peer hunters: all SigmaHQ rules over
# the EVTX attack samples through the shipped binary (`mimamori hunt --rules
# RULES --format jsonl INPUT`, built in release with `cargo build --release
# --bin mimamori` as bench/hunt.sh does, or MIMAMORI=/path/to/mimamori), then, when their
# binaries are given, Chainsaw (same SigmaHQ rules, through its Sigma mapping)
# and Hayabusa (its own rules) on the same input. Each tool runs RUNS times
# under /usr/bin/time -v; reports wall time (min, median), peak RSS, the
# detection count, the ratio peer wall / mimamori wall (min over min), and
# whether mimamori finds every detection Chainsaw finds (bench/hunt_compare.py).
#
# This script builds and fetches no peer: build Chainsaw and Hayabusa from
# their public sources yourself, outside this repository, and point at them:
#   CHAINSAW=/path/to/chainsaw CHAINSAW_MAPPING=/path/to/sigma-event-logs-all.yml
#   HAYABUSA=/path/to/hayabusa HAYABUSA_RULES=/path/to/hayabusa-rules
# HAYABUSA_RULES is a hayabusa-rules checkout (config/, hayabusa/, sigma/);
# Hayabusa runs in a scratch directory where it is linked as ./rules, since
# Hayabusa reads its rule config from rules/config. Without CHAINSAW or
# HAYABUSA that peer is skipped. OUT_DIR=DIR keeps the outputs there.
#
# usage: bench/hunt-peers.sh [RULES_DIR] [INPUT] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
CORPORA=${MIMAMORI_CORPORA:-../shared/corpora}
RULES=$(realpath "${1:-$CORPORA/sigma/rules}")
INPUT=$(realpath "${2:-$CORPORA/evtx/attack-samples}")
RUNS=${3:-3}
if [ -z "${MIMAMORI:-}" ]; then
  cargo build --release -q --bin mimamori
  MIMAMORI=${CARGO_TARGET_DIR:-target}/release/mimamori
fi
BIN=$(realpath "$MIMAMORI")
"$BIN" --version
if [ -n "${OUT_DIR:-}" ]; then
  mkdir -p "$OUT_DIR"
  OUT=$(realpath "$OUT_DIR")
else
  OUT=$(mktemp -d)
  trap 'rm -rf "$OUT"' EXIT
fi

# measure NAME OUTFILE COUNT_CMD -- CMD...: run CMD RUNS times (its stdout to
# OUTFILE), print each run, and leave "min median rss_mb count" in $OUT/NAME.res.
# COUNT_CMD prints the detection count of OUTFILE.
measure() {
  local name=$1 file=$2 count=$3
  shift 4
  local walls=() rss_max=0 wall rss n
  for i in $(seq 1 "$RUNS"); do
    rm -f "$file"
    /usr/bin/time -v -o "$OUT/$name.time" "$@" > "$file.stdout" 2> "$OUT/$name.err"
    [ -e "$file" ] || mv "$file.stdout" "$file"
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT/$name.time" | awk -F: '{print $(NF-1) * 60 + $NF}')
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$name.time")
    n=$($count "$file")
    echo "$name run $i: wall ${wall} s, peak RSS $((rss / 1024)) MB, $n detections"
    walls+=("$wall")
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
  done
  # The machine is shared: the minimum is the run least disturbed by others.
  printf '%s\n' "${walls[@]}" | sort -n | awk -v r=$((rss_max / 1024)) -v n="$n" \
    '{a[NR] = $1} END {printf "%.2f %.2f %d %d\n", a[1], a[int((NR + 1) / 2)], r, n}' > "$OUT/$name.res"
}
count_lines() { wc -l < "$1"; }
count_json_array() { python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$1"; }

# Two ways: `mimamori-cold` parses every rule file (--no-rule-cache), as a
# first hunt over a rule set does; `mimamori` reads the rule cache, as every
# later hunt over unchanged rules does (the cache is primed by one untimed
# run, in a directory of its own). Ratios are against the warm figure.
"$BIN" hunt --rule-cache "$OUT/rule-cache" --rules "$RULES" --format jsonl "$INPUT" > /dev/null 2>&1
measure mimamori-cold "$OUT/mimamori-cold.jsonl" count_lines -- \
  "$BIN" hunt --no-rule-cache --rules "$RULES" --format jsonl "$INPUT"
measure mimamori "$OUT/mimamori.jsonl" count_lines -- \
  "$BIN" hunt --rule-cache "$OUT/rule-cache" --rules "$RULES" --format jsonl "$INPUT"
cmp -s "$OUT/mimamori.jsonl" "$OUT/mimamori-cold.jsonl" ||
  echo "WARNING: the warm and cold hunts' detections differ" >&2
echo "mimamori's stderr ($(wc -l < "$OUT/mimamori.err") lines):"
sed 's/^/  /' "$OUT/mimamori.err"

if [ -n "${CHAINSAW:-}" ]; then
  : "${CHAINSAW_MAPPING:?set CHAINSAW_MAPPING to the Chainsaw mappings/sigma-event-logs-all.yml}"
  "$CHAINSAW" --version
  # Chainsaw writes the file named by -o itself. No -q: Chainsaw 2.16 flushes
  # that file only when it prints a status line, so with -q its end is lost.
  measure chainsaw "$OUT/chainsaw.json" count_json_array -- \
    "$CHAINSAW" hunt "$INPUT" -s "$RULES" --mapping "$CHAINSAW_MAPPING" --json -o "$OUT/chainsaw.json"
fi

if [ -n "${HAYABUSA:-}" ]; then
  : "${HAYABUSA_RULES:?set HAYABUSA_RULES to a hayabusa-rules checkout}"
  HAYABUSA=$(realpath "$HAYABUSA")
  mkdir -p "$OUT/hayabusa-cwd"
  ln -sfn "$(realpath "$HAYABUSA_RULES")" "$OUT/hayabusa-cwd/rules"
  "$HAYABUSA" help 2>/dev/null | grep -m1 -i 'version' || true
  # -w: no wizard (no prompts); -C: overwrite the output; -q: no banner; -K: no colour.
  (cd "$OUT/hayabusa-cwd" && measure hayabusa "$OUT/hayabusa.jsonl" count_lines -- \
    "$HAYABUSA" json-timeline -d "$INPUT" -r rules -L -o "$OUT/hayabusa.jsonl" -w -C -q -K)
fi

echo "load average during the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r mm_min mm_med mm_rss mm_n < "$OUT/mimamori.res"
printf '%-13s %10s %12s %10s %11s %22s\n' tool "wall min" "wall median" "peak RSS" detections "ratio (peer/mimamori)"
for t in mimamori mimamori-cold chainsaw hayabusa; do
  [ -f "$OUT/$t.res" ] || continue
  read -r min med rss n < "$OUT/$t.res"
  ratio=$(awk -v a="$min" -v b="$mm_min" 'BEGIN {printf "%.2fx", a / b}')
  [ "$t" = mimamori ] && ratio=-
  printf '%-13s %8s s %10s s %7s MB %11s %22s\n' "$t" "$min" "$med" "$rss" "$n" "$ratio"
done
if [ -f "$OUT/chainsaw.json" ]; then
  python3 bench/hunt_compare.py --show 50 "$OUT/chainsaw.json" "$OUT/mimamori.jsonl" || true
fi
