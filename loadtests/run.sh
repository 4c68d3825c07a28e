#!/usr/bin/env bash
# Locust headless against the running stack (`make serve`), bounded in time, with pass/fail
# thresholds that set the exit code. Report: results/load/report.html and results/load/load_*.csv.
#
#   LL_LOAD_USERS      concurrent users              [60]
#   LL_LOAD_SPAWN      users started per second      [20]
#   LL_LOAD_DURATION   run time (locust syntax)      [60s]
#   LL_LOAD_P99_MS     p99 bound over all requests   [400] (2 cores shared with Locust)
#   LL_LOAD_MAX_ERROR_RATIO                          [0.001]
#   LL_LOAD_HOST       ingest base URL               [http://127.0.0.1:$LIVELEDGER_INGEST_PORT or :8080]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${VENV:-.venv}/bin/python"
[[ -x "$PY" ]] || PY=python3
OUT="results/load"
mkdir -p "$OUT"
host="${LL_LOAD_HOST:-http://127.0.0.1:${LIVELEDGER_INGEST_PORT:-8080}}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

echo "[load] locust: ${LL_LOAD_USERS:-60} users for ${LL_LOAD_DURATION:-60s} against $host"
set +e
"$PY" -m locust -f loadtests/locustfile.py --headless \
    --host "$host" \
    --users "${LL_LOAD_USERS:-60}" --spawn-rate "${LL_LOAD_SPAWN:-20}" \
    --run-time "${LL_LOAD_DURATION:-60s}" --stop-timeout 5 \
    --html "$OUT/report.html" --csv "$OUT/load" \
    --only-summary --loglevel INFO
rc=$?
set -e
echo "[load] report: $OUT/report.html, CSV: $OUT/load_stats.csv (exit $rc)"
exit "$rc"
