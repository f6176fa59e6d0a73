#!/usr/bin/env bash
# Runs every cargo-fuzz target in turn for SECONDS each (default 600) and
# prints per target the executions, coverage (libFuzzer's edge count `cov`
# and feature count `ft`) and findings (crash/oom/timeout/leak artifacts).
# Builds first (RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none -a)
# unless NO_BUILD=1; seeds the corpora with fuzz/seed.sh when empty.
# Run it niced on a shared machine:  nice -n 15 bench/fuzz.sh 60
# TARGETS="syslog dns_udp" limits the run; FEATURES (default "ingest api",
# the features of the syslog_framer, hec, es_bulk and sql targets) picks
# the opt-in targets; FEATURES= builds only the others. TIMEOUT (default 10)
# is libFuzzer's per-input limit in seconds: raise it on a loaded machine. Logs: fuzz/logs/<target>.log; findings:
# fuzz/artifacts/<target>/.
set -euo pipefail
secs=${1:-600}
repo=$(cd "$(dirname "$0")/.." && pwd)
fz=$repo/fuzz
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/targets/fuzz-nightly}
feat=()
FEATURES=${FEATURES-ingest api}
[ -n "$FEATURES" ] && feat=(--features "$FEATURES")
cd "$fz"
if [ "${NO_BUILD:-0}" != 1 ]; then
    RUSTC_BOOTSTRAP=1 cargo fuzz build --sanitizer none -a --codegen-units 16 \
        --target-dir "$CARGO_TARGET_DIR" "${feat[@]}" >&2
fi
bin=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release
[ -d corpus ] || ./seed.sh >&2
targets=${TARGETS:-$(cargo fuzz list "${feat[@]}" 2>/dev/null || cargo fuzz list)}
mkdir -p logs
printf '%-14s %6s %7s %12s %8s %8s %s\n' target seconds cpu_s executions cov ft findings
for t in $targets; do
    [ -x "$bin/$t" ] || { printf '%-14s not built\n' "$t"; continue; }
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(ls "artifacts/$t" | wc -l)
    start=$(date +%s)
    # CPU seconds as well as wall seconds: on a shared machine a target's
    # minutes say little without its share of a core.
    /usr/bin/time -f '%U %S' -o "logs/$t.cpu" \
    "$bin/$t" "corpus/$t" -max_total_time="$secs" -timeout="${TIMEOUT:-10}" -rss_limit_mb=2048 \
        -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
        >"logs/$t.log" 2>&1 || true
    took=$(( $(date +%s) - start ))
    cpu=$(tail -n1 "logs/$t.cpu" 2>/dev/null | awk '{printf "%d", $1 + $2}')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "logs/$t.log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "logs/$t.log" | tail -1 | cut -d' ' -f2)
    found=$(( $(ls "artifacts/$t" | wc -l) - before ))
    printf '%-14s %6s %7s %12s %8s %8s %s\n' "$t" "$took" "$cpu" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
        "$found$( [ "$found" -gt 0 ] && echo " ($(ls -t "artifacts/$t" | head -"$found" | tr '\n' ' '))")"
done
