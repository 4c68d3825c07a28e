#!/usr/bin/env bash
# `make demo` (after `make serve`): a simulated live-shopping event with several streams against the
# running stack, then the dashboard URLs (with keys) for a brand, a creator and finance.
#   DEMO_STREAMS (default 4), DEMO_MINUTES (simulated minutes per stream, default 10),
#   DEMO_SPEED (simulated seconds per real second, default 20), DEMO_SEED (default 7)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

api="http://${LIVELEDGER_API_HOST:-127.0.0.1}:${LIVELEDGER_API_PORT:-8000}"
ingest="http://${LIVELEDGER_INGEST_HOST:-127.0.0.1}:${LIVELEDGER_INGEST_PORT:-8080}"
out=".devstack/demo/ground_truth.json"
mkdir -p .devstack/demo

"$PY" -m devstack.wait --timeout 60 ingest api >/dev/null || die "the stack is not serving; run 'make serve' first"

finance_json="$("$PY" -m liveledger.cli setup finance-key --api "$api" --name "demo finance")"
finance_key="$("$PY" -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$finance_json")"

say "simulating ${DEMO_STREAMS:-4} live streams (ground truth -> $out)"
"$PY" -m liveledger.cli simulate -- --seed "${DEMO_SEED:-7}" --streams "${DEMO_STREAMS:-4}" \
    --minutes "${DEMO_MINUTES:-10}" --speed "${DEMO_SPEED:-20}" --ingest "$ingest" --api "$api" --out "$out"

sleep 2  # let the stream processors and the sink drain
"$PY" - "$out" "$api" "$finance_key" <<'PY'
import json
import sys

doc, api, finance_key = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
setup = doc["setup"]
brand_keys = {b["brand_id"]: b["api_key"] for b in setup["brands"]}
print("\nLiveLedger demo: open these in a browser (keys are in the URLs; the page moves them to sessionStorage)\n")
print("Brand live dashboards:")
for st in setup["streams"]:
    sid, bid = st["stream_id"], st["brand_id"]
    print(f"  {bid:>18} {sid}: {api}/dashboard/streams/{sid}?key={brand_keys[bid]}")
creator = setup["creators"][0]
print("\nCreator earnings:")
print(f"  {creator['creator_id']}: {api}/dashboard/creators/{creator['creator_id']}?key={creator['api_key']}")
print("\nFinance (payouts, reconciliation, CSV):")
print(f"  {api}/dashboard/finance?key={finance_key}")
print("\nCLI: LIVELEDGER_KEY=" + finance_key + " .venv/bin/liveledger reconcile")
PY
