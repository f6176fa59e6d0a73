#!/usr/bin/env bash
# End-to-end HTTP ingest benchmark: NDJSON DNS events → parse/normalize →
# WAL (fsync, acknowledged) → Parquet archive, on this machine, with the server's peak RSS,
# side by side with a plain `cat` of the same bytes (the floor any ingest
# path has to pay to read its input).
#
# usage: bench/ingest-http.sh [TOTAL_EVENTS=2000000] [BATCH=5000] [CONNECTIONS=4]
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-2000000}
BATCH=${2:-5000}
CONNS=${3:-4}
cargo build --release -q -p mimamori --bin mimamori --example ingest_load
BIN=${CARGO_TARGET_DIR:-target}/release/mimamori
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
$BIN --data-dir "$DIR" init --json >/dev/null
$BIN --data-dir "$DIR" org add --parent soc --slug bench --name Bench >/dev/null
TOKEN=$($BIN --data-dir "$DIR" token create --org bench --role sensor --name bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
MIMAMORI_LOG=warn $BIN --data-dir "$DIR" serve --listen 127.0.0.1:0 > "$DIR/serve.out" &
PID=$!
for _ in $(seq 1 100); do grep -q listening "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(awk '{print $NF}' "$DIR/serve.out")
echo "mimamori: $(${CARGO_TARGET_DIR:-target}/release/examples/ingest_load "$URL" "$TOKEN" "$TOTAL" "$BATCH" "$CONNS")"
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$PID/status)"
# Wait for the archive to take everything, then report what it holds.
sleep 3
echo "archive: $(du -sh "$DIR/ingest/archive" | cut -f1) in $(find "$DIR/ingest/archive" -name '*.parquet' | wc -l) Parquet files"
# The floor: reading the same amount of NDJSON with cat.
python3 - "$DIR/sample.ndjson" "$TOTAL" <<'PY'
import sys
path, total = sys.argv[1], int(sys.argv[2])
line = '{"time":1764064800123,"class":"dns_activity","src_ip":"10.1.2.3","src_port":40000,"dns_query":"host1.zone1.example.jp","dns_qtype":"A","dns_rcode":"NOERROR"}\n'
with open(path, "w") as f:
    for _ in range(total // 1000):
        f.write(line * 1000)
PY
START=$(date +%s.%N)
cat "$DIR/sample.ndjson" > /dev/null
END=$(date +%s.%N)
echo "cat floor: $(python3 -c "print(f'{$TOTAL/($END-$START):.0f} events/s')")"
