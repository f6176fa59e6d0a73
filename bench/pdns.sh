#!/usr/bin/env bash
# Protective DNS benchmark: the shipped `mimamori` binary (`mimamori pdns`, built with
# `cargo build --release --bin mimamori` from the workspace root) against Unbound, the same
# 1M-domain RPZ zone, the same upstream stand-in, the same dnsperf query mix. Follows
# ../shared/bench/pdns/README.md. Prints CPU µs per query (utime+stime from /proc/PID/stat over
# the measured run ÷ queries completed), queries/s, lost, RSS, zone load time (start of the
# process to the first correct answers), and the ratios.
#
# mimamori-dns's `examples/pdns` is kept for profiling the library alone; its figures are not
# the product's, and this script no longer runs it.
#
#   bash bench/pdns.sh                     # full run (1M domains, ~3 minutes after the build)
#   N_BLOCK=100000 LEN=10 bash bench/pdns.sh  # smaller zone, shorter run
#   MIMAMORI_BIN=/path/to/mimamori bash bench/pdns.sh  # time a given binary, skip the build
#
# Env: DIR (inputs, default /tmp/pdns-bench; regenerated when N_BLOCK differs from the last
# generation), HARNESS (default ../shared/bench/pdns beside the repo), LEN (measured seconds,
# default 20), CLIENTS (dnsperf -c, default 8), THREADS (`--threads`, default: one per core),
# COALESCE (`--coalesce-us`, default the binary's own, 300; 0: off), ROUNDS (measure both
# servers this many times in turn and print the median ratios, default 1), CARGO_TARGET_DIR
# (default target), MIMAMORI_BIN (skip the build and time this binary), MODE (pdns, the
# default: the `pdns` subcommand; serve: the resolver of `mimamori serve` on a fresh data
# directory, the zone in its [pdns] rpz; APORT, default 18080, is that server's API port).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# ../shared beside the repo; for a worktree one level deeper (wt/NAME), ../../shared.
if [ -z "${HARNESS:-}" ]; then
  HARNESS=$repo/../shared/bench/pdns
  [ -d "$HARNESS" ] || HARNESS=$repo/../../shared/bench/pdns
fi
DIR=${DIR:-/tmp/pdns-bench}
LEN=${LEN:-20}
CLIENTS=${CLIENTS:-8}
UPORT=${UPORT:-5300}; UBPORT=${UBPORT:-5301}; MPORT=${MPORT:-5302}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
N_BLOCK=${N_BLOCK:-1000000}; export N_BLOCK

need() { command -v "$1" >/dev/null 2>&1; }
if ! need unbound || ! need dnsperf || ! need dig || ! need bc; then
  apt-get install -y unbound dnsperf bind9-dnsutils bc >/dev/null
fi

if [ ! -s "$DIR/rpz.zone" ] || [ "${REGEN:-0}" = 1 ] || \
   [ "$(cat "$DIR/n_block" 2>/dev/null)" != "$N_BLOCK" ]; then
  echo "generating inputs in $DIR (N_BLOCK=$N_BLOCK)"
  python3 "$HARNESS/gen.py" "$DIR"
  echo "$N_BLOCK" > "$DIR/n_block"
fi

if [ -n "${MIMAMORI_BIN:-}" ]; then
  MIMAMORI=$MIMAMORI_BIN
