#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/ from ../shared/corpora (or $CORPORA), the
# crates' test fixtures and the hand-written seeds in fuzz/seeds/. The
# corpus directories are not committed (see .gitignore). Files are cut to
# at most 16 KiB (at a line end for text) so that mutations stay fast;
# EVTX files are kept whole up to 1 MiB (their chunks are 64 KiB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
corpora=${CORPORA:-$repo/../shared/corpora}
[ -d "$corpora" ] || corpora=/work/shared/corpora
out=$here/corpus
max=${SEED_MAX_FILES:-60}

put() { # put TARGET FILE...: copy text files, cut to 16 KiB at a line end
    local t=$1; shift
    mkdir -p "$out/$t"
    local n=0 f
    for f in "$@"; do
        [ -f "$f" ] || continue
        n=$((n + 1)); [ "$n" -le "$max" ] || break
        local dst="$out/$t/$(basename "$f" | tr -c 'A-Za-z0-9._-' _)-$n"
        case "$f" in
            *.gz) gzip -dc "$f" 2>/dev/null | head -c 16384 | sed '$d' > "$dst" || true ;;
            *) head -c 16384 "$f" > "$dst" ;;
        esac
    done
}
putbin() { # putbin TARGET FILE...: copy whole binary files up to 1 MiB
    local t=$1; shift
    mkdir -p "$out/$t"
    local n=0 f
    for f in "$@"; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 1048576 ] || continue
        n=$((n + 1)); [ "$n" -le "$max" ] || break
        cp "$f" "$out/$t/$(basename "$f" | tr -c 'A-Za-z0-9._-' _)-$n"
    done
}
files() { find "$@" -type f 2>/dev/null | sort; }

fx=$repo/crates/parse/tests/fixtures
mapfile -t a < <(files "$fx" -name 'syslog*'); put syslog "${a[@]}"
mapfile -t a < <(files "$fx" -name 'cef*'); put cef "${a[@]}"
mapfile -t a < <(files "$corpora/zeek" -path '*zeek-json*'); put zeek_json "${a[@]}"
mapfile -t a < <(files "$corpora/zeek" -name '*.log*' -not -path '*zeek-json*'); put zeek_tsv "${a[@]}"
mapfile -t a < <(files "$corpora/cloudtrail" -name '*.json*'); put cloudtrail "${a[@]}"
mapfile -t a < <(files "$corpora/evtx" -name '*.evtx' -size -200k); putbin evtx "${a[@]}"
mapfile -t a < <(files "$corpora/stix" -name '*.json' -not -path '*schemas*'); put stix_bundle "${a[@]}"
mapfile -t a < <(files "$corpora/misp" -path '*events*' -name '*.json'); put misp "${a[@]}"
mapfile -t a < <(files "$corpora/rpz" -name '*.zone' -o -name '*.rpl'); put rpz "${a[@]}"
mapfile -t a < <(files "$corpora/sigma" -name '*.yml' -not -path '*regression_data*'); put sigma "${a[@]}"
# STIX patterns: the pattern strings of the bundles' indicators.
mkdir -p "$out/stix_pattern"
if command -v python3 >/dev/null; then
    python3 - "$corpora/stix" "$out/stix_pattern" <<'PY' || true
import json, pathlib, sys
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for f in sorted(src.rglob("*.json")):
    if "schemas" in f.parts: continue
    try: doc = json.loads(f.read_text())
    except Exception: continue
    for o in doc.get("objects", []) if isinstance(doc, dict) else []:
        p = o.get("pattern") if isinstance(o, dict) else None
        if isinstance(p, str) and n < 200:
            (dst / f"p{n}").write_text(p); n += 1
PY
fi
# HEC envelopes and _bulk bodies around the Zeek JSON and CloudTrail seeds
# records, so that those targets start from real events.
if command -v python3 >/dev/null; then
    python3 - "$out" <<'PY' || true
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for src, fmt in (("zeek_json", "zeek"), ("cloudtrail", "aws:cloudtrail")):
    for n, f in enumerate(sorted((out / src).glob("*"))[:20]):
        lines = [l for l in f.read_text(errors="replace").splitlines() if l.startswith("{")][:50]
        if not lines:
            continue
        hec = "".join(json.dumps({"event": json.loads(l) if l.endswith("}") else l, "sourcetype": fmt})
                      for l in lines if l.strip())
        (out / "hec").mkdir(exist_ok=True)
        (out / "hec" / f"{src}-{n}").write_bytes(b"\x00" + hec.encode())
        bulk = "".join('{"index":{}}\n' + l + "\n" for l in lines)
        (out / "es_bulk").mkdir(exist_ok=True)
        (out / "es_bulk" / f"{src}-{n}").write_text(bulk)
PY
fi
# Hand-written seeds (committed): DNS queries, DoH requests, lists, …
for d in "$here"/seeds/*/; do
    t=$(basename "$d"); mkdir -p "$out/$t"; cp "$d"* "$out/$t/"
done
for d in "$out"/*/; do printf '%-14s %4d files\n' "$(basename "$d")" "$(ls "$d" | wc -l)"; done
