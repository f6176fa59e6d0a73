#!/usr/bin/env bash
# The web console with N alerts in the store (default 100,000): p50 and p99
# of the time to the last byte of the overview, the alert list (first page,
# a filtered page, a deep page by cursor) and an alert's detail, as a signed-
# in central analyst sees them, over loopback from the shipped binary.
#
# The alerts are made the way a user's are: N domains imported as intel
# (`mimamori intel import`), then DNS events for them sent by eight orgs'
# sensors over HTTP (`/ingest/v1/events`), which streaming detection turns
# into one alert per domain and org; every 100th domain is queried at three
# orgs, forming a campaign.
#
# usage: bench/console.sh [N=100000] [REQUESTS=200]
#   MIMAMORI=/path/to/mimamori times a given binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
REQUESTS=${2:-200}
if [ -z "${MIMAMORI:-}" ]; then
    cargo build --release -q -p mimamori --bin mimamori
    MIMAMORI=${CARGO_TARGET_DIR:-target}/release/mimamori
fi
DIR=$(mktemp -d)
PID=
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(int(sys.argv[2])):
        f.write(f'c2-{i}.bench.example\n')
" "$DIR/list.txt" "$N"
"$MIMAMORI" --data-dir "$DIR" init --json > "$DIR/init.json"
ADMIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$DIR/init.json")
"$MIMAMORI" --data-dir "$DIR" intel import --format plain --tlp green "$DIR/list.txt" > /dev/null
MIMAMORI_LOG=warn MIMAMORI_PDNS_LISTEN=127.0.0.1:0 MIMAMORI_PDNS_UPSTREAMS=127.0.0.1:9 \
    "$MIMAMORI" --data-dir "$DIR" serve --listen 127.0.0.1:0 > "$DIR/serve.out" 2>&1 &
PID=$!
for _ in $(seq 1 600); do grep -q 'API listening' "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
API=$(grep -m1 'API listening' "$DIR/serve.out" | awk '{print $NF}')
python3 - "$API" "$ADMIN" "$N" "$REQUESTS" "$PID" <<'PY'
import http.cookiejar, json, re, statistics, sys, time, urllib.parse, urllib.request

base, admin, n, requests, pid = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def api(method, path, token, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read()
        return json.loads(text) if text else None

root = api("GET", "/api/v1/whoami", admin)["org_id"]
orgs = []
for i in range(8):
    o = api("POST", "/api/v1/orgs", admin, {"parent_id": root, "slug": f"org{i}", "name": f"Org {i}", "kind": "member"})
    t = api("POST", "/api/v1/tokens", admin, {"org_id": o["id"], "name": "sensor", "role": "sensor"})
    orgs.append((o, t["secret"]))
# One DNS event per domain (at org i % 8), and every 100th at two more orgs.
start = time.time()
batch = 5000
for lo in range(0, n, batch):
    per_org = {k: [] for k in range(8)}
    for i in range(lo, min(n, lo + batch)):
        at = [i % 8] + ([(i + 1) % 8, (i + 2) % 8] if i % 100 == 0 else [])
        for k in at:
            per_org[k].append(json.dumps({"class": "dns_activity", "dns_query": f"c2-{i}.bench.example"}))
    for k, lines in per_org.items():
        if lines:
            api("POST", "/ingest/v1/events", orgs[k][1], raw=("\n".join(lines) + "\n").encode())
# Detection runs behind ingestion: wait until the count stops moving.
events = n + 2 * len(range(0, n, 100))
last, still = -1, 0
while still < 5:
    s = api("GET", "/api/v1/alerts/summary", admin)
    have = sum(c["count"] for c in s["by_org"])
    still = still + 1 if have == last else 0
    last = have
    if time.time() - start > 1800:
        sys.exit(f"detection still busy after 30 minutes ({have} alerts)")
    time.sleep(3)
if have < n:
    sys.exit(f"only {have} alerts from {events} matching events")
campaigns = len(api("GET", "/api/v1/campaigns", admin)["items"])
print(f"alerts in the store: {have} from {events} matching events (made in {time.time() - start:.0f} s), campaigns: {campaigns}")

# A console user, signed in through the form as a browser does.
api("POST", "/api/v1/users", admin, {"org_id": root, "username": "bench", "role": "soc-analyst", "password": "bench password 123"})
jar = http.cookiejar.CookieJar()
class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
page = opener.open(base + "/console/login").read().decode()
csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
form = urllib.parse.urlencode({"csrf": csrf, "org": "soc", "username": "bench", "password": "bench password 123", "next": "/console/"}).encode()
try:
    opener.open(base + "/console/login", data=form)
except urllib.error.HTTPError as e:
    assert e.code == 303, e.code
assert any(c.name == "mimamori_session" for c in jar), "not signed in"

def fetch(path):
    t = time.perf_counter()
    with opener.open(base + path) as r:
        body = r.read()
        assert r.status == 200, (path, r.status)
    return time.perf_counter() - t, body.decode()

_, first = fetch("/console/alerts")
cursor = re.search(r'rel="next" href="/console/alerts\?([^"]+)"', first).group(1).replace("&amp;", "&")
# Ten pages deep, by following the cursor.
deep = cursor
for _ in range(9):
    _, body = fetch("/console/alerts?" + deep)
    deep = re.search(r'rel="next" href="/console/alerts\?([^"]+)"', body).group(1).replace("&amp;", "&")
alert = re.search(r'href="(/console/alerts/[^"/]+)"', first).group(1)
org3 = orgs[3][0]["id"]
pages = [
    ("overview", "/console/"),
    ("alert list, first page", "/console/alerts"),
    ("alert list, org + severity + open", f"/console/alerts?org_id={org3}&severity=high&open=true"),
    ("alert list, page 11 by cursor", "/console/alerts?" + deep),
    ("alert detail", alert),
    ("campaigns", "/console/campaigns"),
]
print(f"{requests} requests each, one at a time, time to last byte:")
print("| page | p50 | p99 | max |")
print("|---|---|---|---|")
for name, path in pages:
    for _ in range(5):
        fetch(path)
    times = sorted(fetch(path)[0] for _ in range(requests))
    p50 = statistics.median(times) * 1000
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
    print(f"| {name} | {p50:.1f} ms | {p99:.1f} ms | {times[-1] * 1000:.1f} ms |")
rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
print(f"server RSS after: {int(rss) // 1024} MB")
PY
