#!/usr/bin/env bash
# Protective DNS under a TCP slowloris: runs `mimamori pdns` (a blocklist as its policy, an
# upstream that never answers: only the blocked name is asked, so this times the TCP listener,
# not an upstream), then for each attack prints the latency of legitimate TCP queries (each on
# a fresh connection from 127.0.0.2) while bench/pdns_slowloris.py holds idle connections:
#
#   1. no attack (baseline);
#   2. 500 idle connections from one address, opened once (the issue's first case);
#   3. 500 from one address, each reopened as soon as the server closes it;
#   4. 500 from 50 addresses (10 each: under the per-client limit, over the global one),
#      reopened as soon as closed.
#
#   bash bench/pdns-slowloris.sh
#
# Env: MIMAMORI (the binary, default $CARGO_TARGET_DIR/debug/mimamori, built if missing),
# PORT (default 5353), QUERIES (legit queries per case, default 50), ATTACK (connections,
# default 500), EXTRA (more `mimamori pdns` flags, e.g. "--tcp-max-per-client 1000").
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
MIMAMORI=${MIMAMORI:-$CARGO_TARGET_DIR/debug/mimamori}
PORT=${PORT:-5353}
QUERIES=${QUERIES:-50}
ATTACK=${ATTACK:-500}
if [ ! -x "$MIMAMORI" ]; then
  (cd "$repo" && cargo build --workspace --bin mimamori -q)
fi
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

echo "blocked.slowloris.example" > "$dir/block.txt"
python3 - "$dir/silent.port" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
open(sys.argv[1], "w").write(str(s.getsockname()[1])); time.sleep(86400)
EOF
pids+=($!)
while [ ! -s "$dir/silent.port" ]; do sleep 0.05; done
# shellcheck disable=SC2086
"$MIMAMORI" pdns --listen "127.0.0.1:$PORT" --upstream "127.0.0.1:$(cat "$dir/silent.port")" \
  --blocklist "$dir/block.txt" ${EXTRA:-} > "$dir/out" 2> "$dir/log" &
pids+=($!)
for _ in $(seq 1 100); do grep -q "pdns listening" "$dir/out" 2>/dev/null && break; sleep 0.1; done
grep "pdns listening" "$dir/out"

echo "date: $(date -u +%FT%TZ); host: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); binary: $MIMAMORI"
run() { echo "== $1"; shift; python3 "$repo/bench/pdns_slowloris.py" "127.0.0.1:$PORT" blocked.slowloris.example --queries "$QUERIES" "$@"; }
run "baseline: no attack" --attack 0
run "$ATTACK idle connections from 1 address, opened once" --attack "$ATTACK" --sources 1
run "$ATTACK idle connections from 1 address, reconnecting" --attack "$ATTACK" --sources 1 --reconnect
run "$ATTACK idle connections from 50 addresses, reconnecting" --attack "$ATTACK" --sources 50 --reconnect
