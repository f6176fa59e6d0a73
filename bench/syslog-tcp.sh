#!/usr/bin/env bash
# Syslog TCP ingest, side by side with syslog-ng (the peer; Debian
# `syslog-ng-core`, whose `loggen` drives both): the same loggen command
# (RFC 5424, 300-byte messages, 4 connections, as fast as possible) against
# syslog-ng writing to a file, then against `mimamori serve` (parse,
# normalize, WAL with fsync, Parquet archive). Prints both rates, the ratio,
# peak RSS, and checks that every message arrived on both sides.
#
# usage: bench/syslog-tcp.sh [SECONDS=20]
# needs: apt-get install syslog-ng-core
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-20}
command -v loggen >/dev/null || { echo "loggen not found: apt-get install syslog-ng-core" >&2; exit 1; }
cargo build --release -q -p mimamori --bin mimamori
BIN=$(realpath "${CARGO_TARGET_DIR:-target}")/release/mimamori
DIR=$(mktemp -d)
trap 'kill $SLNG $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
LOGGEN=(loggen -P -r 10000000 -s 300 -I "$SECS" -S --active-connections=4)

rate() { grep -oE 'rate = [0-9.]+' | tail -1 | awk '{print $3}'; }
sent() { grep -oE 'count=[0-9]+' | tail -1 | cut -d= -f2; }

# Peer: syslog-ng into a file.
mkdir -p "$DIR/slng"
sed "s#@OUT@#$DIR/slng/out.log#" ../shared/bench/syslog/syslog-ng.conf > "$DIR/slng/slng.conf"
syslog-ng -F -f "$DIR/slng/slng.conf" -R "$DIR/slng/persist" -p "$DIR/slng/pid" -c "$DIR/slng/ctl" &
SLNG=$!
sleep 1
PEER_OUT=$("${LOGGEN[@]}" 127.0.0.1 5514 2>&1)
sleep 2
PEER_RATE=$(echo "$PEER_OUT" | rate)
PEER_SENT=$(echo "$PEER_OUT" | sent)
PEER_GOT=$(wc -l < "$DIR/slng/out.log")
PEER_RSS=$(awk '/VmHWM/ {print $2}' /proc/$SLNG/status)
kill $SLNG; wait $SLNG 2>/dev/null || true

# mimamori: the sender's address (127.0.0.1) belongs to the bench org.
MIMAMORI_LOG=warn $BIN --data-dir "$DIR/m" init --json >/dev/null
MIMAMORI_LOG=warn $BIN --data-dir "$DIR/m" org add --parent soc --slug bench --name Bench --network 127.0.0.0/8 >/dev/null
MIMAMORI_LOG=warn MIMAMORI_SYSLOG_TCP=127.0.0.1:5515 \
    $BIN --data-dir "$DIR/m" serve --listen 127.0.0.1:0 > "$DIR/serve.out" &
PID=$!
for _ in $(seq 1 100); do grep -q "syslog tcp" "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
OUT=$("${LOGGEN[@]}" 127.0.0.1 5515 2>&1)
# loggen counts what it wrote to its sockets; let the server read the rest
# before stopping it (what is still in the kernel's buffers was never read,
# so never acknowledged).
sleep 3
RATE=$(echo "$OUT" | rate)
SENT=$(echo "$OUT" | sent)
RSS=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
kill -INT $PID; wait $PID 2>/dev/null || true
GOT=$($BIN --data-dir "$DIR/m" query "SELECT count(*) AS n FROM events" 2>/dev/null | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["n"])')

echo "syslog-ng: ${PEER_RATE} msg/s, sent ${PEER_SENT}, stored ${PEER_GOT}, peak RSS ${PEER_RSS} kB"
echo "mimamori:  ${RATE} msg/s, sent ${SENT}, stored ${GOT}, peak RSS ${RSS} kB"
python3 -c "print(f'ratio mimamori/syslog-ng: {float(\"$RATE\")/float(\"$PEER_RATE\"):.2f}x')"
