#!/usr/bin/env bash
# Hostile SQL against a running `mimamori serve`: 20 queries at once from a
# member org's analyst token, each built to exhaust memory or time (a
# gigabyte repeat(), huge paddings, endless ranges, cross joins, unbounded
# groups and aggregates, recursive CTEs). While they run, the server's RSS
# is sampled (/proc/PID/status) and /healthz is polled. Prints the peak RSS
# against the budget (the server's RSS before + max_concurrent × the
# per-query memory_bytes), the longest overrun of a query's deadline, what
# each query was answered, and the slowest /healthz.
# Goals: peak RSS ≤ budget + 10 %, overrun ≤ 1 s, /healthz always answered.
#
# usage: bench/query-hostile.sh [DEADLINE_SECS=5] [MEMORY_BYTES=268435456]
#   ORGS=N             the 20 queries come from N member orgs' analysts in
#                      turn (default 1, as the red team ran them: the per-org
#                      cap answers most; ORGS=20 leaves it to the global cap)
#   RETRY=0            take a 429 as the answer (default: retry after 0.5 s
#                      until the query runs, so all 20 run in the end)
#   EVENTS=N           archived events per org (default 20000 / ORGS, at least
#                      5000)
#   MIMAMORI_BIN=path  the binary to run (default: build the debug one;
#                      PROFILE=release builds and runs the release one)
set -euo pipefail
cd "$(dirname "$0")/.."
DEADLINE=${1:-5}
MEMORY=${2:-268435456}
PROFILE=${PROFILE:-debug}
if [ -z "${MIMAMORI_BIN:-}" ]; then
  if [ "$PROFILE" = release ]; then
    cargo build --release -q --workspace --bin mimamori
  else
    cargo build -q --workspace --bin mimamori
  fi
  MIMAMORI_BIN=${CARGO_TARGET_DIR:-target}/$PROFILE/mimamori
fi
BIN=$(realpath "$MIMAMORI_BIN")
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
MIMAMORI_LOG=warn $BIN --data-dir "$DIR" init --json >/dev/null 2>&1
sed -i "s/^# memory_bytes = [0-9]*/memory_bytes = $MEMORY/" "$DIR/mimamori.toml"
MAX_CONCURRENT=$(awk -F'[ =#]+' '/^#? ?max_concurrent = / {print $3; exit}' "$DIR/mimamori.toml")
ORGS=${ORGS:-1}
EVENTS=${EVENTS:-$(( 20000 / ORGS > 5000 ? 20000 / ORGS : 5000 ))}
secret() { python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'; }
SENSORS=() ANALYSTS=()
for i in $(seq 1 "$ORGS"); do
  $BIN --data-dir "$DIR" org add --parent soc --slug "member$i" --name "Member $i" >/dev/null
  SENSORS+=("$($BIN --data-dir "$DIR" token create --org "member$i" --role sensor --name s --json | secret)")
  ANALYSTS+=("$($BIN --data-dir "$DIR" token create --org "member$i" --role org-analyst --name a --json | secret)")
done
SENSOR=$(IFS=,; echo "${SENSORS[*]}")
ANALYST=$(IFS=,; echo "${ANALYSTS[*]}")
MIMAMORI_LOG=warn $BIN --data-dir "$DIR" serve --listen 127.0.0.1:0 > "$DIR/serve.out" 2> "$DIR/serve.err" &
PID=$!
for _ in $(seq 1 300); do grep -q listening "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
URL=$(grep -m1 -o 'http://[^ ]*' "$DIR/serve.out")
python3 - "$URL" "$SENSOR" "$ANALYST" "$PID" "$DEADLINE" "$MEMORY" "${MAX_CONCURRENT:-4}" "$EVENTS" "${RETRY:-1}" <<'PY'
import json, sys, threading, time, urllib.request, urllib.error

url, sensors, analysts, pid, deadline, memory, max_conc, events, retry = sys.argv[1:10]
deadline, memory, max_conc, events, retry = int(deadline), int(memory), int(max_conc), int(events), retry == "1"
sensors, analysts = sensors.split(","), analysts.split(",")

def post(path, token, body, ctype="application/json", timeout=120):
    req = urllib.request.Request(url + path, data=body, method="POST",
        headers={"authorization": f"Bearer {token}", "content-type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

# DNS events for every member org, so scans have something to read.
lines = "".join(json.dumps({"class": "dns_activity", "src_ip": f"10.0.{i % 250}.{i % 200}",
                            "dns_query": f"host{i}.zone{i % 97}.example.jp"}) + "\n" for i in range(events))
for sensor in sensors:
    st, _ = post("/ingest/v1/events", sensor, lines.encode(), "application/x-ndjson")
    assert st == 200, st
for analyst in analysts:
    for _ in range(200):
        st, b = post("/api/v1/query", analyst, json.dumps({"sql": "SELECT count(*) AS n FROM events"}).encode())
        if st == 200 and json.loads(b)["rows"][0]["n"] >= events:
            break
        time.sleep(0.2)

def rss_kb():
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0

base = rss_kb()
HOSTILE = [
    "SELECT repeat('x', 1000000000) FROM events",
    "SELECT repeat(raw, 100000) FROM events",
    "SELECT lpad('x', 2000000000) FROM events",
    "SELECT repeat('x', 900000) AS x FROM events",
    "SELECT length(repeat(repeat('x', 1000), 1000)) FROM events a, events b",
    "SELECT sum(value % 7) FROM range(100000000000)",
    "SELECT value, count(*) FROM range(1000000000) GROUP BY value",
    "SELECT string_agg(CAST(value AS VARCHAR), ',') FROM range(1000000000)",
    "SELECT array_agg(a.raw) FROM events a, events b",
    "SELECT count(*) FROM events a, events b, events c",
    "WITH t AS (SELECT src_endpoint.ip AS ip, raw FROM events) SELECT a.raw, b.raw FROM t a JOIN t b ON a.ip = b.ip ORDER BY a.raw",
    "SELECT raw FROM events ORDER BY raw",
    "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
    "SELECT regexp_replace(raw, '', 'xxxxxxxxxxxxxxxx', 'g') FROM events",
    "SELECT concat(a.raw, b.raw, a.raw, b.raw, a.raw, b.raw, a.raw, b.raw) FROM events a, events b",
    "SELECT DISTINCT value FROM range(1000000000)",
    "SELECT max(length(a.raw || b.raw || a.raw)) FROM events a, events b",
    "SELECT value FROM range(1000000000) ORDER BY random()",
    "SELECT count(DISTINCT value) FROM range(1000000000)",
    "EXPLAIN ANALYZE SELECT count(*) FROM events a, events b, events c",
]
results = [None] * len(HOSTILE)
peak = [base]
health = {"max_ms": 0.0, "fail": 0, "n": 0}
stop = threading.Event()

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], rss_kb())
        time.sleep(0.02)

def healthz():
    while not stop.is_set():
        t = time.time()
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=10) as r:
                r.read()
        except Exception:
            health["fail"] += 1
        health["max_ms"] = max(health["max_ms"], (time.time() - t) * 1000)
        health["n"] += 1
        time.sleep(0.1)

