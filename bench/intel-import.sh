#!/usr/bin/env bash
# Threat-intel list import through the CLI into the embedded store: N random
# domains in a plain list (one per line, a comment and a defanged entry in
# it), `mimamori intel import --format plain` timed with its peak RSS, then
# the same file again (every indicator re-observed: an update of every row),
# then a `mimamori serve` start with Protective DNS, whose log gives the
# detection matcher's and the DNS policy's full loads of those rows; then
# 1,000 new domains imported while it runs, timed until the resolver
# answers NXDOMAIN for the last of them (the DNS policy's patch); then an
# org-tree change (an org's declared network set over the API, the org
# holding a block-list entry) timed until the resolver answers with the
# org's policy; the server's RSS after each step; and whether the policy
# was rebuilt while nothing changed.
#
# usage: bench/intel-import.sh [N=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
cargo build --release -q -p mimamori --bin mimamori
BIN=${CARGO_TARGET_DIR:-target}/release/mimamori
DIR=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
PID=
python3 - "$DIR/list.txt" "$N" <<'PY'
import random, string, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
tlds = ["com", "net", "org", "example", "jp", "info"]
seen = set()
with open(path, "w") as f:
    f.write("# bench list\n")
    f.write("hxxp://defanged[.]bench[.]example/path\n")
    while len(seen) < n:
        label = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(4, 15)))
        name = f"{label}.{rng.choice(tlds)}"
        if rng.random() < 0.25:
            name = "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 8))) + "." + name
        if name in seen:
            continue
        seen.add(name)
        f.write(name + "\n")
PY
echo "list: $(wc -l < "$DIR/list.txt") lines, $(du -h "$DIR/list.txt" | cut -f1)"
$BIN --data-dir "$DIR" init --json > "$DIR/init.json"
ADMIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$DIR/init.json")
run() {
    /usr/bin/time -f "%e s wall, %U s user, %S s sys, peak RSS %M KB" \
        "$BIN" --data-dir "$DIR" intel import --format plain --tlp green "$DIR/list.txt" 2>&1
}
echo "first import:  $(run | tr '\n' ' ')"
echo "second import: $(run | tr '\n' ' ')"
echo "database: $(du -sh "$DIR"/*.db* 2>/dev/null | awk '{print $1, $2}' | tr '\n' ' ')"
# The bench asks from 127.0.0.1, in no org's network until the org-tree
# step: answered with the root's policy, credited to nobody.
MIMAMORI_LOG=info MIMAMORI_PDNS_LISTEN=127.0.0.1:0 MIMAMORI_PDNS_UPSTREAMS=127.0.0.1:9 \
    MIMAMORI_PDNS_UNATTRIBUTED=log \
    "$BIN" --data-dir "$DIR" serve --listen 127.0.0.1:0 > "$DIR/serve.out" 2>&1 &
PID=$!
for _ in $(seq 1 1200); do grep -q 'Protective DNS listening' "$DIR/serve.out" 2>/dev/null && break; sleep 0.1; done
grep -m1 'indicator matcher loaded' "$DIR/serve.out" || true
grep -m1 'DNS policy loaded' "$DIR/serve.out" || true
echo "serve RSS after load ($N indicators): $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
DNS=$(grep -m1 'Protective DNS listening' "$DIR/serve.out" | awk '{print $NF}')
API=$(grep -m1 'API listening' "$DIR/serve.out" | awk '{print $NF}')
for round in 1 2 3; do
    python3 -c "
import sys
with open(sys.argv[1], 'w') as f:
    for i in range(1000):
        f.write(f'r{sys.argv[2]}-{i}.patch.example\n')
" "$DIR/new.txt" "$round"
    "$BIN" --data-dir "$DIR" intel import --format plain --tlp green "$DIR/new.txt" >/dev/null
    python3 - "$DNS" "r$round-999.patch.example" <<'PY'
import socket, struct, sys, time
host, port = sys.argv[1].rsplit(":", 1)
name = sys.argv[2]
q = struct.pack(">HHHHHH", 0x4d4d, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
start = time.monotonic()
while True:
    s.sendto(q, (host, int(port)))
    try:
        r = s.recv(1500)
    except socket.timeout:
        continue
    if r[3] & 0x0F == 3:
        break
    if time.monotonic() - start > 60:
        print("not blocked after 60 s"); sys.exit(1)
    time.sleep(0.01)
print(f"1,000 new domains blocked {time.monotonic() - start:.2f} s after the import returned")
PY
done
echo "serve RSS after the patches: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
# An org-tree change: org "lab" with a block-list entry gets 127.0.0.1 as
# its network; timed from the PATCH's answer until 127.0.0.1 is answered
# with lab's policy (its block).
LAB=$("$BIN" --data-dir "$DIR" org add --parent soc --slug lab --name Lab --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
curl -sf -H "Authorization: Bearer $ADMIN" -H 'content-type: application/json' \
    -d "{\"org_id\": \"$LAB\", \"kind\": \"block\", \"domain\": \"lab-block.example\", \"comment\": \"bench\"}" \
    "$API/api/v1/dns/policy" >/dev/null
sleep 2
python3 - "$DNS" "$API" "$ADMIN" "$LAB" <<'PY'
import json, socket, struct, sys, time, urllib.request
dns, api, token, lab = sys.argv[1:5]
host, port = dns.rsplit(":", 1)
name = "lab-block.example"
q = struct.pack(">HHHHHH", 0x4d4e, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
def rcode():
    s.sendto(q, (host, int(port)))
    try:
        return s.recv(1500)[3] & 0x0F
    except socket.timeout:
        return None
before = rcode()
req = urllib.request.Request(f"{api}/api/v1/orgs/{lab}", method="PATCH",
    data=json.dumps({"networks": ["127.0.0.1/32"]}).encode(),
    headers={"Authorization": f"Bearer {token}", "content-type": "application/json"})
urllib.request.urlopen(req).read()
start = time.monotonic()
while rcode() != 3:
    if time.monotonic() - start > 60:
        print("org change not answered after 60 s"); sys.exit(1)
    time.sleep(0.01)
print(f"org-tree change answered {time.monotonic() - start:.2f} s after the PATCH returned (rcode before: {before})")
PY
echo "serve RSS after the org change: $(awk '/VmRSS/ {print $2, $3}' /proc/$PID/status)"
grep 'DNS policy rebuilt' "$DIR/serve.out" | head -3 || true
# Nothing changes for a while: no rebuild may be logged.
REBUILDS=$(grep -c 'DNS policy rebuilt' "$DIR/serve.out" || true)
sleep "${IDLE_SECS:-5}"
echo "policy rebuilds while idle for ${IDLE_SECS:-5} s: $(( $(grep -c 'DNS policy rebuilt' "$DIR/serve.out" || true) - REBUILDS ))"
