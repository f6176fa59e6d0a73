#!/usr/bin/env bash
# Archive compaction, measured on the `mimamori` binary: run the demo with
# compaction off for DEMO_SECONDS, count the Parquet files and time the
# README's SQL with `mimamori query`; then run `serve` on the same data
# directory with compaction on until the file count settles, and measure
# again.
#
# usage: bench/archive-compaction.sh [DEMO_SECONDS=300] [SETTLE_LIMIT_SECONDS=300]
# env:   SQL (default: the README's example), MIMAMORI_BIN (default: build it)
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_SECONDS=${1:-300}
SETTLE_LIMIT=${2:-300}
SQL=${SQL:-"SELECT query.hostname, count(*) AS n FROM events WHERE class_uid = 4003 GROUP BY query.hostname ORDER BY n DESC LIMIT 5"}
if [ -z "${MIMAMORI_BIN:-}" ]; then
    cargo build --release -q -p mimamori --bin mimamori
    MIMAMORI_BIN=${CARGO_TARGET_DIR:-target}/release/mimamori
fi
BIN=$MIMAMORI_BIN
DIR=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$DIR"' EXIT
DATA=$DIR/demo
ARCHIVE=$DATA/ingest/archive
export MIMAMORI_LOG=warn MIMAMORI_PDNS_LISTEN=127.0.0.1:0

files() { find "$ARCHIVE" -name '*.parquet' | wc -l; }
# Best of three runs of the SQL, in seconds, as `mimamori query` reports it.
query_time() {
    local best=
    for _ in 1 2 3; do
        local start end t
        start=$(date +%s.%N)
        "$BIN" --data-dir "$DATA" query --max-rows 5 "$SQL" >/dev/null 2>"$DIR/q.err"
        end=$(date +%s.%N)
        t=$(echo "$end - $start" | bc)
        if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
    done
    echo "$best"
}
report() {
    echo "$1: $(files) Parquet files, $(du -sh "$ARCHIVE" | cut -f1), query best of 3: $(query_time) s ($(tail -1 "$DIR/q.err"))"
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%FT%TZ)"
echo "SQL: $SQL"
MIMAMORI_INGEST_COMPACTION=off "$BIN" --data-dir "$DATA" demo --port 0 >"$DIR/demo.out" 2>&1 &
PID=$!
sleep "$DEMO_SECONDS"
kill -TERM $PID; wait $PID || true; PID=
report "after ${DEMO_SECONDS} s of demo, compaction off"

"$BIN" --data-dir "$DATA" serve --listen 127.0.0.1:0 >"$DIR/serve.out" 2>&1 &
PID=$!
start=$(date +%s)
last=$(files); stable=0
while [ $(( $(date +%s) - start )) -lt "$SETTLE_LIMIT" ]; do
    sleep 10
    now=$(files)
    if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
    last=$now
    # Compaction runs every 30 s; settled when unchanged for 40 s.
    [ "$stable" -ge 4 ] && break
done
echo "compaction settled after $(( $(date +%s) - start )) s"
kill -TERM $PID; wait $PID || true; PID=
report "after compaction"
echo "files per level: $(find "$ARCHIVE" -name '*.parquet' -printf '%f\n' | sed -E 's/^(part|c[0-9]+).*/\1/' | sort | uniq -c | tr '\n' ' ')"