def run(i, sql):
    # A client that honours 429's Retry-After, as shippers and scripts do:
    # every query runs in the end, at most max_concurrent at a time. The
    # deadline is measured from the start of the attempt that ran.
    analyst = analysts[i % len(analysts)]
    attempts = 0
    while True:
        attempts += 1
        t = time.time()
        st, b = post("/api/v1/query", analyst, json.dumps({"sql": sql, "timeout_secs": deadline}).encode())
        took = time.time() - t
        if st != 429 or not retry or attempts >= 200:
            break
        time.sleep(0.5)
    try:
        detail = json.loads(b).get("detail", "")
    except Exception:
        detail = b[:80]
    results[i] = (st, took, str(detail)[:90], attempts)

threads = [threading.Thread(target=sample), threading.Thread(target=healthz)]
for t in threads:
    t.start()
start = time.time()
workers = [threading.Thread(target=run, args=(i, q)) for i, q in enumerate(HOSTILE)]
for w in workers:
    w.start()
for w in workers:
    w.join()
wall = time.time() - start
# Memory given back once they are done.
time.sleep(2)
after = rss_kb()
stop.set()
for t in threads:
    t.join()
budget = base + max_conc * memory // 1024
for (st, took, detail, attempts), sql in zip(results, HOSTILE):
    print(f"{st} {took:6.2f} s {attempts:3d}×  {sql[:60]:60}  {detail}")
overrun = max([0.0] + [took - deadline for (st, took, _, _) in results])
print(f"queries: {len(HOSTILE)} at once from {len(analysts)} orgs ({events} events each), deadline {deadline} s, all answered in {wall:.1f} s")
print(f"statuses: " + ", ".join(f"{s}×{[r[0] for r in results].count(s)}" for s in sorted({r[0] for r in results})))
print(f"RSS: before {base // 1024} MB, peak {peak[0] // 1024} MB, 2 s after {after // 1024} MB; "
      f"budget {budget // 1024} MB (before + {max_conc} × {memory // 1048576} MB): peak is {100 * peak[0] / budget:.0f} % of it")
print(f"longest overrun of the deadline: {overrun:.2f} s")
print(f"/healthz: {health['n']} polls, {health['fail']} failed, slowest {health['max_ms']:.0f} ms")
ok = peak[0] <= budget * 1.1 and overrun <= 1.0 and health["fail"] == 0
print("goals met" if ok else "GOALS NOT MET")
PY
