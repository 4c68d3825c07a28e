#!/usr/bin/env bash
# `make demo` (after `make serve`): a simulated live-shopping event with several streams against the
# running stack, then the dashboard URLs (with keys) for a brand, a creator and finance.
#   DEMO_STREAMS (default 4), DEMO_MINUTES (simulated minutes per stream, default 10),
#   DEMO_SPEED (simulated seconds per real second, default 20), DEMO_SEED (default 7),
#   DEMO_WAIT_S (how long to wait for the dashboards to show the ground truth, default 60)
# Exit 3 when the dashboards' JSON still differs from the simulator's ground truth after DEMO_WAIT_S.
set -euo pipefail
# shellcheck source=devstack/lib.sh
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

# Wait (bounded, DEMO_WAIT_S) until the dashboards' JSON shows what the simulator's ground truth says,
# then print what flowed through and the dashboard URLs.
"$PY" - "$out" "$api" "$finance_key" "${DEMO_WAIT_S:-60}" <<'PY'
import json
import sys
import time

import httpx

doc, api, finance_key, wait_s = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], float(sys.argv[4])
setup = doc["setup"]
brand_keys = {b["brand_id"]: b["api_key"] for b in setup["brands"]}
creator_keys = {c["creator_id"]: c["api_key"] for c in setup["creators"]}
FUNNEL = ("views", "unique_viewers", "clicks", "add_to_carts", "orders")
http = httpx.Client(base_url=api, timeout=10.0)


def get(path: str, key: str) -> dict:
    resp = http.get(path, headers={"Authorization": f"Bearer {key}"})
    resp.raise_for_status()
    return resp.json()


def money(rows: list[dict]) -> dict[str, int]:
    return {r["currency"]: r["net_minor"] for r in rows if r["net_minor"]}


def views() -> tuple[dict, dict]:
    live = {sid: get(f"/v1/streams/{sid}/live", brand_keys[s["brand_id"]]) for sid, s in doc["streams"].items()}
    earn = {cid: get(f"/v1/creators/{cid}/earnings", creator_keys[cid]) for cid in doc["creators"]}
    return live, earn


def agrees(live: dict, earn: dict) -> bool:
    for sid, s in doc["streams"].items():
        if any(live[sid][k] != s[k] for k in FUNNEL) or money(live[sid]["gmv"]) != money(s["gmv"]):
            return False
    for cid, c in doc["creators"].items():
        got = {(r["currency"], r["orders"], r["net_minor"], sum(r["commission"][k] for k in ("pending", "approved", "paid")))
               for r in earn[cid]["currencies"]}
        if got != {(r["currency"], r["orders"], r["net_minor"], r["commission"]) for r in c["currencies"]}:
            return False
    return True


deadline = time.monotonic() + wait_s
live, earn = views()
while not agrees(live, earn) and time.monotonic() < deadline:
    time.sleep(1)
    live, earn = views()
ok = agrees(live, earn)

print("\nWhat reached the dashboards (live JSON from Redis, earnings JSON from the ClickHouse ledger):")
for sid, s in doc["streams"].items():
    lv = live[sid]
    gmv = ", ".join(f"{g['net_minor']} {g['currency']} minor" for g in lv["gmv"]) or "-"
    print(f"  {sid}: views {lv['views']}, unique viewers {lv['unique_viewers']}, clicks {lv['clicks']}, "
          f"carts {lv['add_to_carts']}, orders {lv['orders']}, gmv {gmv}")
for cid in doc["creators"]:
    for r in earn[cid]["currencies"]:
        c = r["commission"]
        print(f"  {cid}: {r['orders']} orders, net {r['net_minor']} {r['currency']} minor, commission pending "
              f"{c['pending']} approved {c['approved']} paid {c['paid']} reversed {c['reversed']}")
if ok:
    print("  = the simulator's ground truth, exactly (per stream and per creator)")
else:
    print(f"  WARNING: still different from the ground truth after {wait_s:.0f}s "
          "(the stream processors may be behind; see .devstack/logs/streams.log and sink.log)")

creator = max(doc["creators"], key=lambda cid: sum(r["orders"] for r in doc["creators"][cid]["currencies"]),
              default=setup["creators"][0]["creator_id"])
print("\nLiveLedger demo: open these in a browser (keys are in the URLs; the page moves them to sessionStorage)\n")
print("Brand overviews (streams, creator leaderboard, live):")
for bid in sorted({st["brand_id"] for st in setup["streams"]}):
    print(f"  {bid:>18}: {api}/dashboard/brands/{bid}?key={brand_keys[bid]}")
print("\nBrand live stream dashboards:")
for st in setup["streams"]:
    sid, bid = st["stream_id"], st["brand_id"]
    print(f"  {bid:>18} {sid}: {api}/dashboard/streams/{sid}?key={brand_keys[bid]}")
print("\nCreator earnings:")
print(f"  {creator}: {api}/dashboard/creators/{creator}?key={creator_keys[creator]}")
print("\nFinance (payouts, reconciliation, CSV):")
print(f"  {api}/dashboard/finance?key={finance_key}")
print("\nCLI: LIVELEDGER_KEY=" + finance_key + " .venv/bin/liveledger reconcile")
sys.exit(0 if ok else 3)
PY