else
  (cd "$repo" && cargo build --release -q --bin mimamori)
  case $CARGO_TARGET_DIR in /*) MIMAMORI=$CARGO_TARGET_DIR/release/mimamori ;;
    *) MIMAMORI=$repo/$CARGO_TARGET_DIR/release/mimamori ;; esac
fi
echo "binary: $MIMAMORI ($("$MIMAMORI" --version 2>/dev/null || echo 'no --version'))"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "== starting Unbound (upstream stand-in :$UPORT, filtering resolver :$UBPORT)"
# To a file, not a pipe: the Unbound processes keep their stdout open, and a command
# substitution would wait for them to exit.
PORT=$UBPORT UPORT=$UPORT bash "$HARNESS/unbound-run.sh" "$DIR" > "$DIR/unbound-run.log" 2>&1
ub_ready=$(grep -E 'ready after|not ready' "$DIR/unbound-run.log" | tail -1)
pids+=("$(cat "$DIR/upstream.pid2")" "$(cat "$DIR/pdns.pid2")")
echo "unbound: $ub_ready"
UB_PID=$(cat "$DIR/pdns.pid2")

allowed=$(sed -n 2p "$DIR/allowed.txt")
blocked=$(head -1 "$DIR/blocked.txt")
wait_ready() { # port -> seconds until an allowed name answers and a blocked one is NXDOMAIN
  local port=$1 start; start=$(date +%s.%N)
  for _ in $(seq 1 600); do
    if dig +short +time=1 +tries=1 -p "$port" @127.0.0.1 "$allowed" A 2>/dev/null | grep -q '^192\.0\.2\.' && \
       [ "$(dig +time=1 +tries=1 -p "$port" @127.0.0.1 "www.$blocked" A 2>/dev/null | grep -c NXDOMAIN)" = 1 ]; then
      echo "$(echo "$(date +%s.%N) - $start" | bc)"; return 0; fi
    sleep 0.1
  done
  echo "not ready" >&2; return 1
}

MODE=${MODE:-pdns}
if [ "$MODE" = serve ]; then
  # The resolver inside `mimamori serve` (issue 21's wording): a fresh data
  # directory from `mimamori init`, the zone in [pdns] rpz, clients on
  # loopback answered with the root's policy (`unattributed = "log"`).
  SERVE_DIR=$DIR/serve-data; rm -rf "$SERVE_DIR"
  "$MIMAMORI" --data-dir "$SERVE_DIR" init > "$DIR/init.log" 2>&1 || { cat "$DIR/init.log" >&2; exit 1; }
  sed -i "s|^# rpz = \[\].*|rpz = [\"$DIR/rpz.zone=rpz.bench.\"]|" "$SERVE_DIR/mimamori.toml"
  grep -q "^rpz = " "$SERVE_DIR/mimamori.toml" || { echo "could not set [pdns] rpz in $SERVE_DIR/mimamori.toml" >&2; exit 1; }
  [ -n "${THREADS:-}${COALESCE:-}" ] && echo "THREADS and COALESCE apply to MODE=pdns only" >&2
  echo "== starting mimamori serve (resolver on :$MPORT, API on 127.0.0.1:${APORT:-18080})"
  start=$(date +%s.%N)
  MIMAMORI_API_LISTEN=127.0.0.1:${APORT:-18080} MIMAMORI_PDNS_LISTEN=127.0.0.1:$MPORT \
    MIMAMORI_PDNS_UPSTREAMS=127.0.0.1:$UPORT MIMAMORI_PDNS_UNATTRIBUTED=log \
    "$MIMAMORI" --data-dir "$SERVE_DIR" serve > /dev/null 2> "$DIR/mimamori.log" &
else
  echo "== starting mimamori pdns on :$MPORT"
  start=$(date +%s.%N)
  "$MIMAMORI" pdns --listen 127.0.0.1:$MPORT --upstream 127.0.0.1:$UPORT --rpz "$DIR/rpz.zone=rpz.bench." \
    ${THREADS:+--threads $THREADS} ${COALESCE:+--coalesce-us $COALESCE} > /dev/null 2> "$DIR/mimamori.log" &
fi
M_PID=$!; pids+=("$M_PID")
wait_ready $MPORT >/dev/null || { echo "mimamori pdns did not answer correctly:" >&2; cat "$DIR/mimamori.log" >&2; exit 1; }
m_ready=$(echo "$(date +%s.%N) - $start" | bc)
echo "mimamori ($MODE): ready after $m_ready s ($(grep -m1 'loaded' "$DIR/mimamori.log" | sed 's/\x1b\[[0-9;]*m//g' || true))"

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # name pid port
  local name=$1 pid=$2 port=$3 c0 c1 out q qps lost rss us lat
  dnsperf -s 127.0.0.1 -p "$port" -d "$DIR/queries.txt" -l 10 -c "$CLIENTS" >/dev/null 2>&1
  c0=$(cpu "$pid")
  out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$DIR/queries.txt" -l "$LEN" -c "$CLIENTS" 2>&1)
  c1=$(cpu "$pid")
  q=$(echo "$out" | awk '/Queries completed:/ {print $3}')
  lost=$(echo "$out" | awk '/Queries lost:/ {print $3}')
  qps=$(echo "$out" | awk '/Queries per second:/ {print $4}')
  rss=$(ps -o rss= -p "$pid" | tr -d ' ')
  us=$(echo "scale=2; ($c1 - $c0) * 1000000 / $ticks / $q" | bc)
  lat=$(echo "$out" | awk '/Average Latency/ {printf "%.0f", $4 * 1000000}')
  echo "$name $us $qps $lost $q $rss $lat"
}
# A correctness spot check before measuring: blocked names NXDOMAIN, allowed ones answered.
for port in $UBPORT $MPORT; do
  r1=$(dig +short -p $port @127.0.0.1 "$allowed" A); r2=$(dig -p $port @127.0.0.1 "x.$blocked" A | grep -c NXDOMAIN)
  echo "check :$port allowed -> $r1, x.$blocked NXDOMAIN=$r2"
done

ROUNDS=${ROUNDS:-1}
echo "== measuring (dnsperf -c $CLIENTS, warm 10 s, measured $LEN s), one server at a time, $ROUNDS round(s)"
ub_load=$(echo "$ub_ready" | awk '{print $3}')
row() { printf "%-10s %12s %12s %8s %12s %10s %10s %14s\n" "$@"; }
cpu_ratios=(); qps_ratios=()
for round in $(seq 1 "$ROUNDS"); do
  # Each round measures both servers back to back, so a change in the
  # machine's state between rounds moves both.
  ub=$(measure unbound "$UB_PID" $UBPORT)
  mm=$(measure mimamori "$M_PID" $MPORT)
  echo
  [ "$ROUNDS" -gt 1 ] && echo "round $round"
  row server "CPU us/q" "q/s" lost completed "RSS MB" "load s" "avg latency us"
  read -r n us qps lost q rss lat <<<"$ub"; row "$n" "$us" "$qps" "$lost" "$q" "$((rss/1024))" "$ub_load" "$lat"
  ub_us=$us; ub_qps=$qps
  read -r n us qps lost q rss lat <<<"$mm"; row "$n" "$us" "$qps" "$lost" "$q" "$((rss/1024))" "$m_ready" "$lat"
  cpu_ratios+=("$(echo "scale=3; $us / $ub_us" | bc)")
  qps_ratios+=("$(echo "scale=3; $qps / $ub_qps" | bc)")
  echo
  echo "ratio CPU/query mimamori/unbound: ${cpu_ratios[-1]} (goal <= 0.5, issue 21)"
  echo "ratio q/s mimamori/unbound:       ${qps_ratios[-1]} (goal >= 1.0, none lost)"
done
if [ "$ROUNDS" -gt 1 ]; then
  median() { printf "%s\n" "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
  echo
  echo "CPU/query ratios: ${cpu_ratios[*]}; median $(median "${cpu_ratios[@]}")"
  echo "q/s ratios:       ${qps_ratios[*]}; median $(median "${qps_ratios[@]}")"
fi
grep -E 'loaded' "$DIR/mimamori.log" | head -3 || true
echo "goals (issue 21): CPU/query <= 0.5x Unbound's, RSS <= 100 MB, zone load to first correct answer <= 1 s"
