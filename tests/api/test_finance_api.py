"""Payout batches (idempotent, carry-over, clawbacks, JSON = CSV) and reconciliation, against a real
API process with the ledger seeded in ClickHouse as the sink writes it."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from liveledger.storage import redis_keys as keys
from tests.api.conftest import World
from tests.api.test_read_api import assert_error

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse]

NOW = datetime.now(UTC)
TODAY = NOW.date()


def days(n: float) -> datetime:
    return NOW - timedelta(days=n)


@pytest.fixture(scope="module")
def ledger(world: World) -> World:
    world.order("b1", "o1", occurred_at=days(40), gross=100000, creator="c1", campaign="cmp1", stream="s1",
                ingested_at=days(35))
    world.order("b1", "o2", occurred_at=days(2), gross=50000, creator="c1", campaign="cmp1", stream="s1",
                ingested_at=days(2))
    world.order("b1", "o3", occurred_at=days(40), gross=15000, creator="c1", campaign="cmp1", via="coupon",
                ingested_at=days(35))
    world.order("b2", "o4", occurred_at=days(40), gross=30000, creator="c2", campaign="cmp2", stream="s2",
                ingested_at=days(35))
    world.order("b1", "o5", occurred_at=days(10), gross=7000, ingested_at=days(10))
    return world


def csv_totals(text: str) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for row in csv.DictReader(io.StringIO(text)):
        totals[row["currency"]] += int(row["amount_minor"])
    return dict(totals)


def json_totals(batch: dict[str, Any]) -> dict[str, int]:
    return {t["currency"]: t["amount_minor"] for t in batch["totals"]}


def test_payout_flow_idempotent_carry_over_and_clawback(ledger: World) -> None:
    first_period = (TODAY - timedelta(days=3)).isoformat()
    resp = ledger.post("/v1/finance/payouts", "finance", json={"period_end": first_period})
    assert resp.status_code == 201, resp.text
    batch = resp.json()
    assert batch["payout_id"] == f"po-{first_period}"
    # c1: o1 10000 + o3 1500 approved (o2 still on hold); c2: 3000 < min 5000 -> carried over
    assert [(ln["creator_id"], ln["amount_minor"], ln["orders"]) for ln in batch["lines"]] == [("c1", 11500, 2)]
    assert [(c["creator_id"], c["amount_minor"], c["reason"]) for c in batch["carried_over"]] == [
        ("c2", 3000, "below_minimum")]
    assert batch["totals"] == [{"currency": "USD", "amount_minor": 11500, "lines": 1}]

    # the same call returns the same batch (200), even after the ledger moved on
    ledger.order("b2", "o7", occurred_at=days(40), gross=90000, creator="c2", campaign="cmp2", stream="s2",
                 ingested_at=days(35))
    again = ledger.post("/v1/finance/payouts", "admin", json={"period_end": first_period})
    assert again.status_code == 200 and again.json() == batch
    assert ledger.get(f"/v1/finance/payouts/{batch['payout_id']}", "finance").json() == batch

    # CSV totals = JSON totals
    resp = ledger.get(f"/v1/finance/payouts/{batch['payout_id']}.csv", "finance")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    assert csv_totals(resp.text) == json_totals(batch)
    assert "115.00" in resp.text

    # earnings: paid now shows, as_of before the batch does not
    e = ledger.get("/v1/creators/c1/earnings", "c1").json()["currencies"][0]["commission"]
    assert (e["paid"], e["approved"], e["pending"]) == (11500, 0, 5000)
    before = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    e = ledger.get(f"/v1/creators/c1/earnings?as_of={before}", "c1").json()["currencies"][0]["commission"]
    assert (e["paid"], e["approved"]) == (0, 11500)

    # a refund after payment: o1 refunded 60000 -> commission 4000, clawback 6000 netted next batch
    ledger.order("b1", "o1", occurred_at=days(40), gross=100000, refunded=60000, creator="c1", campaign="cmp1",
                 stream="s1", ingested_at=NOW - timedelta(minutes=1))
    ledger.order("b1", "o6", occurred_at=days(40), gross=150000, creator="c1", campaign="cmp1", stream="s1",
                 ingested_at=NOW - timedelta(minutes=1))
    e = ledger.get("/v1/creators/c1/earnings", "c1").json()["currencies"][0]["commission"]
    assert e["approved"] == -6000 + 15000 and e["reversed"] == 6000
    # today is not over: its end is after the watermark (409 not_complete) unless forced (audited)
    refused = assert_error(ledger.post("/v1/finance/payouts", "finance", json={"period_end": TODAY.isoformat()}),
                           409, "not_complete")
    first = refused["error"]["details"][0]
    assert first["field"] == "period_end" and first["complete_up_to"] is not None
    assert first["complete_up_to"] < first["period_ends_at"]
    assert ledger.get(f"/v1/finance/payouts/po-{TODAY.isoformat()}", "finance").status_code == 404
    before_force = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    second = ledger.post("/v1/finance/payouts", "finance", json={"period_end": TODAY.isoformat(), "force": True})
    assert second.status_code == 201, second.text
    audit = ledger.get(f"/v1/admin/audit?since={before_force}", "admin").json()["entries"]
    forced = [a for a in audit if a["action"] == "payout.force"]
    assert len(forced) == 1 and forced[0]["entity_id"] == f"po-{TODAY.isoformat()}", audit
    assert forced[0]["actor"].startswith("finance:") and forced[0]["after"]["period_end"] == TODAY.isoformat()
    # the batch exists now: returned as before (200), forced or not, and nothing more is audited
    again = ledger.post("/v1/finance/payouts", "finance", json={"period_end": TODAY.isoformat()})
    assert again.status_code == 200 and again.json() == second.json()
    audit = ledger.get(f"/v1/admin/audit?since={before_force}", "admin").json()["entries"]
    assert len([a for a in audit if a["action"] == "payout.force"]) == 1
    b2 = second.json()
    c1 = next(ln for ln in b2["lines"] if ln["creator_id"] == "c1")
    assert (c1["amount_minor"], c1["orders"], c1["clawback_minor"]) == (9000, 2, -6000)
    # c2's carried 3000 + o7 9000 now reaches the minimum
    c2 = next(ln for ln in b2["lines"] if ln["creator_id"] == "c2")
    assert (c2["amount_minor"], c2["orders"]) == (12000, 2)
    csv2 = ledger.get(f"/v1/finance/payouts/{b2['payout_id']}.csv", "finance").text
    assert csv_totals(csv2) == json_totals(b2) == {"USD": 21000}
    e = ledger.get("/v1/creators/c1/earnings", "finance").json()["currencies"][0]["commission"]
    assert (e["paid"], e["approved"], e["pending"]) == (11500 + 9000, 0, 5000)

    # an earlier period after a later batch would pay twice
    earlier = (TODAY - timedelta(days=10)).isoformat()
    assert_error(ledger.post("/v1/finance/payouts", "finance", json={"period_end": earlier}), 409, "conflict")

    listed = ledger.get("/v1/finance/payouts", "finance").json()["payouts"]
    assert [b["payout_id"] for b in listed] == [b2["payout_id"], batch["payout_id"]]


@pytest.mark.parametrize("body", [{"period_end": "2999-01-01"}, {"period_end": "yesterday"}, {},
                                  {"period_end": "2026-02-30"}, {"period_end": "2020-01-01", "force": "yes"}])
def test_payout_bad_params(ledger: World, body: dict[str, Any]) -> None:
    resp = ledger.post("/v1/finance/payouts", "finance", json=body)
    assert_error(resp, 422, "validation_failed")


@pytest.mark.parametrize(("key", "status"), [("b1", 403), ("c1", 403), ("none", 401)])
def test_payout_tenancy(ledger: World, key: str, status: int) -> None:
    assert_error(ledger.post("/v1/finance/payouts", key, json={"period_end": "2020-01-01"}), status)
    assert_error(ledger.get("/v1/finance/payouts/po-2020-01-01", key), status)
    assert_error(ledger.get("/v1/finance/payouts/po-2020-01-01.csv", key), status)
    assert_error(ledger.get("/v1/finance/payouts", key), status)


def test_watermark_idle_pipeline_is_now(ledger: World) -> None:
    """No stream worker or sink runs here, and nothing is in the topics: every stage is caught up, so
    the watermark is the time of the reading (minus the clock-skew allowance)."""
    before = datetime.now(UTC)
    resp = ledger.get("/v1/finance/watermark", "finance")
    assert resp.status_code == 200, resp.text
    wm = resp.json()
    complete = datetime.fromisoformat(wm["complete_up_to"])
    assert before - timedelta(seconds=3) < complete <= datetime.now(UTC)
    stages = {(e["stage"], e["topic"].split(".")[-1]) for e in wm["partitions"]}
    assert stages == {("live", "events"), ("ledger", "events"), ("ledger", "orders"), ("clickhouse", "events"),
                      ("clickhouse", "ledger")}
    assert len(wm["partitions"]) == 5 * 6 and not wm["stale"]
    assert all(e["lag"] == 0 and e["applied_offset"] == -1 and e["end_offset"] == 0 for e in wm["partitions"])
    assert ledger.get("/v1/finance/watermark", "admin").status_code == 200
    # earnings and reconciliation carry it
    earn = ledger.get("/v1/creators/c1/earnings", "c1").json()
    rec = ledger.get("/v1/finance/reconciliation", "finance").json()
    assert earn["complete_up_to"] is not None and rec["complete_up_to"] is not None
    assert datetime.fromisoformat(earn["complete_up_to"]) >= complete - timedelta(seconds=5)


@pytest.mark.parametrize(("key", "status"), [("b1", 403), ("c1", 403), ("none", 401)])
def test_watermark_tenancy(ledger: World, key: str, status: int) -> None:
    assert_error(ledger.get("/v1/finance/watermark", key), status)


def test_payout_unknown_is_404(ledger: World) -> None:
    assert_error(ledger.get("/v1/finance/payouts/po-1999-01-01", "finance"), 404, "not_found")
    assert_error(ledger.get("/v1/finance/payouts/po-1999-01-01.csv", "finance"), 404, "not_found")
    assert_error(ledger.get("/v1/finance/payouts?limit=0", "finance"), 422, "validation_failed")


# --- reconciliation ---------------------------------------------------------------------------------

def test_reconciliation_counts_and_creator_differences(ledger: World) -> None:
    r, p = ledger.redis, ledger.prefix
    r.hset(keys.stats(p), mapping={"events_received": 120, "events_accepted": 100, "events_deduplicated": 15,
                                   "events_dead_lettered": 5, "dlq|invalid_time": 5, "orders_received": 9})
    ledger_now = ledger.get("/v1/finance/reconciliation", "finance").json()
    c1_ledger = next(c for c in ledger_now["creators"] if c["creator_id"] == "c1")["ledger"]
    # live view of c1 agrees with the ledger; c2's live view lags by one order
    # (per partition: a creator's live earnings are the sum over the partitions of its brands)
    r.hset(keys.creator_earnings(p, ledger.part("b1"), "c1"), mapping={f"USD|{k}": v for k, v in c1_ledger.items()})
    r.hset(keys.creator_earnings(p, ledger.part("b2"), "c2"), mapping={"USD|orders": 1, "USD|net_minor": 30000,
                                                                       "USD|commission_minor": 3000,
                                                                       "USD|reversed_minor": 0})
    resp = ledger.get("/v1/finance/reconciliation", "finance")
    assert resp.status_code == 200, resp.text
    rec = resp.json()
    ev = rec["events"]
    assert (ev["received"], ev["accepted"], ev["rejected"], ev["dead_lettered"], ev["deduplicated"]) == (
        120, 100, 5, 5, 15)
    assert ev["dead_letter_reasons"] == {"invalid_time": 5}
    assert rec["ledger_events"]["difference"] == -100  # nothing was sunk into this test's events table
    c1 = next(c for c in rec["creators"] if c["creator_id"] == "c1")
    c2 = next(c for c in rec["creators"] if c["creator_id"] == "c2")
    assert c1["differences"] == []
    assert {d["field"]: d["difference"] for d in c2["differences"]} == {
        "orders": 1, "net_minor": 90000, "commission_minor": 9000}
    assert rec["status"] == "differences" and rec["creators_with_differences"] == 1
    windowed = ledger.get("/v1/finance/reconciliation?from=2026-01-01T00:00:00Z&to=2026-01-02", "admin").json()
    assert windowed["from"] == "2026-01-01T00:00:00.000Z" and "difference" not in windowed["ledger_events"]


@pytest.mark.parametrize(("key", "status"), [("b1", 403), ("c1", 403), ("none", 401)])
def test_reconciliation_tenancy(ledger: World, key: str, status: int) -> None:
    assert_error(ledger.get("/v1/finance/reconciliation", key), status)
    assert_error(ledger.post("/v1/finance/reconciliation/orders?brand_id=b1", key, content=b"x"), status)


@pytest.mark.parametrize("query", ["from=nope", "from=2026-01-02&to=2026-01-01", "to=2026-01-01T00:00:00"])
def test_reconciliation_bad_params(ledger: World, query: str) -> None:
    assert_error(ledger.get(f"/v1/finance/reconciliation?{query}", "finance"), 422, "validation_failed")


def test_reconcile_orders_csv(ledger: World) -> None:
    def iso(dt: datetime) -> str:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    # ledger for b1: o1 (net 40000 after the refund), o2, o3, o5, o6
    text = ("order_id,occurred_at,currency,net_minor\n"
            f"o1,{iso(days(40))},USD,40000\n"
            f"o2,{iso(days(2))},USD,49000\n"
            f"o5,{iso(days(10))},EUR,7000\n"
            f"zz-missing,{iso(days(3))},USD,100\n")
    resp = ledger.post("/v1/finance/reconciliation/orders?brand_id=b1", "finance", content=text.encode(),
                       headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.text
    rec = resp.json()
    assert [m["order_id"] for m in rec["missing_in_ledger"]] == ["zz-missing"]
    assert sorted(o["order_id"] for o in rec["missing_in_csv"]) == ["o3", "o6"]
    assert sorted((m["order_id"], m["field"], m["csv"], m["ledger"]) for m in rec["mismatches"]) == [
        ("o2", "net_minor", 49000, 50000), ("o5", "currency", "EUR", "USD")]
    assert rec["matched"] == 1 and rec["status"] == "differences"


@pytest.mark.parametrize(("query", "body", "status"), [
    ("brand_id=b1", b"id,when\n1,2\n", 422),
    ("brand_id=b1", b"order_id,occurred_at,currency,net_minor\no1,not-a-time,USD,1\n", 422),
    ("brand_id=b1", b"order_id,occurred_at,currency,net_minor\no1,2026-01-01T00:00:00Z,usd,1.5\n", 422),
    ("brand_id=nope", b"order_id,occurred_at,currency,net_minor\n", 404),
    ("brand_id=bad%20id", b"order_id,occurred_at,currency,net_minor\n", 422),
    ("", b"order_id,occurred_at,currency,net_minor\n", 422),
])
def test_reconcile_orders_bad_input(ledger: World, query: str, body: bytes, status: int) -> None:
    resp = ledger.post(f"/v1/finance/reconciliation/orders?{query}", "finance", content=body)
    assert_error(resp, status)
